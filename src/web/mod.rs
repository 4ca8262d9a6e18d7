//! The web page for people: server-rendered HTML on the API's listener, usable without
//! JavaScript (docs/web.md).
//!
//! Entry point: [`routes`], merged into the API's router by `api::router` (the web page
//! does not import the API: its [`WebState`] gets the daemon, a store reader and the
//! tokens' digests).
//!
//! Pages: `/` (overview), `/environments/{name}`, `/comparisons/{name}`, `/drifts/{id}` (with
//! the Acknowledge and Silence forms), `/trends`; `/login`, `/logout`; `/static/*`. The HTML
//! comes from minijinja templates in `web/` (embedded; a directory `api.web_templates_dir`
//! overrides them file by file, checked at start-up), the plots from [`svg`], the figures of
//! `/trends` from [`trends`].
//!
//! Auth ([`auth`]): with no `api.tokens` (loopback only) the pages are open; otherwise a
//! login form takes an API token and sets an HttpOnly, SameSite=Strict session cookie. The
//! roles are the API's: `read` sees everything, `operate` also acknowledges and silences.
//! The acknowledge, silence and logout forms carry a CSRF token, and a POST whose `Origin` is
//! another site is refused.

mod auth;
mod pages;
pub mod svg;
mod templates;
pub mod trends;

use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub use auth::{SESSION_TTL, Sessions};
pub(crate) use pages::{compute_trends, parse_days};
pub use templates::{TemplateError, WebTemplates};

use crate::config::{ApiConfig, Role};
use crate::daemon::Daemon;
use crate::store::StoreReader;

/// A configured API token as the login checks it: name, role, SHA-256 of the secret.
pub type TokenDigest = (String, Role, [u8; 32]);

/// The web page's state: the daemon and a read-only store handle, the tokens' digests (for
/// the login and the signed session cookies), the templates and the session settings.
pub struct WebState {
    pub daemon: Arc<Daemon>,
    store: StoreReader,
    tokens: Vec<TokenDigest>,
    pub templates: WebTemplates,
    pub sessions: Sessions,
    /// Cookies get `Secure` when the listener serves HTTPS.
    pub secure_cookies: bool,
}

impl std::fmt::Debug for WebState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebState")
            .field("tokens", &self.tokens.len())
            .field("templates", &self.templates)
            .finish_non_exhaustive()
    }
}

impl WebState {
    /// Loads the templates (embedded, overridden by `api.web_templates_dir` relative to
    /// `base`). `tokens` are the API's (no tokens: the pages are open, loopback only).
    ///
    /// # Errors
    /// [`TemplateError`] naming the template file (and line).
    pub fn new(
        daemon: Arc<Daemon>,
        store: StoreReader,
        tokens: Vec<TokenDigest>,
        cfg: &ApiConfig,
        base: &Path,
    ) -> Result<WebState, TemplateError> {
        let dir = cfg.web_templates_dir.as_ref().map(|d| {
            if d.is_absolute() {
                d.clone()
            } else {
                base.join(d)
            }
        });
        Ok(WebState {
            daemon,
            store,
            tokens,
            templates: WebTemplates::load(dir.as_deref())?,
            sessions: Sessions::default(),
            secure_cookies: cfg.tls.is_some(),
        })
    }

    /// The read-only store handle.
    pub(crate) fn reader(&self) -> &StoreReader {
        &self.store
    }

    /// No tokens are configured: the pages are open (the API allows that on loopback only).
    pub(crate) fn open_access(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The configured tokens (name, role, SHA-256 of the secret).
    pub(crate) fn tokens(&self) -> &[TokenDigest] {
        &self.tokens
    }

    /// The name, role and digest of the configured token `presented`, compared in constant
    /// time against every token.
    pub(crate) fn find_token(&self, presented: &str) -> Option<(String, Role, [u8; 32])> {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut found = None;
        for (name, role, d) in &self.tokens {
            if bool::from(d.ct_eq(&digest)) {
                found = Some((name.clone(), *role, *d));
            }
        }
        found
    }
}

/// The page routes, with their own auth (the API's bearer-token layer is not on them).
pub fn routes(state: Arc<WebState>) -> Router {
    Router::new()
        .route("/", get(pages::overview))
        .route("/environments/{name}", get(pages::environment))
        .route("/comparisons/{name}", get(pages::comparison))
        .route("/drifts/{id}", get(pages::drift))
        .route("/drifts/{id}/ack", post(pages::ack))
        .route("/drifts/{id}/silence", post(pages::silence))
        .route("/trends", get(pages::trends_page))
        .route("/login", get(auth::login_form).post(auth::login))
        .route("/logout", post(auth::logout))
        .route("/static/{file}", get(pages::static_file))
        .with_state(state)
}
