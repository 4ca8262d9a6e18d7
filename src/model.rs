//! The core data types: [`ResourceKey`], [`Object`], [`Snapshot`], [`Drift`] and [`FieldChange`].
//!
//! Everything here is plain data: sources build [`Snapshot`]s, the engine in
//! [`crate::diff`] turns two snapshots into [`Drift`]s, renderers in [`crate::report`]
//! consume them.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Identity of a Kubernetes object across both sides of a comparison.
///
/// The API version is deliberately *not* part of the identity: `apps/v1` and
/// `apps/v1beta2` of one Deployment are the same object. The version of each side
/// is kept on its [`Object`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ResourceKey {
    /// API group, empty for the core group (`v1`).
    pub group: String,
    pub kind: String,
    /// `None` for cluster-scoped objects.
    pub namespace: Option<String>,
    pub name: String,
}

impl ResourceKey {
    /// The group of an `apiVersion` string: `apps/v1` → `apps`, `v1` → ``.
    pub fn group_of(api_version: &str) -> &str {
        match api_version.split_once('/') {
            Some((group, _)) => group,
            None => "",
        }
    }

    /// `Kind` or `Kind.group`, the way kubectl names a resource type.
    pub(crate) fn kind_with_group(&self) -> String {
        if self.group.is_empty() {
            self.kind.clone()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }
}

impl fmt::Display for ResourceKey {
    /// `Deployment shop/web`, `ClusterRole view`, `Certificate.cert-manager.io shop/tls`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = self.kind_with_group();
        match &self.namespace {
            Some(ns) => write!(f, "{kind} {ns}/{}", self.name),
            None => write!(f, "{kind} {}", self.name),
        }
    }
}

/// Where an object came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum Origin {
    /// A manifest file; `line` is 1-based, the first line of the object's document or list item.
    File {
        path: PathBuf,
        line: usize,
        /// The Git commit the file was read at, when it came from a repository.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        commit: Option<String>,
    },
    /// Read from a cluster.
    Live {
        #[serde(skip_serializing_if = "Option::is_none", default)]
        resource_version: Option<String>,
    },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File { path, line, commit } => {
                write!(f, "{}:{line}", path.display())?;
                if let Some(c) = commit {
                    write!(f, " @ {}", &c[..c.len().min(12)])?;
                }
                Ok(())
            }
            Origin::Live { resource_version } => match resource_version {
                Some(rv) => write!(f, "live (resourceVersion {rv})"),
                None => write!(f, "live"),
            },
        }
    }
}

/// One Kubernetes object: its raw JSON value (as read, Secret values already hashed)
/// and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Object {
    pub value: Value,
    pub origin: Origin,
    /// Set when an environment mapping rewrote the object (see [`crate::diff::envmap`]).
    pub mapped: Option<Box<MappedFrom>>,
}

/// What an environment mapping changed in an object.
#[derive(Debug, Clone, PartialEq)]
pub struct MappedFrom {
    /// The key before the mapping.
    pub key: ResourceKey,
    /// JSON Pointers of the string values the mapping rewrote.
    pub rewritten: std::collections::BTreeSet<String>,
}

impl Object {
    /// An object that was not renamed by a mapping.
    pub fn new(value: Value, origin: Origin) -> Object {
        Object {
            value,
            origin,
            mapped: None,
        }
    }
}

impl Object {
    pub fn api_version(&self) -> &str {
        self.value
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    pub fn metadata(&self) -> Option<&serde_json::Map<String, Value>> {
        self.value.get("metadata").and_then(Value::as_object)
    }

    /// True when the object has `metadata.ownerReferences` (it is owned by another object).
    pub(crate) fn is_owned(&self) -> bool {
        self.metadata()
            .and_then(|m| m.get("ownerReferences"))
            .and_then(Value::as_array)
            .is_some_and(|refs| !refs.is_empty())
    }
}

/// Where a snapshot was taken from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceRef {
    /// Environment name (`staging`), or a description such as `desired` on the CLI.
    pub env: String,
    /// Human-readable description: paths, `git:URL@REF:PATH`, `context/cluster`.
    pub description: String,
    /// The Git commit, when the snapshot was read from a repository.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub commit: Option<String>,
    /// Why the snapshot may be out of date, when it is: a Git fetch failed and the last
    /// fetched commit was used instead.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub stale: Option<String>,
}

/// An input problem: a file that could not be read or parsed, a duplicate, an object
/// without a name. The rest of the input is still compared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputError {
    /// Which side: `desired`, `live`, `from`, `to`, or an environment name.
    pub side: String,
    /// File path (or other source description).
    pub source: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
    pub message: String,
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.side, self.source)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(col) = self.column {
                write!(f, ":{col}")?;
            }
        }
        write!(f, ": {}", self.message)
    }
}

/// A file that was read but skipped because it holds no Kubernetes object
/// (a `kustomization.yaml`, a `values.yaml`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedInput {
    pub source: String,
    pub reason: String,
}

/// A scope the snapshot could not read (a kind that could not be listed). Objects in an
/// unknown scope are never reported as missing or unmanaged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnknownScope {
    pub group: String,
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub reason: String,
}

impl UnknownScope {
    /// True when `key` is in this scope. `kind: "*"` covers every kind of the group (a
    /// group whose discovery failed).
    pub fn covers(&self, key: &ResourceKey) -> bool {
        self.group == key.group
            && (self.kind == key.kind || self.kind == "*")
            && (self.namespace.is_none() || self.namespace == key.namespace)
    }
}

/// All objects of one side, by key.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub source: Option<SourceRef>,
    /// RFC 3339 time the snapshot was taken, when known.
    pub taken_at: Option<String>,
    pub objects: BTreeMap<ResourceKey, Object>,
    pub errors: Vec<InputError>,
    pub skipped: Vec<SkippedInput>,
    pub unknown: Vec<UnknownScope>,
}

impl Snapshot {}

/// How bad a change is. Ordered: `Info < Low < Medium < High < Critical`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    #[default]
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 5] = [
        Severity::Critical,
        Severity::High,
        Severity::Medium,
        Severity::Low,
        Severity::Info,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Severity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "info" => Ok(Severity::Info),
            "low" => Ok(Severity::Low),
            "medium" => Ok(Severity::Medium),
            "high" => Ok(Severity::High),
            "critical" => Ok(Severity::Critical),
            other => Err(format!(
                "unknown severity `{other}` (choose from: critical, high, medium, low, info)"
            )),
        }
    }
}

/// What a changed field is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Category {
    Image,
    Scaling,
    Resources,
    ConfigData,
    SecretData,
    Rbac,
    Networking,
    SecurityContext,
    Scheduling,
    Metadata,
    /// A whole resource is missing or unmanaged.
    Presence,
    Other,
}

impl Category {
    pub const ALL: [Category; 12] = [
        Category::Image,
        Category::Scaling,
        Category::Resources,
        Category::ConfigData,
        Category::SecretData,
        Category::Rbac,
        Category::Networking,
        Category::SecurityContext,
        Category::Scheduling,
        Category::Metadata,
        Category::Presence,
        Category::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Category::Image => "image",
            Category::Scaling => "scaling",
            Category::Resources => "resources",
            Category::ConfigData => "config-data",
            Category::SecretData => "secret-data",
            Category::Rbac => "rbac",
            Category::Networking => "networking",
            Category::SecurityContext => "security-context",
            Category::Scheduling => "scheduling",
            Category::Metadata => "metadata",
            Category::Presence => "presence",
            Category::Other => "other",
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Category {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Category::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| {
                let all: Vec<&str> = Category::ALL.iter().map(|c| c.as_str()).collect();
                format!("unknown category `{s}` (choose from: {})", all.join(", "))
            })
    }
}

/// Why a field drifted, derived from who wrote it (see [`crate::classify`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Cause {
    /// A person changed the live object (`kubectl edit/patch/set/scale/label`, a dashboard).
    Manual,
    /// A controller changed it.
    Controller,
    /// The GitOps applier itself: a pending sync, or a field removed from Git but not pruned.
    Gitops,
    /// The object is not live (deleted, or never synced).
    Deleted,
    /// The object exists live but not in the desired state.
    Unmanaged,
    Unknown,
}

impl Cause {
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Manual => "manual",
            Cause::Controller => "controller",
            Cause::Gitops => "gitops",
            Cause::Deleted => "deleted",
            Cause::Unmanaged => "unmanaged",
            Cause::Unknown => "unknown",
        }
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a field differs, seen from the live side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeOp {
    /// Present on both sides with different values.
    Changed,
    /// Present live only.
    Added,
    /// Present in desired only (gone from live).
    Removed,
}

impl ChangeOp {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeOp::Changed => "changed",
            ChangeOp::Added => "added",
            ChangeOp::Removed => "removed",
        }
    }
}

/// Who last wrote a drifted field, from the live object's `managedFields`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attribution {
    pub manager: String,
    /// `Update` or `Apply`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    /// RFC 3339 time of that manager's last write.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    /// `scale`, `status` when the write went through a subresource.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subresource: Option<String>,
}

/// One field-level difference.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldChange {
    /// JSON Pointer into the live object (for `removed`: into the desired object).
    pub path: String,
    /// Readable path with keyed list items by key: `spec.template.spec.containers[name=web].image`.
    pub field: String,
    /// JSON Pointer into the desired object (list indices as in desired; for `added`, the
    /// parent's pointer plus the key, or `-` for a list item). Used to edit manifest files.
    #[serde(skip)]
    pub desired_path: String,
    pub op: ChangeOp,
    /// Desired value (`null` when absent). Secret values are `sha256:` hashes.
    pub desired: Value,
    /// Live value (`null` when absent). Secret values are `sha256:` hashes.
    pub live: Value,
    pub category: Category,
    pub severity: Severity,
    pub cause: Cause,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attribution: Option<Attribution>,
    /// Extra explanation (`removed from desired but still live (not pruned)`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Matched an expected-divergence rule (shown only with `--show-expected`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub expected: bool,
    /// The expected-divergence rule that matched (`compare.expected.rules[0] (why)`,
    /// `built-in: …`), for the web page's comparison matrix; not in the JSON output.
    #[serde(skip)]
    pub expected_rule: Option<std::sync::Arc<str>>,
    /// Environment comparisons: what the difference means for a promotion
    /// (`promotion-pending`, `hotfix-not-in-from`, `repository-differs`, `differs`,
    /// `key-missing-in-to`, `key-only-in-to`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finding: Option<String>,
    /// 1-based line of the field in the desired manifest file (for a field absent from
    /// desired: of its deepest existing ancestor), when the desired object comes from a
    /// plain YAML manifest. Filled by the run layer after the comparison (see
    /// [`crate::run`]); `None` from the engine, for JSON manifests and for rendered objects.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
}

/// The type of a resource-level drift.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DriftType {
    /// In desired, not live.
    Missing,
    /// Live, not desired, in a watched scope and not owned by another object.
    Unmanaged,
    /// On both sides with field changes.
    Modified,
}

impl DriftType {
    pub fn as_str(self) -> &'static str {
        match self {
            DriftType::Missing => "missing",
            DriftType::Unmanaged => "unmanaged",
            DriftType::Modified => "modified",
        }
    }
}

/// A suggested fix for a drift.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Remedy {
    /// RFC 6902 operations that turn live into desired (modified drifts). Secret values
    /// are replaced by placeholders.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch: Option<Value>,
    /// Whether the patch was applied to the live object inside the engine and the
    /// re-comparison showed no drift.
    pub verified: bool,
    /// Why verification failed, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verification_error: Option<String>,
    /// A ready command: `kubectl patch …`, `kubectl apply -f -`, `kubectl delete …`.
    pub kubectl: String,
    /// For missing objects: the manifest to apply (Secret values redacted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifest: Option<Value>,
    /// Human advice (`adopt into Git, or delete`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// True when the patch or manifest holds placeholders instead of Secret values.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub redacted: bool,
    /// Environment comparisons: the patch the other way (make `from` match `to`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reverse: Option<ReverseFix>,
    /// The other way round: the change to the Git manifest that adopts live into Git
    /// (modified drifts of Git-sourced objects; filled by the source layer, not the engine).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adopt: Option<Adopt>,
}

/// The patch that makes the `from` side match the `to` side (environment comparisons).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReverseFix {
    pub patch: Value,
    pub verified: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verification_error: Option<String>,
    pub kubectl: String,
}

/// How to make Git match live for one drift.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Adopt {
    /// Repository-relative file to change, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// A unified diff (`git apply`-able, `a/` `b/` prefixes) against `file`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
    /// Where a rendered value most likely comes from, or field-level changes that could
    /// not be made as a file edit.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// One resource's difference.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Drift {
    #[serde(rename = "type")]
    pub drift_type: DriftType,
    pub severity: Severity,
    pub cause: Cause,
    pub resource: ResourceRef,
    /// Stable hash of the comparison pair, key, paths and both values.
    pub fingerprint: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub desired_origin: Option<Origin>,
    /// Every change is an expected divergence (only kept with `--show-expected`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub expected: bool,
    pub changes: Vec<FieldChange>,
    #[serde(flatten)]
    pub remedy: Remedy,
}

/// The resource a drift is about, as shown to people and in JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "camelCase")]
pub struct ResourceRef {
    pub api_version: String,
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
}

impl fmt::Display for ResourceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {ns}/{}", self.kind, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

/// Differences the engine saw but deliberately did not report, by reason (for the summary).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Suppressed {
    /// Live-only fields that match a server default.
    pub defaults: usize,
    /// Fields owned only by a controller (an HPA's `spec.replicas`).
    pub controller: usize,
    /// Fields matched by an ignore rule.
    pub ignored: usize,
    /// Live-only fields nobody applied (three-way knowledge says the server set them).
    pub server_set: usize,
    /// Differences matched by expected-divergence rules (environment comparisons).
    pub expected: usize,
    /// Objects that Argo CD or Flux annotations say not to report (IgnoreExtraneous,
    /// `ssa: Ignore`/`IfNotPresent`, `reconcile: disabled`; see [`crate::diff::gitops`]).
    pub annotated: usize,
    /// Per resource with expected divergences (environment comparisons): how many and which
    /// rules matched, for the web page's comparison matrix. Not in the JSON output.
    #[serde(skip)]
    pub expected_resources: Vec<ExpectedResource>,
}

/// A resource's expected divergences (environment comparisons).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedResource {
    /// `Kind namespace/name`, as [`ResourceRef`] shows it.
    pub resource: String,
    /// Fields matched by expected-divergence rules.
    pub fields: usize,
    /// Fields that differ otherwise (0: the resource is fully expected, no drift).
    pub other_fields: usize,
    /// The rules that matched, each once, in order.
    pub rules: Vec<String>,
}

impl Suppressed {
    pub fn add(&mut self, other: &Suppressed) {
        self.defaults += other.defaults;
        self.controller += other.controller;
        self.ignored += other.ignored;
        self.server_set += other.server_set;
        self.expected += other.expected;
        self.annotated += other.annotated;
        self.expected_resources
            .extend(other.expected_resources.iter().cloned());
    }
}
