//! Sign-up, confirmation and unsubscription.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{AppState, message_page};
use crate::domain::SubscriberEmail;
use crate::domain::token::TokenPurpose;

/// What every sign-up is told, known address or not (no enumeration).
const SIGNED_UP: &str = "If this address can receive mail, a link to confirm the subscription is on its way. \
     Nothing will be sent until it is confirmed.";
const BAD_LINK: &str =
    "This link is not valid. It may be incomplete: try copying the whole link from the email.";

/// `POST /subscribe`, as a form (`email`, `name`, `digest`…) or JSON
/// (`{"email": …, "name": …, "digests": […]}`).
pub async fn subscribe(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let wants_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    let reply = |status: StatusCode, heading: &str, message: &str| -> Response {
        if wants_json {
            let ok = status.is_success();
            (status, axum::Json(json!({ "ok": ok, "message": message }))).into_response()
        } else {
            message_page(&state, status, heading, message)
        }
    };
    let allowed = state
        .inner
        .limiter
        .lock()
        .map(|mut l| l.allow_client(client.ip()))
        .unwrap_or(true);
    if !allowed {
        return reply(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many attempts",
            "Please wait a few minutes and try again.",
        );
    }
    let Some((email, name, digests)) = parse_sign_up(wants_json, &body) else {
        return reply(
            StatusCode::BAD_REQUEST,
            "Check the address",
            "Please enter an email address.",
        );
    };
    let email = match SubscriberEmail::parse(&email) {
        Ok(email) => email,
        Err(_) => {
            return reply(
                StatusCode::BAD_REQUEST,
                "Check the address",
                "That does not look like an email address.",
            );
        }
    };
    let name = name.map(|n| {
        n.chars()
            .filter(|c| !c.is_control())
            .take(100)
            .collect::<String>()
    });
    let per_address = state
        .inner
        .limiter
        .lock()
        .map(|mut l| l.allow_address(email.as_str()))
        .unwrap_or(true);
    if per_address {
        // In the background, so that the answer takes as long whether or not an email
        // goes out.
        let herald = state.herald().clone();
        tokio::spawn(async move {
            if let Err(e) = herald.sign_up(&email, name.as_deref(), &digests).await {
                tracing::warn!(to = %email.masked(), error = %e, "sign-up failed");
            }
        });
    }
    reply(StatusCode::OK, "Almost there", SIGNED_UP)
}

fn parse_sign_up(json: bool, body: &[u8]) -> Option<(String, Option<String>, Vec<String>)> {
    if json {
        let value: serde_json::Value = serde_json::from_slice(body).ok()?;
        let email = value.get("email")?.as_str()?.to_owned();
        let name = value
            .get("name")
            .and_then(|n| n.as_str())
            .map(str::to_owned)
            .filter(|n| !n.trim().is_empty());
        let digests = value
            .get("digests")
            .and_then(|d| d.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|d| d.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        return Some((email, name, digests));
    }
    let mut email = None;
    let mut name = None;
    let mut digests = Vec::new();
    for (key, value) in url::form_urlencoded::parse(body) {
        match key.as_ref() {
            "email" => email = Some(value.into_owned()),
            "name" if !value.trim().is_empty() => name = Some(value.into_owned()),
            "digest" => digests.push(value.into_owned()),
            _ => {}
        }
    }
    Some((email?, name, digests))
}

/// `GET /confirm/{token}`.
pub async fn confirm(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    match state.herald().confirm(&token).await {
        Ok(Some(_)) => message_page(
            &state,
            StatusCode::OK,
            "You are subscribed",
            "Thank you. The next digest will be in your inbox.",
        ),
        Ok(None) => message_page(&state, StatusCode::BAD_REQUEST, "Link not valid", BAD_LINK),
        Err(e) => unavailable(&state, "confirm", &e),
    }
}

/// `GET /unsubscribe/{token}`: a page with a button (mail scanners follow GET links, so
/// GET never unsubscribes).
pub async fn unsubscribe_page(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Response {
    match state
        .herald()
        .token_subscriber(&token, TokenPurpose::Unsubscribe)
        .await
    {
        Ok(Some(_)) => {
            let config = &state.herald().config;
            let data = json!({
                "site": { "title": config.site.title, "url": config.site.base_url.as_str(), "language": config.site.language },
                "action": format!("{}unsubscribe/{token}", config.site.base_url),
            });
            match state.inner.templates.render_page("page_unsubscribe", &data) {
                Ok(html) => {
                    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response()
                }
                Err(e) => unavailable(&state, "unsubscribe page template", &e),
            }
        }
        Ok(None) => message_page(&state, StatusCode::BAD_REQUEST, "Link not valid", BAD_LINK),
        Err(e) => unavailable(&state, "unsubscribe page", &e),
    }
}

/// `POST /unsubscribe/{token}`: RFC 8058 one-click (`List-Unsubscribe=One-Click`), also
/// the page's button. Idempotent.
pub async fn unsubscribe(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    match state.herald().unsubscribe(&token).await {
        Ok(Some(_)) => message_page(
            &state,
            StatusCode::OK,
            "Unsubscribed",
            "You will get no more digests.",
        ),
        Ok(None) => message_page(&state, StatusCode::BAD_REQUEST, "Link not valid", BAD_LINK),
        Err(e) => unavailable(&state, "unsubscribe", &e),
    }
}

/// The page for a failure of ours: logged with what failed, nothing revealed.
fn unavailable(state: &AppState, what: &str, error: &dyn std::fmt::Display) -> Response {
    tracing::error!(error = %error, "{what}");
    message_page(
        state,
        StatusCode::INTERNAL_SERVER_ERROR,
        "Unavailable",
        "Please try again in a minute.",
    )
}
