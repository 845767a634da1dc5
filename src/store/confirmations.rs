//! Confirmation requests and the outbox for transactional mail.
//!
//! A sign-up never changes a subscriber: it records what it asks for (name, digests) in
//! a `confirmations` row that expires and is used once, and queues the mail that carries
//! its link in `outbox`, in the same transaction. Only the mailbox, by following the
//! link, applies the request ([`Store::apply_confirmation`]). The outbox is sent like the
//! ledger: an item is claimed before sending (`sending`), marked sent only after the
//! server's 250, and a claim left by a crash is retried after [`CLAIM_EXPIRY`] with the
//! same Message-ID.

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::subscribers::NEW_NONCE;
use super::{Context, Result, Store, parse_opt_ts, parse_ts, ts};
use crate::domain::{SubscriberEmail, SubscriberId, SubscriberStatus};

/// A claim on an outbox item older than this is taken to be a crashed sender's.
pub const CLAIM_EXPIRY: chrono::Duration = chrono::Duration::minutes(10);

/// A sign-up to record.
#[derive(Debug, Clone)]
pub struct SignUpRequest<'a> {
    pub email: &'a SubscriberEmail,
    pub name: Option<&'a str>,
    pub digests: &'a [String],
    /// Random, for the confirm link.
    pub nonce: &'a str,
    pub message_domain: &'a str,
    pub now: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// What recording a sign-up did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignUpRecord {
    /// A confirmation is queued for a new (pending) address.
    New(SubscriberId),
    /// A confirmation is queued for an address already known; nothing about it changed.
    Known(SubscriberId, SubscriberStatus),
    /// The address bounced: no link can confirm it, so no mail is queued.
    Bounced(SubscriberId),
}

/// A confirmation request as stored.
#[derive(Debug, Clone)]
pub struct Confirmation {
    pub id: i64,
    pub subscriber_id: SubscriberId,
    pub name: Option<String>,
    pub digests: Vec<String>,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
}

/// What following a confirm link did (or would do).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfirmOutcome {
    /// The request was applied: the subscriber is confirmed with what it asked for.
    Confirmed,
    /// Nothing to do: the address was already confirmed with everything asked for.
    AlreadyConfirmed,
    /// The link was used before.
    Used,
    Expired,
    /// The address bounced; a link does not revive it.
    Bounced,
}

/// What a confirm link is, before or after it is followed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfirmLink {
    /// Signed, unused, unexpired: following it (POST) confirms this name (when one was
    /// asked for) and these digests.
    Ready {
        name: Option<String>,
        digests: Vec<String>,
    },
    /// What following it did or would do.
    Done(ConfirmOutcome),
    /// Not a link herald signed (or its subscriber is gone).
    Invalid,
}

/// One transactional message to send.
#[derive(Debug, Clone)]
pub struct OutboxItem {
    pub id: i64,
    pub kind: String,
    pub subscriber_id: SubscriberId,
    pub email: SubscriberEmail,
    pub name: Option<String>,
    pub confirmation_nonce: Option<String>,
    pub confirmation_expires_at: Option<DateTime<Utc>>,
    /// What the confirmation asks for: a name (if any) and digests.
    pub requested_name: Option<String>,
    pub requested_digests: Vec<String>,
    pub attempts: u32,
    pub message_id: String,
}

impl Store {
    /// Records a sign-up: a new address becomes a pending subscriber (with no name and
    /// no digests until it confirms); a known one is left exactly as it is. Either way (unless it bounced) a confirmation request and the
    /// mail that carries its link are written in the same transaction.
    pub async fn record_sign_up(&self, r: &SignUpRequest<'_>) -> Result<SignUpRecord> {
        let mut tx = self.begin_write("begin recording a sign-up").await?;
        let existing: Option<(i64, String)> =
            sqlx::query_as("SELECT id, status FROM subscribers WHERE email = ?1 COLLATE NOCASE")
                .bind(r.email.as_str())
                .fetch_optional(&mut *tx)
                .await
                .doing("find subscriber")?;
        let record = match existing {
            None => {
                // Pending, with nothing asked for yet: the name and digests live in the
                // confirmation request, so a stranger's sign-up leaves nothing behind that
                // the owner's own confirmation would inherit.
                let id: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO subscribers (email, status, created_at, token_nonce)
                     VALUES (?1, 'pending', ?2, {NEW_NONCE}) RETURNING id"
                )))
                .bind(r.email.as_str())
                .bind(ts(r.now))
                .fetch_one(&mut *tx)
                .await
                .doing("insert pending subscriber")?;
                SignUpRecord::New(SubscriberId(id))
            }
            Some((id, status)) => {
                let status = SubscriberStatus::parse(&status).unwrap_or(SubscriberStatus::Pending);
                if status.is_suppressed() {
                    tx.rollback().await.doing("roll back sign-up")?;
                    return Ok(SignUpRecord::Bounced(SubscriberId(id)));
                }
                SignUpRecord::Known(SubscriberId(id), status)
            }
        };
        let subscriber = match record {
            SignUpRecord::New(id) | SignUpRecord::Known(id, _) | SignUpRecord::Bounced(id) => id,
        };
        let digests = serde_json::to_string(r.digests).unwrap_or_else(|_| "[]".into());
        let confirmation: i64 = sqlx::query_scalar(
            "INSERT INTO confirmations (subscriber_id, nonce, name, digests, created_at, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING id",
        )
        .bind(subscriber.0)
        .bind(r.nonce)
        .bind(r.name)
        .bind(digests)
        .bind(ts(r.now))
        .bind(ts(r.expires_at))
        .fetch_one(&mut *tx)
        .await
        .doing("insert confirmation request")?;
        sqlx::query(
            "INSERT INTO outbox (kind, subscriber_id, confirmation_id, status, message_id, created_at, updated_at)
             VALUES ('confirm', ?1, ?2, 'queued', ?3, ?4, ?4)",
        )
        .bind(subscriber.0)
        .bind(confirmation)
        .bind(format!("<herald.confirm.{}@{}>", r.nonce, r.message_domain))
        .bind(ts(r.now))
        .execute(&mut *tx)
        .await
        .doing("queue confirmation mail")?;
        tx.commit().await.doing("commit sign-up")?;
        Ok(record)
    }

    /// The confirmation request with this nonce, if it belongs to `subscriber`.
    pub async fn confirmation(
        &self,
        subscriber: SubscriberId,
        nonce: &str,
    ) -> Result<Option<Confirmation>> {
        let row = sqlx::query(
            "SELECT id, subscriber_id, name, digests, expires_at, used_at FROM confirmations
             WHERE nonce = ?1 AND subscriber_id = ?2",
        )
        .bind(nonce)
        .bind(subscriber.0)
        .fetch_optional(&self.pool)
        .await
        .doing("read confirmation request")?;
        row.map(|r| {
            let digests: String = r.get("digests");
            Ok(Confirmation {
                id: r.get("id"),
                subscriber_id: SubscriberId(r.get("subscriber_id")),
                name: r.get("name"),
                digests: serde_json::from_str(&digests).unwrap_or_default(),
                expires_at: parse_ts(
                    "confirmations.expires_at",
                    &r.get::<String, _>("expires_at"),
                )?,
                used_at: parse_opt_ts("confirmations.used_at", r.get("used_at"))?,
            })
        })
        .transpose()
    }

    /// Applies a confirmation request, once: the subscriber becomes confirmed (from
    /// pending, confirmed or unsubscribed, never from bounced), takes the name it asked
    /// for and gains the digests it named. `only_digests` limits the digests to those still
    /// configured.
    ///
    /// A subscriber who becomes confirmed here for a digest in `welcome` also gets a
    /// welcome mail, queued in the outbox in the same transaction (sent once, like the
    /// confirmation), with a Message-ID on `message_domain`.
    pub async fn apply_confirmation(
        &self,
        confirmation: i64,
        only_digests: &[String],
        welcome: &[String],
        message_domain: &str,
        now: DateTime<Utc>,
    ) -> Result<ConfirmOutcome> {
        let mut tx = self.begin_write("begin confirming").await?;
        let row = sqlx::query(
            "SELECT c.subscriber_id, c.name, c.digests, c.expires_at, c.used_at, s.status
             FROM confirmations c JOIN subscribers s ON s.id = c.subscriber_id WHERE c.id = ?1",
        )
        .bind(confirmation)
        .fetch_optional(&mut *tx)
        .await
        .doing("read confirmation request")?;
        let Some(row) = row else {
            return Ok(ConfirmOutcome::Used);
        };
        let subscriber: i64 = row.get("subscriber_id");
        let name: Option<String> = row.get("name");
        let digests: String = row.get("digests");
        let expires_at: String = row.get("expires_at");
        let used_at: Option<String> = row.get("used_at");
        let status: String = row.get("status");
        if SubscriberStatus::parse(&status).is_some_and(SubscriberStatus::is_suppressed) {
            return Ok(ConfirmOutcome::Bounced);
        }
        if used_at.is_some() {
            return Ok(ConfirmOutcome::Used);
        }
        if parse_ts("confirmations.expires_at", &expires_at)? <= now {
            return Ok(ConfirmOutcome::Expired);
        }
        sqlx::query("UPDATE confirmations SET used_at = ?2 WHERE id = ?1")
            .bind(confirmation)
            .bind(ts(now))
            .execute(&mut *tx)
            .await
            .doing("use confirmation request")?;
        let mut changed = false;
        let newly_confirmed = status != SubscriberStatus::Confirmed.as_str();
        if newly_confirmed {
            sqlx::query(
                "UPDATE subscribers SET status = 'confirmed', confirmed_at = ?2, hard_failures = 0 WHERE id = ?1",
            )
            .bind(subscriber)
            .bind(ts(now))
            .execute(&mut *tx)
            .await
            .doing("confirm subscriber")?;
            changed = true;
        }
        if let Some(name) = name {
            let renamed =
                sqlx::query("UPDATE subscribers SET name = ?2 WHERE id = ?1 AND name IS NOT ?2")
                    .bind(subscriber)
                    .bind(name)
                    .execute(&mut *tx)
                    .await
                    .doing("rename subscriber")?;
            changed |= renamed.rows_affected() > 0;
        }
        let digests: Vec<String> = serde_json::from_str(&digests).unwrap_or_default();
        for digest in digests.iter().filter(|d| only_digests.contains(d)) {
            let added = sqlx::query(
                "INSERT INTO subscriptions (subscriber_id, digest) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
            )
            .bind(subscriber)
            .bind(digest)
            .execute(&mut *tx)
            .await
            .doing("subscribe to digest")?;
            changed |= added.rows_affected() > 0;
        }
        // Once per subscriber: a second sign-up later (after an unsubscribe) is welcomed
        // back by the digests themselves.
        if newly_confirmed
            && digests
                .iter()
                .any(|d| welcome.contains(d) && only_digests.contains(d))
        {
            sqlx::query(
                "INSERT INTO outbox (kind, subscriber_id, confirmation_id, status, message_id, created_at, updated_at)
                 SELECT 'welcome', ?1, ?2, 'queued', ?3, ?4, ?4
                 WHERE NOT EXISTS (SELECT 1 FROM outbox WHERE subscriber_id = ?1 AND kind = 'welcome')",
            )
            .bind(subscriber)
            .bind(confirmation)
            .bind(format!("<herald.welcome.{confirmation}@{message_domain}>"))
            .bind(ts(now))
            .execute(&mut *tx)
            .await
            .doing("queue the welcome mail")?;
        }
        tx.commit().await.doing("commit confirmation")?;
        Ok(if changed {
            ConfirmOutcome::Confirmed
        } else {
            ConfirmOutcome::AlreadyConfirmed
        })
    }

    /// A link mailed before confirmation requests existed (a v1 confirm token): it
    /// confirms a subscriber still pending since at most `ttl`, and nothing else.
    pub async fn confirm_legacy(
        &self,
        subscriber: SubscriberId,
        ttl: chrono::Duration,
        now: DateTime<Utc>,
    ) -> Result<ConfirmOutcome> {
        let row: Option<(String, String)> =
            sqlx::query_as("SELECT status, created_at FROM subscribers WHERE id = ?1")
                .bind(subscriber.0)
                .fetch_optional(&self.pool)
                .await
                .doing("read subscriber")?;
        let Some((status, created_at)) = row else {
            return Ok(ConfirmOutcome::Used);
        };
        match SubscriberStatus::parse(&status) {
            Some(SubscriberStatus::Pending) => {}
            Some(SubscriberStatus::Confirmed) => return Ok(ConfirmOutcome::AlreadyConfirmed),
            Some(SubscriberStatus::Bounced | SubscriberStatus::Complained) => {
                return Ok(ConfirmOutcome::Bounced);
            }
            _ => return Ok(ConfirmOutcome::Used),
        }
        if parse_ts("subscribers.created_at", &created_at)? + ttl <= now {
            return Ok(ConfirmOutcome::Expired);
        }
        let done = sqlx::query(
            "UPDATE subscribers SET status = 'confirmed', confirmed_at = ?2 WHERE id = ?1 AND status = 'pending'",
        )
        .bind(subscriber.0)
        .bind(ts(now))
        .execute(&self.pool)
        .await
        .doing("confirm subscriber")?;
        Ok(if done.rows_affected() > 0 {
            ConfirmOutcome::Confirmed
        } else {
            ConfirmOutcome::Used
        })
    }

    /// Voids a subscriber's unused confirmation requests (they unsubscribed or bounced:
    /// an older link must not subscribe them again).
    pub async fn void_confirmations(
        &self,
        subscriber: SubscriberId,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .doing("void confirmation requests")?;
        void_confirmations_in(&mut conn, subscriber, now).await
    }

    /// Outbox items to send now: queued ones, deferred ones whose time has come, and
    /// claims a crashed sender left behind.
    pub async fn outbox_due(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<OutboxItem>> {
        let rows = sqlx::query(
            "SELECT o.id, o.kind, o.subscriber_id, s.email, s.name, c.nonce, c.expires_at,
                    c.name AS requested_name, c.digests AS requested_digests, o.attempts, o.message_id
             FROM outbox o JOIN subscribers s ON s.id = o.subscriber_id
             LEFT JOIN confirmations c ON c.id = o.confirmation_id
             WHERE o.status = 'queued'
                OR (o.status = 'deferred' AND o.next_attempt_at <= ?1)
                OR (o.status = 'sending' AND o.next_attempt_at <= ?1)
             ORDER BY o.id LIMIT ?2",
        )
        .bind(ts(now))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .doing("read the outbox")?;
        rows.iter()
            .map(|r| {
                Ok(OutboxItem {
                    id: r.get("id"),
                    kind: r.get("kind"),
                    subscriber_id: SubscriberId(r.get("subscriber_id")),
                    email: SubscriberEmail::from_stored(r.get("email")),
                    name: r.get("name"),
                    confirmation_nonce: r.get("nonce"),
                    confirmation_expires_at: parse_opt_ts(
                        "confirmations.expires_at",
                        r.get("expires_at"),
                    )?,
                    requested_name: r.get("requested_name"),
                    requested_digests: r
                        .get::<Option<String>, _>("requested_digests")
                        .and_then(|d| serde_json::from_str(&d).ok())
                        .unwrap_or_default(),
                    attempts: r.get::<i64, _>("attempts").try_into().unwrap_or(0),
                    message_id: r.get("message_id"),
                })
            })
            .collect()
    }

    /// Claims an outbox item for sending; `false` when another sender has it.
    pub async fn claim_outbox(&self, id: i64, now: DateTime<Utc>) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE outbox SET status = 'sending', next_attempt_at = ?2, updated_at = ?3
             WHERE id = ?1 AND (status IN ('queued', 'deferred') OR (status = 'sending' AND next_attempt_at <= ?3))",
        )
        .bind(id)
        .bind(ts(now + CLAIM_EXPIRY))
        .bind(ts(now))
        .execute(&self.pool)
        .await
        .doing("claim an outbox item")?;
        Ok(done.rows_affected() > 0)
    }

    /// Records what became of an outbox item: `next_attempt_at` for a retry, or `None`
    /// with `sent` for a final outcome.
    pub async fn finish_outbox(
        &self,
        id: i64,
        sent: bool,
        reply: &str,
        retry_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let status = match (sent, retry_at) {
            (true, _) => "sent",
            (false, Some(_)) => "deferred",
            (false, None) => "failed",
        };
        sqlx::query(
            "UPDATE outbox SET status = ?2, attempts = attempts + 1, last_reply = ?3, next_attempt_at = ?4,
                 updated_at = ?5 WHERE id = ?1",
        )
        .bind(id)
        .bind(status)
        .bind(reply)
        .bind(retry_at.map(ts))
        .bind(ts(now))
        .execute(&self.pool)
        .await
        .doing("record an outbox outcome")?;
        Ok(())
    }

    /// Outbox items by status (for `herald status` and tests).
    pub async fn outbox_counts(&self) -> Result<Vec<(String, u64)>> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT status, count(*) FROM outbox GROUP BY status ORDER BY status")
                .fetch_all(&self.pool)
                .await
                .doing("count the outbox")?;
        Ok(rows
            .into_iter()
            .map(|(s, n)| (s, n.try_into().unwrap_or(0)))
            .collect())
    }
}

/// [`Store::void_confirmations`] inside a transaction (a bounce, a complaint).
pub(crate) async fn void_confirmations_in(
    conn: &mut sqlx::SqliteConnection,
    subscriber: SubscriberId,
    now: DateTime<Utc>,
) -> Result<()> {
    sqlx::query(
        "UPDATE confirmations SET used_at = ?2 WHERE subscriber_id = ?1 AND used_at IS NULL",
    )
    .bind(subscriber.0)
    .bind(ts(now))
    .execute(&mut *conn)
    .await
    .doing("void confirmation requests")?;
    Ok(())
}
