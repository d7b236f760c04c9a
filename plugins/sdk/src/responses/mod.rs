//! The OpenAI Responses API (`POST /v1/responses`), the dialect Codex and
//! newer OpenAI SDK code speak.
//!
//! Clients of this dialect are served from any backend: [`ingress`] turns a
//! Responses request into a canonical chat request (input items,
//! instructions, function tools, function calls and their outputs) and the
//! canonical answer back into a Response object or its typed stream events.
//! Upstreams that speak it themselves are passed through natively
//! ([`egress`]); a chat request is not translated into it (the adapter
//! refuses, and the host moves to a route that can carry the request).
//!
//! Server-side state is not kept: `previous_response_id`, `store: true` and
//! `item_reference` inputs are refused with a 400 naming the field when the
//! request has to be translated (a native Responses upstream keeps them).

pub mod egress;
pub mod ingress;

use serde_json::{Value, json};

use crate::types::{Header, PluginError, Usage};

/// Classifies a Responses API error: the same error object as chat.
pub fn classify_error(status: u16, headers: &[Header], body: &[u8]) -> PluginError {
    crate::openai::classify_error(status, headers, body)
}

/// An error body in this dialect: the same object as chat's.
pub fn error_body(status: u16, err: &PluginError) -> Vec<u8> {
    crate::openai::error_body(status, err)
}

/// A Response's `usage` from canonical (chat) usage.
pub fn response_usage(usage: &Value) -> Value {
    let input = usage["prompt_tokens"].as_u64().unwrap_or(0);
    let output = usage["completion_tokens"].as_u64().unwrap_or(0);
    json!({
        "input_tokens": input,
        "input_tokens_details": {
            "cached_tokens": usage["prompt_tokens_details"]["cached_tokens"].as_u64().unwrap_or(0),
        },
        "output_tokens": output,
        "output_tokens_details": {
            "reasoning_tokens": usage["completion_tokens_details"]["reasoning_tokens"].as_u64().unwrap_or(0),
        },
        "total_tokens": usage["total_tokens"].as_u64().unwrap_or(input + output),
    })
}

/// Usage from a Response's `usage`.
pub fn usage_of(usage: &Value) -> Option<Usage> {
    let input = usage["input_tokens"].as_u64()?;
    Some(Usage {
        input_tokens: input.min(u32::MAX.into()) as u32,
        output_tokens: usage["output_tokens"]
            .as_u64()
            .unwrap_or(0)
            .min(u32::MAX.into()) as u32,
        cached_input_tokens: usage["input_tokens_details"]["cached_tokens"]
            .as_u64()
            .map(|n| n.min(u32::MAX.into()) as u32),
        reasoning_tokens: usage["output_tokens_details"]["reasoning_tokens"]
            .as_u64()
            .map(|n| n.min(u32::MAX.into()) as u32),
    })
}

/// The Responses dialect as a [`crate::dialect::Dialect`]: the built-in
/// `responses` adapter is `DialectAdapter<Responses>`.
pub struct Responses;

crate::dialect_from_modules!(
    Responses,
    "responses",
    "OpenAI Responses API (native passthrough; other backends via chat)",
    crate::responses,
    |options: &str| crate::policy::no_options("the responses adapter", options)
);
