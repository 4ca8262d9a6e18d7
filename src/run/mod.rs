//! The one path from two sources to a drift set: [`run`] takes a [`Job`] (two inputs, a
//! mode, the compiled config) and returns an [`Outcome`] (the result, both sides'
//! metadata, and whether the result can be trusted). The CLI (`diff`, `compare`, `scan`),
//! the daemon (scans and comparisons) and the API (`GET /api/v1/compare`) each build a
//! `Job` and render the `Outcome`; none of them compares anything itself.
//!
//! Decided here, once:
//!
//! - **reading**: both sides through [`source::open`]; the `to` side of file sources is
//!   streamed through the comparison file by file ([`source::stream`]), so memory holds
//!   the `from` side plus a few files;
//! - **mapping**: comparing environments, `from` objects are mapped into `to`'s names
//!   (`compare.mapping`) before comparing;
//! - **adopt patches**: desired sides read from Git get adopt-into-Git patches;
//! - **field lines**: the changes of drifted objects from plain YAML manifests get the
//!   line of their field ([`lines`]);
//! - **fingerprints**: [`crate::diff::fingerprint`], a function of the resource key, the
//!   paths and both values only (never of how the sides are named);
//! - **trust**: a side that could not be read makes the outcome [`Trust::Failed`]; input
//!   errors or unknown scopes make it [`Trust::Partial`], and then drifts that could be
//!   artefacts of what was not read (`missing` when `to` is incomplete, `unmanaged` when
//!   `from` is) are left out: they are neither reported nor resolved.

mod lines;
pub mod reuse;

use std::path::Path;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::config::Compiled;
use crate::diff::{CompactSnapshot, Comparison, DesiredIndex, DiffResult, Options};
use crate::model::{DriftType, Snapshot};
use crate::report::{Mode, Report, Side};
use crate::source::{self, Ctx, Loaded, SourceCaches, SourceError, SourceSpec};

/// One side of a job.
#[derive(Debug, Clone)]
pub struct Input {
    /// The side's name in messages (`desired`, `live`, `staging`, `git:production`).
    pub name: String,
    pub source: Src,
}

/// Where a side's objects come from.
#[derive(Debug, Clone)]
pub enum Src {
    /// Read it now.
    Spec(SourceSpec),
    /// Already read (the API's snapshot cache).
    Opened(Arc<Loaded>),
}

impl Input {
    pub fn spec(name: impl Into<String>, spec: SourceSpec) -> Input {
        Input {
            name: name.into(),
            source: Src::Spec(spec),
        }
    }
}

/// Per-run adjustments of the compiled config (command-line flags).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// Extra GitOps field managers (`--gitops-manager`).
    pub gitops_managers: Vec<String>,
    /// Do not report unmanaged (`only-in-to`) objects.
    pub no_unmanaged: bool,
    /// Keep expected divergences, marked `expected`.
    pub show_expected: bool,
}

/// What to compare.
pub struct Job<'a> {
    pub mode: Mode,
    /// Desired (Git, manifests) or the reference environment.
    pub from: Input,
    /// Live, or the environment checked against `from`.
    pub to: Input,
    pub opts: Arc<Compiled>,
    pub overrides: Overrides,
    /// Caches kept between runs (the daemon's).
    pub caches: Option<&'a SourceCaches>,
    /// Called after each file read (progress bars).
    pub on_file: Option<&'a (dyn Fn(&Path) + Sync)>,
    /// Compute the `to` side's content hash ([`Outcome::to_hash`]; the daemon records it).
    pub hash_to: bool,
    /// Set by the caller when nobody waits for the result any more (an API request that
    /// timed out or whose client left): the run stops at its next check (between stages
    /// and between batches of objects) with [`RunError::Cancelled`].
    pub cancel: Option<&'a std::sync::atomic::AtomicBool>,
    /// Keep the key of every compared pair ([`DiffResult::compared_keys`]): set by the CLI
    /// for JUnit output (a test case per compared object); the daemon and the API leave it
    /// off and do not pay for it.
    pub keep_compared: bool,
}

impl<'a> Job<'a> {
    pub fn new(mode: Mode, from: Input, to: Input, opts: Arc<Compiled>) -> Job<'a> {
        Job {
            mode,
            from,
            to,
            opts,
            overrides: Overrides::default(),
            caches: None,
            on_file: None,
            hash_to: false,
            cancel: None,
            keep_compared: false,
        }
    }
}

/// One side of an outcome: its name, its snapshot's metadata (source, commit, errors,
/// skipped files, unknown scopes; the objects are not kept) and how many objects it had.
#[derive(Debug, Clone, Default)]
pub struct SideOut {
    pub name: String,
    pub meta: Snapshot,
    pub objects: usize,
    /// The namespaces its namespaced objects are in (for hints such as a desired side that
    /// landed in `default` while live has nothing there).
    pub namespaces: std::collections::BTreeSet<String>,
}

impl SideOut {
    fn side(&self) -> Side {
        Side {
            objects: self.objects,
            ..Side::of(&self.name, &self.meta)
        }
    }
}

/// Whether an outcome can be trusted.
#[derive(Debug)]
pub enum Trust {
    /// Both sides were read completely.
    Complete,
    /// Something could not be read: drifts of the `untrusted` types were left out.
    Partial {
        reasons: Vec<String>,
        untrusted: Vec<DriftType>,
    },
    /// A side could not be read at all.
    Failed(RunError),
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("{side} source {source_desc}: nothing could be read ({first})")]
    Unreadable {
        side: String,
        source_desc: String,
        first: String,
    },
    /// [`Job::cancel`] was set: whoever asked for the run no longer waits for it.
    #[error("cancelled: the request for this comparison ended")]
    Cancelled,
}

/// The `to` side's content hash: one per object (first 12 bytes of SHA-256 of its JSON, in
/// hex) and of the whole side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SideHash {
    pub hash: String,
    /// `{key: object hash}` as JSON text.
    pub objects: String,
}

/// What a run produced.
#[derive(Debug)]
pub struct Outcome {
    pub mode: Mode,
    /// The drifts (empty when the run failed before comparing).
    pub result: DiffResult,
    pub from: SideOut,
    pub to: SideOut,
    pub trust: Trust,
    /// Adopt-into-Git patches were attached (the desired side came from Git).
    pub adopt: bool,
    /// With [`Job::hash_to`]: the `to` side's content hash.
    pub to_hash: Option<SideHash>,
}

impl Outcome {
    /// The report of this outcome, for every renderer.
    pub fn report(&self) -> Report<'_> {
        let mut errors = self.from.meta.errors.clone();
        errors.extend(self.to.meta.errors.iter().cloned());
        let mut skipped = self.from.meta.skipped.clone();
        skipped.extend(self.to.meta.skipped.iter().cloned());
        Report {
            mode: self.mode,
            left: self.from.side(),
            right: self.to.side(),
            result: &self.result,
            errors,
            skipped,
            notes: self
                .untrusted()
                .iter()
                .map(|t| {
                    let (side, what) = match t {
                        DriftType::Missing => (&self.to.name, "objects it may hold are not reported as missing"),
                        _ => (&self.from.name, "objects its unread files may describe are not reported as unmanaged (no delete suggested)"),
                    };
                    format!(
                        "{} drifts withheld: the {side} side was read only in part (see the input errors); {what}",
                        t.as_str()
                    )
                })
                .collect(),
        }
    }

    /// The error when the run failed.
    pub fn failure(&self) -> Option<&RunError> {
        match &self.trust {
            Trust::Failed(e) => Some(e),
            _ => None,
        }
    }

    /// Drift types whose absence this outcome cannot vouch for.
    pub fn untrusted(&self) -> &[DriftType] {
        match &self.trust {
            Trust::Partial { untrusted, .. } => untrusted,
            _ => &[],
        }
    }

    fn failed(job: &Job<'_>, err: RunError) -> Outcome {
        Outcome {
            mode: job.mode,
            result: DiffResult::default(),
            from: SideOut {
                name: job.from.name.clone(),
                ..SideOut::default()
            },
            to: SideOut {
                name: job.to.name.clone(),
                ..SideOut::default()
            },
            trust: Trust::Failed(err),
            adopt: false,
            to_hash: None,
        }
    }
}

/// The engine's options for a job: the compiled config with the job's overrides.
pub fn options(job: &Job<'_>) -> Options {
    let mut opts = job
        .opts
        .options(job.mode, (job.from.name.as_str(), job.to.name.as_str()));
    if !job.overrides.gitops_managers.is_empty() {
        Arc::make_mut(&mut opts.classifier)
            .managers
            .gitops
            .extend(job.overrides.gitops_managers.iter().cloned());
    }
    if job.overrides.no_unmanaged {
        opts.unmanaged.enabled = false;
    }
    opts.show_expected = job.overrides.show_expected;
    opts.keep_compared = job.keep_compared;
    opts
}

/// Runs a job: reads both sides, compares them, judges the result (see the module doc).
/// Objects compared between two cancellation checks.
const CANCEL_CHECK_EVERY: usize = 2048;

pub fn run(job: &Job<'_>) -> Outcome {
    run_with(job, true)
}

/// The identity of a job for [`reuse`]: its mode and both sides' names and sources.
fn job_identity(job: &Job<'_>) -> String {
    let describe = |i: &Input| match &i.source {
        Src::Spec(s) => s.describe(),
        Src::Opened(_) => String::from("(opened)"),
    };
    format!(
        "{:?}\u{0}{}\u{0}{}\u{0}{}\u{0}{}",
        job.mode,
        job.from.name,
        describe(&job.from),
        job.to.name,
        describe(&job.to)
    )
}

/// [`run`], reusing kept comparison results of unchanged files when `reuse` (see
/// [`reuse`]).
fn run_with(job: &Job<'_>, allow_reuse: bool) -> Outcome {
    let cancelled = || {
        job.cancel
            .is_some_and(|c| c.load(std::sync::atomic::Ordering::Relaxed))
    };
    if cancelled() {
        return Outcome::failed(job, RunError::Cancelled);
    }
    let opts = options(job);
    let no_progress = |_: &Path| {};
    let on_file: &(dyn Fn(&Path) + Sync) = job.on_file.unwrap_or(&no_progress);
    let from_ctx = Ctx {
        side: &job.from.name,
        default_namespace: &job.opts.default_namespace,
        cluster_scoped_kinds: &job.opts.cluster_scoped_kinds,
        caches: job.caches,
        on_file,
    };
    let to_ctx = Ctx {
        side: &job.to.name,
        ..from_ctx
    };
    // The `from` side, whole: compact when read here (each object kept as JSON text and
    // parsed again when compared, see `diff::desired`); comparing environments, mapped
    // into `to`'s names first.
    let maps = matches!((&opts.mapping, job.mode), (Some(m), Mode::EnvVsEnv) if !m.is_empty());
    let map = |snap: Snapshot| match &opts.mapping {
        Some(m) if maps => m.map_snapshot(snap, &job.from.name),
        _ => snap,
    };
    let opened: Loaded;
    let compact: CompactSnapshot;
    let mapped: Snapshot;
    let (from_loaded, from_meta, desired): (&Loaded, &Snapshot, &dyn DesiredIndex) =
        match &job.from.source {
            Src::Spec(spec) if !maps => match source::open_compact(spec, &from_ctx) {
                Ok((l, c)) => {
                    opened = l;
                    compact = c;
                    (&opened, &opened.snapshot, &compact)
                }
                Err(e) => return Outcome::failed(job, e.into()),
            },
            Src::Spec(spec) => match source::open(spec, &from_ctx) {
                Ok(mut l) => {
                    let m = map(std::mem::take(&mut l.snapshot));
                    l.snapshot = clone_meta(&m);
                    compact = CompactSnapshot::from_objects(m.objects);
                    opened = l;
                    (&opened, &opened.snapshot, &compact)
                }
                Err(e) => return Outcome::failed(job, e.into()),
            },
            Src::Opened(l) if maps => {
                mapped = map(l.snapshot.clone());
                (l.as_ref(), &mapped, &mapped)
            }
            Src::Opened(l) => (l.as_ref(), &l.snapshot, &l.snapshot),
        };
    if cancelled() {
        return Outcome::failed(job, RunError::Cancelled);
    }
    // A cluster `to` side is read whole anyway: read it first, so that its schemas (the
    // cluster's OpenAPI documents) are in the registry before anything is compared.
    let to_first: Option<Loaded> = match &job.to.source {
        Src::Spec(spec @ SourceSpec::Cluster(_)) => match source::open(spec, &to_ctx) {
            Ok(l) => Some(l),
            Err(e) => return Outcome::failed(job, e.into()),
        },
        _ => None,
    };
    let to_side = match (&job.to.source, &to_first) {
        (_, Some(l)) => ToSide::Whole(l),
        (Src::Opened(l), None) => ToSide::Whole(l.as_ref()),
        (Src::Spec(spec), None) => ToSide::Stream(spec),
    };
    let to_schemas = match to_side {
        ToSide::Whole(l) => l.schemas.clone(),
        ToSide::Stream(_) => None,
    };
    let comparison = Comparison::with_schemas(
        desired,
        &opts,
        from_loaded
            .schemas
            .iter()
            .cloned()
            .chain(to_schemas)
            .collect(),
    );
    let hash_to = job.hash_to;
    let consume = |objects: &[(crate::model::ResourceKey, crate::model::Object)]| {
        let hashes: Vec<(String, String)> = if hash_to {
            objects
                .iter()
                .map(|(k, o)| (k.to_string(), object_hash(&o.value)))
                .collect()
        } else {
            Vec::new()
        };
        let namespaces = namespaces_of(objects.iter().map(|(k, _)| k));
        (comparison.batch(objects), hashes, namespaces)
    };
    // Results of unchanged files kept from the last run (the daemon's caches).
    let session = match (job.caches, to_side) {
        (Some(c), ToSide::Stream(_)) => {
            let identity = job_identity(job);
            let mut h = Sha256::new();
            h.update(identity.as_bytes());
            h.update(format!("{:?}{}{}", job.overrides, job.keep_compared, job.hash_to).as_bytes());
            h.update(comparison.scope_digest());
            Some(reuse::Session::begin(
                &c.results,
                identity,
                &job.to.name,
                &job.opts,
                h.finalize().into(),
                &comparison,
                allow_reuse,
            ))
        }
        _ => None,
    };
    let reuse_files = session
        .as_ref()
        .map(|s| s as &dyn source::dump::FileReuse<reuse::BatchOut>);
    // The `to` side, streamed where it can be.
    let (partials, to_meta, to_objects, hashes, to_namespaces) = match to_side {
        ToSide::Stream(spec) => match source::stream(spec, &to_ctx, &consume, reuse_files) {
            Ok(s) => {
                let mut partials = Vec::with_capacity(s.results.len());
                let mut hashes = Vec::new();
                let mut namespaces = std::collections::BTreeSet::new();
                for (p, h, n) in s.results {
                    partials.push(p);
                    hashes.extend(h);
                    namespaces.extend(n);
                }
                (
                    partials,
                    s.loaded.snapshot,
                    s.loaded.objects,
                    hashes,
                    namespaces,
                )
            }
            Err(e) => return Outcome::failed(job, e.into()),
        },
        ToSide::Whole(l) => {
            let items: Vec<(&crate::model::ResourceKey, &crate::model::Object)> =
                l.snapshot.objects.iter().collect();
            let hashes = if hash_to {
                items
                    .iter()
                    .map(|(k, o)| (k.to_string(), object_hash(&o.value)))
                    .collect()
            } else {
                Vec::new()
            };
            let meta = Snapshot {
                objects: Default::default(),
                ..clone_meta(&l.snapshot)
            };
            let namespaces = namespaces_of(l.snapshot.objects.keys());
            let mut partials = Vec::with_capacity(items.len() / CANCEL_CHECK_EVERY + 1);
            for chunk in items.chunks(CANCEL_CHECK_EVERY) {
                if cancelled() {
                    return Outcome::failed(job, RunError::Cancelled);
                }
                partials.push(comparison.batch(chunk));
            }
            (partials, meta, l.objects, hashes, namespaces)
        }
    };
    if cancelled() {
        return Outcome::failed(job, RunError::Cancelled);
    }
    let mut result = comparison.finish(partials, &to_meta.unknown);
    if let Some(s) = session
        && !s.finish()
    {
        // A CRD changed under reused results: everything is compared again.
        drop(comparison);
        return run_with(job, false);
    }
    drop(comparison);
    let adopt = match (&from_loaded.adopt, job.mode) {
        (Some(a), Mode::DesiredVsLive) => {
            source::adopt::attach(&mut result, &a.as_sources());
            true
        }
        _ => false,
    };
    lines::attach(&mut result, from_loaded);
    let from = SideOut {
        name: job.from.name.clone(),
        meta: clone_meta(from_meta),
        objects: desired.len(),
        namespaces: namespaces_of(desired.keys()),
    };
    let to = SideOut {
        name: job.to.name.clone(),
        meta: to_meta,
        objects: to_objects,
        namespaces: to_namespaces,
    };
    let trust = judge(&from, &to, &job.from, &job.to, &mut result);
    Outcome {
        mode: job.mode,
        result,
        from,
        to,
        trust,
        adopt,
        to_hash: hash_to.then(|| side_hash(hashes)),
    }
}

/// How the `to` side reaches the comparison.
#[derive(Clone, Copy)]
enum ToSide<'a> {
    /// File by file, each dropped once compared.
    Stream(&'a SourceSpec),
    /// Read whole before the comparison starts (clusters, the API's snapshot cache).
    Whole(&'a Loaded),
}

/// A snapshot's metadata without its objects.
fn clone_meta(s: &Snapshot) -> Snapshot {
    Snapshot {
        source: s.source.clone(),
        taken_at: s.taken_at.clone(),
        objects: Default::default(),
        errors: s.errors.clone(),
        skipped: s.skipped.clone(),
        unknown: s.unknown.clone(),
    }
}

fn describe(input: &Input, meta: &Snapshot) -> String {
    match &input.source {
        Src::Spec(s) => s.describe(),
        Src::Opened(_) => meta
            .source
            .as_ref()
            .map(|s| s.description.clone())
            .unwrap_or_default(),
    }
}

/// The partial-scan rules: which drift types cannot be trusted, and whether the run failed.
fn judge(
    from: &SideOut,
    to: &SideOut,
    from_in: &Input,
    to_in: &Input,
    result: &mut DiffResult,
) -> Trust {
    let mut untrusted = Vec::new();
    let mut reasons = Vec::new();
    if !to.meta.errors.is_empty() || !to.meta.unknown.is_empty() {
        // Whatever `to` failed to read could be a "missing" object.
        untrusted.push(DriftType::Missing);
        if !to.meta.errors.is_empty() {
            reasons.push(format!(
                "{} input error(s) on {}",
                to.meta.errors.len(),
                to.name
            ));
        }
    }
    if !from.meta.errors.is_empty() {
        // Whatever `from` failed to read could make a live object look "unmanaged".
        untrusted.push(DriftType::Unmanaged);
        reasons.push(format!(
            "{} input error(s) on {}",
            from.meta.errors.len(),
            from.name
        ));
    }
    for e in from.meta.errors.iter().chain(&to.meta.errors).take(3) {
        reasons.push(e.to_string());
    }
    for u in &to.meta.unknown {
        reasons.push(format!("{}/{}: {}", u.group, u.kind, u.reason));
    }
    result.drifts.retain(|d| !untrusted.contains(&d.drift_type));
    for (side, input) in [(from, from_in), (to, to_in)] {
        if side.objects == 0
            && let Some(first) = side.meta.errors.first()
        {
            return Trust::Failed(RunError::Unreadable {
                side: side.name.clone(),
                source_desc: describe(input, &side.meta),
                first: first.to_string(),
            });
        }
    }
    if untrusted.is_empty() {
        Trust::Complete
    } else {
        Trust::Partial { reasons, untrusted }
    }
}

fn namespaces_of<'k>(
    keys: impl Iterator<Item = &'k crate::model::ResourceKey>,
) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    for k in keys {
        if let Some(ns) = &k.namespace
            && !out.contains(ns)
        {
            out.insert(ns.clone());
        }
    }
    out
}

fn object_hash(v: &serde_json::Value) -> String {
    let h = Sha256::digest(v.to_string().as_bytes());
    h[..12].iter().map(|b| format!("{b:02x}")).collect()
}

/// The whole side's hash over its objects' hashes in key order.
fn side_hash(mut objects: Vec<(String, String)>) -> SideHash {
    objects.sort();
    let mut all = Sha256::new();
    let mut map = serde_json::Map::new();
    for (k, hex) in objects {
        all.update(k.as_bytes());
        all.update(hex.as_bytes());
        map.insert(k, serde_json::Value::String(hex));
    }
    let d = all.finalize();
    SideHash {
        hash: d[..16].iter().map(|b| format!("{b:02x}")).collect(),
        objects: serde_json::Value::Object(map).to_string(),
    }
}
