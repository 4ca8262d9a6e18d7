//! Scans: start ([`Store::start_scan`]) and queries. A scan's end is written with its drift
//! lifecycle in one transaction ([`Store::record_scan`], in `drifts`).

use rusqlite::{OptionalExtension, params};

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

fn row_to_scan(r: &rusqlite::Row<'_>) -> rusqlite::Result<ScanRecord> {
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

impl Store {
    /// Records the start of a scan (outcome `running`); returns its id.
    pub fn start_scan(&self, target: &str, kind: ScanKind) -> Result<i64, StoreError> {
        let db = self.db();
        let conn = db.conn();
        conn.execute(
            "INSERT INTO scans(target, kind, started_at) VALUES (?1, ?2, ?3)",
            params![target, kind, now_rfc3339()],
        )
        .map_err(db.err("starting a scan"))?;
        Ok(conn.last_insert_rowid())
    }
}

impl StoreReader {
    /// A scan by id.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when there is no such scan.
    pub fn scan(&self, id: i64) -> Result<ScanRecord, StoreError> {
        let conn = self.db.conn();
        conn.query_row(
            "SELECT * FROM scans WHERE id = ?1",
            params![id],
            row_to_scan,
        )
        .optional()
        .map_err(self.db.err("reading a scan"))?
        .ok_or_else(|| self.db.not_found("scan", id))
    }

    /// Scans of a target (or all), newest first.
    pub fn scans(&self, target: Option<&str>, limit: usize) -> Result<Vec<ScanRecord>, StoreError> {
        let conn = self.db.conn();
        let mut stmt = conn
            .prepare(
                "SELECT * FROM scans WHERE (?1 IS NULL OR target = ?1) ORDER BY id DESC LIMIT ?2",
            )
            .map_err(self.db.err("listing scans"))?;
        let rows = stmt
            .query_map(params![target, limit as i64], row_to_scan)
            .map_err(self.db.err("listing scans"))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(self.db.err("listing scans"))
    }

    /// Scans of a target since a time (reports).
    pub fn scans_since(&self, target: &str, since: &str) -> Result<Vec<ScanRecord>, StoreError> {
        let conn = self.db.conn();
        let mut stmt = conn
            .prepare("SELECT * FROM scans WHERE target = ?1 AND started_at >= ?2 ORDER BY id")
            .map_err(self.db.err("listing scans"))?;
        let rows = stmt
            .query_map(params![target, since], row_to_scan)
            .map_err(self.db.err("listing scans"))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(self.db.err("listing scans"))
    }
}
