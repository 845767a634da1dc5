//! One round of the daemon: everything whose time has come, decided against the store.

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tracing::{error, info, warn};

use super::{DigestRun, DigestWhen, EnrichReport, EnrichScope, Herald, PollReport};
use crate::schedule;

/// What a tick did.
#[derive(Debug, Default)]
pub struct TickReport {
    pub poll: PollReport,
    pub enriched: Option<EnrichReport>,
    /// Whether any outgoing feed file changed.
    pub feeds_changed: bool,
    /// Digests sent because their instant came, and issues resumed.
    pub digests: Vec<DigestRun>,
    /// Problems (the tick went on past each).
    pub errors: Vec<TickError>,
}

/// One problem of a tick, by the part that had it.
#[derive(Debug, thiserror::Error)]
pub enum TickError {
    #[error("poll: {0}")]
    Poll(super::Error),
    #[error("enrich: {0}")]
    Enrich(super::Error),
    #[error("feeds: {0}")]
    Feeds(super::FeedError),
    #[error("outbox: {0}")]
    Outbox(super::SubscriptionError),
    #[error("digest: resuming deliveries: {0}")]
    Resume(super::DigestError),
    #[error("digest \"{digest}\": {source}")]
    Digest {
        digest: String,
        source: super::DigestError,
    },
    #[error("digest schedules: {0}")]
    Schedules(crate::store::Error),
}

impl TickError {
    /// Whether mail is late or may not go out (an operator must act: ERROR), rather than
    /// a feed being stale (recovered by a later round: WARN).
    pub fn delays_mail(&self) -> bool {
        !matches!(
            self,
            TickError::Poll(_) | TickError::Enrich(_) | TickError::Feeds(_)
        )
    }

    fn log(&self) {
        if self.delays_mail() {
            error!("{self}");
        } else {
            warn!("{self}");
        }
    }
}

impl Herald {
    /// The digests due now, with the instant each is due for: the latest scheduled
    /// instant, unless the store already has an issue at or after it. A digest herald has
    /// never sent starts with the first instant after herald first saw it, so a new
    /// install does not send a stale period at once.
    pub async fn due_digests(&self) -> Result<Vec<(String, DateTime<Utc>)>, crate::store::Error> {
        let now = self.clock.now();
        let mut due = Vec::new();
        for digest in &self.config.digests {
            let last = match self.store.latest_issue(&digest.name).await? {
                Some(issue) => Some(issue.due_at),
                None => {
                    let since = self
                        .store
                        .setting_or_insert(&format!("digest_since:{}", digest.name), || {
                            crate::store::ts(now)
                        })
                        .await?;
                    DateTime::parse_from_rfc3339(&since)
                        .ok()
                        .map(|t| t.with_timezone(&Utc))
                }
            };
            if let Some(at) = schedule::due_now(&digest.schedule, digest.timezone, now, last) {
                due.push((digest.name.clone(), at));
            }
        }
        Ok(due)
    }

    /// One round of everything (what `herald run` and the tests do): [`Self::poll_tick`]
    /// then [`Self::send_tick`]. The daemon runs the two as separate tasks, so that no
    /// source can delay a send and no send can delay a poll.
    pub async fn tick(&self, shutdown: watch::Receiver<bool>) -> TickReport {
        let mut report = self.poll_tick().await;
        let sent = self.send_tick(shutdown).await;
        report.digests = sent.digests;
        report.errors.extend(sent.errors);
        report
    }

    /// Polls the sources that are due; enriches and rewrites the feeds when something
    /// changed (and on the first round, so that a fresh start has feeds to serve).
    #[tracing::instrument(skip_all)]
    pub async fn poll_tick(&self) -> TickReport {
        let mut report = TickReport::default();
        match self.poll_due_sources().await {
            Ok(poll) => report.poll = poll,
            Err(e) => report.errors.push(TickError::Poll(e)),
        }
        let first = !self
            .feeds_written
            .swap(true, std::sync::atomic::Ordering::Relaxed);
        if report.poll.changed() || first {
            match self.enrich(EnrichScope::Stale).await {
                Ok(enriched) => report.enriched = Some(enriched),
                Err(e) => report.errors.push(TickError::Enrich(e)),
            }
            match self.write_feeds(None).await {
                Ok(files) => report.feeds_changed = files.iter().any(|f| f.changed),
                Err(e) => report.errors.push(TickError::Feeds(e)),
            }
        }
        for problem in &report.errors {
            problem.log();
        }
        report
    }

    /// Sends the outbox (confirmations), resumes issues with deliveries due (deferred
    /// retries, interrupted sends) and sends each digest whose instant has come. One
    /// failing part never stops the rest.
    #[tracing::instrument(skip_all)]
    pub async fn send_tick(&self, shutdown: watch::Receiver<bool>) -> TickReport {
        let mut report = TickReport::default();
        if let Err(e) = self.send_outbox().await {
            report.errors.push(TickError::Outbox(e));
        }
        if !*shutdown.borrow() {
            match self.resume_sending(shutdown.clone()).await {
                Ok(runs) => report.digests.extend(runs.into_iter().filter(|r| {
                    r.report
                        .as_ref()
                        .is_some_and(|s| s.sent + s.deferred + s.failed > 0)
                })),
                Err(e) => report.errors.push(TickError::Resume(e)),
            }
        }
        match self.due_digests().await {
            Ok(due) => {
                for (name, at) in due {
                    if *shutdown.borrow() {
                        break;
                    }
                    info!(digest = %name, due_at = %at, "digest due");
                    match self
                        .send_digest(&name, DigestWhen::At(at), shutdown.clone())
                        .await
                    {
                        Ok(run) => report.digests.push(run),
                        Err(e) => report.errors.push(TickError::Digest {
                            digest: name.clone(),
                            source: e,
                        }),
                    }
                }
            }
            Err(e) => report.errors.push(TickError::Schedules(e)),
        }
        for problem in &report.errors {
            problem.log();
        }
        report
    }
}
