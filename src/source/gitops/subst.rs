//! Flux post-build variable substitution (`spec.postBuild`), on the rendered YAML as
//! kustomize-controller does it: each object's text, `${var}`, `${var:=default}`,
//! `${var:-default}`, `${var=default}`, `${var-default}`; `$${var}` stays `${var}`; a bare
//! `$var` is left alone; unset variables become empty; objects labelled or annotated
//! `kustomize.toolkit.fluxcd.io/substitute: disabled` are not touched. Pure.

use std::collections::BTreeMap;

use serde_json::Value;

/// The label / annotation that turns substitution off for one object.
const DISABLED: &str = "kustomize.toolkit.fluxcd.io/substitute";

fn valid_name(n: &str) -> bool {
    let mut chars = n.chars();
    chars
        .next()
        .is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// Substitutes the variables in one text.
///
/// # Errors
/// An unterminated `${`, a bad variable name, or an expression form other than the
/// defaults (`${var:1:2}`, `${var/a/b}`, …), naming it.
pub(crate) fn substitute(text: &str, vars: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(esc) = after.strip_prefix("${") {
            // `$${var}`: a literal `${`.
            out.push_str("${");
            rest = esc;
            continue;
        }
        let Some(body_start) = after.strip_prefix('{') else {
            out.push('$');
            rest = after;
            continue;
        };
        let Some(end) = body_start.find('}') else {
            let snippet: String = rest[i..].chars().take(40).collect();
            return Err(format!("unterminated `${{` in `{}`", one_line(&snippet)));
        };
        let expr = &body_start[..end];
        out.push_str(&eval(expr, vars)?);
        rest = &body_start[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn one_line(s: &str) -> String {
    s.lines().next().unwrap_or("").to_string()
}

fn eval(expr: &str, vars: &BTreeMap<String, String>) -> Result<String, String> {
    let name_end = expr
        .find(|c: char| !(c == '_' || c.is_ascii_alphanumeric()))
        .unwrap_or(expr.len());
    let (name, op) = expr.split_at(name_end);
    if !valid_name(name) {
        return Err(format!("`${{{expr}}}`: `{name}` is not a variable name"));
    }
    let value = vars.get(name);
    let empty = value.is_none_or(String::is_empty);
    Ok(if op.is_empty() {
        value.cloned().unwrap_or_default()
    } else if let Some(d) = op.strip_prefix(":=").or_else(|| op.strip_prefix(":-")) {
        if empty {
            d.to_string()
        } else {
            value.cloned().unwrap_or_default()
        }
    } else if let Some(d) = op.strip_prefix('=').or_else(|| op.strip_prefix('-')) {
        value.cloned().unwrap_or_else(|| d.to_string())
    } else {
        return Err(format!(
            "`${{{expr}}}`: only ${{var}} and defaults (${{var:=default}}) are substituted by envdrift"
        ));
    })
}

/// Whether an object turns substitution off.
fn disabled(obj: &Value) -> bool {
    ["labels", "annotations"].iter().any(|m| {
        obj.pointer(&format!("/metadata/{m}/{}", DISABLED.replace('/', "~1")))
            .and_then(Value::as_str)
            == Some("disabled")
    })
}

/// Substitutes in each document of a multi-document YAML text (a renderer's output).
///
/// # Errors
/// As [`substitute`], naming the object.
pub(crate) fn substitute_documents(
    text: &str,
    vars: &BTreeMap<String, String>,
) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    for (doc, _line) in crate::source::manifest::split_documents(text) {
        let parsed: Option<Value> = serde_saphyr::from_str(doc).ok();
        let skip = parsed.as_ref().is_some_and(disabled);
        let piece = if skip {
            doc.to_string()
        } else {
            substitute(doc, vars).map_err(|e| {
                let what = parsed.as_ref().map_or_else(String::new, |v| {
                    format!(
                        "{} {}: ",
                        v.get("kind").and_then(Value::as_str).unwrap_or("object"),
                        v.pointer("/metadata/name")
                            .and_then(Value::as_str)
                            .unwrap_or("?")
                    )
                });
                format!("postBuild substitution: {what}{e}")
            })?
        };
        out.push_str("---\n");
        out.push_str(&piece);
        if !piece.ends_with('\n') {
            out.push('\n');
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> BTreeMap<String, String> {
        BTreeMap::from([
            ("cluster_env".to_string(), "prod".to_string()),
            ("replicas".to_string(), "3".to_string()),
            ("empty".to_string(), String::new()),
        ])
    }

    #[test]
    fn substitutes_like_flux() {
        let v = vars();
        assert_eq!(substitute("env: ${cluster_env}", &v).unwrap(), "env: prod");
        assert_eq!(substitute("r: ${replicas}", &v).unwrap(), "r: 3");
        assert_eq!(substitute("x: ${unset}", &v).unwrap(), "x: ");
        assert_eq!(substitute("x: ${unset:=dflt}", &v).unwrap(), "x: dflt");
        assert_eq!(substitute("x: ${empty:=dflt}", &v).unwrap(), "x: dflt");
        assert_eq!(substitute("x: ${empty=dflt}", &v).unwrap(), "x: ");
        assert_eq!(substitute("x: ${unset-d}", &v).unwrap(), "x: d");
        assert_eq!(
            substitute("sh: $HOME $${keep}", &v).unwrap(),
            "sh: $HOME ${keep}"
        );
        assert!(
            substitute("x: ${cluster_env", &v)
                .unwrap_err()
                .contains("unterminated")
        );
        assert!(
            substitute("x: ${a/b/c}", &v)
                .unwrap_err()
                .contains("only ${var}")
        );
        assert!(
            substitute("x: ${1a}", &v)
                .unwrap_err()
                .contains("not a variable")
        );
    }

    #[test]
    fn disabled_objects_are_left_alone() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  e: ${cluster_env}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n  annotations:\n    kustomize.toolkit.fluxcd.io/substitute: disabled\ndata:\n  e: ${cluster_env}\n";
        let out = substitute_documents(text, &vars()).unwrap();
        assert!(out.contains("e: prod"), "{out}");
        assert!(out.contains("e: ${cluster_env}"), "{out}");
    }
}
