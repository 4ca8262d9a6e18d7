//! The daemon's state in SQLite (rusqlite, WAL): scans, drifts with their lifecycle and
//! history, snapshot hashes, and the alert outbox.
//!
//! Entry point: [`Store::open`], the one writer (the daemon owns it); [`Store::reader`] hands
//! out read-only [`StoreReader`]s (the API's GET endpoints) on their own read-only connection
//! — WAL lets them read while the writer writes. A writer is also a reader (it derefs to one).
//!
//! Every scan's results — drift lifecycle changes, history events and the alerts they cause
//! — are written in ONE transaction ([`Store::record_scan`]), so a kill at any point leaves
//! either all of it or none of it; an alert is in the outbox before any delivery is tried,
//! and marked sent only after the sink accepted it ([`Store::mark_sent`]). A restart resumes
//! unsent alerts.
//!
//! Reads return typed records ([`DriftRecord`], [`EventRecord`], [`ScanRecord`],
//! [`OutboxRecord`]) whose closed sets of values are enums ([`ScanOutcome`], [`ScanKind`],
//! [`DriftStatus`], [`EventKind`], [`OutboxState`]) stored as the same TEXT as ever; the SQL
//! row mapping stays private to this module.
//!
//! - `schema`: the versioned migrations ([`MIGRATIONS`], `PRAGMA user_version`);
//! - `scans`: scan start and end, scan queries;
//! - `drifts`: the drift lifecycle writes, drift queries, ack and silence, history events;
//! - `outbox`: alerts queued, due, sent, failed;
//! - `reports`: report runs, retention, counts for reports and metrics;
//! - `slack_refs`: each drift's Slack message and each alert's Slack posts (the Slack sink's
//!   message lifecycle), and the drift ids of an alert's drifts at delivery;
//! - `history`: drift intervals and scan outcomes over time (trends).

mod actions;
mod drifts;
mod history;
pub mod maintenance;
mod matrix;
mod outbox;
mod reports;
mod scans;
mod schema;
pub mod slack_refs;
mod values;

use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OpenFlags};

pub use actions::DriftAction;
pub use drifts::{DriftFilter, DriftRecord, DriftWrite, EventRecord, NewDrift, OpenCount};
pub use history::{DriftInterval, ScanPoint};
pub use matrix::MatrixEntry;
pub use outbox::{OutboxRecord, OutboxWrite};
pub use scans::{ScanEnd, ScanRecord};
pub use schema::MIGRATIONS;
pub use values::{DriftStatus, EventKind, OutboxState, ScanKind, ScanOutcome, UnknownValue};

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
    #[error("{path}: {context}: {source}")]
    Unknown {
        path: PathBuf,
        context: &'static str,
        source: UnknownValue,
    },
    #[error("{path}: {what} {id} not found")]
    NotFound {
        path: PathBuf,
        what: &'static str,
        id: i64,
    },
}

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

/// RFC 3339 UTC with milliseconds: sorts as text.
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

/// One connection and the file it is on.
struct Db {
    conn: Mutex<Connection>,
    path: PathBuf,
}

impl Db {
    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite consistent (transactions roll back).
        self.conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The error of a query: an unknown stored value becomes [`StoreError::Unknown`].
    fn err(&self, context: &'static str) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        move |source| {
            if let rusqlite::Error::FromSqlConversionFailure(_, _, e) = &source
                && let Some(u) = e.downcast_ref::<UnknownValue>()
            {
                return StoreError::Unknown {
                    path: self.path.clone(),
                    context,
                    source: u.clone(),
                };
            }
            StoreError::Query {
                path: self.path.clone(),
                context,
                source,
            }
        }
    }

    fn not_found(&self, what: &'static str, id: i64) -> StoreError {
        StoreError::NotFound {
            path: self.path.clone(),
            what,
            id,
        }
    }
}

/// A read-only handle: every query, no write. Cheap to clone (clones share a connection).
#[derive(Clone)]
pub struct StoreReader {
    db: Arc<Db>,
}

impl std::fmt::Debug for StoreReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreReader")
            .field("path", &self.db.path)
            .finish()
    }
}

impl StoreReader {
    /// The database file (`:memory:` for an in-memory store).
    pub fn path(&self) -> &Path {
        &self.db.path
    }

    /// The schema version in use.
    pub fn schema_version(&self) -> Result<usize, StoreError> {
        let conn = self.db.conn();
        conn.pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0))
            .map(|v| v as usize)
            .map_err(self.db.err("reading the schema version"))
    }
}

/// The store's one writer (the daemon owns it). It reads too: it derefs to a
/// [`StoreReader`] on its own connection.
pub struct Store {
    reader: StoreReader,
    in_memory: bool,
    /// Random, made when the store was created (table `meta`).
    id: String,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path()).finish()
    }
}

impl Deref for Store {
    type Target = StoreReader;

    fn deref(&self) -> &StoreReader {
        &self.reader
    }
}

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
        if std::fs::symlink_metadata(path).is_err() {
            Self::create(path)?;
        }
        // An existing file must be an intact store: never replace history silently.
        let existing = std::fs::metadata(path)
            .ok()
            .filter(std::fs::Metadata::is_file);
        if existing.as_ref().is_some_and(|m| m.len() == 0) {
            return Err(unusable(format!(
                "the file is empty (0 bytes): it was truncated or is not an envdrift store. \
                 {RECOVER}"
            )));
        }
        let conn = Connection::open(path).map_err(|source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        if existing.is_some() {
            check_integrity(&conn).map_err(unusable)?;
        }
        Self::init(conn, path, false)
    }

    /// Creates a new store at `path` whole: built and migrated under a temporary name
    /// beside it, then linked into place unless another process got there first (then
    /// that one's store is used). So the store's file never exists half-made, and an
    /// empty file at `path` always means a damaged store, never a concurrent start.
    fn create(path: &Path) -> Result<(), StoreError> {
        let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
        tmp_name.push(format!(".new-{}", std::process::id()));
        let tmp = path.with_file_name(tmp_name);
        let cleanup = |p: &Path| {
            for suffix in ["", "-wal", "-shm"] {
                let mut f = p.as_os_str().to_os_string();
                f.push(suffix);
                let _ = std::fs::remove_file(PathBuf::from(f));
            }
        };
        cleanup(&tmp);
        let made = Connection::open(&tmp)
            .map_err(|source| StoreError::Open {
                path: path.to_path_buf(),
                source,
            })
            .and_then(|conn| Self::init(conn, path, false));
        // Closing the connection checkpoints the WAL into the file.
        if let Err(e) = made.map(drop) {
            cleanup(&tmp);
            return Err(e);
        }
        let linked = std::fs::hard_link(&tmp, path);
        cleanup(&tmp);
        match linked {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(StoreError::Unusable {
                path: path.to_path_buf(),
                reason: format!("cannot create the file: {}", plain_io(&e)),
            }),
        }
    }

    /// An in-memory store (tests). Its readers share its connection.
    #[cfg(test)]
    pub(crate) fn open_in_memory() -> Result<Store, StoreError> {
        let conn = Connection::open_in_memory().map_err(|source| StoreError::Open {
            path: PathBuf::from(":memory:"),
            source,
        })?;
        Self::init(conn, Path::new(":memory:"), true)
    }

    fn init(mut conn: Connection, path: &Path, in_memory: bool) -> Result<Store, StoreError> {
        let q = |context: &'static str| {
            let path = path.to_path_buf();
            move |source| StoreError::Query {
                path: path.clone(),
                context,
                source,
            }
        };
        // First, so that every statement below waits for a concurrent starter's lock.
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(q("setting the busy timeout"))?;
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
        schema::migrate(&mut conn, path)?;
        let id: String = conn
            .query_row("SELECT value FROM meta WHERE key = 'store_id'", [], |r| {
                r.get(0)
            })
            .map_err(q("reading the store id"))?;
        Ok(Store {
            id,
            reader: StoreReader {
                db: Arc::new(Db {
                    conn: Mutex::new(conn),
                    path: path.to_path_buf(),
                }),
            },
            in_memory,
        })
    }

    /// A read-only handle: on a file, its own connection opened read-only (WAL: it reads
    /// while this writer writes); in memory, this store's connection.
    ///
    /// # Errors
    /// [`StoreError::Open`] when the file cannot be opened for reading.
    pub fn reader(&self) -> Result<StoreReader, StoreError> {
        if self.in_memory {
            return Ok(self.reader.clone());
        }
        let path = self.path();
        let open = |source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        };
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
                | OpenFlags::SQLITE_OPEN_URI,
        )
        .map_err(open)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(open)?;
        Ok(StoreReader {
            db: Arc::new(Db {
                conn: Mutex::new(conn),
                path: path.to_path_buf(),
            }),
        })
    }

    fn db(&self) -> &Db {
        &self.reader.db
    }

    /// How long a write waits for another process's lock before failing (default 10 s).
    ///
    /// # Errors
    /// [`StoreError::Query`] when SQLite refuses the setting.
    pub fn set_busy_timeout(&self, wait: std::time::Duration) -> Result<(), StoreError> {
        let db = self.db();
        db.conn()
            .busy_timeout(wait)
            .map_err(db.err("setting the busy timeout"))
    }

    /// The store's own id (32 hex digits, random, made when the store was created): part
    /// of every notice id, so ids never repeat across stores, even after a reset.
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// What to do about a store that cannot be used as it is (in error messages).
const RECOVER: &str = "`envdrift store check` says what is wrong. Restore it from a backup, \
     or `envdrift store reset --yes` to move it aside and start a new, empty store (its drift \
     history and its record of sent alerts are then not used, so open drifts are alerted \
     again)";

/// `PRAGMA quick_check` of an existing store file: `Err` with the reason in plain words
/// when the file is not an SQLite database or is damaged.
fn check_integrity(conn: &Connection) -> Result<(), String> {
    let rows: rusqlite::Result<Vec<String>> = conn
        .prepare("PRAGMA quick_check(5)")
        .and_then(|mut st| st.query_map([], |r| r.get(0))?.collect());
    match rows {
        Ok(r) if r.len() == 1 && r[0] == "ok" => Ok(()),
        Ok(r) => Err(format!(
            "the file is damaged (SQLite quick_check: {}). {RECOVER}",
            r.join("; ")
        )),
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::NotADatabase =>
        {
            Err(format!("the file is not an SQLite database. {RECOVER}"))
        }
        Err(rusqlite::Error::SqliteFailure(e, m))
            if e.code == rusqlite::ErrorCode::DatabaseCorrupt =>
        {
            Err(format!(
                "the file is damaged ({}). {RECOVER}",
                m.unwrap_or_else(|| e.to_string())
            ))
        }
        // Busy, permissions, I/O: reported by the open and migration that follow.
        Err(_) => Ok(()),
    }
}

/// Reads a TEXT column into a type parsed with `FromStr` (a [`crate::model::Severity`]), an
/// unknown value being an [`UnknownValue`] naming `column`.
fn parse_text<T: std::str::FromStr>(
    r: &rusqlite::Row<'_>,
    idx: &str,
    column: &'static str,
    known: &[&str],
) -> rusqlite::Result<T> {
    let s: String = r.get(idx)?;
    s.parse().map_err(|_| {
        rusqlite::Error::FromSqlConversionFailure(
            r.as_ref().column_index(idx).unwrap_or(0),
            rusqlite::types::Type::Text,
            Box::new(UnknownValue {
                column,
                value: s.clone(),
                known: known.join(", "),
            }),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Severity;
    use serde_json::json;

    pub(super) fn nd(identity: &str, fp: &str, sev: Severity) -> NewDrift {
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

    pub(super) fn ok_end() -> ScanEnd {
        ScanEnd {
            outcome: ScanOutcome::Ok,
            ..ScanEnd::default()
        }
    }

    #[test]
    fn survives_reopen_and_refuses_newer_schema() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state/envdrift.db");
        {
            let s = Store::open(&p).unwrap();
            assert_eq!(s.schema_version().unwrap(), MIGRATIONS.len());
            let scan = s.start_scan("prod", ScanKind::Environment).unwrap();
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
    fn a_reader_sees_commits_and_cannot_write() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("envdrift.db")).unwrap();
        let r = s.reader().unwrap();
        let scan = s.start_scan("prod", ScanKind::Environment).unwrap();
        s.record_scan(
            scan,
            "prod",
            &ok_end(),
            &[DriftWrite::Open(nd("a", "f1", Severity::Low))],
            &[],
        )
        .unwrap();
        assert_eq!(r.open_drifts("prod").unwrap().len(), 1);
        assert_eq!(r.scan(scan).unwrap().outcome, ScanOutcome::Ok);
        let write = r.db.conn().execute("DELETE FROM drifts", []).unwrap_err();
        assert!(write.to_string().contains("readonly"), "{write}");
    }

    #[test]
    fn an_unknown_stored_value_names_its_column() {
        let s = Store::open_in_memory().unwrap();
        let scan = s.start_scan("prod", ScanKind::Environment).unwrap();
        s.db()
            .conn()
            .execute("UPDATE scans SET outcome = 'sideways'", [])
            .unwrap();
        match s.scan(scan) {
            Err(StoreError::Unknown { source, .. }) => {
                assert_eq!(
                    (source.column, source.value.as_str()),
                    ("scans.outcome", "sideways")
                );
            }
            other => panic!("{other:?}"),
        }
    }
}
