//! Enrichment: a summary and a list of related posts for every stored post.
//!
//! In: stored [`Post`]s. Out: a [`PostSummary`], the post's weighted index
//! terms (kept in the store so the related index can be reloaded without re-reading every
//! post), and related lists from the [`RelatedIndex`](related::RelatedIndex). This module
//! computes; the pipeline decides which posts to enrich and stores the results.
//!
//! | part | file | what it does |
//! | --- | --- | --- |
//! | text | [`text`] | words, stop words, stemming, field weights |
//! | clutter | [`clutter`] | captions, share rows, publisher footers and trailers, removed |
//! | summaries | [`summary`] | the feed's summary when it is real, else extractive |
//! | related | [`related`] | TF-IDF cosine + tag overlap over an incremental inverted index |

pub mod clutter;
mod intern;
pub mod related;
pub mod summary;
pub mod text;

use crate::config::EnrichConfig;
use crate::domain::{Enriched, IndexDoc, Post, Terms};
use related::Params;
use text::Analyzer;

/// Summaries and index terms for posts, with the configured language and budgets.
#[derive(Debug)]
pub struct Enricher {
    analyzer: Analyzer,
    config: EnrichConfig,
}

impl Enricher {
    pub fn new(config: &EnrichConfig) -> Self {
        Self {
            analyzer: Analyzer::new(&config.language),
            config: config.clone(),
        }
    }

    /// How related lists are chosen.
    pub fn params(&self) -> Params {
        Params {
            count: self.config.related_count,
            min_score: self.config.min_score as f32,
            include_newer: self.config.include_newer,
            fill_with_newer: self.config.fill_with_newer,
        }
    }

    /// Summary and index terms of one post.
    pub fn enrich_post(&self, post: &Post) -> Enriched {
        // Summaries and the related index read the prose without publisher clutter; the
        // stored content stays as published.
        let prose = if post.html.trim().is_empty() {
            clutter::clean_text(&post.text)
        } else {
            clutter::clean_html(&post.html)
        };
        let (summary, terms) = summary::summarize_and_index(
            &self.analyzer,
            &post.title,
            &post.tags,
            &prose,
            post.feed_summary.as_deref(),
            self.config.summary_words,
        );
        Enriched {
            id: post.id,
            summary,
            terms,
        }
    }

    /// Enriches many posts on all cores.
    pub fn enrich_posts(&self, posts: &[Post]) -> Vec<Enriched> {
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(8);
        if posts.len() < 64 || threads == 1 {
            return posts.iter().map(|p| self.enrich_post(p)).collect();
        }
        let chunk = posts.len().div_ceil(threads);
        std::thread::scope(|scope| {
            let parts: Vec<_> = posts
                .chunks(chunk)
                .map(|part| {
                    scope
                        .spawn(move || part.iter().map(|p| self.enrich_post(p)).collect::<Vec<_>>())
                })
                .collect();
            parts
                .into_iter()
                .flat_map(|p| {
                    p.join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                })
                .collect()
        })
    }
}

/// The related-index entry of a post, from its enrichment.
pub fn doc_for(post: &Post, terms: Terms) -> IndexDoc {
    IndexDoc {
        id: post.id.0,
        date: (post.display_date().timestamp_millis(), post.id.0),
        url: post.url.clone(),
        tags: post.tags.clone(),
        terms,
    }
}
