//! The `openai` provider adapter: OpenAI Chat Completions and every
//! OpenAI-compatible vendor (DeepSeek, Groq, OpenRouter, vLLM, Ollama, ...).
//!
//! The dialect is the canonical form, so both directions are close to the
//! identity; the work is the model name, stream usage and error mapping, all
//! in [`llmgate_plugin_sdk::openai`].

use std::cell::RefCell;

use llmgate_plugin_sdk::adapter::{
    Adapter, CallContext, DecodeStream, Decoded, DecodedRequest, EncodeStream, Info,
    ParsedResponse, RequestProfile, UpstreamRequest,
};
use llmgate_plugin_sdk::openai;
use llmgate_plugin_sdk::types::{Header, PluginError, SseEvent};

/// The adapter.
pub struct OpenAi;

impl Adapter for OpenAi {
    type StreamDecoder = OpenAiDecoder;
    type StreamEncoder = OpenAiEncoder;

    fn describe() -> Info {
        Info {
            dialect: "openai".into(),
            description: "OpenAI Chat Completions and OpenAI-compatible APIs".into(),
        }
    }

    fn validate_options(options: String) -> Result<(), String> {
        openai::Options::parse(&options)
            .map(|_| ())
            .map_err(|e| e.message)
    }

    fn build_request(
        ctx: CallContext,
        body: Vec<u8>,
        _native: bool,
    ) -> Result<UpstreamRequest, PluginError> {
        openai::build_request(&ctx, &body)
    }

    fn parse_response(
        _ctx: CallContext,
        body: Vec<u8>,
        native: bool,
    ) -> Result<ParsedResponse, PluginError> {
        openai::parse_response(&body, native)
    }

    /// OpenAI's API has no token counting: the host estimates.
    fn build_count_request(
        _ctx: CallContext,
        _body: Vec<u8>,
    ) -> Result<Option<UpstreamRequest>, PluginError> {
        Ok(None)
    }

    fn parse_count_response(_body: Vec<u8>) -> Result<u32, PluginError> {
        Err(PluginError::new(
            llmgate_plugin_sdk::types::ErrorKind::Internal,
            "no count requests are built",
        ))
    }

    fn classify_error(status: u16, headers: Vec<Header>, body: Vec<u8>) -> PluginError {
        openai::classify_error(status, &headers, &body)
    }

    fn inspect_request(body: Vec<u8>) -> Result<RequestProfile, PluginError> {
        openai::inspect_request(&body)
    }

    fn decode_request(body: Vec<u8>) -> Result<DecodedRequest, PluginError> {
        openai::decode_request(body)
    }

    fn encode_response(canonical: Vec<u8>, _client_model: String) -> Result<Vec<u8>, PluginError> {
        Ok(canonical)
    }

    fn encode_error(status: u16, err: PluginError) -> Vec<u8> {
        openai::error_body(status, &err)
    }
}

/// An upstream stream being read.
pub struct OpenAiDecoder(RefCell<openai::Decoder>);

impl DecodeStream for OpenAiDecoder {
    fn new(_ctx: CallContext, native: bool, note: String) -> Self {
        OpenAiDecoder(RefCell::new(openai::Decoder::new(native, &note)))
    }

    fn push(&self, events: Vec<SseEvent>) -> Result<Decoded, PluginError> {
        self.0.borrow_mut().push(events)
    }

    fn finish(&self) -> Result<Decoded, PluginError> {
        self.0.borrow_mut().finish()
    }
}

/// A client stream being written.
pub struct OpenAiEncoder(openai::Encoder);

impl EncodeStream for OpenAiEncoder {
    fn new(_client_model: String, note: String, _unix_time: u64) -> Self {
        OpenAiEncoder(openai::Encoder::new(&note))
    }

    fn push(&self, chunks: Vec<Vec<u8>>) -> Result<Vec<SseEvent>, PluginError> {
        self.0.push(chunks)
    }

    fn finish(&self) -> Vec<SseEvent> {
        vec![openai::done_event()]
    }

    fn fail(&self, err: PluginError) -> Vec<SseEvent> {
        let data = String::from_utf8(openai::error_body(500, &err)).unwrap_or_default();
        vec![SseEvent { event: None, data }]
    }
}

llmgate_plugin_sdk::export_adapter!(OpenAi);
