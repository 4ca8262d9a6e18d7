//! Markdown output: for pull-request comments, CI job summaries and tickets.

use std::fmt::Write as _;

use super::{Mode, Report, inline_value};
use crate::model::{DriftType, Severity};

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// Renders the report as GitHub-flavoured Markdown.
pub fn render(rep: &Report<'_>) -> String {
    let (l, r) = rep.mode.side_names();
    let s = rep.summary();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "## envdrift: {} drift{}\n",
        s.drifts,
        if s.drifts == 1 { "" } else { "s" }
    );
    let _ = writeln!(out, "- **{l}**: `{}`", rep.left.source);
    let _ = writeln!(out, "- **{r}**: `{}`", rep.right.source);
    for side in [&rep.left, &rep.right] {
        if let Some(reason) = &side.stale {
            let _ = writeln!(out, "- **stale {}**: {}", side.name, cell(reason));
        }
    }
    let _ = writeln!(out, "- compared: {} objects\n", rep.result.compared);
    let _ = writeln!(out, "| severity | count |\n| --- | ---: |");
    for sev in Severity::ALL {
        let _ = writeln!(
            out,
            "| {sev} | {} |",
            s.by_severity.get(&sev).copied().unwrap_or(0)
        );
    }
    let _ = writeln!(out);
    // A combined adopt diff (one per file with several drifted objects) is printed once.
    let mut printed_diffs: std::collections::HashSet<&str> = std::collections::HashSet::new();
    for d in &rep.result.drifts {
        let _ = writeln!(
            out,
            "### {} `{}` — {} ({})\n",
            d.severity.as_str().to_ascii_uppercase(),
            d.resource,
            rep.mode.type_name(d.drift_type),
            d.cause
        );
        if let Some(o) = &d.desired_origin {
            let _ = writeln!(out, "{}: `{o}`\n", rep.left.name);
        }
        if !d.changes.is_empty() {
            let _ = writeln!(
                out,
                "| field | change | {l} | {r} | category | severity | by |\n| --- | --- | --- | --- | --- | --- | --- |"
            );
            for c in &d.changes {
                let by = c
                    .attribution
                    .as_ref()
                    .map(|a| format!("{} ({})", a.manager, c.cause))
                    .unwrap_or_else(|| c.cause.to_string());
                let at = c.line.map(|n| format!(" (line {n})")).unwrap_or_default();
                let _ = writeln!(
                    out,
                    "| `{}`{at} | {} | {} | {} | {} | {} | {} |",
                    cell(&c.field),
                    c.op.as_str(),
                    cell(&inline_value(&c.desired, 60)),
                    cell(&inline_value(&c.live, 60)),
                    c.category,
                    c.severity,
                    cell(&by)
                );
            }
            let _ = writeln!(out);
        }
        if let Some(n) = &d.remedy.note {
            let _ = writeln!(out, "{n}\n");
        }
        let label = match (rep.mode, d.drift_type) {
            (Mode::EnvVsEnv, DriftType::Modified) => {
                format!("Make {} match {}:", rep.right.name, rep.left.name)
            }
            (_, DriftType::Modified) if d.remedy.verified => {
                "Fix (patch verified by re-comparison):".to_string()
            }
            (_, DriftType::Modified) => "No verified patch:".to_string(),
            (_, DriftType::Missing) => "Fix:".to_string(),
            (_, DriftType::Unmanaged) => "Or delete it:".to_string(),
        };
        let _ = writeln!(out, "{label}\n\n```sh\n{}\n```\n", d.remedy.kubectl);
        if let Some(rev) = &d.remedy.reverse {
            let _ = writeln!(
                out,
                "Make {} match {}:\n\n```sh\n{}\n```\n",
                rep.left.name, rep.right.name, rev.kubectl
            );
        }
        if let Some(a) = &d.remedy.adopt {
            match &a.file {
                Some(f) => {
                    let _ = writeln!(out, "Or adopt live into Git (`{f}`):\n");
                }
                None => {
                    let _ = writeln!(out, "Or adopt live into Git:\n");
                }
            }
            for n in &a.notes {
                let _ = writeln!(out, "- {}", cell(n));
            }
            if !a.notes.is_empty() {
                let _ = writeln!(out);
            }
            if let Some(diff) = &a.diff
                && !printed_diffs.insert(diff.as_str())
            {
                let _ = writeln!(out, "(The diff for this file is shown above.)\n");
            } else if let Some(diff) = &a.diff {
                let _ = writeln!(out, "```diff\n{}```\n", diff);
            }
        }
    }
    if !rep.errors.is_empty() {
        let _ = writeln!(out, "### Input errors\n");
        for e in &rep.errors {
            let _ = writeln!(out, "- `{}`", cell(&e.to_string()));
        }
        let _ = writeln!(out);
    }
    let notes = rep.all_notes();
    if !notes.is_empty() {
        let _ = writeln!(out, "### Notes\n");
        for n in notes {
            let _ = writeln!(out, "- {}", cell(n));
        }
        let _ = writeln!(out);
    }
    if !rep.result.unknown.is_empty() {
        let _ = writeln!(
            out,
            "### Not checked\n\n{} desired object(s): the {r} side could not read their kind.\n",
            rep.result.unknown.len()
        );
    }
    out
}
