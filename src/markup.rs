//! HTML and text helpers every stage shares: escaping, plain text of sanitized HTML,
//! one-line text, the first image and attributes of a tag.
//!
//! They read only regular HTML, ammonia's serialized output (quoted attributes, only
//! `&amp; &lt; &gt; &quot; &nbsp;` escapes) or herald's own, so a linear scan is enough
//! and no second HTML parse is needed. Sanitizing itself is ingest's job
//! (its `Sanitizer`); nothing here makes untrusted HTML safe.

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

/// One block of sanitized HTML as plain text, with what telling prose from page furniture
/// needs: how many of its words are link text, and whether it is a heading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub text: String,
    pub words: usize,
    pub link_words: usize,
    pub heading: bool,
    /// Inside a `<li>`.
    pub item: bool,
}

/// Elements whose text is never the post's prose: captions, navigation, asides, footers.
fn is_furniture(name: &str) -> bool {
    ["figcaption", "nav", "aside", "footer"]
        .iter()
        .any(|f| name.eq_ignore_ascii_case(f))
}

/// The most room a block of text starts with.
const BLOCK_ROOM_MAX: usize = 4096;

/// The blocks of sanitized HTML (as [`html_to_text`] splits lines), leaving out the text
/// of captions, navigation, asides and footers.
pub fn html_blocks(html: &str) -> Vec<Block> {
    struct Walk {
        blocks: Vec<Block>,
        text: TextBuilder,
        words: usize,
        link_words: usize,
        heading: bool,
        item: bool,
    }
    impl Walk {
        fn flush(&mut self) {
            if !self.text.out.is_empty() {
                // The next block starts with room for one like this (a post's
                // paragraphs are alike), not growing from nothing.
                let room = self.text.out.len().min(BLOCK_ROOM_MAX);
                self.blocks.push(Block {
                    text: std::mem::replace(&mut self.text.out, String::with_capacity(room)),
                    words: self.words,
                    link_words: self.link_words.min(self.words),
                    heading: self.heading,
                    item: self.item,
                });
            }
            self.text.space = false;
            self.words = 0;
            self.link_words = 0;
        }
        fn push(&mut self, run: &str, in_link: bool) {
            let before = self.text.out.len();
            let joined = before > 0 && !self.text.space && !run.starts_with(char::is_whitespace);
            self.text.push_text(run);
            let added = &self.text.out[before..];
            let mut n = added.split_whitespace().count();
            // A word split by a tag ("<b>fo</b>o") is one word.
            if joined && n > 0 && !added.starts_with(' ') {
                n -= 1;
            }
            self.words += n;
            if in_link {
                self.link_words += n;
            }
        }
    }
    let mut w = Walk {
        blocks: Vec::new(),
        text: TextBuilder {
            out: String::new(),
            space: false,
            newline: false,
        },
        words: 0,
        link_words: 0,
        heading: false,
        item: false,
    };
    let (mut furniture, mut links, mut headings, mut items) = (0usize, 0usize, 0usize, 0usize);
    let bytes = html.as_bytes();
    let mut i = 0;
    let mut run_start = 0;
    let mut run = String::new();
    while i <= bytes.len() {
        let at_end = i == bytes.len();
        if at_end || bytes[i] == b'<' || bytes[i] == b'&' {
            run.push_str(&html[run_start..i]);
        }
        if at_end {
            break;
        }
        match bytes[i] {
            b'<' => {
                if furniture == 0 {
                    w.push(&run, links > 0);
                }
                run.clear();
                let end = tag_end(bytes, i);
                let inside = &html[i + 1..end];
                let closing = inside.starts_with('/');
                let name = tag_name(inside);
                if is_furniture(name) {
                    // Furniture is block-level: the text on either side is not one run.
                    w.flush();
                    furniture = if closing {
                        furniture.saturating_sub(1)
                    } else {
                        furniture + 1
                    };
                } else if name.eq_ignore_ascii_case("a") {
                    links = if closing {
                        links.saturating_sub(1)
                    } else {
                        links + 1
                    };
                } else if is_block(name) {
                    w.flush();
                    let level = |n: usize| if closing { n.saturating_sub(1) } else { n + 1 };
                    if name.len() == 2
                        && name.as_bytes()[0].eq_ignore_ascii_case(&b'h')
                        && name.as_bytes()[1].is_ascii_digit()
                    {
                        headings = level(headings);
                    } else if name.eq_ignore_ascii_case("li") {
                        items = level(items);
                    }
                    w.heading = headings > 0;
                    w.item = items > 0;
                } else if name.eq_ignore_ascii_case("img") {
                    run.push(' ');
                }
                i = end + 1;
                run_start = i;
            }
            b'&' => {
                let (decoded, len) = decode_entity(&html[i..]);
                run.push(decoded);
                i += len;
                run_start = i;
            }
            _ => i += 1,
        }
    }
    if furniture == 0 {
        w.push(&run, links > 0);
    }
    w.flush();
    w.blocks
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
    // An unclosed tag runs to the end (callers slice `start + 1..end`).
    bytes.len()
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
    fn splits_blocks_and_counts_link_words_without_furniture() {
        let html = "<figure><img src=\"x.jpg\"><figcaption>Photo: Ana Ruiz</figcaption></figure>\
                    <p>The <b>ferry</b> runs again &amp; on time.</p><p><a href=\"/a\">Related: new timetable</a> | <a href=\"/b\">Fares</a></p>\
                    <h3>Share this:</h3><ul><li><a href=\"/t\">Twitter</a></li></ul><nav>Home About</nav>";
        let blocks = html_blocks(html);
        let texts: Vec<&str> = blocks.iter().map(|b| b.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "The ferry runs again & on time.",
                "Related: new timetable | Fares",
                "Share this:",
                "Twitter"
            ]
        );
        assert_eq!((blocks[0].words, blocks[0].link_words), (7, 0));
        assert_eq!((blocks[1].words, blocks[1].link_words), (5, 4));
        assert!(blocks[2].heading && !blocks[2].item);
        assert!(blocks[3].item && blocks[3].link_words == 1);
        assert_eq!(html_blocks("<p>fo<b>o</b> bar</p>")[0].words, 2);
        // Furniture between two runs of text ends the first.
        let texts: Vec<String> = html_blocks("<div>Intro text<aside>Ad</aside>More text</div>")
            .into_iter()
            .map(|b| b.text)
            .collect();
        assert_eq!(texts, ["Intro text", "More text"]);
    }

    #[test]
    fn html_ending_inside_a_tag_reads_without_panicking() {
        for html in ["abc<", "<p\u{e9}", "x <a href=\"y", "<img src=\"z\u{e9}"] {
            let _ = html_blocks(html);
            let _ = html_to_text(html);
            let _ = first_image(html);
        }
        assert_eq!(html_to_text("abc<p"), "abc");
    }

    #[test]
    fn turns_html_into_lines_of_text() {
        let text = html_to_text(
            "<h2>Title</h2><p>One  &amp;\n two&nbsp;three</p><ul><li>a</li><li>b</li></ul>x&#8217;s &lt;tag&gt;",
        );
        assert_eq!(text, "Title\nOne & two three\na\nb\nx\u{2019}s <tag>");
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
