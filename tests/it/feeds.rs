//! Every feed shape herald must read, from fixture files through parse and normalize.

use herald::domain::NewPost;
use herald::ingest::{Normalizer, parse_feed};
use url::Url;

use crate::support::fixture;

fn read(name: &str, base: Option<&str>) -> Result<Vec<NewPost>, String> {
    let bytes = fixture(name);
    let feed = parse_feed(&bytes, None, base)?;
    let base = base.map(|b| Url::parse(b).expect("base"));
    Ok(Normalizer::new().normalize_feed(&feed, base.as_ref()).1)
}

#[test]
fn reads_rss_091() {
    let posts = read("rss091.xml", None).unwrap();
    assert_eq!(posts.len(), 2);
    assert_eq!(posts[0].title, "Hand-written HTML still works");
    assert_eq!(
        posts[0].url.as_deref(),
        Some("http://old.example.org/1999/handwritten.html")
    );
    assert_eq!(
        posts[0].stable_id.as_str(),
        "http://old.example.org/1999/handwritten.html"
    );
    assert_eq!(posts[0].text, "Tables for layout, bold for emphasis.");
    assert!(posts[0].published_at.is_none());
}

#[test]
fn reads_rss_10_rdf() {
    let posts = read("rss10.rdf", None).unwrap();
    assert_eq!(posts.len(), 2);
    assert_eq!(posts[0].title, "Notes on the semantic web");
    assert_eq!(
        posts[0].url.as_deref(),
        Some("https://rdf.example.org/notes/semantic")
    );
    assert_eq!(posts[0].author.as_deref(), Some("Ada Example"));
    assert_eq!(
        posts[0].published_at.map(|d| d.to_rfc3339()).as_deref(),
        Some("2026-10-01T12:00:00+00:00")
    );
}

#[test]
fn reads_rss_20_with_media_and_sanitizes_content() {
    let posts = read("rss20-media.xml", None).unwrap();
    let harbour = &posts[0];
    assert_eq!(harbour.stable_id.as_str(), "walk-0042");
    // the explicit thumbnail wins over the first image in the content
    assert_eq!(
        harbour.image.as_deref(),
        Some("https://cdn.example.org/harbour-thumb.jpg")
    );
    // relative URLs in content are resolved against the entry link
    assert!(
        harbour
            .html
            .contains(r#"href="https://photos.example.org/maps/harbour""#),
        "{}",
        harbour.html
    );
    assert!(
        harbour
            .html
            .contains(r#"src="https://photos.example.org/full/harbour.jpg""#),
        "{}",
        harbour.html
    );
    for banned in ["onerror", "script", "track()"] {
        assert!(
            !harbour.html.contains(banned),
            "{banned} in {}",
            harbour.html
        );
    }
    // tags de-duplicated case-insensitively, first spelling kept
    assert_eq!(harbour.tags, vec!["Photography", "Harbour"]);
    // the description is kept as the feed's summary, content:encoded is the body
    assert_eq!(harbour.feed_summary.as_deref(), Some("Fog over the water."));
    assert_eq!(
        harbour.published_at.map(|d| d.to_rfc3339()).as_deref(),
        Some("2026-11-14T06:02:00+00:00")
    );

    let forest = &posts[1];
    assert_eq!(
        forest.image.as_deref(),
        Some("https://cdn.example.org/forest.jpg")
    );
    for banned in ["iframe", "form", "input", "ads.example.net"] {
        assert!(!forest.html.contains(banned), "{banned} in {}", forest.html);
    }
    assert_eq!(forest.text, "Moss and beech leaves.");
}

#[test]
fn reads_atom_with_xml_base_and_html_titles() {
    let posts = read("atom.xml", None).unwrap();
    let tea = &posts[0];
    assert_eq!(tea.title, "Tea & biscuits");
    assert_eq!(tea.stable_id.as_str(), "tag:atom.example.org,2026:entry-1");
    assert_eq!(
        tea.url.as_deref(),
        Some("https://atom.example.org/2026/tea-and-biscuits")
    );
    assert!(
        tea.html
            .contains(r#"href="https://atom.example.org/2026/dunk-test""#),
        "{}",
        tea.html
    );
    assert_eq!(
        tea.image.as_deref(),
        Some("https://atom.example.org/2026/img/dunk.png")
    );
    assert_eq!(tea.tags, vec!["Food"]);
    assert_eq!(tea.author.as_deref(), Some("Grace Example"));
    assert_eq!(
        tea.feed_summary.as_deref(),
        Some("Which biscuit survives a dunk.")
    );
    assert_eq!(
        tea.published_at.map(|d| d.to_rfc3339()).as_deref(),
        Some("2026-11-19T08:00:00+00:00")
    );

    let updated = &posts[1];
    // no <published>: the updated date stands in
    assert_eq!(
        updated.published_at.map(|d| d.to_rfc3339()).as_deref(),
        Some("2026-11-18T08:00:00+00:00")
    );
    // type="text" content is text: the angle brackets are escaped, not parsed
    assert_eq!(
        updated.html,
        "<p>Plain text &lt;not a tag&gt; with<br>two lines.</p>"
    );
    assert_eq!(updated.text, "Plain text <not a tag> with\ntwo lines.");
}

#[test]
fn reads_json_feed_1_0() {
    let posts = read("jsonfeed10.json", None).unwrap();
    let post = &posts[0];
    assert_eq!(post.stable_id.as_str(), "https://json1.example.org/posts/1");
    assert_eq!(post.title, "First JSON post");
    assert_eq!(post.tags, vec!["json", "feeds"]);
    assert!(
        post.html
            .contains(r#"src="https://json1.example.org/a.png""#),
        "{}",
        post.html
    );
    assert_eq!(post.author.as_deref(), Some("Linus Example"));
}

#[test]
fn reads_json_feed_1_1_plain_text_and_summaries() {
    let posts = read("jsonfeed11.json", None).unwrap();
    let text = &posts[0];
    assert_eq!(
        text.html,
        "<p>Text only, &lt;b&gt; is not markup here.</p><p>Second paragraph.</p>"
    );
    assert_eq!(text.author.as_deref(), Some("Margaret Example"));
    assert_eq!(
        text.published_at.map(|d| d.to_rfc3339()).as_deref(),
        Some("2026-09-02T08:00:00+00:00")
    );
    let third = &posts[1];
    assert_eq!(third.html, "<p>HTML body.</p>");
    assert_eq!(third.feed_summary.as_deref(), Some("A short summary."));
}

#[test]
fn decodes_iso_8859_1_from_the_prolog() {
    let posts = read("latin1.xml", None).unwrap();
    assert_eq!(posts[0].title, "Café crème à la française");
    assert_eq!(
        posts[0].text,
        "Le café crème se prépare avec du lait chaud. Coût: 3 £."
    );
}

#[test]
fn decodes_windows_1252_from_the_prolog() {
    let posts = read("win1252.xml", None).unwrap();
    assert_eq!(
        posts[0].title,
        "\u{201c}Quoted\u{201d} \u{2013} it\u{2019}s 5 \u{20ac}\u{2026}"
    );
    assert_eq!(
        posts[0].text,
        "Naïve \u{201c}smart\u{201d} quotes cost \u{20ac}5 \u{2014} really."
    );
}

#[test]
fn recovers_what_a_malformed_document_holds_and_errors_when_it_holds_nothing() {
    // An unclosed title, a stray "<channel": the item is still there.
    let posts = read("malformed.xml", None).unwrap();
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].title, "Unclosed");
    // Cut off inside its only item: nothing to recover, and the error says so.
    let err = read("cut-off.xml", None).unwrap_err();
    assert!(
        err.starts_with("cannot parse it as RSS, Atom or JSON Feed")
            && err.contains("holds 1 entry but none could be read")
            && err.contains("ends inside <title>"),
        "{err}"
    );
}

#[test]
fn errors_on_an_html_page_and_names_its_feed() {
    let err = read("not-a-feed.html", None).unwrap_err();
    assert!(err.contains("HTML page"), "{err}");
    assert!(
        err.contains("https://www.example.org/blog/feed.xml"),
        "{err}"
    );
}

#[test]
fn reads_an_empty_feed_as_no_posts() {
    assert_eq!(read("empty.xml", None).unwrap(), Vec::new());
}

#[test]
fn entries_without_guid_or_link_keep_the_same_ids_across_reads() {
    let first = read("no-guid-no-link.xml", None).unwrap();
    let second = read("no-guid-no-link.xml", None).unwrap();
    assert_eq!(first.len(), 3);
    let ids: Vec<_> = first.iter().map(|p| p.stable_id.clone()).collect();
    assert_eq!(
        ids,
        second
            .iter()
            .map(|p| p.stable_id.clone())
            .collect::<Vec<_>>()
    );
    assert!(ids.iter().all(|id| id.as_str().starts_with("sha256:")));
    assert_eq!(
        first[2].title,
        "The third has no title either, only these words."
    );
    assert!(first.iter().all(|p| p.url.is_none()));
}

#[test]
fn the_example_blog_has_what_the_issue_asks_for() {
    let bytes = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/blog/feed.xml"
    ))
    .unwrap();
    let feed = parse_feed(&bytes, None, None).unwrap();
    let posts = Normalizer::new().normalize_feed(&feed, None).1;
    assert!(posts.len() >= 12, "{} posts", posts.len());
    assert!(
        posts.iter().any(|p| p.published_at.is_none()),
        "one post without a pubDate"
    );
    assert!(
        posts
            .iter()
            .any(|p| p.title == "Bread, Butter & the Art of Waiting\u{2026}"),
        "entities in a title"
    );
    assert!(
        posts.iter().any(|p| p.html.contains("<h2>"))
            && posts.iter().any(|p| p.html.contains("<li>"))
    );
    // the relative image became absolute and is the lead image
    assert!(
        posts
            .iter()
            .any(|p| p.image.as_deref() == Some("https://blog.example.org/images/starter-jar.jpg"))
    );
    let mut tags: Vec<&str> = posts
        .iter()
        .flat_map(|p| p.tags.iter().map(String::as_str))
        .collect();
    tags.sort_unstable();
    tags.dedup();
    assert!(tags.len() >= 4, "several topics: {tags:?}");
    assert!(posts.iter().all(|p| {
        p.url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://blog.example.org/"))
    }));
}
