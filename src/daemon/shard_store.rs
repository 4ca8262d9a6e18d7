//! Store-based ownership (`daemon.coordination.type: store`): the Lease semantics of
//! [`super::shard::KubeLeases`] over the shared PostgreSQL store's `targets` table
//! ([`crate::store::Store::claim_targets`]), for setups without a cluster.
//!
//! Membership is a row `member/<identity>` in the same table, claimed with the same
//! expiry; the live members are the unexpired `member/` rows. Each round (every third of
//! the lease duration) renews the membership row, computes the targets that rendezvous
//! hashing gives this replica and claims them: free, expired or already one's own rows
//! are taken, the others wait for their holder to stop renewing them (a replica
//! rebalanced away stops claiming; its claim expires within the lease duration). A round
//! that fails drops every target (scanning stops); shutdown releases every row.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::shard::{Ownership, ShardMetrics, owner};
use crate::store::{Store, StoreError};

const MEMBER_PREFIX: &str = "member/";

/// Store-based coordination of one replica.
pub struct StoreLeases {
    store: Arc<Store>,
    identity: String,
    duration: Duration,
    keys: Vec<String>,
    owned: Mutex<BTreeMap<String, Instant>>,
    tx: watch::Sender<u64>,
    pub metrics: ShardMetrics,
}

impl Ownership for StoreLeases {
    fn owns(&self, key: &str) -> bool {
        self.lock()
            .get(key)
            .is_some_and(|until| Instant::now() < *until)
    }
    fn subscribe(&self) -> watch::Receiver<u64> {
        self.tx.subscribe()
    }
}

/// The live members among `rows` (`(name, owner, until)`) at `now` (RFC 3339), sorted,
/// with `me` always in.
fn live_members(rows: &[(String, String, String)], now: &str, me: &str) -> Vec<String> {
    let mut set: std::collections::BTreeSet<String> = rows
        .iter()
        .filter(|(name, _, until)| name.starts_with(MEMBER_PREFIX) && until.as_str() > now)
        .map(|(_, owner, _)| owner.clone())
        .collect();
    set.insert(me.to_string());
    set.into_iter().collect()
}

impl StoreLeases {
    /// Coordination of `keys` (every target of the config) through `store`.
    pub fn new(store: Arc<Store>, identity: String, duration: Duration, keys: Vec<String>) -> Self {
        StoreLeases {
            store,
            identity,
            duration,
            keys,
            owned: Mutex::default(),
            tx: watch::channel(0).0,
            metrics: ShardMetrics::default(),
        }
    }

    /// This replica's identity.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Instant>> {
        self.owned
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Makes the owned set exactly `now_owned` (until `until`), logging and signalling
    /// changes.
    fn set_owned(&self, now_owned: &[String], until: Instant) {
        let mut owned = self.lock();
        let before: Vec<String> = owned.keys().cloned().collect();
        owned.clear();
        for k in now_owned {
            owned.insert(k.clone(), until);
        }
        let after: Vec<String> = owned.keys().cloned().collect();
        let n = owned.len();
        drop(owned);
        self.metrics.owned.set(i64::try_from(n).unwrap_or(i64::MAX));
        if before != after {
            for k in after.iter().filter(|k| !before.contains(k)) {
                tracing::info!(target_key = %k, identity = %self.identity, "target acquired");
            }
            for k in before.iter().filter(|k| !after.contains(k)) {
                tracing::info!(target_key = %k, identity = %self.identity, "target lost or released");
            }
            self.tx.send_modify(|v| *v = v.wrapping_add(1));
        }
    }

    fn drop_all(&self) {
        self.set_owned(&[], Instant::now());
    }

    /// The blocking part of a round: returns the targets owned now and the member count.
    fn claim(&self) -> Result<(Vec<String>, usize), StoreError> {
        let me = &self.identity;
        self.store
            .claim_targets(me, &[format!("{MEMBER_PREFIX}{me}")], self.duration)?;
        let rows = self.store.target_owners()?;
        let now = crate::store::fmt_time(chrono::Utc::now());
        let members = live_members(&rows, &now, me);
        let mine: Vec<String> = self
            .keys
            .iter()
            .filter(|k| owner(&members, k) == Some(me.as_str()))
            .cloned()
            .collect();
        let owned = self.store.claim_targets(me, &mine, self.duration)?;
        Ok((owned, members.len()))
    }

    /// One round: membership, then this replica's targets.
    ///
    /// # Errors
    /// A store error (every target is dropped then).
    pub async fn round(self: &Arc<Self>) -> Result<(), String> {
        let until = Instant::now() + self.duration;
        let me = self.clone();
        let res = tokio::task::spawn_blocking(move || me.claim())
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()));
        match res {
            Ok((owned, members)) => {
                self.metrics
                    .members
                    .set(i64::try_from(members).unwrap_or(i64::MAX));
                self.set_owned(&owned, until);
                Ok(())
            }
            Err(e) => {
                self.metrics.renew_failures.inc();
                self.drop_all();
                Err(e)
            }
        }
    }

    /// Runs rounds every third of the lease duration until `stop` turns true, then
    /// releases every claim of this replica.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let every = self.duration / 3;
        loop {
            match tokio::time::timeout(every.max(Duration::from_millis(500)), self.round()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::warn!(identity = %self.identity, error = %e, "store claim round failed: owning nothing until the next one");
                }
                Err(_) => {
                    self.metrics.renew_failures.inc();
                    self.drop_all();
                    tracing::warn!(identity = %self.identity, "store claim round timed out: owning nothing until the next one");
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.changed() => {}
            }
            if *stop.borrow() {
                break;
            }
        }
        self.drop_all();
        let me = self.clone();
        let released =
            tokio::task::spawn_blocking(move || me.store.release_targets(&me.identity)).await;
        match released {
            Ok(Ok(n)) => {
                tracing::info!(identity = %self.identity, released = n, "store claims released")
            }
            Ok(Err(e)) => {
                tracing::warn!(identity = %self.identity, error = %e, "releasing store claims (they expire by themselves)")
            }
            Err(e) => {
                tracing::warn!(identity = %self.identity, error = %e, "releasing store claims (they expire by themselves)")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, owner: &str, until: &str) -> (String, String, String) {
        (name.into(), owner.into(), until.into())
    }

    #[test]
    fn live_members_are_unexpired_member_rows_and_always_include_oneself() {
        let now = "2026-12-04T22:00:00Z";
        let rows = vec![
            row("member/a", "a", "2026-12-04T22:00:10Z"),
            row("member/b", "b", "2026-12-04T21:59:59Z"),
            row("environment/x", "c", "2026-12-04T22:00:10Z"),
        ];
        assert_eq!(
            live_members(&rows, now, "d"),
            vec!["a".to_string(), "d".into()]
        );
    }
}
