//! herald's one TOML file, read into a validated [`Config`].
//!
//! Two layers, as in ripgrep's low/high args: [`reader`] walks the raw spanned TOML and
//! records every problem (`FILE:LINE: key.path: message`), this module turns what it read
//! into typed values (URLs, cron schedules, time zones, durations) and checks what spans
//! keys (duplicate names, references to unknown sources). [`load`] returns a `Config` only
//! when there is no problem at all, or every problem at once.
//!
//! Secrets never live here: the SMTP password and the signing secret come from the
//! environment (see [`Secrets`]), and a `password` key in the file is an error.
//! Relative paths (file sources, the SQLite file, output folders) are relative to the
//! working directory herald runs in.

pub mod reader;

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use chrono_tz::Tz;
use url::Url;

pub use reader::Problem;
use reader::{Located, Problems, TableReader};

/// Where `herald` looks for its config when neither `--config` nor `HERALD_CONFIG` is given.
pub const DEFAULT_PATH: &str = "config/herald.toml";

/// Why a config could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{}", ProblemList(.0))]
    Invalid(Vec<Problem>),
}

impl Error {
    /// Every problem found, for callers that want to print them one per line.
    pub fn problems(&self) -> &[Problem] {
        match self {
            Error::Invalid(list) => list,
            Error::Read { .. } => &[],
        }
    }
}

/// Display helper: one problem per line.
struct ProblemList<'a>(&'a [Problem]);

impl fmt::Display for ProblemList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from.
    pub file: PathBuf,
    pub site: SiteConfig,
    pub store: StoreConfig,
    pub ingest: IngestConfig,
    pub sources: Vec<SourceConfig>,
    pub enrich: EnrichConfig,
    pub feed: FeedConfig,
    pub smtp: SmtpConfig,
    pub digests: Vec<DigestConfig>,
    pub http: HttpConfig,
    pub templates: TemplatesConfig,
}

/// `[site]`: who is publishing.
#[derive(Debug, Clone)]
pub struct SiteConfig {
    pub title: String,
    /// Public base URL of herald's pages (always ends with `/`).
    pub base_url: Url,
    /// BCP 47 language tag of the site, e.g. `en`.
    pub language: String,
}

/// `[store]`: where posts, subscribers and the delivery ledger live.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub url: StoreUrl,
}

/// A parsed `store.url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// `sqlite://PATH` (relative to the working directory) or `sqlite:///abs/path`.
    Sqlite(PathBuf),
    /// `sqlite::memory:`, for tests.
    SqliteMemory,
}

/// `[ingest]`: defaults for fetching every source.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// How many sources are fetched at the same time.
    pub concurrency: usize,
    pub timeout: Duration,
    pub max_body: u64,
    pub max_redirects: usize,
    /// How often a source is polled when it says nothing about it.
    pub poll_interval: Duration,
}

/// One `[[sources]]` entry.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    pub name: String,
    pub location: SourceLocation,
    /// Display name; defaults to the feed's own title.
    pub title: Option<String>,
    pub poll_interval: Duration,
    pub timeout: Duration,
    pub max_body: u64,
    /// Base for relative URLs when the feed gives no absolute link of its own.
    pub base_url: Option<Url>,
    pub enabled: bool,
}

/// Where a source's feed is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceLocation {
    Http(Url),
    File(PathBuf),
}

impl fmt::Display for SourceLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceLocation::Http(url) => f.write_str(url.as_str()),
            SourceLocation::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// `[enrich]`: summaries and related posts.
#[derive(Debug, Clone)]
pub struct EnrichConfig {
    pub summary_words: usize,
    pub related_count: usize,
    /// Stemmer language, e.g. `english`.
    pub language: String,
    /// Whether older posts may list newer ones as related.
    pub include_newer: bool,
    /// Lowest similarity (0..1) for a post to count as related.
    pub min_score: f64,
}

/// `[feed]`: the outgoing RSS, Atom and JSON feeds.
#[derive(Debug, Clone)]
pub struct FeedConfig {
    pub out_dir: PathBuf,
    pub title: String,
    pub description: String,
    pub link: Url,
    pub rss_url: Url,
    pub atom_url: Url,
    pub json_url: Url,
    pub max_items: usize,
    /// Source names to include; empty means all.
    pub sources: Vec<String>,
    pub full_content: bool,
    pub language: String,
    pub ttl: Duration,
    pub hub: Option<Url>,
}

/// `[smtp]`: how digests leave.
#[derive(Debug, Clone)]
pub struct SmtpConfig {
    pub transport: SmtpTransport,
    pub username: Option<String>,
    /// The sender subscribers see.
    pub from: lettre::message::Mailbox,
    /// Where replies go, when not to `from`.
    pub reply_to: Option<lettre::message::Mailbox>,
    /// Envelope sender (`MAIL FROM`), where bounces go; defaults to the From address.
    pub bounce_address: Option<lettre::message::Mailbox>,
    pub max_connections: usize,
    /// Messages per second, across all connections.
    pub rate: f64,
    pub timeout: Duration,
    pub retry_attempts: u32,
    /// Largest message herald builds, in bytes; a relay's smaller `SIZE` wins.
    pub max_message_size: u64,
}

/// A parsed `smtp.url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SmtpTransport {
    /// `file://DIR`: a folder that gets one `.eml` per message; nothing leaves the machine.
    Folder(PathBuf),
    /// `smtp://host:port` (STARTTLS per `tls`) or `smtps://host:port` (implicit TLS).
    Smtp {
        host: String,
        port: u16,
        tls: SmtpTls,
    },
}

/// TLS on an SMTP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Implicit TLS from the first byte (`smtps://`, usually port 465).
    Implicit,
    /// STARTTLS, refuse to send without it.
    Required,
    /// STARTTLS when the server offers it.
    Opportunistic,
    /// Plain text (loopback relays and tests only).
    None,
}

/// One `[[digests]]` entry.
#[derive(Debug, Clone)]
pub struct DigestConfig {
    pub name: String,
    pub schedule: Schedule,
    pub timezone: Tz,
    pub subject: String,
    /// Source names to include; empty means all.
    pub sources: Vec<String>,
    pub max_posts: usize,
    pub skip_if_empty: bool,
    /// Template base name: `<template>.html.hbs` and `<template>.txt.hbs`.
    pub template: String,
}

/// A cron schedule (5 fields, or 6 with seconds first) that has been parsed.
#[derive(Clone)]
pub struct Schedule {
    pub pattern: String,
    pub cron: croner::Cron,
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Schedule({:?})", self.pattern)
    }
}

impl Schedule {
    pub fn parse(pattern: &str) -> Result<Self, String> {
        let fields = pattern.split_whitespace().count();
        if !pattern.trim_start().starts_with('@') && !(5..=6).contains(&fields) {
            return Err(format!(
                "\"{pattern}\" is not a cron schedule: expected 5 fields (minute hour day month weekday) or 6 with seconds first, found {fields}"
            ));
        }
        let parser = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Optional)
            .year(croner::parser::Year::Disallowed)
            .build();
        match parser.parse(pattern) {
            Ok(cron) => Ok(Self {
                pattern: pattern.to_owned(),
                cron,
            }),
            Err(e) => Err(format!("\"{pattern}\" is not a valid cron schedule: {e}")),
        }
    }
}

/// `[http]`: the server for feeds and subscription pages.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub listen: SocketAddr,
    /// How long a confirmation link works.
    pub confirm_ttl: Duration,
    /// Reverse proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// A separate address for `/metrics` (then the main listener does not serve it).
    pub metrics_listen: Option<SocketAddr>,
}

/// An IP network in CIDR notation (`10.0.0.0/8`, `::1/128`; a bare address is one host).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    pub addr: std::net::IpAddr,
    pub prefix: u8,
}

impl IpNet {
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "\"{s}\" is not an IP network (e.g. \"10.0.0.0/8\", \"127.0.0.1\", \"::1/128\")"
            )
        };
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let addr: std::net::IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?,
            None => max,
        };
        Ok(Self { addr, prefix })
    }

    /// Whether `ip` is inside this network (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr;
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// `[templates]`: where operator overrides of the built-in templates live.
#[derive(Debug, Clone)]
pub struct TemplatesConfig {
    pub dir: PathBuf,
}

/// Secrets, read from the environment only, never from the TOML file, and never printed.
#[derive(Clone, Default)]
pub struct Secrets {
    /// `HERALD_SMTP_PASSWORD`
    pub smtp_password: Option<String>,
    /// `HERALD_SECRET`: key for signing unsubscribe and confirm tokens.
    pub signing_secret: Option<String>,
    /// `HERALD_SECRET_PREVIOUS`: a secret herald signed with before, still accepted when
    /// checking links (so that mailed links survive a rotation), never used to sign.
    pub previous_secret: Option<String>,
    /// `HERALD_METRICS_TOKEN`: when set, `/metrics` wants `Authorization: Bearer <it>`.
    pub metrics_token: Option<String>,
}

/// A secret from the environment that herald refuses.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "{name} is refused: {reason}; {}",
    crate::domain::token::HOW_TO_GENERATE
)]
pub struct WeakSecret {
    pub name: &'static str,
    pub reason: String,
}

impl Secrets {
    pub fn from_env() -> Self {
        let read = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
        Self {
            smtp_password: read("HERALD_SMTP_PASSWORD"),
            signing_secret: read("HERALD_SECRET"),
            previous_secret: read("HERALD_SECRET_PREVIOUS"),
            metrics_token: read("HERALD_METRICS_TOKEN"),
        }
    }

    /// Refuses a signing secret anyone could guess (short, a documented example, hardly
    /// random) and a previous secret that is a documented example. Returns warnings for
    /// what is accepted but should change.
    pub fn check(&self) -> Result<Vec<String>, WeakSecret> {
        use crate::domain::token::{is_known_secret, weak_secret};
        let mut warnings = Vec::new();
        if let Some(secret) = &self.signing_secret
            && let Some(reason) = weak_secret(secret)
        {
            return Err(WeakSecret {
                name: "HERALD_SECRET",
                reason,
            });
        }
        if let Some(previous) = &self.previous_secret {
            if is_known_secret(previous) {
                return Err(WeakSecret {
                    name: "HERALD_SECRET_PREVIOUS",
                    reason: "it is a well-known example value, so anyone could sign links that herald would accept; remove it (links signed with it stop working)".into(),
                });
            }
            if self.signing_secret.is_none() {
                warnings.push("HERALD_SECRET_PREVIOUS is set without HERALD_SECRET: it is only used to check links, never to sign them".into());
            } else if weak_secret(previous).is_some() {
                warnings.push("HERALD_SECRET_PREVIOUS is weak: remove it once the mail signed with it has aged out".into());
            }
        }
        if let Some(token) = &self.metrics_token
            && token.chars().count() < 16
        {
            return Err(WeakSecret {
                name: "HERALD_METRICS_TOKEN",
                reason: format!(
                    "it is {} characters long; it must be at least 16",
                    token.chars().count()
                ),
            });
        }
        Ok(warnings)
    }
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = |s: &Option<String>| if s.is_some() { "<set>" } else { "<unset>" };
        f.debug_struct("Secrets")
            .field("smtp_password", &shown(&self.smtp_password))
            .field("signing_secret", &shown(&self.signing_secret))
            .field("previous_secret", &shown(&self.previous_secret))
            .field("metrics_token", &shown(&self.metrics_token))
            .finish()
    }
}

/// Reads and validates the config file at `path`.
pub fn load(path: &Path) -> Result<Config, Error> {
    let bytes = std::fs::read(path).map_err(|source| Error::Read {
        path: path.display().to_string(),
        source,
    })?;
    match std::str::from_utf8(&bytes) {
        Ok(text) => parse(text, path),
        Err(e) => {
            let valid = &bytes[..e.valid_up_to()];
            let line = valid.iter().filter(|b| **b == b'\n').count() + 1;
            let column = valid.iter().rev().take_while(|b| **b != b'\n').count() + 1;
            let file = path.display().to_string();
            let mut p = Problems::new(&file, "");
            p.at_line(
                line,
                "",
                format!(
                    "the file is not UTF-8 (byte 0x{:02X} at column {column}); save it as UTF-8",
                    bytes[e.valid_up_to()]
                ),
            );
            Err(Error::Invalid(p.into_sorted()))
        }
    }
}

/// Validates config text; `path` is used in messages and recorded in the result.
pub fn parse(text: &str, path: &Path) -> Result<Config, Error> {
    let file = path.display().to_string();
    let mut p = Problems::new(&file, text);
    let doc = match toml::de::DeTable::parse(text) {
        Ok(doc) => doc,
        Err(e) => {
            let line = e.span().map(|s| p.line_of(s.start)).unwrap_or(1);
            let message = e.message().trim().to_owned();
            p.at_line(line, "", format!("invalid TOML: {message}"));
            return Err(Error::Invalid(p.into_sorted()));
        }
    };
    let mut root = TableReader::root(&doc);
    let config = read_config(&mut root, &mut p, path);
    root.finish(&mut p);
    match config {
        Some(config) if p.is_empty() => Ok(config),
        _ => Err(Error::Invalid(p.into_sorted())),
    }
}

/// Reads `[section]`, or an empty reader when the section is absent.
fn section<'r, 'a: 'r, 'i>(
    root: &mut TableReader<'a, 'i>,
    p: &mut Problems,
    key: &'static str,
    empty: &'r toml::de::DeTable<'i>,
) -> TableReader<'r, 'i> {
    root.table(p, key)
        .unwrap_or_else(|| TableReader::absent(empty, key))
}

fn read_config(root: &mut TableReader<'_, '_>, p: &mut Problems, path: &Path) -> Option<Config> {
    let empty = toml::de::DeTable::new();

    let mut t = section(root, p, "site", &empty);
    let site = read_site(&mut t, p);
    if t.is_absent() {
        root.missing(p, "site");
    }
    t.finish(p);

    let mut t = section(root, p, "store", &empty);
    let store = read_store(&mut t, p);
    t.finish(p);

    let mut t = section(root, p, "ingest", &empty);
    let ingest = read_ingest(&mut t, p);
    t.finish(p);

    let mut sources = Vec::new();
    let mut source_lines: HashMap<String, usize> = HashMap::new();
    for mut t in root.tables(p, "sources") {
        check_unique(p, &mut source_lines, &t, "source");
        if let Some(source) = read_source(&mut t, p, ingest.as_ref()) {
            sources.push(source);
        }
        t.finish(p);
    }

    let mut t = section(root, p, "enrich", &empty);
    let enrich = read_enrich(&mut t, p);
    t.finish(p);

    let mut t = section(root, p, "feed", &empty);
    let feed = match site.as_ref() {
        Some(site) => read_feed(&mut t, p, site, &source_lines),
        None => {
            // Read the section anyway, so that a bad [site] does not make every key
            // here look unknown; what it yields is discarded.
            let stand_in = SiteConfig {
                title: String::new(),
                base_url: Url::parse("http://site.invalid/")
                    .unwrap_or_else(|_| unreachable!("a valid URL")),
                language: "en".into(),
            };
            let _ = read_feed(&mut t, p, &stand_in, &source_lines);
            None
        }
    };
    t.finish(p);

    let mut t = section(root, p, "smtp", &empty);
    let smtp = read_smtp(&mut t, p, site.as_ref());
    t.finish(p);

    let mut digests: Vec<DigestConfig> = Vec::new();
    let mut digest_lines: HashMap<String, usize> = HashMap::new();
    for mut t in root.tables(p, "digests") {
        check_unique(p, &mut digest_lines, &t, "digest");
        if let Some(digest) = read_digest(&mut t, p, &source_lines) {
            digests.push(digest);
        }
        t.finish(p);
    }

    let mut t = section(root, p, "http", &empty);
    let http = read_http(&mut t, p);
    t.finish(p);

    let mut t = section(root, p, "templates", &empty);
    let templates = TemplatesConfig {
        dir: t
            .string(p, "dir")
            .map(|d| PathBuf::from(d.value))
            .unwrap_or_else(|| PathBuf::from("templates")),
    };
    t.finish(p);

    Some(Config {
        file: path.to_path_buf(),
        site: site?,
        store: store?,
        ingest: ingest?,
        sources,
        enrich: enrich?,
        feed: feed?,
        smtp: smtp?,
        digests,
        http: http?,
        templates,
    })
}

fn read_site(t: &mut TableReader<'_, '_>, p: &mut Problems) -> Option<SiteConfig> {
    let title = t.required_string(p, "title");
    let base_url_present = t.has("base_url");
    let base_url = t.parsed(p, "base_url", |s| {
        parse_http_url(s).map(with_trailing_slash)
    });
    if !base_url_present && !t.is_absent() {
        t.missing(p, "base_url");
    }
    let language = t
        .parsed(p, "language", parse_language)
        .map(|l| l.value)
        .unwrap_or_else(|| "en".into());
    if let Some(title) = &title
        && title.value.trim().is_empty()
    {
        p.at(&title.span, &title.key, "must not be empty");
    }
    Some(SiteConfig {
        title: title?.value,
        base_url: base_url?.value,
        language,
    })
}

fn read_store(t: &mut TableReader<'_, '_>, p: &mut Problems) -> Option<StoreConfig> {
    let url = match t.parsed(p, "url", parse_store_url) {
        Some(url) => url.value,
        None if t.has("url") => return None,
        None => StoreUrl::Sqlite(PathBuf::from("data/herald.db")),
    };
    Some(StoreConfig { url })
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            concurrency: 4,
            timeout: Duration::from_secs(30),
            max_body: 10 << 20,
            max_redirects: 5,
            poll_interval: Duration::from_secs(15 * 60),
        }
    }
}

fn read_ingest(t: &mut TableReader<'_, '_>, p: &mut Problems) -> Option<IngestConfig> {
    let d = IngestConfig::default();
    Some(IngestConfig {
        concurrency: t
            .integer(p, "concurrency", 1..=64)
            .map_or(d.concurrency, |n| n as usize),
        timeout: positive(t, p, "timeout").unwrap_or(d.timeout),
        max_body: t.size(p, "max_body").unwrap_or(d.max_body),
        max_redirects: t
            .integer(p, "max_redirects", 0..=10)
            .map_or(d.max_redirects, |n| n as usize),
        poll_interval: positive(t, p, "poll_interval").unwrap_or(d.poll_interval),
    })
}

fn read_source(
    t: &mut TableReader<'_, '_>,
    p: &mut Problems,
    defaults: Option<&IngestConfig>,
) -> Option<SourceConfig> {
    let name = t
        .required_string(p, "name")
        .and_then(|n| check_name(p, n, "source"));
    let url_present = t.has("url");
    let location = t.parsed(p, "url", parse_source_location);
    if !url_present {
        t.missing(p, "url");
    }
    let title = t.string(p, "title").map(|s| s.value);
    let poll_interval = positive(t, p, "poll_interval");
    let timeout = positive(t, p, "timeout");
    let max_body = t.size(p, "max_body");
    let base_url = t.parsed(p, "base_url", parse_http_url).map(|u| u.value);
    let enabled = t.bool(p, "enabled").unwrap_or(true);
    let fallback = IngestConfig::default();
    let defaults = defaults.unwrap_or(&fallback);
    Some(SourceConfig {
        name: name?,
        location: location?.value,
        title,
        poll_interval: poll_interval.unwrap_or(defaults.poll_interval),
        timeout: timeout.unwrap_or(defaults.timeout),
        max_body: max_body.unwrap_or(defaults.max_body),
        base_url,
        enabled,
    })
}

fn read_enrich(t: &mut TableReader<'_, '_>, p: &mut Problems) -> Option<EnrichConfig> {
    Some(EnrichConfig {
        summary_words: t.integer(p, "summary_words", 10..=1000).unwrap_or(60) as usize,
        related_count: t.integer(p, "related_count", 0..=20).unwrap_or(3) as usize,
        language: t
            .parsed(p, "language", parse_stemmer_language)
            .map(|l| l.value)
            .unwrap_or_else(|| "english".into()),
        include_newer: t.bool(p, "include_newer").unwrap_or(false),
        min_score: t.number(p, "min_score", 0.0..=1.0).unwrap_or(0.05),
    })
}

fn read_feed(
    t: &mut TableReader<'_, '_>,
    p: &mut Problems,
    site: &SiteConfig,
    sources: &HashMap<String, usize>,
) -> Option<FeedConfig> {
    let out_dir = t
        .string(p, "out_dir")
        .map(|d| PathBuf::from(d.value))
        .unwrap_or_else(|| PathBuf::from("public"));
    let title = t
        .string(p, "title")
        .map(|s| s.value)
        .unwrap_or_else(|| site.title.clone());
    let description = t
        .string(p, "description")
        .map(|s| s.value)
        .unwrap_or_else(|| format!("New posts from {}", site.title));
    let link = t
        .parsed(p, "link", parse_http_url)
        .map(|u| u.value)
        .unwrap_or_else(|| site.base_url.clone());
    let mut public = |t: &mut TableReader<'_, '_>, key: &'static str, file: &str| {
        t.parsed(p, key, parse_http_url)
            .map(|u| u.value)
            .or_else(|| site.base_url.join(file).ok())
    };
    let rss_url = public(t, "rss_url", "feed.xml");
    let atom_url = public(t, "atom_url", "atom.xml");
    let json_url = public(t, "json_url", "feed.json");
    let max_items = t.integer(p, "max_items", 1..=10_000).unwrap_or(50) as usize;
    let wanted = t.strings(p, "sources").unwrap_or_default();
    let full_content = t.bool(p, "full_content").unwrap_or(true);
    let language = t
        .parsed(p, "language", parse_language)
        .map(|l| l.value)
        .unwrap_or_else(|| site.language.clone());
    let ttl = positive(t, p, "ttl").unwrap_or(Duration::from_secs(60 * 60));
    let hub = t.parsed(p, "hub", parse_http_url).map(|u| u.value);
    let sources = known_sources(p, wanted, sources);
    Some(FeedConfig {
        out_dir,
        title,
        description,
        link,
        rss_url: rss_url?,
        atom_url: atom_url?,
        json_url: json_url?,
        max_items,
        sources,
        full_content,
        language,
        ttl,
        hub,
    })
}

fn read_smtp(
    t: &mut TableReader<'_, '_>,
    p: &mut Problems,
    site: Option<&SiteConfig>,
) -> Option<SmtpConfig> {
    t.forbid(
        p,
        "password",
        "the SMTP password is a secret: set HERALD_SMTP_PASSWORD in the environment instead",
    );
    let transport = match t.parsed(p, "url", parse_smtp_url) {
        Some(u) => Some(u.value),
        None if t.has("url") => None,
        None => Some(SmtpTransport::Folder(PathBuf::from("outbox"))),
    };
    let tls = t.parsed(p, "tls", |s| match s {
        "required" => Ok(SmtpTls::Required),
        "opportunistic" => Ok(SmtpTls::Opportunistic),
        "none" => Ok(SmtpTls::None),
        other => Err(format!(
            "\"{other}\" is not a TLS mode (use \"required\", \"opportunistic\" or \"none\")"
        )),
    });
    let username = t.string(p, "username").map(|s| s.value);
    let default_from = site.and_then(|s| {
        let host = s.base_url.host_str().unwrap_or("localhost");
        lettre::Address::new("herald", host)
            .ok()
            .map(|address| lettre::message::Mailbox::new(Some(s.title.clone()), address))
    });
    let from_given = t.has("from");
    let from = t
        .parsed(p, "from", parse_mailbox)
        .map(|m| m.value)
        .or(default_from);
    if from.is_none() && !from_given && site.is_some() {
        p.at(
            &t.span(),
            t.key("from"),
            "herald@<site host> is not an address for this site's host; set smtp.from",
        );
    }
    let reply_to = t.parsed(p, "reply_to", parse_mailbox).map(|m| m.value);
    let bounce_address = t
        .parsed(p, "bounce_address", parse_mailbox)
        .map(|m| m.value);
    let max_connections = t.integer(p, "max_connections", 1..=100).unwrap_or(4) as usize;
    let rate = t.number(p, "rate", 0.001..=100_000.0).unwrap_or(50.0);
    let timeout = positive(t, p, "timeout").unwrap_or(Duration::from_secs(30));
    let retry_attempts = t.integer(p, "retry_attempts", 0..=50).unwrap_or(5) as u32;
    let max_message_size = match t.size(p, "max_message_size") {
        Some(n) if n < 64 * 1024 => {
            p.at(
                &t.span_of("max_message_size").unwrap_or_default(),
                t.key("max_message_size"),
                format!("{n} bytes is too small for a digest; use at least \"64KiB\""),
            );
            None
        }
        Some(n) => Some(n),
        None => Some(10 * 1024 * 1024),
    };
    let mut transport = transport?;
    if let (SmtpTransport::Smtp { tls: current, .. }, Some(tls)) = (&mut transport, tls) {
        if *current == SmtpTls::Implicit {
            p.at(
                &tls.span,
                &tls.key,
                "smtps:// always uses implicit TLS; remove `tls` or use smtp://",
            );
        } else {
            *current = tls.value;
        }
    }
    Some(SmtpConfig {
        transport,
        username,
        from: from?,
        reply_to,
        bounce_address,
        max_connections,
        rate,
        timeout,
        retry_attempts,
        max_message_size: max_message_size?,
    })
}

fn read_digest(
    t: &mut TableReader<'_, '_>,
    p: &mut Problems,
    sources: &HashMap<String, usize>,
) -> Option<DigestConfig> {
    let name = t
        .required_string(p, "name")
        .and_then(|n| check_name(p, n, "digest"));
    let schedule_present = t.has("schedule");
    let schedule = t.parsed(p, "schedule", Schedule::parse);
    if !schedule_present {
        t.missing(p, "schedule");
    }
    let timezone = t
        .parsed(p, "timezone", |s| {
            Tz::from_str(s).map_err(|_| {
                format!("\"{s}\" is not a known IANA time zone (e.g. \"Europe/Berlin\", \"UTC\")")
            })
        })
        .map(|z| z.value);
    let timezone = match timezone {
        Some(tz) => Some(tz),
        None if t.has("timezone") => None,
        None => Some(Tz::UTC),
    };
    let subject = t
        .string(p, "subject")
        .map(|s| s.value)
        .unwrap_or_else(|| "{{site.title}}: {{posts.length}} new posts".into());
    let wanted = t.strings(p, "sources").unwrap_or_default();
    let max_posts = t.integer(p, "max_posts", 1..=1000).unwrap_or(20) as usize;
    let skip_if_empty = t.bool(p, "skip_if_empty").unwrap_or(true);
    let template = t.parsed(p, "template", |s| {
        if !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            Ok(s.to_owned())
        } else {
            Err(format!(
                "\"{s}\" is not a template name (letters, digits, - and _)"
            ))
        }
    });
    let template = template.map(|t| t.value).unwrap_or_else(|| "digest".into());
    let sources = known_sources(p, wanted, sources);
    Some(DigestConfig {
        name: name?,
        schedule: schedule?.value,
        timezone: timezone?,
        subject,
        sources,
        max_posts,
        skip_if_empty,
        template,
    })
}

fn read_http(t: &mut TableReader<'_, '_>, p: &mut Problems) -> Option<HttpConfig> {
    t.forbid(
        p,
        "secret",
        "the signing secret is a secret: set HERALD_SECRET in the environment instead",
    );
    let socket = |s: &str| {
        s.parse::<SocketAddr>().map_err(|_| {
            format!("\"{s}\" is not an address to listen on (e.g. \"127.0.0.1:8080\")")
        })
    };
    let listen = match t.parsed(p, "listen", socket) {
        Some(l) => Some(l.value),
        None if t.has("listen") => None,
        None => Some(SocketAddr::from(([127, 0, 0, 1], 8080))),
    };
    let metrics_listen = t.parsed(p, "metrics_listen", socket).map(|l| l.value);
    let confirm_ttl = match positive(t, p, "confirm_ttl") {
        Some(ttl) if ttl > Duration::from_secs(90 * 86_400) => {
            p.at(
                &t.span_of("confirm_ttl").unwrap_or_default(),
                t.key("confirm_ttl"),
                "at most \"90d\": a confirmation link should not outlive the sign-up it answers",
            );
            ttl
        }
        Some(ttl) => ttl,
        None => Duration::from_secs(7 * 86_400),
    };
    let mut trusted_proxies = Vec::new();
    for item in t.strings(p, "trusted_proxies").unwrap_or_default() {
        match IpNet::parse(&item.value) {
            Ok(net) => trusted_proxies.push(net),
            Err(message) => p.at(&item.span, &item.key, message),
        }
    }
    if let (Some(main), Some(metrics)) = (listen, metrics_listen)
        && main == metrics
    {
        p.at(
            &t.span_of("metrics_listen").unwrap_or_default(),
            t.key("metrics_listen"),
            "must differ from http.listen (leave it out to serve /metrics there)",
        );
    }
    Some(HttpConfig {
        listen: listen?,
        confirm_ttl,
        trusted_proxies,
        metrics_listen,
    })
}

/// Reports a `name` already used by an earlier table of the same array.
fn check_unique(
    p: &mut Problems,
    seen: &mut HashMap<String, usize>,
    t: &TableReader<'_, '_>,
    what: &str,
) {
    let (Some(name), Some(span)) = (t.peek_str("name"), t.span_of("name")) else {
        return;
    };
    let line = p.line_of(span.start);
    match seen.get(&name) {
        Some(first) => p.at_line(
            line,
            t.key("name"),
            format!("duplicate {what} name \"{name}\" (first defined at line {first})"),
        ),
        None => {
            seen.insert(name, line);
        }
    }
}

/// A duration that must be above zero.
fn positive(t: &mut TableReader<'_, '_>, p: &mut Problems, key: &'static str) -> Option<Duration> {
    let span = t.span();
    let d = t.duration(p, key)?;
    if d.is_zero() {
        p.at(&span, t.key(key), "must be longer than zero");
        return None;
    }
    Some(d)
}

/// Keeps the names that refer to a configured source, reporting the others.
fn known_sources(
    p: &mut Problems,
    wanted: Vec<Located<String>>,
    sources: &HashMap<String, usize>,
) -> Vec<String> {
    let mut out = Vec::new();
    for name in wanted {
        if sources.contains_key(&name.value) {
            out.push(name.value);
        } else {
            let mut known: Vec<&str> = sources.keys().map(String::as_str).collect();
            known.sort_unstable();
            p.at(
                &name.span,
                &name.key,
                format!(
                    "no source named \"{}\" (sources: {})",
                    name.value,
                    known.join(", ")
                ),
            );
        }
    }
    out
}

fn check_name(p: &mut Problems, name: Located<String>, what: &str) -> Option<String> {
    let ok = name
        .value
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Some(name.value)
    } else {
        p.at(
            &name.span,
            &name.key,
            format!("\"{}\" is not a valid {what} name (letters, digits, '-', '_' and '.', starting with a letter or digit)", name.value),
        );
        None
    }
}

fn parse_http_url(s: &str) -> Result<Url, String> {
    let url = Url::parse(s).map_err(|e| format!("\"{s}\" is not a valid URL: {e}"))?;
    match url.scheme() {
        "http" | "https" if url.host_str().is_some() => Ok(url),
        "http" | "https" => Err(format!("\"{s}\" has no host")),
        other => Err(format!(
            "\"{s}\" must be an http or https URL, not {other}:"
        )),
    }
}

fn with_trailing_slash(mut url: Url) -> Url {
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    url
}

fn parse_source_location(s: &str) -> Result<SourceLocation, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("must not be empty".into());
    }
    if let Some((scheme, _)) = t.split_once("://") {
        return match scheme.to_ascii_lowercase().as_str() {
            "http" | "https" => parse_http_url(t).map(SourceLocation::Http),
            "file" => {
                let url =
                    Url::parse(t).map_err(|e| format!("\"{s}\" is not a valid file URL: {e}"))?;
                url.to_file_path()
                    .map(SourceLocation::File)
                    .map_err(|_| format!("\"{s}\" is not a valid file URL (use file:///absolute/path or a plain path)"))
            }
            other => Err(format!(
                "\"{s}\": unsupported scheme {other}:// (use http, https, or a file path)"
            )),
        };
    }
    if t.contains(':') && Url::parse(t).is_ok_and(|u| u.scheme().len() > 1) {
        return Err(format!(
            "\"{s}\" is not a valid URL (use http://, https://, or a file path)"
        ));
    }
    Ok(SourceLocation::File(PathBuf::from(t)))
}

fn parse_store_url(s: &str) -> Result<StoreUrl, String> {
    if s == "sqlite::memory:" {
        return Ok(StoreUrl::SqliteMemory);
    }
    if let Some(rest) = s.strip_prefix("sqlite://") {
        let path = rest.split('?').next().unwrap_or(rest);
        if path.is_empty() {
            return Err(format!(
                "\"{s}\" names no database file (e.g. \"sqlite://data/herald.db\")"
            ));
        }
        return Ok(StoreUrl::Sqlite(PathBuf::from(path)));
    }
    if s.starts_with("postgres://") || s.starts_with("postgresql://") {
        return Err(format!(
            "\"{s}\": PostgreSQL is not supported yet; use sqlite://PATH"
        ));
    }
    Err(format!(
        "\"{s}\" is not a store URL (use \"sqlite://data/herald.db\")"
    ))
}

fn parse_smtp_url(s: &str) -> Result<SmtpTransport, String> {
    let url = Url::parse(s).map_err(|e| format!("\"{s}\" is not a valid URL: {e}"))?;
    if url.password().is_some() {
        return Err("the URL contains a password: put it in HERALD_SMTP_PASSWORD instead".into());
    }
    match url.scheme() {
        "file" => {
            let dir = format!("{}{}", url.host_str().unwrap_or(""), url.path());
            if dir.is_empty() || dir == "/" {
                return Err(format!("\"{s}\" names no folder (e.g. \"file://outbox\")"));
            }
            Ok(SmtpTransport::Folder(PathBuf::from(dir)))
        }
        scheme @ ("smtp" | "smtps") => {
            let host = url
                .host_str()
                .filter(|h| !h.is_empty())
                .ok_or_else(|| format!("\"{s}\" has no host"))?;
            let implicit = scheme == "smtps";
            let port = url.port().unwrap_or(if implicit { 465 } else { 587 });
            let tls = if implicit {
                SmtpTls::Implicit
            } else {
                SmtpTls::Required
            };
            Ok(SmtpTransport::Smtp {
                host: host.to_owned(),
                port,
                tls,
            })
        }
        other => Err(format!(
            "\"{s}\": unsupported scheme {other}:// (use file://DIR, smtp://HOST:PORT or smtps://HOST:PORT)"
        )),
    }
}

/// Accepts `addr@domain` or `Display Name <addr@domain>` (as lettre will parse it).
fn parse_mailbox(s: &str) -> Result<lettre::message::Mailbox, String> {
    let t = s.trim();
    let bad = || {
        format!(
            "\"{s}\" is not an email address (use \"name@example.org\" or \"Name <name@example.org>\")"
        )
    };
    let mailbox: lettre::message::Mailbox = t.parse().map_err(|_| bad())?;
    if !mailbox.email.domain().contains('.') {
        return Err(bad());
    }
    Ok(mailbox)
}

fn parse_language(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.split('-').all(|part| {
            (1..=8).contains(&part.len()) && part.chars().all(|c| c.is_ascii_alphanumeric())
        });
    if ok {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "\"{s}\" is not a language tag (e.g. \"en\", \"de-AT\")"
        ))
    }
}

/// Languages rust-stemmers can stem, by name and by ISO 639-1 code.
pub const STEMMER_LANGUAGES: &[(&str, &str)] = &[
    ("arabic", "ar"),
    ("danish", "da"),
    ("dutch", "nl"),
    ("english", "en"),
    ("finnish", "fi"),
    ("french", "fr"),
    ("german", "de"),
    ("greek", "el"),
    ("hungarian", "hu"),
    ("italian", "it"),
    ("norwegian", "no"),
    ("portuguese", "pt"),
    ("romanian", "ro"),
    ("russian", "ru"),
    ("spanish", "es"),
    ("swedish", "sv"),
    ("tamil", "ta"),
    ("turkish", "tr"),
];

fn parse_stemmer_language(s: &str) -> Result<String, String> {
    let lower = s.to_ascii_lowercase();
    STEMMER_LANGUAGES
        .iter()
        .find(|(name, code)| *name == lower || *code == lower)
        .map(|(name, _)| (*name).to_owned())
        .ok_or_else(|| {
            let names: Vec<&str> = STEMMER_LANGUAGES.iter().map(|(n, _)| *n).collect();
            format!(
                "\"{s}\" is not a supported language (one of: {})",
                names.join(", ")
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<String> {
        match parse(text, Path::new("h.toml")) {
            Ok(_) => Vec::new(),
            Err(e) => e.problems().iter().map(ToString::to_string).collect(),
        }
    }

    const MINIMAL: &str = "[site]\ntitle = \"T\"\nbase_url = \"https://example.org\"\n";

    #[test]
    fn can_load_a_minimal_config_with_defaults() {
        let c = parse(MINIMAL, Path::new("h.toml")).expect("valid");
        assert_eq!(c.site.base_url.as_str(), "https://example.org/");
        assert_eq!(
            c.store.url,
            StoreUrl::Sqlite(PathBuf::from("data/herald.db"))
        );
        assert_eq!(c.ingest.max_body, 10 << 20);
        assert_eq!(
            c.smtp.transport,
            SmtpTransport::Folder(PathBuf::from("outbox"))
        );
        assert_eq!(c.feed.rss_url.as_str(), "https://example.org/feed.xml");
        assert_eq!(c.enrich.summary_words, 60);
    }

    #[test]
    fn errors_when_site_is_missing() {
        assert_eq!(
            problems(""),
            vec!["h.toml:1: site: missing required key `site`"]
        );
    }

    #[test]
    fn errors_on_unknown_key_with_suggestion() {
        let got = problems(&format!("colour = \"x\"\n{MINIMAL}"));
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(
            got[0].starts_with(
                "h.toml:1: colour: unknown key `colour` (expected one of: digests, enrich,"
            ),
            "{got:?}"
        );
        let got = problems("[site]\ntitel = \"T\"\nbase_url = \"https://example.org\"\n");
        assert!(
            got.contains(
                &"h.toml:2: site.titel: unknown key `titel` (did you mean `title`?)".to_string()
            ),
            "{got:?}"
        );
    }

    #[test]
    fn errors_on_bad_cron_and_zone_in_one_pass() {
        let text = format!(
            "{MINIMAL}[[digests]]\nname = \"weekly\"\nschedule = \"0 8 * *\"\ntimezone = \"Mars/Olympus\"\n"
        );
        let got = problems(&text);
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(
            got[0].starts_with("h.toml:6: digests[0].schedule: \"0 8 * *\" is not a cron schedule"),
            "{got:?}"
        );
        assert!(got[1].starts_with(
            "h.toml:7: digests[0].timezone: \"Mars/Olympus\" is not a known IANA time zone"
        ));
    }

    #[test]
    fn accepts_five_and_six_field_cron() {
        assert!(Schedule::parse("0 8 * * Mon").is_ok());
        assert!(Schedule::parse("30 0 8 * * Mon").is_ok());
        assert!(Schedule::parse("0 8 * * Funday").is_err());
    }

    #[test]
    fn errors_on_secret_in_file() {
        let got = problems(&format!("{MINIMAL}[smtp]\npassword = \"hunter2\"\n"));
        assert_eq!(got.len(), 1);
        assert!(got[0].contains("smtp.password") && got[0].contains("HERALD_SMTP_PASSWORD"));
        assert!(!got[0].contains("hunter2"));
    }

    #[test]
    fn secrets_debug_never_shows_values() {
        let s = Secrets {
            smtp_password: Some("hunter2".into()),
            metrics_token: Some("metrics-token-hunter3".into()),
            ..Secrets::default()
        };
        let shown = format!("{s:?}");
        assert!(!shown.contains("hunter") && shown.contains("<set>"));
    }

    #[test]
    fn weak_secrets_are_refused_with_how_to_make_one() {
        let with = |secret: &str| Secrets {
            signing_secret: Some(secret.into()),
            ..Secrets::default()
        };
        for weak in ["change-me", "short-secret", &"a".repeat(40)] {
            let err = with(weak).check().unwrap_err().to_string();
            assert!(err.starts_with("HERALD_SECRET is refused"), "{err}");
            assert!(err.contains("openssl rand"), "{err}");
        }
        assert!(
            with("u7Qm2rX9vB4kLp0sT6wYc1Zf8Hn3Jd5A")
                .check()
                .unwrap()
                .is_empty()
        );
        let previous = Secrets {
            signing_secret: Some("u7Qm2rX9vB4kLp0sT6wYc1Zf8Hn3Jd5A".into()),
            previous_secret: Some("change-me".into()),
            ..Secrets::default()
        };
        assert!(
            previous
                .check()
                .unwrap_err()
                .to_string()
                .contains("HERALD_SECRET_PREVIOUS")
        );
        let short_previous = Secrets {
            previous_secret: Some("an-old-short-one".into()),
            ..previous
        };
        assert_eq!(
            short_previous.check().unwrap().len(),
            1,
            "accepted with a warning"
        );
    }

    #[test]
    fn a_non_utf8_config_names_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("herald.toml");
        std::fs::write(
            &path,
            b"[site]\ntitle = \"Caf\xe9\"\nbase_url = \"https://e.org/\"\n",
        )
        .unwrap();
        let err = load(&path).unwrap_err();
        let problems = err.problems();
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].line, 2);
        assert!(
            problems[0].message.contains("not UTF-8"),
            "{}",
            problems[0].message
        );
    }

    #[test]
    fn a_bad_base_url_is_one_problem_not_a_list_of_unknown_keys() {
        let got = problems(
            "[site]\ntitle = \"t\"\nbase_url = \"ftp://x\"\n[feed]\ntitle = \"f\"\nmax_items = 10\nfull_content = true\n",
        );
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(got[0].contains("site.base_url"), "{got:?}");
    }

    #[test]
    fn reads_http_safety_keys() {
        let config = parse(
            "[site]\ntitle = \"t\"\nbase_url = \"https://e.org/\"\n[http]\nconfirm_ttl = \"2d\"\ntrusted_proxies = [\"10.0.0.0/8\", \"::1\"]\nmetrics_listen = \"127.0.0.1:9090\"\n",
            Path::new("h.toml"),
        )
        .unwrap();
        assert_eq!(config.http.confirm_ttl, Duration::from_secs(2 * 86_400));
        assert_eq!(config.http.trusted_proxies.len(), 2);
        assert!(config.http.trusted_proxies[0].contains("10.9.8.7".parse().unwrap()));
        assert!(!config.http.trusted_proxies[0].contains("11.0.0.1".parse().unwrap()));
        assert!(config.http.trusted_proxies[1].contains("::1".parse().unwrap()));
        assert!(config.http.trusted_proxies[0].contains("::ffff:10.0.0.1".parse().unwrap()));
        assert_eq!(
            config.http.metrics_listen,
            Some("127.0.0.1:9090".parse().unwrap())
        );
        assert_eq!(config.smtp.max_message_size, 10 * 1024 * 1024);
        let got = problems(
            "[site]\ntitle = \"t\"\nbase_url = \"https://e.org/\"\n[http]\ntrusted_proxies = [\"10.0.0.0/40\"]\n",
        );
        assert!(got[0].contains("http.trusted_proxies[0]"), "{got:?}");
    }

    #[test]
    fn parses_source_locations() {
        assert_eq!(
            parse_source_location("examples/blog/feed.xml"),
            Ok(SourceLocation::File("examples/blog/feed.xml".into()))
        );
        assert!(matches!(
            parse_source_location("https://example.org/feed"),
            Ok(SourceLocation::Http(_))
        ));
        assert_eq!(
            parse_source_location("file:///srv/feed.xml"),
            Ok(SourceLocation::File("/srv/feed.xml".into()))
        );
        assert!(parse_source_location("ftp://example.org/feed").is_err());
        assert!(parse_source_location("htp://example.org/feed").is_err());
    }
}
