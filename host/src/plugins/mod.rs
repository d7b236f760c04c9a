//! The plugin runtime: the one place `bindgen!` runs, the wasmtime engine
//! and its limits, and the registry of loaded adapters and policies.
//!
//! Every component is compiled once and pre-instantiated; calls borrow an
//! instance from a small pool ([`pool`]) instead of instantiating per request.
//! Each call runs under an epoch deadline and a memory limit, and an instance
//! that traps is thrown away, so a broken plugin fails one request, not the
//! gateway.

mod adapter;
mod embed;
mod policy;
mod pool;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{Context, anyhow};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

pub use adapter::{AdapterPlugin, DecoderSession, EncoderSession};
pub use embed::EmbeddingsPlugin;
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
    /// The `embedder` world.
    pub mod embedder {
        wasmtime::component::bindgen!({
            path: "../wit",
            world: "embedder",
            with: {
                "llmgate:plugin/host-log": super::provider::llmgate::plugin::host_log,
                "llmgate:plugin/types": super::provider::llmgate::plugin::types,
            },
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
pub use bindings::embedder::exports::llmgate::plugin::embeddings::{
    DecodedEmbed, EmbedContext, EmbedRequest, EmbedResponse, KeyPlacement,
};
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
    File(PathBuf),
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
    /// For adapters: whether it also serves embeddings.
    pub embeddings: bool,
}

/// What `llmgate plugin inspect` reports about a component.
#[derive(Debug)]
pub struct Inspection {
    /// Size in bytes.
    pub size: usize,
    /// SHA-256 of the file.
    pub sha256: String,
    /// How it loads: world, dialect, description; or why it does not.
    pub loaded: Result<PluginInfo, String>,
    /// Imported interfaces (with their functions).
    pub imports: Vec<String>,
    /// Exported interfaces (with their functions).
    pub exports: Vec<String>,
}

/// A component file that could not be loaded, and why.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LoadError {
    /// The file.
    pub file: PathBuf,
    /// What went wrong.
    pub message: String,
}

/// Size and modification time of a file in the plugin directory: when
/// either changes, the file is loaded again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    len: u64,
    modified: Option<SystemTime>,
}

/// All loaded plugins, by name. Cheap to clone (everything is shared), so a
/// change in the plugin directory builds a new registry beside the old one
/// and swaps it in; configs compiled against the old one keep their plugins
/// alive until they are replaced.
#[derive(Clone)]
pub struct PluginRegistry {
    engine: Engine,
    /// `host-log` and WASI, defined once for every component.
    linker: Arc<Linker<PluginState>>,
    limits: Limits,
    cache_dir: Option<PathBuf>,
    adapters: BTreeMap<String, Arc<AdapterPlugin>>,
    policies: BTreeMap<String, Arc<PolicyPlugin>>,
    infos: Vec<PluginInfo>,
    errors: Vec<LoadError>,
    files: BTreeMap<PathBuf, FileStamp>,
}

impl PluginRegistry {
    /// Compiles and pre-instantiates the built-in plugins, without a cache.
    pub fn load_builtin(limits: Limits) -> anyhow::Result<PluginRegistry> {
        PluginRegistry::new(limits, None)
    }

    /// The built-in plugins, with compiled code cached in `cache_dir`.
    pub fn new(limits: Limits, cache_dir: Option<PathBuf>) -> anyhow::Result<PluginRegistry> {
        let engine = new_engine(&limits)?;
        start_epoch_ticker(&engine);
        let mut registry = PluginRegistry {
            linker: Arc::new(linker(&engine)?),
            engine,
            limits,
            cache_dir,
            adapters: BTreeMap::new(),
            policies: BTreeMap::new(),
            infos: Vec::new(),
            errors: Vec::new(),
            files: BTreeMap::new(),
        };
        for (name, bytes) in builtin::BUILTIN_PLUGINS {
            registry
                .add(name, bytes, Origin::BuiltIn)
                .with_context(|| format!("loading built-in plugin '{name}'"))?;
        }
        Ok(registry)
    }

    /// A registry without any plugin, for inspecting one component.
    pub fn empty(limits: Limits) -> anyhow::Result<PluginRegistry> {
        let engine = new_engine(&limits)?;
        start_epoch_ticker(&engine);
        Ok(PluginRegistry {
            linker: Arc::new(linker(&engine)?),
            engine,
            limits,
            cache_dir: None,
            adapters: BTreeMap::new(),
            policies: BTreeMap::new(),
            infos: Vec::new(),
            errors: Vec::new(),
            files: BTreeMap::new(),
        })
    }

    /// Loads the component at `path` the way the plugin directory would,
    /// and describes it: the world it implements (or why none), what it
    /// exports and what it imports.
    pub fn inspect(&mut self, path: &Path) -> anyhow::Result<Inspection> {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let component = Component::new(&self.engine, &bytes)
            .map_err(|e| anyhow!("not a WebAssembly component: {e:#}"))?;
        let ty = component.component_type();
        let describe = |items: &mut dyn Iterator<
            Item = (&str, wasmtime::component::types::ComponentItem),
        >| {
            items
                .map(|(name, item)| {
                    use wasmtime::component::types::ComponentItem;
                    match item {
                        ComponentItem::ComponentInstance(instance) => {
                            let funcs: Vec<&str> = instance
                                .exports(&self.engine)
                                .filter(|(_, e)| matches!(e.ty, ComponentItem::ComponentFunc(_)))
                                .map(|(n, _)| n)
                                .collect();
                            format!("{name}: {}", funcs.join(", "))
                        }
                        ComponentItem::ComponentFunc(_) => format!("{name} (function)"),
                        _ => name.to_string(),
                    }
                })
                .collect::<Vec<_>>()
        };
        let imports = describe(&mut ty.imports(&self.engine).map(|(n, e)| (n, e.ty)));
        let exports = describe(&mut ty.exports(&self.engine).map(|(n, e)| (n, e.ty)));
        let loaded = self
            .add("inspected", &bytes, Origin::File(path.to_path_buf()))
            .map(|()| self.infos.last().cloned().expect("just added"))
            .map_err(|e| format!("{e:#}"));
        use sha2::Digest;
        Ok(Inspection {
            size: bytes.len(),
            sha256: sha2::Sha256::digest(&bytes)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
            loaded,
            imports,
            exports,
        })
    }

    /// Looks at `dir` for `*.wasm` components. Returns a new registry when
    /// anything changed since the last look: new files loaded, replaced ones
    /// loaded again (a replacement that fails to load keeps the old
    /// version), removed ones dropped. A file that fails to load is reported
    /// in [`PluginRegistry::errors`] and never affects the others.
    pub fn scan_dir(&self, dir: &Path) -> Option<PluginRegistry> {
        let stamps = list_components(dir);
        if stamps == self.files {
            return None;
        }
        let mut next = self.clone();
        for (path, _) in self.files.iter().filter(|(p, _)| !stamps.contains_key(*p)) {
            next.errors.retain(|e| &e.file != path);
            if next.remove_file(path) {
                tracing::info!("plugin file {} removed: unloaded", path.display());
            }
        }
        for (path, stamp) in &stamps {
            if self.files.get(path) == Some(stamp) {
                continue;
            }
            next.errors.retain(|e| &e.file != path);
            match next.load_file(path) {
                Ok(name) => tracing::info!("plugin '{name}' loaded from {}", path.display()),
                Err(e) => {
                    let message = format!("{e:#}");
                    tracing::error!("plugin file {} not loaded: {message}", path.display());
                    next.errors.push(LoadError {
                        file: path.clone(),
                        message,
                    });
                }
            }
        }
        next.files = stamps;
        Some(next)
    }

    /// Loads one component file under the name of its file stem.
    fn load_file(&mut self, path: &Path) -> anyhow::Result<String> {
        let name = plugin_name(path)?;
        if builtin::BUILTIN_PLUGINS.iter().any(|(n, _)| *n == name) {
            anyhow::bail!("'{name}' is the name of a built-in plugin; rename the file");
        }
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        self.add(&name, &bytes, Origin::File(path.to_path_buf()))?;
        Ok(name)
    }

    /// Forgets the plugin loaded from `path`. Returns whether there was one.
    fn remove_file(&mut self, path: &Path) -> bool {
        let Some(at) = self
            .infos
            .iter()
            .position(|i| i.origin == Origin::File(path.to_path_buf()))
        else {
            return false;
        };
        let info = self.infos.remove(at);
        self.adapters.remove(&info.name);
        self.policies.remove(&info.name);
        true
    }

    fn add(&mut self, name: &str, bytes: &[u8], origin: Origin) -> anyhow::Result<()> {
        let component = compile(&self.engine, bytes, self.cache_dir.as_deref())?;
        let pre = self.linker.instantiate_pre(&component)?;
        let name_arc: Arc<str> = Arc::from(name);
        let mut info = PluginInfo {
            name: name.to_string(),
            world: World::Provider,
            origin,
            size: bytes.len(),
            dialect: None,
            description: None,
            embeddings: false,
        };
        match bindings::provider::ProviderPre::new(pre.clone()) {
            Ok(provider_pre) => {
                // The optional embeddings export, on its own instance pool.
                let embeddings =
                    bindings::embedder::EmbedderPre::new(pre.clone())
                        .ok()
                        .map(|embedder_pre| {
                            EmbeddingsPlugin::new(
                                Arc::clone(&name_arc),
                                self.engine.clone(),
                                &self.limits,
                                embedder_pre,
                            )
                        });
                info.embeddings = embeddings.is_some();
                let adapter = AdapterPlugin::new(
                    name_arc,
                    self.engine.clone(),
                    &self.limits,
                    provider_pre,
                    embeddings,
                )?;
                info.dialect = Some(adapter.dialect().to_string());
                info.description = Some(adapter.description().to_string());
                self.policies.remove(name);
                self.adapters.insert(name.to_string(), Arc::new(adapter));
            }
            Err(provider_err) => match bindings::balancer::BalancerPre::new(pre) {
                Ok(balancer_pre) => {
                    info.world = World::Balancer;
                    let policy = PolicyPlugin::new(
                        name_arc,
                        self.engine.clone(),
                        &self.limits,
                        balancer_pre,
                    );
                    self.adapters.remove(name);
                    self.policies.insert(name.to_string(), Arc::new(policy));
                }
                Err(balancer_err) => {
                    return Err(anyhow!(
                        "the component implements neither world of llmgate:plugin@0.1.0: \
                         as a provider: {provider_err:#}; as a balancer: {balancer_err:#}"
                    ));
                }
            },
        }
        self.infos.retain(|i| i.name != name);
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

    /// Files in the plugin directory that failed to load.
    pub fn errors(&self) -> &[LoadError] {
        &self.errors
    }

    /// Names of loaded adapters.
    pub fn adapter_names(&self) -> impl Iterator<Item = &str> {
        self.adapters.keys().map(String::as_str)
    }

    /// Names of loaded policies.
    pub fn policy_names(&self) -> impl Iterator<Item = &str> {
        self.policies.keys().map(String::as_str)
    }

    /// The call stats of the plugin named `name`.
    pub fn call_stats(&self, name: &str) -> Option<&CallStats> {
        self.adapter(name)
            .map(|a| a.stats())
            .or_else(|| self.policy(name).map(|p| p.stats()))
    }
}

/// `*.wasm` files directly in `dir`, with their stamps. A missing directory
/// has none.
fn list_components(dir: &Path) -> BTreeMap<PathBuf, FileStamp> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return BTreeMap::new();
    };
    entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "wasm"))
        .filter_map(|p| {
            let meta = std::fs::metadata(&p).ok().filter(|m| m.is_file())?;
            let stamp = FileStamp {
                len: meta.len(),
                modified: meta.modified().ok(),
            };
            Some((p, stamp))
        })
        .collect()
}

/// A plugin's name is its file stem: letters, digits, `-` and `_`.
fn plugin_name(path: &Path) -> anyhow::Result<String> {
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    if stem.is_empty()
        || !stem
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        anyhow::bail!("plugin file names are letters, digits, '-' and '_' before .wasm");
    }
    Ok(stem.to_string())
}

/// The linker every component is instantiated with: `host-log`, and WASI
/// in a context that grants nothing.
fn linker(engine: &Engine) -> anyhow::Result<Linker<PluginState>> {
    let mut linker = Linker::<PluginState>::new(engine);
    host_log::add_to_linker::<_, HasSelf<PluginState>>(&mut linker, |s| s)?;
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
    Ok(linker)
}

/// Compiles a component, or loads its machine code from `cache_dir` when
/// this exact component was compiled before by a compatible engine.
fn compile(engine: &Engine, bytes: &[u8], cache_dir: Option<&Path>) -> anyhow::Result<Component> {
    let Some(dir) = cache_dir else {
        return Ok(Component::new(engine, bytes)?);
    };
    let path = dir.join(cache_file_name(engine, bytes));
    if path.is_file() {
        match load_cached(engine, &path) {
            Ok(component) => return Ok(component),
            Err(e) => tracing::warn!("ignoring plugin cache entry {}: {e:#}", path.display()),
        }
    }
    let component = Component::new(engine, bytes)?;
    let written = std::fs::create_dir_all(dir).and_then(|()| {
        let code = component.serialize().map_err(std::io::Error::other)?;
        // Written whole then renamed, so a reader never sees half a file.
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, code)?;
        std::fs::rename(&tmp, &path)
    });
    if let Err(e) = written {
        tracing::warn!("cannot write the plugin cache {}: {e}", dir.display());
    }
    Ok(component)
}

/// `<sha256 of the component>-<engine compatibility hash>.cwasm`: a new
/// component or a different wasmtime build never reads a stale entry.
fn cache_file_name(engine: &Engine, bytes: &[u8]) -> String {
    use sha2::Digest;
    use std::hash::{Hash, Hasher};
    let digest = sha2::Sha256::digest(bytes);
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    env!("CARGO_PKG_VERSION").hash(&mut hasher);
    format!("{hex}-{:016x}.cwasm", hasher.finish())
}

/// Loads machine code this gateway compiled and wrote to its own cache.
#[allow(unsafe_code)]
fn load_cached(engine: &Engine, path: &Path) -> anyhow::Result<Component> {
    // SAFETY: `deserialize_file` trusts the file to be wasmtime's own output
    // for this engine. The cache directory is written only by this gateway
    // (`compile` above), entries are named by the component's hash and the
    // engine's compatibility hash, and wasmtime checks its header and
    // version before use. An operator who lets others write to the cache
    // directory gives them code execution, as with the binary itself.
    Ok(unsafe { Component::deserialize_file(engine, path) }?)
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
    // For valgrind (examples/bench/callgrind): its address space cannot
    // hold the pool's reservation (4 GiB per memory), so a small pool.
    if std::env::var_os("LLMGATE_SMALL_PLUGIN_POOL").is_some() {
        pooling.total_component_instances(64);
        pooling.total_core_instances(64);
        pooling.total_memories(12);
        pooling.total_tables(64);
    }
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
