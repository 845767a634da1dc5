//! Related posts: full rebuild for 1,000 / 10,000 / 100,000 posts (time and peak memory),
//! adding one post to a 10,000-post index, and `enrich --rebuild` end to end on a
//! 10,000-post SQLite store.
//!
//! `cargo bench --bench related`. Each full rebuild runs in a child process so its peak
//! RSS (VmHWM) is its own. Targets: 10,000 posts in under 2 s; one post in under 10 ms.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/corpus.rs"]
mod corpus;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use herald::clock::FixedClock;
use herald::config;
use herald::domain::FeedMeta;
use herald::domain::IndexDoc;
use herald::domain::{NewPost, Post, PostId, StableId};
use herald::enrich::related::{Params, RelatedIndex};
use herald::enrich::text::Analyzer;
use herald::enrich::{Enricher, clutter, doc_for, summary};
use herald::pipeline::{EnrichScope, Herald};
use herald::store::PollRecord;

const PARAMS: Params = Params {
    count: 3,
    min_score: 0.05,
    include_newer: false,
    fill_with_newer: true,
};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(pos) = args.iter().position(|a| a == "--child") {
        let n: usize = args[pos + 1].parse().unwrap();
        child_rebuild(n);
        return;
    }
    if let Some(pos) = args.iter().position(|a| a == "--long-child") {
        let n: usize = args[pos + 1].parse().unwrap();
        child_long(n);
        return;
    }
    println!("full rebuild (tokenize + index + every related list), one process each:");
    for n in [1_000, 10_000, 100_000] {
        let out = std::process::Command::new(&args[0])
            .arg("--child")
            .arg(n.to_string())
            .output()
            .unwrap();
        print!("{}", String::from_utf8_lossy(&out.stdout));
        if !out.status.success() {
            eprintln!("{}", String::from_utf8_lossy(&out.stderr));
        }
    }
    println!(
        "enrichment of long posts (clean + summary + terms + index + every list), one process:"
    );
    let out = std::process::Command::new(&args[0])
        .arg("--long-child")
        .arg("10000")
        .output()
        .unwrap();
    print!("{}", String::from_utf8_lossy(&out.stdout));
    if !out.status.success() {
        eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    }
    add_one();
    end_to_end(10_000);
}

/// Enrichment as `herald enrich --rebuild` computes it, without the store, on `n` posts of
/// about 1,000 words in paragraphs of HTML. Target: 10,000 posts under 2 s.
fn child_long(n: usize) {
    let generated = corpus::generate_long(n, 13);
    let now = Utc.with_ymd_and_hms(2026, 11, 28, 9, 0, 0).unwrap();
    let posts: Vec<Post> = generated
        .iter()
        .map(|p| {
            let sentences: Vec<&str> = p.body.split_inclusive(". ").collect();
            let html: String = sentences
                .chunks(6)
                .map(|para| format!("<p>{}</p>\n", para.concat().trim_end()))
                .collect();
            Post {
                id: PostId(p.id),
                source: "corpus".to_owned(),
                stable_id: StableId::for_entry(Some(&p.url), None, "", ""),
                url: Some(p.url.clone()),
                title: p.title.clone(),
                author: None,
                tags: p.tags.clone(),
                published_at: Some(now - chrono::Duration::minutes(n as i64 - p.id)),
                first_seen_at: now,
                updated_at: now,
                html,
                text: p.body.clone(),
                image: None,
                feed_summary: None,
                summary: None,
                recovered: false,
            }
        })
        .collect();
    let words: usize = generated
        .iter()
        .map(|p| p.body.split_whitespace().count())
        .sum();
    drop(generated);
    let config = config::parse(
        "[site]\ntitle = \"Bench\"\nbase_url = \"https://bench.example.org/\"\n",
        std::path::Path::new("bench.toml"),
    )
    .unwrap();
    let enricher = Enricher::new(&config.enrich);
    // Where the time goes, on one core over the first 500 posts.
    let sample = &posts[..posts.len().min(500)];
    let analyzer = Analyzer::new(&config.enrich.language);
    let started = Instant::now();
    let prose: Vec<String> = sample
        .iter()
        .map(|p| clutter::clean_html(&p.html))
        .collect();
    let clean = started.elapsed();
    let started = Instant::now();
    for (p, text) in sample.iter().zip(&prose) {
        summary::summarize_and_index(
            &analyzer,
            &p.title,
            &p.tags,
            text,
            None,
            config.enrich.summary_words,
        );
    }
    let summarize = started.elapsed();
    let per_post = |d: Duration| d.as_secs_f64() * 1e6 / sample.len().max(1) as f64;
    println!(
        "  one core, per post: clean {:.0} µs, summary and index terms {:.0} µs",
        per_post(clean),
        per_post(summarize),
    );
    let rss_before = status_kb("VmRSS");
    let started = Instant::now();
    let enriched = enricher.enrich_posts(&posts);
    let summarized = started.elapsed();
    let docs: Vec<IndexDoc> = posts
        .iter()
        .zip(enriched)
        .map(|(post, e)| doc_for(post, e.terms))
        .collect();
    let (_index, lists) = RelatedIndex::build_with_lists(docs, enricher.params());
    let total = started.elapsed();
    let with_list = lists.iter().filter(|(_, l)| !l.is_empty()).count();
    println!(
        "  {n:>7} posts of {} words on average: {:>8.1} ms (clean, summarize and terms {:.0} ms, index and lists {:.0} ms); {:.1}% of posts with a list; peak RSS {} MB (posts alone {} MB)",
        words / n.max(1),
        ms(total),
        ms(summarized),
        ms(total - summarized),
        100.0 * with_list as f64 / n.max(1) as f64,
        status_kb("VmHWM") / 1024,
        rss_before / 1024,
    );
}

fn docs(posts: &[corpus::CorpusPost], analyzer: &Analyzer) -> Vec<IndexDoc> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = posts.len().div_ceil(threads);
    std::thread::scope(|s| {
        let parts: Vec<_> = posts
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .map(|p| IndexDoc {
                            id: p.id,
                            date: (p.id * 60_000, p.id),
                            url: Some(p.url.clone()),
                            tags: p.tags.clone(),
                            terms: analyzer.post_terms(&p.title, &p.tags, &p.body),
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        parts.into_iter().flat_map(|p| p.join().unwrap()).collect()
    })
}

fn child_rebuild(n: usize) {
    let posts = corpus::generate(n, 7);
    let analyzer = Analyzer::new("english");
    let rss_before = status_kb("VmRSS");
    let started = Instant::now();
    let docs = docs(&posts, &analyzer);
    let tokenized = started.elapsed();
    let (_index, lists) = RelatedIndex::build_with_lists(docs, PARAMS);
    let total = started.elapsed();
    let listed: usize = lists.iter().map(|(_, l)| l.len()).sum();
    let same_topic: usize = lists
        .iter()
        .map(|(id, l)| {
            l.iter()
                .filter(|(o, _)| posts[(*o - 1) as usize].topic == posts[(*id - 1) as usize].topic)
                .count()
        })
        .sum();
    let with_list = lists.iter().filter(|(_, l)| !l.is_empty()).count();
    println!(
        "  {n:>7} posts: {:>8.1} ms (tokenize {:.0} ms, index and lists {:.0} ms); {listed} related, {:.1}% on the same topic, {:.1}% of posts with a list; peak RSS {} MB (corpus alone {} MB)",
        ms(total),
        ms(tokenized),
        ms(total - tokenized),
        100.0 * same_topic as f64 / listed.max(1) as f64,
        100.0 * with_list as f64 / n as f64,
        status_kb("VmHWM") / 1024,
        rss_before / 1024,
    );
}

fn add_one() {
    let posts = corpus::generate(10_100, 11);
    let analyzer = Analyzer::new("english");
    let all = docs(&posts, &analyzer);
    let mut index = RelatedIndex::build(all[..10_000].to_vec());
    let mut scratch = index.scratch();
    let mut times = Vec::new();
    for p in &posts[10_000..] {
        let started = Instant::now();
        let doc = IndexDoc {
            id: p.id,
            date: (p.id * 60_000, p.id),
            url: Some(p.url.clone()),
            tags: p.tags.clone(),
            terms: analyzer.post_terms(&p.title, &p.tags, &p.body),
        };
        index.insert(doc);
        let related = index.related(p.id, PARAMS, &mut scratch);
        times.push(started.elapsed());
        assert!(related.len() <= 3);
    }
    times.sort();
    println!(
        "add one post to a 10,000-post index (tokenize + insert + its related list), 100 posts: median {:.3} ms, max {:.3} ms",
        ms(times[times.len() / 2]),
        ms(*times.last().unwrap())
    );
}

/// `herald enrich --rebuild` on a SQLite store holding `n` posts: summaries, terms and
/// related lists computed and written.
fn end_to_end(n: usize) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "[site]\ntitle = \"Bench\"\nbase_url = \"https://bench.example.org/\"\n[store]\nurl = \"sqlite://{}/bench.db\"\n[[sources]]\nname = \"corpus\"\nurl = \"{}/none.xml\"\n",
            dir.path().display(),
            dir.path().display()
        );
        let config = config::parse(&text, std::path::Path::new("bench.toml")).unwrap();
        let now = Utc.with_ymd_and_hms(2026, 11, 28, 9, 0, 0).unwrap();
        let herald = Herald::open(config, Arc::new(FixedClock::new(now))).await.unwrap();
        let ids = herald.store.sync_sources(&herald.config.sources, now).await.unwrap();
        let posts: Vec<NewPost> = corpus::generate(n, 5)
            .into_iter()
            .map(|p| NewPost {
                stable_id: StableId::for_entry(Some(&p.url), None, "", ""),
                url: Some(p.url.clone()),
                title: p.title.clone(),
                author: None,
                tags: p.tags.clone(),
                published_at: Some(now - chrono::Duration::minutes(n as i64 - p.id)),
                html: format!("<p>{}</p>", p.body),
                text: p.body.clone(),
                image: None,
                feed_summary: None,
                uncapped_hash: None,
                recovered: false,
            })
            .collect();
        let record = PollRecord { etag: None, last_modified: None, checked_at: now, next_check_at: now, meta: FeedMeta::default() };
        herald.store.store_poll(ids["corpus"], &record, &posts, now).await.unwrap();
        let started = Instant::now();
        let report = herald.enrich(EnrichScope::Rebuild).await.unwrap();
        println!(
            "herald enrich --rebuild, {n} posts in SQLite (summaries + terms + related, written): {:.0} ms ({} summaries, {} lists)",
            ms(started.elapsed()),
            report.summarized,
            report.related_lists
        );
        herald.store.close().await;
    });
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// A field of /proc/self/status in kB (0 where there is no procfs).
fn status_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}
