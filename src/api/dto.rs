//! The API's wire types: what the JSON responses hold, separate from the store's records.
//!
//! The OpenAPI document (`src/api/openapi.json`) describes exactly these types: a test below
//! checks that each DTO's fields are the properties of its schema and that the schema's
//! required properties are the fields that are never null. The store can change its records
//! (or its tables) without changing the wire: only the `From` conversions here follow it.
//!
//! Fields are declared in alphabetical order so that the JSON has the same key order as the
//! `json!` objects the API wrote before these types existed.

use serde::Serialize;
use serde_json::Value;

use crate::model::Severity;
use crate::store::{DriftRecord, EventRecord, ScanRecord};

/// A drift as the API shows it (`#/components/schemas/Drift`).
#[derive(Debug, Clone, Serialize)]
pub struct Drift {
    pub acked_at: Option<String>,
    pub acked_by: Option<String>,
    /// The drift as the JSON output shows it (changes, attribution, patch).
    pub body: Value,
    pub categories: Vec<String>,
    pub changed_at: String,
    pub drift_type: String,
    pub fingerprint: String,
    pub first_seen: String,
    pub id: i64,
    pub identity: String,
    pub last_reminded_at: Option<String>,
    pub last_seen: String,
    pub resolved_at: Option<String>,
    pub resource: String,
    pub severity: Severity,
    pub silence_reason: Option<String>,
    pub silenced_until: Option<String>,
    /// `open` or `resolved`.
    pub status: &'static str,
    pub target: String,
}

impl From<DriftRecord> for Drift {
    fn from(r: DriftRecord) -> Drift {
        Drift {
            acked_at: r.acked_at,
            acked_by: r.acked_by,
            body: r.body,
            categories: r.categories,
            changed_at: r.changed_at,
            drift_type: r.drift_type,
            fingerprint: r.fingerprint,
            first_seen: r.first_seen,
            id: r.id,
            identity: r.identity,
            last_reminded_at: r.last_reminded_at,
            last_seen: r.last_seen,
            resolved_at: r.resolved_at,
            resource: r.resource,
            severity: r.severity,
            silence_reason: r.silence_reason,
            silenced_until: r.silenced_until,
            status: r.status.as_str(),
            target: r.target,
        }
    }
}

/// One event of a drift's history (`#/components/schemas/Event`).
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub at: String,
    pub detail: Option<String>,
    /// `opened`, `changed`, `escalated`, `resolved`, `acknowledged` or `silenced`.
    pub event: &'static str,
    pub fingerprint: Option<String>,
    pub scan_id: Option<i64>,
    pub severity: Option<Severity>,
}

impl From<EventRecord> for Event {
    fn from(r: EventRecord) -> Event {
        Event {
            at: r.at,
            detail: r.detail,
            event: r.event.as_str(),
            fingerprint: r.fingerprint,
            scan_id: r.scan_id,
            severity: r.severity,
        }
    }
}

/// A scan (`#/components/schemas/Scan`).
#[derive(Debug, Clone, Serialize)]
pub struct Scan {
    pub drifts: i64,
    pub duration_ms: Option<i64>,
    pub error: Option<String>,
    pub finished_at: Option<String>,
    pub id: i64,
    /// `environment` or `comparison`.
    pub kind: &'static str,
    pub objects: i64,
    /// `running`, `ok`, `partial` or `failed`.
    pub outcome: &'static str,
    pub revision: Option<String>,
    pub snapshot_hash: Option<String>,
    pub started_at: String,
    pub target: String,
}

impl From<ScanRecord> for Scan {
    fn from(r: ScanRecord) -> Scan {
        Scan {
            drifts: r.drifts,
            duration_ms: r.duration_ms,
            error: r.error,
            finished_at: r.finished_at,
            id: r.id,
            kind: r.kind.as_str(),
            objects: r.objects,
            outcome: r.outcome.as_str(),
            revision: r.revision,
            snapshot_hash: r.snapshot_hash,
            started_at: r.started_at,
            target: r.target,
        }
    }
}

/// The last scan of an environment, in the environments list (`#/components/schemas/LastScan`).
#[derive(Debug, Clone, Serialize)]
pub struct LastScan {
    pub drifts: i64,
    pub error: Option<String>,
    pub finished_at: Option<String>,
    pub id: i64,
    pub outcome: &'static str,
    pub started_at: String,
}

impl From<&ScanRecord> for LastScan {
    fn from(r: &ScanRecord) -> LastScan {
        LastScan {
            drifts: r.drifts,
            error: r.error.clone(),
            finished_at: r.finished_at.clone(),
            id: r.id,
            outcome: r.outcome.as_str(),
            started_at: r.started_at.clone(),
        }
    }
}

/// An environment or comparison with its state (`#/components/schemas/Environment`).
#[derive(Debug, Clone, Serialize)]
pub struct Environment {
    /// `environment` or `comparison`.
    pub kind: &'static str,
    pub last_scan: Option<LastScan>,
    pub name: String,
    /// Open drifts by severity (every severity, zero included).
    pub open_drifts: std::collections::BTreeMap<&'static str, usize>,
    /// `{desired, live}` for an environment, `{from, to}` for a comparison.
    pub sources: Value,
}

/// An alert that failed at least once (`#/components/schemas/DeliveryFailure`).
#[derive(Debug, Clone, Serialize)]
pub struct DeliveryFailure {
    pub attempts: i64,
    pub error: Option<String>,
    pub notice: String,
    pub sink: String,
    /// `pending` (will be retried) or `failed` (given up).
    pub state: &'static str,
}

/// Alert delivery state (`#/components/schemas/Alerts`).
#[derive(Debug, Clone, Serialize)]
pub struct Alerts {
    /// Alerts by outbox state (`pending`, `sent`, `failed`).
    pub outbox: std::collections::BTreeMap<&'static str, i64>,
    pub recent_failures: Vec<DeliveryFailure>,
}

/// `GET /api/v1/environments` (`#/components/schemas/Environments`).
#[derive(Debug, Clone, Serialize)]
pub struct Environments {
    pub alerts: Alerts,
    pub environments: Vec<Environment>,
}

/// `GET /api/v1/drifts` (`#/components/schemas/DriftPage`).
#[derive(Debug, Clone, Serialize)]
pub struct DriftPage {
    pub drifts: Vec<Drift>,
    pub next_cursor: Option<String>,
}

/// `GET /api/v1/drifts/{id}` (`#/components/schemas/DriftDetail`).
#[derive(Debug, Clone, Serialize)]
pub struct DriftDetail {
    pub drift: Drift,
    pub history: Vec<Event>,
}

/// `POST /api/v1/drifts/{id}/ack` and `/silence` (`#/components/schemas/DriftEnvelope`).
#[derive(Debug, Clone, Serialize)]
pub struct DriftEnvelope {
    pub drift: Drift,
}

/// `GET /api/v1/scans/{id}` (`#/components/schemas/ScanEnvelope`).
#[derive(Debug, Clone, Serialize)]
pub struct ScanEnvelope {
    pub scan: Scan,
}

/// `POST /api/v1/scans` (`#/components/schemas/ScanAccepted`).
#[derive(Debug, Clone, Serialize)]
pub struct ScanAccepted {
    pub env: String,
    pub id: i64,
    /// Always `running`: poll `url`.
    pub status: &'static str,
    pub url: String,
}

/// `GET /readyz` (`#/components/schemas/Readiness`).
#[derive(Debug, Clone, Serialize)]
pub struct Readiness {
    pub ready: bool,
    /// `ok`, `starting` or `all failed`.
    pub scans: &'static str,
    /// `open` or `failed`.
    pub store: &'static str,
    /// Why the store could not be written the last time a scan was recorded.
    pub store_error: Option<String>,
    /// `ok`, or `stalled` while a sink's delivery queue failed and is being restarted.
    pub deliveries: &'static str,
    /// The stalled sinks and why (empty when none is).
    pub stalled: std::collections::BTreeMap<String, String>,
}

/// `POST /api/v1/hooks/git` (`#/components/schemas/GitHookResult`).
#[derive(Debug, Clone, Serialize)]
pub struct GitHookResult {
    /// The push's new commit, when given.
    pub after: Option<String>,
    /// The environments whose desired side is read again.
    pub environments: Vec<crate::daemon::hooks::PushTriggered>,
    /// `push`, `ping`, or the ignored event's name.
    pub event: String,
    /// True for an event other than a push or a ping.
    pub ignored: bool,
    /// `github`, `gitlab`, `gitea` or `gogs`.
    pub provider: &'static str,
    /// The pushed ref (`refs/heads/main`).
    #[serde(rename = "ref")]
    pub reference: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::BTreeSet;

    /// `Some(v)` in the full samples, `None` in the minimal ones.
    fn opt<T>(full: bool, v: T) -> Option<T> {
        full.then_some(v)
    }

    fn drift(full: bool) -> Drift {
        let t = || opt(full, "t".to_string());
        Drift {
            acked_at: t(),
            acked_by: t(),
            body: json!({}),
            categories: vec!["image".into()],
            changed_at: "t".into(),
            drift_type: "modified".into(),
            fingerprint: "f".into(),
            first_seen: "t".into(),
            id: 1,
            identity: "i".into(),
            last_reminded_at: t(),
            last_seen: "t".into(),
            resolved_at: t(),
            resource: "Deployment shop/web".into(),
            severity: Severity::High,
            silence_reason: t(),
            silenced_until: t(),
            status: "open",
            target: "production".into(),
        }
    }

    fn scan(full: bool) -> Scan {
        let t = || opt(full, "t".to_string());
        Scan {
            drifts: 1,
            duration_ms: opt(full, 3),
            error: t(),
            finished_at: t(),
            id: 1,
            kind: "environment",
            objects: 2,
            outcome: "ok",
            revision: t(),
            snapshot_hash: t(),
            started_at: "t".into(),
            target: "production".into(),
        }
    }

    fn target_trend(full: bool) -> crate::web::trends::TargetTrend {
        crate::web::trends::TargetTrend {
            in_sync_share: opt(full, 0.5),
            kind: "environment",
            mttr_seconds: opt(full, 60.0),
            name: "production".into(),
            open_per_day: vec![],
            opened: 1,
            opened_last_7d: 1,
            opened_per_week: vec![],
            resolved: 1,
        }
    }

    fn value<T: Serialize>(x: &T) -> Value {
        serde_json::to_value(x).unwrap()
    }

    /// Every DTO, by the schema that describes it: with every optional field set (`full`),
    /// or with none set.
    fn samples(full: bool) -> Vec<(&'static str, Value)> {
        let t = || opt(full, "t".to_string());
        let last = LastScan {
            drifts: 1,
            error: t(),
            finished_at: t(),
            id: 1,
            outcome: "ok",
            started_at: "t".into(),
        };
        let env = Environment {
            kind: "environment",
            last_scan: opt(full, last.clone()),
            name: "production".into(),
            open_drifts: [("high", 1)].into_iter().collect(),
            sources: json!({}),
        };
        let failure = DeliveryFailure {
            attempts: 2,
            error: t(),
            notice: "n".into(),
            sink: "slack".into(),
            state: "pending",
        };
        let alerts = Alerts {
            outbox: [("sent", 1)].into_iter().collect(),
            recent_failures: vec![failure.clone()],
        };
        let event = Event {
            at: "t".into(),
            detail: t(),
            event: "opened",
            fingerprint: t(),
            scan_id: opt(full, 1),
            severity: opt(full, Severity::Low),
        };
        vec![
            (
                "GitHookResult",
                value(&GitHookResult {
                    after: t(),
                    environments: vec![crate::daemon::hooks::PushTriggered {
                        environment: "production".into(),
                        how: "scan",
                        scan_id: opt(full, 1),
                    }],
                    event: "push".into(),
                    ignored: false,
                    provider: "github",
                    reference: t(),
                }),
            ),
            ("Drift", value(&drift(full))),
            ("Event", value(&event)),
            ("Scan", value(&scan(full))),
            ("LastScan", value(&last)),
            ("Environment", value(&env)),
            ("DeliveryFailure", value(&failure)),
            ("Alerts", value(&alerts)),
            (
                "Environments",
                value(&Environments {
                    alerts,
                    environments: vec![env],
                }),
            ),
            (
                "DriftPage",
                value(&DriftPage {
                    drifts: vec![drift(full)],
                    next_cursor: t(),
                }),
            ),
            (
                "DriftDetail",
                value(&DriftDetail {
                    drift: drift(full),
                    history: vec![event],
                }),
            ),
            (
                "DriftEnvelope",
                value(&DriftEnvelope { drift: drift(full) }),
            ),
            ("ScanEnvelope", value(&ScanEnvelope { scan: scan(full) })),
            (
                "ScanAccepted",
                value(&ScanAccepted {
                    env: "production".into(),
                    id: 1,
                    status: "running",
                    url: "/api/v1/scans/1".into(),
                }),
            ),
            (
                "DayCount",
                value(&crate::web::trends::DayCount {
                    day: "2026-12-04".into(),
                    open: 1,
                }),
            ),
            (
                "WeekCount",
                value(&crate::web::trends::WeekCount {
                    opened: 1,
                    week: "2026-W49".into(),
                }),
            ),
            ("TargetTrend", value(&target_trend(full))),
            (
                "Trends",
                value(&crate::web::trends::Trends {
                    days: 1,
                    from: "t".into(),
                    targets: vec![target_trend(full)],
                    to: "t".into(),
                }),
            ),
            (
                "Readiness",
                value(&Readiness {
                    ready: false,
                    scans: "ok",
                    store: "open",
                    store_error: opt(full, "database is locked".to_string()),
                    deliveries: "stalled",
                    stalled: opt(
                        full,
                        (
                            "slack".to_string(),
                            "the delivery task panicked: boom".to_string(),
                        ),
                    )
                    .into_iter()
                    .collect(),
                }),
            ),
        ]
    }

    fn keys(v: &Value) -> BTreeSet<String> {
        v.as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    fn strings(v: &Value) -> BTreeSet<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn the_openapi_document_describes_every_dto_field() {
        let doc: Value = serde_json::from_str(super::super::OPENAPI).unwrap();
        let schemas = &doc["components"]["schemas"];
        for ((name, full), (_, minimal)) in samples(true).into_iter().zip(samples(false)) {
            let schema = &schemas[name];
            assert!(schema.is_object(), "no schema {name} in openapi.json");
            assert_eq!(
                keys(&schema["properties"]),
                keys(&full),
                "{name}: the schema's properties are not the DTO's fields"
            );
            // A field that can be null is nullable and not required; every other field is
            // required and not nullable.
            let nulls: BTreeSet<String> = minimal
                .as_object()
                .unwrap()
                .iter()
                .filter(|(_, v)| v.is_null())
                .map(|(k, _)| k.clone())
                .collect();
            let nullable: BTreeSet<String> = schema["properties"]
                .as_object()
                .unwrap()
                .iter()
                .filter(|(_, p)| p["nullable"].as_bool().unwrap_or(false))
                .map(|(k, _)| k.clone())
                .collect();
            assert_eq!(nullable, nulls, "{name}: nullable properties");
            let required = strings(&schema["required"]);
            let non_null: BTreeSet<String> = keys(&full).difference(&nulls).cloned().collect();
            assert_eq!(required, non_null, "{name}: required properties");
        }
    }

    #[test]
    fn every_wire_schema_is_a_dto() {
        // Every component schema is a DTO here, the error type, or one the engine's JSON
        // output (docs/json-schema.md) and the report define.
        let doc: Value = serde_json::from_str(super::super::OPENAPI).unwrap();
        let dtos: BTreeSet<&str> = samples(true).iter().map(|(n, _)| *n).collect();
        let others = ["Error", "Report", "DiffOutput"];
        for name in doc["components"]["schemas"].as_object().unwrap().keys() {
            assert!(
                dtos.contains(name.as_str()) || others.contains(&name.as_str()),
                "openapi.json schema {name} has no DTO"
            );
        }
    }
}
