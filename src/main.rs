//! The `envdrift` command line.
//!
//! Exit status (all commands that compare): 0 no drift at or above `--fail-on`,
//! 1 drift at or above `--fail-on`, 2 an input or usage error (a file that could not be
//! read or parsed, a bad config). With input errors the rest is still compared and shown.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};

use envdrift::config::Config;
use envdrift::diff::DiffResult;
use envdrift::model::{Severity, Snapshot};
use envdrift::report::{self, Mode, Report, Side};
use envdrift::source::dump::{LoadOptions, collect_files, load_paths};

/// Finds environment drift in Kubernetes: what differs between Git and the cluster,
/// classified by category and severity, attributed to whoever changed it, with a patch
/// verified to undo it.
#[derive(Parser, Debug)]
#[command(name = "envdrift", version, about, max_term_width = 100)]
struct Cli {
    /// Log level (error, warn, info, debug, trace) or a tracing filter. Also RUST_LOG.
    #[arg(long, global = true, default_value = "warn")]
    log_level: String,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Compare desired manifests (files or directories) with live objects (a dump).
    ///
    /// Every field present in desired must match live; fields only live are drift unless
    /// the server defaults them, a controller owns them, or an ignore rule matches.
    Diff(Box<DiffArgs>),
    /// Read a cluster and write its objects as a dump directory that `diff --live DIR` reads.
    ///
    /// Secret values are stored as SHA-256 hashes; kubeconfig credentials never reach the dump.
    Snapshot(SnapshotArgs),
    /// Compare two environments (staging vs production): every difference nobody planned.
    ///
    /// Both sides are complete live objects: a field on one side only is a difference after
    /// normalization and defaults. `from` objects are mapped into `to`'s namespaces, names and
    /// values first (config `compare.mapping`); expected divergences (replicas, resources,
    /// HPA bounds, … and config `compare.expected`) are shown only with --show-expected.
    Compare(CompareArgs),
    /// Run the daemon: scheduled scans and comparisons, drift lifecycle, alerts, reports.
    ///
    /// With --once: one full cycle (every scan and comparison, due reports, alert delivery),
    /// then exit with the same codes as `diff`.
    Daemon(DaemonArgs),
    /// Scan one environment of a config file now and print its drift (no state is kept).
    Scan(ScanArgs),
    /// Render the drift report from the daemon's store, or send it (--send).
    Report(ReportArgs),
    /// Print the rendered desired objects of a source as YAML (multi-document), each
    /// preceded by a comment naming its file, line and commit.
    Render(RenderArgs),
    /// Validate a config file and print every problem with its key path.
    #[command(subcommand)]
    Config(ConfigCmd),
    /// Developer tools (benchmarks, synthetic environments).
    #[command(subcommand, hide = true)]
    Dev(DevCmd),
}

#[derive(Subcommand, Debug)]
enum ConfigCmd {
    /// Check a config file.
    Check {
        /// The config file.
        file: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
enum DevCmd {
    /// Print the built-in severity tables as Markdown (embedded in the README).
    RulesTable,
    /// Parse both sides only (the baseline the diff benchmark is measured against).
    Parse {
        #[arg(long, required = true, num_args = 1..)]
        desired: Vec<PathBuf>,
        #[arg(long, required = true, num_args = 1..)]
        live: Vec<PathBuf>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
enum Format {
    Table,
    Json,
    Markdown,
}

/// When to exit 1.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
enum FailOn {
    Any,
    Info,
    Low,
    Medium,
    High,
    Critical,
    Never,
}

impl FailOn {
    fn threshold(self) -> Option<Severity> {
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

#[derive(Args, Debug)]
struct DiffArgs {
    /// Desired state: files or directories (recursive) of YAML/JSON manifests, or one Git
    /// source `git:REPO@REF[:PATH]` (see README: Git sources).
    #[arg(long, required = true, num_args = 1.., value_name = "PATH|git:REPO@REF[:PATH]")]
    desired: Vec<String>,
    /// Live state: files or directories of `kubectl get -o yaml` output or envdrift dumps;
    /// or a cluster: `cluster:CONTEXT` (a context of --kubeconfig or of the default
    /// kubeconfig), `cluster:` (the current context), `in-cluster` (the pod's service account).
    #[arg(long, required = true, num_args = 1.., value_name = "PATH|cluster:CONTEXT")]
    live: Vec<PathBuf>,
    #[command(flatten)]
    cluster: ClusterArgs,
    /// Config file: ignore rules, severity rules, manager classes, unmanaged scope.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Namespace for namespaced desired objects that have none [default: default].
    #[arg(long)]
    default_namespace: Option<String>,
    /// A GitOps applier's field-manager name (repeatable); adds to the configured list.
    #[arg(long = "gitops-manager", value_name = "NAME")]
    gitops_managers: Vec<String>,
    /// Output format [default: table on a terminal, else json].
    #[arg(long, short, value_enum)]
    format: Option<Format>,
    /// Exit 1 when a drift at or above this severity is found.
    #[arg(long, value_enum, default_value_t = FailOn::Any)]
    fail_on: FailOn,
    /// Colors in the table: auto (when stdout is a terminal), always, never.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    color: ColorChoice,
    /// Do not report live objects that are missing from desired.
    #[arg(long)]
    no_unmanaged: bool,
    #[command(flatten)]
    git: GitArgs,
}

#[derive(Args, Debug)]
struct RenderArgs {
    /// The source: `git:REPO@REF[:PATH]`, or files/directories of manifests.
    #[arg(long, required_unless_present = "env", num_args = 1.., value_name = "PATH|git:REPO@REF[:PATH]")]
    desired: Vec<String>,
    /// A config file: render the desired source of --env.
    #[arg(long, short, requires = "env")]
    config: Option<PathBuf>,
    /// The environment of --config whose desired state to render.
    #[arg(long, requires = "config", conflicts_with = "desired")]
    env: Option<String>,
    /// Namespace for namespaced objects that have none [default: default].
    #[arg(long)]
    default_namespace: Option<String>,
    #[command(flatten)]
    git: GitArgs,
}

/// Options of Git sources and renderers.
#[derive(Args, Debug, Clone)]
struct GitArgs {
    /// Renderer: plain, kustomize, helm [default: detected: kustomization.yaml → kustomize,
    /// Chart.yaml → helm, else plain].
    #[arg(long, value_name = "NAME")]
    renderer: Option<String>,
    /// Directory of cached bare clones [default: $XDG_CACHE_HOME/envdrift/git].
    #[arg(long, value_name = "DIR")]
    git_cache: Option<PathBuf>,
    /// File holding an https token for the repository.
    #[arg(long, value_name = "FILE")]
    git_token_file: Option<PathBuf>,
    /// Environment variable holding an https token.
    #[arg(long, value_name = "VAR")]
    git_token_env: Option<String>,
    /// User name sent with the token [default: x-access-token].
    #[arg(long, value_name = "NAME")]
    git_username: Option<String>,
    /// Private key file for ssh repositories.
    #[arg(long, value_name = "FILE")]
    git_ssh_key: Option<PathBuf>,
    /// Kustomize program: auto (kustomize if on PATH, else kubectl kustomize), kustomize, kubectl.
    #[arg(long, value_name = "PROGRAM", default_value = "auto")]
    kustomize_command: String,
    /// Helm release name [default: the chart directory's name].
    #[arg(long, value_name = "NAME")]
    helm_release: Option<String>,
    /// Helm --namespace.
    #[arg(long, value_name = "NS")]
    helm_namespace: Option<String>,
    /// Helm values file, relative to the chart directory (repeatable, in order).
    #[arg(long = "helm-values", value_name = "FILE")]
    helm_values: Vec<String>,
    /// Helm --set value (repeatable).
    #[arg(long = "helm-set", value_name = "KEY=VALUE")]
    helm_set: Vec<String>,
    /// Longest a renderer may run, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 120)]
    render_timeout: u64,
}

impl GitArgs {
    fn options(
        &self,
    ) -> Result<(
        envdrift::source::git::GitAuth,
        envdrift::source::git::SyncOptions,
        envdrift::source::render::RenderOptions,
    )> {
        use envdrift::source::render::{HelmOptions, KustomizeCommand, RenderOptions};
        let renderer = match &self.renderer {
            Some(r) => Some(r.parse().map_err(anyhow::Error::msg)?),
            None => None,
        };
        let kustomize = match self.kustomize_command.as_str() {
            "auto" => KustomizeCommand::Auto,
            "kustomize" => KustomizeCommand::Kustomize,
            "kubectl" => KustomizeCommand::Kubectl,
            o => anyhow::bail!(
                "unknown --kustomize-command `{o}` (choose from: auto, kustomize, kubectl)"
            ),
        };
        let auth = envdrift::source::git::GitAuth {
            token_file: self.git_token_file.clone(),
            token_env: self.git_token_env.clone(),
            username: self.git_username.clone(),
            ssh_key: self.git_ssh_key.clone(),
        };
        let mut sync = envdrift::source::git::SyncOptions::default();
        if let Some(d) = &self.git_cache {
            sync.cache_dir = d.clone();
        }
        let render = RenderOptions {
            renderer,
            kustomize,
            helm: HelmOptions {
                release: self.helm_release.clone(),
                namespace: self.helm_namespace.clone(),
                values: self.helm_values.clone(),
                set: self.helm_set.clone(),
            },
            timeout: std::time::Duration::from_secs(self.render_timeout.max(1)),
            extra_path: Vec::new(),
        };
        Ok((auth, sync, render))
    }
}

/// A desired side given on the command line.
enum DesiredArg {
    Paths(Vec<PathBuf>),
    Git(envdrift::source::git::GitSpec),
}

fn desired_arg(values: &[String]) -> Result<DesiredArg> {
    let git: Vec<&String> = values.iter().filter(|v| v.starts_with("git:")).collect();
    match git.as_slice() {
        [] => Ok(DesiredArg::Paths(
            values.iter().map(PathBuf::from).collect(),
        )),
        [one] if values.len() == 1 => {
            Ok(DesiredArg::Git(envdrift::source::git::GitSpec::parse(one)?))
        }
        _ => anyhow::bail!(
            "--desired takes either one git: source or files and directories, not both"
        ),
    }
}

/// Loads a Git source; prints a stale warning on stderr.
fn load_git_side(
    spec: &envdrift::source::git::GitSpec,
    git: &GitArgs,
    load: &LoadOptions,
) -> Result<envdrift::source::render::GitLoad> {
    let (auth, sync, render) = git.options()?;
    let g = envdrift::source::render::load_git(spec, &auth, &sync, &render, load)?;
    tracing::info!(
        source = %spec.describe(),
        commit = %g.commit,
        renderer = g.renderer.as_str(),
        objects = g.snapshot.objects.len(),
        fetch_ms = g.fetch_time.as_millis() as u64,
        render_ms = g.render_time.as_millis() as u64,
        cloned = g.cloned,
        "loaded git source"
    );
    if let Some(reason) = &g.stale {
        eprintln!("envdrift: warning: {}: STALE: {reason}", spec.describe());
    }
    Ok(g)
}

#[derive(Args, Debug)]
struct DaemonArgs {
    /// The config file (see config/envdrift.example.yaml).
    #[arg(long, short)]
    config: PathBuf,
    /// Run one full cycle and exit (0 no drift, 1 drift at or above --fail-on, 2 errors).
    #[arg(long)]
    once: bool,
    /// With --once: exit 1 when open drift at or above this severity exists.
    #[arg(long, value_enum, default_value_t = FailOn::Any)]
    fail_on: FailOn,
}

#[derive(Args, Debug)]
struct ScanArgs {
    /// The config file.
    #[arg(long, short)]
    config: PathBuf,
    /// The environment to scan.
    #[arg(long)]
    env: String,
    /// Output format [default: table on a terminal, else json].
    #[arg(long, short, value_enum)]
    format: Option<Format>,
    /// Exit 1 when a drift at or above this severity is found.
    #[arg(long, value_enum, default_value_t = FailOn::Any)]
    fail_on: FailOn,
    /// Colors in the table: auto, always, never.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    color: ColorChoice,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
enum ReportFormat {
    Text,
    Markdown,
    Json,
}

#[derive(Args, Debug)]
struct ReportArgs {
    /// The config file.
    #[arg(long, short)]
    config: PathBuf,
    /// The configured report to render or send [default: all targets since yesterday; with
    /// --send: every configured report].
    #[arg(long)]
    name: Option<String>,
    /// Queue the report for its sinks and deliver it now.
    #[arg(long)]
    send: bool,
    #[arg(long, short, value_enum, default_value_t = ReportFormat::Text)]
    format: ReportFormat,
}

#[derive(Args, Debug)]
struct CompareArgs {
    /// The reference environment: `dump:PATH` or a file/directory of `kubectl get -o yaml`
    /// dumps (`live:ENV` and `git:ENV` need the environments config, not available yet).
    #[arg(long, value_name = "SOURCE")]
    from: String,
    /// The environment checked against it (usually production); same forms as --from.
    #[arg(long, value_name = "SOURCE")]
    to: String,
    /// Name of the `from` environment in messages [default: the last path component].
    #[arg(long)]
    from_name: Option<String>,
    /// Name of the `to` environment in messages [default: the last path component].
    #[arg(long)]
    to_name: Option<String>,
    /// Config file (`compare.mapping`, `compare.expected`, ignore and severity rules).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Also show expected divergences (marked `expected`; never counted for --fail-on).
    #[arg(long)]
    show_expected: bool,
    /// Output format [default: table on a terminal, else json].
    #[arg(long, short, value_enum)]
    format: Option<Format>,
    /// Exit 1 when a difference at or above this severity is found.
    #[arg(long, value_enum, default_value_t = FailOn::Any)]
    fail_on: FailOn,
    /// Colors in the table: auto, always, never.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    color: ColorChoice,
    /// Do not report objects that exist only in `to`.
    #[arg(long)]
    no_unmanaged: bool,
}

/// How to read a cluster (with `--live cluster:CONTEXT` and `snapshot`).
#[derive(Args, Debug, Clone)]
struct ClusterArgs {
    /// Kubeconfig file [default: KUBECONFIG, else ~/.kube/config].
    #[arg(long, value_name = "FILE")]
    kubeconfig: Option<PathBuf>,
    /// Namespaces to read, by name or glob (repeatable) [default: all].
    #[arg(long = "namespace", short = 'n', value_name = "NS")]
    namespaces: Vec<String>,
    /// Namespaces to read, by label selector (`team=shop`).
    #[arg(long, value_name = "SELECTOR")]
    namespace_selector: Option<String>,
    /// Resource types to read: `Kind`, `Kind.group`, globs (repeatable) [default: all listable].
    #[arg(long = "include-kind", value_name = "KIND")]
    include_kinds: Vec<String>,
    /// Resource types to skip, on top of the default exclusions (events, endpoints, leases…).
    #[arg(long = "exclude-kind", value_name = "KIND")]
    exclude_kinds: Vec<String>,
    /// Do not read cluster-scoped types (Namespaces, ClusterRoles…).
    #[arg(long)]
    no_cluster_scoped: bool,
    /// Timeout of one API request, in seconds.
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    request_timeout: u64,
}

impl ClusterArgs {
    fn options(&self, env: &str) -> envdrift::source::kube::KubeOptions {
        envdrift::source::kube::KubeOptions {
            env: env.to_string(),
            namespaces: self.namespaces.clone(),
            namespace_selector: self.namespace_selector.clone(),
            include: self.include_kinds.clone(),
            exclude: self.exclude_kinds.clone(),
            cluster_scoped: !self.no_cluster_scoped,
            request_timeout: std::time::Duration::from_secs(self.request_timeout.max(1)),
            ..Default::default()
        }
    }

    fn target(
        &self,
        context: Option<String>,
        in_cluster: bool,
    ) -> envdrift::source::kube::ClusterTarget {
        envdrift::source::kube::ClusterTarget {
            kubeconfig: self.kubeconfig.clone(),
            context,
            in_cluster,
        }
    }
}

#[derive(Args, Debug)]
struct SnapshotArgs {
    /// Context in the kubeconfig [default: its current context].
    #[arg(long)]
    context: Option<String>,
    /// Use the pod's service account instead of a kubeconfig.
    #[arg(long, conflicts_with = "context")]
    in_cluster: bool,
    /// Output directory (created; files in it are overwritten).
    #[arg(long, short, value_name = "DIR")]
    output: PathBuf,
    #[command(flatten)]
    cluster: ClusterArgs,
}

/// A `--live` value that names a cluster: `Some((context, in_cluster))`.
fn cluster_spec(live: &[PathBuf]) -> Option<(Option<String>, bool)> {
    let first = live.first()?.to_str()?;
    if first == "in-cluster" {
        return Some((None, true));
    }
    let ctx = first.strip_prefix("cluster:")?;
    Some(((!ctx.is_empty()).then(|| ctx.to_string()), false))
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
enum ColorChoice {
    Auto,
    Always,
    Never,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // One TLS crypto provider for the whole process (https Git remotes): ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    init_logging(&cli.log_level, cli.log_format);
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            if is_broken_pipe(&e) {
                return ExitCode::SUCCESS;
            }
            eprintln!("envdrift: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn init_logging(level: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

fn run(cli: Cli) -> Result<u8> {
    match cli.command {
        Command::Diff(args) => cmd_diff(*args),
        Command::Snapshot(args) => cmd_snapshot(args),
        Command::Compare(args) => cmd_compare(args),
        Command::Daemon(args) => cmd_daemon(args),
        Command::Scan(args) => cmd_scan(args),
        Command::Report(args) => cmd_report(args),
        Command::Render(args) => cmd_render(args),
        Command::Config(ConfigCmd::Check { file }) => cmd_config_check(&file),
        Command::Dev(DevCmd::RulesTable) => {
            print!("{}", envdrift::classify::rules_markdown());
            Ok(0)
        }
        Command::Dev(DevCmd::Parse { desired, live }) => {
            let d = load_side(&desired, "desired", Some("default".into()), &[]);
            let l = load_side(&live, "live", None, &[]);
            println!(
                "parsed {} desired and {} live objects ({} errors)",
                d.objects.len(),
                l.objects.len(),
                d.errors.len() + l.errors.len()
            );
            Ok(0)
        }
    }
}

fn cmd_config_check(file: &Path) -> Result<u8> {
    match Config::load(file) {
        Ok(cfg) => {
            println!(
                "{}: ok ({} ignore rules, {} severity rules)",
                file.display(),
                cfg.ignore.len(),
                cfg.severity_rules.len()
            );
            Ok(0)
        }
        Err(problems) => {
            for p in &problems {
                eprintln!("{p}");
            }
            eprintln!("{}: {} problem(s)", file.display(), problems.len());
            Ok(2)
        }
    }
}

fn progress(files: u64) -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() || files < 20 {
        return None;
    }
    let pb = ProgressBar::new(files);
    if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} [{bar:30}] {pos}/{len} files")
    {
        pb.set_style(style.progress_chars("=> "));
    }
    Some(pb)
}

fn load_side(
    paths: &[PathBuf],
    side: &str,
    default_ns: Option<String>,
    cluster_scoped: &[String],
) -> Snapshot {
    let opts = LoadOptions {
        side: side.to_string(),
        default_namespace: default_ns,
        cluster_scoped_kinds: cluster_scoped.to_vec(),
        drop_status: true,
        commit: None,
    };
    let mut scratch = Vec::new();
    let count = collect_files(paths, side, &mut scratch).len() as u64;
    let pb = progress(count);
    if let Some(pb) = &pb {
        pb.set_message(format!("reading {side}"));
    }
    let snap = load_paths(paths, &opts, &|_| {
        if let Some(pb) = &pb {
            pb.inc(1);
        }
    });
    if let Some(pb) = pb {
        pb.finish_and_clear();
    }
    tracing::info!(
        side,
        objects = snap.objects.len(),
        errors = snap.errors.len(),
        "loaded"
    );
    snap
}

fn cmd_diff(args: DiffArgs) -> Result<u8> {
    let Some(config) = optional_config(args.config.as_deref()) else {
        return Ok(2);
    };
    let mut opts = config
        .engine_options(("desired", "live"))
        .map_err(anyhow::Error::msg)
        .context("config")?;
    opts.classifier
        .managers
        .gitops
        .extend(args.gitops_managers.iter().cloned());
    if args.no_unmanaged {
        opts.unmanaged.enabled = false;
    }
    let default_ns = args
        .default_namespace
        .clone()
        .or_else(|| config.default_namespace.clone())
        .unwrap_or_else(|| "default".to_string());
    let load = |side: &str, ns: Option<String>| LoadOptions {
        side: side.to_string(),
        default_namespace: ns,
        cluster_scoped_kinds: config.cluster_scoped_kinds.clone(),
        drop_status: true,
        commit: None,
    };
    let desired = desired_arg(&args.desired)?;
    let git_load = match &desired {
        DesiredArg::Git(spec) => Some(load_git_side(
            spec,
            &args.git,
            &load("desired", Some(default_ns.clone())),
        )?),
        DesiredArg::Paths(_) => None,
    };
    if let Some((context, in_cluster)) = cluster_spec(&args.live) {
        if args.live.len() > 1 {
            anyhow::bail!("--live: a cluster cannot be combined with other live paths");
        }
        let (desired_snap, git_load) = match (&desired, git_load) {
            (DesiredArg::Git(_), Some(mut g)) => (std::mem::take(&mut g.snapshot), Some(g)),
            (DesiredArg::Paths(p), _) => (
                load_side(
                    p,
                    "desired",
                    Some(default_ns.clone()),
                    &config.cluster_scoped_kinds,
                ),
                None,
            ),
            (DesiredArg::Git(_), None) => anyhow::bail!("internal: git source not loaded"),
        };
        let target = args.cluster.target(context, in_cluster);
        let live =
            envdrift::source::kube::snapshot_blocking(&target, &args.cluster.options("live"))
                .context("reading the cluster")?;
        let mut result = envdrift::diff::compare(&desired_snap, &live.snapshot, &opts);
        if let Some(g) = &git_load {
            let sources = envdrift::source::adopt::Sources {
                files: &g.files,
                renderer: g.renderer,
                trace_order: &g.trace_order,
                set_values: &g.set_values,
            };
            envdrift::source::adopt::attach(&mut result, &sources);
        }
        let rep = build_report(Mode::DesiredVsLive, &desired_snap, &live.snapshot, &result);
        emit(&rep, args.format, args.color)?;
        return Ok(exit_code(&rep, args.fail_on));
    }
    let mut scratch = Vec::new();
    let mut files = collect_files(&args.live, "live", &mut scratch).len();
    if let DesiredArg::Paths(p) = &desired {
        files += collect_files(p, "desired", &mut scratch).len();
    }
    let pb = progress(files as u64);
    if let Some(pb) = &pb {
        pb.set_message("comparing");
    }
    let tick = |_: &Path| {
        if let Some(pb) = &pb {
            pb.inc(1);
        }
    };
    let out = match (&desired, git_load) {
        (DesiredArg::Git(_), Some(mut g)) => {
            let snapshot = std::mem::take(&mut g.snapshot);
            let mut out = envdrift::pipeline::diff_snapshot(
                snapshot,
                &args.live,
                &load("live", None),
                &opts,
                &tick,
            );
            let sources = envdrift::source::adopt::Sources {
                files: &g.files,
                renderer: g.renderer,
                trace_order: &g.trace_order,
                set_values: &g.set_values,
            };
            envdrift::source::adopt::attach(&mut out.result, &sources);
            out
        }
        (DesiredArg::Paths(paths), _) => envdrift::pipeline::diff_paths(
            paths,
            &load("desired", Some(default_ns)),
            &args.live,
            &load("live", None),
            &opts,
            &tick,
        ),
        (DesiredArg::Git(_), None) => anyhow::bail!("internal: git source not loaded"),
    };
    if let Some(pb) = pb {
        pb.finish_and_clear();
    }
    let mut rep = build_report(
        Mode::DesiredVsLive,
        &out.desired,
        &out.live_meta,
        &out.result,
    );
    rep.right.objects = out.live_objects;
    emit(&rep, args.format, args.color)?;
    Ok(exit_code(&rep, args.fail_on))
}

/// The config of `--config` when given (else the defaults); `None` when it is invalid
/// (its problems were printed).
fn optional_config(path: Option<&Path>) -> Option<Config> {
    match path {
        Some(p) => load_config(p),
        None => Some(Config::default()),
    }
}

/// Loads a config file, printing every problem; `None` when it is invalid.
fn load_config(path: &Path) -> Option<Config> {
    match Config::load(path) {
        Ok(c) => Some(c),
        Err(problems) => {
            for p in &problems {
                eprintln!("envdrift: config: {p}");
            }
            None
        }
    }
}

fn config_base(path: &Path) -> PathBuf {
    path.parent()
        .map(Path::to_path_buf)
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from("."))
}

fn open_daemon(path: &Path, cfg: Config) -> Result<std::sync::Arc<envdrift::daemon::Daemon>> {
    let base = config_base(path);
    let data_dir = base.join(
        cfg.data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(".envdrift")),
    );
    let store = envdrift::store::Store::open(&data_dir.join("envdrift.db"))?;
    let deliver = std::sync::Arc::new(
        envdrift::daemon::SinkSet::from_config(&cfg.alerts, &base).map_err(anyhow::Error::msg)?,
    );
    let daemon = envdrift::daemon::Daemon::new(cfg, base, std::sync::Arc::new(store), deliver)?;
    Ok(std::sync::Arc::new(daemon))
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn cmd_daemon(args: DaemonArgs) -> Result<u8> {
    let Some(cfg) = load_config(&args.config) else {
        return Ok(2);
    };
    let listen = cfg
        .listen
        .clone()
        .unwrap_or_else(|| "127.0.0.1:8080".to_string());
    let api_cfg = cfg.api.clone();
    let addr: std::net::SocketAddr = listen
        .parse()
        .with_context(|| format!("listen: `{listen}` is not an address:port"))?;
    if !args.once && !addr.ip().is_loopback() && api_cfg.tokens.is_empty() {
        anyhow::bail!("{}", envdrift::api::ApiError::OpenOnNetwork { addr });
    }
    let base = config_base(&args.config);
    let daemon = open_daemon(&args.config, cfg)?;
    let rt = runtime()?;
    rt.block_on(async move {
        if args.once {
            return Ok(daemon.run_once(args.fail_on.threshold()).await?);
        }
        let state = std::sync::Arc::new(envdrift::api::ApiState::new(std::sync::Arc::clone(&daemon), &api_cfg, &base)?);
        let (tx, rx) = tokio::sync::watch::channel(false);
        let api_rx = rx.clone();
        let api = tokio::spawn(async move { envdrift::api::serve(state, &api_cfg, addr, &base, api_rx, None).await });
        tokio::spawn(async move {
            wait_for_signal().await;
            let _ = tx.send(true);
        });
        tracing::info!(targets = daemon.targets().len(), store = %daemon.store.path().display(), api = %addr, "daemon started");
        daemon.run(rx).await;
        match api.await {
            Ok(Err(e)) => Err(anyhow::Error::new(e)),
            _ => Ok(0),
        }
    })
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn cmd_scan(args: ScanArgs) -> Result<u8> {
    let Some(cfg) = load_config(&args.config) else {
        return Ok(2);
    };
    let Some(env) = cfg.environments.get(&args.env) else {
        let known: Vec<&str> = cfg.environments.keys().map(String::as_str).collect();
        anyhow::bail!(
            "--env {}: not in {} (configured: {})",
            args.env,
            args.config.display(),
            known.join(", ")
        );
    };
    let base = config_base(&args.config);
    let out = envdrift::daemon::scan::scan_environment(&cfg, &base, &args.env, env, None);
    let Some(result) = out.result else {
        eprintln!("envdrift: scan failed: {}", out.error.unwrap_or_default());
        return Ok(2);
    };
    let left = Snapshot {
        source: Some(envdrift::model::SourceRef {
            env: "desired".into(),
            description: env.desired.describe(),
            commit: out.revision.clone(),
            stale: None,
        }),
        ..Snapshot::default()
    };
    let right = Snapshot {
        source: Some(envdrift::model::SourceRef {
            env: args.env.clone(),
            description: env.live.describe(),
            commit: None,
            stale: None,
        }),
        ..Snapshot::default()
    };
    let mut rep = build_report(Mode::DesiredVsLive, &left, &right, &result);
    rep.right.objects = out.objects;
    if let Some(e) = &out.error {
        rep.errors.push(envdrift::model::InputError {
            side: args.env.clone(),
            source: env.live.describe(),
            line: None,
            column: None,
            message: e.clone(),
        });
    }
    emit(&rep, args.format, args.color)?;
    Ok(exit_code(&rep, args.fail_on))
}

fn cmd_report(args: ReportArgs) -> Result<u8> {
    let Some(cfg) = load_config(&args.config) else {
        return Ok(2);
    };
    let selected: Vec<envdrift::config::ReportConfig> = match &args.name {
        Some(n) => match cfg.reports.iter().find(|r| &r.name == n) {
            Some(r) => vec![r.clone()],
            None => anyhow::bail!("--name {n}: no such report in {}", args.config.display()),
        },
        None => cfg.reports.clone(),
    };
    let daemon = open_daemon(&args.config, cfg)?;
    if args.send {
        if selected.is_empty() {
            anyhow::bail!("--send: {} configures no reports", args.config.display());
        }
        let rt = runtime()?;
        return rt.block_on(async move {
            for r in &selected {
                let n = daemon.send_report(r)?;
                println!("report {}: queued for {n} sink(s)", r.name);
            }
            daemon
                .drain_outbox(std::time::Duration::from_secs(60))
                .await?;
            Ok(0)
        });
    }
    let (title, sections) =
        daemon.build_report(selected.first().filter(|_| args.name.is_some()))?;
    let text = match args.format {
        ReportFormat::Text => envdrift::daemon::report::render_text(&title, &sections),
        ReportFormat::Markdown => envdrift::daemon::report::render_markdown(&title, &sections),
        ReportFormat::Json => {
            let mut s = serde_json::to_string_pretty(
                &serde_json::json!({"title": title, "sections": sections}),
            )?;
            s.push('\n');
            s
        }
    };
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .context("writing the report")?;
    Ok(0)
}

/// A `--from`/`--to` source.
enum CmpSource {
    Dump(PathBuf),
    /// An environment of --config: its live side, or (`git:`) its desired side.
    Env {
        name: String,
        desired: bool,
    },
}

fn env_source(arg: &str, flag: &str) -> Result<CmpSource> {
    if let Some(p) = arg.strip_prefix("dump:") {
        return Ok(CmpSource::Dump(PathBuf::from(p)));
    }
    if let Some(e) = arg.strip_prefix("live:") {
        return Ok(CmpSource::Env {
            name: e.to_string(),
            desired: false,
        });
    }
    if let Some(e) = arg.strip_prefix("git:") {
        return Ok(CmpSource::Env {
            name: e.to_string(),
            desired: true,
        });
    }
    let p = PathBuf::from(arg);
    if !p.exists() {
        anyhow::bail!(
            "{flag} {arg}: no such file or directory (sources: dump:PATH, a path, live:ENV or git:ENV with --config)"
        );
    }
    Ok(CmpSource::Dump(p))
}

fn env_name(path: &Path) -> String {
    path.file_name()
        .and_then(|n| n.to_str())
        .map(|n| {
            n.trim_end_matches(".yaml")
                .trim_end_matches(".json")
                .to_string()
        })
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| path.display().to_string())
}

fn cmd_compare(args: CompareArgs) -> Result<u8> {
    let Some(config) = optional_config(args.config.as_deref()) else {
        return Ok(2);
    };
    let from = env_source(&args.from, "--from")?;
    let to = env_source(&args.to, "--to")?;
    let name_of = |s: &CmpSource| match s {
        CmpSource::Dump(p) => env_name(p),
        CmpSource::Env {
            name,
            desired: true,
        } => format!("git:{name}"),
        CmpSource::Env { name, .. } => name.clone(),
    };
    let from_name = args.from_name.clone().unwrap_or_else(|| name_of(&from));
    let to_name = args.to_name.clone().unwrap_or_else(|| name_of(&to));
    let mut opts = config
        .compare_options(&from_name, &to_name)
        .map_err(anyhow::Error::msg)
        .context("config")?;
    opts.show_expected = args.show_expected;
    if args.no_unmanaged {
        opts.unmanaged.enabled = false;
    }
    let load = |side: &str| LoadOptions {
        side: side.to_string(),
        default_namespace: None,
        cluster_scoped_kinds: config.cluster_scoped_kinds.clone(),
        drop_status: true,
        commit: None,
    };
    let out = match (&from, &to) {
        (CmpSource::Dump(f), CmpSource::Dump(t)) => envdrift::pipeline::compare_paths(
            std::slice::from_ref(f),
            &load(&from_name),
            std::slice::from_ref(t),
            &load(&to_name),
            &opts,
            &|_| {},
        ),
        _ => {
            let Some(cfg_path) = &args.config else {
                anyhow::bail!(
                    "live:ENV and git:ENV sources name environments of a config file: add --config FILE"
                );
            };
            let base = config_base(cfg_path);
            let read = |s: &CmpSource, label: &str| -> Result<Snapshot> {
                match s {
                    CmpSource::Dump(p) => {
                        Ok(load_paths(std::slice::from_ref(p), &load(label), &|_| {}))
                    }
                    CmpSource::Env { name, desired } => {
                        let Some(e) = config.environments.get(name) else {
                            let known: Vec<&str> =
                                config.environments.keys().map(String::as_str).collect();
                            anyhow::bail!(
                                "{label}: unknown environment `{name}` in {} (configured: {})",
                                cfg_path.display(),
                                known.join(", ")
                            );
                        };
                        let spec = if *desired { &e.desired } else { &e.live };
                        envdrift::daemon::scan::load(spec, &base, label, &config)
                            .map_err(anyhow::Error::msg)
                    }
                }
            };
            let mut from_snap = read(&from, &from_name)?;
            let to_snap = read(&to, &to_name)?;
            if let Some(m) = &opts.mapping {
                from_snap = m.map_snapshot(from_snap, &from_name);
            }
            let result = envdrift::diff::compare(&from_snap, &to_snap, &opts);
            let to_objects = to_snap.objects.len();
            envdrift::pipeline::EnvDiff {
                result,
                from: from_snap,
                to_meta: to_snap,
                to_objects,
            }
        }
    };
    let mut rep = build_report(Mode::EnvVsEnv, &out.from, &out.to_meta, &out.result);
    rep.left.name = from_name;
    rep.right.name = to_name;
    rep.right.objects = out.to_objects;
    emit(&rep, args.format, args.color)?;
    Ok(exit_code(&rep, args.fail_on))
}

fn cmd_render(args: RenderArgs) -> Result<u8> {
    let opts = LoadOptions {
        side: "desired".into(),
        default_namespace: Some(
            args.default_namespace
                .clone()
                .unwrap_or_else(|| "default".into()),
        ),
        cluster_scoped_kinds: Vec::new(),
        drop_status: true,
        commit: None,
    };
    let snap = if let (Some(cfg_path), Some(env)) = (&args.config, &args.env) {
        let Some(cfg) = load_config(cfg_path) else {
            return Ok(2);
        };
        let Some(e) = cfg.environments.get(env) else {
            let known: Vec<&str> = cfg.environments.keys().map(String::as_str).collect();
            anyhow::bail!(
                "--env {env}: not in {} (configured: {})",
                cfg_path.display(),
                known.join(", ")
            );
        };
        envdrift::daemon::scan::load(&e.desired, &config_base(cfg_path), "desired", &cfg)
            .map_err(anyhow::Error::msg)?
    } else {
        match desired_arg(&args.desired)? {
            DesiredArg::Git(spec) => load_git_side(&spec, &args.git, &opts)?.snapshot,
            DesiredArg::Paths(p) => load_paths(&p, &opts, &|_| {}),
        }
    };
    let mut text = String::new();
    for obj in snap.objects.values() {
        text.push_str("---\n");
        text.push_str(&format!("# {}\n", obj.origin));
        let yaml = serde_saphyr::to_string(&obj.value).context("rendering YAML")?;
        text.push_str(&yaml);
        if !yaml.ends_with('\n') {
            text.push('\n');
        }
    }
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes()).context("writing objects")?;
    out.flush().context("writing objects")?;
    for e in &snap.errors {
        eprintln!("envdrift: {e}");
    }
    Ok(if snap.errors.is_empty() { 0 } else { 2 })
}

fn cmd_snapshot(args: SnapshotArgs) -> Result<u8> {
    let target = args.cluster.target(args.context.clone(), args.in_cluster);
    let live = envdrift::source::kube::snapshot_blocking(&target, &args.cluster.options("live"))
        .context("reading the cluster")?;
    let files = envdrift::source::dump::write_dump(&live.snapshot, &args.output)
        .with_context(|| format!("writing the dump to {}", args.output.display()))?;
    for u in &live.snapshot.unknown {
        let kind = if u.group.is_empty() {
            u.kind.clone()
        } else {
            format!("{}.{}", u.kind, u.group)
        };
        match &u.namespace {
            Some(ns) => eprintln!("envdrift: unknown: {kind} in {ns}: {}", u.reason),
            None => eprintln!("envdrift: unknown: {kind}: {}", u.reason),
        }
    }
    println!(
        "wrote {} objects ({} types, {} unknown) in {files} files to {}",
        live.snapshot.objects.len(),
        live.stats.types,
        live.snapshot.unknown.len(),
        args.output.display()
    );
    Ok(0)
}

fn build_report<'a>(
    mode: Mode,
    left: &Snapshot,
    right: &Snapshot,
    result: &'a DiffResult,
) -> Report<'a> {
    let (l, r) = mode.side_names();
    let mut errors = left.errors.clone();
    errors.extend(right.errors.iter().cloned());
    let mut skipped = left.skipped.clone();
    skipped.extend(right.skipped.iter().cloned());
    Report {
        mode,
        left: Side::of(l, left),
        right: Side::of(r, right),
        result,
        errors,
        skipped,
    }
}

fn emit(rep: &Report<'_>, format: Option<Format>, color: ColorChoice) -> Result<()> {
    let tty = std::io::stdout().is_terminal();
    let format = format.unwrap_or(if tty { Format::Table } else { Format::Json });
    let text = match format {
        Format::Json => report::json::render(rep),
        Format::Markdown => report::markdown::render(rep),
        Format::Table => report::table::render(
            rep,
            report::table::TableOptions {
                color: match color {
                    ColorChoice::Always => true,
                    ColorChoice::Never => false,
                    ColorChoice::Auto => tty && std::env::var_os("NO_COLOR").is_none(),
                },
                value_width: 0,
            },
        ),
    };
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .context("writing the report")?;
    out.flush().context("writing the report")?;
    Ok(())
}

fn exit_code(rep: &Report<'_>, fail_on: FailOn) -> u8 {
    if !rep.errors.is_empty() {
        return 2;
    }
    match fail_on.threshold() {
        Some(t)
            if rep
                .result
                .drifts
                .iter()
                .any(|d| !d.expected && d.severity >= t) =>
        {
            1
        }
        _ => 0,
    }
}
