//! The ledger driver: sends an issue's due deliveries and records each outcome.
//!
//! Deliveries are read in batches (subscriber-id order), so memory stays flat however
//! long the list is. At most `concurrency` messages are in flight, paced by a token
//! bucket. Each outcome is committed as soon as it is known: sent after the 250,
//! deferred (4xx, connection trouble) with exponential backoff and jitter, failed after a
//! 5xx or the last attempt. A shutdown signal stops new messages from starting; those in
//! flight finish and are recorded. Per-message events are logged at DEBUG only; the run
//! is summarised once (see the pipeline).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tracing::{debug, warn};

use super::message::{MessageContext, Personal, build_message};
use super::{SendError, Transport};
use crate::clock::SharedClock;
use crate::domain::token::SigningKey;
use crate::domain::verp::DeliveryRef;
use crate::domain::{Issue, SubscriberId};
use crate::render::{PersonalFields, RenderedIssue};
use crate::store::{Counted, EventClass, FailureEffect, PendingDelivery, Store};

/// How hard to push.
#[derive(Debug, Clone, Copy)]
pub struct SendSettings {
    /// Messages in flight at once.
    pub concurrency: usize,
    /// Messages per second.
    pub rate: f64,
    /// Attempts before a deferred delivery becomes failed.
    pub retry_attempts: u32,
    /// Deliveries read from the store at a time.
    pub batch: usize,
    /// First retry delay; doubled per attempt (with ±20% jitter), capped at six hours.
    pub retry_base: Duration,
    /// A message refused as too big stops the run and is deferred, to be rendered
    /// smaller; otherwise it fails (never counted against the address).
    pub shrink_on_too_big: bool,
    /// Soft bounces in a row that make a subscriber bounced.
    pub soft_bounce_limit: u32,
}

/// What one run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SendReport {
    pub sent: u64,
    pub deferred: u64,
    pub failed: u64,
    /// Subscribers marked bounced during this run.
    pub bounced: u64,
    /// Deliveries closed because the subscriber was no longer confirmed.
    pub skipped: u64,
    /// Ledger writes that failed (the delivery stays as it was and is retried).
    pub ledger_errors: u64,
    /// A shutdown stopped the run before every due delivery was tried.
    pub interrupted: bool,
    /// The run stopped because the relay refused every message in a row.
    pub relay_refusing: bool,
    /// The run stopped because the relay refused a message as too big; the deliveries
    /// are deferred, to be sent again rendered within the smaller limit.
    pub too_big: bool,
    /// Why deliveries failed or were deferred this run: reply, count (a few kinds, most
    /// frequent first).
    pub reasons: Vec<(String, u64)>,
    /// The relay cannot be used as configured: what is wrong and what to change.
    pub relay_unusable: Option<String>,
}

impl SendReport {
    /// Adds a later run's outcome (of the same issue) to this one: counts add up; what
    /// is still deferred and why the last run stopped come from the later one.
    pub fn absorb(&mut self, later: SendReport) {
        self.sent += later.sent;
        self.failed += later.failed;
        self.bounced += later.bounced;
        self.skipped += later.skipped;
        self.ledger_errors += later.ledger_errors;
        self.deferred = later.deferred;
        self.interrupted = later.interrupted;
        self.relay_refusing = later.relay_refusing;
        self.too_big = later.too_big;
        self.relay_unusable = later.relay_unusable.or(self.relay_unusable.take());
        for (reason, n) in later.reasons {
            match self.reasons.iter_mut().find(|(r, _)| *r == reason) {
                Some(entry) => entry.1 += n,
                None => self.reasons.push((reason, n)),
            }
        }
        self.reasons.sort_by_key(|r| std::cmp::Reverse(r.1));
    }
}

/// Distinct reasons kept per run (each later one is counted under "other reasons").
const REASONS_KEPT: usize = 8;

/// Permanent failures in a row, across subscribers, after which the run stops: the
/// relay is refusing everything (a rejected sender, a policy block), and going on would
/// only fail, and eventually bounce, the whole list.
const FAILURES_BEFORE_STOPPING: u64 = 20;

/// Refusals, with no message accepted, that make a whole run look like the relay's doing.
const WHOLE_SHORT_LIST: u64 = 3;

#[derive(Default)]
struct Tally {
    /// Permanent failures since the last success (see [`Streak`]).
    streak: std::sync::Mutex<Streak>,
    /// Successes so far: a failure whose reply came before a success does not join the
    /// streak that success ended.
    successes: AtomicU64,
    /// A message was refused as too big: stop starting new ones.
    too_big: std::sync::atomic::AtomicBool,
    /// The relay cannot be used as configured: the problem and its fix (stop).
    unusable: std::sync::Mutex<Option<String>>,
    sent: AtomicU64,
    deferred: AtomicU64,
    failed: AtomicU64,
    bounced: AtomicU64,
    ledger_errors: AtomicU64,
    reasons: std::sync::Mutex<Vec<(String, u64)>>,
}

/// The permanent failures since the last success: subscriber, whether the reply blamed
/// the address, whether that bounced them (so that a relay refusing everything can be
/// undone), and how many of them were the relay's own kind of refusal.
#[derive(Default)]
struct Streak {
    failures: Vec<(SubscriberId, bool, bool)>,
    relay_refusals: usize,
}

impl Tally {
    /// Records (and states once, at ERROR) that the relay cannot be used as configured.
    fn unusable(&self, error: &SendError) {
        if let Ok(mut unusable) = self.unusable.lock()
            && unusable.is_none()
        {
            let fix = error.fix.as_deref().unwrap_or("");
            tracing::error!(fix, "{}; the rest stays queued", error.reply);
            *unusable = Some(format!("{}: {fix}", error.reply));
        }
    }

    fn is_unusable(&self) -> bool {
        self.unusable.lock().is_ok_and(|u| u.is_some())
    }

    /// Whether the relay seems to refuse everything: 20 permanent failures in a row, or,
    /// for an issue it refused wholesale before, one refusal of its own kind (not one
    /// about an address) before any success.
    fn relay_refusing(&self, refused_before: bool) -> bool {
        self.streak.lock().is_ok_and(|s| {
            s.failures.len() as u64 >= FAILURES_BEFORE_STOPPING
                || (refused_before
                    && s.relay_refusals > 0
                    && self.successes.load(Ordering::Relaxed) == 0)
        })
    }

    /// Counts one failure's reason (its reply without the per-message details).
    fn reason(&self, reply: &str) {
        let key: String = crate::domain::shorten(reply, 160);
        if let Ok(mut reasons) = self.reasons.lock() {
            if let Some(entry) = reasons.iter_mut().find(|(r, _)| *r == key) {
                entry.1 += 1;
            } else if reasons.len() < REASONS_KEPT {
                reasons.push((key, 1));
            } else if let Some(entry) = reasons.iter_mut().find(|(r, _)| r == "other reasons") {
                entry.1 += 1;
            } else {
                reasons.push(("other reasons".into(), 1));
            }
        }
    }
}

/// Everything one send of an issue needs: where to record outcomes, how to send, and
/// the issue rendered once for every recipient.
pub struct SendJob {
    pub store: Store,
    pub transport: Transport,
    pub issue: Issue,
    pub rendered: RenderedIssue,
    pub ctx: MessageContext,
    pub key: SigningKey,
    pub base_url: url::Url,
    pub clock: SharedClock,
    pub settings: SendSettings,
    /// The size limit `rendered` was made to fit.
    pub render_limit: u64,
    /// Counts each delivery tried (for the command line's progress).
    pub progress: Arc<crate::telemetry::Progress>,
}

/// What every send task shares.
struct Shared {
    job: SendJob,
    tally: Tally,
}

/// Sends every due delivery of the job's issue, recording each outcome in the ledger.
pub async fn send_issue(
    job: SendJob,
    mut shutdown: watch::Receiver<bool>,
) -> Result<SendReport, crate::store::Error> {
    let skipped = job
        .store
        .skip_unsubscribed(job.issue.id, job.clock.now())
        .await?;
    let due = job.store.ledger_counts(job.issue.id).await?;
    job.progress.start(
        &format!("sending {} #{}", job.issue.digest, job.issue.id),
        due.queued + due.deferred,
    );
    let settings = job.settings;
    let shared = Arc::new(Shared {
        job,
        tally: Tally::default(),
    });
    let SendJob {
        store,
        issue,
        clock,
        ..
    } = &shared.job;
    let permits = Arc::new(Semaphore::new(settings.concurrency.max(1)));
    let pacer = Pacer::new(settings.rate);
    let mut tasks = JoinSet::new();
    let mut after = SubscriberId(0);
    let mut interrupted = false;
    let mut relay_refusing = false;
    // An issue the relay refused wholesale before: its next run stops at the first
    // refusal of the relay's kind before a success (the tail of a list must not be
    // judged alone, with a streak too short to see the relay).
    let refused_before = issue.relay_refusals > 0;
    // A run sends what is due when it starts; deferrals made during the run wait for
    // the next run (or the daemon's retry), so a flapping server cannot loop us here.
    let started = clock.now();
    'batches: loop {
        let batch = store
            .deliveries_to_send(issue.id, after, started, settings.batch)
            .await?;
        let Some(last) = batch.last() else { break };
        after = last.subscriber_id;
        for delivery in batch {
            if *shutdown.borrow() {
                interrupted = true;
                break 'batches;
            }
            if shared.tally.too_big.load(Ordering::Relaxed) || shared.tally.is_unusable() {
                break 'batches;
            }
            if shared.tally.relay_refusing(refused_before) {
                tracing::error!(
                    issue = issue.id.0,
                    "the relay refused every message in a row; stopping this issue (the rest stays queued): check smtp.from, bounce_address and the relay's logs"
                );
                relay_refusing = true;
                break 'batches;
            }
            let permit = tokio::select! {
                permit = Arc::clone(&permits).acquire_owned() => permit.unwrap_or_else(|_| unreachable!("the semaphore is never closed")),
                () = stopped(&mut shutdown) => { interrupted = true; break 'batches; }
            };
            tokio::select! {
                () = pacer.wait() => {}
                () = stopped(&mut shutdown) => { interrupted = true; break 'batches; }
            }
            let shared = Arc::clone(&shared);
            tasks.spawn(async move {
                use futures_util::FutureExt;
                // A panic here must not leave the delivery queued to panic again on
                // every run: it fails this delivery alone.
                let outcome = std::panic::AssertUnwindSafe(deliver_one(&shared, &delivery))
                    .catch_unwind()
                    .await;
                shared.job.progress.add(1);
                if outcome.is_err() {
                    tracing::error!(
                        issue = shared.job.issue.id.0,
                        "a delivery crashed; it is marked failed"
                    );
                    let now = shared.job.clock.now();
                    let _ = shared
                        .job
                        .store
                        .mark_failed(
                            shared.job.issue.id,
                            delivery.subscriber_id,
                            "not sent: herald crashed building or sending it",
                            None,
                            now,
                        )
                        .await;
                    shared.tally.failed.fetch_add(1, Ordering::Relaxed);
                }
                drop(permit);
            });
            // Reap finished tasks so the set stays small.
            while tasks.try_join_next().is_some() {}
        }
    }
    // Messages already handed to the server finish and are recorded.
    while tasks.join_next().await.is_some() {}
    // A short list the relay refused whole: every delivery of the run refused for good,
    // at least WHOLE_SHORT_LIST of them blaming the address, and none accepted is the
    // relay, not that many addresses gone at once (the streak of
    // FAILURES_BEFORE_STOPPING needs a list at least that long).
    // A resumed run whose issue already reached people is not that.
    let refused_whole = !relay_refusing
        && !interrupted
        && shared.tally.successes.load(Ordering::Relaxed) == 0
        && shared.tally.streak.lock().is_ok_and(|s| {
            // Refusals that would bounce them (a refusal of the message bounces
            // nobody, and stays final).
            s.failures.iter().filter(|(_, blamed, _)| *blamed).count() as u64 >= WHOLE_SHORT_LIST
        })
        && store
            .ledger_counts(issue.id)
            .await
            .is_ok_and(|c| c.sent == 0);
    if refused_whole {
        tracing::error!(
            issue = issue.id.0,
            "the relay refused every message of this issue; nobody is bounced, and the issue is tried again later: check smtp.from, bounce_address and the relay's logs"
        );
        relay_refusing = true;
    }
    if relay_refusing {
        // Refused for a reason that is not theirs: the relay says no to everyone, so
        // even replies that blamed an address are not believed. Their hard failures are
        // taken back, and they get this issue once the relay accepts mail again (a few
        // times at most: each round counts as an attempt).
        let streak = shared
            .tally
            .streak
            .lock()
            .map(|mut s| std::mem::take(&mut s.failures))
            .unwrap_or_default();
        let blamed: Vec<(SubscriberId, bool)> = streak
            .iter()
            .filter(|(_, blamed, _)| *blamed)
            .map(|(id, _, bounced)| (*id, *bounced))
            .collect();
        let refused: Vec<SubscriberId> = streak.iter().map(|(id, ..)| *id).collect();
        // Not at once: the relay said no to all of them; ask again after a while, longer
        // each time it does (up to six hours), for as long as it takes.
        let retry_at = clock.now() + retry_delay(settings.retry_base * 10, issue.relay_refusals);
        let now = clock.now();
        if let Err(e) = store.note_relay_refusal(issue.id).await {
            warn!(issue = issue.id.0, error = %e, "could not record the relay's refusal");
        }
        match store.undo_hard_failures(issue.id, &blamed).await {
            Ok(()) => {
                // Those bounces were taken back: the run bounced nobody.
                let undone = blamed.iter().filter(|(_, bounced)| *bounced).count() as u64;
                let _ =
                    shared
                        .tally
                        .bounced
                        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                            Some(n.saturating_sub(undone))
                        });
            }
            Err(e) => {
                warn!(issue = issue.id.0, error = %e, "could not take back the hard failures")
            }
        }
        if let Err(e) = store.requeue(issue.id, &refused, retry_at, now).await {
            warn!(issue = issue.id.0, error = %e, "could not requeue the refused deliveries");
        }
    }
    let too_big = shared.tally.too_big.load(Ordering::Relaxed);
    let t = &shared.tally;
    let mut reasons = t.reasons.lock().map(|r| r.clone()).unwrap_or_default();
    reasons.sort_by_key(|r| std::cmp::Reverse(r.1));
    Ok(SendReport {
        reasons,
        sent: t.sent.load(Ordering::Relaxed),
        deferred: t.deferred.load(Ordering::Relaxed),
        failed: t.failed.load(Ordering::Relaxed),
        bounced: t.bounced.load(Ordering::Relaxed),
        skipped,
        ledger_errors: t.ledger_errors.load(Ordering::Relaxed),
        interrupted: interrupted || relay_refusing || too_big || t.is_unusable(),
        relay_refusing,
        too_big,
        relay_unusable: t.unusable.lock().ok().and_then(|u| u.clone()),
    })
}

async fn deliver_one(shared: &Shared, delivery: &PendingDelivery) {
    let Shared { job, tally } = shared;
    let token = job.key.unsubscribe_token(
        delivery.subscriber_id,
        delivery.token_nonce.as_deref(),
        delivery.email.as_str(),
    );
    let fields = PersonalFields {
        name: delivery.name.clone(),
        email: delivery.email.as_str().to_owned(),
        unsubscribe_url: unsubscribe_url(&job.base_url, &token),
    };
    let issue = job.issue.id;
    let personal = Personal {
        to: &delivery.email,
        fields: &fields,
        token: &token,
        message_id: &delivery.message_id,
        delivery: Some(DeliveryRef::Issue {
            issue: issue.0,
            subscriber: delivery.subscriber_id,
        }),
    };
    let result = match build_message(&job.ctx, &job.rendered, &personal, job.clock.now()) {
        Ok(message) => {
            let stem = format!("issue-{}-{}", issue.0, delivery.subscriber_id.0);
            job.transport
                .send(&message.envelope, &message.bytes, &stem)
                .await
        }
        // Never the recipient's fault: fails this delivery alone, with the reason.
        Err(e) => Err(SendError::local(
            format!("cannot build the message: {e}"),
            false,
        )),
    };
    let now = job.clock.now();
    let successes_before = tally.successes.load(Ordering::Relaxed);
    // Refused as too big, by the relay, or by herald because the relay's limit came
    // down after this rendering (a message already on its way when another was refused).
    let shrinkable = result.as_ref().err().is_some_and(|error| {
        error.is_too_big()
            || (error.is_over_known_limit() && job.transport.known_size_limit() < job.render_limit)
    });
    let recorded = match result {
        // Too big: not this subscriber's problem, nor final. Stop the run; the issue is
        // rendered again within the smaller limit and this one sent then (no attempt is
        // counted: the next rendering is a different message).
        Err(error) if shrinkable && job.settings.shrink_on_too_big => {
            tally.too_big.store(true, Ordering::Relaxed);
            tally.reason(&error.reply);
            tally.deferred.fetch_add(1, Ordering::Relaxed);
            job.store
                .put_back(issue, delivery.subscriber_id, &error.reply, now, now)
                .await
        }
        // The relay cannot be used as configured: said once, at ERROR, with the fix; the
        // run stops and this delivery waits, its attempts untouched.
        Err(error) if error.is_relay_unusable() => {
            tally.unusable(&error);
            tally.deferred.fetch_add(1, Ordering::Relaxed);
            let at = now + retry_delay(job.settings.retry_base, 0);
            job.store
                .put_back(issue, delivery.subscriber_id, &error.reply, at, now)
                .await
        }
        Ok(reply) => {
            debug!(issue = issue.0, to = %delivery.email.masked(), %reply, "sent");
            tally.sent.fetch_add(1, Ordering::Relaxed);
            if let Ok(mut streak) = tally.streak.lock() {
                tally.successes.fetch_add(1, Ordering::Relaxed);
                *streak = Streak::default();
            }
            job.store.mark_sent(issue, delivery, &reply, now).await
        }
        Err(error)
            if error.is_transient() && delivery.attempts + 1 < job.settings.retry_attempts =>
        {
            tally.reason(&error.reply);
            let next = now + retry_delay(job.settings.retry_base, delivery.attempts);
            debug!(issue = issue.0, to = %delivery.email.masked(), reply = %error.reply, %next, "deferred");
            tally.deferred.fetch_add(1, Ordering::Relaxed);
            job.store
                .mark_deferred(issue, delivery.subscriber_id, &error.reply, next, now)
                .await
        }
        Err(error) => {
            let permanent = error.is_permanent();
            tally.reason(&error.reply);
            // A message herald could not build says nothing about the relay.
            let counts_for_relay = permanent && error.blame() != super::Blame::Build;
            debug!(issue = issue.0, to = %delivery.email.masked(), reply = %error.reply, permanent, "delivery failed");
            tally.failed.fetch_add(1, Ordering::Relaxed);
            // Only a failure that blames the address counts towards a bounce: at once
            // when it does not exist, after a row of soft ones (retries used up) else.
            let bounce = error.indicts_recipient();
            let counted = match error.blame() {
                super::Blame::Recipient => Some(EventClass::Hard),
                super::Blame::Soft if error.is_about_mailbox() => Some(EventClass::Soft),
                _ => None,
            }
            .map(|class| Counted {
                class,
                soft_bounce_limit: job.settings.soft_bounce_limit,
            });
            let effect = job
                .store
                .mark_failed(issue, delivery.subscriber_id, &error.reply, counted, now)
                .await;
            let bounced = matches!(effect, Ok(FailureEffect::Bounced));
            if counts_for_relay
                && let Ok(mut streak) = tally.streak.lock()
                // A success that came after this reply ended the streak it belonged to.
                && tally.successes.load(Ordering::Relaxed) == successes_before
            {
                streak
                    .failures
                    .push((delivery.subscriber_id, bounce, bounced));
                if error.is_relay_refusal() {
                    streak.relay_refusals += 1;
                }
            }
            match effect {
                Ok(FailureEffect::Bounced) => {
                    debug!(to = %delivery.email.masked(), reply = %error.reply, "subscriber marked bounced");
                    tally.bounced.fetch_add(1, Ordering::Relaxed);
                    Ok(())
                }
                Ok(FailureEffect::None) => Ok(()),
                Err(e) => Err(e),
            }
        }
    };
    if let Err(e) = recorded {
        // The delivery keeps its previous state and is tried again by the next run.
        warn!(issue = issue.0, error = %e, "could not record a delivery outcome");
        tally.ledger_errors.fetch_add(1, Ordering::Relaxed);
    }
}

/// Resolves once a shutdown is signalled; never, if the signal's sender is gone.
pub async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    if shutdown.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// `https://…/unsubscribe/<token>`.
pub fn unsubscribe_url(base: &url::Url, token: &str) -> String {
    format!("{}unsubscribe/{token}", base.as_str())
}

/// Exponential backoff with ±20% jitter: base × 2^attempts, at most six hours.
pub fn retry_delay(base: Duration, attempts: u32) -> chrono::Duration {
    let exp = base
        .saturating_mul(1 << attempts.min(12))
        .min(Duration::from_secs(6 * 60 * 60));
    let factor = 0.8 + 0.4 * jitter();
    chrono::Duration::from_std(exp.mul_f64(factor)).unwrap_or(chrono::Duration::hours(6))
}

/// A number in 0..1 that differs from call to call, to spread retries. Not for secrets:
/// it comes from the standard library's per-process random hash keys, so it cannot fail
/// (secrets use the OS's randomness and report its failure).
fn jitter() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(CALLS.fetch_add(1, Ordering::Relaxed));
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// A token bucket holding up to one second's worth of messages (at most 1,000).
struct Pacer {
    interval: Duration,
    burst: u32,
    /// When the next token is free; tokens accumulate while idle, up to the burst.
    next: tokio::sync::Mutex<tokio::time::Instant>,
}

impl Pacer {
    fn new(rate: f64) -> Self {
        let rate = rate.max(0.001);
        let interval = Duration::from_secs_f64(1.0 / rate);
        let burst = (rate as u32).clamp(1, 1000);
        let now = tokio::time::Instant::now();
        // Start with a full bucket.
        let next = now.checked_sub(interval * burst).unwrap_or(now);
        Self {
            interval,
            burst,
            next: tokio::sync::Mutex::new(next),
        }
    }

    /// Waits for a token.
    async fn wait(&self) {
        let at = {
            let mut next = self.next.lock().await;
            let now = tokio::time::Instant::now();
            let earliest = now.checked_sub(self.interval * self.burst).unwrap_or(now);
            let slot = (*next).max(earliest);
            *next = slot + self.interval;
            slot
        };
        if at > tokio::time::Instant::now() {
            tokio::time::sleep_until(at).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_grow_with_jitter_and_a_cap() {
        let base = Duration::from_secs(60);
        for attempts in 0..4 {
            let d = retry_delay(base, attempts).num_milliseconds() as f64;
            let expected = 60_000.0 * f64::from(1 << attempts);
            assert!(
                d >= expected * 0.79 && d <= expected * 1.21,
                "{attempts}: {d}"
            );
        }
        assert!(retry_delay(base, 30) <= chrono::Duration::milliseconds(6 * 3_600_000 * 121 / 100));
    }

    #[tokio::test(start_paused = true)]
    async fn the_pacer_holds_a_rate_after_its_burst() {
        let pacer = Pacer::new(100.0);
        let started = tokio::time::Instant::now();
        for _ in 0..150 {
            pacer.wait().await;
        }
        // 100 from the full bucket at once, then 50 at 10 ms each (virtual time).
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(490) && took <= Duration::from_millis(510),
            "{took:?}"
        );
    }
}
