//! `envdrift discover`: the Argo CD Applications and Flux Kustomizations / HelmReleases of
//! a cluster, and a ready config with one environment per object ([`Discovered::config`]).

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use super::{APPLICATION, ClusterLookup, GitOpsError, HELMRELEASE, KUSTOMIZATION, Res, str_at};
use crate::source::kube::ClusterTarget;

/// One GitOps object found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// `Application`, `Kustomization`, `HelmRelease`.
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
    /// Where it deploys to: the destination namespace / targetNamespace, when set.
    pub target_namespace: Option<String>,
    /// Its source, for the listing (`https://git.example/shop.git@main:apps`).
    pub source: String,
    /// Why envdrift cannot render it, or what it would not apply (from mapping it).
    pub problems: Vec<String>,
}

/// What [`discover`] found.
#[derive(Debug, Clone, Default)]
pub struct Discovered {
    /// The cluster, as the kubeconfig names it (`context prod (https://…)`).
    pub cluster: String,
    pub objects: Vec<Found>,
    /// Types the cluster does not serve (`applications.argoproj.io`): their tool is not
    /// installed there.
    pub not_served: Vec<String>,
}

fn found(res: &Res, v: &Value) -> Option<Found> {
    let namespace = str_at(v, "/metadata/namespace")?.to_string();
    let name = str_at(v, "/metadata/name")?.to_string();
    let spec = v.get("spec").cloned().unwrap_or_default();
    let (target_namespace, source) = match res.kind {
        "Application" => {
            let src = spec
                .get("source")
                .or_else(|| spec.pointer("/sources/0"))
                .cloned()
                .unwrap_or_default();
            let repo = str_at(&src, "/repoURL").unwrap_or("?");
            let text = match str_at(&src, "/chart") {
                Some(c) => format!("{} chart {c}", crate::redact::redact_url(repo)),
                None => format!(
                    "{}@{}:{}",
                    crate::redact::redact_url(repo),
                    str_at(&src, "/targetRevision").unwrap_or("HEAD"),
                    str_at(&src, "/path").unwrap_or(".")
                ),
            };
            let more = spec
                .get("sources")
                .and_then(Value::as_array)
                .map_or(0, |a| a.len().saturating_sub(1));
            let text = if more > 0 {
                format!("{text} (+{more} more sources)")
            } else {
                text
            };
            (str_at(&spec, "/destination/namespace"), text)
        }
        "Kustomization" => (
            str_at(&spec, "/targetNamespace"),
            format!(
                "{} {}:{}",
                str_at(&spec, "/sourceRef/kind").unwrap_or("?"),
                str_at(&spec, "/sourceRef/name").unwrap_or("?"),
                str_at(&spec, "/path").unwrap_or(".")
            ),
        ),
        _ => (
            str_at(&spec, "/targetNamespace").or(Some(namespace.as_str())),
            match spec.pointer("/chart/spec") {
                Some(cs) => format!(
                    "{} {} chart {}",
                    str_at(cs, "/sourceRef/kind").unwrap_or("?"),
                    str_at(cs, "/sourceRef/name").unwrap_or("?"),
                    str_at(cs, "/chart").unwrap_or("?")
                ),
                None => format!(
                    "{} {}",
                    str_at(&spec, "/chartRef/kind").unwrap_or("?"),
                    str_at(&spec, "/chartRef/name").unwrap_or("?")
                ),
            },
        ),
    };
    Some(Found {
        kind: res.kind,
        namespace: namespace.clone(),
        name,
        target_namespace: target_namespace
            .filter(|t| !t.is_empty())
            .map(str::to_string),
        source,
        problems: Vec::new(),
    })
}

/// What mapping the object says: why it cannot be rendered, or what is not applied.
fn problems(res: &Res, v: &Value, lookup: &ClusterLookup) -> Vec<String> {
    let mapped = match res.kind {
        "Application" => super::argocd::map(v),
        "Kustomization" => super::flux::map_kustomization(v, lookup),
        _ => super::flux::map_helmrelease(v, lookup),
    };
    match mapped {
        Ok(m) => m
            .unmapped
            .iter()
            .map(|u| format!("not applied: {}: {}", u.field, u.message))
            .collect(),
        Err(e) => vec![format!("cannot be rendered: {e}")],
    }
}

/// Lists the GitOps objects of a cluster.
///
/// # Errors
/// The cluster cannot be reached, or a list failed (other than the type not being served).
pub fn discover(target: &ClusterTarget, timeout: Duration) -> Result<Discovered, GitOpsError> {
    std::thread::scope(|s| {
        s.spawn(|| {
            let lookup = ClusterLookup::connect(target, timeout)?;
            let mut out = Discovered {
                cluster: lookup.description.clone(),
                ..Discovered::default()
            };
            for res in [APPLICATION, KUSTOMIZATION, HELMRELEASE] {
                match lookup.list(&res) {
                    Ok(Some(items)) => {
                        for v in &items {
                            let Some(mut f) = found(&res, v) else {
                                continue;
                            };
                            f.problems = problems(&res, v, &lookup);
                            out.objects.push(f);
                        }
                    }
                    Ok(None) => out.not_served.push(format!("{}.{}", res.plural, res.group)),
                    Err(reason) => {
                        return Err(GitOpsError::ReadFailed {
                            object: format!("{}.{}", res.plural, res.group),
                            reason,
                        });
                    }
                }
            }
            Ok(out)
        })
        .join()
        .unwrap_or_else(|_| {
            Err(GitOpsError::ReadFailed {
                object: "the cluster".into(),
                reason: "the reader thread panicked".into(),
            })
        })
    })
}

/// An environment name (a DNS label) for an object: its name, else `NAME-KIND`, else
/// `NAME-KIND-NAMESPACE`, made unique with a number.
fn env_name(f: &Found, used: &mut BTreeSet<String>) -> String {
    let clean = |s: &str| {
        let mut out: String = s
            .chars()
            .map(|c| {
                let c = c.to_ascii_lowercase();
                if c.is_ascii_lowercase() || c.is_ascii_digit() {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        out.truncate(60);
        let t = out.trim_matches('-').to_string();
        if t.is_empty() { "env".to_string() } else { t }
    };
    let kind = match f.kind {
        "Application" => "app",
        "Kustomization" => "ks",
        _ => "hr",
    };
    let candidates = [
        clean(&f.name),
        clean(&format!("{}-{kind}", f.name)),
        clean(&format!("{}-{kind}-{}", f.name, f.namespace)),
    ];
    for c in &candidates {
        if used.insert(c.clone()) {
            return c.clone();
        }
    }
    let base = candidates[2].clone();
    let mut n = 2u32;
    loop {
        let c = clean(&format!("{base}-{n}"));
        if used.insert(c.clone()) {
            return c;
        }
        n = n.saturating_add(1);
    }
}

fn yaml_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}

impl Discovered {
    /// A config with one environment per object found: desired from the object, live the
    /// same cluster (scoped to the namespace it deploys to, when it names one). The listing
    /// is in comments at the top; the rest loads as is (`envdrift config check`).
    pub fn config(
        &self,
        context: Option<&str>,
        kubeconfig: Option<&Path>,
        in_cluster: bool,
    ) -> String {
        let mut out = String::new();
        out.push_str(&format!(
            "# envdrift config written by `envdrift discover` for {}\n",
            self.cluster
        ));
        if self.objects.is_empty() {
            out.push_str(
                "# No Argo CD Application, Flux Kustomization or HelmRelease was found.\n",
            );
        } else {
            out.push_str("# Found:\n");
            for f in &self.objects {
                out.push_str(&format!(
                    "#   {} {}/{} -> {}{}\n",
                    f.kind,
                    f.namespace,
                    f.name,
                    f.source,
                    f.target_namespace
                        .as_ref()
                        .map_or_else(String::new, |t| format!(" (namespace {t})"))
                ));
            }
        }
        for t in &self.not_served {
            out.push_str(&format!("# Not served by the cluster: {t}\n"));
        }
        if self.objects.is_empty() {
            out.push_str("environments: {}\n");
            return out;
        }
        out.push_str("environments:\n");
        let mut used = BTreeSet::new();
        let mut cluster_lines = String::new();
        if in_cluster {
            cluster_lines.push_str("      in_cluster: true\n");
        } else {
            if let Some(k) = kubeconfig {
                cluster_lines.push_str(&format!(
                    "      kubeconfig: {}\n",
                    yaml_str(&k.display().to_string())
                ));
            }
            if let Some(c) = context {
                cluster_lines.push_str(&format!("      context: {}\n", yaml_str(c)));
            }
        }
        for f in &self.objects {
            let name = env_name(f, &mut used);
            for p in &f.problems {
                out.push_str(&format!("  # {}\n", p.replace('\n', " ")));
            }
            out.push_str(&format!("  {name}:\n    desired:\n"));
            match f.kind {
                "Application" => {
                    out.push_str("      type: argocd\n");
                    out.push_str(&format!("      application: {}\n", yaml_str(&f.name)));
                    out.push_str(&format!("      namespace: {}\n", yaml_str(&f.namespace)));
                }
                "Kustomization" => {
                    out.push_str("      type: flux\n");
                    out.push_str(&format!(
                        "      kustomization: {}\n",
                        yaml_str(&format!("{}/{}", f.namespace, f.name))
                    ));
                }
                _ => {
                    out.push_str("      type: flux\n");
                    out.push_str(&format!(
                        "      helmrelease: {}\n",
                        yaml_str(&format!("{}/{}", f.namespace, f.name))
                    ));
                }
            }
            out.push_str("    live:\n      type: cluster\n");
            out.push_str(&cluster_lines);
            if let Some(t) = &f.target_namespace {
                out.push_str(&format!("      namespaces: [{}]\n", yaml_str(t)));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_names_are_unique_dns_labels() {
        let f = |kind, ns: &str, name: &str| Found {
            kind,
            namespace: ns.into(),
            name: name.into(),
            target_namespace: None,
            source: String::new(),
            problems: Vec::new(),
        };
        let mut used = BTreeSet::new();
        assert_eq!(
            env_name(&f("Application", "argocd", "Shop_Web"), &mut used),
            "shop-web"
        );
        assert_eq!(
            env_name(&f("Kustomization", "flux", "shop.web"), &mut used),
            "shop-web-ks"
        );
        assert_eq!(
            env_name(&f("Kustomization", "x", "shop-web"), &mut used),
            "shop-web-ks-x"
        );
        assert_eq!(
            env_name(&f("Kustomization", "x", "shop-web"), &mut used),
            "shop-web-ks-x-2"
        );
    }
}
