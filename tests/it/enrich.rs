//! Summaries and related posts through the pipeline and the CLI, on a real SQLite file.

use herald::pipeline::EnrichScope;
use herald::store::PostFilter;

use crate::support::{FeedServer, TestEnv, clock, source};

/// An RSS item.
fn item(guid: &str, title: &str, date: &str, tags: &[&str], body: &str) -> String {
    let tags: String = tags
        .iter()
        .map(|t| format!("<category>{t}</category>"))
        .collect();
    format!(
        "<item><title>{title}</title><link>https://blog.example.org/{guid}</link><guid>{guid}</guid>\
         <pubDate>{date}</pubDate>{tags}<description><![CDATA[{body}]]></description></item>"
    )
}

fn rss(items: &[String]) -> String {
    format!(
        "<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>T</title><link>https://blog.example.org/</link>{}</channel></rss>",
        items.join("")
    )
}

fn base_items() -> Vec<String> {
    vec![
        item(
            "bread-1",
            "Sourdough starter basics",
            "Mon, 02 Nov 2026 10:00:00 +0000",
            &["baking"],
            "<p>Feed the sourdough starter flour and water every day. A lively starter doubles in a few hours. Keep the starter jar warm.</p>",
        ),
        item(
            "bike-1",
            "Fixing a flat tyre",
            "Tue, 03 Nov 2026 10:00:00 +0000",
            &["cycling"],
            "<p>Tyre levers, a spare tube and a pump fix a puncture. Check the tyre for glass before fitting the tube.</p>",
        ),
        item(
            "bread-2",
            "Baking sourdough bread",
            "Wed, 04 Nov 2026 10:00:00 +0000",
            &["baking"],
            "<p>A lively sourdough starter, strong flour and a long cold proof make good bread. Bake the bread hot.</p>",
        ),
        item(
            "bike-2",
            "Tyre pressure for cycling in winter",
            "Thu, 05 Nov 2026 10:00:00 +0000",
            &["cycling"],
            "<p>Lower tyre pressure grips wet roads. Carry a pump and a spare tube on every ride.</p>",
        ),
    ]
}

#[tokio::test]
async fn poll_writes_summaries_and_related_lists_of_older_posts() {
    let server = FeedServer::start(rss(&base_items())).await;
    let env = TestEnv::new(&source("blog", &server.url("/feed.xml")));
    let (code, stdout, stderr) = env.run(&["poll"]).await;
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("enriched: 4 summaries, 4 related lists (index rebuilt)"),
        "{stdout}"
    );

    let (_, stdout, _) = env.run(&["posts", "show", "3", "--json"]).await;
    let post: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(post["title"], "Baking sourdough bread");
    assert_eq!(
        post["summary"],
        "A lively sourdough starter, strong flour and a long cold proof make good bread. Bake the bread hot."
    );
    assert_eq!(post["summary_source"], "whole");
    let related = post["related"].as_array().unwrap();
    assert_eq!(related.len(), 1, "{related:?}");
    assert_eq!(related[0]["title"], "Sourdough starter basics");
    assert!(related[0]["score"].as_f64().unwrap() > 0.1);
    // The oldest post has nothing older to relate to: it fills its list with newer
    // posts on its topic (fill_with_newer, the default), never with off-topic ones.
    let (_, stdout, _) = env.run(&["posts", "show", "1", "--json"]).await;
    let post: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let related = post["related"].as_array().unwrap();
    assert_eq!(related.len(), 1, "{related:?}");
    assert_eq!(related[0]["title"], "Baking sourdough bread");

    let (_, text, _) = env.run(&["posts", "show", "4"]).await;
    assert!(text.contains("Related:\n  0."), "{text}");
    assert!(text.contains("#2  Fixing a flat tyre"), "{text}");
}

#[tokio::test]
async fn a_new_post_is_added_to_the_index_without_a_rebuild() {
    let server = FeedServer::start(rss(&base_items())).await;
    let env = TestEnv::new(&source("blog", &server.url("/feed.xml")));
    let clock = clock();
    let herald = env.herald(&clock).await;
    herald.poll_sources(None).await.unwrap();
    let first = herald.enrich(EnrichScope::Stale).await.unwrap();
    assert!(first.rebuilt);

    let mut items = base_items();
    items.push(item(
        "bread-3",
        "Rye sourdough",
        "Fri, 06 Nov 2026 10:00:00 +0000",
        &["baking"],
        "<p>Rye flour makes a dense sourdough bread. The starter ferments rye fast.</p>",
    ));
    server.state.set_body(rss(&items));
    herald.poll_sources(None).await.unwrap();
    let second = herald.enrich(EnrichScope::Stale).await.unwrap();
    assert_eq!(second.summarized, 1);
    assert!(!second.rebuilt, "one new post must not rebuild the index");
    // Its own list, and the list of the one older baking post whose list was short
    // ("Baking sourdough bread" had one older match); "Sourdough starter basics" had
    // none older and fills with newer ones, so it takes the rye post too.
    assert_eq!(second.related_lists, 3);

    let posts = herald
        .store
        .list_posts(&PostFilter::default())
        .await
        .unwrap();
    let rye = posts.iter().find(|p| p.title == "Rye sourdough").unwrap();
    let related = herald.store.related_posts(rye.id).await.unwrap();
    let titles: Vec<&str> = related.iter().map(|r| r.title.as_str()).collect();
    assert_eq!(
        &titles[..2],
        ["Baking sourdough bread", "Sourdough starter basics"],
        "{titles:?}"
    );

    let basics = posts
        .iter()
        .find(|p| p.title == "Sourdough starter basics")
        .unwrap();
    let related = herald.store.related_posts(basics.id).await.unwrap();
    assert!(
        related.iter().any(|r| r.title == "Rye sourdough"),
        "{related:?}"
    );

    // Nothing changed: nothing to do.
    let third = herald.enrich(EnrichScope::Stale).await.unwrap();
    assert_eq!(third.summarized, 0);
}

#[tokio::test]
async fn an_edited_post_gets_a_new_summary_and_list() {
    let server = FeedServer::start(rss(&base_items())).await;
    let env = TestEnv::new(&source("blog", &server.url("/feed.xml")));
    let herald = env.herald(&clock()).await;
    herald.poll_sources(None).await.unwrap();
    herald.enrich(EnrichScope::Stale).await.unwrap();

    let mut items = base_items();
    items[3] = item(
        "bike-2",
        "Tyre pressure for cycling in winter",
        "Thu, 05 Nov 2026 10:00:00 +0000",
        &["cycling"],
        "<p>Studded tyres grip ice. Lower pressure helps on snow.</p>",
    );
    server.state.set_body(rss(&items));
    herald.poll_sources(None).await.unwrap();
    let report = herald.enrich(EnrichScope::Stale).await.unwrap();
    assert_eq!(report.summarized, 1);
    let post = herald
        .store
        .list_posts(&PostFilter::default())
        .await
        .unwrap()
        .into_iter()
        .find(|p| p.title.starts_with("Tyre pressure"))
        .unwrap();
    assert_eq!(
        post.summary.as_deref(),
        Some("Studded tyres grip ice. Lower pressure helps on snow.")
    );
}

#[tokio::test]
async fn rebuild_recomputes_everything_and_agrees_with_incremental_lists() {
    // Half the posts first (the index is built), then the rest (added to it
    // incrementally): the lists must be those a rebuild from scratch computes.
    let items = base_items();
    let server = FeedServer::start(rss(&[items[0].clone(), items[1].clone()])).await;
    let env = TestEnv::new(&format!(
        "{}[enrich]\ninclude_newer = true\n",
        source("blog", &server.url("/feed.xml"))
    ));
    let herald = env.herald(&clock()).await;
    herald.poll_sources(None).await.unwrap();
    assert!(herald.enrich(EnrichScope::Stale).await.unwrap().rebuilt);
    server.state.set_body(rss(&items));
    herald.poll_sources(None).await.unwrap();
    let incremental = herald.enrich(EnrichScope::Stale).await.unwrap();
    assert!(!incremental.rebuilt, "the second run adds to the index");
    assert_eq!(incremental.summarized, 2);
    let before: Vec<_> = {
        let posts = herald
            .store
            .list_posts(&PostFilter::default())
            .await
            .unwrap();
        let mut lists = Vec::new();
        for p in &posts {
            lists.push(
                herald
                    .store
                    .related_posts(p.id)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|r| r.id)
                    .collect::<Vec<_>>(),
            );
        }
        lists
    };
    let report = herald.enrich(EnrichScope::Rebuild).await.unwrap();
    assert!(report.rebuilt);
    assert_eq!(report.summarized, 4);
    let posts = herald
        .store
        .list_posts(&PostFilter::default())
        .await
        .unwrap();
    for (p, old) in posts.iter().zip(before) {
        let new: Vec<_> = herald
            .store
            .related_posts(p.id)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(new, old, "post {}", p.id);
    }
    // with include_newer the oldest post now lists the newer one on its topic
    let oldest = posts
        .iter()
        .find(|p| p.title == "Sourdough starter basics")
        .unwrap();
    let related = herald.store.related_posts(oldest.id).await.unwrap();
    assert_eq!(
        related.first().map(|r| r.title.as_str()),
        Some("Baking sourdough bread")
    );
}

#[tokio::test]
async fn the_example_blog_gets_readable_summaries_within_budget() {
    let env = TestEnv::new(&source(
        "field-notes",
        concat!(env!("CARGO_MANIFEST_DIR"), "/examples/blog/feed.xml"),
    ));
    let (code, _, stderr) = env.run(&["poll"]).await;
    assert_eq!(code, 0, "{stderr}");
    let (_, stdout, _) = env.run(&["posts", "list", "--json"]).await;
    let posts: Vec<serde_json::Value> = serde_json::from_str(&stdout).unwrap();
    assert_eq!(posts.len(), 14);
    for post in &posts {
        let summary = post["summary"].as_str().unwrap();
        let words = summary.split_whitespace().count();
        assert!(
            (8..=60).contains(&words),
            "{}: {words} words: {summary}",
            post["title"]
        );
        assert!(summary.ends_with(['.', '!', '?', '\u{2026}']), "{summary}");
        assert!(!summary.contains("appeared first on"), "{summary}");
    }
    // The restic post's feed summary is WordPress boilerplate: the summary is extracted.
    let restic = posts
        .iter()
        .find(|p| p["title"] == "Backing up a home server with restic")
        .unwrap();
    assert!(
        restic["summary"]
            .as_str()
            .unwrap()
            .starts_with("A home server holds photos"),
        "{}",
        restic["summary"]
    );
}
