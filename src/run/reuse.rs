//! Comparison results kept between runs of the same job (the daemon's rescans), per file of
//! a streamed `to` side: a file whose bytes are unchanged ([`FileCache`](crate::source::dump::FileCache)
//! hit) is neither parsed nor compared again when what its objects were compared with is
//! unchanged too. "Unchanged" is checked, never assumed:
//!
//! - the job: same mode, side names and source descriptions, the same compiled config
//!   object (held weakly: a config compiled anew is a new config), the same overrides and
//!   the same unmanaged scope (desired namespaces and cluster-scoped kinds);
//! - the file: the same SHA-256 of its bytes, read with the same options;
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
use crate::diff::{Comparison, Partial};
use crate::model::{Object, ResourceKey};
use crate::source::dump::{CachedFile, FileReuse};

/// What one batch of a streamed side yields in [`crate::run::run`]: the comparison's
/// partial result, the objects' content hashes, their namespaces.
pub(super) type BatchOut = (Partial, Vec<(String, String)>, BTreeSet<String>);

/// Results kept per job and file (see the module doc). One per daemon, in
/// [`SourceCaches`](crate::source::SourceCaches).
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

    /// Files whose results the last run of the job whose `to` side is named `side` reused.
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
        let mut jobs = results.lock();
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
            reused: AtomicUsize::new(0),
        }
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
        let mut jobs = self.results.lock();
        if let Some(j) = jobs.get_mut(&self.job) {
            j.files.retain(|k, _| touched.contains(k));
            j.files.extend(fresh);
            j.schemas = schemas;
            if schemas.is_none() {
                j.files.clear();
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

/// The CRDs among a cached file's objects, parsed (the registry reads them).
fn crds_of(file: &CachedFile) -> Vec<(ResourceKey, Object)> {
    file.objects()
        .iter()
        .filter(|(k, _, _)| {
            k.group == "apiextensions.k8s.io" && k.kind == "CustomResourceDefinition"
        })
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
