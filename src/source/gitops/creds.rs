//! Repository credentials the GitOps tools hold in Secrets: Argo CD repository Secrets
//! (`argocd.argoproj.io/secret-type: repository`, matched by URL) and credential templates
//! (`repo-creds`, matched by URL prefix, the longest wins), Flux `spec.secretRef` of a
//! GitRepository, HelmRepository or OCIRepository.
//!
//! Entry points: [`argocd`] and [`flux`] over a [`Secrets`] reader; the result is a
//! [`RepoCreds`] whose secrets never show in `Debug` or messages.
//!
//! # Caveats
//! - Argo CD's GitHub App, Google Cloud and TLS client-certificate fields and Flux's
//!   `certFile`/`keyFile`/`caFile` are not used (reported by [`RepoCreds::unused`]).
//! - Argo CD matches repository URLs after normalizing them (lower case, no `.git`
//!   suffix, no trailing `/`); envdrift does the same.

use serde_json::Value;

use crate::source::git::Hidden;

/// Reads Secrets: the cluster in production, a map in tests.
pub trait Secrets {
    /// The Secrets of `namespace` matching a label selector.
    ///
    /// # Errors
    /// The request failed (403 included); the text says why.
    fn list(&self, namespace: &str, selector: &str) -> Result<Vec<Value>, String>;
    /// One Secret; `Ok(None)` when it does not exist.
    ///
    /// # Errors
    /// The request failed; the text says why.
    fn get(&self, namespace: &str, name: &str) -> Result<Option<Value>, String>;
}

/// Credentials for one repository, from one Secret.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RepoCreds {
    /// `Secret argocd/repo-web`: where they come from (for messages; no values).
    pub from: String,
    pub username: Option<String>,
    pub password: Option<Hidden>,
    /// An SSH private key (PEM text).
    pub ssh_private_key: Option<Hidden>,
    /// `known_hosts` lines (Flux `known_hosts`).
    pub known_hosts: Option<String>,
    /// Keys present that envdrift does not use (`bearerToken`, `tlsClientCertData`, …).
    pub unused: Vec<String>,
}

impl std::fmt::Debug for RepoCreds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RepoCreds")
            .field("from", &self.from)
            .field("username", &self.username.as_ref().map(|_| "***"))
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field(
                "ssh_private_key",
                &self.ssh_private_key.as_ref().map(|_| "***"),
            )
            .field("unused", &self.unused)
            .finish_non_exhaustive()
    }
}

impl RepoCreds {
    /// Whether they hold anything to authenticate with.
    pub fn is_empty(&self) -> bool {
        self.password.is_none() && self.ssh_private_key.is_none()
    }
}

/// A Secret's data, base64-decoded (keys whose value is not UTF-8 are skipped).
pub(crate) fn secret_data(secret: &Value) -> std::collections::BTreeMap<String, String> {
    use base64::Engine;
    let mut out = std::collections::BTreeMap::new();
    if let Some(m) = secret.get("data").and_then(Value::as_object) {
        for (k, v) in m {
            if let Some(s) = v.as_str()
                && let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(s.trim())
                && let Ok(text) = String::from_utf8(bytes)
            {
                out.insert(k.clone(), text);
            }
        }
    }
    if let Some(m) = secret.get("stringData").and_then(Value::as_object) {
        for (k, v) in m {
            if let Some(s) = v.as_str() {
                out.insert(k.clone(), s.to_string());
            }
        }
    }
    out
}

fn secret_name(secret: &Value) -> String {
    format!(
        "Secret {}/{}",
        secret
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or(""),
        secret
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
    )
}

/// Argo CD's URL normalization for matching: lower case, no `.git` suffix, no trailing
/// `/`, no scheme for OCI (`oci://` and scheme-less registry URLs match).
pub(crate) fn normalize_url(url: &str) -> String {
    let mut u = url.trim().to_ascii_lowercase();
    if let Some(rest) = u.strip_prefix("oci://") {
        u = rest.to_string();
    }
    while u.ends_with('/') {
        u.pop();
    }
    if let Some(rest) = u.strip_suffix(".git") {
        u = rest.to_string();
    }
    u
}

const ARGO_KNOWN: &[&str] = &[
    "url",
    "name",
    "type",
    "project",
    "username",
    "password",
    "sshPrivateKey",
    "enableOCI",
    "enableLfs",
    "insecure",
    "forceHttpBasicAuth",
    "proxy",
    "noProxy",
    "depth",
];

fn argo_creds(secret: &Value) -> RepoCreds {
    let d = secret_data(secret);
    let non_empty = |k: &str| d.get(k).filter(|v| !v.is_empty()).cloned();
    RepoCreds {
        from: secret_name(secret),
        username: non_empty("username"),
        password: non_empty("password").map(Hidden),
        ssh_private_key: non_empty("sshPrivateKey").map(Hidden),
        known_hosts: None,
        unused: d
            .keys()
            .filter(|k| !ARGO_KNOWN.contains(&k.as_str()))
            .cloned()
            .collect(),
    }
}

/// What Argo CD's Secrets say about a repository: its credentials (a `repository` Secret
/// of the same URL with credentials, else the `repo-creds` template with the longest
/// matching URL prefix) and whether it is an OCI Helm repository (`enableOCI: "true"` or
/// `type: oci`).
#[derive(Debug, Clone, Default)]
pub struct ArgoRepo {
    pub creds: Option<RepoCreds>,
    pub oci: bool,
}

/// Looks `url` up in the Argo CD Secrets of `namespace`.
///
/// # Errors
/// Listing the Secrets failed (a 403: the service account may not read Secrets there).
pub fn argocd(secrets: &dyn Secrets, namespace: &str, url: &str) -> Result<ArgoRepo, String> {
    let want = normalize_url(url);
    let list = |t: &str| {
        secrets
            .list(namespace, &format!("argocd.argoproj.io/secret-type={t}"))
            .map_err(|e| {
                format!(
                    "reading the Argo CD `{t}` Secrets in namespace `{namespace}` (for the credentials of {}): {e}{}",
                    crate::redact::redact_url(url),
                    forbidden_hint(&e, namespace)
                )
            })
    };
    let mut out = ArgoRepo::default();
    for s in list("repository")? {
        let d = secret_data(&s);
        if d.get("url").is_some_and(|u| normalize_url(u) == want) {
            out.oci = d.get("enableOCI").is_some_and(|v| v == "true")
                || d.get("type").is_some_and(|t| t == "oci");
            let c = argo_creds(&s);
            if !c.is_empty() {
                out.creds = Some(c);
                return Ok(out);
            }
        }
    }
    let mut best: Option<(usize, RepoCreds, bool)> = None;
    for s in list("repo-creds")? {
        let d = secret_data(&s);
        let Some(prefix) = d.get("url").map(|u| normalize_url(u)) else {
            continue;
        };
        if !prefix.is_empty()
            && want.starts_with(&prefix)
            && best.as_ref().is_none_or(|(n, _, _)| prefix.len() > *n)
        {
            let oci = d.get("enableOCI").is_some_and(|v| v == "true")
                || d.get("type").is_some_and(|t| t == "oci");
            best = Some((prefix.len(), argo_creds(&s), oci));
        }
    }
    if let Some((_, c, oci)) = best {
        out.oci |= oci;
        if !c.is_empty() {
            out.creds = Some(c);
        }
    }
    Ok(out)
}

fn forbidden_hint(e: &str, namespace: &str) -> String {
    if e.starts_with("403") {
        format!(
            " (grant the service account `get` and `list` on secrets in namespace `{namespace}`, see docs/gitops.md, or set `repository_secrets: false`)"
        )
    } else {
        String::new()
    }
}

const FLUX_KNOWN: &[&str] = &["username", "password", "identity", "known_hosts"];

/// The Secret a Flux source's `spec.secretRef` names, in the source's namespace.
///
/// # Errors
/// The Secret is missing or cannot be read (a 403: see the message).
pub fn flux(
    secrets: &dyn Secrets,
    namespace: &str,
    name: &str,
    named_by: &str,
) -> Result<RepoCreds, String> {
    let s = secrets
        .get(namespace, name)
        .map_err(|e| {
            format!(
                "reading Secret {namespace}/{name} (named by {named_by} spec.secretRef): {e}{}",
                if e.starts_with("403") {
                    format!(
                        " (grant the service account `get` on secrets in namespace `{namespace}`, see docs/gitops.md)"
                    )
                } else {
                    String::new()
                }
            )
        })?
        .ok_or_else(|| {
            format!("Secret {namespace}/{name} not found (named by {named_by} spec.secretRef)")
        })?;
    let d = secret_data(&s);
    let non_empty = |k: &str| d.get(k).filter(|v| !v.is_empty()).cloned();
    Ok(RepoCreds {
        from: format!("Secret {namespace}/{name}"),
        username: non_empty("username"),
        password: non_empty("password").map(Hidden),
        ssh_private_key: non_empty("identity").map(Hidden),
        known_hosts: non_empty("known_hosts"),
        unused: d
            .keys()
            .filter(|k| !FLUX_KNOWN.contains(&k.as_str()))
            .cloned()
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use serde_json::json;

    struct Map(Vec<Value>);

    impl Secrets for Map {
        fn list(&self, namespace: &str, selector: &str) -> Result<Vec<Value>, String> {
            let (k, v) = selector.split_once('=').unwrap();
            Ok(self
                .0
                .iter()
                .filter(|s| {
                    s["metadata"]["namespace"] == namespace && s["metadata"]["labels"][k] == v
                })
                .cloned()
                .collect())
        }
        fn get(&self, namespace: &str, name: &str) -> Result<Option<Value>, String> {
            Ok(self
                .0
                .iter()
                .find(|s| s["metadata"]["namespace"] == namespace && s["metadata"]["name"] == name)
                .cloned())
        }
    }

    fn secret(name: &str, kind: &str, data: &[(&str, &str)]) -> Value {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let d: serde_json::Map<String, Value> = data
            .iter()
            .map(|(k, v)| ((*k).to_string(), Value::String(b64(v))))
            .collect();
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": name, "namespace": "argocd",
                            "labels": {"argocd.argoproj.io/secret-type": kind}},
               "data": d})
    }

    #[test]
    fn argocd_repository_secret_wins_then_longest_template() {
        let m = Map(vec![
            secret(
                "tpl-org",
                "repo-creds",
                &[("url", "https://git.example/org"), ("password", "org-pw")],
            ),
            secret(
                "tpl-team",
                "repo-creds",
                &[
                    ("url", "https://git.example/org/team"),
                    ("username", "t"),
                    ("password", "team-pw"),
                ],
            ),
            secret(
                "repo-web",
                "repository",
                &[
                    ("url", "https://git.example/org/web.git"),
                    ("username", "w"),
                    ("password", "web-pw"),
                ],
            ),
            secret(
                "repo-public",
                "repository",
                &[("url", "https://git.example/org/team/public")],
            ),
            secret(
                "oci",
                "repository",
                &[
                    ("url", "registry.example/charts"),
                    ("enableOCI", "true"),
                    ("username", "o"),
                    ("password", "oci-pw"),
                ],
            ),
        ]);
        let r = argocd(&m, "argocd", "https://GIT.example/org/web/").unwrap();
        let c = r.creds.unwrap();
        assert_eq!(
            (c.from.as_str(), c.password.unwrap().0.as_str()),
            ("Secret argocd/repo-web", "web-pw")
        );
        // A repository Secret without credentials falls back to the longest template.
        let c = argocd(&m, "argocd", "https://git.example/org/team/public")
            .unwrap()
            .creds
            .unwrap();
        assert_eq!(c.password.unwrap().0, "team-pw");
        let c = argocd(&m, "argocd", "https://git.example/org/other.git")
            .unwrap()
            .creds
            .unwrap();
        assert_eq!(c.from, "Secret argocd/tpl-org");
        assert!(
            argocd(&m, "argocd", "https://elsewhere/x")
                .unwrap()
                .creds
                .is_none()
        );
        let r = argocd(&m, "argocd", "oci://registry.example/charts").unwrap();
        assert!(r.oci);
        assert_eq!(r.creds.unwrap().username.as_deref(), Some("o"));
    }

    #[test]
    fn debug_never_shows_secrets() {
        let m = Map(vec![secret(
            "repo",
            "repository",
            &[
                ("url", "https://g/x"),
                ("username", "u"),
                ("password", "pw-SECRET"),
                ("sshPrivateKey", "KEY-SECRET"),
                ("githubAppPrivateKey", "x"),
            ],
        )]);
        let c = argocd(&m, "argocd", "https://g/x").unwrap().creds.unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("SECRET"), "{shown}");
        assert_eq!(c.unused, vec!["githubAppPrivateKey".to_string()]);
    }

    #[test]
    fn flux_secret_ref() {
        let mut s = secret(
            "auth",
            "x",
            &[("username", "u"), ("password", "p"), ("bearerToken", "t")],
        );
        s["metadata"]["namespace"] = json!("flux-system");
        let m = Map(vec![s]);
        let c = flux(
            &m,
            "flux-system",
            "auth",
            "HelmRepository flux-system/charts",
        )
        .unwrap();
        assert_eq!(c.password.unwrap().0, "p");
        assert_eq!(c.unused, vec!["bearerToken".to_string()]);
        let e = flux(&m, "flux-system", "nope", "GitRepository flux-system/fleet").unwrap_err();
        assert!(e.contains("Secret flux-system/nope not found (named by GitRepository flux-system/fleet spec.secretRef)"), "{e}");
    }
}
