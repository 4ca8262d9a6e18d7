//! The HTTP API (axum): the on-demand comparison endpoint, drift queries and actions, scans,
//! reports, health, readiness and metrics. Started by `envdrift daemon`.
//!
//! Entry points: [`router`] (the routes, for tests) and [`serve`] (bind, optional TLS,
//! graceful shutdown). The served OpenAPI document (`/api/v1/openapi.json`, the file
//! `src/api/openapi.json`) describes exactly [`ROUTES`]; a test keeps them equal and
//! schemathesis checks responses against it.
//!
//! Security: bearer tokens from config, role `read` for GET and `operate` for POST, compared
//! in constant time; `/healthz` and `/readyz` are open, `/metrics` is open unless
//! `api.metrics_public: false`. Without tokens the API is open, which [`serve`] allows only on
//! a loopback address. Tokens never appear in logs or responses. `POST
//! /api/v1/slack/interactions` takes no bearer token: Slack's request signature is its
//! authentication (`slack`), and it is off unless a Slack sink has a signing secret;
//! likewise `POST /api/v1/hooks/git` (Git push webhooks, `hooks`): its provider's signature
//! or token, off unless `api.hooks.git` names a secret.

mod compare;
pub mod dto;
pub mod hooks;
mod slack;
mod trends;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{MatchedPath, Path as UrlPath, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::{ApiConfig, Role, parse_duration};
use crate::daemon::{Daemon, Target};
use crate::model::Severity;
use crate::store::{DriftFilter, DriftStatus, ScanOutcome, StoreError, StoreReader};

/// The OpenAPI document.
pub const OPENAPI: &str = include_str!("openapi.json");

/// Every route: method and path (axum syntax). The OpenAPI document lists exactly these.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/api/v1/openapi.json"),
    ("GET", "/api/v1/compare"),
    ("GET", "/api/v1/environments"),
    ("GET", "/api/v1/drifts"),
    ("GET", "/api/v1/drifts/{id}"),
    ("POST", "/api/v1/drifts/{id}/ack"),
    ("POST", "/api/v1/drifts/{id}/silence"),
    ("POST", "/api/v1/scans"),
    ("GET", "/api/v1/scans/{id}"),
    ("GET", "/api/v1/reports/latest"),
    ("POST", "/api/v1/slack/interactions"),
    ("POST", "/api/v1/hooks/git"),
    ("GET", "/api/v1/trends"),
];

/// Errors of the API's start-up; each names the config key.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(
        "listen {addr}: refusing a non-loopback address without api.tokens: anyone who can reach it could read drift and trigger scans; configure api.tokens (see the README) or listen on 127.0.0.1"
    )]
    OpenOnNetwork { addr: SocketAddr },
    #[error("{0}")]
    Config(String),
    #[error("listen {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("api.tls: {0}")]
    Tls(String),
    #[error("the API's store reader: {0}")]
    Store(#[from] StoreError),
    #[error("the web page: {0}")]
    Web(#[from] crate::web::TemplateError),
}

struct Token {
    name: String,
    role: Role,
    digest: [u8; 32],
}

/// Shared state of the handlers.
pub struct ApiState {
    pub daemon: Arc<Daemon>,
    /// Every read goes through this read-only handle; only ack and silence write (through
    /// the daemon's store).
    store: StoreReader,
    tokens: Vec<Token>,
    metrics_public: bool,
    compare: compare::CompareCache,
    /// The web page's state (src/web): its own routes, merged in [`router`].
    web: Arc<crate::web::WebState>,
    /// `api.hooks.git`'s secret (`None`: `POST /api/v1/hooks/git` is off).
    git_hook_secret: Option<Arc<[u8]>>,
}

impl ApiState {
    /// Builds the state; reads token secrets (files relative to `base`).
    ///
    /// # Errors
    /// [`ApiError::Config`] naming the token whose secret is missing.
    pub fn new(daemon: Arc<Daemon>, cfg: &ApiConfig, base: &Path) -> Result<ApiState, ApiError> {
        let mut tokens = Vec::new();
        for t in &cfg.tokens {
            let secret = t.secret(base).map_err(ApiError::Config)?;
            tokens.push(Token {
                name: t.name.clone(),
                role: t.role,
                digest: Sha256::digest(secret.as_bytes()).into(),
            });
        }
        let max_age = dur(&cfg.compare_max_age, Duration::from_secs(30))?;
        let mut web = crate::web::WebState::new(
            Arc::clone(&daemon),
            daemon.store.reader()?,
            tokens
                .iter()
                .map(|t| (t.name.clone(), t.role, t.digest))
                .collect(),
            cfg,
            base,
        )?;
        web.sessions.ttl = dur(&cfg.web_session_ttl, crate::web::SESSION_TTL)?;
        Ok(ApiState {
            git_hook_secret: hooks::secret_of(cfg, base).map_err(ApiError::Config)?,
            web: Arc::new(web),
            store: daemon.store.reader()?,
            daemon,
            tokens,
            metrics_public: cfg.metrics_public.unwrap_or(true),
            compare: compare::CompareCache::new(
                max_age,
                cfg.compare_concurrency.unwrap_or(2).max(1),
            ),
        })
    }

    /// The read-only store handle.
    pub(crate) fn reader(&self) -> &StoreReader {
        &self.store
    }
}

fn dur(v: &Option<String>, default: Duration) -> Result<Duration, ApiError> {
    match v {
        Some(s) => parse_duration(s).map_err(ApiError::Config),
        None => Ok(default),
    }
}

/// A JSON error: `{"error": code, "message": …, "param": …}`.
#[derive(Debug)]
pub struct HttpError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub param: Option<&'static str>,
}

impl HttpError {
    pub fn bad(param: &'static str, message: impl Into<String>) -> HttpError {
        HttpError {
            status: StatusCode::BAD_REQUEST,
            code: "bad_request",
            message: message.into(),
            param: Some(param),
        }
    }
    fn not_found(message: impl Into<String>) -> HttpError {
        HttpError {
            status: StatusCode::NOT_FOUND,
            code: "not_found",
            message: message.into(),
            param: None,
        }
    }
    pub(crate) fn internal(message: impl Into<String>) -> HttpError {
        HttpError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "internal",
            message: message.into(),
            param: None,
        }
    }
}

impl From<StoreError> for HttpError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { what, id, .. } => {
                HttpError::not_found(format!("{what} {id} not found"))
            }
            other => {
                tracing::error!(error = %other, "store");
                HttpError::internal("the store failed; see the daemon's log")
            }
        }
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let mut body = json!({"error": self.code, "message": self.message});
        if let Some(p) = self.param {
            body["param"] = json!(p);
        }
        let mut resp = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"envdrift\""),
            );
        }
        resp
    }
}

type Shared = Arc<ApiState>;

/// The routes (with auth, metrics, body limit and timeout layers).
pub fn router(state: Shared, cfg: &ApiConfig) -> Result<Router, ApiError> {
    let timeout = dur(&cfg.request_timeout, Duration::from_secs(30))?;
    let body_limit = cfg.max_body_bytes.unwrap_or(64 * 1024);
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/v1/openapi.json", get(openapi))
        .route("/api/v1/compare", get(compare::handler))
        .route("/api/v1/environments", get(environments))
        .route("/api/v1/drifts", get(list_drifts))
        .route("/api/v1/drifts/{id}", get(get_drift))
        .route("/api/v1/drifts/{id}/ack", post(ack))
        .route("/api/v1/drifts/{id}/silence", post(silence))
        .route("/api/v1/scans", post(trigger_scan))
        .route("/api/v1/scans/{id}", get(get_scan))
        .route("/api/v1/reports/latest", get(latest_report))
        .route("/api/v1/trends", get(trends::handler))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(body_limit))
        .merge(slack::routes(body_limit))
        .merge(hooks::routes(body_limit))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth))
        .with_state(state.clone())
        // The web page (src/web): its own session auth, outside the bearer-token layer.
        .merge(crate::web::routes(Arc::clone(&state.web)))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            count_requests,
        ))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            timeout,
        ));
    Ok(app)
}

async fn not_found(method: Method, uri: axum::http::Uri) -> HttpError {
    HttpError::not_found(format!("no route for {method} {}", uri.path()))
}

/// The caller's identity after authentication (a request extension).
#[derive(Debug, Clone)]
pub struct Caller(pub String);

async fn auth(State(st): State<Shared>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let needed = match (req.method(), path.as_str()) {
        (_, "/healthz" | "/readyz") => None,
        // Authenticated by its Slack signature (src/api/slack.rs), not a bearer token.
        (&Method::POST, "/api/v1/slack/interactions") => None,
        // Authenticated by the provider's signature or token (src/api/hooks.rs).
        (&Method::POST, "/api/v1/hooks/git") => None,
        (_, "/metrics") if st.metrics_public => None,
        (&Method::GET | &Method::HEAD, _) => Some(Role::Read),
        _ => Some(Role::Operate),
    };
    let Some(needed) = needed else {
        return next.run(req).await;
    };
    if st.tokens.is_empty() {
        // Only possible on loopback (serve refuses otherwise).
        req.extensions_mut().insert(Caller("loopback".into()));
        return next.run(req).await;
    }
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    let Some(presented) = presented else {
        return HttpError {
            status: StatusCode::UNAUTHORIZED,
            code: "unauthorized",
            message: "missing bearer token (Authorization: Bearer TOKEN)".into(),
            param: None,
        }
        .into_response();
    };
    let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
    // Compare against every token in constant time, without an early exit.
    let mut found: Option<&Token> = None;
    for t in &st.tokens {
        if bool::from(t.digest.ct_eq(&digest)) {
            found = Some(t);
        }
    }
    match found {
        None => HttpError {
            status: StatusCode::UNAUTHORIZED,
            code: "unauthorized",
            message: "unknown bearer token".into(),
            param: None,
        }
        .into_response(),
        Some(t) if t.role < needed => HttpError {
            status: StatusCode::FORBIDDEN,
            code: "forbidden",
            message: format!(
                "token `{}` has role read; this endpoint needs operate",
                t.name
            ),
            param: None,
        }
        .into_response(),
        Some(t) => {
            req.extensions_mut().insert(Caller(t.name.clone()));
            next.run(req).await
        }
    }
}

async fn count_requests(State(st): State<Shared>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |m| m.as_str().to_string());
    let resp = next.run(req).await;
    st.daemon
        .metrics
        .api_requests
        .get_or_create(&crate::daemon::metrics::ApiLabels {
            route,
            status: resp.status().as_u16().to_string(),
        })
        .inc();
    resp
}

async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

async fn readyz(State(st): State<Shared>) -> Response {
    let store_ok = st.store.schema_version().is_ok();
    let scans = st.store.scans(None, 200).unwrap_or_default();
    let finished: Vec<_> = scans
        .iter()
        .filter(|s| s.outcome != ScanOutcome::Running)
        .collect();
    let any_ok = finished
        .iter()
        .any(|s| matches!(s.outcome, ScanOutcome::Ok | ScanOutcome::Partial));
    let starting = finished.is_empty();
    let stalled = st.daemon.stalled_deliveries();
    let store_error = st.daemon.store_write_error();
    let store_ok = store_ok && store_error.is_none();
    let ready = store_ok && (any_ok || starting) && stalled.is_empty();
    let body = dto::Readiness {
        ready,
        store: if store_ok { "open" } else { "failed" },
        store_error,
        deliveries: if stalled.is_empty() { "ok" } else { "stalled" },
        stalled,
        scans: if any_ok {
            "ok"
        } else if starting {
            "starting"
        } else {
            "all failed"
        },
    };
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// OpenMetrics for clients that ask for it (Prometheus does), else the Prometheus text
/// format 0.0.4 (`curl … | promtool check metrics`).
async fn metrics(State(st): State<Shared>, headers: axum::http::HeaderMap) -> Response {
    if let Ok(rows) = st.store.open_counts() {
        st.daemon.metrics.set_open(&rows);
    }
    trends::update_gauges(&st);
    let openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    let (body, ctype) = if openmetrics {
        (
            st.daemon.metrics.encode(),
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )
    } else {
        (
            st.daemon.metrics.encode_prometheus_text(),
            "text/plain; version=0.0.4; charset=utf-8",
        )
    };
    let mut resp = body.into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    resp
}

/// The OpenAPI document with this daemon's environment and comparison names filled in as
/// enums (schemas marked `x-envdrift-enum`), so that it describes exactly what is accepted.
pub(crate) fn openapi_document(d: &Daemon) -> Value {
    let mut doc: Value = serde_json::from_str(OPENAPI).unwrap_or(Value::Null);
    let targets: Vec<Value> = d.targets().iter().map(|t| json!(t.name())).collect();
    let mut sources = Vec::new();
    for e in d.cfg.environments.keys() {
        sources.extend([
            json!(e),
            json!(format!("live:{e}")),
            json!(format!("git:{e}")),
        ]);
    }
    fn fill(v: &mut Value, targets: &[Value], sources: &[Value]) {
        match v {
            Value::Object(m) => {
                let which = m
                    .get("x-envdrift-enum")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                if let Some(w) = which {
                    m.remove("x-envdrift-enum");
                    let list = if w == "targets" { targets } else { sources };
                    m.insert("enum".into(), Value::Array(list.to_vec()));
                }
                m.values_mut().for_each(|x| fill(x, targets, sources));
            }
            Value::Array(a) => a.iter_mut().for_each(|x| fill(x, targets, sources)),
            _ => {}
        }
    }
    fill(&mut doc, &targets, &sources);
    doc
}

async fn openapi(State(st): State<Shared>) -> Response {
    let mut resp = openapi_document(&st.daemon).to_string().into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

async fn environments(State(st): State<Shared>) -> Result<Json<dto::Environments>, HttpError> {
    let d = &st.daemon;
    let open = st.store.open_counts()?;
    let mut out = Vec::new();
    for t in d.targets() {
        let name = t.name().to_string();
        let last = st.store.scans(Some(&name), 1)?.into_iter().next();
        let open_drifts = Severity::ALL
            .iter()
            .map(|s| {
                let n = open
                    .iter()
                    .filter(|c| c.target == name && c.severity == *s)
                    .count();
                (s.as_str(), n)
            })
            .collect();
        let (kind, sources) = match &t {
            Target::Environment(n) => {
                let e = d.cfg.environments.get(n);
                (
                    "environment",
                    json!({
                        "desired": e.map(|e| e.desired.describe()),
                        "live": e.map(|e| e.live.describe()),
                    }),
                )
            }
            Target::Comparison(n) => {
                let c = d.cfg.comparisons.iter().find(|c| &c.name() == n);
                (
                    "comparison",
                    json!({"from": c.map(|c| c.from.clone()), "to": c.map(|c| c.to.clone())}),
                )
            }
        };
        out.push(dto::Environment {
            kind,
            last_scan: last.as_ref().map(dto::LastScan::from),
            name,
            open_drifts,
            sources,
        });
    }
    // Alert delivery state: counts by outbox state and the latest failures (visible here,
    // in the log and in the metrics).
    let outbox = st
        .store
        .outbox_counts()?
        .into_iter()
        .map(|(state, n)| (state.as_str(), n))
        .collect();
    let recent_failures = st
        .store
        .outbox(200)?
        .into_iter()
        .filter(|r| r.last_error.is_some())
        .take(10)
        .map(|r| dto::DeliveryFailure {
            attempts: r.attempts,
            error: r.last_error,
            notice: r.notice_id,
            sink: r.sink,
            state: r.state.as_str(),
        })
        .collect();
    Ok(Json(dto::Environments {
        alerts: dto::Alerts {
            outbox,
            recent_failures,
        },
        environments: out,
    }))
}

/// Query of `GET /api/v1/drifts`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DriftsQuery {
    env: Option<String>,
    severity: Option<String>,
    category: Option<String>,
    status: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

fn parse_severity(s: &str) -> Result<Severity, HttpError> {
    s.parse::<Severity>()
        .map_err(|e| HttpError::bad("severity", e))
}

fn parse_category(s: &str) -> Result<String, HttpError> {
    s.parse::<crate::model::Category>()
        .map(|c| c.to_string())
        .map_err(|e| HttpError::bad("category", e))
}

fn check_target(d: &Daemon, name: &str, param: &'static str) -> Result<Target, HttpError> {
    d.target(name).ok_or_else(|| {
        let known: Vec<String> = d.targets().iter().map(|t| t.name().to_string()).collect();
        HttpError::bad(
            param,
            format!(
                "unknown environment or comparison `{name}` (configured: {})",
                known.join(", ")
            ),
        )
    })
}

async fn list_drifts(
    State(st): State<Shared>,
    q: Result<Query<DriftsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<dto::DriftPage>, HttpError> {
    let Query(q) = q.map_err(|e| HttpError::bad("query", e.body_text()))?;
    let d = &st.daemon;
    if let Some(env) = &q.env {
        check_target(d, env, "env")?;
    }
    let status = match q.status.as_deref().unwrap_or("open") {
        "open" => Some(DriftStatus::Open),
        "resolved" => Some(DriftStatus::Resolved),
        "all" => None,
        other => {
            return Err(HttpError::bad(
                "status",
                format!("`{other}` (choose from: open, resolved, all)"),
            ));
        }
    };
    let limit = match q.limit.as_deref() {
        None => 100,
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=1000).contains(&n) => n,
            _ => {
                return Err(HttpError::bad(
                    "limit",
                    format!("`{l}` (a number from 1 to 1000)"),
                ));
            }
        },
    };
    let after_id = match q.cursor.as_deref() {
        None | Some("") => None,
        Some(c) => Some(decode_cursor(c).ok_or_else(|| {
            HttpError::bad(
                "cursor",
                format!("`{c}` is not a cursor from a previous page"),
            )
        })?),
    };
    let filter = DriftFilter {
        target: q.env.clone(),
        status,
        min_severity: q.severity.as_deref().map(parse_severity).transpose()?,
        category: q.category.as_deref().map(parse_category).transpose()?,
        after_id,
        limit: limit + 1,
    };
    let mut rows = st.store.list_drifts(&filter)?;
    let next_cursor = if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(|r| encode_cursor(r.id))
    } else {
        None
    };
    Ok(Json(dto::DriftPage {
        drifts: rows.into_iter().map(dto::Drift::from).collect(),
        next_cursor,
    }))
}

fn encode_cursor(id: i64) -> String {
    format!("d{id}")
}

fn decode_cursor(c: &str) -> Option<i64> {
    c.strip_prefix('d')?.parse().ok().filter(|n: &i64| *n >= 0)
}

fn parse_id(raw: &str) -> Result<i64, HttpError> {
    raw.parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| HttpError::bad("id", format!("`{raw}` is not an id (a positive integer)")))
}

async fn get_drift(
    State(st): State<Shared>,
    UrlPath(raw): UrlPath<String>,
) -> Result<Json<dto::DriftDetail>, HttpError> {
    let id = parse_id(&raw)?;
    let (drift, history) = st.store.drift(id)?;
    Ok(Json(dto::DriftDetail {
        drift: drift.into(),
        history: history.into_iter().map(dto::Event::from).collect(),
    }))
}

/// Body of `POST /api/v1/drifts/{id}/ack` (optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AckBody {
    /// Free text recorded with the acknowledgement (who, why).
    note: Option<String>,
}

fn json_body<T: serde::de::DeserializeOwned + Default>(
    bytes: &[u8],
    required: bool,
) -> Result<T, HttpError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return if required {
            Err(HttpError::bad("body", "a JSON body is required"))
        } else {
            Ok(T::default())
        };
    }
    serde_json::from_slice(bytes)
        .map_err(|e| HttpError::bad("body", format!("invalid JSON body: {e}")))
}

async fn ack(
    State(st): State<Shared>,
    UrlPath(raw): UrlPath<String>,
    caller: Option<axum::Extension<Caller>>,
    body: axum::body::Bytes,
) -> Result<Json<dto::DriftEnvelope>, HttpError> {
    let id = parse_id(&raw)?;
    let b: AckBody = json_body(&body, false)?;
    let who = caller.map_or_else(|| "api".to_string(), |c| c.0.0.clone());
    let by = match b.note {
        Some(n) => format!("{who}: {n}"),
        None => who,
    };
    // The one action path: the Slack messages and webhooks hear of it through the outbox.
    st.daemon.acknowledge(id, &by, &by)?;
    drift_envelope(&st, id)
}

/// The drift after an action, read back from the daemon's store (the writer that just wrote
/// it, so the read sees the write).
fn drift_envelope(st: &ApiState, id: i64) -> Result<Json<dto::DriftEnvelope>, HttpError> {
    let (drift, _) = st.daemon.store.drift(id)?;
    Ok(Json(dto::DriftEnvelope {
        drift: drift.into(),
    }))
}

/// Body of `POST /api/v1/drifts/{id}/silence`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SilenceBody {
    until: Option<String>,
    reason: Option<String>,
}

async fn silence(
    State(st): State<Shared>,
    UrlPath(raw): UrlPath<String>,
    caller: Option<axum::Extension<Caller>>,
    body: axum::body::Bytes,
) -> Result<Json<dto::DriftEnvelope>, HttpError> {
    let id = parse_id(&raw)?;
    let b: SilenceBody = json_body(&body, true)?;
    let until = b
        .until
        .ok_or_else(|| HttpError::bad("until", "`until` (RFC 3339 time) is required"))?;
    let t = chrono::DateTime::parse_from_rfc3339(&until)
        .map_err(|e| HttpError::bad("until", format!("`{until}` is not an RFC 3339 time: {e}")))?;
    // A time in the past is accepted: it ends a silence.
    let t = t.with_timezone(&chrono::Utc);
    let reason = b.reason.unwrap_or_default();
    let who = caller.map_or_else(|| "api".to_string(), |c| c.0.0.clone());
    st.daemon
        .silence(id, &crate::store::fmt_time(t), &reason, &who)?;
    drift_envelope(&st, id)
}

/// Body of `POST /api/v1/scans`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScanBody {
    env: Option<String>,
}

async fn trigger_scan(
    State(st): State<Shared>,
    body: axum::body::Bytes,
) -> Result<Response, HttpError> {
    let b: ScanBody = json_body(&body, true)?;
    let env = b
        .env
        .ok_or_else(|| HttpError::bad("env", "`env` is required"))?;
    let target = check_target(&st.daemon, &env, "env")?;
    let id = match st.daemon.trigger_scan(&target)? {
        crate::daemon::Triggered::Queued(id) | crate::daemon::Triggered::AlreadyQueued(id) => id,
        crate::daemon::Triggered::QueueFull => {
            let mut resp = HttpError {
                status: StatusCode::TOO_MANY_REQUESTS,
                code: "too_many_scans",
                message: format!(
                    "{} triggered scans are already waiting; try again later",
                    crate::daemon::MAX_QUEUED_TRIGGERS
                ),
                param: None,
            }
            .into_response();
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("10"));
            return Ok(resp);
        }
    };
    let body = dto::ScanAccepted {
        url: format!("/api/v1/scans/{id}"),
        env,
        id,
        status: "running",
    };
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

async fn get_scan(
    State(st): State<Shared>,
    UrlPath(raw): UrlPath<String>,
) -> Result<Json<dto::ScanEnvelope>, HttpError> {
    let id = parse_id(&raw)?;
    let scan = st.store.scan(id)?;
    Ok(Json(dto::ScanEnvelope { scan: scan.into() }))
}

/// Query of `GET /api/v1/reports/latest`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportQuery {
    format: Option<String>,
}

async fn latest_report(
    State(st): State<Shared>,
    q: Result<Query<ReportQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, HttpError> {
    let Query(q) = q.map_err(|e| HttpError::bad("query", e.body_text()))?;
    let d = Arc::clone(&st.daemon);
    let (title, sections) = tokio::task::spawn_blocking(move || d.build_report(None))
        .await
        .map_err(|e| HttpError::internal(format!("report: {e}")))??;
    let (ctype, body) = match q.format.as_deref().unwrap_or("json") {
        "json" => (
            "application/json",
            serde_json::to_string(&crate::daemon::report::render_json(&title, &sections))
                .unwrap_or_default(),
        ),
        "markdown" => (
            "text/markdown; charset=utf-8",
            crate::daemon::report::render_markdown(&title, &sections),
        ),
        "html" => (
            "text/html; charset=utf-8",
            crate::daemon::report::render_html(&title, &sections),
        ),
        other => {
            return Err(HttpError::bad(
                "format",
                format!("`{other}` (choose from: json, html, markdown)"),
            ));
        }
    };
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    Ok((headers, body).into_response())
}

/// Binds and serves until `shutdown` turns true. Refuses a non-loopback address without
/// tokens.
///
/// # Errors
/// [`ApiError`] naming the address or the config key.
pub async fn serve(
    state: Shared,
    cfg: &ApiConfig,
    addr: SocketAddr,
    base: &Path,
    shutdown: tokio::sync::watch::Receiver<bool>,
    bound: Option<tokio::sync::oneshot::Sender<SocketAddr>>,
) -> Result<(), ApiError> {
    let listener = bind(cfg, addr).await?;
    serve_on(state, cfg, listener, base, shutdown, bound).await
}

/// Binds the API's listener (refusing a non-loopback address without tokens): the daemon
/// binds before it starts anything else, so a taken port is an error at once.
///
/// # Errors
/// [`ApiError::OpenOnNetwork`], [`ApiError::Bind`] naming the address.
pub async fn bind(cfg: &ApiConfig, addr: SocketAddr) -> Result<tokio::net::TcpListener, ApiError> {
    if !addr.ip().is_loopback() && cfg.tokens.is_empty() {
        return Err(ApiError::OpenOnNetwork { addr });
    }
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ApiError::Bind { addr, source })
}

/// Serves the API on a listener from [`bind`] until `shutdown` turns true.
///
/// # Errors
/// A bad TLS setup or a failing listener.
pub async fn serve_on(
    state: Shared,
    cfg: &ApiConfig,
    listener: tokio::net::TcpListener,
    base: &Path,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
    bound: Option<tokio::sync::oneshot::Sender<SocketAddr>>,
) -> Result<(), ApiError> {
    let app = router(state, cfg)?;
    let addr = listener.local_addr().map_err(|source| ApiError::Bind {
        addr: SocketAddr::from(([0, 0, 0, 0], 0)),
        source,
    })?;
    let local = listener
        .local_addr()
        .map_err(|source| ApiError::Bind { addr, source })?;
    if let Some(tx) = bound {
        let _ = tx.send(local);
    }
    let acceptor = match &cfg.tls {
        Some(t) => Some(tls::acceptor(t, base)?),
        None => None,
    };
    let limits = ConnLimits::from_config(cfg)?;
    tracing::info!(
        addr = %local,
        scheme = if acceptor.is_some() { "https" } else { "http" },
        max_connections = limits.max_connections,
        "API listening"
    );
    let permits = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        // A connection slot first: past the limit, new connections wait in the kernel's
        // backlog instead of using file descriptors and memory here.
        let permit = tokio::select! {
            p = Arc::clone(&permits).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = shutdown.changed() => break,
        };
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: wait a moment instead of spinning.
                    tracing::warn!(error = %e, "accepting an API connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let app = app.clone();
        let acceptor = acceptor.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _permit = permit;
            let service = hyper_util::service::TowerToHyperService::new(app);
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout)
                .keep_alive(true);
            let served = match acceptor {
                None => {
                    let conn = http.serve_connection(hyper_util::rt::TokioIo::new(tcp), service);
                    watcher.watch(conn).await
                }
                Some(acceptor) => {
                    // The handshake in the connection's own task, bounded: a slow client
                    // never holds up other connections.
                    let tls = match tokio::time::timeout(
                        limits.header_read_timeout,
                        acceptor.accept(tcp),
                    )
                    .await
                    {
                        Ok(Ok(t)) => t,
                        Ok(Err(e)) => {
                            tracing::debug!(peer = %peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(peer = %peer, "TLS handshake timed out");
                            return;
                        }
                    };
                    let conn = http.serve_connection(hyper_util::rt::TokioIo::new(tls), service);
                    watcher.watch(conn).await
                }
            };
            if let Err(e) = served {
                tracing::debug!(peer = %peer, error = %e, "API connection ended");
            }
        });
    }
    // Requests in flight finish (bounded by the request timeout); idle connections close.
    if tokio::time::timeout(limits.drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("API connections still open at shutdown; closing them");
    }
    Ok(())
}

/// Connection-level limits of the API server.
#[derive(Debug, Clone, Copy)]
struct ConnLimits {
    /// Open connections at most (`api.max_connections`, default 256).
    max_connections: usize,
    /// A client must send a request's headers within this time, also for each further
    /// request on a kept-alive connection, so idle and slowloris connections are closed
    /// (`api.header_read_timeout`, default 10 s). Also bounds the TLS handshake.
    header_read_timeout: Duration,
    /// How long shutdown waits for requests in flight.
    drain: Duration,
}

impl ConnLimits {
    fn from_config(cfg: &ApiConfig) -> Result<ConnLimits, ApiError> {
        let request_timeout = dur(&cfg.request_timeout, Duration::from_secs(30))?;
        Ok(ConnLimits {
            max_connections: cfg.max_connections.unwrap_or(256).max(1),
            header_read_timeout: dur(&cfg.header_read_timeout, Duration::from_secs(10))?,
            drain: request_timeout.saturating_add(Duration::from_secs(5)),
        })
    }
}

mod tls {
    use std::path::Path;
    use std::sync::Arc;

    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use tokio_rustls::TlsAcceptor;

    use super::ApiError;
    use crate::config::TlsConfig;

    pub fn acceptor(cfg: &TlsConfig, base: &Path) -> Result<TlsAcceptor, ApiError> {
        let abs = |p: &Path| {
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            }
        };
        let (cert, key) = (abs(&cfg.cert_file), abs(&cfg.key_file));
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert)
            .and_then(std::iter::Iterator::collect::<Result<Vec<_>, _>>)
            .map_err(|e| ApiError::Tls(format!("cert_file {}: {e}", cert.display())))?;
        if certs.is_empty() {
            return Err(ApiError::Tls(format!(
                "cert_file {}: no certificate in it",
                cert.display()
            )));
        }
        let key = PrivateKeyDer::from_pem_file(&key)
            .map_err(|e| ApiError::Tls(format!("key_file {}: {e}", key.display())))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key))
            .map_err(|e| ApiError::Tls(e.to_string()))?;
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}
