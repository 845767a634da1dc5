//! Parsers for single values: URLs, store and SMTP URLs, mailboxes, language tags. Each
//! returns the message to report at the value when it is wrong.

use std::path::PathBuf;

use url::Url;

use super::model::{SmtpTls, SmtpTransport, SourceLocation, StoreUrl};

pub(super) fn parse_http_url(s: &str) -> Result<Url, String> {
    let url = Url::parse(s).map_err(|e| format!("\"{s}\" is not a valid URL: {e}"))?;
    match url.scheme() {
        "http" | "https" if url.host_str().is_some() => Ok(url),
        "http" | "https" => Err(format!("\"{s}\" has no host")),
        other => Err(format!(
            "\"{s}\" must be an http or https URL, not {other}:"
        )),
    }
}

pub(super) fn with_trailing_slash(mut url: Url) -> Url {
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    url
}

pub(super) fn parse_source_location(s: &str) -> Result<SourceLocation, String> {
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

pub(super) fn parse_store_url(s: &str) -> Result<StoreUrl, String> {
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

pub(super) fn parse_smtp_url(s: &str) -> Result<SmtpTransport, String> {
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
pub(super) fn parse_mailbox(s: &str) -> Result<lettre::message::Mailbox, String> {
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

pub(super) fn parse_language(s: &str) -> Result<String, String> {
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

pub(super) fn parse_stemmer_language(s: &str) -> Result<String, String> {
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
