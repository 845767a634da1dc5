//! Reading sources: fetch the bytes, parse them as a feed, normalize each entry into a
//! [`NewPost`](crate::domain::NewPost).
//!
//! In: a [`SourceConfig`](crate::config::SourceConfig) and the state remembered from the
//! last poll (ETag, Last-Modified). Out: either "unchanged" or the feed's posts, ready to
//! store, plus cache hints for the next poll. This module never touches the store: the
//! pipeline stores posts and the new conditional-GET state in one transaction, so an ETag
//! is never remembered for posts that were not stored.
//!
//! | step | file | what it guarantees |
//! | --- | --- | --- |
//! | fetch | [`fetch`] | timeout, body cap read as a stream, ≤ N redirects, gzip/brotli, conditional GET |
//! | parse | [`parse`] | raw bytes to feed-rs (encodings from the XML prolog), HTML pages recognised |
//! | normalize | [`normalize`] | stable ids, sanitized HTML with absolute URLs, plain text, lead image |

pub mod fetch;
pub mod html;
pub mod normalize;
pub mod parse;

use std::time::Duration;

pub use fetch::{Fetched, Fetcher};
pub use normalize::Normalizer;
pub use parse::{ParsedFeed, parse_feed};

/// Why one source could not be read. Every variant names the source.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("source \"{source_name}\": {url} answered HTTP {status}")]
    Status {
        source_name: String,
        url: String,
        status: u16,
        retry_after: Option<Duration>,
    },
    #[error("source \"{source_name}\": {url} did not answer within {}s", timeout.as_secs())]
    Timeout {
        source_name: String,
        url: String,
        timeout: Duration,
    },
    #[error("source \"{source_name}\": cannot fetch {url}: {message}")]
    Network {
        source_name: String,
        url: String,
        message: String,
    },
    #[error(
        "source \"{source_name}\": {location} is larger than the {limit}-byte limit (max_body)"
    )]
    TooLarge {
        source_name: String,
        location: String,
        limit: u64,
    },
    #[error("source \"{source_name}\": cannot read {path}: {source}")]
    File {
        source_name: String,
        path: String,
        source: std::io::Error,
    },
    #[error("source \"{source_name}\": {location} is not a feed: {reason}")]
    NotAFeed {
        source_name: String,
        location: String,
        reason: String,
    },
}

impl Error {
    /// Whether trying again later may succeed (network trouble, 5xx, 429), as opposed to a
    /// problem an operator has to fix (404, not a feed, too large).
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Status { status, .. } => *status >= 500 || *status == 429 || *status == 408,
            Error::Timeout { .. } | Error::Network { .. } => true,
            Error::TooLarge { .. } | Error::File { .. } | Error::NotAFeed { .. } => false,
        }
    }

    /// How long the server asked us to wait (`Retry-After`), if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}
