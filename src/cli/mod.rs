//! The `envdrift` command line: arguments ([`args`]), the one place that maps them to
//! sources and jobs ([`sources`]), the subcommands ([`commands`]) and output ([`output`]).
//!
//! Exit status (all commands that compare): 0 no drift at or above `--fail-on`,
//! 1 drift at or above `--fail-on`, 2 an input or usage error (a file that could not be
//! read or parsed, a bad config). With input errors the rest is still compared and shown.

mod args;
mod commands;
mod output;
mod sources;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};

use args::{CompareArgs, DaemonArgs, DiffArgs, RenderArgs, ReportArgs, ScanArgs, SnapshotArgs};

/// Finds environment drift in Kubernetes: what differs between Git and the cluster,
/// classified by category and severity, attributed to whoever changed it, with a patch
/// verified to undo it.
#[derive(Parser, Debug)]
#[command(name = "envdrift", version, about, max_term_width = 100)]
struct Cli {
    /// Log level (error, warn, info, debug, trace) or a tracing filter. Also RUST_LOG.
    /// [default: info for `daemon`, warn otherwise]
    #[arg(long, global = true)]
    log_level: Option<String>,
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
    /// List the Argo CD Applications and Flux Kustomizations / HelmReleases of a cluster and
    /// print a ready config (YAML) with one environment per object (docs/gitops.md).
    Discover(args::DiscoverArgs),
    /// Validate a config file and print every problem with its key path.
    #[command(subcommand)]
    Config(ConfigCmd),
    /// Look after the daemon's store file: check it, back it up, or move it aside.
    #[command(subcommand)]
    Store(StoreCmd),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) on stdout.
    ///
    /// bash: `envdrift completions bash > /etc/bash_completion.d/envdrift`;
    /// zsh: `envdrift completions zsh > "${fpath[1]}/_envdrift"`;
    /// fish: `envdrift completions fish > ~/.config/fish/completions/envdrift.fish`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) on stdout: `envdrift man > envdrift.1 && man ./envdrift.1`.
    Man,
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
        /// Treat warnings (unset sink secret variables, missing secret files) as errors.
        #[arg(long)]
        strict: bool,
    },
}

/// Which store file: the one of a config (`data_dir/envdrift.db`) or a file named directly.
#[derive(clap::Args, Debug)]
#[group(required = true, multiple = false)]
struct StoreFile {
    /// The config file whose store (`data_dir/envdrift.db`) is meant.
    #[arg(long)]
    config: Option<PathBuf>,
    /// The store file itself.
    #[arg(long)]
    file: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum StoreCmd {
    /// Check the store file (SQLite integrity check, schema version, what it holds).
    /// Exit 0 when intact, 2 when not.
    Check {
        #[command(flatten)]
        store: StoreFile,
    },
    /// Write a consistent copy of the store to OUT (safe while the daemon runs).
    Backup {
        #[command(flatten)]
        store: StoreFile,
        /// The backup file to write (must not exist).
        out: PathBuf,
    },
    /// Move the store file aside (`NAME.broken-TIME`) so that the next start makes a new,
    /// empty one: its drift history and record of sent alerts are then not used.
    Reset {
        #[command(flatten)]
        store: StoreFile,
        /// Yes, start over with an empty store.
        #[arg(long)]
        yes: bool,
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
        /// Largest input file read, in bytes (as `diff --max-file-size`).
        #[arg(long, value_name = "BYTES", default_value_t = envdrift::source::dump::MAX_FILE_BYTES)]
        max_file_size: u64,
    },
}

pub(crate) fn main() -> ExitCode {
    let cli = Cli::parse();
    // One TLS crypto provider for the whole process (https Git remotes): ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let level = cli.log_level.clone().unwrap_or_else(|| {
        match cli.command {
            Command::Daemon(_) => "info",
            _ => "warn",
        }
        .to_string()
    });
    init_logging(&level, cli.log_format);
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
    // Colours only on a terminal, and never with NO_COLOR set.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

fn run(cli: Cli) -> Result<u8> {
    match cli.command {
        Command::Diff(args) => commands::cmd_diff(*args),
        Command::Snapshot(args) => commands::cmd_snapshot(args),
        Command::Compare(args) => commands::cmd_compare(args),
        Command::Daemon(args) => commands::cmd_daemon(args),
        Command::Scan(args) => commands::cmd_scan(args),
        Command::Report(args) => commands::cmd_report(args),
        Command::Render(args) => commands::cmd_render(args),
        Command::Discover(args) => commands::cmd_discover(&args),
        Command::Config(ConfigCmd::Check { file, strict }) => {
            commands::cmd_config_check(&file, strict)
        }
        Command::Store(cmd) => commands::cmd_store(cmd),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            // Into memory first: clap_complete panics when its writer fails (a closed pipe).
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut cmd, "envdrift", &mut out);
            std::io::Write::write_all(&mut std::io::stdout().lock(), &out)
                .context("writing the completion script")?;
            Ok(0)
        }
        Command::Man => {
            let cmd = <Cli as clap::CommandFactory>::command();
            let mut out = Vec::new();
            clap_mangen::Man::new(cmd)
                .render(&mut out)
                .context("rendering the man page")?;
            std::io::Write::write_all(&mut std::io::stdout().lock(), &out)
                .context("writing the man page")?;
            Ok(0)
        }
        Command::Dev(DevCmd::RulesTable) => {
            print!("{}", envdrift::classify::rules_markdown());
            Ok(0)
        }
        Command::Dev(DevCmd::Parse {
            desired,
            live,
            max_file_size,
        }) => commands::cmd_dev_parse(&desired, &live, max_file_size),
    }
}
