//! Pools of ready plugin instances, and leases that put an instance back
//! after use, or throw it away if it trapped.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wasmtime::component::ResourceTable;
use wasmtime::{Engine, Store, StoreLimits, StoreLimitsBuilder, Trap};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::{EPOCH_TICK, Limits};
use crate::error::GatewayError;
use crate::metrics::{Histogram, PLUGIN_BUCKETS};

/// What each plugin store carries: the plugin's name (for logs), its
/// limits, and a WASI context for components built for `wasm32-wasip2`.
pub struct PluginState {
    pub(super) plugin: Arc<str>,
    limits: StoreLimits,
    wasi: WasiCtx,
    table: ResourceTable,
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// A WASI context that grants nothing: no files (no preopened
/// directories), no network (every address denied, no name lookup), no
/// environment variables or arguments, stdin empty and stdout/stderr
/// discarded. Clocks and randomness stay: they reveal nothing about the host.
fn sandboxed_wasi() -> WasiCtx {
    WasiCtx::builder().build()
}

/// One live instance: its store and typed bindings.
pub(super) struct Instance<B> {
    pub(super) store: Store<PluginState>,
    pub(super) bindings: B,
}

type Instantiate<B> = dyn Fn(&mut Store<PluginState>) -> wasmtime::Result<B> + Send + Sync;

/// Call counters for one plugin.
#[derive(Debug)]
pub struct CallStats {
    /// Calls made.
    pub calls: AtomicU64,
    /// Calls that trapped (including time and memory limits).
    pub traps: AtomicU64,
    /// Call durations.
    pub durations: Histogram,
}

impl Default for CallStats {
    fn default() -> Self {
        CallStats {
            calls: AtomicU64::new(0),
            traps: AtomicU64::new(0),
            durations: Histogram::new(PLUGIN_BUCKETS),
        }
    }
}

/// Idle instances of one plugin, and how to make more.
pub(super) struct InstancePool<B> {
    pub(super) name: Arc<str>,
    engine: Engine,
    instantiate: Box<Instantiate<B>>,
    idle: Mutex<Vec<Instance<B>>>,
    max_idle: usize,
    deadline_ticks: u64,
    call_timeout: Duration,
    max_memory_bytes: usize,
    pub(super) stats: CallStats,
}

impl<B> InstancePool<B> {
    pub(super) fn new(
        name: Arc<str>,
        engine: Engine,
        limits: &Limits,
        instantiate: Box<Instantiate<B>>,
    ) -> Self {
        let ticks = limits.call_timeout.as_nanos() / EPOCH_TICK.as_nanos();
        InstancePool {
            name,
            engine,
            instantiate,
            idle: Mutex::new(Vec::new()),
            max_idle: limits.max_idle_instances,
            // +1: the current tick may be about to end.
            deadline_ticks: ticks.max(1) as u64 + 1,
            call_timeout: limits.call_timeout,
            max_memory_bytes: limits.max_memory_bytes,
            stats: CallStats::default(),
        }
    }

    /// Borrows an idle instance, or makes one.
    pub(super) fn lease(self: &Arc<Self>) -> Result<Lease<B>, GatewayError> {
        let pooled = self.idle.lock().expect("pool lock").pop();
        let instance = match pooled {
            Some(instance) => instance,
            None => self.instantiate_new()?,
        };
        Ok(Lease {
            pool: Arc::clone(self),
            instance: Some(instance),
        })
    }

    fn instantiate_new(&self) -> Result<Instance<B>, GatewayError> {
        let limits = StoreLimitsBuilder::new()
            .memory_size(self.max_memory_bytes)
            // A clear trap instead of a failed grow the guest may misreport.
            .trap_on_grow_failure(true)
            .build();
        let mut store = Store::new(
            &self.engine,
            PluginState {
                plugin: Arc::clone(&self.name),
                limits,
                wasi: sandboxed_wasi(),
                table: ResourceTable::new(),
            },
        );
        store.limiter(|state| &mut state.limits);
        store.set_epoch_deadline(self.deadline_ticks);
        let bindings = (self.instantiate)(&mut store).map_err(|e| GatewayError::Plugin {
            plugin: self.name.to_string(),
            message: format!("instantiation failed: {e:#}"),
        })?;
        Ok(Instance { store, bindings })
    }

    fn give_back(&self, instance: Instance<B>) {
        let mut idle = self.idle.lock().expect("pool lock");
        if idle.len() < self.max_idle {
            idle.push(instance);
        }
    }

    /// Turns a failed call into a gateway error that names the plugin.
    fn call_error(&self, err: wasmtime::Error) -> GatewayError {
        self.stats.traps.fetch_add(1, Ordering::Relaxed);
        let message = match err.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => format!(
                "exceeded its time limit of {} ms",
                self.call_timeout.as_millis()
            ),
            _ => format!("trapped: {err:#}"),
        };
        tracing::warn!(plugin = &*self.name, "plugin call failed: {message}");
        GatewayError::Plugin {
            plugin: self.name.to_string(),
            message,
        }
    }
}

/// A borrowed instance. Goes back to the pool on drop unless a call on it
/// failed, since a trapped instance's state is unknown.
pub(super) struct Lease<B> {
    pool: Arc<InstancePool<B>>,
    instance: Option<Instance<B>>,
}

impl<B> Lease<B> {
    /// Runs one call under the plugin's deadline.
    pub(super) fn call<R>(
        &mut self,
        f: impl FnOnce(&B, &mut Store<PluginState>) -> wasmtime::Result<R>,
    ) -> Result<R, GatewayError> {
        let Some(instance) = self.instance.as_mut() else {
            return Err(GatewayError::Plugin {
                plugin: self.pool.name.to_string(),
                message: "instance was discarded after an earlier failure".into(),
            });
        };
        instance.store.set_epoch_deadline(self.pool.deadline_ticks);
        let started = Instant::now();
        let result = f(&instance.bindings, &mut instance.store);
        let stats = &self.pool.stats;
        stats.calls.fetch_add(1, Ordering::Relaxed);
        stats.durations.observe(started.elapsed());
        result.map_err(|err| {
            self.instance = None;
            self.pool.call_error(err)
        })
    }

    /// The instance's store, for cleanup calls made while dropping.
    pub(super) fn store_mut(&mut self) -> Option<&mut Store<PluginState>> {
        self.instance.as_mut().map(|i| &mut i.store)
    }
}

impl<B> Drop for Lease<B> {
    fn drop(&mut self) {
        if let Some(instance) = self.instance.take() {
            self.pool.give_back(instance);
        }
    }
}
