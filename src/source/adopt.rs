//! Adopt-into-Git patches: the change to a manifest file in the repository that makes Git
//! match live (the opposite of the `kubectl patch` that makes live match Git).
//!
//! Entry points (pure: the file text comes in, a unified diff comes out):
//! - [`adopt_plain`]: for an object read from a plain manifest file, edits only the lines of
//!   the affected values (a scalar in place, keeping its quoting and trailing comment; a
//!   live-only key or list item inserted as block YAML; a removed key or item deleted) and
//!   keeps every other byte of the file.
//! - [`trace_rendered`]: for an object rendered by Kustomize or Helm, finds the file a
//!   changed value most likely comes from (a `values.yaml` key or a `newTag:` whose value
//!   equals, or is part of, the desired value) and patches that line.
//! - [`attach`]: fills [`Remedy::adopt`](crate::model::Remedy) of every modified drift.
//!
//! # Caveats
//! Block-style YAML is edited; a value inside flow style (`{a: 1}`, `[x, y]`), a block
//! scalar (`|`) replaced by a different value, anchors/aliases and `kind: List` files
//! are not edited: the adopt entry then lists the field-level changes instead.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::diff::DiffResult;
use crate::model::{Adopt, ChangeOp, Drift, DriftType, FieldChange, Origin};
use crate::redact::is_hashed;
use crate::source::render::Renderer;

/// What the desired side was made from (see [`crate::source::render::GitLoad`]).
#[derive(Debug, Clone, Copy)]
pub struct Sources<'a> {
    /// Repository-relative path → text.
    pub files: &'a BTreeMap<String, String>,
    pub renderer: Renderer,
    /// Rendered sources: files to search for a value, most specific first.
    pub trace_order: &'a [String],
    /// Helm `--set` values (`key=value`).
    pub set_values: &'a [String],
}

/// Fills `remedy.adopt` for every modified drift whose desired object came from the
/// source files.
///
/// Drifts of several objects in one plain file get ONE diff for that file (the edits of all
/// of them, made against the file as it is): separate diffs against the same text would
/// conflict once the first is applied. Each of those drifts carries the combined diff and a
/// note naming the other objects it adopts; renderers print it once.
pub(crate) fn attach(result: &mut DiffResult, src: &Sources<'_>) {
    let (files, renderer) = (src.files, src.renderer);
    // file → indices of the drifts whose plain-file edit touches it
    let mut by_file: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, d) in result.drifts.iter_mut().enumerate() {
        if d.drift_type != DriftType::Modified {
            continue;
        }
        let Some(Origin::File { path, line, .. }) = &d.desired_origin else {
            continue;
        };
        let path = path.display().to_string();
        let adopt = match renderer {
            Renderer::Plain => match files.get(&path) {
                Some(text) => adopt_plain(&path, text, *line, d),
                None => field_level(d, None),
            },
            _ => trace_rendered(d, files, src.trace_order, src.set_values),
        };
        if renderer == Renderer::Plain && adopt.diff.is_some() {
            by_file.entry(path).or_default().push(i);
        }
        d.remedy.adopt = Some(adopt);
    }
    for (path, idx) in by_file {
        if idx.len() < 2 {
            continue;
        }
        let Some(text) = files.get(&path) else {
            continue;
        };
        combine(&path, text, &idx, &mut result.drifts);
    }
}

/// One diff for the drifts `idx` of the plain file `path`: every edit of every drift,
/// against the original text. When the edits overlap (they cannot, for distinct objects,
/// unless the file is unusual) each drift keeps its own diff and a note says to apply them
/// one at a time.
fn combine(path: &str, text: &str, idx: &[usize], drifts: &mut [Drift]) {
    let lines: Vec<&str> = text.split('\n').collect();
    let mut edits = Vec::new();
    for &i in idx {
        let Some(Origin::File { line, .. }) = &drifts[i].desired_origin else {
            return;
        };
        edits.extend(edits_for(&lines, *line, &drifts[i]).0);
    }
    let names: Vec<String> = idx
        .iter()
        .map(|&i| drifts[i].resource.to_string())
        .collect();
    let combined = apply_edits(&lines, edits).map(|new| unified(path, text, &new));
    for (n, &i) in idx.iter().enumerate() {
        let others: Vec<&str> = names
            .iter()
            .enumerate()
            .filter(|(m, _)| *m != n)
            .map(|(_, s)| s.as_str())
            .collect();
        let Some(adopt) = drifts[i].remedy.adopt.as_mut() else {
            continue;
        };
        match &combined {
            Ok(diff) => {
                adopt.diff = Some(diff.clone());
                adopt.notes.push(format!(
                    "one diff for {path}: it also adopts {} (apply it once)",
                    others.join(", ")
                ));
            }
            Err(_) => adopt.notes.push(format!(
                "{path} also has drift of {}: apply these diffs one at a time, re-running envdrift between them",
                others.join(", ")
            )),
        }
    }
}

/// The field-level change, for when no file edit could be made.
fn field_level(d: &Drift, reason: Option<String>) -> Adopt {
    let mut notes: Vec<String> = reason.into_iter().collect();
    for c in &d.changes {
        notes.push(describe(c));
    }
    Adopt {
        file: None,
        diff: None,
        notes,
    }
}

/// Secret values are only known as hashes: name the fields, never a value.
fn secret_fields(d: &Drift) -> Adopt {
    let fields: Vec<&str> = d.changes.iter().map(|c| c.field.as_str()).collect();
    Adopt {
        file: None,
        diff: None,
        notes: vec![format!(
            "Secret values are compared by hash: copy the live values of {} into Git (or your secret manager) by hand",
            fields.join(", ")
        )],
    }
}

fn describe(c: &FieldChange) -> String {
    match c.op {
        ChangeOp::Changed => format!("set {} to {}", c.field, c.live),
        ChangeOp::Added => format!("add {}: {}", c.field, c.live),
        ChangeOp::Removed => format!("remove {}", c.field),
    }
}

fn is_secret(d: &Drift) -> bool {
    d.resource.kind == "Secret" && !d.resource.api_version.contains('/')
}

/// A change to whole lines: replace `[start, end)` (0-based) with `lines`.
#[derive(Debug, Clone)]
struct Edit {
    start: usize,
    end: usize,
    lines: Vec<String>,
}

/// The unified diff that adopts `d`'s live values into `text` (the file `path`, the object's
/// document starting at 1-based `line`).
pub fn adopt_plain(path: &str, text: &str, line: usize, d: &Drift) -> Adopt {
    if is_secret(d) {
        return secret_fields(d);
    }
    match adopt_text(text, line, d) {
        Ok((new_text, notes)) if new_text != text => Adopt {
            file: Some(path.to_string()),
            diff: Some(unified(path, text, &new_text)),
            notes,
        },
        Ok((_, notes)) => Adopt {
            file: Some(path.to_string()),
            diff: None,
            notes,
        },
        Err(why) => field_level(d, Some(why)),
    }
}

/// The new file text that adopts `d`'s live values, and notes for the changes that could
/// not be edited (those are left out of the text).
///
/// # Errors
/// When two edits overlap (then no edit is made).
pub fn adopt_text(text: &str, line: usize, d: &Drift) -> Result<(String, Vec<String>), String> {
    let lines: Vec<&str> = text.split('\n').collect();
    let (edits, notes) = edits_for(&lines, line, d);
    if edits.is_empty() {
        return Ok((text.to_string(), notes));
    }
    Ok((apply_edits(&lines, edits)?, notes))
}

/// The line edits that adopt `d`'s live values into the document starting at 1-based
/// `line`, and notes for the changes that cannot be edited.
fn edits_for(lines: &[&str], line: usize, d: &Drift) -> (Vec<Edit>, Vec<String>) {
    let doc = Doc::new(lines, line.saturating_sub(1));
    let mut edits = Vec::new();
    let mut notes = Vec::new();
    let mut removals: BTreeMap<&str, usize> = BTreeMap::new();
    for c in d.changes.iter().filter(|c| c.op == ChangeOp::Removed) {
        let parent = c.desired_path.rsplit_once('/').map_or("", |(p, _)| p);
        *removals.entry(parent).or_default() += 1;
    }
    for c in &d.changes {
        let parent = c.desired_path.rsplit_once('/').map_or("", |(p, _)| p);
        let removed_here = removals.get(parent).copied().unwrap_or(0);
        match edit_for(&doc, c, removed_here) {
            Ok(e) => edits.push(e),
            Err(why) => notes.push(format!("{} (not edited: {why})", describe(c))),
        }
    }
    (edits, notes)
}

fn apply_edits(lines: &[&str], edits: Vec<Edit>) -> Result<String, String> {
    // Bottom-up so that line numbers stay valid. Two insertions at one place (the ends of
    // a parent and of its last child coincide): the shallower is applied first, so that
    // the deeper one ends up above it, inside its own parent.
    let mut edits: Vec<(usize, Edit)> = edits.into_iter().enumerate().collect();
    edits.sort_by(|(ia, a), (ib, b)| {
        b.start
            .cmp(&a.start)
            .then(b.end.cmp(&a.end))
            .then(edit_indent(a).cmp(&edit_indent(b)))
            // appends to one list: the later one is applied first, so it ends up last
            .then(ib.cmp(ia))
    });
    let edits: Vec<Edit> = edits.into_iter().map(|(_, e)| e).collect();
    for w in edits.windows(2) {
        // sorted descending: w[1] must end before (or at) w[0]'s start
        if w[1].end > w[0].start {
            return Err("overlapping edits in one file region".into());
        }
    }
    let mut out: Vec<String> = lines.iter().map(std::string::ToString::to_string).collect();
    for e in edits {
        out.splice(e.start..e.end, e.lines);
    }
    Ok(out.join("\n"))
}

fn edit_indent(e: &Edit) -> usize {
    e.lines.first().map_or(0, |l| indent(l))
}

/// A git-apply-able unified diff with `a/` and `b/` prefixes.
pub(crate) fn unified(path: &str, old: &str, new: &str) -> String {
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(&format!("a/{path}"), &format!("b/{path}"))
        .to_string()
}

/// The lines of one YAML document in a file.
struct Doc<'a> {
    lines: &'a [&'a str],
    start: usize,
    end: usize,
}

fn indent(l: &str) -> usize {
    l.len() - l.trim_start_matches(' ').len()
}

fn significant(l: &str) -> bool {
    let t = l.trim();
    !t.is_empty() && !t.starts_with('#')
}

/// A block node: content starts at (`line`, `col`); following lines belong to it while
/// they are indented at least `col` (mappings: keys at exactly `col`; sequences: `-` at
/// exactly `col`). `end` is exclusive.
#[derive(Debug, Clone, Copy)]
struct Node {
    line: usize,
    col: usize,
    end: usize,
    seq: bool,
}

impl<'a> Doc<'a> {
    fn new(lines: &'a [&'a str], first: usize) -> Doc<'a> {
        let mut start = first.min(lines.len());
        if lines.get(start).is_some_and(|l| l.starts_with("---")) {
            start += 1;
        }
        let end = (start..lines.len())
            .find(|&i| {
                let l = lines[i].trim_end();
                l == "---" || l.starts_with("--- ") || l == "..."
            })
            .unwrap_or(lines.len());
        Doc { lines, start, end }
    }

    fn root(&self) -> Result<Node, String> {
        let first = (self.start..self.end)
            .find(|&i| significant(self.lines[i]))
            .ok_or("empty document")?;
        let l = self.lines[first];
        if l.starts_with('-') || l.trim_start().starts_with('{') {
            return Err("the document is not a block mapping".into());
        }
        Ok(Node {
            line: first,
            col: indent(l),
            end: self.end,
            seq: false,
        })
    }

    /// Text of line `i` from column `col` (the first line of an item starts after `- `).
    fn from(&self, i: usize, col: usize) -> &'a str {
        let l = self.lines[i];
        if l.len() >= col { &l[col..] } else { "" }
    }

    /// Lines that are at column `node.col` in a node (its keys or its items).
    fn heads(&self, node: Node) -> Vec<usize> {
        let mut out = vec![node.line];
        for i in node.line + 1..node.end {
            let l = self.lines[i];
            if significant(l) && indent(l) == node.col {
                out.push(i);
            }
        }
        out
    }

    /// The line of `key` in a mapping node.
    fn find_key(&self, node: Node, key: &str) -> Option<usize> {
        self.heads(node).into_iter().find(|&i| {
            let t = self.from(i, node.col);
            key_of(t).is_some_and(|k| k == key)
        })
    }

    /// Where the block that starts on `line` (a key or item head at `col`) ends.
    fn block_end(&self, line: usize, col: usize, end: usize) -> usize {
        let mut last = line;
        for i in line + 1..end {
            let l = self.lines[i];
            if !significant(l) {
                continue;
            }
            let ind = indent(l);
            let dash_at_col = ind == col && l.trim_start().starts_with('-');
            if ind > col || (dash_at_col && !self.is_item_head(line, col)) {
                last = i;
            } else {
                break;
            }
        }
        last + 1
    }

    fn is_item_head(&self, line: usize, col: usize) -> bool {
        self.from(line, col).starts_with('-')
    }

    /// The value node of the key on `line` (at `col`), when it is a block.
    fn child(&self, line: usize, col: usize, end: usize) -> Result<Node, String> {
        let rest = value_text(self.from(line, col)).unwrap_or("");
        if !rest.is_empty() {
            return Err(format!("inline value `{rest}` (flow style)"));
        }
        let bend = self.block_end(line, col, end);
        let first = (line + 1..bend)
            .find(|&i| significant(self.lines[i]))
            .ok_or("empty value")?;
        let l = self.lines[first];
        Ok(Node {
            line: first,
            col: indent(l),
            end: bend,
            seq: l.trim_start().starts_with('-'),
        })
    }

    /// Item `i` of a sequence node: (head line, content node).
    fn item(&self, node: Node, i: usize) -> Result<(usize, usize, Node), String> {
        let heads = self.heads(node);
        let head = *heads.get(i).ok_or("list item not found")?;
        let end = heads.get(i + 1).copied().unwrap_or(node.end);
        let end = trim_trailing(self.lines, head, end);
        let after = self.from(head, node.col).get(1..).unwrap_or("");
        let pad = after.len() - after.trim_start_matches(' ').len();
        let content_col = node.col + 1 + pad;
        if after.trim().is_empty() {
            let first = (head + 1..end)
                .find(|&j| significant(self.lines[j]))
                .ok_or("empty list item")?;
            let l = self.lines[first];
            return Ok((
                head,
                end,
                Node {
                    line: first,
                    col: indent(l),
                    end,
                    seq: l.trim_start().starts_with('-'),
                },
            ));
        }
        Ok((
            head,
            end,
            Node {
                line: head,
                col: content_col,
                end,
                seq: after.trim_start().starts_with("- "),
            },
        ))
    }
}

/// The 1-based line of the field at JSON Pointer `pointer` in the object whose document
/// (or `kind: List` item) starts at 1-based `first_line` of a file's `lines` (the text split
/// at `\n`, once per file): the line of its key or list item; for a field the text does not
/// have (a live-only field), the line of its deepest existing ancestor. `None` when the
/// object is not block YAML (JSON, flow style).
///
/// Uses the same block-YAML walker as the adopt edits, so it reads what they edit.
pub(crate) fn field_line(lines: &[&str], first_line: usize, pointer: &str) -> Option<usize> {
    let doc = Doc::new(lines, first_line.saturating_sub(1));
    let mut node = doc.object_root()?;
    let mut at = node.line;
    for t in tokens(pointer) {
        if node.seq {
            let Ok(i) = t.parse::<usize>() else {
                break;
            };
            let Ok((head, _, content)) = doc.item(node, i) else {
                break;
            };
            at = head;
            node = content;
        } else {
            let Some(line) = doc.find_key(node, &t) else {
                break;
            };
            at = line;
            match doc.child(line, node.col, node.end) {
                Ok(child) => node = child,
                // A scalar or flow value: nothing deeper to find.
                Err(_) => break,
            }
        }
    }
    Some(at + 1)
}

impl Doc<'_> {
    /// The object's mapping: the document's root, or the content of the list item that
    /// starts the range (an object of a `kind: List` dump).
    fn object_root(&self) -> Option<Node> {
        let first = (self.start..self.end).find(|&i| significant(self.lines[i]))?;
        let l = self.lines[first];
        let t = l.trim_start();
        if t == "-" || t.starts_with("- ") {
            let seq = Node {
                line: first,
                col: indent(l),
                end: self.end,
                seq: true,
            };
            let (_, _, content) = self.item(seq, 0).ok()?;
            return (!content.seq).then_some(content);
        }
        self.root().ok()
    }
}

/// Drops trailing blank and comment lines from a block's range.
fn trim_trailing(lines: &[&str], start: usize, mut end: usize) -> usize {
    while end > start + 1 && !significant(lines[end - 1]) {
        end -= 1;
    }
    end
}

/// `key: …` → `key` (plain or quoted).
fn key_of(t: &str) -> Option<String> {
    let t = t.trim_end();
    if let Some(q) = t.chars().next().filter(|c| *c == '"' || *c == '\'') {
        let close = t[1..].find(q)? + 1;
        let k = &t[1..close];
        let rest = &t[close + 1..];
        return rest.starts_with(':').then(|| k.to_string());
    }
    let i = t
        .find(": ")
        .or_else(|| t.ends_with(':').then(|| t.len() - 1))?;
    Some(t[..i].to_string())
}

/// The value part after `key:` without a trailing comment; `None` when there is no `:`.
fn value_text(t: &str) -> Option<&str> {
    let i = if t.starts_with('"') || t.starts_with('\'') {
        let q = &t[..1];
        let close = t[1..].find(q)? + 1;
        close + 1
    } else {
        t.find(": ")
            .or_else(|| t.trim_end().ends_with(':').then(|| t.trim_end().len() - 1))?
    };
    let rest = &t[i + 1..];
    Some(strip_comment(rest).trim())
}

fn strip_comment(s: &str) -> &str {
    let mut quote: Option<char> = None;
    let mut prev = ' ';
    for (i, c) in s.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if (c == '"' || c == '\'') && prev == ' ' => quote = Some(c),
            None if c == '#' && (prev == ' ' || prev == '\t') => return &s[..i],
            None => {}
        }
        prev = c;
    }
    s
}

fn tokens(pointer: &str) -> Vec<String> {
    pointer
        .split('/')
        .skip(1)
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect()
}

/// One edit for one change; `removed_here` counts the removals under the same parent.
fn edit_for(doc: &Doc<'_>, c: &FieldChange, removed_here: usize) -> Result<Edit, String> {
    if [&c.desired, &c.live]
        .iter()
        .any(|v| v.as_str().is_some_and(is_hashed))
    {
        return Err("the value is a hash".into());
    }
    let toks = tokens(&c.desired_path);
    let (last, parents) = toks.split_last().ok_or("empty path")?;
    let mut node = doc.root()?;
    for t in parents {
        node = if node.seq {
            let i: usize = t
                .parse()
                .map_err(|_| format!("`{t}` is not a list index"))?;
            let content = doc.item(node, i)?.2;
            if doc
                .from(content.line, content.col)
                .trim_start()
                .starts_with(['{', '[', '&', '*', '!', '|', '>'])
            {
                return Err("a list item in flow style".into());
            }
            content
        } else {
            let line = doc
                .find_key(node, t)
                .ok_or_else(|| format!("key `{t}` not found"))?;
            doc.child(line, node.col, node.end)?
        };
    }
    match c.op {
        ChangeOp::Changed => {
            if node.seq {
                let i: usize = last.parse().map_err(|_| "bad list index".to_string())?;
                let (head, end, _) = doc.item(node, i)?;
                let col = node.col;
                let t = doc.from(head, col);
                let old = strip_comment(t.get(1..).unwrap_or("")).trim();
                let single_line = (head + 1..end).all(|j| !significant(doc.lines[j]));
                let plain_item = !old.is_empty()
                    && !old.contains(": ")
                    && !old.starts_with(['-', '|', '>', '&', '*', '{', '[', '?']);
                if is_scalar(&c.live) && single_line && plain_item {
                    return Ok(replace_inline(doc, head, col + 1, &c.live, old));
                }
                let mut lines = Vec::new();
                emit_item(&c.live, col, &mut lines);
                keep_prefix(doc.lines[head], col, &mut lines);
                return Ok(Edit {
                    start: head,
                    end,
                    lines,
                });
            }
            let line = doc
                .find_key(node, last)
                .ok_or_else(|| format!("key `{last}` not found"))?;
            let t = doc.from(line, node.col);
            let old = value_text(t).unwrap_or("");
            if let Some(flow) = flow_value(old, &c.live) {
                let key_len = t.len() - t[t.find(':').map_or(0, |i| i + 1)..].len();
                return Ok(replace_text(doc, line, node.col + key_len, old, &flow));
            }
            if is_scalar(&c.live) && !old.is_empty() {
                if old.starts_with(['|', '>', '&', '*', '{', '[']) {
                    return Err(format!("value `{old}` is not a plain scalar"));
                }
                let key_len = t.len() - t[t.find(':').map_or(0, |i| i + 1)..].len();
                return Ok(replace_inline(doc, line, node.col + key_len, &c.live, old));
            }
            Ok(replace_key_block(doc, node, line, last, &c.live))
        }
        ChangeOp::Added => {
            // `key: null`, `key: {}`, `key: []` read as absent: the key is there already.
            if !node.seq
                && let Some(line) = doc.find_key(node, last)
            {
                return Ok(replace_key_block(doc, node, line, last, &c.live));
            }
            let end = trim_trailing(doc.lines, node.line, node.end);
            let mut lines = Vec::new();
            if node.seq {
                emit_item(&c.live, node.col, &mut lines);
            } else {
                emit_key(last, &c.live, node.col, &mut lines);
            }
            Ok(Edit {
                start: end,
                end,
                lines,
            })
        }
        ChangeOp::Removed => {
            // Emptying a list item's own list or map would leave `-` (null), which is not
            // the same as `[]`/`{}` inside a list.
            let parent_is_item = parents.last().is_some_and(|t| t.parse::<usize>().is_ok());
            if parent_is_item && doc.heads(node).len() <= removed_here {
                return Err("it would leave an empty list item".into());
            }
            if node.seq {
                let i: usize = last.parse().map_err(|_| "bad list index".to_string())?;
                let (head, end, _) = doc.item(node, i)?;
                if head == node.line && node.col > indent(doc.lines[head]) {
                    return Err("the list item starts on its parent's line".into());
                }
                return Ok(Edit {
                    start: head,
                    end,
                    lines: Vec::new(),
                });
            }
            let line = doc
                .find_key(node, last)
                .ok_or_else(|| format!("key `{last}` not found"))?;
            if line == node.line && node.col > indent(doc.lines[line]) {
                return Err("the key starts on a list item's line".into());
            }
            let end = doc.block_end(line, node.col, node.end);
            let end = trim_trailing(doc.lines, line, end);
            Ok(Edit {
                start: line,
                end,
                lines: Vec::new(),
            })
        }
    }
}

/// A flow collection (`["get", "list"]`, `{a: 1}`) replaced by another of scalars, in the
/// same style: quoted items stay quoted.
fn flow_value(old: &str, new: &Value) -> Option<String> {
    let quoted = old.contains('"');
    let item = |v: &Value| match v {
        Value::String(s) if quoted => Some(Value::String(s.clone()).to_string()),
        v if is_scalar(v) => Some(scalar(v)),
        _ => None,
    };
    match new {
        Value::Array(a) if old.starts_with('[') && old.ends_with(']') => {
            let items: Option<Vec<String>> = a.iter().map(item).collect();
            Some(format!("[{}]", items?.join(", ")))
        }
        Value::Object(m) if old.starts_with('{') && old.ends_with('}') => {
            let items: Option<Vec<String>> = m
                .iter()
                .map(|(k, v)| item(v).map(|v| format!("{}: {v}", key_text(k))))
                .collect();
            Some(format!("{{{}}}", items?.join(", ")))
        }
        _ => None,
    }
}

/// Replaces a key and its whole value (the lines of its block) with `key: value` emitted
/// as block YAML. A key on a list item's first line keeps the item's `- `.
fn replace_key_block(doc: &Doc<'_>, node: Node, line: usize, key: &str, value: &Value) -> Edit {
    let end = doc.block_end(line, node.col, node.end);
    let end = trim_trailing(doc.lines, line, end);
    let mut lines = Vec::new();
    emit_key(key, value, node.col, &mut lines);
    keep_prefix(doc.lines[line], node.col, &mut lines);
    Edit {
        start: line,
        end,
        lines,
    }
}

/// When the replaced block starts after an outer list item's `- ` on the same line, the
/// first new line keeps that prefix.
fn keep_prefix(original: &str, col: usize, lines: &mut [String]) {
    if indent(original) < col
        && let (Some(prefix), Some(first)) = (original.get(..col), lines.first_mut())
    {
        *first = format!("{prefix}{}", first.get(col..).unwrap_or(""));
    }
}

fn is_scalar(v: &Value) -> bool {
    !v.is_object() && !v.is_array()
}

/// Replaces the scalar `old` found after column `from` on `line` with `new`, keeping the
/// quoting style and everything else on the line.
fn replace_inline(doc: &Doc<'_>, line: usize, from: usize, new: &Value, old: &str) -> Edit {
    let quoted = old.starts_with('"') || old.starts_with('\'');
    let text = match (new, quoted) {
        (Value::String(s), true) if old.starts_with('\'') => {
            format!("'{}'", s.replace('\'', "''"))
        }
        (Value::String(s), true) => Value::String(s.clone()).to_string(),
        (v, _) => scalar(v),
    };
    replace_text(doc, line, from, old, &text)
}

/// Replaces the first `old` at or after column `from` on `line` with `text`.
fn replace_text(doc: &Doc<'_>, line: usize, from: usize, old: &str, text: &str) -> Edit {
    let l = doc.lines[line];
    let pos = l[from.min(l.len())..]
        .find(old)
        .map_or(l.len(), |p| p + from.min(l.len()));
    let mut s = String::with_capacity(l.len() + text.len());
    s.push_str(&l[..pos]);
    s.push_str(text);
    s.push_str(&l[(pos + old.len()).min(l.len())..]);
    Edit {
        start: line,
        end: line + 1,
        lines: vec![s],
    }
}

/// A scalar as YAML: plain when it reads back as the same string, else double-quoted.
pub fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => {
            if plain_ok(s) {
                s.clone()
            } else {
                Value::String(s.clone()).to_string()
            }
        }
        Value::Null => "null".into(),
        other => other.to_string(),
    }
}

/// True when `s` written plain reads back as the same string, the way kubectl reads YAML
/// (YAML 1.1: `yes`/`on` are booleans, `0644` is octal).
fn plain_ok(s: &str) -> bool {
    if s.is_empty() || s.trim() != s || s.contains(['\n', '\t']) {
        return false;
    }
    let first = s.chars().next().unwrap_or(' ');
    if "-?:,[]{}#&*!|>'\"%@`".contains(first) || s.contains(": ") || s.contains(" #") {
        return false;
    }
    let opts = serde_saphyr::options! {
        strict_booleans: false,
        legacy_octal_numbers: true,
        with_snippet: false,
    };
    serde_saphyr::from_str_with_options::<Value>(&format!("k: {s}\n"), opts)
        .is_ok_and(|v| v.get("k").and_then(Value::as_str) == Some(s))
}

fn key_text(k: &str) -> String {
    if plain_ok(k) && !k.contains(':') {
        k.to_string()
    } else {
        Value::String(k.to_string()).to_string()
    }
}

/// A JSON object as block YAML the way people write manifests (sequences indented under
/// their key), with the same scalar rules as the edits.
pub fn to_block_yaml(v: &Value) -> String {
    let mut out = Vec::new();
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                emit_key(k, x, 0, &mut out);
            }
        }
        other => out.push(scalar(other)),
    }
    let mut s = out.join("\n");
    s.push('\n');
    s
}

fn emit_key(k: &str, v: &Value, col: usize, out: &mut Vec<String>) {
    let pad = " ".repeat(col);
    let k = key_text(k);
    match v {
        Value::Object(m) if !m.is_empty() => {
            out.push(format!("{pad}{k}:"));
            for (ck, cv) in m {
                emit_key(ck, cv, col + 2, out);
            }
        }
        Value::Array(a) if !a.is_empty() => {
            out.push(format!("{pad}{k}:"));
            for item in a {
                emit_item(item, col + 2, out);
            }
        }
        Value::Object(_) => out.push(format!("{pad}{k}: {{}}")),
        Value::Array(_) => out.push(format!("{pad}{k}: []")),
        s => out.push(format!("{pad}{k}: {}", scalar(s))),
    }
}

fn emit_item(v: &Value, col: usize, out: &mut Vec<String>) {
    let pad = " ".repeat(col);
    match v {
        Value::Object(m) if !m.is_empty() => {
            let mut first = true;
            for (ck, cv) in m {
                let mut lines = Vec::new();
                emit_key(ck, cv, col + 2, &mut lines);
                for (i, l) in lines.into_iter().enumerate() {
                    if first && i == 0 {
                        out.push(format!("{pad}- {}", &l[col + 2..]));
                    } else {
                        out.push(l);
                    }
                }
                first = false;
            }
        }
        Value::Array(a) if !a.is_empty() => {
            out.push(format!("{pad}-"));
            for item in a {
                emit_item(item, col + 2, out);
            }
        }
        Value::Object(_) => out.push(format!("{pad}- {{}}")),
        Value::Array(_) => out.push(format!("{pad}- []")),
        s => out.push(format!("{pad}- {}", scalar(s))),
    }
}

/// For a rendered object: the file each changed value most likely comes from. A value in
/// a non-template YAML file of `order` (values files, kustomizations, patches; most
/// specific first) whose key is the field's last segment and whose value equals the desired
/// value, or whose value is the part of the desired value that changed (`tag: 1.4.2` in
/// `api:1.4.2`), is the candidate; the first one found is patched. A value that comes from
/// a Helm `--set` is named as such.
pub(crate) fn trace_rendered(
    d: &Drift,
    files: &BTreeMap<String, String>,
    order: &[String],
    set_values: &[String],
) -> Adopt {
    if is_secret(d) {
        return secret_fields(d);
    }
    let mut notes = Vec::new();
    let mut edits: BTreeMap<String, Vec<Edit>> = BTreeMap::new();
    for c in &d.changes {
        if c.op != ChangeOp::Changed || !is_scalar(&c.desired) || !is_scalar(&c.live) {
            notes.push(format!("{} (not traced to a file)", describe(c)));
            continue;
        }
        let want = text_of(&c.desired);
        let live = text_of(&c.live);
        let last = tokens(&c.desired_path).pop().unwrap_or_default();
        if let Some(set) = set_values.iter().find(|kv| {
            kv.split_once('=').is_some_and(|(_, v)| {
                !v.is_empty() && (v == want || (v.len() >= 3 && want.contains(v)))
            })
        }) {
            notes.push(format!(
                "{}: most likely from the Helm value --set {set} (configuration, not a file): set it to match {live}",
                c.field
            ));
            continue;
        }
        let mut found: Option<(String, usize, String, String)> = None;
        'files: for path in order {
            let Some(text) = files.get(path) else {
                continue;
            };
            if path.contains("/templates/") || path.ends_with("Chart.yaml") {
                continue;
            }
            for (i, l) in text.split('\n').enumerate() {
                let t = l.trim_start().trim_start_matches("- ");
                let (Some(k), Some(v)) = (key_of(t), value_text(t)) else {
                    continue;
                };
                let v_un = v.trim_matches(['"', '\'']);
                if v_un.is_empty() || v.starts_with(['|', '>', '&', '*', '{', '[']) {
                    continue;
                }
                let new = if v_un == want && (k == last || path_is_values(path)) {
                    Some(live.clone())
                } else if v_un.len() >= 3 && want.contains(v_un) && want != v_un {
                    // the changed part: same prefix and suffix on both sides
                    let (pre, post) = want.split_once(v_un).unwrap_or(("", ""));
                    live.strip_prefix(pre)
                        .and_then(|r| r.strip_suffix(post))
                        .filter(|m| !m.is_empty())
                        .map(str::to_string)
                } else {
                    None
                };
                if let Some(new) = new {
                    found = Some((path.clone(), i, v.to_string(), new));
                    break 'files;
                }
            }
        }
        match found {
            Some((path, i, old, new)) => {
                let text = &files[&path];
                notes.push(format!(
                    "{}: most likely from {path}:{} (`{}`): set it to {new}",
                    c.field,
                    i + 1,
                    text.split('\n').nth(i).unwrap_or("").trim()
                ));
                let lines: Vec<&str> = text.split('\n').collect();
                let doc = Doc {
                    lines: &lines,
                    start: 0,
                    end: lines.len(),
                };
                let from = lines[i].find(':').map_or(0, |p| p + 1);
                let e = replace_inline(&doc, i, from, &Value::String(new), &old);
                edits.entry(path).or_default().push(e);
            }
            None => notes.push(format!("{} (not traced to a file)", describe(c))),
        }
    }
    let mut diffs = String::new();
    let mut file = None;
    for (path, es) in edits {
        let lines: Vec<&str> = files[&path].split('\n').collect();
        if let Ok(new) = apply_edits(&lines, es) {
            diffs.push_str(&unified(&path, &files[&path], &new));
            file.get_or_insert(path);
        }
    }
    Adopt {
        file,
        diff: (!diffs.is_empty()).then_some(diffs),
        notes,
    }
}

fn path_is_values(p: &str) -> bool {
    let name = p.rsplit('/').next().unwrap_or(p);
    name.starts_with("values") || name.starts_with("kustomization")
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        o => o.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn comments_survive() {
        assert_eq!(strip_comment(" a # c"), " a ");
        assert_eq!(strip_comment(" \"a # b\" # c"), " \"a # b\" ");
        assert_eq!(key_of("image: x:1 # c").as_deref(), Some("image"));
        assert_eq!(value_text("image: x:1 # c"), Some("x:1"));
        assert_eq!(value_text("\"a.b\": 2"), Some("2"));
    }

    #[test]
    fn scalars_read_back() {
        for s in [
            "1.4", "yes", "on", "", " x", "a: b", "0644", "true", "-x", "1e3", "null", "~",
        ] {
            assert!(scalar(&json!(s)).starts_with('"'), "{s}");
        }
        assert_eq!(scalar(&json!("registry/api:1.4.3")), "registry/api:1.4.3");
        assert_eq!(scalar(&json!("1.4.3")), "1.4.3");
        assert_eq!(scalar(&json!(3)), "3");
    }

    fn field_line(text: &str, first_line: usize, pointer: &str) -> Option<usize> {
        let lines: Vec<&str> = text.split('\n').collect();
        super::field_line(&lines, first_line, pointer)
    }

    #[test]
    fn field_lines_in_documents_and_list_items() {
        let text = "\
# first
apiVersion: v1
kind: ConfigMap
metadata:
  name: a
data:
  k: v
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  template:
    spec:
      containers:
        - name: side
          image: side:1
        - name: web
          # the image
          image: web:1.4.2
          ports: [{containerPort: 80}]
";
        // 2nd document, 2nd container's image
        let p = "/spec/template/spec/containers/1/image";
        assert_eq!(field_line(text, 8, p), Some(22));
        assert_eq!(field_line(text, 9, p), Some(22));
        assert_eq!(field_line(text, 9, "/spec/replicas"), Some(14));
        // absent: the deepest existing ancestor
        assert_eq!(
            field_line(text, 9, "/spec/template/spec/containers/1/resources"),
            Some(20)
        );
        assert_eq!(
            field_line(text, 9, "/spec/template/spec/containers/-"),
            Some(17)
        );
        // inside a flow value: the key holding it
        assert_eq!(
            field_line(
                text,
                9,
                "/spec/template/spec/containers/1/ports/0/containerPort"
            ),
            Some(23)
        );
        // the first document, from its comment line
        assert_eq!(field_line(text, 1, "/data/k"), Some(7));
        assert_eq!(field_line(text, 1, "/data/other"), Some(6));
        assert_eq!(field_line(text, 1, ""), Some(2));
        // JSON is not located
        assert_eq!(field_line("{\"a\": {\"b\": 1}}", 1, "/a/b"), None);
        // a kind: List item
        let list = "\
apiVersion: v1
kind: List
items:
  - apiVersion: v1
    kind: ConfigMap
    metadata:
      name: a
    data:
      k: v
  - apiVersion: v1
    kind: ConfigMap
    metadata:
      name: b
    data:
      k: w
";
        assert_eq!(field_line(list, 4, "/data/k"), Some(9));
        assert_eq!(field_line(list, 10, "/data/k"), Some(15));
        assert_eq!(field_line(list, 10, "/metadata/labels"), Some(12));
    }

    #[test]
    fn emits_block_yaml() {
        let mut out = Vec::new();
        emit_key(
            "securityContext",
            &json!({"privileged": true, "caps": ["NET_ADMIN"]}),
            8,
            &mut out,
        );
        assert_eq!(
            out,
            [
                "        securityContext:",
                "          caps:",
                "            - NET_ADMIN",
                "          privileged: true"
            ]
        );
        let mut out = Vec::new();
        emit_item(&json!({"name": "B", "value": "2"}), 2, &mut out);
        assert_eq!(out, ["  - name: B", "    value: \"2\""]);
    }
}
