//! Field lines: after the comparison, each change of a drifted object learns the line of
//! its field in the desired manifest ([`FieldChange::line`](crate::model::FieldChange)).
//!
//! Only drifted objects are located, so no per-field positions are ever kept for the
//! objects that match. The file texts come from the source when it kept them (Git and
//! rendered sources: [`AdoptSources::files`](crate::source::AdoptSources)); plain file
//! sources are read again from disk here, each file of a drifted object once.
//!
//! Located: plain YAML manifests (a directory or file source, a Git source rendered
//! `plain`, and `kind: List` dumps). Not located (the change keeps the object's line):
//! JSON files and objects rendered by Kustomize or Helm, whose text is not the file's.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::diff::DiffResult;
use crate::model::{DriftType, Origin};
use crate::source::Loaded;
use crate::source::adopt::field_line;
use crate::source::dump::MAX_FILE_BYTES;
use crate::source::render::Renderer;

/// Fills the line of every change of every modified drift whose desired object comes from
/// a plain YAML manifest of `from`.
pub(crate) fn attach(result: &mut DiffResult, from: &Loaded) {
    let kept = match &from.adopt {
        Some(a) if a.renderer == Renderer::Plain => Some(&a.files),
        // Rendered text: a line in it is no line of a file in the repository.
        Some(_) => return,
        None => None,
    };
    // The files of the drifted objects, each read (or looked up) once.
    let located = |d: &crate::model::Drift| match &d.desired_origin {
        Some(Origin::File { path, line, .. })
            if d.drift_type == DriftType::Modified && !is_json(path) =>
        {
            Some((path.clone(), *line))
        }
        _ => None,
    };
    let mut read: HashMap<PathBuf, Option<String>> = HashMap::new();
    if kept.is_none() {
        for (path, _) in result.drifts.iter().filter_map(located) {
            read.entry(path).or_insert_with_key(|p| read_text(p));
        }
    }
    let mut split: HashMap<PathBuf, Vec<&str>> = HashMap::new();
    for d in &mut result.drifts {
        let Some((path, first)) = located(d) else {
            continue;
        };
        let text = match kept {
            Some(files) => files.get(&path.display().to_string()).map(String::as_str),
            None => read.get(&path).and_then(Option::as_deref),
        };
        let Some(text) = text else {
            continue;
        };
        let lines = split
            .entry(path)
            .or_insert_with(|| text.split('\n').collect());
        for c in &mut d.changes {
            c.line = field_line(lines, first, &c.desired_path);
        }
    }
}

fn is_json(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
}

/// The file's text, when it is still there, not too large and UTF-8. A file that changed
/// since it was read gives wrong lines at worst; no error: lines are a hint.
fn read_text(path: &Path) -> Option<String> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() || meta.len() > MAX_FILE_BYTES {
        return None;
    }
    match std::fs::read_to_string(path) {
        Ok(t) => Some(t.strip_prefix('\u{feff}').map(str::to_string).unwrap_or(t)),
        Err(e) => {
            tracing::debug!(file = %path.display(), error = %e, "not located: the file could not be read again");
            None
        }
    }
}
