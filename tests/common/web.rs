//! A daemon on the bundled demo config (config/demo.yaml, its paths made absolute, the store
//! in a temp dir), every target scanned once, its API and web page served on a loopback
//! port; and a tiny HTTP/1.1 client for pages and forms. Shared by tests/web.rs and
//! tests/web_browser.rs.

#![allow(dead_code, reason = "each test binary uses part of it")]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use envdrift::config::Config;
use envdrift::daemon::Daemon;
use envdrift::store::Store;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

// The test binary declares `common_api` (tests/common/api.rs) beside this module.
use super::common_api::{NoSinks, serve_api};

/// The demo's Secret value, in clear and base64: no page may show either.
pub const SECRET: &str = "prod-demo-password";
pub const SECRET_B64: &str = "cHJvZC1kZW1vLXBhc3N3b3Jk";
pub const READ: &str = "read-token-0123456789";
pub const OPERATE: &str = "operate-token-9876543210";

pub struct Server {
    pub addr: SocketAddr,
    pub daemon: Arc<Daemon>,
    pub stop: tokio::sync::watch::Sender<bool>,
    pub dir: tempfile::TempDir,
}

/// The demo config with absolute paths and the store in `state/`, plus `extra` YAML.
pub fn demo_config(extra: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let text = std::fs::read_to_string(root.join("demo.yaml")).expect("config/demo.yaml");
    let text = text
        .replace("data_dir: ../.envdrift-demo", "data_dir: state")
        .replace("path: demo/", &format!("path: {}/demo/", root.display()));
    format!("{text}\n{extra}")
}

/// Starts the demo daemon (`extra` appended to its config) and scans every target once.
pub async fn start(extra: &str) -> Server {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("read.token"), READ).unwrap();
    std::fs::write(dir.path().join("operate.token"), OPERATE).unwrap();
    std::fs::write(dir.path().join("envdrift.yaml"), demo_config(extra)).unwrap();
    let cfg = Config::load(&dir.path().join("envdrift.yaml")).unwrap();
    let api_cfg = cfg.api.clone();
    let store = Arc::new(Store::open(&dir.path().join("state/envdrift.db")).unwrap());
    let daemon =
        Arc::new(Daemon::new(cfg, dir.path().to_path_buf(), store, Arc::new(NoSinks)).unwrap());
    for t in daemon.targets() {
        daemon.scan(&t).await.unwrap();
    }
    let (addr, stop) = serve_api(Arc::clone(&daemon), &api_cfg, dir.path()).await;
    Server {
        addr,
        daemon,
        stop,
        dir,
    }
}

/// The tokens section that turns the login on.
pub const TOKENS: &str = "api:\n  tokens:\n    - {name: ci, role: read, token_file: read.token}\n    - {name: oncall, role: operate, token_file: operate.token}\n";

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: String,
    pub body: String,
}

impl Resp {
    /// A response header's value (first one).
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }

    /// The `name=value` of the Set-Cookie for `name`.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.headers.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            if !k.eq_ignore_ascii_case("set-cookie") {
                return None;
            }
            let first = v.trim().split(';').next()?;
            first
                .starts_with(&format!("{name}="))
                .then(|| first.to_string())
        })
    }

    /// The value of `<input type="hidden" name="csrf" value="…">` in the page.
    pub fn csrf(&self) -> Option<String> {
        let at = self.body.find("name=\"csrf\" value=\"")?;
        let rest = &self.body[at + 19..];
        rest.split('"').next().map(str::to_string)
    }
}

/// One request: `headers` are extra header lines (`Cookie: …`).
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[String],
    form: Option<&str>,
) -> Resp {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    if let Some(b) = form {
        req.push_str(&format!(
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
            b.len()
        ));
    }
    req.push_str("\r\n");
    if let Some(b) = form {
        req.push_str(b);
    }
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw).await;
    let (status, head, body) = super::common_api::parse_response(&raw);
    let r = Resp {
        status,
        headers: head,
        body,
    };
    assert!(
        !r.body.contains(SECRET) && !r.body.contains(SECRET_B64),
        "{path} shows a Secret value"
    );
    assert!(
        !r.body.contains(READ) && !r.body.contains(OPERATE),
        "{path} shows a token"
    );
    r
}

pub async fn get(addr: SocketAddr, path: &str, cookie: Option<&str>) -> Resp {
    let h: Vec<String> = cookie.map(|c| format!("Cookie: {c}")).into_iter().collect();
    request(addr, "GET", path, &h, None).await
}
