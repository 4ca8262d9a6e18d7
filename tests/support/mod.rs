//! Test servers on 127.0.0.1 (port 0, stopped on drop) standing in for the real services the
//! alert sinks talk to: a Slack Web API stand-in, an SMTP server (Python's aiosmtpd), a
//! webhook receiver that verifies the HMAC, and a freedesktop notification server on a
//! private D-Bus session bus.

#![allow(dead_code, reason = "each test binary uses part of the support code")]

pub mod dbus;
pub mod slack;
pub mod smtp;
pub mod webhook;

use std::path::PathBuf;

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
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

pub mod apiserver;
pub mod kubectl;

/// The `envdrift` binary under test: `ENVDRIFT_BIN` when set (useful when several worktrees
/// share one target directory and overwrite each other's binary), else Cargo's.
pub fn envdrift_bin() -> std::path::PathBuf {
    std::env::var_os("ENVDRIFT_BIN")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_envdrift").into())
}
