//! Drift reports: per environment and comparison, open drifts by severity and category, new
//! and resolved since the last report, the oldest open drifts with their age, failed scans.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::alert::notice::ReportSection;
use crate::model::Severity;
use crate::store::{DriftFilter, DriftStatus, ScanOutcome, StoreError, StoreReader};

use super::lifecycle::notice_from_row;

/// How many of the oldest open drifts a report lists per target.
pub const OLDEST: usize = 5;

/// Builds the report sections of `targets` since `since` (RFC 3339).
pub fn build(
    store: &StoreReader,
    targets: &[String],
    since: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<ReportSection>, StoreError> {
    let mut out = Vec::new();
    for t in targets {
        let open = store.list_drifts(&DriftFilter {
            target: Some(t.clone()),
            status: Some(DriftStatus::Open),
            limit: 1000,
            ..DriftFilter::default()
        })?;
        let mut by_sev: BTreeMap<Severity, usize> = BTreeMap::new();
        let mut by_cat: BTreeMap<String, usize> = BTreeMap::new();
        for d in &open {
            *by_sev.entry(d.severity).or_default() += 1;
            for c in &d.categories {
                *by_cat.entry(c.clone()).or_default() += 1;
            }
        }
        let mut oldest: Vec<_> = open.iter().collect();
        oldest.sort_by(|a, b| a.first_seen.cmp(&b.first_seen));
        let (new, resolved) = store.counts_since(t, since)?;
        let failed: Vec<String> = store
            .scans_since(t, since)?
            .into_iter()
            .filter(|s| matches!(s.outcome, ScanOutcome::Failed | ScanOutcome::Partial))
            .map(|s| {
                format!(
                    "{} {}: {}",
                    s.started_at,
                    s.outcome,
                    s.error.unwrap_or_default()
                )
            })
            .collect();
        out.push(ReportSection {
            name: t.clone(),
            open_by_severity: Severity::ALL
                .iter()
                .map(|s| (*s, by_sev.get(s).copied().unwrap_or(0)))
                .collect(),
            open_by_category: by_cat.into_iter().collect(),
            new_since_last: new as usize,
            resolved_since_last: resolved as usize,
            oldest: oldest
                .iter()
                .take(OLDEST)
                .map(|r| notice_from_row(r, now))
                .collect(),
            failed_scans: failed,
        });
    }
    Ok(out)
}

/// The report as JSON (`report -f json`, `GET /api/v1/reports/latest?format=json`): the
/// sections as the templates see them, except that each change's `desired` and `live` are
/// the typed values of `diff -f json` (`true`, `3`, `null` for absent), not short texts.
pub fn render_json(title: &str, sections: &[ReportSection]) -> serde_json::Value {
    let mut out = serde_json::json!({"title": title, "sections": sections});
    for (i, s) in sections.iter().enumerate() {
        for (j, d) in s.oldest.iter().enumerate() {
            for (k, c) in d.changes.iter().enumerate() {
                let Some(v) = &c.values else { continue };
                let slot = &mut out["sections"][i]["oldest"][j]["changes"][k];
                slot["desired"] = v.0.clone();
                slot["live"] = v.1.clone();
            }
        }
    }
    out
}

/// The report as plain text (stdout of `envdrift report`).
pub fn render_text(title: &str, sections: &[ReportSection]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{title}");
    for s in sections {
        let open: usize = s.open_by_severity.iter().map(|(_, n)| n).sum();
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "{}: {open} open drift(s), {} new, {} resolved since the last report",
            s.name, s.new_since_last, s.resolved_since_last
        );
        let sev: Vec<String> = s
            .open_by_severity
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(sev, n)| format!("{n} {sev}"))
            .collect();
        if !sev.is_empty() {
            let _ = writeln!(out, "  by severity: {}", sev.join(", "));
        }
        if !s.open_by_category.is_empty() {
            let cat: Vec<String> = s
                .open_by_category
                .iter()
                .map(|(c, n)| format!("{n} {c}"))
                .collect();
            let _ = writeln!(out, "  by category: {}", cat.join(", "));
        }
        for d in &s.oldest {
            let _ = writeln!(
                out,
                "  oldest: {} {} [{}] open for {}",
                d.resource, d.drift_type, d.severity, d.age
            );
        }
        for f in &s.failed_scans {
            let _ = writeln!(out, "  failed scan: {f}");
        }
    }
    out
}

/// One summary row: the name, open drifts per severity (critical first), new, resolved.
fn summary_cells(s: &ReportSection, name: String) -> Vec<String> {
    let mut cells = vec![name];
    for sev in Severity::ALL {
        let n = s
            .open_by_severity
            .iter()
            .find(|(x, _)| *x == sev)
            .map_or(0, |(_, n)| *n);
        cells.push(n.to_string());
    }
    cells.push(s.new_since_last.to_string());
    cells.push(s.resolved_since_last.to_string());
    cells
}

/// The report as Markdown.
pub fn render_markdown(title: &str, sections: &[ReportSection]) -> String {
    let mut out = format!(
        "# {title}\n\n| target | critical | high | medium | low | info | new | resolved |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n"
    );
    for s in sections {
        let _ = writeln!(out, "| {} |", summary_cells(s, s.name.clone()).join(" | "));
    }
    for s in sections {
        if s.oldest.is_empty() && s.failed_scans.is_empty() {
            continue;
        }
        let _ = writeln!(out, "\n## {}\n", s.name);
        for d in &s.oldest {
            let _ = writeln!(
                out,
                "- `{}` {} **{}**, open for {}",
                d.resource, d.drift_type, d.severity, d.age
            );
        }
        for f in &s.failed_scans {
            let _ = writeln!(out, "- failed scan: {f}");
        }
    }
    out
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The report as a standalone HTML page (API `format=html`).
pub(crate) fn render_html(title: &str, sections: &[ReportSection]) -> String {
    let mut out = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t}</title></head><body><h1>{t}</h1>\n<table border=\"1\" cellpadding=\"4\"><tr><th>target</th><th>critical</th><th>high</th><th>medium</th><th>low</th><th>info</th><th>new</th><th>resolved</th></tr>\n",
        t = esc(title)
    );
    for s in sections {
        let cells = summary_cells(s, esc(&s.name));
        let _ = writeln!(out, "<tr><td>{}</td></tr>", cells.join("</td><td>"));
    }
    out.push_str("</table>\n");
    for s in sections {
        if s.oldest.is_empty() && s.failed_scans.is_empty() {
            continue;
        }
        let _ = writeln!(out, "<h2>{}</h2><ul>", esc(&s.name));
        for d in &s.oldest {
            let _ = writeln!(
                out,
                "<li><code>{}</code> {} <b>{}</b>, open for {}</li>",
                esc(&d.resource),
                esc(&d.drift_type),
                d.severity,
                esc(&d.age)
            );
        }
        for f in &s.failed_scans {
            let _ = writeln!(out, "<li>failed scan: {}</li>", esc(f));
        }
        out.push_str("</ul>\n");
    }
    out.push_str("</body></html>\n");
    out
}
