//! The alert outbox: alerts are queued (in the transaction that caused them), delivered
//! when due, marked sent only after the sink accepted them, retried with backoff or given up.

use serde_json::Value;

use super::sql::{Dialect, Exec, Row, SqlError, args};

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

fn row_to_outbox(r: &Row) -> Result<OutboxRecord, SqlError> {
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

const OUTBOX_COLUMNS: &str = "id, notice_id, sink, kind, target, body, created_at, next_attempt_at, attempts, state, last_error, sent_at";

/// How long a claim of due alerts ([`Store::claim_due_of`]) holds: a replica killed while
/// delivering leaves its claims, and another takes them after this long.
pub const CLAIM_FOR: std::time::Duration = std::time::Duration::from_secs(300);

/// Queues an alert in a transaction (state `pending`, due now).
pub(super) fn insert(tx: &mut impl Exec, o: &OutboxWrite, now: &str) -> Result<u64, SqlError> {
    // Idempotent: the same notice for the same sink is queued once.
    tx.execute(
        "INSERT INTO outbox(notice_id, sink, kind, target, body, created_at, next_attempt_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6) ON CONFLICT(notice_id, sink) DO NOTHING",
        args![
            &o.notice_id,
            &o.sink,
            &o.kind,
            &o.target,
            o.body.to_string(),
            now
        ],
    )
}

fn rows(rows: Vec<Row>) -> Result<Vec<OutboxRecord>, SqlError> {
    rows.iter().map(row_to_outbox).collect()
}

impl Store {
    /// Queues alerts outside a scan (reports).
    pub fn enqueue(&self, outbox: &[OutboxWrite]) -> Result<(), StoreError> {
        let db = self.db();
        let now = now_rfc3339();
        db.tx("committing alerts", |tx| {
            for o in outbox {
                insert(tx, o, &now).map_err(db.err("queueing an alert"))?;
            }
            Ok(())
        })
    }

    /// Claims up to `limit` of one sink's alerts due at `now` for this store handle's owner
    /// ([`Store::owner`]) for [`CLAIM_FOR`], oldest first, and returns them. On PostgreSQL
    /// alerts another owner holds an unexpired claim on are left out, so replicas sharing
    /// the store never deliver the same alert at once (`FOR UPDATE SKIP LOCKED`: a replica
    /// claiming at the same moment skips the rows being claimed); a killed replica's claims
    /// are taken after they expire. On SQLite (one daemon) claims are bookkeeping only: a
    /// restarted daemon delivers its predecessor's claimed alerts at once. Own claims are
    /// returned again (an alert whose sent mark failed). [`Store::mark_sent`] and
    /// [`Store::mark_failed`] end the claim.
    pub fn claim_due_of(
        &self,
        sink: &str,
        now: &str,
        limit: usize,
    ) -> Result<Vec<OutboxRecord>, StoreError> {
        let db = self.db();
        let until = chrono::DateTime::parse_from_rfc3339(now)
            .map(|t| t.with_timezone(&chrono::Utc))
            .unwrap_or_else(|_| chrono::Utc::now());
        let until = super::fmt_time(
            chrono::Duration::from_std(CLAIM_FOR)
                .ok()
                .and_then(|d| until.checked_add_signed(d))
                .unwrap_or(until),
        );
        // SQLite has one writer, the one daemon: a claim left by a killed process is its own
        // predecessor's, taken over at once (a restart delivers right away, as before).
        let (others, lock) = match db.dialect {
            Dialect::Postgres => (
                " AND (claim_until IS NULL OR claim_until <= ?5 OR claimed_by = ?1)",
                " FOR UPDATE SKIP LOCKED",
            ),
            Dialect::Sqlite => ("", ""),
        };
        let owner = self.owner();
        db.tx("claiming due alerts", |tx| {
            let claimed = tx
                .query(
                    &format!(
                        "UPDATE outbox SET claimed_by = ?1, claim_until = ?2 WHERE id IN (
                            SELECT id FROM outbox WHERE state = ?3 AND sink = ?4 AND next_attempt_at <= ?5{others}
                            ORDER BY id LIMIT ?6{lock})
                         RETURNING {OUTBOX_COLUMNS}"
                    ),
                    args![owner, until, OutboxState::Pending, sink, now, limit],
                )
                .map_err(db.err("claiming due alerts"))?;
            let mut claimed = rows(claimed).map_err(db.err("claiming due alerts"))?;
            claimed.sort_by_key(|o| o.id);
            Ok(claimed)
        })
    }

    /// Marks an alert delivered (and ends its claim).
    pub fn mark_sent(&self, id: i64) -> Result<(), StoreError> {
        let db = self.db();
        db.with(|c| {
            c.execute(
                "UPDATE outbox SET state = ?3, sent_at = ?2, attempts = attempts + 1, last_error = NULL,
                    claimed_by = NULL, claim_until = NULL WHERE id = ?1",
                args![id, now_rfc3339(), OutboxState::Sent],
            )
        })
        .map_err(db.err("marking an alert sent"))?;
        Ok(())
    }

    /// Records a failed attempt: retried at `next_attempt_at`, or given up (`failed`). Ends
    /// its claim.
    pub fn mark_failed(
        &self,
        id: i64,
        error: &str,
        next_attempt_at: Option<&str>,
    ) -> Result<(), StoreError> {
        let db = self.db();
        db.with(|c| match next_attempt_at {
            Some(next) => c.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?2, next_attempt_at = ?3,
                    claimed_by = NULL, claim_until = NULL WHERE id = ?1",
                args![id, error, next],
            ),
            None => c.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?2, state = ?3,
                    claimed_by = NULL, claim_until = NULL WHERE id = ?1",
                args![id, error, OutboxState::Failed],
            ),
        })
        .map_err(db.err("recording a delivery failure"))?;
        Ok(())
    }
}

/// When a pending alert can next be delivered: its next attempt, or, on PostgreSQL, the end
/// of a claim on it if later (SQLite's one daemon ignores claims).
fn due_at(d: Dialect) -> &'static str {
    match d {
        Dialect::Postgres => {
            "MIN(CASE WHEN claim_until IS NOT NULL AND claim_until > next_attempt_at
                THEN claim_until ELSE next_attempt_at END)"
        }
        Dialect::Sqlite => "MIN(next_attempt_at)",
    }
}

impl StoreReader {
    /// Alerts due for delivery (pending, next attempt reached), oldest first.
    pub fn due_outbox(&self, now: &str, limit: usize) -> Result<Vec<OutboxRecord>, StoreError> {
        self.db
            .with(|c| {
                rows(c.query(
                    &format!(
                        "SELECT {OUTBOX_COLUMNS} FROM outbox WHERE state = ?3 AND next_attempt_at <= ?1
                         ORDER BY id LIMIT ?2"
                    ),
                    args![now, limit, OutboxState::Pending],
                )?)
            })
            .map_err(self.db.err("reading the outbox"))
    }

    /// Pending alerts of one sink due at `now`, oldest first (claimed or not; deliveries
    /// take them with [`Store::claim_due_of`]).
    pub fn due_outbox_of(
        &self,
        sink: &str,
        now: &str,
        limit: usize,
    ) -> Result<Vec<OutboxRecord>, StoreError> {
        self.db
            .with(|c| {
                rows(c.query(
                    &format!(
                        "SELECT {OUTBOX_COLUMNS} FROM outbox WHERE state = ?3 AND sink = ?4 AND next_attempt_at <= ?1
                         ORDER BY id LIMIT ?2"
                    ),
                    args![now, limit, OutboxState::Pending, sink],
                )?)
            })
            .map_err(self.db.err("reading the outbox"))
    }

    /// The earliest time one of a sink's pending alerts can be delivered (its next attempt,
    /// or the end of a claim on it).
    pub fn next_due_of(&self, sink: &str) -> Result<Option<String>, StoreError> {
        self.db
            .with(|c| {
                c.query_value(
                    &format!(
                        "SELECT {} FROM outbox WHERE state = ?1 AND sink = ?2",
                        due_at(self.db.dialect)
                    ),
                    args![OutboxState::Pending, sink],
                )
            })
            .map_err(self.db.err("reading the outbox"))
    }

    /// The earliest time a pending alert can be delivered.
    pub fn next_due(&self) -> Result<Option<String>, StoreError> {
        self.db
            .with(|c| {
                c.query_value(
                    &format!(
                        "SELECT {} FROM outbox WHERE state = ?1",
                        due_at(self.db.dialect)
                    ),
                    args![OutboxState::Pending],
                )
            })
            .map_err(self.db.err("reading the outbox"))
    }

    /// Every outbox row (API, tests), newest first.
    pub fn outbox(&self, limit: usize) -> Result<Vec<OutboxRecord>, StoreError> {
        self.db
            .with(|c| {
                rows(c.query(
                    &format!("SELECT {OUTBOX_COLUMNS} FROM outbox ORDER BY id DESC LIMIT ?1"),
                    args![limit],
                )?)
            })
            .map_err(self.db.err("reading the outbox"))
    }

    /// Counts of outbox rows by state.
    pub fn outbox_counts(&self) -> Result<Vec<(OutboxState, i64)>, StoreError> {
        self.db
            .with(|c| {
                c.query(
                    "SELECT state, COUNT(*) FROM outbox GROUP BY state ORDER BY state",
                    &[],
                )?
                .iter()
                .map(|r| Ok((r.get(0)?, r.get(1)?)))
                .collect::<Result<Vec<_>, SqlError>>()
            })
            .map_err(self.db.err("counting the outbox"))
    }
}

#[cfg(test)]
mod tests {
    use super::super::*;
    use serde_json::json;

    #[test]
    fn outbox_is_idempotent_and_retries() {
        for s in crate::store::tests::stores("outbox_is_idempotent_and_retries") {
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

    fn write(n: usize) -> OutboxWrite {
        OutboxWrite {
            notice_id: format!("prod/{n}/drift"),
            sink: "slack".into(),
            kind: "drift".into(),
            target: "prod".into(),
            body: json!({"n": n}),
        }
    }

    #[test]
    fn a_postgres_claim_holds_until_it_expires_and_sqlite_takes_over_at_once() {
        for s in crate::store::tests::stores("claims") {
            s.enqueue(&[write(1), write(2)]).unwrap();
            // A second handle on the same store is another replica (its own owner).
            let other = s.second_handle();
            assert_ne!(s.owner(), other.owner());
            let now = now_rfc3339();
            let mine = s.claim_due_of("slack", &now, 1).unwrap();
            assert_eq!(mine.len(), 1);
            if !s.is_postgres() {
                // SQLite's one daemon: a successor takes its predecessor's claims at once.
                assert_eq!(other.claim_due_of("slack", &now, 10).unwrap().len(), 2);
                continue;
            }
            let theirs = other.claim_due_of("slack", &now, 10).unwrap();
            assert_eq!(theirs.len(), 1, "only the unclaimed one");
            assert_ne!(theirs[0].id, mine[0].id);
            assert!(
                other.claim_due_of("slack", &now, 10).unwrap().len() == 1,
                "own again"
            );
            assert!(s.claim_due_of("slack", &now, 10).unwrap().len() == 1);
            // Nothing due for the other until the claim ends.
            let next = other.next_due_of("slack").unwrap().unwrap();
            assert!(next > now, "{next} after {now}");
            // A claim of a killed replica expires: after CLAIM_FOR another takes it.
            let later = crate::store::fmt_time(
                chrono::Utc::now() + chrono::Duration::from_std(CLAIM_FOR).unwrap(),
            );
            let taken = other.claim_due_of("slack", &later, 10).unwrap();
            assert_eq!(taken.len(), 2, "{taken:?}");
            // Sent ends the claim; a sent alert is never claimed again.
            other.mark_sent(taken[0].id).unwrap();
            other.mark_failed(taken[1].id, "503", None).unwrap();
            assert!(s.claim_due_of("slack", &later, 10).unwrap().is_empty());
            assert_eq!(s.next_due_of("slack").unwrap(), None);
        }
    }

    #[test]
    fn two_replicas_claiming_at_once_never_get_the_same_alert() {
        let Some(pg) = envdrift_testkit::postgres::Postgres::shared_or_skip("claim race") else {
            return;
        };
        let s = crate::store::tests::pg_store(pg, "claim race");
        let writes: Vec<OutboxWrite> = (0..200).map(write).collect();
        s.enqueue(&writes).unwrap();
        let replicas: Vec<Store> = (0..4).map(|_| s.second_handle()).collect();
        let barrier = std::sync::Barrier::new(replicas.len());
        let got: Vec<Vec<i64>> = std::thread::scope(|sc| {
            let hs: Vec<_> = replicas
                .iter()
                .map(|r| {
                    let barrier = &barrier;
                    sc.spawn(move || {
                        barrier.wait();
                        let mut ids = Vec::new();
                        loop {
                            let batch = r.claim_due_of("slack", &now_rfc3339(), 7).unwrap();
                            if batch.is_empty() {
                                return ids;
                            }
                            for o in batch {
                                ids.push(o.id);
                                r.mark_sent(o.id).unwrap();
                            }
                        }
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut all: Vec<i64> = got.iter().flatten().copied().collect();
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(
            (n, all.len()),
            (200, 200),
            "each alert claimed exactly once"
        );
        assert!(
            got.iter().filter(|g| !g.is_empty()).count() > 1,
            "the work was shared"
        );
    }
}
