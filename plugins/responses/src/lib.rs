//! The `responses` provider adapter: the OpenAI Responses API. Serves
//! Responses clients (Codex, `client.responses.create`) from any backend, and
//! passes them through natively to upstreams that speak it.
//! The translations live in [`llmgate_plugin_sdk::responses`].

use llmgate_plugin_sdk::dialect::DialectAdapter;
use llmgate_plugin_sdk::responses::Responses as Dialect;

/// The adapter.
pub type Responses = DialectAdapter<Dialect>;

llmgate_plugin_sdk::export_adapter!(Responses);
