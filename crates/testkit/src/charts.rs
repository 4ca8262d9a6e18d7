//! Helm chart sources on loopback, for charts from Helm repositories and OCI registries:
//!
//! - [`HelmRepoServer`]: an HTTP chart repository (Helm's "chart repository guide": an
//!   `index.yaml` and the chart archives, as `helm package` and `helm repo index` write
//!   them, served as static files);
//! - [`OciRegistry`]: an OCI distribution registry (distribution-spec v1.1: `/v2/`,
//!   manifests by tag and digest, blobs, monolithic and chunked uploads, tags list) that
//!   stores what is pushed, enough for the real `helm push` and `helm pull oci://`;
//!   [`OciRegistry::put_chart`] stores a chart the way `helm push` does (Helm's media types).
//!
//! Both check HTTP Basic credentials when started with them (a missing or wrong credential
//! answers 401 with `WWW-Authenticate: Basic`), count refused requests, and stop when
//! dropped. They run on their own thread and runtime, so sync tests can use them.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// Helm's OCI media types (helm.sh/docs/topics/registries).
pub const HELM_CONFIG_MEDIA_TYPE: &str = "application/vnd.cncf.helm.config.v1+json";
pub const HELM_CHART_MEDIA_TYPE: &str = "application/vnd.cncf.helm.chart.content.v1.tar+gzip";
pub const OCI_MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";

/// `user:password` expected in `Authorization: Basic`.
#[derive(Clone, Debug)]
pub struct BasicAuth {
    pub username: String,
    pub password: String,
}

impl BasicAuth {
    pub fn new(username: &str, password: &str) -> BasicAuth {
        BasicAuth {
            username: username.into(),
            password: password.into(),
        }
    }

    fn accepts(&self, headers: &HeaderMap) -> bool {
        let Some(v) = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Basic "))
        else {
            return false;
        };
        let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(v.trim()) else {
            return false;
        };
        raw == format!("{}:{}", self.username, self.password).into_bytes()
    }
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [("www-authenticate", "Basic realm=\"envdrift-testkit\"")],
        "unauthorized",
    )
        .into_response()
}

/// A server on its own thread; stopped when the handle is dropped.
struct Running {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Running {
    fn start(app: Router) -> Running {
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind");
                addr_tx.send(listener.local_addr().expect("addr")).ok();
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = rx.await;
                    })
                    .await;
            });
        });
        let addr = addr_rx.recv().expect("server address");
        Running {
            addr,
            stop: Some(tx),
            thread: Some(thread),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Runs `helm ARGS` (the `helm` found through `path`, else `PATH`) and returns stdout.
///
/// # Panics
/// When helm cannot run or fails (test setup).
pub fn helm(path: &std::ffi::OsStr, home: &Path, args: &[&str], stdin: Option<&str>) -> String {
    use std::io::Write;
    let mut cmd = std::process::Command::new("helm");
    cmd.args(args)
        .env("PATH", path)
        .env("HOME", home)
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("run helm");
    if let Some(mut si) = child.stdin.take()
        && let Some(text) = stdin
    {
        si.write_all(text.as_bytes()).expect("helm stdin");
    }
    let out = child.wait_with_output().expect("helm");
    assert!(
        out.status.success(),
        "helm {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[derive(Default)]
struct RepoInner {
    dir: PathBuf,
    auth: Option<BasicAuth>,
    refused: usize,
    served: Vec<String>,
}

/// An HTTP Helm chart repository serving the files of a directory (`index.yaml` and the
/// `.tgz` archives it lists).
pub struct HelmRepoServer {
    pub addr: SocketAddr,
    inner: Arc<Mutex<RepoInner>>,
    _running: Running,
}

impl HelmRepoServer {
    /// Serves `dir` (made with [`package`] and [`index`]).
    pub fn start(dir: &Path, auth: Option<BasicAuth>) -> HelmRepoServer {
        let inner = Arc::new(Mutex::new(RepoInner {
            dir: dir.to_path_buf(),
            auth,
            ..RepoInner::default()
        }));
        let app = Router::new()
            .fallback(repo_handle)
            .with_state(inner.clone());
        let running = Running::start(app);
        HelmRepoServer {
            addr: running.addr,
            inner,
            _running: running,
        }
    }

    /// `http://127.0.0.1:PORT/charts`.
    pub fn url(&self) -> String {
        format!("http://{}/charts", self.addr)
    }

    /// Requests refused for missing or wrong credentials.
    pub fn refused(&self) -> usize {
        self.inner.lock().expect("lock").refused
    }

    /// Paths served (200).
    pub fn served(&self) -> Vec<String> {
        self.inner.lock().expect("lock").served.clone()
    }
}

async fn repo_handle(
    State(inner): State<Arc<Mutex<RepoInner>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let mut g = inner.lock().expect("lock");
    if let Some(a) = &g.auth
        && !a.accepts(&headers)
    {
        g.refused += 1;
        return unauthorized();
    }
    if method != Method::GET && method != Method::HEAD {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    let Some(rel) = uri.path().strip_prefix("/charts/") else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if rel.is_empty() || rel.contains("..") || rel.contains('/') {
        return StatusCode::NOT_FOUND.into_response();
    }
    match std::fs::read(g.dir.join(rel)) {
        Ok(data) => {
            g.served.push(rel.to_string());
            let ct = if rel.ends_with(".yaml") {
                "application/x-yaml"
            } else {
                "application/gzip"
            };
            ([("content-type", ct)], data).into_response()
        }
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}

/// `helm package CHART_DIR -d OUT`: the archive's path.
pub fn package(path: &std::ffi::OsStr, home: &Path, chart_dir: &Path, out: &Path) -> PathBuf {
    std::fs::create_dir_all(out).expect("mkdir");
    let text = helm(
        path,
        home,
        &[
            "package",
            &chart_dir.display().to_string(),
            "-d",
            &out.display().to_string(),
        ],
        None,
    );
    // "Successfully packaged chart and saved it to: /out/web-1.0.0.tgz"
    let p = text
        .rsplit(": ")
        .next()
        .map(|s| PathBuf::from(s.trim()))
        .expect("helm package output");
    assert!(p.exists(), "helm package: {text}");
    p
}

/// `helm repo index DIR` (relative chart URLs, resolved against the repository URL).
pub fn index(path: &std::ffi::OsStr, home: &Path, dir: &Path) {
    helm(
        path,
        home,
        &["repo", "index", &dir.display().to_string()],
        None,
    );
}

fn sha256_digest(data: &[u8]) -> String {
    let h = Sha256::digest(data);
    let hex: String = h.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

#[derive(Default)]
struct Repo {
    /// digest → (media type, manifest bytes).
    manifests: BTreeMap<String, (String, Vec<u8>)>,
    /// tag → digest.
    tags: BTreeMap<String, String>,
}

#[derive(Default)]
struct OciInner {
    auth: Option<BasicAuth>,
    repos: BTreeMap<String, Repo>,
    blobs: BTreeMap<String, Vec<u8>>,
    uploads: BTreeMap<String, Vec<u8>>,
    next_upload: u64,
    refused: usize,
    /// `METHOD path` of every authorized request.
    log: Vec<String>,
}

/// An OCI distribution registry holding what is pushed to it, in memory.
pub struct OciRegistry {
    pub addr: SocketAddr,
    inner: Arc<Mutex<OciInner>>,
    _running: Running,
}

impl OciRegistry {
    pub fn start(auth: Option<BasicAuth>) -> OciRegistry {
        let inner = Arc::new(Mutex::new(OciInner {
            auth,
            ..OciInner::default()
        }));
        let app = Router::new().fallback(oci_handle).with_state(inner.clone());
        let running = Running::start(app);
        OciRegistry {
            addr: running.addr,
            inner,
            _running: running,
        }
    }

    /// `127.0.0.1:PORT` (the registry host for `oci://HOST/…` and `helm registry login`).
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// Stores a packaged chart as `helm push` does: a config blob (the chart's metadata
    /// as JSON, [`HELM_CONFIG_MEDIA_TYPE`]), the archive as the one layer
    /// ([`HELM_CHART_MEDIA_TYPE`]), an OCI image manifest tagged with the version. Returns
    /// the manifest digest.
    pub fn put_chart(&self, repo: &str, name: &str, version: &str, tgz: &[u8]) -> String {
        let config =
            serde_json::to_vec(&json!({"apiVersion": "v2", "name": name, "version": version}))
                .expect("json");
        let config_digest = sha256_digest(&config);
        let layer_digest = sha256_digest(tgz);
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST_MEDIA_TYPE,
            "config": {"mediaType": HELM_CONFIG_MEDIA_TYPE, "digest": config_digest, "size": config.len()},
            "layers": [{"mediaType": HELM_CHART_MEDIA_TYPE, "digest": layer_digest, "size": tgz.len(),
                        "annotations": {"org.opencontainers.image.title": format!("{name}-{version}.tgz")}}],
            "annotations": {"org.opencontainers.image.title": name, "org.opencontainers.image.version": version},
        }))
        .expect("json");
        let digest = sha256_digest(&manifest);
        let mut g = self.inner.lock().expect("lock");
        g.blobs.insert(config_digest, config);
        g.blobs.insert(layer_digest, tgz.to_vec());
        let r = g.repos.entry(repo.to_string()).or_default();
        r.manifests.insert(
            digest.clone(),
            (OCI_MANIFEST_MEDIA_TYPE.to_string(), manifest),
        );
        r.tags.insert(version.to_string(), digest.clone());
        digest
    }

    /// The manifest tagged `tag` in `repo`, parsed (what `helm push` stored).
    pub fn manifest(&self, repo: &str, tag: &str) -> Option<Value> {
        let g = self.inner.lock().expect("lock");
        let r = g.repos.get(repo)?;
        let d = r.tags.get(tag)?;
        serde_json::from_slice(&r.manifests.get(d)?.1).ok()
    }

    /// The digest of the manifest tagged `tag` in `repo`.
    pub fn digest(&self, repo: &str, tag: &str) -> Option<String> {
        let g = self.inner.lock().expect("lock");
        g.repos.get(repo)?.tags.get(tag).cloned()
    }

    /// Requests refused for missing or wrong credentials.
    pub fn refused(&self) -> usize {
        self.inner.lock().expect("lock").refused
    }

    /// `METHOD path` of the authorized requests.
    pub fn log(&self) -> Vec<String> {
        self.inner.lock().expect("lock").log.clone()
    }
}

/// What a `/v2/…` path asks for.
enum Route<'a> {
    Base,
    Manifest(&'a str, &'a str),
    Blob(&'a str),
    UploadStart(&'a str),
    Upload(&'a str, &'a str),
    Tags(&'a str),
    Other,
}

fn route(path: &str) -> Route<'_> {
    let Some(rest) = path.strip_prefix("/v2/") else {
        return if path == "/v2" {
            Route::Base
        } else {
            Route::Other
        };
    };
    if rest.is_empty() {
        return Route::Base;
    }
    if let Some(name) = rest.strip_suffix("/tags/list") {
        return Route::Tags(name);
    }
    if let Some(name) = rest
        .strip_suffix("/blobs/uploads/")
        .or_else(|| rest.strip_suffix("/blobs/uploads"))
    {
        return Route::UploadStart(name);
    }
    if let Some(i) = rest.rfind("/blobs/uploads/") {
        return Route::Upload(&rest[..i], &rest[i + "/blobs/uploads/".len()..]);
    }
    if let Some(i) = rest.rfind("/manifests/") {
        return Route::Manifest(&rest[..i], &rest[i + "/manifests/".len()..]);
    }
    if let Some(i) = rest.rfind("/blobs/") {
        return Route::Blob(&rest[i + "/blobs/".len()..]);
    }
    Route::Other
}

fn query_param(uri: &Uri, key: &str) -> Option<String> {
    uri.query()?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| v.replace("%3A", ":").replace("%3a", ":"))
    })
}

fn oci_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        [("content-type", "application/json")],
        json!({"errors": [{"code": code, "message": message}]}).to_string(),
    )
        .into_response()
}

async fn oci_handle(
    State(inner): State<Arc<Mutex<OciInner>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut g = inner.lock().expect("lock");
    if let Some(a) = &g.auth
        && !a.accepts(&headers)
    {
        g.refused += 1;
        return unauthorized();
    }
    g.log.push(format!("{method} {}", uri.path()));
    let head = method == Method::HEAD;
    let version = [("docker-distribution-api-version", "registry/2.0")];
    match route(uri.path()) {
        Route::Base => (version, "{}").into_response(),
        Route::Tags(name) => match g.repos.get(name) {
            Some(r) => (
                [("content-type", "application/json")],
                json!({"name": name, "tags": r.tags.keys().collect::<Vec<_>>()}).to_string(),
            )
                .into_response(),
            None => oci_error(
                StatusCode::NOT_FOUND,
                "NAME_UNKNOWN",
                "repository not known",
            ),
        },
        Route::Manifest(name, reference) if method == Method::PUT => {
            let media = headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or(OCI_MANIFEST_MEDIA_TYPE)
                .to_string();
            let Ok(m) = serde_json::from_slice::<Value>(&body) else {
                return oci_error(StatusCode::BAD_REQUEST, "MANIFEST_INVALID", "not JSON");
            };
            // Every blob the manifest names must have been pushed first.
            let mut named = vec![m.pointer("/config/digest").cloned()];
            if let Some(layers) = m.get("layers").and_then(Value::as_array) {
                named.extend(layers.iter().map(|l| l.get("digest").cloned()));
            }
            for d in named.into_iter().flatten() {
                if !d.as_str().is_some_and(|d| g.blobs.contains_key(d)) {
                    return oci_error(
                        StatusCode::BAD_REQUEST,
                        "MANIFEST_BLOB_UNKNOWN",
                        "a blob the manifest names is not in the registry",
                    );
                }
            }
            let digest = sha256_digest(&body);
            if reference.starts_with("sha256:") && reference != digest {
                return oci_error(StatusCode::BAD_REQUEST, "DIGEST_INVALID", "digest mismatch");
            }
            let r = g.repos.entry(name.to_string()).or_default();
            r.manifests.insert(digest.clone(), (media, body.to_vec()));
            if !reference.starts_with("sha256:") {
                r.tags.insert(reference.to_string(), digest.clone());
            }
            (
                StatusCode::CREATED,
                [
                    ("location", format!("/v2/{name}/manifests/{digest}")),
                    ("docker-content-digest", digest),
                ],
            )
                .into_response()
        }
        Route::Manifest(name, reference) if method == Method::GET || head => {
            let Some(r) = g.repos.get(name) else {
                return oci_error(
                    StatusCode::NOT_FOUND,
                    "NAME_UNKNOWN",
                    "repository not known",
                );
            };
            let digest = if reference.starts_with("sha256:") {
                reference.to_string()
            } else {
                match r.tags.get(reference) {
                    Some(d) => d.clone(),
                    None => {
                        return oci_error(
                            StatusCode::NOT_FOUND,
                            "MANIFEST_UNKNOWN",
                            "tag not known",
                        );
                    }
                }
            };
            let Some((media, data)) = r.manifests.get(&digest) else {
                return oci_error(
                    StatusCode::NOT_FOUND,
                    "MANIFEST_UNKNOWN",
                    "digest not known",
                );
            };
            let len = data.len().to_string();
            let hdrs = [
                ("content-type", media.clone()),
                ("docker-content-digest", digest.clone()),
                ("content-length", len),
            ];
            if head {
                (hdrs, ()).into_response()
            } else {
                (hdrs, data.clone()).into_response()
            }
        }
        Route::Blob(digest) if method == Method::GET || head => match g.blobs.get(digest) {
            Some(data) => {
                let hdrs = [
                    ("content-type", "application/octet-stream".to_string()),
                    ("docker-content-digest", digest.to_string()),
                    ("content-length", data.len().to_string()),
                ];
                if head {
                    (hdrs, ()).into_response()
                } else {
                    (hdrs, data.clone()).into_response()
                }
            }
            None => oci_error(StatusCode::NOT_FOUND, "BLOB_UNKNOWN", "blob not known"),
        },
        Route::UploadStart(name) if method == Method::POST => {
            // Monolithic upload: POST ?digest= with the blob as the body.
            if let Some(d) = query_param(&uri, "digest") {
                if sha256_digest(&body) != d {
                    return oci_error(StatusCode::BAD_REQUEST, "DIGEST_INVALID", "digest mismatch");
                }
                g.blobs.insert(d.clone(), body.to_vec());
                return (
                    StatusCode::CREATED,
                    [
                        ("location", format!("/v2/{name}/blobs/{d}")),
                        ("docker-content-digest", d),
                    ],
                )
                    .into_response();
            }
            g.next_upload += 1;
            let id = format!("u{}", g.next_upload);
            g.uploads.insert(id.clone(), Vec::new());
            (
                StatusCode::ACCEPTED,
                [
                    ("location", format!("/v2/{name}/blobs/uploads/{id}")),
                    ("range", "0-0".to_string()),
                    ("docker-upload-uuid", id),
                ],
            )
                .into_response()
        }
        Route::Upload(name, id) if method == Method::PATCH => {
            let Some(buf) = g.uploads.get_mut(id) else {
                return oci_error(
                    StatusCode::NOT_FOUND,
                    "BLOB_UPLOAD_UNKNOWN",
                    "upload not known",
                );
            };
            buf.extend_from_slice(&body);
            let end = buf.len().saturating_sub(1);
            (
                StatusCode::ACCEPTED,
                [
                    ("location", format!("/v2/{name}/blobs/uploads/{id}")),
                    ("range", format!("0-{end}")),
                    ("docker-upload-uuid", id.to_string()),
                ],
            )
                .into_response()
        }
        Route::Upload(name, id) if method == Method::PUT => {
            let Some(mut buf) = g.uploads.remove(id) else {
                return oci_error(
                    StatusCode::NOT_FOUND,
                    "BLOB_UPLOAD_UNKNOWN",
                    "upload not known",
                );
            };
            buf.extend_from_slice(&body);
            let Some(d) = query_param(&uri, "digest") else {
                return oci_error(StatusCode::BAD_REQUEST, "DIGEST_INVALID", "no digest");
            };
            if sha256_digest(&buf) != d {
                return oci_error(StatusCode::BAD_REQUEST, "DIGEST_INVALID", "digest mismatch");
            }
            g.blobs.insert(d.clone(), buf);
            (
                StatusCode::CREATED,
                [
                    ("location", format!("/v2/{name}/blobs/{d}")),
                    ("docker-content-digest", d),
                ],
            )
                .into_response()
        }
        _ => oci_error(
            StatusCode::NOT_FOUND,
            "UNSUPPORTED",
            "not served by the test registry",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert!(matches!(route("/v2/"), Route::Base));
        assert!(matches!(
            route("/v2/charts/web/manifests/1.0.0"),
            Route::Manifest("charts/web", "1.0.0")
        ));
        assert!(matches!(
            route("/v2/charts/web/blobs/uploads/"),
            Route::UploadStart("charts/web")
        ));
        assert!(matches!(
            route("/v2/charts/web/blobs/uploads/u1"),
            Route::Upload("charts/web", "u1")
        ));
        assert!(matches!(
            route("/v2/charts/web/blobs/sha256:ab"),
            Route::Blob("sha256:ab")
        ));
        assert!(matches!(
            route("/v2/charts/web/tags/list"),
            Route::Tags("charts/web")
        ));
    }
}
