//! Pure: a [`Notice`] → the email (subject, plain text, HTML), rendered from
//! `alerts/email_subject.txt`, `alerts/email.txt` and `alerts/email.html`, then the lettre
//! [`Message`] (multipart/alternative). No network.

use lettre::Message;
use lettre::message::{Mailbox, MultiPart};

use crate::alert::notice::Notice;
use crate::alert::templates::{self, TemplateError, Templates};

/// The three rendered parts of an email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailParts {
    /// One line (newlines in the template output are folded to spaces).
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// Renders the parts.
///
/// # Errors
/// A template fails (file and line named).
pub fn parts(templates: &Templates, notice: &Notice) -> Result<EmailParts, TemplateError> {
    let subject = templates.render(templates::EMAIL_SUBJECT, notice)?;
    let subject = subject.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut text = templates.render(templates::EMAIL_TEXT, notice)?;
    if !text.ends_with('\n') {
        text.push('\n');
    }
    let mut html = templates.render(templates::EMAIL_HTML, notice)?;
    if !html.ends_with('\n') {
        html.push('\n');
    }
    Ok(EmailParts {
        subject,
        text,
        html,
    })
}

/// The message: `From`, `To` (every recipient), `Subject`, a `Message-ID` derived from the
/// notice id (so a receiving system can drop a duplicate), and a multipart/alternative body
/// with the text part first and the HTML part second.
///
/// # Errors
/// lettre refuses the message (no recipient): the text says why.
pub fn message(
    from: &Mailbox,
    to: &[Mailbox],
    parts: EmailParts,
    notice: &Notice,
) -> Result<Message, String> {
    let mut builder = Message::builder()
        .from(from.clone())
        .subject(parts.subject)
        .message_id(Some(message_id(notice, from)));
    if let Some(thread) = thread_id(notice, from) {
        // Every email about one drift names the same thread root, so mail clients thread
        // them: opened, changed, escalated, resolved.
        builder = builder.references(thread.clone()).in_reply_to(thread);
    }
    for m in to {
        builder = builder.to(m.clone());
    }
    builder
        .multipart(MultiPart::alternative_plain_html(parts.text, parts.html))
        .map_err(|e| e.to_string())
}

/// The thread root of an alert about exactly one drift: `<drift-{env}-{id}.envdrift@domain>`.
pub fn thread_id(notice: &Notice, from: &Mailbox) -> Option<String> {
    let [d] = notice.drifts.as_slice() else {
        return None;
    };
    let id = d.drift_id?;
    Some(format!(
        "<drift-{}-{id}.envdrift@{}>",
        safe(&notice.env),
        from.email.domain()
    ))
}

fn safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-._".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect()
}

fn message_id(notice: &Notice, from: &Mailbox) -> String {
    let id: String = notice
        .id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-._".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("<{id}.envdrift@{}>", from.email.domain())
}
