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
        let bad = |why: &str| Err(format!("\"{t}\" is not a valid email address: {why}"));
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

/// Where a subscriber stands. Only `Confirmed` subscribers receive digests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SubscriberStatus {
    /// Signed up, has not confirmed the address yet (double opt-in).
    Pending,
    Confirmed,
    Unsubscribed,
    /// Mail to the address failed permanently three times in a row.
    Bounced,
}

impl SubscriberStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Confirmed => "confirmed",
            Self::Unsubscribed => "unsubscribed",
            Self::Bounced => "bounced",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(Self::Pending),
            "confirmed" => Some(Self::Confirmed),
            "unsubscribed" => Some(Self::Unsubscribed),
            "bounced" => Some(Self::Bounced),
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
        ] {
            let err = SubscriberEmail::parse(bad).unwrap_err();
            assert!(err.contains("is not a valid email address"), "{bad}: {err}");
        }
    }

    #[test]
    fn masks_addresses_for_logs() {
        assert_eq!(
            SubscriberEmail::parse("anna@example.org").unwrap().masked(),
            "a***@example.org"
        );
    }
}
