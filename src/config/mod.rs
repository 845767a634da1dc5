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

mod model;
mod read;
pub mod reader;
mod secrets;
mod values;

use std::fmt;

pub use model::*;
pub use read::{load, parse};
pub use reader::Problem;
pub use secrets::{Secrets, WeakSecret};
pub use values::STEMMER_LANGUAGES;

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

#[cfg(test)]
mod tests {
    use super::values::*;
    use super::*;
    use std::path::{Path, PathBuf};
    use std::time::Duration;

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
