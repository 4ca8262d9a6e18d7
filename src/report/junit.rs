//! JUnit XML output (`--format junit`), what GitLab (`artifacts:reports:junit`), Jenkins
//! and GitHub test-report actions read: `<testsuites>` with one `<testsuite>` for the
//! environment checked, a `<testcase>` per compared object (and per missing or unmanaged
//! one), a `<failure>` per drifted object with its changes and fix as text, and an
//! `<error>` test case per input error.
//!
//! The keys of the objects that matched are only known when the run kept them
//! ([`crate::run::Job::keep_compared`], set by the CLI for this format); without them only
//! drifted objects and input errors become test cases.
//!
//! Written by hand with escaping that always yields well-formed XML 1.0: `&<>"'` are
//! escaped, characters XML 1.0 cannot carry at all (most C0 controls) become U+FFFD.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::{Mode, Report, inline_value, truncate};
use crate::model::{ChangeOp, Drift, DriftType, ResourceKey, Severity};

/// Widest value shown in a failure's text.
const VALUE_WIDTH: usize = 200;

/// How drifts become test results.
#[derive(Debug, Clone, Copy, Default)]
pub struct JunitOptions {
    /// Drifts at or above this severity fail their test case (the CLI's `--fail-on`); drifts
    /// below it, and all drifts when `None` (`--fail-on never`), pass with the drift as
    /// `<system-out>`, so that the report agrees with the exit code.
    pub fail_at: Option<Severity>,
}

/// Text escaped for XML content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Kept in attribute values too (a raw newline there would be normalized away).
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' => out.push_str("&#9;"),
            c if allowed(c) => out.push(c),
            _ => out.push('\u{FFFD}'),
        }
    }
    out
}

/// Text escaped for element content: only `&`, `<` and `>` need it there, so that
/// bodies stay readable (commands keep their quotes, lines their breaks).
fn escape_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#13;"),
            '\n' | '\t' => out.push(c),
            c if allowed(c) => out.push(c),
            _ => out.push('\u{FFFD}'),
        }
    }
    out
}

/// XML 1.0 `Char` (without the three whitespace controls handled above).
fn allowed(c: char) -> bool {
    matches!(c, '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

fn drift_key(d: &Drift) -> ResourceKey {
    ResourceKey {
        group: ResourceKey::group_of(&d.resource.api_version).to_string(),
        kind: d.resource.kind.clone(),
        namespace: d.resource.namespace.clone(),
        name: d.resource.name.clone(),
    }
}

/// The suite's name: the environment checked (desired vs live), or `FROM vs TO`.
fn suite_name(rep: &Report<'_>) -> String {
    match rep.mode {
        Mode::DesiredVsLive => rep.right.name.clone(),
        Mode::EnvVsEnv => format!("{} vs {}", rep.left.name, rep.right.name),
    }
}

fn summary(rep: &Report<'_>, d: &Drift) -> String {
    let n = d.changes.len();
    let mut s = format!(
        "{} · {} · {}",
        rep.mode.type_name(d.drift_type),
        d.severity,
        d.cause
    );
    if d.drift_type == DriftType::Modified {
        let _ = write!(s, " · {n} change{}", if n == 1 { "" } else { "s" });
    }
    s
}

/// The failure's body: where, each change, the fix.
fn body(rep: &Report<'_>, d: &Drift) -> String {
    let (l, r) = (&rep.left.name, &rep.right.name);
    let mut out = String::new();
    let _ = writeln!(out, "{}: {}", d.resource, summary(rep, d));
    if let Some(o) = &d.desired_origin {
        let _ = writeln!(out, "{}: {o}", rep.mode.side_names().0);
    }
    for c in &d.changes {
        let (mark, values) = match c.op {
            ChangeOp::Changed => (
                "~",
                format!(
                    "{} → {}",
                    inline_value(&c.desired, VALUE_WIDTH),
                    inline_value(&c.live, VALUE_WIDTH)
                ),
            ),
            ChangeOp::Added => (
                "+",
                format!("only in {r}: {}", inline_value(&c.live, VALUE_WIDTH)),
            ),
            ChangeOp::Removed => (
                "-",
                format!("only in {l}: {}", inline_value(&c.desired, VALUE_WIDTH)),
            ),
        };
        let by = c
            .attribution
            .as_ref()
            .map(|a| format!(" · {}", a.manager))
            .unwrap_or_default();
        let at = c.line.map(|n| format!(" (line {n})")).unwrap_or_default();
        let _ = writeln!(
            out,
            "  {mark} {}{at}  {values}  [{} {} · {}{by}]",
            c.field, c.category, c.severity, c.cause
        );
        if let Some(n) = &c.note {
            let _ = writeln!(out, "    {n}");
        }
    }
    if let Some(n) = &d.remedy.note {
        let _ = writeln!(out, "{n}");
    }
    let label = match (rep.mode, d.drift_type) {
        (Mode::EnvVsEnv, DriftType::Modified) => format!("make {r} match {l}:"),
        (_, DriftType::Unmanaged) => "or delete:".to_string(),
        _ if d.remedy.verified => "fix (verified):".to_string(),
        _ => "fix:".to_string(),
    };
    let _ = writeln!(out, "{label} {}", truncate(&d.remedy.kubectl, 4000));
    out
}

enum Case<'r> {
    Pass,
    Drift(&'r Drift),
}

/// The report as a JUnit XML document.
pub fn render(rep: &Report<'_>, opts: JunitOptions) -> String {
    let suite = suite_name(rep);
    // Every compared object passes unless it drifted; drifted objects are cases even when
    // the compared keys were not kept.
    let mut cases: BTreeMap<ResourceKey, Case<'_>> = rep
        .result
        .compared_keys
        .iter()
        .map(|k| (k.clone(), Case::Pass))
        .collect();
    for d in &rep.result.drifts {
        cases.insert(drift_key(d), Case::Drift(d));
    }
    let fails = |d: &Drift| !d.expected && opts.fail_at.is_some_and(|t| d.severity >= t);
    let failures = cases
        .values()
        .filter(|c| matches!(c, Case::Drift(d) if fails(d)))
        .count();
    let errors = rep.errors.len();
    let skipped = rep.result.unknown.len();
    let tests = cases.len() + errors + skipped;

    let mut x = String::new();
    x.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        x,
        "<testsuites name=\"envdrift\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"{skipped}\">"
    );
    let _ = writeln!(
        x,
        "  <testsuite name=\"{}\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"{skipped}\">",
        escape(&suite)
    );
    x.push_str("    <properties>\n");
    let (l, r) = rep.mode.side_names();
    for (role, side) in [(l, &rep.left), (r, &rep.right)] {
        let _ = writeln!(
            x,
            "      <property name=\"{role}\" value=\"{}\"/>",
            escape(&side.source)
        );
        if side.name != role {
            let _ = writeln!(
                x,
                "      <property name=\"{role}.name\" value=\"{}\"/>",
                escape(&side.name)
            );
        }
        if let Some(c) = &side.commit {
            let _ = writeln!(
                x,
                "      <property name=\"{}\" value=\"{}\"/>",
                escape(&format!("{role}.commit")),
                escape(c)
            );
        }
    }
    let _ = writeln!(
        x,
        "      <property name=\"compared\" value=\"{}\"/>",
        rep.result.compared
    );
    x.push_str("    </properties>\n");
    let class = escape(&suite);
    for (key, case) in &cases {
        let name = escape(&key.to_string());
        match case {
            Case::Pass => {
                let _ = writeln!(x, "    <testcase classname=\"{class}\" name=\"{name}\"/>");
            }
            Case::Drift(d) if fails(d) => {
                let _ = writeln!(x, "    <testcase classname=\"{class}\" name=\"{name}\">");
                let _ = writeln!(
                    x,
                    "      <failure message=\"{}\" type=\"{}\">{}</failure>",
                    escape(&summary(rep, d)),
                    rep.mode.type_name(d.drift_type),
                    escape_text(&body(rep, d))
                );
                x.push_str("    </testcase>\n");
            }
            Case::Drift(d) => {
                let _ = writeln!(x, "    <testcase classname=\"{class}\" name=\"{name}\">");
                let why = if d.expected {
                    "expected divergence"
                } else {
                    "below --fail-on"
                };
                let _ = writeln!(
                    x,
                    "      <system-out>{}</system-out>",
                    escape_text(&format!("{why}: {}", body(rep, d)))
                );
                x.push_str("    </testcase>\n");
            }
        }
    }
    for key in &rep.result.unknown {
        let _ = writeln!(
            x,
            "    <testcase classname=\"{class}\" name=\"{}\">",
            escape(&key.to_string())
        );
        let _ = writeln!(
            x,
            "      <skipped message=\"{}\"/>",
            escape(&format!(
                "not checked: the {r} side could not read objects of this kind"
            ))
        );
        x.push_str("    </testcase>\n");
    }
    for e in &rep.errors {
        let mut at = e.source.clone();
        if let Some(line) = e.line {
            let _ = write!(at, ":{line}");
        }
        let _ = writeln!(
            x,
            "    <testcase classname=\"{class}\" name=\"{}\">",
            escape(&format!("input {}: {at}", e.side))
        );
        let _ = writeln!(
            x,
            "      <error message=\"{}\" type=\"input-error\">{}</error>",
            escape(&truncate(&e.message, 300)),
            escape_text(&e.to_string())
        );
        x.push_str("    </testcase>\n");
    }
    x.push_str("  </testsuite>\n</testsuites>\n");
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_quotes_and_controls() {
        assert_eq!(
            escape("a<b>&\"c\"'d'"),
            "a&lt;b&gt;&amp;&quot;c&quot;&apos;d&apos;"
        );
        assert_eq!(escape("x\ny\tz"), "x&#10;y&#9;z");
        assert_eq!(escape("bell\u{7}nul\u{0}"), "bell\u{FFFD}nul\u{FFFD}");
        assert_eq!(escape("ünï 😀"), "ünï 😀");
        assert_eq!(
            escape_text("a\n<b> 'c' \"d\" &"),
            "a\n&lt;b&gt; 'c' \"d\" &amp;"
        );
        assert_eq!(escape_text("\u{1b}[0m"), "\u{FFFD}[0m");
    }
}
