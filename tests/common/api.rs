//! Serving a daemon's API on a loopback port in tests, with no alert sinks; shared by the
//! test binaries that talk to the API (`api.rs`, `fingerprints.rs`, `promtool.rs`).

#![allow(dead_code, reason = "each test binary uses part of it")]

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

use envdrift::alert::DeliveryError;
use envdrift::alert::notice::Notice;
use envdrift::api::{ApiState, serve};
use envdrift::config::ApiConfig;
use envdrift::daemon::{Daemon, Deliver};

/// Alert sinks that deliver nothing.
pub struct NoSinks;

impl Deliver for NoSinks {
    fn sinks(&self) -> Vec<String> {
        Vec::new()
    }
    fn route(&self, _: &str, _: &Notice) -> Option<Notice> {
        None
    }
    fn deliver<'a>(
        &'a self,
        _: &'a str,
        _: &'a Notice,
    ) -> Pin<Box<dyn Future<Output = Result<(), DeliveryError>> + Send + 'a>> {
        Box::pin(async { Ok(()) })
    }
}

/// Serves `daemon`'s API on an OS-chosen loopback port; returns the address and the
/// sender that stops the server (also stopped when the sender is dropped).
pub async fn serve_api(
    daemon: Arc<Daemon>,
    api_cfg: &ApiConfig,
    base: &Path,
) -> (SocketAddr, tokio::sync::watch::Sender<bool>) {
    let state = Arc::new(ApiState::new(daemon, api_cfg, base).expect("API state"));
    let (stop, rx) = tokio::sync::watch::channel(false);
    let (tx, bound) = tokio::sync::oneshot::channel();
    let (api_cfg, base) = (api_cfg.clone(), base.to_path_buf());
    tokio::spawn(async move {
        serve(
            state,
            &api_cfg,
            "127.0.0.1:0".parse().expect("loopback"),
            &base,
            rx,
            Some(tx),
        )
        .await
        .expect("serving the API");
    });
    (bound.await.expect("bound"), stop)
}

/// An HTTP/1.1 response read to its end (`Connection: close`): status (0 when there is
/// none), head, and body (chunked transfer encoding undone).
pub fn parse_response(raw: &[u8]) -> (u16, String, String) {
    let text = String::from_utf8_lossy(raw).to_string();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    (status, head.to_string(), body)
}

fn dechunk(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some((len, after)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(len.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&after[..n.min(after.len())]);
        rest = after.get(n + 2..).unwrap_or("");
    }
    out
}
