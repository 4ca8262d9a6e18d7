//! Big single-file inputs (issue 14): a `kind: List` live file read item by item, YAML and
//! JSON. A malformed item in the middle is reported with its file and line, and every other
//! item is still compared.

use std::process::Command;

use serde_json::{Value, json};

const ITEMS: usize = 1500;
const BROKEN: usize = 900;
const CHANGED: usize = 123;

fn cm(i: usize, value: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": format!("cm-{i:04}"), "namespace": "default"},
        "data": {"k": value},
    })
}

/// Writes one multi-document desired file; returns its path.
fn desired(dir: &std::path::Path) -> String {
    let mut text = String::new();
    for i in 0..ITEMS {
        text.push_str("---\n");
        text.push_str(&serde_saphyr::to_string(&cm(i, "v")).unwrap());
    }
    let p = dir.join("desired.yaml");
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

fn diff(desired: &str, live: &str) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_envdrift"))
        .args([
            "diff",
            "--desired",
            desired,
            "--live",
            live,
            "--format",
            "json",
        ])
        .args(["--fail-on", "never"])
        .env_remove("RUST_LOG")
        .output()
        .expect("run envdrift");
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stderr)))
}

fn check(v: &Value, live: &str, line: u64) {
    let errors = v["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0]["source"], live);
    assert_eq!(errors[0]["line"], line, "{:?}", errors[0]);
    // Every other item was compared: the one changed item is found.
    assert_eq!(v["summary"]["compared"], (ITEMS - 1) as u64);
    assert_eq!(v["live"]["objects"], (ITEMS - 1) as u64);
    let drifts = v["drifts"].as_array().unwrap();
    assert_eq!(drifts.len(), 1, "{drifts:?}");
    assert_eq!(drifts[0]["resource"]["name"], format!("cm-{CHANGED:04}"));
    assert_eq!(drifts[0]["changes"][0]["path"], "/data/k");
}

#[test]
fn a_malformed_yaml_item_in_a_big_list_is_reported_and_the_rest_compared() {
    let dir = tempfile::tempdir().unwrap();
    let d = desired(dir.path());
    let mut text = String::from("apiVersion: v1\nitems:\n");
    let mut broken_line = 0;
    for i in 0..ITEMS {
        if i == BROKEN {
            broken_line = text.lines().count() + 2;
            text.push_str("- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: [oops\n");
            continue;
        }
        let v = cm(i, if i == CHANGED { "changed" } else { "v" });
        let yaml = serde_saphyr::to_string(&v).unwrap();
        for (n, l) in yaml.lines().enumerate() {
            text.push_str(if n == 0 { "- " } else { "  " });
            text.push_str(l);
            text.push('\n');
        }
    }
    text.push_str("kind: List\nmetadata:\n  resourceVersion: \"\"\n");
    let live = dir.path().join("live.yaml");
    std::fs::write(&live, text).unwrap();
    let live = live.display().to_string();
    let v = diff(&d, &live);
    let errors = v["errors"].as_array().unwrap();
    assert!(
        errors[0]["message"]
            .as_str()
            .unwrap()
            .starts_with("invalid YAML"),
        "{errors:?}"
    );
    // The error is on the broken item's lines (its metadata line or the line after).
    let line = errors[0]["line"].as_u64().unwrap();
    assert!(
        (broken_line as u64..=broken_line as u64 + 1).contains(&line),
        "{line} vs {broken_line}"
    );
    check(&v, &live, line);
}

#[test]
fn a_malformed_json_item_in_a_big_list_is_reported_and_the_rest_compared() {
    let dir = tempfile::tempdir().unwrap();
    let d = desired(dir.path());
    let items: Vec<String> = (0..ITEMS)
        .map(|i| {
            if i == BROKEN {
                // Line 3 of the item: `"kind": oops`.
                "{\n    \"apiVersion\": \"v1\",\n    \"kind\": oops\n}".to_string()
            } else {
                let v = cm(i, if i == CHANGED { "changed" } else { "v" });
                serde_json::to_string_pretty(&v).unwrap()
            }
        })
        .collect();
    let before: usize = items[..BROKEN].iter().map(|t| t.lines().count()).sum();
    let text = format!(
        "{{\n\"apiVersion\": \"v1\",\n\"items\": [\n{}\n],\n\"kind\": \"List\"\n}}\n",
        items.join(",\n")
    );
    let live = dir.path().join("live.json");
    std::fs::write(&live, text).unwrap();
    let live = live.display().to_string();
    let v = diff(&d, &live);
    // Three header lines, the items before, then the item's third line.
    check(&v, &live, (3 + before + 3) as u64);
    assert_eq!(v["errors"][0]["column"], 13);
}
