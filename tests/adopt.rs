//! Adopt-into-Git edits on manifest text: each case compares a desired manifest with a live
//! object, makes the edit, and checks that (1) the edited manifest compares clean against
//! live, (2) only the lines of the affected values changed, comments and formatting kept.

use envdrift::diff::{Options, compare};
use envdrift::model::DriftType;
use envdrift::source::adopt::{adopt_plain, adopt_text};
use envdrift::source::dump::{LoadOptions, load_text};

fn live_opts() -> LoadOptions {
    LoadOptions {
        side: "live".into(),
        default_namespace: None,
        ..LoadOptions::default()
    }
}

/// Returns the edited text and how many lines changed (removed + added).
fn adopt(desired: &str, live: &str) -> (String, usize, Vec<String>) {
    let d = load_text(desired, "m.yaml", &LoadOptions::default());
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    let l = load_text(live, "live", &live_opts());
    let result = compare(&d, &l, &Options::default());
    let drift = result
        .drifts
        .iter()
        .find(|x| x.drift_type == DriftType::Modified)
        .expect("a modified drift");
    let line = match &drift.desired_origin {
        Some(envdrift::model::Origin::File { line, .. }) => *line,
        _ => 1,
    };
    let (new, notes) = adopt_text(desired, line, drift).expect("edit");
    let changed = similar::TextDiff::from_lines(desired, &new)
        .iter_all_changes()
        .filter(|c| c.tag() != similar::ChangeTag::Equal)
        .count();
    // The edited manifest must compare clean.
    if notes.is_empty() {
        let d2 = load_text(&new, "m.yaml", &LoadOptions::default());
        assert!(d2.errors.is_empty(), "{:?}\n{new}", d2.errors);
        let again = compare(&d2, &l, &Options::default());
        let left: Vec<_> = again
            .drifts
            .iter()
            .filter(|x| x.drift_type == DriftType::Modified)
            .collect();
        assert!(left.is_empty(), "still drifting: {left:#?}\n{new}");
    }
    (new, changed, notes)
}

const DEPLOY: &str = "# web deployment
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
  labels:
    app: web # keep me
    example.com/owner: 'team-a'
spec:
  replicas: 2 # scaled by hand
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: \"registry.example.com/web:1.0\"
        env:
        - name: A
          value: \"1\"
        - name: B
          value: two
      # trailing comment inside the pod spec
      terminationGracePeriodSeconds: 30
";

fn live_deploy(edit: impl Fn(&mut serde_json::Value)) -> String {
    let d = load_text(DEPLOY, "m.yaml", &LoadOptions::default());
    let mut v = d.objects.values().next().unwrap().value.clone();
    edit(&mut v);
    serde_json::to_string(&v).unwrap()
}

#[test]
fn scalars_keep_quotes_and_comments() {
    let live = live_deploy(|v| {
        v["spec"]["replicas"] = 5.into();
        v["spec"]["template"]["spec"]["containers"][0]["image"] =
            "registry.example.com/web:1.1".into();
        v["metadata"]["labels"]["example.com/owner"] = "team-b".into();
    });
    let (new, changed, notes) = adopt(DEPLOY, &live);
    assert!(notes.is_empty(), "{notes:?}");
    assert_eq!(changed, 6, "{new}");
    assert!(new.contains("  replicas: 5 # scaled by hand\n"), "{new}");
    assert!(
        new.contains("image: \"registry.example.com/web:1.1\"\n"),
        "{new}"
    );
    assert!(new.contains("example.com/owner: 'team-b'\n"), "{new}");
    assert!(new.starts_with("# web deployment\n"));
}

#[test]
fn list_items_added_and_removed() {
    let live = live_deploy(|v| {
        let env = v["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_array_mut()
            .unwrap();
        env.remove(0);
        env.push(serde_json::json!({"name": "C", "value": "yes"}));
    });
    let (new, changed, notes) = adopt(DEPLOY, &live);
    assert!(notes.is_empty(), "{notes:?}");
    assert_eq!(changed, 4, "{new}");
    assert!(
        new.contains("        env:\n        - name: B\n          value: two\n        - name: C\n          value: \"yes\"\n      # trailing comment"),
        "{new}"
    );
}

#[test]
fn keys_added_and_removed() {
    let live = live_deploy(|v| {
        v["metadata"]["labels"]
            .as_object_mut()
            .unwrap()
            .remove("app");
        v["metadata"]["labels"]["tier"] = "frontend".into();
        v["spec"]["template"]["spec"]["containers"][0]["securityContext"] =
            serde_json::json!({"privileged": true, "capabilities": {"add": ["NET_ADMIN"]}});
    });
    let (new, _, notes) = adopt(DEPLOY, &live);
    assert!(notes.is_empty(), "{notes:?}");
    assert!(!new.contains("app: web # keep me"), "{new}");
    assert!(
        new.contains("    example.com/owner: 'team-a'\n    tier: frontend\nspec:"),
        "{new}"
    );
    assert!(
        new.contains("          value: two\n        securityContext:\n          capabilities:\n            add:\n              - NET_ADMIN\n          privileged: true\n"),
        "{new}"
    );
    assert!(new.contains("      # trailing comment inside the pod spec\n"));
}

#[test]
fn second_document_of_a_file() {
    let text = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  K: v1\n---\n# b\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\ndata:\n  K: v1\n  PORT: \"80\"\n";
    let live = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n  namespace: default\ndata:\n  K: v2\n  PORT: \"8080\"\n";
    let (new, changed, _) = adopt(text, live);
    assert_eq!(changed, 4);
    assert!(
        new.starts_with(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  K: v1\n---\n"
        ),
        "{new}"
    );
    assert!(new.ends_with("  K: v2\n  PORT: \"8080\"\n"), "{new}");
}

#[test]
fn block_scalars_are_not_edited_but_named() {
    let text = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  conf: |\n    a=1\n";
    let live = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  namespace: default\ndata:\n  conf: |\n    a=2\n";
    let (new, changed, notes) = adopt(text, live);
    assert_eq!(changed, 0);
    assert_eq!(new, text);
    assert_eq!(notes.len(), 1);
    assert!(
        notes[0].contains("data.conf") && notes[0].contains("not edited"),
        "{notes:?}"
    );
}

#[test]
fn unified_diff_applies_to_the_file() {
    let live = live_deploy(|v| v["spec"]["replicas"] = 3.into());
    let d = load_text(DEPLOY, "m.yaml", &LoadOptions::default());
    let l = load_text(&live, "live", &live_opts());
    let r = compare(&d, &l, &Options::default());
    let a = adopt_plain("deploy/web.yaml", DEPLOY, 1, &r.drifts[0]);
    insta::assert_snapshot!(a.diff.unwrap(), @r"
    --- a/deploy/web.yaml
    +++ b/deploy/web.yaml
    @@ -8,7 +8,7 @@
         app: web # keep me
         example.com/owner: 'team-a'
     spec:
    -  replicas: 2 # scaled by hand
    +  replicas: 3 # scaled by hand
       selector:
         matchLabels: {app: web}
       template:
    ");
}
