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
        if posts.len() < 64 {
            return posts.iter().map(|p| self.enrich_post(p)).collect();
        }
        map_on_all_cores(posts, || (), |(), post| self.enrich_post(post))
    }
}

/// Threads for work spread over the cores.
pub(crate) fn worker_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8)
}

/// `work` applied to every item on all cores, the results in item order. Items are handed
/// out in small batches as threads come free, so a core the machine slows down (a busy
/// neighbour on a shared host) does not hold the others back; `state` makes each
/// thread's scratch space. A panic in a worker is raised again here.
pub(crate) fn map_on_all_cores<T: Sync, S, R: Send>(
    items: &[T],
    state: impl Fn() -> S + Sync,
    work: impl Fn(&mut S, &T) -> R + Sync,
) -> Vec<R> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let threads = worker_threads().min(items.len());
    if threads <= 1 {
        let mut state = state();
        return items.iter().map(|item| work(&mut state, item)).collect();
    }
    let batch = (items.len() / (threads * 16)).clamp(1, 64);
    let next = AtomicUsize::new(0);
    let (state, work, next) = (&state, &work, &next);
    let mut done: Vec<(usize, Vec<R>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(move || {
                    let mut state = state();
                    let mut done = Vec::new();
                    loop {
                        let start = next.fetch_add(batch, Ordering::Relaxed);
                        if start >= items.len() {
                            return done;
                        }
                        let part = &items[start..items.len().min(start + batch)];
                        done.push((
                            start,
                            part.iter().map(|item| work(&mut state, item)).collect(),
                        ));
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    done.sort_unstable_by_key(|(start, _)| *start);
    done.into_iter().flat_map(|(_, results)| results).collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_on_all_cores_comes_back_in_item_order() {
        for n in [0, 1, 2, 63, 64, 1_000, 10_007] {
            let items: Vec<usize> = (0..n).collect();
            let out = map_on_all_cores(&items, Vec::<usize>::new, |seen, item| {
                seen.push(*item);
                item * 3
            });
            assert_eq!(out, items.iter().map(|i| i * 3).collect::<Vec<_>>(), "{n}");
        }
    }

    #[test]
    fn a_panic_in_a_worker_reaches_the_caller() {
        let items: Vec<usize> = (0..500).collect();
        let caught = std::panic::catch_unwind(|| {
            map_on_all_cores(
                &items,
                || (),
                |(), item| {
                    assert!(*item != 321, "item 321");
                    *item
                },
            )
        });
        assert!(caught.is_err());
    }
}
