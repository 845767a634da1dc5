//! feed-rs entries to [`NewPost`]s that every later stage can trust.
//!
//! For each entry: a [`StableId`] (guid, else link, else a hash of title and content), a
//! plain-text title (entities decoded, whitespace folded), the entry's absolute URL,
//! sanitized HTML with relative URLs resolved against the entry's own URL (as Miniflux
//! does), its plain text, tags, author, the published date when the feed gives one, and a
//! lead image. Entries repeated inside one feed are kept once. Nothing here decides what
//! is new: the store does that by stable id and content hash.

use feed_rs::model::{Entry, Feed, FeedType, Link, Text};
use url::Url;

use super::html::Sanitizer;
use crate::domain::{FeedMeta, NewPost, StableId, shorten};
use crate::markup;

/// Longest title stored, in characters (a longer one ends in "…").
pub const TITLE_MAX_CHARS: usize = 300;
/// Most of an entry's HTML that is sanitized and stored, in bytes; the rest is cut at a
/// tag boundary (the sanitizer closes what is left open).
pub const HTML_MAX_BYTES: usize = 512 * 1024;
/// Longest feed summary, author and tag kept, in characters.
const SUMMARY_MAX_CHARS: usize = 4_000;
const AUTHOR_MAX_CHARS: usize = 200;
const TAG_MAX_CHARS: usize = 100;
/// Most tags kept per entry.
const MAX_TAGS: usize = 50;

/// Feeds with at least this many entries are normalized on several threads.
const PARALLEL_FROM: usize = 128;
/// Entries normalized (and then stored) at a time.
pub const CHUNK: usize = 256;

/// Turns feeds into posts; build once and share.
#[derive(Debug, Default)]
pub struct Normalizer {
    sanitizer: Sanitizer,
}

impl Normalizer {
    pub fn new() -> Self {
        Self {
            sanitizer: Sanitizer::new(),
        }
    }

    /// Normalizes every entry of `feed`. `fallback_base` resolves relative links when the
    /// feed has no absolute link of its own (the fetched URL, or the source's `base_url`).
    pub fn normalize_feed(
        &self,
        feed: &Feed,
        fallback_base: Option<&Url>,
    ) -> (FeedMeta, Vec<NewPost>) {
        let chunks = std::sync::Mutex::new(std::collections::BTreeMap::new());
        let meta = self.normalize_chunks(feed, fallback_base, CHUNK, &|index, posts| {
            if let Ok(mut chunks) = chunks.lock() {
                chunks.insert(index, posts);
            }
        });
        let chunks = chunks.into_inner().unwrap_or_default();
        let mut seen = std::collections::HashSet::new();
        let posts = chunks
            .into_values()
            .flatten()
            .filter(|post| seen.insert(post.stable_id.clone()))
            .collect();
        (meta, posts)
    }

    /// Normalizes the entries in chunks of `chunk`, on all cores for a big feed, handing
    /// each chunk to `emit` with its index as soon as it is done (so that storing can start
    /// before the last entry is sanitized). Chunks may arrive out of order; repeated
    /// entries are not removed here.
    pub fn normalize_chunks(
        &self,
        feed: &Feed,
        fallback_base: Option<&Url>,
        chunk: usize,
        emit: &(dyn Fn(usize, Vec<NewPost>) + Sync),
    ) -> FeedMeta {
        let site_url = alternate_link(&feed.links).and_then(|href| absolute(href, fallback_base));
        let base = site_url.clone().or_else(|| fallback_base.cloned());
        let meta = FeedMeta {
            title: feed
                .title
                .as_ref()
                .map(|t| self.text_line(t))
                .filter(|t| !t.is_empty()),
            site_url: site_url.map(String::from),
        };
        let feed_author = feed.authors.iter().find_map(|p| p.name.clone());
        // Atom's type="text" and JSON Feed's content_text are plain text by definition; RSS
        // has no such marker and its "plain" fields routinely carry escaped HTML.
        let text_means_text = matches!(feed.feed_type, FeedType::Atom | FeedType::JSON);
        let chunk = chunk.max(1);
        let count = feed.entries.len().div_ceil(chunk);
        let next = std::sync::atomic::AtomicUsize::new(0);
        let work = || {
            loop {
                let index = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if index >= count {
                    return;
                }
                let entries =
                    &feed.entries[index * chunk..((index + 1) * chunk).min(feed.entries.len())];
                let posts = entries
                    .iter()
                    .map(|entry| {
                        self.normalize_entry(
                            entry,
                            base.as_ref(),
                            feed_author.as_deref(),
                            text_means_text,
                        )
                    })
                    .collect();
                emit(index, posts);
            }
        };
        // Sanitizing is most of the work and entries are independent: big feeds are
        // spread over the cores.
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(4);
        if feed.entries.len() >= PARALLEL_FROM && threads > 1 {
            std::thread::scope(|scope| {
                for _ in 0..threads {
                    scope.spawn(work);
                }
            });
        } else {
            work();
        }
        meta
    }

    /// Normalizes one entry. `text_means_text`: whether a text/plain body is really plain
    /// text (Atom, JSON Feed) or possibly HTML (RSS).
    pub fn normalize_entry(
        &self,
        entry: &Entry,
        base: Option<&Url>,
        feed_author: Option<&str>,
        text_means_text: bool,
    ) -> NewPost {
        let url = alternate_link(&entry.links).and_then(|href| absolute(href, base));
        let content_base = url.as_ref().or(base);

        // Content: the full body when there is one, else the summary (RSS <description>).
        let is_plain = |body: &str, content_type: &str| {
            content_type.eq_ignore_ascii_case("text/plain")
                && (text_means_text || !looks_like_markup(body))
        };
        let body = entry.content.as_ref().and_then(|c| {
            c.body
                .as_ref()
                .map(|b| (b.as_str(), is_plain(b, c.content_type.as_str())))
        });
        let summary = entry.summary.as_ref().map(|s| {
            (
                s.content.as_str(),
                is_plain(&s.content, s.content_type.as_str()),
            )
        });
        let (raw_html, feed_summary) = match (body, summary) {
            (Some(body), summary) => (
                to_html(body),
                summary.map(|(s, plain)| self.summary_text(s, plain)),
            ),
            (None, Some(summary)) => (to_html(summary), None),
            (None, None) => (String::new(), None),
        };
        let html = self
            .sanitizer
            .clean(cap_html(raw_html.trim()), content_base);
        let text = markup::html_to_text(&html);

        let raw_title = entry
            .title
            .as_ref()
            .map(|t| self.text_line(t))
            .unwrap_or_default();
        // A fallback id hashes the text; for a body over the cap that is the text of the
        // whole body, as it was before bodies were capped (stored ids never change).
        let has_own_id = !entry.id.trim().is_empty() || url.is_some();
        // The body as it was before bodies were capped, when the cap cut it.
        let whole_html = (raw_html.trim().len() > HTML_MAX_BYTES)
            .then(|| self.sanitizer.clean(raw_html.trim(), content_base));
        let whole_text;
        let id_text = match &whole_html {
            Some(whole) if !has_own_id => {
                whole_text = markup::html_to_text(whole);
                &whole_text
            }
            _ => &text,
        };
        let stable_id = StableId::for_entry(
            Some(entry.id.as_str()),
            url.as_ref().map(Url::as_str),
            &raw_title,
            id_text,
        );
        // The id was taken from the whole title; what is stored and shown is capped.
        let title = if raw_title.is_empty() {
            title_from_text(&text)
        } else {
            shorten(&raw_title, TITLE_MAX_CHARS)
        };

        let author = entry
            .authors
            .iter()
            .find_map(|p| {
                p.name
                    .as_deref()
                    .or(p.email.as_deref())
                    .map(markup::fold_line)
            })
            .filter(|a| !a.is_empty())
            .or_else(|| feed_author.map(markup::fold_line));
        let feed_summary = feed_summary.filter(|s| !s.is_empty());
        let tags = self.tags(entry);

        let mut post = NewPost {
            stable_id,
            url: url.as_ref().map(Url::to_string),
            title,
            author: author.as_deref().map(|a| shorten(a, AUTHOR_MAX_CHARS)),
            tags: tags.iter().take(MAX_TAGS).cloned().collect(),
            published_at: entry.published.or(entry.updated),
            image: lead_image(entry, content_base).or_else(|| markup::first_image(&html)),
            html,
            text,
            feed_summary: feed_summary
                .as_deref()
                .map(|s| shorten(s, SUMMARY_MAX_CHARS)),
            uncapped_hash: None,
            recovered: false,
        };
        // A post stored whole before the caps existed must not look edited: its change
        // detector is the hash of what it would have been without them.
        let capped = whole_html.is_some()
            || (!raw_title.is_empty() && post.title != raw_title)
            || post.author != author
            || post.tags.len() != tags.len()
            || post.feed_summary != feed_summary;
        if capped {
            let whole = NewPost {
                title: if raw_title.is_empty() {
                    post.title.clone()
                } else {
                    raw_title
                },
                author,
                tags,
                html: whole_html.unwrap_or_else(|| post.html.clone()),
                feed_summary,
                text: String::new(),
                ..post.clone()
            };
            post.uncapped_hash = Some(whole.content_hash());
        }
        post
    }

    fn text_line(&self, t: &Text) -> String {
        self.sanitizer.inline_text(&t.content)
    }

    fn summary_text(&self, s: &str, plain: bool) -> String {
        if plain {
            markup::fold_line(s)
        } else {
            markup::fold_line(&markup::html_to_text(&self.sanitizer.clean(s, None)))
        }
    }

    fn tags(&self, entry: &Entry) -> Vec<String> {
        let mut tags: Vec<String> = Vec::new();
        for category in &entry.categories {
            let name = self
                .sanitizer
                .inline_text(category.label.as_deref().unwrap_or(&category.term));
            let name: String = name.chars().take(TAG_MAX_CHARS).collect();
            if !name.is_empty() && !tags.iter().any(|t| t.eq_ignore_ascii_case(&name)) {
                tags.push(name);
            }
        }
        tags
    }
}

/// At most [`HTML_MAX_BYTES`] of `html`, cut before the last tag that starts before the
/// limit (so no tag is cut in half).
fn cap_html(html: &str) -> &str {
    if html.len() <= HTML_MAX_BYTES {
        return html;
    }
    let mut end = HTML_MAX_BYTES;
    while !html.is_char_boundary(end) {
        end -= 1;
    }
    let cut = &html[..end];
    match cut.rfind('<') {
        Some(tag) if tag > end / 2 => &cut[..tag],
        _ => cut,
    }
}

/// Body text as HTML: plain text is escaped into paragraphs.
fn to_html((body, plain): (&str, bool)) -> String {
    if plain {
        markup::text_to_html(body)
    } else {
        body.to_owned()
    }
}

fn looks_like_markup(s: &str) -> bool {
    let bytes = s.as_bytes();
    bytes
        .windows(2)
        .any(|w| w[0] == b'<' && (w[1].is_ascii_alphabetic() || w[1] == b'/' || w[1] == b'!'))
        || s.contains("&amp;")
        || s.contains("&lt;")
        || s.contains("&#")
}

/// The entry's page: a link with no rel or rel="alternate", else the first link.
fn alternate_link(links: &[Link]) -> Option<&str> {
    links
        .iter()
        .find(|l| {
            matches!(l.rel.as_deref(), None | Some("alternate"))
                && l.media_type.as_deref().is_none_or(|t| t.contains("html"))
        })
        .or_else(|| {
            links.iter().find(|l| {
                !matches!(
                    l.rel.as_deref(),
                    Some("self" | "enclosure" | "hub" | "next")
                )
            })
        })
        .map(|l| l.href.as_str())
        .filter(|h| !h.trim().is_empty())
}

/// `href` as an absolute http(s) URL, resolved against `base` when relative.
fn absolute(href: &str, base: Option<&Url>) -> Option<Url> {
    let href = href.trim();
    let url = match Url::parse(href) {
        Ok(url) => url,
        Err(url::ParseError::RelativeUrlWithoutBase) => base?.join(href).ok()?,
        Err(_) => return None,
    };
    matches!(url.scheme(), "http" | "https").then_some(url)
}

/// A lead image the feed names explicitly: a media thumbnail, an image media object, or an
/// image enclosure.
fn lead_image(entry: &Entry, base: Option<&Url>) -> Option<String> {
    let thumbnails = entry
        .media
        .iter()
        .flat_map(|m| m.thumbnails.iter())
        .map(|t| t.image.uri.as_str());
    let images = entry
        .media
        .iter()
        .flat_map(|m| m.content.iter())
        .filter_map(|c| {
            let is_image = c
                .content_type
                .as_ref()
                .is_some_and(|t| t.as_str().starts_with("image/"));
            is_image.then(|| c.url.as_ref().map(Url::as_str)).flatten()
        });
    let enclosures = entry
        .links
        .iter()
        .filter(|l| {
            l.rel.as_deref() == Some("enclosure")
                && l.media_type
                    .as_deref()
                    .is_some_and(|t| t.starts_with("image/"))
        })
        .map(|l| l.href.as_str());
    thumbnails
        .chain(images)
        .chain(enclosures)
        .find_map(|href| absolute(href, base))
        .map(String::from)
}

/// A title for an entry that has none: its first words.
fn title_from_text(text: &str) -> String {
    let first_line = text.lines().next().unwrap_or("");
    let words: Vec<&str> = first_line.split_whitespace().collect();
    match words.len() {
        0 => "Untitled post".to_owned(),
        n if n <= 10 => words.join(" "),
        _ => format!("{}\u{2026}", words[..10].join(" ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::parse_feed;

    fn posts(feed: &str, base: Option<&str>) -> Vec<NewPost> {
        let feed = parse_feed(feed.as_bytes(), None, base).expect("parses");
        let base = base.map(|b| Url::parse(b).unwrap());
        Normalizer::new().normalize_feed(&feed, base.as_ref()).1
    }

    #[test]
    fn entries_without_guid_or_link_get_a_content_hash_id_that_is_stable() {
        let feed = r#"<rss version="2.0"><channel><title>t</title>
            <item><title>A</title><description>first</description></item>
            <item><title>B</title><description>second</description></item></channel></rss>"#;
        let a = posts(feed, None);
        let b = posts(feed, None);
        assert_eq!(a.len(), 2);
        assert_eq!(a[0].stable_id, b[0].stable_id);
        assert_ne!(a[0].stable_id, a[1].stable_id);
        assert!(a[0].stable_id.as_str().starts_with("sha256:"));
    }

    #[test]
    fn content_urls_resolve_against_the_entry_link() {
        let feed = r#"<rss version="2.0"><channel><title>t</title><link>https://blog.example.org/</link>
            <item><title>A</title><link>https://blog.example.org/posts/a/</link><guid>a</guid>
            <description>&lt;p&gt;&lt;img src="pic.png" alt="p"&gt; &lt;a href="/about"&gt;about&lt;/a&gt;&lt;/p&gt;</description></item>
            </channel></rss>"#;
        let p = &posts(feed, None)[0];
        assert!(
            p.html
                .contains(r#"src="https://blog.example.org/posts/a/pic.png""#),
            "{}",
            p.html
        );
        assert!(
            p.html.contains(r#"href="https://blog.example.org/about""#),
            "{}",
            p.html
        );
        assert_eq!(
            p.image.as_deref(),
            Some("https://blog.example.org/posts/a/pic.png")
        );
        assert_eq!(p.text, "about");
    }

    #[test]
    fn relative_entry_links_resolve_against_the_feed_site() {
        let feed = r#"<rss version="2.0"><channel><title>t</title><link>https://blog.example.org/</link>
            <item><title>A</title><link>/posts/a/</link></item></channel></rss>"#;
        let p = &posts(feed, None)[0];
        assert_eq!(p.url.as_deref(), Some("https://blog.example.org/posts/a/"));
        assert_eq!(p.stable_id.as_str(), "https://blog.example.org/posts/a/");
    }

    #[test]
    fn duplicate_entries_in_one_feed_are_kept_once() {
        let feed = r#"<rss version="2.0"><channel><title>t</title>
            <item><title>A</title><guid>same</guid></item><item><title>A again</title><guid>same</guid></item>
            </channel></rss>"#;
        let got = posts(feed, None);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].title, "A");
    }

    #[test]
    fn huge_titles_and_bodies_are_capped_but_keep_their_id() {
        let title = "Long ".repeat(200_000);
        let body = format!("<p>{}</p>", "word ".repeat(300_000));
        let feed = format!(
            r#"<rss version="2.0"><channel><title>t</title><item><title>{title}</title><description><![CDATA[{body}]]></description></item></channel></rss>"#
        );
        let p = &posts(&feed, None)[0];
        assert!(
            p.title.chars().count() <= TITLE_MAX_CHARS,
            "{}",
            p.title.len()
        );
        assert!(p.title.ends_with('\u{2026}'));
        assert!(p.html.len() <= HTML_MAX_BYTES + 64, "{}", p.html.len());
        assert!(
            p.html.ends_with("</p>"),
            "the sanitizer closes what the cut left open"
        );
        // The fallback id is still the hash of the whole title and the whole text, and
        // the change detector the hash of the whole post, both as before the caps.
        let sanitizer = Sanitizer::new();
        let whole_html = sanitizer.clean(&body, None);
        let whole_text = markup::html_to_text(&whole_html);
        let whole_title = sanitizer.inline_text(&title);
        let as_before = NewPost {
            title: whole_title.clone(),
            html: whole_html,
            uncapped_hash: None,
            ..p.clone()
        };
        assert_eq!(p.content_hash(), as_before.content_hash());
        assert_ne!(p.content_hash(), p.content_hash_of_fields());
        assert_eq!(
            p.stable_id,
            StableId::for_entry(None, None, &whole_title, &whole_text)
        );
    }

    #[test]
    fn json_feed_plain_text_is_escaped_into_paragraphs() {
        let feed = r#"{"version":"https://jsonfeed.org/version/1.1","title":"j","items":[
            {"id":"1","content_text":"a < b\n\nsecond","url":"https://e.org/1"}]}"#;
        let p = &posts(feed, None)[0];
        assert_eq!(p.html, "<p>a &lt; b</p><p>second</p>");
        assert_eq!(p.title, "a < b");
    }
}
