//! The one place stages are chained: fetch → parse → normalize → store, per source, for
//! all sources concurrently within a bound.
//!
//! [`Herald`] holds what every run needs (config, store, clock, HTTP client, sanitizers).
//! One failing source never stops the others: its error is recorded on its row, logged
//! with its name, and reported; the others go on. Later stages (enrich, feeds, digests)
//! hang off the same struct.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tracing::{info, warn};
use url::Url;

mod bounces;
mod daemon;
mod digest;
mod feeds;
mod preview;
mod site;
mod subscription;

pub use bounces::Handled;
pub use daemon::{TickError, TickReport};

pub use digest::{DigestError, DigestRun, DigestWhen};
pub use feeds::{FeedError, FeedFile};
pub use preview::Preview;
pub use subscription::{OutboxReport, SignUp, SubscriptionError};

use crate::clock::SharedClock;
use crate::config::Secrets;
use crate::config::{Config, SourceConfig};
use crate::deliver::Transport;
use crate::domain::SourceId;
use crate::enrich::related::RelatedIndex;
use crate::enrich::{Enricher, doc_for};
use crate::ingest::{self, Fetched, Fetcher, Normalizer};
use crate::store::{PollRecord, Store, UpsertOutcome};

/// Longest herald waits between polls of a source, whatever it asks for.
const MAX_POLL_DELAY: Duration = Duration::from_secs(24 * 60 * 60);

/// Everything a run needs, opened once.
#[derive(Clone)]
pub struct Herald {
    pub config: Arc<Config>,
    pub store: Store,
    pub clock: SharedClock,
    fetcher: Fetcher,
    normalizer: Arc<Normalizer>,
    enricher: Arc<Enricher>,
    secrets: Secrets,
    transport: Transport,
    /// Signs every message, when `[smtp.dkim]` is set.
    dkim: Option<Arc<crate::deliver::dkim::DkimSigner>>,
    /// Counters for `/metrics`.
    pub metrics: Arc<crate::telemetry::Metrics>,
    /// How far long work is (drawn by the command line).
    pub progress: Arc<crate::telemetry::Progress>,
    /// Whether this process has written the feeds yet.
    feeds_written: Arc<std::sync::atomic::AtomicBool>,
    /// The related-posts index, loaded on first use and then kept up to date.
    related: Arc<tokio::sync::Mutex<Option<RelatedIndex>>>,
    /// One pass over the outbox at a time in this process (claims guard the rest).
    outbox_lock: Arc<tokio::sync::Mutex<()>>,
    /// The templates, compiled once; replaced by [`Herald::reload_templates`].
    templates: Arc<std::sync::RwLock<Arc<crate::render::TemplateSet>>>,
}

/// Which posts to enrich.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnrichScope {
    /// Posts never enriched or changed since (what a poll just stored).
    Stale,
    /// Every post: all summaries again and the related index rebuilt from scratch.
    Rebuild,
}

/// What an enrichment run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct EnrichReport {
    pub summarized: usize,
    pub related_lists: usize,
    /// Whether every related list was recomputed.
    pub rebuilt: bool,
}

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    #[error("cannot build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    #[error("no source named \"{name}\" (sources: {known})")]
    UnknownSource { name: String, known: String },
    #[error("a worker thread crashed: {0}")]
    Panicked(String),
    #[error(transparent)]
    Deliver(#[from] crate::deliver::Error),
    #[error(transparent)]
    Secret(#[from] crate::config::WeakSecret),
    #[error(transparent)]
    Templates(#[from] crate::render::Error),
}

/// What happened to one source in a poll.
#[derive(Debug)]
pub enum PollOutcome {
    /// 304, or an unchanged file.
    NotModified,
    /// The feed was read; `entries` is how many it held.
    Stored {
        entries: usize,
        changes: UpsertOutcome,
        notes: ReadNotes,
    },
    Failed {
        error: String,
        retryable: bool,
    },
}

/// How a source's document was read, when that is worth telling the operator.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadNotes {
    /// The encoding it was decoded from, when it was not UTF-8.
    pub encoding: Option<&'static str>,
    /// Some bytes were not valid in that encoding and were replaced.
    pub replaced: bool,
    /// The document was malformed and its entries were recovered: the first parse error.
    pub recovered: Option<String>,
    /// Entries of the document that yielded no post (cut off, or nothing in them).
    pub unreadable: usize,
}

/// One source's result.
#[derive(Debug)]
pub struct SourcePoll {
    pub name: String,
    pub outcome: PollOutcome,
}

/// The result of polling several sources.
#[derive(Debug, Default)]
pub struct PollReport {
    pub sources: Vec<SourcePoll>,
}

impl PollReport {
    pub fn failed(&self) -> usize {
        self.sources
            .iter()
            .filter(|s| matches!(s.outcome, PollOutcome::Failed { .. }))
            .count()
    }

    pub fn new_posts(&self) -> usize {
        self.sources
            .iter()
            .map(|s| match &s.outcome {
                PollOutcome::Stored { changes, .. } => changes.new.len(),
                _ => 0,
            })
            .sum()
    }

    /// Whether any post was added or edited.
    pub fn changed(&self) -> bool {
        self.sources
            .iter()
            .any(|s| matches!(&s.outcome, PollOutcome::Stored { changes, .. } if changes.changed()))
    }
}

impl Herald {
    /// Opens the store, runs migrations, and registers the configured sources. Secrets
    /// come from the environment.
    pub async fn open(config: Config, clock: SharedClock) -> Result<Self, Error> {
        Self::open_with(config, clock, Secrets::from_env()).await
    }

    /// [`Herald::open`] with the secrets given.
    pub async fn open_with(
        config: Config,
        clock: SharedClock,
        secrets: Secrets,
    ) -> Result<Self, Error> {
        for warning in secrets.check()? {
            warn!("{warning}");
        }
        let store = Store::open(&config.store.url).await?;
        store.sync_sources(&config.sources, clock.now()).await?;
        repair_wrong_bounces(&store).await?;
        let fetcher = Fetcher::new(config.ingest.max_redirects)?;
        let enricher = Arc::new(Enricher::new(&config.enrich));
        let transport = Transport::from_config(&config.smtp, &secrets)?;
        let dkim = match &config.smtp.dkim {
            Some(dkim) => Some(Arc::new(
                crate::deliver::dkim::DkimSigner::load(dkim, secrets.dkim_key.as_deref())
                    .map_err(crate::deliver::Error::Dkim)?,
            )),
            None => None,
        };
        let templates = load_templates(&config)?;
        Ok(Self {
            dkim,
            templates: Arc::new(std::sync::RwLock::new(Arc::new(templates))),
            secrets,
            transport,
            metrics: Arc::default(),
            progress: Arc::default(),
            feeds_written: Arc::default(),
            config: Arc::new(config),
            store,
            clock,
            fetcher,
            normalizer: Arc::new(Normalizer::new()),
            enricher,
            related: Arc::new(tokio::sync::Mutex::new(None)),
            outbox_lock: Arc::default(),
        })
    }

    /// The templates as loaded now (an issue that started sending keeps the set it
    /// started with).
    pub fn templates(&self) -> Arc<crate::render::TemplateSet> {
        self.templates
            .read()
            .map(|t| Arc::clone(&t))
            .unwrap_or_else(|poisoned| Arc::clone(&poisoned.into_inner()))
    }

    /// Reads the templates again (SIGHUP); on an error the ones loaded before stay.
    pub fn reload_templates(&self) -> Result<(), crate::render::Error> {
        let fresh = load_templates(&self.config)?;
        if let Ok(mut templates) = self.templates.write() {
            *templates = Arc::new(fresh);
        }
        Ok(())
    }

    /// Closes the store (checkpointing the WAL) and any pooled SMTP connections.
    pub async fn close(&self) {
        self.transport.shutdown().await;
        self.store.close().await;
    }

    /// Polls every enabled source now (or only the one named), at most
    /// `ingest.concurrency` at a time.
    pub async fn poll_sources(&self, only: Option<&str>) -> Result<PollReport, Error> {
        self.poll_selected(only, false).await
    }

    /// Polls the enabled sources whose next check has come (the daemon's poll): the poll
    /// interval, stretched by the server's Cache-Control or Retry-After and by backoff
    /// after failures, decides.
    pub async fn poll_due_sources(&self) -> Result<PollReport, Error> {
        self.poll_selected(None, true).await
    }

    async fn poll_selected(&self, only: Option<&str>, only_due: bool) -> Result<PollReport, Error> {
        let ids = self
            .store
            .sync_sources(&self.config.sources, self.clock.now())
            .await?;
        let due: Option<std::collections::HashSet<String>> = if only_due {
            let now = self.clock.now();
            Some(
                self.store
                    .sources()
                    .await?
                    .into_iter()
                    .filter(|row| row.state.next_check_at.is_none_or(|at| at <= now))
                    .map(|row| row.name)
                    .collect(),
            )
        } else {
            None
        };
        let selected: Vec<&SourceConfig> = match only {
            Some(name) => {
                let source = self
                    .config
                    .sources
                    .iter()
                    .find(|s| s.name == name)
                    .ok_or_else(|| Error::UnknownSource {
                        name: name.to_owned(),
                        known: self
                            .config
                            .sources
                            .iter()
                            .map(|s| s.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                    })?;
                vec![source]
            }
            None => self
                .config
                .sources
                .iter()
                .filter(|s| s.enabled && due.as_ref().is_none_or(|due| due.contains(&s.name)))
                .collect(),
        };
        // Owned configs and boxed futures: the stream must be Send for any lifetime when
        // a round runs as its own task.
        let jobs: Vec<(SourceConfig, SourceId)> = selected
            .into_iter()
            .map(|s| (s.clone(), ids[&s.name]))
            .collect();
        self.progress.start("polling", jobs.len() as u64);
        let mut sources: Vec<SourcePoll> = futures_util::stream::iter(jobs)
            .map(
                |(source, id)| -> futures_util::future::BoxFuture<'_, SourcePoll> {
                    Box::pin(async move {
                        let outcome = self.poll_source(&source, id).await;
                        self.progress.add(1);
                        SourcePoll {
                            outcome,
                            name: source.name,
                        }
                    })
                },
            )
            .buffer_unordered(self.config.ingest.concurrency)
            .collect()
            .await;
        sources.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(PollReport { sources })
    }

    /// Writes summaries and related lists: for posts that need them, or for all.
    ///
    /// Incremental runs add the changed posts to the related index (loaded from the
    /// stored terms on first use, never re-read from the posts' text) and recompute only
    /// their lists and the lists that mention them. When most posts are new (a first run)
    /// or on `Rebuild`, every list is recomputed from a freshly built index.
    #[tracing::instrument(skip(self))]
    pub async fn enrich(&self, scope: EnrichScope) -> Result<EnrichReport, Error> {
        let posts = match scope {
            EnrichScope::Stale => self.store.posts_needing_enrichment().await?,
            EnrichScope::Rebuild => self.store.all_posts().await?,
        };
        if posts.is_empty() && scope == EnrichScope::Stale {
            return Ok(EnrichReport::default());
        }
        let enricher = Arc::clone(&self.enricher);
        let progress = Arc::clone(&self.progress);
        progress.start("summarizing", posts.len() as u64);
        let (posts, enriched) = tokio::task::spawn_blocking(move || {
            let mut enriched = Vec::with_capacity(posts.len());
            for chunk in posts.chunks(1_000) {
                enriched.extend(enricher.enrich_posts(chunk));
                progress.add(chunk.len() as u64);
            }
            (posts, enriched)
        })
        .await
        .map_err(|e| Error::Panicked(e.to_string()))?;
        self.store.save_enrichment(&enriched).await?;
        let summarized = enriched.len();

        let mut cached = self.related.lock().await;
        let total = self.store.count_posts(None).await? as usize;
        // A cached index that has replaced many posts is rebuilt: their old slots stay
        // in it and every lookup passes over them.
        let worn = cached
            .as_ref()
            .is_some_and(|index| index.dead_slots() > index.len() / 4 + 64);
        let rebuild =
            scope == EnrichScope::Rebuild || worn || cached.is_none() && posts.len() * 2 > total;
        let params = self.enricher.params();
        let changed: Vec<i64> = posts.iter().map(|p| p.id.0).collect();
        let (index, lists) = if rebuild {
            let docs = if scope == EnrichScope::Rebuild {
                posts
                    .iter()
                    .zip(enriched)
                    .map(|(post, e)| doc_for(post, e.terms))
                    .collect()
            } else {
                self.store.index_docs().await?
            };
            tokio::task::spawn_blocking(move || RelatedIndex::build_with_lists(docs, params))
                .await
                .map_err(|e| Error::Panicked(e.to_string()))?
        } else {
            let index = match cached.take() {
                Some(index) => index,
                // Built from the store, which already holds the changed posts' terms:
                // `update` replaces them with the same.
                None => {
                    let docs = self.store.index_docs().await?;
                    tokio::task::spawn_blocking(move || RelatedIndex::build(docs))
                        .await
                        .map_err(|e| Error::Panicked(e.to_string()))?
                }
            };
            let referring = self.store.posts_relating_to(&changed).await?;
            let docs: Vec<_> = posts
                .iter()
                .zip(enriched)
                .map(|(post, e)| doc_for(post, e.terms))
                .collect();
            tokio::task::spawn_blocking(move || {
                let mut index = index;
                let lists = index.update(docs, &referring, params);
                (index, lists)
            })
            .await
            .map_err(|e| Error::Panicked(e.to_string()))?
        };
        self.store.save_related(&lists, rebuild).await?;
        *cached = Some(index);
        info!(
            summarized,
            related_lists = lists.len(),
            rebuilt = rebuild,
            "enriched"
        );
        Ok(EnrichReport {
            summarized,
            related_lists: lists.len(),
            rebuilt: rebuild,
        })
    }

    /// Polls one source and records the outcome on its row; never fails the caller.
    #[tracing::instrument(skip_all, fields(source = %source.name))]
    async fn poll_source(&self, source: &SourceConfig, id: SourceId) -> PollOutcome {
        let started = std::time::Instant::now();
        self.metrics
            .polls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let outcome = self.poll_source_inner(source, id).await;
        self.metrics
            .poll_seconds
            .observe(started.elapsed().as_secs_f64());
        match &outcome {
            PollOutcome::Failed { .. } => self.metrics.fetch_error(&source.name),
            PollOutcome::Stored { changes, .. } => {
                self.metrics.posts_ingested.fetch_add(
                    changes.new.len() as u64,
                    std::sync::atomic::Ordering::Relaxed,
                );
            }
            PollOutcome::NotModified => {}
        }
        outcome
    }

    async fn poll_source_inner(&self, source: &SourceConfig, id: SourceId) -> PollOutcome {
        match self.try_poll_source(source, id).await {
            Ok(outcome) => outcome,
            Err(error) => {
                let retryable = error.is_retryable();
                let message = error.describe(source);
                let now = self.clock.now();
                let failures = self.store.consecutive_failures(id).await.unwrap_or(0) + 1;
                let next = now + failure_delay(source.poll_interval, failures, error.retry_after());
                if let Err(e) = self.store.record_failure(id, &message, now, next).await {
                    warn!(error = %e, "could not record the failure");
                }
                warn!(failures, retryable, next_check = %next, "{message}");
                PollOutcome::Failed {
                    error: message,
                    retryable,
                }
            }
        }
    }

    async fn try_poll_source(
        &self,
        source: &SourceConfig,
        id: SourceId,
    ) -> Result<PollOutcome, PollError> {
        let state = self.store.source_state(id).await?;
        let started = self.clock.now();
        let fetched = self.fetcher.fetch(source, &state, started).await?;
        let now = self.clock.now();
        match fetched {
            Fetched::NotModified { hints } => {
                let next = now + success_delay(source.poll_interval, hints.max_age);
                self.store.record_not_modified(id, now, next).await?;
                info!("not modified");
                Ok(PollOutcome::NotModified)
            }
            Fetched::Body {
                bytes,
                url,
                content_type,
                etag,
                last_modified,
                hints,
            } => {
                let next_check_at = now + success_delay(source.poll_interval, hints.max_age);
                let body = Body {
                    bytes,
                    url,
                    content_type,
                    etag,
                    last_modified,
                    next_check_at,
                };
                let (entries, changes, notes) = self.ingest_body(source, id, body, now).await?;
                info!(
                    entries,
                    new = changes.new.len(),
                    updated = changes.updated.len(),
                    encoding = notes.encoding.unwrap_or("UTF-8"),
                    "polled"
                );
                if let Some(error) = &notes.recovered {
                    warn!(
                        entries,
                        "the document is malformed ({error}); its complete entries were recovered"
                    );
                }
                Ok(PollOutcome::Stored {
                    entries,
                    changes,
                    notes,
                })
            }
        }
    }

    /// Parses, normalizes and stores a fetched feed. Normalized chunks are stored while
    /// later ones are still being sanitized (on the other cores), all in one transaction
    /// that also saves the source's new validators; a parse failure stores nothing.
    pub async fn ingest_body(
        &self,
        source: &SourceConfig,
        id: SourceId,
        body: Body,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(usize, UpsertOutcome, ReadNotes), PollError> {
        let Body {
            bytes,
            url,
            content_type,
            etag,
            last_modified,
            next_check_at,
        } = body;
        let fallback_base = url
            .as_deref()
            .and_then(|u| Url::parse(u).ok())
            .or_else(|| source.base_url.clone());
        let location = source.location.to_string();
        let normalizer = Arc::clone(&self.normalizer);
        let name = source.name.clone();
        let (chunks_tx, mut chunks) =
            tokio::sync::mpsc::channel::<(usize, Vec<crate::domain::NewPost>)>(4);
        // Parsing and sanitizing are CPU work: off the async threads.
        let work = tokio::task::spawn_blocking(move || {
            ingest::testing::crash_if_marked(&bytes);
            let parsed = ingest::read_feed(&bytes, content_type.as_deref(), url.as_deref())
                .map_err(|reason| ingest::Error::NotAFeed {
                    source_name: name.clone(),
                    location,
                    reason,
                })?;
            for dropped in &parsed.dropped {
                tracing::debug!(source = %name, "left out: {dropped}");
            }
            let recovered = parsed.recovered.is_some();
            let meta = normalizer.normalize_chunks(
                &parsed.feed,
                fallback_base.as_ref(),
                ingest::normalize::CHUNK,
                &|index, mut posts| {
                    for post in &mut posts {
                        post.recovered = recovered;
                    }
                    let _ = chunks_tx.blocking_send((index, posts));
                },
            );
            let read = parsed.feed.entries.len();
            let notes = ReadNotes {
                encoding: parsed.encoding,
                replaced: parsed.replaced,
                recovered: parsed.recovered,
                unreadable: parsed.entries_seen.saturating_sub(read),
            };
            Ok::<_, ingest::Error>((parsed.entries_seen.max(read), meta, notes))
        });
        // Store chunks in feed order as they come.
        let mut writer = None;
        let mut waiting = std::collections::BTreeMap::new();
        let mut next = 0;
        while let Some((index, posts)) = chunks.recv().await {
            waiting.insert(index, posts);
            while let Some(posts) = waiting.remove(&next) {
                if writer.is_none() {
                    writer = Some(self.store.begin_poll(id, now).await?);
                }
                if let Some(w) = writer.as_mut() {
                    w.add(&posts).await?;
                }
                next += 1;
            }
        }
        let (entries, meta, notes) = work.await.map_err(|e| {
            let message = e
                .try_into_panic()
                .ok()
                .and_then(|panic| {
                    panic
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                })
                .unwrap_or_else(|| "cancelled".into());
            PollError::Panicked(message)
        })??;
        let writer = match writer {
            Some(w) => w,
            None => self.store.begin_poll(id, now).await?,
        };
        let record = PollRecord {
            etag,
            last_modified,
            checked_at: now,
            next_check_at,
            meta,
        };
        Ok((entries, writer.finish(&record).await?, notes))
    }
}

fn load_templates(config: &Config) -> Result<crate::render::TemplateSet, crate::render::Error> {
    let digests: Vec<(&str, &str)> = config
        .digests
        .iter()
        .map(|d| (d.name.as_str(), d.template.as_str()))
        .collect();
    crate::render::TemplateSet::load(&config.templates.dir, &digests)
}

/// Once per store: subscribers bounced by replies that did not blame their address
/// (before refusals were classified by step, a relay's 552 or "500 Line too long"
/// counted against every address) are confirmed again.
async fn repair_wrong_bounces(store: &Store) -> Result<(), crate::store::Error> {
    const DONE: &str = "repaired_bounces_issue_16";
    if store.setting(DONE).await?.is_some() {
        return Ok(());
    }
    let wrong: Vec<_> = store
        .bounced_with_replies(3)
        .await?
        .into_iter()
        .filter(|(_, replies)| {
            !replies
                .iter()
                .any(|r| crate::deliver::stored_reply_blames_address(r))
        })
        .map(|(id, _)| id)
        .collect();
    let repaired = store.unbounce(&wrong).await?;
    if repaired > 0 {
        info!(
            subscribers = repaired,
            "bounces caused by the relay's refusals of the message were undone"
        );
    }
    store.setting_or_insert(DONE, || "done".into()).await?;
    Ok(())
}

/// A fetched feed body and what came with it.
#[derive(Debug)]
pub struct Body {
    pub bytes: Vec<u8>,
    /// Where it came from (after redirects), the base for relative links.
    pub url: Option<String>,
    pub content_type: Option<String>,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub next_check_at: chrono::DateTime<chrono::Utc>,
}

/// Failures inside one source's poll.
#[derive(Debug, thiserror::Error)]
pub enum PollError {
    #[error(transparent)]
    Ingest(#[from] ingest::Error),
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    #[error("parsing crashed: {0}")]
    Panicked(String),
}

impl PollError {
    /// One line for the poll report and the log: the source, where it was read from,
    /// what went wrong and what to do.
    fn describe(&self, source: &SourceConfig) -> String {
        let name = &source.name;
        let location = &source.location;
        match self {
            PollError::Ingest(e) => format!("{e}; {}", e.fix()),
            PollError::Store(e) => format!(
                "source \"{name}\": {location} was read but its posts could not be stored: {e}; herald tries again at the next poll"
            ),
            PollError::Panicked(message) => format!(
                "source \"{name}\": reading {location} crashed ({message}); the other sources are unaffected and herald tries again at the next poll; please report this with a copy of the feed"
            ),
        }
    }

    fn is_retryable(&self) -> bool {
        match self {
            PollError::Ingest(e) => e.is_retryable(),
            PollError::Store(_) | PollError::Panicked(_) => true,
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            PollError::Ingest(e) => e.retry_after(),
            _ => None,
        }
    }
}

/// When to poll again after a success: the poll interval, or longer if the server's
/// `max-age` says the feed will not change before then (capped at a day).
pub fn success_delay(interval: Duration, max_age: Option<Duration>) -> chrono::Duration {
    let wait = max_age.map_or(interval, |age| interval.max(age.min(MAX_POLL_DELAY)));
    chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::days(1))
}

/// When to poll again after `failures` failures in a row: exponential backoff from the
/// poll interval, capped at a day; a server's `Retry-After` is honoured (up to a week).
pub fn failure_delay(
    interval: Duration,
    failures: u32,
    retry_after: Option<Duration>,
) -> chrono::Duration {
    let backoff = interval
        .saturating_mul(1 << failures.saturating_sub(1).min(8))
        .min(MAX_POLL_DELAY);
    let wait = match retry_after {
        Some(asked) => backoff.max(asked.min(Duration::from_secs(7 * 24 * 60 * 60))),
        None => backoff,
    };
    chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::days(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backs_off_exponentially_up_to_a_day() {
        let m15 = Duration::from_secs(900);
        assert_eq!(failure_delay(m15, 1, None), chrono::Duration::minutes(15));
        assert_eq!(failure_delay(m15, 2, None), chrono::Duration::minutes(30));
        assert_eq!(failure_delay(m15, 3, None), chrono::Duration::minutes(60));
        assert_eq!(failure_delay(m15, 30, None), chrono::Duration::days(1));
    }

    #[test]
    fn honours_retry_after_and_max_age() {
        let m15 = Duration::from_secs(900);
        assert_eq!(
            failure_delay(m15, 1, Some(Duration::from_secs(7200))),
            chrono::Duration::hours(2)
        );
        assert_eq!(
            success_delay(m15, Some(Duration::from_secs(3600))),
            chrono::Duration::hours(1)
        );
        assert_eq!(
            success_delay(m15, Some(Duration::from_secs(60))),
            chrono::Duration::minutes(15)
        );
        assert_eq!(
            success_delay(m15, Some(Duration::from_secs(10 * 86_400))),
            chrono::Duration::days(1)
        );
    }
}
