//! Sources: where snapshots come from. Each source does its own I/O and hands the
//! engine a [`Snapshot`](crate::model::Snapshot).
//!
//! - [`manifest`]: YAML/JSON text → objects (pure parsing, with lines).
//! - [`dump`]: files and directories (Git checkouts, `kubectl get -o yaml` dumps).

pub mod adopt;
pub mod dump;
pub mod git;
pub mod manifest;
pub mod render;
