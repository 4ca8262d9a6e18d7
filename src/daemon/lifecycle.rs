//! Drift lifecycle (pure): given the open drifts of a target and what a scan observed,
//! decide which drifts open, change, escalate, stay or resolve, and what to tell people.
//!
//! - `open`: an identity (type + resource) seen for the first time, or again after it was
//!   resolved;
//! - `changed`: same identity, new fingerprint (a new live value); `escalated` when its
//!   severity rose;
//! - `resolved`: an open identity not seen in a scan that could see it (a partial scan only
//!   resolves what it read; a failed scan resolves nothing);
//! - acknowledged drifts stay quiet until they change; silenced ones until the silence ends.
//!
//! "Never the same alert twice for the same fingerprint state": a drift is announced when it
//! opens and when its fingerprint changes, never for being seen again.

use std::collections::{HashMap, HashSet};

use crate::alert::notice::{DriftEvent, NoticeChange, NoticeDrift};
use crate::model::{Drift, DriftType, ResourceKey, Severity};
use crate::report::{Mode, inline_value};
use crate::store::{DriftRecord, DriftWrite, NewDrift};

/// The identity of a drift across scans: its type and resource (the version aside).
pub(crate) fn identity(d: &Drift) -> String {
    let group = ResourceKey::group_of(&d.resource.api_version);
    format!(
        "{}|{}|{}|{}|{}",
        d.drift_type.as_str(),
        group,
        d.resource.kind,
        d.resource.namespace.as_deref().unwrap_or(""),
        d.resource.name
    )
}

/// `3h`, `2d`, `45m` between two RFC 3339 times.
pub fn age(since: &str, now: chrono::DateTime<chrono::Utc>) -> String {
    let Ok(t) = chrono::DateTime::parse_from_rfc3339(since) else {
        return String::new();
    };
    let secs = (now - t.with_timezone(&chrono::Utc)).num_seconds().max(0);
    match secs {
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

/// A drift as a notice shows it.
pub(crate) fn notice_drift(
    d: &Drift,
    mode: Mode,
    first_seen: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> NoticeDrift {
    NoticeDrift {
        fingerprint: d.fingerprint.clone(),
        resource: d.resource.to_string(),
        drift_type: mode.type_name(d.drift_type).to_string(),
        severity: d.severity,
        previous_severity: None,
        cause: d.cause.to_string(),
        changes: d
            .changes
            .iter()
            .map(|c| NoticeChange {
                field: c.field.clone(),
                path: c.path.clone(),
                op: c.op.as_str().to_string(),
                desired: inline_value(&c.desired, 120),
                live: inline_value(&c.live, 120),
                severity: c.severity,
                category: c.category.to_string(),
                cause: c.cause.to_string(),
                manager: c.attribution.as_ref().map(|a| a.manager.clone()),
                time: c.attribution.as_ref().and_then(|a| a.time.clone()),
                values: Some(Box::new((c.desired.clone(), c.live.clone()))),
            })
            .collect(),
        kubectl: d.remedy.kubectl.clone(),
        first_seen: first_seen.to_string(),
        age: age(first_seen, now),
        drift_id: None,
        identity: identity(d),
        event: None,
        previous_state: None,
    }
}

/// A stored drift as a notice shows it (resolutions, reminders, reports).
pub(crate) fn notice_from_row(
    row: &DriftRecord,
    now: chrono::DateTime<chrono::Utc>,
) -> NoticeDrift {
    let body = &row.body;
    let changes = body["changes"]
        .as_array()
        .map(|cs| {
            cs.iter()
                .map(|c| NoticeChange {
                    field: c["field"].as_str().unwrap_or("").to_string(),
                    path: c["path"].as_str().unwrap_or("").to_string(),
                    op: c["op"].as_str().unwrap_or("").to_string(),
                    desired: inline_value(&c["desired"], 120),
                    live: inline_value(&c["live"], 120),
                    severity: c["severity"]
                        .as_str()
                        .and_then(|s| s.parse().ok())
                        .unwrap_or_default(),
                    category: c["category"].as_str().unwrap_or("").to_string(),
                    cause: c["cause"].as_str().unwrap_or("").to_string(),
                    manager: c["manager"].as_str().map(str::to_string),
                    time: c["time"].as_str().map(str::to_string),
                    values: Some(Box::new((c["desired"].clone(), c["live"].clone()))),
                })
                .collect()
        })
        .unwrap_or_default();
    NoticeDrift {
        fingerprint: row.fingerprint.clone(),
        resource: row.resource.clone(),
        drift_type: row.drift_type.clone(),
        severity: row.severity,
        previous_severity: None,
        cause: body["cause"].as_str().unwrap_or("").to_string(),
        changes,
        kubectl: body["kubectl"].as_str().unwrap_or("").to_string(),
        first_seen: row.first_seen.clone(),
        age: age(&row.first_seen, now),
        drift_id: Some(row.id),
        identity: row.identity.clone(),
        event: None,
        previous_state: None,
    }
}

/// What a scan means for the store and for people.
#[derive(Debug, Default)]
pub struct Plan {
    pub writes: Vec<DriftWrite>,
    /// Newly open drifts and drifts with a new live value (one "drift" notice).
    pub announce: Vec<NoticeDrift>,
    /// Drifts whose severity rose (an "escalated" follow-up).
    pub escalated: Vec<NoticeDrift>,
    pub resolved: Vec<NoticeDrift>,
    pub reminders: Vec<NoticeDrift>,
}

/// What the scan could see, for resolution.
pub struct Visibility<'a> {
    /// The scan read everything (no unknown scopes, no input errors).
    pub complete: bool,
    /// Identities that were visible even though the scan was partial.
    pub visible: &'a dyn Fn(&str) -> bool,
}

/// A drift's state as alerts name it: `acknowledged`, `silenced` or `open`.
pub(crate) fn state_of(row: &DriftRecord, now: &str) -> &'static str {
    if row.acked_at.is_some() {
        "acknowledged"
    } else if silenced(row, now) {
        "silenced"
    } else {
        "open"
    }
}

/// A notice drift with its lifecycle fields set.
fn with_event(
    mut n: NoticeDrift,
    event: DriftEvent,
    row: Option<&DriftRecord>,
    now: &str,
) -> NoticeDrift {
    n.event = Some(event);
    if let Some(row) = row {
        n.drift_id = Some(row.id);
        n.previous_state = Some(state_of(row, now).to_string());
    }
    n
}

fn silenced(row: &DriftRecord, now: &str) -> bool {
    row.silenced_until.as_deref().is_some_and(|u| u > now)
}

/// Plans the lifecycle writes and notices of one scan (pure).
pub fn plan(
    prev: &[DriftRecord],
    observed: &[Drift],
    mode: Mode,
    vis: &Visibility<'_>,
    reminder_after: Option<chrono::Duration>,
    now: chrono::DateTime<chrono::Utc>,
) -> Plan {
    let now_s = crate::store::fmt_time(now);
    let mut plan = Plan::default();
    let by_identity: HashMap<&str, &DriftRecord> =
        prev.iter().map(|r| (r.identity.as_str(), r)).collect();
    let mut seen: HashSet<String> = HashSet::new();
    for d in observed {
        let id = identity(d);
        if !seen.insert(id.clone()) {
            continue; // the same identity twice in one result: keep the first
        }
        let new = NewDrift {
            identity: id.clone(),
            fingerprint: d.fingerprint.clone(),
            resource: d.resource.to_string(),
            drift_type: mode.type_name(d.drift_type).to_string(),
            severity: d.severity,
            categories: categories(d),
            body: crate::report::json::drift(d, mode),
        };
        match by_identity.get(id.as_str()) {
            None => {
                plan.announce.push(with_event(
                    notice_drift(d, mode, &now_s, now),
                    DriftEvent::Opened,
                    None,
                    &now_s,
                ));
                plan.writes.push(DriftWrite::Open(new));
            }
            Some(row) if row.fingerprint == d.fingerprint => {
                plan.writes.push(DriftWrite::Seen { id: row.id });
                let due = reminder_after.is_some_and(|after| {
                    let since = row.last_reminded_at.as_deref().unwrap_or(&row.first_seen);
                    chrono::DateTime::parse_from_rfc3339(since)
                        .is_ok_and(|t| now - t.with_timezone(&chrono::Utc) >= after)
                });
                if due && row.acked_at.is_none() && !silenced(row, &now_s) {
                    plan.reminders.push(with_event(
                        notice_drift(d, mode, &row.first_seen, now),
                        DriftEvent::Reminder,
                        Some(row),
                        &now_s,
                    ));
                    plan.writes.push(DriftWrite::Reminded { id: row.id });
                }
            }
            Some(row) => {
                let before: Severity = row.severity;
                let escalated = d.severity > before;
                if !silenced(row, &now_s) {
                    let mut n = notice_drift(d, mode, &row.first_seen, now);
                    if escalated {
                        n.previous_severity = Some(before);
                        plan.escalated.push(with_event(
                            n,
                            DriftEvent::Escalated,
                            Some(row),
                            &now_s,
                        ));
                    } else {
                        plan.announce
                            .push(with_event(n, DriftEvent::Changed, Some(row), &now_s));
                    }
                }
                plan.writes.push(DriftWrite::Change {
                    id: row.id,
                    new,
                    escalated,
                });
            }
        }
    }
    for row in prev {
        if seen.contains(&row.identity) {
            continue;
        }
        if !vis.complete && !(vis.visible)(&row.identity) {
            continue; // could not see it: neither resolved nor missing
        }
        if !silenced(row, &now_s) {
            plan.resolved.push(with_event(
                notice_from_row(row, now),
                DriftEvent::Resolved,
                Some(row),
                &now_s,
            ));
        }
        plan.writes.push(DriftWrite::Resolve { id: row.id });
    }
    plan
}

fn categories(d: &Drift) -> Vec<String> {
    let mut c: Vec<String> = d.changes.iter().map(|c| c.category.to_string()).collect();
    if c.is_empty() {
        c.push(match d.drift_type {
            DriftType::Modified => "other".into(),
            _ => "presence".into(),
        });
    }
    c.sort();
    c.dedup();
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Cause, Remedy, ResourceRef};
    use serde_json::json;

    fn drift(name: &str, fp: &str, sev: Severity) -> Drift {
        Drift {
            drift_type: DriftType::Modified,
            severity: sev,
            cause: Cause::Manual,
            resource: ResourceRef {
                api_version: "apps/v1".into(),
                kind: "Deployment".into(),
                namespace: Some("shop".into()),
                name: name.into(),
            },
            fingerprint: fp.into(),
            desired_origin: None,
            expected: false,
            changes: Vec::new(),
            remedy: Remedy {
                patch: None,
                verified: true,
                verification_error: None,
                kubectl: "kubectl patch …".into(),
                manifest: None,
                note: None,
                redacted: false,
                reverse: None,
                adopt: None,
            },
        }
    }

    fn row(id: i64, d: &Drift, extra: impl FnOnce(&mut DriftRecord)) -> DriftRecord {
        let mut r = DriftRecord {
            id,
            target: "prod".into(),
            identity: identity(d),
            fingerprint: d.fingerprint.clone(),
            resource: d.resource.to_string(),
            drift_type: "modified".into(),
            severity: d.severity,
            categories: vec![],
            status: crate::store::DriftStatus::Open,
            first_seen: "2026-11-01T00:00:00.000Z".into(),
            last_seen: "2026-11-01T00:00:00.000Z".into(),
            changed_at: "2026-11-01T00:00:00.000Z".into(),
            resolved_at: None,
            acked_at: None,
            acked_by: None,
            silenced_until: None,
            silence_reason: None,
            last_reminded_at: None,
            body: json!({}),
        };
        extra(&mut r);
        r
    }

    fn now() -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::parse_from_rfc3339("2026-11-03T00:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc)
    }

    const ALL: Visibility<'static> = Visibility {
        complete: true,
        visible: &|_| true,
    };

    #[test]
    fn opened_changed_escalated_resolved_unchanged() {
        let a = drift("a", "fa", Severity::Medium);
        let b = drift("b", "fb", Severity::Low);
        let c = drift("c", "fc", Severity::High);
        let prev = vec![row(1, &a, |_| {}), row(2, &b, |_| {}), row(3, &c, |_| {})];
        let observed = vec![
            a.clone(),                             // unchanged
            drift("b", "fb2", Severity::Critical), // escalated
            drift("d", "fd", Severity::Low),       // new
        ];
        let p = plan(&prev, &observed, Mode::DesiredVsLive, &ALL, None, now());
        assert_eq!(p.announce.len(), 1);
        assert_eq!(p.announce[0].resource, "Deployment shop/d");
        assert_eq!(p.escalated.len(), 1);
        assert_eq!(p.escalated[0].previous_severity, Some(Severity::Low));
        assert_eq!(p.resolved.len(), 1);
        assert_eq!(p.resolved[0].resource, "Deployment shop/c");
        assert!(p.writes.contains(&DriftWrite::Seen { id: 1 }));
        assert!(p.writes.contains(&DriftWrite::Resolve { id: 3 }));
        // An unchanged rescan says nothing.
        let again = plan(
            &[row(1, &a, |_| {})],
            std::slice::from_ref(&a),
            Mode::DesiredVsLive,
            &ALL,
            None,
            now(),
        );
        assert!(
            again.announce.is_empty() && again.escalated.is_empty() && again.resolved.is_empty()
        );
    }

    #[test]
    fn partial_scans_resolve_only_what_they_saw() {
        let a = drift("a", "fa", Severity::Medium);
        let b = drift("b", "fb", Severity::Medium);
        let prev = vec![row(1, &a, |_| {}), row(2, &b, |_| {})];
        let only_a = identity(&a);
        let vis = Visibility {
            complete: false,
            visible: &|id: &str| id == only_a,
        };
        let p = plan(&prev, &[], Mode::DesiredVsLive, &vis, None, now());
        assert_eq!(p.writes, vec![DriftWrite::Resolve { id: 1 }]);
    }

    #[test]
    fn reminders_acks_and_silences() {
        let a = drift("a", "fa", Severity::Medium);
        let day = Some(chrono::Duration::hours(24));
        let p = plan(
            &[row(1, &a, |_| {})],
            std::slice::from_ref(&a),
            Mode::DesiredVsLive,
            &ALL,
            day,
            now(),
        );
        assert_eq!(p.reminders.len(), 1);
        assert!(p.writes.contains(&DriftWrite::Reminded { id: 1 }));
        let acked = row(1, &a, |r| {
            r.acked_at = Some("2026-11-02T00:00:00.000Z".into())
        });
        assert!(
            plan(
                &[acked],
                std::slice::from_ref(&a),
                Mode::DesiredVsLive,
                &ALL,
                day,
                now()
            )
            .reminders
            .is_empty()
        );
        let reminded = row(1, &a, |r| {
            r.last_reminded_at = Some("2026-11-02T12:00:00.000Z".into())
        });
        assert!(
            plan(
                &[reminded],
                std::slice::from_ref(&a),
                Mode::DesiredVsLive,
                &ALL,
                day,
                now()
            )
            .reminders
            .is_empty()
        );
        let silenced = row(1, &a, |r| {
            r.silenced_until = Some("2026-12-01T00:00:00.000Z".into())
        });
        let p = plan(
            &[silenced],
            &[drift("a", "fa2", Severity::Critical)],
            Mode::DesiredVsLive,
            &ALL,
            day,
            now(),
        );
        assert!(p.escalated.is_empty() && p.announce.is_empty());
        assert_eq!(p.writes.len(), 1, "the change is still recorded");
    }

    #[test]
    fn ages() {
        assert_eq!(age("2026-11-02T21:00:00Z", now()), "3h");
        assert_eq!(age("2026-11-01T00:00:00Z", now()), "2d");
        assert_eq!(age("2026-11-02T23:15:00Z", now()), "45m");
        assert_eq!(age("garbage", now()), "");
    }
}
