//! Delivery: from a rendered issue and the ledger to messages accepted by the mail server.
//!
//! | part | file | what it does |
//! | --- | --- | --- |
//! | message | [`message`] | builds each MIME message: multipart/alternative, Message-ID, List-Id, List-Unsubscribe (+ One-Click), envelope sender |
//! | transport | [`transport`] | `file://DIR` (one `.eml` per message) or SMTP through lettre's pooled async transport |
//! | sender | [`sender`] | walks the ledger in batches, bounded concurrency, a token-bucket rate, retries with backoff, bounces |
//!
//! The rule that makes delivery crash-safe: a delivery is marked sent only after the
//! server's 250, and every resumed run sends only queued and due deferred rows. The
//! Message-ID comes from (issue, subscriber), so the one unavoidable duplicate (a crash
//! between the 250 and the commit) is one a mail client collapses.

pub mod message;
pub mod sender;
pub mod transport;

pub use message::MessageContext;
pub use sender::{SendJob, SendReport, SendSettings, send_issue};
pub use transport::Transport;

/// Why a message could not be delivered, with the predicates that decide what happens next.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{reply}")]
pub struct SendError {
    /// The server's reply, or what went wrong on the way.
    pub reply: String,
    permanent: bool,
}

impl SendError {
    pub fn transient(reply: impl Into<String>) -> Self {
        Self {
            reply: reply.into(),
            permanent: false,
        }
    }

    pub fn permanent(reply: impl Into<String>) -> Self {
        Self {
            reply: reply.into(),
            permanent: true,
        }
    }

    /// A 5xx reply: do not retry.
    pub fn is_permanent(&self) -> bool {
        self.permanent
    }

    /// A 4xx reply or trouble with the connection: retry later.
    pub fn is_transient(&self) -> bool {
        !self.permanent
    }

    /// Whether the failure is about the recipient's address, so that it counts towards
    /// bouncing the subscriber. A permanent reply counts unless its enhanced status code
    /// (RFC 3463) blames the mail system (5.3), the protocol (5.5), the content (5.6) or a
    /// policy (5.7): a relay that refuses our sender must not bounce every subscriber.
    pub fn indicts_recipient(&self) -> bool {
        if !self.permanent {
            return false;
        }
        let enhanced = self
            .reply
            .split_whitespace()
            .nth(1)
            .filter(|c| c.starts_with("5.") && c.len() >= 3);
        !matches!(
            enhanced.map(|c| &c[..3]),
            Some("5.3" | "5.5" | "5.6" | "5.7")
        )
    }
}

/// Why delivery could not start at all.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("SMTP relay {host}: {message}")]
    Relay { host: String, message: String },
    #[error("smtp.from \"{0}\" is not a usable address")]
    From(String),
    #[error("cannot create the outbox folder {path}: {source}")]
    Outbox {
        path: String,
        source: std::io::Error,
    },
}
