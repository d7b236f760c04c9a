//! Serving Responses API clients from any backend: Responses request ->
//! canonical chat request, canonical response -> Response object, canonical
//! chunks -> the typed stream events (`response.created`, ...,
//! `response.output_text.delta`, `response.function_call_arguments.delta`,
//! ..., `response.completed` with usage), each with its `sequence_number`.

use std::cell::RefCell;

use serde_json::{Map, Value, json};

use super::response_usage;
use crate::adapter::{DecodedRequest, RequestProfile};
use crate::types::{PluginError, SseEvent};

fn bad(message: impl Into<String>) -> PluginError {
    PluginError::bad_request(message)
}

/// Request fields this translation carries, or refuses by name.
const CARRIED: &[&str] = &[
    "model",
    "input",
    "instructions",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "max_output_tokens",
    "temperature",
    "top_p",
    "stream",
    "text",
    "user",
    "metadata",
    "store",
    "previous_response_id",
    "stream_options",
    "reasoning",
];

/// Responses request -> canonical chat request.
pub fn decode_request(body: &[u8]) -> Result<DecodedRequest, PluginError> {
    let req: Value = serde_json::from_slice(body).map_err(|e| bad(format!("request body: {e}")))?;
    if !req.is_object() {
        return Err(bad("the request body must be a JSON object"));
    }
    // Server-side state this gateway does not keep: refused by name, never
    // silently ignored (a conversation would lose its history).
    if req["previous_response_id"]
        .as_str()
        .is_some_and(|s| !s.is_empty())
    {
        return Err(bad(
            "previous_response_id is not supported: llmgate does not store responses; \
             send the whole conversation in `input`",
        ));
    }
    if req["store"] == true {
        return Err(bad(
            "store: true is not supported: llmgate does not store responses; send store: false",
        ));
    }
    let mut notes = crate::canonical::dropped_fields(&req, CARRIED);
    let mut messages = Vec::new();
    if let Some(instructions) = req["instructions"].as_str().filter(|s| !s.is_empty()) {
        messages.push(json!({ "role": "system", "content": instructions }));
    }
    match &req["input"] {
        Value::String(text) => messages.push(json!({ "role": "user", "content": text })),
        Value::Array(items) => {
            for item in items {
                input_item(item, &mut messages, &mut notes)?;
            }
        }
        Value::Null => return Err(bad("the request has no `input`")),
        _ => return Err(bad("`input` must be a string or a list of items")),
    }

    let mut out = Map::new();
    out.insert("model".into(), req["model"].clone());
    out.insert("messages".into(), Value::Array(messages));
    if req["stream"] == true {
        out.insert("stream".into(), true.into());
    }
    if let Some(n) = req.get("max_output_tokens").filter(|v| v.is_u64()) {
        out.insert("max_tokens".into(), n.clone());
    }
    for field in ["temperature", "top_p", "parallel_tool_calls", "user"] {
        if let Some(v) = req.get(field).filter(|v| !v.is_null()) {
            out.insert(field.into(), v.clone());
        }
    }
    let mut tools = Vec::new();
    for tool in req["tools"].as_array().into_iter().flatten() {
        match tool["type"].as_str() {
            Some("function") => {
                let mut function = Map::new();
                for field in ["name", "description", "parameters", "strict"] {
                    if let Some(v) = tool.get(field).filter(|v| !v.is_null()) {
                        function.insert(field.into(), v.clone());
                    }
                }
                tools.push(json!({ "type": "function", "function": function }));
            }
            other => notes.push(format!(
                "dropped tool {} of type {}: only function tools cross to chat backends",
                tool["name"].as_str().unwrap_or("(unnamed)"),
                other.unwrap_or("(none)")
            )),
        }
    }
    if !tools.is_empty() {
        out.insert("tools".into(), Value::Array(tools));
    }
    match &req["tool_choice"] {
        Value::String(choice) => {
            out.insert("tool_choice".into(), choice.clone().into());
        }
        Value::Object(choice) if choice.get("type") == Some(&json!("function")) => {
            out.insert(
                "tool_choice".into(),
                json!({ "type": "function", "function": { "name": choice.get("name") } }),
            );
        }
        Value::Null => {}
        other => notes.push(format!("dropped tool_choice {other}")),
    }
    if let Some(format) = req["text"].get("format") {
        match format["type"].as_str() {
            Some("json_schema") => {
                let mut schema = Map::new();
                for field in ["name", "schema", "strict", "description"] {
                    if let Some(v) = format.get(field).filter(|v| !v.is_null()) {
                        schema.insert(field.into(), v.clone());
                    }
                }
                out.insert(
                    "response_format".into(),
                    json!({ "type": "json_schema", "json_schema": schema }),
                );
            }
            Some("json_object") => {
                out.insert("response_format".into(), json!({ "type": "json_object" }));
            }
            Some("text") | None => {}
            Some(other) => notes.push(format!("dropped text.format of type {other}")),
        }
    }
    if req["reasoning"].is_object() {
        notes.push("dropped reasoning: effort does not cross to chat backends".into());
    }
    Ok(DecodedRequest {
        canonical: serde_json::to_vec(&Value::Object(out)).expect("values serialize"),
        note: String::new(),
        translation_notes: notes,
    })
}

/// One input item onto the canonical message list.
fn input_item(
    item: &Value,
    messages: &mut Vec<Value>,
    notes: &mut Vec<String>,
) -> Result<(), PluginError> {
    let kind = item["type"]
        .as_str()
        .unwrap_or(if item["role"].is_string() {
            "message"
        } else {
            ""
        });
    match kind {
        "message" => {
            let role = match item["role"].as_str() {
                Some("developer") | Some("system") => "system",
                Some("assistant") => "assistant",
                Some("user") => "user",
                other => return Err(bad(format!("input message with role {other:?}"))),
            };
            let content = message_content(&item["content"], notes)?;
            messages.push(json!({ "role": role, "content": content }));
        }
        "function_call" => {
            let call = json!({
                "id": item["call_id"],
                "type": "function",
                "function": { "name": item["name"], "arguments": item["arguments"].as_str().unwrap_or("{}") },
            });
            // Calls right after an assistant turn belong to it.
            match messages.last_mut() {
                Some(last) if last["role"] == "assistant" => {
                    if !last["tool_calls"].is_array() {
                        last["tool_calls"] = json!([]);
                    }
                    last["tool_calls"]
                        .as_array_mut()
                        .expect("just set")
                        .push(call);
                }
                _ => messages
                    .push(json!({ "role": "assistant", "content": null, "tool_calls": [call] })),
            }
        }
        "function_call_output" => {
            let output = match &item["output"] {
                Value::String(s) => s.clone(),
                Value::Array(parts) => parts
                    .iter()
                    .filter_map(|p| p["text"].as_str())
                    .collect::<Vec<_>>()
                    .join(""),
                other => other.to_string(),
            };
            messages.push(
                json!({ "role": "tool", "tool_call_id": item["call_id"], "content": output }),
            );
        }
        "reasoning" => {
            notes.push("dropped a reasoning item: chat backends take no reasoning input".into())
        }
        "item_reference" => {
            return Err(bad(
                "item_reference inputs are not supported: llmgate does not store responses",
            ));
        }
        other => notes.push(format!("dropped an input item of type {other}")),
    }
    Ok(())
}

/// Message content (a string or parts) -> canonical content.
fn message_content(content: &Value, notes: &mut Vec<String>) -> Result<Value, PluginError> {
    let parts = match content {
        Value::String(s) => return Ok(s.clone().into()),
        Value::Array(parts) => parts,
        Value::Null => return Ok(Value::String(String::new())),
        _ => return Err(bad("message content must be a string or a list of parts")),
    };
    let mut out = Vec::new();
    for part in parts {
        match part["type"].as_str() {
            Some("input_text" | "output_text" | "text") => {
                out.push(json!({ "type": "text", "text": part["text"] }));
            }
            Some("input_image") => match part["image_url"].as_str() {
                Some(url) => {
                    let mut image = json!({ "url": url });
                    if let Some(detail) = part["detail"].as_str() {
                        image["detail"] = detail.into();
                    }
                    out.push(json!({ "type": "image_url", "image_url": image }));
                }
                None => notes.push("dropped an input_image given by file_id".into()),
            },
            Some("refusal") => out.push(json!({ "type": "text", "text": part["refusal"] })),
            other => notes.push(format!(
                "dropped a content part of type {}",
                other.unwrap_or("(none)")
            )),
        }
    }
    // Plain text stays a string: every chat backend takes that.
    if out.iter().all(|p| p["type"] == "text") {
        let text: String = out.iter().filter_map(|p| p["text"].as_str()).collect();
        return Ok(text.into());
    }
    Ok(Value::Array(out))
}

/// What a Responses request needs from a backend.
pub fn inspect_request(body: &[u8]) -> Result<RequestProfile, PluginError> {
    let req: Value = serde_json::from_slice(body).map_err(|e| bad(format!("request body: {e}")))?;
    let mut text_bytes = req["instructions"].as_str().map_or(0, str::len);
    let mut vision = false;
    match &req["input"] {
        Value::String(s) => text_bytes += s.len(),
        Value::Array(items) => {
            for item in items {
                text_bytes += item["arguments"].as_str().map_or(0, str::len);
                text_bytes += item["output"].as_str().map_or(0, str::len);
                match &item["content"] {
                    Value::String(s) => text_bytes += s.len(),
                    Value::Array(parts) => {
                        for part in parts {
                            text_bytes += part["text"].as_str().map_or(0, str::len);
                            vision |= part["type"] == "input_image";
                        }
                    }
                    _ => {}
                }
            }
        }
        _ => {}
    }
    Ok(RequestProfile {
        tools: req["tools"].as_array().is_some_and(|t| !t.is_empty()),
        vision,
        json_schema: req["text"]["format"]["type"] == "json_schema",
        estimated_input_tokens: (text_bytes / 4).min(u32::MAX as usize) as u32,
    })
}

/// The Response id for a canonical completion id.
fn response_id(canonical_id: &Value) -> String {
    let id = canonical_id.as_str().unwrap_or("llmgate");
    format!("resp_{}", id.strip_prefix("chatcmpl-").unwrap_or(id))
}

/// `status` and `incomplete_details` for a chat finish reason.
fn status_for(finish: Option<&str>) -> (&'static str, Value) {
    match finish {
        Some("length") => ("incomplete", json!({ "reason": "max_output_tokens" })),
        Some("content_filter") => ("incomplete", json!({ "reason": "content_filter" })),
        _ => ("completed", Value::Null),
    }
}

/// A Response object around `output`.
fn response_object(
    id: &str,
    created: u64,
    model: &str,
    status: &str,
    output: Vec<Value>,
    usage: Value,
    incomplete: Value,
) -> Value {
    json!({
        "id": id,
        "object": "response",
        "created_at": created,
        "status": status,
        "error": null,
        "incomplete_details": incomplete,
        "instructions": null,
        "max_output_tokens": null,
        "model": model,
        "output": output,
        "parallel_tool_calls": true,
        "previous_response_id": null,
        "reasoning": { "effort": null, "summary": null },
        "store": false,
        "temperature": null,
        "text": { "format": { "type": "text" } },
        "tool_choice": "auto",
        "tools": [],
        "top_p": null,
        "truncation": "disabled",
        "usage": usage,
        "metadata": {},
    })
}

fn message_item(id: &str, text: &str, status: &str) -> Value {
    let content = if text.is_empty() && status != "completed" {
        json!([])
    } else {
        json!([{ "type": "output_text", "text": text, "annotations": [] }])
    };
    json!({ "type": "message", "id": id, "status": status, "role": "assistant", "content": content })
}

fn call_item(call_id: &str, name: &str, arguments: &str, status: &str) -> Value {
    json!({
        "type": "function_call",
        "id": format!("fc_{call_id}"),
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": status,
    })
}

/// Canonical response -> Response object.
pub fn encode_response(canonical: &[u8], client_model: &str) -> Result<Vec<u8>, PluginError> {
    let resp: Value = serde_json::from_slice(canonical)
        .map_err(|e| PluginError::upstream(format!("canonical response: {e}")))?;
    let choice = &resp["choices"][0];
    let message = &choice["message"];
    let id = response_id(&resp["id"]);
    let mut output = Vec::new();
    let text = crate::canonical::content_text(&message["content"]);
    if !text.is_empty() {
        output.push(message_item(
            &format!("msg_{}", &id[5..]),
            &text,
            "completed",
        ));
    }
    for call in message["tool_calls"].as_array().into_iter().flatten() {
        output.push(call_item(
            call["id"].as_str().unwrap_or_default(),
            call["function"]["name"].as_str().unwrap_or_default(),
            call["function"]["arguments"].as_str().unwrap_or("{}"),
            "completed",
        ));
    }
    let (status, incomplete) = status_for(choice["finish_reason"].as_str());
    let usage = if resp["usage"].is_object() {
        response_usage(&resp["usage"])
    } else {
        Value::Null
    };
    let out = response_object(
        &id,
        resp["created"].as_u64().unwrap_or(0),
        client_model,
        status,
        output,
        usage,
        incomplete,
    );
    Ok(serde_json::to_vec(&out).expect("values serialize"))
}

/// An output item being streamed.
#[derive(Debug)]
enum OpenItem {
    /// The assistant's text.
    Message {
        output_index: usize,
        id: String,
        text: String,
    },
    /// A function call; `index` is its canonical tool-call index.
    Call {
        output_index: usize,
        index: u64,
        call_id: String,
        name: String,
        arguments: String,
    },
}

#[derive(Debug, Default)]
struct EncoderState {
    started: bool,
    finished: bool,
    sequence: u64,
    id: String,
    created: u64,
    /// Items still streaming, in output order.
    open: Vec<OpenItem>,
    /// Finished items, by output index.
    done: Vec<(usize, Value)>,
    next_output_index: usize,
    finish: Option<String>,
    usage: Option<Value>,
}

/// Canonical chunks -> Responses stream events.
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

    /// Canonical chunks in, typed events out.
    pub fn push(&self, chunks: Vec<Vec<u8>>) -> Result<Vec<SseEvent>, PluginError> {
        let mut st = self.state.borrow_mut();
        let mut out = Vec::new();
        for chunk in chunks {
            let chunk: Value = serde_json::from_slice(&chunk)
                .map_err(|e| PluginError::upstream(format!("canonical chunk: {e}")))?;
            if !st.started {
                st.started = true;
                st.id = response_id(&chunk["id"]);
                st.created = chunk["created"].as_u64().unwrap_or(0);
                let response = self.snapshot(&st, "in_progress", Vec::new(), Value::Null);
                emit(
                    &mut st,
                    &mut out,
                    "response.created",
                    json!({ "response": response.clone() }),
                );
                emit(
                    &mut st,
                    &mut out,
                    "response.in_progress",
                    json!({ "response": response }),
                );
            }
            if chunk["usage"].is_object() {
                st.usage = Some(response_usage(&chunk["usage"]));
            }
            let Some(choice) = chunk["choices"].get(0) else {
                continue;
            };
            let delta = &choice["delta"];
            if let Some(text) = delta["content"].as_str().filter(|t| !t.is_empty()) {
                self.text_delta(&mut st, &mut out, text);
            }
            for call in delta["tool_calls"].as_array().into_iter().flatten() {
                self.call_delta(&mut st, &mut out, call);
            }
            if let Some(finish) = choice["finish_reason"].as_str() {
                st.finish = Some(finish.to_string());
            }
        }
        Ok(out)
    }

    fn text_delta(&self, st: &mut EncoderState, out: &mut Vec<SseEvent>, text: &str) {
        let open_message = st
            .open
            .iter()
            .position(|i| matches!(i, OpenItem::Message { .. }));
        let at = match open_message {
            Some(at) => at,
            None => {
                // Text after calls starts a new message; the calls stay open
                // (their arguments may still grow) but are closed first so
                // items finish in output order.
                close_all(st, out);
                let output_index = st.next_output_index;
                st.next_output_index += 1;
                let id = format!("msg_{}_{output_index}", &st.id[5..]);
                emit(
                    st,
                    out,
                    "response.output_item.added",
                    json!({
                        "output_index": output_index,
                        "item": message_item(&id, "", "in_progress"),
                    }),
                );
                emit(
                    st,
                    out,
                    "response.content_part.added",
                    json!({
                        "item_id": id, "output_index": output_index, "content_index": 0,
                        "part": { "type": "output_text", "text": "", "annotations": [] },
                    }),
                );
                st.open.push(OpenItem::Message {
                    output_index,
                    id,
                    text: String::new(),
                });
                st.open.len() - 1
            }
        };
        let OpenItem::Message {
            output_index,
            id,
            text: so_far,
        } = &mut st.open[at]
        else {
            unreachable!("found as a message")
        };
        so_far.push_str(text);
        let (output_index, id) = (*output_index, id.clone());
        emit(
            st,
            out,
            "response.output_text.delta",
            json!({
                "item_id": id, "output_index": output_index, "content_index": 0,
                "delta": text, "logprobs": [],
            }),
        );
    }

    fn call_delta(&self, st: &mut EncoderState, out: &mut Vec<SseEvent>, call: &Value) {
        let index = call["index"].as_u64().unwrap_or(0);
        let existing = st
            .open
            .iter()
            .position(|i| matches!(i, OpenItem::Call { index: j, .. } if *j == index));
        let at = match existing {
            Some(at) => at,
            None => {
                // A new call: the message before it is complete.
                if let Some(m) = st
                    .open
                    .iter()
                    .position(|i| matches!(i, OpenItem::Message { .. }))
                {
                    let item = st.open.remove(m);
                    close(st, out, item);
                }
                let output_index = st.next_output_index;
                st.next_output_index += 1;
                let call_id = call["id"]
                    .as_str()
                    .map_or_else(|| format!("call_{}_{index}", &st.id[5..]), str::to_string);
                let name = call["function"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                emit(
                    st,
                    out,
                    "response.output_item.added",
                    json!({
                        "output_index": output_index,
                        "item": call_item(&call_id, &name, "", "in_progress"),
                    }),
                );
                st.open.push(OpenItem::Call {
                    output_index,
                    index,
                    call_id,
                    name,
                    arguments: String::new(),
                });
                st.open.len() - 1
            }
        };
        if let Some(fragment) = call["function"]["arguments"]
            .as_str()
            .filter(|f| !f.is_empty())
        {
            let OpenItem::Call {
                output_index,
                call_id,
                arguments,
                ..
            } = &mut st.open[at]
            else {
                unreachable!("found as a call")
            };
            arguments.push_str(fragment);
            let (output_index, item_id) = (*output_index, format!("fc_{call_id}"));
            emit(
                st,
                out,
                "response.function_call_arguments.delta",
                json!({
                    "item_id": item_id, "output_index": output_index, "delta": fragment,
                }),
            );
        }
    }

    /// The stream ended: every open item closes, then `response.completed`
    /// (or `response.incomplete`) with the whole Response and its usage.
    pub fn finish(&self) -> Vec<SseEvent> {
        let mut st = self.state.borrow_mut();
        if st.finished {
            return Vec::new();
        }
        st.finished = true;
        let mut out = Vec::new();
        if !st.started {
            st.id = "resp_llmgate".into();
            st.started = true;
        }
        close_all(&mut st, &mut out);
        let (status, incomplete) = status_for(st.finish.as_deref());
        let mut done = std::mem::take(&mut st.done);
        done.sort_by_key(|(i, _)| *i);
        let output = done.into_iter().map(|(_, item)| item).collect();
        let mut response =
            self.snapshot(&st, status, output, st.usage.clone().unwrap_or(Value::Null));
        response["incomplete_details"] = incomplete;
        let kind = if status == "completed" {
            "response.completed"
        } else {
            "response.incomplete"
        };
        emit(&mut st, &mut out, kind, json!({ "response": response }));
        out
    }

    /// The stream failed after it started: an `error` event, then
    /// `response.failed`.
    pub fn fail(&self, err: &PluginError) -> Vec<SseEvent> {
        let mut st = self.state.borrow_mut();
        if st.finished {
            return Vec::new();
        }
        st.finished = true;
        let mut out = Vec::new();
        let code = err
            .code
            .clone()
            .unwrap_or_else(|| crate::error::kind_name(err.kind).into());
        emit(
            &mut st,
            &mut out,
            "error",
            json!({
                "code": code, "message": err.message, "param": null,
            }),
        );
        let mut response = self.snapshot(&st, "failed", Vec::new(), Value::Null);
        response["error"] = json!({ "code": code, "message": err.message });
        emit(
            &mut st,
            &mut out,
            "response.failed",
            json!({ "response": response }),
        );
        out
    }

    fn snapshot(&self, st: &EncoderState, status: &str, output: Vec<Value>, usage: Value) -> Value {
        response_object(
            &st.id,
            st.created,
            &self.client_model,
            status,
            output,
            usage,
            Value::Null,
        )
    }
}

/// One event: `event:` is the type, the data carries it too, with the next
/// sequence number.
fn emit(st: &mut EncoderState, out: &mut Vec<SseEvent>, kind: &str, mut data: Value) {
    data["type"] = kind.into();
    data["sequence_number"] = st.sequence.into();
    st.sequence += 1;
    out.push(SseEvent {
        event: Some(kind.into()),
        data: serde_json::to_string(&data).expect("values serialize"),
    });
}

fn close_all(st: &mut EncoderState, out: &mut Vec<SseEvent>) {
    for item in std::mem::take(&mut st.open) {
        close(st, out, item);
    }
}

/// The `.done` events of one item.
fn close(st: &mut EncoderState, out: &mut Vec<SseEvent>, item: OpenItem) {
    match item {
        OpenItem::Message {
            output_index,
            id,
            text,
        } => {
            emit(
                st,
                out,
                "response.output_text.done",
                json!({
                    "item_id": id, "output_index": output_index, "content_index": 0,
                    "text": text, "logprobs": [],
                }),
            );
            emit(
                st,
                out,
                "response.content_part.done",
                json!({
                    "item_id": id, "output_index": output_index, "content_index": 0,
                    "part": { "type": "output_text", "text": text, "annotations": [] },
                }),
            );
            let item = message_item(&id, &text, "completed");
            emit(
                st,
                out,
                "response.output_item.done",
                json!({ "output_index": output_index, "item": item.clone() }),
            );
            st.done.push((output_index, item));
        }
        OpenItem::Call {
            output_index,
            call_id,
            name,
            arguments,
            ..
        } => {
            emit(
                st,
                out,
                "response.function_call_arguments.done",
                json!({
                    "item_id": format!("fc_{call_id}"), "output_index": output_index,
                    "name": name, "arguments": arguments,
                }),
            );
            let item = call_item(&call_id, &name, &arguments, "completed");
            emit(
                st,
                out,
                "response.output_item.done",
                json!({ "output_index": output_index, "item": item.clone() }),
            );
            st.done.push((output_index, item));
        }
    }
}
