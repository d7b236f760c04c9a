//! The HTTP front: accepting connections, routing paths to dialect
//! endpoints, authenticating clients, reading bodies within limits, and
//! graceful shutdown. What happens to a chat request is in [`crate::proxy`].

use std::convert::Infallible;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tracing::Instrument;

use crate::ConfigSource;
use crate::balance::StatsTable;
use crate::config::{ConfigFile, Runtime};
use crate::error::GatewayError;
use crate::plugins::{AdapterPlugin, Header, PluginRegistry};
use crate::proxy::record::Recorder;
use crate::proxy::{self, Call};
use crate::reload::ReloadStatus;

/// Response bodies: whole or streamed.
pub type ResponseBody = UnsyncBoxBody<Bytes, std::io::Error>;

/// A whole response body.
pub fn full_body(bytes: impl Into<Bytes>) -> ResponseBody {
    Full::new(bytes.into())
        .map_err(|never: Infallible| match never {})
        .boxed_unsync()
}

/// The running gateway: plugins, live stats, the current config, and where
/// request records go.
pub struct Gateway {
    /// The compiled config; swapped whole on reload.
    pub runtime: ArcSwap<Runtime>,
    /// The config as written (secrets resolved), for the admin API.
    pub config: ArcSwap<ConfigFile>,
    /// The config as it was at start: settings read only then.
    pub started_config: ConfigFile,
    /// Where the config comes from.
    pub config_source: ConfigSource,
    /// The config text last seen, to notice changes.
    pub last_config_text: Mutex<String>,
    /// The last reload's outcome.
    pub reload: Mutex<ReloadStatus>,
    /// Loaded plugins; swapped when the plugin directory changes.
    pub plugins: ArcSwap<PluginRegistry>,
    /// The plugin directory, if one is configured.
    pub plugin_dir: Option<PathBuf>,
    /// Backend stats and key cooldowns, kept across reloads.
    pub stats: Arc<StatsTable>,
    /// The request store and the metrics.
    pub recorder: Arc<Recorder>,
    /// The last connectivity check of each provider.
    pub health: crate::health::HealthTable,
    /// When the gateway started.
    pub started: Instant,
}

/// Serves until `shutdown` resolves, then drains connections.
pub async fn serve(
    gateway: Arc<Gateway>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let grace = gateway.runtime.load().shutdown_grace;
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (socket, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: wait, do not spin.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = socket.set_nodelay(true);
        let gateway = Arc::clone(&gateway);
        let service = service_fn(move |req| handle(Arc::clone(&gateway), req));
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            // Slow-loris guard: a client gets this long to send its headers.
            .header_read_timeout(Duration::from_secs(30))
            .serve_connection(TokioIo::new(socket), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!("connection ended with an error: {e}");
            }
        });
    }
    drop(listener);
    tracing::info!("shutting down: waiting up to {grace:?} for requests in flight");
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("shutdown grace period over; closing remaining connections");
    }
    Ok(())
}

/// What a request path asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Endpoint {
    Health,
    /// Prometheus metrics.
    Metrics,
    /// The admin API (`/admin/api/...`).
    Admin,
    /// The admin console's files (`/ui/...`).
    Ui,
    /// The model list, in a dialect's shape.
    Models(&'static str),
    /// A chat request in a dialect (`openai` chat completions, `anthropic` messages).
    Chat(&'static str),
    /// A Gemini generateContent call: the model and the stream choice are in the path.
    Generate {
        model: String,
        stream: bool,
    },
    /// Token counting: Anthropic's `count_tokens`, Gemini's `:countTokens`
    /// (whose model is in the path).
    CountTokens {
        dialect: &'static str,
        path_model: Option<String>,
    },
    /// Embeddings: OpenAI's `/embeddings`, Gemini's `:embedContent` and
    /// `:batchEmbedContents` (whose model is in the path).
    Embed {
        dialect: &'static str,
        path_model: Option<String>,
    },
    /// Nothing here; errors in this dialect.
    Unknown(&'static str),
}

/// Which dialect a client speaks when the path alone does not say: Anthropic
/// and Gemini clients also call `/v1/models`, each with its own key header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientHint {
    None,
    Anthropic,
    Gemini,
}

impl ClientHint {
    fn of(headers: &http::HeaderMap) -> ClientHint {
        if headers.contains_key("anthropic-version") {
            ClientHint::Anthropic
        } else if headers.contains_key("x-goog-api-key") {
            ClientHint::Gemini
        } else {
            ClientHint::None
        }
    }
}

/// Maps method and path to an endpoint.
fn endpoint(method: &Method, path: &str, hint: ClientHint) -> Endpoint {
    let path = path.trim_end_matches('/');
    let dialect = match hint {
        _ if path.starts_with("/anthropic/") => "anthropic",
        // `/v1beta/openai/` is Gemini's OpenAI-compatible layer: OpenAI clients.
        _ if path.starts_with("/v1beta/openai/") => "openai",
        _ if path.starts_with("/gemini/") || path.starts_with("/v1beta/") => "gemini",
        ClientHint::Anthropic => "anthropic",
        ClientHint::Gemini => "gemini",
        ClientHint::None => "openai",
    };
    if path == "/admin/api" || path.starts_with("/admin/api/") {
        return Endpoint::Admin;
    }
    if method == Method::GET && (path == "/ui" || path.starts_with("/ui/")) {
        return Endpoint::Ui;
    }
    match (method, path) {
        (&Method::GET, "/health" | "/healthz") => Endpoint::Health,
        (&Method::GET, "/metrics") => Endpoint::Metrics,
        (&Method::GET, "/v1/models" | "/openai/v1/models") => Endpoint::Models(dialect),
        (&Method::GET, "/anthropic/v1/models") => Endpoint::Models("anthropic"),
        (&Method::POST, "/v1/chat/completions" | "/openai/v1/chat/completions") => {
            Endpoint::Chat("openai")
        }
        (&Method::POST, "/v1/messages" | "/anthropic/v1/messages") => Endpoint::Chat("anthropic"),
        (&Method::POST, "/v1/messages/count_tokens" | "/anthropic/v1/messages/count_tokens") => {
            Endpoint::CountTokens {
                dialect: "anthropic",
                path_model: None,
            }
        }
        (&Method::GET, "/v1beta/models" | "/gemini/v1beta/models") => Endpoint::Models("gemini"),
        (&Method::GET, _) if openai_call(path) == Some("/models") => Endpoint::Models(dialect),
        (&Method::POST, _) if openai_call(path) == Some("/chat/completions") => {
            Endpoint::Chat("openai")
        }
        (&Method::POST, _) if openai_call(path) == Some("/responses") => {
            Endpoint::Chat("responses")
        }
        (&Method::POST, _) if openai_call(path) == Some("/embeddings") => Endpoint::Embed {
            dialect: "openai",
            path_model: None,
        },
        (&Method::POST, _) => match gemini_call(path) {
            Some((model, GeminiMethod::Generate)) => Endpoint::Generate {
                model: model.to_string(),
                stream: false,
            },
            Some((model, GeminiMethod::Stream)) => Endpoint::Generate {
                model: model.to_string(),
                stream: true,
            },
            Some((model, GeminiMethod::Count)) => Endpoint::CountTokens {
                dialect: "gemini",
                path_model: Some(model.to_string()),
            },
            Some((model, GeminiMethod::Embed)) => Endpoint::Embed {
                dialect: "gemini",
                path_model: Some(model.to_string()),
            },
            None => Endpoint::Unknown(dialect),
        },
        _ => Endpoint::Unknown(dialect),
    }
}

/// The OpenAI endpoint a path names under any version-like prefix, as
/// clients configured for other services send them: `/v1/chat/completions`,
/// `/v1beta/openai/chat/completions` (Gemini's OpenAI layer),
/// `/api/v1/...` (OpenRouter), `/openai/v1/...`, `/v2/...`. The prefix must
/// contain a version segment (`v1`, `v2`, `v1beta`), so `/chat/completions`
/// alone or `/admin/models` are not taken.
fn openai_call(path: &str) -> Option<&'static str> {
    let (prefix, endpoint) = ["/chat/completions", "/models", "/embeddings", "/responses"]
        .iter()
        .find_map(|e| path.strip_suffix(e).map(|p| (p, *e)))?;
    let segments: Vec<&str> = prefix.split('/').skip(1).collect();
    let version_like = |s: &str| {
        s.strip_prefix('v').is_some_and(|rest| {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            digits > 0 && matches!(&rest[digits..], "" | "alpha" | "beta")
        })
    };
    let tidy = |s: &&str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    };
    (segments.len() <= 3 && segments.iter().all(tidy) && segments.iter().any(|s| version_like(s)))
        .then_some(endpoint)
}

/// `/v1beta/models/{model}:generateContent`, `:streamGenerateContent` or
/// `:countTokens` (also `/v1/...`, which google-genai uses, and under
/// `/gemini/`): the model and the method.
fn gemini_call(path: &str) -> Option<(&str, GeminiMethod)> {
    let rest = path.strip_prefix("/gemini").unwrap_or(path);
    let call = rest
        .strip_prefix("/v1beta/models/")
        .or_else(|| rest.strip_prefix("/v1/models/"))?;
    let (model, method) = call.rsplit_once(':')?;
    let method = match method {
        "generateContent" => GeminiMethod::Generate,
        "streamGenerateContent" => GeminiMethod::Stream,
        "countTokens" => GeminiMethod::Count,
        "embedContent" | "batchEmbedContents" => GeminiMethod::Embed,
        _ => return None,
    };
    (!model.is_empty() && !model.contains('/')).then_some((model, method))
}

/// The Gemini methods llmgate serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GeminiMethod {
    Generate,
    Stream,
    Count,
    Embed,
}

/// Routes one request.
async fn handle(
    gateway: Arc<Gateway>,
    req: Request<Incoming>,
) -> Result<Response<ResponseBody>, Infallible> {
    let started = Instant::now();
    let runtime = gateway.runtime.load_full();
    let endpoint = endpoint(
        req.method(),
        req.uri().path(),
        ClientHint::of(req.headers()),
    );
    let dialect = match endpoint {
        Endpoint::Models(d) | Endpoint::Chat(d) | Endpoint::Unknown(d) => d,
        Endpoint::Generate { .. } => "gemini",
        Endpoint::CountTokens { dialect, .. } | Endpoint::Embed { dialect, .. } => dialect,
        Endpoint::Health | Endpoint::Metrics | Endpoint::Admin | Endpoint::Ui => "openai",
    };
    let Some(ingress) = runtime.ingress(dialect).cloned() else {
        return Ok(plain_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("the {dialect} plugin is not loaded"),
        ));
    };
    let response = match endpoint {
        Endpoint::Health => json_response(StatusCode::OK, br#"{"status":"ok"}"#.to_vec()),
        Endpoint::Metrics => crate::admin::metrics_response(&gateway),
        Endpoint::Ui => crate::ui::asset(req.uri().path()),
        Endpoint::Admin => crate::admin::handle(Arc::clone(&gateway), req).await,
        Endpoint::Models(dialect) => match authenticate(&runtime, &req) {
            Ok(_) => list_models(&runtime, dialect),
            Err(err) => proxy::error_response(&ingress, &err),
        },
        Endpoint::Chat(_) | Endpoint::Generate { .. } | Endpoint::Embed { .. } => {
            let req_strict = req
                .headers()
                .get("x-llmgate-strict")
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"));
            let beta_headers = beta_headers(req.headers(), dialect);
            match read_request(&runtime, req).await {
                Ok((key_id, body)) => {
                    let id = crate::store::new_request_id();
                    let span = tracing::info_span!("request", id = %id);
                    let mut call = Call {
                        id,
                        key_id,
                        recorder: Arc::clone(&gateway.recorder),
                        ingress,
                        body,
                        started,
                        route_headers: runtime.route_headers,
                        strict: req_strict,
                        beta_headers,
                        path_route: None,
                    };
                    match endpoint {
                        Endpoint::Embed { path_model, .. } => {
                            proxy::embeddings(runtime, call, path_model)
                                .instrument(span)
                                .await
                        }
                        Endpoint::Generate { model, stream } => {
                            call.path_route = Some((model, stream));
                            proxy::chat(runtime, call).instrument(span).await
                        }
                        _ => proxy::chat(runtime, call).instrument(span).await,
                    }
                }
                Err(err) => proxy::error_response(&ingress, &err),
            }
        }
        Endpoint::CountTokens {
            dialect,
            path_model,
        } => match read_request(&runtime, req).await {
            Ok((_, body)) => count_tokens(&runtime, &ingress, dialect, path_model, body).await,
            Err(err) => proxy::error_response(&ingress, &err),
        },
        Endpoint::Unknown(_) => proxy::error_response(
            &ingress,
            &GatewayError::NoRoute {
                method: req.method().to_string(),
                path: req.uri().path().to_string(),
            },
        ),
    };
    Ok(response)
}

/// The client's `<dialect>-beta` headers (`anthropic-beta`, `openai-beta`).
/// Beta flags describe the shape of the request body (Claude Code's
/// `context_management` needs its `anthropic-beta` flag), so a body passed
/// through natively takes its client's flags along; other client headers
/// (organisation, project) belong to the client's account, not the gateway's.
fn beta_headers(headers: &http::HeaderMap, dialect: &str) -> Vec<Header> {
    // Static names: no allocation on the (usual) requests without one.
    let name = match dialect {
        "anthropic" => "anthropic-beta",
        "openai" | "responses" => "openai-beta",
        _ => return Vec::new(),
    };
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|v| Header {
            name: name.to_string(),
            value: v.to_string(),
        })
        .collect()
}

/// Token counting, answered in the client's dialect.
async fn count_tokens(
    runtime: &Runtime,
    ingress: &AdapterPlugin,
    dialect: &str,
    path_model: Option<String>,
    body: Bytes,
) -> Response<ResponseBody> {
    let model_name = match path_model {
        Some(m) => Ok(m),
        None => proxy::summarize(&body).map(|s| s.model.unwrap_or_default().into_owned()),
    };
    let result = match model_name {
        Ok(name) => match runtime.model(&name) {
            Some(model) => proxy::count_tokens(model, ingress, &body).await,
            None => Err(GatewayError::UnknownModel(name)),
        },
        Err(err) => Err(err),
    };
    match result {
        Ok(tokens) => {
            let body = match dialect {
                "gemini" => serde_json::json!({ "totalTokens": tokens }),
                _ => serde_json::json!({ "input_tokens": tokens }),
            };
            json_response(
                StatusCode::OK,
                serde_json::to_vec(&body).expect("json! values serialize"),
            )
        }
        Err(err) => proxy::error_response(ingress, &err),
    }
}

/// Checks the client key, then reads the body within `max_body_bytes`.
/// Returns the key's id and the body.
async fn read_request(
    runtime: &Runtime,
    req: Request<Incoming>,
) -> Result<(Arc<str>, Bytes), GatewayError> {
    let key_id = authenticate(runtime, &req)?;
    let limit = runtime.max_body_bytes;
    let declared = req
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(GatewayError::BodyTooLarge { limit });
    }
    let collected = Limited::new(req.into_body(), limit)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                GatewayError::BodyTooLarge { limit }
            } else {
                GatewayError::BadRequest(format!("reading the request body failed: {e}"))
            }
        })?;
    Ok((key_id, collected.to_bytes()))
}

/// The client key from `Authorization: Bearer`, `x-api-key` (Anthropic
/// clients), `x-goog-api-key` or the `key` query parameter (Gemini clients).
fn client_key<B>(req: &Request<B>) -> Option<&str> {
    let headers = req.headers();
    if let Some(value) = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let value = value.trim();
        if value.len() > 7 && value[..7].eq_ignore_ascii_case("bearer ") {
            return Some(value[7..].trim());
        }
    }
    ["x-api-key", "x-goog-api-key"]
        .iter()
        .find_map(|name| headers.get(*name).and_then(|v| v.to_str().ok()))
        .or_else(|| {
            req.uri()
                .query()?
                .split('&')
                .find_map(|pair| pair.strip_prefix("key="))
        })
}

/// The id of the client's key, or 401.
fn authenticate<B>(runtime: &Runtime, req: &Request<B>) -> Result<Arc<str>, GatewayError> {
    runtime
        .client_key_id(client_key(req))
        .ok_or(GatewayError::Unauthorized)
}

/// `GET /v1/models`: the configured names and aliases, in the client's shape.
fn list_models(runtime: &Runtime, dialect: &str) -> Response<ResponseBody> {
    // Disabled models are left out: a client could not use them. The admin
    // API lists them with `enabled: false`.
    let names: Vec<&String> = runtime
        .models
        .iter()
        .filter(|m| m.enabled && m.routes.iter().any(|r| r.enabled))
        .flat_map(|m| std::iter::once(&m.name).chain(&m.aliases))
        .collect();
    let body = if dialect == "gemini" {
        let models: Vec<serde_json::Value> = names
            .iter()
            .map(|id| {
                serde_json::json!({"name": format!("models/{id}"), "displayName": id,
                    "supportedGenerationMethods": ["generateContent", "streamGenerateContent"]})
            })
            .collect();
        serde_json::json!({ "models": models })
    } else if dialect == "anthropic" {
        let data: Vec<serde_json::Value> = names
            .iter()
            .map(|id| {
                serde_json::json!({"type": "model", "id": id, "display_name": id,
                    "created_at": "1970-01-01T00:00:00Z"})
            })
            .collect();
        serde_json::json!({
            "data": data, "has_more": false,
            "first_id": names.first(), "last_id": names.last(),
        })
    } else {
        let data: Vec<serde_json::Value> = names
            .iter()
            .map(|id| serde_json::json!({"id": id, "object": "model", "created": 0, "owned_by": "llmgate"}))
            .collect();
        serde_json::json!({"object": "list", "data": data})
    };
    json_response(
        StatusCode::OK,
        serde_json::to_vec(&body).expect("json! values serialize"),
    )
}

fn json_response(status: StatusCode, body: Vec<u8>) -> Response<ResponseBody> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(full_body(body))
        .expect("static parts make a valid response")
}

fn plain_error(status: StatusCode, message: &str) -> Response<ResponseBody> {
    let body = serde_json::json!({"error": {"message": message, "type": "server_error"}});
    json_response(
        status,
        serde_json::to_vec(&body).expect("json! values serialize"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(header: &str, value: &str) -> Request<()> {
        Request::builder().header(header, value).body(()).unwrap()
    }

    #[test]
    fn paths_map_to_dialect_endpoints() {
        assert_eq!(
            endpoint(&Method::POST, "/v1/messages", ClientHint::None),
            Endpoint::Chat("anthropic")
        );
        assert_eq!(
            endpoint(&Method::POST, "/anthropic/v1/messages/", ClientHint::None),
            Endpoint::Chat("anthropic")
        );
        assert_eq!(
            endpoint(&Method::POST, "/v1/chat/completions", ClientHint::None),
            Endpoint::Chat("openai")
        );
        assert_eq!(
            endpoint(&Method::GET, "/v1/models", ClientHint::Anthropic),
            Endpoint::Models("anthropic")
        );
        assert_eq!(
            endpoint(&Method::GET, "/v1/models", ClientHint::None),
            Endpoint::Models("openai")
        );
        assert_eq!(
            endpoint(&Method::GET, "/anthropic/v1/nope", ClientHint::None),
            Endpoint::Unknown("anthropic")
        );
        assert_eq!(
            endpoint(&Method::GET, "/v1/chat/completions", ClientHint::None),
            Endpoint::Unknown("openai")
        );
    }

    #[test]
    fn openai_paths_work_under_any_version_prefix() {
        for path in [
            "/v1/chat/completions",
            "/v1beta/openai/chat/completions",
            "/v2/chat/completions",
            "/api/v1/chat/completions",
            "/openai/v1/chat/completions/",
        ] {
            assert_eq!(
                endpoint(&Method::POST, path, ClientHint::None),
                Endpoint::Chat("openai"),
                "{path}"
            );
        }
        assert_eq!(
            endpoint(&Method::GET, "/api/v1/models", ClientHint::None),
            Endpoint::Models("openai")
        );
        assert_eq!(
            endpoint(&Method::GET, "/v1beta/openai/models", ClientHint::None),
            Endpoint::Models("openai")
        );
        assert_eq!(
            endpoint(&Method::GET, "/v1beta/models", ClientHint::None),
            Endpoint::Models("gemini"),
            "Gemini's own list stays Gemini's"
        );
        for path in [
            "/chat/completions",
            "/admin/chat/completions",
            "/x/y/z/v1/chat/completions",
        ] {
            assert_eq!(
                endpoint(&Method::POST, path, ClientHint::None),
                Endpoint::Unknown("openai"),
                "{path}"
            );
        }
    }

    #[test]
    fn client_keys_come_from_any_dialects_header() {
        assert_eq!(
            client_key(&request("authorization", "Bearer sk-1")),
            Some("sk-1")
        );
        assert_eq!(
            client_key(&request("authorization", "bearer  sk-1 ")),
            Some("sk-1")
        );
        assert_eq!(client_key(&request("x-api-key", "sk-2")), Some("sk-2"));
        assert_eq!(client_key(&request("x-goog-api-key", "sk-3")), Some("sk-3"));
        assert_eq!(client_key(&request("authorization", "Basic abc")), None);
        let with_query = Request::builder()
            .uri("/v1beta/models/m:generateContent?alt=sse&key=sk-4")
            .body(())
            .unwrap();
        assert_eq!(client_key(&with_query), Some("sk-4"));
    }
}
