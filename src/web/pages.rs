//! The page handlers: each reads the store (through the API's read-only handle), shapes a
//! small view model and renders its template. Acknowledge and silence write through the
//! daemon's store, as the API's POST endpoints do.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;

use super::WebState;
use super::auth::{self, Visitor};
use super::svg;
use super::trends::{self, Trends};
use crate::daemon::{Daemon, Target};
use crate::model::Severity;
use crate::store::{DriftRecord, ScanOutcome, StoreError, StoreReader};

type Shared = Arc<WebState>;

/// The Content-Security-Policy of every page: only this site's stylesheet and script.
pub const CSP: &str = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// An error page: status and a message in plain words.
#[derive(Debug)]
pub struct WebError {
    pub status: StatusCode,
    pub message: String,
}

impl WebError {
    pub fn internal(message: impl Into<String>) -> WebError {
        WebError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: message.into(),
        }
    }
    pub fn forbidden(message: impl Into<String>) -> WebError {
        WebError {
            status: StatusCode::FORBIDDEN,
            message: message.into(),
        }
    }
    fn bad(message: impl Into<String>) -> WebError {
        WebError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }
    fn not_found(message: impl Into<String>) -> WebError {
        WebError {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
        }
    }
}

impl From<StoreError> for WebError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { what, id, .. } => {
                WebError::not_found(format!("{what} {id} not found"))
            }
            other => {
                tracing::error!(error = %other, "store (web page)");
                WebError::internal("the store failed; see the daemon's log")
            }
        }
    }
}

impl From<super::TemplateError> for WebError {
    fn from(e: super::TemplateError) -> Self {
        tracing::error!(error = %e, "web template");
        WebError::internal(format!("a page template failed: {e}"))
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        // Plain, self-contained HTML: the error page must not depend on a template that
        // may be the thing that failed.
        let title = self.status.canonical_reason().unwrap_or("Error");
        let body = format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{title} · envdrift</title><link rel=\"stylesheet\" href=\"/static/style.css\"></head><body><main class=\"error\"><h1>{title}</h1><p>{}</p><p><a href=\"/\">Back to the overview</a></p></main></body></html>",
            svg::escape(&self.message)
        );
        (self.status, html(body)).into_response()
    }
}

/// An HTML response with the page's security headers.
pub fn html(body: String) -> Response {
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn page<S: Serialize>(
    st: &WebState,
    v: &Visitor,
    name: &str,
    ctx: &S,
) -> Result<Response, WebError> {
    let body = st.templates.render(name, ctx)?;
    let mut resp = html(body);
    if let Some(c) = &v.set_cookie
        && let Ok(hv) = HeaderValue::from_str(c)
    {
        resp.headers_mut().insert(header::SET_COOKIE, hv);
    }
    Ok(resp)
}

/// Runs a blocking store read off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, WebError> + Send + 'static,
) -> Result<T, WebError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| WebError::internal(format!("page task: {e}")))?
}

// ---------------------------------------------------------------------------------------
// Overview

#[derive(Serialize)]
struct TargetRow {
    name: String,
    kind: &'static str,
    href: String,
    /// `in-sync`, `drifted`, `unknown`, `stale`.
    state: &'static str,
    state_label: &'static str,
    state_reason: String,
    open: BTreeMap<&'static str, usize>,
    open_total: usize,
    last_scan_at: Option<String>,
    last_scan_duration: Option<String>,
    last_scan_outcome: Option<&'static str>,
    sparkline: String,
    sources: String,
}

#[derive(Serialize)]
struct Overview {
    title: &'static str,
    active: &'static str,
    visitor: Visitor,
    targets: Vec<TargetRow>,
    severities: Vec<&'static str>,
    totals: BTreeMap<&'static str, usize>,
    days: u32,
}

fn duration_ms(ms: i64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else {
        format!("{} s", svg::fmt_num((ms as f64 / 100.0).round() / 10.0))
    }
}

/// Trends of every target over `days` days, from the store.
pub(crate) fn compute_trends(
    d: &Daemon,
    store: &StoreReader,
    days: u32,
) -> Result<Trends, StoreError> {
    let now = chrono::Utc::now();
    let since = crate::store::fmt_time(trends::window_start(now, days));
    let intervals = store.drift_intervals(&since)?;
    let scans = store.scan_points(&since)?;
    let targets: Vec<(String, &'static str)> = d
        .targets()
        .iter()
        .map(|t| (t.name().to_string(), t.kind().as_str()))
        .collect();
    Ok(trends::compute(&targets, &intervals, &scans, now, days))
}

fn state_of(
    d: &Daemon,
    t: &Target,
    store: &StoreReader,
    open: usize,
) -> Result<
    (
        &'static str,
        &'static str,
        String,
        Option<crate::store::ScanRecord>,
    ),
    StoreError,
> {
    let scans = store.scans(Some(t.name()), 50)?;
    let last = scans
        .iter()
        .find(|s| s.outcome != ScanOutcome::Running)
        .cloned();
    let last_good = scans
        .iter()
        .find(|s| matches!(s.outcome, ScanOutcome::Ok | ScanOutcome::Partial));
    let Some(l) = &last else {
        return Ok(("unknown", "unknown", "not scanned yet".into(), None));
    };
    if l.outcome == ScanOutcome::Failed {
        let why = l
            .error
            .clone()
            .unwrap_or_else(|| "the last scan failed".into());
        return Ok((
            "unknown",
            "unknown",
            format!("last scan failed: {why}"),
            last,
        ));
    }
    let interval = chrono::Duration::from_std(d.interval(t)).unwrap_or(chrono::Duration::MAX);
    let stale_after = interval
        .checked_mul(2)
        .and_then(|x| x.checked_add(&chrono::Duration::seconds(60)))
        .unwrap_or(chrono::Duration::MAX);
    let good_at = last_good
        .and_then(|s| s.finished_at.as_deref())
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok());
    if let Some(at) = good_at
        && chrono::Utc::now().signed_duration_since(at) > stale_after
    {
        return Ok((
            "stale",
            "stale",
            format!(
                "no scan for over twice its interval ({})",
                humantime::format_duration(d.interval(t))
            ),
            last,
        ));
    }
    if open > 0 {
        Ok(("drifted", "drifted", format!("{open} open drifts"), last))
    } else {
        Ok(("in-sync", "in sync", "no open drift".into(), last))
    }
}

fn sources_of(d: &Daemon, t: &Target) -> String {
    match t {
        Target::Environment(n) => d.cfg.environments.get(n).map_or_else(String::new, |e| {
            format!("{} vs {}", e.desired.describe(), e.live.describe())
        }),
        Target::Comparison(n) => d
            .cfg
            .comparisons
            .iter()
            .find(|c| &c.name() == n)
            .map_or_else(String::new, |c| format!("{} vs {}", c.from, c.to)),
    }
}

fn href_of(t: &Target) -> String {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    match t {
        Target::Environment(n) => format!("/environments/{}", enc(n)),
        Target::Comparison(n) => format!("/comparisons/{}", enc(n)),
    }
}

/// `GET /`.
pub async fn overview(State(st): State<Shared>, headers: HeaderMap) -> Result<Response, WebError> {
    let v = match auth::visitor(&st, &headers, "/") {
        Ok(v) => v,
        Err(r) => return Ok(*r),
    };
    let st2 = Arc::clone(&st);
    let ctx = blocking(move || {
        let d = &st2.daemon;
        let store = st2.reader();
        let open = store.open_counts()?;
        let days = 30;
        let tr = compute_trends(d, store, days)?;
        let mut rows = Vec::new();
        let mut totals: BTreeMap<&'static str, usize> =
            Severity::ALL.iter().map(|s| (s.as_str(), 0)).collect();
        for t in d.targets() {
            let name = t.name().to_string();
            let by_sev: BTreeMap<&'static str, usize> = Severity::ALL
                .iter()
                .map(|s| {
                    let n = open
                        .iter()
                        .filter(|c| c.target == name && c.severity == *s)
                        .count();
                    (s.as_str(), n)
                })
                .collect();
            for (k, n) in &by_sev {
                if let Some(x) = totals.get_mut(k) {
                    *x += n;
                }
            }
            let open_total = by_sev.values().sum();
            let (state, label, reason, last) = state_of(d, &t, store, open_total)?;
            let series: Vec<Option<f64>> = tr
                .targets
                .iter()
                .find(|x| x.name == name)
                .map(|x| x.open_per_day.iter().map(|d| Some(d.open as f64)).collect())
                .unwrap_or_default();
            rows.push(TargetRow {
                href: href_of(&t),
                kind: t.kind().as_str(),
                sources: sources_of(d, &t),
                state,
                state_label: label,
                state_reason: reason,
                open: by_sev,
                open_total,
                last_scan_at: last.as_ref().and_then(|s| s.finished_at.clone()),
                last_scan_duration: last.as_ref().and_then(|s| s.duration_ms).map(duration_ms),
                last_scan_outcome: last.as_ref().map(|s| s.outcome.as_str()),
                sparkline: svg::sparkline(
                    &format!("{name}: open drifts per day, last {days} days"),
                    &series,
                    120,
                    28,
                ),
                name,
            });
        }
        Ok((rows, totals, days))
    })
    .await?;
    let (targets, totals, days) = ctx;
    page(
        &st,
        &v,
        "overview.html",
        &Overview {
            title: "Overview",
            active: "overview",
            visitor: v.clone(),
            targets,
            severities: Severity::ALL.iter().map(|s| s.as_str()).collect(),
            totals,
            days,
        },
    )
}

// ---------------------------------------------------------------------------------------
// Environment: open drifts with filters and sorting

#[derive(Serialize, Clone)]
struct DriftRow {
    id: i64,
    severity: &'static str,
    resource: String,
    kind: String,
    namespace: String,
    drift_type: String,
    categories: Vec<String>,
    cause: String,
    changes: usize,
    first_seen: String,
    changed_at: String,
    acked: bool,
    silenced: bool,
}

fn str_at<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

fn row_of(r: &DriftRecord) -> DriftRow {
    let now = crate::store::now_rfc3339();
    DriftRow {
        id: r.id,
        severity: r.severity.as_str(),
        resource: r.resource.clone(),
        kind: str_at(&r.body, "/resource/kind").to_string(),
        namespace: str_at(&r.body, "/resource/namespace").to_string(),
        drift_type: r.drift_type.clone(),
        categories: r.categories.clone(),
        cause: str_at(&r.body, "/cause").to_string(),
        changes: r
            .body
            .get("changes")
            .and_then(Value::as_array)
            .map_or(0, Vec::len),
        first_seen: r.first_seen.clone(),
        changed_at: r.changed_at.clone(),
        acked: r.acked_at.is_some(),
        silenced: r
            .silenced_until
            .as_deref()
            .is_some_and(|u| u > now.as_str()),
    }
}

#[derive(Serialize)]
struct Filter {
    name: &'static str,
    label: &'static str,
    options: Vec<String>,
    selected: String,
}

#[derive(Serialize)]
struct SortLink {
    key: &'static str,
    label: &'static str,
    href: String,
    /// `ascending`, `descending` or `none` (aria-sort).
    aria: &'static str,
}

#[derive(Serialize)]
struct EnvPage {
    title: String,
    active: &'static str,
    visitor: Visitor,
    name: String,
    /// This page without filters.
    self_href: String,
    sources: String,
    state: &'static str,
    state_label: &'static str,
    state_reason: String,
    drifts: Vec<DriftRow>,
    total: usize,
    filters: Vec<Filter>,
    sort: Vec<SortLink>,
    filtered: bool,
}

const FILTERS: &[(&str, &str)] = &[
    ("severity", "Severity (at least)"),
    ("category", "Category"),
    ("kind", "Kind"),
    ("namespace", "Namespace"),
    ("cause", "Cause"),
];

const SORTS: &[(&str, &str)] = &[
    ("severity", "Severity"),
    ("resource", "Resource"),
    ("type", "Type"),
    ("cause", "Cause"),
    ("first_seen", "First seen"),
    ("changed_at", "Changed"),
];

fn query_string(q: &BTreeMap<String, String>) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in q {
        if !v.is_empty() {
            s.append_pair(k, v);
        }
    }
    s.finish()
}

/// `GET /environments/{name}?severity=&category=&kind=&namespace=&cause=&sort=&order=`.
pub async fn environment(
    State(st): State<Shared>,
    UrlPath(name): UrlPath<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    let path = format!("/environments/{name}");
    let v = match auth::visitor(&st, &headers, &path) {
        Ok(v) => v,
        Err(r) => return Ok(*r),
    };
    let target = match st.daemon.target(&name) {
        Some(t @ Target::Environment(_)) => t,
        Some(Target::Comparison(_)) => {
            return Ok((
                StatusCode::SEE_OTHER,
                [(header::LOCATION, href_of(&Target::Comparison(name)))],
            )
                .into_response());
        }
        None => {
            return Err(WebError::not_found(format!(
                "no environment `{name}` in the config (see the overview for the configured ones)"
            )));
        }
    };
    for k in q.keys() {
        if !FILTERS.iter().any(|(f, _)| f == k) && k != "sort" && k != "order" {
            return Err(WebError::bad(format!(
                "unknown query parameter `{k}` (choose from: severity, category, kind, namespace, cause, sort, order)"
            )));
        }
    }
    let get = |k: &str| q.get(k).map(String::as_str).unwrap_or("");
    let min_sev = match get("severity") {
        "" => None,
        s => Some(
            s.parse::<Severity>()
                .map_err(|e| WebError::bad(format!("severity: {e}")))?,
        ),
    };
    let sort = match get("sort") {
        "" => "severity",
        s if SORTS.iter().any(|(k, _)| *k == s) => s,
        s => {
            return Err(WebError::bad(format!(
                "sort: `{s}` (choose from: {})",
                SORTS.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", ")
            )));
        }
    };
    let desc = match get("order") {
        "" => sort == "severity" || sort == "first_seen" || sort == "changed_at",
        "desc" => true,
        "asc" => false,
        o => {
            return Err(WebError::bad(format!(
                "order: `{o}` (choose from: asc, desc)"
            )));
        }
    };
    let st2 = Arc::clone(&st);
    let t2 = target.clone();
    let (all, state) = blocking(move || {
        let recs = st2.reader().open_drifts(t2.name())?;
        let n = recs.len();
        let state = state_of(&st2.daemon, &t2, st2.reader(), n)?;
        Ok((recs.iter().map(row_of).collect::<Vec<_>>(), state))
    })
    .await?;
    let options = |f: &dyn Fn(&DriftRow) -> Vec<String>| -> Vec<String> {
        all.iter()
            .flat_map(f)
            .filter(|s| !s.is_empty())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    };
    let filters = vec![
        Filter {
            name: "severity",
            label: FILTERS[0].1,
            options: Severity::ALL
                .iter()
                .map(|s| s.as_str().to_string())
                .collect(),
            selected: get("severity").to_string(),
        },
        Filter {
            name: "category",
            label: FILTERS[1].1,
            options: options(&|r| r.categories.clone()),
            selected: get("category").to_string(),
        },
        Filter {
            name: "kind",
            label: FILTERS[2].1,
            options: options(&|r| vec![r.kind.clone()]),
            selected: get("kind").to_string(),
        },
        Filter {
            name: "namespace",
            label: FILTERS[3].1,
            options: options(&|r| vec![r.namespace.clone()]),
            selected: get("namespace").to_string(),
        },
        Filter {
            name: "cause",
            label: FILTERS[4].1,
            options: options(&|r| vec![r.cause.clone()]),
            selected: get("cause").to_string(),
        },
    ];
    let total = all.len();
    let mut rows: Vec<DriftRow> = all
        .into_iter()
        .filter(|r| {
            min_sev.is_none_or(|m| r.severity.parse::<Severity>().is_ok_and(|s| s >= m))
                && (get("category").is_empty() || r.categories.iter().any(|c| c == get("category")))
                && (get("kind").is_empty() || r.kind == get("kind"))
                && (get("namespace").is_empty() || r.namespace == get("namespace"))
                && (get("cause").is_empty() || r.cause == get("cause"))
        })
        .collect();
    let rank = |r: &DriftRow| r.severity.parse::<Severity>().map_or(0, |s| s as i64);
    rows.sort_by(|a, b| {
        let o = match sort {
            "resource" => a.resource.cmp(&b.resource),
            "type" => a.drift_type.cmp(&b.drift_type),
            "cause" => a.cause.cmp(&b.cause),
            "first_seen" => a.first_seen.cmp(&b.first_seen),
            "changed_at" => a.changed_at.cmp(&b.changed_at),
            _ => rank(a).cmp(&rank(b)),
        };
        let o = if desc { o.reverse() } else { o };
        o.then_with(|| a.resource.cmp(&b.resource))
            .then(a.id.cmp(&b.id))
    });
    let base: BTreeMap<String, String> = q
        .iter()
        .filter(|(k, _)| *k != "sort" && *k != "order")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let sort_links = SORTS
        .iter()
        .map(|(k, label)| {
            let mut qq = base.clone();
            qq.insert("sort".into(), (*k).to_string());
            let next_desc = if *k == sort { !desc } else { *k == "severity" };
            qq.insert(
                "order".into(),
                if next_desc { "desc" } else { "asc" }.into(),
            );
            SortLink {
                key: k,
                label,
                href: format!("{}?{}", href_of(&target), query_string(&qq)),
                aria: if *k == sort {
                    if desc { "descending" } else { "ascending" }
                } else {
                    "none"
                },
            }
        })
        .collect();
    let (state, state_label, state_reason, _) = state;
    let filtered = FILTERS.iter().any(|(f, _)| !get(f).is_empty());
    page(
        &st,
        &v,
        "environment.html",
        &EnvPage {
            title: format!("Environment {name}"),
            active: "overview",
            visitor: v.clone(),
            sources: sources_of(&st.daemon, &target),
            self_href: href_of(&target),
            name,
            state,
            state_label,
            state_reason,
            drifts: rows,
            total,
            filters,
            sort: sort_links,
            filtered,
        },
    )
}

// ---------------------------------------------------------------------------------------
// Drift

#[derive(Serialize)]
struct ChangeView {
    path: String,
    field: String,
    op: String,
    desired: String,
    live: String,
    desired_absent: bool,
    live_absent: bool,
    category: String,
    severity: String,
    cause: String,
    manager: String,
    operation: String,
    time: String,
    note: String,
    finding: String,
    expected: bool,
}

fn pretty(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => serde_json::to_string_pretty(other).unwrap_or_default(),
    }
}

fn change_view(c: &Value) -> ChangeView {
    let s = |k: &str| match c.get(k) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(v) => v.to_string(),
    };
    let absent = |k: &str| c.get(k).is_none_or(Value::is_null);
    ChangeView {
        path: s("path"),
        field: s("field"),
        op: s("op"),
        desired: pretty(c.get("desired")),
        live: pretty(c.get("live")),
        desired_absent: absent("desired"),
        live_absent: absent("live"),
        category: s("category"),
        severity: s("severity"),
        cause: s("cause"),
        manager: s("manager"),
        operation: s("operation"),
        time: s("time"),
        note: s("note"),
        finding: s("finding"),
        expected: c.get("expected").and_then(Value::as_bool).unwrap_or(false),
    }
}

#[derive(Serialize)]
struct Fix {
    id: &'static str,
    label: String,
    text: String,
}

#[derive(Serialize)]
struct EventView {
    at: String,
    event: &'static str,
    detail: String,
    severity: String,
}

#[derive(Serialize)]
struct DriftPage {
    title: String,
    active: &'static str,
    visitor: Visitor,
    id: i64,
    target: String,
    target_href: String,
    /// The names of the two sides (`desired`/`live`, or the comparison's environments).
    left: String,
    right: String,
    resource: String,
    drift_type: String,
    severity: &'static str,
    status: &'static str,
    categories: Vec<String>,
    cause: String,
    first_seen: String,
    last_seen: String,
    changed_at: String,
    resolved_at: Option<String>,
    acked_at: Option<String>,
    acked_by: Option<String>,
    silenced_until: Option<String>,
    silence_reason: Option<String>,
    silenced_now: bool,
    origin: String,
    changes: Vec<ChangeView>,
    fixes: Vec<Fix>,
    patch_verified: Option<bool>,
    patch_error: String,
    note: String,
    history: Vec<EventView>,
    silence_choices: Vec<(&'static str, &'static str)>,
    flash: String,
}

const SILENCE_CHOICES: &[(&str, &str)] = &[
    ("1h", "1 hour"),
    ("8h", "8 hours"),
    ("24h", "1 day"),
    ("7d", "1 week"),
    ("30d", "30 days"),
];

/// `GET /drifts/{id}`.
pub async fn drift(
    State(st): State<Shared>,
    UrlPath(raw): UrlPath<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    let v = match auth::visitor(&st, &headers, &format!("/drifts/{raw}")) {
        Ok(v) => v,
        Err(r) => return Ok(*r),
    };
    let id = parse_id(&raw)?;
    let st2 = Arc::clone(&st);
    let (d, history) = blocking(move || Ok(st2.reader().drift(id)?)).await?;
    let b = &d.body;
    let target = st.daemon.target(&d.target);
    let (left, right) = match &target {
        Some(Target::Comparison(n)) => st
            .daemon
            .cfg
            .comparisons
            .iter()
            .find(|c| &c.name() == n)
            .map_or(("from".into(), "to".into()), |c| {
                (c.from.clone(), c.to.clone())
            }),
        _ => ("Desired (Git)".to_string(), "Live (cluster)".to_string()),
    };
    let mut fixes = Vec::new();
    if let Some(k) = b
        .get("kubectl")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    {
        fixes.push(Fix {
            id: "fix-kubectl",
            label: "kubectl command (makes live match desired)".into(),
            text: k.to_string(),
        });
    }
    if let Some(p) = b.get("patch").filter(|p| !p.is_null()) {
        fixes.push(Fix {
            id: "fix-patch",
            label: "RFC 6902 JSON Patch".into(),
            text: serde_json::to_string_pretty(p).unwrap_or_default(),
        });
    }
    if let Some(a) = b.get("adopt").filter(|a| !a.is_null()) {
        let file = str_at(a, "/file");
        if let Some(diff) = a
            .get("diff")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
        {
            fixes.push(Fix {
                id: "fix-adopt",
                label: if file.is_empty() {
                    "Adopt into Git (diff)".into()
                } else {
                    format!("Adopt into Git: diff of {file}")
                },
                text: diff.to_string(),
            });
        }
    }
    if let Some(k) = b
        .get("kubectl_reverse")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    {
        fixes.push(Fix {
            id: "fix-kubectl-reverse",
            label: "kubectl command (the other direction)".into(),
            text: k.to_string(),
        });
    }
    let origin = match b.get("origin") {
        Some(o) if o.get("file").is_some() => {
            let line = o.get("line").and_then(Value::as_u64);
            format!(
                "{}{}",
                str_at(o, "/file"),
                line.map(|l| format!(":{l}")).unwrap_or_default()
            )
        }
        _ => String::new(),
    };
    let now = crate::store::now_rfc3339();
    let flash = match q.get("done").map(String::as_str) {
        Some("ack") => "Acknowledged.".to_string(),
        Some("silence") => "Silenced.".to_string(),
        _ => String::new(),
    };
    let ctx = DriftPage {
        title: format!("Drift {id}: {}", d.resource),
        active: "overview",
        visitor: v.clone(),
        id,
        target_href: target.as_ref().map(href_of).unwrap_or_else(|| "/".into()),
        target: d.target.clone(),
        left,
        right,
        resource: d.resource.clone(),
        drift_type: d.drift_type.clone(),
        severity: d.severity.as_str(),
        status: d.status.as_str(),
        categories: d.categories.clone(),
        cause: str_at(b, "/cause").to_string(),
        first_seen: d.first_seen.clone(),
        last_seen: d.last_seen.clone(),
        changed_at: d.changed_at.clone(),
        resolved_at: d.resolved_at.clone(),
        acked_at: d.acked_at.clone(),
        acked_by: d.acked_by.clone(),
        silenced_now: d
            .silenced_until
            .as_deref()
            .is_some_and(|u| u > now.as_str()),
        silenced_until: d.silenced_until.clone(),
        silence_reason: d.silence_reason.clone(),
        origin,
        changes: b
            .get("changes")
            .and_then(Value::as_array)
            .map(|a| a.iter().map(change_view).collect())
            .unwrap_or_default(),
        fixes,
        patch_verified: b.get("patch_verified").and_then(Value::as_bool),
        patch_error: str_at(b, "/patch_error").to_string(),
        note: str_at(b, "/note").to_string(),
        history: history
            .into_iter()
            .map(|e| EventView {
                at: e.at,
                event: e.event.as_str(),
                detail: e.detail.unwrap_or_default(),
                severity: e
                    .severity
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default(),
            })
            .collect(),
        silence_choices: SILENCE_CHOICES.to_vec(),
        flash,
    };
    page(&st, &v, "drift.html", &ctx)
}

fn parse_id(raw: &str) -> Result<i64, WebError> {
    raw.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| {
        WebError::not_found(format!("`{raw}` is not a drift id (a positive integer)"))
    })
}

/// `POST /drifts/{id}/ack`: `csrf`, `note`.
pub async fn ack(
    State(st): State<Shared>,
    UrlPath(raw): UrlPath<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, WebError> {
    let v = auth::visitor(&st, &headers, "/").map_err(|_| WebError::forbidden("log in first"))?;
    let f = auth::form(&body);
    auth::check_post(&st, &headers, &v, f.get("csrf").map(String::as_str), true)?;
    let id = parse_id(&raw)?;
    let note = f.get("note").map_or("", |s| s.trim());
    let by = if note.is_empty() {
        v.name.clone()
    } else {
        format!("{}: {}", v.name, super::templates::shorten(note, 500))
    };
    let st2 = Arc::clone(&st);
    let name = v.name.clone();
    blocking(move || Ok(st2.daemon.acknowledge(id, &by, &name).map(|_| ())?)).await?;
    tracing::info!(drift = id, by = %v.name, "drift acknowledged (web page)");
    Ok((
        StatusCode::SEE_OTHER,
        [(header::LOCATION, format!("/drifts/{id}?done=ack"))],
    )
        .into_response())
}

/// `POST /drifts/{id}/silence`: `csrf`, `for` (one of the choices), `reason`.
pub async fn silence(
    State(st): State<Shared>,
    UrlPath(raw): UrlPath<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, WebError> {
    let v = auth::visitor(&st, &headers, "/").map_err(|_| WebError::forbidden("log in first"))?;
    let f = auth::form(&body);
    auth::check_post(&st, &headers, &v, f.get("csrf").map(String::as_str), true)?;
    let id = parse_id(&raw)?;
    let choice = f.get("for").map_or("", String::as_str);
    if !SILENCE_CHOICES.iter().any(|(k, _)| *k == choice) {
        return Err(WebError::bad(format!(
            "for: `{choice}` (choose from: {})",
            SILENCE_CHOICES
                .iter()
                .map(|(k, _)| *k)
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let dur = crate::config::parse_duration(choice).map_err(WebError::bad)?;
    let until = chrono::Utc::now()
        + chrono::Duration::from_std(dur).map_err(|e| WebError::bad(e.to_string()))?;
    let reason = f.get("reason").map_or("", |s| s.trim());
    let reason = format!(
        "{} (by {})",
        if reason.is_empty() {
            "silenced"
        } else {
            reason
        },
        v.name
    );
    let reason = super::templates::shorten(&reason, 500);
    let st2 = Arc::clone(&st);
    let name = v.name.clone();
    blocking(move || {
        Ok(st2
            .daemon
            .silence(id, &crate::store::fmt_time(until), &reason, &name)
            .map(|_| ())?)
    })
    .await?;
    tracing::info!(drift = id, by = %v.name, until = %crate::store::fmt_time(until), "drift silenced (web page)");
    Ok((
        StatusCode::SEE_OTHER,
        [(header::LOCATION, format!("/drifts/{id}?done=silence"))],
    )
        .into_response())
}

// ---------------------------------------------------------------------------------------
// Comparison matrix

#[derive(Serialize)]
struct MatrixRow {
    id: i64,
    resource: String,
    severity: &'static str,
    drift_type: String,
    changes: Vec<ChangeView>,
}

#[derive(Serialize)]
struct RuleView {
    kind: String,
    paths: String,
    reason: String,
}

#[derive(Serialize)]
struct ComparisonPage {
    title: String,
    active: &'static str,
    visitor: Visitor,
    name: String,
    from: String,
    to: String,
    state: &'static str,
    state_label: &'static str,
    state_reason: String,
    rows: Vec<MatrixRow>,
    rules: Vec<RuleView>,
    builtin_rules: bool,
    /// The latest scan's resources that are not equal (one page of them).
    matrix: Vec<ResourceView>,
    /// `3 differ, 2 expected, 1 only in staging`.
    matrix_counts: String,
    matrix_total: i64,
    page: usize,
    pages: usize,
}

/// Resources per page of the comparison matrix.
pub const MATRIX_PAGE: usize = 200;

/// One resource of the comparison matrix.
#[derive(Serialize)]
struct ResourceView {
    resource: String,
    /// The open drift of the resource, when there is one.
    id: Option<i64>,
    state: String,
    /// `present` / `absent` per side.
    from: &'static str,
    to: &'static str,
    label: String,
    rules: String,
    expected: bool,
}

fn resource_view(
    m: crate::store::MatrixEntry,
    ids: &HashMap<String, i64>,
    from: &str,
    to: &str,
) -> ResourceView {
    let s = |n: i64| if n == 1 { "" } else { "s" };
    let (from_side, to_side, label) = match m.state.as_str() {
        "only-in-from" => ("present", "absent", format!("only in {from}")),
        "only-in-to" => ("absent", "present", format!("only in {to}")),
        "expected" => (
            "present",
            "present",
            format!("expected: {} field{}", m.differing, s(m.differing)),
        ),
        _ if m.expected > 0 => (
            "present",
            "present",
            format!(
                "differs: {} field{} ({} expected)",
                m.differing,
                s(m.differing),
                m.expected
            ),
        ),
        _ => (
            "present",
            "present",
            format!("differs: {} field{}", m.differing, s(m.differing)),
        ),
    };
    ResourceView {
        id: ids.get(&m.resource).copied(),
        expected: m.state == "expected",
        resource: m.resource,
        state: m.state,
        from: from_side,
        to: to_side,
        label,
        rules: m.rules,
    }
}

/// `GET /comparisons/{name}`.
pub async fn comparison(
    State(st): State<Shared>,
    UrlPath(name): UrlPath<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    let v = match auth::visitor(&st, &headers, &format!("/comparisons/{name}")) {
        Ok(v) => v,
        Err(r) => return Ok(*r),
    };
    let Some(target @ Target::Comparison(_)) = st.daemon.target(&name) else {
        return Err(WebError::not_found(format!(
            "no comparison `{name}` in the config (see the overview for the configured ones)"
        )));
    };
    let (from, to) = st
        .daemon
        .cfg
        .comparisons
        .iter()
        .find(|c| c.name() == name)
        .map_or((String::new(), String::new()), |c| {
            (c.from.clone(), c.to.clone())
        });
    let page_no =
        match q.get("page") {
            None => 1,
            Some(p) => p.parse::<usize>().ok().filter(|p| *p >= 1).ok_or_else(|| {
                WebError::bad(format!("page: `{p}` is not a page number (1, 2, …)"))
            })?,
        };
    let st2 = Arc::clone(&st);
    let t2 = target.clone();
    let offset = (page_no - 1).saturating_mul(MATRIX_PAGE);
    let (recs, state, matrix, counts) = blocking(move || {
        let recs = st2.reader().open_drifts(t2.name())?;
        let n = recs.len();
        let matrix = st2.reader().matrix(t2.name(), offset, MATRIX_PAGE)?;
        let counts = st2.reader().matrix_counts(t2.name())?;
        Ok((
            recs,
            state_of(&st2.daemon, &t2, st2.reader(), n)?,
            matrix,
            counts,
        ))
    })
    .await?;
    let ids: HashMap<String, i64> = recs.iter().map(|r| (r.resource.clone(), r.id)).collect();
    let matrix_total: i64 = counts.iter().map(|(_, n)| *n).sum();
    let pages = usize::try_from(matrix_total)
        .unwrap_or(usize::MAX)
        .div_ceil(MATRIX_PAGE)
        .max(1);
    let matrix_counts = counts
        .iter()
        .map(|(state, n)| match state.as_str() {
            "only-in-from" => format!("{n} only in {from}"),
            "only-in-to" => format!("{n} only in {to}"),
            "expected" => format!("{n} fully expected"),
            _ => format!("{n} differ"),
        })
        .collect::<Vec<_>>()
        .join(", ");
    let matrix: Vec<ResourceView> = matrix
        .into_iter()
        .map(|m| resource_view(m, &ids, &from, &to))
        .collect();
    let mut rows: Vec<MatrixRow> = recs
        .iter()
        .map(|r| MatrixRow {
            id: r.id,
            resource: r.resource.clone(),
            severity: r.severity.as_str(),
            drift_type: r.drift_type.clone(),
            changes: r
                .body
                .get("changes")
                .and_then(Value::as_array)
                .map(|a| a.iter().map(change_view).collect())
                .unwrap_or_default(),
        })
        .collect();
    rows.sort_by(|a, b| a.resource.cmp(&b.resource).then(a.id.cmp(&b.id)));
    let exp = &st.daemon.cfg.compare.expected;
    let rules = exp
        .rules
        .iter()
        .filter_map(|r| serde_json::to_value(r).ok())
        .map(|r| RuleView {
            kind: r
                .get("kind")
                .and_then(Value::as_str)
                .unwrap_or("any kind")
                .to_string(),
            paths: r
                .get("paths")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default(),
            reason: r
                .get("reason")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        })
        .collect();
    let (state, state_label, state_reason, _) = state;
    page(
        &st,
        &v,
        "comparison.html",
        &ComparisonPage {
            title: format!("Comparison {name}"),
            active: "overview",
            visitor: v.clone(),
            name,
            from,
            to,
            state,
            state_label,
            state_reason,
            rows,
            rules,
            builtin_rules: exp.defaults,
            matrix,
            matrix_counts,
            matrix_total,
            page: page_no,
            pages,
        },
    )
}

// ---------------------------------------------------------------------------------------
// Trends

#[derive(Serialize)]
struct TrendRow {
    name: String,
    kind: &'static str,
    mttr: String,
    in_sync: String,
    opened: usize,
    opened_last_7d: usize,
    resolved: usize,
    open_now: usize,
}

#[derive(Serialize)]
struct TrendsPage {
    title: &'static str,
    active: &'static str,
    visitor: Visitor,
    days: u32,
    day_choices: Vec<u32>,
    open_chart: String,
    weekly_chart: String,
    sync_chart: String,
    rows: Vec<TrendRow>,
}

/// The `days` query parameter (default 30, 1 to [`trends::MAX_DAYS`]).
pub(crate) fn parse_days(q: &HashMap<String, String>) -> Result<u32, String> {
    match q.get("days").map(String::as_str) {
        None | Some("") => Ok(30),
        Some(s) => s
            .parse::<u32>()
            .ok()
            .filter(|d| (1..=trends::MAX_DAYS).contains(d))
            .ok_or_else(|| format!("days: `{s}` (a number from 1 to {})", trends::MAX_DAYS)),
    }
}

/// `GET /trends?days=N`.
pub async fn trends_page(
    State(st): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    let v = match auth::visitor(&st, &headers, "/trends") {
        Ok(v) => v,
        Err(r) => return Ok(*r),
    };
    let days = parse_days(&q).map_err(WebError::bad)?;
    let st2 = Arc::clone(&st);
    let tr = blocking(move || Ok(compute_trends(&st2.daemon, st2.reader(), days)?)).await?;
    let day_labels: Vec<String> = tr
        .targets
        .first()
        .map(|t| {
            t.open_per_day
                .iter()
                .map(|d| d.day.get(5..).unwrap_or(&d.day).to_string())
                .collect()
        })
        .unwrap_or_default();
    let week_labels: Vec<String> = tr
        .targets
        .first()
        .map(|t| t.opened_per_week.iter().map(|w| w.week.clone()).collect())
        .unwrap_or_default();
    let open_series: Vec<svg::Series> = tr
        .targets
        .iter()
        .map(|t| svg::Series {
            name: t.name.clone(),
            values: t.open_per_day.iter().map(|d| Some(d.open as f64)).collect(),
        })
        .collect();
    let week_series: Vec<svg::Series> = tr
        .targets
        .iter()
        .map(|t| svg::Series {
            name: t.name.clone(),
            values: t
                .opened_per_week
                .iter()
                .map(|w| Some(w.opened as f64))
                .collect(),
        })
        .collect();
    let sync_series = vec![svg::Series {
        name: "in sync, %".into(),
        values: tr
            .targets
            .iter()
            .map(|t| t.in_sync_share.map(|s| (s * 1000.0).round() / 10.0))
            .collect(),
    }];
    let names: Vec<String> = tr.targets.iter().map(|t| t.name.clone()).collect();
    let rows = tr
        .targets
        .iter()
        .map(|t| TrendRow {
            name: t.name.clone(),
            kind: t.kind,
            mttr: t
                .mttr_seconds
                .map_or_else(|| "—".into(), trends::human_seconds),
            in_sync: t.in_sync_share.map_or_else(
                || "—".into(),
                |s| format!("{} %", svg::fmt_num((s * 1000.0).round() / 10.0)),
            ),
            opened: t.opened,
            opened_last_7d: t.opened_last_7d,
            resolved: t.resolved,
            open_now: t.open_per_day.last().map_or(0, |d| d.open),
        })
        .collect();
    page(
        &st,
        &v,
        "trends.html",
        &TrendsPage {
            title: "Trends",
            active: "trends",
            visitor: v.clone(),
            days: tr.days,
            day_choices: vec![7, 30, 90],
            open_chart: svg::line_chart(
                &format!("Open drifts at the end of each day, last {} days", tr.days),
                &day_labels,
                &open_series,
                720,
                240,
            ),
            weekly_chart: svg::bar_chart(
                "Drifts opened per ISO week",
                &week_labels,
                &week_series,
                720,
                220,
            ),
            sync_chart: svg::bar_chart(
                "Share of time in sync, percent",
                &names,
                &sync_series,
                720,
                200,
            ),
            rows,
        },
    )
}

/// `GET /static/{file}`: the stylesheet and the copy-button script.
pub async fn static_file(State(st): State<Shared>, UrlPath(file): UrlPath<String>) -> Response {
    match st.templates.static_file(&file) {
        Some((ctype, text)) => {
            let mut resp = text.to_string().into_response();
            let h = resp.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
            h.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=300"),
            );
            h.insert(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            );
            resp
        }
        None => WebError::not_found(format!("no static file `{file}`")).into_response(),
    }
}
