//! Reading what a person would from a feed the strict parser cannot read: a tolerant
//! scan of the markup that keeps every complete `<item>` or `<entry>` with its title,
//! link, id, date, author, categories and content, whatever the format variant (RSS
//! 0.90, 1.0 with items outside the channel, 1.1, 2.0 with a default namespace, Atom
//! 0.3 and 1.0) and whatever the damage (unclosed or mis-nested tags, HTML's named
//! entities, bare `&`, an unterminated CDATA section, junk before the declaration, a
//! document cut off mid-item).
//!
//! What it found is written out again as a clean RSS 2.0 document, which the strict
//! parser then reads, so recovered entries are mapped to posts exactly as any other
//! (ids, dates, links). [`well_formed`] says whether the document was XML at all, which
//! decides whether its posts are marked as recovered.

use crate::markup::escape_into;

/// What the scan found.
#[derive(Debug, Default, Clone)]
pub struct Recovered {
    pub title: Option<String>,
    pub link: Option<String>,
    /// The feed's author, for entries that name none.
    pub author: Option<String>,
    pub items: Vec<Item>,
    /// `<item>`/`<entry>` elements started (complete or not).
    pub entries_seen: usize,
    /// Whether the root is a feed's (rss, RDF, feed, Channel).
    pub feed_root: bool,
    /// The root element's name, as written.
    pub root: Option<String>,
}

/// One complete entry.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Item {
    pub id: Option<String>,
    pub title: Option<String>,
    pub link: Option<String>,
    pub date: Option<String>,
    pub updated: Option<String>,
    pub author: Option<String>,
    pub categories: Vec<String>,
    /// HTML (or text) of the summary and of the full content.
    pub summary: Option<String>,
    pub content: Option<String>,
}

/// One token of the scan.
#[derive(Debug)]
enum Token<'a> {
    Start {
        name: &'a str,
        attrs: &'a str,
        empty: bool,
        end: usize,
    },
    End {
        name: &'a str,
        start: usize,
    },
    Text,
}

/// A tolerant tokenizer: never fails; what is not a tag is text.
struct Scanner<'a> {
    s: &'a str,
    pos: usize,
    /// The innermost open element's name as written (a CDATA section that is never
    /// terminated ends where this element's end tag is).
    enclosing: &'a str,
}

impl<'a> Scanner<'a> {
    fn next(&mut self) -> Option<(usize, Token<'a>)> {
        let s = self.s;
        let bytes = s.as_bytes();
        if self.pos >= s.len() {
            return None;
        }
        let at = self.pos;
        if bytes[at] != b'<' {
            self.pos = s[at..].find('<').map_or(s.len(), |i| at + i);
            return Some((at, Token::Text));
        }
        let rest = &s[at..];
        let skip_to =
            |pat: &str, from: usize| rest[from..].find(pat).map(|i| at + from + i + pat.len());
        if rest.starts_with("<!--") {
            self.pos = skip_to("-->", 4).unwrap_or(s.len());
            return Some((at, Token::Text));
        }
        if let Some(body) = rest.strip_prefix("<![CDATA[") {
            // Unterminated (its element's end tag comes before any "]]>"): it ends where
            // the enclosing element closes.
            let terminator = body.find("]]>");
            let enclosing_end = (!self.enclosing.is_empty())
                .then(|| {
                    body.match_indices("</").map(|(i, _)| i).find(|&i| {
                        body[i + 2..].starts_with(self.enclosing)
                            && body[i + 2 + self.enclosing.len()..]
                                .starts_with(|c: char| c == '>' || c.is_whitespace())
                    })
                })
                .flatten();
            self.pos = at
                + 9
                + match (terminator, enclosing_end) {
                    (Some(t), Some(e)) if e < t => e,
                    (Some(t), _) => t + 3,
                    (None, Some(e)) => e,
                    (None, None) => body.find("</").unwrap_or(body.len()),
                };
            return Some((at, Token::Text));
        }
        if rest.starts_with("<?") || rest.starts_with("<!") {
            self.pos = skip_to(">", 2).unwrap_or(s.len());
            return Some((at, Token::Text));
        }
        let (closing, name_from) = if rest.starts_with("</") {
            (true, 2)
        } else {
            (false, 1)
        };
        let name_len = rest[name_from..]
            .find(|c: char| !(c.is_alphanumeric() || matches!(c, ':' | '_' | '-' | '.')))
            .unwrap_or(rest.len() - name_from);
        let first = rest[name_from..].chars().next();
        if name_len == 0 || !first.is_some_and(|c| c.is_alphabetic() || c == '_') {
            // A "<" that starts no tag ("a < b"): text.
            self.pos = at + 1 + rest[1..].find('<').unwrap_or(rest.len() - 1);
            return Some((at, Token::Text));
        }
        let name = &rest[name_from..name_from + name_len];
        let after_name = name_from + name_len;
        // The tag ends at the first ">" outside quotes; a new "<" first means it was cut.
        let mut quote = None;
        let mut end = None;
        for (i, c) in rest[after_name..].char_indices() {
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), _) => {}
                (None, '"' | '\'') => quote = Some(c),
                (None, '>') => {
                    end = Some(after_name + i);
                    break;
                }
                (None, '<') => {
                    end = Some(after_name + i - 1);
                    break;
                }
                _ => {}
            }
        }
        let end = end.unwrap_or(rest.len() - 1);
        let inside = &rest[after_name..=end.max(after_name.saturating_sub(1))];
        let inside = inside.strip_suffix('>').unwrap_or(inside);
        self.pos = at + end + 1;
        if closing {
            return Some((at, Token::End { name, start: at }));
        }
        let empty = inside.trim_end().ends_with('/');
        Some((
            at,
            Token::Start {
                name,
                attrs: inside.trim_end().trim_end_matches('/'),
                empty,
                end: self.pos,
            },
        ))
    }
}

/// The local part of a name (`dc:creator` → `creator`), lower-cased.
fn local(name: &str) -> String {
    name.rsplit(':').next().unwrap_or(name).to_ascii_lowercase()
}

/// An attribute's value from a tag's inside, entities decoded.
fn attr(attrs: &str, wanted: &str) -> Option<String> {
    let mut rest = attrs;
    while let Some(eq) = rest.find('=') {
        let key = rest[..eq]
            .trim()
            .rsplit(char::is_whitespace)
            .next()
            .unwrap_or("");
        let after = rest[eq + 1..].trim_start();
        let (value, next) = match after.chars().next() {
            Some(q @ ('"' | '\'')) => match after[1..].find(q) {
                Some(close) => (&after[1..1 + close], &after[close + 2..]),
                None => (&after[1..], ""),
            },
            _ => {
                let end = after.find(char::is_whitespace).unwrap_or(after.len());
                (&after[..end], &after[end..])
            }
        };
        if local(key) == wanted {
            return Some(decode_entities(value));
        }
        rest = next;
    }
    None
}

/// Text with XML and HTML character references decoded; an unknown or bare `&` stays.
pub fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let tail = &rest[amp..];
        let semi = tail.as_bytes()[..tail.len().min(40)]
            .iter()
            .position(|b| *b == b';');
        let decoded = semi.and_then(|semi| {
            let name = &tail[1..semi];
            let text: Option<String> = if let Some(num) = name.strip_prefix('#') {
                let code = match num.strip_prefix(['x', 'X']) {
                    Some(hex) => u32::from_str_radix(hex, 16).ok(),
                    None => num.parse().ok(),
                };
                code.and_then(char::from_u32).map(String::from)
            } else {
                html_entity(name)
            };
            text.map(|t| (t, semi + 1))
        });
        match decoded {
            Some((text, len)) => {
                out.push_str(&text);
                rest = &tail[len..];
            }
            None => {
                out.push('&');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The text inside an element's raw source: CDATA unwrapped, entities decoded, markup
/// (XHTML content) kept as it is.
fn inner_text(raw: &str) -> String {
    let trimmed = raw.trim();
    let mut out = String::with_capacity(trimmed.len());
    let mut rest = trimmed;
    while !rest.is_empty() {
        if let Some(cdata) = rest.find("<![CDATA[") {
            out.push_str(&decode_text_part(&rest[..cdata]));
            let body = &rest[cdata + 9..];
            match body.find("]]>") {
                Some(end) => {
                    out.push_str(&body[..end]);
                    rest = &body[end + 3..];
                }
                None => {
                    out.push_str(body);
                    rest = "";
                }
            }
        } else {
            out.push_str(&decode_text_part(rest));
            rest = "";
        }
    }
    out.trim().to_owned()
}

/// Outside CDATA: markup stays as it is (it is XHTML content), text is decoded.
fn decode_text_part(s: &str) -> String {
    let has_markup = s
        .as_bytes()
        .windows(2)
        .any(|w| w[0] == b'<' && (w[1].is_ascii_alphabetic() || w[1] == b'/'));
    if has_markup {
        s.to_owned()
    } else {
        decode_entities(s)
    }
}

/// Text of an element, tags dropped (for titles, authors, dates).
fn plain(raw: &str) -> String {
    let text = inner_text(raw);
    let mut out = String::with_capacity(text.len());
    let mut in_tag = false;
    for c in text.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    // ASCII whitespace only: a no-break space (&nbsp;) is the publisher's.
    out.split(|c: char| c.is_ascii_whitespace())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// An element being read: its local name, where its content starts.
struct Open<'t> {
    /// The name as written (`dc:creator`).
    raw: &'t str,
    name: String,
    content_start: usize,
    attrs: String,
}

/// Fields that hold text, never child elements: a feed field's start tag while one of
/// these is open closes it (`<title>Oops<link>…` is a title and a link).
fn is_leaf(name: &str, attrs: &str) -> bool {
    matches!(
        name,
        "title"
            | "link"
            | "guid"
            | "id"
            | "pubdate"
            | "published"
            | "updated"
            | "issued"
            | "modified"
            | "created"
            | "date"
            | "creator"
            | "subject"
    ) && !attrs.contains("xhtml")
        && !attrs.contains("mode=\"xml\"")
}

fn is_field(name: &str) -> bool {
    is_leaf(name, "")
        || matches!(
            name,
            "item"
                | "entry"
                | "description"
                | "summary"
                | "content"
                | "encoded"
                | "author"
                | "category"
        )
}

fn is_entry(name: &str) -> bool {
    name == "item" || name == "entry"
}

/// The scan's state: the open elements and the entry being read.
struct Reading<'t> {
    text: &'t str,
    out: Recovered,
    stack: Vec<Open<'t>>,
    /// The entry being read and its place in `stack`.
    item: Option<(usize, Item)>,
}

impl Reading<'_> {
    /// Closes the elements from `stack[at]` up, their content ending at byte `end`:
    /// the innermost first, as if each had its end tag there.
    fn close_from(&mut self, at: usize, end: usize) {
        while self.stack.len() > at {
            let index = self.stack.len() - 1;
            let Some(open) = self.stack.pop() else { break };
            let raw = &self.text[open.content_start.min(end)..end];
            if is_entry(&open.name) {
                if let Some((_, it)) = self.item.take() {
                    keep(&mut self.out, it);
                }
                continue;
            }
            match self.item.as_mut() {
                // Fields of an entry: its own children only (not a nested <source>).
                Some((depth, it)) if index == *depth + 1 => field(it, &open.name, &open.attrs, raw),
                Some(_) => {}
                None => match open.name.as_str() {
                    "title" if self.out.title.is_none() => self.out.title = Some(plain(raw)),
                    "link" if self.out.link.is_none() && !raw.trim().is_empty() => {
                        self.out.link = Some(plain(raw))
                    }
                    "author" | "creator" | "managingeditor" if self.out.author.is_none() => {
                        self.out.author = person(raw)
                    }
                    _ => {}
                },
            }
        }
    }
}

/// Scans `text` for feed entries.
pub fn scan(text: &str) -> Recovered {
    // Junk before the document (a byte order mark, a PHP warning): skip to the first tag.
    let start = text.find('<').unwrap_or(text.len());
    let mut scanner = Scanner {
        s: text,
        pos: start,
        enclosing: "",
    };
    let mut r = Reading {
        text,
        out: Recovered::default(),
        stack: Vec::new(),
        item: None,
    };
    loop {
        scanner.enclosing = r.stack.last().map_or("", |o| o.raw);
        let Some((at, token)) = scanner.next() else {
            break;
        };
        match token {
            Token::Text => {}
            Token::Start {
                name,
                attrs,
                empty,
                end,
            } => {
                let lname = local(name);
                if r.out.root.is_none() {
                    r.out.root = Some(name.to_owned());
                }
                if matches!(lname.as_str(), "rss" | "rdf" | "feed" | "channel") {
                    r.out.feed_root = true;
                }
                // A field's tag while a text-only field is open: that one ends here.
                if is_field(&lname)
                    && let Some(top) = r.stack.last()
                    && is_leaf(&top.name, &top.attrs)
                {
                    let top = r.stack.len() - 1;
                    r.close_from(top, at);
                }
                if is_entry(&lname) {
                    // An entry opened inside another that never closed: that one ends here.
                    if let Some(open) = r.stack.iter().position(|o| is_entry(&o.name)) {
                        r.close_from(open, at);
                    }
                    r.out.entries_seen += 1;
                    r.item = Some((r.stack.len(), Item::default()));
                }
                if lname == "link"
                    && let Some(href) = attr(attrs, "href")
                {
                    let rel = attr(attrs, "rel").unwrap_or_else(|| "alternate".into());
                    if rel == "alternate" {
                        match r.item.as_mut() {
                            Some((_, it)) if it.link.is_none() => it.link = Some(href),
                            None if r.out.link.is_none() => r.out.link = Some(href),
                            _ => {}
                        }
                    }
                }
                if lname == "category"
                    && let Some((_, it)) = r.item.as_mut()
                    && let Some(term) = attr(attrs, "term")
                {
                    it.categories.push(term);
                }
                if lname == "guid" || lname == "item" {
                    // RSS 1.0/1.1: the item's rdf:about is its id.
                    if let (Some((_, it)), Some(about)) = (r.item.as_mut(), attr(attrs, "about")) {
                        it.id.get_or_insert(about);
                    }
                }
                // <item rdf:about="…"/>: an entry with only its id, complete.
                if empty
                    && is_entry(&lname)
                    && let Some((_, it)) = r.item.take()
                {
                    keep(&mut r.out, it);
                }
                if !empty {
                    r.stack.push(Open {
                        raw: name,
                        name: lname,
                        content_start: end,
                        attrs: attrs.to_owned(),
                    });
                }
            }
            Token::End { name, start } => {
                let lname = local(name);
                // Close up to the matching element; an end tag with none open is ignored.
                if let Some(at) = r.stack.iter().rposition(|o| o.name == lname) {
                    r.close_from(at, start);
                }
            }
        }
    }
    // An entry still open at the end of the document was cut off: not complete.
    r.out
}

/// Keeps a complete entry, even one with nothing in it: the strict parser keeps those
/// too (as untitled posts), and a reader's view of the feed should not depend on which
/// parser read it.
fn keep(out: &mut Recovered, item: Item) {
    out.items.push(item);
}

/// A person's name: Atom's `<author><name>…</name></author>`, or the element's text.
fn person(raw: &str) -> Option<String> {
    let name_raw = raw
        .find("name>")
        .and_then(|s| raw[s + 5..].find("</").map(|e| &raw[s + 5..s + 5 + e]));
    Some(plain(name_raw.unwrap_or(raw))).filter(|a| !a.is_empty())
}

/// One child element of an entry.
fn field(it: &mut Item, name: &str, attrs: &str, raw: &str) {
    let text = || Some(plain(raw)).filter(|t| !t.is_empty());
    match name {
        "title" if it.title.is_none() => it.title = text(),
        "link" if it.link.is_none() => it.link = text(),
        "guid" | "id" if it.id.is_none() => it.id = text(),
        "pubdate" | "published" | "issued" | "created" | "date" if it.date.is_none() => {
            it.date = text()
        }
        "updated" | "modified" if it.updated.is_none() => it.updated = text(),
        "author" | "creator" if it.author.is_none() => it.author = person(raw),
        "category" | "subject" => {
            if let Some(t) = text() {
                it.categories.push(t);
            }
        }
        "description" | "summary" if it.summary.is_none() => {
            it.summary = Some(content(raw, attrs)).filter(|c| !c.is_empty())
        }
        "content" | "encoded" | "body" | "fullitem" if it.content.is_none() => {
            it.content = Some(content(raw, attrs)).filter(|c| !c.is_empty())
        }
        _ => {}
    }
}

/// A content element's HTML: plain text is escaped, XHTML and (escaped) HTML kept.
fn content(raw: &str, attrs: &str) -> String {
    let kind = attr(attrs, "type").unwrap_or_default().to_ascii_lowercase();
    let inner = inner_text(raw);
    if kind == "text" || kind == "text/plain" {
        let mut escaped = String::with_capacity(inner.len());
        escape_into(&mut escaped, &inner);
        return escaped;
    }
    // Atom's <div xmlns="http://www.w3.org/1999/xhtml"> wrapper goes; its content stays.
    if kind == "xhtml" || kind.contains("xhtml+xml") {
        let trimmed = inner.trim();
        if trimmed.starts_with("<div")
            && let Some(open_end) = trimmed.find('>')
            && let Some(body) = trimmed[open_end + 1..].strip_suffix("</div>")
        {
            return body.trim().to_owned();
        }
    }
    inner
}

/// Cheap repairs that make most broken feeds well-formed without losing anything, so
/// the strict parser can read them whole: text before the root (a PHP warning, a blank
/// line before the declaration) goes; outside CDATA and comments, HTML's named entities
/// become character references, a reference to a character XML forbids becomes U+FFFD,
/// and a bare `&` becomes `&amp;`; control characters XML forbids are dropped. `None`
/// when none of that changed anything.
pub fn repair(text: &str) -> Option<String> {
    let body = &text[junk_before_root(text)..];
    let mut out = String::with_capacity(body.len() + 64);
    let mut rest = body;
    while !rest.is_empty() {
        // Copy verbatim up to the next '&', CDATA section or comment.
        let next = rest.find(['&', '<']).unwrap_or(rest.len());
        push_xml_chars(&mut out, &rest[..next]);
        rest = &rest[next..];
        if rest.starts_with("<![CDATA[") || rest.starts_with("<!--") {
            let close = if rest.starts_with("<!--") {
                "-->"
            } else {
                "]]>"
            };
            let end = rest[4..]
                .find(close)
                .map_or(rest.len(), |e| 4 + e + close.len());
            push_xml_chars(&mut out, &rest[..end]);
            rest = &rest[end..];
        } else if rest.starts_with('<') {
            out.push('<');
            rest = &rest[1..];
        } else if rest.starts_with('&') {
            let (replacement, len) = repair_reference(rest);
            out.push_str(&replacement);
            rest = &rest[len..];
        }
    }
    (out != text).then_some(out)
}

/// Characters XML 1.0 allows (tab, newline, carriage return and from U+0020 on).
fn push_xml_chars(out: &mut String, s: &str) {
    if s.chars()
        .all(|c| !c.is_control() || matches!(c, '\t' | '\n' | '\r') || c >= '\u{7f}')
    {
        out.push_str(s);
    } else {
        out.extend(
            s.chars()
                .filter(|c| !c.is_control() || matches!(c, '\t' | '\n' | '\r') || *c >= '\u{7f}'),
        );
    }
}

/// The repaired form of the reference at the start of `s` ("&…"), and its length.
fn repair_reference(s: &str) -> (String, usize) {
    let semi = s.as_bytes()[..s.len().min(40)]
        .iter()
        .position(|b| *b == b';');
    let Some(semi) = semi else {
        return ("&amp;".into(), 1);
    };
    let name = &s[1..semi];
    if let Some(num) = name.strip_prefix('#') {
        let code = match num.strip_prefix('x') {
            Some(hex) => u32::from_str_radix(hex, 16).ok(),
            None => num.parse().ok(),
        };
        return match code.and_then(char::from_u32) {
            Some(c) if !c.is_control() || matches!(c, '\t' | '\n' | '\r') || c >= '\u{7f}' => {
                (s[..=semi].to_owned(), semi + 1)
            }
            Some(_) | None if num.chars().all(|c| c.is_ascii_alphanumeric()) && !num.is_empty() => {
                ("&#xFFFD;".into(), semi + 1)
            }
            _ => ("&amp;".into(), 1),
        };
    }
    if matches!(name, "lt" | "gt" | "amp" | "quot" | "apos") {
        return (s[..=semi].to_owned(), semi + 1);
    }
    match html_entity(name) {
        Some(text) => {
            let refs: String = text.chars().map(|c| format!("&#{};", c as u32)).collect();
            (refs, semi + 1)
        }
        None => ("&amp;".into(), 1),
    }
}

/// Where the document proper starts: at its XML declaration, or else at the root
/// element when what comes before it is more than whitespace, comments and doctypes.
fn junk_before_root(text: &str) -> usize {
    if let Some(decl) = text.find("<?xml") {
        return decl;
    }
    let lower_head: String = text
        .chars()
        .take(4096)
        .collect::<String>()
        .to_ascii_lowercase();
    let root = ["<rss", "<feed", "<rdf:rdf", "<rdf"]
        .iter()
        .filter_map(|tag| lower_head.find(tag))
        .min();
    let Some(root) = root.filter(|r| text.is_char_boundary(*r)) else {
        return 0;
    };
    let mut prefix = &text[..root];
    loop {
        prefix = prefix.trim_start();
        if prefix.is_empty() {
            return 0;
        }
        let close = if prefix.starts_with("<!--") {
            "-->"
        } else if prefix.starts_with("<?") || prefix.starts_with("<!") {
            ">"
        } else {
            return root;
        };
        match prefix.find(close) {
            Some(end) => prefix = &prefix[end + close.len()..],
            None => return root,
        }
    }
}

/// One of HTML's named character references (without `&` and `;`).
fn html_entity(name: &str) -> Option<String> {
    let key = format!("{name};");
    let (first, second) = web_atoms::NAMED_ENTITIES.get(key.as_str())?;
    let mut text = String::from(char::from_u32(*first)?);
    if *second != 0 {
        text.push(char::from_u32(*second)?);
    }
    Some(text)
}

/// Whether `text` is well-formed XML, or the first reason it is not: end tags that do
/// not match, undefined entities, a declaration that is not at the start, more than one
/// root element, text outside the root, and a document that ends inside an element.
pub fn well_formed(text: &str) -> Result<(), String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(text);
    reader.config_mut().check_end_names = true;
    let mut open: Vec<String> = Vec::new();
    let mut roots = 0;
    let mut first = true;
    loop {
        let event = reader.read_event();
        let at = reader.buffer_position();
        let was_first = std::mem::replace(&mut first, false);
        match event {
            Ok(Event::Eof) => {
                return match open.last() {
                    Some(name) => Err(format!("the document ends inside <{name}>")),
                    None if roots == 0 => Err("there is no root element".into()),
                    None => Ok(()),
                };
            }
            Ok(Event::Decl(_)) if !was_first => {
                return Err(format!(
                    "the XML declaration is not at the start (byte {at})"
                ));
            }
            Ok(Event::Start(e)) => {
                if open.is_empty() {
                    roots += 1;
                }
                open.push(e.name().as_ref().to_owned());
            }
            Ok(Event::Empty(_)) if open.is_empty() => roots += 1,
            Ok(Event::End(_)) => {
                open.pop();
            }
            Ok(Event::Text(t)) if open.is_empty() && !t.trim().is_empty() => {
                return Err(format!("text outside the root element at byte {at}"));
            }
            Ok(Event::GeneralRef(r)) => {
                let name = r[..].to_owned();
                let known = name.starts_with('#')
                    || matches!(name.as_str(), "lt" | "gt" | "amp" | "apos" | "quot");
                if !known {
                    return Err(format!("undefined entity &{name}; at byte {at}"));
                }
                if open.is_empty() {
                    return Err(format!("text outside the root element at byte {at}"));
                }
            }
            Ok(_) => {}
            Err(e) => return Err(format!("{e} at byte {}", reader.error_position())),
        }
        if roots > 1 {
            return Err(format!("a second root element at byte {at}"));
        }
    }
}

/// A CDATA section whose `]]>` was lost ends at the next `]]>`, in a later entry, and the
/// document can still be well-formed: the entries in between are swallowed. Such a
/// section holds its own element's end tag and then an entry's end tag; the reason the
/// document is malformed when one does, `None` otherwise.
pub fn swallowing_cdata(text: &str) -> Option<String> {
    let mut from = 0;
    while let Some(i) = text[from..].find("<![CDATA[") {
        let at = from + i;
        let body_start = at + "<![CDATA[".len();
        let end = text[body_start..]
            .find("]]>")
            .map_or(text.len(), |e| body_start + e);
        from = end;
        let body = &text[body_start..end];
        let Some(open) = text[..at].rfind('<') else {
            continue;
        };
        let tag = &text[open + 1..at];
        if tag.starts_with(['/', '!', '?']) || tag.ends_with("/>") {
            continue;
        }
        let name = tag
            .split(|c: char| c.is_whitespace() || c == '>')
            .next()
            .unwrap_or("");
        if name.is_empty() {
            continue;
        }
        let Some(close) = body.find(&format!("</{name}>")) else {
            continue;
        };
        let after = &body[close..];
        if ["</item>", "</entry>", ":item>", ":entry>"]
            .iter()
            .any(|t| after.contains(t))
        {
            return Some(format!(
                "the CDATA section at byte {at} runs past the end of its <{name}> into a later entry (its \"]]>\" is missing)"
            ));
        }
    }
    None
}

/// What was found, as a clean RSS 2.0 document for the strict parser.
pub fn to_rss(found: &Recovered) -> String {
    let mut out = String::with_capacity(4096 + found.items.len() * 1024);
    out.push_str(
        "<?xml version=\"1.0\"?><rss version=\"2.0\" xmlns:content=\"http://purl.org/rss/1.0/modules/content/\" xmlns:dc=\"http://purl.org/dc/elements/1.1/\"><channel>",
    );
    let element = |out: &mut String, name: &str, value: Option<&str>| {
        if let Some(value) = value.filter(|v| !v.trim().is_empty()) {
            out.push('<');
            out.push_str(name);
            out.push('>');
            escape_into(out, value);
            out.push_str("</");
            out.push_str(name.split(' ').next().unwrap_or(name));
            out.push('>');
        }
    };
    element(&mut out, "title", found.title.as_deref());
    element(&mut out, "link", found.link.as_deref());
    for it in &found.items {
        out.push_str("<item>");
        element(&mut out, "title", it.title.as_deref());
        element(&mut out, "link", it.link.as_deref());
        element(&mut out, "guid isPermaLink=\"false\"", it.id.as_deref());
        element(
            &mut out,
            "pubDate",
            it.date.as_deref().or(it.updated.as_deref()),
        );
        element(
            &mut out,
            "dc:creator",
            it.author.as_deref().or(found.author.as_deref()),
        );
        for c in &it.categories {
            element(&mut out, "category", Some(c));
        }
        element(&mut out, "description", it.summary.as_deref());
        element(&mut out, "content:encoded", it.content.as_deref());
        out.push_str("</item>");
    }
    out.push_str("</channel></rss>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_complete_items_of_a_broken_document() {
        let text = "junk<?xml version=\"1.0\"?>\n<rss><channel><title>T &amp; co</title>\
            <item><title>One &eacute; &nbsp;x</title><link>https://e.org/1?a=1&b=2</link><description><p>Bare & here <b>bold</p></description></item>\
            <item><title>Two</title><guid>g2</guid><description><![CDATA[<p>cdata</p>]]></description><pubDate>Mon, 02 Nov 2026 10:00:00 +0000</pubDate></item>\
            <item><title>Cut off";
        let found = scan(text);
        assert_eq!(found.title.as_deref(), Some("T & co"));
        assert_eq!(found.entries_seen, 3);
        assert_eq!(found.items.len(), 2, "{:?}", found.items);
        assert_eq!(found.items[0].title.as_deref(), Some("One \u{e9} \u{a0}x"));
        assert_eq!(
            found.items[0].link.as_deref(),
            Some("https://e.org/1?a=1&b=2")
        );
        assert_eq!(found.items[1].id.as_deref(), Some("g2"));
        assert_eq!(found.items[1].summary.as_deref(), Some("<p>cdata</p>"));
        assert!(well_formed(text).is_err());
    }

    #[test]
    fn reads_atom_links_authors_and_xhtml() {
        let found = scan(
            r#"<feed xmlns="http://purl.org/atom/ns#"><entry><title type="text">A</title>
            <link rel="alternate" href="https://e.org/a"/><link rel="edit" href="https://e.org/edit"/>
            <id>tag:e.org,2026:a</id><issued>2026-11-02T10:00:00Z</issued>
            <author><name>Ana</name></author><category term="bread"/>
            <content type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml"><p>Hi <em>there</em></p></div></content></entry></feed>"#,
        );
        let it = &found.items[0];
        assert_eq!(it.link.as_deref(), Some("https://e.org/a"));
        assert_eq!(it.author.as_deref(), Some("Ana"));
        assert_eq!(it.categories, vec!["bread"]);
        assert_eq!(it.date.as_deref(), Some("2026-11-02T10:00:00Z"));
        assert!(
            it.content
                .as_deref()
                .unwrap()
                .contains("<p>Hi <em>there</em></p>")
        );
    }

    #[test]
    fn finds_a_cdata_section_that_swallows_entries() {
        let swallowed = "<rss><channel><item><title>A</title><description><![CDATA[<p>open</description></item>\
                         <item><title>B</title><description><![CDATA[<p>b</p>]]></description></item></channel></rss>";
        assert!(well_formed(swallowed).is_ok());
        let why = swallowing_cdata(swallowed).expect("found");
        assert!(why.contains("<description>"), "{why}");
        // Markup about feeds inside a post is not a swallowed entry.
        let quoted = "<rss><channel><item><title>A</title><description><![CDATA[<pre><item><title>x</title></item></pre>]]></description></item></channel></rss>";
        assert_eq!(swallowing_cdata(quoted), None);
        assert_eq!(
            swallowing_cdata(
                "<rss><channel><item><description><![CDATA[plain]]></description></item></channel></rss>"
            ),
            None
        );
    }

    #[test]
    fn an_unterminated_cdata_ends_at_its_element() {
        let found = scan(
            "<rss><channel><item><title>A</title><description><![CDATA[<p>open</description></item><item><title>B</title></item></channel></rss>",
        );
        let titles: Vec<_> = found
            .items
            .iter()
            .filter_map(|i| i.title.as_deref())
            .collect();
        assert_eq!(titles, vec!["A", "B"]);
    }

    #[test]
    fn the_rss_it_writes_is_well_formed() {
        let found = scan(
            "<rss><item><title>a < b & c</title><description>x]]>y</description></item></rss>",
        );
        let rss = to_rss(&found);
        assert_eq!(well_formed(&rss), Ok(()), "{rss}");
    }
}
