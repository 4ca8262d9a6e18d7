//! `labelSelector:` in the Kubernetes selector string syntax selects objects for ignore,
//! severity and expected-divergence rules, beside the `selector:` map form.

use std::path::Path;

use envdrift::config::Config;
use envdrift::diff::compare;
use envdrift::model::{Severity, Snapshot};
use envdrift::report::Mode;
use envdrift::source::dump::{LoadOptions, load_text};

fn dep(name: &str, labels: &str, replicas: u32) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}, namespace: shop, labels: {{{labels}}}}}\nspec:\n  replicas: {replicas}\n  selector: {{matchLabels: {{app: {name}}}}}\n  template:\n    metadata: {{labels: {{app: {name}}}}}\n    spec: {{containers: [{{name: c, image: 'r/c:1'}}]}}\n---\n"
    )
}

fn side(text: &str, name: &str) -> Snapshot {
    load_text(
        text,
        name,
        &LoadOptions {
            side: name.into(),
            default_namespace: None,
            ..LoadOptions::default()
        },
    )
}

const OBJECTS: &[(&str, &str)] = &[
    ("web", "app: web, tier: a"),
    ("api", "app: api, tier: b"),
    ("old", "app: old, tier: a, legacy: 'true'"),
    ("prod", "app: web, tier: a, env: prod"),
    ("db", "app: db, tier: c"),
];

fn objects(replicas: u32) -> String {
    OBJECTS.iter().map(|(n, l)| dep(n, l, replicas)).collect()
}

fn names(drifts: &[envdrift::model::Drift]) -> Vec<String> {
    let mut v: Vec<String> = drifts.iter().map(|d| d.resource.name.clone()).collect();
    v.sort();
    v
}

fn compiled(config: &str) -> envdrift::config::Compiled {
    let cfg = Config::parse(config, Path::new("c.yaml")).unwrap();
    let problems = cfg.validate(Path::new("c.yaml"));
    assert!(problems.is_empty(), "{problems:?}");
    cfg.compile().unwrap()
}

const SELECTOR: &str = "'app in (web, api),!legacy,env!=prod'";

#[test]
fn ignore_rules_by_label_selector_string() {
    let c = compiled(&format!(
        "ignore:\n  - kind: Deployment\n    labelSelector: {SELECTOR}\n    paths: [/spec/replicas]\n"
    ));
    let opts = c.options(Mode::DesiredVsLive, ("desired", "live"));
    let r = compare(
        &side(&objects(2), "desired"),
        &side(&objects(5), "live"),
        &opts,
    );
    // web and api match; old is legacy, prod is env=prod, db is not in (web, api).
    assert_eq!(names(&r.drifts), ["db", "old", "prod"]);
    // Both forms on one rule: an object must match both.
    let c = compiled(&format!(
        "ignore:\n  - kind: Deployment\n    labelSelector: {SELECTOR}\n    selector: {{matchLabels: {{tier: b}}}}\n    paths: [/spec/replicas]\n"
    ));
    let opts = c.options(Mode::DesiredVsLive, ("desired", "live"));
    let r = compare(
        &side(&objects(2), "desired"),
        &side(&objects(5), "live"),
        &opts,
    );
    assert_eq!(names(&r.drifts), ["db", "old", "prod", "web"]);
}

#[test]
fn severity_rules_by_label_selector_string() {
    let c = compiled(&format!(
        "severity_rules:\n  - kind: Deployment\n    labelSelector: {SELECTOR}\n    path: /spec/replicas\n    severity: info\n"
    ));
    let opts = c.options(Mode::DesiredVsLive, ("desired", "live"));
    let r = compare(
        &side(&objects(2), "desired"),
        &side(&objects(5), "live"),
        &opts,
    );
    let info: Vec<String> = names(
        &r.drifts
            .iter()
            .filter(|d| d.severity == Severity::Info)
            .cloned()
            .collect::<Vec<_>>(),
    );
    assert_eq!(info, ["api", "web"]);
    assert_eq!(r.drifts.len(), 5);
}

#[test]
fn expected_divergence_rules_by_label_selector_string() {
    // Without the built-in rules, replicas differ between environments.
    let base = "compare:\n  expected:\n    defaults: false\n";
    let c = compiled(base);
    let opts = c.options(Mode::EnvVsEnv, ("staging", "production"));
    let r = compare(
        &side(&objects(2), "staging"),
        &side(&objects(5), "production"),
        &opts,
    );
    assert_eq!(r.drifts.len(), 5);
    let c = compiled(&format!(
        "{base}    rules:\n      - kind: Deployment\n        labelSelector: {SELECTOR}\n        paths: [/spec/replicas]\n"
    ));
    let opts = c.options(Mode::EnvVsEnv, ("staging", "production"));
    let r = compare(
        &side(&objects(2), "staging"),
        &side(&objects(5), "production"),
        &opts,
    );
    assert_eq!(names(&r.drifts), ["db", "old", "prod"]);
    assert_eq!(r.suppressed.expected, 2);
}

#[test]
fn invalid_selector_strings_name_the_rule() {
    for (config, key) in [
        (
            "ignore:\n  - labelSelector: 'app in (a'\n",
            "ignore[0].labelSelector",
        ),
        (
            "severity_rules:\n  - labelSelector: 'a=b,'\n    path: /x\n    severity: low\n",
            "severity_rules[0].labelSelector",
        ),
        (
            "compare:\n  expected:\n    rules:\n      - labelSelector: 'x y'\n",
            "compare.expected.rules[0].labelSelector",
        ),
    ] {
        let cfg = Config::parse(config, Path::new("c.yaml")).unwrap();
        let problems: Vec<String> = cfg
            .validate(Path::new("c.yaml"))
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains(key), "{problems:?}");
        assert!(cfg.compile().unwrap_err().to_string().contains(key));
    }
}
