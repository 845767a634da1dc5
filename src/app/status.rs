//! `herald status`: one screen for the operator: each source (last poll, last error,
//! next poll), each digest (next instant in its zone, last issue and its ledger),
//! subscribers by status, the store's size; `--json` for scripts.

use std::io::Write;

use anyhow::Result;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Outcome, open};
use crate::config::Config;
use crate::schedule;
use crate::store::LedgerCounts;

#[derive(Debug, Serialize)]
struct Status {
    sources: Vec<SourceStatus>,
    digests: Vec<DigestStatus>,
    subscribers: Vec<(String, u64)>,
    outbox: Vec<(String, u64)>,
    store_bytes: u64,
}

#[derive(Debug, Serialize)]
struct SourceStatus {
    name: String,
    url: String,
    enabled: bool,
    last_checked_at: Option<DateTime<Utc>>,
    last_success_at: Option<DateTime<Utc>>,
    next_check_at: Option<DateTime<Utc>>,
    consecutive_failures: u32,
    last_error: Option<String>,
}

#[derive(Debug, Serialize)]
struct DigestStatus {
    name: String,
    schedule: String,
    timezone: String,
    /// The next scheduled instant, in the digest's zone (RFC 3339 with its offset).
    next: Option<String>,
    recipients: u64,
    last_issue: Option<IssueStatus>,
}

#[derive(Debug, Serialize)]
struct IssueStatus {
    id: i64,
    due_at: DateTime<Utc>,
    status: String,
    posts: usize,
    ledger: LedgerCounts,
}

pub async fn run(config: Config, json: bool) -> Result<Outcome> {
    let herald = open(config).await?;
    let now = herald.clock.now();
    let rows = herald.store.sources().await?;
    let sources = herald
        .config
        .sources
        .iter()
        .map(|s| {
            let row = rows.iter().find(|r| r.name == s.name);
            let state = row.map(|r| r.state.clone()).unwrap_or_default();
            SourceStatus {
                name: s.name.clone(),
                url: s.location.to_string(),
                enabled: s.enabled,
                last_checked_at: state.last_checked_at,
                last_success_at: row.and_then(|r| r.last_success_at),
                next_check_at: state.next_check_at,
                consecutive_failures: state.consecutive_failures,
                last_error: state.last_error,
            }
        })
        .collect();
    let mut digests = Vec::new();
    for d in &herald.config.digests {
        let last_issue = match herald.store.latest_issue(&d.name).await? {
            Some(issue) => Some(IssueStatus {
                id: issue.id.0,
                due_at: issue.due_at,
                status: issue.status.as_str().to_owned(),
                posts: issue.post_ids.len(),
                ledger: herald.store.ledger_counts(issue.id).await?,
            }),
            None => None,
        };
        digests.push(DigestStatus {
            name: d.name.clone(),
            schedule: d.schedule.pattern.clone(),
            timezone: d.timezone.name().to_owned(),
            next: schedule::next_after(&d.schedule, d.timezone, now)
                .map(|at| at.with_timezone(&d.timezone).to_rfc3339()),
            recipients: herald.store.count_recipients(&d.name).await?,
            last_issue,
        });
    }
    let status = Status {
        sources,
        digests,
        subscribers: herald.store.subscriber_counts().await?,
        outbox: herald.store.outbox_counts().await?,
        store_bytes: herald.store.size_bytes().await?,
    };
    herald.store.close().await;
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, &status)?;
        writeln!(out)?;
    } else {
        write_text(&mut out, &status, now)?;
    }
    Ok(Outcome::Success)
}

fn write_text(out: &mut impl Write, s: &Status, now: DateTime<Utc>) -> std::io::Result<()> {
    let ago = |at: Option<DateTime<Utc>>| match at {
        Some(at) => relative(at, now),
        None => "never".to_owned(),
    };
    writeln!(out, "Sources")?;
    for src in &s.sources {
        let state = if !src.enabled {
            "disabled".to_owned()
        } else if src.consecutive_failures > 0 {
            format!("FAILING ({} in a row)", src.consecutive_failures)
        } else {
            "ok".to_owned()
        };
        writeln!(
            out,
            "  {:<20} {state}; last poll {}, next {}",
            src.name,
            ago(src.last_checked_at),
            src.next_check_at
                .map_or("now".into(), |at| relative(at, now))
        )?;
        if let Some(error) = &src.last_error
            && src.consecutive_failures > 0
        {
            writeln!(out, "  {:<20} {error}", "")?;
        }
    }
    writeln!(out, "\nDigests")?;
    for d in &s.digests {
        writeln!(
            out,
            "  {:<20} \"{}\" in {}; next {}; {} confirmed recipient{}",
            d.name,
            d.schedule,
            d.timezone,
            d.next.as_deref().unwrap_or("never"),
            d.recipients,
            if d.recipients == 1 { "" } else { "s" }
        )?;
        match &d.last_issue {
            Some(i) => writeln!(
                out,
                "  {:<20} last issue #{} for {} ({}, {} posts): {} sent, {} queued, {} deferred, {} failed",
                "",
                i.id,
                i.due_at.to_rfc3339(),
                i.status,
                i.posts,
                i.ledger.sent,
                i.ledger.queued,
                i.ledger.deferred,
                i.ledger.failed
            )?,
            None => writeln!(out, "  {:<20} no issue yet", "")?,
        }
    }
    let counts = |list: &[(String, u64)]| {
        if list.is_empty() {
            "none".to_owned()
        } else {
            list.iter()
                .map(|(k, n)| format!("{n} {k}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    writeln!(out, "\nSubscribers: {}", counts(&s.subscribers))?;
    writeln!(
        out,
        "Transactional mail (confirmations, welcomes): {}",
        counts(&s.outbox)
    )?;
    writeln!(out, "Store: {:.1} MB", s.store_bytes as f64 / 1e6)
}

/// "3m ago", "in 2h".
fn relative(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let seconds = (at - now).num_seconds();
    let (n, unit) = match seconds.unsigned_abs() {
        s if s < 90 => (s, "s"),
        s if s < 90 * 60 => (s / 60, "m"),
        s if s < 36 * 3600 => (s / 3600, "h"),
        s => (s / 86_400, "d"),
    };
    if seconds < 0 {
        format!("{n}{unit} ago")
    } else {
        format!("in {n}{unit}")
    }
}
