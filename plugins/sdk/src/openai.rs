//! The OpenAI Chat Completions dialect, which is also the canonical form.
//!
//! Lives in the SDK rather than in `plugins/openai` so that an adapter for an
//! OpenAI-compatible vendor with a quirk is a few lines around these functions.

use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::adapter::{
    AuthPlacement, CallContext, Decoded, DecodedRequest, ParsedResponse, RequestProfile,
    UpstreamRequest,
};
use crate::error::{kind_for_status, retry_after_ms};
use crate::json;
use crate::types::{ErrorKind, Header, PluginError, SseEvent, Usage};
use crate::usage::OpenAiUsage;

/// Appended to the provider's `base_url`, which is the URL one would give the
/// official OpenAI SDK (e.g. `https://api.openai.com/v1`).
pub const CHAT_PATH: &str = "/chat/completions";

/// Stream note: the adapter asked the upstream for a usage chunk the client
/// did not ask for, so the decoder must not forward it.
pub const NOTE_USAGE_ADDED: &str = "usage-added";

/// Adapter options under `[providers.options]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// Ask streams for a final usage chunk (`stream_options.include_usage`).
    /// On by default so streamed requests are metered; turn off for servers
    /// that reject the field.
    #[serde(default = "yes")]
    pub stream_usage: bool,
    /// Clamp `max_tokens` / `max_completion_tokens` to this: clients written
    /// for other models ask for more output than some models allow (Claude
    /// Code asks for 32000; gpt-4o stops at 16384 and refuses the request).
    #[serde(default)]
    pub max_output_tokens: Option<u64>,
}

fn yes() -> bool {
    true
}

impl Options {
    /// Reads the provider's options JSON.
    pub fn parse(options: &str) -> Result<Options, PluginError> {
        serde_json::from_str(options)
            .map_err(|e| PluginError::new(ErrorKind::Internal, format!("adapter options: {e}")))
    }
}

/// Builds the upstream chat request: the body as given, with the upstream
/// model name and (for streams) a request for usage.
pub fn build_request(ctx: &CallContext, body: &[u8]) -> Result<UpstreamRequest, PluginError> {
    let options = Options::parse(&ctx.options)?;
    let bad = |e: json::NotAnObject| PluginError::bad_request(format!("request body: {e}"));
    let mut out =
        json::set_member(body, "model", &json::string_value(&ctx.upstream_model)).map_err(bad)?;
    if let Some(cap) = options.max_output_tokens {
        for field in ["max_tokens", "max_completion_tokens"] {
            let members = json::members(&out).map_err(bad)?;
            let asked = json::find(&out, &members, field).and_then(|m| {
                std::str::from_utf8(&out[m.value.clone()])
                    .ok()?
                    .parse::<u64>()
                    .ok()
            });
            if asked.is_some_and(|n| n > cap) {
                out = json::set_member(&out, field, cap.to_string().as_bytes()).map_err(bad)?;
            }
        }
    }
    // The host decides whether to stream; a translated body (from a Gemini
    // client, whose URL says it) may not carry the flag.
    if ctx.stream {
        out = json::set_member(&out, "stream", b"true").map_err(bad)?;
    }
    let mut stream_note = String::new();
    if ctx.stream && options.stream_usage {
        let members = json::members(&out).map_err(bad)?;
        let existing = json::find(&out, &members, "stream_options")
            .map(|m| serde_json::from_slice::<serde_json::Value>(&out[m.value.clone()]))
            .transpose()
            .map_err(|e| PluginError::bad_request(format!("stream_options: {e}")))?;
        let client_asked = existing
            .as_ref()
            .and_then(|v| v.get("include_usage"))
            .and_then(|v| v.as_bool())
            == Some(true);
        if !client_asked {
            let mut stream_options = match existing {
                Some(serde_json::Value::Object(map)) => map,
                _ => serde_json::Map::new(),
            };
            stream_options.insert("include_usage".into(), true.into());
            let value = serde_json::to_vec(&stream_options).expect("a map always serializes");
            out = json::set_member(&out, "stream_options", &value).map_err(bad)?;
            stream_note = NOTE_USAGE_ADDED.into();
        }
    }
    Ok(UpstreamRequest {
        method: "POST".into(),
        path_and_query: CHAT_PATH.into(),
        headers: vec![Header {
            name: "content-type".into(),
            value: "application/json".into(),
        }],
        body: out,
        auth: AuthPlacement::Bearer,
        stream_note,
        // The canonical form is this dialect: nothing is lost.
        translation_notes: Vec::new(),
    })
}

/// Reads a non-streamed chat response. Native calls forward the upstream
/// body as it is; translated calls get it back as the canonical body.
///
/// Only `usage` is parsed: the rest (mostly the answer's text) is skimmed
/// for its structure, which is all a pass-through needs and costs a
/// fraction of parsing it. Translated bodies are parsed whole later, by the
/// client's encoder.
pub fn parse_response(body: &[u8], native: bool) -> Result<ParsedResponse, PluginError> {
    let unreadable = |e: &dyn std::fmt::Display| {
        PluginError::upstream(format!("unreadable upstream response: {e}"))
    };
    let members = json::members(body).map_err(|e| unreadable(&e))?;
    let usage = match json::find(body, &members, "usage") {
        Some(m) => serde_json::from_slice::<Option<OpenAiUsage>>(&body[m.value.clone()])
            .map_err(|e| unreadable(&e))?,
        None => None,
    };
    Ok(ParsedResponse {
        body: (!native).then(|| body.to_vec()),
        usage: usage.map(Usage::from),
    })
}

#[derive(Deserialize)]
struct ErrorEnvelope {
    error: ErrorObject,
}

#[derive(Deserialize)]
struct ErrorObject {
    #[serde(default)]
    message: Option<String>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    code: Option<serde_json::Value>,
}

/// Classifies a failed upstream answer from its status, headers and the
/// OpenAI error object in its body (`insufficient_quota`, `context_length_exceeded`, ...).
pub fn classify_error(status: u16, headers: &[Header], body: &[u8]) -> PluginError {
    let parsed = serde_json::from_slice::<ErrorEnvelope>(body)
        .ok()
        .map(|e| e.error);
    let code = parsed.as_ref().and_then(|e| match &e.code {
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        _ => e.kind.clone(),
    });
    let kind = match code.as_deref() {
        Some("insufficient_quota" | "billing_hard_limit_reached") => ErrorKind::QuotaExhausted,
        Some("context_length_exceeded" | "string_above_max_length") => ErrorKind::ContextLength,
        Some("content_filter" | "content_policy_violation") => ErrorKind::ContentFilter,
        Some("invalid_api_key") => ErrorKind::Auth,
        Some("model_not_found") => ErrorKind::NotFound,
        _ => kind_for_status(status),
    };
    let message = match parsed.and_then(|e| e.message) {
        Some(m) => m,
        None => crate::error::unreadable_body_message(status, body),
    };
    PluginError {
        kind,
        retry_after_ms: retry_after_ms(headers),
        upstream_status: Some(status),
        code,
        message,
    }
}

/// What the decoder needs to know of one stream chunk, read without
/// allocating for the parts it skips.
#[derive(Deserialize)]
struct ChunkPeek {
    #[serde(default)]
    choices: Option<Vec<IgnoredAny>>,
    #[serde(default)]
    usage: Option<OpenAiUsage>,
    #[serde(default)]
    error: Option<ErrorObject>,
}

/// Per-stream state for an OpenAI-dialect upstream stream.
#[derive(Debug)]
pub struct Decoder {
    native: bool,
    drop_usage_chunk: bool,
    usage: Option<Usage>,
    done: bool,
}

impl Decoder {
    /// A decoder for one stream; `note` is what [`build_request`] returned.
    pub fn new(native: bool, note: &str) -> Self {
        Decoder {
            native,
            drop_usage_chunk: note == NOTE_USAGE_ADDED,
            usage: None,
            done: false,
        }
    }

    /// Reads events: forwards them (native) or passes their chunks on
    /// (translated), noting usage, the end, and errors sent mid-stream.
    pub fn push(&mut self, events: Vec<SseEvent>) -> Result<Decoded, PluginError> {
        let mut out = Decoded {
            events: Vec::new(),
            chunks: Vec::new(),
            usage: None,
            done: false,
        };
        for event in events {
            let data = event.data.trim();
            if data == "[DONE]" {
                self.done = true;
                if self.native {
                    out.events.push(event);
                }
                continue;
            }
            if data.is_empty() {
                continue;
            }
            let peek: ChunkPeek = serde_json::from_str(data).map_err(|e| {
                PluginError::upstream(format!("unreadable chunk in upstream stream: {e}"))
            })?;
            if let Some(err) = peek.error {
                return Err(PluginError {
                    kind: ErrorKind::Upstream,
                    retry_after_ms: None,
                    upstream_status: None,
                    code: err.kind,
                    message: err
                        .message
                        .unwrap_or_else(|| "the upstream reported an error mid-stream".into()),
                });
            }
            let usage_only = peek.choices.as_ref().is_none_or(|c| c.is_empty());
            if let Some(u) = peek.usage {
                self.usage = Some(u.into());
            }
            if self.native {
                if !(usage_only && self.drop_usage_chunk) {
                    out.events.push(event);
                }
            } else {
                out.chunks.push(event.data.into_bytes());
            }
        }
        out.usage = self.usage;
        out.done = self.done;
        Ok(out)
    }

    /// The upstream closed the stream.
    pub fn finish(&mut self) -> Result<Decoded, PluginError> {
        if !self.done {
            return Err(PluginError::upstream(
                "the upstream closed the stream before [DONE]",
            ));
        }
        Ok(Decoded {
            events: Vec::new(),
            chunks: Vec::new(),
            usage: self.usage,
            done: true,
        })
    }
}

#[derive(Deserialize)]
struct RequestPeek {
    #[serde(default)]
    messages: Vec<MessagePeek>,
    #[serde(default)]
    tools: Option<Vec<IgnoredAny>>,
    #[serde(default)]
    functions: Option<Vec<IgnoredAny>>,
    #[serde(default)]
    response_format: Option<ResponseFormatPeek>,
}

#[derive(Deserialize)]
struct MessagePeek {
    #[serde(default)]
    content: Option<ContentPeek>,
}

#[derive(Deserialize)]
struct ResponseFormatPeek {
    #[serde(rename = "type")]
    kind: String,
}

/// A message's content: a string, or parts of which only the kinds and the
/// text lengths matter here.
#[derive(Default)]
struct ContentPeek {
    text_bytes: usize,
    has_image: bool,
}

impl<'de> Deserialize<'de> for ContentPeek {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = ContentPeek;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string or a list of content parts")
            }
            fn visit_str<E>(self, s: &str) -> Result<ContentPeek, E> {
                Ok(ContentPeek {
                    text_bytes: s.len(),
                    has_image: false,
                })
            }
            fn visit_unit<E>(self) -> Result<ContentPeek, E> {
                Ok(ContentPeek::default())
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<ContentPeek, A::Error> {
                #[derive(Deserialize)]
                struct Part {
                    #[serde(rename = "type")]
                    kind: Option<String>,
                    #[serde(default)]
                    text: Option<String>,
                }
                let mut peek = ContentPeek::default();
                while let Some(part) = seq.next_element::<Part>()? {
                    peek.text_bytes += part.text.map_or(0, |t| t.len());
                    peek.has_image |= part.kind.as_deref() == Some("image_url");
                }
                Ok(peek)
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// Ingress: what a chat request needs from a backend.
pub fn inspect_request(body: &[u8]) -> Result<RequestProfile, PluginError> {
    let peek: RequestPeek = serde_json::from_slice(body)
        .map_err(|e| PluginError::bad_request(format!("request body: {e}")))?;
    let contents = peek.messages.iter().filter_map(|m| m.content.as_ref());
    let text_bytes: usize = contents.clone().map(|c| c.text_bytes).sum();
    Ok(RequestProfile {
        tools: peek.tools.is_some_and(|t| !t.is_empty())
            || peek.functions.is_some_and(|f| !f.is_empty()),
        vision: contents.into_iter().any(|c| c.has_image),
        json_schema: peek
            .response_format
            .is_some_and(|f| f.kind == "json_schema"),
        // About four bytes of English text per token; an estimate for
        // routing around small context windows, not for billing.
        estimated_input_tokens: (text_bytes / 4).min(u32::MAX as usize) as u32,
    })
}

/// Encoder note: the client asked for the final usage chunk.
pub const NOTE_USAGE_WANTED: &str = "usage-wanted";

/// Ingress: the request is already canonical; the note records whether the
/// client wants the usage chunk, which translated streams always carry.
pub fn decode_request(body: Vec<u8>) -> Result<DecodedRequest, PluginError> {
    let bad = |e: json::NotAnObject| PluginError::bad_request(format!("request body: {e}"));
    let members = json::members(&body).map_err(bad)?;
    let wants_usage = json::find(&body, &members, "stream_options")
        .and_then(|m| serde_json::from_slice::<serde_json::Value>(&body[m.value.clone()]).ok())
        .and_then(|v| v.get("include_usage").and_then(|u| u.as_bool()))
        == Some(true);
    Ok(DecodedRequest {
        canonical: body,
        note: if wants_usage {
            NOTE_USAGE_WANTED.into()
        } else {
            String::new()
        },
        translation_notes: Vec::new(),
    })
}

/// Ingress: canonical chunks are already this dialect; only the usage-only
/// chunk is dropped for clients that did not ask for it.
#[derive(Debug)]
pub struct Encoder {
    wants_usage: bool,
}

impl Encoder {
    /// An encoder for one client stream; `note` is from [`decode_request`].
    pub fn new(note: &str) -> Self {
        Encoder {
            wants_usage: note == NOTE_USAGE_WANTED,
        }
    }

    /// Canonical chunks -> events.
    pub fn push(&self, chunks: Vec<Vec<u8>>) -> Result<Vec<SseEvent>, PluginError> {
        let mut out = Vec::with_capacity(chunks.len());
        for chunk in chunks {
            if !self.wants_usage {
                let peek: ChunkPeek = serde_json::from_slice(&chunk).map_err(|e| {
                    PluginError::new(ErrorKind::Internal, format!("canonical chunk: {e}"))
                })?;
                if peek.choices.as_ref().is_none_or(|c| c.is_empty()) {
                    continue;
                }
            }
            let data = String::from_utf8(chunk)
                .map_err(|_| PluginError::new(ErrorKind::Internal, "chunk is not UTF-8"))?;
            out.push(SseEvent { event: None, data });
        }
        Ok(out)
    }
}

/// Ingress: the end of an OpenAI stream.
pub fn done_event() -> SseEvent {
    SseEvent {
        event: None,
        data: "[DONE]".into(),
    }
}

/// The OpenAI `error.type` for an error the gateway returns.
pub fn error_type(status: u16, kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::Auth => "authentication_error",
        ErrorKind::Forbidden => "permission_error",
        ErrorKind::NotFound => "not_found_error",
        ErrorKind::RateLimited => "rate_limit_error",
        ErrorKind::QuotaExhausted => "insufficient_quota",
        ErrorKind::BadRequest | ErrorKind::ContextLength | ErrorKind::ContentFilter => {
            "invalid_request_error"
        }
        ErrorKind::Timeout => "timeout_error",
        ErrorKind::Overloaded | ErrorKind::Upstream | ErrorKind::Internal if status < 500 => {
            "invalid_request_error"
        }
        ErrorKind::Overloaded | ErrorKind::Upstream | ErrorKind::Internal => "server_error",
    }
}

/// Ingress: an OpenAI error object, `{"error": {"message", "type", "param", "code"}}`.
pub fn error_body(status: u16, err: &PluginError) -> Vec<u8> {
    let body = serde_json::json!({
        "error": {
            "message": err.message,
            "type": error_type(status, err.kind),
            "param": null,
            "code": err.code.clone().unwrap_or_else(|| crate::error::kind_name(err.kind).into()),
        }
    });
    serde_json::to_vec(&body).expect("json! values always serialize")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(stream: bool) -> CallContext {
        CallContext {
            upstream_model: "gpt-4o-mini".into(),
            stream,
            options: "{}".into(),
            unix_time: 1_700_000_000,
        }
    }

    fn data(s: &str) -> SseEvent {
        SseEvent {
            event: None,
            data: s.into(),
        }
    }

    #[test]
    fn non_stream_request_changes_only_the_model() {
        let body =
            br#"{"model":"smart","messages":[{"role":"user","content":"hi"}],"temperature":0.20}"#;
        let req = build_request(&ctx(false), body).unwrap();
        assert_eq!(
            std::str::from_utf8(&req.body).unwrap(),
            r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"temperature":0.20}"#
        );
        assert_eq!(req.path_and_query, "/chat/completions");
        assert!(req.stream_note.is_empty());
    }

    #[test]
    fn stream_flag_follows_the_host() {
        let req = build_request(&ctx(true), br#"{"messages":[]}"#).unwrap();
        let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
        assert_eq!(
            (body["stream"].as_bool(), body["model"].as_str()),
            (Some(true), Some("gpt-4o-mini"))
        );
    }

    #[test]
    fn stream_request_asks_for_usage_and_notes_it() {
        let body = br#"{"model":"smart","stream":true,"messages":[]}"#;
        let req = build_request(&ctx(true), body).unwrap();
        assert_eq!(
            std::str::from_utf8(&req.body).unwrap(),
            r#"{"stream_options":{"include_usage":true},"model":"gpt-4o-mini","stream":true,"messages":[]}"#
        );
        assert_eq!(req.stream_note, NOTE_USAGE_ADDED);

        let asked = br#"{"model":"smart","stream":true,"stream_options":{"include_usage":true}}"#;
        let req = build_request(&ctx(true), asked).unwrap();
        assert!(req.stream_note.is_empty());
        assert_eq!(
            std::str::from_utf8(&req.body).unwrap(),
            r#"{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true}}"#
        );
    }

    #[test]
    fn stream_usage_can_be_turned_off() {
        let mut c = ctx(true);
        c.options = r#"{"stream_usage":false}"#.into();
        let req = build_request(&c, br#"{"model":"m","stream":true}"#).unwrap();
        assert_eq!(req.body, br#"{"model":"gpt-4o-mini","stream":true}"#);
        c.options = r#"{"stream_usag":false}"#.into();
        assert_eq!(
            build_request(&c, b"{}").unwrap_err().kind,
            ErrorKind::Internal
        );
    }

    #[test]
    fn output_tokens_are_clamped_when_configured() {
        let mut c = ctx(false);
        c.options = r#"{"max_output_tokens":16384}"#.into();
        let req = build_request(
            &c,
            br#"{"model":"m","max_tokens":32000,"max_completion_tokens":100}"#,
        )
        .unwrap();
        assert_eq!(
            req.body,
            br#"{"model":"gpt-4o-mini","max_tokens":16384,"max_completion_tokens":100}"#
        );
    }

    #[test]
    fn bad_body_is_a_bad_request() {
        let err = build_request(&ctx(false), b"[1,2]").unwrap_err();
        assert_eq!(err.kind, ErrorKind::BadRequest);
    }

    #[test]
    fn parse_reads_usage() {
        let body = br#"{"id":"x","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}"#;
        let parsed = parse_response(body, true).unwrap();
        assert!(parsed.body.is_none());
        let u = parsed.usage.unwrap();
        assert_eq!((u.input_tokens, u.output_tokens), (3, 4));
        assert!(parse_response(b"<html>", true).is_err());
        // Only the top-level member counts, and a cut-off body is an error.
        let nested = br#"{"choices":[{"message":{"content":"\"usage\":{\"prompt_tokens\":9}"}}],"usage":null}"#;
        assert!(parse_response(nested, true).unwrap().usage.is_none());
        assert!(parse_response(br#"{"choices":[{"message":{"content":"cut"#, true).is_err());
        assert!(parse_response(br#"{"usage":{"prompt_tokens":"x"}}"#, true).is_err());
    }

    #[test]
    fn classifies_quota_and_context_errors() {
        let quota = br#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#;
        let e = classify_error(429, &[], quota);
        assert_eq!(e.kind, ErrorKind::QuotaExhausted);
        assert_eq!(e.message, "You exceeded your current quota");

        let ctx_len = br#"{"error":{"message":"too long","type":"invalid_request_error","code":"context_length_exceeded"}}"#;
        assert_eq!(
            classify_error(400, &[], ctx_len).kind,
            ErrorKind::ContextLength
        );

        let limited = classify_error(
            429,
            &[Header {
                name: "retry-after".into(),
                value: "2".into(),
            }],
            br#"{"error":{"message":"slow down","type":"requests","code":"rate_limit_exceeded"}}"#,
        );
        assert_eq!(limited.kind, ErrorKind::RateLimited);
        assert_eq!(limited.retry_after_ms, Some(2000));

        let html = classify_error(502, &[], b"<html>bad gateway</html>");
        assert_eq!(html.kind, ErrorKind::Upstream);
        assert!(html.message.contains("HTTP 502"));
    }

    #[test]
    fn native_decoder_drops_only_the_usage_chunk_it_asked_for() {
        let role = data(r#"{"choices":[{"index":0,"delta":{"role":"assistant"}}],"usage":null}"#);
        let usage = data(r#"{"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2}}"#);
        let mut d = Decoder::new(true, NOTE_USAGE_ADDED);
        let out = d
            .push(vec![role.clone(), usage.clone(), data("[DONE]")])
            .unwrap();
        assert_eq!(out.events, vec![role.clone(), data("[DONE]")]);
        assert_eq!(out.usage.unwrap().input_tokens, 5);
        assert!(out.done);
        assert!(d.finish().is_ok());

        let mut d = Decoder::new(true, "");
        let out = d.push(vec![role.clone(), usage.clone()]).unwrap();
        assert_eq!(out.events, vec![role, usage]);
        assert!(!out.done);
    }

    #[test]
    fn translated_decoder_passes_chunks() {
        let mut d = Decoder::new(false, NOTE_USAGE_ADDED);
        let chunk = r#"{"choices":[{"index":0,"delta":{"content":"hi"}}]}"#;
        let out = d.push(vec![data(chunk), data("[DONE]")]).unwrap();
        assert_eq!(out.chunks, vec![chunk.as_bytes().to_vec()]);
        assert!(out.events.is_empty());
    }

    #[test]
    fn decoder_reports_errors_and_truncation() {
        let mut d = Decoder::new(true, "");
        let err = d
            .push(vec![data(
                r#"{"error":{"message":"boom","type":"server_error"}}"#,
            )])
            .unwrap_err();
        assert_eq!(err.message, "boom");
        assert!(d.push(vec![data("not json")]).is_err());
        let mut d = Decoder::new(true, "");
        assert!(d.finish().is_err(), "a stream without [DONE] is truncated");
    }

    #[test]
    fn inspection_finds_tools_images_and_schemas() {
        let plain =
            inspect_request(br#"{"model":"m","messages":[{"role":"user","content":"12345678"}]}"#)
                .unwrap();
        assert!(!plain.tools && !plain.vision && !plain.json_schema);
        assert_eq!(plain.estimated_input_tokens, 2);

        let rich = inspect_request(
            br#"{"messages":[{"role":"system","content":null},{"role":"user","content":[
                {"type":"text","text":"what is this?"},
                {"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}}]}],
              "tools":[{"type":"function","function":{"name":"f"}}],
              "response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{}}}}"#,
        )
        .unwrap();
        assert!(rich.tools && rich.vision && rich.json_schema);
        assert_eq!(rich.estimated_input_tokens, 3);

        let json_mode = inspect_request(
            br#"{"messages":[],"tools":[],"response_format":{"type":"json_object"}}"#,
        )
        .unwrap();
        assert!(!json_mode.tools && !json_mode.json_schema);
        assert!(inspect_request(b"{").is_err());
    }

    #[test]
    fn encoder_drops_the_usage_chunk_unless_asked() {
        let delta = br#"{"choices":[{"index":0,"delta":{"content":"hi"}}]}"#.to_vec();
        let usage = br#"{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1}}"#.to_vec();
        let quiet = Encoder::new("");
        assert_eq!(
            quiet
                .push(vec![delta.clone(), usage.clone()])
                .unwrap()
                .len(),
            1
        );
        let asked =
            decode_request(br#"{"stream":true,"stream_options":{"include_usage":true}}"#.to_vec())
                .unwrap();
        assert_eq!(asked.note, NOTE_USAGE_WANTED);
        assert_eq!(
            Encoder::new(&asked.note)
                .push(vec![delta, usage])
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn error_body_is_an_openai_error_object() {
        let err = PluginError::new(ErrorKind::NotFound, "model 'x' is not configured");
        let body: serde_json::Value = serde_json::from_slice(&error_body(404, &err)).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"error": {"message": "model 'x' is not configured",
                "type": "not_found_error", "param": null, "code": "not_found"}})
        );
    }
}
