//! Benchmark of the daemon's rescans of a file environment (issue 14): one scan as the
//! daemon runs it ([`envdrift::run::run`] with the daemon's [`SourceCaches`], `hash_to`),
//! three times over the same caches (the file cache and the kept comparison results): the first scan, a rescan with nothing changed, and a
//! rescan after one live file changed (one object's value, same size).
//!
//! The environment is the synthetic pair of `cargo run -p envdrift-testkit -- generate`
//! (seed 42, 2 % drift) in the dump layout: desired in 200-document files, live in
//! 500-item `kind: List` files (`envdrift snapshot` and `kubectl get -o yaml` per type
//! write files like these). Sizes: `ENVDRIFT_BENCH_OBJECTS` (default 50000). Reports wall
//! time of each scan, the ratio to the first, and the process's resident memory after each
//! scan and at its peak (`/proc/self/status`).
//!
//! Run: `cargo bench --bench rescan`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

use envdrift::config::Compiled;
use envdrift::daemon::scan::Caches;
use envdrift::report::Mode;
use envdrift::run::{Input, Job, run};
use envdrift::source::{FilesKind, SourceSpec, dump::FileLimits};

const GENERATE_ENV: &str = "ENVDRIFT_BENCH_GENERATE";

/// `VmRSS` and `VmHWM` of this process, in MiB.
fn rss() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn spec(dir: &Path, kind: FilesKind) -> SourceSpec {
    SourceSpec::Files {
        paths: vec![dir.to_path_buf()],
        kind,
        limits: FileLimits::default(),
    }
}

/// One scan; `compiled` is the config the daemon compiled once (results are kept only for
/// the same compiled config).
fn scan(dir: &Path, caches: &Caches, compiled: &Arc<Compiled>) -> (f64, usize) {
    let mut job = Job::new(
        Mode::DesiredVsLive,
        Input::spec("desired", spec(&dir.join("desired"), FilesKind::Manifests)),
        Input::spec("live", spec(&dir.join("live"), FilesKind::Dump)),
        Arc::clone(compiled),
    );
    job.caches = Some(&caches.sources);
    job.kept = Some(&caches.results);
    job.hash_to = true;
    let start = Instant::now();
    let out = run(&job);
    let secs = start.elapsed().as_secs_f64();
    assert!(out.failure().is_none(), "{:?}", out.failure());
    (secs, out.result.drifts.len())
}

fn main() {
    if let Ok(spec) = std::env::var(GENERATE_ENV) {
        let (n, out) = spec.split_once(' ').expect("OBJECTS OUT_DIR");
        let opts = envdrift_testkit::synth::SynthOptions {
            objects: n.parse().expect("objects"),
            drift_percent: 2.0,
            seed: 42,
            ..Default::default()
        };
        let pair = envdrift_testkit::synth::generate(&opts);
        envdrift_testkit::synth::write_pair(&pair, Path::new(out)).expect("write pair");
        return;
    }
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let n: usize = std::env::var("ENVDRIFT_BENCH_OBJECTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(50_000);
    let dir = tempfile::tempdir().expect("temp dir");
    // Generated in a child process, so that this process's memory is the scans' only.
    let status = Command::new(std::env::current_exe().expect("current exe"))
        .env(GENERATE_ENV, format!("{n} {}", dir.path().display()))
        .stdout(Stdio::null())
        .status()
        .expect("spawn the generator");
    assert!(status.success(), "generating {n} objects failed");
    let caches = Caches::default();
    let compiled = Arc::new(Compiled::default());
    let (first, drifts) = scan(dir.path(), &caches, &compiled);
    let rss_first = rss();
    let (unchanged, d2) = scan(dir.path(), &caches, &compiled);
    assert_eq!(d2, drifts);
    let rss_unchanged = rss();
    // One value of one live file, same size.
    let file = dir.path().join("live/live-0003.yaml");
    let text = std::fs::read_to_string(&file).expect("live file");
    let at = text.find("  replicas: ").expect("a replicas field");
    let digit = at + "  replicas: ".len();
    let mut bytes = text.into_bytes();
    bytes[digit] = if bytes[digit] == b'9' { b'8' } else { b'9' };
    std::fs::write(&file, bytes).expect("write");
    let (one, _) = scan(dir.path(), &caches, &compiled);
    let rss_one = rss();
    let (files, cached) = caches.sources.files.size();
    println!("| objects | scan | wall | vs first | RSS after | peak RSS |");
    println!("| ---: | --- | ---: | ---: | ---: | ---: |");
    for (what, t, (now, peak)) in [
        ("first", first, rss_first),
        ("nothing changed", unchanged, rss_unchanged),
        ("one live file changed", one, rss_one),
    ] {
        println!(
            "| {n} | {what} | {t:.2} s | {:.2}× | {now:.0} MiB | {peak:.0} MiB |",
            t / first
        );
    }
    let (_, kept_files) = caches.results.size();
    println!(
        "\n{drifts} drifts; file cache: {files} files, {:.0} MiB of object text; comparison results kept for {kept_files} files, the last rescan reused {}",
        cached as f64 / 1048576.0,
        caches.results.last_reused("live").unwrap_or(0)
    );
}
