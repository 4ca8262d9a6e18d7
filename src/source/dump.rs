//! Snapshots from files and directories: manifests in Git checkouts, `kubectl get -o yaml`
//! dumps, `envdrift snapshot` output.
//!
//! Entry point: [`load_paths`]. Directories are walked recursively (`.yaml`, `.yml`,
//! `.json`; hidden entries skipped); files named explicitly are read whatever their
//! extension. Files are parsed in parallel. Every problem becomes an
//! [`InputError`](crate::model::InputError) naming the file and line; the rest is still read.

use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde_json::Value;

use crate::kinds::is_cluster_scoped;
use crate::model::{
    InputError, Object, Origin, ResourceKey, SkippedInput, Snapshot, SourceRef, UnknownScope,
};
use crate::redact::redact_secret;
use crate::source::manifest::{ParsedText, parse_manifest_text};

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
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            side: "desired".into(),
            default_namespace: Some("default".into()),
            cluster_scoped_kinds: Vec::new(),
            drop_status: true,
            commit: None,
        }
    }
}

/// Upper bound on one input file; larger files are refused with an error (not read).
pub const MAX_FILE_BYTES: u64 = 512 * 1024 * 1024;

/// Collects the manifest files under `paths`, in a stable order.
pub fn collect_files(paths: &[PathBuf], side: &str, errors: &mut Vec<InputError>) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for p in paths {
        match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => walk_dir(p, side, &mut files, errors),
            Ok(_) => files.push(p.clone()),
            Err(e) => errors.push(InputError {
                side: side.to_string(),
                source: p.display().to_string(),
                line: None,
                column: None,
                message: if e.kind() == std::io::ErrorKind::NotFound {
                    "cannot read: does not exist".to_string()
                } else {
                    format!("cannot read: {e}")
                },
            }),
        }
    }
    files
}

fn walk_dir(dir: &Path, side: &str, files: &mut Vec<PathBuf>, errors: &mut Vec<InputError>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            errors.push(InputError {
                side: side.to_string(),
                source: dir.display().to_string(),
                line: None,
                column: None,
                message: format!("cannot read directory: {e}"),
            });
            return;
        }
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for p in paths {
        let hidden = p
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'));
        if hidden {
            continue;
        }
        if p.is_dir() {
            walk_dir(&p, side, files, errors);
        } else if matches!(
            p.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml" | "json")
        ) {
            files.push(p);
        }
    }
}

/// What reading one file produced.
struct FileResult {
    path: PathBuf,
    parsed: ParsedText,
    read_error: Option<String>,
}

fn read_file(path: &Path) -> FileResult {
    let fail = |msg: String| FileResult {
        path: path.to_path_buf(),
        parsed: ParsedText::default(),
        read_error: Some(msg),
    };
    match std::fs::metadata(path) {
        Ok(m) if m.len() > MAX_FILE_BYTES => {
            return fail(format!(
                "file is {} bytes, over the {} byte limit",
                m.len(),
                MAX_FILE_BYTES
            ));
        }
        Err(e) => return fail(format!("cannot read: {e}")),
        _ => {}
    }
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => return fail(format!("cannot read: {e}")),
    };
    parse_bytes(path, bytes)
}

fn parse_bytes(path: &Path, bytes: Vec<u8>) -> FileResult {
    let fail = |msg: String| FileResult {
        path: path.to_path_buf(),
        parsed: ParsedText::default(),
        read_error: Some(msg),
    };
    if bytes.contains(&0) {
        return fail("binary data (NUL bytes), not YAML or JSON".to_string());
    }
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            return fail(format!(
                "not UTF-8 text (invalid byte at offset {}): binary file?",
                e.utf8_error().valid_up_to()
            ));
        }
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let json = path.extension().and_then(|e| e.to_str()) == Some("json");
    FileResult {
        path: path.to_path_buf(),
        parsed: parse_manifest_text(text, json),
        read_error: None,
    }
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
    let files = collect_files(paths, &opts.side, &mut snap.errors);
    snap.unknown = read_unknown(paths, &opts.side, &mut snap.errors);
    let results: Vec<FileObjects> = files
        .par_iter()
        .map(|f| {
            let r = file_objects(read_file(f), opts);
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

/// A consumer of one file's objects (see [`stream_paths`]).
pub type Consumer<'a, R> = dyn Fn(&[(ResourceKey, Object)]) -> R + Sync + 'a;

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
pub fn stream_paths<R: Send>(
    paths: &[PathBuf],
    opts: &LoadOptions,
    on_file: &(dyn Fn(&Path) + Sync),
    consume: &Consumer<'_, R>,
) -> Streamed<R> {
    let mut meta = Snapshot {
        source: Some(source_ref(paths, opts)),
        ..Snapshot::default()
    };
    let files = collect_files(paths, &opts.side, &mut meta.errors);
    meta.unknown = read_unknown(paths, &opts.side, &mut meta.errors);
    type PerFile<R> = (
        R,
        Vec<(ResourceKey, Origin)>,
        Vec<InputError>,
        Option<SkippedInput>,
    );
    let per_file: Vec<PerFile<R>> = files
        .par_iter()
        .map(|f| {
            let fo = file_objects(read_file(f), opts);
            on_file(f);
            let r = consume(&fo.objects);
            let keys = fo.objects.into_iter().map(|(k, o)| (k, o.origin)).collect();
            (r, keys, fo.errors, fo.skipped)
        })
        .collect();
    let mut results = Vec::with_capacity(per_file.len());
    let mut seen: std::collections::HashMap<ResourceKey, Origin> = std::collections::HashMap::new();
    let mut objects = 0;
    for (r, keys, errors, skipped) in per_file {
        results.push(r);
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
pub fn objects_from_bytes(path: &Path, bytes: Vec<u8>, opts: &LoadOptions) -> FileObjects {
    file_objects(parse_bytes(path, bytes), opts)
}

/// Adds one file's objects, errors and skip note to `snap`; a duplicate object is an
/// input error naming both places.
pub fn merge_file(snap: &mut Snapshot, fo: FileObjects, opts: &LoadOptions) {
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
    let r = FileResult {
        path: PathBuf::from(source_name),
        parsed: parse_manifest_text(text, false),
        read_error: None,
    };
    let fo = file_objects(r, opts);
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

/// Turns one file's parse result into keyed, redacted objects (pure).
fn file_objects(r: FileResult, opts: &LoadOptions) -> FileObjects {
    let mut out = FileObjects::default();
    let source = r.path.display().to_string();
    let err = |line: Option<usize>, column: Option<usize>, message: String| InputError {
        side: opts.side.clone(),
        source: source.clone(),
        line,
        column,
        message,
    };
    if let Some(msg) = r.read_error {
        out.errors.push(err(None, None, msg));
        return out;
    }
    for p in r.parsed.problems {
        out.errors.push(err(p.line, p.column, p.message));
    }
    if r.parsed.objects.is_empty() && !r.parsed.non_objects.is_empty() {
        out.skipped = Some(SkippedInput {
            source: source.clone(),
            reason: "not a Kubernetes object (no apiVersion/kind, or a Kustomize file)".into(),
        });
    }
    for obj in r.parsed.objects {
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
            path: r.path.clone(),
            line: obj.line,
            commit: opts.commit.clone(),
        };
        out.objects.push((key, Object::new(value, origin)));
    }
    out
}

/// The key of an object value, or why it has none.
pub fn object_key(value: &Value, opts: &LoadOptions) -> Result<ResourceKey, String> {
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
        let Ok(text) = std::fs::read_to_string(&f) else {
            continue;
        };
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
        let keys: Vec<String> = snap.objects.keys().map(|k| k.to_string()).collect();
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
