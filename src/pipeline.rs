//! Runs sources into the engine: the I/O-doing glue between [`crate::source`] and the pure
//! [`crate::diff`].
//!
//! [`diff_paths`] holds the desired side in memory and streams the live side file by file
//! through a [`Comparison`], so that comparing a large dump costs about one copy of the
//! desired state plus a few live files.

use std::path::{Path, PathBuf};

use crate::diff::{Comparison, DiffResult, Options};
use crate::model::Snapshot;
use crate::source::dump::{LoadOptions, load_paths, stream_paths};

/// The outcome of [`diff_paths`]: the result, the desired snapshot and the live side's
/// metadata (source, errors, skipped files; its objects were not kept).
pub struct PathDiff {
    pub result: DiffResult,
    pub desired: Snapshot,
    pub live_meta: Snapshot,
    pub live_objects: usize,
}

/// Compares manifests under `desired` with dumps under `live`. `on_file` is called after
/// each file is read (for progress bars).
pub fn diff_paths(
    desired: &[PathBuf],
    desired_opts: &LoadOptions,
    live: &[PathBuf],
    live_opts: &LoadOptions,
    opts: &Options,
    on_file: &(dyn Fn(&Path) + Sync),
) -> PathDiff {
    let desired_snap = load_paths(desired, desired_opts, on_file);
    diff_snapshot(desired_snap, live, live_opts, opts, on_file)
}

/// Like [`diff_paths`], with a desired snapshot already loaded (from Git, a renderer).
pub fn diff_snapshot(
    desired_snap: Snapshot,
    live: &[PathBuf],
    live_opts: &LoadOptions,
    opts: &Options,
    on_file: &(dyn Fn(&Path) + Sync),
) -> PathDiff {
    let comparison = Comparison::new(&desired_snap, opts);
    let streamed = stream_paths(live, live_opts, on_file, &|objects| {
        comparison.batch(objects)
    });
    let result = comparison.finish(streamed.results, &streamed.meta.unknown);
    PathDiff {
        result,
        live_meta: streamed.meta,
        live_objects: streamed.objects,
        desired: desired_snap,
    }
}

/// The outcome of [`compare_paths`].
pub struct EnvDiff {
    pub result: DiffResult,
    /// The `from` side, after mapping into the `to` side's names.
    pub from: Snapshot,
    pub to_meta: Snapshot,
    pub to_objects: usize,
}

/// Compares two environments given as dumps: `from` is read whole and mapped
/// (`opts.mapping`) into `to`'s names, `to` is streamed through the comparison.
pub fn compare_paths(
    from: &[PathBuf],
    from_opts: &LoadOptions,
    to: &[PathBuf],
    to_opts: &LoadOptions,
    opts: &Options,
    on_file: &(dyn Fn(&Path) + Sync),
) -> EnvDiff {
    let mut from_snap = load_paths(from, from_opts, on_file);
    if let Some(m) = &opts.mapping {
        from_snap = m.map_snapshot(from_snap, &from_opts.side);
    }
    let comparison = Comparison::new(&from_snap, opts);
    let streamed = stream_paths(to, to_opts, on_file, &|objects| comparison.batch(objects));
    let result = comparison.finish(streamed.results, &streamed.meta.unknown);
    EnvDiff {
        result,
        to_meta: streamed.meta,
        to_objects: streamed.objects,
        from: from_snap,
    }
}
