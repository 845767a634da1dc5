//! The subscriber lifecycle behind the web pages: sign up (double opt-in), confirm,
//! unsubscribe. Tokens are HMAC-signed and bound to the subscriber and the purpose.

use lettre::message::{Mailbox, MultiPart};
use tracing::{debug, warn};

use super::Herald;
use crate::domain::token::{SigningKey, TokenPurpose};
use crate::domain::{Subscriber, SubscriberEmail, SubscriberStatus};
use crate::ingest::html::escape_into;
use crate::store::AddOutcome;

/// What a sign-up did (for logs and tests; the web page says the same in every case, so
/// that it does not reveal whether an address is known).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignUp {
    /// A confirmation email went out (new, pending or formerly unsubscribed address).
    ConfirmationSent,
    /// The address was already confirmed: nothing sent.
    AlreadyConfirmed,
}

impl Herald {
    /// Records a sign-up as pending (digests: those named, or all) and emails a link to
    /// confirm it. A confirmed address only gains the digests named.
    #[tracing::instrument(skip_all)]
    pub async fn sign_up(
        &self,
        email: &SubscriberEmail,
        name: Option<&str>,
        digests: &[String],
    ) -> Result<SignUp, String> {
        let all: Vec<String> = self.config.digests.iter().map(|d| d.name.clone()).collect();
        // Names the site does not have are ignored; none left means every digest.
        let named: Vec<String> = digests
            .iter()
            .filter(|d| all.contains(d))
            .cloned()
            .collect();
        let digests = if named.is_empty() { all } else { named };
        let now = self.clock.now();
        let outcome = self
            .store
            .add_subscriber(email, name, &digests, SubscriberStatus::Pending, now)
            .await
            .map_err(|e| e.to_string())?;
        let subscriber = self
            .store
            .subscriber(outcome.id())
            .await
            .map_err(|e| e.to_string())?
            .ok_or("subscriber vanished")?;
        if subscriber.status == SubscriberStatus::Confirmed {
            debug!(to = %email.masked(), added = matches!(outcome, AddOutcome::Updated(_)), "sign-up for a confirmed address");
            return Ok(SignUp::AlreadyConfirmed);
        }
        self.send_confirmation(&subscriber).await?;
        Ok(SignUp::ConfirmationSent)
    }

    async fn send_confirmation(&self, subscriber: &Subscriber) -> Result<(), String> {
        let key = self.signing_key().await.map_err(|e| e.to_string())?;
        let token = key.sign(
            TokenPurpose::Confirm,
            subscriber.id,
            subscriber.email.as_str(),
        );
        let url = format!("{}confirm/{token}", self.config.site.base_url);
        let site = &self.config.site.title;
        let text = format!(
            "Someone, hopefully you, asked for the {site} digest at this address.\n\n\
             Confirm the subscription:\n{url}\n\n\
             If it was not you, ignore this email: nothing more will be sent.\n"
        );
        let mut html = String::from("<p>Someone, hopefully you, asked for the ");
        escape_into(&mut html, site);
        html.push_str(" digest at this address.</p><p><a href=\"");
        escape_into(&mut html, &url);
        html.push_str("\">Confirm the subscription</a></p><p>If it was not you, ignore this email: nothing more will be sent.</p>");

        let smtp = &self.config.smtp;
        let from: Mailbox = smtp.from.parse().map_err(|e| format!("smtp.from: {e}"))?;
        let to = Mailbox::new(
            subscriber.name.clone(),
            subscriber
                .email
                .as_str()
                .parse()
                .map_err(|e| format!("{e}"))?,
        );
        let envelope_from = match &smtp.bounce_address {
            Some(b) => {
                b.parse::<Mailbox>()
                    .map_err(|e| format!("smtp.bounce_address: {e}"))?
                    .email
            }
            None => from.email.clone(),
        };
        let envelope = lettre::address::Envelope::new(Some(envelope_from), vec![to.email.clone()])
            .map_err(|e| e.to_string())?;
        let mut nonce = [0u8; 6];
        let _ = getrandom::fill(&mut nonce);
        let message = lettre::Message::builder()
            .from(from)
            .to(to)
            .subject(format!("Confirm your subscription to {site}"))
            .date(self.clock.now().into())
            .message_id(Some(format!(
                "<herald.confirm.{}.{}@{}>",
                subscriber.id,
                crate::domain::hex(&nonce),
                self.message_domain()
            )))
            .envelope(envelope.clone())
            .multipart(MultiPart::alternative_plain_html(text, html))
            .map_err(|e| e.to_string())?;
        self.transport.prepare().map_err(|e| e.to_string())?;
        let stem = format!("confirm-{}-{}", subscriber.id, crate::domain::hex(&nonce));
        match self
            .transport
            .send(&envelope, &message.formatted(), &stem)
            .await
        {
            Ok(_) => {
                debug!(to = %subscriber.email.masked(), "confirmation sent");
                Ok(())
            }
            Err(e) => {
                // Recovered by the subscriber signing up again; the reason matters to the
                // operator when the relay is at fault.
                warn!(reply = %e.reply, "a confirmation email was not sent");
                Err(e.reply)
            }
        }
    }

    /// Confirms the subscriber a confirm token names; `None` for a bad token.
    pub async fn confirm(&self, token: &str) -> Result<Option<Subscriber>, String> {
        self.act_on_token(token, TokenPurpose::Confirm, SubscriberStatus::Confirmed)
            .await
    }

    /// Unsubscribes the subscriber an unsubscribe token names (idempotent); `None` for a
    /// bad token.
    pub async fn unsubscribe(&self, token: &str) -> Result<Option<Subscriber>, String> {
        self.act_on_token(
            token,
            TokenPurpose::Unsubscribe,
            SubscriberStatus::Unsubscribed,
        )
        .await
    }

    /// Whether a token is good, without acting on it (the unsubscribe page's GET).
    pub async fn token_subscriber(
        &self,
        token: &str,
        purpose: TokenPurpose,
    ) -> Result<Option<Subscriber>, String> {
        let Some(id) = SigningKey::claimed_id(token) else {
            return Ok(None);
        };
        let Some(subscriber) = self.store.subscriber(id).await.map_err(|e| e.to_string())? else {
            return Ok(None);
        };
        let key = self.signing_key().await.map_err(|e| e.to_string())?;
        Ok(key
            .verify(token, purpose, subscriber.id, subscriber.email.as_str())
            .then_some(subscriber))
    }

    async fn act_on_token(
        &self,
        token: &str,
        purpose: TokenPurpose,
        status: SubscriberStatus,
    ) -> Result<Option<Subscriber>, String> {
        let Some(subscriber) = self.token_subscriber(token, purpose).await? else {
            return Ok(None);
        };
        // A bounced address is not revived by an old confirm link.
        if status == SubscriberStatus::Confirmed && subscriber.status == SubscriberStatus::Bounced {
            return Ok(Some(subscriber));
        }
        if self
            .store
            .set_subscriber_status(subscriber.id, status, self.clock.now())
            .await
            .map_err(|e| e.to_string())?
        {
            debug!(to = %subscriber.email.masked(), status = status.as_str(), "subscriber status changed");
        }
        self.store
            .subscriber(subscriber.id)
            .await
            .map_err(|e| e.to_string())
    }
}
