//! Where everything herald knows is kept: SQLite through sqlx, WAL, foreign keys on,
//! migrations embedded in the binary and run when the store opens.
//!
//! The store is the truth about what has been seen. Stages call its methods, never SQL of
//! their own. Writes that belong together are one transaction: a poll's posts and the
//! source's new ETag are committed together, so a crash or a failure half way leaves
//! either both or neither, and nothing stored before is touched.

mod confirmations;
mod enrichment;
mod events;
mod issues;
mod posts;
mod sources;
mod subscribers;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::ConnectOptions;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

pub use confirmations::{
    CLAIM_EXPIRY, ConfirmLink, ConfirmOutcome, Confirmation, OutboxItem, SignUpRecord,
    SignUpRequest,
};
pub use events::{EventClass, EventDelivery, EventEffect, EventOutcome, MailEvent};
pub use issues::{
    ArchiveEntry, Counted, FailureEffect, IssueCreated, LedgerCounts, NewIssue, PendingDelivery,
};
pub use posts::{PollWriter, PostFilter, UpsertOutcome};
pub use sources::{PollRecord, SourceRow};
pub use subscribers::{AddOutcome, ImportRow, SubscriberFilter};

use crate::config::StoreUrl;

/// A store failure, with what was being done.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot open the store at {location}: {source}")]
    Open {
        location: String,
        source: sqlx::Error,
    },
    #[error("cannot create the folder for the store at {location}: {source}")]
    CreateDir {
        location: String,
        source: std::io::Error,
    },
    #[error("cannot migrate the store at {location}: {source}")]
    Migrate {
        location: String,
        source: sqlx::migrate::MigrateError,
    },
    #[error("store: {what}: {source}")]
    Query {
        what: &'static str,
        source: sqlx::Error,
    },
    /// What the rows were streamed to could not take them (a closed pipe, a full disk).
    #[error("cannot write the output: {0}")]
    Output(std::io::Error),
    #[error("store: {what}: malformed value {value:?} in the database")]
    Corrupt { what: &'static str, value: String },
}

pub type Result<T> = std::result::Result<T, Error>;

/// Adds what was being done to a sqlx error.
pub(crate) trait Context<T> {
    fn doing(self, what: &'static str) -> Result<T>;
}

impl<T> Context<T> for std::result::Result<T, sqlx::Error> {
    fn doing(self, what: &'static str) -> Result<T> {
        self.map_err(|source| Error::Query { what, source })
    }
}

/// The handle every stage uses; cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    pool: SqlitePool,
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("src/store/migrations");

impl Store {
    /// Opens (creating when needed) and migrates the store.
    pub async fn open(url: &StoreUrl) -> Result<Self> {
        let (options, location, max_connections) = match url {
            StoreUrl::Sqlite(path) => {
                create_parent(path)?;
                (
                    SqliteConnectOptions::new()
                        .filename(path)
                        .create_if_missing(true),
                    path.display().to_string(),
                    4,
                )
            }
            // One connection: every connection to :memory: would be a different database.
            StoreUrl::SqliteMemory => (
                SqliteConnectOptions::from_str("sqlite::memory:").map_err(|source| {
                    Error::Open {
                        location: "sqlite::memory:".into(),
                        source,
                    }
                })?,
                "sqlite::memory:".into(),
                1,
            ),
        };
        let options = options
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            // A streamed listing lasts as long as its reader and a bulk queue of a large
            // list takes seconds: slow statements are news for `HERALD_LOG=sqlx=info`,
            // not a warning on every export.
            .log_slow_statements(log::LevelFilter::Info, Duration::from_secs(1));
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections)
            .connect_with(options)
            .await
            .map_err(|source| Error::Open {
                location: location.clone(),
                source,
            })?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|source| Error::Migrate { location, source })?;
        Ok(Self { pool })
    }

    /// Starts a transaction that will write. `BEGIN IMMEDIATE` takes the write lock up
    /// front: a deferred transaction that reads first and writes later fails with
    /// SQLITE_BUSY_SNAPSHOT when another connection wrote in between, which no busy
    /// timeout can cure.
    pub(crate) async fn begin_write(
        &self,
        what: &'static str,
    ) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>> {
        self.pool.begin_with("BEGIN IMMEDIATE").await.doing(what)
    }

    /// Rows of one table by status, as the tallies keep them (statuses with rows only).
    pub(crate) async fn tallies(&self, name: &str) -> Result<Vec<(String, u64)>> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT status, n FROM tallies WHERE name = ?1 AND n > 0 ORDER BY status",
        )
        .bind(name)
        .fetch_all(&self.pool)
        .await
        .doing("read the tallies")?;
        Ok(rows
            .into_iter()
            .map(|(s, n)| (s, n.try_into().unwrap_or(0)))
            .collect())
    }

    /// The store answers (`/healthz`): one trivial query, whatever the store's size.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .doing("reach the store")?;
        Ok(())
    }

    /// Bytes the database takes (pages in use; the WAL comes on top until checkpointed).
    pub async fn size_bytes(&self) -> Result<u64> {
        let pages: i64 = sqlx::query_scalar("PRAGMA page_count")
            .fetch_one(&self.pool)
            .await
            .doing("read the page count")?;
        let size: i64 = sqlx::query_scalar("PRAGMA page_size")
            .fetch_one(&self.pool)
            .await
            .doing("read the page size")?;
        Ok(u64::try_from(pages.saturating_mul(size)).unwrap_or(0))
    }

    /// Closes every connection (checkpointing the WAL).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn create_parent(path: &Path) -> Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => {
            std::fs::create_dir_all(dir).map_err(|source| Error::CreateDir {
                location: path.display().to_string(),
                source,
            })
        }
        _ => Ok(()),
    }
}

/// A timestamp as stored: UTC, millisecond precision, fixed width so text order is time order.
pub fn ts(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

pub(crate) fn parse_ts(what: &'static str, value: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(value)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| Error::Corrupt {
            what,
            value: value.to_owned(),
        })
}

pub(crate) fn parse_opt_ts(
    what: &'static str,
    value: Option<String>,
) -> Result<Option<DateTime<Utc>>> {
    value.map(|v| parse_ts(what, &v)).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_fixed_width_and_round_trip() {
        let at = DateTime::parse_from_rfc3339("2026-03-01T08:05:09.5+01:00")
            .unwrap()
            .with_timezone(&Utc);
        let stored = ts(at);
        assert_eq!(stored, "2026-03-01T07:05:09.500Z");
        assert_eq!(parse_ts("t", &stored).unwrap(), at);
    }
}
