//! The welcome mail: sent once, after a confirmation through the sign-up flow, through
//! the real server on port 0 and the SMTP server on 127.0.0.1; it names the digests and
//! when the next of each comes, carries the latest issue's posts and a working
//! unsubscribe link.

use std::time::Duration;

use herald::config::Secrets;
use herald::domain::{SubscriberEmail, SubscriberStatus};
use herald::pipeline::DigestWhen;
use mail_parser::MessageParser;

use crate::smtp_sink::{Received, SmtpSink};
use crate::support::{Site, source};

const SECRET: &str = "Wd3Jk8Pq1Zx6Rt9Lm4Vb7Nc2Hs5Gf0Ay";

fn config(feed: &str, smtp: &str, welcome_monthly: bool) -> String {
    format!(
        "{}[smtp]\nurl = \"{smtp}\"\ntls = \"none\"\nfrom = \"Field Notes <news@example.org>\"\nrate = 10000\n\n\
         [[digests]]\nname = \"weekly\"\nschedule = \"0 8 * * Mon\"\ntimezone = \"Europe/Berlin\"\n\n\
         [[digests]]\nname = \"monthly\"\nschedule = \"0 8 1 * *\"\ntimezone = \"Europe/Berlin\"\nwelcome = {welcome_monthly}\n",
        source("blog", feed)
    )
}

async fn start(welcome_monthly: bool) -> Site {
    let secrets = Secrets {
        signing_secret: Some(SECRET.into()),
        ..Secrets::default()
    };
    Site::start(move |f, s| config(f, s, welcome_monthly), secrets, None).await
}

async fn mail_to(sink: &SmtpSink, to: &str, subject_starts: &str, count: usize) -> Vec<Received> {
    for _ in 0..200 {
        let found: Vec<Received> = sink
            .received()
            .into_iter()
            .filter(|m| m.rcpt_to.iter().any(|r| r == to))
            .filter(|m| {
                MessageParser::default()
                    .parse(&m.data)
                    .and_then(|p| p.subject().map(|s| s.starts_with(subject_starts)))
                    .unwrap_or(false)
            })
            .collect();
        if found.len() >= count {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no {count} messages \"{subject_starts}…\" to {to}");
}

fn text_of(m: &Received) -> String {
    MessageParser::default()
        .parse(&m.data)
        .unwrap()
        .body_text(0)
        .unwrap()
        .replace("\r\n", "\n")
}

/// Signs up through the form and follows the confirm link (page, then button).
/// How many confirmation mails `to` has had.
fn confirmations(sink: &SmtpSink, to: &str) -> usize {
    sink.received()
        .into_iter()
        .filter(|m| m.rcpt_to.iter().any(|r| r == to))
        .filter(|m| {
            MessageParser::default()
                .parse(&m.data)
                .and_then(|p| p.subject().map(|s| s.starts_with("Confirm")))
                .unwrap_or(false)
        })
        .count()
}

async fn sign_up_and_confirm(site: &Site, email: &str, digest: &str) {
    let form = format!(
        "email={}&name=Ana+Reader&digest={digest}",
        email.replace('@', "%40")
    );
    let before = confirmations(&site.sink, email);
    let answer = site
        .post_form(&format!("{}subscribe", site.base), &form)
        .await;
    assert_eq!(answer.status(), 200);
    let confirm = mail_to(&site.sink, email, "Confirm", before + 1).await;
    let link = text_of(confirm.last().unwrap())
        .lines()
        .find(|l| l.starts_with("http://localhost:8080/confirm/"))
        .unwrap()
        .to_owned();
    let link = site.local(&link);
    assert_eq!(site.get(&link).await.status(), 200);
    assert_eq!(site.post(&link).await.status(), 200);
}

#[tokio::test]
async fn a_confirmed_sign_up_gets_one_welcome_with_the_latest_issue() {
    let site = start(false).await;
    // An issue exists already: the welcome starts the reader with its posts.
    site.herald
        .store
        .add_subscriber(
            &SubscriberEmail::parse("old@example.net").unwrap(),
            None,
            &["weekly".into()],
            SubscriberStatus::Confirmed,
            herald::clock::Clock::now(&site.clock),
        )
        .await
        .unwrap();
    let run = site
        .herald
        .send_digest(
            "weekly",
            DigestWhen::Now,
            tokio::sync::watch::channel(false).1,
        )
        .await
        .unwrap();
    let issue_posts = site
        .herald
        .store
        .posts_by_ids(&run.issue.post_ids)
        .await
        .unwrap();
    assert!(!issue_posts.is_empty());

    sign_up_and_confirm(&site, "ana@example.net", "weekly").await;
    let welcome = mail_to(&site.sink, "ana@example.net", "Welcome to Test Site", 1).await;
    let text = text_of(&welcome[0]);
    assert!(text.contains("You are subscribed, Ana Reader"), "{text}");
    // It belongs to the subscription: a one-click List-Unsubscribe like every digest.
    let parsed = MessageParser::default().parse(&welcome[0].data).unwrap();
    assert_eq!(
        parsed.header_raw("List-Unsubscribe-Post").map(str::trim),
        Some("List-Unsubscribe=One-Click")
    );
    assert!(
        parsed
            .header_raw("List-Unsubscribe")
            .unwrap()
            .contains("/unsubscribe/")
    );
    // The next Monday 08:00 in Berlin, as the clock (Saturday 28 November 2026) sees it.
    assert!(
        text.contains("- weekly: the next one on Monday 30 November 2026, 08:00 (CET)"),
        "{text}"
    );
    assert!(text.contains("From the latest issue"), "{text}");
    for post in &issue_posts {
        assert!(
            text.contains(&post.title),
            "{} missing:\n{text}",
            post.title
        );
    }
    // Its unsubscribe link works.
    let link = text
        .lines()
        .find_map(|l| l.strip_prefix("Unsubscribe at any time: "))
        .unwrap();
    let answer = site
        .post_form(&site.local(link), "List-Unsubscribe=One-Click")
        .await;
    assert_eq!(answer.status(), 200);
    let ana = SubscriberEmail::parse("ana@example.net").unwrap();
    assert_eq!(
        site.subscriber(&ana).await.status,
        SubscriberStatus::Unsubscribed
    );

    // Sending the outbox again, or signing up again after leaving, sends no second one:
    // a welcome goes out once.
    site.herald.send_outbox().await.unwrap();
    sign_up_and_confirm(&site, "ana@example.net", "weekly").await;
    assert_eq!(
        site.subscriber(&ana).await.status,
        SubscriberStatus::Confirmed
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    site.herald.send_outbox().await.unwrap();
    assert_eq!(
        mail_to(&site.sink, "ana@example.net", "Welcome", 1)
            .await
            .len(),
        1
    );
}

#[tokio::test]
async fn a_digest_without_welcome_sends_none_and_latest_posts_stand_in_for_an_issue() {
    let site = start(false).await;
    sign_up_and_confirm(&site, "quiet@example.net", "monthly").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    site.herald.send_outbox().await.unwrap();
    let to_quiet: Vec<_> = site
        .sink
        .received()
        .into_iter()
        .filter(|m| m.rcpt_to.iter().any(|r| r == "quiet@example.net"))
        .collect();
    assert_eq!(to_quiet.len(), 1, "only the confirmation");

    // Weekly has a welcome, and no issue yet: the latest posts stand in.
    sign_up_and_confirm(&site, "new@example.net", "weekly").await;
    let welcome = mail_to(&site.sink, "new@example.net", "Welcome", 1).await;
    let text = text_of(&welcome[0]);
    assert!(text.contains("The latest posts"), "{text}");
    assert!(!text.contains("monthly"), "{text}");
}
