//! Issues and the delivery ledger: the truth about who got what.
//!
//! An issue and one delivery row per confirmed subscriber are written in one transaction,
//! keyed by (digest, due_at), so a period can never produce two issues. A delivery is
//! marked sent only after the server accepted the message; a resumed send picks only
//! queued rows and deferred rows whose time has come.

use super::events::{EventClass, EventDelivery, EventEffect, EventOutcome, MailEvent, record_in};
use crate::domain::verp::DeliveryRef;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::{Context, Error, Result, Store, parse_opt_ts, parse_ts, ts};
use crate::domain::{
    DeliveryStatus, Issue, IssueId, IssueStatus, PostId, SubscriberEmail, SubscriberId,
};

/// An issue about to be created.
#[derive(Debug, Clone)]
pub struct NewIssue {
    pub digest: String,
    pub due_at: DateTime<Utc>,
    pub window_start: Option<DateTime<Utc>>,
    pub window_end: DateTime<Utc>,
    pub subject: String,
    pub post_ids: Vec<PostId>,
    /// Record the period as `empty` and send nothing (no posts, and the digest skips
    /// empty periods).
    pub skip: bool,
}

/// Whether `create_issue` made a new issue or found the period's existing one.
#[derive(Debug, Clone)]
pub enum IssueCreated {
    /// A new issue, with this many deliveries queued.
    Created(Issue, u64),
    Existing(Issue),
}

/// Deliveries of an issue by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LedgerCounts {
    pub queued: u64,
    pub sent: u64,
    pub deferred: u64,
    pub failed: u64,
}

impl LedgerCounts {
    pub fn total(&self) -> u64 {
        self.queued + self.sent + self.deferred + self.failed
    }

    /// Nothing left to try.
    pub fn finished(&self) -> bool {
        self.queued == 0 && self.deferred == 0
    }

    /// From `(status, count)` rows.
    fn from_rows(rows: Vec<(String, i64)>) -> Self {
        let mut counts = Self::default();
        for (status, n) in rows {
            let n = n.try_into().unwrap_or(0);
            match DeliveryStatus::parse(&status) {
                Some(DeliveryStatus::Queued) => counts.queued = n,
                Some(DeliveryStatus::Sent) => counts.sent = n,
                Some(DeliveryStatus::Deferred) => counts.deferred = n,
                Some(DeliveryStatus::Failed) => counts.failed = n,
                None => {}
            }
        }
        counts
    }
}

/// A delivery to attempt, with what is needed to address the message.
#[derive(Debug, Clone)]
pub struct PendingDelivery {
    pub subscriber_id: SubscriberId,
    pub email: SubscriberEmail,
    pub name: Option<String>,
    /// The random part of their links (`None`: a row older than nonces, v1 links).
    pub token_nonce: Option<String>,
    pub attempts: u32,
    pub hard_failures: u32,
    pub message_id: String,
}

/// One issue as the public archive lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveEntry {
    pub id: IssueId,
    pub digest: String,
    pub subject: String,
    pub due_at: DateTime<Utc>,
    pub posts: u64,
}

/// What a permanent failure did to the subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureEffect {
    None,
    /// A hard bounce, or the last soft one of a row: the subscriber is now bounced.
    Bounced,
}

/// A failure that counts against the address, and the limit of soft ones in a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counted {
    pub class: EventClass,
    pub soft_bounce_limit: u32,
}

const ISSUE_COLUMNS: &str = "id, digest, due_at, window_start, window_end, subject, post_ids, status, created_at, relay_refusals";

impl Store {
    /// Creates the issue for (digest, due_at) with a queued delivery for every confirmed
    /// subscriber of the digest, in one transaction; or returns the issue that already
    /// exists for that period. A skipped issue is recorded as `empty` with no deliveries.
    pub async fn create_issue(
        &self,
        new: &NewIssue,
        message_domain: &str,
        now: DateTime<Utc>,
    ) -> Result<IssueCreated> {
        let mut tx = self.begin_write("begin creating an issue").await?;
        let existing = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ISSUE_COLUMNS} FROM issues WHERE digest = ?1 AND due_at = ?2"
        )))
        .bind(&new.digest)
        .bind(ts(new.due_at))
        .fetch_optional(&mut *tx)
        .await
        .doing("look for the period's issue")?;
        if let Some(row) = existing {
            return Ok(IssueCreated::Existing(issue_from_row(&row)?));
        }
        let status = if new.skip {
            IssueStatus::Empty
        } else {
            IssueStatus::Sending
        };
        let post_ids = serde_json::to_string(&new.post_ids.iter().map(|p| p.0).collect::<Vec<_>>())
            .unwrap_or_else(|_| "[]".into());
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO issues (digest, due_at, window_start, window_end, subject, post_ids, status, created_at, finished_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, CASE WHEN ?7 = 'empty' THEN ?8 END)
             RETURNING {ISSUE_COLUMNS}"
        )))
        .bind(&new.digest)
        .bind(ts(new.due_at))
        .bind(new.window_start.map(ts))
        .bind(ts(new.window_end))
        .bind(&new.subject)
        .bind(post_ids)
        .bind(status.as_str())
        .bind(ts(now))
        .fetch_one(&mut *tx)
        .await
        .doing("insert issue")?;
        let issue = issue_from_row(&row)?;
        let mut queued = 0;
        if status == IssueStatus::Sending {
            // The Message-ID is derived from (issue, subscriber): a message re-sent after a
            // crash carries the same id, so mail clients collapse the copy.
            let done = sqlx::query(
                "INSERT INTO deliveries (issue_id, subscriber_id, status, attempts, message_id, updated_at)
                 SELECT ?1, s.id, 'queued', 0, '<herald.' || ?1 || '.' || s.id || '@' || ?2 || '>', ?3
                 FROM subscriptions x JOIN subscribers s ON s.id = x.subscriber_id
                 WHERE x.digest = ?4 AND s.status = 'confirmed'",
            )
            .bind(issue.id.0)
            .bind(message_domain)
            .bind(ts(now))
            .bind(&new.digest)
            .execute(&mut *tx)
            .await
            .doing("queue deliveries")?;
            queued = done.rows_affected();
            // The one bulk insert into the ledger, counted here rather than by a
            // trigger run per row.
            sqlx::query(
                "INSERT INTO tallies (name, status, n) VALUES ('deliveries', 'queued', ?1)
                 ON CONFLICT (name, status) DO UPDATE SET n = n + excluded.n",
            )
            .bind(i64::try_from(queued).unwrap_or(i64::MAX))
            .execute(&mut *tx)
            .await
            .doing("count queued deliveries")?;
        }
        tx.commit().await.doing("commit issue")?;
        Ok(IssueCreated::Created(issue, queued))
    }

    pub async fn issue(&self, id: IssueId) -> Result<Option<Issue>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ISSUE_COLUMNS} FROM issues WHERE id = ?1"
        )))
        .bind(id.0)
        .fetch_optional(&self.pool)
        .await
        .doing("read issue")?;
        row.as_ref().map(issue_from_row).transpose()
    }

    /// The issue of one period, if it exists.
    pub async fn issue_for(&self, digest: &str, due_at: DateTime<Utc>) -> Result<Option<Issue>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ISSUE_COLUMNS} FROM issues WHERE digest = ?1 AND due_at = ?2"
        )))
        .bind(digest)
        .bind(ts(due_at))
        .fetch_optional(&self.pool)
        .await
        .doing("read the period's issue")?;
        row.as_ref().map(issue_from_row).transpose()
    }

    /// Issues of `digests` that went out (sending or sent, never empty ones), newest
    /// first: `limit` of them after skipping `offset`. For the public archive: subject,
    /// period, post count, nothing about anyone. Each digest's issues are read through
    /// the (digest, due_at) key; there is one per period, so a few thousand at most.
    pub async fn archive_entries(
        &self,
        digests: &[String],
        offset: u64,
        limit: u64,
    ) -> Result<Vec<ArchiveEntry>> {
        if digests.is_empty() {
            return Ok(Vec::new());
        }
        let mut query = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "SELECT id, digest, subject, due_at, json_array_length(post_ids) FROM issues
             WHERE status <> 'empty' AND digest IN (",
        );
        let mut list = query.separated(", ");
        for digest in digests {
            list.push_bind(digest.as_str());
        }
        query
            .push(") ORDER BY due_at DESC, id DESC LIMIT ")
            .push_bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .push(" OFFSET ")
            .push_bind(i64::try_from(offset).unwrap_or(i64::MAX));
        let rows: Vec<(i64, String, String, String, i64)> = query
            .build_query_as()
            .fetch_all(&self.pool)
            .await
            .doing("list the archive")?;
        rows.into_iter()
            .map(|(id, digest, subject, due_at, posts)| {
                Ok(ArchiveEntry {
                    id: IssueId(id),
                    digest,
                    subject,
                    due_at: parse_ts("issues.due_at", &due_at)?,
                    posts: u64::try_from(posts).unwrap_or(0),
                })
            })
            .collect()
    }

    /// The digest's most recent issue that went out (not an empty period).
    pub async fn latest_sent_issue(&self, digest: &str) -> Result<Option<Issue>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ISSUE_COLUMNS} FROM issues WHERE digest = ?1 AND status <> 'empty'
             ORDER BY due_at DESC, id DESC LIMIT 1"
        )))
        .bind(digest)
        .fetch_optional(&self.pool)
        .await
        .doing("read the latest issue sent")?;
        row.as_ref().map(issue_from_row).transpose()
    }

    /// The digest's most recent issue (by period).
    pub async fn latest_issue(&self, digest: &str) -> Result<Option<Issue>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ISSUE_COLUMNS} FROM issues WHERE digest = ?1 ORDER BY due_at DESC, id DESC LIMIT 1"
        )))
        .bind(digest)
        .fetch_optional(&self.pool)
        .await
        .doing("read latest issue")?;
        row.as_ref().map(issue_from_row).transpose()
    }

    /// The digest's oldest issue still sending, if any.
    pub async fn sending_issue_of(&self, digest: &str) -> Result<Option<Issue>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ISSUE_COLUMNS} FROM issues WHERE digest = ?1 AND status = 'sending' ORDER BY id LIMIT 1"
        )))
        .bind(digest)
        .fetch_optional(&self.pool)
        .await
        .doing("read sending issue")?;
        row.as_ref().map(issue_from_row).transpose()
    }

    /// Issues still sending (queued or deferred deliveries), oldest first.
    pub async fn issues_sending(&self) -> Result<Vec<Issue>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ISSUE_COLUMNS} FROM issues WHERE status = 'sending' ORDER BY id"
        )))
        .fetch_all(&self.pool)
        .await
        .doing("list sending issues")?;
        rows.iter().map(issue_from_row).collect()
    }

    pub async fn ledger_counts(&self, issue: IssueId) -> Result<LedgerCounts> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT status, count(*) FROM deliveries WHERE issue_id = ?1 GROUP BY status",
        )
        .bind(issue.0)
        .fetch_all(&self.pool)
        .await
        .doing("count deliveries")?;
        Ok(LedgerCounts::from_rows(rows))
    }

    /// One delivery's status, attempts and last reply.
    pub async fn delivery(
        &self,
        issue: IssueId,
        subscriber: SubscriberId,
    ) -> Result<Option<(DeliveryStatus, u32, Option<String>)>> {
        let row: Option<(String, i64, Option<String>)> =
            sqlx::query_as("SELECT status, attempts, last_reply FROM deliveries WHERE issue_id = ?1 AND subscriber_id = ?2")
                .bind(issue.0)
                .bind(subscriber.0)
                .fetch_optional(&self.pool)
                .await
                .doing("read delivery")?;
        row.map(|(status, attempts, reply)| {
            let status = DeliveryStatus::parse(&status).ok_or(Error::Corrupt {
                what: "deliveries.status",
                value: status,
            })?;
            Ok((status, attempts.try_into().unwrap_or(0), reply))
        })
        .transpose()
    }

    /// The most recent reply of each delivery status of an issue (`digest status`):
    /// what the relay said last to the deliveries sent, deferred and failed.
    pub async fn last_replies(&self, issue: IssueId) -> Result<Vec<(DeliveryStatus, String)>> {
        // SQLite takes the bare columns from the row where max() is found.
        let rows: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT status, last_reply, max(updated_at) FROM deliveries
             WHERE issue_id = ?1 AND last_reply IS NOT NULL GROUP BY status ORDER BY status",
        )
        .bind(issue.0)
        .fetch_all(&self.pool)
        .await
        .doing("read last replies")?;
        Ok(rows
            .into_iter()
            .filter_map(|(status, reply, _)| DeliveryStatus::parse(&status).map(|s| (s, reply)))
            .collect())
    }

    /// Deliveries of every issue by status, from the tallies (read on every scrape).
    pub async fn delivery_counts(&self) -> Result<LedgerCounts> {
        let rows = self.tallies("deliveries").await?;
        Ok(LedgerCounts::from_rows(
            rows.into_iter()
                .map(|(s, n)| (s, i64::try_from(n).unwrap_or(i64::MAX)))
                .collect(),
        ))
    }

    /// When the earliest deferred delivery of an issue may be tried again.
    pub async fn next_retry_at(&self, issue: IssueId) -> Result<Option<DateTime<Utc>>> {
        let at: Option<String> =
            sqlx::query_scalar("SELECT min(next_attempt_at) FROM deliveries WHERE issue_id = ?1 AND status = 'deferred'")
                .bind(issue.0)
                .fetch_one(&self.pool)
                .await
                .doing("read next retry")?;
        parse_opt_ts("deliveries.next_attempt_at", at)
    }

    /// Deliveries to subscribers who are no longer confirmed (they unsubscribed or
    /// bounced after the issue was created) are closed as failed, not sent.
    pub async fn skip_unsubscribed(&self, issue: IssueId, now: DateTime<Utc>) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE deliveries SET status = 'failed', last_reply = 'not sent: subscriber is ' ||
                 (SELECT status FROM subscribers s WHERE s.id = deliveries.subscriber_id), updated_at = ?2
             WHERE issue_id = ?1 AND status IN ('queued', 'deferred')
               AND EXISTS (SELECT 1 FROM subscribers s
                           WHERE s.id = deliveries.subscriber_id AND s.status <> 'confirmed')",
        )
        .bind(issue.0)
        .bind(ts(now))
        .execute(&self.pool)
        .await
        .doing("skip unsubscribed deliveries")?;
        Ok(done.rows_affected())
    }

    /// The next batch of deliveries to attempt now, after `after` in subscriber order:
    /// queued ones, and deferred ones whose time has come. Read in batches so that no list
    /// of all subscribers is ever held in memory.
    pub async fn deliveries_to_send(
        &self,
        issue: IssueId,
        after: SubscriberId,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<PendingDelivery>> {
        let rows = sqlx::query(
            "SELECT d.subscriber_id, s.email, s.name, s.token_nonce, d.attempts, s.hard_failures, d.message_id
             FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id
             WHERE d.issue_id = ?1 AND d.subscriber_id > ?2 AND s.status = 'confirmed'
               AND (d.status = 'queued' OR (d.status = 'deferred' AND d.next_attempt_at <= ?3))
             ORDER BY d.subscriber_id LIMIT ?4",
        )
        .bind(issue.0)
        .bind(after.0)
        .bind(ts(now))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .doing("read deliveries to send")?;
        rows.iter()
            .map(|r| {
                Ok(PendingDelivery {
                    subscriber_id: SubscriberId(r.get("subscriber_id")),
                    // As stored: an address that fails today's rules fails only its own
                    // delivery, when its message is built.
                    email: SubscriberEmail::from_stored(r.get("email")),
                    name: r.get("name"),
                    token_nonce: r.get("token_nonce"),
                    attempts: r.get::<i64, _>("attempts").try_into().unwrap_or(0),
                    hard_failures: r.get::<i64, _>("hard_failures").try_into().unwrap_or(0),
                    message_id: r.get("message_id"),
                })
            })
            .collect()
    }

    /// Records the server's acceptance. Called only after the 250.
    pub async fn mark_sent(
        &self,
        issue: IssueId,
        delivery: &PendingDelivery,
        reply: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE deliveries SET status = 'sent', attempts = attempts + 1, last_reply = ?3, next_attempt_at = NULL,
                 updated_at = ?4
             WHERE issue_id = ?1 AND subscriber_id = ?2",
        )
        .bind(issue.0)
        .bind(delivery.subscriber_id.0)
        .bind(reply)
        .bind(ts(now))
        .execute(&self.pool)
        .await
        .doing("mark delivery sent")?;
        if delivery.hard_failures > 0 {
            sqlx::query("UPDATE subscribers SET hard_failures = 0 WHERE id = ?1")
                .bind(delivery.subscriber_id.0)
                .execute(&self.pool)
                .await
                .doing("reset failure count")?;
        }
        Ok(())
    }

    /// Records a temporary failure; the delivery is tried again at `next_attempt_at`.
    pub async fn mark_deferred(
        &self,
        issue: IssueId,
        subscriber: SubscriberId,
        reply: &str,
        next_attempt_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE deliveries SET status = 'deferred', attempts = attempts + 1, last_reply = ?3, next_attempt_at = ?4,
                 updated_at = ?5
             WHERE issue_id = ?1 AND subscriber_id = ?2",
        )
        .bind(issue.0)
        .bind(subscriber.0)
        .bind(reply)
        .bind(ts(next_attempt_at))
        .bind(ts(now))
        .execute(&self.pool)
        .await
        .doing("mark delivery deferred")?;
        Ok(())
    }

    /// Puts a delivery back to be tried at `at`, without counting an attempt: what
    /// failed was not this delivery (its message was refused as too big and will be
    /// rendered smaller; the relay cannot be used as configured).
    pub async fn put_back(
        &self,
        issue: IssueId,
        subscriber: SubscriberId,
        reply: &str,
        at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE deliveries SET status = 'deferred', last_reply = ?3, next_attempt_at = ?4, updated_at = ?5
             WHERE issue_id = ?1 AND subscriber_id = ?2",
        )
        .bind(issue.0)
        .bind(subscriber.0)
        .bind(reply)
        .bind(ts(at))
        .bind(ts(now))
        .execute(&self.pool)
        .await
        .doing("defer a delivery for a smaller message")?;
        Ok(())
    }

    /// Records a final failure. One that blames the address (`counted`: hard, or soft
    /// with the limit of soft bounces in a row) is recorded as the subscriber's bounce,
    /// by the same rule as a DSN's (see [`super::events`]).
    pub async fn mark_failed(
        &self,
        issue: IssueId,
        subscriber: SubscriberId,
        reply: &str,
        counted: Option<Counted>,
        now: DateTime<Utc>,
    ) -> Result<FailureEffect> {
        let mut tx = self.begin_write("begin recording a failure").await?;
        sqlx::query(
            "UPDATE deliveries SET status = 'failed', attempts = attempts + 1, last_reply = ?3, next_attempt_at = NULL,
                 updated_at = ?4
             WHERE issue_id = ?1 AND subscriber_id = ?2",
        )
        .bind(issue.0)
        .bind(subscriber.0)
        .bind(reply)
        .bind(ts(now))
        .execute(&mut *tx)
        .await
        .doing("mark delivery failed")?;
        let mut effect = FailureEffect::None;
        if let Some(counted) = counted {
            if counted.class == EventClass::Hard {
                sqlx::query(
                    "UPDATE subscribers SET hard_failures = hard_failures + 1 WHERE id = ?1",
                )
                .bind(subscriber.0)
                .execute(&mut *tx)
                .await
                .doing("count hard failure")?;
            }
            let event = MailEvent {
                delivery: EventDelivery::Known(DeliveryRef::Issue {
                    issue: issue.0,
                    subscriber,
                }),
                subscriber,
                outcome: EventOutcome::Failed,
                class: counted.class,
                source: "smtp",
                detail: reply.to_owned(),
            };
            if record_in(&mut tx, &event, counted.soft_bounce_limit, now).await?
                == EventEffect::Bounced
            {
                effect = FailureEffect::Bounced;
            }
        }
        tx.commit().await.doing("commit failure")?;
        Ok(effect)
    }

    /// Puts failed deliveries back, to be tried again at `retry_at` (their failure was not
    /// theirs: the relay refused everything).
    /// The attempt the refusal counted is taken back: a relay that refuses everything
    /// does not use up anyone's retries.
    pub async fn requeue(
        &self,
        issue: IssueId,
        subscribers: &[SubscriberId],
        retry_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let mut tx = self.begin_write("begin requeueing").await?;
        for subscriber in subscribers {
            sqlx::query(
                "UPDATE deliveries SET status = 'deferred', next_attempt_at = ?4, updated_at = ?3,
                     attempts = max(attempts - 1, 0)
                 WHERE issue_id = ?1 AND subscriber_id = ?2 AND status = 'failed'",
            )
            .bind(issue.0)
            .bind(subscriber.0)
            .bind(ts(now))
            .bind(ts(retry_at))
            .execute(&mut *tx)
            .await
            .doing("requeue a delivery")?;
        }
        tx.commit().await.doing("commit requeue")?;
        Ok(())
    }

    /// Records that the relay refused this issue's messages wholesale.
    pub async fn note_relay_refusal(&self, issue: IssueId) -> Result<()> {
        sqlx::query("UPDATE issues SET relay_refusals = relay_refusals + 1 WHERE id = ?1")
            .bind(issue.0)
            .execute(&self.pool)
            .await
            .doing("record a relay refusal")?;
        Ok(())
    }

    /// Takes back one hard failure of each subscriber (a relay that refused everyone
    /// blamed them wrongly) with the bounce it recorded for `issue`, and un-bounces those
    /// that failure bounced.
    pub async fn undo_hard_failures(
        &self,
        issue: IssueId,
        subscribers: &[(SubscriberId, bool)],
    ) -> Result<()> {
        if subscribers.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write("begin undoing hard failures").await?;
        for (subscriber, bounced) in subscribers {
            sqlx::query(
                "UPDATE subscribers SET hard_failures = max(hard_failures - 1, 0),
                     status_reason = CASE WHEN ?2 AND status = 'bounced' THEN NULL ELSE status_reason END,
                     bounced_at = CASE WHEN ?2 AND status = 'bounced' THEN NULL ELSE bounced_at END,
                     status = CASE WHEN ?2 AND status = 'bounced' THEN 'confirmed' ELSE status END
                 WHERE id = ?1",
            )
            .bind(subscriber.0)
            .bind(*bounced)
            .execute(&mut *tx)
            .await
            .doing("undo a hard failure")?;
            sqlx::query(
                "DELETE FROM mail_events WHERE delivery = ?1 AND subscriber_id = ?2 AND source = 'smtp'",
            )
            .bind(format!("issue:{}", issue.0))
            .bind(subscriber.0)
            .execute(&mut *tx)
            .await
            .doing("take back a bounce")?;
        }
        tx.commit().await.doing("commit undone hard failures")?;
        Ok(())
    }

    /// Bounced subscribers with the replies of their last failed deliveries (newest
    /// first, at most `per` each), for a repair of bounces counted wrongly.
    pub async fn bounced_with_replies(
        &self,
        per: usize,
    ) -> Result<Vec<(SubscriberId, Vec<String>)>> {
        // The last `per` of each, ranked in SQL: a list wiped by a relay's refusals can
        // have millions of failed rows.
        let rows: Vec<(i64, Option<String>)> = sqlx::query_as(
            "SELECT subscriber_id, last_reply FROM (
                 SELECT d.subscriber_id, d.last_reply,
                        row_number() OVER (PARTITION BY d.subscriber_id ORDER BY d.updated_at DESC) AS n
                 FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id
                 WHERE s.status = 'bounced' AND d.status = 'failed')
             WHERE n <= ?1 ORDER BY subscriber_id",
        )
        .bind(i64::try_from(per).unwrap_or(3))
        .fetch_all(&self.pool)
        .await
        .doing("read bounced subscribers' replies")?;
        let mut out: Vec<(SubscriberId, Vec<String>)> = Vec::new();
        for (id, reply) in rows {
            let id = SubscriberId(id);
            match out.last_mut() {
                Some((last, replies)) if *last == id => {
                    if replies.len() < per {
                        replies.push(reply.unwrap_or_default());
                    }
                }
                _ => out.push((id, vec![reply.unwrap_or_default()])),
            }
        }
        Ok(out)
    }

    /// Makes bounced subscribers confirmed again (their bounce was not their address's
    /// fault).
    pub async fn unbounce(&self, subscribers: &[SubscriberId]) -> Result<u64> {
        let mut tx = self.begin_write("begin un-bouncing").await?;
        let mut n = 0;
        for subscriber in subscribers {
            let done = sqlx::query(
                "UPDATE subscribers SET status = 'confirmed', bounced_at = NULL, hard_failures = 0
                 WHERE id = ?1 AND status = 'bounced'",
            )
            .bind(subscriber.0)
            .execute(&mut *tx)
            .await
            .doing("un-bounce a subscriber")?;
            n += done.rows_affected();
        }
        tx.commit().await.doing("commit un-bouncing")?;
        Ok(n)
    }

    /// Marks the issue sent when no delivery is left to try; returns its status.
    pub async fn finish_issue_if_done(
        &self,
        issue: IssueId,
        now: DateTime<Utc>,
    ) -> Result<IssueStatus> {
        sqlx::query(
            "UPDATE issues SET status = 'sent', finished_at = ?2
             WHERE id = ?1 AND status = 'sending'
               AND NOT EXISTS (SELECT 1 FROM deliveries WHERE issue_id = ?1 AND status IN ('queued', 'deferred'))",
        )
        .bind(issue.0)
        .bind(ts(now))
        .execute(&self.pool)
        .await
        .doing("finish issue")?;
        let status: String = sqlx::query_scalar("SELECT status FROM issues WHERE id = ?1")
            .bind(issue.0)
            .fetch_one(&self.pool)
            .await
            .doing("read issue status")?;
        IssueStatus::parse(&status).ok_or(Error::Corrupt {
            what: "issues.status",
            value: status,
        })
    }

    /// The most recent end of a window among the digest's issues: the next issue's posts
    /// are those first seen after it.
    pub async fn last_window_end(&self, digest: &str) -> Result<Option<DateTime<Utc>>> {
        let at: Option<String> =
            sqlx::query_scalar("SELECT max(window_end) FROM issues WHERE digest = ?1")
                .bind(digest)
                .fetch_one(&self.pool)
                .await
                .doing("read last window")?;
        parse_opt_ts("issues.window_end", at)
    }
}

fn issue_from_row(r: &SqliteRow) -> Result<Issue> {
    let status: String = r.get("status");
    let post_ids: String = r.get("post_ids");
    let ids: Vec<i64> = serde_json::from_str(&post_ids).map_err(|_| Error::Corrupt {
        what: "issues.post_ids",
        value: post_ids,
    })?;
    Ok(Issue {
        id: IssueId(r.get("id")),
        digest: r.get("digest"),
        due_at: parse_ts("issues.due_at", &r.get::<String, _>("due_at"))?,
        window_start: parse_opt_ts("issues.window_start", r.get("window_start"))?,
        window_end: parse_ts("issues.window_end", &r.get::<String, _>("window_end"))?,
        subject: r.get("subject"),
        post_ids: ids.into_iter().map(PostId).collect(),
        status: IssueStatus::parse(&status).ok_or(Error::Corrupt {
            what: "issues.status",
            value: status,
        })?,
        created_at: parse_ts("issues.created_at", &r.get::<String, _>("created_at"))?,
        relay_refusals: r.get::<i64, _>("relay_refusals").try_into().unwrap_or(0),
    })
}
