//! The web side of `herald serve` (axum): the outgoing feeds with conditional GET, a
//! landing page with a subscribe form, double opt-in, one-click unsubscribe (RFC 8058),
//! the "view online" archive, health and metrics.
//!
//! | route | what |
//! | --- | --- |
//! | `GET /feed.xml`, `/atom.xml`, `/feed.json` | the feeds from memory, strong ETag, Last-Modified, 304, Cache-Control, Link self/hub |
//! | `GET /` | landing page (templates/pages/index.html.hbs) |
//! | `POST /subscribe` | form or JSON; same answer whether or not the address is known; rate-limited per client (429 with Retry-After) |
//! | `GET`/`POST /confirm/{token}` | a page with a button / applies the sign-up it confirms, once, before it expires |
//! | `GET`/`POST /unsubscribe/{token}` | a page with a button / the one-click unsubscribe itself (RFC 8058 body required) |
//! | `GET /archive` | every issue that went out, newest first, 20 a page (`?page=N`); `GET /archive.xml` the same as Atom |
//! | `GET /archive/{issue}` | an issue as sent, without anyone's personal data; rendered once, ETag |
//! | `POST /webhooks/events` | bounces and complaints from Mailgun (HMAC signature, replay window) or Postmark (basic auth); refused unless its secret is set |
//! | `GET /healthz` | liveness (the store answers) |
//! | `GET /metrics` | Prometheus text: with `HERALD_METRICS_TOKEN` a bearer token, with `http.metrics_listen` only there, else loopback clients only |
//!
//! Every route has a body limit (16 KiB; 1 MiB for the webhook; 413 at once when Content-Length says more) and
//! a timeout (10 s); connections have header-read and idle timeouts and a cap
//! ([`server`]). Every answer says `nosniff` and `Referrer-Policy: no-referrer` (links
//! carry tokens); pages add a CSP that allows no script and no framing. This module never
//! ingests or sends digests; it asks the pipeline.

mod client;
mod pages;
pub mod server;
mod site;
mod subscribe;
mod webhooks;

pub use site::{Answer, Error, ProviderEvent, Site, WebhookSecrets};

use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

use client::RateLimiter;

/// Largest request body accepted.
pub const BODY_LIMIT: usize = 16 * 1024;

/// Largest body `POST /webhooks/events` reads (a provider's event with the bounced
/// message's headers and content).
pub const WEBHOOK_BODY_LIMIT: usize = 1024 * 1024;
/// Longest a request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything handlers share.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    site: Arc<dyn Site>,
    feeds: RwLock<FeedCache>,
    limiter: Mutex<RateLimiter>,
    archive: Mutex<pages::ArchiveCache>,
    /// `HERALD_METRICS_TOKEN`.
    metrics_token: Option<String>,
    /// `Content-Security-Policy` of every page.
    csp: HeaderValue,
}

/// One feed as served: bytes and validators, computed when the file changes.
#[derive(Clone)]
struct CachedFeed {
    body: axum::body::Bytes,
    etag: String,
    /// The same feed gzip-compressed once, for readers that accept it, with its own ETag
    /// (a different representation, RFC 9110 §8.8.3).
    gzip: Option<(axum::body::Bytes, String)>,
    last_modified: String,
    modified: DateTime<Utc>,
    /// File size and mtime it was read with (to skip unchanged files on reload).
    stamp: (u64, std::time::SystemTime),
}

#[derive(Default)]
struct FeedCache {
    rss: Option<CachedFeed>,
    atom: Option<CachedFeed>,
    json: Option<CachedFeed>,
}

impl AppState {
    /// Loads page templates and the current feed files.
    pub fn new(site: impl Site) -> Result<Self, crate::render::Error> {
        Self::with_metrics_token(site, crate::config::Secrets::from_env().metrics_token)
    }

    /// [`AppState::new`] with the metrics token given (`None`: none required).
    pub fn with_metrics_token(
        site: impl Site,
        metrics_token: Option<String>,
    ) -> Result<Self, crate::render::Error> {
        let origin = site.config().site.base_url.origin().ascii_serialization();
        let csp = HeaderValue::from_str(&format!(
            "default-src 'none'; style-src 'unsafe-inline'; img-src https: http: data:; form-action 'self' {origin}; frame-ancestors 'none'; base-uri 'none'"
        ))
        .unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; img-src https: http: data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"));
        let state = Self {
            inner: Arc::new(Inner {
                site: Arc::new(site),
                feeds: RwLock::new(FeedCache::default()),
                limiter: Mutex::new(RateLimiter::default()),
                archive: Mutex::new(pages::ArchiveCache::default()),
                metrics_token,
                csp,
            }),
        };
        state.reload_feeds();
        Ok(state)
    }

    /// Re-reads the feed files that changed since they were loaded.
    pub fn reload_feeds(&self) {
        let dir = &self.inner.site.config().feed.out_dir;
        let current = self
            .inner
            .feeds
            .read()
            .map(|f| (f.rss.clone(), f.atom.clone(), f.json.clone()))
            .ok();
        let (rss, atom, json) = current.unwrap_or_default();
        let cache = FeedCache {
            rss: load(dir, "feed.xml", rss),
            atom: load(dir, "atom.xml", atom),
            json: load(dir, "feed.json", json),
        };
        if let Ok(mut feeds) = self.inner.feeds.write() {
            *feeds = cache;
        }
    }

    /// Forgets the archive pages rendered so far (posts or their enrichment changed).
    pub fn content_changed(&self) {
        if let Ok(mut archive) = self.inner.archive.lock() {
            archive.clear();
        }
    }

    fn site(&self) -> &dyn Site {
        self.inner.site.as_ref()
    }

    fn config(&self) -> &crate::config::Config {
        self.inner.site.config()
    }
}

/// A feed file as served; `previous` is kept when the file has not changed.
fn load(dir: &Path, name: &str, previous: Option<CachedFeed>) -> Option<CachedFeed> {
    let path = dir.join(name);
    let meta = std::fs::metadata(&path).ok()?;
    let stamp = (meta.len(), meta.modified().ok()?);
    if let Some(previous) = previous.filter(|p| p.stamp == stamp) {
        return Some(previous);
    }
    let body = std::fs::read(&path).ok()?;
    let modified: DateTime<Utc> = stamp.1.into();
    let tag = crate::domain::hex(&Sha256::digest(&body)[..16]);
    Some(CachedFeed {
        etag: format!("\"{tag}\""),
        gzip: gzip(&body).map(|g| (g.into(), format!("\"{tag}-gz\""))),
        last_modified: http_date(modified),
        modified: modified.with_nanosecond0(),
        stamp,
        body: body.into(),
    })
}

/// The body gzip-compressed, when that saves something worth it.
fn gzip(body: &[u8]) -> Option<Vec<u8>> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 3),
        flate2::Compression::best(),
    );
    encoder.write_all(body).ok()?;
    let compressed = encoder.finish().ok()?;
    (compressed.len() < body.len() * 9 / 10).then_some(compressed)
}

/// Whether the request accepts a gzip-encoded response.
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',').any(|part| {
                let mut pieces = part.split(';').map(str::trim);
                let coding = pieces.next().unwrap_or("");
                let refused =
                    pieces.any(|p| p.replace(' ', "") == "q=0" || p.replace(' ', "") == "q=0.0");
                (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !refused
            })
        })
}

trait Truncate {
    fn with_nanosecond0(self) -> Self;
}

impl Truncate for DateTime<Utc> {
    fn with_nanosecond0(self) -> Self {
        DateTime::from_timestamp(self.timestamp(), 0).unwrap_or(self)
    }
}

/// An IMF-fixdate (RFC 9110 §5.6.7).
fn http_date(t: DateTime<Utc>) -> String {
    t.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

/// Compares two byte strings in time that depends only on their lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The router with every route, limit and timeout. `/metrics` is on it unless
/// `http.metrics_listen` moves it to [`metrics_router`].
pub fn router(state: AppState) -> Router {
    let mut router = Router::new()
        .route("/feed.xml", get(rss))
        .route("/atom.xml", get(atom))
        .route("/feed.json", get(json))
        .route("/", get(pages::index))
        .route("/subscribe", post(subscribe::subscribe))
        .route(
            "/confirm/{token}",
            get(subscribe::confirm_page).post(subscribe::confirm),
        )
        .route(
            "/unsubscribe/{token}",
            get(subscribe::unsubscribe_page).post(subscribe::unsubscribe),
        )
        .route("/archive", get(pages::archive_list))
        .route("/archive.xml", get(pages::archive_feed))
        .route("/archive/{issue}", get(pages::archive))
        .route("/healthz", get(pages::healthz));
    if state.config().http.metrics_listen.is_none() {
        router = router.route("/metrics", get(pages::metrics));
    }
    // A provider's event may carry the bounced message's content: a larger limit, for
    // this route alone.
    let webhooks = Router::new().route("/webhooks/events", post(webhooks::events));
    with_limits(router, state.clone(), BODY_LIMIT).merge(with_limits(
        webhooks,
        state,
        WEBHOOK_BODY_LIMIT,
    ))
}

/// Only `/metrics`, for `http.metrics_listen`.
pub fn metrics_router(state: AppState) -> Router {
    with_limits(
        Router::new().route("/metrics", get(pages::metrics)),
        state,
        BODY_LIMIT,
    )
}

fn with_limits(router: Router<AppState>, state: AppState, body_limit: usize) -> Router {
    router
        .layer(axum::middleware::map_response_with_state(
            state.clone(),
            security_headers,
        ))
        .layer(DefaultBodyLimit::max(body_limit))
        // Refuses a declared Content-Length over the limit before reading any of it.
        .layer(RequestBodyLimitLayer::new(body_limit))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .with_state(state)
}

/// Headers every answer carries, and the page policy for HTML.
async fn security_headers(State(state): State<AppState>, mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    let is_html = h
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("text/html"));
    if is_html {
        h.insert(header::CONTENT_SECURITY_POLICY, state.inner.csp.clone());
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    response
}

/// Serves until `shutdown` resolves, then stops accepting and finishes what is in flight.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = server::Limits {
        exempt: state.config().http.trusted_proxies.clone(),
        ..server::Limits::default()
    };
    server::serve(listener, router(state), limits, shutdown).await
}

#[derive(Clone, Copy)]
enum FeedKind {
    Rss,
    Atom,
    Json,
}

async fn rss(State(state): State<AppState>, headers: HeaderMap) -> Response {
    serve_feed(&state, FeedKind::Rss, &headers)
}

async fn atom(State(state): State<AppState>, headers: HeaderMap) -> Response {
    serve_feed(&state, FeedKind::Atom, &headers)
}

async fn json(State(state): State<AppState>, headers: HeaderMap) -> Response {
    serve_feed(&state, FeedKind::Json, &headers)
}

fn serve_feed(state: &AppState, kind: FeedKind, headers: &HeaderMap) -> Response {
    let feed_config = &state.config().feed;
    let (content_type, self_url) = match kind {
        FeedKind::Rss => ("application/rss+xml; charset=utf-8", &feed_config.rss_url),
        FeedKind::Atom => ("application/atom+xml; charset=utf-8", &feed_config.atom_url),
        FeedKind::Json => (
            "application/feed+json; charset=utf-8",
            &feed_config.json_url,
        ),
    };
    let cached = state.inner.feeds.read().ok().and_then(|feeds| match kind {
        FeedKind::Rss => feeds.rss.clone(),
        FeedKind::Atom => feeds.atom.clone(),
        FeedKind::Json => feeds.json.clone(),
    });
    let Some(feed) = cached else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "60")],
            "The feed has not been written yet.\n",
        )
            .into_response();
    };
    let mut link = format!("<{self_url}>; rel=\"self\"");
    if let Some(hub) = &feed_config.hub {
        link.push_str(&format!(", <{hub}>; rel=\"hub\""));
    }
    let gzipped = feed.gzip.as_ref().filter(|_| accepts_gzip(headers));
    let etag = gzipped.map_or(&feed.etag, |(_, tag)| tag);
    let mut response = if not_modified(headers, &feed) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let body = gzipped.map_or_else(|| feed.body.clone(), |(bytes, _)| bytes.clone());
        let mut r = Response::new(Body::from(body));
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        if gzipped.is_some() {
            r.headers_mut()
                .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        r
    };
    let h = response.headers_mut();
    let value = |s: &str| HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static(""));
    h.insert(header::ETAG, value(etag));
    h.insert(header::LAST_MODIFIED, value(&feed.last_modified));
    h.insert(
        header::CACHE_CONTROL,
        value(&format!("public, max-age={}", feed_config.ttl.as_secs())),
    );
    h.insert(header::LINK, value(&link));
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    response
}

/// RFC 9110 §13.1: If-None-Match wins; If-Modified-Since counts only without it. Either
/// encoding's ETag matches: both are the same content.
fn not_modified(headers: &HeaderMap, feed: &CachedFeed) -> bool {
    if let Some(inm) = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
    {
        return inm.split(',').map(str::trim).any(|tag| {
            let tag = tag.trim_start_matches("W/");
            tag == "*" || tag == feed.etag || feed.gzip.as_ref().is_some_and(|(_, gz)| tag == gz)
        });
    }
    headers
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| DateTime::parse_from_rfc2822(s).ok())
        .is_some_and(|since| since.with_timezone(&Utc) >= feed.modified)
}

/// A plain HTML page from the message template (errors use it too, and say nothing more
/// than the heading and message given).
fn message_page(state: &AppState, status: StatusCode, heading: &str, message: &str) -> Response {
    let site = &state.config().site;
    let data = serde_json::json!({
        "site": { "title": site.title, "url": site.base_url.as_str(), "language": site.language },
        "heading": heading,
        "message": message,
    });
    match state
        .site()
        .page_templates()
        .render_page("page_message", &data)
    {
        Ok(html) => (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            html,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "the message page template failed");
            (status, format!("{heading}\n\n{message}\n")).into_response()
        }
    }
}
