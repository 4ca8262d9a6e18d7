//! The pure drift engine: two [`Snapshot`]s in, a [`DiffResult`] out. No I/O.
//!
//! Entry point: [`compare`]. Objects are paired by [`ResourceKey`]; each pair is compared
//! field by field ([`compare::compare_with_schema`]), changes are classified
//! ([`crate::classify`]) and turned into a patch that is verified by applying it to the
//! live object and comparing again ([`patch`]).
//!
//! ```
//! use envdrift::diff::{compare, Options};
//! use envdrift::source::dump::{load_text, LoadOptions};
//!
//! let desired = load_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app}\ndata: {LOG: info}\n",
//!     "git", &LoadOptions::default());
//! let live = load_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app, namespace: default}\ndata: {LOG: debug}\n",
//!     "cluster", &LoadOptions { side: "live".into(), ..LoadOptions::default() });
//! let result = compare(&desired, &live, &Options::default());
//! assert_eq!(result.drifts.len(), 1);
//! assert_eq!(result.drifts[0].changes[0].path, "/data/LOG");
//! assert!(result.drifts[0].remedy.verified);
//! ```

pub mod compare;
pub mod defaults;
pub mod desired;
pub mod envmap;
pub mod gitops;
pub mod ignore;
pub mod jq;
pub mod managed;
pub mod normalize;
pub mod patch;
pub mod schema;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::classify::Classifier;
use crate::diff::schema::Registry;
use crate::model::{
    Cause, ChangeOp, Drift, DriftType, FieldChange, Object, Origin, Remedy, ResourceKey,
    ResourceRef, ReverseFix, Severity, Snapshot, Suppressed,
};
use crate::pattern::ObjectSelector;
use crate::redact::short_hash;
use compare::{RawChange, compare_with_schema};
pub use desired::{CompactSnapshot, DesiredIndex};
use ignore::IgnoreSet;

/// Which live objects count as "unmanaged" when they are not in desired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnmanagedScope {
    /// Report unmanaged objects at all. Default: true.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Namespaces (globs) watched for unmanaged objects. Default: the namespaces that hold
    /// desired objects, plus desired Namespace objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<Vec<String>>,
    /// Objects never reported as unmanaged. Default: events, endpoints, endpoint slices,
    /// leases, controller revisions, the `default` ServiceAccount, `kube-root-ca.crt`,
    /// service-account token Secrets and Helm release Secrets.
    #[serde(default = "default_excludes")]
    pub exclude: Vec<ObjectSelector>,
}

fn yes() -> bool {
    true
}

fn sel(group: Option<&str>, kind: &str, name: Option<&str>) -> ObjectSelector {
    ObjectSelector {
        group: group.map(str::to_string),
        kind: Some(kind.to_string()),
        namespace: None,
        name: name.map(str::to_string),
    }
}

fn default_excludes() -> Vec<ObjectSelector> {
    vec![
        sel(None, "Event", None),
        sel(Some(""), "Endpoints", None),
        sel(Some("discovery.k8s.io"), "EndpointSlice", None),
        sel(Some("coordination.k8s.io"), "Lease", None),
        sel(Some("apps"), "ControllerRevision", None),
        sel(Some(""), "ServiceAccount", Some("default")),
        sel(Some(""), "ConfigMap", Some("kube-root-ca.crt")),
        sel(Some(""), "Secret", Some("sh.helm.release.v1.*")),
    ]
}

impl Default for UnmanagedScope {
    fn default() -> Self {
        UnmanagedScope {
            enabled: true,
            namespaces: None,
            exclude: default_excludes(),
        }
    }
}

/// Everything the engine needs besides the two snapshots.
#[derive(Debug, Clone)]
pub struct Options {
    /// Names of the two sides (`desired`/`live`, `staging`/`production`), for messages
    /// only: fingerprints never depend on how the sides are named.
    pub pair: (String, String),
    pub ignore: Arc<IgnoreSet>,
    pub classifier: Arc<Classifier>,
    /// Use last-applied-configuration and GitOps managers' entries (default true).
    pub three_way: bool,
    pub unmanaged: UnmanagedScope,
    /// Verify every patch by applying it and comparing again (default true).
    pub verify_patches: bool,
    /// Both sides are complete live objects (environment vs environment): a field present
    /// on one side only is a difference after defaults, whichever side it is on.
    pub symmetric: bool,
    /// Expected-divergence rules (environment comparisons): matching differences are
    /// expected, never drift.
    pub expected: Arc<IgnoreSet>,
    /// Keep expected differences in the result, marked `expected` (`--show-expected`).
    pub show_expected: bool,
    /// The environment mapping the `from` side went through (to map reverse patches back).
    pub mapping: Option<Arc<envmap::Mapping>>,
    /// Keep the key of every compared object pair in [`DiffResult::compared_keys`]
    /// (default false: only the CLI's JUnit output needs them).
    pub keep_compared: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            pair: ("desired".into(), "live".into()),
            ignore: Arc::default(),
            classifier: Arc::default(),
            three_way: true,
            unmanaged: UnmanagedScope::default(),
            verify_patches: true,
            symmetric: false,
            expected: Arc::default(),
            show_expected: false,
            mapping: None,
            keep_compared: false,
        }
    }
}

/// What a comparison found.
#[derive(Debug, Clone, Default)]
pub struct DiffResult {
    /// Sorted by severity (highest first), then resource.
    pub drifts: Vec<Drift>,
    /// Differences deliberately not reported, by reason.
    pub suppressed: Suppressed,
    /// Object pairs compared.
    pub compared: usize,
    /// With [`Options::keep_compared`]: the (live) keys of the compared pairs, sorted;
    /// else empty.
    pub compared_keys: Vec<ResourceKey>,
    /// Desired objects not checked because the live side could not read their kind.
    pub unknown: Vec<ResourceKey>,
    /// What the comparison wants said once, not per drift: kinds compared without a
    /// schema, CRD schemas that could not be read (sorted, each once).
    pub notes: Vec<String>,
}

/// Compares desired with live (see the module doc).
pub fn compare(desired: &Snapshot, live: &Snapshot, opts: &Options) -> DiffResult {
    let c = Comparison::new(desired, opts);
    let items: Vec<(&ResourceKey, &Object)> = live.objects.iter().collect();
    let partial = c.batch(&items);
    c.finish(vec![partial], &live.unknown)
}

/// What one batch of live objects yielded (see [`Comparison`]).
#[derive(Debug, Default, Clone)]
pub struct Partial {
    drifts: Vec<Drift>,
    suppressed: Suppressed,
    compared: usize,
    compared_keys: Vec<ResourceKey>,
    seen: Vec<ResourceKey>,
    notes: Vec<String>,
    /// The kinds whose schema the batch looked up (group, kind): a reused batch looks them
    /// up again, so that the registry's notes are those of a comparison.
    schema_kinds: BTreeSet<(String, String)>,
}

/// A comparison fed with live objects in batches, so that a large live side never has to
/// be held in memory at once: `new`, then [`Comparison::batch`] for each batch (from any
/// thread), then [`Comparison::finish`].
///
/// The schema registry ([`crate::diff::schema`]) holds the CRDs of the desired side from the
/// start and those of each live batch before the batch is compared.
pub struct Comparison<'a> {
    desired: &'a dyn DesiredIndex,
    opts: &'a Options,
    scope: WatchedScope<'a>,
    schemas: Registry,
    /// Desired objects that carry a namespace although their kind may be cluster-scoped
    /// (the registry says so, or does not know), by group, kind and name: a live object of
    /// that name without a namespace is theirs (see [`Comparison::desired_for`]).
    namespaced_aliases: HashMap<(&'a str, &'a str, &'a str), &'a ResourceKey>,
    /// `opts` narrowed to objects' labels (see [`Comparison::opts_for`]), by which label
    /// rules matched: few distinct sets however many objects.
    narrowed: std::sync::Mutex<HashMap<Vec<bool>, Arc<Options>>>,
}

/// Whether a key's namespace is dropped because its kind is cluster-scoped, and the note
/// saying so.
fn dropped_namespace_note(key: &ResourceKey) -> String {
    format!(
        "{}/{}: the desired metadata.namespace {:?} is ignored: {} is cluster-scoped (kubectl drops it too)",
        key.kind,
        key.name,
        key.namespace.as_deref().unwrap_or(""),
        key.kind
    )
}

impl<'a> Comparison<'a> {
    pub fn new(desired: &'a dyn DesiredIndex, opts: &'a Options) -> Self {
        Self::with_schemas(desired, opts, Vec::new())
    }

    /// As [`Comparison::new`], with clusters' schema sets (their OpenAPI documents, see
    /// [`crate::source::kube`]) known from the start, the first one winning.
    pub fn with_schemas(
        desired: &'a dyn DesiredIndex,
        opts: &'a Options,
        cluster_schemas: Vec<Arc<crate::diff::schema::SchemaSet>>,
    ) -> Self {
        let schemas = Registry::from_objects(desired.parsed());
        for set in cluster_schemas {
            schemas.add_set(set);
        }
        let mut scope_of: HashMap<(&str, &str), Option<bool>> = HashMap::new();
        let mut namespaced_aliases = HashMap::new();
        for key in desired.keys() {
            if key.namespace.is_none() {
                continue;
            }
            let namespaced = *scope_of
                .entry((key.group.as_str(), key.kind.as_str()))
                .or_insert_with(|| schemas.get(&key.group, &key.kind).namespaced);
            if namespaced != Some(true) {
                namespaced_aliases.insert(
                    (key.group.as_str(), key.kind.as_str(), key.name.as_str()),
                    key,
                );
            }
        }
        Comparison {
            desired,
            opts,
            scope: WatchedScope::new(desired, &opts.unmanaged),
            schemas,
            namespaced_aliases,
            narrowed: std::sync::Mutex::default(),
        }
    }

    /// `opts` with its ignore, severity and expected-divergence rules narrowed to one object's labels, when
    /// some rule selects objects by label (else `opts` itself, at no cost). Narrowed sets
    /// are built once per combination of matching label rules.
    fn opts_for(&self, obj: &Object) -> std::borrow::Cow<'a, Options> {
        let opts = self.opts;
        if !opts.ignore.has_label_rules()
            && !opts.classifier.has_label_rules()
            && !opts.expected.has_label_rules()
        {
            return std::borrow::Cow::Borrowed(opts);
        }
        let labels = obj
            .value
            .pointer("/metadata/labels")
            .and_then(Value::as_object);
        let mut matched = opts.ignore.label_matches(labels);
        matched.extend(opts.classifier.label_matches(labels));
        matched.extend(opts.expected.label_matches(labels));
        let mut cache = self
            .narrowed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let o = cache
            .entry(matched)
            .or_insert_with(|| {
                let mut o = opts.clone();
                o.ignore = Arc::new(opts.ignore.for_labels(labels));
                o.classifier = Arc::new(opts.classifier.for_labels(labels));
                o.expected = Arc::new(opts.expected.for_labels(labels));
                Arc::new(o)
            })
            .clone();
        std::borrow::Cow::Owned(Options::clone(&o))
    }

    /// The desired object a live one is compared with: the one of the same key, or, for a
    /// live object without a namespace (its kind is cluster-scoped, whatever the desired
    /// side wrote), the desired object of the same kind and name that carries a namespace
    /// anyway. Returns the desired key too when it differs from the live one.
    fn desired_for(
        &self,
        key: &ResourceKey,
    ) -> Option<(std::borrow::Cow<'a, Object>, Option<&'a ResourceKey>)> {
        if let Some(d) = self.desired.get(key) {
            return Some((d, None));
        }
        if key.namespace.is_some() || self.namespaced_aliases.is_empty() {
            return None;
        }
        let dkey = self.namespaced_aliases.get(&(
            key.group.as_str(),
            key.kind.as_str(),
            key.name.as_str(),
        ))?;
        self.desired.get(dkey).map(|d| (d, Some(*dkey)))
    }

    /// Compares a batch of live objects with their desired counterparts.
    pub fn batch<K, O>(&self, live: &[(K, O)]) -> Partial
    where
        K: std::borrow::Borrow<ResourceKey> + Sync,
        O: std::borrow::Borrow<Object> + Sync,
    {
        self.batch_as(live, false).pop().unwrap_or_default()
    }

    /// [`Comparison::batch`] with one result per live object, in order (kept per object
    /// between runs, see [`crate::run::reuse`]).
    pub fn batch_each<K, O>(&self, live: &[(K, O)]) -> Vec<Partial>
    where
        K: std::borrow::Borrow<ResourceKey> + Sync,
        O: std::borrow::Borrow<Object> + Sync,
    {
        self.batch_as(live, true)
    }

    fn batch_as<K, O>(&self, live: &[(K, O)], each: bool) -> Vec<Partial>
    where
        K: std::borrow::Borrow<ResourceKey> + Sync,
        O: std::borrow::Borrow<Object> + Sync,
    {
        self.schemas
            .add_crds(live.iter().map(|(k, o)| (k.borrow(), o.borrow())));
        // (drift, suppressed, compared, desired alias, notes, schema looked up)
        type PerObject<'k> = (
            Option<Drift>,
            Suppressed,
            bool,
            Option<&'k ResourceKey>,
            Vec<String>,
            bool,
        );
        let per_object: Vec<PerObject<'a>> = live
            .par_iter()
            .map(|(k, l)| {
                let (key, l) = (k.borrow(), l.borrow());
                let desired = self.desired_for(key);
                let narrowed = self.opts_for(desired.as_ref().map_or(l, |(d, _)| d.as_ref()));
                let opts: &Options = &narrowed;
                if opts.ignore.ignores_object(key) {
                    return (None, Suppressed::default(), false, None, Vec::new(), false);
                }
                match desired {
                    // Comparing environments, objects owned by a controller (a CronJob's
                    // Jobs, ReplicaSets) follow their owner: compare the owners only.
                    Some((d, alias)) if opts.symmetric && (d.is_owned() || l.is_owned()) => {
                        (None, Suppressed::default(), false, alias, Vec::new(), false)
                    }
                    // Flux will not override it (ssa: Ignore / IfNotPresent, reconcile:
                    // disabled): its differences are not drift Flux would correct.
                    Some((d, alias))
                        if !opts.symmetric
                            && gitops::flux_policy(&[Some(&d.value), Some(&l.value)])
                                != gitops::FluxPolicy::Apply =>
                    {
                        let sup = Suppressed {
                            annotated: 1,
                            ..Suppressed::default()
                        };
                        (None, sup, true, alias, Vec::new(), false)
                    }
                    Some((d, alias)) => {
                        let schema = self.schemas.get(&key.group, &key.kind);
                        let mut notes = Vec::new();
                        let (drift, sup) = modified_drift(key, &d, l, opts, &schema, &mut notes);
                        (drift, sup, true, alias, notes, true)
                    }
                    None => {
                        let unmanaged = opts.unmanaged.enabled
                            && !l.is_owned()
                            && self.scope.watches(key, &l.value);
                        // Argo CD's IgnoreExtraneous, Flux's ssa: Ignore: not reported.
                        let annotated = unmanaged
                            && !opts.symmetric
                            && (gitops::argo_ignore_extraneous(&l.value)
                                || gitops::flux_policy(&[Some(&l.value)])
                                    == gitops::FluxPolicy::Ignore);
                        let sup = Suppressed {
                            annotated: usize::from(annotated),
                            ..Suppressed::default()
                        };
                        (
                            (unmanaged && !annotated).then(|| unmanaged_drift(key, l, opts)),
                            sup,
                            false,
                            None,
                            Vec::new(),
                            false,
                        )
                    }
                }
            })
            .collect();
        let mut out = Vec::with_capacity(if each { live.len() } else { 1 });
        out.push(Partial::default());
        for ((drift, sup, compared, alias, notes, schema), (k, _)) in
            per_object.into_iter().zip(live)
        {
            let k: &ResourceKey = k.borrow();
            if each && (out.len() > 1 || !out[0].seen.is_empty()) {
                out.push(Partial::default());
            }
            let Some(p) = out.last_mut() else { break };
            p.seen.push(k.clone());
            if schema && !p.schema_kinds.contains(&(k.group.clone(), k.kind.clone())) {
                p.schema_kinds.insert((k.group.clone(), k.kind.clone()));
            }
            p.notes.extend(notes);
            p.suppressed.add(&sup);
            p.compared += usize::from(compared);
            if compared && self.opts.keep_compared {
                p.compared_keys.push(k.clone());
            }
            p.drifts.extend(drift);
            if let Some(dkey) = alias {
                p.notes.push(dropped_namespace_note(dkey));
                p.seen.push(dkey.clone());
            }
        }
        if each && live.is_empty() {
            out.clear();
        }
        out
    }

    /// What a live object under each of `keys` would be compared with, as one digest: per
    /// key, its desired counterpart (the same key, or the namespaced alias of a
    /// cluster-scoped one) and that object's [`DesiredIndex::content_hash`], without
    /// parsing anything. Equal digests (with equal live objects, options and schemas) mean
    /// equal batch results. `None` when a counterpart has no content hash.
    pub fn counterparts_digest<'k>(
        &self,
        keys: impl IntoIterator<Item = &'k ResourceKey>,
    ) -> Option<[u8; 32]> {
        let mut h = Sha256::new();
        for key in keys {
            h.update(key.to_string().as_bytes());
            if self.desired.origin(key).is_some() {
                h.update(b"=");
                h.update(self.desired.content_hash(key)?);
            } else if key.namespace.is_none()
                && let Some(dkey) = self.namespaced_aliases.get(&(
                    key.group.as_str(),
                    key.kind.as_str(),
                    key.name.as_str(),
                ))
            {
                h.update(b"~");
                h.update(dkey.to_string().as_bytes());
                h.update(self.desired.content_hash(dkey)?);
            } else {
                h.update(b"-");
            }
            h.update([0]);
        }
        Some(h.finalize().into())
    }

    /// A digest of what every object's comparison depends on besides its pair, the
    /// options and the schemas: the scope unmanaged objects are looked for in.
    pub fn scope_digest(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(format!("{:?}", self.scope.namespaces).as_bytes());
        for ns in &self.scope.desired_namespaces {
            h.update(ns.as_bytes());
            h.update([0]);
        }
        h.update([1]);
        for (g, k) in &self.scope.cluster_kinds {
            h.update(g.as_bytes());
            h.update([0]);
            h.update(k.as_bytes());
            h.update([0]);
        }
        h.finalize().into()
    }

    /// See [`Registry::crd_fingerprint`]: the schemas this comparison has read so far.
    pub fn schemas_fingerprint(&self) -> Option<[u8; 32]> {
        self.schemas.crd_fingerprint()
    }

    /// Stands for [`Comparison::batch`] of a live batch whose earlier result `p` is reused:
    /// the batch's CRDs go into the registry (`crds`: the batch's CRD objects) and the
    /// schemas the batch looked up are looked up again (so the result's notes are the same).
    pub fn replay(&self, p: &Partial, crds: &[(ResourceKey, Object)]) {
        self.schemas.add_crds(crds.iter().map(|(k, o)| (k, o)));
        for (g, k) in &p.schema_kinds {
            self.schemas.get(g, k);
        }
    }

    /// Merges the batches and reports desired objects never seen live as missing (or as
    /// unknown when the live side could not read their kind).
    pub fn finish(
        &self,
        partials: Vec<Partial>,
        live_unknown: &[crate::model::UnknownScope],
    ) -> DiffResult {
        let mut result = DiffResult::default();
        let mut seen = std::collections::HashSet::new();
        let mut notes = BTreeSet::new();
        for p in partials {
            result.drifts.extend(p.drifts);
            result.suppressed.add(&p.suppressed);
            result.compared += p.compared;
            result.compared_keys.extend(p.compared_keys);
            seen.extend(p.seen);
            notes.extend(p.notes);
        }
        let mut per_file: Option<std::collections::HashMap<&std::path::Path, usize>> = None;
        for key in self.desired.keys() {
            if seen.contains(key) {
                continue;
            }
            let Some(d) = self.desired.get(key) else {
                continue;
            };
            let d: &Object = &d;
            if self.opts_for(d).ignore.ignores_object(key) {
                continue;
            }
            // Comparing environments, `from` is a live dump too: objects owned by others
            // (ReplicaSets, Pods) and system objects are not expected elsewhere.
            if self.opts.symmetric && (d.is_owned() || self.scope.excluded(key, &d.value)) {
                continue;
            }
            // Flux does not create what it ignores (ssa: Ignore, reconcile: disabled).
            if !self.opts.symmetric
                && gitops::flux_policy(&[Some(&d.value)]) == gitops::FluxPolicy::Ignore
            {
                result.suppressed.annotated += 1;
                continue;
            }
            if live_unknown.iter().any(|u| u.covers(key)) {
                result.unknown.push(key.clone());
            } else {
                let shared = match &d.origin {
                    Origin::File { path, .. } => {
                        per_file
                            .get_or_insert_with(|| objects_per_file(self.desired))
                            .get(path.as_path())
                            .copied()
                            .unwrap_or(0)
                            > 1
                    }
                    Origin::Live { .. } => false,
                };
                // A cluster-scoped kind is created without the namespace Git gave it.
                let cluster_scoped = key.namespace.is_some()
                    && self.schemas.get(&key.group, &key.kind).namespaced == Some(false);
                if cluster_scoped {
                    notes.insert(dropped_namespace_note(key));
                    let key = ResourceKey {
                        namespace: None,
                        ..key.clone()
                    };
                    result
                        .drifts
                        .push(missing_drift(&key, d, shared, self.opts));
                } else {
                    result.drifts.push(missing_drift(key, d, shared, self.opts));
                }
            }
        }
        sort_drifts(&mut result.drifts);
        result.compared_keys.sort();
        result.notes = self.schemas.notes();
        result.notes.extend(notes);
        result
    }
}

/// How many desired objects each file holds (a missing object's fix applies the file only
/// when it holds nothing else).
fn objects_per_file(
    desired: &dyn DesiredIndex,
) -> std::collections::HashMap<&std::path::Path, usize> {
    let mut out = std::collections::HashMap::new();
    for origin in desired.keys().filter_map(|k| desired.origin(k)) {
        if let Origin::File { path, .. } = origin {
            *out.entry(path.as_path()).or_insert(0) += 1;
        }
    }
    out
}

/// Highest severity first, then by resource.
pub(crate) fn sort_drifts(drifts: &mut [Drift]) {
    drifts.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| a.resource.cmp(&b.resource))
    });
}

struct WatchedScope<'a> {
    namespaces: Option<&'a [String]>,
    desired_namespaces: BTreeSet<&'a str>,
    cluster_kinds: BTreeSet<(&'a str, &'a str)>,
    exclude: &'a [ObjectSelector],
}

impl<'a> WatchedScope<'a> {
    fn new(desired: &'a dyn DesiredIndex, scope: &'a UnmanagedScope) -> Self {
        let mut desired_namespaces = BTreeSet::new();
        let mut cluster_kinds = BTreeSet::new();
        for k in desired.keys() {
            match &k.namespace {
                Some(ns) => {
                    desired_namespaces.insert(ns.as_str());
                }
                None => {
                    cluster_kinds.insert((k.group.as_str(), k.kind.as_str()));
                    if k.group.is_empty() && k.kind == "Namespace" {
                        desired_namespaces.insert(k.name.as_str());
                    }
                }
            }
        }
        WatchedScope {
            namespaces: scope.namespaces.as_deref(),
            desired_namespaces,
            cluster_kinds,
            exclude: &scope.exclude,
        }
    }

    /// System objects never reported as present on one side only.
    fn excluded(&self, key: &ResourceKey, value: &Value) -> bool {
        self.exclude.iter().any(|s| s.selects(key))
            || (key.group.is_empty()
                && key.kind == "Secret"
                && value.get("type").and_then(Value::as_str)
                    == Some("kubernetes.io/service-account-token"))
    }

    fn watches(&self, key: &ResourceKey, value: &Value) -> bool {
        if self.excluded(key, value) {
            return false;
        }
        match &key.namespace {
            Some(ns) => match self.namespaces {
                Some(globs) => globs.iter().any(|g| crate::pattern::wildcard(g, ns)),
                None => self.desired_namespaces.contains(ns.as_str()),
            },
            None => self
                .cluster_kinds
                .contains(&(key.group.as_str(), key.kind.as_str())),
        }
    }
}

fn resource_ref(key: &ResourceKey, obj: &Object) -> ResourceRef {
    ResourceRef {
        api_version: obj.api_version().to_string(),
        kind: key.kind.clone(),
        namespace: key.namespace.clone(),
        name: key.name.clone(),
    }
}

fn file_origin(obj: &Object) -> Option<Origin> {
    matches!(obj.origin, Origin::File { .. }).then(|| obj.origin.clone())
}

/// A drift's stable fingerprint, the same whichever entry point found it (`envdrift diff`,
/// the daemon's scans, `GET /api/v1/compare`): SHA-256 over the drift type, the resource
/// key (group, kind, namespace, name; not the API version) and, for each change in path
/// order, its JSON Pointer, its op and the SHA-256 of the canonical JSON of both values,
/// shown as the first 8 bytes in hex. How the sides are named (file paths, `git:ENV`,
/// environment names) is not part of it: the target a drift belongs to is stored beside
/// it. Documented in docs/json-schema.md.
pub fn fingerprint(key: &ResourceKey, drift: DriftType, changes: &[FieldChange]) -> String {
    fn value_hash(v: &Value) -> String {
        let d = Sha256::digest(v.to_string().as_bytes());
        d.iter().map(|b| format!("{b:02x}")).collect()
    }
    let mut h = Sha256::new();
    for part in [
        "envdrift.fingerprint/v2",
        drift.as_str(),
        key.group.as_str(),
        key.kind.as_str(),
        key.namespace.as_deref().unwrap_or(""),
        key.name.as_str(),
    ] {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    let mut parts: Vec<String> = changes
        .iter()
        .map(|c| {
            format!(
                "{}\u{0}{}\u{0}{}\u{0}{}",
                c.path,
                c.op.as_str(),
                value_hash(&c.desired),
                value_hash(&c.live)
            )
        })
        .collect();
    parts.sort();
    for p in parts {
        h.update(p.as_bytes());
        h.update([1u8]);
    }
    let digest = h.finalize();
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// A verified patch: the operations, whether verification passed, and the command.
struct Fix {
    ops: Vec<Value>,
    verified: bool,
    error: Option<String>,
    kubectl: String,
    redacted: bool,
}

/// Builds, verifies and renders the patch that turns `live` into `desired` for the
/// non-expected changes. `target` is the object the kubectl command addresses.
fn make_fix(
    key: &ResourceKey,
    target: &ResourceKey,
    desired: &Value,
    live: &Value,
    changes: &[RawChange],
    opts: &Options,
    schema: &crate::diff::schema::KindSchema,
) -> Fix {
    let real: Vec<RawChange> = changes
        .iter()
        .filter(|c| c.expected_rule.is_none())
        .cloned()
        .collect();
    let mut ops = patch::assemble(&real);
    let (verified, error) = if !opts.verify_patches {
        (false, Some("verification disabled".to_string()))
    } else {
        match verify(key, desired, live, &ops, opts, schema) {
            Ok(()) => (true, None),
            Err(e) => (false, Some(e)),
        }
    };
    let redacted = patch::redact_ops(key, &mut ops);
    // A patch with placeholders cannot be applied as it is: it needs the value first, so
    // it is never called verified (the engine verified it with the real values).
    let (verified, error) = if redacted && verified {
        (
            false,
            Some(
                "needs the value: the patch holds placeholders where the Secret values go"
                    .to_string(),
            ),
        )
    } else {
        (verified, error)
    };
    let kubectl = if verified || redacted {
        patch::kubectl_patch(target, &ops)
    } else {
        format!(
            "# no verified patch: {}",
            error.as_deref().unwrap_or("unknown reason")
        )
    };
    Fix {
        ops,
        verified,
        error,
        kubectl,
        redacted,
    }
}

/// Subtrees of an object that a controller computes from another of its fields, so that Git
/// can own only that other field: an aggregated ClusterRole's `rules` (the
/// clusterrole-aggregation-controller fills them in from its `aggregationRule`; whatever Git
/// lists there is overwritten).
fn computed_subtrees(key: &ResourceKey, desired: &Value) -> &'static [&'static str] {
    let aggregated = key.group == "rbac.authorization.k8s.io"
        && key.kind == "ClusterRole"
        && desired.get("aggregationRule").is_some_and(|a| !a.is_null());
    if aggregated { &["rules"] } else { &[] }
}

/// `v` without the given top-level fields.
fn without(v: &Value, fields: &[&str]) -> Value {
    let mut v = v.clone();
    if let Some(m) = v.as_object_mut() {
        for f in fields {
            m.remove(*f);
        }
    }
    v
}

fn modified_drift(
    key: &ResourceKey,
    d: &Object,
    l: &Object,
    opts: &Options,
    schema: &crate::diff::schema::KindSchema,
    notes: &mut Vec<String>,
) -> (Option<Drift>, Suppressed) {
    // Subtrees a controller computes from the object itself are compared on neither side.
    let computed = computed_subtrees(key, &d.value);
    let stripped =
        (!computed.is_empty()).then(|| (without(&d.value, computed), without(&l.value, computed)));
    let (d_raw, l_value) = match &stripped {
        Some((dv, lv)) => (dv, lv),
        None => (&d.value, &l.value),
    };
    // The desired object as the API server would store it: structural-schema defaults
    // applied (CRDs). Patches are built and verified against this defaulted object.
    let defaulted: Option<Value> = (schema.apply_defaults && !opts.symmetric).then(|| {
        let mut v = d_raw.clone();
        crate::diff::schema::apply_defaults(&mut v, &schema.node);
        v
    });
    let d_value = defaulted.as_ref().unwrap_or(d_raw);
    // Argo CD's jqPathExpressions: what they select is deleted from both sides.
    let mut jq_ignored = 0;
    let jq_stripped = opts
        .ignore
        .has_jq()
        .then(|| strip_jq(key, opts, d_value, l_value, notes, &mut jq_ignored))
        .flatten();
    let (d_value, l_value, d_raw) = match &jq_stripped {
        Some((dv, lv)) => (dv, lv, dv),
        None => (d_value, l_value, d_raw),
    };
    let mut diff = compare_with_schema(key, d_value, l_value, opts, &schema.node);
    diff.suppressed.ignored += jq_ignored;
    let expected = diff
        .changes
        .iter()
        .filter(|c| c.expected_rule.is_some())
        .count();
    if expected > 0 {
        let mut rules: Vec<String> = Vec::new();
        for r in diff
            .changes
            .iter()
            .filter_map(|c| c.expected_rule.as_deref())
        {
            if !rules.iter().any(|x| x == r) {
                rules.push(r.to_string());
            }
        }
        diff.suppressed
            .expected_resources
            .push(crate::model::ExpectedResource {
                resource: resource_ref(key, d).to_string(),
                fields: expected,
                other_fields: diff.changes.len() - expected,
                rules,
            });
    }
    if !opts.show_expected {
        diff.suppressed.expected += expected;
        diff.changes.retain(|c| c.expected_rule.is_none());
    }
    if diff.changes.is_empty() {
        return (None, diff.suppressed);
    }
    let fix = make_fix(key, key, d_value, l_value, &diff.changes, opts, schema);
    let reverse = opts.symmetric.then(|| {
        // Make `from` match `to`: compare the other way round, map values back.
        let back = compare_with_schema(key, l_value, d_raw, opts, &schema.node);
        let target = d.mapped.as_ref().map_or(key, |m| &m.key);
        let mut f = make_fix(key, target, l_value, d_raw, &back.changes, opts, schema);
        if let (Some(m), Some(mf)) = (&opts.mapping, &d.mapped) {
            for op in &mut f.ops {
                let path = op
                    .get("path")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                if let Some(v) = op.get_mut("value") {
                    m.reverse_at(v, &path, &mf.rewritten);
                }
            }
            if f.verified {
                f.kubectl = patch::kubectl_patch(target, &f.ops);
            }
        }
        (!f.ops.is_empty()).then_some(ReverseFix {
            patch: Value::Array(f.ops),
            verified: f.verified,
            verification_error: f.error,
            kubectl: f.kubectl,
        })
    });
    let mut changes: Vec<FieldChange> = diff
        .changes
        .into_iter()
        .map(|c| field_change(key, c))
        .collect();
    if opts.symmetric {
        for c in &mut changes {
            crate::classify::promotion(key, c, &opts.pair.0, &opts.pair.1);
        }
    }
    let top = top_change(&changes);
    let severity = top.map_or(Severity::Info, |c| c.severity);
    let cause = top.map_or(Cause::Unknown, |c| c.cause);
    let fp = fingerprint(key, DriftType::Modified, &changes);
    let (fix, reverse) = if top.is_none() {
        // Only expected divergences (kept for --show-expected): nothing to fix.
        let nothing = Fix {
            ops: Vec::new(),
            verified: true,
            error: None,
            kubectl: "# expected divergence only: nothing to fix".to_string(),
            redacted: false,
        };
        (nothing, None)
    } else {
        (fix, reverse.flatten())
    };
    let drift = Drift {
        drift_type: DriftType::Modified,
        severity,
        cause,
        resource: resource_ref(key, l),
        fingerprint: fp,
        desired_origin: file_origin(d),
        expected: top.is_none(),
        changes,
        remedy: Remedy {
            patch: Some(Value::Array(fix.ops)),
            verified: fix.verified,
            verification_error: fix.error,
            kubectl: fix.kubectl,
            manifest: None,
            note: None,
            redacted: fix.redacted,
            reverse,
            adopt: None,
        },
    };
    (Some(drift), diff.suppressed)
}

/// Both sides without what the jq expressions of the ignore rules selecting `key` select
/// (each rule in turn, on the result of the one before, as Argo CD applies them), or None
/// when no expression selects anything. `ignored` counts the removed fields whose values
/// differed. An expression stopped by its bounds is not applied to the object, and a note
/// names the rule and the object.
fn strip_jq(
    key: &ResourceKey,
    opts: &Options,
    d: &Value,
    l: &Value,
    notes: &mut Vec<String>,
    ignored: &mut usize,
) -> Option<(Value, Value)> {
    let mut out: Option<(Value, Value)> = None;
    for rule in opts.ignore.jq_for(key) {
        if rule.path.disabled() {
            // One note per result (notes are deduplicated), not one per object.
            notes.push(format!(
                "{}: `{}` is not applied: its bounds stopped it on {} objects already (see jq_timeout); fix the expression and restart",
                rule.key,
                rule.path.as_str(),
                jq::MAX_STOPPED_OBJECTS
            ));
            continue;
        }
        let (dv, lv) = out.as_ref().map_or((d, l), |(a, b)| (a, b));
        let (dp, lp) = match (rule.path.paths(dv), rule.path.paths(lv)) {
            (Ok(dp), Ok(lp)) => (dp.unwrap_or_default(), lp.unwrap_or_default()),
            (Err(stop), _) | (_, Err(stop)) => {
                rule.path.record_stop();
                let object = match &key.namespace {
                    Some(ns) => format!("{} {ns}/{}", key.kind, key.name),
                    None => format!("{} {}", key.kind, key.name),
                };
                notes.push(format!(
                    "{}: `{}` on {object}: {stop}; not applied to this object",
                    rule.key,
                    rule.path.as_str()
                ));
                continue;
            }
        };
        if dp.is_empty() && lp.is_empty() {
            continue;
        }
        let mut seen = std::collections::HashSet::new();
        *ignored += dp
            .iter()
            .chain(lp.iter())
            .filter(|p| seen.insert(*p))
            .filter(|p| jq::get_path(dv, p) != jq::get_path(lv, p))
            .count();
        let (mut dn, mut ln) = (dv.clone(), lv.clone());
        jq::delete_paths(&mut dn, dp);
        jq::delete_paths(&mut ln, lp);
        out = Some((dn, ln));
    }
    out
}

/// The change that speaks for a drift: the most severe non-expected one; among equals a
/// person's change first, then a controller's, then an unknown writer, then the applier's.
pub(crate) fn top_change(changes: &[FieldChange]) -> Option<&FieldChange> {
    let rank = |c: &Cause| match c {
        Cause::Manual => 0,
        Cause::Controller => 1,
        Cause::Unknown | Cause::Deleted | Cause::Unmanaged => 2,
        Cause::Gitops => 3,
    };
    changes.iter().filter(|c| !c.expected).min_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then(rank(&a.cause).cmp(&rank(&b.cause)))
    })
}

/// Applies the patch to live and compares again; any remaining (non-expected) change is a
/// failure.
fn verify(
    key: &ResourceKey,
    desired: &Value,
    live: &Value,
    ops: &[Value],
    opts: &Options,
    schema: &crate::diff::schema::KindSchema,
) -> Result<(), String> {
    let patched = patch::apply(live, ops)?;
    let again = compare_with_schema(key, desired, &patched, opts, &schema.node);
    match again.changes.iter().find(|c| c.expected_rule.is_none()) {
        None => Ok(()),
        Some(c) => Err(format!(
            "after applying the patch {} still differs ({})",
            c.live_path,
            c.op.as_str()
        )),
    }
}

fn secret_values_hidden(key: &ResourceKey, v: Value) -> Value {
    if !(key.group.is_empty() && key.kind == "Secret") {
        return v;
    }
    match v {
        Value::String(s) => Value::String(short_hash(&s)),
        Value::Object(m) => Value::Object(
            m.into_iter()
                .map(|(k, x)| (k, secret_values_hidden(key, x)))
                .collect(),
        ),
        other => other,
    }
}

fn field_change(key: &ResourceKey, c: RawChange) -> FieldChange {
    FieldChange {
        desired_path: c.desired_path.clone(),
        path: if c.op == ChangeOp::Removed {
            c.desired_path
        } else {
            c.live_path
        },
        field: c.field,
        op: c.op,
        desired: secret_values_hidden(key, c.desired),
        live: secret_values_hidden(key, c.live),
        category: c.category,
        severity: c.severity,
        cause: c.cause,
        attribution: c.attribution,
        note: c.note,
        expected: c.expected_rule.is_some(),
        expected_rule: c.expected_rule,
        finding: None,
        line: None,
    }
}

/// A live object as a manifest to create elsewhere: server-written metadata, empty
/// label/annotation maps and what the other cluster allocated for a Service (cluster IPs
/// unless headless, node ports, the health-check node port) removed.
fn as_manifest(v: &Value) -> Value {
    let mut m = v.clone();
    if let Some(obj) = m.as_object_mut() {
        obj.remove("status");
        if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            for f in [
                "uid",
                "resourceVersion",
                "generation",
                "creationTimestamp",
                "managedFields",
                "selfLink",
                "ownerReferences",
            ] {
                meta.remove(f);
            }
            if let Some(ann) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
                ann.remove(crate::redact::LAST_APPLIED);
                ann.remove("deployment.kubernetes.io/revision");
            }
            for f in ["annotations", "labels"] {
                if meta
                    .get(f)
                    .and_then(Value::as_object)
                    .is_some_and(serde_json::Map::is_empty)
                {
                    meta.remove(f);
                }
            }
        }
        // Values the other cluster allocated: applying them here would ask for that
        // cluster's IPs and ports (and fail where they are taken).
        let is_service = obj.get("kind").and_then(Value::as_str) == Some("Service")
            && obj.get("apiVersion").and_then(Value::as_str) == Some("v1");
        if is_service && let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
            let headless = spec.get("clusterIP").and_then(Value::as_str) == Some("None");
            if !headless {
                spec.remove("clusterIP");
                spec.remove("clusterIPs");
            }
            spec.remove("healthCheckNodePort");
            if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
                for p in ports.iter_mut().filter_map(Value::as_object_mut) {
                    p.remove("nodePort");
                }
            }
        }
    }
    m
}

fn missing_drift(key: &ResourceKey, d: &Object, shared_file: bool, opts: &Options) -> Drift {
    let (from, to) = (&opts.pair.0, &opts.pair.1);
    let mut manifest = if opts.symmetric {
        as_manifest(&d.value)
    } else {
        d.value.clone()
    };
    let redacted = patch::redact_manifest(key, &mut manifest);
    let (kubectl, note) = if opts.symmetric {
        let orig = d.mapped.as_ref().map_or(key, |m| &m.key);
        (
            format!(
                "# create it in {to} (with {to}'s kubectl context):\n{}\n# or remove it from {from} (with {from}'s context): {}",
                patch::kubectl_apply_heredoc(&manifest),
                patch::kubectl_delete(orig)
            ),
            format!("{key} exists in {from} only"),
        )
    } else {
        let kubectl = match &d.origin {
            // The file holds only this object: apply it.
            Origin::File { path, .. } if !shared_file && !redacted => format!(
                "kubectl apply -f {}",
                patch::shell_quote(&path.display().to_string())
            ),
            // The file holds others too (applying it would also touch them, e.g. replicas
            // an HPA owns), or the values are placeholders: this object alone.
            _ => patch::kubectl_apply_heredoc(&manifest),
        };
        (
            kubectl,
            format!("{key} is in the desired state but not live (deleted, or never synced)"),
        )
    };
    let severity = opts.classifier.resource_severity(key, DriftType::Missing);
    let fp = fingerprint(key, DriftType::Missing, &[]);
    Drift {
        drift_type: DriftType::Missing,
        severity,
        cause: if opts.symmetric {
            Cause::Unknown
        } else {
            Cause::Deleted
        },
        resource: resource_ref(key, d),
        fingerprint: fp,
        desired_origin: file_origin(d),
        expected: false,
        changes: Vec::new(),
        remedy: Remedy {
            patch: None,
            verified: false,
            verification_error: None,
            kubectl,
            manifest: Some(manifest),
            note: Some(note),
            redacted,
            reverse: None,
            adopt: None,
        },
    }
}

fn unmanaged_drift(key: &ResourceKey, l: &Object, opts: &Options) -> Drift {
    // Comparing environments, both directions are graded alike (by kind).
    let graded_as = if opts.symmetric {
        DriftType::Missing
    } else {
        DriftType::Unmanaged
    };
    let severity = opts.classifier.resource_severity(key, graded_as);
    let creator = managed::ManagedIndex::from_object(&l.value).and_then(|m| {
        m.entries
            .iter()
            .min_by(|a, b| a.time.cmp(&b.time))
            .map(|e| e.manager.clone())
    });
    let by = creator
        .map(|m| format!(" (created by {m})"))
        .unwrap_or_default();
    // Argo CD's Prune=false (Flux's prune: disabled): still out of sync in Argo CD, but
    // kept on purpose.
    let argo_no_prune = !opts.symmetric && gitops::argo_no_prune(&l.value);
    let flux_no_prune = !opts.symmetric && gitops::flux_no_prune(&l.value);
    let severity = if argo_no_prune || flux_no_prune {
        Severity::Info
    } else {
        severity
    };
    let note = if opts.symmetric {
        format!("{key} exists in {} only{by}", opts.pair.1)
    } else if argo_no_prune {
        format!(
            "not in the desired state{by}; {}: Prune=false: Argo CD keeps it and will not delete it (add {}: IgnoreExtraneous to stop reporting it)",
            gitops::ARGO_SYNC_OPTIONS,
            gitops::ARGO_COMPARE_OPTIONS
        )
    } else if flux_no_prune {
        format!(
            "not in the desired state{by}; {}: disabled: Flux keeps it and will not delete it",
            gitops::FLUX_PRUNE
        )
    } else {
        format!("not in the desired state{by}: adopt it into Git, or delete it")
    };
    let fp = fingerprint(key, DriftType::Unmanaged, &[]);
    Drift {
        drift_type: DriftType::Unmanaged,
        severity,
        cause: if opts.symmetric {
            Cause::Unknown
        } else {
            Cause::Unmanaged
        },
        resource: resource_ref(key, l),
        fingerprint: fp,
        desired_origin: None,
        expected: false,
        changes: Vec::new(),
        remedy: Remedy {
            patch: None,
            verified: false,
            verification_error: None,
            kubectl: patch::kubectl_delete(key),
            manifest: None,
            note: Some(note),
            redacted: false,
            reverse: None,
            adopt: None,
        },
    }
}

#[cfg(test)]
mod noise_tests;

#[cfg(test)]
mod tests {
    use super::as_manifest;
    use serde_json::json;

    #[test]
    fn a_manifest_for_another_cluster_drops_what_this_one_allocated() {
        let live = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "shop", "uid": "u", "resourceVersion": "9",
                         "annotations": {}, "labels": {"app": "web"}},
            "spec": {"type": "NodePort", "clusterIP": "10.96.0.7", "clusterIPs": ["10.96.0.7"],
                     "ports": [{"port": 80, "nodePort": 31234, "protocol": "TCP"}],
                     "selector": {"app": "web"}},
            "status": {"loadBalancer": {}}
        });
        assert_eq!(
            as_manifest(&live),
            json!({
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"}},
                "spec": {"type": "NodePort", "ports": [{"port": 80, "protocol": "TCP"}],
                         "selector": {"app": "web"}}
            })
        );
        // a headless Service keeps `clusterIP: None`: it is what makes it headless
        let headless = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "db"},
                              "spec": {"clusterIP": "None", "clusterIPs": ["None"]}});
        assert_eq!(as_manifest(&headless)["spec"]["clusterIP"], "None");
    }
}
