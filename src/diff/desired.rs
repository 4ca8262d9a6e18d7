//! The `from` (desired) side as a [`Comparison`](crate::diff::Comparison) reads it: a
//! whole [`Snapshot`], or a [`CompactSnapshot`] that keeps each object as its JSON text and
//! parses it again when it is compared (pure; no I/O).
//!
//! Why: a parsed `serde_json::Value` costs 10–20 times its text (every map is a B-tree
//! node of eleven slots), and the desired side is held for the whole comparison while the
//! live side streams past it. Kept as text, a 50,000-object desired side takes about its
//! file size instead of 400 MB; each object is parsed again (JSON, microseconds) when its
//! live counterpart arrives, and dropped after. CRDs stay parsed (the schema registry
//! reads them).

use std::borrow::Cow;
use std::collections::BTreeMap;

use crate::model::{MappedFrom, Object, Origin, ResourceKey, Snapshot};

/// What a comparison needs of its desired side.
pub trait DesiredIndex: Sync {
    /// Number of objects.
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The keys, in order.
    fn keys(&self) -> Box<dyn Iterator<Item = &ResourceKey> + '_>;
    /// One object, parsed (borrowed when it is held parsed).
    fn get(&self, key: &ResourceKey) -> Option<Cow<'_, Object>>;
    /// Where an object came from, without parsing it.
    fn origin(&self, key: &ResourceKey) -> Option<&Origin>;
    /// The objects held parsed (all of a [`Snapshot`]; the CRDs of a [`CompactSnapshot`]).
    fn parsed(&self) -> Box<dyn Iterator<Item = (&ResourceKey, &Object)> + '_>;
    /// A hash of one object's content, origin and mapping, computed when it was stored,
    /// without parsing it: equal hashes mean a comparison with it gives the same result
    /// (the daemon's result reuse, see [`crate::run`]). `None` for an absent key, or when
    /// the index keeps no hashes (a whole [`Snapshot`]: nothing is reused against it).
    fn content_hash(&self, key: &ResourceKey) -> Option<ContentHash> {
        let _ = key;
        None
    }
}

/// See [`DesiredIndex::content_hash`]: the first 16 bytes of a SHA-256.
pub type ContentHash = [u8; 16];

/// The [`ContentHash`] of an object held as `json`, with its origin and mapping.
fn content_hash_of(json: &str, origin: &Origin, mapped: Option<&MappedFrom>) -> ContentHash {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(json.as_bytes());
    h.update([0]);
    h.update(format!("{origin:?}\u{0}{mapped:?}").as_bytes());
    let d = h.finalize();
    let mut out = [0; 16];
    out.copy_from_slice(&d[..16]);
    out
}

impl DesiredIndex for Snapshot {
    fn len(&self) -> usize {
        self.objects.len()
    }
    fn keys(&self) -> Box<dyn Iterator<Item = &ResourceKey> + '_> {
        Box::new(self.objects.keys())
    }
    fn get(&self, key: &ResourceKey) -> Option<Cow<'_, Object>> {
        self.objects.get(key).map(Cow::Borrowed)
    }
    fn origin(&self, key: &ResourceKey) -> Option<&Origin> {
        self.objects.get(key).map(|o| &o.origin)
    }
    fn parsed(&self) -> Box<dyn Iterator<Item = (&ResourceKey, &Object)> + '_> {
        Box::new(self.objects.iter())
    }
}

/// One object of a [`CompactSnapshot`].
#[derive(Debug, Clone)]
enum Entry {
    /// Held parsed (CRDs), with its content hash when it could be serialized.
    Parsed(Object, Option<ContentHash>),
    /// Held as compact JSON text.
    Text {
        json: Box<str>,
        origin: Origin,
        mapped: Option<Box<MappedFrom>>,
        hash: ContentHash,
    },
}

fn is_crd_value(v: &serde_json::Value) -> bool {
    v.get("kind").and_then(serde_json::Value::as_str) == Some("CustomResourceDefinition")
}

impl Entry {
    fn new(obj: Object) -> Entry {
        let json = serde_json::to_string(&obj.value);
        if is_crd_value(&obj.value) {
            let hash = json
                .ok()
                .map(|j| content_hash_of(&j, &obj.origin, obj.mapped.as_deref()));
            return Entry::Parsed(obj, hash);
        }
        match json {
            Ok(json) => Entry::Text {
                hash: content_hash_of(&json, &obj.origin, obj.mapped.as_deref()),
                json: json.into_boxed_str(),
                origin: obj.origin,
                mapped: obj.mapped,
            },
            Err(_) => Entry::Parsed(obj, None),
        }
    }

    /// An entry from JSON text as [`Entry::new`] writes it (a file cache's), parsed only
    /// when it is a CRD; `None` when a CRD's text does not parse.
    fn from_text(json: &str, origin: Origin, crd: bool) -> Option<Entry> {
        if crd {
            let value = serde_json::from_str(json).ok()?;
            return Some(Entry::Parsed(
                Object::new(value, origin.clone()),
                Some(content_hash_of(json, &origin, None)),
            ));
        }
        Some(Entry::Text {
            hash: content_hash_of(json, &origin, None),
            json: json.into(),
            origin,
            mapped: None,
        })
    }

    fn origin(&self) -> &Origin {
        match self {
            Entry::Parsed(o, _) => &o.origin,
            Entry::Text { origin, .. } => origin,
        }
    }

    fn hash(&self) -> Option<ContentHash> {
        match self {
            Entry::Parsed(_, h) => *h,
            Entry::Text { hash, .. } => Some(*hash),
        }
    }
}

/// A desired side held compactly (see the module doc): same keys, same objects, same
/// origins as the [`Snapshot`] it stands for.
#[derive(Debug, Clone, Default)]
pub struct CompactSnapshot {
    objects: BTreeMap<ResourceKey, Entry>,
}

impl CompactSnapshot {
    /// Adds an object; when the key is taken, the object is not added and the first one's
    /// origin is returned (a duplicate).
    pub fn insert(&mut self, key: ResourceKey, obj: Object) -> Result<(), &Origin> {
        use std::collections::btree_map::Entry as Slot;
        match self.objects.entry(key) {
            Slot::Occupied(e) => Err(e.into_mut().origin()),
            Slot::Vacant(e) => {
                e.insert(Entry::new(obj));
                Ok(())
            }
        }
    }

    /// [`CompactSnapshot::insert`] of an object given as the compact JSON text
    /// `serde_json::to_string` wrote for it (a file cache's), without parsing it unless it
    /// is a CRD (`crd`); a CRD whose text does not parse is not added (`Ok(false)`).
    pub fn insert_text(
        &mut self,
        key: ResourceKey,
        json: &str,
        origin: Origin,
        crd: bool,
    ) -> Result<bool, &Origin> {
        use std::collections::btree_map::Entry as Slot;
        match self.objects.entry(key) {
            Slot::Occupied(e) => Err(e.into_mut().origin()),
            Slot::Vacant(e) => match Entry::from_text(json, origin, crd) {
                Some(entry) => {
                    e.insert(entry);
                    Ok(true)
                }
                None => Ok(false),
            },
        }
    }

    /// Whether the key is taken, and by what.
    pub fn origin_of(&self, key: &ResourceKey) -> Option<&Origin> {
        self.objects.get(key).map(Entry::origin)
    }

    /// Moves `other`'s objects in; for a key already taken, `on_duplicate(key, origin,
    /// first origin)` is called and the object is dropped.
    pub fn absorb(
        &mut self,
        other: CompactSnapshot,
        mut on_duplicate: impl FnMut(&ResourceKey, &Origin, &Origin),
    ) {
        use std::collections::btree_map::Entry as Slot;
        if self.objects.is_empty() {
            self.objects = other.objects;
            return;
        }
        for (key, entry) in other.objects {
            match self.objects.entry(key) {
                Slot::Occupied(e) => on_duplicate(e.key(), entry.origin(), e.get().origin()),
                Slot::Vacant(e) => {
                    e.insert(entry);
                }
            }
        }
    }

    /// A snapshot's objects, compacted one by one (each parsed value is dropped as soon as
    /// it is written as text).
    pub fn from_objects(objects: BTreeMap<ResourceKey, Object>) -> CompactSnapshot {
        CompactSnapshot {
            objects: objects
                .into_iter()
                .map(|(k, o)| (k, Entry::new(o)))
                .collect(),
        }
    }
}

impl DesiredIndex for CompactSnapshot {
    fn len(&self) -> usize {
        self.objects.len()
    }
    fn keys(&self) -> Box<dyn Iterator<Item = &ResourceKey> + '_> {
        Box::new(self.objects.keys())
    }
    fn get(&self, key: &ResourceKey) -> Option<Cow<'_, Object>> {
        match self.objects.get(key)? {
            Entry::Parsed(o, _) => Some(Cow::Borrowed(o)),
            Entry::Text {
                json,
                origin,
                mapped,
                ..
            } => match serde_json::from_str(json) {
                Ok(value) => Some(Cow::Owned(Object {
                    value,
                    origin: origin.clone(),
                    mapped: mapped.clone(),
                })),
                // Text this module wrote from a value always parses; never silently.
                Err(e) => {
                    tracing::error!(object = %key, "compacted desired object unreadable: {e}");
                    None
                }
            },
        }
    }
    fn origin(&self, key: &ResourceKey) -> Option<&Origin> {
        self.origin_of(key)
    }
    fn parsed(&self) -> Box<dyn Iterator<Item = (&ResourceKey, &Object)> + '_> {
        Box::new(self.objects.iter().filter_map(|(k, e)| match e {
            Entry::Parsed(o, _) => Some((k, o)),
            Entry::Text { .. } => None,
        }))
    }
    fn content_hash(&self, key: &ResourceKey) -> Option<ContentHash> {
        self.objects.get(key)?.hash()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::dump::{LoadOptions, load_text};

    #[test]
    fn compact_objects_read_back_as_they_were() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  f: \"1.5\"\n  n: \"7\"\nx: [1, 2.5, -3, 1e300, true, null, \"é\\u0001\"]\n---\napiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: widgets.example.com\nspec: {group: example.com}\n";
        let snap = load_text(text, "x.yaml", &LoadOptions::default());
        let compact = CompactSnapshot::from_objects(snap.objects.clone());
        assert_eq!(compact.len(), 2);
        for (k, o) in &snap.objects {
            let back = compact.get(k).unwrap();
            assert_eq!(back.value, o.value, "{k}");
            assert_eq!(back.origin, o.origin);
            assert_eq!(compact.origin(k), Some(&o.origin));
        }
        // Only the CRD is held parsed.
        let parsed: Vec<String> = compact.parsed().map(|(k, _)| k.kind.clone()).collect();
        assert_eq!(parsed, ["CustomResourceDefinition"]);
        let mut c = CompactSnapshot::default();
        let (k, o) = snap.objects.into_iter().next().unwrap();
        assert!(c.insert(k.clone(), o.clone()).is_ok());
        assert_eq!(c.insert(k, o.clone()), Err(&o.origin));
    }
}
