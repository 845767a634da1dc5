//! Sanitizing entries: ammonia's allow-list (no scripts, event handlers, iframes, forms,
//! styles) with relative URLs made absolute, and inline text (titles) with entities
//! decoded. The plain-text and image scanners that read the sanitized output are in
//! [`crate::markup`], shared with the stages that render it.
//!
//! Serializing is kept linear by hand ([`linear_serialize`]): html5ever 0.40's serializer
//! scans from every `&`, `<`, `>` and U+0080–U+00FF character to the next `<` or `>` of
//! the same text node (`write_escaped`), so a text dense in them is quadratic (a 0.5 MB
//! item of `&amp;x;` took minutes). This needs ammonia's DOM, which it exposes under
//! `--cfg ammonia_unstable` (set in `.cargo/config.toml`).
//!
//! Parsing is kept linear too ([`cap_nesting`]): html5ever's tree builder walks the stack
//! of open elements for many start tags, so a body of 80,000 nested `<div>`s took half a
//! minute. Elements nested deeper than [`MAX_DEPTH`] lose their tags (never their text)
//! before ammonia sees them.

#[cfg(not(ammonia_unstable))]
compile_error!(
    "herald needs `--cfg ammonia_unstable` (set in its .cargo/config.toml; when RUSTFLAGS is set, add it there)"
);

use std::borrow::Cow;
use std::cell::RefCell;

use url::Url;

use crate::markup::{fold_line, html_to_text};

thread_local! {
    /// Base for the relative URLs of the entry being sanitized on this thread.
    static BASE: RefCell<Option<Url>> = const { RefCell::new(None) };
}

/// Sanitizers, built once: building an ammonia builder is not free.
pub struct Sanitizer {
    content: ammonia::Builder<'static>,
    inline: ammonia::Builder<'static>,
}

impl std::fmt::Debug for Sanitizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sanitizer")
    }
}

impl Default for Sanitizer {
    fn default() -> Self {
        Self::new()
    }
}

impl Sanitizer {
    pub fn new() -> Self {
        let mut content = ammonia::Builder::default();
        content
            .link_rel(Some("noopener noreferrer"))
            .url_relative(ammonia::UrlRelative::Custom(Box::new(resolve_against_base)));
        let mut inline = ammonia::Builder::empty();
        inline.clean_content_tags(["script", "style"].into_iter().collect());
        Self { content, inline }
    }

    /// Sanitized HTML with relative URLs made absolute against `base` (left relative when
    /// there is no base).
    pub fn clean(&self, html: &str, base: Option<&Url>) -> String {
        BASE.with(|b| *b.borrow_mut() = base.cloned());
        let document = self.content.clean(&cap_nesting(html));
        BASE.with(|b| *b.borrow_mut() = None);
        linear_serialize(&document)
    }

    /// Text that may contain markup or entities (an RSS title) as one line of plain text.
    pub fn inline_text(&self, s: &str) -> String {
        if s.contains('&') || s.contains('<') {
            let document = self.inline.clean(&cap_nesting(s));
            fold_line(&html_to_text(&linear_serialize(&document)))
        } else {
            fold_line(s)
        }
    }
}

/// Text nodes longer than this that hold characters the serializer escapes are split
/// into pieces of about [`TEXT_PIECE`] bytes.
const SPLIT_ABOVE: usize = 1024;
const TEXT_PIECE: usize = 256;
/// An attribute value whose serialization would cost more than this (length × escaped
/// characters) is dropped: no real attribute comes near it.
const ATTRIBUTE_COST_LIMIT: usize = 4_000_000;

/// The cleaned document serialized by html5ever, in time linear in its length: long text
/// nodes are split first (adjacent text nodes serialize exactly as one, so the output is
/// the same bytes), and pathological attribute values are dropped.
fn linear_serialize(document: &ammonia::Document) -> String {
    use ammonia::rcdom::{Node, NodeData};
    let mut stack = vec![document.to_dom_node()];
    while let Some(node) = stack.pop() {
        if let NodeData::Element { attrs, .. } = &node.data {
            attrs
                .borrow_mut()
                .retain(|a| a.value.len() * escaped_count(&a.value) <= ATTRIBUTE_COST_LIMIT);
        }
        let needs_split = node.children.borrow().iter().any(|child| {
            matches!(&child.data, NodeData::Text { contents }
                if contents.borrow().len() > SPLIT_ABOVE && escaped_count(&contents.borrow()) > 0)
        });
        if needs_split {
            let children = std::mem::take(&mut *node.children.borrow_mut());
            let mut split = Vec::with_capacity(children.len());
            for child in children {
                let NodeData::Text { contents } = &child.data else {
                    split.push(child);
                    continue;
                };
                let text = contents.borrow();
                if text.len() <= SPLIT_ABOVE {
                    split.push(std::rc::Rc::clone(&child));
                    continue;
                }
                let mut start = 0;
                while start < text.len() {
                    let mut end = (start + TEXT_PIECE).min(text.len());
                    while !text.is_char_boundary(end) {
                        end += 1;
                    }
                    let piece = text.subtendril(start as u32, (end - start) as u32);
                    let piece = Node::new(NodeData::Text {
                        contents: std::cell::RefCell::new(piece),
                    });
                    piece.parent.set(Some(std::rc::Rc::downgrade(&node)));
                    split.push(piece);
                    start = end;
                }
            }
            *node.children.borrow_mut() = split;
        }
        stack.extend(node.children.borrow().iter().cloned());
    }
    document.to_string()
}

/// How many characters html5ever's serializer stops at in `s` (`& < > "` and the lead
/// byte 0xC2).
fn escaped_count(s: &str) -> usize {
    s.bytes()
        .filter(|b| matches!(b, b'&' | b'<' | b'>' | b'"' | 0xC2))
        .count()
}

/// How deep elements may nest before their tags are dropped. Real posts stay far below
/// it (a deeply quoted mail thread reaches a few dozen).
pub const MAX_DEPTH: usize = 256;

/// `html` with the start and end tags of elements nested deeper than [`MAX_DEPTH`]
/// removed; borrowed when nothing is that deep. Void elements, self-closed tags and the
/// elements whose end tag HTML makes optional (`p`, `li`, table cells…) do not count,
/// since the parser closes them itself; comments and the contents of raw-text elements
/// (`script`, `style`, `textarea`, `title`) are copied untouched.
pub fn cap_nesting(html: &str) -> Cow<'_, str> {
    let bytes = html.as_bytes();
    let mut out: Option<String> = None;
    // The end of what has been copied into `out` (or would have been).
    let mut copied = 0;
    let mut depth = 0usize;
    let mut dropped = 0usize;
    let mut at = 0;
    while let Some(offset) = memchr(b'<', &bytes[at..]) {
        let start = at + offset;
        let rest = &bytes[start + 1..];
        if rest.starts_with(b"!--") {
            at = find(bytes, start + 4, b"-->").map_or(bytes.len(), |e| e + 3);
            continue;
        }
        let closing = rest.first() == Some(&b'/');
        let name_start = start + 1 + usize::from(closing);
        let name_len = bytes[name_start..]
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric())
            .count();
        if name_len == 0 || !bytes[name_start].is_ascii_alphabetic() {
            at = start + 1;
            continue;
        }
        let name = html[name_start..name_start + name_len].to_ascii_lowercase();
        let end = tag_end(bytes, name_start + name_len);
        let self_closed = end >= 2 && bytes[end - 2] == b'/';
        let counted = !is_void_or_optional(&name);
        let drop = if closing {
            if counted && dropped > 0 {
                dropped -= 1;
                true
            } else {
                if counted {
                    depth = depth.saturating_sub(1);
                }
                false
            }
        } else if RAW_TEXT.contains(&name.as_str()) {
            // Copy the element whole: what looks like tags inside it is text.
            let close = format!("</{name}");
            at = find_ignore_case(bytes, end, close.as_bytes()).unwrap_or(bytes.len());
            continue;
        } else if counted && !self_closed {
            if depth >= MAX_DEPTH {
                dropped += 1;
                true
            } else {
                depth += 1;
                false
            }
        } else {
            false
        };
        if drop {
            let out = out.get_or_insert_with(|| String::with_capacity(html.len()));
            out.push_str(&html[copied..start]);
            copied = end;
        }
        at = end;
    }
    match out {
        None => Cow::Borrowed(html),
        Some(mut out) => {
            out.push_str(&html[copied..]);
            Cow::Owned(out)
        }
    }
}

/// Elements whose contents are text to the HTML parser.
const RAW_TEXT: &[&str] = &[
    "script",
    "style",
    "textarea",
    "title",
    "xmp",
    "iframe",
    "noembed",
    "noframes",
    "plaintext",
];

fn is_void_or_optional(name: &str) -> bool {
    matches!(
        name,
        "area" | "base" | "br" | "col" | "embed" | "hr" | "img" | "input" | "link" | "meta"
            | "source" | "track" | "wbr" | "param" | "keygen" | "p" | "li" | "dt" | "dd"
            | "option" | "optgroup" | "tr" | "td" | "th" | "thead" | "tbody" | "tfoot"
            | "colgroup" | "caption" | "rb" | "rt" | "rp" | "rtc" | "html" | "head" | "body"
            // A new one closes the open one, so they never nest.
            | "a" | "button" | "nobr" | "form" | "h1" | "h2" | "h3" | "h4" | "h5" | "h6"
    )
}

/// The index just past the `>` that ends the tag whose attributes start at `from`
/// (quoted values may hold `>`), or the end of the input.
fn tag_end(bytes: &[u8], from: usize) -> usize {
    let mut quote = None;
    for (i, &b) in bytes.iter().enumerate().skip(from) {
        match (quote, b) {
            (None, b'"' | b'\'') => quote = Some(b),
            (Some(q), _) if b == q => quote = None,
            (None, b'>') => return i + 1,
            _ => {}
        }
    }
    bytes.len()
}

fn memchr(needle: u8, haystack: &[u8]) -> Option<usize> {
    haystack.iter().position(|&b| b == needle)
}

fn find(bytes: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    bytes
        .get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

fn find_ignore_case(bytes: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    bytes
        .get(from..)?
        .windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle))
        .map(|p| p + from)
}

fn resolve_against_base(url: &str) -> Option<Cow<'_, str>> {
    BASE.with(|b| match b.borrow().as_ref() {
        Some(base) => base.join(url).ok().map(|u| Cow::Owned(u.to_string())),
        None => Some(Cow::Borrowed(url)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitizes_scripts_handlers_iframes_and_forms() {
        let s = Sanitizer::new();
        let dirty = r#"<p onclick="x()">Hi<script>alert(1)</script></p><iframe src="https://evil"></iframe><form action="/x"><input name="q"></form><a href="javascript:alert(1)">j</a>"#;
        let clean = s.clean(dirty, None);
        for banned in ["script", "onclick", "iframe", "form", "input", "javascript"] {
            assert!(!clean.contains(banned), "{banned} survived in {clean}");
        }
        assert!(clean.contains("<p>Hi</p>"));
    }

    #[test]
    fn rewrites_relative_urls_against_the_base() {
        let s = Sanitizer::new();
        let base = Url::parse("https://blog.example.org/posts/one/").unwrap();
        let clean = s.clean(
            r#"<img src="/img/a.png" alt="a"><a href="two/">t</a>"#,
            Some(&base),
        );
        assert!(
            clean.contains(r#"src="https://blog.example.org/img/a.png""#),
            "{clean}"
        );
        assert!(
            clean.contains(r#"href="https://blog.example.org/posts/one/two/""#),
            "{clean}"
        );
        assert!(clean.contains(r#"rel="noopener noreferrer""#));
    }

    #[test]
    fn decodes_entities_and_tags_in_titles() {
        let s = Sanitizer::new();
        assert_eq!(
            s.inline_text("Bread &amp; Butter&hellip;  <b>now</b>"),
            "Bread & Butter\u{2026} now"
        );
        assert_eq!(s.inline_text("AT&T \u{0007}rocks\n"), "AT&T rocks");
        assert_eq!(s.inline_text("x<script>alert(1)</script>y"), "xy");
    }

    #[test]
    fn leaves_ordinary_nesting_alone() {
        let html = "<div><blockquote><p>quoted<blockquote><p>again</blockquote></blockquote>\
                    <ul><li>one<li>two</ul><p>a<p>b<a href=x>c<a href=y>d</div>";
        assert!(matches!(cap_nesting(html), Cow::Borrowed(_)));
        // Unclosed paragraphs, list items and links do not nest, so they never count.
        let sloppy = "<p>para <a href=\"/x\">link <b>bold</b>".repeat(2 * MAX_DEPTH);
        assert!(matches!(cap_nesting(&sloppy), Cow::Borrowed(_)));
    }

    #[test]
    fn drops_the_tags_nested_past_the_limit_and_keeps_their_text() {
        let n = 5_000;
        let html = format!(
            "<script>{}</script>{}deep text{}<p>after</p>",
            "<div>".repeat(3),
            "<div><span>".repeat(n),
            "</span></div>".repeat(n)
        );
        let capped = cap_nesting(&html);
        assert_eq!(capped.matches("<div>").count(), MAX_DEPTH / 2 + 3);
        assert_eq!(capped.matches("</div>").count(), MAX_DEPTH / 2);
        assert!(
            capped.starts_with("<script><div><div><div></script>"),
            "{capped:.80}"
        );
        assert!(
            capped.contains("<span>deep text</span></div>"),
            "{capped:.80}"
        );
        assert!(
            capped.ends_with("</span></div><p>after</p>"),
            "{capped:.80}"
        );

        let clean = Sanitizer::new().clean(&html, None);
        assert!(clean.matches("<div>").count() <= MAX_DEPTH, "{clean:.200}");
        let text = html_to_text(&clean);
        assert!(text.contains("deep text"), "{text}");
        assert!(text.contains("after"), "{text}");
        assert!(!text.contains("<div>"), "{text}");
    }

    #[test]
    fn serializes_split_text_exactly_like_html5ever() {
        let s = Sanitizer::new();
        let text = "caf\u{e9} &amp; \u{b7} \u{a0}&lt;b&gt; \u{1f600} ".repeat(400);
        let html = format!("<p>{text}<b>{text}</b></p><pre>{text}</pre>");
        assert_eq!(
            s.clean(&html, None),
            ammonia::Builder::default()
                .link_rel(Some("noopener noreferrer"))
                .clean(&html)
                .to_string()
        );
    }

    #[test]
    fn pathological_attributes_are_dropped_and_ordinary_ones_kept() {
        let s = Sanitizer::new();
        let alt = "&amp;".repeat(20_000);
        let clean = s.clean(
            &format!("<img src=\"https://e.org/a.png\" alt=\"{alt}\">"),
            None,
        );
        assert_eq!(clean, "<img src=\"https://e.org/a.png\">");
        let clean = s.clean(
            "<img src=\"https://e.org/a.png?a=1&amp;b=2\" alt=\"x &amp; y\">",
            None,
        );
        assert!(clean.contains("alt=\"x &amp; y\""), "{clean}");
    }
}
