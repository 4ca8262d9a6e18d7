//! Slack messages of drifts, for the Slack sink's message lifecycle
//! (`src/alert/slack/lifecycle.rs`):
//!
//! - `slack_messages`: per sink and drift, the drift's own message (`channel`, `ts`) that
//!   `chat.update` rewrites, and `thread_ts`, where its thread replies go (its own `ts`, or
//!   the digest it was listed in);
//! - `slack_posts`: every `chat.postMessage` of an alert, by part (`digest`, `card:ID`,
//!   `reply:ID`): claimed before the post, completed with its `ts` after. A retried alert
//!   skips completed parts; a part claimed but never completed (the process stopped between
//!   Slack's answer and this write) is looked up in the channel before it is posted again.
//!
//! Also [`Store::fill_drift_ids`]: the drift ids (and reopenings) of an alert's drifts, for
//! every sink.

use std::collections::HashMap;

use super::sql::{Exec, SqlError, args};

use super::{EventKind, Store, StoreError, now_rfc3339};
use crate::alert::notice::{DriftEvent, Notice};
use crate::alert::slack::refs::MessageStore;
pub use crate::alert::slack::refs::{SlackMessageRef, SlackPost};

impl Store {
    /// The drift's message in sink `sink`, when one was posted.
    pub fn slack_message(
        &self,
        sink: &str,
        drift_id: i64,
    ) -> Result<Option<SlackMessageRef>, StoreError> {
        let db = self.db();
        db.with(|c| {
            c.query_opt(
                "SELECT channel, ts, thread_ts, notice_id FROM slack_messages WHERE sink = ?1 AND drift_id = ?2",
                args![sink, drift_id],
            )?
            .map(|r| {
                Ok(SlackMessageRef {
                    sink: sink.to_string(),
                    drift_id,
                    channel: r.get(0)?,
                    ts: r.get(1)?,
                    thread_ts: r.get(2)?,
                    notice_id: r.get(3)?,
                })
            })
            .transpose()
        })
        .map_err(db.err("reading a drift's Slack message"))
    }

    /// The drift whose message (or card) is `ts` in `channel`, for sink `sink`.
    pub fn slack_message_at(
        &self,
        sink: &str,
        channel: &str,
        ts: &str,
    ) -> Result<Option<i64>, StoreError> {
        let db = self.db();
        db.with(|c| {
            c.query_opt(
                "SELECT drift_id FROM slack_messages WHERE sink = ?1 AND channel = ?2 AND ts = ?3",
                args![sink, channel, ts],
            )?
            .map(|r| r.get(0))
            .transpose()
        })
        .map_err(db.err("reading a drift's Slack message"))
    }

    /// Records a drift's message; a drift keeps its first message (a reopened drift is
    /// told in the same thread).
    pub fn record_slack_message(&self, m: &SlackMessageRef) -> Result<(), StoreError> {
        let db = self.db();
        db.with(|c| {
            c.execute(
                "INSERT INTO slack_messages(sink, drift_id, channel, ts, thread_ts, notice_id, posted_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT(sink, drift_id) DO NOTHING",
                args![
                    &m.sink,
                    m.drift_id,
                    &m.channel,
                    &m.ts,
                    &m.thread_ts,
                    &m.notice_id,
                    now_rfc3339()
                ],
            )
        })
        .map_err(db.err("recording a drift's Slack message"))?;
        Ok(())
    }

    /// Forgets a drift's message in sink `sink`.
    pub fn forget_slack_message(&self, sink: &str, drift_id: i64) -> Result<(), StoreError> {
        let db = self.db();
        db.with(|c| {
            c.execute(
                "DELETE FROM slack_messages WHERE sink = ?1 AND drift_id = ?2",
                args![sink, drift_id],
            )
        })
        .map_err(db.err("forgetting a drift's Slack message"))?;
        Ok(())
    }

    /// The post `part` of alert `notice_id` in sink `sink`, claimed or completed.
    pub fn slack_post(
        &self,
        sink: &str,
        notice_id: &str,
        part: &str,
    ) -> Result<Option<SlackPost>, StoreError> {
        let db = self.db();
        db.with(|c| {
            c.query_opt(
                "SELECT channel, ts, claimed_at FROM slack_posts WHERE sink = ?1 AND notice_id = ?2 AND part = ?3",
                args![sink, notice_id, part],
            )?
            .map(|r| {
                Ok(SlackPost {
                    channel: r.get(0)?,
                    ts: r.get(1)?,
                    claimed_at: r.get(2)?,
                })
            })
            .transpose()
        })
        .map_err(db.err("reading a Slack post"))
    }

    /// Claims a post before it is sent (kept when already claimed).
    pub fn claim_slack_post(
        &self,
        sink: &str,
        notice_id: &str,
        part: &str,
    ) -> Result<(), StoreError> {
        let db = self.db();
        db.with(|c| {
            c.execute(
                "INSERT INTO slack_posts(sink, notice_id, part, claimed_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(sink, notice_id, part) DO NOTHING",
                args![sink, notice_id, part, now_rfc3339()],
            )
        })
        .map_err(db.err("claiming a Slack post"))?;
        Ok(())
    }

    /// Completes a claimed post with where Slack put it.
    pub fn complete_slack_post(
        &self,
        sink: &str,
        notice_id: &str,
        part: &str,
        channel: &str,
        ts: &str,
    ) -> Result<(), StoreError> {
        let db = self.db();
        db.with(|c| {
            c.execute(
                "INSERT INTO slack_posts(sink, notice_id, part, channel, ts, claimed_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT(sink, notice_id, part) DO UPDATE SET channel = excluded.channel, ts = excluded.ts",
                args![sink, notice_id, part, channel, ts, now_rfc3339()],
            )
        })
        .map_err(db.err("recording a Slack post"))?;
        Ok(())
    }

    /// Fills each drift's `drift_id` of an alert of target `notice.env` (drifts opened by
    /// the scan that queued it have none yet), and marks an `opened` drift that was opened
    /// before (resolved since) as `reopened`. Drift ids are stable: a drift is one row per
    /// target and identity for ever.
    pub fn fill_drift_ids(&self, notice: &mut Notice) -> Result<(), StoreError> {
        if notice.drifts.is_empty() {
            return Ok(());
        }
        let db = self.db();
        let mut ids: HashMap<String, i64> = HashMap::new();
        db.with(|c| -> Result<(), SqlError> {
            for d in &notice.drifts {
                if d.drift_id.is_some() || d.identity.is_empty() {
                    continue;
                }
                if let Some(r) = c.query_opt(
                    "SELECT id FROM drifts WHERE target = ?1 AND identity = ?2",
                    args![&notice.env, &d.identity],
                )? {
                    ids.insert(d.identity.clone(), r.get(0)?);
                }
            }
            Ok(())
        })
        .map_err(db.err("reading drift ids"))?;
        let created_at = notice.created_at.clone();
        db.with(|c| -> Result<(), SqlError> {
            for d in &mut notice.drifts {
                if d.drift_id.is_none() {
                    d.drift_id = ids.get(&d.identity).copied();
                }
                if let (Some(id), Some(DriftEvent::Opened)) = (d.drift_id, d.event) {
                    let earlier: i64 = c.query_value(
                        "SELECT COUNT(*) FROM drift_events WHERE drift_id = ?1 AND event = ?2 AND at < ?3",
                        args![id, EventKind::Opened, &created_at],
                    )?;
                    if earlier > 0 {
                        d.event = Some(DriftEvent::Reopened);
                        d.previous_state = Some("resolved".into());
                    }
                }
            }
            Ok(())
        })
        .map_err(db.err("reading drift history"))
    }
}

impl MessageStore for Store {
    fn slack_message(&self, sink: &str, drift_id: i64) -> Result<Option<SlackMessageRef>, String> {
        Store::slack_message(self, sink, drift_id).map_err(|e| e.to_string())
    }
    fn record_slack_message(&self, m: &SlackMessageRef) -> Result<(), String> {
        Store::record_slack_message(self, m).map_err(|e| e.to_string())
    }
    fn forget_slack_message(&self, sink: &str, drift_id: i64) -> Result<(), String> {
        Store::forget_slack_message(self, sink, drift_id).map_err(|e| e.to_string())
    }
    fn slack_post(
        &self,
        sink: &str,
        notice_id: &str,
        part: &str,
    ) -> Result<Option<SlackPost>, String> {
        Store::slack_post(self, sink, notice_id, part).map_err(|e| e.to_string())
    }
    fn claim_slack_post(&self, sink: &str, notice_id: &str, part: &str) -> Result<(), String> {
        Store::claim_slack_post(self, sink, notice_id, part).map_err(|e| e.to_string())
    }
    fn complete_slack_post(
        &self,
        sink: &str,
        notice_id: &str,
        part: &str,
        channel: &str,
        ts: &str,
    ) -> Result<(), String> {
        Store::complete_slack_post(self, sink, notice_id, part, channel, ts)
            .map_err(|e| e.to_string())
    }
}

/// Retention (in [`Store::prune`]'s transaction): the posts of alerts no longer in the
/// outbox (sent and pruned) go too; a pending alert keeps its posts for its retries.
pub(super) fn prune_posts(tx: &mut impl Exec) -> Result<u64, SqlError> {
    tx.execute(
        "DELETE FROM slack_posts WHERE notice_id NOT IN (SELECT notice_id FROM outbox)",
        &[],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::notice::NoticeKind;
    use crate::alert::templates::sample_notice;

    #[test]
    fn messages_keep_the_first_and_posts_are_claimed_then_completed() {
        for s in crate::store::tests::stores(
            "messages_keep_the_first_and_posts_are_claimed_then_completed",
        ) {
            let m = SlackMessageRef {
                sink: "ops".into(),
                drift_id: 7,
                channel: "C1".into(),
                ts: "1.1".into(),
                thread_ts: "1.1".into(),
                notice_id: "n1".into(),
            };
            s.record_slack_message(&m).unwrap();
            s.record_slack_message(&SlackMessageRef {
                ts: "2.2".into(),
                ..m.clone()
            })
            .unwrap();
            assert_eq!(s.slack_message("ops", 7).unwrap(), Some(m));
            assert_eq!(s.slack_message("other", 7).unwrap(), None);
            assert_eq!(s.slack_message_at("ops", "C1", "1.1").unwrap(), Some(7));
            assert_eq!(s.slack_message_at("ops", "C1", "2.2").unwrap(), None);

            assert_eq!(s.slack_post("ops", "n1", "digest").unwrap(), None);
            s.claim_slack_post("ops", "n1", "digest").unwrap();
            let claimed = s.slack_post("ops", "n1", "digest").unwrap().unwrap();
            assert_eq!((claimed.channel, claimed.ts), (None, None));
            s.complete_slack_post("ops", "n1", "digest", "C1", "3.3")
                .unwrap();
            s.claim_slack_post("ops", "n1", "digest").unwrap();
            let done = s.slack_post("ops", "n1", "digest").unwrap().unwrap();
            assert_eq!(done.ts.as_deref(), Some("3.3"));
        }
    }

    #[test]
    fn drift_ids_are_filled_from_the_store() {
        for s in crate::store::tests::stores("drift_ids_are_filled_from_the_store") {
            let mut n = sample_notice(NoticeKind::Drift);
            n.env = "nowhere".into();
            for d in &mut n.drifts {
                d.drift_id = None;
            }
            s.fill_drift_ids(&mut n).unwrap();
            assert!(n.drifts.iter().all(|d| d.drift_id.is_none()));
        }
    }

    #[test]
    fn retention_prunes_the_posts_of_pruned_alerts_only() {
        for s in crate::store::tests::stores("retention_prunes_the_posts_of_pruned_alerts_only") {
            for (id, state, sent) in [
                ("old", "sent", Some("2000-01-01T00:00:00Z")),
                ("pending", "pending", None),
                ("recent", "sent", Some("2999-01-01T00:00:00Z")),
            ] {
                s.db()
                .with(|c| {
                    c.execute(
                        "INSERT INTO outbox(notice_id, sink, kind, target, body, created_at, next_attempt_at, state, sent_at)
                         VALUES (?1, 'ops', 'drift', 'production', '{}', '2000-01-01T00:00:00Z', '2000-01-01T00:00:00Z', ?2, ?3)",
                        super::super::sql::args![id, state, sent],
                    )
                })
                .unwrap();
            }
            for id in ["old", "pending", "recent", "orphan"] {
                s.claim_slack_post("ops", id, "digest").unwrap();
            }
            s.prune("2500-01-01T00:00:00Z").unwrap();
            for (id, kept) in [
                ("old", false),
                ("orphan", false),
                ("pending", true),
                ("recent", true),
            ] {
                assert_eq!(
                    s.slack_post("ops", id, "digest").unwrap().is_some(),
                    kept,
                    "{id}"
                );
            }
        }
    }
}
