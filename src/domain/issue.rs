use chrono::{DateTime, Utc};
use serde::Serialize;

use super::PostId;

/// The store's key for an issue (one digest email for one period).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct IssueId(pub i64);

impl std::fmt::Display for IssueId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Where an issue stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IssueStatus {
    /// Deliveries are queued or deferred.
    Sending,
    /// Every delivery reached a final state (sent or failed).
    Sent,
    /// Nothing new in the window: recorded so the period is not retried, nothing sent.
    Empty,
}

impl IssueStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sending => "sending",
            Self::Sent => "sent",
            Self::Empty => "empty",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "sending" => Some(Self::Sending),
            "sent" => Some(Self::Sent),
            "empty" => Some(Self::Empty),
            _ => None,
        }
    }
}

/// One digest for one period: which posts it carries and who must receive it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Issue {
    pub id: IssueId,
    pub digest: String,
    /// The scheduled instant this issue is for; unique per digest.
    pub due_at: DateTime<Utc>,
    /// Posts first seen after this (exclusive) and up to `window_end` (inclusive).
    pub window_start: Option<DateTime<Utc>>,
    pub window_end: DateTime<Utc>,
    pub subject: String,
    pub post_ids: Vec<PostId>,
    pub status: IssueStatus,
    pub created_at: DateTime<Utc>,
    /// Times the relay refused this issue's messages wholesale (see the sender's guard).
    pub relay_refusals: u32,
}

/// The state of one message of one issue to one subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    /// Not tried yet.
    Queued,
    /// Accepted by the server (its 250 was received before this was written).
    Sent,
    /// A temporary failure (4xx, connection trouble): tried again later.
    Deferred,
    /// A permanent failure (5xx), or out of attempts.
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Sent => "sent",
            Self::Deferred => "deferred",
            Self::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "queued" => Some(Self::Queued),
            "sent" => Some(Self::Sent),
            "deferred" => Some(Self::Deferred),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}
