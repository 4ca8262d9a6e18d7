//! What the Slack sink keeps between alerts, as a trait the daemon's store implements
//! (`src/store/slack_refs.rs`): the alert layer stays free of the store.

/// A drift's Slack message in one sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlackMessageRef {
    pub sink: String,
    pub drift_id: i64,
    pub channel: String,
    /// The drift's own message (top-level, or its card in a digest's thread).
    pub ts: String,
    /// Where the drift's thread replies go: `ts` itself, or the digest's `ts`.
    pub thread_ts: String,
    /// The alert that posted it.
    pub notice_id: String,
}

/// One post of an alert: `ts` is `None` while only claimed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlackPost {
    pub channel: Option<String>,
    pub ts: Option<String>,
    /// RFC 3339.
    pub claimed_at: String,
}

/// Storage of drifts' messages and of alerts' posts. Errors are the store's message (it
/// names the database file).
pub trait MessageStore: Send + Sync {
    /// The drift's message in sink `sink`, when one was posted.
    fn slack_message(&self, sink: &str, drift_id: i64) -> Result<Option<SlackMessageRef>, String>;
    /// Records a drift's message; a drift keeps its first one.
    fn record_slack_message(&self, m: &SlackMessageRef) -> Result<(), String>;
    /// Forgets a drift's message (it was deleted in Slack): the next event posts a new one.
    fn forget_slack_message(&self, sink: &str, drift_id: i64) -> Result<(), String>;
    /// Post `part` of alert `notice_id`, claimed or completed.
    fn slack_post(
        &self,
        sink: &str,
        notice_id: &str,
        part: &str,
    ) -> Result<Option<SlackPost>, String>;
    /// Claims a post before it is sent (kept when already claimed).
    fn claim_slack_post(&self, sink: &str, notice_id: &str, part: &str) -> Result<(), String>;
    /// Completes a claimed post with where Slack put it.
    fn complete_slack_post(
        &self,
        sink: &str,
        notice_id: &str,
        part: &str,
        channel: &str,
        ts: &str,
    ) -> Result<(), String>;
}
