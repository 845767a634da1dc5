//! Pages: the landing page, the issue archive, health and metrics.

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{AppState, message_page};
use crate::domain::IssueId;
use crate::render::PersonalFields;
use crate::store::PostFilter;

/// The landing page: title, latest posts, subscribe form, feed links.
pub async fn index(State(state): State<AppState>) -> Response {
    let herald = state.herald();
    let config = &herald.config;
    let posts = match herald
        .store
        .list_posts(&PostFilter {
            source: None,
            limit: Some(10),
        })
        .await
    {
        Ok(posts) => posts,
        Err(e) => {
            tracing::error!(error = %e, "landing page: cannot read posts");
            return message_page(
                &state,
                StatusCode::SERVICE_UNAVAILABLE,
                "Unavailable",
                "Please try again in a minute.",
            );
        }
    };
    let posts: Vec<_> = posts
        .iter()
        .map(|p| {
            json!({
                "title": p.title,
                "url": p.url.clone().unwrap_or_default(),
                "date": p.display_date().format("%-d %b %Y").to_string(),
                "summary": p.summary.clone().unwrap_or_default(),
            })
        })
        .collect();
    let data = json!({
        "site": { "title": config.site.title, "url": config.site.base_url.as_str(), "language": config.site.language },
        "description": config.feed.description,
        "subscribe_url": format!("{}subscribe", config.site.base_url),
        "feeds": { "rss": config.feed.rss_url.as_str(), "atom": config.feed.atom_url.as_str(), "json": config.feed.json_url.as_str() },
        "posts": posts,
    });
    match state.inner.templates.render_page("page_index", &data) {
        Ok(html) => ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "landing page template");
            message_page(
                &state,
                StatusCode::INTERNAL_SERVER_ERROR,
                "Unavailable",
                "The page could not be shown.",
            )
        }
    }
}

/// An issue as subscribers got it, with no one's name, address or unsubscribe link.
pub async fn archive(State(state): State<AppState>, Path(issue): Path<String>) -> Response {
    let not_found = || {
        message_page(
            &state,
            StatusCode::NOT_FOUND,
            "Not found",
            "There is no such issue.",
        )
    };
    let Ok(id) = issue.parse::<i64>() else {
        return not_found();
    };
    let herald = state.herald();
    let rendered = match herald.archive_issue(IssueId(id)).await {
        Ok(Some(rendered)) => rendered,
        Ok(None) => return not_found(),
        Err(e) => {
            tracing::error!(issue = id, error = %e, "archive page");
            return message_page(
                &state,
                StatusCode::INTERNAL_SERVER_ERROR,
                "Unavailable",
                "The issue could not be shown.",
            );
        }
    };
    let nobody = PersonalFields {
        name: None,
        email: String::new(),
        unsubscribe_url: herald.config.site.base_url.to_string(),
    };
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        rendered.html_for(&nobody),
    )
        .into_response()
}

/// Liveness: the store answers.
pub async fn healthz(State(state): State<AppState>) -> Response {
    match state.herald().store.count_posts(None).await {
        Ok(_) => (StatusCode::OK, "ok\n").into_response(),
        Err(e) => {
            tracing::error!(error = %e, "health check: the store does not answer");
            (StatusCode::SERVICE_UNAVAILABLE, "store unavailable\n").into_response()
        }
    }
}

/// Prometheus text format.
pub async fn metrics(State(state): State<AppState>) -> Response {
    let herald = state.herald();
    let mut gauges = Vec::new();
    if let Ok(n) = herald.store.count_posts(None).await {
        gauges.push((
            "herald_posts",
            "Posts stored.",
            vec![(String::new(), n as f64)],
        ));
    }
    if let Ok(counts) = herald.store.delivery_counts().await {
        let values = [
            ("queued", counts.queued),
            ("sent", counts.sent),
            ("deferred", counts.deferred),
            ("failed", counts.failed),
        ]
        .into_iter()
        .map(|(status, n)| (format!("status=\"{status}\""), n as f64))
        .collect();
        gauges.push((
            "herald_deliveries",
            "Delivery ledger rows, by status.",
            values,
        ));
    }
    if let Ok(counts) = herald.store.subscriber_counts().await {
        let values = counts
            .into_iter()
            .map(|(status, n)| (format!("status=\"{status}\""), n as f64))
            .collect();
        gauges.push(("herald_subscribers", "Subscribers, by status.", values));
    }
    if let Ok(sources) = herald.store.sources().await {
        let values = sources
            .iter()
            .map(|s| {
                (
                    format!("source=\"{}\"", crate::telemetry::label(&s.name)),
                    f64::from(s.state.consecutive_failures),
                )
            })
            .collect();
        gauges.push((
            "herald_source_consecutive_failures",
            "Failed polls in a row, by source.",
            values,
        ));
    }
    let body = herald.metrics.render(&gauges);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}
