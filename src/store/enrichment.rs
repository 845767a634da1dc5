//! Summaries, index terms and related lists in the store.

use sqlx::Row;

use super::posts::{POST_COLUMNS, post_from_row};
use super::{Context, Result, Store, parse_ts};
use crate::domain::{Enriched, IndexDoc, Post, PostId, RelatedPost, Terms};

/// Posts per UPDATE statement when saving summaries (4 values each).
const UPDATE_BATCH: usize = 200;
/// Rows per INSERT statement for related lists (4 values each).
const RELATED_BATCH: usize = 200;

impl Store {
    /// Posts never enriched, or changed since they were.
    pub async fn posts_needing_enrichment(&self) -> Result<Vec<Post>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {POST_COLUMNS} FROM posts p JOIN sources s ON s.id = p.source_id
             WHERE p.enriched_hash IS NULL OR p.enriched_hash <> p.content_hash
             ORDER BY p.id"
        )))
        .fetch_all(&self.pool)
        .await
        .doing("list posts needing enrichment")?;
        rows.iter().map(post_from_row).collect()
    }

    /// Every post, oldest id first.
    pub async fn all_posts(&self) -> Result<Vec<Post>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {POST_COLUMNS} FROM posts p JOIN sources s ON s.id = p.source_id ORDER BY p.id"
        )))
        .fetch_all(&self.pool)
        .await
        .doing("list all posts")?;
        rows.iter().map(post_from_row).collect()
    }

    /// Stores summaries and index terms, and marks the posts enriched for their current
    /// content.
    pub async fn save_enrichment(&self, items: &[Enriched]) -> Result<()> {
        let mut tx = self.begin_write("begin saving enrichment").await?;
        for chunk in items.chunks(UPDATE_BATCH) {
            // One statement per chunk (UPDATE … FROM VALUES): a statement per post costs a
            // round trip each.
            let mut update = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                "UPDATE posts SET summary = v.column2, summary_source = v.column3, terms = v.column4,
                     enriched_hash = posts.content_hash
                 FROM (",
            );
            update.push_values(chunk, |mut row, item| {
                row.push_bind(item.id.0)
                    .push_bind(item.summary.text.as_str())
                    .push_bind(item.summary.source.as_str())
                    .push_bind(item.terms.encoded());
            });
            update.push(") AS v WHERE posts.id = v.column1");
            update
                .build()
                .execute(&mut *tx)
                .await
                .doing("save enrichment")?;
        }
        tx.commit().await.doing("commit enrichment")?;
        Ok(())
    }

    /// What the related index needs, for every enriched post: no text is re-read.
    pub async fn index_docs(&self) -> Result<Vec<IndexDoc>> {
        let rows = sqlx::query(
            "SELECT id, coalesce(published_at, first_seen_at) AS date, url, tags, terms
             FROM posts WHERE terms IS NOT NULL",
        )
        .fetch_all(&self.pool)
        .await
        .doing("load the related index")?;
        rows.iter()
            .map(|r| {
                let id: i64 = r.get("id");
                let date = parse_ts("posts.published_at", &r.get::<String, _>("date"))?;
                let tags: Vec<String> =
                    serde_json::from_str(&r.get::<String, _>("tags")).unwrap_or_default();
                Ok(IndexDoc {
                    id,
                    date: (date.timestamp_millis(), id),
                    url: r.get("url"),
                    tags,
                    terms: Terms::from_encoded(r.get("terms")),
                })
            })
            .collect()
    }

    /// Replaces the related lists of the given posts (all lists when `all` is set).
    pub async fn save_related(&self, lists: &[(i64, Vec<(i64, f32)>)], all: bool) -> Result<()> {
        let mut tx = self.begin_write("begin saving related posts").await?;
        if all {
            sqlx::query("DELETE FROM related")
                .execute(&mut *tx)
                .await
                .doing("clear related posts")?;
        } else {
            for (post, _) in lists {
                sqlx::query("DELETE FROM related WHERE post_id = ?1")
                    .bind(post)
                    .execute(&mut *tx)
                    .await
                    .doing("clear a related list")?;
            }
        }
        let rows: Vec<(i64, i64, i64, f32)> = lists
            .iter()
            .flat_map(|(post, list)| {
                list.iter()
                    .enumerate()
                    .map(move |(rank, (other, score))| (*post, rank as i64 + 1, *other, *score))
            })
            .collect();
        for chunk in rows.chunks(RELATED_BATCH) {
            let mut insert = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                "INSERT INTO related (post_id, rank, related_id, score) ",
            );
            insert.push_values(chunk, |mut row, (post, rank, other, score)| {
                row.push_bind(post)
                    .push_bind(rank)
                    .push_bind(other)
                    .push_bind(f64::from(*score));
            });
            insert
                .build()
                .execute(&mut *tx)
                .await
                .doing("save related posts")?;
        }
        tx.commit().await.doing("commit related posts")?;
        Ok(())
    }

    /// A post's related posts, best first.
    pub async fn related_posts(&self, post: PostId) -> Result<Vec<RelatedPost>> {
        let rows = sqlx::query(
            "SELECT r.related_id, p.title, p.url, r.score FROM related r JOIN posts p ON p.id = r.related_id
             WHERE r.post_id = ?1 ORDER BY r.rank",
        )
        .bind(post.0)
        .fetch_all(&self.pool)
        .await
        .doing("read related posts")?;
        Ok(rows
            .iter()
            .map(|r| RelatedPost {
                id: PostId(r.get("related_id")),
                title: r.get("title"),
                url: r.get("url"),
                score: r.get::<f64, _>("score") as f32,
            })
            .collect())
    }

    /// Posts whose related lists mention any of `ids`.
    pub async fn posts_relating_to(&self, ids: &[i64]) -> Result<Vec<i64>> {
        let mut out = Vec::new();
        for chunk in ids.chunks(500) {
            let mut query = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                "SELECT DISTINCT post_id FROM related WHERE related_id IN (",
            );
            let mut list = query.separated(", ");
            for id in chunk {
                list.push_bind(id);
            }
            query.push(")");
            out.extend(
                query
                    .build()
                    .fetch_all(&self.pool)
                    .await
                    .doing("find referring posts")?
                    .iter()
                    .map(|r| r.get::<i64, _>(0)),
            );
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    /// How a post's summary was made (`feed`, `extract`, `whole`), if it was.
    pub async fn summary_source(&self, post: PostId) -> Result<Option<String>> {
        sqlx::query_scalar("SELECT summary_source FROM posts WHERE id = ?1")
            .bind(post.0)
            .fetch_optional(&self.pool)
            .await
            .doing("read summary source")
            .map(Option::flatten)
    }
}
