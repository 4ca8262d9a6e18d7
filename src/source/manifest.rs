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
/// JSON files); YAML is a superset, so it is the default. The whole text's objects at once;
/// [`parse_manifest_stream`] hands them over in batches.
pub fn parse_manifest_text(text: &str, json: bool) -> ParsedText {
    let mut out = ParsedText::default();
    parse_manifest_stream(text, json, &mut |batch| {
        out.objects.extend(batch.objects);
        out.problems.extend(batch.problems);
        out.non_objects.extend(batch.non_objects);
    });
    out
}

/// Documents or List items parsed (in parallel) and handed to the sink at a time.
pub const BATCH: usize = 512;

/// Parses YAML or JSON text like [`parse_manifest_text`], handing the objects, problems
/// and non-objects to `sink` in batches of at most [`BATCH`] documents or List items, in
/// text order: a big file is never held as one parsed value.
///
/// Multi-document YAML is cut at its `---` markers; a `kind: List` document (YAML) or
/// object (JSON) is cut at its `items` entries (YAML: the `- ` lines at the items'
/// indentation; JSON: a scan aware of strings and escapes). Each piece is parsed on its own,
/// the pieces of a batch in parallel. A malformed item is reported with its line and the
/// other items are still read. When a YAML item does not parse on its own but the whole
/// document does (an alias to an anchor in another item), the rest of the document is read
/// from the whole parse, so the objects are always what a whole parse gives.
pub fn parse_manifest_stream(text: &str, json: bool, sink: &mut dyn FnMut(ParsedText)) {
    if json {
        stream_json(text, sink);
        return;
    }
    let mut pending: Vec<(&str, usize)> = Vec::new();
    for (doc, start_line) in split_documents(text) {
        if doc.trim().is_empty() || is_comment_only(doc) {
            continue;
        }
        if let Some(split) = split_yaml_list(doc) {
            flush_docs(&mut pending, sink);
            stream_yaml_list(doc, start_line, &split, sink);
            continue;
        }
        pending.push((doc, start_line));
        if pending.len() >= BATCH {
            flush_docs(&mut pending, sink);
        }
    }
    flush_docs(&mut pending, sink);
}

/// Parses the pending documents (in parallel) and hands them over as one batch.
fn flush_docs(pending: &mut Vec<(&str, usize)>, sink: &mut dyn FnMut(ParsedText)) {
    use rayon::prelude::*;
    if pending.is_empty() {
        return;
    }
    let parts: Vec<ParsedText> = pending
        .par_iter()
        .map(|(doc, line)| parse_yaml_document(doc, *line))
        .collect();
    pending.clear();
    let mut out = ParsedText::default();
    for p in parts {
        out.objects.extend(p.objects);
        out.problems.extend(p.problems);
        out.non_objects.extend(p.non_objects);
    }
    sink(out);
}

/// One YAML document parsed whole.
fn parse_yaml_document(doc: &str, start_line: usize) -> ParsedText {
    let mut out = ParsedText::default();
    match parse_yaml_value(doc, start_line) {
        Ok(v) => push_value(&mut out, v, start_line, doc, false),
        Err(p) => out.problems.push(p),
    }
    out
}

/// A YAML text parsed into one value; errors positioned relative to the file (`start_line`
/// is the text's first line).
fn parse_yaml_value(doc: &str, start_line: usize) -> Result<Value, ParseProblem> {
    serde_saphyr::from_str_with_options::<Value>(doc, yaml_options(doc.len())).map_err(|e| {
        let (line, column) = match e.without_snippet().location() {
            Some(loc) if loc.line() > 0 => (
                Some(start_line + loc.line() as usize - 1),
                Some(loc.column() as usize),
            ),
            _ => (Some(start_line), None),
        };
        ParseProblem {
            line,
            column,
            message: format!("invalid YAML: {}", yaml_message(&e)),
        }
    })
}

/// Where a YAML `kind: List` document's items are: the byte range of the items section
/// (the lines after `items:`), and each item's byte range and line (0-based, relative to
/// the document).
#[derive(Debug)]
struct YamlListSplit {
    /// The `items:` line through the end of the items section.
    section: std::ops::Range<usize>,
    items: Vec<(std::ops::Range<usize>, usize)>,
}

/// Whether a line (without its newline) is the block-sequence entry `-` at its start.
fn is_entry(rest: &str) -> bool {
    rest == "-" || rest.starts_with("- ") || rest.starts_with("-\t")
}

/// Cuts a YAML document of the `kubectl get -o yaml` shape (a top-level `items:` key at
/// column 0 followed by block-sequence entries) at its items. `None` when the document is
/// not of that shape; it is then parsed whole. Whether it really is a List is decided by
/// parsing the rest of the document ([`stream_yaml_list`]).
fn split_yaml_list(doc: &str) -> Option<YamlListSplit> {
    let mut offset = 0usize;
    let mut lines = (0usize..).zip(doc.split_inclusive('\n'));
    let mut section_start = None;
    for (_, line) in lines.by_ref() {
        let body = line.trim_end_matches(['\n', '\r']);
        let rest = ["items:", "\"items\":", "'items':"]
            .iter()
            .find_map(|k| body.strip_prefix(k));
        let start = offset;
        offset += line.len();
        if let Some(rest) = rest {
            let rest = rest.trim_matches([' ', '\t']);
            if !(rest.is_empty() || rest.starts_with('#')) {
                return None; // `items: []`, an anchor or a tag: parsed whole
            }
            section_start = Some(start);
            break;
        }
    }
    let section_start = section_start?;
    let mut indent: Option<usize> = None;
    // Each item's first byte and line; an item runs to the next one (blank lines kept:
    // a `|+` block scalar keeps them).
    let mut starts: Vec<(usize, usize)> = Vec::new();
    let mut end = doc.len();
    for (line_no, line) in lines {
        let body = line.trim_end_matches(['\n', '\r']);
        let trimmed = body.trim_start_matches(' ');
        let ind = body.len() - trimmed.len();
        let start = offset;
        offset += line.len();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        match indent {
            None if is_entry(trimmed) => {
                indent = Some(ind);
                starts.push((start, line_no));
            }
            None => return None, // `items:` with a null value, or not a sequence
            Some(want) if ind > want => {}
            Some(want) if ind == want && is_entry(trimmed) => starts.push((start, line_no)),
            Some(_) => {
                end = start;
                break;
            }
        }
    }
    if starts.is_empty() {
        return None;
    }
    let items = starts
        .iter()
        .enumerate()
        .map(|(i, (s, line))| {
            let e = starts.get(i + 1).map_or(end, |n| n.0);
            (*s..e, *line)
        })
        .collect();
    Some(YamlListSplit {
        section: section_start..end,
        items,
    })
}

/// A List document read item by item (see [`parse_manifest_stream`]).
fn stream_yaml_list(
    doc: &str,
    start_line: usize,
    split: &YamlListSplit,
    sink: &mut dyn FnMut(ParsedText),
) {
    use rayon::prelude::*;
    // The document without its items must be a List (kind …List, no other `items`).
    let header = format!(
        "{}{}",
        &doc[..split.section.start],
        &doc[split.section.end..]
    );
    let is_list = serde_saphyr::from_str_with_options::<Value>(&header, yaml_options(header.len()))
        .ok()
        .is_some_and(|h| {
            h.get("kind")
                .and_then(Value::as_str)
                .is_some_and(|k| k.ends_with("List"))
                && h.get("items").is_none()
        });
    if !is_list {
        sink(parse_yaml_document(doc, start_line));
        return;
    }
    drop(header);
    // Whether a whole parse of the document was tried (and failed).
    let mut whole_failed = false;
    let mut first = 0usize;
    for batch in split.items.chunks(BATCH) {
        let parsed: Vec<Result<Value, ParseProblem>> = batch
            .par_iter()
            .map(|(range, line)| {
                let v = parse_yaml_value(&doc[range.clone()], start_line + line)?;
                match v {
                    Value::Array(mut a) if a.len() == 1 => Ok(a.swap_remove(0)),
                    _ => Err(ParseProblem {
                        line: Some(start_line + line),
                        column: None,
                        message: "invalid YAML: the item is not one sequence entry".into(),
                    }),
                }
            })
            .collect();
        if !whole_failed && parsed.iter().any(Result::is_err) {
            // An item that does not parse alone (an alias into another item, a quoted
            // scalar running over the items' indentation) may parse in context. Items
            // before the first that failed were cut right (each parsed alone).
            match parse_yaml_value(doc, start_line) {
                Ok(v) => return rest_from_whole(v, doc, start_line, split, first, sink),
                Err(_) => whole_failed = true,
            }
        }
        let mut out = ParsedText::default();
        for (i, (item, (_, line))) in parsed.into_iter().zip(batch).enumerate() {
            match item {
                Ok(v) => push_item(&mut out, v, first + i, start_line + line, "the List"),
                Err(p) => out.problems.push(p),
            }
        }
        first += batch.len();
        sink(out);
    }
}

/// The rest of a List document from its whole parse, from item `first` on (the items
/// before it were handed over already). From the first item on, exactly what the whole
/// reader gives.
fn rest_from_whole(
    v: Value,
    doc: &str,
    start_line: usize,
    split: &YamlListSplit,
    first: usize,
    sink: &mut dyn FnMut(ParsedText),
) {
    if first == 0 {
        let mut out = ParsedText::default();
        push_value(&mut out, v, start_line, doc, false);
        return sink(out);
    }
    let items = match v {
        Value::Object(mut m) => match m.remove("items") {
            Some(Value::Array(a)) => a,
            _ => Vec::new(),
        },
        _ => Vec::new(),
    };
    let lines_ok = items.len() == split.items.len();
    let mut out = ParsedText::default();
    for (i, item) in items.into_iter().enumerate().skip(first) {
        let line = match split.items.get(i) {
            Some((_, l)) if lines_ok => start_line + l,
            _ => start_line,
        };
        push_item(&mut out, item, i, line, "the List");
        if out.objects.len() + out.problems.len() >= BATCH {
            sink(std::mem::take(&mut out));
        }
    }
    sink(out);
}

/// JSON text: a `kind: List` object item by item, anything else whole.
fn stream_json(text: &str, sink: &mut dyn FnMut(ParsedText)) {
    use rayon::prelude::*;
    let whole = |sink: &mut dyn FnMut(ParsedText)| {
        let mut out = ParsedText::default();
        match serde_json::from_str::<Value>(text) {
            Ok(v) => push_value(&mut out, v, 1, text, true),
            Err(e) => out.problems.push(ParseProblem {
                line: Some(e.line()),
                column: Some(e.column()),
                message: format!("invalid JSON: {}", strip_json_position(&e.to_string())),
            }),
        }
        sink(out);
    };
    let Some(split) = split_json_list(text) else {
        return whole(sink);
    };
    let header = format!(
        "{}[]{}",
        &text[..split.array.start],
        &text[split.array.end..]
    );
    let is_list = serde_json::from_str::<Value>(&header).is_ok_and(|h| {
        h.get("kind")
            .and_then(Value::as_str)
            .is_some_and(|k| k.ends_with("List"))
            && h.get("items")
                .and_then(Value::as_array)
                .is_some_and(Vec::is_empty)
    });
    if !is_list {
        return whole(sink);
    }
    drop(header);
    let lines = LineIndex::new(text);
    // Where the next item's `"name": …` is searched from (as `json_item_lines` does).
    let mut pos = 0usize;
    let mut first = 0usize;
    for batch in split.items.chunks(BATCH) {
        let parsed: Vec<Result<Value, ParseProblem>> = batch
            .par_iter()
            .map(|range| {
                serde_json::from_str::<Value>(&text[range.clone()]).map_err(|e| {
                    let (l0, c0) = lines.position(range.start);
                    let line = l0 + e.line().saturating_sub(1);
                    let column = if e.line() <= 1 {
                        c0 + e.column().saturating_sub(1)
                    } else {
                        e.column()
                    };
                    ParseProblem {
                        line: Some(line),
                        column: Some(column),
                        message: format!("invalid JSON: {}", strip_json_position(&e.to_string())),
                    }
                })
            })
            .collect();
        let mut out = ParsedText::default();
        for (i, (item, range)) in parsed.into_iter().zip(batch).enumerate() {
            match item {
                Ok(v) => {
                    let line = match json_name_at(text, pos, &v) {
                        Some(at) => {
                            pos = at + 1;
                            lines.position(at).0
                        }
                        None => lines.position(range.start).0,
                    };
                    push_item(&mut out, v, first + i, line, "the List");
                }
                Err(p) => out.problems.push(p),
            }
        }
        first += batch.len();
        sink(out);
    }
}

/// Where an item's `"name": "…"` (its metadata name) is, searched from `pos`: the line
/// JSON List items are reported at.
fn json_name_at(text: &str, pos: usize, item: &Value) -> Option<usize> {
    let name = item.pointer("/metadata/name").and_then(Value::as_str)?;
    let quoted = Value::String(name.to_string()).to_string();
    let rest = text.get(pos..)?;
    let needle = format!("\"name\": {quoted}");
    let compact = format!("\"name\":{quoted}");
    rest.find(&needle)
        .or_else(|| rest.find(&compact))
        .map(|i| pos + i)
}

/// Line starts of a text, for turning byte offsets into 1-based lines and columns.
struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    fn new(text: &str) -> LineIndex {
        let mut starts = vec![0];
        starts.extend(
            text.bytes()
                .enumerate()
                .filter(|(_, b)| *b == b'\n')
                .map(|(i, _)| i + 1),
        );
        LineIndex { starts }
    }

    /// The 1-based line and column (in bytes) of a byte offset.
    fn position(&self, at: usize) -> (usize, usize) {
        let line = self.starts.partition_point(|s| *s <= at).max(1);
        let start = self.starts.get(line - 1).copied().unwrap_or(0);
        (line, at.saturating_sub(start) + 1)
    }
}

/// Where a JSON `kind: List` object's items are.
#[derive(Debug)]
struct JsonListSplit {
    /// The `items` array, `[` through `]`.
    array: std::ops::Range<usize>,
    items: Vec<std::ops::Range<usize>>,
}

/// Cuts a JSON text that is one object with an `items` array at the array's elements (a
/// scan of the structure aware of strings and escapes; the pieces are validated by
/// parsing them). `None` for any other shape (then the text is parsed whole, which also
/// reports its errors).
fn split_json_list(text: &str) -> Option<JsonListSplit> {
    let b = text.as_bytes();
    let ws = |mut i: usize| {
        while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\n' | b'\r') {
            i += 1;
        }
        i
    };
    let mut i = ws(0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i += 1;
    let mut found: Option<JsonListSplit> = None;
    loop {
        i = ws(i);
        match b.get(i)? {
            b'}' => {
                i += 1;
                break;
            }
            b'"' => {}
            _ => return None,
        }
        let key_end = skip_json_string(b, i)?;
        let key = &b[i + 1..key_end - 1];
        i = ws(key_end);
        if b.get(i) != Some(&b':') {
            return None;
        }
        i = ws(i + 1);
        if key == b"items" {
            if found.is_some() || b.get(i) != Some(&b'[') {
                return None; // a second `items`, or not an array: parsed whole
            }
            let start = i;
            let mut items = Vec::new();
            i = ws(i + 1);
            if b.get(i) == Some(&b']') {
                i += 1;
            } else {
                loop {
                    let s = i;
                    i = skip_json_value(b, i)?;
                    items.push(s..i);
                    i = ws(i);
                    match b.get(i)? {
                        b',' => i = ws(i + 1),
                        b']' => {
                            i += 1;
                            break;
                        }
                        _ => return None,
                    }
                }
            }
            found = Some(JsonListSplit {
                array: start..i,
                items,
            });
        } else {
            i = skip_json_value(b, i)?;
        }
        i = ws(i);
        match b.get(i)? {
            b',' => i += 1,
            b'}' => {
                i += 1;
                break;
            }
            _ => return None,
        }
    }
    if ws(i) != b.len() {
        return None;
    }
    found.filter(|f| !f.items.is_empty())
}

/// The end (exclusive) of the JSON string starting at `i` (its `"`).
fn skip_json_string(b: &[u8], mut i: usize) -> Option<usize> {
    i += 1;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// The end (exclusive) of the JSON value starting at `i`: strings, nested objects and
/// arrays by their brackets, scalars up to the next delimiter. Not a validation.
fn skip_json_value(b: &[u8], i: usize) -> Option<usize> {
    match b.get(i)? {
        b'"' => skip_json_string(b, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            while j < b.len() {
                match b[j] {
                    b'"' => {
                        j = skip_json_string(b, j)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth = depth.checked_sub(1)?;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            None
        }
        _ => {
            let mut j = i;
            while j < b.len() && !matches!(b[j], b',' | b']' | b'}' | b' ' | b'\t' | b'\n' | b'\r')
            {
                j += 1;
            }
            (j > i).then_some(j)
        }
    }
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
        push_item(out, item, i, item_line, what);
    }
}

/// Item `i` of a List or array: an object, or a problem naming the item.
fn push_item(out: &mut ParsedText, item: Value, i: usize, line: usize, what: &str) {
    if is_object(&item) {
        out.objects.push(ParsedObject { value: item, line });
    } else {
        out.problems.push(ParseProblem {
            line: Some(line),
            column: None,
            message: format!("item {i} of {what} has no apiVersion/kind"),
        });
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

#[cfg(test)]
mod stream_tests;
