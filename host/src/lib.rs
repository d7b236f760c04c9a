//! llmgate: an LLM gateway whose provider adapters and balancing policies are
//! WebAssembly components.
//!
//! Start at [`proxy`]: it is the request pipeline, and every feature hangs
//! off one of its phases. [`server`] accepts and routes requests, [`config`]
//! turns the TOML file into the runtime form, [`plugins`] runs the wasm
//! components, [`balance`] keeps live backend stats, [`sse`] frames streams.

pub mod admin;
pub mod balance;
pub mod config;
pub mod error;
pub mod health;
pub mod log_output;
pub mod metrics;
pub mod plugin_build;
pub mod plugins;
pub mod proxy;
pub mod reload;
pub mod sched;
pub mod server;
pub mod sse;
pub mod store;
pub mod tls;
pub mod ui;
pub mod upstream;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Context;
use arc_swap::ArcSwap;

use balance::StatsTable;
use config::Runtime;
use metrics::Metrics;
use plugins::{Limits, PluginRegistry};
use proxy::record::Recorder;
use reload::ReloadStatus;
use server::Gateway;
use store::Store;

/// Where the configuration comes from.
#[derive(Debug, Clone)]
pub enum ConfigSource {
    /// A TOML file, watched for changes.
    File(PathBuf),
    /// Kept in the request store (`$LLMGATE_DATA_DIR/llmgate.redb`) and
    /// changed through `PUT /admin/api/config`: for containers started with
    /// only `LLMGATE_TOKEN`. Starts empty.
    Store {
        /// Where the store and the plugin cache live.
        data_dir: PathBuf,
    },
}

impl ConfigSource {
    /// The directory relative paths in the config are taken from.
    pub fn base_dir(&self) -> PathBuf {
        match self {
            ConfigSource::File(path) => path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
                .to_path_buf(),
            ConfigSource::Store { data_dir } => data_dir.clone(),
        }
    }

    /// For messages: the file, or "the store".
    pub fn describe(&self) -> String {
        match self {
            ConfigSource::File(path) => path.display().to_string(),
            ConfigSource::Store { data_dir } => {
                format!("the store in {}", data_dir.display())
            }
        }
    }

    /// The store-managed source in `$LLMGATE_DATA_DIR` (default `./data`).
    pub fn store_from_env() -> ConfigSource {
        let data_dir = std::env::var_os("LLMGATE_DATA_DIR")
            .filter(|d| !d.is_empty())
            .map_or_else(|| PathBuf::from("data"), PathBuf::from);
        ConfigSource::Store { data_dir }
    }
}

/// Parses config text, with `${VAR}` and the `LLMGATE_*` overrides from the
/// process environment.
pub fn parse_config(text: &str, source: &ConfigSource) -> anyhow::Result<config::ConfigFile> {
    config::parse(text, &|name| std::env::var(name).ok())
        .map_err(|e| anyhow::anyhow!("{}: {e}", source.describe()))
}

/// Validates the config at `path` and its plugins without opening the
/// store or binding anything (`llmgate check`).
pub fn check(path: &Path) -> anyhow::Result<Runtime> {
    let source = ConfigSource::File(path.to_path_buf());
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the config {}", path.display()))?;
    let file = parse_config(&text, &source)?;
    let (plugins, _) = load_plugins(&file, &source.base_dir())?;
    Ok(Runtime::compile(&file, &plugins, &StatsTable::default())?)
}

/// Loads the config, the plugins it needs and the request store, ready to
/// serve.
pub fn load(source: ConfigSource) -> anyhow::Result<Arc<Gateway>> {
    let base_dir = source.base_dir();
    let (text, file, store) = match &source {
        ConfigSource::File(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading the config {}", path.display()))?;
            let file = parse_config(&text, &source)?;
            let store = match file.storage.enabled {
                true => Some(Store::open(
                    &store::resolve_path(&file.storage, &base_dir),
                    &file.storage,
                )?),
                false => None,
            };
            (text, file, store)
        }
        ConfigSource::Store { data_dir } => {
            // The store holds the config, so it opens first, with defaults.
            let storage = config::schema::StorageConfig::default();
            let store = Store::open(&data_dir.join(&storage.path), &storage)?;
            let text = store.config_text()?.unwrap_or_default();
            let file = parse_config(&text, &source)?;
            (text, file, Some(store))
        }
    };
    let (plugins, plugin_dir) = load_plugins(&file, &base_dir)?;
    let stats = Arc::new(StatsTable::default());
    let runtime = Runtime::compile(&file, &plugins, &stats)?;
    Ok(Arc::new(Gateway {
        runtime: ArcSwap::from_pointee(runtime),
        config: ArcSwap::from_pointee(file.clone()),
        started_config: file,
        config_source: source,
        last_config_text: Mutex::new(text),
        reload: Mutex::new(ReloadStatus {
            generation: 1,
            loaded_at_ms: store::unix_ms(),
            last_ok: true,
            ..ReloadStatus::default()
        }),
        plugins: ArcSwap::from_pointee(plugins),
        plugin_dir,
        stats,
        recorder: Arc::new(Recorder {
            store,
            metrics: Arc::new(Metrics::default()),
        }),
        health: Mutex::default(),
        started: Instant::now(),
    }))
}

/// The built-in plugins and those in the config's `plugins.dir`, with the
/// compiled-code cache; and that directory.
pub fn load_plugins(
    file: &config::ConfigFile,
    base_dir: &Path,
) -> anyhow::Result<(PluginRegistry, Option<PathBuf>)> {
    let limits = Limits {
        call_timeout: std::time::Duration::from_millis(file.plugins.call_timeout_ms),
        max_memory_bytes: file.plugins.max_memory_mb << 20,
        ..Limits::default()
    };
    let cache_dir = Some(file.plugins.cache_dir.as_str())
        .filter(|d| !d.is_empty())
        .map(|d| config::data_path(d, base_dir));
    let mut plugins = PluginRegistry::new(limits, cache_dir).context("loading plugins")?;
    let plugin_dir = file.plugins.dir.as_ref().map(|d| base_dir.join(d));
    if let Some(dir) = &plugin_dir
        && let Some(with_dir) = plugins.scan_dir(dir)
    {
        plugins = with_dir;
    }
    Ok((plugins, plugin_dir))
}

/// Binds the configured address and serves until `shutdown` resolves; then
/// drains requests in flight and flushes the request store.
pub async fn serve(
    gateway: Arc<Gateway>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let runtime = gateway.runtime.load();
    for warning in &runtime.warnings {
        tracing::warn!("{warning}");
    }
    let listener = tokio::net::TcpListener::bind(runtime.listen)
        .await
        .with_context(|| format!("binding {}", runtime.listen))?;
    tracing::info!(
        "llmgate listening on http://{} ({} providers, {} models, request log {})",
        listener.local_addr()?,
        runtime.providers.len(),
        runtime.models.len(),
        gateway
            .recorder
            .store
            .as_ref()
            .map_or("off".to_string(), |s| s.path().display().to_string()),
    );
    drop(runtime);
    let watcher = tokio::spawn(reload::watch(Arc::clone(&gateway)));
    let checks = tokio::spawn(health::run_periodic(Arc::clone(&gateway)));
    let served = server::serve(Arc::clone(&gateway), listener, shutdown).await;
    watcher.abort();
    checks.abort();
    if let Some(store) = gateway.recorder.store.clone() {
        tokio::task::spawn_blocking(move || store.close()).await?;
        tracing::info!("request log flushed");
    }
    served?;
    Ok(())
}
