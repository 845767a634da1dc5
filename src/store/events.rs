//! Bounces and complaints that arrive after the send: `mail_events`, one row per
//! (delivery, subscriber, outcome), and what each does to its subscriber.
//!
//! The rule (DESIGN, "One classification of refusals"): a hard bounce makes the
//! subscriber bounced at once; soft bounces (mailbox full, 4.x.x, delayed) do after
//! `soft_bounce_limit` deliveries in a row; message, policy and relay refusals are
//! recorded and never counted; a complaint makes them complained (unsubscribed, and
//! suppressed). The same report read twice changes nothing the second time.

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::confirmations::void_confirmations_in;
use super::{Context, Result, Store, ts};
use crate::domain::SubscriberId;
use crate::domain::verp::DeliveryRef;

/// What a report says happened to a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventOutcome {
    /// Delivery failed for good (DSN action `failed`, a provider's bounce).
    Failed,
    /// Delivery is late and still being tried (DSN action `delayed`).
    Delayed,
    /// The recipient reported the message as spam.
    Complained,
}

impl EventOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Failed => "failed",
            Self::Delayed => "delayed",
            Self::Complained => "complained",
        }
    }
}

/// Who the event blames: [`crate::deliver::Blame`] as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventClass {
    Hard,
    Soft,
    Message,
    Policy,
    Relay,
    Complaint,
}

impl EventClass {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hard => "hard",
            Self::Soft => "soft",
            Self::Message => "message",
            Self::Policy => "policy",
            Self::Relay => "relay",
            Self::Complaint => "complaint",
        }
    }
}

/// Which delivery an event is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventDelivery {
    /// Named by a signed token (VERP), or a delivery the subscriber's own token and the
    /// returned Message-ID agree on.
    Known(DeliveryRef),
    /// Only a provider's message id or event id names it (the provider's signature was
    /// verified): keyed by it, so that the same event twice counts once.
    Other(String),
}

impl EventDelivery {
    fn key(&self) -> String {
        match self {
            Self::Known(d) => d.key(),
            Self::Other(id) => format!("message:{id}"),
        }
    }

    fn issue(&self) -> Option<i64> {
        match self {
            Self::Known(DeliveryRef::Issue { issue, .. }) => Some(*issue),
            _ => None,
        }
    }
}

/// One bounce or complaint, ready to record.
#[derive(Debug, Clone)]
pub struct MailEvent {
    pub delivery: EventDelivery,
    pub subscriber: SubscriberId,
    pub outcome: EventOutcome,
    pub class: EventClass,
    /// `smtp`, `dsn`, `arf`, `mailgun`, `postmark`.
    pub source: &'static str,
    /// The status and diagnostic, or the feedback type: kept as the subscriber's reason.
    pub detail: String,
}

/// What recording an event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventEffect {
    /// The subscriber is not in the store (removed since).
    UnknownSubscriber,
    /// The same (delivery, outcome) was recorded before: nothing changed.
    Duplicate,
    /// Recorded; the subscriber is unchanged (a refusal that is not theirs, a soft
    /// bounce below the limit, a subscriber already bounced).
    Recorded,
    /// The subscriber is now bounced.
    Bounced,
    /// The subscriber is now complained (unsubscribed, suppressed).
    Complained,
}

impl Store {
    /// Records `event` and applies it to its subscriber, in one transaction.
    pub async fn record_event(
        &self,
        event: &MailEvent,
        soft_bounce_limit: u32,
        now: DateTime<Utc>,
    ) -> Result<EventEffect> {
        let mut tx = self.begin_write("begin recording a bounce").await?;
        let effect = record_in(&mut tx, event, soft_bounce_limit, now).await?;
        tx.commit().await.doing("commit bounce")?;
        Ok(effect)
    }

    /// Bounces and complaints per digest and class (`''` for transactional mail), from
    /// the tallies kept as events are recorded.
    pub async fn event_counts(&self) -> Result<Vec<(String, String, u64)>> {
        let rows = sqlx::query("SELECT digest, class, n FROM event_tallies ORDER BY digest, class")
            .fetch_all(&self.pool)
            .await
            .doing("read bounce counts")?;
        Ok(rows
            .iter()
            .map(|r| {
                (
                    r.get("digest"),
                    r.get("class"),
                    u64::try_from(r.get::<i64, _>("n")).unwrap_or(0),
                )
            })
            .collect())
    }

    /// Whether the delivery a token names exists, for the subscriber it names: a token
    /// for a subscriber since removed (whose id SQLite may give to someone new) names
    /// nobody.
    pub async fn delivery_exists(&self, delivery: DeliveryRef) -> Result<bool> {
        let (sql, a) = match delivery {
            DeliveryRef::Issue { issue, .. } => (
                "SELECT EXISTS (SELECT 1 FROM deliveries WHERE issue_id = ?1 AND subscriber_id = ?2)",
                issue,
            ),
            DeliveryRef::Outbox { outbox, .. } => (
                "SELECT EXISTS (SELECT 1 FROM outbox WHERE id = ?1 AND subscriber_id = ?2)",
                outbox,
            ),
        };
        sqlx::query_scalar(sql)
            .bind(a)
            .bind(delivery.subscriber().0)
            .fetch_one(&self.pool)
            .await
            .doing("look up the delivery a token names")
    }

    /// Whether a webhook's replay key was accepted before.
    pub async fn webhook_seen(&self, key: &str) -> Result<bool> {
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM webhook_seen WHERE key = ?1)")
            .bind(key)
            .fetch_one(&self.pool)
            .await
            .doing("look up a webhook key")
    }

    /// Records a webhook's replay key; `false` when it was seen before. Keys older than
    /// `forget_before` are dropped (the replay window refuses anything that old).
    pub async fn note_webhook(
        &self,
        key: &str,
        forget_before: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let mut tx = self.begin_write("begin noting a webhook").await?;
        sqlx::query("DELETE FROM webhook_seen WHERE seen_at < ?1")
            .bind(ts(forget_before))
            .execute(&mut *tx)
            .await
            .doing("forget old webhook keys")?;
        let fresh = sqlx::query(
            "INSERT INTO webhook_seen (key, seen_at) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
        )
        .bind(key)
        .bind(ts(now))
        .execute(&mut *tx)
        .await
        .doing("note a webhook")?
        .rows_affected()
            > 0;
        tx.commit().await.doing("commit webhook key")?;
        Ok(fresh)
    }
}

/// [`Store::record_event`] inside a transaction (also used by the sender for SMTP
/// replies).
pub(crate) async fn record_in(
    tx: &mut sqlx::SqliteConnection,
    event: &MailEvent,
    soft_bounce_limit: u32,
    now: DateTime<Utc>,
) -> Result<EventEffect> {
    let subscriber: Option<(String, i64, Option<String>)> = sqlx::query_as(
        "SELECT status, soft_bounces, last_soft_delivery FROM subscribers WHERE id = ?1",
    )
    .bind(event.subscriber.0)
    .fetch_optional(&mut *tx)
    .await
    .doing("read the bounced subscriber")?;
    let Some((status, soft_bounces, last_soft)) = subscriber else {
        return Ok(EventEffect::UnknownSubscriber);
    };
    let key = event.delivery.key();
    let digest: Option<String> = match event.delivery.issue() {
        Some(issue) => sqlx::query_scalar("SELECT digest FROM issues WHERE id = ?1")
            .bind(issue)
            .fetch_optional(&mut *tx)
            .await
            .doing("read the bounced issue")?,
        None => None,
    };
    let detail: String = event.detail.chars().take(500).collect();
    let inserted = sqlx::query(
        "INSERT INTO mail_events (delivery, subscriber_id, outcome, class, digest, source, detail, received_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT DO NOTHING",
    )
    .bind(&key)
    .bind(event.subscriber.0)
    .bind(event.outcome.as_str())
    .bind(event.class.as_str())
    .bind(&digest)
    .bind(event.source)
    .bind(&detail)
    .bind(ts(now))
    .execute(&mut *tx)
    .await
    .doing("record a bounce")?
    .rows_affected();
    if inserted == 0 {
        return Ok(EventEffect::Duplicate);
    }
    let receiving = matches!(status.as_str(), "pending" | "confirmed");
    match event.class {
        EventClass::Complaint => {
            if status == "complained" {
                return Ok(EventEffect::Recorded);
            }
            sqlx::query(
                "UPDATE subscribers SET status = 'complained', complained_at = ?2, status_reason = ?3
                 WHERE id = ?1",
            )
            .bind(event.subscriber.0)
            .bind(ts(now))
            .bind(format!("complaint: {detail}"))
            .execute(&mut *tx)
            .await
            .doing("mark subscriber complained")?;
            void_confirmations_in(tx, event.subscriber, now).await?;
            Ok(EventEffect::Complained)
        }
        EventClass::Hard if receiving => {
            bounce(tx, event.subscriber, &detail, now).await?;
            Ok(EventEffect::Bounced)
        }
        EventClass::Soft if receiving && !counted_before(tx, &key, event).await? => {
            let in_a_row = match (previous_issue(last_soft.as_deref()), event.delivery.issue()) {
                (Some(previous), Some(issue)) => {
                    !received_between(tx, event.subscriber, previous, issue).await?
                }
                _ => true,
            };
            let count = if in_a_row { soft_bounces + 1 } else { 1 };
            sqlx::query(
                "UPDATE subscribers SET soft_bounces = ?2, last_soft_delivery = ?3 WHERE id = ?1",
            )
            .bind(event.subscriber.0)
            .bind(count)
            .bind(&key)
            .execute(&mut *tx)
            .await
            .doing("count a soft bounce")?;
            if count >= i64::from(soft_bounce_limit.max(1)) {
                let reason = format!("{count} soft bounces in a row; the last: {detail}");
                bounce(tx, event.subscriber, &reason, now).await?;
                return Ok(EventEffect::Bounced);
            }
            Ok(EventEffect::Recorded)
        }
        _ => Ok(EventEffect::Recorded),
    }
}

/// Whether another outcome of this delivery (its "delayed" before its "failed") already
/// counted as a soft bounce: a delivery counts once.
async fn counted_before(
    tx: &mut sqlx::SqliteConnection,
    key: &str,
    event: &MailEvent,
) -> Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM mail_events
                        WHERE delivery = ?1 AND subscriber_id = ?2 AND outcome <> ?3 AND class = 'soft')",
    )
    .bind(key)
    .bind(event.subscriber.0)
    .bind(event.outcome.as_str())
    .fetch_one(&mut *tx)
    .await
    .doing("look for an earlier soft bounce of the delivery")
}

/// The issue of a stored `issue:<id>` delivery key.
fn previous_issue(key: Option<&str>) -> Option<i64> {
    key?.strip_prefix("issue:")?.parse().ok()
}

/// Whether an issue between `after` and `before` was sent to the subscriber and drew no
/// bounce: it breaks a row of soft bounces.
async fn received_between(
    tx: &mut sqlx::SqliteConnection,
    subscriber: SubscriberId,
    after: i64,
    before: i64,
) -> Result<bool> {
    let (low, high) = (after.min(before), after.max(before));
    sqlx::query_scalar(
        "SELECT EXISTS (
             SELECT 1 FROM deliveries d
             WHERE d.subscriber_id = ?1 AND d.issue_id > ?2 AND d.issue_id < ?3 AND d.status = 'sent'
               AND NOT EXISTS (SELECT 1 FROM mail_events e
                               WHERE e.delivery = 'issue:' || d.issue_id AND e.subscriber_id = ?1))",
    )
    .bind(subscriber.0)
    .bind(low)
    .bind(high)
    .fetch_one(&mut *tx)
    .await
    .doing("look for deliveries between soft bounces")
}

async fn bounce(
    tx: &mut sqlx::SqliteConnection,
    subscriber: SubscriberId,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    sqlx::query(
        "UPDATE subscribers SET status = 'bounced', bounced_at = ?2, status_reason = ?3
         WHERE id = ?1 AND status IN ('pending', 'confirmed')",
    )
    .bind(subscriber.0)
    .bind(ts(now))
    .bind(reason)
    .execute(&mut *tx)
    .await
    .doing("mark subscriber bounced")?;
    void_confirmations_in(tx, subscriber, now).await
}
