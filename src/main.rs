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
    Diff(DiffArgs),
    /// Read a cluster and write its objects as a dump directory that `diff --live DIR` reads.
    ///
    /// Secret values are stored as SHA-256 hashes; kubeconfig credentials never reach the dump.
    Snapshot(SnapshotArgs),
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
    /// Write a synthetic desired/live pair with known drift.
    Generate {
        /// Number of objects.
        #[arg(long, default_value_t = 1000)]
        objects: usize,
        /// Share of objects with one injected drift, in percent.
        #[arg(long, default_value_t = 2.0)]
        drift_percent: f64,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Output directory (gets desired/, live/ and injected.json).
        #[arg(long, short)]
        out: PathBuf,
    },
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
    /// Desired state: files or directories (recursive) of YAML/JSON manifests.
    #[arg(long, required = true, num_args = 1.., value_name = "PATH")]
    desired: Vec<PathBuf>,
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
        Command::Diff(args) => cmd_diff(args),
        Command::Snapshot(args) => cmd_snapshot(args),
        Command::Config(ConfigCmd::Check { file }) => cmd_config_check(&file),
        Command::Dev(DevCmd::Generate {
            objects,
            drift_percent,
            seed,
            out,
        }) => {
            let opts = envdrift::synth::SynthOptions {
                objects,
                drift_percent,
                seed,
                ..Default::default()
            };
            let pair = envdrift::synth::generate(&opts);
            let (d, l) = envdrift::synth::write_pair(&pair, &out)
                .with_context(|| format!("writing the synthetic pair to {}", out.display()))?;
            println!(
                "wrote {objects} objects to {} (desired {d} bytes, live {l} bytes, {} injected drifts)",
                out.display(),
                pair.injected.len()
            );
            Ok(0)
        }
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
    let config = match &args.config {
        Some(path) => match Config::load(path) {
            Ok(c) => c,
            Err(problems) => {
                for p in &problems {
                    eprintln!("envdrift: config: {p}");
                }
                return Ok(2);
            }
        },
        None => Config::default(),
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
    if let Some((context, in_cluster)) = cluster_spec(&args.live) {
        if args.live.len() > 1 {
            anyhow::bail!("--live: a cluster cannot be combined with other live paths");
        }
        let desired = load_side(
            &args.desired,
            "desired",
            Some(default_ns),
            &config.cluster_scoped_kinds,
        );
        let target = args.cluster.target(context, in_cluster);
        let live =
            envdrift::source::kube::snapshot_blocking(&target, &args.cluster.options("live"))
                .context("reading the cluster")?;
        let result = envdrift::diff::compare(&desired, &live.snapshot, &opts);
        let rep = build_report(Mode::DesiredVsLive, &desired, &live.snapshot, &result);
        emit(&rep, args.format, args.color)?;
        return Ok(exit_code(&rep, args.fail_on));
    }
    let mut scratch = Vec::new();
    let files = collect_files(&args.desired, "desired", &mut scratch).len()
        + collect_files(&args.live, "live", &mut scratch).len();
    let pb = progress(files as u64);
    if let Some(pb) = &pb {
        pb.set_message("comparing");
    }
    let out = envdrift::pipeline::diff_paths(
        &args.desired,
        &load("desired", Some(default_ns)),
        &args.live,
        &load("live", None),
        &opts,
        &|_| {
            if let Some(pb) = &pb {
                pb.inc(1);
            }
        },
    );
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
        Some(t) if rep.result.drifts.iter().any(|d| d.severity >= t) => 1,
        _ => 0,
    }
}
