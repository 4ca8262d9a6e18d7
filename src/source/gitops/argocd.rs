//! Argo CD Applications (argoproj.io/v1alpha1) as Git sources: [`map`].
//!
//! | Application field | envdrift |
//! | --- | --- |
//! | `source.chart`, `repoURL` (HTTP Helm repository, `oci://` or scheme-less: OCI registry), `targetRevision` (chart version or range) | the chart pulled with helm ([`super::helmrepo`]) |
//! | `source.repoURL`, `path`, `targetRevision` (default `HEAD`; a semver range picks the highest tag) | the Git source |
//! | `destination.namespace` | namespace of namespaced objects without one; Helm `--namespace` |
//! | `helm.valueFiles` (also `$ref/…` of a `ref` source of the same repository and revision), `values`, `valuesObject`, `parameters`, `releaseName` (default: the Application's name), `namespace`, `ignoreMissingValueFiles` | `helm template` |
//! | `kustomize.namePrefix`, `nameSuffix`, `namespace`, `images`, `commonLabels`, `commonAnnotations`, `labelWithoutSelector`, `labelIncludeTemplates`, `replicas`, `patches`, `components` | the kustomization, edited as `kustomize edit` does |
//! | `directory.recurse` (default false), `include`, `exclude` | the files read |
//! | `sources` (multi-source) | each source rendered, objects merged |
//! | `sourceHydrator` | the hydrated branch (`syncSource.targetBranch`, `path`) read as plain manifests |
//!
//! Everything else that changes what Argo CD renders (OCI artifacts of plain manifests,
//! plugins, `fileParameters`, Jsonnet, …) is [`Unmapped`](super::Unmapped). Repository
//! credentials come from Argo CD's Secrets ([`super::creds::argocd`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use super::helmrepo::ChartSource;
use super::kedit::{self, Edits};
use super::{
    GitOpsError, Mapped, MappedSource, Unmapped, clean_path, non_empty_array, relative_to, str_at,
    string_map,
};
use crate::source::git::{GitSpec, TreeFile};
use crate::source::render::Renderer;

/// The file inline Helm values are written to, in the chart directory.
pub(crate) const INLINE_VALUES: &str = ".envdrift-argocd-values.yaml";

/// Fields that do not change what is rendered.
const SPEC_NO_EFFECT: &[&str] = &[
    "project",
    "syncPolicy",
    "info",
    "revisionHistoryLimit",
    "destination",
];

struct Notes<'a> {
    object: &'a str,
    out: Vec<Unmapped>,
}

impl Notes<'_> {
    fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.out.push(Unmapped {
            object: self.object.to_string(),
            field: field.into(),
            message: message.into(),
        });
    }

    /// Reports the keys of `v` that are not in `known`.
    fn unknown(&mut self, v: &Value, prefix: &str, known: &[&str]) {
        if let Some(m) = v.as_object() {
            for (k, val) in m {
                if !known.contains(&k.as_str()) && !val.is_null() {
                    self.add(
                        format!("{prefix}.{k}"),
                        "not known to envdrift, so not applied",
                    );
                }
            }
        }
    }
}

/// How a source's files are changed before rendering.
#[derive(Default, Clone)]
struct TreeChanges {
    path: String,
    edits: Option<Edits>,
    /// Components that may be missing (`ignoreMissingComponents`).
    optional_components: bool,
    inline_values: Option<String>,
    /// Values files made empty when missing (`ignoreMissingValueFiles`).
    ensure: Vec<String>,
    directory: Option<(bool, Vec<String>, Vec<String>)>,
    /// The type is detected (no helm/kustomize/directory block): the directory rules
    /// apply only when the path holds neither a chart nor a kustomization.
    detected: bool,
    /// Where what the tree holds and envdrift cannot render is reported (`object`, field).
    report: Option<(String, String, super::FoundNotes)>,
}

fn glob_alternatives(p: &str) -> Vec<String> {
    let p = p.trim();
    match (p.strip_prefix('{'), p.ends_with('}')) {
        (Some(inner), true) => inner[..inner.len() - 1]
            .split(',')
            .map(|s| s.trim().to_string())
            .collect(),
        _ => vec![p.to_string()],
    }
}

fn any_glob(patterns: &[String], path: &str) -> bool {
    patterns.iter().any(|p| {
        glob_alternatives(p)
            .iter()
            .any(|a| crate::pattern::wildcard(a, path))
    })
}

impl TreeChanges {
    fn apply(&self, files: &mut Vec<TreeFile>) -> Result<(), String> {
        let prefix = if self.path.is_empty() {
            String::new()
        } else {
            format!("{}/", self.path)
        };
        let rendered = self.detected
            && (kedit::find_kustomization(files, &self.path).is_some()
                || files
                    .iter()
                    .any(|f| f.path == format!("{prefix}Chart.yaml")));
        if let Some((recurse, include, exclude)) = self.directory.as_ref().filter(|_| !rendered) {
            let wanted = |rel: &str| {
                (*recurse || !rel.contains('/'))
                    && (include.is_empty() || any_glob(include, rel))
                    && !any_glob(exclude, rel)
            };
            let jsonnet = files
                .iter()
                .filter_map(|f| f.path.strip_prefix(&prefix))
                .filter(|rel| wanted(rel) && rel.ends_with(".jsonnet"))
                .count();
            if jsonnet > 0
                && let Some((object, field, found)) = &self.report
            {
                found
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(Unmapped {
                        object: object.clone(),
                        field: field.clone(),
                        message: format!(
                            "{jsonnet} Jsonnet file(s) in {}: Argo CD renders them, envdrift does not",
                            if self.path.is_empty() { "." } else { &self.path }
                        ),
                    });
            }
            files.retain(|f| f.path.strip_prefix(&prefix).is_none_or(wanted));
        }
        if let Some(text) = &self.inline_values {
            let path = format!("{prefix}{INLINE_VALUES}");
            files.retain(|f| f.path != path);
            files.push(TreeFile {
                path,
                data: text.clone().into_bytes(),
                executable: false,
            });
        }
        for rel in &self.ensure {
            if let Some(p) = resolve(&self.path, rel)
                && !files.iter().any(|f| f.path == p)
            {
                files.push(TreeFile {
                    path: p,
                    data: Vec::new(),
                    executable: false,
                });
            }
        }
        if let Some(edits) = &self.edits {
            let mut edits = edits.clone();
            if self.optional_components {
                edits.components.retain(|c| {
                    resolve(&self.path, c).is_some_and(|d| {
                        files
                            .iter()
                            .any(|f| f.path.starts_with(&format!("{d}/")) || f.path == d)
                    })
                });
            }
            kedit::edit_tree(files, &self.path, &edits, false)?;
        }
        Ok(())
    }

    fn hook(self) -> Option<Arc<crate::source::render::TreeEdit>> {
        let idle = self.edits.is_none()
            && self.inline_values.is_none()
            && self.ensure.is_empty()
            && self.directory.is_none();
        if idle {
            return None;
        }
        Some(Arc::new(move |_path: &str, files: &mut Vec<TreeFile>| {
            self.apply(files)
        }))
    }
}

/// `dir` joined with a relative path (`../x`), `None` above the root.
fn resolve(dir: &str, rel: &str) -> Option<String> {
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

/// A `ref` source of a multi-source Application: its repository and revision.
struct RefSource {
    repo: String,
    revision: String,
}

fn same_repo(a: &str, b: &str) -> bool {
    let norm = |s: &str| {
        s.trim_end_matches('/')
            .trim_end_matches(".git")
            .to_ascii_lowercase()
    };
    norm(a) == norm(b)
}

/// Whether a revision is a semver constraint (Argo CD resolves those against Git tags).
fn is_semver_range(rev: &str) -> bool {
    rev.contains(['*', '^', '~', '>', '<', ' ', ','])
        || (rev.chars().filter(|c| *c == 'x').count() > 0
            && rev.split('.').count() > 1
            && rev.split('.').any(|p| p == "x"))
}

/// Maps an Application to its Git sources.
///
/// # Errors
/// No `spec`, a source without `repoURL`, or no source envdrift can render (the
/// message names the fields).
pub fn map(app: &Value) -> Result<Mapped, GitOpsError> {
    let ns = str_at(app, "/metadata/namespace").unwrap_or("argocd");
    let name = str_at(app, "/metadata/name").unwrap_or("");
    let object = format!("Application {ns}/{name}");
    let field = |f: &str, m: String| GitOpsError::Field {
        object: object.clone(),
        field: f.to_string(),
        message: m,
    };
    let spec = app
        .get("spec")
        .filter(|s| s.is_object())
        .ok_or_else(|| field("spec", "missing".into()))?;
    let mut notes = Notes {
        object: &object,
        out: Vec::new(),
    };
    let mut known: Vec<&str> = SPEC_NO_EFFECT.to_vec();
    known.extend(["source", "sources", "sourceHydrator", "ignoreDifferences"]);
    notes.unknown(spec, "spec", &known);
    if non_empty_array(spec, "ignoreDifferences") {
        notes.add(
            "spec.ignoreDifferences",
            "the Application's ignoreDifferences are not read; paste them under `ignore:` in the envdrift config (same vocabulary)",
        );
    }
    let dest_ns = str_at(spec, "/destination/namespace").filter(|s| !s.is_empty());
    let mut sources = Vec::new();
    let multi = spec
        .get("sources")
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty());
    match (multi, spec.get("source").filter(|s| s.is_object())) {
        (Some(list), _) => {
            let mut refs = BTreeMap::new();
            for s in list {
                if let (Some(r), Some(repo)) = (str_at(s, "/ref"), str_at(s, "/repoURL")) {
                    refs.insert(
                        r.to_string(),
                        RefSource {
                            repo: repo.to_string(),
                            revision: str_at(s, "/targetRevision").unwrap_or("HEAD").to_string(),
                        },
                    );
                }
            }
            for (i, s) in list.iter().enumerate() {
                let prefix = format!("spec.sources[{i}]");
                // A source that only names a `ref` provides values files to the others.
                if s.get("ref").is_some() && s.get("path").is_none() && s.get("chart").is_none() {
                    notes.unknown(s, &prefix, &["repoURL", "targetRevision", "ref", "name"]);
                    continue;
                }
                if let Some(ms) = map_source(s, &prefix, name, dest_ns, &refs, &mut notes)
                    .map_err(|(f, m)| field(&f, m))?
                {
                    sources.push(ms);
                }
            }
        }
        (None, Some(s)) => {
            if let Some(ms) = map_source(
                s,
                "spec.source",
                name,
                dest_ns,
                &BTreeMap::new(),
                &mut notes,
            )
            .map_err(|(f, m)| field(&f, m))?
            {
                sources.push(ms);
            }
        }
        (None, None) => match spec.get("sourceHydrator") {
            Some(h) => sources.push(hydrated(h, dest_ns).map_err(|(f, m)| field(&f, m))?),
            None => {
                return Err(field(
                    "spec.source",
                    "missing (neither spec.source, spec.sources nor spec.sourceHydrator)".into(),
                ));
            }
        },
    }
    if sources.is_empty() {
        let why: Vec<String> = notes
            .out
            .iter()
            .map(|u| format!("{}: {}", u.field, u.message))
            .collect();
        return Err(field(
            if multi.is_some() {
                "spec.sources"
            } else {
                "spec.source"
            },
            format!("no source envdrift can render ({})", why.join("; ")),
        ));
    }
    Ok(Mapped {
        sources,
        unmapped: notes.out,
    })
}

/// The hydrated manifests of a source hydrator: `syncSource.targetBranch` and `path` of
/// the dry source's repository, as plain manifests.
fn hydrated(h: &Value, dest_ns: Option<&str>) -> Result<MappedSource, (String, String)> {
    let repo = str_at(h, "/drySource/repoURL").ok_or((
        "spec.sourceHydrator.drySource.repoURL".to_string(),
        "missing".to_string(),
    ))?;
    let branch = str_at(h, "/syncSource/targetBranch").ok_or((
        "spec.sourceHydrator.syncSource.targetBranch".to_string(),
        "missing".to_string(),
    ))?;
    let path = clean_path(str_at(h, "/syncSource/path").unwrap_or(""));
    let mut ms = MappedSource::new(GitSpec {
        repo: repo.to_string(),
        reference: branch.to_string(),
        path,
    });
    ms.renderer = Some(Renderer::Plain);
    ms.default_namespace = dest_ns.map(str::to_string);
    Ok(ms)
}

/// One source. `Ok(None)`: a source envdrift cannot render (noted).
fn map_source(
    s: &Value,
    prefix: &str,
    app_name: &str,
    dest_ns: Option<&str>,
    refs: &BTreeMap<String, RefSource>,
    notes: &mut Notes<'_>,
) -> Result<Option<MappedSource>, (String, String)> {
    let repo = str_at(s, "/repoURL")
        .filter(|r| !r.is_empty())
        .ok_or((format!("{prefix}.repoURL"), "missing".to_string()))?;
    let revision = str_at(s, "/targetRevision")
        .filter(|r| !r.is_empty())
        .unwrap_or("HEAD");
    notes.unknown(
        s,
        prefix,
        &[
            "repoURL",
            "path",
            "targetRevision",
            "chart",
            "helm",
            "kustomize",
            "directory",
            "plugin",
            "ref",
            "name",
        ],
    );
    let chart = str_at(s, "/chart").filter(|c| !c.is_empty()).map(|chart| {
        // `oci://REGISTRY/PATH` or a repoURL without a scheme: an OCI registry (as Argo
        // CD's `enableOCI` repositories); else an HTTP Helm repository.
        let oci = repo.starts_with("oci://") || !repo.contains("://");
        ChartSource {
            repo: if oci && !repo.starts_with("oci://") {
                format!("oci://{}", repo.trim_end_matches('/'))
            } else {
                repo.to_string()
            },
            chart: chart.to_string(),
            version: if revision == "HEAD" || revision == "*" {
                String::new()
            } else {
                revision.to_string()
            },
            oci,
            digest: None,
        }
    });
    if chart.is_none() && repo.starts_with("oci://") {
        notes.add(
            format!("{prefix}.repoURL"),
            "OCI artifacts of plain manifests are not read by envdrift (Helm charts from OCI registries are, with `chart`)",
        );
        return Ok(None);
    }
    if chart.is_some() && (s.get("kustomize").is_some() || s.get("directory").is_some()) {
        return Err((
            prefix.to_string(),
            "a Helm chart source (`chart`) takes a `helm` block only".to_string(),
        ));
    }
    if s.get("plugin").is_some() {
        notes.add(
            format!("{prefix}.plugin"),
            "config management plugins are not run by envdrift",
        );
        return Ok(None);
    }
    let path = if chart.is_some() {
        String::new()
    } else {
        clean_path(str_at(s, "/path").unwrap_or(""))
    };
    let mut ms = MappedSource::new(GitSpec {
        repo: repo.to_string(),
        reference: revision.to_string(),
        path: path.clone(),
    });
    if chart.is_none() && is_semver_range(revision) {
        ms.semver = Some(revision.to_string());
    }
    if chart.is_some() {
        ms.renderer = Some(Renderer::Helm);
    }
    ms.chart = chart;
    ms.default_namespace = dest_ns.map(str::to_string);
    let mut changes = TreeChanges {
        path: path.clone(),
        ..TreeChanges::default()
    };
    let blocks = ["helm", "kustomize", "directory"]
        .iter()
        .filter(|b| s.get(**b).is_some_and(Value::is_object))
        .count();
    if blocks > 1 {
        return Err((
            prefix.to_string(),
            "more than one of helm, kustomize and directory is set (Argo CD refuses this too)"
                .to_string(),
        ));
    }
    if let Some(h) = s.get("helm").filter(|h| h.is_object()) {
        ms.renderer = Some(Renderer::Helm);
        helm(
            h,
            &format!("{prefix}.helm"),
            app_name,
            dest_ns,
            refs,
            repo,
            revision,
            &path,
            &mut ms,
            &mut changes,
            notes,
        );
    }
    if ms.helm.release.is_none() {
        // Argo CD names the release after the Application.
        ms.helm.release = Some(app_name.to_string());
    }
    if ms.helm.namespace.is_none() {
        ms.helm.namespace = dest_ns.map(str::to_string);
    }
    if let Some(k) = s.get("kustomize").filter(|k| k.is_object()) {
        ms.renderer = Some(Renderer::Kustomize);
        kustomize(
            k,
            &format!("{prefix}.kustomize"),
            app_name,
            dest_ns,
            &mut changes,
            notes,
        )?;
    }
    if let Some(d) = s.get("directory").filter(|d| d.is_object()) {
        let p = format!("{prefix}.directory");
        notes.unknown(d, &p, &["recurse", "include", "exclude", "jsonnet"]);
        if d.get("jsonnet")
            .and_then(Value::as_object)
            .is_some_and(|j| {
                j.values()
                    .any(|v| !v.is_null() && v != &Value::Array(vec![]))
            })
        {
            notes.add(
                format!("{p}.jsonnet"),
                "Jsonnet is not evaluated by envdrift",
            );
        }
        let recurse = d.get("recurse").and_then(Value::as_bool).unwrap_or(false);
        let include = glob_list(d.get("include"));
        let exclude = glob_list(d.get("exclude"));
        ms.renderer = Some(Renderer::Plain);
        changes.directory = Some((recurse, include, exclude));
    } else if ms.renderer.is_none() {
        // Without a block Argo CD detects the type like envdrift does (Chart.yaml,
        // kustomization.yaml, else plain files), and reads a plain directory without
        // recursing.
        changes.directory = Some((false, Vec::new(), Vec::new()));
        changes.detected = true;
    }
    changes.report = Some((
        notes.object.to_string(),
        format!("{prefix}.path"),
        Arc::clone(&ms.found),
    ));
    ms.hooks.tree = changes.hook();
    Ok(Some(ms))
}

/// `include`/`exclude`: a glob, or `{a,b}` alternatives.
fn glob_list(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
        .map(|s| vec![s.to_string()])
        .unwrap_or_default()
}

#[allow(clippy::too_many_arguments)] // one call site; the parts of one source
fn helm(
    h: &Value,
    p: &str,
    app_name: &str,
    dest_ns: Option<&str>,
    refs: &BTreeMap<String, RefSource>,
    repo: &str,
    revision: &str,
    path: &str,
    ms: &mut MappedSource,
    changes: &mut TreeChanges,
    notes: &mut Notes<'_>,
) {
    notes.unknown(
        h,
        p,
        &[
            "valueFiles",
            "values",
            "valuesObject",
            "parameters",
            "fileParameters",
            "releaseName",
            "namespace",
            "ignoreMissingValueFiles",
            "passCredentials",
            "version",
            "skipCrds",
            "skipTests",
            "skipSchemaValidation",
            "kubeVersion",
            "apiVersions",
        ],
    );
    ms.helm.release = Some(
        str_at(h, "/releaseName")
            .filter(|r| !r.is_empty())
            .unwrap_or(app_name)
            .to_string(),
    );
    ms.helm.namespace = str_at(h, "/namespace")
        .filter(|n| !n.is_empty())
        .or(dest_ns)
        .map(str::to_string);
    let ignore_missing = h
        .get("ignoreMissingValueFiles")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    for (i, f) in h
        .get("valueFiles")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let Some(f) = f.as_str() else { continue };
        let field = format!("{p}.valueFiles[{i}]");
        if f.starts_with("http://") || f.starts_with("https://") {
            notes.add(
                field,
                format!("values file by URL `{f}` is not fetched by envdrift"),
            );
            continue;
        }
        let rel = if let Some(rest) = f.strip_prefix('$') {
            let (name, file) = rest.split_once('/').unwrap_or((rest, ""));
            match refs.get(name) {
                Some(r) if same_repo(&r.repo, repo) && r.revision == revision => {
                    relative_to(path, file)
                }
                Some(r) => {
                    notes.add(
                        field,
                        format!(
                            "`{f}` comes from {}@{}, another repository or revision than the chart's: envdrift renders each source from its own tree",
                            crate::redact::redact_url(&r.repo),
                            r.revision
                        ),
                    );
                    continue;
                }
                None => {
                    notes.add(field, format!("`{f}`: no source has `ref: {name}`"));
                    continue;
                }
            }
        } else if let Some(from_root) = f.strip_prefix('/') {
            // An absolute path is from the repository root.
            relative_to(path, from_root)
        } else {
            f.to_string()
        };
        if ignore_missing {
            changes.ensure.push(rel.clone());
        }
        ms.helm.values.push(rel);
    }
    let inline = match (h.get("valuesObject"), h.get("values")) {
        (Some(o), _) if o.is_object() => serde_json::to_string_pretty(o).ok(),
        (_, Some(Value::String(s))) if !s.trim().is_empty() => Some(s.clone()),
        (_, Some(o)) if o.is_object() => serde_json::to_string_pretty(o).ok(),
        _ => None,
    };
    if let Some(text) = inline {
        changes.inline_values = Some(text);
        ms.helm.values.push(INLINE_VALUES.to_string());
    }
    for (i, param) in h
        .get("parameters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let (Some(n), v) = (str_at(param, "/name"), param.get("value")) else {
            notes.add(format!("{p}.parameters[{i}]"), "no name");
            continue;
        };
        let v = match v {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => String::new(),
            Some(other) => other.to_string(),
        };
        if param.get("forceString").and_then(Value::as_bool) == Some(true) {
            notes.add(
                format!("{p}.parameters[{i}].forceString"),
                format!("`{n}` is passed with --set, not --set-string"),
            );
        }
        ms.helm.set.push(format!("{n}={v}"));
    }
    if non_empty_array(h, "fileParameters") {
        notes.add(
            format!("{p}.fileParameters"),
            "--set-file is not passed by envdrift",
        );
    }
    if h.get("passCredentials").and_then(Value::as_bool) == Some(true) {
        notes.add(
            format!("{p}.passCredentials"),
            "credentials are not passed to chart URLs on other hosts than the repository's",
        );
    }
    for f in ["kubeVersion", "apiVersions"] {
        if h.get(f)
            .is_some_and(|v| !v.is_null() && v != &Value::Array(vec![]) && v != "")
        {
            notes.add(
                format!("{p}.{f}"),
                "helm template runs with its own default capabilities",
            );
        }
    }
}

fn kustomize(
    k: &Value,
    p: &str,
    app_name: &str,
    dest_ns: Option<&str>,
    changes: &mut TreeChanges,
    notes: &mut Notes<'_>,
) -> Result<(), (String, String)> {
    notes.unknown(
        k,
        p,
        &[
            "namePrefix",
            "nameSuffix",
            "images",
            "commonLabels",
            "commonAnnotations",
            "commonAnnotationsEnvsubst",
            "namespace",
            "replicas",
            "patches",
            "components",
            "ignoreMissingComponents",
            "forceCommonLabels",
            "forceCommonAnnotations",
            "labelWithoutSelector",
            "labelIncludeTemplates",
            "version",
            "kubeVersion",
            "apiVersions",
        ],
    );
    let text = |f: &str| {
        str_at(k, &format!("/{f}"))
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let mut edits = Edits {
        name_prefix: text("namePrefix"),
        name_suffix: text("nameSuffix"),
        namespace: text("namespace"),
        common_labels: string_map(k.get("commonLabels")),
        labels_without_selector: k.get("labelWithoutSelector").and_then(Value::as_bool)
            == Some(true),
        labels_include_templates: k.get("labelIncludeTemplates").and_then(Value::as_bool)
            == Some(true),
        common_annotations: string_map(k.get("commonAnnotations")),
        ..Edits::default()
    };
    if k.get("commonAnnotationsEnvsubst").and_then(Value::as_bool) == Some(true) {
        let vars = BTreeMap::from([
            ("ARGOCD_APP_NAME".to_string(), app_name.to_string()),
            (
                "ARGOCD_APP_NAMESPACE".to_string(),
                dest_ns.unwrap_or("").to_string(),
            ),
        ]);
        for (n, v) in &mut edits.common_annotations {
            if let Value::String(s) = v {
                *s = super::subst::substitute(s, &vars)
                    .map_err(|e| (format!("{p}.commonAnnotations.{n}"), e))?;
            }
        }
    }
    for (i, img) in k
        .get("images")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let Some(s) = img.as_str() else { continue };
        edits
            .images
            .push(kedit::parse_image(s).map_err(|e| (format!("{p}.images[{i}]"), e))?);
    }
    for r in k
        .get("replicas")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        edits.replicas.push(r.clone());
    }
    for pt in k
        .get("patches")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        edits.patches.push(pt.clone());
    }
    for c in k
        .get("components")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(c) = c.as_str() {
            edits.components.push(c.to_string());
        }
    }
    for f in ["version", "kubeVersion", "apiVersions"] {
        if k.get(f)
            .is_some_and(|v| !v.is_null() && v != "" && v != &Value::Array(vec![]))
        {
            notes.add(
                format!("{p}.{f}"),
                "envdrift runs the kustomize found on PATH, with its defaults",
            );
        }
    }
    changes.optional_components =
        k.get("ignoreMissingComponents").and_then(Value::as_bool) == Some(true);
    if !edits.is_empty() {
        changes.edits = Some(edits);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn app(spec: Value) -> Value {
        json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
               "metadata": {"name": "guestbook", "namespace": "argocd"}, "spec": spec})
    }

    #[test]
    fn helm_source_maps_values_parameters_and_release() {
        let m = map(&app(json!({
            "destination": {"server": "https://kubernetes.default.svc", "namespace": "shop"},
            "source": {"repoURL": "https://git.example/shop.git", "path": "./charts/web",
                       "targetRevision": "main",
                       "helm": {"valueFiles": ["values-prod.yaml", "/envs/prod.yaml"], "valuesObject": {"replicas": 3},
                                "parameters": [{"name": "image.tag", "value": "1.2"}],
                                "fileParameters": [{"name": "x", "path": "f"}]}}
        })))
        .unwrap();
        let s = &m.sources[0];
        assert_eq!(s.spec.repo, "https://git.example/shop.git");
        assert_eq!(s.spec.reference, "main");
        assert_eq!(s.spec.path, "charts/web");
        assert_eq!(s.renderer, Some(Renderer::Helm));
        assert_eq!(s.helm.release.as_deref(), Some("guestbook"));
        assert_eq!(s.helm.namespace.as_deref(), Some("shop"));
        assert_eq!(
            s.helm.values,
            ["values-prod.yaml", "../../envs/prod.yaml", INLINE_VALUES]
        );
        assert_eq!(s.helm.set, ["image.tag=1.2"]);
        assert_eq!(s.default_namespace.as_deref(), Some("shop"));
        assert_eq!(m.unmapped.len(), 1, "{:?}", m.unmapped);
        assert_eq!(m.unmapped[0].field, "spec.source.helm.fileParameters");
        assert_eq!(m.unmapped[0].object, "Application argocd/guestbook");
    }

    #[test]
    fn chart_sources_map_to_helm_repositories_and_oci_registries() {
        let m = map(&app(json!({
            "destination": {"namespace": "shop"},
            "source": {"repoURL": "https://charts.example", "chart": "web", "targetRevision": "^1.2",
                       "helm": {"valuesObject": {"replicas": 3}, "parameters": [{"name": "a", "value": "b"}]}}
        })))
        .unwrap();
        let s = &m.sources[0];
        let c = s.chart.as_ref().unwrap();
        assert_eq!(
            (c.repo.as_str(), c.chart.as_str(), c.version.as_str(), c.oci),
            ("https://charts.example", "web", "^1.2", false)
        );
        assert_eq!(s.semver, None);
        assert_eq!(s.renderer, Some(Renderer::Helm));
        assert_eq!(s.helm.values, [INLINE_VALUES]);
        assert_eq!(s.helm.set, ["a=b"]);
        assert_eq!(s.helm.release.as_deref(), Some("guestbook"));
        for repo in ["registry.example/charts", "oci://registry.example/charts"] {
            let m = map(&app(json!({
                "source": {"repoURL": repo, "chart": "web", "targetRevision": "1.0.0"}
            })))
            .unwrap();
            let c = m.sources[0].chart.as_ref().unwrap();
            assert_eq!(
                (c.repo.as_str(), c.oci),
                ("oci://registry.example/charts", true)
            );
        }
    }

    #[test]
    fn unmappable_sources_are_errors_naming_the_field() {
        let e = map(&app(json!({
            "source": {"repoURL": "oci://registry.example/manifests", "targetRevision": "1.0.0"}
        })))
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("Application argocd/guestbook: spec.source: no source"),
            "{e}"
        );
        assert!(e.contains("spec.source.repoURL: OCI artifacts"), "{e}");
        let e = map(&app(json!({
            "source": {"repoURL": "https://charts.example", "chart": "web", "kustomize": {}}
        })))
        .unwrap_err()
        .to_string();
        assert!(e.contains("takes a `helm` block only"), "{e}");
        let e = map(&app(json!({"source": {"path": "x"}})))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "Application argocd/guestbook: spec.source.repoURL: missing"
        );
        let e = map(&app(json!({"destination": {}})))
            .unwrap_err()
            .to_string();
        assert!(e.contains("spec.source: missing"), "{e}");
    }

    #[test]
    fn multi_source_resolves_same_repo_refs_and_reports_others() {
        let m = map(&app(json!({
            "sources": [
                {"repoURL": "https://git.example/shop.git", "path": "charts/web", "targetRevision": "main",
                 "helm": {"valueFiles": ["$values/envs/prod.yaml", "$other/x.yaml"]}},
                {"repoURL": "https://git.example/shop", "targetRevision": "main", "ref": "values"},
                {"repoURL": "https://git.example/cfg.git", "targetRevision": "main", "ref": "other"},
                {"repoURL": "https://git.example/shop.git", "path": "extra", "targetRevision": "main", "unknownKey": 1}
            ]
        })))
        .unwrap();
        assert_eq!(m.sources.len(), 2);
        assert_eq!(m.sources[0].helm.values, ["../../envs/prod.yaml"]);
        let fields: Vec<&str> = m.unmapped.iter().map(|u| u.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "spec.sources[0].helm.valueFiles[1]",
                "spec.sources[3].unknownKey"
            ]
        );
    }

    #[test]
    fn kustomize_options_become_edits_and_directory_filters() {
        let m = map(&app(json!({
            "source": {"repoURL": "file:///r", "path": "k", "targetRevision": "v1.*",
                       "kustomize": {"namePrefix": "p-", "images": ["web:2"], "commonLabels": {"a": "b"},
                                     "version": "v5.0.0"}}
        })))
        .unwrap();
        assert_eq!(m.sources[0].semver.as_deref(), Some("v1.*"));
        assert!(m.sources[0].hooks.tree.is_some());
        assert_eq!(m.unmapped[0].field, "spec.source.kustomize.version");
        let tc = TreeChanges {
            path: "d".into(),
            directory: Some((false, vec!["{*.yaml,*.yml}".into()], vec!["skip*".into()])),
            ..TreeChanges::default()
        };
        let mut files: Vec<TreeFile> = [
            "d/a.yaml",
            "d/b.yml",
            "d/skip.yaml",
            "d/sub/c.yaml",
            "d/x.json",
        ]
        .iter()
        .map(|p| TreeFile {
            path: (*p).into(),
            data: Vec::new(),
            executable: false,
        })
        .collect();
        tc.apply(&mut files).unwrap();
        let left: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(left, ["d/a.yaml", "d/b.yml"]);
        // Jsonnet files are reported, not dropped silently.
        let found = Arc::default();
        let tc = TreeChanges {
            path: "d".into(),
            directory: Some((false, Vec::new(), Vec::new())),
            report: Some((
                "Application argocd/x".into(),
                "spec.source.path".into(),
                Arc::clone(&found),
            )),
            ..TreeChanges::default()
        };
        let mut files = vec![TreeFile {
            path: "d/app.jsonnet".into(),
            data: Vec::new(),
            executable: false,
        }];
        tc.apply(&mut files).unwrap();
        let found = found.lock().unwrap();
        assert_eq!(found.len(), 1);
        assert!(
            found[0].message.contains("1 Jsonnet file(s) in d"),
            "{:?}",
            found[0]
        );
    }
}
