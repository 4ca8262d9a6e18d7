//! `envdrift store check|backup|reset`: looking after a store file without the daemon.
//! Each works on the file alone (read-only for `check` and `backup`), so it also works on a
//! store the daemon refused to open.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

use super::{StoreError, plain_io};

/// What `store check` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    /// SQLite's `integrity_check` said `ok` and the schema is one this envdrift knows.
    pub ok: bool,
    /// Each problem in plain words (empty when `ok`).
    pub problems: Vec<String>,
    pub schema_version: Option<i64>,
    pub store_id: Option<String>,
    pub scans: Option<i64>,
    pub open_drifts: Option<i64>,
    pub pending_alerts: Option<i64>,
}

fn unusable(path: &Path, reason: String) -> StoreError {
    StoreError::Unusable {
        path: path.to_path_buf(),
        reason,
    }
}

fn open_read_only(path: &Path) -> Result<Connection, StoreError> {
    match std::fs::metadata(path) {
        Err(e) => return Err(unusable(path, format!("cannot read it: {}", plain_io(&e)))),
        Ok(m) if !m.is_file() => return Err(unusable(path, "it is not a regular file".into())),
        Ok(_) => {}
    }
    Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(|source| {
        StoreError::Open {
            path: path.to_path_buf(),
            source: source.into(),
        }
    })
}

/// Checks a store file: SQLite's full `integrity_check`, the schema version, and what it
/// holds.
///
/// # Errors
/// [`StoreError::Unusable`] or [`StoreError::Open`] when the file cannot be read at all.
pub fn check(path: &Path) -> Result<CheckReport, StoreError> {
    let conn = open_read_only(path)?;
    let mut problems = Vec::new();
    if std::fs::metadata(path).is_ok_and(|m| m.len() == 0) {
        problems.push("the file is empty (0 bytes)".to_string());
    }
    let integrity: rusqlite::Result<Vec<String>> = conn
        .prepare("PRAGMA integrity_check(20)")
        .and_then(|mut st| st.query_map([], |r| r.get(0))?.collect());
    match integrity {
        Ok(rows) if rows.len() == 1 && rows[0] == "ok" => {}
        Ok(rows) => problems.extend(rows.into_iter().map(|r| format!("SQLite: {r}"))),
        Err(e) => problems.push(format!("SQLite: {e}")),
    }
    let one = |sql: &str| -> Option<i64> { conn.query_row(sql, [], |r| r.get(0)).ok() };
    let schema_version = one("PRAGMA user_version");
    let known = i64::try_from(super::MIGRATIONS.len()).unwrap_or(i64::MAX);
    match schema_version {
        Some(0) if problems.is_empty() => {
            problems.push("no envdrift schema in it (schema version 0)".into());
        }
        Some(v) if v > known => problems.push(format!(
            "schema version {v} is newer than this envdrift knows ({known}); upgrade envdrift"
        )),
        _ => {}
    }
    let store_id = conn
        .query_row("SELECT value FROM meta WHERE key = 'store_id'", [], |r| {
            r.get(0)
        })
        .ok();
    Ok(CheckReport {
        ok: problems.is_empty(),
        problems,
        schema_version,
        store_id,
        scans: one("SELECT COUNT(*) FROM scans"),
        open_drifts: one("SELECT COUNT(*) FROM drifts WHERE status = 'open'"),
        pending_alerts: one("SELECT COUNT(*) FROM outbox WHERE state = 'pending'"),
    })
}

/// Writes a consistent copy of the store to `out` (SQLite `VACUUM INTO`), while a daemon
/// may be running on it. `out` must not exist.
///
/// # Errors
/// [`StoreError::Unusable`] when `out` exists or the copy fails.
pub fn backup(path: &Path, out: &Path) -> Result<(), StoreError> {
    if std::fs::symlink_metadata(out).is_ok() {
        return Err(unusable(
            path,
            format!("the backup file {} exists already", out.display()),
        ));
    }
    let conn = open_read_only(path)?;
    let target = out.to_string_lossy().into_owned();
    conn.execute("VACUUM INTO ?1", [target]).map_err(|e| {
        unusable(
            path,
            format!("backing it up to {} failed: {e}", out.display()),
        )
    })?;
    Ok(())
}

/// Moves the store file (and its WAL files) aside, as `NAME.broken-TIME`, so that the next
/// start creates a new, empty store. Returns the new name. Nothing is deleted.
///
/// # Errors
/// [`StoreError::Unusable`] when there is no store file or it cannot be renamed.
pub fn reset(path: &Path, now: chrono::DateTime<chrono::Utc>) -> Result<PathBuf, StoreError> {
    if std::fs::symlink_metadata(path).is_err() {
        return Err(unusable(path, "there is no store file to reset".into()));
    }
    let stamp = now.format("%Y%m%dT%H%M%SZ");
    let with = |p: &Path, suffix: &str| {
        let mut s = p.as_os_str().to_os_string();
        s.push(suffix);
        PathBuf::from(s)
    };
    let aside = with(path, &format!(".broken-{stamp}"));
    if std::fs::symlink_metadata(&aside).is_ok() {
        return Err(unusable(
            path,
            format!("{} exists already; try again in a second", aside.display()),
        ));
    }
    std::fs::rename(path, &aside)
        .map_err(|e| unusable(path, format!("cannot move it aside: {}", plain_io(&e))))?;
    for suffix in ["-wal", "-shm"] {
        let f = with(path, suffix);
        if std::fs::symlink_metadata(&f).is_ok() {
            let _ = std::fs::rename(&f, with(&aside, suffix));
        }
    }
    Ok(aside)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_backup_reset_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("envdrift.db");
        let s = super::super::Store::open(&db).unwrap();
        let id = s.id().to_string();
        drop(s);
        let r = check(&db).unwrap();
        assert!(r.ok, "{r:?}");
        assert_eq!(r.store_id.as_deref(), Some(id.as_str()));
        assert_eq!(r.scans, Some(0));
        let copy = dir.path().join("copy.db");
        backup(&db, &copy).unwrap();
        assert!(check(&copy).unwrap().ok);
        assert!(backup(&db, &copy).is_err(), "never overwrites");
        let now = chrono::DateTime::parse_from_rfc3339("2026-12-04T01:02:03Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let aside = reset(&db, now).unwrap();
        assert!(aside.ends_with("envdrift.db.broken-20261204T010203Z"));
        assert!(!db.exists());
        assert!(reset(&db, now).is_err());
        // Damaged: check names the problem.
        let mut bytes = std::fs::read(&aside).unwrap();
        bytes[..16].copy_from_slice(b"not a database!\0");
        std::fs::write(&db, bytes).unwrap();
        let r = check(&db).unwrap();
        assert!(!r.ok);
        assert!(r.problems[0].contains("not a database"), "{r:?}");
    }
}
