//! A config file with problems in several sections: `envdrift config check` reports every
//! one, each at its file:line:col, and exits 2; other commands refuse the file with all of
//! them too.

use std::process::Command;

/// Line numbers matter: each problem's line is asserted below.
const BAD: &str = "\
default_namespace: shop
ignore:
  - kind: Deployment
    paths: [/spec/replicas]
  - kind: Service
    pathz: [/spec/clusterIP]
  - kind: ConfigMap
    jqPathExpressions:
      - '.data | select('
severity_rules:
  - kind: Secret
    path: /data
    severity: extreme
  - kind: ConfigMap
    labelSelector: 'app in (web'
    path: /data
    severity: low
listn: 127.0.0.1:8080
retention: forever
compare:
  expected:
    rules:
      - kind: Deployment
        labelSelector: 'tier=a,,b'
        paths: [/spec/replicas]
";

fn envdrift(args: &[&str], dir: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_envdrift"))
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1")
        .output()
        .expect("run envdrift")
}

fn expected_lines() -> Vec<(&'static str, &'static str)> {
    vec![
        // (position, text the message must contain)
        ("envdrift.yaml:6:5:", "unknown field `pathz`"),
        ("envdrift.yaml:6:5:", "did you mean `paths`?"),
        ("envdrift.yaml:9:9:", "ignore[2].jqPathExpressions[0]"),
        ("envdrift.yaml:13:15:", "unknown variant `extreme`"),
        ("envdrift.yaml:15:5:", "severity_rules[1].labelSelector"),
        ("envdrift.yaml:18:1:", "unknown field `listn`"),
        ("envdrift.yaml:18:1:", "did you mean `listen`?"),
        (
            "envdrift.yaml:19:1:",
            "retention: `forever` is not a duration",
        ),
        (
            "envdrift.yaml:24:9:",
            "compare.expected.rules[0].labelSelector",
        ),
    ]
}

#[test]
fn config_check_reports_every_problem_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("envdrift.yaml"), BAD).unwrap();
    let out = envdrift(&["config", "check", "envdrift.yaml"], dir.path());
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(2), "{err}");
    let lines: Vec<&str> = err.lines().collect();
    for (at, what) in expected_lines() {
        assert!(
            lines.iter().any(|l| l.starts_with(at) && l.contains(what)),
            "no `{at} … {what}` in:\n{err}"
        );
    }
    assert!(
        err.contains("envdrift.yaml: 7 problem(s)"),
        "one line per problem, and the count:\n{err}"
    );
    // In file order.
    let positions: Vec<usize> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("envdrift.yaml:"))
        .filter_map(|l| l.split(':').next()?.parse().ok())
        .collect();
    assert!(positions.is_sorted(), "{err}");
}

#[test]
fn other_commands_refuse_the_file_with_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("envdrift.yaml"), BAD).unwrap();
    let root = env!("CARGO_MANIFEST_DIR");
    let out = envdrift(
        &[
            "diff",
            "--config",
            "envdrift.yaml",
            "--desired",
            &format!("{root}/config/demo/git/staging"),
            "--live",
            &format!("{root}/config/demo/live/staging"),
        ],
        dir.path(),
    );
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_ne!(out.status.code(), Some(0), "{err}");
    for (at, what) in expected_lines() {
        assert!(
            err.lines().any(|l| l.contains(at) && l.contains(what)),
            "no `{at} … {what}` in:\n{err}"
        );
    }
}

/// A YAML syntax error stops reading there: it is the one problem reported.
#[test]
fn a_syntax_error_is_reported_once_at_its_position() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("envdrift.yaml"),
        "ignore:\n  - kind: [Deployment\n",
    )
    .unwrap();
    let out = envdrift(&["config", "check", "envdrift.yaml"], dir.path());
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("envdrift.yaml: 1 problem(s)"), "{err}");
    assert!(err.starts_with("envdrift.yaml:"), "{err}");
}

/// Environments are checked one by one too; a comparison naming an environment whose entry
/// has an error is not reported again as "unknown environment"; flow-style lists are cut
/// whole.
#[test]
fn each_environment_and_flow_list_is_checked_on_its_own() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("envdrift.yaml"),
        "environments:\n  prod:\n    desired: {type: dirr, path: a}\n    live: {type: dump, path: b}\n  staging:\n    desired: {type: dir, path: a}\n    live: {type: dump, path: b}\n    intervall: 5m\ncomparisons:\n  - {from: staging, to: prod}\nignore: [{kind: X, pathz: [a]}, {kind: Y, paths: [b]}]\nretention: x\n",
    )
    .unwrap();
    let out = envdrift(&["config", "check", "envdrift.yaml"], dir.path());
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(2), "{err}");
    for (at, what) in [
        ("envdrift.yaml:3:15:", "unknown variant `dirr`"),
        ("envdrift.yaml:8:5:", "did you mean `interval`?"),
        ("envdrift.yaml:11:20:", "unknown field `pathz`"),
        ("envdrift.yaml:12:1:", "retention"),
    ] {
        assert!(
            err.lines().any(|l| l.starts_with(at) && l.contains(what)),
            "no `{at} … {what}` in:\n{err}"
        );
    }
    assert!(err.contains("envdrift.yaml: 4 problem(s)"), "{err}");
    assert!(!err.contains("unknown environment"), "{err}");
}

/// `daemon.coordination` (issue 17): each problem at its line, naming the key.
#[test]
fn coordination_problems_name_their_keys_and_lines() {
    let dir = tempfile::tempdir().unwrap();
    for (text, want) in [
        (
            "daemon:\n  coordination:\n    type: kubernetes\n    lease_duration: 500ms\n    namespace: Bad_NS\n",
            vec![
                "envdrift.yaml:4:5: daemon.coordination.lease_duration: `500ms`: a whole number of seconds, at least 1s",
                "envdrift.yaml:5:5: daemon.coordination.namespace: `Bad_NS` is not a namespace name",
            ],
        ),
        (
            "daemon:\n  coordination:\n    type: kubernetes\n    leese: 3s\n",
            vec![
                "unknown field `leese`, expected one of kubeconfig, context, in_cluster, namespace, identity, lease_duration",
            ],
        ),
        (
            "daemon:\n  coordination:\n    type: etcd\n",
            vec!["envdrift.yaml:3:5: unknown variant `etcd`, expected one of kubernetes"],
        ),
        (
            "daemon:\n  coordination: {type: kubernetes, in_cluster: true, context: prod}\n",
            vec![
                "daemon.coordination.in_cluster: `in_cluster: true` uses the pod's service account",
            ],
        ),
        (
            "daemon:\n  coordination:\n    type: store\n    identity: r1\n",
            vec![
                "envdrift.yaml:3:5: daemon.coordination.type: `type: store` needs the shared store every replica reaches: set `store.type: postgres`",
            ],
        ),
    ] {
        std::fs::write(dir.path().join("envdrift.yaml"), text).unwrap();
        let out = envdrift(&["config", "check", "envdrift.yaml"], dir.path());
        assert_eq!(out.status.code(), Some(2), "{text}");
        let err = String::from_utf8_lossy(&out.stderr);
        for w in want {
            assert!(err.contains(w), "{text}: want {w}\n{err}");
        }
    }
    // A good one passes.
    std::fs::write(
        dir.path().join("envdrift.yaml"),
        "daemon:\n  coordination: {type: kubernetes, in_cluster: true, namespace: envdrift, identity: envdrift-0, lease_duration: 15s}\n",
    )
    .unwrap();
    let out = envdrift(&["config", "check", "envdrift.yaml"], dir.path());
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_postgres_store_needs_exactly_one_url_source_and_the_url_is_never_echoed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("envdrift.yaml"),
        "store:\n  type: postgres\n  url: postgres://drift:hunter2-secret@db/envdrift\n  url_env: DSN\nretention: 30d\n",
    )
    .unwrap();
    let out = envdrift(&["config", "check", "envdrift.yaml"], dir.path());
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.lines().any(|l| l.starts_with("envdrift.yaml:")
            && l.contains("store.url")
            && l.contains("exactly one of url, url_env or url_file")),
        "{err}"
    );
    assert!(!err.contains("hunter2-secret"), "{err}");
    std::fs::write(
        dir.path().join("envdrift.yaml"),
        "store:\n  type: postgres\n  uri: postgres://drift:hunter2-secret@db/envdrift\n",
    )
    .unwrap();
    let out = envdrift(&["config", "check", "envdrift.yaml"], dir.path());
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(2), "{err}");
    // (serde reports unknown fields of an internally tagged block at the block's start.)
    assert!(
        err.contains("unknown field `uri`") && err.contains("did you mean `url`?"),
        "{err}"
    );
    assert!(!err.contains("hunter2-secret"), "{err}");
}
