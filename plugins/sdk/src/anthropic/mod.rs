//! The Anthropic Messages dialect. [`egress`] talks to Anthropic upstreams
//! (canonical request out, Anthropic answers back to canonical); [`ingress`]
//! serves Anthropic clients (their requests to canonical, canonical answers
//! back to Anthropic's shapes). Shared here: stop reasons, usage, errors.
//!
//! Shapes follow Anthropic's API reference for `POST /v1/messages`: content
//! blocks (`text`, `image`, `tool_use`, `tool_result`, `thinking`), the
//! stream events `message_start`, `content_block_start|delta|stop`,
//! `message_delta`, `message_stop`, `ping`, `error`, and error objects
//! `{"type":"error","error":{"type","message"}}`.

pub mod egress;
pub mod ingress;

use serde_json::Value;

use crate::error::{kind_for_status, retry_after_ms};
use crate::types::{ErrorKind, Header, PluginError, Usage};

/// The Messages endpoint, appended to `base_url` (`https://api.anthropic.com`).
pub const MESSAGES_PATH: &str = "/v1/messages";

/// The API version every request declares.
pub const API_VERSION: &str = "2023-06-01";

/// Anthropic `stop_reason` -> canonical `finish_reason`.
pub fn finish_reason(stop_reason: &str) -> &'static str {
    match stop_reason {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        // end_turn, stop_sequence, pause_turn
        _ => "stop",
    }
}

/// Canonical `finish_reason` -> Anthropic `stop_reason`.
pub fn stop_reason(finish_reason: &str) -> &'static str {
    match finish_reason {
        "length" => "max_tokens",
        "tool_calls" | "function_call" => "tool_use",
        "content_filter" => "refusal",
        _ => "end_turn",
    }
}

/// Anthropic usage -> gateway usage. Anthropic's `input_tokens` leaves out
/// cache reads and writes; the canonical count (like OpenAI's) includes them.
pub fn usage_from(u: &Value) -> Usage {
    let n = |key: &str| u.get(key).and_then(Value::as_u64).unwrap_or(0) as u32;
    let cache_read = u.get("cache_read_input_tokens").and_then(Value::as_u64);
    Usage {
        input_tokens: n("input_tokens")
            + n("cache_read_input_tokens")
            + n("cache_creation_input_tokens"),
        output_tokens: n("output_tokens"),
        cached_input_tokens: cache_read.map(|c| c as u32),
        reasoning_tokens: None,
    }
}

/// Classifies an Anthropic error answer.
pub fn classify_error(status: u16, headers: &[Header], body: &[u8]) -> PluginError {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let error = parsed.as_ref().and_then(|v| v.get("error"));
    let kind_name = error.and_then(|e| e.get("type")).and_then(Value::as_str);
    let message = error
        .and_then(|e| e.get("message"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| crate::error::unreadable_body_message(status, body));
    let lower = message.to_lowercase();
    let kind = match kind_name {
        Some("overloaded_error") => ErrorKind::Overloaded,
        Some("rate_limit_error") => ErrorKind::RateLimited,
        Some("authentication_error") => ErrorKind::Auth,
        Some("permission_error") => ErrorKind::Forbidden,
        Some("not_found_error") => ErrorKind::NotFound,
        Some("request_too_large") => ErrorKind::ContextLength,
        Some("billing_error") => ErrorKind::QuotaExhausted,
        // Anthropic reports an empty balance as an invalid request.
        Some("invalid_request_error") if lower.contains("credit balance") => {
            ErrorKind::QuotaExhausted
        }
        Some("invalid_request_error") if lower.contains("prompt is too long") => {
            ErrorKind::ContextLength
        }
        Some("invalid_request_error") => ErrorKind::BadRequest,
        Some("api_error") => ErrorKind::Upstream,
        _ => kind_for_status(status),
    };
    PluginError {
        kind,
        retry_after_ms: retry_after_ms(headers),
        upstream_status: Some(status),
        code: kind_name.map(str::to_string),
        message,
    }
}

/// The Anthropic `error.type` for an error the gateway returns.
pub fn error_type(status: u16, kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::Auth => "authentication_error",
        ErrorKind::Forbidden => "permission_error",
        ErrorKind::NotFound => "not_found_error",
        ErrorKind::RateLimited | ErrorKind::QuotaExhausted => "rate_limit_error",
        ErrorKind::Overloaded => "overloaded_error",
        ErrorKind::ContextLength if status == 413 => "request_too_large",
        ErrorKind::BadRequest | ErrorKind::ContextLength | ErrorKind::ContentFilter => {
            "invalid_request_error"
        }
        _ if status == 413 => "request_too_large",
        _ if status < 500 => "invalid_request_error",
        ErrorKind::Timeout | ErrorKind::Upstream | ErrorKind::Internal => "api_error",
    }
}

/// `{"type":"error","error":{"type","message"}}`.
pub fn error_value(status: u16, err: &PluginError) -> Value {
    serde_json::json!({
        "type": "error",
        "error": { "type": error_type(status, err.kind), "message": err.message },
    })
}

/// The error body for an HTTP answer.
pub fn error_body(status: u16, err: &PluginError) -> Vec<u8> {
    serde_json::to_vec(&error_value(status, err)).expect("json! values serialize")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_anthropic_errors() {
        let overloaded =
            br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
        assert_eq!(
            classify_error(529, &[], overloaded).kind,
            ErrorKind::Overloaded
        );
        let credit = br#"{"type":"error","error":{"type":"invalid_request_error","message":"Your credit balance is too low to access the Anthropic API."}}"#;
        assert_eq!(
            classify_error(400, &[], credit).kind,
            ErrorKind::QuotaExhausted
        );
        let long = br#"{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 210000 tokens > 200000 maximum"}}"#;
        assert_eq!(
            classify_error(400, &[], long).kind,
            ErrorKind::ContextLength
        );
        let bad = br#"{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: Field required"}}"#;
        let e = classify_error(400, &[], bad);
        assert_eq!(
            (e.kind, e.message.as_str()),
            (ErrorKind::BadRequest, "max_tokens: Field required")
        );
        assert_eq!(
            classify_error(502, &[], b"<html>").kind,
            ErrorKind::Upstream
        );
    }

    #[test]
    fn usage_counts_cache_in_input() {
        let u = usage_from(
            &serde_json::json!({"input_tokens": 5, "cache_read_input_tokens": 100,
            "cache_creation_input_tokens": 10, "output_tokens": 7}),
        );
        assert_eq!(
            (u.input_tokens, u.output_tokens, u.cached_input_tokens),
            (115, 7, Some(100))
        );
    }

    #[test]
    fn error_bodies() {
        let err = PluginError::new(ErrorKind::RateLimited, "slow down");
        assert_eq!(
            error_value(429, &err),
            serde_json::json!({"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}})
        );
    }
}

/// The anthropic dialect as a [`crate::dialect::Dialect`]: the built-in `anthropic`
/// adapter is `DialectAdapter<Messages>`.
pub struct Messages;

crate::dialect_from_modules!(
    Messages,
    "anthropic",
    "Anthropic Messages API",
    crate::anthropic,
    |options: &str| egress::Options::parse(options)
        .map(|_| ())
        .map_err(|e| e.message)
);
