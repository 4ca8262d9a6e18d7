//! The comparison matrix of the web page (`/comparisons/{name}`): per comparison, the
//! latest scan's state of every resource that is not equal on both sides — `differs`,
//! `expected` (every difference matched an expected-divergence rule; such resources make no
//! drift, so they are only here), `only-in-from`, `only-in-to` — with how many fields differ,
//! how many of them are expected and the rules that matched. Equal resources are not stored,
//! so a 50k-object comparison costs one row per differing resource. Replaced as a whole by
//! each full scan; read a page at a time.
//!
//! Every query is a plain constant in the SQL both SQLite and PostgreSQL accept.

use super::sql::{Exec as _, SqlError, args};

use super::{Store, StoreError, StoreReader};

/// One resource of a comparison's matrix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatrixEntry {
    /// `Kind namespace/name` (as drifts name it).
    pub resource: String,
    /// `differs`, `expected`, `only-in-from` or `only-in-to`.
    pub state: String,
    /// Fields that differ (expected ones included).
    pub differing: i64,
    /// Of those, expected divergences.
    pub expected: i64,
    /// The expected-divergence rules that matched, `; `-separated (empty when none).
    pub rules: String,
}

const CLEAR: &str = "DELETE FROM comparison_resources WHERE target = ?1";
const INSERT: &str = "INSERT INTO comparison_resources(target, resource, state, differing, expected, rules, scan_id)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
     ON CONFLICT (target, resource) DO UPDATE SET state = excluded.state, differing = excluded.differing,
       expected = excluded.expected, rules = excluded.rules, scan_id = excluded.scan_id";
const PAGE: &str = "SELECT resource, state, differing, expected, rules FROM comparison_resources
     WHERE target = ?1 ORDER BY resource LIMIT ?2 OFFSET ?3";
const COUNTS: &str = "SELECT state, COUNT(*) FROM comparison_resources WHERE target = ?1 GROUP BY state ORDER BY state";

impl Store {
    /// Replaces comparison `target`'s matrix with `entries` (from scan `scan_id`).
    ///
    /// # Errors
    /// The database failed (the previous matrix is kept).
    pub fn replace_matrix(
        &self,
        target: &str,
        scan_id: i64,
        entries: &[MatrixEntry],
    ) -> Result<(), StoreError> {
        let db = self.db();
        let what = "recording the comparison matrix";
        db.tx(what, |tx| {
            tx.execute(CLEAR, args![target]).map_err(db.err(what))?;
            for e in entries {
                tx.execute(
                    INSERT,
                    args![
                        target,
                        &e.resource,
                        &e.state,
                        e.differing,
                        e.expected,
                        &e.rules,
                        scan_id
                    ],
                )
                .map_err(db.err(what))?;
            }
            Ok(())
        })
    }
}

impl StoreReader {
    /// One page of comparison `target`'s matrix, by resource.
    ///
    /// # Errors
    /// The database failed.
    pub fn matrix(
        &self,
        target: &str,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<MatrixEntry>, StoreError> {
        let what = "reading the comparison matrix";
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let offset = i64::try_from(offset).unwrap_or(i64::MAX);
        self.db
            .with(|c| {
                c.query(PAGE, args![target, limit, offset])?
                    .iter()
                    .map(|r| {
                        Ok(MatrixEntry {
                            resource: r.get(0)?,
                            state: r.get(1)?,
                            differing: r.get(2)?,
                            expected: r.get(3)?,
                            rules: r.get(4)?,
                        })
                    })
                    .collect::<Result<Vec<_>, SqlError>>()
            })
            .map_err(self.db.err(what))
    }

    /// How many resources of comparison `target`'s matrix are in each state.
    ///
    /// # Errors
    /// The database failed.
    pub fn matrix_counts(&self, target: &str) -> Result<Vec<(String, i64)>, StoreError> {
        let what = "counting the comparison matrix";
        self.db
            .with(|c| {
                c.query(COUNTS, args![target])?
                    .iter()
                    .map(|r| Ok((r.get(0)?, r.get(1)?)))
                    .collect::<Result<Vec<_>, SqlError>>()
            })
            .map_err(self.db.err(what))
    }
}

#[cfg(test)]
mod tests {
    use super::super::*;

    fn e(resource: &str, state: &str) -> MatrixEntry {
        MatrixEntry {
            resource: resource.into(),
            state: state.into(),
            differing: 1,
            expected: i64::from(state == "expected"),
            rules: if state == "expected" {
                "built-in: replicas".into()
            } else {
                String::new()
            },
        }
    }

    #[test]
    fn a_scan_replaces_the_matrix_and_pages_read_it_in_order() {
        let s = Store::open_in_memory().unwrap();
        s.replace_matrix(
            "a-vs-b",
            1,
            &[
                e("Deployment x/web", "expected"),
                e("ConfigMap x/app", "differs"),
            ],
        )
        .unwrap();
        s.replace_matrix("other", 1, &[e("Secret x/s", "only-in-to")])
            .unwrap();
        let page = s.matrix("a-vs-b", 0, 10).unwrap();
        assert_eq!(
            page.iter().map(|e| e.resource.as_str()).collect::<Vec<_>>(),
            ["ConfigMap x/app", "Deployment x/web"]
        );
        assert_eq!(page[1].rules, "built-in: replicas");
        assert_eq!(
            s.matrix("a-vs-b", 1, 1).unwrap()[0].resource,
            "Deployment x/web"
        );
        assert_eq!(
            s.matrix_counts("a-vs-b").unwrap(),
            [("differs".to_string(), 1), ("expected".to_string(), 1)]
        );
        // The next scan replaces it whole; other comparisons keep theirs.
        s.replace_matrix("a-vs-b", 2, &[e("Service x/web", "only-in-from")])
            .unwrap();
        assert_eq!(s.matrix("a-vs-b", 0, 10).unwrap().len(), 1);
        assert_eq!(s.matrix("other", 0, 10).unwrap().len(), 1);
    }
}
