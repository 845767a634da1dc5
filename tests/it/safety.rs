//! List safety (issue 16): no relay reply, feed item, subscriber row or stranger may wipe,
//! stall or rewrite the list. Each test reproduces one way it could, through the real
//! server, a real SMTP server on loopback and the real binary.

use std::sync::Arc;
use std::time::Duration;

use herald::clock::Clock;
use herald::config::Secrets;
use herald::domain::{IssueStatus, SubscriberEmail, SubscriberStatus};
use herald::pipeline::{DigestWhen, EnrichScope, Herald};
use mail_parser::MessageParser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use crate::support::{Site, TestEnv, fixture, raw_db, source};

const SECRET: &str = "pH4wQ8zL1nV6tR3yB9xK2mJ7sD5cF0gA";

fn secrets() -> Secrets {
    Secrets {
        signing_secret: Some(SECRET.into()),
        ..Secrets::default()
    }
}

fn no_stop() -> watch::Receiver<bool> {
    watch::channel(false).1
}

/// A config with one source, SMTP to `smtp_url`, two digests, and `extra` appended.
fn config(feed_url: &str, smtp_url: &str, extra: &str) -> String {
    format!(
        "{}[smtp]\nurl = \"{smtp_url}\"\ntls = \"none\"\nfrom = \"Field Notes <news@example.org>\"\nrate = 10000\nretry_attempts = 3\n\n\
         [[digests]]\nname = \"weekly\"\nschedule = \"0 8 * * Mon\"\ntimezone = \"Europe/Berlin\"\n\n\
         [[digests]]\nname = \"daily\"\nschedule = \"0 7 * * *\"\ntimezone = \"Europe/Berlin\"\n\n{extra}",
        source("blog", feed_url)
    )
}

/// The shared running site, with what these tests add to it.
trait SiteExt {
    async fn add(&self, email: &str, name: Option<&str>, digests: &[&str]) -> SubscriberEmail;
    async fn sign_up(&self, form: &str) -> reqwest::Response;
    async fn signed_up(&self, email: &str) -> (SubscriberEmail, String);
    async fn set_status(&self, email: &SubscriberEmail, status: SubscriberStatus);
    async fn status(&self, email: &SubscriberEmail) -> SubscriberStatus;
    async fn answer(&self, link: &str, post: bool) -> (u16, String);
    async fn refuses(&self, link: &str, status: u16, says: &str);
    async fn confirm_links(&self, to: &str, at_least: usize) -> Vec<String>;
    async fn set_raw(&self, email: &str, column: &str, value: &str);
    async fn new_post(&self, n: usize);
    async fn send_weekly(&self) -> herald::pipeline::DigestRun;
    async fn all_confirmed(&self, emails: &[&str]);
}

async fn start_site(extra: &str, metrics_token: Option<&str>) -> Site {
    let extra = extra.to_owned();
    Site::start(
        move |feed, smtp| config(feed, smtp, &extra),
        secrets(),
        metrics_token,
    )
    .await
}

impl SiteExt for Site {
    async fn add(&self, email: &str, name: Option<&str>, digests: &[&str]) -> SubscriberEmail {
        let email = SubscriberEmail::parse(email).unwrap();
        let digests: Vec<String> = digests.iter().map(|d| (*d).to_owned()).collect();
        self.herald
            .store
            .add_subscriber(
                &email,
                name,
                &digests,
                SubscriberStatus::Confirmed,
                self.clock.now(),
            )
            .await
            .unwrap();
        email
    }

    async fn sign_up(&self, form: &str) -> reqwest::Response {
        self.post_form(&format!("{}subscribe", self.base), form)
            .await
    }

    /// Signs `email` up through the form; the address and the link mailed to it.
    async fn signed_up(&self, email: &str) -> (SubscriberEmail, String) {
        self.sign_up(&format!("email={}", email.replace('@', "%40")))
            .await;
        let link = self.confirm_links(email, 1).await.remove(0);
        (SubscriberEmail::parse(email).unwrap(), link)
    }

    async fn status(&self, email: &SubscriberEmail) -> SubscriberStatus {
        self.subscriber(email).await.status
    }

    /// A link followed (GET) or its button pressed (POST): status and page.
    async fn answer(&self, link: &str, post: bool) -> (u16, String) {
        let response = if post {
            self.post(link).await
        } else {
            self.get(link).await
        };
        (response.status().as_u16(), response.text().await.unwrap())
    }

    /// Both the link (GET) and its button (POST) answer `status`, saying `says`.
    async fn refuses(&self, link: &str, status: u16, says: &str) {
        for post in [true, false] {
            let (got, page) = self.answer(link, post).await;
            assert!(
                got == status && page.contains(says),
                "post={post} {got}: {page}"
            );
        }
    }

    /// Sets a subscriber's status as the store would (an unsubscribe, a bounce).
    async fn set_status(&self, email: &SubscriberEmail, status: SubscriberStatus) {
        let id = self.subscriber(email).await.id;
        self.herald
            .store
            .set_subscriber_status(id, status, self.clock.now())
            .await
            .unwrap();
    }

    /// The confirm links mailed to `to` so far, oldest first.
    async fn confirm_links(&self, to: &str, at_least: usize) -> Vec<String> {
        for _ in 0..200 {
            let links: Vec<String> = self
                .sink
                .received()
                .iter()
                .filter(|m| m.rcpt_to == [to])
                .filter_map(|m| {
                    let msg = MessageParser::default().parse(&m.data)?;
                    let text = msg.body_text(0)?.replace("\r\n", "\n");
                    text.lines()
                        .find(|l| l.starts_with("http://localhost:8080/confirm/"))
                        .map(|l| self.local(l))
                })
                .collect();
            if links.len() >= at_least {
                return links;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("expected {at_least} confirmation mails to {to}");
    }

    /// Sets a column of a subscriber straight in the database, as an older herald or a
    /// hand edit could have left it.
    async fn set_raw(&self, email: &str, column: &str, value: &str) {
        let pool = raw_db(&self.env).await;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE subscribers SET {column} = ?1 WHERE email = ?2"
        )))
        .bind(value)
        .bind(email)
        .execute(&pool)
        .await
        .unwrap();
        pool.close().await;
    }

    /// The weekly digest sent now, whatever the schedule says.
    async fn send_weekly(&self) -> herald::pipeline::DigestRun {
        self.herald
            .send_digest("weekly", DigestWhen::Now, no_stop())
            .await
            .unwrap()
    }

    /// Every one of `emails` is still a confirmed subscriber.
    async fn all_confirmed(&self, emails: &[&str]) {
        for e in emails {
            let status = self.status(&SubscriberEmail::parse(e).unwrap()).await;
            assert_eq!(status, SubscriberStatus::Confirmed, "{e}");
        }
    }

    /// A new post in the feed, seen by the next poll a day later.
    async fn new_post(&self, n: usize) {
        let body = String::from_utf8(fixture("rss20-media.xml")).unwrap().replace(
            "</channel>",
            &((0..=n)
                .map(|i| format!("<item><title>New {i}</title><guid>new-{i}</guid><description>Something new, number {i}.</description></item>"))
                .collect::<String>()
                + "</channel>"),
        );
        self.feed.state.set_body(body);
        self.clock.advance(chrono::Duration::days(1));
        self.herald.poll_sources(None).await.unwrap();
    }
}

// ---- High 1: a relay's refusal of the message never bounces the list ----

#[tokio::test]
async fn size_and_line_length_refusals_bounce_nobody_over_three_issues() {
    for refusal in ["size", "line"] {
        let site = start_site("", None).await;
        let emails = ["a@example.org", "b@example.org", "c@example.org"];
        for e in emails {
            site.add(e, None, &["weekly"]).await;
        }
        {
            let mut b = site.sink.behaviour.lock().unwrap();
            b.size_limit = Some(0); // advertise no SIZE: herald cannot know
            match refusal {
                "size" => b.refuse_over = Some(100),
                _ => b.max_line = Some(10),
            }
        }
        for round in 0..3 {
            site.new_post(round).await;
            let run = site.send_weekly().await;
            assert_eq!(run.counts.failed, 3, "{refusal} round {round}");
            let report = run.report.unwrap();
            assert_eq!(report.bounced, 0);
            let reason = &report.reasons[0].0;
            assert!(
                reason.starts_with("552 Message size")
                    || reason.starts_with("500 Line too long")
                    || reason.starts_with("not sent: the message is"),
                "{reason}"
            );
        }
        site.all_confirmed(&emails).await;
    }
}

#[tokio::test]
async fn a_relay_that_refuses_everyone_bounces_nobody_even_when_it_blames_addresses() {
    let site = start_site("", None).await;
    let emails: Vec<String> = (0..25).map(|i| format!("r{i:02}@example.org")).collect();
    for e in &emails {
        site.add(e, None, &["weekly"]).await;
    }
    site.sink
        .behaviour
        .lock()
        .unwrap()
        .reject_rcpt
        .extend(emails.iter().cloned());
    for round in 0..4 {
        site.new_post(round).await;
        let run = site.send_weekly().await;
        let report = run.report.unwrap();
        assert!(report.relay_refusing, "round {round}");
        assert_eq!(report.bounced, 0, "round {round}");
    }
    site.all_confirmed(&emails.iter().map(String::as_str).collect::<Vec<_>>())
        .await;
    // The relay recovers, but one address really is gone: the issue that was refused
    // wholesale is finished, and the dead address counts (it blames the address).
    site.sink.behaviour.lock().unwrap().reject_rcpt = vec!["r00@example.org".into()];
    site.clock.advance(chrono::Duration::days(1));
    let run = site.send_weekly().await;
    let report = run.report.unwrap();
    assert!(!report.relay_refusing, "{report:?}");
    let dead = site
        .subscriber(&SubscriberEmail::parse("r00@example.org").unwrap())
        .await;
    assert_eq!(
        dead.status,
        SubscriberStatus::Bounced,
        "once the relay is believed again, a 5.1.1 for the address is a hard bounce"
    );
    assert!(report.sent >= 20, "{report:?}");
}

#[tokio::test]
async fn a_relay_with_a_hidden_size_limit_gets_a_smaller_digest_not_a_loop() {
    for advertised in [0, 52_428_800] {
        let site = start_site("", None).await;
        let emails: Vec<String> = (0..25).map(|i| format!("s{i:02}@example.org")).collect();
        for e in &emails {
            site.add(e, None, &["weekly"]).await;
        }
        let items: String = (0..20)
        .map(|i| format!("<item><title>Post {i} on the harbour</title><guid>h-{i}</guid><link>https://blog.example.org/h{i}</link><description>The tide came in faster than the tables promised, and the boats that had been sitting on the mud an hour earlier were afloat. Number {i}.</description></item>"))
        .collect();
        site.feed.state.set_body(format!(
            "<rss version=\"2.0\"><channel><title>H</title>{items}</channel></rss>"
        ));
        site.clock.advance(chrono::Duration::days(1));
        site.herald.poll_sources(None).await.unwrap();
        // The relay takes 16 kB, whether it says nothing about it or advertises more.
        {
            let mut b = site.sink.behaviour.lock().unwrap();
            b.size_limit = Some(advertised);
            b.refuse_over = Some(16_000);
        }
        let run = site.send_weekly().await;
        assert_eq!(run.counts.sent, 25, "SIZE {advertised}: {:?}", run.report);
        assert_eq!(run.status, IssueStatus::Sent);
        assert!(run.size_note.is_some());
        let report = run.report.unwrap();
        assert_eq!((report.failed, report.bounced), (0, 0));
        assert!(site.sink.received().iter().all(|m| m.data.len() <= 16_000));
    }
}

#[tokio::test]
async fn subscribers_bounced_by_the_relays_refusals_before_the_fix_are_restored() {
    let site = start_site("", None).await;
    site.add("wrong@example.org", None, &["weekly"]).await;
    site.add("dead@example.org", None, &["weekly"]).await;
    let pool = raw_db(&site.env).await;
    // What an older herald left: both bounced, one by "line too long", one by 5.1.1.
    for (i, (email, reply)) in [
        ("wrong@example.org", "500 Line too long"),
        ("dead@example.org", "550 5.1.1 No such user"),
    ]
    .into_iter()
    .enumerate()
    {
        for issue in 1..=3 {
            sqlx::query("INSERT OR IGNORE INTO issues (id, digest, due_at, window_end, subject, post_ids, status, created_at) VALUES (?1, 'weekly', ?2, ?2, 's', '[]', 'sent', ?2)")
                .bind(issue)
                .bind(format!("2026-0{issue}-01T08:00:00.000Z"))
                .execute(&pool)
                .await
                .unwrap();
            sqlx::query("INSERT INTO deliveries (issue_id, subscriber_id, status, attempts, last_reply, message_id, updated_at)
                         SELECT ?1, id, 'failed', 1, ?2, 'm' || ?1 || ?3, ?4 FROM subscribers WHERE email = ?5")
                .bind(issue)
                .bind(reply)
                .bind(i as i64)
                .bind(format!("2026-0{issue}-01T08:00:00.000Z"))
                .bind(email)
                .execute(&pool)
                .await
                .unwrap();
        }
        sqlx::query("UPDATE subscribers SET status = 'bounced' WHERE email = ?1")
            .bind(email)
            .execute(&pool)
            .await
            .unwrap();
    }
    sqlx::query("DELETE FROM settings WHERE key = 'repaired_bounces_issue_16'")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let _reopened = Herald::open_with(site.env.config(), Arc::new(site.clock.clone()), secrets())
        .await
        .unwrap();
    let wrong = SubscriberEmail::parse("wrong@example.org").unwrap();
    let dead = SubscriberEmail::parse("dead@example.org").unwrap();
    assert_eq!(site.status(&wrong).await, SubscriberStatus::Confirmed);
    assert_eq!(site.status(&dead).await, SubscriberStatus::Bounced);
}

#[tokio::test]
async fn a_digest_over_the_relays_size_is_cut_to_fit_with_a_note() {
    const LIMIT: usize = 45_000;
    let site = start_site("", None).await;
    site.add("reader@example.org", Some("Reader"), &["weekly"])
        .await;
    // Twenty posts with real paragraphs; the relay takes at most 45 kB.
    let paragraphs = [
        "The tide came in faster than the tables promised, and the boats that had been sitting on the mud an hour earlier were suddenly afloat and tugging at their lines.",
        "We baked the same loaf four times this week, changing only the hydration, and the crumb went from tight and cakey to open and glossy somewhere around seventy-five percent.",
        "The old bridge over the canal is closed for repairs until spring, so the cycle route now runs along the towpath, which is muddy after rain but pleasant on a dry morning.",
    ];
    let items: String = (0..20)
        .map(|i| {
            format!(
                "<item><title>Long post number {i} about tides, bread and bridges</title><guid>long-{i}</guid><link>https://blog.example.org/{i}</link><description><![CDATA[<p>{}</p><p>{}</p>]]></description></item>",
                paragraphs[i % 3],
                paragraphs[(i + 1) % 3]
            )
        })
        .collect();
    site.feed.state.set_body(format!(
        "<rss version=\"2.0\"><channel><title>Long</title><link>https://blog.example.org/</link>{items}</channel></rss>"
    ));
    site.clock.advance(chrono::Duration::days(1));
    site.herald.poll_sources(None).await.unwrap();
    site.herald.enrich(EnrichScope::Stale).await.unwrap();
    site.sink.behaviour.lock().unwrap().size_limit = Some(LIMIT);

    let run = site.send_weekly().await;
    assert_eq!(run.counts.sent, 1, "{:?}", run.report);
    assert_eq!(run.status, IssueStatus::Sent);
    let note = run.size_note.expect("a note says posts were left out");
    assert!(note.contains("left out"), "{note}");
    let mail = site.sink.received();
    let message = &mail.last().unwrap().data;
    assert!(message.len() <= LIMIT, "{} bytes", message.len());
    let msg = MessageParser::default().parse(message).unwrap();
    let text = msg.body_text(0).unwrap();
    assert!(text.contains("did not fit in this email"), "{text}");
    let shown = text.matches("== ").count();
    assert!((1..20).contains(&shown), "{shown} posts in the email");
    assert_eq!(
        run.issue.post_ids.len(),
        20,
        "the issue (and its web page) keeps them all"
    );
}

// ---- High 2: a sign-up for a known address changes nothing until it confirms ----

#[tokio::test]
async fn a_stranger_cannot_rename_or_resubscribe_a_confirmed_reader() {
    let site = start_site("", None).await;
    let ana = site.add("ana@example.org", Some("Ana"), &["weekly"]).await;
    let r = site
        .sign_up("email=ana%40example.org&name=Mallory&digest=daily")
        .await;
    assert_eq!(r.status(), 200);
    let links = site.confirm_links("ana@example.org", 1).await;
    let stored = site.subscriber(&ana).await;
    assert_eq!(
        stored.name.as_deref(),
        Some("Ana"),
        "no change before confirmation"
    );
    assert_eq!(stored.digests, vec!["weekly"]);
    assert_eq!(stored.status, SubscriberStatus::Confirmed);

    // Only the mailbox, following its link, applies exactly what was asked.
    let page = site.get(&links[0]).await;
    assert!(page.text().await.unwrap().contains("<form method=\"post\""));
    assert_eq!(site.subscriber(&ana).await.name.as_deref(), Some("Ana"));
    let done = site.post(&links[0]).await;
    assert_eq!(done.status(), 200);
    let stored = site.subscriber(&ana).await;
    assert_eq!(stored.name.as_deref(), Some("Mallory"));
    assert_eq!(stored.digests, vec!["daily", "weekly"]);
}

#[tokio::test]
async fn a_strangers_sign_up_leaves_nothing_the_owner_inherits_and_old_links_die_with_an_unsubscribe()
 {
    let site = start_site("", None).await;
    // A stranger signs up someone else's new address, with a name and a digest.
    site.sign_up("email=owner%40example.org&name=Mallory&digest=daily")
        .await;
    let owner = SubscriberEmail::parse("owner@example.org").unwrap();
    let stored = site.subscriber(&owner).await;
    assert_eq!(
        (stored.name, stored.digests.len()),
        (None, 0),
        "nothing asked for is stored"
    );
    // The stranger's link says what it would do.
    let links = site.confirm_links("owner@example.org", 1).await;
    let page = site.get_text(&links[0]).await;
    assert!(
        page.contains("the daily digest, under the name &quot;Mallory&quot;"),
        "{page}"
    );
    // The owner signs up themselves, with no name: their link gives no name.
    site.sign_up("email=owner%40example.org&digest=weekly")
        .await;
    let links = site.confirm_links("owner@example.org", 2).await;
    assert_eq!(site.post(&links[1]).await.status(), 200);
    let stored = site.subscriber(&owner).await;
    assert_eq!(stored.name, None);
    assert_eq!(stored.digests, vec!["weekly"]);
    // They leave; the stranger's still-unused link does not bring them back.
    site.herald
        .store
        .set_subscriber_status(stored.id, SubscriberStatus::Unsubscribed, site.clock.now())
        .await
        .expect("the store answers");
    let r = site.post(&links[0]).await;
    assert_eq!(r.status(), 410);
    assert_eq!(site.status(&owner).await, SubscriberStatus::Unsubscribed);
}

// ---- High 3: weak secrets are refused ----

#[tokio::test]
async fn a_weak_secret_is_refused_with_how_to_make_one() {
    let env = TestEnv::new("");
    for weak in ["change-me", "short-but-not-32"] {
        let (code, _, stderr) = env
            .run_with_env(&["digest", "preview", "weekly"], &[("HERALD_SECRET", weak)])
            .await;
        assert_eq!(code, 1, "{stderr}");
        assert!(stderr.contains("HERALD_SECRET is refused"), "{stderr}");
        assert!(stderr.contains("openssl rand"), "{stderr}");
        let (code, _, stderr) = env
            .run_with_env(&["check-config"], &[("HERALD_SECRET", weak)])
            .await;
        assert_eq!(code, 1, "{stderr}");
        assert!(stderr.contains("HERALD_SECRET is refused"), "{stderr}");
    }
    let (code, _, stderr) = env
        .run_with_env(&["check-config"], &[("HERALD_SECRET", SECRET)])
        .await;
    assert_eq!(code, 0, "{stderr}");
}

#[tokio::test]
async fn links_signed_with_the_previous_secret_still_unsubscribe() {
    let site = start_site("", None).await;
    let ana = site.add("ana@example.org", None, &["weekly"]).await;
    let stored = site.subscriber(&ana).await;
    let old = herald::domain::token::SigningKey::new(b"an older secret of thirty-two chars!!");
    let token = old.sign(
        herald::domain::token::TokenPurpose::Unsubscribe,
        stored.id,
        stored.token_nonce.as_deref().unwrap(),
        ana.as_str(),
    );
    let url = format!("{}unsubscribe/{token}", site.base);
    let one_click = || {
        site.client
            .post(&url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body("List-Unsubscribe=One-Click")
            .send()
    };
    assert_eq!(one_click().await.unwrap().status(), 400, "unknown key");
    // The same store, opened with the old secret as HERALD_SECRET_PREVIOUS.
    let rotated = Herald::open_with(
        site.env.config(),
        Arc::new(site.clock.clone()),
        Secrets {
            signing_secret: Some(SECRET.into()),
            previous_secret: Some("an older secret of thirty-two chars!!".into()),
            ..Secrets::default()
        },
    )
    .await
    .unwrap();
    let outcome = rotated.unsubscribe(&token).await.unwrap();
    assert!(outcome.is_some());
    assert_eq!(site.status(&ana).await, SubscriberStatus::Unsubscribed);
}

// ---- Medium 4: confirm links expire, are single-use, and never revive a bounce ----

#[tokio::test]
async fn confirm_links_expire_are_used_once_and_do_not_revive_a_bounced_address() {
    let site = start_site("[http]\nconfirm_ttl = \"7d\"\n", None).await;
    // Expired: the page and its button both say so, and nothing changes.
    let (late, link) = site.signed_up("late@example.org").await;
    site.clock.advance(chrono::Duration::days(8));
    site.refuses(&link, 410, "expired").await;
    assert_eq!(site.status(&late).await, SubscriberStatus::Pending);

    // Used once; after an unsubscribe, the old link does not re-subscribe.
    let (once, link) = site.signed_up("once@example.org").await;
    assert_eq!(site.answer(&link, true).await.0, 200);
    assert_eq!(site.status(&once).await, SubscriberStatus::Confirmed);
    site.set_status(&once, SubscriberStatus::Unsubscribed).await;
    for _ in 0..2 {
        site.refuses(&link, 410, "used before").await;
    }
    assert_eq!(site.status(&once).await, SubscriberStatus::Unsubscribed);

    // Bounced: a link made before the bounce does nothing, and a new sign-up sends none.
    let (gone, link) = site.signed_up("gone@example.org").await;
    site.set_status(&gone, SubscriberStatus::Bounced).await;
    let r = site.post(&link).await;
    assert_eq!(r.status(), 409);
    assert!(r.text().await.unwrap().contains("could not be delivered"));
    assert_eq!(site.status(&gone).await, SubscriberStatus::Bounced);
    let before = site.sink.received().len();
    site.sign_up("email=gone%40example.org").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        site.sink.received().len(),
        before,
        "no mail to a bounced address"
    );
}

#[tokio::test]
async fn a_confirm_link_mailed_before_nonces_confirms_only_a_reader_of_that_time() {
    let site = start_site("", None).await;
    let email = SubscriberEmail::parse("old@example.org").unwrap();
    let id = site
        .herald
        .store
        .add_subscriber(
            &email,
            None,
            &["weekly".into()],
            SubscriberStatus::Pending,
            site.clock.now(),
        )
        .await
        .unwrap()
        .id();
    let key = herald::domain::token::SigningKey::new(SECRET.as_bytes());
    let v1 = key.sign_v1(
        herald::domain::token::TokenPurpose::Confirm,
        id,
        email.as_str(),
    );
    let url = format!("{}confirm/{v1}", site.base);
    // This subscriber came after nonces: no v1 link was ever mailed to them, so none
    // works (with a known secret, v1 links could be forged for every id).
    assert_eq!(site.get(&url).await.status(), 400);
    let unsubscribe = key.sign_v1(
        herald::domain::token::TokenPurpose::Unsubscribe,
        id,
        email.as_str(),
    );
    assert!(
        site.herald
            .unsubscribe(&unsubscribe)
            .await
            .unwrap()
            .is_none()
    );
    // As if the store had been migrated with this subscriber already in it.
    let pool = raw_db(&site.env).await;
    sqlx::query("UPDATE settings SET value = ?1 WHERE key = 'v1_tokens_up_to_id'")
        .bind(id.0.to_string())
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    assert_eq!(site.get(&url).await.status(), 200);
    assert_eq!(site.post(&url).await.status(), 200);
    assert_eq!(site.status(&email).await, SubscriberStatus::Confirmed);
}

// ---- Medium 5: CR LF in a name never stalls a send ----

/// An install with one digest and no source.
fn weekly_env() -> TestEnv {
    TestEnv::new("[[digests]]\nname = \"weekly\"\nschedule = \"0 8 * * Mon\"\n")
}

/// `herald subscribers add EMAIL --name NAME [more]`.
async fn add_named(env: &TestEnv, email: &str, name: &str, more: &[&str]) -> (i32, String, String) {
    let mut args = vec!["subscribers", "add", email, "--name", name];
    args.extend_from_slice(more);
    env.run(&args).await
}

#[tokio::test]
async fn control_characters_in_names_are_refused_at_the_cli_and_in_csv() {
    let env = weekly_env();
    let (code, _, stderr) = add_named(&env, "a@example.org", "Bob\r\nBcc: x@evil.org", &[]).await;
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("control characters"), "{stderr}");
    let (code, _, stderr) = add_named(&env, "a@example.org", &"n".repeat(101), &[]).await;
    assert_eq!(code, 1);
    assert!(stderr.contains("at most 100"), "{stderr}");
    std::fs::write(
        env.dir.path().join("list.csv"),
        "email,name,digests\nok@example.org,Ok,\n\"bad@example.org\",\"Mallory\r\nBcc: x@evil.org\",\nlit@[127.0.0.1],Lit,\n",
    )
    .unwrap();
    let (code, stdout, stderr) = env
        .run(&["subscribers", "import", "list.csv", "--confirmed"])
        .await;
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(stderr.contains("list.csv:3: the name"), "{stderr}");
    assert!(
        stderr.contains("list.csv:5:") && stderr.contains("address literals"),
        "{stderr}"
    );
    assert!(stdout.contains("1 added"), "{stdout}");
}

#[tokio::test]
async fn a_stored_bad_name_or_address_fails_only_its_own_delivery() {
    let site = start_site("", None).await;
    site.add("ok1@example.org", Some("Ok One"), &["weekly"])
        .await;
    site.add("crlf@example.org", Some("placeholder"), &["weekly"])
        .await;
    site.add("lit@example.org", None, &["weekly"]).await;
    site.add("ok2@example.org", None, &["weekly"]).await;
    // Left by an older herald that did not check.
    site.set_raw("crlf@example.org", "name", "Mallory\r\nBcc: x@evil.org")
        .await;
    site.set_raw("lit@example.org", "email", "lit@[127.0.0.1]")
        .await;

    let env = &site.env;
    let (code, stdout, stderr) = env
        .run_with_env(
            &["digest", "send", "weekly", "--force", "--no-poll"],
            &[("HERALD_SECRET", SECRET)],
        )
        .await;
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(stdout.contains("2 sent, 0 deferred, 2 failed"), "{stdout}");
    assert!(stdout.contains("control characters"), "{stdout}");
    assert!(stdout.contains("address literals"), "{stdout}");
    assert!(
        stdout.contains("issue sent"),
        "the issue finishes: {stdout}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    let mut to: Vec<String> = site
        .sink
        .received()
        .iter()
        .flat_map(|m| m.rcpt_to.clone())
        .collect();
    to.sort();
    assert_eq!(to, vec!["ok1@example.org", "ok2@example.org"]);
    // Failing to build is never the recipient's fault; both stay subscribed.
    let (_, list, warnings) = env.run(&["subscribers", "list"]).await;
    assert_eq!(list.matches("confirmed").count(), 4, "{list}");
    assert!(warnings.contains("warning: subscriber"), "{warnings}");
    let (code, export, _) = env.run(&["subscribers", "export"]).await;
    assert_eq!(code, 0);
    assert!(
        export.contains("lit@[127.0.0.1]"),
        "the export lists what is stored"
    );
}

// ---- Medium 6: no header line over 998 bytes ----

#[tokio::test]
async fn the_longest_subject_and_name_fold_into_short_header_lines() {
    let site = start_site("", None).await;
    // A subject template that lists every title, a feed of long titles, the longest name.
    let mut config = std::fs::read_to_string(site.env.config_path()).unwrap();
    config = config.replacen(
        "name = \"weekly\"\n",
        "name = \"weekly\"\nsubject = \"{{#each posts}}{{title}} / {{/each}}\"\n",
        1,
    );
    std::fs::write(site.env.config_path(), config).unwrap();
    let herald = Herald::open_with(site.env.config(), Arc::new(site.clock.clone()), secrets())
        .await
        .unwrap();
    let items: String = (0..20)
        .map(|i| {
            format!(
                "<item><title>{}</title><guid>t-{i}</guid></item>",
                "Très longue histoire ".repeat(40)
            )
        })
        .collect();
    site.feed.state.set_body(format!(
        "<rss version=\"2.0\"><channel><title>x</title>{items}</channel></rss>"
    ));
    site.clock.advance(chrono::Duration::days(1));
    herald.poll_sources(None).await.unwrap();
    site.add(
        "long@example.org",
        Some(&"Zoë Ångström-".repeat(8)[..98]),
        &["weekly"],
    )
    .await;
    let run = herald
        .send_digest("weekly", DigestWhen::Now, no_stop())
        .await
        .unwrap();
    assert_eq!(run.counts.sent, 1, "{:?}", run.report);
    let data = &site.sink.received()[0].data;
    let head = &data[..data.windows(4).position(|w| w == b"\r\n\r\n").unwrap()];
    let longest = head.split(|b| *b == b'\n').map(<[u8]>::len).max().unwrap();
    assert!(longest <= 998, "a header line of {longest} bytes");
    let msg = MessageParser::default().parse(data).unwrap();
    let subject = msg.subject().unwrap();
    assert!(
        subject.chars().count() <= 150 && subject.ends_with('\u{2026}'),
        "{subject}"
    );
    assert!(
        msg.to()
            .unwrap()
            .first()
            .unwrap()
            .name()
            .unwrap()
            .starts_with("Zoë Ångström")
    );
}

// ---- Medium 8: slow clients are cut off; a huge Content-Length is refused at once ----

#[tokio::test]
async fn slow_header_connections_are_closed_and_the_connection_cap_holds() {
    let site = start_site("", None).await;
    let router = herald::http::router(site.state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let limits = herald::http::server::Limits {
        header_read: Duration::from_millis(500),
        idle: Duration::from_secs(1),
        connections: 1,
        ..Default::default()
    };
    tokio::spawn(herald::http::server::serve(
        listener,
        router,
        limits,
        std::future::pending(),
    ));

    // A client that trickles its headers is closed.
    let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /healthz HT").await.unwrap();
    // While it holds the only connection, a second client waits in the backlog.
    let mut waiting = tokio::net::TcpStream::connect(addr).await.unwrap();
    waiting
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(10), slow.read_to_end(&mut buf)).await;
    assert!(closed.is_ok(), "the slow connection was closed");
    assert!(!String::from_utf8_lossy(&buf).contains("200 OK"));
    // Then the waiting one is served.
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), waiting.read_to_end(&mut answer))
        .await
        .unwrap()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );

    // A declared 5 GB body is refused at once, not after the request timeout.
    let mut big = tokio::net::TcpStream::connect(site.addr).await.unwrap();
    big.write_all(b"POST /subscribe HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 5000000000\r\n\r\nemail=")
        .await
        .unwrap();
    let mut head = [0u8; 12];
    tokio::time::timeout(Duration::from_secs(5), big.read_exact(&mut head))
        .await
        .expect("answered before the 10 s request timeout")
        .unwrap();
    assert_eq!(&head, b"HTTP/1.1 413");
}

#[tokio::test]
async fn an_idle_connection_is_closed_and_one_address_cannot_hold_them_all() {
    let site = start_site("", None).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let limits = herald::http::server::Limits {
        idle: Duration::from_millis(800),
        per_address: 2,
        exempt_loopback: false,
        ..Default::default()
    };
    tokio::spawn(herald::http::server::serve(
        listener,
        herald::http::router(site.state.clone()),
        limits,
        std::future::pending(),
    ));
    // Headers sent, then a body that stops after three of its ten bytes: no byte moves,
    // and the connection is closed long before the 10 s request timeout would answer.
    let mut stalled = tokio::net::TcpStream::connect(addr).await.unwrap();
    stalled
        .write_all(b"POST /subscribe HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 10\r\n\r\nema")
        .await
        .unwrap();
    let mut second = tokio::net::TcpStream::connect(addr).await.unwrap();
    second.write_all(b"GET /healthz HT").await.unwrap();
    // A third from the same address is refused at once.
    let mut third = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _ = third
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let mut buf = Vec::new();
    let refused = tokio::time::timeout(Duration::from_secs(5), third.read_to_end(&mut buf)).await;
    assert!(
        refused.is_ok() && buf.is_empty(),
        "{}",
        String::from_utf8_lossy(&buf)
    );
    let mut buf = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(8), stalled.read_to_end(&mut buf)).await;
    assert!(closed.is_ok(), "the stalled connection was closed");
    assert!(
        !String::from_utf8_lossy(&buf).contains("408"),
        "closed as idle, not timed out"
    );
}

// ---- Medium 9: archive pages are rendered once ----

#[tokio::test]
async fn archive_pages_come_from_a_cache_with_an_etag_until_posts_change() {
    let site = start_site("", None).await;
    site.add("a@example.org", None, &["weekly"]).await;
    let run = site.send_weekly().await;
    let url = format!("{}archive/{}", site.base, run.issue.id);
    let pages = futures_util::future::join_all((0..20).map(|_| site.client.get(&url).send())).await;
    let mut etags = std::collections::HashSet::new();
    for page in pages {
        let page = page.unwrap();
        assert_eq!(page.status(), 200);
        etags.insert(page.headers()["etag"].to_str().unwrap().to_owned());
        assert!(page.text().await.unwrap().contains("Harbour at dawn"));
    }
    assert_eq!(etags.len(), 1);
    let etag = etags.into_iter().next().unwrap();
    let again = site
        .client
        .get(&url)
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);

    // The page is the cached one until the content changes.
    let pool = raw_db(&site.env).await;
    sqlx::query("UPDATE posts SET title = 'Harbour at dusk' WHERE title = 'Harbour at dawn'")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let cached = site.get_text(&url).await;
    assert!(cached.contains("Harbour at dawn"), "served from the cache");
    site.state.content_changed();
    let fresh = site.get(&url).await;
    assert_ne!(fresh.headers()["etag"].to_str().unwrap(), etag);
    assert!(fresh.text().await.unwrap().contains("Harbour at dusk"));
}

// ---- Medium 10: the rate limit keys on the real client behind trusted proxies ----

#[tokio::test]
async fn forwarded_addresses_are_honoured_only_from_trusted_proxies() {
    let sign_up = |site: &Site, from: &'static str, n: usize| {
        let client = site.client.clone();
        let url = format!("{}subscribe", site.base);
        async move {
            client
                .post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .header("x-forwarded-for", from)
                .body(format!("email=r{n}%40example.org"))
                .send()
                .await
                .unwrap()
        }
    };
    let behind = start_site("[http]\ntrusted_proxies = [\"127.0.0.1/32\"]\n", None).await;
    for n in 0..5 {
        assert_eq!(sign_up(&behind, "198.51.100.1", n).await.status(), 200);
    }
    let limited = sign_up(&behind, "198.51.100.1", 5).await;
    assert_eq!(limited.status(), 429);
    let wait: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=600).contains(&wait), "{wait}");
    assert_eq!(
        sign_up(&behind, "198.51.100.2", 6).await.status(),
        200,
        "another visitor"
    );
    // A forged header from the client is not believed: the proxy's entry is rightmost.
    assert_eq!(
        sign_up(&behind, "203.0.113.5, 198.51.100.1", 7)
            .await
            .status(),
        429
    );

    let direct = start_site("", None).await;
    for n in 0..5 {
        assert_eq!(
            sign_up(
                &direct,
                ["1.1.1.1", "2.2.2.2", "3.3.3.3", "4.4.4.4", "5.5.5.5"][n],
                n
            )
            .await
            .status(),
            200
        );
    }
    assert_eq!(
        sign_up(&direct, "6.6.6.6", 5).await.status(),
        429,
        "no proxy trusted: the peer counts"
    );
}

// ---- Low 11–17 ----

#[tokio::test]
async fn the_export_round_trips_and_the_spreadsheet_export_defuses_formulas() {
    let env = weekly_env();
    let (code, _, stderr) = add_named(
        &env,
        "x@example.org",
        "=HYPERLINK(\"https://evil\",\"Click, me\")",
        &["--confirmed"],
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    let (_, plain, _) = env.run(&["subscribers", "export"]).await;
    assert!(
        plain.contains("\"=HYPERLINK(\"\"https://evil\"\",\"\"Click, me\"\")\""),
        "{plain}"
    );
    let (_, safe, _) = env.run(&["subscribers", "export", "--spreadsheet"]).await;
    assert!(safe.contains("\"'=HYPERLINK("), "{safe}");
    // The plain export imports back into an empty install as it was.
    let other = weekly_env();
    std::fs::write(other.dir.path().join("export.csv"), &plain).unwrap();
    let (code, out, err) = other
        .run(&["subscribers", "import", "export.csv", "--confirmed"])
        .await;
    assert_eq!(code, 0, "{out}{err}");
    let (_, again, _) = other.run(&["subscribers", "export"]).await;
    assert_eq!(again, plain);
}

#[tokio::test]
async fn a_confirmation_survives_a_relay_that_is_down_and_a_restart() {
    let site = start_site("", None).await;
    site.sink.behaviour.lock().unwrap().refuse_connections = Some("421 4.3.2 down".into());
    let outcome = site
        .herald
        .sign_up(
            &SubscriberEmail::parse("new@example.org").unwrap(),
            None,
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        outcome,
        herald::pipeline::SignUp::ConfirmationQueued { known: false }
    );
    assert!(site.sink.received().is_empty());
    site.sink.behaviour.lock().unwrap().refuse_connections = None;
    // Another process on the same store, later: the daemon's round sends it, once.
    let restarted = Herald::open_with(site.env.config(), Arc::new(site.clock.clone()), secrets())
        .await
        .unwrap();
    site.clock.advance(chrono::Duration::minutes(5));
    let report = restarted.send_outbox().await.unwrap();
    assert_eq!(report.sent, 1);
    assert_eq!(restarted.send_outbox().await.unwrap().sent, 0);
    let links = site.confirm_links("new@example.org", 1).await;
    assert_eq!(links.len(), 1);
    assert_eq!(site.post(&links[0]).await.status(), 200);
}

#[tokio::test]
async fn metrics_need_the_token_or_loopback_and_pages_carry_security_headers() {
    let site = start_site("", Some("metrics-token-0123456789")).await;
    let url = format!("{}metrics", site.base);
    assert_eq!(site.get(&url).await.status(), 401);
    let wrong = site
        .client
        .get(&url)
        .bearer_auth("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let ok = site
        .client
        .get(&url)
        .bearer_auth("metrics-token-0123456789")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert!(ok.text().await.unwrap().contains("herald_posts"));

    let open = start_site("", None).await;
    let url = format!("{}metrics", open.base);
    assert_eq!(open.get(&url).await.status(), 200, "loopback");
    let proxied = open
        .client
        .get(&url)
        .header("x-forwarded-for", "203.0.113.1")
        .send()
        .await
        .unwrap();
    assert_eq!(proxied.status(), 403, "through a proxy it is not loopback");

    let proxied_config = start_site("[http]\ntrusted_proxies = [\"10.0.0.0/8\"]\n", None).await;
    let r = proxied_config
        .get(format!("{}metrics", proxied_config.base))
        .await;
    assert_eq!(
        r.status(),
        403,
        "behind a declared proxy, loopback proves nothing"
    );

    let moved = start_site("[http]\nmetrics_listen = \"127.0.0.1:0\"\n", None).await;
    assert_eq!(
        moved.get(format!("{}metrics", moved.base)).await.status(),
        404
    );

    let page = open.get(&open.base).await;
    let h = page.headers();
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert_eq!(h["x-frame-options"], "DENY");
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("frame-ancestors 'none'") && csp.contains("default-src 'none'"),
        "{csp}"
    );
    let feed = open.get(format!("{}feed.xml", open.base)).await;
    assert_eq!(feed.headers()["x-content-type-options"], "nosniff");
}

#[tokio::test]
async fn one_click_unsubscribe_needs_the_rfc_8058_body() {
    let site = start_site("", None).await;
    let ana = site.add("ana@example.org", None, &["weekly"]).await;
    let stored = site.subscriber(&ana).await;
    let key = herald::domain::token::SigningKey::new(SECRET.as_bytes());
    let token = key.sign(
        herald::domain::token::TokenPurpose::Unsubscribe,
        stored.id,
        stored.token_nonce.as_deref().unwrap(),
        ana.as_str(),
    );
    let url = format!("{}unsubscribe/{token}", site.base);
    let empty = site.post(&url).await;
    assert_eq!(empty.status(), 400);
    assert_eq!(site.status(&ana).await, SubscriberStatus::Confirmed);
    let body = "--b0undary\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\nOne-Click\r\n--b0undary--\r\n";
    let done = site
        .client
        .post(&url)
        .header("content-type", "multipart/form-data; boundary=b0undary")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 200);
    assert_eq!(site.status(&ana).await, SubscriberStatus::Unsubscribed);
}

#[tokio::test]
async fn an_address_literal_is_refused_at_sign_up() {
    let site = start_site("", None).await;
    let r = site.sign_up("email=user%40%5B127.0.0.1%5D").await;
    assert_eq!(r.status(), 400);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(site.sink.received().is_empty());
}
