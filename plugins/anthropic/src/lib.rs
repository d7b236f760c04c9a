//! The `anthropic` provider adapter: Anthropic Messages upstreams, and the
//! Anthropic dialect for clients (Claude Code, the `anthropic` SDKs).
//! The translations live in [`llmgate_plugin_sdk::anthropic`].

use std::cell::RefCell;

use llmgate_plugin_sdk::adapter::{
    Adapter, CallContext, DecodeStream, Decoded, DecodedRequest, EncodeStream, Info,
    ParsedResponse, RequestProfile, UpstreamRequest,
};
use llmgate_plugin_sdk::anthropic::{self, egress, ingress};
use llmgate_plugin_sdk::types::{Header, PluginError, SseEvent};

/// The adapter.
pub struct Anthropic;

impl Adapter for Anthropic {
    type StreamDecoder = AnthropicDecoder;
    type StreamEncoder = AnthropicEncoder;

    fn describe() -> Info {
        Info {
            dialect: "anthropic".into(),
            description: "Anthropic Messages API".into(),
        }
    }

    fn validate_options(options: String) -> Result<(), String> {
        egress::Options::parse(&options)
            .map(|_| ())
            .map_err(|e| e.message)
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
        anthropic::classify_error(status, &headers, &body)
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
        anthropic::error_body(status, &err)
    }
}

/// An upstream stream being read.
pub struct AnthropicDecoder(RefCell<egress::Decoder>);

impl DecodeStream for AnthropicDecoder {
    fn new(ctx: CallContext, native: bool, _note: String) -> Self {
        AnthropicDecoder(RefCell::new(egress::Decoder::new(&ctx, native)))
    }

    fn push(&self, events: Vec<SseEvent>) -> Result<Decoded, PluginError> {
        self.0.borrow_mut().push(events)
    }

    fn finish(&self) -> Result<Decoded, PluginError> {
        self.0.borrow_mut().finish()
    }
}

/// A client stream being written.
pub struct AnthropicEncoder(ingress::Encoder);

impl EncodeStream for AnthropicEncoder {
    fn new(client_model: String, _note: String, _unix_time: u64) -> Self {
        AnthropicEncoder(ingress::Encoder::new(&client_model))
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

llmgate_plugin_sdk::export_adapter!(Anthropic);
