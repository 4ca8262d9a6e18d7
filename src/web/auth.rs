//! Who is looking at a page, and may they post this form.
//!
//! - Open access (no `api.tokens`, which the API allows only on loopback): every visitor is
//!   `loopback` with the operate role. Forms are protected by a double-submit CSRF cookie
//!   (`envdrift_csrf`, SameSite=Strict: another site's form never carries it).
//! - With tokens: `/login` takes an API token; a valid one starts a session (random id in an
//!   HttpOnly, SameSite=Strict cookie `envdrift_session`, 12 hours) that remembers the
//!   token's name and role, never the token. Each session has its own CSRF token.
//! - Every POST whose `Origin` header names another host is refused.
//!
//! Session ids and CSRF tokens are 32 random bytes from the operating system; the session
//! table keeps the SHA-256 of each id, at most [`MAX_SESSIONS`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::WebState;
use super::pages::{WebError, html};
use crate::config::Role;

type Shared = Arc<WebState>;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "envdrift_session";
/// Name of the CSRF cookie (open access only).
pub const CSRF_COOKIE: &str = "envdrift_csrf";
/// How long a session lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// Sessions kept at most; the oldest goes first.
pub const MAX_SESSIONS: usize = 1024;

#[derive(Debug, Clone)]
struct Session {
    name: String,
    role: Role,
    csrf: String,
    expires: Instant,
}

/// The login sessions (in memory: a restart logs everyone out).
#[derive(Debug, Default)]
pub struct Sessions {
    map: Mutex<HashMap<[u8; 32], Session>>,
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Session>> {
        self.map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn start(&self, name: &str, role: Role) -> Result<(String, Session), WebError> {
        let id = random_token()?;
        let s = Session {
            name: name.to_string(),
            role,
            csrf: random_token()?,
            expires: Instant::now() + SESSION_TTL,
        };
        let mut map = self.lock();
        let now = Instant::now();
        map.retain(|_, s| s.expires > now);
        while map.len() >= MAX_SESSIONS {
            let Some(oldest) = map.iter().min_by_key(|(_, s)| s.expires).map(|(k, _)| *k) else {
                break;
            };
            map.remove(&oldest);
        }
        map.insert(digest(&id), s.clone());
        Ok((id, s))
    }

    fn get(&self, id: &str) -> Option<Session> {
        let mut map = self.lock();
        let key = digest(id);
        match map.get(&key) {
            Some(s) if s.expires > Instant::now() => Some(s.clone()),
            Some(_) => {
                map.remove(&key);
                None
            }
            None => None,
        }
    }

    fn end(&self, id: &str) {
        self.lock().remove(&digest(id));
    }

    /// Sessions open now (tests).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// No session is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn digest(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

/// 32 random bytes from the operating system, as 64 hex digits.
fn random_token() -> Result<String, WebError> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).map_err(|e| WebError::internal(format!("no randomness: {e}")))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
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
    match cookie(headers, SESSION_COOKIE).and_then(|id| st.sessions.get(id)) {
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
    let Some((name, role)) = st.find_token(presented) else {
        tracing::info!("web login refused: unknown token");
        return login_page(
            &st,
            StatusCode::UNAUTHORIZED,
            next,
            Some("unknown token: paste one of the API tokens from api.tokens"),
        );
    };
    let (id, _) = st.sessions.start(&name, role)?;
    tracing::info!(token = %name, role = role_str(role), "web login");
    let mut resp = (StatusCode::SEE_OTHER, [(header::LOCATION, next)]).into_response();
    let c = format!(
        "{SESSION_COOKIE}={id}; {}",
        cookie_attrs(&st, SESSION_TTL.as_secs())
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
    if let Some(id) = cookie(&headers, SESSION_COOKIE) {
        st.sessions.end(id);
    }
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

    #[test]
    fn sessions_expire_are_bounded_and_keep_no_token() {
        let s = Sessions::default();
        let (id, sess) = s.start("oncall", Role::Operate).unwrap();
        assert_eq!(id.len(), 64);
        assert_ne!(id, sess.csrf);
        assert_eq!(s.get(&id).map(|x| x.name), Some("oncall".to_string()));
        assert!(s.get("other").is_none());
        s.end(&id);
        assert!(s.get(&id).is_none());
        for _ in 0..(MAX_SESSIONS + 5) {
            s.start("ci", Role::Read).unwrap();
        }
        assert_eq!(s.len(), MAX_SESSIONS);
        // Expired sessions are gone.
        let (id, _) = s.start("x", Role::Read).unwrap();
        if let Some(x) = s.lock().get_mut(&digest(&id)) {
            x.expires = Instant::now() - Duration::from_secs(1);
        }
        assert!(s.get(&id).is_none());
    }
}
