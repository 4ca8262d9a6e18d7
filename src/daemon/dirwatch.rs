//! Watch mode: a `type: dir` desired side watched with inotify (the `notify` crate), so
//! that an edit under it is evaluated at once instead of on the next `desired_interval`.
//!
//! The watcher only says *that* something changed: the watch task waits the coalescing
//! window after the first event (an editor's save, a `git pull` touching many files make
//! one re-read), then reads the directory again through the file cache, which re-parses
//! only the files whose size, mtime or content hash changed. Reads (open, access) are not
//! changes; an inotify queue overflow is (everything is read again). A watcher that cannot
//! start or fails (the inotify watch limit, the directory removed) is reported once and the
//! directory is read every `desired_interval` as without a watcher.

use std::path::{Path, PathBuf};

use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher as _};
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

/// What the watcher saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirEvent {
    /// Something under the path changed (or the kernel's queue overflowed).
    Changed,
    /// The watcher failed; no more events come.
    Failed(String),
}

/// A running watcher (stops when dropped) and its events.
pub struct DirWatch {
    _watcher: RecommendedWatcher,
    pub events: UnboundedReceiver<DirEvent>,
}

/// Whether an event is a change of `file` (`None`: of anything watched).
fn relevant(ev: &notify::Event, file: Option<&Path>) -> bool {
    if ev.need_rescan() {
        return true;
    }
    if matches!(ev.kind, EventKind::Access(_)) {
        return false;
    }
    match file {
        None => true,
        Some(f) => ev.paths.iter().any(|p| p == f),
    }
}

/// Starts watching `path`: a directory recursively, a file through its parent directory
/// (editors replace a file by renaming a new one over it, which a watch on the file itself
/// would not survive).
///
/// # Errors
/// Text naming the path when inotify cannot watch it.
pub fn start(path: &Path) -> Result<DirWatch, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let (target, file, mode): (PathBuf, Option<PathBuf>, RecursiveMode) = if meta.is_dir() {
        (path.to_path_buf(), None, RecursiveMode::Recursive)
    } else {
        let parent = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        (
            parent,
            Some(path.to_path_buf()),
            RecursiveMode::NonRecursive,
        )
    };
    let (tx, events) = unbounded_channel();
    let mut watcher = notify::recommended_watcher(move |r: notify::Result<notify::Event>| {
        let ev = match r {
            Ok(ev) if relevant(&ev, file.as_deref()) => DirEvent::Changed,
            Ok(_) => return,
            Err(e) => DirEvent::Failed(e.to_string()),
        };
        let _ = tx.send(ev);
    })
    .map_err(|e| format!("{}: {e}", path.display()))?;
    watcher
        .watch(&target, mode)
        .map_err(|e| format!("{}: {e}", target.display()))?;
    Ok(DirWatch {
        _watcher: watcher,
        events,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    async fn next(w: &mut DirWatch) -> Option<DirEvent> {
        tokio::time::timeout(Duration::from_secs(10), w.events.recv())
            .await
            .ok()
            .flatten()
    }

    #[tokio::test]
    async fn a_write_under_a_directory_is_seen_and_a_read_is_not() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/a.yaml"), "a: 1\n").unwrap();
        let mut w = start(dir.path()).unwrap();
        // A read only: nothing is reported; the write after it is the first event.
        let _ = std::fs::read_to_string(dir.path().join("sub/a.yaml")).unwrap();
        std::fs::write(dir.path().join("sub/a.yaml"), "a: 2\n").unwrap();
        assert_eq!(next(&mut w).await, Some(DirEvent::Changed));
        // A new file in a new subdirectory too.
        while w.events.try_recv().is_ok() {}
        std::fs::create_dir(dir.path().join("new")).unwrap();
        assert_eq!(next(&mut w).await, Some(DirEvent::Changed));
    }

    #[tokio::test]
    async fn a_single_file_is_watched_through_its_directory() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("desired.yaml");
        std::fs::write(&f, "a: 1\n").unwrap();
        std::fs::write(dir.path().join("other.yaml"), "b: 1\n").unwrap();
        let mut w = start(&f).unwrap();
        // Another file in the same directory is not this source's change.
        std::fs::write(dir.path().join("other.yaml"), "b: 2\n").unwrap();
        // Replaced by a rename, as editors save.
        std::fs::write(dir.path().join(".desired.yaml.tmp"), "a: 2\n").unwrap();
        std::fs::rename(dir.path().join(".desired.yaml.tmp"), &f).unwrap();
        assert_eq!(next(&mut w).await, Some(DirEvent::Changed));
        while w.events.try_recv().is_ok() {}
        // The watch survived the rename.
        std::fs::write(&f, "a: 3\n").unwrap();
        assert_eq!(next(&mut w).await, Some(DirEvent::Changed));
    }

    #[test]
    fn a_missing_path_is_named() {
        let e = start(Path::new("/nonexistent/envdrift-dir")).err().unwrap();
        assert!(e.contains("/nonexistent/envdrift-dir"), "{e}");
    }
}
