//! Schedules across daylight-saving changes, and the hygiene rules, from plain values.
//!
//! The cron semantics across DST changes (croner's, the same as Vixie cron's):
//! - a daily job whose time falls in the spring-forward gap runs once, at the first valid
//!   time after the gap (02:30 → 03:00);
//! - a daily job whose time occurs twice in the fall-back overlap runs once, at the first;
//! - an hourly job runs once per real hour: the repeated hour twice, the skipped hour not.

use super::*;

fn utc(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn times(cron: &str, tz: &str, after: &str, n: usize) -> Vec<String> {
    occurrences(cron, tz, utc(after), n)
        .iter()
        .map(|z| format!("{} {}", z.timestamp(), z.strftime("%H:%M %Z")))
        .collect()
}

#[test]
fn berlin_daily_run_in_the_spring_gap_runs_once_after_it() {
    assert_eq!(
        times("30 2 * * *", "Europe/Berlin", "2026-03-27T12:00:00Z", 3),
        ["2026-03-28T01:30:00Z 02:30 CET", "2026-03-29T01:00:00Z 03:00 CEST", "2026-03-30T00:30:00Z 02:30 CEST"]
    );
}

#[test]
fn berlin_daily_run_in_the_autumn_overlap_runs_once() {
    assert_eq!(
        times("30 2 * * *", "Europe/Berlin", "2026-10-23T12:00:00Z", 3),
        ["2026-10-24T00:30:00Z 02:30 CEST", "2026-10-25T00:30:00Z 02:30 CEST", "2026-10-26T01:30:00Z 02:30 CET"]
    );
}

#[test]
fn new_york_daily_runs_across_both_changes() {
    assert_eq!(
        times("30 2 * * *", "America/New_York", "2026-03-06T12:00:00Z", 3),
        ["2026-03-07T07:30:00Z 02:30 EST", "2026-03-08T07:00:00Z 03:00 EDT", "2026-03-09T06:30:00Z 02:30 EDT"]
    );
    assert_eq!(
        times("30 1 * * *", "America/New_York", "2026-10-30T12:00:00Z", 3),
        ["2026-10-31T05:30:00Z 01:30 EDT", "2026-11-01T05:30:00Z 01:30 EDT", "2026-11-02T06:30:00Z 01:30 EST"]
    );
}

#[test]
fn hourly_runs_follow_real_hours() {
    assert_eq!(
        times("0 * * * *", "America/New_York", "2026-11-01T03:30:00Z", 4),
        [
            "2026-11-01T04:00:00Z 00:00 EDT",
            "2026-11-01T05:00:00Z 01:00 EDT",
            "2026-11-01T06:00:00Z 01:00 EST",
            "2026-11-01T07:00:00Z 02:00 EST"
        ]
    );
    assert_eq!(
        times("0 * * * *", "Europe/Berlin", "2026-03-28T23:30:00Z", 3),
        ["2026-03-29T00:00:00Z 01:00 CET", "2026-03-29T01:00:00Z 03:00 CEST", "2026-03-29T02:00:00Z 04:00 CEST"]
    );
}

#[test]
fn durations_render_as_promql() {
    assert_eq!(prom_duration(SignedDuration::from_hours(6)), "6h");
    assert_eq!(prom_duration(SignedDuration::from_mins(90)), "90m");
    assert_eq!(prom_duration(SignedDuration::from_secs(45)), "45s");
}
