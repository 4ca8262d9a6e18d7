//! The streaming reader against the whole-text reader it replaced (the oracle: each
//! document parsed whole, a JSON text parsed whole), over random Lists.

use proptest::prelude::*;
use serde_json::{Map, Value, json};

use super::*;

/// The reader as it was before Lists were streamed: every document (YAML) or the whole
/// text (JSON) parsed into one value.
fn oracle(text: &str, json: bool) -> ParsedText {
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
    for (doc, line) in split_documents(text) {
        if doc.trim().is_empty() || is_comment_only(doc) {
            continue;
        }
        let p = parse_yaml_document(doc, line);
        out.objects.extend(p.objects);
        out.problems.extend(p.problems);
        out.non_objects.extend(p.non_objects);
    }
    out
}

fn assert_same(new: &ParsedText, old: &ParsedText, text: &str) {
    assert_eq!(new.objects, old.objects, "objects differ for:\n{text}");
    assert_eq!(new.problems, old.problems, "problems differ for:\n{text}");
    assert_eq!(
        new.non_objects, old.non_objects,
        "non-objects differ for:\n{text}"
    );
}

/// How a string is written in YAML.
#[derive(Debug, Clone, Copy)]
enum Str {
    Double,
    Single,
    Literal,
    LiteralStrip,
    LiteralKeep,
    Folded,
}

/// How one item is written.
#[derive(Debug, Clone)]
struct Style {
    /// Spaces before each `- ` of `items:`.
    indent: usize,
    /// Nested sequences at their key's indentation (kubectl) or two more.
    seq_at_key: bool,
    /// The item in flow style (`- {…}`).
    flow: bool,
    /// Quote keys.
    quoted_keys: bool,
    /// A comment line before the item.
    comment: bool,
    strings: Str,
}

fn yaml_str(out: &mut String, s: &str, style: Str, indent: usize) {
    let multi = s.contains('\n') && !s.starts_with([' ', '\n']) && !s.contains("\n ");
    match style {
        Str::Literal | Str::LiteralStrip | Str::LiteralKeep | Str::Folded if multi => {
            let trailing = s.len() - s.trim_end_matches('\n').len();
            let head = match (style, trailing) {
                (Str::Literal, 1) => "|",
                (Str::LiteralStrip, 0) => "|-",
                (Str::LiteralKeep, _) if trailing >= 1 => "|+",
                (Str::Folded, 1) if !s.trim_end_matches('\n').contains('\n') => ">",
                _ => return yaml_str(out, s, Str::Double, indent),
            };
            out.push_str(head);
            out.push('\n');
            let body = if head == "|+" {
                &s[..s.len() - 1]
            } else {
                s.trim_end_matches('\n')
            };
            for l in body.split('\n') {
                if !l.is_empty() {
                    out.extend(std::iter::repeat_n(' ', indent + 2));
                    out.push_str(l);
                }
                out.push('\n');
            }
            // The caller adds no newline after a block scalar.
            out.pop();
        }
        Str::Single if !s.contains('\n') => {
            out.push('\'');
            out.push_str(&s.replace('\'', "''"));
            out.push('\'');
        }
        _ => out.push_str(&Value::String(s.to_string()).to_string()),
    }
}

fn yaml_key(out: &mut String, k: &str, st: &Style) {
    if st.quoted_keys
        || k.is_empty()
        || !k
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '/' || c == '-')
    {
        out.push_str(&Value::String(k.to_string()).to_string());
    } else {
        out.push_str(k);
    }
}

fn yaml_scalar(out: &mut String, v: &Value, st: &Style, indent: usize) {
    match v {
        Value::String(s) => yaml_str(out, s, st.strings, indent),
        other => out.push_str(&other.to_string()),
    }
}

/// A block mapping's entries at `indent` (the first one already positioned when `inline`).
fn yaml_map(out: &mut String, m: &Map<String, Value>, indent: usize, inline: bool, st: &Style) {
    for (i, (k, v)) in m.iter().enumerate() {
        if i > 0 || !inline {
            out.extend(std::iter::repeat_n(' ', indent));
        }
        yaml_key(out, k, st);
        out.push(':');
        match v {
            Value::Object(c) if !c.is_empty() => {
                out.push('\n');
                yaml_map(out, c, indent + 2, false, st);
            }
            Value::Array(a) if !a.is_empty() => {
                out.push('\n');
                let at = if st.seq_at_key { indent } else { indent + 2 };
                for item in a {
                    yaml_seq_item(out, item, at, st);
                }
            }
            Value::Object(_) => out.push_str(" {}\n"),
            Value::Array(_) => out.push_str(" []\n"),
            s => {
                out.push(' ');
                yaml_scalar(out, s, st, indent);
                out.push('\n');
            }
        }
    }
}

fn yaml_seq_item(out: &mut String, v: &Value, indent: usize, st: &Style) {
    out.extend(std::iter::repeat_n(' ', indent));
    out.push_str("- ");
    match v {
        Value::Object(m) if !m.is_empty() => yaml_map(out, m, indent + 2, true, st),
        Value::Array(a) if !a.is_empty() => {
            out.push_str(&Value::Array(a.clone()).to_string());
            out.push('\n');
        }
        Value::Object(_) => out.push_str("{}\n"),
        Value::Array(_) => out.push_str("[]\n"),
        s => {
            yaml_scalar(out, s, st, indent + 2);
            out.push('\n');
        }
    }
}

/// A `kind: List` document as `kubectl get -o yaml` writes it, in the given styles.
fn yaml_list(items: &[(Value, Style)], header_first: bool) -> String {
    let mut out = String::from("apiVersion: v1\n");
    if !header_first {
        out.clear();
    }
    out.push_str("items:\n");
    for (item, st) in items {
        if st.comment {
            out.push_str("# an item follows\n");
        }
        if st.flow {
            out.extend(std::iter::repeat_n(' ', st.indent));
            // JSON is flow-style YAML.
            out.push_str("- ");
            out.push_str(&item.to_string());
            out.push('\n');
        } else {
            yaml_seq_item(&mut out, item, st.indent, st);
        }
    }
    if !header_first {
        out.push_str("apiVersion: v1\n");
    }
    out.push_str("kind: List\nmetadata:\n  resourceVersion: \"\"\n");
    out
}

fn text_strategy() -> impl Strategy<Value = String> {
    let word = prop::sample::select(vec![
        "a",
        "b c",
        "- x",
        "# no comment",
        "key: value",
        "\"q\"",
        "'s'",
        "yes",
        "0644",
        "1.5",
        "{a}",
        "[b]",
        "*x",
        "&y",
        "é",
        "tab\there",
        "",
    ]);
    prop::collection::vec((word, prop::sample::select(vec![" ", "\n", ""])), 1..5).prop_map(
        |parts| {
            let mut s = String::new();
            for (w, sep) in parts {
                s.push_str(w);
                s.push_str(sep);
            }
            s
        },
    )
}

fn value_strategy() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        text_strategy().prop_map(Value::String),
        any::<i32>().prop_map(|n| json!(n)),
        any::<bool>().prop_map(Value::Bool),
        Just(Value::Null),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 1..4).prop_map(Value::Array),
            prop::collection::btree_map("k[a-z0-9.-]{0,6}|x y|k: v|- d", inner, 1..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn item_strategy() -> impl Strategy<Value = Value> {
    (
        "n[a-z0-9-]{0,10}",
        prop::option::of("[a-z]{1,5}"),
        prop::sample::select(vec!["ConfigMap", "Secret", "Deployment"]),
        prop::collection::btree_map("d[a-zA-Z0-9_]{0,6}", value_strategy(), 0..4),
        prop::collection::vec(
            prop::collection::btree_map("name|image|args", value_strategy(), 1..3),
            0..3,
        ),
        prop::bool::weighted(0.1),
    )
        .prop_map(|(name, ns, kind, data, containers, nameless)| {
            let mut meta = Map::new();
            if !nameless {
                meta.insert("name".into(), json!(name));
            }
            if let Some(ns) = ns {
                meta.insert("namespace".into(), json!(ns));
            }
            let mut o = Map::new();
            o.insert(
                "apiVersion".into(),
                json!(if kind == "Deployment" {
                    "apps/v1"
                } else {
                    "v1"
                }),
            );
            o.insert("data".into(), Value::Object(data.into_iter().collect()));
            o.insert("kind".into(), json!(kind));
            o.insert("metadata".into(), Value::Object(meta));
            if !containers.is_empty() {
                let cs: Vec<Value> = containers
                    .into_iter()
                    .map(|c| Value::Object(c.into_iter().collect()))
                    .collect();
                o.insert(
                    "spec".into(),
                    json!({"template": {"spec": {"containers": cs}}}),
                );
            }
            Value::Object(o)
        })
}

fn style_strategy(indent: usize) -> impl Strategy<Value = Style> {
    (
        any::<bool>(),
        prop::bool::weighted(0.15),
        prop::bool::weighted(0.2),
        prop::bool::weighted(0.2),
        prop::sample::select(vec![
            Str::Double,
            Str::Single,
            Str::Literal,
            Str::LiteralStrip,
            Str::LiteralKeep,
            Str::Folded,
        ]),
    )
        .prop_map(
            move |(seq_at_key, flow, quoted_keys, comment, strings)| Style {
                indent,
                seq_at_key,
                flow,
                quoted_keys,
                comment,
                strings,
            },
        )
}

fn list_strategy() -> impl Strategy<Value = (Vec<(Value, Style)>, bool)> {
    prop::sample::select(vec![0usize, 2, 4]).prop_flat_map(|indent| {
        (
            prop::collection::vec((item_strategy(), style_strategy(indent)), 1..12),
            any::<bool>(),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    #[test]
    fn yaml_lists_read_as_the_whole_reader_does((items, header_first) in list_strategy()) {
        let text = yaml_list(&items, header_first);
        let new = parse_manifest_text(&text, false);
        let old = oracle(&text, false);
        assert_same(&new, &old, &text);
        // And what both read is what was written (the emitter is right).
        prop_assert!(new.problems.is_empty(), "{:?}\n{}", new.problems, text);
        let read: Vec<Value> = new.objects.iter().map(|o| o.value.clone()).collect();
        let want: Vec<Value> = items.iter().map(|(v, _)| v.clone()).collect();
        prop_assert_eq!(read, want, "{}", text);
    }

    #[test]
    fn yaml_lists_in_multi_document_files((items, header_first) in list_strategy(), small in item_strategy()) {
        let mut text = String::from("# leading comment\n---\n");
        text.push_str(&serde_saphyr::to_string(&small).unwrap());
        text.push_str("---\n");
        text.push_str(&yaml_list(&items, header_first));
        text.push_str("--- # trailing\n");
        text.push_str(&serde_saphyr::to_string(&small).unwrap());
        assert_same(&parse_manifest_text(&text, false), &oracle(&text, false), &text);
    }

    #[test]
    fn json_lists_read_as_the_whole_reader_does(
        items in prop::collection::vec(item_strategy(), 1..12),
        indent in prop::sample::select(vec![0usize, 2, 4]),
    ) {
        let list = json!({"apiVersion": "v1", "items": items, "kind": "List", "metadata": {"resourceVersion": ""}});
        let text = if indent == 0 {
            list.to_string()
        } else {
            let pretty = serde_json::to_string_pretty(&list).unwrap();
            pretty
                .lines()
                .map(|l| {
                    let body = l.trim_start_matches(' ');
                    format!("{}{body}\n", " ".repeat((l.len() - body.len()) / 2 * indent))
                })
                .collect()
        };
        let new = parse_manifest_text(&text, true);
        let old = oracle(&text, true);
        // Lines: the old reader gave every item the List's line when one item had no
        // name; the streaming reader keeps each item's own.
        let nameless = items.iter().any(|i| i.pointer("/metadata/name").is_none());
        if nameless {
            let values = |p: &ParsedText| p.objects.iter().map(|o| o.value.clone()).collect::<Vec<_>>();
            prop_assert_eq!(values(&new), values(&old));
            let messages = |p: &ParsedText| p.problems.iter().map(|o| o.message.clone()).collect::<Vec<_>>();
            prop_assert_eq!(messages(&new), messages(&old));
        } else {
            assert_same(&new, &old, &text);
        }
    }

    #[test]
    fn a_malformed_yaml_item_is_reported_at_its_line_and_the_others_are_read(
        (items, header_first) in list_strategy(),
        at in any::<prop::sample::Index>(),
    ) {
        let text = yaml_list(&items, header_first);
        let starts = item_lines(&text, &items);
        let bad = at.index(items.len());
        // Break the item: an unclosed flow sequence on its first line.
        let mut lines: Vec<&str> = text.lines().collect();
        let broken = format!("{}kind: [unclosed", " ".repeat(items[bad].1.indent + 2));
        let first = starts[bad];
        lines.insert(first, broken.as_str()); // the line after the item's `- `
        let text = lines.join("\n") + "\n";
        let new = parse_manifest_text(&text, false);
        let end = starts.get(bad + 1).map_or(usize::MAX, |n| n + 1);
        prop_assert_eq!(new.problems.len(), 1, "{:?}\n{}", new.problems, text);
        let line = new.problems[0].line.unwrap();
        prop_assert!(line > first && line <= end, "error at {} for the item at {}:\n{}", line, first, text);
        let others: Vec<Value> = items
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != bad)
            .map(|(_, (v, _))| v.clone())
            .collect();
        let read: Vec<Value> = new.objects.iter().map(|o| o.value.clone()).collect();
        prop_assert_eq!(read, others);
    }
}

/// The 1-based line of each item's `- ` in a text written by [`yaml_list`].
fn item_lines(text: &str, items: &[(Value, Style)]) -> Vec<usize> {
    let indent = items[0].1.indent;
    let mut out = Vec::new();
    let mut in_items = false;
    for (i, l) in text.lines().enumerate() {
        if l.is_empty() {
            continue;
        }
        if l == "items:" {
            in_items = true;
            continue;
        }
        if in_items
            && l.len() > indent
            && l[indent..].starts_with("- ")
            && !l[..indent].contains(|c| c != ' ')
        {
            out.push(i + 1);
        } else if in_items && !l.starts_with(' ') && !l.starts_with('#') && !l.starts_with('-') {
            break;
        }
    }
    assert_eq!(out.len(), items.len(), "{text}");
    out
}

#[test]
fn an_alias_into_another_item_is_read_from_the_whole_document() {
    let text = "apiVersion: v1\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata:\n    name: a\n  data: &shared\n    k: v\n- apiVersion: v1\n  kind: ConfigMap\n  metadata:\n    name: b\n  data: *shared\nkind: List\n";
    let new = parse_manifest_text(text, false);
    assert_same(&new, &oracle(text, false), text);
    assert_eq!(new.objects[1].value["data"], json!({"k": "v"}));
    assert_eq!(new.objects[1].line, 9);
}

#[test]
fn a_list_with_a_malformed_item_in_the_middle_of_many() {
    let mut text = String::from("apiVersion: v1\nitems:\n");
    for i in 0..(2 * BATCH + 7) {
        if i == BATCH + 3 {
            text.push_str("- apiVersion: v1\n  kind: [unclosed\n");
            continue;
        }
        text.push_str(&format!(
            "- apiVersion: v1\n  kind: ConfigMap\n  metadata:\n    name: c{i}\n"
        ));
    }
    text.push_str("kind: List\nmetadata:\n  resourceVersion: \"\"\n");
    let p = parse_manifest_text(&text, false);
    assert_eq!(p.objects.len(), 2 * BATCH + 6);
    assert_eq!(p.problems.len(), 1, "{:?}", p.problems);
    // Items before it take 4 lines each, after the two header lines.
    let item_line = 3 + 4 * (BATCH + 3);
    assert_eq!(
        p.problems[0].line,
        Some(item_line + 1),
        "{:?}",
        p.problems[0]
    );
    assert_eq!(
        p.objects[BATCH + 3].value["metadata"]["name"],
        format!("c{}", BATCH + 4)
    );
    assert_eq!(p.objects[BATCH + 3].line, item_line + 2);
    // The same in JSON: the broken item is reported at its line and column.
    let mut items: Vec<String> = (0..20)
        .map(|i| format!("{{\n  \"apiVersion\": \"v1\",\n  \"kind\": \"ConfigMap\",\n  \"metadata\": {{\"name\": \"c{i}\"}}\n}}"))
        .collect();
    items[7] = "{\n  \"apiVersion\": \"v1\",\n  \"kind\": oops\n}".into();
    let text = format!(
        "{{\"apiVersion\": \"v1\", \"kind\": \"List\", \"items\": [\n{}\n]}}\n",
        items.join(",\n")
    );
    let p = parse_manifest_text(&text, true);
    assert_eq!(p.objects.len(), 19);
    assert_eq!(p.problems.len(), 1);
    assert_eq!(
        p.problems[0].line,
        Some(2 + 5 * 7 + 2),
        "{:?}",
        p.problems[0]
    );
    assert_eq!(p.problems[0].column, Some(11), "{:?}", p.problems[0]);
    assert!(
        p.problems[0]
            .message
            .starts_with("invalid JSON: expected value"),
        "{:?}",
        p.problems[0]
    );
}

#[test]
fn shapes_that_are_not_cut_are_read_whole() {
    for text in [
        // Not a List: a top-level `items` of another kind.
        "apiVersion: v1\nkind: Thing\nmetadata:\n  name: t\nitems:\n- a\n- b\n",
        // Flow-style items, and items under an anchor.
        "apiVersion: v1\nkind: List\nitems: [{apiVersion: v1, kind: ConfigMap, metadata: {name: a}}]\n",
        "apiVersion: v1\nkind: List\nitems: &i\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: a}\n",
        // A quoted scalar running over the items' indentation.
        "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: a}\n  data: {k: \"x\n- y\"}\n",
        // Broken outside the items.
        "apiVersion: v1\nkind: [List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: a}\n",
    ] {
        assert_same(
            &parse_manifest_text(text, false),
            &oracle(text, false),
            text,
        );
    }
    for text in [
        "{\"kind\": \"List\", \"items\": [{\"apiVersion\": \"v1\", \"kind\": \"ConfigMap\", \"metadata\": {\"name\": \"a\"}}], \"items\": []}",
        "{\"kind\": \"List\", \"items\": [{\"apiVersion\": \"v1\", \"kind\": \"ConfigMap\", \"metadata\": {\"name\": \"a\"}}]} trailing",
        "{\"kind\": \"Thing\", \"items\": [{\"apiVersion\": \"v1\", \"kind\": \"ConfigMap\", \"metadata\": {\"name\": \"a\"}}]}",
        "{\"kind\": \"List\", \"items\": [{\"apiVersion\": \"v1\", \"kind\": \"ConfigMap\", \"metadata\": {\"name\": \"a\\\"]}\"}}]}",
        "[{\"apiVersion\": \"v1\", \"kind\": \"ConfigMap\", \"metadata\": {\"name\": \"a\"}}]",
    ] {
        assert_same(&parse_manifest_text(text, true), &oracle(text, true), text);
    }
}
