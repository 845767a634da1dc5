//! Feeds as the world writes them: every encoding, every format variant, JSON Feed with
//! odd fields, and broken markup. Each fixture is read the way a poll reads it (bytes,
//! the HTTP Content-Type, parse, normalize) and the posts that come out are checked.

use herald::domain::NewPost;
use herald::ingest::{Normalizer, Parsed, read_feed};

use crate::support::fixtures;

fn world(name: &str) -> Vec<u8> {
    std::fs::read(fixtures().join("feeds/world").join(name)).expect("fixture exists")
}

fn read_as(bytes: &[u8], content_type: Option<&str>) -> Result<(Parsed, Vec<NewPost>), String> {
    let parsed = read_feed(bytes, content_type, None)?;
    let posts = Normalizer::new().normalize_feed(&parsed.feed, None).1;
    Ok((parsed, posts))
}

fn read(name: &str) -> (Parsed, Vec<NewPost>) {
    read_as(&world(name), None).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn titles(posts: &[NewPost]) -> Vec<&str> {
    posts.iter().map(|p| p.title.as_str()).collect()
}

fn urls(posts: &[NewPost]) -> Vec<&str> {
    posts
        .iter()
        .map(|p| p.url.as_deref().unwrap_or(""))
        .collect()
}

fn dates(posts: &[NewPost]) -> Vec<String> {
    posts
        .iter()
        .map(|p| p.published_at.map(|d| d.to_rfc3339()).unwrap_or_default())
        .collect()
}

/// The item titles and descriptions of an encoding fixture, read from its UTF-8 source.
fn expected_items(text: &str) -> Vec<(String, String)> {
    let between = |s: &str, open: &str, close: &str| -> String {
        let start = s.find(open).map(|i| i + open.len()).unwrap_or(0);
        let end = s[start..].find(close).map_or(s.len(), |e| start + e);
        s[start..end].to_owned()
    };
    text.split("<item>")
        .skip(1)
        .map(|item| {
            (
                between(item, "<title>", "</title>"),
                between(item, "<description>", "</description>"),
            )
        })
        .collect()
}

// --- 1. Encodings -------------------------------------------------------------------

#[test]
fn every_legacy_encoding_reads_by_its_declaration() {
    let dir = fixtures().join("feeds/world/encodings");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name == "utf-16.xml" {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let label = text
            .split("encoding=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap();
        let encoding = encoding_rs::Encoding::for_label(label.as_bytes()).unwrap();
        let (bytes, _, unmappable) = encoding.encode(&text);
        assert!(!unmappable, "{name}: the fixture's text fits {label}");
        assert!(
            std::str::from_utf8(&bytes).is_err(),
            "{name}: really not UTF-8"
        );
        let expected = expected_items(&text);
        // As a static file server sends it (no charset), and as a misconfigured one does
        // (charset=utf-8 on bytes that are not): the declaration decides.
        for content_type in [None, Some("application/rss+xml; charset=utf-8")] {
            let (parsed, posts) =
                read_as(&bytes, content_type).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(parsed.encoding, Some(encoding.name()), "{name}");
            assert!(!parsed.replaced, "{name}");
            assert_eq!(posts.len(), 2, "{name}");
            for (post, (title, body)) in posts.iter().zip(&expected) {
                assert_eq!(&post.title, title, "{name}");
                assert_eq!(&post.text, body, "{name}");
            }
            assert_eq!(
                dates(&posts),
                ["2026-11-30T08:00:00+00:00", "2026-11-29T08:00:00+00:00"],
                "{name}"
            );
        }
        // Served with the right charset and no declaration at all: HTTP decides.
        let undeclared = text.replacen(&format!(" encoding=\"{label}\""), "", 1);
        let (bytes, _, _) = encoding.encode(&undeclared);
        let content_type = format!("text/xml; charset={label}");
        let (parsed, posts) = read_as(&bytes, Some(&content_type)).unwrap();
        assert_eq!(parsed.encoding, Some(encoding.name()), "{name} over HTTP");
        assert_eq!(posts[0].title, expected[0].0, "{name} over HTTP");
        checked += 1;
    }
    assert!(checked >= 18, "{checked} encodings");
}

#[test]
fn utf16_reads_either_way_round_with_or_without_a_bom() {
    let text = String::from_utf8(world("encodings/utf-16.xml")).unwrap();
    let le: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let be: Vec<u8> = text.encode_utf16().flat_map(u16::to_be_bytes).collect();
    let with_bom = |bom: [u8; 2], body: &[u8]| [&bom[..], body].concat();
    let variants = [
        ("LE", le.clone(), "UTF-16LE"),
        ("BE", be.clone(), "UTF-16BE"),
        ("LE+BOM", with_bom([0xFF, 0xFE], &le), "UTF-16LE"),
        ("BE+BOM", with_bom([0xFE, 0xFF], &be), "UTF-16BE"),
    ];
    for (name, bytes, encoding) in variants {
        let (parsed, posts) = read_as(&bytes, Some("application/atom+xml")).unwrap();
        assert_eq!(parsed.encoding, Some(encoding), "{name}");
        assert_eq!(
            titles(&posts),
            [
                "Canteen menu: crème brûlée on Friday",
                "Heating maintenance this weekend"
            ],
            "{name}"
        );
        assert_eq!(
            posts[0].text, "The Tokyo office (東京) sends its regards — and the recipe.",
            "{name}"
        );
        assert_eq!(
            urls(&posts),
            [
                "https://intranet.example.com/news/canteen-friday",
                "https://intranet.example.com/news/heating"
            ]
        );
    }
}

/// feed-rs, given UTF-16BE bytes itself, panics inside quick-xml ("set_encoding() called
/// after prefix buffer was drained"); herald decodes first, so it never sees them.
#[test]
fn the_utf16_crash_is_reproduced_and_gone() {
    let text = String::from_utf8(world("encodings/utf-16.xml")).unwrap();
    let be: Vec<u8> = text.encode_utf16().flat_map(u16::to_be_bytes).collect();
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let crashed = std::panic::catch_unwind(|| feed_rs::parser::parse(&be[..]).is_ok()).is_err();
    std::panic::set_hook(hook);
    assert!(
        crashed,
        "feed-rs no longer panics on raw UTF-16BE: this reproduction can go"
    );
    let (_, posts) = read_as(&be, None).unwrap();
    assert_eq!(posts.len(), 2);
}

#[test]
fn a_wrong_declaration_falls_back_to_what_the_bytes_are() {
    // Declared windows-1251 by a template nobody updated; the bytes are UTF-8.
    let text = String::from_utf8(world("encodings/euc-kr.xml")).unwrap();
    let lying = text.replace("encoding=\"EUC-KR\"", "encoding=\"Shift_JIS\"");
    let (parsed, posts) = read_as(lying.as_bytes(), None).unwrap();
    assert_eq!(parsed.encoding, None, "read as UTF-8");
    assert_eq!(posts[0].title, "서울에 첫눈이 내렸습니다");
}

// --- 2. Format variants -------------------------------------------------------------

#[test]
fn reads_rss_090() {
    let (parsed, posts) = read("rss090.rdf");
    assert_eq!(parsed.entries_seen, 2);
    assert!(parsed.recovered.is_none(), "well-formed: not marked");
    assert_eq!(
        titles(&posts),
        [
            "Mozilla source code released to the public",
            "Linux kernel 2.2 ships with SMP improvements"
        ]
    );
    assert_eq!(
        posts[0].url.as_deref(),
        Some("http://headlines.example.net/articles/99/03/31/mozilla.shtml")
    );
    assert_eq!(
        posts[0].stable_id.as_str(),
        "http://headlines.example.net/articles/99/03/31/mozilla.shtml"
    );
}

#[test]
fn reads_rss_10_with_its_items_outside_the_channel_in_latin1() {
    let (_, posts) = read("rss10-items-outside.rdf");
    assert_eq!(
        titles(&posts),
        ["Nach dem Oktoberfest", "Ein Sonntag an der Isar"]
    );
    assert_eq!(posts[0].author.as_deref(), Some("Jörg"));
    assert_eq!(
        posts[0].text,
        "Die Stadt ist wieder ruhig. Grüße an alle, die gefeiert haben."
    );
    assert_eq!(
        dates(&posts),
        ["2003-10-06T19:15:00+00:00", "2003-09-14T16:00:00+00:00"]
    );
}

#[test]
fn reads_rss_20_items_written_after_the_channel() {
    let (parsed, posts) = read("rss20-items-after-channel.xml");
    assert_eq!(parsed.entries_seen, 2);
    assert_eq!(
        urls(&posts),
        [
            "https://gazette.example.co.uk/news/bypass-consultation",
            "https://gazette.example.co.uk/news/library-hours"
        ]
    );
    assert_eq!(
        posts[1].text,
        "The central library will stay open until 5pm from January."
    );
    assert_eq!(dates(&posts)[0], "2026-11-26T16:45:00+00:00");
}

#[test]
fn reads_rss_20_with_a_default_namespace() {
    let (_, posts) = read("rss20-userland-ns.xml");
    assert_eq!(
        titles(&posts),
        [
            "Outliners are the original thinking tool",
            "Podcasting, one year in"
        ]
    );
    assert_eq!(
        posts[0].stable_id.as_str(),
        "http://scripting.example.com/2004/05/outliners.html"
    );
    assert_eq!(
        dates(&posts),
        ["2004-05-11T14:02:11+00:00", "2005-08-13T09:30:00+00:00"]
    );
}

#[test]
fn reads_atom_03() {
    let (_, posts) = read("atom03.xml");
    assert_eq!(
        titles(&posts),
        [
            "Accessibility tip: label your form fields",
            "Why I switched to Atom"
        ]
    );
    assert_eq!(
        posts[0].stable_id.as_str(),
        "tag:notes.example.org,2004:/2004/01/12/labels"
    );
    assert_eq!(
        posts[0].text,
        "Screen readers announce the label, not the placeholder. Use both."
    );
    assert_eq!(
        posts[1].text,
        "One format, one spec, and dates I can parse."
    );
    assert_eq!(dates(&posts)[0], "2004-01-12T13:14:00+00:00");
    assert_eq!(posts[0].author.as_deref(), Some("Mark Example"));
}

#[test]
fn reads_atom_with_xhtml_content_titles_and_summaries() {
    let (parsed, posts) = read("atom-xhtml.xml");
    assert!(parsed.recovered.is_none());
    assert_eq!(titles(&posts), ["Rye, slowly", "Scoring a loaf"]);
    assert_eq!(
        posts[0].text,
        "A rye starter wants a warmer kitchen than wheat does, around 28 degrees.\nFeed it twice a day and it will double in six hours."
    );
    assert!(
        posts[0].html.contains("<p>A rye starter"),
        "{}",
        posts[0].html
    );
    assert_eq!(posts[1].text, "One confident cut at a shallow angle.");
    assert_eq!(posts[0].tags, ["rye"]);
    assert_eq!(posts[0].author.as_deref(), Some("Noor Haddad"));
    assert_eq!(
        dates(&posts),
        ["2026-11-20T07:00:00+00:00", "2026-11-13T07:00:00+00:00"]
    );
}

#[test]
fn an_empty_valid_feed_is_empty_not_an_error() {
    let (parsed, posts) = read("atom-empty.xml");
    assert_eq!((parsed.entries_seen, posts.len()), (0, 0));
    assert_eq!(
        parsed.feed.title.map(|t| t.content).as_deref(),
        Some("New Ghost site")
    );
}

// --- 3. JSON Feed -------------------------------------------------------------------

#[test]
fn json_feed_is_read_field_by_field() {
    let (parsed, posts) = read("jsonfeed-lenient.json");
    assert_eq!(parsed.entries_seen, 4);
    assert_eq!(
        posts.len(),
        3,
        "the item that is a string is dropped, no more"
    );
    assert_eq!(
        posts[0].stable_id.as_str(),
        "20261128",
        "a numeric id as text"
    );
    assert_eq!(posts[0].title, "First frost");
    assert_eq!(posts[0].tags, ["garden", "weather", "winter"]);
    assert_eq!(dates(&posts)[0], "2026-11-28T12:05:00+00:00");
    assert_eq!(posts[1].tags, ["baking", "42"]);
    assert_eq!(posts[1].author.as_deref(), Some("Sam"));
    assert_eq!(
        posts[1].text,
        "Baked two loaves. One for us, one for the neighbours who lent the ladder."
    );
    // The list where a title belongs goes; the body stays and names the post.
    assert_eq!(
        posts[2].text,
        "A post whose title is a list still has a body."
    );
    assert!(posts[2].title.starts_with("A post whose title is a list"));
    assert_eq!(
        urls(&posts)[2],
        "https://micro.example.blog/2026/11/20/odd.html"
    );
    let dropped = parsed.dropped.join("; ");
    assert!(dropped.contains("item 2 (not an object)"), "{dropped}");
    assert!(dropped.contains("item 4: title (not text)"), "{dropped}");
    assert!(dropped.contains("version"), "{dropped}");
}

#[test]
fn json_feed_without_a_version_or_with_an_unknown_1x_reads() {
    let (_, posts) = read("jsonfeed-no-version.json");
    assert_eq!(
        titles(&posts),
        ["2.4.0: faster startup", "2.3.1: a crash on Windows fixed"]
    );
    assert_eq!(posts[0].stable_id.as_str(), "v2.4.0");
    let (_, posts) = read("jsonfeed-1x.json");
    assert_eq!(titles(&posts), ["Still readable"]);
}

// --- 4. Malformed XML ---------------------------------------------------------------

#[test]
fn html_entities_and_bare_ampersands_are_repaired() {
    let (parsed, posts) = read("wordpress-entities.xml");
    let error = parsed.recovered.expect("marked as recovered");
    assert!(error.contains("undefined entity &eacute;"), "{error}");
    assert_eq!(
        titles(&posts),
        [
            "Why our espresso tastes different in winter …",
            "Résumé of a barista: five years, 40,000 flat whites"
        ]
    );
    assert_eq!(
        urls(&posts)[0],
        "https://cafesociety.example.com/2026/11/30/espresso-in-winter/?utm_source=rss&utm_medium=rss"
    );
    assert_eq!(
        posts[0].stable_id.as_str(),
        "https://cafesociety.example.com/?p=1182"
    );
    assert_eq!(posts[0].author.as_deref(), Some("Ines Moreau"));
    assert_eq!(
        posts[1].text,
        "Milk at 60°C, not a degree more. A few things I’ve learned."
    );
    assert_eq!(
        parsed.feed.title.map(|t| t.content).as_deref(),
        Some("Café Society – Notes from a small roastery")
    );
}

#[test]
fn junk_before_the_declaration_is_skipped() {
    let (_, posts) = read("php-warning-before.xml");
    assert_eq!(titles(&posts), ["Water troughs switched off for winter"]);
    assert_eq!(
        posts[0].image.as_deref(),
        Some("https://allotments.example.org/wp-content/uploads/troughs.jpg"),
        "the strict parser read it whole, enclosure and all"
    );
}

#[test]
fn misnested_and_unclosed_tags_keep_every_item() {
    let (parsed, posts) = read("blogger-misnested.xml");
    assert!(parsed.recovered.is_some());
    assert_eq!(
        titles(&posts),
        [
            "The class 37 at Carlisle",
            "Timetable changes from December",
            "Fog on the Settle line"
        ]
    );
    assert_eq!(
        urls(&posts)[1],
        "http://railnotes.example.blogspot.com/2026/11/timetable.html"
    );
    assert!(
        posts[0].text.starts_with("Caught the class 37 at Carlisle"),
        "{}",
        posts[0].text
    );
    assert!(
        posts[0].text.contains("Photos tomorrow."),
        "{}",
        posts[0].text
    );
    assert_eq!(
        posts[2].stable_id.as_str(),
        "tag:blogger.com,1999:blog-7781.post-999"
    );
    assert_eq!(dates(&posts)[1], "2026-11-26T09:00:00+00:00");
}

#[test]
fn an_unterminated_cdata_section_loses_nothing_after_it() {
    let (parsed, posts) = read("news-unterminated-cdata.xml");
    assert!(parsed.recovered.is_some());
    assert_eq!(
        titles(&posts),
        [
            "Council approves new ferry terminal",
            "Storm warning for the weekend",
            "Night market returns to the waterfront"
        ]
    );
    assert_eq!(
        posts[1].text,
        "Gusts of 110 km/h are forecast along the coast from Saturday morning."
    );
    assert_eq!(posts[2].text, "Forty stalls, every Friday until Easter.");
}

#[test]
fn a_document_cut_off_mid_item_keeps_the_complete_items() {
    let (parsed, posts) = read("medium-truncated.xml");
    assert_eq!(parsed.entries_seen, 3);
    assert!(parsed.recovered.is_some());
    assert_eq!(
        titles(&posts),
        ["What a year of on-call taught me", "Runbooks nobody reads"]
    );
    assert_eq!(posts[0].tags, ["sre", "on-call"]);
    assert_eq!(
        posts[1].stable_id.as_str(),
        "https://medium.example.com/p/8e1d2c3b4a5f"
    );
    assert_eq!(dates(&posts)[1], "2026-11-16T08:02:40+00:00");
    assert!(parsed.dropped.join(" ").contains("1 entry cut off"));
}

/// A pasted page with tens of thousands of nested elements once held the html5ever tree
/// builder for half a minute; the nesting cap keeps the text and drops the deep tags.
#[test]
fn deeply_nested_markup_keeps_its_text_and_its_neighbours() {
    let n = 20_000; // 220 KB: under the body cap, 80 times past the nesting cap
    let deep = format!(
        "{}<p>The quarterly numbers are in.</p>{}",
        "<div><span>".repeat(n),
        "</span></div>".repeat(n)
    );
    let feed = format!(
        "<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>Pasted</title>\
         <item><title>{b}Numbers{eb}</title><link>https://ex.example/q</link>\
         <description><![CDATA[{deep}]]></description></item>\
         <item><title>Plain</title><link>https://ex.example/p</link>\
         <description>A plain post.</description></item></channel></rss>",
        b = "&lt;b&gt;".repeat(n),
        eb = "&lt;/b&gt;".repeat(n),
    );
    let (parsed, posts) = read_as(feed.as_bytes(), None).expect("reads");
    assert_eq!(parsed.entries_seen, 2);
    assert_eq!(titles(&posts), ["Numbers", "Plain"]);
    let html = &posts[0].html;
    assert!(
        html.contains("The quarterly numbers are in."),
        "{html:.200}"
    );
    assert!(html.matches("<div>").count() <= herald::ingest::html::MAX_DEPTH);
    assert_eq!(posts[0].text, "The quarterly numbers are in.");
    assert_eq!(posts[1].text, "A plain post.");
}

/// A lost `]]>` that runs into the next entry's CDATA leaves a well-formed document
/// with one entry fewer: herald notices, and reads every entry.
#[test]
fn a_cdata_section_that_swallows_the_next_entry_loses_nothing() {
    let feed = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<rss version=\"2.0\" xmlns:content=\"http://purl.org/rss/1.0/modules/content/\"><channel><title>Ledger</title>\n\
        <item><title>Council backs the new bridge</title><link>https://news.example.com/bridge</link>\
        <content:encoded><![CDATA[<p>The vote was 7 to 2.</p></content:encoded></item>\n\
        <item><title>Library hours extended</title><link>https://news.example.com/library</link>\
        <content:encoded><![CDATA[<p>Open until nine on weekdays.</p>]]></content:encoded></item>\n\
        <item><title>Harbour dredging starts</title><link>https://news.example.com/harbour</link>\
        <content:encoded><![CDATA[<p>Work runs until March.</p>]]></content:encoded></item>\n\
        </channel></rss>";
    let (parsed, posts) = read_as(feed.as_bytes(), None).expect("reads");
    assert_eq!(
        titles(&posts),
        [
            "Council backs the new bridge",
            "Library hours extended",
            "Harbour dredging starts"
        ]
    );
    assert_eq!(posts[0].text, "The vote was 7 to 2.");
    assert_eq!(posts[1].text, "Open until nine on weekdays.");
    let error = parsed.recovered.expect("marked as recovered");
    assert!(error.contains("CDATA section"), "{error}");
}

// --- 5. Never silent ----------------------------------------------------------------

#[test]
fn entries_that_yield_nothing_are_an_error_with_the_reason_and_empty_ones_are_kept() {
    // Entries feed-rs refuses (an unknown title type) with nothing else in them: kept as
    // untitled posts, as feed-rs itself keeps an empty <item></item>.
    let doc = b"<feed xmlns=\"http://www.w3.org/2005/Atom\"><entry><title type=\"application/xhtml+xml\">\n</title></entry><entry><content type=\"\"/></entry></feed>";
    let (parsed, posts) = read_as(doc, None).unwrap();
    assert_eq!(parsed.feed.entries.len(), 2);
    // Two empty entries are the same entry (same content, no id): stored once.
    assert_eq!(titles(&posts), ["Untitled post"]);
    let (_, posts) = read_as(
        b"<rss version=\"2.0\"><channel><item></item></channel></rss>",
        None,
    )
    .unwrap();
    assert_eq!(titles(&posts), ["Untitled post"]);
    // Cut off inside the first entry.
    let err = read_as(
        b"<rss version=\"2.0\"><channel><title>t</title><item><title>Half",
        None,
    )
    .unwrap_err();
    assert!(
        err.contains("holds 1 entry but none could be read: the document is malformed"),
        "{err}"
    );
    let err = read_as(
        b"{\"version\":\"https://jsonfeed.org/version/1.1\",\"title\":\"t\",\"items\":[1,2]}",
        None,
    )
    .unwrap_err();
    assert!(
        err.contains("holds 2 items but none could be read"),
        "{err}"
    );
    let err = read_as(
        b"<service xmlns=\"http://www.w3.org/2007/app\"><workspace/></service>",
        None,
    )
    .unwrap_err();
    assert!(err.contains("root element is <service>"), "{err}");
}

// --- Polls: the report, the store, and a crash ---------------------------------------

use herald::pipeline::PollOutcome;
use herald::store::PostFilter;

use crate::support::{CorpusServer, TestEnv, clock, fixture, source};

fn encoded(name: &str) -> Vec<u8> {
    let text = String::from_utf8(world(&format!("encodings/{name}"))).unwrap();
    let label = text
        .split("encoding=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap();
    let encoding = encoding_rs::Encoding::for_label(label.as_bytes()).unwrap();
    encoding.encode(&text).0.into_owned()
}

#[tokio::test]
async fn a_poll_of_good_odd_and_broken_feeds_stores_recovers_and_names_the_rest() {
    let server = CorpusServer::start().await;
    let rss = "application/rss+xml; charset=UTF-8";
    let sources = [
        (
            "cafe",
            server.put("cafe.xml", world("wordpress-entities.xml"), rss),
        ),
        (
            "tokyo",
            server.put("tokyo.xml", encoded("shift_jis.xml"), "text/xml"),
        ),
        (
            "moscow",
            server.put(
                "moscow.xml",
                encoded("koi8-r.xml"),
                "application/rss+xml; charset=koi8-r",
            ),
        ),
        (
            "bakery",
            server.put(
                "bakery.xml",
                world("atom-xhtml.xml"),
                "application/atom+xml",
            ),
        ),
        (
            "ghost",
            server.put("ghost.xml", world("atom-empty.xml"), "application/atom+xml"),
        ),
        (
            "micro",
            server.put(
                "micro.json",
                world("jsonfeed-lenient.json"),
                "application/feed+json",
            ),
        ),
        (
            "rail",
            server.put("rail.xml", world("blogger-misnested.xml"), rss),
        ),
        (
            "old",
            server.put("old.rdf", world("rss090.rdf"), "application/rdf+xml"),
        ),
        (
            "page",
            server.put(
                "page.html",
                fixture("not-a-feed.html"),
                "text/html; charset=utf-8",
            ),
        ),
        ("cut", server.put("cut.xml", fixture("cut-off.xml"), rss)),
        ("gone", format!("http://{}/gone.xml", server.addr)),
    ];
    let config: String = sources
        .iter()
        .map(|(name, url)| source(name, url))
        .collect();
    let env = TestEnv::new(&config);
    let (code, stdout, stderr) = env.run(&["poll"]).await;
    assert_eq!(code, 2, "some sources failed: {stdout}\n{stderr}");
    let line = |name: &str| -> String {
        stdout
            .lines()
            .filter(|l| l.starts_with(&format!("{name}: ")))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert!(
        line("cafe").starts_with("cafe: 2 new, 0 updated, 0 unchanged (2 entries)"),
        "{stdout}"
    );
    assert!(
        line("cafe")
            .contains("cafe: WARNING: the document is malformed (undefined entity &eacute;"),
        "{stdout}"
    );
    assert_eq!(
        line("tokyo"),
        "tokyo: 2 new, 0 updated, 0 unchanged (2 entries, decoded from Shift_JIS)"
    );
    assert_eq!(
        line("moscow"),
        "moscow: 2 new, 0 updated, 0 unchanged (2 entries, decoded from KOI8-R)"
    );
    assert_eq!(
        line("bakery"),
        "bakery: 2 new, 0 updated, 0 unchanged (2 entries)"
    );
    assert_eq!(
        line("ghost"),
        "ghost: 0 new, 0 updated, 0 unchanged (0 entries)"
    );
    assert_eq!(
        line("micro"),
        "micro: 3 new, 0 updated, 0 unchanged (4 entries, 1 unreadable)"
    );
    assert!(line("rail").starts_with("rail: 3 new"), "{stdout}");
    assert!(
        line("rail").contains("WARNING: the document is malformed"),
        "{stdout}"
    );
    assert_eq!(
        line("old"),
        "old: 2 new, 0 updated, 0 unchanged (2 entries)"
    );
    // Every failure names the source, the URL and what to do.
    let page = line("page");
    assert!(
        page.contains("FAILED") && page.contains(&sources[8].1),
        "{page}"
    );
    assert!(
        page.contains("https://www.example.org/blog/feed.xml; use that URL"),
        "{page}"
    );
    let cut = line("cut");
    assert!(
        cut.contains(&sources[9].1) && cut.contains("holds 1 entry but none could be read"),
        "{cut}"
    );
    assert!(
        cut.contains("check that the source points at the feed itself"),
        "{cut}"
    );
    let gone = line("gone");
    assert!(
        gone.contains(&sources[10].1) && gone.contains("HTTP 404"),
        "{gone}"
    );
    assert!(gone.contains("find its new URL"), "{gone}");
    assert!(
        stdout.contains("polled 11 sources: 16 new posts, 3 failed"),
        "{stdout}"
    );

    // The recovered posts say so; the strictly read ones do not.
    let herald = env.herald(&clock()).await;
    let cafe = herald
        .store
        .list_posts(&PostFilter {
            source: Some("cafe".into()),
            limit: None,
        })
        .await
        .unwrap();
    assert!(cafe.iter().all(|p| p.recovered));
    let tokyo = herald
        .store
        .list_posts(&PostFilter {
            source: Some("tokyo".into()),
            limit: None,
        })
        .await
        .unwrap();
    assert!(tokyo.iter().all(|p| !p.recovered));
    assert!(tokyo.iter().any(|p| p.title == "東京の紅葉が見頃です"));
    herald.close().await;
    let (code, shown, _) = env.run(&["posts", "show", &cafe[0].id.to_string()]).await;
    assert_eq!(code, 0);
    assert!(
        shown.contains("recovered from a malformed document"),
        "{shown}"
    );
    let (_, shown, _) = env.run(&["posts", "show", &tokyo[0].id.to_string()]).await;
    assert!(!shown.contains("recovered"), "{shown}");
}

#[tokio::test]
async fn a_recovered_copy_never_overwrites_a_strictly_read_one() {
    let server = CorpusServer::start().await;
    let strict = "<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>Town</title>\
        <item><title>Market day</title><guid>m1</guid><description>Stalls from eight.</description></item>\
        </channel></rss>";
    let url = server.put("town.xml", strict, "application/rss+xml");
    let env = TestEnv::new(&source("town", &url));
    let herald = env.herald(&clock()).await;
    herald.poll_sources(None).await.unwrap();

    // The feed breaks (bare ampersands), an old item reads differently through the
    // repair, and a new item appears.
    let broken = "<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>Town</title>\
        <item><title>Council & notes</title><guid>c2</guid><description>Bins on Tuesday.</description></item>\
        <item><title>Market & day</title><guid>m1</guid><description>Stalls from eight.</description></item>\
        </channel></rss>";
    server.put("town.xml", broken, "application/rss+xml");
    let report = herald.poll_sources(None).await.unwrap();
    match &report.sources[0].outcome {
        PollOutcome::Stored { changes, notes, .. } => {
            assert_eq!(
                (changes.new.len(), changes.updated.len(), changes.unchanged),
                (1, 0, 1)
            );
            assert!(notes.recovered.is_some());
        }
        other => panic!("{other:?}"),
    }
    let posts = herald
        .store
        .list_posts(&PostFilter::default())
        .await
        .unwrap();
    let market = posts.iter().find(|p| p.stable_id.as_str() == "m1").unwrap();
    assert_eq!(market.title, "Market day", "the strict copy stays");
    assert!(!market.recovered);
    let council = posts.iter().find(|p| p.stable_id.as_str() == "c2").unwrap();
    assert!(council.recovered);

    // Repaired at the source: the strict copy of the recovered post replaces it.
    let fixed = broken.replace(" & ", " &amp; ");
    server.put("town.xml", fixed, "application/rss+xml");
    herald.poll_sources(None).await.unwrap();
    let posts = herald
        .store
        .list_posts(&PostFilter::default())
        .await
        .unwrap();
    assert!(posts.iter().all(|p| !p.recovered), "{posts:?}");
    herald.close().await;
}

#[tokio::test]
async fn a_source_that_crashes_the_parser_fails_alone() {
    let server = CorpusServer::start().await;
    let marker = "crash-me-7f3a91";
    let feed = |title: &str| {
        format!(
            "<rss version=\"2.0\"><channel><title>{title}</title><item><title>{title} post</title>\
             <guid>{title}-1</guid><description>Text.</description></item></channel></rss>"
        )
    };
    let config = [
        source(
            "first",
            &server.put("first.xml", feed("first"), "application/rss+xml"),
        ),
        source(
            "crashing",
            &server.put("crashing.xml", feed(marker), "application/rss+xml"),
        ),
        source(
            "last",
            &server.put("last.xml", feed("last"), "application/rss+xml"),
        ),
    ]
    .concat();
    let env = TestEnv::new(&config);
    let herald = env.herald(&clock()).await;
    herald::ingest::testing::crash_on_documents_containing(Some(marker.as_bytes()));
    let report = herald.poll_sources(None).await;
    herald::ingest::testing::crash_on_documents_containing(None);
    let report = report.unwrap();
    let by_name = |name: &str| {
        &report
            .sources
            .iter()
            .find(|s| s.name == name)
            .unwrap()
            .outcome
    };
    assert!(matches!(
        by_name("first"),
        PollOutcome::Stored { entries: 1, .. }
    ));
    assert!(matches!(
        by_name("last"),
        PollOutcome::Stored { entries: 1, .. }
    ));
    match by_name("crashing") {
        PollOutcome::Failed { error, .. } => {
            assert!(error.contains("source \"crashing\""), "{error}");
            assert!(
                error.contains("crashing.xml") && error.contains("crashed"),
                "{error}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(herald.store.count_posts(None).await.unwrap(), 2);
    herald.close().await;
}
