//! The `subscribers` and `subscriptions` tables. Addresses are unique case-insensitively.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::{Context, Error, Result, Store, parse_opt_ts, parse_ts, ts};

use crate::domain::{Subscriber, SubscriberEmail, SubscriberId, SubscriberStatus};

/// One subscriber to import: address, name, digests, and a status the row itself gives
/// (an export's `unsubscribed` or `bounced`, which an import never turns into confirmed).
pub type ImportRow = (
    SubscriberEmail,
    Option<String>,
    Vec<String>,
    Option<SubscriberStatus>,
);

/// Which subscribers a listing or export reads.
#[derive(Debug, Clone, Default)]
pub struct SubscriberFilter {
    pub status: Option<SubscriberStatus>,
    /// Only subscribers of this digest.
    pub digest: Option<String>,
    pub limit: Option<u64>,
}

/// What adding a subscriber did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddOutcome {
    Added(SubscriberId),
    /// Already known; digests were added or the status confirmed.
    Updated(SubscriberId),
    /// Already known exactly like this.
    Unchanged(SubscriberId),
    /// Bounced or complained: left exactly as it is (the operator can re-add it
    /// explicitly).
    Suppressed(SubscriberId),
}

impl AddOutcome {
    pub fn id(self) -> SubscriberId {
        match self {
            Self::Added(id) | Self::Updated(id) | Self::Unchanged(id) | Self::Suppressed(id) => id,
        }
    }
}

const SUBSCRIBER_COLUMNS: &str = "s.id, s.email, s.name, s.status, s.created_at, s.confirmed_at, s.token_nonce, s.status_reason,
     (SELECT group_concat(x.digest, ' ' ORDER BY x.digest) FROM subscriptions x WHERE x.subscriber_id = s.id) AS digests";

impl Store {
    /// Adds a subscriber, or adds digests to a known one (matched case-insensitively).
    /// A known subscriber's status only moves from pending to confirmed here: an address
    /// that unsubscribed is not re-subscribed behind its back, and a suppressed one
    /// (bounced, complained) is left alone ([`AddOutcome::Suppressed`]).
    pub async fn add_subscriber(
        &self,
        email: &SubscriberEmail,
        name: Option<&str>,
        digests: &[String],
        status: SubscriberStatus,
        now: DateTime<Utc>,
    ) -> Result<AddOutcome> {
        self.add_subscriber_with(email, name, digests, status, false, now)
            .await
    }

    /// [`Self::add_subscriber`]; with `unsuppress`, the operator's explicit word that a
    /// bounced or complained address gets `status` again.
    pub async fn add_subscriber_with(
        &self,
        email: &SubscriberEmail,
        name: Option<&str>,
        digests: &[String],
        status: SubscriberStatus,
        unsuppress: bool,
        now: DateTime<Utc>,
    ) -> Result<AddOutcome> {
        let mut tx = self.begin_write("begin adding a subscriber").await?;
        let outcome = add_in(&mut tx, email, name, digests, status, unsuppress, now).await?;
        tx.commit().await.doing("commit subscriber")?;
        Ok(outcome)
    }

    /// Adds many subscribers in one transaction (an import), counting them into
    /// `progress`.
    pub async fn add_subscribers(
        &self,
        rows: &[ImportRow],
        status: SubscriberStatus,
        now: DateTime<Utc>,
        progress: &crate::telemetry::Progress,
    ) -> Result<Vec<AddOutcome>> {
        self.add_subscribers_with(rows, status, false, now, progress)
            .await
    }

    /// [`Self::add_subscribers`]; `unsuppress` as in [`Self::add_subscriber_with`].
    pub async fn add_subscribers_with(
        &self,
        rows: &[ImportRow],
        status: SubscriberStatus,
        unsuppress: bool,
        now: DateTime<Utc>,
        progress: &crate::telemetry::Progress,
    ) -> Result<Vec<AddOutcome>> {
        let mut tx = self.begin_write("begin import").await?;
        let mut out = Vec::with_capacity(rows.len());
        progress.start("importing", rows.len() as u64);
        for chunk in rows.chunks(IMPORT_BATCH) {
            out.extend(import_chunk(&mut tx, chunk, status, unsuppress, now).await?);
            progress.add(chunk.len() as u64);
        }
        tx.commit().await.doing("commit import")?;
        Ok(out)
    }

    /// Subscribers matching `filter`, by id, one at a time to `each`: the rows are read
    /// as a stream (constant memory at any list size), with each subscriber's digests
    /// aggregated in the same pass through `subscriptions_by_subscriber`.
    pub async fn each_subscriber(
        &self,
        filter: &SubscriberFilter,
        mut each: impl FnMut(Subscriber) -> Result<()>,
    ) -> Result<u64> {
        let mut query = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "SELECT s.id, s.email, s.name, s.status, s.created_at, s.confirmed_at, s.token_nonce,
                    s.status_reason, group_concat(x.digest, ' ' ORDER BY x.digest) AS digests
             FROM subscribers s LEFT JOIN subscriptions x ON x.subscriber_id = s.id WHERE 1",
        );
        if let Some(status) = filter.status {
            query.push(" AND s.status = ").push_bind(status.as_str());
        }
        if let Some(digest) = &filter.digest {
            query
                .push(" AND EXISTS (SELECT 1 FROM subscriptions y WHERE y.subscriber_id = s.id AND y.digest = ")
                .push_bind(digest.as_str())
                .push(")");
        }
        query.push(" GROUP BY s.id ORDER BY s.id");
        if let Some(limit) = filter.limit {
            query
                .push(" LIMIT ")
                .push_bind(i64::try_from(limit).unwrap_or(i64::MAX));
        }
        let mut rows = query.build().fetch(&self.pool);
        let mut n = 0;
        while let Some(row) = rows.try_next().await.doing("list subscribers")? {
            each(subscriber_from_row(&row)?)?;
            n += 1;
        }
        Ok(n)
    }

    /// All subscribers, by id, in memory (small lists and tests; the CLI streams).
    pub async fn subscribers(&self) -> Result<Vec<Subscriber>> {
        let mut all = Vec::new();
        self.each_subscriber(&SubscriberFilter::default(), |s| {
            all.push(s);
            Ok(())
        })
        .await?;
        Ok(all)
    }

    pub async fn subscriber_by_email(&self, email: &SubscriberEmail) -> Result<Option<Subscriber>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SUBSCRIBER_COLUMNS} FROM subscribers s WHERE s.email = ?1 COLLATE NOCASE"
        )))
        .bind(email.as_str())
        .fetch_optional(&self.pool)
        .await
        .doing("find subscriber")?;
        row.as_ref().map(subscriber_from_row).transpose()
    }

    pub async fn subscriber(&self, id: SubscriberId) -> Result<Option<Subscriber>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SUBSCRIBER_COLUMNS} FROM subscribers s WHERE s.id = ?1"
        )))
        .bind(id.0)
        .fetch_optional(&self.pool)
        .await
        .doing("read subscriber")?;
        row.as_ref().map(subscriber_from_row).transpose()
    }

    /// Deletes a subscriber and their ledger rows; `false` when the address is unknown.
    pub async fn remove_subscriber(&self, email: &SubscriberEmail) -> Result<bool> {
        let done = sqlx::query("DELETE FROM subscribers WHERE email = ?1 COLLATE NOCASE")
            .bind(email.as_str())
            .execute(&self.pool)
            .await
            .doing("remove subscriber")?;
        Ok(done.rows_affected() > 0)
    }

    /// Sets a subscriber's status (confirm, unsubscribe); `false` when nothing changed.
    pub async fn set_subscriber_status(
        &self,
        id: SubscriberId,
        status: SubscriberStatus,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let column = match status {
            SubscriberStatus::Confirmed => "confirmed_at",
            SubscriberStatus::Unsubscribed => "unsubscribed_at",
            SubscriberStatus::Bounced => "bounced_at",
            SubscriberStatus::Complained => "complained_at",
            SubscriberStatus::Pending => "created_at",
        };
        // Unsubscribing a bounced or complained address leaves it suppressed: `unsubscribed`
        // is the one status a sign-up may leave again.
        let keep_suppressed = if status == SubscriberStatus::Unsubscribed {
            " AND status NOT IN ('bounced', 'complained')"
        } else {
            ""
        };
        let done = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE subscribers SET status = ?2, {column} = ?3, hard_failures = 0 WHERE id = ?1 AND status <> ?2{keep_suppressed}"
        )))
        .bind(id.0)
        .bind(status.as_str())
        .bind(ts(now))
        .execute(&self.pool)
        .await
        .doing("set subscriber status")?;
        if matches!(
            status,
            SubscriberStatus::Unsubscribed
                | SubscriberStatus::Bounced
                | SubscriberStatus::Complained
        ) {
            self.void_confirmations(id, now).await?;
        }
        Ok(done.rows_affected() > 0)
    }

    /// Subscribers by status, from the tallies the store keeps (never a count of the
    /// table: `/metrics` reads this on every scrape).
    pub async fn subscriber_counts(&self) -> Result<Vec<(String, u64)>> {
        self.tallies("subscribers").await
    }

    /// How many confirmed subscribers a digest has.
    pub async fn count_recipients(&self, digest: &str) -> Result<u64> {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM subscriptions x JOIN subscribers s ON s.id = x.subscriber_id
             WHERE x.digest = ?1 AND s.status = 'confirmed'",
        )
        .bind(digest)
        .fetch_one(&self.pool)
        .await
        .doing("count recipients")?;
        Ok(n.try_into().unwrap_or(0))
    }

    /// A value herald generated and keeps, if there is one.
    pub async fn setting(&self, key: &str) -> Result<Option<String>> {
        sqlx::query_scalar::<_, String>("SELECT value FROM settings WHERE key = ?1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .doing("read setting")
    }

    /// A value herald generated and keeps, creating it with `make` the first time.
    pub async fn setting_or_insert(
        &self,
        key: &str,
        make: impl FnOnce() -> String,
    ) -> Result<String> {
        if let Some(v) =
            sqlx::query_scalar::<_, String>("SELECT value FROM settings WHERE key = ?1")
                .bind(key)
                .fetch_optional(&self.pool)
                .await
                .doing("read setting")?
        {
            return Ok(v);
        }
        sqlx::query(
            "INSERT INTO settings (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO NOTHING",
        )
        .bind(key)
        .bind(make())
        .execute(&self.pool)
        .await
        .doing("write setting")?;
        // Whoever won a race, this is the value now.
        sqlx::query_scalar("SELECT value FROM settings WHERE key = ?1")
            .bind(key)
            .fetch_one(&self.pool)
            .await
            .doing("read setting")
    }
}

/// SQL for a fresh random token nonce (SQLite's CSPRNG, 16 bytes as hex).
pub(crate) const NEW_NONCE: &str = "lower(hex(randomblob(16)))";

/// Rows per statement when importing (up to 5 values each).
const IMPORT_BATCH: usize = 300;

/// Imports one chunk: addresses already known (or repeated in the chunk) go through
/// [`add_in`] one by one; new ones are inserted, with their subscriptions, a few hundred
/// per statement. An import of 100,000 rows is then a matter of seconds.
async fn import_chunk(
    tx: &mut sqlx::SqliteConnection,
    rows: &[ImportRow],
    status: SubscriberStatus,
    unsuppress: bool,
    now: DateTime<Utc>,
) -> Result<Vec<AddOutcome>> {
    let mut query = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
        "SELECT lower(email) FROM subscribers WHERE email COLLATE NOCASE IN (",
    );
    let mut list = query.separated(", ");
    for (email, ..) in rows {
        list.push_bind(email.as_str());
    }
    query.push(")");
    let known: HashSet<String> = query
        .build_query_scalar::<String>()
        .fetch_all(&mut *tx)
        .await
        .doing("find known subscribers")?
        .into_iter()
        .collect();

    let mut fresh: Vec<(usize, &ImportRow)> = Vec::new();
    let mut in_chunk: HashSet<String> = HashSet::new();
    for (i, row) in rows.iter().enumerate() {
        let key = row.0.as_str().to_lowercase();
        if !known.contains(&key) && in_chunk.insert(key) {
            fresh.push((i, row));
        }
    }
    let mut out: Vec<Option<AddOutcome>> = vec![None; rows.len()];
    if !fresh.is_empty() {
        let mut insert = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "INSERT INTO subscribers (email, name, status, created_at, confirmed_at, token_nonce) ",
        );
        insert.push_values(&fresh, |mut row, (_, (email, name, _, own))| {
            let status = own.unwrap_or(status);
            let confirmed_at = (status == SubscriberStatus::Confirmed).then(|| ts(now));
            row.push_bind(email.as_str())
                .push_bind(name.as_deref().map(str::trim).filter(|n| !n.is_empty()))
                .push_bind(status.as_str())
                .push_bind(ts(now))
                .push_bind(confirmed_at)
                .push(NEW_NONCE);
        });
        insert.push(" RETURNING id, lower(email)");
        let ids: HashMap<String, i64> = insert
            .build_query_as::<(i64, String)>()
            .fetch_all(&mut *tx)
            .await
            .doing("insert subscribers")?
            .into_iter()
            .map(|(id, email)| (email, id))
            .collect();
        let mut subscriptions: Vec<(i64, &str)> = Vec::new();
        for (i, (email, _, digests, _)) in &fresh {
            let Some(id) = ids.get(&email.as_str().to_lowercase()) else {
                continue;
            };
            out[*i] = Some(AddOutcome::Added(SubscriberId(*id)));
            subscriptions.extend(digests.iter().map(|d| (*id, d.as_str())));
        }
        for part in subscriptions.chunks(IMPORT_BATCH) {
            let mut insert = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                "INSERT INTO subscriptions (subscriber_id, digest) ",
            );
            insert.push_values(part, |mut row, (id, digest)| {
                row.push_bind(*id).push_bind(*digest);
            });
            insert.push(" ON CONFLICT DO NOTHING");
            insert
                .build()
                .execute(&mut *tx)
                .await
                .doing("subscribe to digests")?;
        }
    }
    let mut outcomes = Vec::with_capacity(rows.len());
    for (i, done) in out.into_iter().enumerate() {
        let outcome = match done {
            Some(outcome) => outcome,
            // Known, repeated in the chunk, or (never expected) not returned by the insert.
            None => {
                let (email, name, digests, own) = &rows[i];
                add_in(
                    tx,
                    email,
                    name.as_deref(),
                    digests,
                    own.unwrap_or(status),
                    unsuppress,
                    now,
                )
                .await?
            }
        };
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

async fn add_in(
    tx: &mut sqlx::SqliteConnection,
    email: &SubscriberEmail,
    name: Option<&str>,
    digests: &[String],
    status: SubscriberStatus,
    unsuppress: bool,
    now: DateTime<Utc>,
) -> Result<AddOutcome> {
    let existing: Option<(i64, String, Option<String>)> =
        sqlx::query_as("SELECT id, status, name FROM subscribers WHERE email = ?1 COLLATE NOCASE")
            .bind(email.as_str())
            .fetch_optional(&mut *tx)
            .await
            .doing("find subscriber")?;
    let name = name.map(str::trim).filter(|n| !n.is_empty());
    let (id, mut changed, outcome_new) = match existing {
        None => {
            let confirmed_at = (status == SubscriberStatus::Confirmed).then(|| ts(now));
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO subscribers (email, name, status, created_at, confirmed_at, token_nonce)
                 VALUES (?1, ?2, ?3, ?4, ?5, lower(hex(randomblob(16)))) RETURNING id",
            )
            .bind(email.as_str())
            .bind(name)
            .bind(status.as_str())
            .bind(ts(now))
            .bind(confirmed_at)
            .fetch_one(&mut *tx)
            .await
            .doing("insert subscriber")?;
            (id, true, true)
        }
        Some((id, old_status, old_name)) => {
            let mut changed = false;
            if SubscriberStatus::parse(&old_status).is_some_and(SubscriberStatus::is_suppressed) {
                if !unsuppress || status.is_suppressed() {
                    return Ok(AddOutcome::Suppressed(SubscriberId(id)));
                }
                // The operator's explicit word: the address gets mail again, with a clean
                // slate of bounces.
                sqlx::query(
                    "UPDATE subscribers SET status = ?2, status_reason = NULL, soft_bounces = 0,
                         last_soft_delivery = NULL, hard_failures = 0,
                         confirmed_at = CASE WHEN ?2 = 'confirmed' THEN ?3 ELSE confirmed_at END
                     WHERE id = ?1",
                )
                .bind(id)
                .bind(status.as_str())
                .bind(ts(now))
                .execute(&mut *tx)
                .await
                .doing("unsuppress subscriber")?;
                changed = true;
            }
            if old_status == SubscriberStatus::Pending.as_str()
                && status == SubscriberStatus::Confirmed
            {
                sqlx::query(
                    "UPDATE subscribers SET status = 'confirmed', confirmed_at = ?2 WHERE id = ?1",
                )
                .bind(id)
                .bind(ts(now))
                .execute(&mut *tx)
                .await
                .doing("confirm subscriber")?;
                changed = true;
            }
            if let Some(name) = name
                && old_name.as_deref() != Some(name)
            {
                sqlx::query("UPDATE subscribers SET name = ?2 WHERE id = ?1")
                    .bind(id)
                    .bind(name)
                    .execute(&mut *tx)
                    .await
                    .doing("rename subscriber")?;
                changed = true;
            }
            (id, changed, false)
        }
    };
    for digest in digests {
        let added = sqlx::query("INSERT INTO subscriptions (subscriber_id, digest) VALUES (?1, ?2) ON CONFLICT DO NOTHING")
            .bind(id)
            .bind(digest)
            .execute(&mut *tx)
            .await
            .doing("subscribe to digest")?;
        changed |= added.rows_affected() > 0;
    }
    let id = SubscriberId(id);
    Ok(match (outcome_new, changed) {
        (true, _) => AddOutcome::Added(id),
        (false, true) => AddOutcome::Updated(id),
        (false, false) => AddOutcome::Unchanged(id),
    })
}

fn subscriber_from_row(r: &SqliteRow) -> Result<Subscriber> {
    let email: String = r.get("email");
    let status: String = r.get("status");
    Ok(Subscriber {
        id: SubscriberId(r.get("id")),
        // As stored: a row that fails today's rules is listed, and fails only its own
        // delivery.
        email: SubscriberEmail::from_stored(email),
        name: r.get("name"),
        token_nonce: r.get("token_nonce"),
        status_reason: r.get("status_reason"),
        status: SubscriberStatus::parse(&status).ok_or(Error::Corrupt {
            what: "subscribers.status",
            value: status,
        })?,
        digests: r
            .get::<Option<String>, _>("digests")
            .map(|d| d.split(' ').map(str::to_owned).collect())
            .unwrap_or_default(),
        created_at: parse_ts("subscribers.created_at", &r.get::<String, _>("created_at"))?,
        confirmed_at: parse_opt_ts("subscribers.confirmed_at", r.get("confirmed_at"))?,
    })
}
