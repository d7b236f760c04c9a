//! An adapter for any vendor that speaks OpenAI Chat Completions with a
//! few differences: implement [`Vendor`] with the hooks you need and export
//! `Compatible<YourVendor>`. The built-in `openai` adapter is this with no
//! hooks.
//!
//! ```ignore
//! struct Acme;
//! impl Vendor for Acme {
//!     fn description() -> String { "Acme: key in api-key".into() }
//!     fn adjust_request(_ctx: &CallContext, mut request: UpstreamRequest)
//!         -> Result<UpstreamRequest, PluginError> {
//!         request.auth = AuthPlacement::Header("api-key".into());
//!         Ok(request)
//!     }
//! }
//! pub type AcmeAdapter = Compatible<Acme>;
//! llmgate_plugin_sdk::export_adapter!(AcmeAdapter);
//! ```

use std::cell::RefCell;
use std::marker::PhantomData;

use crate::adapter::{
    Adapter, CallContext, DecodeStream, Decoded, DecodedRequest, EncodeStream, Info,
    ParsedResponse, RequestProfile, UpstreamRequest,
};
use crate::openai;
use crate::types::{ErrorKind, Header, PluginError, SseEvent};

/// What makes a vendor differ from OpenAI. Every hook has a default that
/// does what OpenAI does.
pub trait Vendor: 'static {
    /// One line for `llmgate plugins` and the admin API.
    fn description() -> String;

    /// Checks `[providers.options]`; by default the `openai` adapter's
    /// options (`stream_usage`, `max_output_tokens`).
    fn validate_options(options: &str) -> Result<(), String> {
        openai::Options::parse(options)
            .map(|_| ())
            .map_err(|e| e.message)
    }

    /// Changes the request the OpenAI adapter built: auth placement,
    /// headers, path, renamed body fields ([`crate::json`] edits bytes
    /// without reformatting the body).
    fn adjust_request(
        _ctx: &CallContext,
        request: UpstreamRequest,
    ) -> Result<UpstreamRequest, PluginError> {
        Ok(request)
    }

    /// Changes a whole (non-streamed) response body before it is read as
    /// OpenAI's.
    fn adjust_response(body: Vec<u8>) -> Vec<u8> {
        body
    }

    /// Classifies an error answer; by default as OpenAI's.
    fn classify_error(status: u16, headers: &[Header], body: &[u8]) -> PluginError {
        openai::classify_error(status, headers, body)
    }
}

/// The adapter for vendor `V`.
pub struct Compatible<V>(PhantomData<V>);

impl<V: Vendor> Adapter for Compatible<V> {
    type StreamDecoder = CompatibleDecoder;
    type StreamEncoder = CompatibleEncoder;

    fn describe() -> Info {
        Info {
            dialect: "openai".into(),
            description: V::description(),
        }
    }

    fn validate_options(options: String) -> Result<(), String> {
        V::validate_options(&options)
    }

    fn build_request(
        ctx: CallContext,
        body: Vec<u8>,
        _native: bool,
    ) -> Result<UpstreamRequest, PluginError> {
        let request = openai::build_request(&ctx, &body)?;
        V::adjust_request(&ctx, request)
    }

    fn parse_response(
        _ctx: CallContext,
        body: Vec<u8>,
        native: bool,
    ) -> Result<ParsedResponse, PluginError> {
        openai::parse_response(&V::adjust_response(body), native)
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
            ErrorKind::Internal,
            "no count requests are built",
        ))
    }

    fn classify_error(status: u16, headers: Vec<Header>, body: Vec<u8>) -> PluginError {
        V::classify_error(status, &headers, &body)
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
pub struct CompatibleDecoder(RefCell<openai::Decoder>);

impl DecodeStream for CompatibleDecoder {
    fn new(_ctx: CallContext, native: bool, note: String) -> Self {
        CompatibleDecoder(RefCell::new(openai::Decoder::new(native, &note)))
    }

    fn push(&self, events: Vec<SseEvent>) -> Result<Decoded, PluginError> {
        self.0.borrow_mut().push(events)
    }

    fn finish(&self) -> Result<Decoded, PluginError> {
        self.0.borrow_mut().finish()
    }
}

/// A client stream being written.
pub struct CompatibleEncoder(openai::Encoder);

impl EncodeStream for CompatibleEncoder {
    fn new(_client_model: String, note: String, _unix_time: u64) -> Self {
        CompatibleEncoder(openai::Encoder::new(&note))
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
