//! A mock LLM provider speaking the OpenAI Chat Completions API, for tests,
//! benchmarks and the quickstart.
//!
//! ```text
//! mock-upstream [--listen 127.0.0.1:0] [--chunks 8] [--delay-ms 0] [--key SECRET]
//! ```
//!
//! Prints `mock-upstream listening on http://ADDR` once it accepts connections.
//! The answer echoes the last user message. The requested model name scripts
//! failures, so a gateway route can point at a misbehaving backend:
//!
//! | model contains   | behaviour                                               |
//! |------------------|---------------------------------------------------------|
//! | `fail-500`       | 500 with an OpenAI `server_error` object                |
//! | `fail-429`       | 429 `rate_limit_exceeded`, `retry-after: 1`             |
//! | `fail-quota`     | 429 `insufficient_quota`                                |
//! | `fail-400`       | 400 `invalid_request_error`                             |
//! | `fail-529`       | 529 `overloaded_error` (as Anthropic sends it)          |
//! | `stall-midstream`| streams one delta, then goes silent                     |
//! | `stall`          | accepts, then never answers                             |
//! | `garbage`        | streams one delta, then a line that is not JSON         |
//! | `midstream-error`| streams one delta, then an `error` object               |
//! | `cut`            | streams one delta, then closes without `[DONE]`         |
//!
//! `GET /mock/stats` returns how many chat requests each model name and each
//! presented key received, so tests can see which backends were tried.
//!
//! Shapes follow OpenAI's API reference: `chat.completion` and
//! `chat.completion.chunk` objects, `usage` with token details, a final
//! usage-only chunk when `stream_options.include_usage` is set, `data: [DONE]`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;

type Body = BoxBody<Bytes, Infallible>;

#[derive(Debug)]
struct Settings {
    chunks: usize,
    delay: Duration,
    key: Option<String>,
    /// Chat requests seen, by model and by presented key.
    seen: std::sync::Mutex<Seen>,
}

#[derive(Debug, Default)]
struct Seen {
    models: std::collections::BTreeMap<String, u64>,
    keys: std::collections::BTreeMap<String, u64>,
}

fn main() {
    let mut listen: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let mut settings = Settings {
        chunks: 8,
        delay: Duration::ZERO,
        key: None,
        seen: Default::default(),
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
                settings.delay = Duration::from_millis(
                    value()
                        .parse()
                        .unwrap_or_else(|_| usage_exit("bad --delay-ms")),
                )
            }
            "--key" => settings.key = Some(value()),
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
        "{problem}\nusage: mock-upstream [--listen ADDR] [--chunks N] [--delay-ms MS] [--key SECRET]"
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

async fn handle(
    settings: Arc<Settings>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let presented = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string);
    if req.uri().path() == "/mock/stats" {
        let seen = settings.seen.lock().unwrap();
        return Ok(json_response(
            200,
            &json!({"models": seen.models, "keys": seen.keys}),
        ));
    }
    if req.uri().path() == "/v1/chat/completions" {
        *settings
            .seen
            .lock()
            .unwrap()
            .keys
            .entry(presented.clone().unwrap_or_default())
            .or_default() += 1;
    }
    if let Some(key) = &settings.key
        && presented.as_deref() != Some(key.as_str())
    {
        return Ok(error(
            401,
            "invalid_request_error",
            "invalid_api_key",
            "Incorrect API key provided.",
        ));
    }
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return Ok(error(
                400,
                "invalid_request_error",
                "bad_body",
                "could not read body",
            ));
        }
    };
    Ok(match (method, path.as_str()) {
        (Method::GET, "/v1/models") => json_response(
            200,
            &json!({"object": "list", "data": [
                {"id": "mock-small", "object": "model", "created": 1700000000, "owned_by": "mock"}
            ]}),
        ),
        (Method::POST, "/v1/chat/completions") => match serde_json::from_slice::<Value>(&body) {
            Ok(request) => chat(&settings, &request).await,
            Err(e) => error(
                400,
                "invalid_request_error",
                "invalid_json",
                &format!("invalid JSON: {e}"),
            ),
        },
        _ => error(
            404,
            "invalid_request_error",
            "unknown_url",
            &format!("Unknown request URL: {path}"),
        ),
    })
}

async fn chat(settings: &Settings, request: &Value) -> Response<Body> {
    let model = request["model"].as_str().unwrap_or("mock").to_string();
    *settings
        .seen
        .lock()
        .unwrap()
        .models
        .entry(model.clone())
        .or_default() += 1;
    if model.contains("fail-500") {
        return error(
            500,
            "server_error",
            "server_error",
            "The server had an error while processing your request.",
        );
    }
    if model.contains("fail-429") {
        let mut r = error(
            429,
            "requests",
            "rate_limit_exceeded",
            "Rate limit reached for requests.",
        );
        r.headers_mut().insert("retry-after", "1".parse().unwrap());
        return r;
    }
    if model.contains("fail-quota") {
        return error(
            429,
            "insufficient_quota",
            "insufficient_quota",
            "You exceeded your current quota, please check your plan and billing details.",
        );
    }
    if model.contains("fail-529") {
        return json_response(
            529,
            &json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
        );
    }
    if model.contains("fail-400") {
        return error(
            400,
            "invalid_request_error",
            "invalid_value",
            "Invalid value for 'messages'.",
        );
    }
    if model.contains("stall") && !model.contains("stall-midstream") {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
    let prompt_tokens = count_prompt_tokens(request);
    let reply = format!("Hello from mock! You said: {}", last_user_text(request));
    let pieces = split_reply(&reply, settings.chunks.max(1));
    let stream = request["stream"].as_bool().unwrap_or(false);
    if !stream {
        tokio::time::sleep(settings.delay).await;
        let completion_tokens = pieces.len() as u64;
        return json_response(
            200,
            &json!({
                "id": "chatcmpl-mock",
                "object": "chat.completion",
                "created": 1700000000,
                "model": model,
                "system_fingerprint": "fp_mock",
                "choices": [{
                    "index": 0,
                    "message": {"role": "assistant", "content": reply, "refusal": null},
                    "logprobs": null,
                    "finish_reason": "stop"
                }],
                "usage": usage(prompt_tokens, completion_tokens),
            }),
        );
    }
    let include_usage = request["stream_options"]["include_usage"]
        .as_bool()
        .unwrap_or(false);
    let events = stream_events(&model, &pieces, prompt_tokens, include_usage);
    sse_response(events, settings.delay)
}

/// The stream's `data:` payloads in order; `None` marks a pause point.
fn stream_events(
    model: &str,
    pieces: &[String],
    prompt_tokens: u64,
    include_usage: bool,
) -> Vec<String> {
    let chunk = |delta: Value, finish: Value| {
        let mut c = json!({
            "id": "chatcmpl-mock",
            "object": "chat.completion.chunk",
            "created": 1700000000,
            "model": model,
            "system_fingerprint": "fp_mock",
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        });
        if include_usage {
            c["usage"] = Value::Null;
        }
        c.to_string()
    };
    let mut events = vec![chunk(
        json!({"role": "assistant", "content": "", "refusal": null}),
        Value::Null,
    )];
    let broken = ["garbage", "midstream-error", "cut", "stall-midstream"]
        .iter()
        .find(|b| model.contains(*b));
    for (i, piece) in pieces.iter().enumerate() {
        events.push(chunk(json!({"content": piece}), Value::Null));
        if i == 0
            && let Some(kind) = broken
        {
            match *kind {
                "garbage" => events.push("this is not json".into()),
                "midstream-error" => events.push(
                    json!({"error": {"message": "The model crashed mid-stream.", "type": "server_error", "code": null}}).to_string(),
                ),
                "stall-midstream" => events.push(STALL.into()),
                _ => {}
            }
            return events; // "cut" (and the others) stop here, without [DONE]
        }
    }
    events.push(chunk(json!({}), json!("stop")));
    if include_usage {
        events.push(
            json!({
                "id": "chatcmpl-mock",
                "object": "chat.completion.chunk",
                "created": 1700000000,
                "model": model,
                "system_fingerprint": "fp_mock",
                "choices": [],
                "usage": usage(prompt_tokens, pieces.len() as u64),
            })
            .to_string(),
        );
    }
    events.push("[DONE]".into());
    events
}

/// In an event list: stop sending, but keep the connection open.
const STALL: &str = "\u{0}stall";

fn sse_response(events: Vec<String>, delay: Duration) -> Response<Body> {
    let stream = futures_util::stream::unfold(
        (events.into_iter(), true),
        move |(mut events, first)| async move {
            let data = events.next()?;
            if data == STALL {
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
            if !first && !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let frame = Frame::data(Bytes::from(format!("data: {data}\n\n")));
            Some((Ok::<_, Infallible>(frame), (events, false)))
        },
    );
    Response::builder()
        .status(200)
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-cache")
        .body(StreamBody::new(stream).boxed())
        .unwrap()
}

fn usage(prompt: u64, completion: u64) -> Value {
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0, "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}
    })
}

/// A rough token count: words in all message contents.
fn count_prompt_tokens(request: &Value) -> u64 {
    request["messages"]
        .as_array()
        .map(|messages| {
            messages
                .iter()
                .map(|m| text_of(&m["content"]).split_whitespace().count() as u64)
                .sum()
        })
        .unwrap_or(0)
}

fn last_user_text(request: &Value) -> String {
    request["messages"]
        .as_array()
        .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
        .map(|m| text_of(&m["content"]))
        .unwrap_or_default()
}

/// Content is a string or a list of parts; text parts are joined.
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

/// Splits `reply` into `n` pieces of about equal length (on char boundaries).
fn split_reply(reply: &str, n: usize) -> Vec<String> {
    let chars: Vec<char> = reply.chars().collect();
    let size = chars.len().div_ceil(n).max(1);
    chars.chunks(size).map(|c| c.iter().collect()).collect()
}

fn json_response(status: u16, value: &Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(value.to_string())).boxed())
        .unwrap()
}

fn error(status: u16, kind: &str, code: &str, message: &str) -> Response<Body> {
    json_response(
        status,
        &json!({"error": {"message": message, "type": kind, "param": null, "code": code}}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_splits_into_the_requested_pieces() {
        let pieces = split_reply("abcdefgh", 4);
        assert_eq!(pieces, ["ab", "cd", "ef", "gh"]);
        assert_eq!(split_reply("héllo", 2).concat(), "héllo");
    }

    #[test]
    fn stream_has_usage_chunk_only_when_asked() {
        let pieces = vec!["a".to_string()];
        let with = stream_events("m", &pieces, 3, true);
        assert!(with[with.len() - 2].contains("\"choices\":[]"));
        assert_eq!(with.last().unwrap(), "[DONE]");
        let without = stream_events("m", &pieces, 3, false);
        assert!(!without.iter().any(|e| e.contains("\"usage\"")));
    }

    #[test]
    fn broken_streams_stop_early() {
        let pieces = vec!["a".to_string(), "b".to_string()];
        let cut = stream_events("x-cut", &pieces, 1, false);
        assert_eq!(cut.len(), 2);
        assert!(!cut.contains(&"[DONE]".to_string()));
    }
}
