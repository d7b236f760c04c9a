//! The `openai` provider adapter: OpenAI Chat Completions and every
//! OpenAI-compatible API that needs no changes (DeepSeek, Groq, OpenRouter,
//! vLLM, Ollama, ...).
//!
//! The dialect is the canonical form, so both directions are close to the
//! identity; the work (model name, stream usage, error mapping) is in
//! [`llmgate_plugin_sdk::openai`], wired up by
//! [`llmgate_plugin_sdk::compatible`], which vendor plugins with quirks use too.

use llmgate_plugin_sdk::compatible::{Compatible, Vendor};

/// OpenAI itself: every hook at its default.
pub struct Plain;

impl Vendor for Plain {
    fn description() -> String {
        "OpenAI Chat Completions and OpenAI-compatible APIs".into()
    }
}

/// The adapter.
pub type OpenAi = Compatible<Plain>;

llmgate_plugin_sdk::export_adapter!(OpenAi);

/// `/embeddings`, beside chat.
pub use llmgate_plugin_sdk::embeddings::OpenAiEmbeddings;

llmgate_plugin_sdk::export_embeddings!(OpenAiEmbeddings);
