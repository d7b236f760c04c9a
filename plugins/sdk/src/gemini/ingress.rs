//! Serving Gemini clients: generateContent request -> canonical request,
//! canonical response -> generateContent response, canonical chunks ->
//! streamed response objects.

use std::cell::RefCell;

use serde_json::{Map, Value, json};

use super::{error_value, field, gemini_finish_reason, usage_metadata};
use crate::adapter::{DecodedRequest, RequestProfile};
use crate::types::{PluginError, SseEvent};

fn bad(message: impl Into<String>) -> PluginError {
    PluginError::bad_request(message)
}

fn parts_of(content: &Value) -> &[Value] {
    content["parts"].as_array().map_or(&[], Vec::as_slice)
}

fn text_of_parts(parts: &[Value]) -> String {
    parts
        .iter()
        .filter(|p| p["thought"] != true)
        .filter_map(|p| p["text"].as_str())
        .collect::<Vec<_>>()
        .join("")
}

/// The id a Gemini function call gets in canonical form: Gemini sends none,
/// so it is made from the call's position, the same way for the call and
/// for the response that answers it.
fn call_id(content_index: usize, part_index: usize) -> String {
    format!("call_{content_index}_{part_index}")
}

/// Request fields this translation carries (both spellings).
const CARRIED: &[&str] = &[
    "contents",
    "systemInstruction",
    "system_instruction",
    "tools",
    "toolConfig",
    "tool_config",
    "generationConfig",
    "generation_config",
];

/// `generationConfig` fields this translation carries.
const CARRIED_CONFIG: &[&str] = &[
    "temperature",
    "topP",
    "top_p",
    "candidateCount",
    "candidate_count",
    "seed",
    "presencePenalty",
    "presence_penalty",
    "frequencyPenalty",
    "frequency_penalty",
    "maxOutputTokens",
    "max_output_tokens",
    "stopSequences",
    "stop_sequences",
    "responseMimeType",
    "response_mime_type",
    "responseSchema",
    "response_schema",
    "responseJsonSchema",
    "response_json_schema",
];

/// generateContent request -> canonical request. The model and whether to
/// stream are in the URL, so the host sets them.
pub fn decode_request(body: &[u8]) -> Result<DecodedRequest, PluginError> {
    let req: Value = serde_json::from_slice(body).map_err(|e| bad(format!("request body: {e}")))?;
    let mut notes = crate::canonical::dropped_fields(&req, CARRIED);
    if let Some(config) = field(&req, "generationConfig") {
        notes.extend(
            crate::canonical::dropped_fields(config, CARRIED_CONFIG)
                .into_iter()
                .map(|n| n.replacen("dropped ", "dropped generationConfig.", 1)),
        );
    }
    let contents = req
        .get("contents")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("'contents' must be an array"))?;
    let mut messages = Vec::new();
    if let Some(system) = field(&req, "systemInstruction") {
        let text = text_of_parts(parts_of(system));
        if !text.is_empty() {
            messages.push(json!({ "role": "system", "content": text }));
        }
    }
    // Open calls of the last model turn, by name, for matching responses.
    let mut open_calls: Vec<(String, String)> = Vec::new();
    for (ci, content) in contents.iter().enumerate() {
        let parts = parts_of(content);
        match content["role"].as_str().unwrap_or("user") {
            "model" => {
                let mut calls = Vec::new();
                open_calls.clear();
                for (pi, part) in parts.iter().enumerate() {
                    if let Some(call) = field(part, "functionCall") {
                        let id = call["id"]
                            .as_str()
                            .map_or_else(|| call_id(ci, pi), str::to_string);
                        let name = call["name"].as_str().unwrap_or("").to_string();
                        open_calls.push((name.clone(), id.clone()));
                        calls.push(json!({
                            "id": id, "type": "function",
                            "function": {
                                "name": name,
                                "arguments": serde_json::to_string(call.get("args").unwrap_or(&json!({}))).expect("values serialize"),
                            },
                        }));
                    }
                }
                let text = text_of_parts(parts);
                let mut msg = json!({
                    "role": "assistant",
                    "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { text.into() },
                });
                if !calls.is_empty() {
                    msg["tool_calls"] = Value::Array(calls);
                }
                messages.push(msg);
            }
            _ => {
                let mut user_parts = Vec::new();
                for part in parts {
                    if let Some(response) = field(part, "functionResponse") {
                        let name = response["name"].as_str().unwrap_or("");
                        let id = match response["id"].as_str() {
                            Some(id) => id.to_string(),
                            None => {
                                let pos = open_calls.iter().position(|(n, _)| n == name).ok_or_else(|| {
                                    bad(format!("contents[{ci}]: functionResponse '{name}' answers no functionCall"))
                                })?;
                                open_calls.remove(pos).1
                            }
                        };
                        let result = response.get("response").cloned().unwrap_or(Value::Null);
                        let text = match &result {
                            Value::Object(map) if map.len() == 1 && map.contains_key("content") => {
                                match &map["content"] {
                                    Value::String(s) => s.clone(),
                                    other => other.to_string(),
                                }
                            }
                            other => other.to_string(),
                        };
                        messages
                            .push(json!({ "role": "tool", "tool_call_id": id, "content": text }));
                    } else if let Some(text) = part["text"].as_str() {
                        user_parts.push(json!({ "type": "text", "text": text }));
                    } else if let Some(inline) = field(part, "inlineData") {
                        let mime = field(inline, "mimeType")
                            .and_then(Value::as_str)
                            .unwrap_or("image/png");
                        let data = inline["data"].as_str().unwrap_or("");
                        user_parts.push(json!({ "type": "image_url", "image_url": { "url": format!("data:{mime};base64,{data}") } }));
                    } else if let Some(file) = field(part, "fileData") {
                        let uri = field(file, "fileUri").and_then(Value::as_str).unwrap_or("");
                        user_parts
                            .push(json!({ "type": "image_url", "image_url": { "url": uri } }));
                    } else {
                        return Err(bad(format!(
                            "contents[{ci}]: a part of an unsupported kind"
                        )));
                    }
                }
                if !user_parts.is_empty() {
                    let content = if user_parts.iter().all(|p| p["type"] == "text") {
                        Value::String(
                            user_parts
                                .iter()
                                .filter_map(|p| p["text"].as_str())
                                .collect::<Vec<_>>()
                                .join("\n"),
                        )
                    } else {
                        Value::Array(user_parts)
                    };
                    messages.push(json!({ "role": "user", "content": content }));
                }
            }
        }
    }

    let mut out = Map::new();
    out.insert("messages".into(), Value::Array(messages));
    if let Some(config) = field(&req, "generationConfig") {
        for (from, to) in [
            ("temperature", "temperature"),
            ("topP", "top_p"),
            ("candidateCount", "n"),
            ("seed", "seed"),
            ("presencePenalty", "presence_penalty"),
            ("frequencyPenalty", "frequency_penalty"),
            ("maxOutputTokens", "max_tokens"),
            ("stopSequences", "stop"),
        ] {
            if let Some(v) = field(config, from) {
                out.insert(to.into(), v.clone());
            }
        }
        let schema =
            field(config, "responseJsonSchema").or_else(|| field(config, "responseSchema"));
        match (
            field(config, "responseMimeType").and_then(Value::as_str),
            schema,
        ) {
            (_, Some(schema)) => {
                out.insert(
                    "response_format".into(),
                    json!({
                        "type": "json_schema",
                        "json_schema": { "name": "response", "schema": lowercase_types(schema) },
                    }),
                );
            }
            (Some("application/json"), None) => {
                out.insert("response_format".into(), json!({ "type": "json_object" }));
            }
            _ => {}
        }
    }
    decode_tools(&req, &mut out);
    Ok(DecodedRequest {
        canonical: serde_json::to_vec(&Value::Object(out)).expect("values serialize"),
        note: String::new(),
        translation_notes: notes,
    })
}

/// Gemini's OpenAPI-subset schemas write types in capitals (`OBJECT`);
/// JSON Schema wants them in lower case.
fn lowercase_types(schema: &Value) -> Value {
    match schema {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| match (k.as_str(), v) {
                    ("type", Value::String(t)) => {
                        (k.clone(), Value::String(t.to_ascii_lowercase()))
                    }
                    _ => (k.clone(), lowercase_types(v)),
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(lowercase_types).collect()),
        other => other.clone(),
    }
}

fn decode_tools(req: &Value, out: &mut Map<String, Value>) {
    let mut functions = Vec::new();
    for tool in req["tools"].as_array().into_iter().flatten() {
        for d in field(tool, "functionDeclarations")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let params = field(d, "parametersJsonSchema")
                .cloned()
                .or_else(|| field(d, "parameters").map(lowercase_types))
                .unwrap_or_else(|| json!({ "type": "object", "properties": {} }));
            let mut function = json!({ "name": d["name"], "parameters": params });
            if let Some(desc) = d.get("description") {
                function["description"] = desc.clone();
            }
            functions.push(json!({ "type": "function", "function": function }));
        }
    }
    if functions.is_empty() {
        return;
    }
    out.insert("tools".into(), Value::Array(functions));
    let config = field(req, "toolConfig").and_then(|c| field(c, "functionCallingConfig"));
    if let Some(config) = config {
        let allowed = field(config, "allowedFunctionNames").and_then(Value::as_array);
        let choice = match (config["mode"].as_str(), allowed.map(Vec::as_slice)) {
            (Some("NONE"), _) => json!("none"),
            (Some("ANY"), Some([one])) => {
                json!({ "type": "function", "function": { "name": one } })
            }
            (Some("ANY"), _) => json!("required"),
            _ => json!("auto"),
        };
        out.insert("tool_choice".into(), choice);
    }
}

/// What a generateContent request needs from a backend.
pub fn inspect_request(body: &[u8]) -> Result<RequestProfile, PluginError> {
    let req: Value = serde_json::from_slice(body).map_err(|e| bad(format!("request body: {e}")))?;
    let mut text_bytes =
        field(&req, "systemInstruction").map_or(0, |s| text_of_parts(parts_of(s)).len());
    let mut vision = false;
    for content in req["contents"].as_array().into_iter().flatten() {
        let parts = parts_of(content);
        text_bytes += text_of_parts(parts).len();
        vision |= parts.iter().any(|p| {
            let mime = field(p, "inlineData")
                .or_else(|| field(p, "fileData"))
                .and_then(|d| field(d, "mimeType"))
                .and_then(Value::as_str);
            mime.is_some_and(|m| m.starts_with("image/"))
                || field(p, "fileData").is_some() && mime.is_none()
        });
    }
    let config = field(&req, "generationConfig");
    Ok(RequestProfile {
        tools: req["tools"].as_array().is_some_and(|t| !t.is_empty()),
        vision,
        json_schema: config.is_some_and(|c| {
            field(c, "responseJsonSchema")
                .or_else(|| field(c, "responseSchema"))
                .is_some()
        }),
        estimated_input_tokens: (text_bytes / 4).min(u32::MAX as usize) as u32,
    })
}

fn function_call(call: &Value) -> Value {
    let arguments = call["function"]["arguments"].as_str().unwrap_or("{}");
    json!({
        "functionCall": {
            "id": call["id"],
            "name": call["function"]["name"],
            "args": serde_json::from_str::<Value>(arguments).unwrap_or_else(|_| json!({})),
        }
    })
}

/// Canonical response -> generateContent response.
pub fn encode_response(canonical: &[u8], client_model: &str) -> Result<Vec<u8>, PluginError> {
    let resp: Value = serde_json::from_slice(canonical)
        .map_err(|e| PluginError::upstream(format!("canonical response: {e}")))?;
    let choice = &resp["choices"][0];
    let message = &choice["message"];
    let mut parts = Vec::new();
    if let Some(r) = message["reasoning_content"]
        .as_str()
        .filter(|r| !r.is_empty())
    {
        parts.push(json!({ "text": r, "thought": true }));
    }
    let text = crate::canonical::content_text(&message["content"]);
    if !text.is_empty() {
        parts.push(json!({ "text": text }));
    }
    parts.extend(
        message["tool_calls"]
            .as_array()
            .into_iter()
            .flatten()
            .map(function_call),
    );
    let mut out = json!({
        "candidates": [{
            "content": { "role": "model", "parts": parts },
            "finishReason": gemini_finish_reason(choice["finish_reason"].as_str().unwrap_or("stop")),
            "index": 0,
        }],
        "modelVersion": client_model,
        "responseId": resp["id"],
    });
    if resp["usage"].is_object() {
        out["usageMetadata"] = usage_metadata(&resp["usage"]);
    }
    Ok(serde_json::to_vec(&out).expect("values serialize"))
}

#[derive(Debug, Default)]
struct EncoderState {
    id: Value,
    /// Tool calls assembled from fragments, by index: Gemini sends whole calls.
    calls: Vec<Value>,
    finish: Option<&'static str>,
    usage: Option<Value>,
    finished: bool,
}

/// Canonical chunks -> streamed generateContent responses.
#[derive(Debug)]
pub struct Encoder {
    client_model: String,
    state: RefCell<EncoderState>,
}

impl Encoder {
    /// An encoder for one client stream.
    pub fn new(client_model: &str) -> Self {
        Encoder {
            client_model: client_model.into(),
            state: RefCell::new(EncoderState::default()),
        }
    }

    fn event(&self, id: &Value, parts: Vec<Value>, extra: Option<(&str, Value)>) -> SseEvent {
        let mut candidate = json!({ "content": { "role": "model", "parts": parts }, "index": 0 });
        let mut resp = json!({ "modelVersion": self.client_model, "responseId": id });
        if let Some((key, value)) = extra {
            if key == "finishReason" {
                candidate[key] = value;
            } else {
                resp[key] = value;
            }
        }
        resp["candidates"] = json!([candidate]);
        SseEvent {
            event: None,
            data: serde_json::to_string(&resp).expect("values serialize"),
        }
    }

    /// Canonical chunks -> events: text and thoughts at once, tool calls
    /// once whole (at the end).
    pub fn push(&self, chunks: Vec<Vec<u8>>) -> Result<Vec<SseEvent>, PluginError> {
        let mut st = self.state.borrow_mut();
        let mut out = Vec::new();
        for chunk in chunks {
            let chunk: Value = serde_json::from_slice(&chunk)
                .map_err(|e| PluginError::upstream(format!("canonical chunk: {e}")))?;
            if st.id.is_null() {
                st.id = chunk["id"].clone();
            }
            if chunk["usage"].is_object() {
                st.usage = Some(chunk["usage"].clone());
            }
            let Some(choice) = chunk["choices"].get(0) else {
                continue;
            };
            let delta = &choice["delta"];
            let mut parts = Vec::new();
            if let Some(r) = delta["reasoning_content"]
                .as_str()
                .filter(|r| !r.is_empty())
            {
                parts.push(json!({ "text": r, "thought": true }));
            }
            if let Some(t) = delta["content"].as_str().filter(|t| !t.is_empty()) {
                parts.push(json!({ "text": t }));
            }
            for call in delta["tool_calls"].as_array().into_iter().flatten() {
                let index = call["index"].as_u64().unwrap_or(0) as usize;
                while st.calls.len() <= index {
                    st.calls
                        .push(json!({ "id": null, "function": { "name": null, "arguments": "" } }));
                }
                let slot = &mut st.calls[index];
                if let Some(id) = call.get("id").filter(|v| !v.is_null()) {
                    slot["id"] = id.clone();
                }
                if let Some(name) = call["function"].get("name").filter(|v| !v.is_null()) {
                    slot["function"]["name"] = name.clone();
                }
                if let Some(args) = call["function"]["arguments"].as_str() {
                    let joined = format!(
                        "{}{args}",
                        slot["function"]["arguments"].as_str().unwrap_or("")
                    );
                    slot["function"]["arguments"] = joined.into();
                }
            }
            if let Some(finish) = choice["finish_reason"].as_str() {
                st.finish = Some(gemini_finish_reason(finish));
            }
            if !parts.is_empty() {
                out.push(self.event(&st.id, parts, None));
            }
        }
        Ok(out)
    }

    /// The stream ended: the tool calls, the finish reason and the usage in a last event.
    pub fn finish(&self) -> Vec<SseEvent> {
        let mut st = self.state.borrow_mut();
        if st.finished {
            return Vec::new();
        }
        st.finished = true;
        let parts: Vec<Value> = st.calls.iter().map(function_call).collect();
        let mut last = self.event(
            &st.id,
            parts,
            Some(("finishReason", st.finish.unwrap_or("STOP").into())),
        );
        if let Some(usage) = &st.usage {
            let mut resp: Value = serde_json::from_str(&last.data).expect("just serialized");
            resp["usageMetadata"] = usage_metadata(usage);
            last.data = serde_json::to_string(&resp).expect("values serialize");
        }
        vec![last]
    }

    /// The stream failed after it started: an error object as the last event.
    pub fn fail(&self, err: &PluginError) -> Vec<SseEvent> {
        self.state.borrow_mut().finished = true;
        vec![SseEvent {
            event: None,
            data: serde_json::to_string(&error_value(500, err)).expect("values serialize"),
        }]
    }
}
