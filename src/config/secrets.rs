//! Secrets: from the environment only, never from the file, never printed.

use std::fmt;

/// Secrets, read from the environment only, never from the TOML file, and never printed.
#[derive(Clone, Default)]
pub struct Secrets {
    /// `HERALD_SMTP_PASSWORD`
    pub smtp_password: Option<String>,
    /// `HERALD_SECRET`: key for signing unsubscribe and confirm tokens.
    pub signing_secret: Option<String>,
    /// `HERALD_SECRET_PREVIOUS`: a secret herald signed with before, still accepted when
    /// checking links (so that mailed links survive a rotation), never used to sign.
    pub previous_secret: Option<String>,
    /// `HERALD_METRICS_TOKEN`: when set, `/metrics` wants `Authorization: Bearer <it>`.
    pub metrics_token: Option<String>,
    /// `HERALD_DKIM_KEY`: the DKIM private key as PEM, when `smtp.dkim.private_key` is not set.
    pub dkim_key: Option<String>,
    /// `HERALD_MAILGUN_WEBHOOK_KEY`: Mailgun's webhook signing key; with it,
    /// `POST /webhooks/events` takes Mailgun's signed events.
    pub mailgun_webhook_key: Option<String>,
    /// `HERALD_POSTMARK_WEBHOOK_AUTH`: `user:password` of the HTTP basic auth put in the
    /// webhook URL given to Postmark; with it, `POST /webhooks/events` takes Postmark's.
    pub postmark_webhook_auth: Option<String>,
}

/// A secret from the environment that herald refuses.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "{name} is refused: {reason}; {}",
    crate::domain::token::HOW_TO_GENERATE
)]
pub struct WeakSecret {
    pub name: &'static str,
    pub reason: String,
}

impl Secrets {
    pub fn from_env() -> Self {
        let read = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
        Self {
            smtp_password: read("HERALD_SMTP_PASSWORD"),
            signing_secret: read("HERALD_SECRET"),
            previous_secret: read("HERALD_SECRET_PREVIOUS"),
            metrics_token: read("HERALD_METRICS_TOKEN"),
            dkim_key: read("HERALD_DKIM_KEY"),
            mailgun_webhook_key: read("HERALD_MAILGUN_WEBHOOK_KEY"),
            postmark_webhook_auth: read("HERALD_POSTMARK_WEBHOOK_AUTH"),
        }
    }

    /// Refuses a signing secret anyone could guess (short, a documented example, hardly
    /// random) and a previous secret that is a documented example. Returns warnings for
    /// what is accepted but should change.
    pub fn check(&self) -> Result<Vec<String>, WeakSecret> {
        use crate::domain::token::{is_known_secret, weak_secret};
        let mut warnings = Vec::new();
        if let Some(secret) = &self.signing_secret
            && let Some(reason) = weak_secret(secret)
        {
            return Err(WeakSecret {
                name: "HERALD_SECRET",
                reason,
            });
        }
        if let Some(previous) = &self.previous_secret {
            if is_known_secret(previous) {
                return Err(WeakSecret {
                    name: "HERALD_SECRET_PREVIOUS",
                    reason: "it is a well-known example value, so anyone could sign links that herald would accept; remove it (links signed with it stop working)".into(),
                });
            }
            if self.signing_secret.is_none() {
                warnings.push("HERALD_SECRET_PREVIOUS is set without HERALD_SECRET: it is only used to check links, never to sign them".into());
            } else if weak_secret(previous).is_some() {
                warnings.push("HERALD_SECRET_PREVIOUS is weak: remove it once the mail signed with it has aged out".into());
            }
        }
        if let Some(token) = &self.metrics_token
            && token.chars().count() < 16
        {
            return Err(WeakSecret {
                name: "HERALD_METRICS_TOKEN",
                reason: format!(
                    "it is {} characters long; it must be at least 16",
                    token.chars().count()
                ),
            });
        }
        if let Some(auth) = &self.postmark_webhook_auth {
            let password = auth.split_once(':').map_or("", |(_, p)| p);
            if password.chars().count() < 16 {
                return Err(WeakSecret {
                    name: "HERALD_POSTMARK_WEBHOOK_AUTH",
                    reason: "it must be user:password, with a password of at least 16 characters"
                        .into(),
                });
            }
        }
        if let Some(key) = &self.mailgun_webhook_key
            && key.chars().count() < 16
        {
            return Err(WeakSecret {
                name: "HERALD_MAILGUN_WEBHOOK_KEY",
                reason: "it is shorter than any key Mailgun issues (copy the webhook signing key from Mailgun)".into(),
            });
        }
        Ok(warnings)
    }
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = |s: &Option<String>| if s.is_some() { "<set>" } else { "<unset>" };
        f.debug_struct("Secrets")
            .field("smtp_password", &shown(&self.smtp_password))
            .field("signing_secret", &shown(&self.signing_secret))
            .field("previous_secret", &shown(&self.previous_secret))
            .field("metrics_token", &shown(&self.metrics_token))
            .field("dkim_key", &shown(&self.dkim_key))
            .field("mailgun_webhook_key", &shown(&self.mailgun_webhook_key))
            .field("postmark_webhook_auth", &shown(&self.postmark_webhook_auth))
            .finish()
    }
}
