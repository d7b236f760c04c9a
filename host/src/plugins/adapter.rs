//! Host side of the `adapter` interface: typed calls on pooled instances,
//! and stream sessions that keep one instance (and its resource) for the
//! life of a stream.
//!
//! Every call returns `Result<Result<T, PluginError>, GatewayError>`: the
//! outer error is the plugin failing (trap, deadline), the inner one is the
//! plugin's answer (e.g. "this body is not valid"), which the proxy acts on.

use std::sync::Arc;

use wasmtime::Engine;
use wasmtime::component::ResourceAny;

use super::bindings::provider::{Provider, ProviderPre};
use super::pool::{CallStats, InstancePool, Lease};
use super::{
    CallContext, Decoded, DecodedRequest, Header, Limits, ParsedResponse, PluginError,
    RequestProfile, SseEvent, UpstreamRequest,
};
use crate::error::GatewayError;

type Answer<T> = Result<Result<T, PluginError>, GatewayError>;

/// A loaded provider adapter.
pub struct AdapterPlugin {
    pool: Arc<InstancePool<Provider>>,
    embeddings: Option<super::EmbeddingsPlugin>,
    dialect: String,
    description: String,
}

impl AdapterPlugin {
    pub(super) fn new(
        name: Arc<str>,
        engine: Engine,
        limits: &Limits,
        pre: ProviderPre<super::PluginState>,
        embeddings: Option<super::EmbeddingsPlugin>,
    ) -> anyhow::Result<Self> {
        let pool = Arc::new(InstancePool::new(
            name,
            engine,
            limits,
            Box::new(move |store| pre.instantiate(store)),
        ));
        let info = pool
            .lease()?
            .call(|b, s| b.llmgate_plugin_adapter().call_describe(s))?;
        Ok(AdapterPlugin {
            pool,
            embeddings,
            dialect: info.dialect,
            description: info.description,
        })
    }

    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.pool.name
    }

    /// The wire dialect it speaks.
    pub fn dialect(&self) -> &str {
        &self.dialect
    }

    /// Its own description.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// Its embeddings half, when the component exports one.
    pub fn embeddings(&self) -> Option<&super::EmbeddingsPlugin> {
        self.embeddings.as_ref()
    }

    /// Call counters.
    pub fn stats(&self) -> &CallStats {
        &self.pool.stats
    }

    fn call<R>(
        &self,
        f: impl FnOnce(&Provider, &mut wasmtime::Store<super::PluginState>) -> wasmtime::Result<R>,
    ) -> Result<R, GatewayError> {
        self.pool.lease()?.call(f)
    }

    /// Checks a provider's options.
    pub fn validate_options(&self, options: &str) -> Result<Result<(), String>, GatewayError> {
        self.call(|b, s| b.llmgate_plugin_adapter().call_validate_options(s, options))
    }

    /// Builds the upstream request.
    pub fn build_request(
        &self,
        ctx: &CallContext,
        body: &[u8],
        native: bool,
    ) -> Answer<UpstreamRequest> {
        self.call(|b, s| {
            b.llmgate_plugin_adapter()
                .call_build_request(s, ctx, body, native)
        })
    }

    /// Reads a successful non-streamed upstream body.
    pub fn parse_response(
        &self,
        ctx: &CallContext,
        body: &[u8],
        native: bool,
    ) -> Answer<ParsedResponse> {
        self.call(|b, s| {
            b.llmgate_plugin_adapter()
                .call_parse_response(s, ctx, body, native)
        })
    }

    /// Builds a native token-count request, if the upstream's API can count.
    pub fn build_count_request(
        &self,
        ctx: &CallContext,
        body: &[u8],
    ) -> Answer<Option<UpstreamRequest>> {
        self.call(|b, s| {
            b.llmgate_plugin_adapter()
                .call_build_count_request(s, ctx, body)
        })
    }

    /// Reads the upstream's token count.
    pub fn parse_count_response(&self, body: &[u8]) -> Answer<u32> {
        self.call(|b, s| {
            b.llmgate_plugin_adapter()
                .call_parse_count_response(s, body)
        })
    }

    /// Classifies a failed upstream answer.
    pub fn classify_error(
        &self,
        status: u16,
        headers: &[Header],
        body: &[u8],
    ) -> Result<PluginError, GatewayError> {
        self.call(|b, s| {
            b.llmgate_plugin_adapter()
                .call_classify_error(s, status, headers, body)
        })
    }

    /// Ingress: what a client request needs from a backend.
    pub fn inspect_request(&self, body: &[u8]) -> Answer<RequestProfile> {
        self.call(|b, s| b.llmgate_plugin_adapter().call_inspect_request(s, body))
    }

    /// Ingress: client request -> canonical.
    pub fn decode_request(&self, body: &[u8]) -> Answer<DecodedRequest> {
        self.call(|b, s| b.llmgate_plugin_adapter().call_decode_request(s, body))
    }

    /// Ingress: canonical response -> client dialect.
    pub fn encode_response(&self, canonical: &[u8], client_model: &str) -> Answer<Vec<u8>> {
        self.call(|b, s| {
            b.llmgate_plugin_adapter()
                .call_encode_response(s, canonical, client_model)
        })
    }

    /// Ingress: an error body in the client's dialect.
    pub fn encode_error(&self, status: u16, err: &PluginError) -> Result<Vec<u8>, GatewayError> {
        self.call(|b, s| b.llmgate_plugin_adapter().call_encode_error(s, status, err))
    }

    /// Starts decoding one upstream stream.
    pub fn stream_decoder(
        &self,
        ctx: &CallContext,
        native: bool,
        note: &str,
    ) -> Result<DecoderSession, GatewayError> {
        let mut lease = self.pool.lease()?;
        let handle = lease.call(|b, s| {
            b.llmgate_plugin_adapter()
                .stream_decoder()
                .call_constructor(s, ctx, native, note)
        })?;
        Ok(DecoderSession {
            session: Session {
                lease,
                handle: Some(handle),
            },
        })
    }

    /// Starts encoding one client stream; `note` is from [`Self::decode_request`].
    pub fn stream_encoder(
        &self,
        client_model: &str,
        note: &str,
        unix_time: u64,
    ) -> Result<EncoderSession, GatewayError> {
        let mut lease = self.pool.lease()?;
        let handle = lease.call(|b, s| {
            b.llmgate_plugin_adapter()
                .stream_encoder()
                .call_constructor(s, client_model, note, unix_time)
        })?;
        Ok(EncoderSession {
            session: Session {
                lease,
                handle: Some(handle),
            },
        })
    }
}

/// An instance held for one stream, with the resource living in it.
struct Session {
    lease: Lease<Provider>,
    handle: Option<ResourceAny>,
}

impl Session {
    fn call<R>(
        &mut self,
        f: impl FnOnce(
            &Provider,
            &mut wasmtime::Store<super::PluginState>,
            ResourceAny,
        ) -> wasmtime::Result<R>,
    ) -> Result<R, GatewayError> {
        let handle = self.handle.expect("a session's resource lives until drop");
        self.lease.call(|b, s| f(b, s, handle))
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // Free the resource so the pooled instance does not accumulate them.
        if let (Some(handle), Some(store)) = (self.handle.take(), self.lease.store_mut()) {
            let _ = handle.resource_drop(store);
        }
    }
}

/// The decoder of one upstream stream.
pub struct DecoderSession {
    session: Session,
}

impl DecoderSession {
    /// Feeds whole SSE events.
    pub fn push(&mut self, events: &[SseEvent]) -> Answer<Decoded> {
        self.session.call(|b, s, h| {
            b.llmgate_plugin_adapter()
                .stream_decoder()
                .call_push(s, h, events)
        })
    }

    /// The upstream closed the stream.
    pub fn finish(&mut self) -> Answer<Decoded> {
        self.session.call(|b, s, h| {
            b.llmgate_plugin_adapter()
                .stream_decoder()
                .call_finish(s, h)
        })
    }
}

/// The encoder of one client stream.
pub struct EncoderSession {
    session: Session,
}

impl EncoderSession {
    /// Canonical chunks -> client events.
    pub fn push(&mut self, chunks: &[Vec<u8>]) -> Answer<Vec<SseEvent>> {
        self.session.call(|b, s, h| {
            b.llmgate_plugin_adapter()
                .stream_encoder()
                .call_push(s, h, chunks)
        })
    }

    /// The stream ended normally.
    pub fn finish(&mut self) -> Result<Vec<SseEvent>, GatewayError> {
        self.session.call(|b, s, h| {
            b.llmgate_plugin_adapter()
                .stream_encoder()
                .call_finish(s, h)
        })
    }

    /// The stream failed after it started.
    pub fn fail(&mut self, err: &PluginError) -> Result<Vec<SseEvent>, GatewayError> {
        self.session.call(|b, s, h| {
            b.llmgate_plugin_adapter()
                .stream_encoder()
                .call_fail(s, h, err)
        })
    }
}
