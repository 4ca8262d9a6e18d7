//! Acknowledge and silence as one transaction with the alerts they cause: the drift row and
//! its history are written and the outbox rows (Slack message updates, webhook events) are
//! queued together, so an action is never applied without its notices nor the reverse.
//!
//! Every query is a plain constant in the SQL both SQLite and PostgreSQL accept.

use super::sql::{Exec as _, args};

use super::drifts::{DRIFT_COLUMNS, row_to_drift};
use super::outbox::{OutboxWrite, insert};
use super::{DriftRecord, EventKind, Store, StoreError, now_rfc3339};

/// What is done to a drift.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriftAction<'a> {
    /// Acknowledged by `by` (who, and an optional note).
    Acknowledge { by: &'a str },
    /// Silenced until `until` (RFC 3339; a past time ends a silence) for `reason`.
    Silence { until: &'a str, reason: &'a str },
}

const ACK: &str = "UPDATE drifts SET acked_at = ?2, acked_by = ?3 WHERE id = ?1";
const SILENCE: &str = "UPDATE drifts SET silenced_until = ?2, silence_reason = ?3 WHERE id = ?1";
const EVENT: &str =
    "INSERT INTO drift_events(drift_id, at, event, detail) VALUES (?1, ?2, ?3, ?4) RETURNING id";
const SLACK_SINKS: &str = "SELECT sink FROM slack_messages WHERE drift_id = ?1 ORDER BY sink";

impl Store {
    /// Applies `action` to drift `id`, records it in the drift's history and, in the same
    /// transaction, queues the outbox rows `notices` returns. `notices` gets the drift as
    /// written, the id of its new history event (unique per action: a notice id) and the
    /// sinks that have a Slack message for the drift.
    ///
    /// # Errors
    /// No such drift ([`StoreError::NotFound`]), or the database failed (nothing written).
    pub fn act_on_drift(
        &self,
        id: i64,
        action: DriftAction<'_>,
        notices: impl FnOnce(&DriftRecord, i64, &[String]) -> Vec<OutboxWrite> + Send,
    ) -> Result<DriftRecord, StoreError> {
        let now = now_rfc3339();
        let db = self.db();
        let what = match action {
            DriftAction::Acknowledge { .. } => "acknowledging a drift",
            DriftAction::Silence { .. } => "silencing a drift",
        };
        db.tx(what, |tx| {
            let (n, kind, detail) = match action {
                DriftAction::Acknowledge { by } => (
                    tx.execute(ACK, args![id, &now, by]),
                    EventKind::Acknowledged,
                    by.to_string(),
                ),
                DriftAction::Silence { until, reason } => (
                    tx.execute(SILENCE, args![id, until, reason]),
                    EventKind::Silenced,
                    format!("until {until}: {reason}"),
                ),
            };
            if n.map_err(db.err(what))? == 0 {
                return Err(db.not_found("drift", id));
            }
            let event_id: i64 = tx
                .query_value(EVENT, args![id, &now, kind, detail])
                .map_err(db.err(what))?;
            let row = tx
                .query_opt(
                    &format!("SELECT {DRIFT_COLUMNS} FROM drifts WHERE id = ?1"),
                    args![id],
                )
                .map_err(db.err(what))?
                .ok_or_else(|| db.not_found("drift", id))?;
            let row = row_to_drift(&row).map_err(db.err(what))?;
            let sinks = tx
                .query(SLACK_SINKS, args![id])
                .map_err(db.err(what))?
                .iter()
                .map(|r| r.get::<String>(0))
                .collect::<Result<Vec<_>, _>>()
                .map_err(db.err(what))?;
            for o in notices(&row, event_id, &sinks) {
                insert(tx, &o, &now).map_err(db.err("queueing an alert"))?;
            }
            Ok(row)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{nd, ok_end};
    use super::super::*;
    use crate::model::Severity;
    use serde_json::json;

    fn one_drift(s: &Store) -> i64 {
        let scan = s.start_scan("prod", ScanKind::Environment).unwrap();
        s.record_scan(
            scan,
            "prod",
            &ok_end(),
            &[DriftWrite::Open(nd("a", "f1", Severity::Medium))],
            &[],
        )
        .unwrap();
        s.open_drifts("prod").unwrap()[0].id
    }

    #[test]
    fn an_action_and_its_notices_are_written_together_or_not_at_all() {
        let s = Store::open_in_memory().unwrap();
        let id = one_drift(&s);
        let row = s
            .act_on_drift(
                id,
                DriftAction::Acknowledge { by: "alice" },
                |row, ev, sinks| {
                    assert!(sinks.is_empty());
                    vec![OutboxWrite {
                        notice_id: format!("drift-{}/event-{ev}/acknowledged", row.id),
                        sink: "hook".into(),
                        kind: "acknowledged".into(),
                        target: row.target.clone(),
                        body: json!({"acked_by": row.acked_by}),
                    }]
                },
            )
            .unwrap();
        assert_eq!(row.acked_by.as_deref(), Some("alice"));
        let out = s.outbox(10).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].body, json!({"acked_by": "alice"}));
        assert_eq!(
            s.drift(id).unwrap().1.last().map(|e| e.event),
            Some(EventKind::Acknowledged)
        );
        // Silence: a second event id, so a second notice.
        let mut seen = 0;
        s.act_on_drift(
            id,
            DriftAction::Silence {
                until: "2999-01-01T00:00:00.000Z",
                reason: "known",
            },
            |row, ev, _| {
                seen = ev;
                assert_eq!(
                    row.silenced_until.as_deref(),
                    Some("2999-01-01T00:00:00.000Z")
                );
                Vec::new()
            },
        )
        .unwrap();
        assert!(seen > 0);
        // An unknown drift: not found, nothing queued.
        let err = s
            .act_on_drift(9999, DriftAction::Acknowledge { by: "x" }, |_, _, _| {
                panic!("no notices for a missing drift")
            })
            .unwrap_err();
        assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
        assert_eq!(s.outbox(10).unwrap().len(), 1);
    }
}
