//! Several `envdrift daemon` processes (the real binary) split their targets through
//! `coordination.k8s.io` Leases on the Kubernetes API test server (issue 17): each target
//! is scanned by exactly one replica; a replica killed with SIGKILL has its targets taken
//! over within the lease duration plus one scan; a replica that joins takes its share.
//!
//! Each replica has its own SQLite store here (the scan records say who scanned what);
//! with a shared store the same test reads one store's `scans` and tells replicas apart by
//! the Leases' holders (`Replica::data_dir` is the only per-replica path).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use envdrift::daemon::shard::{owner, target_lease_name};
use envdrift_testkit::apiserver::ApiServer;

const NAMESPACE: &str = "envdrift";
const LEASE_SECONDS: u64 = 3;
const INTERVAL: Duration = Duration::from_secs(1);
const TARGETS: &[&str] = &[
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf",
];

struct Replica {
    name: String,
    data_dir: PathBuf,
    child: Option<Child>,
}

impl Drop for Replica {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Replica {
    fn start(dir: &Path, kubeconfig: &Path, name: &str) -> Replica {
        let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/demo");
        let data_dir = dir.join(format!("state-{name}"));
        let mut cfg = format!(
            "data_dir: {}\nlisten: 127.0.0.1:0\ndaemon:\n  coordination: {{type: kubernetes, kubeconfig: {}, context: test, namespace: {NAMESPACE}, lease_duration: {LEASE_SECONDS}s}}\nenvironments:\n",
            data_dir.display(),
            kubeconfig.display()
        );
        for t in TARGETS {
            cfg.push_str(&format!(
                "  {t}:\n    desired: {{type: dir, path: {d}/git/production}}\n    live: {{type: dump, path: {d}/live/production}}\n    interval: {}s\n",
                INTERVAL.as_secs(),
                d = demo.display()
            ));
        }
        let path = dir.join(format!("{name}.yaml"));
        std::fs::write(&path, cfg).unwrap();
        let log = std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
        let bin = envdrift_testkit::envdrift_bin(env!("CARGO_BIN_EXE_envdrift"));
        let child = Command::new(bin)
            .args(["daemon", "--config"])
            .arg(&path)
            // The identity comes from POD_NAME, as in the Helm chart.
            .env("POD_NAME", name)
            .env("RUST_LOG", "info")
            .env_remove("HTTPS_PROXY")
            .env_remove("https_proxy")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        Replica {
            name: name.to_string(),
            data_dir,
            child: Some(child),
        }
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap(); // SIGKILL
            c.wait().unwrap();
        }
    }

    /// `(target, started_at)` of every scan this replica recorded.
    fn scans(&self) -> Vec<(String, String)> {
        let Ok(conn) = rusqlite::Connection::open_with_flags(
            self.data_dir.join("envdrift.db"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        ) else {
            return Vec::new();
        };
        let Ok(mut st) = conn.prepare("SELECT target, started_at FROM scans ORDER BY id") else {
            return Vec::new();
        };
        st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .map(|rows| rows.filter_map(Result::ok).collect())
            .unwrap_or_default()
    }

    /// Targets scanned (started) after `since`, with their counts.
    fn scanned_since(&self, since: &str) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for (t, at) in self.scans() {
            if at.as_str() > since {
                *out.entry(t).or_default() += 1;
            }
        }
        out
    }
}

fn key(t: &str) -> String {
    format!("environment/{t}")
}

/// The holder of each target's Lease, as the API server has it.
fn holders(server: &ApiServer) -> BTreeMap<String, Option<String>> {
    TARGETS
        .iter()
        .map(|t| {
            let h = server
                .object(
                    "leases.coordination.k8s.io",
                    NAMESPACE,
                    &target_lease_name(&key(t)),
                )
                .and_then(|l| {
                    l.pointer("/spec/holderIdentity")?
                        .as_str()
                        .map(str::to_string)
                });
            ((*t).to_string(), h)
        })
        .collect()
}

/// The placement the members' rendezvous hashing gives.
fn expected(members: &[&str]) -> BTreeMap<String, Option<String>> {
    let members: Vec<String> = members.iter().map(|m| (*m).to_string()).collect();
    TARGETS
        .iter()
        .map(|t| {
            (
                (*t).to_string(),
                owner(&members, &key(t)).map(str::to_string),
            )
        })
        .collect()
}

async fn wait_for(what: &str, within: Duration, dir: &Path, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        if start.elapsed() > within {
            let mut logs = String::new();
            for e in std::fs::read_dir(dir).unwrap().flatten() {
                if e.path().extension().is_some_and(|x| x == "log") {
                    logs.push_str(&format!(
                        "--- {}\n{}\n",
                        e.path().display(),
                        std::fs::read_to_string(e.path()).unwrap_or_default()
                    ));
                }
            }
            panic!("timed out waiting for {what} ({within:?})\n{logs}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_split_targets_take_over_on_kill_and_rebalance_on_join() {
    let server = ApiServer::start();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, server.kubeconfig("test")).unwrap();
    let names = ["replica-0", "replica-1", "replica-2"];
    let mut replicas: Vec<Replica> = names
        .iter()
        .map(|n| Replica::start(dir.path(), &kubeconfig, n))
        .collect();

    // 1. The split: every target's Lease held by the member hashing gives it to.
    let want = expected(&names);
    let owners: BTreeSet<_> = want.values().flatten().cloned().collect();
    assert!(owners.len() >= 2, "the placement spreads: {want:?}");
    wait_for(
        "the three-way split",
        Duration::from_secs(60),
        dir.path(),
        || holders(&server) == want,
    )
    .await;
    let since = now();
    // Each target scanned at least twice by its owner from now on ...
    wait_for(
        "scans by the owners",
        Duration::from_secs(60),
        dir.path(),
        || {
            replicas.iter().all(|r| {
                let s = r.scanned_since(&since);
                want.iter()
                    .filter(|(_, o)| o.as_deref() == Some(r.name.as_str()))
                    .all(|(t, _)| s.get(t).copied().unwrap_or(0) >= 2)
            })
        },
    )
    .await;
    // ... and by no one else.
    for r in &replicas {
        let s = r.scanned_since(&since);
        for t in s.keys() {
            assert_eq!(
                want[t].as_deref(),
                Some(r.name.as_str()),
                "{} scanned {t}, owned by {:?}",
                r.name,
                want[t]
            );
        }
    }

    // 2. SIGKILL the replica with the most targets: the survivors take them over within
    // the lease duration plus one scan (plus a renewal round and slack for a loaded machine).
    let victim = names
        .iter()
        .max_by_key(|n| want.values().filter(|o| o.as_deref() == Some(**n)).count())
        .copied()
        .unwrap();
    let orphans: Vec<String> = want
        .iter()
        .filter(|(_, o)| o.as_deref() == Some(victim))
        .map(|(t, _)| t.clone())
        .collect();
    let vi = names.iter().position(|n| *n == victim).unwrap();
    replicas[vi].kill();
    let killed_at = now();
    let killed = Instant::now();
    let survivors: Vec<&str> = names.iter().copied().filter(|n| *n != victim).collect();
    let bound = Duration::from_secs(LEASE_SECONDS)
        + INTERVAL
        + Duration::from_secs(1)
        + Duration::from_secs(5);
    wait_for("the takeover", bound, dir.path(), || {
        orphans.iter().all(|t| {
            replicas
                .iter()
                .filter(|r| r.name != victim)
                .any(|r| r.scanned_since(&killed_at).contains_key(t))
        })
    })
    .await;
    let takeover = killed.elapsed();
    eprintln!(
        "takeover of {} targets after SIGKILL: {takeover:?}",
        orphans.len()
    );
    let want2 = expected(&survivors);
    wait_for(
        "the two-way split",
        Duration::from_secs(30),
        dir.path(),
        || holders(&server) == want2,
    )
    .await;
    // The Lease records the change of holder.
    let l = server
        .object(
            "leases.coordination.k8s.io",
            NAMESPACE,
            &target_lease_name(&key(&orphans[0])),
        )
        .unwrap();
    assert!(l["spec"]["leaseTransitions"].as_i64().unwrap() >= 1, "{l}");
    assert_eq!(l["spec"]["leaseDurationSeconds"], LEASE_SECONDS);

    // 3. A replica joins: it takes the targets hashing now gives it, the others let go.
    replicas.push(Replica::start(dir.path(), &kubeconfig, "replica-3"));
    let mut members = survivors.clone();
    members.push("replica-3");
    let want3 = expected(&members);
    let gained: Vec<String> = want3
        .iter()
        .filter(|(_, o)| o.as_deref() == Some("replica-3"))
        .map(|(t, _)| t.clone())
        .collect();
    assert!(!gained.is_empty(), "replica-3 gets a share: {want3:?}");
    wait_for("the rebalance", Duration::from_secs(30), dir.path(), || {
        holders(&server) == want3
    })
    .await;
    let since = now();
    let newcomer = replicas.last().unwrap();
    wait_for(
        "scans by the newcomer",
        Duration::from_secs(30),
        dir.path(),
        || {
            let s = newcomer.scanned_since(&since);
            gained.iter().all(|t| s.contains_key(t))
        },
    )
    .await;
    // Once rebalanced, the others no longer scan what the newcomer took.
    let settled = now();
    wait_for(
        "another round of scans",
        Duration::from_secs(30),
        dir.path(),
        || {
            newcomer
                .scanned_since(&settled)
                .keys()
                .filter(|t| gained.contains(t))
                .count()
                == gained.len()
        },
    )
    .await;
    for r in replicas
        .iter()
        .filter(|r| r.child.is_some() && r.name != "replica-3")
    {
        for t in r.scanned_since(&settled).keys() {
            assert!(!gained.contains(t), "{} still scans {t}", r.name);
        }
    }
}

/// Now as the store writes times (RFC 3339 UTC with milliseconds: sorts as text).
fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
