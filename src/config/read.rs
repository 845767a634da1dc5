//! The section readers: raw spanned TOML ([`super::reader`]) to the typed model, every
//! problem recorded as `FILE:LINE: key.path: message`, and the checks that span keys
//! (duplicate names, references to unknown sources).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use chrono_tz::Tz;
use url::Url;

use super::Error;
use super::model::*;
use super::reader::{Located, Problems, TableReader};
use super::values::*;

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
        fill_with_newer: t.bool(p, "fill_with_newer").unwrap_or(true),
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
        .and_then(|m| {
            // VERP adds `+<token>` to the local part, which must stay within 64.
            let local = m.value.email.user();
            if local.len() > crate::domain::verp::LOCAL_MAX {
                p.at(
                    &m.span,
                    &m.key,
                    format!(
                        "the part before @ is {} characters; herald adds a signed token to it for each message (VERP), so it can be at most {} (e.g. \"bounces@…\")",
                        local.len(),
                        crate::domain::verp::LOCAL_MAX
                    ),
                );
                return None;
            }
            Some(m.value)
        });
    let soft_bounce_limit = t.integer(p, "soft_bounce_limit", 1..=100).unwrap_or(3) as u32;
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
    let ca_file = match t.string(p, "ca_file") {
        Some(given) => match read_ca_file(Path::new(&given.value)) {
            Ok(ca) => Some(Some(ca)),
            Err(problem) => {
                p.at(&given.span, &given.key, problem);
                None
            }
        },
        None => Some(None),
    };
    let dkim = match t.table(p, "dkim") {
        Some(mut d) => {
            let dkim = read_dkim(&mut d, p);
            d.finish(p);
            dkim.map(Some)
        }
        None if t.has("dkim") => None,
        None => Some(None),
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
        soft_bounce_limit,
        max_connections,
        rate,
        timeout,
        retry_attempts,
        max_message_size: max_message_size?,
        ca_file: ca_file?,
        dkim: dkim?,
    })
}

/// `[smtp.dkim]`: names checked here, the key when the signer loads it.
fn read_dkim(t: &mut TableReader<'_, '_>, p: &mut Problems) -> Option<DkimConfig> {
    t.forbid(
        p,
        "key",
        "the DKIM key is a secret: give a file with `private_key`, or the PEM in HERALD_DKIM_KEY",
    );
    let domain = t.required_string(p, "domain").and_then(|d| {
        let name = d.value.trim_end_matches('.').to_ascii_lowercase();
        let ok = !name.is_empty()
            && name.len() <= 253
            && name.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            });
        if ok {
            Some(name)
        } else {
            p.at(
                &d.span,
                &d.key,
                format!("\"{}\" is not a domain name", d.value),
            );
            None
        }
    });
    let selector = t.required_string(p, "selector").and_then(|s| {
        let ok = !s.value.is_empty()
            && s.value.len() <= 63
            && s.value.split('.').all(|l| {
                !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if ok {
            Some(s.value)
        } else {
            p.at(
                &s.span,
                &s.key,
                format!(
                    "\"{}\" is not a selector (letters, digits, '-' and '.')",
                    s.value
                ),
            );
            None
        }
    });
    let algorithm = t
        .parsed(p, "algorithm", |s| match s {
            "rsa-sha256" => Ok(DkimAlgorithm::RsaSha256),
            "ed25519-sha256" => Ok(DkimAlgorithm::Ed25519Sha256),
            other => Err(format!(
                "\"{other}\" is not a DKIM algorithm (use \"rsa-sha256\" or \"ed25519-sha256\")"
            )),
        })
        .map(|a| a.value);
    let algorithm = if t.has("algorithm") {
        algorithm?
    } else {
        DkimAlgorithm::RsaSha256
    };
    let private_key = t.string(p, "private_key").map(|k| PathBuf::from(k.value));
    let headers = match t.strings(p, "headers") {
        Some(list) => {
            let names: Vec<String> = list.iter().map(|h| h.value.clone()).collect();
            for h in &list {
                if h.value.is_empty()
                    || !h
                        .value
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                {
                    p.at(
                        &h.span,
                        &h.key,
                        format!("\"{}\" is not a header name", h.value),
                    );
                }
            }
            if !names.iter().any(|n| n.eq_ignore_ascii_case("from")) {
                p.at(
                    &t.span_of("headers").unwrap_or_default(),
                    t.key("headers"),
                    "must include \"From\" (RFC 6376 §5.4)",
                );
                return None;
            }
            names
        }
        None if t.has("headers") => return None,
        None => DKIM_DEFAULT_HEADERS
            .iter()
            .map(|h| (*h).to_owned())
            .collect(),
    };
    Some(DkimConfig {
        domain: domain?,
        selector: selector?,
        algorithm,
        private_key,
        headers,
    })
}

/// Reads `smtp.ca_file`: PEM, at least one certificate, each one parseable.
fn read_ca_file(path: &Path) -> Result<CaFile, String> {
    use tokio_rustls::rustls::pki_types::CertificateDer;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    let shown = path.display();
    // A regular file of sane size: a device or a FIFO here would hang every command.
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    if !meta.is_file() || meta.len() > 1024 * 1024 {
        return Err(format!(
            "{shown} is not a PEM file of at most 1 MiB (a regular file of certificates)"
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let certificates = CertificateDer::pem_slice_iter(&bytes)
        .map(|c| c.map(|c| c.to_vec()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{shown} is not a PEM certificate file: {e}"))?;
    if certificates.is_empty() {
        return Err(format!(
            "{shown} holds no certificate (expected PEM: -----BEGIN CERTIFICATE-----)"
        ));
    }
    // The same check the TLS stack makes, now rather than at the first send.
    let mut roots = tokio_rustls::rustls::RootCertStore::empty();
    for (i, der) in certificates.iter().enumerate() {
        roots
            .add(CertificateDer::from(der.as_slice()))
            .map_err(|e| {
                format!(
                    "certificate {} in {shown} is not usable as a CA: {e}",
                    i + 1
                )
            })?;
    }
    Ok(CaFile {
        path: path.to_path_buf(),
        certificates,
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
    let welcome = t.bool(p, "welcome").unwrap_or(true);
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
        welcome,
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
