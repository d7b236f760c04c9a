//! The `gemini` provider adapter: Gemini generateContent upstreams, and the
//! Gemini dialect for clients (Gemini CLI, the `google-genai` SDKs).
//! The translations live in [`llmgate_plugin_sdk::gemini`].

use llmgate_plugin_sdk::dialect::DialectAdapter;
use llmgate_plugin_sdk::gemini::GenerateContent;

/// The adapter.
pub type Gemini = DialectAdapter<GenerateContent>;

llmgate_plugin_sdk::export_adapter!(Gemini);

/// `:embedContent` and `:batchEmbedContents`, beside generateContent.
pub use llmgate_plugin_sdk::embeddings::GeminiEmbeddings;

llmgate_plugin_sdk::export_embeddings!(GeminiEmbeddings);
