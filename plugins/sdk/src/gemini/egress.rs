//! Talking to a Gemini upstream: canonical request -> generateContent
//! request, responses and stream events -> canonical.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use super::{classify_error, field, finish_reason, generate_path, usage_from};
use crate::adapter::{AuthPlacement, CallContext, Decoded, ParsedResponse, UpstreamRequest};
use crate::canonical::{self, content_text, parse_data_url};
use crate::types::{Header, PluginError, SseEvent, Usage};

fn bad(message: impl Into<String>) -> PluginError {
    PluginError::bad_request(message)
}

/// Builds the upstream request. The model and the stream choice live in
/// the path; a native body passes through untouched.
pub fn build_request(
    ctx: &CallContext,
    body: &[u8],
    native: bool,
) -> Result<UpstreamRequest, PluginError> {
    let mut notes = Vec::new();
    let body = if native {
        body.to_vec()
    } else {
        let canonical: Value =
            serde_json::from_slice(body).map_err(|e| bad(format!("request body: {e}")))?;
        serde_json::to_vec(&translate_request(&canonical, &mut notes)?).expect("values serialize")
    };
    Ok(UpstreamRequest {
        method: "POST".into(),
        path_and_query: generate_path(&ctx.upstream_model, ctx.stream),
        headers: vec![Header {
            name: "content-type".into(),
            value: "application/json".into(),
        }],
        body,
        auth: AuthPlacement::Header("x-goog-api-key".into()),
        stream_note: String::new(),
        translation_notes: notes,
    })
}

/// A native `countTokens` request: the client's body, the upstream model in the path.
pub fn build_count_request(
    ctx: &CallContext,
    body: &[u8],
) -> Result<Option<UpstreamRequest>, PluginError> {
    Ok(Some(UpstreamRequest {
        method: "POST".into(),
        path_and_query: format!("/v1beta/models/{}:countTokens", ctx.upstream_model),
        headers: vec![Header {
            name: "content-type".into(),
            value: "application/json".into(),
        }],
        body: body.to_vec(),
        auth: AuthPlacement::Header("x-goog-api-key".into()),
        stream_note: String::new(),
        translation_notes: Vec::new(),
    }))
}

/// `{"totalTokens": N}`.
pub fn parse_count_response(body: &[u8]) -> Result<u32, PluginError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| PluginError::upstream(format!("unreadable count: {e}")))?;
    field(&v, "totalTokens")
        .and_then(Value::as_u64)
        .map(|n| n as u32)
        .ok_or_else(|| PluginError::upstream("countTokens answered without totalTokens"))
}

/// Canonical fields this translation carries.
const CARRIED: &[&str] = &[
    "model",
    "messages",
    "temperature",
    "top_p",
    "n",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "max_tokens",
    "max_completion_tokens",
    "stop",
    "response_format",
    "tools",
    "tool_choice",
    "stream",
    "stream_options",
];

/// Canonical (OpenAI chat) request -> generateContent request.
pub fn translate_request(req: &Value, notes: &mut Vec<String>) -> Result<Value, PluginError> {
    notes.extend(canonical::dropped_fields(req, CARRIED));
    let cached = messages_with_cache_control(req);
    let messages = req
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("'messages' must be an array"))?;
    // functionResponse needs the function's name; tool messages only carry the call id.
    let mut names_by_call: HashMap<&str, &str> = HashMap::new();
    for m in messages {
        for call in m["tool_calls"].as_array().into_iter().flatten() {
            if let (Some(id), Some(name)) = (call["id"].as_str(), call["function"]["name"].as_str())
            {
                names_by_call.insert(id, name);
            }
        }
    }
    if cached {
        notes.push("dropped cache_control".into());
    }
    let mut system: Vec<Value> = Vec::new();
    let mut contents: Vec<Value> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let content = &m["content"];
        let (role, parts) = match m["role"].as_str().unwrap_or("") {
            "system" | "developer" => {
                let text = content_text(content);
                if !text.is_empty() {
                    system.push(json!({ "text": text }));
                }
                continue;
            }
            "user" => ("user", user_parts(content)?),
            "assistant" => {
                let mut parts = Vec::new();
                let text = content_text(content);
                if !text.is_empty() {
                    parts.push(json!({ "text": text }));
                }
                for call in m["tool_calls"].as_array().into_iter().flatten() {
                    let arguments = call["function"]["arguments"].as_str().unwrap_or("{}");
                    let args = serde_json::from_str::<Value>(arguments)
                        .ok()
                        .filter(Value::is_object)
                        .unwrap_or_else(|| json!({ "arguments": arguments }));
                    parts.push(json!({ "functionCall": { "name": call["function"]["name"], "args": args } }));
                }
                ("model", parts)
            }
            "tool" | "function" => {
                let id = m["tool_call_id"].as_str().unwrap_or("");
                let name = names_by_call
                    .get(id)
                    .copied()
                    .or_else(|| m["name"].as_str())
                    .ok_or_else(|| {
                        bad(format!(
                            "messages[{i}]: tool result for unknown call '{id}'"
                        ))
                    })?;
                let text = content_text(content);
                // A JSON object result stays structured; anything else is wrapped.
                let response = serde_json::from_str::<Value>(&text)
                    .ok()
                    .filter(Value::is_object)
                    .unwrap_or_else(|| json!({ "content": text }));
                (
                    "user",
                    vec![json!({ "functionResponse": { "name": name, "response": response } })],
                )
            }
            other => return Err(bad(format!("messages[{i}]: unknown role '{other}'"))),
        };
        if parts.is_empty() {
            continue;
        }
        // Consecutive turns of one role become one content (tool results of a turn together).
        match contents.last_mut() {
            Some(last) if last["role"] == role => {
                last["parts"]
                    .as_array_mut()
                    .expect("parts is an array")
                    .extend(parts);
            }
            _ => contents.push(json!({ "role": role, "parts": parts })),
        }
    }

    let mut out = Map::new();
    out.insert("contents".into(), Value::Array(contents));
    if !system.is_empty() {
        out.insert("systemInstruction".into(), json!({ "parts": system }));
    }
    let mut config = Map::new();
    for (from, to) in [
        ("temperature", "temperature"),
        ("top_p", "topP"),
        ("n", "candidateCount"),
        ("seed", "seed"),
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
    ] {
        if let Some(v) = req.get(from).filter(|v| !v.is_null()) {
            config.insert(to.into(), v.clone());
        }
    }
    if let Some(n) = req
        .get("max_completion_tokens")
        .or_else(|| req.get("max_tokens"))
        .filter(|v| !v.is_null())
    {
        config.insert("maxOutputTokens".into(), n.clone());
    }
    match req.get("stop") {
        Some(Value::String(s)) => {
            config.insert("stopSequences".into(), json!([s]));
        }
        Some(Value::Array(list)) if !list.is_empty() => {
            config.insert("stopSequences".into(), Value::Array(list.clone()));
        }
        _ => {}
    }
    match req["response_format"]["type"].as_str() {
        Some("json_object") => {
            config.insert("responseMimeType".into(), "application/json".into());
        }
        Some("json_schema") => {
            config.insert("responseMimeType".into(), "application/json".into());
            if let Some(schema) = req["response_format"]["json_schema"].get("schema") {
                config.insert("responseJsonSchema".into(), schema.clone());
            }
        }
        _ => {}
    }
    if !config.is_empty() {
        out.insert("generationConfig".into(), Value::Object(config));
    }
    translate_tools(req, &mut out)?;
    Ok(Value::Object(out))
}

/// Whether any message part carries Anthropic-style prompt-cache markers.
fn messages_with_cache_control(req: &Value) -> bool {
    req["messages"].as_array().into_iter().flatten().any(|m| {
        m["content"]
            .as_array()
            .is_some_and(|parts| parts.iter().any(|p| p.get("cache_control").is_some()))
    })
}

fn user_parts(content: &Value) -> Result<Vec<Value>, PluginError> {
    let Value::Array(parts) = content else {
        let text = content_text(content);
        return Ok(if text.is_empty() {
            Vec::new()
        } else {
            vec![json!({ "text": text })]
        });
    };
    let mut out = Vec::new();
    for part in parts {
        match part["type"].as_str() {
            Some("text") => out.push(json!({ "text": part["text"] })),
            Some("image_url") => {
                let url = part["image_url"]["url"]
                    .as_str()
                    .or_else(|| part["image_url"].as_str())
                    .ok_or_else(|| bad("image_url part without a url"))?;
                out.push(match parse_data_url(url) {
                    Some((mime, data)) => {
                        json!({ "inlineData": { "mimeType": mime, "data": data } })
                    }
                    None => json!({ "fileData": { "mimeType": guess_mime(url), "fileUri": url } }),
                });
            }
            Some(other) => {
                return Err(bad(format!(
                    "content part type '{other}' cannot be sent to a Gemini backend"
                )));
            }
            None => return Err(bad("content part without a type")),
        }
    }
    Ok(out)
}

fn guess_mime(url: &str) -> &'static str {
    let path = url
        .split(['?', '#'])
        .next()
        .unwrap_or(url)
        .to_ascii_lowercase();
    match path.rsplit('.').next() {
        Some("png") => "image/png",
        Some("gif") => "image/gif",
        Some("webp") => "image/webp",
        _ => "image/jpeg",
    }
}

fn translate_tools(req: &Value, out: &mut Map<String, Value>) -> Result<(), PluginError> {
    let declarations: Vec<Value> = req["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["type"] == "function")
        .map(|t| {
            let f = &t["function"];
            let mut d = json!({ "name": f["name"] });
            if let Some(desc) = f.get("description") {
                d["description"] = desc.clone();
            }
            // Full JSON Schema; `parameters` would take only an OpenAPI subset.
            if let Some(params) = f.get("parameters") {
                d["parametersJsonSchema"] = params.clone();
            }
            d
        })
        .collect();
    if declarations.is_empty() {
        return Ok(());
    }
    out.insert(
        "tools".into(),
        json!([{ "functionDeclarations": declarations }]),
    );
    let config = match req.get("tool_choice") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => match s.as_str() {
            "none" => Some(json!({ "mode": "NONE" })),
            "required" => Some(json!({ "mode": "ANY" })),
            _ => Some(json!({ "mode": "AUTO" })),
        },
        Some(obj) => match obj["function"]["name"].as_str() {
            Some(name) => Some(json!({ "mode": "ANY", "allowedFunctionNames": [name] })),
            None => return Err(bad("tool_choice names no function")),
        },
    };
    if let Some(config) = config {
        out.insert(
            "toolConfig".into(),
            json!({ "functionCallingConfig": config }),
        );
    }
    Ok(())
}

/// What one candidate's parts say, in canonical terms.
#[derive(Default)]
struct PartsRead {
    text: String,
    reasoning: String,
    calls: Vec<Value>,
}

/// Reads the parts of a candidate; function calls get ids (Gemini gives
/// none) numbered from `first_call`, so a stream's calls keep distinct ids.
fn read_parts(candidate: &Value, id_prefix: &str, first_call: usize) -> PartsRead {
    let mut read = PartsRead::default();
    for part in candidate["content"]["parts"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if let Some(call) = field(part, "functionCall") {
            let index = first_call + read.calls.len();
            let id = call["id"]
                .as_str()
                .map_or_else(|| format!("call_{id_prefix}_{index}"), str::to_string);
            read.calls.push(json!({
                "id": id,
                "type": "function",
                "function": {
                    "name": call["name"],
                    "arguments": serde_json::to_string(call.get("args").unwrap_or(&json!({}))).expect("values serialize"),
                },
            }));
        } else if let Some(text) = part["text"].as_str() {
            if part["thought"] == true {
                read.reasoning.push_str(text);
            } else {
                read.text.push_str(text);
            }
        }
    }
    read
}

fn response_id(resp: &Value) -> String {
    field(resp, "responseId")
        .and_then(Value::as_str)
        .unwrap_or("gemini")
        .to_string()
}

/// Reads a generateContent response: usage always, canonical when translating.
pub fn parse_response(
    ctx: &CallContext,
    body: &[u8],
    native: bool,
) -> Result<ParsedResponse, PluginError> {
    let resp: Value = serde_json::from_slice(body)
        .map_err(|e| PluginError::upstream(format!("unreadable upstream response: {e}")))?;
    let usage = field(&resp, "usageMetadata").map(usage_from);
    if native {
        return Ok(ParsedResponse { body: None, usage });
    }
    let id = response_id(&resp);
    let candidate = resp["candidates"].get(0).cloned().unwrap_or(Value::Null);
    let read = read_parts(&candidate, &id, 0);
    let finish = match field(&candidate, "finishReason").and_then(Value::as_str) {
        Some(reason) => finish_reason(reason, !read.calls.is_empty()),
        // No candidate: the prompt itself was blocked.
        None if field(&resp, "promptFeedback").is_some() => "content_filter",
        None => "stop",
    };
    let mut message = json!({
        "role": "assistant",
        "content": if read.text.is_empty() && !read.calls.is_empty() { Value::Null } else { read.text.into() },
    });
    if !read.calls.is_empty() {
        message["tool_calls"] = Value::Array(read.calls);
    }
    if !read.reasoning.is_empty() {
        message["reasoning_content"] = read.reasoning.into();
    }
    let mut canonical = json!({
        "id": id,
        "object": "chat.completion",
        "created": ctx.unix_time,
        "model": field(&resp, "modelVersion").cloned().unwrap_or_else(|| ctx.upstream_model.clone().into()),
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

/// Per-stream state for a Gemini upstream stream.
#[derive(Debug)]
pub struct Decoder {
    native: bool,
    created: u64,
    model: String,
    id: Option<String>,
    calls: usize,
    finish: Option<&'static str>,
    usage: Option<Usage>,
}

impl Decoder {
    /// A decoder for one stream.
    pub fn new(ctx: &CallContext, native: bool) -> Self {
        Decoder {
            native,
            created: ctx.unix_time,
            model: ctx.upstream_model.clone(),
            id: None,
            calls: 0,
            finish: None,
            usage: None,
        }
    }

    /// Reads events: every one is a whole response object with new parts.
    pub fn push(&mut self, events: Vec<SseEvent>) -> Result<Decoded, PluginError> {
        let mut out = Decoded {
            events: Vec::new(),
            chunks: Vec::new(),
            usage: None,
            done: false,
        };
        for event in events {
            let resp: Value = serde_json::from_str(&event.data).map_err(|e| {
                PluginError::upstream(format!("unreadable event in upstream stream: {e}"))
            })?;
            if resp.get("error").is_some() {
                let mut err = classify_error(500, &[], event.data.as_bytes());
                err.upstream_status = None;
                return Err(err);
            }
            if let Some(u) = field(&resp, "usageMetadata") {
                self.usage = Some(usage_from(u));
            }
            if let Some(version) = field(&resp, "modelVersion").and_then(Value::as_str) {
                self.model = version.to_string();
            }
            let first = self.id.is_none();
            let id = self.id.get_or_insert_with(|| response_id(&resp)).clone();
            let candidate = resp["candidates"].get(0).cloned().unwrap_or(Value::Null);
            let read = read_parts(&candidate, &id, self.calls);
            let finish = field(&candidate, "finishReason").and_then(Value::as_str);
            if let Some(reason) = finish {
                self.finish = Some(finish_reason(reason, self.calls + read.calls.len() > 0));
            }
            if self.native {
                self.calls += read.calls.len();
                out.events.push(event);
                continue;
            }
            let chunk = |delta: Value, finish: Option<&str>| {
                canonical::chunk(&id, &self.model, self.created, delta, finish)
            };
            if first {
                out.chunks
                    .push(chunk(json!({ "role": "assistant", "content": "" }), None));
            }
            if !read.reasoning.is_empty() {
                out.chunks
                    .push(chunk(json!({ "reasoning_content": read.reasoning }), None));
            }
            if !read.text.is_empty() {
                out.chunks
                    .push(chunk(json!({ "content": read.text }), None));
            }
            let new_calls = read.calls.len();
            for (i, mut call) in read.calls.into_iter().enumerate() {
                call["index"] = (self.calls + i).into();
                out.chunks
                    .push(chunk(json!({ "tool_calls": [call] }), None));
            }
            self.calls += new_calls;
            if finish.is_some() {
                out.chunks.push(chunk(json!({}), self.finish));
            }
        }
        out.usage = self.usage;
        out.done = self.finish.is_some();
        Ok(out)
    }

    /// The upstream closed the stream: Gemini has no end marker, so a
    /// stream is complete when a finish reason came.
    pub fn finish(&mut self) -> Result<Decoded, PluginError> {
        if self.finish.is_none() {
            return Err(PluginError::upstream(
                "the upstream closed the stream before a finishReason",
            ));
        }
        let mut chunks = Vec::new();
        if !self.native
            && let Some(u) = &self.usage
        {
            let id = self.id.clone().unwrap_or_default();
            chunks.push(canonical::usage_chunk(&id, &self.model, self.created, u));
        }
        Ok(Decoded {
            events: Vec::new(),
            chunks,
            usage: self.usage,
            done: true,
        })
    }
}
