//! Shared test harness: a real HTTP feed server on 127.0.0.1:0, a temp dir with a config
//! and a real SQLite file, and a way to run the real `herald` binary against them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use herald::clock::FixedClock;
use herald::config;
use herald::pipeline::Herald;

/// The directory holding fixture feeds.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixtures().join("feeds").join(name)).expect("fixture exists")
}

/// What the feed server serves and what it saw.
#[derive(Default)]
pub struct ServerState {
    pub body: Mutex<Vec<u8>>,
    pub content_type: Mutex<String>,
    /// Requests to /feed.xml, by answer.
    pub full_answers: AtomicUsize,
    pub not_modified_answers: AtomicUsize,
    pub last_user_agent: Mutex<Option<String>>,
}

impl ServerState {
    pub fn set_body(&self, body: impl Into<Vec<u8>>) {
        *self.body.lock().unwrap() = body.into();
    }
}

/// A real HTTP server on loopback serving feeds and misbehaving on request.
///
/// | path | behaviour |
/// | --- | --- |
/// | `/feed.xml` | the current body, with ETag and Last-Modified; 304 on a matching validator |
/// | `/plain.xml` | the current body with no validators at all |
/// | `/dated.xml` | the current body with Last-Modified only (no ETag); 304 on a matching If-Modified-Since |
/// | `/gzip.xml` | the current body gzip-encoded |
/// | `/redirect/{n}` | `n` redirects, then `/feed.xml` |
/// | `/status/{code}` | an empty answer with that status |
/// | `/retry-after` | 503 with `Retry-After: 120` |
/// | `/never` | accepts the request and never answers |
/// | `/huge` | an endless stream of bytes, no Content-Length |
/// | `/page.html` | an HTML page advertising a feed |
pub struct FeedServer {
    pub addr: SocketAddr,
    pub state: Arc<ServerState>,
}

impl FeedServer {
    pub async fn start(body: impl Into<Vec<u8>>) -> Self {
        let state = Arc::new(ServerState::default());
        state.set_body(body);
        *state.content_type.lock().unwrap() = "application/rss+xml; charset=utf-8".into();
        let app = Router::new()
            .route("/feed.xml", get(feed))
            .route("/plain.xml", get(plain))
            .route("/dated.xml", get(dated))
            .route("/gzip.xml", get(gzip))
            .route("/redirect/{n}", get(redirect))
            .route("/status/{code}", get(status))
            .route("/retry-after", get(retry_after))
            .route("/never", get(never))
            .route("/huge", get(huge))
            .route("/page.html", get(page))
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        tokio::spawn(async move {
            axum::serve(listener, app).await.expect("serve");
        });
        Self { addr, state }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
}

/// ETag and Last-Modified are derived from the body, so a changed body changes both.
fn validators(body: &[u8]) -> (String, String) {
    let sum: u64 = body.iter().fold(1469598103934665603u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(1099511628211)
    });
    let modified = DateTime::<Utc>::from_timestamp(1_700_000_000 + (sum % 1_000_000) as i64, 0)
        .expect("valid");
    (
        format!("\"{sum:x}\""),
        modified.format("%a, %d %b %Y %H:%M:%S GMT").to_string(),
    )
}

async fn feed(State(state): State<Arc<ServerState>>, headers: HeaderMap) -> Response {
    *state.last_user_agent.lock().unwrap() = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = state.body.lock().unwrap().clone();
    let (etag, last_modified) = validators(&body);
    let etag_matches = headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes());
    let date_matches = headers.get(header::IF_NONE_MATCH).is_none()
        && headers
            .get(header::IF_MODIFIED_SINCE)
            .is_some_and(|v| v.as_bytes() == last_modified.as_bytes());
    if etag_matches || date_matches {
        state.not_modified_answers.fetch_add(1, Ordering::SeqCst);
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response();
    }
    state.full_answers.fetch_add(1, Ordering::SeqCst);
    let content_type = state.content_type.lock().unwrap().clone();
    (
        [
            (header::ETAG, etag),
            (header::LAST_MODIFIED, last_modified),
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "max-age=60".into()),
        ],
        body,
    )
        .into_response()
}

async fn dated(State(state): State<Arc<ServerState>>, headers: HeaderMap) -> Response {
    let body = state.body.lock().unwrap().clone();
    let (_, last_modified) = validators(&body);
    if headers
        .get(header::IF_MODIFIED_SINCE)
        .is_some_and(|v| v.as_bytes() == last_modified.as_bytes())
    {
        state.not_modified_answers.fetch_add(1, Ordering::SeqCst);
        return StatusCode::NOT_MODIFIED.into_response();
    }
    state.full_answers.fetch_add(1, Ordering::SeqCst);
    (
        [
            (header::LAST_MODIFIED, last_modified),
            (header::CONTENT_TYPE, "application/atom+xml".to_owned()),
        ],
        body,
    )
        .into_response()
}

async fn plain(State(state): State<Arc<ServerState>>) -> Response {
    let body = state.body.lock().unwrap().clone();
    ([(header::CONTENT_TYPE, "application/xml")], body).into_response()
}

async fn gzip(State(state): State<Arc<ServerState>>) -> Response {
    use std::io::Write;
    let body = state.body.lock().unwrap().clone();
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(&body).expect("gzip");
    let compressed = encoder.finish().expect("gzip");
    (
        [
            (header::CONTENT_TYPE, "application/rss+xml"),
            (header::CONTENT_ENCODING, "gzip"),
        ],
        compressed,
    )
        .into_response()
}

async fn redirect(UrlPath(n): UrlPath<u32>) -> Response {
    let next = if n <= 1 {
        "/feed.xml".to_owned()
    } else {
        format!("/redirect/{}", n - 1)
    };
    (StatusCode::FOUND, [(header::LOCATION, next)]).into_response()
}

async fn status(UrlPath(code): UrlPath<u16>) -> Response {
    StatusCode::from_u16(code)
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
        .into_response()
}

async fn retry_after() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, HeaderValue::from_static("120"))],
    )
        .into_response()
}

async fn never() -> Response {
    tokio::time::sleep(Duration::from_secs(3600)).await;
    StatusCode::OK.into_response()
}

async fn huge() -> Response {
    let chunk = bytes_of(64 * 1024);
    let stream = futures_util::stream::repeat_with(move || Ok::<_, std::io::Error>(chunk.clone()));
    (
        [(header::CONTENT_TYPE, "application/rss+xml")],
        Body::from_stream(stream),
    )
        .into_response()
}

fn bytes_of(n: usize) -> Vec<u8> {
    let mut v = b"<rss version=\"2.0\"><channel><title>x</title>".to_vec();
    v.resize(n, b' ');
    v
}

async fn page() -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        fixture("not-a-feed.html"),
    )
        .into_response()
}

/// A real HTTP server on loopback serving many feeds: `/{name}` answers the body and
/// Content-Type set for that name, anything else 404.
pub struct CorpusServer {
    pub addr: SocketAddr,
    files: CorpusFiles,
}

impl CorpusServer {
    pub async fn start() -> Self {
        let files: CorpusFiles = Arc::default();
        let app = Router::new()
            .route("/{name}", get(corpus_file))
            .with_state(Arc::clone(&files));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        tokio::spawn(async move {
            axum::serve(listener, app).await.expect("serve");
        });
        Self { addr, files }
    }

    /// Serves `body` at `/{name}` with that Content-Type; returns its URL.
    pub fn put(&self, name: &str, body: impl Into<Vec<u8>>, content_type: &str) -> String {
        self.files
            .lock()
            .unwrap()
            .insert(name.to_owned(), (body.into(), content_type.to_owned()));
        format!("http://{}/{name}", self.addr)
    }
}

type CorpusFiles = Arc<Mutex<std::collections::HashMap<String, (Vec<u8>, String)>>>;

async fn corpus_file(State(files): State<CorpusFiles>, UrlPath(name): UrlPath<String>) -> Response {
    match files.lock().unwrap().get(&name) {
        Some((body, content_type)) => {
            ([(header::CONTENT_TYPE, content_type.clone())], body.clone()).into_response()
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// A temp dir holding a config file and (once opened) a real SQLite database.
pub struct TestEnv {
    pub dir: tempfile::TempDir,
}

impl TestEnv {
    /// A config with the given `[[sources]]` (and anything else) appended to a minimal site.
    pub fn new(extra: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let text = format!(
            "[site]\ntitle = \"Test Site\"\nbase_url = \"http://localhost:8080/\"\n\n\
             [store]\nurl = \"sqlite://data/herald.db\"\n\n\
             [ingest]\ntimeout = \"2s\"\n\n{extra}"
        );
        std::fs::write(dir.path().join("herald.toml"), text).expect("write config");
        Self { dir }
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("herald.toml")
    }

    /// The validated config, with relative paths made absolute inside the temp dir (as
    /// the binary, run in the temp dir, would see them).
    pub fn config(&self) -> config::Config {
        let mut config = config::load(&self.config_path()).expect("valid test config");
        if let config::StoreUrl::Sqlite(path) = &config.store.url {
            config.store.url = config::StoreUrl::Sqlite(self.dir.path().join(path));
        }
        let rebase = |p: &std::path::Path| {
            if p.is_relative() {
                self.dir.path().join(p)
            } else {
                p.to_path_buf()
            }
        };
        config.feed.out_dir = rebase(&config.feed.out_dir);
        config.templates.dir = rebase(&config.templates.dir);
        if let config::SmtpTransport::Folder(dir) = &config.smtp.transport {
            config.smtp.transport = config::SmtpTransport::Folder(rebase(dir));
        }
        for source in &mut config.sources {
            if let config::SourceLocation::File(path) = &source.location
                && path.is_relative()
            {
                source.location = config::SourceLocation::File(self.dir.path().join(path));
            }
        }
        config
    }

    /// Opens herald in-process on this env with a fixed clock.
    pub async fn herald(&self, clock: &FixedClock) -> Herald {
        Herald::open(self.config(), Arc::new(clock.clone()))
            .await
            .expect("open herald")
    }

    /// Runs the real binary in the temp dir; returns (exit code, stdout, stderr).
    pub async fn run(&self, args: &[&str]) -> (i32, String, String) {
        self.run_with_env(args, &[]).await
    }

    /// [`Self::run`] with extra environment variables.
    pub async fn run_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_herald"))
            .arg("--config")
            .arg(self.config_path())
            .args(args)
            .current_dir(self.dir.path())
            .env("HERALD_LOG", "warn")
            .envs(env.iter().copied())
            .output()
            .await
            .expect("run herald");
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }
}

/// A clock at a fixed, realistic instant.
pub fn clock() -> FixedClock {
    FixedClock::new(
        DateTime::parse_from_rfc3339("2026-11-28T09:00:00Z")
            .expect("valid")
            .with_timezone(&Utc),
    )
}

/// A `[[sources]]` entry.
pub fn source(name: &str, url: &str) -> String {
    format!("[[sources]]\nname = \"{name}\"\nurl = \"{url}\"\n\n")
}

/// A client for herald's real server: redirects not followed, forms and JSON posted,
/// and the site's own URLs (as mailed) pointed at the test server.
pub struct Browser {
    pub client: reqwest::Client,
    /// `http://127.0.0.1:PORT/`
    pub base: String,
}

impl Browser {
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("a client"),
            base: format!("http://{addr}/"),
        }
    }

    /// A GET.
    pub async fn get(&self, url: impl reqwest::IntoUrl) -> reqwest::Response {
        self.client
            .get(url)
            .send()
            .await
            .expect("the server answers")
    }

    /// A POST with no body.
    pub async fn post(&self, url: impl reqwest::IntoUrl) -> reqwest::Response {
        self.client
            .post(url)
            .send()
            .await
            .expect("the server answers")
    }

    /// A GET's body.
    pub async fn get_text(&self, url: impl reqwest::IntoUrl) -> String {
        self.get(url).await.text().await.expect("a text body")
    }

    /// A POST of a form body.
    pub async fn post_form(&self, url: &str, body: &str) -> reqwest::Response {
        self.client
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.to_owned())
            .send()
            .await
            .expect("the server answers")
    }

    /// A POST of a JSON body.
    pub async fn post_json(&self, url: &str, value: serde_json::Value) -> reqwest::Response {
        self.client
            .post(url)
            .header("content-type", "application/json")
            .body(value.to_string())
            .send()
            .await
            .expect("the server answers")
    }

    /// A URL in an email (on the configured site) made to point at the test server.
    pub fn local(&self, url: &str) -> String {
        url.replace("http://localhost:8080/", &self.base)
    }
}

/// A pool on a test's SQLite file, to set rows as an older herald (or a hand edit)
/// could have left them.
pub async fn raw_db(env: &TestEnv) -> sqlx::SqlitePool {
    let path = env.dir.path().join("data/herald.db");
    sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("open the test database")
}

/// Everything running: a feed server, an SMTP server, herald in process (fixed clock,
/// given secrets, the feed polled, enriched and written) and its HTTP server on port 0.
pub struct Site {
    pub feed: FeedServer,
    pub sink: crate::smtp_sink::SmtpSink,
    pub clock: FixedClock,
    pub herald: Herald,
    pub state: herald::http::AppState,
    pub addr: SocketAddr,
    pub browser: Browser,
    pub env: TestEnv,
}

impl std::ops::Deref for Site {
    type Target = Browser;
    fn deref(&self) -> &Browser {
        &self.browser
    }
}

impl Site {
    /// `config` makes the config text from the feed's URL and the SMTP server's.
    pub async fn start(
        config: impl FnOnce(&str, &str) -> String,
        secrets: config::Secrets,
        metrics_token: Option<&str>,
    ) -> Self {
        let feed = FeedServer::start(fixture("rss20-media.xml")).await;
        let sink = crate::smtp_sink::SmtpSink::start().await;
        let env = TestEnv::new(&config(&feed.url("/feed.xml"), &sink.url()));
        let clock = clock();
        let herald = Herald::open_with(env.config(), Arc::new(clock.clone()), secrets)
            .await
            .expect("open herald");
        herald.poll_sources(None).await.expect("poll");
        herald
            .enrich(herald::pipeline::EnrichScope::Stale)
            .await
            .expect("enrich");
        herald.write_feeds(None).await.expect("write feeds");
        let state = herald::http::AppState::with_metrics_token(
            herald.clone(),
            metrics_token.map(str::to_owned),
        )
        .expect("the page templates");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        tokio::spawn(herald::http::serve(
            listener,
            state.clone(),
            std::future::pending(),
        ));
        Self {
            feed,
            sink,
            clock,
            herald,
            state,
            addr,
            browser: Browser::new(addr),
            env,
        }
    }

    /// A subscriber as stored.
    pub async fn subscriber(
        &self,
        email: &herald::domain::SubscriberEmail,
    ) -> herald::domain::Subscriber {
        self.herald
            .store
            .subscriber_by_email(email)
            .await
            .expect("the store answers")
            .expect("the subscriber exists")
    }
}
