//! `POST /webhooks/events` on the real server (port 0): Mailgun's signed events and
//! Postmark's basic-auth ones, signed, unsigned, replayed and malformed; the counts in
//! `/metrics` after them.

use base64::Engine;
use herald::clock::Clock;
use herald::config::Secrets;
use herald::domain::{SubscriberEmail, SubscriberStatus};
use herald::pipeline::DigestWhen;
use hmac::{KeyInit, Mac};
use serde_json::{Value, json};

use crate::support::{Site, raw_db, source};

const SECRET: &str = "Hq4Zt8Wm2Kc7Yp3Lr9Nd5Bx1Vg6Sj0Fe";
const MAILGUN_KEY: &str = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0";
const POSTMARK_AUTH: &str = "postmark:Qm7Rz2Lk9Xw4Tb8Vn5Hc";
const METRICS: &str = "metrics-token-for-the-webhook-tests";

fn config(feed: &str, smtp: &str) -> String {
    format!(
        "{}[smtp]\nurl = \"{smtp}\"\ntls = \"none\"\nfrom = \"Field Notes <news@example.org>\"\n\
         bounce_address = \"bounces@example.org\"\nrate = 10000\n\n\
         [[digests]]\nname = \"weekly\"\nschedule = \"0 8 * * Mon\"\ntimezone = \"Europe/Berlin\"\n",
        source("blog", feed)
    )
}

async fn site(secrets: bool) -> Site {
    let secrets = Secrets {
        signing_secret: Some(SECRET.into()),
        mailgun_webhook_key: secrets.then(|| MAILGUN_KEY.into()),
        postmark_webhook_auth: secrets.then(|| POSTMARK_AUTH.into()),
        ..Secrets::default()
    };
    let site = Site::start(config, secrets, Some(METRICS)).await;
    for email in [
        "hard@example.net",
        "soft@example.net",
        "spam@example.net",
        "pm-hard@example.net",
        "pm-spam@example.net",
    ] {
        site.herald
            .store
            .add_subscriber(
                &SubscriberEmail::parse(email).unwrap(),
                None,
                &["weekly".into()],
                SubscriberStatus::Confirmed,
                site.clock.now(),
            )
            .await
            .unwrap();
    }
    site.herald
        .send_digest(
            "weekly",
            DigestWhen::Now,
            tokio::sync::watch::channel(false).1,
        )
        .await
        .unwrap();
    site
}

/// Mailgun's `signature` block for `timestamp` and `token`.
fn signed(timestamp: i64, token: &str, key: &str) -> Value {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(timestamp.to_string().as_bytes());
    mac.update(token.as_bytes());
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    json!({"timestamp": timestamp.to_string(), "token": token, "signature": hex})
}

fn mailgun_failed(
    recipient: &str,
    message_id: &str,
    severity: &str,
    code: u64,
    enhanced: &str,
    message: &str,
) -> Value {
    json!({
        "event": "failed",
        "severity": severity,
        "reason": "bounce",
        "recipient": recipient,
        "id": "CPgfbmQMTCKtHW6uIWtuVe",
        "timestamp": 1764500000.123,
        "log-level": "error",
        "delivery-status": {
            "code": code, "enhanced-code": enhanced, "message": message,
            "attempt-no": 1, "description": "", "session-seconds": 0.43
        },
        "message": {"headers": {"message-id": message_id, "to": recipient, "from": "news@example.org", "subject": "Test Site: 2 new posts"}, "size": 4120},
        "user-variables": {}
    })
}

async fn message_id(site: &Site, email: &str) -> String {
    let id = site
        .subscriber(&SubscriberEmail::parse(email).unwrap())
        .await
        .id;
    format!("herald.1.{id}@localhost")
}

async fn status(site: &Site, email: &str) -> SubscriberStatus {
    site.subscriber(&SubscriberEmail::parse(email).unwrap())
        .await
        .status
}

async fn post(site: &Site, body: String, auth: Option<&str>) -> (u16, String) {
    let mut request = site
        .client
        .post(format!("{}webhooks/events", site.base))
        .header("content-type", "application/json")
        .body(body);
    if let Some(auth) = auth {
        let encoded = base64::engine::general_purpose::STANDARD.encode(auth);
        request = request.header("authorization", format!("Basic {encoded}"));
    }
    let response = request.send().await.unwrap();
    let code = response.status().as_u16();
    (code, response.text().await.unwrap())
}

async fn events(site: &Site) -> i64 {
    let db = raw_db(&site.env).await;
    sqlx::query_scalar("SELECT count(*) FROM mail_events WHERE source IN ('mailgun', 'postmark')")
        .fetch_one(&db)
        .await
        .unwrap()
}

#[tokio::test]
async fn mailgun_events_are_applied_once_and_only_when_signed_and_fresh() {
    let site = site(true).await;
    let now = site.clock.now().timestamp();
    let hard = mailgun_failed(
        "hard@example.net",
        &message_id(&site, "hard@example.net").await,
        "permanent",
        550,
        "5.1.1",
        "5.1.1 The email account that you tried to reach does not exist.",
    );
    // Unsigned, badly signed, signed with another key: refused, nothing changes.
    for signature in [
        json!({}),
        json!({"timestamp": now.to_string(), "token": "t0k3n-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "signature": "00"}),
        signed(
            now,
            "t0k3n-bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
            "key-someone-elses-key-000000000",
        ),
    ] {
        let (code, body) = post(
            &site,
            json!({"signature": signature, "event-data": hard}).to_string(),
            None,
        )
        .await;
        assert_eq!(code, 401, "{body}");
    }
    assert_eq!(
        status(&site, "hard@example.net").await,
        SubscriberStatus::Confirmed
    );
    // An old signature (a replay from an hour ago) is refused as such.
    let old = json!({"signature": signed(now - 3600, "t0k3n-old00000000000000000000000000000000000000000", MAILGUN_KEY), "event-data": hard});
    let (code, body) = post(&site, old.to_string(), None).await;
    assert_eq!(code, 406, "{body}");
    assert_eq!(
        status(&site, "hard@example.net").await,
        SubscriberStatus::Confirmed
    );

    // Signed and fresh: applied.
    let good = json!({"signature": signed(now, "t0k3n-good000000000000000000000000000000000000000", MAILGUN_KEY), "event-data": hard});
    let (code, body) = post(&site, good.to_string(), None).await;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("now bounced"), "{body}");
    assert_eq!(
        status(&site, "hard@example.net").await,
        SubscriberStatus::Bounced
    );
    // The same request again is a replay: refused.
    let (code, _) = post(&site, good.to_string(), None).await;
    assert_eq!(code, 406);
    // The same event newly signed (a provider's retry) changes nothing more.
    let again = json!({"signature": signed(now + 5, "t0k3n-again00000000000000000000000000000000000000", MAILGUN_KEY), "event-data": hard});
    let (code, body) = post(&site, again.to_string(), None).await;
    assert_eq!(code, 200);
    assert!(body.contains("already recorded"), "{body}");
    assert_eq!(events(&site).await, 1);

    // A temporary failure counts as one soft bounce; a complaint unsubscribes.
    let soft = mailgun_failed(
        "soft@example.net",
        &message_id(&site, "soft@example.net").await,
        "temporary",
        452,
        "4.2.2",
        "4.2.2 The email account that you tried to reach is over quota.",
    );
    let (code, body) = post(&site, json!({"signature": signed(now, "t0k3n-soft000000000000000000000000000000000000000", MAILGUN_KEY), "event-data": soft}).to_string(), None).await;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("delayed soft"), "{body}");
    assert_eq!(
        status(&site, "soft@example.net").await,
        SubscriberStatus::Confirmed
    );
    let complaint = json!({
        "event": "complained", "recipient": "spam@example.net", "id": "ncV2XwymRUKbPek_MIM-Gw",
        "timestamp": 1764500100.0,
        "message": {"headers": {"message-id": message_id(&site, "spam@example.net").await}}
    });
    let (code, body) = post(&site, json!({"signature": signed(now, "t0k3n-spam000000000000000000000000000000000000000", MAILGUN_KEY), "event-data": complaint}).to_string(), None).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        status(&site, "spam@example.net").await,
        SubscriberStatus::Complained
    );

    // Events that are not bounces are acknowledged and ignored.
    let delivered = json!({"event": "delivered", "recipient": "soft@example.net"});
    let (code, body) = post(&site, json!({"signature": signed(now, "t0k3n-dlvr000000000000000000000000000000000000000", MAILGUN_KEY), "event-data": delivered}).to_string(), None).await;
    assert_eq!(
        (code, body.trim()),
        (200, "not a bounce or a complaint: ignored")
    );
    // Malformed: not JSON, neither provider's shape, no recipient.
    assert_eq!(post(&site, "{not json".into(), None).await.0, 400);
    assert_eq!(
        post(&site, json!({"event": "failed"}).to_string(), None)
            .await
            .0,
        400
    );
    let nobody = json!({"signature": signed(now, "t0k3n-nobody0000000000000000000000000000000000000", MAILGUN_KEY), "event-data": {"event": "failed", "severity": "permanent"}});
    assert_eq!(post(&site, nobody.to_string(), None).await.0, 400);
    assert_eq!(events(&site).await, 3);

    // /metrics counts them per digest, from the store.
    let metrics = site
        .client
        .get(format!("{}metrics", site.base))
        .header("authorization", format!("Bearer {METRICS}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("herald_bounces{digest=\"weekly\",class=\"hard\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("herald_bounces{digest=\"weekly\",class=\"soft\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("herald_complaints{digest=\"weekly\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn postmark_events_need_the_basic_auth_and_count_once() {
    let site = site(true).await;
    let bounce = json!({
        "RecordType": "Bounce", "ID": 4323372036854775807u64, "Type": "HardBounce", "TypeCode": 1,
        "Name": "Hard bounce", "Tag": "", "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
        "ServerID": 23, "MessageStream": "outbound",
        "Description": "The server was unable to deliver your message (ex: unknown user, mailbox not found).",
        "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
        "Email": "pm-hard@example.net", "From": "news@example.org",
        "BouncedAt": "2026-11-30T16:33:54.9070259Z", "DumpAvailable": true, "Inactive": true,
        "CanActivate": true, "Subject": "Test Site: 2 new posts", "Metadata": {}
    })
    .to_string();
    for auth in [
        None,
        Some("postmark:wrong-password-0000"),
        Some("POSTMARK:Qm7Rz2Lk9Xw4Tb8Vn5Hc"),
    ] {
        let (code, _) = post(&site, bounce.clone(), auth).await;
        assert_eq!(code, 401, "{auth:?}");
    }
    assert_eq!(
        status(&site, "pm-hard@example.net").await,
        SubscriberStatus::Confirmed
    );
    let (code, body) = post(&site, bounce.clone(), Some(POSTMARK_AUTH)).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        status(&site, "pm-hard@example.net").await,
        SubscriberStatus::Bounced
    );
    let reason = site
        .subscriber(&SubscriberEmail::parse("pm-hard@example.net").unwrap())
        .await
        .status_reason
        .unwrap();
    assert!(
        reason.contains("HardBounce") && reason.contains("5.1.1"),
        "{reason}"
    );
    // Delivered again: nothing changes.
    let (code, body) = post(&site, bounce, Some(POSTMARK_AUTH)).await;
    assert_eq!(code, 200);
    assert!(body.contains("already recorded"), "{body}");
    let complaint = json!({
        "RecordType": "SpamComplaint", "ID": 42, "Type": "SpamComplaint", "TypeCode": 512,
        "MessageID": "00000000-0000-0000-0000-000000000042", "Email": "pm-spam@example.net",
        "From": "news@example.org", "BouncedAt": "2026-11-30T17:00:00Z", "Subject": "Test Site: 2 new posts"
    });
    let (code, body) = post(&site, complaint.to_string(), Some(POSTMARK_AUTH)).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        status(&site, "pm-spam@example.net").await,
        SubscriberStatus::Complained
    );
    // A bounce that carries the bounced message (Postmark's "include content"): read;
    // a body past the webhook's limit: refused before it is read.
    let content = "Received: from mx.example.net\r\n".repeat(3000);
    let with_content = json!({"RecordType": "Bounce", "ID": 77, "Type": "SoftBounce", "Email": "soft@example.net",
        "MessageID": "00000000-0000-0000-0000-000000000077", "Details": "smtp;452 4.2.2 Mailbox full", "Content": content});
    let (code, body) = post(&site, with_content.to_string(), Some(POSTMARK_AUTH)).await;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("failed soft"), "{body}");
    let huge = json!({"RecordType": "Bounce", "Type": "HardBounce", "Email": "soft@example.net", "Content": "x".repeat(2 << 20)});
    assert_eq!(
        post(&site, huge.to_string(), Some(POSTMARK_AUTH)).await.0,
        413
    );
    assert_eq!(
        status(&site, "soft@example.net").await,
        SubscriberStatus::Confirmed
    );
    // An address that is not a subscriber: acknowledged, nothing created.
    let stranger = json!({"RecordType": "Bounce", "Type": "HardBounce", "Email": "stranger@example.net", "MessageID": "x"});
    let (code, body) = post(&site, stranger.to_string(), Some(POSTMARK_AUTH)).await;
    assert_eq!(
        (code, body.trim()),
        (200, "not a subscriber: nothing to do")
    );
    assert_eq!(events(&site).await, 3);
}

#[tokio::test]
async fn webhooks_are_refused_when_no_secret_is_set() {
    let site = site(false).await;
    let now = site.clock.now().timestamp();
    let hard = mailgun_failed("hard@example.net", "x@y", "permanent", 550, "5.1.1", "gone");
    let (code, _) = post(&site, json!({"signature": signed(now, "t0k3n-unset00000000000000000000000000000000000000", MAILGUN_KEY), "event-data": hard}).to_string(), None).await;
    assert_eq!(code, 404);
    let (code, _) = post(
        &site,
        json!({"RecordType": "Bounce", "Type": "HardBounce", "Email": "hard@example.net"})
            .to_string(),
        Some(POSTMARK_AUTH),
    )
    .await;
    assert_eq!(code, 404);
    assert_eq!(
        status(&site, "hard@example.net").await,
        SubscriberStatus::Confirmed
    );
}
