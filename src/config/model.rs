//! The typed configuration: what the rest of herald reads. Every value here was checked
//! when the file was read ([`super::read`]); a `Config` exists only when there was no
//! problem at all.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use chrono_tz::Tz;
use url::Url;

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from.
    pub file: PathBuf,
    /// `[site]`.
    pub site: SiteConfig,
    /// `[store]`.
    pub store: StoreConfig,
    /// `[ingest]`: defaults for every source.
    pub ingest: IngestConfig,
    /// `[[sources]]`, in file order.
    pub sources: Vec<SourceConfig>,
    /// `[enrich]`.
    pub enrich: EnrichConfig,
    /// `[feed]`.
    pub feed: FeedConfig,
    /// `[smtp]`.
    pub smtp: SmtpConfig,
    /// `[[digests]]`, in file order.
    pub digests: Vec<DigestConfig>,
    /// `[http]`.
    pub http: HttpConfig,
    /// `[templates]`.
    pub templates: TemplatesConfig,
}

/// `[site]`: who is publishing.
#[derive(Debug, Clone)]
pub struct SiteConfig {
    /// Shown in emails, pages and the outgoing feed.
    pub title: String,
    /// Public base URL of herald's pages (always ends with `/`).
    pub base_url: Url,
    /// BCP 47 language tag of the site, e.g. `en`.
    pub language: String,
}

/// `[store]`: where posts, subscribers and the delivery ledger live.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Where the database is.
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
    /// Give up on a source that has not answered in full after this long.
    pub timeout: Duration,
    /// Largest feed body accepted, in bytes, counted after decompression.
    pub max_body: u64,
    /// Redirects followed before giving up.
    pub max_redirects: usize,
    /// How often a source is polled when it says nothing about it.
    pub poll_interval: Duration,
}

/// One `[[sources]]` entry.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    /// Short unique name (letters, digits, '-', '_', '.').
    pub name: String,
    /// Where the feed is read from.
    pub location: SourceLocation,
    /// Display name; defaults to the feed's own title.
    pub title: Option<String>,
    /// How often `serve` polls it (unless its server asks for longer).
    pub poll_interval: Duration,
    /// Its fetch timeout.
    pub timeout: Duration,
    /// Its largest body, in bytes.
    pub max_body: u64,
    /// Base for relative URLs when the feed gives no absolute link of its own.
    pub base_url: Option<Url>,
    /// Whether it is polled at all (its posts are kept either way).
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
    /// Longest summary, in words.
    pub summary_words: usize,
    /// How many related posts each post lists (0: none).
    pub related_count: usize,
    /// Stemmer language, e.g. `english`.
    pub language: String,
    /// Whether older posts may list newer ones as related.
    pub include_newer: bool,
    /// Whether a post with fewer than `related_count` older matches fills its list with
    /// newer posts (its list stops changing once it has enough older ones).
    pub fill_with_newer: bool,
    /// Lowest similarity (0..1) for a post to count as related.
    pub min_score: f64,
}

/// `[feed]`: the outgoing RSS, Atom and JSON feeds.
#[derive(Debug, Clone)]
pub struct FeedConfig {
    /// Folder the feeds are written to.
    pub out_dir: PathBuf,
    /// Channel title.
    pub title: String,
    /// Channel description.
    pub description: String,
    /// The page the feed is about.
    pub link: Url,
    /// Public URL of `feed.xml` (its self link).
    pub rss_url: Url,
    /// Public URL of `atom.xml`.
    pub atom_url: Url,
    /// Public URL of `feed.json`.
    pub json_url: Url,
    /// Most items in each feed.
    pub max_items: usize,
    /// Source names to include; empty means all.
    pub sources: Vec<String>,
    /// Whether items carry the post's full HTML besides its summary.
    pub full_content: bool,
    /// Feed language (BCP 47).
    pub language: String,
    /// How long readers may cache the feed (RSS `<ttl>`, Cache-Control).
    pub ttl: Duration,
    /// WebSub hub pinged when a feed changes.
    pub hub: Option<Url>,
}

/// `[smtp]`: how digests leave.
#[derive(Debug, Clone)]
pub struct SmtpConfig {
    /// Where messages go: a folder or an SMTP relay.
    pub transport: SmtpTransport,
    /// SMTP user name (the password is a secret: `HERALD_SMTP_PASSWORD`).
    pub username: Option<String>,
    /// The sender subscribers see.
    pub from: lettre::message::Mailbox,
    /// Where replies go, when not to `from`.
    pub reply_to: Option<lettre::message::Mailbox>,
    /// Envelope sender (`MAIL FROM`), where bounces go; defaults to the From address.
    /// When set, each message's envelope sender is its VERP address
    /// (`local+<token>@domain`), so the bounce address must accept plus-addressing.
    pub bounce_address: Option<lettre::message::Mailbox>,
    /// Soft bounces (mailbox full, 4.x.x, delayed) in a row that make a subscriber
    /// bounced.
    pub soft_bounce_limit: u32,
    /// Connections kept open to the relay.
    pub max_connections: usize,
    /// Messages per second, across all connections.
    pub rate: f64,
    /// Per-command timeout.
    pub timeout: Duration,
    /// Attempts for a deferred message before it fails.
    pub retry_attempts: u32,
    /// Largest message herald builds, in bytes; a relay's smaller `SIZE` wins.
    pub max_message_size: u64,
    /// Extra root certificates trusted for the relay (`ca_file`: a private relay's CA),
    /// besides the system's.
    pub ca_file: Option<CaFile>,
    /// `[smtp.dkim]`: sign every message herald sends.
    pub dkim: Option<DkimConfig>,
}

/// `[smtp.dkim]`. The key is loaded (and checked) by [`crate::deliver::dkim::DkimSigner::load`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DkimConfig {
    /// The signing domain (`d=`), normally the From address's domain.
    pub domain: String,
    /// The selector (`s=`): the key is published at `<selector>._domainkey.<domain>`.
    pub selector: String,
    pub algorithm: DkimAlgorithm,
    /// A PEM key file; without it the PEM comes from `HERALD_DKIM_KEY`.
    pub private_key: Option<PathBuf>,
    /// Header fields signed, in order (those a message lacks are left out).
    pub headers: Vec<String>,
}

/// `smtp.dkim.algorithm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DkimAlgorithm {
    /// `rsa-sha256`, keys of 2048 bits and more: every verifier knows it.
    RsaSha256,
    /// `ed25519-sha256` (RFC 8463): small and fast; not yet checked by every receiver.
    Ed25519Sha256,
}

/// Headers signed when `smtp.dkim.headers` is not given.
pub const DKIM_DEFAULT_HEADERS: &[&str] = &[
    "From",
    "Reply-To",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "MIME-Version",
    "Content-Type",
    "List-Id",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
];

/// `smtp.ca_file`, read and checked when the config loads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaFile {
    pub path: PathBuf,
    /// Each certificate of the file, DER-encoded.
    pub certificates: Vec<Vec<u8>>,
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
    /// Short unique name (`herald digest send NAME`).
    pub name: String,
    /// When it is sent.
    pub schedule: Schedule,
    /// The zone the schedule is read in.
    pub timezone: Tz,
    /// Subject line, a template.
    pub subject: String,
    /// Source names to include; empty means all.
    pub sources: Vec<String>,
    /// Most posts in one issue.
    pub max_posts: usize,
    /// Whether a period with no new posts is recorded as empty and sends nothing.
    pub skip_if_empty: bool,
    /// Template base name: `<template>.html.hbs` and `<template>.txt.hbs`.
    pub template: String,
    /// Whether a subscriber who confirms a sign-up for it gets a welcome mail.
    pub welcome: bool,
}

/// A cron schedule (5 fields, or 6 with seconds first) that has been parsed.
#[derive(Clone)]
pub struct Schedule {
    /// The expression as written.
    pub pattern: String,
    /// The parsed expression.
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
    /// Address `herald serve` listens on.
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
    /// The network's address.
    pub addr: std::net::IpAddr,
    /// Its prefix length in bits.
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
    /// Folder whose files replace the built-in templates of the same name.
    pub dir: PathBuf,
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
