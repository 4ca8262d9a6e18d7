//! Sources: where snapshots come from. Each source does its own I/O and hands the
//! engine a [`Snapshot`](crate::model::Snapshot).
//!
//! - [`manifest`]: YAML/JSON text → objects (pure parsing, with lines).
//! - [`dump`]: files and directories (Git checkouts, `kubectl get -o yaml` dumps).
//! - [`git`]: Git repositories (gix): cache, fetch, refs, trees at a commit.
//! - [`render`]: a Git tree into objects: plain manifests, Kustomize, Helm ([`render::load_git`]).
//! - [`adopt`]: adopt-into-Git patches (pure: file text in, unified diff out).
//! - [`kube`]: live clusters through kube-rs (discovery, paginated lists, incremental rescans).

pub mod adopt;
pub mod dump;
pub mod git;
pub mod kube;
pub mod manifest;
pub mod render;
