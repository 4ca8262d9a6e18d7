//! Git desired sources end to end: real repositories made with the `git` command in temp
//! dirs (branches, tags, a changed manifest, a force-push, a deleted file and branch),
//! fetched by `file://` URL and by local path into a cache; a bad ref; an unreachable
//! remote with and without an earlier fetch (stale); malformed YAML; credentials that must
//! never be printed; adopt-into-Git patches applied with `git apply`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use envdrift::source::dump::LoadOptions;
use envdrift::source::git::{GitAuth, GitError, GitSpec, SyncOptions};
use envdrift::source::render::{GitLoad, RenderError, RenderOptions, Renderer, load_git};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[path = "common/git.rs"]
mod git_cmd;
use git_cmd::git;

fn write(dir: &Path, rel: &str, text: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

fn commit_all(dir: &Path, msg: &str) -> String {
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", msg]);
    git(dir, &["rev-parse", "HEAD"])
}

fn new_repo(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    git(dir, &["init", "-q", "-b", "main"]);
}

fn cm(name: &str, value: &str) -> String {
    format!(
        "# a comment that must survive\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: app\ndata:\n  LEVEL: {value} # inline comment\n  OTHER: keep\n"
    )
}

fn load(spec: &str, cache: &Path, renderer: Option<Renderer>) -> Result<GitLoad, RenderError> {
    let spec = GitSpec::parse(spec).expect("spec");
    let sync = SyncOptions {
        cache_dir: cache.to_path_buf(),
        ..SyncOptions::default()
    };
    let render = RenderOptions {
        renderer,
        extra_path: tool_dirs(),
        ..RenderOptions::default()
    };
    load_git(
        &spec,
        &GitAuth::default(),
        &sync,
        &render,
        &LoadOptions::default(),
    )
}

fn level(g: &GitLoad, name: &str) -> Option<String> {
    g.snapshot
        .objects
        .iter()
        .find(|(k, _)| k.name == name)
        .and_then(|(_, o)| o.value.pointer("/data/LEVEL"))
        .and_then(|v| v.as_str())
        .map(str::to_string)
}

#[test]
fn branches_tags_commits_changes_force_push_and_deletions() {
    let tmp = tempfile::tempdir().unwrap();
    let origin = tmp.path().join("origin");
    let cache = tmp.path().join("cache");
    new_repo(&origin);
    write(&origin, "deploy/app.yaml", &cm("app", "info"));
    write(&origin, "deploy/extra.yaml", &cm("extra", "x"));
    write(&origin, "README.md", "not a manifest\n");
    let c1 = commit_all(&origin, "first");
    git(&origin, &["tag", "v1"]);
    git(&origin, &["tag", "-a", "v1-annotated", "-m", "annotated"]);
    git(&origin, &["checkout", "-q", "-b", "feature"]);
    write(&origin, "deploy/app.yaml", &cm("app", "feature"));
    commit_all(&origin, "feature");
    git(&origin, &["checkout", "-q", "main"]);

    let url = format!("file://{}", origin.display());
    // first fetch: a clone
    let g = load(&format!("git:{url}@main:deploy"), &cache, None).unwrap();
    assert!(g.cloned);
    assert_eq!(g.commit, c1);
    assert_eq!(g.renderer, Renderer::Plain);
    assert_eq!(g.snapshot.objects.len(), 2);
    assert_eq!(level(&g, "app").as_deref(), Some("info"));
    let (_, app) = g
        .snapshot
        .objects
        .iter()
        .find(|(k, _)| k.name == "app")
        .unwrap();
    assert_eq!(
        app.origin.to_string(),
        format!("deploy/app.yaml:1 @ {}", &c1[..12])
    );
    let source = g.snapshot.source.as_ref().unwrap();
    assert_eq!(source.commit.as_deref(), Some(c1.as_str()));
    assert!(source.stale.is_none());
    eprintln!("clone of a 2-commit repo: {} ms", g.fetch_time.as_millis());

    // a tag, an annotated tag, a branch, a full and an abbreviated commit
    for (r, want) in [
        ("v1", "info"),
        ("v1-annotated", "info"),
        ("feature", "feature"),
        (&c1[..], "info"),
        (&c1[..8], "info"),
    ] {
        let g = load(&format!("git:{url}@{r}:deploy"), &cache, None).unwrap();
        assert!(!g.cloned, "{r}: later fetches are incremental");
        assert_eq!(level(&g, "app").as_deref(), Some(want), "{r}");
    }

    // a commit that changes a manifest and deletes another
    write(&origin, "deploy/app.yaml", &cm("app", "debug"));
    std::fs::remove_file(origin.join("deploy/extra.yaml")).unwrap();
    let c2 = commit_all(&origin, "change");
    let g = load(&format!("git:{url}@main:deploy"), &cache, None).unwrap();
    assert_eq!(g.commit, c2);
    assert_eq!(level(&g, "app").as_deref(), Some("debug"));
    assert_eq!(g.snapshot.objects.len(), 1, "the deleted file is gone");
    eprintln!("incremental fetch: {} ms", g.fetch_time.as_millis());

    // a force-push: main rewritten to a different history
    git(&origin, &["reset", "-q", "--hard", &c1]);
    write(&origin, "deploy/app.yaml", &cm("app", "rewritten"));
    let c3 = commit_all(&origin, "rewritten");
    let g = load(&format!("git:{url}@main:deploy"), &cache, None).unwrap();
    assert_eq!(g.commit, c3);
    assert_eq!(level(&g, "app").as_deref(), Some("rewritten"));
    // the old commit is still addressable by SHA (it was fetched before)
    let g = load(&format!("git:{url}@{c2}:deploy"), &cache, None).unwrap();
    assert_eq!(level(&g, "app").as_deref(), Some("debug"));

    // a deleted branch no longer resolves
    git(&origin, &["branch", "-q", "-D", "feature"]);
    let e = load(&format!("git:{url}@feature:deploy"), &cache, None)
        .err()
        .expect("deleted branch");
    assert!(
        matches!(e, RenderError::Git(GitError::RefNotFound { .. })),
        "{e}"
    );

    // the whole repository (no path): README.md is not a manifest
    let g = load(&format!("git:{url}@main"), &cache, None).unwrap();
    assert_eq!(g.snapshot.objects.len(), 2);

    // a damaged cache is rebuilt by cloning again
    let cached: Vec<PathBuf> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(cached.len(), 1, "one bare clone per repository");
    std::fs::write(cached[0].join("config"), "[[[ not a config").unwrap();
    let g = load(&format!("git:{url}@main:deploy"), &cache, None).unwrap();
    assert!(g.cloned);
    assert_eq!(g.commit, c3);
}

#[test]
fn local_path_bad_ref_and_bad_path() {
    let tmp = tempfile::tempdir().unwrap();
    let origin = tmp.path().join("origin");
    let cache = tmp.path().join("cache");
    new_repo(&origin);
    write(&origin, "a.yaml", &cm("a", "info"));
    commit_all(&origin, "first");
    git(&origin, &["tag", "v1"]);
    let spec = format!("git:{}@main", origin.display());
    let g = load(&spec, &cache, None).unwrap();
    assert_eq!(g.snapshot.objects.len(), 1);

    let e = load(&format!("git:{}@nope", origin.display()), &cache, None)
        .err()
        .expect("bad ref");
    let msg = e.to_string();
    assert!(
        msg.contains("ref `nope` not found")
            && msg.contains(&origin.display().to_string())
            && msg.contains("branches: main")
            && msg.contains("tags: v1"),
        "{msg}"
    );
    let e = load(
        &format!("git:{}@main:missing/dir", origin.display()),
        &cache,
        None,
    )
    .err()
    .expect("bad path");
    assert!(
        e.to_string().contains("path `missing/dir` not found"),
        "{e}"
    );
}

#[test]
fn unreachable_remote_with_and_without_previous_fetch() {
    let tmp = tempfile::tempdir().unwrap();
    let origin = tmp.path().join("origin");
    let cache = tmp.path().join("cache");
    new_repo(&origin);
    write(&origin, "a.yaml", &cm("a", "info"));
    let c1 = commit_all(&origin, "first");
    let url = format!("file://{}", origin.display());

    // never fetched: a clear error naming the URL and the ref
    let gone = format!("file://{}", tmp.path().join("nowhere").display());
    let e = load(&format!("git:{gone}@main"), &cache, None)
        .err()
        .expect("unreachable");
    let msg = e.to_string();
    assert!(
        msg.contains("fetching") && msg.contains(&gone) && msg.contains("ref main"),
        "{msg}"
    );

    // fetched once, then the remote disappears: the last fetched commit, marked stale
    load(&format!("git:{url}@main"), &cache, None).unwrap();
    std::fs::rename(&origin, tmp.path().join("moved")).unwrap();
    let g = load(&format!("git:{url}@main"), &cache, None).unwrap();
    assert_eq!(g.commit, c1);
    let stale = g.stale.clone().expect("stale");
    assert!(stale.starts_with("fetch failed"), "{stale}");
    assert_eq!(g.snapshot.source.as_ref().unwrap().stale, g.stale);
    assert_eq!(level(&g, "a").as_deref(), Some("info"));
    // a ref the cache never saw: the fetch failure is the error
    let e = load(&format!("git:{url}@new-branch"), &cache, None)
        .err()
        .expect("unknown ref while offline");
    let msg = e.to_string();
    assert!(
        msg.starts_with("fetching") && msg.contains("the ref is not in the last fetched state"),
        "{msg}"
    );

    // the CLI says so in the table and in JSON
    let live = tmp.path().join("live.yaml");
    std::fs::write(&live, cm("a", "info")).unwrap();
    let out = envdrift(
        &[
            "diff",
            "--desired",
            &format!("git:{url}@main"),
            "--live",
            live.to_str().unwrap(),
            "--git-cache",
            cache.to_str().unwrap(),
            "--format",
            "table",
        ],
        None,
    );
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("STALE desired side is stale: fetch failed"),
        "{stdout}"
    );
    assert!(text(&out.stderr).contains("STALE"), "{}", text(&out.stderr));
    let out = envdrift(
        &[
            "diff",
            "--desired",
            &format!("git:{url}@main"),
            "--live",
            live.to_str().unwrap(),
            "--git-cache",
            cache.to_str().unwrap(),
            "--format",
            "json",
        ],
        None,
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        v["desired"]["stale"]
            .as_str()
            .unwrap()
            .starts_with("fetch failed")
    );
    assert_eq!(v["desired"]["commit"], c1.as_str());
}

#[test]
fn malformed_yaml_names_file_line_and_commit_and_the_rest_is_read() {
    let tmp = tempfile::tempdir().unwrap();
    let origin = tmp.path().join("origin");
    new_repo(&origin);
    write(&origin, "good.yaml", &cm("good", "info"));
    write(
        &origin,
        "sub/bad.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bad\ndata: [unclosed\n",
    );
    let c = commit_all(&origin, "first");
    let g = load(
        &format!("git:{}@main", origin.display()),
        &tmp.path().join("cache"),
        None,
    )
    .unwrap();
    assert_eq!(g.snapshot.objects.len(), 1);
    assert_eq!(g.snapshot.errors.len(), 1);
    let e = g.snapshot.errors[0].to_string();
    assert!(
        e.contains("sub/bad.yaml:") && e.contains(&format!("commit {}", &c[..12])),
        "{e}"
    );
    assert!(g.snapshot.errors[0].line.is_some_and(|l| l >= 5), "{e}");
}

#[test]
fn credentials_never_appear_in_errors_or_logs() {
    let tmp = tempfile::tempdir().unwrap();
    // Port 9 on loopback: nothing listens, the connection is refused at once.
    let out = envdrift(
        &[
            "--log-level",
            "trace",
            "diff",
            "--desired",
            "git:https://bot:s3cr3t-pw@127.0.0.1:9/acme/deploy.git@main",
            "--live",
            tmp.path().to_str().unwrap(),
            "--git-cache",
            tmp.path().join("cache").to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(!all.contains("s3cr3t"), "{all}");
    assert!(
        all.contains("https://127.0.0.1:9/acme/deploy.git") && all.contains("ref main"),
        "{all}"
    );

    let token_file = tmp.path().join("token");
    std::fs::write(&token_file, "tok-s3cr3t\n").unwrap();
    let out = envdrift(
        &[
            "--log-level",
            "trace",
            "render",
            "--desired",
            "git:https://127.0.0.1:9/acme/deploy.git@main",
            "--git-token-file",
            token_file.to_str().unwrap(),
            "--git-cache",
            tmp.path().join("cache").to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(!all.contains("s3cr3t"), "{all}");
    assert!(
        all.contains("fetching https://127.0.0.1:9/acme/deploy.git"),
        "{all}"
    );
}

// ---- the CLI and real renderers ----

/// `.tools/bin` and `.tools/venv/bin` (installed by .ci/run), first on PATH.
fn tool_dirs() -> Vec<PathBuf> {
    vec![root().join(".tools/bin"), root().join(".tools/venv/bin")]
}

fn tool_path() -> std::ffi::OsString {
    let mut dirs = tool_dirs();
    dirs.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    std::env::join_paths(dirs).unwrap()
}

fn envdrift(args: &[&str], path: Option<&str>) -> Output {
    Command::new(env!("CARGO_BIN_EXE_envdrift"))
        .args(args)
        .current_dir(root())
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1")
        .env("PATH", path.map_or_else(tool_path, Into::into))
        .output()
        .expect("run envdrift")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Replaces a temp dir and commit SHAs with stable placeholders.
fn stable(s: &str, tmp: &Path, commits: &[&str]) -> String {
    let mut s = s.replace(&tmp.display().to_string(), "[tmp]");
    for c in commits {
        s = s.replace(c, "[commit]").replace(&c[..12], "[commit]");
    }
    s
}

fn kustomize_repo(dir: &Path) -> String {
    new_repo(dir);
    write(
        dir,
        "base/kustomization.yaml",
        "resources:\n- deployment.yaml\n- config.yaml\n",
    );
    write(
        dir,
        "base/deployment.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n      - name: web\n        image: registry.example.com/web:1.0.0\n",
    );
    write(
        dir,
        "base/config.yaml",
        &cm("web-config", "info").replace("  namespace: app\n", ""),
    );
    write(
        dir,
        "overlays/prod/kustomization.yaml",
        "namespace: shop-prod\nnamePrefix: prod-\nresources:\n- ../../base\npatches:\n- path: replicas.yaml\nimages:\n- name: registry.example.com/web\n  newTag: 1.2.0\n",
    );
    write(
        dir,
        "overlays/prod/replicas.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 3\n",
    );
    write(dir, "unrelated/x.yaml", "not: [valid\n");
    commit_all(dir, "kustomize")
}

#[test]
fn kustomize_overlay_rendered_with_the_real_binary() {
    let tmp = tempfile::tempdir().unwrap();
    let origin = tmp.path().join("origin");
    let c = kustomize_repo(&origin);
    let spec = format!("git:{}@main:overlays/prod", origin.display());
    let cache = tmp.path().join("cache");
    let out = envdrift(
        &[
            "render",
            "--desired",
            &spec,
            "--git-cache",
            cache.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    insta::assert_snapshot!(
        "kustomize_render",
        stable(&text(&out.stdout), tmp.path(), &[&c])
    );

    // live differs in the image tag: the adopt entry points at the kustomization's newTag
    let live = tmp.path().join("live.yaml");
    std::fs::write(
        &live,
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: prod-web\n  namespace: shop-prod\nspec:\n  replicas: 3\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n      - name: web\n        image: registry.example.com/web:1.2.1\n",
    )
    .unwrap();
    let out = envdrift(
        &[
            "diff",
            "--desired",
            &spec,
            "--live",
            live.to_str().unwrap(),
            "--git-cache",
            cache.to_str().unwrap(),
            "--format",
            "json",
            "--no-unmanaged",
        ],
        None,
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let d = v["drifts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["type"] == "modified")
        .expect("modified");
    assert_eq!(d["origin"]["file"], "base/deployment.yaml");
    let adopt = &d["adopt"];
    assert_eq!(adopt["file"], "overlays/prod/kustomization.yaml", "{adopt}");
    let diff = adopt["diff"].as_str().unwrap();
    assert!(
        diff.contains("-  newTag: 1.2.0\n+  newTag: 1.2.1\n"),
        "{diff}"
    );
}

#[test]
fn helm_chart_rendered_with_the_real_binary() {
    let tmp = tempfile::tempdir().unwrap();
    let origin = tmp.path().join("origin");
    new_repo(&origin);
    write(
        &origin,
        "charts/web/Chart.yaml",
        "apiVersion: v2\nname: web\nversion: 0.1.0\n",
    );
    write(
        &origin,
        "charts/web/values.yaml",
        "# defaults\nreplicas: 1\nimage:\n  repository: registry.example.com/web\n  tag: \"1.0.0\"\nlogLevel: info\n",
    );
    write(
        &origin,
        "charts/web/values-prod.yaml",
        "replicas: 3\nimage:\n  tag: \"1.2.0\" # prod pin\n",
    );
    write(
        &origin,
        "charts/web/templates/deployment.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Release.Name }}\n  namespace: {{ .Release.Namespace }}\nspec:\n  replicas: {{ .Values.replicas }}\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n      - name: web\n        image: \"{{ .Values.image.repository }}:{{ .Values.image.tag }}\"\n",
    );
    write(
        &origin,
        "charts/web/templates/config.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-config # no namespace: the release's\ndata:\n  LEVEL: {{ .Values.logLevel | quote }}\n",
    );
    let c = commit_all(&origin, "chart");
    let spec = format!("git:{}@main:charts/web", origin.display());
    let cache = tmp.path().join("cache");
    let helm_args = [
        "--helm-release",
        "shop",
        "--helm-namespace",
        "shop-prod",
        "--helm-values",
        "values-prod.yaml",
        "--helm-set",
        "logLevel=warn",
    ];
    let mut args = vec!["render", "--desired", &spec, "--git-cache"];
    let cache_s = cache.to_str().unwrap();
    args.push(cache_s);
    args.extend(helm_args);
    let out = envdrift(&args, None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    insta::assert_snapshot!("helm_render", stable(&text(&out.stdout), tmp.path(), &[&c]));

    // the live image tag moved: traced to the prod values file
    let live = tmp.path().join("live.yaml");
    std::fs::write(
        &live,
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: shop\n  namespace: shop-prod\nspec:\n  replicas: 3\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n      - name: web\n        image: registry.example.com/web:1.2.1\n",
    )
    .unwrap();
    let live_s = live.to_str().unwrap();
    let mut args = vec![
        "diff",
        "--desired",
        &spec,
        "--live",
        live_s,
        "--format",
        "json",
    ];
    args.extend(["--no-unmanaged", "--git-cache", cache_s]);
    args.extend(helm_args);
    let out = envdrift(&args, None);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let d = v["drifts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["type"] == "modified")
        .expect("modified");
    assert_eq!(d["origin"]["file"], "charts/web/templates/deployment.yaml");
    assert_eq!(
        d["adopt"]["file"], "charts/web/values-prod.yaml",
        "{}",
        d["adopt"]
    );
    let diff = d["adopt"]["diff"].as_str().unwrap();
    assert!(
        diff.contains("-  tag: \"1.2.0\" # prod pin\n+  tag: \"1.2.1\" # prod pin\n"),
        "{diff}"
    );

    // a broken template: the renderer's stderr is shown
    write(
        &origin,
        "charts/web/templates/broken.yaml",
        "{{ .Values.nope.deeper }}\n",
    );
    commit_all(&origin, "broken");
    let mut args = vec!["render", "--desired", &spec, "--git-cache", cache_s];
    args.extend(helm_args);
    let out = envdrift(&args, None);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("helm template shop") && err.contains("broken.yaml"),
        "{err}"
    );
    assert!(!err.contains("envdrift-render-"), "temp dir leaked: {err}");

    // no helm on PATH: an error naming it and how to install it
    let out = envdrift(&args, Some("/usr/local/bin:/usr/bin:/bin"));
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("`helm` not found on PATH") && err.contains("install Helm"),
        "{err}"
    );
}

#[test]
fn adopt_patches_apply_with_git_and_clear_the_drift() {
    let tmp = tempfile::tempdir().unwrap();
    let origin = tmp.path().join("origin");
    new_repo(&origin);
    let demo = root().join("config/demo/git/production");
    for e in std::fs::read_dir(&demo).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_str().unwrap().to_string();
        std::fs::copy(&p, origin.join("prod").join(&name)).unwrap_or_else(|_| {
            std::fs::create_dir_all(origin.join("prod")).unwrap();
            std::fs::copy(&p, origin.join("prod").join(&name)).unwrap()
        });
    }
    commit_all(&origin, "demo");
    let before: std::collections::BTreeMap<String, String> = std::fs::read_dir(origin.join("prod"))
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            (
                p.file_name().unwrap().to_str().unwrap().to_string(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    let spec = format!("git:{}@main:prod", origin.display());
    let cache = tmp.path().join("cache");
    // relative to the repository root (the tests' working directory): stable snapshots
    let live = "config/demo/live/production";
    let run = |format: &str| {
        envdrift(
            &[
                "diff",
                "--desired",
                &spec,
                "--live",
                live,
                "--renderer",
                "plain",
                "--git-cache",
                cache.to_str().unwrap(),
                "--format",
                format,
            ],
            None,
        )
    };
    let out = run("table");
    let commit = git(&origin, &["rev-parse", "HEAD"]);
    insta::assert_snapshot!(
        "adopt_demo_production_table",
        stable(&text(&out.stdout), tmp.path(), &[&commit])
    );
    let out = run("json");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let modified: Vec<&serde_json::Value> = v["drifts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["type"] == "modified")
        .collect();
    assert!(modified.len() >= 3, "{v}");
    let mut patched_files = Vec::new();
    for d in &modified {
        let adopt = &d["adopt"];
        if d["resource"]["kind"] == "Secret" {
            assert!(adopt["diff"].is_null());
            assert!(adopt["notes"][0].as_str().unwrap().contains("hash"));
            continue;
        }
        let diff = adopt["diff"]
            .as_str()
            .unwrap_or_else(|| panic!("no diff: {d}"));
        let patch = tmp.path().join("adopt.patch");
        std::fs::write(&patch, diff).unwrap();
        git(&origin, &["apply", "--check", patch.to_str().unwrap()]);
        git(&origin, &["apply", patch.to_str().unwrap()]);
        patched_files.push(adopt["file"].as_str().unwrap().to_string());
    }
    // the table and markdown show the adopt diff
    let table = text(&run("table").stdout);
    assert!(
        table.contains("adopt into Git (prod/api-deployment.yaml):"),
        "{table}"
    );
    let md = text(&run("markdown").stdout);
    assert!(
        md.contains("```diff\n--- a/prod/api-deployment.yaml"),
        "{md}"
    );

    commit_all(&origin, "adopt live");
    let out = run("json");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let left: Vec<String> = v["drifts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["type"] == "modified" && d["resource"]["kind"] != "Secret")
        .map(std::string::ToString::to_string)
        .collect();
    assert!(left.is_empty(), "drift left after adopting: {left:?}");

    // only the changed lines differ; comments and everything else are byte-identical
    for (name, old) in &before {
        let new = std::fs::read_to_string(origin.join("prod").join(name)).unwrap();
        if !patched_files.contains(&format!("prod/{name}")) {
            assert_eq!(&new, old, "{name} untouched");
            continue;
        }
        for l in old.lines().filter(|l| l.contains('#')) {
            if !l.contains("image:") {
                assert!(new.contains(l), "{name}: comment line lost: {l}");
            }
        }
        let changed = similar::TextDiff::from_lines(old.as_str(), new.as_str())
            .iter_all_changes()
            .filter(|c| c.tag() != similar::ChangeTag::Equal)
            .count();
        assert!(changed <= 12, "{name}: {changed} changed lines");
    }
    let api = std::fs::read_to_string(origin.join("prod/api-deployment.yaml")).unwrap();
    assert!(
        api.contains("image: registry.example.com/shop/api:1.4.3-hotfix\n"),
        "{api}"
    );
    assert!(
        api.contains("cpu: 0.5 # the API server prints 500m"),
        "{api}"
    );
}

// ---- https token auth against a local smart-HTTP server (TLS + git http-backend) ----

#[path = "common/git_https.rs"]
mod git_https;
use git_https::https_git_server;

#[test]
fn token_auth_over_https_and_the_token_is_never_shown() {
    let tmp = tempfile::tempdir().unwrap();
    let served = tmp.path().join("served");
    let work = tmp.path().join("work");
    new_repo(&work);
    write(&work, "app/a.yaml", &cm("a", "info"));
    let c = commit_all(&work, "first");
    std::fs::create_dir_all(&served).unwrap();
    git(
        tmp.path(),
        &[
            "clone",
            "-q",
            "--bare",
            work.to_str().unwrap(),
            served.join("deploy.git").to_str().unwrap(),
        ],
    );
    let token = "tok-9f8e7d-s3cr3t";
    let (port, ca) = https_git_server(served, "bot", token, 60, tmp.path());
    let spec = format!("git:https://127.0.0.1:{port}/deploy.git@main:app");
    let cache = tmp.path().join("cache");
    let run = |spec: &str, extra: &[&str], env: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_envdrift"));
        cmd.args([
            "--log-level",
            "trace",
            "render",
            "--desired",
            spec,
            "--git-cache",
        ])
        .arg(&cache)
        .args(extra)
        .env_remove("RUST_LOG")
        .env("SSL_CERT_FILE", &ca)
        .env("GIT_SSL_CAINFO", &ca);
        if let Some(t) = env {
            cmd.env("DEPLOY_TOKEN", t);
        }
        let out = cmd.output().unwrap();
        let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
        (out.status.code(), all)
    };
    // no token: a clear authentication error
    let (code, all) = run(&spec, &[], None);
    assert_eq!(code, Some(2));
    assert!(all.contains("authentication required"), "{all}");
    // a wrong token: refused, and not printed
    let (code, all) = run(
        &spec,
        &["--git-token-env", "DEPLOY_TOKEN", "--git-username", "bot"],
        Some("wrong-s3cr3t"),
    );
    assert_eq!(code, Some(2));
    assert!(all.contains("refused") || all.contains("401"), "{all}");
    assert!(!all.contains("wrong-s3cr3t"), "{all}");
    // the right token from an environment variable, then from a file
    let (code, all) = run(
        &spec,
        &["--git-token-env", "DEPLOY_TOKEN", "--git-username", "bot"],
        Some(token),
    );
    assert_eq!(code, Some(0), "{all}");
    assert!(
        all.contains(&format!("app/a.yaml:1 @ {}", &c[..12])),
        "{all}"
    );
    assert!(!all.contains(token), "{all}");
    let file = tmp.path().join("token");
    std::fs::write(&file, format!("{token}\n")).unwrap();
    let (code, all) = run(
        &spec,
        &[
            "--git-token-file",
            file.to_str().unwrap(),
            "--git-username",
            "bot",
        ],
        None,
    );
    assert_eq!(code, Some(0), "{all}");
    assert!(!all.contains(token), "{all}");
    // credentials in the URL work and are never shown either
    let spec_url = format!("git:https://bot:{token}@127.0.0.1:{port}/deploy.git@nope");
    let (code, all) = run(&spec_url, &[], None);
    assert_eq!(code, Some(2));
    assert!(all.contains("ref `nope` not found"), "{all}");
    assert!(
        all.contains(&format!("https://bot:***@127.0.0.1:{port}/deploy.git"))
            || all.contains(&format!("https://127.0.0.1:{port}/deploy.git")),
        "{all}"
    );
    assert!(!all.contains(token), "{all}");
}

#[test]
fn ssh_remotes_use_the_ssh_program_with_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    let origin = tmp.path().join("origin");
    new_repo(&origin);
    write(&origin, "a.yaml", &cm("a", "info"));
    commit_all(&origin, "first");
    // A stand-in for `ssh` (no ssh server can run here): it logs its arguments and runs
    // the remote command locally, the way sshd would.
    let bin = tmp.path().join("bin");
    let log = tmp.path().join("ssh.log");
    std::fs::create_dir_all(&bin).unwrap();
    let script = format!(
        "#!/bin/sh\necho \"$@\" >> '{}'\nwhile [ $# -gt 0 ]; do\n  case \"$1\" in\n    -G) exit 0 ;;\n    -o|-i|-p|-l) shift 2 ;;\n    -*) shift ;;\n    *) shift; break ;;\n  esac\ndone\nexec sh -c \"$*\"\n",
        log.display()
    );
    std::fs::write(bin.join("ssh"), script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(bin.join("ssh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let key = tmp.path().join("deploy key");
    std::fs::write(&key, "not really a key").unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let spec = format!("git:git@git.example.invalid:{}@main", origin.display());
    let out = envdrift(
        &[
            "render",
            "--desired",
            &spec,
            "--git-ssh-key",
            key.to_str().unwrap(),
            "--git-cache",
            tmp.path().join("cache").to_str().unwrap(),
        ],
        Some(&path),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("name: a"));
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains(&format!("-i {} -o IdentitiesOnly=yes", key.display()))
            && logged.contains("git@git.example.invalid git-upload-pack"),
        "{logged}"
    );

    // the server refuses the key: a clear error
    std::fs::write(
        bin.join("ssh"),
        "#!/bin/sh\necho 'git@git.example.invalid: Permission denied (publickey).' >&2\nexit 255\n",
    )
    .unwrap();
    let out = envdrift(
        &[
            "render",
            "--desired",
            &spec,
            "--git-ssh-key",
            key.to_str().unwrap(),
            "--git-cache",
            tmp.path().join("cache2").to_str().unwrap(),
        ],
        Some(&path),
    );
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("permission denied by the server: check the ssh key"),
        "{err}"
    );
}

#[test]
fn renderers_run_without_a_shell_in_a_clean_environment_with_a_timeout() {
    let tmp = tempfile::tempdir().unwrap();
    let origin = tmp.path().join("origin");
    new_repo(&origin);
    write(
        &origin,
        "chart/Chart.yaml",
        "apiVersion: v2\nname: c\nversion: 0.1.0\n",
    );
    write(&origin, "chart/values.yaml", "a: 1\n");
    write(&origin, "elsewhere/big.yaml", &cm("not-needed", "x"));
    write(&origin, "env/prod.yaml", "a: 2\n");
    write(&origin, "env/staging.yaml", "a: 3\n");
    commit_all(&origin, "chart");
    // A stand-in `helm` that prints what it sees: its arguments, environment and files.
    let bin = tmp.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let helm = bin.join("helm");
    std::fs::write(
        &helm,
        "#!/bin/sh\nif [ \"$SLEEP\" ]; then sleep \"$SLEEP\"; fi\nprintf 'apiVersion: v1\\nkind: ConfigMap\\nmetadata:\\n  name: seen\\ndata:\\n'\nprintf '  args: \"%s\"\\n' \"$*\"\nprintf '  env: \"%s\"\\n' \"$(env | cut -d= -f1 | sort | tr '\\n' ' ')\"\nprintf '  files: \"%s\"\\n' \"$(cd .. && find . -type f | sort | tr '\\n' ' ')\"\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&helm, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let spec = format!("git:{}@main:chart", origin.display());
    let cache = tmp.path().join("cache");
    let out = Command::new(env!("CARGO_BIN_EXE_envdrift"))
        .args(["render", "--desired", &spec, "--git-cache"])
        .arg(&cache)
        .args([
            "--helm-set",
            "x=$(touch /tmp/pwned)",
            "--helm-values",
            "values.yaml",
        ])
        .env("PATH", &path)
        .env("SECRET_TOKEN", "must-not-leak")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    // no shell: the argument arrives verbatim
    assert!(
        stdout.contains("args: template chart . --values values.yaml --set x=$(touch /tmp/pwned)"),
        "{stdout}"
    );
    // a clean environment
    assert!(stdout.contains("env: \"HOME LANG PATH PWD \""), "{stdout}");
    // only the chart's tree, not the rest of the repository
    assert!(
        stdout.contains("files: \"./chart/Chart.yaml ./chart/values.yaml \""),
        "{stdout}"
    );

    // a timeout
    let out = Command::new(env!("CARGO_BIN_EXE_envdrift"))
        .args([
            "render",
            "--desired",
            &spec,
            "--render-timeout",
            "1",
            "--git-cache",
        ])
        .arg(&cache)
        .env("PATH", &path)
        .env("SLEEP", "5")
        .output()
        .unwrap();
    // SLEEP is not passed through (clean environment), so the stand-in does not sleep.
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    std::fs::write(&helm, "#!/bin/sh\nsleep 5\n").unwrap();
    let started = std::time::Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_envdrift"))
        .args([
            "render",
            "--desired",
            &spec,
            "--render-timeout",
            "1",
            "--git-cache",
        ])
        .arg(&cache)
        .env("PATH", &path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("was killed after 1 s (timeout)"), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(4));

    // the kustomize program is configurable; a missing one is named
    write(&origin, "k/kustomization.yaml", "resources: []\n");
    commit_all(&origin, "k");
    let out = Command::new(env!("CARGO_BIN_EXE_envdrift"))
        .args([
            "render",
            "--desired",
            &format!("git:{}@main:k", origin.display()),
        ])
        .args(["--kustomize-command", "kustomize", "--git-cache"])
        .arg(&cache)
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert!(
        err.contains("`kustomize` not found on PATH") && err.contains("kubectl kustomize"),
        "{err}"
    );
}

#[test]
fn a_real_force_push_to_a_bare_remote_is_followed() {
    let tmp = tempfile::tempdir().unwrap();
    let bare = tmp.path().join("remote.git");
    let work = tmp.path().join("work");
    let cache = tmp.path().join("cache");
    git(
        tmp.path(),
        &["init", "-q", "--bare", "-b", "main", bare.to_str().unwrap()],
    );
    new_repo(&work);
    git(&work, &["remote", "add", "origin", bare.to_str().unwrap()]);
    write(&work, "a.yaml", &cm("a", "one"));
    commit_all(&work, "one");
    write(&work, "a.yaml", &cm("a", "two"));
    let pushed = commit_all(&work, "two");
    git(&work, &["push", "-q", "origin", "main"]);
    let url = format!("file://{}", bare.display());
    let g = load(&format!("git:{url}@main"), &cache, None).unwrap();
    assert_eq!(
        (g.commit.as_str(), level(&g, "a").as_deref()),
        (pushed.as_str(), Some("two"))
    );

    // rewrite the last commit and force-push it
    write(&work, "a.yaml", &cm("a", "amended"));
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-q", "--amend", "-m", "amended"]);
    let amended = git(&work, &["rev-parse", "HEAD"]);
    git(&work, &["push", "-q", "--force", "origin", "main"]);
    let g = load(&format!("git:{url}@main"), &cache, None).unwrap();
    assert_eq!(g.commit, amended);
    assert_eq!(level(&g, "a").as_deref(), Some("amended"));
    assert!(!g.cloned);
}

/// The rendered objects without the origin comment lines (which name commits or not).
fn objects_only(s: &str) -> String {
    s.lines()
        .filter(|l| !l.starts_with("# "))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn renderer_works_for_local_directories_as_for_git_sources() {
    let tmp = tempfile::tempdir().unwrap();
    let origin = tmp.path().join("origin");
    kustomize_repo(&origin);
    let cache = tmp.path().join("cache");
    let cache_s = cache.to_str().unwrap();
    // Kustomize: an overlay naming ../../base, rendered in place.
    let spec = format!("git:{}@main:overlays/prod", origin.display());
    let from_git = envdrift(
        &["render", "--desired", &spec, "--git-cache", cache_s],
        None,
    );
    assert_eq!(
        from_git.status.code(),
        Some(0),
        "{}",
        text(&from_git.stderr)
    );
    let overlay = origin.join("overlays/prod");
    let local = envdrift(
        &[
            "render",
            "--desired",
            overlay.to_str().unwrap(),
            "--renderer",
            "kustomize",
        ],
        None,
    );
    assert_eq!(local.status.code(), Some(0), "{}", text(&local.stderr));
    assert_eq!(
        objects_only(&text(&local.stdout)),
        objects_only(&text(&from_git.stdout))
    );
    assert!(
        text(&local.stdout).contains("# base/deployment.yaml:1"),
        "origins are relative to the work tree: {}",
        text(&local.stdout)
    );
    // Without --renderer the directory is read as plain manifests (kustomization skipped).
    let plain = envdrift(&["render", "--desired", overlay.to_str().unwrap()], None);
    assert!(
        !text(&plain.stdout).contains("prod-web"),
        "{}",
        text(&plain.stdout)
    );

    // Helm: a chart directory with a values file and --set, then a diff with adopt tracing.
    let chart = tmp.path().join("chart");
    write(
        &chart,
        "Chart.yaml",
        "apiVersion: v2\nname: web\nversion: 0.1.0\n",
    );
    write(
        &chart,
        "values.yaml",
        "image:\n  tag: \"1.0.0\"\nlevel: info\n",
    );
    write(&chart, "values-prod.yaml", "image:\n  tag: \"1.2.0\"\n");
    write(
        &chart,
        "templates/config.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-config\ndata:\n  TAG: {{ .Values.image.tag | quote }}\n  LEVEL: {{ .Values.level | quote }}\n",
    );
    let chart_s = chart.to_str().unwrap();
    let helm = [
        "--renderer",
        "helm",
        "--helm-release",
        "shop",
        "--helm-namespace",
        "shop-prod",
        "--helm-values",
        "values-prod.yaml",
        "--helm-set",
        "level=warn",
    ];
    let mut args = vec!["render", "--desired", chart_s];
    args.extend(helm);
    let out = envdrift(&args, None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let rendered = text(&out.stdout);
    assert!(rendered.contains("name: shop-config"), "{rendered}");
    assert!(rendered.contains("namespace: shop-prod"), "{rendered}");
    assert!(rendered.contains("TAG: \"1.2.0\""), "{rendered}");
    assert!(rendered.contains("LEVEL: warn"), "{rendered}");
    assert!(rendered.contains("# templates/config.yaml:1"), "{rendered}");

    let live = tmp.path().join("live.yaml");
    std::fs::write(
        &live,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: shop-config\n  namespace: shop-prod\ndata:\n  TAG: \"1.2.1\"\n  LEVEL: warn\n",
    )
    .unwrap();
    let mut args = vec![
        "diff",
        "--desired",
        chart_s,
        "--live",
        live.to_str().unwrap(),
        "-f",
        "json",
        "--no-unmanaged",
    ];
    args.extend(helm);
    let out = envdrift(&args, None);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let d = &v["drifts"][0];
    assert_eq!(d["changes"][0]["path"], "/data/TAG", "{d}");
    let adopt = &d["adopt"];
    assert_eq!(adopt["file"], "values-prod.yaml", "{adopt}");

    // A missing binary names it, as for Git sources.
    let out = envdrift(&args, Some("/nonexistent"));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("`helm` not found on PATH"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn drifts_of_objects_in_one_file_get_one_diff_applied_once() {
    let tmp = tempfile::tempdir().unwrap();
    let origin = tmp.path().join("origin");
    new_repo(&origin);
    // one file with three ConfigMaps; live changed two of them
    let cm_doc = |name: &str, v: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: shop\ndata:\n  level: \"{v}\" # tuned by hand\n  mode: fast\n"
        )
    };
    let file = [cm_doc("a", "1"), cm_doc("b", "2"), cm_doc("c", "3")].join("---\n");
    write(&origin, "prod/config.yaml", &file);
    commit_all(&origin, "config");
    let live_cm = |name: &str, v: &str| {
        serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "shop", "uid": format!("u-{name}"),
                         "resourceVersion": "7", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "data": {"level": v, "mode": "fast"}
        })
    };
    let live = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": [
        live_cm("a", "10"), live_cm("b", "2"), live_cm("c", "30")
    ]});
    let live_path = tmp.path().join("live.json");
    std::fs::write(&live_path, live.to_string()).unwrap();
    let spec = format!("git:{}@main:prod", origin.display());
    let cache = tmp.path().join("cache");
    let run = |format: &str| {
        envdrift(
            &[
                "diff",
                "--desired",
                &spec,
                "--live",
                live_path.to_str().unwrap(),
                "--renderer",
                "plain",
                "--git-cache",
                cache.to_str().unwrap(),
                "--format",
                format,
            ],
            None,
        )
    };
    let v: serde_json::Value = serde_json::from_slice(&run("json").stdout).unwrap();
    let modified: Vec<&serde_json::Value> = v["drifts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["type"] == "modified")
        .collect();
    assert_eq!(modified.len(), 2, "{v}");
    let diffs: Vec<&str> = modified
        .iter()
        .map(|d| d["adopt"]["diff"].as_str().expect("a diff"))
        .collect();
    assert_eq!(diffs[0], diffs[1], "one diff for the file");
    for d in &modified {
        let notes = d["adopt"]["notes"].to_string();
        assert!(notes.contains("one diff for prod/config.yaml"), "{notes}");
        assert!(notes.contains("apply it once"), "{notes}");
    }
    let table = text(&run("table").stdout);
    assert_eq!(
        table.matches("--- a/prod/config.yaml").count(),
        1,
        "the combined diff is printed once: {table}"
    );
    assert!(
        table.contains("(the diff for this file is shown above)"),
        "{table}"
    );
    let patch = tmp.path().join("adopt.patch");
    std::fs::write(&patch, diffs[0]).unwrap();
    git(&origin, &["apply", patch.to_str().unwrap()]);
    let new = std::fs::read_to_string(origin.join("prod/config.yaml")).unwrap();
    assert!(new.contains("level: \"10\" # tuned by hand"), "{new}");
    assert!(new.contains("level: \"2\" # tuned by hand"), "{new}");
    assert!(new.contains("level: \"30\" # tuned by hand"), "{new}");
    commit_all(&origin, "adopt live");
    let v: serde_json::Value = serde_json::from_slice(&run("json").stdout).unwrap();
    assert_eq!(v["summary"]["drifts"], 0, "{v}");
}
