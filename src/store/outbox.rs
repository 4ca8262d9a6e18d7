//! The alert outbox: alerts are queued (in the transaction that caused them), delivered
//! when due, marked sent only after the sink accepted them, retried with backoff or given up.

use rusqlite::params;
use serde_json::Value;

use super::{OutboxState, Store, StoreError, StoreReader, now_rfc3339};

/// An alert in the outbox, for one sink.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxRecord {
    pub id: i64,
    pub notice_id: String,
    pub sink: String,
    /// The notice kind (`drift`, `resolved`, `report`, …).
    pub kind: String,
    pub target: String,
    pub body: Value,
    pub created_at: String,
    pub next_attempt_at: String,
    pub attempts: i64,
    pub state: OutboxState,
    pub last_error: Option<String>,
    pub sent_at: Option<String>,
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

fn row_to_outbox(r: &rusqlite::Row<'_>) -> rusqlite::Result<OutboxRecord> {
    let body: String = r.get("body")?;
    Ok(OutboxRecord {
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

/// Queues an alert in a transaction (state `pending`, due now).
pub(super) fn insert(
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

impl Store {
    /// Queues alerts outside a scan (reports).
    pub fn enqueue(&self, outbox: &[OutboxWrite]) -> Result<(), StoreError> {
        let db = self.db();
        let mut conn = db.conn();
        let now = now_rfc3339();
        let tx = conn
            .transaction()
            .map_err(db.err("beginning a transaction"))?;
        for o in outbox {
            insert(&tx, o, &now).map_err(db.err("queueing an alert"))?;
        }
        tx.commit().map_err(db.err("committing alerts"))
    }

    /// Marks an alert delivered.
    pub fn mark_sent(&self, id: i64) -> Result<(), StoreError> {
        let db = self.db();
        let conn = db.conn();
        conn.execute(
            "UPDATE outbox SET state = ?3, sent_at = ?2, attempts = attempts + 1, last_error = NULL WHERE id = ?1",
            params![id, now_rfc3339(), OutboxState::Sent],
        )
        .map_err(db.err("marking an alert sent"))?;
        Ok(())
    }

    /// Records a failed attempt: retried at `next_attempt_at`, or given up (`failed`).
    pub fn mark_failed(
        &self,
        id: i64,
        error: &str,
        next_attempt_at: Option<&str>,
    ) -> Result<(), StoreError> {
        let db = self.db();
        let conn = db.conn();
        match next_attempt_at {
            Some(next) => conn.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?2, next_attempt_at = ?3 WHERE id = ?1",
                params![id, error, next],
            ),
            None => conn.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?2, state = ?3 WHERE id = ?1",
                params![id, error, OutboxState::Failed],
            ),
        }
        .map_err(db.err("recording a delivery failure"))?;
        Ok(())
    }
}

impl StoreReader {
    /// Alerts due for delivery (pending, next attempt reached), oldest first.
    pub fn due_outbox(&self, now: &str, limit: usize) -> Result<Vec<OutboxRecord>, StoreError> {
        let conn = self.db.conn();
        let mut stmt = conn
            .prepare(
                "SELECT id, notice_id, sink, kind, target, body, created_at, next_attempt_at, attempts, state, last_error, sent_at
                 FROM outbox WHERE state = ?3 AND next_attempt_at <= ?1 ORDER BY id LIMIT ?2",
            )
            .map_err(self.db.err("reading the outbox"))?;
        let rows = stmt
            .query_map(
                params![now, limit as i64, OutboxState::Pending],
                row_to_outbox,
            )
            .map_err(self.db.err("reading the outbox"))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(self.db.err("reading the outbox"))
    }

    /// Pending alerts of one sink due at `now`, oldest first.
    pub fn due_outbox_of(
        &self,
        sink: &str,
        now: &str,
        limit: usize,
    ) -> Result<Vec<OutboxRecord>, StoreError> {
        let conn = self.db.conn();
        let mut stmt = conn
            .prepare(
                "SELECT id, notice_id, sink, kind, target, body, created_at, next_attempt_at, attempts, state, last_error, sent_at
                 FROM outbox WHERE state = ?3 AND sink = ?4 AND next_attempt_at <= ?1 ORDER BY id LIMIT ?2",
            )
            .map_err(self.db.err("reading the outbox"))?;
        let rows = stmt
            .query_map(
                params![
                    now,
                    i64::try_from(limit).unwrap_or(i64::MAX),
                    OutboxState::Pending,
                    sink
                ],
                row_to_outbox,
            )
            .map_err(self.db.err("reading the outbox"))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(self.db.err("reading the outbox"))
    }

    /// The earliest next attempt among one sink's pending alerts.
    pub fn next_due_of(&self, sink: &str) -> Result<Option<String>, StoreError> {
        let conn = self.db.conn();
        conn.query_row(
            "SELECT MIN(next_attempt_at) FROM outbox WHERE state = ?1 AND sink = ?2",
            params![OutboxState::Pending, sink],
            |r| r.get(0),
        )
        .map_err(self.db.err("reading the outbox"))
    }

    /// The earliest next attempt among pending alerts.
    pub fn next_due(&self) -> Result<Option<String>, StoreError> {
        let conn = self.db.conn();
        conn.query_row(
            "SELECT MIN(next_attempt_at) FROM outbox WHERE state = ?1",
            [OutboxState::Pending],
            |r| r.get(0),
        )
        .map_err(self.db.err("reading the outbox"))
    }

    /// Every outbox row (API, tests), newest first.
    pub fn outbox(&self, limit: usize) -> Result<Vec<OutboxRecord>, StoreError> {
        let conn = self.db.conn();
        let mut stmt = conn
            .prepare(
                "SELECT id, notice_id, sink, kind, target, body, created_at, next_attempt_at, attempts, state, last_error, sent_at
                 FROM outbox ORDER BY id DESC LIMIT ?1",
            )
            .map_err(self.db.err("reading the outbox"))?;
        let rows = stmt
            .query_map(params![limit as i64], row_to_outbox)
            .map_err(self.db.err("reading the outbox"))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(self.db.err("reading the outbox"))
    }

    /// Counts of outbox rows by state.
    pub fn outbox_counts(&self) -> Result<Vec<(OutboxState, i64)>, StoreError> {
        let conn = self.db.conn();
        let mut stmt = conn
            .prepare("SELECT state, COUNT(*) FROM outbox GROUP BY state ORDER BY state")
            .map_err(self.db.err("counting the outbox"))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(self.db.err("counting the outbox"))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(self.db.err("counting the outbox"))
    }
}

#[cfg(test)]
mod tests {
    use super::super::*;
    use serde_json::json;

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
        assert_eq!((all[0].state, all[0].attempts), (OutboxState::Sent, 2));
        assert_eq!(s.outbox_counts().unwrap(), [(OutboxState::Sent, 1)]);
    }
}
