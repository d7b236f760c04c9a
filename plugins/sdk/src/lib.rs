//! The SDK for llmgate plugins: provider adapters and balancing policies,
//! compiled to WebAssembly components.
//!
//! A provider adapter implements [`adapter::Adapter`] and calls
//! [`export_adapter!`]; a policy implements [`policy::Policy`] and calls
//! [`export_policy!`]. The raw `wit-bindgen` output stays in the hidden
//! [`wit`] module; the types plugin authors need are re-exported here, and the
//! helpers ([`json`], [`error`], [`openai`], [`rng`]) keep plugins short.
//!
//! Everything except the export macros also compiles natively, so plugin
//! logic is unit-tested with plain `cargo test`.

pub mod anthropic;
pub mod canonical;
pub mod compatible;
pub mod dialect;
pub mod embeddings;
pub mod error;
pub mod gemini;
pub mod json;
pub mod log;
pub mod openai;
pub mod responses;
pub mod rng;
pub mod usage;

/// Raw bindings generated from `wit/llmgate.wit`. Plugin authors use the
/// re-exports in [`adapter`], [`policy`] and [`types`] instead.
#[doc(hidden)]
#[allow(missing_docs, unsafe_code, clippy::all)]
pub mod wit {
    /// The `provider` world (exports `adapter`).
    pub mod provider {
        wit_bindgen::generate!({
            world: "provider",
            path: "wit",
            pub_export_macro: true,
            export_macro_name: "export_provider_world",
            default_bindings_module: "llmgate_plugin_sdk::wit::provider",
            additional_derives: [PartialEq],
        });
    }
    /// The `embedder` world (exports `embeddings`).
    pub mod embedder {
        wit_bindgen::generate!({
            world: "embedder",
            path: "wit",
            pub_export_macro: true,
            export_macro_name: "export_embedder_world",
            default_bindings_module: "llmgate_plugin_sdk::wit::embedder",
            with: {
                "llmgate:plugin/host-log@0.1.0": crate::wit::provider::llmgate::plugin::host_log,
                "llmgate:plugin/types@0.1.0": crate::wit::provider::llmgate::plugin::types,
            },
        });
    }
    /// The `balancer` world (exports `policy`).
    pub mod balancer {
        wit_bindgen::generate!({
            world: "balancer",
            path: "wit",
            pub_export_macro: true,
            export_macro_name: "export_balancer_world",
            default_bindings_module: "llmgate_plugin_sdk::wit::balancer",
            with: {
                "llmgate:plugin/host-log@0.1.0": crate::wit::provider::llmgate::plugin::host_log,
            },
        });
    }
}

/// Types shared by adapters and policies.
pub mod types {
    pub use crate::wit::provider::llmgate::plugin::types::{
        ErrorKind, Header, PluginError, SseEvent, Usage,
    };
}

/// What a provider adapter implements.
pub mod adapter {
    pub use crate::wit::provider::exports::llmgate::plugin::adapter::{
        AuthPlacement, CallContext, Decoded, DecodedRequest, Guest as Adapter,
        GuestStreamDecoder as DecodeStream, GuestStreamEncoder as EncodeStream, Info,
        ParsedResponse, RequestProfile, StreamDecoder, StreamEncoder, UpstreamRequest,
    };
}

/// What an adapter implements to serve embedding routes too.
pub mod embed {
    pub use crate::wit::embedder::exports::llmgate::plugin::embeddings::{
        DecodedEmbed, EmbedContext, EmbedRequest, EmbedResponse, Guest as Embeddings, KeyPlacement,
    };
}

/// What a balancing policy implements, and helpers every policy needs.
pub mod policy {
    pub use crate::wit::balancer::exports::llmgate::plugin::policy::{
        Candidate, Guest as Policy, PickContext,
    };

    /// Splits candidates into (ready, cooling down), keeping their order.
    /// Policies order the ready ones and append the cooling ones, which the
    /// host tries only as a last resort.
    pub fn split_cooling(candidates: Vec<Candidate>) -> (Vec<Candidate>, Vec<Candidate>) {
        candidates.into_iter().partition(|c| !c.cooling_down)
    }

    /// Indexes of `candidates`, in order.
    pub fn indexes(candidates: impl IntoIterator<Item = Candidate>) -> Vec<u32> {
        candidates.into_iter().map(|c| c.index).collect()
    }

    /// Accepts only `{}` (or an empty table): for policies without options.
    pub fn no_options(policy: &str, options: &str) -> Result<(), String> {
        match serde_json::from_str::<serde_json::Value>(options) {
            Ok(serde_json::Value::Object(map)) if map.is_empty() => Ok(()),
            Ok(serde_json::Value::Object(map)) => Err(format!(
                "{policy} takes no options (got: {})",
                map.keys().cloned().collect::<Vec<_>>().join(", ")
            )),
            _ => Err("policy options must be a JSON object".into()),
        }
    }

    /// A candidate for tests of policies.
    pub fn candidate(index: u32, weight: u32, priority: u32) -> Candidate {
        Candidate {
            index,
            weight,
            priority,
            latency_ewma_us: 0,
            ttft_ewma_us: 0,
            error_rate: 0.0,
            in_flight: 0,
            cooling_down: false,
        }
    }

    /// A property every policy must have, checked over `cases` random
    /// candidate sets: the result lists every candidate exactly once, and no
    /// cooling candidate comes before a ready one. Call it from a policy's tests.
    pub fn check_policy_properties(pick: fn(PickContext, Vec<Candidate>) -> Vec<u32>, cases: u64) {
        let mut rng = crate::rng::Rng::new(0x5eed);
        for case in 0..cases {
            let n = 1 + (rng.next_u64() % 12) as u32;
            let candidates: Vec<Candidate> = (0..n)
                .map(|i| Candidate {
                    index: i * 3 + 1, // indexes need not be 0..n
                    weight: (rng.next_u64() % 6) as u32,
                    priority: 1 + (rng.next_u64() % 3) as u32,
                    latency_ewma_us: (rng.next_u64() % 5) as u32 * 10_000,
                    ttft_ewma_us: (rng.next_u64() % 5) as u32 * 1_000,
                    error_rate: (rng.next_u64() % 100) as f32 / 100.0,
                    in_flight: (rng.next_u64() % 4) as u32,
                    cooling_down: rng.next_u64().is_multiple_of(4),
                })
                .collect();
            let ctx = context(rng.next_u64(), case, "{}");
            let order = pick(ctx, candidates.clone());
            let mut sorted = order.clone();
            sorted.sort_unstable();
            let mut expected: Vec<u32> = candidates.iter().map(|c| c.index).collect();
            expected.sort_unstable();
            assert_eq!(
                sorted, expected,
                "case {case}: not a permutation: {order:?}"
            );
            let cooling = |i: &u32| candidates.iter().any(|c| c.index == *i && c.cooling_down);
            let first_cooling = order.iter().position(cooling).unwrap_or(order.len());
            assert!(
                order[first_cooling..].iter().all(cooling),
                "case {case}: a ready candidate after a cooling one: {order:?}"
            );
        }
    }

    /// A pick context for tests of policies.
    pub fn context(seed: u64, counter: u64, options: &str) -> PickContext {
        PickContext {
            route: "test".into(),
            seed,
            counter,
            options: options.into(),
        }
    }
}

/// Exports a type implementing [`adapter::Adapter`] as this component's adapter.
#[macro_export]
macro_rules! export_adapter {
    ($t:ident) => {
        // Exported symbols exist only in the component; native builds are for tests.
        #[cfg(target_arch = "wasm32")]
        $crate::wit::provider::export_provider_world!($t with_types_in $crate::wit::provider);
    };
}

/// Exports a type implementing [`embed::Embeddings`] as this component's
/// embeddings (beside its adapter).
#[macro_export]
macro_rules! export_embeddings {
    ($t:ident) => {
        #[cfg(target_arch = "wasm32")]
        $crate::wit::embedder::export_embedder_world!($t with_types_in $crate::wit::embedder);
    };
}

/// Exports a type implementing [`policy::Policy`] as this component's policy.
#[macro_export]
macro_rules! export_policy {
    ($t:ident) => {
        #[cfg(target_arch = "wasm32")]
        $crate::wit::balancer::export_balancer_world!($t with_types_in $crate::wit::balancer);
    };
}
