//! Watch mode (issue 15): an environment whose live side is a cluster with `watch: true`
//! (the default) keeps its objects current with watches ([`WatchStore`]) instead of
//! re-listing them every interval, and evaluates each change as it happens.
//!
//! - **Incremental evaluation**: the objects that changed within the coalescing window
//!   (`live.coalesce`, default 1 s; a rollout touching an object many times makes one
//!   evaluation) are compared against the desired side through the one run path
//!   ([`run::run`] on a [`Job`](crate::run::Job) whose sides hold only those objects), and
//!   the result goes through the same lifecycle and outbox as a scan, with visibility
//!   limited to those objects' drifts: nothing else is resolved or reported.
//! - **Hash check**: an event whose object is unchanged once status, resourceVersion,
//!   managedFields, generation and the Deployment revision annotation are set aside costs
//!   a hash and nothing else (see `watch_hash` in [`crate::source::kube`]).
//! - **Full evaluations**: when every watch finished its first list (one info log line per
//!   environment), when a type becomes unknown or is listed again, when the desired side
//!   changed (read again every `desired_interval`, default 1 min: a Git fetch), and every
//!   `interval` (default 1 h in watch mode), which also lists every type again (a resync
//!   catching anything a watch missed).
//! - **Metrics**: per environment, type and namespace scope: connected, seconds since the
//!   last event, relists, errors; a histogram of the time from a change's first event to
//!   its alert being queued in the outbox.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use tokio::sync::watch as signal;

use super::scan::{self, ScanOutput};
use super::{Daemon, Produced, Target};
use crate::config::{EnvironmentConfig, SourceConfig, parse_duration};
use crate::model::{ResourceKey, Snapshot};
use crate::report::Mode;
use crate::run::{self, Src};
use crate::source::kube::{self, WatchChange, WatchHandle, WatchStore};
use crate::source::{self, Ctx, Loaded, SourceSpec};

/// The full resync interval of a watched environment without `interval`.
pub const DEFAULT_RESYNC: Duration = Duration::from_secs(3600);
/// How often a watched environment's desired side is read again without `desired_interval`.
pub const DEFAULT_DESIRED_INTERVAL: Duration = Duration::from_secs(60);
/// The coalescing window without `live.coalesce`.
pub const DEFAULT_COALESCE: Duration = Duration::from_secs(1);

/// Whether an environment runs in watch mode: a cluster live side without `watch: false`.
pub fn watched(env: &EnvironmentConfig) -> bool {
    matches!(&env.live, SourceConfig::Cluster(c) if c.watch != Some(false))
}

/// Labels of the desired side's re-reads.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReadLabels {
    pub env: String,
    /// `interval` (`desired_interval`), `hook` (a Git push webhook), `dir` (inotify).
    pub trigger: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WatchLabels {
    pub env: String,
    pub kind: String,
    pub namespace: String,
}

/// Watch-mode metrics (registered once per daemon, on the first watched environment).
pub struct WatchMetrics {
    connected: Family<WatchLabels, Gauge>,
    last_event_age: Family<WatchLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    relists: Family<WatchLabels, Counter>,
    errors: Family<WatchLabels, Counter>,
    latency: Histogram,
    desired_reads: Family<ReadLabels, Counter>,
}

impl WatchMetrics {
    fn register(d: &Daemon) -> Arc<WatchMetrics> {
        Arc::clone(d.watch_metrics.get_or_init(|| {
            let m = WatchMetrics {
                connected: Family::default(),
                last_event_age: Family::default(),
                relists: Family::default(),
                errors: Family::default(),
                latency: Histogram::new([0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0]),
                desired_reads: Family::default(),
            };
            d.metrics.register(
                "watch_connected",
                "Watch streams open, by environment, kind and namespace scope (1 or 0)",
                m.connected.clone(),
            );
            d.metrics.register(
                "watch_last_event_age_seconds",
                "Seconds since the last watch event or list of a type",
                m.last_event_age.clone(),
            );
            d.metrics.register(
                "watch_relists",
                "Lists after the first (410 Gone, resyncs, restarts after errors)",
                m.relists.clone(),
            );
            d.metrics
                .register("watch_errors", "Watch and list errors", m.errors.clone());
            d.metrics.register(
                "watch_event_to_outbox_seconds",
                "Time from a change's first watch event to its alert queued in the outbox",
                m.latency.clone(),
            );
            d.metrics.register(
                "watch_desired_reads",
                "Reads of a watched environment's desired side after the first, by trigger (interval, hook, dir)",
                m.desired_reads.clone(),
            );
            Arc::new(m)
        }))
    }

    fn update(&self, store: &WatchStore, seen: &mut HashMap<WatchLabels, (u64, u64)>) {
        let now = std::time::SystemTime::now();
        for s in store.status() {
            let l = WatchLabels {
                env: store.env().to_string(),
                kind: s.type_name.clone(),
                namespace: s.namespace.clone().unwrap_or_default(),
            };
            self.connected.get_or_create(&l).set(i64::from(s.connected));
            if let Some(t) = s.last_event {
                let age = now.duration_since(t).unwrap_or_default().as_secs_f64();
                self.last_event_age.get_or_create(&l).set(age);
            }
            let before = seen.entry(l.clone()).or_default();
            self.relists
                .get_or_create(&l)
                .inc_by(s.relists.saturating_sub(before.0));
            self.errors
                .get_or_create(&l)
                .inc_by(s.errors.saturating_sub(before.1));
            *before = (s.relists, s.errors);
        }
    }
}

fn duration_of(v: Option<&String>, default: Duration) -> Duration {
    v.and_then(|s| parse_duration(s).ok()).unwrap_or(default)
}

/// Reads the desired side (blocking: a Git fetch and render, or files).
fn load_desired(d: &Daemon, name: &str, env: &EnvironmentConfig) -> Result<Loaded, String> {
    let dd = d.cfg.data_dir_in(&d.base);
    let spec = env
        .desired
        .spec(&d.base, &dd, "desired")
        .map_err(|e| format!("{name}: {e}"))?;
    let no_progress = |_: &Path| {};
    let ctx = Ctx {
        side: "desired",
        default_namespace: &d.compiled.default_namespace,
        cluster_scoped_kinds: &d.compiled.cluster_scoped_kinds,
        caches: Some(&d.live_caches.sources),
        on_file: &no_progress,
    };
    source::open(&spec, &ctx).map_err(|e| format!("{name}: {e}"))
}

/// A digest of a desired side (its commit and objects), to tell whether it changed.
fn digest(l: &Loaded) -> u64 {
    use std::hash::{Hash as _, Hasher as _};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    l.snapshot
        .source
        .as_ref()
        .and_then(|s| s.commit.clone())
        .hash(&mut h);
    l.snapshot.errors.len().hash(&mut h);
    for (k, o) in &l.snapshot.objects {
        k.to_string().hash(&mut h);
        o.value.to_string().hash(&mut h);
    }
    h.finish()
}

/// `group|kind|namespace|name`: a drift identity without its type.
fn identity_tail(k: &ResourceKey) -> String {
    format!(
        "{}|{}|{}|{}",
        k.group,
        k.kind,
        k.namespace.as_deref().unwrap_or(""),
        k.name
    )
}

/// Evaluates the watch store against the desired side: everything (`keys` = `None`) or
/// only the objects in `keys`, through the one run path.
fn evaluate(
    d: &Daemon,
    name: &str,
    env: &EnvironmentConfig,
    desired: &Arc<Loaded>,
    store: &WatchStore,
    keys: Option<HashSet<ResourceKey>>,
) -> Produced {
    let mode = Mode::DesiredVsLive;
    let mut job = match scan::environment_job(&d.cfg, &d.compiled, &d.base, name, env) {
        Ok(j) => j,
        Err(e) => {
            return Produced {
                out: super::fail(format!("{name}: {e}")),
                mode,
                only: None,
            };
        }
    };
    // An object of a scope that became unknown since its event is left to the full
    // evaluation that the scope change triggers (never compared as absent).
    let keys: Option<HashSet<ResourceKey>> =
        keys.map(|ks| ks.into_iter().filter(|k| store.trusted(k)).collect());
    let live = store.snapshot(keys.as_ref());
    let from = match &keys {
        None => Arc::clone(desired),
        Some(keys) => {
            let ds = &desired.snapshot;
            let objects: std::collections::BTreeMap<_, _> = keys
                .iter()
                .filter_map(|k| ds.objects.get_key_value(k))
                .map(|(k, o)| (k.clone(), o.clone()))
                .collect();
            Arc::new(Loaded {
                objects: objects.len(),
                snapshot: Snapshot {
                    source: ds.source.clone(),
                    taken_at: ds.taken_at.clone(),
                    objects,
                    errors: ds.errors.clone(),
                    skipped: ds.skipped.clone(),
                    unknown: ds.unknown.clone(),
                },
                adopt: desired.adopt.clone(),
                reused: 0,
                schemas: desired.schemas.clone(),
            })
        }
    };
    job.from.source = Src::Opened(from);
    job.to.source = Src::Opened(Arc::new(Loaded {
        objects: live.objects.len(),
        snapshot: live,
        adopt: None,
        reused: 0,
        schemas: Some(store.schemas()),
    }));
    job.caches = Some(&d.live_caches.sources);
    job.hash_to = keys.is_none();
    let mut out: ScanOutput = ScanOutput::of(name, run::run(&job));
    if keys.is_some() {
        out.objects = store.len();
    }
    let only = keys.map(|keys| {
        let tails: HashSet<String> = keys.iter().map(identity_tail).collect();
        Box::new(move |identity: &str| {
            identity
                .split_once('|')
                .is_some_and(|(_, tail)| tails.contains(tail))
        }) as super::SeenIdentities
    });
    Produced { out, mode, only }
}

/// Records a scan of `name` whose output `produce` makes (on a blocking thread).
async fn record(
    d: &Arc<Daemon>,
    name: &str,
    produce: impl FnOnce(&Daemon) -> Produced + Send + 'static,
) -> bool {
    let t = Target::Environment(name.to_string());
    match d
        .scan_recorded_with(&t, None, Some(Box::new(produce)))
        .await
    {
        Ok(_) => true,
        Err(e) => {
            tracing::error!(target = %name, error = %e, "could not record the watch evaluation");
            false
        }
    }
}

/// Connects and starts the watches, retrying with backoff (and recording a failed scan,
/// once per failure streak, through the scan path) until it works or `stop` turns true.
async fn start(
    d: &Arc<Daemon>,
    name: &str,
    cs: &source::ClusterSource,
    stop: &mut signal::Receiver<bool>,
) -> Option<(
    WatchHandle,
    tokio::sync::mpsc::UnboundedReceiver<WatchChange>,
)> {
    let mut backoff = Duration::from_secs(1);
    loop {
        let started = async {
            let cluster = kube::connect(&cs.target, cs.opts.request_timeout).await?;
            WatchStore::start(&cluster, &cs.opts).await
        }
        .await;
        match started {
            Ok(h) => return Some(h),
            Err(e) => {
                let msg = format!("{name}: live source {}: {e}", cs.describe());
                tracing::warn!(target = %name, error = %msg, "cannot start the watches; retrying");
                record(d, name, move |_| Produced {
                    out: super::fail(msg),
                    mode: Mode::DesiredVsLive,
                    only: None,
                })
                .await;
            }
        }
        let wait = backoff + super::jitter(backoff / 2);
        backoff = (backoff * 2).min(Duration::from_secs(60));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            r = stop.changed() => if r.is_err() {
                return None;
            },
        }
        if *stop.borrow() {
            return None;
        }
    }
}

/// The desired side as last read and its digest.
type Desired = Option<(Arc<Loaded>, u64)>;

/// Reads the desired side again (`trigger`: why); when it changed, a full evaluation is
/// due at once.
#[allow(
    clippy::too_many_arguments,
    reason = "the watch loop's state, borrowed"
)]
async fn reread(
    d: &Arc<Daemon>,
    name: &str,
    env: &Arc<EnvironmentConfig>,
    metrics: &WatchMetrics,
    trigger: &str,
    desired: &mut Desired,
    full: &mut bool,
    due: &mut Option<Instant>,
) {
    metrics
        .desired_reads
        .get_or_create(&ReadLabels {
            env: name.to_string(),
            trigger: trigger.to_string(),
        })
        .inc();
    let (dm, e, n) = (Arc::clone(d), Arc::clone(env), name.to_string());
    match tokio::task::spawn_blocking(move || load_desired(&dm, &n, &e)).await {
        Ok(Ok(l)) => {
            let h = digest(&l);
            if desired.as_ref().is_none_or(|(_, old)| *old != h) {
                tracing::info!(env = %name, trigger, objects = l.snapshot.objects.len(), "watch: the desired side changed; evaluating the environment");
                *desired = Some((Arc::new(l), h));
                *full = true;
                due.get_or_insert_with(Instant::now);
            } else {
                tracing::debug!(env = %name, trigger, "watch: the desired side is unchanged");
            }
        }
        Ok(Err(msg)) => {
            record(d, name, move |_| Produced {
                out: super::fail(msg),
                mode: Mode::DesiredVsLive,
                only: None,
            })
            .await;
        }
        Err(e) => tracing::error!(env = %name, error = %e, "reading the desired side panicked"),
    }
}

/// The inotify watcher of a `type: dir` desired side without `watch: false`.
fn dir_watch(d: &Daemon, name: &str, env: &EnvironmentConfig) -> Option<super::dirwatch::DirWatch> {
    let SourceConfig::Dir { path, watch } = &env.desired else {
        return None;
    };
    if *watch == Some(false) {
        return None;
    }
    let p = if path.is_absolute() {
        path.clone()
    } else {
        d.base.join(path)
    };
    match super::dirwatch::start(&p) {
        Ok(w) => {
            tracing::info!(env = %name, path = %p.display(), "watch: watching the desired directory for changes");
            Some(w)
        }
        Err(e) => {
            tracing::warn!(env = %name, error = %e, "watch: cannot watch the desired directory; it is read every desired_interval");
            None
        }
    }
}

/// Waits for a wake-up, or forever without one.
async fn woken(w: Option<&tokio::sync::Notify>) {
    match w {
        Some(w) => w.notified().await,
        None => std::future::pending().await,
    }
}

/// The next event of a dir watcher, or never without one.
async fn dir_event(w: Option<&mut super::dirwatch::DirWatch>) -> Option<super::dirwatch::DirEvent> {
    match w {
        Some(w) => w.events.recv().await,
        None => std::future::pending().await,
    }
}

/// Runs one watched environment until `stop` turns true.
pub(crate) async fn run_environment(
    d: Arc<Daemon>,
    name: String,
    mut stop: signal::Receiver<bool>,
) {
    let Some(env) = d.cfg.environments.get(&name).cloned() else {
        return;
    };
    let dd = d.cfg.data_dir_in(&d.base);
    let cs = match env.live.spec(&d.base, &dd, &name) {
        Ok(SourceSpec::Cluster(c)) => {
            let mut c = *c;
            c.opts.env = name.clone();
            c
        }
        Ok(_) => return,
        Err(e) => {
            let msg = format!("{name}: {e}");
            record(&d, &name, move |_| Produced {
                out: super::fail(msg),
                mode: Mode::DesiredVsLive,
                only: None,
            })
            .await;
            return;
        }
    };
    let (coalesce, desired_every) = match &env.live {
        SourceConfig::Cluster(c) => (
            duration_of(c.coalesce.as_ref(), DEFAULT_COALESCE),
            duration_of(env.desired_interval.as_ref(), DEFAULT_DESIRED_INTERVAL),
        ),
        _ => (DEFAULT_COALESCE, DEFAULT_DESIRED_INTERVAL),
    };
    let resync_every = d.interval(&Target::Environment(name.clone()));
    let metrics = WatchMetrics::register(&d);
    let Some((mut handle, mut changes)) = start(&d, &name, &cs, &mut stop).await else {
        return;
    };
    let store = Arc::clone(&handle.store);
    let hook = d.hooks.desired_wake(&name);
    let mut dir = dir_watch(&d, &name, &env);
    let mut dir_due: Option<Instant> = None;
    let env = Arc::new(env);
    let mut desired: Desired = None;
    let mut pending: HashMap<ResourceKey, Instant> = HashMap::new();
    let mut full = false;
    let mut due: Option<Instant> = None;
    let far = Duration::from_secs(365 * 86_400);
    let mut resync_at = Instant::now() + resync_every;
    let mut desired_at = Instant::now() + desired_every;
    let mut seen = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    let mut synced = false;
    loop {
        let wake = due.unwrap_or_else(|| Instant::now() + far);
        tokio::select! {
            r = stop.changed() => {
                if r.is_err() || *stop.borrow() {
                    break;
                }
            }
            c = changes.recv() => {
                let Some(c) = c else { break };
                let now = Instant::now();
                match c {
                    WatchChange::Synced => {
                        synced = true;
                        full = true;
                        tracing::info!(env = %name, objects = store.len(), "watch: initial lists complete; evaluating the environment");
                    }
                    WatchChange::Scope => full = true,
                    WatchChange::Object(k) => {
                        pending.entry(k).or_insert(now);
                    }
                }
                if synced && due.is_none() {
                    due = Some(if full && pending.is_empty() { now } else { now + coalesce });
                }
            }
            _ = tokio::time::sleep_until(wake.into()), if due.is_some() => {
                due = None;
                if desired.is_none() {
                    // The first evaluation reads the desired side.
                    let (dm, e, n) = (Arc::clone(&d), Arc::clone(&env), name.clone());
                    match tokio::task::spawn_blocking(move || load_desired(&dm, &n, &e)).await {
                        Ok(Ok(l)) => {
                            let h = digest(&l);
                            desired = Some((Arc::new(l), h));
                        }
                        Ok(Err(msg)) => {
                            record(&d, &name, move |_| Produced { out: super::fail(msg), mode: Mode::DesiredVsLive, only: None }).await;
                            due = Some(Instant::now() + desired_every);
                            continue;
                        }
                        Err(e) => {
                            tracing::error!(env = %name, error = %e, "reading the desired side panicked");
                            due = Some(Instant::now() + desired_every);
                            continue;
                        }
                    }
                }
                let Some((des, _)) = desired.clone() else { continue };
                let batch: Vec<(ResourceKey, Instant)> = pending.drain().collect();
                let keys: Option<HashSet<ResourceKey>> = if full {
                    None
                } else {
                    Some(batch.iter().map(|(k, _)| k.clone()).collect())
                };
                full = false;
                let (st, e, n) = (Arc::clone(&store), Arc::clone(&env), name.clone());
                let count = keys.as_ref().map_or(0, HashSet::len);
                let started = Instant::now();
                if record(&d, &name, move |dm| evaluate(dm, &n, &e, &des, &st, keys)).await {
                    let now = Instant::now();
                    for (_, first) in &batch {
                        metrics.latency.observe(now.duration_since(*first).as_secs_f64());
                    }
                }
                tracing::debug!(env = %name, objects = count, elapsed_ms = started.elapsed().as_millis() as u64, "watch evaluation");
                if !pending.is_empty() || full {
                    due = Some(Instant::now() + coalesce);
                }
            }
            _ = tokio::time::sleep_until(resync_at.into()) => {
                resync_at = Instant::now() + resync_every;
                tracing::info!(env = %name, "watch: full resync (every type listed again)");
                handle.resync();
                if synced {
                    full = true;
                    due.get_or_insert_with(Instant::now);
                }
            }
            _ = tokio::time::sleep_until(desired_at.into()) => {
                desired_at = Instant::now() + desired_every;
                // Before the first evaluation, that evaluation reads the desired side.
                if synced && desired.is_some() {
                    reread(&d, &name, &env, &metrics, "interval", &mut desired, &mut full, &mut due).await;
                }
            }
            () = woken(hook.as_deref()) => {
                // A Git push webhook (src/daemon/hooks.rs): fetch and render now.
                if synced && desired.is_none() {
                    // The first read failed: the first evaluation's read is retried now.
                    due = Some(Instant::now());
                } else if synced {
                    reread(&d, &name, &env, &metrics, "hook", &mut desired, &mut full, &mut due).await;
                    desired_at = Instant::now() + desired_every;
                }
            }
            ev = dir_event(dir.as_mut()) => match ev {
                Some(super::dirwatch::DirEvent::Changed) => {
                    // Coalesced like cluster events: one re-read per window.
                    dir_due.get_or_insert_with(|| Instant::now() + coalesce);
                }
                Some(super::dirwatch::DirEvent::Failed(e)) => {
                    tracing::warn!(env = %name, error = %e, "watch: the desired directory's watcher failed; it is read every desired_interval");
                    dir = None;
                    dir_due.get_or_insert_with(Instant::now);
                }
                None => dir = None,
            },
            _ = tokio::time::sleep_until(dir_due.unwrap_or_else(|| Instant::now() + far).into()), if dir_due.is_some() => {
                dir_due = None;
                if synced && desired.is_none() {
                    // The first read failed: the first evaluation's read is retried now.
                    due = Some(Instant::now());
                } else if synced {
                    reread(&d, &name, &env, &metrics, "dir", &mut desired, &mut full, &mut due).await;
                }
            }
            _ = tick.tick() => metrics.update(&store, &mut seen),
        }
    }
    handle.stop();
}
