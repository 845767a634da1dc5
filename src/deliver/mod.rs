//! Delivery: from a rendered issue and the ledger to messages accepted by the mail server.
//!
//! | part | file | what it does |
//! | --- | --- | --- |
//! | dkim | [`dkim`] | signs each finished message (RFC 6376 relaxed/relaxed, RSA-SHA256 or Ed25519-SHA256) |
//! | message | [`message`] | builds each MIME message: multipart/alternative, Message-ID, List-Id, List-Unsubscribe (+ One-Click), envelope sender |
//! | returned | [`returned`] | reads what comes back to the bounce address: DSNs, ARF complaints, mailto unsubscribes |
//! | transport | [`transport`] | `file://DIR` (one `.eml` per message) or SMTP through lettre's pooled async transport |
//! | sender | [`sender`] | walks the ledger in batches, bounded concurrency, a token-bucket rate, retries with backoff, bounces |
//!
//! The rule that makes delivery crash-safe: a delivery is marked sent only after the
//! server's 250, and every resumed run sends only queued and due deferred rows. The
//! Message-ID comes from (issue, subscriber), so the one unavoidable duplicate (a crash
//! between the 250 and the commit) is one a mail client collapses.

pub mod dkim;
pub mod message;
pub mod returned;
pub mod sender;
pub mod transport;

pub use message::MessageContext;
pub use sender::{SendJob, SendReport, SendSettings, send_issue};
pub use transport::Transport;

/// Which step of sending a reply (or failure) came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Connecting, TLS, EHLO, AUTH.
    Connect,
    /// `MAIL FROM`: about our sender.
    Mail,
    /// `RCPT TO`: about the address.
    Rcpt,
    /// The `DATA` command.
    Data,
    /// The reply after the message content.
    Content,
    /// herald could not build or hand over the message (nothing was sent).
    Local,
}

/// Who a refusal blames: the one classification of refusals (DESIGN, "Rules that every
/// change keeps"), used wherever a reply decides what happens to a subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blame {
    /// The address does not exist or is disabled (5.1.x, 5.2.1, a bare 550/551/553 to
    /// `RCPT`): counts towards bouncing the subscriber.
    Recipient,
    /// Temporary (4xx) or mailbox full (5.2.2): retried later, never a bounce.
    Soft,
    /// The message: too big (5.3.4, 5.2.3, 552 to the content), line too long or syntax
    /// (500/501, 5.5.x), content (5.6.x, 554 to `DATA`).
    Message,
    /// A policy refusal (5.7.x).
    Policy,
    /// The relay or the way to it: connection, TLS, authentication, our sender refused.
    Relay,
    /// herald could not build the message for this subscriber.
    Build,
}

impl Blame {
    /// How a refusal with this blame is recorded against the address.
    pub fn event_class(self) -> crate::store::EventClass {
        use crate::store::EventClass;
        match self {
            Self::Recipient => EventClass::Hard,
            Self::Soft => EventClass::Soft,
            Self::Message | Self::Build => EventClass::Message,
            Self::Policy => EventClass::Policy,
            Self::Relay => EventClass::Relay,
        }
    }
}

/// An RFC 3463 enhanced status code, `class.subject.detail`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Enhanced(pub u8, pub u16, pub u16);

impl Enhanced {
    /// The enhanced code at the start of a reply's text ("5.1.1 No such user").
    pub fn parse(text: &str) -> Option<Self> {
        let word = text.split_whitespace().next()?;
        let mut parts = word.splitn(3, '.');
        // RFC 3463: one digit, then one to three, then one to three ("5.1.2027" is a date).
        fn digits(s: &str, most: usize) -> Option<&str> {
            (!s.is_empty() && s.len() <= most && s.bytes().all(|b| b.is_ascii_digit())).then_some(s)
        }
        let class: u8 = digits(parts.next()?, 1)?.parse().ok()?;
        let subject: u16 = digits(parts.next()?, 3)?.parse().ok()?;
        let detail: u16 = digits(parts.next()?, 3)?.parse().ok()?;
        matches!(class, 2 | 4 | 5).then_some(Self(class, subject, detail))
    }
}

/// Why a message could not be delivered, with the predicates that decide what happens
/// next. Built from lettre's typed error (its code), never from its display text.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{reply}")]
pub struct SendError {
    /// The server's reply ("550 5.1.1 No such user"), or what went wrong on the way.
    pub reply: String,
    /// The SMTP reply code, when there was a reply.
    pub code: Option<u16>,
    pub stage: Stage,
    /// Set when the relay cannot be used at all as configured (TLS not offered, login
    /// refused, nothing listening, a certificate not trusted): what the operator should
    /// change. Such a failure is stated once, at ERROR, and stops the run.
    pub fix: Option<String>,
}

impl SendError {
    /// A reply from the server to `stage`; `text` is the reply without its code.
    pub fn reply(stage: Stage, code: u16, text: &str) -> Self {
        let text = text.trim();
        Self {
            reply: format!("{code} {text}").trim().to_owned(),
            code: Some(code),
            stage,
            fix: None,
        }
    }

    /// The relay cannot be used as configured: `problem`, and what to change.
    pub fn unusable_relay(problem: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            reply: problem.into(),
            code: None,
            stage: Stage::Connect,
            fix: Some(fix.into()),
        }
    }

    /// Whether the relay cannot be used as configured (see [`Self::fix`]).
    pub fn is_relay_unusable(&self) -> bool {
        self.fix.is_some()
    }

    /// No reply: the connection, TLS, a timeout. Always temporary.
    pub fn connection(reply: impl Into<String>) -> Self {
        Self {
            reply: reply.into(),
            code: None,
            stage: Stage::Connect,
            fix: None,
        }
    }

    /// herald could not build or write the message; never the recipient's fault.
    pub fn local(reply: impl Into<String>, retry: bool) -> Self {
        Self {
            reply: reply.into(),
            // A local failure worth retrying (a full disk) looks like a 4xx, a final one
            // like a 5xx; `blame` tells them from the relay's.
            code: Some(if retry { 451 } else { 550 }),
            stage: Stage::Local,
            fix: None,
        }
    }

    /// herald refuses to hand over a message over the relay's known size limit.
    pub fn over_limit(reply: impl Into<String>) -> Self {
        Self {
            reply: reply.into(),
            code: Some(552),
            stage: Stage::Local,
            fix: None,
        }
    }

    /// The enhanced status code, if the reply has one.
    pub fn enhanced(&self) -> Option<Enhanced> {
        let text = self.reply.split_once(' ').map_or("", |(_, t)| t);
        self.code.and(Enhanced::parse(text))
    }

    /// Who the failure blames.
    pub fn blame(&self) -> Blame {
        let Some(code) = self.code else {
            return Blame::Relay;
        };
        if self.stage == Stage::Local {
            return if code < 500 {
                Blame::Soft
            } else {
                Blame::Build
            };
        }
        if code < 500 {
            return Blame::Soft;
        }
        // Postfix (smtpd_delay_reject) refuses a bad sender at RCPT, with 5.1.0 or 5.7.1;
        // a blocklist or a missing PTR record is about our server: never the address.
        if about_us(&self.reply) && self.stage != Stage::Content {
            return Blame::Relay;
        }
        if let Some(Enhanced(_, subject, detail)) = self.enhanced() {
            return match (subject, detail) {
                _ if self.stage == Stage::Mail && subject != 3 => Blame::Relay,
                (1, 7 | 8) => Blame::Relay,
                (1, _) | (2, 1) => Blame::Recipient,
                (2, 2) => Blame::Soft,
                (2, 3) | (3, _) | (5, _) | (6, _) => Blame::Message,
                (7, _) => Blame::Policy,
                _ => Blame::Relay,
            };
        }
        match (self.stage, code) {
            (Stage::Mail, 552) => Blame::Message,
            (Stage::Rcpt, 550 | 551 | 553) => Blame::Recipient,
            (Stage::Rcpt, 500 | 501 | 503 | 504) => Blame::Message,
            (Stage::Rcpt, 552) => Blame::Soft,
            (Stage::Data | Stage::Content, _) => Blame::Message,
            _ => Blame::Relay,
        }
    }

    /// The relay refused the message for its size (5.3.4, 5.2.3, a bare 552 to the
    /// message or to MAIL FROM).
    pub fn is_too_big(&self) -> bool {
        if self.stage == Stage::Local || self.blame() != Blame::Message {
            return false;
        }
        match self.enhanced() {
            Some(Enhanced(_, 3, 4) | Enhanced(_, 2, 3)) => true,
            Some(_) => false,
            None => self.code == Some(552),
        }
    }

    /// herald's own refusal to hand over a message bigger than the relay's limit as far
    /// as it is known (a 552 from [`Stage::Local`]): final, unless a smaller rendering is
    /// on its way.
    pub fn is_over_known_limit(&self) -> bool {
        self.stage == Stage::Local && self.code == Some(552)
    }

    /// Worth trying again later: a 4xx, mailbox full, trouble with the connection.
    pub fn is_transient(&self) -> bool {
        matches!(self.blame(), Blame::Soft) || self.code.is_none()
    }

    /// Final: trying again would get the same answer.
    pub fn is_permanent(&self) -> bool {
        !self.is_transient()
    }

    /// Whether the failure is about the recipient's address, so that it counts towards
    /// bouncing the subscriber. Size, syntax, policy, content and relay refusals never
    /// do, and neither does a message herald could not build.
    pub fn indicts_recipient(&self) -> bool {
        self.blame() == Blame::Recipient
    }

    /// Whether a temporary refusal is about the mailbox itself (full, disabled: x.2.x,
    /// or a bare 450/452 to `RCPT`), so that its last retry counts as a soft bounce. A
    /// relay's own trouble (4.3.x, 4.4.x, greylisting 4.7.x, a 451 to the data) never
    /// does: a relay that defers everyone must not bounce the list.
    pub fn is_about_mailbox(&self) -> bool {
        if greylisted(&self.reply) {
            return false;
        }
        match self.enhanced() {
            Some(Enhanced(_, 2, 1 | 2)) => self.stage != Stage::Mail,
            Some(_) => false,
            None => self.stage == Stage::Rcpt && matches!(self.code, Some(450 | 452)),
        }
    }

    /// Whether the relay refused the message for a reason of its own (counted towards
    /// "the relay refuses everything").
    pub fn is_relay_refusal(&self) -> bool {
        self.is_permanent() && matches!(self.blame(), Blame::Message | Blame::Policy | Blame::Relay)
    }
}

/// Whether a refusal is about our sender or our server rather than the address: the
/// sender refused, a blocklist, a missing PTR record, SPF or DMARC. Addresses and hosts
/// quoted in `<…>` or `[…]` are left out (`<ops@dmarc.example>` is an address).
pub fn about_us(reply: &str) -> bool {
    const WORDS: &[&str] = &[
        "sender address",
        "sender rejected",
        "ptr record",
        "reverse dns",
        "your ip",
        "spf",
        "dmarc",
        "blocked",
        "blacklist",
        "blocklist",
        "listed at",
        "spamhaus",
    ];
    let lower = unquoted(reply).to_ascii_lowercase();
    WORDS.iter().any(|w| lower.contains(w))
}

/// Greylisting: "try again later", whatever code it comes with.
pub fn greylisted(reply: &str) -> bool {
    let lower = reply.to_ascii_lowercase();
    lower.contains("greylist") || lower.contains("graylist")
}

/// `text` without what is inside `<…>` and `[…]`.
fn unquoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut depth = 0usize;
    for c in text.chars() {
        match c {
            '<' | '[' => depth += 1,
            '>' | ']' => depth = depth.saturating_sub(1),
            c if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

/// Whether a reply stored in the ledger ("550 5.1.1 …", "552 Message size …") blamed
/// the address, as [`SendError::indicts_recipient`] decides; the step is inferred from the
/// code (552, 500, 501, 554 answer the message; the rest the recipient).
pub fn stored_reply_blames_address(reply: &str) -> bool {
    let (code, text) = reply.split_once(' ').unwrap_or((reply, ""));
    let Ok(code) = code.parse::<u16>() else {
        return false;
    };
    let stage = match code {
        552 | 500 | 501 | 554 => Stage::Content,
        _ => Stage::Rcpt,
    };
    SendError::reply(stage, code, text).indicts_recipient()
}

/// Why delivery could not start at all.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("SMTP relay {host}: {message}")]
    Relay { host: String, message: String },
    #[error("{0}")]
    Dkim(String),
    #[error("cannot create the outbox folder {path}: {source}")]
    Outbox {
        path: String,
        source: std::io::Error,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(stage: Stage, reply: &str) -> SendError {
        let (code, text) = reply.split_once(' ').unwrap_or((reply, ""));
        SendError::reply(stage, code.parse().unwrap(), text)
    }

    #[test]
    fn only_replies_about_the_address_count_towards_a_bounce() {
        use Stage::*;
        for (stage, reply) in [
            (Rcpt, "550 5.1.1 No such user here"),
            (Rcpt, "550 mailbox unavailable"),
            (Rcpt, "553 mailbox name not allowed"),
            (Content, "550 5.1.1 user unknown"),
            (Rcpt, "550 5.2.1 mailbox disabled"),
        ] {
            assert!(at(stage, reply).indicts_recipient(), "{reply}");
        }
        for (stage, reply, blame) in [
            (
                Content,
                "552 5.3.4 Message too big for system",
                Blame::Message,
            ),
            (
                Content,
                "552 Message size exceeds fixed limit",
                Blame::Message,
            ),
            (
                Mail,
                "552 5.3.4 Message size exceeds fixed limit",
                Blame::Message,
            ),
            (Content, "500 Line too long", Blame::Message),
            (Content, "500 5.5.0 Line too long", Blame::Message),
            (Data, "554 Transaction failed", Blame::Message),
            (
                Content,
                "554 5.6.0 Message content rejected",
                Blame::Message,
            ),
            (Rcpt, "550 5.7.1 Sender rejected by policy", Blame::Relay),
            (Rcpt, "550 5.7.1 Message rejected by policy", Blame::Policy),
            (Mail, "550 5.1.0 Sender address rejected", Blame::Relay),
            (Mail, "550 sender rejected", Blame::Relay),
            (Rcpt, "552 5.2.2 Mailbox full", Blame::Soft),
            (Rcpt, "451 4.7.1 Greylisted", Blame::Soft),
            (Rcpt, "501 Syntax error in parameters", Blame::Message),
            (Rcpt, "554 5.7.1 Relay access denied", Blame::Policy),
            (
                Rcpt,
                "550 5.1.0 <news@example.org>: Sender address rejected: User unknown",
                Blame::Relay,
            ),
        ] {
            let e = at(stage, reply);
            assert_eq!(e.blame(), blame, "{reply}");
            assert!(!e.indicts_recipient(), "{reply}");
        }
        assert!(!SendError::local("cannot build the message", false).indicts_recipient());
        assert_eq!(SendError::local("x", false).blame(), Blame::Build);
        assert!(!SendError::connection("connection refused").indicts_recipient());
    }

    #[test]
    fn only_a_temporary_refusal_about_the_mailbox_counts_as_a_soft_bounce() {
        assert!(at(Stage::Rcpt, "452 4.2.2 Mailbox full").is_about_mailbox());
        assert!(at(Stage::Content, "552 5.2.2 Over quota").is_about_mailbox());
        assert!(at(Stage::Rcpt, "450 Requested mail action not taken").is_about_mailbox());
        for relay in [
            "451 4.7.1 Greylisted, try again later",
            "451 4.3.0 Local error in processing",
            "421 4.4.2 Timeout",
        ] {
            assert!(!at(Stage::Rcpt, relay).is_about_mailbox(), "{relay}");
            assert!(!at(Stage::Content, relay).is_about_mailbox(), "{relay}");
        }
        assert!(!at(Stage::Content, "451 Try again").is_about_mailbox());
        assert!(
            !at(
                Stage::Rcpt,
                "450 4.2.0 <a@b.org>: Recipient address rejected: Greylisted"
            )
            .is_about_mailbox()
        );
        // A blocklist answer to RCPT is about our server, not the address.
        assert_eq!(
            at(Stage::Rcpt, "550 Your IP is listed at spamhaus").blame(),
            Blame::Relay
        );
        assert_eq!(
            at(
                Stage::Rcpt,
                "550 5.1.1 <ops@dmarcian.example>: User unknown"
            )
            .blame(),
            Blame::Recipient
        );
        assert!(!SendError::connection("timed out").is_about_mailbox());
    }

    #[test]
    fn mailbox_full_and_temporary_replies_are_retried_and_the_rest_is_final() {
        assert!(at(Stage::Rcpt, "552 5.2.2 Mailbox full").is_transient());
        assert!(at(Stage::Rcpt, "421 4.3.2 busy").is_transient());
        assert!(SendError::connection("reset").is_transient());
        assert!(at(Stage::Content, "552 5.3.4 too big").is_permanent());
        assert!(at(Stage::Rcpt, "550 5.1.1 unknown").is_permanent());
        assert!(SendError::local("bad name", false).is_permanent());
        assert!(SendError::local("disk full", true).is_transient());
    }

    #[test]
    fn stored_replies_are_judged_the_same_way() {
        assert!(stored_reply_blames_address("550 5.1.1 No such user"));
        assert!(stored_reply_blames_address("550 mailbox unavailable"));
        assert!(!stored_reply_blames_address(
            "552 Message size exceeds fixed limit"
        ));
        assert!(!stored_reply_blames_address("500 Line too long"));
        assert!(!stored_reply_blames_address("cannot build the message: x"));
    }

    #[test]
    fn size_refusals_are_told_apart() {
        assert!(at(Stage::Content, "552 5.3.4 Message too big").is_too_big());
        assert!(at(Stage::Content, "552 Message size exceeds fixed limit").is_too_big());
        assert!(at(Stage::Mail, "552 5.3.4 too big").is_too_big());
        assert!(!at(Stage::Content, "500 Line too long").is_too_big());
        assert!(!at(Stage::Rcpt, "552 5.2.2 Mailbox full").is_too_big());
        assert!(!SendError::local("cannot build", false).is_too_big());
        let local = SendError::over_limit("not sent: over the limit");
        assert!(!local.is_too_big() && local.is_over_known_limit());
    }

    #[test]
    fn enhanced_codes_are_read_from_the_reply_text() {
        assert_eq!(
            Enhanced::parse("5.1.1 No such user"),
            Some(Enhanced(5, 1, 1))
        );
        assert_eq!(Enhanced::parse("No such user"), None);
        assert_eq!(Enhanced::parse("5.1 x"), None);
        assert_eq!(Enhanced::parse("9.1.1 x"), None);
    }
}
