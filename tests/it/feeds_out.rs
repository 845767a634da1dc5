//! The outgoing feeds: valid, complete, deterministic, and safe with hostile input.

use std::time::Duration;

use chrono::{TimeZone, Utc};
use herald::clock::Clock;
use herald::domain::FeedMeta;
use herald::domain::{NewPost, StableId};
use herald::pipeline::EnrichScope;
use herald::store::PollRecord;
use rss::validation::Validate;

use crate::support::{FeedServer, TestEnv, clock, fixture, source};

fn example_blog_env(extra: &str) -> TestEnv {
    TestEnv::new(&format!(
        "{}{extra}",
        source(
            "field-notes",
            concat!(env!("CARGO_MANIFEST_DIR"), "/examples/blog/feed.xml")
        )
    ))
}

#[tokio::test]
async fn feeds_parse_back_into_the_same_posts_ids_and_dates() {
    let env = example_blog_env("[feed]\nhub = \"http://127.0.0.1:9/hub\"\n");
    let herald = env.herald(&clock()).await;
    herald.poll_sources(None).await.unwrap();
    herald.enrich(EnrichScope::Stale).await.unwrap();
    let files = herald.write_feeds(None).await.unwrap();
    assert!(
        files.iter().all(|f| f.changed),
        "first write writes everything"
    );
    let posts = herald.store.list_posts(&Default::default()).await.unwrap();
    assert_eq!(posts.len(), 14);

    let dir = env.dir.path().join("public");
    for name in ["feed.xml", "atom.xml", "feed.json"] {
        let bytes = std::fs::read(dir.join(name)).unwrap();
        let feed = feed_rs::parser::parse(&bytes[..]).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(feed.entries.len(), 14, "{name}");
        for (entry, post) in feed.entries.iter().zip(&posts) {
            // The permalink when the post's id is its URL, else a URN fixed for the post.
            if post.stable_id.as_str() == post.url.as_deref().unwrap() {
                assert_eq!(
                    &entry.id,
                    post.url.as_ref().unwrap(),
                    "{name}: newest first"
                );
            } else {
                assert!(
                    entry.id.starts_with("urn:herald:field-notes:"),
                    "{name}: {}",
                    entry.id
                );
            }
            assert_eq!(entry.title.as_ref().unwrap().content, post.title, "{name}");
            assert_eq!(
                entry.published.unwrap().timestamp(),
                post.display_date().timestamp(),
                "{name}"
            );
        }
    }

    // RSS: the channel validates, has a self link and hub, items carry the summary with
    // related links before content:encoded.
    let rss_bytes = std::fs::read(dir.join("feed.xml")).unwrap();
    let channel = rss::Channel::read_from(&rss_bytes[..]).unwrap();
    channel.validate().unwrap();
    let links = &channel.atom_ext().unwrap().links;
    assert!(
        links
            .iter()
            .any(|l| l.rel == "self" && l.href == "http://localhost:8080/feed.xml")
    );
    assert!(links.iter().any(|l| l.rel == "hub"));
    let text = String::from_utf8(rss_bytes).unwrap();
    let first_item = &text[text.find("<item>").unwrap()..text.find("</item>").unwrap()];
    assert!(
        first_item.find("<description>").unwrap() < first_item.find("<content:encoded>").unwrap()
    );
    for item in channel.items() {
        chrono::DateTime::parse_from_rfc2822(item.pub_date().unwrap()).expect("RFC 822 pubDate");
        let guid = item.guid().unwrap();
        assert_eq!(
            guid.is_permalink(),
            guid.value().starts_with("https://"),
            "{}",
            guid.value()
        );
        assert!(
            item.description()
                .unwrap()
                .contains(&format!("<p>{}", &item.description().unwrap()[3..10]))
        );
    }
    let starter = channel
        .items()
        .iter()
        .find(|i| i.title() == Some("Keeping a sourdough starter alive through a busy week"))
        .unwrap();
    let description = starter.description().unwrap();
    assert!(description.contains("<p>Related:</p><ul><li><a href=\"https://blog.example.org/posts/bread-butter-waiting/\">"), "{description}");
    assert!(
        starter
            .content()
            .unwrap()
            .contains("<h2>Feed it less, not more often</h2>")
    );
    assert_eq!(
        starter.dublin_core_ext().unwrap().creators(),
        ["Mara Lindqvist"]
    );

    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("feed.json")).unwrap()).unwrap();
    assert_eq!(json["version"], "https://jsonfeed.org/version/1.1");
    assert_eq!(json["hubs"][0]["type"], "WebSub");
    let item = json["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["title"] == "Keeping a sourdough starter alive through a busy week")
        .unwrap();
    assert_eq!(
        item["_herald"]["related"][0]["url"],
        "https://blog.example.org/posts/bread-butter-waiting/"
    );
    assert!(
        item["summary"]
            .as_str()
            .unwrap()
            .starts_with("A sourdough starter is less fragile")
    );

    let atom = atom_syndication::Feed::read_from(&std::fs::read(dir.join("atom.xml")).unwrap()[..])
        .unwrap();
    assert!(
        atom.links()
            .iter()
            .any(|l| l.rel() == "self" && l.href() == "http://localhost:8080/atom.xml")
    );
    assert!(
        atom.entries()[1]
            .summary()
            .unwrap()
            .value
            .contains("Related:")
    );
}

#[tokio::test]
async fn a_second_write_with_no_change_leaves_the_files_alone() {
    let env = example_blog_env("");
    let herald = env.herald(&clock()).await;
    herald.poll_sources(None).await.unwrap();
    herald.enrich(EnrichScope::Stale).await.unwrap();
    herald.write_feeds(None).await.unwrap();
    let path = env.dir.path().join("public/feed.xml");
    let (before, mtime) = (
        std::fs::read(&path).unwrap(),
        std::fs::metadata(&path).unwrap().modified().unwrap(),
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    let files = herald.write_feeds(None).await.unwrap();
    assert!(files.iter().all(|f| !f.changed));
    assert_eq!(
        std::fs::metadata(&path).unwrap().modified().unwrap(),
        mtime,
        "same mtime"
    );
    assert_eq!(std::fs::read(&path).unwrap(), before);

    // The CLI says so too, and an explicit folder works.
    let out = env.dir.path().join("elsewhere");
    herald.close().await;
    let (code, stdout, _) = env
        .run(&["feed", "write", "--out-dir", out.to_str().unwrap()])
        .await;
    assert_eq!(code, 0);
    assert!(stdout.contains("feed.xml (written)"), "{stdout}");
    assert_eq!(
        std::fs::read(out.join("feed.xml")).unwrap(),
        before,
        "byte-identical output from the same store"
    );
}

#[tokio::test]
async fn the_feeds_match_their_snapshots() {
    let server = FeedServer::start(fixture("rss20-media.xml")).await;
    let env = TestEnv::new(&source("photos", &server.url("/feed.xml")));
    let herald = env.herald(&clock()).await;
    herald.poll_sources(None).await.unwrap();
    herald.enrich(EnrichScope::Stale).await.unwrap();
    herald.write_feeds(None).await.unwrap();
    let read =
        |name: &str| std::fs::read_to_string(env.dir.path().join("public").join(name)).unwrap();
    insta::assert_snapshot!("feed_rss", read("feed.xml"));
    insta::assert_snapshot!("feed_atom", read("atom.xml"));
    insta::assert_snapshot!("feed_json", read("feed.json"));
}

#[tokio::test]
async fn max_items_holds_on_a_thousand_post_store() {
    let env = TestEnv::new(&format!(
        "{}[feed]\nmax_items = 25\n",
        source("bulk", "unused.xml")
    ));
    let clock = clock();
    let herald = env.herald(&clock).await;
    let ids = herald
        .store
        .sync_sources(&herald.config.sources, clock.now())
        .await
        .unwrap();
    let base = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let posts: Vec<NewPost> = (0..1000)
        .map(|i| NewPost {
            stable_id: StableId::for_entry(Some(&format!("post-{i}")), None, "", ""),
            url: Some(format!("https://bulk.example.org/{i}")),
            title: format!("Post {i}"),
            author: None,
            tags: vec![],
            published_at: Some(base + chrono::Duration::hours(i)),
            html: format!("<p>Body {i}</p>"),
            text: format!("Body {i}"),
            image: None,
            feed_summary: None,
            uncapped_hash: None,
            recovered: false,
        })
        .collect();
    let record = PollRecord {
        etag: None,
        last_modified: None,
        checked_at: clock.now(),
        next_check_at: clock.now(),
        meta: FeedMeta::default(),
    };
    herald
        .store
        .store_poll(ids["bulk"], &record, &posts, clock.now())
        .await
        .unwrap();
    herald.write_feeds(None).await.unwrap();
    let bytes = std::fs::read(env.dir.path().join("public/feed.xml")).unwrap();
    let channel = rss::Channel::read_from(&bytes[..]).unwrap();
    assert_eq!(channel.items().len(), 25);
    assert_eq!(channel.items()[0].title(), Some("Post 999"), "newest first");
    // Not permalinks: the guid is a stable URN.
    assert!(
        channel.items()[0]
            .guid()
            .unwrap()
            .value()
            .starts_with("urn:herald:bulk:")
    );
    assert!(!channel.items()[0].guid().unwrap().is_permalink());
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(env.dir.path().join("public/feed.json")).unwrap())
            .unwrap();
    assert_eq!(json["items"].as_array().unwrap().len(), 25);
}

#[tokio::test]
async fn hostile_content_stays_well_formed_and_safe() {
    let long_title = "Long ".repeat(2_000);
    let mut feed = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><rss version=\"2.0\"><channel><title>Hostile</title><link>https://evil.example.org/</link>\
         <item><title>&lt;script&gt;alert(1)&lt;/script&gt; Tom &amp;amp; Jerry ]]&gt; \u{200f}\u{202e}gnp.exe</title><guid>h1</guid>\
         <description><![CDATA[<p onclick=\"x()\">Body with ]]]]><![CDATA[> inside and <script>alert(2)</script> and \u{1}control\u{8}chars</p>]]></description></item>\
         <item><title>{long_title}</title><guid>h2</guid><description>x</description></item>\
         <item><title>Broken bytes: "
    )
    .into_bytes();
    feed.extend_from_slice(b"\xff\xfe caf\xe9 </title><guid>h3</guid><description>invalid \xc3\x28 utf-8</description></item></channel></rss>");
    let server = FeedServer::start(feed).await;
    let env = TestEnv::new(&source("hostile", &server.url("/feed.xml")));
    let herald = env.herald(&clock()).await;
    let report = herald.poll_sources(None).await.unwrap();
    assert_eq!(report.failed(), 0, "{report:?}");
    herald.enrich(EnrichScope::Stale).await.unwrap();
    herald.write_feeds(None).await.unwrap();

    let dir = env.dir.path().join("public");
    for name in ["feed.xml", "atom.xml", "feed.json"] {
        let bytes = std::fs::read(dir.join(name)).unwrap();
        let text =
            String::from_utf8(bytes.clone()).unwrap_or_else(|_| panic!("{name} is not UTF-8"));
        assert!(
            !text
                .chars()
                .any(|c| c.is_control() && !matches!(c, '\n' | '\t' | '\r')),
            "{name} has control characters"
        );
        assert!(
            !text.contains("<script"),
            "{name} carries a live script tag"
        );
        assert!(!text.contains("onclick"), "{name} carries an event handler");
        let parsed = feed_rs::parser::parse(&bytes[..])
            .unwrap_or_else(|e| panic!("{name} is not well-formed: {e}"));
        assert_eq!(parsed.entries.len(), 3, "{name}");
        let titles: Vec<String> = parsed
            .entries
            .iter()
            .map(|e| e.title.as_ref().unwrap().content.clone())
            .collect();
        assert!(
            titles.iter().any(|t| t.contains("Tom & Jerry")),
            "{name}: {titles:?}"
        );
        assert!(
            titles.iter().all(|t| t.chars().count() <= 500),
            "{name}: titles are capped"
        );
    }
    let channel =
        rss::Channel::read_from(&std::fs::read(dir.join("feed.xml")).unwrap()[..]).unwrap();
    channel.validate().unwrap();
    atom_syndication::Feed::read_from(&std::fs::read(dir.join("atom.xml")).unwrap()[..]).unwrap();
}

#[tokio::test]
async fn a_changed_feed_is_announced_to_the_websub_hub() {
    use std::sync::{Arc, Mutex};
    let pings: Arc<Mutex<Vec<String>>> = Arc::default();
    let recorded = Arc::clone(&pings);
    let app = axum::Router::new().route(
        "/hub",
        axum::routing::post(move |body: String| {
            let recorded = Arc::clone(&recorded);
            async move {
                recorded.lock().unwrap().push(body);
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hub = format!("http://{}/hub", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let env = example_blog_env(&format!("[feed]\nhub = \"{hub}\"\n"));
    let herald = env.herald(&clock()).await;
    herald.poll_sources(None).await.unwrap();
    herald.enrich(EnrichScope::Stale).await.unwrap();
    herald.write_feeds(None).await.unwrap();
    let first: Vec<String> = pings.lock().unwrap().clone();
    assert_eq!(first.len(), 3, "one ping per changed feed: {first:?}");
    assert!(
        first.contains(
            &"hub.mode=publish&hub.url=http%3A%2F%2Flocalhost%3A8080%2Ffeed.xml".to_string()
        ),
        "{first:?}"
    );
    herald.write_feeds(None).await.unwrap();
    assert_eq!(
        pings.lock().unwrap().len(),
        3,
        "no ping when nothing changed"
    );
}

#[tokio::test]
async fn feeds_and_digests_carry_only_their_sources() {
    let fixtures = crate::support::fixtures().join("feeds");
    let off = source("off", fixtures.join("rss091.xml").to_str().unwrap());
    let env = TestEnv::new(&format!(
        "{}{}{}\nenabled = false\n\n[feed]\nsources = [\"json\"]\n\n[[digests]]\nname = \"atom-only\"\nschedule = \"0 8 * * *\"\nsources = [\"atom\"]\n",
        source("atom", fixtures.join("atom.xml").to_str().unwrap()),
        source("json", fixtures.join("jsonfeed11.json").to_str().unwrap()),
        off.trim_end(),
    ));
    let herald = env.herald(&clock()).await;
    let report = herald.poll_sources(None).await.unwrap();
    assert_eq!(
        report.sources.len(),
        2,
        "a disabled source is not polled: {report:?}"
    );
    herald.enrich(EnrichScope::Stale).await.unwrap();
    herald.write_feeds(None).await.unwrap();
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(env.dir.path().join("public/feed.json")).unwrap())
            .unwrap();
    let titles: Vec<&str> = json["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["title"].as_str().unwrap())
        .collect();
    assert_eq!(
        titles,
        ["Third", "Second, in plain text"],
        "only the json source, newest first"
    );

    let out = env.dir.path().join("preview");
    let preview = herald.preview_digest("atom-only", &out).await.unwrap();
    assert_eq!(preview.posts, 2);
    let text = std::fs::read_to_string(out.join("atom-only.txt")).unwrap();
    assert!(
        text.contains("Tea & biscuits") && !text.contains("Third"),
        "{text}"
    );
}
