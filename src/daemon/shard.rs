//! Which replica owns which target (issue 17): every target (environment, comparison,
//! report) is scanned by one daemon replica at a time.
//!
//! The seam is [`Ownership`]: `owns(key)` plus a change notification. [`Everything`] is the
//! single-replica default (today's behaviour). [`KubeLeases`] coordinates replicas through
//! `coordination.k8s.io/v1` Leases in one namespace:
//!
//! - each replica holds a membership Lease `envdrift-member-<identity>`, renewed every
//!   third of the lease duration; the live members are those whose membership Lease has not
//!   expired (`renewTime + leaseDurationSeconds` is in the future);
//! - each target goes to one member by rendezvous hashing ([`owner`]: highest
//!   SHA-256 score of member and target), so a member that joins or leaves moves only the
//!   targets it gains or had;
//! - the chosen member acquires and renews the target's Lease `envdrift-target-…`
//!   (`holderIdentity`, `leaseDurationSeconds`, `acquireTime`, `renewTime`,
//!   `leaseTransitions`), with the Lease's `resourceVersion` so that two replicas never both
//!   win; it takes a Lease over only when it expired or was released, and releases the
//!   Leases of targets it should no longer own;
//! - a replica owns a target only while its last renewal is younger than the lease
//!   duration and the renewal succeeded: a failed renewal drops the target at once.
//!
//! A small module over `Api<Lease>` rather than `kube-lease-manager` (0.13 fits kube 5 and
//! k8s-openapi 0.29): that crate runs one leader election per Lease, each with its own
//! loop and requests, while this needs one LIST per round for all members and targets,
//! placement by hashing, and releases on rebalance.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{ListParams, PostParams};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use sha2::{Digest, Sha256};
use tokio::sync::watch;

/// Who owns which target.
pub trait Ownership: Send + Sync + 'static {
    /// Whether this replica owns the target now (`environment/NAME`, `comparison/NAME`,
    /// `report/NAME`: [`super::Target::key`], [`report_key`]).
    fn owns(&self, key: &str) -> bool;
    /// Changes whenever the set of owned targets changes.
    fn subscribe(&self) -> watch::Receiver<u64>;
}

/// One replica: owns every target.
pub struct Everything {
    tx: watch::Sender<u64>,
}

impl Default for Everything {
    fn default() -> Self {
        Everything {
            tx: watch::channel(0).0,
        }
    }
}

impl Ownership for Everything {
    fn owns(&self, _key: &str) -> bool {
        true
    }
    fn subscribe(&self) -> watch::Receiver<u64> {
        self.tx.subscribe()
    }
}

/// The ownership key of a report.
pub fn report_key(name: &str) -> String {
    format!("report/{name}")
}

/// A member's rendezvous score for a key.
fn score(member: &str, key: &str) -> u64 {
    let mut h = Sha256::new();
    h.update(member.as_bytes());
    h.update([0]);
    h.update(key.as_bytes());
    let d = h.finalize();
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    u64::from_be_bytes(b)
}

/// The member that should own `key`: the highest rendezvous score (ties by name).
pub fn owner<'a>(members: &'a [String], key: &str) -> Option<&'a str> {
    members
        .iter()
        .max_by_key(|m| (score(m, key), m.as_str()))
        .map(String::as_str)
}

/// A DNS-1123 name part: lowercase letters, digits and `-`, at most `max` characters.
fn sanitize(s: &str, max: usize) -> String {
    let mut out: String = s
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            }
        })
        .take(max)
        .collect();
    while out.ends_with('-') {
        out.pop();
    }
    while out.starts_with('-') {
        out.remove(0);
    }
    out
}

fn short_hash(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .take(5)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `envdrift-member-<identity>`: the identity sanitized, with a hash when that changed it.
pub fn member_lease_name(identity: &str) -> String {
    let clean = sanitize(identity, 60);
    if clean == identity {
        format!("envdrift-member-{clean}")
    } else {
        format!("envdrift-member-{clean}-{}", short_hash(identity))
    }
}

/// `envdrift-target-<kind>-<name>-<hash>`, at most 63 characters (the hash keeps
/// sanitized and truncated names apart).
pub fn target_lease_name(key: &str) -> String {
    format!("envdrift-target-{}-{}", sanitize(key, 36), short_hash(key))
}

/// Lease writes in flight at once in a round.
const CONCURRENT_WRITES: usize = 8;

const ROLE_LABEL: &str = "envdrift.io/lease";
const MANAGED_BY: &str = "app.kubernetes.io/managed-by";

/// Metrics of the coordination (registered in the daemon's registry).
#[derive(Clone, Default)]
pub struct ShardMetrics {
    pub owned: Gauge,
    pub members: Gauge,
    pub renew_failures: Counter,
}

impl ShardMetrics {
    /// Registers the metrics with the daemon's.
    pub fn register(&self, m: &super::metrics::Metrics) {
        m.register(
            "owned_targets",
            "Targets (environments, comparisons, reports) this replica owns",
            self.owned.clone(),
        );
        m.register(
            "coordination_members",
            "Live replicas (unexpired membership Leases)",
            self.members.clone(),
        );
        m.register(
            "lease_renew_failures",
            "Lease renewals or acquisitions that failed (API error or conflict)",
            self.renew_failures.clone(),
        );
    }
}

/// Kubernetes Lease coordination of one replica.
pub struct KubeLeases {
    api: Api<Lease>,
    identity: String,
    duration: Duration,
    keys: Vec<String>,
    /// Owned keys and until when (the last good renewal plus the lease duration).
    owned: Mutex<BTreeMap<String, Instant>>,
    tx: watch::Sender<u64>,
    pub metrics: ShardMetrics,
}

impl Ownership for KubeLeases {
    fn owns(&self, key: &str) -> bool {
        self.lock()
            .get(key)
            .is_some_and(|until| Instant::now() < *until)
    }
    fn subscribe(&self) -> watch::Receiver<u64> {
        self.tx.subscribe()
    }
}

fn now_micro() -> MicroTime {
    MicroTime(Timestamp::now())
}

/// Whether a Lease is free to take: released (no holder) or expired at `now`.
fn expired(l: &Lease, now: Timestamp) -> bool {
    let Some(spec) = &l.spec else { return true };
    if spec.holder_identity.as_deref().is_none_or(str::is_empty) {
        return true;
    }
    let Some(renew) = spec.renew_time.as_ref().or(spec.acquire_time.as_ref()) else {
        return true;
    };
    let secs = i64::from(spec.lease_duration_seconds.unwrap_or(0).max(0));
    renew
        .0
        .as_millisecond()
        .saturating_add(secs.saturating_mul(1000))
        <= now.as_millisecond()
}

fn holder(l: &Lease) -> Option<&str> {
    l.spec
        .as_ref()
        .and_then(|s| s.holder_identity.as_deref())
        .filter(|h| !h.is_empty())
}

impl KubeLeases {
    /// Coordination of `keys` (every target of the config) through Leases in `api`'s
    /// namespace.
    pub fn new(api: Api<Lease>, identity: String, duration: Duration, keys: Vec<String>) -> Self {
        KubeLeases {
            api,
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

    fn set_owned(&self, key: &str, until: Option<Instant>) {
        let mut owned = self.lock();
        let changed = match until {
            Some(u) => owned.insert(key.to_string(), u).is_none(),
            None => owned.remove(key).is_some(),
        };
        let n = owned.len();
        drop(owned);
        self.metrics.owned.set(n as i64);
        if changed {
            match until {
                Some(_) => {
                    tracing::info!(target_key = key, identity = %self.identity, "target acquired")
                }
                None => {
                    tracing::info!(target_key = key, identity = %self.identity, "target lost or released")
                }
            }
            self.tx.send_modify(|v| *v = v.wrapping_add(1));
        }
    }

    fn drop_all(&self) {
        let keys: Vec<String> = self.lock().keys().cloned().collect();
        for k in keys {
            self.set_owned(&k, None);
        }
    }

    fn lease(&self, name: &str, role: &str, key: Option<&str>, spec: LeaseSpec) -> Lease {
        let mut labels = BTreeMap::new();
        labels.insert(ROLE_LABEL.to_string(), role.to_string());
        labels.insert(MANAGED_BY.to_string(), "envdrift".to_string());
        let annotations = key.map(|k| {
            let mut a = BTreeMap::new();
            a.insert("envdrift.io/target".to_string(), k.to_string());
            a
        });
        Lease {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                labels: Some(labels),
                annotations,
                ..ObjectMeta::default()
            },
            spec: Some(spec),
        }
    }

    fn duration_secs(&self) -> i32 {
        i32::try_from(self.duration.as_secs()).unwrap_or(i32::MAX)
    }

    /// Creates or renews this replica's membership Lease.
    async fn renew_member(&self) -> Result<(), kube::Error> {
        let name = member_lease_name(&self.identity);
        let now = now_micro();
        match self.api.get_opt(&name).await? {
            None => {
                let spec = LeaseSpec {
                    holder_identity: Some(self.identity.clone()),
                    lease_duration_seconds: Some(self.duration_secs()),
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                };
                let l = self.lease(&name, "member", None, spec);
                self.api.create(&PostParams::default(), &l).await?;
            }
            Some(mut l) => {
                let spec = l.spec.get_or_insert_with(LeaseSpec::default);
                if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
                    spec.acquire_time = Some(now.clone());
                }
                spec.holder_identity = Some(self.identity.clone());
                spec.lease_duration_seconds = Some(self.duration_secs());
                spec.renew_time = Some(now);
                self.api.replace(&name, &PostParams::default(), &l).await?;
            }
        }
        Ok(())
    }

    /// The live members (unexpired membership Leases), sorted; always includes this one.
    async fn members(&self, now: Timestamp) -> Result<Vec<String>, kube::Error> {
        let list = self
            .api
            .list(&ListParams::default().labels(&format!("{ROLE_LABEL}=member")))
            .await?;
        let mut set: BTreeSet<String> = list
            .items
            .iter()
            .filter(|l| !expired(l, now))
            .filter_map(|l| holder(l).map(str::to_string))
            .collect();
        set.insert(self.identity.clone());
        Ok(set.into_iter().collect())
    }

    /// One round: membership, then every target's Lease.
    ///
    /// # Errors
    /// The membership Lease could not be renewed or the Leases listed (every target is
    /// dropped then).
    pub async fn round(&self) -> Result<(), kube::Error> {
        let started = Instant::now();
        let until = started + self.duration;
        if let Err(e) = self.renew_member().await {
            self.metrics.renew_failures.inc();
            self.drop_all();
            return Err(e);
        }
        let now = Timestamp::now();
        let members = match self.members(now).await {
            Ok(m) => m,
            Err(e) => {
                self.drop_all();
                return Err(e);
            }
        };
        self.metrics.members.set(members.len() as i64);
        let leases = match self
            .api
            .list(&ListParams::default().labels(&format!("{ROLE_LABEL}=target")))
            .await
        {
            Ok(l) => l.items,
            Err(e) => {
                self.drop_all();
                return Err(e);
            }
        };
        let by_name: BTreeMap<String, Lease> = leases
            .into_iter()
            .filter_map(|l| l.metadata.name.clone().map(|n| (n, l)))
            .collect();
        // Lease writes in parallel, a few at a time: a round must stay well within a third
        // of the lease duration with hundreds of targets.
        let writes: Vec<_> = self
            .keys
            .iter()
            .map(|key| self.target(key, &members, &by_name, now, until))
            .collect();
        futures::stream::iter(writes)
            .buffer_unordered(CONCURRENT_WRITES)
            .collect::<Vec<()>>()
            .await;
        Ok(())
    }

    /// Acquires, renews, releases or leaves one target's Lease.
    async fn target(
        &self,
        key: &str,
        members: &[String],
        by_name: &BTreeMap<String, Lease>,
        now: Timestamp,
        until: Instant,
    ) {
        let name = target_lease_name(key);
        let mine = owner(members, key) == Some(self.identity.as_str());
        let current = by_name.get(&name);
        let held = current.and_then(holder) == Some(self.identity.as_str());
        if !mine {
            if held {
                // Rebalanced away: stop first, then release.
                self.set_owned(key, None);
                if let Some(l) = current {
                    self.release(&name, l.clone()).await;
                }
            } else {
                self.set_owned(key, None);
            }
            return;
        }
        let res = match current {
            None => {
                let t = now_micro();
                let spec = LeaseSpec {
                    holder_identity: Some(self.identity.clone()),
                    lease_duration_seconds: Some(self.duration_secs()),
                    acquire_time: Some(t.clone()),
                    renew_time: Some(t),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                };
                let l = self.lease(&name, "target", Some(key), spec);
                self.api
                    .create(&PostParams::default(), &l)
                    .await
                    .map(|_| ())
            }
            Some(l) if held || expired(l, now) => {
                let mut l = l.clone();
                let t = now_micro();
                let spec = l.spec.get_or_insert_with(LeaseSpec::default);
                if !held {
                    spec.acquire_time = Some(t.clone());
                    spec.lease_transitions =
                        Some(spec.lease_transitions.unwrap_or(0).saturating_add(1));
                    spec.holder_identity = Some(self.identity.clone());
                }
                spec.lease_duration_seconds = Some(self.duration_secs());
                spec.renew_time = Some(t);
                self.api
                    .replace(&name, &PostParams::default(), &l)
                    .await
                    .map(|_| ())
            }
            Some(_) => {
                // Held by another live replica (it will release it): wait.
                self.set_owned(key, None);
                return;
            }
        };
        match res {
            Ok(()) => self.set_owned(key, Some(until)),
            Err(e) => {
                self.metrics.renew_failures.inc();
                self.set_owned(key, None);
                let conflict = matches!(&e, kube::Error::Api(s) if s.code == 409);
                if conflict {
                    tracing::debug!(target_key = %key, "lease taken by another replica first");
                } else {
                    tracing::warn!(target_key = %key, lease = %name, error = %e, "lease renewal failed");
                }
            }
        }
    }

    /// Gives a target Lease up (no holder), so that its new owner need not wait for it to
    /// expire.
    async fn release(&self, name: &str, mut l: Lease) {
        if let Some(spec) = l.spec.as_mut() {
            spec.holder_identity = None;
            spec.renew_time = Some(now_micro());
        }
        if let Err(e) = self.api.replace(name, &PostParams::default(), &l).await {
            tracing::debug!(lease = %name, error = %e, "releasing a lease (it expires by itself)");
        }
    }

    /// Releases every Lease this replica holds (on shutdown).
    pub async fn release_all(&self) {
        self.drop_all();
        let now = Timestamp::now();
        let Ok(list) = self
            .api
            .list(&ListParams::default().labels(ROLE_LABEL))
            .await
        else {
            return;
        };
        for l in list.items {
            if holder(&l) == Some(self.identity.as_str())
                && !expired(&l, now)
                && let Some(name) = l.metadata.name.clone()
            {
                self.release(&name, l).await;
            }
        }
    }

    /// Runs rounds every third of the lease duration until `stop` turns true, then
    /// releases the Leases.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let every = self.duration / 3;
        loop {
            // A round that hangs must not outlive the Leases it renews.
            match tokio::time::timeout(every.max(Duration::from_millis(500)), self.round()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::warn!(identity = %self.identity, error = %e, "lease round failed: owning nothing until the next one");
                }
                Err(_) => {
                    self.metrics.renew_failures.inc();
                    self.drop_all();
                    tracing::warn!(identity = %self.identity, "lease round timed out: owning nothing until the next one");
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
        self.release_all().await;
    }
}

/// Starts the coordination `daemon.coordination` configures, if any: connects, joins
/// the members and runs the Lease rounds until `shutdown` (then releases the Leases).
/// Returns the task to await before exiting.
///
/// # Errors
/// The cluster cannot be reached from its kubeconfig/context/in-cluster settings, or the
/// daemon's ownership was set already.
pub async fn start(
    d: &Arc<super::Daemon>,
    shutdown: watch::Receiver<bool>,
) -> Result<Option<tokio::task::JoinHandle<()>>, super::DaemonError> {
    use crate::config::coordination::CoordinationConfig;
    let err = |key: &str, m: String| {
        super::DaemonError::Config(format!("daemon.coordination.{key}: {m}"))
    };
    let k = match &d.cfg.daemon.coordination {
        None => return Ok(None),
        Some(CoordinationConfig::Store(s)) => {
            let duration = s.lease_duration().map_err(|e| err("lease_duration", e))?;
            let identity = s.identity().ok_or_else(|| {
                err(
                    "identity",
                    "not set, and neither POD_NAME nor HOSTNAME is".into(),
                )
            })?;
            let leases = Arc::new(super::shard_store::StoreLeases::new(
                d.store.clone(),
                identity,
                duration,
                d.ownership_keys(),
            ));
            leases.metrics.register(&d.metrics);
            if !d.set_ownership(leases.clone()) {
                return Err(super::DaemonError::Config(
                    "daemon.coordination: ownership was set already".into(),
                ));
            }
            tracing::info!(
                identity = %leases.identity(),
                lease_duration = %humantime::format_duration(duration),
                "coordinating with other replicas through the shared store"
            );
            return Ok(Some(tokio::spawn(leases.run(shutdown))));
        }
        Some(CoordinationConfig::Kubernetes(k)) => k,
    };
    let duration = k.lease_duration().map_err(|e| err("lease_duration", e))?;
    let identity = k.identity().ok_or_else(|| {
        err(
            "identity",
            "not set, and neither POD_NAME nor HOSTNAME is".into(),
        )
    })?;
    let target = crate::source::kube::ClusterTarget {
        kubeconfig: k.kubeconfig.as_ref().map(|p| {
            if p.is_absolute() {
                p.clone()
            } else {
                d.base.join(p)
            }
        }),
        context: k.context.clone(),
        in_cluster: k.in_cluster,
    };
    let cluster = crate::source::kube::connect(&target, duration / 3)
        .await
        .map_err(|e| err("kubernetes", e.to_string()))?;
    let namespace = match &k.namespace {
        Some(ns) => ns.clone(),
        None => std::fs::read_to_string("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| cluster.client.default_namespace().to_string()),
    };
    let api: Api<Lease> = Api::namespaced(cluster.client.clone(), &namespace);
    let leases = Arc::new(KubeLeases::new(api, identity, duration, d.ownership_keys()));
    leases.metrics.register(&d.metrics);
    if !d.set_ownership(leases.clone()) {
        return Err(super::DaemonError::Config(
            "daemon.coordination: ownership was set already".into(),
        ));
    }
    tracing::info!(
        identity = %leases.identity(),
        namespace = %namespace,
        cluster = %cluster.description,
        lease_duration = %humantime::format_duration(duration),
        "coordinating with other replicas through Leases"
    );
    Ok(Some(tokio::spawn(leases.run(shutdown))))
}

/// Runs a target's task while this replica owns `key`: started when ownership is gained
/// (`from_start`: owned from the first look, i.e. at daemon start), told to stop when it is
/// lost or on shutdown (a running scan finishes first), started again when regained.
pub(crate) async fn while_owned<F>(
    d: Arc<super::Daemon>,
    key: String,
    mut shutdown: watch::Receiver<bool>,
    task: F,
) where
    F: Fn(
            Arc<super::Daemon>,
            watch::Receiver<bool>,
            bool,
        ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
        + Send
        + 'static,
{
    // Ownership can also lapse by time (a renewal round that hangs): look every second.
    const TICK: Duration = Duration::from_secs(1);
    let mut changes = d.ownership.get().map(|o| o.subscribe());
    let mut from_start = true;
    loop {
        while !d.owns(&key) {
            from_start = false;
            tokio::select! {
                _ = shutdown.changed() => {}
                () = changed(&mut changes) => {}
                () = tokio::time::sleep(TICK) => {}
            }
            if *shutdown.borrow() {
                return;
            }
        }
        if *shutdown.borrow() {
            return;
        }
        let (tx, rx) = watch::channel(false);
        let mut running = tokio::spawn(task(Arc::clone(&d), rx, from_start));
        loop {
            tokio::select! {
                _ = &mut running => break,
                _ = shutdown.changed() => {}
                () = changed(&mut changes) => {}
                () = tokio::time::sleep(TICK) => {}
            }
            if *shutdown.borrow() {
                let _ = tx.send(true);
                let _ = running.await;
                return;
            }
            if !d.owns(&key) {
                tracing::info!(target_key = %key, "no longer owned: stopping its scans");
                let _ = tx.send(true);
                let _ = running.await;
                break;
            }
        }
        from_start = false;
    }
}

/// Waits for the next ownership change (forever without coordination or once its sender
/// is gone).
async fn changed(rx: &mut Option<watch::Receiver<u64>>) {
    match rx {
        Some(r) => {
            if r.changed().await.is_err() {
                *rx = None;
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending::<()>().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(prefix: &str, n: usize) -> Vec<String> {
        (0..n).map(|i| format!("{prefix}-{i}")).collect()
    }

    fn spread(members: &[String], keys: &[String]) -> BTreeMap<String, usize> {
        let mut out: BTreeMap<String, usize> = members.iter().map(|m| (m.clone(), 0)).collect();
        for k in keys {
            *out.entry(owner(members, k).unwrap().to_string())
                .or_default() += 1;
        }
        out
    }

    /// 200 targets over 4 members: each gets 50 ± 25 %.
    #[test]
    fn rendezvous_spreads_fairly() {
        let keys: Vec<String> = (0..200)
            .map(|i| format!("environment/env-{i:03}"))
            .collect();
        for members in [
            names("envdrift", 4),
            vec!["a".into(), "b".into(), "c".into(), "d".into()],
        ] {
            let s = spread(&members, &keys);
            for (m, n) in &s {
                assert!((38..=62).contains(n), "{m}: {n} of 200 ({s:?})");
            }
            assert_eq!(s.values().sum::<usize>(), 200);
        }
    }

    /// A member leaving moves only its own targets; one joining takes only targets that
    /// now go to it.
    #[test]
    fn rendezvous_moves_little() {
        let keys: Vec<String> = (0..200).map(|i| format!("comparison/c-{i}")).collect();
        let four = names("envdrift", 4);
        let three: Vec<String> = four[..3].to_vec();
        for k in &keys {
            let before = owner(&four, k).unwrap();
            let after = owner(&three, k).unwrap();
            if before != "envdrift-3" {
                assert_eq!(before, after, "{k} moved though its owner stayed");
            }
        }
        let moved = keys
            .iter()
            .filter(|k| owner(&four, k) != owner(&three, k))
            .count();
        assert_eq!(moved, spread(&four, &keys)["envdrift-3"]);
        assert_eq!(owner(&[], "x"), None);
    }

    #[test]
    fn lease_names_are_dns_names_and_distinct() {
        assert_eq!(
            member_lease_name("envdrift-0"),
            "envdrift-member-envdrift-0"
        );
        let odd = member_lease_name("Host_Name.local");
        assert!(odd.starts_with("envdrift-member-host-name-local-"), "{odd}");
        let a = target_lease_name("comparison/a vs b");
        let b = target_lease_name("comparison/a-vs-b");
        assert_ne!(a, b);
        for n in [&a, &b, &target_lease_name(&"x".repeat(300))] {
            assert!(n.len() <= 63, "{n}");
            assert!(
                n.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                "{n}"
            );
        }
    }

    fn lease_with(holder: Option<&str>, renewed_secs_ago: i64, duration: i32) -> Lease {
        let t = Timestamp::from_second(Timestamp::now().as_second() - renewed_secs_ago).unwrap();
        Lease {
            metadata: ObjectMeta::default(),
            spec: Some(LeaseSpec {
                holder_identity: holder.map(str::to_string),
                renew_time: Some(MicroTime(t)),
                lease_duration_seconds: Some(duration),
                ..LeaseSpec::default()
            }),
        }
    }

    #[test]
    fn expiry_and_release() {
        let now = Timestamp::now();
        assert!(!expired(&lease_with(Some("a"), 1, 15), now));
        assert!(expired(&lease_with(Some("a"), 16, 15), now));
        assert!(expired(&lease_with(None, 0, 15), now));
        assert!(expired(&lease_with(Some(""), 0, 15), now));
        assert!(expired(&Lease::default(), now));
    }
}
