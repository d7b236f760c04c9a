//! The OpenAI Chat Completions side of the mock: `chat.completion` objects,
//! `chat.completion.chunk` streams (with a usage-only chunk when
//! `stream_options.include_usage` is set, then `data: [DONE]`), tool calls,
//! and OpenAI error objects.

use serde_json::{Value, json};

use crate::script::{Break, Conversation, Failure, Reply};
use crate::{Body, Frame, Settings, error_response, json_response, sse_response};

fn error(status: u16, kind: &str, code: &str, message: &str) -> hyper::Response<Body> {
    error_response(
        status,
        json!({"error": {"message": message, "type": kind, "param": null, "code": code}}),
    )
}

/// Fails the way OpenAI does for a scripted failure.
pub fn failure(f: Failure) -> hyper::Response<Body> {
    match f {
        Failure::Server => error(
            500,
            "server_error",
            "server_error",
            "The server had an error while processing your request.",
        ),
        Failure::RateLimited => {
            let mut r = error(
                429,
                "requests",
                "rate_limit_exceeded",
                "Rate limit reached for requests.",
            );
            r.headers_mut().insert("retry-after", "1".parse().unwrap());
            r
        }
        Failure::Quota => error(
            429,
            "insufficient_quota",
            "insufficient_quota",
            "You exceeded your current quota, please check your plan and billing details.",
        ),
        Failure::BadRequest => error(
            400,
            "invalid_request_error",
            "invalid_value",
            "Invalid value for 'messages'.",
        ),
        Failure::Overloaded => error(
            503,
            "server_error",
            "overloaded",
            "The engine is currently overloaded.",
        ),
        Failure::Stall => unreachable!("stalls are handled before"),
    }
}

/// The dialect-neutral view, or the 400 the real API would send.
pub fn conversation(req: &Value) -> Result<Conversation, hyper::Response<Body>> {
    let messages = req["messages"].as_array().ok_or_else(|| {
        error(
            400,
            "invalid_request_error",
            "missing_required_parameter",
            "Missing required parameter: 'messages'.",
        )
    })?;
    let mut conv = Conversation::default();
    let mut call_ids = Vec::new();
    for m in messages {
        let text = text_of(&m["content"]);
        conv.prompt_words += text.split_whitespace().count() as u64;
        match m["role"].as_str() {
            Some("user") => conv.last_user_text = text,
            Some("assistant") => {
                for call in m["tool_calls"].as_array().into_iter().flatten() {
                    call_ids.push(call["id"].as_str().unwrap_or("").to_string());
                }
            }
            Some("tool") => {
                let id = m["tool_call_id"].as_str().unwrap_or("");
                if !call_ids.iter().any(|c| c == id) {
                    return Err(error(
                        400,
                        "invalid_request_error",
                        "invalid_tool_call_id",
                        &format!(
                            "Invalid parameter: 'tool_call_id' {id} does not match a preceding tool call."
                        ),
                    ));
                }
            }
            _ => {}
        }
    }
    conv.tool_result = messages
        .last()
        .filter(|m| m["role"] == "tool")
        .map(|m| text_of(&m["content"]));
    conv.tools = req["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["function"]["name"].as_str().map(str::to_string))
        .collect();
    Ok(conv)
}

fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

fn usage(prompt: u64, completion: u64) -> Value {
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
            "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}
    })
}

const CALL_ID: &str = "call_mock_1";

/// A whole `chat.completion`.
pub fn completion(model: &str, conv: &Conversation, reply: &Reply) -> hyper::Response<Body> {
    let (message, finish) = match reply {
        Reply::Text(_) => (
            json!({"role": "assistant", "content": reply.joined(), "refusal": null}),
            "stop",
        ),
        Reply::ToolCall { name, .. } => (
            json!({"role": "assistant", "content": null, "refusal": null, "tool_calls": [{
                "id": CALL_ID, "type": "function", "function": {"name": name, "arguments": reply.joined()}
            }]}),
            "tool_calls",
        ),
    };
    json_response(
        200,
        &json!({
            "id": "chatcmpl-mock",
            "object": "chat.completion",
            "created": 1700000000,
            "model": model,
            "system_fingerprint": "fp_mock",
            "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish}],
            "usage": usage(conv.prompt_words, reply.tokens()),
        }),
    )
}

/// A `chat.completion.chunk` stream.
pub fn stream(
    settings: &Settings,
    model: &str,
    req: &Value,
    conv: &Conversation,
    reply: &Reply,
) -> hyper::Response<Body> {
    let include_usage = req["stream_options"]["include_usage"]
        .as_bool()
        .unwrap_or(false);
    let chunk = |delta: Value, finish: Value| {
        let mut c = json!({
            "id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1700000000,
            "model": model, "system_fingerprint": "fp_mock",
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        });
        if include_usage {
            c["usage"] = Value::Null;
        }
        Frame::data(&c.to_string())
    };
    let mut frames = vec![chunk(
        json!({"role": "assistant", "content": if matches!(reply, Reply::Text(_)) { json!("") } else { Value::Null }, "refusal": null}),
        Value::Null,
    )];
    let pieces = match reply {
        Reply::Text(p) => p,
        Reply::ToolCall { arguments, .. } => arguments,
    };
    let broken = crate::script::stream_break(model);
    for (i, piece) in pieces.iter().enumerate() {
        let delta = match reply {
            Reply::Text(_) => json!({"content": piece}),
            Reply::ToolCall { name, .. } if i == 0 => {
                json!({"tool_calls": [{"index": 0, "id": CALL_ID, "type": "function",
                "function": {"name": name, "arguments": piece}}]})
            }
            Reply::ToolCall { .. } => {
                json!({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
            }
        };
        frames.push(chunk(delta, Value::Null));
        if i == 0
            && let Some(kind) = broken
        {
            frames.push(match kind {
                Break::Garbage => Frame::data("this is not json"),
                Break::Error => Frame::data(
                    &json!({"error": {"message": "The model crashed mid-stream.",
                    "type": "server_error", "code": null}})
                    .to_string(),
                ),
                Break::Stall => Frame::Stall,
                Break::Cut => Frame::Close,
            });
            return sse_response(frames, settings.delay);
        }
    }
    let finish = if matches!(reply, Reply::Text(_)) {
        "stop"
    } else {
        "tool_calls"
    };
    frames.push(chunk(json!({}), json!(finish)));
    if include_usage {
        frames.push(
            Frame::data(
                &json!({
                    "id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1700000000,
                    "model": model, "system_fingerprint": "fp_mock", "choices": [],
                    "usage": usage(conv.prompt_words, reply.tokens()),
                })
                .to_string(),
            )
            .now(),
        );
    }
    frames.push(Frame::data("[DONE]").now());
    sse_response(frames, settings.delay)
}
