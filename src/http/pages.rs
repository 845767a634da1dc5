//! Pages: the landing page, the issue archive, health and metrics.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::{AppState, constant_time_eq, message_page};
use crate::domain::IssueId;
use crate::render::PersonalFields;
use crate::store::PostFilter;

/// Issues per archive page, and in the archive's feed.
const ARCHIVE_PAGE: u64 = 20;
/// The highest archive page number read (a larger one shows the first page): 20,000
/// issues, decades of weekly digests.
const ARCHIVE_PAGES_MAX: u64 = 1_000;

#[derive(Debug, serde::Deserialize)]
pub struct ArchiveQuery {
    page: Option<String>,
}

/// `GET /archive`: every issue that went out, newest first, a page at a time. Nothing
/// personal: subject, date, digest, post count.
pub async fn archive_list(
    State(state): State<AppState>,
    axum::extract::Query(query): axum::extract::Query<ArchiveQuery>,
) -> Response {
    let config = state.config();
    // A page number from the address bar: anything odd is the first page.
    let page = query
        .page
        .as_deref()
        .and_then(|p| p.trim().parse::<u64>().ok())
        .filter(|p| (1..=ARCHIVE_PAGES_MAX).contains(p))
        .unwrap_or(1);
    let digests: Vec<String> = config.digests.iter().map(|d| d.name.clone()).collect();
    let entries = match state
        .site()
        .store()
        .archive_entries(&digests, (page - 1) * ARCHIVE_PAGE, ARCHIVE_PAGE + 1)
        .await
    {
        Ok(entries) => entries,
        Err(e) => {
            tracing::error!(error = %e, "archive: cannot read issues");
            return message_page(
                &state,
                StatusCode::SERVICE_UNAVAILABLE,
                "Unavailable",
                "Please try again in a minute.",
            );
        }
    };
    let more = entries.len() as u64 > ARCHIVE_PAGE;
    let base = config.site.base_url.as_str();
    let issues: Vec<_> = entries
        .iter()
        .take(ARCHIVE_PAGE as usize)
        .map(|e| {
            json!({
                "url": format!("{base}archive/{}", e.id.0),
                "subject": e.subject,
                "digest": e.digest,
                // The day as the digest's own zone sees it.
                "date": config
                    .digests
                    .iter()
                    .find(|d| d.name == e.digest)
                    .map_or_else(
                        || e.due_at.format("%-d %B %Y").to_string(),
                        |d| e.due_at.with_timezone(&d.timezone).format("%-d %B %Y").to_string(),
                    ),
                "posts": e.posts,
                "one_post": e.posts == 1,
            })
        })
        .collect();
    let data = json!({
        "site": { "title": config.site.title, "url": base, "language": config.site.language },
        "issues": issues,
        "first_page": page == 1,
        "feed_url": format!("{base}archive.xml"),
        "newer_url": (page > 1).then(|| if page == 2 { format!("{base}archive") } else { format!("{base}archive?page={}", page - 1) }),
        "older_url": more.then(|| format!("{base}archive?page={}", page + 1)),
    });
    match state
        .site()
        .page_templates()
        .render_page("page_archive", &data)
    {
        Ok(html) => ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "archive page template");
            message_page(
                &state,
                StatusCode::INTERNAL_SERVER_ERROR,
                "Unavailable",
                "The archive could not be shown.",
            )
        }
    }
}

/// `GET /archive.xml`: the latest issues as an Atom feed, each entry linking to its web
/// page, for people who read the newsletter in a feed reader.
pub async fn archive_feed(State(state): State<AppState>) -> Response {
    use atom_syndication::{Entry, Feed, Link, Text};
    let config = state.config();
    let digests: Vec<String> = config.digests.iter().map(|d| d.name.clone()).collect();
    let entries = match state
        .site()
        .store()
        .archive_entries(&digests, 0, ARCHIVE_PAGE)
        .await
    {
        Ok(entries) => entries,
        Err(e) => {
            tracing::error!(error = %e, "archive feed: cannot read issues");
            return (StatusCode::SERVICE_UNAVAILABLE, "try again later\n").into_response();
        }
    };
    let base = config.site.base_url.as_str();
    let link = |href: String, rel: &str| Link {
        href,
        rel: rel.to_owned(),
        ..Link::default()
    };
    let updated = entries
        .first()
        .map_or_else(|| chrono::DateTime::UNIX_EPOCH, |e| e.due_at)
        .fixed_offset();
    let feed = Feed {
        id: format!("{base}archive"),
        title: Text::plain(format!("{}: every issue", config.site.title)),
        // RFC 4287 wants an author: the site, for every entry.
        authors: vec![atom_syndication::Person {
            name: config.site.title.clone(),
            uri: Some(base.to_owned()),
            ..atom_syndication::Person::default()
        }],
        updated,
        links: vec![
            link(format!("{base}archive.xml"), "self"),
            link(format!("{base}archive"), "alternate"),
        ],
        entries: entries
            .iter()
            .map(|e| {
                let url = format!("{base}archive/{}", e.id.0);
                Entry {
                    id: url.clone(),
                    title: Text::plain(e.subject.clone()),
                    updated: e.due_at.fixed_offset(),
                    published: Some(e.due_at.fixed_offset()),
                    links: vec![link(url, "alternate")],
                    summary: Some(Text::plain(format!(
                        "{}: {} {}",
                        e.digest,
                        e.posts,
                        if e.posts == 1 { "post" } else { "posts" }
                    ))),
                    ..Entry::default()
                }
            })
            .collect(),
        ..Feed::default()
    };
    (
        [(header::CONTENT_TYPE, "application/atom+xml; charset=utf-8")],
        feed.to_string(),
    )
        .into_response()
}

/// The landing page: title, latest posts, subscribe form, feed links.
pub async fn index(State(state): State<AppState>) -> Response {
    let config = state.config();
    let posts = match state
        .site()
        .store()
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
    match state
        .site()
        .page_templates()
        .render_page("page_index", &data)
    {
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

/// An archive page, rendered once.
#[derive(Debug)]
pub struct ArchivePage {
    html: axum::body::Bytes,
    etag: String,
}

/// Rendered archive pages by issue, until posts change. Concurrent first requests for
/// one issue wait for one rendering.
#[derive(Debug, Default)]
pub struct ArchiveCache {
    pages: HashMap<i64, Arc<tokio::sync::OnceCell<Option<Arc<ArchivePage>>>>>,
}

/// Issues kept rendered at once.
const ARCHIVE_PAGES_KEPT: usize = 256;

impl ArchiveCache {
    pub fn clear(&mut self) {
        self.pages.clear();
    }

    fn slot(&mut self, id: i64) -> Arc<tokio::sync::OnceCell<Option<Arc<ArchivePage>>>> {
        if self.pages.len() >= ARCHIVE_PAGES_KEPT
            && !self.pages.contains_key(&id)
            && let Some(other) = self.pages.keys().next().copied()
        {
            // Only issues that exist are kept, so this is real traffic: make room.
            self.pages.remove(&other);
        }
        Arc::clone(self.pages.entry(id).or_default())
    }

    fn forget(&mut self, id: i64) {
        self.pages.remove(&id);
    }
}

/// An issue as subscribers got it, with no one's name, address or unsubscribe link.
pub async fn archive(
    State(state): State<AppState>,
    Path(issue): Path<String>,
    headers: HeaderMap,
) -> Response {
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
    let slot = match state.inner.archive.lock() {
        Ok(mut cache) => cache.slot(id),
        Err(_) => Arc::default(),
    };
    let page = slot.get_or_try_init(|| render_archive(&state, id)).await;
    let page = match page {
        Ok(Some(page)) => Arc::clone(page),
        Ok(None) => {
            // Not kept: the issue may exist soon (a "view online" link is mailed with
            // the issue), and unknown ids must not fill the cache.
            if let Ok(mut cache) = state.inner.archive.lock() {
                cache.forget(id);
            }
            return not_found();
        }
        Err(e) => {
            // Not cached: the next request tries again.
            if let Ok(mut cache) = state.inner.archive.lock() {
                cache.forget(id);
            }
            tracing::error!(issue = id, error = %e, "archive page");
            return message_page(
                &state,
                StatusCode::INTERNAL_SERVER_ERROR,
                "Unavailable",
                "The issue could not be shown.",
            );
        }
    };
    let etag =
        HeaderValue::from_str(&page.etag).unwrap_or_else(|_| HeaderValue::from_static("\"\""));
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim().trim_start_matches("W/") == page.etag)
        });
    if matches {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response();
    }
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (header::ETAG, etag),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=300"),
            ),
        ],
        page.html.clone(),
    )
        .into_response()
}

async fn render_archive(
    state: &AppState,
    id: i64,
) -> Result<Option<Arc<ArchivePage>>, super::Error> {
    let Some(rendered) = state.site().archive_issue(IssueId(id)).await? else {
        return Ok(None);
    };
    let nobody = PersonalFields {
        name: None,
        email: String::new(),
        unsubscribe_url: state.config().site.base_url.to_string(),
    };
    let html = with_archive_nav(&rendered.html_for(&nobody), state);
    let etag = format!(
        "\"a{}\"",
        crate::domain::hex(&Sha256::digest(html.as_bytes())[..12])
    );
    Ok(Some(Arc::new(ArchivePage {
        html: html.into(),
        etag,
    })))
}

/// The issue's web page: the email as sent, with a line above it back to the list of
/// issues and to the sign-up form.
fn with_archive_nav(html: &str, state: &AppState) -> String {
    let site = &state.config().site;
    let mut base = String::new();
    crate::markup::escape_into(&mut base, site.base_url.as_str());
    let mut title = String::new();
    crate::markup::escape_into(&mut title, &site.title);
    let nav = format!(
        "<nav aria-label=\"Archive\" style=\"max-width: 600px; margin: 0 auto; padding: 12px 16px; font-family: Helvetica, Arial, sans-serif; font-size: 14px;\"><a href=\"{base}archive\">All issues</a> &middot; <a href=\"{base}\">Subscribe to {title}</a></nav>"
    );
    // After the opening <body …> tag; a template without one gets it first.
    let lower = html.to_ascii_lowercase();
    let body = lower.match_indices("<body").map(|(at, _)| at).find(|at| {
        matches!(
            lower.as_bytes().get(at + 5),
            Some(b'>' | b' ' | b'\t' | b'\n' | b'\r')
        )
    });
    match body.and_then(|at| lower[at..].find('>').map(|end| at + end + 1)) {
        Some(at) => format!("{}{nav}{}", &html[..at], &html[at..]),
        None => format!("{nav}{html}"),
    }
}

/// Liveness: the store answers.
pub async fn healthz(State(state): State<AppState>) -> Response {
    match state.site().store().ping().await {
        Ok(_) => (StatusCode::OK, "ok\n").into_response(),
        Err(e) => {
            tracing::error!(error = %e, "health check: the store does not answer");
            (StatusCode::SERVICE_UNAVAILABLE, "store unavailable\n").into_response()
        }
    }
}

/// Prometheus text format, for whoever may read it: with a token, the bearer of it; on
/// its own listener, anyone who reaches that; otherwise loopback clients only.
pub async fn metrics(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    if let Some(token) = &state.inner.metrics_token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !constant_time_eq(given.trim().as_bytes(), token.as_bytes()) {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer realm=\"herald metrics\"")],
                "metrics need Authorization: Bearer <HERALD_METRICS_TOKEN>\n",
            )
                .into_response();
        }
    } else if state.config().http.metrics_listen.is_none() {
        // Loopback only, and not through a proxy: one declared in trusted_proxies, or
        // one that says it forwarded, would make every visitor look local.
        let http = &state.config().http;
        if !peer.ip().is_loopback()
            || super::client::is_forwarded(&headers)
            || !http.trusted_proxies.is_empty()
        {
            return (
                StatusCode::FORBIDDEN,
                "metrics are served to loopback clients only (and not behind a proxy); set HERALD_METRICS_TOKEN or http.metrics_listen\n",
            )
                .into_response();
        }
    }
    let store = state.site().store();
    let mut gauges = Vec::new();
    if let Ok(n) = store.count_posts(None).await {
        gauges.push((
            "herald_posts",
            "Posts stored.",
            vec![(String::new(), n as f64)],
        ));
    }
    if let Ok(counts) = store.delivery_counts().await {
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
    if let Ok(counts) = store.subscriber_counts().await {
        let values = counts
            .into_iter()
            .map(|(status, n)| (format!("status=\"{status}\""), n as f64))
            .collect();
        gauges.push(("herald_subscribers", "Subscribers, by status.", values));
    }
    // Bounces and complaints recorded per digest (from the store's tallies: SMTP replies,
    // DSNs, ARF reports and provider events alike).
    if let Ok(counts) = store.event_counts().await {
        let (mut bounces, mut complaints) = (Vec::new(), Vec::new());
        for (digest, class, n) in counts {
            let digest = if digest.is_empty() {
                "(transactional)".to_owned()
            } else {
                digest
            };
            let digest = crate::telemetry::label(&digest);
            if class == "complaint" {
                complaints.push((format!("digest=\"{digest}\""), n as f64));
            } else {
                bounces.push((format!("digest=\"{digest}\",class=\"{class}\""), n as f64));
            }
        }
        gauges.push((
            "herald_bounces",
            "Bounces recorded, by digest and class (hard and soft count against the address; message, policy and relay never do).",
            bounces,
        ));
        gauges.push((
            "herald_complaints",
            "Spam complaints recorded, by digest.",
            complaints,
        ));
    }
    if let Ok(sources) = store.sources().await {
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
    let body = state.site().metrics().render(&gauges);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}
