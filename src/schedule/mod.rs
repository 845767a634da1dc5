//! When things are due: pure functions of (schedule, time zone, now, last run).
//!
//! Cron schedules are evaluated with croner in the configured IANA zone (chrono-tz), so
//! "08:00 Europe/Berlin" stays 08:00 across daylight-saving changes. Nothing here reads the
//! clock or the store: callers pass `now` and what the store says ran last, which keeps
//! every rule testable (see the tests for DST, month ends and catch-up).

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::config::Schedule;

/// The most recent instant of `schedule` at or before `now`.
pub fn latest_due(schedule: &Schedule, tz: Tz, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let local = now.with_timezone(&tz);
    schedule
        .cron
        .find_previous_occurrence(&local, true)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The first instant of `schedule` strictly after `after`.
pub fn next_after(schedule: &Schedule, tz: Tz, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let local = after.with_timezone(&tz);
    schedule
        .cron
        .find_next_occurrence(&local, false)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The instant to run now, if any: the latest scheduled instant, unless it already ran.
/// After downtime this is only the most recent missed instant, never one per missed
/// period.
pub fn due_now(
    schedule: &Schedule,
    tz: Tz,
    now: DateTime<Utc>,
    last_run: Option<DateTime<Utc>>,
) -> Option<DateTime<Utc>> {
    let due = latest_due(schedule, tz, now)?;
    match last_run {
        Some(last) if last >= due => None,
        _ => Some(due),
    }
}
