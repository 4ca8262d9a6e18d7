//! `GET /api/v1/compare?from=SRC&to=SRC`: a comparison on demand, served from cache when
//! nothing changed.
//!
//! `SRC` is `git:ENV` (the environment's desired side), `live:ENV` or `ENV` (its live side).
//! `git:X` → `live:Y` is a desired-vs-live diff; any other pair compares two environments
//! (symmetric, with `compare.mapping` and expected divergences).
//!
//! Three caches, each single-flight (concurrent identical requests wait for the one
//! computation instead of each computing):
//! - **snapshots** per environment side, read at most once per `api.compare_max_age`
//!   (default 30 s), with a content hash over their objects and input problems;
//! - **outcomes** keyed by both sides' content hashes, the mode, the side names and the
//!   compiled config: a re-read that found the same content reuses the comparison;
//! - **bodies**: the rendered response per outcome and query (filters, format).
//!
//! At most `api.compare_concurrency` computations (reads and comparisons) run at once; the
//! request timeout bounds the wait. A computation whose request ends (timeout, client gone)
//! stops, and the next waiter starts it again.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::sync::{OnceCell, Semaphore};

use super::{HttpError, Shared, check_target, parse_category, parse_severity};
use crate::config::Compiled;
use crate::daemon::{Daemon, Target};
use crate::model::DriftType;
use crate::report::{Mode, Report};
use crate::run::{self, Input, Job, Outcome, Src};
use crate::source::{self, Ctx, Loaded};

/// Outcomes and rendered bodies kept (the most recent ones).
const MAX_OUTCOMES: usize = 16;
const MAX_BODIES: usize = 64;

/// A snapshot read for the compare endpoint, with its content hash.
#[derive(Clone)]
struct Snap {
    loaded: Arc<Loaded>,
    hash: String,
}

/// One read of one side: created when the previous one expired; filled once.
struct SnapCell {
    created: Instant,
    cell: OnceCell<Snap>,
}

/// A small map that forgets its oldest entries.
struct Bounded<V> {
    max: usize,
    map: HashMap<String, V>,
    order: VecDeque<String>,
}

impl<V: Clone> Bounded<V> {
    fn new(max: usize) -> Self {
        Bounded {
            max,
            map: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    fn get_or_insert_with(&mut self, key: &str, make: impl FnOnce() -> V) -> V {
        if let Some(v) = self.map.get(key) {
            return v.clone();
        }
        let v = make();
        self.map.insert(key.to_string(), v.clone());
        self.order.push_back(key.to_string());
        while self.order.len() > self.max {
            if let Some(old) = self.order.pop_front() {
                self.map.remove(&old);
            }
        }
        v
    }
}

type OutcomeCell = Arc<(Arc<Compiled>, OnceCell<Arc<Outcome>>)>;

/// The compare endpoint's caches and concurrency limit (see the module doc).
pub struct CompareCache {
    max_age: Duration,
    permits: Semaphore,
    snaps: Mutex<HashMap<String, Arc<SnapCell>>>,
    outcomes: Mutex<Bounded<OutcomeCell>>,
    bodies: Mutex<Bounded<Arc<OnceCell<Bytes>>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A hash of everything of a read side that the comparison depends on: its objects (key
/// and value) and its input problems, unknown scopes and source.
fn content_hash(l: &Loaded) -> String {
    let mut h = Sha256::new();
    for (k, o) in &l.snapshot.objects {
        h.update(k.to_string().as_bytes());
        h.update([0]);
        h.update(o.value.to_string().as_bytes());
        h.update([0]);
    }
    let s = &l.snapshot;
    h.update(
        format!(
            "{:?}|{:?}|{:?}|{:?}",
            s.errors, s.skipped, s.unknown, s.source
        )
        .as_bytes(),
    );
    h.update(l.objects.to_le_bytes());
    let d = h.finalize();
    d[..16].iter().map(|b| format!("{b:02x}")).collect()
}

impl CompareCache {
    pub fn new(max_age: Duration, concurrency: usize) -> Self {
        CompareCache {
            max_age,
            permits: Semaphore::new(concurrency),
            snaps: Mutex::new(HashMap::new()),
            outcomes: Mutex::new(Bounded::new(MAX_OUTCOMES)),
            bodies: Mutex::new(Bounded::new(MAX_BODIES)),
        }
    }
}

/// One side, read at most once per `max_age` however many requests ask. The read runs in
/// its own task: a request that ends meanwhile does not lose it for the others (reads are
/// not cancelled; comparisons are).
async fn snap(st: &Shared, env: &str, side: SideKind) -> Result<Snap, String> {
    let cache = &st.compare;
    let key = format!("{env}:{}", side.as_str());
    let cell = {
        let mut snaps = lock(&cache.snaps);
        match snaps.get(&key) {
            Some(c) if c.created.elapsed() <= cache.max_age => Arc::clone(c),
            _ => {
                let c = Arc::new(SnapCell {
                    created: Instant::now(),
                    cell: OnceCell::new(),
                });
                snaps.insert(key, Arc::clone(&c));
                c
            }
        }
    };
    if let Some(s) = cell.cell.get() {
        return Ok(s.clone());
    }
    let (st, env) = (Arc::clone(st), env.to_string());
    tokio::spawn(async move {
        cell.cell
            .get_or_try_init(|| async {
                let _permit = st
                    .compare
                    .permits
                    .acquire()
                    .await
                    .map_err(|_| "shutting down".to_string())?;
                let d = Arc::clone(&st.daemon);
                tokio::task::spawn_blocking(move || read_side(&d, &env, side))
                    .await
                    .map_err(|e| format!("reading the source: {e}"))?
            })
            .await
            .cloned()
    })
    .await
    .map_err(|e| format!("reading the source: {e}"))?
}

/// Reads one side of an environment whole.
fn read_side(d: &Daemon, env: &str, side: SideKind) -> Result<Snap, String> {
    let Some(e) = d.cfg.environments.get(env) else {
        return Err(format!("unknown environment `{env}`"));
    };
    let (cfg_spec, label) = match side {
        SideKind::Git => (&e.desired, format!("git:{env}")),
        SideKind::Live => (&e.live, env.to_string()),
    };
    let data_dir = d.cfg.data_dir_in(&d.base);
    let spec = cfg_spec
        .spec(&d.base, &data_dir, &label)
        .map_err(|e| e.to_string())?;
    let ctx = Ctx {
        side: &label,
        default_namespace: &d.compiled.default_namespace,
        cluster_scoped_kinds: &d.compiled.cluster_scoped_kinds,
        caches: None,
        on_file: &|_| {},
    };
    let loaded = source::open(&spec, &ctx).map_err(|e| e.to_string())?;
    let hash = content_hash(&loaded);
    Ok(Snap {
        loaded: Arc::new(loaded),
        hash,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SideKind {
    Git,
    Live,
}

impl SideKind {
    fn as_str(self) -> &'static str {
        match self {
            SideKind::Git => "git",
            SideKind::Live => "live",
        }
    }
}

/// Query of the compare endpoint.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompareQuery {
    from: Option<String>,
    to: Option<String>,
    namespace: Option<String>,
    kind: Option<String>,
    name: Option<String>,
    severity: Option<String>,
    category: Option<String>,
    format: Option<String>,
}

fn parse_src(d: &Daemon, raw: &str, param: &'static str) -> Result<(String, SideKind), HttpError> {
    let (env, side) = if let Some(e) = raw.strip_prefix("git:") {
        (e, SideKind::Git)
    } else if let Some(e) = raw.strip_prefix("live:") {
        (e, SideKind::Live)
    } else {
        (raw, SideKind::Live)
    };
    match check_target(d, env, param)? {
        Target::Environment(_) => Ok((env.to_string(), side)),
        Target::Comparison(_) => Err(HttpError::bad(
            param,
            format!("`{env}` is a comparison, not an environment"),
        )),
    }
}

pub(crate) async fn handler(
    State(st): State<Shared>,
    q: Result<Query<CompareQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, HttpError> {
    let Query(q) = q.map_err(|e| HttpError::bad("query", e.body_text()))?;
    let d = Arc::clone(&st.daemon);
    let from_raw = q
        .from
        .clone()
        .ok_or_else(|| HttpError::bad("from", "`from` is required (git:ENV, live:ENV or ENV)"))?;
    let to_raw =
        q.to.clone()
            .ok_or_else(|| HttpError::bad("to", "`to` is required (git:ENV, live:ENV or ENV)"))?;
    let from = parse_src(&d, &from_raw, "from")?;
    let to = parse_src(&d, &to_raw, "to")?;
    let min_sev = q.severity.as_deref().map(parse_severity).transpose()?;
    let category = q.category.as_deref().map(parse_category).transpose()?;
    let format = q.format.clone().unwrap_or_else(|| "json".into());
    if !matches!(format.as_str(), "json" | "markdown" | "patch") {
        return Err(HttpError::bad(
            "format",
            format!("`{format}` (choose from: json, markdown, patch)"),
        ));
    }
    let cache = &st.compare;
    let left = snap(&st, &from.0, from.1)
        .await
        .map_err(|e| HttpError::bad("from", e))?;
    let right = snap(&st, &to.0, to.1)
        .await
        .map_err(|e| HttpError::bad("to", e))?;
    let mode = if from.1 == SideKind::Git && to.1 == SideKind::Live {
        Mode::DesiredVsLive
    } else {
        Mode::EnvVsEnv
    };
    let outcome_key = format!(
        "{mode:?}|{from_raw}|{to_raw}|{}|{}|{:p}",
        left.hash,
        right.hash,
        Arc::as_ptr(&d.compiled)
    );
    let cell = lock(&cache.outcomes).get_or_insert_with(&outcome_key, || {
        Arc::new((Arc::clone(&d.compiled), OnceCell::new()))
    });
    let outcome = cell
        .1
        .get_or_try_init(|| compute(&st, left, right, mode, &from_raw, &to_raw))
        .await?
        .clone();
    let query = Filters {
        namespace: q.namespace.clone(),
        kind: q.kind.clone(),
        name: q.name.clone(),
        min_sev,
        category,
    };
    let body_key = format!("{outcome_key}|{query:?}|{format}");
    let body_cell = lock(&cache.bodies).get_or_insert_with(&body_key, || Arc::new(OnceCell::new()));
    let body = body_cell
        .get_or_try_init(|| async {
            let outcome = Arc::clone(&outcome);
            tokio::task::spawn_blocking(move || Bytes::from(render(&outcome, &query, &format)))
                .await
                .map_err(|e| HttpError::internal(format!("rendering: {e}")))
        })
        .await?
        .clone();
    let ctype = match q.format.as_deref().unwrap_or("json") {
        "markdown" => "text/markdown; charset=utf-8",
        "patch" => "text/plain; charset=utf-8",
        _ => "application/json",
    };
    let mut resp = body.into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    Ok(resp)
}

/// Reads the request's drifts through.
#[derive(Debug)]
struct Filters {
    namespace: Option<String>,
    kind: Option<String>,
    name: Option<String>,
    min_sev: Option<crate::model::Severity>,
    category: Option<String>,
}

impl Filters {
    fn keeps(&self, dr: &crate::model::Drift) -> bool {
        self.namespace
            .as_deref()
            .is_none_or(|ns| dr.resource.namespace.as_deref() == Some(ns))
            && self
                .kind
                .as_deref()
                .is_none_or(|k| dr.resource.kind.eq_ignore_ascii_case(k))
            && self.name.as_deref().is_none_or(|n| dr.resource.name == n)
            && self.min_sev.is_none_or(|s| dr.severity >= s)
            && self.category.as_deref().is_none_or(|c| {
                dr.changes.iter().any(|ch| ch.category.as_str() == c)
                    || (dr.changes.is_empty() && c == "presence")
            })
    }
}

/// The response body of an outcome, for a query's filters and format.
fn render(out: &Outcome, filters: &Filters, format: &str) -> String {
    let mut result = out.result.clone();
    result.drifts.retain(|dr| filters.keeps(dr));
    let mut rep = out.report();
    rep.result = &result;
    match format {
        "markdown" => crate::report::markdown::render(&rep),
        "patch" => patches(&rep),
        _ => crate::report::json::render(&rep),
    }
}

/// Runs one comparison of two read sides (one permit), stopping when the request that
/// started it ends.
async fn compute(
    st: &Shared,
    left: Snap,
    right: Snap,
    mode: Mode,
    from_raw: &str,
    to_raw: &str,
) -> Result<Arc<Outcome>, HttpError> {
    let _permit = st
        .compare
        .permits
        .acquire()
        .await
        .map_err(|_| HttpError::internal("shutting down"))?;
    // Dropped with this request's future (its timeout fired, or its client left): the
    // comparison sees the flag and stops instead of computing for nobody.
    let cancel = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let _on_drop = CancelOnDrop(Arc::clone(&cancel));
    let d = Arc::clone(&st.daemon);
    let (from_raw, to_raw) = (from_raw.to_string(), to_raw.to_string());
    let work = tokio::task::spawn_blocking(move || -> Result<Arc<Outcome>, HttpError> {
        let stopped = || {
            d.metrics.compare_cancelled.inc();
            tracing::debug!("comparison cancelled: its request ended");
            HttpError::internal("cancelled: the request ended")
        };
        if cancel.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(stopped());
        }
        let mut job = Job::new(
            mode,
            Input {
                name: from_raw.clone(),
                source: Src::Opened(left.loaded),
            },
            Input {
                name: to_raw.clone(),
                source: Src::Opened(right.loaded),
            },
            Arc::clone(&d.compiled),
        );
        job.cancel = Some(&cancel);
        let out = run::run(&job);
        if matches!(out.failure(), Some(run::RunError::Cancelled)) {
            return Err(stopped());
        }
        if let Some(e) = out.failure() {
            // A side that yielded nothing readable: named by its parameter, as an open error.
            let param = match e {
                run::RunError::Unreadable { side, .. } if *side == from_raw => "from",
                _ => "to",
            };
            return Err(HttpError::bad(param, e.to_string()));
        }
        d.metrics.compare_computed.inc();
        Ok(Arc::new(out))
    });
    work.await
        .map_err(|e| HttpError::internal(format!("comparison: {e}")))?
}

/// Sets its flag when dropped (see [`run::Job::cancel`]).
struct CancelOnDrop(Arc<std::sync::atomic::AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// `format=patch`: each modified drift's RFC 6902 patch and kubectl line.
fn patches(rep: &Report<'_>) -> String {
    let mut out = String::new();
    for d in rep
        .result
        .drifts
        .iter()
        .filter(|d| d.drift_type == DriftType::Modified)
    {
        out.push_str(&format!(
            "# {} ({}, {})\n",
            d.resource,
            d.severity,
            if d.remedy.verified {
                "verified"
            } else {
                "not verified"
            }
        ));
        if let Some(p) = &d.remedy.patch {
            out.push_str(&format!("# patch: {p}\n"));
        }
        out.push_str(&d.remedy.kubectl);
        out.push_str("\n\n");
    }
    out
}
