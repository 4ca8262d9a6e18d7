//! Secret handling: Secret values never leave the process in clear.
//!
//! Every `Secret` is rewritten the moment it is read ([`redact_secret`]): each value of
//! `data` (base64) and `stringData` (text) becomes `sha256:<hex of the decoded bytes>`,
//! `stringData` is folded into `data` the way the API server does it, and the
//! `kubectl.kubernetes.io/last-applied-configuration` annotation (which `kubectl apply`
//! fills with the clear values) is rewritten the same way. The engine then compares
//! hashes, and renderers show them shortened ([`short_hash`]).

use base64::Engine as _;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// Prefix of hashed Secret values.
pub const HASH_PREFIX: &str = "sha256:";

/// The annotation `kubectl apply` writes with the whole applied object.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// `sha256:<64 hex digits>` of raw bytes.
pub fn hash_bytes(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut out = String::with_capacity(HASH_PREFIX.len() + 64);
    out.push_str(HASH_PREFIX);
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// True for a value already in hashed form.
pub fn is_hashed(s: &str) -> bool {
    s.len() == HASH_PREFIX.len() + 64
        && s.starts_with(HASH_PREFIX)
        && s[HASH_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_hexdigit())
}

/// `sha256:ab12cd34ef56…`: the first 12 hex digits, for display.
pub fn short_hash(s: &str) -> String {
    if is_hashed(s) {
        format!("{}…", &s[..HASH_PREFIX.len() + 12])
    } else {
        s.to_string()
    }
}

/// Hash one `data` value (base64). A value that is not valid base64 is hashed as text, so
/// that a broken value still compares unequal to a good one without being shown.
fn hash_data_value(v: &Value) -> Value {
    match v {
        Value::String(s) if is_hashed(s) => v.clone(),
        Value::String(s) => {
            let compact: String = s.chars().filter(|c| !c.is_whitespace()).collect();
            match base64::engine::general_purpose::STANDARD.decode(compact.as_bytes()) {
                Ok(bytes) => Value::String(hash_bytes(&bytes)),
                Err(_) => Value::String(hash_bytes(s.as_bytes())),
            }
        }
        Value::Null => Value::Null,
        other => Value::String(hash_bytes(other.to_string().as_bytes())),
    }
}

fn hash_string_value(v: &Value) -> Value {
    match v {
        Value::String(s) if is_hashed(s) => v.clone(),
        Value::String(s) => Value::String(hash_bytes(s.as_bytes())),
        Value::Null => Value::Null,
        // YAML may turn `PORT: 5432` into a number; the API server would store its text.
        other => Value::String(hash_bytes(scalar_text(other).as_bytes())),
    }
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Rewrites a Secret's body in place: hashes `data`, folds `stringData` into `data`.
fn redact_secret_body(obj: &mut Map<String, Value>) {
    let mut data: Map<String, Value> = match obj.remove("data") {
        Some(Value::Object(m)) => m
            .into_iter()
            .map(|(k, v)| {
                let h = hash_data_value(&v);
                (k, h)
            })
            .collect(),
        Some(Value::Null) | None => Map::new(),
        Some(other) => {
            // Not a map: keep a hash of the whole thing so that nothing leaks.
            let mut m = Map::new();
            m.insert(
                String::new(),
                hash_string_value(&Value::String(other.to_string())),
            );
            m
        }
    };
    if let Some(sd) = obj.remove("stringData") {
        if let Value::Object(m) = sd {
            for (k, v) in m {
                data.insert(k, hash_string_value(&v));
            }
        } else if !sd.is_null() {
            data.insert(
                String::new(),
                hash_string_value(&Value::String(sd.to_string())),
            );
        }
    }
    if !data.is_empty() {
        obj.insert("data".to_string(), Value::Object(data));
    }
}

/// If `value` is a core/v1 Secret, hash all its values (see the module doc).
pub fn redact_secret(value: &mut Value) {
    if !is_secret(value) {
        return;
    }
    let Some(obj) = value.as_object_mut() else {
        return;
    };
    redact_secret_body(obj);
    if let Some(ann) = obj
        .get_mut("metadata")
        .and_then(|m| m.get_mut("annotations"))
        .and_then(Value::as_object_mut)
        && let Some(Value::String(applied)) = ann.get_mut(LAST_APPLIED)
    {
        *applied = match serde_json::from_str::<Value>(applied) {
            Ok(Value::Object(mut m)) => {
                redact_secret_body(&mut m);
                Value::Object(m).to_string()
            }
            // Unparseable: drop the content rather than keep clear values.
            _ => String::from("{}"),
        };
    }
}

/// True for `apiVersion: v1, kind: Secret`.
pub fn is_secret(value: &Value) -> bool {
    value.get("kind").and_then(Value::as_str) == Some("Secret")
        && value.get("apiVersion").and_then(Value::as_str) == Some("v1")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn data_and_string_data_hash_to_the_same_value() {
        let mut a = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
            "data": {"pw": "aHVudGVyMg=="}});
        let mut b = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
            "stringData": {"pw": "hunter2"}});
        redact_secret(&mut a);
        redact_secret(&mut b);
        assert_eq!(a["data"]["pw"], b["data"]["pw"]);
        assert!(b.get("stringData").is_none());
        let text = serde_json::to_string(&a).unwrap() + &serde_json::to_string(&b).unwrap();
        assert!(!text.contains("hunter2") && !text.contains("aHVudGVyMg"));
        assert!(is_hashed(a["data"]["pw"].as_str().unwrap()));
    }

    #[test]
    fn last_applied_is_redacted() {
        let applied =
            json!({"apiVersion":"v1","kind":"Secret","stringData":{"pw":"hunter2"}}).to_string();
        let mut s = json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "s", "annotations": {LAST_APPLIED: applied}},
            "data": {"pw": "aHVudGVyMg=="}});
        redact_secret(&mut s);
        let text = s.to_string();
        assert!(!text.contains("hunter2"), "{text}");
        let inner: Value =
            serde_json::from_str(s["metadata"]["annotations"][LAST_APPLIED].as_str().unwrap())
                .unwrap();
        assert_eq!(inner["data"]["pw"], s["data"]["pw"]);
    }

    #[test]
    fn other_kinds_untouched_and_hashes_idempotent() {
        let mut cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": "b"}});
        let before = cm.clone();
        redact_secret(&mut cm);
        assert_eq!(cm, before);
        let mut s = json!({"apiVersion": "v1", "kind": "Secret", "data": {"a": "YQ=="}});
        redact_secret(&mut s);
        let once = s.clone();
        redact_secret(&mut s);
        assert_eq!(s, once);
        assert_eq!(
            short_hash(s["data"]["a"].as_str().unwrap()).chars().count(),
            7 + 12 + 1
        );
    }
}
