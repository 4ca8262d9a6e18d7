//! Report runs, retention (pruning) and the counts reports and metrics are made of.

use super::sql::{Exec, SqlError, args};

use super::drifts::severity_of;
use super::{
    DriftStatus, EventKind, OpenCount, OutboxState, OutboxWrite, Store, StoreError, StoreReader,
};

impl Store {
    /// Records a report run together with the alerts it queued.
    pub fn record_report(
        &self,
        name: &str,
        at: &str,
        outbox: &[OutboxWrite],
    ) -> Result<(), StoreError> {
        let db = self.db();
        db.tx("recording a report", |tx| {
            tx.execute(
                "INSERT INTO report_runs(name, last_run_at) VALUES (?1, ?2)
                 ON CONFLICT(name) DO UPDATE SET last_run_at = excluded.last_run_at",
                args![name, at],
            )
            .map_err(db.err("recording a report"))?;
            for o in outbox {
                super::outbox::insert(tx, o, at).map_err(db.err("queueing a report"))?;
            }
            Ok(())
        })
    }

    /// Deletes scans (and snapshot hashes no scan refers to) older than `before`, and sent
    /// alerts older than it (with their Slack posts). Open drifts and their history are kept.
    pub fn prune(&self, before: &str) -> Result<usize, StoreError> {
        let db = self.db();
        db.tx("pruning", |tx| {
            let scans = tx
                .execute(
                    "DELETE FROM scans WHERE started_at < ?1 AND id NOT IN
                        (SELECT MAX(id) FROM scans GROUP BY target)",
                    args![before],
                )
                .map_err(db.err("pruning scans"))?;
            tx.execute(
                "DELETE FROM snapshots WHERE hash NOT IN (SELECT snapshot_hash FROM scans WHERE snapshot_hash IS NOT NULL)",
                &[],
            )
            .map_err(db.err("pruning snapshots"))?;
            tx.execute(
                "DELETE FROM outbox WHERE state = ?2 AND sent_at < ?1",
                args![before, OutboxState::Sent],
            )
            .map_err(db.err("pruning the outbox"))?;
            super::slack_refs::prune_posts(tx).map_err(db.err("pruning Slack posts"))?;
            Ok(usize::try_from(scans).unwrap_or(usize::MAX))
        })
    }
}

impl StoreReader {
    /// Number of drifts of a target opened / resolved since a time (reports).
    pub fn counts_since(&self, target: &str, since: &str) -> Result<(i64, i64), StoreError> {
        self.db
            .with(|c| {
                let mut count = |event: EventKind| -> Result<i64, SqlError> {
                    c.query_value(
                        "SELECT COUNT(*) FROM drift_events e JOIN drifts d ON d.id = e.drift_id
                         WHERE d.target = ?1 AND e.event = ?2 AND e.at >= ?3",
                        args![target, event, since],
                    )
                };
                Ok((count(EventKind::Opened)?, count(EventKind::Resolved)?))
            })
            .map_err(self.db.err("counting drift events"))
    }

    /// When a report last ran.
    pub fn report_last_run(&self, name: &str) -> Result<Option<String>, StoreError> {
        self.db
            .with(|c| {
                c.query_opt(
                    "SELECT last_run_at FROM report_runs WHERE name = ?1",
                    args![name],
                )?
                .map(|r| r.get(0))
                .transpose()
            })
            .map_err(self.db.err("reading report runs"))
    }

    /// Open drift counts by target, severity and categories (metrics, environments API).
    pub fn open_counts(&self) -> Result<Vec<OpenCount>, StoreError> {
        self.db
            .with(|c| {
                c.query(
                    "SELECT target, severity, categories FROM drifts WHERE status = ?1",
                    args![DriftStatus::Open],
                )?
                .iter()
                .map(|r| {
                    let cats: String = r.get("categories")?;
                    Ok(OpenCount {
                        target: r.get("target")?,
                        severity: severity_of(r, "severity")?,
                        categories: serde_json::from_str(&cats).unwrap_or_default(),
                    })
                })
                .collect::<Result<Vec<_>, SqlError>>()
            })
            .map_err(self.db.err("counting open drifts"))
    }
}
