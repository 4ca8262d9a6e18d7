//! `envdrift-testkit`: developer tools of the test kit.
//!
//! `envdrift-testkit generate --objects N [--drift-percent P] [--seed S] --out DIR` writes a
//! synthetic desired/live pair with known drift (`cargo run -p envdrift-testkit -- generate …`;
//! `--layout single` for one desired and one live file).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use envdrift_testkit::synth;

#[derive(Parser, Debug)]
#[command(name = "envdrift-testkit", about = "envdrift's test kit tools")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
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
        /// `split`: desired in 200-document files, live in 500-item List files; `single`:
        /// one multi-document desired file and one `kind: List` live file (what
        /// `kubectl get -A -o yaml` writes); `single-json`: the same, live as
        /// `kubectl get -A -o json`.
        #[arg(long, default_value = "split", value_parser = ["split", "single", "single-json"])]
        layout: String,
    },
    /// Watch-mode benchmark: N synthetic objects in the Kubernetes API test server, the
    /// real `envdrift daemon` watching it, edits made with the real kubectl; prints the
    /// latency from each kubectl return to the Slack stand-in's receipt, RSS and idle CPU.
    WatchBench {
        /// The envdrift binary.
        #[arg(long)]
        envdrift: PathBuf,
        /// The kubectl binary.
        #[arg(long)]
        kubectl: PathBuf,
        #[arg(long, default_value_t = 5000)]
        objects: usize,
        #[arg(long, default_value_t = 20)]
        edits: usize,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Also measure a full resync of the unchanged cluster: the environment's
        /// `interval` (the resync period in watch mode) in seconds; it must be longer than
        /// the first evaluation and the edits together. 0: not measured (interval 1h).
        #[arg(long, default_value_t = 0)]
        resync: u64,
        /// Work directory (synthetic files, config, daemon log).
        #[arg(long)]
        work: PathBuf,
    },
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::WatchBench {
            envdrift,
            kubectl,
            objects,
            edits,
            seed,
            resync,
            work,
        } => envdrift_testkit::apiserver::bench::run(
            &envdrift_testkit::apiserver::bench::BenchOptions {
                envdrift,
                kubectl,
                objects,
                edits,
                seed,
                resync,
            },
            &work,
        ),
        Command::Generate {
            objects,
            drift_percent,
            seed,
            out,
            layout,
        } => {
            let opts = synth::SynthOptions {
                objects,
                drift_percent,
                seed,
                ..Default::default()
            };
            let pair = synth::generate(&opts);
            let written = match layout.as_str() {
                "single" => synth::write_pair_single(&pair, &out, synth::LiveFormat::Yaml),
                "single-json" => synth::write_pair_single(&pair, &out, synth::LiveFormat::Json),
                _ => synth::write_pair(&pair, &out),
            };
            let (d, l) = written
                .with_context(|| format!("writing the synthetic pair to {}", out.display()))?;
            println!(
                "wrote {objects} objects to {} (desired {d} bytes, live {l} bytes, {} injected drifts)",
                out.display(),
                pair.injected.len()
            );
            Ok(())
        }
    }
}
