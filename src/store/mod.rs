//! The daemon's state: scans, drifts with their lifecycle and history, snapshot hashes,
//! and the alert outbox, in SQLite (rusqlite, WAL; the embedded default) or PostgreSQL
//! (several replicas on one store; [`Store::open_postgres`], docs/store.md).
//!
//! Both backends sit under one synchronous API through a small neutral layer (`sql`): every
//! query is written once, with `?N` placeholders, in the SQL both accept; the dialects
//! differ only in DDL types, the schema version's home and the row locks that let
//! replicas share work (`FOR UPDATE SKIP LOCKED`: the outbox's claims, `coord`'s targets).
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
//! - `sql`: the backend-neutral layer (connections, values, rows, transactions);
//! - `pg`: connecting to PostgreSQL (URL, TLS), the store's redacted name;
//! - `schema`: the versioned migrations ([`MIGRATIONS`]; `PRAGMA user_version` on SQLite,
//!   table `envdrift_schema` under an advisory lock on PostgreSQL);
//! - `coord`: targets owned by one replica at a time, and the queue of requested scans;
//! - `scans`: scan start and end, scan queries;
//! - `drifts`: the drift lifecycle writes, drift queries, ack and silence, history events;
//! - `outbox`: alerts queued, due, sent, failed;
//! - `reports`: report runs, retention, counts for reports and metrics;
//! - `slack_refs`: each drift's Slack message and each alert's Slack posts (the Slack sink's
//!   message lifecycle), and the drift ids of an alert's drifts at delivery;
//! - `history`: drift intervals and scan outcomes over time (trends).

mod coord;
mod drifts;
mod history;
pub mod maintenance;
mod outbox;
mod pg;
mod reports;
mod scans;
mod schema;
pub mod slack_refs;
pub(crate) mod sql;
mod values;

use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OpenFlags};

use sql::{Conn, Dialect, Exec, SqlError};

pub use coord::ScanRequest;
pub use drifts::{DriftFilter, DriftRecord, DriftWrite, EventRecord, NewDrift, OpenCount};
pub use history::{DriftInterval, ScanPoint};
pub use outbox::{CLAIM_FOR, OutboxRecord, OutboxWrite};
pub use pg::PostgresTarget;
pub use scans::{ScanEnd, ScanRecord};
pub use schema::MIGRATIONS;
pub use values::{
    DriftStatus, EventKind, OutboxState, ScanKind, ScanOutcome, ScanRequestState, UnknownValue,
};

/// Errors of the store; each names the database file (or, for PostgreSQL, the database as
/// `postgres://user@host:port/db`, never with its password).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{}: cannot open the store: {source}", path.display())]
    Open { path: PathBuf, source: SqlError },
    /// The store's file or directory cannot be used, in plain words.
    #[error("{}: cannot open the store: {reason}", path.display())]
    Unusable { path: PathBuf, reason: String },
    #[error("{}: migration to schema version {version} failed: {source}", path.display())]
    Migrate {
        path: PathBuf,
        version: usize,
        source: SqlError,
    },
    #[error(
        "{}: the store's schema version {found} is newer than this envdrift knows ({known}); upgrade envdrift", path.display()
    )]
    TooNew {
        path: PathBuf,
        found: usize,
        known: usize,
    },
    #[error("{}: {context}: {source}", path.display())]
    Query {
        path: PathBuf,
        context: &'static str,
        source: SqlError,
    },
    #[error("{}: {context}: {source}", path.display())]
    Unknown {
        path: PathBuf,
        context: &'static str,
        source: UnknownValue,
    },
    #[error("{}: {what} {id} not found", path.display())]
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

/// One connection and the store it is on (the file, or PostgreSQL's redacted name).
struct Db {
    conn: Mutex<Conn>,
    path: PathBuf,
    dialect: Dialect,
}

impl Db {
    fn new(conn: Conn, path: PathBuf) -> Db {
        Db {
            dialect: conn.dialect(),
            conn: Mutex::new(conn),
            path,
        }
    }

    /// Runs `f` on the connection: on PostgreSQL on a thread where its blocking client
    /// may run (`sql::on_plain_thread`), so async callers never panic.
    fn with<T: Send>(&self, f: impl FnOnce(&mut Conn) -> T + Send) -> T {
        // A panic while holding the lock leaves the database consistent (transactions roll
        // back).
        let mut guard = self
            .conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let conn: &mut Conn = &mut guard;
        match self.dialect {
            Dialect::Sqlite => f(conn),
            Dialect::Postgres => sql::on_plain_thread(move || f(conn)),
        }
    }

    /// `f` in one transaction (see [`Conn::transaction`]).
    fn tx<T: Send>(
        &self,
        context: &'static str,
        f: impl FnOnce(&mut sql::Tx<'_>) -> Result<T, StoreError> + Send,
    ) -> Result<T, StoreError> {
        let err = self.err(context);
        self.with(|c| {
            c.transaction(|tx| f(tx).map_err(TxError::Store))
                .map_err(|e: TxError| match e {
                    TxError::Store(s) => s,
                    TxError::Sql(e) => err(e),
                })
        })
    }

    /// The error of a query: an unknown stored value becomes [`StoreError::Unknown`].
    fn err(&self, context: &'static str) -> impl Fn(SqlError) -> StoreError + Send + Sync + '_ {
        move |source| {
            if let SqlError::Unknown(u) = source {
                return StoreError::Unknown {
                    path: self.path.clone(),
                    context,
                    source: u,
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

/// An error inside [`Db::tx`]: the store's own (already named), or the SQL layer's (the
/// commit's, named by the transaction's context).
enum TxError {
    Store(StoreError),
    Sql(SqlError),
}

impl From<SqlError> for TxError {
    fn from(e: SqlError) -> TxError {
        TxError::Sql(e)
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
    /// The database file (`:memory:` for an in-memory store; for PostgreSQL its name as
    /// `postgres://user@host:port/db`, without the password).
    pub fn path(&self) -> &Path {
        &self.db.path
    }

    /// Whether the store is PostgreSQL (shared by replicas) rather than SQLite.
    pub fn is_postgres(&self) -> bool {
        self.db.dialect == Dialect::Postgres
    }

    /// The schema version in use.
    pub fn schema_version(&self) -> Result<usize, StoreError> {
        self.db
            .with(schema::version)
            .map(|v| usize::try_from(v).unwrap_or(usize::MAX))
            .map_err(self.db.err("reading the schema version"))
    }
}

/// The store's one writer (the daemon owns it). It reads too: it derefs to a
/// [`StoreReader`] on its own connection.
pub struct Store {
    reader: StoreReader,
    in_memory: bool,
    /// PostgreSQL: where it is (readers open their own connections there).
    pg: Option<PostgresTarget>,
    /// This handle's name in claims (outbox, targets): random, made when it was opened.
    owner: String,
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
            source: source.into(),
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
        // Unique per process and per call: two opens in one process never share it either.
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tmp_name.push(format!(".new-{}-{n}", std::process::id()));
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
                source: source.into(),
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
            source: source.into(),
        })?;
        Self::init(conn, Path::new(":memory:"), true)
    }

    fn init(mut conn: Connection, path: &Path, in_memory: bool) -> Result<Store, StoreError> {
        let q = |context: &'static str| {
            let path = path.to_path_buf();
            move |source: rusqlite::Error| StoreError::Query {
                path: path.clone(),
                context,
                source: source.into(),
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
        schema::migrate_sqlite(&mut conn, path)?;
        Self::with_conn(Conn::Sqlite(conn), path.to_path_buf(), in_memory, None)
    }

    /// A store on a migrated connection.
    fn with_conn(
        conn: Conn,
        path: PathBuf,
        in_memory: bool,
        pg: Option<PostgresTarget>,
    ) -> Result<Store, StoreError> {
        let db = Db::new(conn, path);
        let id: String = db
            .with(|c| c.query_value("SELECT value FROM meta WHERE key = 'store_id'", &[]))
            .map_err(db.err("reading the store id"))?;
        let mut bytes = [0u8; 8];
        // Without the OS's random source the time and process id still tell handles apart.
        if getrandom::fill(&mut bytes).is_err() {
            bytes = chrono::Utc::now()
                .timestamp_nanos_opt()
                .unwrap_or_default()
                .to_le_bytes();
        }
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "envdrift".into());
        let owner = format!(
            "{host}-{}-{}",
            std::process::id(),
            bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
        );
        Ok(Store {
            id,
            reader: StoreReader { db: Arc::new(db) },
            in_memory,
            pg,
            owner,
        })
    }

    /// Opens the PostgreSQL store at `target` and migrates it (under an advisory lock:
    /// replicas starting together migrate once).
    ///
    /// # Errors
    /// [`StoreError::Open`] (connecting, TLS), [`StoreError::Migrate`],
    /// [`StoreError::TooNew`]; each names the database without its password.
    pub fn open_postgres(target: &PostgresTarget) -> Result<Store, StoreError> {
        let name = target.display_name();
        let conn = sql::on_plain_thread(|| -> Result<Conn, StoreError> {
            let mut client = pg::connect(target, false)?;
            schema::migrate_postgres(&mut client, &name)?;
            Ok(Conn::Postgres(sql::PgClient::new(client)))
        })?;
        Self::with_conn(conn, name, false, Some(target.clone()))
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
        if let Some(target) = &self.pg {
            let client = sql::on_plain_thread(|| pg::connect(target, true))?;
            return Ok(StoreReader {
                db: Arc::new(Db::new(
                    Conn::Postgres(sql::PgClient::new(client)),
                    self.path().to_path_buf(),
                )),
            });
        }
        let path = self.path();
        let open = |source: rusqlite::Error| StoreError::Open {
            path: path.to_path_buf(),
            source: source.into(),
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
            db: Arc::new(Db::new(Conn::Sqlite(conn), path.to_path_buf())),
        })
    }

    fn db(&self) -> &Db {
        &self.reader.db
    }

    /// How long a write waits for another process's lock before failing (default 10 s on
    /// SQLite; on PostgreSQL its `lock_timeout`, default none).
    ///
    /// # Errors
    /// [`StoreError::Query`] when the database refuses the setting.
    pub fn set_busy_timeout(&self, wait: std::time::Duration) -> Result<(), StoreError> {
        let db = self.db();
        db.with(|c| match c {
            Conn::Sqlite(c) => c.busy_timeout(wait).map_err(SqlError::from),
            Conn::Postgres(_) => c
                .batch(&format!("SET lock_timeout = {}", wait.as_millis()))
                .map(drop),
        })
        .map_err(db.err("setting the busy timeout"))
    }

    /// This handle's name in claims of alerts ([`Store::claim_due_of`]): `HOSTNAME-pid-random`,
    /// made when the store was opened, so two processes (or two opens) never share one.
    pub fn owner(&self) -> &str {
        &self.owner
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
    r: &sql::Row,
    idx: &str,
    column: &'static str,
    known: &[&str],
) -> Result<T, SqlError> {
    let s: String = r.get(idx)?;
    s.parse().map_err(|_| {
        SqlError::Unknown(UnknownValue {
            column,
            value: s.clone(),
            known: known.join(", "),
        })
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
    fn daemons_opening_a_fresh_sqlite_store_at_once_all_succeed_on_one_store() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state/envdrift.db");
        let barrier = std::sync::Barrier::new(6);
        let ids: Vec<String> = std::thread::scope(|sc| {
            let hs: Vec<_> = (0..6)
                .map(|_| {
                    sc.spawn(|| {
                        barrier.wait();
                        let s = Store::open(&p).unwrap();
                        assert_eq!(s.schema_version().unwrap(), MIGRATIONS.len());
                        s.id().to_string()
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(ids.iter().all(|i| i == &ids[0]), "{ids:?}");
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
        let write =
            r.db.with(|c| c.execute("DELETE FROM drifts", &[]))
                .unwrap_err();
        assert!(write.to_string().contains("readonly"), "{write}");
    }

    /// Each store a test runs on: an in-memory SQLite store and a fresh database on the test
    /// kit's PostgreSQL server (which must start, unless `ENVDRIFT_TEST_NO_POSTGRES=1`).
    pub(crate) fn stores(test: &str) -> Vec<Store> {
        let mut v = vec![Store::open_in_memory().unwrap()];
        if let Some(pg) = envdrift_testkit::postgres::Postgres::shared_or_skip(test) {
            v.push(pg_store(pg, test));
        }
        v
    }

    impl Store {
        /// Another handle on the same store, as another replica would open it (its own
        /// owner name); in memory, a handle on the same connection.
        pub(crate) fn second_handle(&self) -> Store {
            match &self.pg {
                Some(t) => Store::open_postgres(t).unwrap(),
                None => {
                    let mut other = Store {
                        reader: self.reader.clone(),
                        in_memory: self.in_memory,
                        pg: None,
                        owner: String::new(),
                        id: self.id.clone(),
                    };
                    other.owner = format!("{}-second", self.owner);
                    other
                }
            }
        }
    }

    /// A store on a fresh database of the test kit's PostgreSQL server.
    pub(crate) fn pg_store(pg: &envdrift_testkit::postgres::Postgres, test: &str) -> Store {
        let url = pg.create_database(test).unwrap();
        Store::open_postgres(&PostgresTarget { url, ca_file: None }).unwrap()
    }

    #[test]
    fn a_postgres_reader_sees_commits_and_cannot_write() {
        let Some(pg) = envdrift_testkit::postgres::Postgres::shared_or_skip("reader") else {
            return;
        };
        let s = pg_store(pg, "reader");
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
        assert!(r.is_postgres());
        let write =
            r.db.with(|c| c.execute("DELETE FROM drifts", &[]))
                .unwrap_err();
        assert!(write.to_string().contains("read-only"), "{write}");
        assert_eq!(s.schema_version().unwrap(), MIGRATIONS.len());
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_postgres_store_works_from_inside_the_async_runtime() {
        let Some(pg) = envdrift_testkit::postgres::Postgres::shared_or_skip("async") else {
            return;
        };
        // Opening, querying, writing and dropping all happen on a runtime thread here: the
        // blocking client must be moved off it, not panic.
        let s = pg_store(pg, "async");
        let scan = s.start_scan("prod", ScanKind::Environment).unwrap();
        s.record_scan(scan, "prod", &ok_end(), &[], &[]).unwrap();
        let r = s.reader().unwrap();
        let got = tokio::task::spawn(async move { r.scan(scan).map(|x| x.outcome) })
            .await
            .unwrap();
        assert_eq!(got.unwrap(), ScanOutcome::Ok);
        drop(s);
    }

    #[test]
    fn replicas_opening_a_fresh_postgres_store_at_once_migrate_it_once() {
        let Some(pg) = envdrift_testkit::postgres::Postgres::shared_or_skip("migrate") else {
            return;
        };
        let url = pg.create_database("migrate at once").unwrap();
        let target = PostgresTarget { url, ca_file: None };
        let barrier = std::sync::Barrier::new(6);
        let ids: Vec<String> = std::thread::scope(|sc| {
            let hs: Vec<_> = (0..6)
                .map(|_| {
                    sc.spawn(|| {
                        barrier.wait();
                        let s = Store::open_postgres(&target).unwrap();
                        assert_eq!(s.schema_version().unwrap(), MIGRATIONS.len());
                        s.id().to_string()
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        // One store id: the migration that makes it ran once.
        assert!(ids.iter().all(|i| i == &ids[0] && i.len() == 32), "{ids:?}");
        let s = Store::open_postgres(&target).unwrap();
        let rows: i64 = s
            .db()
            .with(|c| c.query_value("SELECT COUNT(*) FROM envdrift_schema", &[]))
            .unwrap();
        assert_eq!(rows, 1);
    }

    #[test]
    fn a_newer_postgres_schema_is_refused_and_errors_never_show_the_password() {
        let Some(pg) = envdrift_testkit::postgres::Postgres::shared_or_skip("secret") else {
            return;
        };
        let url = pg.create_database("too new").unwrap();
        let target = PostgresTarget {
            url: url.clone(),
            ca_file: None,
        };
        let s = Store::open_postgres(&target).unwrap();
        assert!(!s.path().to_string_lossy().contains(pg.password()));
        assert!(!format!("{s:?}").contains(pg.password()));
        s.db()
            .with(|c| c.execute("UPDATE envdrift_schema SET version = 99", &[]))
            .unwrap();
        let e = Store::open_postgres(&target).unwrap_err();
        assert!(matches!(e, StoreError::TooNew { found: 99, .. }), "{e}");
        // A failing query names the store without the password.
        let q = s
            .db()
            .with(|c| c.execute("SELECT nothing FROM nowhere", &[]))
            .map_err(s.db().err("a test query"))
            .unwrap_err()
            .to_string();
        assert!(q.starts_with("postgres://envdrift@127.0.0.1:"), "{q}");
        assert!(!q.contains(pg.password()), "{q}");
        // A wrong password and a closed port: refused, the message without either secret.
        let wrong = PostgresTarget {
            url: url.replace(pg.password(), "not-the-password"),
            ca_file: None,
        };
        let e = Store::open_postgres(&wrong).unwrap_err().to_string();
        assert!(e.contains("password authentication failed"), "{e}");
        assert!(
            !e.contains("not-the-password") && !e.contains(pg.password()),
            "{e}"
        );
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let gone = PostgresTarget {
            url: format!(
                "postgres://envdrift:{}@127.0.0.1:{port}/x?sslmode=disable",
                pg.password()
            ),
            ca_file: None,
        };
        let e = Store::open_postgres(&gone).unwrap_err().to_string();
        assert!(!e.contains(pg.password()), "{e}");
        assert!(
            e.starts_with(&format!("postgres://envdrift@127.0.0.1:{port}/x")),
            "{e}"
        );
    }

    #[test]
    fn an_unknown_stored_value_names_its_column() {
        for s in crate::store::tests::stores("an_unknown_stored_value_names_its_column") {
            let scan = s.start_scan("prod", ScanKind::Environment).unwrap();
            s.db()
                .with(|c| c.execute("UPDATE scans SET outcome = 'sideways'", &[]))
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
}
