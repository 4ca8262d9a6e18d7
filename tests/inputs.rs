//! Hostile inputs to `envdrift diff`, each run as a real process with a deadline (issue 12,
//! items 6 and 7): a FIFO or a socket in a manifest directory, a FIFO named directly, a
//! symbolic link cycle, a link leaving the given directory, a file over the size cap.
//! A run that does not finish in time is killed and the test fails: nothing here may block.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use wait_timeout::ChildExt;

/// Longest one run may take; a blocked read never ends, a normal run takes well under 1 s.
const DEADLINE: Duration = Duration::from_secs(30);

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", self.stdout, self.stderr))
    }
}

/// Runs envdrift with `args`, killing it (and failing) when it outlives [`DEADLINE`].
fn envdrift(args: &[&str]) -> Run {
    let out = tempfile::tempdir().unwrap();
    let so = out.path().join("stdout");
    let se = out.path().join("stderr");
    let mut child = Command::new(env!("CARGO_BIN_EXE_envdrift"))
        .args(args)
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&so).unwrap())
        .stderr(std::fs::File::create(&se).unwrap())
        .spawn()
        .expect("spawn envdrift");
    let Some(status) = child.wait_timeout(DEADLINE).expect("wait") else {
        child.kill().ok();
        child.wait().ok();
        panic!(
            "envdrift {args:?} still running after {DEADLINE:?}: killed. stderr: {}",
            std::fs::read_to_string(&se).unwrap_or_default()
        );
    };
    Run {
        code: status.code(),
        stdout: std::fs::read_to_string(&so).unwrap(),
        stderr: std::fs::read_to_string(&se).unwrap(),
    }
}

fn cm(name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: default\ndata:\n  k: v\n"
    )
}

fn mkfifo(p: &Path) {
    // coreutils' mkfifo: no unsafe code in the tests.
    let status = std::process::Command::new("mkfifo")
        .arg(p)
        .status()
        .expect("mkfifo runs");
    assert!(status.success(), "mkfifo {}", p.display());
}

/// A desired directory and a live directory both holding ConfigMap `a`.
fn sides() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let desired = tmp.path().join("desired");
    let live = tmp.path().join("live");
    std::fs::create_dir_all(&desired).unwrap();
    std::fs::create_dir_all(&live).unwrap();
    std::fs::write(desired.join("a.yaml"), cm("a")).unwrap();
    std::fs::write(live.join("a.yaml"), cm("a")).unwrap();
    (tmp, desired, live)
}

fn diff(desired: &Path, live: &Path, extra: &[&str]) -> Run {
    let mut args = vec![
        "diff",
        "--desired",
        desired.to_str().unwrap(),
        "--live",
        live.to_str().unwrap(),
        "-f",
        "json",
    ];
    args.extend_from_slice(extra);
    envdrift(&args)
}

/// The `skipped` entries of a JSON report whose source ends with `name`.
fn skipped_reason(v: &serde_json::Value, name: &str) -> Option<String> {
    v["skipped"].as_array()?.iter().find_map(|s| {
        s["source"]
            .as_str()?
            .ends_with(name)
            .then(|| s["reason"].as_str().unwrap_or("").to_string())
    })
}

#[test]
fn fifo_in_a_manifest_directory_is_skipped_with_a_note() {
    let (_tmp, desired, live) = sides();
    mkfifo(&desired.join("pipe.yaml"));
    let run = diff(&desired, &live, &[]);
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    let v = run.json();
    let reason = skipped_reason(&v, "pipe.yaml").expect("a skipped note for the FIFO");
    assert!(reason.contains("FIFO"), "{reason}");
    assert_eq!(v["summary"]["drifts"], 0, "{}", run.stdout);
}

#[test]
fn fifo_named_directly_is_refused_with_an_input_error() {
    let (tmp, _desired, live) = sides();
    let fifo = tmp.path().join("given.yaml");
    mkfifo(&fifo);
    let run = diff(&fifo, &live, &[]);
    assert_eq!(run.code, Some(2), "{}\n{}", run.stdout, run.stderr);
    let all = format!("{}{}", run.stdout, run.stderr);
    assert!(all.contains("given.yaml") && all.contains("FIFO"), "{all}");
}

#[test]
fn socket_in_a_manifest_directory_is_skipped_with_a_note() {
    let (_tmp, desired, live) = sides();
    let _listener = std::os::unix::net::UnixListener::bind(desired.join("sock.yaml")).unwrap();
    let run = diff(&desired, &live, &[]);
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    let reason = skipped_reason(&run.json(), "sock.yaml").expect("a skipped note for the socket");
    assert!(reason.contains("socket"), "{reason}");
}

#[test]
fn symlink_cycle_is_walked_once() {
    let (_tmp, desired, live) = sides();
    let sub = desired.join("sub");
    std::fs::create_dir(&sub).unwrap();
    std::fs::write(sub.join("b.yaml"), cm("b")).unwrap();
    std::fs::write(live.join("b.yaml"), cm("b")).unwrap();
    // sub/loop -> .. (the desired directory itself): inside the root, but a cycle.
    std::os::unix::fs::symlink("..", sub.join("loop")).unwrap();
    let run = diff(&desired, &live, &[]);
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    let v = run.json();
    assert_eq!(v["summary"]["drifts"], 0, "{}", run.stdout);
    let reason = skipped_reason(&v, "loop").expect("a skipped note for the cycle");
    assert!(reason.contains("already read"), "{reason}");
}

#[test]
fn link_leaving_the_directory_is_not_followed_unless_asked() {
    let (tmp, _, live) = sides();
    // repo/desired holds ConfigMap `a` and `up -> ..`; repo/outside.yaml is outside it.
    let repo = tmp.path().join("repo");
    let desired = repo.join("desired");
    std::fs::create_dir_all(&desired).unwrap();
    std::fs::write(desired.join("a.yaml"), cm("a")).unwrap();
    std::fs::write(repo.join("outside.yaml"), cm("outside")).unwrap();
    std::os::unix::fs::symlink("..", desired.join("up")).unwrap();

    let run = diff(&desired, &live, &[]);
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    let v = run.json();
    assert_eq!(
        v["summary"]["drifts"], 0,
        "outside.yaml was read: {}",
        run.stdout
    );
    let reason = skipped_reason(&v, "up").expect("a skipped note for the link");
    assert!(
        reason.contains("outside") && reason.contains("--follow-links"),
        "{reason}"
    );

    // With --follow-links the file outside is read (ConfigMap `outside` is then missing
    // live) and the walk still ends: the desired directory, reached again, is not re-read.
    let run = diff(&desired, &live, &["--follow-links"]);
    assert_eq!(run.code, Some(1), "{}\n{}", run.stdout, run.stderr);
    let v = run.json();
    let names: Vec<&str> = v["drifts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["resource"]["name"].as_str())
        .collect();
    assert!(names.contains(&"outside"), "{}", run.stdout);
    assert!(
        v["errors"].as_array().unwrap().is_empty(),
        "no duplicate objects: {}",
        run.stdout
    );
}

#[test]
fn file_over_the_size_cap_is_an_input_error() {
    let (_tmp, desired, live) = sides();
    let run = diff(&desired, &live, &["--max-file-size", "16"]);
    assert_eq!(run.code, Some(2), "{}\n{}", run.stdout, run.stderr);
    let v = run.json();
    let msgs: Vec<String> = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| format!("{} {}", e["source"], e["message"]))
        .collect();
    assert!(
        msgs.iter()
            .any(|m| m.contains("a.yaml") && m.contains("16 byte limit")),
        "{msgs:?}"
    );
}

/// Item 12: a desired side with a malformed file never yields `unmanaged` drift (nor a
/// `kubectl delete` suggestion) for the live object that file described; the run exits 2,
/// lists the error and says why drifts were withheld.
#[test]
fn malformed_desired_file_withholds_unmanaged_drift() {
    let (_tmp, desired, live) = sides();
    // desired/b.yaml describes ConfigMap `b` but does not parse; `b` exists live.
    std::fs::write(
        desired.join("b.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n  namespace: default\ndata:\n  k: [unclosed\n",
    )
    .unwrap();
    std::fs::write(live.join("b.yaml"), cm("b")).unwrap();
    let run = diff(&desired, &live, &[]);
    assert_eq!(run.code, Some(2), "{}\n{}", run.stdout, run.stderr);
    let v = run.json();
    assert_eq!(v["summary"]["by_type"]["unmanaged"], 0, "{}", run.stdout);
    assert!(!run.stdout.contains("kubectl delete"), "{}", run.stdout);
    let errors = v["errors"].as_array().unwrap();
    assert!(
        errors
            .iter()
            .any(|e| e["source"].as_str().unwrap().ends_with("b.yaml")),
        "{}",
        run.stdout
    );
    let notes = v["notes"].as_array().expect("a note on withheld drifts");
    assert!(
        notes
            .iter()
            .any(|n| n.as_str().unwrap().contains("unmanaged drifts withheld")),
        "{notes:?}"
    );
    let table = envdrift(&[
        "diff",
        "--desired",
        desired.to_str().unwrap(),
        "--live",
        live.to_str().unwrap(),
        "-f",
        "table",
    ]);
    assert_eq!(table.code, Some(2));
    assert!(
        table.stdout.contains("INPUT ERRORS") && table.stdout.contains("withheld"),
        "{}",
        table.stdout
    );
    assert!(!table.stdout.contains("kubectl delete"), "{}", table.stdout);
}
