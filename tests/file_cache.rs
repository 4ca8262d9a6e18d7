//! The daemon's file cache (issue 14): a file read again with the same content and options
//! is not parsed again, and a changed file is never served from the cache — even when one
//! byte changed and the size and mtime were kept.

use std::path::Path;

use envdrift::diff::DesiredIndex;
use envdrift::model::{Object, ResourceKey};
use envdrift::source::{self, Ctx, FilesKind, SourceCaches, SourceSpec, dump::FileLimits};
use serde_json::Value;

fn spec(dir: &Path, kind: FilesKind) -> SourceSpec {
    SourceSpec::Files {
        paths: vec![dir.to_path_buf()],
        kind,
        limits: FileLimits::default(),
    }
}

fn ctx<'a>(side: &'a str, ns: &'a str, caches: &'a SourceCaches) -> Ctx<'a> {
    Ctx {
        side,
        default_namespace: ns,
        cluster_scoped_kinds: &[],
        caches: Some(caches),
        on_file: &|_| {},
    }
}

/// The live side streamed: `(key, data.k)` of every object, sorted.
fn streamed(dir: &Path, caches: &SourceCaches) -> Vec<(String, Value)> {
    let consume = |objects: &[(ResourceKey, Object)]| -> Vec<(String, Value)> {
        objects
            .iter()
            .map(|(k, o)| (k.to_string(), o.value["data"]["k"].clone()))
            .collect()
    };
    let s = source::stream(
        &spec(dir, FilesKind::Dump),
        &ctx("live", "default", caches),
        &consume,
        None,
    )
    .unwrap();
    let mut all: Vec<(String, Value)> = s.results.into_iter().flatten().collect();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    all
}

fn cm(name: &str, value: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: ns\ndata:\n  k: \"{value}\"\n"
    )
}

fn write_env(dir: &Path) {
    std::fs::write(dir.join("a.yaml"), cm("a", "1")).unwrap();
    std::fs::write(
        dir.join("b.yaml"),
        format!("{}---\n{}", cm("b1", "1"), cm("b2", "1")),
    )
    .unwrap();
    let list: String = (0..3)
        .map(|i| {
            cm(&format!("l{i}"), if i == 1 { "7" } else { "1" })
                .lines()
                .enumerate()
                .map(|(n, l)| format!("{}{l}\n", if n == 0 { "- " } else { "  " }))
                .collect::<String>()
        })
        .collect();
    std::fs::write(
        dir.join("list.yaml"),
        format!("apiVersion: v1\nitems:\n{list}kind: List\n"),
    )
    .unwrap();
}

/// Changes one byte of a file, keeping its size and its modification time.
fn change_one_byte_keep_mtime(path: &Path, from: &str, to: &str) {
    assert_eq!(from.len(), to.len());
    let mtime = std::fs::metadata(path).unwrap().modified().unwrap();
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from));
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(mtime).unwrap();
    drop(f);
    let m = std::fs::metadata(path).unwrap();
    assert_eq!(m.modified().unwrap(), mtime);
    assert_eq!(m.len() as usize, text.len());
}

#[test]
fn unchanged_files_are_reused_and_a_changed_byte_is_always_seen() {
    let dir = tempfile::tempdir().unwrap();
    write_env(dir.path());
    let caches = SourceCaches::default();
    let first = streamed(dir.path(), &caches);
    assert_eq!(first.len(), 6);
    assert_eq!(caches.files_reused("live"), Some(0));
    assert_eq!(caches.files.size().0, 3);

    let again = streamed(dir.path(), &caches);
    assert_eq!(again, first);
    assert_eq!(caches.files_reused("live"), Some(3));

    // One byte of one List item, same size, same mtime: parsed again, new value seen.
    change_one_byte_keep_mtime(&dir.path().join("list.yaml"), "k: \"7\"", "k: \"2\"");
    let changed = streamed(dir.path(), &caches);
    assert_eq!(caches.files_reused("live"), Some(2));
    let l1 = changed.iter().find(|(k, _)| k.ends_with("ns/l1")).unwrap();
    assert_eq!(l1.1, "2");
    assert_eq!(changed.iter().filter(|(_, v)| *v == "1").count(), 5);
    assert!(first.iter().any(|(_, v)| *v == "7"));

    // A removed file leaves the cache; its objects are not read.
    std::fs::remove_file(dir.path().join("a.yaml")).unwrap();
    let fewer = streamed(dir.path(), &caches);
    assert_eq!(fewer.len(), 5);
    assert_eq!(caches.files.size().0, 2);
    assert_eq!(caches.files_reused("live"), Some(2));
}

#[test]
fn the_desired_side_reuses_files_only_with_the_same_options() {
    let dir = tempfile::tempdir().unwrap();
    // Without namespaces: the default namespace shapes the objects.
    std::fs::write(
        dir.path().join("a.yaml"),
        cm("a", "1").replace("  namespace: ns\n", ""),
    )
    .unwrap();
    let caches = SourceCaches::default();
    let keys = |ns: &str| -> Vec<String> {
        let (_, compact) = source::open_compact(
            &spec(dir.path(), FilesKind::Manifests),
            &ctx("desired", ns, &caches),
        )
        .unwrap();
        compact.keys().map(ToString::to_string).collect()
    };
    assert_eq!(keys("one"), ["ConfigMap one/a"]);
    assert_eq!(keys("one"), ["ConfigMap one/a"]);
    assert_eq!(caches.files_reused("desired"), Some(1));
    // Another default namespace is another parse, never the cached one.
    assert_eq!(keys("two"), ["ConfigMap two/a"]);
    assert_eq!(caches.files_reused("desired"), Some(0));
    // Same size, same mtime, one byte: the new name is read.
    change_one_byte_keep_mtime(&dir.path().join("a.yaml"), "name: a", "name: b");
    assert_eq!(keys("two"), ["ConfigMap two/b"]);
    assert_eq!(caches.files_reused("desired"), Some(0));
}
