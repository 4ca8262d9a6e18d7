//! Desired state from GitOps objects: an Argo CD Application or a Flux Kustomization /
//! HelmRelease, read from the environment's cluster and rendered from its Git source or
//! Helm chart the way the GitOps tool renders it (docs/gitops.md).
//!
//! Entry points: [`open`] (read the object and its sources, map them onto the Git source
//! machinery of [`crate::source::render`], render, report what could not be mapped) and
//! [`discover`] (list the objects of a cluster, for `envdrift discover`).
//!
//! - [`argocd`]: `Application` (argoproj.io/v1alpha1) → Git sources;
//! - [`flux`]: `Kustomization` (kustomize.toolkit.fluxcd.io/v1), `HelmRelease`
//!   (helm.toolkit.fluxcd.io/v2) and their `GitRepository` (source.toolkit.fluxcd.io/v1);
//! - `kedit`: kustomization edits (`kustomize edit set …`) and Flux's generated
//!   kustomization; `subst`: Flux post-build substitution;
//! - [`helmrepo`]: charts pulled from Helm repositories and OCI registries (cached);
//! - [`creds`]: repository credentials from Argo CD and Flux Secrets.
//!
//! Mapping is pure ([`argocd::map`], [`flux::map_kustomization`], [`flux::map_helmrelease`]
//! over a [`Lookup`]); only [`open`] and [`discover`] talk to a cluster.
//!
//! # Caveats
//! A field that changes what the GitOps tool renders and that envdrift cannot apply (a
//! config management plugin, Helm `fileParameters`, SOPS decryption, …) is never dropped
//! silently: it is an input error of the desired side naming the object and the field,
//! and the comparison is marked partial. Repository credentials are the GitOps tool's
//! (Argo CD repository Secrets, Flux `secretRef`) unless the block gives its own
//! (`token_env`, `token_file`, `ssh_key`); reading them needs access to those Secrets.

pub mod argocd;
pub mod creds;
pub mod discover;
pub mod flux;
pub mod helmrepo;
mod kedit;
mod subst;

pub use discover::{Discovered, discover};

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::{InputError, Object, ResourceKey};
use crate::source::git::{self, GitAuth, GitSpec, SyncOptions};
use crate::source::kube::{ClusterTarget, KubeError};
use crate::source::render::{self, HelmOptions, RenderHooks, RenderOptions, Renderer};
use crate::source::{Ctx, Loaded, SourceError, dump};

/// Which GitOps object an environment's desired state comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GitOpsRef {
    /// An Argo CD Application.
    Application { namespace: String, name: String },
    /// A Flux Kustomization.
    Kustomization { namespace: String, name: String },
    /// A Flux HelmRelease.
    HelmRelease { namespace: String, name: String },
}

impl GitOpsRef {
    /// `Application argocd/guestbook`: how the object is named in messages.
    pub fn describe(&self) -> String {
        let (kind, ns, name) = self.parts();
        format!("{kind} {ns}/{name}")
    }

    fn parts(&self) -> (&'static str, &str, &str) {
        match self {
            GitOpsRef::Application { namespace, name } => ("Application", namespace, name),
            GitOpsRef::Kustomization { namespace, name } => ("Kustomization", namespace, name),
            GitOpsRef::HelmRelease { namespace, name } => ("HelmRelease", namespace, name),
        }
    }
}

/// A resource type the GitOps readers get objects of.
#[derive(Debug, Clone, Copy)]
pub struct Res {
    pub group: &'static str,
    pub version: &'static str,
    pub plural: &'static str,
    pub kind: &'static str,
}

impl Res {
    /// The collection URL (`/apis/G/V/namespaces/NS/PLURAL`, all namespaces without one).
    fn url(&self, namespace: Option<&str>) -> String {
        let base = if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        };
        match namespace {
            Some(ns) => format!("{base}/namespaces/{ns}/{}", self.plural),
            None => format!("{base}/{}", self.plural),
        }
    }
}

pub const APPLICATION: Res = Res {
    group: "argoproj.io",
    version: "v1alpha1",
    plural: "applications",
    kind: "Application",
};
pub const KUSTOMIZATION: Res = Res {
    group: "kustomize.toolkit.fluxcd.io",
    version: "v1",
    plural: "kustomizations",
    kind: "Kustomization",
};
pub const HELMRELEASE: Res = Res {
    group: "helm.toolkit.fluxcd.io",
    version: "v2",
    plural: "helmreleases",
    kind: "HelmRelease",
};
pub const GITREPOSITORY: Res = Res {
    group: "source.toolkit.fluxcd.io",
    version: "v1",
    plural: "gitrepositories",
    kind: "GitRepository",
};
pub const HELMREPOSITORY: Res = Res {
    group: "source.toolkit.fluxcd.io",
    version: "v1",
    plural: "helmrepositories",
    kind: "HelmRepository",
};
pub const OCIREPOSITORY: Res = Res {
    group: "source.toolkit.fluxcd.io",
    version: "v1",
    plural: "ocirepositories",
    kind: "OCIRepository",
};
pub const CONFIGMAP: Res = Res {
    group: "",
    version: "v1",
    plural: "configmaps",
    kind: "ConfigMap",
};
pub const SECRET: Res = Res {
    group: "",
    version: "v1",
    plural: "secrets",
    kind: "Secret",
};

/// Reads objects: the cluster in production ([`open`]), a map in tests.
pub trait Lookup {
    /// One object; `Ok(None)` when it does not exist.
    ///
    /// # Errors
    /// The request failed (not a 404); the text says why.
    fn get(&self, res: &Res, namespace: &str, name: &str) -> Result<Option<Value>, String>;
}

/// A field of a GitOps object that envdrift does not apply, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unmapped {
    /// `Application argocd/guestbook`.
    pub object: String,
    /// `spec.source.helm.fileParameters`.
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for Unmapped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}: {}", self.object, self.field, self.message)
    }
}

/// Where a tree hook reports what it found and could not apply.
pub type FoundNotes = std::sync::Arc<std::sync::Mutex<Vec<Unmapped>>>;

/// One Git source of a GitOps object, ready for [`render::load_git`].
#[derive(Debug, Clone)]
pub struct MappedSource {
    pub spec: GitSpec,
    /// A Flux `ref.semver` range: the highest matching tag is used (`spec.reference` is
    /// then only a placeholder).
    pub semver: Option<String>,
    pub renderer: Option<Renderer>,
    pub helm: HelmOptions,
    pub hooks: RenderHooks,
    /// Namespace of namespaced objects without one (Argo CD's destination namespace).
    pub default_namespace: Option<String>,
    /// Labels and annotations set on every object's metadata (Flux `commonMetadata`).
    pub common_labels: serde_json::Map<String, Value>,
    pub common_annotations: serde_json::Map<String, Value>,
    /// What the tree hook found it could not apply (Jsonnet files of a directory source),
    /// reported with [`Mapped::unmapped`] once the tree was read.
    pub found: FoundNotes,
    /// A chart from a Helm repository or OCI registry: pulled and rendered instead of the
    /// Git source (`spec` then only names the repository in messages).
    pub chart: Option<helmrepo::ChartSource>,
    /// Where the GitOps tool keeps the credentials of the repository.
    pub creds_from: CredsFrom,
    /// The credentials found there ([`resolve_credentials`]).
    pub creds: Option<creds::RepoCreds>,
}

/// Where a source's repository credentials are kept by the GitOps tool.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum CredsFrom {
    #[default]
    None,
    /// Argo CD repository Secrets and credential templates in this namespace.
    ArgoCd { namespace: String },
    /// A Flux source's `spec.secretRef`: (namespace, Secret name, the source object).
    Flux {
        namespace: String,
        secret: String,
        source: String,
    },
}

impl MappedSource {
    fn new(spec: GitSpec) -> MappedSource {
        MappedSource {
            spec,
            semver: None,
            renderer: None,
            helm: HelmOptions::default(),
            hooks: RenderHooks::default(),
            default_namespace: None,
            common_labels: serde_json::Map::new(),
            common_annotations: serde_json::Map::new(),
            found: std::sync::Arc::default(),
            chart: None,
            creds_from: CredsFrom::None,
            creds: None,
        }
    }
}

/// What a GitOps object maps to: its Git sources, and what could not be mapped.
#[derive(Debug, Clone, Default)]
pub struct Mapped {
    pub sources: Vec<MappedSource>,
    pub unmapped: Vec<Unmapped>,
}

/// Errors reading or mapping a GitOps object.
#[derive(Debug, thiserror::Error)]
pub enum GitOpsError {
    #[error(transparent)]
    Connect(#[from] KubeError),
    /// The object (or an object it references) does not exist.
    #[error("{object} not found{hint}")]
    NotFound { object: String, hint: String },
    /// Reading it failed.
    #[error("reading {object}: {reason}")]
    ReadFailed { object: String, reason: String },
    /// The repository credentials could not be read (a 403, a missing Secret).
    #[error("{object}: {message}")]
    Credentials { object: String, message: String },
    /// A field is missing or invalid, or names something envdrift cannot render from.
    #[error("{object}: {field}: {message}")]
    Field {
        object: String,
        field: String,
        message: String,
    },
}

/// Everything [`open`] needs: which object, on which cluster, and how to fetch and
/// render its sources.
#[derive(Debug, Clone)]
pub struct GitOpsSource {
    pub object: GitOpsRef,
    pub target: ClusterTarget,
    /// Timeout of one API request.
    pub request_timeout: Duration,
    /// Credentials for the repositories the object names.
    pub auth: GitAuth,
    pub sync: SyncOptions,
    /// Longest a renderer may run.
    pub render_timeout: Duration,
    /// Directories searched for kustomize/helm before `PATH`.
    pub extra_path: Vec<PathBuf>,
    /// Where charts pulled from Helm repositories are kept (`DATA/charts`).
    pub chart_cache: PathBuf,
    /// Read the repository credentials of Argo CD / Flux from their Secrets (default).
    pub repository_secrets: bool,
}

impl GitOpsSource {
    /// `argocd:argocd/guestbook (cluster:prod)`.
    pub fn describe(&self) -> String {
        let (kind, ns, name) = self.object.parts();
        let tool = if kind == "Application" {
            "argocd".to_string()
        } else {
            format!("flux:{}", kind.to_lowercase())
        };
        let cluster = match (&self.target.context, self.target.in_cluster) {
            (_, true) => "in-cluster".to_string(),
            (Some(c), _) => format!("cluster:{c}"),
            (None, _) => "cluster:(current context)".to_string(),
        };
        format!("{tool}:{ns}/{name} ({cluster})")
    }
}

/// Reads the GitOps object from its cluster, maps it and renders its sources.
///
/// # Errors
/// The cluster cannot be reached, the object is missing or names nothing envdrift can
/// render ([`SourceError::Invalid`] naming the object and field), a fetch or render
/// failed ([`SourceError::Git`]). Fields that cannot be applied are input errors of the
/// snapshot instead.
pub fn open(src: &GitOpsSource, ctx: &Ctx<'_>) -> Result<Loaded, SourceError> {
    let described = src.describe();
    let invalid = |message: String| SourceError::Invalid {
        side: ctx.side.to_string(),
        source_desc: described.clone(),
        message,
    };
    // The kube client runs on its own runtime, on a thread outside any caller's runtime.
    let mapped = std::thread::scope(|s| {
        s.spawn(|| -> Result<Mapped, GitOpsError> {
            let lookup = ClusterLookup::connect(&src.target, src.request_timeout)?;
            let mut mapped = map_object(&src.object, &lookup)?;
            if src.repository_secrets {
                resolve_credentials(&mut mapped, &lookup).map_err(|e| match e {
                    GitOpsError::Credentials { message, .. } => GitOpsError::Credentials {
                        object: src.object.describe(),
                        message,
                    },
                    other => other,
                })?;
            }
            Ok(mapped)
        })
        .join()
    })
    .map_err(|_| SourceError::Panicked {
        side: ctx.side.to_string(),
        source_desc: described.clone(),
    })?
    .map_err(|e| match e {
        GitOpsError::Connect(source) => SourceError::Cluster {
            side: ctx.side.to_string(),
            source_desc: described.clone(),
            source: Box::new(source),
        },
        other => invalid(other.to_string()),
    })?;
    render_mapped(src, &mapped, ctx)
}

/// Maps the object `r` read through `lookup`.
///
/// # Errors
/// As [`open`], without rendering.
pub fn map_object(r: &GitOpsRef, lookup: &dyn Lookup) -> Result<Mapped, GitOpsError> {
    let (res, ns, name) = match r {
        GitOpsRef::Application { namespace, name } => (APPLICATION, namespace, name),
        GitOpsRef::Kustomization { namespace, name } => (KUSTOMIZATION, namespace, name),
        GitOpsRef::HelmRelease { namespace, name } => (HELMRELEASE, namespace, name),
    };
    let obj = get_required(lookup, &res, ns, name)?;
    match r {
        GitOpsRef::Application { namespace, .. } => {
            let mut m = argocd::map(&obj)?;
            for ms in &mut m.sources {
                ms.creds_from = CredsFrom::ArgoCd {
                    namespace: namespace.clone(),
                };
            }
            Ok(m)
        }
        GitOpsRef::Kustomization { .. } => flux::map_kustomization(&obj, lookup),
        GitOpsRef::HelmRelease { .. } => flux::map_helmrelease(&obj, lookup),
    }
}

/// An object that must exist.
fn get_required(
    lookup: &dyn Lookup,
    res: &Res,
    ns: &str,
    name: &str,
) -> Result<Value, GitOpsError> {
    let object = format!("{} {ns}/{name}", res.kind);
    match lookup.get(res, ns, name) {
        Ok(Some(v)) => Ok(v),
        Ok(None) => Err(GitOpsError::NotFound {
            object,
            hint: format!(
                " (no {}.{} `{name}` in namespace `{ns}`; `envdrift discover` lists what the cluster has)",
                res.plural, res.group
            ),
        }),
        Err(reason) => Err(GitOpsError::ReadFailed { object, reason }),
    }
}

/// Renders each mapped source and merges them into one snapshot.
fn render_mapped(
    src: &GitOpsSource,
    mapped: &Mapped,
    ctx: &Ctx<'_>,
) -> Result<Loaded, SourceError> {
    let described = src.describe();
    let mut out: Option<Loaded> = None;
    let mut late: Vec<Unmapped> = Vec::new();
    for ms in &mapped.sources {
        if let Some(chart) = &ms.chart {
            let loaded = render_chart(src, ms, chart, ctx)?;
            match &mut out {
                None => out = Some(loaded),
                Some(acc) => merge(acc, loaded),
            }
            continue;
        }
        let auth = with_secret_credentials(&src.auth, ms.creds.as_ref());
        let _key_dir = auth.1;
        let auth = auth.0;
        let mut spec = ms.spec.clone();
        if let Some(range) = &ms.semver {
            spec.reference = semver_tag(&spec, range, &auth, &src.sync).map_err(|message| {
                SourceError::Invalid {
                    side: ctx.side.to_string(),
                    source_desc: described.clone(),
                    message,
                }
            })?;
        }
        let render = RenderOptions {
            renderer: ms.renderer,
            helm: ms.helm.clone(),
            timeout: src.render_timeout,
            extra_path: src.extra_path.clone(),
            hooks: ms.hooks.clone(),
            ..RenderOptions::default()
        };
        let default_namespace = ms
            .default_namespace
            .as_deref()
            .unwrap_or(ctx.default_namespace);
        let load = dump::LoadOptions {
            side: ctx.side.to_string(),
            default_namespace: Some(default_namespace.to_string()),
            cluster_scoped_kinds: ctx.cluster_scoped_kinds.to_vec(),
            drop_status: true,
            commit: None,
            limits: dump::FileLimits::default(),
        };
        let gl = render::load_git(&spec, &auth, &src.sync, &render, &load).map_err(|source| {
            SourceError::Git {
                side: ctx.side.to_string(),
                source_desc: format!(
                    "{described}: {}{}",
                    spec.describe(),
                    ms.creds
                        .as_ref()
                        .filter(|_| auth.password.is_some() || auth.ssh_key.is_some())
                        .map_or_else(String::new, |c| format!(" (credentials from {})", c.from))
                ),
                source: Box::new(source),
            }
        })?;
        tracing::info!(
            side = ctx.side,
            source = %described,
            git = %spec.describe(),
            commit = %gl.commit,
            renderer = gl.renderer.as_str(),
            objects = gl.snapshot.objects.len(),
            "rendered GitOps source"
        );
        let mut loaded = crate::source::rendered(gl);
        let found = std::mem::take(
            &mut *ms
                .found
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        late.extend(found);
        if !ms.common_labels.is_empty() || !ms.common_annotations.is_empty() {
            for obj in loaded.snapshot.objects.values_mut() {
                set_metadata(obj, &ms.common_labels, &ms.common_annotations);
            }
        }
        match &mut out {
            None => out = Some(loaded),
            Some(acc) => merge(acc, loaded),
        }
    }
    let Some(mut loaded) = out else {
        return Err(SourceError::Invalid {
            side: ctx.side.to_string(),
            source_desc: described,
            message: format!("{}: no Git source to render", src.object.describe()),
        });
    };
    for u in mapped.unmapped.iter().chain(&late) {
        loaded.snapshot.errors.push(InputError {
            side: ctx.side.to_string(),
            source: u.object.clone(),
            line: None,
            column: None,
            message: format!("{}: {} (not applied by envdrift)", u.field, u.message),
        });
    }
    if let Some(s) = &mut loaded.snapshot.source {
        s.description = format!("{described} → {}", s.description);
    }
    loaded.objects = loaded.snapshot.objects.len();
    Ok(loaded)
}

/// Reads the credentials of every mapped source from the GitOps tool's Secrets.
///
/// # Errors
/// A Secret cannot be read (403: the message names the namespace and the grant needed)
/// or a Flux `secretRef` names a missing Secret.
pub fn resolve_credentials(
    mapped: &mut Mapped,
    secrets: &dyn creds::Secrets,
) -> Result<(), GitOpsError> {
    for ms in &mut mapped.sources {
        let url = ms
            .chart
            .as_ref()
            .map_or_else(|| ms.spec.repo.clone(), |c| c.repo.clone());
        let (found, object) = match &ms.creds_from {
            CredsFrom::None => continue,
            CredsFrom::ArgoCd { namespace } => {
                if ms.chart.is_none()
                    && (url.starts_with("file://") || (!url.contains("://") && !url.contains('@')))
                {
                    // A local path or scp-less name: nothing Argo CD would authenticate.
                    continue;
                }
                let r = creds::argocd(secrets, namespace, &url).map_err(|message| {
                    GitOpsError::Credentials {
                        object: String::new(),
                        message,
                    }
                })?;
                if let (Some(c), true) = (&mut ms.chart, r.oci) {
                    c.oci = true;
                    if !c.repo.starts_with("oci://") {
                        c.repo = format!("oci://{}", c.repo);
                    }
                }
                (
                    r.creds,
                    format!("Argo CD Secrets in namespace `{namespace}`"),
                )
            }
            CredsFrom::Flux {
                namespace,
                secret,
                source,
            } => {
                let c = creds::flux(secrets, namespace, secret, source).map_err(|message| {
                    GitOpsError::Credentials {
                        object: String::new(),
                        message,
                    }
                })?;
                (Some(c), source.clone())
            }
        };
        if let Some(c) = &found {
            for k in &c.unused {
                mapped.unmapped.push(Unmapped {
                    object: c.from.clone(),
                    field: format!("data.{k}"),
                    message: format!(
                        "credential key not used by envdrift (credentials of {} for {object})",
                        crate::redact::redact_url(&url)
                    ),
                });
            }
            tracing::debug!(repo = %crate::redact::redact_url(&url), from = %c.from, "repository credentials found");
        }
        ms.creds = found.filter(|c| !c.is_empty());
    }
    Ok(())
}

/// The Git credentials of a source: envdrift's own (the block's `token_*`, `ssh_key`) when
/// given, else those of the GitOps tool's Secret (an SSH key written to a private temporary
/// file, kept while the returned directory lives).
fn with_secret_credentials(
    own: &GitAuth,
    creds: Option<&creds::RepoCreds>,
) -> (GitAuth, Option<tempfile::TempDir>) {
    let Some(c) = creds else {
        return (own.clone(), None);
    };
    if own.token_file.is_some() || own.token_env.is_some() || own.ssh_key.is_some() {
        return (own.clone(), None);
    }
    let mut auth = own.clone();
    if auth.username.is_none() {
        auth.username.clone_from(&c.username);
    }
    auth.password.clone_from(&c.password);
    let mut dir = None;
    if let Some(key) = &c.ssh_private_key
        && let Ok(d) = tempfile::Builder::new().prefix("envdrift-ssh-").tempdir()
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let path = d.path().join("identity");
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .and_then(|mut f| {
                let mut text = key.0.clone();
                if !text.ends_with('\n') {
                    text.push('\n');
                }
                f.write_all(text.as_bytes())
            });
        if written.is_ok() {
            auth.ssh_key = Some(path);
            if let Some(kh) = &c.known_hosts {
                let khp = d.path().join("known_hosts");
                if std::fs::write(&khp, kh).is_ok() {
                    auth.known_hosts = Some(khp);
                }
            }
            dir = Some(d);
        }
    }
    (auth, dir)
}

/// Pulls a chart from its Helm repository or OCI registry and renders it.
fn render_chart(
    src: &GitOpsSource,
    ms: &MappedSource,
    chart: &helmrepo::ChartSource,
    ctx: &Ctx<'_>,
) -> Result<Loaded, SourceError> {
    let described = src.describe();
    let invalid = |message: String| SourceError::Invalid {
        side: ctx.side.to_string(),
        source_desc: described.clone(),
        message: format!("{}: {message}", src.object.describe()),
    };
    let pulled = helmrepo::pull(
        chart,
        ms.creds.as_ref(),
        &src.chart_cache,
        &src.extra_path,
        src.render_timeout,
    )
    .map_err(&invalid)?;
    let render = RenderOptions {
        renderer: Some(Renderer::Helm),
        helm: ms.helm.clone(),
        timeout: src.render_timeout,
        extra_path: src.extra_path.clone(),
        hooks: ms.hooks.clone(),
        ..RenderOptions::default()
    };
    let default_namespace = ms
        .default_namespace
        .as_deref()
        .unwrap_or(ctx.default_namespace);
    let load = dump::LoadOptions {
        side: ctx.side.to_string(),
        default_namespace: Some(default_namespace.to_string()),
        cluster_scoped_kinds: ctx.cluster_scoped_kinds.to_vec(),
        drop_status: true,
        commit: None,
        limits: dump::FileLimits::default(),
    };
    let mut gl = render::load_chart_dir(&pulled.dir, &render, &load)
        .map_err(|e| invalid(format!("{}: {e}", chart.describe())))?;
    let shown = helmrepo::ChartSource {
        version: pulled.version.clone(),
        ..chart.clone()
    }
    .describe();
    if let Some(s) = &mut gl.snapshot.source {
        s.description.clone_from(&shown);
    }
    tracing::info!(
        side = ctx.side,
        source = %described,
        chart = %shown,
        cached = pulled.cached,
        objects = gl.snapshot.objects.len(),
        "rendered chart"
    );
    let mut loaded = crate::source::rendered(gl);
    // A pulled chart is no file to adopt live changes into.
    loaded.adopt = None;
    if !ms.common_labels.is_empty() || !ms.common_annotations.is_empty() {
        for obj in loaded.snapshot.objects.values_mut() {
            set_metadata(obj, &ms.common_labels, &ms.common_annotations);
        }
    }
    Ok(loaded)
}

/// Adds the objects, errors and skipped files of `more` to `acc` (a multi-source
/// Application); an object both render is an input error, the first one kept.
fn merge(acc: &mut Loaded, more: Loaded) {
    for (key, obj) in more.snapshot.objects {
        if acc.snapshot.objects.contains_key(&key) {
            acc.snapshot.errors.push(InputError {
                side: acc
                    .snapshot
                    .source
                    .as_ref()
                    .map_or_else(String::new, |s| s.env.clone()),
                source: obj.origin.to_string(),
                line: None,
                column: None,
                message: format!(
                    "{} is rendered by two sources; the first is kept",
                    key_text(&key)
                ),
            });
            continue;
        }
        acc.snapshot.objects.insert(key, obj);
    }
    acc.snapshot.errors.extend(more.snapshot.errors);
    acc.snapshot.skipped.extend(more.snapshot.skipped);
    if let (Some(a), Some(m)) = (&mut acc.adopt, more.adopt) {
        for (p, t) in m.files {
            a.files.entry(p).or_insert(t);
        }
    }
}

fn key_text(k: &ResourceKey) -> String {
    match &k.namespace {
        Some(ns) => format!("{} {ns}/{}", k.kind, k.name),
        None => format!("{} {}", k.kind, k.name),
    }
}

/// Sets labels and annotations on an object's metadata (Flux `commonMetadata`: metadata
/// only, not selectors or templates).
fn set_metadata(
    obj: &mut Object,
    labels: &serde_json::Map<String, Value>,
    annotations: &serde_json::Map<String, Value>,
) {
    let Some(meta) = obj.value.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    for (field, add) in [("labels", labels), ("annotations", annotations)] {
        if add.is_empty() {
            continue;
        }
        let entry = meta
            .entry(field.to_string())
            .or_insert_with(|| Value::Object(serde_json::Map::new()));
        if let Some(m) = entry.as_object_mut() {
            for (k, v) in add {
                m.insert(k.clone(), v.clone());
            }
        }
    }
}

/// The highest tag of the repository matching a semver range (Flux `ref.semver`).
fn semver_tag(
    spec: &GitSpec,
    range: &str,
    auth: &GitAuth,
    sync: &SyncOptions,
) -> Result<String, String> {
    let req = semver::VersionReq::parse(range.trim().trim_start_matches('v'))
        .map_err(|e| format!("ref.semver `{range}` is not a semver range: {e}"))?;
    let probe = GitSpec {
        reference: "HEAD".into(),
        ..spec.clone()
    };
    let synced = git::sync(&probe, auth, sync).map_err(|e| e.to_string())?;
    git::tags(&synced)
        .into_iter()
        .filter_map(|t| {
            let v = semver::Version::parse(t.trim_start_matches('v')).ok()?;
            req.matches(&v).then_some((v, t))
        })
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, t)| t)
        .ok_or_else(|| {
            format!(
                "ref.semver `{range}`: no tag of {} matches",
                spec.display_url()
            )
        })
}

/// The cluster as a [`Lookup`]: GET requests through kube-rs on a private runtime.
pub(crate) struct ClusterLookup {
    rt: tokio::runtime::Runtime,
    client: kube::Client,
    timeout: Duration,
    pub(crate) description: String,
}

fn describe_kube(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("{} {}: {}", s.code, s.reason, s.message),
        other => {
            let mut msg = other.to_string();
            let mut src = std::error::Error::source(other);
            while let Some(s) = src {
                let text = s.to_string();
                if !msg.contains(&text) {
                    msg.push_str(": ");
                    msg.push_str(&text);
                }
                src = s.source();
            }
            msg
        }
    }
}

impl ClusterLookup {
    pub(crate) fn connect(target: &ClusterTarget, timeout: Duration) -> Result<Self, KubeError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(KubeError::RuntimeFailed)?;
        let cluster = rt.block_on(crate::source::kube::connect(target, timeout))?;
        Ok(ClusterLookup {
            rt,
            client: cluster.client,
            timeout,
            description: cluster.description,
        })
    }

    fn text(&self, req: http::Request<Vec<u8>>) -> Result<Option<String>, String> {
        let res = self.rt.block_on(async {
            tokio::time::timeout(self.timeout, self.client.request_text(req)).await
        });
        match res {
            Err(_) => Err(format!("timed out after {:?}", self.timeout)),
            Ok(Err(kube::Error::Api(s))) if s.code == 404 => Ok(None),
            Ok(Err(e)) => Err(describe_kube(&e)),
            Ok(Ok(text)) => Ok(Some(text)),
        }
    }

    /// Every object of a type in every namespace; `Ok(None)` when the cluster does not
    /// serve the type (its CRD is not installed).
    pub(crate) fn list(&self, res: &Res) -> Result<Option<Vec<Value>>, String> {
        let mut items = Vec::new();
        let mut token: Option<String> = None;
        // Pages of 500, as client-go; a bound on the pages keeps a broken server finite.
        for _ in 0..10_000 {
            let mut lp = kube::api::ListParams::default().limit(500);
            if let Some(t) = &token {
                lp = lp.continue_token(t);
            }
            let req = kube::core::Request::new(res.url(None))
                .list(&lp)
                .map_err(|e| format!("building the request: {e}"))?;
            let Some(text) = self.text(req)? else {
                return Ok(None);
            };
            let v: Value =
                serde_json::from_str(&text).map_err(|e| format!("not a JSON list: {e}"))?;
            if let Some(a) = v.get("items").and_then(Value::as_array) {
                items.extend(a.iter().cloned());
            }
            token = v
                .pointer("/metadata/continue")
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
                .map(str::to_string);
            if token.is_none() {
                return Ok(Some(items));
            }
        }
        Err("the list did not end after 10,000 pages".into())
    }
}

impl Lookup for ClusterLookup {
    fn get(&self, res: &Res, namespace: &str, name: &str) -> Result<Option<Value>, String> {
        let req = kube::core::Request::new(res.url(Some(namespace)))
            .get(name, &kube::api::GetParams::default())
            .map_err(|e| format!("building the request: {e}"))?;
        match self.text(req)? {
            None => Ok(None),
            Some(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| format!("not a JSON object: {e}")),
        }
    }
}

impl creds::Secrets for ClusterLookup {
    fn list(&self, namespace: &str, selector: &str) -> Result<Vec<Value>, String> {
        let lp = kube::api::ListParams::default().labels(selector).limit(500);
        let req = kube::core::Request::new(SECRET.url(Some(namespace)))
            .list(&lp)
            .map_err(|e| format!("building the request: {e}"))?;
        let Some(text) = self.text(req)? else {
            return Ok(Vec::new());
        };
        let v: Value = serde_json::from_str(&text).map_err(|e| format!("not a JSON list: {e}"))?;
        Ok(v.get("items")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default())
    }

    fn get(&self, namespace: &str, name: &str) -> Result<Option<Value>, String> {
        Lookup::get(self, &SECRET, namespace, name)
    }
}

/// Splits `NS/NAME`.
pub(crate) fn ns_name(s: &str) -> Option<(String, String)> {
    let (ns, name) = s.split_once('/')?;
    let ok = |p: &str| {
        !p.is_empty()
            && p.len() <= 253
            && p.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
    };
    (ok(ns) && ok(name)).then(|| (ns.to_string(), name.to_string()))
}

macro_rules! gitops_common_fields {
    ($(#[$meta:meta])* pub struct $name:ident { $($(#[$fmeta:meta])* pub $field:ident : $ty:ty,)* }) => {
        $(#[$meta])*
        pub struct $name {
            $($(#[$fmeta])* pub $field: $ty,)*
            /// Kubeconfig file (relative to the config file). Default: the environment's
            /// live cluster's, else KUBECONFIG, else ~/.kube/config.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub kubeconfig: Option<PathBuf>,
            /// Context in the kubeconfig. Default: the environment's live cluster's, else
            /// the current context.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub context: Option<String>,
            /// Use the pod's service account. Default: the environment's live cluster's,
            /// else false.
            #[serde(default, skip_serializing_if = "std::ops::Not::not")]
            pub in_cluster: bool,
            /// Timeout of one API request (`30s`). Default: 30s.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub request_timeout: Option<String>,
            /// Git credentials for the repositories the object names: a file holding a
            /// token (HTTPS).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub token_file: Option<PathBuf>,
            /// An environment variable holding a token (HTTPS).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub token_env: Option<String>,
            /// User name sent with the token. Default: `x-access-token`.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub username: Option<String>,
            /// SSH private key for `ssh://` and `git@` URLs.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub ssh_key: Option<PathBuf>,
            /// Longest Kustomize or Helm may run, in seconds. Default: 120.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub render_timeout_seconds: Option<u64>,
            /// Use the repository credentials Argo CD or Flux keep in Secrets (needs `get`
            /// and `list` on secrets in their namespaces). Default: true.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub repository_secrets: Option<bool>,
        }
    };
}

gitops_common_fields! {
    /// `desired: {type: argocd, application: NAME}`: an Argo CD Application.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct ArgoCdSourceConfig {
        /// The Application's name.
        pub application: String,
        /// Its namespace. Default: `argocd`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub namespace: Option<String>,
    }
}

gitops_common_fields! {
    /// `desired: {type: flux, kustomization: NS/NAME}` or `{type: flux, helmrelease:
    /// NS/NAME}`: a Flux Kustomization or HelmRelease.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct FluxSourceConfig {
        /// A Kustomization (kustomize.toolkit.fluxcd.io), `NAMESPACE/NAME`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub kustomization: Option<String>,
        /// A HelmRelease (helm.toolkit.fluxcd.io), `NAMESPACE/NAME`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub helmrelease: Option<String>,
    }
}

/// The parts of either block that [`GitOpsSource`] needs.
pub(crate) struct Common<'a> {
    pub kubeconfig: &'a Option<PathBuf>,
    pub context: &'a Option<String>,
    pub in_cluster: bool,
    pub request_timeout: &'a Option<String>,
    pub auth: GitAuth,
    pub render_timeout_seconds: Option<u64>,
    pub repository_secrets: bool,
}

macro_rules! common_of {
    ($c:expr) => {
        Common {
            kubeconfig: &$c.kubeconfig,
            context: &$c.context,
            in_cluster: $c.in_cluster,
            request_timeout: &$c.request_timeout,
            auth: GitAuth {
                token_file: $c.token_file.clone(),
                token_env: $c.token_env.clone(),
                username: $c.username.clone(),
                ssh_key: $c.ssh_key.clone(),
                ..GitAuth::default()
            },
            render_timeout_seconds: $c.render_timeout_seconds,
            repository_secrets: $c.repository_secrets.unwrap_or(true),
        }
    };
}

impl ArgoCdSourceConfig {
    /// The object named: `Application NS/NAME`.
    pub fn object(&self) -> GitOpsRef {
        GitOpsRef::Application {
            namespace: self.namespace.clone().unwrap_or_else(|| "argocd".into()),
            name: self.application.clone(),
        }
    }

    /// `argocd:NS/NAME`.
    pub(crate) fn describe(&self) -> String {
        format!(
            "argocd:{}/{}",
            self.namespace.as_deref().unwrap_or("argocd"),
            self.application
        )
    }

    /// The resolved source.
    ///
    /// # Errors
    /// A bad `request_timeout`; the message names the field.
    pub fn spec(&self, base: &Path, data_dir: &Path) -> Result<GitOpsSource, String> {
        self.problem().map_err(|(f, m)| format!("{f}: {m}"))?;
        build(self.object(), &common_of!(self), base, data_dir)
    }

    /// The first problem of the block: `(field, message)`.
    ///
    /// # Errors
    /// An application name that is not a Kubernetes name.
    pub fn problem(&self) -> Result<(), (String, String)> {
        if ns_name(&format!(
            "{}/{}",
            self.namespace.as_deref().unwrap_or("argocd"),
            self.application
        ))
        .is_none()
        {
            return Err((
                "application".into(),
                format!(
                    "`{}` (namespace `{}`) is not a Kubernetes object name",
                    self.application,
                    self.namespace.as_deref().unwrap_or("argocd")
                ),
            ));
        }
        check_timeout(&self.request_timeout)
    }
}

fn check_timeout(t: &Option<String>) -> Result<(), (String, String)> {
    if let Some(t) = t
        && let Err(e) = parse_duration(t)
    {
        return Err(("request_timeout".into(), e));
    }
    Ok(())
}

impl FluxSourceConfig {
    /// The object named.
    ///
    /// # Errors
    /// Neither or both of `kustomization` and `helmrelease`, or not `NS/NAME`.
    pub fn object(&self) -> Result<GitOpsRef, (String, String)> {
        let parse = |field: &str, v: &str| {
            ns_name(v).ok_or_else(|| {
                (
                    field.to_string(),
                    format!("`{v}` is not NAMESPACE/NAME (e.g. flux-system/apps)"),
                )
            })
        };
        match (&self.kustomization, &self.helmrelease) {
            (Some(k), None) => {
                let (namespace, name) = parse("kustomization", k)?;
                Ok(GitOpsRef::Kustomization { namespace, name })
            }
            (None, Some(h)) => {
                let (namespace, name) = parse("helmrelease", h)?;
                Ok(GitOpsRef::HelmRelease { namespace, name })
            }
            _ => Err((
                "kustomization".into(),
                "set exactly one of `kustomization: NS/NAME` or `helmrelease: NS/NAME`".into(),
            )),
        }
    }

    /// `flux:kustomization:NS/NAME`.
    pub(crate) fn describe(&self) -> String {
        match (&self.kustomization, &self.helmrelease) {
            (Some(k), _) => format!("flux:kustomization:{k}"),
            (None, Some(h)) => format!("flux:helmrelease:{h}"),
            (None, None) => "flux:(no object)".into(),
        }
    }

    /// The first problem of the block: `(field, message)`.
    ///
    /// # Errors
    /// As [`FluxSourceConfig::object`], and a bad `request_timeout`.
    pub fn problem(&self) -> Result<(), (String, String)> {
        self.object()?;
        check_timeout(&self.request_timeout)
    }

    /// The resolved source.
    ///
    /// # Errors
    /// As [`FluxSourceConfig::problem`], as text.
    pub fn spec(&self, base: &Path, data_dir: &Path) -> Result<GitOpsSource, String> {
        let object = self.object().map_err(|(f, m)| format!("{f}: {m}"))?;
        check_timeout(&self.request_timeout).map_err(|(f, m)| format!("{f}: {m}"))?;
        build(object, &common_of!(self), base, data_dir)
    }
}

fn build(
    object: GitOpsRef,
    c: &Common<'_>,
    base: &Path,
    data_dir: &Path,
) -> Result<GitOpsSource, String> {
    let abs = |p: &Path| {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            base.join(p)
        }
    };
    let request_timeout = match c.request_timeout {
        Some(t) => parse_duration(t).map_err(|e| format!("request_timeout: {e}"))?,
        None => Duration::from_secs(30),
    };
    let mut auth = c.auth.clone();
    auth.token_file = auth.token_file.as_deref().map(abs);
    auth.ssh_key = auth.ssh_key.as_deref().map(abs);
    Ok(GitOpsSource {
        object,
        target: ClusterTarget {
            kubeconfig: c.kubeconfig.as_deref().map(abs),
            context: c.context.clone(),
            in_cluster: c.in_cluster,
        },
        request_timeout,
        auth,
        sync: SyncOptions {
            cache_dir: data_dir.join("git"),
            ..SyncOptions::default()
        },
        render_timeout: Duration::from_secs(c.render_timeout_seconds.unwrap_or(120).max(1)),
        extra_path: Vec::new(),
        chart_cache: data_dir.join("charts"),
        repository_secrets: c.repository_secrets,
    })
}

use crate::source::parse_duration;

macro_rules! fill_cluster {
    ($t:ty) => {
        impl $t {
            /// Takes the environment's live cluster (kubeconfig, context, in-cluster) when
            /// the block names none of its own.
            pub(crate) fn inherit_cluster(
                &mut self,
                kubeconfig: &Option<PathBuf>,
                context: &Option<String>,
                in_cluster: bool,
            ) {
                if self.kubeconfig.is_none() && self.context.is_none() && !self.in_cluster {
                    self.kubeconfig.clone_from(kubeconfig);
                    self.context.clone_from(context);
                    self.in_cluster = in_cluster;
                }
            }
        }
    };
}

fill_cluster!(ArgoCdSourceConfig);
fill_cluster!(FluxSourceConfig);

/// An object's string map (labels, annotations) with every value as a string, as the
/// GitOps tools pass them on (`true` and `3` become `"true"` and `"3"`).
pub(crate) fn string_map(v: Option<&Value>) -> serde_json::Map<String, Value> {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let s = match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    (k.clone(), Value::String(s))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Whether a field of a JSON object is a non-empty array (a feature in use).
pub(crate) fn non_empty_array(v: &Value, field: &str) -> bool {
    v.get(field)
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty())
}

/// Reads a string field of a JSON object.
pub(crate) fn str_at<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

/// A repository path as Argo CD and Flux write it (`./apps/`, `.`, `/apps`) as a
/// repository-relative path (`apps`, ``).
pub(crate) fn clean_path(p: &str) -> String {
    p.split('/')
        .filter(|s| !s.is_empty() && *s != ".")
        .collect::<Vec<_>>()
        .join("/")
}

/// A values file relative to a chart directory, for a file named from the repository root.
pub(crate) fn relative_to(dir: &str, file_from_root: &str) -> String {
    let depth = dir.split('/').filter(|s| !s.is_empty()).count();
    let mut s = "../".repeat(depth);
    s.push_str(&clean_path(file_from_root));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_names() {
        assert_eq!(clean_path("./apps/web/"), "apps/web");
        assert_eq!(clean_path("."), "");
        assert_eq!(
            relative_to("charts/web", "envs/prod.yaml"),
            "../../envs/prod.yaml"
        );
        assert_eq!(relative_to("", "./v.yaml"), "v.yaml");
        assert_eq!(
            ns_name("flux-system/apps"),
            Some(("flux-system".into(), "apps".into()))
        );
        assert_eq!(ns_name("apps"), None);
        assert_eq!(ns_name("a/B"), None);
    }

    #[test]
    fn secret_credentials_become_git_auth_and_own_ones_win() {
        use std::os::unix::fs::PermissionsExt;
        let c = creds::RepoCreds {
            from: "Secret flux-system/git".into(),
            username: Some("bot".into()),
            password: Some(git::Hidden("pw".into())),
            ssh_private_key: Some(git::Hidden("-----BEGIN KEY-----".into())),
            known_hosts: Some("github.com ssh-ed25519 AAAA".into()),
            unused: Vec::new(),
        };
        let (auth, dir) = with_secret_credentials(&GitAuth::default(), Some(&c));
        assert_eq!(auth.username.as_deref(), Some("bot"));
        assert_eq!(auth.password, Some(git::Hidden("pw".into())));
        let key = auth.ssh_key.clone().unwrap();
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            std::fs::read_to_string(&key).unwrap(),
            "-----BEGIN KEY-----\n"
        );
        let kh = auth.known_hosts.clone().unwrap();
        assert!(git::known_hosts_options(&kh).contains("StrictHostKeyChecking=yes"));
        assert!(!format!("{auth:?}").contains("pw\""), "{auth:?}");
        drop(dir);
        assert!(!key.exists(), "the key file is removed with its directory");
        // The block's own credentials win.
        let own = GitAuth {
            token_env: Some("TOKEN".into()),
            ..GitAuth::default()
        };
        let (auth, dir) = with_secret_credentials(&own, Some(&c));
        assert_eq!(auth, own);
        assert!(dir.is_none());
    }

    #[test]
    fn flux_block_names_its_problem() {
        let f = FluxSourceConfig {
            kustomization: Some("apps".into()),
            helmrelease: None,
            kubeconfig: None,
            context: None,
            in_cluster: false,
            request_timeout: None,
            token_file: None,
            token_env: None,
            username: None,
            ssh_key: None,
            render_timeout_seconds: None,
            repository_secrets: None,
        };
        let (field, msg) = f.problem().unwrap_err();
        assert_eq!(field, "kustomization");
        assert!(msg.contains("NAMESPACE/NAME"), "{msg}");
    }
}
