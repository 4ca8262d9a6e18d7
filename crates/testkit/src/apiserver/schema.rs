//! The test server's own table of list semantics for the kinds it serves: which lists are
//! maps keyed by some of their items' fields, which are sets of scalars, and (everything
//! else) which are atomic.
//!
//! Written by hand from the Kubernetes API reference (v1.37): the `patchMergeKey` /
//! `x-kubernetes-list-type` / `x-kubernetes-list-map-keys` markers of the built-in types
//! (`// +listType=map`, `// +listMapKey=…` in `k8s.io/api`). It is deliberately independent
//! of envdrift's own schema table (`envdrift::diff::normalize`): a stand-in that shared
//! envdrift's logic would mirror its bugs and hide them. A later issue replaces this table
//! with the real OpenAPI v3 documents of the Kubernetes API.
//!
//! Where the strategic-merge key and the server-side-apply keys differ, the SSA list-map
//! keys are used for both (container ports: `containerPort` + `protocol`; Service ports:
//! `port` + `protocol`), since they identify items in `managedFields`. A key field with a
//! default (`protocol: TCP`) carries it, for items that omit it.

use std::collections::HashMap;
use std::sync::LazyLock;

/// The keys of a list-map item: a field name and the default used when an item omits it.
pub type MapKeys = &'static [(&'static str, Option<&'static str>)];

/// How a list merges and how its items appear in `fieldsV1`.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum ListType {
    /// Replaced as a whole; owned as one field (`f:args`).
    #[default]
    Atomic,
    /// Items keyed by these fields (`k:{"name":"web"}`).
    Map(MapKeys),
    /// A set of scalars (`v:"foregroundDeletion"`).
    Set,
}

/// One node of a kind's field tree.
#[derive(Debug, Default)]
pub struct ListNode {
    children: HashMap<String, ListNode>,
    item: Option<Box<ListNode>>,
    /// The list semantics when the value here is a list.
    pub list: ListType,
}

impl ListNode {
    /// The node of a field (or of a list item / map value when no field is named so).
    pub fn child(&self, key: &str) -> Option<&ListNode> {
        self.children.get(key).or(self.item.as_deref())
    }

    /// The node of a list item.
    pub fn item(&self) -> Option<&ListNode> {
        self.item.as_deref()
    }

    /// Sets the list type at a pointer pattern (`/spec/containers/*/ports`; `*` is any item).
    fn set(&mut self, pointer: &str, list: ListType) {
        let mut node = self;
        for seg in pointer.split('/').skip(1) {
            node = if seg == "*" {
                node.item.get_or_insert_with(Default::default)
            } else {
                node.children.entry(seg.to_string()).or_default()
            };
        }
        node.list = list;
    }
}

const BY_NAME: MapKeys = &[("name", None)];

/// `ObjectMeta` (at `prefix`: `` or a template's path).
fn object_meta(n: &mut ListNode, prefix: &str) {
    // finalizers: +listType=set; ownerReferences: +patchMergeKey=uid, +listMapKey=uid.
    n.set(&format!("{prefix}/metadata/finalizers"), ListType::Set);
    n.set(
        &format!("{prefix}/metadata/ownerReferences"),
        ListType::Map(&[("uid", None)]),
    );
}

/// `PodSpec` at `root`.
fn pod_spec(n: &mut ListNode, root: &str) {
    for c in ["containers", "initContainers", "ephemeralContainers"] {
        let c = format!("{root}/{c}");
        n.set(&c, ListType::Map(BY_NAME));
        // ContainerPort: +listMapKey=containerPort, +listMapKey=protocol (protocol defaults to TCP).
        n.set(
            &format!("{c}/*/ports"),
            ListType::Map(&[("containerPort", None), ("protocol", Some("TCP"))]),
        );
        n.set(&format!("{c}/*/env"), ListType::Map(BY_NAME));
        n.set(
            &format!("{c}/*/volumeMounts"),
            ListType::Map(&[("mountPath", None)]),
        );
        n.set(
            &format!("{c}/*/volumeDevices"),
            ListType::Map(&[("devicePath", None)]),
        );
        // command, args, envFrom, resizePolicy, capabilities.add/drop: atomic.
    }
    n.set(&format!("{root}/volumes"), ListType::Map(BY_NAME));
    n.set(&format!("{root}/imagePullSecrets"), ListType::Map(BY_NAME));
    n.set(
        &format!("{root}/hostAliases"),
        ListType::Map(&[("ip", None)]),
    );
    n.set(&format!("{root}/resourceClaims"), ListType::Map(BY_NAME));
    n.set(&format!("{root}/schedulingGates"), ListType::Map(BY_NAME));
    n.set(
        &format!("{root}/topologySpreadConstraints"),
        ListType::Map(&[("topologyKey", None), ("whenUnsatisfiable", None)]),
    );
    // tolerations, readinessGates, affinity terms: atomic.
}

/// The status conditions of most built-in kinds: +listType=map, +listMapKey=type.
fn conditions(n: &mut ListNode) {
    n.set("/status/conditions", ListType::Map(&[("type", None)]));
}

/// Where a workload kind keeps its pod template.
const POD_TEMPLATES: &[(&str, &str, &str)] = &[
    ("", "Pod", ""),
    ("", "PodTemplate", "/template"),
    ("", "ReplicationController", "/spec/template"),
    ("apps", "Deployment", "/spec/template"),
    ("apps", "StatefulSet", "/spec/template"),
    ("apps", "DaemonSet", "/spec/template"),
    ("apps", "ReplicaSet", "/spec/template"),
    ("batch", "Job", "/spec/template"),
    ("batch", "CronJob", "/spec/jobTemplate/spec/template"),
];

fn kind_tree(group: &str, kind: &str) -> ListNode {
    let mut n = ListNode::default();
    object_meta(&mut n, "");
    if let Some((_, _, tpl)) = POD_TEMPLATES
        .iter()
        .find(|(g, k, _)| *g == group && *k == kind)
    {
        if !tpl.is_empty() {
            object_meta(&mut n, tpl);
        }
        pod_spec(&mut n, &format!("{tpl}/spec"));
        conditions(&mut n);
    }
    match (group, kind) {
        ("", "Service") => {
            // ServicePort: +listMapKey=port, +listMapKey=protocol.
            n.set(
                "/spec/ports",
                ListType::Map(&[("port", None), ("protocol", Some("TCP"))]),
            );
            conditions(&mut n);
        }
        ("", "ServiceAccount") => {
            n.set("/secrets", ListType::Map(BY_NAME));
            n.set("/imagePullSecrets", ListType::Map(BY_NAME));
        }
        ("", "Namespace") => {
            n.set("/spec/finalizers", ListType::Set);
            conditions(&mut n);
        }
        ("", "PersistentVolumeClaim") | ("autoscaling", "HorizontalPodAutoscaler") => {
            conditions(&mut n);
        }
        ("policy", "PodDisruptionBudget") => conditions(&mut n),
        // RBAC rules and subjects, NetworkPolicy rules and policyTypes, Ingress rules: atomic.
        _ => {}
    }
    n
}

static KINDS: LazyLock<HashMap<(String, String), ListNode>> = LazyLock::new(|| {
    let mut kinds: Vec<(&str, &str)> = POD_TEMPLATES.iter().map(|(g, k, _)| (*g, *k)).collect();
    kinds.extend([
        ("", "Service"),
        ("", "ServiceAccount"),
        ("", "Namespace"),
        ("", "PersistentVolumeClaim"),
        ("autoscaling", "HorizontalPodAutoscaler"),
        ("policy", "PodDisruptionBudget"),
    ]);
    kinds
        .into_iter()
        .map(|(g, k)| ((g.to_string(), k.to_string()), kind_tree(g, k)))
        .collect()
});

static GENERIC: LazyLock<ListNode> = LazyLock::new(|| kind_tree("", ""));

/// The list semantics of a kind; other kinds (ConfigMaps, RBAC, CRDs…) get the metadata
/// rules only (every other list atomic).
pub fn schema_for(group: &str, kind: &str) -> &'static ListNode {
    KINDS
        .get(&(group.to_string(), kind.to_string()))
        .unwrap_or(&GENERIC)
}
