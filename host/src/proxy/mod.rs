//! The request pipeline, one phase per function, in the order a request
//! goes through them:
//!
//! 1. [`summarize`]: read only what routing needs (model, stream).
//! 2. [`Runtime::model`]: resolve the alias.
//! 3. [`order_routes`]: the policy plugin orders the model's routes, with
//!    live stats and cooldowns.
//! 4. for each route in that order, a key from its provider's ring, then
//!    [`attempt::run`]: the adapter builds the upstream request, the host
//!    sends it, the adapter (and operator rules) classify failures.
//! 5. [`failover::decide`]: answer the client, retry with the next key, or
//!    move to the next route; cool down keys and backends. When an alias runs
//!    out of routes or `max_attempts`, its `fallback` aliases follow.
//! 6. the answer goes back, natively or translated ([`attempt`] for whole
//!    bodies, [`stream`] for SSE), and is recorded ([`record`]).
//!
//! Failover is possible until the first byte reaches the client.

pub(crate) mod attempt;
mod count;
mod embed;
pub mod failover;
pub mod record;
mod stream;

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use serde::Deserialize;

use crate::balance::KeyChoice;
use crate::config::{Model, Runtime};
use crate::error::GatewayError;
use crate::plugins::{AdapterPlugin, Candidate, DecodedRequest, PickContext, RequestProfile};
use crate::server::{ResponseBody, full_body};
use failover::Next;
use record::{Recorder, RequestRecord};

pub use count::count_tokens;
pub use embed::embeddings;

/// One client request on its way through the pipeline.
pub struct Call {
    /// Gateway-assigned id, sent back as `x-request-id`.
    pub id: String,
    /// The adapter speaking the client's dialect.
    pub ingress: Arc<AdapterPlugin>,
    /// The client's body, as received.
    pub body: Bytes,
    /// When the gateway started on it.
    pub started: Instant,
    /// Whether to add the route headers to the answer.
    pub route_headers: bool,
    /// Model and stream choice when the URL carries them (Gemini), not the body.
    pub path_route: Option<(String, bool)>,
    /// `x-llmgate-strict: true`: a translation that would drop anything is refused.
    pub strict: bool,
    /// The client key's id (never the key).
    pub key_id: Arc<str>,
    /// The client's `<dialect>-beta` headers, sent along on native calls.
    pub beta_headers: Vec<crate::plugins::Header>,
    /// Where the finished record goes.
    pub recorder: Arc<Recorder>,
}

/// The fields routing needs; everything else stays unparsed.
#[derive(Debug, Deserialize)]
pub struct Summary<'a> {
    /// The model the client asked for.
    #[serde(borrow, default)]
    pub model: Option<Cow<'a, str>>,
    /// Whether the client wants a stream.
    #[serde(default)]
    pub stream: Option<bool>,
}

/// Phase 1: reads `model` and `stream` from a JSON body. Also rejects
/// malformed JSON before any upstream sees it.
pub fn summarize(body: &[u8]) -> Result<Summary<'_>, GatewayError> {
    serde_json::from_slice(body)
        .map_err(|e| GatewayError::BadRequest(format!("the request body is not valid JSON: {e}")))
}

/// Handles a chat request in the ingress adapter's dialect.
pub async fn chat(runtime: Arc<Runtime>, call: Call) -> Response<ResponseBody> {
    let mut record = RequestRecord::new(&call);
    let result = route_and_send(&runtime, &call, &mut record).await;
    answer(&call, &mut record, result)
}

/// What the client gets: the pipeline's response, or its error rendered in
/// the client's dialect (and recorded), with `x-request-id` either way.
fn answer(
    call: &Call,
    record: &mut RequestRecord,
    result: Result<Response<ResponseBody>, GatewayError>,
) -> Response<ResponseBody> {
    let mut response = match result {
        Ok(response) => response,
        Err(err) => {
            record.fail(&err);
            record.emit();
            error_response(&call.ingress, &err)
        }
    };
    if let Ok(id) = HeaderValue::from_str(&call.id) {
        response.headers_mut().insert("x-request-id", id);
    }
    response
}

async fn route_and_send(
    runtime: &Runtime,
    call: &Call,
    record: &mut RequestRecord,
) -> Result<Response<ResponseBody>, GatewayError> {
    let summary = summarize(&call.body)?;
    let (alias, stream) = match &call.path_route {
        Some((model, stream)) => (Cow::Borrowed(model.as_str()), *stream),
        None => (
            summary
                .model
                .ok_or_else(|| GatewayError::BadRequest("the request names no model".into()))?,
            summary.stream.unwrap_or(false),
        ),
    };
    record.alias = alias.to_string();
    record.stream = stream;
    let model = runtime
        .model(&alias)
        .ok_or_else(|| GatewayError::UnknownModel(alias.to_string()))?;
    if !model.enabled {
        return Err(GatewayError::ModelDisabled(alias.to_string()));
    }
    if let Some(capture) = &model.capture {
        record.capture = Some(Arc::clone(capture));
        record.request_body = Some(call.body.clone());
    }

    // Translated only when a route needs it, profiled only when a route
    // restricts capabilities; each at most once.
    let mut canonical: Option<DecodedRequest> = None;
    // Strict mode and a lossy decode: translated routes are out, native ones may serve.
    let mut strict_refusal: Option<String> = None;
    let mut profile: Option<RequestProfile> = None;
    let mut last_error = None;
    let mut any_enabled = false;
    for model in runtime.fallback_chain(model) {
        if !model.routes.iter().any(|r| r.enabled) {
            continue;
        }
        any_enabled = true;
        let mut attempts = 0;
        let mut order = order_routes(&model)?;
        if model.restricted {
            if profile.is_none() {
                profile = Some(
                    call.ingress
                        .inspect_request(&call.body)?
                        .map_err(|e| GatewayError::from_ingress(call.ingress.name(), e))?,
                );
            }
            let profile = profile.as_ref().expect("set above");
            let mut lacking = None;
            order.retain(|&i| match model.routes[i].lacks(profile) {
                None => true,
                Some(what) => {
                    lacking = Some(what);
                    false
                }
            });
            if order.is_empty() {
                last_error = last_error.or(Some(GatewayError::NoCapableRoute {
                    model: alias.to_string(),
                    lacking: lacking.expect("a route was removed"),
                }));
                continue;
            }
        }
        'routes: for index in order {
            let route = &model.routes[index];
            let mut tried_keys = Vec::new();
            loop {
                if attempts >= model.max_attempts {
                    break 'routes;
                }
                let key = match route.provider.keys.take(&tried_keys) {
                    KeyChoice::Key(i, key) => Some((i, key)),
                    KeyChoice::NoKey => None,
                    KeyChoice::AllCooling => continue 'routes,
                };
                attempts += 1;
                let native = route.provider.adapter.dialect() == call.ingress.dialect();
                if !native && canonical.is_none() && strict_refusal.is_none() {
                    let decoded = call
                        .ingress
                        .decode_request(&call.body)?
                        .map_err(|e| GatewayError::from_ingress(call.ingress.name(), e))?;
                    if call.strict && !decoded.translation_notes.is_empty() {
                        strict_refusal = Some(format!(
                            "strict translation refused: {}",
                            decoded.translation_notes.join("; ")
                        ));
                    } else {
                        canonical = Some(decoded);
                    }
                }
                if let (false, Some(message)) = (native, &strict_refusal) {
                    last_error = Some(GatewayError::Untranslatable {
                        adapter: call.ingress.name().to_string(),
                        message: message.clone(),
                    });
                    continue 'routes;
                }
                let body: &[u8] = match (&canonical, native) {
                    (Some(c), false) => &c.canonical,
                    _ => &call.body,
                };
                let target = attempt::Target {
                    route,
                    key,
                    native,
                    stream,
                    client_model: &alias,
                    encoder_note: canonical.as_ref().map_or("", |c| c.note.as_str()),
                    ingress_notes: match (&canonical, native) {
                        (Some(c), false) => &c.translation_notes,
                        _ => &[],
                    },
                };
                let err = match attempt::run(call, target, body, record).await {
                    Ok(response) => return Ok(response),
                    Err(err) => err,
                };
                let decision = failover::decide(&err, &runtime.routing, &route.stats);
                let metrics = &call.recorder.metrics;
                if let (Some((i, _)), Some(cooldown)) = (key, decision.key_cooldown) {
                    route.provider.keys.cool_down(i, cooldown);
                    metrics.cooldown(&route.provider.name, "key", err.label());
                }
                if let Some(cooldown) = decision.backend_cooldown {
                    route.stats.cool_down(cooldown);
                    metrics.cooldown(&route.provider.name, "backend", err.label());
                }
                tracing::warn!(
                    request_id = %call.id,
                    provider = %route.provider.name,
                    model = %route.upstream_model,
                    key = key.map(|(i, _)| i),
                    next = ?decision.next,
                    key_cooldown_ms = decision.key_cooldown.map(|d| d.as_millis() as u64),
                    backend_cooldown_ms = decision.backend_cooldown.map(|d| d.as_millis() as u64),
                    "attempt failed: {err}"
                );
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
    Err(last_error.unwrap_or_else(|| match any_enabled {
        true => GatewayError::AllCooling {
            model: alias.to_string(),
        },
        false => GatewayError::ModelDisabled(alias.to_string()),
    }))
}

/// Phase 3: asks the model's policy for the order to try its enabled routes
/// in. Indexes the policy returns twice, out of range or of a disabled route
/// are ignored.
pub fn order_routes(model: &Model) -> Result<Vec<usize>, GatewayError> {
    let candidates: Vec<Candidate> = model
        .routes
        .iter()
        .enumerate()
        .filter(|(_, r)| r.enabled)
        .map(|(i, r)| Candidate {
            index: i as u32,
            weight: r.weight,
            priority: r.priority,
            latency_ewma_us: r.stats.latency_ewma_us(),
            ttft_ewma_us: r.stats.ttft_ewma_us(),
            error_rate: r.stats.error_rate(),
            in_flight: r.stats.in_flight(),
            cooling_down: r.stats.cooling_down() || r.provider.keys.all_cooling(),
        })
        .collect();
    let ctx = PickContext {
        route: model.name.clone(),
        seed: random_u64(),
        counter: model.counter.fetch_add(1, Ordering::Relaxed),
        options: model.policy_options.clone(),
    };
    let picked = model.policy.pick(&ctx, &candidates)?;
    let mut seen = vec![false; model.routes.len()];
    let order: Vec<usize> = picked
        .into_iter()
        .map(|i| i as usize)
        .filter(|&i| {
            i < seen.len() && model.routes[i].enabled && !std::mem::replace(&mut seen[i], true)
        })
        .collect();
    if order.is_empty() {
        return Err(GatewayError::Plugin {
            plugin: model.policy.name().to_string(),
            message: "the policy picked no route".into(),
        });
    }
    Ok(order)
}

/// Seconds since the Unix epoch, for plugins (which have no clock).
pub fn unix_time() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Fresh randomness without a dependency: std's per-process random hash keys,
/// varied by a counter.
pub fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::AtomicU64;
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.finish()
}

/// An error in the client's dialect, rendered by the ingress adapter.
pub fn error_response(ingress: &AdapterPlugin, err: &GatewayError) -> Response<ResponseBody> {
    let status = err.status();
    let plugin_error = err.to_plugin_error();
    let body = ingress
        .encode_error(status.as_u16(), &plugin_error)
        .unwrap_or_else(|_| {
            // The ingress plugin itself failed; still answer with valid JSON.
            serde_json::to_vec(&serde_json::json!({
                "error": {"message": plugin_error.message, "type": "server_error"}
            }))
            .expect("json! values serialize")
        });
    let mut response = Response::builder()
        .status(status)
        .header("content-type", "application/json");
    if let Some(ms) = plugin_error.retry_after_ms
        && matches!(
            status,
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
        )
    {
        response = response.header("retry-after", ms.div_ceil(1000).to_string());
    }
    response
        .body(full_body(body))
        .expect("static parts make a valid response")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_reads_only_routing_fields() {
        let s =
            summarize(br#"{"messages":[{"content":"x"}],"model":"smart","stream":true}"#).unwrap();
        assert_eq!(s.model.as_deref(), Some("smart"));
        assert_eq!(s.stream, Some(true));
        let s = summarize(br#"{"model":"a\"b"}"#).unwrap();
        assert_eq!(s.model.as_deref(), Some("a\"b"));
    }

    #[test]
    fn malformed_json_is_a_bad_request() {
        let err = summarize(br#"{"model":"smart","#).unwrap_err();
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn random_values_differ() {
        assert_ne!(random_u64(), random_u64());
    }
}
