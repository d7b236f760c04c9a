//! Serving Anthropic clients: Messages request -> canonical request,
//! canonical response -> Messages response, canonical chunks -> Messages
//! stream events.

use std::cell::RefCell;

use serde_json::{Map, Value, json};

use super::{error_value, stop_reason};
use crate::adapter::{DecodedRequest, RequestProfile};
use crate::types::{PluginError, SseEvent};

fn bad(message: impl Into<String>) -> PluginError {
    PluginError::bad_request(message)
}

fn text_of_blocks(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter(|b| b["type"] == "text")
            .filter_map(|b| b["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// Request fields this translation carries.
const CARRIED: &[&str] = &[
    "model",
    "messages",
    "system",
    "max_tokens",
    "temperature",
    "top_p",
    "stop_sequences",
    "stream",
    "metadata",
    "tools",
    "tool_choice",
];

/// Anthropic Messages request -> canonical request.
pub fn decode_request(body: &[u8]) -> Result<DecodedRequest, PluginError> {
    let req: Value = serde_json::from_slice(body).map_err(|e| bad(format!("request body: {e}")))?;
    let mut notes = crate::canonical::dropped_fields(&req, CARRIED);
    // Prompt-cache markers have no equivalent in other dialects.
    if body.windows(15).any(|w| w == b"\"cache_control\"") {
        notes.push("dropped cache_control".into());
    }
    let thinking_blocks = req["messages"].as_array().into_iter().flatten().any(|m| {
        m["content"].as_array().is_some_and(|b| {
            b.iter()
                .any(|b| matches!(b["type"].as_str(), Some("thinking" | "redacted_thinking")))
        })
    });
    if thinking_blocks {
        notes.push("dropped thinking blocks".into());
    }
    let messages = req
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("'messages' must be an array"))?;
    let mut out_messages = Vec::new();
    if let Some(system) = req.get("system") {
        let text = text_of_blocks(system);
        if !text.is_empty() {
            out_messages.push(json!({ "role": "system", "content": text }));
        }
    }
    for (i, m) in messages.iter().enumerate() {
        let role = m["role"].as_str().unwrap_or("");
        let content = &m["content"];
        match role {
            "user" => decode_user(content, &mut out_messages, i)?,
            "assistant" => out_messages.push(decode_assistant(content)),
            // System messages inside the conversation (Claude Code sends
            // them): instructions from that point on, as in chat.
            "system" => {
                let text = text_of_blocks(content);
                if !text.is_empty() {
                    out_messages.push(json!({ "role": "system", "content": text }));
                }
            }
            other => return Err(bad(format!("messages[{i}]: unknown role '{other}'"))),
        }
    }

    let mut out = Map::new();
    out.insert(
        "model".into(),
        req.get("model").cloned().unwrap_or(Value::Null),
    );
    out.insert("messages".into(), Value::Array(out_messages));
    if let Some(n) = req.get("max_tokens") {
        out.insert("max_tokens".into(), n.clone());
    }
    for key in ["temperature", "top_p"] {
        if let Some(v) = req.get(key) {
            out.insert(key.into(), v.clone());
        }
    }
    if let Some(stops) = req
        .get("stop_sequences")
        .and_then(Value::as_array)
        .filter(|s| !s.is_empty())
    {
        out.insert("stop".into(), Value::Array(stops.clone()));
    }
    if req.get("stream").and_then(Value::as_bool) == Some(true) {
        out.insert("stream".into(), true.into());
        out.insert("stream_options".into(), json!({ "include_usage": true }));
    }
    if let Some(user) = req["metadata"]["user_id"].as_str() {
        out.insert("user".into(), user.into());
    }
    // `thinking` is not carried over: OpenAI-dialect models that do not
    // reason refuse `reasoning_effort` outright, and those that do reason anyway.
    decode_tools(&req, &mut out)?;
    Ok(DecodedRequest {
        canonical: serde_json::to_vec(&Value::Object(out)).expect("values serialize"),
        note: String::new(),
        translation_notes: notes,
    })
}

fn decode_user(content: &Value, out: &mut Vec<Value>, i: usize) -> Result<(), PluginError> {
    let Value::Array(blocks) = content else {
        out.push(json!({ "role": "user", "content": content }));
        return Ok(());
    };
    let mut parts = Vec::new();
    for block in blocks {
        match block["type"].as_str() {
            // Tool results come first: OpenAI wants them right after the
            // assistant turn that called the tools.
            Some("tool_result") => {
                let mut text = text_of_blocks(&block["content"]);
                if block["is_error"] == true {
                    text = format!("Error: {text}");
                }
                out.push(json!({ "role": "tool", "tool_call_id": block["tool_use_id"], "content": text }));
            }
            Some("text") => parts.push(json!({ "type": "text", "text": block["text"] })),
            Some("image") => {
                let source = &block["source"];
                let url = match source["type"].as_str() {
                    Some("base64") => format!(
                        "data:{};base64,{}",
                        source["media_type"].as_str().unwrap_or("image/png"),
                        source["data"].as_str().unwrap_or("")
                    ),
                    Some("url") => source["url"].as_str().unwrap_or("").to_string(),
                    _ => return Err(bad(format!("messages[{i}]: unsupported image source"))),
                };
                parts.push(json!({ "type": "image_url", "image_url": { "url": url } }));
            }
            Some(other) => {
                return Err(bad(format!(
                    "messages[{i}]: content block '{other}' cannot be translated for this backend"
                )));
            }
            None => return Err(bad(format!("messages[{i}]: content block without a type"))),
        }
    }
    if !parts.is_empty() {
        let content = if parts.iter().all(|p| p["type"] == "text") {
            Value::String(
                parts
                    .iter()
                    .filter_map(|p| p["text"].as_str())
                    .collect::<Vec<_>>()
                    .join("\n"),
            )
        } else {
            Value::Array(parts)
        };
        out.push(json!({ "role": "user", "content": content }));
    }
    Ok(())
}

fn decode_assistant(content: &Value) -> Value {
    let Value::Array(blocks) = content else {
        return json!({ "role": "assistant", "content": content });
    };
    let text = text_of_blocks(content);
    let calls: Vec<Value> = blocks
        .iter()
        .filter(|b| b["type"] == "tool_use")
        .map(|b| {
            json!({
                "id": b["id"],
                "type": "function",
                "function": {
                    "name": b["name"],
                    "arguments": serde_json::to_string(&b["input"]).expect("values serialize"),
                },
            })
        })
        .collect();
    let mut msg = json!({
        "role": "assistant",
        "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { text.into() },
    });
    if !calls.is_empty() {
        msg["tool_calls"] = Value::Array(calls);
    }
    msg
}

fn decode_tools(req: &Value, out: &mut Map<String, Value>) -> Result<(), PluginError> {
    let Some(tools) = req.get("tools").and_then(Value::as_array) else {
        return Ok(());
    };
    let mut functions = Vec::new();
    for tool in tools {
        // Custom tools have an input_schema; Anthropic's server tools
        // (web search, code execution, ...) have a versioned type and no
        // equivalent elsewhere.
        let Some(schema) = tool.get("input_schema") else {
            return Err(bad(format!(
                "tool '{}' of type '{}' runs on Anthropic's servers and cannot be sent to this backend",
                tool["name"].as_str().unwrap_or("?"),
                tool["type"].as_str().unwrap_or("?")
            )));
        };
        let mut function = json!({ "name": tool["name"], "parameters": schema });
        if let Some(d) = tool.get("description") {
            function["description"] = d.clone();
        }
        functions.push(json!({ "type": "function", "function": function }));
    }
    if functions.is_empty() {
        return Ok(());
    }
    out.insert("tools".into(), Value::Array(functions));
    if let Some(choice) = req.get("tool_choice") {
        let mapped = match choice["type"].as_str() {
            Some("any") => json!("required"),
            Some("none") => json!("none"),
            Some("tool") => json!({ "type": "function", "function": { "name": choice["name"] } }),
            _ => json!("auto"),
        };
        out.insert("tool_choice".into(), mapped);
        if choice["disable_parallel_tool_use"] == true {
            out.insert("parallel_tool_calls".into(), false.into());
        }
    }
    Ok(())
}

/// What an Anthropic request needs from a backend.
pub fn inspect_request(body: &[u8]) -> Result<RequestProfile, PluginError> {
    let req: Value = serde_json::from_slice(body).map_err(|e| bad(format!("request body: {e}")))?;
    let mut text_bytes = text_of_blocks(req.get("system").unwrap_or(&Value::Null)).len();
    let mut vision = false;
    for m in req["messages"].as_array().into_iter().flatten() {
        text_bytes += text_of_blocks(&m["content"]).len();
        vision |= m["content"]
            .as_array()
            .is_some_and(|b| b.iter().any(|b| b["type"] == "image"));
    }
    Ok(RequestProfile {
        tools: req["tools"].as_array().is_some_and(|t| !t.is_empty()),
        vision,
        json_schema: false,
        estimated_input_tokens: (text_bytes / 4).min(u32::MAX as usize) as u32,
    })
}

/// Anthropic's usage object from a canonical one. `input_tokens` excludes
/// cache reads, which are reported apart.
fn usage_value(usage: &Value) -> Value {
    let prompt = usage["prompt_tokens"].as_u64().unwrap_or(0);
    let cached = usage["prompt_tokens_details"]["cached_tokens"]
        .as_u64()
        .unwrap_or(0);
    json!({
        "input_tokens": prompt.saturating_sub(cached),
        "output_tokens": usage["completion_tokens"].as_u64().unwrap_or(0),
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached,
    })
}

fn message_id(canonical_id: &Value) -> String {
    match canonical_id.as_str() {
        Some(id) if id.starts_with("msg_") => id.to_string(),
        Some(id) if !id.is_empty() => format!("msg_{id}"),
        _ => "msg_llmgate".into(),
    }
}

/// Canonical response -> Messages response.
pub fn encode_response(canonical: &[u8], client_model: &str) -> Result<Vec<u8>, PluginError> {
    let resp: Value = serde_json::from_slice(canonical)
        .map_err(|e| PluginError::upstream(format!("canonical response: {e}")))?;
    let choice = &resp["choices"][0];
    let message = &choice["message"];
    let mut content = Vec::new();
    if let Some(reasoning) = message["reasoning_content"]
        .as_str()
        .filter(|r| !r.is_empty())
    {
        content.push(json!({ "type": "thinking", "thinking": reasoning, "signature": "" }));
    }
    let text = crate::canonical::content_text(&message["content"]);
    if !text.is_empty() {
        content.push(json!({ "type": "text", "text": text }));
    }
    for call in message["tool_calls"].as_array().into_iter().flatten() {
        let arguments = call["function"]["arguments"].as_str().unwrap_or("{}");
        content.push(json!({
            "type": "tool_use",
            "id": call["id"],
            "name": call["function"]["name"],
            "input": serde_json::from_str::<Value>(arguments).unwrap_or_else(|_| json!({})),
        }));
    }
    let out = json!({
        "id": message_id(&resp["id"]),
        "type": "message",
        "role": "assistant",
        "model": client_model,
        "content": content,
        "stop_reason": stop_reason(choice["finish_reason"].as_str().unwrap_or("stop")),
        "stop_sequence": null,
        "usage": usage_value(&resp["usage"]),
    });
    Ok(serde_json::to_vec(&out).expect("values serialize"))
}

/// What kind of content block is open in the client's stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    Text,
    Thinking,
    Tool(u64),
}

#[derive(Debug, Default)]
struct EncoderState {
    started: bool,
    /// The open block and its index in the message.
    open: Option<(Block, usize)>,
    next_index: usize,
    stop_reason: Option<&'static str>,
    usage: Option<Value>,
    finished: bool,
}

/// Canonical chunks -> Messages stream events.
#[derive(Debug)]
pub struct Encoder {
    client_model: String,
    state: RefCell<EncoderState>,
}

fn event(name: &str, data: Value) -> SseEvent {
    SseEvent {
        event: Some(name.into()),
        data: serde_json::to_string(&data).expect("values serialize"),
    }
}

impl Encoder {
    /// An encoder for one client stream.
    pub fn new(client_model: &str) -> Self {
        Encoder {
            client_model: client_model.into(),
            state: RefCell::new(EncoderState::default()),
        }
    }

    fn start(&self, st: &mut EncoderState, id: &Value, out: &mut Vec<SseEvent>) {
        if st.started {
            return;
        }
        st.started = true;
        out.push(event(
            "message_start",
            json!({
                "type": "message_start",
                "message": {
                    "id": message_id(id),
                    "type": "message",
                    "role": "assistant",
                    "model": self.client_model,
                    "content": [],
                    "stop_reason": null,
                    "stop_sequence": null,
                    "usage": { "input_tokens": 0, "output_tokens": 0 },
                },
            }),
        ));
    }

    fn close_block(st: &mut EncoderState, out: &mut Vec<SseEvent>) {
        if let Some((_, index)) = st.open.take() {
            out.push(event(
                "content_block_stop",
                json!({ "type": "content_block_stop", "index": index }),
            ));
        }
    }

    /// Makes `block` the open one (closing another), returning its index.
    fn open_block(
        st: &mut EncoderState,
        block: Block,
        start: Value,
        out: &mut Vec<SseEvent>,
    ) -> usize {
        if let Some((open, index)) = st.open
            && open == block
        {
            return index;
        }
        Self::close_block(st, out);
        let index = st.next_index;
        st.next_index += 1;
        st.open = Some((block, index));
        out.push(event(
            "content_block_start",
            json!({
                "type": "content_block_start", "index": index, "content_block": start,
            }),
        ));
        index
    }

    /// Canonical chunks -> events.
    pub fn push(&self, chunks: Vec<Vec<u8>>) -> Result<Vec<SseEvent>, PluginError> {
        let mut st = self.state.borrow_mut();
        let mut out = Vec::new();
        for chunk in chunks {
            let chunk: Value = serde_json::from_slice(&chunk)
                .map_err(|e| PluginError::upstream(format!("canonical chunk: {e}")))?;
            self.start(&mut st, &chunk["id"], &mut out);
            if let Some(usage) = chunk.get("usage").filter(|u| u.is_object()) {
                st.usage = Some(usage.clone());
            }
            let Some(choice) = chunk["choices"].get(0) else {
                continue;
            };
            let delta = &choice["delta"];
            if let Some(text) = delta["reasoning_content"]
                .as_str()
                .filter(|t| !t.is_empty())
            {
                let index = Self::open_block(
                    &mut st,
                    Block::Thinking,
                    json!({ "type": "thinking", "thinking": "" }),
                    &mut out,
                );
                out.push(event(
                    "content_block_delta",
                    json!({
                        "type": "content_block_delta", "index": index,
                        "delta": { "type": "thinking_delta", "thinking": text },
                    }),
                ));
            }
            if let Some(text) = delta["content"].as_str().filter(|t| !t.is_empty()) {
                let index = Self::open_block(
                    &mut st,
                    Block::Text,
                    json!({ "type": "text", "text": "" }),
                    &mut out,
                );
                out.push(event(
                    "content_block_delta",
                    json!({
                        "type": "content_block_delta", "index": index,
                        "delta": { "type": "text_delta", "text": text },
                    }),
                ));
            }
            for call in delta["tool_calls"].as_array().into_iter().flatten() {
                let tool = call["index"].as_u64().unwrap_or(0);
                let is_open = matches!(st.open, Some((Block::Tool(t), _)) if t == tool);
                if !is_open {
                    let start = json!({
                        "type": "tool_use",
                        "id": call["id"].as_str().map(str::to_string).unwrap_or_else(|| format!("toolu_{tool}")),
                        "name": call["function"]["name"],
                        "input": {},
                    });
                    Self::open_block(&mut st, Block::Tool(tool), start, &mut out);
                }
                let index = st.open.expect("just opened").1;
                if let Some(args) = call["function"]["arguments"]
                    .as_str()
                    .filter(|a| !a.is_empty())
                {
                    out.push(event(
                        "content_block_delta",
                        json!({
                            "type": "content_block_delta", "index": index,
                            "delta": { "type": "input_json_delta", "partial_json": args },
                        }),
                    ));
                }
            }
            if let Some(finish) = choice["finish_reason"].as_str() {
                st.stop_reason = Some(stop_reason(finish));
            }
        }
        Ok(out)
    }

    /// The stream ended: closes the open block and the message, with usage.
    pub fn finish(&self) -> Vec<SseEvent> {
        let mut st = self.state.borrow_mut();
        let mut out = Vec::new();
        if st.finished {
            return out;
        }
        st.finished = true;
        self.start(&mut st, &Value::Null, &mut out);
        Self::close_block(&mut st, &mut out);
        let usage = usage_value(st.usage.as_ref().unwrap_or(&Value::Null));
        out.push(event("message_delta", json!({
            "type": "message_delta",
            "delta": { "stop_reason": st.stop_reason.unwrap_or("end_turn"), "stop_sequence": null },
            "usage": usage,
        })));
        out.push(event("message_stop", json!({ "type": "message_stop" })));
        out
    }

    /// The stream failed after it started: an `error` event.
    pub fn fail(&self, err: &PluginError) -> Vec<SseEvent> {
        self.state.borrow_mut().finished = true;
        vec![event("error", error_value(500, err))]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_messages_inside_the_conversation_keep_their_place() {
        let body = br#"{"model":"m","max_tokens":10,"system":"first","messages":[
            {"role":"user","content":"hi"},
            {"role":"system","content":[{"type":"text","text":"later rule"}]},
            {"role":"assistant","content":"ok"}]}"#;
        let decoded = decode_request(body).unwrap();
        let canonical: Value = serde_json::from_slice(&decoded.canonical).unwrap();
        let roles: Vec<(&str, &str)> = canonical["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["role"].as_str().unwrap(),
                    m["content"].as_str().unwrap_or(""),
                )
            })
            .collect();
        assert_eq!(
            roles,
            [
                ("system", "first"),
                ("user", "hi"),
                ("system", "later rule"),
                ("assistant", "ok")
            ]
        );
    }
}
