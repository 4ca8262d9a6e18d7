//! Normalization: what the engine knows about the shape of Kubernetes objects.
//!
//! Rather than rewriting whole objects into a canonical copy (which would double the
//! memory of an environment), the comparison walks the raw objects and consults a
//! per-kind [`SchemaNode`] tree as it goes. A node says:
//!
//! - whether the field is server-managed and never compared ([`SchemaNode::strip`]):
//!   `status`, `metadata.{uid, resourceVersion, generation, creationTimestamp,
//!   managedFields, selfLink}`, `last-applied-configuration`, `deployment.kubernetes.io/revision`;
//! - how a list is compared ([`ListType`]): as a map by its merge keys (containers by
//!   `name`, ports by `containerPort`+`protocol`, …), as a set (RBAC verbs), or atomically;
//! - how a scalar is compared ([`ScalarType`]): quantities (`1000m` = `1`, `1Gi` = `1024Mi`),
//!   int-or-string (`"8080"` = `8080`), text (label and data values: `true` = `"true"`);
//! - the server default of a field ([`defaults`](super::defaults)), so that a field present
//!   only live with its default value is not drift.
//!
//! `null`, absent, `{}` and `[]` are treated alike everywhere; `""` too, except in maps of
//! user data (labels, annotations, ConfigMap/Secret data) where an empty value is a value.

use std::collections::HashMap;
use std::sync::LazyLock;

use serde_json::Value;

use super::defaults::{self, DefaultValue};

/// How a list is compared.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum ListType {
    /// Compared item by item, in order (Kubernetes "atomic" lists).
    #[default]
    Atomic,
    /// A map keyed by these fields (`x-kubernetes-list-map-keys` / `patchMergeKey`). A key
    /// field may have a default used when an item omits it (`protocol: TCP`).
    Map(&'static [(&'static str, Option<&'static str>)]),
    /// An unordered set of scalars (RBAC verbs, finalizers).
    Set,
}

/// How a scalar is compared.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ScalarType {
    #[default]
    Plain,
    /// A resource quantity: `1000m` = `1`, `0.5` = `500m`, `1Gi` = `1024Mi`, `1e3` = `1k`.
    Quantity,
    /// int-or-string: `"8080"` = `8080`, `"25%"` stays text.
    IntOrString,
    /// A string field: `true` = `"true"`, `80` = `"80"` (YAML may type unquoted values).
    Text,
}

/// One node of the schema tree (see the module doc).
#[derive(Debug, Default)]
pub struct SchemaNode {
    children: HashMap<String, SchemaNode>,
    any: Option<Box<SchemaNode>>,
    pub list: ListType,
    pub scalar: ScalarType,
    pub default: Option<DefaultValue>,
    /// Never compared: server-managed.
    pub strip: bool,
    /// The children are user data: `""` is a value, not "empty".
    pub user_map: bool,
    /// In this user-data map, `""`, `null` and absent values are alike (Secret and
    /// ConfigMap data: the API server returns an empty value as `""`, clients send `null`).
    pub blank_is_absent: bool,
    /// The schema's `default` (OpenAPI / CRD structural schema), applied to the desired
    /// side of kinds whose schema the API server defaults with (CRDs).
    pub schema_default: Option<Value>,
    /// `x-kubernetes-preserve-unknown-fields`: what lies under it without a schema is
    /// compared as plain JSON (lists by position).
    pub preserve_unknown: bool,
    /// `x-kubernetes-embedded-resource`: an object with its own metadata rules.
    pub embedded: bool,
}

impl SchemaNode {
    /// The node of a map key or list item (`*`).
    pub fn child(&self, key: &str) -> Option<&SchemaNode> {
        self.children.get(key).or(self.any.as_deref())
    }

    /// The node of a list item.
    pub fn item(&self) -> Option<&SchemaNode> {
        self.any.as_deref()
    }

    /// The node of a named field, created if needed.
    pub(crate) fn child_mut(&mut self, key: &str) -> &mut SchemaNode {
        self.children.entry(key.to_string()).or_default()
    }

    /// The node of list items / map values, created if needed.
    pub(crate) fn any_mut(&mut self) -> &mut SchemaNode {
        self.any.get_or_insert_with(Default::default)
    }

    /// The named fields' nodes.
    pub fn children(&self) -> impl Iterator<Item = (&String, &SchemaNode)> {
        self.children.iter()
    }

    fn at_mut(&mut self, pointer: &str) -> &mut SchemaNode {
        let mut node = self;
        for seg in pointer.split('/').skip(1) {
            let seg = seg.replace("~1", "/").replace("~0", "~");
            node = if seg == "*" {
                node.any.get_or_insert_with(Default::default)
            } else {
                node.children.entry(seg).or_default()
            };
        }
        node
    }
}

/// Builds a kind's schema tree from pointer patterns (`/spec/template/spec/containers/*/image`).
#[derive(Default)]
pub struct SchemaBuilder {
    root: SchemaNode,
}

impl SchemaBuilder {
    /// Lays rules over an existing tree (one read from a schema).
    pub(crate) fn from_node(root: SchemaNode) -> Self {
        SchemaBuilder { root }
    }
    pub fn list(&mut self, pointer: &str, list: ListType) -> &mut Self {
        self.root.at_mut(pointer).list = list;
        self
    }
    pub fn scalar(&mut self, pointer: &str, scalar: ScalarType) -> &mut Self {
        self.root.at_mut(pointer).scalar = scalar;
        self
    }
    pub fn set_default(&mut self, pointer: &str, value: DefaultValue) -> &mut Self {
        self.root.at_mut(pointer).default = Some(value);
        self
    }
    pub(crate) fn strip(&mut self, pointer: &str) -> &mut Self {
        self.root.at_mut(pointer).strip = true;
        self
    }
    pub(crate) fn user_map(&mut self, pointer: &str) -> &mut Self {
        let n = self.root.at_mut(pointer);
        n.user_map = true;
        n.any.get_or_insert_with(Default::default).scalar = ScalarType::Text;
        self
    }
    /// `""`, `null` and absent alike in this user-data map.
    pub(crate) fn blank_is_absent(&mut self, pointer: &str) -> &mut Self {
        self.user_map(pointer);
        let n = self.root.at_mut(pointer);
        n.blank_is_absent = true;
        n.any_mut().blank_is_absent = true;
        self
    }
    pub fn build(self) -> SchemaNode {
        self.root
    }
}

/// Metadata rules shared by every object (`prefix` is `` for the object, or the path of an
/// embedded template's metadata).
pub(crate) fn metadata_rules(b: &mut SchemaBuilder, prefix: &str) {
    let m = format!("{prefix}/metadata");
    for f in [
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "managedFields",
        "selfLink",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "ownerReferences",
        "name",
        "namespace",
        "generateName",
    ] {
        b.strip(&format!("{m}/{f}"));
    }
    b.user_map(&format!("{m}/labels"));
    b.user_map(&format!("{m}/annotations"));
    for a in [
        "kubectl.kubernetes.io~1last-applied-configuration",
        "deployment.kubernetes.io~1revision",
    ] {
        b.strip(&format!("{m}/annotations/{a}"));
    }
    b.list(&format!("{m}/finalizers"), ListType::Set);
}

/// Pod spec rules, under `root` (`/spec` for a Pod, `/spec/template/spec` for a Deployment).
pub(crate) fn pod_spec_rules(b: &mut SchemaBuilder, root: &str) {
    const NAME: &[(&str, Option<&str>)] = &[("name", None)];
    for c in ["containers", "initContainers", "ephemeralContainers"] {
        let c = format!("{root}/{c}");
        b.list(&c, ListType::Map(NAME));
        b.list(
            &format!("{c}/*/ports"),
            ListType::Map(&[("containerPort", None), ("protocol", Some("TCP"))]),
        );
        b.list(&format!("{c}/*/env"), ListType::Map(NAME));
        b.scalar(&format!("{c}/*/env/*/value"), ScalarType::Text);
        b.list(
            &format!("{c}/*/volumeMounts"),
            ListType::Map(&[("mountPath", None)]),
        );
        b.list(
            &format!("{c}/*/volumeDevices"),
            ListType::Map(&[("devicePath", None)]),
        );
        b.list(
            &format!("{c}/*/resizePolicy"),
            ListType::Map(&[("resourceName", None)]),
        );
        for rl in ["limits", "requests"] {
            b.scalar(&format!("{c}/*/resources/{rl}/*"), ScalarType::Quantity);
        }
        for p in ["livenessProbe", "readinessProbe", "startupProbe"] {
            b.scalar(&format!("{c}/*/{p}/httpGet/port"), ScalarType::IntOrString);
            b.scalar(
                &format!("{c}/*/{p}/tcpSocket/port"),
                ScalarType::IntOrString,
            );
        }
        for h in ["postStart", "preStop"] {
            b.scalar(
                &format!("{c}/*/lifecycle/{h}/httpGet/port"),
                ScalarType::IntOrString,
            );
            b.scalar(
                &format!("{c}/*/lifecycle/{h}/tcpSocket/port"),
                ScalarType::IntOrString,
            );
        }
        b.list(
            &format!("{c}/*/securityContext/capabilities/add"),
            ListType::Set,
        );
        b.list(
            &format!("{c}/*/securityContext/capabilities/drop"),
            ListType::Set,
        );
    }
    b.list(&format!("{root}/volumes"), ListType::Map(NAME));
    b.scalar(
        &format!("{root}/volumes/*/emptyDir/sizeLimit"),
        ScalarType::Quantity,
    );
    b.list(&format!("{root}/imagePullSecrets"), ListType::Map(NAME));
    b.list(
        &format!("{root}/hostAliases"),
        ListType::Map(&[("ip", None)]),
    );
    b.list(&format!("{root}/resourceClaims"), ListType::Map(NAME));
    b.list(&format!("{root}/schedulingGates"), ListType::Map(NAME));
    b.list(
        &format!("{root}/topologySpreadConstraints"),
        ListType::Map(&[("topologyKey", None), ("whenUnsatisfiable", None)]),
    );
    b.user_map(&format!("{root}/nodeSelector"));
    b.scalar(&format!("{root}/overhead/*"), ScalarType::Quantity);
    for rl in ["limits", "requests"] {
        b.scalar(&format!("{root}/resources/{rl}/*"), ScalarType::Quantity);
    }
}

/// Where each workload kind keeps its pod spec.
pub(crate) const POD_SPEC_ROOTS: &[(&str, &str, &str)] = &[
    ("", "Pod", "/spec"),
    ("", "PodTemplate", "/template/spec"),
    ("", "ReplicationController", "/spec/template/spec"),
    ("apps", "Deployment", "/spec/template/spec"),
    ("apps", "StatefulSet", "/spec/template/spec"),
    ("apps", "DaemonSet", "/spec/template/spec"),
    ("apps", "ReplicaSet", "/spec/template/spec"),
    ("batch", "Job", "/spec/template/spec"),
    ("batch", "CronJob", "/spec/jobTemplate/spec/template/spec"),
];

/// The hand-written rules of a kind, laid over whatever a schema gave (see `crate::diff::schema`).
pub(crate) fn kind_rules(b: &mut SchemaBuilder, group: &str, kind: &str) {
    metadata_rules(b, "");
    b.strip("/status");
    b.strip("/apiVersion");
    b.strip("/kind");
    if let Some((_, _, root)) = POD_SPEC_ROOTS
        .iter()
        .find(|(g, k, _)| *g == group && *k == kind)
    {
        pod_spec_rules(b, root);
        if let Some(tpl) = root.strip_suffix("/spec") {
            metadata_rules(b, tpl);
            // A template's metadata has no server fields to strip, but the rules are harmless.
        }
        b.user_map("/spec/selector/matchLabels");
    }
    match (group, kind) {
        ("", "Service") => {
            b.list(
                "/spec/ports",
                ListType::Map(&[("port", None), ("protocol", Some("TCP"))]),
            );
            b.scalar("/spec/ports/*/targetPort", ScalarType::IntOrString);
            b.user_map("/spec/selector");
        }
        ("", "ConfigMap") => {
            b.blank_is_absent("/data");
            b.blank_is_absent("/binaryData");
        }
        ("", "Secret") => {
            b.blank_is_absent("/data");
            b.blank_is_absent("/stringData");
        }
        ("", "PersistentVolumeClaim") => {
            b.scalar("/spec/resources/requests/storage", ScalarType::Quantity);
            b.scalar("/spec/resources/limits/storage", ScalarType::Quantity);
        }
        ("", "ResourceQuota") => {
            b.scalar("/spec/hard/*", ScalarType::Quantity);
        }
        ("", "LimitRange") => {
            for f in [
                "default",
                "defaultRequest",
                "max",
                "min",
                "maxLimitRequestRatio",
            ] {
                b.scalar(&format!("/spec/limits/*/{f}/*"), ScalarType::Quantity);
            }
        }
        ("", "ServiceAccount") => {
            b.list("/secrets", ListType::Map(&[("name", None)]));
            b.list("/imagePullSecrets", ListType::Map(&[("name", None)]));
        }
        ("apps", "StatefulSet") => {
            b.scalar(
                "/spec/volumeClaimTemplates/*/spec/resources/requests/storage",
                ScalarType::Quantity,
            );
            b.strip("/spec/volumeClaimTemplates/*/status");
        }
        ("apps", "Deployment") | ("apps", "DaemonSet") => {
            b.scalar(
                "/spec/strategy/rollingUpdate/maxSurge",
                ScalarType::IntOrString,
            );
            b.scalar(
                "/spec/strategy/rollingUpdate/maxUnavailable",
                ScalarType::IntOrString,
            );
            b.scalar(
                "/spec/updateStrategy/rollingUpdate/maxSurge",
                ScalarType::IntOrString,
            );
            b.scalar(
                "/spec/updateStrategy/rollingUpdate/maxUnavailable",
                ScalarType::IntOrString,
            );
        }
        ("policy", "PodDisruptionBudget") => {
            b.scalar("/spec/minAvailable", ScalarType::IntOrString);
            b.scalar("/spec/maxUnavailable", ScalarType::IntOrString);
            b.user_map("/spec/selector/matchLabels");
        }
        ("rbac.authorization.k8s.io", "Role") | ("rbac.authorization.k8s.io", "ClusterRole") => {
            for f in [
                "verbs",
                "apiGroups",
                "resources",
                "resourceNames",
                "nonResourceURLs",
            ] {
                b.list(&format!("/rules/*/{f}"), ListType::Set);
            }
        }
        ("networking.k8s.io", "NetworkPolicy") => {
            b.list("/spec/policyTypes", ListType::Set);
            for dir in ["ingress", "egress"] {
                b.scalar(
                    &format!("/spec/{dir}/*/ports/*/port"),
                    ScalarType::IntOrString,
                );
            }
            b.user_map("/spec/podSelector/matchLabels");
        }
        ("autoscaling", "HorizontalPodAutoscaler") => {
            for m in [
                "resource",
                "containerResource",
                "pods",
                "object",
                "external",
            ] {
                b.scalar(
                    &format!("/spec/metrics/*/{m}/target/averageValue"),
                    ScalarType::Quantity,
                );
                b.scalar(
                    &format!("/spec/metrics/*/{m}/target/value"),
                    ScalarType::Quantity,
                );
            }
        }
        _ => {}
    }
    defaults::add_defaults(b, group, kind);
}

fn hand_kinds() -> Vec<(&'static str, &'static str)> {
    let mut kinds: Vec<(&str, &str)> = POD_SPEC_ROOTS.iter().map(|(g, k, _)| (*g, *k)).collect();
    kinds.extend([
        ("", "Service"),
        ("", "ConfigMap"),
        ("", "Secret"),
        ("", "ServiceAccount"),
        ("", "Namespace"),
        ("", "PersistentVolumeClaim"),
        ("", "ResourceQuota"),
        ("", "LimitRange"),
        ("networking.k8s.io", "Ingress"),
        ("networking.k8s.io", "NetworkPolicy"),
        ("rbac.authorization.k8s.io", "Role"),
        ("rbac.authorization.k8s.io", "ClusterRole"),
        ("rbac.authorization.k8s.io", "RoleBinding"),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
        ("autoscaling", "HorizontalPodAutoscaler"),
        ("policy", "PodDisruptionBudget"),
    ]);
    kinds
}

/// Whether the hand-written table has rules of its own for a kind.
pub(crate) fn hand_table_knows(group: &str, kind: &str) -> bool {
    hand_kinds().iter().any(|(g, k)| *g == group && *k == kind)
}

static SCHEMAS: LazyLock<HashMap<(String, String), SchemaNode>> = LazyLock::new(|| {
    hand_kinds()
        .into_iter()
        .map(|(g, k)| {
            let mut b = SchemaBuilder::default();
            kind_rules(&mut b, g, k);
            ((g.to_string(), k.to_string()), b.build())
        })
        .collect()
});

static GENERIC: LazyLock<SchemaNode> = LazyLock::new(|| {
    let mut b = SchemaBuilder::default();
    kind_rules(&mut b, "", "");
    b.build()
});

/// The hand-written table's tree of a kind; unknown kinds get the generic one (metadata
/// rules only). The engine itself reads [`crate::diff::schema`] (the bundled OpenAPI set and
/// CRDs, with this table laid over them); this stays as the fallback's own view.
pub fn schema_for(group: &str, kind: &str) -> &'static SchemaNode {
    SCHEMAS
        .get(&(group.to_string(), kind.to_string()))
        .unwrap_or(&GENERIC)
}

/// `null`, `{}`, `[]` — and `""` outside user-data maps — count as absent; so does a map
/// whose every value is absent (unless the map is itself user data: a ConfigMap's
/// `data: {KEY: ""}` holds a key). `in_user_map` says whether `v` is a value inside a
/// user-data map; `s` is `v`'s own schema node.
pub fn is_empty(v: &Value, in_user_map: bool, s: Option<&SchemaNode>) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => {
            if s.is_some_and(|n| n.user_map) || in_user_map {
                m.is_empty()
            } else {
                m.iter()
                    .all(|(k, c)| is_empty(c, false, s.and_then(|n| n.child(k))))
            }
        }
        Value::Array(a) => a.is_empty(),
        Value::String(x) => x.is_empty() && (!in_user_map || s.is_some_and(|n| n.blank_is_absent)),
        _ => false,
    }
}

/// Compares two scalars (or atomic values) the way the API server would see them.
pub(crate) fn scalar_eq(a: &Value, b: &Value, ty: ScalarType) -> bool {
    if a == b {
        return true;
    }
    match ty {
        ScalarType::Quantity => match (quantity_of(a), quantity_of(b)) {
            (Some(x), Some(y)) => x == y,
            _ => numbers_eq(a, b),
        },
        ScalarType::IntOrString => int_or_string(a) == int_or_string(b),
        ScalarType::Text => match (text_of(a), text_of(b)) {
            (Some(x), Some(y)) => x == y,
            _ => false,
        },
        ScalarType::Plain => numbers_eq(a, b),
    }
}

fn numbers_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => x == y,
            _ => false,
        },
        _ => false,
    }
}

fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// int-or-string canonical form: integers (also when written as digit strings) become
/// numbers, everything else stays as it is.
pub(crate) fn int_or_string(v: &Value) -> Value {
    match v {
        Value::String(s) => match s.trim().parse::<i64>() {
            Ok(n) => Value::from(n),
            Err(_) => v.clone(),
        },
        _ => v.clone(),
    }
}

fn quantity_of(v: &Value) -> Option<i128> {
    match v {
        Value::String(s) => parse_quantity(s),
        Value::Number(n) => parse_quantity(&n.to_string()),
        _ => None,
    }
}

/// Parses a Kubernetes resource quantity into an exact count of nano-units
/// (`1` = 1_000_000_000, `1m` = 1_000_000, `1Ki` = 1024 × 10⁹). Fractions below a
/// nano-unit are rounded up, as the API server rounds. `None` for a malformed quantity.
pub(crate) fn parse_quantity(s: &str) -> Option<i128> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    let (neg, body) = match s.as_bytes()[0] {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let num_end = body
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(body.len());
    let (num, suffix) = body.split_at(num_end);
    if num.is_empty() || num == "." || num.matches('.').count() > 1 {
        return None;
    }
    // Split mantissa into integer digits and a decimal exponent.
    let (int_part, frac_part) = num.split_once('.').unwrap_or((num, ""));
    let digits = format!("{int_part}{frac_part}");
    let mut exp10: i32 = -(frac_part.len() as i32);
    let mut mult: i128 = 1;
    match suffix {
        "" => {}
        "n" => exp10 -= 9,
        "u" => exp10 -= 6,
        "m" => exp10 -= 3,
        "k" => exp10 += 3,
        "M" => exp10 += 6,
        "G" => exp10 += 9,
        "T" => exp10 += 12,
        "P" => exp10 += 15,
        "E" => exp10 += 18,
        "Ki" => mult = 1 << 10,
        "Mi" => mult = 1 << 20,
        "Gi" => mult = 1 << 30,
        "Ti" => mult = 1 << 40,
        "Pi" => mult = 1 << 50,
        "Ei" => mult = 1 << 60,
        other => {
            let e = other.strip_prefix(['e', 'E'])?;
            exp10 += e.parse::<i32>().ok()?;
        }
    }
    let digits = digits.trim_start_matches('0');
    let mut value: i128 = if digits.is_empty() {
        0
    } else {
        if digits.len() > 30 {
            return None;
        }
        digits.parse().ok()?
    };
    value = value.checked_mul(mult)?;
    // Scale to nano-units: value × 10^(exp10 + 9).
    let scale = exp10 + 9;
    if scale >= 0 {
        value = value.checked_mul(10i128.checked_pow(scale as u32)?)?;
    } else {
        let div = 10i128.checked_pow((-scale) as u32)?;
        value = (value + div - 1) / div; // round up, as the API server does
    }
    Some(if neg { -value } else { value })
}

/// The key of a keyed-list item as a canonical string (`web`, `8080/TCP`), or `None`
/// when the item lacks a key field (the list is then compared atomically).
pub(crate) fn item_key(item: &Value, keys: &[(&str, Option<&str>)]) -> Option<String> {
    let obj = item.as_object()?;
    let mut out = String::new();
    for (i, (field, default)) in keys.iter().enumerate() {
        if i > 0 {
            out.push('/');
        }
        match obj.get(*field) {
            Some(Value::String(s)) => out.push_str(s),
            Some(Value::Number(n)) => out.push_str(&n.to_string()),
            Some(Value::Bool(b)) => out.push_str(&b.to_string()),
            None | Some(Value::Null) => out.push_str((*default)?),
            Some(_) => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn quantities() {
        let q = |s: &str| parse_quantity(s).unwrap();
        assert_eq!(q("1000m"), q("1"));
        assert_eq!(q("0.5"), q("500m"));
        assert_eq!(q("1Gi"), q("1024Mi"));
        assert_eq!(q("1e3"), q("1k"));
        assert_eq!(q("1E3"), q("1000"));
        assert_eq!(q("1.5Gi"), q("1536Mi"));
        assert_eq!(q("100n") * 10, q("1u"));
        assert_ne!(q("1G"), q("1Gi"));
        assert_eq!(q("+2"), q("2"));
        assert_eq!(q("-1"), -q("1"));
        assert!(parse_quantity("abc").is_none());
        assert!(parse_quantity("1Xi").is_none());
        assert!(parse_quantity("1..2").is_none());
        assert!(parse_quantity("").is_none());
        assert!(scalar_eq(&json!("1"), &json!(1), ScalarType::Quantity));
        assert!(scalar_eq(
            &json!("250m"),
            &json!(0.25),
            ScalarType::Quantity
        ));
        assert!(!scalar_eq(
            &json!("250m"),
            &json!("300m"),
            ScalarType::Quantity
        ));
    }

    #[test]
    fn int_or_string_and_text() {
        assert!(scalar_eq(
            &json!("8080"),
            &json!(8080),
            ScalarType::IntOrString
        ));
        assert!(!scalar_eq(
            &json!("http"),
            &json!(8080),
            ScalarType::IntOrString
        ));
        assert!(scalar_eq(
            &json!("25%"),
            &json!("25%"),
            ScalarType::IntOrString
        ));
        assert!(scalar_eq(&json!(true), &json!("true"), ScalarType::Text));
        assert!(scalar_eq(&json!(80), &json!("80"), ScalarType::Text));
        assert!(!scalar_eq(&json!("80"), &json!(80), ScalarType::Plain));
        assert!(scalar_eq(&json!(1), &json!(1.0), ScalarType::Plain));
    }

    #[test]
    fn empties() {
        assert!(is_empty(&json!(null), false, None));
        assert!(is_empty(&json!({}), false, None));
        assert!(is_empty(&json!([]), false, None));
        assert!(is_empty(&json!(""), false, None));
        assert!(!is_empty(&json!(""), true, None));
        assert!(!is_empty(&json!(0), false, None));
        assert!(is_empty(&json!({"a": {"b": null, "c": ""}}), false, None));
        let cm = schema_for("", "ConfigMap");
        assert!(!is_empty(&json!({"KEY": ""}), false, cm.child("data")));
    }

    #[test]
    fn merge_keys_of_built_in_lists() {
        let d = schema_for("apps", "Deployment");
        let containers = d
            .child("spec")
            .and_then(|n| n.child("template"))
            .and_then(|n| n.child("spec"))
            .and_then(|n| n.child("containers"))
            .unwrap();
        assert!(matches!(containers.list, ListType::Map([("name", None)])));
        let c = containers.item().unwrap();
        let ports = c.child("ports").unwrap();
        let ListType::Map(keys) = ports.list else {
            panic!("ports not keyed")
        };
        assert_eq!(
            item_key(&json!({"containerPort": 80}), keys).unwrap(),
            "80/TCP"
        );
        assert_eq!(
            item_key(&json!({"containerPort": 53, "protocol": "UDP"}), keys).unwrap(),
            "53/UDP"
        );
        for (field, key) in [("env", "name"), ("volumeMounts", "mountPath")] {
            let ListType::Map(keys) = c.child(field).unwrap().list else {
                panic!("{field}")
            };
            assert_eq!(keys[0].0, key);
        }
        let pod = containers_parent(d);
        for f in ["volumes", "imagePullSecrets", "initContainers"] {
            assert!(
                matches!(pod.child(f).unwrap().list, ListType::Map(_)),
                "{f}"
            );
        }
        let svc = schema_for("", "Service")
            .child("spec")
            .unwrap()
            .child("ports")
            .unwrap();
        let ListType::Map(keys) = svc.list else {
            panic!()
        };
        assert_eq!(item_key(&json!({"port": 443}), keys).unwrap(), "443/TCP");
        let cron = schema_for("batch", "CronJob");
        let p = [
            "spec",
            "jobTemplate",
            "spec",
            "template",
            "spec",
            "containers",
        ]
        .iter()
        .try_fold(cron, |n, k| n.child(k))
        .unwrap();
        assert!(matches!(p.list, ListType::Map(_)));
        let role = schema_for("rbac.authorization.k8s.io", "Role");
        let verbs = role
            .child("rules")
            .unwrap()
            .item()
            .unwrap()
            .child("verbs")
            .unwrap();
        assert_eq!(verbs.list, ListType::Set);
        assert!(item_key(&json!({"value": "x"}), &[("name", None)]).is_none());
    }

    fn containers_parent(d: &SchemaNode) -> &SchemaNode {
        ["spec", "template", "spec"]
            .iter()
            .try_fold(d, |n, k| n.child(k))
            .unwrap()
    }

    #[test]
    fn stripped_metadata() {
        let d = schema_for("example.com", "Widget");
        let m = d.child("metadata").unwrap();
        for f in [
            "uid",
            "resourceVersion",
            "generation",
            "creationTimestamp",
            "managedFields",
        ] {
            assert!(m.child(f).unwrap().strip, "{f}");
        }
        assert!(d.child("status").unwrap().strip);
        let ann = m.child("annotations").unwrap();
        assert!(ann.user_map);
        assert!(
            ann.child("kubectl.kubernetes.io/last-applied-configuration")
                .unwrap()
                .strip
        );
        assert!(!ann.child("team").unwrap().strip);
    }
}
