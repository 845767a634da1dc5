//! `POST /webhooks/events`: bounces and complaints reported by a sending provider.
//!
//! | provider | shape | verified by |
//! | --- | --- | --- |
//! | Mailgun | `{"signature": {timestamp, token, signature}, "event-data": {…}}` | HMAC-SHA256 of timestamp + token under `HERALD_MAILGUN_WEBHOOK_KEY`, the timestamp within [`WINDOW_SECS`], each token once |
//! | Postmark | `{"RecordType": "Bounce" \| "SpamComplaint", …}` | HTTP basic auth (`HERALD_POSTMARK_WEBHOOK_AUTH`, in the webhook URL) |
//!
//! A provider whose secret is not set is refused (404), as is a request that fails its
//! check (401) or replays a Mailgun token or an old timestamp (406: Mailgun does not
//! retry those). A verified event is applied once per (delivery, outcome); events that
//! are not bounces or complaints (delivered, opened) are acknowledged and ignored.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use hmac::{KeyInit, Mac};
use serde_json::Value;

use super::site::ProviderEvent;
use super::{AppState, constant_time_eq};
use crate::deliver::returned::classify;
use crate::deliver::{Blame, Enhanced};
use crate::domain::SubscriberEmail;
use crate::store::{EventClass, EventOutcome};

/// How far a Mailgun timestamp may be from now, either way.
pub const WINDOW_SECS: i64 = 10 * 60;

pub async fn events(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let Ok(json) = serde_json::from_slice::<Value>(&body) else {
        return refuse(StatusCode::BAD_REQUEST, "the body is not JSON").into_response();
    };
    let secrets = state.site().webhook_secrets();
    let parsed = if json.get("signature").is_some() && json.get("event-data").is_some() {
        let Some(key) = secrets.mailgun_key else {
            return refuse(
                StatusCode::NOT_FOUND,
                "Mailgun webhooks are not configured (HERALD_MAILGUN_WEBHOOK_KEY)",
            )
            .into_response();
        };
        match mailgun(&state, key, &json).await {
            Ok(event) => event,
            Err(refusal) => return refusal.into_response(),
        }
    } else if json.get("RecordType").is_some() {
        let Some(auth) = secrets.postmark_auth else {
            return refuse(
                StatusCode::NOT_FOUND,
                "Postmark webhooks are not configured (HERALD_POSTMARK_WEBHOOK_AUTH)",
            )
            .into_response();
        };
        if !basic_auth_matches(&headers, auth) {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Basic realm=\"herald webhooks\"")],
                "wrong or missing credentials\n",
            )
                .into_response();
        }
        match postmark(&json) {
            Ok(event) => event,
            Err(refusal) => return refusal.into_response(),
        }
    } else {
        return refuse(StatusCode::BAD_REQUEST, "not a Mailgun or Postmark event").into_response();
    };
    let Some(event) = parsed else {
        note_used(&state, &json).await;
        return (StatusCode::OK, "not a bounce or a complaint: ignored\n").into_response();
    };
    match state.site().provider_event(event).await {
        Ok(what) => {
            note_used(&state, &json).await;
            (StatusCode::OK, format!("{what}\n")).into_response()
        }
        Err(e) => {
            tracing::warn!(error = %e, "a webhook event could not be recorded");
            (e.status(), "try again later\n").into_response()
        }
    }
}

/// The replay key of a Mailgun token.
fn mailgun_key(token: &str) -> String {
    format!("mailgun:{}", crate::domain::shorten(token, 200))
}

/// Notes a Mailgun token as used, once its event is handled (a no-op for Postmark).
async fn note_used(state: &AppState, json: &Value) {
    let Some(token) = json["signature"]["token"].as_str() else {
        return;
    };
    let now = state.site().now();
    let forget = now - chrono::Duration::seconds(WINDOW_SECS * 2);
    if let Err(e) = state
        .site()
        .store()
        .note_webhook(&mailgun_key(token), forget, now)
        .await
    {
        tracing::warn!(error = %e, "a webhook token could not be noted");
    }
}

/// A refused request: its status and why.
type Refusal = (StatusCode, String);

fn refuse(status: StatusCode, why: &str) -> Refusal {
    (status, format!("{why}\n"))
}

/// Verifies a Mailgun event (signature, window, token once) and reads it.
async fn mailgun(
    state: &AppState,
    key: &str,
    json: &Value,
) -> Result<Option<ProviderEvent>, Refusal> {
    let signature = &json["signature"];
    let (Some(timestamp), Some(token), Some(given)) = (
        signature["timestamp"].as_str(),
        signature["token"].as_str(),
        signature["signature"].as_str(),
    ) else {
        return Err(refuse(
            StatusCode::UNAUTHORIZED,
            "the signature is incomplete",
        ));
    };
    let tag = hex_decode(given).unwrap_or_default();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(timestamp.as_bytes());
    mac.update(token.as_bytes());
    if tag.len() != 32 || mac.verify_slice(&tag).is_err() {
        return Err(refuse(
            StatusCode::UNAUTHORIZED,
            "the signature does not verify",
        ));
    }
    let now = state.site().now();
    let Ok(at) = timestamp.trim().parse::<i64>() else {
        return Err(refuse(
            StatusCode::UNAUTHORIZED,
            "the timestamp is not a number",
        ));
    };
    if (now.timestamp() - at).abs() > WINDOW_SECS {
        return Err(refuse(
            StatusCode::NOT_ACCEPTABLE,
            "the signature is too old or from the future: refused as a replay",
        ));
    }
    // Checked here, noted only once the event is recorded: a retry after a failure to
    // record it (same token) is not a replay.
    match state.site().store().webhook_seen(&mailgun_key(token)).await {
        Ok(false) => {}
        Ok(true) => {
            return Err(refuse(
                StatusCode::NOT_ACCEPTABLE,
                "this signature was used before: refused as a replay",
            ));
        }
        Err(e) => {
            tracing::warn!(error = %e, "a webhook could not be checked for replay");
            return Err(refuse(StatusCode::SERVICE_UNAVAILABLE, "try again later"));
        }
    }
    let data = &json["event-data"];
    let Some(recipient) = data["recipient"].as_str() else {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "the event names no recipient",
        ));
    };
    let Ok(recipient) = SubscriberEmail::parse(recipient) else {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "the recipient is not an address",
        ));
    };
    let message_id = data["message"]["headers"]["message-id"]
        .as_str()
        .map(str::to_owned);
    let status = &data["delivery-status"];
    let code = status["code"].as_u64().unwrap_or(0);
    let enhanced = status["enhanced-code"].as_str().unwrap_or("");
    let message = status["message"]
        .as_str()
        .or_else(|| status["description"].as_str())
        .unwrap_or("");
    let detail = crate::domain::shorten(format!("{code} {enhanced} {message}").trim(), 300);
    let (outcome, class) = match (data["event"].as_str(), data["severity"].as_str()) {
        (Some("complained"), _) => (EventOutcome::Complained, EventClass::Complaint),
        // Mailgun retries: a delay, counted only when it is about the mailbox.
        (Some("failed"), Some("temporary")) => {
            let blame = classify(
                Enhanced::parse(enhanced),
                &format!("{code} {enhanced} {message}"),
            );
            let blame = if blame == Blame::Recipient {
                Blame::Soft
            } else {
                blame
            };
            (EventOutcome::Delayed, blame.event_class())
        }
        (Some("failed"), _) => {
            // Mailgun drops mail to an address on its own bounce list: it bounced before.
            let blame = if data["reason"].as_str() == Some("suppress-bounce") {
                Blame::Recipient
            } else {
                classify(
                    Enhanced::parse(enhanced),
                    &format!("{code} {enhanced} {message}"),
                )
            };
            (EventOutcome::Failed, blame.event_class())
        }
        _ => return Ok(None),
    };
    Ok(Some(ProviderEvent {
        source: "mailgun",
        recipient,
        message_id,
        event_id: data["id"].as_str().map(str::to_owned),
        outcome,
        class,
        detail: if outcome == EventOutcome::Complained {
            "Mailgun: the recipient marked it as spam".into()
        } else {
            detail
        },
    }))
}

/// Reads a Postmark bounce or spam complaint.
fn postmark(json: &Value) -> Result<Option<ProviderEvent>, Refusal> {
    let record = json["RecordType"].as_str().unwrap_or("");
    if !matches!(record, "Bounce" | "SpamComplaint") {
        return Ok(None);
    }
    let Some(recipient) = json["Email"].as_str() else {
        return Err(refuse(StatusCode::BAD_REQUEST, "the event names no Email"));
    };
    let Ok(recipient) = SubscriberEmail::parse(recipient) else {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "the Email is not an address",
        ));
    };
    let kind = json["Type"].as_str().unwrap_or("");
    let details = json["Details"]
        .as_str()
        .or_else(|| json["Description"].as_str())
        .unwrap_or("");
    let (outcome, class) = match (record, kind) {
        ("SpamComplaint", _) | (_, "SpamComplaint") => {
            (EventOutcome::Complained, EventClass::Complaint)
        }
        (_, "HardBounce" | "BadEmailAddress") => (EventOutcome::Failed, EventClass::Hard),
        // Postmark's soft bounce: the mailbox is full or off for now.
        (_, "SoftBounce") => (EventOutcome::Failed, EventClass::Soft),
        // Delayed, or the domain's DNS failing: the way there, unless the reply says
        // it is the mailbox.
        (_, "Transient" | "DnsError") => {
            let blame = classify(None, details.trim_start_matches("smtp;"));
            let blame = if blame == Blame::Recipient {
                Blame::Soft
            } else {
                blame
            };
            // Postmark goes on trying: a delay, so that the bounce that may follow counts.
            (EventOutcome::Delayed, blame.event_class())
        }
        (_, "Blocked" | "DMARCPolicy" | "SpamNotification") => {
            (EventOutcome::Failed, EventClass::Policy)
        }
        // Auto-replies, address changes, subscribe/unsubscribe requests: not bounces.
        _ => return Ok(None),
    };
    // Postmark's own message id, unless the message kept herald's.
    let message_id = json["MessageID"].as_str().map(str::to_owned);
    let detail = crate::domain::shorten(format!("Postmark {kind}: {details}").trim(), 300);
    Ok(Some(ProviderEvent {
        source: "postmark",
        recipient,
        message_id,
        event_id: json["ID"].as_u64().map(|id| id.to_string()),
        outcome,
        class,
        detail,
    }))
}

/// Whether `Authorization: Basic …` carries exactly `user:password`.
fn basic_auth_matches(headers: &HeaderMap, expected: &str) -> bool {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .unwrap_or_default();
    constant_time_eq(&given, expected.as_bytes())
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    if !s.len().is_multiple_of(2) || s.len() > 128 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}
