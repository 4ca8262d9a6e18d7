//! Suggested patches: the RFC 6902 JSON Patch that brings a live object back to desired,
//! verified by applying it (with the `json-patch` crate) and comparing again, and the
//! `kubectl` command that applies it.
//!
//! Operation order keeps every pointer valid while the patch applies: first replacements
//! and map-key adds/removes (they refer to the original indices), then list appends
//! (`/-`, which move no index), then list-item removals from the highest index down, each
//! guarded by a `test` of the item's key so that a list that changed in between makes
//! `kubectl patch` fail instead of removing the wrong item.

use std::cmp::Ordering;

use serde_json::{Value, json};

use super::compare::{PatchOp, RawChange};
use crate::model::ResourceKey;
use crate::redact::{is_hashed, short_hash};

/// Orders the operations of a set of changes (see the module doc).
pub fn assemble(changes: &[RawChange]) -> Vec<Value> {
    let mut first = Vec::new();
    let mut appends = Vec::new();
    type Removal<'c> = (
        &'c String,
        &'c Option<(String, Value)>,
        &'c [(String, Value)],
    );
    let mut removes: Vec<Removal<'_>> = Vec::new();
    for c in changes {
        match &c.patch {
            PatchOp::Replace {
                path,
                value,
                guards,
            } => guarded(
                &mut first,
                guards,
                json!({"op": "replace", "path": path, "value": value}),
            ),
            PatchOp::Add {
                path,
                value,
                guards,
            } => guarded(
                &mut first,
                guards,
                json!({"op": "add", "path": path, "value": value}),
            ),
            PatchOp::Remove { path, guards } => {
                guarded(&mut first, guards, json!({"op": "remove", "path": path}))
            }
            PatchOp::Append {
                path,
                value,
                guards,
            } => guarded(
                &mut appends,
                guards,
                json!({"op": "add", "path": path, "value": value}),
            ),
            PatchOp::RemoveItem { path, test, guards } => removes.push((path, test, guards)),
        }
    }
    removes.sort_by(|a, b| pointer_cmp(b.0, a.0));
    let mut ops = first;
    ops.extend(appends);
    for (path, test, guards) in removes {
        let mut tests: Vec<(String, Value)> = guards.to_vec();
        tests.extend(test.iter().cloned());
        guarded(&mut ops, &tests, json!({"op": "remove", "path": path}));
    }
    ops
}

/// Pushes `op` after `test`s of its guards, leaving out a test identical to one already
/// made since the last operation that could move an index (a removal).
fn guarded(ops: &mut Vec<Value>, guards: &[(String, Value)], op: Value) {
    for (path, value) in guards {
        let t = json!({"op": "test", "path": path, "value": value});
        let since_removal = ops
            .iter()
            .rev()
            .take_while(|o| o.get("op").and_then(Value::as_str) != Some("remove"));
        let mut seen = since_removal;
        if !seen.any(|o| *o == t) {
            ops.push(t);
        }
    }
    ops.push(op);
}

/// Compares JSON Pointers segment by segment, numbers numerically.
fn pointer_cmp(a: &str, b: &str) -> Ordering {
    let mut x = a.split('/');
    let mut y = b.split('/');
    loop {
        match (x.next(), y.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(p), Some(q)) => {
                let o = match (p.parse::<u64>(), q.parse::<u64>()) {
                    (Ok(m), Ok(n)) => m.cmp(&n),
                    _ => p.cmp(q),
                };
                if o != Ordering::Equal {
                    return o;
                }
            }
        }
    }
}

/// Applies `ops` to a copy of `live`. The error names the failing operation.
pub fn apply(live: &Value, ops: &[Value]) -> Result<Value, String> {
    let patch: json_patch::Patch = serde_json::from_value(Value::Array(ops.to_vec()))
        .map_err(|e| format!("patch is not valid RFC 6902: {e}"))?;
    let mut doc = live.clone();
    json_patch::patch(&mut doc, &patch).map_err(|e| format!("patch does not apply: {e}"))?;
    Ok(doc)
}

/// Replaces hashed Secret values in a patch by placeholders that say what to put there.
/// Returns whether anything was replaced.
pub(crate) fn redact_ops(key: &ResourceKey, ops: &mut [Value]) -> bool {
    if !(key.group.is_empty() && key.kind == "Secret") {
        return false;
    }
    let mut redacted = false;
    for op in ops.iter_mut() {
        let path = op
            .get("path")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if let Some(v) = op.get_mut("value") {
            redacted |= redact_value(v, &path);
        }
    }
    redacted
}

/// `kubectl apply -f -` with `manifest` as YAML in a quoted heredoc (nothing in it is
/// expanded by the shell): applies that one object.
pub(crate) fn kubectl_apply_heredoc(manifest: &Value) -> String {
    let mut yaml = serde_saphyr::to_string(manifest).unwrap_or_else(|_| manifest.to_string());
    if !yaml.ends_with('\n') {
        yaml.push('\n');
    }
    // A line that is exactly the delimiter would end the heredoc early: pick another one.
    let mut delim = "EOF".to_string();
    while yaml.lines().any(|l| l == delim) {
        delim.push('_');
    }
    format!("kubectl apply -f - <<'{delim}'\n{yaml}{delim}")
}

/// Replaces hashed Secret values in a whole manifest (a missing Secret) by placeholders.
pub(crate) fn redact_manifest(key: &ResourceKey, manifest: &mut Value) -> bool {
    if !(key.group.is_empty() && key.kind == "Secret") {
        return false;
    }
    match manifest.get_mut("data") {
        Some(data) => redact_value(data, "/data"),
        None => false,
    }
}

fn redact_value(v: &mut Value, path: &str) -> bool {
    match v {
        Value::String(s) if is_hashed(s) => {
            *s = format!(
                "<base64 of the desired value of {path} ({}) — take it from the desired source>",
                short_hash(s)
            );
            true
        }
        Value::Object(m) => {
            let mut any = false;
            for (k, x) in m.iter_mut() {
                any |= redact_value(x, &format!("{path}/{k}"));
            }
            any
        }
        _ => false,
    }
}

/// The kubectl resource name: `deployment.apps`, `configmap`, `certificate.cert-manager.io`.
pub(crate) fn kubectl_resource(key: &ResourceKey) -> String {
    let kind = key.kind.to_ascii_lowercase();
    if key.group.is_empty() {
        kind
    } else {
        format!("{kind}.{}", key.group)
    }
}

/// Quotes a string for a POSIX shell (single quotes).
pub(crate) fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@,".contains(c))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', "'\\''"))
}

fn ns_flag(key: &ResourceKey) -> String {
    match &key.namespace {
        Some(ns) => format!(" -n {}", shell_quote(ns)),
        None => String::new(),
    }
}

/// `kubectl patch deployment.apps web -n shop --type=json -p '[…]'`.
pub(crate) fn kubectl_patch(key: &ResourceKey, ops: &[Value]) -> String {
    let body = Value::Array(ops.to_vec()).to_string();
    format!(
        "kubectl patch {} {}{} --type=json -p {}",
        kubectl_resource(key),
        shell_quote(&key.name),
        ns_flag(key),
        shell_quote(&body)
    )
}

/// `kubectl delete configmap debug -n shop`.
pub(crate) fn kubectl_delete(key: &ResourceKey) -> String {
    format!(
        "kubectl delete {} {}{}",
        kubectl_resource(key),
        shell_quote(&key.name),
        ns_flag(key)
    )
}

#[cfg(test)]
mod tests {

    #[test]
    fn apply_heredoc_hands_kubectl_exactly_the_manifest() {
        // A shell function stands in for kubectl and prints what it was given on stdin.
        let manifest = serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "x", "namespace": "n"},
            "data": {"EOF": "EOF", "dollar": "$HOME `id`", "q": "it's"}
        });
        let cmd = kubectl_apply_heredoc(&manifest);
        assert!(cmd.starts_with("kubectl apply -f - <<'EOF"), "{cmd}");
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("kubectl() {{ cat; }}\n{cmd}\n"))
            .output()
            .expect("sh runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let back: Value =
            serde_saphyr::from_str(&String::from_utf8_lossy(&out.stdout)).expect("YAML");
        assert_eq!(back, manifest);
    }

    use super::*;

    #[test]
    fn pointer_order_is_numeric() {
        assert_eq!(pointer_cmp("/a/10", "/a/9"), Ordering::Greater);
        assert_eq!(pointer_cmp("/a/2/b/3", "/a/2"), Ordering::Greater);
        assert_eq!(pointer_cmp("/a/1", "/a/1"), Ordering::Equal);
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("web"), "web");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote("[1]"), "'[1]'");
    }

    #[test]
    fn kubectl_lines() {
        let key = ResourceKey {
            group: "apps".into(),
            kind: "Deployment".into(),
            namespace: Some("shop".into()),
            name: "web".into(),
        };
        let ops = vec![json!({"op": "replace", "path": "/spec/replicas", "value": 2})];
        assert_eq!(
            kubectl_patch(&key, &ops),
            r#"kubectl patch deployment.apps web -n shop --type=json -p '[{"op":"replace","path":"/spec/replicas","value":2}]'"#
        );
        assert_eq!(
            kubectl_delete(&key),
            "kubectl delete deployment.apps web -n shop"
        );
    }

    #[test]
    fn apply_reports_failures() {
        let live = json!({"a": [1, 2]});
        let ok = apply(&live, &[json!({"op": "remove", "path": "/a/1"})]).unwrap();
        assert_eq!(ok, json!({"a": [1]}));
        let err = apply(&live, &[json!({"op": "test", "path": "/a/0", "value": 9})]).unwrap_err();
        assert!(err.starts_with("patch does not apply"), "{err}");
    }
}
