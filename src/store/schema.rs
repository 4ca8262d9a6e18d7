//! The schema: versioned migrations ([`MIGRATIONS`]), tracked in `PRAGMA user_version`.

use rusqlite::Connection;

use super::StoreError;
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
    // The latest comparison scan's matrix: one row per resource that differs or is
    // expected (equal ones are not stored), replaced each scan (src/store/matrix.rs).
    "CREATE TABLE comparison_resources (
        target TEXT NOT NULL,
        resource TEXT NOT NULL,
        state TEXT NOT NULL,
        differing INTEGER NOT NULL,
        expected INTEGER NOT NULL,
        rules TEXT NOT NULL,
        scan_id INTEGER NOT NULL,
        PRIMARY KEY (target, resource)
    );",
];

/// Brings the schema at `path` up to [`MIGRATIONS`], all in one exclusive transaction.
///
/// # Errors
/// [`StoreError::TooNew`] when a newer envdrift wrote the file, [`StoreError::Migrate`]
/// naming the version that failed.
pub(super) fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let query = |context: &'static str| {
        move |source| StoreError::Query {
            path: path.to_path_buf(),
            context,
            source,
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
        let failed = |source| StoreError::Migrate {
            path: path.to_path_buf(),
            version,
            source,
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
