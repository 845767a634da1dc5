//! What the web side asks of the rest of herald: the [`Site`] trait, which the pipeline
//! implements, so that `http` depends on no layer above it, and the [`Error`] its answers
//! carry, which maps to a status code.

use axum::http::StatusCode;
use futures_util::future::BoxFuture;

use crate::config::Config;
use crate::domain::{IssueId, SubscriberEmail, SubscriberName};
use crate::render::RenderedIssue;
use crate::store::{ConfirmLink, ConfirmOutcome, Store};
use crate::telemetry::Metrics;

/// A failure behind a page; never the visitor's fault, never shown in detail.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store does not answer: 503, try again in a minute.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// Something of ours failed: 500.
    #[error("{0}")]
    Internal(String),
}

impl Error {
    pub fn status(&self) -> StatusCode {
        match self {
            Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// An answer that may have to wait for the store or the relay.
pub type Answer<'a, T> = BoxFuture<'a, Result<T, Error>>;

/// What the pages and forms need from herald.
pub trait Site: Send + Sync + 'static {
    fn config(&self) -> &Config;
    fn store(&self) -> &Store;
    fn metrics(&self) -> &Metrics;
    /// Now, by herald's clock.
    fn now(&self) -> chrono::DateTime<chrono::Utc>;
    /// The page templates as loaded now (they are reloaded on SIGHUP).
    fn page_templates(&self) -> std::sync::Arc<crate::render::Templates>;
    /// Records a sign-up durably (its mail queued), then sends the mail in the
    /// background; nothing about a known address changes.
    fn sign_up<'a>(
        &'a self,
        email: &'a SubscriberEmail,
        name: Option<&'a SubscriberName>,
        digests: &'a [String],
    ) -> Answer<'a, ()>;
    /// What a confirm link is, without following it.
    fn check_confirm_link<'a>(&'a self, token: &'a str) -> Answer<'a, ConfirmLink>;
    /// Follows a confirm link; `None` for a link herald did not sign.
    fn confirm<'a>(&'a self, token: &'a str) -> Answer<'a, Option<ConfirmOutcome>>;
    /// Whether an unsubscribe link is good, without acting on it.
    fn unsubscribe_link_is_valid<'a>(&'a self, token: &'a str) -> Answer<'a, bool>;
    /// Unsubscribes the subscriber the link names (idempotent); `false` for a bad link.
    fn unsubscribe<'a>(&'a self, token: &'a str) -> Answer<'a, bool>;
    /// An issue as sent, for its web page; `None` when there is none to show.
    fn archive_issue(&self, id: IssueId) -> Answer<'_, Option<RenderedIssue>>;
    /// The secrets provider webhooks are verified with (`None`: that provider's events
    /// are refused).
    fn webhook_secrets(&self) -> WebhookSecrets<'_>;
    /// Applies a provider's verified bounce or complaint; says what it did.
    fn provider_event(&self, event: ProviderEvent) -> Answer<'_, String>;
}

/// `HERALD_MAILGUN_WEBHOOK_KEY` and `HERALD_POSTMARK_WEBHOOK_AUTH`.
#[derive(Debug, Clone, Copy, Default)]
pub struct WebhookSecrets<'a> {
    pub mailgun_key: Option<&'a str>,
    /// `user:password`.
    pub postmark_auth: Option<&'a str>,
}

/// A bounce or complaint a provider reported, its signature verified.
#[derive(Debug, Clone)]
pub struct ProviderEvent {
    /// `mailgun`, `postmark`.
    pub source: &'static str,
    pub recipient: SubscriberEmail,
    /// The Message-ID of the message it is about (herald's, or the provider's).
    pub message_id: Option<String>,
    /// The provider's id of the event, for one that names no message.
    pub event_id: Option<String>,
    pub outcome: crate::store::EventOutcome,
    pub class: crate::store::EventClass,
    pub detail: String,
}
