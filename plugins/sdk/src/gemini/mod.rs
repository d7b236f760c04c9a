//! The Gemini `generateContent` dialect. [`egress`] talks to Gemini
//! upstreams; [`ingress`] serves Gemini clients (google-genai, Gemini CLI).
//! Shared here: paths, finish reasons, usage, errors.
//!
//! Shapes follow the Gemini API reference (v1beta): `contents[].parts[]`
//! with `text` (and `thought`), `inlineData`, `fileData`, `functionCall`,
//! `functionResponse`; `systemInstruction`; `tools[].functionDeclarations`;
//! `toolConfig.functionCallingConfig`; `generationConfig`; responses with
//! `candidates[].content`, `finishReason`, `usageMetadata`; streams from
//! `:streamGenerateContent?alt=sse`, one whole response object per event and
//! no end marker; errors `{"error":{"code","message","status"}}`.

pub mod egress;
pub mod ingress;

use serde_json::{Value, json};

use crate::error::{kind_for_status, retry_after_ms};
use crate::types::{ErrorKind, Header, PluginError, Usage};

/// The path of a (streamed) generateContent call for `model`.
pub fn generate_path(model: &str, stream: bool) -> String {
    if stream {
        format!("/v1beta/models/{model}:streamGenerateContent?alt=sse")
    } else {
        format!("/v1beta/models/{model}:generateContent")
    }
}

/// Reads a field by its camelCase name or its snake_case one: the API
/// accepts both, and clients send either.
pub fn field<'a>(v: &'a Value, camel: &str) -> Option<&'a Value> {
    v.get(camel)
        .or_else(|| v.get(snake(camel)))
        .filter(|v| !v.is_null())
}

fn snake(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 4);
    for c in camel.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Gemini `finishReason` -> canonical `finish_reason`.
pub fn finish_reason(reason: &str, called_tools: bool) -> &'static str {
    match reason {
        "MAX_TOKENS" => "length",
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY" => {
            "content_filter"
        }
        _ if called_tools => "tool_calls",
        _ => "stop",
    }
}

/// Canonical `finish_reason` -> Gemini `finishReason`.
pub fn gemini_finish_reason(finish: &str) -> &'static str {
    match finish {
        "length" => "MAX_TOKENS",
        "content_filter" => "SAFETY",
        _ => "STOP",
    }
}

/// `usageMetadata` -> gateway usage. Gemini counts thoughts apart from the
/// candidates; the canonical output count (like OpenAI's) includes them.
pub fn usage_from(u: &Value) -> Usage {
    let n = |key: &str| field(u, key).and_then(Value::as_u64).map(|n| n as u32);
    let thoughts = n("thoughtsTokenCount");
    Usage {
        input_tokens: n("promptTokenCount").unwrap_or(0),
        output_tokens: n("candidatesTokenCount").unwrap_or(0) + thoughts.unwrap_or(0),
        cached_input_tokens: n("cachedContentTokenCount"),
        reasoning_tokens: thoughts,
    }
}

/// Canonical usage object -> `usageMetadata`.
pub fn usage_metadata(usage: &Value) -> Value {
    let prompt = usage["prompt_tokens"].as_u64().unwrap_or(0);
    let completion = usage["completion_tokens"].as_u64().unwrap_or(0);
    let reasoning = usage["completion_tokens_details"]["reasoning_tokens"]
        .as_u64()
        .unwrap_or(0);
    let mut meta = json!({
        "promptTokenCount": prompt,
        "candidatesTokenCount": completion.saturating_sub(reasoning),
        "totalTokenCount": prompt + completion,
    });
    if let Some(cached) = usage["prompt_tokens_details"]["cached_tokens"]
        .as_u64()
        .filter(|c| *c > 0)
    {
        meta["cachedContentTokenCount"] = cached.into();
    }
    if reasoning > 0 {
        meta["thoughtsTokenCount"] = reasoning.into();
    }
    meta
}

/// Classifies a Gemini error answer from its `status` (the gRPC code name).
pub fn classify_error(status: u16, headers: &[Header], body: &[u8]) -> PluginError {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let error = parsed.as_ref().and_then(|v| v.get("error"));
    let code = error.and_then(|e| e.get("status")).and_then(Value::as_str);
    let message = error
        .and_then(|e| e.get("message"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| crate::error::unreadable_body_message(status, body));
    let lower = message.to_lowercase();
    let kind = match code {
        // An invalid key is a 400 INVALID_ARGUMENT in this API.
        _ if lower.contains("api key not valid") || lower.contains("api_key_invalid") => {
            ErrorKind::Auth
        }
        Some("UNAUTHENTICATED") => ErrorKind::Auth,
        Some("PERMISSION_DENIED") => ErrorKind::Forbidden,
        Some("NOT_FOUND") => ErrorKind::NotFound,
        Some("RESOURCE_EXHAUSTED") => ErrorKind::RateLimited,
        Some("FAILED_PRECONDITION") if lower.contains("billing") => ErrorKind::QuotaExhausted,
        Some("INVALID_ARGUMENT") if lower.contains("token count") && lower.contains("exceeds") => {
            ErrorKind::ContextLength
        }
        Some("INVALID_ARGUMENT" | "FAILED_PRECONDITION" | "OUT_OF_RANGE") => ErrorKind::BadRequest,
        Some("UNAVAILABLE") => ErrorKind::Overloaded,
        Some("DEADLINE_EXCEEDED") => ErrorKind::Timeout,
        Some("INTERNAL" | "UNKNOWN") => ErrorKind::Upstream,
        _ => kind_for_status(status),
    };
    PluginError {
        kind,
        retry_after_ms: retry_after_ms(headers).or_else(|| retry_delay_ms(error)),
        upstream_status: Some(status),
        code: code.map(str::to_string),
        message,
    }
}

/// `RetryInfo.retryDelay` ("34s") from the error details.
fn retry_delay_ms(error: Option<&Value>) -> Option<u32> {
    let details = error?.get("details")?.as_array()?;
    let delay = details.iter().find_map(|d| d.get("retryDelay")?.as_str())?;
    let secs: f64 = delay.strip_suffix('s')?.parse().ok()?;
    Some((secs * 1000.0) as u32)
}

/// The gRPC status name for an error the gateway returns.
pub fn status_name(status: u16, kind: ErrorKind) -> &'static str {
    match (kind, status) {
        (ErrorKind::Auth, _) => "UNAUTHENTICATED",
        (ErrorKind::Forbidden, _) => "PERMISSION_DENIED",
        (ErrorKind::NotFound, _) => "NOT_FOUND",
        (ErrorKind::RateLimited | ErrorKind::QuotaExhausted, _) => "RESOURCE_EXHAUSTED",
        (ErrorKind::Overloaded, _) => "UNAVAILABLE",
        (ErrorKind::Timeout, _) => "DEADLINE_EXCEEDED",
        (_, 400..=499) => "INVALID_ARGUMENT",
        _ => "INTERNAL",
    }
}

/// `{"error":{"code","message","status"}}`.
pub fn error_value(status: u16, err: &PluginError) -> Value {
    json!({ "error": { "code": status, "message": err.message, "status": status_name(status, err.kind) } })
}

/// The error body for an HTTP answer.
pub fn error_body(status: u16, err: &PluginError) -> Vec<u8> {
    serde_json::to_vec(&error_value(status, err)).expect("json! values serialize")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_gemini_errors() {
        let bad_key = br#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT"}}"#;
        assert_eq!(classify_error(400, &[], bad_key).kind, ErrorKind::Auth);
        let limited = br#"{"error":{"code":429,"message":"You exceeded your current quota","status":"RESOURCE_EXHAUSTED",
            "details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"34s"}]}}"#;
        let e = classify_error(429, &[], limited);
        assert_eq!(
            (e.kind, e.retry_after_ms),
            (ErrorKind::RateLimited, Some(34_000))
        );
        let busy = br#"{"error":{"code":503,"message":"The model is overloaded.","status":"UNAVAILABLE"}}"#;
        assert_eq!(classify_error(503, &[], busy).kind, ErrorKind::Overloaded);
        let bad = br#"{"error":{"code":400,"message":"Invalid JSON payload","status":"INVALID_ARGUMENT"}}"#;
        assert_eq!(classify_error(400, &[], bad).kind, ErrorKind::BadRequest);
    }

    #[test]
    fn usage_counts_thoughts_as_output() {
        let u = usage_from(&json!({"promptTokenCount": 10, "candidatesTokenCount": 5,
            "thoughtsTokenCount": 7, "cachedContentTokenCount": 4, "totalTokenCount": 22}));
        assert_eq!(
            (
                u.input_tokens,
                u.output_tokens,
                u.cached_input_tokens,
                u.reasoning_tokens
            ),
            (10, 12, Some(4), Some(7))
        );
    }

    #[test]
    fn fields_by_either_name() {
        let v = json!({"system_instruction": 1, "generationConfig": 2});
        assert_eq!(field(&v, "systemInstruction"), Some(&json!(1)));
        assert_eq!(field(&v, "generationConfig"), Some(&json!(2)));
    }
}

/// The gemini dialect as a [`crate::dialect::Dialect`]: the built-in `gemini`
/// adapter is `DialectAdapter<GenerateContent>`.
pub struct GenerateContent;

crate::dialect_from_modules!(
    GenerateContent,
    "gemini",
    "Google Gemini generateContent API",
    crate::gemini,
    |options: &str| crate::policy::no_options("the gemini adapter", options)
);
