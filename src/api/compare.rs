//! `GET /api/v1/compare?from=SRC&to=SRC`: a fresh comparison on demand.
//!
//! `SRC` is `git:ENV` (the environment's desired side), `live:ENV` or `ENV` (its live side).
//! `git:X` → `live:Y` is a desired-vs-live diff; any other pair compares two environments
//! (symmetric, with `compare.mapping` and expected divergences). Snapshots are cached for
//! `api.compare_max_age` (default 30 s) so that a burst of requests does not re-read the
//! sources, at most `api.compare_concurrency` comparisons run at once, and the request
//! timeout bounds the wait.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tokio::sync::Semaphore;

use super::{HttpError, Shared, check_target, parse_category, parse_severity};
use crate::daemon::{Daemon, Target};
use crate::model::DriftType;
use crate::report::{Mode, Report};
use crate::run::{self, Input, Job, Src};
use crate::source::{self, Ctx, Loaded};

/// Cached sources and the concurrency limit.
pub struct CompareCache {
    max_age: Duration,
    permits: Semaphore,
    snaps: Mutex<HashMap<String, (Instant, Arc<Loaded>)>>,
}

impl CompareCache {
    pub fn new(max_age: Duration, concurrency: usize) -> Self {
        CompareCache {
            max_age,
            permits: Semaphore::new(concurrency),
            snaps: Mutex::new(HashMap::new()),
        }
    }

    fn get(&self, d: &Daemon, env: &str, side: SideKind) -> Result<Arc<Loaded>, String> {
        let key = format!("{env}:{}", side.as_str());
        if let Some((at, s)) = self
            .snaps
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&key)
            && at.elapsed() <= self.max_age
        {
            return Ok(Arc::clone(s));
        }
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
        let loaded = Arc::new(source::open(&spec, &ctx).map_err(|e| e.to_string())?);
        self.snaps
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(key, (Instant::now(), Arc::clone(&loaded)));
        Ok(loaded)
    }
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
    let st2 = Arc::clone(&st);
    let work = tokio::task::spawn_blocking(move || -> Result<String, HttpError> {
        let d = &st2.daemon;
        let stopped = || {
            d.metrics.compare_cancelled.inc();
            tracing::debug!("comparison cancelled: its request ended");
            HttpError::internal("cancelled: the request ended")
        };
        if cancel.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(stopped());
        }
        let left = st2
            .compare
            .get(d, &from.0, from.1)
            .map_err(|e| HttpError::bad("from", e))?;
        if cancel.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(stopped());
        }
        let right = st2
            .compare
            .get(d, &to.0, to.1)
            .map_err(|e| HttpError::bad("to", e))?;
        let mode = if from.1 == SideKind::Git && to.1 == SideKind::Live {
            Mode::DesiredVsLive
        } else {
            Mode::EnvVsEnv
        };
        let mut job = Job::new(
            mode,
            Input {
                name: from_raw.clone(),
                source: Src::Opened(left),
            },
            Input {
                name: to_raw.clone(),
                source: Src::Opened(right),
            },
            Arc::clone(&d.compiled),
        );
        job.cancel = Some(&cancel);
        let mut out = run::run(&job);
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
        out.result.drifts.retain(|dr| {
            q.namespace
                .as_deref()
                .is_none_or(|ns| dr.resource.namespace.as_deref() == Some(ns))
                && q.kind
                    .as_deref()
                    .is_none_or(|k| dr.resource.kind.eq_ignore_ascii_case(k))
                && q.name.as_deref().is_none_or(|n| dr.resource.name == n)
                && min_sev.is_none_or(|s| dr.severity >= s)
                && category.as_deref().is_none_or(|c| {
                    dr.changes.iter().any(|ch| ch.category.as_str() == c)
                        || (dr.changes.is_empty() && c == "presence")
                })
        });
        let rep = out.report();
        Ok(match format.as_str() {
            "markdown" => crate::report::markdown::render(&rep),
            "patch" => patches(&rep),
            _ => crate::report::json::render(&rep),
        })
    });
    let body = work
        .await
        .map_err(|e| HttpError::internal(format!("comparison: {e}")))??;
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
