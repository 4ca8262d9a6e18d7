//! End-to-end tests of the `envdrift` binary: the bundled demo (pinned with insta), exit
//! codes, and bad input that must give clear errors and never a panic.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn envdrift(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_envdrift"))
        .args(args)
        .current_dir(root())
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1")
        .output()
        .expect("run envdrift")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn demo(env: &str, format: &str) -> Output {
    let desired = format!("config/demo/git/{env}");
    let live = format!("config/demo/live/{env}");
    envdrift(&[
        "diff",
        "--desired",
        &desired,
        "--live",
        &live,
        "--format",
        format,
    ])
}

#[test]
fn demo_production_table() {
    let out = demo("production", "table");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    insta::assert_snapshot!(text(&out.stdout));
}

#[test]
fn demo_staging_table() {
    let out = demo("staging", "table");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    insta::assert_snapshot!(text(&out.stdout));
}

#[test]
fn demo_production_json() {
    let out = demo("production", "json");
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    assert_eq!(v["schema"], "envdrift.diff/v1");
    assert_eq!(v["summary"]["drifts"], 6);
    assert_eq!(v["summary"]["by_type"]["missing"], 1);
    assert_eq!(v["summary"]["by_type"]["unmanaged"], 1);
    assert_eq!(v["summary"]["suppressed"]["controller"], 1);
    for d in v["drifts"].as_array().unwrap() {
        for field in [
            "type",
            "severity",
            "resource",
            "changes",
            "patch",
            "kubectl",
            "fingerprint",
        ] {
            assert!(d.get(field).is_some(), "drift lacks {field}: {d}");
        }
        for c in d["changes"].as_array().unwrap() {
            for field in [
                "path", "op", "desired", "live", "category", "severity", "manager", "cause",
            ] {
                assert!(c.get(field).is_some(), "change lacks {field}: {c}");
            }
        }
    }
    insta::assert_json_snapshot!(v);
}

#[test]
fn demo_production_markdown() {
    let out = demo("production", "markdown");
    insta::assert_snapshot!(text(&out.stdout));
}

#[test]
fn fail_on_threshold_and_never() {
    let args = |fail: &'static str| {
        vec![
            "diff",
            "--desired",
            "config/demo/git/staging",
            "--live",
            "config/demo/live/staging",
            "-f",
            "json",
            "--fail-on",
            fail,
        ]
    };
    assert_eq!(envdrift(&args("critical")).status.code(), Some(0));
    assert_eq!(envdrift(&args("medium")).status.code(), Some(1));
    assert_eq!(envdrift(&args("never")).status.code(), Some(0));
}

#[test]
fn no_drift_exits_zero() {
    let out = envdrift(&[
        "diff",
        "--desired",
        "tests/fixtures/realistic/desired.yaml",
        "--live",
        "tests/fixtures/realistic/live.yaml",
        "-f",
        "table",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("No drift."));
}

const CM: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\n  namespace: default\ndata:\n  A: \"1\"\n";

fn write(dir: &Path, name: &str, content: &[u8]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    p.display().to_string()
}

#[test]
fn malformed_yaml_names_file_line_column_and_the_rest_is_compared() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("desired");
    let l = dir.path().join("live");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::create_dir_all(&l).unwrap();
    write(&d, "good.yaml", CM.as_bytes());
    write(
        &d,
        "bad.yaml",
        b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [broken\n",
    );
    write(&l, "live.yaml", CM.replace("\"1\"", "\"2\"").as_bytes());
    let out = envdrift(&[
        "diff",
        "--desired",
        d.to_str().unwrap(),
        "--live",
        l.to_str().unwrap(),
        "-f",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let e = &v["errors"][0];
    assert!(e["source"].as_str().unwrap().ends_with("bad.yaml"), "{e}");
    assert!(e["line"].as_u64().unwrap() >= 4, "{e}");
    assert!(e["column"].as_u64().is_some(), "{e}");
    assert!(
        e["message"].as_str().unwrap().starts_with("invalid YAML"),
        "{e}"
    );
    // The good file was still compared.
    assert_eq!(v["summary"]["drifts"], 1);
    assert_eq!(v["drifts"][0]["changes"][0]["path"], "/data/A");
}

#[test]
fn duplicates_and_nameless_objects() {
    let dir = tempfile::tempdir().unwrap();
    let a = write(dir.path(), "a.yaml", CM.as_bytes());
    let b = write(
        dir.path(),
        "b.yaml",
        format!("# comment\n---\n{CM}").as_bytes(),
    );
    let c = write(
        dir.path(),
        "c.yaml",
        b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  labels: {a: b}\n",
    );
    let out = envdrift(&[
        "diff",
        "--desired",
        &a,
        &b,
        &c,
        "--live",
        &a,
        "-f",
        "table",
        "--color",
        "never",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let s = text(&out.stdout);
    assert!(
        s.contains(&format!(
            "{b}:2: duplicate object ConfigMap default/app: already defined at {a}:1"
        )),
        "{s}"
    );
    assert!(
        s.contains(&format!("{c}:1: ConfigMap object has no metadata.name")),
        "{s}"
    );
}

#[test]
fn binary_garbage_and_missing_paths() {
    let dir = tempfile::tempdir().unwrap();
    let mut garbage = Vec::new();
    let mut x: u32 = 12345;
    for _ in 0..4096 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        garbage.push((x >> 16) as u8);
    }
    let g = write(dir.path(), "garbage.yaml", &garbage);
    let out = envdrift(&[
        "diff",
        "--desired",
        &g,
        "/nonexistent/envdrift",
        "--live",
        &g,
        "-f",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).is_empty(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let msgs: Vec<&str> = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert!(
        msgs.iter()
            .any(|m| m.contains("binary") || m.contains("UTF-8")),
        "{msgs:?}"
    );
    assert!(
        msgs.iter().any(|m| m.starts_with("cannot read")),
        "{msgs:?}"
    );
}

#[test]
fn a_50_mb_file_is_handled() {
    let dir = tempfile::tempdir().unwrap();
    // 50 MB of one YAML mapping: read, parsed within the budget, skipped as no object.
    let mut big = String::with_capacity(52 * 1024 * 1024);
    let mut i = 0u64;
    while big.len() < 50 * 1024 * 1024 {
        big.push_str(&format!("key{i:08}: some value that fills the line {i}\n"));
        i += 1;
    }
    let f = write(dir.path(), "big.yaml", big.as_bytes());
    let out = envdrift(&[
        "diff",
        "--desired",
        &f,
        "--live",
        &f,
        "-f",
        "json",
        "--allow-empty",
    ]);
    assert!(out.status.code().is_some(), "killed by a signal");
    assert!(
        !text(&out.stderr).contains("panicked"),
        "{}",
        text(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["skipped"].as_array().unwrap().len(), 2, "{}", v["errors"]);
}

#[test]
fn secret_values_never_printed() {
    let dir = tempfile::tempdir().unwrap();
    let secret = |v: &str| {
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: default\nstringData:\n  password: {v}\n"
        )
    };
    let d = write(dir.path(), "d.yaml", secret("hunter2-desired").as_bytes());
    let l = write(dir.path(), "l.yaml", secret("hunter2-live").as_bytes());
    let missing = write(
        dir.path(),
        "m.yaml",
        b"apiVersion: v1\nkind: Secret\nmetadata:\n  name: other\n  namespace: default\ndata:\n  token: aHVudGVyMi1taXNzaW5n\n",
    );
    // A malformed Secret: the error must not quote the value.
    let bad = write(
        dir.path(),
        "bad.yaml",
        b"apiVersion: v1\nkind: Secret\nmetadata:\n  name: x\nstringData:\n  password: \"hunter2-broken\n",
    );
    for format in ["table", "json", "markdown"] {
        let out = envdrift(&[
            "diff",
            "--desired",
            &d,
            &missing,
            &bad,
            "--live",
            &l,
            "-f",
            format,
        ]);
        let all = text(&out.stdout) + &text(&out.stderr);
        for needle in ["hunter2", "aHVudGVyMi", "aHVudGVy"] {
            assert!(
                !all.contains(needle),
                "{format} output leaks {needle}:\n{all}"
            );
        }
        assert!(all.contains("sha256:"), "{format}: {all}");
    }
}

#[test]
fn config_check_reports_every_problem_with_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(
        dir.path(),
        "good.yaml",
        b"ignore:\n  - kind: Deployment\n    paths: [/spec/replicas]\n",
    );
    let out = envdrift(&["config", "check", &good]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let bad = write(
        dir.path(),
        "bad.yaml",
        b"ignore:\n  - paths: [spec/replicas]\nseverity_rules:\n  - kind: X\n    severity: low\n",
    );
    let out = envdrift(&["config", "check", &bad]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr).replace(&bad, "bad.yaml");
    insta::assert_snapshot!(err);
    let typo = write(dir.path(), "typo.yaml", b"ignores:\n  - kind: X\n");
    let out = envdrift(&["config", "check", &typo]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("typo.yaml:1:"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn unknown_flag_is_a_usage_error() {
    let out = envdrift(&["diff", "--nope"]);
    assert_eq!(out.status.code(), Some(2));
}

/// `config/demo.yaml` with its store in `state_dir`, written beside it (its paths are
/// relative to `config/`) as `test-TAG-PID.yaml`; the caller removes it.
fn demo_config_copy(state_dir: &Path, tag: &str) -> PathBuf {
    let cfg = std::fs::read_to_string(root().join("config/demo.yaml"))
        .unwrap()
        .replace(
            "data_dir: ../.envdrift-demo",
            &format!("data_dir: {}", state_dir.join("state").display()),
        );
    let path = root()
        .join("config")
        .join(format!("test-{tag}-{}.yaml", std::process::id()));
    std::fs::write(&path, cfg).unwrap();
    path
}

/// A config in `dir` with `head` first, then the demo's production environment, then `tail`.
fn production_config(dir: &Path, head: &str, tail: &str) -> PathBuf {
    let demo = root().join("config/demo");
    let cfg = dir.join("envdrift.yaml");
    std::fs::write(
        &cfg,
        format!(
            "{head}environments:\n  production:\n    desired: {{type: dir, path: {d}/git/production}}\n    live: {{type: dump, path: {d}/live/production}}\n{tail}",
            d = demo.display()
        ),
    )
    .unwrap();
    cfg
}

#[test]
fn daemon_once_scan_and_report_on_the_demo() {
    let dir = tempfile::tempdir().unwrap();
    let cfg_path = demo_config_copy(dir.path(), "demo");
    let c = cfg_path.display().to_string();
    let once = envdrift(&["daemon", "--config", &c, "--once"]);
    let scan = envdrift(&["scan", "--config", &c, "--env", "staging", "-f", "json"]);
    let report = envdrift(&["report", "--config", &c]);
    let md = envdrift(&["report", "--config", &c, "--format", "markdown"]);
    let json = envdrift(&["report", "--config", &c, "--format", "json"]);
    let bad = envdrift(&["scan", "--config", &c, "--env", "mars"]);
    std::fs::remove_file(&cfg_path).unwrap();
    assert_eq!(once.status.code(), Some(1), "{}", text(&once.stderr));
    assert_eq!(scan.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&scan.stdout).unwrap();
    assert_eq!(v["summary"]["drifts"], 2);
    assert_eq!(report.status.code(), Some(0));
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", "[time]");
    settings.add_filter(r"open for \d+[mhd]", "open for [age]");
    settings.bind(|| {
        insta::assert_snapshot!("demo_report_text", text(&report.stdout));
        insta::assert_snapshot!("demo_report_markdown", text(&md.stdout));
    });
    // `report -f json` has the value types of `diff -f json`: a boolean stays a boolean and
    // an absent value is null, not the texts `"true"` and `"(absent)"` the templates show.
    let report_json: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let changes: Vec<&serde_json::Value> = report_json["sections"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["oldest"].as_array().unwrap())
        .flat_map(|d| d["changes"].as_array().unwrap())
        .collect();
    let privileged = changes
        .iter()
        .find(|c| {
            c["path"]
                .as_str()
                .unwrap()
                .ends_with("/securityContext/privileged")
        })
        .expect("the demo's privileged container is in the report");
    assert_eq!(privileged["live"], serde_json::json!(true));
    assert_eq!(privileged["desired"], serde_json::Value::Null);
    assert!(
        changes
            .iter()
            .all(|c| c["desired"] != "(absent)" && c["live"] != "(absent)"),
        "{report_json}"
    );
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        text(&bad.stderr).contains("--env mars"),
        "{}",
        text(&bad.stderr)
    );
}

#[test]
fn bundled_configs_pass_config_check() {
    for (file, envs) in [
        ("config/demo.yaml", vec![]),
        ("config/demo/compare.yaml", vec![]),
        (
            "config/envdrift.example.yaml",
            vec![
                "ENVDRIFT_READ_TOKEN",
                "GITOPS_TOKEN",
                "SLACK_BOT_TOKEN",
                "SMTP_PASSWORD",
                "WEBHOOK_SECRET",
            ],
        ),
    ] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_envdrift"));
        cmd.args(["config", "check", file]).current_dir(root());
        for e in &envs {
            cmd.env(e, "a-test-secret-value");
        }
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{file}: {}", text(&out.stderr));
        assert!(!text(&out.stdout).contains("a-test-secret-value"));
    }
    // Without the secrets' environment variables the file is still valid: every missing one
    // is named in a warning (exit 0), and `--strict` makes them errors.
    let out = envdrift(&["config", "check", "config/envdrift.example.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("warning: ")
            && err.contains("SLACK_BOT_TOKEN")
            && err.contains("SMTP_PASSWORD"),
        "{err}"
    );
    assert!(
        text(&out.stdout).contains("3 warning(s)"),
        "{}",
        text(&out.stdout)
    );
    let out = envdrift(&[
        "config",
        "check",
        "--strict",
        "config/envdrift.example.yaml",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("error: "),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn printing_a_report_needs_no_sink_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = production_config(
        dir.path(),
        "data_dir: state\n",
        "alerts:\n  sinks:\n    - {type: slack, name: ops, channel: C1, token_env: ENVDRIFT_TEST_UNSET_SLACK_TOKEN}\nreports:\n  - {name: daily, cron: \"0 0 9 * * *\", sinks: [ops]}\n",
    );
    let c = cfg.to_str().unwrap();
    let out = envdrift(&["report", "--config", c]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // Sending it does need them, and says which.
    let out = envdrift(&["report", "--config", c, "--send"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("ENVDRIFT_TEST_UNSET_SLACK_TOKEN"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn empty_sides_are_errors_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let live = write(dir.path(), "live.yaml", CM.as_bytes());
    let e = empty.to_str().unwrap();
    let out = envdrift(&["diff", "--desired", e, "--live", &live, "-f", "json"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("desired ({e}): no Kubernetes objects found"))
            && err.contains("--allow-empty"),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "no report for an empty side");
    // An empty live side would make every desired object `missing`: an error too.
    let out = envdrift(&["diff", "--desired", &live, "--live", e, "-f", "json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains(&format!("live ({e})")),
        "{}",
        text(&out.stderr)
    );
    let out = envdrift(&["compare", "--from", e, "--to", &live, "-f", "json"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    // With --allow-empty the comparison runs.
    let out = envdrift(&[
        "diff",
        "--desired",
        &live,
        "--live",
        e,
        "-f",
        "json",
        "--allow-empty",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["drifts"][0]["type"], "missing");
}

#[test]
fn a_json_array_of_objects_is_read_like_a_list() {
    let dir = tempfile::tempdir().unwrap();
    let desired = write(dir.path(), "desired.yaml", CM.as_bytes());
    let live_cm: serde_json::Value = serde_json::json!([{
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "app", "namespace": "default"},
        "data": {"A": "2"}
    }]);
    let live = write(
        dir.path(),
        "live.json",
        serde_json::to_string_pretty(&live_cm).unwrap().as_bytes(),
    );
    let out = envdrift(&["diff", "--desired", &desired, "--live", &live, "-f", "json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["summary"]["drifts"], 1, "{v}");
    assert_eq!(v["drifts"][0]["changes"][0]["path"], "/data/A");
}

#[test]
fn manifests_without_namespace_get_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let desired = write(
        dir.path(),
        "desired.yaml",
        CM.replace("  namespace: default\n", "").as_bytes(),
    );
    let live = write(
        dir.path(),
        "live.yaml",
        CM.replace("namespace: default", "namespace: shop")
            .as_bytes(),
    );
    let out = envdrift(&["diff", "--desired", &desired, "--live", &live, "-f", "json"]);
    assert!(
        text(&out.stderr).contains("hint: every namespaced desired object is in `default`")
            && text(&out.stderr).contains("--default-namespace"),
        "{}",
        text(&out.stderr)
    );
    let out = envdrift(&[
        "diff",
        "--desired",
        &desired,
        "--live",
        &live,
        "-f",
        "json",
        "--default-namespace",
        "shop",
    ]);
    assert!(
        !text(&out.stderr).contains("hint:"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn completions_and_man_page() {
    for shell in ["bash", "zsh", "fish"] {
        let out = envdrift(&["completions", shell]);
        assert_eq!(out.status.code(), Some(0), "{shell}");
        let s = text(&out.stdout);
        assert!(
            s.contains("envdrift") && s.contains("compare"),
            "{shell}: {s}"
        );
    }
    let out = envdrift(&["man"]);
    assert_eq!(out.status.code(), Some(0));
    let man = text(&out.stdout);
    assert!(
        man.contains(".TH envdrift 1") && man.contains("diff"),
        "{man}"
    );
}

#[test]
fn cluster_errors_say_it_once_and_list_the_contexts() {
    let dir = tempfile::tempdir().unwrap();
    let kc = write(
        dir.path(),
        "kubeconfig",
        b"apiVersion: v1\nkind: Config\nclusters:\n- name: a\n  cluster: {server: \"https://127.0.0.1:9\"}\nusers:\n- name: u\n  user: {token: not-a-real-token}\ncontexts:\n- name: staging\n  context: {cluster: a, user: u}\n- name: production\n  context: {cluster: a, user: u}\ncurrent-context: staging\n",
    );
    let desired = write(dir.path(), "cm.yaml", CM.as_bytes());
    let out = envdrift(&[
        "diff",
        "--desired",
        &desired,
        "--live",
        "cluster:nope",
        "--kubeconfig",
        &kc,
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert_eq!(
        err.trim(),
        "envdrift: error: live source cluster:nope: no context `nope` in the kubeconfig (contexts: production, staging)"
    );
    let missing = dir.path().join("absent");
    let out = envdrift(&[
        "diff",
        "--desired",
        &desired,
        "--live",
        "cluster:nope",
        "--kubeconfig",
        missing.to_str().unwrap(),
    ]);
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(err.matches(missing.to_str().unwrap()).count(), 1, "{err}");
    assert!(err.contains("cannot read it"), "{err}");
    assert!(!err.contains("not-a-real-token"));
}

#[test]
fn the_readme_main_job_prints_drifts_and_fixes_every_time() {
    let dir = tempfile::tempdir().unwrap();
    let cfg_path = demo_config_copy(dir.path(), "once");
    let c = cfg_path.display().to_string();
    let args = ["daemon", "--config", &c, "--once", "--fail-on", "never"];
    let first = envdrift(&args);
    let second = envdrift(&args);
    std::fs::remove_file(&cfg_path).unwrap();
    for (run, out, mark) in [(1, &first, "[new]"), (2, &second, "[known]")] {
        assert_eq!(
            out.status.code(),
            Some(0),
            "run {run}: {}",
            text(&out.stderr)
        );
        let s = text(&out.stdout);
        assert!(s.contains("production: scan ok"), "run {run}: {s}");
        assert!(
            s.contains("staging-vs-production: scan ok"),
            "run {run}: {s}"
        );
        assert!(
            s.contains("CRITICAL Deployment shop-prod/api  modified · manual") && s.contains(mark),
            "run {run}: {s}"
        );
        assert!(
            s.contains("fix (verified): kubectl patch deployment.apps api -n shop-prod"),
            "run {run}: {s}"
        );
        assert!(
            !s.contains("\u{1b}["),
            "no colour codes when not a terminal"
        );
        assert!(
            !text(&out.stderr).contains("\u{1b}["),
            "no colour codes in logs"
        );
    }
    assert!(
        text(&first.stdout).contains("report daily: sent to"),
        "{}",
        text(&first.stdout)
    );
    assert!(
        !text(&second.stdout).contains("[new]"),
        "{}",
        text(&second.stdout)
    );
    // Both runs' stdout pinned: what a new user sees first, and on every run after.
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(r"in \d+ ms", "in [n] ms");
    settings.add_filter(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", "[time]");
    settings.bind(|| {
        insta::assert_snapshot!("readme_main_job_first_run", text(&first.stdout));
        insta::assert_snapshot!("readme_main_job_second_run", text(&second.stdout));
    });
}

#[test]
fn a_taken_port_stops_the_daemon_at_once() {
    use wait_timeout::ChildExt;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = production_config(
        dir.path(),
        &format!("data_dir: state\nlisten: {addr}\n"),
        "",
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_envdrift"))
        .args(["daemon", "--config", cfg.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let status = child
        .wait_timeout(std::time::Duration::from_secs(20))
        .unwrap();
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("the daemon kept running on a taken port");
    };
    assert_eq!(status.code(), Some(2));
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(err.contains(&addr.to_string()), "{err}");
    assert!(
        !err.contains("scan finished"),
        "nothing scanned before the bind: {err}"
    );
    drop(taken);
}

#[test]
fn an_unusable_store_says_why_once() {
    let dir = tempfile::tempdir().unwrap();
    // data_dir under a regular file: its directory cannot be created.
    std::fs::write(dir.path().join("state"), "not a directory").unwrap();
    let cfg = production_config(dir.path(), "data_dir: state/db\n", "");
    let out = envdrift(&["daemon", "--config", cfg.to_str().unwrap(), "--once"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("cannot open the store: cannot create its directory")
            && err.contains("not a directory"),
        "{err}"
    );
    assert_eq!(err.matches("cannot open the store").count(), 1, "{err}");
}

/// A store file that is empty, not a database or damaged is never replaced: exit 2 naming
/// the file and what to do, the file left as it was.
#[test]
fn a_truncated_or_corrupt_store_is_never_silently_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = production_config(dir.path(), "data_dir: state\n", "");
    let cfg = cfg.to_str().unwrap();
    let db = dir.path().join("state/envdrift.db");
    let first = envdrift(&["daemon", "--config", cfg, "--once"]);
    assert_ne!(first.status.code(), Some(2), "{}", text(&first.stderr));
    let good = std::fs::read(&db).unwrap();
    assert!(good.len() > 8192, "{} bytes", good.len());
    let damaged = |bytes: &[u8], what: &str| {
        std::fs::write(&db, bytes).unwrap();
        let _ = std::fs::remove_file(dir.path().join("state/envdrift.db-wal"));
        let _ = std::fs::remove_file(dir.path().join("state/envdrift.db-shm"));
        let out = envdrift(&["daemon", "--config", cfg, "--once"]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{what}: {err}");
        assert!(err.contains(&db.display().to_string()), "{what}: {err}");
        assert!(err.contains(what), "{what}: {err}");
        assert!(err.contains("Restore it from a backup"), "{err}");
        assert_eq!(err.matches("cannot open the store").count(), 1, "{err}");
        assert_eq!(
            std::fs::read(&db).unwrap(),
            bytes,
            "{what}: the file was changed"
        );
    };
    damaged(b"", "the file is empty (0 bytes)");
    let mut garbage = good.clone();
    garbage[..16].copy_from_slice(b"not a database!\0");
    damaged(&garbage, "not an SQLite database");
    let mut torn = good.clone();
    torn[4096..8192].fill(0xA5);
    damaged(&torn, "the file is damaged");
    // The intact store still opens and keeps its history.
    std::fs::write(&db, &good).unwrap();
    let again = envdrift(&["daemon", "--config", cfg, "--once"]);
    assert_ne!(again.status.code(), Some(2), "{}", text(&again.stderr));
}

/// Daemons started together on one new store migrate it once; none fails.
#[test]
fn concurrent_starts_on_one_new_store_all_succeed() {
    for round in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let cfg = production_config(dir.path(), "data_dir: state\n", "");
        let children: Vec<_> = (0..3)
            .map(|_| {
                Command::new(env!("CARGO_BIN_EXE_envdrift"))
                    .args(["daemon", "--config", cfg.to_str().unwrap(), "--once"])
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for c in children {
            let out = c.wait_with_output().unwrap();
            let err = text(&out.stderr);
            assert_ne!(out.status.code(), Some(2), "round {round}: {err}");
            assert!(!err.contains("migration"), "round {round}: {err}");
        }
    }
}

fn notice_ids(db: &Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut st = conn
        .prepare("SELECT notice_id FROM outbox ORDER BY id")
        .unwrap();
    st.query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Notice ids carry the store's own id: a new store (after a reset) never reuses an id
/// that receivers already saw, and one store keeps its id across restarts.
#[test]
fn notice_ids_never_repeat_across_stores() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = production_config(
        dir.path(),
        "data_dir: state\n",
        "alerts:\n  sinks:\n    - type: log\n      name: log\n",
    );
    let cfg = cfg.to_str().unwrap();
    let db = dir.path().join("state/envdrift.db");
    let run = || {
        let out = envdrift(&["daemon", "--config", cfg, "--once"]);
        assert_ne!(out.status.code(), Some(2), "{}", text(&out.stderr));
    };
    run();
    let first = notice_ids(&db);
    assert!(!first.is_empty());
    let prefix = |id: &str| id.split('/').next().unwrap_or_default().to_string();
    let store_id = prefix(&first[0]);
    assert_eq!(store_id.len(), 32, "{first:?}");
    assert!(store_id.bytes().all(|b| b.is_ascii_hexdigit()), "{first:?}");
    assert!(first.iter().all(|id| prefix(id) == store_id), "{first:?}");
    // The same store after a restart: the same id.
    run();
    assert!(notice_ids(&db).iter().all(|id| prefix(id) == store_id));
    // A new store: the scan ids start again, the notice ids do not.
    std::fs::rename(&db, dir.path().join("old.db")).unwrap();
    run();
    let second = notice_ids(&db);
    assert!(!second.is_empty());
    assert!(
        second.iter().all(|id| !first.contains(id)),
        "{first:?} {second:?}"
    );
    assert_ne!(prefix(&second[0]), store_id);
}

/// `envdrift store check|backup|reset`: the way out that a refused store's message names.
#[test]
fn store_check_backup_and_reset() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = production_config(dir.path(), "data_dir: state\n", "");
    let cfg = cfg.to_str().unwrap();
    let db = dir.path().join("state/envdrift.db");
    let first = envdrift(&["daemon", "--config", cfg, "--once"]);
    assert_ne!(first.status.code(), Some(2), "{}", text(&first.stderr));
    let check = envdrift(&["store", "check", "--config", cfg]);
    assert_eq!(check.status.code(), Some(0), "{}", text(&check.stderr));
    let out = text(&check.stdout);
    assert!(
        out.contains(&format!(
            "schema version: {}",
            envdrift::store::MIGRATIONS.len()
        )) && out.ends_with("ok\n"),
        "{out}"
    );
    assert!(out.contains("scans: 1,"), "{out}");
    let backup = dir.path().join("backup.db");
    let b = envdrift(&["store", "backup", "--config", cfg, backup.to_str().unwrap()]);
    assert_eq!(b.status.code(), Some(0), "{}", text(&b.stderr));
    let again = envdrift(&["store", "backup", "--config", cfg, backup.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(2), "never overwrites a backup");
    // Damage the store: the daemon refuses it and names the commands; check says why.
    let mut bytes = std::fs::read(&db).unwrap();
    bytes[4096..8192].fill(0x5A);
    std::fs::write(&db, &bytes).unwrap();
    let refused = envdrift(&["daemon", "--config", cfg, "--once"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        text(&refused.stderr).contains("envdrift store check"),
        "{}",
        text(&refused.stderr)
    );
    let check = envdrift(&["store", "check", "--file", db.to_str().unwrap()]);
    assert_eq!(check.status.code(), Some(2), "{}", text(&check.stdout));
    assert!(
        text(&check.stdout).contains("problem: "),
        "{}",
        text(&check.stdout)
    );
    // Reset needs --yes, then moves the file aside (nothing deleted); a new store starts.
    let no = envdrift(&["store", "reset", "--config", cfg]);
    assert_eq!(no.status.code(), Some(2));
    assert!(text(&no.stderr).contains("--yes"), "{}", text(&no.stderr));
    assert!(db.exists());
    let yes = envdrift(&["store", "reset", "--config", cfg, "--yes"]);
    assert_eq!(yes.status.code(), Some(0), "{}", text(&yes.stderr));
    assert!(!db.exists());
    let aside: Vec<_> = std::fs::read_dir(dir.path().join("state"))
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("envdrift.db.broken-") && n.ends_with('Z'))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    let fresh = envdrift(&["daemon", "--config", cfg, "--once"]);
    assert_ne!(fresh.status.code(), Some(2), "{}", text(&fresh.stderr));
    // The backup is an intact store of its own.
    let check = envdrift(&["store", "check", "--file", backup.to_str().unwrap()]);
    assert_eq!(check.status.code(), Some(0), "{}", text(&check.stdout));
}
