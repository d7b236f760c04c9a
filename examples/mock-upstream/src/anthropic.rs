//! The Anthropic Messages side of the mock: `message` objects, the event
//! stream (`message_start`, `content_block_*`, `ping`, `message_delta`,
//! `message_stop`, `error`), tool use, and Anthropic error objects. Like the
//! real API it requires `anthropic-version`, `max_tokens`, and tool results
//! that answer an earlier `tool_use`.

use serde_json::{Value, json};

use crate::script::{Break, Conversation, Failure, Reply};
use crate::{Body, Frame, Settings, error_response, json_response, sse_response};

fn error(status: u16, kind: &str, message: &str) -> hyper::Response<Body> {
    error_response(
        status,
        json!({"type": "error", "error": {"type": kind, "message": message}}),
    )
}

/// Fails the way Anthropic does for a scripted failure.
pub fn failure(f: Failure) -> hyper::Response<Body> {
    match f {
        Failure::Server => error(500, "api_error", "Internal server error"),
        Failure::RateLimited => {
            let mut r = error(
                429,
                "rate_limit_error",
                "Number of request tokens has exceeded your per-minute rate limit",
            );
            r.headers_mut().insert("retry-after", "1".parse().unwrap());
            r
        }
        Failure::Quota => error(
            400,
            "invalid_request_error",
            "Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits.",
        ),
        Failure::BadRequest => error(
            400,
            "invalid_request_error",
            "messages: Input should be a valid list",
        ),
        Failure::Overloaded => error(529, "overloaded_error", "Overloaded"),
        Failure::Stall => unreachable!("stalls are handled before"),
    }
}

/// Checks what the real API checks, then gives the dialect-neutral view.
pub fn conversation(
    headers: &hyper::HeaderMap,
    req: &Value,
) -> Result<Conversation, hyper::Response<Body>> {
    if !headers.contains_key("anthropic-version") {
        return Err(error(
            400,
            "invalid_request_error",
            "anthropic-version: header is required",
        ));
    }
    if req["max_tokens"].as_u64().is_none() {
        return Err(error(
            400,
            "invalid_request_error",
            "max_tokens: Field required",
        ));
    }
    let messages = req["messages"]
        .as_array()
        .ok_or_else(|| error(400, "invalid_request_error", "messages: Field required"))?;
    let mut conv = Conversation::default();
    let mut tool_ids: Vec<String> = Vec::new();
    conv.prompt_words = text_of(&req["system"]).split_whitespace().count() as u64;
    for (i, m) in messages.iter().enumerate() {
        conv.prompt_words += text_of(&m["content"]).split_whitespace().count() as u64;
        let blocks = m["content"].as_array().cloned().unwrap_or_default();
        match m["role"].as_str() {
            Some("user") => {
                conv.tool_result = None;
                for b in &blocks {
                    if b["type"] == "tool_result" {
                        let id = b["tool_use_id"].as_str().unwrap_or("");
                        if !tool_ids.iter().any(|t| t == id) {
                            return Err(error(
                                400,
                                "invalid_request_error",
                                &format!(
                                    "messages.{i}.content: unexpected `tool_use_id` found in `tool_result` blocks: {id}"
                                ),
                            ));
                        }
                        conv.tool_result = Some(text_of(&b["content"]));
                    }
                    if b["type"] == "text" && b["text"].as_str() == Some("") {
                        return Err(error(
                            400,
                            "invalid_request_error",
                            "messages: text content blocks must be non-empty",
                        ));
                    }
                }
                let text = text_of(&m["content"]);
                if !text.is_empty() {
                    conv.last_user_text = text;
                }
            }
            Some("assistant") => {
                for b in blocks.iter().filter(|b| b["type"] == "tool_use") {
                    tool_ids.push(b["id"].as_str().unwrap_or("").to_string());
                }
            }
            // Instructions mid-conversation, as the API takes them.
            Some("system") => {}
            other => {
                return Err(error(
                    400,
                    "invalid_request_error",
                    &format!("messages.{i}.role: unexpected role {other:?}"),
                ));
            }
        }
    }
    conv.tools = req["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["name"].as_str().map(str::to_string))
        .collect();
    Ok(conv)
}

/// Text of a string or of the `text` blocks of a block list.
fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter(|b| b["type"] == "text")
            .filter_map(|b| b["text"].as_str())
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

const TOOL_ID: &str = "toolu_mock_1";

fn usage(input: u64, output: u64) -> Value {
    json!({"input_tokens": input, "output_tokens": output, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0})
}

/// A whole `message`.
pub fn message(model: &str, conv: &Conversation, reply: &Reply) -> hyper::Response<Body> {
    let (content, stop) = match reply {
        Reply::Text(_) => (
            json!([{"type": "text", "text": reply.joined()}]),
            "end_turn",
        ),
        Reply::ToolCall { name, .. } => {
            let input: Value = serde_json::from_str(&reply.joined()).unwrap();
            (
                json!([{"type": "tool_use", "id": TOOL_ID, "name": name, "input": input}]),
                "tool_use",
            )
        }
    };
    json_response(
        200,
        &json!({
            "id": "msg_mock", "type": "message", "role": "assistant", "model": model,
            "content": content, "stop_reason": stop, "stop_sequence": null,
            "usage": usage(conv.prompt_words, reply.tokens()),
        }),
    )
}

fn event(name: &str, data: Value) -> Frame {
    Frame::event(name, &data.to_string())
}

/// A Messages event stream.
pub fn stream(
    settings: &Settings,
    model: &str,
    conv: &Conversation,
    reply: &Reply,
) -> hyper::Response<Body> {
    let mut frames = vec![event(
        "message_start",
        json!({"type": "message_start", "message": {
            "id": "msg_mock", "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": null, "stop_sequence": null, "usage": usage(conv.prompt_words, 1)}}),
    )];
    let (start, pieces, stop) = match reply {
        Reply::Text(p) => (json!({"type": "text", "text": ""}), p, "end_turn"),
        Reply::ToolCall { name, arguments } => (
            json!({"type": "tool_use", "id": TOOL_ID, "name": name, "input": {}}),
            arguments,
            "tool_use",
        ),
    };
    frames.push(
        event(
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": start}),
        )
        .now(),
    );
    frames.push(event("ping", json!({"type": "ping"})).now());
    let broken = crate::script::stream_break(model);
    for (i, piece) in pieces.iter().enumerate() {
        let delta = match reply {
            Reply::Text(_) => json!({"type": "text_delta", "text": piece}),
            Reply::ToolCall { .. } => json!({"type": "input_json_delta", "partial_json": piece}),
        };
        frames.push(event(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": delta}),
        ));
        if i == 0
            && let Some(kind) = broken
        {
            frames.push(match kind {
                Break::Garbage => Frame::event("content_block_delta", "this is not json"),
                Break::Error => event("error", json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})),
                Break::Stall => Frame::Stall,
                Break::Cut => Frame::Close,
            });
            return sse_response(frames, settings.delay);
        }
    }
    frames.push(event(
        "content_block_stop",
        json!({"type": "content_block_stop", "index": 0}),
    ));
    frames.push(event("message_delta", json!({"type": "message_delta",
        "delta": {"stop_reason": stop, "stop_sequence": null}, "usage": {"output_tokens": reply.tokens()}})).now());
    frames.push(event("message_stop", json!({"type": "message_stop"})).now());
    sse_response(frames, settings.delay)
}
