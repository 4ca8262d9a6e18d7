//! Test servers and helpers shared by integration tests (see DESIGN.md, "Real parts").

#![allow(dead_code)] // each test binary uses a different part

pub mod apiserver;
pub mod kubectl;

/// The `envdrift` binary under test: `ENVDRIFT_BIN` when set (useful when several worktrees
/// share one target directory and overwrite each other's binary), else Cargo's.
pub fn envdrift_bin() -> std::path::PathBuf {
    std::env::var_os("ENVDRIFT_BIN")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_envdrift").into())
}
