//! A webhook receiver on loopback: verifies `X-Envdrift-Signature` (HMAC-SHA256 of the raw
//! body with the shared secret, computed here independently of envdrift's code), records
//! every request, and answers queued [`Reply`]s (429 with `Retry-After`, 5xx, 4xx) on demand.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{Recorded, Reply};

#[derive(Default)]
struct Inner {
    secret: Vec<u8>,
    queue: VecDeque<Reply>,
    accepted: Vec<Recorded>,
    requests: usize,
    bad_signatures: usize,
}

pub struct WebhookServer {
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl WebhookServer {
    pub async fn start(secret: &str) -> WebhookServer {
        let inner = Arc::new(Mutex::new(Inner {
            secret: secret.as_bytes().to_vec(),
            ..Inner::default()
        }));
        let app = Router::new().fallback(handle).with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        WebhookServer {
            addr,
            inner,
            stop: Some(tx),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/hooks/envdrift", self.addr)
    }

    pub fn queue(&self, replies: &[Reply]) {
        self.inner
            .lock()
            .expect("lock")
            .queue
            .extend(replies.iter().copied());
    }

    pub fn accepted(&self) -> Vec<Recorded> {
        self.inner.lock().expect("lock").accepted.clone()
    }

    pub fn requests(&self) -> usize {
        self.inner.lock().expect("lock").requests
    }

    pub fn bad_signatures(&self) -> usize {
        self.inner.lock().expect("lock").bad_signatures
    }
}

impl Drop for WebhookServer {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn handle(
    State(inner): State<Arc<Mutex<Inner>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut g = inner.lock().expect("lock");
    g.requests += 1;
    if method == Method::HEAD {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    match g.queue.pop_front() {
        Some(Reply::RateLimited(secs)) => {
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", secs.to_string())],
                "slow down",
            )
                .into_response();
        }
        Some(Reply::ServerError) => {
            return (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response();
        }
        Some(Reply::Unavailable) => {
            return (StatusCode::SERVICE_UNAVAILABLE, "later").into_response();
        }
        Some(Reply::BadRequest) => return (StatusCode::BAD_REQUEST, "bad payload").into_response(),
        Some(Reply::Forbidden) => return (StatusCode::FORBIDDEN, "forbidden").into_response(),
        Some(Reply::Stall) => return (StatusCode::SERVICE_UNAVAILABLE, "stalled").into_response(),
        None => {}
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(&g.secret).expect("hmac key");
    mac.update(&body);
    let expected = format!("sha256={}", hex(&mac.finalize().into_bytes()));
    let got = headers
        .get("x-envdrift-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if got != expected {
        g.bad_signatures += 1;
        return (StatusCode::UNAUTHORIZED, "bad signature").into_response();
    }
    if headers.get("content-type").and_then(|v| v.to_str().ok()) != Some("application/json") {
        return (StatusCode::UNSUPPORTED_MEDIA_TYPE, "want JSON").into_response();
    }
    g.accepted.push(Recorded {
        path: uri.path().to_string(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect(),
        body: body.to_vec(),
    });
    StatusCode::NO_CONTENT.into_response()
}
