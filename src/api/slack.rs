//! `POST /api/v1/slack/interactions`: Slack's button clicks (Acknowledge, Silence 24h).
//!
//! No bearer token: the request's Slack signature is its authentication (see
//! [`crate::alert::slack::interact`]). The route is off (404) unless a Slack sink has a
//! signing secret (`signing_secret_env` / `signing_secret_file`). Answers:
//!
//! Its body limit is its own: `api.max_body_bytes` when larger, else 128 KiB
//! ([`MIN_BODY_BYTES`]); larger bodies get 413.
//!
//! - 401: signature or timestamp header missing, signature wrong, timestamp more than five
//!   minutes off (nothing is done);
//! - 400: the body is not a `block_actions` payload with an envdrift button;
//! - 404: the button's drift is not in the store;
//! - 200 without acting: the drift is resolved (its message stays resolved);
//! - 200: done (the store written before the answer, with the alert that rewrites the
//!   Slack message queued in the same transaction and delivered by the outbox — retried,
//!   in order with the drift's other alerts — so Slack gets its answer well within its 3
//!   seconds; when the store's writer is busy for 2 s, the answer goes first and the click
//!   is applied when the store is free), or the
//!   same signed request seen before within the window (Slack's retry or a replay: nothing
//!   is done twice).

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use super::{ApiState, HttpError, Shared};
use crate::alert::Sink;
use crate::alert::slack::interact::{self, Action, Click, Refused, SILENCE_HOURS};
use crate::store::{DriftStatus, StoreError};

/// The route's smallest body limit: Slack's `block_actions` body carries the whole clicked
/// message, form-encoded, so `api.max_body_bytes` applies to it only when it is larger.
pub(super) const MIN_BODY_BYTES: usize = 128 * 1024;

/// The route, with its own body limit (the larger of `api_limit` and [`MIN_BODY_BYTES`]).
pub(super) fn routes(api_limit: usize) -> Router<Shared> {
    Router::new()
        .route("/api/v1/slack/interactions", post(interactions))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(
            api_limit.max(MIN_BODY_BYTES),
        ))
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

fn unauthorized(why: &Refused) -> Response {
    HttpError {
        status: StatusCode::UNAUTHORIZED,
        code: "unauthorized",
        message: format!("Slack request refused: {why}"),
        param: None,
    }
    .into_response()
}

pub(super) async fn interactions(
    State(st): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let sinks: Vec<Arc<Sink>> = st
        .daemon
        .slack_sinks()
        .into_iter()
        .filter(|s| matches!(&**s, Sink::Slack(s) if s.interactive()))
        .collect();
    if sinks.is_empty() {
        return HttpError::not_found(
            "the Slack interactivity endpoint is off: no Slack sink has a signing secret (signing_secret_env / signing_secret_file)",
        )
        .into_response();
    }
    let ts = header(&headers, "x-slack-request-timestamp");
    let sig = header(&headers, "x-slack-signature");
    let now = chrono::Utc::now();
    let mut refused = Refused::Missing;
    let mut matched = None;
    for s in &sinks {
        let Sink::Slack(slack) = &**s else { continue };
        match slack.verify(ts, sig, &body, now.timestamp()) {
            Ok(()) => {
                matched = Some(s.clone());
                break;
            }
            Err(e) => {
                // The most telling reason over all sinks: stale beats a wrong signature.
                if refused == Refused::Missing || e == Refused::Stale {
                    refused = e;
                }
            }
        }
    }
    let Some(sink) = matched else {
        tracing::warn!(reason = %refused, "Slack interaction refused");
        return unauthorized(&refused);
    };
    let Sink::Slack(slack) = &*sink else {
        return unauthorized(&Refused::Missing);
    };
    if !slack.first_time(ts.unwrap_or(""), &body, now.timestamp()) {
        tracing::info!(
            sink = slack.name(),
            "Slack interaction seen before; not acting again"
        );
        return StatusCode::OK.into_response();
    }
    let click = match interact::parse(&body) {
        Ok(c) => c,
        Err(e) => return HttpError::bad("payload", e).into_response(),
    };
    // The store work runs off the async workers; Slack gets its answer within
    // ANSWER_WITHIN even when the store's writer is busy (a big scan being recorded): then
    // the click is finished in the background. The message is rewritten by the outbox
    // (the alert queued with the action, in its transaction).
    let (tx, rx) = tokio::sync::oneshot::channel::<Result<(), HttpError>>();
    let sink_name = slack.name().to_string();
    tokio::spawn(async move {
        let job = {
            let click = click.clone();
            tokio::task::spawn_blocking(move || act(&st, &click, now))
        };
        let done = match job.await {
            Ok(r) => r,
            Err(e) => Err(HttpError::internal(format!(
                "acting on the Slack click: {e}"
            ))),
        };
        match &done {
            Ok(true) => {
                tracing::info!(sink = %sink_name, drift = click.drift_id, user = %click.user_id, action = ?click.action, "drift updated from Slack");
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(drift = click.drift_id, error = %e.message, "Slack click not applied");
            }
        }
        let _ = tx.send(done.map(|_| ()));
    });
    match tokio::time::timeout(ANSWER_WITHIN, rx).await {
        Ok(Ok(Err(e))) => e.into_response(),
        Ok(_) => StatusCode::OK.into_response(),
        Err(_) => {
            tracing::info!(
                "the store is busy; answering Slack's click now and applying it when the store is free"
            );
            StatusCode::OK.into_response()
        }
    }
}

/// Slack wants its answer within 3 seconds.
const ANSWER_WITHIN: std::time::Duration = std::time::Duration::from_secs(2);

/// Acknowledges (`acked_by` = `slack:@name (U…)`) or silences for 24 hours the clicked
/// drift, both in its history, through the daemon's one action path (which queues the
/// message's update). `false`: nothing done (the link button, a resolved drift).
fn act(
    st: &ApiState,
    click: &Click,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<bool, HttpError> {
    let who = match &click.user_name {
        Some(n) => format!("slack:@{n} ({})", click.user_id),
        None => format!("slack:{}", click.user_id),
    };
    let mapped = |e: StoreError| match e {
        StoreError::NotFound { .. } => {
            HttpError::not_found(format!("drift {} not found", click.drift_id))
        }
        e => HttpError::from(e),
    };
    if click.action == Action::Open {
        return Ok(false);
    }
    // A resolved drift (a click on a stale client or an old card): nothing to acknowledge
    // or silence, and its message stays resolved.
    let (row, _) = st.daemon.store.drift(click.drift_id).map_err(mapped)?;
    if row.status == DriftStatus::Resolved {
        tracing::info!(
            drift = click.drift_id,
            "Slack click on a resolved drift; nothing to do"
        );
        return Ok(false);
    }
    match click.action {
        Action::Open => Ok(false),
        Action::Acknowledge => {
            st.daemon
                .acknowledge(click.drift_id, &who, &click.user_id)
                .map_err(mapped)?;
            Ok(true)
        }
        Action::Silence => {
            let until = crate::store::fmt_time(now + chrono::Duration::hours(SILENCE_HOURS));
            st.daemon
                .silence(
                    click.drift_id,
                    &until,
                    &format!("silenced for {SILENCE_HOURS}h from Slack by {who}"),
                    &click.user_id,
                )
                .map_err(mapped)?;
            Ok(true)
        }
    }
}
