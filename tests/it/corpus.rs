//! Ingestion against documents nobody here wrote: the W3C Feed Validator's test suite
//! (1,707 feeds, `../shared/corpus/w3c-feedvalidator/`), and 20,000 seeded mutations of
//! our own fixtures. No input panics; every outcome is "stored N", "empty" or an error
//! that names what is wrong; what herald reads agrees with the documents.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};

use herald::ingest::{Normalizer, read_feed, recover};

use crate::support::fixtures;

/// What reading one document came to.
#[derive(Debug, PartialEq)]
enum Outcome {
    Stored(usize),
    Empty,
    Error(String),
}

/// The ways a document can fail to be a feed, as herald words them (each names what
/// is wrong; the poll report adds the source, URL and what to do).
const NAMED_ERRORS: &[&str] = &[
    "the response is empty",
    "it is an HTML page",
    "it is XML but not a feed: its root element is <",
    "cannot parse it as RSS, Atom or JSON Feed: ",
    "cannot parse it as JSON Feed: ",
];

fn read(normalizer: &Normalizer, bytes: &[u8]) -> (Outcome, Vec<herald::domain::NewPost>) {
    match read_feed(bytes, None, None) {
        Ok(parsed) => {
            let posts = normalizer.normalize_feed(&parsed.feed, None).1;
            if posts.is_empty() {
                assert_eq!(
                    parsed.entries_seen, 0,
                    "a document with entries that yields no post must be an error"
                );
                (Outcome::Empty, posts)
            } else {
                (Outcome::Stored(posts.len()), posts)
            }
        }
        Err(message) => {
            // feed-rs is guarded, but herald should never hand it what crashes it.
            assert!(!message.contains("crashed"), "{message}");
            assert!(
                NAMED_ERRORS.iter().any(|p| message.starts_with(p)) && message.len() > 30
                    || message == "the response is empty"
                    || message == "it is an HTML page",
                "not a named error: {message:?}"
            );
            (Outcome::Error(message), Vec::new())
        }
    }
}

/// The W3C corpus: `HERALD_W3C_CORPUS`, or `../shared/corpus/w3c-feedvalidator` beside
/// the checkout (or under /work, where this project's machines keep it).
fn w3c_corpus() -> PathBuf {
    let candidates = [
        std::env::var_os("HERALD_W3C_CORPUS").map(PathBuf::from),
        Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/w3c-feedvalidator")),
        Some(PathBuf::from("/work/shared/corpus/w3c-feedvalidator")),
    ];
    candidates
        .into_iter()
        .flatten()
        .map(|p| p.join("testcases"))
        .find(|p| p.is_dir())
        .unwrap_or_else(|| {
            panic!(
                "the W3C feed validator corpus is missing: set HERALD_W3C_CORPUS to the \
                 w3c-feedvalidator directory (it holds testcases/)"
            )
        })
}

fn files_under(root: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The text of the first `<tag>…</tag>` inside the first `<item>`/`<entry>`, when it is
/// plain (no markup, references or CDATA) and not empty.
fn first_entry_field(text: &str, tag: &str) -> Option<String> {
    let entry = ["<item>", "<item ", "<entry>", "<entry "]
        .iter()
        .filter_map(|t| text.find(t))
        .min()?;
    let rest = &text[entry..];
    let end = ["</item>", "</entry>"]
        .iter()
        .filter_map(|t| rest.find(t))
        .min()?;
    let rest = &rest[..end];
    // Only an entry that says it once, with no <source> whose fields could be taken.
    let open = format!("<{tag}>");
    if rest.matches(&open).count() != 1 || rest.contains("<source") {
        return None;
    }
    let start = rest.find(&open)? + open.len();
    let close = rest[start..].find(&format!("</{tag}>"))?;
    let value = rest[start..start + close].trim();
    let plain = !value.is_empty() && !value.contains(['<', '&', '>']);
    plain.then(|| value.split_whitespace().collect::<Vec<_>>().join(" "))
}

#[test]
fn the_w3c_feed_validator_corpus_reads_without_a_panic_and_agrees_with_itself() {
    let root = w3c_corpus();
    let files = files_under(&root);
    assert!(
        files.len() >= 1700,
        "{} files under {}",
        files.len(),
        root.display()
    );
    let normalizer = Normalizer::new();
    let (mut stored, mut empty, mut errors, mut posts_total) = (0, 0, 0, 0);
    let mut titles_checked = 0;
    let mut problems = Vec::new();
    for path in &files {
        let name = path.strip_prefix(&root).unwrap().display().to_string();
        let bytes = std::fs::read(path).unwrap();
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| read(&normalizer, &bytes)));
        let Ok((outcome, posts)) = result else {
            problems.push(format!("{name}: PANIC"));
            continue;
        };
        let decoded = herald::ingest::decode::decode(&bytes, None);
        let text = decoded.text.as_str();
        let found = recover::scan(text);
        let has_entries = found.entries_seen > 0;
        let well_formed = recover::well_formed(text).is_ok();
        let valid = text.contains("Expect:") && text.contains("!Error") && found.feed_root;
        let rss = found
            .root
            .as_deref()
            .is_some_and(|r| r.eq_ignore_ascii_case("rss") || r.ends_with("RDF"));
        match &outcome {
            Outcome::Stored(n) => {
                stored += 1;
                posts_total += n;
            }
            Outcome::Empty => empty += 1,
            Outcome::Error(_) => errors += 1,
        }
        if well_formed && has_entries && !matches!(outcome, Outcome::Stored(_)) {
            problems.push(format!("{name}: well-formed with entries, but {outcome:?}"));
        }
        if valid && matches!(outcome, Outcome::Error(_)) && !name.ends_with(".html") {
            problems.push(format!("{name}: a valid feed, but {outcome:?}"));
        }
        // What was read agrees with the document: the first entry's plain title and link.
        if well_formed && let Some(first) = posts.first() {
            if let Some(title) = first_entry_field(text, "title") {
                titles_checked += 1;
                if first.title != title {
                    problems.push(format!(
                        "{name}: title {:?}, the file says {title:?}",
                        first.title
                    ));
                }
            }
            if let Some(link) =
                first_entry_field(text, "link").filter(|l| rss && l.starts_with("http"))
                && let Ok(url) = url::Url::parse(&link)
                && first.url.as_deref() != Some(url.as_str())
            {
                problems.push(format!(
                    "{name}: link {:?}, the file says {link:?}",
                    first.url
                ));
            }
            // ("&amp;#0" is a title that says, as HTML, the character U+0000: U+FFFD.)
            if !decoded.replaced && first.title.contains('\u{fffd}') && !text.contains("&amp;#") {
                problems.push(format!(
                    "{name}: a replacement character in {:?}",
                    first.title
                ));
            }
        }
    }
    println!(
        "w3c corpus: {} files: {stored} stored ({posts_total} posts), {empty} empty, {errors} named errors; {titles_checked} titles checked",
        files.len()
    );
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
    assert!(
        stored > 1000 && titles_checked > 500,
        "{stored} stored, {titles_checked} titles"
    );
}

/// SplitMix64: a fixed seed gives the same 20,000 documents on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Every fixture feed, and each encoding fixture in its own encoding.
fn seeds() -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    for dir in ["feeds", "feeds/world", "feeds/world/encodings"] {
        for path in files_under(&fixtures().join(dir)) {
            if path.parent() != Some(&fixtures().join(dir)) {
                continue;
            }
            let bytes = std::fs::read(&path).unwrap();
            if dir.ends_with("encodings") {
                let text = String::from_utf8(bytes).unwrap();
                let label = text
                    .split("encoding=\"")
                    .nth(1)
                    .and_then(|r| r.split('"').next());
                if let Some(encoding) =
                    label.and_then(|l| encoding_rs::Encoding::for_label(l.as_bytes()))
                {
                    seeds.push(encoding.encode(&text).0.into_owned());
                }
                seeds.push(text.into_bytes());
            } else {
                seeds.push(bytes);
            }
        }
    }
    seeds
}

const LEGACY: &[&encoding_rs::Encoding] = &[
    encoding_rs::SHIFT_JIS,
    encoding_rs::EUC_KR,
    encoding_rs::GBK,
    encoding_rs::BIG5,
    encoding_rs::KOI8_R,
    encoding_rs::WINDOWS_1252,
    encoding_rs::ISO_8859_2,
];

fn mutate(rng: &mut Rng, doc: &[u8]) -> Vec<u8> {
    let mut out = doc.to_vec();
    for _ in 0..1 + rng.below(3) {
        let at = rng.below(out.len() + 1);
        match rng.below(10) {
            0 => out.truncate(at),
            1 => {
                if let Some(b) = out.get_mut(at) {
                    *b ^= 1 << rng.below(8);
                }
            }
            2 => out.insert(at, b'&'),
            3 => out.insert(at, b'<'),
            4 => out.insert(at, 0),
            5 => {
                let boms: [&[u8]; 3] = [b"\xEF\xBB\xBF", b"\xFF\xFE", b"\xFE\xFF"];
                let bom = boms[rng.below(3)];
                let at = if rng.below(2) == 0 { 0 } else { at };
                out.splice(at..at, bom.iter().copied());
            }
            6 => {
                // Re-encoded: in a legacy charset, or UTF-16 either way round.
                let text = String::from_utf8_lossy(&out).into_owned();
                out = match rng.below(3) {
                    0 => text.encode_utf16().flat_map(u16::to_le_bytes).collect(),
                    1 => text.encode_utf16().flat_map(u16::to_be_bytes).collect(),
                    _ => LEGACY[rng.below(LEGACY.len())].encode(&text).0.into_owned(),
                };
            }
            7 => {
                // A span deleted (a tag's end, a CDATA terminator, half an entry).
                let len = rng.below(64).min(out.len() - at.min(out.len()));
                out.drain(at..at + len);
            }
            8 => {
                // A span repeated (an entry twice, a tag opened again).
                let len = rng.below(256).min(out.len() - at.min(out.len()));
                let span = out[at..at + len].to_vec();
                out.splice(at..at, span);
            }
            _ => {
                let junk: [&[u8]; 4] = [b"]]>", b"<![CDATA[", b"&nbsp;", b"</item>"];
                out.splice(at..at, junk[rng.below(4)].iter().copied());
            }
        }
    }
    out
}

#[test]
fn twenty_thousand_mutations_never_panic_and_always_say_what_happened() {
    let seeds = seeds();
    assert!(seeds.len() >= 40, "{} seeds", seeds.len());
    let normalizer = Normalizer::new();
    let mut rng = Rng(0x5EED_0009_F00D);
    let (mut stored, mut empty, mut errors) = (0, 0, 0);
    for case in 0..20_000 {
        let seed = &seeds[rng.below(seeds.len())];
        let doc = mutate(&mut rng, seed);
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| read(&normalizer, &doc)));
        match result {
            Ok((Outcome::Stored(_), _)) => stored += 1,
            Ok((Outcome::Empty, _)) => empty += 1,
            Ok((Outcome::Error(_), _)) => errors += 1,
            Err(_) => {
                let path = std::env::temp_dir().join(format!("herald-mutation-{case}.xml"));
                std::fs::write(&path, &doc).unwrap();
                panic!(
                    "mutation {case} panicked; the document is in {}",
                    path.display()
                );
            }
        }
    }
    println!("mutations: {stored} stored, {empty} empty, {errors} named errors");
    // Most mutations leave something readable: recovery works on damaged documents.
    assert!(
        stored * 10 > 20_000 * 6,
        "{stored} stored, {empty} empty, {errors} errors"
    );
}
