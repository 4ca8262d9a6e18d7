//! JSON output, schema `envdrift.diff/v1` (docs/json-schema.md). Built explicitly here so
//! that the schema stays stable whatever the internal types become.

use serde_json::{Map, Value, json};

use super::{Mode, Report, Side};
use crate::model::{Drift, FieldChange, Origin};

/// Schema identifier written in every document.
pub const SCHEMA: &str = "envdrift.diff/v1";

fn side(s: &Side) -> Value {
    json!({"name": s.name, "source": s.source, "commit": s.commit, "stale": s.stale, "objects": s.objects})
}

fn origin(o: &Origin) -> Value {
    match o {
        Origin::File { path, line, commit } => {
            json!({"file": path.display().to_string(), "line": line, "commit": commit})
        }
        Origin::Live { resource_version } => json!({"resourceVersion": resource_version}),
    }
}

fn change(c: &FieldChange) -> Value {
    let a = c.attribution.as_ref();
    let mut v = json!({
        "path": c.path,
        "field": c.field,
        "op": c.op.as_str(),
        "desired": c.desired,
        "live": c.live,
        "category": c.category.as_str(),
        "severity": c.severity.as_str(),
        "cause": c.cause.as_str(),
        "manager": a.map(|a| a.manager.clone()),
        "operation": a.and_then(|a| a.operation.clone()),
        "time": a.and_then(|a| a.time.clone()),
        "subresource": a.and_then(|a| a.subresource.clone()),
        "note": c.note,
        "expected": c.expected,
        "finding": c.finding,
    });
    // Only when known (plain YAML manifests): the line of the field in the drift's
    // `origin.file`.
    if let (Some(line), Some(m)) = (c.line, v.as_object_mut()) {
        m.insert("line".into(), json!(line));
    }
    v
}

/// One drift as JSON (also used by other outputs that embed drifts).
pub fn drift(d: &Drift, mode: Mode) -> Value {
    let r = &d.remedy;
    let rev = r.reverse.as_ref();
    json!({
        "type": mode.type_name(d.drift_type),
        "severity": d.severity.as_str(),
        "cause": d.cause.as_str(),
        "fingerprint": d.fingerprint,
        "resource": {
            "apiVersion": d.resource.api_version,
            "kind": d.resource.kind,
            "namespace": d.resource.namespace,
            "name": d.resource.name,
        },
        "origin": d.desired_origin.as_ref().map(origin),
        "changes": d.changes.iter().map(change).collect::<Vec<_>>(),
        "patch": r.patch,
        "patch_verified": r.verified,
        "patch_error": r.verification_error,
        "kubectl": r.kubectl,
        "manifest": r.manifest,
        "note": r.note,
        "redacted": r.redacted,
        "expected": d.expected,
        "patch_reverse": rev.map(|x| x.patch.clone()),
        "patch_reverse_verified": rev.map(|x| x.verified),
        "kubectl_reverse": rev.map(|x| x.kubectl.clone()),
        "adopt": r.adopt.as_ref().map(|a| json!({
            "file": a.file,
            "diff": a.diff,
            "notes": a.notes,
        })),
    })
}

/// The whole report as a JSON value.
pub(crate) fn to_value(rep: &Report<'_>) -> Value {
    let (l, r) = rep.mode.side_names();
    let s = rep.summary();
    let by_type: Map<String, Value> = s
        .by_type
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    let by_severity: Map<String, Value> = s
        .by_severity
        .iter()
        .rev()
        .map(|(k, v)| (k.as_str().to_string(), json!(v)))
        .collect();
    let sup = &rep.result.suppressed;
    let mut doc = Map::new();
    doc.insert("schema".into(), json!(SCHEMA));
    doc.insert(l.into(), side(&rep.left));
    doc.insert(r.into(), side(&rep.right));
    doc.insert(
        "summary".into(),
        json!({
            "drifts": s.drifts,
            "changes": s.changes,
            "compared": rep.result.compared,
            "by_type": by_type,
            "by_severity": by_severity,
            "suppressed": {
                "defaults": sup.defaults,
                "controller": sup.controller,
                "ignored": sup.ignored,
                "server_set": sup.server_set,
                "expected": sup.expected,
                "annotated": sup.annotated,
            },
            "unknown": rep.result.unknown.len(),
            "errors": rep.errors.len(),
        }),
    );
    doc.insert(
        "drifts".into(),
        rep.result
            .drifts
            .iter()
            .map(|d| drift(d, rep.mode))
            .collect(),
    );
    doc.insert(
        "errors".into(),
        rep.errors
            .iter()
            .map(|e| {
                json!({"side": e.side, "source": e.source, "line": e.line, "column": e.column,
                    "message": e.message})
            })
            .collect(),
    );
    doc.insert(
        "skipped".into(),
        rep.skipped
            .iter()
            .map(|s| json!({"source": s.source, "reason": s.reason}))
            .collect(),
    );
    doc.insert(
        "unknown".into(),
        rep.result
            .unknown
            .iter()
            .map(|k| json!({"group": k.group, "kind": k.kind, "namespace": k.namespace, "name": k.name}))
            .collect(),
    );
    let notes = rep.all_notes();
    if !notes.is_empty() {
        // Withheld drifts, kinds compared without a schema, unreadable CRD schemas.
        doc.insert("notes".into(), json!(notes));
    }
    Value::Object(doc)
}

/// Pretty JSON text with a trailing newline.
pub fn render(rep: &Report<'_>) -> String {
    let mut s = serde_json::to_string_pretty(&to_value(rep)).unwrap_or_else(|e| {
        // Serializing a Value cannot fail; keep a valid document if it ever does.
        format!(
            "{{\"schema\":\"{SCHEMA}\",\"error\":{}}}",
            Value::String(e.to_string())
        )
    });
    s.push('\n');
    s
}
