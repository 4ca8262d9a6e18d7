//! Sources: where snapshots come from. Each source does its own I/O and hands the
//! engine a [`Snapshot`](crate::model::Snapshot).
//!
//! [`open`] is the one way from a [`SourceSpec`] (files, a Git repository, a cluster) to
//! objects with their metadata ([`Loaded`]); [`stream`] reads file sources one file at a
//! time for the live side of a comparison. The daemon's per-source caches
//! ([`SourceCaches`]) live behind both. [`crate::config::SourceConfig::spec`] turns a config file's
//! `desired:`/`live:` block into a spec.
//!
//! - [`manifest`]: YAML/JSON text → objects (pure parsing, with lines).
//! - [`dump`]: files and directories (Git checkouts, `kubectl get -o yaml` dumps).
//! - [`git`]: Git repositories (gix): cache, fetch, refs, trees at a commit.
//! - [`render`]: a Git tree into objects: plain manifests, Kustomize, Helm ([`render::load_git`]).
//! - [`adopt`]: adopt-into-Git patches (pure: file text in, unified diff out).
//! - [`kube`]: live clusters through kube-rs (discovery, paginated lists, incremental rescans).
//! - [`gitops`]: desired state from an Argo CD Application or a Flux object read from a
//!   cluster, rendered from its Git source.

pub mod adopt;
pub mod dump;
pub mod git;
pub mod gitops;
pub mod kube;
pub mod manifest;
pub mod render;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::model::{ResourceKey, Snapshot};

/// One side's source, resolved: paths are final, options complete.
#[derive(Debug, Clone)]
pub enum SourceSpec {
    /// Files or directories (recursive) of YAML/JSON objects.
    Files {
        paths: Vec<PathBuf>,
        /// Manifests as people write them (namespaced objects without a namespace get the
        /// default namespace), or live dumps (`kubectl get -o yaml`, `envdrift snapshot`).
        kind: FilesKind,
        /// Symbolic links and file sizes.
        limits: dump::FileLimits,
    },
    /// A Git repository at a ref, rendered (plain, Kustomize, Helm).
    Git(Box<GitSource>),
    /// A local directory rendered by Kustomize or Helm (`--renderer` on a directory).
    Rendered(Box<RenderedDir>),
    /// A live cluster through the Kubernetes API.
    Cluster(Box<ClusterSource>),
    /// An Argo CD Application or Flux object read from a cluster, rendered from its Git
    /// source ([`gitops`]).
    GitOps(Box<gitops::GitOpsSource>),
}

/// What a [`SourceSpec::Files`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilesKind {
    Manifests,
    Dump,
}

/// A Git source: where, with which credentials, and how to render it.
#[derive(Debug, Clone)]
pub struct GitSource {
    pub spec: git::GitSpec,
    pub auth: git::GitAuth,
    pub sync: git::SyncOptions,
    pub render: render::RenderOptions,
}

/// A local directory and how to render it.
#[derive(Debug, Clone)]
pub struct RenderedDir {
    pub dir: PathBuf,
    pub renderer: render::Renderer,
    pub render: render::RenderOptions,
}

/// A cluster source: which cluster, and what to read.
#[derive(Debug, Clone)]
pub struct ClusterSource {
    pub target: kube::ClusterTarget,
    pub opts: kube::KubeOptions,
}

impl ClusterSource {
    /// `cluster:CONTEXT`, `cluster:(current context)` or `in-cluster`.
    pub fn describe(&self) -> String {
        match (&self.target.context, self.target.in_cluster) {
            (_, true) => "in-cluster".to_string(),
            (Some(ctx), _) => format!("cluster:{ctx}"),
            (None, _) => "cluster:(current context)".to_string(),
        }
    }
}

impl SourceSpec {
    /// How the source is named in messages (never with credentials).
    pub(crate) fn describe(&self) -> String {
        match self {
            SourceSpec::Files { paths, .. } => paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            SourceSpec::Git(g) => g.spec.describe(),
            SourceSpec::Rendered(r) => format!("{} ({})", r.dir.display(), r.renderer.as_str()),
            SourceSpec::Cluster(c) => c.describe(),
            SourceSpec::GitOps(g) => g.describe(),
        }
    }

    /// Whether [`stream`] can read this source one file at a time.
    pub fn streams(&self) -> bool {
        matches!(self, SourceSpec::Files { .. })
    }
}

/// How to read a side: its name and the rules that shape its objects.
pub struct Ctx<'a> {
    /// The side's name in messages, errors and snapshots (`desired`, `live`, `staging`).
    pub side: &'a str,
    /// Namespace for namespaced manifests without one (manifest files and Git sources;
    /// live sources always carry their namespaces).
    pub default_namespace: &'a str,
    /// Extra cluster-scoped kinds (`Kind` or `Kind.group`).
    pub cluster_scoped_kinds: &'a [String],
    /// Caches kept between reads of the same source (the daemon's), if any.
    pub caches: Option<&'a SourceCaches>,
    /// Called after each file is read (progress bars).
    pub on_file: &'a (dyn Fn(&Path) + Sync),
}

impl Ctx<'_> {
    /// Records how many files the last read of this side took from the file cache.
    fn note_files_reused(&self) {
        if let Some(cs) = self.caches {
            let n = cs.files.take_reused();
            tracing::debug!(side = self.side, files_reused = n, "file cache");
            cs.files_reused
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(self.side.to_string(), n);
        }
    }

    fn load_options(&self, kind: FilesKind, limits: dump::FileLimits) -> dump::LoadOptions {
        dump::LoadOptions {
            side: self.side.to_string(),
            default_namespace: (kind == FilesKind::Manifests)
                .then(|| self.default_namespace.to_string()),
            cluster_scoped_kinds: self.cluster_scoped_kinds.to_vec(),
            drop_status: true,
            commit: None,
            limits,
        }
    }
}

/// What the desired side was rendered from, kept for adopt-into-Git patches.
#[derive(Debug, Clone)]
pub struct AdoptSources {
    pub files: BTreeMap<String, String>,
    pub renderer: render::Renderer,
    pub trace_order: Vec<String>,
    pub set_values: Vec<String>,
}

impl AdoptSources {
    pub(crate) fn as_sources(&self) -> adopt::Sources<'_> {
        adopt::Sources {
            files: &self.files,
            renderer: self.renderer,
            trace_order: &self.trace_order,
            set_values: &self.set_values,
        }
    }
}

/// An opened source: the snapshot (source, objects, errors, skipped files, unknown scopes)
/// and what else the run needs from it.
#[derive(Debug, Default)]
pub struct Loaded {
    pub snapshot: Snapshot,
    /// Objects read. When the side was streamed, `snapshot.objects` is empty and this is
    /// the count.
    pub objects: usize,
    /// Git sources: the files the objects came from (adopt patches).
    pub adopt: Option<AdoptSources>,
    /// Cluster sources: objects reused from the cache (not parsed again).
    pub reused: usize,
    /// Cluster sources: the cluster's schemas (its OpenAPI v3 documents), for the
    /// comparison's schema registry.
    pub schemas: Option<std::sync::Arc<crate::diff::schema::SchemaSet>>,
}

/// A source that could not be read at all. Problems in single files are not errors: they
/// are input errors in the snapshot, and the rest is read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{side} source {source_desc}: {message}")]
    Invalid {
        side: String,
        source_desc: String,
        message: String,
    },
    /// A Git source or a rendered directory that could not be fetched or rendered.
    #[error("{side} source {source_desc}: {source}")]
    Git {
        side: String,
        source_desc: String,
        /// Boxed: a render error is large, and every `Result` of this type carries it.
        source: Box<render::RenderError>,
    },
    #[error("{side} source {source_desc}: {source}")]
    Cluster {
        side: String,
        source_desc: String,
        /// Boxed, as for `Git`.
        source: Box<kube::KubeError>,
    },
    #[error("{side} source {source_desc}: the reader thread panicked")]
    Panicked { side: String, source_desc: String },
}

/// Caches kept between reads of the same sources (the daemon keeps one for its life):
/// cluster objects by uid and resourceVersion, and files by content
/// ([`dump::FileCache`]), so unchanged objects and files are not parsed again.
#[derive(Default)]
pub struct SourceCaches {
    clusters: Mutex<HashMap<String, kube::ObjectCache>>,
    /// Parsed files of file sources (directories, dumps), by options, path and content.
    pub files: dump::FileCache,
    /// Comparison results of unchanged files of streamed sides, per job
    /// ([`crate::run::reuse`]).
    pub results: crate::run::reuse::Results,
    /// Files the last read of each side took from [`SourceCaches::files`].
    pub files_reused: Mutex<HashMap<String, usize>>,
    /// Objects reused from the cache by the last read of each side (for logs and tests).
    pub last_reused: Mutex<HashMap<String, usize>>,
}

impl SourceCaches {
    /// Files the last read of `side` took from the file cache (not parsed again).
    pub fn files_reused(&self, side: &str) -> Option<usize> {
        self.files_reused
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(side)
            .copied()
    }

    /// Objects the last read of `side` reused from the cache.
    pub fn reused(&self, side: &str) -> Option<usize> {
        self.last_reused
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(side)
            .copied()
    }
}

/// Reads a source whole.
///
/// # Errors
/// [`SourceError`] when nothing could be read (a Git fetch or render that failed, a
/// cluster that could not be reached). Unreadable files are input errors in the snapshot.
pub fn open(spec: &SourceSpec, ctx: &Ctx<'_>) -> Result<Loaded, SourceError> {
    match spec {
        SourceSpec::Files {
            paths,
            kind,
            limits,
        } => {
            let snapshot = dump::load_paths(paths, &ctx.load_options(*kind, *limits), ctx.on_file);
            Ok(Loaded {
                objects: snapshot.objects.len(),
                snapshot,
                ..Loaded::default()
            })
        }
        SourceSpec::Git(g) => open_git(g, ctx),
        SourceSpec::Rendered(r) => open_rendered(r, ctx),
        SourceSpec::Cluster(c) => open_cluster(c, ctx),
        SourceSpec::GitOps(g) => gitops::open(g, ctx),
    }
}

/// Reads a source whole like [`open`], its objects into a
/// [`CompactSnapshot`](crate::diff::CompactSnapshot) (the `from` side of a comparison,
/// held while the other side streams past it); the returned snapshot has the metadata and
/// no objects (`objects` is the count). File sources are compacted while they are read;
/// others once read.
///
/// # Errors
/// As [`open`].
pub fn open_compact(
    spec: &SourceSpec,
    ctx: &Ctx<'_>,
) -> Result<(Loaded, crate::diff::CompactSnapshot), SourceError> {
    match spec {
        SourceSpec::Files {
            paths,
            kind,
            limits,
        } => {
            let (snapshot, compact) = dump::load_paths_compact(
                paths,
                &ctx.load_options(*kind, *limits),
                ctx.on_file,
                ctx.caches.map(|c| &c.files),
            );
            ctx.note_files_reused();
            let loaded = Loaded {
                objects: crate::diff::DesiredIndex::len(&compact),
                snapshot,
                ..Loaded::default()
            };
            Ok((loaded, compact))
        }
        _ => {
            let mut loaded = open(spec, ctx)?;
            let objects = std::mem::take(&mut loaded.snapshot.objects);
            Ok((loaded, crate::diff::CompactSnapshot::from_objects(objects)))
        }
    }
}

/// A streamed side: the consumer's results, one per file, and the side's metadata.
pub struct StreamedSide<R> {
    pub results: Vec<R>,
    pub loaded: Loaded,
}

/// Reads a file source one file at a time (in parallel), handing each file's objects to
/// `consume` and then dropping them: memory holds a few files, never the whole side.
/// Other sources are read whole and handed over as one batch.
///
/// # Errors
/// As [`open`].
pub fn stream<R: Send>(
    spec: &SourceSpec,
    ctx: &Ctx<'_>,
    consume: &dump::Consumer<'_, R>,
    reuse: Option<&dyn dump::FileReuse<R>>,
) -> Result<StreamedSide<R>, SourceError> {
    match spec {
        SourceSpec::Files {
            paths,
            kind,
            limits,
        } => {
            let s = dump::stream_paths(
                paths,
                &ctx.load_options(*kind, *limits),
                ctx.on_file,
                consume,
                ctx.caches.map(|c| &c.files),
                reuse,
            );
            ctx.note_files_reused();
            Ok(StreamedSide {
                results: s.results,
                loaded: Loaded {
                    snapshot: s.meta,
                    objects: s.objects,
                    ..Loaded::default()
                },
            })
        }
        _ => {
            let mut loaded = open(spec, ctx)?;
            let objects: Vec<(ResourceKey, crate::model::Object)> =
                std::mem::take(&mut loaded.snapshot.objects)
                    .into_iter()
                    .collect();
            let results = vec![consume(&objects)];
            Ok(StreamedSide { results, loaded })
        }
    }
}

fn open_git(g: &GitSource, ctx: &Ctx<'_>) -> Result<Loaded, SourceError> {
    let started = std::time::Instant::now();
    let load = ctx.load_options(FilesKind::Manifests, dump::FileLimits::default());
    let gl = render::load_git(&g.spec, &g.auth, &g.sync, &g.render, &load).map_err(|source| {
        SourceError::Git {
            side: ctx.side.to_string(),
            source_desc: g.spec.describe(),
            source: Box::new(source),
        }
    })?;
    tracing::info!(
        side = ctx.side,
        source = %g.spec.describe(),
        commit = %gl.commit,
        renderer = gl.renderer.as_str(),
        objects = gl.snapshot.objects.len(),
        fetch_ms = u64::try_from(gl.fetch_time.as_millis()).unwrap_or(u64::MAX),
        render_ms = u64::try_from(gl.render_time.as_millis()).unwrap_or(u64::MAX),
        total_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        cloned = gl.cloned,
        "loaded git source"
    );
    if let Some(reason) = &gl.stale {
        tracing::debug!(side = ctx.side, source = %g.spec.describe(), "STALE: {reason}");
    }
    Ok(rendered(gl))
}

fn open_rendered(r: &RenderedDir, ctx: &Ctx<'_>) -> Result<Loaded, SourceError> {
    let load = ctx.load_options(FilesKind::Manifests, dump::FileLimits::default());
    let gl = render::load_local(&r.dir, r.renderer, &r.render, &load).map_err(|source| {
        SourceError::Git {
            side: ctx.side.to_string(),
            source_desc: r.dir.display().to_string(),
            source: Box::new(source),
        }
    })?;
    tracing::info!(
        side = ctx.side,
        source = %r.dir.display(),
        renderer = gl.renderer.as_str(),
        objects = gl.snapshot.objects.len(),
        render_ms = u64::try_from(gl.render_time.as_millis()).unwrap_or(u64::MAX),
        "rendered local directory"
    );
    Ok(rendered(gl))
}

/// A rendered source (Git or a local directory) with what adopt patches need.
pub(crate) fn rendered(gl: render::GitLoad) -> Loaded {
    Loaded {
        objects: gl.snapshot.objects.len(),
        snapshot: gl.snapshot,
        adopt: Some(AdoptSources {
            files: gl.files,
            renderer: gl.renderer,
            trace_order: gl.trace_order,
            set_values: gl.set_values,
        }),
        reused: 0,
        schemas: None,
    }
}

fn open_cluster(c: &ClusterSource, ctx: &Ctx<'_>) -> Result<Loaded, SourceError> {
    let described = c.describe();
    let mut opts = c.opts.clone();
    opts.env = ctx.side.to_string();
    let key = format!("{}|{:?}|{:?}", ctx.side, c.target, opts);
    let cache = ctx
        .caches
        .and_then(|cs| {
            cs.clusters
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .remove(&key)
        })
        .unwrap_or_default();
    // The kube client runs on its own runtime, on a thread outside any caller's runtime.
    let live = std::thread::scope(|s| {
        s.spawn(|| kube::snapshot_blocking_cached(&c.target, &opts, &cache))
            .join()
    })
    .map_err(|_| SourceError::Panicked {
        side: ctx.side.to_string(),
        source_desc: described.clone(),
    })?
    .map_err(|source| SourceError::Cluster {
        side: ctx.side.to_string(),
        source_desc: described,
        source: Box::new(source),
    })?;
    tracing::debug!(
        side = ctx.side,
        parsed = live.stats.parsed,
        reused = live.stats.reused,
        "cluster read"
    );
    if let Some(cs) = ctx.caches {
        cs.last_reused
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(ctx.side.to_string(), live.stats.reused);
        cs.clusters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(key, live.cache);
    }
    Ok(Loaded {
        objects: live.snapshot.objects.len(),
        snapshot: live.snapshot,
        adopt: None,
        reused: live.stats.reused,
        schemas: Some(live.schemas),
    })
}
