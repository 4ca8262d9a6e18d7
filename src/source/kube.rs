//! Live snapshots from a Kubernetes cluster with kube-rs.
//!
//! Entry points: [`connect`] (a kubeconfig path + context, the default kubeconfig, or the
//! in-cluster service account) and [`snapshot`], which discovers every listable resource
//! type (CRDs included), lists each in scope with pagination, bounded concurrency,
//! per-request timeouts and retries, and returns a [`Snapshot`] whose objects carry
//! [`Origin::Live`] with their `resourceVersion`; `managedFields` and `ownerReferences` stay
//! on the objects (the comparison ignores them, attribution reads them). Secrets are hashed
//! by [`redact_secret`] as they are read, and `status` is dropped (never compared).
//!
//! A resource type that cannot be listed (403, 5xx or a timeout after retries, a list
//! restarted too often on 410 Gone, a broken connection) becomes an
//! [`UnknownScope`] with the reason: its objects are never reported as missing.
//!
//! **Incremental rescans**: pass the [`ObjectCache`] of the previous scan. Each list item
//! is first read shallowly (uid and resourceVersion only); an item whose uid and
//! resourceVersion are unchanged reuses the previous scan's converted, redacted object
//! instead of being parsed again.
//!
//! **Schemas**: the cluster's OpenAPI v3 documents (`/openapi/v3`, then the document of
//! each group-version in scope) are read once per snapshot and trimmed into a
//! [`SchemaSet`] returned beside the snapshot ([`LiveSnapshot::schemas`]); the comparison's schema
//! registry prefers them to the bundled set. Documents are cached by the URL the index
//! gives, which carries the document's hash: a rescan fetches the index and only the
//! documents whose hash changed. A cluster that does not serve `/openapi/v3` (old or
//! restricted) falls back to the bundled set, with one note in the result.
//!
//! # Caveats
//! - Discovery uses the legacy endpoints (`/api`, `/apis`, then one request per group's
//!   preferred version), not aggregated discovery.
//! - Watch mode: [`WatchStore`] keeps a cluster's objects current with kube-runtime
//!   watchers (issue 15); the daemon evaluates its changes (`src/daemon/watch.rs`).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use kube::Client;
use kube::config::{Config, KubeConfigOptions, Kubeconfig};
use kube::core::params::ListParams;
use kube::discovery::{Scope, verbs};
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::diff::schema::{SchemaSet, TrimmedDoc, openapi::trim_document};
use crate::model::{Object, Origin, ResourceKey, Snapshot, SourceRef, UnknownScope};
use crate::pattern::wildcard;
use crate::redact::redact_secret;

/// Which cluster to read.
#[derive(Debug, Clone, Default)]
pub struct ClusterTarget {
    /// Kubeconfig file. Default: `KUBECONFIG` or `~/.kube/config`.
    pub kubeconfig: Option<PathBuf>,
    /// Context in the kubeconfig. Default: its current context.
    pub context: Option<String>,
    /// Use the pod's service account (`KUBERNETES_SERVICE_HOST`, the mounted token and CA)
    /// instead of a kubeconfig.
    pub in_cluster: bool,
}

/// What to read and how.
#[derive(Debug, Clone)]
pub struct KubeOptions {
    /// Environment name recorded on the snapshot (`staging`). Default `live`.
    pub env: String,
    /// Namespaces by name or glob (`shop-*`). Empty: all namespaces.
    pub namespaces: Vec<String>,
    /// Namespaces by label selector (`team=shop`), combined with `namespaces` when both are given.
    pub namespace_selector: Option<String>,
    /// Resource types to read: `Kind` (core), `Kind.group`, globs (`*.cert-manager.io`).
    /// Empty: every listable type.
    pub include: Vec<String>,
    /// Resource types never read (same syntax), on top of [`DEFAULT_EXCLUDE`].
    pub exclude: Vec<String>,
    /// Read cluster-scoped types (Namespaces, ClusterRoles, CRD instances…). Default true;
    /// only the namespaces in scope are kept when namespaces are restricted.
    pub cluster_scoped: bool,
    /// Keep Pods and ReplicaSets owned by a controller (default false: they are the
    /// controller's business, not Git's).
    pub keep_owned: bool,
    /// Items per list page (`limit`). Default 500, as client-go.
    pub page_size: u32,
    /// Lists running at once. Default 8.
    pub concurrency: usize,
    /// Timeout of one request. Default 30 s.
    pub request_timeout: Duration,
    /// Retries of a failed request (5xx, 429, timeout, broken connection). Default 3.
    pub retries: u32,
    /// First retry delay, doubled each time. Default 200 ms.
    pub backoff: Duration,
    /// Restarts of a list whose continue token expired (410 Gone). Default 3.
    pub max_restarts: u32,
}

impl Default for KubeOptions {
    fn default() -> Self {
        KubeOptions {
            env: "live".into(),
            namespaces: Vec::new(),
            namespace_selector: None,
            include: Vec::new(),
            exclude: Vec::new(),
            cluster_scoped: true,
            keep_owned: false,
            page_size: 500,
            concurrency: 8,
            request_timeout: Duration::from_secs(30),
            retries: 3,
            backoff: Duration::from_millis(200),
            max_restarts: 3,
        }
    }
}

/// Resource types never read: noisy, controller-written or not configuration.
pub const DEFAULT_EXCLUDE: &[&str] = &[
    "Event",
    "Event.events.k8s.io",
    "Endpoints",
    "EndpointSlice.discovery.k8s.io",
    "Lease.coordination.k8s.io",
    "ControllerRevision.apps",
    "ComponentStatus",
    "Binding",
    "*.metrics.k8s.io",
    "*Review.*",
    "PodMetrics*",
];

/// Errors that stop a snapshot before any list (per-type failures become unknown scopes).
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error("kubeconfig {path}: {source}")]
    KubeconfigReadFailed {
        path: String,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error("kubeconfig {path}: cannot read it: {reason}")]
    KubeconfigUnreadable { path: String, reason: String },
    #[error("no context `{context}` in the kubeconfig (contexts: {available})")]
    UnknownContext { context: String, available: String },
    #[error("kubeconfig context {context}: {source}")]
    KubeconfigInvalid {
        context: String,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error("in-cluster config: {0} (is this running in a pod with a service account?)")]
    InClusterFailed(#[source] kube::config::InClusterError),
    #[error("creating the client: {0}")]
    ClientFailed(#[source] kube::Error),
    #[error("discovery of {cluster}: {source}")]
    DiscoveryFailed {
        cluster: String,
        #[source]
        source: kube::Error,
    },
    #[error("listing namespaces of {cluster} to resolve the namespace scope: {reason}")]
    NamespaceScopeFailed { cluster: String, reason: String },
    #[error("starting the async runtime: {0}")]
    RuntimeFailed(#[source] std::io::Error),
}

/// A connected client and a description of the cluster (context and server, never credentials).
#[derive(Clone)]
pub struct Cluster {
    pub client: Client,
    pub description: String,
}

/// Connects to a cluster. Must run inside a tokio runtime.
///
/// # Errors
/// A kubeconfig that cannot be read, an unknown context, missing in-cluster files.
pub async fn connect(target: &ClusterTarget, timeout: Duration) -> Result<Cluster, KubeError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let options = KubeConfigOptions {
        context: target.context.clone(),
        ..Default::default()
    };
    let ctx_name = target.context.clone().unwrap_or_else(|| "(current)".into());
    let mut config = if target.in_cluster {
        Config::incluster().map_err(KubeError::InClusterFailed)?
    } else {
        let read = match &target.kubeconfig {
            Some(path) => Kubeconfig::read_from(path),
            None => Kubeconfig::read(),
        };
        let kc = read.map_err(|source| match source {
            // Say which file and why, once (kube's message quotes the path twice).
            kube::config::KubeconfigError::ReadConfig(io, path) => {
                KubeError::KubeconfigUnreadable {
                    path: path.display().to_string(),
                    reason: io.to_string(),
                }
            }
            source => KubeError::KubeconfigReadFailed {
                path: target.kubeconfig.as_ref().map_or_else(
                    || "(KUBECONFIG or ~/.kube/config)".to_string(),
                    |p| p.display().to_string(),
                ),
                source,
            },
        })?;
        if let Some(want) = &target.context
            && !kc.contexts.iter().any(|c| &c.name == want)
        {
            let mut available: Vec<String> = kc.contexts.iter().map(|c| c.name.clone()).collect();
            available.sort();
            return Err(KubeError::UnknownContext {
                context: want.clone(),
                available: if available.is_empty() {
                    "none".to_string()
                } else {
                    available.join(", ")
                },
            });
        }
        Config::from_custom_kubeconfig(kc, &options)
            .await
            .map_err(|source| KubeError::KubeconfigInvalid {
                context: ctx_name.clone(),
                source,
            })?
    };
    config.read_timeout = Some(timeout);
    config.write_timeout = Some(timeout);
    config.connect_timeout = Some(timeout);
    let description = if target.in_cluster {
        format!("in-cluster ({})", config.cluster_url)
    } else {
        format!("context {ctx_name} ({})", config.cluster_url)
    };
    let client = Client::try_from(config).map_err(KubeError::ClientFailed)?;
    Ok(Cluster {
        client,
        description,
    })
}

/// A previous scan's objects by uid, for incremental rescans (see the module doc).
#[derive(Debug, Default, Clone)]
pub struct ObjectCache {
    by_uid: HashMap<String, (String, ResourceKey, Object)>,
    /// Trimmed OpenAPI documents by the index's `serverRelativeURL` (it carries the hash).
    openapi_docs: HashMap<String, std::sync::Arc<TrimmedDoc>>,
    /// The last merged set and the document URLs it was made of.
    openapi_set: Option<(Vec<String>, std::sync::Arc<SchemaSet>)>,
}

impl ObjectCache {
    pub fn len(&self) -> usize {
        self.by_uid.len()
    }
    pub fn is_empty(&self) -> bool {
        self.by_uid.is_empty()
    }
    fn get(&self, uid: &str, rv: &str) -> Option<(&ResourceKey, &Object)> {
        self.by_uid
            .get(uid)
            .filter(|(crv, _, _)| crv == rv)
            .map(|(_, k, o)| (k, o))
    }
}

/// Counters of one snapshot.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SnapshotStats {
    /// Resource types listed.
    pub types: usize,
    /// List requests sent (pages, retries and restarts included).
    pub requests: usize,
    pub retries: usize,
    /// Lists restarted after 410 Gone.
    pub restarts: usize,
    /// Objects parsed and converted.
    pub parsed: usize,
    /// Objects reused from the cache (uid and resourceVersion unchanged).
    pub reused: usize,
}

/// The outcome of [`snapshot`].
pub struct LiveSnapshot {
    pub snapshot: Snapshot,
    pub stats: SnapshotStats,
    /// The cache for the next incremental scan.
    pub cache: ObjectCache,
    /// The cluster's schemas (its OpenAPI v3 documents), or a note on why there are none.
    pub schemas: std::sync::Arc<SchemaSet>,
}

/// One resource type to list.
#[derive(Debug, Clone)]
struct ListTarget {
    group: String,
    version: String,
    kind: String,
    plural: String,
    namespaced: bool,
}

impl ListTarget {
    fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
    fn url(&self, ns: Option<&str>) -> String {
        let base = if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        };
        match ns {
            Some(ns) => format!("{base}/namespaces/{ns}/{}", self.plural),
            None => format!("{base}/{}", self.plural),
        }
    }
    fn type_name(&self) -> String {
        if self.group.is_empty() {
            self.kind.clone()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }
}

/// `Kind` / `Kind.group` pattern match.
fn type_matches(patterns: &[impl AsRef<str>], kind: &str, group: &str) -> bool {
    let full = if group.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}.{group}")
    };
    patterns.iter().any(|p| {
        let p = p.as_ref();
        wildcard(p, &full) || (!p.contains('.') && group.is_empty() && wildcard(p, kind))
    })
}

#[derive(Deserialize)]
struct ListBody<'a> {
    #[serde(default)]
    metadata: ListMeta,
    #[serde(borrow, default)]
    items: Vec<&'a RawValue>,
}

#[derive(Deserialize, Default)]
struct ListMeta {
    #[serde(rename = "continue", default)]
    continue_: Option<String>,
}

#[derive(Deserialize)]
struct Peek {
    metadata: PeekMeta,
}

#[derive(Deserialize)]
struct PeekMeta {
    uid: Option<String>,
    #[serde(rename = "resourceVersion")]
    resource_version: Option<String>,
}

/// Why one list failed.
enum ListFailure {
    Gone,
    Fatal(String),
}

fn is_retryable(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(s) => s.code == 429 || s.code >= 500,
        _ => true,
    }
}

fn describe(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("{} {}: {}", s.code, s.reason, s.message),
        other => {
            let mut msg = other.to_string();
            let mut src = std::error::Error::source(other);
            while let Some(s) = src {
                let text = s.to_string();
                if !msg.contains(&text) {
                    msg.push_str(": ");
                    msg.push_str(&text);
                }
                src = s.source();
            }
            msg
        }
    }
}

/// One request with timeout and retries; returns the body text.
async fn request_with_retries(
    client: &Client,
    url: &str,
    lp: &ListParams,
    opts: &KubeOptions,
    stats: &mut SnapshotStats,
) -> Result<String, ListFailure> {
    let mut delay = opts.backoff;
    let mut attempt = 0;
    loop {
        let req = kube::core::Request::new(url)
            .list(lp)
            .map_err(|e| ListFailure::Fatal(format!("building the request: {e}")))?;
        stats.requests += 1;
        let res = tokio::time::timeout(opts.request_timeout, client.request_text(req)).await;
        let err = match res {
            Ok(Ok(text)) => return Ok(text),
            Ok(Err(kube::Error::Api(s))) if s.code == 410 => return Err(ListFailure::Gone),
            Ok(Err(e)) if !is_retryable(&e) => return Err(ListFailure::Fatal(describe(&e))),
            Ok(Err(e)) => describe(&e),
            Err(_) => format!("timed out after {:?}", opts.request_timeout),
        };
        if attempt >= opts.retries {
            let tries = attempt + 1;
            return Err(ListFailure::Fatal(format!(
                "{err} (after {tries} attempt{})",
                if tries == 1 { "" } else { "s" }
            )));
        }
        tracing::debug!(url, attempt, error = %err, "list failed, retrying");
        attempt += 1;
        stats.retries += 1;
        tokio::time::sleep(delay).await;
        delay = delay.saturating_mul(2);
    }
}

/// What listing one type in one scope produced.
struct Listed {
    objects: Vec<(String, String, ResourceKey, Object)>,
    stats: SnapshotStats,
    unknown: Option<String>,
}

/// Converts one list item (shallow-peeked first for the cache).
fn convert(
    raw: &RawValue,
    t: &ListTarget,
    cache: &ObjectCache,
    keep_owned: bool,
    stats: &mut SnapshotStats,
) -> Option<(String, String, ResourceKey, Object)> {
    let peek: Option<Peek> = serde_json::from_str(raw.get()).ok();
    let (uid, rv) = peek
        .map(|p| {
            (
                p.metadata.uid.unwrap_or_default(),
                p.metadata.resource_version.unwrap_or_default(),
            )
        })
        .unwrap_or_default();
    if !uid.is_empty()
        && let Some((key, obj)) = cache.get(&uid, &rv)
    {
        stats.reused += 1;
        return Some((uid, rv, key.clone(), obj.clone()));
    }
    let mut value: Value = serde_json::from_str(raw.get()).ok()?;
    stats.parsed += 1;
    let map = value.as_object_mut()?;
    map.insert("apiVersion".into(), Value::String(t.api_version()));
    map.insert("kind".into(), Value::String(t.kind.clone()));
    map.remove("status");
    let owned_by_controller = map
        .get("metadata")
        .and_then(|m| m.get("ownerReferences"))
        .and_then(Value::as_array)
        .is_some_and(|refs| {
            refs.iter()
                .any(|r| r.get("controller") == Some(&Value::Bool(true)))
        });
    if !keep_owned
        && owned_by_controller
        && ((t.group.is_empty() && t.kind == "Pod")
            || (t.group == "apps" && t.kind == "ReplicaSet"))
    {
        return None;
    }
    if t.group.is_empty() && t.kind == "Secret" {
        redact_secret(&mut value);
    }
    let meta = value.get("metadata")?;
    let name = meta.get("name")?.as_str()?.to_string();
    let namespace = meta
        .get("namespace")
        .and_then(Value::as_str)
        .map(str::to_string)
        .filter(|_| t.namespaced);
    let key = ResourceKey {
        group: t.group.clone(),
        kind: t.kind.clone(),
        namespace,
        name,
    };
    let obj = Object::new(
        value,
        Origin::Live {
            resource_version: (!rv.is_empty()).then(|| rv.clone()),
        },
    );
    Some((uid, rv, key, obj))
}

/// Lists one type in one scope (a namespace, or all), page by page, restarting on 410.
async fn list_type(
    client: &Client,
    t: &ListTarget,
    ns: Option<&str>,
    opts: &KubeOptions,
    cache: &ObjectCache,
) -> Listed {
    let url = t.url(ns);
    let mut stats = SnapshotStats::default();
    let mut restarts = 0;
    'restart: loop {
        let mut objects = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut lp = ListParams::default().limit(opts.page_size);
            if let Some(tok) = &token {
                lp = lp.continue_token(tok);
            }
            let text = match request_with_retries(client, &url, &lp, opts, &mut stats).await {
                Ok(t) => t,
                Err(ListFailure::Gone) if restarts < opts.max_restarts => {
                    restarts += 1;
                    stats.restarts += 1;
                    tracing::info!(
                        url,
                        restarts,
                        "continue token expired (410 Gone), restarting the list"
                    );
                    continue 'restart;
                }
                Err(ListFailure::Gone) => {
                    return Listed {
                        objects: Vec::new(),
                        stats,
                        unknown: Some(format!(
                            "410 Gone: the list's continue token expired {} times in a row",
                            restarts + 1
                        )),
                    };
                }
                Err(ListFailure::Fatal(reason)) => {
                    return Listed {
                        objects: Vec::new(),
                        stats,
                        unknown: Some(reason),
                    };
                }
            };
            let body: ListBody<'_> = match serde_json::from_str(&text) {
                Ok(b) => b,
                Err(e) => {
                    return Listed {
                        objects: Vec::new(),
                        stats,
                        unknown: Some(format!("the list response is not a valid list: {e}")),
                    };
                }
            };
            for raw in body.items {
                if let Some(o) = convert(raw, t, cache, opts.keep_owned, &mut stats) {
                    objects.push(o);
                }
            }
            match body.metadata.continue_.filter(|c| !c.is_empty()) {
                Some(c) => token = Some(c),
                None => {
                    return Listed {
                        objects,
                        stats,
                        unknown: None,
                    };
                }
            }
        }
    }
}

fn add_stats(into: &mut SnapshotStats, s: &SnapshotStats) {
    into.requests += s.requests;
    into.retries += s.retries;
    into.restarts += s.restarts;
    into.parsed += s.parsed;
    into.reused += s.reused;
}

/// Discovers the listable types in scope. The core group must answer; another group whose
/// discovery fails (an aggregated API that is down, say) becomes an unknown scope for all
/// its kinds (`kind: "*"`), and the scan goes on.
async fn discover(
    cluster: &Cluster,
    opts: &KubeOptions,
) -> Result<(Vec<ListTarget>, Vec<UnknownScope>), KubeError> {
    let client = &cluster.client;
    let failed = |source| KubeError::DiscoveryFailed {
        cluster: cluster.description.clone(),
        source,
    };
    let core = kube::discovery::group(client, "").await.map_err(failed)?;
    let groups = client.list_api_groups().await.map_err(failed)?;
    let pinned: Vec<(String, Result<kube::discovery::ApiGroup, kube::Error>)> =
        futures::stream::iter(groups.groups)
            .map(|g| async move {
                let version = g
                    .preferred_version
                    .as_ref()
                    .map(|v| v.version.clone())
                    .or_else(|| g.versions.first().map(|v| v.version.clone()))
                    .unwrap_or_default();
                let gv = kube::core::GroupVersion::gv(&g.name, &version);
                let res = tokio::time::timeout(
                    opts.request_timeout,
                    kube::discovery::pinned_group(client, &gv),
                )
                .await
                .unwrap_or_else(|_| {
                    Err(kube::Error::Service(
                        format!("timed out after {:?}", opts.request_timeout).into(),
                    ))
                });
                (g.name, res)
            })
            .buffer_unordered(opts.concurrency.max(1))
            .collect()
            .await;
    let mut unknown = Vec::new();
    let mut api_groups = vec![core];
    for (name, res) in pinned {
        match res {
            Ok(g) => api_groups.push(g),
            Err(e) => {
                let reason = format!("discovery of the API group failed: {}", describe(&e));
                tracing::warn!(group = %name, %reason, "its kinds are unknown");
                unknown.push(UnknownScope {
                    group: name,
                    kind: "*".into(),
                    namespace: None,
                    reason,
                });
            }
        }
    }
    let mut out = Vec::new();
    for group in &api_groups {
        for (ar, caps) in group.recommended_resources() {
            if !caps.supports_operation(verbs::LIST) {
                continue;
            }
            let namespaced = matches!(caps.scope, Scope::Namespaced);
            if !namespaced && !opts.cluster_scoped {
                continue;
            }
            if type_matches(DEFAULT_EXCLUDE, &ar.kind, &ar.group)
                || type_matches(&opts.exclude, &ar.kind, &ar.group)
            {
                continue;
            }
            if !opts.include.is_empty() && !type_matches(&opts.include, &ar.kind, &ar.group) {
                continue;
            }
            out.push(ListTarget {
                group: ar.group.clone(),
                version: ar.version.clone(),
                kind: ar.kind.clone(),
                plural: ar.plural.clone(),
                namespaced,
            });
        }
    }
    Ok((out, unknown))
}

/// One GET of a path on the cluster, with the request timeout; the body text.
async fn get_text(client: &Client, path: &str, timeout: Duration) -> Result<String, String> {
    let req = http::Request::get(path)
        .body(Vec::new())
        .map_err(|e| format!("building the request: {e}"))?;
    match tokio::time::timeout(timeout, client.request_text(req)).await {
        Ok(Ok(text)) => Ok(text),
        Ok(Err(e)) => Err(describe(&e)),
        Err(_) => Err(format!("timed out after {timeout:?}")),
    }
}

/// The cluster's schemas for the group-versions of `targets` (see the module doc), and
/// the cache entries for the next scan.
async fn openapi_schemas(
    cluster: &Cluster,
    opts: &KubeOptions,
    targets: &[ListTarget],
    cache: &ObjectCache,
) -> (
    std::sync::Arc<SchemaSet>,
    HashMap<String, std::sync::Arc<TrimmedDoc>>,
) {
    use std::sync::Arc;
    let origin = format!("the OpenAPI v3 documents of {}", cluster.description);
    let fallback = |why: String| {
        let note = format!(
            "{}: /openapi/v3 not read ({why}): built-in kinds use {}",
            cluster.description,
            crate::diff::schema::bundled_origin()
        );
        tracing::warn!(cluster = %cluster.description, reason = %why, "no OpenAPI v3 documents; using the bundled schemas");
        (
            Arc::new(SchemaSet::note_only(&origin, note)),
            HashMap::new(),
        )
    };
    let index = match get_text(&cluster.client, "/openapi/v3", opts.request_timeout).await {
        Ok(t) => t,
        Err(e) => return fallback(e),
    };
    let index: Value = match serde_json::from_str(&index) {
        Ok(v) => v,
        Err(e) => return fallback(format!("the index is not JSON: {e}")),
    };
    let Some(paths) = index.get("paths").and_then(Value::as_object) else {
        return fallback("the index has no paths object".into());
    };
    let mut wanted: Vec<String> = targets
        .iter()
        .map(|t| {
            if t.group.is_empty() {
                format!("api/{}", t.version)
            } else {
                format!("apis/{}/{}", t.group, t.version)
            }
        })
        .collect();
    wanted.sort();
    wanted.dedup();
    let mut notes = Vec::new();
    let mut urls = Vec::new();
    for gv in &wanted {
        match paths
            .get(gv)
            .and_then(|p| p.get("serverRelativeURL"))
            .and_then(Value::as_str)
        {
            Some(u) if u.starts_with('/') => urls.push((gv.clone(), u.to_string())),
            Some(u) => notes.push(format!(
                "{}: the /openapi/v3 index gives {gv} an unusable URL {u:?}: its kinds use the bundled schemas",
                cluster.description
            )),
            None => {}
        }
    }
    let mut key: Vec<String> = urls.iter().map(|(_, u)| u.clone()).collect();
    key.sort();
    if notes.is_empty()
        && let Some((k, set)) = &cache.openapi_set
        && *k == key
    {
        let docs = urls
            .iter()
            .filter_map(|(_, u)| cache.openapi_docs.get(u).map(|d| (u.clone(), d.clone())))
            .collect();
        return (set.clone(), docs);
    }
    let client = &cluster.client;
    let fetched: Vec<(String, String, Result<Arc<TrimmedDoc>, String>)> =
        futures::stream::iter(urls)
            .map(|(gv, url)| async move {
                if let Some(d) = cache.openapi_docs.get(&url) {
                    return (gv, url, Ok(d.clone()));
                }
                let shown = url.split('?').next().unwrap_or(&url).to_string();
                let res = match get_text(client, &url, opts.request_timeout).await {
                    Ok(text) => match serde_json::from_str::<Value>(&text) {
                        Ok(doc) => {
                            trim_document(&doc, &format!("{shown} of {}", cluster.description))
                                .map(Arc::new)
                                .map_err(|e| e.to_string())
                        }
                        Err(e) => Err(format!(
                            "OpenAPI document {shown} of {}: not JSON: {e}",
                            cluster.description
                        )),
                    },
                    Err(e) => Err(format!(
                        "OpenAPI document {shown} of {}: {e}",
                        cluster.description
                    )),
                };
                (gv, url, res)
            })
            .buffer_unordered(opts.concurrency.max(1))
            .collect()
            .await;
    let mut docs = HashMap::new();
    let mut trimmed = Vec::new();
    let mut fetched = fetched;
    fetched.sort_by(|a, b| a.0.cmp(&b.0));
    for (gv, url, res) in fetched {
        match res {
            Ok(d) => {
                docs.insert(url, d.clone());
                trimmed.push(d);
            }
            Err(e) => {
                tracing::warn!(cluster = %cluster.description, group_version = %gv, error = %e, "OpenAPI document not used");
                notes.push(format!("{e}: the kinds of {gv} use the bundled schemas"));
            }
        }
    }
    (Arc::new(SchemaSet::merge(&origin, &trimmed, notes)), docs)
}

/// Resolves the namespace scope: `None` = all namespaces, else the names.
async fn namespace_scope(
    cluster: &Cluster,
    opts: &KubeOptions,
) -> Result<Option<Vec<String>>, KubeError> {
    let plain = opts.namespaces.iter().all(|n| !n.contains(['*', '?']));
    if opts.namespace_selector.is_none() {
        if opts.namespaces.is_empty() {
            return Ok(None);
        }
        if plain {
            return Ok(Some(opts.namespaces.clone()));
        }
    }
    let mut lp = ListParams::default();
    if let Some(sel) = &opts.namespace_selector {
        lp = lp.labels(sel);
    }
    let mut stats = SnapshotStats::default();
    let text = request_with_retries(&cluster.client, "/api/v1/namespaces", &lp, opts, &mut stats)
        .await
        .map_err(|f| KubeError::NamespaceScopeFailed {
            cluster: cluster.description.clone(),
            reason: match f {
                ListFailure::Gone => "410 Gone".into(),
                ListFailure::Fatal(r) => r,
            },
        })?;
    let body: Value = serde_json::from_str(&text).map_err(|e| KubeError::NamespaceScopeFailed {
        cluster: cluster.description.clone(),
        reason: e.to_string(),
    })?;
    let names = body
        .get("items")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|i| i.pointer("/metadata/name").and_then(Value::as_str))
        .filter(|n| opts.namespaces.is_empty() || opts.namespaces.iter().any(|p| wildcard(p, n)))
        .map(str::to_string)
        .collect();
    Ok(Some(names))
}

/// Reads a snapshot of `cluster`. `cache` is the previous scan's (empty for a full scan).
///
/// # Errors
/// Discovery or namespace-scope resolution failed; failures of single types are reported
/// in [`Snapshot::unknown`] instead.
pub async fn snapshot(
    cluster: &Cluster,
    opts: &KubeOptions,
    cache: &ObjectCache,
) -> Result<LiveSnapshot, KubeError> {
    let started = Instant::now();
    let (targets, discovery_unknown) = discover(cluster, opts).await?;
    let namespaces = namespace_scope(cluster, opts).await?;
    let (schemas, openapi_docs) = openapi_schemas(cluster, opts, &targets, cache).await;
    let mut jobs: Vec<(ListTarget, Option<String>)> = Vec::new();
    for t in &targets {
        match (&namespaces, t.namespaced) {
            (Some(names), true) => {
                for n in names {
                    jobs.push((t.clone(), Some(n.clone())));
                }
            }
            _ => jobs.push((t.clone(), None)),
        }
    }
    let client = &cluster.client;
    let results: Vec<(ListTarget, Option<String>, Listed)> = futures::stream::iter(jobs)
        .map(|(t, ns)| async move {
            let listed = list_type(client, &t, ns.as_deref(), opts, cache).await;
            (t, ns, listed)
        })
        .buffer_unordered(opts.concurrency.max(1))
        .collect()
        .await;
    let mut snap = Snapshot {
        source: Some(SourceRef {
            env: opts.env.clone(),
            description: cluster.description.clone(),
            commit: None,
            stale: None,
        }),
        taken_at: Some(crate::source::kube::now_rfc3339()),
        ..Default::default()
    };
    let mut stats = SnapshotStats {
        types: targets.len(),
        ..Default::default()
    };
    snap.unknown = discovery_unknown;
    let mut new_cache = ObjectCache {
        openapi_set: Some((
            {
                let mut k: Vec<String> = openapi_docs.keys().cloned().collect();
                k.sort();
                k
            },
            schemas.clone(),
        )),
        openapi_docs,
        ..ObjectCache::default()
    };
    let mut objects = BTreeMap::new();
    for (t, ns, listed) in results {
        add_stats(&mut stats, &listed.stats);
        if let Some(reason) = listed.unknown {
            tracing::warn!(kind = %t.type_name(), namespace = ?ns, %reason, "cannot list; its objects are unknown");
            snap.unknown.push(UnknownScope {
                group: t.group.clone(),
                kind: t.kind.clone(),
                namespace: ns,
                reason,
            });
            continue;
        }
        for (uid, rv, key, obj) in listed.objects {
            if let (Some(names), Some(n)) = (&namespaces, &key.namespace)
                && !names.contains(n)
            {
                continue;
            }
            if let (Some(names), true) =
                (&namespaces, key.group.is_empty() && key.kind == "Namespace")
                && !names.contains(&key.name)
            {
                continue;
            }
            if !uid.is_empty() {
                new_cache.by_uid.insert(uid, (rv, key.clone(), obj.clone()));
            }
            objects.insert(key, obj);
        }
    }
    snap.unknown
        .sort_by(|a, b| (&a.group, &a.kind, &a.namespace).cmp(&(&b.group, &b.kind, &b.namespace)));
    snap.objects = objects;
    tracing::info!(
        cluster = %cluster.description,
        objects = snap.objects.len(),
        unknown = snap.unknown.len(),
        requests = stats.requests,
        reused = stats.reused,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "snapshot taken"
    );
    Ok(LiveSnapshot {
        snapshot: snap,
        stats,
        cache: new_cache,
        schemas,
    })
}

/// Connects and snapshots on a private runtime (for synchronous callers such as the CLI).
///
/// # Errors
/// As [`connect`] and [`snapshot`].
pub fn snapshot_blocking(
    target: &ClusterTarget,
    opts: &KubeOptions,
) -> Result<LiveSnapshot, KubeError> {
    snapshot_blocking_cached(target, opts, &ObjectCache::default())
}

/// [`snapshot_blocking`] reusing the objects of a previous scan's [`LiveSnapshot::cache`]
/// (incremental rescans: unchanged uid + resourceVersion are not parsed again).
pub(crate) fn snapshot_blocking_cached(
    target: &ClusterTarget,
    opts: &KubeOptions,
    cache: &ObjectCache,
) -> Result<LiveSnapshot, KubeError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(KubeError::RuntimeFailed)?;
    rt.block_on(async {
        let cluster = connect(target, opts.request_timeout).await?;
        snapshot(&cluster, opts, cache).await
    })
}

/// Now as `YYYY-MM-DDTHH:MM:SSZ`.
pub(crate) fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86400) as i64;
    let rem = secs % 86400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

// ---------------------------------------------------------------- watch mode

/// What changed in a [`WatchStore`], for the daemon's evaluator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchChange {
    /// An object was added, deleted, or changed beyond what the comparison ignores
    /// (its watch hash differs).
    Object(ResourceKey),
    /// Every scope finished its first list (or failed it): the store can be evaluated.
    Synced,
    /// A scope became unknown or was listed again: evaluate the whole environment.
    Scope,
}

/// The watch state of one resource type in one scope (metrics, logs, tests).
#[derive(Debug, Clone, Default)]
pub struct WatchScopeStatus {
    /// `Kind` or `Kind.group`.
    pub type_name: String,
    pub namespace: Option<String>,
    /// The watch stream is open (the last thing it did was not an error).
    pub connected: bool,
    /// The first list completed.
    pub synced: bool,
    /// Why the scope's objects cannot be trusted (a 403, a failed first list).
    pub unknown: Option<String>,
    pub objects: usize,
    /// Lists after the first (410 Gone, resyncs, restarts after errors).
    pub relists: u64,
    pub errors: u64,
    /// When the last event (or list) arrived.
    pub last_event: Option<std::time::SystemTime>,
}

struct WatchScope {
    target: ListTarget,
    ns: Option<String>,
    objects: HashMap<ResourceKey, (u64, Object)>,
    /// A list in progress (initial, 410 Gone, resync): the objects so far.
    pending: Option<HashMap<ResourceKey, (u64, Object)>>,
    status: WatchScopeStatus,
}

/// The objects of one cluster kept current by watches (one per listable type in scope,
/// per namespace when the namespaces are restricted): an initial list, then a watch from
/// its resourceVersion with bookmarks; 410 Gone relists; errors back off with jitter
/// (kube-runtime's `watcher` with its default backoff). A list replaces the scope's
/// objects only once complete, so a relist never makes objects look deleted.
///
/// A scope whose watch or list is forbidden (403), or whose first list failed, is
/// unknown ([`WatchStore::snapshot`] puts it in [`Snapshot::unknown`] without its
/// objects), exactly as a failed list of [`snapshot`].
pub struct WatchStore {
    env: String,
    description: String,
    keep_owned: bool,
    namespaces: Option<Vec<String>>,
    scopes: std::sync::Mutex<Vec<WatchScope>>,
    schemas: std::sync::Arc<SchemaSet>,
    tx: tokio::sync::mpsc::UnboundedSender<WatchChange>,
    synced: std::sync::atomic::AtomicBool,
}

/// A running [`WatchStore`]: dropping it stops the watches.
pub struct WatchHandle {
    pub store: std::sync::Arc<WatchStore>,
    resync: tokio::sync::watch::Sender<u64>,
    tasks: tokio::task::JoinSet<()>,
}

impl WatchHandle {
    /// Lists every scope again (a full resync, catching anything a watch missed); the
    /// objects that differ afterwards are sent as [`WatchChange::Object`].
    pub fn resync(&self) {
        self.resync.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Stops the watches.
    pub fn stop(&mut self) {
        self.tasks.abort_all();
    }
}

fn locked<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The hash a watch event is compared by: the converted object (status already dropped)
/// without what changes on every write (resourceVersion, managedFields, generation, the
/// Deployment revision annotation). An event that keeps it costs this hash and nothing else.
fn watch_hash(v: &Value) -> u64 {
    use std::hash::{Hash as _, Hasher as _};
    let mut v = v.clone();
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        for f in ["resourceVersion", "managedFields", "generation"] {
            m.remove(f);
        }
        if let Some(a) = m.get_mut("annotations").and_then(Value::as_object_mut) {
            a.remove("deployment.kubernetes.io/revision");
        }
    }
    let mut h = std::collections::hash_map::DefaultHasher::new();
    v.to_string().hash(&mut h);
    h.finish()
}

fn is_forbidden(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 403)
}

impl WatchStore {
    /// Discovers the types in scope, reads the cluster's schemas, and starts one watch per
    /// type and scope on the current tokio runtime. Changes arrive on the receiver.
    ///
    /// # Errors
    /// Discovery or namespace-scope resolution failed (as [`snapshot`]).
    pub async fn start(
        cluster: &Cluster,
        opts: &KubeOptions,
    ) -> Result<
        (
            WatchHandle,
            tokio::sync::mpsc::UnboundedReceiver<WatchChange>,
        ),
        KubeError,
    > {
        let (targets, discovery_unknown) = discover(cluster, opts).await?;
        let namespaces = namespace_scope(cluster, opts).await?;
        let (schemas, _) = openapi_schemas(cluster, opts, &targets, &ObjectCache::default()).await;
        let mut scopes = Vec::new();
        for u in discovery_unknown {
            scopes.push(WatchScope {
                target: ListTarget {
                    group: u.group.clone(),
                    version: String::new(),
                    kind: u.kind.clone(),
                    plural: String::new(),
                    namespaced: u.namespace.is_some(),
                },
                ns: u.namespace.clone(),
                objects: HashMap::new(),
                pending: None,
                status: WatchScopeStatus {
                    type_name: if u.group.is_empty() {
                        u.kind.clone()
                    } else {
                        format!("{}.{}", u.kind, u.group)
                    },
                    namespace: u.namespace,
                    synced: true,
                    unknown: Some(u.reason),
                    ..WatchScopeStatus::default()
                },
            });
        }
        let first_watched = scopes.len();
        for t in &targets {
            let nss: Vec<Option<String>> = match (&namespaces, t.namespaced) {
                (Some(names), true) => names.iter().cloned().map(Some).collect(),
                _ => vec![None],
            };
            for ns in nss {
                scopes.push(WatchScope {
                    target: t.clone(),
                    status: WatchScopeStatus {
                        type_name: t.type_name(),
                        namespace: ns.clone(),
                        ..WatchScopeStatus::default()
                    },
                    ns,
                    objects: HashMap::new(),
                    pending: None,
                });
            }
        }
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let store = std::sync::Arc::new(WatchStore {
            env: opts.env.clone(),
            description: cluster.description.clone(),
            keep_owned: opts.keep_owned,
            namespaces,
            scopes: std::sync::Mutex::new(Vec::new()),
            schemas,
            tx,
            synced: std::sync::atomic::AtomicBool::new(false),
        });
        let work: Vec<(usize, ListTarget, Option<String>)> = scopes
            .iter()
            .enumerate()
            .skip(first_watched)
            .map(|(i, s)| (i, s.target.clone(), s.ns.clone()))
            .collect();
        *locked(&store.scopes) = scopes;
        let (resync, resync_rx) = tokio::sync::watch::channel(0u64);
        let mut tasks = tokio::task::JoinSet::new();
        for (idx, t, ns) in work {
            let ar = kube::api::ApiResource {
                group: t.group.clone(),
                version: t.version.clone(),
                api_version: t.api_version(),
                kind: t.kind.clone(),
                plural: t.plural.clone(),
            };
            let api: kube::Api<kube::api::DynamicObject> = match &ns {
                Some(n) => kube::Api::namespaced_with(cluster.client.clone(), n, &ar),
                None => kube::Api::all_with(cluster.client.clone(), &ar),
            };
            let cfg = kube::runtime::watcher::Config::default().page_size(opts.page_size);
            let st = std::sync::Arc::clone(&store);
            let rx = resync_rx.clone();
            tasks.spawn(run_scope(st, idx, api, cfg, rx));
        }
        store.check_synced();
        Ok((
            WatchHandle {
                store,
                resync,
                tasks,
            },
            rx,
        ))
    }

    /// The environment the store reads.
    pub fn env(&self) -> &str {
        &self.env
    }

    /// The cluster's schemas (read when the watches started).
    pub fn schemas(&self) -> std::sync::Arc<SchemaSet> {
        std::sync::Arc::clone(&self.schemas)
    }

    /// Whether every scope finished its first list (or is unknown).
    pub fn is_synced(&self) -> bool {
        self.synced.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The state of every scope.
    pub fn status(&self) -> Vec<WatchScopeStatus> {
        locked(&self.scopes)
            .iter()
            .map(|s| WatchScopeStatus {
                objects: s.objects.len(),
                ..s.status.clone()
            })
            .collect()
    }

    /// Objects held (trusted scopes).
    pub fn len(&self) -> usize {
        locked(&self.scopes)
            .iter()
            .filter(|s| s.status.unknown.is_none())
            .map(|s| s.objects.len())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `key`'s scope is trusted (listed, not unknown).
    pub fn trusted(&self, key: &ResourceKey) -> bool {
        locked(&self.scopes).iter().any(|s| {
            s.target.group == key.group
                && s.target.kind == key.kind
                && (s.ns.is_none() || s.ns == key.namespace)
                && s.status.synced
                && s.status.unknown.is_none()
        })
    }

    /// The current objects as a snapshot (only `keys` when given): trusted scopes' objects;
    /// unknown scopes (and, with `keys`, none) in [`Snapshot::unknown`].
    pub fn snapshot(&self, keys: Option<&std::collections::HashSet<ResourceKey>>) -> Snapshot {
        let scopes = locked(&self.scopes);
        let mut snap = Snapshot {
            source: Some(SourceRef {
                env: self.env.clone(),
                description: self.description.clone(),
                commit: None,
                stale: None,
            }),
            taken_at: Some(now_rfc3339()),
            ..Default::default()
        };
        for s in scopes.iter() {
            let reason = match (&s.status.unknown, s.status.synced) {
                (Some(r), _) => Some(r.clone()),
                (None, false) => Some("the watch's first list is not complete".to_string()),
                (None, true) => None,
            };
            if let Some(reason) = reason {
                if keys.is_none() {
                    snap.unknown.push(UnknownScope {
                        group: s.target.group.clone(),
                        kind: s.target.kind.clone(),
                        namespace: s.ns.clone(),
                        reason,
                    });
                }
                continue;
            }
            match keys {
                Some(keys) => {
                    for k in keys {
                        if let Some((_, o)) = s.objects.get(k) {
                            snap.objects.insert(k.clone(), o.clone());
                        }
                    }
                }
                None => {
                    for (k, (_, o)) in &s.objects {
                        snap.objects.insert(k.clone(), o.clone());
                    }
                }
            }
        }
        snap.unknown.sort_by(|a, b| {
            (&a.group, &a.kind, &a.namespace).cmp(&(&b.group, &b.kind, &b.namespace))
        });
        snap
    }

    fn in_scope(&self, key: &ResourceKey) -> bool {
        match &self.namespaces {
            None => true,
            Some(names) => {
                key.namespace.as_ref().is_none_or(|n| names.contains(n))
                    && !(key.group.is_empty()
                        && key.kind == "Namespace"
                        && !names.contains(&key.name))
            }
        }
    }

    /// Converts a watched object as a list item is converted (status dropped, Secrets
    /// redacted, controller-owned Pods and ReplicaSets left out).
    fn convert(
        &self,
        t: &ListTarget,
        obj: &kube::api::DynamicObject,
    ) -> Option<(ResourceKey, (u64, Object))> {
        let raw = serde_json::value::to_raw_value(obj).ok()?;
        let mut stats = SnapshotStats::default();
        let (_, _, key, o) = convert(
            &raw,
            t,
            &ObjectCache::default(),
            self.keep_owned,
            &mut stats,
        )?;
        if !self.in_scope(&key) {
            return None;
        }
        let h = watch_hash(&o.value);
        Some((key, (h, o)))
    }

    fn key_of(t: &ListTarget, obj: &kube::api::DynamicObject) -> Option<ResourceKey> {
        Some(ResourceKey {
            group: t.group.clone(),
            kind: t.kind.clone(),
            namespace: obj.metadata.namespace.clone().filter(|_| t.namespaced),
            name: obj.metadata.name.clone()?,
        })
    }

    fn send(&self, c: WatchChange) {
        let _ = self.tx.send(c);
    }

    fn check_synced(&self) {
        let all = locked(&self.scopes)
            .iter()
            .all(|s| s.status.synced || s.status.unknown.is_some());
        if all && !self.synced.swap(true, std::sync::atomic::Ordering::SeqCst) {
            self.send(WatchChange::Synced);
        }
    }

    /// Applies one watcher event to scope `idx`.
    fn apply(
        &self,
        idx: usize,
        ev: Result<
            kube::runtime::watcher::Event<kube::api::DynamicObject>,
            kube::runtime::watcher::Error,
        >,
    ) {
        use kube::runtime::watcher::{Error as WErr, Event};
        let synced_store = self.is_synced();
        let mut changes = Vec::new();
        let mut check = false;
        {
            let mut scopes = locked(&self.scopes);
            let Some(s) = scopes.get_mut(idx) else { return };
            let t = s.target.clone();
            let now = Some(std::time::SystemTime::now());
            match ev {
                Ok(Event::Init) => {
                    if s.status.synced {
                        s.status.relists += 1;
                    }
                    s.pending = Some(HashMap::new());
                }
                Ok(Event::InitApply(o)) => {
                    if let (Some(p), Some((k, v))) = (s.pending.as_mut(), self.convert(&t, &o)) {
                        p.insert(k, v);
                    }
                }
                Ok(Event::InitDone) => {
                    let new = s.pending.take().unwrap_or_default();
                    let was_trusted = s.status.synced && s.status.unknown.is_none();
                    if was_trusted && synced_store {
                        for (k, (h, _)) in &new {
                            if s.objects.get(k).is_none_or(|(oh, _)| oh != h) {
                                changes.push(WatchChange::Object(k.clone()));
                            }
                        }
                        for k in s.objects.keys() {
                            if !new.contains_key(k) {
                                changes.push(WatchChange::Object(k.clone()));
                            }
                        }
                    } else if synced_store {
                        changes.push(WatchChange::Scope);
                    }
                    s.objects = new;
                    if !s.status.synced {
                        tracing::info!(env = %self.env, kind = %s.status.type_name, namespace = ?s.ns, objects = s.objects.len(), "watch: initial list complete");
                    }
                    s.status.synced = true;
                    s.status.unknown = None;
                    s.status.connected = true;
                    s.status.last_event = now;
                    check = true;
                }
                Ok(Event::Apply(o)) => {
                    s.status.connected = true;
                    s.status.last_event = now;
                    if s.status.unknown.take().is_some() && synced_store {
                        changes.push(WatchChange::Scope);
                    }
                    match self.convert(&t, &o) {
                        Some((k, v)) => {
                            let same = s.objects.get(&k).is_some_and(|(h, _)| *h == v.0);
                            s.objects.insert(k.clone(), v);
                            if !same {
                                changes.push(WatchChange::Object(k));
                            }
                        }
                        None => {
                            if let Some(k) = Self::key_of(&t, &o)
                                && s.objects.remove(&k).is_some()
                            {
                                changes.push(WatchChange::Object(k));
                            }
                        }
                    }
                }
                Ok(Event::Delete(o)) => {
                    s.status.connected = true;
                    s.status.last_event = now;
                    if let Some(k) = Self::key_of(&t, &o)
                        && s.objects.remove(&k).is_some()
                    {
                        changes.push(WatchChange::Object(k));
                    }
                }
                Err(e) => {
                    s.status.errors += 1;
                    s.status.connected = false;
                    let (reason, forbidden, list) = match &e {
                        WErr::InitialListFailed(k) => (describe(k), is_forbidden(k), true),
                        WErr::WatchStartFailed(k) | WErr::WatchFailed(k) => {
                            (format!("watch: {}", describe(k)), is_forbidden(k), false)
                        }
                        WErr::WatchError(st) => (
                            format!("watch: {} {}: {}", st.code, st.reason, st.message),
                            st.code == 403,
                            false,
                        ),
                        WErr::NoResourceVersion => (
                            "the list answered no resourceVersion".to_string(),
                            false,
                            true,
                        ),
                    };
                    if forbidden || (list && !s.status.synced) {
                        if s.status.unknown.as_ref() != Some(&reason) {
                            tracing::warn!(env = %self.env, kind = %s.status.type_name, namespace = ?s.ns, %reason, "cannot watch; its objects are unknown");
                            if synced_store && s.status.unknown.is_none() {
                                changes.push(WatchChange::Scope);
                            }
                        }
                        s.status.unknown = Some(reason);
                        check = true;
                    } else {
                        tracing::debug!(env = %self.env, kind = %s.status.type_name, namespace = ?s.ns, %reason, "watch error; retrying");
                    }
                }
            }
        }
        if synced_store {
            for c in changes {
                self.send(c);
            }
        }
        if check {
            self.check_synced();
        }
    }
}

async fn run_scope(
    store: std::sync::Arc<WatchStore>,
    idx: usize,
    api: kube::Api<kube::api::DynamicObject>,
    cfg: kube::runtime::watcher::Config,
    mut resync: tokio::sync::watch::Receiver<u64>,
) {
    use kube::runtime::WatchStreamExt as _;
    loop {
        let mut stream = kube::runtime::watcher(api.clone(), cfg.clone())
            .default_backoff()
            .boxed();
        loop {
            tokio::select! {
                r = resync.changed() => {
                    if r.is_err() {
                        return;
                    }
                    break; // a new watcher: a fresh list
                }
                ev = stream.next() => match ev {
                    Some(ev) => store.apply(idx, ev),
                    None => break,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_patterns() {
        assert!(type_matches(&["Event"], "Event", ""));
        assert!(!type_matches(&["Event"], "Event", "events.k8s.io"));
        assert!(type_matches(
            &["Event.events.k8s.io"],
            "Event",
            "events.k8s.io"
        ));
        assert!(type_matches(
            &["*.cert-manager.io"],
            "Certificate",
            "cert-manager.io"
        ));
        assert!(type_matches(
            DEFAULT_EXCLUDE,
            "TokenReview",
            "authentication.k8s.io"
        ));
        assert!(!type_matches(DEFAULT_EXCLUDE, "Deployment", "apps"));
    }

    #[test]
    fn watch_hash_ignores_write_noise_but_not_content() {
        let base = serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "shop", "resourceVersion": "1", "generation": 1,
                "managedFields": [{"manager": "kubectl"}],
                "annotations": {"deployment.kubernetes.io/revision": "1", "team": "a"}},
            "spec": {"replicas": 2}});
        let mut noise = base.clone();
        noise["metadata"]["resourceVersion"] = "9".into();
        noise["metadata"]["generation"] = 3.into();
        noise["metadata"]["managedFields"] =
            serde_json::json!([{"manager": "kube-controller-manager"}]);
        noise["metadata"]["annotations"]["deployment.kubernetes.io/revision"] = "4".into();
        assert_eq!(watch_hash(&base), watch_hash(&noise));
        let mut spec = base.clone();
        spec["spec"]["replicas"] = 3.into();
        assert_ne!(watch_hash(&base), watch_hash(&spec));
        let mut label = base.clone();
        label["metadata"]["annotations"]["team"] = "b".into();
        assert_ne!(watch_hash(&base), watch_hash(&label));
    }

    #[test]
    fn rfc3339_shape() {
        let t = now_rfc3339();
        assert_eq!(t.len(), 20);
        assert!(t.ends_with('Z') && t.as_bytes()[10] == b'T');
    }
}
