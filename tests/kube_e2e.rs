//! End to end: desired manifests applied with the real kubectl to two API test servers
//! (staging, production), then scanned by `envdrift diff --live cluster:CONTEXT`.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use support::apiserver::ApiServer;
use support::kubectl::{Kubectl, require_kubectl};

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
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config/demo/git").join(env)
}

struct Env {
    staging: ApiServer,
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
        let out = Command::new(env!("CARGO_BIN_EXE_envdrift"))
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
            "diff", "--desired", &desired, "--live", &live, "--kubeconfig", &kc, "-f", "json",
            "--fail-on", "never",
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
    let env = Env { staging, production, kubeconfig, bin, dir };
    for e in ["staging", "production"] {
        for f in FILES {
            let path = git_dir(e).join(f).display().to_string();
            env.kubectl(e).run(&["apply", "--validate=false", "-f", &path]);
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
                        .map(|c| format!("{} {} by {}", c["op"].as_str().unwrap_or(""), c["field"].as_str().unwrap_or(""), c["manager"].as_str().unwrap_or("-")))
                        .collect();
                    format!("{} {} {}/{}: {}", d["type"], d["resource"]["kind"], d["resource"]["namespace"], d["resource"]["name"], changes.join("; "))
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
        assert_eq!(v["drifts"].as_array().map(Vec::len), Some(0), "{e}:\n{}\n{v:#}", summary(&v));
    }
}
