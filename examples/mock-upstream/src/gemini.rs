//! The Gemini side of the mock: `generateContent` and
//! `streamGenerateContent?alt=sse` (whole response objects per event, the
//! finish reason and usage in the last, no end marker), function calls sent
//! whole, and Gemini error objects. Like the real API it rejects a
//! `functionResponse` that answers no earlier `functionCall`.

use serde_json::{Value, json};

use crate::script::{Break, Conversation, Failure, Reply};
use crate::{Body, Frame, Settings, error_response, json_response, sse_response};

fn error(status: u16, grpc: &str, message: &str) -> hyper::Response<Body> {
    error_response(
        status,
        json!({"error": {"code": status, "message": message, "status": grpc}}),
    )
}

/// Fails the way Gemini does for a scripted failure.
pub fn failure(f: Failure) -> hyper::Response<Body> {
    match f {
        Failure::Server => error(500, "INTERNAL", "An internal error has occurred."),
        Failure::RateLimited => {
            let mut r = error(
                429,
                "RESOURCE_EXHAUSTED",
                "Resource has been exhausted (e.g. check quota).",
            );
            r.headers_mut().insert("retry-after", "1".parse().unwrap());
            r
        }
        Failure::Quota => error(
            400,
            "FAILED_PRECONDITION",
            "Gemini API free tier is not available in your country. Please enable billing on your project.",
        ),
        Failure::BadRequest => error(400, "INVALID_ARGUMENT", "Invalid JSON payload received."),
        Failure::Overloaded => error(
            503,
            "UNAVAILABLE",
            "The model is overloaded. Please try again later.",
        ),
        Failure::Stall => unreachable!("stalls are handled before"),
    }
}

fn parts(content: &Value) -> Vec<Value> {
    content["parts"].as_array().cloned().unwrap_or_default()
}

fn text_of(content: &Value) -> String {
    parts(content)
        .iter()
        .filter_map(|p| p["text"].as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The dialect-neutral view, or the 400 the real API would send.
pub fn conversation(req: &Value) -> Result<Conversation, hyper::Response<Body>> {
    let contents = req["contents"].as_array().ok_or_else(|| {
        error(
            400,
            "INVALID_ARGUMENT",
            "* GenerateContentRequest.contents: contents is not specified",
        )
    })?;
    let mut conv = Conversation::default();
    let mut called: Vec<String> = Vec::new();
    let system = req
        .get("systemInstruction")
        .or_else(|| req.get("system_instruction"));
    conv.prompt_words = system.map_or(0, |s| text_of(s).split_whitespace().count() as u64);
    for content in contents {
        conv.prompt_words += text_of(content).split_whitespace().count() as u64;
        conv.tool_result = None;
        for part in parts(content) {
            if let Some(call) = part.get("functionCall") {
                called.push(call["name"].as_str().unwrap_or("").to_string());
            }
            if let Some(resp) = part.get("functionResponse") {
                let name = resp["name"].as_str().unwrap_or("");
                if !called.iter().any(|c| c == name) {
                    return Err(error(
                        400,
                        "INVALID_ARGUMENT",
                        &format!("function response {name} does not match any function call"),
                    ));
                }
                let r = &resp["response"];
                conv.tool_result = Some(
                    r["content"]
                        .as_str()
                        .map_or_else(|| r.to_string(), str::to_string),
                );
            }
        }
        if content["role"] != "model" {
            let text = text_of(content);
            if !text.is_empty() {
                conv.last_user_text = text;
            }
        }
    }
    conv.tools = req["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|t| {
            t["functionDeclarations"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|d| d["name"].as_str().map(str::to_string))
        .collect();
    Ok(conv)
}

fn usage(prompt: u64, output: u64) -> Value {
    json!({"promptTokenCount": prompt, "candidatesTokenCount": output, "totalTokenCount": prompt + output})
}

fn response(model: &str, parts: Value, finish: Option<&str>, usage: Option<Value>) -> Value {
    let mut candidate = json!({"content": {"role": "model", "parts": parts}, "index": 0});
    if let Some(f) = finish {
        candidate["finishReason"] = f.into();
    }
    let mut r =
        json!({"candidates": [candidate], "modelVersion": model, "responseId": "mock-response"});
    if let Some(u) = usage {
        r["usageMetadata"] = u;
    }
    r
}

fn call_part(reply: &Reply) -> Value {
    match reply {
        Reply::ToolCall { name, .. } => {
            let args: Value = serde_json::from_str(&reply.joined()).unwrap();
            json!({"functionCall": {"name": name, "args": args}})
        }
        Reply::Text(_) => unreachable!("only for tool calls"),
    }
}

/// A whole `GenerateContentResponse`.
pub fn generate(model: &str, conv: &Conversation, reply: &Reply) -> hyper::Response<Body> {
    let parts = match reply {
        Reply::Text(_) => json!([{"text": reply.joined()}]),
        Reply::ToolCall { .. } => json!([call_part(reply)]),
    };
    json_response(
        200,
        &response(
            model,
            parts,
            Some("STOP"),
            Some(usage(conv.prompt_words, reply.tokens())),
        ),
    )
}

/// A `streamGenerateContent?alt=sse` stream.
pub fn stream(
    settings: &Settings,
    model: &str,
    conv: &Conversation,
    reply: &Reply,
) -> hyper::Response<Body> {
    let final_usage = Some(usage(conv.prompt_words, reply.tokens()));
    let mut frames = Vec::new();
    match reply {
        Reply::Text(pieces) => {
            let broken = crate::script::stream_break(model);
            for (i, piece) in pieces.iter().enumerate() {
                let last = i + 1 == pieces.len();
                let body = response(
                    model,
                    json!([{"text": piece}]),
                    last.then_some("STOP"),
                    if last { final_usage.clone() } else { None },
                );
                frames.push(Frame::data(&body.to_string()));
                if i == 0
                    && let Some(kind) = broken
                {
                    frames.push(match kind {
                        Break::Garbage => Frame::data("this is not json"),
                        Break::Error => Frame::data(
                            &json!({"error": {"code": 503, "message": "The model is overloaded.",
                            "status": "UNAVAILABLE"}})
                            .to_string(),
                        ),
                        Break::Stall => Frame::Stall,
                        Break::Cut => Frame::Close,
                    });
                    return sse_response(frames, settings.delay);
                }
            }
        }
        Reply::ToolCall { .. } => {
            frames.push(Frame::data(
                &response(model, json!([call_part(reply)]), Some("STOP"), final_usage).to_string(),
            ));
        }
    }
    sse_response(frames, settings.delay)
}
