//! The comparison matrix a full comparison scan leaves in the store
//! (`src/store/matrix.rs`): every resource that is not equal on both sides, with its state —
//! `differs`, `expected` (fully expected: it makes no drift, so only the matrix shows it,
//! greyed with its rules), `only-in-from`, `only-in-to`. Built from the scan's drifts and
//! the engine's per-resource record of expected divergences; equal resources are not stored.

use std::collections::BTreeMap;

use super::scan::ScanOutput;
use super::{Daemon, Target};
use crate::model::DriftType;
use crate::store::{MatrixEntry, ScanOutcome};

/// The matrix rows of one comparison result, by resource.
pub(crate) fn entries(result: &crate::diff::DiffResult) -> Vec<MatrixEntry> {
    let mut expected: BTreeMap<&str, &crate::model::ExpectedResource> = BTreeMap::new();
    for e in &result.suppressed.expected_resources {
        expected.insert(e.resource.as_str(), e);
    }
    let mut out: BTreeMap<String, MatrixEntry> = BTreeMap::new();
    for d in &result.drifts {
        let resource = d.resource.to_string();
        let exp = expected.get(resource.as_str());
        let state = if d.expected {
            "expected"
        } else {
            match d.drift_type {
                DriftType::Missing => "only-in-from",
                DriftType::Unmanaged => "only-in-to",
                DriftType::Modified => "differs",
            }
        };
        let expected_fields = exp.map_or(0, |e| e.fields);
        let shown = d.changes.iter().filter(|c| !c.expected).count();
        out.insert(
            resource.clone(),
            MatrixEntry {
                resource,
                state: state.to_string(),
                differing: i64::try_from(shown.saturating_add(expected_fields)).unwrap_or(i64::MAX),
                expected: i64::try_from(expected_fields).unwrap_or(i64::MAX),
                rules: exp.map(|e| e.rules.join("; ")).unwrap_or_default(),
            },
        );
    }
    for e in result.suppressed.expected_resources.iter() {
        if e.other_fields == 0 && !out.contains_key(&e.resource) {
            let n = i64::try_from(e.fields).unwrap_or(i64::MAX);
            out.insert(
                e.resource.clone(),
                MatrixEntry {
                    resource: e.resource.clone(),
                    state: "expected".into(),
                    differing: n,
                    expected: n,
                    rules: e.rules.join("; "),
                },
            );
        }
    }
    out.into_values().collect()
}

impl Daemon {
    /// Replaces a comparison's matrix after a full scan that could see everything (a failed
    /// or partial scan keeps the previous one). A store error is logged: the matrix is a
    /// view, the scan is recorded already.
    pub(crate) fn record_matrix(&self, target: &Target, scan_id: i64, out: &ScanOutput) {
        let (Target::Comparison(name), ScanOutcome::Ok, Some(result)) =
            (target, out.outcome, out.result.as_ref())
        else {
            return;
        };
        let rows = entries(result);
        if let Err(e) = self.store.replace_matrix(name, scan_id, &rows) {
            tracing::warn!(target = %name, scan_id, error = %e, "recording the comparison matrix");
        }
    }
}
