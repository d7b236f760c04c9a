//! The `gemini` provider adapter: Gemini generateContent upstreams, and the
//! Gemini dialect for clients (Gemini CLI, the `google-genai` SDKs).
//! The translations live in [`llmgate_plugin_sdk::gemini`].

use std::cell::RefCell;

use llmgate_plugin_sdk::adapter::{
    Adapter, CallContext, DecodeStream, Decoded, DecodedRequest, EncodeStream, Info,
    ParsedResponse, RequestProfile, UpstreamRequest,
};
use llmgate_plugin_sdk::gemini::{self, egress, ingress};
use llmgate_plugin_sdk::types::{Header, PluginError, SseEvent};

/// The adapter.
pub struct Gemini;

impl Adapter for Gemini {
    type StreamDecoder = GeminiDecoder;
    type StreamEncoder = GeminiEncoder;

    fn describe() -> Info {
        Info {
            dialect: "gemini".into(),
            description: "Google Gemini generateContent API".into(),
        }
    }

    fn validate_options(options: String) -> Result<(), String> {
        llmgate_plugin_sdk::policy::no_options("the gemini adapter", &options)
    }

    fn build_request(
        ctx: CallContext,
        body: Vec<u8>,
        native: bool,
    ) -> Result<UpstreamRequest, PluginError> {
        egress::build_request(&ctx, &body, native)
    }

    fn parse_response(
        ctx: CallContext,
        body: Vec<u8>,
        native: bool,
    ) -> Result<ParsedResponse, PluginError> {
        egress::parse_response(&ctx, &body, native)
    }

    fn build_count_request(
        ctx: CallContext,
        body: Vec<u8>,
    ) -> Result<Option<UpstreamRequest>, PluginError> {
        egress::build_count_request(&ctx, &body)
    }

    fn parse_count_response(body: Vec<u8>) -> Result<u32, PluginError> {
        egress::parse_count_response(&body)
    }

    fn classify_error(status: u16, headers: Vec<Header>, body: Vec<u8>) -> PluginError {
        gemini::classify_error(status, &headers, &body)
    }

    fn inspect_request(body: Vec<u8>) -> Result<RequestProfile, PluginError> {
        ingress::inspect_request(&body)
    }

    fn decode_request(body: Vec<u8>) -> Result<DecodedRequest, PluginError> {
        ingress::decode_request(&body)
    }

    fn encode_response(canonical: Vec<u8>, client_model: String) -> Result<Vec<u8>, PluginError> {
        ingress::encode_response(&canonical, &client_model)
    }

    fn encode_error(status: u16, err: PluginError) -> Vec<u8> {
        gemini::error_body(status, &err)
    }
}

/// An upstream stream being read.
pub struct GeminiDecoder(RefCell<egress::Decoder>);

impl DecodeStream for GeminiDecoder {
    fn new(ctx: CallContext, native: bool, _note: String) -> Self {
        GeminiDecoder(RefCell::new(egress::Decoder::new(&ctx, native)))
    }

    fn push(&self, events: Vec<SseEvent>) -> Result<Decoded, PluginError> {
        self.0.borrow_mut().push(events)
    }

    fn finish(&self) -> Result<Decoded, PluginError> {
        self.0.borrow_mut().finish()
    }
}

/// A client stream being written.
pub struct GeminiEncoder(ingress::Encoder);

impl EncodeStream for GeminiEncoder {
    fn new(client_model: String, _note: String, _unix_time: u64) -> Self {
        GeminiEncoder(ingress::Encoder::new(&client_model))
    }

    fn push(&self, chunks: Vec<Vec<u8>>) -> Result<Vec<SseEvent>, PluginError> {
        self.0.push(chunks)
    }

    fn finish(&self) -> Vec<SseEvent> {
        self.0.finish()
    }

    fn fail(&self, err: PluginError) -> Vec<SseEvent> {
        self.0.fail(&err)
    }
}

llmgate_plugin_sdk::export_adapter!(Gemini);
