//! `herald serve` (the daemon) and `herald run` (one pass of everything).

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::sync::{mpsc, watch};
use tokio_cron_scheduler::{Job, JobScheduler};
use tracing::{error, info, warn};

use super::{Outcome, open, write_enrich_report, write_feed_report, write_poll_report};
use crate::config::Config;
use crate::deliver::sender::stopped;
use crate::http::{self, AppState};
use crate::pipeline::{DigestRun, DigestWhen, EnrichScope, Herald};

/// How often the daemon looks at what is due. The decision itself is made by the
/// schedules (croner, in each digest's time zone) against the store, never by this tick.
const TICK: &str = "*/15 * * * * *";
/// How long a shutdown waits for in-flight work (SMTP transactions, HTTP requests).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

pub async fn serve(config: Config, listen: Option<SocketAddr>) -> Result<Outcome> {
    let herald = open(config).await?;
    let addr = listen.unwrap_or(herald.config.http.listen);
    let state = AppState::new(herald.clone()).context("cannot load the page templates")?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    info!(addr = %listener.local_addr().unwrap_or(addr), "serving");
    let metrics_listener = match herald.config.http.metrics_listen {
        Some(at) => Some(
            tokio::net::TcpListener::bind(at)
                .await
                .with_context(|| format!("cannot listen on {at} (http.metrics_listen)"))?,
        ),
        None => None,
    };

    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        crate::telemetry::shutdown_signal().await;
        info!("shutting down: no new requests or messages; finishing those in flight");
        let _ = stop_tx.send(true);
    });
    let mut http_stop = stop_rx.clone();
    let server = tokio::spawn(http::serve(listener, state.clone(), async move {
        stopped(&mut http_stop).await
    }));
    let metrics_server = metrics_listener.map(|listener| {
        let mut stop = stop_rx.clone();
        tokio::spawn(http::server::serve(
            listener,
            http::metrics_router(state.clone()),
            http::server::Limits::default(),
            async move { stopped(&mut stop).await },
        ))
    });

    // tokio-cron-scheduler only wakes the loops; a tick that arrives while a loop is
    // still busy is dropped, so its rounds never overlap.
    let (poll_tx, poll_ticks) = mpsc::channel::<()>(1);
    let (send_tx, send_ticks) = mpsc::channel::<()>(1);
    let scheduler = JobScheduler::new()
        .await
        .context("cannot start the scheduler")?;
    let (p, s) = (poll_tx.clone(), send_tx.clone());
    let job = Job::new_async(TICK, move |_, _| {
        let (p, s) = (p.clone(), s.clone());
        Box::pin(async move {
            let _ = p.try_send(());
            let _ = s.try_send(());
        })
    })
    .context("cannot create the tick job")?;
    scheduler
        .add(job)
        .await
        .context("cannot add the tick job")?;
    scheduler
        .start()
        .await
        .context("cannot start the scheduler")?;
    // The first rounds right away.
    let _ = poll_tx.try_send(());
    let _ = send_tx.try_send(());

    tokio::spawn(reload_on_hangup(herald.clone(), state.clone()));
    let polling = tokio::spawn(poll_loop(
        herald.clone(),
        state.clone(),
        poll_ticks,
        stop_rx.clone(),
    ));
    let sending = tokio::spawn(send_loop(herald.clone(), send_ticks, stop_rx.clone()));
    let _ = polling.await;
    let _ = sending.await;

    let mut scheduler = scheduler;
    let _ = scheduler.shutdown().await;
    match tokio::time::timeout(SHUTDOWN_GRACE, server).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => warn!(error = %e, "the HTTP server stopped with an error"),
        Ok(Err(e)) => warn!(error = %e, "the HTTP server task failed"),
        Err(_) => warn!("requests still running after the grace period were cut off"),
    }
    if let Some(metrics) = metrics_server {
        let _ = tokio::time::timeout(Duration::from_secs(5), metrics).await;
    }
    herald.close().await;
    info!("stopped");
    Ok(Outcome::Success)
}

/// SIGHUP reads the templates again (an issue already sending keeps those it started
/// with); a broken one is reported and the ones loaded before stay.
async fn reload_on_hangup(herald: Herald, state: AppState) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hangups) = signal(SignalKind::hangup()) else {
            return;
        };
        while hangups.recv().await.is_some() {
            match herald.reload_templates() {
                Ok(()) => {
                    state.content_changed();
                    info!("templates reloaded");
                }
                Err(e) => error!(error = %e, "templates not reloaded; the ones loaded before stay"),
            }
        }
    }
    #[cfg(not(unix))]
    let _ = (herald, state);
}

/// Polls, enriches and rewrites the feeds on every tick, until the stop signal. A round
/// runs as its own task: a panic in it is logged and the next round comes as usual.
async fn poll_loop(
    herald: Herald,
    state: AppState,
    mut ticks: mpsc::Receiver<()>,
    stop: watch::Receiver<bool>,
) {
    let mut stopping = stop.clone();
    loop {
        tokio::select! {
            Some(()) = ticks.recv() => {
                let h = herald.clone();
                match tokio::spawn(async move { h.poll_tick().await }).await {
                    Ok(report) => {
                        if report.poll.changed() || report.enriched.is_some() {
                            state.content_changed();
                        }
                    }
                    Err(e) => error!(error = %e, "a poll round crashed; the next one runs as usual"),
                }
                // Also picks up feeds written by `herald feed write` from another process
                // (reading and gzipping them is blocking work: off the async threads).
                let reloading = state.clone();
                let _ = tokio::task::spawn_blocking(move || reloading.reload_feeds()).await;
            }
            () = stopped(&mut stopping) => return,
        }
    }
}

/// Sends the outbox, retries and due digests on every tick, until the stop signal (which
/// also stops a send in progress after the messages in flight).
async fn send_loop(herald: Herald, mut ticks: mpsc::Receiver<()>, stop: watch::Receiver<bool>) {
    let mut stopping = stop.clone();
    loop {
        tokio::select! {
            Some(()) = ticks.recv() => {
                let h = herald.clone();
                let shutdown = stop.clone();
                if let Err(e) = tokio::spawn(async move { h.send_tick(shutdown).await }).await {
                    error!(error = %e, "a send round crashed; what was not sent stays queued");
                }
                if *stop.borrow() {
                    return;
                }
            }
            () = stopped(&mut stopping) => return,
        }
    }
}

/// One pass of everything now: poll, enrich, write the feeds, finish interrupted sends,
/// send the digests that are due (or the one named, now).
pub async fn run(config: Config, digest: Option<String>, quiet: bool) -> Result<Outcome> {
    let herald = open(config).await?;
    let drawer = super::progress::Drawer::start(std::sync::Arc::clone(&herald.progress), quiet);
    let mut out = std::io::stdout().lock();
    let mut outcome = Outcome::Success;
    let stop = super::digest::stop_on_ctrl_c();

    let poll = herald.poll_sources(None).await?;
    write_poll_report(&mut out, &poll)?;
    if poll.failed() > 0 {
        outcome = Outcome::Partial;
    }
    let enriched = herald.enrich(EnrichScope::Stale).await?;
    write_enrich_report(&mut out, &enriched)?;
    let files = herald.write_feeds(None).await?;
    write_feed_report(&mut out, &files)?;

    let outbox = herald.send_outbox().await?;
    if outbox.deferred + outbox.failed > 0 {
        writeln!(
            out,
            "outbox: {} sent, {} deferred, {} failed",
            outbox.sent, outbox.deferred, outbox.failed
        )?;
        outcome = Outcome::Partial;
    }
    let mut runs: Vec<(String, DigestRun)> = Vec::new();
    for run in herald.resume_sending(stop.clone()).await? {
        runs.push((run.issue.digest.clone(), run));
    }
    let due: Vec<(String, DigestWhen)> = match digest {
        Some(name) => vec![(name, DigestWhen::Now)],
        None => herald
            .due_digests()
            .await?
            .into_iter()
            .map(|(name, at)| (name, DigestWhen::At(at)))
            .collect(),
    };
    for (name, when) in due {
        match herald.send_digest(&name, when, stop.clone()).await {
            Ok(run) => runs.push((name, run)),
            Err(e) => {
                writeln!(out, "digest {name}: FAILED: {e}")?;
                outcome = Outcome::Partial;
            }
        }
    }
    if runs.is_empty() {
        writeln!(out, "digests: none due")?;
    }
    for (name, run) in &runs {
        let r = run.report.clone().unwrap_or_default();
        writeln!(
            out,
            "digest {name}: issue #{} ({}), {} post{}: {} sent, {} deferred, {} failed this run",
            run.issue.id,
            run.status.as_str(),
            run.issue.post_ids.len(),
            if run.issue.post_ids.len() == 1 {
                ""
            } else {
                "s"
            },
            r.sent,
            r.deferred,
            r.failed
        )?;
        if run.counts.failed > 0 || run.counts.deferred > 0 || r.interrupted {
            outcome = Outcome::Partial;
        }
    }
    drawer.finish().await;
    herald.close().await;
    Ok(outcome)
}
