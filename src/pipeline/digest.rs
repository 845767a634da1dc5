//! Digests: choose a period's posts, create the issue and its ledger, render, send.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tracing::{info, warn};

use super::Herald;
use crate::config::DigestConfig;
use crate::deliver::{self, MessageContext, SendJob, SendReport, SendSettings};
use crate::domain::{Issue, IssueStatus, Post, PostId, RelatedPost, SubscriberId};
use crate::render::email::{IssueInput, render_issue};
use crate::render::{self, RenderedIssue, Templates};
use crate::schedule;
use crate::store::{IssueCreated, LedgerCounts, NewIssue};

/// Times an issue is rendered smaller and sent again after a relay refused it as too
/// big (each time aiming at three quarters of what was refused).
const SIZE_ROUNDS: usize = 8;

/// What a rendering is of: a stored issue, or the next one (dated).
#[derive(Debug, Clone, Copy)]
pub(super) enum Of<'a> {
    Issue(&'a Issue),
    Next(DateTime<Utc>),
}

/// Which period to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestWhen {
    /// The most recent scheduled instant (what `digest send NAME` does).
    Latest,
    /// A scheduled instant the daemon found due.
    At(DateTime<Utc>),
    /// Now, whatever the schedule says (`digest send NAME --force`).
    Now,
}

/// Why a digest could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum DigestError {
    #[error("no digest named \"{name}\" (digests: {known})")]
    Unknown { name: String, known: String },
    #[error(
        "digest \"{0}\": its schedule has no instant before now yet; use --force to send one now"
    )]
    NotYetDue(String),
    #[error("digest \"{digest}\": {source}")]
    Template {
        digest: String,
        source: render::Error,
    },
    #[error("digest \"{digest}\": {source}")]
    Deliver {
        digest: String,
        source: deliver::Error,
    },
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    #[error(transparent)]
    Keys(#[from] super::SubscriptionError),
    #[error("cannot write the preview to {path}: {source}")]
    Preview {
        path: String,
        source: std::io::Error,
    },
}

/// What a `send_digest` run did.
#[derive(Debug, Clone)]
pub struct DigestRun {
    pub issue: Issue,
    /// Whether this run created the issue (else it resumed or found it).
    pub created: bool,
    /// Deliveries queued when the issue was created.
    pub queued: u64,
    pub report: Option<SendReport>,
    pub counts: LedgerCounts,
    pub status: IssueStatus,
    /// Set when posts were left out of the message to keep it within the relay's size.
    pub size_note: Option<String>,
}

impl Herald {
    pub(super) fn digest_config(&self, name: &str) -> Result<&DigestConfig, DigestError> {
        self.config
            .digests
            .iter()
            .find(|d| d.name == name)
            .ok_or_else(|| DigestError::Unknown {
                name: name.to_owned(),
                known: self
                    .config
                    .digests
                    .iter()
                    .map(|d| d.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// The templates a digest uses (built-ins, overridden from the templates folder).
    pub fn templates_for(&self, digest: &DigestConfig) -> Result<Arc<Templates>, DigestError> {
        self.templates()
            .digest(&digest.name)
            .map_err(|source| DigestError::Template {
                digest: digest.name.clone(),
                source,
            })
    }

    /// Creates the issue for a period (or finds it) and sends its due deliveries.
    /// Sending twice for one period sends nothing new; an issue still sending is resumed.
    #[tracing::instrument(skip(self, shutdown), fields(digest = %name))]
    pub async fn send_digest(
        &self,
        name: &str,
        when: DigestWhen,
        shutdown: watch::Receiver<bool>,
    ) -> Result<DigestRun, DigestError> {
        let digest = self.digest_config(name)?.clone();
        let now = self.clock.now();
        let due_at = match when {
            DigestWhen::Now => now,
            DigestWhen::At(at) => at,
            DigestWhen::Latest => schedule::latest_due(&digest.schedule, digest.timezone, now)
                .ok_or_else(|| DigestError::NotYetDue(digest.name.clone()))?,
        };
        let templates = self.templates_for(&digest)?;
        let domain = self.message_domain();

        // By hand (`digest send`), an issue still sending is resumed rather than a new one
        // started: after a crash, running the same command again finishes the same issue.
        let resuming = match when {
            DigestWhen::Latest | DigestWhen::Now => {
                self.store.sending_issue_of(&digest.name).await?
            }
            DigestWhen::At(_) => None,
        };
        let existing = match resuming {
            Some(issue) => Some(issue),
            None => self.store.issue_for(&digest.name, due_at).await?,
        };
        let (issue, created, queued) = match existing {
            Some(issue) => (issue, false, 0),
            None => {
                let after = self.store.last_window_end(&digest.name).await?;
                let posts = match after {
                    Some(after) if after >= due_at => Vec::new(),
                    _ => {
                        self.store
                            .posts_in_window(&digest.sources, after, due_at, digest.max_posts)
                            .await?
                    }
                };
                let related = self.related_for(&posts).await?;
                let rendered = self
                    .render(&templates, &digest, Of::Next(due_at), &posts, &related, 0)
                    .await?;
                let new = NewIssue {
                    digest: digest.name.clone(),
                    due_at,
                    window_start: after,
                    window_end: due_at,
                    subject: rendered.subject.clone(),
                    post_ids: posts.iter().map(|p| p.id).collect(),
                    skip: posts.is_empty() && digest.skip_if_empty,
                };
                match self.store.create_issue(&new, &domain, now).await? {
                    IssueCreated::Created(issue, queued) => {
                        info!(digest = %digest.name, issue = issue.id.0, posts = posts.len(), queued, status = issue.status.as_str(), "issue created");
                        (issue, true, queued)
                    }
                    IssueCreated::Existing(issue) => (issue, false, 0),
                }
            }
        };

        let mut report = None;
        let mut size_note = None;
        if issue.status == IssueStatus::Sending {
            let (sent, note) = self
                .send_existing(&digest, &templates, &issue, shutdown)
                .await?;
            report = Some(sent);
            size_note = note;
        }
        let status = self
            .store
            .finish_issue_if_done(issue.id, self.clock.now())
            .await?;
        let counts = self.store.ledger_counts(issue.id).await?;
        Ok(DigestRun {
            issue,
            created,
            queued,
            report,
            counts,
            status,
            size_note,
        })
    }

    /// Sends the due deliveries of every issue still sending (deferred retries whose time
    /// has come, and issues a crash or shutdown interrupted).
    pub async fn resume_sending(
        &self,
        shutdown: watch::Receiver<bool>,
    ) -> Result<Vec<DigestRun>, DigestError> {
        let mut runs = Vec::new();
        for issue in self.store.issues_sending().await? {
            if *shutdown.borrow() {
                break;
            }
            // Nothing due (deferred deliveries waiting for their time): no work, not even
            // rendering, so the daemon stays idle between retries.
            let due = self
                .store
                .deliveries_to_send(issue.id, SubscriberId(0), self.clock.now(), 1)
                .await?;
            if due.is_empty() {
                // (Deliveries to since-unsubscribed subscribers are closed, which may
                // finish the issue.)
                self.store
                    .skip_unsubscribed(issue.id, self.clock.now())
                    .await?;
                self.store
                    .finish_issue_if_done(issue.id, self.clock.now())
                    .await?;
                continue;
            }
            let Ok(digest) = self.digest_config(&issue.digest).cloned() else {
                warn!(digest = %issue.digest, issue = issue.id.0, "issue of a digest no longer configured: not sent");
                continue;
            };
            let templates = self.templates_for(&digest)?;
            let (report, size_note) = self
                .send_existing(&digest, &templates, &issue, shutdown.clone())
                .await?;
            let status = self
                .store
                .finish_issue_if_done(issue.id, self.clock.now())
                .await?;
            let counts = self.store.ledger_counts(issue.id).await?;
            runs.push(DigestRun {
                issue,
                created: false,
                queued: 0,
                report: Some(report),
                counts,
                status,
                size_note,
            });
        }
        Ok(runs)
    }

    async fn send_existing(
        &self,
        digest: &DigestConfig,
        templates: &Templates,
        issue: &Issue,
        shutdown: watch::Receiver<bool>,
    ) -> Result<(SendReport, Option<String>), DigestError> {
        let posts = self.store.posts_by_ids(&issue.post_ids).await?;
        let related = self.related_for(&posts).await?;
        self.transport
            .prepare()
            .map_err(|source| DigestError::Deliver {
                digest: digest.name.clone(),
                source,
            })?;
        let key = self.signing_keys().await?.current().clone();
        let ctx = self
            .message_context(digest)
            .with_verp(self.config.smtp.bounce_address.as_ref(), &key);
        let smtp = &self.config.smtp;
        let settings = SendSettings {
            concurrency: smtp.max_connections,
            rate: smtp.rate,
            retry_attempts: smtp.retry_attempts.max(1),
            batch: 500,
            retry_base: Duration::from_secs(60),
            shrink_on_too_big: true,
            soft_bounce_limit: smtp.soft_bounce_limit,
        };
        let started = std::time::Instant::now();
        let mut report = SendReport::default();
        let mut size_note = None;
        // A relay that refuses a message as too big lowers the limit: render again
        // within it and send what is left (a few rounds at most).
        for round in 0..SIZE_ROUNDS {
            let limit = self.transport.size_limit().await;
            let (mut rendered, note) = self
                .render_within(templates, digest, issue, &posts, &related, limit)
                .await?;
            size_note = note.or(size_note);
            // The subject was fixed when the issue was created.
            rendered.subject = issue.subject.clone();
            let job = SendJob {
                store: self.store.clone(),
                transport: self.transport.clone(),
                issue: issue.clone(),
                rendered,
                ctx: ctx.clone(),
                key: key.clone(),
                base_url: self.config.site.base_url.clone(),
                clock: Arc::clone(&self.clock),
                render_limit: limit,
                progress: Arc::clone(&self.progress),
                settings: SendSettings {
                    // The last round's refusals are final (about the message, never the
                    // address).
                    shrink_on_too_big: round + 1 < SIZE_ROUNDS,
                    ..settings
                },
            };
            let result = deliver::send_issue(job, shutdown.clone()).await?;
            let shrunk = self.transport.known_size_limit() < limit;
            let again = result.too_big && shrunk && !*shutdown.borrow();
            report.absorb(result);
            if !again {
                break;
            }
        }
        self.metrics
            .digest_seconds
            .observe(started.elapsed().as_secs_f64());
        self.metrics
            .messages_sent
            .fetch_add(report.sent, std::sync::atomic::Ordering::Relaxed);
        info!(
            digest = %digest.name,
            issue = issue.id.0,
            sent = report.sent,
            deferred = report.deferred,
            failed = report.failed,
            interrupted = report.interrupted,
            seconds = started.elapsed().as_secs_f64(),
            "issue sent"
        );
        if report.failed > 0 || report.bounced > 0 {
            let reason = report.reasons.first().map_or("", |(r, _)| r.as_str());
            warn!(
                digest = %digest.name,
                issue = issue.id.0,
                failed = report.failed,
                bounced = report.bounced,
                first_reason = reason,
                "some deliveries failed for good (`herald digest status` lists the ledger)"
            );
        }
        Ok((report, size_note))
    }

    /// The issue rendered with as many of its posts (in order) as keep every message
    /// within `limit` bytes, and a note when some were left out (they stay on the issue's
    /// web page).
    async fn render_within(
        &self,
        templates: &Templates,
        digest: &DigestConfig,
        issue: &Issue,
        posts: &[Post],
        related: &HashMap<PostId, Vec<RelatedPost>>,
        limit: u64,
    ) -> Result<(RenderedIssue, Option<String>), DigestError> {
        let budget = usize::try_from(limit).unwrap_or(usize::MAX);
        let render = |count: usize| {
            self.render(
                templates,
                digest,
                Of::Issue(issue),
                &posts[..count],
                related,
                posts.len() - count,
            )
        };
        let full = render(posts.len()).await?;
        let full_size = full.max_message_size();
        if full_size <= budget {
            return Ok((full, None));
        }
        // The most posts that fit: fits(lo) is unknown, fits(hi) is false.
        let (mut lo, mut hi) = (0, posts.len());
        let mut best = None;
        while lo < hi {
            let mid = (lo + hi) / 2;
            let rendered = render(mid).await?;
            if rendered.max_message_size() <= budget {
                best = Some((mid, rendered));
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        // Even with no posts over the estimate (it allows for the longest names and
        // headers): send that, and let the relay judge.
        let (kept, rendered) = match best {
            Some(best) => best,
            None => (0, render(0).await?),
        };
        let note = format!(
            "the issue would be up to {full_size} bytes, over the relay's limit of {limit}: {} of its {} posts are left out of the email (the web page has them all)",
            posts.len() - kept,
            posts.len()
        );
        warn!(digest = %digest.name, issue = issue.id.0, kept, posts = posts.len(), limit, "{note}");
        Ok((rendered, Some(note)))
    }

    /// An issue rendered as sent, for its "view online" page; `None` when there is no such
    /// issue (or it was empty).
    pub async fn archive_issue(
        &self,
        id: crate::domain::IssueId,
    ) -> Result<Option<RenderedIssue>, DigestError> {
        let Some(issue) = self.store.issue(id).await? else {
            return Ok(None);
        };
        if issue.status == IssueStatus::Empty {
            return Ok(None);
        }
        let Ok(digest) = self.digest_config(&issue.digest).cloned() else {
            return Ok(None);
        };
        let templates = self.templates_for(&digest)?;
        let posts = self.store.posts_by_ids(&issue.post_ids).await?;
        let related = self.related_for(&posts).await?;
        let mut rendered = self
            .render(&templates, &digest, Of::Issue(&issue), &posts, &related, 0)
            .await?;
        rendered.subject = issue.subject;
        Ok(Some(rendered))
    }

    /// The latest issue of a digest and its ledger.
    pub async fn digest_status(
        &self,
        name: &str,
    ) -> Result<Option<(Issue, LedgerCounts, Option<DateTime<Utc>>)>, DigestError> {
        let digest = self.digest_config(name)?;
        let Some(issue) = self.store.latest_issue(&digest.name).await? else {
            return Ok(None);
        };
        let counts = self.store.ledger_counts(issue.id).await?;
        let retry = self.store.next_retry_at(issue.id).await?;
        Ok(Some((issue, counts, retry)))
    }

    pub(super) async fn related_for(
        &self,
        posts: &[Post],
    ) -> Result<HashMap<PostId, Vec<RelatedPost>>, crate::store::Error> {
        let mut related = HashMap::new();
        for post in posts {
            related.insert(post.id, self.store.related_posts(post.id).await?);
        }
        Ok(related)
    }

    pub(super) async fn render(
        &self,
        templates: &Templates,
        digest: &DigestConfig,
        of: Of<'_>,
        posts: &[Post],
        related: &HashMap<PostId, Vec<RelatedPost>>,
        omitted: usize,
    ) -> Result<RenderedIssue, DigestError> {
        let (date, issue) = match of {
            Of::Issue(issue) => (issue.due_at, Some(issue)),
            Of::Next(date) => (date, None),
        };
        let mut titles: HashMap<String, String> = HashMap::new();
        for row in self.store.sources().await? {
            let configured = self
                .config
                .sources
                .iter()
                .find(|s| s.name == row.name)
                .and_then(|s| s.title.clone());
            titles.insert(
                row.name.clone(),
                configured.or(row.title).unwrap_or(row.name),
            );
        }
        let view_online_url = match issue {
            Some(issue) => format!("{}archive/{}", self.config.site.base_url, issue.id.0),
            None => format!("{}archive/next", self.config.site.base_url),
        };
        let input = IssueInput {
            site: &self.config.site,
            digest,
            date,
            posts,
            related,
            source_titles: &titles,
            view_online_url,
            omitted,
        };
        render_issue(templates, &input).map_err(|source| DigestError::Template {
            digest: digest.name.clone(),
            source,
        })
    }

    pub(super) fn message_context(&self, digest: &DigestConfig) -> MessageContext {
        let smtp = &self.config.smtp;
        MessageContext::new(
            &smtp.from,
            smtp.reply_to.as_ref(),
            smtp.bounce_address.as_ref(),
            &self.config.site.title,
            &digest.name,
            &self.message_domain(),
        )
        .signed_by(self.dkim.clone())
    }

    /// The site's host: the domain of Message-IDs and List-Ids.
    pub fn message_domain(&self) -> String {
        self.config
            .site
            .base_url
            .host_str()
            .unwrap_or("localhost")
            .to_owned()
    }
}
