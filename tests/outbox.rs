//! Delivery faults: a hung sink never delays another, a panic in a delivery is counted,
//! shown as stalled and followed by a restarted queue that delivers, and a store locked
//! while "sent" is recorded retries the bookkeeping, never the delivery. Each test waits
//! on events with a time bound.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use envdrift::alert::DeliveryError;
use envdrift::alert::notice::Notice;
use envdrift::config::Config;
use envdrift::daemon::{Daemon, Deliver};
use envdrift::store::Store;
use tokio::sync::{Notify, watch};

const BOUND: Duration = Duration::from_secs(20);

/// What each stand-in sink does.
#[derive(Clone, Copy, PartialEq)]
enum Behaviour {
    /// Accepts at once.
    Fast,
    /// Never answers (a hung connection without a timeout).
    Hung,
    /// Panics on the first delivery, then accepts.
    PanicsOnce,
    /// Accepts, but first takes the store's write lock for `LOCK_HELD` in another process's
    /// place (another connection), so recording "sent" meets a locked store.
    LocksStore,
}

const LOCK_HELD: Duration = Duration::from_millis(1500);

struct Sinks {
    behaviour: BTreeMap<String, Behaviour>,
    got: Mutex<BTreeMap<String, Vec<String>>>,
    calls: AtomicUsize,
    delivered: Notify,
    panicked: Notify,
    db: PathBuf,
}

impl Sinks {
    fn new(db: PathBuf, sinks: &[(&str, Behaviour)]) -> Arc<Sinks> {
        Arc::new(Sinks {
            behaviour: sinks.iter().map(|(n, b)| ((*n).to_string(), *b)).collect(),
            got: Mutex::default(),
            calls: AtomicUsize::new(0),
            delivered: Notify::new(),
            panicked: Notify::new(),
            db,
        })
    }
    fn got(&self, sink: &str) -> Vec<String> {
        self.got
            .lock()
            .unwrap()
            .get(sink)
            .cloned()
            .unwrap_or_default()
    }
    async fn wait_for(&self, sink: &str, n: usize) {
        tokio::time::timeout(BOUND, async {
            loop {
                let notified = self.delivered.notified();
                if self.got(sink).len() >= n {
                    return;
                }
                notified.await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{sink} did not get {n} notices in {BOUND:?}"));
    }
}

impl Deliver for Sinks {
    fn sinks(&self) -> Vec<String> {
        self.behaviour.keys().cloned().collect()
    }
    fn route(&self, _: &str, n: &Notice) -> Option<Notice> {
        Some(n.clone())
    }
    fn deliver<'a>(
        &'a self,
        sink: &'a str,
        n: &'a Notice,
    ) -> Pin<Box<dyn Future<Output = Result<(), DeliveryError>> + Send + 'a>> {
        Box::pin(async move {
            let call = self.calls.fetch_add(1, Ordering::SeqCst);
            match self.behaviour.get(sink).copied() {
                Some(Behaviour::Hung) => std::future::pending::<()>().await,
                Some(Behaviour::PanicsOnce) if self.got(sink).is_empty() && call < 100 => {
                    let first = !self
                        .got
                        .lock()
                        .unwrap()
                        .contains_key(&format!("{sink}-panicked"));
                    if first {
                        self.got
                            .lock()
                            .unwrap()
                            .insert(format!("{sink}-panicked"), Vec::new());
                        self.panicked.notify_one();
                        panic!("the stand-in sink panicked on purpose");
                    }
                }
                Some(Behaviour::LocksStore) => {
                    let db = self.db.clone();
                    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
                    std::thread::spawn(move || {
                        let mut conn = rusqlite::Connection::open(&db).unwrap();
                        let tx = conn
                            .transaction_with_behavior(rusqlite::TransactionBehavior::Exclusive)
                            .unwrap();
                        locked_tx.send(()).unwrap();
                        std::thread::sleep(LOCK_HELD);
                        tx.commit().unwrap();
                    });
                    locked_rx.recv_timeout(BOUND).unwrap();
                }
                _ => {}
            }
            self.got
                .lock()
                .unwrap()
                .entry(sink.to_string())
                .or_default()
                .push(n.id.clone());
            self.delivered.notify_waiters();
            Ok(())
        })
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let dest = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_dir(&p, &dest);
        } else {
            std::fs::copy(&p, dest).unwrap();
        }
    }
}

fn setup(dir: &Path) {
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/demo");
    copy_dir(&demo.join("git/production"), &dir.join("git"));
    copy_dir(&demo.join("live/production"), &dir.join("live"));
    std::fs::write(
        dir.join("envdrift.yaml"),
        "data_dir: state\nenvironments:\n  production:\n    desired: {type: dir, path: git}\n    live: {type: dump, path: live}\n    interval: 1h\n",
    )
    .unwrap();
}

fn daemon(dir: &Path, sinks: Arc<Sinks>) -> Arc<Daemon> {
    let cfg = Config::load(&dir.join("envdrift.yaml")).unwrap();
    let store = Arc::new(Store::open(&dir.join("state/envdrift.db")).unwrap());
    let mut d = Daemon::new(cfg, dir.to_path_buf(), store, sinks).unwrap();
    d.base_backoff = Duration::from_millis(20);
    Arc::new(d)
}

/// Starts the daemon's loops and scans once (the loop's own first scan comes after a
/// jittered delay); returns the shutdown sender and the loops' task.
async fn start(d: &Arc<Daemon>) -> (watch::Sender<bool>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = watch::channel(false);
    let task = tokio::spawn(Arc::clone(d).run(rx));
    let target = d.targets().into_iter().next().expect("one target");
    d.scan(&target).await.unwrap();
    (tx, task)
}

async fn stop(tx: watch::Sender<bool>, task: tokio::task::JoinHandle<()>) {
    tx.send(true).unwrap();
    tokio::time::timeout(BOUND, task)
        .await
        .expect("the daemon stops in time")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_sink_never_delays_another_and_shutdown_still_works() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path());
    let sinks = Sinks::new(
        dir.path().join("state/envdrift.db"),
        &[("hung", Behaviour::Hung), ("fast", Behaviour::Fast)],
    );
    let d = daemon(dir.path(), sinks.clone());
    let (tx, task) = start(&d).await;
    sinks.wait_for("fast", 1).await;
    assert!(sinks.got("hung").is_empty());
    // Shutdown is not held up by the delivery that never ends; its alert stays queued.
    stop(tx, task).await;
    let pending: Vec<_> = d
        .store
        .outbox(100)
        .unwrap()
        .into_iter()
        .filter(|r| r.sink == "hung")
        .collect();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].sent_at, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_a_delivery_is_counted_shown_and_the_queue_restarts() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path());
    let sinks = Sinks::new(
        dir.path().join("state/envdrift.db"),
        &[("flaky", Behaviour::PanicsOnce), ("fast", Behaviour::Fast)],
    );
    let d = daemon(dir.path(), sinks.clone());
    let (tx, task) = start(&d).await;
    tokio::time::timeout(BOUND, sinks.panicked.notified())
        .await
        .expect("the sink was called");
    // The queue pauses (1 s) before its next round: the stall is visible meanwhile.
    let stalled = tokio::time::timeout(BOUND, async {
        loop {
            let s = d.stalled_deliveries();
            if !s.is_empty() {
                return s;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("stall recorded");
    assert!(
        stalled["flaky"].contains("panicked on purpose"),
        "{stalled:?}"
    );
    sinks.wait_for("flaky", 1).await;
    sinks.wait_for("fast", 1).await;
    // The good round that delivered clears the stall when it ends.
    tokio::time::timeout(BOUND, async {
        while !d.stalled_deliveries().is_empty() {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("stall cleared");
    let metrics = d.metrics.encode();
    assert!(
        metrics.contains("envdrift_outbox_stalled_total{sink=\"flaky\"} 1"),
        "{metrics}"
    );
    stop(tx, task).await;
    // Delivered once each, recorded as sent.
    assert_eq!(sinks.got("flaky").len(), 1);
    assert!(
        d.store
            .outbox(100)
            .unwrap()
            .iter()
            .all(|r| r.sent_at.is_some())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_store_while_recording_sent_never_sends_twice() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path());
    let db = dir.path().join("state/envdrift.db");
    let sinks = Sinks::new(db.clone(), &[("locker", Behaviour::LocksStore)]);
    let d = daemon(dir.path(), sinks.clone());
    // Far shorter than the lock is held: recording "sent" fails several times first.
    d.store.set_busy_timeout(Duration::from_millis(50)).unwrap();
    assert_eq!(d.run_once(None).await.unwrap(), 0);
    d.drain_outbox(BOUND).await.unwrap();
    assert_eq!(sinks.got("locker").len(), 1);
    let rows = d.store.outbox(100).unwrap();
    assert_eq!(rows.len(), 1);
    assert!(rows[0].sent_at.is_some(), "{:?}", rows[0]);
    assert_eq!(rows[0].attempts, 1);
    // Nothing left to send: a second drain delivers nothing more.
    d.drain_outbox(Duration::from_secs(1)).await.unwrap();
    assert_eq!(sinks.got("locker").len(), 1);
}

/// A 429 whose `Retry-After` is absurdly large (as in the issue: 100000000000000, and
/// u64::MAX) parks the alert for at most an hour, never panics the delivery and never
/// stalls it; the stand-in is the Slack Web API. (The token file is named relative to the
/// config file, as every path in it is.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_retry_after_is_clamped_to_an_hour() {
    use envdrift_testkit::Reply;
    use envdrift_testkit::slack::SlackServer;
    const TOKEN: &str = "xoxb-test-token-retry-after";
    for huge in [100_000_000_000_000u64, u64::MAX] {
        let slack = SlackServer::start(TOKEN, "/services/T0/B0/X").await;
        slack.queue(&[Reply::RateLimited(huge)]);
        let dir = tempfile::tempdir().unwrap();
        setup(dir.path());
        std::fs::write(dir.path().join("slack.token"), TOKEN).unwrap();
        let yaml = std::fs::read_to_string(dir.path().join("envdrift.yaml")).unwrap();
        std::fs::write(
            dir.path().join("envdrift.yaml"),
            format!(
                "{yaml}alerts:\n  sinks:\n    - {{type: slack, name: ops, channel: \"#drift\", token_file: slack.token, api_url: \"{}\"}}\n",
                slack.api_url()
            ),
        )
        .unwrap();
        let cfg = Config::load(&dir.path().join("envdrift.yaml")).unwrap();
        let store = Arc::new(Store::open(&dir.path().join("state/envdrift.db")).unwrap());
        let sinks =
            Arc::new(envdrift::daemon::SinkSet::from_config(&cfg.alerts, dir.path()).unwrap());
        let d = Arc::new(Daemon::new(cfg, dir.path().to_path_buf(), store, sinks).unwrap());
        let target = d.targets().into_iter().next().unwrap();
        let before = chrono::Utc::now();
        d.scan(&target).await.unwrap();
        d.drain_outbox(Duration::from_secs(1)).await.unwrap();
        assert_eq!(slack.requests(), 1);
        assert!(d.stalled_deliveries().is_empty());
        let rows = d.store.outbox(10).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!((rows[0].state.as_str(), rows[0].attempts), ("pending", 1));
        let next = chrono::DateTime::parse_from_rfc3339(&rows[0].next_attempt_at)
            .unwrap()
            .with_timezone(&chrono::Utc);
        let wait = next - before;
        assert!(
            wait >= chrono::Duration::seconds(3595) && wait <= chrono::Duration::seconds(3610),
            "Retry-After {huge}: next attempt in {wait}"
        );
    }
}
