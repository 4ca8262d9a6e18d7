//! Scans: start ([`Store::start_scan`]) and queries. A scan's end is written with its drift
//! lifecycle in one transaction ([`Store::record_scan`], in `drifts`).

use super::sql::{Exec, Row, SqlError, args};

use super::{ScanKind, ScanOutcome, Store, StoreError, StoreReader, now_rfc3339};

/// A scan.
#[derive(Debug, Clone, PartialEq)]
pub struct ScanRecord {
    pub id: i64,
    pub target: String,
    pub kind: ScanKind,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub outcome: ScanOutcome,
    pub error: Option<String>,
    pub revision: Option<String>,
    pub objects: i64,
    pub drifts: i64,
    pub duration_ms: Option<i64>,
    pub snapshot_hash: Option<String>,
}

/// How a scan ended.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ScanEnd {
    /// `ok`, `partial` or `failed`.
    pub outcome: ScanOutcome,
    pub error: Option<String>,
    pub revision: Option<String>,
    pub objects: i64,
    pub drifts: i64,
    pub duration_ms: i64,
    /// Hash of the snapshot (sorted object hashes) and the object list itself (JSON
    /// `{key: hash}`), stored once per distinct hash.
    pub snapshot: Option<(String, String)>,
}

fn row_to_scan(r: &Row) -> Result<ScanRecord, SqlError> {
    Ok(ScanRecord {
        id: r.get("id")?,
        target: r.get("target")?,
        kind: r.get("kind")?,
        started_at: r.get("started_at")?,
        finished_at: r.get("finished_at")?,
        outcome: r.get("outcome")?,
        error: r.get("error")?,
        revision: r.get("revision")?,
        objects: r.get("objects")?,
        drifts: r.get("drifts")?,
        duration_ms: r.get("duration_ms")?,
        snapshot_hash: r.get("snapshot_hash")?,
    })
}

const SCAN_COLUMNS: &str = "id, target, kind, started_at, finished_at, outcome, error, revision, objects, drifts, duration_ms, snapshot_hash";

impl Store {
    /// Records the start of a scan (outcome `running`); returns its id.
    pub fn start_scan(&self, target: &str, kind: ScanKind) -> Result<i64, StoreError> {
        let db = self.db();
        db.with(|c| {
            c.query_value(
                "INSERT INTO scans(target, kind, started_at) VALUES (?1, ?2, ?3) RETURNING id",
                args![target, kind, now_rfc3339()],
            )
        })
        .map_err(db.err("starting a scan"))
    }
}

impl StoreReader {
    /// A scan by id.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when there is no such scan.
    pub fn scan(&self, id: i64) -> Result<ScanRecord, StoreError> {
        self.db
            .with(|c| {
                c.query_opt(
                    &format!("SELECT {SCAN_COLUMNS} FROM scans WHERE id = ?1"),
                    args![id],
                )?
                .map(|r| row_to_scan(&r))
                .transpose()
            })
            .map_err(self.db.err("reading a scan"))?
            .ok_or_else(|| self.db.not_found("scan", id))
    }

    /// Scans of a target (or all), newest first.
    pub fn scans(&self, target: Option<&str>, limit: usize) -> Result<Vec<ScanRecord>, StoreError> {
        self.db
            .with(|c| {
                let rows = match target {
                    Some(t) => c.query(
                        &format!(
                            "SELECT {SCAN_COLUMNS} FROM scans WHERE target = ?1 ORDER BY id DESC LIMIT ?2"
                        ),
                        args![t, limit],
                    )?,
                    None => c.query(
                        &format!("SELECT {SCAN_COLUMNS} FROM scans ORDER BY id DESC LIMIT ?1"),
                        args![limit],
                    )?,
                };
                rows.iter().map(row_to_scan).collect::<Result<Vec<_>, SqlError>>()
            })
            .map_err(self.db.err("listing scans"))
    }

    /// Scans of a target since a time (reports).
    pub fn scans_since(&self, target: &str, since: &str) -> Result<Vec<ScanRecord>, StoreError> {
        self.db
            .with(|c| {
                c.query(
                    &format!(
                        "SELECT {SCAN_COLUMNS} FROM scans WHERE target = ?1 AND started_at >= ?2 ORDER BY id"
                    ),
                    args![target, since],
                )?
                .iter()
                .map(row_to_scan)
                .collect::<Result<Vec<_>, SqlError>>()
            })
            .map_err(self.db.err("listing scans"))
    }
}
