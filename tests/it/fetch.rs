//! Fetching over real HTTP on 127.0.0.1: conditional GET, redirects, errors, limits.

use std::sync::atomic::Ordering;

use herald::clock::Clock;
use herald::pipeline::{PollOutcome, PollReport};

use crate::support::{FeedServer, TestEnv, clock, fixture, source};

fn outcome<'a>(report: &'a PollReport, name: &str) -> &'a PollOutcome {
    &report
        .sources
        .iter()
        .find(|s| s.name == name)
        .expect("source in report")
        .outcome
}

fn failure(report: &PollReport, name: &str) -> String {
    match outcome(report, name) {
        PollOutcome::Failed { error, .. } => error.clone(),
        other => panic!("{name} should have failed, got {other:?}"),
    }
}

#[tokio::test]
async fn fetches_then_gets_304_with_the_etag() {
    let server = FeedServer::start(fixture("rss20-media.xml")).await;
    let env = TestEnv::new(&source("photos", &server.url("/feed.xml")));
    let clock = clock();
    let herald = env.herald(&clock).await;

    let first = herald.poll_sources(None).await.unwrap();
    assert!(
        matches!(outcome(&first, "photos"), PollOutcome::Stored { entries: 2, changes, .. } if changes.new.len() == 2)
    );
    let second = herald.poll_sources(None).await.unwrap();
    assert!(
        matches!(outcome(&second, "photos"), PollOutcome::NotModified),
        "{second:?}"
    );
    assert_eq!(server.state.full_answers.load(Ordering::SeqCst), 1);
    assert_eq!(server.state.not_modified_answers.load(Ordering::SeqCst), 1);
    assert_eq!(herald.store.count_posts(None).await.unwrap(), 2);

    let ua = server
        .state
        .last_user_agent
        .lock()
        .unwrap()
        .clone()
        .unwrap();
    assert!(
        ua.starts_with(&format!("herald/{}", env!("CARGO_PKG_VERSION"))),
        "{ua}"
    );

    // max-age=60 is shorter than the 15-minute interval: the interval wins.
    let row = &herald.store.sources().await.unwrap()[0];
    assert_eq!(
        row.state.next_check_at,
        Some(clock.now() + chrono::Duration::minutes(15))
    );
    assert!(row.state.etag.is_some() && row.state.last_modified.is_some());
}

#[tokio::test]
async fn a_changed_feed_is_fetched_again_and_edits_update_posts() {
    let server = FeedServer::start(fixture("rss20-media.xml")).await;
    let env = TestEnv::new(&source("photos", &server.url("/feed.xml")));
    let herald = env.herald(&clock()).await;
    herald.poll_sources(None).await.unwrap();

    let edited = String::from_utf8(fixture("rss20-media.xml"))
        .unwrap()
        .replace("Moss and beech", "Moss and oak");
    server.state.set_body(edited);
    let report = herald.poll_sources(None).await.unwrap();
    match outcome(&report, "photos") {
        PollOutcome::Stored { changes, .. } => {
            assert_eq!(
                (changes.new.len(), changes.updated.len(), changes.unchanged),
                (0, 1, 1)
            )
        }
        other => panic!("expected a stored poll, got {other:?}"),
    }
    let posts = herald.store.list_posts(&Default::default()).await.unwrap();
    assert_eq!(posts.len(), 2);
    assert!(posts.iter().any(|p| p.text == "Moss and oak leaves."));
}

#[tokio::test]
async fn uses_last_modified_when_there_is_no_etag_match() {
    // A server that sends Last-Modified and no ETag: the second poll must ask with
    // If-Modified-Since alone and take the 304.
    let server = FeedServer::start(fixture("atom.xml")).await;
    let env = TestEnv::new(&source("atom", &server.url("/dated.xml")));
    let herald = env.herald(&clock()).await;
    let first = herald.poll_sources(None).await.unwrap();
    assert!(
        matches!(outcome(&first, "atom"), PollOutcome::Stored { .. }),
        "{first:?}"
    );
    let row = &herald.store.sources().await.unwrap()[0];
    assert_eq!(row.state.etag, None);
    assert!(
        row.state
            .last_modified
            .as_deref()
            .is_some_and(|v| v.ends_with("GMT"))
    );
    let second = herald.poll_sources(None).await.unwrap();
    assert!(
        matches!(outcome(&second, "atom"), PollOutcome::NotModified),
        "{second:?}"
    );
    assert_eq!(server.state.not_modified_answers.load(Ordering::SeqCst), 1);
    assert_eq!(server.state.full_answers.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn follows_up_to_five_redirects_and_no_more() {
    let server = FeedServer::start(fixture("rss091.xml")).await;
    let env = TestEnv::new(&format!(
        "{}{}",
        source("five", &server.url("/redirect/5")),
        source("six", &server.url("/redirect/6"))
    ));
    let herald = env.herald(&clock()).await;
    let report = herald.poll_sources(None).await.unwrap();
    assert!(
        matches!(
            outcome(&report, "five"),
            PollOutcome::Stored { entries: 2, .. }
        ),
        "{report:?}"
    );
    let error = failure(&report, "six");
    assert!(
        error.contains("source \"six\"") && error.contains("too many redirects"),
        "{error}"
    );
}

#[tokio::test]
async fn reports_404_and_500_by_name_and_stores_the_rest() {
    let server = FeedServer::start(fixture("rss091.xml")).await;
    let env = TestEnv::new(&format!(
        "{}{}{}",
        source("gone", &server.url("/status/404")),
        source("good", &server.url("/feed.xml")),
        source("broken", &server.url("/status/500")),
    ));
    let herald = env.herald(&clock()).await;
    let report = herald.poll_sources(None).await.unwrap();
    assert_eq!(report.failed(), 2);
    let gone = failure(&report, "gone");
    assert!(
        gone.contains("source \"gone\"") && gone.contains("HTTP 404"),
        "{gone}"
    );
    assert!(!matches!(
        outcome(&report, "gone"),
        PollOutcome::Failed {
            retryable: true,
            ..
        }
    ));
    assert!(matches!(
        outcome(&report, "broken"),
        PollOutcome::Failed {
            retryable: true,
            ..
        }
    ));
    assert_eq!(herald.store.count_posts(Some("good")).await.unwrap(), 2);

    let rows = herald.store.sources().await.unwrap();
    let broken = rows.iter().find(|r| r.name == "broken").unwrap();
    assert_eq!(broken.state.consecutive_failures, 1);
    assert!(
        broken
            .state
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("HTTP 500"))
    );
    // a second failure backs off twice as long
    herald.poll_sources(Some("broken")).await.unwrap();
    let rows = herald.store.sources().await.unwrap();
    let broken = rows.iter().find(|r| r.name == "broken").unwrap();
    assert_eq!(broken.state.consecutive_failures, 2);
}

#[tokio::test]
async fn honours_retry_after() {
    let server = FeedServer::start(fixture("rss091.xml")).await;
    let env = TestEnv::new(&format!(
        "{}poll_interval = \"1m\"\n",
        source("busy", &server.url("/retry-after"))
    ));
    let clock = clock();
    let herald = env.herald(&clock).await;
    let report = herald.poll_sources(None).await.unwrap();
    assert!(failure(&report, "busy").contains("HTTP 503"));
    let row = &herald.store.sources().await.unwrap()[0];
    assert_eq!(
        row.state.next_check_at,
        Some(clock.now() + chrono::Duration::seconds(120))
    );
}

#[tokio::test]
async fn gives_up_on_a_server_that_never_answers() {
    let server = FeedServer::start(fixture("rss091.xml")).await;
    let env = TestEnv::new(&format!(
        "{}timeout = \"1s\"\n\n{}",
        source("silent", &server.url("/never")),
        source("good", &server.url("/feed.xml"))
    ));
    let herald = env.herald(&clock()).await;
    let started = std::time::Instant::now();
    let report = herald.poll_sources(None).await.unwrap();
    let error = failure(&report, "silent");
    assert!(
        error.contains("source \"silent\"") && error.contains("did not answer within 1s"),
        "{error}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert_eq!(herald.store.count_posts(Some("good")).await.unwrap(), 2);
}

#[tokio::test]
async fn refuses_a_body_over_the_limit_while_streaming() {
    let server = FeedServer::start(fixture("rss091.xml")).await;
    let env = TestEnv::new(&format!(
        "{}max_body = \"1MiB\"\n",
        source("huge", &server.url("/huge"))
    ));
    let herald = env.herald(&clock()).await;
    let report = herald.poll_sources(None).await.unwrap();
    let error = failure(&report, "huge");
    assert!(
        error.contains("source \"huge\"") && error.contains("larger than the 1048576-byte limit"),
        "{error}"
    );
}

#[tokio::test]
async fn reads_gzip_encoded_feeds() {
    let server = FeedServer::start(fixture("atom.xml")).await;
    let env = TestEnv::new(&source("zipped", &server.url("/gzip.xml")));
    let herald = env.herald(&clock()).await;
    let report = herald.poll_sources(None).await.unwrap();
    assert!(
        matches!(
            outcome(&report, "zipped"),
            PollOutcome::Stored { entries: 2, .. }
        ),
        "{report:?}"
    );
}

#[tokio::test]
async fn names_the_feed_an_html_page_advertises() {
    let server = FeedServer::start(fixture("rss091.xml")).await;
    let env = TestEnv::new(&source("homepage", &server.url("/page.html")));
    let herald = env.herald(&clock()).await;
    let report = herald.poll_sources(None).await.unwrap();
    let error = failure(&report, "homepage");
    assert!(
        error.contains("is not a feed: it is an HTML page"),
        "{error}"
    );
    assert!(
        error.contains("https://www.example.org/blog/feed.xml"),
        "{error}"
    );
}

#[tokio::test]
async fn a_failed_poll_keeps_what_was_stored_before() {
    let server = FeedServer::start(fixture("rss20-media.xml")).await;
    let env = TestEnv::new(&source("photos", &server.url("/feed.xml")));
    let herald = env.herald(&clock()).await;
    herald.poll_sources(None).await.unwrap();
    let etag_before = herald.store.sources().await.unwrap()[0].state.etag.clone();

    server.state.set_body(fixture("cut-off.xml"));
    let report = herald.poll_sources(None).await.unwrap();
    assert!(failure(&report, "photos").contains("cannot parse"));
    assert_eq!(herald.store.count_posts(None).await.unwrap(), 2);
    // the validators still describe the last stored response
    assert_eq!(
        herald.store.sources().await.unwrap()[0].state.etag,
        etag_before
    );

    // a post that drops out of the feed is kept
    server.state.set_body(fixture("empty.xml"));
    herald.poll_sources(None).await.unwrap();
    assert_eq!(herald.store.count_posts(None).await.unwrap(), 2);
}

#[tokio::test]
async fn a_big_feed_is_stored_in_pieces_in_feed_order() {
    let items: String = (0..600)
        .map(|i| format!("<item><title>Post {i}</title><guid>g{i}</guid><description>&lt;p&gt;Body {i}&lt;/p&gt;</description></item>"))
        .collect();
    let feed = format!(
        "<rss version=\"2.0\"><channel><title>Big</title><link>https://big.example.org/</link>{items}<item><title>Repeat</title><guid>g7</guid></item></channel></rss>"
    );
    let server = FeedServer::start(feed).await;
    let env = TestEnv::new(&source("big", &server.url("/feed.xml")));
    let herald = env.herald(&clock()).await;
    let report = herald.poll_sources(None).await.unwrap();
    match outcome(&report, "big") {
        PollOutcome::Stored {
            entries, changes, ..
        } => {
            assert_eq!(*entries, 601);
            assert_eq!(changes.new.len(), 600, "every new post reported once");
            let mut sorted = changes.new.clone();
            sorted.sort();
            assert_eq!(sorted, changes.new, "ids in feed order");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(herald.store.count_posts(None).await.unwrap(), 600);
    let seventh = herald
        .store
        .list_posts(&Default::default())
        .await
        .unwrap()
        .into_iter()
        .find(|p| p.stable_id.as_str() == "g7")
        .unwrap();
    assert_eq!(
        seventh.title, "Post 7",
        "the first appearance of a repeated entry wins"
    );
}
