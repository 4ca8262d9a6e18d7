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

/// Reads `Retry-After`: delay seconds (the form Slack and most APIs send) or an HTTP date
/// (a date in the past means "now": zero).
pub fn retry_after(headers: &hyper::HeaderMap) -> Option<std::time::Duration> {
    let value = headers
        .get(hyper::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(std::time::Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        let mut h = hyper::HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(
            hyper::header::RETRY_AFTER,
            hyper::header::HeaderValue::from_static("12"),
        );
        assert_eq!(retry_after(&h), Some(std::time::Duration::from_secs(12)));
        h.insert(
            hyper::header::RETRY_AFTER,
            hyper::header::HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&h), Some(std::time::Duration::ZERO));
        let later = httpdate::fmt_http_date(
            std::time::SystemTime::now() + std::time::Duration::from_secs(3600),
        );
        h.insert(
            hyper::header::RETRY_AFTER,
            hyper::header::HeaderValue::from_str(&later).expect("header"),
        );
        let d = retry_after(&h).expect("a date");
        assert!(
            d > std::time::Duration::from_secs(3500) && d <= std::time::Duration::from_secs(3600)
        );
        h.insert(
            hyper::header::RETRY_AFTER,
            hyper::header::HeaderValue::from_static("soon"),
        );
        assert_eq!(retry_after(&h), None);
    }

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
