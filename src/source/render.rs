//! Renderers: the files of a Git tree into Kubernetes objects.
//!
//! Entry points: [`load_git`] (fetch, read the tree at the commit, render, parse into a
//! [`Snapshot`]) and [`load_local`] (the same for a local chart or Kustomize directory).
//! Renderers:
//!
//! - `plain`: every `.yaml`/`.yml`/`.json` file under the path, recursively (hidden entries
//!   skipped, files without Kubernetes objects noted as skipped). Each object's origin is
//!   its repository-relative file, line and commit.
//! - `kustomize`: `kustomize build DIR` or `kubectl kustomize DIR` ([`KustomizeCommand`]).
//! - `helm`: `helm template RELEASE DIR --namespace NS -f VALUES… --set K=V…`.
//!
//! [`detect`] picks one when none is configured: `kustomization.yaml` (or `.yml`,
//! `Kustomization`) → kustomize, `Chart.yaml` → helm, else plain.
//!
//! External binaries are run without a shell, with a timeout, in a temporary directory that
//! holds only the part of the tree they need (the path, plus the directories its
//! kustomizations or values files reference), with a clean environment (`PATH` with the
//! binary's own directory and `/usr/bin:/bin`, a private `HOME`). Their stderr is shown on
//! failure; a missing binary is an error naming it and how to install it.
//!
//! # Caveats
//! - Remote Kustomize bases (`github.com/…`, `https://…`) and Helm chart dependencies that
//!   are not vendored in `charts/` are fetched by the binaries themselves, which fails
//!   without network; vendor them in the repository.
//! - Rendered objects point at the file they most likely come from: for Helm the template
//!   named by its `# Source:` comment, for Kustomize the plain manifest in the rendered tree
//!   with the same kind and a name contained in the rendered name, else `kustomization.yaml`.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::model::{Origin, Snapshot, SourceRef};
use crate::source::dump::{LoadOptions, merge_file, objects_from_bytes};
use crate::source::git::{self, GitAuth, GitError, GitSpec, SyncOptions, TreeFile};
use crate::source::manifest::{parse_manifest_text, split_documents};

/// How a desired path becomes objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Renderer {
    Plain,
    Kustomize,
    Helm,
}

impl Renderer {
    pub fn as_str(self) -> &'static str {
        match self {
            Renderer::Plain => "plain",
            Renderer::Kustomize => "kustomize",
            Renderer::Helm => "helm",
        }
    }
}

impl std::str::FromStr for Renderer {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "plain" => Ok(Renderer::Plain),
            "kustomize" => Ok(Renderer::Kustomize),
            "helm" => Ok(Renderer::Helm),
            o => Err(format!(
                "unknown renderer `{o}` (choose from: plain, kustomize, helm)"
            )),
        }
    }
}

/// Which program renders Kustomize directories.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KustomizeCommand {
    /// `kustomize` when it is on `PATH`, else `kubectl kustomize`. The default.
    #[default]
    Auto,
    /// `kustomize build DIR`.
    Kustomize,
    /// `kubectl kustomize DIR`.
    Kubectl,
}

/// `helm template` settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HelmOptions {
    /// Release name. Default: the chart directory's name.
    pub release: Option<String>,
    /// `--namespace`. Default: none (Helm's `default`).
    pub namespace: Option<String>,
    /// Values files, relative to the chart directory (`values-prod.yaml`,
    /// `../../env/prod/values.yaml`), in order.
    pub values: Vec<String>,
    /// `--set` values (`image.tag=1.4.2`), in order.
    pub set: Vec<String>,
}

/// How to render a source.
#[derive(Debug, Clone)]
pub struct RenderOptions {
    /// `None`: detect ([`detect`]).
    pub renderer: Option<Renderer>,
    pub kustomize: KustomizeCommand,
    pub helm: HelmOptions,
    /// Longest a renderer may run. Default 120 s.
    pub timeout: Duration,
    /// Directories searched for binaries before `PATH` (e.g. a project's `.tools/bin`).
    pub extra_path: Vec<PathBuf>,
    /// Edits of the tree and of the rendered output (a GitOps object's options).
    pub hooks: RenderHooks,
}

/// A tree edit: the source's path and the files read (those under the path for plain
/// sources, the whole tree for rendered ones), changed in place before rendering.
pub type TreeEdit = dyn Fn(&str, &mut Vec<TreeFile>) -> Result<(), String> + Send + Sync;
/// An output edit: the renderer's multi-document YAML, rewritten before it is parsed.
pub type OutputEdit = dyn Fn(&str) -> Result<String, String> + Send + Sync;

/// Changes made to a source before and after rendering: how an Argo CD Application's or a
/// Flux object's options (name prefixes, images, inline values, post-build substitutions)
/// are applied to the files of its Git source ([`crate::source::gitops`]). None by default.
#[derive(Clone, Default)]
pub struct RenderHooks {
    /// Applied to the files read from the tree, before the renderer is detected and run.
    pub tree: Option<std::sync::Arc<TreeEdit>>,
    /// Applied to a renderer's output (Kustomize, Helm), before it is parsed.
    pub output: Option<std::sync::Arc<OutputEdit>>,
}

impl std::fmt::Debug for RenderHooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RenderHooks")
            .field("tree", &self.tree.is_some())
            .field("output", &self.output.is_some())
            .finish()
    }
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            renderer: None,
            kustomize: KustomizeCommand::Auto,
            helm: HelmOptions::default(),
            timeout: Duration::from_secs(120),
            extra_path: Vec::new(),
            hooks: RenderHooks::default(),
        }
    }
}

/// Errors of rendering.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error(transparent)]
    Git(#[from] GitError),
    /// The renderer's program is not installed.
    #[error("`{binary}` not found on PATH (needed to render {path} with {renderer}); {hint}")]
    MissingBinary {
        binary: String,
        renderer: &'static str,
        path: String,
        hint: &'static str,
    },
    /// The program ran and failed.
    #[error("{command} failed for {path} at {commit} ({status}):\n{stderr}")]
    Failed {
        command: String,
        path: String,
        commit: String,
        status: String,
        stderr: String,
    },
    /// The program ran longer than the timeout and was killed.
    #[error("{command} for {path} was killed after {secs} s (timeout)")]
    TimedOut {
        command: String,
        path: String,
        secs: u64,
    },
    /// Preparing the temporary tree or starting the program failed.
    #[error("rendering {path}: {reason}")]
    Io { path: String, reason: String },
}

/// Picks the renderer for a directory from the files in it (see the module doc).
pub(crate) fn detect(files: &[TreeFile], dir: &str) -> Renderer {
    let has = |name: &str| {
        let want = if dir.is_empty() {
            name.to_string()
        } else {
            format!("{dir}/{name}")
        };
        files.iter().any(|f| f.path == want)
    };
    if has("kustomization.yaml") || has("kustomization.yml") || has("Kustomization") {
        Renderer::Kustomize
    } else if has("Chart.yaml") {
        Renderer::Helm
    } else {
        Renderer::Plain
    }
}

/// What [`load_git`] produced.
pub struct GitLoad {
    pub snapshot: Snapshot,
    pub renderer: Renderer,
    /// The text of the YAML/JSON files that made the objects (repository-relative path →
    /// text): the manifests for `plain`; the rendered tree for Kustomize/Helm. For
    /// adopt-into-Git patches and value tracing.
    pub files: BTreeMap<String, String>,
    /// Rendered sources: the files a value may come from, in the order to search them
    /// (Helm: the values files from the last given to the chart's `values.yaml`; Kustomize:
    /// the overlay's files, then its bases').
    pub trace_order: Vec<String>,
    /// Helm `--set` values (a value set there cannot be adopted into a file).
    pub set_values: Vec<String>,
    pub commit: String,
    pub stale: Option<String>,
    pub cloned: bool,
    pub fetch_time: Duration,
    pub render_time: Duration,
}

/// Fetches `spec`, reads the tree at the resolved commit and renders it into a snapshot.
/// Parse problems in single files are input errors in the snapshot (naming the file, line
/// and commit); the other files are still read.
///
/// # Errors
/// Fetch/ref/path errors ([`GitError`]) and renderer failures ([`RenderError`]).
pub fn load_git(
    spec: &GitSpec,
    auth: &GitAuth,
    sync_opts: &SyncOptions,
    render: &RenderOptions,
    load: &LoadOptions,
) -> Result<GitLoad, RenderError> {
    let synced = git::sync(spec, auth, sync_opts)?;
    let started = std::time::Instant::now();
    let mut under = git::read_files(&synced, &spec.reference, &spec.path)?;
    apply_tree_edit(render, spec, &mut under)?;
    let renderer = render
        .renderer
        .unwrap_or_else(|| detect(&under, &spec.path));
    let mut load = LoadOptions {
        commit: Some(synced.commit.clone()),
        ..load.clone()
    };
    helm_namespace(renderer, render, &mut load);
    let mut snapshot = Snapshot {
        source: Some(SourceRef {
            env: load.side.clone(),
            description: spec.describe(),
            commit: Some(synced.commit.clone()),
            stale: synced.stale.clone(),
        }),
        ..Snapshot::default()
    };
    let mut files = BTreeMap::new();
    let mut trace_order = Vec::new();
    match renderer {
        Renderer::Plain => {
            use rayon::prelude::*;
            let manifests: Vec<TreeFile> = under
                .into_iter()
                .filter(|f| is_manifest_path(&f.path, &spec.path))
                .collect();
            let parsed: Vec<_> = manifests
                .into_par_iter()
                .map(|f| {
                    let fo = objects_from_bytes(Path::new(&f.path), f.data.clone(), &load);
                    (f, with_commit_in_errors(fo, Some(&synced.commit)))
                })
                .collect();
            for (f, fo) in parsed {
                if let Ok(t) = String::from_utf8(f.data) {
                    files.insert(f.path, t);
                }
                merge_file(&mut snapshot, fo, &load);
            }
        }
        Renderer::Kustomize | Renderer::Helm => {
            let mut all = git::read_files(&synced, &spec.reference, "")?;
            apply_tree_edit(render, spec, &mut all)?;
            let tree = Tree {
                path: &spec.path,
                describe: spec.describe(),
                commit: Some(&synced.commit),
            };
            let r = render_tree(renderer, &tree, &all, render, &load)?;
            files = r.files;
            trace_order = r.trace_order;
            for fo in r.objects {
                merge_file(&mut snapshot, fo, &load);
            }
        }
    }
    Ok(GitLoad {
        snapshot,
        renderer,
        files,
        trace_order,
        set_values: set_values(renderer, render),
        commit: synced.commit,
        stale: synced.stale,
        cloned: synced.cloned,
        fetch_time: synced.fetch_time,
        render_time: started.elapsed(),
    })
}

/// Runs the tree hook of `render` (if any) on files of `spec`'s tree.
fn apply_tree_edit(
    render: &RenderOptions,
    spec: &GitSpec,
    files: &mut Vec<TreeFile>,
) -> Result<(), RenderError> {
    match &render.hooks.tree {
        Some(edit) => edit(&spec.path, files).map_err(|reason| RenderError::Io {
            path: spec.describe(),
            reason,
        }),
        None => Ok(()),
    }
}

/// `helm install --namespace NS` puts objects without a namespace into NS.
fn helm_namespace(renderer: Renderer, render: &RenderOptions, load: &mut LoadOptions) {
    if renderer == Renderer::Helm
        && let Some(ns) = &render.helm.namespace
    {
        load.default_namespace = Some(ns.clone());
    }
}

/// Helm `--set` values (a value set there cannot be adopted into a file).
fn set_values(renderer: Renderer, render: &RenderOptions) -> Vec<String> {
    match renderer {
        Renderer::Helm => render.helm.set.clone(),
        _ => Vec::new(),
    }
}

/// Files to render: a Git tree at a commit, or a local directory.
struct Tree<'a> {
    /// The source's directory inside the tree, `/`-separated (empty: the root).
    path: &'a str,
    /// How the source is named in messages.
    describe: String,
    /// The commit the files were read at; `None` for a local directory.
    commit: Option<&'a str>,
}

/// What [`render_tree`] produced.
struct Rendered {
    files: BTreeMap<String, String>,
    trace_order: Vec<String>,
    objects: Vec<crate::source::dump::FileObjects>,
}

/// Runs Kustomize or Helm on the part of `all` the source needs and parses the output.
fn render_tree(
    renderer: Renderer,
    tree: &Tree<'_>,
    all: &[TreeFile],
    render: &RenderOptions,
    load: &LoadOptions,
) -> Result<Rendered, RenderError> {
    let scope = needed_scope(renderer, tree.path, all, render);
    let mut files = BTreeMap::new();
    for f in all {
        if is_yaml(&f.path)
            && scope.contains(&f.path)
            && let Ok(t) = std::str::from_utf8(&f.data)
        {
            files.insert(f.path.clone(), t.to_string());
        }
    }
    let trace_order = scope.trace_order(&files);
    let mut text = run_renderer(renderer, tree, all, &scope, render)?;
    if let Some(edit) = &render.hooks.output {
        text = edit(&text).map_err(|reason| RenderError::Io {
            path: tree.describe.clone(),
            reason,
        })?;
    }
    let objects = parse_rendered(&text, renderer, tree, &files, load);
    Ok(Rendered {
        files,
        trace_order,
        objects,
    })
}

/// Renders a local directory (a Helm chart or a Kustomize directory) with `render`'s
/// renderer, exactly as a Git source at that path would be rendered (same scope, same
/// origins, adopt tracing), without a commit. Paths are relative to the nearest enclosing
/// Git work tree (else the directory itself), so overlays may name `../base` and values
/// files may live beside the chart; only what the renderer needs is read.
///
/// # Errors
/// An unreadable directory, a missing renderer binary, a failed or timed-out render.
pub(crate) fn load_local(
    dir: &Path,
    renderer: Renderer,
    render: &RenderOptions,
    load: &LoadOptions,
) -> Result<GitLoad, RenderError> {
    load_dir(dir, renderer, render, load, false)
}

/// Renders a chart directory pulled from a Helm repository: as [`load_local`], with the
/// directory itself as the root (paths relative to the chart) and the tree hook of
/// `render` applied to its files (the GitOps object's inline values).
///
/// # Errors
/// As [`load_local`].
pub(crate) fn load_chart_dir(
    dir: &Path,
    render: &RenderOptions,
    load: &LoadOptions,
) -> Result<GitLoad, RenderError> {
    load_dir(dir, Renderer::Helm, render, load, true)
}

fn load_dir(
    dir: &Path,
    renderer: Renderer,
    render: &RenderOptions,
    load: &LoadOptions,
    own_root: bool,
) -> Result<GitLoad, RenderError> {
    let started = std::time::Instant::now();
    let describe = dir.display().to_string();
    let io = |reason: String| RenderError::Io {
        path: describe.clone(),
        reason,
    };
    let dir = dir
        .canonicalize()
        .map_err(|e| io(format!("cannot read: {e}")))?;
    if !dir.is_dir() {
        return Err(io(format!(
            "--renderer {} needs a directory (a chart or a kustomization)",
            renderer.as_str()
        )));
    }
    let root = if own_root {
        dir.clone()
    } else {
        dir.ancestors()
            .find(|a| a.join(".git").exists())
            .unwrap_or(&dir)
            .to_path_buf()
    };
    let rel = dir
        .strip_prefix(&root)
        .map(|p| p.to_string_lossy().replace('\\', "/"))
        .unwrap_or_default();
    // Only what the renderer needs is read: the chart directory, or the directories the
    // kustomization references (recursively), as for Git sources.
    let mut needed = Vec::new();
    let mut single = Vec::new();
    match renderer {
        Renderer::Kustomize => kustomize_needs(&DiskTree(&root), &rel, &mut needed),
        _ => {
            needed.push(rel.clone());
            single.extend(
                render
                    .helm
                    .values
                    .iter()
                    .filter_map(|v| resolve_rel(&rel, v)),
            );
        }
    }
    let mut all = Vec::new();
    for f in &single {
        if let Ok(data) = std::fs::read(root.join(f)) {
            all.push(TreeFile {
                path: f.clone(),
                data,
                executable: false,
            });
        }
    }
    for d in &needed {
        let abs = if d.is_empty() {
            root.clone()
        } else {
            root.join(d)
        };
        if abs.is_dir() {
            read_local_tree(&root, &abs, &mut all).map_err(&io)?;
        }
    }
    all.sort_by(|a, b| a.path.cmp(&b.path));
    all.dedup_by(|a, b| a.path == b.path);
    if own_root && let Some(edit) = &render.hooks.tree {
        edit(&rel, &mut all).map_err(&io)?;
    }
    let mut snapshot = Snapshot {
        source: Some(SourceRef {
            env: load.side.clone(),
            description: describe.clone(),
            commit: None,
            stale: None,
        }),
        ..Snapshot::default()
    };
    let mut load = load.clone();
    helm_namespace(renderer, render, &mut load);
    let (files, trace_order) = match renderer {
        Renderer::Plain => {
            return Err(io(
                "plain directories are read as manifests, not rendered".into()
            ));
        }
        Renderer::Kustomize | Renderer::Helm => {
            let tree = Tree {
                path: &rel,
                describe,
                commit: None,
            };
            let r = render_tree(renderer, &tree, &all, render, &load)?;
            for fo in r.objects {
                merge_file(&mut snapshot, fo, &load);
            }
            (r.files, r.trace_order)
        }
    };
    Ok(GitLoad {
        snapshot,
        renderer,
        files,
        trace_order,
        set_values: set_values(renderer, render),
        commit: String::new(),
        stale: None,
        cloned: false,
        fetch_time: Duration::ZERO,
        render_time: started.elapsed(),
    })
}

/// Upper bound on a local tree handed to a renderer (files), against walking a home
/// directory by mistake.
const MAX_LOCAL_TREE_FILES: usize = 50_000;

/// Reads the regular files under `dir` (skipping `.git` and symlinks) as tree files with
/// paths relative to `root`.
fn read_local_tree(root: &Path, dir: &Path, out: &mut Vec<TreeFile>) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut entries: Vec<_> = entries.filter_map(Result::ok).collect();
    entries.sort_by_key(std::fs::DirEntry::file_name);
    for e in entries {
        if e.file_name() == ".git" {
            continue;
        }
        let path = e.path();
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            read_local_tree(root, &path, out)?;
        } else if ft.is_file() {
            if out.len() >= MAX_LOCAL_TREE_FILES {
                return Err(format!(
                    "{}: more than {MAX_LOCAL_TREE_FILES} files; render a smaller directory",
                    root.display()
                ));
            }
            let data = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let executable = e
                .metadata()
                .is_ok_and(|m| m.permissions().mode() & 0o111 != 0);
            let rel = path
                .strip_prefix(root)
                .map(|p| p.to_string_lossy().replace('\\', "/"))
                .unwrap_or_default();
            out.push(TreeFile {
                path: rel,
                data,
                executable,
            });
        }
    }
    Ok(())
}

fn is_yaml(path: &str) -> bool {
    path.ends_with(".yaml") || path.ends_with(".yml") || path.ends_with(".json")
}

/// A manifest under `base`: YAML/JSON, no hidden component below the base.
fn is_manifest_path(path: &str, base: &str) -> bool {
    let rel = path
        .strip_prefix(base)
        .map(|r| r.trim_start_matches('/'))
        .unwrap_or(path);
    // A single file named explicitly is read whatever its extension.
    if rel.is_empty() {
        return true;
    }
    is_yaml(path) && !rel.split('/').any(|s| s.starts_with('.'))
}

fn with_commit_in_errors(
    mut fo: crate::source::dump::FileObjects,
    commit: Option<&str>,
) -> crate::source::dump::FileObjects {
    if let Some(commit) = commit {
        for e in &mut fo.errors {
            e.message = format!("{} (commit {})", e.message, short(commit));
        }
    }
    fo
}

fn short(commit: &str) -> &str {
    &commit[..commit.len().min(12)]
}

/// Local directories a kustomization references (`resources`, `bases`, `components`,
/// patch and generator files), relative to the repository root, following directories
/// recursively. Remote references are left to the binary.
fn kustomize_needs(files: &dyn TreeView, dir: &str, out: &mut Vec<String>) {
    if out.iter().any(|d| d == dir) {
        return;
    }
    out.push(dir.to_string());
    let k = ["kustomization.yaml", "kustomization.yml", "Kustomization"]
        .iter()
        .find_map(|n| files.read(&join(dir, n)));
    let Some(k) = k else { return };
    let Ok(text) = std::str::from_utf8(&k) else {
        return;
    };
    let Ok(doc) = serde_saphyr::from_str::<Value>(text) else {
        return;
    };
    let mut refs: Vec<String> = Vec::new();
    for key in ["resources", "bases", "components", "crds"] {
        if let Some(items) = doc.get(key).and_then(Value::as_array) {
            refs.extend(items.iter().filter_map(Value::as_str).map(str::to_string));
        }
    }
    for key in ["patchesStrategicMerge", "patchesJson6902", "patches"] {
        if let Some(items) = doc.get(key).and_then(Value::as_array) {
            for i in items {
                if let Some(s) = i.as_str() {
                    refs.push(s.to_string());
                } else if let Some(p) = i.get("path").and_then(Value::as_str) {
                    refs.push(p.to_string());
                }
            }
        }
    }
    for key in ["configMapGenerator", "secretGenerator"] {
        if let Some(items) = doc.get(key).and_then(Value::as_array) {
            for i in items {
                for list in ["files", "envs"] {
                    for f in i.get(list).and_then(Value::as_array).into_iter().flatten() {
                        if let Some(s) = f.as_str() {
                            // `key=path` form
                            refs.push(s.rsplit('=').next().unwrap_or(s).to_string());
                        }
                    }
                }
            }
        }
    }
    for r in refs {
        if r.contains("://") || r.starts_with("github.com/") || r.starts_with("git@") {
            continue;
        }
        let Some(target) = resolve_rel(dir, &r) else {
            continue;
        };
        if files.is_file(&target) {
            if let Some((parent, _)) = target.rsplit_once('/') {
                if !out.iter().any(|d| d == parent) {
                    out.push(parent.to_string());
                }
            } else if !out.iter().any(std::string::String::is_empty) {
                out.push(String::new());
            }
        } else {
            kustomize_needs(files, &target, out);
        }
    }
}

/// Read access to a tree by `/`-separated relative path: a Git tree in memory or a local
/// directory on disk.
trait TreeView {
    fn read(&self, path: &str) -> Option<Vec<u8>>;
    fn is_file(&self, path: &str) -> bool;
}

impl TreeView for BTreeMap<&str, &TreeFile> {
    fn read(&self, path: &str) -> Option<Vec<u8>> {
        self.get(path).map(|f| f.data.clone())
    }
    fn is_file(&self, path: &str) -> bool {
        self.contains_key(path)
    }
}

/// A local directory as a tree.
struct DiskTree<'a>(&'a Path);

impl TreeView for DiskTree<'_> {
    fn read(&self, path: &str) -> Option<Vec<u8>> {
        let p = self.0.join(path);
        if !p.is_file() {
            return None;
        }
        std::fs::read(p).ok()
    }
    fn is_file(&self, path: &str) -> bool {
        self.0.join(path).is_file()
    }
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

/// `a/b` + `../c/d` → `a/c/d`; `None` when it leaves the repository.
fn resolve_rel(dir: &str, rel: &str) -> Option<String> {
    let mut parts: Vec<&str> = dir.split('/').filter(|s| !s.is_empty()).collect();
    for seg in rel.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            s => parts.push(s),
        }
    }
    Some(parts.join("/"))
}

/// The part of the tree a renderer needs: directories (recursively) and single files, in
/// precedence order (the first is the most specific: the overlay, the last values file).
#[derive(Debug, Default)]
struct Scope {
    dirs: Vec<String>,
    files: Vec<String>,
}

impl Scope {
    fn contains(&self, path: &str) -> bool {
        self.files.iter().any(|f| f == path)
            || self
                .dirs
                .iter()
                .any(|d| d.is_empty() || path.starts_with(&format!("{d}/")))
    }

    /// Where a value is searched: the single files first (Helm values files, last given
    /// first), then each directory's own files (not its subdirectories), in order.
    fn trace_order(&self, files: &BTreeMap<String, String>) -> Vec<String> {
        let mut out: Vec<String> = self.files.clone();
        for d in &self.dirs {
            let prefix = if d.is_empty() {
                String::new()
            } else {
                format!("{d}/")
            };
            let mut own: Vec<&String> = files
                .keys()
                .filter(|p| {
                    p.strip_prefix(&prefix)
                        .is_some_and(|rest| !rest.contains('/'))
                })
                .collect();
            // values.yaml / kustomization.yaml before the other files of the directory
            own.sort_by_key(|p| (!path_is_config(p), (*p).clone()));
            for p in own {
                if !out.contains(p) {
                    out.push(p.clone());
                }
            }
        }
        out
    }
}

fn path_is_config(p: &str) -> bool {
    let name = p.rsplit('/').next().unwrap_or(p);
    name.starts_with("values") || name.starts_with("kustomization") || name == "Kustomization"
}

fn needed_scope(renderer: Renderer, path: &str, all: &[TreeFile], opts: &RenderOptions) -> Scope {
    let by_path: BTreeMap<&str, &TreeFile> = all.iter().map(|f| (f.path.as_str(), f)).collect();
    let mut scope = Scope::default();
    match renderer {
        Renderer::Kustomize => kustomize_needs(&by_path, path, &mut scope.dirs),
        _ => {
            for v in opts.helm.values.iter().rev() {
                if let Some(p) = resolve_rel(path, v) {
                    scope.files.push(p);
                }
            }
            scope.dirs.push(path.to_string());
        }
    }
    scope
}

/// The deepest directory containing all of `dirs`.
fn common_ancestor(dirs: &[String]) -> String {
    let mut iter = dirs.iter();
    let Some(first) = iter.next() else {
        return String::new();
    };
    let mut common: Vec<&str> = first.split('/').filter(|s| !s.is_empty()).collect();
    for d in iter {
        let parts: Vec<&str> = d.split('/').filter(|s| !s.is_empty()).collect();
        let n = common
            .iter()
            .zip(parts.iter())
            .take_while(|(a, b)| a == b)
            .count();
        common.truncate(n);
    }
    common.join("/")
}

/// Finds `name` in `extra` dirs, then on `PATH`.
pub(crate) fn find_binary(name: &str, extra: &[PathBuf]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    extra
        .iter()
        .cloned()
        .chain(std::env::split_paths(&path))
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn run_renderer(
    renderer: Renderer,
    src: &Tree<'_>,
    all: &[TreeFile],
    scope: &Scope,
    opts: &RenderOptions,
) -> Result<String, RenderError> {
    let io = |reason: String| RenderError::Io {
        path: src.describe.clone(),
        reason,
    };
    // Only the needed part of the tree is written: the scope's directories and files.
    let root = {
        let mut dirs = scope.dirs.clone();
        dirs.extend(
            scope
                .files
                .iter()
                .map(|f| f.rsplit_once('/').map_or(String::new(), |(d, _)| d.into())),
        );
        common_ancestor(&dirs)
    };
    let tmp = tempfile::Builder::new()
        .prefix("envdrift-render-")
        .tempdir()
        .map_err(|e| io(format!("temporary directory: {e}")))?;
    let tree = tmp.path().join("tree");
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).map_err(|e| io(e.to_string()))?;
    let mut written = 0usize;
    for f in all {
        let inside = root.is_empty() || f.path == root || f.path.starts_with(&format!("{root}/"));
        if !inside {
            continue;
        }
        let dest = tree.join(&f.path);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io(e.to_string()))?;
        }
        std::fs::write(&dest, &f.data).map_err(|e| io(format!("{}: {e}", f.path)))?;
        written += 1;
    }
    tracing::debug!(root = %root, files = written, "extracted the tree for the renderer");
    let dir = tree.join(src.path);
    std::fs::create_dir_all(&dir).map_err(|e| io(e.to_string()))?;
    let (binary, args): (&str, Vec<String>) = match renderer {
        Renderer::Kustomize => {
            let use_kubectl = match opts.kustomize {
                KustomizeCommand::Kubectl => true,
                KustomizeCommand::Kustomize => false,
                KustomizeCommand::Auto => find_binary("kustomize", &opts.extra_path).is_none(),
            };
            if use_kubectl {
                ("kubectl", vec!["kustomize".into(), ".".into()])
            } else {
                ("kustomize", vec!["build".into(), ".".into()])
            }
        }
        Renderer::Helm => {
            let release = opts.helm.release.clone().unwrap_or_else(|| {
                src.path
                    .rsplit('/')
                    .find(|s| !s.is_empty())
                    .unwrap_or("release")
                    .to_string()
            });
            let mut a = vec!["template".into(), release, ".".into()];
            if let Some(ns) = &opts.helm.namespace {
                a.extend(["--namespace".into(), ns.clone()]);
            }
            for v in &opts.helm.values {
                a.extend(["--values".into(), v.clone()]);
            }
            for s in &opts.helm.set {
                a.extend(["--set".into(), s.clone()]);
            }
            ("helm", a)
        }
        Renderer::Plain => return Err(io("plain sources are not rendered".into())),
    };
    let Some(exe) = find_binary(binary, &opts.extra_path) else {
        return Err(RenderError::MissingBinary {
            binary: binary.to_string(),
            renderer: renderer.as_str(),
            path: src.describe.clone(),
            hint: match binary {
                "helm" => {
                    "install Helm 3 or 4 (https://helm.sh/docs/intro/install/) and put it on PATH"
                }
                "kustomize" => "install kustomize, or use `kubectl kustomize` (kubectl 1.14+)",
                _ => {
                    "install kubectl (it includes Kustomize as `kubectl kustomize`) and put it on PATH"
                }
            },
        });
    };
    let command = format!("{binary} {}", args.join(" "));
    run(&exe, &args, &dir, &home, opts.timeout).map_err(|e| match e {
        RunError::Io(reason) => io(format!("{command}: {reason}")),
        RunError::TimedOut => RenderError::TimedOut {
            command: command.clone(),
            path: src.describe.clone(),
            secs: opts.timeout.as_secs(),
        },
        RunError::Failed { status, stderr } => RenderError::Failed {
            command: command.clone(),
            path: src.describe.clone(),
            commit: src.commit.map_or("the working tree", short).to_string(),
            status,
            stderr: strip_tmp(&stderr, &tree),
        },
    })
}

/// The temp dir is meaningless to people: show repository-relative paths.
fn strip_tmp(s: &str, tree: &Path) -> String {
    let t = tree.display().to_string();
    s.replace(&format!("{t}/"), "")
        .replace(&t, ".")
        .trim_end()
        .to_string()
}

enum RunError {
    Io(String),
    TimedOut,
    Failed { status: String, stderr: String },
}

/// Runs `exe args` in `cwd` without a shell, with a clean environment and a timeout;
/// returns stdout.
fn run(
    exe: &Path,
    args: &[String],
    cwd: &Path,
    home: &Path,
    timeout: Duration,
) -> Result<String, RunError> {
    use wait_timeout::ChildExt;
    let mut path = std::ffi::OsString::new();
    if let Some(d) = exe.parent() {
        path.push(d.as_os_str());
        path.push(":");
    }
    path.push("/usr/local/bin:/usr/bin:/bin");
    let mut child = Command::new(exe)
        .args(args)
        .current_dir(cwd)
        .env_clear()
        .env("PATH", path)
        .env("HOME", home)
        .env("LANG", "C.UTF-8")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| RunError::Io(format!("cannot start {}: {e}", exe.display())))?;
    // Read both pipes on threads so a chatty renderer cannot block on a full pipe.
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    let out_t = std::thread::spawn(move || {
        let mut s = Vec::new();
        if let Some(o) = out.as_mut() {
            let _ = o.read_to_end(&mut s);
        }
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = Vec::new();
        if let Some(e) = err.as_mut() {
            let _ = e.read_to_end(&mut s);
        }
        s
    });
    let status = match child.wait_timeout(timeout) {
        Ok(Some(s)) => s,
        Ok(None) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(RunError::TimedOut);
        }
        Err(e) => return Err(RunError::Io(e.to_string())),
    };
    let stdout = out_t.join().unwrap_or_default();
    let stderr = err_t.join().unwrap_or_default();
    if !status.success() {
        return Err(RunError::Failed {
            status: status.to_string(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        });
    }
    String::from_utf8(stdout).map_err(|_| RunError::Io("output is not UTF-8".into()))
}

/// Parses a renderer's output; each document's origin is the file it most likely comes
/// from (module doc), with the commit.
fn parse_rendered(
    text: &str,
    renderer: Renderer,
    src: &Tree<'_>,
    files: &BTreeMap<String, String>,
    load: &LoadOptions,
) -> Vec<crate::source::dump::FileObjects> {
    let commit = src.commit;
    let fallback = match renderer {
        Renderer::Helm => join(src.path, "Chart.yaml"),
        _ => join(src.path, "kustomization.yaml"),
    };
    let index = match renderer {
        Renderer::Kustomize => manifest_index(files),
        _ => ManifestIndex::new(),
    };
    let mut out = Vec::new();
    for (doc, line) in split_documents(text) {
        let source = match renderer {
            Renderer::Helm => helm_source(doc, src.path),
            _ => None,
        };
        let shown = source.clone().unwrap_or_else(|| fallback.clone());
        let mut fo = objects_from_bytes(
            Path::new(&format!("{shown} (rendered)")),
            doc.as_bytes().to_vec(),
            load,
        );
        for e in &mut fo.errors {
            e.line = e.line.map(|l| l + line - 1);
        }
        for (key, obj) in &mut fo.objects {
            let (path, file_line) = match (&source, renderer) {
                (Some(s), _) => (s.clone(), 1),
                (None, Renderer::Kustomize) => {
                    kustomize_source(key, &index).unwrap_or((fallback.clone(), 1))
                }
                _ => (fallback.clone(), 1),
            };
            obj.origin = Origin::File {
                path: PathBuf::from(path),
                line: file_line,
                commit: commit.map(str::to_string),
            };
        }
        out.push(with_commit_in_errors(fo, commit));
    }
    if out.iter().all(|f| f.objects.is_empty()) && !text.trim().is_empty() {
        tracing::warn!(source = %src.describe, "the renderer printed no Kubernetes objects");
    }
    out
}

/// `# Source: CHART/templates/x.yaml` → `PATH/templates/x.yaml`.
fn helm_source(doc: &str, path: &str) -> Option<String> {
    let line = doc
        .lines()
        .take(5)
        .find_map(|l| l.trim().strip_prefix("# Source: "))?;
    let (_, rest) = line.split_once('/')?;
    Some(join(path, rest.trim()))
}

/// Kind → (name, file, line, size) of the objects in the rendered tree; `size` (leaf
/// values) tells a base object from a patch of it.
type ManifestIndex = BTreeMap<String, Vec<(String, String, usize, usize)>>;

fn leaves(v: &Value) -> usize {
    match v {
        Value::Object(m) => m.values().map(leaves).sum(),
        Value::Array(a) => a.iter().map(leaves).sum(),
        _ => 1,
    }
}

fn manifest_index(files: &BTreeMap<String, String>) -> ManifestIndex {
    let mut index = ManifestIndex::new();
    for (path, text) in files {
        let name = path.rsplit('/').next().unwrap_or(path);
        if name.starts_with("kustomization") || name == "Kustomization" {
            continue;
        }
        for o in parse_manifest_text(text, path.ends_with(".json")).objects {
            let is_patch = o.value.get("spec").is_none()
                && o.value.get("data").is_none()
                && o.value.get("rules").is_none();
            let kind = o.value.get("kind").and_then(Value::as_str);
            let name = o.value.pointer("/metadata/name").and_then(Value::as_str);
            if let (Some(k), Some(n), false) = (kind, name, is_patch) {
                index.entry(k.to_string()).or_default().push((
                    n.to_string(),
                    path.clone(),
                    o.line,
                    leaves(&o.value),
                ));
            }
        }
    }
    index
}

/// The plain manifest that defines a rendered object: same kind, the longest name that is
/// contained in the rendered name (Kustomize adds prefixes and suffixes), the largest
/// object among those (the base, not a patch).
fn kustomize_source(
    key: &crate::model::ResourceKey,
    index: &ManifestIndex,
) -> Option<(String, usize)> {
    index
        .get(&key.kind)?
        .iter()
        .filter(|(n, _, _, _)| key.name.contains(n.as_str()))
        .max_by_key(|(n, _, _, size)| (n.len(), *size))
        .map(|(_, p, l, _)| (p.clone(), *l))
}

/// A Git desired source as written in a config file (an environment's `desired:`), for
/// the daemon and `scan`/`render --config --env`:
///
/// ```yaml
/// desired:
///   git:
///     repo: https://github.com/acme/deploy.git
///     ref: main
///     path: overlays/production
///     renderer: kustomize           # optional: detected
///     token_env: DEPLOY_TOKEN       # or token_file / ssh_key
/// ```
///
/// [`GitSourceConfig::parts`] turns it into what [`load_git`] takes.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GitSourceConfig {
    /// URL or local path (see the README: Git sources). Credentials belong in
    /// `token_file`/`token_env`, not here.
    pub repo: String,
    /// Branch, tag, `refs/…` name or commit SHA.
    #[serde(rename = "ref")]
    pub reference: String,
    /// Directory (or file) inside the repository. Default: the root.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
    /// `plain`, `kustomize` or `helm`. Default: detected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renderer: Option<Renderer>,
    /// File holding an https token. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
    /// Environment variable holding an https token. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_env: Option<String>,
    /// User name sent with the token. Default: `x-access-token`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Private key for ssh remotes. Default: ssh's own configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_key: Option<PathBuf>,
    /// `auto`, `kustomize` or `kubectl`. Default: `auto`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kustomize_command: Option<String>,
    /// Helm settings (release, namespace, values files relative to the chart, `set`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub helm: Option<HelmConfig>,
    /// Longest a renderer may run, in seconds. Default: 120.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub render_timeout_seconds: Option<u64>,
}

/// The `helm:` part of a [`GitSourceConfig`].
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HelmConfig {
    /// Release name. Default: the chart directory's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    /// Release namespace (also given to objects without one). Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Values files relative to the chart directory, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
    /// `--set` values (`key=value`), in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub set: Vec<String>,
}

impl GitSourceConfig {
    /// The source, its credentials and the render options.
    ///
    /// # Errors
    /// A bad path (`..`), an empty repo or ref, an unknown `kustomize_command`; the message
    /// names the field.
    pub fn parts(&self) -> Result<(GitSpec, GitAuth, RenderOptions), String> {
        if self.repo.trim().is_empty() {
            return Err("repo: must not be empty".into());
        }
        if self.reference.trim().is_empty() {
            return Err("ref: must not be empty (a branch, tag or commit)".into());
        }
        let mut path = String::new();
        for seg in self.path.split('/') {
            match seg {
                "" | "." => {}
                ".." => return Err(format!("path: `{}` must not contain `..`", self.path)),
                s => {
                    if !path.is_empty() {
                        path.push('/');
                    }
                    path.push_str(s);
                }
            }
        }
        let kustomize = match self.kustomize_command.as_deref() {
            None | Some("auto") => KustomizeCommand::Auto,
            Some("kustomize") => KustomizeCommand::Kustomize,
            Some("kubectl") => KustomizeCommand::Kubectl,
            Some(o) => {
                return Err(format!(
                    "kustomize_command: unknown `{o}` (choose from: auto, kustomize, kubectl)"
                ));
            }
        };
        let helm = self.helm.clone().unwrap_or_default();
        Ok((
            GitSpec {
                repo: self.repo.clone(),
                reference: self.reference.clone(),
                path,
            },
            GitAuth {
                token_file: self.token_file.clone(),
                token_env: self.token_env.clone(),
                username: self.username.clone(),
                ssh_key: self.ssh_key.clone(),
                ..GitAuth::default()
            },
            RenderOptions {
                renderer: self.renderer,
                kustomize,
                helm: HelmOptions {
                    release: helm.release,
                    namespace: helm.namespace,
                    values: helm.values,
                    set: helm.set,
                },
                timeout: Duration::from_secs(self.render_timeout_seconds.unwrap_or(120).max(1)),
                extra_path: Vec::new(),
                hooks: RenderHooks::default(),
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tf(path: &str, data: &str) -> TreeFile {
        TreeFile {
            path: path.into(),
            data: data.as_bytes().to_vec(),
            executable: false,
        }
    }

    #[test]
    fn detection() {
        let files = vec![
            tf("apps/k/kustomization.yaml", ""),
            tf("charts/web/Chart.yaml", ""),
            tf("plain/a.yaml", ""),
        ];
        assert_eq!(detect(&files, "apps/k"), Renderer::Kustomize);
        assert_eq!(detect(&files, "charts/web"), Renderer::Helm);
        assert_eq!(detect(&files, "plain"), Renderer::Plain);
    }

    #[test]
    fn kustomize_tree_needs() {
        let files = [
            tf(
                "overlays/prod/kustomization.yaml",
                "resources:\n- ../../base\n- https://example.com/x.yaml\npatches:\n- path: patch.yaml\n",
            ),
            tf("overlays/prod/patch.yaml", ""),
            tf("base/kustomization.yaml", "resources: [deploy.yaml]\n"),
            tf("base/deploy.yaml", ""),
            tf("other/x.yaml", ""),
        ];
        let by: BTreeMap<&str, &TreeFile> = files.iter().map(|f| (f.path.as_str(), f)).collect();
        let mut need = Vec::new();
        kustomize_needs(&by, "overlays/prod", &mut need);
        assert_eq!(need, ["overlays/prod", "base"]);
        assert_eq!(common_ancestor(&need), "");
        assert_eq!(common_ancestor(&["env/a/b".into(), "env/c".into()]), "env");
        assert_eq!(resolve_rel("a/b", "../../.."), None);
    }

    #[test]
    fn config_form() {
        let yaml = "repo: git@github.com:acme/deploy.git\nref: v1.2.0\npath: ./charts//web/\nrenderer: helm\nssh_key: /keys/deploy\nhelm:\n  namespace: shop\n  values: [values-prod.yaml]\n  set: [image.tag=1.2.0]\n";
        let cfg: GitSourceConfig = serde_saphyr::from_str(yaml).unwrap();
        let (spec, auth, render) = cfg.parts().unwrap();
        assert_eq!(
            spec.describe(),
            "git:git@github.com:acme/deploy.git@v1.2.0:charts/web"
        );
        assert_eq!(auth.ssh_key.as_deref(), Some(Path::new("/keys/deploy")));
        assert_eq!(render.renderer, Some(Renderer::Helm));
        assert_eq!(render.helm.namespace.as_deref(), Some("shop"));
        assert_eq!(render.timeout, Duration::from_secs(120));
        let bad: Result<GitSourceConfig, _> =
            serde_saphyr::from_str("repo: x\nref: main\ntoken: oops\n");
        assert!(bad.is_err(), "unknown keys are errors");
        let cfg: GitSourceConfig =
            serde_saphyr::from_str("repo: x\nref: main\npath: a/../b\n").unwrap();
        assert!(cfg.parts().unwrap_err().starts_with("path:"));
    }

    #[test]
    fn helm_source_comment() {
        assert_eq!(
            helm_source(
                "# Source: web/templates/deploy.yaml\napiVersion: v1\n",
                "charts/web"
            )
            .as_deref(),
            Some("charts/web/templates/deploy.yaml")
        );
    }
}
