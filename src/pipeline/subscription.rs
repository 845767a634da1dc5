//! The subscriber lifecycle behind the web pages: sign up (double opt-in), confirm,
//! unsubscribe, and the outbox that carries confirmation mail.
//!
//! A sign-up changes no subscriber: it records a confirmation request (what it asks
//! for) and queues its mail in one transaction; only following the link applies it, once,
//! before it expires (`http.confirm_ttl`). So a stranger who signs up someone else's
//! address, known or not, changes nothing about it (DESIGN, invariant 5). The outbox is
//! sent right after a sign-up and again by the daemon, so a confirmation survives a
//! crash or a relay that is down.

use chrono::{DateTime, Utc};
use tracing::{debug, error, info, warn};

use super::Herald;
use crate::deliver::message::{Transactional, build_transactional};
use crate::deliver::sender::retry_delay;
use crate::deliver::{MessageContext, SendError};
use crate::domain::token::{KeyRing, ParsedToken, SigningKey, TokenPurpose, new_nonce};
use crate::domain::verp::DeliveryRef;
use crate::domain::{Subscriber, SubscriberEmail, SubscriberName, SubscriberStatus};
use crate::store::{
    ConfirmLink, ConfirmOutcome, Confirmation, OutboxItem, SignUpRecord, SignUpRequest,
};

/// What a sign-up did (for logs and tests; the web page says the same in every case, so
/// that it does not reveal whether an address is known).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignUp {
    /// A confirmation mail is queued; `known` when the address was known already.
    ConfirmationQueued { known: bool },
    /// The address bounced before: no confirmation can revive it, so nothing is sent.
    Bounced,
}

/// Why a subscription action could not be carried out (a failure of ours, never of the
/// visitor's input).
#[derive(Debug, thiserror::Error)]
pub enum SubscriptionError {
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    #[error("no system randomness: {0}")]
    Randomness(String),
    #[error("the sender address is not usable: {0}")]
    Sender(#[from] crate::deliver::Error),
}

/// What one pass over the outbox did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxReport {
    pub sent: u64,
    pub deferred: u64,
    pub failed: u64,
}

/// Items read from the outbox at a time.
const OUTBOX_BATCH: usize = 100;

/// A confirm token resolved to its subscriber and request.
enum ConfirmTarget {
    Request(Subscriber, Confirmation),
    /// A link mailed before confirmation requests existed.
    Legacy(Subscriber),
}

impl Herald {
    /// The keys for links: `HERALD_SECRET` (or, without it, a secret herald generated
    /// once and keeps in the store) signs; `HERALD_SECRET_PREVIOUS` and a generated secret
    /// that `HERALD_SECRET` replaced still verify, so that mailed links keep working.
    pub async fn signing_keys(&self) -> Result<KeyRing, SubscriptionError> {
        let stored = self.store.setting("signing_secret").await?;
        let (current, mut older) = match (&self.secrets.signing_secret, stored) {
            (Some(secret), stored) => (
                SigningKey::new(secret.as_bytes()),
                stored
                    .map(|s| vec![SigningKey::new(s.as_bytes())])
                    .unwrap_or_default(),
            ),
            (None, Some(stored)) => (SigningKey::new(stored.as_bytes()), Vec::new()),
            (None, None) => {
                let mut bytes = [0u8; 32];
                getrandom::fill(&mut bytes)
                    .map_err(|e| SubscriptionError::Randomness(e.to_string()))?;
                let fresh = crate::domain::hex(&bytes);
                let secret = self
                    .store
                    .setting_or_insert("signing_secret", || fresh)
                    .await?;
                warn!(
                    "HERALD_SECRET is not set: generated a signing secret and stored it in the database"
                );
                (SigningKey::new(secret.as_bytes()), Vec::new())
            }
        };
        if let Some(previous) = &self.secrets.previous_secret {
            older.push(SigningKey::new(previous.as_bytes()));
        }
        Ok(KeyRing::new(current, older))
    }

    /// Records a sign-up (see [`Self::request_sign_up`]) and sends the mail with its
    /// confirm link.
    pub async fn sign_up(
        &self,
        email: &SubscriberEmail,
        name: Option<&SubscriberName>,
        digests: &[String],
    ) -> Result<SignUp, SubscriptionError> {
        let outcome = self.request_sign_up(email, name, digests).await?;
        if matches!(outcome, SignUp::ConfirmationQueued { .. })
            && let Err(e) = self.send_outbox().await
        {
            // Queued: the daemon sends it on its next round.
            warn!(error = %e, "the outbox could not be sent now");
        }
        Ok(outcome)
    }

    /// Records a sign-up (digests: those named that exist, or all) with its mail queued
    /// in the outbox, durably: once this returns, the confirmation goes out even if the
    /// process stops now. Nothing about a known address changes here.
    #[tracing::instrument(skip_all)]
    pub async fn request_sign_up(
        &self,
        email: &SubscriberEmail,
        name: Option<&SubscriberName>,
        digests: &[String],
    ) -> Result<SignUp, SubscriptionError> {
        let all: Vec<String> = self.config.digests.iter().map(|d| d.name.clone()).collect();
        // Names the site does not have are ignored; none left means every digest.
        let named: Vec<String> = digests
            .iter()
            .filter(|d| all.contains(d))
            .cloned()
            .collect();
        let digests = if named.is_empty() { all } else { named };
        let nonce = new_nonce().map_err(|e| SubscriptionError::Randomness(e.to_string()))?;
        let now = self.clock.now();
        let ttl = chrono::Duration::from_std(self.config.http.confirm_ttl)
            .unwrap_or(chrono::Duration::days(7));
        let domain = self.message_domain();
        let record = self
            .store
            .record_sign_up(&SignUpRequest {
                email,
                name: name.map(SubscriberName::as_str),
                digests: &digests,
                nonce: &nonce,
                message_domain: &domain,
                now,
                expires_at: now + ttl,
            })
            .await?;
        Ok(match record {
            SignUpRecord::Bounced(_) => {
                debug!(to = %email.masked(), "sign-up for a bounced address: nothing sent");
                SignUp::Bounced
            }
            SignUpRecord::New(_) => SignUp::ConfirmationQueued { known: false },
            SignUpRecord::Known(..) => SignUp::ConfirmationQueued { known: true },
        })
    }

    /// Sends what is due in the outbox (confirmations), each at most once: an item is
    /// claimed first, marked sent only after the server's 250, retried with backoff after
    /// a temporary failure.
    pub async fn send_outbox(&self) -> Result<OutboxReport, SubscriptionError> {
        let _one_at_a_time = self.outbox_lock.lock().await;
        let mut report = OutboxReport::default();
        loop {
            let now = self.clock.now();
            let items = self.store.outbox_due(now, OUTBOX_BATCH).await?;
            let full = items.len() == OUTBOX_BATCH;
            if items.is_empty() {
                break;
            }
            let keys = self.signing_keys().await?;
            let ctx = self
                .transactional_context()
                .with_verp(self.config.smtp.bounce_address.as_ref(), keys.current());
            self.transport.prepare()?;
            for item in items {
                if !self.store.claim_outbox(item.id, now).await? {
                    continue;
                }
                let result = self.send_outbox_item(&item, &keys, &ctx, now).await;
                let now = self.clock.now();
                match result {
                    Ok(reply) => {
                        self.store
                            .finish_outbox(item.id, true, &reply, None, now)
                            .await?;
                        report.sent += 1;
                    }
                    Err(e) if e.is_relay_unusable() => {
                        // Said once per pass, with the fix; the rest waits for the relay.
                        error!(
                            fix = e.fix.as_deref().unwrap_or(""),
                            "{}; confirmations stay queued", e.reply
                        );
                        let at = now + retry_delay(std::time::Duration::from_secs(60), 0);
                        self.store
                            .finish_outbox(item.id, false, &e.reply, Some(at), now)
                            .await?;
                        report.deferred += 1;
                        return Ok(report);
                    }
                    Err(e)
                        if e.is_transient()
                            && item.attempts + 1 < self.config.smtp.retry_attempts.max(1) =>
                    {
                        let at =
                            now + retry_delay(std::time::Duration::from_secs(60), item.attempts);
                        self.store
                            .finish_outbox(item.id, false, &e.reply, Some(at), now)
                            .await?;
                        report.deferred += 1;
                    }
                    Err(e) => {
                        warn!(kind = %item.kind, reply = %e.reply, "a transactional mail failed for good");
                        self.store
                            .finish_outbox(item.id, false, &e.reply, None, now)
                            .await?;
                        report.failed += 1;
                    }
                }
            }
            if !full {
                break;
            }
        }
        if report != OutboxReport::default() {
            info!(
                sent = report.sent,
                deferred = report.deferred,
                failed = report.failed,
                "outbox"
            );
        }
        Ok(report)
    }

    async fn send_outbox_item(
        &self,
        item: &OutboxItem,
        keys: &KeyRing,
        ctx: &MessageContext,
        now: DateTime<Utc>,
    ) -> Result<String, SendError> {
        match item.kind.as_str() {
            "welcome" => return self.send_welcome(item, keys, ctx, now).await,
            "confirm" => {}
            other => {
                return Err(SendError::local(
                    format!("unknown outbox item kind \"{other}\""),
                    false,
                ));
            }
        }
        let (Some(nonce), Some(expires_at)) =
            (&item.confirmation_nonce, item.confirmation_expires_at)
        else {
            return Err(SendError::local(
                format!("unknown outbox item kind \"{}\"", item.kind),
                false,
            ));
        };
        if expires_at <= now {
            return Err(SendError::local(
                "not sent: its confirm link expired before it could be sent",
                false,
            ));
        }
        let token = keys.current().sign(
            TokenPurpose::Confirm,
            item.subscriber_id,
            nonce,
            item.email.as_str(),
        );
        let url = format!("{}confirm/{token}", self.config.site.base_url);
        let days = ((expires_at - now).num_hours() + 23) / 24;
        // Say exactly what the link would change.
        let request = crate::render::describe_sign_up(
            item.requested_name.as_deref(),
            &item.requested_digests,
        );
        let mail = crate::render::confirmation_mail(
            &self.templates().base(),
            &self.config.site,
            &url,
            &request,
            days.max(1),
        )
        .map_err(|e| SendError::local(format!("cannot render the message: {e}"), false))?;
        self.send_outbox_mail(item, ctx, mail, None, "confirm", now)
            .await
    }

    /// The welcome mail: the digests just confirmed, when the next of each comes, and the
    /// latest issue's posts (or the latest posts, before any issue).
    async fn send_welcome(
        &self,
        item: &OutboxItem,
        keys: &KeyRing,
        ctx: &MessageContext,
        now: DateTime<Utc>,
    ) -> Result<String, SendError> {
        let store_error =
            |e: crate::store::Error| SendError::local(format!("cannot read the store: {e}"), true);
        let subscriber = self
            .store
            .subscriber(item.subscriber_id)
            .await
            .map_err(store_error)?
            .ok_or_else(|| SendError::local("not sent: the subscriber is gone", false))?;
        if subscriber.status != SubscriberStatus::Confirmed {
            return Err(SendError::local(
                format!(
                    "not sent: the subscriber is {} now",
                    subscriber.status.as_str()
                ),
                false,
            ));
        }
        let digests: Vec<&crate::config::DigestConfig> = self
            .config
            .digests
            .iter()
            .filter(|d| d.welcome && item.requested_digests.contains(&d.name))
            .collect();
        if digests.is_empty() {
            return Err(SendError::local(
                "not sent: none of the digests it was for sends a welcome now",
                false,
            ));
        }
        let token = keys.current().unsubscribe_token(
            subscriber.id,
            subscriber.token_nonce.as_deref(),
            subscriber.email.as_str(),
        );
        let unsubscribe_url =
            crate::deliver::sender::unsubscribe_url(&self.config.site.base_url, &token);
        let welcome = self
            .welcome_for(
                subscriber.name.clone(),
                &digests,
                unsubscribe_url.clone(),
                now,
            )
            .await
            .map_err(store_error)?;
        let mail =
            crate::render::welcome_mail(&self.templates().base(), &self.config.site, &welcome)
                .map_err(|e| SendError::local(format!("cannot render the message: {e}"), false))?;
        self.send_outbox_mail(item, ctx, mail, Some(&unsubscribe_url), "welcome", now)
            .await
    }

    /// Builds an outbox item's mail and hands it to the transport; its envelope sender
    /// names the outbox row (VERP).
    async fn send_outbox_mail(
        &self,
        item: &OutboxItem,
        ctx: &MessageContext,
        mail: crate::render::TransactionalMail,
        list_unsubscribe: Option<&str>,
        kind: &str,
        now: DateTime<Utc>,
    ) -> Result<String, SendError> {
        let message = build_transactional(
            ctx,
            Transactional {
                to: &item.email,
                name: item.name.as_deref(),
                subject: &mail.subject,
                text: mail.text,
                html: mail.html,
                message_id: &item.message_id,
                date: now,
                list_unsubscribe,
                delivery: Some(DeliveryRef::Outbox {
                    outbox: item.id,
                    subscriber: item.subscriber_id,
                }),
            },
        )
        .map_err(|e| SendError::local(format!("cannot build the message: {e}"), false))?;
        let stem = format!("{kind}-{}-{}", item.subscriber_id, item.id);
        self.transport
            .send(&message.envelope, &message.bytes, &stem)
            .await
    }

    /// What a welcome says for `digests` (at least one): when the next of each comes, and
    /// the latest issue's posts, or the latest posts of the first digest's sources.
    pub(super) async fn welcome_for(
        &self,
        name: Option<String>,
        digests: &[&crate::config::DigestConfig],
        unsubscribe_url: String,
        now: DateTime<Utc>,
    ) -> Result<crate::render::Welcome, crate::store::Error> {
        const POSTS: usize = 5;
        let listed = digests
            .iter()
            .map(|d| crate::render::WelcomeDigest {
                name: d.name.clone(),
                next: crate::schedule::next_after(&d.schedule, d.timezone, now).map(|at| {
                    at.with_timezone(&d.timezone)
                        .format("%A %-d %B %Y, %H:%M (%Z)")
                        .to_string()
                }),
            })
            .collect();
        let mut from_issue = false;
        let mut posts = Vec::new();
        if let Some(first) = digests.first() {
            if let Some(issue) = self
                .store
                .latest_sent_issue(&first.name)
                .await?
                .filter(|i| !i.post_ids.is_empty())
            {
                let ids: Vec<_> = issue.post_ids.iter().take(POSTS).copied().collect();
                posts = self.store.posts_by_ids(&ids).await?;
                from_issue = !posts.is_empty();
            }
            if posts.is_empty() {
                // The latest posts the digest carries (its sources; none named: all).
                posts = self
                    .store
                    .posts_in_window(&first.sources, None, now, POSTS)
                    .await?;
            }
        }
        Ok(crate::render::Welcome {
            name,
            digests: listed,
            posts: posts
                .iter()
                .map(|p| crate::render::WelcomePost {
                    title: crate::domain::shorten(&p.title, 200),
                    url: p.url.clone(),
                    summary: p.summary.as_deref().map(|s| crate::domain::shorten(s, 400)),
                })
                .collect(),
            from_issue,
            unsubscribe_url,
        })
    }

    fn transactional_context(&self) -> MessageContext {
        let smtp = &self.config.smtp;
        MessageContext::new(
            &smtp.from,
            smtp.reply_to.as_ref(),
            smtp.bounce_address.as_ref(),
            &self.config.site.title,
            "confirm",
            &self.message_domain(),
        )
        .signed_by(self.dkim.clone())
    }

    /// What a confirm link is (the page shown before its button is pressed).
    pub async fn check_confirm_link(&self, token: &str) -> Result<ConfirmLink, SubscriptionError> {
        let now = self.clock.now();
        Ok(match self.confirm_target(token).await? {
            None => ConfirmLink::Invalid,
            Some(ConfirmTarget::Request(subscriber, request)) => {
                if subscriber.status.is_suppressed() {
                    ConfirmLink::Done(ConfirmOutcome::Bounced)
                } else if request.used_at.is_some() {
                    ConfirmLink::Done(ConfirmOutcome::Used)
                } else if request.expires_at <= now {
                    ConfirmLink::Done(ConfirmOutcome::Expired)
                } else {
                    ConfirmLink::Ready {
                        name: request.name,
                        digests: request.digests,
                    }
                }
            }
            Some(ConfirmTarget::Legacy(subscriber)) => match subscriber.status {
                SubscriberStatus::Pending if subscriber.created_at + self.confirm_ttl() > now => {
                    ConfirmLink::Ready {
                        name: subscriber.name,
                        digests: subscriber.digests,
                    }
                }
                SubscriberStatus::Pending => ConfirmLink::Done(ConfirmOutcome::Expired),
                SubscriberStatus::Confirmed => ConfirmLink::Done(ConfirmOutcome::AlreadyConfirmed),
                SubscriberStatus::Bounced | SubscriberStatus::Complained => {
                    ConfirmLink::Done(ConfirmOutcome::Bounced)
                }
                SubscriberStatus::Unsubscribed => ConfirmLink::Done(ConfirmOutcome::Used),
            },
        })
    }

    /// Follows a confirm link: applies its request once; `None` for a link herald did not
    /// sign.
    pub async fn confirm(&self, token: &str) -> Result<Option<ConfirmOutcome>, SubscriptionError> {
        let now = self.clock.now();
        let outcome = match self.confirm_target(token).await? {
            None => return Ok(None),
            Some(ConfirmTarget::Request(_, request)) => {
                let configured: Vec<String> =
                    self.config.digests.iter().map(|d| d.name.clone()).collect();
                let welcome: Vec<String> = self
                    .config
                    .digests
                    .iter()
                    .filter(|d| d.welcome)
                    .map(|d| d.name.clone())
                    .collect();
                self.store
                    .apply_confirmation(
                        request.id,
                        &configured,
                        &welcome,
                        &self.message_domain(),
                        now,
                    )
                    .await?
            }
            Some(ConfirmTarget::Legacy(subscriber)) => {
                self.store
                    .confirm_legacy(subscriber.id, self.confirm_ttl(), now)
                    .await?
            }
        };
        debug!(?outcome, "confirm link followed");
        Ok(Some(outcome))
    }

    fn confirm_ttl(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.config.http.confirm_ttl)
            .unwrap_or(chrono::Duration::days(7))
    }

    async fn confirm_target(
        &self,
        token: &str,
    ) -> Result<Option<ConfirmTarget>, SubscriptionError> {
        let Some((subscriber, parsed_nonce)) = self.verified(token, TokenPurpose::Confirm).await?
        else {
            return Ok(None);
        };
        Ok(match parsed_nonce {
            None => Some(ConfirmTarget::Legacy(subscriber)),
            Some(nonce) => self
                .store
                .confirmation(subscriber.id, &nonce)
                .await?
                .map(|request| ConfirmTarget::Request(subscriber, request)),
        })
    }

    /// Unsubscribes the subscriber an unsubscribe token names (idempotent); `None` for a
    /// bad token.
    pub async fn unsubscribe(&self, token: &str) -> Result<Option<Subscriber>, SubscriptionError> {
        let Some(subscriber) = self
            .token_subscriber(token, TokenPurpose::Unsubscribe)
            .await?
        else {
            return Ok(None);
        };
        if self
            .store
            .set_subscriber_status(
                subscriber.id,
                SubscriberStatus::Unsubscribed,
                self.clock.now(),
            )
            .await?
        {
            debug!(to = %subscriber.email.masked(), "unsubscribed");
        }
        Ok(self.store.subscriber(subscriber.id).await?)
    }

    /// The subscriber an unsubscribe token names, if it is good, without acting on it
    /// (the unsubscribe page's GET).
    pub async fn token_subscriber(
        &self,
        token: &str,
        purpose: TokenPurpose,
    ) -> Result<Option<Subscriber>, SubscriptionError> {
        let Some((subscriber, nonce)) = self.verified(token, purpose).await? else {
            return Ok(None);
        };
        // A v2 unsubscribe link carries the subscriber's own nonce.
        let nonce_matches = match (&nonce, &subscriber.token_nonce) {
            (None, _) => true,
            (Some(given), Some(stored)) => given == stored,
            (Some(_), None) => false,
        };
        Ok(nonce_matches.then_some(subscriber))
    }

    /// The subscriber whose key signed `token` for `purpose`, and the token's nonce.
    async fn verified(
        &self,
        token: &str,
        purpose: TokenPurpose,
    ) -> Result<Option<(Subscriber, Option<String>)>, SubscriptionError> {
        let Some(parsed) = ParsedToken::parse(token) else {
            return Ok(None);
        };
        let Some(subscriber) = self.store.subscriber(parsed.id).await? else {
            return Ok(None);
        };
        // A link without a nonce (v1) was only ever mailed to the subscribers that
        // existed when nonces came in.
        if parsed.nonce.is_none() {
            let up_to: i64 = self
                .store
                .setting("v1_tokens_up_to_id")
                .await?
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            if subscriber.id.0 > up_to {
                return Ok(None);
            }
        }
        let keys = self.signing_keys().await?;
        if !keys.verify(&parsed, purpose, subscriber.email.as_str()) {
            return Ok(None);
        }
        let nonce = parsed.nonce.clone().map(std::borrow::Cow::into_owned);
        Ok(Some((subscriber, nonce)))
    }
}
