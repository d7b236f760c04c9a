//! Active connectivity checks: a one-token completion per provider key,
//! built by the provider's own adapter, on demand (`POST
//! /admin/api/providers/{name}/check`) or every `health_check_interval_s`.
//! A failing check cools the key or backend down as a failed request would,
//! so clients do not pay for finding out; a passing one ends a cooldown
//! early, so a recovered backend gets traffic back at once.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::config::{Provider, Runtime};
use crate::error::GatewayError;
use crate::proxy::attempt::classify_failure;
use crate::proxy::failover;
use crate::server::Gateway;
use crate::store::unix_ms;
use crate::upstream::{Deadline, build_request};

/// Longest a check may take: long enough for a slow first token, short
/// enough that a hung provider does not hold the admin request.
const CHECK_TIMEOUT: Duration = Duration::from_secs(30);

/// The last check of one provider.
#[derive(Debug, Clone, Serialize)]
pub struct ProviderHealth {
    /// When it ran (ms since the epoch).
    pub checked_at_ms: u64,
    /// The upstream model probed.
    pub model: String,
    /// Whether every key passed.
    pub ok: bool,
    /// Per key (one entry, index `null`, for keyless providers).
    pub keys: Vec<KeyHealth>,
}

/// One key's check.
#[derive(Debug, Clone, Serialize)]
pub struct KeyHealth {
    /// The key's position in config.
    pub index: Option<usize>,
    /// Passed.
    pub ok: bool,
    /// HTTP status, if the provider answered.
    pub status: Option<u16>,
    /// Error kind, when it failed.
    pub error_kind: Option<&'static str>,
    /// What went wrong.
    pub error: Option<String>,
    /// How long the check took.
    pub latency_ms: f64,
}

/// Last results by provider name.
pub type HealthTable = std::sync::Mutex<BTreeMap<String, ProviderHealth>>;

/// The model a check asks for: `health_check_model`, else the first
/// enabled route's upstream model on this provider.
fn probe_model(runtime: &Runtime, provider: &Provider) -> Option<String> {
    provider.health_check_model.clone().or_else(|| {
        runtime
            .models
            .iter()
            .flat_map(|m| m.routes.iter())
            .find(|r| r.enabled && r.provider.name == provider.name)
            .map(|r| r.upstream_model.clone())
    })
}

/// Checks every key of `provider` now, applies cooldowns, and records the result.
pub async fn check_provider(
    gateway: &Gateway,
    runtime: &Runtime,
    provider: &Arc<Provider>,
) -> Result<ProviderHealth, GatewayError> {
    let model = probe_model(runtime, provider).ok_or_else(|| {
        GatewayError::BadRequest(format!(
            "no enabled route uses provider '{}'; set its health_check_model",
            provider.name
        ))
    })?;
    let stats = gateway.stats.backend(&provider.name, &model);
    let indexes: Vec<Option<usize>> = match provider.keys.len() {
        0 => vec![None],
        n => (0..n).map(Some).collect(),
    };
    let mut keys = Vec::new();
    for index in indexes {
        let started = Instant::now();
        let outcome = probe(provider, &model, index).await;
        let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
        let health = match outcome {
            Ok(status) => {
                // Healthy again: back into rotation now, not when the timer says.
                stats.clear_cooldown();
                if let Some(i) = index {
                    provider.keys.clear_cooldown(i);
                }
                KeyHealth {
                    index,
                    ok: true,
                    status: Some(status),
                    error_kind: None,
                    error: None,
                    latency_ms,
                }
            }
            Err((status, err)) => {
                stats.record(false, started.elapsed(), None);
                let decision = failover::decide(&err, &runtime.routing, &stats);
                if let (Some(i), Some(cooldown)) = (index, decision.key_cooldown) {
                    provider.keys.cool_down(i, cooldown);
                }
                if let Some(cooldown) = decision.backend_cooldown {
                    stats.cool_down(cooldown);
                }
                tracing::warn!(
                    provider = %provider.name,
                    key = index,
                    "connectivity check failed: {err}"
                );
                KeyHealth {
                    index,
                    ok: false,
                    status,
                    error_kind: Some(err.label()),
                    error: Some(err.to_string()),
                    latency_ms,
                }
            }
        };
        keys.push(health);
    }
    let result = ProviderHealth {
        checked_at_ms: unix_ms(),
        ok: keys.iter().all(|k| k.ok),
        model,
        keys,
    };
    gateway
        .health
        .lock()
        .expect("health lock")
        .insert(provider.name.clone(), result.clone());
    Ok(result)
}

/// One probe: a one-token, non-streamed chat built by the adapter (from the
/// canonical form, as any translated request). Returns the 2xx status.
async fn probe(
    provider: &Provider,
    model: &str,
    key_index: Option<usize>,
) -> Result<u16, (Option<u16>, GatewayError)> {
    let body = serde_json::json!({
        "model": model,
        "messages": [{"role": "user", "content": "ping"}],
        "max_tokens": 1,
        "stream": false,
    });
    let body = serde_json::to_vec(&body).expect("json! values serialize");
    let ctx = crate::plugins::CallContext {
        upstream_model: model.to_string(),
        stream: false,
        options: provider.options_json.clone(),
        unix_time: crate::proxy::unix_time(),
    };
    let native = provider.adapter.dialect() == "openai";
    let request = provider
        .adapter
        .build_request(&ctx, &body, native)
        .map_err(|e| (None, e))?
        .map_err(|e| {
            (
                None,
                GatewayError::Plugin {
                    plugin: provider.adapter.name().to_string(),
                    message: e.message,
                },
            )
        })?;
    let key = key_index.and_then(|i| provider.keys.key(i));
    let upstream = build_request(
        provider,
        key,
        &request.method,
        &request.path_and_query,
        request.headers,
        request.body,
        &request.auth,
    )
    .map_err(|e| (None, e))?;
    let deadline = Deadline::after(provider.timeout.min(CHECK_TIMEOUT));
    let response = provider
        .http
        .send(upstream, deadline)
        .await
        .map_err(|e| (None, e.at(&provider.name)))?;
    if response.status().is_success() {
        Ok(response.status().as_u16())
    } else {
        Err(classify_failure(provider, response, deadline).await)
    }
}

/// Runs the periodic checks of providers with `health_check_interval_s`,
/// until the process ends.
pub async fn run_periodic(gateway: Arc<Gateway>) {
    let mut last_run: BTreeMap<String, Instant> = BTreeMap::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let runtime = gateway.runtime.load_full();
        for provider in runtime.providers.iter().filter(|p| p.enabled) {
            let Some(every) = provider.health_check_interval else {
                continue;
            };
            if last_run
                .get(&provider.name)
                .is_some_and(|at| at.elapsed() < every)
            {
                continue;
            }
            last_run.insert(provider.name.clone(), Instant::now());
            let (gateway, runtime, provider) = (
                Arc::clone(&gateway),
                Arc::clone(&runtime),
                Arc::clone(provider),
            );
            tokio::spawn(async move {
                if let Err(e) = check_provider(&gateway, &runtime, &provider).await {
                    tracing::warn!(provider = %provider.name, "connectivity check not run: {e}");
                }
            });
        }
    }
}
