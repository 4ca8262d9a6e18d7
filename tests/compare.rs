//! Environment vs environment (`envdrift compare`): realistic staging/production pairs
//! whose only differences are the expected ones report nothing; each promotion-specific
//! classification; mapping edge cases; both patch directions.

use std::path::Path;
use std::process::Command;

use envdrift::config::Config;
use envdrift::diff::{DiffResult, Options};
use envdrift::model::{DriftType, Severity, Snapshot};
use envdrift::source::dump::{LoadOptions, load_text};
use serde_json::Value;

const LIVE: &str = include_str!("fixtures/realistic/live.yaml");

/// The realistic live fixture as it would look in one environment.
fn env_dump(ns: &str, host: &str, replicas: u32, cpu: &str, uid_salt: &str) -> String {
    LIVE.replace("namespace: shop\n", &format!("namespace: {ns}\n"))
        .replace("\"namespace\":\"shop\"", &format!("\"namespace\":\"{ns}\""))
        .replace("shop.example.com", host)
        .replace("replicas: 3", &format!("replicas: {replicas}"))
        .replace("cpu: 500m", &format!("cpu: {cpu}"))
        .replace(
            "10.96.14.7",
            if uid_salt == "a" {
                "10.96.14.7"
            } else {
                "10.100.3.9"
            },
        )
        .replace("-4a53-", &format!("-4a5{uid_salt}-"))
        .replace(
            "resourceVersion: \"884",
            &format!("resourceVersion: \"9{uid_salt}"),
        )
        .replace(
            "2026-10-01T09:00:00Z",
            if uid_salt == "a" {
                "2026-10-01T09:00:00Z"
            } else {
                "2026-10-05T12:00:00Z"
            },
        )
}

fn snap(text: &str, side: &str) -> Snapshot {
    let s = load_text(
        text,
        side,
        &LoadOptions {
            side: side.into(),
            default_namespace: None,
            ..LoadOptions::default()
        },
    );
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    s
}

const CONFIG: &str = "compare:\n  mapping:\n    namespaces: {shop-staging: shop-prod}\n    values:\n      - {from: \"*.staging.example.com\", to: \"*.example.com\"}\n";

fn options(config: &str) -> Options {
    let cfg = Config::parse(config, Path::new("test.yaml")).unwrap();
    assert!(cfg.validate(Path::new("test.yaml")).is_empty());
    cfg.compile()
        .unwrap()
        .options(envdrift::report::Mode::EnvVsEnv, ("staging", "production"))
}

fn run(staging: &str, prod: &str, opts: &Options) -> DiffResult {
    let from = snap(staging, "staging");
    let to = snap(prod, "production");
    let from = match &opts.mapping {
        Some(m) => m.map_snapshot(from, "staging"),
        None => from,
    };
    assert!(from.errors.is_empty(), "{:?}", from.errors);
    envdrift::diff::compare(&from, &to, opts)
}

fn staging() -> String {
    env_dump("shop-staging", "shop.staging.example.com", 2, "250m", "a")
}

fn production() -> String {
    env_dump("shop-prod", "shop.example.com", 6, "1", "b")
}

#[test]
fn only_expected_differences_report_nothing() {
    let opts = options(CONFIG);
    let r = run(&staging(), &production(), &opts);
    assert!(r.drifts.is_empty(), "{:#?}", r.drifts);
    assert!(r.compared >= 8, "{}", r.compared);
    assert!(r.suppressed.expected >= 2, "{:?}", r.suppressed);
    // With --show-expected they are listed, marked expected, and count for nothing.
    let mut show = opts.clone();
    show.show_expected = true;
    let r = run(&staging(), &production(), &show);
    assert!(!r.drifts.is_empty());
    assert!(
        r.drifts
            .iter()
            .all(|d| d.expected && d.changes.iter().all(|c| c.expected))
    );
}

fn with(text: String, from: &str, to: &str) -> String {
    assert!(text.contains(from), "fixture lacks {from}");
    text.replacen(from, to, 1)
}

fn single(r: &DiffResult) -> &envdrift::model::FieldChange {
    assert_eq!(r.drifts.len(), 1, "{:#?}", r.drifts);
    assert_eq!(r.drifts[0].changes.len(), 1, "{:#?}", r.drifts[0].changes);
    &r.drifts[0].changes[0]
}

#[test]
fn image_skew_is_classified_by_direction() {
    let opts = options(CONFIG);
    let img = "image: registry.example.com/shop/web:2.3.1";
    for (staging_img, prod_img, finding, sev) in [
        ("2.4.0", "2.3.1", "promotion-pending", Severity::Medium),
        (
            "2.3.1",
            "2.3.2-hotfix",
            "hotfix-not-in-from",
            Severity::High,
        ),
        ("main-1a2b", "main-3c4d", "differs", Severity::Medium),
    ] {
        let s = with(
            staging(),
            img,
            &format!("image: registry.example.com/shop/web:{staging_img}"),
        );
        let p = with(
            production(),
            img,
            &format!("image: registry.example.com/shop/web:{prod_img}"),
        );
        let r = run(&s, &p, &opts);
        let c = single(&r);
        assert_eq!(c.path, "/spec/template/spec/containers/0/image");
        assert_eq!(
            (c.finding.as_deref(), c.severity),
            (Some(finding), sev),
            "{staging_img} → {prod_img}"
        );
        assert!(r.drifts[0].remedy.verified);
        let rev = r.drifts[0].remedy.reverse.as_ref().unwrap();
        assert!(rev.verified);
        assert!(rev.kubectl.contains("-n shop-staging"), "{}", rev.kubectl);
    }
    let p = with(production(), img, "image: other.example.com/web:2.3.1");
    let c = single(&run(&staging(), &p, &opts)).clone();
    assert_eq!(
        (c.finding.as_deref(), c.severity),
        (Some("repository-differs"), Severity::High)
    );
}

#[test]
fn config_keys_on_one_side_are_high_and_secrets_hashed() {
    let opts = options(CONFIG);
    let s = with(
        staging(),
        "    RETRIES: \"3\"\n",
        "    RETRIES: \"3\"\n    NEW_FLAG: \"on\"\n",
    );
    let c = single(&run(&s, &production(), &opts)).clone();
    assert_eq!(c.path, "/data/NEW_FLAG");
    assert_eq!(
        (c.finding.as_deref(), c.severity),
        (Some("key-missing-in-to"), Severity::High)
    );
    let p = with(
        production(),
        "    RETRIES: \"3\"\n",
        "    RETRIES: \"3\"\n    PROD_ONLY: x\n",
    );
    let c = single(&run(&staging(), &p, &opts)).clone();
    assert_eq!(
        (c.finding.as_deref(), c.severity),
        (Some("key-only-in-to"), Severity::High)
    );
    let p = with(
        production(),
        "password: czNjcjN0LXZhbHVl",
        "password: b3RoZXItc2VjcmV0",
    );
    let r = run(&staging(), &p, &opts);
    let c = single(&r).clone();
    assert_eq!(c.severity, Severity::High);
    assert!(
        c.desired.as_str().unwrap().starts_with("sha256:")
            && c.live.as_str().unwrap().starts_with("sha256:")
    );
    let text = format!("{:?}", r.drifts);
    assert!(!text.contains("s3cr3t") && !text.contains("czNjcjN0") && !text.contains("b3RoZXIt"));
}

#[test]
fn rbac_differences_are_critical_both_ways() {
    let opts = options(CONFIG);
    let more = "    verbs:\n    - get\n    - list\n    - watch\n    - delete\n";
    let base = "    verbs:\n    - get\n    - list\n    - watch\n";
    let p = with(production(), base, more);
    assert_eq!(
        single(&run(&staging(), &p, &opts)).severity,
        Severity::Critical
    );
    let s = with(staging(), base, more);
    assert_eq!(
        single(&run(&s, &production(), &opts)).severity,
        Severity::Critical
    );
}

#[test]
fn resources_on_one_side_have_kind_based_severity() {
    let opts = options(CONFIG);
    let cm = "- apiVersion: v1\n  data:\n    X: \"1\"\n  kind: ConfigMap\n  metadata:\n    name: extra\n    namespace: NS\nkind: List\n";
    let s = staging().replace("kind: List\n", &cm.replace("NS", "shop-staging"));
    let r = run(&s, &production(), &opts);
    assert_eq!(r.drifts.len(), 1, "{:#?}", r.drifts);
    assert_eq!(r.drifts[0].drift_type, DriftType::Missing);
    assert_eq!(r.drifts[0].severity, Severity::High);
    assert_eq!(r.drifts[0].resource.namespace.as_deref(), Some("shop-prod"));
    let p = production().replace("kind: List\n", &cm.replace("NS", "shop-prod"));
    let r = run(&staging(), &p, &opts);
    assert_eq!(r.drifts.len(), 1, "{:#?}", r.drifts);
    assert_eq!(r.drifts[0].drift_type, DriftType::Unmanaged);
    assert_eq!(r.drifts[0].severity, Severity::High);
}

#[test]
fn mapping_edge_cases() {
    // An object that maps to nothing: reported as only in `from`, not an error.
    let opts = options(
        "compare:\n  mapping:\n    namespaces: {shop-staging: shop-prod}\n    names:\n      - {kind: ConfigMap, from_suffix: -staging}\n",
    );
    let s = staging().replace("name: web-config\n", "name: web-config-staging\n");
    let r = run(
        &s,
        &production().replace("name: web-config\n", "name: web-config-prod\n"),
        &opts,
    );
    let types: Vec<DriftType> = r.drifts.iter().map(|d| d.drift_type).collect();
    assert!(
        types.contains(&DriftType::Missing) && types.contains(&DriftType::Unmanaged),
        "{types:?}"
    );
    // Two objects mapping to one name: a clear error naming both.
    let from = snap(&s.replace("kind: List\n", "- apiVersion: v1\n  kind: ConfigMap\n  metadata:\n    name: web-config\n    namespace: shop-staging\nkind: List\n"), "staging");
    let mapped = opts.mapping.as_ref().unwrap().map_snapshot(from, "staging");
    assert_eq!(mapped.errors.len(), 1);
    let msg = &mapped.errors[0].message;
    assert!(
        msg.contains("web-config-staging")
            && msg.contains("ConfigMap shop-staging/web-config")
            && msg.contains("ConfigMap shop-prod/web-config"),
        "{msg}"
    );
    // Rewrites that would loop are rejected with the rule named.
    for bad in [
        "compare:\n  mapping:\n    namespaces: {a: b, b: a}\n",
        "compare:\n  mapping:\n    values:\n      - {from: example.com, to: www.example.com}\n",
        "compare:\n  mapping:\n    names:\n      - {from_prefix: a, to_prefix: aa}\n",
    ] {
        let cfg = Config::parse(bad, Path::new("c.yaml")).unwrap();
        let problems = cfg.validate(Path::new("c.yaml"));
        assert_eq!(problems.len(), 1, "{bad}: {problems:?}");
        assert!(
            problems[0].to_string().contains("compare.mapping")
                && problems[0].to_string().contains("loop"),
            "{}",
            problems[0]
        );
    }
}

#[test]
fn both_patch_directions_apply() {
    let opts = options(CONFIG);
    let s = with(
        staging(),
        "    LOG_FORMAT: json\n",
        "    LOG_FORMAT: text\n",
    );
    let p = with(
        production(),
        "    - name: FEATURE_X\n            value: \"true\"\n",
        "    - name: FEATURE_X\n            value: \"false\"\n",
    );
    let r = run(&s, &p, &opts);
    assert_eq!(r.drifts.len(), 2, "{:#?}", r.drifts);
    for d in &r.drifts {
        assert!(d.remedy.verified, "{:?}", d.remedy.verification_error);
        assert!(d.remedy.reverse.as_ref().unwrap().verified);
    }
}

#[test]
fn demo_compare_cli() {
    let out = Command::new(env!("CARGO_BIN_EXE_envdrift"))
        .args([
            "compare",
            "--from",
            "config/demo/live/staging",
            "--to",
            "dump:config/demo/live/production",
            "-c",
            "config/demo/compare.yaml",
            "--format",
            "table",
            "--color",
            "never",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    insta::assert_snapshot!(String::from_utf8_lossy(&out.stdout));
    let json = Command::new(env!("CARGO_BIN_EXE_envdrift"))
        .args([
            "compare",
            "--from",
            "config/demo/live/staging",
            "--to",
            "config/demo/live/production",
            "-c",
            "config/demo/compare.yaml",
            "--format",
            "json",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["schema"], "envdrift.diff/v1");
    assert_eq!(v["from"]["name"], "staging");
    assert_eq!(v["to"]["name"], "production");
    assert_eq!(v["summary"]["by_type"]["only-in-from"], 1);
    assert_eq!(v["summary"]["by_type"]["only-in-to"], 1);
    let hotfix = v["drifts"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|d| d["changes"].as_array().unwrap().iter())
        .find(|c| c["finding"] == "hotfix-not-in-from")
        .expect("the api hotfix");
    assert_eq!(hotfix["manager"], "kubectl-set");
    let bad = Command::new(env!("CARGO_BIN_EXE_envdrift"))
        .args([
            "compare",
            "--from",
            "live:staging",
            "--to",
            "config/demo/live/production",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("add --config FILE"));
}

#[test]
fn environment_sources_from_the_config() {
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_envdrift"))
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap()
    };
    let out = run(&[
        "compare",
        "--from",
        "live:staging",
        "--to",
        "live:production",
        "-c",
        "config/demo.yaml",
        "-f",
        "json",
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["from"]["name"].as_str(), v["to"]["name"].as_str()),
        (Some("staging"), Some("production"))
    );
    assert_eq!(v["summary"]["drifts"], 8);
    // git:ENV is the environment's desired side: Git production vs live production.
    let out = run(&[
        "compare",
        "--from",
        "git:production",
        "--to",
        "live:production",
        "-c",
        "config/demo.yaml",
        "-f",
        "json",
    ]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["summary"]["drifts"].as_u64().unwrap() > 0);
    let out = run(&[
        "compare",
        "--from",
        "live:mars",
        "--to",
        "live:production",
        "-c",
        "config/demo.yaml",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown environment `mars`"));
    let out = run(&[
        "render",
        "--config",
        "config/demo.yaml",
        "--env",
        "production",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("# config/demo/git/production/") && text.contains("kind: Deployment"));
    assert!(
        !text.contains("cHJvZC1kZW1vLXBhc3N3b3Jk"),
        "no Secret value in rendered output"
    );
}
