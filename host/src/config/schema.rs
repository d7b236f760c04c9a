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
}

fn one() -> u32 {
    1
}
