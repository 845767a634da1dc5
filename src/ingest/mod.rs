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
//! | decode | [`decode`] | the encoding decided once (BOM, HTTP, declaration, sniff), UTF-8 out |
//! | parse | [`parse`] | feed-rs for what it reads, JSON Feed field by field, HTML pages recognised |
//! | recover | [`recover`] | every complete entry of a malformed or variant document |
//! | normalize | [`normalize`] | stable ids, sanitized HTML with absolute URLs, plain text, lead image |

pub mod decode;
pub mod fetch;
pub mod html;
pub mod normalize;
pub mod parse;
pub mod recover;
#[doc(hidden)]
pub mod testing;

use std::time::Duration;

pub use fetch::{Fetched, Fetcher};
pub use normalize::Normalizer;
pub use parse::{Parsed, ParsedFeed, parse_feed, read_feed};

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

    /// What the operator can do about it.
    pub fn fix(&self) -> &'static str {
        match self {
            Error::Status {
                status: 404 | 410, ..
            } => {
                "the feed is not at that address any more: find its new URL (the site's <link rel=\"alternate\">) and update `url`"
            }
            Error::Status {
                status: 401 | 403, ..
            } => {
                "the server refuses herald: check the URL, or ask the site whether it blocks feed readers"
            }
            Error::Status { status, .. } if *status >= 500 || *status == 429 || *status == 408 => {
                "the server is busy or failing; herald tries again later, waiting longer each time"
            }
            Error::Status { .. } => "check the URL in the config",
            Error::Timeout { .. } => {
                "herald tries again later; raise [ingest] timeout if this server is always slow"
            }
            Error::Network { .. } => {
                "check the host name and that this machine can reach it; herald tries again later"
            }
            Error::TooLarge { .. } => "raise [ingest] max_body if the feed really is that big",
            Error::File { .. } => "check the path in the config and that herald may read it",
            Error::NotAFeed { .. } => {
                "check that the source points at the feed itself; herald tries again at the next poll"
            }
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
