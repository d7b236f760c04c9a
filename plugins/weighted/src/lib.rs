//! The `weighted` policy: random order, each backend's chance to come first
//! proportional to its weight. Backends cooling down go last, so they are
//! tried only when everything else failed.

use llmgate_plugin_sdk::policy::{
    Candidate, PickContext, Policy, indexes, no_options, split_cooling,
};
use llmgate_plugin_sdk::rng::{Rng, weighted_order};

/// The policy.
pub struct Weighted;

impl Policy for Weighted {
    fn validate_options(options: String) -> Result<(), String> {
        no_options("weighted", &options)
    }

    fn pick(ctx: PickContext, candidates: Vec<Candidate>) -> Vec<u32> {
        let (ready, cooling) = split_cooling(candidates);
        let mut rng = Rng::new(ctx.seed);
        let mut order = weighted_order(&mut rng, ready, |c| c.weight);
        order.extend(weighted_order(&mut rng, cooling, |c| c.weight));
        indexes(order)
    }
}

llmgate_plugin_sdk::export_policy!(Weighted);

#[cfg(test)]
mod tests {
    use super::*;
    use llmgate_plugin_sdk::policy::{candidate, check_policy_properties, context};

    #[test]
    fn orders_every_candidate_once_with_cooling_last() {
        check_policy_properties(Weighted::pick, 2000);
    }

    #[test]
    fn cooling_backends_come_last_and_all_are_returned() {
        for seed in 0..500 {
            let mut cooling = candidate(0, 100, 1);
            cooling.cooling_down = true;
            let order = Weighted::pick(
                context(seed, 0, "{}"),
                vec![cooling, candidate(1, 1, 1), candidate(2, 1, 1)],
            );
            assert_eq!(order.len(), 3);
            assert_eq!(order[2], 0);
        }
    }

    #[test]
    fn three_to_one_over_600_picks() {
        let mut first = [0u32; 2];
        for seed in 0..600 {
            let order = Weighted::pick(
                context(seed * 7919, 0, "{}"),
                vec![candidate(0, 3, 1), candidate(1, 1, 1)],
            );
            first[order[0] as usize] += 1;
        }
        let share = f64::from(first[0]) / 600.0;
        assert!(
            (share - 0.75).abs() < 0.05,
            "weight 3 of 4 came first {share}"
        );
    }

    #[test]
    fn options_are_checked() {
        assert!(Weighted::validate_options("{}".into()).is_ok());
        assert!(Weighted::validate_options(r#"{"x":1}"#.into()).is_err());
        assert!(Weighted::validate_options("[]".into()).is_err());
    }
}
