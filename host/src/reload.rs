//! Config hot reload: the config file is checked every second (and on
//! SIGHUP); a valid change is compiled and swapped in whole, an invalid one
//! is logged, kept in [`ReloadStatus`] for the admin API, and ignored.
//!
//! Polling rather than inotify: editors save by writing a new file and
//! renaming it over the old one, and container mounts replace files behind
//! symlinks, both of which inotify watches lose track of. Reading a few
//! kilobytes once a second costs nothing measurable.
//!
//! Requests in flight keep the `Runtime` they started with (they hold an
//! `Arc` to it); backend stats and key cooldowns live outside it, in the
//! `StatsTable`, so nothing learned about the backends is forgotten.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::Serialize;

use crate::ConfigSource;
use crate::config::{ConfigFile, Runtime};
use crate::server::Gateway;
use crate::store::unix_ms;

/// How often the file is checked.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// The outcome of the last reload, for the admin API.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReloadStatus {
    /// Configs applied since start (1 = the one loaded at start).
    pub generation: u64,
    /// When the running config was loaded (ms since the epoch).
    pub loaded_at_ms: u64,
    /// When a reload was last tried.
    pub last_attempt_ms: Option<u64>,
    /// Whether the last try was applied.
    pub last_ok: bool,
    /// Why the last try was rejected.
    pub last_error: Option<String>,
    /// Changes in the running config that only a restart applies.
    pub needs_restart: Vec<String>,
}

/// Checks the config file every second and on SIGHUP, until the process ends.
pub async fn watch(gateway: Arc<Gateway>) {
    #[cfg(unix)]
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let mut tick = tokio::time::interval(CHECK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        #[cfg(unix)]
        let forced = {
            let hup = async {
                match hangup.as_mut() {
                    Some(signal) => signal.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = tick.tick() => false,
                _ = hup => true,
            }
        };
        #[cfg(not(unix))]
        let forced = {
            tick.tick().await;
            false
        };
        let gateway = Arc::clone(&gateway);
        // Compiling components and configs is CPU work: off the reactor.
        let _ = tokio::task::spawn_blocking(move || {
            let plugins_changed = reload_plugins(&gateway);
            reload_if_changed(&gateway, forced || plugins_changed)
        })
        .await;
    }
}

/// Loads what changed in the plugin directory. Returns whether anything
/// did, in which case the config is compiled again against the new set: a
/// config that named a plugin before its file arrived now applies, and a
/// removed plugin stays in use until a config without it is applied.
pub fn reload_plugins(gateway: &Gateway) -> bool {
    let Some(dir) = &gateway.plugin_dir else {
        return false;
    };
    let Some(next) = gateway.plugins.load().scan_dir(dir) else {
        return false;
    };
    gateway.plugins.store(Arc::new(next));
    true
}

/// Reloads when the config file's text differs from the last one seen (or
/// when `force`d). A store-managed config changes only through
/// [`apply_text`]; `force` recompiles it (after a plugin change). Returns
/// whether a new config was applied.
pub fn reload_if_changed(gateway: &Gateway, force: bool) -> bool {
    let path = match &gateway.config_source {
        ConfigSource::File(path) => path,
        ConfigSource::Store { .. } => {
            if !force {
                return false;
            }
            let text = gateway
                .last_config_text
                .lock()
                .expect("reload lock")
                .clone();
            return apply_text(gateway, &text).is_ok();
        }
    };
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => {
            // Mid-rename or deleted: try again next tick, loudly once.
            let mut last = gateway.last_config_text.lock().expect("reload lock");
            if !last.is_empty() {
                tracing::warn!("cannot read {}: {e}", path.display());
                last.clear();
            }
            return false;
        }
    };
    {
        let mut last = gateway.last_config_text.lock().expect("reload lock");
        if !force && *last == text {
            return false;
        }
        *last = text.clone();
    }
    apply_text(gateway, &text).is_ok()
}

/// Validates `text` and swaps it in, or leaves the running config alone;
/// either way the outcome is logged, counted and kept for the admin API.
pub fn apply_text(gateway: &Gateway, text: &str) -> Result<(), String> {
    match apply(gateway, text) {
        Ok(needs_restart) => {
            gateway
                .recorder
                .metrics
                .reloads_ok
                .fetch_add(1, Ordering::Relaxed);
            let mut status = gateway.reload.lock().expect("reload lock");
            status.generation += 1;
            status.loaded_at_ms = unix_ms();
            status.last_attempt_ms = Some(status.loaded_at_ms);
            status.last_ok = true;
            status.last_error = None;
            status.needs_restart = needs_restart;
            tracing::info!(
                generation = status.generation,
                "config reloaded from {}",
                gateway.config_source.describe()
            );
            for what in &status.needs_restart {
                tracing::warn!("{what}");
            }
            Ok(())
        }
        Err(message) => {
            gateway
                .recorder
                .metrics
                .reloads_failed
                .fetch_add(1, Ordering::Relaxed);
            tracing::error!("config change rejected, the previous config keeps serving: {message}");
            let mut status = gateway.reload.lock().expect("reload lock");
            status.last_attempt_ms = Some(unix_ms());
            status.last_ok = false;
            status.last_error = Some(message.clone());
            Err(message)
        }
    }
}

/// Parses, validates and swaps in `text`. Returns what changed that only a
/// restart applies.
fn apply(gateway: &Gateway, text: &str) -> Result<Vec<String>, String> {
    let file = crate::parse_config(text, &gateway.config_source).map_err(|e| e.to_string())?;
    let runtime = Runtime::compile(&file, &gateway.plugins.load(), &gateway.stats)
        .map_err(|e| e.to_string())?;
    let needs_restart = restart_only_changes(&gateway.started_config, &file);
    for warning in &runtime.warnings {
        tracing::warn!("{warning}");
    }
    gateway.runtime.store(Arc::new(runtime));
    gateway.config.store(Arc::new(file));
    Ok(needs_restart)
}

/// Settings read once at start: the listener, plugin limits, storage.
fn restart_only_changes(started: &ConfigFile, new: &ConfigFile) -> Vec<String> {
    let mut changed = Vec::new();
    if started.server.listen != new.server.listen {
        changed.push(format!(
            "server.listen changed to {}: still listening on {} until restart",
            new.server.listen, started.server.listen
        ));
    }
    if !same(&started.plugins, &new.plugins) {
        changed.push("[plugins] changed: applies at the next restart".into());
    }
    if !same(&started.storage, &new.storage) {
        changed.push("[storage] changed: applies at the next restart".into());
    }
    changed
}

/// Compares config sections by their serialized form, so a field added
/// later cannot be forgotten in a hand-written comparison.
fn same<T: Serialize>(a: &T, b: &T) -> bool {
    serde_json::to_value(a).ok() == serde_json::to_value(b).ok()
}
