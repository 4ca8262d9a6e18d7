//! Drifts: the lifecycle writes of a scan ([`Store::record_scan`]), drift queries, ack and
//! silence, and each drift's history events.

use serde_json::Value;

use super::sql::{Exec, Row, SqlError, Value as Value2, args};

use super::{
    DriftStatus, EventKind, OutboxWrite, ScanEnd, Store, StoreError, StoreReader, now_rfc3339,
    parse_text, severity_rank,
};
use crate::model::Severity;

/// A drift as stored, with its lifecycle.
#[derive(Debug, Clone, PartialEq)]
pub struct DriftRecord {
    pub id: i64,
    pub target: String,
    pub identity: String,
    pub fingerprint: String,
    pub resource: String,
    pub drift_type: String,
    pub severity: Severity,
    pub categories: Vec<String>,
    pub status: DriftStatus,
    pub first_seen: String,
    pub last_seen: String,
    pub changed_at: String,
    pub resolved_at: Option<String>,
    pub acked_at: Option<String>,
    pub acked_by: Option<String>,
    pub silenced_until: Option<String>,
    pub silence_reason: Option<String>,
    pub last_reminded_at: Option<String>,
    /// The drift as the JSON output shows it (`report::json::drift`).
    pub body: Value,
}

/// A history event of a drift.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRecord {
    pub at: String,
    pub event: EventKind,
    pub fingerprint: Option<String>,
    pub severity: Option<Severity>,
    pub scan_id: Option<i64>,
    pub detail: Option<String>,
}

/// A drift write in a scan transaction (see [`Store::record_scan`]).
#[derive(Debug, Clone, PartialEq)]
pub enum DriftWrite {
    /// First seen (or seen again after it was resolved).
    Open(NewDrift),
    /// Same identity, new fingerprint (new live value).
    Change {
        id: i64,
        new: NewDrift,
        escalated: bool,
    },
    /// Seen again unchanged.
    Seen { id: i64 },
    /// Gone in this (successful) scan.
    Resolve { id: i64 },
    /// A reminder was queued for it.
    Reminded { id: i64 },
}

/// The fields of a drift to store.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDrift {
    pub identity: String,
    pub fingerprint: String,
    pub resource: String,
    pub drift_type: String,
    pub severity: Severity,
    pub categories: Vec<String>,
    pub body: Value,
}

/// Filters of [`StoreReader::list_drifts`].
#[derive(Debug, Clone, Default)]
pub struct DriftFilter {
    pub target: Option<String>,
    /// `None` for all.
    pub status: Option<DriftStatus>,
    pub min_severity: Option<Severity>,
    pub category: Option<String>,
    /// Return drifts with id greater than this (cursor pagination).
    pub after_id: Option<i64>,
    pub limit: usize,
}

/// One open drift, for counts (metrics, the environments API, exit codes).
#[derive(Debug, Clone, PartialEq)]
pub struct OpenCount {
    pub target: String,
    pub severity: Severity,
    pub categories: Vec<String>,
}

const SEVERITIES: &[&str] = &["critical", "high", "medium", "low", "info"];

pub(super) fn severity_of(r: &Row, idx: &str) -> Result<Severity, SqlError> {
    parse_text(r, idx, "drifts.severity", SEVERITIES)
}

pub(super) fn row_to_drift(r: &Row) -> Result<DriftRecord, SqlError> {
    let categories: String = r.get("categories")?;
    let body: String = r.get("body")?;
    Ok(DriftRecord {
        id: r.get("id")?,
        target: r.get("target")?,
        identity: r.get("identity")?,
        fingerprint: r.get("fingerprint")?,
        resource: r.get("resource")?,
        drift_type: r.get("drift_type")?,
        severity: severity_of(r, "severity")?,
        categories: serde_json::from_str(&categories).unwrap_or_default(),
        status: r.get("status")?,
        first_seen: r.get("first_seen")?,
        last_seen: r.get("last_seen")?,
        changed_at: r.get("changed_at")?,
        resolved_at: r.get("resolved_at")?,
        acked_at: r.get("acked_at")?,
        acked_by: r.get("acked_by")?,
        silenced_until: r.get("silenced_until")?,
        silence_reason: r.get("silence_reason")?,
        last_reminded_at: r.get("last_reminded_at")?,
        body: serde_json::from_str(&body).unwrap_or(Value::Null),
    })
}

pub(super) const DRIFT_COLUMNS: &str = "id, target, identity, fingerprint, resource, drift_type, severity, categories, status, first_seen, last_seen, changed_at, resolved_at, acked_at, acked_by, silenced_until, silence_reason, last_reminded_at, body";

fn event(
    tx: &mut impl Exec,
    drift_id: i64,
    event: EventKind,
    fingerprint: Option<&str>,
    severity: Option<&str>,
    scan_id: i64,
    at: &str,
) -> Result<u64, SqlError> {
    tx.execute(
        "INSERT INTO drift_events(drift_id, at, event, fingerprint, severity, scan_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        args![drift_id, at, event, fingerprint, severity, scan_id],
    )
}

impl Store {
    /// Records a scan's end, its drift lifecycle writes and the alerts they cause, in one
    /// transaction. A failed scan passes no drift writes: it never resolves anything.
    pub fn record_scan(
        &self,
        scan_id: i64,
        target: &str,
        end: &ScanEnd,
        drifts: &[DriftWrite],
        outbox: &[OutboxWrite],
    ) -> Result<(), StoreError> {
        let db = self.db();
        let now = now_rfc3339();
        db.tx("committing a scan", |tx| {
            if let Some((hash, objects)) = &end.snapshot {
                tx.execute(
                    "INSERT INTO snapshots(hash, created_at, objects) VALUES (?1, ?2, ?3)
                     ON CONFLICT(hash) DO NOTHING",
                    args![hash, &now, objects],
                )
                .map_err(db.err("storing the snapshot hashes"))?;
            }
            tx.execute(
                "UPDATE scans SET finished_at = ?2, outcome = ?3, error = ?4, revision = ?5, objects = ?6,
                    drifts = ?7, duration_ms = ?8, snapshot_hash = ?9 WHERE id = ?1",
                args![
                    scan_id,
                    &now,
                    end.outcome,
                    &end.error,
                    &end.revision,
                    end.objects,
                    end.drifts,
                    end.duration_ms,
                    end.snapshot.as_ref().map(|s| s.0.clone()),
                ],
            )
            .map_err(db.err("finishing a scan"))?;
            for w in drifts {
                write_drift(tx, db, w, target, scan_id, &now)?;
            }
            for o in outbox {
                super::outbox::insert(tx, o, &now).map_err(db.err("queueing an alert"))?;
            }
            Ok(())
        })
    }

    /// Acknowledges a drift: no reminders or escalations until its live value changes.
    pub fn ack(&self, id: i64, by: &str) -> Result<(), StoreError> {
        self.act_on_drift(id, super::DriftAction::Acknowledge { by }, |_, _, _| {
            Vec::new()
        })
        .map(drop)
    }

    /// Silences a drift's alerts until `until` (RFC 3339).
    pub fn silence(&self, id: i64, until: &str, reason: &str) -> Result<(), StoreError> {
        self.act_on_drift(
            id,
            super::DriftAction::Silence { until, reason },
            |_, _, _| Vec::new(),
        )
        .map(drop)
    }
}

/// One drift lifecycle write of [`Store::record_scan`].
fn write_drift(
    tx: &mut impl Exec,
    db: &super::Db,
    w: &DriftWrite,
    target: &str,
    scan_id: i64,
    now: &str,
) -> Result<(), StoreError> {
    match w {
        DriftWrite::Open(n) => {
            let cats = serde_json::to_string(&n.categories).unwrap_or_default();
            let body = n.body.to_string();
            let id: i64 = tx
                .query_value(
                    "INSERT INTO drifts(target, identity, fingerprint, resource, drift_type, severity,
                        severity_rank, categories, status, first_seen, last_seen, changed_at, last_scan_id, body)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?12, ?9, ?9, ?9, ?10, ?11)
                     ON CONFLICT(target, identity) DO UPDATE SET
                        fingerprint = excluded.fingerprint, resource = excluded.resource,
                        drift_type = excluded.drift_type, severity = excluded.severity,
                        severity_rank = excluded.severity_rank, categories = excluded.categories,
                        status = excluded.status, first_seen = excluded.first_seen, last_seen = excluded.last_seen,
                        changed_at = excluded.changed_at, resolved_at = NULL, acked_at = NULL, acked_by = NULL,
                        last_reminded_at = NULL, last_scan_id = excluded.last_scan_id, body = excluded.body
                     RETURNING id",
                    args![
                        target,
                        &n.identity,
                        &n.fingerprint,
                        &n.resource,
                        &n.drift_type,
                        n.severity.as_str(),
                        severity_rank(n.severity),
                        cats,
                        now,
                        scan_id,
                        body,
                        DriftStatus::Open
                    ],
                )
                .map_err(db.err("opening a drift"))?;
            event(
                tx,
                id,
                EventKind::Opened,
                Some(&n.fingerprint),
                Some(n.severity.as_str()),
                scan_id,
                now,
            )
            .map_err(db.err("recording a drift event"))?;
        }
        DriftWrite::Change { id, new, escalated } => {
            let cats = serde_json::to_string(&new.categories).unwrap_or_default();
            tx.execute(
                "UPDATE drifts SET fingerprint = ?2, resource = ?3, severity = ?4, severity_rank = ?5,
                    categories = ?6, last_seen = ?7, changed_at = ?7, last_scan_id = ?8, body = ?9,
                    acked_at = NULL, acked_by = NULL WHERE id = ?1",
                args![
                    id,
                    &new.fingerprint,
                    &new.resource,
                    new.severity.as_str(),
                    severity_rank(new.severity),
                    cats,
                    now,
                    scan_id,
                    new.body.to_string()
                ],
            )
            .map_err(db.err("updating a drift"))?;
            let ev = if *escalated {
                EventKind::Escalated
            } else {
                EventKind::Changed
            };
            event(
                tx,
                *id,
                ev,
                Some(&new.fingerprint),
                Some(new.severity.as_str()),
                scan_id,
                now,
            )
            .map_err(db.err("recording a drift event"))?;
        }
        DriftWrite::Seen { id } => {
            tx.execute(
                "UPDATE drifts SET last_seen = ?2, last_scan_id = ?3 WHERE id = ?1",
                args![id, now, scan_id],
            )
            .map_err(db.err("updating a drift"))?;
        }
        DriftWrite::Resolve { id } => {
            tx.execute(
                "UPDATE drifts SET status = ?4, resolved_at = ?2, last_scan_id = ?3 WHERE id = ?1",
                args![id, now, scan_id, DriftStatus::Resolved],
            )
            .map_err(db.err("resolving a drift"))?;
            event(tx, *id, EventKind::Resolved, None, None, scan_id, now)
                .map_err(db.err("recording a drift event"))?;
        }
        DriftWrite::Reminded { id } => {
            tx.execute(
                "UPDATE drifts SET last_reminded_at = ?2 WHERE id = ?1",
                args![id, now],
            )
            .map_err(db.err("recording a reminder"))?;
        }
    }
    Ok(())
}

impl StoreReader {
    /// Open drifts of a target.
    pub fn open_drifts(&self, target: &str) -> Result<Vec<DriftRecord>, StoreError> {
        self.db
            .with(|c| {
                c.query(
                    &format!(
                        "SELECT {DRIFT_COLUMNS} FROM drifts WHERE target = ?1 AND status = ?2 ORDER BY id"
                    ),
                    args![target, DriftStatus::Open],
                )?
                .iter()
                .map(row_to_drift)
                .collect::<Result<Vec<_>, SqlError>>()
            })
            .map_err(self.db.err("listing open drifts"))
    }

    /// Drifts by filter, ordered by id (cursor pagination with `after_id`).
    pub fn list_drifts(&self, f: &DriftFilter) -> Result<Vec<DriftRecord>, StoreError> {
        let mut sql = format!("SELECT {DRIFT_COLUMNS} FROM drifts WHERE id > ?1");
        let mut args: Vec<Value2> = vec![Value2::from(f.after_id.unwrap_or(0))];
        if let Some(t) = &f.target {
            args.push(t.into());
            sql.push_str(&format!(" AND target = ?{}", args.len()));
        }
        if let Some(s) = &f.status {
            args.push(s.into());
            sql.push_str(&format!(" AND status = ?{}", args.len()));
        }
        if let Some(s) = f.min_severity {
            args.push(severity_rank(s).into());
            sql.push_str(&format!(" AND severity_rank >= ?{}", args.len()));
        }
        if let Some(c) = &f.category {
            args.push(format!("%\"{c}\"%").into());
            sql.push_str(&format!(" AND categories LIKE ?{}", args.len()));
        }
        let limit = if f.limit == 0 { 100 } else { f.limit.min(1000) };
        sql.push_str(&format!(" ORDER BY id LIMIT {limit}"));
        self.db
            .with(|c| {
                c.query(&sql, &args)?
                    .iter()
                    .map(row_to_drift)
                    .collect::<Result<Vec<_>, SqlError>>()
            })
            .map_err(self.db.err("listing drifts"))
    }

    /// One drift with its history.
    pub fn drift(&self, id: i64) -> Result<(DriftRecord, Vec<EventRecord>), StoreError> {
        let d = self
            .db
            .with(|c| {
                c.query_opt(
                    &format!("SELECT {DRIFT_COLUMNS} FROM drifts WHERE id = ?1"),
                    args![id],
                )?
                .map(|r| row_to_drift(&r))
                .transpose()
            })
            .map_err(self.db.err("reading a drift"))?
            .ok_or_else(|| self.db.not_found("drift", id))?;
        let events = self
            .db
            .with(|c| {
                c.query(
                    "SELECT at, event, fingerprint, severity, scan_id, detail FROM drift_events WHERE drift_id = ?1 ORDER BY id",
                    args![id],
                )?
                .iter()
                .map(|r| {
                    let severity = match r.get::<Option<String>>(3)? {
                        None => None,
                        Some(_) => Some(parse_text(
                            r,
                            "severity",
                            "drift_events.severity",
                            SEVERITIES,
                        )?),
                    };
                    Ok(EventRecord {
                        at: r.get(0)?,
                        event: r.get(1)?,
                        fingerprint: r.get(2)?,
                        severity,
                        scan_id: r.get(4)?,
                        detail: r.get(5)?,
                    })
                })
                .collect::<Result<Vec<_>, SqlError>>()
            })
            .map_err(self.db.err("reading drift history"))?;
        Ok((d, events))
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{nd, ok_end};
    use super::super::*;
    use crate::model::Severity;

    #[test]
    fn lifecycle_and_history() {
        for s in crate::store::tests::stores("lifecycle_and_history") {
            assert_eq!(s.schema_version().unwrap(), MIGRATIONS.len());
            let scan = s.start_scan("prod", ScanKind::Environment).unwrap();
            s.record_scan(
                scan,
                "prod",
                &ok_end(),
                &[DriftWrite::Open(nd("a", "f1", Severity::Medium))],
                &[],
            )
            .unwrap();
            let open = s.open_drifts("prod").unwrap();
            assert_eq!(open.len(), 1);
            let id = open[0].id;
            let scan2 = s.start_scan("prod", ScanKind::Environment).unwrap();
            s.record_scan(
                scan2,
                "prod",
                &ok_end(),
                &[DriftWrite::Change {
                    id,
                    new: nd("a", "f2", Severity::High),
                    escalated: true,
                }],
                &[],
            )
            .unwrap();
            s.ack(id, "alice").unwrap();
            let scan3 = s.start_scan("prod", ScanKind::Environment).unwrap();
            s.record_scan(scan3, "prod", &ok_end(), &[DriftWrite::Resolve { id }], &[])
                .unwrap();
            let (d, events) = s.drift(id).unwrap();
            assert_eq!(d.status, DriftStatus::Resolved);
            assert_eq!(d.fingerprint, "f2");
            let kinds: Vec<EventKind> = events.iter().map(|e| e.event).collect();
            assert_eq!(
                kinds,
                [
                    EventKind::Opened,
                    EventKind::Escalated,
                    EventKind::Acknowledged,
                    EventKind::Resolved
                ]
            );
            assert_eq!(events[1].severity, Some(Severity::High));
            assert!(s.open_drifts("prod").unwrap().is_empty());
            // Reopening the same identity reuses the row.
            let scan4 = s.start_scan("prod", ScanKind::Environment).unwrap();
            s.record_scan(
                scan4,
                "prod",
                &ok_end(),
                &[DriftWrite::Open(nd("a", "f3", Severity::Low))],
                &[],
            )
            .unwrap();
            let open = s.open_drifts("prod").unwrap();
            assert_eq!((open[0].id, open[0].acked_at.clone()), (id, None));
            assert!(matches!(s.drift(999), Err(StoreError::NotFound { .. })));
        }
    }

    #[test]
    fn filters_and_cursor() {
        for s in crate::store::tests::stores("filters_and_cursor") {
            let scan = s.start_scan("prod", ScanKind::Environment).unwrap();
            let writes: Vec<DriftWrite> = (0..5)
                .map(|i| {
                    let sev = if i % 2 == 0 {
                        Severity::High
                    } else {
                        Severity::Low
                    };
                    DriftWrite::Open(nd(&format!("id{i}"), &format!("f{i}"), sev))
                })
                .collect();
            s.record_scan(scan, "prod", &ok_end(), &writes, &[])
                .unwrap();
            let high = s
                .list_drifts(&DriftFilter {
                    min_severity: Some(Severity::High),
                    ..Default::default()
                })
                .unwrap();
            assert_eq!(high.len(), 3);
            let page1 = s
                .list_drifts(&DriftFilter {
                    limit: 2,
                    ..Default::default()
                })
                .unwrap();
            let page2 = s
                .list_drifts(&DriftFilter {
                    limit: 2,
                    after_id: Some(page1[1].id),
                    ..Default::default()
                })
                .unwrap();
            assert_eq!(page2[0].id, page1[1].id + 1);
            let by_cat = s
                .list_drifts(&DriftFilter {
                    category: Some("image".into()),
                    ..Default::default()
                })
                .unwrap();
            assert_eq!(by_cat.len(), 5);
        }
    }
}
