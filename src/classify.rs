//! Classification: the category and severity of each change, and the cause behind it.
//!
//! Severity rules are JSON Pointer patterns (see [`crate::pattern::PathPattern`]) per
//! group/kind, first match wins; rules from the config come before the built-in table
//! ([`BUILTIN_RULES`], printed in the README). Whole resources (missing, unmanaged) get a
//! severity by kind.
//!
//! Causes come from the field manager that last wrote a drifted field: the configurable
//! lists of manual, controller and GitOps managers ([`ManagerClasses`]).

use serde::{Deserialize, Serialize};

use crate::model::{Category, Cause, DriftType, ResourceKey, Severity};
use crate::pattern::{ObjectSelector, PathPattern, SegView, wildcard};

/// A severity rule as written in the config file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeverityRule {
    /// API group (`apps`; `""` for core). Default: any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Kind glob. Default: any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Namespace glob. Default: any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Name glob. Default: any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Only objects whose labels match (`matchLabels`, `matchExpressions`): the desired
    /// object's labels, or the live object's when there is no desired one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<crate::pattern::LabelSelector>,
    /// The same in the selector string syntax (`app=web,tier in (a,b),!legacy`); with
    /// `selector` too, an object must match both.
    #[serde(
        default,
        rename = "labelSelector",
        skip_serializing_if = "Option::is_none"
    )]
    pub label_selector: Option<String>,
    /// JSON Pointer pattern of the field (`/spec/replicas`, `**/image`). Either `path` or
    /// `drift` must be set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// `missing` or `unmanaged`: the rule grades whole resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift: Option<DriftType>,
    /// Category to report (default: the built-in category of that path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<Category>,
    pub severity: Severity,
}

/// One built-in rule: (group, kind) globs, path pattern, category, severity.
pub type BuiltinRule = (&'static str, &'static str, &'static str, Category, Severity);

use Category as C;
use Severity as S;

/// The built-in field rules, in order; the first match wins.
pub const BUILTIN_RULES: &[BuiltinRule] = &[
    ("", "Secret", "/data", C::SecretData, S::High),
    ("", "Secret", "/stringData", C::SecretData, S::High),
    ("", "Secret", "/type", C::SecretData, S::High),
    ("", "ConfigMap", "/data", C::ConfigData, S::Medium),
    ("", "ConfigMap", "/binaryData", C::ConfigData, S::Medium),
    (
        "rbac.authorization.k8s.io",
        "*Role",
        "/rules",
        C::Rbac,
        S::Critical,
    ),
    (
        "rbac.authorization.k8s.io",
        "ClusterRole",
        "/aggregationRule",
        C::Rbac,
        S::Critical,
    ),
    (
        "rbac.authorization.k8s.io",
        "*RoleBinding",
        "/subjects",
        C::Rbac,
        S::Critical,
    ),
    (
        "rbac.authorization.k8s.io",
        "*RoleBinding",
        "/roleRef",
        C::Rbac,
        S::Critical,
    ),
    (
        "*",
        "*",
        "**/securityContext/privileged",
        C::SecurityContext,
        S::Critical,
    ),
    (
        "*",
        "*",
        "**/securityContext/allowPrivilegeEscalation",
        C::SecurityContext,
        S::Critical,
    ),
    (
        "*",
        "*",
        "**/securityContext/capabilities",
        C::SecurityContext,
        S::Critical,
    ),
    (
        "*",
        "*",
        "**/securityContext/runAsUser",
        C::SecurityContext,
        S::High,
    ),
    (
        "*",
        "*",
        "**/securityContext/runAsNonRoot",
        C::SecurityContext,
        S::High,
    ),
    ("*", "*", "**/securityContext", C::SecurityContext, S::High),
    (
        "*",
        "*",
        "**/spec/hostNetwork",
        C::SecurityContext,
        S::Critical,
    ),
    ("*", "*", "**/spec/hostPID", C::SecurityContext, S::Critical),
    ("*", "*", "**/spec/hostIPC", C::SecurityContext, S::Critical),
    (
        "*",
        "*",
        "**/volumes/*/hostPath",
        C::SecurityContext,
        S::Critical,
    ),
    (
        "*",
        "*",
        "**/spec/serviceAccountName",
        C::SecurityContext,
        S::High,
    ),
    (
        "*",
        "*",
        "**/spec/serviceAccount",
        C::SecurityContext,
        S::High,
    ),
    (
        "*",
        "*",
        "**/automountServiceAccountToken",
        C::SecurityContext,
        S::Medium,
    ),
    ("*", "*", "**/containers/*/image", C::Image, S::High),
    ("*", "*", "**/initContainers/*/image", C::Image, S::High),
    (
        "*",
        "*",
        "**/ephemeralContainers/*/image",
        C::Image,
        S::High,
    ),
    ("*", "*", "**/containers/*/env", C::ConfigData, S::Medium),
    (
        "*",
        "*",
        "**/containers/*/envFrom",
        C::ConfigData,
        S::Medium,
    ),
    (
        "*",
        "*",
        "**/initContainers/*/env",
        C::ConfigData,
        S::Medium,
    ),
    (
        "*",
        "*",
        "**/containers/*/resources",
        C::Resources,
        S::Medium,
    ),
    (
        "*",
        "*",
        "**/initContainers/*/resources",
        C::Resources,
        S::Medium,
    ),
    ("*", "*", "**/spec/resources", C::Resources, S::Medium),
    ("*", "*", "**/containers/*/ports", C::Networking, S::Medium),
    ("*", "*", "**/*Probe", C::Other, S::Medium),
    ("*", "*", "**/volumeMounts", C::Other, S::Medium),
    ("*", "*", "**/lifecycle", C::Other, S::Medium),
    ("*", "*", "**/command", C::Other, S::Medium),
    ("*", "*", "**/args", C::Other, S::Medium),
    ("*", "*", "**/containers/*", C::Other, S::High),
    ("*", "*", "**/initContainers/*", C::Other, S::High),
    ("apps", "*", "/spec/replicas", C::Scaling, S::Medium),
    (
        "",
        "ReplicationController",
        "/spec/replicas",
        C::Scaling,
        S::Medium,
    ),
    (
        "autoscaling",
        "HorizontalPodAutoscaler",
        "/spec",
        C::Scaling,
        S::Medium,
    ),
    (
        "policy",
        "PodDisruptionBudget",
        "/spec",
        C::Scaling,
        S::Medium,
    ),
    ("", "Service", "/spec", C::Networking, S::High),
    (
        "networking.k8s.io",
        "Ingress",
        "/spec",
        C::Networking,
        S::High,
    ),
    (
        "networking.k8s.io",
        "NetworkPolicy",
        "/spec",
        C::Networking,
        S::High,
    ),
    ("*", "*", "**/spec/hostAliases", C::Networking, S::Medium),
    ("*", "*", "**/spec/dnsPolicy", C::Networking, S::Medium),
    ("*", "*", "**/spec/dnsConfig", C::Networking, S::Medium),
    ("*", "*", "**/spec/nodeSelector", C::Scheduling, S::Medium),
    ("*", "*", "**/spec/affinity", C::Scheduling, S::Medium),
    ("*", "*", "**/spec/tolerations", C::Scheduling, S::Medium),
    (
        "*",
        "*",
        "**/spec/topologySpreadConstraints",
        C::Scheduling,
        S::Medium,
    ),
    (
        "*",
        "*",
        "**/spec/priorityClassName",
        C::Scheduling,
        S::Medium,
    ),
    ("*", "*", "**/spec/nodeName", C::Scheduling, S::Medium),
    ("*", "*", "**/spec/schedulerName", C::Scheduling, S::Medium),
    (
        "*",
        "*",
        "**/spec/runtimeClassName",
        C::Scheduling,
        S::Medium,
    ),
    ("*", "*", "**/volumes", C::Other, S::Medium),
    ("*", "*", "/spec/selector", C::Other, S::High),
    ("*", "*", "/metadata/labels", C::Metadata, S::Low),
    ("*", "*", "/metadata/annotations", C::Metadata, S::Low),
    ("*", "*", "**/template/metadata", C::Metadata, S::Low),
    ("*", "*", "/metadata", C::Metadata, S::Low),
];

/// The built-in tables as Markdown (the README embeds this; a test keeps them equal).
pub fn rules_markdown() -> String {
    let mut out = String::from(
        "| group | kind | path | category | severity |\n| --- | --- | --- | --- | --- |\n",
    );
    for (g, k, p, c, s) in BUILTIN_RULES {
        let g = if g.is_empty() { "(core)" } else { g };
        out.push_str(&format!("| {g} | {k} | `{p}` | {c} | {s} |\n"));
    }
    out.push_str("\n| drift | group | kind | severity |\n| --- | --- | --- | --- |\n");
    for (list, name, fallback) in [
        (MISSING, "missing", Severity::Medium),
        (UNMANAGED, "unmanaged", Severity::Low),
    ] {
        for (g, k, s) in list {
            let g = if g.is_empty() { "(core)" } else { g };
            out.push_str(&format!("| {name} | {g} | {k} | {s} |\n"));
        }
        out.push_str(&format!(
            "| {name} | * | * (anything else) | {fallback} |\n"
        ));
    }
    out
}

/// Severity of a whole missing resource, by kind (first match; default medium).
const MISSING: &[(&str, &str, Severity)] = &[
    ("networking.k8s.io", "NetworkPolicy", S::High),
    ("rbac.authorization.k8s.io", "*", S::High),
    ("apps", "*", S::High),
    ("batch", "*", S::High),
    ("", "Service", S::High),
    ("", "Secret", S::High),
    ("", "ConfigMap", S::High),
    ("", "ServiceAccount", S::High),
    ("", "PersistentVolumeClaim", S::High),
    ("networking.k8s.io", "Ingress", S::High),
];

/// Severity of a whole unmanaged resource, by kind (first match; default low).
const UNMANAGED: &[(&str, &str, Severity)] = &[
    ("rbac.authorization.k8s.io", "*", S::High),
    ("admissionregistration.k8s.io", "*", S::High),
    ("networking.k8s.io", "NetworkPolicy", S::Medium),
    ("apps", "*", S::Medium),
    ("batch", "*", S::Medium),
    ("", "Pod", S::Medium),
    ("", "Service", S::Medium),
    ("networking.k8s.io", "Ingress", S::Medium),
    ("", "Secret", S::Medium),
];

/// Field managers by what they are. Names are globs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManagerClasses {
    /// People: `kubectl edit/patch/set/scale/label/annotate`, dashboards (browser user agents).
    #[serde(default = "default_manual")]
    pub manual: Vec<String>,
    /// Controllers whose fields are theirs to own: a field present only live and owned
    /// only by these is not drift (an HPA's `spec.replicas`).
    #[serde(default = "default_controllers")]
    pub controller: Vec<String>,
    /// GitOps appliers: what they own was applied from the desired state.
    #[serde(default = "default_gitops")]
    pub gitops: Vec<String>,
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(std::string::ToString::to_string).collect()
}

fn default_manual() -> Vec<String> {
    strings(&[
        "kubectl-edit",
        "kubectl-patch",
        "kubectl-set",
        "kubectl-scale",
        "kubectl-label",
        "kubectl-annotate",
        "kubectl-replace",
        "kubectl-create",
        "kubectl-run",
        "kubectl-expose",
        "kubectl-rollout",
        "kubectl",
        "Mozilla*",
        "dashboard",
        "k9s",
        "Lens*",
    ])
}

fn default_controllers() -> Vec<String> {
    strings(&[
        "kube-controller-manager",
        "kube-scheduler",
        "horizontal-pod-autoscaler",
        "vpa-updater",
        "vpa-recommender",
        "cluster-autoscaler",
        "keda-operator",
        "cert-manager*",
        "cainjector",
        "clusterrole-aggregation-controller",
        "endpoint-controller",
        "endpointslice-controller",
        "endpointslicemirroring-controller",
        "vpa-admission-controller",
        "linkerd*",
        "istio*",
    ])
}

fn default_gitops() -> Vec<String> {
    strings(&[
        "argocd-controller",
        "argocd-application-controller",
        "kustomize-controller",
        "helm-controller",
        "kubectl-client-side-apply",
        "helm",
        "envdrift",
    ])
}

impl Default for ManagerClasses {
    fn default() -> Self {
        ManagerClasses {
            manual: default_manual(),
            controller: default_controllers(),
            gitops: default_gitops(),
        }
    }
}

impl ManagerClasses {
    pub(crate) fn is_manual(&self, m: &str) -> bool {
        self.manual.iter().any(|p| wildcard(p, m))
    }
    pub(crate) fn is_controller(&self, m: &str) -> bool {
        self.controller.iter().any(|p| wildcard(p, m))
    }
    pub(crate) fn is_gitops(&self, m: &str) -> bool {
        self.gitops.iter().any(|p| wildcard(p, m))
    }
    /// The cause a manager stands for.
    pub(crate) fn cause_of(&self, m: &str) -> Cause {
        if self.is_gitops(m) {
            Cause::Gitops
        } else if self.is_manual(m) {
            Cause::Manual
        } else if self.is_controller(m) {
            Cause::Controller
        } else {
            Cause::Unknown
        }
    }
}

#[derive(Debug, Clone)]
struct FieldRule {
    select: ObjectSelector,
    /// Still to be matched: applies only once narrowed ([`Classifier::for_labels`]).
    labels: Option<crate::pattern::LabelSelector>,
    path: PathPattern,
    category: Option<Category>,
    severity: Severity,
}

#[derive(Debug, Clone)]
struct KindRule {
    select: ObjectSelector,
    labels: Option<crate::pattern::LabelSelector>,
    drift: DriftType,
    severity: Severity,
}

/// Compiled classification rules.
#[derive(Debug, Clone)]
pub struct Classifier {
    fields: Vec<FieldRule>,
    kinds: Vec<KindRule>,
    pub managers: ManagerClasses,
}

/// A rule that cannot be used; names the rule's index in `severity_rules`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("severity_rules[{index}]: {source}")]
    BadPath {
        index: usize,
        source: crate::pattern::BadPattern,
    },
    #[error("severity_rules[{index}]: set exactly one of `path` or `drift`")]
    PathOrDrift { index: usize },
    #[error("severity_rules[{index}]: `drift` must be `missing` or `unmanaged`")]
    BadDrift { index: usize },
    #[error("severity_rules[{index}].{field}: {message}")]
    BadSelector {
        index: usize,
        field: &'static str,
        message: String,
    },
}

fn selector(group: &str, kind: &str) -> ObjectSelector {
    ObjectSelector {
        group: (group != "*").then(|| group.to_string()),
        kind: (kind != "*").then(|| kind.to_string()),
        ..Default::default()
    }
}

impl SeverityRule {
    fn selector(&self) -> ObjectSelector {
        ObjectSelector {
            group: self.group.clone(),
            kind: self.kind.clone(),
            namespace: self.namespace.clone(),
            name: self.name.clone(),
        }
    }
}

impl Default for Classifier {
    fn default() -> Self {
        match Classifier::new(&[], ManagerClasses::default()) {
            Ok(c) => c,
            Err(e) => unreachable!("built-in rules are valid: {e}"),
        }
    }
}

impl Classifier {
    /// User rules first, then the built-in table.
    pub fn new(user: &[SeverityRule], managers: ManagerClasses) -> Result<Classifier, RuleError> {
        let mut fields = Vec::new();
        let mut kinds = Vec::new();
        for (index, r) in user.iter().enumerate() {
            let labels = crate::pattern::LabelSelector::combine(
                r.selector.as_ref(),
                r.label_selector.as_deref(),
            )
            .map_err(|(field, message)| RuleError::BadSelector {
                index,
                field,
                message,
            })?;
            match (&r.path, r.drift) {
                (Some(p), None) => fields.push(FieldRule {
                    select: r.selector(),
                    labels,
                    path: PathPattern::parse(p)
                        .map_err(|source| RuleError::BadPath { index, source })?,
                    category: r.category,
                    severity: r.severity,
                }),
                (None, Some(DriftType::Modified)) => return Err(RuleError::BadDrift { index }),
                (None, Some(drift)) => kinds.push(KindRule {
                    select: r.selector(),
                    labels,
                    drift,
                    severity: r.severity,
                }),
                _ => return Err(RuleError::PathOrDrift { index }),
            }
        }
        for (g, k, p, c, s) in BUILTIN_RULES {
            fields.push(FieldRule {
                select: selector(g, k),
                labels: None,
                path: PathPattern::parse(p).map_err(|source| RuleError::BadPath {
                    index: usize::MAX,
                    source,
                })?,
                category: Some(*c),
                severity: *s,
            });
        }
        for (list, drift) in [
            (MISSING, DriftType::Missing),
            (UNMANAGED, DriftType::Unmanaged),
        ] {
            for (g, k, s) in list {
                kinds.push(KindRule {
                    select: selector(g, k),
                    labels: None,
                    drift,
                    severity: *s,
                });
            }
        }
        Ok(Classifier {
            fields,
            kinds,
            managers,
        })
    }

    /// Whether a user rule selects objects by label.
    pub(crate) fn has_label_rules(&self) -> bool {
        self.fields.iter().any(|r| r.labels.is_some())
            || self.kinds.iter().any(|r| r.labels.is_some())
    }

    /// For each rule with a label selector, whether it matches these labels.
    pub(crate) fn label_matches(
        &self,
        labels: Option<&serde_json::Map<String, serde_json::Value>>,
    ) -> Vec<bool> {
        self.fields
            .iter()
            .filter_map(|r| r.labels.as_ref())
            .chain(self.kinds.iter().filter_map(|r| r.labels.as_ref()))
            .map(|l| l.matches(labels))
            .collect()
    }

    /// The rules that apply to an object with these labels, label selectors resolved.
    pub(crate) fn for_labels(
        &self,
        labels: Option<&serde_json::Map<String, serde_json::Value>>,
    ) -> Classifier {
        let keep = |l: &Option<crate::pattern::LabelSelector>| {
            l.as_ref().is_none_or(|l| l.matches(labels))
        };
        Classifier {
            fields: self
                .fields
                .iter()
                .filter(|r| keep(&r.labels))
                .map(|r| FieldRule {
                    labels: None,
                    ..r.clone()
                })
                .collect(),
            kinds: self
                .kinds
                .iter()
                .filter(|r| keep(&r.labels))
                .map(|r| KindRule {
                    labels: None,
                    ..r.clone()
                })
                .collect(),
            managers: self.managers.clone(),
        }
    }

    /// Category and severity of a change at `path` of the object `key`.
    pub fn classify(&self, key: &ResourceKey, path: &[SegView<'_>]) -> (Category, Severity) {
        let mut category = None;
        let mut severity = None;
        for r in &self.fields {
            if r.labels.is_none() && r.select.selects(key) && r.path.covers(path) {
                if severity.is_none() {
                    severity = Some(r.severity);
                }
                if category.is_none() {
                    category = r.category;
                }
                if category.is_some() {
                    break;
                }
            }
        }
        (
            category.unwrap_or(Category::Other),
            severity.unwrap_or(Severity::Low),
        )
    }

    /// Severity of a whole missing or unmanaged resource.
    pub(crate) fn resource_severity(&self, key: &ResourceKey, drift: DriftType) -> Severity {
        self.kinds
            .iter()
            .find(|r| r.labels.is_none() && r.drift == drift && r.select.selects(key))
            .map(|r| r.severity)
            .unwrap_or(match drift {
                DriftType::Unmanaged => Severity::Low,
                _ => Severity::Medium,
            })
    }
}

/// An image reference: the repository with its registry (Docker Hub's implied
/// `docker.io/library/` made explicit, so `nginx` and `docker.io/library/nginx` are one
/// repository), the tag (`latest` when neither tag nor digest is given) and the digest.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ImageRef {
    repository: String,
    tag: Option<String>,
    digest: Option<String>,
}

/// Parses an image reference with the distribution grammar (`oci-spec`); a string it
/// rejects (upper case, a malformed digest) is split at its last `@` or `:` as written.
fn image_ref(image: &str) -> ImageRef {
    if let Ok(r) = oci_spec::distribution::Reference::try_from(image) {
        return ImageRef {
            repository: format!("{}/{}", r.registry(), r.repository()),
            tag: r.tag().map(str::to_string),
            digest: r.digest().map(str::to_string),
        };
    }
    let (name, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d.to_string())),
        None => (image, None),
    };
    let slash = name.rfind('/').map_or(0, |i| i + 1);
    let (repository, tag) = match name[slash..].rfind(':') {
        Some(i) => (&name[..slash + i], Some(name[slash + i + 1..].to_string())),
        None if digest.is_none() => (name, Some("latest".to_string())),
        None => (name, None),
    };
    ImageRef {
        repository: repository.to_string(),
        tag,
        digest,
    }
}

/// Semantic version: (major, minor, patch, pre-release). `v` prefix allowed; build metadata
/// ignored.
fn semver(tag: &str) -> Option<(u64, u64, u64, Option<&str>)> {
    let t = tag.strip_prefix('v').unwrap_or(tag);
    let t = t.split('+').next().unwrap_or(t);
    let (core, pre) = match t.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (t, None),
    };
    let mut it = core.split('.');
    let major = it.next()?.parse().ok()?;
    let minor = it.next().map_or(Some(0), |m| m.parse().ok())?;
    let patch = it.next().map_or(Some(0), |m| m.parse().ok())?;
    if it.next().is_some() {
        return None;
    }
    Some((major, minor, patch, pre))
}

fn semver_cmp(a: &str, b: &str) -> Option<std::cmp::Ordering> {
    let (x, y) = (semver(a)?, semver(b)?);
    let core = (x.0, x.1, x.2).cmp(&(y.0, y.1, y.2));
    if core != std::cmp::Ordering::Equal {
        return Some(core);
    }
    // A release is newer than its pre-releases.
    Some(match (x.3, y.3) {
        (None, None) => std::cmp::Ordering::Equal,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (Some(_), None) => std::cmp::Ordering::Less,
        // SemVer 2.0 precedence (numeric identifiers numerically: rc.9 < rc.10); a
        // pre-release that is not valid SemVer is not comparable.
        (Some(p), Some(q)) => {
            let (p, q) = (
                semver::Prerelease::new(p).ok()?,
                semver::Prerelease::new(q).ok()?,
            );
            p.cmp(&q)
        }
    })
}

/// Environment comparisons: refines a change by what it means for a promotion from
/// `from` (e.g. staging) to `to` (production).
///
/// - Images: same repository, `to` older → `promotion-pending` (medium); `to` newer →
///   `hotfix-not-in-from` (high); not comparable as semver → `differs` (medium); different
///   repositories → `repository-differs` (high).
/// - ConfigMap/Secret keys on one side only → high (`key-missing-in-to`: a release would
///   break; `key-only-in-to`).
pub fn promotion(key: &ResourceKey, c: &mut crate::model::FieldChange, from: &str, to: &str) {
    use crate::model::ChangeOp;
    if c.category == Category::Image
        && c.op == ChangeOp::Changed
        && let (Some(a), Some(b)) = (c.desired.as_str(), c.live.as_str())
    {
        let (ia, ib) = (image_ref(a), image_ref(b));
        let version = |i: &ImageRef| {
            i.tag
                .clone()
                .or_else(|| i.digest.clone())
                .unwrap_or_default()
        };
        let (ta, tb) = (version(&ia), version(&ib));
        let (finding, sev, note) = if ia.repository != ib.repository {
            (
                "repository-differs",
                S::High,
                format!("{from} runs {}, {to} runs {}", ia.repository, ib.repository),
            )
        } else if ia.digest.is_some() && ia.digest == ib.digest {
            // Pulled by digest, the tag is not used: the same image.
            (
                "differs",
                S::Low,
                format!("{from} and {to} run the same image (same digest); only the tag differs"),
            )
        } else if let (Some(x), true) = (&ia.tag, ia.tag == ib.tag) {
            (
                "differs",
                S::Medium,
                format!(
                    "{from} and {to} both run tag {x} but different digests (the tag was pushed again)"
                ),
            )
        } else {
            let tags = ia.tag.as_deref().zip(ib.tag.as_deref());
            match tags.and_then(|(x, y)| semver_cmp(y, x)) {
                Some(std::cmp::Ordering::Less) => (
                    "promotion-pending",
                    S::Medium,
                    format!("promotion pending: {to} runs {tb}, older than {from}'s {ta}"),
                ),
                Some(std::cmp::Ordering::Greater) => (
                    "hotfix-not-in-from",
                    S::High,
                    format!("hotfix not in {from}: {to} runs {tb}, newer than {from}'s {ta}"),
                ),
                _ => (
                    "differs",
                    S::Medium,
                    format!("promotion pending: {from} runs {ta}, {to} runs {tb}"),
                ),
            }
        };
        c.finding = Some(finding.to_string());
        c.severity = sev;
        c.note = Some(note);
        return;
    }
    let data_key = key.group.is_empty()
        && matches!(key.kind.as_str(), "ConfigMap" | "Secret")
        && (c.path.starts_with("/data/") || c.path.starts_with("/binaryData/"))
        && c.path.matches('/').count() == 2;
    if data_key {
        match c.op {
            ChangeOp::Removed => {
                c.finding = Some("key-missing-in-to".into());
                c.severity = c.severity.max(S::High);
                c.note = Some(format!(
                    "key only in {from}: missing in {to}, a release from {from} would break"
                ));
            }
            ChangeOp::Added => {
                c.finding = Some("key-only-in-to".into());
                c.severity = c.severity.max(S::High);
                c.note = Some(format!("key only in {to}: not in {from}"));
            }
            ChangeOp::Changed => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(group: &str, kind: &str) -> ResourceKey {
        ResourceKey {
            group: group.into(),
            kind: kind.into(),
            namespace: Some("ns".into()),
            name: "x".into(),
        }
    }

    fn path(p: &str) -> Vec<SegView<'_>> {
        p.split('/')
            .skip(1)
            .map(|t| SegView {
                token: t,
                alias: None,
            })
            .collect()
    }

    #[test]
    fn builtin_table() {
        let c = Classifier::default();
        let dep = key("apps", "Deployment");
        let cases = [
            (
                &dep,
                "/spec/template/spec/containers/0/image",
                C::Image,
                S::High,
            ),
            (
                &dep,
                "/spec/template/spec/containers/0/securityContext/privileged",
                C::SecurityContext,
                S::Critical,
            ),
            (
                &dep,
                "/spec/template/spec/containers/0/securityContext/readOnlyRootFilesystem",
                C::SecurityContext,
                S::High,
            ),
            (&dep, "/spec/replicas", C::Scaling, S::Medium),
            (
                &dep,
                "/spec/template/spec/containers/0/env/3",
                C::ConfigData,
                S::Medium,
            ),
            (
                &dep,
                "/spec/template/spec/containers/0/resources/limits/cpu",
                C::Resources,
                S::Medium,
            ),
            (&dep, "/metadata/labels/owner", C::Metadata, S::Low),
            (
                &dep,
                "/spec/template/spec/nodeSelector/zone",
                C::Scheduling,
                S::Medium,
            ),
            (&dep, "/spec/template/spec/containers/1", C::Other, S::High),
            (
                &dep,
                "/spec/template/spec/hostNetwork",
                C::SecurityContext,
                S::Critical,
            ),
            (&dep, "/spec/paused", C::Other, S::Low),
        ];
        for (k, p, cat, sev) in cases {
            assert_eq!(c.classify(k, &path(p)), (cat, sev), "{p}");
        }
        let role = key("rbac.authorization.k8s.io", "Role");
        assert_eq!(
            c.classify(&role, &path("/rules/0/verbs")),
            (C::Rbac, S::Critical)
        );
        let crb = key("rbac.authorization.k8s.io", "ClusterRoleBinding");
        assert_eq!(
            c.classify(&crb, &path("/subjects/0")),
            (C::Rbac, S::Critical)
        );
        let secret = key("", "Secret");
        assert_eq!(
            c.classify(&secret, &path("/data/pw")),
            (C::SecretData, S::High)
        );
        let cm = key("", "ConfigMap");
        assert_eq!(
            c.classify(&cm, &path("/data/LOG_LEVEL")),
            (C::ConfigData, S::Medium)
        );
        let svc = key("", "Service");
        assert_eq!(
            c.classify(&svc, &path("/spec/ports/0/port")),
            (C::Networking, S::High)
        );
        assert_eq!(c.resource_severity(&dep, DriftType::Missing), S::High);
        assert_eq!(c.resource_severity(&svc, DriftType::Missing), S::High);
        assert_eq!(c.resource_severity(&cm, DriftType::Unmanaged), S::Low);
        assert_eq!(c.resource_severity(&crb, DriftType::Unmanaged), S::High);
    }

    #[test]
    fn user_rules_come_first() {
        let user = vec![
            SeverityRule {
                group: None,
                kind: Some("Deployment".into()),
                namespace: None,
                name: None,
                selector: None,
                label_selector: None,
                path: Some("/spec/replicas".into()),
                drift: None,
                category: None,
                severity: S::Info,
            },
            SeverityRule {
                group: None,
                kind: None,
                namespace: None,
                name: None,
                selector: None,
                label_selector: None,
                path: None,
                drift: Some(DriftType::Unmanaged),
                category: None,
                severity: S::Critical,
            },
        ];
        let c = Classifier::new(&user, ManagerClasses::default()).unwrap();
        let dep = key("apps", "Deployment");
        assert_eq!(
            c.classify(&dep, &path("/spec/replicas")),
            (C::Scaling, S::Info)
        );
        assert_eq!(
            c.resource_severity(&key("", "ConfigMap"), DriftType::Unmanaged),
            S::Critical
        );
        let bad = SeverityRule {
            group: None,
            kind: None,
            namespace: None,
            name: None,
            selector: None,
            label_selector: None,
            path: None,
            drift: None,
            category: None,
            severity: S::Low,
        };
        assert!(matches!(
            Classifier::new(&[bad], ManagerClasses::default()),
            Err(RuleError::PathOrDrift { index: 0 })
        ));
    }

    fn change(
        path: &str,
        op: crate::model::ChangeOp,
        d: serde_json::Value,
        l: serde_json::Value,
        cat: Category,
    ) -> crate::model::FieldChange {
        crate::model::FieldChange {
            path: path.into(),
            desired_path: path.into(),
            field: String::new(),
            op,
            desired: d,
            live: l,
            category: cat,
            severity: S::High,
            cause: Cause::Unknown,
            attribution: None,
            note: None,
            expected: false,
            expected_rule: None,
            finding: None,
            line: None,
        }
    }

    #[test]
    fn promotion_findings() {
        use crate::model::ChangeOp::*;
        const DA: &str = "ghcr.io/acme/app@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
        const DB: &str = "ghcr.io/acme/app@sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
        const TA: &str = "ghcr.io/acme/app:1.2.0@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
        const TA_RETAGGED: &str = "ghcr.io/acme/app:stable@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
        const TA_REPUSHED: &str = "ghcr.io/acme/app:1.2.0@sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc";
        const TB: &str = "ghcr.io/acme/app:1.3.0@sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
        use serde_json::json;
        let dep = key("apps", "Deployment");
        let p = "/spec/template/spec/containers/0/image";
        let cases = [
            ("r/app:1.5.0", "r/app:1.4.2", "promotion-pending", S::Medium),
            (
                "r/app:1.4.2",
                "r/app:1.4.3-hotfix",
                "hotfix-not-in-from",
                S::High,
            ),
            ("r/app:v2", "r/app:v1.9.9", "promotion-pending", S::Medium),
            (
                "r/app:1.4.2-rc1",
                "r/app:1.4.2",
                "hotfix-not-in-from",
                S::High,
            ),
            ("r/app:main-abc", "r/app:main-def", "differs", S::Medium),
            // Pre-release parts by SemVer precedence, not as text.
            (
                "r/app:2.0.0-rc.10",
                "r/app:2.0.0-rc.9",
                "promotion-pending",
                S::Medium,
            ),
            (
                "r/app:2.0.0-rc.9",
                "r/app:2.0.0-rc.10",
                "hotfix-not-in-from",
                S::High,
            ),
            (
                "r/app:2.0.0-beta.11",
                "r/app:2.0.0-rc.1",
                "hotfix-not-in-from",
                S::High,
            ),
            ("r/app@sha256:aa", "r/app@sha256:bb", "differs", S::Medium),
            ("r/app:1", "other/app:1", "repository-differs", S::High),
            (
                "registry:5000/app:1.0",
                "registry:5000/app:2.0",
                "hotfix-not-in-from",
                S::High,
            ),
            // A registry with a port is not a tag.
            (
                "registry:5000/app:1.0",
                "registry:5001/app:1.0",
                "repository-differs",
                S::High,
            ),
            (
                "localhost:5000/app",
                "localhost:5000/app:2.0",
                "differs",
                S::Medium,
            ),
            // Docker Hub's library/ images, however written, are one repository.
            (
                "nginx:1.25.3",
                "docker.io/library/nginx:1.26.0",
                "hotfix-not-in-from",
                S::High,
            ),
            (
                "library/nginx:1.26",
                "index.docker.io/library/nginx:1.25",
                "promotion-pending",
                S::Medium,
            ),
            (
                "nginx:1.25",
                "docker.io/bitnami/nginx:1.25",
                "repository-differs",
                S::High,
            ),
            // Digest only: not comparable as versions.
            (DA, DB, "differs", S::Medium),
            // Tag and digest: the same digest is the same image, whatever the tag says.
            (TA, TA_RETAGGED, "differs", S::Low),
            // Same tag, another digest: pushed again.
            (TA, TA_REPUSHED, "differs", S::Medium),
            // Tags with digests compare by tag.
            (TA, TB, "hotfix-not-in-from", S::High),
        ];
        for (from, to, finding, sev) in cases {
            let mut c = change(p, Changed, json!(from), json!(to), Category::Image);
            promotion(&dep, &mut c, "staging", "production");
            assert_eq!(
                (c.finding.as_deref(), c.severity),
                (Some(finding), sev),
                "{from} → {to}"
            );
        }
        let cm = key("", "ConfigMap");
        let mut c = change(
            "/data/NEW_FLAG",
            Removed,
            json!("1"),
            json!(null),
            Category::ConfigData,
        );
        c.severity = S::Medium;
        promotion(&cm, &mut c, "staging", "production");
        assert_eq!(
            (c.finding.as_deref(), c.severity),
            (Some("key-missing-in-to"), S::High)
        );
        let mut c = change(
            "/data/A",
            Changed,
            json!("1"),
            json!("2"),
            Category::ConfigData,
        );
        c.severity = S::Medium;
        promotion(&cm, &mut c, "staging", "production");
        assert_eq!((c.finding, c.severity), (None, S::Medium));
    }

    #[test]
    fn causes() {
        let m = ManagerClasses::default();
        assert_eq!(m.cause_of("kubectl-edit"), Cause::Manual);
        assert_eq!(m.cause_of("Mozilla/5.0 (X11)"), Cause::Manual);
        assert_eq!(m.cause_of("kube-controller-manager"), Cause::Controller);
        assert_eq!(m.cause_of("argocd-controller"), Cause::Gitops);
        assert_eq!(m.cause_of("kubectl-client-side-apply"), Cause::Gitops);
        assert_eq!(m.cause_of("some-operator"), Cause::Unknown);
    }
}
