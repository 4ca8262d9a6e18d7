//! Mutation fuzzing of the input readers, as a bounded property test that runs in CI:
//! the manifest/dump reader (YAML and JSON), the engine on whatever objects come out, and
//! the config loader (parse, validate, compile), seeded with the bundled demo (config and
//! manifests) and a real CRD. No input may panic; errors are values.
//!
//! cargo-fuzz (libFuzzer) needs a nightly toolchain, which the CI machine does not have
//! and cannot fetch, so coverage-guided fuzzing is not part of CI; these mutations (byte
//! flips, YAML/JSON tokens spliced in, truncation, repetition) are the nearest thing that
//! runs everywhere, with a fixed case count.

use std::path::{Path, PathBuf};

use envdrift::config::Config;
use envdrift::diff::{Options, compare};
use envdrift::source::dump::{LoadOptions, load_text};
use envdrift::source::manifest::parse_manifest_text;
use proptest::prelude::*;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn files_under(dir: &Path, out: &mut Vec<String>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = rd.filter_map(Result::ok).map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            files_under(&p, out);
        } else if p
            .extension()
            .is_some_and(|e| e == "yaml" || e == "yml" || e == "json")
            && let Ok(t) = std::fs::read_to_string(&p)
        {
            out.push(t);
        }
    }
}

fn manifest_corpus() -> Vec<String> {
    let mut out = Vec::new();
    files_under(&root().join("config/demo"), &mut out);
    if let Ok(t) =
        std::fs::read_to_string(root().join("tests/fixtures/crds/gateway-api-httproute.live.yaml"))
    {
        out.push(t);
    }
    assert!(out.len() >= 4, "corpus: {} files", out.len());
    out
}

fn config_corpus() -> Vec<String> {
    ["config/demo.yaml", "config/envdrift.example.yaml"]
        .iter()
        .map(|p| std::fs::read_to_string(root().join(p)).expect("bundled config"))
        .collect()
}

const TOKENS: &[&str] = &[
    ":",
    ": ",
    "- ",
    "-",
    "{",
    "}",
    "[",
    "]",
    ",",
    "\"",
    "'",
    "&a ",
    "*a",
    "<<: *a\n",
    "!!binary ",
    "!!str ",
    "\t",
    "\0",
    "\n",
    "\n---\n",
    "...\n",
    "#",
    "|\n",
    ">-\n",
    "? ",
    "%YAML 1.2\n",
    "1e999999",
    "-0",
    "0x1F",
    "99999999999999999999999999",
    "null",
    "~",
    "true",
    "\u{feff}",
    "\u{10ffff}",
    "kind: List\nitems:\n",
    "apiVersion: v1\n",
    "metadata: {name: ''}\n",
    "\\u0000",
    "{\"a\":",
    "[[[[[[[[[[",
    "]]]]]]]]]]",
];

/// One mutation of `text`, chosen by `ops` (pairs of choice and position).
fn mutate(text: &str, ops: &[(u8, u32, u8)]) -> String {
    let mut b = text.as_bytes().to_vec();
    for &(op, pos, val) in ops {
        let at = if b.is_empty() {
            0
        } else {
            usize::try_from(pos).unwrap_or(0) % b.len()
        };
        match op % 6 {
            0 if !b.is_empty() => b[at] ^= val | 1,
            1 => {
                let t = TOKENS[usize::from(val) % TOKENS.len()];
                b.splice(at..at, t.bytes());
            }
            2 => b.truncate(at),
            3 if !b.is_empty() => {
                let end = (at + usize::from(val) + 1).min(b.len());
                let chunk = b[at..end].to_vec();
                for _ in 0..(val % 4) + 1 {
                    b.splice(end..end, chunk.iter().copied());
                }
            }
            4 if !b.is_empty() => {
                let end = (at + usize::from(val) + 1).min(b.len());
                b.drain(at..end);
            }
            _ => b.insert(at, val),
        }
    }
    String::from_utf8_lossy(&b).into_owned()
}

fn ops() -> impl Strategy<Value = Vec<(u8, u32, u8)>> {
    prop::collection::vec((any::<u8>(), any::<u32>(), any::<u8>()), 1..8)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn manifest_reader_and_engine_never_panic(seed in 0usize..64, ops in ops()) {
        let corpus = manifest_corpus();
        let original = &corpus[seed % corpus.len()];
        let text = mutate(original, &ops);
        let _ = parse_manifest_text(&text, false);
        let _ = parse_manifest_text(&text, true);
        let mutated = load_text(&text, "fuzz", &LoadOptions::default());
        let live = load_text(
            original,
            "fuzz-live",
            &LoadOptions { side: "live".into(), default_namespace: None, ..LoadOptions::default() },
        );
        // Whatever objects came out are compared, both ways.
        let _ = compare(&mutated, &live, &Options::default());
        let _ = compare(&live, &mutated, &Options::default());
    }

    #[test]
    fn config_loader_never_panics(seed in 0usize..2, ops in ops()) {
        let corpus = config_corpus();
        let text = mutate(&corpus[seed % corpus.len()], &ops);
        let path = root().join("config/fuzz.yaml");
        if let Ok(cfg) = Config::parse(&text, &path) {
            let problems = cfg.validate(&path);
            if problems.is_empty() {
                let _ = cfg.compile();
            }
        }
    }
}
