//! `herald digest …`

use std::io::Write;

use anyhow::Result;
use tokio::sync::watch;

use super::{Outcome, open, write_poll_report};
use crate::cli::DigestCommand;
use crate::config::Config;
use crate::domain::IssueStatus;
use crate::pipeline::{DigestRun, DigestWhen, EnrichScope};

pub async fn run(config: Config, cmd: DigestCommand, quiet: bool) -> Result<Outcome> {
    let herald = open(config).await?;
    let mut out = std::io::stdout().lock();
    let outcome = match cmd {
        DigestCommand::Send {
            name,
            force,
            no_poll,
        } => {
            let mut outcome = Outcome::Success;
            if !no_poll {
                // The digest carries everything published up to now.
                let report = herald.poll_sources(None).await?;
                write_poll_report(&mut out, &report)?;
                if report.failed() > 0 {
                    outcome = Outcome::Partial;
                }
            }
            herald.enrich(EnrichScope::Stale).await?;
            let when = if force {
                DigestWhen::Now
            } else {
                DigestWhen::Latest
            };
            let drawer =
                super::progress::Drawer::start(std::sync::Arc::clone(&herald.progress), quiet);
            let run = herald.send_digest(&name, when, stop_on_ctrl_c()).await;
            drawer.finish().await;
            let run = run?;
            write_run(&mut out, &name, &run)?;
            if run.counts.failed > 0
                || run.counts.deferred > 0
                || run.report.as_ref().is_some_and(|r| r.interrupted)
            {
                outcome = Outcome::Partial;
            }
            herald.close().await;
            outcome
        }
        DigestCommand::Preview { name, out_dir } => {
            let preview = herald.preview_digest(&name, &out_dir).await?;
            writeln!(out, "subject: {}", preview.subject)?;
            writeln!(
                out,
                "{} post{} since the last issue",
                preview.posts,
                if preview.posts == 1 { "" } else { "s" }
            )?;
            let skips_empty = herald
                .config
                .digests
                .iter()
                .any(|d| d.name == name && d.skip_if_empty);
            if preview.posts == 0 && skips_empty {
                writeln!(
                    out,
                    "nothing new yet: a send now would skip this period (skip_if_empty)"
                )?;
            }
            for file in &preview.files {
                writeln!(out, "wrote {}", file.display())?;
            }
            herald.close().await;
            Outcome::Success
        }
        DigestCommand::Status { name } => {
            match herald.digest_status(&name).await? {
                None => writeln!(out, "digest {name}: no issue yet")?,
                Some((issue, counts, retry)) => {
                    writeln!(
                        out,
                        "digest {name}: issue #{} for {} ({}), {} post{}",
                        issue.id,
                        issue.due_at.to_rfc3339(),
                        issue.status.as_str(),
                        issue.post_ids.len(),
                        if issue.post_ids.len() == 1 { "" } else { "s" }
                    )?;
                    writeln!(out, "subject: {}", issue.subject)?;
                    writeln!(
                        out,
                        "ledger: {} sent, {} queued, {} deferred, {} failed ({} in all)",
                        counts.sent,
                        counts.queued,
                        counts.deferred,
                        counts.failed,
                        counts.total()
                    )?;
                    if let Some(at) = retry {
                        writeln!(out, "next retry: {}", at.to_rfc3339())?;
                    }
                    for (status, reply) in herald.store.last_replies(issue.id).await? {
                        writeln!(out, "last reply ({}): {reply}", status.as_str())?;
                    }
                }
            }
            herald.close().await;
            Outcome::Success
        }
    };
    Ok(outcome)
}

fn write_run(out: &mut impl Write, name: &str, run: &DigestRun) -> std::io::Result<()> {
    let issue = &run.issue;
    let how = match (run.created, run.report.is_some()) {
        (true, _) => "created",
        (false, true) => "resumed (it was still sending)",
        (false, false) => "already exists",
    };
    writeln!(
        out,
        "digest {name}: issue #{} for {} {how}, {} post{}",
        issue.id,
        issue.due_at.to_rfc3339(),
        issue.post_ids.len(),
        if issue.post_ids.len() == 1 { "" } else { "s" }
    )?;
    if run.status == IssueStatus::Empty {
        writeln!(
            out,
            "nothing new since the last issue: skipped (skip_if_empty)"
        )?;
        return Ok(());
    }
    if run.created {
        writeln!(out, "subject: {}", issue.subject)?;
        writeln!(out, "{} deliveries queued", run.queued)?;
    }
    match &run.report {
        Some(r) => writeln!(
            out,
            "this run: {} sent, {} deferred, {} failed{}{}",
            r.sent,
            r.deferred,
            r.failed,
            if r.bounced > 0 {
                format!(", {} subscribers bounced", r.bounced)
            } else {
                String::new()
            },
            if r.interrupted {
                " (interrupted: the rest stays queued)"
            } else {
                ""
            }
        )?,
        None => writeln!(out, "already sent: nothing new to send")?,
    }
    if let Some(problem) = run
        .report
        .as_ref()
        .and_then(|r| r.relay_unusable.as_deref())
    {
        writeln!(out, "relay: {problem}")?;
    }
    for (reason, count) in run.report.iter().flat_map(|r| &r.reasons) {
        writeln!(out, "  {count} \u{d7} {reason}")?;
    }
    if let Some(note) = &run.size_note {
        writeln!(out, "note: {note}")?;
    }
    writeln!(
        out,
        "ledger: {} sent, {} queued, {} deferred, {} failed; issue {}",
        run.counts.sent,
        run.counts.queued,
        run.counts.deferred,
        run.counts.failed,
        run.status.as_str()
    )
}

/// A shutdown signal that turns on at Ctrl-C or SIGTERM: sending stops starting new
/// messages, finishes those in flight and records them.
pub fn stop_on_ctrl_c() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        crate::telemetry::shutdown_signal().await;
        let _ = tx.send(true);
    });
    rx
}
