//! Acme Cloud speaks OpenAI Chat Completions, except that it takes the API
//! key in an `api-key` header (as Azure OpenAI does) and calls `max_tokens`
//! `max_new_tokens` (as Hugging Face TGI does). Everything else, streaming
//! and errors included, is the OpenAI adapter's.

use llmgate_plugin_sdk::adapter::{AuthPlacement, CallContext, UpstreamRequest};
use llmgate_plugin_sdk::compatible::{Compatible, Vendor};
use llmgate_plugin_sdk::json;
use llmgate_plugin_sdk::types::PluginError;

/// Acme's differences from OpenAI.
pub struct Acme;

impl Vendor for Acme {
    fn description() -> String {
        "Acme Cloud (OpenAI chat; key in api-key, max_tokens as max_new_tokens)".into()
    }

    fn adjust_request(
        _ctx: &CallContext,
        mut request: UpstreamRequest,
    ) -> Result<UpstreamRequest, PluginError> {
        request.auth = AuthPlacement::Header("api-key".into());
        request.body = json::rename_member(&request.body, "max_tokens", "max_new_tokens")
            .map_err(|e| PluginError::bad_request(e.to_string()))?;
        Ok(request)
    }
}

/// The adapter the component exports.
pub type AcmeAdapter = Compatible<Acme>;

llmgate_plugin_sdk::export_adapter!(AcmeAdapter);

#[cfg(test)]
mod tests {
    use super::*;
    use llmgate_plugin_sdk::adapter::Adapter;

    fn ctx() -> CallContext {
        CallContext {
            upstream_model: "acme-large".into(),
            stream: false,
            options: "{}".into(),
            unix_time: 0,
        }
    }

    #[test]
    fn key_goes_in_api_key_and_max_tokens_is_renamed() {
        let body = br#"{"model":"smart","max_tokens":64,"messages":[]}"#.to_vec();
        let request = AcmeAdapter::build_request(ctx(), body, true).unwrap();
        assert_eq!(request.auth, AuthPlacement::Header("api-key".into()));
        assert_eq!(
            request.body,
            br#"{"model":"acme-large","max_new_tokens":64,"messages":[]}"#
        );
        assert_eq!(request.path_and_query, "/chat/completions");
    }
}
