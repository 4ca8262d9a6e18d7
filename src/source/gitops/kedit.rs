//! Kustomization edits as `kustomize edit` makes them (Argo CD runs `kustomize edit set
//! nameprefix …`, `set image …`, `add label …` before `kustomize build`; Flux's
//! kustomize-controller makes the same changes in memory), and the kustomization Flux
//! generates for a directory that has none. Pure: file text in, file text out.

use serde_json::{Map, Value, json};

use crate::source::git::TreeFile;

/// The names a kustomization file may have, in the order kustomize looks for them.
pub(crate) const KUSTOMIZATION_FILES: [&str; 3] =
    ["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// The changes to make to a kustomization.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Edits {
    pub name_prefix: Option<String>,
    pub name_suffix: Option<String>,
    pub namespace: Option<String>,
    /// `images` entries (`name`, `newName`, `newTag`, `digest`), replacing an entry of the
    /// same name field by field.
    pub images: Vec<Map<String, Value>>,
    /// Labels added to `commonLabels` (selectors too), or with `labels_without_selector` to
    /// a `labels` entry that leaves selectors alone.
    pub common_labels: Map<String, Value>,
    pub labels_without_selector: bool,
    pub labels_include_templates: bool,
    pub common_annotations: Map<String, Value>,
    /// `replicas` entries (`name`, `count`), replacing an entry of the same name.
    pub replicas: Vec<Value>,
    /// Appended to `patches`.
    pub patches: Vec<Value>,
    /// Appended to `components`.
    pub components: Vec<String>,
}

impl Edits {
    pub(crate) fn is_empty(&self) -> bool {
        *self == Edits::default()
    }
}

fn dir_join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

/// The index of the kustomization file of `dir` in `files`.
pub(crate) fn find_kustomization(files: &[TreeFile], dir: &str) -> Option<usize> {
    KUSTOMIZATION_FILES.iter().find_map(|n| {
        let want = dir_join(dir, n);
        files.iter().position(|f| f.path == want)
    })
}

/// Parses an Argo CD / `kustomize edit set image` argument: `[NAME=]NEW_NAME[:TAG|@DIGEST]`
/// (`nginx:1.25`, `nginx=registry.example/nginx:1.25`, `app@sha256:…`) into an `images`
/// entry.
pub(crate) fn parse_image(arg: &str) -> Result<Map<String, Value>, String> {
    let (name, rest) = match arg.split_once('=') {
        Some((n, r)) => (Some(n.trim()), r.trim()),
        None => (None, arg.trim()),
    };
    if rest.is_empty() {
        return Err(format!("`{arg}` is not an image (NAME=NEW_NAME:TAG)"));
    }
    let (new_name, tag, digest) = if let Some((n, d)) = rest.split_once('@') {
        (n, None, Some(d))
    } else {
        // A tag's colon comes after the last slash (a registry may have a port).
        let slash = rest.rfind('/').map_or(0, |i| i + 1);
        match rest[slash..].rfind(':') {
            Some(i) => (&rest[..slash + i], Some(&rest[slash + i + 1..]), None),
            None => (rest, None, None),
        }
    };
    let mut m = Map::new();
    let name = name.unwrap_or(new_name);
    if name.is_empty() {
        return Err(format!("`{arg}` is not an image (NAME=NEW_NAME:TAG)"));
    }
    m.insert("name".into(), json!(name));
    if new_name != name && !new_name.is_empty() {
        m.insert("newName".into(), json!(new_name));
    }
    if let Some(t) = tag.filter(|t| !t.is_empty()) {
        m.insert("newTag".into(), json!(t));
    }
    if let Some(d) = digest.filter(|d| !d.is_empty()) {
        m.insert("digest".into(), json!(d));
    }
    Ok(m)
}

fn list<'a>(k: &'a mut Map<String, Value>, key: &str) -> &'a mut Vec<Value> {
    let entry = k.entry(key.to_string()).or_insert_with(|| json!([]));
    if !entry.is_array() {
        *entry = json!([]);
    }
    match entry {
        Value::Array(a) => a,
        _ => unreachable!("set to an array just above"),
    }
}

fn map<'a>(k: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    let entry = k.entry(key.to_string()).or_insert_with(|| json!({}));
    if !entry.is_object() {
        *entry = json!({});
    }
    match entry {
        Value::Object(m) => m,
        _ => unreachable!("set to an object just above"),
    }
}

/// Applies `edits` to a kustomization's text; the result is JSON (valid YAML).
///
/// # Errors
/// The text is not a YAML mapping.
pub(crate) fn apply(text: &str, edits: &Edits) -> Result<String, String> {
    let value: Value = if text.trim().is_empty() {
        json!({})
    } else {
        serde_saphyr::from_str(text).map_err(|e| format!("not valid YAML: {e}"))?
    };
    let Value::Object(mut k) = value else {
        return Err("not a YAML mapping".into());
    };
    for (key, v) in [
        ("namePrefix", &edits.name_prefix),
        ("nameSuffix", &edits.name_suffix),
        ("namespace", &edits.namespace),
    ] {
        if let Some(v) = v {
            k.insert(key.into(), json!(v));
        }
    }
    for img in &edits.images {
        let images = list(&mut k, "images");
        let name = img.get("name");
        match images
            .iter_mut()
            .find(|e| e.get("name") == name && name.is_some())
        {
            Some(Value::Object(existing)) => {
                for (f, v) in img {
                    existing.insert(f.clone(), v.clone());
                }
                if img.contains_key("newTag") {
                    existing.remove("digest");
                }
                if img.contains_key("digest") {
                    existing.remove("newTag");
                }
            }
            _ => images.push(Value::Object(img.clone())),
        }
    }
    if !edits.common_labels.is_empty() {
        if edits.labels_without_selector {
            let mut entry = Map::new();
            entry.insert("pairs".into(), Value::Object(edits.common_labels.clone()));
            entry.insert("includeSelectors".into(), json!(false));
            if edits.labels_include_templates {
                entry.insert("includeTemplates".into(), json!(true));
            }
            list(&mut k, "labels").push(Value::Object(entry));
        } else {
            let labels = map(&mut k, "commonLabels");
            for (n, v) in &edits.common_labels {
                labels.insert(n.clone(), v.clone());
            }
        }
    }
    if !edits.common_annotations.is_empty() {
        let ann = map(&mut k, "commonAnnotations");
        for (n, v) in &edits.common_annotations {
            ann.insert(n.clone(), v.clone());
        }
    }
    for r in &edits.replicas {
        let replicas = list(&mut k, "replicas");
        let name = r.get("name");
        replicas.retain(|e| e.get("name") != name);
        replicas.push(r.clone());
    }
    for p in &edits.patches {
        list(&mut k, "patches").push(p.clone());
    }
    for c in &edits.components {
        let components = list(&mut k, "components");
        if !components.iter().any(|e| e.as_str() == Some(c)) {
            components.push(json!(c));
        }
    }
    serde_json::to_string_pretty(&Value::Object(k)).map_err(|e| e.to_string())
}

/// Whether a file's text holds at least one Kubernetes object (`apiVersion` and `kind`).
fn has_object(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    crate::source::manifest::parse_manifest_text(text, false)
        .objects
        .iter()
        .any(|o| o.value.get("apiVersion").is_some() && o.value.get("kind").is_some())
}

/// The kustomization Flux generates for a directory without one: every YAML/JSON file
/// holding Kubernetes objects under it, recursively, except that a subdirectory with its
/// own kustomization is included as a directory (and not walked).
pub(crate) fn generated(files: &[TreeFile], dir: &str) -> String {
    let prefix = if dir.is_empty() {
        String::new()
    } else {
        format!("{dir}/")
    };
    let mut with_kustomization: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let rest = f.path.strip_prefix(&prefix)?;
            let (sub, name) = rest.rsplit_once('/')?;
            KUSTOMIZATION_FILES.contains(&name).then(|| sub.to_string())
        })
        .collect();
    with_kustomization.sort();
    // Only the outermost ones: a kustomization inside another's directory is its business.
    let mut outer: Vec<String> = Vec::new();
    for d in with_kustomization {
        if !outer.iter().any(|o| d.starts_with(&format!("{o}/"))) {
            outer.push(d);
        }
    }
    let mut resources: Vec<String> = outer.clone();
    let mut plain: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let rest = f.path.strip_prefix(&prefix)?;
            let hidden = rest.split('/').any(|s| s.starts_with('.'));
            let yaml = [".yaml", ".yml", ".json"].iter().any(|e| rest.ends_with(e));
            let under_outer = outer.iter().any(|o| rest.starts_with(&format!("{o}/")));
            (!hidden && yaml && !under_outer && has_object(&f.data)).then(|| rest.to_string())
        })
        .collect();
    plain.sort();
    resources.extend(plain);
    let doc = json!({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": resources,
    });
    serde_json::to_string_pretty(&doc).unwrap_or_default()
}

/// Edits the kustomization of `dir` in `files` (or, with `generate`, makes one when there
/// is none, as Flux does).
///
/// # Errors
/// No kustomization and `generate` is false; a kustomization that is not a YAML mapping.
pub(crate) fn edit_tree(
    files: &mut Vec<TreeFile>,
    dir: &str,
    edits: &Edits,
    generate: bool,
) -> Result<(), String> {
    let idx = match find_kustomization(files, dir) {
        Some(i) => i,
        None if generate => {
            files.push(TreeFile {
                path: dir_join(dir, "kustomization.yaml"),
                data: generated(files, dir).into_bytes(),
                executable: false,
            });
            files.len() - 1
        }
        None => {
            return Err(format!(
                "{} has no kustomization.yaml to apply the Kustomize options to",
                if dir.is_empty() { "." } else { dir }
            ));
        }
    };
    if edits.is_empty() {
        return Ok(());
    }
    let path = files[idx].path.clone();
    let text = String::from_utf8_lossy(&files[idx].data).into_owned();
    let edited = apply(&text, edits).map_err(|e| format!("{path}: {e}"))?;
    files[idx].data = edited.into_bytes();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tf(path: &str, data: &str) -> TreeFile {
        TreeFile {
            path: path.into(),
            data: data.as_bytes().to_vec(),
            executable: false,
        }
    }

    #[test]
    fn images_parse_as_kustomize_edit_does() {
        let m = parse_image("nginx:1.25").unwrap();
        assert_eq!(Value::Object(m), json!({"name": "nginx", "newTag": "1.25"}));
        let m = parse_image("nginx=registry.example:5000/web/nginx:1.25").unwrap();
        assert_eq!(
            Value::Object(m),
            json!({"name": "nginx", "newName": "registry.example:5000/web/nginx", "newTag": "1.25"})
        );
        let m = parse_image("app@sha256:abc").unwrap();
        assert_eq!(
            Value::Object(m),
            json!({"name": "app", "digest": "sha256:abc"})
        );
        assert!(parse_image("=").is_err());
    }

    #[test]
    fn edits_replace_and_append() {
        let text = "resources: [a.yaml]\nnamePrefix: old-\nimages:\n- name: web\n  newTag: '1'\ncommonLabels:\n  team: a\n";
        let mut labels = Map::new();
        labels.insert("env".into(), json!("prod"));
        let edits = Edits {
            name_prefix: Some("new-".into()),
            images: vec![parse_image("web:2").unwrap(), parse_image("db:5").unwrap()],
            common_labels: labels,
            components: vec!["../c".into()],
            ..Edits::default()
        };
        let out: Value = serde_json::from_str(&apply(text, &edits).unwrap()).unwrap();
        assert_eq!(out["namePrefix"], "new-");
        assert_eq!(
            out["images"],
            json!([{"name": "web", "newTag": "2"}, {"name": "db", "newTag": "5"}])
        );
        assert_eq!(out["commonLabels"], json!({"team": "a", "env": "prod"}));
        assert_eq!(out["components"], json!(["../c"]));
        assert_eq!(out["resources"], json!(["a.yaml"]));
    }

    #[test]
    fn flux_generates_a_kustomization() {
        let mut files = vec![
            tf(
                "apps/a.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n",
            ),
            tf("apps/notes.yaml", "just: data\n"),
            tf(
                "apps/sub/b.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\n",
            ),
            tf("apps/kz/kustomization.yaml", "resources: [c.yaml]\n"),
            tf(
                "apps/kz/c.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n",
            ),
            tf(
                "other/d.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: d}\n",
            ),
        ];
        edit_tree(&mut files, "apps", &Edits::default(), true).unwrap();
        let k: Value = serde_json::from_slice(&files.last().unwrap().data).unwrap();
        assert_eq!(k["resources"], json!(["kz", "a.yaml", "sub/b.yaml"]));
        // Argo CD's Kustomize options need a kustomization.
        let mut files = vec![tf("x/a.yaml", "kind: ConfigMap\n")];
        let e = edit_tree(
            &mut files,
            "x",
            &Edits {
                name_prefix: Some("p-".into()),
                ..Edits::default()
            },
            false,
        )
        .unwrap_err();
        assert!(e.contains("x has no kustomization.yaml"), "{e}");
    }
}
