//! The watch-mode benchmark (`envdrift-testkit watch-bench`, run by
//! `benches/watch_latency.sh`): a synthetic environment of N objects loaded into the
//! Kubernetes API test server, the real `envdrift daemon` watching it with a Slack sink
//! pointed at the Slack stand-in, and edits made with the real `kubectl` at random
//! moments. Measured: the time from each kubectl command's return to the stand-in's
//! receipt of the message, the daemon's RSS, its CPU while nothing changes, and (with
//! `resync`) the wall and CPU time of a full resync of the unchanged cluster, from the
//! daemon's "full resync" log line until its CPU goes quiet.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use super::ApiServer;
use crate::kubectl::Kubectl;
use crate::slack::SlackServer;
use crate::synth;

/// What to run.
pub struct BenchOptions {
    pub envdrift: PathBuf,
    pub kubectl: PathBuf,
    pub objects: usize,
    pub edits: usize,
    pub seed: u64,
    /// The resync period in seconds (the environment's `interval`); 0: the default (1 h),
    /// and no resync measured.
    pub resync: u64,
}

fn rss_kib(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = text.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_messages(slack: &SlackServer, n: usize, timeout: Duration) -> Option<Instant> {
    let deadline = Instant::now() + timeout;
    loop {
        if slack.accepted().len() >= n {
            return Some(Instant::now());
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Waits for the daemon's resync log line, then until its CPU is quiet (at most one clock
/// tick over 3 s); returns the wall time from the line to the last busy sample and the CPU
/// seconds spent in between.
fn measure_resync(log: &Path, pid: u32, ticks_per_s: f64, within: Duration) -> Option<(f64, f64)> {
    let deadline = Instant::now() + within;
    let start = loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains("full resync") {
            break Instant::now();
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut samples: Vec<(Instant, u64)> = vec![(start, cpu_ticks(pid)?)];
    let quiet = Duration::from_secs(3);
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let now = Instant::now();
        let t = cpu_ticks(pid)?;
        samples.push((now, t));
        if now.duration_since(start) < quiet {
            continue;
        }
        let back = samples
            .iter()
            .rev()
            .find(|(at, _)| now.duration_since(*at) >= quiet)
            .map_or(samples[0].1, |s| s.1);
        if t.saturating_sub(back) <= 1 || now > deadline + Duration::from_secs(600) {
            let (end, ticks) = samples
                .iter()
                .find(|(_, x)| *x + 1 >= t)
                .copied()
                .unwrap_or((now, t));
            let cpu = ticks.saturating_sub(samples[0].1) as f64 / ticks_per_s;
            return Some((end.duration_since(start).as_secs_f64(), cpu));
        }
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Runs the benchmark and prints its figures.
///
/// # Errors
/// A step that could not run (the daemon exited, no first alert within 10 minutes).
pub fn run(o: &BenchOptions, work: &Path) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let pair = synth::generate(&synth::SynthOptions {
        objects: o.objects,
        seed: o.seed,
        ..Default::default()
    });
    std::fs::create_dir_all(work)?;
    synth::write_pair(&pair, work).context("writing the synthetic pair")?;
    let server = ApiServer::start();
    let loading = Instant::now();
    let mut deployments = Vec::new();
    for v in &pair.live {
        let mut v = v.clone();
        if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            for f in ["uid", "resourceVersion", "creationTimestamp", "generation"] {
                m.remove(f);
            }
        }
        if v["kind"] == "Deployment" {
            let c = v
                .pointer("/spec/template/spec/containers/0/name")
                .and_then(Value::as_str);
            if let (Some(ns), Some(n), Some(c)) = (
                v.pointer("/metadata/namespace").and_then(Value::as_str),
                v.pointer("/metadata/name").and_then(Value::as_str),
                c,
            ) {
                deployments.push((ns.to_string(), n.to_string(), c.to_string()));
            }
        }
        let manager = v
            .pointer("/metadata/managedFields/0/manager")
            .and_then(Value::as_str)
            .unwrap_or("kubectl-client-side-apply")
            .to_string();
        if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("managedFields");
        }
        server
            .insert(v, &manager)
            .map_err(|e| anyhow::anyhow!("loading an object: {e}"))?;
    }
    println!(
        "test server: {} objects loaded in {:.1} s ({} Deployments)",
        pair.live.len(),
        loading.elapsed().as_secs_f64(),
        deployments.len()
    );
    if deployments.len() < o.edits {
        bail!(
            "only {} Deployments for {} edits",
            deployments.len(),
            o.edits
        );
    }
    let slack = rt.block_on(SlackServer::start("xoxb-bench", "/services/T0/B0/X"));
    let kubeconfig = work.join("kubeconfig");
    std::fs::write(&kubeconfig, server.kubeconfig("bench"))?;
    std::fs::write(work.join("slack-token"), "xoxb-bench")?;
    std::fs::write(
        work.join("envdrift.yaml"),
        format!(
            "data_dir: state\nenvironments:\n  bench:\n    desired: {{type: dir, path: {}}}\n    live: {{type: cluster, kubeconfig: {}, context: bench}}\n{}alerts:\n  sinks:\n    - {{type: slack, name: slack, channel: C0BENCH, token_file: {}, api_url: '{}'}}\n",
            work.join("desired").display(),
            kubeconfig.display(),
            if o.resync > 0 {
                format!("    interval: {}s\n", o.resync)
            } else {
                String::new()
            },
            work.join("slack-token").display(),
            slack.api_url()
        ),
    )?;
    let log = std::fs::File::create(work.join("daemon.log"))?;
    let started = Instant::now();
    let child = Command::new(&o.envdrift)
        .args(["daemon", "--config"])
        .arg(work.join("envdrift.yaml"))
        .args(["--log-level", "info"])
        .env("NO_PROXY", "127.0.0.1,localhost")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .context("starting envdrift daemon")?;
    let daemon = Daemon(child);
    let pid = daemon.0.id();
    // The first evaluation alerts the synthetic environment's injected drifts.
    let Some(first) = wait_messages(&slack, 1, Duration::from_secs(600)) else {
        bail!(
            "no first alert within 10 minutes (see {}/daemon.log)",
            work.display()
        );
    };
    let first_eval = first.duration_since(started);
    let first_cpu = cpu_ticks(pid).unwrap_or(0) as f64 / 100.0;
    println!(
        "first evaluation (watches listed everything, compared, alerted): {:.1} s, {:.1} s CPU",
        first_eval.as_secs_f64(),
        first_cpu
    );
    // Settle (outbox deliveries of the first evaluation), then idle CPU over 10 s.
    std::thread::sleep(Duration::from_secs(5));
    let rss_after_sync = rss_kib(pid, "VmRSS:").unwrap_or(0);
    let ticks_per_s = 100.0;
    let t0 = cpu_ticks(pid).unwrap_or(0);
    std::thread::sleep(Duration::from_secs(10));
    let t1 = cpu_ticks(pid).unwrap_or(0);
    let idle_cpu = (t1.saturating_sub(t0)) as f64 / ticks_per_s / 10.0 * 100.0;
    println!(
        "RSS after the first evaluation: {} MiB",
        rss_after_sync / 1024
    );
    println!("CPU while nothing changes (10 s): {idle_cpu:.2} % of one core");
    let k = Kubectl {
        bin: o.kubectl.clone(),
        kubeconfig: kubeconfig.clone(),
    };
    let mut rng = o.seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    let mut next = |n: u64| {
        rng = rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (rng >> 33) % n
    };
    let mut latencies = Vec::new();
    let mut lost = 0;
    for i in 0..o.edits {
        std::thread::sleep(Duration::from_millis(500 + next(1500)));
        let (ns, name, container) = &deployments[(next(deployments.len() as u64)) as usize];
        let before = slack.accepted().len();
        let target = format!("deployment/{name}");
        let image = format!("{container}=registry.example.com/bench/{name}:edit-{i}");
        let env = format!("BENCH_EDIT={i}");
        let patch = format!(
            r#"{{"spec":{{"template":{{"metadata":{{"annotations":{{"bench/edit":"{i}"}}}}}}}}}}"#
        );
        let args: Vec<&str> = match i % 3 {
            0 => vec!["-n", ns, "set", "image", &target, &image],
            1 => vec!["-n", ns, "set", "env", &target, &env],
            _ => vec!["-n", ns, "patch", &target, "--type=merge", "-p", &patch],
        };
        k.run(&args);
        let returned = Instant::now();
        match wait_messages(&slack, before + 1, Duration::from_secs(60)) {
            Some(at) => latencies.push(at.duration_since(returned).as_secs_f64()),
            None => lost += 1,
        }
    }
    let rss_end = rss_kib(pid, "VmRSS:").unwrap_or(0);
    let hwm = rss_kib(pid, "VmHWM:").unwrap_or(0);
    latencies.sort_by(f64::total_cmp);
    println!(
        "{} kubectl edits: latency to the Slack stand-in p50 {:.2} s, p90 {:.2} s, max {:.2} s; {} without an alert within 60 s",
        o.edits,
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.9),
        latencies.last().copied().unwrap_or(f64::NAN),
        lost
    );
    println!(
        "daemon RSS at the end: {} MiB (peak {} MiB)",
        rss_end / 1024,
        hwm / 1024
    );
    if o.resync > 0 {
        let left = Duration::from_secs(o.resync).saturating_sub(started.elapsed());
        if left.is_zero() {
            println!("resync: already started during the edits; use a longer --resync");
        }
        match measure_resync(
            &work.join("daemon.log"),
            pid,
            ticks_per_s,
            left + Duration::from_secs(60),
        ) {
            Some((wall, cpu)) => println!(
                "full resync of the unchanged cluster: {wall:.1} s wall ({:.0} % of the first evaluation), {cpu:.1} s CPU ({:.0} % of the first evaluation's)",
                wall / first_eval.as_secs_f64() * 100.0,
                cpu / first_cpu.max(0.01) * 100.0
            ),
            None => println!("resync: no full resync logged"),
        }
    }
    drop(daemon);
    drop(slack);
    Ok(())
}
