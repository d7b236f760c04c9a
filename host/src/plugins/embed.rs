//! Host side of the optional `embeddings` interface: adapters whose
//! component also exports it serve embedding routes. Calls run on their own
//! instance pool, under the same limits as the adapter's.

use std::sync::Arc;

use wasmtime::Engine;

use super::bindings::embedder::{Embedder, EmbedderPre};
use super::pool::InstancePool;
use super::{DecodedEmbed, EmbedContext, EmbedRequest, EmbedResponse, Limits, PluginError};
use crate::error::GatewayError;

type Answer<T> = Result<Result<T, PluginError>, GatewayError>;

/// The embeddings half of an adapter component.
pub struct EmbeddingsPlugin {
    pool: Arc<InstancePool<Embedder>>,
}

impl EmbeddingsPlugin {
    pub(super) fn new(
        name: Arc<str>,
        engine: Engine,
        limits: &Limits,
        pre: EmbedderPre<super::PluginState>,
    ) -> Self {
        EmbeddingsPlugin {
            pool: Arc::new(InstancePool::new(
                name,
                engine,
                limits,
                Box::new(move |store| pre.instantiate(store)),
            )),
        }
    }

    fn call<R>(
        &self,
        f: impl FnOnce(&Embedder, &mut wasmtime::Store<super::PluginState>) -> wasmtime::Result<R>,
    ) -> Result<R, GatewayError> {
        self.pool.lease()?.call(f)
    }

    /// The upstream request for a canonical (or native) embeddings body.
    pub fn build_request(
        &self,
        ctx: &EmbedContext,
        body: &[u8],
        native: bool,
    ) -> Answer<EmbedRequest> {
        self.call(|b, s| {
            b.llmgate_plugin_embeddings()
                .call_build_embed_request(s, ctx, body, native)
        })
    }

    /// Reads a successful upstream answer.
    pub fn parse_response(
        &self,
        ctx: &EmbedContext,
        body: &[u8],
        native: bool,
    ) -> Answer<EmbedResponse> {
        self.call(|b, s| {
            b.llmgate_plugin_embeddings()
                .call_parse_embed_response(s, ctx, body, native)
        })
    }

    /// A client request in this dialect -> canonical.
    pub fn decode_request(&self, body: &[u8]) -> Answer<DecodedEmbed> {
        self.call(|b, s| {
            b.llmgate_plugin_embeddings()
                .call_decode_embed_request(s, body)
        })
    }

    /// Canonical -> this dialect.
    pub fn encode_response(
        &self,
        canonical: &[u8],
        client_model: &str,
        note: &str,
    ) -> Answer<Vec<u8>> {
        self.call(|b, s| {
            b.llmgate_plugin_embeddings().call_encode_embed_response(
                s,
                canonical,
                client_model,
                note,
            )
        })
    }
}
