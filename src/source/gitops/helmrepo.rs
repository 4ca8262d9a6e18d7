//! Charts from Helm repositories and OCI registries: pulled with the real `helm` into a
//! cache keyed by (repository, chart, version), then rendered like a chart directory.
//!
//! Entry point: [`pull`].
//!
//! Credentials never reach a command line: for an HTTP repository envdrift runs `helm
//! repo add --username U --password-stdin` into a private `HELM_REPOSITORY_CONFIG`, for an
//! OCI registry `helm registry login --username U --password-stdin` into a private
//! `HELM_REGISTRY_CONFIG`, both in a temporary directory removed afterwards, and then
//! `helm pull`; the password is written to helm's standard input only.
//!
//! # Caveats
//! - A version range (`^1.2`, `1.*`, or none: the latest) is resolved by `helm pull` at
//!   every scan; an exact version is pulled once and then read from the cache (shared by
//!   the environments naming the same repository, chart, version and credentials Secret;
//!   a password changed in that Secret is checked at the next pull only).
//! - `--plain-http` is used for OCI registries on loopback only (tests); others must
//!   speak HTTPS.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::creds::RepoCreds;

/// A chart in a Helm repository or an OCI registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChartSource {
    /// `https://charts.example` (an HTTP repository) or `oci://registry.example/charts`
    /// (the registry path holding the chart).
    pub repo: String,
    /// The chart's name (for OCI: the last path segment of the reference).
    pub chart: String,
    /// An exact version, a semver range, or empty (the latest).
    pub version: String,
    /// Whether `repo` is an OCI registry.
    pub oci: bool,
    /// An OCI manifest digest (`sha256:…`) the chart is pinned to (Flux `ref.digest`);
    /// `version` is then ignored.
    pub digest: Option<String>,
}

impl ChartSource {
    /// `chart web 1.2.3 from https://charts.example` (no credentials).
    pub fn describe(&self) -> String {
        let v = match &self.digest {
            Some(d) => d.as_str(),
            None if self.version.is_empty() => "(latest)",
            None => self.version.as_str(),
        };
        format!(
            "chart `{}` {v} from {}",
            self.chart,
            crate::redact::redact_url(&self.repo)
        )
    }

    /// `oci://registry.example/charts/web`.
    fn oci_ref(&self) -> String {
        format!("{}/{}", self.repo.trim_end_matches('/'), self.chart)
    }

    /// The registry host of an OCI repository (`registry.example:5000`).
    fn oci_host(&self) -> &str {
        let rest = self.repo.strip_prefix("oci://").unwrap_or(&self.repo);
        rest.split('/').next().unwrap_or(rest)
    }
}

/// Whether a registry host is on loopback (plain HTTP is allowed there only).
fn loopback(host: &str) -> bool {
    let h = host.rsplit_once(':').map_or(host, |(h, p)| {
        if p.bytes().all(|b| b.is_ascii_digit()) {
            h
        } else {
            host
        }
    });
    matches!(h, "localhost" | "127.0.0.1" | "[::1]") || h.starts_with("127.")
}

/// An exact version (a cache key), not a range.
fn exact(version: &str) -> bool {
    !version.is_empty() && semver::Version::parse(version.trim_start_matches('v')).is_ok()
}

/// The cache entry of a chart version: by repository, chart and version, and by where its
/// credentials came from (the Secret's name and the user name, never the password), so
/// an environment with other credentials pulls (and so checks them) once itself.
fn cache_key(c: &ChartSource, version: &str, creds: Option<&RepoCreds>) -> String {
    let mut h = Sha256::new();
    h.update(crate::redact::redact_url(&c.repo).as_bytes());
    h.update([0]);
    h.update(c.chart.as_bytes());
    h.update([0]);
    h.update(version.as_bytes());
    if let Some(cr) = creds {
        h.update([0]);
        h.update(cr.from.as_bytes());
        h.update([0]);
        h.update(cr.username.as_deref().unwrap_or("").as_bytes());
    }
    let hex: String = h
        .finalize()
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect();
    let slug: String = c
        .chart
        .chars()
        .map(|ch| {
            if ch.is_ascii_alphanumeric() || ch == '-' {
                ch
            } else {
                '_'
            }
        })
        .take(40)
        .collect();
    format!("{slug}-{version}-{hex}")
}

/// What [`pull`] gives: the chart directory and its version.
#[derive(Debug, Clone)]
pub struct Pulled {
    pub dir: PathBuf,
    pub version: String,
    /// Read from the cache, no network.
    pub cached: bool,
}

/// Pulls the chart (or finds it in `cache_dir`) and returns its directory.
///
/// # Errors
/// helm is missing, the login or pull failed (helm's message, credentials removed), the
/// pulled archive holds no chart; the text names the chart and repository.
pub fn pull(
    c: &ChartSource,
    creds: Option<&RepoCreds>,
    cache_dir: &Path,
    extra_path: &[PathBuf],
    timeout: Duration,
) -> Result<Pulled, String> {
    let what = c.describe();
    if let Some(d) = &c.digest
        && !(d.len() == 71
            && d.starts_with("sha256:")
            && d[7..].bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return Err(format!("{what}: `{d}` is not a sha256 digest"));
    }
    let pin = c.digest.as_deref().unwrap_or(&c.version);
    if c.digest.is_some() || exact(&c.version) {
        let dir = cache_dir.join(cache_key(c, pin, creds)).join(&c.chart);
        if dir.join("Chart.yaml").is_file() {
            return Ok(Pulled {
                dir,
                version: pin.to_string(),
                cached: true,
            });
        }
    }
    let helm = crate::source::render::find_binary("helm", extra_path)
        .ok_or_else(|| format!("{what}: helm not found on PATH (needed to pull charts)"))?;
    std::fs::create_dir_all(cache_dir)
        .map_err(|e| format!("{what}: chart cache {}: {e}", cache_dir.display()))?;
    let tmp = tempfile::Builder::new()
        .prefix(".pull-")
        .tempdir_in(cache_dir)
        .map_err(|e| format!("{what}: chart cache {}: {e}", cache_dir.display()))?;
    let home = tmp.path().join("home");
    let out = tmp.path().join("out");
    std::fs::create_dir_all(&home).map_err(|e| format!("{what}: {e}"))?;
    let secret = creds.and_then(|c| c.password.as_ref()).map(|p| p.0.clone());
    let helm_run = |args: &[&str], stdin: Option<&str>| -> Result<String, String> {
        run_helm(&helm, args, &home, stdin, timeout).map_err(|e| {
            let e = match &secret {
                Some(s) if !s.is_empty() => e.replace(s.as_str(), "***"),
                _ => e,
            };
            crate::redact::scrub_url_secrets(&e, &c.repo)
        })
    };
    let out_s = out.display().to_string();
    let mut pull: Vec<String> = vec!["pull".into()];
    let plain = c.oci && loopback(c.oci_host());
    if c.oci {
        if let Some(cr) = creds.filter(|cr| cr.password.is_some()) {
            let user = cr.username.clone().unwrap_or_default();
            let mut login = vec![
                "registry",
                "login",
                c.oci_host(),
                "--username",
                user.as_str(),
                "--password-stdin",
            ];
            if plain {
                login.push("--plain-http");
            }
            helm_run(&login, secret.as_deref()).map_err(|e| {
                format!("{what}: logging in to {} ({}): {e}", c.oci_host(), cr.from)
            })?;
        }
        match &c.digest {
            Some(d) => pull.push(format!("{}@{d}", c.oci_ref())),
            None => pull.push(c.oci_ref()),
        }
        if plain {
            pull.push("--plain-http".into());
        }
    } else {
        let mut add = vec!["repo", "add", "envdrift", c.repo.as_str()];
        let user;
        if let Some(cr) = creds.filter(|cr| cr.password.is_some()) {
            user = cr.username.clone().unwrap_or_default();
            add.extend(["--username", user.as_str(), "--password-stdin"]);
        }
        helm_run(&add, secret.as_deref()).map_err(|e| {
            let from =
                creds.map_or_else(String::new, |cr| format!(" (credentials from {})", cr.from));
            format!("{what}: reading the repository index{from}: {e}")
        })?;
        pull.push(format!("envdrift/{}", c.chart));
    }
    if !c.version.is_empty() && c.digest.is_none() {
        pull.push("--version".into());
        pull.push(c.version.clone());
    }
    pull.extend(["--untar".into(), "--untardir".into(), out_s]);
    let args: Vec<&str> = pull.iter().map(String::as_str).collect();
    helm_run(&args, None).map_err(|e| format!("{what}: {e}"))?;
    let pulled = out.join(&c.chart);
    let chart_yaml = std::fs::read_to_string(pulled.join("Chart.yaml")).map_err(|e| {
        format!(
            "{what}: the pulled archive has no {}/Chart.yaml: {e}",
            c.chart
        )
    })?;
    let version = chart_version(&chart_yaml)
        .ok_or_else(|| format!("{what}: the pulled Chart.yaml has no version"))?;
    let dest_parent = cache_dir.join(cache_key(c, c.digest.as_deref().unwrap_or(&version), creds));
    let dest = dest_parent.join(&c.chart);
    if !dest.join("Chart.yaml").is_file() {
        let _ = std::fs::remove_dir_all(&dest_parent);
        std::fs::rename(&out, &dest_parent).map_err(|e| {
            format!(
                "{what}: storing the chart in {}: {e}",
                dest_parent.display()
            )
        })?;
    }
    tracing::info!(chart = %c.chart, repo = %crate::redact::redact_url(&c.repo), %version, "pulled chart");
    Ok(Pulled {
        dir: dest,
        version,
        cached: false,
    })
}

/// `version:` of a Chart.yaml.
fn chart_version(text: &str) -> Option<String> {
    let v: serde_json::Value = serde_saphyr::from_str(text).ok()?;
    match v.get("version")? {
        serde_json::Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// Runs helm with a private home (its config, cache, repositories and registry logins all
/// under `home`), the password (if any) on standard input, and a timeout.
fn run_helm(
    exe: &Path,
    args: &[&str],
    home: &Path,
    stdin: Option<&str>,
    timeout: Duration,
) -> Result<String, String> {
    use wait_timeout::ChildExt;
    let mut path = std::ffi::OsString::new();
    if let Some(d) = exe.parent() {
        path.push(d.as_os_str());
        path.push(":");
    }
    path.push("/usr/local/bin:/usr/bin:/bin");
    let mut child = Command::new(exe)
        .args(args)
        .current_dir(home)
        .env_clear()
        .env("PATH", path)
        .env("HOME", home)
        .env("LANG", "C.UTF-8")
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_DATA_HOME", home.join("data"))
        .env("HELM_REPOSITORY_CONFIG", home.join("repositories.yaml"))
        .env("HELM_REPOSITORY_CACHE", home.join("repository-cache"))
        .env("HELM_REGISTRY_CONFIG", home.join("registry.json"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", exe.display()))?;
    if let Some(mut si) = child.stdin.take()
        && let Some(text) = stdin
    {
        // A helm that does not read its input fails on its own; the error is its message.
        let _ = si.write_all(text.as_bytes());
    }
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
            return Err(format!(
                "helm {} timed out after {timeout:?}",
                args.first().unwrap_or(&"")
            ));
        }
        Err(e) => return Err(e.to_string()),
    };
    let stdout = out_t.join().unwrap_or_default();
    let stderr = err_t.join().unwrap_or_default();
    if !status.success() {
        let text = String::from_utf8_lossy(&stderr);
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        let text = text.replace(&home.display().to_string(), "…");
        return Err(format!(
            "helm {} failed ({status}): {text}",
            args.first().unwrap_or(&"")
        ));
    }
    Ok(String::from_utf8_lossy(&stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_and_versions() {
        assert!(loopback("127.0.0.1:5000"));
        assert!(loopback("localhost"));
        assert!(!loopback("registry.example:5000"));
        assert!(!loopback("127example.com"));
        assert!(exact("1.2.3") && exact("v1.2.3"));
        assert!(!exact("^1.2") && !exact("") && !exact("1.*"));
        let c = ChartSource {
            repo: "oci://127.0.0.1:5000/charts".into(),
            chart: "web".into(),
            version: "1.0.0".into(),
            oci: true,
            digest: None,
        };
        assert_eq!(c.oci_host(), "127.0.0.1:5000");
        assert_eq!(c.oci_ref(), "oci://127.0.0.1:5000/charts/web");
        assert_ne!(cache_key(&c, "1.0.0", None), cache_key(&c, "1.0.1", None));
        let cr = RepoCreds {
            from: "Secret a/b".into(),
            ..RepoCreds::default()
        };
        assert_ne!(
            cache_key(&c, "1.0.0", None),
            cache_key(&c, "1.0.0", Some(&cr))
        );
        assert_eq!(
            chart_version("apiVersion: v2\nname: web\nversion: 1.2.3\n").as_deref(),
            Some("1.2.3")
        );
    }
}
