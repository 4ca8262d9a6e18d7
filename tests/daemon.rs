//! The daemon's cycle against a recording sink: one alert per scan per environment, nothing
//! for an unchanged rescan, a "resolved" alert when the change is reverted, a "scan failed"
//! notice (and no flood of "missing") when a source breaks, retries with backoff, exactly-once
//! delivery across a restart.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use envdrift::alert::DeliveryError;
use envdrift::alert::notice::{Notice, NoticeKind};
use envdrift::config::Config;
use envdrift::daemon::{Daemon, Deliver, Target};
use envdrift::store::Store;

/// A sink that records what it gets and can be told to fail.
#[derive(Default)]
struct Recorder {
    got: Mutex<Vec<Notice>>,
    /// Fail this many deliveries first (retryable).
    fail_first: Mutex<usize>,
}

impl Deliver for Recorder {
    fn sinks(&self) -> Vec<String> {
        vec!["recorder".into()]
    }
    fn route(&self, _: &str, n: &Notice) -> Option<Notice> {
        Some(n.clone())
    }
    fn deliver<'a>(
        &'a self,
        sink: &'a str,
        n: &'a Notice,
    ) -> Pin<Box<dyn Future<Output = Result<(), DeliveryError>> + Send + 'a>> {
        Box::pin(async move {
            let mut f = self.fail_first.lock().unwrap();
            if *f > 0 {
                *f -= 1;
                return Err(DeliveryError {
                    sink: sink.into(),
                    message: "503 from the stand-in".into(),
                    retryable: true,
                    retry_after: Some(Duration::from_millis(50)),
                });
            }
            self.got.lock().unwrap().push(n.clone());
            Ok(())
        })
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let p = e.path();
        if p.is_dir() {
            copy_dir(&p, &to.join(e.file_name()));
        } else {
            std::fs::copy(&p, to.join(e.file_name())).unwrap();
        }
    }
}

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/demo");
        copy_dir(&demo.join("git/production"), &dir.path().join("git"));
        copy_dir(&demo.join("live/production"), &dir.path().join("live"));
        std::fs::write(
            dir.path().join("envdrift.yaml"),
            "data_dir: state\nenvironments:\n  production:\n    desired: {type: dir, path: git}\n    live: {type: dump, path: live}\n",
        )
        .unwrap();
        Env { dir }
    }
    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }
    fn daemon(&self, rec: Arc<Recorder>) -> Arc<Daemon> {
        let cfg = Config::load(&self.path("envdrift.yaml")).unwrap();
        let store = Arc::new(Store::open(&self.path("state/envdrift.db")).unwrap());
        let mut d = Daemon::new(cfg, self.dir.path().to_path_buf(), store, rec).unwrap();
        d.base_backoff = Duration::from_millis(20);
        Arc::new(d)
    }
}

fn kinds(rec: &Recorder) -> Vec<NoticeKind> {
    rec.got.lock().unwrap().iter().map(|n| n.kind).collect()
}

#[tokio::test]
async fn one_alert_per_scan_nothing_when_unchanged_then_resolved() {
    let env = Env::new();
    let rec = Arc::new(Recorder::default());
    let d = env.daemon(rec.clone());
    assert_eq!(d.run_once(None).await.unwrap(), 0);
    assert_eq!(kinds(&rec), [NoticeKind::Drift]);
    {
        let got = rec.got.lock().unwrap();
        let n = &got[0];
        assert_eq!(n.drifts.len(), 6, "{:#?}", n.drifts);
        assert!(
            n.title.starts_with("production: 6 new drifts (2 critical"),
            "{}",
            n.title
        );
        let text = serde_json::to_string(n).unwrap();
        assert!(
            !text.contains("cHJvZC1wYXNz"),
            "no Secret value in a notice"
        );
        let hotfix = n
            .drifts
            .iter()
            .flat_map(|d| &d.changes)
            .find(|c| c.field.ends_with(".image"))
            .unwrap();
        assert_eq!(hotfix.manager.as_deref(), Some("kubectl-set"));
    }
    // An unchanged rescan says nothing.
    d.scan(&Target::Environment("production".into()))
        .await
        .unwrap();
    d.drain_outbox(Duration::from_secs(5)).await.unwrap();
    assert_eq!(kinds(&rec).len(), 1);
    // Revert one change live: delete the unmanaged ConfigMap → one "resolved" alert.
    let cm = env.path("live/configmaps.yaml");
    let parsed = envdrift::source::manifest::parse_manifest_text(
        &std::fs::read_to_string(&cm).unwrap(),
        false,
    );
    let items: Vec<serde_json::Value> = parsed
        .objects
        .into_iter()
        .map(|o| o.value)
        .filter(|v| v["metadata"]["name"] != "debug-flags")
        .collect();
    std::fs::remove_file(&cm).unwrap();
    std::fs::write(
        env.path("live/configmaps.json"),
        serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items}).to_string(),
    )
    .unwrap();
    d.scan(&Target::Environment("production".into()))
        .await
        .unwrap();
    d.drain_outbox(Duration::from_secs(5)).await.unwrap();
    assert_eq!(kinds(&rec), [NoticeKind::Drift, NoticeKind::Resolved]);
    let got = rec.got.lock().unwrap();
    assert_eq!(got[1].drifts.len(), 1);
    assert!(got[1].drifts[0].resource.contains("debug-flags"));
}

#[tokio::test]
async fn failing_source_keeps_drifts_open_and_says_so_once() {
    let env = Env::new();
    let rec = Arc::new(Recorder::default());
    let d = env.daemon(rec.clone());
    d.run_once(None).await.unwrap();
    let open_before = d.store.open_drifts("production").unwrap().len();
    std::fs::rename(env.path("live"), env.path("live-gone")).unwrap();
    assert_eq!(d.run_once(None).await.unwrap(), 2, "a failed scan exits 2");
    d.run_once(None).await.unwrap();
    assert_eq!(
        d.store.open_drifts("production").unwrap().len(),
        open_before,
        "nothing resolved"
    );
    assert_eq!(
        kinds(&rec),
        [NoticeKind::Drift, NoticeKind::ScanFailed],
        "one notice per failure streak, no 'missing' flood"
    );
    let got = rec.got.lock().unwrap();
    assert!(got[1].error.as_deref().unwrap().contains("does not exist"));
    let scans = d.store.scans(Some("production"), 5).unwrap();
    assert_eq!(scans[0].outcome.as_str(), "failed");
}

#[tokio::test]
async fn partial_scan_reports_no_missing_and_resolves_nothing_missing() {
    let env = Env::new();
    let rec = Arc::new(Recorder::default());
    let d = env.daemon(rec.clone());
    d.run_once(None).await.unwrap();
    // A broken live file: its objects are unknown, so nothing may turn "missing" or resolve.
    std::fs::write(
        env.path("live/deployments.yaml"),
        "apiVersion: v1\nitems:\n- [broken\n",
    )
    .unwrap();
    assert_eq!(d.run_once(None).await.unwrap(), 2);
    let open = d.store.open_drifts("production").unwrap();
    assert!(
        open.iter()
            .all(|r| r.drift_type != "missing" || r.resource.contains("Service")),
        "{open:#?}"
    );
    let got = rec.got.lock().unwrap();
    let last = got.last().unwrap();
    assert_eq!(last.kind, NoticeKind::ScanFailed, "{got:#?}");
    assert!(!got.iter().any(|n| {
        n.kind == NoticeKind::Drift
            && n.drifts
                .iter()
                .any(|x| x.drift_type == "missing" && x.resource.contains("Deployment"))
    }));
}

#[tokio::test]
async fn retries_then_delivers_once() {
    let env = Env::new();
    let rec = Arc::new(Recorder {
        fail_first: Mutex::new(2),
        ..Recorder::default()
    });
    let d = env.daemon(rec.clone());
    d.run_once(None).await.unwrap();
    assert_eq!(kinds(&rec), [NoticeKind::Drift]);
    let rows = d.store.outbox(10).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].state.as_str(), rows[0].attempts), ("sent", 3));
}

#[tokio::test]
async fn restart_resumes_unsent_alerts_exactly_once() {
    let env = Env::new();
    // First process: the sink is down for longer than the run's patience.
    let rec1 = Arc::new(Recorder {
        fail_first: Mutex::new(1000),
        ..Recorder::default()
    });
    let d1 = env.daemon(rec1.clone());
    d1.scan(&Target::Environment("production".into()))
        .await
        .unwrap();
    assert!(rec1.got.lock().unwrap().is_empty());
    drop(d1);
    // "Restart": a new daemon on the same store delivers the stored alert once.
    let rec2 = Arc::new(Recorder::default());
    let d2 = env.daemon(rec2.clone());
    d2.drain_outbox(Duration::from_secs(5)).await.unwrap();
    d2.drain_outbox(Duration::from_secs(1)).await.unwrap();
    assert_eq!(kinds(&rec2), [NoticeKind::Drift]);
}

#[tokio::test]
async fn ack_silences_reminders_and_reports_render() {
    let env = Env::new();
    std::fs::write(
        env.path("envdrift.yaml"),
        "data_dir: state\nalerts:\n  reminder_after: 1ms\nreports:\n  - name: daily\n    cron: \"0 0 9 * * *\"\nenvironments:\n  production:\n    desired: {type: dir, path: git}\n    live: {type: dump, path: live}\n",
    )
    .unwrap();
    let rec = Arc::new(Recorder::default());
    let d = env.daemon(rec.clone());
    d.run_once(None).await.unwrap();
    assert_eq!(kinds(&rec), [NoticeKind::Drift, NoticeKind::Report]);
    let open = d.store.open_drifts("production").unwrap();
    for r in &open[1..] {
        d.store.ack(r.id, "alice").unwrap();
    }
    tokio::time::sleep(Duration::from_millis(5)).await;
    d.scan(&Target::Environment("production".into()))
        .await
        .unwrap();
    d.drain_outbox(Duration::from_secs(5)).await.unwrap();
    let got = rec.got.lock().unwrap();
    let reminder = got
        .iter()
        .find(|n| n.kind == NoticeKind::Reminder)
        .expect("a reminder");
    assert_eq!(
        reminder.drifts.len(),
        1,
        "acknowledged drifts are not reminded"
    );
    let report = got.iter().find(|n| n.kind == NoticeKind::Report).unwrap();
    assert_eq!(report.report[0].name, "production");
    assert_eq!(
        report.report[0]
            .open_by_severity
            .iter()
            .map(|(_, n)| n)
            .sum::<usize>(),
        6
    );
}

#[tokio::test]
async fn git_desired_source_records_the_commit() {
    let env = Env::new();
    let repo = env.path("repo");
    copy_dir(&env.path("git"), &repo.join("manifests"));
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .args(args)
            .current_dir(&repo)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    git(&["init", "-q", "-b", "main"]);
    git(&["add", "."]);
    git(&["commit", "-q", "-m", "manifests"]);
    let sha = git(&["rev-parse", "HEAD"]);
    std::fs::write(
        env.path("envdrift.yaml"),
        "data_dir: state\nenvironments:\n  production:\n    desired: {type: git, repo: repo, ref: main, path: manifests}\n    live: {type: dump, path: live}\n",
    )
    .unwrap();
    let rec = Arc::new(Recorder::default());
    let d = env.daemon(rec.clone());
    assert_eq!(d.run_once(None).await.unwrap(), 0);
    let scan = &d.store.scans(Some("production"), 1).unwrap()[0];
    assert_eq!(scan.outcome.as_str(), "ok", "{:?}", scan.error);
    assert_eq!(scan.revision.as_deref(), Some(sha.as_str()));
    assert_eq!(rec.got.lock().unwrap()[0].drifts.len(), 6);
}

/// Retries are bounded by time (`retry_for`), not by a count: eleven failures in a row
/// (more than the ten attempts that used to be the limit) still end in one delivery.
#[tokio::test]
async fn retries_are_bounded_by_time_not_by_a_count() {
    let env = Env::new();
    let rec = Arc::new(Recorder {
        fail_first: Mutex::new(11),
        ..Recorder::default()
    });
    let cfg = Config::load(&env.path("envdrift.yaml")).unwrap();
    let store = Arc::new(Store::open(&env.path("state/envdrift.db")).unwrap());
    let mut d = Daemon::new(cfg, env.path(""), store, rec.clone()).unwrap();
    d.base_backoff = Duration::from_millis(1);
    let d = Arc::new(d);
    d.run_once(None).await.unwrap();
    d.drain_outbox(Duration::from_secs(30)).await.unwrap();
    assert_eq!(kinds(&rec), [NoticeKind::Drift]);
    let rows = d.store.outbox(10).unwrap();
    assert_eq!((rows[0].state.as_str(), rows[0].attempts), ("sent", 12));

    // A short retry time: the alert is given up when it has passed, after several tries.
    let env = Env::new();
    let yaml = std::fs::read_to_string(env.path("envdrift.yaml")).unwrap();
    std::fs::write(
        env.path("envdrift.yaml"),
        format!("{yaml}alerts:\n  retry_for: 300ms\n"),
    )
    .unwrap();
    let rec = Arc::new(Recorder {
        fail_first: Mutex::new(1000),
        ..Recorder::default()
    });
    let d = env.daemon(rec.clone());
    d.run_once(None).await.unwrap();
    d.drain_outbox(Duration::from_secs(30)).await.unwrap();
    assert!(rec.got.lock().unwrap().is_empty());
    let rows = d.store.outbox(10).unwrap();
    assert_eq!(rows[0].state.as_str(), "failed", "{:?}", rows[0]);
    assert!(rows[0].attempts >= 2, "{:?}", rows[0]);
    let created = chrono::DateTime::parse_from_rfc3339(&rows[0].created_at).unwrap();
    let last = chrono::DateTime::parse_from_rfc3339(&rows[0].next_attempt_at).unwrap();
    assert!(
        last - created >= chrono::Duration::milliseconds(300),
        "{:?}",
        rows[0]
    );
}
