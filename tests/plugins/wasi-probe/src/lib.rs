//! Test fixture: a policy that imports WASI. The gateway must load it and
//! give it an empty sandbox: if the component sees any environment variable
//! or argument, it reverses the route order, which the test notices.
#![allow(missing_docs, unsafe_code)]

wit_bindgen::generate!({ world: "probe", path: "wit", generate_all });

use exports::llmgate::plugin::policy::{Candidate, Guest, PickContext};
use wasi::cli::environment;

struct Probe;

impl Guest for Probe {
    fn validate_options(_options: String) -> Result<(), String> {
        Ok(())
    }

    fn pick(_ctx: PickContext, candidates: Vec<Candidate>) -> Vec<u32> {
        let mut order: Vec<u32> = candidates.iter().map(|c| c.index).collect();
        let sandboxed =
            environment::get_environment().is_empty() && environment::get_arguments().is_empty();
        if !sandboxed {
            order.reverse();
        }
        order
    }
}

// Exported symbols only in the component; a native build is for `cargo test`.
#[cfg(target_arch = "wasm32")]
export!(Probe);
