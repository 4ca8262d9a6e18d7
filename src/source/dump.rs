//! Snapshots from files and directories: manifests in Git checkouts, `kubectl get -o yaml`
//! dumps, `envdrift snapshot` output.
//!
//! Entry point: [`load_paths`]. Directories are walked recursively (`.yaml`, `.yml`,
//! `.json`; hidden entries skipped); files named explicitly are read whatever their
//! extension. Files are parsed in parallel, and each file's documents or `kind: List` items
//! in batches ([`parse_manifest_stream`]): [`stream_paths`] and [`load_paths_compact`] never
//! hold a file parsed at once. Every problem becomes an
//! [`InputError`](crate::model::InputError) naming the file and line; the rest is still read.
//! [`FileCache`] keeps parses between reads (the daemon's), by content.

use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde_json::Value;
use sha2::Digest;

use crate::kinds::is_cluster_scoped;
use crate::model::{
    InputError, Object, Origin, ResourceKey, SkippedInput, Snapshot, SourceRef, UnknownScope,
};
use crate::redact::redact_secret;
use crate::source::manifest::{ParsedText, parse_manifest_stream};

/// How to read one side.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Name of the side in messages: `desired`, `live`, `from`, `to`.
    pub side: String,
    /// Namespace given to namespaced objects that have none. `None` leaves them without
    /// (live dumps always carry their namespace). Default for desired: `default`, as kubectl.
    pub default_namespace: Option<String>,
    /// Extra cluster-scoped kinds (`Kind` or `Kind.group`), e.g. cluster-scoped CRDs.
    pub cluster_scoped_kinds: Vec<String>,
    /// Drop `status` while loading (it is never compared; saves memory on big dumps).
    pub drop_status: bool,
    /// Git commit the files were read at, recorded on every object's origin.
    pub commit: Option<String>,
    /// Symbolic links and file sizes of file walks.
    pub limits: FileLimits,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            side: "desired".into(),
            default_namespace: Some("default".into()),
            cluster_scoped_kinds: Vec::new(),
            drop_status: true,
            commit: None,
            limits: FileLimits::default(),
        }
    }
}

/// Default upper bound on one input file (256 MiB); larger files are refused with an
/// error (not read). `--max-file-size` changes it.
pub const MAX_FILE_BYTES: u64 = 256 * 1024 * 1024;

/// Limits of a file walk: symbolic links and file sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileLimits {
    /// Follow symbolic links that lead outside the directory given (`--follow-links`).
    /// Links inside it are always followed; cycles are always detected.
    pub follow_links: bool,
    /// Largest file read, in bytes; larger ones are input errors.
    pub max_file_bytes: u64,
}

impl Default for FileLimits {
    fn default() -> Self {
        FileLimits {
            follow_links: false,
            max_file_bytes: MAX_FILE_BYTES,
        }
    }
}

/// What a walk of the given paths found: files to read, entries skipped (FIFOs, sockets,
/// devices, links that leave the root, link cycles) and unreadable paths.
#[derive(Debug, Default)]
pub struct Walk {
    pub files: Vec<PathBuf>,
    pub skipped: Vec<SkippedInput>,
    pub errors: Vec<InputError>,
}

/// Collects the manifest files under `paths`, in a stable order, with the default limits.
pub fn collect_files(paths: &[PathBuf], side: &str, errors: &mut Vec<InputError>) -> Vec<PathBuf> {
    let w = walk(paths, side, &FileLimits::default());
    errors.extend(w.errors);
    w.files
}

/// What a path is when it is neither a regular file nor a directory (`None` otherwise).
fn special_kind(ft: std::fs::FileType) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_fifo() {
        Some("a FIFO (named pipe)")
    } else if ft.is_socket() {
        Some("a socket")
    } else if ft.is_block_device() {
        Some("a block device")
    } else if ft.is_char_device() {
        Some("a character device")
    } else if ft.is_file() || ft.is_dir() || ft.is_symlink() {
        None
    } else {
        Some("not a regular file")
    }
}

/// The device and inode of a directory: its identity for cycle detection.
fn dir_id(m: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (m.dev(), m.ino())
}

/// Walks `paths`: directories recursively (`.yaml`, `.yml`, `.json`; hidden entries
/// skipped), files named explicitly whatever their extension. Never opens anything: FIFOs,
/// sockets and devices are skipped with a note inside directories and refused with an
/// input error when named explicitly; a directory reached twice (a symlink cycle) is
/// walked once; a symbolic link whose target is outside the given directory is skipped
/// unless [`FileLimits::follow_links`].
pub fn walk(paths: &[PathBuf], side: &str, limits: &FileLimits) -> Walk {
    let mut w = Walk::default();
    let err = |source: &Path, message: String| InputError {
        side: side.to_string(),
        source: source.display().to_string(),
        line: None,
        column: None,
        message,
    };
    for p in paths {
        match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => {
                let root = match std::fs::canonicalize(p) {
                    Ok(r) => r,
                    Err(e) => {
                        w.errors.push(err(p, format!("cannot read directory: {e}")));
                        continue;
                    }
                };
                let mut visited = std::collections::HashSet::new();
                visited.insert(dir_id(&m));
                let mut walker = Walker {
                    side,
                    root: &root,
                    limits,
                    visited,
                    out: &mut w,
                };
                walker.dir(p);
            }
            Ok(m) => match special_kind(m.file_type()) {
                None => w.files.push(p.clone()),
                Some(what) => w.errors.push(err(
                    p,
                    format!("cannot read: {what}, not a file (refused: reading it could block)"),
                )),
            },
            Err(e) => w.errors.push(err(
                p,
                if e.kind() == std::io::ErrorKind::NotFound {
                    "cannot read: does not exist".to_string()
                } else {
                    format!("cannot read: {e}")
                },
            )),
        }
    }
    w
}

struct Walker<'a> {
    side: &'a str,
    /// The given directory, canonical: links leading outside it are not followed.
    root: &'a Path,
    limits: &'a FileLimits,
    /// Directories entered, by (device, inode).
    visited: std::collections::HashSet<(u64, u64)>,
    out: &'a mut Walk,
}

impl Walker<'_> {
    fn skip(&mut self, p: &Path, reason: String) {
        self.out.skipped.push(SkippedInput {
            source: p.display().to_string(),
            reason,
        });
    }

    fn error(&mut self, p: &Path, message: String) {
        self.out.errors.push(InputError {
            side: self.side.to_string(),
            source: p.display().to_string(),
            line: None,
            column: None,
            message,
        });
    }

    fn dir(&mut self, dir: &Path) {
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) => {
                self.error(dir, format!("cannot read directory: {e}"));
                return;
            }
        };
        let mut list: Vec<(PathBuf, Option<std::fs::FileType>)> = entries
            .filter_map(Result::ok)
            .map(|e| (e.path(), e.file_type().ok()))
            .collect();
        list.sort_by(|a, b| a.0.cmp(&b.0));
        for (p, ft) in list {
            let hidden = p
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.'));
            if hidden {
                continue;
            }
            self.entry(&p, ft);
        }
    }

    fn entry(&mut self, p: &Path, ft: Option<std::fs::FileType>) {
        let is_link = ft.is_some_and(|t| t.is_symlink());
        if is_link && !self.limits.follow_links {
            match std::fs::canonicalize(p) {
                Ok(target) if !target.starts_with(self.root) => {
                    self.skip(
                        p,
                        format!(
                            "symbolic link to {}, outside {} (not followed; --follow-links follows it)",
                            target.display(),
                            self.root.display()
                        ),
                    );
                    return;
                }
                Ok(_) => {}
                Err(e) => {
                    self.skip(p, format!("broken symbolic link: {e}"));
                    return;
                }
            }
        }
        // The entry itself, or what its link leads to.
        let m = match std::fs::metadata(p) {
            Ok(m) => m,
            Err(e) => {
                if is_link {
                    self.skip(p, format!("broken symbolic link: {e}"));
                } else {
                    self.error(p, format!("cannot read: {e}"));
                }
                return;
            }
        };
        if m.is_dir() {
            if self.visited.insert(dir_id(&m)) {
                self.dir(p);
            } else {
                self.skip(
                    p,
                    "directory already read (a symbolic link cycle or a second link to it)".into(),
                );
            }
            return;
        }
        if let Some(what) = special_kind(m.file_type()) {
            self.skip(p, format!("{what}, not a file: not read"));
            return;
        }
        if matches!(
            p.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml" | "json")
        ) {
            self.out.files.push(p.to_path_buf());
        }
    }
}

/// Reads a regular file of at most `max` bytes. The type is checked before opening (a FIFO
/// would block `open`) and again on the open file; the size both before reading and while
/// reading (a file that grows).
fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let over = |len: u64| {
        format!("file is {len} bytes, over the {max} byte limit (--max-file-size raises it)")
    };
    let m = std::fs::metadata(path).map_err(|e| format!("cannot read: {e}"))?;
    if let Some(what) = special_kind(m.file_type()) {
        return Err(format!(
            "cannot read: {what}, not a file (refused: reading it could block)"
        ));
    }
    if m.is_dir() {
        return Err("cannot read: a directory".into());
    }
    if m.len() > max {
        return Err(over(m.len()));
    }
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read: {e}"))?;
    let fm = file.metadata().map_err(|e| format!("cannot read: {e}"))?;
    if !fm.is_file() {
        return Err("cannot read: not a regular file".into());
    }
    let mut bytes = Vec::with_capacity(usize::try_from(fm.len().min(max)).unwrap_or(0));
    file.take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read: {e}"))?;
    if bytes.len() as u64 > max {
        return Err(over(bytes.len() as u64));
    }
    Ok(bytes)
}

/// The text of a file's bytes: no NUL bytes, UTF-8, without a byte order mark.
fn bytes_to_text(bytes: Vec<u8>) -> Result<String, String> {
    if bytes.contains(&0) {
        return Err("binary data (NUL bytes), not YAML or JSON".to_string());
    }
    let mut text = String::from_utf8(bytes).map_err(|e| {
        format!(
            "not UTF-8 text (invalid byte at offset {}): binary file?",
            e.utf8_error().valid_up_to()
        )
    })?;
    if text.starts_with('\u{feff}') {
        text.drain(..'\u{feff}'.len_utf8());
    }
    Ok(text)
}

/// Reads one file and hands its objects (keyed, redacted) to `f` in batches of at most
/// [`manifest::BATCH`](crate::source::manifest::BATCH), so that a big file is never held
/// parsed at once; a file that cannot be read is one batch with its error.
fn file_batches(path: &Path, opts: &LoadOptions, f: &mut dyn FnMut(FileObjects)) {
    file_batches_cached(path, opts, None, f);
}

/// [`file_batches`] through a [`FileCache`]: the file is always read and hashed; when its
/// content (and the options) are those of the cached parse, nothing is handed to `f` and
/// the cached parse is returned ([`Cached::Hit`]: the caller uses it as it is or replays
/// it with [`CachedFile::replay`]); else the file is parsed into `f` and stored.
fn file_batches_cached(
    path: &Path,
    opts: &LoadOptions,
    cache: Option<&FileCache>,
    f: &mut dyn FnMut(FileObjects),
) -> Cached {
    let bytes = match read_bounded(path, opts.limits.max_file_bytes) {
        Ok(b) => b,
        Err(msg) => {
            f(read_error(path, opts, msg));
            return Cached::Parsed(None);
        }
    };
    let Some(cache) = cache else {
        match bytes_to_text(bytes) {
            Ok(text) => text_batches(path, &text, opts, f),
            Err(msg) => f(read_error(path, opts, msg)),
        }
        return Cached::Parsed(None);
    };
    let key = cache_key(opts, path);
    let hash: [u8; 32] = sha2::Sha256::digest(&bytes).into();
    if let Some(entry) = cache.hit(&key, &hash) {
        return Cached::Hit(entry);
    }
    let size = bytes.len() as u64;
    let mut entry = CachedFile {
        key: key.clone(),
        hash,
        objects: Vec::new(),
        errors: Vec::new(),
        skipped: None,
        bytes: 0,
    };
    let mut record = |fo: FileObjects| {
        entry.record(&fo);
        f(fo);
    };
    match bytes_to_text(bytes) {
        Ok(text) => text_batches(path, &text, opts, &mut record),
        Err(msg) => record(read_error(path, opts, msg)),
    }
    tracing::trace!(file = %path.display(), size, "parsed (not cached before)");
    Cached::Parsed(cache.store(key, entry))
}

/// How [`file_batches_cached`] read a file.
enum Cached {
    /// Its bytes are those of this cached parse; nothing was handed over.
    Hit(std::sync::Arc<CachedFile>),
    /// It was parsed and handed over; its parse, when it was stored.
    Parsed(Option<std::sync::Arc<CachedFile>>),
}

impl Cached {
    /// Hands a hit over as a parse would have been.
    fn replay_into(self, f: &mut dyn FnMut(FileObjects)) -> Option<std::sync::Arc<CachedFile>> {
        match self {
            Cached::Hit(entry) => {
                entry.replay(f);
                Some(entry)
            }
            Cached::Parsed(entry) => entry,
        }
    }
}

/// A cache of file parses kept between reads (the daemon's, in
/// [`SourceCaches`](crate::source::SourceCaches)), by options and path.
///
/// Never stale: every file is read and its content hashed (SHA-256) on every read, and an
/// entry is used only for the same bytes read with the same options. Size and mtime alone
/// are not trusted: on filesystems with coarse mtimes, and with tools that keep mtimes
/// (`cp -p`, `rsync -t`, `tar`), a file can change and keep both. Only the parse is saved;
/// reading and hashing a file costs a small fraction of parsing it.
///
/// Memory-bounded: objects are kept as compact JSON text (about the size of the file), up
/// to [`FileCache::MAX_BYTES`] in all; files beyond that are parsed every time. Entries of
/// files no longer read are dropped after each read of the source.
#[derive(Debug, Default)]
pub struct FileCache {
    entries: std::sync::Mutex<FileEntries>,
}

#[derive(Debug, Default)]
struct FileEntries {
    map: std::collections::HashMap<String, std::sync::Arc<CachedFile>>,
    bytes: usize,
    /// Files served from the cache since the last [`FileCache::take_reused`].
    reused: usize,
}

/// One file's parse, as it was handed over: each object as the compact JSON text
/// `serde_json::to_string` wrote for it.
#[derive(Debug)]
pub struct CachedFile {
    /// The options and path it was read with ([`FileCache`]'s key).
    key: String,
    hash: [u8; 32],
    objects: Vec<(ResourceKey, Box<str>, Origin)>,
    errors: Vec<InputError>,
    skipped: Option<SkippedInput>,
    bytes: usize,
}

impl CachedFile {
    /// The options and path the file was read with: unique per file and way of reading it.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// SHA-256 of the file's bytes.
    pub fn hash(&self) -> &[u8; 32] {
        &self.hash
    }

    /// The file's objects: key, compact JSON text, origin.
    pub fn objects(&self) -> &[(ResourceKey, Box<str>, Origin)] {
        &self.objects
    }

    fn record(&mut self, fo: &FileObjects) {
        for (k, o) in &fo.objects {
            // Serializing a value does not fail; if it did, the entry would be incomplete:
            // make it unusable instead.
            let Ok(json) = serde_json::to_string(&o.value) else {
                self.hash = [0; 32];
                continue;
            };
            self.bytes += json.len() + std::mem::size_of::<(ResourceKey, Box<str>, Origin)>();
            self.objects
                .push((k.clone(), json.into_boxed_str(), o.origin.clone()));
        }
        self.errors.extend(fo.errors.iter().cloned());
        if fo.skipped.is_some() {
            self.skipped.clone_from(&fo.skipped);
        }
    }

    /// The objects as a [`CompactSnapshot`](crate::diff::CompactSnapshot) of their text
    /// and the duplicates among them, without parsing them (CRDs excepted); `None` if a
    /// CRD's text does not parse (text written from a value always does).
    fn compact(
        &self,
        opts: &LoadOptions,
    ) -> Option<(crate::diff::CompactSnapshot, Vec<InputError>)> {
        let mut texts = crate::diff::CompactSnapshot::default();
        let mut dups = Vec::new();
        for (key, json, origin) in &self.objects {
            let crd = crate::diff::schema::is_crd(key);
            match texts.insert_text(key.clone(), json, origin.clone(), crd) {
                Ok(true) => {}
                Ok(false) => return None,
                Err(first) => dups.push(duplicate_error(opts, key, origin, first)),
            }
        }
        Some((texts, dups))
    }

    /// Hands the parse over again, in batches, as [`file_batches`] would.
    fn replay(&self, f: &mut dyn FnMut(FileObjects)) {
        for chunk in self.objects.chunks(crate::source::manifest::BATCH) {
            let objects: Vec<(ResourceKey, Object)> = chunk
                .par_iter()
                .filter_map(|(k, json, origin)| {
                    let value = serde_json::from_str(json).ok()?;
                    Some((k.clone(), Object::new(value, origin.clone())))
                })
                .collect();
            f(FileObjects {
                objects,
                ..FileObjects::default()
            });
        }
        f(FileObjects {
            objects: Vec::new(),
            errors: self.errors.clone(),
            skipped: self.skipped.clone(),
        });
    }
}

impl FileCache {
    /// Upper bound on the objects kept, in bytes of JSON text (512 MiB).
    pub const MAX_BYTES: usize = 512 * 1024 * 1024;

    fn lock(&self) -> std::sync::MutexGuard<'_, FileEntries> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn hit(&self, key: &str, hash: &[u8; 32]) -> Option<std::sync::Arc<CachedFile>> {
        let mut e = self.lock();
        let entry = e
            .map
            .get(key)
            .filter(|c| &c.hash == hash && *hash != [0; 32])?;
        let entry = std::sync::Arc::clone(entry);
        e.reused += 1;
        Some(entry)
    }

    /// Stores a parse; returns it when it was kept (it fits in [`FileCache::MAX_BYTES`]).
    fn store(&self, key: String, entry: CachedFile) -> Option<std::sync::Arc<CachedFile>> {
        let mut e = self.lock();
        if let Some(old) = e.map.remove(&key) {
            e.bytes -= old.bytes;
        }
        if entry.hash != [0; 32] && e.bytes + entry.bytes <= Self::MAX_BYTES {
            e.bytes += entry.bytes;
            let entry = std::sync::Arc::new(entry);
            e.map.insert(key, std::sync::Arc::clone(&entry));
            return Some(entry);
        }
        None
    }

    /// Drops the entries read with `opts` whose file is not in `files` (it was removed).
    fn retain_files(&self, opts: &LoadOptions, files: &[PathBuf]) {
        let keep: std::collections::HashSet<String> =
            files.iter().map(|f| cache_key(opts, f)).collect();
        let prefix = cache_prefix(opts);
        let mut e = self.lock();
        let mut freed = 0;
        e.map.retain(|k, v| {
            let ours = k.starts_with(&prefix);
            let kept = !ours || keep.contains(k);
            if !kept {
                freed += v.bytes;
            }
            kept
        });
        e.bytes -= freed;
    }

    /// Files served from the cache since the last call.
    pub fn take_reused(&self) -> usize {
        std::mem::take(&mut self.lock().reused)
    }

    /// Files cached, and the bytes their objects take.
    pub fn size(&self) -> (usize, usize) {
        let e = self.lock();
        (e.map.len(), e.bytes)
    }
}

/// The options that shape a parse, as a cache key prefix.
fn cache_prefix(opts: &LoadOptions) -> String {
    format!("{opts:?}\u{0}")
}

fn cache_key(opts: &LoadOptions, path: &Path) -> String {
    format!("{}{}", cache_prefix(opts), path.display())
}

/// A file that could not be read: one input error naming it.
fn read_error(path: &Path, opts: &LoadOptions, message: String) -> FileObjects {
    FileObjects {
        errors: vec![InputError {
            side: opts.side.clone(),
            source: path.display().to_string(),
            line: None,
            column: None,
            message,
        }],
        ..FileObjects::default()
    }
}

/// Parses the text of one file (`path` names it in origins and errors; `.json` selects
/// the JSON parser), handing its objects to `f` in batches; the last batch carries the
/// skip note of a file that holds no Kubernetes object.
fn text_batches(path: &Path, text: &str, opts: &LoadOptions, f: &mut dyn FnMut(FileObjects)) {
    let json = path.extension().and_then(|e| e.to_str()) == Some("json");
    text_batches_as(path, text, json, opts, f);
}

/// [`text_batches`] with the parser chosen by the caller.
fn text_batches_as(
    path: &Path,
    text: &str,
    json: bool,
    opts: &LoadOptions,
    f: &mut dyn FnMut(FileObjects),
) {
    let (mut objects, mut non_objects) = (0usize, false);
    parse_manifest_stream(text, json, &mut |parsed| {
        objects += parsed.objects.len();
        non_objects |= !parsed.non_objects.is_empty();
        f(parsed_objects(path, parsed, opts));
    });
    if objects == 0 && non_objects {
        f(FileObjects {
            skipped: Some(SkippedInput {
                source: path.display().to_string(),
                reason: "not a Kubernetes object (no apiVersion/kind, or a Kustomize file)".into(),
            }),
            ..FileObjects::default()
        });
    }
}

/// All of one file's objects, errors and skip note at once.
fn whole_file(path: &Path, opts: &LoadOptions, text: Option<&str>) -> FileObjects {
    let mut all = FileObjects::default();
    let mut add = |fo: FileObjects| {
        all.objects.extend(fo.objects);
        all.errors.extend(fo.errors);
        all.skipped = all.skipped.take().or(fo.skipped);
    };
    match text {
        Some(t) => text_batches(path, t, opts, &mut add),
        None => file_batches(path, opts, &mut add),
    }
    all
}

/// The objects, problems and skip note of one file, before merging into a snapshot.
#[derive(Debug, Default)]
pub struct FileObjects {
    pub objects: Vec<(ResourceKey, Object)>,
    pub errors: Vec<InputError>,
    pub skipped: Option<SkippedInput>,
}

fn source_ref(paths: &[PathBuf], opts: &LoadOptions) -> SourceRef {
    SourceRef {
        env: opts.side.clone(),
        description: paths
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        commit: opts.commit.clone(),
        stale: None,
    }
}

/// Reads all objects under `paths` into a [`Snapshot`]. `on_file` is called once per
/// file read (for progress bars).
pub fn load_paths(
    paths: &[PathBuf],
    opts: &LoadOptions,
    on_file: &(dyn Fn(&Path) + Sync),
) -> Snapshot {
    let mut snap = Snapshot {
        source: Some(source_ref(paths, opts)),
        ..Snapshot::default()
    };
    let walked = walk(paths, &opts.side, &opts.limits);
    snap.errors.extend(walked.errors);
    snap.skipped.extend(walked.skipped);
    snap.unknown = read_unknown(paths, &opts.side, &mut snap.errors);
    let results: Vec<FileObjects> = walked
        .files
        .par_iter()
        .map(|f| {
            let r = whole_file(f, opts, None);
            on_file(f);
            r
        })
        .collect();
    for r in results {
        merge_meta(&mut snap, r.errors, r.skipped);
        for (key, obj) in r.objects {
            if let Some(first) = snap.objects.get(&key) {
                snap.errors
                    .push(duplicate_error(opts, &key, &obj.origin, &first.origin));
                continue;
            }
            snap.objects.insert(key, obj);
        }
    }
    snap
}

/// Reads all objects under `paths` like [`load_paths`], into a
/// [`CompactSnapshot`](crate::diff::CompactSnapshot) (each batch of a file compacted as
/// soon as it is parsed: the side is never held parsed at once) and the snapshot's
/// metadata (its `objects` empty).
pub fn load_paths_compact(
    paths: &[PathBuf],
    opts: &LoadOptions,
    on_file: &(dyn Fn(&Path) + Sync),
    cache: Option<&FileCache>,
) -> (Snapshot, crate::diff::CompactSnapshot) {
    let mut meta = Snapshot {
        source: Some(source_ref(paths, opts)),
        ..Snapshot::default()
    };
    let walked = walk(paths, &opts.side, &opts.limits);
    meta.errors.extend(walked.errors);
    meta.skipped.extend(walked.skipped);
    meta.unknown = read_unknown(paths, &opts.side, &mut meta.errors);
    // Per file: its objects compacted, its errors, then its duplicates within itself.
    type PerFile = (crate::diff::CompactSnapshot, FileObjects, Vec<InputError>);
    let per_file: Vec<PerFile> = walked
        .files
        .par_iter()
        .map(|f| {
            let mut compact = crate::diff::CompactSnapshot::default();
            let mut rest = FileObjects::default();
            let mut dups = Vec::new();
            let mut add = |fo: FileObjects| {
                for (key, obj) in fo.objects {
                    let origin = obj.origin.clone();
                    if let Err(first) = compact.insert(key.clone(), obj) {
                        dups.push(duplicate_error(opts, &key, &origin, first));
                    }
                }
                rest.errors.extend(fo.errors);
                rest.skipped = rest.skipped.take().or(fo.skipped);
            };
            if let Cached::Hit(entry) = file_batches_cached(f, opts, cache, &mut add) {
                // An unchanged file: its objects' text goes into the compact side as it
                // is, without parsing it again (CRDs excepted: the registry reads them).
                match entry.compact(opts) {
                    Some((texts, file_dups)) => {
                        compact = texts;
                        dups = file_dups;
                        rest.errors.extend(entry.errors.iter().cloned());
                        rest.skipped.clone_from(&entry.skipped);
                    }
                    None => entry.replay(&mut add),
                }
            }
            on_file(f);
            (compact, rest, dups)
        })
        .collect();
    if let Some(c) = cache {
        c.retain_files(opts, &walked.files);
    }
    let mut all = crate::diff::CompactSnapshot::default();
    for (compact, rest, dups) in per_file {
        merge_meta(&mut meta, rest.errors, rest.skipped);
        meta.errors.extend(dups);
        all.absorb(compact, |key, at, first| {
            meta.errors.push(duplicate_error(opts, key, at, first));
        });
    }
    (meta, all)
}

/// A consumer of one file's objects (see [`stream_paths`]).
pub type Consumer<'a, R> = dyn Fn(&[(ResourceKey, Object)]) -> R + Sync + 'a;

/// Results of a [`Consumer`] kept between reads of a file source (the daemon's): when a
/// file's bytes are those of a cached parse, [`FileReuse::reuse`] may give back the
/// results `consume` gave for them last time, and the file is neither parsed nor consumed.
pub trait FileReuse<R>: Sync {
    /// The results kept for this file's parse, if they still hold.
    fn reuse(&self, file: &CachedFile) -> Option<Vec<R>>;
    /// Keeps the results `consume` just gave for this file's parse.
    fn keep(&self, file: &CachedFile, results: &[R]);
}

/// What [`stream_paths`] returns: the consumer's results (one per file, in file order)
/// and the snapshot's metadata without its objects (source, errors, skipped files).
#[derive(Debug)]
pub struct Streamed<R> {
    pub results: Vec<R>,
    pub meta: Snapshot,
    /// Objects read (duplicates included).
    pub objects: usize,
}

/// Reads the files under `paths` one at a time (in parallel) and hands each file's objects
/// to `consume`, then drops them: memory holds a few files, never the whole side. Used to
/// compare a large live dump against desired without holding the dump.
///
/// # Caveats
/// A duplicate object is reported as an input error, but both copies were already
/// handed to `consume`.
#[allow(clippy::type_complexity)] // one callback type, spelled out once
pub(crate) fn stream_paths<R: Send>(
    paths: &[PathBuf],
    opts: &LoadOptions,
    on_file: &(dyn Fn(&Path) + Sync),
    consume: &Consumer<'_, R>,
    cache: Option<&FileCache>,
    reuse: Option<&dyn FileReuse<R>>,
) -> Streamed<R> {
    let mut meta = Snapshot {
        source: Some(source_ref(paths, opts)),
        ..Snapshot::default()
    };
    let walked = walk(paths, &opts.side, &opts.limits);
    meta.errors.extend(walked.errors);
    meta.skipped.extend(walked.skipped);
    let files = walked.files;
    meta.unknown = read_unknown(paths, &opts.side, &mut meta.errors);
    type PerFile<R> = (
        Vec<R>,
        Vec<(ResourceKey, Origin)>,
        Vec<InputError>,
        Option<SkippedInput>,
    );
    let per_file: Vec<PerFile<R>> = files
        .par_iter()
        .map(|f| {
            let mut out: PerFile<R> = (Vec::new(), Vec::new(), Vec::new(), None);
            let mut take = |fo: FileObjects| {
                if !fo.objects.is_empty() {
                    out.0.push(consume(&fo.objects));
                }
                out.1
                    .extend(fo.objects.into_iter().map(|(k, o)| (k, o.origin)));
                out.2.extend(fo.errors);
                out.3 = out.3.take().or(fo.skipped);
            };
            let read = file_batches_cached(f, opts, cache, &mut take);
            if let (Cached::Hit(entry), Some(r)) = (&read, reuse)
                && let Some(results) = r.reuse(entry)
            {
                // Unchanged, and so is what it was compared with: last time's results.
                out.0 = results;
                out.1 = entry
                    .objects
                    .iter()
                    .map(|(k, _, origin)| (k.clone(), origin.clone()))
                    .collect();
                out.2.clone_from(&entry.errors);
                out.3.clone_from(&entry.skipped);
            } else if let Some(entry) = read.replay_into(&mut take)
                && let Some(r) = reuse
            {
                r.keep(&entry, &out.0);
            }
            on_file(f);
            out
        })
        .collect();
    if let Some(c) = cache {
        c.retain_files(opts, &files);
    }
    let mut results = Vec::with_capacity(per_file.len());
    let mut seen: std::collections::HashMap<ResourceKey, Origin> = std::collections::HashMap::new();
    let mut objects = 0;
    for (r, keys, errors, skipped) in per_file {
        results.extend(r);
        merge_meta(&mut meta, errors, skipped);
        for (key, origin) in keys {
            objects += 1;
            if let Some(first) = seen.get(&key) {
                meta.errors
                    .push(duplicate_error(opts, &key, &origin, first));
            } else {
                seen.insert(key, origin);
            }
        }
    }
    Streamed {
        results,
        meta,
        objects,
    }
}

fn merge_meta(snap: &mut Snapshot, errors: Vec<InputError>, skipped: Option<SkippedInput>) {
    snap.errors.extend(errors);
    snap.skipped.extend(skipped);
}

fn duplicate_error(
    opts: &LoadOptions,
    key: &ResourceKey,
    at: &Origin,
    first: &Origin,
) -> InputError {
    let (source, line) = match at {
        Origin::File { path, line, .. } => (path.display().to_string(), Some(*line)),
        Origin::Live { .. } => (opts.side.clone(), None),
    };
    InputError {
        side: opts.side.clone(),
        source,
        line,
        column: None,
        message: format!("duplicate object {key}: already defined at {first}"),
    }
}

/// Parses the bytes of one file that was not read from disk (a blob in a Git tree):
/// `path` is what origins and errors name. Same checks as for files (binary, UTF-8, BOM).
pub(crate) fn objects_from_bytes(path: &Path, bytes: Vec<u8>, opts: &LoadOptions) -> FileObjects {
    match bytes_to_text(bytes) {
        Ok(text) => whole_file(path, opts, Some(&text)),
        Err(msg) => read_error(path, opts, msg),
    }
}

/// Adds one file's objects, errors and skip note to `snap`; a duplicate object is an
/// input error naming both places.
pub(crate) fn merge_file(snap: &mut Snapshot, fo: FileObjects, opts: &LoadOptions) {
    merge_meta(snap, fo.errors, fo.skipped);
    for (key, obj) in fo.objects {
        if let Some(first) = snap.objects.get(&key) {
            snap.errors
                .push(duplicate_error(opts, &key, &obj.origin, &first.origin));
            continue;
        }
        snap.objects.insert(key, obj);
    }
}

/// Builds a snapshot from text that is not in a file (stdin, a renderer's output).
pub fn load_text(text: &str, source_name: &str, opts: &LoadOptions) -> Snapshot {
    let mut snap = Snapshot {
        source: Some(SourceRef {
            env: opts.side.clone(),
            description: source_name.to_string(),
            commit: opts.commit.clone(),
            stale: None,
        }),
        ..Snapshot::default()
    };
    // Text without a file is YAML whatever its name.
    let mut fo = FileObjects::default();
    let name = PathBuf::from(source_name);
    let mut add = |b: FileObjects| {
        fo.objects.extend(b.objects);
        fo.errors.extend(b.errors);
        fo.skipped = fo.skipped.take().or(b.skipped);
    };
    text_batches_as(&name, text, false, opts, &mut add);
    merge_meta(&mut snap, fo.errors, fo.skipped);
    for (key, obj) in fo.objects {
        if let Some(first) = snap.objects.get(&key) {
            snap.errors
                .push(duplicate_error(opts, &key, &obj.origin, &first.origin));
            continue;
        }
        snap.objects.insert(key, obj);
    }
    snap
}

/// Turns one batch of a file's parse result into keyed, redacted objects (pure).
fn parsed_objects(path: &Path, parsed: ParsedText, opts: &LoadOptions) -> FileObjects {
    let mut out = FileObjects::default();
    let source = path.display().to_string();
    let err = |line: Option<usize>, column: Option<usize>, message: String| InputError {
        side: opts.side.clone(),
        source: source.clone(),
        line,
        column,
        message,
    };
    for p in parsed.problems {
        out.errors.push(err(p.line, p.column, p.message));
    }
    for obj in parsed.objects {
        let mut value = obj.value;
        let key = match object_key(&value, opts) {
            Ok(k) => k,
            Err(msg) => {
                out.errors.push(err(Some(obj.line), None, msg));
                continue;
            }
        };
        if let Some(ns) = &key.namespace
            && let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut)
            && !meta.contains_key("namespace")
        {
            meta.insert("namespace".into(), Value::String(ns.clone()));
        }
        redact_secret(&mut value);
        if opts.drop_status
            && let Some(m) = value.as_object_mut()
        {
            m.remove("status");
        }
        let origin = Origin::File {
            path: path.to_path_buf(),
            line: obj.line,
            commit: opts.commit.clone(),
        };
        out.objects.push((key, Object::new(value, origin)));
    }
    out
}

/// The key of an object value, or why it has none.
pub(crate) fn object_key(value: &Value, opts: &LoadOptions) -> Result<ResourceKey, String> {
    let api_version = value
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    let kind = value.get("kind").and_then(Value::as_str).unwrap_or("");
    let meta = value.get("metadata");
    let name = meta.and_then(|m| m.get("name")).and_then(Value::as_str);
    let name = match name {
        Some(n) if !n.is_empty() => n,
        _ => {
            let hint = if meta.and_then(|m| m.get("generateName")).is_some() {
                " (generateName objects cannot be compared)"
            } else {
                ""
            };
            return Err(format!("{kind} object has no metadata.name{hint}"));
        }
    };
    let group = ResourceKey::group_of(api_version).to_string();
    let namespace = match meta
        .and_then(|m| m.get("namespace"))
        .and_then(Value::as_str)
    {
        Some(ns) if !ns.is_empty() => Some(ns.to_string()),
        _ if is_cluster_scoped(&group, kind, &opts.cluster_scoped_kinds) => None,
        _ => opts.default_namespace.clone(),
    };
    Ok(ResourceKey {
        group,
        kind: kind.to_string(),
        namespace,
        name: name.to_string(),
    })
}

/// The file in an `envdrift snapshot` directory that lists the scopes the snapshot could not
/// read (hidden, so that it is not read as objects).
pub const UNKNOWN_FILE: &str = ".envdrift-unknown.json";

/// Reads [`UNKNOWN_FILE`] of every directory in `paths`, so that a dump says "unknown"
/// where the cluster did.
fn read_unknown(paths: &[PathBuf], side: &str, errors: &mut Vec<InputError>) -> Vec<UnknownScope> {
    let mut out = Vec::new();
    for p in paths.iter().filter(|p| p.is_dir()) {
        let f = p.join(UNKNOWN_FILE);
        // Only a regular file: a FIFO there would block.
        if !std::fs::metadata(&f).is_ok_and(|m| m.is_file()) {
            continue;
        }
        let Ok(bytes) = read_bounded(&f, MAX_FILE_BYTES) else {
            continue;
        };
        let text = String::from_utf8_lossy(&bytes);
        match serde_json::from_str::<Vec<UnknownScope>>(&text) {
            Ok(list) => out.extend(list),
            Err(e) => errors.push(InputError {
                side: side.to_string(),
                source: f.display().to_string(),
                line: Some(e.line()),
                column: Some(e.column()),
                message: format!("invalid unknown-scope list: {e}"),
            }),
        }
    }
    out
}

/// Writes a snapshot as a dump directory that [`load_paths`] reads back to the same
/// objects: one multi-document YAML file per namespace and type
/// (`NAMESPACE/Kind.group.yaml`, cluster-scoped objects under `_cluster/`), objects in key
/// order, plus [`UNKNOWN_FILE`]. Secret values are written as the snapshot holds them
/// (hashed when it came from a live source). Returns the number of files written.
///
/// # Errors
/// The directory or a file could not be written.
pub fn write_dump(snap: &Snapshot, dir: &Path) -> std::io::Result<usize> {
    use std::collections::BTreeMap;
    let mut files: BTreeMap<PathBuf, Vec<&Value>> = BTreeMap::new();
    for (key, obj) in &snap.objects {
        let ns = key.namespace.as_deref().unwrap_or("_cluster");
        let name = if key.group.is_empty() {
            format!("{}.yaml", key.kind)
        } else {
            format!("{}.{}.yaml", key.kind, key.group)
        };
        files
            .entry(Path::new(ns).join(name))
            .or_default()
            .push(&obj.value);
    }
    std::fs::create_dir_all(dir)?;
    for (rel, objects) in &files {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut text = String::new();
        for o in objects {
            text.push_str("---\n");
            let yaml = serde_saphyr::to_string(o)
                .map_err(|e| std::io::Error::other(format!("{}: {e}", path.display())))?;
            text.push_str(&yaml);
            if !yaml.ends_with('\n') {
                text.push('\n');
            }
        }
        std::fs::write(&path, text)?;
    }
    let unknown = serde_json::to_string_pretty(&snap.unknown).map_err(std::io::Error::other)?;
    std::fs::write(dir.join(UNKNOWN_FILE), unknown + "\n")?;
    Ok(files.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_names_both_places() {
        let dir = tempfile::tempdir().unwrap();
        let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n";
        std::fs::write(dir.path().join("a.yaml"), cm).unwrap();
        std::fs::write(dir.path().join("b.yaml"), format!("# x\n---\n{cm}")).unwrap();
        let snap = load_paths(
            &[dir.path().to_path_buf()],
            &LoadOptions::default(),
            &|_| {},
        );
        assert_eq!(snap.objects.len(), 1);
        assert_eq!(snap.errors.len(), 1);
        let e = snap.errors[0].to_string();
        assert!(e.contains("b.yaml:2") && e.contains("a.yaml:1"), "{e}");
    }

    #[test]
    fn default_namespace_only_for_namespaced_kinds() {
        let snap = load_text(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: r\n",
            "stdin",
            &LoadOptions::default(),
        );
        let keys: Vec<String> = snap
            .objects
            .keys()
            .map(std::string::ToString::to_string)
            .collect();
        assert_eq!(
            keys,
            [
                "ConfigMap default/a",
                "ClusterRole.rbac.authorization.k8s.io r"
            ]
        );
    }

    #[test]
    fn binary_and_nameless_inputs_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bin.yaml"), [0u8, 159, 146, 150]).unwrap();
        std::fs::write(
            dir.path().join("noname.yaml"),
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("kustomization.yaml"),
            "resources:\n- a.yaml\n",
        )
        .unwrap();
        let snap = load_paths(
            &[dir.path().to_path_buf()],
            &LoadOptions::default(),
            &|_| {},
        );
        assert_eq!(snap.errors.len(), 2, "{:?}", snap.errors);
        assert_eq!(snap.skipped.len(), 1);
    }

    #[test]
    fn write_dump_reads_back_with_unknown_scopes() {
        let dir = tempfile::tempdir().unwrap();
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  namespace: ns\ndata:\n  a: \"yes\"\n  b: \"0644\"\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: ns\n";
        let mut snap = load_text(text, "x.yaml", &LoadOptions::default());
        snap.unknown.push(UnknownScope {
            group: "apps".into(),
            kind: "Deployment".into(),
            namespace: Some("ns".into()),
            reason: "403 Forbidden".into(),
        });
        let files = write_dump(&snap, dir.path()).unwrap();
        assert_eq!(files, 2);
        assert!(dir.path().join("ns/ConfigMap.yaml").exists());
        assert!(dir.path().join("_cluster/Namespace.yaml").exists());
        let opts = LoadOptions {
            side: "live".into(),
            default_namespace: None,
            ..Default::default()
        };
        let back = load_paths(&[dir.path().to_path_buf()], &opts, &|_| {});
        assert!(back.errors.is_empty(), "{:?}", back.errors);
        assert_eq!(back.unknown, snap.unknown);
        assert_eq!(back.objects.len(), 2);
        for (k, o) in &snap.objects {
            assert_eq!(back.objects[k].value, o.value);
        }
    }
}
