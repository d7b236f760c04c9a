//! The plugin runtime: the one place `bindgen!` runs, the wasmtime engine
//! and its limits, and the registry of loaded adapters and policies.
//!
//! Every component is compiled once and pre-instantiated; calls borrow an
//! instance from a small pool ([`pool`]) instead of instantiating per request.
//! Each call runs under an epoch deadline and a memory limit, and an instance
//! that traps is thrown away, so a broken plugin fails one request, not the
//! gateway.

mod adapter;
mod policy;
mod pool;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

pub use adapter::{AdapterPlugin, DecoderSession, EncoderSession};
pub use policy::PolicyPlugin;
pub use pool::{CallStats, PluginState};

/// Host bindings for the `provider` world; the source of the shared types.
#[allow(missing_docs)]
pub mod bindings {
    /// The `provider` world.
    pub mod provider {
        wasmtime::component::bindgen!({
            path: "../wit",
            world: "provider",
            additional_derives: [PartialEq],
        });
    }
    /// The `balancer` world.
    pub mod balancer {
        wasmtime::component::bindgen!({
            path: "../wit",
            world: "balancer",
            with: {
                "llmgate:plugin/host-log": super::provider::llmgate::plugin::host_log,
            },
        });
    }
}

pub use bindings::balancer::exports::llmgate::plugin::policy::{Candidate, PickContext};
pub use bindings::provider::exports::llmgate::plugin::adapter::{
    AuthPlacement, CallContext, Decoded, DecodedRequest, ParsedResponse, RequestProfile,
    UpstreamRequest,
};
pub use bindings::provider::llmgate::plugin::types::{
    ErrorKind, Header, PluginError, SseEvent, Usage,
};

use bindings::provider::llmgate::plugin::host_log;

/// Built-in components, embedded by `build.rs`.
mod builtin {
    include!(concat!(env!("OUT_DIR"), "/builtin_plugins.rs"));
}

/// How often the epoch advances. Deadlines are counted in these ticks, so
/// this is the granularity of plugin time limits; 5 ms keeps the ticker's
/// cost invisible while a runaway plugin is stopped within a few ms of its limit.
const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Limits applied to every plugin call.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Wall time one call may take before it is interrupted.
    pub call_timeout: Duration,
    /// Linear memory one instance may grow to.
    pub max_memory_bytes: usize,
    /// Idle instances kept per plugin; more are created under load and
    /// dropped when they come back to a full pool.
    pub max_idle_instances: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            // A 64 KB translation takes well under a millisecond; 250 ms is far
            // above any honest call and still short enough that a looping
            // plugin costs its request little.
            call_timeout: Duration::from_millis(250),
            // Must hold a few copies of the largest body (`server.max_body_bytes`,
            // 32 MiB by default) while a plugin parses and rewrites it.
            max_memory_bytes: 256 << 20,
            // About one per worker thread plus headroom for open streams.
            max_idle_instances: 64,
        }
    }
}

/// Which WIT world a component implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum World {
    /// A provider adapter (`world provider`).
    Provider,
    /// A balancing policy (`world balancer`).
    Balancer,
}

impl World {
    /// The world's name in the WIT.
    pub fn as_str(self) -> &'static str {
        match self {
            World::Provider => "provider",
            World::Balancer => "balancer",
        }
    }
}

/// Where a plugin came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Embedded in the binary.
    BuiltIn,
    /// Loaded from a file.
    File(std::path::PathBuf),
}

/// One loaded plugin, as `llmgate plugins` lists it.
#[derive(Debug, Clone)]
pub struct PluginInfo {
    /// The name config refers to.
    pub name: String,
    /// The world it implements.
    pub world: World,
    /// Built-in or file.
    pub origin: Origin,
    /// Component size in bytes.
    pub size: usize,
    /// For adapters: the dialect it speaks.
    pub dialect: Option<String>,
    /// For adapters: its own description.
    pub description: Option<String>,
}

/// All loaded plugins, by name.
pub struct PluginRegistry {
    adapters: BTreeMap<String, Arc<AdapterPlugin>>,
    policies: BTreeMap<String, Arc<PolicyPlugin>>,
    infos: Vec<PluginInfo>,
}

impl PluginRegistry {
    /// Compiles and pre-instantiates the built-in plugins.
    pub fn load_builtin(limits: Limits) -> anyhow::Result<PluginRegistry> {
        let engine = new_engine(&limits)?;
        start_epoch_ticker(&engine);
        let mut registry = PluginRegistry {
            adapters: BTreeMap::new(),
            policies: BTreeMap::new(),
            infos: Vec::new(),
        };
        for (name, bytes) in builtin::BUILTIN_PLUGINS {
            registry
                .add(&engine, &limits, name, bytes, Origin::BuiltIn)
                .with_context(|| format!("loading built-in plugin '{name}'"))?;
        }
        Ok(registry)
    }

    fn add(
        &mut self,
        engine: &Engine,
        limits: &Limits,
        name: &str,
        bytes: &[u8],
        origin: Origin,
    ) -> anyhow::Result<()> {
        let component = Component::new(engine, bytes)?;
        let mut linker = Linker::<PluginState>::new(engine);
        host_log::add_to_linker::<_, HasSelf<PluginState>>(&mut linker, |s| s)?;
        let pre = linker.instantiate_pre(&component)?;
        let name_arc: Arc<str> = Arc::from(name);
        let mut info = PluginInfo {
            name: name.to_string(),
            world: World::Provider,
            origin,
            size: bytes.len(),
            dialect: None,
            description: None,
        };
        match bindings::provider::ProviderPre::new(pre.clone()) {
            Ok(provider_pre) => {
                let adapter = AdapterPlugin::new(name_arc, engine.clone(), limits, provider_pre)?;
                info.dialect = Some(adapter.dialect().to_string());
                info.description = Some(adapter.description().to_string());
                self.adapters.insert(name.to_string(), Arc::new(adapter));
            }
            Err(provider_err) => match bindings::balancer::BalancerPre::new(pre) {
                Ok(balancer_pre) => {
                    info.world = World::Balancer;
                    let policy = PolicyPlugin::new(name_arc, engine.clone(), limits, balancer_pre);
                    self.policies.insert(name.to_string(), Arc::new(policy));
                }
                Err(balancer_err) => {
                    return Err(anyhow!(
                        "the component implements neither world: as a provider: {provider_err:#}; \
                         as a balancer: {balancer_err:#}"
                    ));
                }
            },
        }
        self.infos.push(info);
        Ok(())
    }

    /// The adapter named `name`.
    pub fn adapter(&self, name: &str) -> Option<&Arc<AdapterPlugin>> {
        self.adapters.get(name)
    }

    /// The policy named `name`.
    pub fn policy(&self, name: &str) -> Option<&Arc<PolicyPlugin>> {
        self.policies.get(name)
    }

    /// The adapter that speaks `dialect` to clients: the built-in one named
    /// after the dialect.
    pub fn ingress(&self, dialect: &str) -> Option<&Arc<AdapterPlugin>> {
        self.adapters.get(dialect)
    }

    /// Every loaded plugin, in load order.
    pub fn infos(&self) -> &[PluginInfo] {
        &self.infos
    }

    /// Names of loaded adapters.
    pub fn adapter_names(&self) -> impl Iterator<Item = &str> {
        self.adapters.keys().map(String::as_str)
    }

    /// Names of loaded policies.
    pub fn policy_names(&self) -> impl Iterator<Item = &str> {
        self.policies.keys().map(String::as_str)
    }
}

fn new_engine(limits: &Limits) -> anyhow::Result<Engine> {
    let mut pooling = PoolingAllocationConfig::default();
    // Upper bound on live instances across all plugins: every open stream
    // holds one, so this caps concurrent streams per gateway far above what
    // one machine serves, while bounding reserved address space.
    pooling.total_component_instances(2048);
    pooling.total_core_instances(2048);
    pooling.total_memories(2048);
    pooling.total_tables(2048);
    pooling.max_memory_size(limits.max_memory_bytes);
    let mut config = Config::new();
    config
        .epoch_interruption(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pooling));
    Ok(Engine::new(&config)?)
}

/// One thread per engine advances the epoch; deadlines are counted in ticks.
fn start_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("llmgate-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .expect("spawning the epoch thread");
}

impl host_log::Host for PluginState {
    fn log(&mut self, level: host_log::Level, message: String) {
        let plugin = &*self.plugin;
        match level {
            host_log::Level::Trace => tracing::trace!(plugin, "{message}"),
            host_log::Level::Debug => tracing::debug!(plugin, "{message}"),
            host_log::Level::Info => tracing::info!(plugin, "{message}"),
            host_log::Level::Warn => tracing::warn!(plugin, "{message}"),
            host_log::Level::Error => tracing::error!(plugin, "{message}"),
        }
    }
}

impl ErrorKind {
    /// The kind named `name` (as in [`ErrorKind::as_str`]).
    pub fn parse(name: &str) -> Option<ErrorKind> {
        ALL_KINDS.iter().copied().find(|k| k.as_str() == name)
    }

    /// The kind's name in logs, metrics and config rules.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::BadRequest => "bad_request",
            ErrorKind::Auth => "auth",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::NotFound => "not_found",
            ErrorKind::ContextLength => "context_length",
            ErrorKind::ContentFilter => "content_filter",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::QuotaExhausted => "quota_exhausted",
            ErrorKind::Overloaded => "overloaded",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Upstream => "upstream",
            ErrorKind::Internal => "internal",
        }
    }
}

const ALL_KINDS: [ErrorKind; 12] = [
    ErrorKind::BadRequest,
    ErrorKind::Auth,
    ErrorKind::Forbidden,
    ErrorKind::NotFound,
    ErrorKind::ContextLength,
    ErrorKind::ContentFilter,
    ErrorKind::RateLimited,
    ErrorKind::QuotaExhausted,
    ErrorKind::Overloaded,
    ErrorKind::Timeout,
    ErrorKind::Upstream,
    ErrorKind::Internal,
];

impl PluginError {
    /// An `upstream` error raised by the host itself (no status, no code).
    pub fn upstream(message: impl Into<String>) -> Self {
        PluginError {
            kind: ErrorKind::Upstream,
            retry_after_ms: None,
            upstream_status: None,
            code: None,
            message: message.into(),
        }
    }
}
