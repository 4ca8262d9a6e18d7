//! End to end: desired manifests applied with the real kubectl to two API test servers
//! (staging, production), then scanned by `envdrift diff --live cluster:CONTEXT`.

use std::path::{Path, PathBuf};
use std::process::Command;

use envdrift_testkit::apiserver::ApiServer;
use envdrift_testkit::kubectl::{Kubectl, require_kubectl};
use serde_json::Value;

const FILES: &[&str] = &[
    "namespace.yaml",
    "api-config.yaml",
    "api-deployment.yaml",
    "api-secret.yaml",
    "api-service.yaml",
    "cronjob-cleanup.yaml",
    "ingress.yaml",
    "networkpolicy.yaml",
    "rbac.yaml",
    "web-hpa.yaml",
    "web.yaml",
];

fn git_dir(env: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("config/demo/git")
        .join(env)
}

struct Env {
    _staging: ApiServer,
    production: ApiServer,
    kubeconfig: PathBuf,
    bin: PathBuf,
    dir: tempfile::TempDir,
}

impl Env {
    fn kubectl(&self, context: &str) -> KubectlCtx<'_> {
        KubectlCtx {
            k: Kubectl {
                bin: self.bin.clone(),
                kubeconfig: self.kubeconfig.clone(),
            },
            context: context.to_string(),
            _env: self,
        }
    }

    fn envdrift(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(envdrift_testkit::envdrift_bin(env!(
            "CARGO_BIN_EXE_envdrift"
        )))
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("KUBECONFIG")
        .output()
        .expect("running envdrift");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `envdrift diff` of an environment's Git manifests against its cluster, as JSON.
    fn scan(&self, env: &str) -> Value {
        let kc = self.kubeconfig.display().to_string();
        let desired = git_dir(env).display().to_string();
        let live = format!("cluster:{env}");
        let (code, out, err) = self.envdrift(&[
            "diff",
            "--desired",
            &desired,
            "--live",
            &live,
            "--kubeconfig",
            &kc,
            "-f",
            "json",
            "--fail-on",
            "never",
        ]);
        assert_eq!(code, 0, "envdrift failed: {err}\n{out}");
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
    }
}

struct KubectlCtx<'a> {
    k: Kubectl,
    context: String,
    _env: &'a Env,
}

impl KubectlCtx<'_> {
    fn run(&self, args: &[&str]) -> String {
        let mut a = vec!["--context", self.context.as_str()];
        a.extend_from_slice(args);
        self.k.run(&a)
    }
}

fn setup() -> Option<Env> {
    let bin = require_kubectl()?;
    let staging = ApiServer::start();
    let production = ApiServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        ApiServer::kubeconfig_multi(&[("staging", &staging), ("production", &production)]),
    )
    .expect("kubeconfig");
    let env = Env {
        _staging: staging,
        production,
        kubeconfig,
        bin,
        dir,
    };
    for e in ["staging", "production"] {
        for f in FILES {
            let path = git_dir(e).join(f).display().to_string();
            env.kubectl(e)
                .run(&["apply", "--validate=false", "-f", &path]);
        }
    }
    Some(env)
}

fn summary(v: &Value) -> String {
    v["drifts"]
        .as_array()
        .map(|ds| {
            ds.iter()
                .map(|d| {
                    let changes: Vec<String> = d["changes"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|c| {
                            format!(
                                "{} {} by {}",
                                c["op"].as_str().unwrap_or(""),
                                c["field"].as_str().unwrap_or(""),
                                c["manager"].as_str().unwrap_or("-")
                            )
                        })
                        .collect();
                    format!(
                        "{} {} {}/{}: {}",
                        d["type"],
                        d["resource"]["kind"],
                        d["resource"]["namespace"],
                        d["resource"]["name"],
                        changes.join("; ")
                    )
                })
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

#[test]
fn scan_after_apply_is_clean_then_shows_each_kubectl_change() {
    let Some(env) = setup() else { return };
    for e in ["staging", "production"] {
        let v = env.scan(e);
        assert_eq!(v["summary"]["compared"], 15, "{e}: {:#}", v["summary"]);
        assert_eq!(
            v["drifts"].as_array().map(Vec::len),
            Some(0),
            "{e}:\n{}\n{v:#}",
            summary(&v)
        );
    }
}

/// `(type, kind, name, [(field, manager)])` of each drift.
type DriftLine = (String, String, String, Vec<(String, String)>);

fn drift_lines(v: &Value) -> Vec<DriftLine> {
    let mut out: Vec<DriftLine> = v["drifts"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| {
            let mut changes: Vec<(String, String)> = d["changes"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| {
                    (
                        c["field"].as_str().unwrap_or("").to_string(),
                        c["manager"].as_str().unwrap_or("-").to_string(),
                    )
                })
                .collect();
            changes.sort();
            (
                d["type"].as_str().unwrap_or("").to_string(),
                d["resource"]["kind"].as_str().unwrap_or("").to_string(),
                d["resource"]["name"].as_str().unwrap_or("").to_string(),
                changes,
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn kubectl_changes_are_found_attributed_and_undone_by_their_patches() {
    let Some(env) = setup() else { return };
    let prod = env.kubectl("production");
    let ns = ["-n", "shop-prod"];
    let with_ns = |args: &[&str]| -> Vec<String> {
        args.iter()
            .chain(ns.iter())
            .map(std::string::ToString::to_string)
            .collect()
    };
    let run = |args: Vec<String>| {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        prod.run(&a)
    };
    run(with_ns(&["scale", "deploy/api", "--replicas=5"]));
    run(with_ns(&[
        "set",
        "image",
        "deploy/api",
        "api=registry.example.com/shop/api:1.4.3-hotfix",
    ]));
    let editor = env.dir.path().join("editor.py");
    std::fs::write(
        &editor,
        "#!/usr/bin/env python3\nimport sys\np = sys.argv[1]\ns = open(p).read()\ns = s.replace('        - name: DB_USER\\n', '        - name: DEBUG\\n          value: \"true\"\\n        - name: DB_USER\\n', 1)\nopen(p, 'w').write(s)\n",
    )
    .unwrap();
    std::fs::set_permissions(&editor, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = prod
        .k
        .command(&[
            "--context",
            "production",
            "edit",
            "--validate=false",
            "deploy/api",
            "-n",
            "shop-prod",
        ])
        .env("KUBE_EDITOR", &editor)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    run(with_ns(&[
        "label",
        "configmap",
        "api-config",
        "team=payments",
    ]));
    run(with_ns(&["delete", "service", "web"]));

    let v = env.scan("production");
    let s = |x: &str| x.to_string();
    let expected: Vec<DriftLine> = vec![
        (s("missing"), s("Service"), s("web"), vec![]),
        (
            s("modified"),
            s("ConfigMap"),
            s("api-config"),
            vec![(s("metadata.labels.team"), s("kubectl-label"))],
        ),
        (
            s("modified"),
            s("Deployment"),
            s("api"),
            vec![
                (s("spec.replicas"), s("kubectl")),
                (
                    s("spec.template.spec.containers[name=api].env[name=DEBUG]"),
                    s("kubectl-edit"),
                ),
                (
                    s("spec.template.spec.containers[name=api].image"),
                    s("kubectl-set"),
                ),
            ],
        ),
    ];
    assert_eq!(drift_lines(&v), expected, "{}", summary(&v));
    // Staging was not touched.
    assert_eq!(
        env.scan("staging")["drifts"].as_array().map(Vec::len),
        Some(0)
    );

    // Undo: each modified drift's verified JSON patch through kubectl, the missing Service re-applied.
    for d in v["drifts"].as_array().unwrap() {
        match d["type"].as_str() {
            Some("modified") => {
                assert_eq!(d["patch_verified"], true, "{d:#}");
                let patch = d["patch"].to_string();
                let kind = d["resource"]["kind"].as_str().unwrap().to_lowercase();
                let name = d["resource"]["name"].as_str().unwrap();
                run(with_ns(&[
                    "patch",
                    &kind,
                    name,
                    "--type=json",
                    "-p",
                    &patch,
                ]));
            }
            Some("missing") => {
                let file = git_dir("production").join("web.yaml").display().to_string();
                run(vec![
                    "apply".into(),
                    "--validate=false".into(),
                    "-f".into(),
                    file,
                ]);
            }
            other => panic!("unexpected drift type {other:?}"),
        }
    }
    let v = env.scan("production");
    assert_eq!(
        v["drifts"].as_array().map(Vec::len),
        Some(0),
        "{}",
        summary(&v)
    );
    assert!(env.production.len() > 10);
}

#[test]
fn snapshot_dump_reads_back_identically_and_holds_no_secret_or_token() {
    let Some(env) = setup() else { return };
    let prod = env.kubectl("production");
    prod.run(&[
        "set",
        "image",
        "deploy/api",
        "-n",
        "shop-prod",
        "api=registry.example.com/shop/api:1.4.3-hotfix",
    ]);
    // A ConfigMap with values YAML could misread (`yes`, octal-looking, numbers as text).
    let tricky = env.dir.path().join("tricky.yaml");
    std::fs::write(
        &tricky,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: tricky\n  namespace: shop-prod\ndata:\n  a: \"yes\"\n  b: \"0644\"\n  c: \"1.0\"\n  d: \"null\"\n  e: \"~\"\n  f: \"multi\\nline: x\"\n",
    )
    .unwrap();
    prod.run(&[
        "apply",
        "--validate=false",
        "-f",
        &tricky.display().to_string(),
    ]);
    let kc = env.kubeconfig.display().to_string();
    let out_dir = env.dir.path().join("dump");
    let out = out_dir.display().to_string();
    let (code, stdout, stderr) = env.envdrift(&[
        "snapshot",
        "--kubeconfig",
        &kc,
        "--context",
        "production",
        "-n",
        "shop-prod",
        "-o",
        &out,
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("objects"), "{stdout}");
    // No Secret value and no token anywhere in the dump.
    let mut all = String::new();
    for entry in walk(&out_dir) {
        all.push_str(&std::fs::read_to_string(entry).unwrap());
    }
    assert!(all.contains("kind: Deployment"));
    for secret in [
        "cHJvZC1kZW1vLXBhc3N3b3Jk",
        "prod-demo-password",
        "shop_app",
        "c2hvcF9hcHA=",
        env.production.token.as_str(),
    ] {
        assert!(!all.contains(secret), "the dump holds {secret}");
    }
    assert!(all.contains("sha256:"));
    // The dump compares exactly like the cluster.
    let desired = git_dir("production").display().to_string();
    let from_dump = {
        let (code, out, err) = env.envdrift(&[
            "diff",
            "--desired",
            &desired,
            "--live",
            &out,
            "-f",
            "json",
            "--fail-on",
            "never",
        ]);
        assert_eq!(code, 0, "{err}");
        serde_json::from_str::<Value>(&out).unwrap()
    };
    let from_cluster = env.scan("production");
    assert_eq!(drift_lines(&from_dump), drift_lines(&from_cluster));
    assert_eq!(
        from_dump["drifts"][0]["changes"],
        from_cluster["drifts"][0]["changes"]
    );
    assert_eq!(
        from_dump["summary"]["compared"],
        from_cluster["summary"]["compared"]
    );
    // And the objects read back are the objects read live (values equal, YAML edge cases included).
    let live_dump = envdrift::source::dump::load_paths(
        std::slice::from_ref(&out_dir),
        &envdrift::source::dump::LoadOptions {
            side: "live".into(),
            default_namespace: None,
            ..Default::default()
        },
        &|_| {},
    );
    assert!(live_dump.errors.is_empty(), "{:?}", live_dump.errors);
    let cm = live_dump
        .objects
        .iter()
        .find(|(k, _)| k.name == "tricky")
        .map(|(_, o)| &o.value)
        .unwrap();
    assert_eq!(
        cm["data"],
        serde_json::json!({"a": "yes", "b": "0644", "c": "1.0", "d": "null", "e": "~", "f": "multi\nline: x"})
    );
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
