//! The command line's arguments (clap derive). Output flags shared by every comparing
//! command are one flattened [`OutputArgs`].

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use envdrift::model::Severity;

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub(crate) enum Format {
    Table,
    Json,
    Markdown,
    /// SARIF 2.1.0 for code scanning (GitHub): a result per drifted field at its manifest line.
    Sarif,
    /// JUnit XML for CI test reports: a test case per compared object.
    Junit,
}

/// When to exit 1.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub(crate) enum FailOn {
    Any,
    Info,
    Low,
    Medium,
    High,
    Critical,
    Never,
}

impl FailOn {
    pub(crate) fn threshold(self) -> Option<Severity> {
        match self {
            FailOn::Any | FailOn::Info => Some(Severity::Info),
            FailOn::Low => Some(Severity::Low),
            FailOn::Medium => Some(Severity::Medium),
            FailOn::High => Some(Severity::High),
            FailOn::Critical => Some(Severity::Critical),
            FailOn::Never => None,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub(crate) enum ColorChoice {
    Auto,
    Always,
    Never,
}

/// How a comparison's result is shown and judged (`diff`, `compare`, `scan`).
#[derive(Args, Debug, Clone)]
pub(crate) struct OutputArgs {
    /// Output format [default: table on a terminal, else json].
    #[arg(long, short, value_enum)]
    pub(crate) format: Option<Format>,
    /// Exit 1 when a drift at or above this severity is found.
    #[arg(long, value_enum, default_value_t = FailOn::Any)]
    pub(crate) fail_on: FailOn,
    /// Colors in the table: auto (when stdout is a terminal and NO_COLOR is unset), always,
    /// never.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    pub(crate) color: ColorChoice,
}

#[derive(Args, Debug)]
pub(crate) struct DiffArgs {
    /// Desired state: files or directories (recursive) of YAML/JSON manifests, or one Git
    /// source `git:REPO@REF[:PATH]` (see README: Git sources).
    #[arg(long, required = true, num_args = 1.., value_name = "PATH|git:REPO@REF[:PATH]")]
    pub(crate) desired: Vec<String>,
    /// Live state: files or directories of `kubectl get -o yaml` output or envdrift dumps;
    /// or a cluster: `cluster:CONTEXT` (a context of --kubeconfig or of the default
    /// kubeconfig), `cluster:` (the current context), `in-cluster` (the pod's service account).
    #[arg(long, required = true, num_args = 1.., value_name = "PATH|cluster:CONTEXT")]
    pub(crate) live: Vec<PathBuf>,
    #[command(flatten)]
    pub(crate) cluster: ClusterArgs,
    /// Config file: ignore rules, severity rules, manager classes, unmanaged scope.
    #[arg(long, short)]
    pub(crate) config: Option<PathBuf>,
    /// Namespace for namespaced desired objects that have none [default: default].
    #[arg(long)]
    pub(crate) default_namespace: Option<String>,
    /// A GitOps applier's field-manager name (repeatable); adds to the configured list.
    #[arg(long = "gitops-manager", value_name = "NAME")]
    pub(crate) gitops_managers: Vec<String>,
    #[command(flatten)]
    pub(crate) output: OutputArgs,
    /// Do not report live objects that are missing from desired.
    #[arg(long)]
    pub(crate) no_unmanaged: bool,
    /// Accept a side without any object (by default an error: exit 2 naming its paths).
    #[arg(long)]
    pub(crate) allow_empty: bool,
    #[command(flatten)]
    pub(crate) git: GitArgs,
    #[command(flatten)]
    pub(crate) inputs: InputArgs,
}

/// How files and directories are read (`diff`, `compare`, `render`).
#[derive(Args, Debug, Clone)]
pub(crate) struct InputArgs {
    /// Follow symbolic links that lead outside the directories given (links inside them
    /// are always followed; link cycles are always detected).
    #[arg(long)]
    pub(crate) follow_links: bool,
    /// Largest input file read, in bytes; larger files are input errors.
    #[arg(long, value_name = "BYTES", default_value_t = envdrift::source::dump::MAX_FILE_BYTES)]
    pub(crate) max_file_size: u64,
}

impl InputArgs {
    /// Applies these limits to a file source (other sources are returned as they are).
    pub(crate) fn apply(
        &self,
        mut spec: envdrift::source::SourceSpec,
    ) -> envdrift::source::SourceSpec {
        if let envdrift::source::SourceSpec::Files { limits, .. } = &mut spec {
            limits.follow_links = self.follow_links;
            limits.max_file_bytes = self.max_file_size;
        }
        spec
    }
}

#[derive(Args, Debug)]
pub(crate) struct RenderArgs {
    /// The source: `git:REPO@REF[:PATH]`, or files/directories of manifests.
    #[arg(long, required_unless_present = "env", num_args = 1.., value_name = "PATH|git:REPO@REF[:PATH]")]
    pub(crate) desired: Vec<String>,
    /// A config file: render the desired source of --env.
    #[arg(long, short, requires = "env")]
    pub(crate) config: Option<PathBuf>,
    /// The environment of --config whose desired state to render.
    #[arg(long, requires = "config", conflicts_with = "desired")]
    pub(crate) env: Option<String>,
    /// Namespace for namespaced objects that have none [default: default].
    #[arg(long)]
    pub(crate) default_namespace: Option<String>,
    #[command(flatten)]
    pub(crate) git: GitArgs,
    #[command(flatten)]
    pub(crate) inputs: InputArgs,
}

/// Options of Git sources and renderers.
#[derive(Args, Debug, Clone)]
pub(crate) struct GitArgs {
    /// Renderer: plain, kustomize, helm [default: detected: kustomization.yaml → kustomize,
    /// Chart.yaml → helm, else plain].
    #[arg(long, value_name = "NAME")]
    pub(crate) renderer: Option<String>,
    /// Directory of cached bare clones [default: $XDG_CACHE_HOME/envdrift/git].
    #[arg(long, value_name = "DIR")]
    pub(crate) git_cache: Option<PathBuf>,
    /// File holding an https token for the repository.
    #[arg(long, value_name = "FILE")]
    pub(crate) git_token_file: Option<PathBuf>,
    /// Environment variable holding an https token.
    #[arg(long, value_name = "VAR")]
    pub(crate) git_token_env: Option<String>,
    /// User name sent with the token [default: x-access-token].
    #[arg(long, value_name = "NAME")]
    pub(crate) git_username: Option<String>,
    /// Private key file for ssh repositories.
    #[arg(long, value_name = "FILE")]
    pub(crate) git_ssh_key: Option<PathBuf>,
    /// Kustomize program: auto (kustomize if on PATH, else kubectl kustomize), kustomize, kubectl.
    #[arg(long, value_name = "PROGRAM", default_value = "auto")]
    pub(crate) kustomize_command: String,
    /// Helm release name [default: the chart directory's name].
    #[arg(long, value_name = "NAME")]
    pub(crate) helm_release: Option<String>,
    /// Helm --namespace.
    #[arg(long, value_name = "NS")]
    pub(crate) helm_namespace: Option<String>,
    /// Helm values file, relative to the chart directory (repeatable, in order).
    #[arg(long = "helm-values", value_name = "FILE")]
    pub(crate) helm_values: Vec<String>,
    /// Helm --set value (repeatable).
    #[arg(long = "helm-set", value_name = "KEY=VALUE")]
    pub(crate) helm_set: Vec<String>,
    /// Longest a renderer may run, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 120)]
    pub(crate) render_timeout: u64,
}

#[derive(Args, Debug)]
pub(crate) struct DaemonArgs {
    /// The config file (see config/envdrift.example.yaml).
    #[arg(long, short)]
    pub(crate) config: PathBuf,
    /// Run one full cycle and exit (0 no drift, 1 drift at or above --fail-on, 2 errors).
    #[arg(long)]
    pub(crate) once: bool,
    /// With --once: exit 1 when open drift at or above this severity exists.
    #[arg(long, value_enum, default_value_t = FailOn::Any)]
    pub(crate) fail_on: FailOn,
}

#[derive(Args, Debug)]
pub(crate) struct ScanArgs {
    /// The config file.
    #[arg(long, short)]
    pub(crate) config: PathBuf,
    /// The environment to scan.
    #[arg(long)]
    pub(crate) env: String,
    #[command(flatten)]
    pub(crate) output: OutputArgs,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub(crate) enum ReportFormat {
    Text,
    Markdown,
    Json,
}

#[derive(Args, Debug)]
pub(crate) struct ReportArgs {
    /// The config file.
    #[arg(long, short)]
    pub(crate) config: PathBuf,
    /// The configured report to render or send [default: all targets since yesterday; with
    /// --send: every configured report].
    #[arg(long)]
    pub(crate) name: Option<String>,
    /// Queue the report for its sinks and deliver it now.
    #[arg(long)]
    pub(crate) send: bool,
    /// Output format of the printed report.
    #[arg(long, short, value_enum, default_value_t = ReportFormat::Text)]
    pub(crate) format: ReportFormat,
}

#[derive(Args, Debug)]
pub(crate) struct CompareArgs {
    /// The reference environment: `dump:PATH` or a file/directory of `kubectl get -o yaml`
    /// dumps, `live:ENV` (an environment's live source of --config) or `git:ENV` (its
    /// desired source).
    #[arg(long, value_name = "SOURCE")]
    pub(crate) from: String,
    /// The environment checked against it (usually production); same forms as --from.
    #[arg(long, value_name = "SOURCE")]
    pub(crate) to: String,
    /// Name of the `from` environment in messages [default: the last path component].
    #[arg(long)]
    pub(crate) from_name: Option<String>,
    /// Name of the `to` environment in messages [default: the last path component].
    #[arg(long)]
    pub(crate) to_name: Option<String>,
    /// Config file (`compare.mapping`, `compare.expected`, ignore and severity rules).
    #[arg(long, short)]
    pub(crate) config: Option<PathBuf>,
    /// Also show expected divergences (marked `expected`; never counted for --fail-on).
    #[arg(long)]
    pub(crate) show_expected: bool,
    #[command(flatten)]
    pub(crate) output: OutputArgs,
    /// Do not report objects that exist only in `to`.
    #[arg(long)]
    pub(crate) no_unmanaged: bool,
    /// Accept a side without any object (by default an error: exit 2 naming its paths).
    #[arg(long)]
    pub(crate) allow_empty: bool,
    #[command(flatten)]
    pub(crate) inputs: InputArgs,
}

/// How to read a cluster (with `--live cluster:CONTEXT` and `snapshot`).
#[derive(Args, Debug, Clone)]
pub(crate) struct ClusterArgs {
    /// Kubeconfig file [default: KUBECONFIG, else ~/.kube/config].
    #[arg(long, value_name = "FILE")]
    pub(crate) kubeconfig: Option<PathBuf>,
    /// Namespaces to read, by name or glob (repeatable) [default: all].
    #[arg(long = "namespace", short = 'n', value_name = "NS")]
    pub(crate) namespaces: Vec<String>,
    /// Namespaces to read, by label selector (`team=shop`).
    #[arg(long, value_name = "SELECTOR")]
    pub(crate) namespace_selector: Option<String>,
    /// Resource types to read: `Kind`, `Kind.group`, globs (repeatable) [default: all listable].
    #[arg(long = "include-kind", value_name = "KIND")]
    pub(crate) include_kinds: Vec<String>,
    /// Resource types to skip, on top of the default exclusions (events, endpoints, leases…).
    #[arg(long = "exclude-kind", value_name = "KIND")]
    pub(crate) exclude_kinds: Vec<String>,
    /// Do not read cluster-scoped types (Namespaces, ClusterRoles…).
    #[arg(long)]
    pub(crate) no_cluster_scoped: bool,
    /// Timeout of one API request, in seconds.
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    pub(crate) request_timeout: u64,
}

#[derive(Args, Debug)]
pub(crate) struct SnapshotArgs {
    /// Context in the kubeconfig [default: its current context].
    #[arg(long)]
    pub(crate) context: Option<String>,
    /// Use the pod's service account instead of a kubeconfig.
    #[arg(long, conflicts_with = "context")]
    pub(crate) in_cluster: bool,
    /// Output directory (created; files in it are overwritten).
    #[arg(long, short, value_name = "DIR")]
    pub(crate) output: PathBuf,
    #[command(flatten)]
    pub(crate) cluster: ClusterArgs,
}

#[derive(Args, Debug)]
pub(crate) struct DiscoverArgs {
    /// The cluster: `cluster:CONTEXT` (a context of --kubeconfig or of the default
    /// kubeconfig), `cluster:` (the current context), `in-cluster` (the pod's service account).
    #[arg(long, value_name = "cluster:CONTEXT")]
    pub(crate) live: String,
    /// Kubeconfig file [default: KUBECONFIG, else ~/.kube/config].
    #[arg(long, value_name = "FILE")]
    pub(crate) kubeconfig: Option<PathBuf>,
    /// Timeout of one API request, in seconds.
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    pub(crate) request_timeout: u64,
}
