//! `herald serve`: the real HTTP server on 127.0.0.1:0, the subscriber lifecycle through
//! it with a real SMTP server on loopback, and SIGTERM in the middle of a send.

use std::sync::Arc;
use std::time::Duration;

use chrono::TimeZone;
use herald::clock::{Clock, FixedClock};
use herald::config::Secrets;
use herald::domain::{SubscriberEmail, SubscriberStatus};

use herald::pipeline::{DigestWhen, Herald};
use mail_parser::MessageParser;
use tokio::sync::watch;

use crate::smtp_sink::SmtpSink;
use crate::support::{FeedServer, Site, TestEnv, fixture, source};

const SECRET: &str = "Zt6pW1qN8xK3vB7yR2mC5hJ9sD4gF0aL";

fn config(feed_url: &str, smtp_url: &str) -> String {
    format!(
        "{}[smtp]\nurl = \"{smtp_url}\"\ntls = \"none\"\nfrom = \"Field Notes <news@example.org>\"\nrate = 10000\n\n\
         [[digests]]\nname = \"weekly\"\nschedule = \"0 8 * * Mon\"\ntimezone = \"Europe/Berlin\"\n",
        source("blog", feed_url)
    )
}

/// A subscriber's status as stored.
async fn status_of(app: &Site, email: &SubscriberEmail) -> SubscriberStatus {
    app.subscriber(email).await.status
}

async fn start() -> Site {
    let secrets = Secrets {
        signing_secret: Some(SECRET.into()),
        ..Secrets::default()
    };
    Site::start(config, secrets, None).await
}

async fn wait_for_mail(sink: &SmtpSink, count: usize) -> Vec<crate::smtp_sink::Received> {
    for _ in 0..200 {
        let received = sink.received();
        if received.len() >= count {
            return received;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("expected {count} messages, got {}", sink.received().len());
}

#[tokio::test]
async fn feeds_are_served_with_etags_and_304s() {
    let app = start().await;
    for (path, content_type) in [
        ("feed.xml", "application/rss+xml; charset=utf-8"),
        ("atom.xml", "application/atom+xml; charset=utf-8"),
        ("feed.json", "application/feed+json; charset=utf-8"),
    ] {
        let url = format!("{}{path}", app.base);
        let first = app.get(&url).await;
        assert_eq!(first.status(), 200);
        let h = first.headers().clone();
        assert_eq!(h["content-type"], content_type);
        let etag = h["etag"].to_str().unwrap().to_owned();
        assert!(
            etag.starts_with('"') && !etag.starts_with("W/"),
            "a strong ETag: {etag}"
        );
        assert_eq!(h["cache-control"], "public, max-age=3600");
        assert!(
            h["link"]
                .to_str()
                .unwrap()
                .contains(&format!("<http://localhost:8080/{path}>; rel=\"self\""))
        );
        let last_modified = h["last-modified"].to_str().unwrap().to_owned();
        assert!(!first.bytes().await.unwrap().is_empty());
        let conditional = |name: &str, value: &str| app.client.get(&url).header(name, value).send();

        let again = conditional("If-None-Match", &etag).await.unwrap();
        assert_eq!(again.status(), 304);
        assert_eq!(again.headers()["etag"].to_str().unwrap(), etag);
        assert!(again.bytes().await.unwrap().is_empty(), "304 has no body");

        let by_date = conditional("If-Modified-Since", &last_modified)
            .await
            .unwrap();
        assert_eq!(by_date.status(), 304);
        let stale = conditional("If-None-Match", "\"something-else\"")
            .await
            .unwrap();
        assert_eq!(stale.status(), 200);
    }
}

#[tokio::test]
async fn subscribe_confirm_receive_and_unsubscribe_in_one_click() {
    let app = start().await;
    let form = |email: &str| format!("email={}&name=New+Reader", email.replace('@', "%40"));

    // Sign up: a confirmation email reaches the SMTP server.
    let answer = app
        .post_form(&format!("{}subscribe", app.base), &form("new@example.org"))
        .await;
    assert_eq!(answer.status(), 200);
    let first_page = answer.text().await.unwrap();
    assert!(first_page.contains("Almost there"));
    let mail = wait_for_mail(&app.sink, 1).await;
    assert_eq!(mail[0].rcpt_to, vec!["new@example.org"]);
    let msg = MessageParser::default().parse(&mail[0].data).unwrap();
    assert_eq!(
        msg.subject(),
        Some("Confirm your subscription to Test Site")
    );
    let text = msg.body_text(0).unwrap().replace("\r\n", "\n");
    let confirm = text
        .lines()
        .find(|l| l.starts_with("http://localhost:8080/confirm/"))
        .unwrap()
        .to_owned();
    let email = SubscriberEmail::parse("new@example.org").unwrap();
    assert_eq!(status_of(&app, &email).await, SubscriberStatus::Pending);

    // The same answer, byte for byte, for an address already known (no enumeration).
    let again = app
        .post_form(&format!("{}subscribe", app.base), &form("new@example.org"))
        .await;
    assert_eq!(again.text().await.unwrap(), first_page);
    let unknown = app
        .post_form(
            &format!("{}subscribe", app.base),
            &form("other@example.org"),
        )
        .await;
    assert_eq!(unknown.text().await.unwrap(), first_page);

    // Confirm: GET (what a mail scanner does) shows a button and changes nothing; the
    // button's POST confirms.
    let page = app.get(app.local(&confirm)).await;
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("<form method=\"post\""));
    assert_eq!(status_of(&app, &email).await, SubscriberStatus::Pending);
    let confirmed = app.post(app.local(&confirm)).await;
    assert_eq!(confirmed.status(), 200);
    assert!(
        confirmed
            .text()
            .await
            .unwrap()
            .contains("You are subscribed")
    );
    assert_eq!(status_of(&app, &email).await, SubscriberStatus::Confirmed);

    // The next digest reaches the new subscriber.
    let before = app.sink.received().len();
    let run = app
        .herald
        .send_digest("weekly", DigestWhen::Now, watch::channel(false).1)
        .await
        .unwrap();
    assert_eq!(run.counts.sent, 1);
    let digest = app
        .sink
        .received()
        .into_iter()
        .skip(before)
        // (a second confirmation email, sent in the background, may land here too)
        .find(|m| {
            m.rcpt_to == ["new@example.org"]
                && String::from_utf8_lossy(&m.data).contains("List-Unsubscribe:")
        })
        .expect("the digest");
    let msg = MessageParser::default().parse(&digest.data).unwrap();
    let list_unsubscribe = msg.header_raw("List-Unsubscribe").unwrap().to_owned();
    let https = list_unsubscribe
        .split('<')
        .nth(1)
        .unwrap()
        .split('>')
        .next()
        .unwrap()
        .to_owned();

    // The archive shows the issue without anyone's personal data.
    let archive = app
        .get(format!("{}archive/{}", app.base, run.issue.id))
        .await;
    assert_eq!(archive.status(), 200);
    let archive = archive.text().await.unwrap();
    assert!(archive.contains("Harbour at dawn"));
    assert!(
        !archive.contains("new@example.org")
            && !archive.contains("New Reader")
            && !archive.contains("/unsubscribe/")
    );

    // GET shows a button and changes nothing; the one-click POST unsubscribes, twice is fine.
    let page = app.get(app.local(&https)).await;
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("<form method=\"post\""));
    assert_eq!(status_of(&app, &email).await, SubscriberStatus::Confirmed);
    for _ in 0..2 {
        let done = app
            .post_form(&app.local(&https), "List-Unsubscribe=One-Click")
            .await;
        assert_eq!(done.status(), 200);
        assert!(done.text().await.unwrap().contains("Unsubscribed"));
    }
    assert_eq!(
        status_of(&app, &email).await,
        SubscriberStatus::Unsubscribed
    );

    // The digest after that does not reach them.
    let body = String::from_utf8(fixture("rss20-media.xml"))
        .unwrap()
        .replace(
            "</channel>",
            "<item><title>Later</title><guid>later</guid></item></channel>",
        );
    app.feed.state.set_body(body);
    app.clock.advance(chrono::Duration::days(7));
    app.herald.poll_sources(None).await.unwrap();
    let before = app.sink.received().len();
    let run = app
        .herald
        .send_digest("weekly", DigestWhen::Now, watch::channel(false).1)
        .await
        .unwrap();
    assert_eq!(run.issue.post_ids.len(), 1);
    assert_eq!(run.counts.total(), 0);
    assert_eq!(app.sink.received().len(), before);

    // The metrics saw it all.
    let metrics = app.get_text(format!("{}metrics", app.base)).await;
    assert!(
        metrics.contains("herald_deliveries{status=\"sent\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("herald_subscribers{status=\"unsubscribed\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("herald_posts 3"), "{metrics}");
}

#[tokio::test]
async fn bad_and_tampered_tokens_get_a_plain_error_page() {
    let app = start().await;
    let email = SubscriberEmail::parse("ana@example.org").unwrap();
    let id = app
        .herald
        .store
        .add_subscriber(
            &email,
            Some("Ana"),
            &["weekly".into()],
            SubscriberStatus::Confirmed,
            app.clock.now(),
        )
        .await
        .unwrap()
        .id();
    let nonce = app
        .herald
        .store
        .subscriber(id)
        .await
        .unwrap()
        .unwrap()
        .token_nonce
        .unwrap();
    let key = herald::domain::token::SigningKey::new(SECRET.as_bytes());
    let good = key.sign(
        herald::domain::token::TokenPurpose::Unsubscribe,
        id,
        &nonce,
        email.as_str(),
    );
    let mut tampered = good.clone();
    tampered.pop();
    tampered.push(if good.ends_with('A') { 'B' } else { 'A' });
    let confirm_token_used_to_unsubscribe = key.sign(
        herald::domain::token::TokenPurpose::Confirm,
        id,
        &nonce,
        email.as_str(),
    );
    // Signed with the right key but another nonce: a forged id/nonce pair.
    let wrong_nonce = key.sign(
        herald::domain::token::TokenPurpose::Unsubscribe,
        id,
        "guessed-nonce-000",
        email.as_str(),
    );
    for path in [
        "confirm/nonsense".to_string(),
        format!("confirm/{good}"),
        format!("unsubscribe/{tampered}"),
        format!("unsubscribe/{confirm_token_used_to_unsubscribe}"),
        format!("unsubscribe/{wrong_nonce}"),
        format!("confirm/{confirm_token_used_to_unsubscribe}"),
        "unsubscribe/99.u.AAAA".to_string(),
    ] {
        for post in [false, true] {
            let url = format!("{}{path}", app.base);
            let r = if post {
                app.post_form(&url, "List-Unsubscribe=One-Click").await
            } else {
                app.get(&url).await
            };
            assert_eq!(r.status(), 400, "{path} post={post}");
            let body = r.text().await.unwrap();
            assert!(
                body.contains("Link not valid")
                    && !body.contains("ana@example.org")
                    && !body.contains("Ana"),
                "{body}"
            );
        }
    }
    assert_eq!(status_of(&app, &email).await, SubscriberStatus::Confirmed);
}

#[tokio::test]
async fn oversized_bodies_bad_input_and_floods_are_refused() {
    let app = start().await;
    let huge = format!("email=a%40example.org&name={}", "x".repeat(100_000));
    let r = app
        .post_form(&format!("{}subscribe", app.base), &huge)
        .await;
    assert_eq!(r.status(), 413);

    let json = app
        .post_json(
            &format!("{}subscribe", app.base),
            serde_json::json!({"email": "not an address"}),
        )
        .await;
    assert_eq!(json.status(), 400);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&json.text().await.unwrap()).unwrap()["ok"],
        false
    );
    let ok = app
        .post_json(
            &format!("{}subscribe", app.base),
            serde_json::json!({"email": "json@example.org", "digests": ["weekly"]}),
        )
        .await;
    assert_eq!(ok.status(), 200);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&ok.text().await.unwrap()).unwrap()["ok"],
        true
    );

    // Five sign-ups per client in ten minutes (two used above); then 429.
    let mut statuses = Vec::new();
    for i in 0..5 {
        let r = app
            .post_json(
                &format!("{}subscribe", app.base),
                serde_json::json!({"email": format!("flood{i}@example.org")}),
            )
            .await;
        statuses.push(r.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429]);

    let index = app.get_text(&app.base).await;
    assert!(
        index.contains("<h1>Test Site</h1>")
            && index.contains("action=\"http://localhost:8080/subscribe\"")
    );
    assert!(index.contains("Harbour at dawn"));
    assert_eq!(app.get(format!("{}healthz", app.base)).await.status(), 200);
    assert_eq!(
        app.get(format!("{}archive/999", app.base)).await.status(),
        404
    );
}

fn sigterm(pid: u32) {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn sigterm_mid_send_loses_nothing_and_serve_finishes_the_issue() {
    let feed = FeedServer::start(fixture("rss20-media.xml")).await;
    let sink = SmtpSink::start().await;
    let env = TestEnv::new(
        &config(&feed.url("/feed.xml"), &sink.url()).replace("rate = 10000", "rate = 100"),
    );
    let (code, _, stderr) = env.run(&["poll"]).await;
    assert_eq!(code, 0, "{stderr}");
    let total = 150;
    let mut csv = String::new();
    for i in 0..total {
        csv.push_str(&format!("term{i}@example.org,,weekly\n"));
    }
    std::fs::write(env.dir.path().join("list.csv"), csv).unwrap();
    let (code, _, stderr) = env
        .run(&["subscribers", "import", "list.csv", "--confirmed"])
        .await;
    assert_eq!(code, 0, "{stderr}");

    let herald = |args: &[&str]| {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_herald"));
        cmd.arg("--config")
            .arg(env.config_path())
            .args(args)
            .current_dir(env.dir.path())
            .env("HERALD_SECRET", SECRET)
            .env("HERALD_LOG", "info")
            .kill_on_drop(true);
        cmd.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        cmd
    };
    let sender = herald(&["digest", "send", "weekly", "--force", "--no-poll"])
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while sink.accepted() < 20 {
        assert!(
            std::time::Instant::now() < deadline,
            "the send never got going: {} accepted",
            sink.accepted()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    sigterm(sender.id().unwrap());
    let out = tokio::time::timeout(Duration::from_secs(15), sender.wait_with_output())
        .await
        .expect("stops promptly")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "interrupted: {stdout}");
    assert!(
        stdout.contains("interrupted: the rest stays queued"),
        "{stdout}"
    );
    let accepted_at_stop = sink.accepted();
    let (_, status, _) = env.run(&["digest", "status", "weekly"]).await;
    // Every message the server accepted is recorded as sent: nothing lost, nothing
    // failed, the rest still queued.
    assert!(
        status.contains(&format!(
            "ledger: {accepted_at_stop} sent, {} queued, 0 deferred, 0 failed",
            total - accepted_at_stop
        )),
        "{status}"
    );

    // The daemon's first round finishes the interrupted issue; SIGTERM then stops it.
    let serve = herald(&["serve", "--listen", "127.0.0.1:0"])
        .spawn()
        .unwrap();
    for _ in 0..600 {
        if sink.accepted() >= total {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await; // let the ledger catch the last ones
    sigterm(serve.id().unwrap());
    let out = tokio::time::timeout(Duration::from_secs(15), serve.wait_with_output())
        .await
        .expect("serve stops")
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut counts = std::collections::HashMap::new();
    for m in sink.received() {
        *counts.entry(m.rcpt_to[0].clone()).or_insert(0) += 1;
    }
    assert_eq!(counts.len(), total, "everyone got the issue");
    assert!(
        counts.values().all(|n| *n == 1),
        "exactly once: {:?}",
        counts.values().filter(|n| **n > 1).count()
    );
    let (_, status, _) = env.run(&["digest", "status", "weekly"]).await;
    assert!(
        status.contains(&format!("ledger: {total} sent, 0 queued")),
        "{status}"
    );
}

#[tokio::test]
async fn the_daemon_sends_each_digest_at_its_hour_once_and_catches_up_once() {
    let feed = FeedServer::start(fixture("rss20-media.xml")).await;
    let sink = SmtpSink::start().await;
    let env = TestEnv::new(&config(&feed.url("/feed.xml"), &sink.url()));
    // Saturday 28 November 2026, 10:00 in Berlin.
    let clock = FixedClock::new(
        chrono::DateTime::parse_from_rfc3339("2026-11-28T09:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc),
    );
    let secrets = Secrets {
        signing_secret: Some(SECRET.into()),
        ..Secrets::default()
    };
    let herald = Herald::open_with(env.config(), Arc::new(clock.clone()), secrets)
        .await
        .unwrap();
    let email = SubscriberEmail::parse("reader@example.org").unwrap();
    herald
        .store
        .add_subscriber(
            &email,
            None,
            &["weekly".into()],
            SubscriberStatus::Confirmed,
            clock.now(),
        )
        .await
        .unwrap();
    let no_stop = || watch::channel(false).1;

    // The first round polls, writes the feeds, and sends nothing: the digest is new.
    let first = herald.tick(no_stop()).await;
    assert_eq!(first.poll.new_posts(), 2);
    assert!(first.feeds_changed);
    assert!(
        first.digests.is_empty(),
        "no stale period sent on a fresh start"
    );
    assert!(env.dir.path().join("public/feed.xml").exists());

    // Monday 07:59 Berlin: not yet. 08:00: sent. A minute later: nothing more.
    let monday = |h: u32, m: u32| {
        chrono_tz::Europe::Berlin
            .with_ymd_and_hms(2026, 11, 30, h, m, 0)
            .unwrap()
            .with_timezone(&chrono::Utc)
    };
    clock.set(monday(7, 59));
    assert!(herald.tick(no_stop()).await.digests.is_empty());
    clock.set(monday(8, 0));
    let sent = herald.tick(no_stop()).await;
    assert_eq!(sent.digests.len(), 1);
    assert_eq!(sent.digests[0].issue.due_at, monday(8, 0));
    assert_eq!(sent.digests[0].counts.sent, 1);
    clock.set(monday(8, 1));
    assert!(herald.tick(no_stop()).await.digests.is_empty());
    assert_eq!(sink.accepted(), 1);

    // A new post is seen on Monday 7 December at 07:00, then the daemon is down for two
    // weeks: one digest for the latest Monday, not three.
    let body = String::from_utf8(fixture("rss20-media.xml"))
        .unwrap()
        .replace(
            "</channel>",
            "<item><title>Fresh</title><guid>fresh</guid></item></channel>",
        );
    feed.state.set_body(body);
    clock.set(monday(7, 0) + chrono::Duration::days(7));
    let seen = herald.tick(no_stop()).await;
    assert_eq!(seen.poll.new_posts(), 1);
    assert!(seen.digests.is_empty());
    clock.set(monday(8, 1) + chrono::Duration::days(21));
    let caught_up = herald.tick(no_stop()).await;
    assert_eq!(caught_up.digests.len(), 1);
    assert_eq!(caught_up.digests[0].issue.post_ids.len(), 1);
    assert_eq!(
        caught_up.digests[0].issue.due_at,
        monday(8, 0) + chrono::Duration::days(21)
    );
    assert!(herald.tick(no_stop()).await.digests.is_empty());
    assert_eq!(sink.accepted(), 2);
}
