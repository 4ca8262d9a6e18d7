//! Store-based ownership (`daemon.coordination.type: store`, issue 17) on the test kit's
//! real PostgreSQL server: replicas split the targets by rendezvous hashing, none is owned
//! twice, a stopped replica's targets are taken over after the lease duration, and a
//! clean shutdown releases every claim at once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use envdrift::daemon::shard::Ownership;
use envdrift::daemon::shard_store::StoreLeases;
use envdrift::store::{PostgresTarget, Store};
use envdrift_testkit::postgres::Postgres;

const LEASE: Duration = Duration::from_secs(2);

fn keys() -> Vec<String> {
    (0..24).map(|i| format!("environment/env-{i:02}")).collect()
}

fn replica(dsn: &str, name: &str) -> Arc<StoreLeases> {
    let store = Store::open_postgres(&PostgresTarget {
        url: dsn.to_string(),
        ca_file: None,
    })
    .unwrap();
    Arc::new(StoreLeases::new(
        Arc::new(store),
        name.into(),
        LEASE,
        keys(),
    ))
}

fn owned(r: &StoreLeases) -> Vec<String> {
    keys().into_iter().filter(|k| r.owns(k)).collect()
}

/// Runs rounds of `rs` until `done` holds, at most `limit`.
async fn rounds_until(rs: &[&Arc<StoreLeases>], limit: Duration, done: impl Fn() -> bool) {
    let t = Instant::now();
    loop {
        for r in rs {
            r.round().await.unwrap();
        }
        if done() {
            return;
        }
        assert!(t.elapsed() < limit, "not settled within {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_split_targets_through_the_store_and_take_over_after_expiry() {
    let Some(pg) = Postgres::shared_or_skip("store leases") else {
        return;
    };
    let dsn = pg.create_database("store leases").unwrap();
    let (a, b) = (replica(&dsn, "replica-a"), replica(&dsn, "replica-b"));
    // Both join; a took everything first, b gets its half once a stops renewing it.
    rounds_until(&[&a, &b], LEASE * 4, || {
        let (oa, ob) = (owned(&a), owned(&b));
        !oa.is_empty() && !ob.is_empty() && oa.len() + ob.len() == keys().len()
    })
    .await;
    let (oa, ob) = (owned(&a), owned(&b));
    assert!(
        oa.iter().all(|k| !ob.contains(k)),
        "owned twice: {oa:?} {ob:?}"
    );
    // Fair spread: rendezvous hashing gives each of two members a share.
    assert!(
        oa.len() >= 4 && ob.len() >= 4,
        "{} / {}",
        oa.len(),
        ob.len()
    );
    // b stops (SIGKILL-like: no release): a owns everything within the lease duration
    // plus a round.
    let stopped = Instant::now();
    rounds_until(&[&a], LEASE * 3, || owned(&a).len() == keys().len()).await;
    assert!(
        stopped.elapsed() <= LEASE + LEASE / 3 + Duration::from_millis(500),
        "takeover took {:?}",
        stopped.elapsed()
    );
    // A clean shutdown releases at once: a new replica takes its share without waiting.
    let (tx, rx) = tokio::sync::watch::channel(false);
    let run = tokio::spawn(a.clone().run(rx));
    tx.send(true).unwrap();
    run.await.unwrap();
    assert!(owned(&a).is_empty(), "a stopped scanning on shutdown");
    let c = replica(&dsn, "replica-c");
    c.round().await.unwrap();
    assert_eq!(
        owned(&c).len(),
        keys().len(),
        "released claims are free at once"
    );
}
