//! The gateway's error type: what failed, which HTTP status the client gets,
//! and how it is told (as a `plugin-error` rendered in the client's dialect).

use http::StatusCode;

use crate::plugins::{ErrorKind, PluginError};

/// Everything that can fail a client request.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The client sent no key or a key that is not in `server.api_keys`.
    #[error("invalid or missing API key")]
    Unauthorized,
    /// The request body is not what the endpoint takes.
    #[error("{0}")]
    BadRequest(String),
    /// The request body is larger than `server.max_body_bytes`.
    #[error("request body exceeds the limit of {limit} bytes")]
    BodyTooLarge {
        /// The configured limit.
        limit: usize,
    },
    /// No model alias has this name.
    #[error("model '{0}' is not configured on this gateway")]
    UnknownModel(String),
    /// The model is configured but switched off (`enabled = false` on it,
    /// or on every route it has).
    #[error("model '{0}' is disabled on this gateway")]
    ModelDisabled(String),
    /// No such endpoint.
    #[error("no endpoint {method} {path}")]
    NoRoute {
        /// The request method.
        method: String,
        /// The request path.
        path: String,
    },
    /// The upstream could not be reached or did not answer in time.
    #[error("upstream {provider} unreachable: {message}")]
    Unreachable {
        /// The provider's configured name.
        provider: String,
        /// What the transport said.
        message: String,
        /// Whether it was a timeout.
        timeout: bool,
    },
    /// The upstream answered with an error, as its adapter classified it.
    #[error("upstream {provider}: {}", .error.message)]
    Upstream {
        /// The provider's configured name.
        provider: String,
        /// The classified error.
        error: PluginError,
    },
    /// No route of the model (or its fallbacks) supports what the request needs.
    #[error("no backend for model '{model}' supports {lacking} needed by this request")]
    NoCapableRoute {
        /// The alias the client asked for.
        model: String,
        /// What the routes lack (e.g. `tools`).
        lacking: &'static str,
    },
    /// A route cannot carry this request: its adapter refused to build it, or
    /// strict mode refused a lossy translation. Nothing was sent upstream;
    /// another route may still serve it.
    #[error("the {adapter} adapter cannot send this request: {message}")]
    Untranslatable {
        /// The adapter that refused.
        adapter: String,
        /// Why.
        message: String,
    },
    /// Every backend of the model (and its fallbacks) is cooling down.
    #[error("every backend for model '{model}' is cooling down after failures; retry later")]
    AllCooling {
        /// The alias the client asked for.
        model: String,
    },
    /// A plugin trapped, ran out of time or memory, or could not be instantiated.
    #[error("plugin '{plugin}' failed: {message}")]
    Plugin {
        /// The plugin's name.
        plugin: String,
        /// What went wrong.
        message: String,
    },
}

impl GatewayError {
    /// The HTTP status the client gets.
    pub fn status(&self) -> StatusCode {
        match self {
            GatewayError::Unauthorized => StatusCode::UNAUTHORIZED,
            GatewayError::BadRequest(_) => StatusCode::BAD_REQUEST,
            GatewayError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            GatewayError::UnknownModel(_) | GatewayError::NoRoute { .. } => StatusCode::NOT_FOUND,
            // Not the client's mistake and not permanent: the operator may switch it back on.
            GatewayError::ModelDisabled(_) => StatusCode::SERVICE_UNAVAILABLE,
            GatewayError::NoCapableRoute { .. } | GatewayError::Untranslatable { .. } => {
                StatusCode::BAD_REQUEST
            }
            GatewayError::Unreachable { timeout: true, .. } => StatusCode::GATEWAY_TIMEOUT,
            GatewayError::Unreachable { .. } => StatusCode::BAD_GATEWAY,
            GatewayError::Upstream { error, .. } => status_for_upstream(error),
            GatewayError::AllCooling { .. } => StatusCode::SERVICE_UNAVAILABLE,
            GatewayError::Plugin { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A short label for logs and the attempt trail: the error kind, or
    /// `unreachable` / `plugin` for failures that never got an upstream answer.
    pub fn label(&self) -> &'static str {
        match self {
            GatewayError::Unreachable { timeout: false, .. } => "unreachable",
            GatewayError::Plugin { .. } => "plugin",
            GatewayError::Untranslatable { .. } => "untranslatable",
            other => other.to_plugin_error().kind.as_str(),
        }
    }

    /// An ingress adapter could not read the client's request: the client's
    /// error when the adapter says so, the plugin's otherwise. Never
    /// "upstream": no upstream has seen it.
    pub fn from_ingress(plugin: &str, error: PluginError) -> GatewayError {
        match error.kind {
            ErrorKind::BadRequest | ErrorKind::ContextLength | ErrorKind::ContentFilter => {
                GatewayError::BadRequest(error.message)
            }
            _ => GatewayError::Plugin {
                plugin: plugin.to_string(),
                message: error.message,
            },
        }
    }

    /// The error as the `plugin-error` an ingress adapter renders.
    pub fn to_plugin_error(&self) -> PluginError {
        let kind = match self {
            GatewayError::Unauthorized => ErrorKind::Auth,
            GatewayError::BadRequest(_)
            | GatewayError::BodyTooLarge { .. }
            | GatewayError::NoCapableRoute { .. }
            | GatewayError::Untranslatable { .. } => ErrorKind::BadRequest,
            GatewayError::UnknownModel(_) | GatewayError::NoRoute { .. } => ErrorKind::NotFound,
            GatewayError::ModelDisabled(_) => ErrorKind::Overloaded,
            GatewayError::Unreachable { timeout: true, .. } => ErrorKind::Timeout,
            GatewayError::Unreachable { .. } => ErrorKind::Upstream,
            GatewayError::Upstream { error, .. } => error.kind,
            GatewayError::AllCooling { .. } => ErrorKind::Overloaded,
            GatewayError::Plugin { .. } => ErrorKind::Internal,
        };
        let code = match self {
            GatewayError::UnknownModel(_) => Some("model_not_found".to_string()),
            GatewayError::ModelDisabled(_) => Some("model_disabled".to_string()),
            GatewayError::BodyTooLarge { .. } => Some("request_too_large".to_string()),
            GatewayError::Unauthorized => Some("invalid_api_key".to_string()),
            GatewayError::Upstream { error, .. } => error.code.clone(),
            _ => None,
        };
        let retry_after_ms = match self {
            GatewayError::Upstream { error, .. } => error.retry_after_ms,
            _ => None,
        };
        PluginError {
            kind,
            retry_after_ms,
            upstream_status: None,
            code,
            message: self.to_string(),
        }
    }
}

/// The status a client sees for an upstream failure. Client faults keep the
/// upstream's 4xx; failures of the provider's account or service are the
/// gateway's problem, so they are 5xx (or 429 when waiting helps).
fn status_for_upstream(error: &PluginError) -> StatusCode {
    match error.kind {
        ErrorKind::BadRequest | ErrorKind::ContextLength | ErrorKind::ContentFilter => error
            .upstream_status
            .and_then(|s| StatusCode::from_u16(s).ok())
            .filter(|s| s.is_client_error())
            .unwrap_or(StatusCode::BAD_REQUEST),
        ErrorKind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorKind::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Timeout => StatusCode::GATEWAY_TIMEOUT,
        ErrorKind::Auth
        | ErrorKind::Forbidden
        | ErrorKind::NotFound
        | ErrorKind::QuotaExhausted
        | ErrorKind::Upstream
        | ErrorKind::Internal => StatusCode::BAD_GATEWAY,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(kind: ErrorKind, status: u16) -> GatewayError {
        GatewayError::Upstream {
            provider: "p".into(),
            error: PluginError {
                kind,
                retry_after_ms: None,
                upstream_status: Some(status),
                code: None,
                message: "m".into(),
            },
        }
    }

    #[test]
    fn client_faults_keep_their_status() {
        let e = upstream(ErrorKind::BadRequest, 422);
        assert_eq!(e.status(), StatusCode::UNPROCESSABLE_ENTITY);
    }

    #[test]
    fn provider_faults_are_gateway_errors() {
        let e = upstream(ErrorKind::QuotaExhausted, 429);
        assert_eq!(e.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(
            upstream(ErrorKind::RateLimited, 429).status(),
            StatusCode::TOO_MANY_REQUESTS
        );
    }
}
