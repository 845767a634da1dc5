//! The outgoing feeds: RSS 2.0 (`rss`), Atom 1.0 (`atom_syndication`) and JSON Feed 1.1
//! (serde_json), all from the same posts and the same rules.
//!
//! Every item carries the post's summary followed by its related posts as a list of
//! absolute links; with `full_content` the full sanitized HTML goes in `content:encoded`
//! (Atom `content`, JSON `content_html`). Output is deterministic: the same store gives
//! byte-identical files (no wall-clock time, `lastBuildDate` is the newest item's time),
//! so an HTTP server's ETag stays put and readers polling with If-None-Match get 304s.
//! Text that XML 1.0 cannot carry (control characters) is removed; markup in titles and
//! summaries is escaped; `]]>` inside content is split by the writer.

use std::collections::HashMap;

use chrono::{DateTime, FixedOffset, Utc};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::related_links;
use crate::config::{FeedConfig, SiteConfig};
use crate::domain::{Post, PostId, RelatedPost};
use crate::markup::escape_into;

/// Longest title put in a feed, in characters.
const MAX_TITLE: usize = 500;

/// What the feeds are made of.
#[derive(Debug)]
pub struct FeedInput<'a> {
    pub site: &'a SiteConfig,
    pub feed: &'a FeedConfig,
    /// Newest first, at most `feed.max_items`.
    pub posts: &'a [Post],
    pub related: &'a HashMap<PostId, Vec<RelatedPost>>,
}

/// The three documents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Feeds {
    pub rss: Vec<u8>,
    pub atom: Vec<u8>,
    pub json: Vec<u8>,
}

/// A feed could not be written (only a writer failure; the input is always accepted).
#[derive(Debug, thiserror::Error)]
#[error("writing the {format} feed: {message}")]
pub struct Error {
    pub format: &'static str,
    pub message: String,
}

/// Renders all three feeds.
pub fn render_feeds(input: &FeedInput<'_>) -> Result<Feeds, Error> {
    let items: Vec<ItemView> = input
        .posts
        .iter()
        .map(|p| ItemView::new(p, input))
        .collect();
    Ok(Feeds {
        rss: rss(input, &items)?,
        atom: atom(input, &items)?,
        json: json_feed(input, &items)?,
    })
}

/// One post, prepared once for all three formats.
struct ItemView {
    id: String,
    id_is_url: bool,
    title: String,
    url: Option<String>,
    author: Option<String>,
    tags: Vec<String>,
    published: DateTime<Utc>,
    updated: DateTime<Utc>,
    /// When herald stored this version: what `lastBuildDate` is made of.
    stored: DateTime<Utc>,
    summary: String,
    /// The summary as HTML, then the related posts as a list of links.
    summary_html: String,
    related: Vec<(String, String)>,
    related_html: String,
    content_html: Option<String>,
    image: Option<String>,
}

impl ItemView {
    fn new(post: &Post, input: &FeedInput<'_>) -> Self {
        let url = post
            .url
            .as_deref()
            .filter(|u| u.starts_with("http://") || u.starts_with("https://"))
            .map(xml_text);
        let (id, id_is_url) = match &url {
            // The stable id is the URL: a permalink guid.
            Some(u) if post.stable_id.as_str() == u => (u.clone(), true),
            _ => (guid_urn(&post.source, post.stable_id.as_str()), false),
        };
        let related: Vec<(String, String)> = related_links(input.related, post.id)
            .map(|(title, url)| (xml_text(title), xml_text(url)))
            .collect();
        let summary = xml_text(post.summary.as_deref().unwrap_or(""));
        let mut related_html = String::new();
        if !related.is_empty() {
            related_html.push_str("<p>Related:</p><ul>");
            for (title, href) in &related {
                related_html.push_str("<li><a href=\"");
                escape_into(&mut related_html, href);
                related_html.push_str("\">");
                escape_into(&mut related_html, title);
                related_html.push_str("</a></li>");
            }
            related_html.push_str("</ul>");
        }
        let mut summary_html = String::new();
        if !summary.is_empty() {
            summary_html.push_str("<p>");
            escape_into(&mut summary_html, &summary);
            summary_html.push_str("</p>");
        }
        summary_html.push_str(&related_html);
        let mut title = xml_text(&post.title);
        if title.chars().count() > MAX_TITLE {
            title = title.chars().take(MAX_TITLE - 1).collect::<String>() + "\u{2026}";
        }
        let published = post.display_date();
        Self {
            id,
            id_is_url,
            title,
            url,
            author: post
                .author
                .as_deref()
                .map(xml_text)
                .filter(|a| !a.is_empty()),
            tags: post
                .tags
                .iter()
                .map(|t| xml_text(t))
                .filter(|t| !t.is_empty())
                .collect(),
            published,
            // Modified only when herald stored an edited version after first seeing it.
            updated: if post.updated_at > post.first_seen_at {
                post.updated_at.max(published)
            } else {
                published
            },
            stored: post.updated_at.max(post.first_seen_at),
            summary,
            summary_html,
            related,
            related_html,
            content_html: input
                .feed
                .full_content
                .then(|| xml_text(&post.html))
                .filter(|h| !h.trim().is_empty()),
            image: post.image.as_deref().map(xml_text),
        }
    }
}

/// A guid for a post whose stable id is not its URL: fixed for the post forever.
fn guid_urn(source: &str, stable_id: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(source.as_bytes());
    hasher.update([0]);
    hasher.update(stable_id.as_bytes());
    format!(
        "urn:herald:{}:{}",
        url_safe(source),
        crate::domain::hex(&hasher.finalize()[..16])
    )
}

fn url_safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Text with every character XML 1.0 cannot carry removed (C0/C1 controls other than
/// tab, newline and carriage return; U+FFFE/U+FFFF).
pub fn xml_text(s: &str) -> String {
    s.chars()
        .filter(|c| !crate::markup::is_control(*c) && !('\u{80}'..='\u{9f}').contains(c))
        .collect()
}

/// When the feed's content last changed: the latest time herald stored one of its items
/// (a fixed date for an empty feed, so that output never depends on the clock).
fn last_build(items: &[ItemView]) -> DateTime<Utc> {
    items
        .iter()
        .map(|i| i.stored)
        .max()
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

fn rss(input: &FeedInput<'_>, items: &[ItemView]) -> Result<Vec<u8>, Error> {
    use rss::extension::atom::{AtomExtension, Link};
    use rss::extension::dublincore::DublinCoreExtension;

    let feed = input.feed;
    let mut links = vec![Link {
        href: feed.rss_url.to_string(),
        rel: "self".into(),
        mime_type: Some("application/rss+xml".into()),
        ..Link::default()
    }];
    if let Some(hub) = &feed.hub {
        links.push(Link {
            href: hub.to_string(),
            rel: "hub".into(),
            ..Link::default()
        });
    }
    let channel = rss::Channel {
        title: xml_text(&feed.title),
        link: feed.link.to_string(),
        description: xml_text(&feed.description),
        language: Some(feed.language.clone()),
        last_build_date: Some(last_build(items).to_rfc2822()),
        generator: Some(format!("herald {}", env!("CARGO_PKG_VERSION"))),
        ttl: Some((feed.ttl.as_secs() / 60).max(1).to_string()),
        atom_ext: Some(AtomExtension { links }),
        items: items
            .iter()
            .map(|item| rss::Item {
                title: Some(item.title.clone()),
                link: item.url.clone(),
                description: Some(item.summary_html.clone()),
                content: item.content_html.clone(),
                guid: Some(rss::Guid {
                    value: item.id.clone(),
                    permalink: item.id_is_url,
                }),
                pub_date: Some(item.published.to_rfc2822()),
                categories: item
                    .tags
                    .iter()
                    .map(|t| rss::Category {
                        name: t.clone(),
                        domain: None,
                    })
                    .collect(),
                dublin_core_ext: item.author.as_ref().map(|a| DublinCoreExtension {
                    creators: vec![a.clone()],
                    ..DublinCoreExtension::default()
                }),
                ..rss::Item::default()
            })
            .collect(),
        ..rss::Channel::default()
    };
    let mut out = Vec::with_capacity(4096 + items.len() * 2048);
    channel
        .pretty_write_to(&mut out, b' ', 2)
        .map_err(|e| Error {
            format: "RSS",
            message: e.to_string(),
        })?;
    out.push(b'\n');
    Ok(out)
}

fn atom(input: &FeedInput<'_>, items: &[ItemView]) -> Result<Vec<u8>, Error> {
    use atom_syndication::{
        Category, Content, Entry, Feed, Generator, Link, Person, Text, TextType,
    };

    let feed = input.feed;
    let fixed = |t: DateTime<Utc>| -> DateTime<FixedOffset> { t.fixed_offset() };
    let html = |value: String| Text {
        value,
        r#type: TextType::Html,
        ..Text::default()
    };
    let mut links = vec![
        Link {
            href: feed.link.to_string(),
            rel: "alternate".into(),
            mime_type: Some("text/html".into()),
            ..Link::default()
        },
        Link {
            href: feed.atom_url.to_string(),
            rel: "self".into(),
            mime_type: Some("application/atom+xml".into()),
            ..Link::default()
        },
    ];
    if let Some(hub) = &feed.hub {
        links.push(Link {
            href: hub.to_string(),
            rel: "hub".into(),
            ..Link::default()
        });
    }
    let document = Feed {
        title: Text::plain(xml_text(&feed.title)),
        id: feed.link.to_string(),
        updated: fixed(last_build(items)),
        authors: vec![Person {
            name: xml_text(&input.site.title),
            uri: Some(input.site.base_url.to_string()),
            ..Person::default()
        }],
        generator: Some(Generator {
            value: "herald".into(),
            version: Some(env!("CARGO_PKG_VERSION").into()),
            uri: None,
        }),
        links,
        subtitle: Some(Text::plain(xml_text(&feed.description))),
        lang: Some(feed.language.clone()),
        entries: items
            .iter()
            .map(|item| Entry {
                title: Text::plain(item.title.clone()),
                id: item.id.clone(),
                updated: fixed(item.updated),
                published: Some(fixed(item.published)),
                authors: item
                    .author
                    .iter()
                    .map(|a| Person {
                        name: a.clone(),
                        ..Person::default()
                    })
                    .collect(),
                categories: item
                    .tags
                    .iter()
                    .map(|t| Category {
                        term: t.clone(),
                        ..Category::default()
                    })
                    .collect(),
                links: item
                    .url
                    .iter()
                    .map(|u| Link {
                        href: u.clone(),
                        rel: "alternate".into(),
                        mime_type: Some("text/html".into()),
                        ..Link::default()
                    })
                    .collect(),
                summary: Some(html(item.summary_html.clone())),
                content: item.content_html.as_ref().map(|c| Content {
                    value: Some(c.clone()),
                    content_type: Some("html".into()),
                    ..Content::default()
                }),
                ..Entry::default()
            })
            .collect(),
        ..Feed::default()
    };
    let mut out = Vec::with_capacity(4096 + items.len() * 2048);
    document
        .write_with_config(
            &mut out,
            atom_syndication::WriteConfig {
                write_document_declaration: true,
                indent_size: Some(2),
            },
        )
        .map_err(|e| Error {
            format: "Atom",
            message: e.to_string(),
        })?;
    out.push(b'\n');
    Ok(out)
}

fn json_feed(input: &FeedInput<'_>, items: &[ItemView]) -> Result<Vec<u8>, Error> {
    let feed = input.feed;
    let items: Vec<Value> = items
        .iter()
        .map(|item| {
            let mut content = item.content_html.clone().unwrap_or_else(|| {
                let mut s = String::new();
                if !item.summary.is_empty() {
                    s.push_str("<p>");
                    escape_into(&mut s, &item.summary);
                    s.push_str("</p>");
                }
                s
            });
            content.push_str(&item.related_html);
            let mut value = json!({
                "id": item.id,
                "title": item.title,
                "content_html": content,
                "summary": item.summary,
                "date_published": item.published.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                "date_modified": item.updated.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                "tags": item.tags,
                "_herald": { "related": item.related.iter().map(|(title, url)| json!({ "title": title, "url": url })).collect::<Vec<_>>() },
            });
            if let Some(url) = &item.url {
                value["url"] = json!(url);
            }
            if let Some(author) = &item.author {
                value["authors"] = json!([{ "name": author }]);
            }
            if let Some(image) = &item.image {
                value["image"] = json!(image);
            }
            value
        })
        .collect();
    let mut document = json!({
        "version": "https://jsonfeed.org/version/1.1",
        "title": xml_text(&feed.title),
        "home_page_url": feed.link.as_str(),
        "feed_url": feed.json_url.as_str(),
        "description": xml_text(&feed.description),
        "language": feed.language,
        "authors": [{ "name": xml_text(&input.site.title), "url": input.site.base_url.as_str() }],
        "items": items,
    });
    if let Some(hub) = &feed.hub {
        document["hubs"] = json!([{ "type": "WebSub", "url": hub.as_str() }]);
    }
    let mut out = serde_json::to_vec_pretty(&document).map_err(|e| Error {
        format: "JSON",
        message: e.to_string(),
    })?;
    out.push(b'\n');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_what_xml_cannot_carry_and_keeps_the_rest() {
        assert_eq!(
            xml_text("a\u{0}b\u{1b}c\u{85}d\u{fffe}e\tf\u{200f}g"),
            "abcde\tf\u{200f}g"
        );
    }

    #[test]
    fn guids_are_stable_and_distinct_per_source() {
        assert_eq!(guid_urn("blog", "42"), guid_urn("blog", "42"));
        assert_ne!(guid_urn("blog", "42"), guid_urn("other", "42"));
        assert!(guid_urn("my blog", "42").starts_with("urn:herald:my_blog:"));
    }
}
