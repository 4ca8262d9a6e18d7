//! The annotations with which Argo CD and Flux are told not to act on an object, read where
//! they mean "do not report" (desired vs live only: comparing environments, they say
//! nothing).
//!
//! | annotation | set on | envdrift |
//! | --- | --- | --- |
//! | `argocd.argoproj.io/compare-options: IgnoreExtraneous` | the live object | a live object not in Git is not reported as unmanaged (counted as `annotated` in the suppressed summary): Argo CD leaves it out of the sync status |
//! | `argocd.argoproj.io/sync-options: Prune=false` | the live object | a live object not in Git is still reported as unmanaged, at `info`, with a note: Argo CD still shows it out of sync ("the app will be out of sync if Argo CD expects a resource to be pruned") but will never delete it, so it is known and deliberate, not an accident to fix |
//! | `kustomize.toolkit.fluxcd.io/ssa: Ignore` | the manifest (or the live object) | Flux does not apply the object nor prune it: its live differences, its absence and its presence are not drift Flux would correct; not reported (`annotated`) |
//! | `kustomize.toolkit.fluxcd.io/reconcile: disabled` | the live object (or the manifest) | the same (Flux neither applies nor prunes it) |
//! | `kustomize.toolkit.fluxcd.io/prune: disabled` | the live object | like Argo CD's `Prune=false`: a live object not in Git is reported at `info`, with a note that Flux keeps it |
//! | `kustomize.toolkit.fluxcd.io/ssa: IfNotPresent` | the manifest (or the live object) | Flux creates the object once and never overrides it: only its absence is reported (missing); differences are not (`annotated`) |
//!
//! Argo CD writes option lists comma-separated (`IgnoreExtraneous,ServerSideDiff=true`,
//! `Prune=false,ServerSideApply=true`), white space trimmed; both are read so. Flux matches
//! its keys in labels as well as annotations (its `AnyInMetadata`), so envdrift does too.

use serde_json::Value;

pub const ARGO_COMPARE_OPTIONS: &str = "argocd.argoproj.io/compare-options";
pub const ARGO_SYNC_OPTIONS: &str = "argocd.argoproj.io/sync-options";
pub const FLUX_SSA: &str = "kustomize.toolkit.fluxcd.io/ssa";
pub const FLUX_RECONCILE: &str = "kustomize.toolkit.fluxcd.io/reconcile";
pub const FLUX_PRUNE: &str = "kustomize.toolkit.fluxcd.io/prune";

/// What Flux does with an object, by its annotations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FluxPolicy {
    /// Applied and pruned as usual.
    Apply,
    /// `ssa: Ignore` or `reconcile: disabled`: neither applied nor pruned.
    Ignore,
    /// `ssa: IfNotPresent`: created when absent, never overridden.
    IfNotPresent,
}

fn meta<'v>(v: &'v Value, field: &str, key: &str) -> Option<&'v str> {
    v.get("metadata")?.get(field)?.get(key)?.as_str()
}

fn annotation<'v>(v: &'v Value, key: &str) -> Option<&'v str> {
    meta(v, "annotations", key)
}

/// An annotation's or a label's value (Flux reads both).
fn in_metadata<'v>(v: &'v Value, key: &str) -> Option<&'v str> {
    annotation(v, key).or_else(|| meta(v, "labels", key))
}

/// The options of an Argo CD option list (`A,B=c`), trimmed.
fn options(list: &str) -> impl Iterator<Item = &str> {
    list.split(',').map(str::trim).filter(|o| !o.is_empty())
}

/// `argocd.argoproj.io/compare-options` lists `IgnoreExtraneous`.
pub(crate) fn argo_ignore_extraneous(v: &Value) -> bool {
    annotation(v, ARGO_COMPARE_OPTIONS).is_some_and(|l| options(l).any(|o| o == "IgnoreExtraneous"))
}

/// `argocd.argoproj.io/sync-options` lists `Prune=false`.
pub(crate) fn argo_no_prune(v: &Value) -> bool {
    annotation(v, ARGO_SYNC_OPTIONS).is_some_and(|l| options(l).any(|o| o == "Prune=false"))
}

/// Flux's `kustomize.toolkit.fluxcd.io/prune: disabled` (annotation or label).
pub(crate) fn flux_no_prune(v: &Value) -> bool {
    in_metadata(v, FLUX_PRUNE) == Some("disabled")
}

/// Flux's policy for an object whose sides are these (desired and/or live): `Ignore` when
/// either side says so, else `IfNotPresent` when either does.
pub(crate) fn flux_policy(sides: &[Option<&Value>]) -> FluxPolicy {
    let mut policy = FluxPolicy::Apply;
    for v in sides.iter().flatten() {
        if in_metadata(v, FLUX_SSA) == Some("Ignore")
            || in_metadata(v, FLUX_RECONCILE) == Some("disabled")
        {
            return FluxPolicy::Ignore;
        }
        if in_metadata(v, FLUX_SSA) == Some("IfNotPresent") {
            policy = FluxPolicy::IfNotPresent;
        }
    }
    policy
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn option_lists_are_read_as_argo_cd_writes_them() {
        let with = |k: &str, v: &str| json!({"metadata": {"annotations": {k: v}}});
        assert!(argo_ignore_extraneous(&with(
            ARGO_COMPARE_OPTIONS,
            "IgnoreExtraneous"
        )));
        assert!(argo_ignore_extraneous(&with(
            ARGO_COMPARE_OPTIONS,
            "ServerSideDiff=true, IgnoreExtraneous"
        )));
        assert!(!argo_ignore_extraneous(&with(
            ARGO_COMPARE_OPTIONS,
            "ServerSideDiff=true"
        )));
        assert!(!argo_ignore_extraneous(&with(
            ARGO_SYNC_OPTIONS,
            "IgnoreExtraneous"
        )));
        assert!(argo_no_prune(&with(ARGO_SYNC_OPTIONS, "Prune=false")));
        assert!(argo_no_prune(&with(
            ARGO_SYNC_OPTIONS,
            "ServerSideApply=true,Prune=false"
        )));
        assert!(!argo_no_prune(&with(ARGO_SYNC_OPTIONS, "Prune=confirm")));
        assert!(!argo_no_prune(&json!({"metadata": {}})));
        assert!(flux_no_prune(
            &json!({"metadata": {"annotations": {FLUX_PRUNE: "disabled"}}})
        ));
        assert!(flux_no_prune(
            &json!({"metadata": {"labels": {FLUX_PRUNE: "disabled"}}})
        ));
        assert!(!flux_no_prune(
            &json!({"metadata": {"annotations": {FLUX_PRUNE: "enabled"}}})
        ));
    }

    #[test]
    fn flux_policies_from_either_side() {
        let ann = |k: &str, v: &str| json!({"metadata": {"annotations": {k: v}}});
        let label = |k: &str, v: &str| json!({"metadata": {"labels": {k: v}}});
        let plain = json!({"metadata": {"name": "x"}});
        assert_eq!(flux_policy(&[Some(&plain), None]), FluxPolicy::Apply);
        assert_eq!(
            flux_policy(&[Some(&ann(FLUX_SSA, "Ignore")), Some(&plain)]),
            FluxPolicy::Ignore
        );
        assert_eq!(
            flux_policy(&[Some(&plain), Some(&label(FLUX_RECONCILE, "disabled"))]),
            FluxPolicy::Ignore
        );
        assert_eq!(
            flux_policy(&[Some(&ann(FLUX_SSA, "IfNotPresent")), None]),
            FluxPolicy::IfNotPresent
        );
        assert_eq!(
            flux_policy(&[
                Some(&ann(FLUX_SSA, "IfNotPresent")),
                Some(&ann(FLUX_SSA, "Ignore"))
            ]),
            FluxPolicy::Ignore
        );
        assert_eq!(
            flux_policy(&[Some(&ann(FLUX_SSA, "Merge"))]),
            FluxPolicy::Apply
        );
    }
}
