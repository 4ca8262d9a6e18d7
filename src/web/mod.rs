//! The web page for people: server-rendered HTML on the API's listener, usable without
//! JavaScript (docs/web.md).
//!
//! Entry point: [`routes`], merged into the API's router by [`crate::api::router`]; its
//! state ([`WebState`]: the templates and the login sessions) lives in the API's state.
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
//! Every form carries a CSRF token, and a POST whose `Origin` is another site is refused.

mod auth;
mod pages;
pub mod svg;
mod templates;
pub mod trends;

use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};

pub use auth::Sessions;
pub(crate) use pages::{compute_trends, parse_days};
pub use templates::{TemplateError, WebTemplates};

use crate::api::ApiState;
use crate::config::ApiConfig;

/// The web page's state, kept in the API's state.
pub struct WebState {
    pub templates: WebTemplates,
    pub sessions: Sessions,
    /// Cookies get `Secure` when the listener serves HTTPS.
    pub secure_cookies: bool,
}

impl WebState {
    /// Loads the templates (embedded, overridden by `api.web_templates_dir` relative to
    /// `base`).
    ///
    /// # Errors
    /// [`TemplateError`] naming the template file (and line).
    pub fn new(cfg: &ApiConfig, base: &Path) -> Result<WebState, TemplateError> {
        let dir = cfg.web_templates_dir.as_ref().map(|d| {
            if d.is_absolute() {
                d.clone()
            } else {
                base.join(d)
            }
        });
        Ok(WebState {
            templates: WebTemplates::load(dir.as_deref())?,
            sessions: Sessions::default(),
            secure_cookies: cfg.tls.is_some(),
        })
    }
}

/// The page routes (their own auth; the API's bearer-token layer is not on them).
pub fn routes() -> Router<Arc<ApiState>> {
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
}
