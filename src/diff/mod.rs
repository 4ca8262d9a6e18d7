//! The pure drift engine: two [`Snapshot`]s in, a [`DiffResult`] out. No I/O.
//!
//! Entry point: [`compare`]. Objects are paired by [`ResourceKey`]; each pair is compared
//! field by field ([`compare::compare_objects`]), changes are classified
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
pub mod ignore;
pub mod managed;
pub mod normalize;
pub mod patch;

use std::collections::BTreeSet;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::classify::Classifier;
use crate::model::{
    Cause, ChangeOp, Drift, DriftType, FieldChange, Object, Origin, Remedy, ResourceKey,
    ResourceRef, Severity, Snapshot, Suppressed,
};
use crate::redact::short_hash;
use compare::{RawChange, compare_objects};
use ignore::{IgnoreSet, ObjectSelector};

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
    /// Names of the two sides (`desired`/`live`, `staging`/`production`); part of every
    /// fingerprint, so the same change in two comparisons gives two fingerprints.
    pub pair: (String, String),
    pub ignore: IgnoreSet,
    pub classifier: Classifier,
    /// Use last-applied-configuration and GitOps managers' entries (default true).
    pub three_way: bool,
    pub unmanaged: UnmanagedScope,
    /// Verify every patch by applying it and comparing again (default true).
    pub verify_patches: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            pair: ("desired".into(), "live".into()),
            ignore: IgnoreSet::default(),
            classifier: Classifier::default(),
            three_way: true,
            unmanaged: UnmanagedScope::default(),
            verify_patches: true,
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
    /// Desired objects not checked because the live side could not read their kind.
    pub unknown: Vec<ResourceKey>,
}

/// Compares desired with live (see the module doc).
pub fn compare(desired: &Snapshot, live: &Snapshot, opts: &Options) -> DiffResult {
    let c = Comparison::new(desired, opts);
    let items: Vec<(&ResourceKey, &Object)> = live.objects.iter().collect();
    let partial = c.batch(&items);
    c.finish(vec![partial], &live.unknown)
}

/// What one batch of live objects yielded (see [`Comparison`]).
#[derive(Debug, Default)]
pub struct Partial {
    drifts: Vec<Drift>,
    suppressed: Suppressed,
    compared: usize,
    seen: Vec<ResourceKey>,
}

/// A comparison fed with live objects in batches, so that a large live side never has to
/// be held in memory at once: `new`, then [`Comparison::batch`] for each batch (from any
/// thread), then [`Comparison::finish`].
pub struct Comparison<'a> {
    desired: &'a Snapshot,
    opts: &'a Options,
    scope: WatchedScope<'a>,
}

impl<'a> Comparison<'a> {
    pub fn new(desired: &'a Snapshot, opts: &'a Options) -> Self {
        Comparison {
            desired,
            opts,
            scope: WatchedScope::new(desired, &opts.unmanaged),
        }
    }

    /// Compares a batch of live objects with their desired counterparts.
    pub fn batch<K, O>(&self, live: &[(K, O)]) -> Partial
    where
        K: std::borrow::Borrow<ResourceKey> + Sync,
        O: std::borrow::Borrow<Object> + Sync,
    {
        let opts = self.opts;
        let per_object: Vec<(Option<Drift>, Suppressed, bool)> = live
            .par_iter()
            .map(|(k, l)| {
                let (key, l) = (k.borrow(), l.borrow());
                if opts.ignore.ignores_object(key) {
                    return (None, Suppressed::default(), false);
                }
                match self.desired.objects.get(key) {
                    Some(d) => {
                        let (drift, sup) = modified_drift(key, d, l, opts);
                        (drift, sup, true)
                    }
                    None => {
                        let unmanaged = opts.unmanaged.enabled
                            && !l.is_owned()
                            && self.scope.watches(key, &l.value);
                        (
                            unmanaged.then(|| unmanaged_drift(key, l, opts)),
                            Suppressed::default(),
                            false,
                        )
                    }
                }
            })
            .collect();
        let mut p = Partial {
            seen: live.iter().map(|(k, _)| k.borrow().clone()).collect(),
            ..Partial::default()
        };
        for (drift, sup, compared) in per_object {
            p.suppressed.add(&sup);
            p.compared += usize::from(compared);
            p.drifts.extend(drift);
        }
        p
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
        for p in partials {
            result.drifts.extend(p.drifts);
            result.suppressed.add(&p.suppressed);
            result.compared += p.compared;
            seen.extend(p.seen);
        }
        for (key, d) in &self.desired.objects {
            if seen.contains(key) || self.opts.ignore.ignores_object(key) {
                continue;
            }
            if live_unknown.iter().any(|u| u.covers(key)) {
                result.unknown.push(key.clone());
            } else {
                result.drifts.push(missing_drift(key, d, self.opts));
            }
        }
        sort_drifts(&mut result.drifts);
        result
    }
}

/// Highest severity first, then by resource.
pub fn sort_drifts(drifts: &mut [Drift]) {
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
    fn new(desired: &'a Snapshot, scope: &'a UnmanagedScope) -> Self {
        let mut desired_namespaces = BTreeSet::new();
        let mut cluster_kinds = BTreeSet::new();
        for k in desired.objects.keys() {
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

    fn watches(&self, key: &ResourceKey, value: &Value) -> bool {
        if self.exclude.iter().any(|s| s.selects(key)) {
            return false;
        }
        if key.group.is_empty()
            && key.kind == "Secret"
            && value.get("type").and_then(Value::as_str)
                == Some("kubernetes.io/service-account-token")
        {
            return false;
        }
        match &key.namespace {
            Some(ns) => match self.namespaces {
                Some(globs) => globs.iter().any(|g| ignore::wildcard(g, ns)),
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

/// Stable fingerprint: comparison pair, key, and each change's path, op and both values.
pub fn fingerprint(
    opts: &Options,
    key: &ResourceKey,
    drift: DriftType,
    changes: &[FieldChange],
) -> String {
    let mut h = Sha256::new();
    for part in [
        opts.pair.0.as_str(),
        opts.pair.1.as_str(),
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
                c.desired,
                c.live
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

fn modified_drift(
    key: &ResourceKey,
    d: &Object,
    l: &Object,
    opts: &Options,
) -> (Option<Drift>, Suppressed) {
    let diff = compare_objects(key, &d.value, &l.value, opts);
    if diff.changes.is_empty() {
        return (None, diff.suppressed);
    }
    let mut ops = patch::assemble(&diff.changes);
    let (verified, verification_error) = if opts.verify_patches {
        match verify(key, &d.value, &l.value, &ops, opts) {
            Ok(()) => (true, None),
            Err(e) => (false, Some(e)),
        }
    } else {
        (false, Some("verification disabled".to_string()))
    };
    let redacted = patch::redact_ops(key, &mut ops);
    let kubectl = if verified {
        patch::kubectl_patch(key, &ops)
    } else {
        format!(
            "# no verified patch: {}",
            verification_error.as_deref().unwrap_or("unknown reason")
        )
    };
    let changes: Vec<FieldChange> = diff
        .changes
        .into_iter()
        .map(|c| field_change(key, c))
        .collect();
    let top = changes.iter().max_by_key(|c| c.severity);
    let severity = top.map_or(Severity::Info, |c| c.severity);
    let cause = top.map_or(Cause::Unknown, |c| c.cause);
    let fp = fingerprint(opts, key, DriftType::Modified, &changes);
    let drift = Drift {
        drift_type: DriftType::Modified,
        severity,
        cause,
        resource: resource_ref(key, l),
        fingerprint: fp,
        desired_origin: file_origin(d),
        changes,
        remedy: Remedy {
            patch: Some(Value::Array(ops)),
            verified,
            verification_error,
            kubectl,
            manifest: None,
            note: None,
            redacted,
            adopt: None,
        },
    };
    (Some(drift), diff.suppressed)
}

/// Applies the patch to live and compares again; any remaining change is a failure.
fn verify(
    key: &ResourceKey,
    desired: &Value,
    live: &Value,
    ops: &[Value],
    opts: &Options,
) -> Result<(), String> {
    let patched = patch::apply(live, ops)?;
    let again = compare_objects(key, desired, &patched, opts);
    match again.changes.first() {
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
    }
}

fn missing_drift(key: &ResourceKey, d: &Object, opts: &Options) -> Drift {
    let mut manifest = d.value.clone();
    let redacted = patch::redact_manifest(key, &mut manifest);
    let kubectl = match &d.origin {
        Origin::File { path, .. } => format!(
            "kubectl apply -f {}",
            patch::shell_quote(&path.display().to_string())
        ),
        Origin::Live { .. } => "kubectl apply -f - # with the manifest".to_string(),
    };
    let severity = opts.classifier.resource_severity(key, DriftType::Missing);
    let fp = fingerprint(opts, key, DriftType::Missing, &[]);
    Drift {
        drift_type: DriftType::Missing,
        severity,
        cause: Cause::Deleted,
        resource: resource_ref(key, d),
        fingerprint: fp,
        desired_origin: file_origin(d),
        changes: Vec::new(),
        remedy: Remedy {
            patch: None,
            verified: false,
            verification_error: None,
            kubectl,
            manifest: Some(manifest),
            note: Some(format!(
                "{key} is in the desired state but not live (deleted, or never synced)"
            )),
            redacted,
            adopt: None,
        },
    }
}

fn unmanaged_drift(key: &ResourceKey, l: &Object, opts: &Options) -> Drift {
    let severity = opts.classifier.resource_severity(key, DriftType::Unmanaged);
    let creator = managed::ManagedIndex::from_object(&l.value).and_then(|m| {
        m.entries
            .iter()
            .min_by(|a, b| a.time.cmp(&b.time))
            .map(|e| e.manager.clone())
    });
    let note = match &creator {
        Some(m) => {
            format!("not in the desired state (created by {m}): adopt it into Git, or delete it")
        }
        None => "not in the desired state: adopt it into Git, or delete it".to_string(),
    };
    let fp = fingerprint(opts, key, DriftType::Unmanaged, &[]);
    Drift {
        drift_type: DriftType::Unmanaged,
        severity,
        cause: Cause::Unmanaged,
        resource: resource_ref(key, l),
        fingerprint: fp,
        desired_origin: None,
        changes: Vec::new(),
        remedy: Remedy {
            patch: None,
            verified: false,
            verification_error: None,
            kubectl: patch::kubectl_delete(key),
            manifest: None,
            note: Some(note),
            redacted: false,
            adopt: None,
        },
    }
}
