//! The admin API under `/admin/api/` (behind `server.admin_token`) and the
//! Prometheus endpoint `/metrics`.
//!
//! | path | what |
//! |---|---|
//! | `GET requests` | the request log, newest first; filters `from`, `to` (ms since the epoch), `model`, `provider`, `key`, `status` (`200`, `5xx`, `ok`, `error`), `error_kind`; `limit` (≤ 1000), `cursor` |
//! | `GET requests/{id}` | one request |
//! | `GET timeseries` | requests, errors, tokens per time bucket and percentiles per `group_by` (`model`, `provider`, `none`), from the per-minute rollups: `from`, `to`, `bucket_ms` |
//! | `GET stats` | aggregates over the same filters, `group_by` = `model` (default), `provider`, `backend`, `key` |
//! | `GET backends` | live state: health, cooldowns with time left, in-flight, EWMAs, key cooldowns |
//! | `GET config` | the running config with secrets masked, and the last reload's result |
//! | `POST reload` | re-read the config file now |
//! | `GET plugins` | loaded components with call counts, traps and durations |
//! | `GET status` | version, uptime, store counters |

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::{Value, json};

use crate::config::key_fingerprint;
use crate::metrics::{self, esc, header};
use crate::server::{Gateway, ResponseBody, full_body};
use crate::store::query::{self, Filter, GroupBy};

/// Most records one page returns.
const MAX_PAGE: usize = 1000;
/// Most records one page request reads, so a filter matching little cannot
/// keep a reader busy for long; the cursor continues from there.
const MAX_SCAN: usize = 100_000;

/// Answers a request under `/admin/api/`.
pub async fn handle(gateway: Arc<Gateway>, req: Request<Incoming>) -> Response<ResponseBody> {
    let runtime = gateway.runtime.load();
    if runtime.admin_token.is_none() {
        return error(
            StatusCode::UNAUTHORIZED,
            "the admin API is disabled: set server.admin_token",
        );
    }
    if !runtime.accepts_admin_token(bearer(&req)) {
        return error(
            StatusCode::UNAUTHORIZED,
            "missing or wrong admin token (Authorization: Bearer <server.admin_token>)",
        );
    }
    drop(runtime);
    let path = req
        .uri()
        .path()
        .trim_start_matches("/admin/api")
        .trim_matches('/');
    let params = params(req.uri().query());
    let method = req.method().clone();
    let route: Vec<&str> = path.split('/').collect();
    let gateway_for_blocking = Arc::clone(&gateway);
    match (&method, route.as_slice()) {
        (&Method::GET, ["requests"]) => {
            let filter = match filter(&params) {
                Ok(f) => f,
                Err(message) => return error(StatusCode::BAD_REQUEST, &message),
            };
            let limit = match param_u64(&params, "limit") {
                Ok(n) => n.map_or(50, |n| (n as usize).clamp(1, MAX_PAGE)),
                Err(message) => return error(StatusCode::BAD_REQUEST, &message),
            };
            let cursor = match param_u64(&params, "cursor") {
                Ok(c) => c,
                Err(message) => return error(StatusCode::BAD_REQUEST, &message),
            };
            with_store(gateway_for_blocking, move |store| {
                query::list(store, &filter, limit, cursor, MAX_SCAN).map(|page| json!(page))
            })
            .await
        }
        (&Method::GET, ["requests", id]) => {
            let id = id.to_string();
            with_store(gateway_for_blocking, move |store| {
                query::get(store, &id).map(|r| r.map_or(Value::Null, |r| json!(r)))
            })
            .await
        }
        (&Method::GET, ["stats"]) => {
            let filter = match filter(&params) {
                Ok(f) => f,
                Err(message) => return error(StatusCode::BAD_REQUEST, &message),
            };
            let by = params
                .iter()
                .find(|(k, _)| k == "group_by")
                .map(|(_, v)| v.as_str());
            let Some(group_by) = GroupBy::parse(by.unwrap_or("model")) else {
                return error(
                    StatusCode::BAD_REQUEST,
                    "group_by must be model, provider, backend or key",
                );
            };
            with_store(gateway_for_blocking, move |store| {
                query::aggregate(store, &filter, group_by).map(|a| json!(a))
            })
            .await
        }
        (&Method::GET, ["timeseries"]) => {
            let range = (
                param_u64(&params, "from"),
                param_u64(&params, "to"),
                param_u64(&params, "bucket_ms"),
            );
            let (Ok(from), Ok(to), Ok(bucket)) = range else {
                return error(
                    StatusCode::BAD_REQUEST,
                    "from, to and bucket_ms are whole numbers",
                );
            };
            let by = params
                .iter()
                .find(|(k, _)| k == "group_by")
                .map(|(_, v)| v.clone());
            let to = to.unwrap_or_else(crate::store::unix_ms);
            let from = from.unwrap_or(to.saturating_sub(3_600_000));
            with_store(gateway_for_blocking, move |store| {
                timeseries(store, from, to, bucket, by.as_deref().unwrap_or("model"))
            })
            .await
        }
        (&Method::GET, ["backends"]) => ok(backends(&gateway)),
        (&Method::GET, ["config"]) => ok(config(&gateway)),
        (&Method::GET, ["config", "source"]) => {
            let text = gateway
                .last_config_text
                .lock()
                .expect("reload lock")
                .clone();
            Response::builder()
                .status(StatusCode::OK)
                .header("content-type", "application/toml")
                .header("cache-control", "no-store")
                .body(full_body(Bytes::from(mask_toml_secrets(&text))))
                .expect("static parts make a valid response")
        }
        (&Method::PUT, ["config"]) => put_config(gateway, req).await,
        (&Method::POST, ["reload"]) => {
            let g = Arc::clone(&gateway);
            let _ = tokio::task::spawn_blocking(move || crate::reload::reload_if_changed(&g, true))
                .await;
            ok(json!({"reload": *gateway.reload.lock().expect("reload lock")}))
        }
        (&Method::GET, ["plugins"]) => ok(plugins(&gateway)),
        (&Method::GET, ["health"]) => {
            ok(json!({"providers": *gateway.health.lock().expect("health lock")}))
        }
        (&Method::POST, ["providers", name, "check"]) => {
            let runtime = gateway.runtime.load_full();
            let Some(provider) = runtime.providers.iter().find(|p| p.name == *name) else {
                return error(
                    StatusCode::NOT_FOUND,
                    &format!("no provider named '{name}'"),
                );
            };
            match crate::health::check_provider(&gateway, &runtime, provider).await {
                Ok(health) => ok(json!(health)),
                Err(e) => error(StatusCode::BAD_REQUEST, &e.to_string()),
            }
        }
        (&Method::GET, ["status"]) => ok(status(&gateway)),
        _ => error(
            StatusCode::NOT_FOUND,
            &format!("no admin endpoint {method} /admin/api/{path}"),
        ),
    }
}

/// `PUT /admin/api/config`: a new config (TOML) for a store-managed
/// gateway; validated, saved in the store, applied. A file-managed gateway
/// refuses: the file is the truth there.
async fn put_config(gateway: Arc<Gateway>, req: Request<Incoming>) -> Response<ResponseBody> {
    use http_body_util::BodyExt;
    if let crate::ConfigSource::File(path) = &gateway.config_source {
        return error(
            StatusCode::CONFLICT,
            &format!("the config is the file {}; edit it there", path.display()),
        );
    }
    let body = match http_body_util::Limited::new(req.into_body(), 1 << 20)
        .collect()
        .await
    {
        Ok(body) => body.to_bytes(),
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("reading the config: {e}")),
    };
    let Ok(text) = String::from_utf8(body.to_vec()) else {
        return error(StatusCode::BAD_REQUEST, "the config must be UTF-8 TOML");
    };
    let g = Arc::clone(&gateway);
    let outcome = tokio::task::spawn_blocking(move || {
        crate::reload::apply_text(&g, &text)?;
        if let Some(store) = &g.recorder.store {
            store
                .save_config_text(&text)
                .map_err(|e| format!("applied, but saving it failed: {e}"))?;
        }
        *g.last_config_text.lock().expect("reload lock") = text;
        Ok::<(), String>(())
    })
    .await;
    match outcome {
        Ok(Ok(())) => ok(json!({"reload": *gateway.reload.lock().expect("reload lock")})),
        Ok(Err(message)) => error(StatusCode::BAD_REQUEST, &message),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

/// Masks `key = "..."`-style secrets in config text line by line, for
/// showing the source: any line whose key names a secret keeps only its key.
fn mask_toml_secrets(text: &str) -> String {
    text.lines()
        .map(|line| match line.split_once('=') {
            Some((key, _)) if is_secret_field(key.trim()) && !line.contains("${") => {
                format!("{key}= \"<redacted>\"")
            }
            _ => line.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The admin token from `Authorization: Bearer`.
fn bearer<B>(req: &Request<B>) -> Option<&str> {
    let value = req
        .headers()
        .get(http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .trim();
    (value.len() > 7 && value[..7].eq_ignore_ascii_case("bearer ")).then(|| value[7..].trim())
}

/// Decoded query parameters.
fn params(query: Option<&str>) -> Vec<(String, String)> {
    query
        .map(|q| {
            form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default()
}

fn param_u64(params: &[(String, String)], name: &str) -> Result<Option<u64>, String> {
    match params.iter().find(|(k, _)| k == name) {
        None => Ok(None),
        Some((_, v)) if v.is_empty() => Ok(None),
        Some((_, v)) => v
            .parse()
            .map(Some)
            .map_err(|_| format!("{name} must be a whole number, not '{v}'")),
    }
}

fn filter(params: &[(String, String)]) -> Result<Filter, String> {
    let text = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
    };
    Ok(Filter {
        from_ms: param_u64(params, "from")?,
        to_ms: param_u64(params, "to")?,
        model: text("model"),
        provider: text("provider"),
        key_id: text("key"),
        status: text("status"),
        error_kind: text("error_kind"),
    })
}

/// Runs a store query on a blocking thread.
async fn with_store(
    gateway: Arc<Gateway>,
    query: impl FnOnce(&crate::store::Store) -> Result<Value, redb::Error> + Send + 'static,
) -> Response<ResponseBody> {
    let Some(store) = gateway.recorder.store.clone() else {
        return error(
            StatusCode::NOT_FOUND,
            "the request log is off (storage.enabled = false)",
        );
    };
    match tokio::task::spawn_blocking(move || query(&store)).await {
        Ok(Ok(Value::Null)) => error(StatusCode::NOT_FOUND, "no such request"),
        Ok(Ok(value)) => ok(value),
        Ok(Err(e)) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("reading the request log failed: {e}"),
        ),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("query failed: {e}"),
        ),
    }
}

/// Requests, errors and tokens over time, and latency/TTFT percentiles, per
/// model or provider, from the per-minute rollups.
fn timeseries(
    store: &crate::store::Store,
    from: u64,
    to: u64,
    bucket: Option<u64>,
    group_by: &str,
) -> Result<Value, redb::Error> {
    use crate::store::rollup::{self, Rollup};
    use std::collections::BTreeMap;
    // About sixty bars whatever the range, in whole minutes, or whole hours
    // once bars are an hour or longer.
    let bucket = bucket.unwrap_or_else(|| (to.saturating_sub(from) / 60).max(60_000));
    let unit = if bucket >= 3_600_000 {
        3_600_000
    } else {
        60_000
    };
    let bucket = bucket.div_ceil(unit).max(1) * unit;
    let start = from / bucket * bucket;
    let slots = (to.saturating_sub(start)).div_ceil(bucket).max(1) as usize;
    let mut series: BTreeMap<String, (Vec<Rollup>, Rollup)> = BTreeMap::new();
    let mut total = Rollup::default();
    // Hour-sized bars read the hourly rollups: a month is then 720 rows a
    // series instead of 43,200.
    let rows = if bucket % 3_600_000 == 0 {
        rollup::read_hourly(store, from, to)?
    } else {
        rollup::read(store, from, to)?
    };
    for row in rows {
        let name = match group_by {
            "provider" => row.provider.clone(),
            "none" => "all".to_string(),
            _ => row.model.clone(),
        };
        let slot = ((row.minute_ms.saturating_sub(start)) / bucket) as usize;
        let entry = series
            .entry(name)
            .or_insert_with(|| (vec![Rollup::default(); slots], Rollup::default()));
        if let Some(cell) = entry.0.get_mut(slot) {
            cell.merge(&row.rollup);
        }
        entry.1.merge(&row.rollup);
        total.merge(&row.rollup);
    }
    let summary = |name: &str, r: &Rollup| {
        // Beyond the last bound reads as "inf" (JSON has no infinity).
        let q = |h: &[u64], q: f64| match rollup::quantile(h, q) {
            Some(v) if v.is_finite() => json!(v),
            Some(_) => json!("inf"),
            None => Value::Null,
        };
        let pct = |h: &[u64]| json!({ "p50": q(h, 0.5), "p90": q(h, 0.9), "p99": q(h, 0.99) });
        json!({
            "name": name,
            "requests": r.requests,
            "errors": r.errors,
            "input_tokens": r.input_tokens,
            "output_tokens": r.output_tokens,
            "cached_tokens": r.cached_tokens,
            "reasoning_tokens": r.reasoning_tokens,
            "latency_ms": pct(&r.latency),
            "ttft_ms": pct(&r.ttft),
        })
    };
    let lines: Vec<Value> = series
        .iter()
        .map(|(name, (cells, _))| {
            let col = |f: &dyn Fn(&Rollup) -> u64| cells.iter().map(f).collect::<Vec<u64>>();
            json!({
                "name": name,
                "requests": col(&|r| r.requests),
                "errors": col(&|r| r.errors),
                "input_tokens": col(&|r| r.input_tokens),
                "output_tokens": col(&|r| r.output_tokens),
            })
        })
        .collect();
    let mut groups: Vec<Value> = series
        .iter()
        .map(|(name, (_, r))| summary(name, r))
        .collect();
    groups.sort_by_key(|g| std::cmp::Reverse(g["requests"].as_u64().unwrap_or(0)));
    Ok(json!({
        "from": from,
        "to": to,
        "bucket_ms": bucket,
        "buckets": (0..slots).map(|i| start + i as u64 * bucket).collect::<Vec<u64>>(),
        "series": lines,
        "groups": groups,
        "total": summary("total", &total),
    }))
}

fn ms(d: Option<Duration>) -> Value {
    d.map_or(Value::Null, |d| json!(d.as_millis() as u64))
}

/// Live backend state, per provider and per route.
fn backends(gateway: &Gateway) -> Value {
    let runtime = gateway.runtime.load();
    let providers: Vec<Value> = runtime
        .providers
        .iter()
        .map(|p| {
            let keys: Vec<Value> = p
                .keys
                .cooldowns()
                .into_iter()
                .enumerate()
                .map(|(i, left)| json!({"index": i, "cooldown_ms_left": ms(left), "in_rotation": left.is_none()}))
                .collect();
            json!({
                "name": p.name,
                "enabled": p.enabled,
                "adapter": p.adapter.name(),
                "dialect": p.adapter.dialect(),
                "base_url": p.base_url,
                "keys": keys,
                "all_keys_cooling": p.keys.all_cooling(),
            })
        })
        .collect();
    let models: Vec<Value> = runtime
        .models
        .iter()
        .map(|m| {
            let routes: Vec<Value> = m
                .routes
                .iter()
                .map(|r| {
                    let cooldown = r.stats.cooldown_remaining();
                    json!({
                        "enabled": r.enabled,
                        "provider": r.provider.name,
                        "upstream_model": r.upstream_model,
                        "weight": r.weight,
                        "priority": r.priority,
                        "capabilities": r.capabilities.as_ref().map(|c| {
                            let mut names = Vec::new();
                            if c.tools { names.push("tools"); }
                            if c.vision { names.push("vision"); }
                            if c.json_schema { names.push("json_schema"); }
                            names
                        }),
                        "max_context": r.max_context,
                        "healthy": cooldown.is_none() && !r.provider.keys.all_cooling(),
                        "cooldown_ms_left": ms(cooldown),
                        "in_flight": r.stats.in_flight(),
                        "attempts": r.stats.attempts.load(Ordering::Relaxed),
                        "latency_ewma_ms": f64::from(r.stats.latency_ewma_us()) / 1000.0,
                        "ttft_ewma_ms": f64::from(r.stats.ttft_ewma_us()) / 1000.0,
                        "error_rate": r.stats.error_rate(),
                    })
                })
                .collect();
            json!({
                "name": m.name,
                "enabled": m.enabled,
                "aliases": m.aliases,
                "policy": m.policy.name(),
                "fallback": m.fallback,
                "routes": routes,
            })
        })
        .collect();
    json!({"providers": providers, "models": models})
}

/// Field names whose values are secrets, wherever they appear.
fn is_secret_field(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    [
        "key",
        "token",
        "secret",
        "password",
        "authorization",
        "credential",
    ]
    .iter()
    .any(|s| name.contains(s))
}

/// Replaces every string under a secret-named field with a fingerprint.
/// `name` fields stay: they label keys, and are meant to be shown.
pub fn mask_secrets(value: &mut Value, inside_secret: bool) {
    match value {
        Value::String(s) if inside_secret => {
            *s = format!("<redacted {}>", key_fingerprint(s));
        }
        Value::Array(items) => items
            .iter_mut()
            .for_each(|v| mask_secrets(v, inside_secret)),
        Value::Object(fields) => {
            for (name, v) in fields.iter_mut() {
                let secret = (inside_secret && name != "name") || is_secret_field(name);
                mask_secrets(v, secret);
            }
        }
        _ => {}
    }
}

fn config(gateway: &Gateway) -> Value {
    let mut config = serde_json::to_value(&**gateway.config.load()).unwrap_or(Value::Null);
    mask_secrets(&mut config, false);
    json!({
        "source": gateway.config_source.describe(),
        "managed_in_store": matches!(gateway.config_source, crate::ConfigSource::Store { .. }),
        "config": config,
        "reload": *gateway.reload.lock().expect("reload lock"),
        "warnings": gateway.runtime.load().warnings,
    })
}

fn plugins(gateway: &Gateway) -> Value {
    let registry = gateway.plugins.load();
    let items: Vec<Value> = registry
        .infos()
        .iter()
        .map(|info| {
            let stats = registry.call_stats(&info.name);
            json!({
                "name": info.name,
                "world": info.world.as_str(),
                "origin": match &info.origin {
                    crate::plugins::Origin::BuiltIn => "built-in".to_string(),
                    crate::plugins::Origin::File(p) => p.display().to_string(),
                },
                "size_bytes": info.size,
                "dialect": info.dialect,
                "description": info.description,
                "embeddings": info.embeddings,
                "calls": stats.map(|s| s.calls.load(Ordering::Relaxed)),
                "traps": stats.map(|s| s.traps.load(Ordering::Relaxed)),
                "call_seconds_total": stats.map(|s| s.durations.sum().as_secs_f64()),
            })
        })
        .collect();
    json!({
        "dir": gateway.plugin_dir,
        "plugins": items,
        "load_errors": registry.errors(),
    })
}

fn status(gateway: &Gateway) -> Value {
    let store = gateway.recorder.store.as_ref().map(|s| {
        json!({
            "path": s.path(),
            "queue_depth": s.queue_depth(),
            "written": s.stats.written.load(Ordering::Relaxed),
            "dropped": s.stats.dropped.load(Ordering::Relaxed),
            "writer_pauses": s.stats.pauses.load(Ordering::Relaxed),
            "write_errors": s.stats.write_errors.load(Ordering::Relaxed),
            "expired": s.stats.expired.load(Ordering::Relaxed),
        })
    });
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_s": gateway.started.elapsed().as_secs(),
        "in_flight": gateway.recorder.metrics.in_flight.load(Ordering::Relaxed),
        "store": store,
        "reload": *gateway.reload.lock().expect("reload lock"),
    })
}

/// `GET /metrics`: the text exposition format.
pub fn metrics_response(gateway: &Gateway) -> Response<ResponseBody> {
    let mut out = String::with_capacity(16 * 1024);
    gateway.recorder.metrics.render(&mut out);
    let runtime = gateway.runtime.load();
    header(
        &mut out,
        "llmgate_backend_in_flight",
        "gauge",
        "Upstream attempts under way, per backend.",
    );
    let mut seen = std::collections::HashSet::new();
    let routes: Vec<_> = runtime
        .models
        .iter()
        .flat_map(|m| m.routes.iter())
        .filter(|r| seen.insert((r.provider.name.clone(), r.upstream_model.clone())))
        .collect();
    let backend = |r: &crate::config::Route| {
        format!(
            "provider=\"{}\",upstream_model=\"{}\"",
            esc(&r.provider.name),
            esc(&r.upstream_model)
        )
    };
    for r in &routes {
        out.push_str(&format!(
            "llmgate_backend_in_flight{{{}}} {}\n",
            backend(r),
            r.stats.in_flight()
        ));
    }
    header(
        &mut out,
        "llmgate_backend_cooling_down",
        "gauge",
        "1 while a backend is cooling down.",
    );
    for r in &routes {
        out.push_str(&format!(
            "llmgate_backend_cooling_down{{{}}} {}\n",
            backend(r),
            u8::from(r.stats.cooling_down())
        ));
    }
    header(
        &mut out,
        "llmgate_backend_error_rate",
        "gauge",
        "Moving average of a backend's failure rate.",
    );
    for r in &routes {
        out.push_str(&format!(
            "llmgate_backend_error_rate{{{}}} {}\n",
            backend(r),
            r.stats.error_rate()
        ));
    }
    header(
        &mut out,
        "llmgate_provider_keys_cooling_down",
        "gauge",
        "Provider keys out of rotation now.",
    );
    for p in &runtime.providers {
        let cooling = p.keys.cooldowns().iter().filter(|c| c.is_some()).count();
        out.push_str(&format!(
            "llmgate_provider_keys_cooling_down{{provider=\"{}\"}} {cooling}\n",
            esc(&p.name)
        ));
    }
    header(
        &mut out,
        "llmgate_plugin_calls_total",
        "counter",
        "Calls into each plugin.",
    );
    let registry = gateway.plugins.load();
    let infos = registry.infos();
    for info in infos {
        if let Some(s) = registry.call_stats(&info.name) {
            out.push_str(&format!(
                "llmgate_plugin_calls_total{{plugin=\"{}\"}} {}\n",
                esc(&info.name),
                s.calls.load(Ordering::Relaxed)
            ));
        }
    }
    header(
        &mut out,
        "llmgate_plugin_traps_total",
        "counter",
        "Plugin calls that trapped, ran out of time or memory.",
    );
    for info in infos {
        if let Some(s) = registry.call_stats(&info.name) {
            out.push_str(&format!(
                "llmgate_plugin_traps_total{{plugin=\"{}\"}} {}\n",
                esc(&info.name),
                s.traps.load(Ordering::Relaxed)
            ));
        }
    }
    header(
        &mut out,
        "llmgate_plugin_call_duration_seconds",
        "histogram",
        "Duration of plugin calls.",
    );
    for info in infos {
        if let Some(s) = registry.call_stats(&info.name) {
            let labels = format!("plugin=\"{}\"", esc(&info.name));
            metrics::render_histogram(
                &mut out,
                &s.durations,
                "llmgate_plugin_call_duration_seconds",
                &labels,
            );
        }
    }
    if let Some(store) = &gateway.recorder.store {
        header(
            &mut out,
            "llmgate_store_queue_depth",
            "gauge",
            "Request records waiting for the store writer.",
        );
        out.push_str(&format!(
            "llmgate_store_queue_depth {}\n",
            store.queue_depth()
        ));
        for (name, help, value) in [
            (
                "llmgate_store_written_total",
                "Request records committed.",
                &store.stats.written,
            ),
            (
                "llmgate_store_dropped_total",
                "Request records dropped because the writer queue was full.",
                &store.stats.dropped,
            ),
            (
                "llmgate_store_writer_pauses_total",
                "Pauses of request threads that gave the core to a store writer fallen behind.",
                &store.stats.pauses,
            ),
            (
                "llmgate_store_write_errors_total",
                "Batches of request records that failed to commit.",
                &store.stats.write_errors,
            ),
            (
                "llmgate_store_expired_total",
                "Request records deleted by retention.",
                &store.stats.expired,
            ),
        ] {
            header(&mut out, name, "counter", help);
            out.push_str(&format!("{name} {}\n", value.load(Ordering::Relaxed)));
        }
    }
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "text/plain; version=0.0.4; charset=utf-8")
        .body(full_body(Bytes::from(out)))
        .expect("static parts make a valid response")
}

fn ok(value: Value) -> Response<ResponseBody> {
    json_response(StatusCode::OK, &value)
}

fn error(status: StatusCode, message: &str) -> Response<ResponseBody> {
    json_response(status, &json!({"error": {"message": message}}))
}

fn json_response(status: StatusCode, value: &Value) -> Response<ResponseBody> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("cache-control", "no-store")
        .body(full_body(
            serde_json::to_vec(value).expect("json values serialize"),
        ))
        .expect("static parts make a valid response")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked_wherever_they_are() {
        let mut config = json!({
            "server": {"api_keys": ["sk-plain", {"name": "alice", "key": "sk-alice"}], "admin_token": "adm", "listen": "x"},
            "providers": [{"name": "p", "keys": ["sk-up"], "base_url": "u", "options": {"extra_headers": {"x-api-key": "h"}}}],
        });
        mask_secrets(&mut config, false);
        let text = config.to_string();
        for secret in ["sk-plain", "sk-alice", "\"adm\"", "sk-up", "\"h\""] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
        assert_eq!(config["server"]["api_keys"][1]["name"], "alice");
        assert_eq!(config["server"]["listen"], "x");
        assert_eq!(config["providers"][0]["name"], "p");
        assert!(text.contains("<redacted key-"), "{text}");
    }
}
