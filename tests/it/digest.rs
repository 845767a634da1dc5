//! Digest emails end to end: a real SQLite file, feeds over loopback HTTP and a real SMTP
//! server on 127.0.0.1 that can misbehave.

use std::collections::HashMap;
use std::sync::Arc;

use herald::clock::{Clock, FixedClock};
use herald::config::Secrets;
use herald::domain::token::{ParsedToken, SigningKey, TokenPurpose};
use herald::domain::{
    DeliveryStatus, IssueStatus, SubscriberEmail, SubscriberId, SubscriberStatus,
};
use herald::pipeline::{DigestWhen, EnrichScope, Herald};
use mail_parser::{MessageParser, MimeHeaders};
use tokio::sync::watch;

use crate::smtp_sink::SmtpSink;
use crate::support::{FeedServer, TestEnv, clock, fixture, source};

const SECRET: &str = "kQ3v9XbT2mLz7RwP5nYc8HdF1sJg4UaE";

fn config(feed_url: &str, smtp_url: &str, extra: &str) -> String {
    format!(
        "{}[smtp]\nurl = \"{smtp_url}\"\ntls = \"none\"\nfrom = \"Field Notes <news@example.org>\"\n\
         reply_to = \"editor@example.org\"\nbounce_address = \"bounces@example.org\"\nrate = 10000\nmax_connections = 4\n\
         retry_attempts = 4\n{extra}\n\
         [[digests]]\nname = \"weekly\"\nschedule = \"0 8 * * Mon\"\ntimezone = \"Europe/Berlin\"\n",
        source("blog", feed_url)
    )
}

async fn herald_for(env: &TestEnv, clock: &FixedClock) -> Herald {
    let secrets = Secrets {
        signing_secret: Some(SECRET.into()),
        ..Secrets::default()
    };
    Herald::open_with(env.config(), Arc::new(clock.clone()), secrets)
        .await
        .unwrap()
}

async fn subscribe(herald: &Herald, emails: &[&str], clock: &FixedClock) {
    for (i, email) in emails.iter().enumerate() {
        let name = (i % 2 == 0).then(|| format!("Reader {i}"));
        let email = SubscriberEmail::parse(email).unwrap();
        herald
            .store
            .add_subscriber(
                &email,
                name.as_deref(),
                &["weekly".into()],
                SubscriberStatus::Confirmed,
                clock.now(),
            )
            .await
            .unwrap();
    }
}

fn no_stop() -> watch::Receiver<bool> {
    watch::channel(false).1
}

/// Messages the sink accepted, by recipient.
fn per_recipient(sink: &SmtpSink) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for m in sink.received() {
        for r in m.rcpt_to {
            *counts.entry(r).or_default() += 1;
        }
    }
    counts
}

async fn ready(extra: &str) -> (FeedServer, SmtpSink, TestEnv, FixedClock, Herald) {
    let feed = FeedServer::start(fixture("rss20-media.xml")).await;
    let sink = SmtpSink::start().await;
    let env = TestEnv::new(&config(&feed.url("/feed.xml"), &sink.url(), extra));
    let clock = clock();
    let herald = herald_for(&env, &clock).await;
    herald.poll_sources(None).await.unwrap();
    herald.enrich(EnrichScope::Stale).await.unwrap();
    (feed, sink, env, clock, herald)
}

#[tokio::test]
async fn each_message_carries_both_parts_every_header_and_a_personal_footer() {
    let (_feed, sink, _env, clock, herald) = ready("").await;
    subscribe(&herald, &["ana@example.org", "bob@example.org"], &clock).await;
    let run = herald
        .send_digest("weekly", DigestWhen::Now, no_stop())
        .await
        .unwrap();
    assert_eq!(run.status, IssueStatus::Sent);
    assert_eq!((run.counts.sent, run.counts.total()), (2, 2));

    let received = sink.received();
    assert_eq!(received.len(), 2);
    let key = SigningKey::new(SECRET.as_bytes());
    for m in &received {
        let msg = MessageParser::default().parse(&m.data).unwrap();
        let to = msg
            .to()
            .unwrap()
            .first()
            .unwrap()
            .address()
            .unwrap()
            .to_owned();
        let subscriber = herald
            .store
            .subscriber_by_email(&SubscriberEmail::parse(&to).unwrap())
            .await
            .unwrap()
            .unwrap();
        // The envelope sender is the bounce address with this delivery's signed token
        // (VERP): a bounce names the delivery it answers.
        let (local, domain) = m.mail_from.split_once('@').unwrap();
        assert_eq!(domain, "example.org");
        let token = local
            .strip_prefix("bounces+")
            .expect("a VERP envelope sender");
        assert!(
            local.len() <= 64
                && token
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        );
        let keys = herald::domain::token::KeyRing::new(key.clone(), vec![]);
        assert_eq!(
            herald::domain::verp::verify(&keys, token),
            Some(herald::domain::verp::DeliveryRef::Issue {
                issue: run.issue.id.0,
                subscriber: subscriber.id
            })
        );
        assert_eq!(
            msg.from().unwrap().first().unwrap().address(),
            Some("news@example.org")
        );
        assert_eq!(
            msg.reply_to().unwrap().first().unwrap().address(),
            Some("editor@example.org")
        );
        assert_eq!(msg.subject(), Some("Test Site: 2 new posts"));
        assert!(msg.date().is_some());
        assert_eq!(
            msg.message_id(),
            Some(format!("herald.{}.{}@localhost", run.issue.id, subscriber.id).as_str())
        );
        let header = |name: &str| {
            msg.header_raw(name)
                .unwrap_or_else(|| panic!("missing {name}"))
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(header("List-Id"), "\"Test Site weekly\" <weekly.localhost>");
        assert_eq!(
            header("List-Unsubscribe-Post"),
            "List-Unsubscribe=One-Click"
        );
        let unsubscribe = header("List-Unsubscribe");
        let token = unsubscribe
            .split("/unsubscribe/")
            .nth(1)
            .unwrap()
            .split('>')
            .next()
            .unwrap()
            .to_owned();
        assert!(
            unsubscribe.starts_with("<http://localhost:8080/unsubscribe/"),
            "{unsubscribe}"
        );
        assert!(
            unsubscribe.contains(&format!(
                "<mailto:bounces@example.org?subject=unsubscribe%20{token}>"
            )),
            "{unsubscribe}"
        );
        let parsed = ParsedToken::parse(&token).unwrap();
        assert_eq!(parsed.id, subscriber.id);
        assert_eq!(
            parsed.nonce.as_deref(),
            subscriber.token_nonce.as_deref(),
            "the link carries the subscriber's random nonce"
        );
        assert!(key.verify(
            &parsed,
            TokenPurpose::Unsubscribe,
            subscriber.email.as_str()
        ));

        // multipart/alternative: the text part first, then the HTML part.
        assert_eq!(msg.content_type().unwrap().c_type, "multipart");
        assert_eq!(msg.content_type().unwrap().subtype(), Some("alternative"));
        assert_eq!(msg.text_body.len(), 1);
        assert_eq!(msg.html_body.len(), 1);
        assert!(msg.text_body[0] < msg.html_body[0], "text before HTML");
        let text = msg.body_text(0).unwrap().replace("\r\n", "\n");
        let html = msg.body_html(0).unwrap().replace("\r\n", "\n");
        let greeting = if subscriber.name.is_some() {
            "Hi Reader,"
        } else {
            "Hi there,"
        };
        assert!(
            text.contains(greeting) && html.contains(greeting),
            "{greeting}"
        );
        assert!(text.contains(&format!("Unsubscribe (one click, no questions asked):\nhttp://localhost:8080/unsubscribe/{token}\n")), "{text}");
        assert!(html.contains(&format!(
            "href=\"http://localhost:8080/unsubscribe/{token}\""
        )));
        assert!(text.contains("Harbour at dawn") && html.contains("Harbour at dawn"));
        assert!(
            text.lines()
                .all(|l| l.chars().count() <= 78 || !l.contains(' ')),
            "wrapped at 78:\n{text}"
        );
        assert!(html.contains("style=\""), "CSS is inlined");
        assert!(
            html.contains("prefers-color-scheme: dark"),
            "the dark-mode rules are kept"
        );
        assert!(
            html.contains("alt=\"Harbour at dawn\""),
            "images carry alt text"
        );
    }
}

#[tokio::test]
async fn rendered_digest_matches_the_snapshots() {
    let (_feed, sink, _env, clock, herald) = ready("").await;
    subscribe(&herald, &["ana@example.org"], &clock).await;
    herald
        .send_digest("weekly", DigestWhen::Now, no_stop())
        .await
        .unwrap();
    let m = &sink.received()[0];
    let msg = MessageParser::default().parse(&m.data).unwrap();
    // The token holds the subscriber's random nonce: the rest of the page is fixed.
    insta::with_settings!({filters => vec![(r"/unsubscribe/[0-9]+\.[A-Za-z0-9_~-]+\.u\.[A-Za-z0-9_~-]+", "/unsubscribe/[token]")]}, {
        insta::assert_snapshot!(
            "digest_text",
            msg.body_text(0).unwrap().replace("\r\n", "\n")
        );
        insta::assert_snapshot!(
            "digest_html",
            msg.body_html(0).unwrap().replace("\r\n", "\n")
        );
    });
}

#[tokio::test]
async fn n_subscribers_get_n_messages_once_and_a_second_send_sends_nothing() {
    let (_feed, sink, _env, clock, herald) = ready("").await;
    let emails: Vec<String> = (0..25).map(|i| format!("reader{i}@example.org")).collect();
    subscribe(
        &herald,
        &emails.iter().map(String::as_str).collect::<Vec<_>>(),
        &clock,
    )
    .await;
    // An unconfirmed subscriber gets nothing.
    herald
        .store
        .add_subscriber(
            &SubscriberEmail::parse("pending@example.org").unwrap(),
            None,
            &["weekly".into()],
            SubscriberStatus::Pending,
            clock.now(),
        )
        .await
        .unwrap();

    // Monday 09:00 in Berlin: the posts were first seen before this week's 08:00 instant.
    clock.set(
        chrono::DateTime::parse_from_rfc3339("2026-11-30T08:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc),
    );
    let first = herald
        .send_digest("weekly", DigestWhen::Latest, no_stop())
        .await
        .unwrap();
    assert_eq!(first.issue.due_at.to_rfc3339(), "2026-11-30T07:00:00+00:00");
    assert!(first.created);
    assert_eq!(first.queued, 25);
    let counts = per_recipient(&sink);
    assert_eq!(counts.len(), 25);
    assert!(counts.values().all(|n| *n == 1));
    assert!(!counts.contains_key("pending@example.org"));

    let second = herald
        .send_digest("weekly", DigestWhen::Latest, no_stop())
        .await
        .unwrap();
    assert!(!second.created);
    assert_eq!(second.issue.id, first.issue.id, "one issue per period");
    assert_eq!(sink.accepted(), 25, "nothing new was sent");

    // A forced issue right after carries only posts seen since: none, so it is skipped.
    let forced = herald
        .send_digest("weekly", DigestWhen::Now, no_stop())
        .await
        .unwrap();
    assert_eq!(forced.status, IssueStatus::Empty);
    assert_eq!(sink.accepted(), 25);
}

#[tokio::test]
async fn a_server_refusing_connections_defers_everything_and_a_later_run_completes() {
    let (_feed, sink, _env, clock, herald) = ready("").await;
    subscribe(
        &herald,
        &["a@example.org", "b@example.org", "c@example.org"],
        &clock,
    )
    .await;
    sink.behaviour.lock().unwrap().refuse_connections =
        Some("421 4.3.2 Service not available, closing".into());
    let run = herald
        .send_digest("weekly", DigestWhen::Now, no_stop())
        .await
        .unwrap();
    assert_eq!(run.status, IssueStatus::Sending);
    assert_eq!((run.counts.deferred, run.counts.sent), (3, 0));
    assert_eq!(sink.accepted(), 0);

    // Not due yet: resuming now does nothing at all.
    sink.behaviour.lock().unwrap().refuse_connections = None;
    let connections = sink.connections();
    let early = herald.resume_sending(no_stop()).await.unwrap();
    assert!(early.is_empty());
    assert_eq!(
        sink.connections(),
        connections,
        "no connection was even opened"
    );

    clock.advance(chrono::Duration::minutes(5));
    let later = herald.resume_sending(no_stop()).await.unwrap();
    assert_eq!(later.len(), 1);
    assert_eq!(later[0].status, IssueStatus::Sent);
    assert_eq!(later[0].counts.sent, 3);
    assert!(per_recipient(&sink).values().all(|n| *n == 1));
}

#[tokio::test]
async fn greylisted_recipients_are_deferred_and_sent_on_the_next_run() {
    let (_feed, sink, _env, clock, herald) = ready("").await;
    subscribe(
        &herald,
        &["a@example.org", "grey@example.org", "c@example.org"],
        &clock,
    )
    .await;
    sink.behaviour
        .lock()
        .unwrap()
        .defer_rcpt
        .insert("grey@example.org".into(), 1);
    let run = herald
        .send_digest("weekly", DigestWhen::Now, no_stop())
        .await
        .unwrap();
    assert_eq!((run.counts.sent, run.counts.deferred), (2, 1));
    let status = delivery_status(&herald, run.issue.id.0, "grey@example.org").await;
    assert_eq!(
        status,
        (
            DeliveryStatus::Deferred,
            1,
            Some("451 4.7.1 Greylisted, try again later".to_string())
        )
    );

    clock.advance(chrono::Duration::hours(1));
    // `digest send` on an issue still sending resumes it.
    let resumed = herald
        .send_digest("weekly", DigestWhen::Latest, no_stop())
        .await
        .unwrap();
    assert_eq!(resumed.issue.id, run.issue.id);
    assert_eq!(resumed.status, IssueStatus::Sent);
    assert_eq!(per_recipient(&sink).get("grey@example.org"), Some(&1));
    assert_eq!(sink.accepted(), 3);
}

#[tokio::test]
async fn a_rejected_address_bounces_at_once_and_is_not_queued_again() {
    let (feed, sink, _env, clock, herald) = ready("").await;
    subscribe(&herald, &["a@example.org", "gone@example.org"], &clock).await;
    sink.behaviour
        .lock()
        .unwrap()
        .reject_rcpt
        .push("gone@example.org".into());
    let gone = SubscriberEmail::parse("gone@example.org").unwrap();
    let run = herald
        .send_digest("weekly", DigestWhen::Now, no_stop())
        .await
        .unwrap();
    assert_eq!((run.counts.sent, run.counts.failed), (1, 1));
    assert_eq!(run.status, IssueStatus::Sent, "a failed delivery is final");
    assert_eq!(run.report.as_ref().unwrap().bounced, 1);
    // 550 5.1.1: the address does not exist, a hard bounce (DESIGN: bounced at once).
    let subscriber = herald
        .store
        .subscriber_by_email(&gone)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(subscriber.status, SubscriberStatus::Bounced);
    assert_eq!(
        subscriber.status_reason.as_deref(),
        Some("550 5.1.1 No such user here")
    );
    // A bounced subscriber is not queued for the next issue.
    let body = String::from_utf8(fixture("rss20-media.xml")).unwrap();
    feed.state.set_body(body.replace(
        "</channel>",
        "<item><title>New 9</title><guid>new-9</guid></item></channel>",
    ));
    clock.advance(chrono::Duration::days(1));
    herald.poll_sources(None).await.unwrap();
    let run = herald
        .send_digest("weekly", DigestWhen::Now, no_stop())
        .await
        .unwrap();
    assert_eq!(run.counts.total(), 1);
}

#[tokio::test]
async fn a_connection_dropped_after_data_is_deferred_and_the_pool_recovers() {
    let (_feed, sink, _env, clock, herald) = ready("").await;
    let emails: Vec<String> = (0..8).map(|i| format!("r{i}@example.org")).collect();
    subscribe(
        &herald,
        &emails.iter().map(String::as_str).collect::<Vec<_>>(),
        &clock,
    )
    .await;
    sink.behaviour
        .lock()
        .unwrap()
        .drop_after_data
        .push("r3@example.org".into());
    let run = herald
        .send_digest("weekly", DigestWhen::Now, no_stop())
        .await
        .unwrap();
    assert_eq!(
        (run.counts.sent, run.counts.deferred),
        (7, 1),
        "only the cut-off message is deferred"
    );
    let (status, attempts, _) = delivery_status(&herald, run.issue.id.0, "r3@example.org").await;
    assert_eq!((status, attempts), (DeliveryStatus::Deferred, 1));

    clock.advance(chrono::Duration::hours(1));
    let later = herald.resume_sending(no_stop()).await.unwrap();
    assert_eq!(later[0].status, IssueStatus::Sent);
    let counts = per_recipient(&sink);
    assert_eq!(counts.len(), 8);
    assert!(counts.values().all(|n| *n == 1), "{counts:?}");
}

#[tokio::test]
async fn a_shutdown_signal_stops_new_messages_and_leaves_the_rest_queued() {
    let (_feed, sink, _env, clock, herald) = ready("").await;
    let emails: Vec<String> = (0..20).map(|i| format!("s{i}@example.org")).collect();
    subscribe(
        &herald,
        &emails.iter().map(String::as_str).collect::<Vec<_>>(),
        &clock,
    )
    .await;
    let (tx, rx) = watch::channel(true); // already shutting down
    let run = herald
        .send_digest("weekly", DigestWhen::Now, rx)
        .await
        .unwrap();
    drop(tx);
    assert!(run.report.unwrap().interrupted);
    assert_eq!(run.counts.queued, 20);
    assert_eq!(sink.accepted(), 0);
    let resumed = herald
        .send_digest("weekly", DigestWhen::Now, no_stop())
        .await
        .unwrap();
    assert_eq!(resumed.issue.id, run.issue.id);
    assert_eq!(resumed.counts.sent, 20);
}

async fn delivery_status(
    herald: &Herald,
    issue: i64,
    email: &str,
) -> (DeliveryStatus, u32, Option<String>) {
    let subscriber = herald
        .store
        .subscriber_by_email(&SubscriberEmail::parse(email).unwrap())
        .await
        .unwrap()
        .unwrap();
    herald
        .store
        .delivery(
            herald::domain::IssueId(issue),
            SubscriberId(subscriber.id.0),
        )
        .await
        .unwrap()
        .unwrap()
}

/// Writes `n` subscribers as an import file and imports them through the CLI.
async fn import_subscribers(env: &TestEnv, n: usize) {
    let mut csv = String::from("email,name,digests\n");
    for i in 0..n {
        csv.push_str(&format!("crash{i}@example.org,Reader {i},weekly\n"));
    }
    let (code, stdout, stderr) = import_csv(env, "subscribers.csv", &csv).await;
    assert_eq!(code, 0, "{stdout}{stderr}");
}

/// Writes `csv` to `name` in the test's folder and imports it, confirmed, through the CLI.
async fn import_csv(env: &TestEnv, name: &str, csv: &str) -> (i32, String, String) {
    let file = env.dir.path().join(name);
    std::fs::write(&file, csv).unwrap();
    env.run(&[
        "subscribers",
        "import",
        file.to_str().unwrap(),
        "--confirmed",
    ])
    .await
}

#[tokio::test]
async fn killing_the_sender_mid_send_loses_nothing_and_the_next_run_finishes() {
    let feed = FeedServer::start(fixture("rss20-media.xml")).await;
    let sink = SmtpSink::start().await;
    // 200 messages a second over 4 connections: the kill lands mid-send.
    let env = TestEnv::new(
        &config(&feed.url("/feed.xml"), &sink.url(), "").replace("rate = 10000", "rate = 200"),
    );
    let (code, _, stderr) = env.run(&["poll"]).await;
    assert_eq!(code, 0, "{stderr}");
    let total = 300;
    import_subscribers(&env, total).await;

    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .arg("--config")
        .arg(env.config_path())
        .args(["digest", "send", "weekly", "--force", "--no-poll"])
        .current_dir(env.dir.path())
        .env("HERALD_LOG", "warn")
        .env("HERALD_SECRET", SECRET)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while sink.accepted() < 20 {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "the sender never got going"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    // At an arbitrary moment of the send, not just as a message is accepted.
    tokio::time::sleep(std::time::Duration::from_millis(137)).await;
    child.start_kill().unwrap(); // SIGKILL: no chance to record anything more
    child.wait().await.unwrap();
    let before_restart = sink.accepted();
    assert!(
        before_restart < total,
        "the kill came too late to test anything"
    );
    let (_, status_out, _) = env.run(&["digest", "status", "weekly"]).await;
    println!(
        "after the kill: sink accepted {before_restart}; {}",
        status_out
            .lines()
            .find(|l| l.starts_with("ledger"))
            .unwrap_or("")
    );

    let (code, stdout, stderr) = env.run(&["digest", "send", "weekly", "--no-poll"]).await;
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("resumed"), "{stdout}");

    let counts = per_recipient(&sink);
    assert_eq!(counts.len(), total, "every subscriber got the issue");
    let duplicates: usize = counts.values().map(|n| n - 1).sum();
    println!(
        "crash test: killed after {before_restart} of {total} accepted; {duplicates} duplicate(s) after the restart (messages whose data reached the server before the kill but whose 250 was never recorded)"
    );
    // Only a message accepted but not yet recorded at the kill can be sent twice: at most
    // one per connection in flight.
    assert!(duplicates <= 4, "{duplicates} duplicates");
    let (_, stdout, _) = env.run(&["digest", "status", "weekly"]).await;
    assert!(
        stdout.contains(&format!(
            "ledger: {total} sent, 0 queued, 0 deferred, 0 failed"
        )),
        "{stdout}"
    );
}

#[tokio::test]
async fn the_default_config_writes_one_readable_eml_per_subscriber() {
    let env = TestEnv::new("");
    // The default config and what it reads, as in a fresh clone.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::copy(root.join("config/herald.toml"), env.config_path()).unwrap();
    std::fs::create_dir_all(env.dir.path().join("examples/blog")).unwrap();
    std::fs::copy(
        root.join("examples/blog/feed.xml"),
        env.dir.path().join("examples/blog/feed.xml"),
    )
    .unwrap();
    let (code, stdout, stderr) = env
        .run(&["subscribers", "add", "you@example.org", "--confirmed"])
        .await;
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("added: you@example.org (confirmed; digests: weekly)"),
        "{stdout}"
    );
    let (code, stdout, stderr) = env.run(&["digest", "send", "weekly", "--force"]).await;
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("this run: 1 sent"), "{stdout}");

    let outbox: Vec<_> = std::fs::read_dir(env.dir.path().join("outbox"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(outbox.len(), 1, "{outbox:?}");
    let bytes = std::fs::read(&outbox[0]).unwrap();
    let msg = MessageParser::default().parse(&bytes).unwrap();
    assert_eq!(msg.subject(), Some("Field Notes: 14 new posts"));
    assert_eq!(
        msg.to().unwrap().first().unwrap().address(),
        Some("you@example.org")
    );
    let text = msg.body_text(0).unwrap();
    let html = msg.body_html(0).unwrap();
    assert!(text.contains("Keeping a sourdough starter alive through a busy week"));
    assert!(
        html.contains("https://blog.example.org/images/starter-jar.jpg"),
        "the lead image"
    );
    assert!(msg.header_raw("List-Unsubscribe-Post").is_some());

    // Again for the same period: nothing new is written.
    let (_, stdout, _) = env
        .run(&["digest", "send", "weekly", "--force", "--no-poll"])
        .await;
    assert!(
        stdout.contains("nothing new since the last issue"),
        "{stdout}"
    );
    assert_eq!(
        std::fs::read_dir(env.dir.path().join("outbox"))
            .unwrap()
            .count(),
        1
    );
}

#[tokio::test]
async fn subscribers_can_be_added_imported_listed_exported_and_removed() {
    let env = TestEnv::new(
        "[[digests]]\nname = \"weekly\"\nschedule = \"0 8 * * Mon\"\n\n[[digests]]\nname = \"daily\"\nschedule = \"0 7 * * *\"\n",
    );
    let (code, stdout, _) = env
        .run(&[
            "subscribers",
            "add",
            "Ana@Example.org",
            "--name",
            "Ana",
            "--digest",
            "weekly",
        ])
        .await;
    assert_eq!(code, 0);
    assert!(
        stdout.contains("added: Ana@Example.org (pending; digests: weekly)"),
        "{stdout}"
    );
    let (_, stdout, _) = env
        .run(&["subscribers", "add", "ana@example.org", "--confirmed"])
        .await;
    assert!(
        stdout.contains("updated: Ana@Example.org (confirmed; digests: daily, weekly)"),
        "case-insensitive: {stdout}"
    );
    let (code, _, stderr) = env.run(&["subscribers", "add", "not an address"]).await;
    assert_eq!(code, 1);
    assert!(
        stderr.contains("\"not an address\" is not a valid email address"),
        "{stderr}"
    );

    let list = "email,name,digests\nbo@example.org,\"Bo, Jr.\",daily\nbad-address,X,\ncy@example.org,,monthly\ndee@example.org,Dee,\n";
    let (code, stdout, stderr) = import_csv(&env, "list.csv", list).await;
    assert_eq!(code, 2, "some rows were rejected");
    assert!(
        stdout.contains("2 added, 0 updated, 0 unchanged, 2 rejected"),
        "{stdout}"
    );
    assert!(
        stderr.contains("list.csv:3: \"bad-address\" is not a valid email address"),
        "{stderr}"
    );
    assert!(
        stderr.contains("list.csv:4: no digest named \"monthly\""),
        "{stderr}"
    );
    let (_, stdout, _) = import_csv(&env, "list.csv", list).await;
    assert!(
        stdout.contains("0 added, 0 updated, 2 unchanged, 2 rejected"),
        "importing twice changes nothing: {stdout}"
    );

    let (_, stdout, _) = env.run(&["subscribers", "list", "--json"]).await;
    let list: Vec<serde_json::Value> = serde_json::from_str(&stdout).unwrap();
    assert_eq!(list.len(), 3);
    assert_eq!(list[1]["name"], "Bo, Jr.");
    assert_eq!(list[2]["digests"], serde_json::json!(["daily", "weekly"]));

    let (_, stdout, _) = env.run(&["subscribers", "export"]).await;
    assert!(stdout.starts_with("email,name,digests,status\n"));
    assert!(
        stdout.contains("bo@example.org,\"Bo, Jr.\",daily,confirmed\n"),
        "{stdout}"
    );

    // Filters: by status, by digest, a limit; the same for export; an empty listing
    // is still a JSON array.
    let (code, _, _) = env
        .run(&["subscribers", "add", "eve@example.org", "--digest", "daily"])
        .await;
    assert_eq!(code, 0);
    let ids = |stdout: &str| -> Vec<String> {
        let list: Vec<serde_json::Value> = serde_json::from_str(stdout).unwrap();
        list.iter()
            .map(|s| s["email"].as_str().unwrap().to_owned())
            .collect()
    };
    let (_, stdout, _) = env
        .run(&["subscribers", "list", "--json", "--status", "pending"])
        .await;
    assert_eq!(ids(&stdout), ["eve@example.org"]);
    let (_, stdout, _) = env
        .run(&["subscribers", "list", "--json", "--digest", "weekly"])
        .await;
    assert_eq!(ids(&stdout), ["Ana@Example.org", "dee@example.org"]);
    let (_, stdout, _) = env
        .run(&[
            "subscribers",
            "list",
            "--json",
            "--status",
            "confirmed",
            "--digest",
            "daily",
            "--limit",
            "2",
        ])
        .await;
    assert_eq!(ids(&stdout), ["Ana@Example.org", "bo@example.org"]);
    let (code, stdout, _) = env
        .run(&["subscribers", "list", "--json", "--status", "bounced"])
        .await;
    assert_eq!((code, stdout.as_str()), (0, "[]\n"));
    let (_, stdout, _) = env
        .run(&["subscribers", "export", "--status", "pending"])
        .await;
    assert_eq!(
        stdout,
        "email,name,digests,status\neve@example.org,,daily,pending\n"
    );
    let (code, _, stderr) = env.run(&["subscribers", "list", "--status", "gone"]).await;
    assert_eq!(code, 1, "usage errors exit 1: {stderr}");
    assert!(stderr.contains("no status \"gone\""), "{stderr}");
    let (code, _, stderr) = env
        .run(&["subscribers", "export", "--digest", "hourly"])
        .await;
    assert_eq!(code, 1);
    assert!(stderr.contains("no digest named \"hourly\""), "{stderr}");

    let (code, stdout, _) = env.run(&["subscribers", "remove", "BO@example.org"]).await;
    assert_eq!(code, 0);
    assert!(stdout.contains("removed"));
    let (code, _, stderr) = env.run(&["subscribers", "remove", "bo@example.org"]).await;
    assert_eq!(code, 1);
    assert!(stderr.contains("no subscriber bo@example.org"), "{stderr}");
}

#[tokio::test]
async fn preview_writes_the_next_issue_without_touching_the_ledger() {
    let (_feed, sink, env, _clock, herald) = ready("").await;
    herald.close().await;
    let out = env.dir.path().join("preview");
    let (code, stdout, stderr) = env
        .run(&[
            "digest",
            "preview",
            "weekly",
            "--out-dir",
            out.to_str().unwrap(),
        ])
        .await;
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("subject: Test Site: 2 new posts"),
        "{stdout}"
    );
    let html = std::fs::read_to_string(out.join("weekly.html")).unwrap();
    assert!(html.contains("Hi Preview,") && html.contains("Harbour at dawn"));
    assert!(
        std::fs::read_to_string(out.join("weekly.txt"))
            .unwrap()
            .contains("== Forest path ==")
    );
    assert!(out.join("weekly.eml").exists());
    // And the welcome a new subscriber would get (nothing is queued or sent).
    let welcome = std::fs::read_to_string(out.join("weekly.welcome.txt")).unwrap();
    assert!(welcome.starts_with("Welcome to Test Site"), "{welcome}");
    assert!(
        welcome.contains("- weekly: the next one on Monday"),
        "{welcome}"
    );
    assert!(welcome.contains("Harbour at dawn"), "{welcome}");
    assert!(out.join("weekly.welcome.html").exists());
    let (_, stdout, _) = env.run(&["digest", "status", "weekly"]).await;
    assert!(stdout.contains("no issue yet"), "{stdout}");
    assert_eq!(sink.accepted(), 0);

    // Once the posts have gone out, the next preview says the period would be skipped.
    let (code, stdout, stderr) = env.run(&["digest", "send", "weekly", "--force"]).await;
    assert_eq!(code, 0, "{stdout}{stderr}");
    let (code, stdout, stderr) = env
        .run(&[
            "digest",
            "preview",
            "weekly",
            "--out-dir",
            out.to_str().unwrap(),
        ])
        .await;
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("0 posts since the last issue"), "{stdout}");
    assert!(
        stdout.contains("a send now would skip this period"),
        "{stdout}"
    );
}

#[tokio::test]
async fn a_template_typo_is_reported_with_the_template_and_line() {
    let env = TestEnv::new(
        "[templates]\ndir = \"tpl\"\n\n[[digests]]\nname = \"weekly\"\nschedule = \"0 8 * * Mon\"\n",
    );
    let dir = env.dir.path().join("tpl");
    std::fs::create_dir_all(&dir).unwrap();
    // A misspelt variable on line 3 of an override: strict mode catches it.
    std::fs::write(
        dir.join("digest.txt.hbs"),
        "{{site.title}}\n\n{{#each posts}}{{titel}}{{/each}}\n",
    )
    .unwrap();
    let (code, _, stderr) = env.run(&["check-config"]).await;
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("digests[0] \"weekly\""), "{stderr}");
    assert!(
        stderr.contains("digest.txt") && stderr.contains("line 3") && stderr.contains("titel"),
        "{stderr}"
    );

    // A syntax error names the file and line too.
    std::fs::write(
        dir.join("digest.txt.hbs"),
        "{{site.title}}\n{{#each posts}}\n{{title}}\n",
    )
    .unwrap();
    let (code, _, stderr) = env.run(&["check-config"]).await;
    assert_eq!(code, 1);
    assert!(stderr.contains("tpl/digest.txt.hbs"), "{stderr}");
    assert!(
        stderr.contains(":4")
            || stderr.contains("line 4")
            || stderr.contains(":3")
            || stderr.contains("line 3"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_relay_refusing_our_sender_stops_the_issue_and_bounces_nobody() {
    let (_feed, sink, _env, clock, herald) = ready("").await;
    let emails: Vec<String> = (0..100).map(|i| format!("p{i}@example.org")).collect();
    subscribe(
        &herald,
        &emails.iter().map(String::as_str).collect::<Vec<_>>(),
        &clock,
    )
    .await;
    sink.behaviour.lock().unwrap().reject_sender =
        Some("550 5.7.1 Sender address rejected: not owned by you".into());
    for round in 0..3 {
        let run = herald
            .send_digest("weekly", DigestWhen::Now, no_stop())
            .await
            .unwrap();
        let report = run.report.unwrap();
        assert!(report.relay_refusing, "round {round}: {report:?}");
        // 20 in a row (+ those in flight) the first time; once the relay has refused
        // this issue wholesale, its next runs stop at the first refusal.
        let expected = if round == 0 { 20..=24 } else { 1..=5 };
        assert!(
            expected.contains(&report.failed),
            "round {round}: {report:?}"
        );
        assert_eq!(report.bounced, 0);
        clock.advance(chrono::Duration::hours(1));
    }
    let subscribers = herald.store.subscribers().await.unwrap();
    assert!(
        subscribers
            .iter()
            .all(|s| s.status == SubscriberStatus::Confirmed),
        "a policy refusal bounces nobody"
    );
    // Fixed at the relay: the next run sends everyone the issue, the refused ones too.
    sink.behaviour.lock().unwrap().reject_sender = None;
    let run = herald
        .send_digest("weekly", DigestWhen::Now, no_stop())
        .await
        .unwrap();
    assert!(!run.report.unwrap().relay_refusing);
    assert_eq!(
        (run.counts.sent, run.counts.queued, run.counts.failed),
        (100, 0, 0)
    );
    assert_eq!(sink.accepted(), 100);
}

#[tokio::test]
async fn an_import_merges_repeats_and_known_addresses() {
    let env = TestEnv::new(
        "[[digests]]\nname = \"weekly\"\nschedule = \"0 8 * * Mon\"\n\n[[digests]]\nname = \"daily\"\nschedule = \"0 7 * * *\"\n",
    );
    let (code, _, _) = env
        .run(&[
            "subscribers",
            "add",
            "known@example.org",
            "--digest",
            "daily",
        ])
        .await;
    assert_eq!(code, 0);
    let merge = "Ana@Example.org,Ana,weekly\nana@example.org,,daily\nKNOWN@example.org,Kay,weekly\nnew@example.org,,\n";
    let (code, stdout, stderr) = import_csv(&env, "merge.csv", merge).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("2 added, 2 updated, 0 unchanged, 0 rejected"),
        "{stdout}"
    );
    let (_, stdout, _) = env.run(&["subscribers", "list", "--json"]).await;
    let list: Vec<serde_json::Value> = serde_json::from_str(&stdout).unwrap();
    let by = |email: &str| {
        list.iter()
            .find(|s| s["email"].as_str().unwrap().eq_ignore_ascii_case(email))
            .unwrap()
            .clone()
    };
    assert_eq!(list.len(), 3);
    assert_eq!(
        by("ana@example.org")["digests"],
        serde_json::json!(["daily", "weekly"])
    );
    assert_eq!(by("ana@example.org")["status"], "confirmed");
    let known = by("known@example.org");
    assert_eq!(
        (known["status"].as_str(), known["name"].as_str()),
        (Some("confirmed"), Some("Kay")),
        "pending → confirmed, named"
    );
    assert_eq!(known["digests"], serde_json::json!(["daily", "weekly"]));
    assert_eq!(
        by("new@example.org")["digests"],
        serde_json::json!(["daily", "weekly"]),
        "no digests means all"
    );
}

#[tokio::test]
async fn templates_are_compiled_once_and_read_again_only_on_reload() {
    let (_feed, _sink, env, _clock, herald) = ready("").await;
    let dir = env.dir.path().join("templates");
    std::fs::create_dir_all(&dir).unwrap();
    let out = env.dir.path().join("preview");
    let preview = || async {
        herald.preview_digest("weekly", &out).await.unwrap();
        std::fs::read_to_string(out.join("weekly.txt")).unwrap()
    };
    // Written after herald started: not read until a reload (SIGHUP in the daemon).
    std::fs::write(dir.join("digest.txt.hbs"), "FIRST {{subject}}\n").unwrap();
    assert!(!preview().await.contains("FIRST"));
    herald.reload_templates().unwrap();
    assert!(preview().await.contains("FIRST Test Site"));
    // A broken one is refused and the ones loaded before stay.
    std::fs::write(dir.join("digest.txt.hbs"), "{{#if}}broken").unwrap();
    assert!(herald.reload_templates().is_err());
    assert!(preview().await.contains("FIRST"));
}

#[tokio::test]
async fn a_relay_without_starttls_is_one_clear_error_with_the_fix() {
    let feed = FeedServer::start(fixture("rss20-media.xml")).await;
    let sink = SmtpSink::start().await;
    // smtp:// means STARTTLS required; the loopback sink offers none.
    let env = TestEnv::new(&format!(
        "{}[smtp]\nurl = \"{}\"\nfrom = \"News <news@example.org>\"\n\n[[digests]]\nname = \"weekly\"\nschedule = \"0 8 * * Mon\"\n",
        source("blog", &feed.url("/feed.xml")),
        sink.url()
    ));
    for i in 0..5 {
        let (code, _, stderr) = env
            .run(&[
                "subscribers",
                "add",
                &format!("r{i}@example.org"),
                "--confirmed",
            ])
            .await;
        assert_eq!(code, 0, "{stderr}");
    }
    let (code, stdout, stderr) = env
        .run_with_env(
            &["digest", "send", "weekly", "--force"],
            &[("HERALD_LOG", "error")],
        )
        .await;
    assert_eq!(code, 2, "{stdout}{stderr}");
    let fix = "does not offer STARTTLS";
    assert_eq!(
        stderr.matches(fix).count(),
        1,
        "one ERROR, not one per message: {stderr}"
    );
    assert!(
        stderr.contains("ERROR") && stderr.contains("smtp.tls = \\\"none\\\""),
        "{stderr}"
    );
    assert!(stdout.contains("relay: the relay at 127.0.0.1"), "{stdout}");
    assert!(stdout.contains("smtps://"), "{stdout}");
    assert_eq!(sink.accepted(), 0);
    // Nothing used up: the deliveries wait, and status says what the relay said last.
    let (_, status, _) = env.run(&["digest", "status", "weekly"]).await;
    assert!(
        status.contains("last reply (deferred):") && status.contains(fix),
        "{status}"
    );
    // check-config --connect says the same, before anything is sent.
    let (code, out, _) = env.run(&["check-config", "--connect"]).await;
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("smtp: FAILED:") && out.contains(fix), "{out}");
    assert!(out.contains("source blog: ok: 2 entries"), "{out}");
}

/// A digest through a TLS-speaking relay on loopback, implicit (`smtps://`) and
/// STARTTLS, trusted through `smtp.ca_file`; without the CA, one clear error.
#[tokio::test]
async fn smtps_and_starttls_deliver_through_a_relay_trusted_by_ca_file() {
    use crate::smtp_sink::SinkTls;
    let feed = FeedServer::start(fixture("rss20-media.xml")).await;
    for mode in [SinkTls::Implicit, SinkTls::StartTls] {
        let sink = SmtpSink::start_tls(true, mode).await;
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("relay-ca.pem");
        std::fs::write(&ca, sink.ca_pem().unwrap()).unwrap();
        let tls = if mode == SinkTls::StartTls {
            "tls = \"required\"\n"
        } else {
            ""
        };
        let smtp = |ca_file: &str| {
            format!(
                "{}[smtp]\nurl = \"{}\"\n{tls}{ca_file}from = \"News <news@example.org>\"\n\n\
                 [[digests]]\nname = \"weekly\"\nschedule = \"0 8 * * Mon\"\n",
                source("blog", &feed.url("/feed.xml")),
                sink.url()
            )
        };
        // Without the CA: the relay's certificate is not trusted, and the error says how.
        let env = TestEnv::new(&smtp(""));
        let (code, _, _) = env
            .run(&["subscribers", "add", "ana@example.org", "--confirmed"])
            .await;
        assert_eq!(code, 0);
        let (code, out, _) = env.run(&["check-config", "--connect"]).await;
        assert_eq!(code, 2, "{mode:?}: {out}");
        assert!(
            out.contains("smtp: FAILED:") && out.contains("TLS handshake"),
            "{mode:?}: {out}"
        );
        assert_eq!(sink.accepted(), 0);

        // With it: delivered, encrypted all the way.
        let env = TestEnv::new(&smtp(&format!("ca_file = \"{}\"\n", ca.display())));
        for who in ["ana@example.org", "bo@example.org"] {
            let (code, _, _) = env.run(&["subscribers", "add", who, "--confirmed"]).await;
            assert_eq!(code, 0);
        }
        let (code, out, _) = env.run(&["check-config", "--connect"]).await;
        assert_eq!(code, 0, "{mode:?}: {out}");
        assert!(
            out.contains("TLS") && !out.contains("no TLS"),
            "{mode:?}: {out}"
        );
        let (code, stdout, stderr) = env.run(&["digest", "send", "weekly", "--force"]).await;
        assert_eq!(code, 0, "{mode:?}: {stdout}{stderr}");
        let mut to: Vec<String> = sink
            .received()
            .into_iter()
            .flat_map(|m| m.rcpt_to)
            .collect();
        to.sort();
        assert_eq!(to, ["ana@example.org", "bo@example.org"], "{mode:?}");
    }
}

#[tokio::test]
async fn a_ca_file_that_is_missing_or_not_pem_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let not_pem = dir.path().join("not-a-ca.pem");
    std::fs::write(&not_pem, "hello, I am a text file\n").unwrap();
    let missing = dir.path().join("missing.pem");
    let device = std::path::PathBuf::from("/dev/zero");
    for (path, expected) in [
        (&not_pem, "holds no certificate"),
        (&missing, "cannot read"),
        (&device, "not a PEM file of at most 1 MiB"),
    ] {
        let env = TestEnv::new(&format!(
            "[smtp]\nurl = \"smtps://127.0.0.1:1\"\nca_file = \"{}\"\nfrom = \"News <news@example.org>\"\n",
            path.display()
        ));
        let (code, out, err) = env.run(&["check-config"]).await;
        assert_eq!(code, 1, "{out}{err}");
        let all = format!("{out}{err}");
        assert!(
            all.contains("smtp.ca_file")
                && all.contains(expected)
                && all.contains(&path.display().to_string()),
            "{all}"
        );
    }
}
