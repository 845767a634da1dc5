use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::Serialize;

/// The store's key for a subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct SubscriberId(pub i64);

impl fmt::Display for SubscriberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A validated email address. Addresses compare case-insensitively everywhere herald
/// looks them up; the spelling the subscriber gave is kept for sending.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct SubscriberEmail(String);

impl SubscriberEmail {
    /// Validates an address typed by a person or read from a file.
    pub fn parse(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let bad = |why: &str| {
            Err(format!(
                "\"{}\" is not a valid email address: {why}",
                shorten(t, 80)
            ))
        };
        if t.is_empty() {
            return bad("it is empty");
        }
        if t.len() > 254 {
            return bad("it is longer than 254 characters");
        }
        if t.chars().any(|c| {
            c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ',' | ';' | '"')
        }) {
            return bad("it contains spaces or characters not allowed in an address");
        }
        let Some((local, domain)) = t.rsplit_once('@') else {
            return bad("it has no @");
        };
        if local.is_empty() || local.len() > 64 {
            return bad("the part before @ is empty or too long");
        }
        if domain.starts_with('[') {
            return bad("address literals (a bracketed IP address) are not accepted");
        }
        if domain
            .rsplit('.')
            .next()
            .is_some_and(|tld| !tld.is_empty() && tld.bytes().all(|b| b.is_ascii_digit()))
        {
            return bad("an IP address is not a mail domain");
        }
        if !domain.contains('.')
            || domain.starts_with('.')
            || domain.ends_with('.')
            || domain.contains("..")
        {
            return bad("the domain is not a full domain name");
        }
        if lettre::Address::from_str(t).is_err() {
            return bad("it is not an address a mail server accepts");
        }
        Ok(Self(t.to_owned()))
    }

    /// An address as it was stored, without today's rules: a stored row that fails a
    /// newer rule is listed and fails only its own delivery (see [`Self::check`]).
    pub fn from_stored(s: String) -> Self {
        Self(s)
    }

    /// Whether the address passes today's rules, with the reason when it does not.
    pub fn check(&self) -> Result<(), String> {
        Self::parse(&self.0).map(|_| ())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The address with everything but the first letter and the domain hidden, for logs.
    pub fn masked(&self) -> String {
        match self.0.split_once('@') {
            Some((local, domain)) => {
                let first: String = local.chars().take(1).collect();
                format!("{first}***@{domain}")
            }
            None => "***".into(),
        }
    }
}

impl fmt::Display for SubscriberEmail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Longest name accepted, in characters.
pub const NAME_MAX_CHARS: usize = 100;

/// A subscriber's display name: no control characters (so never a header break), no
/// leading or trailing space, at most [`NAME_MAX_CHARS`] characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriberName(String);

impl SubscriberName {
    /// Validates a name typed at the command line or read from a file; `None` for an
    /// empty one.
    pub fn parse(s: &str) -> Result<Option<Self>, String> {
        let t = s.trim();
        if t.chars().any(|c| c.is_control()) {
            return Err(format!(
                "the name \"{}\" contains control characters (line breaks, tabs, …)",
                shorten(&t.escape_debug().to_string(), 60)
            ));
        }
        let chars = t.chars().count();
        if chars > NAME_MAX_CHARS {
            return Err(format!(
                "the name \"{}\" is {chars} characters long; at most {NAME_MAX_CHARS} are accepted",
                shorten(t, 40)
            ));
        }
        Ok((!t.is_empty()).then(|| Self(t.to_owned())))
    }

    /// A name from a web form, made acceptable: controls become spaces, runs of space
    /// fold, the rest is cut at [`NAME_MAX_CHARS`]. `None` when nothing is left.
    pub fn lenient(s: &str) -> Option<Self> {
        let folded: String = s
            .split(|c: char| c.is_whitespace() || c.is_control())
            .filter(|w| !w.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        let cut: String = folded.chars().take(NAME_MAX_CHARS).collect();
        let cut = cut.trim_end();
        (!cut.is_empty()).then(|| Self(cut.to_owned()))
    }

    /// Whether a stored name passes today's rules (the reason when not).
    pub fn check_stored(s: &str) -> Result<(), String> {
        Self::parse(s).map(|_| ())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// `s` cut to `max` characters with "…", for echoing bad input in an error.
pub fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut cut: String = s.chars().take(max.saturating_sub(1)).collect();
        cut.push('\u{2026}');
        cut
    }
}

/// Where a subscriber stands. Only `Confirmed` subscribers receive digests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SubscriberStatus {
    /// Signed up, has not confirmed the address yet (double opt-in).
    Pending,
    Confirmed,
    Unsubscribed,
    /// Mail to the address bounced: once for good (the address does not exist), or
    /// `soft_bounce_limit` times in a row for a passing reason (mailbox full, delayed).
    Bounced,
    /// The recipient reported a digest as spam (an ARF report or a provider's event):
    /// unsubscribed at once, and never re-added without the operator saying so.
    Complained,
}

impl SubscriberStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Confirmed => "confirmed",
            Self::Unsubscribed => "unsubscribed",
            Self::Bounced => "bounced",
            Self::Complained => "complained",
        }
    }

    /// Bounced or complained: suppressed, so that no import, sign-up or link makes the
    /// address receive mail again unless the operator says so explicitly.
    pub fn is_suppressed(self) -> bool {
        matches!(self, Self::Bounced | Self::Complained)
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(Self::Pending),
            "confirmed" => Some(Self::Confirmed),
            "unsubscribed" => Some(Self::Unsubscribed),
            "bounced" => Some(Self::Bounced),
            "complained" => Some(Self::Complained),
            _ => None,
        }
    }
}

/// A subscriber as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Subscriber {
    pub id: SubscriberId,
    pub email: SubscriberEmail,
    pub name: Option<String>,
    pub status: SubscriberStatus,
    /// The digests they receive.
    pub digests: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub confirmed_at: Option<DateTime<Utc>>,
    /// The random part of the links mailed to them (`None` only for rows older than
    /// nonces, which get v1 links).
    #[serde(skip)]
    pub token_nonce: Option<String>,
    /// Why the subscriber is bounced or complained (the refusal, the report).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_addresses() {
        for ok in [
            "you@example.org",
            "First.Last+news@mail.example.co.uk",
            " spaced@example.org ",
        ] {
            assert!(SubscriberEmail::parse(ok).is_ok(), "{ok}");
        }
        assert_eq!(
            SubscriberEmail::parse(" a@b.org ").unwrap().as_str(),
            "a@b.org"
        );
    }

    #[test]
    fn rejects_what_is_not_an_address() {
        for bad in [
            "",
            "plain",
            "@example.org",
            "a@",
            "a@localhost",
            "a b@example.org",
            "a@example..org",
            "<a@b.org>",
            "a@b.org, c@d.org",
            "user@[127.0.0.1]",
            "user@127.0.0.1",
            "user@[IPv6:::1]",
        ] {
            let err = SubscriberEmail::parse(bad).unwrap_err();
            assert!(err.contains("is not a valid email address"), "{bad}: {err}");
        }
    }

    #[test]
    fn a_huge_bad_address_is_not_echoed_in_full() {
        let huge = "x".repeat(20_000_000);
        let err = SubscriberEmail::parse(&huge).unwrap_err();
        assert!(err.len() < 300, "{} bytes", err.len());
    }

    #[test]
    fn names_with_controls_or_too_long_are_refused_and_forms_are_cleaned() {
        assert_eq!(
            SubscriberName::parse("  Ana Smith ")
                .unwrap()
                .unwrap()
                .as_str(),
            "Ana Smith"
        );
        assert_eq!(SubscriberName::parse("   ").unwrap(), None);
        for bad in ["Mallory\r\nBcc: x@evil.org", "tab\there", "nul\0"] {
            let err = SubscriberName::parse(bad).unwrap_err();
            assert!(err.contains("control characters"), "{err}");
        }
        let long = "é".repeat(101);
        assert!(
            SubscriberName::parse(&long)
                .unwrap_err()
                .contains("101 characters")
        );
        assert!(SubscriberName::parse(&"é".repeat(100)).unwrap().is_some());
        assert_eq!(
            SubscriberName::lenient("Mallory\r\nBcc:  x@evil.org\u{7}")
                .unwrap()
                .as_str(),
            "Mallory Bcc: x@evil.org"
        );
        assert_eq!(
            SubscriberName::lenient(&"a".repeat(500))
                .unwrap()
                .as_str()
                .len(),
            100
        );
        assert_eq!(SubscriberName::lenient("\r\n\t"), None);
    }

    #[test]
    fn masks_addresses_for_logs() {
        assert_eq!(
            SubscriberEmail::parse("anna@example.org").unwrap().masked(),
            "a***@example.org"
        );
    }
}
