//! `POST /api/v1/hooks/git`: Git push webhooks from GitHub, GitLab and Gitea (or Gogs),
//! which make the environments whose Git source the push changed read their desired side
//! at once instead of on their next `desired_interval` (watch mode) or `interval`.
//!
//! No bearer token: each provider's own signature or token is the request's
//! authentication, checked against the secret of `api.hooks.git` (`secret_env` /
//! `secret_file`); without one the route is off (404). One secret serves every repository
//! (an organisation- or group-wide webhook is one URL and one secret; the payload names
//! the repository, which is matched against the Git sources).
//!
//! - GitHub: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, raw body)>`,
//!   `X-GitHub-Event: push | ping`;
//! - Gitea: `X-Gitea-Signature: <hex HMAC-SHA256(secret, raw body)>` (Gogs:
//!   `X-Gogs-Signature`), `X-Gitea-Event` / `X-Gogs-Event: push`;
//! - GitLab: `X-Gitlab-Token: <secret>`, `X-Gitlab-Event: Push Hook | Tag Push Hook`.
//!
//! Every comparison is constant-time. Answers: 401 (nothing is done) for a missing or wrong
//! signature or token, 400 for a payload that is not a push naming a repository and a ref,
//! 200 for a ping or another event (ignored), 202 with the environments triggered, 200 with
//! none when no Git source matches. Bodies over [`MAX_BODY_BYTES`] (or `api.max_body_bytes`
//! when larger) get 413. Neither the secret nor a signature is ever logged or answered.

use std::path::Path;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;

pub use crate::config::hooks::{GitHookConfig, HooksConfig};

use super::dto::GitHookResult;
use super::{HttpError, Shared};

/// The route's body limit when `api.max_body_bytes` is smaller: push payloads list the
/// pushed commits (GitHub: up to 20 with their file lists), often well over 64 KiB.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Who sent the webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    GitHub,
    GitLab,
    Gitea,
    Gogs,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::GitHub => "github",
            Provider::GitLab => "gitlab",
            Provider::Gitea => "gitea",
            Provider::Gogs => "gogs",
        }
    }
}

/// Why a request was refused before anything was done.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error(
        "no webhook signature: expected X-Hub-Signature-256 (GitHub), X-Gitea-Signature or X-Gogs-Signature (Gitea, Gogs) or X-Gitlab-Token (GitLab)"
    )]
    Missing,
    #[error("the {0} signature does not match")]
    BadSignature(&'static str),
    #[error("the GitLab token does not match")]
    BadToken,
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok()).map(str::trim)
}

/// The provider and its event name, from the event headers (Gitea also sends GitHub's and
/// Gogs' headers, so it is looked for first), else from the signature headers alone.
pub fn provider(h: &HeaderMap) -> Option<(Provider, Option<String>)> {
    let ev = |n: &str| header(h, n).map(str::to_string);
    for (name, p) in [
        ("x-gitea-event", Provider::Gitea),
        ("x-gogs-event", Provider::Gogs),
        ("x-gitlab-event", Provider::GitLab),
        ("x-github-event", Provider::GitHub),
    ] {
        if let Some(e) = ev(name) {
            return Some((p, Some(e)));
        }
    }
    for (name, p) in [
        ("x-gitea-signature", Provider::Gitea),
        ("x-gogs-signature", Provider::Gogs),
        ("x-gitlab-token", Provider::GitLab),
        ("x-hub-signature-256", Provider::GitHub),
    ] {
        if h.contains_key(name) {
            return Some((p, None));
        }
    }
    None
}

/// Lower-case hex HMAC-SHA256 of `body` under `secret`.
pub fn hmac_hex(secret: &[u8], body: &[u8]) -> String {
    // HMAC accepts keys of any length.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return String::new();
    };
    mac.update(body);
    let mut out = String::with_capacity(64);
    for b in mac.finalize().into_bytes() {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Constant-time equality of two hex signatures (case of the given one ignored).
fn same_hex(want: &str, given: &str) -> bool {
    let given = given.to_ascii_lowercase();
    !want.is_empty() && bool::from(want.as_bytes().ct_eq(given.as_bytes()))
}

/// Checks a request's signature or token with its provider's scheme.
///
/// # Errors
/// [`Refused`]: the header missing or not matching.
pub fn verify(p: Provider, secret: &[u8], h: &HeaderMap, body: &[u8]) -> Result<(), Refused> {
    match p {
        Provider::GitHub => {
            let sig = header(h, "x-hub-signature-256").ok_or(Refused::Missing)?;
            let hex = sig.strip_prefix("sha256=").unwrap_or("");
            if same_hex(&hmac_hex(secret, body), hex) {
                Ok(())
            } else {
                Err(Refused::BadSignature("GitHub X-Hub-Signature-256"))
            }
        }
        Provider::Gitea | Provider::Gogs => {
            let (name, sig) = match header(h, "x-gitea-signature") {
                Some(s) => ("Gitea X-Gitea-Signature", s),
                None => (
                    "Gogs X-Gogs-Signature",
                    header(h, "x-gogs-signature").ok_or(Refused::Missing)?,
                ),
            };
            if same_hex(&hmac_hex(secret, body), sig) {
                Ok(())
            } else {
                Err(Refused::BadSignature(name))
            }
        }
        Provider::GitLab => {
            let token = header(h, "x-gitlab-token").ok_or(Refused::Missing)?;
            // Digests compared, so that the length of the secret does not show either.
            let want: [u8; 32] = Sha256::digest(secret).into();
            let got: [u8; 32] = Sha256::digest(token.as_bytes()).into();
            if bool::from(want.ct_eq(&got)) {
                Ok(())
            } else {
                Err(Refused::BadToken)
            }
        }
    }
}

/// What an event is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Push,
    Ping,
    /// Another event (pull requests, issues, …): acknowledged and ignored.
    Other(String),
}

/// The event of a verified request (`None`: no event header).
pub fn event(p: Provider, name: Option<&str>) -> Option<Event> {
    let name = name?;
    Some(match (p, name) {
        (Provider::GitHub | Provider::Gitea | Provider::Gogs, "push")
        | (Provider::GitLab, "Push Hook" | "Tag Push Hook") => Event::Push,
        (Provider::GitHub, "ping") => Event::Ping,
        (_, other) => Event::Other(other.to_string()),
    })
}

/// A push: the repository's URLs as the payload gives them, and the ref pushed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push {
    pub urls: Vec<String>,
    /// `refs/heads/main`, `refs/tags/v1.2`.
    pub reference: String,
    /// The commit the ref points to now (all zeros for a deletion), when given.
    pub after: Option<String>,
}

/// Reads a push payload (GitHub's, Gitea's and Gogs' `repository`, GitLab's `project` and
/// `repository`).
///
/// # Errors
/// Text saying what is missing (the body is not JSON, no `ref`, no repository URL).
pub fn parse_push(body: &[u8]) -> Result<Push, String> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| format!("the body is not a JSON push payload: {e}"))?;
    let reference = v
        .get("ref")
        .and_then(Value::as_str)
        .filter(|r| !r.is_empty())
        .ok_or("the push payload has no `ref`")?
        .to_string();
    let mut urls = Vec::new();
    for (obj, keys) in [
        (
            "repository",
            &[
                "clone_url",
                "html_url",
                "ssh_url",
                "git_url",
                "git_http_url",
                "git_ssh_url",
                "url",
                "homepage",
            ][..],
        ),
        (
            "project",
            &[
                "git_http_url",
                "git_ssh_url",
                "http_url",
                "ssh_url",
                "web_url",
            ][..],
        ),
    ] {
        let Some(o) = v.get(obj) else { continue };
        for k in keys {
            if let Some(u) = o.get(*k).and_then(Value::as_str)
                && !u.trim().is_empty()
                && !urls.iter().any(|x: &String| x == u)
            {
                urls.push(u.to_string());
            }
        }
    }
    if urls.is_empty() {
        return Err(
            "the push payload names no repository (repository.clone_url, project.git_http_url, …)"
                .into(),
        );
    }
    let after = v
        .get("after")
        .or_else(|| v.get("checkout_sha"))
        .and_then(Value::as_str)
        .map(str::to_string);
    Ok(Push {
        urls,
        reference,
        after,
    })
}

/// The route, with its own body limit (the larger of `api_limit` and [`MAX_BODY_BYTES`]).
pub(super) fn routes(api_limit: usize) -> Router<Shared> {
    Router::new()
        .route("/api/v1/hooks/git", post(git_hook))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(
            api_limit.max(MAX_BODY_BYTES),
        ))
}

/// The configured secret (`None`: the route is off), read once at start-up.
pub(super) fn secret_of(cfg: &super::ApiConfig, base: &Path) -> Result<Option<Arc<[u8]>>, String> {
    match cfg.hooks.as_ref().and_then(|h| h.git.as_ref()) {
        None => Ok(None),
        Some(g) => g.secret(base).map(|s| Some(Arc::from(s))),
    }
}

fn unauthorized(why: &Refused) -> Response {
    HttpError {
        status: StatusCode::UNAUTHORIZED,
        code: "unauthorized",
        message: format!("webhook refused: {why}"),
        param: None,
    }
    .into_response()
}

async fn git_hook(State(st): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(secret) = st.git_hook_secret.clone() else {
        return HttpError::not_found(
            "the Git webhook endpoint is off: set api.hooks.git.secret_env or secret_file",
        )
        .into_response();
    };
    let d = &st.daemon;
    let Some((p, name)) = provider(&headers) else {
        d.count_git_hook("unknown", "unauthorized");
        tracing::warn!(reason = %Refused::Missing, "Git webhook refused");
        return unauthorized(&Refused::Missing);
    };
    if let Err(why) = verify(p, &secret, &headers, &body) {
        d.count_git_hook(p.as_str(), "unauthorized");
        tracing::warn!(provider = p.as_str(), reason = %why, "Git webhook refused");
        return unauthorized(&why);
    }
    let Some(ev) = event(p, name.as_deref()) else {
        d.count_git_hook(p.as_str(), "bad_request");
        return HttpError::bad(
            "event",
            "no event header (X-GitHub-Event, X-Gitlab-Event, X-Gitea-Event or X-Gogs-Event)",
        )
        .into_response();
    };
    match ev {
        Event::Ping => {
            d.count_git_hook(p.as_str(), "ping");
            tracing::info!(provider = p.as_str(), "Git webhook ping");
            (
                StatusCode::OK,
                Json(GitHookResult {
                    after: None,
                    environments: Vec::new(),
                    event: "ping".into(),
                    ignored: false,
                    provider: p.as_str(),
                    reference: None,
                }),
            )
                .into_response()
        }
        Event::Other(e) => {
            d.count_git_hook(p.as_str(), "ignored");
            tracing::debug!(provider = p.as_str(), event = %e, "Git webhook event ignored");
            (
                StatusCode::OK,
                Json(GitHookResult {
                    after: None,
                    environments: Vec::new(),
                    event: e,
                    ignored: true,
                    provider: p.as_str(),
                    reference: None,
                }),
            )
                .into_response()
        }
        Event::Push => {
            let push = match parse_push(&body) {
                Ok(p) => p,
                Err(e) => {
                    d.count_git_hook(p.as_str(), "bad_request");
                    return HttpError::bad("payload", e).into_response();
                }
            };
            let triggered = match d.git_pushed(&push.urls, &push.reference) {
                Ok(t) => t,
                Err(e) => {
                    d.count_git_hook(p.as_str(), "error");
                    return HttpError::from(e).into_response();
                }
            };
            let status = if triggered.is_empty() {
                d.count_git_hook(p.as_str(), "unmatched");
                StatusCode::OK
            } else {
                d.count_git_hook(p.as_str(), "triggered");
                StatusCode::ACCEPTED
            };
            tracing::info!(
                provider = p.as_str(),
                repository = %crate::redact::redact_url(&push.urls[0]),
                reference = %push.reference,
                environments = ?triggered.iter().map(|t| t.environment.as_str()).collect::<Vec<_>>(),
                "Git push webhook"
            );
            (
                status,
                Json(GitHookResult {
                    after: push.after,
                    environments: triggered,
                    event: "push".into(),
                    ignored: false,
                    provider: p.as_str(),
                    reference: Some(push.reference),
                }),
            )
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn github_signature_is_checked_over_the_raw_body() {
        // GitHub's documented example: secret "It's a Secret to Everybody", payload
        // "Hello, World!".
        let sig = hmac_hex(b"It's a Secret to Everybody", b"Hello, World!");
        assert_eq!(
            sig,
            "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
        let h = headers(&[
            ("x-github-event", "push"),
            ("x-hub-signature-256", &format!("sha256={sig}")),
        ]);
        assert_eq!(provider(&h).unwrap().0, Provider::GitHub);
        let secret = b"It's a Secret to Everybody";
        assert_eq!(
            verify(Provider::GitHub, secret, &h, b"Hello, World!"),
            Ok(())
        );
        assert!(verify(Provider::GitHub, secret, &h, b"Hello, World?").is_err());
        assert!(verify(Provider::GitHub, b"other", &h, b"Hello, World!").is_err());
        let bare = headers(&[("x-hub-signature-256", &sig)]);
        assert!(verify(Provider::GitHub, secret, &bare, b"Hello, World!").is_err());
        assert_eq!(
            verify(Provider::GitHub, secret, &HeaderMap::new(), b"x"),
            Err(Refused::Missing)
        );
    }

    #[test]
    fn gitea_is_recognised_before_the_github_headers_it_also_sends() {
        let sig = hmac_hex(b"s", b"{}");
        let h = headers(&[
            ("x-github-event", "push"),
            ("x-gitea-event", "push"),
            ("x-gogs-event", "push"),
            ("x-gitea-signature", &sig),
        ]);
        let (p, ev) = provider(&h).unwrap();
        assert_eq!(p, Provider::Gitea);
        assert_eq!(event(p, ev.as_deref()), Some(Event::Push));
        assert_eq!(verify(p, b"s", &h, b"{}"), Ok(()));
        assert!(verify(p, b"t", &h, b"{}").is_err());
        let gogs = headers(&[("x-gogs-event", "push"), ("x-gogs-signature", &sig)]);
        let (p, _) = provider(&gogs).unwrap();
        assert_eq!(p, Provider::Gogs);
        assert_eq!(verify(p, b"s", &gogs, b"{}"), Ok(()));
    }

    #[test]
    fn gitlab_token_is_compared_whole() {
        let h = headers(&[
            ("x-gitlab-event", "Push Hook"),
            ("x-gitlab-token", "s3cret"),
        ]);
        let (p, ev) = provider(&h).unwrap();
        assert_eq!(p, Provider::GitLab);
        assert_eq!(event(p, ev.as_deref()), Some(Event::Push));
        assert_eq!(event(p, Some("Tag Push Hook")), Some(Event::Push));
        assert_eq!(verify(p, b"s3cret", &h, b""), Ok(()));
        assert_eq!(verify(p, b"s3cre", &h, b""), Err(Refused::BadToken));
        assert_eq!(verify(p, b"s3crett", &h, b""), Err(Refused::BadToken));
        assert_eq!(
            event(p, Some("Merge Request Hook")),
            Some(Event::Other("Merge Request Hook".into()))
        );
    }

    #[test]
    fn refusals_never_show_the_secret_or_the_signature() {
        let sig = hmac_hex(b"hunter2", b"{}");
        let h = headers(&[
            ("x-github-event", "push"),
            ("x-hub-signature-256", "sha256=00"),
        ]);
        let e = verify(Provider::GitHub, b"hunter2", &h, b"{}").unwrap_err();
        let text = e.to_string();
        assert!(
            !text.contains("hunter2") && !text.contains(&sig) && !text.contains("00"),
            "{text}"
        );
        let h = headers(&[("x-gitlab-event", "Push Hook"), ("x-gitlab-token", "guess")]);
        let text = verify(Provider::GitLab, b"hunter2", &h, b"")
            .unwrap_err()
            .to_string();
        assert!(
            !text.contains("hunter2") && !text.contains("guess"),
            "{text}"
        );
    }

    #[test]
    fn push_payloads_of_each_provider() {
        let github = br#"{"ref":"refs/heads/main","before":"a","after":"b1","repository":{"name":"shop","full_name":"acme/shop","html_url":"https://github.com/acme/shop","clone_url":"https://github.com/acme/shop.git","ssh_url":"git@github.com:acme/shop.git","git_url":"git://github.com/acme/shop.git"}}"#;
        let p = parse_push(github).unwrap();
        assert_eq!(p.reference, "refs/heads/main");
        assert_eq!(p.after.as_deref(), Some("b1"));
        assert_eq!(p.urls.len(), 4);
        let gitlab = br#"{"object_kind":"push","ref":"refs/heads/main","checkout_sha":"c2","project":{"web_url":"https://gitlab.example.com/acme/shop","git_ssh_url":"git@gitlab.example.com:acme/shop.git","git_http_url":"https://gitlab.example.com/acme/shop.git"},"repository":{"url":"git@gitlab.example.com:acme/shop.git","homepage":"https://gitlab.example.com/acme/shop","git_http_url":"https://gitlab.example.com/acme/shop.git","git_ssh_url":"git@gitlab.example.com:acme/shop.git"}}"#;
        let p = parse_push(gitlab).unwrap();
        assert_eq!(p.after.as_deref(), Some("c2"));
        assert!(
            p.urls
                .contains(&"https://gitlab.example.com/acme/shop.git".to_string())
        );
        assert_eq!(p.urls.len(), 3, "{:?}", p.urls);
        assert!(parse_push(b"not json").unwrap_err().contains("not a JSON"));
        assert!(
            parse_push(br#"{"repository":{"clone_url":"x"}}"#)
                .unwrap_err()
                .contains("ref")
        );
        assert!(
            parse_push(br#"{"ref":"refs/heads/main"}"#)
                .unwrap_err()
                .contains("no repository")
        );
    }
}
