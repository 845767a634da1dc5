//! The `sources` table: one row per configured source and its polling state.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::{Context, Result, Store, parse_opt_ts, ts};
use crate::config::SourceConfig;
use crate::domain::FeedMeta;
use crate::domain::{SourceId, SourceState};

/// A source as the store knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceRow {
    pub id: SourceId,
    pub name: String,
    pub url: String,
    pub title: Option<String>,
    pub site_url: Option<String>,
    pub last_success_at: Option<DateTime<Utc>>,
    pub state: SourceState,
}

/// What a successful poll leaves behind.
#[derive(Debug, Clone)]
pub struct PollRecord {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub checked_at: DateTime<Utc>,
    pub next_check_at: DateTime<Utc>,
    pub meta: FeedMeta,
}

impl Store {
    /// Makes sure every configured source has a row; a source whose URL changed forgets
    /// its validators. Sources no longer configured keep their rows (and their posts).
    pub async fn sync_sources(
        &self,
        sources: &[SourceConfig],
        now: DateTime<Utc>,
    ) -> Result<HashMap<String, SourceId>> {
        let mut tx = self.begin_write("begin source sync").await?;
        let mut ids = HashMap::new();
        for source in sources {
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO sources (name, url, created_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (name) DO UPDATE SET
                     etag = CASE WHEN sources.url = excluded.url THEN sources.etag END,
                     last_modified = CASE WHEN sources.url = excluded.url THEN sources.last_modified END,
                     next_check_at = CASE WHEN sources.url = excluded.url THEN sources.next_check_at END,
                     url = excluded.url
                 RETURNING id",
            )
            .bind(&source.name)
            .bind(source.location.to_string())
            .bind(ts(now))
            .fetch_one(&mut *tx)
            .await
            .doing("sync source")?;
            ids.insert(source.name.clone(), SourceId(id));
        }
        tx.commit().await.doing("commit source sync")?;
        Ok(ids)
    }

    /// Every source the store knows, by name.
    pub async fn sources(&self) -> Result<Vec<SourceRow>> {
        let rows = sqlx::query(
            "SELECT id, name, url, title, site_url, etag, last_modified, last_checked_at, last_success_at,
                    next_check_at, consecutive_failures, last_error
             FROM sources ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await
        .doing("list sources")?;
        rows.into_iter()
            .map(|r| {
                Ok(SourceRow {
                    id: SourceId(r.get("id")),
                    name: r.get("name"),
                    url: r.get("url"),
                    title: r.get("title"),
                    site_url: r.get("site_url"),
                    last_success_at: parse_opt_ts(
                        "sources.last_success_at",
                        r.get("last_success_at"),
                    )?,
                    state: SourceState {
                        etag: r.get("etag"),
                        last_modified: r.get("last_modified"),
                        last_checked_at: parse_opt_ts(
                            "sources.last_checked_at",
                            r.get("last_checked_at"),
                        )?,
                        next_check_at: parse_opt_ts(
                            "sources.next_check_at",
                            r.get("next_check_at"),
                        )?,
                        consecutive_failures: r
                            .get::<i64, _>("consecutive_failures")
                            .try_into()
                            .unwrap_or(u32::MAX),
                        last_error: r.get("last_error"),
                    },
                })
            })
            .collect()
    }

    /// One source's polling state.
    pub async fn source_state(&self, id: SourceId) -> Result<SourceState> {
        let r = sqlx::query(
            "SELECT etag, last_modified, last_checked_at, next_check_at, consecutive_failures, last_error
             FROM sources WHERE id = ?1",
        )
        .bind(id.0)
        .fetch_one(&self.pool)
        .await
        .doing("read source state")?;
        Ok(SourceState {
            etag: r.get("etag"),
            last_modified: r.get("last_modified"),
            last_checked_at: parse_opt_ts("sources.last_checked_at", r.get("last_checked_at"))?,
            next_check_at: parse_opt_ts("sources.next_check_at", r.get("next_check_at"))?,
            consecutive_failures: r
                .get::<i64, _>("consecutive_failures")
                .try_into()
                .unwrap_or(u32::MAX),
            last_error: r.get("last_error"),
        })
    }

    /// Records a poll answered "not modified".
    pub async fn record_not_modified(
        &self,
        id: SourceId,
        checked_at: DateTime<Utc>,
        next_check_at: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE sources SET last_checked_at = ?2, last_success_at = ?2, next_check_at = ?3,
                 consecutive_failures = 0, last_error = NULL
             WHERE id = ?1",
        )
        .bind(id.0)
        .bind(ts(checked_at))
        .bind(ts(next_check_at))
        .execute(&self.pool)
        .await
        .doing("record not-modified poll")?;
        Ok(())
    }

    /// Records a failed poll; returns the number of failures in a row.
    pub async fn record_failure(
        &self,
        id: SourceId,
        error: &str,
        checked_at: DateTime<Utc>,
        next_check_at: DateTime<Utc>,
    ) -> Result<u32> {
        let failures: i64 = sqlx::query_scalar(
            "UPDATE sources SET last_checked_at = ?2, next_check_at = ?3,
                 consecutive_failures = consecutive_failures + 1, last_error = ?4
             WHERE id = ?1 RETURNING consecutive_failures",
        )
        .bind(id.0)
        .bind(ts(checked_at))
        .bind(ts(next_check_at))
        .bind(error)
        .fetch_one(&self.pool)
        .await
        .doing("record failed poll")?;
        Ok(failures.try_into().unwrap_or(u32::MAX))
    }

    /// Number of failures in a row so far (for the backoff of the next one).
    pub async fn consecutive_failures(&self, id: SourceId) -> Result<u32> {
        let n: i64 = sqlx::query_scalar("SELECT consecutive_failures FROM sources WHERE id = ?1")
            .bind(id.0)
            .fetch_one(&self.pool)
            .await
            .doing("read failure count")?;
        Ok(n.try_into().unwrap_or(u32::MAX))
    }
}

/// Updates the source row after a successful poll, inside the poll's transaction.
pub(super) async fn record_success(
    tx: &mut sqlx::SqliteConnection,
    id: SourceId,
    record: &PollRecord,
) -> Result<()> {
    sqlx::query(
        "UPDATE sources SET etag = ?2, last_modified = ?3, last_checked_at = ?4, last_success_at = ?4,
             next_check_at = ?5, consecutive_failures = 0, last_error = NULL,
             title = coalesce(?6, title), site_url = coalesce(?7, site_url)
         WHERE id = ?1",
    )
    .bind(id.0)
    .bind(&record.etag)
    .bind(&record.last_modified)
    .bind(ts(record.checked_at))
    .bind(ts(record.next_check_at))
    .bind(&record.meta.title)
    .bind(&record.meta.site_url)
    .execute(tx)
    .await
    .doing("record successful poll")?;
    Ok(())
}
