//! Raw bytes to a feed-rs [`Feed`], or the reason they are not a feed.
//!
//! feed-rs gets the bytes exactly as fetched: it decodes them by the encoding declared in
//! the XML prolog (ISO-8859-1, Windows-1252, …), which a prior UTF-8 decode would break.
//! Entry ids are left empty when the feed gives none (instead of feed-rs' random UUID) so
//! that [`normalize`](super::normalize) can derive a stable one. An HTML page where a feed
//! was expected is recognised and, when it advertises its feed, the feed's URL is named.

use feed_rs::model::Feed;

use crate::markup::attribute;

/// A parsed feed.
pub type ParsedFeed = Feed;

/// Parses a feed; `base` resolves relative entry links (the URL the bytes came from).
pub fn parse_feed(
    bytes: &[u8],
    content_type: Option<&str>,
    base: Option<&str>,
) -> Result<Feed, String> {
    let start = skip_bom_and_space(bytes);
    if start.is_empty() {
        return Err("the response is empty".into());
    }
    if looks_like_html(start, content_type) {
        let mut reason = "it is an HTML page".to_owned();
        if let Some(feed) = advertised_feed(bytes) {
            reason.push_str(&format!(
                " (the page links to a feed at {feed}; use that URL)"
            ));
        }
        return Err(reason);
    }
    // A document that says (or implies) UTF-8 but is not: repair it, replacing the bad
    // sequences, rather than lose every entry over a few bytes. Other declared encodings
    // go to feed-rs untouched; it decodes them.
    let repaired;
    let bytes = if declares_utf8(start) && std::str::from_utf8(bytes).is_err() {
        repaired = String::from_utf8_lossy(bytes).into_owned();
        repaired.as_bytes()
    } else {
        bytes
    };
    let parser = feed_rs::parser::Builder::new()
        .base_uri(base)
        .id_generator(|_links, _title, _uri| String::new())
        .sanitize_content(false)
        .build();
    parser
        .parse(bytes)
        .map_err(|e| format!("cannot parse it as RSS, Atom or JSON Feed: {e}"))
}

/// Whether an XML prolog declares UTF-8 or no encoding (JSON is always UTF-8).
fn declares_utf8(start: &[u8]) -> bool {
    if !start.starts_with(b"<?xml") {
        return true;
    }
    let end = start
        .iter()
        .position(|b| *b == b'>')
        .unwrap_or(start.len().min(200));
    let prolog = String::from_utf8_lossy(&start[..end]).to_ascii_lowercase();
    match prolog.split("encoding").nth(1) {
        None => true,
        Some(rest) => {
            let value: String = rest
                .trim_start_matches([' ', '='])
                .trim_start_matches(['"', '\''])
                .chars()
                .take_while(|c| *c != '"' && *c != '\'')
                .collect();
            value == "utf-8" || value == "utf8"
        }
    }
}

fn skip_bom_and_space(bytes: &[u8]) -> &[u8] {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let first = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    &bytes[first..]
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
        assert!(declares_utf8(b"<?xml version='1.0'?>"));
        assert!(!declares_utf8(
            b"<?xml version='1.0' encoding='ISO-8859-1'?>"
        ));
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
