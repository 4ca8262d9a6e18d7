//! The terminal table: drifts grouped by severity, one line per field change, the fix
//! under each resource. Colors only when asked (stdout is a terminal).

use std::fmt::Write as _;

use anstyle::{AnsiColor, Style};

use super::{Mode, Report, inline_value, truncate};
use crate::model::{ChangeOp, Drift, DriftType, Severity};

/// Rendering options.
#[derive(Debug, Clone, Copy, Default)]
pub struct TableOptions {
    pub color: bool,
    /// Widest value shown inline (characters). 0 means the default, 48.
    pub value_width: usize,
}

struct Paint {
    on: bool,
}

impl Paint {
    fn style(&self, s: Style, text: &str) -> String {
        if self.on {
            format!("{s}{text}{s:#}")
        } else {
            text.to_string()
        }
    }
    fn sev(&self, sev: Severity, text: &str) -> String {
        let color = match sev {
            Severity::Critical => AnsiColor::BrightRed,
            Severity::High => AnsiColor::Red,
            Severity::Medium => AnsiColor::Yellow,
            Severity::Low => AnsiColor::Cyan,
            Severity::Info => AnsiColor::BrightBlack,
        };
        self.style(Style::new().bold().fg_color(Some(color.into())), text)
    }
    fn dim(&self, text: &str) -> String {
        self.style(Style::new().dimmed(), text)
    }
    fn bold(&self, text: &str) -> String {
        self.style(Style::new().bold(), text)
    }
}

fn summary_line(rep: &Report<'_>) -> String {
    let s = rep.summary();
    let sev: Vec<String> = Severity::ALL
        .iter()
        .filter(|v| s.by_severity.get(v).copied().unwrap_or(0) > 0)
        .map(|v| format!("{} {}", s.by_severity.get(v).copied().unwrap_or(0), v))
        .collect();
    let mut line = format!(
        "{} compared · {} drift{}",
        rep.result.compared,
        s.drifts,
        if s.drifts == 1 { "" } else { "s" }
    );
    if !sev.is_empty() {
        line.push_str(&format!(" ({})", sev.join(", ")));
    }
    let t = |d: &str| s.by_type.get(d).copied().unwrap_or(0);
    let name = |d| rep.mode.type_name(d);
    line.push_str(&format!(
        " · {} modified, {} {}, {} {}",
        t("modified"),
        t(name(DriftType::Missing)),
        name(DriftType::Missing),
        t(name(DriftType::Unmanaged)),
        name(DriftType::Unmanaged)
    ));
    line
}

fn suppressed_line(rep: &Report<'_>) -> Option<String> {
    let s = &rep.result.suppressed;
    let mut parts = Vec::new();
    for (n, what) in [
        (s.defaults, "server defaults"),
        (s.server_set, "server-set fields"),
        (s.controller, "controller-owned"),
        (s.ignored, "ignored by rules"),
        (s.expected, "expected divergences (--show-expected)"),
        (s.annotated, "objects Argo CD/Flux annotations exclude"),
    ] {
        if n > 0 {
            parts.push(format!("{n} {what}"));
        }
    }
    (!parts.is_empty()).then(|| format!("not drift: {}", parts.join(", ")))
}

fn who(d: &Drift) -> String {
    let att = envdrift_top(d).and_then(|c| c.attribution.as_ref());
    match att {
        Some(a) => match &a.time {
            Some(t) => format!("{} by {} at {t}", d.cause, a.manager),
            None => format!("{} by {}", d.cause, a.manager),
        },
        None => d.cause.to_string(),
    }
}

fn envdrift_top(d: &Drift) -> Option<&crate::model::FieldChange> {
    crate::diff::top_change(&d.changes)
}

/// Renders the report as text.
pub fn render(rep: &Report<'_>, opts: TableOptions) -> String {
    let p = Paint { on: opts.color };
    let width = if opts.value_width == 0 {
        48
    } else {
        opts.value_width
    };
    let (l, r) = rep.mode.side_names();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} {} ({}) vs {} ({})",
        p.bold("envdrift:"),
        l,
        rep.left.source,
        r,
        rep.right.source
    );
    let _ = writeln!(out, "  {}", summary_line(rep));
    for side in [&rep.left, &rep.right] {
        if let Some(reason) = &side.stale {
            let _ = writeln!(
                out,
                "  {} {} side is stale: {reason}",
                p.sev(Severity::High, "STALE"),
                side.name
            );
        }
    }
    if let Some(s) = suppressed_line(rep) {
        let _ = writeln!(out, "  {}", p.dim(&s));
    }
    // A combined adopt diff (one per file with several drifted objects) is printed once.
    let mut printed_diffs: std::collections::HashSet<&str> = std::collections::HashSet::new();
    for sev in Severity::ALL {
        let group: Vec<&Drift> = rep
            .result
            .drifts
            .iter()
            .filter(|d| d.severity == sev)
            .collect();
        if group.is_empty() {
            continue;
        }
        let _ = writeln!(out);
        let _ = writeln!(out, "{}", p.sev(sev, &sev.as_str().to_ascii_uppercase()));
        for d in group {
            let _ = writeln!(
                out,
                "  {}  {} · {}{}",
                p.bold(&d.resource.to_string()),
                rep.mode.type_name(d.drift_type),
                who(d),
                if d.expected { " · expected" } else { "" }
            );
            if let Some(o) = &d.desired_origin {
                let _ = writeln!(out, "    {}", p.dim(&format!("{l}: {o}")));
            }
            for c in &d.changes {
                let mark = match c.op {
                    ChangeOp::Changed => "~",
                    ChangeOp::Added => "+",
                    ChangeOp::Removed => "-",
                };
                let (only_r, only_l) = match rep.mode {
                    Mode::DesiredVsLive => ("live only".to_string(), "missing live".to_string()),
                    Mode::EnvVsEnv => (
                        format!("only in {}", rep.right.name),
                        format!("only in {}", rep.left.name),
                    ),
                };
                let values = match c.op {
                    ChangeOp::Changed => format!(
                        "{} → {}",
                        inline_value(&c.desired, width),
                        inline_value(&c.live, width)
                    ),
                    ChangeOp::Added => format!("{only_r}: {}", inline_value(&c.live, width)),
                    ChangeOp::Removed => format!("{only_l}: {}", inline_value(&c.desired, width)),
                };
                let by = c
                    .attribution
                    .as_ref()
                    .map(|a| format!(" · {}", a.manager))
                    .unwrap_or_default();
                let at = c.line.map(|n| format!(" (line {n})")).unwrap_or_default();
                let _ = writeln!(
                    out,
                    "    {mark} {}{}  {}  {}",
                    c.field,
                    p.dim(&at),
                    values,
                    p.dim(&format!(
                        "[{} {} · {}{}]",
                        c.category, c.severity, c.cause, by
                    ))
                );
                if c.expected {
                    let _ = writeln!(out, "      {}", p.dim("expected divergence"));
                }
                if let Some(n) = &c.note {
                    let _ = writeln!(out, "      {}", p.dim(n));
                }
            }
            if let Some(n) = &d.remedy.note {
                let _ = writeln!(out, "    {}", p.dim(n));
            }
            let (l_name, r_name) = (&rep.left.name, &rep.right.name);
            let label = match (rep.mode, d.drift_type) {
                (Mode::EnvVsEnv, DriftType::Modified) => format!("make {r_name} match {l_name}:"),
                (_, DriftType::Modified) if d.remedy.verified => "fix (verified):".to_string(),
                (_, DriftType::Modified | DriftType::Missing) if d.remedy.redacted => {
                    "fix (needs the value):".to_string()
                }
                (_, DriftType::Modified) | (_, DriftType::Missing) => "fix:".to_string(),
                (Mode::EnvVsEnv, DriftType::Unmanaged) => format!("or delete from {r_name}:"),
                (_, DriftType::Unmanaged) => "or delete:".to_string(),
            };
            let _ = writeln!(
                out,
                "    {} {}",
                p.dim(&label),
                truncate(&d.remedy.kubectl, 4000)
            );
            if let Some(rev) = &d.remedy.reverse {
                let label = format!("make {l_name} match {r_name}:");
                let _ = writeln!(
                    out,
                    "    {} {}",
                    p.dim(&label),
                    truncate(&rev.kubectl, 4000)
                );
            }
            if let Some(a) = &d.remedy.adopt {
                let label = match &a.file {
                    Some(f) => format!("adopt into Git ({f}):"),
                    None => "adopt into Git:".to_string(),
                };
                let _ = writeln!(out, "    {}", p.dim(&label));
                for n in &a.notes {
                    let _ = writeln!(out, "      {n}");
                }
                if let Some(diff) = &a.diff {
                    if printed_diffs.insert(diff.as_str()) {
                        for l in diff.lines() {
                            let _ = writeln!(out, "      {l}");
                        }
                    } else {
                        let _ = writeln!(out, "      (the diff for this file is shown above)");
                    }
                }
            }
            if d.remedy.redacted {
                let _ = writeln!(
                    out,
                    "    {}",
                    p.dim("(Secret values replaced by placeholders: take them from the desired source)")
                );
            }
        }
    }
    if !rep.errors.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(out, "{}", p.sev(Severity::High, "INPUT ERRORS"));
        for e in &rep.errors {
            let _ = writeln!(out, "  {e}");
        }
    }
    let notes = rep.all_notes();
    if !notes.is_empty() {
        let _ = writeln!(out);
        for n in notes {
            let _ = writeln!(out, "{} {n}", p.bold("NOTE"));
        }
    }
    if !rep.result.unknown.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "{} {} desired object(s) not checked: the live side could not read their kind",
            p.bold("UNKNOWN"),
            rep.result.unknown.len()
        );
    }
    if !rep.skipped.is_empty() {
        let _ = writeln!(out);
        for s in &rep.skipped {
            let _ = writeln!(
                out,
                "{}",
                p.dim(&format!("skipped {}: {}", s.source, s.reason))
            );
        }
    }
    if rep.result.drifts.is_empty() && rep.errors.is_empty() {
        let _ = writeln!(out);
        if rep.result.compared == 0 && rep.left.objects == 0 {
            let _ = writeln!(
                out,
                "No drift, but nothing was compared: the {l} side holds no objects (check the paths)."
            );
        } else {
            let _ = writeln!(out, "No drift.");
        }
    }
    out
}
