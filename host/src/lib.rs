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
pub mod metrics;
pub mod plugin_build;
pub mod plugins;
pub mod proxy;
pub mod reload;
pub mod server;
pub mod sse;
pub mod store;
pub mod tls;

use std::future::Future;
use std::path::Path;
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

/// Loads the config at `path`, the plugins it needs and the request store,
/// ready to serve.
pub fn load(path: &Path) -> anyhow::Result<Arc<Gateway>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the config {}", path.display()))?;
    let file = config::load(path)?;
    let (plugins, plugin_dir) = load_plugins(&file, path)?;
    let stats = Arc::new(StatsTable::default());
    let runtime = Runtime::compile(&file, &plugins, &stats)?;
    let store = if file.storage.enabled {
        let config_dir = path.parent().unwrap_or(Path::new("."));
        let store_path = store::resolve_path(&file.storage, config_dir);
        Some(Store::open(&store_path, &file.storage)?)
    } else {
        None
    };
    Ok(Arc::new(Gateway {
        runtime: ArcSwap::from_pointee(runtime),
        config: ArcSwap::from_pointee(file.clone()),
        started_config: file,
        config_path: path.to_path_buf(),
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
        started: Instant::now(),
    }))
}

/// The built-in plugins and those in the config's `plugins.dir`, with the
/// compiled-code cache; and that directory.
pub fn load_plugins(
    file: &config::ConfigFile,
    path: &Path,
) -> anyhow::Result<(PluginRegistry, Option<std::path::PathBuf>)> {
    let limits = Limits {
        call_timeout: std::time::Duration::from_millis(file.plugins.call_timeout_ms),
        max_memory_bytes: file.plugins.max_memory_mb << 20,
        ..Limits::default()
    };
    let config_dir = path.parent().unwrap_or(Path::new("."));
    let cache_dir = Some(file.plugins.cache_dir.as_str())
        .filter(|d| !d.is_empty())
        .map(|d| config::data_path(d, config_dir));
    let mut plugins = PluginRegistry::new(limits, cache_dir).context("loading plugins")?;
    let plugin_dir = file.plugins.dir.as_ref().map(|d| config_dir.join(d));
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
    let served = server::serve(Arc::clone(&gateway), listener, shutdown).await;
    watcher.abort();
    if let Some(store) = gateway.recorder.store.clone() {
        tokio::task::spawn_blocking(move || store.close()).await?;
        tracing::info!("request log flushed");
    }
    served?;
    Ok(())
}
