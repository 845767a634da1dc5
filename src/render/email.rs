//! The digest email: subject, HTML (CSS inlined) and text, personalised per subscriber.
//!
//! An issue is rendered once, with each personal field (name, greeting, address,
//! unsubscribe link) standing in as a marker; CSS is inlined once; each subscriber's
//! message is then the rendered issue with their fields put in place. That is how a
//! 100,000-subscriber send stays fast: Handlebars and css-inline run per issue, not per
//! subscriber. Two variants are rendered, for subscribers with and without a name, so a
//! template may still write `{{#if subscriber.name}}`.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde_json::{Value, json};

use super::{Error, Templates, related_links, text};
use crate::config::{DigestConfig, SiteConfig};
use crate::domain::{Post, PostId, RelatedPost, shorten};
use crate::markup::escape_into;

/// Columns the text part is wrapped at.
pub const TEXT_WIDTH: usize = 78;

/// What is needed to render one issue.
#[derive(Debug)]
pub struct IssueInput<'a> {
    pub site: &'a SiteConfig,
    pub digest: &'a DigestConfig,
    /// When the issue is for (its date is shown in the digest's time zone).
    pub date: DateTime<Utc>,
    pub posts: &'a [Post],
    pub related: &'a HashMap<PostId, Vec<RelatedPost>>,
    /// Display names of sources, by source name.
    pub source_titles: &'a HashMap<String, String>,
    /// The issue's "view online" page.
    pub view_online_url: String,
    /// Posts of the issue left out of this rendering to keep the message within the
    /// relay's size (they are on the "view online" page).
    pub omitted: usize,
}

/// Longest subject, in characters; longer ones end in "…".
pub const SUBJECT_MAX_CHARS: usize = 150;
/// Longest post title and summary shown, in characters (stored posts older than the
/// ingest caps may be longer).
const TITLE_MAX_CHARS: usize = 300;
const SUMMARY_MAX_CHARS: usize = 1_500;
/// Bytes allowed for one personal field (name, address, unsubscribe URL, greeting) when
/// estimating a message's size.
const FIELD_BYTES: usize = 1_200;
/// Bytes allowed for the headers when estimating a message's size.
const HEADER_BYTES: usize = 8 * 1024;

/// A subject of at most [`SUBJECT_MAX_CHARS`] characters on one line.
pub fn cap_subject(subject: &str) -> String {
    let line: String = subject
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    crate::domain::shorten(&line, SUBJECT_MAX_CHARS)
}

/// A subscriber's fields, put into the rendered issue.
#[derive(Debug, Clone)]
pub struct PersonalFields {
    pub name: Option<String>,
    pub email: String,
    pub unsubscribe_url: String,
}

impl PersonalFields {
    fn greeting(&self) -> String {
        match self
            .name
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty())
        {
            Some(name) => format!("Hi {},", name.split_whitespace().next().unwrap_or(name)),
            None => "Hi there,".to_owned(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Name,
    Email,
    Greeting,
    UnsubscribeUrl,
}

const MARK_OPEN: char = '\u{E000}';
const MARK_CLOSE: char = '\u{E001}';

impl Field {
    const ALL: [Field; 4] = [
        Field::Name,
        Field::Email,
        Field::Greeting,
        Field::UnsubscribeUrl,
    ];

    fn letter(self) -> char {
        match self {
            Field::Name => 'N',
            Field::Email => 'E',
            Field::Greeting => 'G',
            Field::UnsubscribeUrl => 'U',
        }
    }

    fn marker(self) -> String {
        format!("{MARK_OPEN}{}{MARK_CLOSE}", self.letter())
    }

    fn value(self, fields: &PersonalFields) -> String {
        match self {
            Field::Name => fields.name.clone().unwrap_or_default(),
            Field::Email => fields.email.clone(),
            Field::Greeting => fields.greeting(),
            Field::UnsubscribeUrl => fields.unsubscribe_url.clone(),
        }
    }
}

#[derive(Debug, Clone)]
enum Segment {
    /// Text, and the same text quoted-printable encoded, ending in a soft line break.
    Literal(String, Vec<u8>),
    Field(Field),
}

/// Rendered output with places for a subscriber's fields.
#[derive(Debug, Clone)]
pub struct Personalized {
    segments: Vec<Segment>,
    escape_html: bool,
}

/// Quoted-printable encoding of `text` with CRLF line ends, closed by a soft line break
/// (`=` CRLF) unless it ends a line: encoded pieces then join into one valid body, so
/// the bulk of a message is encoded once per issue and only the fields per subscriber.
fn qp_piece(text: &str) -> Vec<u8> {
    if text.is_empty() {
        return Vec::new();
    }
    let crlf = text.replace("\r\n", "\n").replace('\n', "\r\n");
    let mut encoded = quoted_printable::encode(crlf.as_bytes());
    if !encoded.ends_with(b"\r\n") {
        encoded.extend_from_slice(b"=\r\n");
    }
    encoded
}

impl Personalized {
    fn parse(rendered: &str, escape_html: bool) -> Self {
        let mut segments = Vec::new();
        let mut rest = rendered;
        while let Some(open) = rest.find(MARK_OPEN) {
            let after = &rest[open + MARK_OPEN.len_utf8()..];
            let mut chars = after.chars();
            let field = chars
                .next()
                .and_then(|c| Field::ALL.into_iter().find(|f| f.letter() == c));
            match (field, chars.next()) {
                (Some(field), Some(MARK_CLOSE)) => {
                    if open > 0 {
                        segments.push(Segment::literal(&rest[..open]));
                    }
                    segments.push(Segment::Field(field));
                    rest = &after[1 + MARK_CLOSE.len_utf8()..];
                }
                _ => {
                    segments.push(Segment::literal(&rest[..open + MARK_OPEN.len_utf8()]));
                    rest = after;
                }
            }
        }
        if !rest.is_empty() {
            segments.push(Segment::literal(rest));
        }
        Self {
            segments,
            escape_html,
        }
    }

    fn field_value(&self, field: Field, fields: &PersonalFields) -> String {
        let value = field.value(fields);
        if self.escape_html {
            let mut out = String::with_capacity(value.len());
            escape_into(&mut out, &value);
            out
        } else {
            value
        }
    }

    /// The output for one subscriber.
    pub fn fill(&self, fields: &PersonalFields) -> String {
        let size = self
            .segments
            .iter()
            .map(|s| {
                if let Segment::Literal(l, _) = s {
                    l.len()
                } else {
                    40
                }
            })
            .sum();
        let mut out = String::with_capacity(size);
        for segment in &self.segments {
            match segment {
                Segment::Literal(text, _) => out.push_str(text),
                Segment::Field(field) => out.push_str(&self.field_value(*field, fields)),
            }
        }
        out
    }

    /// The most bytes [`Self::fill_quoted_printable`] can produce, with every field at most
    /// [`FIELD_BYTES`] long.
    fn max_encoded_len(&self) -> usize {
        self.segments
            .iter()
            .map(|s| match s {
                Segment::Literal(_, qp) => qp.len(),
                Segment::Field(_) => FIELD_BYTES,
            })
            .sum()
    }

    /// The output for one subscriber, quoted-printable encoded (CRLF line ends) for a
    /// MIME part.
    pub fn fill_quoted_printable(&self, fields: &PersonalFields) -> Vec<u8> {
        let size = self
            .segments
            .iter()
            .map(|s| {
                if let Segment::Literal(_, qp) = s {
                    qp.len()
                } else {
                    64
                }
            })
            .sum();
        let mut out = Vec::with_capacity(size);
        for segment in &self.segments {
            match segment {
                Segment::Literal(_, qp) => out.extend_from_slice(qp),
                Segment::Field(field) => {
                    out.extend_from_slice(&qp_piece(&self.field_value(*field, fields)))
                }
            }
        }
        // A body does not end in a soft line break.
        if out.ends_with(b"=\r\n") {
            out.truncate(out.len() - 3);
        }
        out
    }
}

/// An issue rendered once, ready to be personalised for each subscriber.
#[derive(Debug, Clone)]
pub struct RenderedIssue {
    pub subject: String,
    html_named: Personalized,
    html_anonymous: Personalized,
    text_named: Personalized,
    text_anonymous: Personalized,
}

impl Segment {
    fn literal(text: &str) -> Self {
        Segment::Literal(text.to_owned(), qp_piece(text))
    }
}

impl RenderedIssue {
    /// The HTML part for one subscriber, quoted-printable encoded.
    pub fn html_qp_for(&self, fields: &PersonalFields) -> Vec<u8> {
        if has_name(fields) {
            self.html_named.fill_quoted_printable(fields)
        } else {
            self.html_anonymous.fill_quoted_printable(fields)
        }
    }

    /// The text part for one subscriber, quoted-printable encoded.
    pub fn text_qp_for(&self, fields: &PersonalFields) -> Vec<u8> {
        if has_name(fields) {
            self.text_named.fill_quoted_printable(fields)
        } else {
            self.text_anonymous.fill_quoted_printable(fields)
        }
    }

    /// An upper bound of a whole message's size for any subscriber (names and addresses
    /// within their limits): both parts encoded, MIME boundaries and headers.
    pub fn max_message_size(&self) -> usize {
        let html = self
            .html_named
            .max_encoded_len()
            .max(self.html_anonymous.max_encoded_len());
        let text = self
            .text_named
            .max_encoded_len()
            .max(self.text_anonymous.max_encoded_len());
        html + text + HEADER_BYTES
    }

    pub fn html_for(&self, fields: &PersonalFields) -> String {
        if has_name(fields) {
            self.html_named.fill(fields)
        } else {
            self.html_anonymous.fill(fields)
        }
    }

    pub fn text_for(&self, fields: &PersonalFields) -> String {
        if has_name(fields) {
            self.text_named.fill(fields)
        } else {
            self.text_anonymous.fill(fields)
        }
    }
}

fn has_name(fields: &PersonalFields) -> bool {
    fields.name.as_deref().is_some_and(|n| !n.trim().is_empty())
}

/// Renders an issue: subject, HTML with its CSS inlined, and wrapped text.
pub fn render_issue(templates: &Templates, input: &IssueInput<'_>) -> Result<RenderedIssue, Error> {
    let base = issue_view(input);
    let subject = templates.render_inline_text(
        &format!("the subject of digest \"{}\"", input.digest.name),
        &input.digest.subject,
        &base,
    )?;
    let subject = cap_subject(&subject);
    let mut base = base;
    base["subject"] = json!(subject);
    let name = &input.digest.template;
    let inliner = css_inline::CSSInliner::options()
        .keep_at_rules(true)
        .load_remote_stylesheets(false)
        .build();

    let mut variants = Vec::with_capacity(4);
    for named in [true, false] {
        let mut data = base.clone();
        data["subscriber"] = json!({
            "name": if named { Field::Name.marker() } else { String::new() },
            "email": Field::Email.marker(),
            "greeting": Field::Greeting.marker(),
            "unsubscribe_url": Field::UnsubscribeUrl.marker(),
        });
        let html = templates.render_html(&format!("{name}.html"), &data)?;
        let html = inliner.inline(&html).map_err(|e| Error::Css {
            what: format!("template {name}.html"),
            message: e.to_string(),
        })?;
        let text = text::layout_text(
            &templates.render_text(&format!("{name}.txt"), &data)?,
            TEXT_WIDTH,
        );
        variants.push((
            Personalized::parse(&html, true),
            Personalized::parse(&text, false),
        ));
    }
    let (anonymous, named) = (variants.pop(), variants.pop());
    let ((html_named, text_named), (html_anonymous, text_anonymous)) = match (named, anonymous) {
        (Some(n), Some(a)) => (n, a),
        _ => unreachable!("two variants were rendered"),
    };
    Ok(RenderedIssue {
        subject,
        html_named,
        html_anonymous,
        text_named,
        text_anonymous,
    })
}

/// The data templates see (without the subscriber, which is filled in per message).
fn issue_view(input: &IssueInput<'_>) -> Value {
    let tz: Tz = input.digest.timezone;
    let posts: Vec<Value> = input
        .posts
        .iter()
        .map(|p| post_view(p, input, tz))
        .collect();
    let preheader = {
        let titles: Vec<String> = input
            .posts
            .iter()
            .take(20)
            .map(|p| shorten(&p.title, 140))
            .collect();
        let mut s = titles.join(" \u{b7} ");
        if s.chars().count() > 140 {
            s = s.chars().take(139).collect::<String>() + "\u{2026}";
        }
        s
    };
    json!({
        "site": {
            "title": input.site.title,
            "url": input.site.base_url.as_str(),
            "language": input.site.language,
        },
        "digest": { "name": input.digest.name },
        "issue": {
            "date": input.date.with_timezone(&tz).format("%A, %-d %B %Y").to_string(),
            "url": input.view_online_url,
        },
        "subject": "",
        "preheader": preheader,
        "one_post": input.posts.len() == 1,
        "posts": posts,
        "omitted": input.omitted,
        "one_omitted": input.omitted == 1,
        "why": format!(
            "You are receiving this because you subscribed to the {} digest of {}.",
            input.digest.name, input.site.title
        ),
    })
}

fn post_view(post: &Post, input: &IssueInput<'_>, tz: Tz) -> Value {
    let related: Vec<Value> = related_links(input.related, post.id)
        .map(|(title, url)| json!({ "title": shorten(title, TITLE_MAX_CHARS), "url": url }))
        .collect();
    let title = shorten(&post.title, TITLE_MAX_CHARS);
    json!({
        "title": title,
        "url": post.url.clone().unwrap_or_else(|| input.view_online_url.clone()),
        "summary": shorten(post.summary.as_deref().unwrap_or_default(), SUMMARY_MAX_CHARS),
        "image": post.image,
        "image_alt": title,
        "author": post.author,
        "date": post.display_date().with_timezone(&tz).format("%-d %b %Y").to_string(),
        "source": input.source_titles.get(&post.source).cloned().unwrap_or_else(|| post.source.clone()),
        "tags": post.tags,
        "related": related,
    })
}

/// Renders every template against a sample issue, so that a template error shows up
/// in `check-config` and at start-up rather than at send time.
pub fn check_templates(
    templates: &Templates,
    site: &SiteConfig,
    digest: &DigestConfig,
) -> Result<(), Error> {
    let now = DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::days(20_000);
    let sample = |id: i64, with_extras: bool| Post {
        id: PostId(id),
        source: "sample".into(),
        stable_id: crate::domain::StableId::from_stored(format!("sample-{id}")),
        url: Some(format!("{}sample/{id}", site.base_url)),
        title: format!("Sample post {id}"),
        author: with_extras.then(|| "Sample Author".into()),
        tags: vec!["sample".into()],
        published_at: with_extras.then_some(now),
        first_seen_at: now,
        updated_at: now,
        html: "<p>Sample.</p>".into(),
        text: "Sample.".into(),
        image: with_extras.then(|| format!("{}sample.png", site.base_url)),
        feed_summary: None,
        summary: Some("A sample summary.".into()),
        recovered: false,
    };
    let posts = vec![sample(1, true), sample(2, false)];
    let mut related = HashMap::new();
    related.insert(
        PostId(1),
        vec![RelatedPost {
            id: PostId(2),
            title: "Sample post 2".into(),
            url: posts[1].url.clone(),
            score: 0.5,
        }],
    );
    let input = IssueInput {
        site,
        digest,
        date: now,
        posts: &posts,
        related: &related,
        source_titles: &HashMap::new(),
        view_online_url: format!("{}archive/sample", site.base_url),
        omitted: 1,
    };
    let rendered = render_issue(templates, &input)?;
    let fields = PersonalFields {
        name: None,
        email: "reader@example.org".into(),
        unsubscribe_url: "https://example.org/u".into(),
    };
    let _ = rendered.html_for(&fields);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_fields_escaped_in_html_and_raw_in_text() {
        let rendered = format!(
            "<p>{}</p><a href=\"{}\">x</a>",
            Field::Greeting.marker(),
            Field::UnsubscribeUrl.marker()
        );
        let p = Personalized::parse(&rendered, true);
        let fields = PersonalFields {
            name: Some("Ana <Bold> Smith".into()),
            email: "a@b.org".into(),
            unsubscribe_url: "https://e.org/u/1.u.x?a=1&b=2".into(),
        };
        assert_eq!(
            p.fill(&fields),
            "<p>Hi Ana,</p><a href=\"https://e.org/u/1.u.x?a=1&amp;b=2\">x</a>"
        );
        let t = Personalized::parse(
            &format!("{} {}", Field::Name.marker(), Field::Email.marker()),
            false,
        );
        assert_eq!(t.fill(&fields), "Ana <Bold> Smith a@b.org");
    }

    #[test]
    fn quoted_printable_pieces_decode_to_the_filled_text() {
        let rendered = format!(
            "<p>{}</p>\n<p>{} caf\u{e9} = {}</p>\n{}",
            Field::Greeting.marker(),
            "long line ".repeat(20),
            Field::Email.marker(),
            Field::UnsubscribeUrl.marker()
        );
        let p = Personalized::parse(&rendered, true);
        let fields = PersonalFields {
            name: Some("Zo\u{eb} <Z>".into()),
            email: "z@example.org".into(),
            unsubscribe_url: "https://e.org/u?a=1&b=2".into(),
        };
        let encoded = p.fill_quoted_printable(&fields);
        assert!(
            encoded.split(|b| *b == b'\n').all(|line| line.len() <= 77),
            "QP lines stay short"
        );
        let decoded =
            quoted_printable::decode(&encoded, quoted_printable::ParseMode::Strict).unwrap();
        assert_eq!(
            String::from_utf8(decoded).unwrap(),
            p.fill(&fields).replace('\n', "\r\n")
        );
    }

    #[test]
    fn leaves_a_stray_marker_character_alone() {
        let p = Personalized::parse("a\u{E000}zb", true);
        let fields = PersonalFields {
            name: None,
            email: String::new(),
            unsubscribe_url: String::new(),
        };
        assert_eq!(p.fill(&fields), "a\u{E000}zb");
    }
}
