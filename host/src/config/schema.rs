//! The TOML configuration file, as written by operators. Every struct denies
//! unknown keys so a typo is an error, not a silently ignored setting.

use serde::Deserialize;

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Listener and client authentication.
    #[serde(default)]
    pub server: ServerConfig,
    /// Limits for plugin calls.
    #[serde(default)]
    pub plugins: PluginsConfig,
    /// Failover and cooldown settings.
    #[serde(default)]
    pub routing: RoutingConfig,
    /// Operator rules that reclassify upstream errors.
    #[serde(default)]
    pub error_rules: Vec<ErrorRuleConfig>,
    /// Upstream providers.
    #[serde(default)]
    pub providers: Vec<ProviderConfig>,
    /// Model aliases clients ask for, and their routes.
    #[serde(default)]
    pub models: Vec<ModelConfig>,
}

/// `[server]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Keys clients present (Bearer, `x-api-key` or `x-goog-api-key`). Empty
    /// means no authentication, which the gateway warns about at startup.
    #[serde(default)]
    pub api_keys: Vec<String>,
    /// Largest request body accepted.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// Add `x-llmgate-provider`, `x-llmgate-model` and `x-llmgate-attempts`
    /// to answers. Off by default: they tell clients about your backends.
    #[serde(default)]
    pub route_headers: bool,
}

fn default_listen() -> String {
    // Loopback: exposing a gateway that holds provider keys must be a choice.
    "127.0.0.1:7070".into()
}

fn default_max_body_bytes() -> usize {
    // Vision requests carry base64 images (OpenAI accepts up to 20 MB per
    // image); 32 MiB fits such a request and still bounds memory per request.
    32 << 20
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: default_listen(),
            api_keys: Vec::new(),
            max_body_bytes: default_max_body_bytes(),
            route_headers: false,
        }
    }
}

/// `[plugins]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginsConfig {
    /// Wall time one plugin call may take.
    #[serde(default = "default_call_timeout_ms")]
    pub call_timeout_ms: u64,
    /// Memory one plugin instance may use.
    #[serde(default = "default_max_memory_mb")]
    pub max_memory_mb: usize,
}

fn default_call_timeout_ms() -> u64 {
    crate::plugins::Limits::default().call_timeout.as_millis() as u64
}

fn default_max_memory_mb() -> usize {
    crate::plugins::Limits::default().max_memory_bytes >> 20
}

impl Default for PluginsConfig {
    fn default() -> Self {
        PluginsConfig {
            call_timeout_ms: default_call_timeout_ms(),
            max_memory_mb: default_max_memory_mb(),
        }
    }
}

/// `[routing]`: how failures are handled.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingConfig {
    /// Upstream requests per model alias before moving to its fallbacks.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// How long a key rejected as invalid (401/403) stays out of rotation.
    #[serde(default = "default_auth_cooldown_ms")]
    pub auth_cooldown_ms: u64,
    /// How long a key out of quota or credit stays out of rotation, unless
    /// the upstream says when to come back.
    #[serde(default = "default_quota_cooldown_ms")]
    pub quota_cooldown_ms: u64,
    /// How long a rate-limited key rests when the upstream gives no `Retry-After`.
    #[serde(default = "default_rate_limit_cooldown_ms")]
    pub rate_limit_cooldown_ms: u64,
    /// First cooldown of a failing backend (5xx, overloaded, unreachable,
    /// timeout); doubles with each consecutive failure.
    #[serde(default = "default_backend_cooldown_ms")]
    pub backend_cooldown_ms: u64,
    /// Longest backend cooldown.
    #[serde(default = "default_backend_cooldown_max_ms")]
    pub backend_cooldown_max_ms: u64,
}

fn default_max_attempts() -> u32 {
    // Each attempt may take up to a provider's timeout; four covers a
    // primary, its second key and two backups while bounding the wait.
    4
}

fn default_auth_cooldown_ms() -> u64 {
    // A revoked key stays revoked; retrying it every few minutes notices a fix.
    300_000
}

fn default_quota_cooldown_ms() -> u64 {
    // Quotas and credit come back on the scale of hours (billing cycles,
    // daily limits), so probing more often only burns latency.
    3_600_000
}

fn default_rate_limit_cooldown_ms() -> u64 {
    // Per-minute limits are the common case; 10 s lets most windows slide.
    10_000
}

fn default_backend_cooldown_ms() -> u64 {
    // Short enough that one blip costs little, long enough that a burst of
    // requests does not pile onto a backend that just failed.
    5_000
}

fn default_backend_cooldown_max_ms() -> u64 {
    120_000
}

impl Default for RoutingConfig {
    fn default() -> Self {
        RoutingConfig {
            max_attempts: default_max_attempts(),
            auth_cooldown_ms: default_auth_cooldown_ms(),
            quota_cooldown_ms: default_quota_cooldown_ms(),
            rate_limit_cooldown_ms: default_rate_limit_cooldown_ms(),
            backend_cooldown_ms: default_backend_cooldown_ms(),
            backend_cooldown_max_ms: default_backend_cooldown_max_ms(),
        }
    }
}

/// One `[[error_rules]]` entry: upstream answers that match get `kind`,
/// whatever the adapter said. Rules are checked in order; the first match wins.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorRuleConfig {
    /// Only for this provider (default: all).
    #[serde(default)]
    pub provider: Option<String>,
    /// HTTP status: exact (`"402"`) or a class (`"5xx"`). Default: any.
    #[serde(default)]
    pub status: Option<String>,
    /// A substring of the response body (case-insensitive). Default: any.
    #[serde(default)]
    pub body_contains: Option<String>,
    /// The kind to assign: bad_request, auth, forbidden, not_found,
    /// context_length, content_filter, rate_limited, quota_exhausted,
    /// overloaded, timeout, upstream.
    pub kind: String,
}

/// One `[[providers]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// Unique name routes refer to.
    pub name: String,
    /// The adapter plugin's name.
    pub adapter: String,
    /// Base URL as the vendor's own SDK takes it (e.g. `https://api.openai.com/v1`).
    pub base_url: String,
    /// API keys, used in rotation. Empty for servers without auth.
    #[serde(default)]
    pub keys: Vec<String>,
    /// Total time for a non-streamed request.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Time to establish a connection.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Longest silence allowed inside a stream.
    #[serde(default = "default_stream_idle_timeout_ms")]
    pub stream_idle_timeout_ms: u64,
    /// Adapter options, passed to the plugin as JSON.
    #[serde(default)]
    pub options: toml::Table,
}

fn default_timeout_ms() -> u64 {
    // Long answers from reasoning models take minutes; ten is what the
    // official SDKs allow by default.
    600_000
}

fn default_connect_timeout_ms() -> u64 {
    // A healthy provider connects in well under a second; waiting longer only
    // delays failover to the next backend.
    10_000
}

fn default_stream_idle_timeout_ms() -> u64 {
    // Providers send keep-alive pings during long thinking phases (Anthropic
    // every ~15 s); two minutes of nothing means the stream is dead.
    120_000
}

/// One `[[models]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// The name clients ask for.
    pub name: String,
    /// Other names for the same thing.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// The policy plugin ordering this model's routes.
    #[serde(default = "default_policy")]
    pub policy: String,
    /// Policy options, passed to the plugin as JSON.
    #[serde(default)]
    pub policy_options: toml::Table,
    /// Aliases to try, in order, when every route of this one failed.
    #[serde(default)]
    pub fallback: Vec<String>,
    /// Overrides `routing.max_attempts` for this alias.
    #[serde(default)]
    pub max_attempts: Option<u32>,
    /// Backends serving this model.
    pub routes: Vec<RouteConfig>,
}

fn default_policy() -> String {
    "weighted".into()
}

/// One route of a model.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// A provider's name.
    pub provider: String,
    /// The model name sent upstream.
    pub model: String,
    /// Share of traffic under weighted policies.
    #[serde(default = "one")]
    pub weight: u32,
    /// Lower is preferred under priority policies.
    #[serde(default = "one")]
    pub priority: u32,
    /// What this backend supports, from `tools`, `vision`, `json_schema`.
    /// Absent: everything (requests are not checked against this route).
    #[serde(default)]
    pub capabilities: Option<Vec<String>>,
    /// The backend's context window in tokens; requests estimated larger skip it.
    #[serde(default)]
    pub max_context: Option<u32>,
}

fn one() -> u32 {
    1
}
