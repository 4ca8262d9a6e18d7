//! A Kubernetes API test server: the REST protocol of kube-apiserver, in memory, on
//! `127.0.0.1`, over TLS with a bearer token — faithful enough for the real `kubectl`
//! (its fidelity is proven in `tests/apiserver.rs`) and for kube-rs.
//!
//! Entry point: [`ApiServer::start`]; [`ApiServer::kubeconfig`] writes a kubeconfig for it.
//! The server stops when the handle is dropped.
//!
//! What it serves:
//! - discovery: `/version`, `/api`, `/api/v1`, `/apis`, `/apis/GROUP/VERSION` for the
//!   built-in kinds envdrift uses and CRDs registered with [`ApiServer::register`] or
//!   [`ApiServer::register_crd`];
//! - `/openapi/v3`: the index and the group-version documents ([`openapi`]): the real
//!   Kubernetes documents (trimmed to the served kinds) and, for CRDs registered with
//!   [`ApiServer::register_crd`], documents built from their schemas; `/openapi/v2`
//!   answers 404;
//! - list (limit/continue with 410 Gone on an expired token, resourceVersion, label and
//!   `metadata.name` field selectors), get, create, update, delete;
//! - watch (JSON lines, [`ApiServer::drop_watches`] and the module's `watch` function):
//!   resume from a resourceVersion out of a bounded history, 410 `Expired` for a version
//!   older than it ([`ApiServer::compact`]), `allowWatchBookmarks`, `timeoutSeconds`,
//!   connections dropped on demand, 403 on watches only ([`Faults::watch_forbidden`]);
//! - patch: JSON patch, merge patch, strategic merge patch (keyed lists by merge key),
//!   server-side apply (`fieldManager`, `force`, conflicts, pruning of fields the manager
//!   stopped applying);
//! - server behaviour: uid, resourceVersion, generation, creationTimestamp, managedFields
//!   (manager from `?fieldManager=` or the User-Agent prefix, `fieldsV1` of the fields each
//!   write set), defaults for workloads and Services, a Deployment status and revision
//!   annotation written as `kube-controller-manager`, the `scale` subresource;
//! - faults per resource ([`Faults`]): 5xx, 403, slow answers, 410 on continue, a
//!   connection dropped in the middle of a list.
//!
//! # Caveats
//! Not a real API server: no admission, no validation beyond names and kinds, no
//! namespace existence check, no aggregated discovery, no protobuf, no Table output (use
//! `-o yaml/json`), no garbage collection, and `fieldsV1` `.` markers only for list items
//! and user maps (labels, annotations, data).

#![allow(dead_code)] // each test binary uses a different part of the server

pub mod bench;
pub mod fields;
pub mod openapi;
pub mod schema;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::Response;
use serde_json::{Map, Value, json};

use fields::FieldPath;

/// One resource type the server serves.
#[derive(Debug, Clone)]
pub struct ResourceDef {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    /// Serves `/scale`.
    pub scale: bool,
    /// Has a `/status` subresource.
    pub status: bool,
    /// Verbs; discovery-only kinds (no `list`) can be registered to test exclusion.
    pub verbs: Vec<String>,
}

impl ResourceDef {
    pub fn new(group: &str, version: &str, kind: &str, plural: &str, namespaced: bool) -> Self {
        ResourceDef {
            group: group.into(),
            version: version.into(),
            kind: kind.into(),
            plural: plural.into(),
            namespaced,
            short_names: Vec::new(),
            scale: false,
            status: false,
            verbs: [
                "create",
                "delete",
                "deletecollection",
                "get",
                "list",
                "patch",
                "update",
                "watch",
            ]
            .iter()
            .map(std::string::ToString::to_string)
            .collect(),
        }
    }

    /// `deployments.apps`, `configmaps`: the name faults are keyed by.
    pub fn resource_name(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

fn builtin_resources() -> Vec<ResourceDef> {
    let mut v = Vec::new();
    let mut add = |g: &str,
                   ver: &str,
                   k: &str,
                   p: &str,
                   ns: bool,
                   short: &[&str],
                   scale: bool,
                   status: bool| {
        let mut d = ResourceDef::new(g, ver, k, p, ns);
        d.short_names = short.iter().map(std::string::ToString::to_string).collect();
        d.scale = scale;
        d.status = status;
        v.push(d);
    };
    add(
        "",
        "v1",
        "Namespace",
        "namespaces",
        false,
        &["ns"],
        false,
        true,
    );
    add(
        "",
        "v1",
        "ConfigMap",
        "configmaps",
        true,
        &["cm"],
        false,
        false,
    );
    add("", "v1", "Secret", "secrets", true, &[], false, false);
    add("", "v1", "Service", "services", true, &["svc"], false, true);
    add(
        "",
        "v1",
        "ServiceAccount",
        "serviceaccounts",
        true,
        &["sa"],
        false,
        false,
    );
    add("", "v1", "Pod", "pods", true, &["po"], false, true);
    add(
        "",
        "v1",
        "Endpoints",
        "endpoints",
        true,
        &["ep"],
        false,
        false,
    );
    add("", "v1", "Event", "events", true, &["ev"], false, false);
    add(
        "",
        "v1",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        true,
        &["pvc"],
        false,
        true,
    );
    add(
        "apps",
        "v1",
        "Deployment",
        "deployments",
        true,
        &["deploy"],
        true,
        true,
    );
    add(
        "apps",
        "v1",
        "StatefulSet",
        "statefulsets",
        true,
        &["sts"],
        true,
        true,
    );
    add(
        "apps",
        "v1",
        "DaemonSet",
        "daemonsets",
        true,
        &["ds"],
        false,
        true,
    );
    add(
        "apps",
        "v1",
        "ReplicaSet",
        "replicasets",
        true,
        &["rs"],
        true,
        true,
    );
    add(
        "apps",
        "v1",
        "ControllerRevision",
        "controllerrevisions",
        true,
        &[],
        false,
        false,
    );
    add("batch", "v1", "Job", "jobs", true, &[], false, true);
    add(
        "batch",
        "v1",
        "CronJob",
        "cronjobs",
        true,
        &["cj"],
        false,
        true,
    );
    add(
        "networking.k8s.io",
        "v1",
        "Ingress",
        "ingresses",
        true,
        &["ing"],
        false,
        true,
    );
    add(
        "networking.k8s.io",
        "v1",
        "NetworkPolicy",
        "networkpolicies",
        true,
        &["netpol"],
        false,
        false,
    );
    add(
        "rbac.authorization.k8s.io",
        "v1",
        "Role",
        "roles",
        true,
        &[],
        false,
        false,
    );
    add(
        "rbac.authorization.k8s.io",
        "v1",
        "RoleBinding",
        "rolebindings",
        true,
        &[],
        false,
        false,
    );
    add(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRole",
        "clusterroles",
        false,
        &[],
        false,
        false,
    );
    add(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        false,
        &[],
        false,
        false,
    );
    add(
        "autoscaling",
        "v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        true,
        &["hpa"],
        false,
        true,
    );
    add(
        "policy",
        "v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        true,
        &["pdb"],
        false,
        true,
    );
    add(
        "coordination.k8s.io",
        "v1",
        "Lease",
        "leases",
        true,
        &[],
        false,
        false,
    );
    add(
        "discovery.k8s.io",
        "v1",
        "EndpointSlice",
        "endpointslices",
        true,
        &[],
        false,
        false,
    );
    // Create-only, like the real TokenReview: discovery lists it, it cannot be listed.
    let mut tr = ResourceDef::new(
        "authentication.k8s.io",
        "v1",
        "TokenReview",
        "tokenreviews",
        false,
    );
    tr.verbs = vec!["create".into()];
    v.push(tr);
    v
}

/// Faults injected per resource name (`deployments.apps`, `configmaps`).
#[derive(Debug, Default, Clone)]
pub struct Faults {
    /// Every request answers this 5xx status.
    pub error_5xx: HashMap<String, u16>,
    /// Every request answers 403 Forbidden.
    pub forbidden: HashSet<String>,
    /// Every request waits this long before answering.
    pub slow: HashMap<String, Duration>,
    /// The next N list requests with a continue token answer 410 Gone (`usize::MAX`: always).
    pub gone_on_continue: HashMap<String, usize>,
    /// The next N list requests that would return a continue token drop the connection
    /// halfway through the body (`usize::MAX`: always).
    pub drop_mid_list: HashMap<String, usize>,
    /// API groups whose discovery (`/apis/GROUP/VERSION`) answers 500 (503 and 504 are
    /// retried inside kube-rs's client until the request timeout).
    pub discovery_unavailable: HashSet<String>,
    /// Every `/openapi/v3` request answers this status (an old or restricted server).
    pub openapi_status: Option<u16>,
    /// Watch requests (`?watch=1`) answer 403 Forbidden; lists and gets still work.
    pub watch_forbidden: HashSet<String>,
}

/// One request as the server saw it (for assertions).
#[derive(Debug, Clone)]
pub struct RequestLog {
    pub method: String,
    pub path: String,
    pub query: String,
    pub user_agent: String,
    pub content_type: String,
}

#[derive(Default)]
struct Store {
    rv: u64,
    seq: u64,
    /// resource name → (namespace or "", name) → object.
    objects: BTreeMap<String, BTreeMap<(String, String), Value>>,
}

/// Watch events kept for `?watch=1&resourceVersion=N` (what etcd's history is to a real
/// server): a watch from a version older than the oldest kept answers 410 Gone.
struct History {
    /// `(resourceVersion, resource name, event)`, oldest first.
    events: std::collections::VecDeque<(u64, String, Value)>,
    /// Versions up to this one are no longer kept (compacted).
    compacted: u64,
    capacity: usize,
}

/// Open watch streams per resource name, for tests that wait until a client watches.
#[derive(Default)]
struct Watchers {
    open: Mutex<HashMap<String, usize>>,
    /// Watch requests served per resource name (reconnections included).
    started: Mutex<HashMap<String, usize>>,
    changed: std::sync::Condvar,
}

struct Shared {
    history: Mutex<History>,
    watchers: Watchers,
    /// Sends a resource name (or `*`): its open watch streams drop their connection.
    drops: tokio::sync::broadcast::Sender<String>,
    /// How often a watch that asked for bookmarks gets one.
    bookmark_every: Mutex<Duration>,
    defs: Mutex<Vec<ResourceDef>>,
    store: Mutex<Store>,
    faults: Mutex<Faults>,
    token: String,
    events: tokio::sync::broadcast::Sender<(String, Value)>,
    requests: Mutex<Vec<RequestLog>>,
    addr: SocketAddr,
    /// CRDs registered with [`ApiServer::register_crd`] (their OpenAPI documents).
    crds: Mutex<Vec<Value>>,
    /// `/openapi/v3` document bodies that replace the generated ones.
    openapi_overrides: Mutex<BTreeMap<String, String>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A running test server; stops on drop.
pub struct ApiServer {
    pub addr: SocketAddr,
    /// `https://127.0.0.1:PORT`.
    pub url: String,
    /// PEM of the CA that signed the server certificate.
    pub ca_pem: String,
    /// The bearer token the server accepts.
    pub token: String,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn tls_material() -> (String, Vec<u8>, Vec<u8>) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "envdrift-test-ca");
    let ca_key = KeyPair::generate().expect("ca key");
    let ca_cert = ca_params.self_signed(&ca_key).expect("ca cert");
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_params =
        CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .expect("leaf params");
    let leaf_key = KeyPair::generate().expect("leaf key");
    let leaf = leaf_params
        .signed_by(&leaf_key, &issuer)
        .expect("leaf cert");
    (ca_cert.pem(), leaf.der().to_vec(), leaf_key.serialize_der())
}

impl ApiServer {
    /// Starts a server on `127.0.0.1:0` on its own thread and runtime.
    pub fn start() -> ApiServer {
        let (ca_pem, cert_der, key_der) = tls_material();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("tls versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![rustls::pki_types::CertificateDer::from(cert_der)],
                rustls::pki_types::PrivateKeyDer::Pkcs8(key_der.into()),
            )
            .expect("tls config");
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("local addr");
        let token = format!("test-token-{}", addr.port());
        let (events, _) = tokio::sync::broadcast::channel(4096);
        let (drops, _) = tokio::sync::broadcast::channel(64);
        let shared = Arc::new(Shared {
            history: Mutex::new(History {
                events: std::collections::VecDeque::new(),
                compacted: 0,
                capacity: 100_000,
            }),
            watchers: Watchers::default(),
            drops,
            bookmark_every: Mutex::new(Duration::from_secs(1)),
            defs: Mutex::new(builtin_resources()),
            store: Mutex::new(Store::default()),
            faults: Mutex::new(Faults::default()),
            token: token.clone(),
            events,
            requests: Mutex::new(Vec::new()),
            addr,
            crds: Mutex::new(Vec::new()),
            openapi_overrides: Mutex::new(BTreeMap::new()),
        });
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(shared.clone());
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let mut stop_rx = stop_rx;
                loop {
                    tokio::select! {
                        _ = &mut stop_rx => break,
                        accepted = listener.accept() => {
                            let Ok((tcp, _)) = accepted else { continue };
                            let acceptor = acceptor.clone();
                            let app = app.clone();
                            tokio::spawn(async move {
                                let Ok(tls) = acceptor.accept(tcp).await else { return };
                                let io = hyper_util::rt::TokioIo::new(tls);
                                let svc = hyper_util::service::TowerToHyperService::new(app);
                                let _ = hyper_util::server::conn::auto::Builder::new(
                                    hyper_util::rt::TokioExecutor::new(),
                                )
                                .serve_connection(io, svc)
                                .await;
                            });
                        }
                    }
                }
            });
            rt.shutdown_background();
        });
        ApiServer {
            addr,
            url: format!("https://{addr}"),
            ca_pem,
            token,
            shared,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// A kubeconfig with one cluster, user and context named `context`.
    pub fn kubeconfig(&self, context: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: {context}\nclusters:\n- name: {context}\n  cluster:\n    server: {url}\n    certificate-authority-data: {ca}\nusers:\n- name: {context}-admin\n  user:\n    token: {token}\ncontexts:\n- name: {context}\n  context:\n    cluster: {context}\n    user: {context}-admin\n    namespace: default\n",
            url = self.url,
            ca = fields::b64(self.ca_pem.as_bytes()),
            token = self.token,
        )
    }

    /// A kubeconfig with one context per server (`name` is cluster, user and context name).
    pub fn kubeconfig_multi(servers: &[(&str, &ApiServer)]) -> String {
        let mut clusters = String::new();
        let mut users = String::new();
        let mut contexts = String::new();
        for (name, s) in servers {
            clusters.push_str(&format!(
                "- name: {name}\n  cluster:\n    server: {}\n    certificate-authority-data: {}\n",
                s.url,
                fields::b64(s.ca_pem.as_bytes())
            ));
            users.push_str(&format!(
                "- name: {name}-admin\n  user:\n    token: {}\n",
                s.token
            ));
            contexts.push_str(&format!(
                "- name: {name}\n  context:\n    cluster: {name}\n    user: {name}-admin\n"
            ));
        }
        let current = servers.first().map(|(n, _)| *n).unwrap_or("");
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: {current}\nclusters:\n{clusters}users:\n{users}contexts:\n{contexts}"
        )
    }

    /// Registers a custom resource type (a CRD) for discovery and storage.
    pub fn register(&self, def: ResourceDef) {
        lock(&self.shared.defs).push(def);
    }

    /// Registers a CustomResourceDefinition: its kind for discovery and storage (the
    /// storage version, else the first served one), its schema for list semantics and
    /// managedFields, and its OpenAPI v3 document. Returns the registered type.
    pub fn register_crd(&self, crd: &Value) -> ResourceDef {
        let spec = crd.get("spec").cloned().unwrap_or_default();
        let text = |p: &str| {
            spec.pointer(p)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let versions = spec
            .get("versions")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let version = versions
            .iter()
            .find(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
            .or(versions.first())
            .and_then(|v| v.get("name"))
            .and_then(Value::as_str)
            .unwrap_or("v1");
        let mut def = ResourceDef::new(
            &text("/group"),
            version,
            &text("/names/kind"),
            &text("/names/plural"),
            text("/scope") != "Cluster",
        );
        def.short_names = spec
            .pointer("/names/shortNames")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect();
        def.status = versions
            .iter()
            .any(|v| v.pointer("/subresources/status").is_some());
        schema::register_crd_schema(crd);
        lock(&self.shared.crds).push(crd.clone());
        self.register(def.clone());
        def
    }

    /// Replaces the body of one `/openapi/v3` document (`api/v1`, `apis/GROUP/VERSION`):
    /// a fault test's malformed document. Its hash in the index changes with it.
    pub fn set_openapi_document(&self, path: &str, body: &str) {
        lock(&self.shared.openapi_overrides).insert(path.to_string(), body.to_string());
    }

    /// The body `/openapi/v3/{path}` serves now (`api/v1`, `apis/GROUP/VERSION`).
    pub fn openapi_document(&self, path: &str) -> Option<String> {
        let defs = lock(&self.shared.defs);
        let crds = lock(&self.shared.crds);
        let overrides = lock(&self.shared.openapi_overrides);
        openapi::documents(&defs, &crds, &overrides).remove(path)
    }

    /// Replaces the fault set.
    pub fn set_faults(&self, faults: Faults) {
        *lock(&self.shared.faults) = faults;
    }

    /// Edits the fault set.
    pub fn faults(&self, f: impl FnOnce(&mut Faults)) {
        f(&mut lock(&self.shared.faults));
    }

    /// The requests seen so far.
    pub fn requests(&self) -> Vec<RequestLog> {
        lock(&self.shared.requests).clone()
    }

    /// One stored object.
    pub fn object(&self, resource: &str, namespace: &str, name: &str) -> Option<Value> {
        lock(&self.shared.store)
            .objects
            .get(resource)
            .and_then(|m| m.get(&(namespace.to_string(), name.to_string())))
            .cloned()
    }

    /// Number of stored objects.
    pub fn len(&self) -> usize {
        lock(&self.shared.store)
            .objects
            .values()
            .map(BTreeMap::len)
            .sum()
    }

    /// No object stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stores an object directly (as if created by `manager`), bypassing HTTP: for bulk setup.
    pub fn insert(&self, obj: Value, manager: &str) -> Result<Value, String> {
        let api_version = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
        let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
        let group = api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
        let def = lock(&self.shared.defs)
            .iter()
            .find(|d| d.group == group && d.kind == kind)
            .cloned()
            .ok_or_else(|| format!("no resource for {api_version} {kind}"))?;
        let ns = obj
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("default")
            .to_string();
        let ctx = WriteCtx {
            manager: manager.to_string(),
            operation: "Update",
            subresource: None,
        };
        create(
            &self.shared,
            &def,
            def.namespaced.then_some(ns.as_str()),
            obj,
            &ctx,
        )
        .map_err(|(code, msg)| format!("{code}: {msg}"))
    }

    /// Deletes an object directly, bypassing HTTP.
    pub fn remove(&self, resource: &str, namespace: &str, name: &str) -> Option<Value> {
        let removed = lock(&self.shared.store)
            .objects
            .get_mut(resource)
            .and_then(|m| m.remove(&(namespace.to_string(), name.to_string())));
        if let Some(obj) = &removed {
            emit(&self.shared, resource, "DELETED", obj.clone());
        }
        removed
    }

    /// Forgets the watch history: a watch from any version older than now answers
    /// 410 Gone (`Expired`), as after an etcd compaction.
    pub fn compact(&self) {
        let mut h = lock(&self.shared.history);
        h.compacted = lock(&self.shared.store).rv;
        h.events.clear();
    }

    /// Keeps at most `n` watch events (older ones are compacted). Default 100,000.
    pub fn set_history_capacity(&self, n: usize) {
        lock(&self.shared.history).capacity = n.max(1);
    }

    /// How often watches that asked for bookmarks (`allowWatchBookmarks=true`) get a
    /// `BOOKMARK` event. Default 1 s.
    pub fn set_bookmark_interval(&self, every: Duration) {
        *lock(&self.shared.bookmark_every) = every;
    }

    /// Drops the connection of every open watch of `resource` (`*`: of all resources) in
    /// the middle of its stream. Returns how many were open.
    pub fn drop_watches(&self, resource: &str) -> usize {
        let open = lock(&self.shared.watchers.open);
        let n = if resource == "*" {
            open.values().sum()
        } else {
            open.get(resource).copied().unwrap_or(0)
        };
        drop(open);
        let _ = self.shared.drops.send(resource.to_string());
        n
    }

    /// Open watch streams of `resource` (`deployments.apps`, `configmaps`).
    pub fn open_watches(&self, resource: &str) -> usize {
        lock(&self.shared.watchers.open)
            .get(resource)
            .copied()
            .unwrap_or(0)
    }

    /// Watch requests of `resource` served so far (reconnections included).
    pub fn watches_started(&self, resource: &str) -> usize {
        lock(&self.shared.watchers.started)
            .get(resource)
            .copied()
            .unwrap_or(0)
    }

    /// Waits (blocking, at most `timeout`) until `cond(open watches, watches started)` of
    /// `resource` holds. Returns whether it did.
    pub fn wait_watches(
        &self,
        resource: &str,
        timeout: Duration,
        cond: impl Fn(usize, usize) -> bool,
    ) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        let w = &self.shared.watchers;
        let mut open = lock(&w.open);
        loop {
            let started = lock(&w.started).get(resource).copied().unwrap_or(0);
            if cond(open.get(resource).copied().unwrap_or(0), started) {
                return true;
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return false;
            }
            open = w
                .changed
                .wait_timeout(open, left)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
    }

    /// The current resourceVersion of the store.
    pub fn resource_version(&self) -> u64 {
        lock(&self.shared.store).rv
    }
}

/// Records a watch event in the history and sends it to the open watches. A `DELETED`
/// object gets a new resourceVersion, as on a real server.
fn emit(s: &Shared, resource: &str, kind: &str, mut obj: Value) {
    let mut h = lock(&s.history);
    if kind == "DELETED" {
        let mut store = lock(&s.store);
        store.rv += 1;
        obj["metadata"]["resourceVersion"] = json!(store.rv.to_string());
    }
    let rv: u64 = obj
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0);
    let ev = json!({"type": kind, "object": obj});
    h.events.push_back((rv, resource.to_string(), ev.clone()));
    while h.events.len() > h.capacity {
        if let Some((old, _, _)) = h.events.pop_front() {
            h.compacted = h.compacted.max(old);
        }
    }
    let _ = s.events.send((resource.to_string(), ev));
}

// ---------------------------------------------------------------- HTTP plumbing

fn json_response(code: StatusCode, v: &Value) -> Response {
    Response::builder()
        .status(code)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(v.to_string()))
        .unwrap_or_default()
}

fn status(code: u16, reason: &str, message: &str, details: Option<Value>) -> Response {
    let mut v = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code,
    });
    if let Some(d) = details {
        v["details"] = d;
    }
    json_response(
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &v,
    )
}

type HttpError = (u16, String);

fn err_response(e: HttpError, def: &ResourceDef, name: &str) -> Response {
    let (code, msg) = e;
    let reason = match code {
        404 => "NotFound",
        // A create of an existing name: kube-apiserver's `AlreadyExists` (also 409).
        409 if msg.ends_with("already exists") => "AlreadyExists",
        409 => "Conflict",
        400 => "BadRequest",
        415 => "UnsupportedMediaType",
        422 => "Invalid",
        _ => "InternalError",
    };
    let details = json!({"name": name, "group": def.group, "kind": def.plural});
    status(code, reason, &msg, Some(details))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match u8::from_str_radix(&s[i + 1..i + 3], 16) {
                Ok(b) => {
                    out.push(b);
                    i += 2;
                }
                Err(_) => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_query(q: Option<&str>) -> HashMap<String, String> {
    q.unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (percent_decode(k), percent_decode(v)),
            None => (percent_decode(p), String::new()),
        })
        .collect()
}

fn now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    rfc3339(secs)
}

/// Seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ` (civil-from-days).
fn rfc3339(secs: u64) -> String {
    let days = (secs / 86400) as i64;
    let rem = secs % 86400;
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

async fn handle(
    State(s): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let hv = |h: header::HeaderName| {
        headers
            .get(h)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let user_agent = hv(header::USER_AGENT);
    let content_type = hv(header::CONTENT_TYPE);
    lock(&s.requests).push(RequestLog {
        method: method.to_string(),
        path: uri.path().to_string(),
        query: uri.query().unwrap_or("").to_string(),
        user_agent: user_agent.clone(),
        content_type: content_type.clone(),
    });
    if hv(header::AUTHORIZATION) != format!("Bearer {}", s.token) {
        return status(401, "Unauthorized", "Unauthorized", None);
    }
    let path = uri.path().trim_end_matches('/').to_string();
    let query = parse_query(uri.query());
    let segs: Vec<&str> = path.split('/').filter(|x| !x.is_empty()).collect();
    match segs.as_slice() {
        ["version"] => {
            return json_response(
                StatusCode::OK,
                &json!({"major": "1", "minor": "37", "gitVersion": "v1.37.0-envdrift-test",
                        "gitCommit": "0000000", "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z",
                        "goVersion": "go1.25", "compiler": "gc", "platform": "linux/amd64"}),
            );
        }
        ["api"] => {
            return json_response(
                StatusCode::OK,
                &json!({"kind": "APIVersions", "versions": ["v1"],
                        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": s.addr.to_string()}]}),
            );
        }
        ["apis"] => return json_response(StatusCode::OK, &group_list(&s)),
        ["api", "v1"] => return resource_list(&s, "", "v1"),
        ["apis", g, v] => {
            if lock(&s.faults).discovery_unavailable.contains(*g) {
                return status(
                    503,
                    "ServiceUnavailable",
                    "the server is currently unable to handle the request",
                    None,
                );
            }
            return resource_list(&s, g, v);
        }
        ["openapi", "v3", rest @ ..] => return openapi_response(&s, rest, query_hash(&uri)),
        ["openapi", ..] | ["swagger.json"] | ["swaggerapi", ..] => {
            return status(
                404,
                "NotFound",
                "the server could not find the requested resource",
                None,
            );
        }
        _ => {}
    }
    let (group, version, rest) = match segs.as_slice() {
        ["api", "v1", rest @ ..] => ("", "v1", rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => {
            return status(
                404,
                "NotFound",
                "the server could not find the requested resource",
                None,
            );
        }
    };
    // namespaces/NS/PLURAL[/NAME[/SUB]] or PLURAL[/NAME[/SUB]]
    let rest: Vec<String> = rest.iter().map(std::string::ToString::to_string).collect();
    let (namespace, rest) = if rest.len() >= 3
        && rest[0] == "namespaces"
        && !matches!(rest[2].as_str(), "status" | "finalize")
    {
        (Some(rest[1].clone()), rest[2..].to_vec())
    } else {
        (None, rest)
    };
    let Some((plural, tail)) = rest.split_first() else {
        return status(
            404,
            "NotFound",
            "the server could not find the requested resource",
            None,
        );
    };
    let def = lock(&s.defs)
        .iter()
        .find(|d| d.group == group && d.version == version && d.plural == *plural)
        .cloned();
    let Some(def) = def else {
        return status(
            404,
            "NotFound",
            "the server could not find the requested resource",
            None,
        );
    };
    let name = tail.first().cloned();
    let sub = tail.get(1).cloned();
    let rname = def.resource_name();
    // Faults.
    let is_watch = method == Method::GET
        && name.is_none()
        && matches!(query.get("watch").map(String::as_str), Some("true" | "1"));
    let (delay, fail, forbidden) = {
        let f = lock(&s.faults);
        (
            f.slow.get(&rname).copied(),
            f.error_5xx.get(&rname).copied(),
            f.forbidden.contains(&rname) || (is_watch && f.watch_forbidden.contains(&rname)),
        )
    };
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    if forbidden {
        let verb = match (method.as_str(), name.is_some()) {
            ("GET", false) if is_watch => "watch",
            ("GET", false) => "list",
            ("GET", true) => "get",
            ("POST", _) => "create",
            ("PUT", _) => "update",
            ("PATCH", _) => "patch",
            ("DELETE", _) => "delete",
            _ => "get",
        };
        let scope = match &namespace {
            Some(ns) => format!(" in the namespace \"{ns}\""),
            None => " at the cluster scope".to_string(),
        };
        return status(
            403,
            "Forbidden",
            &format!(
                "{rname} is forbidden: User \"system:serviceaccount:envdrift:envdrift\" cannot {verb} resource \"{plural}\" in API group \"{group}\"{scope}"
            ),
            Some(json!({"group": group, "kind": plural})),
        );
    }
    if let Some(code) = fail {
        return status(
            code,
            "InternalError",
            &format!("Internal error occurred: injected fault on {rname}"),
            None,
        );
    }
    if def.namespaced && namespace.is_none() && name.is_some() {
        return status(
            404,
            "NotFound",
            "the server could not find the requested resource",
            None,
        );
    }
    let manager = query.get("fieldManager").cloned().unwrap_or_else(|| {
        user_agent
            .split('/')
            .next()
            .unwrap_or("")
            .chars()
            .take(128)
            .collect()
    });
    let dry_run = query.contains_key("dryRun");
    let ns = namespace.as_deref();
    match (method.as_str(), name.as_deref(), sub.as_deref()) {
        ("GET", None, _) => {
            if matches!(query.get("watch").map(String::as_str), Some("true" | "1")) {
                return watch(&s, &def, ns, &query);
            }
            list(&s, &def, ns, &query)
        }
        ("GET", Some(n), None | Some("status")) => match get(&s, &def, ns, n) {
            Some(o) => json_response(StatusCode::OK, &o),
            None => not_found(&def, n),
        },
        ("GET", Some(n), Some("scale")) if def.scale => match get(&s, &def, ns, n) {
            Some(o) => json_response(StatusCode::OK, &scale_of(&o)),
            None => not_found(&def, n),
        },
        ("POST", None, None) => {
            let obj = match parse_body(&body, &content_type) {
                Ok(o) => o,
                Err(e) => return err_response((400, e), &def, ""),
            };
            let ctx = WriteCtx {
                manager,
                operation: "Update",
                subresource: None,
            };
            if dry_run {
                return json_response(StatusCode::CREATED, &obj);
            }
            let created = obj
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            match create(&s, &def, ns, obj, &ctx) {
                Ok(o) => json_response(StatusCode::CREATED, &o),
                Err(e) => err_response(e, &def, &created),
            }
        }
        ("PUT", Some(n), sub) => {
            let obj = match parse_body(&body, &content_type) {
                Ok(o) => o,
                Err(e) => return err_response((400, e), &def, n),
            };
            let ctx = WriteCtx {
                manager,
                operation: "Update",
                subresource: sub.map(str::to_string),
            };
            let res = if sub == Some("scale") {
                let replicas = obj.pointer("/spec/replicas").cloned().unwrap_or(json!(1));
                write(&s, &def, ns, n, &ctx, dry_run, |cur| {
                    cur["spec"]["replicas"] = replicas;
                    Ok(())
                })
                .map(|o| scale_of(&o))
            } else {
                write(&s, &def, ns, n, &ctx, dry_run, |cur| {
                    if let Some(rv) = obj
                        .pointer("/metadata/resourceVersion")
                        .and_then(Value::as_str)
                        && Some(rv)
                            != cur
                                .pointer("/metadata/resourceVersion")
                                .and_then(Value::as_str)
                    {
                        return Err((
                            409,
                            format!(
                                "Operation cannot be fulfilled on {rname} \"{n}\": the object has been modified; please apply your changes to the latest version and try again"
                            ),
                        ));
                    }
                    let keep_status = cur.get("status").cloned();
                    *cur = obj.clone();
                    if let Some(st) = keep_status {
                        cur["status"] = st;
                    }
                    Ok(())
                })
            };
            match res {
                Ok(o) => json_response(StatusCode::OK, &o),
                Err(e) => err_response(e, &def, n),
            }
        }
        ("PATCH", Some(n), sub) => {
            let ct = content_type
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_string();
            let force = matches!(query.get("force").map(String::as_str), Some("true" | "1"));
            let res = patch(&s, &def, ns, n, sub, &ct, &body, manager, force, dry_run).await;
            match res {
                Ok((code, o)) => json_response(code, &o),
                Err(e) => err_response(e, &def, n),
            }
        }
        ("DELETE", Some(n), None) => {
            let removed = lock(&s.store)
                .objects
                .get_mut(&rname)
                .and_then(|m| m.remove(&(ns.unwrap_or("").to_string(), n.to_string())));
            match removed {
                Some(o) => {
                    emit(&s, &rname, "DELETED", o.clone());
                    json_response(StatusCode::OK, &o)
                }
                None => not_found(&def, n),
            }
        }
        _ => status(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
            None,
        ),
    }
}

fn not_found(def: &ResourceDef, name: &str) -> Response {
    status(
        404,
        "NotFound",
        &format!("{} \"{name}\" not found", def.resource_name()),
        Some(json!({"name": name, "group": def.group, "kind": def.plural})),
    )
}

fn query_hash(uri: &Uri) -> Option<String> {
    parse_query(uri.query()).remove("hash")
}

/// `/openapi/v3` (the index) and `/openapi/v3/{api/v1,apis/GROUP/VERSION}`.
fn openapi_response(s: &Shared, rest: &[&str], hash: Option<String>) -> Response {
    if let Some(code) = lock(&s.faults).openapi_status {
        return status(
            code,
            "Failure",
            "the server could not find the requested resource",
            None,
        );
    }
    let docs = {
        let defs = lock(&s.defs);
        let crds = lock(&s.crds);
        let overrides = lock(&s.openapi_overrides);
        openapi::documents(&defs, &crds, &overrides)
    };
    if rest.is_empty() {
        return json_response(StatusCode::OK, &openapi::index(&docs));
    }
    let Some(text) = docs.get(&rest.join("/")) else {
        return status(
            404,
            "NotFound",
            "the server could not find the requested resource",
            None,
        );
    };
    let immutable = hash.is_some_and(|h| h == openapi::document_hash(text));
    let mut b = Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json");
    if immutable {
        b = b.header(header::CACHE_CONTROL, "public, immutable");
    }
    b.body(Body::from(text.clone()))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

fn group_list(s: &Shared) -> Value {
    let defs = lock(&s.defs);
    let mut groups: Vec<(String, String)> = Vec::new();
    for d in defs.iter().filter(|d| !d.group.is_empty()) {
        if !groups.iter().any(|(g, v)| *g == d.group && *v == d.version) {
            groups.push((d.group.clone(), d.version.clone()));
        }
    }
    let mut by_group: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (g, v) in groups {
        by_group.entry(g).or_default().push(v);
    }
    let groups: Vec<Value> = by_group
        .into_iter()
        .map(|(g, vs)| {
            let versions: Vec<Value> = vs
                .iter()
                .map(|v| json!({"groupVersion": format!("{g}/{v}"), "version": v}))
                .collect();
            let preferred = versions[0].clone();
            json!({"name": g, "versions": versions, "preferredVersion": preferred})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

fn resource_list(s: &Shared, group: &str, version: &str) -> Response {
    let defs = lock(&s.defs);
    let mut resources = Vec::new();
    for d in defs
        .iter()
        .filter(|d| d.group == group && d.version == version)
    {
        let singular = d.kind.to_lowercase();
        resources.push(json!({
            "name": d.plural, "singularName": singular, "namespaced": d.namespaced,
            "kind": d.kind, "verbs": d.verbs, "shortNames": d.short_names,
            "storageVersionHash": "test",
        }));
        if d.status {
            resources.push(
                json!({"name": format!("{}/status", d.plural), "singularName": "",
                "namespaced": d.namespaced, "kind": d.kind, "verbs": ["get", "patch", "update"]}),
            );
        }
        if d.scale {
            resources.push(
                json!({"name": format!("{}/scale", d.plural), "singularName": "",
                "namespaced": d.namespaced, "group": "autoscaling", "version": "v1",
                "kind": "Scale", "verbs": ["get", "patch", "update"]}),
            );
        }
    }
    if resources.is_empty() {
        return status(
            404,
            "NotFound",
            "the server could not find the requested resource",
            None,
        );
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    json_response(
        StatusCode::OK,
        &json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
    )
}

fn get(s: &Shared, def: &ResourceDef, ns: Option<&str>, name: &str) -> Option<Value> {
    lock(&s.store)
        .objects
        .get(&def.resource_name())
        .and_then(|m| m.get(&(ns.unwrap_or("").to_string(), name.to_string())))
        .cloned()
}

/// A label selector: `a=b,c!=d,e,!f,g in (x,y),h notin (z)`.
fn selector_matches(sel: &str, labels: Option<&Map<String, Value>>) -> bool {
    let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
    let mut terms = Vec::new();
    let mut depth = 0;
    let mut cur = String::new();
    for c in sel.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                terms.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    terms.push(cur);
    terms
        .iter()
        .map(|t| t.trim())
        .filter(|t| !t.is_empty())
        .all(|t| {
            if let Some((k, v)) = t.split_once("!=") {
                get(k.trim()) != Some(v.trim())
            } else if let Some((k, v)) = t.split_once("==").or_else(|| t.split_once('=')) {
                get(k.trim()) == Some(v.trim())
            } else if let Some((k, vs)) = t.split_once(" notin ") {
                let vs: Vec<&str> = vs
                    .trim()
                    .trim_matches(|c| c == '(' || c == ')')
                    .split(',')
                    .map(str::trim)
                    .collect();
                get(k.trim()).is_none_or(|v| !vs.contains(&v))
            } else if let Some((k, vs)) = t.split_once(" in ") {
                let vs: Vec<&str> = vs
                    .trim()
                    .trim_matches(|c| c == '(' || c == ')')
                    .split(',')
                    .map(str::trim)
                    .collect();
                get(k.trim()).is_some_and(|v| vs.contains(&v))
            } else if let Some(k) = t.strip_prefix('!') {
                get(k.trim()).is_none()
            } else {
                get(t).is_some()
            }
        })
}

fn field_matches(sel: &str, obj: &Value) -> bool {
    sel.split(',').filter(|t| !t.is_empty()).all(|t| {
        let (k, v, eq) = match t.split_once("!=") {
            Some((k, v)) => (k, v, false),
            None => match t.split_once("==").or_else(|| t.split_once('=')) {
                Some((k, v)) => (k, v, true),
                None => return true,
            },
        };
        let actual = match k {
            "metadata.name" => obj.pointer("/metadata/name"),
            "metadata.namespace" => obj.pointer("/metadata/namespace"),
            _ => return true,
        }
        .and_then(Value::as_str)
        .unwrap_or("");
        (actual == v) == eq
    })
}

fn select<'a>(
    m: Option<&'a BTreeMap<(String, String), Value>>,
    ns: Option<&'a str>,
    query: &'a HashMap<String, String>,
) -> impl Iterator<Item = (&'a (String, String), &'a Value)> + 'a {
    m.into_iter()
        .flat_map(|m| m.iter())
        .filter(move |((ons, _), o)| {
            ns.is_none_or(|ns| ns == ons)
                && query.get("labelSelector").is_none_or(|sel| {
                    selector_matches(
                        sel,
                        o.pointer("/metadata/labels").and_then(Value::as_object),
                    )
                })
                && query
                    .get("fieldSelector")
                    .is_none_or(|sel| field_matches(sel, o))
        })
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<String> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

fn list(
    s: &Shared,
    def: &ResourceDef,
    ns: Option<&str>,
    query: &HashMap<String, String>,
) -> Response {
    let rname = def.resource_name();
    if !def.verbs.iter().any(|v| v == "list") {
        return status(
            405,
            "MethodNotAllowed",
            &format!("the server does not allow this method on the requested resource ({rname})"),
            None,
        );
    }
    let limit: usize = query
        .get("limit")
        .and_then(|l| l.parse().ok())
        .filter(|l| *l > 0)
        .unwrap_or(usize::MAX);
    // continue token: hex of "rv\0namespace\0name" (the last item of the previous page).
    let after = match query.get("continue").filter(|c| !c.is_empty()) {
        Some(tok) => {
            let gone = {
                let mut f = lock(&s.faults);
                match f.gone_on_continue.get_mut(&rname) {
                    Some(n) if *n > 0 => {
                        if *n != usize::MAX {
                            *n -= 1;
                        }
                        true
                    }
                    _ => false,
                }
            };
            if gone {
                return status(
                    410,
                    "Expired",
                    "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.",
                    None,
                );
            }
            let Some(decoded) = unhex(tok) else {
                return status(
                    400,
                    "BadRequest",
                    "continue key is not valid: illegal base64 data",
                    None,
                );
            };
            let parts: Vec<&str> = decoded.split('\0').collect();
            if parts.len() != 3 {
                return status(400, "BadRequest", "continue key is not valid", None);
            }
            Some((
                parts[0].to_string(),
                (parts[1].to_string(), parts[2].to_string()),
            ))
        }
        None => None,
    };
    let store = lock(&s.store);
    let rv = after
        .as_ref()
        .map(|(rv, _)| rv.clone())
        .unwrap_or_else(|| store.rv.to_string());
    let mut items = Vec::new();
    let mut next = None;
    for (key, obj) in select(store.objects.get(&rname), ns, query) {
        if let Some((_, last)) = &after
            && key <= last
        {
            continue;
        }
        if items.len() == limit {
            next = items.last().and_then(|o: &Value| {
                Some(hex(&format!(
                    "{rv}\0{}\0{}",
                    o.pointer("/metadata/namespace")
                        .and_then(Value::as_str)
                        .unwrap_or(""),
                    o.pointer("/metadata/name")?.as_str()?
                )))
            });
            break;
        }
        let mut item = obj.clone();
        if let Some(m) = item.as_object_mut() {
            m.remove("apiVersion");
            m.remove("kind");
        }
        items.push(item);
    }
    drop(store);
    let remaining = next.as_ref().map(|_| 1);
    let mut meta = json!({"resourceVersion": rv});
    if let Some(n) = &next {
        meta["continue"] = json!(n);
        meta["remainingItemCount"] = json!(remaining);
    }
    let body = json!({"kind": format!("{}List", def.kind), "apiVersion": def.api_version(), "metadata": meta, "items": items});
    let drop_now = next.is_some() && {
        let mut f = lock(&s.faults);
        match f.drop_mid_list.get_mut(&rname) {
            Some(n) if *n > 0 => {
                if *n != usize::MAX {
                    *n -= 1;
                }
                true
            }
            _ => false,
        }
    };
    if drop_now {
        let text = body.to_string();
        let half = text.as_bytes()[..text.len() / 2].to_vec();
        let stream = futures::stream::iter(vec![
            Ok::<Bytes, std::io::Error>(Bytes::from(half)),
            Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "injected connection drop",
            )),
        ]);
        return Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::CONTENT_LENGTH, text.len())
            .body(Body::from_stream(stream))
            .unwrap_or_default();
    }
    json_response(StatusCode::OK, &body)
}

/// `?watch=1`: JSON lines of `ADDED`/`MODIFIED`/`DELETED`/`BOOKMARK`/`ERROR` events.
///
/// Without a resourceVersion (or `0`), the current objects first as `ADDED`; with one,
/// every event after it from the history, then live events; a version older than the
/// history answers one `ERROR` event with a 410 `Expired` Status, as a real server does.
/// `allowWatchBookmarks=true` adds a `BOOKMARK` at the version the stream has reached
/// every bookmark interval and before `timeoutSeconds` ends the stream (default 30 min,
/// like the server's `--min-request-timeout` range). [`ApiServer::drop_watches`] breaks
/// the connection mid-stream.
fn watch(
    s: &Arc<Shared>,
    def: &ResourceDef,
    ns: Option<&str>,
    query: &HashMap<String, String>,
) -> Response {
    let rname = def.resource_name();
    let from: u64 = query
        .get("resourceVersion")
        .and_then(|r| r.parse().ok())
        .unwrap_or(0);
    let matches = {
        let ns = ns.map(str::to_string);
        let query = query.clone();
        move |o: &Value| {
            let ons = o.pointer("/metadata/namespace").and_then(Value::as_str);
            ns.as_deref().is_none_or(|n| Some(n) == ons)
                && query.get("labelSelector").is_none_or(|sel| {
                    selector_matches(
                        sel,
                        o.pointer("/metadata/labels").and_then(Value::as_object),
                    )
                })
                && query
                    .get("fieldSelector")
                    .is_none_or(|sel| field_matches(sel, o))
        }
    };
    // Subscribe and read the history under its lock: every event is either replayed or
    // received live, never both, never neither.
    let (mut rx, initial, mut progressed, expired) = {
        let h = lock(&s.history);
        let rx = s.events.subscribe();
        // The version every event up to which this stream has seen (bookmarks).
        let now = h.events.back().map_or(h.compacted, |e| e.0);
        if from == 0 {
            let store = lock(&s.store);
            let initial: Vec<Value> = select(store.objects.get(&rname), ns, query)
                .map(|(_, o)| json!({"type": "ADDED", "object": o}))
                .collect();
            (rx, initial, now, false)
        } else if from < h.compacted {
            (rx, Vec::new(), now, true)
        } else {
            let initial: Vec<Value> = h
                .events
                .iter()
                .filter(|(rv, r, ev)| *rv > from && *r == rname && matches(&ev["object"]))
                .map(|(_, _, ev)| ev.clone())
                .collect();
            (rx, initial, now.max(from), false)
        }
    };
    {
        let w = &s.watchers;
        let open = lock(&w.open);
        *lock(&w.started).entry(rname.clone()).or_default() += 1;
        drop(open);
        w.changed.notify_all();
    }
    if expired {
        let ev = json!({"type": "ERROR", "object": {
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": format!("too old resource version: {from} ({})", lock(&s.history).compacted + 1),
            "reason": "Expired", "code": 410}});
        return Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(format!("{ev}\n")))
            .unwrap_or_default();
    }
    let timeout = Duration::from_secs(
        query
            .get("timeoutSeconds")
            .and_then(|t| t.parse().ok())
            .unwrap_or(1800),
    );
    let bookmarks = query.get("allowWatchBookmarks").map(String::as_str) == Some("true");
    let every = *lock(&s.bookmark_every);
    let bookmark = {
        let kind = def.kind.clone();
        let api_version = def.api_version();
        move |rv: u64| {
            Bytes::from(format!(
                "{}\n",
                json!({"type": "BOOKMARK", "object": {"kind": kind, "apiVersion": api_version,
                        "metadata": {"resourceVersion": rv.to_string(), "creationTimestamp": null}}})
            ))
        }
    };
    let mut drops = s.drops.subscribe();
    {
        // Counts change under the `open` lock, which waiters hold while checking.
        let w = &s.watchers;
        *lock(&w.open).entry(rname.clone()).or_default() += 1;
        w.changed.notify_all();
    }
    let shared = Arc::clone(s);
    let (tx, out_rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    tokio::spawn(async move {
        let _open = OpenWatch {
            shared: Arc::clone(&shared),
            rname: rname.clone(),
        };
        for ev in initial {
            if tx.send(Ok(Bytes::from(format!("{ev}\n")))).await.is_err() {
                return;
            }
        }
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        loop {
            tokio::select! {
                _ = &mut deadline => {
                    if bookmarks {
                        let _ = tx.send(Ok(bookmark(progressed))).await;
                    }
                    return;
                }
                _ = ticks.tick(), if bookmarks => {
                    if tx.send(Ok(bookmark(progressed))).await.is_err() {
                        return;
                    }
                }
                d = drops.recv() => {
                    if matches!(&d, Ok(r) if *r == rname || r == "*") {
                        let _ = tx.send(Err(std::io::Error::new(
                            std::io::ErrorKind::ConnectionReset,
                            "injected watch connection drop",
                        ))).await;
                        return;
                    }
                }
                ev = rx.recv() => match ev {
                    Ok((r, ev)) => {
                        let o = &ev["object"];
                        let rv: u64 = o.pointer("/metadata/resourceVersion").and_then(Value::as_str).and_then(|r| r.parse().ok()).unwrap_or(0);
                        progressed = progressed.max(rv);
                        if r == rname && matches(o) && tx.send(Ok(Bytes::from(format!("{ev}\n")))).await.is_err() {
                            return;
                        }
                    }
                    // Too slow a reader: end the stream; the client resumes from its
                    // last version and the history fills the gap.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => return,
                    Err(_) => return,
                }
            }
        }
    });
    let stream =
        futures::stream::unfold(
            out_rx,
            |mut rx| async move { rx.recv().await.map(|x| (x, rx)) },
        );
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(stream))
        .unwrap_or_default()
}

/// Counts an open watch stream while it lives.
struct OpenWatch {
    shared: Arc<Shared>,
    rname: String,
}

impl Drop for OpenWatch {
    fn drop(&mut self) {
        let w = &self.shared.watchers;
        if let Some(n) = lock(&w.open).get_mut(&self.rname) {
            *n = n.saturating_sub(1);
        }
        w.changed.notify_all();
    }
}

fn parse_body(body: &[u8], content_type: &str) -> Result<Value, String> {
    if content_type.contains("yaml") {
        let text = std::str::from_utf8(body).map_err(|e| e.to_string())?;
        serde_saphyr::from_str::<Value>(text).map_err(|e| format!("error decoding YAML: {e}"))
    } else {
        serde_json::from_slice(body).map_err(|e| format!("error decoding JSON: {e}"))
    }
}

fn scale_of(o: &Value) -> Value {
    let meta = o.get("metadata").cloned().unwrap_or_default();
    let replicas = o.pointer("/spec/replicas").cloned().unwrap_or(json!(1));
    let selector = o
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    json!({
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {"name": meta.get("name"), "namespace": meta.get("namespace"), "uid": meta.get("uid"),
                     "resourceVersion": meta.get("resourceVersion"), "creationTimestamp": meta.get("creationTimestamp")},
        "spec": {"replicas": replicas},
        "status": {"replicas": o.pointer("/status/replicas").cloned().unwrap_or(json!(0)), "selector": selector},
    })
}

/// Who writes, and how (for managedFields).
struct WriteCtx {
    manager: String,
    operation: &'static str,
    subresource: Option<String>,
}

fn group_of(def: &ResourceDef) -> &str {
    &def.group
}

fn managed_entry(
    def: &ResourceDef,
    ctx: &WriteCtx,
    fields: &BTreeSet<FieldPath>,
    time: &str,
) -> Value {
    let mut e = json!({
        "manager": ctx.manager, "operation": ctx.operation, "apiVersion": def.api_version(),
        "time": time, "fieldsType": "FieldsV1", "fieldsV1": fields::fields_v1(fields),
    });
    if let Some(sub) = &ctx.subresource {
        e["subresource"] = json!(sub);
    }
    e
}

fn entries(obj: &Value) -> Vec<(Value, BTreeSet<FieldPath>)> {
    obj.pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|e| {
                    (
                        e.clone(),
                        fields::parse_fields_v1(e.get("fieldsV1").unwrap_or(&Value::Null)),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn same_manager(e: &Value, ctx: &WriteCtx) -> bool {
    e.get("manager").and_then(Value::as_str) == Some(ctx.manager.as_str())
        && e.get("operation").and_then(Value::as_str) == Some(ctx.operation)
        && e.get("subresource").and_then(Value::as_str) == ctx.subresource.as_deref()
}

/// Recomputes managedFields after an Update-type write: the writer owns what it changed
/// (added to its previous set), others lose what changed, removed fields leave every set.
fn update_managed(def: &ResourceDef, ctx: &WriteCtx, old: &Value, new: &mut Value, time: &str) {
    let with_status = ctx.subresource.as_deref() == Some("status");
    let new_paths = fields::leaf_paths(group_of(def), &def.kind, new, with_status);
    let changed: BTreeSet<FieldPath> = new_paths
        .iter()
        .filter(|p| match p.last() {
            // A list item is "changed" (newly owned) only when it is new.
            Some(l) if l.starts_with("k:") => fields::value_at(old, p).is_none(),
            _ => fields::value_at(old, p) != fields::value_at(new, p),
        })
        .cloned()
        .collect();
    let mut out = Vec::new();
    let mut mine: Option<BTreeSet<FieldPath>> = None;
    for (e, set) in entries(old) {
        let keep: BTreeSet<FieldPath> = set
            .into_iter()
            .filter(|p| {
                fields::value_at(new, p).is_some()
                    || p.iter().any(|x| x.starts_with("f:status")) && !with_status
            })
            .collect();
        if same_manager(&e, ctx) {
            mine = Some(keep);
            continue;
        }
        let keep: BTreeSet<FieldPath> = keep.difference(&changed).cloned().collect();
        if !keep.is_empty() {
            let mut e = e.clone();
            e["fieldsV1"] = fields::fields_v1(&keep);
            out.push(e);
        }
    }
    let mut mine = mine.unwrap_or_default();
    mine.extend(changed);
    if !mine.is_empty() {
        out.push(managed_entry(def, ctx, &mine, time));
    }
    new["metadata"]["managedFields"] = Value::Array(out);
}

fn spec_of(o: &Value) -> Value {
    let mut c = o.clone();
    if let Some(m) = c.as_object_mut() {
        m.remove("metadata");
        m.remove("status");
    }
    c
}

/// Server-side bookkeeping after a write: generation, Deployment status and revision.
fn finish(def: &ResourceDef, old: Option<&Value>, new: &mut Value, time: &str) {
    let generation = old
        .and_then(|o| o.pointer("/metadata/generation"))
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let spec_changed = old.is_none_or(|o| spec_of(o) != spec_of(new));
    let generation = if spec_changed {
        generation + 1
    } else {
        generation.max(1)
    };
    new["metadata"]["generation"] = json!(generation);
    if def.group == "apps" && def.kind == "Deployment" {
        let replicas = new
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        let old_rev: i64 = old
            .and_then(|o| o.pointer("/metadata/annotations/deployment.kubernetes.io~1revision"))
            .and_then(Value::as_str)
            .and_then(|r| r.parse().ok())
            .unwrap_or(0);
        let tpl_changed =
            old.is_none_or(|o| o.pointer("/spec/template") != new.pointer("/spec/template"));
        let rev = if tpl_changed { old_rev + 1 } else { old_rev };
        if !new["metadata"]["annotations"].is_object() {
            new["metadata"]["annotations"] = json!({});
        }
        new["metadata"]["annotations"]["deployment.kubernetes.io/revision"] =
            json!(rev.to_string());
        new["status"] = json!({
            "observedGeneration": generation, "replicas": replicas, "updatedReplicas": replicas,
            "readyReplicas": replicas, "availableReplicas": replicas,
            "conditions": [
                {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable",
                 "message": "Deployment has minimum availability.", "lastUpdateTime": time, "lastTransitionTime": time},
                {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
                 "message": format!("ReplicaSet \"{}\" has successfully progressed.", new.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("")),
                 "lastUpdateTime": time, "lastTransitionTime": time},
            ],
        });
        // The controller's managedFields entries, as on a real cluster.
        let mut mf: Vec<Value> = new
            .pointer("/metadata/managedFields")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        mf.retain(|e| e.get("manager").and_then(Value::as_str) != Some("kube-controller-manager"));
        mf.push(json!({"manager": "kube-controller-manager", "operation": "Update", "apiVersion": "apps/v1", "time": time,
            "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {"f:annotations": {".": {}, "f:deployment.kubernetes.io/revision": {}}}}}));
        mf.push(json!({"manager": "kube-controller-manager", "operation": "Update", "apiVersion": "apps/v1", "time": time,
            "fieldsType": "FieldsV1", "subresource": "status",
            "fieldsV1": {"f:status": {"f:availableReplicas": {}, "f:conditions": {}, "f:observedGeneration": {}, "f:readyReplicas": {}, "f:replicas": {}, "f:updatedReplicas": {}}}}));
        new["metadata"]["managedFields"] = Value::Array(mf);
    }
}

fn create(
    s: &Shared,
    def: &ResourceDef,
    ns: Option<&str>,
    mut obj: Value,
    ctx: &WriteCtx,
) -> Result<Value, HttpError> {
    let rname = def.resource_name();
    if !obj.is_object() {
        return Err((400, "the body is not an object".into()));
    }
    if obj.get("kind").and_then(Value::as_str) != Some(def.kind.as_str()) {
        return Err((
            400,
            format!(
                "the kind of the body ({}) does not match {}",
                obj.get("kind").unwrap_or(&Value::Null),
                def.kind
            ),
        ));
    }
    if !obj["metadata"].is_object() {
        obj["metadata"] = json!({});
    }
    let mut store = lock(&s.store);
    store.seq += 1;
    let seq = store.seq;
    if obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        match obj
            .pointer("/metadata/generateName")
            .and_then(Value::as_str)
        {
            Some(p) => obj["metadata"]["name"] = json!(format!("{p}{:05x}", seq)),
            None => {
                return Err((
                    422,
                    format!(
                        "{} \"\" is invalid: metadata.name: Required value: name or generateName is required",
                        def.kind
                    ),
                ));
            }
        }
    }
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if def.namespaced {
        let body_ns = obj.pointer("/metadata/namespace").and_then(Value::as_str);
        let ns = ns.or(body_ns).unwrap_or("default").to_string();
        if body_ns.is_some_and(|b| b != ns) {
            return Err((400, "the namespace of the provided object does not match the namespace sent on the request".into()));
        }
        obj["metadata"]["namespace"] = json!(ns);
    } else if let Some(m) = obj["metadata"].as_object_mut() {
        m.remove("namespace");
    }
    let key = (
        obj.pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        name.clone(),
    );
    if store
        .objects
        .get(&rname)
        .is_some_and(|m| m.contains_key(&key))
    {
        return Err((409, format!("{rname} \"{name}\" already exists")));
    }
    let time = now();
    fields::apply_defaults(&def.group, &def.kind, &mut obj, seq);
    store.rv += 1;
    let rv = store.rv;
    let meta = &mut obj["metadata"];
    meta["uid"] = json!(uuid(seq, &name));
    meta["resourceVersion"] = json!(rv.to_string());
    meta["creationTimestamp"] = json!(time);
    if let Some(m) = obj.as_object_mut() {
        m.remove("status");
    }
    let owned = if ctx.operation == "Apply" {
        None
    } else {
        Some(fields::leaf_paths(&def.group, &def.kind, &obj, false))
    };
    if let Some(owned) = owned {
        obj["metadata"]["managedFields"] = json!([managed_entry(def, ctx, &owned, &time)]);
    }
    finish(def, None, &mut obj, &time);
    store
        .objects
        .entry(rname.clone())
        .or_default()
        .insert(key, obj.clone());
    drop(store);
    emit(s, &rname, "ADDED", obj.clone());
    Ok(obj)
}

fn uuid(seq: u64, name: &str) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in name.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x100000001b3);
    }
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        h >> 32,
        (h >> 16) & 0xffff,
        seq & 0xfff,
        (seq >> 12) & 0xfff,
        seq
    )
}

/// Read-modify-write of one object under the store lock, with managedFields, defaults,
/// generation and resourceVersion.
fn write(
    s: &Shared,
    def: &ResourceDef,
    ns: Option<&str>,
    name: &str,
    ctx: &WriteCtx,
    dry_run: bool,
    f: impl FnOnce(&mut Value) -> Result<(), HttpError>,
) -> Result<Value, HttpError> {
    let rname = def.resource_name();
    let key = (ns.unwrap_or("").to_string(), name.to_string());
    let mut store = lock(&s.store);
    let old = store
        .objects
        .get(&rname)
        .and_then(|m| m.get(&key))
        .cloned()
        .ok_or_else(|| (404, format!("{rname} \"{name}\" not found")))?;
    let mut new = old.clone();
    f(&mut new)?;
    if !new["metadata"].is_object() {
        new["metadata"] = json!({});
    }
    // Server-owned metadata cannot be changed by clients.
    for k in ["uid", "creationTimestamp", "name", "namespace"] {
        match old["metadata"].get(k) {
            Some(v) => new["metadata"][k] = v.clone(),
            None => {
                if let Some(m) = new["metadata"].as_object_mut() {
                    m.remove(k);
                }
            }
        }
    }
    if ctx.operation != "Apply" {
        new["metadata"]["managedFields"] = old["metadata"]["managedFields"].clone();
    }
    new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"].clone();
    if ctx.subresource.is_none() {
        new["status"] = old.get("status").cloned().unwrap_or(Value::Null);
        if new["status"].is_null()
            && let Some(m) = new.as_object_mut()
        {
            m.remove("status");
        }
    }
    store.seq += 1;
    fields::apply_defaults(&def.group, &def.kind, &mut new, store.seq);
    if new == old {
        return Ok(old);
    }
    let time = now();
    if ctx.operation != "Apply" {
        update_managed(def, ctx, &old, &mut new, &time);
    }
    finish(def, Some(&old), &mut new, &time);
    if dry_run {
        return Ok(new);
    }
    store.rv += 1;
    new["metadata"]["resourceVersion"] = json!(store.rv.to_string());
    store
        .objects
        .entry(rname.clone())
        .or_default()
        .insert(key, new.clone());
    drop(store);
    emit(s, &rname, "MODIFIED", new.clone());
    Ok(new)
}

#[allow(clippy::too_many_arguments)] // one call site: the router
async fn patch(
    s: &Shared,
    def: &ResourceDef,
    ns: Option<&str>,
    name: &str,
    sub: Option<&str>,
    content_type: &str,
    body: &[u8],
    manager: String,
    force: bool,
    dry_run: bool,
) -> Result<(StatusCode, Value), HttpError> {
    let group = def.group.clone();
    let kind = def.kind.clone();
    let is_scale = sub == Some("scale");
    if is_scale && !def.scale {
        return Err((
            404,
            "the server could not find the requested resource".into(),
        ));
    }
    let schema = fields::schema(&group, &kind);
    match content_type {
        "application/apply-patch+yaml" => {
            if manager.is_empty() || !body_has_manager(&manager) {
                return Err((400, "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch".into()));
            }
            let applied = parse_body(body, "yaml").map_err(|e| (400, e))?;
            let ctx = WriteCtx {
                manager,
                operation: "Apply",
                subresource: sub.map(str::to_string),
            };
            if get(s, def, ns, name).is_none() {
                let mut obj = applied.clone();
                obj["metadata"]["name"] = json!(name);
                let created = create(s, def, ns, obj, &ctx)?;
                let owned = fields::leaf_paths(&group, &kind, &applied, false);
                let time = created
                    .pointer("/metadata/creationTimestamp")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                let mut mf = created
                    .pointer("/metadata/managedFields")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                mf.insert(0, managed_entry(def, &ctx, &owned, &time));
                let key = (
                    created
                        .pointer("/metadata/namespace")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                    name.to_string(),
                );
                let mut store = lock(&s.store);
                let stored = store
                    .objects
                    .get_mut(&def.resource_name())
                    .and_then(|m| m.get_mut(&key));
                let out = match stored {
                    Some(o) => {
                        o["metadata"]["managedFields"] = Value::Array(mf);
                        o.clone()
                    }
                    None => created,
                };
                return Ok((StatusCode::CREATED, out));
            }
            let ctx2 = WriteCtx {
                manager: ctx.manager.clone(),
                operation: "Apply",
                subresource: ctx.subresource.clone(),
            };
            let applied_paths = fields::leaf_paths(&group, &kind, &applied, false);
            let out = write(s, def, ns, name, &ctx2, dry_run, |cur| {
                let time = now();
                let mut conflicts = Vec::new();
                let mut mine_before = BTreeSet::new();
                let mut others: Vec<(Value, BTreeSet<FieldPath>)> = Vec::new();
                for (e, set) in entries(cur) {
                    if same_manager(&e, &ctx) {
                        mine_before = set;
                    } else {
                        others.push((e, set));
                    }
                }
                for p in &applied_paths {
                    let live = fields::value_at(cur, p);
                    let want = fields::value_at(&applied, p);
                    if live.is_some()
                        && want.is_some()
                        && live != want
                        && !p.last().is_some_and(|l| l.starts_with("k:"))
                    {
                        for (e, set) in &others {
                            if set.contains(p) {
                                conflicts.push((e.clone(), p.clone()));
                            }
                        }
                    }
                }
                if !conflicts.is_empty() && !force {
                    let lines: Vec<String> = conflicts
                        .iter()
                        .map(|(e, p)| {
                            let sub = e
                                .get("subresource")
                                .and_then(Value::as_str)
                                .map(|s| format!(" with subresource \"{s}\""))
                                .unwrap_or_default();
                            format!(
                                "conflict with \"{}\"{sub} using {}: .{}",
                                e.get("manager").and_then(Value::as_str).unwrap_or(""),
                                e.get("apiVersion").and_then(Value::as_str).unwrap_or(""),
                                p.iter()
                                    .map(|x| x.trim_start_matches("f:"))
                                    .collect::<Vec<_>>()
                                    .join(".")
                            )
                        })
                        .collect();
                    return Err((
                        409,
                        format!(
                            "Apply failed with {} conflict{}: {}",
                            lines.len(),
                            if lines.len() == 1 { "" } else { "s" },
                            lines.join("\n")
                        ),
                    ));
                }
                // Prune fields this manager applied before and no longer applies, unless
                // someone else owns them too.
                for p in mine_before.difference(&applied_paths) {
                    if !others.iter().any(|(_, set)| set.contains(p)) {
                        fields::remove_at(cur, p);
                    }
                }
                let mut patch = applied.clone();
                if let Some(m) = patch.as_object_mut() {
                    m.remove("status");
                }
                fields::strategic_merge(cur, &patch, Some(schema));
                // Ownership: the applier owns what it applied; others lose what changed.
                let changed: BTreeSet<FieldPath> = applied_paths
                    .iter()
                    .filter(|p| conflicts.iter().any(|(_, c)| c == *p))
                    .cloned()
                    .collect();
                let mut mf = Vec::new();
                for (e, set) in others {
                    let keep: BTreeSet<FieldPath> = set.difference(&changed).cloned().collect();
                    if !keep.is_empty() {
                        let mut e = e;
                        e["fieldsV1"] = fields::fields_v1(&keep);
                        mf.push(e);
                    }
                }
                mf.insert(0, managed_entry(def, &ctx, &applied_paths, &time));
                cur["metadata"]["managedFields"] = Value::Array(mf);
                Ok(())
            });
            let out = out?;
            Ok((StatusCode::OK, out))
        }
        "application/json-patch+json"
        | "application/merge-patch+json"
        | "application/strategic-merge-patch+json" => {
            let patch_v: Value = serde_json::from_slice(body)
                .map_err(|e| (400, format!("error decoding patch: {e}")))?;
            if content_type == "application/strategic-merge-patch+json"
                && def.group.contains('.')
                && !is_builtin_group(&def.group)
            {
                return Err((
                    415,
                    "strategic merge patch is not supported for custom resources".into(),
                ));
            }
            let ctx = WriteCtx {
                manager,
                operation: "Update",
                subresource: sub.map(str::to_string),
            };
            let apply = |target: &mut Value| -> Result<(), HttpError> {
                match content_type {
                    "application/json-patch+json" => {
                        let p: json_patch::Patch = serde_json::from_value(patch_v.clone())
                            .map_err(|e| (400, format!("error decoding patch: {e}")))?;
                        json_patch::patch(target, &p)
                            .map_err(|e| (422, format!("the JSON patch could not be applied: {e}")))
                    }
                    "application/merge-patch+json" => {
                        json_patch::merge(target, &patch_v);
                        Ok(())
                    }
                    _ => {
                        fields::strategic_merge(target, &patch_v, Some(schema));
                        Ok(())
                    }
                }
            };
            let out = if is_scale {
                write(s, def, ns, name, &ctx, dry_run, |cur| {
                    let mut scale = scale_of(cur);
                    apply(&mut scale)?;
                    cur["spec"]["replicas"] =
                        scale.pointer("/spec/replicas").cloned().unwrap_or(json!(1));
                    Ok(())
                })
                .map(|o| scale_of(&o))?
            } else {
                write(s, def, ns, name, &ctx, dry_run, apply)?
            };
            Ok((StatusCode::OK, out))
        }
        other => Err((
            415,
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {other})"
            ),
        )),
    }
}

fn body_has_manager(m: &str) -> bool {
    !m.is_empty()
}

fn is_builtin_group(g: &str) -> bool {
    g.ends_with(".k8s.io") && !g.contains("example")
}
