//! # envdrift
//!
//! Finds environment drift in Kubernetes: the difference between what Git says should run
//! and what actually runs, classified (category, severity, who changed it and when) and
//! with a verified patch that undoes it.
//!
//! The flow (see DESIGN.md):
//!
//! ```text
//! Source ──► Snapshot ──► normalize ──► compare ──► classify ──► Drift set ──► report
//! ```
//!
//! - [`source`] reads objects from files, directories, dumps and Git repositories (plain,
//!   Kustomize, Helm) into a [`model::Snapshot`], and makes adopt-into-Git patches.
//! - [`diff::compare`] is the pure engine: two snapshots in, [`model::Drift`]s out.
//! - [`classify`] holds the category/severity rules and manager classes.
//! - [`report`] renders a result as a table, JSON or Markdown.
//! - [`config`] is the config file's schema.
//!
//! Secret values never leave the process in clear: [`redact`] hashes them as they are read.

// Input never reaches an unwrap or expect in the product (tests may use them).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod alert;
pub mod api;
pub mod classify;
pub mod config;
pub mod daemon;
pub mod diff;
pub mod kinds;
pub mod model;
pub mod redact;
pub mod report;
pub mod run;
pub mod schema;
pub mod source;
pub mod store;

pub use diff::{DiffResult, Options, compare};
