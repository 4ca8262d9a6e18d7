//! The daemon on a PostgreSQL store (the test kit's real server): a scan and its alert from
//! inside the async runtime, two daemons on one store delivering each alert once, the
//! `store` config block, and a measured figure (`record_scan` of 1,000 drifts, SQLite vs
//! PostgreSQL; `--ignored`).

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use envdrift::alert::DeliveryError;
use envdrift::alert::notice::Notice;
use envdrift::config::{Config, StoreConfig};
use envdrift::daemon::{Daemon, Deliver};
use envdrift::model::Severity;
use envdrift::store::{
    DriftWrite, NewDrift, PostgresTarget, ScanEnd, ScanKind, ScanOutcome, Store,
};
use envdrift_testkit::postgres::Postgres;

/// A sink shared by both daemons: every delivery, by notice id.
#[derive(Default)]
struct Counter {
    got: Mutex<Vec<String>>,
}

impl Deliver for Counter {
    fn sinks(&self) -> Vec<String> {
        vec!["counter".into()]
    }
    fn route(&self, _: &str, n: &Notice) -> Option<Notice> {
        Some(n.clone())
    }
    fn deliver<'a>(
        &'a self,
        _: &'a str,
        n: &'a Notice,
    ) -> Pin<Box<dyn Future<Output = Result<(), DeliveryError>> + Send + 'a>> {
        Box::pin(async move {
            self.got.lock().unwrap().push(n.id.clone());
            Ok(())
        })
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let p = e.path();
        if p.is_dir() {
            copy_dir(&p, &to.join(e.file_name()));
        } else {
            std::fs::copy(&p, to.join(e.file_name())).unwrap();
        }
    }
}

/// The demo's production environment with its config using a PostgreSQL store whose URL
/// comes from a file.
fn env_with_postgres(dsn: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/demo");
    copy_dir(&demo.join("git/production"), &dir.path().join("git"));
    copy_dir(&demo.join("live/production"), &dir.path().join("live"));
    std::fs::write(dir.path().join("dsn"), format!("{dsn}\n")).unwrap();
    std::fs::write(
        dir.path().join("envdrift.yaml"),
        "store: {type: postgres, url_file: dsn}\nenvironments:\n  production:\n    desired: {type: dir, path: git}\n    live: {type: dump, path: live}\n",
    )
    .unwrap();
    dir
}

fn open(dir: &Path) -> (Config, Store) {
    let cfg = Config::load(&dir.join("envdrift.yaml")).unwrap();
    let Some(StoreConfig::Postgres(p)) = &cfg.store else {
        panic!("{:?}", cfg.store)
    };
    let (url, ca_file) = p.target(dir).unwrap();
    let store = Store::open_postgres(&PostgresTarget { url, ca_file }).unwrap();
    (cfg, store)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_daemons_on_one_postgres_store_deliver_each_alert_once() {
    let Some(pg) = Postgres::shared_or_skip("two daemons") else {
        return;
    };
    let dsn = pg.create_database("two daemons").unwrap();
    let dir = env_with_postgres(&dsn);
    let sink = Arc::new(Counter::default());
    let (cfg, store) = open(dir.path());
    assert!(store.is_postgres());
    assert!(!store.path().to_string_lossy().contains(pg.password()));
    let a = Arc::new(
        Daemon::new(cfg, dir.path().to_path_buf(), Arc::new(store), sink.clone()).unwrap(),
    );
    let (cfg, store) = open(dir.path());
    let b = Arc::new(
        Daemon::new(cfg, dir.path().to_path_buf(), Arc::new(store), sink.clone()).unwrap(),
    );
    // a scans (the store is written from the runtime's threads) and queues its alert; then
    // both deliver at once from the shared outbox.
    a.scan(&envdrift::daemon::Target::Environment("production".into()))
        .await
        .unwrap();
    let (ra, rb) = tokio::join!(
        a.drain_outbox(Duration::from_secs(10)),
        b.drain_outbox(Duration::from_secs(10))
    );
    ra.unwrap();
    rb.unwrap();
    let got = sink.got.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "one alert, delivered once: {got:?}");
    // The drifts are in the shared store for both (the API of either replica reads them).
    let ra = a.store.reader().unwrap().open_drifts("production").unwrap();
    let rb = b.store.reader().unwrap().open_drifts("production").unwrap();
    assert_eq!((ra.len(), rb.len()), (6, 6));
    assert_eq!(a.store.outbox(10).unwrap()[0].state.as_str(), "sent");
}

fn drift(i: usize) -> DriftWrite {
    DriftWrite::Open(NewDrift {
        identity: format!("Deployment shop/web-{i}:/spec/template/spec/containers/0/image"),
        fingerprint: format!("fp-{i}"),
        resource: format!("Deployment shop/web-{i}"),
        drift_type: "modified".into(),
        severity: Severity::High,
        categories: vec!["image".into()],
        body: serde_json::json!({"i": i, "from": "shop:1.0", "to": "shop:1.1"}),
    })
}

/// `cargo test --test store_postgres -- --ignored --nocapture record_scan_of_1000`
#[test]
#[ignore = "a measurement, run by hand"]
fn record_scan_of_1000_drifts_sqlite_vs_postgres() {
    let pg = Postgres::shared().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Store::open(&dir.path().join("envdrift.db")).unwrap();
    let postgres = Store::open_postgres(&PostgresTarget {
        url: pg.create_database("bench").unwrap(),
        ca_file: None,
    })
    .unwrap();
    let writes: Vec<DriftWrite> = (0..1000).map(drift).collect();
    let end = ScanEnd {
        outcome: ScanOutcome::Ok,
        drifts: 1000,
        ..ScanEnd::default()
    };
    for (name, s) in [("sqlite", &sqlite), ("postgres", &postgres)] {
        let mut times = Vec::new();
        for round in 0..5 {
            let target = format!("env-{round}");
            let scan = s.start_scan(&target, ScanKind::Environment).unwrap();
            let t = Instant::now();
            s.record_scan(scan, &target, &end, &writes, &[]).unwrap();
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        times.sort_by(f64::total_cmp);
        println!(
            "{name}: record_scan of 1,000 new drifts: median {:.0} ms (min {:.0}, max {:.0})",
            times[2], times[0], times[4]
        );
    }
}
