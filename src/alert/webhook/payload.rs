//! Pure: a [`Notice`] → the JSON body (from `alerts/webhook.json`) and its signature.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::alert::notice::Notice;
use crate::alert::templates::{self, Templates};

/// The signature header's name.
pub const SIGNATURE_HEADER: &str = "x-envdrift-signature";
/// The notice id header's name (an idempotency key for receivers).
pub const NOTICE_ID_HEADER: &str = "x-envdrift-notice-id";

/// Renders the body: the template's output, checked to be JSON and re-serialized compactly.
///
/// # Errors
/// The template fails or its output is not JSON (the file and the JSON error named).
pub fn body(templates: &Templates, notice: &Notice) -> Result<Vec<u8>, String> {
    let out = templates
        .render(templates::WEBHOOK, notice)
        .map_err(|e| e.to_string())?;
    let value: serde_json::Value = serde_json::from_str(&out).map_err(|e| {
        format!(
            "{}: the rendered body is not JSON: {e}",
            templates.origin(templates::WEBHOOK)
        )
    })?;
    serde_json::to_vec(&value).map_err(|e| e.to_string())
}

/// `sha256=<lowercase hex of HMAC-SHA256(secret, body)>`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return String::new();
    };
    mac.update(body);
    let tag = mac.finalize().into_bytes();
    let mut out = String::with_capacity(7 + tag.len() * 2);
    out.push_str("sha256=");
    for b in tag {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Checks a signature header against `body` in constant time (for receivers and tests).
#[cfg(test)]
pub(crate) fn verify(secret: &[u8], body: &[u8], header: &str) -> bool {
    let Some(hex) = header.strip_prefix("sha256=") else {
        return false;
    };
    let Some(bytes) = decode_hex(hex) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&bytes).is_ok()
}

#[cfg(test)]
fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}
