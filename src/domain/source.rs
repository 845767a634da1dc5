use chrono::{DateTime, Utc};
use serde::Serialize;

/// The store's key for a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct SourceId(pub i64);

/// What herald remembers about a source between polls (miniflux-style feed state).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SourceState {
    /// `ETag` of the last stored response, sent back as `If-None-Match`.
    pub etag: Option<String>,
    /// `Last-Modified` of the last stored response, sent back as `If-Modified-Since`.
    pub last_modified: Option<String>,
    pub last_checked_at: Option<DateTime<Utc>>,
    /// Not before this instant (Retry-After, Cache-Control max-age, failure backoff).
    pub next_check_at: Option<DateTime<Utc>>,
    pub consecutive_failures: u32,
    pub last_error: Option<String>,
}

/// What the feed says about itself.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FeedMeta {
    pub title: Option<String>,
    /// The site the feed belongs to (its alternate link).
    pub site_url: Option<String>,
}
