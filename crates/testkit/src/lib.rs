//! envdrift's test kit (`publish = false`): what the tests and benchmarks run against.
//!
//! - [`synth`]: synthetic desired/live environments with known, injected drift (also the
//!   `envdrift-testkit generate` binary);
//! - [`apiserver`]: a Kubernetes API test server speaking the real REST protocol, and
//!   [`kubectl`] to drive it with the real `kubectl`; [`gitops`]: Argo CD's and Flux's real
//!   CRDs and objects for it;
//! - test servers on 127.0.0.1 (port 0, stopped on drop) standing in for the real services
//!   the alert sinks talk to: a Slack Web API stand-in ([`slack`]), an SMTP server (Python's
//!   aiosmtpd, [`smtp`]), a webhook receiver that verifies the HMAC ([`webhook`]), and a
//!   freedesktop notification server on a private D-Bus session bus ([`dbus`]);
//! - [`postgres`]: a private PostgreSQL server (initdb in a temp dir) for the store tests.
//!
//! The kit does not depend on the `envdrift` crate: a server standing in for Kubernetes or
//! Slack that shared envdrift's own logic would mirror its bugs and hide them.

pub mod apiserver;
pub mod dbus;
pub mod gitops;
pub mod kubectl;
pub mod postgres;
pub mod slack;
pub mod smtp;
pub mod synth;
pub mod webhook;

use std::path::{Path, PathBuf};

/// The workspace (repository) root: the nearest directory holding `Cargo.lock` above the
/// package under test (`CARGO_MANIFEST_DIR` as `cargo test` sets it at run time), else two
/// levels above this crate's manifest. Run time first: a target directory shared between
/// checkouts must not send tests to another checkout's files.
pub fn root() -> PathBuf {
    let compiled = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let start = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from);
    start
        .iter()
        .flat_map(|s| s.ancestors())
        .find(|d| d.join("Cargo.lock").is_file())
        .map(Path::to_path_buf)
        .unwrap_or(compiled)
        .canonicalize()
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
}

/// The Python of the project's tool virtualenv (`.tools/venv`, made by `.ci/run`).
pub fn venv_python() -> PathBuf {
    let p = root().join(".tools/venv/bin/python");
    assert!(
        p.exists(),
        "{} is missing: run `.ci/run` or `python3 -m venv .tools/venv && .tools/venv/bin/pip install aiosmtpd`",
        p.display()
    );
    p
}

/// One recorded HTTP request.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
}

/// What a stand-in answers next; queued answers are used before the normal one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// 429 with `Retry-After: secs`.
    RateLimited(u64),
    /// 500.
    ServerError,
    /// 503.
    Unavailable,
    /// 400.
    BadRequest,
    /// 403.
    Forbidden,
    /// No answer for a long time (the client is expected to give up or be killed first).
    Stall,
}

/// The `envdrift` binary under test: `ENVDRIFT_BIN` when set (useful when several worktrees
/// share one target directory and overwrite each other's binary), else `cargo_bin` (pass
/// `env!("CARGO_BIN_EXE_envdrift")`: only envdrift's own tests know where Cargo put it).
pub fn envdrift_bin(cargo_bin: &str) -> PathBuf {
    std::env::var_os("ENVDRIFT_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| cargo_bin.into())
}
