//! # envdrift
//!
//! Finds environment drift in Kubernetes: the difference between what Git says should run
//! and what actually runs, classified (category, severity, who changed it and when) and
//! with a verified patch that undoes it.
//!
//! The flow (docs/architecture.md):
//!
//! ```text
//! SourceSpec ──► source::open ──► run::run(&Job) ──► normalize ─► compare ─► classify ─► Outcome
//! ```
//!
//! The library's face:
//!
//! - [`run`]: [`run::Job`] (two sides, a mode, the compiled config) → [`run::Outcome`] (the
//!   drift set, both sides' metadata, whether it can be trusted): the one path used by the
//!   CLI, the daemon and the API.
//! - [`compare`] ([`diff::compare`]): the pure engine, two snapshots in, [`model::Drift`]s out.
//! - [`model`]: keys, objects, snapshots, drifts, field changes.
//! - [`config`]: the config file's schema, validation and [`config::Config::compile`].
//!
//! The other modules are public for the `envdrift` binary and the integration tests (sources,
//! store, daemon, API, sinks, renderers); their items are `pub(crate)` unless one of those
//! uses them. Secret values never leave the process in clear: [`redact`] hashes them as
//! they are read.

// Input never reaches an unwrap or expect in the product (tests may use them).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod alert;
pub mod api;
pub mod classify;
pub mod config;
pub mod daemon;
pub mod diff;
pub(crate) mod kinds;
pub mod model;
pub mod pattern;
pub mod redact;
pub mod report;
pub mod run;
pub mod source;
pub mod store;
pub mod web;

pub use diff::{DiffResult, Options, compare};
