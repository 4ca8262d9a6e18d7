//! Rendering outcomes on stdout, exit codes, progress bars on stderr.

use std::io::{IsTerminal, Write};

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};

use envdrift::report::{self, Report};
use envdrift::source::{SourceSpec, dump::collect_files};

use super::args::{ColorChoice, FailOn, Format, OutputArgs};

/// A progress bar over the files of `specs`, when stderr is a terminal and the work is long.
pub(crate) fn progress(specs: &[&SourceSpec], message: &str) -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let mut scratch = Vec::new();
    let files: usize = specs
        .iter()
        .map(|s| match s {
            SourceSpec::Files { paths, .. } => collect_files(paths, "", &mut scratch).len(),
            _ => 0,
        })
        .sum();
    if files < 20 {
        return None;
    }
    let pb = ProgressBar::new(u64::try_from(files).unwrap_or(u64::MAX));
    if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} [{bar:30}] {pos}/{len} files")
    {
        pb.set_style(style.progress_chars("=> "));
    }
    pb.set_message(message.to_string());
    Some(pb)
}

/// Whether tables get colours: `--color`, else when stdout is a terminal and `NO_COLOR` is
/// unset.
pub(crate) fn use_color(color: ColorChoice) -> bool {
    match color {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
        }
    }
}

/// The format asked for, else table on a terminal and JSON otherwise.
pub(crate) fn format_of(out: &OutputArgs) -> Format {
    let tty = std::io::stdout().is_terminal();
    out.format
        .unwrap_or(if tty { Format::Table } else { Format::Json })
}

/// Whether the run must keep the keys of every compared object (JUnit: a test case each).
pub(crate) fn needs_compared_keys(out: &OutputArgs) -> bool {
    out.format == Some(Format::Junit)
}

/// The path SARIF results point at for objects without a manifest on the desired side (an
/// unmanaged object): the desired side's file or directory, or its Git path.
pub(crate) fn desired_path(spec: &SourceSpec) -> Option<String> {
    match spec {
        SourceSpec::Files { paths, .. } => paths.first().map(|p| p.display().to_string()),
        SourceSpec::Git(g) => Some(if g.spec.path.is_empty() {
            ".".to_string()
        } else {
            g.spec.path.clone()
        }),
        SourceSpec::Rendered(r) => Some(r.dir.display().to_string()),
        SourceSpec::Cluster(_) | SourceSpec::GitOps(_) => None,
    }
}

/// Writes a report on stdout in the chosen format. `desired` is the desired side's path
/// ([`desired_path`]), for SARIF.
pub(crate) fn emit(rep: &Report<'_>, out: &OutputArgs, desired: Option<String>) -> Result<()> {
    let text = match format_of(out) {
        Format::Json => report::json::render(rep),
        Format::Markdown => report::markdown::render(rep),
        Format::Sarif => {
            let cwd = std::env::current_dir().ok();
            report::sarif::render(
                rep,
                &report::sarif::SarifOptions {
                    root: cwd.as_deref(),
                    fallback: desired,
                },
            )
        }
        Format::Junit => report::junit::render(
            rep,
            report::junit::JunitOptions {
                fail_at: out.fail_on.threshold(),
            },
        ),
        Format::Table => report::table::render(
            rep,
            report::table::TableOptions {
                color: use_color(out.color),
                value_width: 0,
            },
        ),
    };
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .context("writing the report")?;
    stdout.flush().context("writing the report")?;
    Ok(())
}

/// 2 with input errors; 1 with a drift at or above `--fail-on`; else 0.
pub(crate) fn exit_code(rep: &Report<'_>, fail_on: FailOn) -> u8 {
    if !rep.errors.is_empty() {
        return 2;
    }
    match fail_on.threshold() {
        Some(t)
            if rep
                .result
                .drifts
                .iter()
                .any(|d| !d.expected && d.severity >= t) =>
        {
            1
        }
        _ => 0,
    }
}
