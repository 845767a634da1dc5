//! The messages herald sends score nothing on SpamAssassin's local rules: the digest as
//! the relay received it (hidden preheader included), the confirmation and the welcome.
//! `.ci/run` installs SpamAssassin from the distribution.

use herald::clock::Clock;
use herald::domain::{SubscriberEmail, SubscriberStatus};
use herald::pipeline::{DigestWhen, EnrichScope};

use crate::smtp_sink::SmtpSink;
use crate::support::{FeedServer, TestEnv, clock, fixture, source};

/// SpamAssassin's score for `message` with local rules only (`-L`: no network tests),
/// and no state of its own (no Bayes database or address history in a home folder that
/// earlier runs taught): the same message always scores the same.
fn score(message: &[u8]) -> (f64, String) {
    use std::io::Write;
    let home = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new("spamassassin")
        .args([
            "-L",
            "-t",
            "-p",
            "/dev/null",
            "--cf=use_bayes 0",
            "--cf=bayes_auto_learn 0",
        ])
        .env("HOME", home.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("install SpamAssassin (apt-get install spamassassin); .ci/run does");
    child.stdin.take().unwrap().write_all(message).unwrap();
    let out = child.wait_with_output().unwrap();
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    let details = report
        .split("Content analysis details:")
        .nth(1)
        .expect("a SpamAssassin report")
        .to_owned();
    let points: f64 = details
        .trim_start()
        .trim_start_matches('(')
        .split_whitespace()
        .next()
        .and_then(|p| p.parse().ok())
        .expect("a score");
    (points, details)
}

#[tokio::test]
async fn the_digest_the_confirmation_and_the_welcome_score_nothing_on_local_rules() {
    let feed = FeedServer::start(fixture("rss20-media.xml")).await;
    let sink = SmtpSink::start().await;
    let env = TestEnv::new(&format!(
        "{}[smtp]\nurl = \"{}\"\ntls = \"none\"\nfrom = \"Field Notes <news@example.org>\"\n\
         bounce_address = \"bounces@example.org\"\n\n\
         [[digests]]\nname = \"weekly\"\nschedule = \"0 8 * * Mon\"\ntimezone = \"Europe/Berlin\"\n",
        source("blog", &feed.url("/feed.xml")),
        sink.url()
    ));
    let clock = clock();
    let herald = env.herald(&clock).await;
    herald.poll_sources(None).await.unwrap();
    herald.enrich(EnrichScope::Stale).await.unwrap();
    herald
        .store
        .add_subscriber(
            &SubscriberEmail::parse("ana@example.net").unwrap(),
            Some("Ana"),
            &["weekly".into()],
            SubscriberStatus::Confirmed,
            clock.now(),
        )
        .await
        .unwrap();
    herald
        .send_digest(
            "weekly",
            DigestWhen::Now,
            tokio::sync::watch::channel(false).1,
        )
        .await
        .unwrap();
    herald
        .sign_up(
            &SubscriberEmail::parse("new@example.net").unwrap(),
            None,
            &[],
        )
        .await
        .unwrap();
    // Confirmed: the welcome follows.
    let confirmation = String::from_utf8_lossy(&sink.received()[1].data).replace("=\r\n", "");
    let at = confirmation.find("/confirm/").unwrap() + "/confirm/".len();
    let token: String = confirmation[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '~'))
        .collect();
    assert!(herald.confirm(&token).await.unwrap().is_some());
    herald.send_outbox().await.unwrap();
    let received = sink.received();
    assert_eq!(received.len(), 3, "a digest, a confirmation and a welcome");
    for m in &received {
        let text = String::from_utf8_lossy(&m.data);
        let what = if text.contains("Subject: Welcome") {
            "welcome"
        } else if text.contains("List-Unsubscribe") {
            "digest"
        } else {
            "confirmation"
        };
        let (points, details) = score(&m.data);
        assert!(points <= 0.0, "the {what} scores {points}:\n{details}");
    }
}
