//! Raw bytes to a feed-rs [`Feed`], or the reason they are not a feed.
//!
//! The steps, each for what the one before cannot read:
//!
//! 1. [`decode`](super::decode): the encoding is decided once (BOM, HTTP charset, XML
//!    declaration, sniff) and the document becomes UTF-8 whose declaration says nothing
//!    else, so feed-rs never switches encodings half way.
//! 2. feed-rs reads what it reads well: RSS 0.9x–2.0, RSS 1.0, Atom 1.0, JSON Feed. A
//!    panic inside it is caught and becomes that source's error.
//! 3. JSON Feed is read field by field when feed-rs rejects it
//!    ([`repair_json`]): a bad field drops that field, a bad item drops that item.
//! 4. XML that feed-rs rejects, or reads to no entries although it has some, goes to
//!    [`recover`](super::recover): a tolerant scan keeps every complete entry. When the
//!    document was not even well-formed XML, its posts are marked as recovered and the
//!    first parse error is kept for the poll report.
//!
//! Entry ids are left empty when the feed gives none (instead of feed-rs' random UUID) so
//! that [`normalize`](super::normalize) can derive a stable one. An HTML page where a feed
//! was expected is recognised and, when it advertises its feed, the feed's URL is named.

use std::panic::AssertUnwindSafe;

use feed_rs::model::Feed;
use serde_json::{Map, Value};

use super::decode::decode;
use super::recover;
use crate::markup::attribute;

/// A parsed feed.
pub type ParsedFeed = Feed;

/// A feed as read, and how it was read.
#[derive(Debug)]
pub struct Parsed {
    pub feed: Feed,
    /// The `<item>`/`<entry>` elements (JSON `items`) the document holds.
    pub entries_seen: usize,
    /// The encoding the document was decoded from, when it was not UTF-8.
    pub encoding: Option<&'static str>,
    /// Some bytes were not valid in that encoding and were replaced.
    pub replaced: bool,
    /// The document was malformed and its entries were recovered: the first parse error.
    pub recovered: Option<String>,
    /// What was left out to read the rest (fields of a JSON Feed, incomplete entries).
    pub dropped: Vec<String>,
}

/// Parses a feed; `base` resolves relative entry links (the URL the bytes came from).
pub fn parse_feed(
    bytes: &[u8],
    content_type: Option<&str>,
    base: Option<&str>,
) -> Result<Feed, String> {
    read_feed(bytes, content_type, base).map(|parsed| parsed.feed)
}

/// Reads a feed and says how (see the module docs). A document that holds entries but
/// yields none is an error naming the reason; a valid feed without entries is not.
pub fn read_feed(
    bytes: &[u8],
    content_type: Option<&str>,
    base: Option<&str>,
) -> Result<Parsed, String> {
    let decoded = decode(bytes, content_type);
    let text = decoded
        .text
        .trim_start_matches(['\u{feff}', ' ', '\t', '\r', '\n']);
    if text.is_empty() {
        return Err("the response is empty".into());
    }
    if looks_like_html(text.as_bytes(), content_type) {
        let mut reason = "it is an HTML page".to_owned();
        if let Some(feed) = advertised_feed(text.as_bytes()) {
            reason.push_str(&format!(
                " (the page links to a feed at {feed}; use that URL)"
            ));
        }
        return Err(reason);
    }
    let mut parsed = if text.starts_with('{') {
        read_json(text, base)?
    } else {
        read_xml(text, base)?
    };
    parsed.encoding = decoded.encoding;
    parsed.replaced = decoded.replaced;
    Ok(parsed)
}

fn parsed(feed: Feed, entries_seen: usize) -> Parsed {
    Parsed {
        feed,
        entries_seen,
        encoding: None,
        replaced: false,
        recovered: None,
        dropped: Vec::new(),
    }
}

/// feed-rs on UTF-8 text; a panic inside it is an error like any other.
fn strict(text: &str, base: Option<&str>) -> Result<Feed, String> {
    let parser = feed_rs::parser::Builder::new()
        .base_uri(base)
        .id_generator(|_links, _title, _uri| String::new())
        .sanitize_content(false)
        .build();
    match std::panic::catch_unwind(AssertUnwindSafe(|| parser.parse(text.as_bytes()))) {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Err(format!("the feed parser crashed ({message})"))
        }
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// XML: feed-rs, and the recovery scan for what it cannot read.
fn read_xml(text: &str, base: Option<&str>) -> Result<Parsed, String> {
    let swallowed = recover::swallowing_cdata(text);
    let strict_error = match strict(text, base) {
        Ok(feed) if !feed.entries.is_empty() && swallowed.is_none() => {
            let n = feed.entries.len();
            return Ok(parsed(feed, n));
        }
        Ok(feed) => Ok(feed),
        Err(e) => Err(e),
    };
    let found = recover::scan(text);
    if swallowed.is_some()
        && matches!(&strict_error, Ok(feed) if feed.entries.len() >= found.items.len())
        && let Ok(feed) = strict_error
    {
        // The scan finds no more entries than the strict parse: keep the strict reading.
        let n = feed.entries.len();
        return Ok(parsed(feed, n));
    }
    let malformed = swallowed.or_else(|| recover::well_formed(text).err());
    // Malformed: first the cheap repairs, which keep everything the strict parser reads,
    // unless they read fewer entries than the scan (an unterminated CDATA section can
    // swallow the next entry and still leave a well-formed document).
    if let Some(error) = &malformed
        && let Some(repaired) = recover::repair(text)
        && let Ok(feed) = strict(&repaired, base)
        && !feed.entries.is_empty()
        && feed.entries.len() >= found.items.len()
    {
        let mut parsed = parsed(feed, found.entries_seen);
        parsed.recovered = Some(error.clone());
        return Ok(parsed);
    }
    if found.entries_seen == 0 {
        return match strict_error {
            Ok(feed) => Ok(parsed(feed, 0)),
            // Well-formed, a feed's root, no entries, and feed-rs objects to something
            // else in it: a feed with nothing in it yet.
            Err(_) if found.feed_root && malformed.is_none() => {
                let feed = strict(&recover::to_rss(&found), base)?;
                Ok(parsed(feed, 0))
            }
            Err(e) => Err(match (&found.root, malformed) {
                (Some(root), None) if !found.feed_root => format!(
                    "it is XML but not a feed: its root element is <{root}>, not <rss>, <rdf:RDF> or <feed>"
                ),
                (_, malformed) => format!(
                    "cannot parse it as RSS, Atom or JSON Feed: {}",
                    malformed.unwrap_or(e)
                ),
            }),
        };
    }
    let seen = found.entries_seen;
    if found.items.is_empty() {
        let why = match (&malformed, &strict_error) {
            (Some(e), _) => format!("the document is malformed ({e})"),
            (None, Err(e)) => e.clone(),
            (None, Ok(_)) => "every one is cut off".into(),
        };
        return Err(format!(
            "cannot parse it as RSS, Atom or JSON Feed: it holds {} but none could be read: {why}",
            plural(seen, "entry", "entries")
        ));
    }
    let feed = strict(&recover::to_rss(&found), base)
        .map_err(|e| format!("cannot parse it as RSS, Atom or JSON Feed: {e}"))?;
    let mut parsed = parsed(feed, seen);
    let kept = parsed.feed.entries.len();
    if kept < seen {
        parsed.dropped.push(format!(
            "{} cut off",
            plural(seen - kept, "entry", "entries")
        ));
    }
    match (malformed, strict_error) {
        (Some(error), _) => parsed.recovered = Some(error),
        // Well-formed but a variant feed-rs does not read: read, not recovered.
        (None, Err(e)) => parsed
            .dropped
            .push(format!("read by herald's own reader: {e}")),
        (None, Ok(_)) => parsed
            .dropped
            .push("read by herald's own reader: feed-rs found no entries".into()),
    }
    Ok(parsed)
}

/// JSON Feed: feed-rs, and field by field when it rejects the document.
fn read_json(text: &str, base: Option<&str>) -> Result<Parsed, String> {
    let strict_error = match strict(text, base) {
        Ok(feed) => {
            let n = feed.entries.len();
            return Ok(parsed(feed, n));
        }
        Err(e) => e,
    };
    let mut dropped = Vec::new();
    let mut cut_off = None;
    let value: Value = match serde_json::from_str(text) {
        Ok(value) => value,
        Err(e) if e.is_eof() => {
            // Cut off: its complete items, closed.
            let (closed, opened, complete) = close_cut_off_json(text)
                .ok_or_else(|| format!("cannot parse it as JSON Feed: {e}"))?;
            if opened > complete {
                dropped.push(format!(
                    "{} cut off",
                    plural(opened - complete, "item", "items")
                ));
            }
            cut_off = Some((format!("the document is cut off: {e}"), opened));
            serde_json::from_str(&closed)
                .map_err(|_| format!("cannot parse it as JSON Feed: {e}"))?
        }
        Err(e) => return Err(format!("cannot parse it as JSON Feed: {e}")),
    };
    let Value::Object(top) = value else {
        return Err(format!("cannot parse it as JSON Feed: {strict_error}"));
    };
    let seen = match &cut_off {
        Some((_, opened)) => *opened,
        None => top
            .get("items")
            .and_then(Value::as_array)
            .map_or(0, Vec::len),
    };
    let repaired = repair_json(top, &mut dropped);
    let feed = strict(&repaired.to_string(), base)
        .map_err(|e| format!("cannot parse it as JSON Feed: {e}"))?;
    if seen > 0 && feed.entries.is_empty() {
        return Err(format!(
            "cannot parse it as JSON Feed: it holds {} but none could be read ({})",
            plural(seen, "item", "items"),
            dropped.join("; ")
        ));
    }
    let mut parsed = parsed(feed, seen);
    parsed.dropped = dropped;
    parsed.recovered = cut_off.map(|(why, _)| why);
    Ok(parsed)
}

/// A JSON Feed cut off mid-way, closed after its last complete item: the closed text,
/// how many items were opened, and how many were complete. `None` when no item completed.
fn close_cut_off_json(text: &str) -> Option<(String, usize, usize)> {
    let mut stack: Vec<u8> = Vec::new();
    let (mut in_string, mut escaped) = (false, false);
    let (mut opened, mut complete) = (0, 0);
    let mut cut: Option<(usize, Vec<u8>)> = None;
    // Whether the open second-level array is the top object's "items".
    let mut in_items = false;
    for (i, b) in text.bytes().enumerate() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                if stack.len() == 1 {
                    in_items = b == b'['
                        && text[..i]
                            .trim_end()
                            .strip_suffix(':')
                            .is_some_and(|key| key.trim_end().ends_with("\"items\""));
                }
                if stack.len() == 2 && in_items {
                    opened += 1;
                }
                stack.push(b);
            }
            b'}' | b']' => {
                stack.pop();
                if stack.len() == 2 && in_items {
                    complete += 1;
                    cut = Some((i + 1, stack.clone()));
                }
            }
            _ => {}
        }
    }
    let (end, open) = cut?;
    let mut closed = text[..end].to_owned();
    for b in open.iter().rev() {
        closed.push(if *b == b'{' { '}' } else { ']' });
    }
    Some((closed, opened, complete))
}

/// The JSON Feed fields feed-rs reads, with the types it reads them as.
const FEED_STRINGS: &[&str] = &[
    "home_page_url",
    "feed_url",
    "language",
    "description",
    "icon",
    "favicon",
];
const ITEM_STRINGS: &[&str] = &[
    "id",
    "url",
    "external_url",
    "title",
    "content_html",
    "content_text",
    "summary",
    "date_published",
    "date_modified",
];

/// A JSON Feed brought to the shape feed-rs reads: a field of the wrong type becomes the
/// right one where that is unambiguous (a number where a string belongs, tags as one
/// comma-separated string) and is dropped otherwise; an item that is not an object is
/// dropped. Each drop is noted in `dropped`.
fn repair_json(mut top: Map<String, Value>, dropped: &mut Vec<String>) -> Value {
    let version = top.get("version").and_then(Value::as_str).unwrap_or("");
    let version_ok = version.starts_with("https://jsonfeed.org/version/1");
    if !version_ok {
        dropped.push(format!("version {version:?} (read as 1.1)"));
        top.insert(
            "version".into(),
            Value::String("https://jsonfeed.org/version/1.1".into()),
        );
    }
    let title = top.get("title").map(as_text).unwrap_or_default();
    top.insert("title".into(), Value::String(title.unwrap_or_default()));
    for key in FEED_STRINGS {
        string_field(&mut top, key, "feed", dropped);
    }
    people(&mut top, "feed", dropped);
    let items = match top.remove("items") {
        Some(Value::Array(items)) => items,
        Some(_) => {
            dropped.push("items (not a list)".into());
            Vec::new()
        }
        None => Vec::new(),
    };
    let mut kept = Vec::with_capacity(items.len());
    for (n, item) in items.into_iter().enumerate() {
        let Value::Object(mut item) = item else {
            dropped.push(format!("item {} (not an object)", n + 1));
            continue;
        };
        let place = format!("item {}", n + 1);
        for key in ITEM_STRINGS {
            string_field(&mut item, key, &place, dropped);
        }
        people(&mut item, &place, dropped);
        tags(&mut item, &place, dropped);
        attachments(&mut item, &place, dropped);
        kept.push(Value::Object(item));
    }
    top.insert("items".into(), Value::Array(kept));
    Value::Object(top)
}

/// A scalar as text (numbers and booleans written out); `None` for other values.
fn as_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn string_field(
    object: &mut Map<String, Value>,
    key: &str,
    place: &str,
    dropped: &mut Vec<String>,
) {
    let Some(value) = object.get(key) else { return };
    match value {
        Value::String(_) => {}
        Value::Null => {
            object.remove(key);
        }
        other => match as_text(other) {
            Some(text) => {
                object.insert(key.into(), Value::String(text));
            }
            None => {
                dropped.push(format!("{place}: {key} (not text)"));
                object.remove(key);
            }
        },
    }
}

/// `author` (1.0) and `authors` (1.1), each kept only in a shape feed-rs reads.
fn people(object: &mut Map<String, Value>, place: &str, dropped: &mut Vec<String>) {
    let person = |value: Value| -> Option<Value> {
        match value {
            Value::Object(mut p) => {
                for key in ["name", "url"] {
                    if p.get(key).is_some_and(|v| !v.is_string()) {
                        match p.get(key).and_then(as_text) {
                            Some(t) => {
                                p.insert(key.into(), Value::String(t));
                            }
                            None => {
                                p.remove(key);
                            }
                        }
                    }
                }
                Some(Value::Object(p))
            }
            Value::String(name) => Some(serde_json::json!({ "name": name })),
            _ => None,
        }
    };
    if let Some(author) = object.remove("author") {
        match person(author) {
            Some(p) => {
                object.insert("author".into(), p);
            }
            None => dropped.push(format!("{place}: author (not a person)")),
        }
    }
    if let Some(authors) = object.remove("authors") {
        let list = match authors {
            Value::Array(list) => list,
            single => vec![single],
        };
        let people: Vec<Value> = list.into_iter().filter_map(person).collect();
        if people.is_empty() {
            dropped.push(format!("{place}: authors (no person in it)"));
        } else {
            object.insert("authors".into(), Value::Array(people));
        }
    }
}

/// `tags`: a list of strings; one string is split at its commas.
fn tags(item: &mut Map<String, Value>, place: &str, dropped: &mut Vec<String>) {
    let Some(value) = item.remove("tags") else {
        return;
    };
    let list: Vec<String> = match value {
        Value::String(s) => s
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect(),
        Value::Array(list) => list.iter().filter_map(as_text).collect(),
        Value::Null => return,
        _ => {
            dropped.push(format!("{place}: tags (not a list)"));
            return;
        }
    };
    item.insert(
        "tags".into(),
        Value::Array(list.into_iter().map(Value::String).collect()),
    );
}

/// `attachments`: those with a URL, with a MIME type (a default one when it is missing).
fn attachments(item: &mut Map<String, Value>, place: &str, dropped: &mut Vec<String>) {
    let Some(value) = item.remove("attachments") else {
        return;
    };
    let Value::Array(list) = value else {
        dropped.push(format!("{place}: attachments (not a list)"));
        return;
    };
    let kept: Vec<Value> = list
        .into_iter()
        .filter_map(|a| {
            let Value::Object(mut a) = a else { return None };
            let url = a.get("url").and_then(Value::as_str)?.to_owned();
            let mime = a
                .get("mime_type")
                .and_then(Value::as_str)
                .unwrap_or("application/octet-stream")
                .to_owned();
            let title = a.get("title").and_then(as_text);
            let size = a.remove("size_in_bytes").and_then(|s| s.as_u64());
            let mut out = serde_json::json!({ "url": url, "mime_type": mime });
            if let Some(title) = title {
                out["title"] = Value::String(title);
            }
            if let Some(size) = size {
                out["size_in_bytes"] = Value::from(size);
            }
            Some(out)
        })
        .collect();
    item.insert("attachments".into(), Value::Array(kept));
}

fn looks_like_html(start: &[u8], content_type: Option<&str>) -> bool {
    let head: Vec<u8> = start.iter().take(256).map(u8::to_ascii_lowercase).collect();
    if head.starts_with(b"<!doctype html") || head.starts_with(b"<html") {
        return true;
    }
    // Served as HTML and not starting like any XML or JSON feed.
    content_type.is_some_and(|ct| ct.to_ascii_lowercase().starts_with("text/html"))
        && !(head.starts_with(b"<?xml")
            || head.starts_with(b"<rss")
            || head.starts_with(b"<feed")
            || head.starts_with(b"{"))
        && !head.starts_with(b"<rdf")
}

/// The `href` of the first `<link rel="alternate">` with a feed type in an HTML page.
fn advertised_feed(html: &[u8]) -> Option<String> {
    let head = String::from_utf8_lossy(&html[..html.len().min(64 * 1024)]);
    let lower = head.to_ascii_lowercase();
    let mut from = 0;
    while let Some(pos) = lower[from..].find("<link") {
        let tag_start = from + pos;
        let tag_end = lower[tag_start..].find('>').map(|e| tag_start + e)?;
        let tag = &lower[tag_start..tag_end];
        let is_feed = tag.contains("alternate")
            && (tag.contains("rss+xml") || tag.contains("atom+xml") || tag.contains("feed+json"));
        if is_feed && let Some(href) = attribute(&head[tag_start..tag_end], "href") {
            return Some(href);
        }
        from = tag_end;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_an_html_page_and_names_its_feed() {
        let page = br#"<!DOCTYPE html><html><head><link rel="alternate" type="application/rss+xml" href="https://example.org/feed.xml"></head><body>hi</body></html>"#;
        let err = parse_feed(page, Some("text/html"), None).unwrap_err();
        assert!(
            err.contains("HTML page") && err.contains("https://example.org/feed.xml"),
            "{err}"
        );
    }

    #[test]
    fn repairs_invalid_utf8_in_a_utf8_document() {
        let mut rss = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><rss version=\"2.0\"><channel><title>t</title><item><title>caf".to_vec();
        rss.extend_from_slice(b"\xe9 \xff</title><guid>1</guid></item></channel></rss>");
        let feed = parse_feed(&rss, None, None).unwrap();
        assert_eq!(
            feed.entries[0].title.as_ref().unwrap().content,
            "caf\u{fffd} \u{fffd}"
        );
    }

    #[test]
    fn keeps_the_complete_items_of_a_cut_off_json_feed() {
        let whole = r#"{"version":"https://jsonfeed.org/version/1.1","title":"T","items":[{"id":"1","title":"One {[","content_text":"a \" } ]"},{"id":"2","title":"Two","tags":["x"],"content_text":"b"},{"id":"3","title":"Thr"#;
        let parsed =
            read_feed(whole.as_bytes(), Some("application/feed+json"), None).expect("reads");
        let titles: Vec<_> = parsed
            .feed
            .entries
            .iter()
            .map(|e| {
                e.title
                    .as_ref()
                    .map(|t| t.content.clone())
                    .unwrap_or_default()
            })
            .collect();
        assert_eq!(titles, ["One {[", "Two"]);
        assert_eq!(parsed.entries_seen, 3);
        assert!(
            parsed
                .recovered
                .as_deref()
                .unwrap_or("")
                .contains("cut off")
        );
        assert_eq!(parsed.dropped, ["1 item cut off"]);
        // Other arrays of the feed are not items.
        let authors_then_cut = r#"{"version":"https://jsonfeed.org/version/1.1","items":[{"id":"0","title":"Zero"}],"hubs":[{"type":"WebSub"}],"author":{"o":{"a":1}},"x":[{"id":"1","ti"#;
        let parsed = read_feed(authors_then_cut.as_bytes(), None, None).expect("reads");
        assert_eq!((parsed.feed.entries.len(), parsed.entries_seen), (1, 1));
        // Cut before any item is complete: an error, not an empty feed.
        assert!(
            read_feed(
                br#"{"version":"https://jsonfeed.org/version/1.1","items":[{"id":"1","ti"#,
                None,
                None
            )
            .is_err()
        );
    }

    #[test]
    fn rejects_an_empty_body() {
        assert_eq!(
            parse_feed(b"  \n", None, None).unwrap_err(),
            "the response is empty"
        );
    }

    #[test]
    fn leaves_missing_ids_empty_instead_of_random() {
        let rss = br#"<rss version="2.0"><channel><title>t</title><item><title>x</title><description>y</description></item></channel></rss>"#;
        let feed = parse_feed(rss, None, None).unwrap();
        assert_eq!(feed.entries[0].id, "");
    }
}
