//! The `round-robin` policy: backends take turns. The host passes a
//! per-model request counter, so turns are fair across pooled instances.

use llmgate_plugin_sdk::policy::{
    Candidate, PickContext, Policy, indexes, no_options, split_cooling,
};

/// The policy.
pub struct RoundRobin;

impl Policy for RoundRobin {
    fn validate_options(options: String) -> Result<(), String> {
        no_options("round-robin", &options)
    }

    fn pick(ctx: PickContext, candidates: Vec<Candidate>) -> Vec<u32> {
        let (mut ready, cooling) = split_cooling(candidates);
        if !ready.is_empty() {
            let start = (ctx.counter % ready.len() as u64) as usize;
            ready.rotate_left(start);
        }
        ready.extend(cooling);
        indexes(ready)
    }
}

llmgate_plugin_sdk::export_policy!(RoundRobin);

#[cfg(test)]
mod tests {
    use super::*;
    use llmgate_plugin_sdk::policy::{candidate, check_policy_properties, context};

    #[test]
    fn orders_every_candidate_once_with_cooling_last() {
        check_policy_properties(RoundRobin::pick, 2000);
    }

    #[test]
    fn turns_are_taken_in_order() {
        let firsts: Vec<u32> = (0..6)
            .map(|counter| {
                RoundRobin::pick(
                    context(0, counter, "{}"),
                    (0..3).map(|i| candidate(i, 1, 1)).collect(),
                )[0]
            })
            .collect();
        assert_eq!(firsts, [0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn every_backend_is_listed_once_with_cooling_last() {
        let mut cooling = candidate(1, 1, 1);
        cooling.cooling_down = true;
        for counter in 0..10 {
            let order = RoundRobin::pick(
                context(0, counter, "{}"),
                vec![candidate(0, 1, 1), cooling, candidate(2, 1, 1)],
            );
            assert_eq!(order.len(), 3);
            assert_eq!(order[2], 1);
            assert_eq!(order[0], if counter % 2 == 0 { 0 } else { 2 });
        }
    }
}
