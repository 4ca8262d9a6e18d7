//! Reading Kubernetes objects out of YAML and JSON text: multi-document YAML, `kind: List`
//! (what `kubectl get -o yaml` prints), single objects.
//!
//! The entry point is [`parse_manifest_text`]; it never fails as a whole: each document
//! is parsed on its own, so one malformed document is reported with its line and column
//! while the others are still read.
//!
//! YAML is read the way `kubectl` reads it (sigs.k8s.io/yaml, YAML 1.1 scalars): `yes`/`on`
//! are booleans and `0644` is octal, so that a manifest means here what it means to the
//! API server.

use serde_json::Value;

/// One object read from text, with its 1-based line.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedObject {
    pub value: Value,
    pub line: usize,
}

/// A problem in the text, with its position (1-based) when known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ParseProblem {
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
}

/// What one text held.
#[derive(Debug, Default)]
pub struct ParsedText {
    pub objects: Vec<ParsedObject>,
    pub problems: Vec<ParseProblem>,
    /// Documents that are not Kubernetes objects (no apiVersion/kind), with their line.
    pub non_objects: Vec<usize>,
}

/// Parses YAML or JSON text. `json` selects the JSON parser (exact line/column errors for
/// JSON files); YAML is a superset, so it is the default.
pub fn parse_manifest_text(text: &str, json: bool) -> ParsedText {
    let mut out = ParsedText::default();
    if json {
        match serde_json::from_str::<Value>(text) {
            Ok(v) => push_value(&mut out, v, 1, text, true),
            Err(e) => out.problems.push(ParseProblem {
                line: Some(e.line()),
                column: Some(e.column()),
                message: format!("invalid JSON: {}", strip_json_position(&e.to_string())),
            }),
        }
        return out;
    }
    for (doc, start_line) in split_documents(text) {
        if doc.trim().is_empty() || is_comment_only(doc) {
            continue;
        }
        match serde_saphyr::from_str_with_options::<Value>(doc, yaml_options(doc.len())) {
            Ok(v) => push_value(&mut out, v, start_line, doc, false),
            Err(e) => {
                let (line, column) = match e.without_snippet().location() {
                    Some(loc) if loc.line() > 0 => (
                        Some(start_line + loc.line() as usize - 1),
                        Some(loc.column() as usize),
                    ),
                    _ => (Some(start_line), None),
                };
                out.problems.push(ParseProblem {
                    line,
                    column,
                    message: format!("invalid YAML: {}", yaml_message(&e)),
                });
            }
        }
    }
    out
}

/// The error text without the source snippet (which could show a Secret value) and
/// without the position (we print our own, relative to the file).
fn yaml_message(e: &serde_saphyr::Error) -> String {
    let rendered = e.without_snippet().to_string();
    let first = rendered.lines().next().unwrap_or("").trim();
    // serde-saphyr appends " at line L, column C"; the caller reports the position.
    let cut = first.find(" at line ").map_or(first, |i| &first[..i]);
    cut.trim_end_matches(['.', ':']).to_string()
}

fn strip_json_position(s: &str) -> String {
    s.find(" at line ").map_or(s, |i| &s[..i]).to_string()
}

/// Parser options: YAML 1.1 scalars like kubectl, no snippets in errors, budgets scaled
/// to the input (the defaults stop at a few thousand objects).
fn yaml_options(len: usize) -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    // A Kubernetes object is rarely more than one node per 4 bytes of YAML.
    let scaled = len / 2 + 10_000;
    budget.max_events = budget.max_events.max(scaled);
    budget.max_nodes = budget.max_nodes.max(scaled);
    budget.max_total_scalar_bytes = budget.max_total_scalar_bytes.max(len + 1024);
    budget.max_documents = 1;
    serde_saphyr::options! {
        budget: Some(budget),
        strict_booleans: false,
        legacy_octal_numbers: true,
        with_snippet: false,
    }
}

fn is_comment_only(doc: &str) -> bool {
    doc.lines().all(|l| {
        let t = l.trim();
        t.is_empty() || t.starts_with('#') || t.starts_with('%')
    })
}

/// Splits a YAML stream at `---` / `...` markers (column 0), returning each document's text
/// and its first line (1-based). A marker line's own content (`--- # c` or `--- {a: 1}`)
/// stays with the document it opens.
pub(crate) fn split_documents(text: &str) -> Vec<(&str, usize)> {
    let mut docs = Vec::new();
    let mut start = 0usize; // byte offset of the current document
    let mut start_line = 1usize;
    let mut offset = 0usize;
    for (line_no, line) in (1usize..).zip(text.split_inclusive('\n')) {
        let trimmed = line.trim_end_matches(['\n', '\r']);
        let is_start = is_marker(trimmed, "---");
        let is_end = is_marker(trimmed, "...");
        if is_start || is_end {
            if offset > start {
                docs.push((&text[start..offset], start_line));
            }
            if is_start {
                // The document begins with the marker line's remainder.
                start = offset + 3;
                start_line = line_no;
            } else {
                start = offset + line.len();
                start_line = line_no + 1;
            }
        }
        offset += line.len();
    }
    if start < text.len() {
        docs.push((&text[start..], start_line));
    }
    docs
}

fn is_marker(line: &str, marker: &str) -> bool {
    line.strip_prefix(marker)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t']))
}

fn is_object(v: &Value) -> bool {
    let api = v.get("apiVersion").and_then(Value::as_str);
    let kind = v.get("kind").and_then(Value::as_str);
    match (api, kind) {
        // Kustomize's own files carry apiVersion/kind but are not cluster objects.
        (Some(a), Some(_)) if a.starts_with("kustomize.config.k8s.io/") => false,
        (Some(_), Some(_)) => true,
        _ => false,
    }
}

fn push_value(out: &mut ParsedText, v: Value, line: usize, text: &str, json: bool) {
    let is_list = v
        .get("kind")
        .and_then(Value::as_str)
        .is_some_and(|k| k.ends_with("List"))
        && v.get("items").is_some_and(Value::is_array);
    if is_list {
        let Value::Object(mut map) = v else { return };
        let Some(Value::Array(items)) = map.remove("items") else {
            return;
        };
        let lines = if json {
            json_item_lines(text, &items)
        } else {
            yaml_item_lines(text, items.len())
        };
        push_items(out, items, &lines, line, "the List");
    } else if let Value::Array(items) = v {
        // A bare array of objects (`[{…}, {…}]`, or a YAML sequence) is read like a List.
        if items.is_empty() || !items.iter().all(Value::is_object) {
            out.non_objects.push(line);
            return;
        }
        let lines = if json {
            json_item_lines(text, &items)
        } else {
            top_sequence_lines(text, items.len())
        };
        push_items(out, items, &lines, line, "the array");
    } else if is_object(&v) {
        out.objects.push(ParsedObject { value: v, line });
    } else {
        out.non_objects.push(line);
    }
}

/// The items of a List or array: objects, or a problem naming the item.
fn push_items(out: &mut ParsedText, items: Vec<Value>, lines: &[usize], line: usize, what: &str) {
    for (i, item) in items.into_iter().enumerate() {
        let item_line = lines.get(i).map_or(line, |l| line + l - 1);
        if is_object(&item) {
            out.objects.push(ParsedObject {
                value: item,
                line: item_line,
            });
        } else {
            out.problems.push(ParseProblem {
                line: Some(item_line),
                column: None,
                message: format!("item {i} of {what} has no apiVersion/kind"),
            });
        }
    }
}

/// Lines (1-based, relative to `doc`) where the items of a top-level YAML sequence start
/// (`- ` at column 0); empty when they cannot be told.
fn top_sequence_lines(doc: &str, count: usize) -> Vec<usize> {
    let out: Vec<usize> = doc
        .lines()
        .enumerate()
        .filter(|(_, l)| l.starts_with("- ") || *l == "-")
        .map(|(i, _)| i + 1)
        .collect();
    if out.len() == count { out } else { Vec::new() }
}

/// Lines (1-based, relative to `doc`) where the items of a top-level `items:` sequence
/// start. Returns an empty vector when the layout is not the usual one (then every item
/// gets the document's line).
fn yaml_item_lines(doc: &str, count: usize) -> Vec<usize> {
    let mut lines = doc.lines().enumerate();
    let mut found = false;
    for (_, l) in lines.by_ref() {
        if l.starts_with("items:") {
            found = true;
            break;
        }
    }
    if !found {
        return Vec::new();
    }
    let mut indent: Option<usize> = None;
    let mut out = Vec::with_capacity(count);
    for (i, l) in lines {
        let trimmed = l.trim_start_matches(' ');
        let ind = l.len() - trimmed.len();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if ind == 0 && !trimmed.starts_with('-') {
            break; // the next top-level key
        }
        match indent {
            None if trimmed.starts_with("- ") || trimmed == "-" => {
                indent = Some(ind);
                out.push(i + 1);
            }
            Some(want) if ind == want && (trimmed.starts_with("- ") || trimmed == "-") => {
                out.push(i + 1)
            }
            _ => {}
        }
    }
    if out.len() == count { out } else { Vec::new() }
}

/// For JSON lists: the line of each item's `"name": "…"` (its metadata name), searched in order.
fn json_item_lines(text: &str, items: &[Value]) -> Vec<usize> {
    let mut out = Vec::with_capacity(items.len());
    let mut pos = 0usize;
    for item in items {
        let Some(name) = item.pointer("/metadata/name").and_then(Value::as_str) else {
            return Vec::new();
        };
        let needle = format!("\"name\": {}", Value::String(name.to_string()));
        let compact = format!("\"name\":{}", Value::String(name.to_string()));
        let found = text[pos..]
            .find(&needle)
            .or_else(|| text[pos..].find(&compact));
        match found {
            Some(i) => {
                pos += i;
                out.push(text[..pos].matches('\n').count() + 1);
                pos += 1;
            }
            None => return Vec::new(),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_document_lines() {
        let text = "# header\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n---\n# only a comment\n";
        let p = parse_manifest_text(text, false);
        assert!(p.problems.is_empty(), "{:?}", p.problems);
        assert_eq!(p.objects.len(), 2);
        assert_eq!(p.objects[0].line, 1);
        assert_eq!(p.objects[1].line, 6);
    }

    #[test]
    fn json_and_yaml_arrays_of_objects_are_read_like_lists() {
        let text = "[\n  {\n    \"apiVersion\": \"v1\",\n    \"kind\": \"ConfigMap\",\n    \"metadata\": {\"name\": \"a\"}\n  },\n  {\n    \"apiVersion\": \"v1\",\n    \"kind\": \"ConfigMap\",\n    \"metadata\": {\"name\": \"b\"}\n  }\n]\n";
        let p = parse_manifest_text(text, true);
        assert!(p.problems.is_empty(), "{:?}", p.problems);
        let lines: Vec<usize> = p.objects.iter().map(|o| o.line).collect();
        assert_eq!(lines, [5, 10]);
        let yaml = "- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: a}\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: b}\n";
        let p = parse_manifest_text(yaml, false);
        assert_eq!(p.objects.len(), 2, "{:?}", p.problems);
        assert_eq!(p.objects[1].line, 4);
        // An array with a non-object is not Kubernetes objects: skipped, not an error.
        let p = parse_manifest_text("[1, 2]", true);
        assert!(p.objects.is_empty() && p.problems.is_empty());
        // An array item without apiVersion/kind is a problem naming the item.
        let p = parse_manifest_text("[{\"kind\": \"ConfigMap\"}]", true);
        assert_eq!(
            p.problems[0].message,
            "item 0 of the array has no apiVersion/kind"
        );
    }

    #[test]
    fn list_items_get_their_own_lines() {
        let text = "apiVersion: v1\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata:\n    name: a\n- apiVersion: v1\n  kind: ConfigMap\n  metadata:\n    name: b\nkind: List\nmetadata:\n  resourceVersion: \"\"\n";
        let p = parse_manifest_text(text, false);
        assert_eq!(p.objects.len(), 2);
        assert_eq!(p.objects[0].line, 3);
        assert_eq!(p.objects[1].line, 7);
    }

    #[test]
    fn malformed_document_does_not_hide_the_others() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n---\napiVersion: v1\nkind: [unclosed\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n";
        let p = parse_manifest_text(text, false);
        assert_eq!(p.objects.len(), 2);
        assert_eq!(p.problems.len(), 1);
        let line = p.problems[0].line.unwrap();
        assert!((6..=8).contains(&line), "line {line}");
    }

    #[test]
    fn kubectl_scalars_yaml_1_1() {
        let text =
            "apiVersion: v1\nkind: X\nmetadata:\n  name: a\nmode: 0644\nflag: yes\nport: \"80\"\n";
        let p = parse_manifest_text(text, false);
        let v = &p.objects[0].value;
        assert_eq!(v["mode"], 420);
        assert_eq!(v["flag"], true);
        assert_eq!(v["port"], "80");
    }

    #[test]
    fn json_errors_have_positions() {
        let p = parse_manifest_text("{\n  \"apiVersion\": \"v1\",\n  \"kind\": oops\n}", true);
        assert_eq!(p.problems[0].line, Some(3));
        assert!(p.problems[0].message.starts_with("invalid JSON"));
    }

    #[test]
    fn non_objects_are_noted() {
        let p = parse_manifest_text("resources:\n- a.yaml\n", false);
        assert!(p.objects.is_empty() && p.problems.is_empty());
        assert_eq!(p.non_objects, vec![1]);
        let k = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [a.yaml]\n";
        let p = parse_manifest_text(k, false);
        assert!(p.objects.is_empty() && p.problems.is_empty());
        assert_eq!(p.non_objects, vec![1]);
    }

    #[test]
    fn marker_with_content() {
        let docs = split_documents("--- # first\na: 1\n...\nb: 2\n");
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].1, 1);
        assert_eq!(docs[1].1, 4);
    }
}
