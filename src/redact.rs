//! Secret handling: Secret values never leave the process in clear.
//!
//! Every `Secret` is rewritten the moment it is read ([`redact_secret`]): each value of
//! `data` (base64) and `stringData` (text) becomes `sha256:<hex of the decoded bytes>`,
//! `stringData` is folded into `data` the way the API server does it, and the
//! `kubectl.kubernetes.io/last-applied-configuration` annotation (which `kubectl apply`
//! fills with the clear values) is rewritten the same way. The engine then compares
//! hashes, and renderers show them shortened ([`short_hash`]).
//!
//! URLs are shown through [`redact_url`], the one function for every URL envdrift prints,
//! logs or stores: user info and credential-looking query parameters become `***`.

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
pub(crate) fn short_hash(s: &str) -> String {
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
pub(crate) fn redact_secret(value: &mut Value) {
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
pub(crate) fn is_secret(value: &Value) -> bool {
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

/// A URL without its secrets, for messages, logs, API responses and the store:
/// the password of the user info (`https://user:tok@host` → `https://user:***@host`), a
/// bare user info on http(s) (`https://TOKEN@host` → `https://***@host`), and the value of
/// every query parameter whose name looks like a credential ([`is_credential_name`]:
/// `?access_token=abc` → `?access_token=***`). Text without `://` (local paths, scp-like
/// `git@host:org/repo`) is returned as it is.
pub(crate) fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let scheme = &url[..scheme_end];
    let after = &url[scheme_end + 3..];
    let auth_end = after.find(['/', '?', '#']).unwrap_or(after.len());
    let authority = &after[..auth_end];
    let authority = match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            let user = match userinfo.split_once(':') {
                Some((u, _)) => format!("{u}:***"),
                // A bare user info on http(s) is usually a token (`https://TOKEN@host`).
                None if scheme.starts_with("http") => "***".to_string(),
                None => userinfo.to_string(),
            };
            format!("{user}@{}", &authority[at + 1..])
        }
        None => authority.to_string(),
    };
    format!("{scheme}://{authority}{}", redact_query(&after[auth_end..]))
}

/// The secret parts of a URL that [`redact_url`] hides (the user info's password or bare
/// token, credential query values), to scrub them from text that quotes the URL (errors of
/// libraries).
pub(crate) fn url_secrets(url: &str) -> Vec<String> {
    let mut out = Vec::new();
    let Some(scheme_end) = url.find("://") else {
        return out;
    };
    let after = &url[scheme_end + 3..];
    let auth_end = after.find(['/', '?', '#']).unwrap_or(after.len());
    if let Some(at) = after[..auth_end].rfind('@') {
        let userinfo = &after[..at];
        match userinfo.split_once(':') {
            Some((_, p)) => out.push(p.to_string()),
            None if url.starts_with("http") => out.push(userinfo.to_string()),
            None => {}
        }
    }
    let rest = &after[auth_end..];
    let rest = rest.split('#').next().unwrap_or("");
    if let Some((_, query)) = rest.split_once('?') {
        for p in query.split('&') {
            if let Some((n, v)) = p.split_once('=')
                && is_credential_name(n)
                && !v.is_empty()
            {
                out.push(v.to_string());
            }
        }
    }
    out.retain(|s| !s.is_empty());
    out
}

/// `text` with every secret of `url` ([`url_secrets`]) replaced by `***`.
pub(crate) fn scrub_url_secrets(text: &str, url: &str) -> String {
    let mut out = text.to_string();
    for s in url_secrets(url) {
        out = out.replace(&s, "***");
    }
    out
}

/// Path, query and fragment of a URL with credential query values replaced by `***`.
fn redact_query(rest: &str) -> String {
    let (main, fragment) = match rest.find('#') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let Some((path, query)) = main.split_once('?') else {
        return rest.to_string();
    };
    let params: Vec<String> = query
        .split('&')
        .map(|p| match p.split_once('=') {
            Some((n, v)) if is_credential_name(n) && !v.is_empty() => format!("{n}=***"),
            _ => p.to_string(),
        })
        .collect();
    format!("{path}?{}{fragment}", params.join("&"))
}

/// Whether a query parameter's name looks like a credential (case-insensitive): `token`,
/// `access_token`, `private_token`, `password`, `passwd`, `pwd`, `key`, `api_key`, `secret`,
/// `client_secret`, `sig`, `signature`, `auth`, `authorization`, `credential`, `session`,
/// `X-Amz-Signature`, `X-Amz-Security-Token`, …
pub(crate) fn is_credential_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase().replace('-', "_");
    let n = n.trim();
    const PARTS: [&str; 8] = [
        "token",
        "secret",
        "passw",
        "signature",
        "credential",
        "auth",
        "session",
        "cookie",
    ];
    PARTS.iter().any(|p| n.contains(p))
        || matches!(n, "sig" | "key" | "pwd" | "pass" | "apikey" | "code")
        || n.ends_with("_key")
        || n.ends_with("_sig")
        || n.ends_with("_pwd")
}

#[cfg(test)]
mod url_tests {
    use super::*;

    #[test]
    fn user_info_is_masked() {
        assert_eq!(
            redact_url("https://bot:s3cr3t@example.com/x.git"),
            "https://bot:***@example.com/x.git"
        );
        assert_eq!(
            redact_url("https://s3cr3t@example.com/x"),
            "https://***@example.com/x"
        );
        assert_eq!(
            redact_url("ssh://git@example.com/x.git"),
            "ssh://git@example.com/x.git"
        );
        assert_eq!(redact_url("https://tok@host"), "https://***@host");
    }

    #[test]
    fn credential_query_parameters_are_masked() {
        for name in [
            "token",
            "access_token",
            "private_token",
            "PRIVATE-TOKEN",
            "password",
            "passwd",
            "key",
            "api_key",
            "secret",
            "client_secret",
            "sig",
            "signature",
            "auth",
            "X-Amz-Signature",
            "X-Amz-Security-Token",
        ] {
            let url = format!("https://example.com/r.git?ref=main&{name}=hunter2&x=1#f");
            let shown = redact_url(&url);
            assert_eq!(
                shown,
                format!("https://example.com/r.git?ref=main&{name}=***&x=1#f"),
                "{name}"
            );
            assert_eq!(url_secrets(&url), ["hunter2"], "{name}");
        }
    }

    #[test]
    fn other_parameters_and_paths_stay() {
        for url in [
            "https://example.com/r.git?ref=main&depth=1",
            "https://example.com/r.git",
            "https://example.com?token=",
            "/srv/git/repo?token=x",
            "git@github.com:acme/deploy.git",
            "file:///srv/git/repo.git",
        ] {
            assert_eq!(redact_url(url), url);
        }
    }

    #[test]
    fn query_without_path_and_both_forms_at_once() {
        assert_eq!(
            redact_url("https://u:p@example.com?access_token=abc&monkey=1"),
            "https://u:***@example.com?access_token=***&monkey=1"
        );
        let url = "https://u:p4ss@example.com/r?token=t0k";
        assert_eq!(url_secrets(url), ["p4ss", "t0k"]);
        assert_eq!(
            scrub_url_secrets(&format!("cannot fetch {url}: 401"), url),
            "cannot fetch https://u:***@example.com/r?token=***: 401"
        );
    }
}
