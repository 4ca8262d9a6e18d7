//! History reads for trends (the web page's `/trends`, `/api/v1/trends`, the trend gauges):
//! when each drift was open ([`StoreReader::drift_intervals`]) and how each scan ended
//! ([`StoreReader::scan_points`]). Read-only; no schema change: both come from the
//! `drift_events` and `scans` tables every scan already writes.

use super::sql::{Exec, SqlError, args};

use super::{DriftStatus, EventKind, ScanOutcome, StoreError, StoreReader};

/// One stretch of time a drift was open: from an `opened` event to the next `resolved` one
/// (`None` while still open).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriftInterval {
    pub drift_id: i64,
    pub target: String,
    /// RFC 3339.
    pub opened_at: String,
    /// RFC 3339; `None` while open.
    pub resolved_at: Option<String>,
}

/// A finished scan, for the share of time in sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanPoint {
    pub target: String,
    /// RFC 3339.
    pub finished_at: String,
    pub outcome: ScanOutcome,
    /// Drifts the scan found.
    pub drifts: i64,
}

impl StoreReader {
    /// Every interval during which a drift was open that overlaps `[since, now]`, ordered by
    /// drift and time.
    ///
    /// # Errors
    /// [`StoreError::Query`] naming the database file.
    pub fn drift_intervals(&self, since: &str) -> Result<Vec<DriftInterval>, StoreError> {
        let ctx = "reading drift history for trends";
        // The drifts with an event in the window, or still open (opened before it).
        let rows = self
            .db
            .with(|c| {
                c.query(
                    "SELECT e.drift_id, d.target, e.at, e.event FROM drift_events e
                     JOIN drifts d ON d.id = e.drift_id
                     WHERE e.event IN (?2, ?3)
                       AND (e.drift_id IN (SELECT drift_id FROM drift_events WHERE at >= ?1)
                            OR d.status = ?4)
                     ORDER BY e.drift_id, e.id",
                    args![
                        since,
                        EventKind::Opened,
                        EventKind::Resolved,
                        DriftStatus::Open
                    ],
                )?
                .iter()
                .map(|r| {
                    Ok((
                        r.get::<i64>(0)?,
                        r.get::<String>(1)?,
                        r.get::<String>(2)?,
                        r.get::<EventKind>(3)?,
                    ))
                })
                .collect::<Result<Vec<_>, SqlError>>()
            })
            .map_err(self.db.err(ctx))?;
        let mut out: Vec<DriftInterval> = Vec::new();
        for (drift_id, target, at, event) in rows {
            match event {
                EventKind::Opened => out.push(DriftInterval {
                    drift_id,
                    target,
                    opened_at: at,
                    resolved_at: None,
                }),
                _ => {
                    if let Some(last) = out.last_mut()
                        && last.drift_id == drift_id
                        && last.resolved_at.is_none()
                    {
                        last.resolved_at = Some(at);
                    }
                }
            }
        }
        // Intervals that ended before the window are not part of it.
        out.retain(|i| i.resolved_at.as_deref().is_none_or(|r| r >= since));
        Ok(out)
    }

    /// The finished scans since `since`, and for each target the last one before it (the
    /// state the window starts in), ordered by target and time.
    ///
    /// # Errors
    /// [`StoreError::Query`] naming the database file.
    pub fn scan_points(&self, since: &str) -> Result<Vec<ScanPoint>, StoreError> {
        let ctx = "reading scans for trends";
        self.db
            .with(|c| {
                c.query(
                    "SELECT target, finished_at, outcome, drifts FROM scans
                     WHERE finished_at IS NOT NULL AND outcome != ?2
                       AND (finished_at >= ?1 OR id IN (
                            SELECT MAX(id) FROM scans
                            WHERE finished_at IS NOT NULL AND finished_at < ?1 AND outcome != ?2
                            GROUP BY target))
                     ORDER BY target, finished_at, id",
                    args![since, ScanOutcome::Running],
                )?
                .iter()
                .map(|r| {
                    Ok(ScanPoint {
                        target: r.get(0)?,
                        finished_at: r.get(1)?,
                        outcome: r.get(2)?,
                        drifts: r.get(3)?,
                    })
                })
                .collect::<Result<Vec<_>, SqlError>>()
            })
            .map_err(self.db.err(ctx))
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{nd, ok_end};
    use super::super::*;
    use crate::model::Severity;

    #[test]
    fn intervals_pair_opened_and_resolved_and_reopened() {
        for s in crate::store::tests::stores("intervals_pair_opened_and_resolved_and_reopened") {
            let scan = s.start_scan("prod", ScanKind::Environment).unwrap();
            s.record_scan(
                scan,
                "prod",
                &ok_end(),
                &[
                    DriftWrite::Open(nd("a", "f1", Severity::Low)),
                    DriftWrite::Open(nd("b", "f2", Severity::High)),
                ],
                &[],
            )
            .unwrap();
            let open = s.open_drifts("prod").unwrap();
            let (a, b) = (open[0].id, open[1].id);
            s.ack(a, "alice").unwrap();
            let scan2 = s.start_scan("prod", ScanKind::Environment).unwrap();
            s.record_scan(
                scan2,
                "prod",
                &ScanEnd {
                    drifts: 1,
                    ..ok_end()
                },
                &[DriftWrite::Resolve { id: a }],
                &[],
            )
            .unwrap();
            let scan3 = s.start_scan("prod", ScanKind::Environment).unwrap();
            s.record_scan(
                scan3,
                "prod",
                &ok_end(),
                &[DriftWrite::Open(nd("a", "f3", Severity::Low))],
                &[],
            )
            .unwrap();
            let iv = s.drift_intervals("2000-01-01T00:00:00.000Z").unwrap();
            let of_a: Vec<_> = iv.iter().filter(|i| i.drift_id == a).collect();
            assert_eq!(of_a.len(), 2, "{iv:?}");
            assert!(of_a[0].resolved_at.is_some());
            assert!(of_a[1].resolved_at.is_none());
            let of_b: Vec<_> = iv.iter().filter(|i| i.drift_id == b).collect();
            assert_eq!((of_b.len(), of_b[0].resolved_at.clone()), (1, None));
            // A window that starts in the future keeps only what is still open.
            let later = s.drift_intervals("2999-01-01T00:00:00.000Z").unwrap();
            assert_eq!(later.len(), 2, "{later:?}");
            assert!(later.iter().all(|i| i.resolved_at.is_none()));

            let pts = s.scan_points("2000-01-01T00:00:00.000Z").unwrap();
            assert_eq!(pts.iter().map(|p| p.drifts).collect::<Vec<_>>(), [0, 1, 0]);
            // From the future: only the last scan before it, per target.
            let pts = s.scan_points("2999-01-01T00:00:00.000Z").unwrap();
            assert_eq!(pts.len(), 1);
            // A running scan is never a point.
            s.start_scan("prod", ScanKind::Environment).unwrap();
            assert_eq!(s.scan_points("2000-01-01T00:00:00.000Z").unwrap().len(), 3);
        }
    }
}
