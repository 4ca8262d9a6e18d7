//! The daemon's state in SQLite (rusqlite, WAL): scans, drifts with their lifecycle and
//! history, snapshot hashes, and the alert outbox.
//!
//! Entry point: [`Store::open`]. Every scan's results — drift lifecycle changes, history
//! events and the alerts they cause — are written in ONE transaction
//! ([`Store::record_scan`]), so a kill at any point leaves either all of it or none of it;
//! an alert is in the outbox before any delivery is tried, and marked sent only after the
//! sink accepted it ([`Store::mark_sent`]). A restart resumes unsent alerts.
//!
//! Schema migrations are versioned in code ([`MIGRATIONS`]) and tracked in
//! `PRAGMA user_version`.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use serde_json::Value;

/// Errors of the store; each names the database file.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: cannot open the store: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    /// The store's file or directory cannot be used, in plain words.
    #[error("{path}: cannot open the store: {reason}")]
    Unusable { path: PathBuf, reason: String },
    #[error("{path}: migration to schema version {version} failed: {source}")]
    Migrate {
        path: PathBuf,
        version: usize,
        source: rusqlite::Error,
    },
    #[error(
        "{path}: the store's schema version {found} is newer than this envdrift knows ({known}); upgrade envdrift"
    )]
    TooNew {
        path: PathBuf,
        found: usize,
        known: usize,
    },
    #[error("{path}: {context}: {source}")]
    Query {
        path: PathBuf,
        context: &'static str,
        source: rusqlite::Error,
    },
    #[error("{path}: {what} {id} not found")]
    NotFound {
        path: PathBuf,
        what: &'static str,
        id: i64,
    },
}

/// Schema migrations, in order; index + 1 is the schema version.
pub const MIGRATIONS: &[&str] = &[
    // 1: scans, drifts, history, outbox, snapshot hashes.
    "CREATE TABLE scans (
        id INTEGER PRIMARY KEY,
        target TEXT NOT NULL,
        kind TEXT NOT NULL,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        outcome TEXT NOT NULL DEFAULT 'running',
        error TEXT,
        revision TEXT,
        objects INTEGER NOT NULL DEFAULT 0,
        drifts INTEGER NOT NULL DEFAULT 0,
        duration_ms INTEGER,
        snapshot_hash TEXT
    );
    CREATE INDEX scans_target ON scans(target, id);
    CREATE TABLE snapshots (
        hash TEXT PRIMARY KEY,
        created_at TEXT NOT NULL,
        objects TEXT NOT NULL
    );
    CREATE TABLE drifts (
        id INTEGER PRIMARY KEY,
        target TEXT NOT NULL,
        identity TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        resource TEXT NOT NULL,
        drift_type TEXT NOT NULL,
        severity TEXT NOT NULL,
        severity_rank INTEGER NOT NULL,
        categories TEXT NOT NULL,
        status TEXT NOT NULL,
        first_seen TEXT NOT NULL,
        last_seen TEXT NOT NULL,
        changed_at TEXT NOT NULL,
        resolved_at TEXT,
        acked_at TEXT,
        acked_by TEXT,
        silenced_until TEXT,
        silence_reason TEXT,
        last_reminded_at TEXT,
        last_scan_id INTEGER,
        body TEXT NOT NULL,
        UNIQUE(target, identity)
    );
    CREATE INDEX drifts_status ON drifts(status, target, severity_rank);
    CREATE TABLE drift_events (
        id INTEGER PRIMARY KEY,
        drift_id INTEGER NOT NULL REFERENCES drifts(id),
        at TEXT NOT NULL,
        event TEXT NOT NULL,
        fingerprint TEXT,
        severity TEXT,
        scan_id INTEGER,
        detail TEXT
    );
    CREATE INDEX drift_events_drift ON drift_events(drift_id, id);
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY,
        notice_id TEXT NOT NULL,
        sink TEXT NOT NULL,
        kind TEXT NOT NULL,
        target TEXT NOT NULL,
        body TEXT NOT NULL,
        created_at TEXT NOT NULL,
        next_attempt_at TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        state TEXT NOT NULL DEFAULT 'pending',
        last_error TEXT,
        sent_at TEXT,
        UNIQUE(notice_id, sink)
    );
    CREATE INDEX outbox_due ON outbox(state, next_attempt_at);
    CREATE TABLE report_runs (
        name TEXT PRIMARY KEY,
        last_run_at TEXT NOT NULL
    );",
];

/// RFC 3339 UTC with milliseconds: sorts as text.
/// An I/O error in plain words (permission denied, read-only file system, not a directory).
fn plain_io(e: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::PermissionDenied => "permission denied".into(),
        ErrorKind::ReadOnlyFilesystem => "the file system is read-only".into(),
        ErrorKind::NotADirectory => "a part of the path is a file, not a directory".into(),
        _ => e.to_string(),
    }
}

pub(crate) fn now_rfc3339() -> String {
    fmt_time(chrono::Utc::now())
}

pub(crate) fn fmt_time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Severity as a sortable number.
pub(crate) fn severity_rank(s: crate::model::Severity) -> i64 {
    s as i64
}

/// A scan row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScanRow {
    pub id: i64,
    pub target: String,
    pub kind: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub outcome: String,
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
    pub outcome: String,
    pub error: Option<String>,
    pub revision: Option<String>,
    pub objects: i64,
    pub drifts: i64,
    pub duration_ms: i64,
    /// Hash of the snapshot (sorted object hashes) and the object list itself (JSON
    /// `{key: hash}`), stored once per distinct hash.
    pub snapshot: Option<(String, String)>,
}

/// A drift row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DriftRow {
    pub id: i64,
    pub target: String,
    pub identity: String,
    pub fingerprint: String,
    pub resource: String,
    pub drift_type: String,
    pub severity: String,
    pub categories: Vec<String>,
    pub status: String,
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
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventRow {
    pub at: String,
    pub event: String,
    pub fingerprint: Option<String>,
    pub severity: Option<String>,
    pub scan_id: Option<i64>,
    pub detail: Option<String>,
}

/// An outbox row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutboxRow {
    pub id: i64,
    pub notice_id: String,
    pub sink: String,
    pub kind: String,
    pub target: String,
    pub body: Value,
    pub created_at: String,
    pub next_attempt_at: String,
    pub attempts: i64,
    pub state: String,
    pub last_error: Option<String>,
    pub sent_at: Option<String>,
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
    pub severity: crate::model::Severity,
    pub categories: Vec<String>,
    pub body: Value,
}

/// An alert to put in the outbox for one sink.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxWrite {
    pub notice_id: String,
    pub sink: String,
    pub kind: String,
    pub target: String,
    pub body: Value,
}

/// Filters of [`Store::list_drifts`].
#[derive(Debug, Clone, Default)]
pub struct DriftFilter {
    pub target: Option<String>,
    /// `open`, `resolved`, or `None` for all.
    pub status: Option<String>,
    pub min_severity: Option<crate::model::Severity>,
    pub category: Option<String>,
    /// Return drifts with id greater than this (cursor pagination).
    pub after_id: Option<i64>,
    pub limit: usize,
}

/// The store.
pub struct Store {
    conn: Mutex<Connection>,
    path: PathBuf,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

fn row_to_drift(r: &rusqlite::Row<'_>) -> rusqlite::Result<DriftRow> {
    let categories: String = r.get("categories")?;
    let body: String = r.get("body")?;
    Ok(DriftRow {
        id: r.get("id")?,
        target: r.get("target")?,
        identity: r.get("identity")?,
        fingerprint: r.get("fingerprint")?,
        resource: r.get("resource")?,
        drift_type: r.get("drift_type")?,
        severity: r.get("severity")?,
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

fn row_to_scan(r: &rusqlite::Row<'_>) -> rusqlite::Result<ScanRow> {
    Ok(ScanRow {
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

fn row_to_outbox(r: &rusqlite::Row<'_>) -> rusqlite::Result<OutboxRow> {
    let body: String = r.get("body")?;
    Ok(OutboxRow {
        id: r.get("id")?,
        notice_id: r.get("notice_id")?,
        sink: r.get("sink")?,
        kind: r.get("kind")?,
        target: r.get("target")?,
        body: serde_json::from_str(&body).unwrap_or(Value::Null),
        created_at: r.get("created_at")?,
        next_attempt_at: r.get("next_attempt_at")?,
        attempts: r.get("attempts")?,
        state: r.get("state")?,
        last_error: r.get("last_error")?,
        sent_at: r.get("sent_at")?,
    })
}

const DRIFT_COLUMNS: &str = "id, target, identity, fingerprint, resource, drift_type, severity, categories, status, first_seen, last_seen, changed_at, resolved_at, acked_at, acked_by, silenced_until, silence_reason, last_reminded_at, body";

impl Store {
    /// Opens (creating if needed) the store at `path` and migrates it.
    ///
    /// # Errors
    /// [`StoreError::Open`], [`StoreError::Migrate`], or [`StoreError::TooNew`] when a
    /// newer envdrift wrote the file.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let unusable = |reason: String| StoreError::Unusable {
            path: path.to_path_buf(),
            reason,
        };
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(|e| {
                unusable(format!(
                    "cannot create its directory {}: {}",
                    dir.display(),
                    plain_io(&e)
                ))
            })?;
            if std::fs::metadata(dir).is_ok_and(|m| m.permissions().readonly()) {
                return Err(unusable(format!(
                    "its directory {} is read-only (the store needs to write there)",
                    dir.display()
                )));
            }
        }
        if std::fs::metadata(path).is_ok_and(|m| m.permissions().readonly()) {
            return Err(unusable(
                "the file is read-only (the store needs to write it)".into(),
            ));
        }
        let conn = Connection::open(path).map_err(|source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        Self::init(conn, path)
    }

    /// An in-memory store (tests, one-off commands).
    #[cfg(test)]
    pub(crate) fn open_in_memory() -> Result<Store, StoreError> {
        let conn = Connection::open_in_memory().map_err(|source| StoreError::Open {
            path: PathBuf::from(":memory:"),
            source,
        })?;
        Self::init(conn, Path::new(":memory:"))
    }

    fn init(conn: Connection, path: &Path) -> Result<Store, StoreError> {
        let q = |context: &'static str| {
            let path = path.to_path_buf();
            move |source| StoreError::Query {
                path: path.clone(),
                context,
                source,
            }
        };
        // WAL: readers never block the writer; with synchronous=NORMAL a committed
        // transaction survives a killed process (only an OS crash may lose the last ones).
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(q("enabling WAL"))?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(q("setting synchronous"))?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(q("enabling foreign keys"))?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(q("setting the busy timeout"))?;
        let store = Store {
            conn: Mutex::new(conn),
            path: path.to_path_buf(),
        };
        store.migrate()?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite consistent (transactions roll back).
        self.conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn err(&self, context: &'static str) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        move |source| StoreError::Query {
            path: self.path.clone(),
            context,
            source,
        }
    }

    fn migrate(&self) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let found: usize = conn
            .pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0))
            .map_err(self.err("reading the schema version"))? as usize;
        if found > MIGRATIONS.len() {
            return Err(StoreError::TooNew {
                path: self.path.clone(),
                found,
                known: MIGRATIONS.len(),
            });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(found) {
            let version = i + 1;
            let tx = conn.transaction().map_err(|source| StoreError::Migrate {
                path: self.path.clone(),
                version,
                source,
            })?;
            tx.execute_batch(sql)
                .and_then(|_| tx.pragma_update(None, "user_version", version as i64))
                .and_then(|_| tx.commit())
                .map_err(|source| StoreError::Migrate {
                    path: self.path.clone(),
                    version,
                    source,
                })?;
        }
        Ok(())
    }

    /// The schema version in use.
    pub(crate) fn schema_version(&self) -> Result<usize, StoreError> {
        let conn = self.conn();
        conn.pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0))
            .map(|v| v as usize)
            .map_err(self.err("reading the schema version"))
    }

    /// Records the start of a scan; returns its id.
    pub(crate) fn start_scan(&self, target: &str, kind: &str) -> Result<i64, StoreError> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO scans(target, kind, started_at) VALUES (?1, ?2, ?3)",
            params![target, kind, now_rfc3339()],
        )
        .map_err(self.err("starting a scan"))?;
        Ok(conn.last_insert_rowid())
    }

    /// Records a scan's end, its drift lifecycle writes and the alerts they cause, in one
    /// transaction. A failed scan passes no drift writes: it never resolves anything.
    pub(crate) fn record_scan(
        &self,
        scan_id: i64,
        target: &str,
        end: &ScanEnd,
        drifts: &[DriftWrite],
        outbox: &[OutboxWrite],
    ) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let now = now_rfc3339();
        let tx = conn
            .transaction()
            .map_err(self.err("beginning a scan transaction"))?;
        if let Some((hash, objects)) = &end.snapshot {
            tx.execute(
                "INSERT OR IGNORE INTO snapshots(hash, created_at, objects) VALUES (?1, ?2, ?3)",
                params![hash, now, objects],
            )
            .map_err(self.err("storing the snapshot hashes"))?;
        }
        tx.execute(
            "UPDATE scans SET finished_at = ?2, outcome = ?3, error = ?4, revision = ?5, objects = ?6,
                drifts = ?7, duration_ms = ?8, snapshot_hash = ?9 WHERE id = ?1",
            params![
                scan_id,
                now,
                end.outcome,
                end.error,
                end.revision,
                end.objects,
                end.drifts,
                end.duration_ms,
                end.snapshot.as_ref().map(|s| s.0.clone()),
            ],
        )
        .map_err(self.err("finishing a scan"))?;
        for w in drifts {
            match w {
                DriftWrite::Open(n) => {
                    let cats = serde_json::to_string(&n.categories).unwrap_or_default();
                    let body = n.body.to_string();
                    tx.execute(
                        "INSERT INTO drifts(target, identity, fingerprint, resource, drift_type, severity,
                            severity_rank, categories, status, first_seen, last_seen, changed_at, last_scan_id, body)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'open', ?9, ?9, ?9, ?10, ?11)
                         ON CONFLICT(target, identity) DO UPDATE SET
                            fingerprint = excluded.fingerprint, resource = excluded.resource,
                            drift_type = excluded.drift_type, severity = excluded.severity,
                            severity_rank = excluded.severity_rank, categories = excluded.categories,
                            status = 'open', first_seen = excluded.first_seen, last_seen = excluded.last_seen,
                            changed_at = excluded.changed_at, resolved_at = NULL, acked_at = NULL, acked_by = NULL,
                            last_reminded_at = NULL, last_scan_id = excluded.last_scan_id, body = excluded.body",
                        params![
                            target,
                            n.identity,
                            n.fingerprint,
                            n.resource,
                            n.drift_type,
                            n.severity.as_str(),
                            severity_rank(n.severity),
                            cats,
                            now,
                            scan_id,
                            body
                        ],
                    )
                    .map_err(self.err("opening a drift"))?;
                    let id: i64 = tx
                        .query_row(
                            "SELECT id FROM drifts WHERE target = ?1 AND identity = ?2",
                            params![target, n.identity],
                            |r| r.get(0),
                        )
                        .map_err(self.err("reading a drift id"))?;
                    event(
                        &tx,
                        id,
                        "opened",
                        Some(&n.fingerprint),
                        Some(n.severity.as_str()),
                        scan_id,
                        &now,
                    )
                    .map_err(self.err("recording a drift event"))?;
                }
                DriftWrite::Change { id, new, escalated } => {
                    let cats = serde_json::to_string(&new.categories).unwrap_or_default();
                    tx.execute(
                        "UPDATE drifts SET fingerprint = ?2, resource = ?3, severity = ?4, severity_rank = ?5,
                            categories = ?6, last_seen = ?7, changed_at = ?7, last_scan_id = ?8, body = ?9,
                            acked_at = NULL, acked_by = NULL WHERE id = ?1",
                        params![
                            id,
                            new.fingerprint,
                            new.resource,
                            new.severity.as_str(),
                            severity_rank(new.severity),
                            cats,
                            now,
                            scan_id,
                            new.body.to_string()
                        ],
                    )
                    .map_err(self.err("updating a drift"))?;
                    let ev = if *escalated { "escalated" } else { "changed" };
                    event(
                        &tx,
                        *id,
                        ev,
                        Some(&new.fingerprint),
                        Some(new.severity.as_str()),
                        scan_id,
                        &now,
                    )
                    .map_err(self.err("recording a drift event"))?;
                }
                DriftWrite::Seen { id } => {
                    tx.execute(
                        "UPDATE drifts SET last_seen = ?2, last_scan_id = ?3 WHERE id = ?1",
                        params![id, now, scan_id],
                    )
                    .map_err(self.err("updating a drift"))?;
                }
                DriftWrite::Resolve { id } => {
                    tx.execute(
                        "UPDATE drifts SET status = 'resolved', resolved_at = ?2, last_scan_id = ?3 WHERE id = ?1",
                        params![id, now, scan_id],
                    )
                    .map_err(self.err("resolving a drift"))?;
                    event(&tx, *id, "resolved", None, None, scan_id, &now)
                        .map_err(self.err("recording a drift event"))?;
                }
                DriftWrite::Reminded { id } => {
                    tx.execute(
                        "UPDATE drifts SET last_reminded_at = ?2 WHERE id = ?1",
                        params![id, now],
                    )
                    .map_err(self.err("recording a reminder"))?;
                }
            }
        }
        for o in outbox {
            insert_outbox(&tx, o, &now).map_err(self.err("queueing an alert"))?;
        }
        tx.commit().map_err(self.err("committing a scan"))?;
        Ok(())
    }

    /// Queues alerts outside a scan (reports).
    #[cfg(test)]
    pub(crate) fn enqueue(&self, outbox: &[OutboxWrite]) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let now = now_rfc3339();
        let tx = conn
            .transaction()
            .map_err(self.err("beginning a transaction"))?;
        for o in outbox {
            insert_outbox(&tx, o, &now).map_err(self.err("queueing an alert"))?;
        }
        tx.commit().map_err(self.err("committing alerts"))
    }

    /// Open drifts of a target.
    pub fn open_drifts(&self, target: &str) -> Result<Vec<DriftRow>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(&format!(
                "SELECT {DRIFT_COLUMNS} FROM drifts WHERE target = ?1 AND status = 'open' ORDER BY id"
            ))
            .map_err(self.err("listing open drifts"))?;
        let rows = stmt
            .query_map(params![target], row_to_drift)
            .map_err(self.err("listing open drifts"))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(self.err("listing open drifts"))
    }

    /// Drifts by filter, ordered by id (cursor pagination with `after_id`).
    pub(crate) fn list_drifts(&self, f: &DriftFilter) -> Result<Vec<DriftRow>, StoreError> {
        let conn = self.conn();
        let mut sql = format!("SELECT {DRIFT_COLUMNS} FROM drifts WHERE id > ?1");
        let mut args: Vec<Box<dyn rusqlite::ToSql>> = vec![Box::new(f.after_id.unwrap_or(0))];
        if let Some(t) = &f.target {
            args.push(Box::new(t.clone()));
            sql.push_str(&format!(" AND target = ?{}", args.len()));
        }
        if let Some(s) = &f.status {
            args.push(Box::new(s.clone()));
            sql.push_str(&format!(" AND status = ?{}", args.len()));
        }
        if let Some(s) = f.min_severity {
            args.push(Box::new(severity_rank(s)));
            sql.push_str(&format!(" AND severity_rank >= ?{}", args.len()));
        }
        if let Some(c) = &f.category {
            args.push(Box::new(format!("%\"{c}\"%")));
            sql.push_str(&format!(" AND categories LIKE ?{}", args.len()));
        }
        let limit = if f.limit == 0 { 100 } else { f.limit.min(1000) };
        sql.push_str(&format!(" ORDER BY id LIMIT {limit}"));
        let mut stmt = conn.prepare(&sql).map_err(self.err("listing drifts"))?;
        let refs: Vec<&dyn rusqlite::ToSql> =
            args.iter().map(std::convert::AsRef::as_ref).collect();
        let rows = stmt
            .query_map(refs.as_slice(), row_to_drift)
            .map_err(self.err("listing drifts"))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(self.err("listing drifts"))
    }

    /// One drift with its history.
    pub fn drift(&self, id: i64) -> Result<(DriftRow, Vec<EventRow>), StoreError> {
        let conn = self.conn();
        let d = conn
            .query_row(
                &format!("SELECT {DRIFT_COLUMNS} FROM drifts WHERE id = ?1"),
                params![id],
                row_to_drift,
            )
            .optional()
            .map_err(self.err("reading a drift"))?
            .ok_or(StoreError::NotFound {
                path: self.path.clone(),
                what: "drift",
                id,
            })?;
        let mut stmt = conn
            .prepare("SELECT at, event, fingerprint, severity, scan_id, detail FROM drift_events WHERE drift_id = ?1 ORDER BY id")
            .map_err(self.err("reading drift history"))?;
        let events = stmt
            .query_map(params![id], |r| {
                Ok(EventRow {
                    at: r.get(0)?,
                    event: r.get(1)?,
                    fingerprint: r.get(2)?,
                    severity: r.get(3)?,
                    scan_id: r.get(4)?,
                    detail: r.get(5)?,
                })
            })
            .map_err(self.err("reading drift history"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(self.err("reading drift history"))?;
        Ok((d, events))
    }

    /// Acknowledges a drift: no reminders or escalations until its live value changes.
    pub fn ack(&self, id: i64, by: &str) -> Result<(), StoreError> {
        let now = now_rfc3339();
        let mut conn = self.conn();
        let tx = conn
            .transaction()
            .map_err(self.err("acknowledging a drift"))?;
        let n = tx
            .execute(
                "UPDATE drifts SET acked_at = ?2, acked_by = ?3 WHERE id = ?1",
                params![id, now, by],
            )
            .map_err(self.err("acknowledging a drift"))?;
        if n == 0 {
            return Err(StoreError::NotFound {
                path: self.path.clone(),
                what: "drift",
                id,
            });
        }
        tx.execute(
            "INSERT INTO drift_events(drift_id, at, event, detail) VALUES (?1, ?2, 'acknowledged', ?3)",
            params![id, now, by],
        )
        .map_err(self.err("acknowledging a drift"))?;
        tx.commit().map_err(self.err("acknowledging a drift"))
    }

    /// Silences a drift's alerts until `until` (RFC 3339).
    pub fn silence(&self, id: i64, until: &str, reason: &str) -> Result<(), StoreError> {
        let now = now_rfc3339();
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(self.err("silencing a drift"))?;
        let n = tx
            .execute(
                "UPDATE drifts SET silenced_until = ?2, silence_reason = ?3 WHERE id = ?1",
                params![id, until, reason],
            )
            .map_err(self.err("silencing a drift"))?;
        if n == 0 {
            return Err(StoreError::NotFound {
                path: self.path.clone(),
                what: "drift",
                id,
            });
        }
        tx.execute(
            "INSERT INTO drift_events(drift_id, at, event, detail) VALUES (?1, ?2, 'silenced', ?3)",
            params![id, now, format!("until {until}: {reason}")],
        )
        .map_err(self.err("silencing a drift"))?;
        tx.commit().map_err(self.err("silencing a drift"))
    }

    /// Alerts due for delivery (pending, next attempt reached), oldest first.
    pub(crate) fn due_outbox(&self, now: &str, limit: usize) -> Result<Vec<OutboxRow>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT id, notice_id, sink, kind, target, body, created_at, next_attempt_at, attempts, state, last_error, sent_at
                 FROM outbox WHERE state = 'pending' AND next_attempt_at <= ?1 ORDER BY id LIMIT ?2",
            )
            .map_err(self.err("reading the outbox"))?;
        let rows = stmt
            .query_map(params![now, limit as i64], row_to_outbox)
            .map_err(self.err("reading the outbox"))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(self.err("reading the outbox"))
    }

    /// The earliest next attempt among pending alerts.
    pub(crate) fn next_due(&self) -> Result<Option<String>, StoreError> {
        let conn = self.conn();
        conn.query_row(
            "SELECT MIN(next_attempt_at) FROM outbox WHERE state = 'pending'",
            [],
            |r| r.get(0),
        )
        .map_err(self.err("reading the outbox"))
    }

    /// Every outbox row (API, tests), newest first.
    pub fn outbox(&self, limit: usize) -> Result<Vec<OutboxRow>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT id, notice_id, sink, kind, target, body, created_at, next_attempt_at, attempts, state, last_error, sent_at
                 FROM outbox ORDER BY id DESC LIMIT ?1",
            )
            .map_err(self.err("reading the outbox"))?;
        let rows = stmt
            .query_map(params![limit as i64], row_to_outbox)
            .map_err(self.err("reading the outbox"))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(self.err("reading the outbox"))
    }

    /// Marks an alert delivered.
    pub(crate) fn mark_sent(&self, id: i64) -> Result<(), StoreError> {
        let conn = self.conn();
        conn.execute(
            "UPDATE outbox SET state = 'sent', sent_at = ?2, attempts = attempts + 1, last_error = NULL WHERE id = ?1",
            params![id, now_rfc3339()],
        )
        .map_err(self.err("marking an alert sent"))?;
        Ok(())
    }

    /// Records a failed attempt: retried at `next_attempt_at`, or given up (`failed`).
    pub(crate) fn mark_failed(
        &self,
        id: i64,
        error: &str,
        next_attempt_at: Option<&str>,
    ) -> Result<(), StoreError> {
        let conn = self.conn();
        match next_attempt_at {
            Some(next) => conn.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?2, next_attempt_at = ?3 WHERE id = ?1",
                params![id, error, next],
            ),
            None => conn.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?2, state = 'failed' WHERE id = ?1",
                params![id, error],
            ),
        }
        .map_err(self.err("recording a delivery failure"))?;
        Ok(())
    }

    /// Counts of outbox rows by state.
    pub(crate) fn outbox_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT state, COUNT(*) FROM outbox GROUP BY state ORDER BY state")
            .map_err(self.err("counting the outbox"))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(self.err("counting the outbox"))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(self.err("counting the outbox"))
    }

    /// A scan by id.
    pub fn scan(&self, id: i64) -> Result<ScanRow, StoreError> {
        let conn = self.conn();
        conn.query_row(
            "SELECT * FROM scans WHERE id = ?1",
            params![id],
            row_to_scan,
        )
        .optional()
        .map_err(self.err("reading a scan"))?
        .ok_or(StoreError::NotFound {
            path: self.path.clone(),
            what: "scan",
            id,
        })
    }

    /// Scans of a target (or all), newest first.
    pub fn scans(&self, target: Option<&str>, limit: usize) -> Result<Vec<ScanRow>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT * FROM scans WHERE (?1 IS NULL OR target = ?1) ORDER BY id DESC LIMIT ?2",
            )
            .map_err(self.err("listing scans"))?;
        let rows = stmt
            .query_map(params![target, limit as i64], row_to_scan)
            .map_err(self.err("listing scans"))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(self.err("listing scans"))
    }

    /// Scans of a target since a time (reports).
    pub(crate) fn scans_since(
        &self,
        target: &str,
        since: &str,
    ) -> Result<Vec<ScanRow>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT * FROM scans WHERE target = ?1 AND started_at >= ?2 ORDER BY id")
            .map_err(self.err("listing scans"))?;
        let rows = stmt
            .query_map(params![target, since], row_to_scan)
            .map_err(self.err("listing scans"))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(self.err("listing scans"))
    }

    /// Number of drifts of a target opened / resolved since a time (reports).
    pub(crate) fn counts_since(&self, target: &str, since: &str) -> Result<(i64, i64), StoreError> {
        let conn = self.conn();
        let count = |event: &str| -> Result<i64, StoreError> {
            conn.query_row(
                "SELECT COUNT(*) FROM drift_events e JOIN drifts d ON d.id = e.drift_id
                 WHERE d.target = ?1 AND e.event = ?2 AND e.at >= ?3",
                params![target, event, since],
                |r| r.get(0),
            )
            .map_err(self.err("counting drift events"))
        };
        Ok((count("opened")?, count("resolved")?))
    }

    /// When a report last ran.
    pub(crate) fn report_last_run(&self, name: &str) -> Result<Option<String>, StoreError> {
        let conn = self.conn();
        conn.query_row(
            "SELECT last_run_at FROM report_runs WHERE name = ?1",
            params![name],
            |r| r.get(0),
        )
        .optional()
        .map_err(self.err("reading report runs"))
    }

    /// Records a report run together with the alerts it queued.
    pub(crate) fn record_report(
        &self,
        name: &str,
        at: &str,
        outbox: &[OutboxWrite],
    ) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(self.err("recording a report"))?;
        tx.execute(
            "INSERT INTO report_runs(name, last_run_at) VALUES (?1, ?2)
             ON CONFLICT(name) DO UPDATE SET last_run_at = excluded.last_run_at",
            params![name, at],
        )
        .map_err(self.err("recording a report"))?;
        for o in outbox {
            insert_outbox(&tx, o, at).map_err(self.err("queueing a report"))?;
        }
        tx.commit().map_err(self.err("recording a report"))
    }

    /// Deletes scans (and snapshot hashes no scan refers to) older than `before`, and sent
    /// alerts older than it. Open drifts and their history are kept.
    pub(crate) fn prune(&self, before: &str) -> Result<usize, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(self.err("pruning"))?;
        let scans = tx
            .execute(
                "DELETE FROM scans WHERE started_at < ?1 AND id NOT IN
                    (SELECT MAX(id) FROM scans GROUP BY target)",
                params![before],
            )
            .map_err(self.err("pruning scans"))?;
        tx.execute(
            "DELETE FROM snapshots WHERE hash NOT IN (SELECT snapshot_hash FROM scans WHERE snapshot_hash IS NOT NULL)",
            [],
        )
        .map_err(self.err("pruning snapshots"))?;
        tx.execute(
            "DELETE FROM outbox WHERE state = 'sent' AND sent_at < ?1",
            params![before],
        )
        .map_err(self.err("pruning the outbox"))?;
        tx.commit().map_err(self.err("pruning"))?;
        Ok(scans)
    }

    /// Open drift counts by target, severity and categories (metrics, environments API).
    pub(crate) fn open_counts(&self) -> Result<Vec<(String, String, Vec<String>)>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT target, severity, categories FROM drifts WHERE status = 'open'")
            .map_err(self.err("counting open drifts"))?;
        let rows = stmt
            .query_map([], |r| {
                let cats: String = r.get(2)?;
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    serde_json::from_str(&cats).unwrap_or_default(),
                ))
            })
            .map_err(self.err("counting open drifts"))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(self.err("counting open drifts"))
    }
}

fn insert_outbox(
    tx: &rusqlite::Transaction<'_>,
    o: &OutboxWrite,
    now: &str,
) -> rusqlite::Result<usize> {
    // Idempotent: the same notice for the same sink is queued once.
    tx.execute(
        "INSERT OR IGNORE INTO outbox(notice_id, sink, kind, target, body, created_at, next_attempt_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
        params![o.notice_id, o.sink, o.kind, o.target, o.body.to_string(), now],
    )
}

fn event(
    tx: &rusqlite::Transaction<'_>,
    drift_id: i64,
    event: &str,
    fingerprint: Option<&str>,
    severity: Option<&str>,
    scan_id: i64,
    at: &str,
) -> rusqlite::Result<usize> {
    tx.execute(
        "INSERT INTO drift_events(drift_id, at, event, fingerprint, severity, scan_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![drift_id, at, event, fingerprint, severity, scan_id],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Severity;
    use serde_json::json;

    fn nd(identity: &str, fp: &str, sev: Severity) -> NewDrift {
        NewDrift {
            identity: identity.into(),
            fingerprint: fp.into(),
            resource: "Deployment shop/web".into(),
            drift_type: "modified".into(),
            severity: sev,
            categories: vec!["image".into()],
            body: json!({"fingerprint": fp}),
        }
    }

    fn ok_end() -> ScanEnd {
        ScanEnd {
            outcome: "ok".into(),
            ..ScanEnd::default()
        }
    }

    #[test]
    fn lifecycle_and_history() {
        let s = Store::open_in_memory().unwrap();
        assert_eq!(s.schema_version().unwrap(), MIGRATIONS.len());
        let scan = s.start_scan("prod", "env").unwrap();
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
        let scan2 = s.start_scan("prod", "env").unwrap();
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
        let scan3 = s.start_scan("prod", "env").unwrap();
        s.record_scan(scan3, "prod", &ok_end(), &[DriftWrite::Resolve { id }], &[])
            .unwrap();
        let (d, events) = s.drift(id).unwrap();
        assert_eq!(d.status, "resolved");
        assert_eq!(d.fingerprint, "f2");
        let kinds: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
        assert_eq!(kinds, ["opened", "escalated", "acknowledged", "resolved"]);
        assert!(s.open_drifts("prod").unwrap().is_empty());
        // Reopening the same identity reuses the row.
        let scan4 = s.start_scan("prod", "env").unwrap();
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

    #[test]
    fn outbox_is_idempotent_and_retries() {
        let s = Store::open_in_memory().unwrap();
        let w = OutboxWrite {
            notice_id: "prod/1/drift".into(),
            sink: "slack".into(),
            kind: "drift".into(),
            target: "prod".into(),
            body: json!({"title": "x"}),
        };
        s.enqueue(&[w.clone(), w.clone()]).unwrap();
        let due = s.due_outbox(&now_rfc3339(), 10).unwrap();
        assert_eq!(due.len(), 1);
        s.mark_failed(due[0].id, "503", Some("2999-01-01T00:00:00.000Z"))
            .unwrap();
        assert!(s.due_outbox(&now_rfc3339(), 10).unwrap().is_empty());
        assert_eq!(
            s.next_due().unwrap().as_deref(),
            Some("2999-01-01T00:00:00.000Z")
        );
        s.mark_sent(due[0].id).unwrap();
        let all = s.outbox(10).unwrap();
        assert_eq!((all[0].state.as_str(), all[0].attempts), ("sent", 2));
    }

    #[test]
    fn survives_reopen_and_refuses_newer_schema() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state/envdrift.db");
        {
            let s = Store::open(&p).unwrap();
            let scan = s.start_scan("prod", "env").unwrap();
            s.record_scan(
                scan,
                "prod",
                &ok_end(),
                &[DriftWrite::Open(nd("a", "f1", Severity::Low))],
                &[],
            )
            .unwrap();
        }
        let s = Store::open(&p).unwrap();
        assert_eq!(s.open_drifts("prod").unwrap().len(), 1);
        drop(s);
        let c = Connection::open(&p).unwrap();
        c.pragma_update(None, "user_version", 99).unwrap();
        drop(c);
        assert!(matches!(
            Store::open(&p),
            Err(StoreError::TooNew { found: 99, .. })
        ));
    }

    #[test]
    fn filters_and_cursor() {
        let s = Store::open_in_memory().unwrap();
        let scan = s.start_scan("prod", "env").unwrap();
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
