//! Webhook delivery: thin. Render and sign with [`super::payload`], POST, classify.

use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::config::WebhookConfig;
use super::payload;
use crate::alert::notice::{Notice, NoticeKind};
use crate::alert::route::Route;
use crate::alert::sink::{Secret, SinkError, delivery_error, require_secret};
use crate::alert::templates::{Templates, sample_notice, shorten};
use crate::alert::{DeliveryError, http};

/// A built webhook sink.
pub struct WebhookSink {
    name: String,
    route: Route,
    templates: Templates,
    url: Uri,
    secret: Secret,
    headers: Vec<(HeaderName, HeaderValue)>,
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    timeout: Duration,
}

impl std::fmt::Debug for WebhookSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSink")
            .field("name", &self.name)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl WebhookSink {
    /// Validates `cfg` and resolves its secret.
    pub fn new(cfg: &WebhookConfig, templates: &Templates) -> Result<WebhookSink, SinkError> {
        let name = cfg.name.as_str();
        let url = http::check_url(name, "url", &cfg.url)?;
        let secret = require_secret(
            name,
            "secret",
            cfg.secret_env.as_deref(),
            cfg.secret_file.as_deref(),
        )?;
        let mut headers = Vec::new();
        for (k, v) in &cfg.headers {
            let key = format!("headers.{k}");
            let hn = HeaderName::try_from(k.as_str())
                .map_err(|e| SinkError::invalid(name, &key, e.to_string()))?;
            if hn.as_str() == payload::SIGNATURE_HEADER || hn == hyper::header::CONTENT_TYPE {
                return Err(SinkError::invalid(name, &key, "set by envdrift; remove it"));
            }
            let hv = HeaderValue::try_from(v.as_str())
                .map_err(|e| SinkError::invalid(name, &key, e.to_string()))?;
            headers.push((hn, hv));
        }
        if cfg.timeout_secs == 0 {
            return Err(SinkError::invalid(
                name,
                "timeout_secs",
                "must be at least 1",
            ));
        }
        payload::body(templates, &sample_notice(NoticeKind::Drift))
            .map_err(|e| SinkError::invalid(name, "templates", e))?;
        let client = Client::builder(TokioExecutor::new()).build(http::connector(name)?);
        Ok(WebhookSink {
            name: cfg.name.clone(),
            route: cfg.route.clone(),
            templates: templates.clone(),
            url,
            secret,
            headers,
            client,
            timeout: Duration::from_secs(cfg.timeout_secs),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn route(&self) -> &Route {
        &self.route
    }

    fn request(
        &self,
        method: Method,
        body: Vec<u8>,
        notice_id: Option<&str>,
    ) -> Result<Request<Full<Bytes>>, DeliveryError> {
        let mut req = Request::builder()
            .method(method)
            .uri(self.url.clone())
            .header(
                hyper::header::USER_AGENT,
                concat!("envdrift/", env!("CARGO_PKG_VERSION")),
            );
        if let Some(id) = notice_id {
            req = req
                .header(hyper::header::CONTENT_TYPE, "application/json")
                .header(
                    payload::SIGNATURE_HEADER,
                    payload::signature(self.secret.expose().as_bytes(), &body),
                )
                .header(payload::NOTICE_ID_HEADER, id);
        }
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        req.body(Full::new(Bytes::from(body)))
            .map_err(|e| delivery_error(&self.name, format!("building the request: {e}"), false))
    }

    async fn send(
        &self,
        req: Request<Full<Bytes>>,
    ) -> Result<(StatusCode, hyper::HeaderMap, String), DeliveryError> {
        let run = async {
            let res = self.client.request(req).await.map_err(|e| {
                delivery_error(
                    &self.name,
                    format!("cannot reach {}: {}", self.url, chain(&e)),
                    true,
                )
            })?;
            let status = res.status();
            let headers = res.headers().clone();
            let body = res
                .into_body()
                .collect()
                .await
                .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
                .unwrap_or_default();
            Ok((status, headers, body))
        };
        tokio::time::timeout(self.timeout, run)
            .await
            .unwrap_or_else(|_| {
                Err(delivery_error(
                    &self.name,
                    format!(
                        "no answer from {} within {}s",
                        self.url,
                        self.timeout.as_secs()
                    ),
                    true,
                ))
            })
    }

    /// POSTs the notice.
    pub async fn deliver(&self, notice: &Notice) -> Result<(), DeliveryError> {
        let body = payload::body(&self.templates, notice)
            .map_err(|e| delivery_error(&self.name, e, false))?;
        let req = self.request(Method::POST, body, Some(&notice.id))?;
        let (status, headers, body) = self.send(req).await?;
        if status.is_success() {
            return Ok(());
        }
        let retryable = status.is_server_error()
            || status == StatusCode::TOO_MANY_REQUESTS
            || status == StatusCode::REQUEST_TIMEOUT;
        let detail = if body.trim().is_empty() {
            String::new()
        } else {
            format!(": {}", shorten(body.trim(), 200))
        };
        Err(DeliveryError {
            sink: self.name.clone(),
            message: format!("{}: HTTP {status}{detail}", self.url),
            retryable,
            retry_after: (status == StatusCode::TOO_MANY_REQUESTS)
                .then(|| http::retry_after(&headers))
                .flatten(),
        })
    }

    /// Sends a `HEAD` to the URL: any answer below 500 (405 included: most webhooks take only
    /// POST) proves the endpoint is reachable over TLS; a connection error or a 5xx fails.
    pub async fn health(&self) -> Result<(), DeliveryError> {
        let req = self.request(Method::HEAD, Vec::new(), None)?;
        let (status, _, _) = self.send(req).await?;
        if status.is_server_error() {
            return Err(delivery_error(
                &self.name,
                format!("{}: HTTP {status}", self.url),
                true,
            ));
        }
        Ok(())
    }
}

fn chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        out.push_str(&format!(": {e}"));
        cur = e.source();
    }
    out
}
