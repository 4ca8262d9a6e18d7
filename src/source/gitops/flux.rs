//! Flux objects as Git sources and charts: [`map_kustomization`]
//! (kustomize.toolkit.fluxcd.io/v1) and [`map_helmrelease`] (helm.toolkit.fluxcd.io/v2),
//! with their `GitRepository`, `HelmRepository` and `OCIRepository`
//! (source.toolkit.fluxcd.io/v1) and the credentials their `secretRef` names.
//!
//! | Flux field | envdrift |
//! | --- | --- |
//! | GitRepository `url`, `ref.commit` / `name` / `semver` / `tag` / `branch` (that precedence; default `master`) | the Git source |
//! | Kustomization `path`, `targetNamespace`, `namePrefix`, `nameSuffix`, `images`, `patches`, `components` | the kustomization, edited as kustomize-controller does (one is generated when the path has none) |
//! | Kustomization `commonMetadata` | labels and annotations on every object's metadata |
//! | Kustomization `postBuild.substitute`, `substituteFrom` (ConfigMaps and Secrets read from the cluster) | `${var}` substitution of the rendered objects |
//! | HelmRelease `chart.spec.chart` of a GitRepository, `valuesFiles`, `valuesFrom`, `values`, `releaseName` (default `[targetNamespace-]name`), `targetNamespace` | `helm template` |
//! | HelmRelease `chart.spec` of a HelmRepository (`type: default`/`oci`, `version`), `chartRef` to an OCIRepository (`url`, `ref.digest` / `semver` / `tag`) | the chart pulled with helm ([`super::helmrepo`]) |
//! | `spec.secretRef` of the sources | their credentials ([`super::creds`]) |
//!
//! OCI and Bucket sources of Kustomizations, SOPS decryption, post-renderers and remote
//! clusters (`kubeConfig`) are reported, never silently dropped.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine;
use serde_json::Value;

use super::CredsFrom;
use super::helmrepo::ChartSource;
use super::kedit::{self, Edits};
use super::{
    CONFIGMAP, GITREPOSITORY, GitOpsError, HELMREPOSITORY, Lookup, Mapped, MappedSource,
    OCIREPOSITORY, Res, SECRET, Unmapped, clean_path, non_empty_array, relative_to, str_at,
    string_map, subst,
};
use crate::source::git::{GitSpec, TreeFile};
use crate::source::render::Renderer;

/// The file a HelmRelease's inline `values` are written to, in the chart directory.
pub(crate) const INLINE_VALUES: &str = ".envdrift-helmrelease-values.yaml";

struct Ctx<'a> {
    object: String,
    namespace: String,
    lookup: &'a dyn Lookup,
    notes: Vec<Unmapped>,
}

impl Ctx<'_> {
    fn note(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.notes.push(Unmapped {
            object: self.object.clone(),
            field: field.into(),
            message: message.into(),
        });
    }

    fn err(&self, field: impl Into<String>, message: impl Into<String>) -> GitOpsError {
        GitOpsError::Field {
            object: self.object.clone(),
            field: field.into(),
            message: message.into(),
        }
    }

    fn unknown(&mut self, v: &Value, prefix: &str, known: &[&str]) {
        if let Some(m) = v.as_object() {
            for (k, val) in m {
                if !known.contains(&k.as_str()) && !val.is_null() {
                    self.note(
                        format!("{prefix}.{k}"),
                        "not known to envdrift, so not applied",
                    );
                }
            }
        }
    }

    fn get(
        &self,
        res: &Res,
        ns: &str,
        name: &str,
        field: &str,
    ) -> Result<Option<Value>, GitOpsError> {
        self.lookup
            .get(res, ns, name)
            .map_err(|reason| GitOpsError::ReadFailed {
                object: format!("{} {ns}/{name} ({} {field})", res.kind, self.object),
                reason,
            })
    }
}

fn new_ctx<'a>(kind: &str, obj: &Value, lookup: &'a dyn Lookup) -> Ctx<'a> {
    let ns = str_at(obj, "/metadata/namespace")
        .unwrap_or("default")
        .to_string();
    let name = str_at(obj, "/metadata/name").unwrap_or("");
    Ctx {
        object: format!("{kind} {ns}/{name}"),
        namespace: ns,
        lookup,
        notes: Vec::new(),
    }
}

/// Follows a `sourceRef` to a GitRepository: the Git source of its URL and ref.
fn git_source(
    c: &mut Ctx<'_>,
    sref: &Value,
    field: &str,
    kind_hint: &str,
) -> Result<MappedSource, GitOpsError> {
    let kind = str_at(sref, "/kind").unwrap_or("");
    let name = str_at(sref, "/name")
        .filter(|n| !n.is_empty())
        .ok_or_else(|| c.err(format!("{field}.name"), "missing"))?;
    let ns = str_at(sref, "/namespace")
        .filter(|n| !n.is_empty())
        .unwrap_or(&c.namespace)
        .to_string();
    match kind {
        "GitRepository" => {}
        "OCIRepository" | "HelmRepository" => {
            let res = if kind == "OCIRepository" {
                OCIREPOSITORY
            } else {
                HELMREPOSITORY
            };
            let url = c
                .get(&res, &ns, name, field)?
                .and_then(|o| str_at(&o, "/spec/url").map(str::to_string))
                .map_or_else(String::new, |u| {
                    format!(" ({})", crate::redact::redact_url(&u))
                });
            return Err(c.err(
                format!("{field}.kind"),
                format!("{kind} {ns}/{name}{url}: envdrift renders {kind_hint} from GitRepository sources only"),
            ));
        }
        other => {
            return Err(c.err(
                format!("{field}.kind"),
                format!("`{other}` sources are not read by envdrift (GitRepository only)"),
            ));
        }
    }
    let repo_obj =
        c.get(&GITREPOSITORY, &ns, name, field)?
            .ok_or_else(|| GitOpsError::NotFound {
                object: format!("GitRepository {ns}/{name}"),
                hint: format!(" (named by {} {field})", c.object),
            })?;
    let repo_desc = format!("GitRepository {ns}/{name}");
    let spec = repo_obj.get("spec").cloned().unwrap_or_default();
    let url = str_at(&spec, "/url")
        .filter(|u| !u.is_empty())
        .ok_or_else(|| GitOpsError::Field {
            object: repo_desc.clone(),
            field: "spec.url".into(),
            message: "missing".into(),
        })?;
    let r = spec.get("ref").cloned().unwrap_or_default();
    let pick = |f: &str| {
        str_at(&r, &format!("/{f}"))
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let (reference, semver) = if let Some(c) = pick("commit") {
        (c, None)
    } else if let Some(n) = pick("name") {
        (n, None)
    } else if let Some(s) = pick("semver") {
        ("HEAD".to_string(), Some(s))
    } else if let Some(t) = pick("tag") {
        (t, None)
    } else {
        (pick("branch").unwrap_or_else(|| "master".into()), None)
    };
    let before = c.object.clone();
    c.object = repo_desc;
    c.unknown(
        &spec,
        "spec",
        &[
            "url",
            "ref",
            "interval",
            "timeout",
            "secretRef",
            "provider",
            "serviceAccountName",
            "proxySecretRef",
            "verify",
            "ignore",
            "suspend",
            "include",
            "recurseSubmodules",
            "sparseCheckout",
        ],
    );
    if non_empty_array(&spec, "include") {
        c.note(
            "spec.include",
            "artifacts of other GitRepositories are not merged in by envdrift",
        );
    }
    if spec
        .get("ignore")
        .and_then(Value::as_str)
        .is_some_and(|s| !s.trim().is_empty())
    {
        c.note(
            "spec.ignore",
            "ignore patterns are not applied: every file of the path is read",
        );
    }
    if spec.get("recurseSubmodules").and_then(Value::as_bool) == Some(true) {
        c.note(
            "spec.recurseSubmodules",
            "submodules are not fetched by envdrift",
        );
    }
    c.object = before;
    let mut ms = MappedSource::new(GitSpec {
        repo: url.to_string(),
        reference,
        path: String::new(),
    });
    ms.semver = semver;
    ms.creds_from = secret_ref(&spec, &ns, &format!("GitRepository {ns}/{name}"));
    Ok(ms)
}

/// A source's `spec.secretRef.name`: where its credentials are.
fn secret_ref(spec: &Value, ns: &str, source: &str) -> CredsFrom {
    match str_at(spec, "/secretRef/name").filter(|n| !n.is_empty()) {
        Some(secret) => CredsFrom::Flux {
            namespace: ns.to_string(),
            secret: secret.to_string(),
            source: source.to_string(),
        },
        None => CredsFrom::None,
    }
}

const HELMREPOSITORY_FIELDS: &[&str] = &[
    "url",
    "type",
    "secretRef",
    "interval",
    "timeout",
    "provider",
    "suspend",
    "passCredentials",
    "insecure",
    "accessFrom",
    "certSecretRef",
];

const OCIREPOSITORY_FIELDS: &[&str] = &[
    "url",
    "ref",
    "secretRef",
    "interval",
    "timeout",
    "provider",
    "suspend",
    "insecure",
    "serviceAccountName",
    "certSecretRef",
    "proxySecretRef",
    "verify",
    "ignore",
    "layerSelector",
];

/// Options of a HelmRepository / OCIRepository that change how the chart is fetched and
/// that envdrift does not apply (reported on the source object).
fn source_options_not_applied(c: &mut Ctx<'_>, spec: &Value, url: &str) {
    if spec.get("passCredentials").and_then(Value::as_bool) == Some(true) {
        c.note(
            "spec.passCredentials",
            "credentials are not passed to chart URLs on other hosts than the repository's",
        );
    }
    if spec.get("insecure").and_then(Value::as_bool) == Some(true) {
        let host = url
            .split("://")
            .nth(1)
            .and_then(|r| r.split('/').next())
            .unwrap_or("");
        if !(host.starts_with("127.") || host.starts_with("localhost")) {
            c.note(
                "spec.insecure",
                "plain HTTP is used for loopback registries only; this one is reached over HTTPS",
            );
        }
    }
    if spec.get("certSecretRef").is_some_and(|v| !v.is_null()) {
        c.note(
            "spec.certSecretRef",
            "TLS client certificates and custom CAs are not used by envdrift",
        );
    }
    if let Some(p) = str_at(spec, "/provider").filter(|p| *p != "generic") {
        c.note(
            "spec.provider",
            format!("`{p}` (cloud workload identity) credentials are not used by envdrift"),
        );
    }
}

/// A chart from a HelmRepository (`type: default` or `oci`) named by `chart.spec`.
fn helm_repository_chart(
    c: &mut Ctx<'_>,
    sref: &Value,
    chart: &str,
    version: &str,
) -> Result<MappedSource, GitOpsError> {
    let field = "spec.chart.spec.sourceRef";
    let name = str_at(sref, "/name")
        .filter(|n| !n.is_empty())
        .ok_or_else(|| c.err(format!("{field}.name"), "missing"))?;
    let ns = str_at(sref, "/namespace")
        .filter(|n| !n.is_empty())
        .unwrap_or(&c.namespace)
        .to_string();
    let desc = format!("HelmRepository {ns}/{name}");
    let obj = c
        .get(&HELMREPOSITORY, &ns, name, field)?
        .ok_or_else(|| GitOpsError::NotFound {
            object: desc.clone(),
            hint: format!(" (named by {} {field})", c.object),
        })?;
    let spec = obj.get("spec").cloned().unwrap_or_default();
    let url = str_at(&spec, "/url")
        .filter(|u| !u.is_empty())
        .ok_or_else(|| GitOpsError::Field {
            object: desc.clone(),
            field: "spec.url".into(),
            message: "missing".into(),
        })?;
    let oci = str_at(&spec, "/type") == Some("oci") || url.starts_with("oci://");
    let before = std::mem::replace(&mut c.object, desc.clone());
    c.unknown(&spec, "spec", HELMREPOSITORY_FIELDS);
    source_options_not_applied(c, &spec, url);
    c.object = before;
    let mut ms = MappedSource::new(GitSpec {
        repo: url.to_string(),
        reference: version.to_string(),
        path: String::new(),
    });
    ms.chart = Some(ChartSource {
        repo: url.to_string(),
        chart: chart.to_string(),
        version: if version == "*" {
            String::new()
        } else {
            version.to_string()
        },
        oci,
        digest: None,
    });
    ms.creds_from = secret_ref(&spec, &ns, &desc);
    Ok(ms)
}

/// The chart of a `chartRef` to an OCIRepository (`url` `oci://HOST/PATH/CHART`,
/// `ref.tag` or `ref.semver`).
fn oci_repository_chart(c: &mut Ctx<'_>, cr: &Value) -> Result<MappedSource, GitOpsError> {
    let field = "spec.chartRef";
    let kind = str_at(cr, "/kind").unwrap_or("");
    let name = str_at(cr, "/name")
        .filter(|n| !n.is_empty())
        .ok_or_else(|| c.err(format!("{field}.name"), "missing"))?;
    let ns = str_at(cr, "/namespace")
        .filter(|n| !n.is_empty())
        .unwrap_or(&c.namespace)
        .to_string();
    if kind != "OCIRepository" {
        return Err(c.err(
            format!("{field}.kind"),
            format!("{kind} {ns}/{name}: envdrift renders chartRef to an OCIRepository only"),
        ));
    }
    let desc = format!("OCIRepository {ns}/{name}");
    let obj = c
        .get(&OCIREPOSITORY, &ns, name, field)?
        .ok_or_else(|| GitOpsError::NotFound {
            object: desc.clone(),
            hint: format!(" (named by {} {field})", c.object),
        })?;
    let spec = obj.get("spec").cloned().unwrap_or_default();
    let ferr = |f: &str, m: String| GitOpsError::Field {
        object: desc.clone(),
        field: f.into(),
        message: m,
    };
    let url = str_at(&spec, "/url")
        .filter(|u| u.starts_with("oci://"))
        .ok_or_else(|| ferr("spec.url", "missing or not an oci:// URL".into()))?;
    let (repo, chart) = url
        .trim_end_matches('/')
        .rsplit_once('/')
        .filter(|(r, ch)| r.len() > "oci://".len() && !ch.is_empty())
        .ok_or_else(|| {
            ferr(
                "spec.url",
                format!("`{url}` names no chart (oci://HOST/PATH/CHART)"),
            )
        })?;
    let r = spec.get("ref").cloned().unwrap_or_default();
    // Flux's precedence: digest, then semver, then tag.
    let digest = str_at(&r, "/digest")
        .filter(|d| !d.is_empty())
        .map(str::to_string);
    let version = str_at(&r, "/semver")
        .or_else(|| str_at(&r, "/tag"))
        .filter(|v| !v.is_empty())
        .unwrap_or("")
        .to_string();
    let before = std::mem::replace(&mut c.object, desc.clone());
    c.unknown(&spec, "spec", OCIREPOSITORY_FIELDS);
    source_options_not_applied(c, &spec, url);
    if spec.get("layerSelector").is_some_and(|l| !l.is_null()) {
        c.note(
            "spec.layerSelector",
            "the chart layer is chosen by helm (Helm's media type), not by the selector",
        );
    }
    c.object = before;
    let mut ms = MappedSource::new(GitSpec {
        repo: url.to_string(),
        reference: version.clone(),
        path: String::new(),
    });
    ms.chart = Some(ChartSource {
        repo: repo.to_string(),
        chart: chart.to_string(),
        version,
        oci: true,
        digest,
    });
    ms.creds_from = secret_ref(&spec, &ns, &desc);
    Ok(ms)
}

/// The string data of a ConfigMap or Secret (Secret values decoded; never logged).
fn data_of(obj: &Value, secret: bool) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Some(m) = obj.get("data").and_then(Value::as_object) {
        for (k, v) in m {
            let Some(s) = v.as_str() else { continue };
            let text = if secret {
                match base64::engine::general_purpose::STANDARD.decode(s.trim()) {
                    Ok(b) => String::from_utf8_lossy(&b).into_owned(),
                    Err(_) => continue,
                }
            } else {
                s.to_string()
            };
            out.insert(k.clone(), text);
        }
    }
    if !secret && let Some(m) = obj.get("binaryData").and_then(Value::as_object) {
        for k in m.keys() {
            out.entry(k.clone()).or_default();
        }
    }
    out
}

/// A ConfigMap or Secret named by `valuesFrom` / `substituteFrom`: its data, `None` when
/// it is missing and optional.
fn referenced_data(
    c: &Ctx<'_>,
    r: &Value,
    field: &str,
) -> Result<Option<BTreeMap<String, String>>, GitOpsError> {
    let kind = str_at(r, "/kind").unwrap_or("");
    let name = str_at(r, "/name")
        .filter(|n| !n.is_empty())
        .ok_or_else(|| c.err(format!("{field}.name"), "missing"))?;
    let optional = r.get("optional").and_then(Value::as_bool).unwrap_or(false);
    let (res, secret) = match kind {
        "ConfigMap" => (CONFIGMAP, false),
        "Secret" => (SECRET, true),
        other => {
            return Err(c.err(
                format!("{field}.kind"),
                format!("`{other}`: ConfigMap or Secret"),
            ));
        }
    };
    match c.get(&res, &c.namespace, name, field)? {
        Some(obj) => Ok(Some(data_of(&obj, secret))),
        None if optional => Ok(None),
        None => Err(c.err(
            field,
            format!("{kind} {}/{name} not found (and not optional)", c.namespace),
        )),
    }
}

/// Maps a Flux Kustomization to its Git source.
///
/// # Errors
/// A missing `spec` or `sourceRef`, a source that is not a GitRepository, a GitRepository
/// or a non-optional `substituteFrom` object that does not exist.
pub fn map_kustomization(obj: &Value, lookup: &dyn Lookup) -> Result<Mapped, GitOpsError> {
    let mut c = new_ctx("Kustomization", obj, lookup);
    let spec = obj
        .get("spec")
        .filter(|s| s.is_object())
        .ok_or_else(|| c.err("spec", "missing"))?
        .clone();
    c.unknown(
        &spec,
        "spec",
        &[
            "interval",
            "retryInterval",
            "timeout",
            "prune",
            "wait",
            "force",
            "suspend",
            "dependsOn",
            "healthChecks",
            "healthCheckExprs",
            "serviceAccountName",
            "deletionPolicy",
            "sourceRef",
            "path",
            "targetNamespace",
            "namePrefix",
            "nameSuffix",
            "commonMetadata",
            "images",
            "patches",
            "components",
            "ignoreMissingComponents",
            "postBuild",
            "decryption",
            "kubeConfig",
        ],
    );
    if spec.get("decryption").is_some_and(|d| !d.is_null()) {
        c.note("spec.decryption", "SOPS decryption is not done by envdrift: encrypted values are compared as Git holds them");
    }
    if spec.get("kubeConfig").is_some_and(|d| !d.is_null()) {
        c.note("spec.kubeConfig", "the Kustomization applies to another cluster; envdrift compares with this environment's live side");
    }
    let sref = spec
        .get("sourceRef")
        .filter(|s| s.is_object())
        .ok_or_else(|| c.err("spec.sourceRef", "missing"))?;
    let mut ms = git_source(&mut c, sref, "spec.sourceRef", "Kustomizations")?;
    let path = clean_path(str_at(&spec, "/path").unwrap_or(""));
    ms.spec.path = path.clone();
    ms.renderer = Some(Renderer::Kustomize);
    let text = |f: &str| {
        str_at(&spec, &format!("/{f}"))
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let mut edits = Edits {
        namespace: text("targetNamespace"),
        name_prefix: text("namePrefix"),
        name_suffix: text("nameSuffix"),
        ..Edits::default()
    };
    for img in spec
        .get("images")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(m) = img.as_object() {
            edits.images.push(
                m.iter()
                    .filter(|(k, _)| ["name", "newName", "newTag", "digest"].contains(&k.as_str()))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            );
        }
    }
    for p in spec
        .get("patches")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        edits.patches.push(p.clone());
    }
    for comp in spec
        .get("components")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(s) = comp.as_str() {
            edits.components.push(s.to_string());
        }
    }
    ms.common_labels = string_map(spec.pointer("/commonMetadata/labels"));
    ms.common_annotations = string_map(spec.pointer("/commonMetadata/annotations"));
    ms.hooks.tree = Some(Arc::new(move |p: &str, files: &mut Vec<TreeFile>| {
        kedit::edit_tree(files, p, &edits, true)
    }));
    if let Some(pb) = spec.get("postBuild").filter(|p| p.is_object()) {
        c.unknown(pb, "spec.postBuild", &["substitute", "substituteFrom"]);
        let mut vars = BTreeMap::new();
        for (i, r) in pb
            .get("substituteFrom")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            if let Some(data) =
                referenced_data(&c, r, &format!("spec.postBuild.substituteFrom[{i}]"))?
            {
                vars.extend(data);
            }
        }
        for (k, v) in string_map(pb.get("substitute")) {
            if let Value::String(s) = v {
                vars.insert(k, s);
            }
        }
        ms.hooks.output = Some(Arc::new(move |text: &str| {
            subst::substitute_documents(text, &vars)
        }));
    }
    Ok(Mapped {
        sources: vec![ms],
        unmapped: c.notes,
    })
}

/// Maps a Flux HelmRelease to the Git source of its chart.
///
/// # Errors
/// A missing `spec.chart`, a chart that does not come from a GitRepository (the
/// message names the HelmRepository or OCIRepository and its URL), a GitRepository or a
/// non-optional `valuesFrom` object that does not exist.
pub fn map_helmrelease(obj: &Value, lookup: &dyn Lookup) -> Result<Mapped, GitOpsError> {
    let mut c = new_ctx("HelmRelease", obj, lookup);
    let name = str_at(obj, "/metadata/name").unwrap_or("").to_string();
    let spec = obj
        .get("spec")
        .filter(|s| s.is_object())
        .ok_or_else(|| c.err("spec", "missing"))?
        .clone();
    c.unknown(
        &spec,
        "spec",
        &[
            "chart",
            "chartRef",
            "releaseName",
            "targetNamespace",
            "storageNamespace",
            "values",
            "valuesFrom",
            "interval",
            "kubeConfig",
            "suspend",
            "serviceAccountName",
            "persistentClient",
            "maxHistory",
            "install",
            "upgrade",
            "test",
            "rollback",
            "uninstall",
            "driftDetection",
            "dependsOn",
            "timeout",
            "postRenderers",
        ],
    );
    let chart_ref = spec.get("chartRef").filter(|v| v.is_object()).cloned();
    if non_empty_array(&spec, "postRenderers") {
        c.note(
            "spec.postRenderers",
            "Kustomize post-renderers are not applied by envdrift",
        );
    }
    if spec.get("kubeConfig").is_some_and(|d| !d.is_null()) {
        c.note("spec.kubeConfig", "the HelmRelease installs into another cluster; envdrift compares with this environment's live side");
    }
    let cs = match &chart_ref {
        Some(_) => Value::Object(serde_json::Map::new()),
        None => spec
            .pointer("/chart/spec")
            .filter(|s| s.is_object())
            .ok_or_else(|| c.err("spec.chart.spec", "missing (and no spec.chartRef)"))?
            .clone(),
    };
    c.unknown(
        &cs,
        "spec.chart.spec",
        &[
            "chart",
            "version",
            "sourceRef",
            "interval",
            "reconcileStrategy",
            "valuesFiles",
            "ignoreMissingValuesFiles",
            "verify",
        ],
    );
    // The chart directory inside the source's files: a path of a GitRepository, the
    // root of a chart pulled from a Helm repository or OCI registry.
    let (mut ms, chart) = match &chart_ref {
        Some(cr) => (oci_repository_chart(&mut c, cr)?, String::new()),
        None => {
            let chart_name = str_at(&cs, "/chart")
                .filter(|s| !s.is_empty())
                .ok_or_else(|| c.err("spec.chart.spec.chart", "missing"))?;
            let sref = cs
                .get("sourceRef")
                .filter(|s| s.is_object())
                .ok_or_else(|| c.err("spec.chart.spec.sourceRef", "missing"))?
                .clone();
            if str_at(&sref, "/kind") == Some("HelmRepository") {
                let version = str_at(&cs, "/version").unwrap_or("*");
                (
                    helm_repository_chart(&mut c, &sref, chart_name, version)?,
                    String::new(),
                )
            } else {
                let chart = clean_path(chart_name);
                let mut ms = git_source(&mut c, &sref, "spec.chart.spec.sourceRef", "charts")?;
                ms.spec.path = chart.clone();
                (ms, chart)
            }
        }
    };
    ms.renderer = Some(Renderer::Helm);
    let target_ns = str_at(&spec, "/targetNamespace").filter(|s| !s.is_empty());
    let release = match str_at(&spec, "/releaseName").filter(|s| !s.is_empty()) {
        Some(r) => r.to_string(),
        None => match target_ns {
            Some(t) => format!("{t}-{name}"),
            None => name.clone(),
        },
    };
    if release.len() > 53 {
        c.note(
            "spec.releaseName",
            format!("`{release}` is longer than 53 characters; Flux shortens it with a hash, envdrift does not"),
        );
    }
    ms.helm.release = Some(release);
    let ns = target_ns.unwrap_or(&c.namespace).to_string();
    ms.helm.namespace = Some(ns.clone());
    ms.default_namespace = Some(ns);
    let ignore_missing = cs.get("ignoreMissingValuesFiles").and_then(Value::as_bool) == Some(true);
    let mut ensure = Vec::new();
    let values_files: Vec<String> = cs
        .get("valuesFiles")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect();
    // Flux uses the listed files as the chart's values (its values.yaml only when listed).
    let blank_defaults = !values_files.is_empty()
        && !values_files.iter().any(|f| {
            clean_path(f)
                == format!(
                    "{}values.yaml",
                    if chart.is_empty() {
                        String::new()
                    } else {
                        format!("{chart}/")
                    }
                )
        });
    for f in &values_files {
        let rel = relative_to(&chart, f);
        if ignore_missing {
            ensure.push(clean_path(f));
        }
        ms.helm.values.push(rel);
    }
    let mut extra: Vec<(String, String)> = Vec::new();
    for (i, r) in spec
        .get("valuesFrom")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let field = format!("spec.valuesFrom[{i}]");
        let Some(data) = referenced_data(&c, r, &field)? else {
            continue;
        };
        let key = str_at(r, "/valuesKey")
            .filter(|k| !k.is_empty())
            .unwrap_or("values.yaml");
        let Some(text) = data.get(key) else {
            if r.get("optional").and_then(Value::as_bool) == Some(true) {
                continue;
            }
            return Err(c.err(
                format!("{field}.valuesKey"),
                format!(
                    "no key `{key}` in {} {}",
                    str_at(r, "/kind").unwrap_or(""),
                    str_at(r, "/name").unwrap_or("")
                ),
            ));
        };
        match str_at(r, "/targetPath").filter(|t| !t.is_empty()) {
            Some(tp) => ms.helm.set.push(format!("{tp}={text}")),
            None => {
                // Secret-derived values get a name that is not YAML, so they never reach
                // the adopt-into-Git file set.
                let secret = str_at(r, "/kind") == Some("Secret");
                let file = format!(
                    ".envdrift-values-from-{i}.{}",
                    if secret { "envdrift-secret" } else { "yaml" }
                );
                extra.push((file.clone(), text.clone()));
                ms.helm.values.push(file);
            }
        }
    }
    if let Some(v) = spec.get("values").filter(|v| v.is_object()) {
        extra.push((
            INLINE_VALUES.to_string(),
            serde_json::to_string_pretty(v).unwrap_or_default(),
        ));
        ms.helm.values.push(INLINE_VALUES.to_string());
    }
    if blank_defaults || !extra.is_empty() || !ensure.is_empty() {
        let chart_dir = chart.clone();
        ms.hooks.tree = Some(Arc::new(move |_p: &str, files: &mut Vec<TreeFile>| {
            let prefix = if chart_dir.is_empty() {
                String::new()
            } else {
                format!("{chart_dir}/")
            };
            let mut put = |path: String, data: Vec<u8>| {
                files.retain(|f| f.path != path);
                files.push(TreeFile {
                    path,
                    data,
                    executable: false,
                });
            };
            if blank_defaults {
                put(format!("{prefix}values.yaml"), Vec::new());
            }
            for (name, text) in &extra {
                put(format!("{prefix}{name}"), text.clone().into_bytes());
            }
            for e in &ensure {
                if !files.iter().any(|f| &f.path == e) {
                    files.push(TreeFile {
                        path: e.clone(),
                        data: Vec::new(),
                        executable: false,
                    });
                }
            }
            Ok(())
        }));
    }
    Ok(Mapped {
        sources: vec![ms],
        unmapped: c.notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Default)]
    struct Objects(BTreeMap<(String, String, String), Value>);

    impl Objects {
        fn with(mut self, v: Value) -> Self {
            let kind = v["kind"].as_str().unwrap().to_string();
            let ns = v["metadata"]["namespace"].as_str().unwrap().to_string();
            let name = v["metadata"]["name"].as_str().unwrap().to_string();
            self.0.insert((kind, ns, name), v);
            self
        }
    }

    impl Lookup for Objects {
        fn get(&self, res: &Res, ns: &str, name: &str) -> Result<Option<Value>, String> {
            Ok(self
                .0
                .get(&(res.kind.to_string(), ns.into(), name.into()))
                .cloned())
        }
    }

    fn gitrepo(r: Value) -> Value {
        json!({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
               "metadata": {"name": "repo", "namespace": "flux-system"},
               "spec": {"url": "https://git.example/fleet.git", "interval": "1m", "ref": r}})
    }

    #[test]
    fn kustomization_maps_source_ref_and_substitutions() {
        let objects = Objects::default()
            .with(gitrepo(json!({"branch": "main", "tag": "v1"})))
            .with(json!({"apiVersion": "v1", "kind": "ConfigMap",
                         "metadata": {"name": "vars", "namespace": "flux-system"},
                         "data": {"region": "eu", "env": "from-cm"}}))
            .with(json!({"apiVersion": "v1", "kind": "Secret",
                         "metadata": {"name": "sec", "namespace": "flux-system"},
                         "data": {"token": "czNjcjN0"}}));
        let k = json!({"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
            "metadata": {"name": "apps", "namespace": "flux-system"},
            "spec": {"interval": "10m", "prune": true, "path": "./apps/prod",
                     "sourceRef": {"kind": "GitRepository", "name": "repo"},
                     "targetNamespace": "shop", "decryption": {"provider": "sops"},
                     "postBuild": {"substitute": {"env": "prod"},
                                   "substituteFrom": [{"kind": "ConfigMap", "name": "vars"},
                                                      {"kind": "Secret", "name": "sec"},
                                                      {"kind": "ConfigMap", "name": "gone", "optional": true}]}}});
        let m = map_kustomization(&k, &objects).unwrap();
        let s = &m.sources[0];
        assert_eq!(s.spec.repo, "https://git.example/fleet.git");
        assert_eq!(s.spec.reference, "v1", "a tag wins over a branch");
        assert_eq!(s.spec.path, "apps/prod");
        assert_eq!(s.renderer, Some(Renderer::Kustomize));
        let out = (s.hooks.output.as_ref().unwrap())(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  e: ${env}\n  r: ${region}\n  t: ${token}\n",
        )
        .unwrap();
        assert!(
            out.contains("e: prod") && out.contains("r: eu") && out.contains("t: s3cr3t"),
            "{out}"
        );
        assert_eq!(m.unmapped.len(), 1);
        assert_eq!(m.unmapped[0].field, "spec.decryption");
        assert_eq!(m.unmapped[0].object, "Kustomization flux-system/apps");
        // A missing, non-optional substituteFrom is an error naming the field.
        let mut k2 = k.clone();
        k2["spec"]["postBuild"]["substituteFrom"] = json!([{"kind": "ConfigMap", "name": "nope"}]);
        let e = map_kustomization(&k2, &objects).unwrap_err().to_string();
        assert_eq!(
            e,
            "Kustomization flux-system/apps: spec.postBuild.substituteFrom[0]: ConfigMap flux-system/nope not found (and not optional)"
        );
        // A missing GitRepository is named.
        let e = map_kustomization(&k, &Objects::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("GitRepository flux-system/repo not found"),
            "{e}"
        );
    }

    #[test]
    fn helmrelease_maps_chart_values_and_release_name() {
        let objects = Objects::default()
            .with(gitrepo(json!({"commit": "abc1234", "branch": "main"})))
            .with(json!({"apiVersion": "v1", "kind": "ConfigMap",
                         "metadata": {"name": "web-values", "namespace": "apps"},
                         "data": {"values.yaml": "replicas: 2\n", "tag": "1.4"}}));
        let hr = json!({"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
            "metadata": {"name": "web", "namespace": "apps"},
            "spec": {"interval": "5m", "targetNamespace": "shop",
                     "chart": {"spec": {"chart": "./charts/web", "valuesFiles": ["envs/prod.yaml"],
                                        "sourceRef": {"kind": "GitRepository", "name": "repo", "namespace": "flux-system"}}},
                     "valuesFrom": [{"kind": "ConfigMap", "name": "web-values"},
                                    {"kind": "ConfigMap", "name": "web-values", "valuesKey": "tag", "targetPath": "image.tag"}],
                     "values": {"service": {"port": 8080}}}});
        let m = map_helmrelease(&hr, &objects).unwrap();
        let s = &m.sources[0];
        assert_eq!(s.spec.reference, "abc1234");
        assert_eq!(s.spec.path, "charts/web");
        assert_eq!(s.helm.release.as_deref(), Some("shop-web"));
        assert_eq!(s.helm.namespace.as_deref(), Some("shop"));
        assert_eq!(
            s.helm.values,
            [
                "../../envs/prod.yaml",
                ".envdrift-values-from-0.yaml",
                INLINE_VALUES
            ]
        );
        assert_eq!(s.helm.set, ["image.tag=1.4"]);
        assert!(m.unmapped.is_empty(), "{:?}", m.unmapped);
        // A chart from a HelmRepository, with the repository's credentials Secret.
        let objects = objects
            .with(json!({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "HelmRepository",
                "metadata": {"name": "bitnami", "namespace": "apps"},
                "spec": {"url": "oci://registry.example/charts", "type": "oci", "secretRef": {"name": "reg"},
                         "certSecretRef": {"name": "ca"}}}))
            .with(json!({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "OCIRepository",
                "metadata": {"name": "web", "namespace": "apps"},
                "spec": {"url": "oci://registry.example/charts/web", "ref": {"tag": "1.2.3"}}}))
            .with(json!({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "OCIRepository",
                "metadata": {"name": "pinned", "namespace": "apps"},
                "spec": {"url": "oci://registry.example/charts/web", "ref": {"digest": "sha256:00"}}}));
        let mut hr2 = hr.clone();
        hr2["spec"]["chart"]["spec"]["chart"] = json!("web");
        hr2["spec"]["chart"]["spec"]["version"] = json!("1.x");
        hr2["spec"]["chart"]["spec"]["sourceRef"] =
            json!({"kind": "HelmRepository", "name": "bitnami"});
        let m = map_helmrelease(&hr2, &objects).unwrap();
        let s = &m.sources[0];
        let c = s.chart.as_ref().unwrap();
        assert_eq!(
            (c.repo.as_str(), c.chart.as_str(), c.version.as_str(), c.oci),
            ("oci://registry.example/charts", "web", "1.x", true)
        );
        assert_eq!(s.helm.values[0], "envs/prod.yaml");
        assert!(
            m.unmapped
                .iter()
                .any(|u| u.object == "HelmRepository apps/bitnami"
                    && u.field == "spec.certSecretRef"),
            "{:?}",
            m.unmapped
        );
        assert_eq!(
            s.creds_from,
            CredsFrom::Flux {
                namespace: "apps".into(),
                secret: "reg".into(),
                source: "HelmRepository apps/bitnami".into()
            }
        );
        let mut hr3 = hr.clone();
        hr3["spec"].as_object_mut().unwrap().remove("chart");
        hr3["spec"]["chartRef"] = json!({"kind": "OCIRepository", "name": "web"});
        let m = map_helmrelease(&hr3, &objects).unwrap();
        let c = m.sources[0].chart.as_ref().unwrap();
        assert_eq!(
            (c.repo.as_str(), c.chart.as_str(), c.version.as_str()),
            ("oci://registry.example/charts", "web", "1.2.3")
        );
        hr3["spec"]["chartRef"] = json!({"kind": "OCIRepository", "name": "pinned"});
        let m = map_helmrelease(&hr3, &objects).unwrap();
        let c = m.sources[0].chart.as_ref().unwrap();
        assert_eq!(c.digest.as_deref(), Some("sha256:00"));
        hr3["spec"]["chartRef"] = json!({"kind": "OCIRepository", "name": "gone"});
        let e = map_helmrelease(&hr3, &objects).unwrap_err().to_string();
        assert!(
            e.starts_with(
                "OCIRepository apps/gone not found (named by HelmRelease apps/web spec.chartRef)"
            ),
            "{e}"
        );
    }
}
