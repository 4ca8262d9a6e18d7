//! HTTP plumbing shared by the Slack and webhook sinks: one rustls (ring) connector with the
//! webpki roots, and the URL rule: `https://` anywhere, plain `http://` only to a loopback
//! address (a local relay or a test server), so a token or signed body never crosses a network
//! in clear.

use std::sync::Arc;

use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;

use super::sink::SinkError;

/// The connector: TLS for `https://`, plain TCP for `http://` (which [`check_url`] limits to
/// loopback).
pub fn connector(sink: &str) -> Result<HttpsConnector<HttpConnector>, SinkError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(provider)
        .map_err(|e| SinkError::invalid(sink, "tls", e.to_string()))?
        .https_or_http()
        .enable_http1()
        .build())
}

/// Parses `url` (from config key `key`) and checks the scheme rule above.
pub fn check_url(sink: &str, key: &str, url: &str) -> Result<hyper::Uri, SinkError> {
    let uri: hyper::Uri = url
        .parse()
        .map_err(|e| SinkError::invalid(sink, key, format!("not a URL: {e}")))?;
    let host = uri.host().unwrap_or_default();
    match uri.scheme_str() {
        Some("https") if !host.is_empty() => Ok(uri),
        Some("http") if is_loopback(host) => Ok(uri),
        Some("http") => Err(SinkError::invalid(
            sink,
            key,
            "plain http is allowed only to a loopback address (127.0.0.1, ::1, localhost); use https",
        )),
        _ => Err(SinkError::invalid(
            sink,
            key,
            "must be an absolute https:// URL",
        )),
    }
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Reads `Retry-After` as seconds (the form Slack and most APIs send).
pub fn retry_after(headers: &hyper::HeaderMap) -> Option<std::time::Duration> {
    headers
        .get(hyper::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(std::time::Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_rule() {
        assert!(check_url("s", "k", "https://hooks.example.com/x").is_ok());
        assert!(check_url("s", "k", "http://127.0.0.1:8080/x").is_ok());
        assert!(check_url("s", "k", "http://[::1]:8080/x").is_ok());
        assert!(check_url("s", "k", "http://localhost/x").is_ok());
        let err = check_url("s", "api_url", "http://example.com/x").expect_err("plain http");
        assert!(
            err.to_string().starts_with("sink `s`: api_url: plain http"),
            "{err}"
        );
        assert!(check_url("s", "k", "ftp://x").is_err());
        assert!(check_url("s", "k", "/relative").is_err());
    }
}
