//! Field-level comparison of one desired object with its live counterpart.
//!
//! [`compare_with_schema`] walks both raw objects together, guided by the kind's schema
//! ([`super::normalize`]): keyed lists are matched by their merge keys, scalars compared
//! canonically, server-managed fields skipped. Fields present only live go through the
//! rules of DESIGN.md ("Desired vs live"): ignore rules, server defaults, three-way
//! knowledge (last-applied / GitOps managers), controller ownership.
//!
//! Each difference becomes a [`RawChange`] with the JSON Pointers on both sides, the
//! attribution and the patch operation that reverts it.

use serde_json::{Map, Value};

use super::Options;
use super::defaults::DefaultValue;
use super::managed::{FieldElem, ManagedEntry, ManagedIndex, field_elem, key_elem, value_elem};
use super::normalize::{ListType, ScalarType, SchemaNode, is_empty, item_key, scalar_eq};
use crate::model::{Attribution, Category, Cause, ChangeOp, ResourceKey, Severity, Suppressed};
use crate::pattern::SegView;
use crate::redact::LAST_APPLIED;

/// One RFC 6902 operation that reverts a change, with its place in the patch order.
///
/// `guards` are `test` operations on the key fields of every keyed list item the path goes
/// through (`/spec/ports/2/name` = `"http"`): the index was found by key when the live
/// object was read, and a list that changed in between makes `kubectl patch` fail instead
/// of editing another item.
#[derive(Debug, Clone, PartialEq)]
pub enum PatchOp {
    Replace {
        path: String,
        value: Value,
        guards: Vec<(String, Value)>,
    },
    /// Add a map key (or a whole subtree) under an existing parent.
    Add {
        path: String,
        value: Value,
        guards: Vec<(String, Value)>,
    },
    /// Append an item to a list (`path` ends in `/-`).
    Append {
        path: String,
        value: Value,
        guards: Vec<(String, Value)>,
    },
    /// Remove a map key.
    Remove {
        path: String,
        guards: Vec<(String, Value)>,
    },
    /// Remove a list item; `test` guards that the index still holds the expected item.
    RemoveItem {
        path: String,
        test: Option<(String, Value)>,
        guards: Vec<(String, Value)>,
    },
}

/// One difference, before it is assembled into a [`crate::model::Drift`].
#[derive(Debug, Clone, PartialEq)]
pub struct RawChange {
    pub op: ChangeOp,
    pub live_path: String,
    pub desired_path: String,
    pub field: String,
    pub desired: Value,
    pub live: Value,
    pub category: Category,
    pub severity: Severity,
    pub cause: Cause,
    pub attribution: Option<Attribution>,
    pub note: Option<String>,
    pub patch: PatchOp,
    /// The expected-divergence rule that matched (environment comparisons).
    pub expected_rule: Option<std::sync::Arc<str>>,
}

/// The differences of one object pair.
#[derive(Debug, Default)]
pub struct ObjectDiff {
    pub changes: Vec<RawChange>,
    pub suppressed: Suppressed,
}

#[derive(Debug, Clone, Copy)]
enum Seg<'a> {
    Key(&'a str),
    Item {
        live: Option<usize>,
        desired: Option<usize>,
        /// The live item when there is one, else the desired item.
        value: &'a Value,
        list: &'a ListType,
    },
}

/// Which side a one-sided subtree is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OneSide {
    /// Present live (or in `to`) only.
    Live,
    /// Present in `from` only (environment comparisons).
    From,
}

struct Walker<'a> {
    opts: &'a Options,
    key: &'a ResourceKey,
    managed: Option<ManagedIndex>,
    /// Comparing environments: the `from` object's managedFields.
    managed_from: Option<ManagedIndex>,
    /// Live knows what was applied: a last-applied annotation or a GitOps applier's entry.
    three_way: bool,
    ignore_here: bool,
    segs: Vec<Seg<'a>>,
    out: ObjectDiff,
}

static ATOMIC: ListType = ListType::Atomic;

/// Compares one desired object with its live counterpart, guided by `schema`.
pub(crate) fn compare_with_schema(
    key: &ResourceKey,
    desired: &Value,
    live: &Value,
    opts: &Options,
    schema: &SchemaNode,
) -> ObjectDiff {
    let managed = ManagedIndex::from_object(live);
    let last_applied: Option<Value> = live
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(LAST_APPLIED))
        .and_then(Value::as_str)
        .and_then(|s| serde_json::from_str(s).ok());
    let three_way = opts.three_way
        && (last_applied.is_some()
            || managed.as_ref().is_some_and(|m| {
                m.entries
                    .iter()
                    .any(|e| opts.classifier.managers.is_gitops(&e.manager))
            }));
    let mut w = Walker {
        opts,
        key,
        managed,
        managed_from: if opts.symmetric {
            ManagedIndex::from_object(desired)
        } else {
            None
        },
        three_way,
        ignore_here: opts.ignore.applies_to(key),
        segs: Vec::with_capacity(16),
        out: ObjectDiff::default(),
    };
    let la = if opts.three_way {
        last_applied.as_ref()
    } else {
        None
    };
    w.walk(desired, live, Some(schema), la, false);
    w.out
}

impl<'a> Walker<'a> {
    fn walk(
        &mut self,
        d: &'a Value,
        l: &'a Value,
        s: Option<&'a SchemaNode>,
        la: Option<&'a Value>,
        user: bool,
    ) {
        if self.opts.symmetric
            && matches!(s.and_then(|n| n.default.as_ref()), Some(DefaultValue::Any))
        {
            // Server-computed on each side (a Service's clusterIP): never comparable.
            if d != l {
                self.out.suppressed.defaults += 1;
            }
            return;
        }
        match (d, l) {
            (Value::Object(dm), Value::Object(lm)) => self.walk_map(dm, lm, s, la),
            (Value::Array(da), Value::Array(lar)) => self.walk_list(da, lar, s, la),
            _ => {
                let ty = match s.map_or(ScalarType::Plain, |n| n.scalar) {
                    ScalarType::Plain if user => ScalarType::Text,
                    t => t,
                };
                if !scalar_eq(d, l, ty) {
                    self.changed(d, l);
                }
            }
        }
    }

    fn walk_map(
        &mut self,
        dm: &'a Map<String, Value>,
        lm: &'a Map<String, Value>,
        s: Option<&'a SchemaNode>,
        la: Option<&'a Value>,
    ) {
        let user = s.is_some_and(|n| n.user_map);
        for (k, dv) in dm {
            let cs = s.and_then(|n| n.child(k));
            if cs.is_some_and(|c| c.strip) {
                continue;
            }
            let la_child = la.and_then(|v| v.get(k));
            self.segs.push(Seg::Key(k));
            match lm.get(k) {
                Some(lv) if !is_empty(lv, user, cs) => {
                    if is_empty(dv, user, cs) {
                        self.one_side(lv, cs, la_child, Some(lm), OneSide::Live);
                    } else {
                        self.walk(dv, lv, cs, la_child, user);
                    }
                }
                _ => {
                    if !is_empty(dv, user, cs) {
                        if self.opts.symmetric {
                            self.one_side(dv, cs, None, Some(dm), OneSide::From);
                        } else {
                            self.removed(dv, la_child.is_some());
                        }
                    }
                }
            }
            self.segs.pop();
        }
        for (k, lv) in lm {
            if dm.contains_key(k) {
                continue;
            }
            let cs = s.and_then(|n| n.child(k));
            if cs.is_some_and(|c| c.strip) || is_empty(lv, user, cs) {
                continue;
            }
            self.segs.push(Seg::Key(k));
            self.one_side(lv, cs, la.and_then(|v| v.get(k)), Some(lm), OneSide::Live);
            self.segs.pop();
        }
    }

    fn walk_list(
        &mut self,
        da: &'a [Value],
        lar: &'a [Value],
        s: Option<&'a SchemaNode>,
        la: Option<&'a Value>,
    ) {
        let list = s.map_or(&ATOMIC, |n| &n.list);
        let item_s = s.and_then(|n| n.item());
        match list {
            ListType::Map(keys) => {
                if let (Some(dk), Some(lk)) = (unique_keys(da, keys), unique_keys(lar, keys)) {
                    let la_items = la.and_then(Value::as_array);
                    for (di, ditem) in da.iter().enumerate() {
                        let la_item = la_items.and_then(|items| {
                            items
                                .iter()
                                .find(|i| item_key(i, keys).as_deref() == Some(&dk[di]))
                        });
                        match lk.iter().position(|k| *k == dk[di]) {
                            Some(li) => {
                                self.segs.push(Seg::Item {
                                    live: Some(li),
                                    desired: Some(di),
                                    value: &lar[li],
                                    list,
                                });
                                self.walk(ditem, &lar[li], item_s, la_item, false);
                            }
                            None => {
                                self.segs.push(Seg::Item {
                                    live: None,
                                    desired: Some(di),
                                    value: ditem,
                                    list,
                                });
                                if self.opts.symmetric {
                                    self.only_in_from_unit(ditem);
                                } else {
                                    self.removed(ditem, la_item.is_some());
                                }
                            }
                        }
                        self.segs.pop();
                    }
                    for (li, litem) in lar.iter().enumerate() {
                        if dk.contains(&lk[li]) {
                            continue;
                        }
                        let la_item = la_items.and_then(|items| {
                            items
                                .iter()
                                .find(|i| item_key(i, keys).as_deref() == Some(&lk[li]))
                        });
                        self.segs.push(Seg::Item {
                            live: Some(li),
                            desired: None,
                            value: litem,
                            list,
                        });
                        self.live_only_unit(litem, la_item.is_some());
                        self.segs.pop();
                    }
                    return;
                }
                self.walk_atomic(da, lar, item_s, la);
            }
            ListType::Set => {
                if !same_set(da, lar) {
                    self.changed_list(da, lar);
                }
            }
            ListType::Atomic => self.walk_atomic(da, lar, item_s, la),
        }
    }

    fn changed_list(&mut self, da: &'a [Value], lar: &'a [Value]) {
        // `changed` takes values; wrap the slices once (only on a difference).
        let d = Value::Array(da.to_vec());
        let l = Value::Array(lar.to_vec());
        self.record_changed(d, l);
    }

    fn walk_atomic(
        &mut self,
        da: &'a [Value],
        lar: &'a [Value],
        item_s: Option<&'a SchemaNode>,
        la: Option<&'a Value>,
    ) {
        let scalars = da
            .iter()
            .chain(lar)
            .all(|v| !v.is_object() && !v.is_array());
        if scalars {
            let ty = item_s.map_or(ScalarType::Plain, |n| n.scalar);
            if da.len() != lar.len() || da.iter().zip(lar).any(|(a, b)| !scalar_eq(a, b, ty)) {
                self.changed_list(da, lar);
            }
            return;
        }
        let la_items = la.and_then(Value::as_array);
        let common = da.len().min(lar.len());
        for i in 0..common {
            self.segs.push(Seg::Item {
                live: Some(i),
                desired: Some(i),
                value: &lar[i],
                list: &ATOMIC,
            });
            self.walk(
                &da[i],
                &lar[i],
                item_s,
                la_items.and_then(|a| a.get(i)),
                false,
            );
            self.segs.pop();
        }
        for (i, ditem) in da.iter().enumerate().skip(common) {
            self.segs.push(Seg::Item {
                live: None,
                desired: Some(i),
                value: ditem,
                list: &ATOMIC,
            });
            if self.opts.symmetric {
                self.only_in_from_unit(ditem);
            } else {
                self.removed(ditem, false);
            }
            self.segs.pop();
        }
        for (i, litem) in lar.iter().enumerate().skip(common) {
            self.segs.push(Seg::Item {
                live: Some(i),
                desired: None,
                value: litem,
                list: &ATOMIC,
            });
            let in_la = la_items.and_then(|a| a.get(i)).is_some();
            self.live_only_unit(litem, in_la);
            self.segs.pop();
        }
    }

    /// A one-sided subtree (present live only, or — comparing two environments — present
    /// in `from` only): checked field by field against defaults, ignore rules and owners.
    /// Live-only subtrees are reported as one change when every field in them is drift;
    /// from-only subtrees always as one change (the patch must add the whole subtree).
    /// Returns true when everything under it was reported.
    fn one_side(
        &mut self,
        v: &'a Value,
        s: Option<&'a SchemaNode>,
        la: Option<&'a Value>,
        parent: Option<&'a Map<String, Value>>,
        side: OneSide,
    ) -> bool {
        if self.path_ignored() {
            self.out.suppressed.ignored += 1;
            return false;
        }
        if let Some(def) = s.and_then(|n| n.default.as_ref())
            && def.matches(v, parent)
        {
            self.out.suppressed.defaults += 1;
            return false;
        }
        let start = self.out.changes.len();
        let all = match (v, s.map_or(&ATOMIC, |n| &n.list)) {
            (Value::Object(m), _) => {
                let user_here = s.is_some_and(|n| n.user_map);
                let mut all = true;
                for (k, cv) in m {
                    let cs = s.and_then(|n| n.child(k));
                    if cs.is_some_and(|c| c.strip) || is_empty(cv, user_here, cs) {
                        continue;
                    }
                    self.segs.push(Seg::Key(k));
                    all &= self.one_side(cv, cs, la.and_then(|v| v.get(k)), Some(m), side);
                    self.segs.pop();
                }
                all
            }
            (Value::Array(items), list @ ListType::Map(keys)) => {
                let la_items = la.and_then(Value::as_array);
                let mut all = true;
                for (i, item) in items.iter().enumerate() {
                    let in_la = la_items.is_some_and(|a| {
                        let k = item_key(item, keys);
                        a.iter().any(|i| item_key(i, keys) == k)
                    });
                    let (live, desired) = match side {
                        OneSide::Live => (Some(i), None),
                        OneSide::From => (None, Some(i)),
                    };
                    self.segs.push(Seg::Item {
                        live,
                        desired,
                        value: item,
                        list,
                    });
                    all &= self.one_side_unit(item, in_la, side);
                    self.segs.pop();
                }
                all
            }
            _ => return self.one_side_unit(v, la.is_some(), side),
        };
        let added = self.out.changes.len() - start;
        let coalesce = match side {
            OneSide::Live => all && added > 1,
            OneSide::From => added > 0,
        };
        if coalesce && !self.segs.is_empty() {
            self.coalesce(start, v, side);
        }
        all
    }

    fn one_side_unit(&mut self, v: &'a Value, in_last_applied: bool, side: OneSide) -> bool {
        match side {
            OneSide::Live => self.live_only_unit(v, in_last_applied),
            OneSide::From => self.only_in_from_unit(v),
        }
    }

    /// Comparing environments: a field present in `from` only. Suppressed when `from`'s
    /// managedFields say only a controller set it; otherwise a `removed` change.
    fn only_in_from_unit(&mut self, v: &'a Value) -> bool {
        if self.path_ignored() {
            self.out.suppressed.ignored += 1;
            return false;
        }
        let owners: Vec<ManagedEntry> = match &self.managed_from {
            Some(m) => m
                .owners(&self.field_path(), true)
                .into_iter()
                .cloned()
                .collect(),
            None => Vec::new(),
        };
        let managers = &self.opts.classifier.managers;
        if !owners.is_empty() && owners.iter().all(|e| managers.is_controller(&e.manager)) {
            self.out.suppressed.controller += 1;
            return false;
        }
        let from = &self.opts.pair.0;
        let (cause, att, note) = match owners.first() {
            Some(e) => (
                managers.cause_of(&e.manager),
                Some(attribution(e)),
                Some(format!("set in {from} by {}", e.manager)),
            ),
            None => (Cause::Unknown, None, None),
        };
        if let Some(a) = &att
            && self.ignore_here
            && self.opts.ignore.ignores_manager(self.key, &a.manager)
        {
            self.out.suppressed.ignored += 1;
            return false;
        }
        self.push_change(ChangeOp::Removed, v.clone(), Value::Null, cause, att, note);
        true
    }

    /// Replaces the changes from `start` on (all under the current path) by one change
    /// for the whole subtree.
    fn coalesce(&mut self, start: usize, v: &'a Value, side: OneSide) {
        let parts: Vec<RawChange> = self.out.changes.drain(start..).collect();
        let best = parts
            .iter()
            .max_by(|a, b| {
                let ta = a.attribution.as_ref().and_then(|x| x.time.clone());
                let tb = b.attribution.as_ref().and_then(|x| x.time.clone());
                ta.cmp(&tb)
            })
            .cloned();
        let (cause, attribution, note) = match best {
            Some(b) => (b.cause, b.attribution, b.note),
            None => (Cause::Unknown, None, None),
        };
        match side {
            OneSide::Live => self.push_change(
                ChangeOp::Added,
                Value::Null,
                v.clone(),
                cause,
                attribution,
                note,
            ),
            OneSide::From => self.push_change(
                ChangeOp::Removed,
                v.clone(),
                Value::Null,
                cause,
                attribution,
                note,
            ),
        }
    }

    /// Decides a live-only leaf or whole list item. Returns true when it is reported.
    fn live_only_unit(&mut self, lv: &'a Value, in_last_applied: bool) -> bool {
        if self.path_ignored() {
            self.out.suppressed.ignored += 1;
            return false;
        }
        let managers = &self.opts.classifier.managers;
        let owners: Vec<ManagedEntry> = match &self.managed {
            Some(m) => m
                .owners(&self.field_path(), true)
                .into_iter()
                .cloned()
                .collect(),
            None => Vec::new(),
        };
        let not_pruned = "removed from desired but still live (not pruned)";
        if self.opts.three_way {
            if in_last_applied {
                let att = owners.iter().find(|e| managers.is_gitops(&e.manager));
                return self.report_added(
                    lv,
                    Cause::Gitops,
                    att.map(attribution),
                    Some(not_pruned),
                );
            }
            if let Some(e) = owners
                .iter()
                .find(|e| e.is_apply() && managers.is_gitops(&e.manager))
            {
                return self.report_added(
                    lv,
                    Cause::Gitops,
                    Some(attribution(e)),
                    Some(not_pruned),
                );
            }
        }
        if !owners.is_empty() && owners.iter().all(|e| managers.is_controller(&e.manager)) {
            self.out.suppressed.controller += 1;
            return false;
        }
        if let Some(e) = owners.iter().find(|e| managers.is_manual(&e.manager)) {
            return self.report_added(lv, Cause::Manual, Some(attribution(e)), None);
        }
        if self.opts.symmetric {
            // Both sides are live objects: what one side has and the other lacks is a
            // difference, whoever wrote it (controllers aside, above).
            return match owners.first() {
                Some(e) => {
                    let cause = managers.cause_of(&e.manager);
                    self.report_added(lv, cause, Some(attribution(e)), None)
                }
                None => self.report_added(lv, Cause::Unknown, None, None),
            };
        }
        if self.three_way && owners.iter().all(|e| managers.is_gitops(&e.manager)) {
            // Applied objects list what was applied; a field only the applier's Update
            // touched, and not in what it applied, was set by the server.
            self.out.suppressed.server_set += 1;
            return false;
        }
        if self.managed.is_some() && owners.is_empty() {
            self.out.suppressed.server_set += 1;
            return false;
        }
        match owners.first() {
            Some(e) => {
                let cause = managers.cause_of(&e.manager);
                self.report_added(lv, cause, Some(attribution(e)), None)
            }
            None => self.report_added(lv, Cause::Unknown, None, None),
        }
    }

    fn report_added(
        &mut self,
        lv: &'a Value,
        cause: Cause,
        att: Option<Attribution>,
        note: Option<&str>,
    ) -> bool {
        if let Some(a) = &att
            && self.ignore_here
            && self.opts.ignore.ignores_manager(self.key, &a.manager)
        {
            self.out.suppressed.ignored += 1;
            return false;
        }
        self.push_change(
            ChangeOp::Added,
            Value::Null,
            lv.clone(),
            cause,
            att,
            note.map(str::to_string),
        );
        true
    }

    fn changed(&mut self, d: &'a Value, l: &'a Value) {
        self.record_changed(d.clone(), l.clone());
    }

    fn record_changed(&mut self, d: Value, l: Value) {
        if self.path_ignored() {
            self.out.suppressed.ignored += 1;
            return;
        }
        let managers = &self.opts.classifier.managers;
        let owners: Vec<ManagedEntry> = match &self.managed {
            Some(m) => m
                .owners(&self.field_path(), true)
                .into_iter()
                .cloned()
                .collect(),
            None => Vec::new(),
        };
        if !owners.is_empty() && owners.iter().all(|e| managers.is_controller(&e.manager)) {
            self.out.suppressed.controller += 1;
            return;
        }
        let (cause, att, note) = match owners.first() {
            Some(e) if managers.is_gitops(&e.manager) && self.opts.symmetric => (
                Cause::Gitops,
                Some(attribution(e)),
                Some(format!(
                    "set by the GitOps applier in {}: the desired states differ",
                    self.opts.pair.1
                )),
            ),
            Some(e) if managers.is_gitops(&e.manager) => (
                Cause::Gitops,
                Some(attribution(e)),
                Some(
                    "live holds the last applied value: desired changed since (pending sync)"
                        .to_string(),
                ),
            ),
            Some(e) => (managers.cause_of(&e.manager), Some(attribution(e)), None),
            None => (Cause::Unknown, None, None),
        };
        if let Some(a) = &att
            && self.ignore_here
            && self.opts.ignore.ignores_manager(self.key, &a.manager)
        {
            self.out.suppressed.ignored += 1;
            return;
        }
        self.push_change(ChangeOp::Changed, d, l, cause, att, note);
    }

    /// A field present in desired, absent live.
    fn removed(&mut self, d: &'a Value, in_last_applied: bool) {
        if self.path_ignored() {
            self.out.suppressed.ignored += 1;
            return;
        }
        let managers = &self.opts.classifier.managers;
        let latest_manual = self
            .managed
            .as_ref()
            .and_then(|m| m.latest())
            .filter(|e| managers.is_manual(&e.manager))
            .map(attribution);
        let (cause, att, note) = if let Some(a) = latest_manual {
            let note = format!("removed live; last change to the object by {}", a.manager);
            (Cause::Manual, Some(a), Some(note))
        } else if self.three_way && !in_last_applied {
            (
                Cause::Gitops,
                None,
                Some("added to desired after the last apply (pending sync)".to_string()),
            )
        } else {
            (Cause::Unknown, None, None)
        };
        self.push_change(ChangeOp::Removed, d.clone(), Value::Null, cause, att, note);
    }

    fn push_change(
        &mut self,
        op: ChangeOp,
        desired: Value,
        live: Value,
        cause: Cause,
        attribution: Option<Attribution>,
        note: Option<String>,
    ) {
        let (live_path, desired_path) = self.pointers();
        let field = self.display_path();
        let desired_side = op == ChangeOp::Removed;
        let (category, severity) =
            self.with_views(desired_side, |v| self.opts.classifier.classify(self.key, v));
        let patch = self.patch_op(op, &desired, &live_path);
        let expected_rule = if self.opts.expected.is_empty() {
            None
        } else {
            self.with_views(desired_side, |v| self.opts.expected.path_rule(self.key, v))
        };
        self.out.changes.push(RawChange {
            op,
            live_path,
            desired_path,
            field,
            desired,
            live,
            category,
            severity,
            cause,
            attribution,
            note,
            patch,
            expected_rule,
        });
    }

    fn patch_op(&self, op: ChangeOp, desired: &Value, live_path: &str) -> PatchOp {
        let last = self.segs.last();
        // The item being removed is tested by `test`; its parents' items by the guards.
        let guards = self.key_guards(matches!(
            (op, last),
            (ChangeOp::Added, Some(Seg::Item { .. }))
        ));
        match op {
            ChangeOp::Changed => PatchOp::Replace {
                path: live_path.to_string(),
                value: desired.clone(),
                guards,
            },
            ChangeOp::Removed => match last {
                Some(Seg::Item { .. }) => PatchOp::Append {
                    path: live_path.to_string(),
                    value: desired.clone(),
                    guards,
                },
                _ => PatchOp::Add {
                    path: live_path.to_string(),
                    value: desired.clone(),
                    guards,
                },
            },
            ChangeOp::Added => match last {
                Some(Seg::Item { value, list, .. }) => {
                    let test = match list {
                        ListType::Map(keys) => keys.first().and_then(|(f, _)| {
                            value
                                .get(*f)
                                .map(|v| (format!("{live_path}/{}", escape(f)), v.clone()))
                        }),
                        ListType::Set => Some((live_path.to_string(), (*value).clone())),
                        ListType::Atomic => None,
                    };
                    PatchOp::RemoveItem {
                        path: live_path.to_string(),
                        test,
                        guards,
                    }
                }
                _ => PatchOp::Remove {
                    path: live_path.to_string(),
                    guards,
                },
            },
        }
    }

    /// `test`s of the key fields of the live keyed list items on the current path (all
    /// but the last segment when `skip_last`), outermost first.
    fn key_guards(&self, skip_last: bool) -> Vec<(String, Value)> {
        let n = self.segs.len() - usize::from(skip_last && !self.segs.is_empty());
        let mut live = String::new();
        let mut out = Vec::new();
        for s in &self.segs[..n] {
            match s {
                Seg::Key(k) => {
                    live.push('/');
                    live.push_str(&escape(k));
                }
                Seg::Item {
                    live: l,
                    value,
                    list,
                    ..
                } => {
                    let Some(i) = l else {
                        break;
                    };
                    live.push('/');
                    live.push_str(&i.to_string());
                    if let ListType::Map(keys) = list {
                        for (f, _) in keys.iter() {
                            if let Some(v) = value.get(*f) {
                                out.push((format!("{live}/{}", escape(f)), v.clone()));
                            }
                        }
                    }
                }
            }
        }
        out
    }

    fn path_ignored(&self) -> bool {
        if !self.ignore_here {
            return false;
        }
        self.with_views(false, |v| self.opts.ignore.ignores_path(self.key, v))
            || self.with_views(true, |v| self.opts.ignore.ignores_path(self.key, v))
    }

    /// Runs `f` on the current path as pattern-matching segments (live indices, or desired
    /// indices when `desired`, with key aliases).
    fn with_views<T>(&self, desired: bool, f: impl FnOnce(&[SegView<'_>]) -> T) -> T {
        let tokens = self.tokens(desired);
        let views: Vec<SegView<'_>> = tokens
            .iter()
            .map(|(t, a)| SegView {
                token: t,
                alias: a.as_deref(),
            })
            .collect();
        f(&views)
    }

    /// Path tokens (live indices, or desired indices when `desired`) with key aliases.
    fn tokens(&self, desired: bool) -> Vec<(String, Option<String>)> {
        self.segs
            .iter()
            .map(|s| match s {
                Seg::Key(k) => ((*k).to_string(), None),
                Seg::Item {
                    live,
                    desired: d,
                    value,
                    list,
                } => {
                    let idx = if desired { d.or(*live) } else { live.or(*d) };
                    let alias = match list {
                        ListType::Map(keys) => keys
                            .first()
                            .and_then(|(f, _)| value.get(*f))
                            .map(scalar_text),
                        ListType::Set => Some(scalar_text(value)),
                        ListType::Atomic => None,
                    };
                    (idx.map_or("-".to_string(), |i| i.to_string()), alias)
                }
            })
            .collect()
    }

    /// JSON Pointers into live (appends end in `/-`) and into desired.
    fn pointers(&self) -> (String, String) {
        let mut live = String::new();
        let mut desired = String::new();
        for s in &self.segs {
            match s {
                Seg::Key(k) => {
                    let e = escape(k);
                    live.push('/');
                    live.push_str(&e);
                    desired.push('/');
                    desired.push_str(&e);
                }
                Seg::Item {
                    live: l,
                    desired: d,
                    ..
                } => {
                    live.push('/');
                    live.push_str(&l.map_or("-".to_string(), |i| i.to_string()));
                    desired.push('/');
                    desired.push_str(&d.map_or("-".to_string(), |i| i.to_string()));
                }
            }
        }
        (live, desired)
    }

    /// `spec.template.spec.containers[name=web].env[name=DEBUG]`.
    fn display_path(&self) -> String {
        let mut out = String::new();
        for s in &self.segs {
            match s {
                Seg::Key(k) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    if k.contains(['.', '/', ' ', '[', ']']) {
                        out.push_str(&format!("[{}]", Value::String((*k).to_string())));
                    } else {
                        out.push_str(k);
                    }
                }
                Seg::Item {
                    live,
                    desired,
                    value,
                    list,
                } => match list {
                    ListType::Map(keys) => {
                        let parts: Vec<String> = keys
                            .iter()
                            .map(|(f, def)| {
                                let v = value
                                    .get(*f)
                                    .map(scalar_text)
                                    .or(def.map(str::to_string))
                                    .unwrap_or_default();
                                format!("{f}={v}")
                            })
                            .collect();
                        out.push_str(&format!("[{}]", parts.join(",")));
                    }
                    ListType::Set => out.push_str(&format!("[{}]", scalar_text(value))),
                    ListType::Atomic => {
                        let i = live.or(*desired).unwrap_or(0);
                        out.push_str(&format!("[{i}]"));
                    }
                },
            }
        }
        out
    }

    /// The path in managedFields syntax. Stops at atomic lists (owned as a whole).
    fn field_path(&self) -> Vec<FieldElem> {
        let mut out = Vec::with_capacity(self.segs.len());
        for s in &self.segs {
            match s {
                Seg::Key(k) => out.push(field_elem(k)),
                Seg::Item { value, list, .. } => match list {
                    ListType::Map(keys) => {
                        let mut m = Map::new();
                        for (f, def) in keys.iter() {
                            match (value.get(*f), def) {
                                (Some(v), _) => {
                                    m.insert((*f).to_string(), v.clone());
                                }
                                (None, Some(d)) => {
                                    m.insert((*f).to_string(), Value::String((*d).to_string()));
                                }
                                (None, None) => {}
                            }
                        }
                        out.push(key_elem(&m));
                    }
                    ListType::Set => out.push(value_elem(value)),
                    ListType::Atomic => break,
                },
            }
        }
        out
    }
}

fn attribution(e: &ManagedEntry) -> Attribution {
    Attribution {
        manager: e.manager.clone(),
        operation: e.operation.clone(),
        time: e.time.clone(),
        subresource: e.subresource.clone(),
    }
}

/// JSON Pointer escaping of one token.
pub(crate) fn escape(s: &str) -> String {
    if s.contains(['~', '/']) {
        s.replace('~', "~0").replace('/', "~1")
    } else {
        s.to_string()
    }
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Keys of all items, or `None` when an item has no key or two items share one.
fn unique_keys(items: &[Value], keys: &[(&str, Option<&str>)]) -> Option<Vec<String>> {
    let out: Vec<String> = items
        .iter()
        .map(|i| item_key(i, keys))
        .collect::<Option<Vec<_>>>()?;
    let mut sorted: Vec<&String> = out.iter().collect();
    sorted.sort();
    sorted.dedup();
    (sorted.len() == out.len()).then_some(out)
}

fn same_set(a: &[Value], b: &[Value]) -> bool {
    let canon = |v: &[Value]| {
        let mut s: Vec<String> = v.iter().map(scalar_text).collect();
        s.sort();
        s.dedup();
        s
    };
    canon(a) == canon(b)
}
