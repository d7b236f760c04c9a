//! The validated, compiled configuration the request path reads: providers
//! with their HTTP clients and key rings, model aliases resolved to routes
//! with live stats, plugins looked up once. Built whole or not at all.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use super::schema::{ClientKeyConfig, ErrorRuleConfig, RoutingConfig};
use super::{ConfigError, ConfigFile};
use crate::balance::{BackendStats, KeyRing, StatsTable};
use crate::plugins::{AdapterPlugin, ErrorKind, PluginRegistry, PolicyPlugin, RequestProfile};

/// The running configuration.
pub struct Runtime {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Keys clients may present; empty means open.
    pub api_keys: Vec<ClientKey>,
    /// Token for the admin API; `None` keeps it closed.
    pub admin_token: Option<String>,
    /// How long shutdown waits for requests in flight.
    pub shutdown_grace: Duration,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// Whether answers carry the route headers.
    pub route_headers: bool,
    /// Failover and cooldown settings.
    pub routing: Routing,
    /// Providers, in config order.
    pub providers: Vec<Arc<Provider>>,
    /// Models, in config order.
    pub models: Vec<Arc<Model>>,
    by_name: HashMap<String, Arc<Model>>,
    /// The adapters that speak each client dialect.
    ingress: HashMap<String, Arc<AdapterPlugin>>,
    /// Things worth a warning that are not errors.
    pub warnings: Vec<String>,
}

/// A key clients may present, and the id records show instead of it.
pub struct ClientKey {
    /// The configured name, or `key-` and the first 8 hex digits of the
    /// key's SHA-256: stable across restarts, useless to an attacker.
    pub id: Arc<str>,
    key: String,
}

impl ClientKey {
    fn new(config: &ClientKeyConfig) -> Self {
        let id = match config {
            ClientKeyConfig::Named { name, .. } => name.clone(),
            ClientKeyConfig::Plain(key) => key_fingerprint(key),
        };
        ClientKey {
            id: id.into(),
            key: config.key().to_string(),
        }
    }
}

/// `key-` and 8 hex digits of the key's SHA-256.
pub fn key_fingerprint(key: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(key.as_bytes());
    let hex: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    format!("key-{hex}")
}

/// How bodies are captured: size cap and what to mask.
pub struct Capture {
    /// Bytes kept per body.
    pub max_bytes: usize,
    /// Every client and provider key, replaced wherever it appears.
    secrets: Vec<String>,
    /// Operator patterns.
    patterns: Vec<regex::Regex>,
}

impl Capture {
    /// `body` cut to `max_bytes` and masked, as text; and whether it was cut.
    pub fn keep(&self, body: &[u8]) -> (String, bool) {
        let cut = body.len() > self.max_bytes;
        let mut text =
            String::from_utf8_lossy(&body[..body.len().min(self.max_bytes)]).into_owned();
        for secret in &self.secrets {
            if text.contains(secret.as_str()) {
                text = text.replace(secret.as_str(), "<redacted>");
            }
        }
        for pattern in &self.patterns {
            if let std::borrow::Cow::Owned(masked) = pattern.replace_all(&text, "<redacted>") {
                text = masked;
            }
        }
        (text, cut)
    }
}

/// An upstream provider.
pub struct Provider {
    /// Its name in config.
    pub name: String,
    /// In service.
    pub enabled: bool,
    /// How often to run a connectivity check, if at all.
    pub health_check_interval: Option<Duration>,
    /// The model checks ask for, if not the first route's.
    pub health_check_model: Option<String>,
    /// The adapter that talks to it.
    pub adapter: Arc<AdapterPlugin>,
    /// Base URL without a trailing slash.
    pub base_url: String,
    /// Keys in rotation.
    pub keys: KeyRing,
    /// Total time for a non-streamed request.
    pub timeout: Duration,
    /// Longest silence inside a stream.
    pub stream_idle_timeout: Duration,
    /// Adapter options as JSON.
    pub options_json: String,
    /// Pooled HTTP client for this provider (see [`crate::upstream`]).
    pub http: crate::upstream::UpstreamClient,
    /// The operator's `headers`, sent where the adapter set none of the name.
    pub headers: Vec<(http::HeaderName, http::HeaderValue)>,
    /// Parsed upstream URLs by path, see [`Provider::uri`].
    pub urls: UrlCache,
    /// Operator rules reclassifying this provider's errors, in order.
    pub error_rules: Vec<ErrorRule>,
}

impl Provider {
    /// The upstream URI for `path_and_query` (which the adapter built).
    /// Parsing a URL is a tenth of what the gateway spends on a small
    /// request, and a provider sees few distinct paths, so each is parsed
    /// once and cloned after.
    pub fn uri(&self, path_and_query: &str) -> Result<http::Uri, String> {
        let mut urls = self.urls.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(url) = urls.get(path_and_query) {
            return Ok(url.clone());
        }
        // Through `Url` first: it percent-encodes what a URI cannot carry
        // (a space or non-ASCII in a model name in the path).
        let url = reqwest::Url::parse(&format!("{}{}", self.base_url, path_and_query))
            .map_err(|e| e.to_string())?;
        let url = http::Uri::try_from(url.as_str()).map_err(|e| e.to_string())?;
        // Paths carrying something per request (an id) would grow the map
        // without bound; past the cap they are parsed every time.
        if urls.len() < UrlCache::CAPACITY {
            urls.insert(path_and_query.to_string(), url.clone());
        }
        Ok(url)
    }
}

/// Parsed URIs by path and query, for [`Provider::uri`].
#[derive(Debug, Default)]
pub struct UrlCache(std::sync::Mutex<HashMap<String, http::Uri>>);

impl UrlCache {
    /// Distinct paths kept per provider.
    pub const CAPACITY: usize = 256;
}

/// Failover and cooldown settings, as durations.
#[derive(Debug, Clone)]
pub struct Routing {
    /// Default attempts per alias.
    pub max_attempts: u32,
    /// Key cooldown after auth/forbidden errors.
    pub auth_cooldown: Duration,
    /// Key cooldown after quota errors without a retry time.
    pub quota_cooldown: Duration,
    /// Key cooldown after rate limits without a retry time.
    pub rate_limit_cooldown: Duration,
    /// First backend cooldown.
    pub backend_cooldown: Duration,
    /// Longest backend cooldown.
    pub backend_cooldown_max: Duration,
}

impl From<&RoutingConfig> for Routing {
    fn from(c: &RoutingConfig) -> Self {
        Routing {
            max_attempts: c.max_attempts,
            auth_cooldown: Duration::from_millis(c.auth_cooldown_ms),
            quota_cooldown: Duration::from_millis(c.quota_cooldown_ms),
            rate_limit_cooldown: Duration::from_millis(c.rate_limit_cooldown_ms),
            backend_cooldown: Duration::from_millis(c.backend_cooldown_ms),
            backend_cooldown_max: Duration::from_millis(c.backend_cooldown_max_ms),
        }
    }
}

/// A compiled `[[error_rules]]` entry.
#[derive(Debug, Clone)]
pub struct ErrorRule {
    status: StatusPattern,
    body_contains: Option<String>,
    /// The kind a matching answer gets.
    pub kind: ErrorKind,
}

#[derive(Debug, Clone, Copy)]
enum StatusPattern {
    Any,
    Exact(u16),
    Class(u16),
}

impl ErrorRule {
    fn compile(rule: &ErrorRuleConfig, at: &str) -> Result<ErrorRule, ConfigError> {
        let status = match rule.status.as_deref() {
            None => StatusPattern::Any,
            Some(s) if s.len() == 3 && s.ends_with("xx") => match s[..1].parse::<u16>() {
                Ok(class @ 1..=5) => StatusPattern::Class(class),
                _ => {
                    return Err(ConfigError::new(
                        format!("{at}.status"),
                        format!("'{s}' is not a status class like 5xx"),
                    ));
                }
            },
            Some(s) => match s.parse::<u16>() {
                Ok(code @ 100..=599) => StatusPattern::Exact(code),
                _ => {
                    return Err(ConfigError::new(
                        format!("{at}.status"),
                        format!("'{s}' is not an HTTP status"),
                    ));
                }
            },
        };
        let kind = ErrorKind::parse(&rule.kind)
            .filter(|k| *k != ErrorKind::Internal)
            .ok_or_else(|| {
                ConfigError::new(
                    format!("{at}.kind"),
                    format!("'{}' is not an error kind", rule.kind),
                )
            })?;
        Ok(ErrorRule {
            status,
            body_contains: rule.body_contains.as_ref().map(|s| s.to_lowercase()),
            kind,
        })
    }

    /// Whether an upstream answer with `status` and `body` matches.
    pub fn matches(&self, status: u16, body: &[u8]) -> bool {
        let status_ok = match self.status {
            StatusPattern::Any => true,
            StatusPattern::Exact(code) => status == code,
            StatusPattern::Class(class) => status / 100 == class,
        };
        status_ok
            && self.body_contains.as_ref().is_none_or(|needle| {
                String::from_utf8_lossy(body)
                    .to_lowercase()
                    .contains(needle.as_str())
            })
    }
}

/// A model alias clients ask for.
pub struct Model {
    /// Its main name.
    pub name: String,
    /// In service.
    pub enabled: bool,
    /// Other names.
    pub aliases: Vec<String>,
    /// The policy ordering its routes.
    pub policy: Arc<PolicyPlugin>,
    /// Policy options as JSON.
    pub policy_options: String,
    /// Its backends.
    pub routes: Vec<Route>,
    /// Aliases tried, in order, when every route failed.
    pub fallback: Vec<String>,
    /// Upstream requests allowed for this alias.
    pub max_attempts: u32,
    /// Body capture, when on for this alias.
    pub capture: Option<Arc<Capture>>,
    /// Some route declares capabilities, so requests must be profiled.
    pub restricted: bool,
    /// Requests routed so far (round-robin policies read it).
    pub counter: AtomicU64,
}

/// One backend of a model.
pub struct Route {
    /// In service: the route and its provider are enabled.
    pub enabled: bool,
    /// Where it goes.
    pub provider: Arc<Provider>,
    /// The model name sent upstream.
    pub upstream_model: String,
    /// Weight for weighted policies.
    pub weight: u32,
    /// Priority for priority policies (lower first).
    pub priority: u32,
    /// Live numbers, shared across reloads.
    pub stats: Arc<BackendStats>,
    /// What it supports; none means everything.
    pub capabilities: Option<Capabilities>,
    /// Its context window, if declared.
    pub max_context: Option<u32>,
}

/// Features a route declares it supports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// Function calling.
    pub tools: bool,
    /// Image inputs.
    pub vision: bool,
    /// Schema-constrained output.
    pub json_schema: bool,
}

impl Capabilities {
    fn parse(names: &[String], at: &str) -> Result<Capabilities, ConfigError> {
        let mut caps = Capabilities::default();
        for name in names {
            match name.as_str() {
                "tools" => caps.tools = true,
                "vision" => caps.vision = true,
                "json_schema" => caps.json_schema = true,
                other => {
                    return Err(ConfigError::new(
                        at,
                        format!("unknown capability '{other}' (known: tools, vision, json_schema)"),
                    ));
                }
            }
        }
        Ok(caps)
    }
}

impl Route {
    /// Whether this route can serve a request with `profile`; when not,
    /// names what it lacks.
    pub fn lacks(&self, profile: &RequestProfile) -> Option<&'static str> {
        if let Some(caps) = &self.capabilities {
            if profile.tools && !caps.tools {
                return Some("tools");
            }
            if profile.vision && !caps.vision {
                return Some("vision");
            }
            if profile.json_schema && !caps.json_schema {
                return Some("json_schema");
            }
        }
        match self.max_context {
            Some(max) if profile.estimated_input_tokens > max => Some("context length"),
            _ => None,
        }
    }

    /// Whether the route declares any restriction at all.
    fn restricted(&self) -> bool {
        self.capabilities.is_some() || self.max_context.is_some()
    }
}

impl Runtime {
    /// Validates `file` against the loaded plugins and compiles it.
    pub fn compile(
        file: &ConfigFile,
        plugins: &PluginRegistry,
        stats: &StatsTable,
    ) -> Result<Runtime, ConfigError> {
        crate::tls::install_crypto_provider();
        let mut warnings = Vec::new();
        let listen: SocketAddr = file.server.listen.parse().map_err(|e| {
            ConfigError::new("server.listen", format!("'{}': {e}", file.server.listen))
        })?;
        if file.server.api_keys.is_empty() {
            warnings.push(
                "server.api_keys is empty: any client can use this gateway and its provider keys"
                    .to_string(),
            );
        }
        if file.server.max_body_bytes == 0 {
            return Err(ConfigError::new("server.max_body_bytes", "must be above 0"));
        }

        let mut rules: Vec<(Option<String>, ErrorRule)> = Vec::new();
        for (i, rule) in file.error_rules.iter().enumerate() {
            let at = format!("error_rules[{i}]");
            if let Some(name) = &rule.provider
                && !file.providers.iter().any(|p| &p.name == name)
            {
                return Err(ConfigError::new(
                    format!("{at}.provider"),
                    format!("no provider named '{name}'"),
                ));
            }
            rules.push((rule.provider.clone(), ErrorRule::compile(rule, &at)?));
        }
        if file.routing.max_attempts == 0 {
            return Err(ConfigError::new(
                "routing.max_attempts",
                "must be at least 1",
            ));
        }

        let mut providers: Vec<Arc<Provider>> = Vec::new();
        for (i, p) in file.providers.iter().enumerate() {
            let at = format!(
                "providers[{}]",
                if p.name.is_empty() {
                    i.to_string()
                } else {
                    p.name.clone()
                }
            );
            if p.name.is_empty() {
                return Err(ConfigError::new(at, "name must not be empty"));
            }
            if providers.iter().any(|q| q.name == p.name) {
                return Err(ConfigError::new(
                    at,
                    "a provider with this name is already defined",
                ));
            }
            let adapter = plugins.adapter(&p.adapter).ok_or_else(|| {
                let known: Vec<&str> = plugins.adapter_names().collect();
                ConfigError::new(
                    format!("{at}.adapter"),
                    format!(
                        "no adapter plugin named '{}' (loaded: {})",
                        p.adapter,
                        known.join(", ")
                    ),
                )
            })?;
            let url = reqwest::Url::parse(&p.base_url).map_err(|e| {
                ConfigError::new(format!("{at}.base_url"), format!("'{}': {e}", p.base_url))
            })?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(ConfigError::new(
                    format!("{at}.base_url"),
                    "must be an http or https URL",
                ));
            }
            let options_json = serde_json::to_string(&p.options).expect("TOML tables serialize");
            validate_with_plugin(
                adapter.validate_options(&options_json),
                &format!("{at}.options"),
            )?;
            for (field, value) in [
                ("timeout_ms", p.timeout_ms),
                ("connect_timeout_ms", p.connect_timeout_ms),
                ("stream_idle_timeout_ms", p.stream_idle_timeout_ms),
            ] {
                if value == 0 {
                    return Err(ConfigError::new(format!("{at}.{field}"), "must be above 0"));
                }
            }
            let mut headers = Vec::with_capacity(p.headers.len());
            for (name, value) in &p.headers {
                let header = (
                    http::HeaderName::from_bytes(name.as_bytes()),
                    http::HeaderValue::from_str(value),
                );
                let (Ok(name), Ok(value)) = header else {
                    return Err(ConfigError::new(
                        format!("{at}.headers.{name}"),
                        "not a valid HTTP header name and value",
                    ));
                };
                headers.push((name, value));
            }
            // Keys go into headers: one with a control character (a secret
            // file's trailing newline, most often) could never be sent.
            if let Some(i) = p
                .keys
                .iter()
                .position(|k| http::HeaderValue::from_str(k).is_err())
            {
                return Err(ConfigError::new(
                    format!("{at}.keys[{i}]"),
                    "holds characters an HTTP header cannot carry (a trailing newline?)",
                ));
            }
            let connect_timeout = Duration::from_millis(p.connect_timeout_ms);
            // Plain HTTP with no proxy, configured or from the environment:
            // hyper directly (see `upstream`). An empty `proxy` means none.
            let no_proxy = match p.proxy.as_deref() {
                Some("") => true,
                Some(_) => false,
                None => !crate::upstream::environment_proxy_for_http(),
            };
            let http = if url.scheme() == "http" && no_proxy {
                crate::upstream::UpstreamClient::direct(connect_timeout)
            } else {
                crate::upstream::UpstreamClient::Reqwest(reqwest_client(
                    p,
                    connect_timeout,
                    &at,
                    &mut warnings,
                )?)
            };
            if p.health_check_interval_s == Some(0) {
                return Err(ConfigError::new(
                    format!("{at}.health_check_interval_s"),
                    "must be above 0 (leave it out for on-demand checks only)",
                ));
            }
            providers.push(Arc::new(Provider {
                name: p.name.clone(),
                enabled: p.enabled,
                health_check_interval: p.health_check_interval_s.map(Duration::from_secs),
                health_check_model: p.health_check_model.clone(),
                adapter: Arc::clone(adapter),
                base_url: p.base_url.trim_end_matches('/').to_string(),
                keys: KeyRing::new(
                    p.keys.clone(),
                    p.keys
                        .iter()
                        .map(|k| stats.key_cooldown(&p.name, k))
                        .collect(),
                ),
                timeout: Duration::from_millis(p.timeout_ms),
                stream_idle_timeout: Duration::from_millis(p.stream_idle_timeout_ms),
                options_json,
                http,
                headers,
                urls: UrlCache::default(),
                error_rules: rules
                    .iter()
                    .filter(|(only, _)| only.as_ref().is_none_or(|n| n == &p.name))
                    .map(|(_, rule)| rule.clone())
                    .collect(),
            }));
        }

        let mut patterns = Vec::new();
        for (i, pattern) in file.capture.mask.iter().enumerate() {
            patterns.push(
                regex::Regex::new(pattern)
                    .map_err(|e| ConfigError::new(format!("capture.mask[{i}]"), e.to_string()))?,
            );
        }
        let mut secrets: Vec<String> = file
            .server
            .api_keys
            .iter()
            .map(|k| k.key().to_string())
            .chain(file.providers.iter().flat_map(|p| p.keys.iter().cloned()))
            .chain(file.server.admin_token.clone())
            .filter(|k| !k.is_empty())
            .collect();
        // Longest first, so a key that contains another is masked whole.
        secrets.sort_by_key(|k| std::cmp::Reverse(k.len()));
        let capture = Arc::new(Capture {
            max_bytes: file.capture.max_bytes,
            secrets,
            patterns,
        });

        let mut models = Vec::new();
        let mut by_name: HashMap<String, Arc<Model>> = HashMap::new();
        for (i, m) in file.models.iter().enumerate() {
            let at = format!(
                "models[{}]",
                if m.name.is_empty() {
                    i.to_string()
                } else {
                    m.name.clone()
                }
            );
            if m.name.is_empty() {
                return Err(ConfigError::new(at, "name must not be empty"));
            }
            let policy = plugins.policy(&m.policy).ok_or_else(|| {
                let known: Vec<&str> = plugins.policy_names().collect();
                ConfigError::new(
                    format!("{at}.policy"),
                    format!(
                        "no policy plugin named '{}' (loaded: {})",
                        m.policy,
                        known.join(", ")
                    ),
                )
            })?;
            let policy_options =
                serde_json::to_string(&m.policy_options).expect("TOML tables serialize");
            validate_with_plugin(
                policy.validate_options(&policy_options),
                &format!("{at}.policy_options"),
            )?;
            if m.routes.is_empty() {
                return Err(ConfigError::new(
                    format!("{at}.routes"),
                    "a model needs at least one route",
                ));
            }
            let mut routes = Vec::new();
            for (j, r) in m.routes.iter().enumerate() {
                let provider =
                    providers
                        .iter()
                        .find(|p| p.name == r.provider)
                        .ok_or_else(|| {
                            ConfigError::new(
                                format!("{at}.routes[{j}].provider"),
                                format!("no provider named '{}'", r.provider),
                            )
                        })?;
                let capabilities = r
                    .capabilities
                    .as_ref()
                    .map(|names| {
                        Capabilities::parse(names, &format!("{at}.routes[{j}].capabilities"))
                    })
                    .transpose()?;
                routes.push(Route {
                    enabled: r.enabled && provider.enabled,
                    provider: Arc::clone(provider),
                    upstream_model: r.model.clone(),
                    weight: r.weight,
                    priority: r.priority,
                    stats: stats.backend(&provider.name, &r.model),
                    capabilities,
                    max_context: r.max_context,
                });
            }
            if routes.iter().all(|r| r.weight == 0) {
                warnings.push(format!(
                    "{at}: every route has weight 0; weighted policies pick at random"
                ));
            }
            let restricted = routes.iter().any(Route::restricted);
            if m.enabled && !routes.iter().any(|r| r.enabled) {
                warnings.push(format!(
                    "{at}: every route is disabled (or its provider is); requests for it fail"
                ));
            }
            let model = Arc::new(Model {
                enabled: m.enabled,
                restricted,
                name: m.name.clone(),
                aliases: m.aliases.clone(),
                policy: Arc::clone(policy),
                policy_options,
                routes,
                fallback: m.fallback.clone(),
                max_attempts: match m.max_attempts {
                    Some(0) => {
                        return Err(ConfigError::new(
                            format!("{at}.max_attempts"),
                            "must be at least 1",
                        ));
                    }
                    Some(n) => n,
                    None => file.routing.max_attempts,
                },
                capture: m
                    .capture_bodies
                    .unwrap_or(file.capture.bodies)
                    .then(|| Arc::clone(&capture)),
                counter: AtomicU64::new(0),
            });
            for name in std::iter::once(&m.name).chain(&m.aliases) {
                if by_name.insert(name.clone(), Arc::clone(&model)).is_some() {
                    return Err(ConfigError::new(
                        &at,
                        format!("the name '{name}' is already used by another model or alias"),
                    ));
                }
            }
            models.push(model);
        }
        check_fallbacks(&models, &by_name)?;
        Ok(Runtime {
            route_headers: file.server.route_headers,
            routing: Routing::from(&file.routing),
            listen,
            api_keys: file.server.api_keys.iter().map(ClientKey::new).collect(),
            admin_token: file.server.admin_token.clone().filter(|t| !t.is_empty()),
            shutdown_grace: Duration::from_millis(file.server.shutdown_grace_ms),
            max_body_bytes: file.server.max_body_bytes,
            providers,
            models,
            by_name,
            ingress: ["openai", "anthropic", "gemini", "responses"]
                .into_iter()
                .filter_map(|d| Some((d.to_string(), Arc::clone(plugins.ingress(d)?))))
                .collect(),
            warnings,
        })
    }

    /// The adapter that reads and answers clients speaking `dialect`.
    pub fn ingress(&self, dialect: &str) -> Option<&Arc<AdapterPlugin>> {
        self.ingress.get(dialect)
    }

    /// The model a client's name refers to (a name or an alias).
    pub fn model(&self, name: &str) -> Option<&Arc<Model>> {
        self.by_name.get(name)
    }

    /// The aliases to try for `model`: itself, then its fallbacks and
    /// theirs, depth first, each once.
    pub fn fallback_chain(&self, model: &Arc<Model>) -> Vec<Arc<Model>> {
        let mut chain = vec![Arc::clone(model)];
        let mut i = 0;
        while i < chain.len() {
            let next: Vec<Arc<Model>> = chain[i]
                .fallback
                .iter()
                .filter_map(|name| self.by_name.get(name))
                .filter(|m| m.enabled && !chain.iter().any(|c| Arc::ptr_eq(c, m)))
                .cloned()
                .collect();
            for (offset, m) in next.into_iter().enumerate() {
                chain.insert(i + 1 + offset, m);
            }
            i += 1;
        }
        chain
    }

    /// The id of the client key `key`: `Some("")` when auth is off, `None`
    /// when the key is missing or unknown.
    pub fn client_key_id(&self, key: Option<&str>) -> Option<Arc<str>> {
        if self.api_keys.is_empty() {
            return Some(Arc::from(""));
        }
        let key = key?;
        // Compare against every key without stopping early, so the time taken
        // does not reveal how much of a guess matched.
        self.api_keys.iter().fold(None, |found, k| {
            let matched = constant_time_eq(k.key.as_bytes(), key.as_bytes());
            found.or(matched.then(|| Arc::clone(&k.id)))
        })
    }

    /// Whether `token` opens the admin API.
    pub fn accepts_admin_token(&self, token: Option<&str>) -> bool {
        match (&self.admin_token, token) {
            (Some(expected), Some(token)) => {
                constant_time_eq(expected.as_bytes(), token.as_bytes())
            }
            _ => false,
        }
    }
}

/// Fallback names must exist, and following them must never lead back.
fn check_fallbacks(
    models: &[Arc<Model>],
    by_name: &HashMap<String, Arc<Model>>,
) -> Result<(), ConfigError> {
    for model in models {
        for (i, name) in model.fallback.iter().enumerate() {
            if !by_name.contains_key(name) {
                return Err(ConfigError::new(
                    format!("models[{}].fallback[{i}]", model.name),
                    format!("no model or alias named '{name}'"),
                ));
            }
        }
    }
    fn visit(
        model: &Arc<Model>,
        by_name: &HashMap<String, Arc<Model>>,
        path: &mut Vec<String>,
    ) -> Result<(), ConfigError> {
        if path.contains(&model.name) {
            path.push(model.name.clone());
            return Err(ConfigError::new(
                format!("models[{}].fallback", path[0]),
                format!("fallbacks form a cycle: {}", path.join(" -> ")),
            ));
        }
        path.push(model.name.clone());
        for name in &model.fallback {
            visit(&by_name[name], by_name, path)?;
        }
        path.pop();
        Ok(())
    }
    for model in models {
        visit(model, by_name, &mut Vec::new())?;
    }
    Ok(())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn validate_with_plugin(
    answer: Result<Result<(), String>, crate::error::GatewayError>,
    at: &str,
) -> Result<(), ConfigError> {
    match answer {
        Ok(Ok(())) => Ok(()),
        Ok(Err(message)) => Err(ConfigError::new(at, message)),
        Err(e) => Err(ConfigError::new(at, e.to_string())),
    }
}

/// The reqwest client of a provider that needs TLS or a proxy.
fn reqwest_client(
    p: &crate::config::schema::ProviderConfig,
    connect_timeout: Duration,
    at: &str,
    warnings: &mut Vec<String>,
) -> Result<reqwest::Client, ConfigError> {
    let mut http = reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        // Small writes of streamed requests must not wait for Nagle.
        .tcp_nodelay(true)
        // Keep connections warm between bursts; providers close idle
        // ones after about two minutes.
        .pool_idle_timeout(Duration::from_secs(90))
        // A provider API that redirects is misconfigured; following
        // would resend the body (and, same host, the key) elsewhere.
        .redirect(reqwest::redirect::Policy::none())
        // Retrying is the failover loop's job, with cooldowns and
        // the attempt trail; reqwest's own retry layer would also
        // clone every request in case it retries.
        .retry(reqwest::retry::never());
    // Unset: the usual HTTPS_PROXY / NO_PROXY environment applies.
    // Empty: no proxy at all, whatever the environment says.
    match p.proxy.as_deref() {
        None => {}
        Some("") => http = http.no_proxy(),
        Some(url) => {
            let proxy = reqwest::Proxy::all(url).map_err(|e| {
                ConfigError::new(format!("{at}.proxy"), format!("not a proxy URL: {e}"))
            })?;
            http = http.proxy(proxy);
        }
    }
    if !p.tls_verify {
        warnings.push(format!(
            "{at}.tls_verify = false: TLS certificates of {} are NOT checked; \
             anyone on the network path can read its API keys and traffic",
            p.base_url
        ));
        http = http.danger_accept_invalid_certs(true);
    }
    http.build()
        .map_err(|e| ConfigError::new(at, format!("HTTP client: {e}")))
}
