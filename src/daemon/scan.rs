//! A daemon scan as a [`run::Job`](crate::run::Job): an environment's desired and live
//! sides, or two environments' live sides for a comparison, read from the config's
//! source blocks; the [`Outcome`](crate::run::Outcome) becomes what the store records.
//! Blocking; the scheduler runs it on a blocking thread.
//!
//! The trust rules are [`crate::run`]'s: a side that cannot be read is a `failed` scan
//! (nothing compared, nothing resolved); input errors or unknown scopes make it `partial`,
//! and drifts that depend on what could not be read are neither reported nor resolved.

use std::path::Path;
use std::sync::Arc;

use crate::config::{ComparisonConfig, Compiled, Config, EnvironmentConfig};
use crate::diff::DiffResult;
use crate::model::DriftType;
use crate::report::Mode;
use crate::run::{self, Input, Job, Outcome, Trust};
use crate::source::SourceCaches;

/// What the daemon keeps between scans: parsed sources and comparison results.
#[derive(Default)]
pub struct Caches {
    pub sources: SourceCaches,
    pub results: crate::run::reuse::Results,
}
use crate::store::ScanOutcome;

/// What one scan produced.
#[derive(Debug)]
pub struct ScanOutput {
    pub outcome: ScanOutcome,
    pub error: Option<String>,
    pub result: Option<DiffResult>,
    /// Source revisions (Git commits) when known.
    pub revision: Option<String>,
    pub objects: usize,
    /// `(hash, {key: object hash} JSON)` of the live side.
    pub snapshot: Option<(String, String)>,
    /// Drift types whose absence cannot be trusted in this scan (their side had input
    /// errors or unknown scopes): such drifts are not resolved.
    pub untrusted_types: Vec<DriftType>,
    /// Kinds (`group/Kind`) the live side could not list.
    pub unknown_kinds: Vec<String>,
}

impl ScanOutput {
    fn failed(error: String) -> ScanOutput {
        ScanOutput {
            outcome: ScanOutcome::Failed,
            error: Some(error),
            result: None,
            revision: None,
            objects: 0,
            snapshot: None,
            untrusted_types: Vec::new(),
            unknown_kinds: Vec::new(),
        }
    }

    pub(crate) fn of(name: &str, out: Outcome) -> ScanOutput {
        let unknown_kinds: Vec<String> = out
            .to
            .meta
            .unknown
            .iter()
            .map(|u| format!("{}/{}: {}", u.group, u.kind, u.reason))
            .collect();
        let stale = out
            .from
            .meta
            .source
            .as_ref()
            .and_then(|s| s.stale.clone())
            .map(|r| format!("desired is stale (last fetched commit used): {r}"));
        let revision = out.from.meta.source.as_ref().and_then(|s| s.commit.clone());
        let snapshot = out.to_hash.clone().map(|h| (h.hash, h.objects));
        let (outcome, error, untrusted) = match out.trust {
            Trust::Failed(e) => return ScanOutput::failed(format!("{name}: {e}")),
            Trust::Complete => (ScanOutcome::Ok, stale, Vec::new()),
            Trust::Partial { reasons, untrusted } => {
                (ScanOutcome::Partial, Some(reasons.join("; ")), untrusted)
            }
        };
        ScanOutput {
            outcome,
            error,
            revision,
            objects: out.to.objects,
            snapshot,
            result: Some(out.result),
            untrusted_types: untrusted,
            unknown_kinds,
        }
    }
}

/// The job of an environment's scan: its desired side vs its live side.
///
/// # Errors
/// A source block that does not resolve (a bad Git block), naming the side.
pub(crate) fn environment_job<'a>(
    cfg: &Config,
    compiled: &Arc<Compiled>,
    base: &Path,
    name: &str,
    env: &EnvironmentConfig,
) -> Result<Job<'a>, String> {
    let dd = cfg.data_dir_in(base);
    let desired = env
        .desired
        .spec(base, &dd, "desired")
        .map_err(|e| e.to_string())?;
    let live = env.live.spec(base, &dd, name).map_err(|e| e.to_string())?;
    Ok(Job::new(
        Mode::DesiredVsLive,
        Input::spec("desired", desired),
        Input::spec(name, live),
        Arc::clone(compiled),
    ))
}

/// Scans one environment: desired vs live.
pub(crate) fn scan_environment(
    cfg: &Config,
    compiled: &Arc<Compiled>,
    base: &Path,
    name: &str,
    env: &EnvironmentConfig,
    caches: Option<&Caches>,
) -> ScanOutput {
    let mut job = match environment_job(cfg, compiled, base, name, env) {
        Ok(j) => j,
        Err(e) => return ScanOutput::failed(format!("{name}: {e}")),
    };
    job.caches = caches.map(|c| &c.sources);
    job.kept = caches.map(|c| &c.results);
    job.hash_to = true;
    ScanOutput::of(name, run::run(&job))
}

/// Runs one comparison: the live sides of two environments.
pub(crate) fn scan_comparison(
    cfg: &Config,
    compiled: &Arc<Compiled>,
    base: &Path,
    cmp: &ComparisonConfig,
    caches: Option<&Caches>,
) -> ScanOutput {
    let name = cmp.name();
    let (Some(from_env), Some(to_env)) = (
        cfg.environments.get(&cmp.from),
        cfg.environments.get(&cmp.to),
    ) else {
        return ScanOutput::failed(format!("{name}: unknown environment"));
    };
    let dd = cfg.data_dir_in(base);
    let specs = from_env
        .live
        .spec(base, &dd, &cmp.from)
        .and_then(|f| to_env.live.spec(base, &dd, &cmp.to).map(|t| (f, t)));
    let (from, to) = match specs {
        Ok(s) => s,
        Err(e) => return ScanOutput::failed(format!("{name}: {e}")),
    };
    let mut job = Job::new(
        Mode::EnvVsEnv,
        Input::spec(cmp.from.clone(), from),
        Input::spec(cmp.to.clone(), to),
        Arc::clone(compiled),
    );
    job.caches = caches.map(|c| &c.sources);
    job.kept = caches.map(|c| &c.results);
    job.hash_to = true;
    ScanOutput::of(&name, run::run(&job))
}
