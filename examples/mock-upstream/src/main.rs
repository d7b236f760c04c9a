//! A mock LLM provider for tests, benchmarks and the quickstart. It speaks
//! the OpenAI Chat Completions API (`POST /v1/chat/completions`) and the
//! Anthropic Messages API (`POST /v1/messages`) and the Gemini API
//! (`POST /v1beta/models/{model}:generateContent`, `:streamGenerateContent`),
//! streamed and not, with tool
//! calls, in the shapes of the providers' API references.
//!
//! ```text
//! mock-upstream [--listen 127.0.0.1:0] [--chunks 8] [--delay-ms 0] [--key SECRET] [--stamp]
//! ```
//!
//! `--stamp` ends every streamed text delta with its send time ([`stamp`]),
//! for the benchmark's stream probe.
//!
//! Prints `mock-upstream listening on http://ADDR` once it accepts connections.
//! The answer echoes the last user message; when the request declares tools
//! it calls the first one with `{"query": <last user text>}`; when the last
//! message is a tool result it answers `Tool said: <result>`.
//!
//! The requested model name scripts failures, so a gateway route can point
//! at a misbehaving backend (each in the dialect's own error shape):
//!
//! | model contains   | behaviour                                               |
//! |------------------|---------------------------------------------------------|
//! | `fail-500`       | 500 server error                                        |
//! | `fail-429`       | 429 rate limited, `retry-after: 1`                      |
//! | `fail-quota`     | out of quota (OpenAI 429 `insufficient_quota`, Anthropic 400 credit balance) |
//! | `fail-400`       | 400 invalid request                                     |
//! | `fail-529`       | overloaded (Anthropic 529, OpenAI 503)                  |
//! | `stall`          | accepts, then never answers                             |
//! | `garbage`        | streams one delta, then a line that is not JSON         |
//! | `midstream-error`| streams one delta, then the dialect's error event       |
//! | `cut`            | streams one delta, then closes without the end marker   |
//! | `stall-midstream`| streams one delta, then goes silent                     |
//!
//! `GET /mock/stats` returns how many chat requests each model name and each
//! presented key received, so tests can see which backends were tried;
//! `GET /mock/last-request` returns the last chat request body exactly as
//! received, and `GET /mock/last-headers` its headers, so tests can check
//! what a gateway sent. OpenAI-dialect requests may carry the key as
//! `Authorization: Bearer` or, as Azure OpenAI takes it, in `api-key`.

// The error side of `conversation` is a ready HTTP answer, built once per
// rejected request; boxing it would only add noise.
#![allow(clippy::result_large_err)]

mod anthropic;
mod gemini;
mod openai;
mod script;
mod stamp;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use script::{Failure, Reply};

type Body = BoxBody<Bytes, Infallible>;

/// Command-line settings and what has been seen.
#[derive(Debug)]
pub struct Settings {
    chunks: usize,
    delay: Duration,
    key: Option<String>,
    stamp: bool,
    seen: Mutex<Seen>,
    last_body: Mutex<Bytes>,
    last_headers: Mutex<BTreeMap<String, String>>,
}

#[derive(Debug, Default)]
struct Seen {
    models: BTreeMap<String, u64>,
    keys: BTreeMap<String, u64>,
}

fn main() {
    let mut listen: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let mut settings = Settings {
        chunks: 8,
        delay: Duration::ZERO,
        key: None,
        stamp: false,
        seen: Mutex::default(),
        last_body: Mutex::default(),
        last_headers: Mutex::default(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .unwrap_or_else(|| usage_exit(&format!("{arg} needs a value")))
        };
        match arg.as_str() {
            "--listen" => {
                listen = value()
                    .parse()
                    .unwrap_or_else(|_| usage_exit("bad --listen"))
            }
            "--chunks" => {
                settings.chunks = value()
                    .parse()
                    .unwrap_or_else(|_| usage_exit("bad --chunks"))
            }
            "--delay-ms" => {
                let ms = value()
                    .parse()
                    .unwrap_or_else(|_| usage_exit("bad --delay-ms"));
                settings.delay = Duration::from_millis(ms);
            }
            "--key" => settings.key = Some(value()),
            "--stamp" => settings.stamp = true,
            _ => usage_exit(&format!("unknown argument {arg}")),
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(serve(listen, Arc::new(settings)));
}

fn usage_exit(problem: &str) -> ! {
    eprintln!(
        "{problem}\nusage: mock-upstream [--listen ADDR] [--chunks N] [--delay-ms MS] [--key SECRET] [--stamp]"
    );
    std::process::exit(2)
}

async fn serve(listen: SocketAddr, settings: Arc<Settings>) {
    let listener = TcpListener::bind(listen)
        .await
        .expect("binding the listen address");
    println!(
        "mock-upstream listening on http://{}",
        listener.local_addr().unwrap()
    );
    loop {
        let Ok((socket, _)) = listener.accept().await else {
            continue;
        };
        let _ = socket.set_nodelay(true);
        let settings = Arc::clone(&settings);
        tokio::spawn(async move {
            let service = service_fn(move |req| handle(Arc::clone(&settings), req));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(socket), service)
                .await;
        });
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Dialect {
    OpenAi,
    Anthropic,
    Gemini,
}

async fn handle(
    settings: Arc<Settings>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_string();
    let dialect = match (req.method(), path.as_str()) {
        (&Method::GET, "/mock/stats") => {
            let seen = settings.seen.lock().unwrap();
            return Ok(json_response(
                200,
                &json!({"models": seen.models, "keys": seen.keys}),
            ));
        }
        (&Method::GET, "/mock/last-request") => {
            let body = settings.last_body.lock().unwrap().clone();
            return Ok(Response::builder()
                .header("content-type", "application/json")
                .body(Full::new(body).boxed())
                .unwrap());
        }
        (&Method::GET, "/mock/last-headers") => {
            let headers = settings.last_headers.lock().unwrap().clone();
            return Ok(json_response(200, &json!(headers)));
        }
        (&Method::GET, "/v1/models") => {
            return Ok(json_response(
                200,
                &json!({"object": "list", "data": [
                {"id": "mock-small", "object": "model", "created": 1700000000, "owned_by": "mock"}]}),
            ));
        }
        // Counts are 1000 + words, so tests can tell them from a gateway's estimate.
        (&Method::POST, p) if p.ends_with(":countTokens") || p == "/v1/messages/count_tokens" => {
            let body = req
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let words = String::from_utf8_lossy(&body)
                .split(|c: char| !c.is_alphanumeric())
                .filter(|w| *w == "word")
                .count();
            let count = 1000 + words;
            return Ok(json_response(
                200,
                &if path.ends_with(":countTokens") {
                    json!({"totalTokens": count})
                } else {
                    json!({"input_tokens": count})
                },
            ));
        }
        (&Method::POST, "/v1/embeddings") => return Ok(embed(&settings, req, None).await),
        (&Method::POST, "/v1/responses") => return Ok(responses(&settings, req).await),
        (&Method::POST, p)
            if p.starts_with("/v1beta/models/")
                && (p.ends_with(":embedContent") || p.ends_with(":batchEmbedContents")) =>
        {
            let model = p["/v1beta/models/".len()..]
                .split(':')
                .next()
                .unwrap_or_default()
                .to_string();
            return Ok(embed(&settings, req, Some(model)).await);
        }
        (&Method::POST, "/v1/chat/completions") => Dialect::OpenAi,
        (&Method::POST, "/v1/messages") => Dialect::Anthropic,
        (&Method::POST, p) if p.starts_with("/v1beta/models/") => Dialect::Gemini,
        _ => {
            return Ok(error_response(
                404,
                json!({"error": {"message": format!("Unknown request URL: {path}"),
                "type": "invalid_request_error", "code": "unknown_url"}}),
            ));
        }
    };
    let headers = req.headers().clone();
    let presented = match dialect {
        Dialect::OpenAi => headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .or_else(|| headers.get("api-key").and_then(|v| v.to_str().ok()))
            .map(str::to_string),
        Dialect::Anthropic => headers
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        Dialect::Gemini => headers
            .get("x-goog-api-key")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
    };
    *settings
        .seen
        .lock()
        .unwrap()
        .keys
        .entry(presented.clone().unwrap_or_default())
        .or_default() += 1;
    if let Some(key) = &settings.key
        && presented.as_deref() != Some(key.as_str())
    {
        return Ok(match dialect {
            Dialect::OpenAi => error_response(
                401,
                json!({"error": {"message": "Incorrect API key provided.",
                "type": "invalid_request_error", "param": null, "code": "invalid_api_key"}}),
            ),
            Dialect::Anthropic => error_response(
                401,
                json!({"type": "error",
                "error": {"type": "authentication_error", "message": "invalid x-api-key"}}),
            ),
            Dialect::Gemini => error_response(
                400,
                json!({"error": {"code": 400,
                "message": "API key not valid. Please pass a valid API key.", "status": "INVALID_ARGUMENT"}}),
            ),
        });
    }
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return Ok(error_response(
                400,
                json!({"error": {"message": "could not read body"}}),
            ));
        }
    };
    *settings.last_body.lock().unwrap() = body.clone();
    *settings.last_headers.lock().unwrap() = headers
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let request: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return Ok(error_response(
                400,
                json!({"error": {"message": format!("invalid JSON: {e}"),
            "type": "invalid_request_error"}}),
            ));
        }
    };
    // Gemini names the model (and the stream choice) in the path.
    let gemini_call = path
        .strip_prefix("/v1beta/models/")
        .and_then(|rest| rest.split_once(':'))
        .map(|(model, method)| (model.to_string(), method == "streamGenerateContent"));
    let model = match &gemini_call {
        Some((model, _)) => model.clone(),
        None => request["model"].as_str().unwrap_or("mock").to_string(),
    };
    *settings
        .seen
        .lock()
        .unwrap()
        .models
        .entry(model.clone())
        .or_default() += 1;
    if let Some(failure) = script::failure(&model) {
        if failure == Failure::Stall {
            tokio::time::sleep(script::FOREVER).await;
        }
        return Ok(match dialect {
            Dialect::OpenAi => openai::failure(failure),
            Dialect::Anthropic => anthropic::failure(failure),
            Dialect::Gemini => gemini::failure(failure),
        });
    }
    let conversation = match dialect {
        Dialect::OpenAi => openai::conversation(&request),
        Dialect::Anthropic => anthropic::conversation(&headers, &request),
        Dialect::Gemini => gemini::conversation(&request),
    };
    let conv = match conversation {
        Ok(c) => c,
        Err(response) => return Ok(response),
    };
    let mut reply = Reply::plan(&conv, settings.chunks, &model);
    if settings.stamp {
        reply.stamp();
    }
    let stream = match &gemini_call {
        Some((_, stream)) => *stream,
        None => request["stream"].as_bool().unwrap_or(false),
    };
    // Even a zero sleep waits for the timer wheel's next 1 ms tick.
    if !stream && !settings.delay.is_zero() {
        tokio::time::sleep(settings.delay).await;
    }
    Ok(match (dialect, stream) {
        (Dialect::OpenAi, false) => openai::completion(&model, &conv, &reply),
        (Dialect::OpenAi, true) => openai::stream(&settings, &model, &request, &conv, &reply),
        (Dialect::Anthropic, false) => anthropic::message(&model, &conv, &reply),
        (Dialect::Anthropic, true) => anthropic::stream(&settings, &model, &conv, &reply),
        (Dialect::Gemini, false) => gemini::generate(&model, &conv, &reply),
        (Dialect::Gemini, true) => gemini::stream(&settings, &model, &conv, &reply),
    })
}

/// OpenAI's Responses API, for native passthrough tests: echoes the last
/// user text, whole or as typed events. Only what passthrough needs.
async fn responses(settings: &Settings, req: Request<Incoming>) -> Response<Body> {
    let presented = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string);
    if settings.key.is_some() && presented != settings.key {
        return error_response(
            401,
            json!({"error": {"message": "Incorrect API key provided.",
            "type": "invalid_request_error", "code": "invalid_api_key"}}),
        );
    }
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    *settings.last_body.lock().unwrap() = body.clone();
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let model = request["model"].as_str().unwrap_or("mock").to_string();
    *settings
        .seen
        .lock()
        .unwrap()
        .models
        .entry(model.clone())
        .or_default() += 1;
    let said = match &request["input"] {
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .iter()
            .rev()
            .find(|i| i["role"] == "user")
            .map(|i| match &i["content"] {
                Value::String(s) => s.clone(),
                parts => parts
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|p| p["text"].as_str())
                    .collect(),
            })
            .unwrap_or_default(),
        _ => String::new(),
    };
    let text = format!("Hello from mock! You said: {said}");
    let pieces = script::split(&text, settings.chunks);
    let usage = json!({"input_tokens": 7, "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": pieces.len(), "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 7 + pieces.len()});
    let item = json!({"type": "message", "id": "msg_mock", "status": "completed", "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}]});
    let response = |status: &str, output: Value, usage: Value| {
        json!({
            "id": "resp_mock", "object": "response", "created_at": 1700000000, "status": status,
            "model": model, "output": output, "usage": usage, "error": null, "incomplete_details": null,
            "parallel_tool_calls": true, "tool_choice": "auto", "tools": [],
        })
    };
    if request["stream"] != true {
        return json_response(200, &response("completed", json!([item]), usage));
    }
    let mut seq = 0;
    let mut frame = |kind: &str, mut data: Value| {
        data["type"] = kind.into();
        data["sequence_number"] = seq.into();
        seq += 1;
        Frame::event(kind, &data.to_string())
    };
    let mut frames = vec![
        frame(
            "response.created",
            json!({"response": response("in_progress", json!([]), Value::Null)}),
        ),
        frame(
            "response.output_item.added",
            json!({"output_index": 0,
            "item": {"type": "message", "id": "msg_mock", "status": "in_progress", "role": "assistant", "content": []}}),
        ),
    ];
    for piece in &pieces {
        frames.push(frame(
            "response.output_text.delta",
            json!({"item_id": "msg_mock", "output_index": 0,
            "content_index": 0, "delta": piece}),
        ));
    }
    frames.push(
        frame(
            "response.output_item.done",
            json!({"output_index": 0, "item": item}),
        )
        .now(),
    );
    frames.push(
        frame(
            "response.completed",
            json!({"response": response("completed", json!([item]), usage)}),
        )
        .now(),
    );
    sse_response(frames, settings.delay)
}

/// Embeddings, OpenAI's (`gemini_model` none) or Gemini's: one vector per
/// text, `[chars, words, 0.5]` cut or padded to the asked dimensions, so
/// tests can tell texts apart; usage (OpenAI) counts words. Scripted
/// failures by model name, as for chat.
async fn embed(
    settings: &Settings,
    req: Request<Incoming>,
    gemini_model: Option<String>,
) -> Response<Body> {
    let headers = req.headers().clone();
    let presented = match &gemini_model {
        Some(_) => headers.get("x-goog-api-key").and_then(|v| v.to_str().ok()),
        None => headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ")),
    };
    if let Some(key) = &settings.key
        && presented != Some(key.as_str())
    {
        return match gemini_model {
            Some(_) => gemini::failure(Failure::BadRequest),
            None => error_response(
                401,
                json!({"error": {"message": "Incorrect API key provided.",
                "type": "invalid_request_error", "code": "invalid_api_key"}}),
            ),
        };
    }
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    *settings.last_body.lock().unwrap() = body.clone();
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let model = gemini_model
        .clone()
        .unwrap_or_else(|| request["model"].as_str().unwrap_or("mock").to_string());
    *settings
        .seen
        .lock()
        .unwrap()
        .models
        .entry(model.clone())
        .or_default() += 1;
    if let Some(failure) = script::failure(&model) {
        return match gemini_model {
            Some(_) => gemini::failure(failure),
            None => openai::failure(failure),
        };
    }
    let vector = |text: &str, dims: Option<u64>| -> Vec<f64> {
        let mut v = vec![
            text.chars().count() as f64,
            text.split_whitespace().count() as f64,
            0.5,
        ];
        v.resize(dims.unwrap_or(3) as usize, 0.25);
        v
    };
    let text_of = |content: &Value| -> String {
        content["parts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["text"].as_str())
            .collect()
    };
    match gemini_model {
        Some(_) => match request["requests"].as_array() {
            Some(requests) => {
                let embeddings: Vec<Value> = requests
                    .iter()
                    .map(|r| json!({"values": vector(&text_of(&r["content"]), r["outputDimensionality"].as_u64())}))
                    .collect();
                json_response(200, &json!({"embeddings": embeddings}))
            }
            None => json_response(
                200,
                &json!({"embedding": {"values": vector(&text_of(&request["content"]), request["outputDimensionality"].as_u64())}}),
            ),
        },
        None => {
            let texts: Vec<String> = match &request["input"] {
                Value::String(s) => vec![s.clone()],
                Value::Array(items) => items
                    .iter()
                    .filter_map(|t| t.as_str().map(str::to_string))
                    .collect(),
                _ => {
                    return error_response(
                        400,
                        json!({"error": {"message": "input must be text", "type": "invalid_request_error"}}),
                    );
                }
            };
            let dims = request["dimensions"].as_u64();
            let base64 = request["encoding_format"] == "base64";
            let data: Vec<Value> = texts
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    let v = vector(t, dims);
                    let embedding = if base64 {
                        let bytes: Vec<u8> =
                            v.iter().flat_map(|f| (*f as f32).to_le_bytes()).collect();
                        Value::String(base64_encode(&bytes))
                    } else {
                        json!(v)
                    };
                    json!({"object": "embedding", "index": i, "embedding": embedding})
                })
                .collect();
            let words: usize = texts.iter().map(|t| t.split_whitespace().count()).sum();
            json_response(
                200,
                &json!({"object": "list", "data": data, "model": model,
                "usage": {"prompt_tokens": words, "total_tokens": words}}),
            )
        }
    }
}

fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            out.push(if i <= chunk.len() {
                ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char
            } else {
                '='
            });
        }
    }
    out
}

/// One step of a scripted stream.
pub enum Frame {
    /// Bytes of one SSE event, sent `delay` after the previous one.
    Bytes(Bytes),
    /// Bytes sent right after the previous frame: the closing events real
    /// providers send back to back (finish, usage, end marker).
    Now(Bytes),
    /// Stop sending, keep the connection open.
    Stall,
    /// Close the connection without the end marker.
    Close,
}

impl Frame {
    /// An unnamed event.
    pub fn data(data: &str) -> Frame {
        Frame::Bytes(Bytes::from(format!("data: {data}\n\n")))
    }

    /// A named event.
    pub fn event(name: &str, data: &str) -> Frame {
        Frame::Bytes(Bytes::from(format!("event: {name}\ndata: {data}\n\n")))
    }

    /// The same frame, sent without waiting.
    pub fn now(self) -> Frame {
        match self {
            Frame::Bytes(b) => Frame::Now(b),
            other => other,
        }
    }
}

/// Sends frames `delay` apart (the first at once).
pub fn sse_response(frames: Vec<Frame>, delay: Duration) -> Response<Body> {
    let stream = futures_util::stream::unfold(
        (frames.into_iter(), true),
        move |(mut frames, first)| async move {
            let bytes = match frames.next()? {
                Frame::Now(b) => {
                    return Some((Ok(hyper::body::Frame::data(b)), (frames, false)));
                }
                Frame::Bytes(b) => b,
                Frame::Stall => {
                    tokio::time::sleep(script::FOREVER).await;
                    return None;
                }
                Frame::Close => return None,
            };
            if !first && !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let bytes = stamp::fill(&bytes, stamp::monotonic_us()).map_or(bytes, Bytes::from);
            Some((
                Ok::<_, Infallible>(hyper::body::Frame::data(bytes)),
                (frames, false),
            ))
        },
    );
    Response::builder()
        .status(200)
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-cache")
        .body(StreamBody::new(stream).boxed())
        .unwrap()
}

/// A JSON answer.
pub fn json_response(status: u16, value: &Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(value.to_string())).boxed())
        .unwrap()
}

/// A JSON error answer.
pub fn error_response(status: u16, value: Value) -> Response<Body> {
    json_response(status, &value)
}
