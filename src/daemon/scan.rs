//! Running one scan: read an environment's desired and live sides (or two environments'
//! live sides for a comparison) and compare them. Blocking; the scheduler runs it on a
//! blocking thread.
//!
//! A scan that could not read something says so: a missing or unreadable live source is a
//! `failed` scan (nothing is compared, nothing resolved); input errors or unknown scopes make
//! it `partial`, and then drifts that depend on what could not be read are neither reported
//! as missing/unmanaged nor resolved.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::config::{ComparisonConfig, Config, EnvironmentConfig, SourceSpec};
use crate::diff::DiffResult;
use crate::model::{DriftType, Snapshot};
use crate::source::dump::{LoadOptions, load_paths};

/// Object caches of cluster sources between scans, by source (incremental rescans: objects
/// whose uid and resourceVersion did not change are reused, not parsed again).
#[derive(Default)]
pub struct LiveCaches {
    by_source:
        std::sync::Mutex<std::collections::HashMap<String, crate::source::kube::ObjectCache>>,
    /// Objects reused from the cache by the last scan of each source (for logs and tests).
    pub last_reused: std::sync::Mutex<std::collections::HashMap<String, usize>>,
}

/// What one scan produced.
#[derive(Debug)]
pub struct ScanOutput {
    /// `ok`, `partial` or `failed`.
    pub outcome: &'static str,
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
            outcome: "failed",
            error: Some(error),
            result: None,
            revision: None,
            objects: 0,
            snapshot: None,
            untrusted_types: Vec::new(),
            unknown_kinds: Vec::new(),
        }
    }
}

fn resolve(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

/// Reads one source into a snapshot.
///
/// # Errors
/// A message naming the side and the source when nothing could be read.
pub fn load(spec: &SourceSpec, base: &Path, side: &str, cfg: &Config) -> Result<Snapshot, String> {
    load_cached(spec, base, side, cfg, None)
}

/// [`load`], reusing cluster objects from `caches` when given.
pub fn load_cached(
    spec: &SourceSpec,
    base: &Path,
    side: &str,
    cfg: &Config,
    caches: Option<&LiveCaches>,
) -> Result<Snapshot, String> {
    let (path, default_ns) = match spec {
        SourceSpec::Git(g) => return load_git(g, base, side, cfg),
        SourceSpec::Cluster(c) => return load_cluster(c, base, side, caches),
        SourceSpec::Dir { path } => (
            resolve(base, path),
            Some(
                cfg.default_namespace
                    .clone()
                    .unwrap_or_else(|| "default".into()),
            ),
        ),
        SourceSpec::Dump { path } => (resolve(base, path), None),
    };
    if !path.exists() {
        return Err(format!(
            "{side} source {}: {} does not exist",
            spec.describe(),
            path.display()
        ));
    }
    let opts = LoadOptions {
        side: side.to_string(),
        default_namespace: default_ns,
        cluster_scoped_kinds: cfg.cluster_scoped_kinds.clone(),
        drop_status: true,
        commit: None,
    };
    let snap = load_paths(&[path], &opts, &|_| {});
    if snap.objects.is_empty() && !snap.errors.is_empty() {
        let first = snap.errors[0].to_string();
        return Err(format!(
            "{side} source {}: nothing could be read ({first})",
            spec.describe()
        ));
    }
    Ok(snap)
}

fn load_git(
    g: &crate::source::render::GitSourceConfig,
    base: &Path,
    side: &str,
    cfg: &Config,
) -> Result<Snapshot, String> {
    use crate::source::{git, render};
    let abs = |p: &Path| {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            base.join(p)
        }
    };
    let (mut spec, mut auth, ropts) = g.parts().map_err(|e| format!("{side} source: git: {e}"))?;
    // A relative local repository path is relative to the config file, like every path.
    if !spec.repo.contains("://")
        && !spec.repo.contains('@')
        && !Path::new(&spec.repo).is_absolute()
    {
        spec.repo = abs(Path::new(&spec.repo)).display().to_string();
    }
    auth.token_file = auth.token_file.as_deref().map(abs);
    auth.ssh_key = auth.ssh_key.as_deref().map(abs);
    let data_dir = abs(cfg.data_dir.as_deref().unwrap_or(Path::new(".envdrift")));
    let sync = git::SyncOptions {
        cache_dir: data_dir.join("git"),
        ..git::SyncOptions::default()
    };
    let load = LoadOptions {
        side: side.to_string(),
        default_namespace: Some(
            cfg.default_namespace
                .clone()
                .unwrap_or_else(|| "default".into()),
        ),
        cluster_scoped_kinds: cfg.cluster_scoped_kinds.clone(),
        drop_status: true,
        commit: None,
    };
    let loaded = render::load_git(&spec, &auth, &sync, &ropts, &load)
        .map_err(|e| format!("{side} source {}: {e}", spec.describe()))?;
    Ok(loaded.snapshot)
}

fn load_cluster(
    c: &crate::config::ClusterSourceConfig,
    base: &Path,
    side: &str,
    caches: Option<&LiveCaches>,
) -> Result<Snapshot, String> {
    use crate::source::kube;
    let target = kube::ClusterTarget {
        kubeconfig: c.kubeconfig.as_deref().map(|p| resolve(base, p)),
        context: c.context.clone(),
        in_cluster: c.in_cluster,
    };
    let timeout = match &c.request_timeout {
        Some(t) => {
            crate::config::parse_duration(t).map_err(|e| format!("{side}: request_timeout: {e}"))?
        }
        None => std::time::Duration::from_secs(30),
    };
    let opts = kube::KubeOptions {
        env: side.to_string(),
        namespaces: c.namespaces.clone(),
        namespace_selector: c.namespace_selector.clone(),
        include: c.include_kinds.clone(),
        exclude: c.exclude_kinds.clone(),
        cluster_scoped: c.cluster_scoped.unwrap_or(true),
        request_timeout: timeout,
        ..kube::KubeOptions::default()
    };
    // The kube client runs on its own runtime, on a thread outside the caller's runtime.
    let described = format!("{side} source cluster");
    let key = format!("{side}|{c:?}");
    let cache = caches
        .and_then(|cs| {
            cs.by_source
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&key)
        })
        .unwrap_or_default();
    let live = std::thread::scope(|s| {
        s.spawn(|| kube::snapshot_blocking_cached(&target, &opts, &cache))
            .join()
            .map_err(|_| format!("{described}: the reader thread panicked"))?
            .map_err(|e| format!("{described}: {e}"))
    })?;
    if let Some(cs) = caches {
        tracing::debug!(source = %side, parsed = live.stats.parsed, reused = live.stats.reused, "cluster read");
        cs.last_reused
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(side.to_string(), live.stats.reused);
        cs.by_source
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, live.cache);
    }
    Ok(live.snapshot)
}

/// Hash of every live object, and of the whole snapshot.
fn snapshot_hash(snap: &Snapshot) -> (String, String) {
    let mut all = Sha256::new();
    let mut map = serde_json::Map::new();
    for (k, o) in &snap.objects {
        let h = Sha256::digest(o.value.to_string().as_bytes());
        let hex: String = h[..12].iter().map(|b| format!("{b:02x}")).collect();
        all.update(k.to_string().as_bytes());
        all.update(hex.as_bytes());
        map.insert(k.to_string(), serde_json::Value::String(hex));
    }
    let d = all.finalize();
    let hash: String = d[..16].iter().map(|b| format!("{b:02x}")).collect();
    (hash, serde_json::Value::Object(map).to_string())
}

fn finish(
    result: DiffResult,
    left: &Snapshot,
    right: &Snapshot,
    live_objects: usize,
) -> ScanOutput {
    let mut untrusted = Vec::new();
    let mut notes = Vec::new();
    if !right.errors.is_empty() || !right.unknown.is_empty() {
        // Whatever the right side failed to read could be a "missing" object.
        untrusted.push(DriftType::Missing);
        notes.push(format!(
            "{} input error(s) on {}",
            right.errors.len(),
            side_name(right)
        ));
    }
    if !left.errors.is_empty() {
        untrusted.push(DriftType::Unmanaged);
        notes.push(format!(
            "{} input error(s) on {}",
            left.errors.len(),
            side_name(left)
        ));
    }
    let unknown_kinds: Vec<String> = right
        .unknown
        .iter()
        .map(|u| format!("{}/{}: {}", u.group, u.kind, u.reason))
        .collect();
    let mut result = result;
    // Drifts of an untrusted type are not reported from a partial scan: they could be
    // artefacts of what could not be read.
    result.drifts.retain(|d| !untrusted.contains(&d.drift_type));
    let first_errors: Vec<String> = left
        .errors
        .iter()
        .chain(&right.errors)
        .take(3)
        .map(|e| e.to_string())
        .chain(unknown_kinds.iter().cloned())
        .collect();
    let stale = left
        .source
        .as_ref()
        .and_then(|s| s.stale.clone())
        .map(|r| format!("desired is stale (last fetched commit used): {r}"));
    ScanOutput {
        outcome: if untrusted.is_empty() {
            "ok"
        } else {
            "partial"
        },
        error: if untrusted.is_empty() {
            stale
        } else {
            Some(format!("{}: {}", notes.join("; "), first_errors.join("; ")))
        },
        revision: left.source.as_ref().and_then(|s| s.commit.clone()),
        objects: live_objects,
        snapshot: Some(snapshot_hash(right)),
        result: Some(result),
        untrusted_types: untrusted,
        unknown_kinds,
    }
}

fn side_name(s: &Snapshot) -> String {
    s.source.as_ref().map(|s| s.env.clone()).unwrap_or_default()
}

/// Scans one environment: desired vs live.
pub fn scan_environment(
    cfg: &Config,
    base: &Path,
    name: &str,
    env: &EnvironmentConfig,
    caches: Option<&LiveCaches>,
) -> ScanOutput {
    let desired = match load(&env.desired, base, "desired", cfg) {
        Ok(s) => s,
        Err(e) => return ScanOutput::failed(format!("{name}: {e}")),
    };
    let live = match load_cached(&env.live, base, name, cfg, caches) {
        Ok(s) => s,
        Err(e) => return ScanOutput::failed(format!("{name}: {e}")),
    };
    let opts = match cfg.engine_options(("desired", name)) {
        Ok(o) => o,
        Err(e) => return ScanOutput::failed(format!("{name}: config: {e}")),
    };
    let result = crate::diff::compare(&desired, &live, &opts);
    let n = live.objects.len();
    finish(result, &desired, &live, n)
}

/// Runs one comparison: the live sides of two environments.
pub fn scan_comparison(
    cfg: &Config,
    base: &Path,
    cmp: &ComparisonConfig,
    caches: Option<&LiveCaches>,
) -> ScanOutput {
    let name = cmp.name();
    let (Some(from_env), Some(to_env)) = (
        cfg.environments.get(&cmp.from),
        cfg.environments.get(&cmp.to),
    ) else {
        return ScanOutput::failed(format!("{name}: unknown environment"));
    };
    let from = match load_cached(&from_env.live, base, &cmp.from, cfg, caches) {
        Ok(s) => s,
        Err(e) => return ScanOutput::failed(format!("{name}: {e}")),
    };
    let to = match load_cached(&to_env.live, base, &cmp.to, cfg, caches) {
        Ok(s) => s,
        Err(e) => return ScanOutput::failed(format!("{name}: {e}")),
    };
    let opts = match cfg.compare_options(&cmp.from, &cmp.to) {
        Ok(o) => o,
        Err(e) => return ScanOutput::failed(format!("{name}: config: {e}")),
    };
    let from = match &opts.mapping {
        Some(m) => m.map_snapshot(from, &cmp.from),
        None => from,
    };
    let result = crate::diff::compare(&from, &to, &opts);
    let n = to.objects.len();
    finish(result, &from, &to, n)
}
