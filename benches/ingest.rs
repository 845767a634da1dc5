//! Ingest throughput: parse + normalize + store on a generated feed of 5,000 items with
//! realistic HTML bodies, compared with Python feedparser on the same bytes.
//!
//! `cargo bench --bench ingest` prints items/s and MB/s for each stage and, when
//! `python3 -c "import feedparser"` works (`pip install feedparser`), feedparser's time on
//! the same file and the ratio. The generated feed is written to `target/bench-feed.xml`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use std::sync::Arc;

use herald::clock::FixedClock;
use herald::config::Secrets;
use herald::ingest::{Normalizer, parse_feed};
use herald::pipeline::{Body, Herald};

const ITEMS: usize = 5_000;
const RUNS: usize = 5;

fn main() {
    let feed = generate_feed(ITEMS);
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-feed.xml");
    std::fs::write(&path, &feed).unwrap();
    let mb = feed.len() as f64 / 1e6;
    println!("feed: {ITEMS} items, {:.2} MB ({})", mb, path.display());

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let normalizer = Normalizer::new();

    let parse = median(RUNS, || {
        let started = Instant::now();
        let parsed = parse_feed(&feed, None, Some("https://bench.example.org/feed.xml")).unwrap();
        assert_eq!(parsed.entries.len(), ITEMS);
        started.elapsed()
    });
    report("parse (feed-rs)", parse, mb);

    let normalize = median(RUNS, || {
        let started = Instant::now();
        let parsed = parse_feed(&feed, None, Some("https://bench.example.org/feed.xml")).unwrap();
        let (_, posts) = normalizer.normalize_feed(&parsed, None);
        assert_eq!(posts.len(), ITEMS);
        started.elapsed()
    });
    report("parse + normalize", normalize, mb);

    // The whole ingest path as a poll runs it: parse, normalize on all cores, and store
    // the normalized chunks in one transaction while later ones are still being sanitized.
    let full = median(RUNS, || {
        runtime.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let text = format!(
                "[site]\ntitle = \"Bench\"\nbase_url = \"https://bench.example.org/\"\n[store]\nurl = \"sqlite://{}/bench.db\"\n[[sources]]\nname = \"bench\"\nurl = \"{}\"\nmax_body = \"64MiB\"\n",
                dir.path().display(),
                path.display()
            );
            let config = herald::config::parse(&text, std::path::Path::new("bench.toml")).unwrap();
            let now = Utc.with_ymd_and_hms(2026, 11, 28, 9, 0, 0).unwrap();
            let herald = Herald::open_with(config, Arc::new(FixedClock::new(now)), Secrets::default()).await.unwrap();
            let ids = herald.store.sync_sources(&herald.config.sources, now).await.unwrap();
            let source = herald.config.sources[0].clone();
            let body = Body {
                bytes: feed.clone(),
                url: Some("https://bench.example.org/feed.xml".into()),
                content_type: None,
                etag: None,
                last_modified: None,
                next_check_at: now,
            };
            let started = Instant::now();
            let (entries, outcome, _) = herald.ingest_body(&source, ids["bench"], body, now).await.unwrap();
            let elapsed = started.elapsed();
            assert_eq!((entries, outcome.new.len()), (ITEMS, ITEMS));
            herald.close().await;
            elapsed
        })
    });
    report("parse + normalize + store", full, mb);

    match feedparser_seconds(&path) {
        Some(secs) => {
            let fp = Duration::from_secs_f64(secs);
            report("python feedparser (parse only)", fp, mb);
            println!(
                "ratio: herald parse+normalize+store is {:.1}x faster than feedparser (target >= 20x)",
                fp.as_secs_f64() / full.as_secs_f64()
            );
        }
        None => println!("feedparser: not available (pip install feedparser) — no ratio"),
    }
    entity_scaling(&normalizer);
}

/// An item made of `&amp;x;` repeated (issue 16): parse + normalize must grow linearly
/// with the number of references, for RSS and JSON Feed alike. Beside it, the plain
/// ammonia clean-and-serialize herald used before (quadratic) on the same text.
fn entity_scaling(normalizer: &Normalizer) {
    println!("entity-dense items (parse + normalize one item of N `&amp;x;`):");
    let mut first: Option<(usize, f64)> = None;
    for refs in [20_000usize, 40_000, 100_000] {
        let text = "&amp;x;".repeat(refs);
        let rss = format!(
            "<rss version=\"2.0\"><channel><title>t</title><item><title>e</title><guid>e</guid><description>{text}</description></item></channel></rss>"
        );
        let json = format!(
            "{{\"version\":\"https://jsonfeed.org/version/1.1\",\"title\":\"t\",\"items\":[{{\"id\":\"e\",\"content_html\":\"{text}\"}}]}}"
        );
        for (format, bytes) in [("rss", rss.as_bytes()), ("json", json.as_bytes())] {
            let took = median(3, || {
                let started = Instant::now();
                let parsed = parse_feed(bytes, None, None).unwrap();
                let (_, posts) = normalizer.normalize_feed(&parsed, None);
                assert_eq!(posts.len(), 1);
                started.elapsed()
            });
            let per_ref = took.as_secs_f64() * 1e9 / refs as f64;
            println!(
                "  {format:<4} {refs:>7} refs: {:>8.1} ms ({per_ref:.0} ns/ref)",
                took.as_secs_f64() * 1e3
            );
            if format == "rss" {
                match first {
                    None => first = Some((refs, took.as_secs_f64())),
                    Some((r0, t0)) => println!(
                        "       {:.1}x the refs took {:.1}x the time (linear: {:.1}x, quadratic: {:.0}x)",
                        refs as f64 / r0 as f64,
                        took.as_secs_f64() / t0,
                        refs as f64 / r0 as f64,
                        (refs as f64 / r0 as f64).powi(2)
                    ),
                }
            }
        }
        let html = "&amp;x;".repeat(refs);
        let started = Instant::now();
        let _ = ammonia::clean(&html);
        println!(
            "  baseline: plain ammonia clean + serialize (herald before), {refs} refs: {:.1} ms",
            started.elapsed().as_secs_f64() * 1e3
        );
    }
}

fn report(stage: &str, took: Duration, mb: f64) {
    let secs = took.as_secs_f64();
    println!(
        "{stage:<32} {:>8.1} ms  {:>9.0} items/s  {:>7.1} MB/s",
        secs * 1e3,
        ITEMS as f64 / secs,
        mb / secs
    );
}

fn median(runs: usize, mut f: impl FnMut() -> Duration) -> Duration {
    let _warmup = f();
    let mut times: Vec<Duration> = (0..runs).map(|_| f()).collect();
    times.sort();
    times[runs / 2]
}

/// Median seconds feedparser takes on the file, if Python and feedparser are installed.
fn feedparser_seconds(path: &std::path::Path) -> Option<f64> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/feedparser_ingest.py");
    let output = std::process::Command::new("python3")
        .arg(script)
        .arg(path)
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("median_seconds="))
        .and_then(|v| v.trim().parse().ok())
}

/// A deterministic RSS 2.0 feed with blog-like HTML bodies (headings, paragraphs, lists,
/// links and images with relative URLs, entities, the odd script to sanitize).
fn generate_feed(items: usize) -> Vec<u8> {
    const WORDS: &[&str] = &[
        "bread",
        "network",
        "garden",
        "bicycle",
        "server",
        "flour",
        "router",
        "compost",
        "chain",
        "starter",
        "water",
        "summer",
        "winter",
        "light",
        "morning",
        "kitchen",
        "cable",
        "switch",
        "tyre",
        "seed",
        "oven",
        "backup",
        "address",
        "season",
        "harvest",
        "wheel",
        "brake",
        "proof",
        "dough",
        "crust",
        "signal",
        "forest",
        "river",
        "mountain",
        "weekend",
        "project",
        "journey",
        "library",
        "window",
        "coffee",
        "the",
        "a",
        "and",
        "with",
        "for",
        "under",
        "after",
        "before",
        "quietly",
        "carefully",
        "slowly",
        "bright",
        "small",
        "simple",
        "careful",
        "honest",
        "gentle",
        "steady",
        "early",
        "late",
        "every",
    ];
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let sentence = |next: &mut dyn FnMut() -> u64, words: usize| {
        let mut s = String::new();
        for i in 0..words {
            let w = WORDS[(next() % WORDS.len() as u64) as usize];
            if i == 0 {
                let mut c = w.chars();
                s.extend(c.next().map(|c| c.to_ascii_uppercase()));
                s.push_str(c.as_str());
            } else {
                s.push(' ');
                s.push_str(w);
            }
        }
        s.push('.');
        s
    };
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<rss version=\"2.0\" xmlns:content=\"http://purl.org/rss/1.0/modules/content/\">\n<channel>\n<title>Bench Blog</title>\n<link>https://bench.example.org/</link>\n<description>Generated for benchmarks.</description>\n",
    );
    for i in 0..items {
        let title = sentence(&mut next, 6);
        let mut body = String::new();
        for section in 0..3 {
            body.push_str(&format!("<h2>{}</h2>", sentence(&mut next, 4)));
            for _ in 0..2 {
                body.push_str("<p>");
                for _ in 0..4 {
                    body.push_str(&sentence(&mut next, 12));
                    body.push(' ');
                }
                body.push_str(&format!(
                    "See <a href=\"/posts/{}/\">the earlier post</a> &amp; notes&#8217;.</p>",
                    next() % 1000
                ));
            }
            if section == 1 {
                body.push_str("<ul>");
                for _ in 0..4 {
                    body.push_str(&format!("<li>{}</li>", sentence(&mut next, 7)));
                }
                body.push_str("</ul>");
                body.push_str(&format!(
                    "<img src=\"/images/{i}.jpg\" alt=\"figure {i}\" width=\"600\">"
                ));
            }
        }
        if i % 10 == 0 {
            body.push_str(
                "<script>track()</script><p onclick=\"x()\" style=\"color:red\">styled</p>",
            );
        }
        let day = 1 + (i % 28);
        out.push_str(&format!(
            "<item>\n<title>{title}</title>\n<link>https://bench.example.org/posts/{i}/</link>\n<guid isPermaLink=\"true\">https://bench.example.org/posts/{i}/</guid>\n<pubDate>Mon, {day:02} Nov 2026 10:00:00 +0000</pubDate>\n<category>topic-{}</category>\n<category>tag-{}</category>\n<description><![CDATA[{body}]]></description>\n</item>\n",
            i % 12,
            next() % 40
        ));
    }
    out.push_str("</channel>\n</rss>\n");
    out.into_bytes()
}
