//! Bounces, complaints and mailto unsubscribes after the send: a digest really sent over
//! SMTP to 127.0.0.1, the reports built around the headers it carried, read by the real
//! `herald bounces read` (a file, a pipe, a Maildir) into a real SQLite store.

use std::collections::HashMap;
use std::sync::Arc;

use herald::clock::{Clock, FixedClock};
use herald::config::Secrets;
use herald::domain::token::{SigningKey, TokenPurpose};
use herald::domain::{SubscriberEmail, SubscriberStatus};
use herald::pipeline::{DigestWhen, EnrichScope, Handled, Herald};
use tokio::sync::watch;

use crate::smtp_sink::SmtpSink;
use crate::support::{FeedServer, TestEnv, clock, fixture, fixtures, raw_db, source};

const SECRET: &str = "Vb7Qm2Xk9LpR4tWz8NcY3hJd6FgS1aUe";

fn config(feed_url: &str, smtp_url: &str, extra: &str) -> String {
    format!(
        "{}[smtp]\nurl = \"{smtp_url}\"\ntls = \"none\"\nfrom = \"Field Notes <news@example.org>\"\n\
         bounce_address = \"bounces@example.org\"\nrate = 10000\nmax_connections = 2\n{extra}\n\
         [[digests]]\nname = \"weekly\"\nschedule = \"0 8 * * Mon\"\ntimezone = \"Europe/Berlin\"\n",
        source("blog", feed_url)
    )
}

/// One digest as the relay received it.
#[derive(Debug, Clone)]
struct Sent {
    verp: String,
    headers: String,
    subject: String,
}

struct World {
    feed: FeedServer,
    sink: SmtpSink,
    env: TestEnv,
    clock: FixedClock,
    herald: Herald,
    posts: usize,
}

impl World {
    async fn start(emails: &[&str]) -> Self {
        Self::start_with(emails, "").await
    }

    /// [`Self::start`] with more `[smtp]` lines.
    async fn start_with(emails: &[&str], smtp: &str) -> Self {
        let feed = FeedServer::start(fixture("rss20-media.xml")).await;
        let sink = SmtpSink::start().await;
        let env = TestEnv::new(&config(&feed.url("/feed.xml"), &sink.url(), smtp));
        let clock = clock();
        let secrets = Secrets {
            signing_secret: Some(SECRET.into()),
            ..Secrets::default()
        };
        let herald = Herald::open_with(env.config(), Arc::new(clock.clone()), secrets)
            .await
            .unwrap();
        herald.poll_sources(None).await.unwrap();
        herald.enrich(EnrichScope::Stale).await.unwrap();
        for email in emails {
            herald
                .store
                .add_subscriber(
                    &SubscriberEmail::parse(email).unwrap(),
                    None,
                    &["weekly".into()],
                    SubscriberStatus::Confirmed,
                    clock.now(),
                )
                .await
                .unwrap();
        }
        Self {
            feed,
            sink,
            env,
            clock,
            herald,
            posts: 0,
        }
    }

    /// Sends the next issue (a new post first, after the first) and returns what each
    /// recipient received.
    async fn send(&mut self) -> HashMap<String, Sent> {
        if self.posts > 0 {
            let items: String = (0..self.posts)
                .map(|i| format!("<item><title>Harbour note {i}</title><guid>note-{i}</guid><description>The boats came in late on day {i}.</description></item>"))
                .collect();
            let body = String::from_utf8(fixture("rss20-media.xml"))
                .unwrap()
                .replace("</channel>", &format!("{items}</channel>"));
            self.feed.state.set_body(body);
            self.clock.advance(chrono::Duration::days(7));
            self.herald.poll_sources(None).await.unwrap();
        }
        self.posts += 1;
        let before = self.sink.received().len();
        self.herald
            .send_digest("weekly", DigestWhen::Now, watch::channel(false).1)
            .await
            .unwrap();
        let mut out = HashMap::new();
        for m in &self.sink.received()[before..] {
            let text = String::from_utf8_lossy(&m.data).replace("\r\n", "\n");
            let headers = text.split("\n\n").next().unwrap().to_owned();
            let subject = mail_parser::MessageParser::default()
                .parse(&m.data)
                .unwrap()
                .subject()
                .unwrap()
                .to_owned();
            out.insert(
                m.rcpt_to[0].clone(),
                Sent {
                    verp: m.mail_from.clone(),
                    headers,
                    subject,
                },
            );
        }
        out
    }

    async fn status(&self, email: &str) -> SubscriberStatus {
        self.subscriber(email).await.status
    }

    async fn subscriber(&self, email: &str) -> herald::domain::Subscriber {
        self.herald
            .store
            .subscriber_by_email(&SubscriberEmail::parse(email).unwrap())
            .await
            .unwrap()
            .unwrap()
    }

    /// The subscriber's unsubscribe token, as their digests carry it.
    async fn token(&self, email: &str) -> String {
        let s = self.subscriber(email).await;
        SigningKey::new(SECRET.as_bytes()).sign(
            TokenPurpose::Unsubscribe,
            s.id,
            s.token_nonce.as_deref().unwrap(),
            s.email.as_str(),
        )
    }

    /// A fixture filled in for `rcpt`'s message.
    async fn report(&self, name: &str, rcpt: &str, sent: &Sent) -> String {
        let template =
            std::fs::read_to_string(fixtures().join("bounces").join(name)).expect("fixture");
        template
            .replace("{VERP}", &sent.verp)
            .replace("{RCPT}", rcpt)
            .replace("{HEADERS}", &sent.headers)
            .replace("{SUBJECT}", &sent.subject)
            .replace("{TOKEN}", &self.token(rcpt).await)
    }

    /// `herald bounces read FILE` with the real binary.
    async fn read_file(&self, name: &str, text: &str) -> (i32, String, String) {
        let path = self.env.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        self.env
            .run_with_env(
                &["bounces", "read", path.to_str().unwrap()],
                &[("HERALD_SECRET", SECRET)],
            )
            .await
    }

    async fn events(&self, email: &str) -> i64 {
        let id = self.subscriber(email).await.id;
        let db = raw_db(&self.env).await;
        sqlx::query_scalar("SELECT count(*) FROM mail_events WHERE subscriber_id = ?1")
            .bind(id.0)
            .fetch_one(&db)
            .await
            .unwrap()
    }
}

fn held(env: &TestEnv) -> usize {
    std::fs::read_dir(env.dir.path().join("data/held-mail/new"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[tokio::test]
async fn every_report_shape_ends_in_the_right_state_exactly_once() {
    let emails = [
        "postfix@example.net",
        "gmail@example.net",
        "outlook@example.net",
        "yahoo@example.net",
        "qmail@example.net",
        "policy@example.net",
        "angry@example.net",
        "leaver@example.net",
        "reader@example.net",
        "away@example.net",
    ];
    let mut w = World::start(&emails).await;
    let sent = w.send().await;
    assert_eq!(sent.len(), emails.len());
    let cases: &[(&str, &str, SubscriberStatus, &str)] = &[
        (
            "postfix-user-unknown.eml",
            "postfix@example.net",
            SubscriberStatus::Bounced,
            "failed hard",
        ),
        (
            "gmail-no-such-account.eml",
            "gmail@example.net",
            SubscriberStatus::Bounced,
            "failed hard",
        ),
        (
            "outlook-recipient-not-found.eml",
            "outlook@example.net",
            SubscriberStatus::Bounced,
            "failed hard",
        ),
        (
            "qmail-plain-text.eml",
            "qmail@example.net",
            SubscriberStatus::Bounced,
            "failed hard",
        ),
        (
            "policy-refusal.eml",
            "policy@example.net",
            SubscriberStatus::Confirmed,
            "failed policy",
        ),
        (
            "arf-abuse.eml",
            "angry@example.net",
            SubscriberStatus::Complained,
            "now complained",
        ),
        (
            "mailto-unsubscribe.eml",
            "leaver@example.net",
            SubscriberStatus::Unsubscribed,
            "unsubscribed by mail",
        ),
    ];
    for (file, rcpt, status, said) in cases {
        let text = w.report(file, rcpt, &sent[*rcpt]).await;
        let (code, out, err) = w.read_file(file, &text).await;
        assert_eq!(code, 0, "{file}: {out}{err}");
        assert!(out.contains(said), "{file}: {out}{err}");
        assert_eq!(w.status(rcpt).await, *status, "{file}: {out}");
    }
    let reason = w
        .subscriber("postfix@example.net")
        .await
        .status_reason
        .unwrap();
    assert!(
        reason.contains("5.1.1") && reason.contains("User"),
        "{reason}"
    );
    let reason = w
        .subscriber("outlook@example.net")
        .await
        .status_reason
        .unwrap();
    assert!(reason.contains("5.1.10"), "{reason}");

    // The provider's plain-text notice, sent to the plain bounce address (no VERP): the
    // List-Unsubscribe token in the returned headers names the subscriber.
    let mut plain = sent["yahoo@example.net"].clone();
    plain.verp = "bounces@example.org".into();
    let text = w
        .report("yahoo-plain-text.eml", "yahoo@example.net", &plain)
        .await;
    let (code, out, _) = w.read_file("yahoo.eml", &text).await;
    assert_eq!(code, 0);
    assert!(out.contains("failed hard"), "{out}");
    assert_eq!(
        w.status("yahoo@example.net").await,
        SubscriberStatus::Bounced
    );

    // The same reports again change nothing and record nothing more.
    for (file, rcpt, status, _) in cases {
        let events = w.events(rcpt).await;
        let text = w.report(file, rcpt, &sent[*rcpt]).await;
        let (code, out, _) = w.read_file(file, &text).await;
        assert_eq!(code, 0);
        assert_eq!(w.status(rcpt).await, *status, "{file} twice");
        assert_eq!(w.events(rcpt).await, events, "{file} twice: {out}");
        if *file != "mailto-unsubscribe.eml" {
            assert!(out.contains("already recorded"), "{file} twice: {out}");
        }
    }
    assert_eq!(w.events("postfix@example.net").await, 1);

    // A reply and an auto-reply are left for a person, filed, and change nothing.
    assert_eq!(held(&w.env), 0);
    for (file, rcpt) in [
        ("reply.eml", "reader@example.net"),
        ("vacation.eml", "away@example.net"),
    ] {
        let text = w.report(file, rcpt, &sent[rcpt]).await;
        let (code, out, err) = w.read_file(file, &text).await;
        assert_eq!(code, 0, "{file}: {err}");
        assert!(out.contains("left for a person"), "{file}: {out}");
        assert_eq!(w.status(rcpt).await, SubscriberStatus::Confirmed, "{file}");
        assert_eq!(w.events(rcpt).await, 0);
    }
    assert_eq!(held(&w.env), 2, "both filed in held-mail/new");
    let filed = std::fs::read_dir(w.env.dir.path().join("data/held-mail/new"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect::<Vec<_>>();
    assert!(
        filed
            .iter()
            .any(|m| m.contains("the piece on the harbour was lovely"))
    );
}

#[tokio::test]
async fn forged_and_unsigned_reports_change_nothing() {
    let mut w = World::start(&["reader@example.net", "other@example.net"]).await;
    let sent = w.send().await;
    let real = &sent["reader@example.net"];
    // Two good tokens that disagree: the VERP address names one subscriber, the
    // returned List-Unsubscribe another.
    let crossed = Sent {
        verp: real.verp.clone(),
        headers: sent["other@example.net"].headers.clone(),
        subject: real.subject.clone(),
    };
    let text = w
        .report("postfix-user-unknown.eml", "reader@example.net", &crossed)
        .await;
    let (code, out, _) = w.read_file("crossed.eml", &text).await;
    assert_eq!(code, 0);
    assert!(
        out.contains("left for a person") && out.contains("different subscribers"),
        "{out}"
    );
    let token = w.token("reader@example.net").await;
    // Every signed part altered in the middle of its MAC: the VERP token and the
    // List-Unsubscribe token.
    let flip = |s: &str, from_end: usize| -> String {
        let mut chars: Vec<char> = s.chars().collect();
        let at = chars.len() - from_end;
        chars[at] = if chars[at] == 'q' { 'r' } else { 'q' };
        chars.into_iter().collect()
    };
    let (local, domain) = real.verp.split_once('@').unwrap();
    let forged_local = flip(local, 5);
    let forged_token = flip(&token, 10);
    let forged = Sent {
        verp: format!("{forged_local}@{domain}"),
        headers: real.headers.replace(&token, &forged_token),
        subject: real.subject.clone(),
    };
    // And a bounce that names only the address: no token anywhere.
    let unsigned = Sent {
        verp: "bounces@example.org".into(),
        headers: real
            .headers
            .lines()
            .filter(|l| !l.contains(&token) && !l.starts_with("List-Unsubscribe"))
            .collect::<Vec<_>>()
            .join("\n"),
        subject: real.subject.clone(),
    };
    for (what, sent) in [("forged", &forged), ("unsigned", &unsigned)] {
        for file in [
            "postfix-user-unknown.eml",
            "arf-abuse.eml",
            "gmail-no-such-account.eml",
        ] {
            let text = w.report(file, "reader@example.net", sent).await;
            let text = text.replace(&token, &forged_token);
            let (code, out, err) = w.read_file(file, &text).await;
            assert_eq!(code, 0, "{what} {file}: {err}");
            assert!(out.contains("left for a person"), "{what} {file}: {out}");
            assert_eq!(
                w.status("reader@example.net").await,
                SubscriberStatus::Confirmed,
                "{what} {file}"
            );
        }
    }
    // A mailto unsubscribe with a token herald did not sign.
    let text = format!(
        "From: reader@example.net\nTo: bounces@example.org\nSubject: unsubscribe {forged_token}\n\nunsubscribe\n"
    );
    let (code, out, _) = w.read_file("unsub.eml", &text).await;
    assert_eq!(code, 0);
    assert!(out.contains("left for a person"), "{out}");
    assert_eq!(w.events("reader@example.net").await, 0);
    assert_eq!(
        w.status("reader@example.net").await,
        SubscriberStatus::Confirmed
    );
    assert_eq!(
        w.status("other@example.net").await,
        SubscriberStatus::Confirmed
    );
}

#[tokio::test]
async fn soft_bounces_count_once_per_delivery_and_bounce_after_three_in_a_row() {
    let mut w = World::start(&[
        "full@example.net",
        "sometimes@example.net",
        "fine@example.net",
        "down@example.net",
    ])
    .await;
    let read = |w: &World, text: String| {
        let herald = w.herald.clone();
        async move { herald.handle_returned(text.as_bytes(), None).await.unwrap() }
    };
    for round in 1..=3 {
        let sent = w.send().await;
        if round == 1 {
            // A delay and then the failure of the same delivery: one soft bounce.
            let delayed = w
                .report(
                    "exim-delayed.eml",
                    "full@example.net",
                    &sent["full@example.net"],
                )
                .await;
            let handled = read(&w, delayed).await;
            assert!(
                matches!(&handled, Handled::Applied { what } if what.contains("delayed soft")),
                "{handled:?}"
            );
        }
        let full = w
            .report(
                "exim-mailbox-full.eml",
                "full@example.net",
                &sent["full@example.net"],
            )
            .await;
        let handled = read(&w, full.clone()).await;
        assert!(handled.processed(), "{handled:?}");
        // Read twice: still one.
        assert!(matches!(read(&w, full).await, Handled::Duplicate { .. }));
        let expected = if round < 3 {
            SubscriberStatus::Confirmed
        } else {
            SubscriberStatus::Bounced
        };
        assert_eq!(
            w.status("full@example.net").await,
            expected,
            "round {round}"
        );
        // A remote that is down delays every issue (4.4.7): the way there, not the
        // mailbox, so it never counts.
        let down = w
            .report(
                "exim-delayed.eml",
                "down@example.net",
                &sent["down@example.net"],
            )
            .await
            .replace("4.2.2", "4.4.7")
            .replace(
                "452 4.4.7 The email account that you tried to reach is over quota",
                "421 4.4.7 Connection timed out",
            );
        let handled = read(&w, down).await;
        assert!(
            matches!(&handled, Handled::Applied { what } if what.contains("delayed relay")),
            "{handled:?}"
        );
        // The other one soft-bounces in rounds 1 and 3 only: round 2 reached them.
        if round != 2 {
            let text = w
                .report(
                    "exim-mailbox-full.eml",
                    "sometimes@example.net",
                    &sent["sometimes@example.net"],
                )
                .await;
            read(&w, text).await;
        }
    }
    let reason = w
        .subscriber("full@example.net")
        .await
        .status_reason
        .unwrap();
    assert!(
        reason.starts_with("3 soft bounces in a row") && reason.contains("5.2.2"),
        "{reason}"
    );
    assert_eq!(
        w.status("sometimes@example.net").await,
        SubscriberStatus::Confirmed
    );
    assert_eq!(
        w.status("fine@example.net").await,
        SubscriberStatus::Confirmed
    );
    assert_eq!(
        w.status("down@example.net").await,
        SubscriberStatus::Confirmed
    );
    assert_eq!(
        w.events("down@example.net").await,
        3,
        "recorded, never counted"
    );
    // Bounced: the next issue does not go to them.
    let sent = w.send().await;
    assert!(!sent.contains_key("full@example.net"));
    assert!(sent.contains_key("sometimes@example.net"));
}

#[tokio::test]
async fn a_maildir_is_read_and_processed_mail_is_filed_in_cur() {
    let mut w = World::start(&[
        "gone@example.net",
        "reader@example.net",
        "angry@example.net",
    ])
    .await;
    let sent = w.send().await;
    let maildir = w.env.dir.path().join("Maildir");
    for sub in ["new", "cur", "tmp"] {
        std::fs::create_dir_all(maildir.join(sub)).unwrap();
    }
    for (name, file, rcpt) in [
        (
            "1764486072.M1P1.mx",
            "postfix-user-unknown.eml",
            "gone@example.net",
        ),
        ("1764486073.M2P1.mx", "reply.eml", "reader@example.net"),
        ("1764486074.M3P1.mx", "arf-abuse.eml", "angry@example.net"),
    ] {
        let text = w.report(file, rcpt, &sent[rcpt]).await;
        std::fs::write(maildir.join("new").join(name), text).unwrap();
    }
    let (code, out, err) = w
        .env
        .run_with_env(
            &["bounces", "read", "--maildir", maildir.to_str().unwrap()],
            &[("HERALD_SECRET", SECRET)],
        )
        .await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("2 processed, 1 left for a person"), "{out}");
    let names = |sub: &str| -> Vec<String> {
        let mut n: Vec<String> = std::fs::read_dir(maildir.join(sub))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        n.sort();
        n
    };
    assert_eq!(names("new"), vec!["1764486073.M2P1.mx"]);
    assert_eq!(
        names("cur"),
        vec!["1764486072.M1P1.mx:2,S", "1764486074.M3P1.mx:2,S"]
    );
    assert_eq!(
        w.status("gone@example.net").await,
        SubscriberStatus::Bounced
    );
    assert_eq!(
        w.status("angry@example.net").await,
        SubscriberStatus::Complained
    );
    assert_eq!(
        w.status("reader@example.net").await,
        SubscriberStatus::Confirmed
    );
    // Read again: nothing new to process; the reply is still there for a person.
    let (code, out, _) = w
        .env
        .run_with_env(
            &["bounces", "read", "--maildir", maildir.to_str().unwrap()],
            &[("HERALD_SECRET", SECRET)],
        )
        .await;
    assert_eq!(code, 0);
    assert!(out.contains("0 processed, 1 left for a person"), "{out}");
}

#[tokio::test]
async fn a_pipe_whose_store_cannot_be_used_asks_the_mta_to_retry() {
    let env = TestEnv::new("");
    let text = std::fs::read_to_string(env.config_path()).unwrap().replace(
        "sqlite://data/herald.db",
        "sqlite:///proc/herald-cannot-write-here/h.db",
    );
    std::fs::write(env.config_path(), text).unwrap();
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .args([
            "--config",
            env.config_path().to_str().unwrap(),
            "bounces",
            "read",
            "-",
        ])
        .current_dir(env.dir.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = output;
    {
        use tokio::io::AsyncWriteExt;
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(b"From: MAILER-DAEMON@x.example\nSubject: failure notice\n\n550 5.1.1\n")
            .await
            .unwrap();
    }
    let out = child.wait_with_output().await.unwrap();
    assert_eq!(
        out.status.code(),
        Some(75),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A config the pipe cannot read: the mail waits too.
    std::fs::write(env.config_path(), "[site\n").unwrap();
    let (code, _, err) = env.run(&["bounces", "read", "/dev/null"]).await;
    assert_eq!(code, 75, "{err}");
}

#[tokio::test]
async fn bounced_and_complained_addresses_are_suppressed_until_the_operator_says_so() {
    let mut w = World::start(&["gone@example.net", "angry@example.net"]).await;
    let sent = w.send().await;
    for (file, rcpt) in [
        ("postfix-user-unknown.eml", "gone@example.net"),
        ("arf-abuse.eml", "angry@example.net"),
    ] {
        let text = w.report(file, rcpt, &sent[rcpt]).await;
        assert!(
            w.herald
                .handle_returned(text.as_bytes(), None)
                .await
                .unwrap()
                .processed()
        );
    }
    let run = |args: Vec<&'static str>| {
        let env = &w.env;
        async move { env.run_with_env(&args, &[("HERALD_SECRET", SECRET)]).await }
    };
    // Adding or importing them again is refused, saying why.
    let (code, _, err) = run(vec![
        "subscribers",
        "add",
        "gone@example.net",
        "--confirmed",
    ])
    .await;
    assert_eq!(code, 1);
    assert!(
        err.contains("bounced") && err.contains("5.1.1") && err.contains("--unsuppress"),
        "{err}"
    );
    std::fs::write(w.env.dir.path().join("again.csv"), "email,name,digests\ngone@example.net,,weekly\nangry@example.net,,weekly\nnew@example.net,,weekly\n").unwrap();
    let (code, out, err) = run(vec!["subscribers", "import", "again.csv", "--confirmed"]).await;
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        out.contains("1 added") && out.contains("2 suppressed"),
        "{out}"
    );
    assert_eq!(
        w.status("gone@example.net").await,
        SubscriberStatus::Bounced
    );
    assert_eq!(
        w.status("angry@example.net").await,
        SubscriberStatus::Complained
    );
    // The subscribe form sends them nothing.
    for email in ["gone@example.net", "angry@example.net"] {
        let outcome = w
            .herald
            .sign_up(&SubscriberEmail::parse(email).unwrap(), None, &[])
            .await
            .unwrap();
        assert_eq!(outcome, herald::pipeline::SignUp::Bounced, "{email}");
    }
    // Listed by status, with the reason.
    let (code, out, _) = run(vec!["subscribers", "list", "--status", "complained"]).await;
    assert_eq!(code, 0);
    assert!(
        out.contains("angry@example.net") && out.contains("complaint: ARF feedback report (abuse)"),
        "{out}"
    );
    assert!(!out.contains("gone@example.net"));
    let (_, out, _) = run(vec!["subscribers", "list", "--status", "bounced"]).await;
    assert!(
        out.contains("gone@example.net") && out.contains("5.1.1"),
        "{out}"
    );
    // The operator's explicit word re-adds one.
    let (code, out, err) = run(vec![
        "subscribers",
        "add",
        "gone@example.net",
        "--confirmed",
        "--unsuppress",
    ])
    .await;
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        w.status("gone@example.net").await,
        SubscriberStatus::Confirmed
    );
    assert!(
        w.subscriber("gone@example.net")
            .await
            .status_reason
            .is_none()
    );
}

#[tokio::test]
async fn a_relay_that_defers_everyone_soft_bounces_nobody() {
    // Greylisting (451 4.7.1) for every recipient, with one attempt per issue: each
    // delivery fails for good, but about the relay's policy, not the mailbox.
    let emails = ["a@example.net", "b@example.net", "full@example.net"];
    let mut w = World::start_with(&emails, "retry_attempts = 1").await;
    {
        let mut b = w.sink.behaviour.lock().unwrap();
        for e in ["a@example.net", "b@example.net"] {
            b.defer_rcpt.insert(e.into(), 1000);
        }
    }
    for round in 0..4 {
        w.send().await;
        for e in ["a@example.net", "b@example.net"] {
            assert_eq!(
                w.status(e).await,
                SubscriberStatus::Confirmed,
                "round {round}"
            );
        }
    }
    assert_eq!(w.events("a@example.net").await, 0);
}

#[tokio::test]
async fn a_pipe_without_the_secret_waits_instead_of_filing_everything() {
    let mut w = World::start(&["gone@example.net"]).await;
    let sent = w.send().await;
    let text = w
        .report(
            "postfix-user-unknown.eml",
            "gone@example.net",
            &sent["gone@example.net"],
        )
        .await;
    let path = w.env.dir.path().join("dsn.eml");
    std::fs::write(&path, &text).unwrap();
    // An MTA's pipe has no environment: no HERALD_SECRET, and none generated before.
    let (code, _, err) = w
        .env
        .run(&["bounces", "read", path.to_str().unwrap()])
        .await;
    assert_eq!(code, 75, "{err}");
    assert!(err.contains("--secret-file"), "{err}");
    assert_eq!(held(&w.env), 0, "nothing filed under a made-up secret");
    assert_eq!(
        w.status("gone@example.net").await,
        SubscriberStatus::Confirmed
    );
    let secret = w.env.dir.path().join("herald.secret");
    std::fs::write(&secret, format!("{SECRET}\n")).unwrap();
    let (code, out, err) = w
        .env
        .run(&[
            "bounces",
            "read",
            "--secret-file",
            secret.to_str().unwrap(),
            path.to_str().unwrap(),
        ])
        .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("now bounced"), "{out}");
    assert_eq!(
        w.status("gone@example.net").await,
        SubscriberStatus::Bounced
    );
}

#[tokio::test]
async fn a_token_for_a_removed_subscriber_names_nobody_new() {
    let mut w = World::start(&["first@example.net", "last@example.net"]).await;
    let sent = w.send().await;
    let text = w
        .report(
            "postfix-user-unknown.eml",
            "last@example.net",
            &sent["last@example.net"],
        )
        .await;
    // The newest subscriber leaves; the next sign-up may get their id.
    let (code, _, _) = w
        .env
        .run_with_env(
            &["subscribers", "remove", "last@example.net"],
            &[("HERALD_SECRET", SECRET)],
        )
        .await;
    assert_eq!(code, 0);
    w.herald
        .store
        .add_subscriber(
            &SubscriberEmail::parse("newcomer@example.net").unwrap(),
            None,
            &["weekly".into()],
            SubscriberStatus::Confirmed,
            w.clock.now(),
        )
        .await
        .unwrap();
    let handled = w
        .herald
        .handle_returned(text.as_bytes(), None)
        .await
        .unwrap();
    assert!(!handled.processed(), "{handled:?}");
    assert_eq!(
        w.status("newcomer@example.net").await,
        SubscriberStatus::Confirmed
    );
}

#[tokio::test]
async fn unsubscribing_a_complained_address_keeps_it_suppressed() {
    let mut w = World::start(&["angry@example.net"]).await;
    let sent = w.send().await;
    let text = w
        .report(
            "arf-abuse.eml",
            "angry@example.net",
            &sent["angry@example.net"],
        )
        .await;
    assert!(
        w.herald
            .handle_returned(text.as_bytes(), None)
            .await
            .unwrap()
            .processed()
    );
    // The provider's one-click unsubscribe follows the complaint.
    let token = w.token("angry@example.net").await;
    assert!(w.herald.unsubscribe(&token).await.unwrap().is_some());
    assert_eq!(
        w.status("angry@example.net").await,
        SubscriberStatus::Complained
    );
    let outcome = w
        .herald
        .sign_up(
            &SubscriberEmail::parse("angry@example.net").unwrap(),
            None,
            &[],
        )
        .await
        .unwrap();
    assert_eq!(outcome, herald::pipeline::SignUp::Bounced);
}

#[tokio::test]
async fn a_relay_that_refuses_a_short_list_whole_bounces_nobody() {
    // Fewer subscribers than the streak that stops a long send: a relay answering
    // 550 5.1.1 to every one of them is still the relay.
    let emails = [
        "a@example.net",
        "b@example.net",
        "c@example.net",
        "d@example.net",
    ];
    let mut w = World::start(&emails).await;
    w.sink
        .behaviour
        .lock()
        .unwrap()
        .reject_rcpt
        .extend(emails.iter().map(|e| e.to_string()));
    let sent = w.send().await;
    assert!(sent.is_empty());
    for e in emails {
        assert_eq!(w.status(e).await, SubscriberStatus::Confirmed, "{e}");
        assert_eq!(w.events(e).await, 0, "{e}");
    }
    // One address of a list that otherwise gets its mail is gone: that one bounces.
    w.sink.behaviour.lock().unwrap().reject_rcpt = vec!["d@example.net".into()];
    let sent = w.send().await;
    assert_eq!(sent.len(), 3);
    assert_eq!(w.status("d@example.net").await, SubscriberStatus::Bounced);
    assert_eq!(w.status("a@example.net").await, SubscriberStatus::Confirmed);
}
