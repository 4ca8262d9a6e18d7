//! Sources: where snapshots come from. Each source does its own I/O and hands the
//! engine a [`Snapshot`](crate::model::Snapshot).
//!
//! - [`manifest`]: YAML/JSON text → objects (pure parsing, with lines).
//! - [`dump`]: files and directories (Git checkouts, `kubectl get -o yaml` dumps).
//! - [`kube`]: live clusters through kube-rs (discovery, paginated lists, incremental rescans).

pub mod dump;
pub mod kube;
pub mod manifest;
