//! Synthetic desired/live environments for benchmarks and tests.
//!
//! [`generate`] builds, for one seed, a deterministic pair of object sets:
//!
//! * the *desired* side: minimal, hand-written style manifests as they would
//!   sit in Git (Deployments, Services, ConfigMaps, Secrets, ServiceAccounts
//!   and Roles spread over `ns-000`, `ns-001`, ... and named `app-00000`, ...);
//! * the *live* side: the same objects as a Kubernetes API server returns them
//!   (`kubectl get -o yaml`): `uid`, `resourceVersion`, `generation`,
//!   `creationTimestamp`, `metadata.managedFields` (a
//!   `kubectl-client-side-apply` entry with the fields it set, plus the
//!   `kube-controller-manager` status entry of Deployments), the
//!   `kubectl.kubernetes.io/last-applied-configuration` annotation, server
//!   defaults, `status` blocks and keys in alphabetical order.
//!
//! Some live values are spelled differently from the desired ones without
//! being drift, as on a real cluster: canonical quantities (`cpu: 1000m` or
//! `cpu: 1` is live `"1"`, `0.5` is `"500m"`, `1024Mi` is `"1Gi"`, `0.5Gi` is
//! `"512Mi"`, a plain byte count `268435456` is the string `"268435456"`), a
//! Service `targetPort: "8080"` is live `8080`, an omitted `targetPort` is
//! live the `port`, an omitted Deployment `replicas` is live `1`.
//!
//! A share of the objects ([`SynthOptions::drift_percent`]) gets exactly one
//! injected drift each, recorded in [`SynthPair::injected`] with the live JSON
//! Pointer that changed and the field manager that changed it, so that a diff
//! can be checked against the truth. [`write_pair`] lays a pair out on disk as
//! YAML.
//!
//! Everything is derived from a small seeded PRNG (splitmix64): the same
//! options always give the same pair, whatever the platform.

use serde_json::{Map, Value, json};
use std::fs;
use std::io;
use std::path::Path;

/// Options for one synthetic desired/live pair.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthOptions {
    /// Number of desired objects (`SynthPair::desired.len()`).
    pub objects: usize,
    /// Share of objects, in percent (`0..=100`), that get one injected drift
    /// each; the number of injected drifts is
    /// `round(objects * drift_percent / 100)`. Out-of-range values are clamped,
    /// NaN counts as 0.
    pub drift_percent: f64,
    /// Seed of the PRNG: the same options always give the same pair.
    pub seed: u64,
    /// Number of namespaces (`ns-000`, `ns-001`, ...) the objects are spread
    /// over; 0 counts as 1.
    pub namespaces: usize,
}

impl Default for SynthOptions {
    /// 1000 objects, 2 % drift, seed 42, 20 namespaces.
    fn default() -> Self {
        SynthOptions {
            objects: 1000,
            drift_percent: 2.0,
            seed: 42,
            namespaces: 20,
        }
    }
}

/// One injected drift, for checking a diff against the truth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InjectedDrift {
    /// Kind of the object (`Deployment`, `ConfigMap`, ...).
    pub kind: String,
    /// Namespace of the object (every generated object is namespaced).
    pub namespace: Option<String>,
    /// Name of the object.
    pub name: String,
    /// `"modified"` (live differs from desired at `path`), `"missing"`
    /// (desired only) or `"unmanaged"` (live only).
    pub drift_type: &'static str,
    /// For `"modified"`: the JSON Pointer into the live object of the value
    /// that was changed or added (e.g. `/spec/template/spec/containers/0/image`).
    pub path: Option<String>,
    /// Field manager that made the change (`kubectl-set`, `kubectl-scale`,
    /// `kubectl-edit`, `kubectl-patch`, or `kubectl-create` for an unmanaged
    /// object); `None` for a missing object.
    pub manager: Option<String>,
}

/// A synthetic desired/live pair with the truth about its drift.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthPair {
    /// Desired objects (minimal manifests), `objects` of them, in name order.
    pub desired: Vec<Value>,
    /// Live objects as the API server returns them, in a shuffled order:
    /// `objects - missing + unmanaged` of them.
    pub live: Vec<Value>,
    /// The injected drifts, in name order.
    pub injected: Vec<InjectedDrift>,
}

// ---------------------------------------------------------------------------
// Constants

const APPLIER: &str = "kubectl-client-side-apply";
const CONTROLLER: &str = "kube-controller-manager";
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
const REVISION: &str = "deployment.kubernetes.io/revision";
const CONTAINER: &str = "app";
/// 2024-01-01T00:00:00Z.
const BASE_TIME: u64 = 1_704_067_200;
const DAY: u64 = 86_400;
const DESIRED_PER_FILE: usize = 200;
const LIVE_PER_FILE: usize = 500;

const SALT_KIND: u64 = 1;
const SALT_PLAN: u64 = 2;
const SALT_OBJECT: u64 = 3;
const SALT_DRIFT: u64 = 4;
const SALT_UNMANAGED: u64 = 5;
const SALT_SHUFFLE: u64 = 6;

// ---------------------------------------------------------------------------
// PRNG

/// The splitmix64 output function.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// splitmix64: small, fast, and good enough for synthetic data.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    /// An independent stream for (seed, purpose, index).
    fn stream(seed: u64, salt: u64, index: u64) -> Self {
        Rng(mix(seed
            ^ mix(
                salt.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ mix(index ^ 0x5851_F42D)
            )))
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }

    /// Uniform in `0..n` (0 when `n == 0`).
    fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    fn below_u64(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `p` percent.
    fn percent(&mut self, p: usize) -> bool {
        self.below(100) < p
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }
}

// ---------------------------------------------------------------------------
// Kinds and drift operations

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Deployment,
    Service,
    ConfigMap,
    Secret,
    ServiceAccount,
    Role,
}

impl Kind {
    /// 30 % Deployment, 25 % Service, 25 % ConfigMap, 10 % Secret,
    /// 5 % ServiceAccount, 5 % Role.
    fn draw(rng: &mut Rng) -> Kind {
        match rng.below(100) {
            0..=29 => Kind::Deployment,
            30..=54 => Kind::Service,
            55..=79 => Kind::ConfigMap,
            80..=89 => Kind::Secret,
            90..=94 => Kind::ServiceAccount,
            _ => Kind::Role,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Deployment => "Deployment",
            Kind::Service => "Service",
            Kind::ConfigMap => "ConfigMap",
            Kind::Secret => "Secret",
            Kind::ServiceAccount => "ServiceAccount",
            Kind::Role => "Role",
        }
    }

    fn api_version(self) -> &'static str {
        match self {
            Kind::Deployment => "apps/v1",
            Kind::Role => "rbac.authorization.k8s.io/v1",
            _ => "v1",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DriftOp {
    /// Deployment image changed by `kubectl-set`.
    Image,
    /// Deployment replicas changed by `kubectl-scale`.
    Replicas,
    /// Deployment env var added by `kubectl-edit`.
    Env,
    /// ConfigMap value changed by `kubectl-edit`.
    ConfigValue,
    /// Role verb added by `kubectl-patch`.
    RoleVerb,
    /// Desired object absent live.
    Missing,
    /// Live-only ConfigMap made by `kubectl-create`.
    Unmanaged,
}

impl DriftOp {
    fn draw(rng: &mut Rng) -> DriftOp {
        match rng.below(100) {
            0..=14 => DriftOp::Image,
            15..=29 => DriftOp::Replicas,
            30..=44 => DriftOp::Env,
            45..=59 => DriftOp::ConfigValue,
            60..=69 => DriftOp::RoleVerb,
            70..=84 => DriftOp::Missing,
            _ => DriftOp::Unmanaged,
        }
    }
}

fn drift_count(opts: &SynthOptions) -> usize {
    let pct = if opts.drift_percent.is_nan() {
        0.0
    } else {
        opts.drift_percent.clamp(0.0, 100.0)
    };
    (opts.objects as f64 * pct / 100.0).round() as usize
}

fn pop_unused(pool: &mut Vec<usize>, plan: &[Option<DriftOp>]) -> Option<usize> {
    while let Some(i) = pool.pop() {
        if plan[i].is_none() {
            return Some(i);
        }
    }
    None
}

/// Chooses `total` drifts: at most one per desired object, plus a number of
/// live-only ConfigMaps. An operation whose kind has no object left falls
/// back to a missing object (or, when every object is taken, an unmanaged one).
fn plan_drifts(kinds: &[Kind], total: usize, rng: &mut Rng) -> (Vec<Option<DriftOp>>, usize) {
    let mut plan = vec![None; kinds.len()];
    let mut unmanaged = 0;
    if total == 0 {
        return (plan, unmanaged);
    }
    let of_kind = |k: Kind| -> Vec<usize> { (0..kinds.len()).filter(|&i| kinds[i] == k).collect() };
    let mut deployments = of_kind(Kind::Deployment);
    let mut config_maps = of_kind(Kind::ConfigMap);
    let mut roles = of_kind(Kind::Role);
    let mut any: Vec<usize> = (0..kinds.len()).collect();
    rng.shuffle(&mut deployments);
    rng.shuffle(&mut config_maps);
    rng.shuffle(&mut roles);
    rng.shuffle(&mut any);
    for _ in 0..total {
        let op = DriftOp::draw(rng);
        let pool = match op {
            DriftOp::Image | DriftOp::Replicas | DriftOp::Env => Some(&mut deployments),
            DriftOp::ConfigValue => Some(&mut config_maps),
            DriftOp::RoleVerb => Some(&mut roles),
            DriftOp::Missing => Some(&mut any),
            DriftOp::Unmanaged => None,
        };
        let Some(pool) = pool else {
            unmanaged += 1;
            continue;
        };
        if let Some(i) = pop_unused(pool, &plan) {
            plan[i] = Some(op);
        } else if let Some(i) = pop_unused(&mut any, &plan) {
            plan[i] = Some(DriftOp::Missing);
        } else {
            unmanaged += 1;
        }
    }
    (plan, unmanaged)
}

// ---------------------------------------------------------------------------
// Small helpers

/// RFC 3339 UTC timestamp (`2024-01-01T00:00:00Z`) of a Unix time.
fn timestamp(secs: u64) -> String {
    // Howard Hinnant's civil_from_days.
    let z = (secs / DAY) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let rem = secs % DAY;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// A random version-4 UUID.
fn uuid(rng: &mut Rng) -> String {
    let a = rng.next_u64();
    let b = rng.next_u64();
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0x0fff,
        0x8000 | ((b >> 48) & 0x3fff),
        b & 0xffff_ffff_ffff
    )
}

/// Standard base64 with padding.
fn base64(data: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b1 = chunk.get(1).copied().unwrap_or(0);
        let b2 = chunk.get(2).copied().unwrap_or(0);
        let n = (u32::from(chunk[0]) << 16) | (u32::from(b1) << 8) | u32::from(b2);
        out.push(char::from(TABLE[(n >> 18) as usize & 63]));
        out.push(char::from(TABLE[(n >> 12) as usize & 63]));
        out.push(if chunk.len() > 1 {
            char::from(TABLE[(n >> 6) as usize & 63])
        } else {
            '='
        });
        out.push(if chunk.len() > 2 {
            char::from(TABLE[n as usize & 63])
        } else {
            '='
        });
    }
    out
}

/// A random string over `alphabet`.
fn random_string(rng: &mut Rng, alphabet: &[u8], len: usize) -> String {
    (0..len).map(|_| char::from(*rng.pick(alphabet))).collect()
}

/// Escapes one JSON Pointer reference token.
fn pointer_token(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// Whether this build's `serde_json::Map` keeps keys sorted (no
/// `preserve_order` feature somewhere in the dependency graph).
fn maps_are_sorted() -> bool {
    let mut m = Map::new();
    m.insert("b".to_owned(), Value::Null);
    m.insert("a".to_owned(), Value::Null);
    m.keys().next().is_some_and(|k| k == "a")
}

/// Sorts the keys of every map, recursively (only needed under `preserve_order`).
fn sort_keys(v: &mut Value) {
    match v {
        Value::Object(m) => {
            let mut entries: Vec<(String, Value)> = std::mem::take(m).into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            for (_, child) in &mut entries {
                sort_keys(child);
            }
            m.extend(entries);
        }
        Value::Array(items) => items.iter_mut().for_each(sort_keys),
        _ => {}
    }
}

// ---------------------------------------------------------------------------
// managedFields (fieldsV1) trees

/// The empty object `{}`: a leaf of a fieldsV1 tree.
fn leaf() -> Value {
    Value::Object(Map::new())
}

/// `k:{"name":"..."}`, the key of an associative list item keyed by name.
fn name_key(name: &str) -> String {
    format!("k:{{\"name\":{}}}", Value::from(name))
}

/// A fieldsV1 tree under construction.
#[derive(Debug, Default)]
struct Fields(Map<String, Value>);

impl Fields {
    fn new() -> Self {
        Fields::default()
    }

    /// Adds the `.` marker: the node itself (list item, map) is owned.
    fn dot(mut self) -> Self {
        self.0.insert(".".to_owned(), leaf());
        self
    }

    /// Adds the leaf `f:name`.
    fn f(mut self, name: &str) -> Self {
        self.0.insert(format!("f:{name}"), leaf());
        self
    }

    /// Adds several leaves.
    fn fs(self, names: &[&str]) -> Self {
        names.iter().fold(self, |acc, n| acc.f(n))
    }

    /// Adds the subtree `f:name`.
    fn child(mut self, name: &str, sub: Fields) -> Self {
        self.0.insert(format!("f:{name}"), sub.into_value());
        self
    }

    /// Adds the subtree under a raw key (`k:{...}`).
    fn key(mut self, key: String, sub: Fields) -> Self {
        self.0.insert(key, sub.into_value());
        self
    }

    fn into_value(self) -> Value {
        Value::Object(self.0)
    }
}

/// Fields of a map whose every key is owned: `.` plus `f:KEY` for each key.
fn map_fields(m: &Map<String, Value>) -> Fields {
    m.keys().fold(Fields::new().dot(), |acc, k| acc.f(k))
}

/// `{p0: {p1: ... {pn: tip}}}`.
fn nested(path: &[String], tip: Value) -> Value {
    path.iter().rev().fold(tip, |acc, p| {
        let mut m = Map::new();
        m.insert(p.clone(), acc);
        Value::Object(m)
    })
}

/// One `metadata.managedFields` entry with operation `Update`.
fn managed_entry(
    api_version: &str,
    manager: &str,
    time: u64,
    fields: Value,
    subresource: Option<&str>,
) -> Value {
    let mut e = Map::new();
    e.insert("apiVersion".to_owned(), api_version.into());
    e.insert("fieldsType".to_owned(), "FieldsV1".into());
    e.insert("fieldsV1".to_owned(), fields);
    e.insert("manager".to_owned(), manager.into());
    e.insert("operation".to_owned(), "Update".into());
    if let Some(s) = subresource {
        e.insert("subresource".to_owned(), s.into());
    }
    e.insert("time".to_owned(), timestamp(time).into());
    Value::Object(e)
}

// ---------------------------------------------------------------------------
// Object builders

/// Identity of one object.
struct Meta {
    index: usize,
    name: String,
    namespace: String,
    created: u64,
}

/// What a kind builder produces; [`assemble`] adds the live metadata.
struct Parts {
    desired: Value,
    /// Live top-level fields besides apiVersion, kind and metadata.
    live: Map<String, Value>,
    /// The applier's fieldsV1 without `f:metadata`.
    applier: Fields,
    /// Further managedFields entries (controllers), later than the applier's.
    extra_entries: Vec<Value>,
    /// Deployment: has `generation` and the revision annotation.
    deployment: bool,
}

fn desired_object(
    kind: Kind,
    meta: &Meta,
    labels: Option<Value>,
    body: Vec<(&str, Value)>,
) -> Value {
    let mut md = Map::new();
    md.insert("name".to_owned(), meta.name.as_str().into());
    md.insert("namespace".to_owned(), meta.namespace.as_str().into());
    if let Some(l) = labels {
        md.insert("labels".to_owned(), l);
    }
    let mut o = Map::new();
    o.insert("apiVersion".to_owned(), kind.api_version().into());
    o.insert("kind".to_owned(), kind.name().into());
    o.insert("metadata".to_owned(), Value::Object(md));
    for (k, v) in body {
        o.insert(k.to_owned(), v);
    }
    Value::Object(o)
}

fn labels(rng: &mut Rng, name: &str) -> Value {
    let mut l = Map::new();
    l.insert("app".to_owned(), name.into());
    if rng.percent(50) {
        l.insert(
            "team".to_owned(),
            format!("team-{:02}", rng.below(12)).into(),
        );
    }
    Value::Object(l)
}

/// A quantity as written in a desired manifest.
#[derive(Debug, Clone, Copy)]
enum Quantity {
    Str(&'static str),
    Int(u64),
    Float(f64),
}

impl Quantity {
    fn value(self) -> Value {
        match self {
            Quantity::Str(s) => s.into(),
            Quantity::Int(i) => i.into(),
            Quantity::Float(f) => f.into(),
        }
    }
}

/// (desired spelling, canonical live spelling).
const CPU: &[(Quantity, &str)] = &[
    (Quantity::Str("100m"), "100m"),
    (Quantity::Str("250m"), "250m"),
    (Quantity::Str("0.25"), "250m"),
    (Quantity::Float(0.5), "500m"),
    (Quantity::Str("500m"), "500m"),
    (Quantity::Str("1000m"), "1"),
    (Quantity::Int(1), "1"),
    (Quantity::Str("1"), "1"),
    (Quantity::Str("1500m"), "1500m"),
    (Quantity::Int(2), "2"),
    (Quantity::Str("2000m"), "2"),
];

/// (desired spelling, canonical live spelling).
const MEMORY: &[(Quantity, &str)] = &[
    (Quantity::Str("128Mi"), "128Mi"),
    (Quantity::Str("256Mi"), "256Mi"),
    (Quantity::Int(268_435_456), "268435456"),
    (Quantity::Str("512Mi"), "512Mi"),
    (Quantity::Str("0.5Gi"), "512Mi"),
    (Quantity::Str("1024Mi"), "1Gi"),
    (Quantity::Str("1Gi"), "1Gi"),
    (Quantity::Str("1000M"), "1G"),
    (Quantity::Str("1G"), "1G"),
    (Quantity::Str("2048Mi"), "2Gi"),
];

/// Requests or limits: (desired, live).
fn resource_pair(rng: &mut Rng) -> (Value, Value) {
    let (cpu_d, cpu_l) = *rng.pick(CPU);
    let (mem_d, mem_l) = *rng.pick(MEMORY);
    (
        json!({"cpu": cpu_d.value(), "memory": mem_d.value()}),
        json!({"cpu": cpu_l, "memory": mem_l}),
    )
}

const ENV_NAMES: [&str; 12] = [
    "LOG_LEVEL",
    "PORT",
    "ENABLE_METRICS",
    "CACHE_TTL",
    "DB_HOST",
    "REGION",
    "TZ",
    "WORKERS",
    "JAVA_OPTS",
    "GREETING",
    "FEATURE_FLAGS",
    "RETRY_BACKOFF",
];

/// Name and value of the env var that the `kubectl-edit` drift adds.
const ADDED_ENV: (&str, &str) = ("DEBUG", "true");

fn env_value(name: &str, rng: &mut Rng, ns: &str, port: u64) -> String {
    let s = |rng: &mut Rng, items: &[&str]| (*rng.pick(items)).to_owned();
    match name {
        "LOG_LEVEL" => s(rng, &["info", "debug", "warn", "error"]),
        "PORT" => port.to_string(),
        "ENABLE_METRICS" => s(rng, &["true", "false", "yes", "off"]),
        "CACHE_TTL" => s(rng, &["60", "300", "3600"]),
        "DB_HOST" => format!("postgres.{ns}.svc.cluster.local"),
        "REGION" => s(rng, &["eu-west-1", "us-east-1", "ap-south-1"]),
        "TZ" => s(rng, &["UTC", "Europe/Berlin", "America/New_York"]),
        "WORKERS" => rng.range(1, 16).to_string(),
        "JAVA_OPTS" => s(rng, &["-Xmx512m -Xms256m", "-XX:+UseG1GC"]),
        "GREETING" => s(
            rng,
            &["hello: world # not a comment", "Hello, World!", " padded "],
        ),
        "FEATURE_FLAGS" => s(rng, &["{beta,canary}", "[a, b]", "a,b,c", "*"]),
        _ => s(rng, &["1.5", "0x10", "1e3", "~", "null"]),
    }
}

fn deployment(rng: &mut Rng, meta: &Meta) -> Parts {
    let name = meta.name.as_str();
    let ns = meta.namespace.as_str();
    let team = rng.below(12);
    let replicas: Option<u64> = if rng.percent(10) {
        None
    } else {
        Some(*rng.pick(&[1, 2, 3, 4, 6]))
    };
    let image = format!(
        "registry.example.com/team-{team:02}/{name}:{}.{}.{}",
        rng.range(1, 3),
        rng.below(20),
        rng.below(10)
    );
    let port: u64 = *rng.pick(&[8080, 8000, 3000, 9000]);
    let named_port = rng.percent(70);
    let metrics_port = rng.percent(30);

    // Ports.
    let mut ports_d = Vec::new();
    let mut ports_l = Vec::new();
    let mut ports_f = Fields::new().dot();
    let mut port_specs = vec![(port, named_port.then_some("http"))];
    if metrics_port {
        port_specs.push((9090, Some("metrics")));
    }
    for (p, pname) in port_specs {
        let mut d = Map::new();
        d.insert("containerPort".to_owned(), p.into());
        let mut item_f = Fields::new().dot().f("containerPort");
        if let Some(n) = pname {
            d.insert("name".to_owned(), n.into());
            item_f = item_f.f("name");
        }
        let mut l = d.clone();
        l.insert("protocol".to_owned(), "TCP".into());
        ports_d.push(Value::Object(d));
        ports_l.push(Value::Object(l));
        ports_f = ports_f.key(
            format!("k:{{\"containerPort\":{p},\"protocol\":\"TCP\"}}"),
            item_f.f("protocol"),
        );
    }

    // Env.
    let mut env_order: Vec<usize> = (0..ENV_NAMES.len()).collect();
    rng.shuffle(&mut env_order);
    let env_n = rng.range(3, 6);
    let mut env = Vec::with_capacity(env_n);
    let mut env_f = Fields::new().dot();
    for &k in &env_order[..env_n] {
        let var = ENV_NAMES[k];
        env.push(json!({"name": var, "value": env_value(var, rng, ns, port)}));
        env_f = env_f.key(name_key(var), Fields::new().dot().fs(&["name", "value"]));
    }

    // Resources.
    let (req_d, req_l) = resource_pair(rng);
    let limits = rng.percent(70).then(|| resource_pair(rng));
    let mut res_d = Map::new();
    let mut res_l = Map::new();
    let mut res_f = Fields::new();
    if let Some((lim_d, lim_l)) = limits {
        res_d.insert("limits".to_owned(), lim_d);
        res_l.insert("limits".to_owned(), lim_l);
        res_f = res_f.child("limits", Fields::new().dot().fs(&["cpu", "memory"]));
    }
    res_d.insert("requests".to_owned(), req_d);
    res_l.insert("requests".to_owned(), req_l);
    res_f = res_f.child("requests", Fields::new().dot().fs(&["cpu", "memory"]));

    // Readiness probe.
    let probe_path = *rng.pick(&["/healthz", "/ready", "/livez"]);
    let probe_port: Value = if named_port {
        "http".into()
    } else {
        port.into()
    };
    let initial_delay = rng.percent(40).then(|| *rng.pick(&[5u64, 10, 15]));
    let http_get = json!({"path": probe_path, "port": probe_port});
    let mut probe_d = Map::new();
    probe_d.insert("httpGet".to_owned(), http_get);
    let mut probe_l = json!({
        "failureThreshold": 3,
        "httpGet": {"path": probe_path, "port": probe_port, "scheme": "HTTP"},
        "periodSeconds": 10,
        "successThreshold": 1,
        "timeoutSeconds": 1,
    });
    let mut probe_f = Fields::new()
        .dot()
        .f("failureThreshold")
        .child(
            "httpGet",
            Fields::new().dot().fs(&["path", "port", "scheme"]),
        )
        .fs(&["periodSeconds", "successThreshold", "timeoutSeconds"]);
    if let Some(delay) = initial_delay {
        probe_d.insert("initialDelaySeconds".to_owned(), delay.into());
        probe_l["initialDelaySeconds"] = delay.into();
        probe_f = probe_f.f("initialDelaySeconds");
    }

    let mut container_d = Map::new();
    container_d.insert("name".to_owned(), CONTAINER.into());
    container_d.insert("image".to_owned(), image.as_str().into());
    container_d.insert("ports".to_owned(), Value::Array(ports_d));
    container_d.insert("env".to_owned(), Value::Array(env.clone()));
    container_d.insert("resources".to_owned(), Value::Object(res_d));
    container_d.insert("readinessProbe".to_owned(), Value::Object(probe_d));

    let container_l = json!({
        "env": env,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "name": CONTAINER,
        "ports": ports_l,
        "readinessProbe": probe_l,
        "resources": res_l,
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
    });
    let container_f = Fields::new()
        .dot()
        .child("env", env_f)
        .fs(&["image", "imagePullPolicy", "name"])
        .child("ports", ports_f)
        .child("readinessProbe", probe_f)
        .child("resources", res_f)
        .fs(&["terminationMessagePath", "terminationMessagePolicy"]);

    let labels_d = labels(rng, name);
    let pod_labels = json!({"app": name});
    let mut spec_d = Map::new();
    if let Some(r) = replicas {
        spec_d.insert("replicas".to_owned(), r.into());
    }
    spec_d.insert("selector".to_owned(), json!({"matchLabels": {"app": name}}));
    spec_d.insert(
        "template".to_owned(),
        json!({
            "metadata": {"labels": pod_labels},
            "spec": {"containers": [Value::Object(container_d)]},
        }),
    );
    let desired = desired_object(
        Kind::Deployment,
        meta,
        Some(labels_d),
        vec![("spec", Value::Object(spec_d))],
    );

    let live_replicas = replicas.unwrap_or(1);
    let spec_l = json!({
        "progressDeadlineSeconds": 600,
        "replicas": live_replicas,
        "revisionHistoryLimit": 10,
        "selector": {"matchLabels": {"app": name}},
        "strategy": {
            "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
            "type": "RollingUpdate",
        },
        "template": {
            "metadata": {"creationTimestamp": null, "labels": pod_labels},
            "spec": {
                "containers": [container_l],
                "dnsPolicy": "ClusterFirst",
                "restartPolicy": "Always",
                "schedulerName": "default-scheduler",
                "securityContext": {},
                "terminationGracePeriodSeconds": 30,
            },
        },
    });
    let spec_f = Fields::new()
        .fs(&[
            "progressDeadlineSeconds",
            "replicas",
            "revisionHistoryLimit",
            "selector",
        ])
        .child(
            "strategy",
            Fields::new()
                .child(
                    "rollingUpdate",
                    Fields::new().dot().fs(&["maxSurge", "maxUnavailable"]),
                )
                .f("type"),
        )
        .child(
            "template",
            Fields::new()
                .child(
                    "metadata",
                    Fields::new().child("labels", Fields::new().dot().f("app")),
                )
                .child(
                    "spec",
                    Fields::new()
                        .child(
                            "containers",
                            Fields::new().key(name_key(CONTAINER), container_f),
                        )
                        .fs(&[
                            "dnsPolicy",
                            "restartPolicy",
                            "schedulerName",
                            "securityContext",
                            "terminationGracePeriodSeconds",
                        ]),
                ),
        );

    // Status, written by the controller a little after creation.
    let hash = random_string(rng, b"bcdfghjklmnpqrstvwxz2456789", 10);
    let ready_at = meta.created + 5 + rng.below_u64(55);
    let cond = |message: String, reason: &str, kind: &str, transition: u64| {
        json!({
            "lastTransitionTime": timestamp(transition),
            "lastUpdateTime": timestamp(ready_at),
            "message": message,
            "reason": reason,
            "status": "True",
            "type": kind,
        })
    };
    let status = json!({
        "availableReplicas": live_replicas,
        "conditions": [
            cond(
                "Deployment has minimum availability.".to_owned(),
                "MinimumReplicasAvailable",
                "Available",
                ready_at,
            ),
            cond(
                format!("ReplicaSet \"{name}-{hash}\" has successfully progressed."),
                "NewReplicaSetAvailable",
                "Progressing",
                meta.created + 1,
            ),
        ],
        "observedGeneration": 1,
        "readyReplicas": live_replicas,
        "replicas": live_replicas,
        "updatedReplicas": live_replicas,
    });
    let cond_f = || {
        Fields::new().dot().fs(&[
            "lastTransitionTime",
            "lastUpdateTime",
            "message",
            "reason",
            "status",
            "type",
        ])
    };
    let status_f = Fields::new()
        .child(
            "metadata",
            Fields::new().child("annotations", Fields::new().f(REVISION)),
        )
        .child(
            "status",
            Fields::new()
                .f("availableReplicas")
                .child(
                    "conditions",
                    Fields::new()
                        .dot()
                        .key("k:{\"type\":\"Available\"}".to_owned(), cond_f())
                        .key("k:{\"type\":\"Progressing\"}".to_owned(), cond_f()),
                )
                .fs(&[
                    "observedGeneration",
                    "readyReplicas",
                    "replicas",
                    "updatedReplicas",
                ]),
        );

    let mut live = Map::new();
    live.insert("spec".to_owned(), spec_l);
    live.insert("status".to_owned(), status);
    Parts {
        desired,
        live,
        applier: Fields::new().child("spec", spec_f),
        extra_entries: vec![managed_entry(
            Kind::Deployment.api_version(),
            CONTROLLER,
            ready_at,
            status_f.into_value(),
            Some("status"),
        )],
        deployment: true,
    }
}

fn service(rng: &mut Rng, meta: &Meta) -> Parts {
    let name = meta.name.as_str();
    let two_ports = rng.percent(25);
    let svc_port: u64 = *rng.pick(&[80, 8080, 443]);
    let target: u64 = *rng.pick(&[8080, 8000, 3000, 9000]);
    let mut specs: Vec<(Option<&str>, u64, Option<Value>, u64)> = Vec::new();
    let first_name = (two_ports || rng.percent(50)).then_some("http");
    let target_d = match rng.below(10) {
        0..=4 => Some(Value::from(target)),
        5..=6 => Some(Value::from(target.to_string())),
        _ => None,
    };
    let target_l = if target_d.is_some() { target } else { svc_port };
    specs.push((first_name, svc_port, target_d, target_l));
    if two_ports {
        specs.push((Some("metrics"), 9090, Some(9090.into()), 9090));
    }
    let mut ports_d = Vec::new();
    let mut ports_l = Vec::new();
    let mut ports_f = Fields::new().dot();
    for (pname, port, target_d, target_l) in specs {
        let mut d = Map::new();
        let mut l = Map::new();
        let mut f = Fields::new().dot();
        if let Some(n) = pname {
            d.insert("name".to_owned(), n.into());
            l.insert("name".to_owned(), n.into());
            f = f.f("name");
        }
        d.insert("port".to_owned(), port.into());
        l.insert("port".to_owned(), port.into());
        l.insert("protocol".to_owned(), "TCP".into());
        if let Some(t) = target_d {
            d.insert("targetPort".to_owned(), t);
        }
        l.insert("targetPort".to_owned(), target_l.into());
        ports_d.push(Value::Object(d));
        ports_l.push(Value::Object(l));
        ports_f = ports_f.key(
            format!("k:{{\"port\":{port},\"protocol\":\"TCP\"}}"),
            f.fs(&["port", "protocol", "targetPort"]),
        );
    }
    let selector = json!({"app": name});
    let mut spec_d = Map::new();
    if rng.percent(20) {
        spec_d.insert("type".to_owned(), "ClusterIP".into());
    }
    spec_d.insert("selector".to_owned(), selector.clone());
    spec_d.insert("ports".to_owned(), Value::Array(ports_d));
    let labels_d = labels(rng, name);
    let desired = desired_object(
        Kind::Service,
        meta,
        Some(labels_d),
        vec![("spec", Value::Object(spec_d))],
    );

    let n = meta.index as u64 + 10;
    let ip = format!(
        "10.{}.{}.{}",
        96 + ((n >> 16) & 15),
        (n >> 8) & 255,
        n & 255
    );
    let spec_l = json!({
        "clusterIP": ip,
        "clusterIPs": [ip],
        "internalTrafficPolicy": "Cluster",
        "ipFamilies": ["IPv4"],
        "ipFamilyPolicy": "SingleStack",
        "ports": ports_l,
        "selector": selector,
        "sessionAffinity": "None",
        "type": "ClusterIP",
    });
    let spec_f = Fields::new()
        .f("internalTrafficPolicy")
        .child("ports", ports_f)
        .fs(&["selector", "sessionAffinity", "type"]);
    let mut live = Map::new();
    live.insert("spec".to_owned(), spec_l);
    live.insert("status".to_owned(), json!({"loadBalancer": {}}));
    Parts {
        desired,
        live,
        applier: Fields::new().child("spec", spec_f),
        extra_entries: Vec::new(),
        deployment: false,
    }
}

const CM_KEYS: [&str; 16] = [
    "app.properties",
    "log-level",
    "feature.enabled",
    "max-connections",
    "endpoint",
    "timeout",
    "greeting",
    "empty",
    "config.json",
    "motd",
    "ratio",
    "null-ish",
    "list-ish",
    "region",
    "unicode",
    "tabbed",
];

fn cm_value(key: &str, rng: &mut Rng, name: &str) -> String {
    let s = |rng: &mut Rng, items: &[&str]| (*rng.pick(items)).to_owned();
    match key {
        "app.properties" => format!(
            "server.port={}\nserver.host=0.0.0.0\napp.name={name}\n",
            rng.pick(&[8080, 8000, 9000])
        ),
        "log-level" => s(rng, &["info", "debug", "warn"]),
        "feature.enabled" => s(rng, &["true", "no", "On", "FALSE"]),
        "max-connections" => rng.range(10, 500).to_string(),
        "endpoint" => format!("https://{name}.example.com:8443/v1"),
        "timeout" => s(rng, &["30s", "5m", "1h30m"]),
        "greeting" => s(rng, &[" hello ", "hi there", "hello: world"]),
        "empty" => String::new(),
        "config.json" => format!(
            "{{\"name\": \"{name}\", \"retries\": {}, \"verbose\": false}}",
            rng.range(1, 5)
        ),
        "motd" => s(
            rng,
            &[
                "Welcome! # to the cluster\n",
                "line one\nline two",
                "# comment-like",
            ],
        ),
        "ratio" => s(rng, &["0.75", ".5", "1e-3", "+1"]),
        "null-ish" => s(rng, &["null", "~", "Null", "NULL"]),
        "list-ish" => s(
            rng,
            &[
                "- item", "[a, b]", "? key", "&anchor", "*alias", "!tag", "%percent", "@at",
                "`tick",
            ],
        ),
        "region" => s(rng, &["eu-west-1", "us-east-1"]),
        "unicode" => s(rng, &["héllo wörld ✓", "日本語", "emoji 🚀"]),
        _ => s(rng, &["a\tb", "trailing tab\t", "back\\slash \"quoted\""]),
    }
}

fn config_map(rng: &mut Rng, meta: &Meta) -> Parts {
    let mut order: Vec<usize> = (0..CM_KEYS.len()).collect();
    rng.shuffle(&mut order);
    let n = rng.range(3, 10);
    let mut data = Map::new();
    for &k in &order[..n] {
        data.insert(
            CM_KEYS[k].to_owned(),
            cm_value(CM_KEYS[k], rng, &meta.name).into(),
        );
    }
    let labels_d = rng.percent(70).then(|| labels(rng, &meta.name));
    let applier = Fields::new().child("data", map_fields(&data));
    let data = Value::Object(data);
    let desired = desired_object(
        Kind::ConfigMap,
        meta,
        labels_d,
        vec![("data", data.clone())],
    );
    let mut live = Map::new();
    live.insert("data".to_owned(), data);
    Parts {
        desired,
        live,
        applier,
        extra_entries: Vec::new(),
        deployment: false,
    }
}

const SECRET_KEYS: [&str; 6] = [
    "username",
    "password",
    "token",
    "api-key",
    "ca.crt",
    "config.yaml",
];
const ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

fn secret(rng: &mut Rng, meta: &Meta) -> Parts {
    let mut order: Vec<usize> = (0..SECRET_KEYS.len()).collect();
    rng.shuffle(&mut order);
    let n = rng.range(1, 4);
    let mut data = Map::new();
    for &k in &order[..n] {
        let len = rng.range(8, 40);
        let plain = random_string(rng, ALNUM, len);
        data.insert(SECRET_KEYS[k].to_owned(), base64(plain.as_bytes()).into());
    }
    let labels_d = rng.percent(50).then(|| labels(rng, &meta.name));
    let applier = Fields::new().child("data", map_fields(&data)).f("type");
    let data = Value::Object(data);
    let mut body = Vec::new();
    if rng.percent(50) {
        body.push(("type", Value::from("Opaque")));
    }
    body.push(("data", data.clone()));
    let desired = desired_object(Kind::Secret, meta, labels_d, body);
    let mut live = Map::new();
    live.insert("data".to_owned(), data);
    live.insert("type".to_owned(), "Opaque".into());
    Parts {
        desired,
        live,
        applier,
        extra_entries: Vec::new(),
        deployment: false,
    }
}

fn service_account(rng: &mut Rng, meta: &Meta) -> Parts {
    let labels_d = rng.percent(50).then(|| labels(rng, &meta.name));
    let mut body = Vec::new();
    let mut live = Map::new();
    let mut applier = Fields::new();
    if rng.percent(25) {
        body.push(("automountServiceAccountToken", Value::Bool(false)));
        live.insert(
            "automountServiceAccountToken".to_owned(),
            Value::Bool(false),
        );
        applier = applier.f("automountServiceAccountToken");
    }
    Parts {
        desired: desired_object(Kind::ServiceAccount, meta, labels_d, body),
        live,
        applier,
        extra_entries: Vec::new(),
        deployment: false,
    }
}

const RBAC_GROUPS: [(&str, &[&str]); 4] = [
    (
        "",
        &["pods", "configmaps", "secrets", "services", "endpoints"],
    ),
    ("apps", &["deployments", "replicasets", "statefulsets"]),
    ("batch", &["jobs", "cronjobs"]),
    ("networking.k8s.io", &["ingresses", "networkpolicies"]),
];
/// None of these contains the verb that the `kubectl-patch` drift adds.
const VERB_SETS: [&[&str]; 5] = [
    &["get"],
    &["get", "list"],
    &["get", "list", "watch"],
    &["get", "list", "watch", "update", "patch"],
    &["create", "get", "list"],
];
/// The verb that the `kubectl-patch` drift adds to the first rule.
const ADDED_VERB: &str = "delete";

fn role(rng: &mut Rng, meta: &Meta) -> Parts {
    let n = rng.range(1, 3);
    let mut rules = Vec::with_capacity(n);
    for _ in 0..n {
        let (group, resources) = *rng.pick(&RBAC_GROUPS);
        let start = rng.below(resources.len());
        let count = rng.range(1, resources.len());
        let res: Vec<&str> = (0..count)
            .map(|j| resources[(start + j) % resources.len()])
            .collect();
        let verbs = *rng.pick(&VERB_SETS);
        rules.push(json!({"apiGroups": [group], "resources": res, "verbs": verbs}));
    }
    let labels_d = rng.percent(50).then(|| labels(rng, &meta.name));
    let rules = Value::Array(rules);
    let desired = desired_object(Kind::Role, meta, labels_d, vec![("rules", rules.clone())]);
    let mut live = Map::new();
    live.insert("rules".to_owned(), rules);
    Parts {
        desired,
        live,
        // rules is an atomic list: owned as a whole.
        applier: Fields::new().f("rules"),
        extra_entries: Vec::new(),
        deployment: false,
    }
}

/// Adds the live metadata to the builder's parts: (desired, live).
fn assemble(kind: Kind, meta: &Meta, parts: Parts, rng: &mut Rng, sorted: bool) -> (Value, Value) {
    let Parts {
        desired,
        live: mut body,
        applier,
        extra_entries,
        deployment,
    } = parts;
    let mut last_applied = if sorted {
        desired.to_string()
    } else {
        let mut copy = desired.clone();
        sort_keys(&mut copy);
        copy.to_string()
    };
    last_applied.push('\n');

    let mut annotations = Map::new();
    if deployment {
        annotations.insert(REVISION.to_owned(), "1".into());
    }
    annotations.insert(LAST_APPLIED.to_owned(), last_applied.into());
    let labels = desired
        .get("metadata")
        .and_then(|m| m.get("labels"))
        .cloned();
    let mut meta_f = Fields::new().child("annotations", Fields::new().dot().f(LAST_APPLIED));
    if let Some(Value::Object(l)) = &labels {
        meta_f = meta_f.child("labels", map_fields(l));
    }
    let applier = applier.child("metadata", meta_f);
    let mut entries = Vec::with_capacity(1 + extra_entries.len());
    entries.push(managed_entry(
        kind.api_version(),
        APPLIER,
        meta.created,
        applier.into_value(),
        None,
    ));
    entries.extend(extra_entries);

    let mut md = Map::new();
    md.insert("annotations".to_owned(), Value::Object(annotations));
    md.insert(
        "creationTimestamp".to_owned(),
        timestamp(meta.created).into(),
    );
    if deployment {
        md.insert("generation".to_owned(), 1.into());
    }
    if let Some(l) = labels {
        md.insert("labels".to_owned(), l);
    }
    md.insert("managedFields".to_owned(), Value::Array(entries));
    md.insert("name".to_owned(), meta.name.as_str().into());
    md.insert("namespace".to_owned(), meta.namespace.as_str().into());
    md.insert(
        "resourceVersion".to_owned(),
        (1_000_000 + meta.index as u64 * 10 + rng.below_u64(10))
            .to_string()
            .into(),
    );
    md.insert("uid".to_owned(), uuid(rng).into());

    body.insert("apiVersion".to_owned(), kind.api_version().into());
    body.insert("kind".to_owned(), kind.name().into());
    body.insert("metadata".to_owned(), Value::Object(md));
    (desired, Value::Object(body))
}

/// Applies one drift to a live object; returns (JSON Pointer, manager).
fn inject(
    op: DriftOp,
    kind: Kind,
    live: &mut Value,
    rng: &mut Rng,
    created: u64,
) -> (String, &'static str) {
    let when = created + DAY + rng.below_u64(29 * DAY);
    let container = ["f:spec", "f:template", "f:spec", "f:containers"]
        .iter()
        .map(|s| (*s).to_owned())
        .chain([name_key(CONTAINER)]);
    let mut spec_change = false;
    let mut template_change = false;
    // (pointer, manager, fieldsV1 path of the owned field, what is owned there)
    let (pointer, manager, fields_path, owned): (String, &'static str, Vec<String>, Value) =
        match op {
            DriftOp::Image => {
                let p = "/spec/template/spec/containers/0/image";
                if let Some(slot) = live.pointer_mut(p) {
                    let old = slot.as_str().unwrap_or_default();
                    let repo = old.rsplit_once(':').map_or(old, |(r, _)| r);
                    *slot = format!(
                        "{repo}:{}.{}.{}-hotfix",
                        rng.range(4, 9),
                        rng.below(20),
                        rng.below(10)
                    )
                    .into();
                }
                spec_change = true;
                template_change = true;
                let path = container.chain(["f:image".to_owned()]).collect();
                (p.to_owned(), "kubectl-set", path, leaf())
            }
            DriftOp::Replicas => {
                let old = live
                    .pointer("/spec/replicas")
                    .and_then(Value::as_u64)
                    .unwrap_or(1);
                let new = old + 1 + rng.below_u64(4);
                live["spec"]["replicas"] = new.into();
                if let Some(status) = live.get_mut("status").and_then(Value::as_object_mut) {
                    for k in [
                        "availableReplicas",
                        "readyReplicas",
                        "replicas",
                        "updatedReplicas",
                    ] {
                        status.insert(k.to_owned(), new.into());
                    }
                }
                spec_change = true;
                let path = vec!["f:spec".to_owned(), "f:replicas".to_owned()];
                ("/spec/replicas".to_owned(), "kubectl-scale", path, leaf())
            }
            DriftOp::Env => {
                let (var, value) = ADDED_ENV;
                let mut index = 0;
                if let Some(Value::Array(env)) =
                    live.pointer_mut("/spec/template/spec/containers/0/env")
                {
                    index = env.len();
                    env.push(json!({"name": var, "value": value}));
                }
                spec_change = true;
                template_change = true;
                let path = container
                    .chain(["f:env".to_owned(), name_key(var)])
                    .collect();
                let owned = Fields::new().dot().fs(&["name", "value"]).into_value();
                (
                    format!("/spec/template/spec/containers/0/env/{index}"),
                    "kubectl-edit",
                    path,
                    owned,
                )
            }
            DriftOp::ConfigValue => {
                let mut key = String::new();
                if let Some(Value::Object(data)) = live.get_mut("data") {
                    let i = rng.below(data.len());
                    if let Some((k, v)) = data.iter_mut().nth(i) {
                        let old = v.as_str().unwrap_or_default();
                        *v = format!("{old}-edited").into();
                        key.clone_from(k);
                    }
                }
                let path = vec!["f:data".to_owned(), format!("f:{key}")];
                (
                    format!("/data/{}", pointer_token(&key)),
                    "kubectl-edit",
                    path,
                    leaf(),
                )
            }
            DriftOp::RoleVerb => {
                if let Some(Value::Array(verbs)) = live.pointer_mut("/rules/0/verbs") {
                    verbs.push(ADDED_VERB.into());
                }
                (
                    "/rules/0/verbs".to_owned(),
                    "kubectl-patch",
                    vec!["f:rules".to_owned()],
                    leaf(),
                )
            }
            DriftOp::Missing | DriftOp::Unmanaged => unreachable!("not an in-place drift"),
        };

    let md = &mut live["metadata"];
    if let Some(Value::Array(entries)) = md.get_mut("managedFields") {
        // The applier no longer owns the field...
        if let Some(applier) = entries.first_mut().and_then(|e| e.get_mut("fieldsV1")) {
            remove_fields(applier, &fields_path);
        }
        // ...the manager that changed it does, from a later time on.
        entries.push(managed_entry(
            kind.api_version(),
            manager,
            when,
            nested(&fields_path, owned),
            None,
        ));
    }
    let rv = md["resourceVersion"]
        .as_str()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(0);
    md["resourceVersion"] = (rv + 50_000_000).to_string().into();
    if spec_change {
        let generation = md["generation"].as_u64().unwrap_or(1) + 1;
        md["generation"] = generation.into();
        if template_change {
            md["annotations"][REVISION] = "2".into();
        }
        live["status"]["observedGeneration"] = generation.into();
    }
    (pointer, manager)
}

/// Removes a path from a fieldsV1 tree (no-op when absent).
fn remove_fields(fields: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = fields;
    for p in parents {
        match cur.get_mut(p.as_str()) {
            Some(next) => cur = next,
            None => return,
        }
    }
    if let Some(m) = cur.as_object_mut() {
        m.remove(last.as_str());
    }
}

/// A live-only ConfigMap made with `kubectl create configmap`.
fn unmanaged_config_map(
    seed: u64,
    k: usize,
    meta_index: usize,
    namespaces: usize,
) -> (Value, String, String) {
    let mut rng = Rng::stream(seed, SALT_UNMANAGED, k as u64);
    let name = format!("app-{meta_index:05}");
    let namespace = format!("ns-{:03}", rng.below(namespaces));
    let created = BASE_TIME + rng.below_u64(180 * DAY);
    let mut data = Map::new();
    let mut order: Vec<usize> = (0..CM_KEYS.len()).collect();
    rng.shuffle(&mut order);
    for &i in &order[..rng.range(1, 3)] {
        data.insert(
            CM_KEYS[i].to_owned(),
            cm_value(CM_KEYS[i], &mut rng, &name).into(),
        );
    }
    let fields = Fields::new().child("data", map_fields(&data)).into_value();
    let live = json!({
        "apiVersion": "v1",
        "data": data,
        "kind": "ConfigMap",
        "metadata": {
            "creationTimestamp": timestamp(created),
            "managedFields": [managed_entry("v1", "kubectl-create", created, fields, None)],
            "name": name,
            "namespace": namespace,
            "resourceVersion": (1_000_000 + meta_index as u64 * 10 + rng.below_u64(10)).to_string(),
            "uid": uuid(&mut rng),
        },
    });
    (live, namespace, name)
}

/// Desired objects, live objects and injected drifts of a range of indices.
type Built = (Vec<Value>, Vec<Value>, Vec<InjectedDrift>);

/// Builds the objects `first..first + kinds.len()`.
fn build_range(
    opts: &SynthOptions,
    first: usize,
    kinds: &[Kind],
    plan: &[Option<DriftOp>],
    sorted: bool,
) -> Built {
    let namespaces = opts.namespaces.max(1);
    let mut desired = Vec::with_capacity(kinds.len());
    let mut live = Vec::with_capacity(kinds.len());
    let mut injected = Vec::new();
    for (offset, (&kind, &op)) in kinds.iter().zip(plan).enumerate() {
        let i = first + offset;
        let mut rng = Rng::stream(opts.seed, SALT_OBJECT, i as u64);
        let namespace = format!("ns-{:03}", rng.below(namespaces));
        let created = BASE_TIME + rng.below_u64(180 * DAY);
        let meta = Meta {
            index: i,
            name: format!("app-{i:05}"),
            namespace,
            created,
        };
        let parts = match kind {
            Kind::Deployment => deployment(&mut rng, &meta),
            Kind::Service => service(&mut rng, &meta),
            Kind::ConfigMap => config_map(&mut rng, &meta),
            Kind::Secret => secret(&mut rng, &meta),
            Kind::ServiceAccount => service_account(&mut rng, &meta),
            Kind::Role => role(&mut rng, &meta),
        };
        let (d, mut l) = assemble(kind, &meta, parts, &mut rng, sorted);
        desired.push(d);
        let truth = |drift_type, path, manager: Option<&str>| InjectedDrift {
            kind: kind.name().to_owned(),
            namespace: Some(meta.namespace.clone()),
            name: meta.name.clone(),
            drift_type,
            path,
            manager: manager.map(str::to_owned),
        };
        match op {
            None => {}
            Some(DriftOp::Missing) => {
                injected.push(truth("missing", None, None));
                continue;
            }
            Some(op) => {
                let mut drift_rng = Rng::stream(opts.seed, SALT_DRIFT, i as u64);
                let (path, manager) = inject(op, kind, &mut l, &mut drift_rng, meta.created);
                injected.push(truth("modified", Some(path), Some(manager)));
            }
        }
        if !sorted {
            sort_keys(&mut l);
        }
        live.push(l);
    }
    (desired, live, injected)
}

/// The kind of every object, the drift planned for it, and the number of
/// unmanaged objects.
fn layout(opts: &SynthOptions) -> (Vec<Kind>, Vec<Option<DriftOp>>, usize) {
    let mut kind_rng = Rng::stream(opts.seed, SALT_KIND, 0);
    let kinds: Vec<Kind> = (0..opts.objects)
        .map(|_| Kind::draw(&mut kind_rng))
        .collect();
    let mut plan_rng = Rng::stream(opts.seed, SALT_PLAN, 0);
    let (plan, unmanaged) = plan_drifts(&kinds, drift_count(opts), &mut plan_rng);
    (kinds, plan, unmanaged)
}

/// Objects per worker thread, at least.
const OBJECTS_PER_THREAD: usize = 2_000;

/// Generates one desired/live pair; deterministic for the options.
///
/// `desired` has `opts.objects` objects in name order; `live` has the same
/// objects as an API server returns them, minus the missing ones, plus the
/// unmanaged ones, shuffled; `injected` lists every injected drift. Large
/// pairs are built on several threads; every object has its own PRNG stream,
/// so the result does not depend on the number of threads.
pub fn generate(opts: &SynthOptions) -> SynthPair {
    let sorted = maps_are_sorted();
    let n = opts.objects;
    let namespaces = opts.namespaces.max(1);
    let (kinds, plan, unmanaged) = layout(opts);

    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(n / OBJECTS_PER_THREAD)
        .max(1);
    let (desired, mut live, mut injected) = if threads == 1 {
        build_range(opts, 0, &kinds, &plan, sorted)
    } else {
        let chunk = n.div_ceil(threads);
        let parts: Vec<Built> = std::thread::scope(|scope| {
            let handles: Vec<_> = kinds
                .chunks(chunk)
                .zip(plan.chunks(chunk))
                .enumerate()
                .map(|(t, (kinds, plan))| {
                    scope.spawn(move || build_range(opts, t * chunk, kinds, plan, sorted))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                })
                .collect()
        });
        let mut all: Built = (
            Vec::with_capacity(n),
            Vec::with_capacity(n + unmanaged),
            Vec::new(),
        );
        for (d, l, i) in parts {
            all.0.extend(d);
            all.1.extend(l);
            all.2.extend(i);
        }
        all
    };
    for k in 0..unmanaged {
        let (mut l, namespace, name) = unmanaged_config_map(opts.seed, k, n + k, namespaces);
        if !sorted {
            sort_keys(&mut l);
        }
        live.push(l);
        injected.push(InjectedDrift {
            kind: "ConfigMap".to_owned(),
            namespace: Some(namespace),
            name,
            drift_type: "unmanaged",
            path: None,
            manager: Some("kubectl-create".to_owned()),
        });
    }
    Rng::stream(opts.seed, SALT_SHUFFLE, 0).shuffle(&mut live);
    SynthPair {
        desired,
        live,
        injected,
    }
}

// ---------------------------------------------------------------------------
// Output

/// Writes desired objects as multi-document YAML files (about 200 objects per
/// file) under dir/desired/ and live objects as `kind: List` files (the
/// `kubectl get -o yaml` layout, ~500 items per file) under dir/live/, plus
/// dir/injected.json. Returns the number of bytes written per side.
///
/// Files are named `desired/desired-0000.yaml`, ... and `live/live-0000.yaml`,
/// ...; files of those names left over from a larger earlier pair are
/// removed, other files are left alone. `injected.json` is an array of
/// objects with the fields of [`InjectedDrift`] (`null` for `None`).
///
/// # Errors
///
/// Any I/O error creating the directories, writing a file or removing a
/// stale one; files written before the error stay.
pub fn write_pair(pair: &SynthPair, dir: &Path) -> io::Result<(u64, u64)> {
    let desired_dir = dir.join("desired");
    let live_dir = dir.join("live");
    fs::create_dir_all(&desired_dir)?;
    fs::create_dir_all(&live_dir)?;
    let mut buf = String::new();

    let mut desired_bytes = 0u64;
    let mut desired_files = 0;
    for (i, chunk) in pair.desired.chunks(DESIRED_PER_FILE).enumerate() {
        buf.clear();
        for doc in chunk {
            buf.push_str("---\n");
            emit_document(&mut buf, doc);
        }
        fs::write(desired_dir.join(format!("desired-{i:04}.yaml")), &buf)?;
        desired_bytes += buf.len() as u64;
        desired_files = i + 1;
    }
    remove_stale(&desired_dir, "desired-", desired_files)?;

    let mut live_bytes = 0u64;
    let mut live_files = 0;
    for (i, chunk) in pair.live.chunks(LIVE_PER_FILE).enumerate() {
        buf.clear();
        buf.push_str("apiVersion: v1\nitems:\n");
        for item in chunk {
            emit_seq_item(&mut buf, item, 0);
        }
        buf.push_str("kind: List\nmetadata:\n  resourceVersion: \"\"\n");
        fs::write(live_dir.join(format!("live-{i:04}.yaml")), &buf)?;
        live_bytes += buf.len() as u64;
        live_files = i + 1;
    }
    remove_stale(&live_dir, "live-", live_files)?;

    write_injected(pair, dir)?;
    Ok((desired_bytes, live_bytes))
}

/// Writes `dir/injected.json`.
fn write_injected(pair: &SynthPair, dir: &Path) -> io::Result<()> {
    let truth: Vec<Value> = pair
        .injected
        .iter()
        .map(|d| {
            json!({
                "kind": d.kind,
                "namespace": d.namespace,
                "name": d.name,
                "drift_type": d.drift_type,
                "path": d.path,
                "manager": d.manager,
            })
        })
        .collect();
    let mut text = serde_json::to_string_pretty(&Value::Array(truth)).map_err(io::Error::other)?;
    text.push('\n');
    fs::write(dir.join("injected.json"), text)
}

/// How [`write_pair_single`] writes the live side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiveFormat {
    /// `kubectl get -A -o yaml`: one `kind: List` YAML document, items at column 0.
    Yaml,
    /// `kubectl get -A -o json`: one `kind: List` JSON object, 4-space indentation.
    Json,
}

/// The single-file layout of a big environment: all desired objects in one multi-document
/// YAML file (`desired/desired.yaml`) and all live objects in one `kind: List` file as
/// `kubectl get -A -o yaml` (or `-o json`) writes it (`live/live.yaml` or
/// `live/live.json`), plus `injected.json` as [`write_pair`] writes it. Other files in the
/// two directories are left alone. Returns the number of bytes written per side.
///
/// # Errors
///
/// Any I/O error creating the directories or writing a file.
pub fn write_pair_single(pair: &SynthPair, dir: &Path, live: LiveFormat) -> io::Result<(u64, u64)> {
    let desired_dir = dir.join("desired");
    let live_dir = dir.join("live");
    fs::create_dir_all(&desired_dir)?;
    fs::create_dir_all(&live_dir)?;
    let mut buf = String::new();
    for doc in &pair.desired {
        buf.push_str("---\n");
        emit_document(&mut buf, doc);
    }
    fs::write(desired_dir.join("desired.yaml"), &buf)?;
    let desired_bytes = buf.len() as u64;
    buf.clear();
    let name = match live {
        LiveFormat::Yaml => {
            buf.push_str("apiVersion: v1\nitems:\n");
            for item in &pair.live {
                emit_seq_item(&mut buf, item, 0);
            }
            buf.push_str("kind: List\nmetadata:\n  resourceVersion: \"\"\n");
            "live.yaml"
        }
        LiveFormat::Json => {
            let list = json!({
                "apiVersion": "v1",
                "items": pair.live,
                "kind": "List",
                "metadata": {"resourceVersion": ""},
            });
            // Pretty JSON has no raw newlines inside strings: each line's leading spaces
            // are its indentation, doubled to kubectl's four per level.
            let pretty = serde_json::to_string_pretty(&list).map_err(io::Error::other)?;
            buf.reserve(pretty.len() + pretty.len() / 4);
            for line in pretty.lines() {
                let body = line.trim_start_matches(' ');
                pad(&mut buf, 2 * (line.len() - body.len()));
                buf.push_str(body);
                buf.push('\n');
            }
            "live.json"
        }
    };
    fs::write(live_dir.join(name), &buf)?;
    let live_bytes = buf.len() as u64;
    write_injected(pair, dir)?;
    Ok((desired_bytes, live_bytes))
}

/// Removes `{prefix}NNNN.yaml` files with `NNNN >= keep` from `dir`.
fn remove_stale(dir: &Path, prefix: &str, keep: usize) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let index = name
            .to_str()
            .and_then(|n| n.strip_prefix(prefix))
            .and_then(|n| n.strip_suffix(".yaml"))
            .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|n| n.parse::<usize>().ok());
        if index.is_some_and(|i| i >= keep) {
            fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// A small block-style YAML emitter (keys in the Value's order).

/// Appends one YAML document (without the `---` marker).
fn emit_document(out: &mut String, v: &Value) {
    match v {
        Value::Object(m) if !m.is_empty() => emit_map(out, m, 0, false),
        Value::Array(a) if !a.is_empty() => {
            for item in a {
                emit_seq_item(out, item, 0);
            }
        }
        _ => {
            emit_scalar(out, v);
            out.push('\n');
        }
    }
}

fn pad(out: &mut String, indent: usize) {
    out.extend(std::iter::repeat_n(' ', indent));
}

/// A block mapping at `indent`; with `first_inline` the first key follows a
/// `- ` already written.
fn emit_map(out: &mut String, m: &Map<String, Value>, indent: usize, first_inline: bool) {
    for (i, (k, v)) in m.iter().enumerate() {
        if i > 0 || !first_inline {
            pad(out, indent);
        }
        emit_str(out, k);
        out.push(':');
        match v {
            Value::Object(child) if !child.is_empty() => {
                out.push('\n');
                emit_map(out, child, indent + 2, false);
            }
            Value::Array(items) if !items.is_empty() => {
                // kubectl style: the `- ` of a list under a key at the key's indent.
                out.push('\n');
                for item in items {
                    emit_seq_item(out, item, indent);
                }
            }
            _ => {
                out.push(' ');
                emit_scalar(out, v);
                out.push('\n');
            }
        }
    }
}

/// One `- item` of a block sequence at `indent`.
fn emit_seq_item(out: &mut String, item: &Value, indent: usize) {
    pad(out, indent);
    out.push('-');
    match item {
        Value::Object(m) if !m.is_empty() => {
            out.push(' ');
            emit_map(out, m, indent + 2, true);
        }
        Value::Array(items) if !items.is_empty() => {
            out.push('\n');
            for inner in items {
                emit_seq_item(out, inner, indent + 2);
            }
        }
        _ => {
            out.push(' ');
            emit_scalar(out, item);
            out.push('\n');
        }
    }
}

/// A scalar, or an empty collection in flow style.
fn emit_scalar(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => {
            let s = n.to_string();
            // serde_json writes `1e20`; YAML 1.1 readers want `1.0e+20`.
            match s.find(['e', 'E']) {
                Some(pos) if n.is_f64() => {
                    let (mantissa, exp) = s.split_at(pos);
                    let exp = &exp[1..];
                    out.push_str(mantissa);
                    if !mantissa.contains('.') {
                        out.push_str(".0");
                    }
                    out.push('e');
                    if !exp.starts_with(['+', '-']) {
                        out.push('+');
                    }
                    out.push_str(exp);
                }
                _ => out.push_str(&s),
            }
        }
        Value::String(s) => emit_str(out, s),
        Value::Array(_) => out.push_str("[]"),
        Value::Object(_) => out.push_str("{}"),
    }
}

fn emit_str(out: &mut String, s: &str) {
    if needs_quotes(s) {
        push_double_quoted(out, s);
    } else {
        out.push_str(s);
    }
}

/// Characters that YAML does not allow unescaped (or reads as line breaks).
fn is_unprintable(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}'
        )
}

/// Whether a string must be quoted to be read back as the same string.
fn needs_quotes(s: &str) -> bool {
    let bytes = s.as_bytes();
    let (Some(&first), Some(&last)) = (bytes.first(), bytes.last()) else {
        return true;
    };
    if first == b' ' || last == b' ' || last == b':' {
        return true;
    }
    if matches!(
        first,
        b'-' | b'?'
            | b':'
            | b','
            | b'['
            | b']'
            | b'{'
            | b'}'
            | b'#'
            | b'&'
            | b'*'
            | b'!'
            | b'|'
            | b'>'
            | b'\''
            | b'"'
            | b'%'
            | b'@'
            | b'`'
    ) {
        return true;
    }
    if s.contains(": ") || s.contains(" #") || s.chars().any(is_unprintable) {
        return true;
    }
    looks_like_non_string(s)
}

/// Booleans, nulls and numbers of YAML 1.1 and 1.2, in any case (erring on
/// the side of quoting: anything starting with a digit counts).
fn looks_like_non_string(s: &str) -> bool {
    if s.len() <= 5 {
        let lower = s.to_ascii_lowercase();
        if matches!(
            lower.as_str(),
            "true" | "false" | "yes" | "no" | "on" | "off" | "y" | "n" | "null" | "~" | "<<" | "="
        ) {
            return true;
        }
    }
    let rest = s.strip_prefix(['+', '-']).unwrap_or(s);
    let b = rest.as_bytes();
    match b.first() {
        Some(c) if c.is_ascii_digit() => true,
        Some(b'.') => {
            b.get(1).is_some_and(|c| c.is_ascii_digit() || *c == b'.')
                || rest.eq_ignore_ascii_case(".inf")
                || rest.eq_ignore_ascii_case(".nan")
        }
        _ => false,
    }
}

/// JSON-style double quoting, which is valid YAML.
fn push_double_quoted(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if is_unprintable(c) => {
                let code = u32::from(c);
                out.push_str("\\u");
                for shift in [12, 8, 4, 0] {
                    out.push(char::from(HEX[((code >> shift) & 0xf) as usize]));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn opts(objects: usize, drift_percent: f64, seed: u64) -> SynthOptions {
        SynthOptions {
            objects,
            drift_percent,
            seed,
            namespaces: 20,
        }
    }

    fn id(v: &Value) -> (String, String, String) {
        let s = |p: &str| {
            v.pointer(p)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        (s("/kind"), s("/metadata/namespace"), s("/metadata/name"))
    }

    fn yaml_one(v: &Value) -> String {
        let mut out = String::new();
        emit_document(&mut out, v);
        out
    }

    fn parse(yaml: &str) -> Value {
        serde_saphyr::from_str::<Value>(yaml).unwrap_or_else(|e| panic!("{e}\n---\n{yaml}"))
    }

    /// Whether a fieldsV1 tree owns the value at `pointer` of `live`
    /// (walking `f:` fields and `k:{...}` list keys; an atomic leaf owns all below).
    fn owns(fields: &Value, live: &Value, pointer: &str) -> bool {
        let mut f = fields;
        let mut v = live;
        for token in pointer.split('/').skip(1) {
            let token = token.replace("~1", "/").replace("~0", "~");
            let (fkey, next) = match v {
                Value::Array(items) => {
                    let item = &items[token.parse::<usize>().unwrap()];
                    let key = if let Some(name) = item.get("name") {
                        format!("k:{{\"name\":{name}}}")
                    } else {
                        return false;
                    };
                    (key, item)
                }
                Value::Object(m) => (format!("f:{token}"), &m[&token]),
                _ => return false,
            };
            match f.get(&fkey) {
                Some(sub) => f = sub,
                None => return false,
            }
            v = next;
            if f.as_object().is_some_and(Map::is_empty) {
                return true; // a leaf: owns the value (and all below, if atomic)
            }
        }
        f.get(".").is_some()
    }

    fn entries(live: &Value) -> &Vec<Value> {
        live["metadata"]["managedFields"].as_array().unwrap()
    }

    #[test]
    fn default_options() {
        let d = SynthOptions::default();
        assert_eq!(
            (d.objects, d.drift_percent, d.seed, d.namespaces),
            (1000, 2.0, 42, 20)
        );
    }

    #[test]
    fn deterministic_for_a_seed() {
        let a = generate(&opts(600, 5.0, 7));
        let b = generate(&opts(600, 5.0, 7));
        assert_eq!(a, b);
        let c = generate(&opts(600, 5.0, 8));
        assert_ne!(a.live, c.live);
        assert_ne!(a.desired, c.desired);
    }

    #[test]
    fn object_counts_and_identities() {
        let pair = generate(&opts(1000, 10.0, 1));
        assert_eq!(pair.desired.len(), 1000);
        let count = |t: &str| pair.injected.iter().filter(|d| d.drift_type == t).count();
        assert_eq!(
            pair.live.len(),
            1000 - count("missing") + count("unmanaged")
        );
        let desired: BTreeSet<_> = pair.desired.iter().map(id).collect();
        let live: BTreeSet<_> = pair.live.iter().map(id).collect();
        assert_eq!(desired.len(), 1000, "desired identities are unique");
        assert_eq!(live.len(), pair.live.len(), "live identities are unique");
        assert_eq!(id(&pair.desired[42]).2, "app-00042");
        assert!(pair.desired.iter().all(|d| {
            let ns = d["metadata"]["namespace"].as_str().unwrap();
            ns.len() == 6 && ns.starts_with("ns-0") && ns[3..].parse::<usize>().unwrap() < 20
        }));
        // Live is shuffled relative to desired.
        let desired_order: Vec<_> = pair.desired.iter().map(id).collect();
        let live_order: Vec<_> = pair.live.iter().map(id).collect();
        assert_ne!(desired_order[..50], live_order[..50]);
    }

    #[test]
    fn kind_mix_is_roughly_as_asked() {
        let pair = generate(&opts(5000, 0.0, 3));
        let share = |k: &str| pair.desired.iter().filter(|d| d["kind"] == k).count() as f64 / 50.0;
        for (kind, pct) in [
            ("Deployment", 30.0),
            ("Service", 25.0),
            ("ConfigMap", 25.0),
            ("Secret", 10.0),
            ("ServiceAccount", 5.0),
            ("Role", 5.0),
        ] {
            assert!((share(kind) - pct).abs() < 2.5, "{kind}: {}", share(kind));
        }
    }

    #[test]
    fn injected_count_follows_drift_percent() {
        for (objects, pct, expected) in [
            (1000, 2.0, 20),
            (1000, 0.0, 0),
            (333, 10.0, 33),
            (50, 100.0, 50),
            (10, 250.0, 10),
        ] {
            let pair = generate(&opts(objects, pct, 11));
            assert_eq!(
                pair.injected.len(),
                expected,
                "{objects} objects at {pct} %"
            );
            // At most one drift per object.
            let ids: BTreeSet<_> = pair
                .injected
                .iter()
                .map(|d| (&d.kind, &d.namespace, &d.name))
                .collect();
            assert_eq!(ids.len(), pair.injected.len());
        }
        let pair = generate(&opts(2000, 10.0, 5));
        let mut seen = BTreeSet::new();
        for d in &pair.injected {
            seen.insert((
                d.drift_type,
                d.manager.as_deref().unwrap_or("-"),
                d.kind.as_str(),
            ));
        }
        for expected in [
            ("modified", "kubectl-set", "Deployment"),
            ("modified", "kubectl-scale", "Deployment"),
            ("modified", "kubectl-edit", "Deployment"),
            ("modified", "kubectl-edit", "ConfigMap"),
            ("modified", "kubectl-patch", "Role"),
            ("unmanaged", "kubectl-create", "ConfigMap"),
        ] {
            assert!(seen.contains(&expected), "{expected:?} in {seen:?}");
        }
        assert!(pair.injected.iter().any(|d| d.drift_type == "missing"));
    }

    #[test]
    fn injected_drift_is_the_truth() {
        let pair = generate(&opts(3000, 10.0, 9));
        let desired: std::collections::BTreeMap<_, _> =
            pair.desired.iter().map(|d| (id(d), d)).collect();
        let live: std::collections::BTreeMap<_, _> = pair.live.iter().map(|l| (id(l), l)).collect();
        let drifted: BTreeSet<_> = pair
            .injected
            .iter()
            .map(|d| (d.kind.clone(), d.namespace.clone().unwrap(), d.name.clone()))
            .collect();
        for d in &pair.injected {
            let key = (d.kind.clone(), d.namespace.clone().unwrap(), d.name.clone());
            match d.drift_type {
                "missing" => {
                    assert!(desired.contains_key(&key) && !live.contains_key(&key));
                    assert!(d.path.is_none() && d.manager.is_none());
                }
                "unmanaged" => {
                    assert!(!desired.contains_key(&key));
                    let l = live[&key];
                    let md = &l["metadata"];
                    assert!(md.get("annotations").is_none() && md.get("ownerReferences").is_none());
                    assert_eq!(entries(l).len(), 1);
                    assert_eq!(entries(l)[0]["manager"], "kubectl-create");
                    assert!(!l["data"].as_object().unwrap().is_empty());
                }
                "modified" => {
                    let l = live[&key];
                    let dv = desired[&key];
                    let path = d.path.as_deref().unwrap();
                    let manager = d.manager.as_deref().unwrap();
                    let now = l
                        .pointer(path)
                        .unwrap_or_else(|| panic!("{path} in {key:?}"));
                    // The desired value at the same place differs (or is absent).
                    let before = dv.pointer(path);
                    match path {
                        "/spec/replicas" => {
                            assert_ne!(Some(now), Some(before.unwrap_or(&Value::from(1))))
                        }
                        _ => assert_ne!(Some(now), before, "{path}"),
                    }
                    let entries = entries(l);
                    let applier = &entries[0];
                    assert_eq!(applier["manager"], APPLIER);
                    let mine = entries.iter().find(|e| e["manager"] == manager).unwrap();
                    assert_eq!(mine["operation"], "Update");
                    assert!(mine["time"].as_str() > applier["time"].as_str());
                    assert!(owns(&mine["fieldsV1"], l, path), "{manager} owns {path}");
                    assert!(
                        !owns(&applier["fieldsV1"], l, path),
                        "applier released {path}"
                    );
                }
                other => panic!("unknown drift type {other}"),
            }
        }
        // Everything not drifted: the applier owns what it applied, and the
        // last-applied annotation is the desired object.
        for (key, l) in &live {
            if drifted.contains(key) {
                continue;
            }
            let la = l["metadata"]["annotations"][LAST_APPLIED].as_str().unwrap();
            assert!(la.ends_with('\n'));
            let la: Value = serde_json::from_str(la).unwrap();
            assert_eq!(&la, desired[key]);
            let applier = &entries(l)[0]["fieldsV1"];
            if key.0 == "Deployment" {
                for p in [
                    "/spec/template/spec/containers/0/image",
                    "/spec/replicas",
                    "/spec/template/spec/containers/0/env/0",
                    "/spec/template/spec/containers/0/resources/requests/cpu",
                    "/spec/template/spec/containers/0/readinessProbe/httpGet/scheme",
                ] {
                    assert!(owns(applier, l, p), "{p}");
                }
            }
        }
    }

    #[test]
    fn live_objects_look_like_the_api_server() {
        let pair = generate(&opts(400, 0.0, 21));
        fn sorted(v: &Value) -> bool {
            match v {
                Value::Object(m) => {
                    m.keys().zip(m.keys().skip(1)).all(|(a, b)| a < b) && m.values().all(sorted)
                }
                Value::Array(a) => a.iter().all(sorted),
                _ => true,
            }
        }
        let dep = pair
            .live
            .iter()
            .find(|l| l["kind"] == "Deployment")
            .unwrap();
        assert_eq!(dep["spec"]["progressDeadlineSeconds"], 600);
        assert_eq!(dep["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
        assert_eq!(
            dep["spec"]["template"]["metadata"]["creationTimestamp"],
            Value::Null
        );
        assert_eq!(dep["spec"]["template"]["spec"]["dnsPolicy"], "ClusterFirst");
        let c = &dep["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c["terminationMessagePath"], "/dev/termination-log");
        assert_eq!(c["readinessProbe"]["httpGet"]["scheme"], "HTTP");
        assert_eq!(c["ports"][0]["protocol"], "TCP");
        assert_eq!(dep["metadata"]["generation"], 1);
        assert_eq!(dep["metadata"]["annotations"][REVISION], "1");
        assert!(dep["status"]["conditions"].as_array().unwrap().len() == 2);
        let fields = &entries(dep)[0]["fieldsV1"];
        let port = c["ports"][0]["containerPort"].as_u64().unwrap();
        let ports = &fields["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"app\"}"]
            ["f:ports"];
        assert!(
            ports
                .get(format!(
                    "k:{{\"containerPort\":{port},\"protocol\":\"TCP\"}}"
                ))
                .is_some()
        );
        assert!(ports.get(".").is_some());
        assert_eq!(entries(dep)[1]["manager"], CONTROLLER);
        assert_eq!(entries(dep)[1]["subresource"], "status");

        let svc = pair.live.iter().find(|l| l["kind"] == "Service").unwrap();
        assert_eq!(svc["spec"]["ipFamilies"], json!(["IPv4"]));
        assert_eq!(svc["spec"]["clusterIPs"][0], svc["spec"]["clusterIP"]);
        assert!(svc["spec"]["ports"][0]["targetPort"].is_u64());
        assert_eq!(svc["status"], json!({"loadBalancer": {}}));
        let secret = pair.live.iter().find(|l| l["kind"] == "Secret").unwrap();
        assert_eq!(secret["type"], "Opaque");

        // Quantity and targetPort spellings differ somewhere, as asked.
        let spelled = |p: &str, a: Value, b: Value| {
            pair.desired.iter().any(|d| {
                d.pointer(p) == Some(&a) && {
                    let l = pair.live.iter().find(|l| id(l) == id(d)).unwrap();
                    l.pointer(p) == Some(&b)
                }
            })
        };
        let cpu = "/spec/template/spec/containers/0/resources/requests/cpu";
        assert!(
            spelled(cpu, json!("1000m"), json!("1")) || spelled(cpu, json!(0.5), json!("500m"))
        );
        assert!(
            pair.live.iter().all(sorted),
            "live keys in alphabetical order"
        );
        assert!(
            pair.desired
                .iter()
                .any(|d| d["kind"] == "Service" && d["spec"]["ports"][0]["targetPort"].is_string())
        );
    }

    #[test]
    fn quoting_rules() {
        for s in [
            "",
            " a",
            "a ",
            "true",
            "False",
            "YES",
            "no",
            "On",
            "off",
            "y",
            "N",
            "null",
            "NULL",
            "~",
            "8080",
            "1.5",
            "-1",
            "+1",
            ".5",
            "1e3",
            "0x10",
            ".inf",
            "-.Inf",
            ".NaN",
            "a: b",
            "a #b",
            "a:",
            "-x",
            "?x",
            ":x",
            ",x",
            "[x",
            "]x",
            "{x",
            "}x",
            "#x",
            "&x",
            "*x",
            "!x",
            "|x",
            ">x",
            "'x",
            "\"x",
            "%x",
            "@x",
            "`x",
            "a\nb",
            "a\tb",
            "<<",
            "...",
            "---",
            "2024-01-01T00:00:00Z",
            "\u{2028}",
        ] {
            assert!(needs_quotes(s), "{s:?} needs quotes");
        }
        for s in [
            "app",
            "app-00042",
            "a:b",
            "a#b",
            "k:{\"name\":\"app\"}",
            ".",
            "f:kubectl.kubernetes.io/last-applied-configuration",
            "registry.example.com/x:1.2.3",
            "Europe/Berlin",
            "hello, world",
            "ClusterFirst",
            "é",
        ] {
            assert!(!needs_quotes(s), "{s:?} needs no quotes");
        }
    }

    #[test]
    fn yaml_round_trips_tricky_values() {
        let mut data = Map::new();
        for (i, s) in [
            "",
            " a",
            "a ",
            "true",
            "False",
            "yes",
            "no",
            "on",
            "OFF",
            "y",
            "n",
            "null",
            "~",
            "8080",
            "1.5",
            "-1",
            "+1",
            ".5",
            "1e3",
            "0x10",
            "0o17",
            "012",
            "1_000",
            "1:20",
            ".inf",
            "-.inf",
            ".nan",
            "a: b",
            "a #b",
            "a:",
            "- x",
            "? x",
            ": x",
            "[a, b]",
            "{a: b}",
            "#c",
            "&a",
            "*a",
            "!t",
            "|",
            ">",
            "'s'",
            "\"d\"",
            "%x",
            "@x",
            "`x",
            "a\nb",
            "a\n",
            "\n",
            "a\tb",
            "\t",
            "<<",
            "=",
            "...",
            "---",
            "--- x",
            "2024-01-01",
            "2024-01-01T00:00:00Z",
            "back\\slash",
            "\u{7f}\u{85}\u{2028}\u{feff}\u{1}",
            "é ✓ 🚀",
            ".",
            "k:{\"a\":1}",
        ]
        .iter()
        .enumerate()
        {
            data.insert(format!("k{i:02}"), Value::from(*s));
            data.insert((*s).to_owned(), Value::from(i));
        }
        let v = json!({
            "data": data,
            "numbers": [0, 1, -1, 0.5, 1.0, 1e20, -2.5e-7, 18446744073709551615u64, -9223372036854775808i64],
            "nested": [[1, [2, []]], {}, [], [{}], [{"a": [{"b": null}]}], null, true, false],
            "empty": {"map": {}, "list": [], "string": ""},
        });
        assert_eq!(parse(&yaml_one(&v)), v);
        for s in ["plain", "", "true", "a\nb"] {
            assert_eq!(parse(&yaml_one(&Value::from(s))), Value::from(s));
        }
        assert_eq!(
            parse(&yaml_one(&json!([1, "x", {"a": 1}]))),
            json!([1, "x", {"a": 1}])
        );
    }

    #[test]
    fn yaml_round_trips_generated_objects() {
        let pair = generate(&opts(300, 20.0, 4));
        for v in pair
            .desired
            .iter()
            .take(60)
            .chain(pair.live.iter().take(60))
        {
            assert_eq!(&parse(&yaml_one(v)), v);
        }
        // The kubectl layout: lists at their key's indent, fieldsV1 keys plain.
        let dep = pair
            .live
            .iter()
            .find(|l| l["kind"] == "Deployment")
            .unwrap();
        let text = yaml_one(dep);
        assert!(
            text.contains("\n      containers:\n      - env:\n        - name: "),
            "{text}"
        );
        assert!(text.contains("k:{\"name\":\"app\"}:\n"), "{text}");
        assert!(text.contains(".: {}\n"), "{text}");
        assert!(text.contains("creationTimestamp: null\n"), "{text}");
    }

    #[test]
    fn write_pair_round_trips() {
        let pair = generate(&opts(1100, 5.0, 12));
        let dir = std::env::temp_dir().join(format!("envdrift-synth-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        // A stale file from a "bigger" earlier run, and a foreign file.
        fs::create_dir_all(dir.join("desired")).unwrap();
        fs::write(dir.join("desired/desired-0099.yaml"), "stale").unwrap();
        fs::write(dir.join("desired/README"), "keep").unwrap();

        let (desired_bytes, live_bytes) = write_pair(&pair, &dir).unwrap();
        let read_side = |side: &str| -> (Vec<String>, u64) {
            let mut names: Vec<String> = fs::read_dir(dir.join(side))
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .filter(|n| n.ends_with(".yaml"))
                .collect();
            names.sort();
            let texts: Vec<String> = names
                .iter()
                .map(|n| fs::read_to_string(dir.join(side).join(n)).unwrap())
                .collect();
            let bytes = texts.iter().map(|t| t.len() as u64).sum();
            (texts, bytes)
        };
        let (desired_texts, bytes) = read_side("desired");
        assert_eq!(bytes, desired_bytes);
        assert_eq!(desired_texts.len(), 6); // 1100 / 200
        assert!(dir.join("desired/README").exists());
        let mut desired = Vec::new();
        for t in &desired_texts {
            desired.extend(serde_saphyr::from_multiple::<Value>(t).unwrap());
        }
        assert_eq!(desired, pair.desired);

        let (live_texts, bytes) = read_side("live");
        assert_eq!(bytes, live_bytes);
        assert_eq!(live_texts.len(), pair.live.len().div_ceil(500));
        let mut live = Vec::new();
        for t in &live_texts {
            let list = parse(t);
            assert_eq!(list["kind"], "List");
            assert_eq!(list["apiVersion"], "v1");
            assert_eq!(list["metadata"], json!({"resourceVersion": ""}));
            live.extend(list["items"].as_array().unwrap().iter().cloned());
        }
        assert_eq!(live, pair.live);

        let truth: Value =
            serde_json::from_str(&fs::read_to_string(dir.join("injected.json")).unwrap()).unwrap();
        let truth = truth.as_array().unwrap();
        assert_eq!(truth.len(), pair.injected.len());
        assert_eq!(truth[0]["name"], pair.injected[0].name.as_str());
        assert_eq!(truth[0]["drift_type"], pair.injected[0].drift_type);

        // A smaller pair in the same place leaves no stale files behind.
        write_pair(&generate(&opts(10, 0.0, 1)), &dir).unwrap();
        assert_eq!(read_side("desired").0.len(), 1);
        assert_eq!(read_side("live").0.len(), 1);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn threads_do_not_change_the_result() {
        let o = opts(2 * OBJECTS_PER_THREAD + 7, 3.0, 77);
        let pair = generate(&o);
        let (kinds, plan, unmanaged) = layout(&o);
        let (desired, live, injected) = build_range(&o, 0, &kinds, &plan, maps_are_sorted());
        assert_eq!(desired, pair.desired);
        assert_eq!(
            injected[..],
            pair.injected[..pair.injected.len() - unmanaged]
        );
        let ids = |v: &[Value]| {
            v.iter()
                .map(|l| (id(l), l.clone()))
                .collect::<std::collections::BTreeMap<_, _>>()
        };
        let shuffled = ids(&pair.live);
        for (key, l) in ids(&live) {
            assert_eq!(shuffled[&key], l);
        }
    }

    #[test]
    fn tiny_and_degenerate_options() {
        let empty = generate(&opts(0, 50.0, 1));
        assert!(empty.desired.is_empty() && empty.live.is_empty() && empty.injected.is_empty());
        let one_ns = generate(&SynthOptions {
            namespaces: 0,
            ..opts(20, f64::NAN, 1)
        });
        assert!(one_ns.injected.is_empty());
        assert!(
            one_ns
                .desired
                .iter()
                .all(|d| d["metadata"]["namespace"] == "ns-000")
        );
        // More drift than Roles/Deployments available still gives the exact count.
        let all = generate(&opts(5, 100.0, 2));
        assert_eq!(all.injected.len(), 5);
    }

    #[test]
    fn helpers() {
        assert_eq!(timestamp(BASE_TIME), "2024-01-01T00:00:00Z");
        assert_eq!(timestamp(951_827_696), "2000-02-29T12:34:56Z");
        assert_eq!(timestamp(0), "1970-01-01T00:00:00Z");
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(pointer_token("a/b~c"), "a~1b~0c");
        let u = uuid(&mut Rng::stream(1, 2, 3));
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert_eq!(name_key("app"), "k:{\"name\":\"app\"}");
    }
}
