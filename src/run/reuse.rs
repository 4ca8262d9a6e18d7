//! Comparison results kept between runs of the same job (the daemon's rescans): per file of
//! a streamed `to` side (directories, dumps), a file whose bytes are unchanged
//! ([`FileCache`](crate::source::dump::FileCache) hit) is neither parsed nor compared again
//! when what its objects were compared with is unchanged too; per object of a `to` side
//! read whole from a cluster, an object with the same uid and resourceVersion (the API
//! server changes the resourceVersion on every write) is not compared again on the same
//! terms. "Unchanged" is checked, never assumed:
//!
//! - the job: same mode, side names and source descriptions, the same compiled config
//!   object (held weakly: a config compiled anew is a new config), the same overrides and
//!   the same unmanaged scope (desired namespaces and cluster-scoped kinds);
//! - the file: the same SHA-256 of its bytes, read with the same options; the cluster
//!   object: the same uid and resourceVersion;
//! - its objects' desired counterparts: the same keys, each with the same content hash
//!   ([`DesiredIndex::content_hash`](crate::diff::DesiredIndex::content_hash): text, origin
//!   and mapping), checked per file with [`Comparison::counterparts_digest`];
//! - the schemas: CRDs arrive with the files, so the registry's fingerprint at the end of
//!   the run must equal the one the kept results ended with; when it does not (a CRD
//!   changed, appeared or went away), the run is done again without reusing anything.
//!
//! Drifts found missing are not kept: they are computed from the whole desired side on
//! every run ([`Comparison::finish`]).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use crate::config::Compiled;
use crate::diff::schema::is_crd;
use crate::diff::{Comparison, Partial};
use crate::model::{Object, ResourceKey};
use crate::source::dump::{CachedFile, FileReuse};

/// What one batch of a streamed side yields in [`crate::run::run`]: the comparison's
/// partial result, the objects' content hashes, their namespaces.
pub(super) type BatchOut = (Partial, Vec<(String, String)>, BTreeSet<String>);

/// Results kept per job and file (see the module doc). One per daemon, handed to each run
/// as [`Job::kept`](crate::run::Job::kept).
#[derive(Default)]
pub struct Results {
    jobs: Mutex<HashMap<String, JobResults>>,
    /// Files whose results the last run of each job reused.
    last_reused: Mutex<HashMap<String, usize>>,
}

impl std::fmt::Debug for Results {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (jobs, files) = self.size();
        f.debug_struct("Results")
            .field("jobs", &jobs)
            .field("files", &files)
            .finish()
    }
}

struct JobResults {
    compiled: Weak<Compiled>,
    context: [u8; 32],
    /// The schemas' fingerprint at the end of the run that kept `files`; `None`: nothing
    /// can be reused.
    schemas: Option<[u8; 32]>,
    files: HashMap<String, Arc<Kept>>,
    objects: HashMap<ResourceKey, Arc<KeptObject>>,
}

/// One cluster object's result.
struct KeptObject {
    /// uid and resourceVersion.
    identity: String,
    counterparts: [u8; 32],
    partial: Partial,
    /// Its content hash (with `hash_to`).
    hash: String,
}

struct Kept {
    file_hash: [u8; 32],
    counterparts: [u8; 32],
    results: Vec<BatchOut>,
}

impl Results {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, JobResults>> {
        self.jobs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Jobs with kept results, and files kept over all of them.
    pub fn size(&self) -> (usize, usize) {
        let jobs = self.lock();
        (jobs.len(), jobs.values().map(|j| j.files.len()).sum())
    }

    /// Cluster objects kept over all jobs.
    pub fn objects(&self) -> usize {
        self.lock().values().map(|j| j.objects.len()).sum()
    }

    /// Files (or cluster objects) whose results the last run of the job whose `to` side is
    /// named `side` reused.
    pub fn last_reused(&self, side: &str) -> Option<usize> {
        self.last_reused
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(side)
            .copied()
    }

    /// Forgets what was kept for a job.
    fn forget(&self, job: &str) {
        self.lock().remove(job);
    }
}

/// One run's use of [`Results`]: reuses and keeps file results, then
/// [`Session::finish`] checks the schemas and stores what was kept.
pub(super) struct Session<'r, 'c> {
    results: &'r Results,
    job: String,
    side: String,
    comparison: &'c Comparison<'c>,
    /// The schemas' fingerprint the reusable results ended with; `None`: reuse nothing.
    expected: Option<[u8; 32]>,
    fresh: Mutex<HashMap<String, Arc<Kept>>>,
    touched: Mutex<HashSet<String>>,
    fresh_objects: Mutex<HashMap<ResourceKey, Arc<KeptObject>>>,
    touched_objects: Mutex<HashSet<ResourceKey>>,
    reused: AtomicUsize,
}

impl<'r, 'c> Session<'r, 'c> {
    /// Starts a run of `job` (its identity) with this compiled config and context digest;
    /// with `reuse` false, nothing kept is reused (but this run's results are kept).
    pub(super) fn begin(
        results: &'r Results,
        job: String,
        side: &str,
        compiled: &Arc<Compiled>,
        context: [u8; 32],
        comparison: &'c Comparison<'c>,
        reuse: bool,
    ) -> Self {
        // One entry per job and context (a daemon alternating between two kinds of run of
        // one job, say full and partial, keeps both); entries of configs no longer in use
        // are dropped.
        let job = format!(
            "{job}\u{0}{}",
            context
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        );
        let mut jobs = results.lock();
        jobs.retain(|_, j| j.compiled.strong_count() > 0);
        let same = jobs.get(&job).is_some_and(|j| {
            j.context == context
                && j.compiled
                    .upgrade()
                    .is_some_and(|c| Arc::ptr_eq(&c, compiled))
        });
        if !same {
            jobs.insert(
                job.clone(),
                JobResults {
                    compiled: Arc::downgrade(compiled),
                    context,
                    schemas: None,
                    files: HashMap::new(),
                    objects: HashMap::new(),
                },
            );
        }
        let expected = jobs.get(&job).and_then(|j| j.schemas).filter(|_| reuse);
        drop(jobs);
        Session {
            results,
            job,
            side: side.to_string(),
            comparison,
            expected,
            fresh: Mutex::default(),
            touched: Mutex::default(),
            fresh_objects: Mutex::default(),
            touched_objects: Mutex::default(),
            reused: AtomicUsize::new(0),
        }
    }

    /// Compares a chunk of a `to` side read whole ([`Comparison::batch`]), reusing the
    /// kept result of each cluster object whose uid, resourceVersion and desired
    /// counterpart are unchanged; with `hash_to`, also each object's content hash
    /// (`hash`: how to compute one). Returns the partial results and the hashes.
    pub(super) fn whole_chunk(
        &self,
        chunk: &[(&ResourceKey, &Object)],
        hash_to: bool,
        hash: fn(&serde_json::Value) -> String,
    ) -> (Vec<Partial>, Vec<(String, String)>) {
        let mut out = Vec::with_capacity(chunk.len());
        let mut hashes = Vec::new();
        let mut misses = Vec::new();
        {
            let jobs = self.results.lock();
            let kept = jobs.get(&self.job).filter(|_| self.expected.is_some());
            let mut touched = self
                .touched_objects
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            for &(k, o) in chunk {
                let hit = kept
                    .and_then(|j| j.objects.get(k))
                    .filter(|kept| live_identity(o).as_deref() == Some(kept.identity.as_str()))
                    .filter(|kept| {
                        self.comparison.counterparts_digest([k]) == Some(kept.counterparts)
                    });
                match hit {
                    Some(kept) => {
                        let crd = [(k.clone(), o.clone())];
                        self.comparison
                            .replay(&kept.partial, if is_crd(k) { &crd } else { &[] });
                        out.push(kept.partial.clone());
                        if hash_to {
                            hashes.push((k.to_string(), kept.hash.clone()));
                        }
                        touched.insert(k.clone());
                        self.reused.fetch_add(1, Ordering::Relaxed);
                    }
                    None => misses.push((k, o)),
                }
            }
        }
        if misses.is_empty() {
            return (out, hashes);
        }
        let each = self.comparison.batch_each(&misses);
        let fresh_hashes: Vec<String> = if hash_to {
            use rayon::prelude::*;
            misses.par_iter().map(|(_, o)| hash(&o.value)).collect()
        } else {
            vec![String::new(); misses.len()]
        };
        let mut fresh = self
            .fresh_objects
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for (((k, o), p), h) in misses.iter().zip(each).zip(fresh_hashes) {
            if let (Some(identity), Some(counterparts)) =
                (live_identity(o), self.comparison.counterparts_digest([*k]))
            {
                fresh.insert(
                    (*k).clone(),
                    Arc::new(KeptObject {
                        identity,
                        counterparts,
                        partial: p.clone(),
                        hash: h.clone(),
                    }),
                );
            }
            if hash_to {
                hashes.push((k.to_string(), h));
            }
            out.push(p);
        }
        (out, hashes)
    }

    fn touch(&self, file: &str) {
        self.touched
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(file.to_string());
    }

    /// Ends the run: `false` when results were reused but the schemas the run ended with
    /// are not those they were computed with (then everything kept for the job is dropped
    /// and the caller runs again without reuse); else stores what this run kept.
    pub(super) fn finish(self) -> bool {
        let schemas = self.comparison.schemas_fingerprint();
        let reused = self.reused.load(Ordering::Relaxed);
        if reused > 0 && schemas != self.expected {
            tracing::debug!(side = %self.side, "schemas changed: comparing everything again");
            self.results.forget(&self.job);
            return false;
        }
        let touched = self
            .touched
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        let fresh = self
            .fresh
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        let touched_objects = self
            .touched_objects
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        let fresh_objects = self
            .fresh_objects
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        let mut jobs = self.results.lock();
        if let Some(j) = jobs.get_mut(&self.job) {
            j.files.retain(|k, _| touched.contains(k));
            j.files.extend(fresh);
            j.objects.retain(|k, _| touched_objects.contains(k));
            j.objects.extend(fresh_objects);
            j.schemas = schemas;
            if schemas.is_none() {
                j.files.clear();
                j.objects.clear();
            }
        }
        drop(jobs);
        tracing::debug!(side = %self.side, files = reused, "comparison results reused");
        self.results
            .last_reused
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(self.side, reused);
        true
    }
}

/// A cluster object's uid and resourceVersion; `None` for objects not read from a cluster
/// (or without a resourceVersion): those are never reused.
fn live_identity(o: &Object) -> Option<String> {
    match &o.origin {
        crate::model::Origin::Live {
            resource_version: Some(rv),
        } if !rv.is_empty() => {
            let uid = o
                .value
                .pointer("/metadata/uid")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("");
            Some(format!("{uid}\u{0}{rv}"))
        }
        _ => None,
    }
}

/// The CRDs among a cached file's objects, parsed (the registry reads them).
fn crds_of(file: &CachedFile) -> Vec<(ResourceKey, Object)> {
    file.objects()
        .iter()
        .filter(|(k, _, _)| is_crd(k))
        .filter_map(|(k, json, origin)| {
            let value = serde_json::from_str(json).ok()?;
            Some((k.clone(), Object::new(value, origin.clone())))
        })
        .collect()
}

impl FileReuse<BatchOut> for Session<'_, '_> {
    fn reuse(&self, file: &CachedFile) -> Option<Vec<BatchOut>> {
        self.expected?;
        let kept = {
            let jobs = self.results.lock();
            let kept = jobs.get(&self.job)?.files.get(file.key())?;
            Arc::clone(kept)
        };
        if &kept.file_hash != file.hash() {
            return None;
        }
        let now = self
            .comparison
            .counterparts_digest(file.objects().iter().map(|(k, _, _)| k))?;
        if now != kept.counterparts {
            return None;
        }
        let crds = crds_of(file);
        for (i, (partial, _, _)) in kept.results.iter().enumerate() {
            self.comparison
                .replay(partial, if i == 0 { &crds } else { &[] });
        }
        self.touch(file.key());
        self.reused.fetch_add(1, Ordering::Relaxed);
        Some(kept.results.clone())
    }

    fn keep(&self, file: &CachedFile, results: &[BatchOut]) {
        let Some(counterparts) = self
            .comparison
            .counterparts_digest(file.objects().iter().map(|(k, _, _)| k))
        else {
            return;
        };
        self.touch(file.key());
        self.fresh
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                file.key().to_string(),
                Arc::new(Kept {
                    file_hash: *file.hash(),
                    counterparts,
                    results: results.to_vec(),
                }),
            );
    }
}
