//! Who is looking at a page, and may they post this form.
//!
//! - Open access (no `api.tokens`, which the API allows only on loopback): every visitor is
//!   `loopback` with the operate role. Forms are protected by a double-submit CSRF cookie
//!   (`envdrift_csrf`, SameSite=Strict: another site's form never carries it).
//! - With tokens: `/login` takes an API token; a valid one gets a **signed session cookie**
//!   `envdrift_session` (HttpOnly, SameSite=Strict, `Secure` with TLS), stateless: nothing is
//!   kept in the daemon, so sessions survive restarts and work on every replica with the same
//!   config. Its value is `v1.{fingerprint}.{role}.{expiry}.{nonce}.{mac}`:
//!   - a key is derived from the token itself, `K = HMAC-SHA256(SHA-256(token),
//!     "envdrift web session v1")`: only a daemon configured with that token can make or
//!     check the cookie, and removing the token from the config revokes its cookies;
//!   - `fingerprint` = the first 8 bytes of `HMAC(K, "fingerprint")` (hex) picks the token
//!     without naming it; `role` `read`/`operate` must still be the token's role;
//!     `expiry` in Unix seconds (`api.web_session_ttl`, default 12 h); `nonce` 16 random
//!     bytes;
//!   - `mac` = `HMAC(K, "session|" + the rest)` (hex), checked in constant time.
//!
//!   The session's CSRF token is `HMAC(K, "csrf|" + the rest)`. Neither contains the token.
//!   Logging out clears the cookie in the browser; a copy of it stays valid until it expires
//!   (nothing is stored to revoke it, short of removing the token).
//! - Every POST whose `Origin` header names another host is refused.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::WebState;
use super::pages::{WebError, html};
use crate::config::Role;

type Shared = Arc<WebState>;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "envdrift_session";
/// Name of the CSRF cookie (open access only).
pub const CSRF_COOKIE: &str = "envdrift_csrf";
/// How long a session lasts unless `api.web_session_ttl` says otherwise.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);

const VERSION: &str = "v1";

/// A session as its cookie says, once verified.
#[derive(Debug, Clone)]
struct Session {
    name: String,
    role: Role,
    csrf: String,
}

/// Signed, stateless login sessions (see the module doc).
#[derive(Debug, Clone)]
pub struct Sessions {
    /// The cookie's lifetime (`api.web_session_ttl`).
    pub ttl: Duration,
}

impl Default for Sessions {
    fn default() -> Self {
        Sessions { ttl: SESSION_TTL }
    }
}

/// HMAC-SHA256 over `parts`. HMAC takes keys of any length, so `new_from_slice` cannot
/// fail; were it to, no cookie is made or accepted (never a fixed MAC).
fn mac(key: &[u8], parts: &[&[u8]]) -> Option<[u8; 32]> {
    let Ok(mut m) = <Hmac<Sha256> as Mac>::new_from_slice(key) else {
        return None;
    };
    for p in parts {
        m.update(p);
    }
    Some(m.finalize().into_bytes().into())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The token's session key, from the SHA-256 of the token (what the daemon keeps).
fn key_of(token_digest: &[u8; 32]) -> Option<[u8; 32]> {
    mac(token_digest, &[b"envdrift web session v1"])
}

fn fingerprint(key: &[u8; 32]) -> Option<String> {
    Some(hex(&mac(key, &[b"fingerprint"])?[..8]))
}

impl Sessions {
    /// A new session cookie value for the token with this digest, valid for [`Self::ttl`]
    /// from `now` (Unix seconds).
    fn issue(&self, token_digest: &[u8; 32], role: Role, now: i64) -> Result<String, WebError> {
        let no_mac = || WebError::internal("HMAC-SHA256 unavailable");
        let key = key_of(token_digest).ok_or_else(no_mac)?;
        let mut nonce = [0u8; 16];
        getrandom::fill(&mut nonce)
            .map_err(|e| WebError::internal(format!("no randomness: {e}")))?;
        let ttl = i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX);
        let expiry = now.saturating_add(ttl);
        let body = format!(
            "{VERSION}.{}.{}.{expiry}.{}",
            fingerprint(&key).ok_or_else(no_mac)?,
            role_str(role),
            hex(&nonce)
        );
        let sig = hex(&mac(&key, &[b"session|", body.as_bytes()]).ok_or_else(no_mac)?);
        Ok(format!("{body}.{sig}"))
    }

    /// The session of a cookie value, when it verifies against a configured token, still
    /// has that token's role and has not expired at `now` (Unix seconds).
    fn verify(&self, tokens: &[super::TokenDigest], value: &str, now: i64) -> Option<Session> {
        let (body, sig) = value.rsplit_once('.')?;
        let mut parts = body.split('.');
        let (Some(version), Some(fp), Some(role), Some(expiry), Some(nonce), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return None;
        };
        if version != VERSION || nonce.len() != 32 {
            return None;
        }
        let expiry: i64 = expiry.parse().ok()?;
        let ttl = i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX);
        if expiry <= now || expiry > now.saturating_add(ttl) {
            return None;
        }
        // Every token is tried, in constant time per token.
        let mut found = None;
        for (name, token_role, digest) in tokens {
            let key = key_of(digest)?;
            let want = hex(&mac(&key, &[b"session|", body.as_bytes()])?);
            let fp_ok = bool::from(fingerprint(&key)?.as_bytes().ct_eq(fp.as_bytes()));
            let sig_ok = bool::from(want.as_bytes().ct_eq(sig.as_bytes()));
            if fp_ok && sig_ok && role == role_str(*token_role) {
                found = Some(Session {
                    name: name.clone(),
                    role: *token_role,
                    csrf: hex(&mac(&key, &[b"csrf|", body.as_bytes()])?),
                });
            }
        }
        found
    }
}

/// 32 random bytes from the operating system, as 64 hex digits.
fn random_token() -> Result<String, WebError> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).map_err(|e| WebError::internal(format!("no randomness: {e}")))?;
    Ok(hex(&b))
}

/// The cookie named `name` in the request, if any.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// The visitor of a page.
#[derive(Debug, Clone, Serialize)]
pub struct Visitor {
    /// Token name, or `loopback` with open access.
    pub name: String,
    /// `read` or `operate`.
    pub role: &'static str,
    pub can_operate: bool,
    /// The CSRF token every form of the page carries.
    pub csrf: String,
    /// Pages are open (no login, no logout button).
    pub open: bool,
    /// A `Set-Cookie` to send with the page (a new CSRF cookie), not rendered.
    #[serde(skip)]
    pub set_cookie: Option<String>,
}

fn role_str(r: Role) -> &'static str {
    match r {
        Role::Read => "read",
        Role::Operate => "operate",
    }
}

fn cookie_attrs(st: &WebState, max_age: u64) -> String {
    format!(
        "Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{}",
        if st.secure_cookies { "; Secure" } else { "" }
    )
}

/// Who is asking: `Err` is the response to send instead (a redirect to the login form).
pub fn visitor(st: &WebState, headers: &HeaderMap, path: &str) -> Result<Visitor, Box<Response>> {
    if st.open_access() {
        let existing = cookie(headers, CSRF_COOKIE)
            .filter(|c| c.len() == 64 && c.bytes().all(|b| b.is_ascii_hexdigit()));
        let (csrf, set_cookie) = match existing {
            Some(c) => (c.to_string(), None),
            None => {
                let c = random_token().map_err(|e| Box::new(e.into_response()))?;
                let set = format!("{CSRF_COOKIE}={c}; {}", cookie_attrs(st, 86400 * 30));
                (c, Some(set))
            }
        };
        return Ok(Visitor {
            name: "loopback".into(),
            role: "operate",
            can_operate: true,
            csrf,
            open: true,
            set_cookie,
        });
    }
    let now = chrono::Utc::now().timestamp();
    match cookie(headers, SESSION_COOKIE).and_then(|c| st.sessions.verify(st.tokens(), c, now)) {
        Some(s) => Ok(Visitor {
            can_operate: s.role >= Role::Operate,
            role: role_str(s.role),
            name: s.name,
            csrf: s.csrf,
            open: false,
            set_cookie: None,
        }),
        None => {
            let next = url::form_urlencoded::byte_serialize(path.as_bytes()).collect::<String>();
            Err(Box::new(
                (
                    StatusCode::SEE_OTHER,
                    [(header::LOCATION, format!("/login?next={next}"))],
                )
                    .into_response(),
            ))
        }
    }
}

/// Checks a form post: same origin, the CSRF token of the visitor, and the role.
///
/// # Errors
/// 403 pages naming what failed.
pub fn check_post(
    st: &WebState,
    headers: &HeaderMap,
    v: &Visitor,
    form_csrf: Option<&str>,
    needs_operate: bool,
) -> Result<(), WebError> {
    same_origin(headers)?;
    let ok = form_csrf.is_some_and(|f| bool::from(f.as_bytes().ct_eq(v.csrf.as_bytes())));
    // With open access the token is the cookie's; a missing cookie means a new visitor
    // whose form cannot be ours.
    if !ok || (st.open_access() && v.set_cookie.is_some()) {
        return Err(WebError::forbidden(
            "the form's CSRF token is missing or stale: reload the page and submit again",
        ));
    }
    if needs_operate && !v.can_operate {
        return Err(WebError::forbidden(format!(
            "token `{}` has role read; acknowledging and silencing need operate",
            v.name
        )));
    }
    Ok(())
}

/// A POST from a page of another site is refused (`Origin` names another host).
fn same_origin(headers: &HeaderMap) -> Result<(), WebError> {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return Ok(());
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let origin_host = origin
        .split_once("://")
        .map_or(origin, |(_, rest)| rest)
        .trim_end_matches('/');
    if origin == "null" || origin_host != host {
        return Err(WebError::forbidden(format!(
            "cross-site form post refused (Origin {origin} is not this site)"
        )));
    }
    Ok(())
}

/// Parses an `application/x-www-form-urlencoded` body.
pub fn form(body: &[u8]) -> HashMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

/// A local path to go back to after logging in (never another site).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.into(),
        _ => "/".into(),
    }
}

#[derive(Serialize)]
struct LoginPage<'a> {
    title: &'static str,
    visitor: Option<Visitor>,
    next: String,
    error: Option<&'a str>,
    active: &'static str,
}

fn login_page(
    st: &WebState,
    status: StatusCode,
    next: String,
    error: Option<&str>,
) -> Result<Response, WebError> {
    let body = st.templates.render(
        "login.html",
        &LoginPage {
            title: "Log in",
            visitor: None,
            next,
            error,
            active: "login",
        },
    )?;
    Ok((status, html(body)).into_response())
}

/// `GET /login`.
pub async fn login_form(
    State(st): State<Shared>,
    q: axum::extract::Query<HashMap<String, String>>,
) -> Result<Response, WebError> {
    let next = safe_next(q.get("next").map(String::as_str));
    if st.open_access() {
        return Ok((StatusCode::SEE_OTHER, [(header::LOCATION, next)]).into_response());
    }
    login_page(&st, StatusCode::OK, next, None)
}

/// `POST /login`: `token`, `next`.
pub async fn login(
    State(st): State<Shared>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, WebError> {
    same_origin(&headers)?;
    let f = form(&body);
    let next = safe_next(f.get("next").map(String::as_str));
    if st.open_access() {
        return Ok((StatusCode::SEE_OTHER, [(header::LOCATION, next)]).into_response());
    }
    let presented = f.get("token").map_or("", |t| t.trim());
    let Some((name, role, digest)) = st.find_token(presented) else {
        tracing::info!("web login refused: unknown token");
        return login_page(
            &st,
            StatusCode::UNAUTHORIZED,
            next,
            Some("unknown token: paste one of the API tokens from api.tokens"),
        );
    };
    let value = st
        .sessions
        .issue(&digest, role, chrono::Utc::now().timestamp())?;
    tracing::info!(token = %name, role = role_str(role), "web login");
    let mut resp = (StatusCode::SEE_OTHER, [(header::LOCATION, next)]).into_response();
    let c = format!(
        "{SESSION_COOKIE}={value}; {}",
        cookie_attrs(&st, st.sessions.ttl.as_secs())
    );
    if let Ok(v) = HeaderValue::from_str(&c) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(resp)
}

/// `POST /logout`: `csrf`.
pub async fn logout(
    State(st): State<Shared>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, WebError> {
    let v = visitor(&st, &headers, "/").map_err(|_| WebError::forbidden("not logged in"))?;
    let f = form(&body);
    check_post(&st, &headers, &v, f.get("csrf").map(String::as_str), false)?;
    // Stateless: the browser forgets the cookie; a copy stays valid until its expiry.
    let mut resp = (StatusCode::SEE_OTHER, [(header::LOCATION, "/login")]).into_response();
    let c = format!("{SESSION_COOKIE}=; {}", cookie_attrs(&st, 0));
    if let Ok(v) = HeaderValue::from_str(&c) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(safe_next(Some("/drifts/3")), "/drifts/3");
        assert_eq!(safe_next(Some("//evil.example")), "/");
        assert_eq!(safe_next(Some("https://evil.example")), "/");
        assert_eq!(safe_next(Some("/\\evil.example")), "/");
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn cookies_and_origins() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; envdrift_session=abc ; b=2"),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&h, "c"), None);
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        assert!(same_origin(&h).is_ok());
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8080"),
        );
        assert!(same_origin(&h).is_ok());
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert!(same_origin(&h).is_err());
        h.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(same_origin(&h).is_err());
    }

    fn tokens() -> Vec<super::super::TokenDigest> {
        use sha2::Digest as _;
        vec![
            (
                "ci".into(),
                Role::Read,
                sha2::Sha256::digest(b"read-token-0123456789").into(),
            ),
            (
                "oncall".into(),
                Role::Operate,
                sha2::Sha256::digest(b"operate-token-9876543210").into(),
            ),
        ]
    }

    #[test]
    fn signed_sessions_verify_expire_and_refuse_tampering() {
        let s = Sessions::default();
        let t = tokens();
        let now = 1_800_000_000;
        let c = s.issue(&t[1].2, Role::Operate, now).unwrap();
        assert!(!c.contains("operate-token"), "{c}");
        let got = s.verify(&t, &c, now + 60).expect("verifies");
        assert_eq!((got.name.as_str(), got.role), ("oncall", Role::Operate));
        // The CSRF token is the session's, stable for it, and not the cookie.
        assert_eq!(s.verify(&t, &c, now + 61).unwrap().csrf, got.csrf);
        assert!(!c.contains(&got.csrf));
        let other = s.issue(&t[1].2, Role::Operate, now).unwrap();
        assert_ne!(s.verify(&t, &other, now).unwrap().csrf, got.csrf);
        // Expired (12 h), or from the future beyond the lifetime.
        assert!(s.verify(&t, &c, now + 12 * 3600).is_none());
        assert!(s.verify(&t, &c, now - 10).is_none());
        // Tampered: the role raised, the expiry moved, the signature changed, garbage.
        let read = s.issue(&t[0].2, Role::Read, now).unwrap();
        assert_eq!(s.verify(&t, &read, now).unwrap().role, Role::Read);
        let raised = read.replacen(".read.", ".operate.", 1);
        assert!(s.verify(&t, &raised, now).is_none());
        let parts: Vec<&str> = c.split('.').collect();
        let later = c.replacen(parts[3], &(now + 11 * 3600 + 1).to_string(), 1);
        assert!(s.verify(&t, &later, now).is_none());
        let mut bad = c.clone();
        bad.pop();
        bad.push(if c.ends_with('0') { '1' } else { '0' });
        assert!(s.verify(&t, &bad, now).is_none());
        for junk in [
            "",
            ".",
            "v1",
            "v1.a.b.c.d.e",
            "v2.x.read.1.00.ff",
            &"9".repeat(400),
        ] {
            assert!(s.verify(&t, junk, now).is_none(), "{junk}");
        }
        // The token removed from the config: its cookies are refused; another config with
        // the same tokens (a replica, a restart) accepts them.
        assert!(s.verify(&t[..1], &c, now).is_none());
        assert!(Sessions::default().verify(&tokens(), &c, now).is_some());
        // The role of the token changed in the config: refused.
        let mut demoted = tokens();
        demoted[1].1 = Role::Read;
        assert!(s.verify(&demoted, &c, now).is_none());
        // A shorter lifetime configured later refuses longer-lived cookies.
        let short = Sessions {
            ttl: Duration::from_secs(3600),
        };
        assert!(short.verify(&t, &c, now).is_none());
    }
}
