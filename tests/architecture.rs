//! The module layering of docs/architecture.md, checked on the source text: no import cycle
//! between top-level modules of the library, and nothing below `run` imports `daemon`, `api`
//! or `store`. (Test modules and comments are not counted.)

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Top-level module → the top-level modules its non-test code names as `crate::X`.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(&src).unwrap();
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_str()
            .unwrap()
            .trim_end_matches(".rs")
            .to_string();
        if ["main", "lib", "cli"].contains(&top.as_str())
            || rel.to_string_lossy().ends_with("tests.rs")
        {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        let code = text.split("#[cfg(test)]\nmod tests").next().unwrap_or("");
        let deps = graph.entry(top.clone()).or_default();
        for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
            for part in line.split("crate::").skip(1) {
                let name: String = part
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                if !name.is_empty() && name != top {
                    deps.insert(name);
                }
            }
        }
    }
    graph
}

fn reaches(g: &BTreeMap<String, BTreeSet<String>>, from: &str, to: &str) -> bool {
    let mut seen = BTreeSet::new();
    let mut stack = vec![from.to_string()];
    while let Some(m) = stack.pop() {
        if m == to {
            return true;
        }
        if seen.insert(m.clone()) {
            stack.extend(g.get(&m).into_iter().flatten().cloned());
        }
    }
    false
}

#[test]
fn no_import_cycle_between_modules() {
    let g = imports();
    assert!(g.contains_key("diff") && g.contains_key("run"), "{g:?}");
    let mut cycles = Vec::new();
    for (a, deps) in &g {
        for b in deps {
            if reaches(&g, b, a) {
                cycles.push(format!("{a} -> {b}"));
            }
        }
    }
    assert!(cycles.is_empty(), "import cycles: {cycles:?}\n{g:#?}");
}

#[test]
fn nothing_below_run_imports_the_daemon_the_api_or_the_store() {
    let g = imports();
    for m in [
        "model", "pattern", "classify", "diff", "redact", "report", "source", "config", "run",
    ] {
        for upper in ["daemon", "api", "store"] {
            assert!(
                !reaches(&g, m, upper),
                "{m} imports {upper} (directly or through another module): {g:#?}"
            );
        }
    }
}
