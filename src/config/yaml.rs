//! Every problem of a config file at once, each at its line and column.
//!
//! serde stops at the first error. To report them all, the file is first read as YAML
//! events (with positions) into an index: where each key path starts
//! (`ignore[2].paths[0]` → line 14, column 7), and where each top-level section and each
//! block-sequence item (a rule, a sink, a token) begins and ends. Then the file is parsed;
//! at each error, the rule (or, failing that, the section) that holds it is turned into
//! comment lines, line numbers unchanged, and the file is parsed again, until it parses.
//! The semantic checks then run on what parsed, their keys mapped back to the original
//! rule numbers and given the position of that key in the file.

use std::collections::{BTreeMap, BTreeSet};

use serde_saphyr::granit_parser::{Event, Parser, StructureStyle};

/// Config keys written under another name (Argo CD's vocabulary) and their canonical name,
/// as the semantic checks name them.
const ALIASES: &[(&str, &str)] = &[
    ("ignoreDifferences", "ignore"),
    ("jsonPointers", "paths"),
    ("managedFieldsManagers", "managers"),
];

/// Lines of the file, 1-based, inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Lines {
    first: usize,
    last: usize,
}

/// A block-sequence item, or an entry of a top-level section's block mapping
/// (`environments.prod`), that can be commented out on its own.
#[derive(Debug, Clone)]
struct Item {
    /// Canonical path of the sequence (`ignore`, `alerts.sinks`) or mapping.
    seq: String,
    /// The item's index in its sequence; None for a mapping entry (keyed by name: cutting
    /// it renumbers nothing).
    index: Option<usize>,
    lines: Lines,
}

/// Positions of a config text's keys and units (see the module doc).
#[derive(Debug, Default)]
pub(super) struct Index {
    /// Canonical key path → (line, column), 1-based.
    at: BTreeMap<String, (usize, usize)>,
    /// Top-level sections: name and lines (only those starting at column 1).
    sections: Vec<(String, Lines)>,
    items: Vec<Item>,
}

enum Frame {
    Map {
        path: String,
        key: Option<String>,
        block: bool,
        /// Start line of each key so far (kept for the entries of top-level sections).
        starts: Vec<usize>,
    },
    Seq {
        path: String,
        next: usize,
        block: bool,
        /// Start line of each item so far.
        starts: Vec<usize>,
    },
}

fn canonical(key: &str) -> &str {
    ALIASES
        .iter()
        .find(|(a, _)| *a == key)
        .map_or(key, |(_, c)| c)
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

impl Index {
    /// Reads the events of `text`; a syntax error ends the index where it is.
    pub(super) fn new(text: &str) -> Index {
        let mut idx = Index::default();
        let lines: Vec<&str> = text.lines().collect();
        let mut stack: Vec<Frame> = Vec::new();
        let mut top_keys: Vec<(String, usize)> = Vec::new();
        for ev in Parser::new_from_str(text) {
            let Ok((event, span)) = ev else { break };
            let (line, col) = (span.start.line(), span.start.col() + 1);
            // The path of the node this event starts (a value or an item), if any.
            let node_path = |stack: &mut Vec<Frame>| -> Option<String> {
                match stack.last_mut() {
                    Some(Frame::Map { path, key, .. }) => key.take().map(|k| join(path, &k)),
                    Some(Frame::Seq {
                        path, next, starts, ..
                    }) => {
                        let p = format!("{path}[{next}]");
                        *next += 1;
                        starts.push(line);
                        Some(p)
                    }
                    None => Some(String::new()),
                }
            };
            match event {
                Event::Scalar(value, ..) => {
                    // A mapping key, or a value.
                    if let Some(Frame::Map {
                        path, key, starts, ..
                    }) = stack.last_mut()
                        && key.is_none()
                    {
                        let k = canonical(&value).to_string();
                        let full = join(path, &k);
                        if path.is_empty() && col == 1 {
                            top_keys.push((k.clone(), line));
                        }
                        if !path.is_empty() && !path.contains(['.', '[']) {
                            starts.push(line);
                        }
                        idx.at.entry(full).or_insert((line, col));
                        *key = Some(k);
                        continue;
                    }
                    if let Some(p) = node_path(&mut stack) {
                        idx.at.entry(p).or_insert((line, col));
                    }
                }
                Event::Alias(_) => {
                    node_path(&mut stack);
                }
                Event::MappingStart(style, ..) => {
                    let p = node_path(&mut stack).unwrap_or_default();
                    if !p.is_empty() {
                        idx.at.entry(p.clone()).or_insert((line, col));
                    }
                    stack.push(Frame::Map {
                        path: p,
                        key: None,
                        block: matches!(style, StructureStyle::Block),
                        starts: Vec::new(),
                    });
                }
                Event::SequenceStart(style, ..) => {
                    let p = node_path(&mut stack).unwrap_or_default();
                    if !p.is_empty() {
                        idx.at.entry(p.clone()).or_insert((line, col));
                    }
                    stack.push(Frame::Seq {
                        path: p,
                        next: 0,
                        block: matches!(style, StructureStyle::Block),
                        starts: Vec::new(),
                    });
                }
                Event::MappingEnd => {
                    if let Some(Frame::Map {
                        path,
                        block: true,
                        starts,
                        ..
                    }) = stack.pop()
                    {
                        idx.push_items(&path, &starts, &span, &lines, false);
                    }
                }
                Event::SequenceEnd => {
                    if let Some(Frame::Seq {
                        path,
                        block: true,
                        starts,
                        ..
                    }) = stack.pop()
                    {
                        idx.push_items(&path, &starts, &span, &lines, true);
                    }
                }
                _ => {}
            }
        }
        for (i, (k, line)) in top_keys.iter().enumerate() {
            let last = top_keys
                .get(i + 1)
                .map_or(lines.len(), |(_, n)| n.saturating_sub(1));
            idx.sections.push((
                k.clone(),
                Lines {
                    first: *line,
                    last: last.max(*line),
                },
            ));
        }
        idx
    }

    /// Records the items of a block sequence (or the entries of a top-level section's
    /// block mapping) whose start lines are `starts`: item i runs to the line before item
    /// i+1, the last one to the line before the collection's end (the next key, or the
    /// end of the file). Only items that begin their line can be cut alone.
    fn push_items(
        &mut self,
        path: &str,
        starts: &[usize],
        end: &serde_saphyr::granit_parser::Span,
        lines: &[&str],
        sequence: bool,
    ) {
        let end_line = if end.start.col() == 0 || end.start.line() > lines.len() {
            end.start.line().saturating_sub(1)
        } else {
            end.start.line()
        };
        for (i, first) in starts.iter().enumerate() {
            let last = starts
                .get(i + 1)
                .map_or(end_line, |n| n.saturating_sub(1))
                .max(*first);
            let own_line =
                starts.get(i + 1) != Some(first) && (i == 0 || starts.get(i - 1) != Some(first));
            let begins = lines.get(first.saturating_sub(1)).is_some_and(|l| {
                let t = l.trim_start();
                if sequence {
                    t.starts_with('-')
                } else {
                    !t.starts_with(['-', '{', '['])
                }
            });
            if own_line && begins {
                self.items.push(Item {
                    seq: path.to_string(),
                    index: sequence.then_some(i),
                    lines: Lines {
                        first: *first,
                        last: last.min(lines.len()),
                    },
                });
            }
        }
    }

    /// The position of a semantic key (`ignore[1].paths[0]`), or of its nearest ancestor
    /// in the file.
    pub(super) fn position(&self, key: &str) -> Option<(usize, usize)> {
        let mut k = key;
        loop {
            if let Some(p) = self.at.get(k) {
                return Some(*p);
            }
            let cut = k.rfind(['.', '['])?;
            k = &k[..cut];
        }
    }
}

/// The state of the repeated parse: the text with commented-out units, and what was
/// commented out.
pub(super) struct Blanked<'i> {
    index: &'i Index,
    pub(super) text: String,
    /// Sequence path → original indices commented out.
    removed: BTreeMap<String, BTreeSet<usize>>,
    /// Sections commented out whole, or holding a commented-out item.
    touched: BTreeSet<String>,
    /// Lines commented out.
    cut_lines: Vec<Lines>,
}

impl<'i> Blanked<'i> {
    pub(super) fn new(index: &'i Index, text: &str) -> Self {
        Blanked {
            index,
            text: text.to_string(),
            removed: BTreeMap::new(),
            touched: BTreeSet::new(),
            cut_lines: Vec::new(),
        }
    }

    fn comment_out(&mut self, lines: Lines) {
        self.cut_lines.push(lines);
        let out: Vec<String> = self
            .text
            .split('\n')
            .enumerate()
            .map(|(i, l)| {
                let n = i + 1;
                if n >= lines.first && n <= lines.last && !l.trim().is_empty() {
                    format!("#{l}")
                } else {
                    l.to_string()
                }
            })
            .collect();
        self.text = out.join("\n");
    }

    fn section_at(&self, line: usize) -> Option<&(String, Lines)> {
        self.index
            .sections
            .iter()
            .find(|(_, l)| line >= l.first && line <= l.last)
    }

    /// Whether an error at this line is in what was cut already (an error the cut caused).
    pub(super) fn already_reported(&self, line: usize) -> bool {
        self.cut_lines
            .iter()
            .any(|l| line >= l.first && line <= l.last)
    }

    fn is_cut(&self, item: &Item) -> bool {
        self.already_reported(item.lines.first)
    }

    /// Comments out the innermost rule holding `line` (or, when its section has been
    /// touched already or no rule can be cut out alone, the whole section). False when
    /// nothing can be cut: the caller stops.
    pub(super) fn cut(&mut self, line: usize, whole_section: bool) -> bool {
        let section = self.section_at(line).cloned();
        if !whole_section
            && let Some(item) = self
                .index
                .items
                .iter()
                .filter(|it| line >= it.lines.first && line <= it.lines.last)
                .filter(|it| !self.is_cut(it))
                .min_by_key(|it| it.lines.last - it.lines.first)
                .cloned()
            // The last item of its list or mapping goes with its section: an emptied
            // list would be an error of its own.
            && self
                .index
                .items
                .iter()
                .filter(|it| it.seq == item.seq && !self.is_cut(it))
                .count()
                > 1
        {
            self.comment_out(item.lines);
            if let Some(i) = item.index {
                self.removed.entry(item.seq.clone()).or_default().insert(i);
            }
            if let Some((s, _)) = section {
                self.touched.insert(s);
            }
            return true;
        }
        match section {
            Some((name, lines)) => {
                let before = self.text.clone();
                self.comment_out(lines);
                self.touched.insert(name);
                self.text != before
            }
            None => false,
        }
    }

    /// Whether a section was cut (whole or in part).
    pub(super) fn touched(&self, section: &str) -> bool {
        self.touched.contains(section)
    }

    /// A semantic key of the re-parsed config (`ignore[1].paths[0]`) as it is numbered in
    /// the original file, where earlier items may have been cut out.
    pub(super) fn original_key(&self, key: &str) -> String {
        let mut out = String::new();
        let mut rest = key;
        while let Some(open) = rest.find('[') {
            let Some(close) = rest[open..].find(']').map(|c| open + c) else {
                break;
            };
            out.push_str(&rest[..open]);
            let seq = out.clone();
            let n: Option<usize> = rest[open + 1..close].parse().ok();
            match (n, self.removed.get(&seq)) {
                (Some(n), Some(removed)) => {
                    // The n-th index not removed.
                    let orig = (0..).filter(|i| !removed.contains(i)).nth(n).unwrap_or(n);
                    out.push_str(&format!("[{orig}]"));
                }
                _ => out.push_str(&rest[open..=close]),
            }
            rest = &rest[close + 1..];
        }
        out.push_str(rest);
        out
    }
}

/// Levenshtein distance, for "did you mean".
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// For serde's ``unknown field `x`, expected one of `a`, `b` `` (or ``unknown variant``),
/// the closest expected name when it is close enough to be a typo.
pub(super) fn suggestion(message: &str) -> Option<String> {
    let after = message
        .split_once("unknown field `")
        .or_else(|| message.split_once("unknown variant `"))?
        .1;
    let (got, rest) = after.split_once('`')?;
    let list = rest.split_once("expected one of ")?.1;
    let expected: Vec<&str> = list
        .split(',')
        .map(|e| e.trim().trim_matches('`'))
        .filter(|e| !e.is_empty())
        .collect();
    let lower = got.to_ascii_lowercase();
    let (best, d) = expected
        .iter()
        .map(|e| (*e, distance(&lower, &e.to_ascii_lowercase())))
        .min_by_key(|(_, d)| *d)?;
    (d <= got.chars().count().div_ceil(3).max(1)).then(|| best.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
default_namespace: shop
ignore:
  - kind: Deployment
    paths: [/spec/replicas]
  - kind: Service
    pathz: [/spec/clusterIP]
ignoreDifferences_not: 1
severity_rules:
  - kind: ConfigMap
    path: /data
    severity: low
";

    #[test]
    fn keys_and_units_have_positions() {
        let idx = Index::new(TEXT);
        assert_eq!(idx.position("default_namespace"), Some((1, 1)));
        assert_eq!(idx.position("ignore[1]"), Some((5, 5)));
        assert_eq!(idx.position("ignore[0].paths[0]"), Some((4, 13)));
        assert_eq!(idx.position("ignore[1].labelSelector"), Some((5, 5)));
        assert_eq!(idx.position("severity_rules[0].path"), Some((10, 5)));
        let units = |idx: &Index| -> Vec<(String, Option<usize>, usize, usize)> {
            idx.items
                .iter()
                .map(|i| (i.seq.clone(), i.index, i.lines.first, i.lines.last))
                .collect()
        };
        let items = units(&idx);
        assert!(
            items.contains(&("ignore".into(), Some(1), 5, 6)),
            "{items:?}"
        );
        assert!(
            items.contains(&("severity_rules".into(), Some(0), 9, 11)),
            "{items:?}"
        );
        // Entries of a top-level section's mapping are units too.
        let envs = Index::new(
            "environments:\n  prod:\n    interval: 5m\n  staging:\n    interval: 1m\nlisten: x\n",
        );
        let items = units(&envs);
        assert!(
            items.contains(&("environments".into(), None, 2, 3)),
            "{items:?}"
        );
        assert!(
            items.contains(&("environments".into(), None, 4, 5)),
            "{items:?}"
        );
        // Argo CD's names map to envdrift's.
        let argo = Index::new("ignoreDifferences:\n- kind: X\n  jsonPointers: [/a]\n");
        assert_eq!(argo.position("ignore[0].paths[0]"), Some((3, 18)));
    }

    #[test]
    fn cutting_keeps_line_numbers_and_renumbers_keys() {
        let idx = Index::new(TEXT);
        let mut b = Blanked::new(&idx, TEXT);
        assert!(b.cut(6, false));
        assert_eq!(b.text.lines().count(), TEXT.lines().count());
        assert!(b.text.contains("#  - kind: Service"), "{}", b.text);
        assert!(b.text.contains("#    pathz"), "{}", b.text);
        assert!(!b.text.contains("#    paths"), "{}", b.text);
        assert!(b.already_reported(5) && b.already_reported(6));
        assert!(!b.already_reported(3));
        assert!(b.touched("ignore"));
        // The last item left goes with its section.
        assert!(b.cut(3, false));
        assert!(b.text.contains("#ignore:"), "{}", b.text);
        assert!(b.cut(7, false));
        assert!(b.text.contains("#ignoreDifferences_not"), "{}", b.text);
        let mut c = Blanked::new(&idx, TEXT);
        c.cut(3, false);
        assert_eq!(c.original_key("ignore[0].paths[0]"), "ignore[1].paths[0]");
        assert_eq!(c.original_key("severity_rules[0]"), "severity_rules[0]");
    }

    #[test]
    fn unknown_names_suggest_the_closest() {
        let m = "unknown field `pathz`, expected one of `group`, `kind`, `paths`, `managers`";
        assert_eq!(suggestion(m).as_deref(), Some("paths"));
        let m =
            "unknown variant `hgh`, expected one of `info`, `low`, `medium`, `high`, `critical`";
        assert_eq!(suggestion(m).as_deref(), Some("high"));
        let m = "unknown field `zzzzzz`, expected one of `group`, `kind`";
        assert_eq!(suggestion(m), None);
        // serde-saphyr writes the list without backticks.
        let m = "unknown field `listn`, expected one of default_namespace, listen, timezone";
        assert_eq!(suggestion(m).as_deref(), Some("listen"));
    }
}
