//! Calling upstreams that speak the Responses API: Responses clients pass
//! through natively (the body as sent, with the upstream model name); a
//! canonical chat request is refused, so the host tries another route.

use serde_json::Value;

use super::usage_of;
use crate::adapter::{AuthPlacement, CallContext, Decoded, ParsedResponse, UpstreamRequest};
use crate::json;
use crate::types::{Header, PluginError, SseEvent};

/// Path under the provider's base URL (`https://api.openai.com/v1`).
pub const RESPONSES_PATH: &str = "/responses";

/// The upstream request: natively, the client's Responses body with the
/// upstream model (and `stream` as the host decided).
pub fn build_request(
    ctx: &CallContext,
    body: &[u8],
    native: bool,
) -> Result<UpstreamRequest, PluginError> {
    if !native {
        return Err(PluginError::bad_request(
            "the responses adapter passes Responses API requests through; \
             it does not turn chat requests into them",
        ));
    }
    let bad = |e: json::NotAnObject| PluginError::bad_request(format!("request body: {e}"));
    let mut out =
        json::set_member(body, "model", &json::string_value(&ctx.upstream_model)).map_err(bad)?;
    if ctx.stream {
        out = json::set_member(&out, "stream", b"true").map_err(bad)?;
    }
    Ok(UpstreamRequest {
        method: "POST".into(),
        path_and_query: RESPONSES_PATH.into(),
        headers: vec![Header {
            name: "content-type".into(),
            value: "application/json".into(),
        }],
        body: out,
        auth: AuthPlacement::Bearer,
        stream_note: String::new(),
        translation_notes: Vec::new(),
    })
}

/// A whole Response, forwarded as it came; the usage read from it.
pub fn parse_response(
    _ctx: &CallContext,
    body: &[u8],
    _native: bool,
) -> Result<ParsedResponse, PluginError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| PluginError::upstream(format!("unreadable upstream response: {e}")))?;
    Ok(ParsedResponse {
        body: None,
        usage: usage_of(&v["usage"]),
    })
}

/// The Responses API has an input-tokens endpoint, but its shape differs by
/// vendor; the host estimates instead.
pub fn build_count_request(
    _ctx: &CallContext,
    _body: &[u8],
) -> Result<Option<UpstreamRequest>, PluginError> {
    Ok(None)
}

/// Never called: no count requests are built.
pub fn parse_count_response(_body: &[u8]) -> Result<u32, PluginError> {
    Err(PluginError::new(
        crate::types::ErrorKind::Internal,
        "no count requests are built",
    ))
}

/// A native Responses stream: events forwarded as they come, the usage taken
/// from the terminal event.
#[derive(Debug, Default)]
pub struct Decoder {
    done: bool,
}

impl Decoder {
    /// A decoder for one stream.
    pub fn new(_ctx: &CallContext, _native: bool) -> Self {
        Decoder::default()
    }

    /// Forwards the events; reads usage from `response.completed` (or
    /// `incomplete` / `failed`), which also ends the stream.
    pub fn push(&mut self, events: Vec<SseEvent>) -> Result<Decoded, PluginError> {
        let mut usage = None;
        for event in &events {
            let kind = event.event.as_deref().unwrap_or_default();
            if matches!(
                kind,
                "response.completed" | "response.incomplete" | "response.failed"
            ) || event.data.contains("\"response.completed\"")
            {
                let v: Value = serde_json::from_str(&event.data).unwrap_or(Value::Null);
                usage = usage_of(&v["response"]["usage"]).or(usage);
                self.done = true;
            }
        }
        Ok(Decoded {
            events,
            chunks: Vec::new(),
            usage,
            done: self.done,
        })
    }

    /// The stream ended.
    pub fn finish(&mut self) -> Result<Decoded, PluginError> {
        if self.done {
            Ok(Decoded {
                events: Vec::new(),
                chunks: Vec::new(),
                usage: None,
                done: true,
            })
        } else {
            Err(PluginError::upstream(
                "the Responses stream ended before response.completed",
            ))
        }
    }
}
