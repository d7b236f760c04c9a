//! Host side of the `policy` interface.

use std::sync::Arc;

use wasmtime::Engine;

use super::bindings::balancer::{Balancer, BalancerPre};
use super::pool::{CallStats, InstancePool};
use super::{Candidate, Limits, PickContext};
use crate::error::GatewayError;

/// A loaded balancing policy.
pub struct PolicyPlugin {
    pool: Arc<InstancePool<Balancer>>,
}

impl PolicyPlugin {
    pub(super) fn new(
        name: Arc<str>,
        engine: Engine,
        limits: &Limits,
        pre: BalancerPre<super::PluginState>,
    ) -> Self {
        PolicyPlugin {
            pool: Arc::new(InstancePool::new(
                name,
                engine,
                limits,
                Box::new(move |store| pre.instantiate(store)),
            )),
        }
    }

    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.pool.name
    }

    /// Call counters.
    pub fn stats(&self) -> &CallStats {
        &self.pool.stats
    }

    /// Checks a model alias's policy options.
    pub fn validate_options(&self, options: &str) -> Result<Result<(), String>, GatewayError> {
        self.pool
            .lease()?
            .call(|b, s| b.llmgate_plugin_policy().call_validate_options(s, options))
    }

    /// Orders the candidates; the host tries them in that order.
    pub fn pick(
        &self,
        ctx: &PickContext,
        candidates: &[Candidate],
    ) -> Result<Vec<u32>, GatewayError> {
        self.pool
            .lease()?
            .call(|b, s| b.llmgate_plugin_policy().call_pick(s, ctx, candidates))
    }
}
