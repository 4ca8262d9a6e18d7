//! Comparison results reused between the daemon's rescans (issue 14, `run::reuse`): a live
//! file whose bytes are unchanged, compared with unchanged desired objects under the same
//! config and schemas, is neither parsed nor compared again — and whatever changed (one
//! byte of a live file, one desired object, the config, a CRD), the outcome is exactly
//! that of a run without any cache.

use std::path::Path;
use std::sync::Arc;

use envdrift::config::{Compiled, Config};
use envdrift::report::Mode;
use envdrift::run::{Input, Job, Outcome, run};
use envdrift::source::{FilesKind, SourceCaches, SourceSpec, dump::FileLimits};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/crds");

fn spec(dir: &Path, kind: FilesKind) -> SourceSpec {
    SourceSpec::Files {
        paths: vec![dir.to_path_buf()],
        kind,
        limits: FileLimits::default(),
    }
}

fn scan(dir: &Path, compiled: &Arc<Compiled>, caches: Option<&SourceCaches>) -> Outcome {
    let mut job = Job::new(
        Mode::DesiredVsLive,
        Input::spec("desired", spec(&dir.join("desired"), FilesKind::Manifests)),
        Input::spec("live", spec(&dir.join("live"), FilesKind::Dump)),
        Arc::clone(compiled),
    );
    job.caches = caches;
    job.hash_to = true;
    run(&job)
}

/// Everything an outcome says that the daemon uses: drifts (with fixes, origins,
/// attribution), suppressed counts, notes, unknown kinds, trust, the live side's hash.
fn said(out: &Outcome) -> String {
    format!(
        "{:#?}\n{:?}\n{:?}\n{:?}",
        out.result, out.trust, out.to_hash, out.to.meta.errors
    )
}

fn deployment(name: &str, image: &str, live: bool) -> String {
    let extra = if live {
        "  resourceVersion: \"41\"\n  uid: 6f1c2d2e-0000-4000-8000-000000000001\n  managedFields:\n  - manager: kubectl-edit\n    operation: Update\n    apiVersion: apps/v1\n    time: \"2026-12-01T02:00:00Z\"\n    fieldsType: FieldsV1\n    fieldsV1:\n      f:spec:\n        f:template:\n          f:spec:\n            f:containers:\n              k:{\"name\":\"app\"}:\n                f:image: {}\n"
    } else {
        ""
    };
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  namespace: shop\n{extra}spec:\n  replicas: 2\n  selector:\n    matchLabels: {{app: {name}}}\n  template:\n    metadata:\n      labels: {{app: {name}}}\n    spec:\n      containers:\n      - name: app\n        image: {image}\n"
    )
}

fn config_map(name: &str, value: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: shop\ndata:\n  level: \"{value}\"\n"
    )
}

/// A `kind: List` of these documents, as `kubectl get -o yaml` writes one.
fn list(docs: &[String]) -> String {
    let mut out = String::from("apiVersion: v1\nitems:\n");
    for d in docs {
        for (i, line) in d.lines().enumerate() {
            out.push_str(if i == 0 { "- " } else { "  " });
            out.push_str(line);
            out.push('\n');
        }
    }
    out.push_str("kind: List\nmetadata:\n  resourceVersion: \"\"\n");
    out
}

/// Desired: the Gateway API HTTPRoute CRD and route (real fixtures), three Deployments and
/// two ConfigMaps. Live: the route as the API server returns it (defaults, reordered map
/// lists: no drift with its schema), the workloads in two List files, one image edited,
/// one ConfigMap changed, one ConfigMap only live (unmanaged), one Deployment missing.
fn write_env(dir: &Path) {
    let desired = dir.join("desired");
    let live = dir.join("live");
    std::fs::create_dir_all(&desired).unwrap();
    std::fs::create_dir_all(&live).unwrap();
    for (from, to) in [
        ("gateway-api-httproute.crd.yaml", desired.join("crd.yaml")),
        ("gateway-api-httproute.git.yaml", desired.join("route.yaml")),
        ("gateway-api-httproute.live.yaml", live.join("route.yaml")),
    ] {
        std::fs::copy(Path::new(FIXTURES).join(from), to).unwrap();
    }
    let apps = [
        deployment("cart", "shop/cart:1.4.0", false),
        deployment("pay", "shop/pay:2.0.0", false),
        deployment("search", "shop/search:0.9.1", false),
        config_map("cart-config", "info"),
        config_map("pay-config", "info"),
    ]
    .join("---\n");
    std::fs::write(desired.join("apps.yaml"), apps).unwrap();
    std::fs::write(
        live.join("deployments.yaml"),
        list(&[
            deployment("cart", "shop/cart:1.4.0", true),
            deployment("pay", "shop/pay:2.0.1-hotfix", true),
        ]),
    )
    .unwrap();
    std::fs::write(
        live.join("configmaps.yaml"),
        list(&[
            config_map("cart-config", "info"),
            config_map("pay-config", "debug"),
            config_map("scratch", "x"),
        ]),
    )
    .unwrap();
}

fn replace_in(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{from:?} not in {}", path.display());
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
}

/// Runs with the caches and without, checks both say the same, and returns how many live
/// files the cached run reused and what it said.
fn rescan(dir: &Path, compiled: &Arc<Compiled>, caches: &SourceCaches) -> (usize, String) {
    let cached = scan(dir, compiled, Some(caches));
    let fresh = scan(dir, compiled, None);
    assert!(cached.failure().is_none(), "{:?}", cached.failure());
    let text = said(&cached);
    assert_eq!(
        text,
        said(&fresh),
        "a cached rescan must say what a fresh run says"
    );
    (caches.results.last_reused("live").unwrap(), text)
}

#[test]
fn unchanged_files_are_not_compared_again_and_any_change_is_seen() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_env(dir);
    let compiled = Arc::new(Config::default().compile().unwrap());
    let caches = SourceCaches::default();

    let (reused, first) = rescan(dir, &compiled, &caches);
    assert_eq!(reused, 0, "nothing is kept before the first scan");
    assert!(first.contains("2.0.1-hotfix"), "{first}");
    assert!(
        first.contains("scratch") && first.contains("search"),
        "{first}"
    );
    assert!(
        !first.contains("kind: \"HTTPRoute\""),
        "no drift on the route with its CRD: {first}"
    );

    // Nothing changed: all three live files come from the kept results.
    let (reused, again) = rescan(dir, &compiled, &caches);
    assert_eq!(reused, 3);
    assert_eq!(again, first);

    // One byte of one live file (same size): that file is compared again.
    replace_in(&dir.join("live/configmaps.yaml"), "debug", "trace");
    let (reused, text) = rescan(dir, &compiled, &caches);
    assert_eq!(reused, 2);
    assert!(text.contains("trace") && !text.contains("debug"), "{text}");

    // One desired object: the live file holding its counterpart is compared again.
    replace_in(
        &dir.join("desired/apps.yaml"),
        "shop/cart:1.4.0",
        "shop/cart:1.5.0",
    );
    let (reused, text) = rescan(dir, &compiled, &caches);
    assert_eq!(reused, 2, "the route and the ConfigMaps are unchanged");
    assert!(text.contains("shop/cart:1.5.0"), "{text}");

    // A desired object only moved down a line: its drifts' origins change, so the file
    // of its counterpart is compared again.
    let apps = std::fs::read_to_string(dir.join("desired/apps.yaml")).unwrap();
    std::fs::write(dir.join("desired/apps.yaml"), format!("# moved\n{apps}")).unwrap();
    let (reused, _) = rescan(dir, &compiled, &caches);
    assert_eq!(reused, 1, "only the route's file is unaffected");

    // The config compiled anew (the same rules): nothing is reused.
    let recompiled = Arc::new(Config::default().compile().unwrap());
    let (reused, _) = rescan(dir, &recompiled, &caches);
    assert_eq!(reused, 0);
    let (reused, _) = rescan(dir, &recompiled, &caches);
    assert_eq!(reused, 3);

    // One config rule more (Argo CD's vocabulary: ignore the ConfigMaps' data): nothing
    // kept is reused, and the changed ConfigMap is no longer reported.
    let cfg = Config::parse(
        "ignoreDifferences:\n- kind: ConfigMap\n  jsonPointers: [/data]\n",
        Path::new("envdrift.yaml"),
    )
    .unwrap();
    let ruled = Arc::new(cfg.compile().unwrap());
    let (reused, text) = rescan(dir, &ruled, &caches);
    assert_eq!(reused, 0);
    assert!(!text.contains("trace"), "{text}");
    let (reused, _) = rescan(dir, &recompiled, &caches);
    assert_eq!(
        reused, 0,
        "back to the earlier config: compiled anew, not reused"
    );
    let (reused, _) = rescan(dir, &recompiled, &caches);
    assert_eq!(reused, 3);

    // The CRD goes away: the route's file bytes and its desired counterpart are unchanged,
    // but its schema is not: the run notices and compares everything again.
    std::fs::remove_file(dir.join("desired/crd.yaml")).unwrap();
    let (reused, text) = rescan(dir, &recompiled, &caches);
    assert_eq!(reused, 0, "schemas changed: nothing reused");
    assert!(
        text.contains("kind: \"HTTPRoute\""),
        "without its schema the route compares differently: {text}"
    );
}

#[test]
fn a_removed_live_file_is_forgotten_and_a_new_one_compared() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_env(dir);
    let compiled = Arc::new(Compiled::default());
    let caches = SourceCaches::default();
    rescan(dir, &compiled, &caches);
    std::fs::remove_file(dir.join("live/configmaps.yaml")).unwrap();
    let (reused, text) = rescan(dir, &compiled, &caches);
    assert_eq!(reused, 2);
    assert!(!text.contains("scratch"), "{text}");
    std::fs::write(
        dir.join("live/more.yaml"),
        list(&[
            config_map("cart-config", "info"),
            config_map("scratch", "y"),
        ]),
    )
    .unwrap();
    let (reused, text) = rescan(dir, &compiled, &caches);
    assert_eq!(reused, 2);
    assert!(text.contains("scratch"), "{text}");
    let (jobs, files) = caches.results.size();
    assert_eq!((jobs, files), (1, 3), "one job, its three current files");
}
