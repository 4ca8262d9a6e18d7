//! The config file: ignore rules, severity overrides, field-manager classes, the
//! unmanaged scope. Strict (`deny_unknown_fields`): a misspelt key is an error naming the
//! file, line and key, never silently ignored; [`Config::load`] reports every problem of a
//! file at once, each at its line and column (`config/yaml.rs`).
//!
//! ```yaml
//! # envdrift.yaml
//! default_namespace: default        # namespace for desired objects that have none
//! three_way: true                    # use last-applied / GitOps managedFields
//! cluster_scoped_kinds: [Tenant.example.com]
//! managers:
//!   gitops: [argocd-controller, kubectl-client-side-apply]
//! ignore:
//!   - kind: Deployment
//!     name: "web-*"
//!     paths: [/spec/replicas]
//!     reason: scaled by KEDA
//! severity_rules:
//!   - kind: ConfigMap
//!     name: feature-flags
//!     path: /data
//!     severity: low
//! unmanaged:
//!   namespaces: ["shop-*"]
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub mod coordination;
pub mod hooks;
mod store_config;
mod yaml;

pub use store_config::{PostgresStoreConfig, StoreConfig};

use crate::classify::{Classifier, ManagerClasses, RuleError, SeverityRule};
use crate::diff::envmap::{Mapping, MappingConfig};
use crate::diff::ignore::{IgnoreRule, IgnoreSet};
use crate::diff::{Options, UnmanagedScope};

/// The config file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Namespace given to namespaced desired objects without one. Default: `default`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_namespace: Option<String>,
    /// Use three-way knowledge (last-applied-configuration, GitOps managers' managedFields).
    /// Default: true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub three_way: Option<bool>,
    /// Extra cluster-scoped kinds (`Kind` or `Kind.group`), for CRDs. Default: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cluster_scoped_kinds: Vec<String>,
    /// Field-manager classes (each list replaces the built-in one when given).
    #[serde(default)]
    pub managers: ManagerClasses,
    /// Differences to ignore (an Argo CD `ignoreDifferences` list can be pasted as is, under
    /// either name).
    #[serde(
        default,
        alias = "ignoreDifferences",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub ignore: Vec<IgnoreRule>,
    /// Time one jq path expression (`jqPathExpressions`) may run on one object, like Argo
    /// CD's `ignore.normalizer.jq.timeout`. Default: `1s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jq_timeout: Option<String>,
    /// Severity/category overrides, checked before the built-in table.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub severity_rules: Vec<SeverityRule>,
    /// Which live objects may be reported as unmanaged.
    #[serde(default)]
    pub unmanaged: UnmanagedScope,
    /// Environment comparisons (`envdrift compare`): mapping and expected divergence.
    #[serde(default)]
    pub compare: CompareConfig,
    /// Daemon: directory of the SQLite store (`envdrift.db`). Default: `.envdrift`, relative
    /// to the config file's directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// Daemon: where the state is kept: `{type: sqlite}` (the default, in `data_dir`) or
    /// `{type: postgres, url_env: …}` (shared by replicas; docs/store.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<StoreConfig>,
    /// Daemon: HTTP listen address. Default: `127.0.0.1:8080`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    /// Daemon: IANA time zone for report schedules (`Europe/Paris`). Default: `UTC`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// Daemon: the environments to scan, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub environments: BTreeMap<String, EnvironmentConfig>,
    /// Daemon: environment comparisons to run on a schedule.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub comparisons: Vec<ComparisonConfig>,
    /// Daemon: alerting.
    #[serde(default)]
    pub alerts: AlertsConfig,
    /// Daemon: scheduled drift reports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reports: Vec<ReportConfig>,
    /// Daemon: how long scans and their snapshot hashes are kept. Default: `30d`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<String>,
    /// Daemon: the HTTP API.
    #[serde(default)]
    pub api: ApiConfig,
    /// Daemon: replicas and how they split the targets (`coordination`).
    #[serde(
        default,
        skip_serializing_if = "crate::config::coordination::DaemonSection::is_default"
    )]
    pub daemon: coordination::DaemonSection,
}

/// The `api` section.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Bearer tokens. Without any, the API only listens on loopback and is open there.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tokens: Vec<TokenConfig>,
    /// Serve `/metrics` without a token. Default: true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_public: Option<bool>,
    /// How old cached snapshots may be for `/api/v1/compare`. Default: `30s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compare_max_age: Option<String>,
    /// Comparisons run at once; more requests wait (up to the timeout). Default: 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compare_concurrency: Option<usize>,
    /// Per-request timeout. Default: `30s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_timeout: Option<String>,
    /// Open connections at most; more wait in the listen backlog. Default: 256.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<usize>,
    /// A client must send each request's headers within this time (also on a kept-alive
    /// connection, so idle and slowloris connections are closed; also bounds the TLS
    /// handshake). Default: `10s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_read_timeout: Option<String>,
    /// Largest request body accepted, in bytes. Default: 65536.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_body_bytes: Option<usize>,
    /// Serve HTTPS with these PEM files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
    /// A directory whose files override the web page's templates and static files
    /// (`web/`) by file name; relative to the config file. Default: none (embedded only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_templates_dir: Option<PathBuf>,
    /// How long a web login lasts (`12h`, `30m`): the signed session cookie's expiry.
    /// Default 12 h.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_session_ttl: Option<String>,
    /// Webhooks: `git: {secret_env | secret_file}` turns on `POST /api/v1/hooks/git`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hooks: Option<hooks::HooksConfig>,
}

/// An API token: its secret comes from an environment variable or a file, never inline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Who holds it (shown in acknowledgements and logs; the token itself never is).
    pub name: String,
    /// `read` (GET endpoints) or `operate` (also ack, silence, trigger scans).
    pub role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_env: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
}

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Read,
    Operate,
}

/// TLS files for the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

impl TokenConfig {
    /// Reads the token's secret.
    ///
    /// # Errors
    /// Text naming the token and the variable or file (never the value).
    pub fn secret(&self, base: &Path) -> Result<String, String> {
        match (&self.token_env, &self.token_file) {
            (Some(var), None) => match std::env::var(var) {
                Ok(v) if !v.trim().is_empty() => Ok(v.trim().to_string()),
                _ => Err(format!(
                    "api.tokens `{}`: environment variable {var} is not set",
                    self.name
                )),
            },
            (None, Some(file)) => {
                let p = if file.is_absolute() {
                    file.clone()
                } else {
                    base.join(file)
                };
                match std::fs::read_to_string(&p) {
                    Ok(v) if !v.trim().is_empty() => Ok(v.trim().to_string()),
                    Ok(_) => Err(format!(
                        "api.tokens `{}`: {} is empty",
                        self.name,
                        p.display()
                    )),
                    Err(e) => Err(format!(
                        "api.tokens `{}`: cannot read {}: {e}",
                        self.name,
                        p.display()
                    )),
                }
            }
            _ => Err(format!(
                "api.tokens `{}`: set exactly one of token_env or token_file",
                self.name
            )),
        }
    }
}

/// Where a side of an environment comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum SourceConfig {
    /// A directory (or file) of plain manifests: a Git checkout, rendered output.
    Dir {
        /// Path, relative to the config file's directory.
        path: PathBuf,
        /// Watch mode: a change under the path (inotify) makes the desired side be read
        /// again at once. Default: true (only used by watched environments).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        watch: Option<bool>,
    },
    /// A directory (or file) of live objects: `kubectl get -o yaml` or `envdrift snapshot`
    /// output.
    Dump {
        /// Path, relative to the config file's directory.
        path: PathBuf,
    },
    /// A Git repository at a ref, rendered (plain, Kustomize or Helm).
    Git(Box<crate::source::render::GitSourceConfig>),
    /// A live cluster, read through the Kubernetes API (kube-rs).
    Cluster(Box<ClusterSourceConfig>),
    /// An Argo CD Application read from the environment's cluster (docs/gitops.md).
    Argocd(Box<crate::source::gitops::ArgoCdSourceConfig>),
    /// A Flux Kustomization or HelmRelease read from the environment's cluster.
    Flux(Box<crate::source::gitops::FluxSourceConfig>),
}

/// A cluster as a live source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSourceConfig {
    /// Kubeconfig file (relative to the config file). Default: KUBECONFIG, else ~/.kube/config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubeconfig: Option<PathBuf>,
    /// Context in the kubeconfig. Default: its current context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// Use the pod's service account instead of a kubeconfig. Default: false.
    #[serde(default)]
    pub in_cluster: bool,
    /// Namespaces by name or glob. Default: all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// Namespaces by label selector (`team=shop`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<String>,
    /// Kinds to read (`Kind`, `Kind.group`, globs). Default: every listable kind.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include_kinds: Vec<String>,
    /// Kinds to skip on top of the default exclusions (events, endpoints, leases, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_kinds: Vec<String>,
    /// Read cluster-scoped kinds (Namespaces, ClusterRoles, …). Default: true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_scoped: Option<bool>,
    /// Timeout of one API request (`30s`). Default: 30s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_timeout: Option<String>,
    /// Watch mode (issue 15): keep the cluster's objects current with watches, evaluate
    /// each change as it happens; the environment's `interval` becomes a full resync
    /// (default `1h`). `false`: re-list every `interval` (default `5m`). Default: true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watch: Option<bool>,
    /// Watch mode: events of one object within this window make one evaluation (`1s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coalesce: Option<String>,
}

impl SourceConfig {
    /// The spec of a config file's `desired:` or `live:` block: paths relative to `base`
    /// (the config file's directory), Git caches under `data_dir/git`.
    ///
    /// # Errors
    /// A Git block whose fields are invalid, a bad `request_timeout`; the message names the
    /// side and the field.
    pub fn spec(
        &self,
        base: &Path,
        data_dir: &Path,
        side: &str,
    ) -> Result<crate::source::SourceSpec, crate::source::SourceError> {
        use crate::source::{
            ClusterSource, FilesKind, GitSource, SourceError, SourceSpec, dump, git, kube,
        };
        let cfg = self;
        let abs = |p: &Path| {
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            }
        };
        let invalid = |message: String| SourceError::Invalid {
            side: side.to_string(),
            source_desc: cfg.describe(),
            message,
        };
        Ok(match cfg {
            SourceConfig::Dir { path, .. } => SourceSpec::Files {
                paths: vec![abs(path)],
                kind: FilesKind::Manifests,
                limits: dump::FileLimits::default(),
            },
            SourceConfig::Dump { path } => SourceSpec::Files {
                paths: vec![abs(path)],
                kind: FilesKind::Dump,
                limits: dump::FileLimits::default(),
            },
            SourceConfig::Git(g) => {
                let (mut spec, mut auth, render) = g.parts().map_err(&invalid)?;
                // A relative local repository path is relative to the config file, like
                // every path.
                if !spec.repo.contains("://")
                    && !spec.repo.contains('@')
                    && !Path::new(&spec.repo).is_absolute()
                {
                    spec.repo = abs(Path::new(&spec.repo)).display().to_string();
                }
                auth.token_file = auth.token_file.as_deref().map(abs);
                auth.ssh_key = auth.ssh_key.as_deref().map(abs);
                let sync = git::SyncOptions {
                    cache_dir: data_dir.join("git"),
                    ..git::SyncOptions::default()
                };
                SourceSpec::Git(Box::new(GitSource {
                    spec,
                    auth,
                    sync,
                    render,
                }))
            }
            SourceConfig::Argocd(a) => {
                SourceSpec::GitOps(Box::new(a.spec(base, data_dir).map_err(&invalid)?))
            }
            SourceConfig::Flux(f) => {
                SourceSpec::GitOps(Box::new(f.spec(base, data_dir).map_err(&invalid)?))
            }
            SourceConfig::Cluster(c) => {
                let request_timeout = match &c.request_timeout {
                    Some(t) => {
                        parse_duration(t).map_err(|e| invalid(format!("request_timeout: {e}")))?
                    }
                    None => std::time::Duration::from_secs(30),
                };
                SourceSpec::Cluster(Box::new(ClusterSource {
                    target: kube::ClusterTarget {
                        kubeconfig: c.kubeconfig.as_deref().map(abs),
                        context: c.context.clone(),
                        in_cluster: c.in_cluster,
                    },
                    opts: kube::KubeOptions {
                        env: side.to_string(),
                        namespaces: c.namespaces.clone(),
                        namespace_selector: c.namespace_selector.clone(),
                        include: c.include_kinds.clone(),
                        exclude: c.exclude_kinds.clone(),
                        cluster_scoped: c.cluster_scoped.unwrap_or(true),
                        request_timeout,
                        ..kube::KubeOptions::default()
                    },
                }))
            }
        })
    }

    /// A one-line description for logs and reports.
    pub(crate) fn describe(&self) -> String {
        match self {
            SourceConfig::Dir { path, .. } => format!("dir:{}", path.display()),
            SourceConfig::Dump { path } => format!("dump:{}", path.display()),
            SourceConfig::Git(g) => format!(
                "git:{}@{}:{}",
                crate::redact::redact_url(&g.repo),
                g.reference,
                g.path
            ),
            SourceConfig::Cluster(c) => match (&c.context, c.in_cluster) {
                (_, true) => "in-cluster".to_string(),
                (Some(ctx), _) => format!("cluster:{ctx}"),
                (None, _) => "cluster:(current context)".to_string(),
            },
            SourceConfig::Argocd(a) => a.describe(),
            SourceConfig::Flux(f) => f.describe(),
        }
    }
}

impl SourceConfig {
    /// The first problem of an `argocd` or `flux` block: `(field, message)`.
    fn gitops_problem(&self) -> Result<(), (String, String)> {
        match self {
            SourceConfig::Argocd(a) => a.problem(),
            SourceConfig::Flux(f) => f.problem(),
            _ => Ok(()),
        }
    }
}

impl EnvironmentConfig {
    /// An `argocd` or `flux` desired block without its own cluster reads its object from
    /// the environment's live cluster.
    fn inherit_live_cluster(&mut self) {
        let SourceConfig::Cluster(live) = &self.live else {
            return;
        };
        match &mut self.desired {
            SourceConfig::Argocd(a) => {
                a.inherit_cluster(&live.kubeconfig, &live.context, live.in_cluster);
            }
            SourceConfig::Flux(f) => {
                f.inherit_cluster(&live.kubeconfig, &live.context, live.in_cluster);
            }
            _ => {}
        }
    }
}

/// One environment the daemon scans.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentConfig {
    /// The desired state (Git or a manifest directory).
    pub desired: SourceConfig,
    /// The live state (a cluster or a dump).
    pub live: SourceConfig,
    /// Time between scans (`5m`, `30s`, `1h`). Default: `5m`; `1h` (a full resync) when
    /// the live side is a watched cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// Watch mode: how often the desired side is read again (a Git fetch). Default: `1m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_interval: Option<String>,
}

/// A scheduled comparison between two environments' live sides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComparisonConfig {
    /// Name in alerts and the API. Default: `FROM-vs-TO`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Reference environment (usually staging).
    pub from: String,
    /// Environment checked against it (usually production).
    pub to: String,
    /// Time between comparisons. Default: `15m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
}

impl ComparisonConfig {
    pub fn name(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| format!("{}-vs-{}", self.from, self.to))
    }
}

/// The `alerts` section.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    /// Remind about drift still open after this long (`24h`). Default: no reminders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reminder_after: Option<String>,
    /// A directory whose templates override the built-in ones (by file name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub templates_dir: Option<PathBuf>,
    /// Keep retrying a failed delivery for this long after the alert was queued (`24h`,
    /// the default); a sink's own `retry_for` wins. Retries are bounded by this time, not
    /// by a count: the backoff doubles from 5 s to at most 1 h between attempts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_for: Option<String>,
    /// Where alerts go: Slack, email, desktop, webhook, log (docs/alerts.md).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sinks: Vec<crate::alert::SinkConfig>,
}

/// A scheduled drift report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportConfig {
    pub name: String,
    /// Cron expression with seconds (`0 0 9 * * Mon-Fri`), in `timezone`.
    pub cron: String,
    /// Environments and comparisons covered (names). Default: all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<String>,
    /// Sink names to send it to. Default: every sink whose route accepts reports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sinks: Vec<String>,
}

pub(crate) use crate::source::parse_duration;

/// The `compare` section.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompareConfig {
    /// How `from` objects are renamed into `to`'s namespaces, names and values.
    #[serde(default)]
    pub mapping: MappingConfig,
    /// Differences that are expected between environments: reported only with
    /// `--show-expected`, never alerted.
    #[serde(default)]
    pub expected: ExpectedConfig,
}

/// Expected-divergence rules (same shape as ignore rules).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedConfig {
    /// Use the built-in rules ([`builtin_expected`]): replicas, container resources, HPA
    /// bounds and metrics, PDB numbers, storage sizes. Default: true.
    #[serde(default = "yes")]
    pub defaults: bool,
    /// More rules, checked with the built-in ones.
    #[serde(default)]
    pub rules: Vec<IgnoreRule>,
}

impl Default for ExpectedConfig {
    fn default() -> Self {
        ExpectedConfig {
            defaults: true,
            rules: Vec::new(),
        }
    }
}

fn yes() -> bool {
    true
}

fn rule(group: &str, kind: &str, paths: &[&str]) -> IgnoreRule {
    IgnoreRule {
        group: (group != "*").then(|| group.to_string()),
        kind: (kind != "*").then(|| kind.to_string()),
        paths: paths.iter().map(std::string::ToString::to_string).collect(),
        reason: Some("differs by design between environments".into()),
        ..IgnoreRule::default()
    }
}

/// The built-in expected divergences between environments.
pub(crate) fn builtin_expected() -> Vec<IgnoreRule> {
    vec![
        rule("apps", "*", &["/spec/replicas"]),
        rule(
            "*",
            "*",
            &["**/containers/*/resources", "**/initContainers/*/resources"],
        ),
        rule(
            "autoscaling",
            "HorizontalPodAutoscaler",
            &[
                "/spec/minReplicas",
                "/spec/maxReplicas",
                "/spec/metrics/*/resource/target",
            ],
        ),
        rule(
            "policy",
            "PodDisruptionBudget",
            &["/spec/minAvailable", "/spec/maxUnavailable"],
        ),
        rule(
            "",
            "PersistentVolumeClaim",
            &["/spec/resources/requests/storage"],
        ),
        rule(
            "apps",
            "StatefulSet",
            &["/spec/volumeClaimTemplates/*/spec/resources/requests/storage"],
        ),
    ]
}

/// A config problem; every variant names the file and the key or line.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}")]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}: {key}: {message}")]
    Invalid {
        path: PathBuf,
        key: String,
        message: String,
    },
    /// A semantic problem at the position of its key in the file.
    #[error("{path}:{line}:{column}: {key}: {message}")]
    Located {
        path: PathBuf,
        line: usize,
        column: usize,
        key: String,
        message: String,
    },
}

impl Config {
    /// Reads and validates a config file.
    ///
    /// # Errors
    /// [`ConfigError::Read`] when the file cannot be read, [`ConfigError::Parse`] with line
    /// and column for bad YAML or an unknown key, [`ConfigError::Invalid`] naming the key for
    /// a bad value (a path pattern that is not a JSON Pointer, a rule with neither `path`
    /// nor `drift`).
    pub fn load(path: &Path) -> Result<Config, Vec<ConfigError>> {
        let text = std::fs::read_to_string(path).map_err(|source| {
            vec![ConfigError::Read {
                path: path.to_path_buf(),
                source,
            }]
        })?;
        Config::parse_all(&text, path)
    }

    /// Parses and validates config text, collecting every problem: each schema error
    /// (unknown key, wrong type) with its line and column, then every semantic problem
    /// of what parses, at the line and column of its key (see `config/yaml.rs`).
    ///
    /// # Errors
    /// All the problems, in file order.
    pub fn parse_all(text: &str, path: &Path) -> Result<Config, Vec<ConfigError>> {
        let index = yaml::Index::new(text);
        let mut blanked = yaml::Blanked::new(&index, text);
        let mut problems: Vec<ConfigError> = Vec::new();
        let mut last: Option<(usize, usize)> = None;
        // Each round cuts a rule or a section out: at most one round per line.
        let mut cfg = None;
        for _ in 0..=text.lines().count() {
            match Config::parse(&blanked.text, path) {
                Ok(c) => {
                    cfg = Some(c);
                    break;
                }
                Err(e) => {
                    let ConfigError::Parse { line, column, .. } = &e else {
                        problems.push(e);
                        break;
                    };
                    let (line, column) = (*line, *column);
                    if line == 0 || last == Some((line, column)) {
                        problems.push(e);
                        break;
                    }
                    last = Some((line, column));
                    // An error caused by an earlier cut (an emptied list) is not reported;
                    // its section goes whole.
                    let derived = blanked.already_reported(line);
                    if !derived {
                        problems.push(e);
                    }
                    if !blanked.cut(line, derived) {
                        break;
                    }
                }
            }
        }
        let Some(mut cfg) = cfg else {
            return Err(problems);
        };
        // Sink secret and CA files are relative to the config file, like every other path
        // in it (not to wherever the daemon was started).
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        for sink in &mut cfg.alerts.sinks {
            sink.resolve_relative(base);
        }
        for env in cfg.environments.values_mut() {
            env.inherit_live_cluster();
        }
        // References to what was cut out would only repeat its error.
        let cut_refs = ["environments", "comparisons", "alerts"]
            .iter()
            .any(|s| blanked.touched(s));
        for p in cfg.validate(path) {
            let ConfigError::Invalid { path, key, message } = p else {
                problems.push(p);
                continue;
            };
            if cut_refs && message.starts_with("unknown ") {
                continue;
            }
            let key = blanked.original_key(&key);
            problems.push(match index.position(&key) {
                Some((line, column)) => ConfigError::Located {
                    path,
                    line,
                    column,
                    key,
                    message,
                },
                None => ConfigError::Invalid { path, key, message },
            });
        }
        if problems.is_empty() {
            return Ok(cfg);
        }
        let at = |e: &ConfigError| match e {
            ConfigError::Parse { line, column, .. } | ConfigError::Located { line, column, .. } => {
                (*line, *column)
            }
            _ => (usize::MAX, 0),
        };
        problems.sort_by_key(at);
        Err(problems)
    }

    /// Parses config text (no validation beyond the schema).
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let opts = serde_saphyr::options! { with_snippet: false, strict_booleans: true };
        serde_saphyr::from_str_with_options::<Config>(text, opts).map_err(|e| {
            let loc = e.without_snippet().location();
            let rendered = e.without_snippet().to_string();
            let first = rendered.lines().next().unwrap_or("").to_string();
            let mut message = first
                .find(" at line ")
                .map_or(first.clone(), |i| first[..i].to_string());
            if let Some(s) = yaml::suggestion(&message) {
                message.push_str(&format!(" (did you mean `{s}`?)"));
            }
            ConfigError::Parse {
                path: path.to_path_buf(),
                line: loc.map_or(0, |l| l.line() as usize),
                column: loc.map_or(0, |l| l.column() as usize),
                message,
            }
        })
    }

    /// Every semantic problem, each naming its key path.
    pub fn validate(&self, path: &Path) -> Vec<ConfigError> {
        let mut out = Vec::new();
        let invalid = |key: String, message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            key,
            message,
        };
        let limits = self.jq_limits().unwrap_or_else(|e| {
            out.push(invalid("jq_timeout".into(), e));
            crate::diff::jq::Limits::default()
        });
        if let Err(problems) = IgnoreSet::compile(&self.ignore, "ignore", 0, limits) {
            out.extend(problems.into_iter().map(|p| invalid(p.key, p.message)));
        }
        for (i, r) in self.severity_rules.iter().enumerate() {
            if let Err((field, problem)) = crate::pattern::LabelSelector::combine(
                r.selector.as_ref(),
                r.label_selector.as_deref(),
            ) {
                out.push(invalid(format!("severity_rules[{i}].{field}"), problem));
            }
        }
        if let Err(e) = Classifier::new(&self.severity_rules, self.managers.clone()) {
            let key = match &e {
                RuleError::BadPath { index, .. } => Some(format!("severity_rules[{index}].path")),
                RuleError::PathOrDrift { index } | RuleError::BadDrift { index } => {
                    Some(format!("severity_rules[{index}]"))
                }
                // Reported above, with every other rule's.
                RuleError::BadSelector { .. } => None,
            };
            if let Some(key) = key {
                let text = e.to_string();
                let message = text
                    .split_once(": ")
                    .map_or(text.as_str(), |(_, m)| m)
                    .to_string();
                out.push(invalid(key, message));
            }
        }
        self.validate_daemon(&mut out, path);
        self.validate_coordination(&mut out, path);
        if let Err(errs) = Mapping::new(&self.compare.mapping) {
            for e in errs {
                out.push(invalid("compare.mapping".into(), e.to_string()));
            }
        }
        if let Err(problems) = IgnoreSet::compile(
            &self.compare.expected.rules,
            "compare.expected.rules",
            0,
            limits,
        ) {
            out.extend(problems.into_iter().map(|p| invalid(p.key, p.message)));
        }
        for (i, r) in self.compare.expected.rules.iter().enumerate() {
            if !r.jq_path_expressions.is_empty() {
                out.push(invalid(
                    format!("compare.expected.rules[{i}].jqPathExpressions"),
                    "jq path expressions are for `ignore` rules; an expected divergence names its fields in `paths`".into(),
                ));
            }
        }
        if let Some(ns) = &self.default_namespace
            && !is_dns_label(ns)
        {
            out.push(invalid(
                "default_namespace".into(),
                format!("`{ns}` is not a valid namespace name (RFC 1123 label)"),
            ));
        }
        out
    }

    /// The jq evaluation bounds: `jq_timeout` (default 1 s) and the fixed path and step
    /// bounds of [`crate::diff::jq::Limits`].
    ///
    /// # Errors
    /// `jq_timeout` is not a duration, or is zero.
    pub fn jq_limits(&self) -> Result<crate::diff::jq::Limits, String> {
        let mut limits = crate::diff::jq::Limits::default();
        if let Some(t) = &self.jq_timeout {
            let d = parse_duration(t)?;
            if d.is_zero() {
                return Err(format!("`{t}`: must be more than zero"));
            }
            limits.timeout = d;
        }
        Ok(limits)
    }

    /// The data directory (store, Git caches): `data_dir` (default `.envdrift`), relative to
    /// `base`, the config file's directory.
    pub fn data_dir_in(&self, base: &Path) -> PathBuf {
        let d = self.data_dir.as_deref().unwrap_or(Path::new(".envdrift"));
        if d.is_absolute() {
            d.to_path_buf()
        } else {
            base.join(d)
        }
    }

    /// Compiles the rules once (at load): the ignore set, the classifier, the expected
    /// divergences and the environment mapping. Every scan, comparison and API request
    /// shares the result (see [`Compiled`]).
    ///
    /// # Errors
    /// The same problems as [`Config::validate`], each naming its key.
    pub fn compile(&self) -> Result<Compiled, CompileError> {
        let limits = self.jq_limits().map_err(|message| CompileError::Config {
            key: "jq_timeout".into(),
            message,
        })?;
        let ignore =
            IgnoreSet::compile(&self.ignore, "ignore", 0, limits).map_err(CompileError::Rules)?;
        let classifier = Classifier::new(&self.severity_rules, self.managers.clone())?;
        let builtin = if self.compare.expected.defaults {
            builtin_expected()
        } else {
            Vec::new()
        };
        let builtin_len = builtin.len();
        let mut rules = builtin;
        rules.extend(self.compare.expected.rules.iter().cloned());
        let expected = IgnoreSet::compile(&rules, "compare.expected.rules", builtin_len, limits)
            .map_err(CompileError::Rules)?;
        if let Some(i) = self
            .compare
            .expected
            .rules
            .iter()
            .position(|r| !r.jq_path_expressions.is_empty())
        {
            return Err(CompileError::Config {
                key: format!("compare.expected.rules[{i}].jqPathExpressions"),
                message: "jq path expressions are for `ignore` rules".into(),
            });
        }
        let mapping = Mapping::new(&self.compare.mapping).map_err(CompileError::Mapping)?;
        Ok(Compiled {
            ignore: Arc::new(ignore),
            classifier: Arc::new(classifier),
            expected: Arc::new(expected),
            mapping: Arc::new(mapping),
            three_way: self.three_way.unwrap_or(true),
            unmanaged: self.unmanaged.clone(),
            default_namespace: self
                .default_namespace
                .clone()
                .unwrap_or_else(|| "default".to_string()),
            cluster_scoped_kinds: self.cluster_scoped_kinds.clone(),
        })
    }
}

/// A config's rules, compiled once ([`Config::compile`]) and shared (`Arc`) by every scan,
/// comparison and request. [`Compiled::options`] hands the engine its [`Options`] without
/// rebuilding anything.
#[derive(Debug, Clone)]
pub struct Compiled {
    pub ignore: Arc<IgnoreSet>,
    pub classifier: Arc<Classifier>,
    /// Expected-divergence rules: the built-in ones (unless `compare.expected.defaults` is
    /// false), then the configured ones.
    pub expected: Arc<IgnoreSet>,
    pub mapping: Arc<Mapping>,
    pub three_way: bool,
    pub unmanaged: UnmanagedScope,
    /// Namespace for namespaced desired objects without one (`default` unless configured).
    pub default_namespace: String,
    pub cluster_scoped_kinds: Vec<String>,
}

impl Default for Compiled {
    fn default() -> Self {
        // The default config always compiles (the built-in rules are valid; a test checks).
        Config::default().compile().unwrap_or_else(|_| Compiled {
            ignore: Arc::default(),
            classifier: Arc::default(),
            expected: Arc::default(),
            mapping: Arc::default(),
            three_way: true,
            unmanaged: UnmanagedScope::default(),
            default_namespace: "default".into(),
            cluster_scoped_kinds: Vec::new(),
        })
    }
}

impl Compiled {
    /// The engine's options for a comparison of two named sides (names are used in
    /// messages only, never in fingerprints). Desired vs live: three-way as configured;
    /// environment vs environment: symmetric, no three-way, expected divergences and the
    /// mapping.
    pub fn options(&self, mode: crate::report::Mode, names: (&str, &str)) -> Options {
        let base = Options {
            pair: (names.0.to_string(), names.1.to_string()),
            ignore: Arc::clone(&self.ignore),
            classifier: Arc::clone(&self.classifier),
            three_way: self.three_way,
            unmanaged: self.unmanaged.clone(),
            ..Options::default()
        };
        match mode {
            crate::report::Mode::DesiredVsLive => base,
            crate::report::Mode::EnvVsEnv => Options {
                expected: Arc::clone(&self.expected),
                mapping: Some(Arc::clone(&self.mapping)),
                symmetric: true,
                three_way: false,
                ..base
            },
        }
    }
}

/// A config whose rules do not compile; each names its key.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    /// Ignore or expected-divergence rules.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Rules(Vec<crate::diff::ignore::RuleProblem>),
    #[error(transparent)]
    Severity(#[from] RuleError),
    #[error("{key}: {message}")]
    Config { key: String, message: String },
    #[error("compare.mapping: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Mapping(Vec<crate::diff::envmap::MappingError>),
}

/// A sink secret that is not available here (an unset variable, a missing file): the config
/// is valid, the environment is not ready to deliver.
fn is_missing_secret(e: &crate::alert::SinkError) -> bool {
    use crate::alert::SinkError;
    match e {
        SinkError::SecretEnvMissing { .. } => true,
        SinkError::SecretFileUnreadable { source, .. } => {
            source.kind() == std::io::ErrorKind::NotFound
        }
        _ => false,
    }
}

impl Config {
    /// `alerts.templates_dir`, relative to the config file at `path`.
    fn templates_dir(&self, path: &Path) -> Option<PathBuf> {
        self.alerts.templates_dir.as_ref().map(|d| {
            if d.is_absolute() {
                d.clone()
            } else {
                path.parent().unwrap_or(Path::new(".")).join(d)
            }
        })
    }

    /// Problems that do not make the file invalid but stop delivery where it runs now: sink
    /// secrets whose environment variable is unset or whose file does not exist. `config
    /// check` prints them as warnings (errors with `--strict`); the daemon refuses to start
    /// without them (its sinks cannot be built).
    pub fn warnings(&self, path: &Path) -> Vec<ConfigError> {
        let templates_dir = self.templates_dir(path);
        let Ok(t) = crate::alert::Templates::load(templates_dir.as_deref()) else {
            return Vec::new();
        };
        match crate::alert::build_sinks(&self.alerts.sinks, &t) {
            Ok(_) => Vec::new(),
            Err(errs) => errs
                .iter()
                .filter(|e| is_missing_secret(e))
                .map(|e| ConfigError::Invalid {
                    path: path.to_path_buf(),
                    key: "alerts.sinks".into(),
                    message: e.to_string(),
                })
                .collect(),
        }
    }

    fn validate_coordination(&self, out: &mut Vec<ConfigError>, path: &Path) {
        let problems = match &self.daemon.coordination {
            None => Vec::new(),
            Some(coordination::CoordinationConfig::Kubernetes(k)) => k.problems(),
            Some(coordination::CoordinationConfig::Store(k)) => {
                let mut p = k.problems();
                if !matches!(self.store, Some(StoreConfig::Postgres(_))) {
                    p.push((
                        "type".into(),
                        "`type: store` needs the shared store every replica reaches: set `store.type: postgres`".into(),
                    ));
                }
                p
            }
        };
        {
            for (key, message) in problems {
                out.push(ConfigError::Invalid {
                    path: path.to_path_buf(),
                    key: format!("daemon.coordination.{key}"),
                    message,
                });
            }
        }
    }

    fn validate_daemon(&self, out: &mut Vec<ConfigError>, path: &Path) {
        let mut invalid = |key: String, message: String| {
            out.push(ConfigError::Invalid {
                path: path.to_path_buf(),
                key,
                message,
            })
        };
        for (name, env) in &self.environments {
            if !is_dns_label(name) {
                invalid(
                    format!("environments.{name}"),
                    "environment names are lowercase letters, digits and `-`".into(),
                );
            }
            if let Some(i) = &env.interval
                && let Err(e) = parse_duration(i)
            {
                invalid(format!("environments.{name}.interval"), e);
            }
            if let Err((field, e)) = env.desired.gitops_problem() {
                invalid(format!("environments.{name}.desired.{field}"), e);
            }
            if let Some(i) = &env.desired_interval
                && let Err(e) = parse_duration(i)
            {
                invalid(format!("environments.{name}.desired_interval"), e);
            }
            if let SourceConfig::Cluster(c) = &env.live
                && let Some(i) = &c.coalesce
                && let Err(e) = parse_duration(i)
            {
                invalid(format!("environments.{name}.live.coalesce"), e);
            }
        }
        if let Some(StoreConfig::Postgres(p)) = &self.store
            && let Some((key, e)) = p.problem()
        {
            invalid(key.into(), e);
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, c) in self.comparisons.iter().enumerate() {
            for (side, env) in [("from", &c.from), ("to", &c.to)] {
                if !self.environments.contains_key(env) {
                    let known: Vec<&str> = self.environments.keys().map(String::as_str).collect();
                    invalid(
                        format!("comparisons[{i}].{side}"),
                        format!(
                            "unknown environment `{env}` (configured: {})",
                            known.join(", ")
                        ),
                    );
                }
            }
            if !names.insert(c.name()) || self.environments.contains_key(&c.name()) {
                invalid(
                    format!("comparisons[{i}].name"),
                    format!(
                        "`{}` is used twice (environments and comparisons share names)",
                        c.name()
                    ),
                );
            }
            if let Some(iv) = &c.interval
                && let Err(e) = parse_duration(iv)
            {
                invalid(format!("comparisons[{i}].interval"), e);
            }
        }
        if let Some(tz) = &self.timezone
            && tz.parse::<chrono_tz::Tz>().is_err()
        {
            invalid(
                "timezone".into(),
                format!("`{tz}` is not an IANA time zone (e.g. Europe/Paris, UTC)"),
            );
        }
        for (key, v) in [
            ("retention", &self.retention),
            ("alerts.reminder_after", &self.alerts.reminder_after),
            ("alerts.retry_for", &self.alerts.retry_for),
            ("api.request_timeout", &self.api.request_timeout),
            ("api.compare_max_age", &self.api.compare_max_age),
            ("api.header_read_timeout", &self.api.header_read_timeout),
            ("api.web_session_ttl", &self.api.web_session_ttl),
        ] {
            if let Some(v) = v
                && let Err(e) = parse_duration(v)
            {
                invalid(key.into(), e);
            }
        }
        for (i, sink) in self.alerts.sinks.iter().enumerate() {
            if let Some(v) = sink.retry_for()
                && let Err(e) = parse_duration(v)
            {
                invalid(format!("alerts.sinks[{i}].retry_for"), e);
            }
        }
        let templates_dir = self.templates_dir(path);
        match crate::alert::Templates::load(templates_dir.as_deref()) {
            Err(e) => invalid("alerts.templates_dir".into(), e.to_string()),
            Ok(t) => {
                if let Err(errs) = crate::alert::build_sinks(&self.alerts.sinks, &t) {
                    // Unset secret variables and missing secret files are the deployment's
                    // business, not the file's: warnings (see [`Config::warnings`]).
                    for e in errs.iter().filter(|e| !is_missing_secret(e)) {
                        invalid("alerts.sinks".into(), e.to_string());
                    }
                }
            }
        }
        for (i, r) in self.reports.iter().enumerate() {
            for s in &r.sinks {
                if !self.alerts.sinks.iter().any(|c| c.name() == s) {
                    invalid(format!("reports[{i}].sinks"), format!("unknown sink `{s}`"));
                }
            }
            if let Err(e) = r.cron.parse::<cron::Schedule>() {
                invalid(
                    format!("reports[{i}].cron"),
                    format!(
                        "`{}` is not a cron expression with seconds (e.g. `0 0 9 * * Mon-Fri`): {e}",
                        r.cron
                    ),
                );
            }
            for t in &r.targets {
                if !self.environments.contains_key(t)
                    && !self.comparisons.iter().any(|c| &c.name() == t)
                {
                    invalid(
                        format!("reports[{i}].targets"),
                        format!("unknown environment or comparison `{t}`"),
                    );
                }
            }
        }
        if let Some(l) = &self.listen
            && l.parse::<std::net::SocketAddr>().is_err()
        {
            invalid(
                "listen".into(),
                format!("`{l}` is not an address:port (e.g. 127.0.0.1:8080)"),
            );
        }
    }
}

pub(crate) fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_name_the_line() {
        let err = Config::parse(
            "ignore:\n  - kind: Deployment\n    pathz: [/spec/replicas]\n",
            Path::new("c.yaml"),
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("c.yaml:3:"), "{text}");
        assert!(text.contains("pathz"), "{text}");
    }

    #[test]
    fn semantic_problems_name_the_key() {
        let cfg = Config::parse(
            "default_namespace: Bad_NS\nignore:\n  - paths: [spec/replicas]\nseverity_rules:\n  - kind: X\n    severity: low\n",
            Path::new("c.yaml"),
        )
        .unwrap();
        let problems: Vec<String> = cfg
            .validate(Path::new("c.yaml"))
            .iter()
            .map(std::string::ToString::to_string)
            .collect();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems.iter().any(|p| p.contains("ignore[0].paths[0]")));
        assert!(problems.iter().any(|p| p.contains("severity_rules[0]")));
        assert!(problems.iter().any(|p| p.contains("default_namespace")));
    }

    #[test]
    fn full_example_parses() {
        let text = "default_namespace: shop\nthree_way: true\ncluster_scoped_kinds: [Tenant.example.com]\nmanagers:\n  gitops: [argocd-controller]\nignore:\n  - kind: Deployment\n    name: \"web-*\"\n    paths: [/spec/replicas]\n    reason: KEDA\nseverity_rules:\n  - kind: ConfigMap\n    path: /data\n    severity: low\n  - kind: ConfigMap\n    drift: unmanaged\n    severity: info\nunmanaged:\n  namespaces: [\"shop-*\"]\n";
        let cfg = Config::parse(text, Path::new("c.yaml")).unwrap();
        assert!(cfg.validate(Path::new("c.yaml")).is_empty());
        assert_eq!(cfg.managers.gitops, vec!["argocd-controller".to_string()]);
        assert!(
            !cfg.managers.manual.is_empty(),
            "unset lists keep their defaults"
        );
        let opts = cfg
            .compile()
            .unwrap()
            .options(crate::report::Mode::DesiredVsLive, ("desired", "live"));
        assert!(opts.three_way);
    }

    /// Odd inputs end (no loop, no panic) with problems or a config.
    #[test]
    fn parse_all_terminates_on_odd_input() {
        for text in [
            "",
            "---\n---\n",
            "ignore:\n\t- kind: X\n",
            "ignore: &a [{pathz: 1}]\nseverity_rules: *a\n",
            "ignore:\n  - pathz: 1\n  - pathz: 2\n  - pathz: 3\n",
            "ignore:\n- - - x\n",
            "environments:\n  a: {desired: 1}\n  b: {desired: 2}\nlisten: [\n",
            "x: 1\ny: 2\nz: 3\n",
            "ignore: {kind: X}\n",
            ": :\n",
        ] {
            let r = Config::parse_all(text, Path::new("c.yaml"));
            if let Err(problems) = &r {
                assert!(!problems.is_empty(), "{text:?}");
                assert!(
                    problems.len() <= text.lines().count() + 2,
                    "{text:?}: {problems:?}"
                );
            }
        }
        let problems = Config::parse_all("x: 1\ny: 2\nz: 3\n", Path::new("c.yaml")).unwrap_err();
        assert_eq!(problems.len(), 3, "{problems:?}");
        let problems = Config::parse_all(
            "ignore:\n  - pathz: 1\n  - pathz: 2\n  - pathz: 3\n",
            Path::new("c.yaml"),
        )
        .unwrap_err();
        assert_eq!(problems.len(), 3, "{problems:?}");
    }

    #[test]
    fn the_default_config_compiles() {
        let c = Config::default().compile().unwrap();
        assert_eq!(c.default_namespace, "default");
        assert!(c.three_way);
    }

    #[test]
    fn compile_errors_name_the_key() {
        let cfg = Config::parse(
            "compare:\n  expected:\n    rules:\n      - paths: [spec/replicas]\n",
            Path::new("c.yaml"),
        )
        .unwrap();
        let e = cfg.compile().unwrap_err().to_string();
        assert!(e.starts_with("compare.expected.rules[0].paths[0]: "), "{e}");
        let cfg = Config::parse("ignore:\n  - paths: [x]\n", Path::new("c.yaml")).unwrap();
        let e = cfg.compile().unwrap_err().to_string();
        assert!(e.starts_with("ignore[0].paths[0]: "), "{e}");
    }
}

#[cfg(test)]
mod argo_vocabulary_tests {
    use super::*;

    /// An Argo CD `ignoreDifferences` block pasted as is loads, with its meaning.
    #[test]
    fn argo_cd_ignore_differences_block_loads() {
        let text = "ignoreDifferences:\n- group: apps\n  kind: Deployment\n  jsonPointers:\n  - /spec/replicas\n- kind: ConfigMap\n  name: argocd-cm\n  managedFieldsManagers:\n  - kube-controller-manager\n";
        let path = Path::new("envdrift.yaml");
        let cfg = Config::parse(text, path).unwrap();
        assert_eq!(cfg.ignore.len(), 2);
        assert_eq!(cfg.ignore[0].paths, ["/spec/replicas"]);
        assert_eq!(cfg.ignore[1].managers, ["kube-controller-manager"]);
        assert!(cfg.validate(path).is_empty(), "{:?}", cfg.validate(path));
        assert!(cfg.compile().is_ok());
        // jq expressions compile; a bad one is an error naming its key.
        let jq = "ignore:\n- kind: Deployment\n  jqPathExpressions:\n  - .spec.template.spec.initContainers[] | select(.name == \"init\")\n  - .spec | select(\n";
        let cfg = Config::parse(jq, path).unwrap();
        let problems = cfg.validate(path);
        assert_eq!(problems.len(), 1, "{problems:?}");
        let text = problems[0].to_string();
        assert!(text.contains("ignore[0].jqPathExpressions[1]"), "{text}");
        assert!(text.contains("expected"), "{text}");
        let e = cfg.compile().unwrap_err().to_string();
        assert!(e.starts_with("ignore[0].jqPathExpressions[1]: "), "{e}");
        // jq_timeout is checked.
        let cfg = Config::parse("jq_timeout: soon\n", path).unwrap();
        let problems = cfg.validate(path);
        assert!(
            problems[0].to_string().contains("jq_timeout"),
            "{problems:?}"
        );
    }
}
