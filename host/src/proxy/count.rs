//! Token counting (`POST /v1/messages/count_tokens`, Gemini `:countTokens`):
//! asked of the provider when a route speaks the client's dialect and its
//! API can count; otherwise estimated from the request's text (about four
//! bytes a token), which is what clients use it for: sizing, not billing.

use std::time::Duration;

use bytes::Bytes;

use super::order_routes;
use crate::balance::KeyChoice;
use crate::config::{Model, Route};
use crate::error::GatewayError;
use crate::plugins::{AdapterPlugin, CallContext};
use crate::upstream::{Deadline, build_request};

/// A count request gets less patience than a generation: it is a lookup.
const COUNT_TIMEOUT: Duration = Duration::from_secs(30);

/// Input tokens of `body` (a count request in `ingress`'s dialect) for `model`.
pub async fn count_tokens(
    model: &Model,
    ingress: &AdapterPlugin,
    body: &Bytes,
) -> Result<u32, GatewayError> {
    for index in order_routes(model)? {
        let route = &model.routes[index];
        if route.provider.adapter.dialect() != ingress.dialect() {
            continue;
        }
        match count_natively(route, body).await {
            Ok(Some(n)) => return Ok(n),
            Ok(None) => break,
            Err(err) => {
                tracing::warn!(provider = %route.provider.name, "token count upstream failed, estimating: {err}")
            }
        }
    }
    let profile = ingress
        .inspect_request(body)?
        .map_err(|e| GatewayError::from_ingress(ingress.name(), e))?;
    Ok(profile.estimated_input_tokens)
}

/// Asks the provider; none when its API cannot count.
async fn count_natively(route: &Route, body: &[u8]) -> Result<Option<u32>, GatewayError> {
    let provider = &route.provider;
    let ctx = CallContext {
        upstream_model: route.upstream_model.clone(),
        stream: false,
        options: provider.options_json.clone(),
        unix_time: super::unix_time(),
    };
    let upstream_error = |error| GatewayError::Upstream {
        provider: provider.name.clone(),
        error,
    };
    let Some(request) = provider
        .adapter
        .build_count_request(&ctx, body)?
        .map_err(upstream_error)?
    else {
        return Ok(None);
    };
    let key = match provider.keys.take(&[]) {
        KeyChoice::Key(_, key) => Some(key),
        KeyChoice::NoKey => None,
        KeyChoice::AllCooling => {
            return Err(GatewayError::AllCooling {
                model: route.upstream_model.clone(),
            });
        }
    };
    let upstream = build_request(
        provider,
        key,
        &request.method,
        &request.path_and_query,
        request.headers,
        request.body,
        &request.auth,
    )?;
    let deadline = Deadline::after(COUNT_TIMEOUT);
    let response = provider
        .http
        .send(upstream, deadline)
        .await
        .map_err(|e| e.at(&provider.name))?;
    let status = response.status().as_u16();
    let bytes = response
        .into_body()
        .bytes(deadline)
        .await
        .unwrap_or_default();
    if !(200..300).contains(&status) {
        let error = provider.adapter.classify_error(status, &[], &bytes)?;
        return Err(upstream_error(error));
    }
    let tokens = provider
        .adapter
        .parse_count_response(&bytes)?
        .map_err(upstream_error)?;
    Ok(Some(tokens))
}
