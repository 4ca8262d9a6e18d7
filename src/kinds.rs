//! Facts about built-in kinds that several layers need: which kinds are cluster-scoped.

/// Built-in cluster-scoped kinds, as `(group, kind)`.
const CLUSTER_SCOPED: &[(&str, &str)] = &[
    ("", "Namespace"),
    ("", "Node"),
    ("", "PersistentVolume"),
    ("", "ComponentStatus"),
    ("rbac.authorization.k8s.io", "ClusterRole"),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
    ("storage.k8s.io", "StorageClass"),
    ("storage.k8s.io", "CSIDriver"),
    ("storage.k8s.io", "CSINode"),
    ("storage.k8s.io", "VolumeAttachment"),
    ("apiextensions.k8s.io", "CustomResourceDefinition"),
    ("apiregistration.k8s.io", "APIService"),
    (
        "admissionregistration.k8s.io",
        "MutatingWebhookConfiguration",
    ),
    (
        "admissionregistration.k8s.io",
        "ValidatingWebhookConfiguration",
    ),
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy"),
    (
        "admissionregistration.k8s.io",
        "ValidatingAdmissionPolicyBinding",
    ),
    ("admissionregistration.k8s.io", "MutatingAdmissionPolicy"),
    (
        "admissionregistration.k8s.io",
        "MutatingAdmissionPolicyBinding",
    ),
    ("scheduling.k8s.io", "PriorityClass"),
    ("networking.k8s.io", "IngressClass"),
    ("networking.k8s.io", "IPAddress"),
    ("networking.k8s.io", "ServiceCIDR"),
    ("node.k8s.io", "RuntimeClass"),
    ("flowcontrol.apiserver.k8s.io", "FlowSchema"),
    ("flowcontrol.apiserver.k8s.io", "PriorityLevelConfiguration"),
    ("certificates.k8s.io", "CertificateSigningRequest"),
    ("certificates.k8s.io", "ClusterTrustBundle"),
    ("resource.k8s.io", "DeviceClass"),
    ("cert-manager.io", "ClusterIssuer"),
];

/// True when `(group, kind)` is a built-in cluster-scoped kind or listed in `extra`
/// (`Kind` or `Kind.group`, from config).
pub(crate) fn is_cluster_scoped(group: &str, kind: &str, extra: &[String]) -> bool {
    CLUSTER_SCOPED
        .iter()
        .any(|(g, k)| *g == group && *k == kind)
        || extra.iter().any(|e| match e.split_once('.') {
            Some((k, g)) => k == kind && g == group,
            None => e == kind,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_table() {
        assert!(is_cluster_scoped(
            "rbac.authorization.k8s.io",
            "ClusterRole",
            &[]
        ));
        assert!(!is_cluster_scoped("rbac.authorization.k8s.io", "Role", &[]));
        assert!(is_cluster_scoped(
            "example.com",
            "Tenant",
            &["Tenant.example.com".into()]
        ));
        assert!(!is_cluster_scoped(
            "other.com",
            "Tenant",
            &["Tenant.example.com".into()]
        ));
    }
}
