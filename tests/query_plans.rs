//! Every store query that runs per request or per subscriber uses an index.
//!
//! The test drives the real flows (sign-up, confirm, a digest sent over SMTP on
//! loopback, one-click unsubscribe, the feeds, the archive, `/metrics`, `/healthz`,
//! looking up and removing one subscriber) through the real HTTP server, on a store
//! seeded with 10,000 subscribers and a 10,000-row ledger, and records every statement
//! sqlx runs (its `sqlx::query` events). Each one is then planned with `EXPLAIN QUERY
//! PLAN` on that store, after `ANALYZE`; a `SCAN` of a large table fails the test. The
//! schema check beside it fails on a foreign key without an index to cascade through.
//!
//! Its own test binary: the capture is a process-wide tracing subscriber.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../benches/support/smtp_sink.rs"]
mod smtp_sink;
#[allow(dead_code)]
#[path = "it/support.rs"]
mod support;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use herald::clock::Clock;
use herald::config::Secrets;
use herald::domain::{SubscriberEmail, SubscriberStatus};
use herald::pipeline::DigestWhen;
use herald::store::{ImportRow, NewIssue};
use tokio::sync::watch;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, filter::Targets};

use support::{Site, raw_db, source};

/// Tables that grow with the list or the archive. `sources`, `issues` (one row per
/// period), `settings` and `tallies` stay small.
const POSTMARK: &str = "postmark:Xr4Lp9Qm2Wz7Kc5Tb8Nv";

const LARGE: &[&str] = &[
    "mail_events",
    "webhook_seen",
    "subscribers",
    "subscriptions",
    "deliveries",
    "confirmations",
    "outbox",
    "posts",
    "related",
];

const SEEDED: usize = 10_000;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<String>>>);

#[derive(Default)]
struct Fields {
    summary: String,
    statement: String,
}

impl tracing::field::Visit for Fields {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        match field.name() {
            "summary" => self.summary = value.to_owned(),
            "db.statement" => self.statement = value.to_owned(),
            _ => {}
        }
    }

    fn record_debug(&mut self, _: &tracing::field::Field, _: &dyn std::fmt::Debug) {}
}

impl<S: tracing::Subscriber> Layer<S> for Capture {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        // sqlx logs the whole statement only when it is longer than its summary.
        let sql = if fields.statement.trim().is_empty() {
            fields.summary
        } else {
            fields.statement
        };
        self.0.lock().unwrap().push(sql.trim().to_owned());
    }
}

fn config(feed_url: &str, smtp_url: &str) -> String {
    format!(
        "{}[smtp]\nurl = \"{smtp_url}\"\ntls = \"none\"\nfrom = \"Field Notes <news@example.org>\"\nrate = 10000\n\
         bounce_address = \"bounces@example.org\"\n\n\
         [[digests]]\nname = \"weekly\"\nschedule = \"0 8 * * Mon\"\ntimezone = \"Europe/Berlin\"\n\n\
         [[digests]]\nname = \"monthly\"\nschedule = \"0 8 1 * *\"\ntimezone = \"Europe/Berlin\"\n",
        source("blog", feed_url)
    )
}

/// The first line of a mail's text part that starts with `prefix`.
async fn link_in_mail(app: &Site, to: &str, prefix: &str) -> String {
    for _ in 0..400 {
        for mail in app.sink.received().iter().rev() {
            if mail.rcpt_to != [to] {
                continue;
            }
            let text = String::from_utf8_lossy(&mail.data).replace("=\r\n", "");
            if let Some(at) = text.find(prefix) {
                let link: String = text[at..]
                    .chars()
                    .take_while(|c| !c.is_whitespace() && *c != '>' && *c != '"')
                    .collect();
                return app.local(&link);
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no mail to {to} with a link {prefix}…");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_request_and_per_subscriber_queries_use_an_index() {
    let capture = Capture::default();
    tracing_subscriber::registry()
        .with(
            capture
                .clone()
                .with_filter(Targets::new().with_target("sqlx::query", tracing::Level::TRACE)),
        )
        .init();

    let secrets = Secrets {
        signing_secret: Some("Zt6pW1qN8xK3vB7yR2mC5hJ9sD4gF0aL".into()),
        postmark_webhook_auth: Some(POSTMARK.into()),
        ..Secrets::default()
    };
    let app = Site::start(config, secrets, None).await;
    let now = app.clock.now();

    // A list of 10,000, and a monthly issue queued to all of them.
    let rows: Vec<ImportRow> = (0..SEEDED)
        .map(|i| {
            (
                SubscriberEmail::parse(&format!("reader{i}@example.net")).unwrap(),
                Some(format!("Reader {i}")),
                vec!["monthly".to_owned()],
                None,
            )
        })
        .collect();
    app.herald
        .store
        .add_subscribers(
            &rows,
            SubscriberStatus::Confirmed,
            now,
            &herald::telemetry::Progress::default(),
        )
        .await
        .unwrap();
    let monthly = NewIssue {
        digest: "monthly".into(),
        due_at: now - chrono::Duration::days(3),
        window_start: None,
        window_end: now - chrono::Duration::days(3),
        subject: "Last month".into(),
        post_ids: Vec::new(),
        skip: false,
    };
    app.herald
        .store
        .create_issue(&monthly, "example.org", now)
        .await
        .unwrap();
    let db = raw_db(&app.env).await;
    sqlx::query("ANALYZE").execute(&db).await.unwrap();
    capture.0.lock().unwrap().clear();

    // The flows, as a reader and an operator use them.
    let subscribe = format!("{}subscribe", app.base);
    let answer = app
        .post_form(&subscribe, "email=new%40example.org&name=New+Reader")
        .await;
    assert_eq!(answer.status(), 200);
    let confirm = link_in_mail(&app, "new@example.org", "http://localhost:8080/confirm/").await;
    assert_eq!(app.get(&confirm).await.status(), 200);
    assert_eq!(app.post(&confirm).await.status(), 200);
    let email = SubscriberEmail::parse("new@example.org").unwrap();
    assert_eq!(
        app.subscriber(&email).await.status,
        SubscriberStatus::Confirmed
    );

    let run = app
        .herald
        .send_digest("weekly", DigestWhen::Now, watch::channel(false).1)
        .await
        .unwrap();
    assert_eq!(run.counts.sent, 1);
    // A bounce that arrives later, read as `herald bounces read` reads it: a delay notice
    // to the VERP address, then a provider's hard bounce by webhook, then two soft
    // bounces of one seeded subscriber over two issues (the "in a row" check).
    let sent = app.sink.received();
    let verp = &sent.last().unwrap().mail_from;
    let dsn = format!(
        "From: MAILER-DAEMON@mx.example.net\nTo: {verp}\nSubject: Delivery Status Notification (Delay)\n\
         MIME-Version: 1.0\nContent-Type: multipart/report; report-type=delivery-status; boundary=b\n\n\
         --b\nContent-Type: text/plain\n\nStill trying.\n--b\nContent-Type: message/delivery-status\n\n\
         Reporting-MTA: dns; mx.example.net\n\nFinal-Recipient: rfc822; new@example.org\nAction: delayed\nStatus: 4.4.7\n--b--\n"
    );
    let handled = app
        .herald
        .handle_returned(dsn.as_bytes(), None)
        .await
        .unwrap();
    assert!(handled.processed(), "{handled:?}");
    let event = serde_json::json!({"RecordType": "Bounce", "Type": "HardBounce", "Email": "reader77@example.net", "MessageID": "pm-1", "Details": "smtp;550 5.1.1 gone"});
    let hook = app
        .client
        .post(format!("{}webhooks/events", app.base))
        .basic_auth("postmark", Some(POSTMARK.split_once(':').unwrap().1))
        .header("content-type", "application/json")
        .body(event.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(hook.status(), 200);
    let seeded = app
        .herald
        .store
        .subscriber_by_email(&SubscriberEmail::parse("reader5@example.net").unwrap())
        .await
        .unwrap()
        .unwrap();
    for issue in [run.issue.id.0 - 1, run.issue.id.0 + 5] {
        let event = herald::store::MailEvent {
            delivery: herald::store::EventDelivery::Known(
                herald::domain::verp::DeliveryRef::Issue {
                    issue,
                    subscriber: seeded.id,
                },
            ),
            subscriber: seeded.id,
            outcome: herald::store::EventOutcome::Failed,
            class: herald::store::EventClass::Soft,
            source: "dsn",
            detail: "5.2.2".into(),
        };
        app.herald.store.record_event(&event, 3, now).await.unwrap();
    }
    assert!(
        app.herald
            .store
            .note_webhook("mailgun:t0k3n", now - chrono::Duration::minutes(20), now)
            .await
            .unwrap()
    );
    let unsubscribe = link_in_mail(
        &app,
        "new@example.org",
        "http://localhost:8080/unsubscribe/",
    )
    .await;
    assert_eq!(app.get(&unsubscribe).await.status(), 200);
    let done = app
        .post_form(&unsubscribe, "List-Unsubscribe=One-Click")
        .await;
    assert_eq!(done.status(), 200);
    assert_eq!(
        app.subscriber(&email).await.status,
        SubscriberStatus::Unsubscribed
    );
    for path in [
        "",
        "feed.xml",
        "atom.xml",
        "feed.json",
        "metrics",
        "healthz",
        "archive",
        "archive.xml",
        &format!("archive/{}", run.issue.id),
    ] {
        let r = app.get(format!("{}{path}", app.base)).await;
        assert_eq!(r.status(), 200, "/{path}");
    }
    let one = SubscriberEmail::parse("reader4321@example.net").unwrap();
    assert!(
        app.herald
            .store
            .subscriber_by_email(&one)
            .await
            .unwrap()
            .is_some()
    );
    assert!(app.herald.store.remove_subscriber(&one).await.unwrap());

    let statements: BTreeSet<String> = capture.0.lock().unwrap().iter().cloned().collect();
    let planned: Vec<&String> = statements
        .iter()
        .filter(|s| {
            let head = s
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_ascii_uppercase();
            matches!(
                head.as_str(),
                "SELECT" | "INSERT" | "UPDATE" | "DELETE" | "WITH"
            )
        })
        .collect();
    // The capture saw the flows: the ledger's reads and writes, the sign-up, the removal.
    for expected in [
        "FROM deliveries d JOIN subscribers s",
        "DELETE FROM subscribers",
        "INSERT INTO confirmations",
        "UPDATE deliveries",
        "FROM tallies",
        "INSERT INTO mail_events",
        "WHERE d.subscriber_id = ?1 AND d.issue_id > ?2",
        "DELETE FROM webhook_seen",
        "FROM event_tallies",
        "json_array_length(post_ids) FROM issues",
    ] {
        assert!(
            planned.iter().any(|s| s.contains(expected)),
            "no statement with {expected:?} was captured: {planned:#?}"
        );
    }

    let mut scans = Vec::new();
    for sql in &planned {
        let plan = plan_of(&db, sql).await;
        for table in full_scans(sql, &plan) {
            scans.push(format!("{table}: {sql}\n  plan: {}", plan.join(" | ")));
        }
    }
    assert!(
        scans.is_empty(),
        "{} of {} statements scan a large table:\n{}",
        scans.len(),
        planned.len(),
        scans.join("\n\n")
    );

    // The check itself fails on a scan: a lookup by a column without an index.
    let bad = "SELECT subscriber_id FROM deliveries WHERE message_id = ?1";
    assert_eq!(
        full_scans(bad, &plan_of(&db, bad).await),
        vec!["deliveries"]
    );
    let bad = "SELECT count(*) FROM subscribers s WHERE s.name = ?1";
    assert_eq!(
        full_scans(bad, &plan_of(&db, bad).await),
        vec!["subscribers"]
    );
}

#[tokio::test]
async fn every_foreign_key_has_an_index_to_cascade_through() {
    let env = support::TestEnv::new("");
    let clock = support::clock();
    let herald = env.herald(&clock).await;
    let db = raw_db(&env).await;
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_sqlx%'",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    let mut checked = 0;
    let mut missing = Vec::new();
    for table in &tables {
        let keys: Vec<(i64, i64, String, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT id, seq, \"table\", \"from\" FROM pragma_foreign_key_list('{table}')"
        )))
        .fetch_all(&db)
        .await
        .unwrap();
        // Leading columns of every index (the primary key's included).
        let mut leading: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT ii.name FROM pragma_index_list('{table}') il, pragma_index_info(il.name) ii WHERE ii.seqno = 0"
        )))
        .fetch_all(&db)
        .await
        .unwrap();
        let pk: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT name FROM pragma_table_info('{table}') WHERE pk = 1"
        )))
        .fetch_optional(&db)
        .await
        .unwrap();
        leading.extend(pk);
        for (_, _, parent, column) in keys {
            checked += 1;
            if !leading.contains(&column) {
                missing.push(format!("{table}.{column} → {parent}"));
            }
        }
    }
    assert!(
        checked >= 6,
        "the schema's foreign keys were read ({checked})"
    );
    assert!(
        missing.is_empty(),
        "foreign keys without an index (a delete of the parent scans the table): {missing:?}"
    );
    drop(herald);
}

async fn plan_of(db: &sqlx::SqlitePool, sql: &str) -> Vec<String> {
    let rows: Vec<(i64, i64, i64, String)> =
        sqlx::query_as(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")))
            .fetch_all(db)
            .await
            .unwrap_or_else(|e| panic!("cannot plan {sql}: {e}"));
    rows.into_iter().map(|(.., detail)| detail).collect()
}

/// The large tables that `plan` scans in full (a table or a whole index), naming them
/// through the aliases `sql` gives them.
fn full_scans(sql: &str, plan: &[String]) -> Vec<String> {
    let aliases = aliases(sql);
    let mut out = Vec::new();
    for step in plan {
        let Some(rest) = step.strip_prefix("SCAN ") else {
            continue;
        };
        // Newest posts first: the index gives the order and the read ends at the LIMIT
        // (the landing page, the feeds, a first issue).
        if step == "SCAN p USING INDEX posts_by_date" && sql.contains("LIMIT") {
            continue;
        }
        let name = rest.split_whitespace().next().unwrap_or("");
        let table = aliases.get(name).map_or(name, String::as_str);
        if LARGE.contains(&table) && !out.iter().any(|t| t == table) {
            out.push(table.to_owned());
        }
    }
    out
}

/// Alias → table, from `FROM t a`, `JOIN t AS a`, `UPDATE t`, `INTO t`.
fn aliases(sql: &str) -> HashMap<String, String> {
    const KEYWORDS: &[&str] = &[
        "WHERE",
        "JOIN",
        "LEFT",
        "INNER",
        "CROSS",
        "ON",
        "SET",
        "GROUP",
        "ORDER",
        "LIMIT",
        "VALUES",
        "SELECT",
        "USING",
        "AND",
        "OR",
        "AS",
        "NOT",
        "INDEXED",
        "RETURNING",
        "UNION",
        "DEFAULT",
        "WINDOW",
        "HAVING",
    ];
    let words: Vec<String> = sql
        .split(|c: char| c.is_whitespace() || c == '(' || c == ')')
        .map(|w| w.trim_end_matches([',', ';']))
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect();
    let mut out = HashMap::new();
    for (i, word) in words.iter().enumerate() {
        let upper = word.to_ascii_uppercase();
        if !matches!(upper.as_str(), "FROM" | "JOIN" | "UPDATE" | "INTO") {
            continue;
        }
        let Some(table) = words.get(i + 1) else {
            continue;
        };
        out.insert(table.clone(), table.clone());
        let mut next = i + 2;
        if words
            .get(next)
            .is_some_and(|w| w.eq_ignore_ascii_case("AS"))
        {
            next += 1;
        }
        if let Some(alias) = words.get(next)
            && !KEYWORDS.contains(&alias.to_ascii_uppercase().as_str())
            && alias.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            out.insert(alias.clone(), table.clone());
        }
    }
    out
}

#[tokio::test]
async fn the_kept_counts_match_the_tables_after_every_kind_of_change() {
    let secrets = Secrets {
        signing_secret: Some("Zt6pW1qN8xK3vB7yR2mC5hJ9sD4gF0aL".into()),
        ..Secrets::default()
    };
    let app = Site::start(config, secrets, None).await;
    let store = &app.herald.store;
    let now = app.clock.now();
    let rows: Vec<ImportRow> = (0..40)
        .map(|i| {
            (
                SubscriberEmail::parse(&format!("reader{i}@example.net")).unwrap(),
                None,
                vec!["weekly".to_owned(), "monthly".to_owned()],
                (i % 10 == 9).then_some(SubscriberStatus::Unsubscribed),
            )
        })
        .collect();
    let progress = herald::telemetry::Progress::default();
    store
        .add_subscribers(&rows, SubscriberStatus::Confirmed, now, &progress)
        .await
        .unwrap();
    // Imported again: known rows go through the one-by-one path.
    store
        .add_subscribers(&rows[..5], SubscriberStatus::Confirmed, now, &progress)
        .await
        .unwrap();
    let run = app
        .herald
        .send_digest("weekly", DigestWhen::Now, watch::channel(false).1)
        .await
        .unwrap();
    assert_eq!(run.counts.sent, 36);
    let monthly = NewIssue {
        digest: "monthly".into(),
        due_at: now,
        window_start: None,
        window_end: now,
        subject: "This month".into(),
        post_ids: Vec::new(),
        skip: false,
    };
    let herald::store::IssueCreated::Created(issue, queued) = store
        .create_issue(&monthly, "example.org", now)
        .await
        .unwrap()
    else {
        panic!("a new issue");
    };
    assert_eq!(queued, 36);
    for i in [0, 1, 2] {
        let email = SubscriberEmail::parse(&format!("reader{i}@example.net")).unwrap();
        let id = store.subscriber_by_email(&email).await.unwrap().unwrap().id;
        store
            .set_subscriber_status(id, SubscriberStatus::Unsubscribed, now)
            .await
            .unwrap();
    }
    // Queued deliveries to them are closed as failed; a removal cascades.
    assert_eq!(store.skip_unsubscribed(issue.id, now).await.unwrap(), 3);
    for i in [3, 4, 9] {
        let email = SubscriberEmail::parse(&format!("reader{i}@example.net")).unwrap();
        assert!(store.remove_subscriber(&email).await.unwrap());
    }

    let db = raw_db(&app.env).await;
    let counted = |sql: &'static str| {
        let db = db.clone();
        async move {
            let rows: Vec<(String, i64)> = sqlx::query_as(sql).fetch_all(&db).await.unwrap();
            rows.into_iter()
                .map(|(s, n)| (s, u64::try_from(n).unwrap()))
                .collect::<Vec<_>>()
        }
    };
    let subscribers =
        counted("SELECT status, count(*) FROM subscribers GROUP BY status ORDER BY status").await;
    assert_eq!(store.subscriber_counts().await.unwrap(), subscribers);
    assert_eq!(
        subscribers,
        [("confirmed".to_owned(), 31), ("unsubscribed".to_owned(), 6)]
    );
    let deliveries =
        counted("SELECT status, count(*) FROM deliveries GROUP BY status ORDER BY status").await;
    let kept = store.delivery_counts().await.unwrap();
    let expect = |status: &str| {
        deliveries
            .iter()
            .find(|(s, _)| s == status)
            .map_or(0, |(_, n)| *n)
    };
    assert_eq!(
        (kept.queued, kept.sent, kept.failed, kept.deferred),
        (
            expect("queued"),
            expect("sent"),
            expect("failed"),
            expect("deferred")
        )
    );
    assert_eq!((kept.queued, kept.sent, kept.failed), (31, 34, 3));
    let posts: i64 = sqlx::query_scalar("SELECT count(*) FROM posts")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(
        store.count_posts(None).await.unwrap(),
        u64::try_from(posts).unwrap()
    );
    assert!(posts > 0);
}
