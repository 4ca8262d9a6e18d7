//! The schema: versioned migrations ([`MIGRATIONS`]), the same for both backends. SQLite
//! tracks the version in `PRAGMA user_version` and migrates in one exclusive transaction;
//! PostgreSQL in table `envdrift_schema`, in one transaction holding an advisory lock, so
//! replicas starting together migrate once (the others wait, then find it current).
//!
//! Migrations are written in SQLite's DDL; [`pg_ddl`] makes PostgreSQL's from it (64-bit
//! integers, identity keys, a random id), so one list serves both.

use rusqlite::Connection;

use super::StoreError;
use super::sql::{Conn, Exec, SqlError};
use std::path::Path;

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
    // 2: the store's own id, random, made once when the store is created: notice ids
    // include it, so two stores (a reset one, another installation) never reuse one.
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    INSERT INTO meta(key, value) VALUES ('store_id', lower(hex(randomblob(16))));",
    // 3: Slack messages of drifts (src/store/slack_refs.rs): each drift's message per sink
    // (chat.update and thread replies go there), and each post of an alert, claimed before it
    // is sent and completed with its ts after, so a retried alert never posts a part twice.
    "CREATE TABLE slack_messages (
        sink TEXT NOT NULL,
        drift_id INTEGER NOT NULL,
        channel TEXT NOT NULL,
        ts TEXT NOT NULL,
        thread_ts TEXT NOT NULL,
        notice_id TEXT NOT NULL,
        posted_at TEXT NOT NULL,
        PRIMARY KEY (sink, drift_id)
    );
    CREATE TABLE slack_posts (
        sink TEXT NOT NULL,
        notice_id TEXT NOT NULL,
        part TEXT NOT NULL,
        channel TEXT,
        ts TEXT,
        claimed_at TEXT NOT NULL,
        PRIMARY KEY (sink, notice_id, part)
    );",
    // 4: claims of due alerts (src/store/outbox.rs): on PostgreSQL several replicas share the
    // outbox; each alert is claimed by one (`FOR UPDATE SKIP LOCKED`) until `claim_until`.
    "ALTER TABLE outbox ADD COLUMN claimed_by TEXT;
    ALTER TABLE outbox ADD COLUMN claim_until TEXT;",
    // 5: coordination without a cluster (src/store/coord.rs): which replica owns which
    // target until when, and the queue of requested scans run by the owner.
    "CREATE TABLE targets (
        name TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        until TEXT NOT NULL,
        claimed_at TEXT NOT NULL
    );
    CREATE TABLE scan_requests (
        id INTEGER PRIMARY KEY,
        target TEXT NOT NULL,
        requested_at TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'queued',
        taken_by TEXT,
        taken_at TEXT,
        finished_at TEXT,
        outcome TEXT
    );
    CREATE INDEX scan_requests_state ON scan_requests(state, target, id);",
];

/// PostgreSQL's DDL for a migration written for SQLite: every `INTEGER` is a `BIGINT` (the
/// store reads and writes 64-bit integers), an `INTEGER PRIMARY KEY` an identity column (a
/// row id as in SQLite), and SQLite's random id expression PostgreSQL's.
pub(super) fn pg_ddl(sql: &str) -> String {
    sql.replace(
        "INTEGER PRIMARY KEY",
        "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
    )
    .replace("INTEGER", "BIGINT")
    .replace(
        "lower(hex(randomblob(16)))",
        "md5(random()::text || clock_timestamp()::text)",
    )
}

/// The advisory lock key of migrations ("envdrift" in ASCII).
const MIGRATION_LOCK: i64 = 0x656e_7664_7269_6674;

/// The schema version of a connection's database.
pub(super) fn version(conn: &mut Conn) -> Result<i64, SqlError> {
    match conn {
        Conn::Sqlite(c) => Ok(c.pragma_query_value(None, "user_version", |r| r.get(0))?),
        Conn::Postgres(_) => conn.query_value("SELECT version FROM envdrift_schema", &[]),
    }
}

/// Brings a PostgreSQL database up to [`MIGRATIONS`] in one transaction under an advisory
/// lock.
///
/// # Errors
/// [`StoreError::TooNew`], [`StoreError::Migrate`] naming the version that failed,
/// [`StoreError::Query`].
pub(super) fn migrate_postgres(
    client: &mut postgres::Client,
    path: &Path,
) -> Result<(), StoreError> {
    let query = |context: &'static str| {
        move |source: postgres::Error| StoreError::Query {
            path: path.to_path_buf(),
            context,
            source: source.into(),
        }
    };
    let mut tx = client
        .transaction()
        .map_err(query("beginning the migration"))?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .map_err(query("locking the store to migrate it"))?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS envdrift_schema (version BIGINT NOT NULL);
         INSERT INTO envdrift_schema(version) SELECT 0
            WHERE NOT EXISTS (SELECT 1 FROM envdrift_schema);",
    )
    .map_err(query("making the schema version table"))?;
    let found: i64 = tx
        .query_one("SELECT version FROM envdrift_schema", &[])
        .and_then(|r| r.try_get(0))
        .map_err(query("reading the schema version"))?;
    let found = usize::try_from(found).unwrap_or(usize::MAX);
    if found > MIGRATIONS.len() {
        return Err(StoreError::TooNew {
            path: path.to_path_buf(),
            found,
            known: MIGRATIONS.len(),
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found) {
        let version = i + 1;
        let v = i64::try_from(version).unwrap_or(i64::MAX);
        tx.batch_execute(&pg_ddl(sql))
            .and_then(|()| {
                tx.execute("UPDATE envdrift_schema SET version = $1", &[&v])
                    .map(drop)
            })
            .map_err(|source| StoreError::Migrate {
                path: path.to_path_buf(),
                version,
                source: source.into(),
            })?;
    }
    tx.commit().map_err(query("committing the migrations"))
}

/// Brings the schema at `path` up to [`MIGRATIONS`], all in one exclusive transaction.
///
/// # Errors
/// [`StoreError::TooNew`] when a newer envdrift wrote the file, [`StoreError::Migrate`]
/// naming the version that failed.
pub(super) fn migrate_sqlite(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let query = |context: &'static str| {
        move |source: rusqlite::Error| StoreError::Query {
            path: path.to_path_buf(),
            context,
            source: source.into(),
        }
    };
    // One exclusive transaction for reading the version and migrating: two processes
    // starting together on one store run the migrations once, the second waiting (busy
    // timeout) and then finding the schema current.
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Exclusive)
        .map_err(query("locking the store to migrate it"))?;
    let found = tx
        .pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0))
        .map_err(query("reading the schema version"))?;
    let found = usize::try_from(found).unwrap_or(usize::MAX);
    if found > MIGRATIONS.len() {
        return Err(StoreError::TooNew {
            path: path.to_path_buf(),
            found,
            known: MIGRATIONS.len(),
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found) {
        let version = i + 1;
        let failed = |source: rusqlite::Error| StoreError::Migrate {
            path: path.to_path_buf(),
            version,
            source: source.into(),
        };
        tx.execute_batch(sql)
            .and_then(|()| {
                tx.pragma_update(
                    None,
                    "user_version",
                    i64::try_from(version).unwrap_or(i64::MAX),
                )
            })
            .map_err(failed)?;
    }
    tx.commit().map_err(query("committing the migrations"))
}
