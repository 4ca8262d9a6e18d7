//! CI output formats end to end: SARIF 2.1.0 (validated against the official OASIS schema in
//! tests/fixtures/sarif with Python's `jsonschema` from `.tools/venv`, installed by
//! `.ci/run`), field lines (plain files and Git sources), JUnit XML parsed back, and the
//! exit codes, which these formats do not change.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn envdrift(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_envdrift"))
        .args(args)
        .current_dir(root())
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1")
        .output()
        .expect("run envdrift")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The problems the official SARIF 2.1.0 schema finds in `doc` (empty: valid).
fn schema_problems(doc: &Value) -> Vec<String> {
    let python = root().join(".tools/venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run .ci/run (it installs Python jsonschema into .tools/venv)",
        python.display()
    );
    let script = r#"
import json, sys
import jsonschema
schema = json.load(open(sys.argv[1]))
doc = json.load(sys.stdin)
cls = jsonschema.validators.validator_for(schema)
cls.check_schema(schema)
for e in cls(schema).iter_errors(doc):
    print("/".join(str(p) for p in e.absolute_path) + ": " + e.message)
"#;
    let schema = root().join("tests/fixtures/sarif/sarif-schema-2.1.0.json");
    let mut child = Command::new(python)
        .args(["-c", script])
        .arg(&schema)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(doc.to_string().as_bytes())
            .expect("write the document");
    }
    let out = child.wait_with_output().expect("python ran");
    assert!(
        out.status.success(),
        "the validator failed (is jsonschema installed in .tools/venv? run .ci/run): {}",
        text(&out.stderr)
    );
    text(&out.stdout).lines().map(str::to_string).collect()
}

fn assert_valid_sarif(doc: &Value) {
    let problems = schema_problems(doc);
    assert!(
        problems.is_empty(),
        "not valid SARIF 2.1.0:\n{}",
        problems.join("\n")
    );
    // What GitHub code scanning needs on top of the schema: one run, a tool name, and a
    // location with a file URI on every result.
    assert_eq!(doc["runs"].as_array().map(Vec::len), Some(1));
    let run = &doc["runs"][0];
    assert_eq!(run["tool"]["driver"]["name"], "envdrift");
    assert_eq!(
        run["tool"]["driver"]["version"],
        env!("CARGO_PKG_VERSION"),
        "tool version = crate version"
    );
    let rules: Vec<&str> = run["tool"]["driver"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    for r in run["results"].as_array().unwrap() {
        let uri = r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
            .as_str()
            .unwrap_or_default();
        assert!(!uri.is_empty(), "a result without a file: {r}");
        let id = r["ruleId"].as_str().unwrap();
        let idx = r["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(rules[idx], id, "ruleIndex points at its rule");
        assert!(
            r["partialFingerprints"]["envdrift/v1"].is_string(),
            "fingerprinted: {r}"
        );
    }
}

fn sarif(args: &[&str]) -> (Output, Value) {
    let out = envdrift(args);
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "SARIF is JSON ({e}): {}{}",
            text(&out.stdout),
            text(&out.stderr)
        )
    });
    (out, doc)
}

fn results(doc: &Value) -> &Vec<Value> {
    doc["runs"][0]["results"].as_array().expect("results")
}

/// The validator is real: an invalid log is rejected.
#[test]
fn the_schema_check_rejects_invalid_sarif() {
    let bad = serde_json::json!({
        "version": "2.1.0",
        "runs": [{"tool": {"driver": {"name": "x"}},
                  "results": [{"ruleId": "r", "level": "fatal"}]}]
    });
    let problems = schema_problems(&bad);
    assert!(
        problems.iter().any(|p| p.contains("fatal"))
            && problems.iter().any(|p| p.contains("message")),
        "{problems:?}"
    );
    let wrong_version = serde_json::json!({"version": "2.0.0", "runs": []});
    assert!(!schema_problems(&wrong_version).is_empty());
}

#[test]
fn sarif_for_diff_on_the_demo() {
    let (out, doc) = sarif(&[
        "diff",
        "--desired",
        "config/demo/git/production",
        "--live",
        "config/demo/live/production",
        "--format",
        "sarif",
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "exit codes unchanged: {}",
        text(&out.stderr)
    );
    assert_valid_sarif(&doc);
    let rs = results(&doc);
    // 6 drifts: the API Deployment has two drifted fields, the other four objects one
    // result each (one field, or the object itself).
    assert_eq!(rs.len(), 7, "{rs:#?}");
    let image = rs
        .iter()
        .find(|r| r["ruleId"] == "image")
        .expect("an image result");
    assert_eq!(image["level"], "error", "high → error");
    let loc = &image["locations"][0];
    assert_eq!(
        loc["physicalLocation"]["artifactLocation"],
        serde_json::json!({"uri": "config/demo/git/production/api-deployment.yaml", "uriBaseId": "%SRCROOT%"})
    );
    let manifest =
        std::fs::read_to_string(root().join("config/demo/git/production/api-deployment.yaml"))
            .unwrap();
    let image_line = manifest
        .lines()
        .position(|l| l.trim() == "image: registry.example.com/shop/api:1.4.2")
        .unwrap()
        + 1;
    assert_eq!(loc["physicalLocation"]["region"]["startLine"], image_line);
    assert_eq!(
        loc["logicalLocations"][0]["fullyQualifiedName"],
        "Deployment shop-prod/api"
    );
    let msg = image["message"]["text"].as_str().unwrap();
    assert!(
        msg.contains("api:1.4.2") && msg.contains("api:1.4.3-hotfix"),
        "both values: {msg}"
    );
    let config = rs.iter().find(|r| r["ruleId"] == "config-data").unwrap();
    assert_eq!(config["level"], "warning", "medium → warning");
    let unmanaged = rs
        .iter()
        .find(|r| r["properties"]["type"] == "unmanaged")
        .unwrap();
    assert_eq!(unmanaged["ruleId"], "presence");
    assert_eq!(unmanaged["level"], "note", "low → note");
    // An unmanaged object has no manifest: it points at the desired directory.
    assert_eq!(
        unmanaged["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
        "config/demo/git/production"
    );
    // One alert per field: fingerprints differ between results.
    let mut fps: Vec<&str> = rs
        .iter()
        .map(|r| r["partialFingerprints"]["envdrift/v1"].as_str().unwrap())
        .collect();
    fps.sort_unstable();
    fps.dedup();
    assert_eq!(fps.len(), rs.len());
    // The Secret's values are hashes; the clear value of neither side is in the log.
    let secret = rs.iter().find(|r| r["ruleId"] == "secret-data").unwrap();
    assert!(
        secret["message"]["text"]
            .as_str()
            .unwrap()
            .contains("sha256:")
    );
    let all = text(&out.stdout);
    for clear in [
        "cHJvZC1kZW1vLXBhc3N3b3Jk",
        "prod-demo-password",
        "cm90YXRlZC1kZW1vLXBhc3N3b3Jk",
        "rotated-demo-password",
    ] {
        assert!(!all.contains(clear), "a Secret value leaked: {clear}");
    }
    insta::assert_json_snapshot!("sarif_demo_production", doc, {
        ".runs[0].tool.driver.version" => "[version]",
        ".runs[0].tool.driver.semanticVersion" => "[version]",
    });
}

#[test]
fn sarif_for_compare_and_scan() {
    let (out, doc) = sarif(&[
        "compare",
        "--from",
        "config/demo/live/staging",
        "--to",
        "dump:config/demo/live/production",
        "-c",
        "config/demo/compare.yaml",
        "-f",
        "sarif",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert_valid_sarif(&doc);
    assert!(!results(&doc).is_empty());
    assert_eq!(
        doc["runs"][0]["automationDetails"]["id"],
        "envdrift/staging-vs-production/"
    );
    // Environment comparisons name both environments in messages.
    let changed = results(&doc)
        .iter()
        .find(|r| r["properties"]["op"] == "changed")
        .expect("a changed field");
    let msg = changed["message"]["text"].as_str().unwrap();
    assert!(
        msg.contains("staging") && msg.contains("production"),
        "{msg}"
    );

    let (out, doc) = sarif(&[
        "scan",
        "-c",
        "config/demo.yaml",
        "--env",
        "production",
        "-f",
        "sarif",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert_valid_sarif(&doc);
    assert_eq!(results(&doc).len(), 7);
    assert_eq!(
        doc["runs"][0]["automationDetails"]["id"],
        "envdrift/production/"
    );
}

#[test]
fn junit_for_compare_and_scan() {
    let (out, xml) = junit(&[
        "scan",
        "-c",
        "config/demo.yaml",
        "--env",
        "production",
        "-f",
        "junit",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let suite = doc
        .descendants()
        .find(|n| n.has_tag_name("testsuite"))
        .unwrap();
    assert_eq!(attr(suite, "name"), "production", "a suite per environment");
    assert_eq!(attr(suite, "tests"), "16");
    assert_eq!(attr(suite, "failures"), "6");
    assert!(
        doc.descendants()
            .filter(|n| n.has_tag_name("testcase"))
            .all(|c| attr(c, "classname") == "production")
    );

    let compare = |format: &str| {
        envdrift(&[
            "compare",
            "--from",
            "config/demo/live/staging",
            "--to",
            "dump:config/demo/live/production",
            "-c",
            "config/demo/compare.yaml",
            "-f",
            format,
        ])
    };
    let out = compare("junit");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let xml = text(&out.stdout);
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let suite = doc
        .descendants()
        .find(|n| n.has_tag_name("testsuite"))
        .unwrap();
    assert_eq!(attr(suite, "name"), "staging vs production");
    let cases = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .count();
    let failures: usize = attr(suite, "failures").parse().unwrap();
    assert_eq!(attr(suite, "tests"), cases.to_string());
    // A failure per drift; the objects compared without drift pass.
    let v: Value = serde_json::from_slice(&compare("json").stdout).unwrap();
    assert_eq!(v["summary"]["drifts"].as_u64().unwrap() as usize, failures);
    let compared = v["summary"]["compared"].as_u64().unwrap() as usize;
    assert!(
        cases >= compared && failures < cases,
        "{failures} of {cases}"
    );
}

/// Runs `diff` on tests/fixtures/sarif/lines with `desired` and the given format.
fn lines_diff(desired: &str, format: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "diff",
        "--desired",
        desired,
        "--live",
        "tests/fixtures/sarif/lines/live.yaml",
        "-f",
        format,
    ];
    args.extend(extra);
    envdrift(&args)
}

fn line_of(file: &Path, wanted: &str) -> usize {
    let t = std::fs::read_to_string(file).unwrap();
    t.lines().position(|l| l.trim() == wanted).unwrap() + 1
}

/// The change of `field` in the drift of `name`, from JSON output.
fn change<'a>(doc: &'a Value, name: &str, field: &str) -> &'a Value {
    doc["drifts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["resource"]["name"] == name)
        .flat_map(|d| d["changes"].as_array().unwrap())
        .find(|c| c["field"] == field)
        .unwrap_or_else(|| panic!("no change of {field} in {name}: {doc:#}"))
}

#[test]
fn field_lines_in_a_multi_document_file() {
    let app = root().join("tests/fixtures/sarif/lines/desired/app.yaml");
    let image_line = line_of(&app, "image: web:1.4.2");
    let web_item = line_of(&app, "- name: web");
    let out = lines_diff("tests/fixtures/sarif/lines/desired", "json", &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let image = change(&doc, "web", "spec.template.spec.containers[name=web].image");
    assert_eq!(image["line"], image_line, "the exact line of `image:`");
    // Not in desired: the line of its parent, the container's list item.
    let args = change(&doc, "web", "spec.template.spec.containers[name=web].args");
    assert_eq!(args["op"], "added");
    assert_eq!(args["line"], web_item);
    let greeting = change(&doc, "greeting", "data.GREETING");
    assert_eq!(
        greeting["line"],
        line_of(&app, "GREETING: \"a <b> & \\\"c\\\" 'd'\"")
    );
    // JSON manifests keep the object's line only.
    let json = change(&doc, "from-json", "data.K");
    assert!(json.get("line").is_none(), "{json}");

    let out = lines_diff("tests/fixtures/sarif/lines/desired", "sarif", &[]);
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_valid_sarif(&doc);
    let region = |field: &str| -> (String, Value) {
        let r = results(&doc)
            .iter()
            .find(|r| r["properties"]["field"] == field)
            .unwrap();
        let p = &r["locations"][0]["physicalLocation"];
        (
            p["artifactLocation"]["uri"].as_str().unwrap().to_string(),
            p["region"]["startLine"].clone(),
        )
    };
    assert_eq!(
        region("spec.template.spec.containers[name=web].image"),
        (
            "tests/fixtures/sarif/lines/desired/app.yaml".to_string(),
            image_line.into()
        )
    );
    assert_eq!(
        region("data.K"),
        (
            "tests/fixtures/sarif/lines/desired/extra.json".to_string(),
            1.into()
        )
    );
}

#[path = "common/git.rs"]
mod git_cmd;
use git_cmd::git;

#[test]
fn field_lines_from_a_git_source() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    std::fs::create_dir_all(repo.join("deploy")).unwrap();
    let app = std::fs::read_to_string(root().join("tests/fixtures/sarif/lines/desired/app.yaml"))
        .unwrap();
    // Shifted by a few lines, so that the line cannot come from the fixture on disk.
    let text_in_git = format!("# in git\n# two more lines\n{app}");
    std::fs::write(repo.join("deploy/app.yaml"), &text_in_git).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "app"]);
    let image_line = text_in_git
        .lines()
        .position(|l| l.trim() == "image: web:1.4.2")
        .unwrap()
        + 1;
    let web_item = text_in_git
        .lines()
        .position(|l| l.trim() == "- name: web")
        .unwrap()
        + 1;
    let spec = format!("git:{}@main:deploy", repo.display());
    let cache = tmp.path().join("cache").display().to_string();
    let out = lines_diff(&spec, "json", &["--git-cache", &cache]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let image = change(&doc, "web", "spec.template.spec.containers[name=web].image");
    assert_eq!(image["line"], image_line);
    let args = change(&doc, "web", "spec.template.spec.containers[name=web].args");
    assert_eq!(args["line"], web_item);

    let out = lines_diff(&spec, "sarif", &["--git-cache", &cache]);
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_valid_sarif(&doc);
    let r = results(&doc)
        .iter()
        .find(|r| r["ruleId"] == "image")
        .unwrap();
    let p = &r["locations"][0]["physicalLocation"];
    // Repository-relative, as GitHub maps it onto the repository.
    assert_eq!(p["artifactLocation"]["uri"], "deploy/app.yaml");
    assert_eq!(p["region"]["startLine"], image_line);
}

fn junit(args: &[&str]) -> (Output, String) {
    let out = envdrift(args);
    let xml = text(&out.stdout);
    (out, xml)
}

fn attr<'a>(n: roxmltree::Node<'a, '_>, name: &str) -> &'a str {
    n.attribute(name)
        .unwrap_or_else(|| panic!("<{}> without {name}", n.tag_name().name()))
}

#[test]
fn junit_on_the_demo() {
    let (out, xml) = junit(&[
        "diff",
        "--desired",
        "config/demo/git/production",
        "--live",
        "config/demo/live/production",
        "-f",
        "junit",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let doc = roxmltree::Document::parse(&xml).expect("well-formed XML");
    let suites = doc.root_element();
    assert_eq!(suites.tag_name().name(), "testsuites");
    let suite: Vec<_> = suites
        .children()
        .filter(|n| n.has_tag_name("testsuite"))
        .collect();
    assert_eq!(suite.len(), 1);
    let suite = suite[0];
    let cases: Vec<_> = suite
        .children()
        .filter(|n| n.has_tag_name("testcase"))
        .collect();
    // Every compared object (14) is a test case, plus the missing and the unmanaged one.
    assert_eq!(cases.len(), 16);
    assert_eq!(attr(suite, "tests"), "16");
    assert_eq!(attr(suite, "failures"), "6");
    assert_eq!(attr(suite, "errors"), "0");
    assert_eq!(attr(suite, "name"), "live");
    let failing: Vec<&str> = cases
        .iter()
        .filter(|c| c.children().any(|n| n.has_tag_name("failure")))
        .map(|c| attr(*c, "name"))
        .collect();
    assert_eq!(failing.len(), 6);
    assert!(
        failing.contains(&"Deployment.apps shop-prod/api"),
        "{failing:?}"
    );
    assert!(failing.contains(&"Service shop-prod/web"), "{failing:?}");
    let passing = cases
        .iter()
        .find(|c| attr(**c, "name") == "Deployment.apps shop-prod/web")
        .expect("a compared object without drift is a test case");
    assert!(!passing.has_children());
    let api = cases
        .iter()
        .find(|c| attr(**c, "name") == "Deployment.apps shop-prod/api")
        .unwrap();
    let failure = api.children().find(|n| n.has_tag_name("failure")).unwrap();
    assert_eq!(
        attr(failure, "message"),
        "modified · critical · manual · 2 changes"
    );
    let body = failure.text().unwrap();
    assert!(
        body.contains(
            "registry.example.com/shop/api:1.4.2 → registry.example.com/shop/api:1.4.3-hotfix"
        ),
        "{body}"
    );
    assert!(
        body.contains("fix (verified): kubectl patch deployment.apps api -n shop-prod"),
        "{body}"
    );
    insta::assert_snapshot!("junit_demo_production", xml);

    // Below --fail-on: no failure, and the exit code agrees.
    let (out, xml) = junit(&[
        "diff",
        "--desired",
        "config/demo/git/production",
        "--live",
        "config/demo/live/production",
        "-f",
        "junit",
        "--fail-on",
        "critical",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let suite = doc
        .descendants()
        .find(|n| n.has_tag_name("testsuite"))
        .unwrap();
    assert_eq!(attr(suite, "failures"), "2", "the two critical drifts");
    let (out, xml) = junit(&[
        "diff",
        "--desired",
        "config/demo/git/production",
        "--live",
        "config/demo/live/production",
        "-f",
        "junit",
        "--fail-on",
        "never",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let suite = doc
        .descendants()
        .find(|n| n.has_tag_name("testsuite"))
        .unwrap();
    assert_eq!(attr(suite, "failures"), "0");
    assert_eq!(
        doc.descendants()
            .filter(|n| n.has_tag_name("system-out"))
            .count(),
        6,
        "drifts below the threshold are still shown"
    );
}

#[test]
fn junit_escapes_values_and_reports_input_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let desired = tmp.path().join("desired");
    std::fs::create_dir_all(&desired).unwrap();
    std::fs::copy(
        root().join("tests/fixtures/sarif/lines/desired/app.yaml"),
        desired.join("app.yaml"),
    )
    .unwrap();
    std::fs::write(
        desired.join("broken.yaml"),
        "kind: [unclosed\n  name: <x>\n",
    )
    .unwrap();
    let d = desired.display().to_string();
    let (out, xml) = junit(&[
        "diff",
        "--desired",
        &d,
        "--live",
        "tests/fixtures/sarif/lines/live.yaml",
        "-f",
        "junit",
    ]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "input errors → 2: {}",
        text(&out.stderr)
    );
    let doc = roxmltree::Document::parse(&xml).expect("well-formed XML despite <&\"' in values");
    let suite = doc
        .descendants()
        .find(|n| n.has_tag_name("testsuite"))
        .unwrap();
    assert_eq!(attr(suite, "errors"), "1");
    let error = doc
        .descendants()
        .find(|n| n.has_tag_name("error"))
        .expect("an <error> test case");
    let case = error.parent().unwrap();
    assert!(
        attr(case, "name").contains("broken.yaml"),
        "{}",
        attr(case, "name")
    );
    assert!(error.text().unwrap().contains("broken.yaml"));
    let greeting = doc
        .descendants()
        .find(|n| {
            n.has_tag_name("testcase") && n.attribute("name") == Some("ConfigMap app/greeting")
        })
        .expect("the greeting ConfigMap");
    let body = greeting
        .children()
        .find(|n| n.has_tag_name("failure"))
        .unwrap()
        .text()
        .unwrap();
    assert!(
        body.contains(r#"a <b> & "c" 'd' → x <y> & "z" 'w'"#),
        "values read back exactly: {body}"
    );
    // The raw document escapes markup in text and quotes in attributes.
    assert!(xml.contains("a &lt;b&gt; &amp; \"c\" 'd'"), "{xml}");

    // SARIF with input errors: still valid, the run says it did not succeed, the error is a
    // notification at its file and line.
    let (out, doc) = sarif(&[
        "diff",
        "--desired",
        &d,
        "--live",
        "tests/fixtures/sarif/lines/live.yaml",
        "-f",
        "sarif",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert_valid_sarif(&doc);
    let inv = &doc["runs"][0]["invocations"][0];
    assert_eq!(inv["executionSuccessful"], false);
    let n = &inv["toolExecutionNotifications"][0];
    assert_eq!(n["level"], "error");
    assert!(
        n["message"]["text"]
            .as_str()
            .unwrap()
            .contains("broken.yaml"),
        "{n}"
    );
    assert!(
        n["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
            .as_str()
            .unwrap()
            .ends_with("broken.yaml"),
        "{n}"
    );
}
