//! Argo CD's `ignoreDifferences` examples, pasted from Argo CD's documentation
//! (docs/user-guide/diffing.md), behave in envdrift as Argo CD documents them; jq
//! expressions that loop are stopped with a note naming the rule and the object.

use std::path::Path;

use envdrift::config::Config;
use envdrift::diff::{DiffResult, compare};
use envdrift::model::Snapshot;
use envdrift::report::Mode;
use envdrift::source::dump::{LoadOptions, load_text};

fn desired(text: &str) -> Snapshot {
    let s = load_text(text, "git", &LoadOptions::default());
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    s
}

fn live(text: &str) -> Snapshot {
    let s = load_text(
        text,
        "live",
        &LoadOptions {
            side: "live".into(),
            default_namespace: None,
            ..LoadOptions::default()
        },
    );
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    s
}

fn run(config: &str, git: &str, cluster: &str) -> DiffResult {
    let cfg = Config::parse(config, Path::new("envdrift.yaml")).unwrap();
    let problems = cfg.validate(Path::new("envdrift.yaml"));
    assert!(problems.is_empty(), "{problems:?}");
    let opts = cfg
        .compile()
        .unwrap()
        .options(Mode::DesiredVsLive, ("desired", "live"));
    compare(&desired(git), &live(cluster), &opts)
}

fn drifted(r: &DiffResult) -> Vec<String> {
    let mut v: Vec<String> = r
        .drifts
        .iter()
        .map(|d| format!("{}/{}", d.resource.kind, d.resource.name))
        .collect();
    v.sort();
    v
}

fn deployment(name: &str, ns: &str, replicas: u32, init: &[&str]) -> String {
    let init: Vec<String> = init
        .iter()
        .map(|n| format!("{{name: {n}, image: 'r/{n}:1'}}"))
        .collect();
    let init = if init.is_empty() {
        String::new()
    } else {
        format!("initContainers: [{}], ", init.join(", "))
    };
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  replicas: {replicas}\n  selector: {{matchLabels: {{app: {name}}}}}\n  template:\n    metadata: {{labels: {{app: {name}}}}}\n    spec: {{{init}containers: [{{name: web, image: 'r/web:1'}}]}}\n---\n"
    )
}

/// "The following sample application is configured to ignore differences in
/// `spec.replicas` for all deployments".
const REPLICAS_ALL: &str = "\
ignoreDifferences:
  - group: apps
    kind: Deployment
    jsonPointers:
      - /spec/replicas
";

/// "The above customization could be narrowed to a resource with the specified name and
/// optional namespace".
const REPLICAS_NAMED: &str = "\
ignoreDifferences:
  - group: apps
    kind: Deployment
    name: guestbook
    namespace: default
    jsonPointers:
      - /spec/replicas
";

/// "To ignore elements of a list, you can use JQ path expressions to identify list items
/// based on item content".
const INIT_CONTAINERS: &str = r#"
ignoreDifferences:
  - group: apps
    kind: Deployment
    jqPathExpressions:
      - .spec.template.spec.initContainers[] | select(.name == "injected-init-container")
"#;

/// "To ignore fields owned by specific managers defined in your live resources".
const MANAGERS: &str = "\
ignoreDifferences:
  - group: '*'
    kind: '*'
    managedFieldsManagers:
      - kube-controller-manager
";

/// "If you have a slash `/` in your pointer path, you need to replace it with the `~1`
/// character".
const NODE_LABEL: &str = "\
ignoreDifferences:
  - kind: Node
    jsonPointers:
      - /metadata/labels/node-role.kubernetes.io~1worker
";

/// The system-level example (argocd-cm
/// `resource.customizations.ignoreDifferences.admissionregistration.k8s.io_MutatingWebhookConfiguration`),
/// its value under the group and kind it is keyed by.
const CA_BUNDLE: &str = "\
ignoreDifferences:
  - group: admissionregistration.k8s.io
    kind: MutatingWebhookConfiguration
    jqPathExpressions:
    - '.webhooks[]?.clientConfig.caBundle'
";

#[test]
fn json_pointers_ignore_replicas_of_every_deployment() {
    let git = deployment("guestbook", "default", 2, &[]) + &deployment("web", "shop", 2, &[]);
    let cluster = deployment("guestbook", "default", 5, &[]) + &deployment("web", "shop", 7, &[]);
    assert_eq!(
        drifted(&run("{}", &git, &cluster)),
        ["Deployment/guestbook", "Deployment/web"]
    );
    let r = run(REPLICAS_ALL, &git, &cluster);
    assert!(r.drifts.is_empty(), "{:#?}", r.drifts);
    assert_eq!(r.suppressed.ignored, 2);
    // Another field still counts.
    let changed = cluster.replace("r/web:1", "r/web:2");
    assert_eq!(
        drifted(&run(REPLICAS_ALL, &git, &changed)),
        ["Deployment/guestbook", "Deployment/web"]
    );
}

#[test]
fn json_pointers_narrowed_to_a_name_and_namespace() {
    let git = deployment("guestbook", "default", 2, &[])
        + &deployment("guestbook", "shop", 2, &[])
        + &deployment("web", "default", 2, &[]);
    let cluster = git.replace("replicas: 2", "replicas: 4");
    let r = run(REPLICAS_NAMED, &git, &cluster);
    let mut names: Vec<String> = r
        .drifts
        .iter()
        .map(|d| {
            format!(
                "{}/{}",
                d.resource.namespace.as_deref().unwrap_or(""),
                d.resource.name
            )
        })
        .collect();
    names.sort();
    assert_eq!(names, ["default/web", "shop/guestbook"]);
}

#[test]
fn jq_path_expressions_ignore_list_items_by_content() {
    let git = deployment("web", "shop", 2, &["migrate"]);
    let injected = deployment("web", "shop", 2, &["migrate", "injected-init-container"]);
    let other = deployment("web", "shop", 2, &["migrate", "something-else"]);
    // Without the rule the injected item is drift.
    assert_eq!(drifted(&run("{}", &git, &injected)), ["Deployment/web"]);
    let r = run(INIT_CONTAINERS, &git, &injected);
    assert!(r.drifts.is_empty(), "{:#?}", r.drifts);
    assert_eq!(r.suppressed.ignored, 1);
    // Only the item the expression selects.
    let r = run(INIT_CONTAINERS, &git, &other);
    assert_eq!(drifted(&r), ["Deployment/web"]);
    let paths: Vec<&str> = r.drifts[0]
        .changes
        .iter()
        .map(|c| c.path.as_str())
        .collect();
    assert!(
        paths.iter().any(|p| p.contains("initContainers")),
        "{paths:?}"
    );
    // A Deployment without init containers: the expression fails there (null | .[]) and,
    // as in Argo CD, is skipped; nothing else changes.
    let plain = deployment("web", "shop", 2, &[]);
    let r = run(
        INIT_CONTAINERS,
        &plain,
        &plain.replace("r/web:1", "r/web:2"),
    );
    assert_eq!(drifted(&r), ["Deployment/web"]);
    assert!(r.notes.iter().all(|n| !n.contains("jqPathExpressions")));
}

#[test]
fn managed_fields_managers_ignore_what_that_manager_wrote() {
    let git = deployment("web", "shop", 2, &[]);
    let by = |manager: &str| {
        let mut s = deployment("web", "shop", 3, &[]);
        s = s.replace(
            "metadata: {name: web, namespace: shop}",
            &format!(
                "metadata:\n  name: web\n  namespace: shop\n  managedFields:\n  - {{manager: argocd-controller, operation: Apply, apiVersion: apps/v1, fieldsType: FieldsV1, fieldsV1: {{'f:spec': {{'f:selector': {{}}, 'f:template': {{}}}}}}}}\n  - {{manager: {manager}, operation: Update, apiVersion: apps/v1, fieldsType: FieldsV1, fieldsV1: {{'f:spec': {{'f:replicas': {{}}}}}}}}"
            ),
        );
        s
    };
    let r = run(MANAGERS, &git, &by("kube-controller-manager"));
    assert!(r.drifts.is_empty(), "{:#?}", r.drifts);
    assert_eq!(
        drifted(&run(MANAGERS, &git, &by("kubectl-edit"))),
        ["Deployment/web"]
    );
}

#[test]
fn escaped_slash_in_a_pointer_names_a_node_label() {
    let node = |labels: &str| {
        format!("apiVersion: v1\nkind: Node\nmetadata:\n  name: n1\n  labels: {{{labels}}}\n---\n")
    };
    let git = node("node-role.kubernetes.io/worker: a, zone: x");
    let cluster = node("node-role.kubernetes.io/worker: b, zone: x");
    assert_eq!(drifted(&run("{}", &git, &cluster)), ["Node/n1"]);
    let r = run(NODE_LABEL, &git, &cluster);
    assert!(r.drifts.is_empty(), "{:#?}", r.drifts);
    let zone = node("node-role.kubernetes.io/worker: b, zone: y");
    assert_eq!(drifted(&run(NODE_LABEL, &git, &zone)), ["Node/n1"]);
}

#[test]
fn jq_system_level_example_ignores_webhook_ca_bundles() {
    let hook = |ca: &str, url: &str| {
        format!(
            "apiVersion: admissionregistration.k8s.io/v1\nkind: MutatingWebhookConfiguration\nmetadata: {{name: inject}}\nwebhooks:\n- name: a.example.com\n  clientConfig: {{url: '{url}'{ca}}}\n  admissionReviewVersions: [v1]\n  sideEffects: None\n- name: b.example.com\n  clientConfig: {{url: 'https://b'{ca}}}\n  admissionReviewVersions: [v1]\n  sideEffects: None\n---\n"
        )
    };
    let git = hook("", "https://a");
    let cluster = hook(", caBundle: Q0EK", "https://a");
    let r = run(CA_BUNDLE, &git, &cluster);
    assert!(r.drifts.is_empty(), "{:#?}", r.drifts);
    let moved = hook(", caBundle: Q0EK", "https://elsewhere");
    let r = run(CA_BUNDLE, &git, &moved);
    assert_eq!(drifted(&r), ["MutatingWebhookConfiguration/inject"]);
    assert!(
        r.drifts[0]
            .changes
            .iter()
            .all(|c| !c.path.contains("caBundle")),
        "{:#?}",
        r.drifts[0].changes
    );
}

/// A looping or huge expression is stopped: the comparison finishes, a note names the rule
/// (`ignore[1].jqPathExpressions[0]`) and the object, and the object is compared without
/// that expression.
#[test]
fn looping_jq_expressions_are_stopped_with_a_note() {
    let git = deployment("web", "shop", 2, &[]);
    let cluster = deployment("web", "shop", 5, &[]);
    for expr in [
        "def f: f; f",
        "repeat(.)",
        "select(([range(1e9)] | length) > 0)",
        ".. ",
    ] {
        let config = format!(
            "ignore:\n  - kind: Service\n    paths: [/spec/clusterIP]\n  - kind: Deployment\n    jqPathExpressions: ['{expr}']\n"
        );
        let started = std::time::Instant::now();
        let r = run(&config, &git, &cluster);
        if expr == ".. " {
            // `..` selects every path in the object, within the bounds: it all goes.
            assert!(r.drifts.is_empty(), "{:#?}", r.drifts);
            continue;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "{expr}"
        );
        assert_eq!(drifted(&r), ["Deployment/web"], "{expr}");
        let note = r
            .notes
            .iter()
            .find(|n| n.contains("ignore[1].jqPathExpressions[0]"))
            .unwrap_or_else(|| panic!("{expr}: {:?}", r.notes));
        assert!(note.contains("Deployment shop/web"), "{note}");
        assert!(
            note.contains("stopped after") || note.contains("more than"),
            "{note}"
        );
    }
    // The timeout is the config's.
    let config =
        "jq_timeout: 5ms\nignore:\n  - kind: Deployment\n    jqPathExpressions: ['def f: f; f']\n";
    let r = run(config, &git, &cluster);
    assert!(
        r.notes
            .iter()
            .any(|n| n.contains("stopped after 5ms (jq_timeout)")),
        "{:?}",
        r.notes
    );
}

fn config_map(name: &str, annotations: &str, data: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: shop\n  annotations: {{{annotations}}}\ndata: {{k: '{data}'}}\n---\n"
    )
}

#[test]
fn argo_ignore_extraneous_hides_a_live_object_not_in_git() {
    let git = deployment("web", "shop", 2, &[]);
    for (annotation, hidden) in [
        ("", false),
        (
            "'argocd.argoproj.io/compare-options': IgnoreExtraneous",
            true,
        ),
        (
            "'argocd.argoproj.io/compare-options': 'ServerSideDiff=true, IgnoreExtraneous'",
            true,
        ),
        (
            "'argocd.argoproj.io/compare-options': ServerSideDiff=true",
            false,
        ),
    ] {
        let cluster = git.clone() + &config_map("generated-abc12", annotation, "v");
        let r = run("{}", &git, &cluster);
        if hidden {
            assert!(r.drifts.is_empty(), "{annotation}: {:#?}", r.drifts);
            assert_eq!(r.suppressed.annotated, 1, "{annotation}");
        } else {
            assert_eq!(drifted(&r), ["ConfigMap/generated-abc12"], "{annotation}");
            assert_eq!(r.suppressed.annotated, 0);
        }
    }
    // It does not hide differences of an object that is in Git.
    let git = git
        + &config_map(
            "settings",
            "'argocd.argoproj.io/compare-options': IgnoreExtraneous",
            "a",
        );
    let cluster = git.replace("k: 'a'", "k: 'b'");
    assert_eq!(drifted(&run("{}", &git, &cluster)), ["ConfigMap/settings"]);
}

#[test]
fn argo_prune_false_keeps_reporting_at_info_with_a_note() {
    use envdrift::model::{DriftType, Severity};
    let git = deployment("web", "shop", 2, &[]);
    let plain = run("{}", &git, &(git.clone() + &config_map("old", "", "v")));
    assert_ne!(plain.drifts[0].severity, Severity::Info);
    let cluster = git.clone()
        + &config_map(
            "old",
            "'argocd.argoproj.io/sync-options': 'ServerSideApply=true,Prune=false'",
            "v",
        );
    let r = run("{}", &git, &cluster);
    assert_eq!(drifted(&r), ["ConfigMap/old"]);
    let d = &r.drifts[0];
    assert_eq!(d.drift_type, DriftType::Unmanaged);
    assert_eq!(d.severity, Severity::Info);
    let note = d.remedy.note.as_deref().unwrap_or("");
    assert!(note.contains("Prune=false"), "{note}");
    assert!(note.contains("will not delete it"), "{note}");
    // Flux's prune: disabled means the same.
    let flux =
        git.clone() + &config_map("old", "'kustomize.toolkit.fluxcd.io/prune': disabled", "v");
    let r = run("{}", &git, &flux);
    assert_eq!(r.drifts[0].severity, Severity::Info);
    assert!(
        r.drifts[0]
            .remedy
            .note
            .as_deref()
            .is_some_and(|n| n.contains("Flux keeps it")),
        "{:?}",
        r.drifts[0].remedy.note
    );
    // `Prune=confirm` is not `Prune=false`.
    let confirm = git.clone()
        + &config_map(
            "old",
            "'argocd.argoproj.io/sync-options': Prune=confirm",
            "v",
        );
    assert_ne!(run("{}", &git, &confirm).drifts[0].severity, Severity::Info);
}

#[test]
fn flux_ssa_ignore_is_never_drift() {
    let ignore = "'kustomize.toolkit.fluxcd.io/ssa': Ignore";
    let base = deployment("web", "shop", 2, &[]);
    // In the manifest: live differences are not reported.
    let git = base.clone() + &config_map("flags", ignore, "a");
    let cluster = base.clone() + &config_map("flags", ignore, "b");
    let r = run("{}", &git, &cluster);
    assert!(r.drifts.is_empty(), "{:#?}", r.drifts);
    assert_eq!(r.suppressed.annotated, 1);
    // Nor its absence: Flux does not create it.
    let r = run("{}", &git, &base);
    assert!(r.drifts.is_empty(), "{:#?}", r.drifts);
    assert_eq!(r.suppressed.annotated, 1);
    // Set on the live object only, it counts too (Flux checks the in-cluster object).
    let git = base.clone() + &config_map("flags", "", "a");
    let r = run("{}", &git, &cluster);
    assert!(r.drifts.is_empty(), "{:#?}", r.drifts);
    // reconcile: disabled, on the live object, means the same.
    let disabled = base.clone()
        + &config_map(
            "flags",
            "'kustomize.toolkit.fluxcd.io/reconcile': disabled",
            "b",
        );
    assert!(run("{}", &git, &disabled).drifts.is_empty());
    // Without it, the change is drift.
    let other = base.clone() + &config_map("flags", "", "b");
    assert_eq!(drifted(&run("{}", &git, &other)), ["ConfigMap/flags"]);
}

#[test]
fn flux_ssa_if_not_present_reports_only_missing() {
    use envdrift::model::DriftType;
    let once = "'kustomize.toolkit.fluxcd.io/ssa': IfNotPresent";
    let base = deployment("web", "shop", 2, &[]);
    let git = base.clone() + &config_map("ca", once, "a");
    // Changed after creation (cert-manager rotated it): not drift.
    let r = run(
        "{}",
        &git,
        &(base.clone() + &config_map("ca", once, "rotated")),
    );
    assert!(r.drifts.is_empty(), "{:#?}", r.drifts);
    assert_eq!(r.suppressed.annotated, 1);
    // Gone: missing, Flux would create it again.
    let r = run("{}", &git, &base);
    assert_eq!(drifted(&r), ["ConfigMap/ca"]);
    assert_eq!(r.drifts[0].drift_type, DriftType::Missing);
}

/// A runaway expression costs its bound on a few objects, not on every object it selects:
/// after `MAX_STOPPED_OBJECTS` stops it is no longer evaluated, and the result says so once.
#[test]
fn a_runaway_expression_is_switched_off_after_a_few_objects() {
    let n = 40;
    let git: String = (0..n)
        .map(|i| deployment(&format!("web{i}"), "shop", 2, &[]))
        .collect();
    let cluster: String = (0..n)
        .map(|i| deployment(&format!("web{i}"), "shop", 3, &[]))
        .collect();
    let config = "jq_timeout: 200ms\nignore:\n  - kind: Deployment\n    jqPathExpressions: ['def f: f; f']\n";
    let r = run(config, &git, &cluster);
    let stopped = r
        .notes
        .iter()
        .filter(|n| n.contains("not applied to this object"))
        .count();
    let max = envdrift::diff::jq::MAX_STOPPED_OBJECTS;
    // Objects compared in parallel may each be stopped before the count is seen.
    assert!(
        (max..max + 4).contains(&stopped),
        "{stopped} stops: {:?}",
        r.notes
    );
    let off: Vec<&String> = r
        .notes
        .iter()
        .filter(|n| n.contains("is not applied: its bounds stopped it on"))
        .collect();
    assert_eq!(off.len(), 1, "{:?}", r.notes);
    assert_eq!(r.drifts.len(), n, "every object still compared");
}
