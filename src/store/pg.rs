//! Connecting to a PostgreSQL store: the URL (`postgres://user:password@host:port/db?…`),
//! TLS from its `sslmode` with rustls (ring), and the store's name in messages,
//! `postgres://user@host:port/db` — never the password.
//!
//! `sslmode` (docs/store.md):
//! - `disable`: plain TCP;
//! - `prefer` (the default, as libpq's): TLS when the server offers it, else plain; the
//!   certificate is not checked (it protects against eavesdropping, not impersonation);
//! - `require`: TLS or no connection; the certificate is not checked, unless `ca_file` is
//!   given (then as `verify-ca`, like libpq with a root certificate);
//! - `verify-ca`: TLS, the server's certificate must chain to `ca_file` (or, without one,
//!   the Mozilla roots); its host name is not checked;
//! - `verify-full`: as `verify-ca`, and the certificate must name the host connected to.

use std::path::PathBuf;
use std::sync::Arc;

use super::StoreError;
use super::sql::SqlError;

/// Where a PostgreSQL store is. `url` is a secret (it may hold the password): [`Debug`]
/// and [`PostgresTarget::display_name`] leave it out.
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresTarget {
    /// `postgres://user:password@host:port/db?sslmode=…` (also `postgresql://`).
    pub url: String,
    /// PEM file of the certificate authorities for `verify-ca`/`verify-full` (and
    /// `require`).
    pub ca_file: Option<PathBuf>,
}

impl std::fmt::Debug for PostgresTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresTarget")
            .field("url", &self.display_name())
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

/// The TLS modes of `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl PostgresTarget {
    /// `postgres://user@host:port/db`: the store's name in messages and logs.
    pub fn display_name(&self) -> PathBuf {
        PathBuf::from(match url::Url::parse(&self.url) {
            Ok(u) => {
                let user = if u.username().is_empty() {
                    String::new()
                } else {
                    format!("{}@", u.username())
                };
                let host = u.host_str().unwrap_or("localhost");
                let port = u.port().unwrap_or(5432);
                format!("postgres://{user}{host}:{port}{}", u.path())
            }
            Err(_) => "postgres://(an unreadable URL)".to_string(),
        })
    }

    /// The client config and the TLS mode; `sslmode` is taken out of the URL (the client
    /// knows only three of its values).
    ///
    /// # Errors
    /// Text naming the problem, never the URL.
    fn parse(&self) -> Result<(postgres::Config, SslMode), String> {
        let mut u =
            url::Url::parse(&self.url).map_err(|e| format!("the URL is not valid ({e})"))?;
        if !matches!(u.scheme(), "postgres" | "postgresql") {
            return Err(format!(
                "the URL's scheme is `{}`; expected postgres:// or postgresql://",
                u.scheme()
            ));
        }
        let mut mode = SslMode::Prefer;
        let mut kept: Vec<(String, String)> = Vec::new();
        for (k, v) in u.query_pairs() {
            if k == "sslmode" {
                mode = match v.as_ref() {
                    "disable" => SslMode::Disable,
                    "prefer" | "allow" => SslMode::Prefer,
                    "require" => SslMode::Require,
                    "verify-ca" => SslMode::VerifyCa,
                    "verify-full" => SslMode::VerifyFull,
                    other => {
                        return Err(format!(
                            "sslmode `{other}` is not one of disable, prefer, require, verify-ca, verify-full"
                        ));
                    }
                };
            } else {
                kept.push((k.into_owned(), v.into_owned()));
            }
        }
        if kept.is_empty() {
            u.set_query(None);
        } else {
            u.query_pairs_mut().clear().extend_pairs(kept);
        }
        if mode == SslMode::Require && self.ca_file.is_some() {
            mode = SslMode::VerifyCa;
        }
        let mut cfg: postgres::Config = u
            .as_str()
            .parse()
            .map_err(|e: postgres::Error| format!("the URL is not valid ({e})"))?;
        cfg.ssl_mode(match mode {
            SslMode::Disable => postgres::config::SslMode::Disable,
            SslMode::Prefer => postgres::config::SslMode::Prefer,
            _ => postgres::config::SslMode::Require,
        });
        cfg.connect_timeout(std::time::Duration::from_secs(10));
        cfg.application_name("envdrift");
        Ok((cfg, mode))
    }

    fn tls(&self, mode: SslMode) -> Result<rustls::ClientConfig, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?;
        let roots = || -> Result<Arc<rustls::RootCertStore>, String> {
            let mut roots = rustls::RootCertStore::empty();
            match &self.ca_file {
                Some(f) => {
                    let pem =
                        std::fs::read(f).map_err(|e| format!("ca_file {}: {e}", f.display()))?;
                    let mut n = 0;
                    for cert in <rustls::pki_types::CertificateDer<'_> as rustls::pki_types::pem::PemObject>::pem_slice_iter(&pem) {
                        let cert = cert.map_err(|e| format!("ca_file {}: {e}", f.display()))?;
                        roots
                            .add(cert)
                            .map_err(|e| format!("ca_file {}: {e}", f.display()))?;
                        n += 1;
                    }
                    if n == 0 {
                        return Err(format!("ca_file {}: no certificate in it", f.display()));
                    }
                }
                None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
            }
            Ok(Arc::new(roots))
        };
        let config = match mode {
            SslMode::Disable | SslMode::Prefer | SslMode::Require => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoCheck(provider)))
                .with_no_client_auth(),
            SslMode::VerifyCa => {
                let inner =
                    rustls::client::WebPkiServerVerifier::builder_with_provider(roots()?, provider)
                        .build()
                        .map_err(|e| format!("TLS: {e}"))?;
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(AnyName(inner)))
                    .with_no_client_auth()
            }
            SslMode::VerifyFull => builder
                .with_root_certificates(roots()?)
                .with_no_client_auth(),
        };
        Ok(config)
    }
}

/// Connects (on the calling thread: it must not be inside a tokio runtime). A read-only
/// connection refuses writes (`default_transaction_read_only`).
pub(super) fn connect(
    target: &PostgresTarget,
    read_only: bool,
) -> Result<postgres::Client, StoreError> {
    let name = target.display_name();
    let unusable = |reason: String| StoreError::Unusable {
        path: name.clone(),
        reason,
    };
    let (mut cfg, mode) = target.parse().map_err(unusable)?;
    if read_only {
        cfg.options("-c default_transaction_read_only=on");
    }
    let client = if mode == SslMode::Disable {
        cfg.connect(postgres::NoTls)
    } else {
        let tls = target.tls(mode).map_err(unusable)?;
        cfg.connect(tokio_postgres_rustls::MakeRustlsConnect::new(tls))
    };
    client.map_err(|e| StoreError::Open {
        path: name.clone(),
        source: SqlError::Postgres(e),
    })
}

/// `prefer`/`require` without a CA: TLS without checking who answers (libpq's meaning),
/// signatures still verified.
#[derive(Debug)]
struct NoCheck(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoCheck {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain must be valid; the name in the certificate is not checked.
#[derive(Debug)]
struct AnyName(Arc<rustls::client::WebPkiServerVerifier>);

impl rustls::client::danger::ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        intermediates: &[rustls::pki_types::CertificateDer<'_>],
        server_name: &rustls::pki_types::ServerName<'_>,
        ocsp: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName))
            | Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(rustls::client::danger::ServerCertVerified::assertion()),
            other => other,
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(url: &str) -> PostgresTarget {
        PostgresTarget {
            url: url.into(),
            ca_file: None,
        }
    }

    #[test]
    fn the_name_and_debug_leave_the_password_out() {
        let target = t("postgres://drift:s3cr3t-pw@db.example:6432/envdrift?sslmode=require");
        let name = target.display_name();
        assert_eq!(
            name.to_str().unwrap(),
            "postgres://drift@db.example:6432/envdrift"
        );
        assert!(!format!("{target:?}").contains("s3cr3t-pw"));
        assert_eq!(
            t("postgresql://h/db").display_name().to_str().unwrap(),
            "postgres://h:5432/db"
        );
    }

    #[test]
    fn sslmode_is_read_and_taken_out_of_the_url() {
        let (cfg, mode) = t("postgres://u:p@h/db?sslmode=verify-full&connect_timeout=3")
            .parse()
            .unwrap();
        assert_eq!(mode, SslMode::VerifyFull);
        assert_eq!(cfg.get_ssl_mode(), postgres::config::SslMode::Require);
        assert_eq!(t("postgres://h/db").parse().unwrap().1, SslMode::Prefer);
        let with_ca = PostgresTarget {
            ca_file: Some("/ca.pem".into()),
            ..t("postgres://h/db?sslmode=require")
        };
        assert_eq!(with_ca.parse().unwrap().1, SslMode::VerifyCa);
        let e = t("postgres://u:hunter2@h/db?sslmode=always")
            .parse()
            .unwrap_err();
        assert!(
            e.contains("sslmode `always`") && !e.contains("hunter2"),
            "{e}"
        );
        let e = t("mysql://u:hunter2@h/db").parse().unwrap_err();
        assert!(!e.contains("hunter2"), "{e}");
    }

    /// A CA and a server certificate for `localhost` only (no IP address in it).
    fn certs() -> (String, String, String) {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
        let key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        (ca.pem(), leaf.pem(), key.serialize_pem())
    }

    #[test]
    fn each_sslmode_against_a_real_tls_server() {
        if std::env::var("ENVDRIFT_TEST_NO_POSTGRES").is_ok_and(|v| v == "1") {
            println!("skipped (ENVDRIFT_TEST_NO_POSTGRES=1)");
            return;
        }
        let (ca, cert, key) = certs();
        let pg = envdrift_testkit::postgres::Postgres::start_tls(&cert, &key).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, &ca).unwrap();
        let other_ca = dir.path().join("other.pem");
        std::fs::write(&other_ca, certs().0).unwrap();
        let url = |host: &str, mode: &str| {
            format!(
                "postgres://envdrift:{}@{host}:{}/postgres?sslmode={mode}",
                pg.password(),
                pg.port()
            )
        };
        // Whether the connection works, and whether it is encrypted (the server says).
        let try_mode = |host: &str, mode: &str, ca: Option<&Path>| -> Result<bool, String> {
            let target = PostgresTarget {
                url: url(host, mode),
                ca_file: ca.map(Path::to_path_buf),
            };
            let mut c = connect(&target, false).map_err(|e| e.to_string())?;
            let row = c
                .query_one(
                    "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                    &[],
                )
                .unwrap();
            Ok(row.get(0))
        };
        use std::path::Path;
        assert_eq!(try_mode("127.0.0.1", "disable", None), Ok(false));
        assert_eq!(try_mode("127.0.0.1", "prefer", None), Ok(true));
        assert_eq!(try_mode("127.0.0.1", "require", None), Ok(true));
        assert_eq!(try_mode("127.0.0.1", "verify-ca", Some(&ca_file)), Ok(true));
        assert_eq!(
            try_mode("localhost", "verify-full", Some(&ca_file)),
            Ok(true)
        );
        // The certificate names localhost, not 127.0.0.1: verify-full refuses it.
        let e = try_mode("127.0.0.1", "verify-full", Some(&ca_file)).unwrap_err();
        assert!(e.contains("postgres://envdrift@127.0.0.1:"), "{e}");
        assert!(!e.contains(pg.password()), "{e}");
        // Another CA: verify-ca refuses, and require with that ca_file verifies too.
        assert!(try_mode("localhost", "verify-ca", Some(&other_ca)).is_err());
        assert!(try_mode("localhost", "require", Some(&other_ca)).is_err());
        // Without a ca_file verify-full checks against the public roots: a private CA fails.
        assert!(try_mode("localhost", "verify-full", None).is_err());
    }
}
