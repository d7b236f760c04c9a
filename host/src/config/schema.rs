//! The TOML configuration file, as written by operators. Every struct denies
//! unknown keys so a typo is an error, not a silently ignored setting.

use serde::{Deserialize, Serialize};

/// The whole file.
#[derive(Debug, Clone, Deserialize, Serialize)]
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
    /// Where request records are kept.
    #[serde(default)]
    pub storage: StorageConfig,
    /// Request and response bodies in the request log (off by default).
    #[serde(default)]
    pub capture: CaptureConfig,
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
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Keys clients present (Bearer, `x-api-key` or `x-goog-api-key`). Empty
    /// means no authentication, which the gateway warns about at startup.
    #[serde(default)]
    pub api_keys: Vec<ClientKeyConfig>,
    /// Token for `/admin/api/` (as `Authorization: Bearer`). Unset: the
    /// admin API answers 401 to everyone. Client keys never open it.
    #[serde(default)]
    pub admin_token: Option<String>,
    /// How long shutdown waits for requests in flight, streams included.
    #[serde(default = "default_shutdown_grace_ms")]
    pub shutdown_grace_ms: u64,
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

fn default_shutdown_grace_ms() -> u64 {
    // Long enough for most streamed answers to finish; short enough for
    // process supervisors, which kill after 30 s or more by default.
    25_000
}

/// One client key: the key alone, or with a name that the request log and
/// metrics show (otherwise they show `key-` and a hash of the key).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum ClientKeyConfig {
    /// `"sk-..."`.
    Plain(String),
    /// `{ name = "alice", key = "sk-..." }`.
    Named {
        /// Shown in logs and metrics instead of the key.
        name: String,
        /// The key.
        key: String,
    },
}

impl ClientKeyConfig {
    /// The key itself.
    pub fn key(&self) -> &str {
        match self {
            ClientKeyConfig::Plain(key) | ClientKeyConfig::Named { key, .. } => key,
        }
    }

    /// The key, to resolve `${VAR}` in place.
    pub fn key_mut(&mut self) -> &mut String {
        match self {
            ClientKeyConfig::Plain(key) | ClientKeyConfig::Named { key, .. } => key,
        }
    }
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
            admin_token: None,
            shutdown_grace_ms: default_shutdown_grace_ms(),
            max_body_bytes: default_max_body_bytes(),
            route_headers: false,
        }
    }
}

/// `[storage]`: the request log.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// Record requests at all.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The redb file. Relative paths are taken from `$LLMGATE_DATA_DIR` when
    /// set, else from the config file's directory.
    #[serde(default = "default_storage_path")]
    pub path: String,
    /// Records older than this many days are deleted.
    #[serde(default = "default_retention_days")]
    pub retention_days: u32,
    /// At most this many records are kept; the oldest go first.
    #[serde(default = "default_max_records")]
    pub max_records: u64,
    /// Records waiting for the writer; beyond this, new ones are dropped
    /// (and counted) rather than slowing requests down.
    #[serde(default = "default_queue_capacity")]
    pub queue_capacity: usize,
    /// How often the writer commits what is queued (visible to the admin API).
    #[serde(default = "default_flush_interval_ms")]
    pub flush_interval_ms: u64,
    /// How often a commit is made durable (fsync); the commits between are
    /// not, and a kill -9 loses at most this plus `flush_interval_ms`.
    #[serde(default = "default_sync_interval_ms")]
    pub sync_interval_ms: u64,
    /// Memory redb may use to cache pages of the file.
    #[serde(default = "default_cache_mb")]
    pub cache_mb: usize,
}

fn default_cache_mb() -> usize {
    // The log is written far more than read: the writer needs the pages it
    // appends to, the console reads a few rollups. redb's own default (1 GiB)
    // made a gateway's memory grow with its log.
    16
}

fn yes() -> bool {
    true
}

fn default_storage_path() -> String {
    "llmgate.redb".into()
}

fn default_retention_days() -> u32 {
    // A month covers a billing cycle, which is what usage questions are about.
    30
}

fn default_max_records() -> u64 {
    // About 1 KB a record: a million is ~1 GB of disk at most.
    1_000_000
}

fn default_queue_capacity() -> usize {
    // Ten seconds of 5000 requests/s: room for a slow disk to catch up.
    50_000
}

fn default_flush_interval_ms() -> u64 {
    // A commit per interval, not per request: records show in the admin
    // API within a fifth of a second.
    200
}

fn default_sync_interval_ms() -> u64 {
    // Each fsync sets off a burst of kernel work (writeback, then ext4's
    // completion work) that delays requests on every core; one per 600 ms
    // instead of one per commit cut the store's share of the p99. With the
    // flush interval, a kill -9 loses at most 0.8 s of records.
    600
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            enabled: true,
            path: default_storage_path(),
            retention_days: default_retention_days(),
            max_records: default_max_records(),
            queue_capacity: default_queue_capacity(),
            flush_interval_ms: default_flush_interval_ms(),
            sync_interval_ms: default_sync_interval_ms(),
            cache_mb: default_cache_mb(),
        }
    }
}

/// `[capture]`: keeping request and response bodies with the request
/// records, for debugging clients and translations. Off by default: bodies
/// are the users' prompts.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CaptureConfig {
    /// Capture for every model (a model's `capture_bodies` overrides).
    #[serde(default)]
    pub bodies: bool,
    /// Bytes kept per body; the rest is cut (and the record says so).
    #[serde(default = "default_capture_max_bytes")]
    pub max_bytes: usize,
    /// Regular expressions whose matches are replaced by `<redacted>`.
    /// Client and provider keys are always masked.
    #[serde(default)]
    pub mask: Vec<String>,
}

fn default_capture_max_bytes() -> usize {
    // Enough for a long conversation's last turns; a million records of
    // this stay within a few tens of GB at most.
    64 << 10
}

impl Default for CaptureConfig {
    fn default() -> Self {
        CaptureConfig {
            bodies: false,
            max_bytes: default_capture_max_bytes(),
            mask: Vec::new(),
        }
    }
}

/// `[plugins]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PluginsConfig {
    /// A directory of extra `.wasm` components, watched while the gateway
    /// runs: each is usable by its file name (without `.wasm`). Relative to
    /// the config file.
    #[serde(default)]
    pub dir: Option<String>,
    /// Where compiled plugin code is cached, so restarts skip compiling.
    /// Relative paths are under `$LLMGATE_DATA_DIR`, else beside the config
    /// file; empty turns the cache off.
    #[serde(default = "default_plugin_cache_dir")]
    pub cache_dir: String,
    /// Wall time one plugin call may take.
    #[serde(default = "default_call_timeout_ms")]
    pub call_timeout_ms: u64,
    /// Memory one plugin instance may use.
    #[serde(default = "default_max_memory_mb")]
    pub max_memory_mb: usize,
}

fn default_plugin_cache_dir() -> String {
    "plugin-cache".into()
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
            dir: None,
            cache_dir: default_plugin_cache_dir(),
            call_timeout_ms: default_call_timeout_ms(),
            max_memory_mb: default_max_memory_mb(),
        }
    }
}

/// `[routing]`: how failures are handled.
#[derive(Debug, Clone, Deserialize, Serialize)]
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
#[derive(Debug, Clone, Deserialize, Serialize)]
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
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// Unique name routes refer to.
    pub name: String,
    /// `false` takes the provider out of service (its routes get no
    /// traffic) without deleting it.
    #[serde(default = "yes")]
    pub enabled: bool,
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
    /// Extra headers sent on every request to this provider (e.g.
    /// OpenRouter's `HTTP-Referer`); headers the adapter sets win.
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, String>,
    /// Reach the provider through this proxy: `http://`, `https://`,
    /// `socks5://` or `socks5h://` (the proxy resolves names), with
    /// `user:password@` if it needs them. Unset: `HTTPS_PROXY` and
    /// `NO_PROXY` from the environment apply; `""`: never a proxy.
    #[serde(default)]
    pub proxy: Option<String>,
    /// Run a connectivity check (a one-token completion per key) this
    /// often; unset: only on demand from the admin API.
    #[serde(default)]
    pub health_check_interval_s: Option<u64>,
    /// The model connectivity checks ask for; default: the first route's.
    #[serde(default)]
    pub health_check_model: Option<String>,
    /// Check the provider's TLS certificate. Turning this off lets anyone on
    /// the path read the API keys; the gateway warns at every load.
    #[serde(default = "yes")]
    pub tls_verify: bool,
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
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// The name clients ask for.
    pub name: String,
    /// `false` takes the model (and its aliases) out of service: requests
    /// for it are refused and `/v1/models` leaves it out.
    #[serde(default = "yes")]
    pub enabled: bool,
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
    /// Overrides `capture.bodies` for this alias.
    #[serde(default)]
    pub capture_bodies: Option<bool>,
    /// Backends serving this model.
    pub routes: Vec<RouteConfig>,
}

fn default_policy() -> String {
    "weighted".into()
}

/// One route of a model.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// A provider's name.
    pub provider: String,
    /// `false` takes this route out of service.
    #[serde(default = "yes")]
    pub enabled: bool,
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
