//! The `weighted` policy: random order, each backend's chance to come first
//! proportional to its weight. Backends cooling down go last, so they are
//! tried only when everything else failed.

use llmgate_plugin_sdk::policy::{Candidate, PickContext, Policy};
use llmgate_plugin_sdk::rng::{Rng, weighted_order};

/// The policy.
pub struct Weighted;

impl Policy for Weighted {
    fn validate_options(options: String) -> Result<(), String> {
        match serde_json::from_str::<serde_json::Value>(&options) {
            Ok(serde_json::Value::Object(map)) if map.is_empty() => Ok(()),
            Ok(serde_json::Value::Object(map)) => Err(format!(
                "weighted takes no options (got: {})",
                map.keys().cloned().collect::<Vec<_>>().join(", ")
            )),
            _ => Err("policy options must be a JSON object".into()),
        }
    }

    fn pick(ctx: PickContext, candidates: Vec<Candidate>) -> Vec<u32> {
        let (cooling, ready): (Vec<Candidate>, Vec<Candidate>) =
            candidates.into_iter().partition(|c| c.cooling_down);
        let mut rng = Rng::new(ctx.seed);
        let mut order = weighted_order(&mut rng, ready, |c| c.weight);
        order.extend(weighted_order(&mut rng, cooling, |c| c.weight));
        order.into_iter().map(|c| c.index).collect()
    }
}

llmgate_plugin_sdk::export_policy!(Weighted);

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(index: u32, weight: u32, cooling_down: bool) -> Candidate {
        Candidate {
            index,
            weight,
            priority: 1,
            latency_ewma_us: 0,
            ttft_ewma_us: 0,
            error_rate: 0.0,
            in_flight: 0,
            cooling_down,
        }
    }

    fn ctx(seed: u64) -> PickContext {
        PickContext {
            route: "smart".into(),
            seed,
            counter: 0,
            options: "{}".into(),
        }
    }

    #[test]
    fn cooling_backends_come_last_and_all_are_returned() {
        for seed in 0..200 {
            let order = Weighted::pick(
                ctx(seed),
                vec![
                    candidate(0, 100, true),
                    candidate(1, 1, false),
                    candidate(2, 1, false),
                ],
            );
            assert_eq!(order.len(), 3);
            assert_eq!(order[2], 0);
        }
    }

    #[test]
    fn weights_decide_the_share_of_first_picks() {
        let mut first = [0u32; 2];
        for seed in 0..10_000 {
            let order = Weighted::pick(
                ctx(seed),
                vec![candidate(0, 1, false), candidate(1, 4, false)],
            );
            first[order[0] as usize] += 1;
        }
        let share = f64::from(first[1]) / 10_000.0;
        assert!(
            (share - 0.8).abs() < 0.03,
            "weight 4 of 5 came first {share}"
        );
    }

    #[test]
    fn options_are_checked() {
        assert!(Weighted::validate_options("{}".into()).is_ok());
        assert!(Weighted::validate_options(r#"{"x":1}"#.into()).is_err());
        assert!(Weighted::validate_options("[]".into()).is_err());
    }
}
