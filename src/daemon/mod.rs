//! The daemon: scheduled scans and comparisons, drift lifecycle in the store, alerts through
//! the outbox, scheduled reports.
//!
//! Entry points: [`Daemon::new`], then [`Daemon::run`] (until shutdown) or
//! [`Daemon::run_once`] (one full cycle: every scan and comparison, due reports, alert
//! delivery; returns the exit code).
//!
//! Each target (environment or comparison) has its own task and lock: scans of one target
//! never overlap, and a slow or failing target never delays another. Scans run on blocking
//! threads (the engine is CPU-bound and synchronous). Alerts are written to the outbox in the
//! scan's transaction and delivered by a separate task with retries and backoff.

pub mod actions;
pub mod dirwatch;
pub mod hooks;
pub mod lifecycle;
mod matrix;
pub mod metrics;
pub mod report;
pub mod scan;
pub mod shard;
pub mod shard_store;
pub mod watch;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{Mutex as AsyncMutex, Notify, watch as signal};

use crate::alert::DeliveryError;
use crate::alert::notice::{Notice, NoticeDrift, NoticeKind, ReportSection};
use crate::config::{Config, ReportConfig, parse_duration};
use crate::model::Severity;
use crate::report::Mode;
use crate::store::{
    OutboxWrite, ScanEnd, ScanKind, ScanOutcome, Store, StoreError, fmt_time, now_rfc3339,
};
use lifecycle::Visibility;
use scan::ScanOutput;

/// Where notices go: the configured sinks (the registry in [`crate::alert`]), or a test
/// double.
pub trait Deliver: Send + Sync + 'static {
    /// Names of the sinks.
    fn sinks(&self) -> Vec<String>;
    /// The notice as this sink should get it (its route applied), or `None` when the sink
    /// does not want it.
    fn route(&self, sink: &str, notice: &Notice) -> Option<Notice>;
    /// Sends a notice through one sink.
    fn deliver<'a>(
        &'a self,
        sink: &'a str,
        notice: &'a Notice,
    ) -> Pin<Box<dyn Future<Output = Result<(), DeliveryError>> + Send + 'a>>;
    /// Gives the sinks that keep state (Slack's message per drift) the daemon's store.
    fn attach_store(&self, _store: &Arc<Store>) {}
    /// The Slack sinks (the interactivity endpoint, `src/api/slack.rs`).
    fn slack_sinks(&self) -> Vec<Arc<crate::alert::Sink>> {
        Vec::new()
    }
    /// Which acknowledge/silence alerts sink `sink` gets ([`actions`]).
    fn action_sink(&self, _sink: &str) -> actions::ActionSink {
        actions::ActionSink::None
    }
}

/// The configured sinks as the daemon's [`Deliver`].
pub struct SinkSet {
    sinks: Vec<Arc<crate::alert::Sink>>,
}

impl SinkSet {
    /// Loads the templates and builds every sink of `alerts` (paths relative to `base`).
    ///
    /// # Errors
    /// Every problem, as text naming the sink and config key.
    pub fn from_config(
        alerts: &crate::config::AlertsConfig,
        base: &std::path::Path,
    ) -> Result<SinkSet, String> {
        let dir = alerts.templates_dir.as_ref().map(|d| {
            if d.is_absolute() {
                d.clone()
            } else {
                base.join(d)
            }
        });
        let templates = crate::alert::Templates::load(dir.as_deref())
            .map_err(|e| format!("alerts.templates_dir: {e}"))?;
        let sinks = crate::alert::build_sinks(&alerts.sinks, &templates).map_err(|errs| {
            errs.iter()
                .map(|e| format!("alerts.sinks: {e}"))
                .collect::<Vec<_>>()
                .join("; ")
        })?;
        Ok(SinkSet {
            sinks: sinks.into_iter().map(Arc::new).collect(),
        })
    }
}

impl Deliver for SinkSet {
    fn sinks(&self) -> Vec<String> {
        self.sinks.iter().map(|s| s.name().to_string()).collect()
    }
    fn route(&self, sink: &str, notice: &Notice) -> Option<Notice> {
        self.sinks
            .iter()
            .find(|s| s.name() == sink)?
            .route()
            .select(notice)
    }
    fn deliver<'a>(
        &'a self,
        sink: &'a str,
        notice: &'a Notice,
    ) -> Pin<Box<dyn Future<Output = Result<(), DeliveryError>> + Send + 'a>> {
        Box::pin(async move {
            match self.sinks.iter().find(|s| s.name() == sink) {
                Some(s) => s.deliver(notice).await,
                None => Err(DeliveryError {
                    sink: sink.to_string(),
                    message:
                        "no such sink in the current config (removed since the alert was queued)"
                            .into(),
                    retryable: false,
                    retry_after: None,
                }),
            }
        })
    }
    fn attach_store(&self, store: &Arc<Store>) {
        let refs: Arc<dyn crate::alert::slack::MessageStore> = store.clone();
        crate::alert::slack::attach_store(&self.sinks, &refs);
    }
    fn slack_sinks(&self) -> Vec<Arc<crate::alert::Sink>> {
        crate::alert::slack::slack_sinks(&self.sinks)
    }
    fn action_sink(&self, sink: &str) -> actions::ActionSink {
        match self.sinks.iter().find(|s| s.name() == sink).map(|s| &**s) {
            Some(crate::alert::Sink::Slack(s)) if s.has_bot_token() => actions::ActionSink::Slack,
            Some(crate::alert::Sink::Webhook(_)) => actions::ActionSink::Webhook,
            _ => actions::ActionSink::None,
        }
    }
}

/// What the daemon scans.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    Environment(String),
    Comparison(String),
}

impl Target {
    pub fn name(&self) -> &str {
        match self {
            Target::Environment(n) | Target::Comparison(n) => n,
        }
    }
    /// Its ownership key across replicas (`environment/NAME`, `comparison/NAME`).
    pub fn key(&self) -> String {
        match self {
            Target::Environment(n) => format!("environment/{n}"),
            Target::Comparison(n) => format!("comparison/{n}"),
        }
    }
    /// What a scan of it is (as stored with scans).
    pub fn kind(&self) -> ScanKind {
        match self {
            Target::Environment(_) => ScanKind::Environment,
            Target::Comparison(_) => ScanKind::Comparison,
        }
    }
}

/// The outcome of one scan, as the API and `--once` see it.
#[derive(Debug, Clone, Serialize)]
pub struct ScanSummary {
    pub scan_id: i64,
    pub target: String,
    pub outcome: ScanOutcome,
    pub error: Option<String>,
    pub drifts: usize,
    pub max_severity: Option<Severity>,
    pub duration_ms: u64,
}

/// What [`Daemon::run_once_detailed`] did.
#[derive(Debug, Clone)]
pub struct OnceOutcome {
    /// 0 clean, 1 open drift at or above `--fail-on`, 2 a scan failed or was partial.
    pub code: u8,
    pub scans: Vec<ScanSummary>,
    /// Reports sent: name and the number of sinks they were queued for.
    pub reports: Vec<(String, usize)>,
}

/// Errors that stop the daemon from starting.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("config: {0}")]
    Config(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The daemon.
pub struct Daemon {
    pub cfg: Arc<Config>,
    /// Directory relative paths in the config are resolved against.
    pub base: PathBuf,
    pub store: Arc<Store>,
    deliver: Arc<dyn Deliver>,
    reminder_after: Option<chrono::Duration>,
    tz: chrono_tz::Tz,
    locks: BTreeMap<Target, Arc<AsyncMutex<()>>>,
    /// One wake-up per sink's delivery queue (new alerts queued).
    outbox_wake: BTreeMap<String, Arc<Notify>>,
    /// Outbox rows a sink accepted whose "sent" is not recorded yet (the store was locked):
    /// the bookkeeping is retried, never the delivery.
    unrecorded: std::sync::Mutex<std::collections::BTreeSet<i64>>,
    /// Sinks whose delivery queue failed (store error or panic) and why; `/readyz` is 503
    /// while any is here. Cleared by the queue's next good round.
    stalled: std::sync::Mutex<BTreeMap<String, String>>,
    /// How long a failed delivery is retried after its alert was queued, per sink
    /// (`retry_for`; default 24 h). Retries are bounded by time, not by a count.
    pub retry_for: BTreeMap<String, Duration>,
    /// First retry delay; doubles per attempt up to an hour. Default 5 s.
    pub base_backoff: Duration,
    pub metrics: Arc<metrics::Metrics>,
    /// The config's rules, compiled once.
    pub compiled: Arc<crate::config::Compiled>,
    /// Source caches kept between scans (incremental rescans of clusters).
    pub live_caches: scan::Caches,
    /// When the daemon started (readiness: "still starting").
    pub started: std::time::Instant,
    /// The last delivery error per sink: the same error again is logged at debug, not warn
    /// (a desktop sink without a D-Bus session would otherwise warn for every alert).
    last_delivery_error: std::sync::Mutex<BTreeMap<String, String>>,
    /// Triggered scans waiting for their target (not started yet): at most one per target.
    queued_triggers: std::sync::Mutex<BTreeMap<Target, i64>>,
    /// The last scan could not be recorded: why (`/readyz`).
    store_write_error: std::sync::Mutex<Option<String>>,
    /// Watch-mode metrics, registered by the first watched environment.
    pub(crate) watch_metrics: std::sync::OnceLock<Arc<watch::WatchMetrics>>,
    /// Which targets this replica owns (unset: all of them, one replica).
    ownership: std::sync::OnceLock<Arc<dyn shard::Ownership>>,
    /// Git push webhooks: wake-ups of watched environments' desired sides, metrics.
    pub(crate) hooks: hooks::HookState,
}

/// A scan's output made outside the daemon's source reading (watch mode), and which drift
/// identities it saw (`None`: all of the target's).
pub(crate) struct Produced {
    pub out: ScanOutput,
    pub mode: Mode,
    pub only: Option<SeenIdentities>,
}

/// Whether a drift identity was seen by a [`Produced`] evaluation.
pub(crate) type SeenIdentities = Box<dyn Fn(&str) -> bool + Send>;

/// Makes a [`Produced`] on the scan's blocking thread.
pub(crate) type Producer = Box<dyn FnOnce(&Daemon) -> Produced + Send>;

/// At most this many triggered scans wait at once, over all targets.
pub const MAX_QUEUED_TRIGGERS: usize = 16;

/// What [`Daemon::trigger_scan`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Triggered {
    /// A new scan was queued under this id.
    Queued(i64),
    /// A triggered scan of the target is already waiting: this is its id.
    AlreadyQueued(i64),
    /// [`MAX_QUEUED_TRIGGERS`] scans are waiting already: try again later.
    QueueFull,
}

fn interval_of(s: &Option<String>, default: Duration) -> Duration {
    s.as_deref()
        .and_then(|s| parse_duration(s).ok())
        .unwrap_or(default)
}

impl Daemon {
    /// Builds a daemon from a validated config.
    ///
    /// # Errors
    /// [`DaemonError::Config`] for values the config check would also reject.
    pub fn new(
        cfg: Config,
        base: PathBuf,
        store: Arc<Store>,
        deliver: Arc<dyn Deliver>,
    ) -> Result<Daemon, DaemonError> {
        let reminder_after = match &cfg.alerts.reminder_after {
            Some(s) => Some(
                chrono::Duration::from_std(parse_duration(s).map_err(DaemonError::Config)?)
                    .map_err(|e| DaemonError::Config(format!("alerts.reminder_after: {e}")))?,
            ),
            None => None,
        };
        let tz = cfg
            .timezone
            .as_deref()
            .unwrap_or("UTC")
            .parse::<chrono_tz::Tz>()
            .map_err(|e| DaemonError::Config(format!("timezone: {e}")))?;
        let mut locks = BTreeMap::new();
        for name in cfg.environments.keys() {
            locks.insert(Target::Environment(name.clone()), Arc::default());
        }
        for c in &cfg.comparisons {
            locks.insert(Target::Comparison(c.name()), Arc::default());
        }
        let compiled = Arc::new(
            cfg.compile()
                .map_err(|e| DaemonError::Config(e.to_string()))?,
        );
        let default_retry = match &cfg.alerts.retry_for {
            Some(v) => parse_duration(v)
                .map_err(|e| DaemonError::Config(format!("alerts.retry_for: {e}")))?,
            None => DEFAULT_RETRY_FOR,
        };
        let mut retry_for = BTreeMap::new();
        for (i, sc) in cfg.alerts.sinks.iter().enumerate() {
            let d = match sc.retry_for() {
                Some(v) => parse_duration(v).map_err(|e| {
                    DaemonError::Config(format!("alerts.sinks[{i}].retry_for: {e}"))
                })?,
                None => default_retry,
            };
            retry_for.insert(sc.name().to_string(), d);
        }
        for s in deliver.sinks() {
            retry_for.entry(s).or_insert(default_retry);
        }
        deliver.attach_store(&store);
        let outbox_wake = deliver
            .sinks()
            .into_iter()
            .map(|s| (s, Arc::new(Notify::new())))
            .collect();
        Ok(Daemon {
            hooks: hooks::HookState::new(&cfg),
            compiled,
            cfg: Arc::new(cfg),
            base,
            store,
            deliver,
            reminder_after,
            tz,
            locks,
            outbox_wake,
            unrecorded: std::sync::Mutex::default(),
            stalled: std::sync::Mutex::default(),
            queued_triggers: std::sync::Mutex::default(),
            store_write_error: std::sync::Mutex::default(),
            retry_for,
            base_backoff: Duration::from_secs(5),
            metrics: Arc::default(),
            live_caches: scan::Caches::default(),
            started: std::time::Instant::now(),
            last_delivery_error: std::sync::Mutex::default(),
            watch_metrics: std::sync::OnceLock::new(),
            ownership: std::sync::OnceLock::new(),
        })
    }

    /// How often a target is scanned: its `interval` (default 5 min for environments,
    /// 15 min for comparisons).
    pub fn interval(&self, t: &Target) -> Duration {
        match t {
            Target::Environment(n) => interval_of(
                &self
                    .cfg
                    .environments
                    .get(n)
                    .and_then(|e| e.interval.clone()),
                if self.cfg.environments.get(n).is_some_and(watch::watched) {
                    watch::DEFAULT_RESYNC
                } else {
                    Duration::from_secs(300)
                },
            ),
            Target::Comparison(n) => interval_of(
                &self
                    .cfg
                    .comparisons
                    .iter()
                    .find(|c| &c.name() == n)
                    .and_then(|c| c.interval.clone()),
                Duration::from_secs(900),
            ),
        }
    }

    /// Splits the targets with other replicas (before [`Daemon::run`]); `false` when one
    /// was set already.
    pub fn set_ownership(&self, o: Arc<dyn shard::Ownership>) -> bool {
        self.ownership.set(o).is_ok()
    }

    /// Whether this replica owns a target key ([`Target::key`], [`shard::report_key`]).
    pub fn owns(&self, key: &str) -> bool {
        self.ownership.get().is_none_or(|o| o.owns(key))
    }

    /// Every ownership key: the targets' and the reports'.
    pub fn ownership_keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.targets().iter().map(Target::key).collect();
        keys.extend(self.cfg.reports.iter().map(|r| shard::report_key(&r.name)));
        keys
    }

    /// Every configured target.
    pub fn targets(&self) -> Vec<Target> {
        self.locks.keys().cloned().collect()
    }

    /// The target of a name (environment or comparison).
    pub fn target(&self, name: &str) -> Option<Target> {
        self.locks.keys().find(|t| t.name() == name).cloned()
    }

    /// Scans a target now (waits if a scan of it is running).
    pub async fn scan(self: &Arc<Self>, target: &Target) -> Result<ScanSummary, StoreError> {
        self.scan_with_id(target, None).await
    }

    /// Queues a scan of `target` on request (the API), unless one is already waiting for
    /// it (then that one's id: it will see the state of when it starts, which is what the
    /// caller asked for) or [`MAX_QUEUED_TRIGGERS`] are waiting in all.
    ///
    /// # Errors
    /// [`StoreError`] when the scan cannot be recorded.
    pub fn trigger_scan(self: &Arc<Self>, target: &Target) -> Result<Triggered, StoreError> {
        let mut queued = locked(&self.queued_triggers);
        if let Some(id) = queued.get(target) {
            return Ok(Triggered::AlreadyQueued(*id));
        }
        if queued.len() >= MAX_QUEUED_TRIGGERS {
            return Ok(Triggered::QueueFull);
        }
        let id = self.reserve_scan(target)?;
        queued.insert(target.clone(), id);
        drop(queued);
        let d = Arc::clone(self);
        let t = target.clone();
        tokio::spawn(async move {
            if let Err(e) = d.scan_with_id(&t, Some(id)).await {
                tracing::error!(scan_id = id, error = %e, "triggered scan");
            }
        });
        Ok(Triggered::Queued(id))
    }

    /// Records a scan as started and returns its id; run it with [`Daemon::scan_with_id`].
    pub(crate) fn reserve_scan(&self, target: &Target) -> Result<i64, StoreError> {
        self.store.start_scan(target.name(), target.kind())
    }

    /// Scans a target, under an id from [`Daemon::reserve_scan`] when given. A scan that
    /// could not be recorded marks the store unwritable for `/readyz` until one is.
    pub(crate) async fn scan_with_id(
        self: &Arc<Self>,
        target: &Target,
        id: Option<i64>,
    ) -> Result<ScanSummary, StoreError> {
        let r = self.scan_recorded(target, id).await;
        *locked(&self.store_write_error) = r.as_ref().err().map(ToString::to_string);
        r
    }

    /// Why the store could not be written the last time a scan was recorded (`None` when
    /// the last one was).
    pub fn store_write_error(&self) -> Option<String> {
        locked(&self.store_write_error).clone()
    }

    async fn scan_recorded(
        self: &Arc<Self>,
        target: &Target,
        id: Option<i64>,
    ) -> Result<ScanSummary, StoreError> {
        self.scan_recorded_with(target, id, None).await
    }

    /// [`Daemon::scan_recorded`], the scan's output made by `produce` when given (watch
    /// mode: from the watch store) instead of by reading the target's sources; recorded
    /// through the same lifecycle and outbox.
    pub(crate) async fn scan_recorded_with(
        self: &Arc<Self>,
        target: &Target,
        id: Option<i64>,
        produce: Option<Producer>,
    ) -> Result<ScanSummary, StoreError> {
        let lock = self.locks.get(target).cloned().unwrap_or_default();
        let _guard = lock.lock().await;
        if let Some(id) = id {
            // Started: a later trigger queues a new scan, which sees later changes.
            let mut queued = locked(&self.queued_triggers);
            if queued.get(target) == Some(&id) {
                queued.remove(target);
            }
        }
        let me = Arc::clone(self);
        let t = target.clone();
        let joined =
            tokio::task::spawn_blocking(move || me.scan_blocking_with(&t, id, produce)).await;
        let summary = match joined {
            Ok(r) => r?,
            Err(e) => {
                // A panic inside the engine: record the scan as failed, keep the daemon up.
                let id = match id {
                    Some(id) => id,
                    None => self.store.start_scan(target.name(), target.kind())?,
                };
                let end = ScanEnd {
                    outcome: ScanOutcome::Failed,
                    error: Some(format!("internal error: {e}")),
                    ..ScanEnd::default()
                };
                self.store.record_scan(id, target.name(), &end, &[], &[])?;
                ScanSummary {
                    scan_id: id,
                    target: target.name().to_string(),
                    outcome: ScanOutcome::Failed,
                    error: end.error,
                    drifts: 0,
                    max_severity: None,
                    duration_ms: 0,
                }
            }
        };
        self.metrics
            .scans
            .get_or_create(&metrics::ScanLabels {
                target: summary.target.clone(),
                outcome: summary.outcome.as_str().to_string(),
            })
            .inc();
        self.metrics
            .scan_duration
            .get_or_create(&metrics::TargetLabels {
                target: summary.target.clone(),
            })
            .observe(summary.duration_ms as f64 / 1000.0);
        self.wake_outbox();
        Ok(summary)
    }

    fn scan_blocking_with(
        &self,
        target: &Target,
        id: Option<i64>,
        produce: Option<Producer>,
    ) -> Result<ScanSummary, StoreError> {
        let name = target.name().to_string();
        let scan_id = match id {
            Some(id) => id,
            None => self.store.start_scan(&name, target.kind())?,
        };
        let started = std::time::Instant::now();
        let mut only: Option<SeenIdentities> = None;
        let (out, mode) = match (produce, target) {
            (Some(produce), _) => {
                let p = produce(self);
                only = p.only;
                (p.out, p.mode)
            }
            (None, target) => match target {
                Target::Environment(n) => match self.cfg.environments.get(n) {
                    Some(env) => (
                        scan::scan_environment(
                            &self.cfg,
                            &self.compiled,
                            &self.base,
                            n,
                            env,
                            Some(&self.live_caches),
                        ),
                        Mode::DesiredVsLive,
                    ),
                    None => (
                        fail(format!("unknown environment {n}")),
                        Mode::DesiredVsLive,
                    ),
                },
                Target::Comparison(n) => match self.cfg.comparisons.iter().find(|c| &c.name() == n)
                {
                    Some(c) => (
                        scan::scan_comparison(
                            &self.cfg,
                            &self.compiled,
                            &self.base,
                            c,
                            Some(&self.live_caches),
                        ),
                        Mode::EnvVsEnv,
                    ),
                    None => (fail(format!("unknown comparison {n}")), Mode::EnvVsEnv),
                },
            },
        };
        let duration_ms = started.elapsed().as_millis() as u64;
        let now = chrono::Utc::now();
        let drifts: Vec<_> = out
            .result
            .as_ref()
            .map(|r| r.drifts.iter().filter(|d| !d.expected).cloned().collect())
            .unwrap_or_default();
        let mut end = ScanEnd {
            outcome: out.outcome,
            error: out.error.clone(),
            revision: out.revision.clone(),
            objects: out.objects as i64,
            drifts: drifts.len() as i64,
            duration_ms: duration_ms as i64,
            snapshot: out.snapshot.clone(),
        };
        let mut outbox = Vec::new();
        let mut writes = Vec::new();
        if out.outcome == ScanOutcome::Failed {
            // Never resolve or report anything from a failed scan; tell people once per
            // failure streak (or when the reason changes).
            let previous = self.store.scans(Some(&name), 2)?;
            let repeated = previous
                .get(1)
                .is_some_and(|p| p.outcome == ScanOutcome::Failed && p.error == out.error);
            if !repeated {
                let n = self.notice(
                    NoticeKind::ScanFailed,
                    &name,
                    scan_id,
                    Vec::new(),
                    now,
                    out.error.clone(),
                );
                outbox.extend(self.route(&n));
            }
        } else {
            let prev = self.store.open_drifts(&name)?;
            // Identities start with the drift type (`missing|…`): drifts of a type this scan
            // could not trust are neither resolved nor reported.
            let untrusted: Vec<String> = out
                .untrusted_types
                .iter()
                .map(|t| format!("{}|", t.as_str()))
                .collect();
            let visible = |identity: &str| {
                !untrusted.iter().any(|p| identity.starts_with(p.as_str()))
                    && only.as_ref().is_none_or(|o| o(identity))
            };
            let vis = Visibility {
                complete: out.untrusted_types.is_empty() && only.is_none(),
                visible: &visible,
            };
            let plan = lifecycle::plan(&prev, &drifts, mode, &vis, self.reminder_after, now);
            if only.is_some() {
                // An evaluation of a few objects: the scan row counts every open drift.
                let opened = plan
                    .writes
                    .iter()
                    .filter(|w| matches!(w, crate::store::DriftWrite::Open(_)))
                    .count();
                let resolved = plan
                    .writes
                    .iter()
                    .filter(|w| matches!(w, crate::store::DriftWrite::Resolve { .. }))
                    .count();
                end.drifts = (prev.len() + opened).saturating_sub(resolved) as i64;
            }
            writes = plan.writes;
            for (kind, list) in [
                (NoticeKind::Drift, plan.announce),
                (NoticeKind::Escalated, plan.escalated),
                (NoticeKind::Resolved, plan.resolved),
                (NoticeKind::Reminder, plan.reminders),
            ] {
                if !list.is_empty() {
                    let n = self.notice(kind, &name, scan_id, list, now, None);
                    outbox.extend(self.route(&n));
                }
            }
            // A watch evaluation of a few objects does not repeat what the environment's
            // full evaluation already said.
            if out.outcome == ScanOutcome::Partial && only.is_none() {
                let n = self.notice(
                    NoticeKind::ScanFailed,
                    &name,
                    scan_id,
                    Vec::new(),
                    now,
                    out.error.clone(),
                );
                outbox.extend(self.route(&n));
            }
        }
        if only.is_none() {
            end.drifts = drifts.len() as i64;
        }
        self.store
            .record_scan(scan_id, &name, &end, &writes, &outbox)?;
        if only.is_none() {
            self.record_matrix(target, scan_id, &out); // src/daemon/matrix.rs
        }
        let max = drifts.iter().map(|d| d.severity).max();
        tracing::info!(target = %name, scan_id, outcome = %out.outcome, drifts = drifts.len(), duration_ms, "scan finished");
        if let Some(e) = &out.error {
            tracing::warn!(target = %name, scan_id, error = %e, "scan {}", out.outcome);
        }
        Ok(ScanSummary {
            scan_id,
            target: name,
            outcome: out.outcome,
            error: out.error,
            drifts: drifts.len(),
            max_severity: max,
            duration_ms,
        })
    }

    fn notice(
        &self,
        kind: NoticeKind,
        target: &str,
        scan_id: i64,
        drifts: Vec<NoticeDrift>,
        now: chrono::DateTime<chrono::Utc>,
        error: Option<String>,
    ) -> Notice {
        let severity = drifts
            .iter()
            .map(|d| d.severity)
            .max()
            .unwrap_or(Severity::Info);
        let n = drifts.len();
        let s = if n == 1 { "" } else { "s" };
        let by_sev: Vec<String> = Severity::ALL
            .iter()
            .filter_map(|sev| {
                let c = drifts.iter().filter(|d| d.severity == *sev).count();
                (c > 0).then(|| format!("{c} {sev}"))
            })
            .collect();
        let title = match kind {
            NoticeKind::Drift => crate::alert::notice::drift_title(target, &drifts, &by_sev),
            NoticeKind::Escalated => {
                format!("{target}: {n} drift{s} escalated ({})", by_sev.join(", "))
            }
            NoticeKind::Resolved => format!("{target}: {n} drift{s} resolved"),
            NoticeKind::Reminder => format!("{target}: {n} drift{s} still open"),
            NoticeKind::ScanFailed => format!("{target}: scan failed or incomplete"),
            NoticeKind::Report => format!("drift report: {target}"),
            NoticeKind::Acknowledged => format!("{target}: {n} drift{s} acknowledged"),
            NoticeKind::Silenced => format!("{target}: {n} drift{s} silenced"),
        };
        Notice {
            id: format!(
                "{}/{target}/scan-{scan_id}/{}",
                self.store.id(),
                kind.as_str()
            ),
            kind,
            env: target.to_string(),
            title,
            severity: if kind == NoticeKind::Resolved {
                Severity::Info
            } else {
                severity
            },
            created_at: fmt_time(now),
            drifts,
            error,
            report: Vec::new(),
            extra: serde_json::Value::Null,
        }
    }

    /// One outbox row per sink that wants the notice.
    fn route(&self, n: &Notice) -> Vec<OutboxWrite> {
        self.deliver
            .sinks()
            .into_iter()
            .filter_map(|sink| {
                let routed = self.deliver.route(&sink, n)?;
                Some(OutboxWrite {
                    notice_id: n.id.clone(),
                    kind: n.kind.as_str().to_string(),
                    target: n.env.clone(),
                    body: serde_json::to_value(&routed).ok()?,
                    sink,
                })
            })
            .collect()
    }

    /// Wakes every sink's delivery queue (alerts were queued).
    fn wake_outbox(&self) {
        for n in self.outbox_wake.values() {
            n.notify_one();
        }
    }

    /// The configured Slack sinks (for the interactivity endpoint).
    pub fn slack_sinks(&self) -> Vec<Arc<crate::alert::Sink>> {
        self.deliver.slack_sinks()
    }

    /// Sinks whose delivery queue is stalled, with the reason (for `/readyz`).
    pub fn stalled_deliveries(&self) -> BTreeMap<String, String> {
        locked(&self.stalled).clone()
    }

    /// Delivers every alert that is due, the sinks concurrently (a slow or hung sink never
    /// delays another). Returns how many were sent.
    pub(crate) async fn deliver_due(&self) -> Result<usize, StoreError> {
        let sinks = self.deliver.sinks();
        let rounds = futures::future::join_all(sinks.iter().map(|s| self.deliver_due_of(s))).await;
        let mut sent = 0;
        for r in rounds {
            sent += r?;
        }
        Ok(sent)
    }

    /// Delivers one sink's due alerts, oldest first. Returns how many were sent.
    async fn deliver_due_of(&self, sink: &str) -> Result<usize, StoreError> {
        let mut sent = 0;
        loop {
            let due = self.store.claim_due_of(sink, &now_rfc3339(), 10)?;
            if due.is_empty() {
                return Ok(sent);
            }
            for row in due {
                let accepted_before = locked(&self.unrecorded).contains(&row.id);
                if accepted_before {
                    self.record_sent(row.id).await?;
                    continue;
                }
                let mut notice: Notice = match serde_json::from_value(row.body.clone()) {
                    Ok(n) => n,
                    Err(e) => {
                        self.store
                            .mark_failed(row.id, &format!("unreadable alert: {e}"), None)?;
                        continue;
                    }
                };
                if let Err(e) = self.store.fill_drift_ids(&mut notice) {
                    tracing::warn!(sink = %row.sink, notice = %row.notice_id, error = %e, "reading the alert's drift ids");
                }
                if let Some(why) = self.action_outdated(&notice) {
                    tracing::info!(sink = %row.sink, notice = %row.notice_id, reason = %why, "action alert no longer true; done without sending");
                    self.record_sent(row.id).await?;
                    continue;
                }
                match self.deliver.deliver(&row.sink, &notice).await {
                    Ok(()) => {
                        locked(&self.unrecorded).insert(row.id);
                        locked(&self.last_delivery_error).remove(&row.sink);
                        self.count_delivery(&row.sink, "sent");
                        tracing::info!(sink = %row.sink, notice = %row.notice_id, "alert sent");
                        self.record_sent(row.id).await?;
                        sent += 1;
                    }
                    Err(e) => {
                        let attempts = row.attempts.saturating_add(1);
                        let now = chrono::Utc::now();
                        let give_up_at = chrono::DateTime::parse_from_rfc3339(&row.created_at)
                            .ok()
                            .and_then(|t| {
                                let keep = self
                                    .retry_for
                                    .get(&row.sink)
                                    .copied()
                                    .unwrap_or(DEFAULT_RETRY_FOR);
                                t.with_timezone(&chrono::Utc)
                                    .checked_add_signed(chrono::Duration::from_std(keep).ok()?)
                            })
                            .unwrap_or(now);
                        let next = (e.retryable && now < give_up_at).then(|| {
                            let step = u32::try_from(attempts.clamp(1, 11) - 1).unwrap_or(10);
                            let backoff = self
                                .base_backoff
                                .saturating_mul(1u32 << step)
                                .min(Duration::from_secs(3600));
                            // The server's Retry-After, never below the backoff step nor
                            // above an hour (a huge or zero value must neither park the
                            // alert for ever, overflow the clock, nor burn the retries).
                            let wait = crate::alert::clamp_retry_after(e.retry_after, backoff);
                            // The last attempt comes at the end of the retry time.
                            fmt_time(
                                chrono::Duration::from_std(wait)
                                    .ok()
                                    .and_then(|d| now.checked_add_signed(d))
                                    .unwrap_or(now)
                                    .min(give_up_at),
                            )
                        });
                        self.count_delivery(
                            &row.sink,
                            if next.is_some() { "retry" } else { "failed" },
                        );
                        let message = e.to_string();
                        let repeated = locked(&self.last_delivery_error)
                            .insert(row.sink.clone(), message.clone())
                            .is_some_and(|last| last == message);
                        if repeated {
                            tracing::debug!(sink = %row.sink, notice = %row.notice_id, attempts, retry_at = next.as_deref().unwrap_or("never"), error = %e, "alert delivery failed (as before)");
                        } else {
                            tracing::warn!(sink = %row.sink, notice = %row.notice_id, attempts, retry_at = next.as_deref().unwrap_or("never"), error = %e, "alert delivery failed");
                        }
                        self.store
                            .mark_failed(row.id, &e.to_string(), next.as_deref())?;
                    }
                }
            }
        }
    }

    /// Records that a sink accepted outbox row `id`, retrying while the store is busy
    /// (locked by another writer beyond its busy timeout) for up to two minutes. Until it
    /// is recorded the row stays in [`Self::unrecorded`]: later rounds retry this
    /// bookkeeping and never deliver the alert again (in this process; see docs/alerts.md
    /// for the window a kill leaves).
    async fn record_sent(&self, id: i64) -> Result<(), StoreError> {
        let mut wait = Duration::from_millis(200);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        loop {
            match self.store.mark_sent(id) {
                Ok(()) => {
                    locked(&self.unrecorded).remove(&id);
                    return Ok(());
                }
                Err(e) if tokio::time::Instant::now() + wait < deadline => {
                    tracing::warn!(error = %e, "recording a sent alert; retrying (the alert is not sent again)");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// One sink's delivery queue, for as long as the daemon runs: delivers what is due,
    /// then waits for the next due alert, a wake-up or shutdown. Each round runs as its
    /// own task, so an error or even a panic in it is logged, counted
    /// (`envdrift_outbox_stalled_total`), shown by `/readyz` and followed by a new round
    /// after a pause, never the end of deliveries.
    async fn sink_queue(self: Arc<Self>, sink: String, mut stop: signal::Receiver<bool>) {
        let wake = self.outbox_wake.get(&sink).cloned().unwrap_or_default();
        let mut pause = Duration::from_secs(1);
        loop {
            let me = Arc::clone(&self);
            let s = sink.clone();
            let mut task = tokio::spawn(async move { me.deliver_due_of(&s).await });
            let round = tokio::select! {
                r = &mut task => r,
                _ = stop.changed() => {
                    // Shutting down: give a delivery in flight a moment, then stop it (its
                    // alert stays pending and is sent after the restart).
                    match tokio::time::timeout(Duration::from_secs(5), &mut task).await {
                        Ok(_) => {}
                        Err(_) => {
                            task.abort();
                            tracing::warn!(sink = %sink, "shutting down with a delivery in flight; it is retried after the restart");
                        }
                    }
                    break;
                }
            };
            let failure = match round {
                Ok(Ok(_)) => None,
                Ok(Err(e)) => Some(e.to_string()),
                Err(e) if e.is_panic() => Some(format!(
                    "the delivery task panicked: {}",
                    panic_text(e.into_panic())
                )),
                Err(e) => Some(format!("the delivery task ended: {e}")),
            };
            let wait = match failure {
                Some(reason) => {
                    tracing::error!(sink = %sink, error = %reason, retry_in_s = pause.as_secs(), "alert delivery stalled; restarting the queue");
                    self.metrics
                        .outbox_stalled
                        .get_or_create(&metrics::SinkLabels { sink: sink.clone() })
                        .inc();
                    locked(&self.stalled).insert(sink.clone(), reason);
                    let w = pause;
                    pause = (pause * 2).min(Duration::from_secs(60));
                    w
                }
                None => {
                    pause = Duration::from_secs(1);
                    locked(&self.stalled).remove(&sink);
                    self.store
                        .next_due_of(&sink)
                        .ok()
                        .flatten()
                        .map_or(Duration::from_secs(60), |n| wait_until(&n))
                        .min(Duration::from_secs(60))
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = wake.notified() => {}
                _ = stop.changed() => break,
            }
            if *stop.borrow() {
                break;
            }
        }
    }

    fn count_delivery(&self, sink: &str, result: &str) {
        self.metrics
            .deliveries
            .get_or_create(&metrics::DeliveryLabels {
                sink: sink.to_string(),
                result: result.to_string(),
            })
            .inc();
    }

    /// Delivers until nothing is due, waiting for retries up to `budget`.
    pub async fn drain_outbox(&self, budget: Duration) -> Result<(), StoreError> {
        let deadline = tokio::time::Instant::now() + budget;
        loop {
            self.deliver_due().await?;
            let Some(next) = self.store.next_due()? else {
                return Ok(());
            };
            let wait = wait_until(&next);
            if tokio::time::Instant::now() + wait > deadline {
                tracing::warn!(next_attempt = %next, "alerts still pending; they are retried by the daemon");
                return Ok(());
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// The report of `report` (or of every target) since its last run.
    pub fn build_report(
        &self,
        report: Option<&ReportConfig>,
    ) -> Result<(String, Vec<ReportSection>), StoreError> {
        let targets: Vec<String> = match report {
            Some(r) if !r.targets.is_empty() => r.targets.clone(),
            _ => self
                .targets()
                .iter()
                .map(|t| t.name().to_string())
                .collect(),
        };
        let since = match report {
            Some(r) => self.store.report_last_run(&r.name)?,
            None => None,
        }
        .unwrap_or_else(|| fmt_time(chrono::Utc::now() - chrono::Duration::days(1)));
        let title = format!(
            "envdrift report{} since {since}",
            report.map(|r| format!(" `{}`", r.name)).unwrap_or_default()
        );
        Ok((
            title,
            report::build(&self.store, &targets, &since, chrono::Utc::now())?,
        ))
    }

    /// Builds a report and queues it for its sinks; records the run.
    pub fn send_report(&self, r: &ReportConfig) -> Result<usize, StoreError> {
        let (title, sections) = self.build_report(Some(r))?;
        let now = chrono::Utc::now();
        let severity = sections
            .iter()
            .flat_map(|s| s.open_by_severity.iter())
            .filter(|(_, n)| *n > 0)
            .map(|(s, _)| *s)
            .max()
            .unwrap_or(Severity::Info);
        let at = fmt_time(now);
        let n = Notice {
            id: format!("{}/report/{}/{at}", self.store.id(), r.name),
            kind: NoticeKind::Report,
            env: r.name.clone(),
            title,
            severity,
            created_at: at.clone(),
            drifts: Vec::new(),
            error: None,
            report: sections,
            extra: serde_json::Value::Null,
        };
        let rows: Vec<OutboxWrite> = self
            .route(&n)
            .into_iter()
            .filter(|w| r.sinks.is_empty() || r.sinks.contains(&w.sink))
            .collect();
        let count = rows.len();
        self.store.record_report(&r.name, &at, &rows)?;
        self.wake_outbox();
        Ok(count)
    }

    /// The next time a report's cron fires after `after`.
    pub(crate) fn next_fire(
        &self,
        r: &ReportConfig,
        after: chrono::DateTime<chrono::Utc>,
    ) -> Option<chrono::DateTime<chrono::Utc>> {
        let schedule: cron::Schedule = r.cron.parse().ok()?;
        schedule
            .after(&after.with_timezone(&self.tz))
            .next()
            .map(|t| t.with_timezone(&chrono::Utc))
    }

    /// Whether a report is due now (never ran, or its schedule fired since the last run).
    pub(crate) fn report_due(&self, r: &ReportConfig) -> Result<bool, StoreError> {
        let Some(last) = self.store.report_last_run(&r.name)? else {
            return Ok(true);
        };
        let Ok(last) = chrono::DateTime::parse_from_rfc3339(&last) else {
            return Ok(true);
        };
        Ok(self
            .next_fire(r, last.with_timezone(&chrono::Utc))
            .is_some_and(|t| t <= chrono::Utc::now()))
    }

    /// One full cycle: every scan and comparison, due reports, delivery. Returns the exit
    /// code of `envdrift diff`: 2 when a scan failed or was partial, 1 when open drift at or
    /// above `fail_on` exists, else 0.
    pub async fn run_once(self: &Arc<Self>, fail_on: Option<Severity>) -> Result<u8, StoreError> {
        Ok(self.run_once_detailed(fail_on).await?.code)
    }

    /// [`Daemon::run_once`], with what it did: each target's scan and the reports sent.
    pub async fn run_once_detailed(
        self: &Arc<Self>,
        fail_on: Option<Severity>,
    ) -> Result<OnceOutcome, StoreError> {
        let mut summaries = Vec::new();
        for t in self.targets() {
            summaries.push(self.scan(&t).await?);
        }
        let mut reports = Vec::new();
        for r in &self.cfg.reports {
            if self.report_due(r)? {
                let sinks = self.send_report(r)?;
                reports.push((r.name.clone(), sinks));
            }
        }
        let code = self.finish_once(&summaries, fail_on).await?;
        Ok(OnceOutcome {
            code,
            scans: summaries,
            reports,
        })
    }

    async fn finish_once(
        self: &Arc<Self>,
        summaries: &[ScanSummary],
        fail_on: Option<Severity>,
    ) -> Result<u8, StoreError> {
        self.drain_outbox(Duration::from_secs(60)).await?;
        let retention = interval_of(&self.cfg.retention, Duration::from_secs(30 * 86_400));
        self.store.prune(&fmt_time(
            chrono::Utc::now() - chrono::Duration::from_std(retention).unwrap_or_default(),
        ))?;
        if summaries.iter().any(|s| s.outcome != ScanOutcome::Ok) {
            return Ok(2);
        }
        let open = self.store.open_counts()?;
        let code = match fail_on {
            Some(t) if open.iter().any(|c| c.severity >= t) => 1,
            _ => 0,
        };
        Ok(code)
    }

    /// Runs until `shutdown` turns true: one task per target, the outbox driver, the report
    /// scheduler. On shutdown, running scans finish (their results are committed) and the
    /// store is left consistent.
    pub async fn run(self: Arc<Self>, mut shutdown: signal::Receiver<bool>) {
        let mut tasks = tokio::task::JoinSet::new();
        for t in self.targets() {
            let me = Arc::clone(&self);
            if let Target::Environment(n) = &t
                && self.cfg.environments.get(n).is_some_and(watch::watched)
            {
                let n = n.clone();
                tasks.spawn(shard::while_owned(
                    me,
                    t.key(),
                    shutdown.clone(),
                    move |d, stop, _| Box::pin(watch::run_environment(d, n.clone(), stop)),
                ));
                continue;
            }
            let every = self.interval(&t);
            tasks.spawn(shard::while_owned(me, t.key(), shutdown.clone(), move |me, mut stop, from_start| {
                let t = t.clone();
                Box::pin(async move {
                // Spread the first scans over a tenth of the interval; a target taken over
                // from another replica is scanned at once.
                let mut delay = if from_start { jitter(every / 10) } else { Duration::ZERO };
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = stop.changed() => break,
                    }
                    if *stop.borrow() {
                        break;
                    }
                    if let Err(e) = me.scan(&t).await {
                        tracing::error!(target = %t.name(), error = %e, "could not record the scan");
                    }
                    // Interval ± 10 % jitter so that targets do not scan in lockstep.
                    delay = every.mul_f64(0.9) + jitter(every / 5);
                }
                })
            }));
        }
        for sink in self.deliver.sinks() {
            tasks.spawn(Arc::clone(&self).sink_queue(sink, shutdown.clone()));
        }
        for r in self.cfg.reports.clone() {
            let me = Arc::clone(&self);
            let mut stop = shutdown.clone();
            tasks.spawn(async move {
                while let Some(next) = me.next_fire(&r, chrono::Utc::now()) {
                    let wait = (next - chrono::Utc::now()).to_std().unwrap_or_default();
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = stop.changed() => break,
                    }
                    if !me.owns(&shard::report_key(&r.name)) {
                        continue;
                    }
                    match me.send_report(&r) {
                        Ok(n) => tracing::info!(report = %r.name, sinks = n, "report queued"),
                        Err(e) => tracing::error!(report = %r.name, error = %e, "report failed"),
                    }
                }
            });
        }
        {
            let me = Arc::clone(&self);
            let mut stop = shutdown.clone();
            tasks.spawn(async move {
                let retention = interval_of(&me.cfg.retention, Duration::from_secs(30 * 86_400));
                loop {
                    let cutoff = chrono::Utc::now()
                        - chrono::Duration::from_std(retention).unwrap_or_default();
                    if let Err(e) = me.store.prune(&fmt_time(cutoff)) {
                        tracing::error!(error = %e, "pruning the store");
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
                        _ = stop.changed() => break,
                    }
                }
            });
        }
        let _ = shutdown.changed().await;
        tracing::info!("shutting down: waiting for running scans to finish");
        while tasks.join_next().await.is_some() {}
    }
}

/// How long until an RFC 3339 time (zero when it has passed or does not parse).
fn wait_until(at: &str) -> Duration {
    chrono::DateTime::parse_from_rfc3339(at)
        .map(|t| {
            (t.with_timezone(&chrono::Utc) - chrono::Utc::now())
                .to_std()
                .unwrap_or_default()
        })
        .unwrap_or_default()
}

/// A std mutex's guard; a poisoned mutex (a panic while it was held) is still used: the
/// data guarded here (sets and maps of ids and messages) stays consistent at every step.
fn locked<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Retry time of a sink without `retry_for` (and of `alerts.retry_for` when unset).
const DEFAULT_RETRY_FOR: Duration = Duration::from_secs(24 * 3600);

/// A panic's message, as far as it is text.
fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

fn fail(e: String) -> ScanOutput {
    ScanOutput {
        outcome: ScanOutcome::Failed,
        error: Some(e),
        result: None,
        revision: None,
        objects: 0,
        snapshot: None,
        untrusted_types: Vec::new(),
        unknown_kinds: Vec::new(),
    }
}

fn jitter(max: Duration) -> Duration {
    if max.is_zero() {
        return max;
    }
    max.mul_f64(fastrand::f64())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    struct NoSinks;
    impl Deliver for NoSinks {
        fn sinks(&self) -> Vec<String> {
            Vec::new()
        }
        fn route(&self, _: &str, _: &Notice) -> Option<Notice> {
            None
        }
        fn deliver<'a>(
            &'a self,
            _: &'a str,
            _: &'a Notice,
        ) -> Pin<Box<dyn Future<Output = Result<(), DeliveryError>> + Send + 'a>> {
            Box::pin(async { Ok(()) })
        }
    }

    /// Triggered scans: at most one waiting per target (later triggers get its id), at
    /// most [`MAX_QUEUED_TRIGGERS`] waiting in all, and a new one once it started.
    #[tokio::test]
    async fn triggered_scans_are_deduplicated_and_bounded() {
        let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/demo");
        let mut text = String::from("environments:\n");
        for i in 0..=MAX_QUEUED_TRIGGERS {
            text.push_str(&format!(
                "  env{i:02}:\n    desired: {{type: dir, path: {d}/git/production}}\n    live: {{type: dump, path: {d}/live/production}}\n",
                d = demo.display()
            ));
        }
        let cfg = Config::parse(&text, Path::new("envdrift.yaml")).unwrap();
        let store = Arc::new(Store::open_in_memory().unwrap());
        let d = Arc::new(Daemon::new(cfg, PathBuf::from("."), store, Arc::new(NoSinks)).unwrap());
        let targets = d.targets();
        // Every target busy (a scan holds its lock), so triggered scans wait.
        let mut guards = Vec::new();
        for t in &targets {
            guards.push(d.locks[t].clone().lock_owned().await);
        }
        let first = d.trigger_scan(&targets[0]).unwrap();
        let Triggered::Queued(id) = first else {
            panic!("{first:?}")
        };
        for _ in 0..300 {
            assert_eq!(
                d.trigger_scan(&targets[0]).unwrap(),
                Triggered::AlreadyQueued(id)
            );
        }
        for t in &targets[1..MAX_QUEUED_TRIGGERS] {
            assert!(matches!(d.trigger_scan(t).unwrap(), Triggered::Queued(_)));
        }
        assert_eq!(
            d.trigger_scan(&targets[MAX_QUEUED_TRIGGERS]).unwrap(),
            Triggered::QueueFull
        );
        // 301 + 15 triggers recorded 16 scans.
        assert_eq!(
            d.store.scans(None, 1000).unwrap().len(),
            MAX_QUEUED_TRIGGERS
        );
        // Once the first target's scan starts, a trigger queues a new one.
        drop(guards.remove(0));
        tokio::time::timeout(Duration::from_secs(20), async {
            while d.trigger_scan(&targets[0]).unwrap() == Triggered::AlreadyQueued(id) {
                tokio::task::yield_now().await;
            }
        })
        .await
        .unwrap();
    }
}
