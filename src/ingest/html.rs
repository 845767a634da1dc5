//! HTML helpers for normalizing entries: sanitize with absolute URLs, HTML to plain text,
//! the first image, and inline text (titles) with entities decoded.
//!
//! Sanitizing is ammonia's allow-list (no scripts, event handlers, iframes, forms, styles).
//! The text and image scanners below read only ammonia's own serialized output, which is
//! regular (quoted attributes, only `&amp; &lt; &gt; &quot; &nbsp;` escapes), so a linear
//! scan is enough and a second HTML parse is not needed.
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

/// Plain text as escaped HTML paragraphs (blank lines separate paragraphs).
pub fn text_to_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    for para in text.split("\n\n").map(str::trim).filter(|p| !p.is_empty()) {
        out.push_str("<p>");
        for (i, line) in para.lines().enumerate() {
            if i > 0 {
                out.push_str("<br>");
            }
            escape_into(&mut out, line.trim());
        }
        out.push_str("</p>");
    }
    out
}

/// Escapes `& < > "` for HTML text and attribute values.
pub fn escape_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
}

/// Elements that start a new line in the plain text.
fn is_block(name: &str) -> bool {
    // ammonia serializes lower-case names; anything else is treated the same way.
    let mut lower = [0u8; 10];
    if name.len() > lower.len() {
        return false;
    }
    for (l, b) in lower.iter_mut().zip(name.bytes()) {
        *l = b.to_ascii_lowercase();
    }
    matches!(
        &lower[..name.len()],
        b"p" | b"div"
            | b"br"
            | b"li"
            | b"ul"
            | b"ol"
            | b"dl"
            | b"dt"
            | b"dd"
            | b"h1"
            | b"h2"
            | b"h3"
            | b"h4"
            | b"h5"
            | b"h6"
            | b"blockquote"
            | b"pre"
            | b"table"
            | b"tr"
            | b"td"
            | b"th"
            | b"hr"
            | b"figure"
            | b"figcaption"
            | b"section"
            | b"article"
            | b"header"
            | b"footer"
            | b"aside"
            | b"details"
            | b"summary"
            | b"address"
    )
}

/// Plain text of sanitized HTML: one line per block, whitespace folded within a line,
/// entities decoded, control characters dropped.
pub fn html_to_text(html: &str) -> String {
    let mut out = TextBuilder {
        out: String::with_capacity(html.len() / 2),
        space: false,
        newline: false,
    };
    let bytes = html.as_bytes();
    let mut i = 0;
    let mut run_start = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'<' => {
                out.push_text(&html[run_start..i]);
                let end = tag_end(bytes, i);
                let name = tag_name(&html[i + 1..end]);
                if is_block(name) {
                    out.newline = true;
                } else if name.eq_ignore_ascii_case("img") {
                    out.space = true;
                }
                i = end + 1;
                run_start = i;
            }
            b'&' => {
                out.push_text(&html[run_start..i]);
                let (decoded, len) = decode_entity(&html[i..]);
                let mut buf = [0u8; 4];
                out.push_text(decoded.encode_utf8(&mut buf));
                i += len;
                run_start = i;
            }
            _ => i += 1,
        }
    }
    out.push_text(&html[run_start.min(html.len())..]);
    out.out
}

/// Appends text runs with whitespace folding; a pending line break wins over a space.
struct TextBuilder {
    out: String,
    space: bool,
    newline: bool,
}

impl TextBuilder {
    fn push_text(&mut self, text: &str) {
        // Bytes, not chars: ASCII is decided by one comparison, and only bytes of
        // multi-byte characters pay for decoding. Runs of ordinary characters are copied
        // as slices.
        let bytes = text.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let (kind, len) = classify(text, i);
            match kind {
                Kind::Space => {
                    self.space = true;
                    i += len;
                }
                Kind::Control => i += len,
                Kind::Ordinary => {
                    let start = i;
                    i += len;
                    while i < bytes.len() {
                        let (kind, len) = classify(text, i);
                        if kind != Kind::Ordinary {
                            break;
                        }
                        i += len;
                    }
                    self.push_word(&text[start..i]);
                }
            }
        }
    }

    fn push_word(&mut self, word: &str) {
        if !self.out.is_empty() {
            if self.newline {
                self.out.push('\n');
            } else if self.space && !self.out.ends_with('\n') {
                self.out.push(' ');
            }
        }
        self.newline = false;
        self.space = false;
        self.out.push_str(word);
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Space,
    Control,
    Ordinary,
}

/// What the character at byte `i` of `text` is, and its length in bytes.
#[inline]
fn classify(text: &str, i: usize) -> (Kind, usize) {
    let b = text.as_bytes()[i];
    if b < 0x80 {
        let kind = if b == b' ' || (b'\t'..=b'\r').contains(&b) {
            Kind::Space
        } else if b < 0x20 || b == 0x7f {
            Kind::Control
        } else {
            Kind::Ordinary
        };
        return (kind, 1);
    }
    let c = text[i..].chars().next().unwrap_or('\u{fffd}');
    let kind = if c.is_whitespace() || c == '\u{a0}' {
        Kind::Space
    } else if is_control(c) {
        Kind::Control
    } else {
        Kind::Ordinary
    };
    (kind, c.len_utf8())
}

/// Index of the `>` closing the tag that starts at `start` (quotes respected).
fn tag_end(bytes: &[u8], start: usize) -> usize {
    let mut quote = None;
    let mut i = start + 1;
    while i < bytes.len() {
        let b = bytes[i];
        match quote {
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None if b == b'"' || b == b'\'' => quote = Some(b),
            None if b == b'>' => return i,
            None => {}
        }
        i += 1;
    }
    bytes.len().saturating_sub(1).max(start)
}

/// Element name of a tag's inside (`/p`, `img src=...` → `p`, `img`).
fn tag_name(inside: &str) -> &str {
    let name = inside.trim_start_matches('/');
    let end = name
        .find(|c: char| !c.is_ascii_alphanumeric())
        .unwrap_or(name.len());
    &name[..end]
}

/// Decodes the entity at the start of `s`; returns the character and the bytes consumed.
/// An unknown or malformed entity is the literal `&`.
fn decode_entity(s: &str) -> (char, usize) {
    // Byte search: the 12-byte window may end inside a multi-byte character.
    let Some(semi) = s.as_bytes()[..s.len().min(12)]
        .iter()
        .position(|b| *b == b';')
    else {
        return ('&', 1);
    };
    let name = &s[1..semi];
    let c = match name {
        "amp" => Some('&'),
        "lt" => Some('<'),
        "gt" => Some('>'),
        "quot" => Some('"'),
        "apos" | "#39" => Some('\''),
        "nbsp" => Some('\u{a0}'),
        _ => name.strip_prefix('#').and_then(|num| {
            let code = match num.strip_prefix(['x', 'X']) {
                Some(hex) => u32::from_str_radix(hex, 16).ok(),
                None => num.parse::<u32>().ok(),
            };
            code.and_then(char::from_u32)
        }),
    };
    match c {
        Some(c) => (c, semi + 1),
        None => ('&', 1),
    }
}

/// Decodes the basic entities in an attribute value from ammonia's output.
pub fn decode_attribute(s: &str) -> String {
    if !s.contains('&') {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while let Some(pos) = s[i..].find('&') {
        out.push_str(&s[i..i + pos]);
        let (c, len) = decode_entity(&s[i + pos..]);
        out.push(c);
        i += pos + len;
    }
    out.push_str(&s[i..]);
    out
}

/// The `src` of the first `<img>` in sanitized HTML.
pub fn first_image(html: &str) -> Option<String> {
    let mut from = 0;
    while let Some(pos) = html[from..].find("<img") {
        let start = from + pos;
        let end = tag_end(html.as_bytes(), start);
        if let Some(src) = attribute(&html[start..end], "src") {
            let src = decode_attribute(&src);
            if src.starts_with("http://") || src.starts_with("https://") {
                return Some(src);
            }
        }
        from = end;
    }
    None
}

/// A quoted attribute's value from a tag's text (`name="..."`, case-insensitive name).
pub fn attribute(tag: &str, name: &str) -> Option<String> {
    let lower = tag.to_ascii_lowercase();
    let mut from = 0;
    while let Some(pos) = lower[from..].find(name) {
        let at = from + pos;
        let preceded_by_space = lower[..at].ends_with(|c: char| c.is_whitespace());
        let rest = tag[at + name.len()..].trim_start();
        if preceded_by_space && let Some(rest) = rest.strip_prefix('=') {
            let rest = rest.trim_start();
            let quote = rest.chars().next()?;
            if quote == '"' || quote == '\'' {
                return rest[1..].find(quote).map(|end| rest[1..1 + end].to_owned());
            }
            return Some(
                rest.split(|c: char| c.is_whitespace() || c == '>')
                    .next()
                    .unwrap_or("")
                    .to_owned(),
            );
        }
        from = at + name.len();
    }
    None
}

/// Characters that never belong in text: C0/C1 controls other than whitespace, and the
/// noncharacters U+FFFE/U+FFFF (not allowed in XML).
pub fn is_control(c: char) -> bool {
    (c.is_control() && !matches!(c, '\n' | '\t' | '\r')) || matches!(c, '\u{fffe}' | '\u{ffff}')
}

/// One line: all whitespace runs folded to one space, controls dropped, trimmed.
pub fn fold_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut space = false;
    for c in s.chars() {
        if c.is_whitespace() || c == '\u{a0}' {
            space = true;
        } else if !is_control(c) {
            if space && !out.is_empty() {
                out.push(' ');
            }
            space = false;
            out.push(c);
        }
    }
    out
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
    fn turns_html_into_lines_of_text() {
        let text = html_to_text(
            "<h2>Title</h2><p>One  &amp;\n two&nbsp;three</p><ul><li>a</li><li>b</li></ul>x&#8217;s &lt;tag&gt;",
        );
        assert_eq!(text, "Title\nOne & two three\na\nb\nx\u{2019}s <tag>");
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
    fn survives_entities_next_to_multibyte_text() {
        // The entity lookahead window used to end inside "é" and panic.
        assert_eq!(
            html_to_text(
                "a &amp\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}; b &\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}x"
            ),
            "a &amp\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}; b &\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}x"
        );
        assert_eq!(
            decode_attribute("&\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}"),
            "&\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}"
        );
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

    #[test]
    fn finds_the_first_absolute_image() {
        let html =
            r#"<p><img src="rel.png"><img alt="x" src="https://e.org/a.png?x=1&amp;y=2"></p>"#;
        assert_eq!(
            first_image(html).as_deref(),
            Some("https://e.org/a.png?x=1&y=2")
        );
        assert_eq!(first_image("<p>none</p>"), None);
    }

    #[test]
    fn wraps_plain_text_as_escaped_paragraphs() {
        assert_eq!(
            text_to_html("a < b\nc\n\nd"),
            "<p>a &lt; b<br>c</p><p>d</p>"
        );
    }
}
