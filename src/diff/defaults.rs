//! The built-in table of server defaults.
//!
//! A field present only live is not drift when the API server (or an admission plugin
//! that runs on every cluster) would have set it to that value. The table mirrors the
//! defaulting functions of `k8s.io/kubernetes/pkg/apis/*/v1/defaults.go` for the kinds
//! envdrift knows: Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob, Pod
//! spec/template, Service, Endpoints, EndpointSlice, Ingress, ConfigMap, Secret,
//! ServiceAccount, Role/ClusterRole and bindings, PersistentVolume(Claim),
//! HorizontalPodAutoscaler, NetworkPolicy, Namespace, admission webhook configurations and
//! ValidatingAdmissionPolicy, APIService, StorageClass, CSIDriver, PriorityClass.
//!
//! PodDisruptionBudget (`policy/v1`) and Ingress paths have no Go defaults (`pathType` is
//! required), so they have no entry beyond the metadata rules.
//!
//! Fields the server *computes* (a Service's `clusterIP`, a PVC's `volumeName`) are
//! [`DefaultValue::Any`]: whatever their value, nobody wrote them in Git.

use serde_json::{Map, Value, json};

use super::normalize::{POD_SPEC_ROOTS, SchemaBuilder};

/// What the server sets a field to when the desired object leaves it out.
#[derive(Debug, Clone, PartialEq)]
pub enum DefaultValue {
    /// Exactly this value (compared after canonicalization).
    Value(Value),
    /// Computed by the server or an admission plugin: any value.
    Any,
    /// The value of a sibling field (`targetPort` defaults to `port`).
    SameAs(&'static str),
    /// `imagePullPolicy`: `Always` for `:latest` or untagged images, else `IfNotPresent`.
    ImagePullPolicy,
}

impl DefaultValue {
    /// Whether `live` is what the server would have set, given the live parent object.
    pub fn matches(&self, live: &Value, parent: Option<&Map<String, Value>>) -> bool {
        match self {
            DefaultValue::Any => true,
            DefaultValue::Value(v) => {
                v == live
                    || super::normalize::scalar_eq(
                        v,
                        live,
                        super::normalize::ScalarType::IntOrString,
                    )
                    || subset_of_default(v, live)
            }
            DefaultValue::SameAs(field) => parent.and_then(|p| p.get(*field)).is_some_and(|s| {
                super::normalize::int_or_string(s) == super::normalize::int_or_string(live)
            }),
            DefaultValue::ImagePullPolicy => {
                let image = parent.and_then(|p| p.get("image")).and_then(Value::as_str);
                let want = match image {
                    Some(img) if image_is_latest(img) => "Always",
                    Some(_) => "IfNotPresent",
                    None => return false,
                };
                live.as_str() == Some(want)
            }
        }
    }
}

/// For object defaults (`strategy: {type: RollingUpdate, …}`): live equals the default
/// exactly. Kept separate so that scalar and object defaults share one entry point.
fn subset_of_default(default: &Value, live: &Value) -> bool {
    match (default, live) {
        (Value::Object(d), Value::Object(l)) => l.iter().all(|(k, lv)| {
            d.get(k)
                .is_some_and(|dv| dv == lv || subset_of_default(dv, lv))
        }),
        _ => false,
    }
}

fn image_is_latest(image: &str) -> bool {
    if image.contains('@') {
        return false; // a digest
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.rsplit_once(':') {
        Some((_, tag)) => tag == "latest",
        None => true,
    }
}

fn v(value: Value) -> DefaultValue {
    DefaultValue::Value(value)
}

/// Annotations and labels written by the server, controllers or appliers, never by Git.
pub const SERVER_ANNOTATIONS: &[&str] = &[
    "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas",
    "kubectl.kubernetes.io/last-applied-configuration",
    "meta.helm.sh/release-name",
    "meta.helm.sh/release-namespace",
    "argocd.argoproj.io/tracking-id",
    "pv.kubernetes.io/bind-completed",
    "pv.kubernetes.io/bound-by-controller",
    "pv.kubernetes.io/provisioned-by",
    "volume.beta.kubernetes.io/storage-provisioner",
    "volume.kubernetes.io/storage-provisioner",
    "volume.kubernetes.io/selected-node",
    "endpoints.kubernetes.io/last-change-trigger-time",
    "kubernetes.io/service-account.uid",
    "batch.kubernetes.io/job-tracking",
    "autoscaling.alpha.kubernetes.io/conditions",
    "autoscaling.alpha.kubernetes.io/current-metrics",
    "control-plane.alpha.kubernetes.io/leader",
];

/// Labels written by the server, controllers or GitOps appliers.
pub const SERVER_LABELS: &[&str] = &[
    "kubernetes.io/metadata.name",
    "app.kubernetes.io/managed-by",
    "kustomize.toolkit.fluxcd.io/name",
    "kustomize.toolkit.fluxcd.io/namespace",
    "helm.toolkit.fluxcd.io/name",
    "helm.toolkit.fluxcd.io/namespace",
    "controller-uid",
    "batch.kubernetes.io/controller-uid",
    "job-name",
    "batch.kubernetes.io/job-name",
    "pod-template-hash",
];

fn escape(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

fn metadata_defaults(b: &mut SchemaBuilder, prefix: &str) {
    for a in SERVER_ANNOTATIONS {
        b.set_default(
            &format!("{prefix}/metadata/annotations/{}", escape(a)),
            DefaultValue::Any,
        );
    }
    for l in SERVER_LABELS {
        b.set_default(
            &format!("{prefix}/metadata/labels/{}", escape(l)),
            DefaultValue::Any,
        );
    }
    b.set_default(&format!("{prefix}/metadata/finalizers"), DefaultValue::Any);
}

fn probe_defaults(b: &mut SchemaBuilder, probe: &str) {
    b.set_default(&format!("{probe}/timeoutSeconds"), v(json!(1)));
    b.set_default(&format!("{probe}/periodSeconds"), v(json!(10)));
    b.set_default(&format!("{probe}/successThreshold"), v(json!(1)));
    b.set_default(&format!("{probe}/failureThreshold"), v(json!(3)));
    b.set_default(&format!("{probe}/httpGet/scheme"), v(json!("HTTP")));
}

/// Pod spec defaults under `root`; `is_pod` adds those only admission sets on Pods.
fn pod_spec_defaults(b: &mut SchemaBuilder, root: &str, is_pod: bool) {
    b.set_default(&format!("{root}/restartPolicy"), v(json!("Always")));
    b.set_default(
        &format!("{root}/terminationGracePeriodSeconds"),
        v(json!(30)),
    );
    b.set_default(&format!("{root}/dnsPolicy"), v(json!("ClusterFirst")));
    b.set_default(
        &format!("{root}/schedulerName"),
        v(json!("default-scheduler")),
    );
    b.set_default(&format!("{root}/securityContext"), v(json!({})));
    b.set_default(
        &format!("{root}/serviceAccount"),
        DefaultValue::SameAs("serviceAccountName"),
    );
    b.set_default(&format!("{root}/enableServiceLinks"), v(json!(true)));
    if is_pod {
        for f in [
            "serviceAccountName",
            "serviceAccount",
            "nodeName",
            "priority",
            "preemptionPolicy",
            "tolerations",
            "volumes",
        ] {
            b.set_default(&format!("{root}/{f}"), DefaultValue::Any);
        }
    }
    for c in ["containers", "initContainers", "ephemeralContainers"] {
        let c = format!("{root}/{c}/*");
        b.set_default(
            &format!("{c}/terminationMessagePath"),
            v(json!("/dev/termination-log")),
        );
        b.set_default(&format!("{c}/terminationMessagePolicy"), v(json!("File")));
        b.set_default(
            &format!("{c}/imagePullPolicy"),
            DefaultValue::ImagePullPolicy,
        );
        b.set_default(&format!("{c}/ports/*/protocol"), v(json!("TCP")));
        b.set_default(
            &format!("{c}/env/*/valueFrom/fieldRef/apiVersion"),
            v(json!("v1")),
        );
        for p in ["livenessProbe", "readinessProbe", "startupProbe"] {
            probe_defaults(b, &format!("{c}/{p}"));
        }
        if is_pod {
            b.set_default(&format!("{c}/volumeMounts"), DefaultValue::Any);
        }
    }
    for vol in ["configMap", "secret", "projected", "downwardAPI"] {
        b.set_default(
            &format!("{root}/volumes/*/{vol}/defaultMode"),
            v(json!(420)),
        );
    }
    b.set_default(
        &format!("{root}/volumes/*/downwardAPI/items/*/fieldRef/apiVersion"),
        v(json!("v1")),
    );
    b.set_default(&format!("{root}/volumes/*/hostPath/type"), v(json!("")));
    b.set_default(&format!("{root}/volumes/*/emptyDir"), v(json!({})));
    b.set_default(
        &format!("{root}/volumes/*/persistentVolumeClaim/readOnly"),
        v(json!(false)),
    );
}

/// `k8s.io/kubernetes/pkg/apis/admissionregistration/v1/defaults.go`: every webhook of a
/// Validating/MutatingWebhookConfiguration, its rules and its service reference.
fn webhook_defaults(b: &mut SchemaBuilder, mutating: bool) {
    let w = "/webhooks/*";
    b.set_default(&format!("{w}/failurePolicy"), v(json!("Fail")));
    b.set_default(&format!("{w}/matchPolicy"), v(json!("Equivalent")));
    b.set_default(&format!("{w}/namespaceSelector"), v(json!({})));
    b.set_default(&format!("{w}/objectSelector"), v(json!({})));
    b.set_default(&format!("{w}/timeoutSeconds"), v(json!(10)));
    b.set_default(&format!("{w}/rules/*/scope"), v(json!("*")));
    b.set_default(&format!("{w}/clientConfig/service/port"), v(json!(443)));
    if mutating {
        b.set_default(&format!("{w}/reinvocationPolicy"), v(json!("Never")));
    }
}

/// Adds the defaults of one kind to its schema.
pub(crate) fn add_defaults(b: &mut SchemaBuilder, group: &str, kind: &str) {
    metadata_defaults(b, "");
    if let Some((_, _, root)) = POD_SPEC_ROOTS
        .iter()
        .find(|(g, k, _)| *g == group && *k == kind)
    {
        pod_spec_defaults(b, root, kind == "Pod");
        if let Some(tpl) = root.strip_suffix("/spec") {
            metadata_defaults(b, tpl);
            b.set_default(
                &format!("{tpl}/metadata/creationTimestamp"),
                DefaultValue::Any,
            );
        }
    }
    match (group, kind) {
        ("apps", "Deployment") => {
            b.set_default("/spec/replicas", v(json!(1)));
            b.set_default("/spec/revisionHistoryLimit", v(json!(10)));
            b.set_default("/spec/progressDeadlineSeconds", v(json!(600)));
            b.set_default("/spec/strategy/type", v(json!("RollingUpdate")));
            b.set_default("/spec/strategy/rollingUpdate/maxSurge", v(json!("25%")));
            b.set_default(
                "/spec/strategy/rollingUpdate/maxUnavailable",
                v(json!("25%")),
            );
        }
        ("apps", "StatefulSet") => {
            b.set_default("/spec/replicas", v(json!(1)));
            b.set_default("/spec/revisionHistoryLimit", v(json!(10)));
            b.set_default("/spec/podManagementPolicy", v(json!("OrderedReady")));
            b.set_default("/spec/updateStrategy/type", v(json!("RollingUpdate")));
            b.set_default("/spec/updateStrategy/rollingUpdate/partition", v(json!(0)));
            b.set_default(
                "/spec/persistentVolumeClaimRetentionPolicy/whenDeleted",
                v(json!("Retain")),
            );
            b.set_default(
                "/spec/persistentVolumeClaimRetentionPolicy/whenScaled",
                v(json!("Retain")),
            );
            b.set_default("/spec/volumeClaimTemplates/*/apiVersion", v(json!("v1")));
            b.set_default(
                "/spec/volumeClaimTemplates/*/kind",
                v(json!("PersistentVolumeClaim")),
            );
            b.set_default(
                "/spec/volumeClaimTemplates/*/spec/volumeMode",
                v(json!("Filesystem")),
            );
            b.set_default(
                "/spec/volumeClaimTemplates/*/metadata/creationTimestamp",
                DefaultValue::Any,
            );
        }
        ("apps", "DaemonSet") => {
            b.set_default("/spec/revisionHistoryLimit", v(json!(10)));
            b.set_default("/spec/updateStrategy/type", v(json!("RollingUpdate")));
            b.set_default("/spec/updateStrategy/rollingUpdate/maxSurge", v(json!(0)));
            b.set_default(
                "/spec/updateStrategy/rollingUpdate/maxUnavailable",
                v(json!(1)),
            );
        }
        ("apps", "ReplicaSet") | ("", "ReplicationController") => {
            b.set_default("/spec/replicas", v(json!(1)));
        }
        ("batch", "Job") => {
            b.set_default("/spec/backoffLimit", v(json!(6)));
            b.set_default("/spec/completions", v(json!(1)));
            b.set_default("/spec/parallelism", v(json!(1)));
            b.set_default("/spec/completionMode", v(json!("NonIndexed")));
            b.set_default("/spec/suspend", v(json!(false)));
            b.set_default("/spec/manualSelector", v(json!(false)));
            b.set_default(
                "/spec/podReplacementPolicy",
                v(json!("TerminatingOrFailed")),
            );
            b.set_default("/spec/selector", DefaultValue::Any);
        }
        ("batch", "CronJob") => {
            b.set_default("/spec/concurrencyPolicy", v(json!("Allow")));
            b.set_default("/spec/suspend", v(json!(false)));
            b.set_default("/spec/successfulJobsHistoryLimit", v(json!(3)));
            b.set_default("/spec/failedJobsHistoryLimit", v(json!(1)));
            b.set_default(
                "/spec/jobTemplate/metadata/creationTimestamp",
                DefaultValue::Any,
            );
        }
        ("", "Service") => {
            b.set_default("/spec/type", v(json!("ClusterIP")));
            b.set_default("/spec/sessionAffinity", v(json!("None")));
            for f in [
                "clusterIP",
                "clusterIPs",
                "ipFamilies",
                "healthCheckNodePort",
            ] {
                b.set_default(&format!("/spec/{f}"), DefaultValue::Any);
            }
            b.set_default("/spec/ipFamilyPolicy", v(json!("SingleStack")));
            b.set_default("/spec/internalTrafficPolicy", v(json!("Cluster")));
            b.set_default("/spec/externalTrafficPolicy", v(json!("Cluster")));
            b.set_default("/spec/allocateLoadBalancerNodePorts", v(json!(true)));
            b.set_default("/spec/ports/*/protocol", v(json!("TCP")));
            b.set_default("/spec/ports/*/targetPort", DefaultValue::SameAs("port"));
            b.set_default("/spec/ports/*/nodePort", DefaultValue::Any);
        }
        ("", "Secret") => {
            b.set_default("/type", v(json!("Opaque")));
        }
        ("", "ServiceAccount") => {
            b.set_default("/secrets", DefaultValue::Any);
        }
        ("", "Namespace") => {
            b.set_default("/spec/finalizers", v(json!(["kubernetes"])));
        }
        ("", "PersistentVolumeClaim") => {
            b.set_default("/spec/volumeMode", v(json!("Filesystem")));
            b.set_default("/spec/storageClassName", DefaultValue::Any);
            b.set_default("/spec/volumeName", DefaultValue::Any);
        }
        ("", "Endpoints") => {
            b.set_default("/subsets/*/ports/*/protocol", v(json!("TCP")));
        }
        ("discovery.k8s.io", "EndpointSlice") => {
            b.set_default("/ports/*/protocol", v(json!("TCP")));
            b.set_default("/ports/*/name", v(json!("")));
        }
        ("", "PersistentVolume") => {
            b.set_default("/spec/persistentVolumeReclaimPolicy", v(json!("Retain")));
            b.set_default("/spec/volumeMode", v(json!("Filesystem")));
            b.set_default("/spec/claimRef", DefaultValue::Any);
        }
        ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration") => {
            webhook_defaults(b, false);
        }
        ("admissionregistration.k8s.io", "MutatingWebhookConfiguration") => {
            webhook_defaults(b, true);
        }
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy") => {
            b.set_default("/spec/failurePolicy", v(json!("Fail")));
            let mc = "/spec/matchConstraints";
            b.set_default(&format!("{mc}/matchPolicy"), v(json!("Equivalent")));
            b.set_default(&format!("{mc}/namespaceSelector"), v(json!({})));
            b.set_default(&format!("{mc}/objectSelector"), v(json!({})));
            b.set_default(&format!("{mc}/resourceRules/*/scope"), v(json!("*")));
            b.set_default(&format!("{mc}/excludeResourceRules/*/scope"), v(json!("*")));
        }
        ("apiregistration.k8s.io", "APIService") => {
            b.set_default("/spec/service/port", v(json!(443)));
        }
        ("storage.k8s.io", "StorageClass") => {
            b.set_default("/reclaimPolicy", v(json!("Delete")));
            b.set_default("/volumeBindingMode", v(json!("Immediate")));
        }
        ("storage.k8s.io", "CSIDriver") => {
            b.set_default("/spec/attachRequired", v(json!(true)));
            b.set_default("/spec/podInfoOnMount", v(json!(false)));
            b.set_default("/spec/storageCapacity", v(json!(false)));
            b.set_default("/spec/requiresRepublish", v(json!(false)));
            b.set_default("/spec/seLinuxMount", v(json!(false)));
            b.set_default("/spec/fsGroupPolicy", v(json!("ReadWriteOnceWithFSType")));
            b.set_default("/spec/volumeLifecycleModes", v(json!(["Persistent"])));
        }
        ("scheduling.k8s.io", "PriorityClass") => {
            b.set_default("/preemptionPolicy", v(json!("PreemptLowerPriority")));
        }
        ("networking.k8s.io", "Ingress") => {
            b.set_default("/spec/ingressClassName", DefaultValue::Any);
        }
        ("networking.k8s.io", "NetworkPolicy") => {
            b.set_default("/spec/policyTypes", DefaultValue::Any);
            for dir in ["ingress", "egress"] {
                b.set_default(&format!("/spec/{dir}/*/ports/*/protocol"), v(json!("TCP")));
            }
        }
        ("autoscaling", "HorizontalPodAutoscaler") => {
            b.set_default("/spec/minReplicas", v(json!(1)));
            b.set_default(
                "/spec/behavior/scaleDown/stabilizationWindowSeconds",
                v(json!(300)),
            );
            b.set_default("/spec/behavior/scaleDown/selectPolicy", v(json!("Max")));
            b.set_default("/spec/behavior/scaleDown/policies", DefaultValue::Any);
            b.set_default(
                "/spec/behavior/scaleUp/stabilizationWindowSeconds",
                v(json!(0)),
            );
            b.set_default("/spec/behavior/scaleUp/selectPolicy", v(json!("Max")));
            b.set_default("/spec/behavior/scaleUp/policies", DefaultValue::Any);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff::normalize::schema_for;

    fn default_at(group: &str, kind: &str, path: &[&str]) -> Option<DefaultValue> {
        let node = path
            .iter()
            .try_fold(schema_for(group, kind), |n, k| n.child(k))?;
        node.default.clone()
    }

    #[test]
    fn workload_defaults() {
        let d = default_at("apps", "Deployment", &["spec", "progressDeadlineSeconds"]).unwrap();
        assert!(d.matches(&json!(600), None));
        assert!(!d.matches(&json!(300), None));
        let tmp = default_at(
            "apps",
            "Deployment",
            &[
                "spec",
                "template",
                "spec",
                "containers",
                "*",
                "terminationMessagePath",
            ],
        )
        .unwrap();
        assert!(tmp.matches(&json!("/dev/termination-log"), None));
        for (g, k, p) in [
            ("apps", "StatefulSet", vec!["spec", "podManagementPolicy"]),
            ("apps", "DaemonSet", vec!["spec", "updateStrategy", "type"]),
            ("apps", "ReplicaSet", vec!["spec", "replicas"]),
            ("batch", "Job", vec!["spec", "backoffLimit"]),
            ("batch", "CronJob", vec!["spec", "concurrencyPolicy"]),
            (
                "batch",
                "CronJob",
                vec![
                    "spec",
                    "jobTemplate",
                    "spec",
                    "template",
                    "spec",
                    "dnsPolicy",
                ],
            ),
            ("", "Pod", vec!["spec", "schedulerName"]),
            ("", "Service", vec!["spec", "clusterIP"]),
            (
                "networking.k8s.io",
                "Ingress",
                vec!["spec", "ingressClassName"],
            ),
            ("", "Secret", vec!["type"]),
            ("", "ServiceAccount", vec!["secrets"]),
            ("", "PersistentVolumeClaim", vec!["spec", "volumeMode"]),
            (
                "autoscaling",
                "HorizontalPodAutoscaler",
                vec!["spec", "minReplicas"],
            ),
            (
                "networking.k8s.io",
                "NetworkPolicy",
                vec!["spec", "policyTypes"],
            ),
            (
                "rbac.authorization.k8s.io",
                "Role",
                vec!["metadata", "finalizers"],
            ),
            (
                "rbac.authorization.k8s.io",
                "ClusterRoleBinding",
                vec!["metadata", "finalizers"],
            ),
            (
                "",
                "ConfigMap",
                vec!["metadata", "annotations", "meta.helm.sh/release-name"],
            ),
        ] {
            assert!(default_at(g, k, &p).is_some(), "{k} {p:?}");
        }
    }

    #[test]
    fn sibling_and_image_defaults() {
        let parent = json!({"port": 80, "image": "nginx"});
        let p = parent.as_object();
        assert!(DefaultValue::SameAs("port").matches(&json!(80), p));
        assert!(DefaultValue::SameAs("port").matches(&json!("80"), p));
        assert!(!DefaultValue::SameAs("port").matches(&json!(8080), p));
        assert!(DefaultValue::ImagePullPolicy.matches(&json!("Always"), p));
        let tagged = json!({"image": "registry:5000/app:1.2"});
        assert!(DefaultValue::ImagePullPolicy.matches(&json!("IfNotPresent"), tagged.as_object()));
        assert!(!DefaultValue::ImagePullPolicy.matches(&json!("Always"), tagged.as_object()));
        let digest = json!({"image": "app@sha256:abc"});
        assert!(DefaultValue::ImagePullPolicy.matches(&json!("IfNotPresent"), digest.as_object()));
    }

    #[test]
    fn object_default_matches_whole_subtree() {
        let d = DefaultValue::Value(json!({}));
        assert!(d.matches(&json!({}), None));
        assert!(!d.matches(&json!({"runAsUser": 0}), None));
    }
}
