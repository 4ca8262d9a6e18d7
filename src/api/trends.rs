//! `GET /api/v1/trends?days=N`: the figures of the web page's `/trends` as JSON
//! ([`crate::web::trends::Trends`]), and the `envdrift_trend_*` gauges set from them when
//! `/metrics` is scraped.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};

use super::{ApiState, HttpError};
use crate::web::trends::Trends;

/// `GET /api/v1/trends`.
pub(super) async fn handler(
    State(st): State<Arc<ApiState>>,
    q: Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Trends>, HttpError> {
    let Query(q) = q.map_err(|e| HttpError::bad("query", e.body_text()))?;
    if let Some(k) = q.keys().find(|k| k.as_str() != "days") {
        return Err(HttpError::bad(
            "query",
            format!("unknown query parameter `{k}` (choose from: days)"),
        ));
    }
    let days = crate::web::parse_days(&q).map_err(|m| HttpError::bad("days", m))?;
    let st2 = Arc::clone(&st);
    let trends = tokio::task::spawn_blocking(move || {
        crate::web::compute_trends(&st2.daemon, st2.reader(), days)
    })
    .await
    .map_err(|e| HttpError::internal(format!("trends: {e}")))??;
    Ok(Json(trends))
}

/// Sets the trend gauges (30-day window) from the store; a store error leaves them as
/// they were (and is logged by the next page or API read that fails the same way).
pub(super) fn update_gauges(st: &ApiState) {
    match crate::web::compute_trends(&st.daemon, st.reader(), 30) {
        Ok(t) => crate::web::trends::set_gauges(&st.daemon.metrics, &t),
        Err(e) => tracing::debug!(error = %e, "trend gauges not updated"),
    }
}
