//! Coordination of replicas through the store, for sources that have no cluster to hold
//! Kubernetes Leases (dir, dump, git): which replica owns which target until when
//! (table `targets`), and the queue of requested scans (table `scan_requests`) that lets
//! the API run on every replica while a triggered scan runs on the target's owner.
//!
//! - [`Store::claim_targets`]: take the named targets that are free, expired or already
//!   one's own, for `ttl` (renewing one's own); returns the ones owned now. One upsert per
//!   target whose `DO UPDATE … WHERE` only takes a free or expired row, in one transaction
//!   in name order (so two replicas claiming overlapping sets never deadlock): on
//!   PostgreSQL a concurrent claim of the same target waits for the other's row lock and
//!   then sees it taken.
//! - [`Store::release_targets`]: give all of an owner's targets up (a clean shutdown).
//! - [`Store::queue_scan_request`], [`Store::take_scan_requests`] (`FOR UPDATE SKIP
//!   LOCKED` on PostgreSQL: two owners never take one request),
//!   [`Store::finish_scan_request`], [`StoreReader::scan_request`].
//!
//! Times are RFC 3339 UTC text, compared as text, as everywhere in the store.

use std::time::Duration;

use super::sql::{Dialect, Exec, Row, SqlError, Value, args};
use super::{ScanRequestState, Store, StoreError, StoreReader, fmt_time};

/// A requested scan of a target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanRequest {
    pub id: i64,
    pub target: String,
    pub requested_at: String,
    pub state: ScanRequestState,
    /// The owner that took it.
    pub taken_by: Option<String>,
    pub taken_at: Option<String>,
    pub finished_at: Option<String>,
    /// How it ended (the scan's outcome, or an error), as the owner wrote it.
    pub outcome: Option<String>,
}

const REQUEST_COLUMNS: &str =
    "id, target, requested_at, state, taken_by, taken_at, finished_at, outcome";

fn row_to_request(r: &Row) -> Result<ScanRequest, SqlError> {
    Ok(ScanRequest {
        id: r.get("id")?,
        target: r.get("target")?,
        requested_at: r.get("requested_at")?,
        state: r.get("state")?,
        taken_by: r.get("taken_by")?,
        taken_at: r.get("taken_at")?,
        finished_at: r.get("finished_at")?,
        outcome: r.get("outcome")?,
    })
}

fn later(now: chrono::DateTime<chrono::Utc>, by: Duration) -> String {
    fmt_time(
        chrono::Duration::from_std(by)
            .ok()
            .and_then(|d| now.checked_add_signed(d))
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC),
    )
}

impl Store {
    /// Claims the targets `names` for `owner` until `ttl` from now: each one that no one
    /// owns, whose owner's claim has expired, or that `owner` holds already (renewed).
    /// Returns the names `owner` holds now, sorted.
    ///
    /// # Errors
    /// [`StoreError::Query`].
    pub fn claim_targets(
        &self,
        owner: &str,
        names: &[String],
        ttl: Duration,
    ) -> Result<Vec<String>, StoreError> {
        self.claim_targets_at(owner, names, ttl, chrono::Utc::now())
    }

    /// [`Store::claim_targets`] at a given time (tests).
    fn claim_targets_at(
        &self,
        owner: &str,
        names: &[String],
        ttl: Duration,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<String>, StoreError> {
        let db = self.db();
        let (now_s, until) = (fmt_time(now), later(now, ttl));
        let mut sorted: Vec<&String> = names.iter().collect();
        sorted.sort();
        sorted.dedup();
        db.tx("claiming targets", |tx| {
            let mut owned = Vec::new();
            for name in sorted {
                let got = tx
                    .query_opt(
                        "INSERT INTO targets(name, owner, until, claimed_at) VALUES (?1, ?2, ?3, ?4)
                         ON CONFLICT(name) DO UPDATE SET owner = excluded.owner, until = excluded.until,
                            claimed_at = CASE WHEN targets.owner = excluded.owner
                                THEN targets.claimed_at ELSE excluded.claimed_at END
                         WHERE targets.owner = excluded.owner OR targets.until <= ?4
                         RETURNING name",
                        args![name, owner, &until, &now_s],
                    )
                    .map_err(db.err("claiming a target"))?;
                if got.is_some() {
                    owned.push(name.clone());
                }
            }
            Ok(owned)
        })
    }

    /// Gives up every target `owner` holds; returns how many.
    ///
    /// # Errors
    /// [`StoreError::Query`].
    pub fn release_targets(&self, owner: &str) -> Result<u64, StoreError> {
        let db = self.db();
        db.with(|c| c.execute("DELETE FROM targets WHERE owner = ?1", args![owner]))
            .map_err(db.err("releasing targets"))
    }

    /// Queues a scan of `target` for its owner; returns the request's id. A request still
    /// queued for the target is reused (its id returned): scans asked for twice before the
    /// owner took them run once.
    ///
    /// # Errors
    /// [`StoreError::Query`].
    pub fn queue_scan_request(&self, target: &str) -> Result<i64, StoreError> {
        let db = self.db();
        let now = super::now_rfc3339();
        db.tx("queueing a scan request", |tx| {
            let queued = tx
                .query_opt(
                    "SELECT id FROM scan_requests WHERE target = ?1 AND state = ?2 ORDER BY id LIMIT 1",
                    args![target, ScanRequestState::Queued],
                )
                .and_then(|r| r.map(|r| r.get::<i64>(0)).transpose())
                .map_err(db.err("queueing a scan request"))?;
            if let Some(id) = queued {
                return Ok(id);
            }
            tx.query_value(
                "INSERT INTO scan_requests(target, requested_at, state) VALUES (?1, ?2, ?3) RETURNING id",
                args![target, &now, ScanRequestState::Queued],
            )
            .map_err(db.err("queueing a scan request"))
        })
    }

    /// Takes the queued scan requests of `targets` (the ones `owner` owns) for `owner`,
    /// oldest first; also requests another owner took of a target `owner` now holds in the
    /// `targets` table ([`Store::claim_targets`]): the taker died or gave the target up
    /// before finishing (with Kubernetes Leases instead of the table, such requests stay
    /// taken; the daemon's wiring requeues them). On PostgreSQL the rows are
    /// locked with `FOR UPDATE SKIP LOCKED`: two replicas taking at once never take one
    /// request both.
    ///
    /// # Errors
    /// [`StoreError::Query`].
    pub fn take_scan_requests(
        &self,
        owner: &str,
        targets: &[String],
    ) -> Result<Vec<ScanRequest>, StoreError> {
        if targets.is_empty() {
            return Ok(Vec::new());
        }
        let db = self.db();
        let lock = match db.dialect {
            Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
            Dialect::Sqlite => "",
        };
        let mut params: Vec<Value> = vec![
            owner.into(),
            super::now_rfc3339().into(),
            ScanRequestState::Taken.into(),
            ScanRequestState::Queued.into(),
        ];
        let mut list = Vec::new();
        for t in targets {
            params.push(t.into());
            list.push(format!("?{}", params.len()));
        }
        let sql = format!(
            "UPDATE scan_requests SET state = ?3, taken_by = ?1, taken_at = ?2 WHERE id IN (
                SELECT id FROM scan_requests s WHERE s.target IN ({list})
                  AND (s.state = ?4 OR (s.state = ?3 AND s.taken_by != ?1 AND EXISTS (
                        SELECT 1 FROM targets t WHERE t.name = s.target AND t.owner = ?1)))
                ORDER BY s.id{lock})
             RETURNING {REQUEST_COLUMNS}",
            list = list.join(", ")
        );
        db.tx("taking scan requests", |tx| {
            let rows = tx
                .query(&sql, &params)
                .map_err(db.err("taking scan requests"))?;
            let mut taken = rows
                .iter()
                .map(row_to_request)
                .collect::<Result<Vec<_>, _>>()
                .map_err(db.err("taking scan requests"))?;
            taken.sort_by_key(|r| r.id);
            Ok(taken)
        })
    }

    /// Records that a requested scan ran, with its `outcome` (the scan's, or an error).
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when there is no such request.
    pub fn finish_scan_request(&self, id: i64, outcome: &str) -> Result<(), StoreError> {
        let db = self.db();
        let n = db
            .with(|c| {
                c.execute(
                    "UPDATE scan_requests SET state = ?2, finished_at = ?3, outcome = ?4 WHERE id = ?1",
                    args![id, ScanRequestState::Done, super::now_rfc3339(), outcome],
                )
            })
            .map_err(db.err("finishing a scan request"))?;
        if n == 0 {
            return Err(db.not_found("scan request", id));
        }
        Ok(())
    }
}

impl StoreReader {
    /// A scan request by id (the API answers where a triggered scan is).
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when there is no such request.
    pub fn scan_request(&self, id: i64) -> Result<ScanRequest, StoreError> {
        self.db
            .with(|c| {
                c.query_opt(
                    &format!("SELECT {REQUEST_COLUMNS} FROM scan_requests WHERE id = ?1"),
                    args![id],
                )?
                .map(|r| row_to_request(&r))
                .transpose()
            })
            .map_err(self.db.err("reading a scan request"))?
            .ok_or_else(|| self.db.not_found("scan request", id))
    }

    /// Every target's owner and the end of its claim, by name.
    ///
    /// # Errors
    /// [`StoreError::Query`].
    pub fn target_owners(&self) -> Result<Vec<(String, String, String)>, StoreError> {
        self.db
            .with(|c| {
                c.query("SELECT name, owner, until FROM targets ORDER BY name", &[])?
                    .iter()
                    .map(|r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                    .collect::<Result<Vec<_>, SqlError>>()
            })
            .map_err(self.db.err("reading target owners"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::stores;

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| (*s).to_string()).collect()
    }

    #[test]
    fn targets_are_owned_by_one_replica_renewed_and_taken_over_after_expiry() {
        for s in stores("targets") {
            let t0 = chrono::Utc::now();
            let ttl = Duration::from_secs(15);
            let all = names(&["prod", "staging", "dev"]);
            assert_eq!(
                s.claim_targets_at("a", &names(&["prod", "dev"]), ttl, t0)
                    .unwrap(),
                names(&["dev", "prod"])
            );
            // b gets only what a does not hold.
            assert_eq!(
                s.claim_targets_at("b", &all, ttl, t0).unwrap(),
                names(&["staging"])
            );
            // a renews its own (10 s later), and cannot take b's.
            let t1 = t0 + chrono::Duration::seconds(10);
            assert_eq!(
                s.claim_targets_at("a", &all, ttl, t1).unwrap(),
                names(&["dev", "prod"])
            );
            // a stops renewing (killed): 20 s after t1 b takes a's targets over.
            let t2 = t1 + chrono::Duration::seconds(20);
            assert_eq!(
                s.claim_targets_at("b", &all, ttl, t2).unwrap(),
                names(&["dev", "prod", "staging"])
            );
            assert!(s.claim_targets_at("a", &all, ttl, t2).unwrap().is_empty());
            let owners = s.target_owners().unwrap();
            assert!(owners.iter().all(|(_, o, _)| o == "b"), "{owners:?}");
            assert_eq!(s.release_targets("b").unwrap(), 3);
            assert_eq!(s.claim_targets_at("a", &all, ttl, t2).unwrap().len(), 3);
        }
    }

    #[test]
    fn a_requested_scan_is_taken_once_by_the_owner_and_finished() {
        for s in stores("scan requests") {
            let ttl = Duration::from_secs(15);
            let id = s.queue_scan_request("prod").unwrap();
            assert_eq!(s.queue_scan_request("prod").unwrap(), id, "queued once");
            let other = s.queue_scan_request("staging").unwrap();
            s.claim_targets("a", &names(&["prod"]), ttl).unwrap();
            s.claim_targets("b", &names(&["staging"]), ttl).unwrap();
            let a = s.take_scan_requests("a", &names(&["prod"])).unwrap();
            assert_eq!(a.iter().map(|r| r.id).collect::<Vec<_>>(), [id]);
            assert_eq!(
                (a[0].state, a[0].taken_by.as_deref()),
                (ScanRequestState::Taken, Some("a"))
            );
            assert!(
                s.take_scan_requests("a", &names(&["prod"]))
                    .unwrap()
                    .is_empty()
            );
            // A new request while the first runs is a new one.
            let again = s.queue_scan_request("prod").unwrap();
            assert_ne!(again, id);
            s.finish_scan_request(id, "ok").unwrap();
            let done = s.scan_request(id).unwrap();
            assert_eq!(
                (done.state, done.outcome.as_deref()),
                (ScanRequestState::Done, Some("ok"))
            );
            assert!(done.finished_at.is_some());
            assert!(matches!(
                s.finish_scan_request(9999, "ok"),
                Err(StoreError::NotFound { .. })
            ));
            // b took staging's request, then died and lost staging: a, its new owner, takes
            // the orphaned request over.
            let b = s.take_scan_requests("b", &names(&["staging"])).unwrap();
            assert_eq!(b[0].id, other);
            s.release_targets("b").unwrap();
            s.claim_targets("a", &names(&["staging"]), ttl).unwrap();
            let took = s
                .take_scan_requests("a", &names(&["prod", "staging"]))
                .unwrap();
            assert_eq!(
                took.iter().map(|r| r.id).collect::<Vec<_>>(),
                [other, again]
            );
        }
    }

    #[test]
    fn replicas_taking_requests_at_once_never_take_one_twice() {
        let Some(pg) = envdrift_testkit::postgres::Postgres::shared_or_skip("request race") else {
            return;
        };
        let s = crate::store::tests::pg_store(pg, "request race");
        let targets: Vec<String> = (0..40).map(|i| format!("env-{i}")).collect();
        for t in &targets {
            s.queue_scan_request(t).unwrap();
        }
        let replicas: Vec<Store> = (0..4).map(|_| s.second_handle()).collect();
        let barrier = std::sync::Barrier::new(replicas.len());
        let got: Vec<Vec<i64>> = std::thread::scope(|sc| {
            let hs: Vec<_> = replicas
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    let (barrier, targets) = (&barrier, &targets);
                    sc.spawn(move || {
                        barrier.wait();
                        let me = format!("r{i}");
                        (0..5)
                            .flat_map(|_| r.take_scan_requests(&me, targets).unwrap())
                            .map(|q| q.id)
                            .collect()
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut all: Vec<i64> = got.iter().flatten().copied().collect();
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!((n, all.len()), (40, 40), "{got:?}");
    }
}
