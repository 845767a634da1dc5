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

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use chrono_tz::America::New_York;
    use chrono_tz::Europe::Berlin;

    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn cron(p: &str) -> Schedule {
        Schedule::parse(p).unwrap()
    }

    /// Every instant the schedule fires in (from, to], as a daemon ticking every minute
    /// would send them.
    fn sends(
        schedule: &Schedule,
        tz: Tz,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Vec<DateTime<Utc>> {
        let mut sent: Vec<DateTime<Utc>> = Vec::new();
        let mut now = from;
        while now <= to {
            if let Some(due) = due_now(schedule, tz, now, sent.last().copied().or(Some(from))) {
                sent.push(due);
            }
            now += chrono::Duration::minutes(1);
        }
        sent
    }

    #[test]
    fn eight_oclock_stays_eight_oclock_across_dst_in_berlin() {
        let s = cron("0 8 * * *");
        assert_eq!(
            next_after(&s, Berlin, at("2026-03-28T12:00:00Z")),
            Some(at("2026-03-29T06:00:00Z")),
            "CEST begins: 08:00 is 06:00Z"
        );
        assert_eq!(
            next_after(&s, Berlin, at("2026-03-27T12:00:00Z")),
            Some(at("2026-03-28T07:00:00Z")),
            "still CET: 07:00Z"
        );
        assert_eq!(
            next_after(&s, Berlin, at("2026-10-24T12:00:00Z")),
            Some(at("2026-10-25T07:00:00Z")),
            "CET again"
        );
    }

    #[test]
    fn eight_oclock_stays_eight_oclock_across_dst_in_new_york() {
        let s = cron("0 8 * * *");
        assert_eq!(
            next_after(&s, New_York, at("2026-03-07T20:00:00Z")),
            Some(at("2026-03-08T12:00:00Z")),
            "EDT: UTC-4"
        );
        assert_eq!(
            next_after(&s, New_York, at("2026-10-31T20:00:00Z")),
            Some(at("2026-11-01T13:00:00Z")),
            "EST: UTC-5"
        );
    }

    #[test]
    fn a_time_skipped_by_spring_forward_still_sends_once_that_day() {
        // 02:30 does not exist on 29 March 2026 in Berlin, nor on 8 March 2026 in New York.
        let s = cron("30 2 * * *");
        for (tz, from, to) in [
            (Berlin, "2026-03-28T12:00:00Z", "2026-03-30T12:00:00Z"),
            (New_York, "2026-03-07T12:00:00Z", "2026-03-09T12:00:00Z"),
        ] {
            let sent = sends(&s, tz, at(from), at(to));
            assert_eq!(sent.len(), 2, "{tz}: {sent:?}");
            let days: Vec<_> = sent
                .iter()
                .map(|t| t.with_timezone(&tz).date_naive())
                .collect();
            assert_ne!(days[0], days[1], "{tz}: one per day: {sent:?}");
        }
    }

    #[test]
    fn a_time_repeated_by_fall_back_sends_once() {
        // 02:30 happens twice on 25 October 2026 in Berlin; 01:30 twice on 1 November 2026
        // in New York.
        for (tz, pattern, from, to) in [
            (
                Berlin,
                "30 2 * * *",
                "2026-10-24T12:00:00Z",
                "2026-10-26T12:00:00Z",
            ),
            (
                New_York,
                "30 1 * * *",
                "2026-10-31T12:00:00Z",
                "2026-11-02T12:00:00Z",
            ),
            // New York repeats 01:00-02:00, so its 02:30 happens once and is sent once.
            (
                New_York,
                "30 2 * * *",
                "2026-10-31T12:00:00Z",
                "2026-11-02T12:00:00Z",
            ),
            (
                Berlin,
                "0 8 * * *",
                "2026-10-24T12:00:00Z",
                "2026-10-26T12:00:00Z",
            ),
            (
                New_York,
                "0 8 * * *",
                "2026-10-31T14:00:00Z",
                "2026-11-02T14:00:00Z",
            ),
        ] {
            let sent = sends(&cron(pattern), tz, at(from), at(to));
            assert_eq!(sent.len(), 2, "{tz}: one on each of two days: {sent:?}");
        }
    }

    #[test]
    fn month_ends_and_leap_days() {
        let last = cron("0 8 L * *");
        assert_eq!(
            next_after(&last, Berlin, at("2026-02-01T00:00:00Z")),
            Some(at("2026-02-28T07:00:00Z"))
        );
        assert_eq!(
            next_after(&last, Berlin, at("2028-02-01T00:00:00Z")),
            Some(at("2028-02-29T07:00:00Z")),
            "leap year"
        );
        let thirty_first = cron("0 8 31 * *");
        assert_eq!(
            next_after(&thirty_first, Berlin, at("2026-01-31T12:00:00Z")),
            Some(at("2026-03-31T06:00:00Z")),
            "February and its lack of a 31st are skipped"
        );
        let leap_day = cron("0 8 29 2 *");
        assert_eq!(
            next_after(&leap_day, Berlin, at("2026-01-01T00:00:00Z")),
            Some(at("2028-02-29T07:00:00Z"))
        );
    }

    #[test]
    fn after_a_week_down_one_digest_is_sent_not_seven() {
        let daily = cron("0 8 * * *");
        let last_run = at("2026-11-02T07:00:00Z");
        let now = at("2026-11-09T09:30:00Z"); // a week later, 10:30 Berlin
        assert_eq!(
            due_now(&daily, Berlin, now, Some(last_run)),
            Some(at("2026-11-09T07:00:00Z"))
        );
        // and once sent, nothing more is due that day
        assert_eq!(
            due_now(&daily, Berlin, now, Some(at("2026-11-09T07:00:00Z"))),
            None
        );
        let weekly = cron("0 8 * * Mon");
        assert_eq!(
            due_now(
                &weekly,
                Berlin,
                at("2026-11-30T08:00:00Z"),
                Some(at("2026-11-02T07:00:00Z"))
            ),
            Some(at("2026-11-30T07:00:00Z"))
        );
    }

    #[test]
    fn nothing_is_due_before_the_first_instant_or_twice() {
        let weekly = cron("0 8 * * Mon");
        let now = Berlin
            .with_ymd_and_hms(2026, 11, 30, 7, 59, 0)
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            due_now(&weekly, Berlin, now, Some(at("2026-11-23T07:00:00Z"))),
            None
        );
        let now = now + chrono::Duration::minutes(1);
        assert_eq!(
            due_now(&weekly, Berlin, now, Some(at("2026-11-23T07:00:00Z"))),
            Some(now)
        );
        assert_eq!(due_now(&weekly, Berlin, now, Some(now)), None);
    }

    #[test]
    fn six_field_schedules_have_seconds() {
        let s = cron("30 0 8 * * *");
        assert_eq!(
            next_after(&s, Berlin, at("2026-11-28T00:00:00Z")),
            Some(at("2026-11-28T07:00:30Z"))
        );
    }
}
