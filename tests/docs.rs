//! Documentation that must match the code.

#[test]
fn readme_severity_table_matches_the_built_in_rules() {
    let readme = include_str!("../README.md");
    let start = readme
        .find("<!-- rules-table:start -->\n")
        .expect("start marker")
        + "<!-- rules-table:start -->\n".len();
    let end = readme.find("<!-- rules-table:end -->").expect("end marker");
    assert_eq!(
        &readme[start..end],
        envdrift::classify::rules_markdown(),
        "README table out of date: run `cargo run -- dev rules-table` and paste it between the markers"
    );
}

#[test]
fn json_schema_doc_names_every_top_level_key() {
    let doc = include_str!("../docs/json-schema.md");
    for key in [
        "schema",
        "summary",
        "drifts",
        "errors",
        "skipped",
        "unknown",
        "by_severity",
        "by_type",
        "suppressed",
        "patch_verified",
        "kubectl",
        "fingerprint",
        "manager",
        "cause",
        "category",
        "stale",
        "adopt",
    ] {
        assert!(
            doc.contains(&format!("`{key}`")),
            "docs/json-schema.md does not document `{key}`"
        );
    }
}

fn help(args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_envdrift"))
        .args(args)
        .output()
        .expect("envdrift runs");
    assert_eq!(out.status.code(), Some(0), "{args:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every `--flag` in `text`.
fn long_flags(text: &str) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    let b = text.as_bytes();
    let mut i = 0;
    while let Some(p) = text[i..].find("--") {
        let start = i + p;
        let mut end = start + 2;
        while end < b.len() && (b[end].is_ascii_lowercase() || b[end] == b'-') {
            end += 1;
        }
        let flag = &text[start..end];
        let preceded_ok = start == 0 || !b[start - 1].is_ascii_alphanumeric();
        if flag.len() > 3 && preceded_ok && !flag.ends_with('-') {
            out.insert(flag.to_string());
        }
        i = end.max(start + 2);
    }
    out
}

#[test]
fn readme_cli_section_matches_the_help() {
    let readme = include_str!("../README.md");
    // The command list names every subcommand `envdrift --help` lists, once each.
    let block_start = readme.find("## CLI\n\n```\n").expect("CLI block") + "## CLI\n\n```\n".len();
    let block = &readme[block_start..block_start + readme[block_start..].find("```").expect("end")];
    let top = help(&["--help"]);
    let commands: Vec<&str> = top
        .split("Commands:")
        .nth(1)
        .expect("commands")
        .split("Options:")
        .next()
        .unwrap_or("")
        .lines()
        // `  name  description`; wrapped description lines are indented further.
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .collect();
    assert!(!commands.is_empty());
    for c in &commands {
        let n = block
            .lines()
            .filter(|l| l.starts_with(&format!("envdrift {c} ")) || *l == format!("envdrift {c}"))
            .count();
        assert_eq!(
            n, 1,
            "`envdrift {c}` in the README's CLI block: {n} times\n{block}"
        );
    }
    // The diff option table and `envdrift diff --help` name the same flags.
    let start = readme.find("<!-- diff-options:start -->").expect("marker");
    let end = readme.find("<!-- diff-options:end -->").expect("marker");
    let table = &readme[start..end];
    let rows: Vec<&str> = table.lines().filter(|l| l.starts_with("| `")).collect();
    let mut firsts = std::collections::BTreeSet::new();
    for r in &rows {
        assert!(
            firsts.insert(r.split(" | ").next().unwrap_or("")),
            "duplicate row: {r}"
        );
    }
    let documented: std::collections::BTreeSet<String> = rows
        .iter()
        .flat_map(|r| long_flags(r.split(" | ").next().unwrap_or("")))
        .collect();
    // Option lines only (`  -f, --format <FORMAT>`, `      --live <…>`), not descriptions.
    let diff_help = help(&["diff", "--help"]);
    let option_lines: String = diff_help
        .lines()
        .filter(|l| {
            let t = l.trim_start();
            t.starts_with("--") || (t.starts_with('-') && t.get(2..4) == Some(", "))
        })
        .map(|l| {
            let t = l.trim_start();
            let first = t.split("  ").next().unwrap_or(t);
            format!("{first}\n")
        })
        .collect();
    let mut offered = long_flags(&option_lines);
    offered.remove("--help");
    offered.remove("--version");
    assert_eq!(
        documented, offered,
        "README diff options vs `envdrift diff --help`"
    );
}
