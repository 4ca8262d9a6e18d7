//! Pure: a [`Notice`] → the Slack message (fallback text + Block Kit blocks), rendered from
//! `alerts/slack.json`. No network; tested in `tests.rs` and pinned with insta.

use serde::Deserialize;
use slack_morphism::SlackMessageContent;
use slack_morphism::prelude::SlackBlock;

use crate::alert::notice::Notice;
use crate::alert::templates::{self, TemplateError, Templates};

/// Slack refuses messages with more blocks than this.
pub const MAX_BLOCKS: usize = 50;

/// Why a Slack message could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    #[error("{0}")]
    Template(#[from] TemplateError),
    /// The template's output is not the JSON Slack expects.
    #[error("{file}: the rendered message is not a Slack message: {reason}")]
    Shape { file: String, reason: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Rendered {
    text: String,
    blocks: Vec<serde_json::Value>,
}

/// The message: `text` (the notification fallback) and `blocks`. More than
/// [`MAX_BLOCKS`] blocks are cut to 49 plus a context block saying how many were left out.
///
/// # Errors
/// The template fails, its output is not `{"text": …, "blocks": [...]}`, a block is not a
/// known Block Kit type, or the text is empty.
pub fn message(
    templates: &Templates,
    notice: &Notice,
) -> Result<SlackMessageContent, PayloadError> {
    let file = templates.origin(templates::SLACK);
    let shape = |reason: String| PayloadError::Shape {
        file: file.clone(),
        reason,
    };
    let out = templates.render(templates::SLACK, notice)?;
    let rendered: Rendered = serde_json::from_str(&out).map_err(|e| shape(e.to_string()))?;
    if rendered.text.trim().is_empty() {
        return Err(shape(
            "`text` is empty (Slack needs it for notifications)".into(),
        ));
    }
    let mut raw = rendered.blocks;
    if raw.len() > MAX_BLOCKS {
        let cut = raw.len() - (MAX_BLOCKS - 1);
        raw.truncate(MAX_BLOCKS - 1);
        raw.push(serde_json::json!({
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": format!("…{cut} more blocks left out (Slack shows at most {MAX_BLOCKS}); see `envdrift` for the full list.")}]
        }));
    }
    let mut blocks = Vec::with_capacity(raw.len());
    for (i, b) in raw.into_iter().enumerate() {
        let ty = b
            .get("type")
            .and_then(|t| t.as_str())
            .unwrap_or("")
            .to_string();
        let block: SlackBlock =
            serde_json::from_value(b).map_err(|e| shape(format!("block {i} (`{ty}`): {e}")))?;
        if matches!(block, SlackBlock::Unknown(_)) {
            return Err(shape(format!(
                "block {i}: `{ty}` is not a Block Kit block type envdrift knows"
            )));
        }
        blocks.push(block);
    }
    Ok(SlackMessageContent::new()
        .with_text(rendered.text)
        .with_blocks(blocks))
}
