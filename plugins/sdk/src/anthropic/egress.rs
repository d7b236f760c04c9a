//! Talking to an Anthropic upstream: canonical request -> Messages request,
//! Messages response -> canonical response, Messages stream -> canonical chunks.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{API_VERSION, MESSAGES_PATH, classify_error, finish_reason, usage_from};
use crate::adapter::{AuthPlacement, CallContext, Decoded, ParsedResponse, UpstreamRequest};
use crate::canonical::{self, content_text, parse_data_url};
use crate::json;
use crate::types::{ErrorKind, Header, PluginError, SseEvent, Usage};

/// Adapter options under `[providers.options]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// `max_tokens` when the client sets none: Anthropic requires the field,
    /// OpenAI clients usually omit it. 4096 fits every current model.
    #[serde(default = "default_max_tokens")]
    pub default_max_tokens: u32,
}

fn default_max_tokens() -> u32 {
    4096
}

impl Options {
    /// Reads the provider's options JSON.
    pub fn parse(options: &str) -> Result<Options, PluginError> {
        serde_json::from_str(options)
            .map_err(|e| PluginError::new(ErrorKind::Internal, format!("adapter options: {e}")))
    }
}

fn bad(message: impl Into<String>) -> PluginError {
    PluginError::bad_request(message)
}

/// Builds the upstream request: the client's own body with the upstream
/// model (native), or the canonical request translated.
pub fn build_request(
    ctx: &CallContext,
    body: &[u8],
    native: bool,
) -> Result<UpstreamRequest, PluginError> {
    let options = Options::parse(&ctx.options)?;
    let mut notes = Vec::new();
    let body = if native {
        json::set_member(body, "model", &json::string_value(&ctx.upstream_model))
            .map_err(|e| bad(format!("request body: {e}")))?
    } else {
        let canonical: Value =
            serde_json::from_slice(body).map_err(|e| bad(format!("request body: {e}")))?;
        let translated = translate_request(
            &canonical,
            &ctx.upstream_model,
            ctx.stream,
            &options,
            &mut notes,
        )?;
        serde_json::to_vec(&translated).expect("values serialize")
    };
    Ok(UpstreamRequest {
        method: "POST".into(),
        path_and_query: MESSAGES_PATH.into(),
        headers: vec![
            Header {
                name: "content-type".into(),
                value: "application/json".into(),
            },
            Header {
                name: "anthropic-version".into(),
                value: API_VERSION.into(),
            },
        ],
        body,
        auth: AuthPlacement::Header("x-api-key".into()),
        stream_note: String::new(),
        translation_notes: notes,
    })
}

/// A native `count_tokens` request: the client's body with the upstream model.
pub fn build_count_request(
    ctx: &CallContext,
    body: &[u8],
) -> Result<Option<UpstreamRequest>, PluginError> {
    let body = json::set_member(body, "model", &json::string_value(&ctx.upstream_model))
        .map_err(|e| bad(format!("request body: {e}")))?;
    Ok(Some(UpstreamRequest {
        method: "POST".into(),
        path_and_query: format!("{MESSAGES_PATH}/count_tokens"),
        headers: vec![
            Header {
                name: "content-type".into(),
                value: "application/json".into(),
            },
            Header {
                name: "anthropic-version".into(),
                value: API_VERSION.into(),
            },
        ],
        body,
        auth: AuthPlacement::Header("x-api-key".into()),
        stream_note: String::new(),
        translation_notes: Vec::new(),
    }))
}

/// `{"input_tokens": N}`.
pub fn parse_count_response(body: &[u8]) -> Result<u32, PluginError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| PluginError::upstream(format!("unreadable count: {e}")))?;
    v["input_tokens"]
        .as_u64()
        .map(|n| n as u32)
        .ok_or_else(|| PluginError::upstream("count_tokens answered without input_tokens"))
}

/// Canonical fields this translation carries (`stream_options` is the
/// gateway's own business: usage is always reported).
const CARRIED: &[&str] = &[
    "model",
    "messages",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "stop",
    "stream",
    "stream_options",
    "user",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "reasoning_effort",
];

/// Canonical (OpenAI chat) request -> Anthropic Messages request. `stream`
/// is the host's decision (Gemini clients put it in the URL, not the body).
pub fn translate_request(
    req: &Value,
    model: &str,
    stream: bool,
    options: &Options,
    notes: &mut Vec<String>,
) -> Result<Value, PluginError> {
    notes.extend(canonical::dropped_fields(req, CARRIED));
    let messages = req
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("'messages' must be an array"))?;
    let mut system: Vec<Value> = Vec::new();
    let mut out_messages: Vec<Value> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let role = m.get("role").and_then(Value::as_str).unwrap_or("");
        let content = m.get("content").unwrap_or(&Value::Null);
        match role {
            "system" | "developer" => system.extend(text_blocks(content)),
            "user" => {
                let blocks = content_blocks(content)?;
                if !blocks.is_empty() {
                    out_messages.push(json!({ "role": "user", "content": blocks }));
                }
            }
            "assistant" => {
                let mut blocks = Vec::new();
                let text = content_text(content);
                if !text.is_empty() {
                    blocks.push(json!({ "type": "text", "text": text }));
                }
                for call in m
                    .get("tool_calls")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let function = &call["function"];
                    let arguments = function["arguments"].as_str().unwrap_or("{}");
                    // Models sometimes emit arguments that are not JSON; keep
                    // them visible rather than failing the whole conversation.
                    let input = serde_json::from_str::<Value>(arguments)
                        .ok()
                        .filter(Value::is_object)
                        .unwrap_or_else(|| json!({ "arguments": arguments }));
                    blocks.push(json!({
                        "type": "tool_use",
                        "id": call["id"],
                        "name": function["name"],
                        "input": input,
                    }));
                }
                if !blocks.is_empty() {
                    out_messages.push(json!({ "role": "assistant", "content": blocks }));
                }
            }
            "tool" | "function" => {
                let id = m
                    .get("tool_call_id")
                    .or_else(|| m.get("name"))
                    .cloned()
                    .ok_or_else(|| {
                        bad(format!("messages[{i}]: a tool message needs tool_call_id"))
                    })?;
                let result = json!({
                    "type": "tool_result",
                    "tool_use_id": id,
                    "content": content_text(content),
                });
                // Consecutive tool results answer one assistant turn: one user message.
                match out_messages.last_mut() {
                    Some(last) if last["role"] == "user" && is_tool_results(&last["content"]) => {
                        last["content"]
                            .as_array_mut()
                            .expect("checked")
                            .push(result);
                    }
                    _ => out_messages.push(json!({ "role": "user", "content": [result] })),
                }
            }
            other => return Err(bad(format!("messages[{i}]: unknown role '{other}'"))),
        }
    }

    let mut out = Map::new();
    out.insert("model".into(), model.into());
    if !system.is_empty() {
        out.insert("system".into(), Value::Array(system));
    }
    out.insert("messages".into(), Value::Array(out_messages));
    let max_tokens = req
        .get("max_completion_tokens")
        .or_else(|| req.get("max_tokens"))
        .and_then(Value::as_u64)
        .unwrap_or(u64::from(options.default_max_tokens));
    out.insert("max_tokens".into(), max_tokens.into());
    if let Some(t) = req.get("temperature").and_then(Value::as_f64) {
        // OpenAI's range is 0..2, Anthropic's 0..1.
        out.insert("temperature".into(), json!(t.min(1.0)));
    }
    // Recent Claude models refuse temperature and top_p together; the
    // temperature is the one clients usually mean.
    if let Some(p) = req.get("top_p").filter(|p| !p.is_null()) {
        if out.contains_key("temperature") {
            notes.push("dropped top_p (Anthropic takes temperature or top_p, not both)".into());
        } else {
            out.insert("top_p".into(), p.clone());
        }
    }
    match req.get("stop") {
        Some(Value::String(s)) => {
            out.insert("stop_sequences".into(), json!([s]));
        }
        Some(Value::Array(list)) if !list.is_empty() => {
            out.insert("stop_sequences".into(), Value::Array(list.clone()));
        }
        _ => {}
    }
    if stream {
        out.insert("stream".into(), true.into());
    }
    if let Some(user) = req.get("user").and_then(Value::as_str) {
        out.insert("metadata".into(), json!({ "user_id": user }));
    }
    translate_tools(req, &mut out)?;
    // Anthropic refuses thinking with a forced tool choice; forcing the tool
    // is what the client required, thinking only what it preferred.
    let forced_tool = matches!(
        out.get("tool_choice").and_then(|c| c["type"].as_str()),
        Some("any" | "tool")
    );
    if forced_tool && req.get("reasoning_effort").is_some_and(|e| !e.is_null()) {
        notes.push(
            "dropped reasoning_effort (Anthropic refuses thinking with a forced tool)".into(),
        );
    }
    if let Some(effort) = req
        .get("reasoning_effort")
        .and_then(Value::as_str)
        .filter(|_| !forced_tool)
    {
        let budget: u64 = match effort {
            "minimal" | "low" => 1024,
            "medium" => 4096,
            _ => 16384,
        };
        out.insert(
            "thinking".into(),
            json!({ "type": "enabled", "budget_tokens": budget }),
        );
        // Thinking needs room beyond its budget and a default temperature.
        out.insert("max_tokens".into(), json!(max_tokens.max(budget + 1024)));
        if out.remove("temperature").is_some() {
            notes.push("dropped temperature (Anthropic thinking requires the default)".into());
        }
    }
    Ok(Value::Object(out))
}

fn is_tool_results(content: &Value) -> bool {
    content
        .as_array()
        .is_some_and(|blocks| blocks.iter().all(|b| b["type"] == "tool_result"))
}

fn text_blocks(content: &Value) -> Vec<Value> {
    match content {
        Value::String(s) if !s.is_empty() => vec![json!({ "type": "text", "text": s })],
        Value::Array(parts) => parts
            .iter()
            .filter(|p| p["type"] == "text")
            .map(|p| {
                let mut block = json!({ "type": "text", "text": p["text"] });
                if let Some(cache) = p.get("cache_control") {
                    block["cache_control"] = cache.clone();
                }
                block
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn content_blocks(content: &Value) -> Result<Vec<Value>, PluginError> {
    let Value::Array(parts) = content else {
        return Ok(text_blocks(content));
    };
    let mut blocks = Vec::new();
    for part in parts {
        match part["type"].as_str() {
            Some("text") => blocks.extend(text_blocks(&Value::Array(vec![part.clone()]))),
            Some("image_url") => {
                let url = part["image_url"]["url"]
                    .as_str()
                    .or_else(|| part["image_url"].as_str())
                    .ok_or_else(|| bad("image_url part without a url"))?;
                let source = match parse_data_url(url) {
                    Some((media_type, data)) => {
                        json!({ "type": "base64", "media_type": media_type, "data": data })
                    }
                    None => json!({ "type": "url", "url": url }),
                };
                blocks.push(json!({ "type": "image", "source": source }));
            }
            Some(other) => {
                return Err(bad(format!(
                    "content part type '{other}' cannot be sent to an Anthropic backend"
                )));
            }
            None => return Err(bad("content part without a type")),
        }
    }
    Ok(blocks)
}

fn translate_tools(req: &Value, out: &mut Map<String, Value>) -> Result<(), PluginError> {
    let tools: Vec<Value> = req
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|t| t["type"] == "function")
        .map(|t| {
            let f = &t["function"];
            let mut tool = json!({
                "name": f["name"],
                "input_schema": f.get("parameters").cloned().unwrap_or_else(|| json!({ "type": "object" })),
            });
            if let Some(d) = f.get("description") {
                tool["description"] = d.clone();
            }
            tool
        })
        .collect();
    if tools.is_empty() {
        return Ok(());
    }
    out.insert("tools".into(), Value::Array(tools));
    let mut choice = match req.get("tool_choice") {
        None | Some(Value::Null) => json!({ "type": "auto" }),
        Some(Value::String(s)) => match s.as_str() {
            "none" => json!({ "type": "none" }),
            "required" => json!({ "type": "any" }),
            _ => json!({ "type": "auto" }),
        },
        Some(obj) => match obj["function"]["name"].as_str() {
            Some(name) => json!({ "type": "tool", "name": name }),
            None => return Err(bad("tool_choice names no function")),
        },
    };
    if req.get("parallel_tool_calls").and_then(Value::as_bool) == Some(false)
        && choice["type"] != "none"
    {
        choice["disable_parallel_tool_use"] = true.into();
    }
    out.insert("tool_choice".into(), choice);
    Ok(())
}

/// Reads a Messages response: usage always, the canonical form when translating.
pub fn parse_response(
    ctx: &CallContext,
    body: &[u8],
    native: bool,
) -> Result<ParsedResponse, PluginError> {
    let msg: Value = serde_json::from_slice(body)
        .map_err(|e| PluginError::upstream(format!("unreadable upstream response: {e}")))?;
    let usage = msg.get("usage").map(usage_from);
    if native {
        return Ok(ParsedResponse { body: None, usage });
    }
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut tool_calls = Vec::new();
    for block in msg["content"].as_array().into_iter().flatten() {
        match block["type"].as_str() {
            Some("text") => text.push_str(block["text"].as_str().unwrap_or("")),
            Some("thinking") => reasoning.push_str(block["thinking"].as_str().unwrap_or("")),
            Some("tool_use") => tool_calls.push(json!({
                "id": block["id"],
                "type": "function",
                "function": {
                    "name": block["name"],
                    "arguments": serde_json::to_string(&block["input"]).expect("values serialize"),
                },
            })),
            _ => {}
        }
    }
    let mut message = json!({
        "role": "assistant",
        "content": if text.is_empty() && !tool_calls.is_empty() { Value::Null } else { text.into() },
    });
    if !tool_calls.is_empty() {
        message["tool_calls"] = Value::Array(tool_calls);
    }
    if !reasoning.is_empty() {
        message["reasoning_content"] = reasoning.into();
    }
    let finish = finish_reason(msg["stop_reason"].as_str().unwrap_or("end_turn"));
    let mut canonical = json!({
        "id": msg["id"],
        "object": "chat.completion",
        "created": ctx.unix_time,
        "model": msg["model"],
        "choices": [{ "index": 0, "message": message, "logprobs": null, "finish_reason": finish }],
    });
    if let Some(u) = &usage {
        canonical["usage"] = canonical::usage_json(u);
    }
    Ok(ParsedResponse {
        body: Some(serde_json::to_vec(&canonical).expect("values serialize")),
        usage,
    })
}

/// Per-stream state for an Anthropic upstream stream.
#[derive(Debug)]
pub struct Decoder {
    native: bool,
    created: u64,
    id: String,
    model: String,
    /// Raw usage fields seen so far (message_start, then message_delta).
    usage: Map<String, Value>,
    /// Content block index -> tool call index (tool calls count from 0).
    tool_index: HashMap<u64, usize>,
    done: bool,
}

impl Decoder {
    /// A decoder for one stream.
    pub fn new(ctx: &CallContext, native: bool) -> Self {
        Decoder {
            native,
            created: ctx.unix_time,
            id: String::new(),
            model: ctx.upstream_model.clone(),
            usage: Map::new(),
            tool_index: HashMap::new(),
            done: false,
        }
    }

    fn usage(&self) -> Option<Usage> {
        (!self.usage.is_empty()).then(|| usage_from(&Value::Object(self.usage.clone())))
    }

    fn merge_usage(&mut self, u: &Value) {
        if let Some(map) = u.as_object() {
            for (k, v) in map {
                if !v.is_null() {
                    self.usage.insert(k.clone(), v.clone());
                }
            }
        }
    }

    fn chunk(&self, delta: Value, finish: Option<&str>) -> Vec<u8> {
        canonical::chunk(&self.id, &self.model, self.created, delta, finish)
    }

    /// Reads events; forwards them (native) or turns them into canonical chunks.
    pub fn push(&mut self, events: Vec<SseEvent>) -> Result<Decoded, PluginError> {
        let mut out = Decoded {
            events: Vec::new(),
            chunks: Vec::new(),
            usage: None,
            done: false,
        };
        for event in events {
            let data: Value = serde_json::from_str(&event.data).map_err(|e| {
                PluginError::upstream(format!("unreadable event in upstream stream: {e}"))
            })?;
            let kind = data["type"]
                .as_str()
                .or(event.event.as_deref())
                .unwrap_or("");
            if kind == "error" {
                let body = serde_json::to_vec(&data).expect("values serialize");
                let mut err = classify_error(500, &[], &body);
                err.upstream_status = None;
                return Err(err);
            }
            match kind {
                "message_start" => {
                    let msg = &data["message"];
                    self.id = msg["id"].as_str().unwrap_or("").to_string();
                    if let Some(model) = msg["model"].as_str() {
                        self.model = model.to_string();
                    }
                    self.merge_usage(&msg["usage"]);
                    if !self.native {
                        out.chunks
                            .push(self.chunk(json!({ "role": "assistant", "content": "" }), None));
                    }
                }
                "message_delta" => {
                    self.merge_usage(&data["usage"]);
                    if !self.native
                        && let Some(stop) = data["delta"]["stop_reason"].as_str()
                    {
                        out.chunks
                            .push(self.chunk(json!({}), Some(finish_reason(stop))));
                    }
                }
                "message_stop" => {
                    self.done = true;
                    if !self.native
                        && let Some(u) = self.usage()
                    {
                        out.chunks.push(canonical::usage_chunk(
                            &self.id,
                            &self.model,
                            self.created,
                            &u,
                        ));
                    }
                }
                "content_block_start" if !self.native => {
                    let block = &data["content_block"];
                    match block["type"].as_str() {
                        Some("tool_use") => {
                            let index = self.tool_index.len();
                            self.tool_index
                                .insert(data["index"].as_u64().unwrap_or(0), index);
                            out.chunks.push(self.chunk(
                                json!({ "tool_calls": [{
                                    "index": index,
                                    "id": block["id"],
                                    "type": "function",
                                    "function": { "name": block["name"], "arguments": "" },
                                }] }),
                                None,
                            ));
                        }
                        Some("text") => {
                            if let Some(text) = block["text"].as_str().filter(|t| !t.is_empty()) {
                                out.chunks
                                    .push(self.chunk(json!({ "content": text }), None));
                            }
                        }
                        _ => {}
                    }
                }
                "content_block_delta" if !self.native => {
                    let delta = &data["delta"];
                    let chunk = match delta["type"].as_str() {
                        Some("text_delta") => Some(json!({ "content": delta["text"] })),
                        Some("thinking_delta") => {
                            Some(json!({ "reasoning_content": delta["thinking"] }))
                        }
                        // Anthropic opens every tool input with an empty fragment.
                        Some("input_json_delta") if delta["partial_json"] == "" => None,
                        Some("input_json_delta") => {
                            let block = data["index"].as_u64().unwrap_or(0);
                            let index = *self.tool_index.get(&block).ok_or_else(|| {
                                PluginError::upstream(
                                    "input_json_delta for a block that is not a tool call",
                                )
                            })?;
                            Some(json!({ "tool_calls": [{
                                "index": index,
                                "function": { "arguments": delta["partial_json"] },
                            }] }))
                        }
                        _ => None, // signature_delta, citations_delta
                    };
                    if let Some(delta) = chunk {
                        out.chunks.push(self.chunk(delta, None));
                    }
                }
                _ => {} // ping, content_block_stop, and anything new
            }
            if self.native {
                out.events.push(event);
            }
        }
        out.usage = self.usage();
        out.done = self.done;
        Ok(out)
    }

    /// The upstream closed the stream.
    pub fn finish(&mut self) -> Result<Decoded, PluginError> {
        if !self.done {
            return Err(PluginError::upstream(
                "the upstream closed the stream before message_stop",
            ));
        }
        Ok(Decoded {
            events: Vec::new(),
            chunks: Vec::new(),
            usage: self.usage(),
            done: true,
        })
    }
}
