//! Building and classifying [`PluginError`]s: the generic HTTP-status mapping
//! every adapter starts from, and `Retry-After` parsing.

use crate::types::{ErrorKind, Header, PluginError};

impl PluginError {
    /// An error of `kind` with a message and nothing else known.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        PluginError {
            kind,
            retry_after_ms: None,
            upstream_status: None,
            code: None,
            message: message.into(),
        }
    }

    /// A client error: the request itself is wrong.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadRequest, message)
    }

    /// The upstream sent something this adapter cannot read.
    pub fn upstream(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Upstream, message)
    }
}

/// The error kind an HTTP status means when the body says nothing more precise.
pub fn kind_for_status(status: u16) -> ErrorKind {
    match status {
        401 => ErrorKind::Auth,
        402 => ErrorKind::QuotaExhausted,
        403 => ErrorKind::Forbidden,
        404 => ErrorKind::NotFound,
        408 => ErrorKind::Timeout,
        413 => ErrorKind::ContextLength,
        429 => ErrorKind::RateLimited,
        400..=499 => ErrorKind::BadRequest,
        // 529 is Anthropic's "overloaded"; 503 is everyone else's.
        503 | 529 => ErrorKind::Overloaded,
        504 => ErrorKind::Timeout,
        _ => ErrorKind::Upstream,
    }
}

/// The message for an error body the adapter cannot read (an HTML page
/// from a proxy, say): the status and the body's start, cut at 512 bytes.
pub fn unreadable_body_message(status: u16, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(512)]);
    format!("upstream answered HTTP {status}: {text}")
}

/// How long the upstream asked us to wait, from `retry-after-ms` (OpenAI) or
/// `retry-after` in seconds. HTTP-date values are ignored: a plugin has no clock.
pub fn retry_after_ms(headers: &[Header]) -> Option<u32> {
    let find = |name: &str| {
        headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.trim())
    };
    if let Some(ms) = find("retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        return Some(ms.clamp(0.0, u32::MAX as f64) as u32);
    }
    let secs = find("retry-after")?.parse::<f64>().ok()?;
    Some((secs * 1000.0).clamp(0.0, u32::MAX as f64) as u32)
}

/// The canonical name of a kind, as used in logs, metrics and config rules.
pub fn kind_name(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::BadRequest => "bad_request",
        ErrorKind::Auth => "auth",
        ErrorKind::Forbidden => "forbidden",
        ErrorKind::NotFound => "not_found",
        ErrorKind::ContextLength => "context_length",
        ErrorKind::ContentFilter => "content_filter",
        ErrorKind::RateLimited => "rate_limited",
        ErrorKind::QuotaExhausted => "quota_exhausted",
        ErrorKind::Overloaded => "overloaded",
        ErrorKind::Timeout => "timeout",
        ErrorKind::Upstream => "upstream",
        ErrorKind::Internal => "internal",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(name: &str, value: &str) -> Header {
        Header {
            name: name.into(),
            value: value.into(),
        }
    }

    #[test]
    fn status_mapping() {
        assert_eq!(kind_for_status(429), ErrorKind::RateLimited);
        assert_eq!(kind_for_status(422), ErrorKind::BadRequest);
        assert_eq!(kind_for_status(529), ErrorKind::Overloaded);
        assert_eq!(kind_for_status(500), ErrorKind::Upstream);
        assert_eq!(kind_for_status(401), ErrorKind::Auth);
    }

    #[test]
    fn retry_after_prefers_milliseconds() {
        let h = [header("Retry-After", "2"), header("retry-after-ms", "1500")];
        assert_eq!(retry_after_ms(&h), Some(1500));
        assert_eq!(retry_after_ms(&[header("retry-after", "3")]), Some(3000));
        assert_eq!(
            retry_after_ms(&[header("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT")]),
            None
        );
        assert_eq!(retry_after_ms(&[]), None);
    }
}
