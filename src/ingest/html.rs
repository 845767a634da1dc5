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
        let document = self.content.clean(html);
        BASE.with(|b| *b.borrow_mut() = None);
        linear_serialize(&document)
    }

    /// Text that may contain markup or entities (an RSS title) as one line of plain text.
    pub fn inline_text(&self, s: &str) -> String {
        if s.contains('&') || s.contains('<') {
            fold_line(&html_to_text(&linear_serialize(&self.inline.clean(s))))
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
