//! Embeddings: the chat pipeline's routing, keys, failover and recording,
//! for one whole (never streamed) request through the adapters' optional
//! `embeddings` interface. A route whose adapter has no embeddings is
//! skipped like one that cannot carry a request.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::Response;

use super::attempt::classify_failure;
use super::record::{AttemptRecord, RequestRecord};
use super::{Call, failover, order_routes, summarize};
use crate::balance::KeyChoice;
use crate::config::Runtime;
use crate::error::GatewayError;
use crate::plugins::{AuthPlacement, DecodedEmbed, EmbedContext, KeyPlacement};
use crate::server::{ResponseBody, full_body};
use crate::upstream::{Deadline, TransportError, build_request};
use failover::Next;

/// Handles an embeddings request in the ingress adapter's dialect. Gemini
/// names the model in the path (`path_model`), OpenAI in the body.
pub async fn embeddings(
    runtime: Arc<Runtime>,
    call: Call,
    path_model: Option<String>,
) -> Response<ResponseBody> {
    let mut record = RequestRecord::new(&call);
    record.endpoint = "embeddings";
    let result = route(&runtime, &call, path_model, &mut record).await;
    super::answer(&call, &mut record, result)
}

async fn route(
    runtime: &Runtime,
    call: &Call,
    path_model: Option<String>,
    record: &mut RequestRecord,
) -> Result<Response<ResponseBody>, GatewayError> {
    let summary = summarize(&call.body)?;
    let alias: Cow<'_, str> = match (&path_model, summary.model) {
        (Some(model), _) => Cow::Borrowed(model.as_str()),
        (None, Some(model)) => model,
        (None, None) => {
            return Err(GatewayError::BadRequest(
                "the request names no model".into(),
            ));
        }
    };
    record.alias = alias.to_string();
    let model = runtime
        .model(&alias)
        .ok_or_else(|| GatewayError::UnknownModel(alias.to_string()))?;
    if !model.enabled {
        return Err(GatewayError::ModelDisabled(alias.to_string()));
    }
    let ingress = call.ingress.embeddings().ok_or_else(|| {
        GatewayError::BadRequest(format!(
            "the {} dialect has no embeddings endpoint here",
            call.ingress.dialect()
        ))
    })?;
    let mut canonical: Option<DecodedEmbed> = None;
    let mut last_error = None;
    for model in runtime.fallback_chain(model) {
        if !model.routes.iter().any(|r| r.enabled) {
            continue;
        }
        let mut attempts = 0;
        'routes: for index in order_routes(&model)? {
            let route = &model.routes[index];
            let provider = &route.provider;
            let Some(upstream) = provider.adapter.embeddings() else {
                last_error = Some(GatewayError::Untranslatable {
                    adapter: provider.adapter.name().to_string(),
                    message: "this adapter has no embeddings".into(),
                });
                continue;
            };
            let native = provider.adapter.dialect() == call.ingress.dialect();
            if !native && canonical.is_none() {
                canonical = Some(
                    ingress
                        .decode_request(&call.body)?
                        .map_err(|e| GatewayError::from_ingress(call.ingress.name(), e))?,
                );
            }
            let body: &[u8] = match (&canonical, native) {
                (Some(c), false) => &c.canonical,
                _ => &call.body,
            };
            let ctx = EmbedContext {
                upstream_model: route.upstream_model.clone(),
                options: provider.options_json.clone(),
            };
            let mut tried_keys = Vec::new();
            loop {
                if attempts >= model.max_attempts {
                    break 'routes;
                }
                let key = match provider.keys.take(&tried_keys) {
                    KeyChoice::Key(i, key) => Some((i, key)),
                    KeyChoice::NoKey => None,
                    KeyChoice::AllCooling => continue 'routes,
                };
                attempts += 1;
                let started = Instant::now();
                let in_flight = route.stats.begin();
                let outcome =
                    attempt(upstream, provider, &ctx, body, native, key.map(|(_, k)| k)).await;
                let (status, result) = match outcome {
                    Ok((status, bytes)) => (Some(status), Ok(bytes)),
                    Err((status, err)) => (status, Err(err)),
                };
                record.attempts.push(AttemptRecord {
                    provider: provider.name.clone(),
                    model: route.upstream_model.clone(),
                    key_index: key.map(|(i, _)| i),
                    status,
                    error: result.as_ref().err().map(|e| (e.label(), e.to_string())),
                    duration: started.elapsed(),
                });
                let err = match result {
                    Ok(answer) => {
                        route.stats.record(true, started.elapsed(), None);
                        drop(in_flight);
                        let parsed =
                            upstream
                                .parse_response(&ctx, &answer, native)?
                                .map_err(|error| GatewayError::Upstream {
                                    provider: provider.name.clone(),
                                    error,
                                })?;
                        let out = match (parsed.body, &canonical) {
                            (Some(canonical_answer), Some(decoded)) => Bytes::from(
                                ingress
                                    .encode_response(&canonical_answer, &alias, &decoded.note)?
                                    .map_err(|e| GatewayError::Plugin {
                                        plugin: call.ingress.name().to_string(),
                                        message: e.message,
                                    })?,
                            ),
                            _ => answer,
                        };
                        record.status = 200;
                        record.usage = parsed.usage;
                        record.capture_response(&out);
                        record.emit_after_response();
                        return Ok(Response::builder()
                            .status(200)
                            .header("content-type", "application/json")
                            .body(full_body(out))
                            .expect("static parts make a valid response"));
                    }
                    Err(err) => err,
                };
                drop(in_flight);
                if matches!(err, GatewayError::Untranslatable { .. }) {
                    last_error = Some(err);
                    continue 'routes;
                }
                route.stats.record(false, started.elapsed(), None);
                let decision = failover::decide(&err, &runtime.routing, &route.stats);
                let metrics = &call.recorder.metrics;
                if let (Some((i, _)), Some(cooldown)) = (key, decision.key_cooldown) {
                    provider.keys.cool_down(i, cooldown);
                    metrics.cooldown(&provider.name, "key", err.label());
                }
                if let Some(cooldown) = decision.backend_cooldown {
                    route.stats.cool_down(cooldown);
                    metrics.cooldown(&provider.name, "backend", err.label());
                }
                tracing::warn!(provider = %provider.name, model = %route.upstream_model, "embeddings attempt failed: {err}");
                let next = decision.next;
                last_error = Some(err);
                match (next, key) {
                    (Next::Answer, _) => return Err(last_error.expect("just set")),
                    (Next::NextKey, Some((i, _))) => tried_keys.push(i),
                    (Next::NextKey, None) | (Next::NextBackend, _) => continue 'routes,
                }
            }
        }
    }
    Err(last_error.unwrap_or_else(|| GatewayError::AllCooling {
        model: alias.to_string(),
    }))
}

/// One upstream embeddings request: the 2xx body, or the classified failure.
async fn attempt(
    upstream: &crate::plugins::EmbeddingsPlugin,
    provider: &crate::config::Provider,
    ctx: &EmbedContext,
    body: &[u8],
    native: bool,
    key: Option<&str>,
) -> Result<(u16, Bytes), (Option<u16>, GatewayError)> {
    let request = upstream
        .build_request(ctx, body, native)
        .map_err(|e| (None, e))?
        .map_err(|e| {
            (
                None,
                GatewayError::Untranslatable {
                    adapter: provider.adapter.name().to_string(),
                    message: e.message,
                },
            )
        })?;
    let auth = match request.auth {
        KeyPlacement::Bearer => AuthPlacement::Bearer,
        KeyPlacement::Header(name) => AuthPlacement::Header(name),
        KeyPlacement::Query(name) => AuthPlacement::Query(name),
        KeyPlacement::None => AuthPlacement::None,
    };
    let upstream = build_request(
        provider,
        key,
        &request.method,
        &request.path_and_query,
        request.headers,
        request.body,
        &auth,
    )
    .map_err(|e| (None, e))?;
    let unreachable = |e: TransportError| (None, e.at(&provider.name));
    let deadline = Deadline::after(provider.timeout);
    let response = provider
        .http
        .send(upstream, deadline)
        .await
        .map_err(unreachable)?;
    let status = response.status();
    if !status.is_success() {
        return Err(classify_failure(provider, response, deadline).await);
    }
    let bytes = response
        .into_body()
        .bytes(deadline)
        .await
        .map_err(unreachable)?;
    Ok((status.as_u16(), bytes))
}
