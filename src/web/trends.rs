//! Drift over time, DORA-style: open drifts per target per day, drifts opened per week, mean
//! time to resolve, and the share of time each target was in sync. Computed from the store's
//! history ([`crate::store::DriftInterval`], [`crate::store::ScanPoint`]) by the pure
//! [`compute`]; served as the `/trends` page, as `GET /api/v1/trends` (these types are its
//! JSON, `#/components/schemas/Trends`) and as the `envdrift_trend_*` gauges.
//!
//! Definitions (docs/web.md):
//! - *open on a day*: open at the end of that day (UTC; today: now);
//! - *opened per week*: `opened` events (first seen, or seen again after being resolved) per
//!   ISO week (Monday to Sunday, UTC) in the window;
//! - *mean time to resolve*: over the drift intervals resolved in the window, the mean of
//!   resolved − opened;
//! - *in-sync share*: from each finished scan to the next, the target is in sync when the
//!   scan succeeded with no drift, drifted when it found drift, and unknown when it failed
//!   (or was partial with no drift); the share is in-sync time over known time in the window.

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use serde::Serialize;

use crate::store::{DriftInterval, ScanOutcome, ScanPoint};

/// `GET /api/v1/trends` (`#/components/schemas/Trends`).
#[derive(Debug, Clone, Serialize)]
pub struct Trends {
    /// Days in the window (today included).
    pub days: u32,
    /// Start of the window (RFC 3339, midnight UTC of its first day).
    pub from: String,
    pub targets: Vec<TargetTrend>,
    /// End of the window: when this was computed (RFC 3339).
    pub to: String,
}

/// The trends of one environment or comparison (`#/components/schemas/TargetTrend`).
#[derive(Debug, Clone, Serialize)]
pub struct TargetTrend {
    /// Share of the known time in the window the target was in sync (0 to 1); null when no
    /// scan says anything about the window.
    pub in_sync_share: Option<f64>,
    /// `environment` or `comparison`.
    pub kind: &'static str,
    /// Mean time to resolve, seconds, over the drifts resolved in the window; null when none
    /// was.
    pub mttr_seconds: Option<f64>,
    pub name: String,
    /// Open drifts at the end of each day of the window, oldest first.
    pub open_per_day: Vec<DayCount>,
    /// Drifts opened in the window.
    pub opened: usize,
    /// Drifts opened in the last 7 days.
    pub opened_last_7d: usize,
    /// Drifts opened per ISO week of the window, oldest first.
    pub opened_per_week: Vec<WeekCount>,
    /// Drifts resolved in the window.
    pub resolved: usize,
}

/// Open drifts at the end of a day (`#/components/schemas/DayCount`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DayCount {
    /// `YYYY-MM-DD` (UTC).
    pub day: String,
    pub open: usize,
}

/// Drifts opened in an ISO week (`#/components/schemas/WeekCount`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WeekCount {
    pub opened: usize,
    /// `YYYY-Www` (ISO 8601 week).
    pub week: String,
}

/// Longest window, in days.
pub const MAX_DAYS: u32 = 366;

fn parse(t: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(t)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn midnight(d: NaiveDate) -> DateTime<Utc> {
    Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0).unwrap_or_default())
}

fn iso_week(t: DateTime<Utc>) -> String {
    let w = t.iso_week();
    format!("{}-W{:02}", w.year(), w.week())
}

/// The start of the window of `days` days ending `now` (midnight UTC of its first day).
pub fn window_start(now: DateTime<Utc>, days: u32) -> DateTime<Utc> {
    let days = days.clamp(1, MAX_DAYS);
    midnight(now.date_naive() - Duration::days(i64::from(days) - 1))
}

/// Computes the trends of `targets` (`(name, kind)`) over the `days` days ending `now`
/// (clamped to 1..=[`MAX_DAYS`]) from the intervals and scans the store returned for the
/// window. Times that do not parse are skipped.
pub fn compute(
    targets: &[(String, &'static str)],
    intervals: &[DriftInterval],
    scans: &[ScanPoint],
    now: DateTime<Utc>,
    days: u32,
) -> Trends {
    let days = days.clamp(1, MAX_DAYS);
    let from = window_start(now, days);
    let day_ends: Vec<(String, DateTime<Utc>)> = (0..days)
        .map(|i| {
            let d = from.date_naive() + Duration::days(i64::from(i));
            let end = midnight(d + Duration::days(1)).min(now);
            (d.format("%Y-%m-%d").to_string(), end)
        })
        .collect();
    let mut weeks: Vec<String> = Vec::new();
    for (_, end) in &day_ends {
        let w = iso_week(*end - Duration::milliseconds(1));
        if weeks.last() != Some(&w) {
            weeks.push(w);
        }
    }
    let week_ago = now - Duration::days(7);
    let out = targets
        .iter()
        .map(|(name, kind)| {
            let ivs: Vec<(DateTime<Utc>, Option<DateTime<Utc>>)> = intervals
                .iter()
                .filter(|i| &i.target == name)
                .filter_map(|i| {
                    let o = parse(&i.opened_at)?;
                    let r = match &i.resolved_at {
                        Some(r) => Some(parse(r)?),
                        None => None,
                    };
                    Some((o, r))
                })
                .collect();
            let open_per_day = day_ends
                .iter()
                .map(|(day, end)| DayCount {
                    day: day.clone(),
                    open: ivs
                        .iter()
                        .filter(|(o, r)| o <= end && r.is_none_or(|r| r > *end))
                        .count(),
                })
                .collect();
            let opened_in: Vec<DateTime<Utc>> = ivs
                .iter()
                .map(|(o, _)| *o)
                .filter(|o| *o >= from && *o <= now)
                .collect();
            let opened_per_week = weeks
                .iter()
                .map(|w| WeekCount {
                    week: w.clone(),
                    opened: opened_in.iter().filter(|o| &iso_week(**o) == w).count(),
                })
                .collect();
            let resolved: Vec<f64> = ivs
                .iter()
                .filter_map(|(o, r)| r.filter(|r| *r >= from && *r <= now).map(|r| (*o, r)))
                .map(|(o, r)| (r - o).num_milliseconds().max(0) as f64 / 1000.0)
                .collect();
            let mttr_seconds = (!resolved.is_empty())
                .then(|| resolved.iter().sum::<f64>() / resolved.len() as f64);
            TargetTrend {
                in_sync_share: in_sync_share(scans.iter().filter(|s| &s.target == name), from, now),
                kind,
                mttr_seconds,
                name: name.clone(),
                open_per_day,
                opened: opened_in.len(),
                opened_last_7d: opened_in.iter().filter(|o| **o >= week_ago).count(),
                opened_per_week,
                resolved: resolved.len(),
            }
        })
        .collect();
    Trends {
        days,
        from: crate::store::fmt_time(from),
        targets: out,
        to: crate::store::fmt_time(now),
    }
}

/// In-sync time over known time in `[from, now]`, from a target's scans in time order.
fn in_sync_share<'a>(
    scans: impl Iterator<Item = &'a ScanPoint>,
    from: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<f64> {
    let pts: Vec<(DateTime<Utc>, Option<bool>)> = scans
        .filter_map(|s| {
            let t = parse(&s.finished_at)?;
            let state = match (s.outcome, s.drifts) {
                (ScanOutcome::Ok, 0) => Some(true),
                (ScanOutcome::Ok | ScanOutcome::Partial, n) if n > 0 => Some(false),
                _ => None,
            };
            Some((t, state))
        })
        .collect();
    let (mut sync_ms, mut known_ms) = (0i64, 0i64);
    for (k, (t, state)) in pts.iter().enumerate() {
        let start = (*t).max(from);
        let end = pts.get(k + 1).map_or(now, |(n, _)| *n).min(now);
        if end <= start {
            continue;
        }
        let ms = (end - start).num_milliseconds();
        match state {
            Some(true) => {
                sync_ms = sync_ms.saturating_add(ms);
                known_ms = known_ms.saturating_add(ms);
            }
            Some(false) => known_ms = known_ms.saturating_add(ms),
            None => {}
        }
    }
    (known_ms > 0).then(|| sync_ms as f64 / known_ms as f64)
}

/// Sets the `envdrift_trend_*` gauges from `t` (the daemon's metrics; `/metrics` calls this
/// with 30-day trends). A gauge whose figure is unknown (no drift resolved, no scan) is left
/// out rather than reported as zero.
pub fn set_gauges(m: &crate::daemon::metrics::Metrics, t: &Trends) {
    use crate::daemon::metrics::TargetLabels;
    m.trend_mttr.clear();
    m.trend_in_sync.clear();
    m.trend_opened_7d.clear();
    for x in &t.targets {
        let l = TargetLabels {
            target: x.name.clone(),
        };
        if let Some(v) = x.mttr_seconds {
            m.trend_mttr.get_or_create(&l).set(v);
        }
        if let Some(v) = x.in_sync_share {
            m.trend_in_sync.get_or_create(&l).set(v);
        }
        m.trend_opened_7d
            .get_or_create(&l)
            .set(i64::try_from(x.opened_last_7d).unwrap_or(i64::MAX));
    }
}

/// A duration in seconds in words: `45 s`, `12 min`, `3.5 h`, `2.1 d`.
pub fn human_seconds(s: f64) -> String {
    if !s.is_finite() || s < 0.0 {
        return "—".into();
    }
    if s < 60.0 {
        format!("{} s", s.round())
    } else if s < 3600.0 {
        format!("{} min", (s / 60.0).round())
    } else if s < 86400.0 {
        format!("{} h", super::svg::fmt_num((s / 360.0).round() / 10.0))
    } else {
        format!("{} d", super::svg::fmt_num((s / 8640.0).round() / 10.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> String {
        s.to_string()
    }

    fn iv(id: i64, target: &str, o: &str, r: Option<&str>) -> DriftInterval {
        DriftInterval {
            drift_id: id,
            target: target.into(),
            opened_at: t(o),
            resolved_at: r.map(t),
        }
    }

    fn scan(target: &str, at: &str, outcome: ScanOutcome, drifts: i64) -> ScanPoint {
        ScanPoint {
            target: target.into(),
            finished_at: t(at),
            outcome,
            drifts,
        }
    }

    fn now() -> DateTime<Utc> {
        parse("2026-12-04T12:00:00.000Z").unwrap()
    }

    #[test]
    fn open_per_day_counts_at_each_day_end() {
        let targets = vec![(t("prod"), "environment"), (t("staging"), "environment")];
        let ivs = [
            // Opened before the window, resolved on Dec 3.
            iv(
                1,
                "prod",
                "2026-11-01T00:00:00.000Z",
                Some("2026-12-03T10:00:00.000Z"),
            ),
            // Opened Dec 2, still open.
            iv(2, "prod", "2026-12-02T08:00:00.000Z", None),
            // Opened and resolved on Dec 4 before noon: not open at today's end (now).
            iv(
                3,
                "prod",
                "2026-12-04T01:00:00.000Z",
                Some("2026-12-04T03:00:00.000Z"),
            ),
        ];
        let tr = compute(&targets, &ivs, &[], now(), 4);
        assert_eq!(tr.from, "2026-12-01T00:00:00.000Z");
        let prod = &tr.targets[0];
        let per_day: Vec<(&str, usize)> = prod
            .open_per_day
            .iter()
            .map(|d| (d.day.as_str(), d.open))
            .collect();
        assert_eq!(
            per_day,
            [
                ("2026-12-01", 1),
                ("2026-12-02", 2),
                ("2026-12-03", 1),
                ("2026-12-04", 1)
            ]
        );
        assert_eq!((prod.opened, prod.resolved, prod.opened_last_7d), (2, 2, 2));
        // (Dec 3 10:00 − Nov 1 00:00 = 32 d 10 h) and 2 h: mean of 2,800,800 s and 7,200 s.
        assert_eq!(prod.mttr_seconds, Some((2_800_800.0 + 7_200.0) / 2.0));
        // Dec 1 2026 is a Tuesday of ISO week 49.
        assert_eq!(
            prod.opened_per_week,
            [WeekCount {
                week: t("2026-W49"),
                opened: 2
            }]
        );
        let staging = &tr.targets[1];
        assert!(staging.open_per_day.iter().all(|d| d.open == 0));
        assert_eq!(staging.mttr_seconds, None);
        assert_eq!(staging.in_sync_share, None);
    }

    #[test]
    fn weeks_span_the_window() {
        let tr = compute(&[(t("p"), "environment")], &[], &[], now(), 30);
        let weeks: Vec<&str> = tr.targets[0]
            .opened_per_week
            .iter()
            .map(|w| w.week.as_str())
            .collect();
        assert_eq!(weeks.first(), Some(&"2026-W45"));
        assert_eq!(weeks.last(), Some(&"2026-W49"));
        assert_eq!(tr.targets[0].open_per_day.len(), 30);
        assert_eq!(compute(&[], &[], &[], now(), 0).days, 1);
        assert_eq!(compute(&[], &[], &[], now(), 100_000).days, MAX_DAYS);
    }

    #[test]
    fn in_sync_share_weighs_time_and_skips_failed_scans() {
        // Window Dec 4 00:00 – 12:00. Before it: in sync (from the last scan before).
        // 00:00–03:00 in sync, 03:00–06:00 drifted, 06:00–09:00 unknown (failed), 09:00–12:00
        // in sync: 6 h in sync of 9 h known.
        let scans = [
            scan("p", "2026-12-03T20:00:00.000Z", ScanOutcome::Ok, 0),
            scan("p", "2026-12-04T03:00:00.000Z", ScanOutcome::Ok, 2),
            scan("p", "2026-12-04T06:00:00.000Z", ScanOutcome::Failed, 0),
            scan("p", "2026-12-04T09:00:00.000Z", ScanOutcome::Ok, 0),
        ];
        let tr = compute(&[(t("p"), "environment")], &[], &scans, now(), 1);
        let share = tr.targets[0].in_sync_share.unwrap();
        assert!((share - 6.0 / 9.0).abs() < 1e-9, "{share}");
    }

    #[test]
    fn durations_in_words() {
        assert_eq!(human_seconds(42.0), "42 s");
        assert_eq!(human_seconds(600.0), "10 min");
        assert_eq!(human_seconds(5400.0), "1.5 h");
        assert_eq!(human_seconds(2.5 * 86400.0), "2.5 d");
    }
}
