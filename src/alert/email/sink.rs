//! Email delivery: thin. Render with [`super::payload`], send through lettre, classify.

use std::sync::OnceLock;
use std::time::Duration;

use lettre::message::Mailbox;
use lettre::transport::smtp::AsyncSmtpTransportBuilder;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::config::{EmailConfig, EmailTls};
use super::payload;
use crate::alert::DeliveryError;
use crate::alert::notice::{Notice, NoticeKind};
use crate::alert::route::Route;
use crate::alert::sink::{SinkError, delivery_error, resolve_secret, template_error};
use crate::alert::templates::{Templates, sample_notice};

/// A built email sink.
pub struct EmailSink {
    name: String,
    route: Route,
    templates: Templates,
    from: Mailbox,
    to: Vec<Mailbox>,
    builder: AsyncSmtpTransportBuilder,
    /// Built on first use: lettre's connection pool spawns onto the tokio runtime, so it is
    /// made inside the runtime that delivers, and `build` (and `config check`) need none.
    transport: OnceLock<AsyncSmtpTransport<Tokio1Executor>>,
    endpoint: String,
}

impl std::fmt::Debug for EmailSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailSink")
            .field("name", &self.name)
            .field("endpoint", &self.endpoint)
            .field("to", &self.to.len())
            .finish_non_exhaustive()
    }
}

impl EmailSink {
    /// Validates `cfg` and resolves its password. No connection is made.
    ///
    /// # Caveats
    /// Deliver, check health and drop the sink inside one tokio runtime: lettre's connection
    /// pool, made on first use, spawns onto it (building needs no runtime).
    pub fn new(cfg: &EmailConfig, templates: &Templates) -> Result<EmailSink, SinkError> {
        let name = cfg.name.as_str();
        let host = cfg.host.trim();
        if host.is_empty() {
            return Err(SinkError::invalid(name, "host", "required"));
        }
        let from: Mailbox = cfg
            .from
            .parse()
            .map_err(|e| SinkError::invalid(name, "from", format!("`{}`: {e}", cfg.from)))?;
        if cfg.to.is_empty() {
            return Err(SinkError::invalid(
                name,
                "to",
                "at least one recipient is required",
            ));
        }
        let mut to = Vec::with_capacity(cfg.to.len());
        for (i, addr) in cfg.to.iter().enumerate() {
            to.push(addr.parse::<Mailbox>().map_err(|e| {
                SinkError::invalid(name, &format!("to[{i}]"), format!("`{addr}`: {e}"))
            })?);
        }
        let password = resolve_secret(
            name,
            "password",
            cfg.password_env.as_deref(),
            cfg.password_file.as_deref(),
        )?;
        let credentials = match (&cfg.username, password) {
            (Some(user), Some(pw)) => Some(Credentials::new(user.clone(), pw.expose().to_string())),
            (Some(_), None) => {
                return Err(SinkError::invalid(
                    name,
                    "password_env",
                    "`username` is set: set `password_env` or `password_file` too",
                ));
            }
            (None, Some(_)) => {
                return Err(SinkError::invalid(
                    name,
                    "username",
                    "a password is set: set `username` too",
                ));
            }
            (None, None) => None,
        };
        if cfg.tls == EmailTls::None && credentials.is_some() && !is_loopback(host) {
            return Err(SinkError::invalid(
                name,
                "tls",
                "`none` with a password sends it in clear: use `starttls` or `tls`, or a relay on loopback",
            ));
        }
        if cfg.timeout_secs == 0 {
            return Err(SinkError::invalid(
                name,
                "timeout_secs",
                "must be at least 1",
            ));
        }
        let tls_err =
            |e: lettre::transport::smtp::Error| SinkError::invalid(name, "tls", e.to_string());
        let mut tls_params = TlsParameters::builder(host.to_string());
        match (&cfg.ca_file, cfg.tls) {
            (Some(_), EmailTls::None) => {
                return Err(SinkError::invalid(
                    name,
                    "ca_file",
                    "only used with `tls: starttls` or `tls: tls`",
                ));
            }
            (Some(path), _) => {
                let pem = std::fs::read(path).map_err(|e| {
                    SinkError::invalid(
                        name,
                        "ca_file",
                        format!("cannot read `{}`: {e}", path.display()),
                    )
                })?;
                let cert = Certificate::from_pem(&pem).map_err(|e| {
                    SinkError::invalid(name, "ca_file", format!("`{}`: {e}", path.display()))
                })?;
                tls_params = tls_params.add_root_certificate(cert);
            }
            (None, _) => {}
        }
        let builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host);
        let (builder, default_port) = match cfg.tls {
            EmailTls::Starttls => (
                builder.tls(Tls::Required(tls_params.build().map_err(tls_err)?)),
                587,
            ),
            EmailTls::Tls => (
                builder.tls(Tls::Wrapper(tls_params.build().map_err(tls_err)?)),
                465,
            ),
            EmailTls::None => (builder, 25),
        };
        let port = cfg.port.unwrap_or(default_port);
        let mut builder = builder
            .port(port)
            .timeout(Some(Duration::from_secs(cfg.timeout_secs)));
        if let Some(c) = credentials {
            builder = builder.credentials(c);
        }
        let sample = sample_notice(NoticeKind::Drift);
        let parts = payload::parts(templates, &sample).map_err(|e| template_error(name, e))?;
        payload::message(&from, &to, parts, &sample)
            .map_err(|e| SinkError::invalid(name, "to", e))?;
        Ok(EmailSink {
            name: cfg.name.clone(),
            route: cfg.route.clone(),
            templates: templates.clone(),
            from,
            to,
            builder,
            transport: OnceLock::new(),
            endpoint: format!("{host}:{port}"),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    fn transport(&self) -> &AsyncSmtpTransport<Tokio1Executor> {
        self.transport.get_or_init(|| self.builder.clone().build())
    }

    pub fn route(&self) -> &Route {
        &self.route
    }

    /// Sends the notice as one email to every recipient.
    pub async fn deliver(&self, notice: &Notice) -> Result<(), DeliveryError> {
        let parts = payload::parts(&self.templates, notice)
            .map_err(|e| delivery_error(&self.name, e.to_string(), false))?;
        let message = payload::message(&self.from, &self.to, parts, notice)
            .map_err(|e| delivery_error(&self.name, e, false))?;
        self.transport()
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| classify(&self.name, &self.endpoint, &e))
    }

    /// Connects (with TLS as configured) and sends NOOP.
    pub async fn health(&self) -> Result<(), DeliveryError> {
        match self.transport().test_connection().await {
            Ok(true) => Ok(()),
            Ok(false) => Err(delivery_error(
                &self.name,
                format!("{}: the SMTP server did not answer NOOP", self.endpoint),
                true,
            )),
            Err(e) => Err(classify(&self.name, &self.endpoint, &e)),
        }
    }
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// SMTP 5xx is permanent (not retried); 4xx, network, TLS and timeouts are retried.
fn classify(sink: &str, endpoint: &str, e: &lettre::transport::smtp::Error) -> DeliveryError {
    let retryable = !(e.is_permanent() || e.is_client());
    let mut message = format!("{endpoint}: {e}");
    let mut cur = std::error::Error::source(e);
    while let Some(s) = cur {
        message.push_str(&format!(": {s}"));
        cur = s.source();
    }
    delivery_error(sink, message, retryable)
}
