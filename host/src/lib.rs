//! llmgate: an LLM gateway whose provider adapters and balancing policies are
//! WebAssembly components.
//!
//! Start at [`proxy`]: it is the request pipeline, and every feature hangs
//! off one of its phases. [`server`] accepts and routes requests, [`config`]
//! turns the TOML file into the runtime form, [`plugins`] runs the wasm
//! components, [`balance`] keeps live backend stats, [`sse`] frames streams.

pub mod balance;
pub mod config;
pub mod error;
pub mod plugins;
pub mod proxy;
pub mod server;
pub mod sse;
pub mod tls;

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use arc_swap::ArcSwap;

use balance::StatsTable;
use config::Runtime;
use plugins::{Limits, PluginRegistry};
use server::Gateway;

/// Loads the config at `path` and the plugins it needs, ready to serve.
pub fn load(path: &Path) -> anyhow::Result<Arc<Gateway>> {
    let file = config::load(path)?;
    let limits = Limits {
        call_timeout: std::time::Duration::from_millis(file.plugins.call_timeout_ms),
        max_memory_bytes: file.plugins.max_memory_mb << 20,
        ..Limits::default()
    };
    let plugins = Arc::new(PluginRegistry::load_builtin(limits).context("loading plugins")?);
    let stats = Arc::new(StatsTable::default());
    let runtime = Runtime::compile(&file, &plugins, &stats)?;
    Ok(Arc::new(Gateway {
        runtime: ArcSwap::from_pointee(runtime),
        plugins,
        stats,
    }))
}

/// Binds the configured address and serves until `shutdown` resolves.
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
        "llmgate listening on http://{} ({} providers, {} models)",
        listener.local_addr()?,
        runtime.providers.len(),
        runtime.models.len()
    );
    drop(runtime);
    server::serve(gateway, listener, shutdown).await?;
    Ok(())
}
