//! The `posts` table: insert what is new, update what was edited, never delete.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::sources::{PollRecord, record_success};
use super::{Context, Error, Result, Store, parse_opt_ts, parse_ts, ts};
use crate::domain::{NewPost, Post, PostId, SourceId, StableId};
use crate::markup::html_to_text;

/// What storing one poll's posts changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpsertOutcome {
    pub new: Vec<PostId>,
    pub updated: Vec<PostId>,
    pub unchanged: usize,
}

impl UpsertOutcome {
    pub fn changed(&self) -> bool {
        !self.new.is_empty() || !self.updated.is_empty()
    }
}

/// A poll being stored (see [`Store::begin_poll`]).
pub struct PollWriter {
    tx: sqlx::Transaction<'static, sqlx::Sqlite>,
    source: SourceId,
    /// Stored posts of the source by stable id: row id, content hash, recovered.
    known: HashMap<String, (i64, String, bool)>,
    seen: HashSet<String>,
    now_text: String,
    outcome: UpsertOutcome,
}

impl PollWriter {
    /// Stores the next posts of the poll (in feed order).
    pub async fn add(&mut self, posts: &[NewPost]) -> Result<()> {
        let mut fresh: Vec<(&NewPost, String)> = Vec::new();
        for post in posts {
            // A post repeated inside one feed is stored once (its first appearance).
            if !self.seen.insert(post.stable_id.as_str().to_owned()) {
                continue;
            }
            let hash = post.content_hash();
            match self.known.get(post.stable_id.as_str()) {
                // A recovered copy never overwrites a strictly parsed one.
                Some((_, _, false)) if post.recovered => self.outcome.unchanged += 1,
                Some((id, old_hash, was_recovered)) if *old_hash == hash => {
                    if *was_recovered && !post.recovered {
                        sqlx::query("UPDATE posts SET recovered = 0 WHERE id = ?1")
                            .bind(id)
                            .execute(&mut *self.tx)
                            .await
                            .doing("mark a post read strictly")?;
                    }
                    self.outcome.unchanged += 1;
                }
                Some((id, _, _)) => {
                    let tags = serde_json::to_string(&post.tags).unwrap_or_else(|_| "[]".into());
                    sqlx::query(
                        "UPDATE posts SET url = ?2, title = ?3, author = ?4, tags = ?5, published_at = ?6,
                             updated_at = ?7, html = ?8, image = ?9, feed_summary = ?10, content_hash = ?11,
                             recovered = ?12
                         WHERE id = ?1",
                    )
                    .bind(id)
                    .bind(&post.url)
                    .bind(&post.title)
                    .bind(&post.author)
                    .bind(&tags)
                    .bind(post.published_at.map(ts))
                    .bind(&self.now_text)
                    .bind(&post.html)
                    .bind(&post.image)
                    .bind(&post.feed_summary)
                    .bind(&hash)
                    .bind(post.recovered)
                    .execute(&mut *self.tx)
                    .await
                    .doing("update edited post")?;
                    self.outcome.updated.push(PostId(*id));
                }
                None => fresh.push((post, hash)),
            }
        }
        // New posts go in many rows per statement: one round trip per statement is most of
        // the cost of an insert.
        let mut ids_by_stable: HashMap<String, i64> = HashMap::with_capacity(fresh.len());
        for chunk in fresh.chunks(INSERT_BATCH) {
            let mut insert = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                "INSERT INTO posts (source_id, stable_id, url, title, author, tags, published_at,
                     first_seen_at, updated_at, html, image, feed_summary, content_hash, recovered) ",
            );
            insert.push_values(chunk, |mut row, (post, hash)| {
                row.push_bind(self.source.0)
                    .push_bind(post.stable_id.as_str())
                    .push_bind(post.url.as_deref())
                    .push_bind(post.title.as_str())
                    .push_bind(post.author.as_deref())
                    .push_bind(serde_json::to_string(&post.tags).unwrap_or_else(|_| "[]".into()))
                    .push_bind(post.published_at.map(ts))
                    .push_bind(self.now_text.as_str())
                    .push_bind(self.now_text.as_str())
                    .push_bind(post.html.as_str())
                    .push_bind(post.image.as_deref())
                    .push_bind(post.feed_summary.as_deref())
                    .push_bind(hash.as_str())
                    .push_bind(post.recovered);
            });
            insert.push(" RETURNING id, stable_id");
            for row in insert
                .build()
                .fetch_all(&mut *self.tx)
                .await
                .doing("insert new posts")?
            {
                ids_by_stable.insert(row.get("stable_id"), row.get("id"));
            }
        }
        // Report ids in feed order.
        self.outcome.new.extend(fresh.iter().filter_map(|(p, _)| {
            ids_by_stable
                .get(p.stable_id.as_str())
                .map(|id| PostId(*id))
        }));
        Ok(())
    }

    /// Records the source's new state and commits.
    pub async fn finish(mut self, record: &PollRecord) -> Result<UpsertOutcome> {
        record_success(&mut self.tx, self.source, record).await?;
        self.tx.commit().await.doing("commit poll")?;
        Ok(self.outcome)
    }
}

/// Which posts to list.
#[derive(Debug, Clone, Default)]
pub struct PostFilter {
    pub source: Option<String>,
    pub limit: Option<usize>,
}

/// New posts per INSERT statement (14 values each, well under SQLite's 32,766 limit).
const INSERT_BATCH: usize = 64;

pub(super) const POST_COLUMNS: &str =
    "p.id, s.name AS source, p.stable_id, p.url, p.title, p.author, p.tags, p.published_at,
     p.first_seen_at, p.updated_at, p.html, p.image, p.feed_summary, p.summary, p.recovered";

impl Store {
    /// Stores one successful poll in a single transaction: new posts are inserted, edited
    /// ones (same stable id, different content) updated, the rest left alone; the source's
    /// validators are saved with them so that they never outrun the stored posts.
    pub async fn store_poll(
        &self,
        source: SourceId,
        record: &PollRecord,
        posts: &[NewPost],
        now: DateTime<Utc>,
    ) -> Result<UpsertOutcome> {
        let mut writer = self.begin_poll(source, now).await?;
        writer.add(posts).await?;
        writer.finish(record).await
    }

    /// Starts storing a poll whose posts arrive in pieces (as they are normalized), all
    /// in one transaction: [`PollWriter::finish`] commits them with the source's new
    /// validators; dropping the writer instead rolls everything back.
    pub async fn begin_poll(&self, source: SourceId, now: DateTime<Utc>) -> Result<PollWriter> {
        let mut tx = self.begin_write("begin poll").await?;
        let known: HashMap<String, (i64, String, bool)> = sqlx::query(
            "SELECT id, stable_id, content_hash, recovered FROM posts WHERE source_id = ?1",
        )
        .bind(source.0)
        .fetch_all(&mut *tx)
        .await
        .doing("read known posts")?
        .into_iter()
        .map(|r| {
            let entry = (r.get("id"), r.get("content_hash"), r.get("recovered"));
            (r.get("stable_id"), entry)
        })
        .collect();
        Ok(PollWriter {
            tx,
            source,
            known,
            seen: HashSet::new(),
            now_text: ts(now),
            outcome: UpsertOutcome::default(),
        })
    }

    /// Posts, newest first (by published date, else first seen).
    pub async fn list_posts(&self, filter: &PostFilter) -> Result<Vec<Post>> {
        let limit = filter
            .limit
            .map_or(-1, |l| i64::try_from(l).unwrap_or(i64::MAX));
        // Newest first through `posts_by_date`, ending at the limit; one source's posts
        // through its own rows, then sorted.
        let source_clause = if filter.source.is_some() {
            "WHERE s.name = ?1"
        } else {
            "WHERE ?1 IS NULL"
        };
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {POST_COLUMNS} FROM posts p JOIN sources s ON s.id = p.source_id
             {source_clause}
             ORDER BY coalesce(p.published_at, p.first_seen_at) DESC, p.id DESC
             LIMIT ?2"
        )))
        .bind(&filter.source)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .doing("list posts")?;
        rows.iter().map(post_from_row).collect()
    }

    /// Posts first seen in (after, until], newest first, at most `limit`, optionally only
    /// from some sources: the content of a digest issue.
    pub async fn posts_in_window(
        &self,
        sources: &[String],
        after: Option<DateTime<Utc>>,
        until: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Post>> {
        let sources_json = serde_json::to_string(sources).unwrap_or_else(|_| "[]".into());
        // A window with a start is a range of `posts_by_first_seen`, then sorted; one
        // without (a feed, a first issue) is read newest first until the limit.
        let after_clause = if after.is_some() {
            "p.first_seen_at > ?1"
        } else {
            "?1 IS NULL"
        };
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {POST_COLUMNS} FROM posts p JOIN sources s ON s.id = p.source_id
             WHERE {after_clause} AND p.first_seen_at <= ?2
               AND (json_array_length(?3) = 0 OR s.name IN (SELECT value FROM json_each(?3)))
             ORDER BY coalesce(p.published_at, p.first_seen_at) DESC, p.id DESC
             LIMIT ?4"
        )))
        .bind(after.map(ts))
        .bind(ts(until))
        .bind(sources_json)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .doing("read posts for a digest")?;
        rows.iter().map(post_from_row).collect()
    }

    /// Posts by id, in the order given (ids no longer stored are skipped).
    pub async fn posts_by_ids(&self, ids: &[PostId]) -> Result<Vec<Post>> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(post) = self.post(*id).await? {
                out.push(post);
            }
        }
        Ok(out)
    }

    /// One post by id.
    pub async fn post(&self, id: PostId) -> Result<Option<Post>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {POST_COLUMNS} FROM posts p JOIN sources s ON s.id = p.source_id WHERE p.id = ?1"
        )))
        .bind(id.0)
        .fetch_optional(&self.pool)
        .await
        .doing("read post")?;
        row.as_ref().map(post_from_row).transpose()
    }

    /// How many posts are stored (optionally for one source).
    pub async fn count_posts(&self, source: Option<&str>) -> Result<u64> {
        if source.is_none() {
            return Ok(self.tallies("posts").await?.iter().map(|(_, n)| n).sum());
        }
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM posts p JOIN sources s ON s.id = p.source_id WHERE (?1 IS NULL OR s.name = ?1)",
        )
        .bind(source)
        .fetch_one(&self.pool)
        .await
        .doing("count posts")?;
        Ok(n.try_into().unwrap_or(0))
    }
}

pub(super) fn post_from_row(r: &SqliteRow) -> Result<Post> {
    let tags_text: String = r.get("tags");
    let tags: Vec<String> = serde_json::from_str(&tags_text).map_err(|_| Error::Corrupt {
        what: "posts.tags",
        value: tags_text.clone(),
    })?;
    let html: String = r.get("html");
    // The text is derived from the HTML rather than stored twice.
    let text = html_to_text(&html);
    Ok(Post {
        id: PostId(r.get("id")),
        source: r.get("source"),
        stable_id: StableId::from_stored(r.get("stable_id")),
        url: r.get("url"),
        title: r.get("title"),
        author: r.get("author"),
        tags,
        published_at: parse_opt_ts("posts.published_at", r.get("published_at"))?,
        first_seen_at: parse_ts("posts.first_seen_at", &r.get::<String, _>("first_seen_at"))?,
        updated_at: parse_ts("posts.updated_at", &r.get::<String, _>("updated_at"))?,
        html,
        text,
        image: r.get("image"),
        feed_summary: r.get("feed_summary"),
        summary: r.get("summary"),
        recovered: r.get("recovered"),
    })
}
