//! Sign-up, confirmation and unsubscription.
//!
//! Links in mail are fetched by scanners and previews, so no GET changes anything: a
//! confirm or unsubscribe link shows a page whose button POSTs. The RFC 8058 one-click
//! POST must carry `List-Unsubscribe=One-Click` (urlencoded or multipart/form-data), as
//! the page's own form does.

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{AppState, message_page};
use crate::domain::{SubscriberEmail, SubscriberName};
use crate::store::ConfirmLink;
use crate::store::ConfirmOutcome;

/// What every sign-up is told, known address or not (no enumeration).
const SIGNED_UP: &str = "If this address can receive mail, a link to confirm the subscription is on its way. \
     Nothing changes until it is confirmed.";
const BAD_LINK: &str =
    "This link is not valid. It may be incomplete: try copying the whole link from the email.";

/// `POST /subscribe`, as a form (`email`, `name`, `digest`…) or JSON
/// (`{"email": …, "name": …, "digests": […]}`).
pub async fn subscribe(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
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
    let client = super::client::client_ip(peer, &headers, &state.config().http.trusted_proxies);
    let allowed = state
        .inner
        .limiter
        .lock()
        .map(|mut l| l.allow_client(client))
        .unwrap_or(Ok(()));
    if let Err(wait) = allowed {
        let mut response = reply(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many attempts",
            "Please wait a few minutes and try again.",
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, retry_after(wait));
        return response;
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
    // A web form's name is made acceptable rather than refused.
    let name = name.as_deref().and_then(SubscriberName::lenient);
    let digests: Vec<String> = digests.into_iter().take(50).collect();
    let per_address = state
        .inner
        .limiter
        .lock()
        .map(|mut l| l.allow_address(email.as_str()).is_ok())
        .unwrap_or(true);
    if per_address {
        // Recorded (with its mail queued) before answering, so that a stop right after
        // loses nothing; known or new, that is one transaction. The mail itself goes out
        // in the background, so that the answer takes as long whether or not one does.
        if let Err(e) = state.site().sign_up(&email, name.as_ref(), &digests).await {
            return unavailable(&state, "sign-up", &e);
        }
    }
    reply(StatusCode::OK, "Almost there", SIGNED_UP)
}

/// Seconds until a rate limit lets the client in again, for `Retry-After`.
fn retry_after(wait: Duration) -> HeaderValue {
    HeaderValue::from(wait.as_secs().max(1))
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

/// What a followed (or stale) confirm link tells the reader.
fn confirm_message(outcome: ConfirmOutcome) -> (StatusCode, &'static str, &'static str) {
    match outcome {
        ConfirmOutcome::Confirmed => (
            StatusCode::OK,
            "You are subscribed",
            "Thank you. The next digest will be in your inbox.",
        ),
        ConfirmOutcome::AlreadyConfirmed => (
            StatusCode::OK,
            "Already subscribed",
            "This address is already subscribed; nothing needed changing.",
        ),
        ConfirmOutcome::Used => (
            StatusCode::GONE,
            "Link already used",
            "This confirmation link was used before, so it does nothing now. To subscribe again, sign up on the website: a new link will be sent.",
        ),
        ConfirmOutcome::Expired => (
            StatusCode::GONE,
            "Link expired",
            "This confirmation link has expired. Sign up again on the website to get a new one.",
        ),
        ConfirmOutcome::Bounced => (
            StatusCode::CONFLICT,
            "Address not confirmed",
            "Mail to this address could not be delivered before, so a link cannot turn it back on. Please contact the newsletter's editor.",
        ),
    }
}

/// `GET /confirm/{token}`: a page with a button (mail scanners follow GET links, so GET
/// never confirms), or what became of the link.
pub async fn confirm_page(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    match state.site().check_confirm_link(&token).await {
        Ok(ConfirmLink::Ready { name, digests }) => {
            let config = &state.config();
            let data = json!({
                "site": { "title": config.site.title, "url": config.site.base_url.as_str(), "language": config.site.language },
                "action": format!("{}confirm/{token}", config.site.base_url),
                "request": crate::render::describe_sign_up(name.as_deref(), &digests),
            });
            match state
                .site()
                .page_templates()
                .render_page("page_confirm", &data)
            {
                Ok(html) => {
                    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response()
                }
                Err(e) => broken_page(&state, "confirm page template", &e),
            }
        }
        Ok(ConfirmLink::Done(outcome)) => {
            let (status, heading, message) = confirm_message(outcome);
            message_page(&state, status, heading, message)
        }
        Ok(ConfirmLink::Invalid) => {
            message_page(&state, StatusCode::BAD_REQUEST, "Link not valid", BAD_LINK)
        }
        Err(e) => unavailable(&state, "confirm page", &e),
    }
}

/// `POST /confirm/{token}`: applies the sign-up the link confirms, once.
pub async fn confirm(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    match state.site().confirm(&token).await {
        Ok(Some(outcome)) => {
            let (status, heading, message) = confirm_message(outcome);
            message_page(&state, status, heading, message)
        }
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
    match state.site().unsubscribe_link_is_valid(&token).await {
        Ok(true) => {
            let config = &state.config();
            let data = json!({
                "site": { "title": config.site.title, "url": config.site.base_url.as_str(), "language": config.site.language },
                "action": format!("{}unsubscribe/{token}", config.site.base_url),
            });
            match state
                .site()
                .page_templates()
                .render_page("page_unsubscribe", &data)
            {
                Ok(html) => {
                    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response()
                }
                Err(e) => broken_page(&state, "unsubscribe page template", &e),
            }
        }
        Ok(false) => message_page(&state, StatusCode::BAD_REQUEST, "Link not valid", BAD_LINK),
        Err(e) => unavailable(&state, "unsubscribe page", &e),
    }
}

/// `POST /unsubscribe/{token}`: RFC 8058 one-click (`List-Unsubscribe=One-Click`), also
/// the page's button. Idempotent.
pub async fn unsubscribe(
    State(state): State<AppState>,
    Path(token): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !is_one_click(&headers, &body) {
        return message_page(
            &state,
            StatusCode::BAD_REQUEST,
            "Not an unsubscribe request",
            "Use the button on the unsubscribe page (the request must say List-Unsubscribe=One-Click).",
        );
    }
    match state.site().unsubscribe(&token).await {
        Ok(true) => message_page(
            &state,
            StatusCode::OK,
            "Unsubscribed",
            "You will get no more digests.",
        ),
        Ok(false) => message_page(&state, StatusCode::BAD_REQUEST, "Link not valid", BAD_LINK),
        Err(e) => unavailable(&state, "unsubscribe", &e),
    }
}

/// Whether a POST body is RFC 8058's `List-Unsubscribe=One-Click`, urlencoded or as a
/// multipart/form-data field.
fn is_one_click(headers: &HeaderMap, body: &[u8]) -> bool {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if let Some(boundary) = multipart_boundary(content_type) {
        return multipart_field(body, &boundary, "List-Unsubscribe")
            .is_some_and(|v| v.trim() == "One-Click");
    }
    url::form_urlencoded::parse(body).any(|(k, v)| k == "List-Unsubscribe" && v == "One-Click")
}

/// The boundary of a `multipart/form-data` content type.
fn multipart_boundary(content_type: &str) -> Option<String> {
    let mut parts = content_type.split(';').map(str::trim);
    if !parts.next()?.eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    parts.find_map(|p| {
        let (key, value) = p.split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| value.trim().trim_matches('"').to_owned())
            .filter(|b| !b.is_empty() && b.len() <= 200)
    })
}

/// The value of the form field `name` in a multipart/form-data body.
fn multipart_field(body: &[u8], boundary: &str, name: &str) -> Option<String> {
    let body = String::from_utf8_lossy(body);
    let delimiter = format!("--{boundary}");
    for part in body.split(delimiter.as_str()).skip(1) {
        let part = part.strip_prefix("\r\n").unwrap_or(part);
        let Some((head, value)) = part.split_once("\r\n\r\n") else {
            continue;
        };
        let named = head.lines().any(|line| {
            let lower = line.to_ascii_lowercase();
            lower.starts_with("content-disposition:")
                && lower.contains("form-data")
                && line
                    .split(';')
                    .map(str::trim)
                    .any(|p| p == format!("name=\"{name}\"") || p == format!("name={name}"))
        });
        if named {
            return Some(value.strip_suffix("\r\n").unwrap_or(value).to_owned());
        }
    }
    None
}

/// The page for a failure of ours: logged with what failed, nothing revealed; its status
/// says whether to try again (503) or not (500).
fn unavailable(state: &AppState, what: &str, error: &super::Error) -> Response {
    tracing::error!(error = %error, "{what}");
    message_page(
        state,
        error.status(),
        "Unavailable",
        "Please try again in a minute.",
    )
}

/// A page template that failed to render.
fn broken_page(state: &AppState, what: &str, error: &crate::render::Error) -> Response {
    unavailable(state, what, &super::Error::Internal(error.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_click_bodies_are_recognised_urlencoded_and_multipart() {
        let form = HeaderMap::new();
        assert!(is_one_click(&form, b"List-Unsubscribe=One-Click"));
        assert!(!is_one_click(&form, b""));
        assert!(!is_one_click(&form, b"List-Unsubscribe=Two-Clicks"));
        let mut multipart = HeaderMap::new();
        multipart.insert(
            header::CONTENT_TYPE,
            "multipart/form-data; boundary=----x1".parse().unwrap(),
        );
        let body = "------x1\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\nOne-Click\r\n------x1--\r\n";
        assert!(is_one_click(&multipart, body.as_bytes()));
        let other = "------x1\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nOne-Click\r\n------x1--\r\n";
        assert!(!is_one_click(&multipart, other.as_bytes()));
    }
}
