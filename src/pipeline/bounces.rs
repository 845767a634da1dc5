//! Acting on what comes back: bounces, complaints and mailto unsubscribes read from mail
//! ([`crate::deliver::returned`]) and provider events (the webhook).
//!
//! Only signed tokens change state (DESIGN, "Rules that every change keeps"): the VERP
//! envelope sender the report went to, or the subscriber's List-Unsubscribe token in
//! the returned headers. A report that names only an address is left for a person.

use tracing::info;

use super::Herald;
use super::subscription::SubscriptionError;
use crate::deliver::returned::{self, Said};
use crate::domain::token::TokenPurpose;
use crate::domain::verp::{self, DeliveryRef};
use crate::domain::{Subscriber, SubscriberId};
use crate::store::{EventClass, EventDelivery, EventEffect, EventOutcome, MailEvent};

/// What reading one message did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// A bounce, complaint or unsubscribe applied to the subscriber (`what` says how).
    Applied { what: String },
    /// Recorded before: nothing changed.
    Duplicate { what: String },
    /// Not for herald, or not signed by it: left for a person.
    ForAPerson { why: String },
}

impl Handled {
    /// Whether the message was herald's to process (it is filed away, not left).
    pub fn processed(&self) -> bool {
        !matches!(self, Self::ForAPerson { .. })
    }
}

impl Herald {
    /// Reads one message that came to the bounce address and acts on it.
    /// `recipient` is the envelope recipient when the MTA passes it (a pipe's
    /// `${original_recipient}`): one more place for the VERP token, verified like the rest.
    pub async fn handle_returned(
        &self,
        bytes: &[u8],
        recipient: Option<&str>,
    ) -> Result<Handled, SubscriptionError> {
        let read = returned::read(bytes);
        let (outcome, class, detail, source) = match &read.said {
            Said::ForAPerson { why } => return Ok(Handled::ForAPerson { why: why.clone() }),
            Said::Unsubscribe { token } => {
                return Ok(match self.unsubscribe(token).await? {
                    Some(s) => Handled::Applied {
                        what: format!("{}: unsubscribed by mail", s.email.masked()),
                    },
                    None => Handled::ForAPerson {
                        why: "an unsubscribe request whose token herald did not sign".into(),
                    },
                });
            }
            Said::Delivered => (None, EventClass::Relay, String::new(), "dsn"),
            Said::Refused {
                delayed,
                blame,
                detail,
            } => (
                Some(if *delayed {
                    EventOutcome::Delayed
                } else {
                    EventOutcome::Failed
                }),
                // A delay's blame is at most soft (see `returned`), and only about the
                // mailbox: a remote that is down (4.4.x) or greylisting is not.
                blame.event_class(),
                detail.clone(),
                "dsn",
            ),
            Said::Complaint { feedback_type } => (
                Some(EventOutcome::Complained),
                EventClass::Complaint,
                format!("ARF feedback report ({feedback_type})"),
                "arf",
            ),
        };
        let (delivery, subscriber) = match self.signed_target(&read, recipient).await? {
            Target::One(delivery, subscriber) => (delivery, subscriber),
            Target::None => {
                return Ok(Handled::ForAPerson {
                    why: "it carries no token herald signed for a delivery it made (no VERP address, no List-Unsubscribe link of a subscriber)".into(),
                });
            }
            Target::Disagree => {
                return Ok(Handled::ForAPerson {
                    why: "its tokens name different subscribers".into(),
                });
            }
        };
        let Some(outcome) = outcome else {
            return Ok(Handled::Applied {
                what: format!(
                    "{}: a report of successful delivery",
                    subscriber.email.masked()
                ),
            });
        };
        let event = MailEvent {
            delivery,
            subscriber: subscriber.id,
            outcome,
            class,
            source,
            detail,
        };
        Ok(self.apply_event(&event, &subscriber).await?)
    }

    /// A provider's verified event: the subscriber is the recipient it names (the
    /// provider's signature vouches for it); the delivery is the one herald's Message-ID
    /// names when it is that subscriber's, else the provider's message id.
    pub async fn provider_event(
        &self,
        event: &crate::http::ProviderEvent,
    ) -> Result<String, crate::store::Error> {
        let Some(subscriber) = self.store.subscriber_by_email(&event.recipient).await? else {
            return Ok("not a subscriber: nothing to do".into());
        };
        let message_id = event
            .message_id
            .as_deref()
            .map(|m| m.trim().trim_start_matches('<').trim_end_matches('>'))
            .unwrap_or("");
        let ours = message_id
            .strip_prefix("herald.")
            .and_then(|m| m.split_once('@'))
            .and_then(|(ids, _)| ids.split_once('.'))
            .and_then(|(issue, id)| Some((issue.parse::<i64>().ok()?, id.parse::<i64>().ok()?)));
        let ours = match ours {
            Some((issue, id)) if SubscriberId(id) == subscriber.id => {
                let delivery = DeliveryRef::Issue {
                    issue,
                    subscriber: subscriber.id,
                };
                self.store
                    .delivery_exists(delivery)
                    .await?
                    .then_some(delivery)
            }
            _ => None,
        };
        let delivery = match (ours, &event.event_id) {
            (Some(delivery), _) => EventDelivery::Known(delivery),
            _ if !message_id.is_empty() => EventDelivery::Other(format!(
                "{}:{}",
                event.source,
                crate::domain::shorten(message_id, 200)
            )),
            (None, Some(id)) => EventDelivery::Other(format!(
                "{}:event:{}",
                event.source,
                crate::domain::shorten(id, 200)
            )),
            (None, None) => {
                return Ok("the event names no message and has no id: nothing to do".into());
            }
        };
        let mail_event = MailEvent {
            delivery,
            subscriber: subscriber.id,
            outcome: event.outcome,
            class: event.class,
            source: event.source,
            detail: event.detail.clone(),
        };
        Ok(match self.apply_event(&mail_event, &subscriber).await? {
            Handled::Applied { what } | Handled::Duplicate { what } => what,
            Handled::ForAPerson { why } => why,
        })
    }

    /// Records an event for `subscriber` and says what it did.
    pub async fn apply_event(
        &self,
        event: &MailEvent,
        subscriber: &Subscriber,
    ) -> Result<Handled, crate::store::Error> {
        let now = self.clock.now();
        let effect = self
            .store
            .record_event(event, self.config.smtp.soft_bounce_limit, now)
            .await?;
        let who = subscriber.email.masked();
        let what = format!(
            "{who}: {} {} ({})",
            event.outcome.as_str(),
            event.class.as_str(),
            crate::domain::shorten(&event.detail, 200)
        );
        Ok(match effect {
            EventEffect::Duplicate => Handled::Duplicate {
                what: format!("{what}, already recorded"),
            },
            EventEffect::UnknownSubscriber => Handled::ForAPerson {
                why: "the subscriber it names is no longer in the store".into(),
            },
            EventEffect::Bounced => {
                info!(to = %who, detail = %event.detail, "subscriber marked bounced");
                Handled::Applied {
                    what: format!("{what}: now bounced"),
                }
            }
            EventEffect::Complained => {
                info!(to = %who, "subscriber complained: unsubscribed");
                Handled::Applied {
                    what: format!("{what}: now complained (unsubscribed)"),
                }
            }
            EventEffect::Recorded => Handled::Applied { what },
        })
    }

    /// The delivery and subscriber a report is about, from a token herald signed: the
    /// envelope recipient the MTA gives first, then the VERP addresses in the headers,
    /// then the subscriber's List-Unsubscribe token in the returned headers. A token
    /// must name a delivery herald made (a removed subscriber's id may belong to someone
    /// new); tokens that name different subscribers leave the report for a person.
    async fn signed_target(
        &self,
        read: &returned::Returned,
        recipient: Option<&str>,
    ) -> Result<Target, SubscriptionError> {
        let keys = self.signing_keys().await?;
        let mut named = recipient
            .map(|r| verp::find_all(&keys, r))
            .unwrap_or_default();
        for delivery in verp::find_all(&keys, &read.verp_haystack) {
            if !named.contains(&delivery) {
                named.push(delivery);
            }
        }
        let mut verp: Vec<DeliveryRef> = Vec::new();
        for delivery in named {
            if self.store.delivery_exists(delivery).await? {
                verp.push(delivery);
            }
        }
        let listed = match &read.list_token {
            Some(token) => {
                self.token_subscriber(token, TokenPurpose::Unsubscribe)
                    .await?
            }
            None => None,
        };
        let mut subscribers: Vec<SubscriberId> = verp.iter().map(|d| d.subscriber()).collect();
        subscribers.extend(listed.as_ref().map(|s| s.id));
        subscribers.dedup();
        if subscribers.iter().any(|s| *s != subscribers[0]) {
            return Ok(Target::Disagree);
        }
        if let Some(delivery) = verp.first() {
            return Ok(match self.store.subscriber(delivery.subscriber()).await? {
                Some(subscriber) => Target::One(EventDelivery::Known(*delivery), subscriber),
                None => Target::None,
            });
        }
        let Some(subscriber) = listed else {
            return Ok(Target::None);
        };
        // The returned Message-ID names the issue when it is a delivery to that
        // subscriber; else the returned message's id, or the report's own, keys it.
        if let Some((issue, id)) = read.returned_delivery {
            let delivery = DeliveryRef::Issue {
                issue,
                subscriber: subscriber.id,
            };
            if SubscriberId(id) == subscriber.id && self.store.delivery_exists(delivery).await? {
                return Ok(Target::One(EventDelivery::Known(delivery), subscriber));
            }
        }
        let key = match (&read.returned_message_id, &read.report_id) {
            (Some(id), _) => format!("returned:{id}"),
            (None, Some(id)) => format!("report:{id}"),
            (None, None) => return Ok(Target::None),
        };
        Ok(Target::One(EventDelivery::Other(key), subscriber))
    }
}

/// Whom a report is about.
enum Target {
    One(EventDelivery, Subscriber),
    None,
    Disagree,
}
