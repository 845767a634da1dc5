use std::fmt;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// The store's key for a post (an integer assigned on first insert, never reused).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct PostId(pub i64);

impl fmt::Display for PostId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The identity of an entry within its source, stable across fetches.
///
/// Taken from the entry's guid/id when the feed gives one, else from its link, else a
/// hash of title and content. Never feed-rs' generated id: for entries with neither guid
/// nor link that is a random UUID, which would re-add the post on every poll
/// (feed-rs/feed-rs#11, #18, #20).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct StableId(String);

impl StableId {
    /// Picks the best identity available for an entry.
    pub fn for_entry(guid: Option<&str>, link: Option<&str>, title: &str, content: &str) -> Self {
        if let Some(guid) = guid.map(str::trim).filter(|g| !g.is_empty()) {
            return Self(guid.to_owned());
        }
        if let Some(link) = link.map(str::trim).filter(|l| !l.is_empty()) {
            return Self(link.to_owned());
        }
        let mut hasher = Sha256::new();
        hasher.update(title.as_bytes());
        hasher.update([0u8]);
        hasher.update(content.as_bytes());
        Self(format!("sha256:{}", hex(&hasher.finalize()[..16])))
    }

    /// Wraps an id read back from the store.
    pub fn from_stored(id: String) -> Self {
        Self(id)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StableId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Lower-case hex of a byte slice.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    out
}

/// A post as ingest produces it, before the store has seen it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewPost {
    pub stable_id: StableId,
    /// Absolute URL of the post, when the feed gives one.
    pub url: Option<String>,
    /// Plain text: entities decoded, whitespace folded, never empty.
    pub title: String,
    pub author: Option<String>,
    pub tags: Vec<String>,
    /// When the source says the post was published; `None` when it does not say.
    pub published_at: Option<DateTime<Utc>>,
    /// Sanitized HTML with absolute URLs.
    pub html: String,
    /// Plain text of `html`, whitespace folded.
    pub text: String,
    /// Absolute URL of a lead image.
    pub image: Option<String>,
    /// The summary the feed gave, as plain text, if any (enrich decides whether to use it).
    pub feed_summary: Option<String>,
    /// When ingest capped a field (a huge title or body), the content hash of the entry
    /// without the caps: what the store compares, so that a post stored whole before the
    /// caps existed does not look edited.
    pub uncapped_hash: Option<String>,
    /// Read from a malformed document by the recovery pass (see `ingest::recover`).
    pub recovered: bool,
}

impl NewPost {
    /// A digest of everything a reader would see; a change means the post was edited.
    pub fn content_hash(&self) -> String {
        match &self.uncapped_hash {
            Some(hash) => hash.clone(),
            None => self.content_hash_of_fields(),
        }
    }

    /// The digest of the fields as they are (ignoring [`Self::uncapped_hash`]).
    pub fn content_hash_of_fields(&self) -> String {
        let mut hasher = Sha256::new();
        for part in [
            self.title.as_str(),
            self.url.as_deref().unwrap_or(""),
            self.author.as_deref().unwrap_or(""),
            self.html.as_str(),
            self.image.as_deref().unwrap_or(""),
            self.feed_summary.as_deref().unwrap_or(""),
        ] {
            hasher.update(part.as_bytes());
            hasher.update([0u8]);
        }
        for tag in &self.tags {
            hasher.update(tag.as_bytes());
            hasher.update([1u8]);
        }
        if let Some(at) = self.published_at {
            hasher.update(at.timestamp().to_le_bytes());
        }
        hex(&hasher.finalize()[..16])
    }
}

/// A stored post.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Post {
    pub id: PostId,
    /// Name of the source it came from.
    pub source: String,
    pub stable_id: StableId,
    pub url: Option<String>,
    pub title: String,
    pub author: Option<String>,
    pub tags: Vec<String>,
    pub published_at: Option<DateTime<Utc>>,
    /// When herald first stored it: digest windows are defined by this, so a post with a
    /// missing or back-dated pubDate still reaches the next digest.
    pub first_seen_at: DateTime<Utc>,
    /// When herald last stored a changed version of it.
    pub updated_at: DateTime<Utc>,
    pub html: String,
    pub text: String,
    pub image: Option<String>,
    pub feed_summary: Option<String>,
    /// The summary enrichment wrote (plain text), once it has run.
    pub summary: Option<String>,
    /// Read from a malformed document by the recovery pass.
    pub recovered: bool,
}

impl Post {
    /// The date to show a reader: the published date, else when herald first saw it.
    pub fn display_date(&self) -> DateTime<Utc> {
        self.published_at.unwrap_or(self.first_seen_at)
    }
}

/// A post listed as related to another, with how related it is (0..1).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RelatedPost {
    pub id: PostId,
    pub title: String,
    pub url: Option<String>,
    pub score: f32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_id_prefers_guid_then_link_then_hash() {
        assert_eq!(
            StableId::for_entry(Some(" g1 "), Some("https://x/1"), "t", "c").as_str(),
            "g1"
        );
        assert_eq!(
            StableId::for_entry(Some(""), Some("https://x/1"), "t", "c").as_str(),
            "https://x/1"
        );
        let hashed = StableId::for_entry(None, None, "title", "content");
        assert!(hashed.as_str().starts_with("sha256:"));
        assert_eq!(hashed, StableId::for_entry(None, None, "title", "content"));
        assert_ne!(
            hashed,
            StableId::for_entry(None, None, "title", "other content")
        );
        // the separator keeps "ab"+"c" apart from "a"+"bc"
        assert_ne!(
            StableId::for_entry(None, None, "ab", "c"),
            StableId::for_entry(None, None, "a", "bc")
        );
    }

    #[test]
    fn content_hash_changes_when_a_reader_visible_field_changes() {
        let post = NewPost {
            stable_id: StableId::for_entry(Some("1"), None, "", ""),
            url: Some("https://x/1".into()),
            title: "A".into(),
            author: None,
            tags: vec!["t".into()],
            published_at: None,
            html: "<p>a</p>".into(),
            text: "a".into(),
            image: None,
            feed_summary: None,
            uncapped_hash: None,
            recovered: false,
        };
        let mut edited = post.clone();
        edited.html = "<p>b</p>".into();
        assert_ne!(post.content_hash(), edited.content_hash());
        let mut retagged = post.clone();
        retagged.tags.push("u".into());
        assert_ne!(post.content_hash(), retagged.content_hash());
        assert_eq!(post.content_hash(), post.clone().content_hash());
    }
}
