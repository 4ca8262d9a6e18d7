//! SARIF 2.1.0 output (`--format sarif`), the format GitHub code scanning reads: one
//! `run` per invocation (GitHub rejects uploads that combine several runs of one tool and
//! category), one result per drifted field, and one per missing or unmanaged object.
//!
//! - `ruleId`: the change's category (`image`, `scaling`, … `presence` for a whole object);
//!   every category is listed in `tool.driver.rules` with its descriptions and help;
//! - `level`: from the severity: critical and high → `error`, medium → `warning`, low and
//!   info → `note` (expected divergences shown with `--show-expected`: `note`);
//! - `locations`: the desired (or `from`) manifest file, relative to the working directory
//!   under `uriBaseId` `%SRCROOT%`, at the line of the field when known (else of the
//!   object); objects without a file there point at the desired side's path; a logical
//!   location names the resource (`Deployment shop/web`);
//! - `partialFingerprints`: from the drift's fingerprint (and the field), so that GitHub
//!   keeps one alert per drift across uploads;
//! - `automationDetails.id`: `envdrift/ENV/`, so that uploads for several targets do not
//!   replace each other.
//!
//! Values are shown as the other outputs show them: Secret values are `sha256:` hashes.

use std::fmt::Write as _;
use std::path::{Component, Path};

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::{Mode, Report, inline_value, truncate};
use crate::model::{Category, ChangeOp, Drift, DriftType, FieldChange, Origin, Severity};

/// The schema a document names (the OASIS 2.1.0 errata 01 schema).
pub const SCHEMA_URI: &str =
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json";

/// The base id relative artifact URIs are under.
pub const SRCROOT: &str = "%SRCROOT%";

/// Widest value shown in a message.
const VALUE_WIDTH: usize = 120;

/// Where paths are relative to, and where results without a file point.
#[derive(Debug, Clone, Default)]
pub struct SarifOptions<'a> {
    /// The directory `%SRCROOT%` stands for (the working directory): absolute paths under
    /// it are made relative to it; other absolute paths become `file://` URIs.
    pub root: Option<&'a Path>,
    /// Where results for objects without a manifest file on the desired side point (an
    /// unmanaged object): the desired side's path, when it has one.
    pub fallback: Option<String>,
}

/// The SARIF level of a severity.
pub fn level(sev: Severity) -> &'static str {
    match sev {
        Severity::Critical | Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low | Severity::Info => "note",
    }
}

/// Rule name, short description and help of each category.
fn rule_text(c: Category) -> (&'static str, &'static str, &'static str) {
    match c {
        Category::Image => (
            "ImageDrift",
            "A container image differs from the desired state",
            "The image (or tag) running is not the one in the desired manifest: a hotfix set with `kubectl set image`, a rollout not synced back, or a pending deploy.",
        ),
        Category::Scaling => (
            "ScalingDrift",
            "Replica counts or autoscaling settings differ",
            "Replicas or autoscaler bounds differ. A field owned by an autoscaler is not reported; a manual `kubectl scale` is.",
        ),
        Category::Resources => (
            "ResourcesDrift",
            "Resource requests or limits differ",
            "CPU or memory requests or limits differ from the desired manifest (quantities are compared canonically: 1000m = 1).",
        ),
        Category::ConfigData => (
            "ConfigDataDrift",
            "ConfigMap data or container environment differs",
            "Configuration (ConfigMap data, environment variables, arguments) differs from the desired state.",
        ),
        Category::SecretData => (
            "SecretDataDrift",
            "Secret data differs (compared by hash)",
            "A Secret's data differs. Values are compared by SHA-256 hash and never shown in clear.",
        ),
        Category::Rbac => (
            "RbacDrift",
            "RBAC rules or bindings differ",
            "Roles, ClusterRoles or bindings grant something else than the desired manifests: review who changed them.",
        ),
        Category::Networking => (
            "NetworkingDrift",
            "Service, Ingress or network policy settings differ",
            "Ports, selectors, hosts or network policies differ from the desired state.",
        ),
        Category::SecurityContext => (
            "SecurityContextDrift",
            "A security context differs",
            "Privileges, capabilities, user ids or other security-context settings differ from the desired manifest.",
        ),
        Category::Scheduling => (
            "SchedulingDrift",
            "Scheduling constraints differ",
            "Node selectors, affinities, tolerations or priorities differ from the desired state.",
        ),
        Category::Metadata => (
            "MetadataDrift",
            "Labels or annotations differ",
            "Labels or annotations differ from the desired manifest.",
        ),
        Category::Presence => (
            "PresenceDrift",
            "An object is missing, or exists without being desired",
            "A desired object is not in the cluster (deleted, or never synced), or a live object is not in the desired state (created by hand).",
        ),
        Category::Other => (
            "OtherDrift",
            "A field differs from the desired state",
            "A field differs from the desired manifest.",
        ),
    }
}

fn rules() -> Vec<Value> {
    Category::ALL
        .iter()
        .map(|&c| {
            let (name, short, help) = rule_text(c);
            json!({
                "id": c.as_str(),
                "name": name,
                "shortDescription": {"text": short},
                "fullDescription": {"text": help},
                "help": {
                    "text": format!("{help} The message names the field and both values; the result's properties carry the fix (a `kubectl` command) and who made the change. `envdrift diff` shows the same drift with its verified patch."),
                },
                "defaultConfiguration": {"level": "warning"},
                "properties": {"tags": ["drift", "kubernetes", c.as_str()]},
            })
        })
        .collect()
}

fn rule_index(c: Category) -> usize {
    Category::ALL.iter().position(|&x| x == c).unwrap_or(0)
}

/// Percent-encodes what may not appear in a URI path (RFC 3986 unreserved and `/` stay).
fn encode_path(p: &str) -> String {
    let mut out = String::with_capacity(p.len());
    for b in p.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// `a/./b` → `a/b`; `None` when the path climbs out (`..`).
fn clean_relative(p: &Path) -> Option<String> {
    let mut parts = Vec::new();
    for c in p.components() {
        match c {
            Component::Normal(s) => parts.push(s.to_string_lossy().into_owned()),
            Component::CurDir => {}
            _ => return None,
        }
    }
    Some(parts.join("/"))
}

/// An artifact location for a file path: relative paths (and absolute ones under the
/// root) under `%SRCROOT%`, others as `file://` URIs.
fn artifact(path: &Path, root: Option<&Path>) -> Value {
    let rel = if path.is_absolute() {
        root.and_then(|r| path.strip_prefix(r).ok())
            .and_then(clean_relative)
    } else {
        clean_relative(path)
    };
    match rel {
        Some(r) if !r.is_empty() => json!({"uri": encode_path(&r), "uriBaseId": SRCROOT}),
        Some(_) => json!({"uri": "./", "uriBaseId": SRCROOT}),
        None if path.is_absolute() => {
            let p = path.to_string_lossy().replace('\\', "/");
            let p = if p.starts_with('/') {
                p
            } else {
                format!("/{p}")
            };
            json!({"uri": format!("file://{}", encode_path(&p))})
        }
        // `../x`: relative, but not under the root.
        None => json!({"uri": encode_path(&path.to_string_lossy().replace('\\', "/"))}),
    }
}

fn physical(d: &Drift, line: Option<usize>, opts: &SarifOptions<'_>) -> Option<Value> {
    match &d.desired_origin {
        Some(Origin::File {
            path, line: first, ..
        }) => {
            let start = line.unwrap_or(*first).max(1);
            Some(json!({
                "artifactLocation": artifact(path, opts.root),
                "region": {"startLine": start},
            }))
        }
        _ => opts
            .fallback
            .as_ref()
            .map(|f| json!({"artifactLocation": artifact(Path::new(f), opts.root)})),
    }
}

fn location(d: &Drift, line: Option<usize>, opts: &SarifOptions<'_>) -> Value {
    let mut loc = Map::new();
    if let Some(p) = physical(d, line, opts) {
        loc.insert("physicalLocation".into(), p);
    }
    loc.insert(
        "logicalLocations".into(),
        json!([{
            "name": d.resource.name,
            "fullyQualifiedName": d.resource.to_string(),
            "kind": "resource",
        }]),
    );
    Value::Object(loc)
}

fn who(c: &FieldChange) -> String {
    match &c.attribution {
        Some(a) => format!("{}, by {}", c.cause, a.manager),
        None => c.cause.to_string(),
    }
}

/// What changed, in one sentence: the field and both values.
fn change_text(rep: &Report<'_>, d: &Drift, c: &FieldChange) -> String {
    let (l, r) = (&rep.left.name, &rep.right.name);
    let (dv, lv) = (
        inline_value(&c.desired, VALUE_WIDTH),
        inline_value(&c.live, VALUE_WIDTH),
    );
    let what = match (rep.mode, c.op) {
        (Mode::DesiredVsLive, ChangeOp::Changed) => {
            format!("{} drifted: desired {dv}, live {lv}", c.field)
        }
        (Mode::DesiredVsLive, ChangeOp::Added) => format!("{} is set live only: {lv}", c.field),
        (Mode::DesiredVsLive, ChangeOp::Removed) => {
            format!("{} is missing live (desired: {dv})", c.field)
        }
        (Mode::EnvVsEnv, ChangeOp::Changed) => {
            format!("{} differs: {l} {dv}, {r} {lv}", c.field)
        }
        (Mode::EnvVsEnv, ChangeOp::Added) => format!("{} is only in {r}: {lv}", c.field),
        (Mode::EnvVsEnv, ChangeOp::Removed) => format!("{} is only in {l}: {dv}", c.field),
    };
    let mut s = format!("{}: {what} ({}", d.resource, who(c));
    if let Some(f) = &c.finding {
        let _ = write!(s, "; {f}");
    }
    if c.expected {
        s.push_str("; expected divergence");
    }
    s.push_str(").");
    if let Some(n) = &c.note {
        let _ = write!(s, " {n}.");
    }
    s
}

fn object_text(rep: &Report<'_>, d: &Drift) -> String {
    let (l, r) = (&rep.left.name, &rep.right.name);
    let what = match (rep.mode, d.drift_type) {
        (Mode::DesiredVsLive, DriftType::Missing) => "is desired but not live".to_string(),
        (Mode::DesiredVsLive, _) => "is live but not desired".to_string(),
        (Mode::EnvVsEnv, DriftType::Missing) => format!("is in {l} but not in {r}"),
        (Mode::EnvVsEnv, _) => format!("is in {r} but not in {l}"),
    };
    let resource = d.resource.to_string();
    let mut s = format!("{resource} {what} ({}).", d.cause);
    // The note, unless it says the same again.
    if let Some(n) = d.remedy.note.as_ref().filter(|n| !n.contains(&resource)) {
        let mut chars = n.trim_end_matches('.').chars();
        if let Some(first) = chars.next() {
            let _ = write!(s, " {}{}.", first.to_uppercase(), chars.as_str());
        }
    }
    s
}

fn fix_text(d: &Drift) -> String {
    truncate(&d.remedy.kubectl, 1000)
}

/// A result's fingerprint: the drift's, and for a field result the field's path too.
fn result_fingerprint(d: &Drift, c: Option<&FieldChange>) -> String {
    match c {
        None => d.fingerprint.clone(),
        Some(c) => {
            let h = Sha256::digest(format!("{}\n{}", d.fingerprint, c.path).as_bytes());
            h[..16].iter().map(|b| format!("{b:02x}")).collect()
        }
    }
}

fn result(rep: &Report<'_>, d: &Drift, c: Option<&FieldChange>, opts: &SarifOptions<'_>) -> Value {
    let (category, severity, text, line, expected) = match c {
        Some(c) => (
            c.category,
            c.severity,
            change_text(rep, d, c),
            c.line,
            c.expected || d.expected,
        ),
        None => (
            Category::Presence,
            d.severity,
            object_text(rep, d),
            None,
            d.expected,
        ),
    };
    let mut props = Map::new();
    props.insert("type".into(), json!(rep.mode.type_name(d.drift_type)));
    props.insert("severity".into(), json!(severity.as_str()));
    props.insert("category".into(), json!(category.as_str()));
    props.insert("resource".into(), json!(d.resource.to_string()));
    props.insert("fingerprint".into(), json!(d.fingerprint));
    if let Some(c) = c {
        props.insert("field".into(), json!(c.field));
        props.insert("path".into(), json!(c.path));
        props.insert("op".into(), json!(c.op.as_str()));
        props.insert("cause".into(), json!(c.cause.as_str()));
        if let Some(a) = &c.attribution {
            props.insert("manager".into(), json!(a.manager));
        }
        if let Some(f) = &c.finding {
            props.insert("finding".into(), json!(f));
        }
    } else {
        props.insert("cause".into(), json!(d.cause.as_str()));
    }
    if expected {
        props.insert("expected".into(), json!(true));
    }
    props.insert("fix".into(), json!(fix_text(d)));
    props.insert("fixVerified".into(), json!(d.remedy.verified));
    json!({
        "ruleId": category.as_str(),
        "ruleIndex": rule_index(category),
        "level": if expected { "note" } else { level(severity) },
        "message": {"text": text},
        "locations": [location(d, line, opts)],
        "partialFingerprints": {"envdrift/v1": result_fingerprint(d, c)},
        "properties": props,
    })
}

/// `envdrift/ENV/`: the target checked (desired vs live), or `FROM-vs-TO`.
fn automation_id(rep: &Report<'_>) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                    c
                } else {
                    '-'
                }
            })
            .collect()
    };
    match rep.mode {
        Mode::DesiredVsLive => format!("envdrift/{}/", clean(&rep.right.name)),
        Mode::EnvVsEnv => format!(
            "envdrift/{}-vs-{}/",
            clean(&rep.left.name),
            clean(&rep.right.name)
        ),
    }
}

fn notifications(rep: &Report<'_>, opts: &SarifOptions<'_>) -> Vec<Value> {
    let mut out = Vec::new();
    for e in &rep.errors {
        let mut n = Map::new();
        n.insert("level".into(), json!("error"));
        n.insert("message".into(), json!({"text": e.to_string()}));
        if let Some(line) = e.line {
            let mut region = Map::new();
            region.insert("startLine".into(), json!(line.max(1)));
            if let Some(col) = e.column {
                region.insert("startColumn".into(), json!(col.max(1)));
            }
            n.insert(
                "locations".into(),
                json!([{"physicalLocation": {
                    "artifactLocation": artifact(Path::new(&e.source), opts.root),
                    "region": region,
                }}]),
            );
        }
        out.push(Value::Object(n));
    }
    for note in rep.all_notes() {
        out.push(json!({"level": "note", "message": {"text": note}}));
    }
    out
}

/// The report as a SARIF 2.1.0 log.
pub fn to_value(rep: &Report<'_>, opts: &SarifOptions<'_>) -> Value {
    let mut results = Vec::new();
    for d in &rep.result.drifts {
        if d.drift_type == DriftType::Modified && !d.changes.is_empty() {
            for c in &d.changes {
                results.push(result(rep, d, Some(c), opts));
            }
        } else {
            results.push(result(rep, d, None, opts));
        }
    }
    let (l, r) = rep.mode.side_names();
    let side = |s: &super::Side| json!({"name": s.name, "source": s.source, "commit": s.commit});
    let s = rep.summary();
    json!({
        "$schema": SCHEMA_URI,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "envdrift",
                "version": env!("CARGO_PKG_VERSION"),
                "semanticVersion": env!("CARGO_PKG_VERSION"),
                "rules": rules(),
            }},
            "automationDetails": {"id": automation_id(rep)},
            "originalUriBaseIds": {SRCROOT: {
                "description": {"text": "The directory envdrift ran in (in CI: the repository's checkout)"},
            }},
            "invocations": [{
                "executionSuccessful": rep.errors.is_empty(),
                "toolExecutionNotifications": notifications(rep, opts),
            }],
            "results": results,
            "properties": {
                l: side(&rep.left),
                r: side(&rep.right),
                "compared": rep.result.compared,
                "drifts": s.drifts,
                "changes": s.changes,
            },
        }],
    })
}

/// Pretty SARIF text with a trailing newline.
pub fn render(rep: &Report<'_>, opts: &SarifOptions<'_>) -> String {
    let mut s = serde_json::to_string_pretty(&to_value(rep, opts)).unwrap_or_else(|e| {
        // Serializing a Value cannot fail; keep a valid log if it ever does.
        format!(
            "{{\"version\":\"2.1.0\",\"runs\":[],\"properties\":{{\"error\":{}}}}}",
            Value::String(e.to_string())
        )
    });
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels() {
        assert_eq!(level(Severity::Critical), "error");
        assert_eq!(level(Severity::High), "error");
        assert_eq!(level(Severity::Medium), "warning");
        assert_eq!(level(Severity::Low), "note");
        assert_eq!(level(Severity::Info), "note");
    }

    #[test]
    fn artifact_uris() {
        let root = Path::new("/work/repo");
        assert_eq!(
            artifact(Path::new("./deploy/web app.yaml"), Some(root)),
            json!({"uri": "deploy/web%20app.yaml", "uriBaseId": SRCROOT})
        );
        assert_eq!(
            artifact(Path::new("/work/repo/k8s/a.yaml"), Some(root)),
            json!({"uri": "k8s/a.yaml", "uriBaseId": SRCROOT})
        );
        assert_eq!(
            artifact(Path::new("/elsewhere/a.yaml"), Some(root)),
            json!({"uri": "file:///elsewhere/a.yaml"})
        );
        assert_eq!(
            artifact(Path::new("../up/a.yaml"), Some(root)),
            json!({"uri": "../up/a.yaml"})
        );
    }

    #[test]
    fn every_category_is_a_rule() {
        let r = rules();
        assert_eq!(r.len(), Category::ALL.len());
        for (i, c) in Category::ALL.iter().enumerate() {
            assert_eq!(r[i]["id"], c.as_str());
            assert_eq!(rule_index(*c), i);
        }
    }
}
