//! Benchmark of `envdrift diff` against the cost of only parsing both sides.
//!
//! For each size (default 1k, 10k and 50k objects; override with
//! `ENVDRIFT_BENCH_SIZES=1000,5000`) it writes a synthetic desired/live pair with 2 %
//! injected drift ([`envdrift_testkit::synth`], in a child process; the same as
//! `cargo run -p envdrift-testkit -- generate`), then runs, in the same process run and alternating,
//! the binary's `dev parse` (read and parse both sides into memory, nothing else) and the
//! full `diff --format json`, `ENVDRIFT_BENCH_RUNS` times each (default 3). It reports the
//! median wall time of each, their ratio, and the peak resident memory of each child
//! (from `wait4`), against the input size; and it checks that the diff found exactly the
//! injected drifts.
//!
//! `ENVDRIFT_BENCH_LAYOUT=single` writes the single-file layout instead (one multi-document
//! desired file, one `kind: List` live file as `kubectl get -A -o yaml` writes it;
//! `single-json`: the live file as `kubectl get -A -o json`); the default, `split`, has
//! 200-document desired files and 500-item live List files.
//! `ENVDRIFT_BENCH_MAX_FILE_SIZE=BYTES` passes `--max-file-size` to both commands.
//!
//! Run: `cargo bench --bench diff` (results go to stdout as a Markdown table; the figures
//! in docs/performance.md come from it).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct Run {
    wall: Duration,
    max_rss_kb: i64,
    stdout: Vec<u8>,
}

// The child is reaped with wait4 (for its rusage), not Child::wait; libc's wait4 is the
// one unsafe call of the workspace (the lints table denies unsafe code elsewhere).
#[allow(clippy::zombie_processes, unsafe_code)]
fn run(args: &[&str]) -> Run {
    let start = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_envdrift"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn envdrift");
    let mut stdout = Vec::new();
    if let Some(mut out) = child.stdout.take() {
        std::io::Read::read_to_end(&mut out, &mut stdout).expect("read stdout");
    }
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: rusage is plain data that wait4 fills in; pid is our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(rc, pid, "wait4 failed");
    Run {
        wall: start.elapsed(),
        max_rss_kb: usage.ru_maxrss,
        stdout,
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// The environment variable that makes this benchmark binary a generator child:
/// `OBJECTS DRIFT_PERCENT OUT_DIR`.
const GENERATE_ENV: &str = "ENVDRIFT_BENCH_GENERATE";

/// Writes a synthetic pair (seed 42, as `envdrift-testkit generate`) into `out` in a child
/// process (this binary, re-run with [`GENERATE_ENV`]): a child's peak RSS counts its
/// parent's pages at fork time, so the benchmark process itself must stay small.
fn generate(objects: usize, drift_percent: f64, out: &str) {
    let status = Command::new(std::env::current_exe().expect("current exe"))
        .env(GENERATE_ENV, format!("{objects} {drift_percent} {out}"))
        .stdout(Stdio::null())
        .status()
        .expect("spawn the generator");
    assert!(status.success(), "generating {objects} objects failed");
}

/// The generator child's work (see [`generate`]).
fn generate_child(spec: &str) {
    let mut it = spec.splitn(3, ' ');
    let (Some(objects), Some(drift), Some(out)) = (it.next(), it.next(), it.next()) else {
        panic!("{GENERATE_ENV}: expected `OBJECTS DRIFT_PERCENT OUT_DIR`, got {spec:?}");
    };
    let opts = envdrift_testkit::synth::SynthOptions {
        objects: objects.parse().expect("objects"),
        drift_percent: drift.parse().expect("drift percent"),
        seed: 42,
        ..Default::default()
    };
    let pair = envdrift_testkit::synth::generate(&opts);
    let out = std::path::Path::new(out);
    use envdrift_testkit::synth::{LiveFormat, write_pair, write_pair_single};
    match std::env::var("ENVDRIFT_BENCH_LAYOUT").as_deref() {
        Ok("single") => write_pair_single(&pair, out, LiveFormat::Yaml),
        Ok("single-json") => write_pair_single(&pair, out, LiveFormat::Json),
        _ => write_pair(&pair, out),
    }
    .expect("write pair");
}

fn main() {
    if let Ok(spec) = std::env::var(GENERATE_ENV) {
        generate_child(&spec);
        return;
    }
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing we need.
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let sizes: Vec<usize> = std::env::var("ENVDRIFT_BENCH_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1_000, 10_000, 50_000]);
    let runs: usize = std::env::var("ENVDRIFT_BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    println!(
        "| objects | input (desired + live) | parse only (median) | full diff (median) | diff / parse | peak RSS parse | peak RSS diff | diff RSS / input |"
    );
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for n in sizes {
        let dir = tempfile::tempdir().expect("temp dir");
        // Generated in a child process: a child's peak RSS counts its parent's pages at
        // fork time, so the benchmark process itself must stay small.
        let out = path(dir.path());
        generate(n, 2.0, &out);
        let injected_json = std::fs::read(dir.path().join("injected.json")).expect("injected.json");
        let injected = serde_json::from_slice::<Vec<serde_json::Value>>(&injected_json)
            .expect("injected list")
            .len();
        let (db, lb) = (
            dir_bytes(&dir.path().join("desired")),
            dir_bytes(&dir.path().join("live")),
        );
        let d = dir.path().join("desired");
        let l = dir.path().join("live");
        let (d, l) = (path(&d), path(&l));
        let mut parse = Vec::new();
        let mut diff = Vec::new();
        let (mut rss_parse, mut rss_diff) = (0, 0);
        // `ENVDRIFT_BENCH_MAX_FILE_SIZE` (bytes) raises `--max-file-size` for both runs: the
        // 50k single-file JSON live side (330 MB) is over the 256 MiB default.
        let max = std::env::var("ENVDRIFT_BENCH_MAX_FILE_SIZE").ok();
        let limit: Vec<&str> = max
            .as_deref()
            .map(|m| vec!["--max-file-size", m])
            .unwrap_or_default();
        for _ in 0..runs {
            let mut args = vec!["dev", "parse", "--desired", &d, "--live", &l];
            args.extend(&limit);
            let p = run(&args);
            parse.push(p.wall);
            rss_parse = rss_parse.max(p.max_rss_kb);
            let mut args = vec![
                "diff",
                "--desired",
                &d,
                "--live",
                &l,
                "--format",
                "json",
                "--fail-on",
                "never",
            ];
            args.extend(&limit);
            let r = run(&args);
            diff.push(r.wall);
            rss_diff = rss_diff.max(r.max_rss_kb);
            let v: serde_json::Value = serde_json::from_slice(&r.stdout).expect("diff JSON");
            let found = v["summary"]["drifts"].as_u64().unwrap_or(0) as usize;
            assert_eq!(
                found, injected,
                "diff found {found} drifts, {injected} were injected"
            );
        }
        let (mp, md) = (median(parse), median(diff));
        let input_mb = (db + lb) as f64 / 1e6;
        println!(
            "| {n} | {input_mb:.1} MB | {:.2} s | {:.2} s | {:.2}× | {:.0} MB | {:.0} MB | {:.2}× |",
            mp.as_secs_f64(),
            md.as_secs_f64(),
            md.as_secs_f64() / mp.as_secs_f64(),
            rss_parse as f64 / 1024.0,
            rss_diff as f64 / 1024.0,
            (rss_diff as f64 * 1024.0) / (db + lb) as f64,
        );
    }
    bench_compare(runs);
}

/// `envdrift compare` of two generated environments with the same objects: `from` without
/// drift, `to` with 2 % injected drift (sizes: `ENVDRIFT_BENCH_COMPARE_SIZES`, default 20k).
fn bench_compare(runs: usize) {
    let sizes: Vec<usize> = std::env::var("ENVDRIFT_BENCH_COMPARE_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![20_000]);
    println!();
    println!(
        "| objects per side | input (from + to) | compare (median) | peak RSS | RSS / input | differences reported / injected |"
    );
    println!("| ---: | ---: | ---: | ---: | ---: | ---: |");
    for n in sizes {
        let dir = tempfile::tempdir().expect("temp dir");
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        generate(n, 0.0, &path(&a));
        generate(n, 2.0, &path(&b));
        let injected = serde_json::from_slice::<Vec<serde_json::Value>>(
            &std::fs::read(b.join("injected.json")).expect("injected.json"),
        )
        .expect("injected list")
        .len();
        let (from, to) = (path(&a.join("live")), path(&b.join("live")));
        let bytes = dir_bytes(&a.join("live")) + dir_bytes(&b.join("live"));
        let mut times = Vec::new();
        let mut rss = 0;
        let mut found = 0;
        for _ in 0..runs {
            let r = run(&[
                "compare",
                "--from",
                &from,
                "--to",
                &to,
                "--format",
                "json",
                "--fail-on",
                "never",
            ]);
            times.push(r.wall);
            rss = rss.max(r.max_rss_kb);
            let v: serde_json::Value = serde_json::from_slice(&r.stdout).expect("compare JSON");
            found = v["summary"]["drifts"].as_u64().unwrap_or(0) as usize;
        }
        println!(
            "| {n} | {:.1} MB | {:.2} s | {:.0} MB | {:.2}× | {found} / {injected} |",
            bytes as f64 / 1e6,
            median(times).as_secs_f64(),
            rss as f64 / 1024.0,
            (rss as f64 * 1024.0) / bytes as f64,
        );
    }
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .expect("read dir")
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum()
}

fn path(p: &Path) -> String {
    p.display().to_string()
}
