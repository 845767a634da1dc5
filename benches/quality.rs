//! Content quality on real prose: related posts beside plain TF-IDF and random, summaries
//! beside the lead sentences, and a clutter check.
//!
//! `cargo bench --bench quality` reads the hand-written corpus in `benches/corpus/`:
//!
//! - `prose/<topic>/NN-slug.txt`: blog and news posts in eight topics whose vocabularies
//!   overlap (a header of `Title:`, `Date:`, an optional `Tags:`, `Kind:`, then the body).
//!   Every post goes through what `herald poll` runs: an RSS document, feed parsing,
//!   normalization and sanitizing, then enrichment (clutter removal, terms) and the
//!   related index with every post a candidate. Precision@3 is the share of the three
//!   listed posts on the query's topic (a missing slot counts as a miss). Beside it, on the
//!   same posts: a plain TF-IDF cosine (lower-case words minus stop words, tf = 1 + ln
//!   count, idf = ln N/df, L2-normalised, title + text + tags concatenated) and the random
//!   expectation. Three tag conditions: no tags at all, the tags as written (about half
//!   the posts, often narrow or vague), and every post tagged with its topic.
//! - `summaries/news/NN-news.txt` and `summaries/blogs/NN-<style>.txt`: feed items with a
//!   reference summary written for each. News articles are scored as written and wrapped
//!   in typical feed clutter (a leading caption, a "Related:" link row after the second
//!   paragraph, inline script and style, a share row, the WordPress footer); blog items
//!   carry their publisher's own clutter (WordPress, Medium, Substack, Ghost, Blogger) and
//!   name the fragments that must never reach a summary. ROUGE-1/2 F1 (lower-case words,
//!   no stemming) of herald's summary beside the lead baseline (the leading whole
//!   sentences within the summary budget).
//!
//! Posts numbered 31 and up (prose) and 41 and up (summaries) were never looked at while
//! tuning: both parts are printed. The bench exits non-zero when a summary carries
//! clutter or markup.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::{NaiveDate, TimeZone, Utc};
use herald::config::EnrichConfig;
use herald::domain::{Post, PostId};
use herald::enrich::related::{Params, RelatedIndex};
use herald::enrich::summary::split_sentences;
use herald::enrich::{Enricher, doc_for};
use herald::ingest::{Normalizer, parse_feed};
use herald::markup::escape_into;

/// Prose posts numbered above this were never tuned on.
const PROSE_TUNED: u32 = 30;
/// Summary items numbered above this were never tuned on.
const SUMMARY_TUNED: u32 = 40;
const BUDGET: usize = 60;
const K: usize = 3;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/corpus");
    let config = EnrichConfig {
        summary_words: BUDGET,
        related_count: K,
        language: "english".into(),
        include_newer: false,
        fill_with_newer: true,
        min_score: 0.05,
    };
    let enricher = Enricher::new(&config);
    related(&root.join("prose"), &enricher);
    let clutter_found = summaries(&root.join("summaries"), &enricher);
    if clutter_found > 0 {
        eprintln!("{clutter_found} summaries carry clutter or markup");
        std::process::exit(1);
    }
}

// ---------------------------------------------------------------------------------------
// The corpus

struct ProsePost {
    topic: String,
    number: u32,
    title: String,
    date: NaiveDate,
    tags: Vec<String>,
    body: String,
}

fn numbered_files(dir: &Path) -> Vec<(u32, PathBuf)> {
    let mut files: Vec<(u32, PathBuf)> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| {
            let path = e.ok()?.path();
            let name = path.file_name()?.to_str()?.to_owned();
            if !name.ends_with(".txt") {
                return None;
            }
            let number: u32 = name.get(..2)?.parse().ok()?;
            Some((number, path))
        })
        .collect();
    files.sort();
    files
}

fn load_prose(dir: &Path) -> Vec<ProsePost> {
    let mut topics: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    topics.sort();
    let mut posts = Vec::new();
    for topic_dir in topics {
        let topic = topic_dir.file_name().unwrap().to_str().unwrap().to_owned();
        for (number, path) in numbered_files(&topic_dir) {
            let text = std::fs::read_to_string(&path).unwrap();
            let (head, body) = text
                .split_once("\n\n")
                .unwrap_or_else(|| panic!("{}: no blank line after the header", path.display()));
            let field = |name: &str| {
                head.lines()
                    .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_owned()))
            };
            let title = field("Title:").unwrap_or_else(|| panic!("{}: no Title", path.display()));
            let date = field("Date:")
                .and_then(|d| NaiveDate::parse_from_str(&d, "%Y-%m-%d").ok())
                .unwrap_or_else(|| panic!("{}: no Date", path.display()));
            let tags = field("Tags:")
                .map(|t| {
                    t.split(',')
                        .map(|s| s.trim().to_owned())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .unwrap_or_default();
            posts.push(ProsePost {
                topic: topic.clone(),
                number,
                title,
                date,
                tags,
                body: body.trim().to_owned(),
            });
        }
    }
    posts
}

/// One RSS item as a publisher's feed carries it.
struct Item {
    title: String,
    link: String,
    date: chrono::DateTime<Utc>,
    tags: Vec<String>,
    content: String,
    description: Option<String>,
}

fn escaped(s: &str) -> String {
    let mut out = String::new();
    escape_into(&mut out, s);
    out
}

fn cdata(s: &str) -> String {
    format!("<![CDATA[{}]]>", s.replace("]]>", "]]]]><![CDATA[>"))
}

fn rss(items: &[Item]) -> String {
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<rss version=\"2.0\" xmlns:content=\"http://purl.org/rss/1.0/modules/content/\">\n<channel><title>Bench</title><link>https://bench.example.org/</link><description>Bench</description>\n",
    );
    for item in items {
        out.push_str(&format!(
            "<item><title>{}</title><link>{}</link><guid>{}</guid><pubDate>{}</pubDate>",
            escaped(&item.title),
            escaped(&item.link),
            escaped(&item.link),
            item.date.to_rfc2822()
        ));
        for tag in &item.tags {
            out.push_str(&format!("<category>{}</category>", escaped(tag)));
        }
        if let Some(d) = &item.description {
            out.push_str(&format!("<description>{}</description>", cdata(d)));
        }
        out.push_str(&format!(
            "<content:encoded>{}</content:encoded></item>\n",
            cdata(&item.content)
        ));
    }
    out.push_str("</channel></rss>\n");
    out
}

/// What `herald poll` stores for these items: parsed, normalized, sanitized; in order.
fn ingest(items: &[Item]) -> Vec<Post> {
    let feed = parse_feed(rss(items).as_bytes(), Some("application/rss+xml"), None).unwrap();
    let (_, posts) = Normalizer::new().normalize_feed(&feed, None);
    assert_eq!(posts.len(), items.len(), "every item is stored");
    let seen = Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap();
    posts
        .into_iter()
        .enumerate()
        .map(|(i, p)| Post {
            id: PostId(i as i64 + 1),
            source: "bench".into(),
            stable_id: p.stable_id,
            url: p.url,
            title: p.title,
            author: p.author,
            tags: p.tags,
            published_at: p.published_at,
            first_seen_at: seen,
            updated_at: seen,
            html: p.html,
            text: p.text,
            image: p.image,
            feed_summary: p.feed_summary,
            summary: None,
            recovered: p.recovered,
        })
        .collect()
}

fn paragraphs_html(body: &str) -> String {
    body.split("\n\n")
        .map(|p| {
            format!(
                "<p>{}</p>",
                escaped(&p.split_whitespace().collect::<Vec<_>>().join(" "))
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

// ---------------------------------------------------------------------------------------
// Related posts

#[derive(Clone, Copy)]
enum Tags {
    None,
    AsWritten,
    Topic,
}

impl Tags {
    fn label(self) -> &'static str {
        match self {
            Tags::None => "no tags",
            Tags::AsWritten => "tags as written",
            Tags::Topic => "topic tags",
        }
    }
}

fn related(dir: &Path, enricher: &Enricher) {
    let posts = load_prose(dir);
    let topics: BTreeMap<&str, usize> = posts.iter().fold(BTreeMap::new(), |mut m, p| {
        *m.entry(p.topic.as_str()).or_default() += 1;
        m
    });
    let words: Vec<usize> = posts
        .iter()
        .map(|p| p.body.split_whitespace().count())
        .collect();
    let tagged = posts.iter().filter(|p| !p.tags.is_empty()).count();
    println!(
        "related posts: {} posts in {} topics ({}), {}-{} words, {tagged} tagged; precision@{K}, every post a candidate",
        posts.len(),
        topics.len(),
        topics
            .iter()
            .map(|(t, n)| format!("{t} {n}"))
            .collect::<Vec<_>>()
            .join(", "),
        words.iter().min().unwrap_or(&0),
        words.iter().max().unwrap_or(&0),
    );
    let params = Params {
        include_newer: true,
        ..enricher.params()
    };
    println!(
        "  {:<16} {:>22} {:>22} {:>9}",
        "", "herald", "plain TF-IDF", "random"
    );
    for tags in [Tags::None, Tags::AsWritten, Tags::Topic] {
        let items: Vec<Item> = posts
            .iter()
            .map(|p| Item {
                title: p.title.clone(),
                link: format!("https://bench.example.org/{}/{:02}", p.topic, p.number),
                date: Utc.from_utc_datetime(&p.date.and_hms_opt(12, 0, 0).unwrap()),
                tags: match tags {
                    Tags::None => Vec::new(),
                    Tags::AsWritten => p.tags.clone(),
                    Tags::Topic => vec![p.topic.clone()],
                },
                content: paragraphs_html(&p.body),
                description: None,
            })
            .collect();
        let stored = ingest(&items);
        for (p, s) in posts.iter().zip(&stored) {
            assert_eq!(p.title, s.title, "posts are stored in feed order");
        }
        let started = Instant::now();
        let docs: Vec<_> = enricher
            .enrich_posts(&stored)
            .into_iter()
            .zip(&stored)
            .map(|(e, p)| doc_for(p, e.terms))
            .collect();
        let index = RelatedIndex::build(docs);
        let lists: HashMap<i64, Vec<i64>> = index
            .related_all(params)
            .into_iter()
            .map(|(id, l)| (id, l.into_iter().map(|(o, _)| o).collect()))
            .collect();
        let herald_ms = started.elapsed().as_secs_f64() * 1e3;
        let herald_lists: Vec<Vec<usize>> = (0..posts.len())
            .map(|i| {
                lists
                    .get(&(i as i64 + 1))
                    .map(|l| l.iter().map(|o| (*o - 1) as usize).collect())
                    .unwrap_or_default()
            })
            .collect();
        let baseline_lists = tfidf_lists(&stored);
        let (h_tuned, h_held) = precision(&posts, &herald_lists);
        let (b_tuned, b_held) = precision(&posts, &baseline_lists);
        let (r_tuned, r_held) = random_precision(&posts);
        println!(
            "  {:<16} {:>6.3} / {:.3} (\u{d7}{:.2}) {:>6.3} / {:.3}       {:.3} / {:.3}   (tuned / held-out; herald {herald_ms:.0} ms)",
            tags.label(),
            h_tuned,
            h_held,
            (h_tuned * 30.0 + h_held * 8.0) / (b_tuned * 30.0 + b_held * 8.0).max(1e-9),
            b_tuned,
            b_held,
            r_tuned,
            r_held,
        );
    }
}

/// Mean precision@K over the tuned and the held-out queries.
fn precision(posts: &[ProsePost], lists: &[Vec<usize>]) -> (f64, f64) {
    let mut sums = [(0.0, 0usize); 2];
    for (i, list) in lists.iter().enumerate() {
        let hits = list
            .iter()
            .take(K)
            .filter(|o| posts[**o].topic == posts[i].topic)
            .count();
        let part = usize::from(posts[i].number > PROSE_TUNED);
        sums[part].0 += hits as f64 / K as f64;
        sums[part].1 += 1;
    }
    (
        sums[0].0 / sums[0].1.max(1) as f64,
        sums[1].0 / sums[1].1.max(1) as f64,
    )
}

/// The expected precision of K posts drawn at random from the others.
fn random_precision(posts: &[ProsePost]) -> (f64, f64) {
    let mut per_topic: HashMap<&str, usize> = HashMap::new();
    for p in posts {
        *per_topic.entry(p.topic.as_str()).or_default() += 1;
    }
    let mut sums = [(0.0, 0usize); 2];
    for p in posts {
        let part = usize::from(p.number > PROSE_TUNED);
        sums[part].0 += (per_topic[p.topic.as_str()] - 1) as f64 / (posts.len() - 1) as f64;
        sums[part].1 += 1;
    }
    (
        sums[0].0 / sums[0].1.max(1) as f64,
        sums[1].0 / sums[1].1.max(1) as f64,
    )
}

/// A common English stop-word list, for the baseline only.
const STOP_WORDS: &[&str] = &[
    "a",
    "about",
    "above",
    "after",
    "again",
    "against",
    "all",
    "am",
    "an",
    "and",
    "any",
    "are",
    "as",
    "at",
    "be",
    "because",
    "been",
    "before",
    "being",
    "below",
    "between",
    "both",
    "but",
    "by",
    "can",
    "could",
    "did",
    "do",
    "does",
    "doing",
    "down",
    "during",
    "each",
    "few",
    "for",
    "from",
    "further",
    "had",
    "has",
    "have",
    "having",
    "he",
    "her",
    "here",
    "hers",
    "herself",
    "him",
    "himself",
    "his",
    "how",
    "i",
    "if",
    "in",
    "into",
    "is",
    "it",
    "its",
    "itself",
    "just",
    "me",
    "more",
    "most",
    "my",
    "myself",
    "no",
    "nor",
    "not",
    "now",
    "of",
    "off",
    "on",
    "once",
    "only",
    "or",
    "other",
    "our",
    "ours",
    "ourselves",
    "out",
    "over",
    "own",
    "s",
    "same",
    "she",
    "should",
    "so",
    "some",
    "such",
    "t",
    "than",
    "that",
    "the",
    "their",
    "theirs",
    "them",
    "themselves",
    "then",
    "there",
    "these",
    "they",
    "this",
    "those",
    "through",
    "to",
    "too",
    "under",
    "until",
    "up",
    "very",
    "was",
    "we",
    "were",
    "what",
    "when",
    "where",
    "which",
    "while",
    "who",
    "whom",
    "why",
    "will",
    "with",
    "would",
    "you",
    "your",
    "yours",
    "yourself",
    "yourselves",
];

/// Plain TF-IDF cosine over title + text + tags; the top K others of every post.
fn tfidf_lists(posts: &[Post]) -> Vec<Vec<usize>> {
    let stop: HashSet<&str> = STOP_WORDS.iter().copied().collect();
    let counts: Vec<HashMap<String, f64>> = posts
        .iter()
        .map(|p| {
            let text = format!("{} {} {}", p.title, p.text, p.tags.join(" "));
            let mut counts: HashMap<String, f64> = HashMap::new();
            for word in text
                .split(|c: char| !c.is_alphanumeric())
                .filter(|w| !w.is_empty())
                .map(str::to_lowercase)
                .filter(|w| !stop.contains(w.as_str()))
            {
                *counts.entry(word).or_default() += 1.0;
            }
            counts
        })
        .collect();
    let mut df: HashMap<&str, f64> = HashMap::new();
    for c in &counts {
        for w in c.keys() {
            *df.entry(w.as_str()).or_default() += 1.0;
        }
    }
    let n = posts.len() as f64;
    let vectors: Vec<HashMap<&str, f64>> = counts
        .iter()
        .map(|c| {
            let mut v: HashMap<&str, f64> = c
                .iter()
                .map(|(w, count)| (w.as_str(), (1.0 + count.ln()) * (n / df[w.as_str()]).ln()))
                .collect();
            let norm = v.values().map(|x| x * x).sum::<f64>().sqrt().max(1e-12);
            v.values_mut().for_each(|x| *x /= norm);
            v
        })
        .collect();
    (0..posts.len())
        .map(|i| {
            let mut scored: Vec<(f64, usize)> = (0..posts.len())
                .filter(|j| *j != i)
                .map(|j| {
                    let (a, b) = if vectors[i].len() < vectors[j].len() {
                        (&vectors[i], &vectors[j])
                    } else {
                        (&vectors[j], &vectors[i])
                    };
                    let dot: f64 = a.iter().filter_map(|(w, x)| b.get(w).map(|y| x * y)).sum();
                    (dot, j)
                })
                .collect();
            scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            scored.into_iter().take(K).map(|(_, j)| j).collect()
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Summaries

struct SummaryItem {
    style: String,
    number: u32,
    title: String,
    reference: String,
    clutter: Vec<String>,
    content: String,
    feed_summary: Option<String>,
}

fn load_summaries(dir: &Path) -> Vec<SummaryItem> {
    let mut items = Vec::new();
    for (number, path) in numbered_files(dir) {
        let text = std::fs::read_to_string(&path).unwrap();
        let (head, rest) = text
            .split_once("=== content ===")
            .unwrap_or_else(|| panic!("{}: no content section", path.display()));
        let (content, feed_summary) = match rest.split_once("=== feed summary ===") {
            Some((c, s)) => (c, Some(s.trim().to_owned()).filter(|s| !s.is_empty())),
            None => (rest, None),
        };
        let field = |name: &str| {
            head.lines()
                .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_owned()))
                .unwrap_or_else(|| panic!("{}: no {name}", path.display()))
        };
        items.push(SummaryItem {
            style: field("Style:"),
            number,
            title: field("Title:"),
            reference: field("Reference:"),
            clutter: head
                .lines()
                .filter_map(|l| l.strip_prefix("Clutter:").map(|v| v.trim().to_owned()))
                .filter(|v| !v.is_empty())
                .collect(),
            content: content.trim().to_owned(),
            feed_summary,
        });
    }
    items
}

/// Wraps a clean news article the way news sites' feeds carry it; returns the HTML and
/// the fragments that must not reach a summary.
fn with_news_clutter(html: &str, n: u32) -> (String, Vec<String>) {
    let photographers = ["Ana Ruiz", "Tomas Berg", "Priya Nair", "Owen Hale"];
    let caption = format!(
        "Photo: {}/Coast Herald",
        photographers[n as usize % photographers.len()]
    );
    let paragraphs: Vec<&str> = html.split("</p>").collect();
    let mut out = format!(
        "<figure><img src=\"https://img.example.org/{n}.jpg\" alt=\"\"><figcaption>{caption}</figcaption></figure>\n<script>window.dataLayer = window.dataLayer || []; dataLayer.push({{'event': 'article_view'}});</script>\n<style>.share-row {{ display: flex; }}</style>\n"
    );
    for (i, p) in paragraphs.iter().enumerate() {
        out.push_str(p);
        if i + 1 < paragraphs.len() {
            out.push_str("</p>");
        }
        if i == 1 {
            out.push_str("\n<p><strong>Related:</strong> <a href=\"https://news.example.org/r1\">Council budget gap widens again</a></p>\n");
        }
    }
    out.push_str(
        "\n<div class=\"share\"><a href=\"https://x.example/share\">Share on X</a> <a href=\"https://fb.example/share\">Facebook</a> <a href=\"mailto:?subject=news\">Email</a></div>\n<p>The post <a href=\"https://news.example.org/a\">Story</a> appeared first on <a href=\"https://news.example.org\">Coast Herald</a>.</p>",
    );
    let fragments = vec![
        caption,
        "Related:".into(),
        "dataLayer".into(),
        "display: flex".into(),
        "Share on X".into(),
        "appeared first on".into(),
    ];
    (out, fragments)
}

/// Trailers no summary may end with or carry, whatever the item names.
const ALWAYS_CLUTTER: &[&str] = &[
    "appeared first on",
    "[\u{2026}]",
    "[...]",
    "[&hellip;]",
    "&hellip;",
    "Continue reading on Medium",
    "Read more \u{bb}",
    "(more\u{2026})",
    "(more...)",
    "Share this:",
    "on Medium, where people",
    "Subscribe for free to receive new posts",
    "Posted by ",
];

struct Scores {
    herald: (f64, f64),
    lead: (f64, f64),
    n: usize,
}

fn summaries(dir: &Path, enricher: &Enricher) -> usize {
    let news = load_summaries(&dir.join("news"));
    let blogs = load_summaries(&dir.join("blogs"));
    println!(
        "\nsummaries: {} news articles, {} blog items ({}); ROUGE-1 / ROUGE-2 F1 against the written references, {BUDGET}-word budget",
        news.len(),
        blogs.len(),
        {
            let mut styles: BTreeMap<&str, usize> = BTreeMap::new();
            for b in &blogs {
                *styles.entry(b.style.as_str()).or_default() += 1;
            }
            styles
                .iter()
                .map(|(s, n)| format!("{s} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    );
    let mut clutter_found = 0;
    let mut rows: Vec<(String, [Scores; 2])> = Vec::new();

    // News as written, and wrapped in clutter.
    for cluttered in [false, true] {
        let mut must_not: Vec<Vec<String>> = Vec::new();
        let items: Vec<Item> = news
            .iter()
            .map(|a| {
                let (content, fragments) = if cluttered {
                    with_news_clutter(&a.content, a.number)
                } else {
                    (a.content.clone(), Vec::new())
                };
                must_not.push(fragments);
                item_for(a, content)
            })
            .collect();
        let stored = ingest(&items);
        // The lead baseline reads the article as written (it has no clutter to trip on).
        let clean_text: Vec<String> = if cluttered {
            ingest(
                &news
                    .iter()
                    .map(|a| item_for(a, a.content.clone()))
                    .collect::<Vec<_>>(),
            )
            .into_iter()
            .map(|p| p.text)
            .collect()
        } else {
            stored.iter().map(|p| p.text.clone()).collect()
        };
        let summaries: Vec<String> = enricher
            .enrich_posts(&stored)
            .into_iter()
            .map(|e| e.summary.text)
            .collect();
        for (i, s) in summaries.iter().enumerate() {
            clutter_found += check_clutter(&news[i], s, &must_not[i]);
        }
        let scores = score(&news, &summaries, &clean_text);
        rows.push((
            if cluttered {
                "news, with feed clutter".into()
            } else {
                "news, as written".into()
            },
            scores,
        ));
    }

    // Blog items with their publishers' clutter.
    let items: Vec<Item> = blogs
        .iter()
        .map(|b| item_for(b, b.content.clone()))
        .collect();
    let stored = ingest(&items);
    let summaries: Vec<String> = enricher
        .enrich_posts(&stored)
        .into_iter()
        .map(|e| e.summary.text)
        .collect();
    for (i, s) in summaries.iter().enumerate() {
        clutter_found += check_clutter(&blogs[i], s, &[]);
    }
    let raw_text: Vec<String> = stored.iter().map(|p| p.text.clone()).collect();
    rows.push((
        "blogs, publisher clutter".into(),
        score(&blogs, &summaries, &raw_text),
    ));

    println!(
        "  {:<26} {:>24} {:>24}",
        "", "tuned (herald | lead)", "held-out (herald | lead)"
    );
    for (label, parts) in &rows {
        let cell = |s: &Scores| {
            format!(
                "{:>4.1}/{:>4.1} | {:>4.1}/{:>4.1} ({})",
                s.herald.0, s.herald.1, s.lead.0, s.lead.1, s.n
            )
        };
        println!(
            "  {label:<26} {:>24} {:>24}",
            cell(&parts[0]),
            cell(&parts[1])
        );
    }
    println!(
        "  clutter check: {clutter_found} summaries with a trailer, caption, script or style text, or markup"
    );
    clutter_found
}

fn item_for(a: &SummaryItem, content: String) -> Item {
    Item {
        title: a.title.clone(),
        link: format!("https://bench.example.org/{}/{:02}", a.style, a.number),
        date: Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap()
            + chrono::Duration::hours(a.number as i64),
        tags: Vec::new(),
        content,
        description: a.feed_summary.clone(),
    }
}

/// Counts (and prints) a summary that carries clutter or markup.
fn check_clutter(item: &SummaryItem, summary: &str, added: &[String]) -> usize {
    let mut bad: Vec<&str> = item
        .clutter
        .iter()
        .chain(added)
        .map(String::as_str)
        .chain(ALWAYS_CLUTTER.iter().copied())
        .filter(|c| summary.to_lowercase().contains(&c.to_lowercase()))
        .collect();
    if summary.contains('<') || summary.contains('>') {
        bad.push("markup");
    }
    if bad.is_empty() {
        return 0;
    }
    println!(
        "  CLUTTER in {:02}-{} ({:?}): {summary}",
        item.number, item.style, bad
    );
    1
}

/// ROUGE of herald's summaries and of the lead baseline, tuned and held-out parts.
fn score(items: &[SummaryItem], summaries: &[String], texts: &[String]) -> [Scores; 2] {
    let mut parts = [(0.0, 0.0, 0.0, 0.0, 0usize); 2];
    for (i, item) in items.iter().enumerate() {
        let part = usize::from(item.number > SUMMARY_TUNED);
        let lead = lead(&texts[i], BUDGET);
        let p = &mut parts[part];
        p.0 += rouge(&item.reference, &summaries[i], 1);
        p.1 += rouge(&item.reference, &summaries[i], 2);
        p.2 += rouge(&item.reference, &lead, 1);
        p.3 += rouge(&item.reference, &lead, 2);
        p.4 += 1;
    }
    parts.map(|(h1, h2, l1, l2, n)| {
        let d = n.max(1) as f64 / 100.0;
        Scores {
            herald: (h1 / d, h2 / d),
            lead: (l1 / d, l2 / d),
            n,
        }
    })
}

/// The leading whole sentences that fit the budget (the first one cut to it when alone
/// it is longer).
fn lead(text: &str, budget: usize) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut used = 0;
    for sentence in text.lines().flat_map(split_sentences) {
        let words = sentence.split_whitespace().count();
        if used + words > budget {
            if out.is_empty() {
                out.push(
                    sentence
                        .split_whitespace()
                        .take(budget)
                        .collect::<Vec<_>>()
                        .join(" "),
                );
            }
            break;
        }
        used += words;
        out.push(sentence.to_owned());
    }
    out.join(" ")
}

fn tokens(s: &str) -> Vec<String> {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// ROUGE-N F1 between a reference and a candidate (clipped n-gram counts).
fn rouge(reference: &str, candidate: &str, n: usize) -> f64 {
    let grams = |s: &str| {
        let t = tokens(s);
        let mut counts: HashMap<Vec<String>, usize> = HashMap::new();
        for w in t.windows(n) {
            *counts.entry(w.to_vec()).or_default() += 1;
        }
        counts
    };
    let (r, c) = (grams(reference), grams(candidate));
    let overlap: usize = c
        .iter()
        .map(|(g, k)| (*k).min(r.get(g).copied().unwrap_or(0)))
        .sum();
    let (rn, cn) = (r.values().sum::<usize>(), c.values().sum::<usize>());
    if overlap == 0 || rn == 0 || cn == 0 {
        return 0.0;
    }
    let (p, rec) = (overlap as f64 / cn as f64, overlap as f64 / rn as f64);
    2.0 * p * rec / (p + rec)
}
