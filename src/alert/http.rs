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
pub(crate) fn check_url(sink: &str, key: &str, url: &str) -> Result<hyper::Uri, SinkError> {
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

/// The longest wait a `Retry-After` may ask for; longer (or overflowing) values are cut to it.
pub const MAX_RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(3600);

/// Reads `Retry-After` (see [`parse_retry_after`]).
pub fn retry_after(headers: &hyper::HeaderMap) -> Option<std::time::Duration> {
    let value = headers.get(hyper::header::RETRY_AFTER)?.to_str().ok()?;
    parse_retry_after(value, std::time::SystemTime::now())
}

/// Parses a `Retry-After` value defensively: delay seconds (the form Slack and most APIs
/// send) or an HTTP date relative to `now` (a date in the past means "now": zero). The result
/// is never more than [`MAX_RETRY_AFTER`]: a delay too large for any integer type
/// (`100000000000000`, `18446744073709551615`, a 30-digit number) is that maximum, so that
/// callers adding it to a clock never overflow. Negative, fractional or garbage values are
/// `None` (no hint: the caller's own backoff applies).
pub(crate) fn parse_retry_after(
    value: &str,
    now: std::time::SystemTime,
) -> Option<std::time::Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // All digits: only the size can fail, and a huge delay is the maximum.
        let secs = value.parse::<u64>().unwrap_or(u64::MAX);
        return Some(std::time::Duration::from_secs(secs).min(MAX_RETRY_AFTER));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(
        when.duration_since(now)
            .unwrap_or_default()
            .min(MAX_RETRY_AFTER),
    )
}

/// The wait before retrying a delivery: the server's `Retry-After` (`raw`, when it sent one)
/// but never less than `backoff_step` (the sink's own next backoff delay: a `Retry-After: 0`
/// or `1` must not turn the retries into a burst that exhausts them in seconds) and never more
/// than [`MAX_RETRY_AFTER`] (one hour: a huge value must not park the alert for ever or
/// overflow a clock). Without `raw`, `backoff_step` itself, capped the same way.
///
/// Re-exported as `envdrift::alert::clamp_retry_after` for the outbox driver (src/daemon).
pub(crate) fn clamp_retry_after(
    raw: Option<std::time::Duration>,
    backoff_step: std::time::Duration,
) -> std::time::Duration {
    let floor = backoff_step.min(MAX_RETRY_AFTER);
    raw.unwrap_or(floor).clamp(floor, MAX_RETRY_AFTER)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_parsed_defensively() {
        use std::time::{Duration, SystemTime};
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let p = |v: &str| parse_retry_after(v, now);
        assert_eq!(p("0"), Some(Duration::ZERO));
        assert_eq!(p(" 30 "), Some(Duration::from_secs(30)));
        assert_eq!(p("100000000000000"), Some(MAX_RETRY_AFTER));
        assert_eq!(p("18446744073709551615"), Some(MAX_RETRY_AFTER));
        assert_eq!(p("184467440737095516150000"), Some(MAX_RETRY_AFTER));
        for bad in ["-5", "-0", "1.5", "", "soon", "+3", "0x10", "1e9"] {
            assert_eq!(p(bad), None, "{bad}");
        }
        let later = httpdate::fmt_http_date(now + Duration::from_secs(120));
        assert_eq!(p(&later), Some(Duration::from_secs(120)));
        let far = httpdate::fmt_http_date(now + Duration::from_secs(86_400 * 365));
        assert_eq!(p(&far), Some(MAX_RETRY_AFTER));
        let past = httpdate::fmt_http_date(now - Duration::from_secs(60));
        assert_eq!(p(&past), Some(Duration::ZERO));
    }

    #[test]
    fn retry_after_is_clamped_to_backoff_and_an_hour() {
        use std::time::Duration;
        let step = Duration::from_secs(30);
        assert_eq!(clamp_retry_after(None, step), step);
        assert_eq!(clamp_retry_after(Some(Duration::ZERO), step), step);
        assert_eq!(clamp_retry_after(Some(Duration::from_secs(1)), step), step);
        assert_eq!(
            clamp_retry_after(Some(Duration::from_secs(90)), step),
            Duration::from_secs(90)
        );
        assert_eq!(
            clamp_retry_after(Some(Duration::from_secs(u64::MAX)), step),
            MAX_RETRY_AFTER
        );
        assert_eq!(
            clamp_retry_after(Some(Duration::MAX), step),
            MAX_RETRY_AFTER
        );
        // A backoff step over an hour is cut to the hour too.
        assert_eq!(
            clamp_retry_after(None, Duration::from_secs(7200)),
            MAX_RETRY_AFTER
        );
    }

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
