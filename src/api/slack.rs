//! `POST /api/v1/slack/interactions`: Slack's button clicks (Acknowledge, Silence 24h).
//!
//! No bearer token: the request's Slack signature is its authentication (see
//! [`crate::alert::slack::interact`]). The route is off (404) unless a Slack sink has a
//! signing secret (`signing_secret_env` / `signing_secret_file`). Answers:
//!
//! - 401: signature or timestamp header missing, signature wrong, timestamp more than five
//!   minutes off (nothing is done);
//! - 400: the body is not a `block_actions` payload with an envdrift button;
//! - 404: the button's drift is not in the store;
//! - 200: done (the store written before the answer; the Slack message is rewritten right
//!   after, in the background, so Slack gets its answer well within its 3 seconds), or the
//!   same signed request seen before within the window (Slack's retry or a replay: nothing
//!   is done twice).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{HttpError, Shared};
use crate::alert::Sink;
use crate::alert::slack::interact::{self, ActError, Acted, Refused};

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
    if !slack.first_time(sig.unwrap_or(""), now.timestamp()) {
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
    match slack.act(&click, now) {
        Ok(Acted::Done(status)) => {
            tracing::info!(sink = slack.name(), drift = click.drift_id, user = %click.user_id, action = ?click.action, "drift updated from Slack");
            let task_sink = sink.clone();
            tokio::spawn(async move {
                let Sink::Slack(s) = &*task_sink else { return };
                if let Err(e) = s.show_action(&click, status).await {
                    tracing::warn!(sink = s.name(), drift = click.drift_id, error = %e, "updating the Slack message after a click");
                }
            });
            StatusCode::OK.into_response()
        }
        Ok(Acted::Nothing) => StatusCode::OK.into_response(),
        Err(ActError::UnknownDrift(id)) => {
            HttpError::not_found(format!("drift {id} not found")).into_response()
        }
        Err(ActError::NoStore) => HttpError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "unavailable",
            message: ActError::NoStore.to_string(),
            param: None,
        }
        .into_response(),
        Err(ActError::Store(e)) => HttpError::from(e).into_response(),
    }
}
