//! herald as the web side sees it: the pipeline's implementation of [`http::Site`].

use crate::config::Config;
use crate::domain::token::TokenPurpose;
use crate::domain::{IssueId, SubscriberEmail, SubscriberName};
use crate::http::{self, Answer};
use crate::render::RenderedIssue;
use crate::store::{ConfirmLink, ConfirmOutcome, Store};
use crate::telemetry::Metrics;

use super::{DigestError, Herald, SignUp, SubscriptionError};

impl From<SubscriptionError> for http::Error {
    fn from(e: SubscriptionError) -> Self {
        match e {
            SubscriptionError::Store(e) => http::Error::Unavailable(e.to_string()),
            other => http::Error::Internal(other.to_string()),
        }
    }
}

impl From<DigestError> for http::Error {
    fn from(e: DigestError) -> Self {
        match e {
            DigestError::Store(e) => http::Error::Unavailable(e.to_string()),
            other => http::Error::Internal(other.to_string()),
        }
    }
}

impl http::Site for Herald {
    fn config(&self) -> &Config {
        &self.config
    }

    fn store(&self) -> &Store {
        &self.store
    }

    fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }

    fn page_templates(&self) -> std::sync::Arc<crate::render::Templates> {
        self.templates().base()
    }

    fn sign_up<'a>(
        &'a self,
        email: &'a SubscriberEmail,
        name: Option<&'a SubscriberName>,
        digests: &'a [String],
    ) -> Answer<'a, ()> {
        Box::pin(async move {
            if let SignUp::ConfirmationQueued { .. } =
                self.request_sign_up(email, name, digests).await?
            {
                let herald = self.clone();
                tokio::spawn(async move {
                    if let Err(e) = herald.send_outbox().await {
                        tracing::warn!(error = %e, "the outbox could not be sent now");
                    }
                });
            }
            Ok(())
        })
    }

    fn check_confirm_link<'a>(&'a self, token: &'a str) -> Answer<'a, ConfirmLink> {
        Box::pin(async move { Ok(Herald::check_confirm_link(self, token).await?) })
    }

    fn confirm<'a>(&'a self, token: &'a str) -> Answer<'a, Option<ConfirmOutcome>> {
        Box::pin(async move {
            let outcome = Herald::confirm(self, token).await?;
            if outcome == Some(ConfirmOutcome::Confirmed) {
                // The welcome it queued goes out in the background (or on the daemon's
                // next round).
                let herald = self.clone();
                tokio::spawn(async move {
                    if let Err(e) = herald.send_outbox().await {
                        tracing::warn!(error = %e, "the outbox could not be sent now");
                    }
                });
            }
            Ok(outcome)
        })
    }

    fn unsubscribe_link_is_valid<'a>(&'a self, token: &'a str) -> Answer<'a, bool> {
        Box::pin(async move {
            Ok(self
                .token_subscriber(token, TokenPurpose::Unsubscribe)
                .await?
                .is_some())
        })
    }

    fn unsubscribe<'a>(&'a self, token: &'a str) -> Answer<'a, bool> {
        Box::pin(async move { Ok(Herald::unsubscribe(self, token).await?.is_some()) })
    }

    fn archive_issue(&self, id: IssueId) -> Answer<'_, Option<RenderedIssue>> {
        Box::pin(async move { Ok(Herald::archive_issue(self, id).await?) })
    }

    fn webhook_secrets(&self) -> http::WebhookSecrets<'_> {
        http::WebhookSecrets {
            mailgun_key: self.secrets.mailgun_webhook_key.as_deref(),
            postmark_auth: self.secrets.postmark_webhook_auth.as_deref(),
        }
    }

    fn provider_event(&self, event: http::ProviderEvent) -> Answer<'_, String> {
        Box::pin(async move {
            Herald::provider_event(self, &event)
                .await
                .map_err(|e| http::Error::Unavailable(e.to_string()))
        })
    }
}
