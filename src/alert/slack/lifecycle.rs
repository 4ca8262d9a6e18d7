//! One Slack message per drift that updates itself (bot token + the daemon's store).
//!
//! For each drift of a drift alert (`drift`, `escalated`, `resolved`, `reminder`):
//!
//! - no message yet: its card ([`super::message::card`]) is posted with `chat.postMessage`
//!   and its `channel` and `ts` stored with the drift (`src/store/slack_refs.rs`). When one
//!   alert brings two or more such drifts, the alert stays one digest message (the
//!   `alerts/slack.json` template, as today) and each drift's card is posted in the digest's
//!   thread: that card is the drift's message and the digest's thread its thread;
//! - a message already: `chat.update` rewrites it to the current state (title, severity,
//!   attribution, fix, buttons; resolved shows as resolved) and a short reply in its thread
//!   (`thread_ts`) says what changed.
//!
//! Exactly once, with the outbox: an alert is retried as a whole until every part of it
//! went through. Each post is claimed in the store before it is sent and completed with its
//! `ts` after, so a retry skips what was posted (updates are idempotent and simply done
//! again). A post claimed but never completed — its answer lost (timeout, 5xx after Slack
//! accepted, a reset) or the process stopped before the store's write — is looked up by its
//! message metadata (`event_type` `envdrift_alert`, the alert id and part) before it is
//! posted again: a top-level one in the channel's history, a digest card or thread reply in
//! its thread (`conversations.replies`), every page since ten minutes before the claim. That
//! needs the `channels:history` (or `groups:history`) scope and a channel ID in `channel`.
//! Without them a message can repeat in that window (docs/alerts.md).

use std::collections::HashMap;

use slack_morphism::prelude::{
    SlackApiChatPostMessageRequest, SlackApiChatUpdateRequest, SlackApiConversationsRepliesResponse,
};
use slack_morphism::{
    SlackApiToken, SlackChannelId, SlackMessageContent, SlackMessageMetadata, SlackTs,
};

use super::message::{self, Card, Status};
use super::payload;
use super::refs::{MessageStore, SlackMessageRef};
use super::sink::{SlackSink, classify};
use crate::alert::DeliveryError;
use crate::alert::notice::{DriftEvent, Notice, NoticeDrift, NoticeKind};
use crate::alert::sink::delivery_error;
use slack_morphism::errors::SlackClientError;

/// The `event_type` of envdrift's message metadata.
pub const METADATA_EVENT: &str = "envdrift_alert";

/// At most this many drifts of one digest get their own message in its thread (Slack allows
/// about one message per second per channel); the others get theirs with their next event.
pub const MAX_DIGEST_CARDS: usize = 50;

/// A claimed post is looked for in messages from this long before its claim on (the
/// local clock against Slack's).
pub const LOOKUP_MARGIN_SECS: i64 = 600;

/// At most this many pages (of 200 messages) are read to find a claimed post.
pub const LOOKUP_PAGES: usize = 20;

/// Notice kinds that keep one message per drift.
pub fn threaded(kind: NoticeKind) -> bool {
    matches!(
        kind,
        NoticeKind::Drift | NoticeKind::Escalated | NoticeKind::Resolved | NoticeKind::Reminder
    )
}

fn store_error(sink: &str, e: &str) -> DeliveryError {
    delivery_error(sink, format!("recording the Slack message: {e}"), true)
}

/// The card of a drift as of this alert.
pub(super) fn card_content(
    sink: &SlackSink,
    env: &str,
    d: &NoticeDrift,
    event: DriftEvent,
    status: Status,
    at: &str,
) -> Result<SlackMessageContent, DeliveryError> {
    let v = message::card(&Card {
        env,
        drift: d,
        event,
        status,
        public_url: sink.public_url.as_deref(),
        at,
    });
    content_of(&sink.name, v)
}

/// A `{"text", "blocks"}` value as slack-morphism's message content.
pub(super) fn content_of(
    sink: &str,
    v: serde_json::Value,
) -> Result<SlackMessageContent, DeliveryError> {
    serde_json::from_value(v)
        .map_err(|e| delivery_error(sink, format!("building the drift message: {e}"), false))
}

/// A drift's card as this notice shows it (its environment, time and state).
fn notice_card(
    sink: &SlackSink,
    notice: &Notice,
    d: &NoticeDrift,
    event: DriftEvent,
) -> Result<SlackMessageContent, DeliveryError> {
    card_content(
        sink,
        &notice.env,
        d,
        event,
        status_of(notice, event),
        &notice.created_at,
    )
}

fn status_of(notice: &Notice, event: DriftEvent) -> Status {
    if event == DriftEvent::Resolved {
        Status::Resolved {
            at: notice.created_at.clone(),
        }
    } else {
        Status::Open
    }
}

fn part(kind: &str, d: &NoticeDrift) -> String {
    match d.drift_id {
        Some(id) => format!("{kind}:{id}"),
        None => format!("{kind}:{}", d.resource),
    }
}

pub(super) async fn call<T>(
    sink: &SlackSink,
    fut: impl Future<Output = Result<T, slack_morphism::errors::SlackClientError>>,
) -> Result<T, DeliveryError> {
    match tokio::time::timeout(sink.timeout, fut).await {
        Ok(res) => res.map_err(|e| classify(&sink.name, &e)),
        Err(_) => Err(delivery_error(
            &sink.name,
            format!("no answer from Slack within {}s", sink.timeout.as_secs()),
            true,
        )),
    }
}

/// Delivers a drift alert through a bot token, one message per drift (see the module doc).
pub(super) async fn deliver(
    sink: &SlackSink,
    store: &dyn MessageStore,
    token: &SlackApiToken,
    channel: &SlackChannelId,
    notice: &Notice,
) -> Result<(), DeliveryError> {
    let mut fresh: Vec<&NoticeDrift> = Vec::new();
    let mut known: Vec<(&NoticeDrift, SlackMessageRef)> = Vec::new();
    for d in &notice.drifts {
        let found = match d.drift_id {
            Some(id) => store
                .slack_message(&sink.name, id)
                .map_err(|e| store_error(&sink.name, &e))?,
            None => None,
        };
        match found {
            // Posted by this alert (an earlier attempt): not an update. A card in a
            // digest's thread stays in the digest's list (its post is complete and is not
            // sent again); a top-level one is done.
            Some(r) if r.notice_id == notice.id => {
                if r.ts != r.thread_ts {
                    fresh.push(d);
                }
            }
            Some(r) => known.push((d, r)),
            None => fresh.push(d),
        }
    }
    // Digest or single card, the same on every attempt: a digest once its post was claimed.
    let digest_claimed = store
        .slack_post(&sink.name, &notice.id, "digest")
        .map_err(|e| store_error(&sink.name, &e))?
        .is_some();
    let poster = Poster {
        sink,
        store,
        token,
        channel,
        notice,
    };
    match fresh.as_slice() {
        [] => {}
        [d] if !digest_claimed => {
            let event = d.event_in(notice.kind);
            let content = notice_card(sink, notice, d, event)?;
            let (ch, ts) = poster.post(&part("card", d), content, None).await?;
            poster.remember(d, &ch, &ts, &ts)?;
        }
        many => {
            let digest = payload::message(&sink.templates, notice)
                .map_err(|e| delivery_error(&sink.name, e.to_string(), false))?;
            let (ch, digest_ts) = poster.post("digest", digest, None).await?;
            for d in many.iter().take(MAX_DIGEST_CARDS) {
                let event = d.event_in(notice.kind);
                let content = notice_card(sink, notice, d, event)?;
                let thread = SlackTs(digest_ts.clone());
                let (_, ts) = poster
                    .post(&part("card", d), content, Some((&ch, thread)))
                    .await?;
                poster.remember(d, &ch, &ts, &digest_ts)?;
            }
        }
    }
    for (d, r) in known {
        let mut event = d.event_in(notice.kind);
        if event == DriftEvent::Opened {
            // It had a message: it was resolved since and is back.
            event = DriftEvent::Reopened;
        }
        let content = notice_card(sink, notice, d, event)?;
        let req = SlackApiChatUpdateRequest::new(
            SlackChannelId(r.channel.clone()),
            content,
            SlackTs(r.ts.clone()),
        );
        let updated = tokio::time::timeout(
            sink.timeout,
            sink.client.open_session(token).chat_update(&req),
        )
        .await;
        match updated {
            Ok(Ok(_)) => {}
            Ok(Err(SlackClientError::ApiError(e)))
                if matches!(
                    e.code.as_str(),
                    "message_not_found" | "cant_update_message" | "edit_window_closed"
                ) =>
            {
                // Deleted (or no longer editable) in Slack: a new message for the drift.
                tracing::info!(sink = %sink.name, drift = ?d.drift_id, code = %e.code, "the drift's Slack message is gone; posting a new one");
                if let Some(id) = d.drift_id {
                    store
                        .forget_slack_message(&sink.name, id)
                        .map_err(|e| store_error(&sink.name, &e))?;
                }
                let content = notice_card(sink, notice, d, event)?;
                let (ch, ts) = poster.post(&part("card", d), content, None).await?;
                poster.remember(d, &ch, &ts, &ts)?;
                continue;
            }
            Ok(Err(e)) => return Err(classify(&sink.name, &e)),
            Err(_) => {
                return Err(delivery_error(
                    &sink.name,
                    format!("no answer from Slack within {}s", sink.timeout.as_secs()),
                    true,
                ));
            }
        }
        let reply = SlackMessageContent::new().with_text(message::reply(event, d));
        poster
            .post(
                &part("reply", d),
                reply,
                Some((&r.channel, SlackTs(r.thread_ts.clone()))),
            )
            .await?;
    }
    Ok(())
}

/// The card status an `acknowledged` / `silenced` notice shows (`extra.by`, `extra.until`).
pub(super) fn action_status(notice: &Notice) -> Option<Status> {
    let by = notice.extra["by"].as_str().unwrap_or("someone").to_string();
    match notice.kind {
        NoticeKind::Acknowledged => Some(Status::Acknowledged { by }),
        NoticeKind::Silenced => Some(Status::Silenced {
            by,
            until: notice.extra["until"].as_str().unwrap_or("").to_string(),
        }),
        _ => None,
    }
}

/// Delivers an `acknowledged` / `silenced` notice (queued with the action, in its
/// transaction; the daemon skipped it when the drift changed since): the drift's message
/// rewritten with the action instead of the buttons (`chat.update`) and a reply in its
/// thread. A drift without a message in this sink, or whose message is gone: nothing to do.
/// Retried as a whole by the outbox; the reply is posted once (claimed like every post).
pub(super) async fn deliver_action(
    sink: &SlackSink,
    store: &dyn MessageStore,
    token: &SlackApiToken,
    channel: &SlackChannelId,
    notice: &Notice,
) -> Result<(), DeliveryError> {
    let (Some(d), Some(status)) = (notice.drifts.first(), action_status(notice)) else {
        return Ok(());
    };
    let Some(id) = d.drift_id else {
        return Ok(());
    };
    let Some(r) = store
        .slack_message(&sink.name, id)
        .map_err(|e| store_error(&sink.name, &e))?
    else {
        tracing::debug!(sink = %sink.name, drift = id, "no Slack message for the drift; nothing to update");
        return Ok(());
    };
    let content = card_content(
        sink,
        &notice.env,
        d,
        DriftEvent::Changed,
        status.clone(),
        &notice.created_at,
    )?;
    let req = SlackApiChatUpdateRequest::new(
        SlackChannelId(r.channel.clone()),
        content,
        SlackTs(r.ts.clone()),
    );
    let updated = tokio::time::timeout(
        sink.timeout,
        sink.client.open_session(token).chat_update(&req),
    )
    .await;
    match updated {
        Ok(Ok(_)) => {}
        Ok(Err(SlackClientError::ApiError(e)))
            if matches!(
                e.code.as_str(),
                "message_not_found" | "cant_update_message" | "edit_window_closed"
            ) =>
        {
            // Deleted in Slack: the drift's next event posts a new message; an action
            // alone does not (it is no news to the channel).
            tracing::info!(sink = %sink.name, drift = id, code = %e.code, "the drift's Slack message is gone; not showing the action");
            store
                .forget_slack_message(&sink.name, id)
                .map_err(|e| store_error(&sink.name, &e))?;
            return Ok(());
        }
        Ok(Err(e)) => return Err(classify(&sink.name, &e)),
        Err(_) => {
            return Err(delivery_error(
                &sink.name,
                format!("no answer from Slack within {}s", sink.timeout.as_secs()),
                true,
            ));
        }
    }
    let poster = Poster {
        sink,
        store,
        token,
        channel,
        notice,
    };
    let reply = SlackMessageContent::new().with_text(message::action_reply(&status));
    poster
        .post(
            &part("reply", d),
            reply,
            Some((&r.channel, SlackTs(r.thread_ts.clone()))),
        )
        .await?;
    Ok(())
}

struct Poster<'a> {
    sink: &'a SlackSink,
    store: &'a dyn MessageStore,
    token: &'a SlackApiToken,
    channel: &'a SlackChannelId,
    notice: &'a Notice,
}

impl Poster<'_> {
    fn remember(
        &self,
        d: &NoticeDrift,
        channel: &str,
        ts: &str,
        thread_ts: &str,
    ) -> Result<(), DeliveryError> {
        let Some(id) = d.drift_id else {
            return Ok(()); // no id (not in the store): nothing to update later
        };
        self.store
            .record_slack_message(&SlackMessageRef {
                sink: self.sink.name.clone(),
                drift_id: id,
                channel: channel.to_string(),
                ts: ts.to_string(),
                thread_ts: thread_ts.to_string(),
                notice_id: self.notice.id.clone(),
            })
            .map_err(|e| store_error(&self.sink.name, &e))
    }

    /// Posts part `part` of the alert once: a completed part is not posted again, a
    /// claimed top-level one is looked for in the channel first. Returns channel and ts.
    async fn post(
        &self,
        part: &str,
        mut content: SlackMessageContent,
        thread: Option<(&str, SlackTs)>,
    ) -> Result<(String, String), DeliveryError> {
        let name = &self.sink.name;
        let nid = &self.notice.id;
        let err = |e: String| store_error(name, &e);
        if let Some(p) = self.store.slack_post(name, nid, part).map_err(err)? {
            if let (Some(ch), Some(ts)) = (p.channel, p.ts) {
                return Ok((ch, ts));
            }
            if let Some((ch, ts)) = self.find_posted(part, &p.claimed_at, thread.as_ref()).await {
                tracing::info!(sink = %name, notice = %nid, part, "found the message posted before a restart; not posting it again");
                self.store
                    .complete_slack_post(name, nid, part, &ch, &ts)
                    .map_err(err)?;
                return Ok((ch, ts));
            }
        }
        self.store.claim_slack_post(name, nid, part).map_err(err)?;
        content.metadata = Some(SlackMessageMetadata {
            event_type: METADATA_EVENT.to_string(),
            event_payload: Some(HashMap::from([
                ("notice".to_string(), nid.clone()),
                ("part".to_string(), part.to_string()),
            ])),
        });
        let channel = match &thread {
            Some((ch, _)) => SlackChannelId((*ch).to_string()),
            None => self.channel.clone(),
        };
        let mut req = SlackApiChatPostMessageRequest::new(channel, content);
        req.username = self.sink.username.clone();
        req.icon_emoji = self.sink.icon_emoji.clone();
        req.unfurl_links = Some(false);
        req.thread_ts = thread.map(|(_, ts)| ts);
        let res = call(
            self.sink,
            self.sink
                .client
                .open_session(self.token)
                .chat_post_message(&req),
        )
        .await?;
        let (ch, ts) = (res.channel.0, res.ts.0);
        self.store
            .complete_slack_post(name, nid, part, &ch, &ts)
            .map_err(err)?;
        Ok((ch, ts))
    }

    /// A message of this part posted since it was claimed, by its metadata; `None` when
    /// there is none or the channel cannot be read (missing scope, channel name). A
    /// top-level post is looked for in the channel's history, a thread post (digest card,
    /// reply) in its thread (`conversations.replies`); every page since the claim (less
    /// [`LOOKUP_MARGIN_SECS`] for clock skew) is read, at most [`LOOKUP_PAGES`].
    async fn find_posted(
        &self,
        part: &str,
        claimed_at: &str,
        thread: Option<&(&str, SlackTs)>,
    ) -> Option<(String, String)> {
        let since = chrono::DateTime::parse_from_rfc3339(claimed_at)
            .ok()?
            .timestamp()
            .saturating_sub(LOOKUP_MARGIN_SECS);
        let oldest = format!("{since}.000000");
        let (method, channel) = match thread {
            Some((ch, _)) => ("conversations.replies", (*ch).to_string()),
            None => ("conversations.history", self.channel.0.clone()),
        };
        let session = self.sink.client.open_session(self.token);
        let mut cursor: Option<String> = None;
        for _ in 0..LOOKUP_PAGES {
            let mut params: Vec<(&str, Option<String>)> = vec![
                ("channel", Some(channel.clone())),
                ("oldest", Some(oldest.clone())),
                ("include_all_metadata", Some("true".to_string())),
                ("limit", Some("200".to_string())),
                ("cursor", cursor.clone()),
            ];
            if let Some((_, ts)) = thread {
                params.push(("ts", Some(ts.0.clone())));
            }
            let page: SlackApiConversationsRepliesResponse = match call(
                self.sink,
                session.http_session_api.http_get(method, &params, None),
            )
            .await
            {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(sink = %self.sink.name, notice = %self.notice.id, method, error = %e, "cannot read the channel to find a message posted before its answer was lost; posting it (it may show twice)");
                    return None;
                }
            };
            let found = page.messages.into_iter().find_map(|m| {
                let meta = m.content.metadata.as_ref()?;
                let p = meta.event_payload.as_ref()?;
                (meta.event_type == METADATA_EVENT
                    && p.get("notice") == Some(&self.notice.id)
                    && p.get("part").map(String::as_str) == Some(part))
                .then(|| {
                    (
                        m.origin.channel.map_or_else(|| channel.clone(), |c| c.0),
                        m.origin.ts.0,
                    )
                })
            });
            if found.is_some() {
                return found;
            }
            cursor = page
                .response_metadata
                .and_then(|r| r.next_cursor)
                .map(|c| c.0)
                .filter(|c| !c.is_empty());
            if page.has_more != Some(true) || cursor.is_none() {
                return None;
            }
        }
        tracing::warn!(sink = %self.sink.name, notice = %self.notice.id, "more than {LOOKUP_PAGES} pages since the claim; posting it (it may show twice)");
        None
    }
}
