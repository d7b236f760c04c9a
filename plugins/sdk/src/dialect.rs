//! An adapter made from a dialect's functions: implement [`Dialect`] (the
//! SDK does for `anthropic` and `gemini`) and export `DialectAdapter<D>`.
//! The adapter interface's many calls then are one line each, and a new
//! dialect is its translations plus this table.

use std::cell::RefCell;
use std::marker::PhantomData;

use crate::adapter::{
    Adapter, CallContext, DecodeStream, Decoded, DecodedRequest, EncodeStream, Info,
    ParsedResponse, RequestProfile, UpstreamRequest,
};
use crate::types::{Header, PluginError, SseEvent};

/// A wire dialect: how to call its upstreams and how to serve its clients.
pub trait Dialect: 'static {
    /// The dialect's name (`anthropic`, `gemini`); clients of the same
    /// dialect are passed through natively.
    const NAME: &'static str;
    /// Reads an upstream stream.
    type Decoder: UpstreamStream;
    /// Writes a client stream.
    type Encoder: ClientStream;

    /// One line for `llmgate plugins`.
    fn description() -> String;
    /// Checks `[providers.options]`.
    fn validate_options(options: &str) -> Result<(), String>;
    /// The upstream request for a canonical (or, when `native`, own-dialect) body.
    fn build_request(
        ctx: &CallContext,
        body: &[u8],
        native: bool,
    ) -> Result<UpstreamRequest, PluginError>;
    /// Usage, and the canonical body when translating.
    fn parse_response(
        ctx: &CallContext,
        body: &[u8],
        native: bool,
    ) -> Result<ParsedResponse, PluginError>;
    /// A native token-count request, or none to let the host estimate.
    fn build_count_request(
        ctx: &CallContext,
        body: &[u8],
    ) -> Result<Option<UpstreamRequest>, PluginError>;
    /// The count from a count response.
    fn parse_count_response(body: &[u8]) -> Result<u32, PluginError>;
    /// An error answer's kind.
    fn classify_error(status: u16, headers: &[Header], body: &[u8]) -> PluginError;
    /// What a client request needs (tools, vision, size).
    fn inspect_request(body: &[u8]) -> Result<RequestProfile, PluginError>;
    /// A client request in canonical form.
    fn decode_request(body: &[u8]) -> Result<DecodedRequest, PluginError>;
    /// A canonical response in this dialect.
    fn encode_response(canonical: &[u8], client_model: &str) -> Result<Vec<u8>, PluginError>;
    /// An error body in this dialect.
    fn error_body(status: u16, err: &PluginError) -> Vec<u8>;
}

/// Reading one upstream stream.
pub trait UpstreamStream: 'static {
    /// A decoder for one stream.
    fn new(ctx: &CallContext, native: bool, note: &str) -> Self;
    /// Whole events in, client bytes or canonical chunks out.
    fn push(&mut self, events: Vec<SseEvent>) -> Result<Decoded, PluginError>;
    /// The upstream ended.
    fn finish(&mut self) -> Result<Decoded, PluginError>;
}

/// Writing one client stream from canonical chunks.
pub trait ClientStream: 'static {
    /// An encoder for one stream.
    fn new(client_model: &str, note: &str, unix_time: u64) -> Self;
    /// Canonical chunks in, events out.
    fn push(&self, chunks: Vec<Vec<u8>>) -> Result<Vec<SseEvent>, PluginError>;
    /// The closing events.
    fn finish(&self) -> Vec<SseEvent>;
    /// The events that end a stream with an error.
    fn fail(&self, err: &PluginError) -> Vec<SseEvent>;
}

/// The adapter for dialect `D`.
pub struct DialectAdapter<D>(PhantomData<D>);

impl<D: Dialect> Adapter for DialectAdapter<D> {
    type StreamDecoder = DialectDecoder<D>;
    type StreamEncoder = DialectEncoder<D>;

    fn describe() -> Info {
        Info {
            dialect: D::NAME.into(),
            description: D::description(),
        }
    }

    fn validate_options(options: String) -> Result<(), String> {
        D::validate_options(&options)
    }

    fn build_request(
        ctx: CallContext,
        body: Vec<u8>,
        native: bool,
    ) -> Result<UpstreamRequest, PluginError> {
        D::build_request(&ctx, &body, native)
    }

    fn parse_response(
        ctx: CallContext,
        body: Vec<u8>,
        native: bool,
    ) -> Result<ParsedResponse, PluginError> {
        D::parse_response(&ctx, &body, native)
    }

    fn build_count_request(
        ctx: CallContext,
        body: Vec<u8>,
    ) -> Result<Option<UpstreamRequest>, PluginError> {
        D::build_count_request(&ctx, &body)
    }

    fn parse_count_response(body: Vec<u8>) -> Result<u32, PluginError> {
        D::parse_count_response(&body)
    }

    fn classify_error(status: u16, headers: Vec<Header>, body: Vec<u8>) -> PluginError {
        D::classify_error(status, &headers, &body)
    }

    fn inspect_request(body: Vec<u8>) -> Result<RequestProfile, PluginError> {
        D::inspect_request(&body)
    }

    fn decode_request(body: Vec<u8>) -> Result<DecodedRequest, PluginError> {
        D::decode_request(&body)
    }

    fn encode_response(canonical: Vec<u8>, client_model: String) -> Result<Vec<u8>, PluginError> {
        D::encode_response(&canonical, &client_model)
    }

    fn encode_error(status: u16, err: PluginError) -> Vec<u8> {
        D::error_body(status, &err)
    }
}

/// The `stream-decoder` resource of a [`DialectAdapter`].
pub struct DialectDecoder<D: Dialect>(RefCell<D::Decoder>);

impl<D: Dialect> DecodeStream for DialectDecoder<D> {
    fn new(ctx: CallContext, native: bool, note: String) -> Self {
        DialectDecoder(RefCell::new(D::Decoder::new(&ctx, native, &note)))
    }

    fn push(&self, events: Vec<SseEvent>) -> Result<Decoded, PluginError> {
        self.0.borrow_mut().push(events)
    }

    fn finish(&self) -> Result<Decoded, PluginError> {
        self.0.borrow_mut().finish()
    }
}

/// The `stream-encoder` resource of a [`DialectAdapter`].
pub struct DialectEncoder<D: Dialect>(D::Encoder);

impl<D: Dialect> EncodeStream for DialectEncoder<D> {
    fn new(client_model: String, note: String, unix_time: u64) -> Self {
        DialectEncoder(D::Encoder::new(&client_model, &note, unix_time))
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

/// Implements [`Dialect`] for `$dialect` from the modules of one SDK
/// dialect (`egress`, `ingress`, and its `classify_error`, `error_body`).
#[doc(hidden)]
#[macro_export]
macro_rules! dialect_from_modules {
    ($dialect:ty, $name:literal, $description:literal, $module:path, $validate:expr) => {
        const _: () = {
            use $crate::adapter::{
                CallContext, DecodedRequest, ParsedResponse, RequestProfile, UpstreamRequest,
            };
            use $crate::types::{Header, PluginError, SseEvent};
            use $module as m;

            impl $crate::dialect::Dialect for $dialect {
                const NAME: &'static str = $name;
                type Decoder = m::egress::Decoder;
                type Encoder = m::ingress::Encoder;
                fn description() -> String {
                    $description.into()
                }
                fn validate_options(options: &str) -> Result<(), String> {
                    ($validate)(options)
                }
                fn build_request(
                    ctx: &CallContext,
                    body: &[u8],
                    native: bool,
                ) -> Result<UpstreamRequest, PluginError> {
                    m::egress::build_request(ctx, body, native)
                }
                fn parse_response(
                    ctx: &CallContext,
                    body: &[u8],
                    native: bool,
                ) -> Result<ParsedResponse, PluginError> {
                    m::egress::parse_response(ctx, body, native)
                }
                fn build_count_request(
                    ctx: &CallContext,
                    body: &[u8],
                ) -> Result<Option<UpstreamRequest>, PluginError> {
                    m::egress::build_count_request(ctx, body)
                }
                fn parse_count_response(body: &[u8]) -> Result<u32, PluginError> {
                    m::egress::parse_count_response(body)
                }
                fn classify_error(status: u16, headers: &[Header], body: &[u8]) -> PluginError {
                    m::classify_error(status, headers, body)
                }
                fn inspect_request(body: &[u8]) -> Result<RequestProfile, PluginError> {
                    m::ingress::inspect_request(body)
                }
                fn decode_request(body: &[u8]) -> Result<DecodedRequest, PluginError> {
                    m::ingress::decode_request(body)
                }
                fn encode_response(
                    canonical: &[u8],
                    client_model: &str,
                ) -> Result<Vec<u8>, PluginError> {
                    m::ingress::encode_response(canonical, client_model)
                }
                fn error_body(status: u16, err: &PluginError) -> Vec<u8> {
                    m::error_body(status, err)
                }
            }

            impl $crate::dialect::UpstreamStream for m::egress::Decoder {
                fn new(ctx: &CallContext, native: bool, _note: &str) -> Self {
                    m::egress::Decoder::new(ctx, native)
                }
                fn push(
                    &mut self,
                    events: Vec<SseEvent>,
                ) -> Result<$crate::adapter::Decoded, PluginError> {
                    m::egress::Decoder::push(self, events)
                }
                fn finish(&mut self) -> Result<$crate::adapter::Decoded, PluginError> {
                    m::egress::Decoder::finish(self)
                }
            }

            impl $crate::dialect::ClientStream for m::ingress::Encoder {
                fn new(client_model: &str, _note: &str, _unix_time: u64) -> Self {
                    m::ingress::Encoder::new(client_model)
                }
                fn push(&self, chunks: Vec<Vec<u8>>) -> Result<Vec<SseEvent>, PluginError> {
                    m::ingress::Encoder::push(self, chunks)
                }
                fn finish(&self) -> Vec<SseEvent> {
                    m::ingress::Encoder::finish(self)
                }
                fn fail(&self, err: &PluginError) -> Vec<SseEvent> {
                    m::ingress::Encoder::fail(self, err)
                }
            }
        };
    };
}
