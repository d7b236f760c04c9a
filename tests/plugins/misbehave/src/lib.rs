//! Test fixture for the plugin sandbox: a policy that misbehaves the way
//! `policy_options.mode` says (`spin`: loops forever; `panic`; `oom`:
//! allocates until the memory limit), and otherwise keeps the routes in
//! order.

use llmgate_plugin_sdk::policy::{Candidate, PickContext, Policy, indexes};
use serde::Deserialize;

/// The policy.
pub struct Misbehave;

#[derive(Deserialize)]
struct Options {
    #[serde(default)]
    mode: String,
}

fn mode(json: &str) -> String {
    serde_json::from_str::<Options>(json)
        .map(|o| o.mode)
        .unwrap_or_default()
}

impl Policy for Misbehave {
    fn validate_options(json: String) -> Result<(), String> {
        match mode(&json).as_str() {
            "" | "spin" | "panic" | "oom" => Ok(()),
            other => Err(format!("misbehave: unknown mode '{other}'")),
        }
    }

    fn pick(ctx: PickContext, candidates: Vec<Candidate>) -> Vec<u32> {
        match mode(&ctx.options).as_str() {
            "spin" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "panic" => panic!("misbehave: asked to panic"),
            "oom" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            _ => indexes(candidates),
        }
    }
}

llmgate_plugin_sdk::export_policy!(Misbehave);
