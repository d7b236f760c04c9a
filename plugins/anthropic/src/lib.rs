//! The `anthropic` provider adapter: Anthropic Messages upstreams, and the
//! Anthropic dialect for clients (Claude Code, the `anthropic` SDKs).
//! The translations live in [`llmgate_plugin_sdk::anthropic`].

use llmgate_plugin_sdk::anthropic::Messages;
use llmgate_plugin_sdk::dialect::DialectAdapter;

/// The adapter.
pub type Anthropic = DialectAdapter<Messages>;

llmgate_plugin_sdk::export_adapter!(Anthropic);
