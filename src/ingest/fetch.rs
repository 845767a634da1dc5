//! Getting a source's bytes, politely and within limits.
//!
//! HTTP sources: one shared reqwest client (rustls, gzip/brotli, a User-Agent naming herald,
//! at most `max_redirects` redirects), a per-source timeout covering the whole exchange,
//! conditional GET from the remembered ETag / Last-Modified, and a body cap enforced while
//! streaming (the decompressed size counts, so a gzip bomb stops at the cap). File sources
//! are read from disk, with the file's modification time standing in for Last-Modified.
//! Nothing here parses or stores.

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use reqwest::header::{self, HeaderMap};
use tracing::debug;

use super::Error;
use crate::config::{SourceConfig, SourceLocation};
use crate::domain::SourceState;

/// `herald/<version>`, sent with every request so publishers can tell who is polling.
pub const USER_AGENT: &str = concat!(
    "herald/",
    env!("CARGO_PKG_VERSION"),
    " (+feed-to-digest daemon)"
);

const ACCEPT: &str = "application/rss+xml, application/atom+xml, application/feed+json, \
    application/json;q=0.9, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.8";

/// What the source told us about when to come back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheHints {
    /// `Cache-Control: max-age`.
    pub max_age: Option<Duration>,
}

/// The result of one fetch.
#[derive(Debug)]
pub enum Fetched {
    /// 304, or a file that has not changed since the last poll.
    NotModified { hints: CacheHints },
    Body {
        bytes: Vec<u8>,
        /// Where the bytes really came from (after redirects); the base for relative links.
        url: Option<String>,
        content_type: Option<String>,
        etag: Option<String>,
        last_modified: Option<String>,
        hints: CacheHints,
    },
}

/// Fetches sources; cheap to clone, one per process.
#[derive(Debug, Clone)]
pub struct Fetcher {
    client: reqwest::Client,
}

impl Fetcher {
    pub fn new(max_redirects: usize) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .redirect(reqwest::redirect::Policy::limited(max_redirects))
            .connect_timeout(Duration::from_secs(10))
            .gzip(true)
            .brotli(true)
            .build()?;
        Ok(Self { client })
    }

    /// The HTTP client, for other outgoing requests (WebSub pings).
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Fetches one source, conditionally when `state` remembers validators.
    #[tracing::instrument(skip_all, fields(source = %source.name))]
    pub async fn fetch(
        &self,
        source: &SourceConfig,
        state: &SourceState,
        now: DateTime<Utc>,
    ) -> Result<Fetched, Error> {
        match &source.location {
            SourceLocation::Http(url) => self.fetch_http(source, url, state, now).await,
            SourceLocation::File(path) => fetch_file(source, path, state).await,
        }
    }

    async fn fetch_http(
        &self,
        source: &SourceConfig,
        url: &url::Url,
        state: &SourceState,
        now: DateTime<Utc>,
    ) -> Result<Fetched, Error> {
        let network = |e: reqwest::Error| classify(source, url.as_str(), e);
        let mut request = self
            .client
            .get(url.clone())
            .timeout(source.timeout)
            .header(header::ACCEPT, ACCEPT);
        if let Some(etag) = &state.etag {
            request = request.header(header::IF_NONE_MATCH, etag);
        }
        if let Some(last_modified) = &state.last_modified {
            request = request.header(header::IF_MODIFIED_SINCE, last_modified);
        }
        let response = request.send().await.map_err(network)?;
        let status = response.status();
        let headers = response.headers().clone();
        let hints = CacheHints {
            max_age: max_age(&headers),
        };
        debug!(status = status.as_u16(), "response");
        if status == reqwest::StatusCode::NOT_MODIFIED {
            return Ok(Fetched::NotModified { hints });
        }
        if !status.is_success() {
            return Err(Error::Status {
                source_name: source.name.clone(),
                url: url.to_string(),
                status: status.as_u16(),
                retry_after: retry_after(&headers, now),
            });
        }
        let too_large = || Error::TooLarge {
            source_name: source.name.clone(),
            location: url.to_string(),
            limit: source.max_body,
        };
        // A declared length over the cap fails before reading anything (when the body is
        // compressed, the header gives the compressed size, so this is only a shortcut).
        if response
            .content_length()
            .is_some_and(|len| len > source.max_body)
            && !is_compressed(&headers)
        {
            return Err(too_large());
        }
        let final_url = response.url().to_string();
        let mut bytes = Vec::new();
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(network)?;
            if bytes.len() as u64 + chunk.len() as u64 > source.max_body {
                return Err(too_large());
            }
            bytes.extend_from_slice(&chunk);
        }
        let text_header = |name: header::HeaderName| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
                .filter(|v| !v.is_empty())
        };
        Ok(Fetched::Body {
            bytes,
            url: Some(final_url),
            content_type: text_header(header::CONTENT_TYPE),
            etag: text_header(header::ETAG),
            last_modified: text_header(header::LAST_MODIFIED),
            hints,
        })
    }
}

async fn fetch_file(
    source: &SourceConfig,
    path: &std::path::Path,
    state: &SourceState,
) -> Result<Fetched, Error> {
    let io_error = |e: std::io::Error| Error::File {
        source_name: source.name.clone(),
        path: path.display().to_string(),
        source: e,
    };
    let meta = tokio::fs::metadata(path).await.map_err(io_error)?;
    if meta.len() > source.max_body {
        return Err(Error::TooLarge {
            source_name: source.name.clone(),
            location: path.display().to_string(),
            limit: source.max_body,
        });
    }
    // The modification time (and size) play the part of Last-Modified for files.
    let stamp = meta.modified().ok().map(|m| {
        let at: DateTime<Utc> = m.into();
        format!(
            "{} {}",
            at.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            meta.len()
        )
    });
    if stamp.is_some() && stamp == state.last_modified {
        return Ok(Fetched::NotModified {
            hints: CacheHints::default(),
        });
    }
    let bytes = tokio::fs::read(path).await.map_err(io_error)?;
    Ok(Fetched::Body {
        bytes,
        url: None,
        content_type: None,
        etag: None,
        last_modified: stamp,
        hints: CacheHints::default(),
    })
}

fn classify(source: &SourceConfig, url: &str, e: reqwest::Error) -> Error {
    if e.is_timeout() {
        return Error::Timeout {
            source_name: source.name.clone(),
            url: url.to_owned(),
            timeout: source.timeout,
        };
    }
    let message = if e.is_redirect() {
        "too many redirects".to_owned()
    } else {
        error_chain(&e)
    };
    Error::Network {
        source_name: source.name.clone(),
        url: url.to_owned(),
        message,
    }
}

/// The error and its causes on one line, without repeats.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = vec![e.to_string()];
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cause = c.source();
    }
    parts.join(": ")
}

fn is_compressed(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_ENCODING)
        .is_some_and(|v| v.as_bytes() != b"identity")
}

/// `Cache-Control: max-age=N`, unless the response also says not to cache.
fn max_age(headers: &HeaderMap) -> Option<Duration> {
    let value = headers
        .get(header::CACHE_CONTROL)?
        .to_str()
        .ok()?
        .to_ascii_lowercase();
    let directives: Vec<&str> = value.split(',').map(str::trim).collect();
    if directives
        .iter()
        .any(|d| *d == "no-cache" || *d == "no-store")
    {
        return None;
    }
    directives
        .iter()
        .find_map(|d| d.strip_prefix("max-age="))
        .and_then(|n| n.trim_matches('"').parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// `Retry-After` as delay-seconds or an HTTP date (RFC 9110 §10.2.3).
fn retry_after(headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let value = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = DateTime::parse_from_rfc2822(value)
        .ok()?
        .with_timezone(&Utc);
    (at - now).to_std().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(name: header::HeaderName, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn reads_max_age_unless_no_cache() {
        assert_eq!(
            max_age(&headers(header::CACHE_CONTROL, "public, max-age=600")),
            Some(Duration::from_secs(600))
        );
        assert_eq!(
            max_age(&headers(header::CACHE_CONTROL, "no-cache, max-age=600")),
            None
        );
        assert_eq!(max_age(&HeaderMap::new()), None);
    }

    #[test]
    fn reads_retry_after_seconds_and_dates() {
        let now = DateTime::parse_from_rfc3339("2026-11-28T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            retry_after(&headers(header::RETRY_AFTER, "120"), now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            retry_after(
                &headers(header::RETRY_AFTER, "Sat, 28 Nov 2026 11:00:00 GMT"),
                now
            ),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(
            retry_after(&headers(header::RETRY_AFTER, "soon"), now),
            None
        );
    }
}
