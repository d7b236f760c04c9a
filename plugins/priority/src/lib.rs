//! The `priority` policy: the lowest priority number first; inside a
//! priority group, random by weight. The host fails over down the list, so
//! priority 2 serves only when every priority-1 backend failed or is cooling.

use llmgate_plugin_sdk::policy::{
    Candidate, PickContext, Policy, indexes, no_options, split_cooling,
};
use llmgate_plugin_sdk::rng::{Rng, weighted_order};

/// The policy.
pub struct Priority;

/// Orders by priority, weighted-random within each group.
fn by_priority(rng: &mut Rng, mut candidates: Vec<Candidate>) -> Vec<Candidate> {
    candidates.sort_by_key(|c| c.priority);
    let mut out = Vec::with_capacity(candidates.len());
    let mut rest = candidates.as_slice();
    while let Some(first) = rest.first() {
        let end = rest
            .iter()
            .position(|c| c.priority != first.priority)
            .unwrap_or(rest.len());
        out.extend(weighted_order(rng, rest[..end].to_vec(), |c| c.weight));
        rest = &rest[end..];
    }
    out
}

impl Policy for Priority {
    fn validate_options(options: String) -> Result<(), String> {
        no_options("priority", &options)
    }

    fn pick(ctx: PickContext, candidates: Vec<Candidate>) -> Vec<u32> {
        let (ready, cooling) = split_cooling(candidates);
        let mut rng = Rng::new(ctx.seed);
        let mut order = by_priority(&mut rng, ready);
        order.extend(by_priority(&mut rng, cooling));
        indexes(order)
    }
}

llmgate_plugin_sdk::export_policy!(Priority);

#[cfg(test)]
mod tests {
    use super::*;
    use llmgate_plugin_sdk::policy::{candidate, check_policy_properties, context};

    #[test]
    fn orders_every_candidate_once_with_cooling_last() {
        check_policy_properties(Priority::pick, 2000);
    }

    #[test]
    fn lower_priority_numbers_always_come_first() {
        for seed in 0..1000 {
            let order = Priority::pick(
                context(seed, 0, "{}"),
                vec![
                    candidate(0, 5, 2),
                    candidate(1, 1, 1),
                    candidate(2, 1, 3),
                    candidate(3, 1, 1),
                ],
            );
            assert!(matches!(order[..2], [1, 3] | [3, 1]), "{order:?}");
            assert_eq!(order[2..], [0, 2]);
        }
    }

    #[test]
    fn weights_split_traffic_inside_a_group() {
        let mut first = [0u32; 3];
        for seed in 0..2000 {
            let order = Priority::pick(
                context(seed * 31, 0, "{}"),
                vec![candidate(0, 1, 1), candidate(1, 3, 1), candidate(2, 100, 2)],
            );
            first[order[0] as usize] += 1;
        }
        assert_eq!(first[2], 0);
        let share = f64::from(first[1]) / 2000.0;
        assert!((share - 0.75).abs() < 0.04, "{share}");
    }

    #[test]
    fn cooling_backends_go_last_whatever_their_priority() {
        let mut cooling = candidate(0, 1, 1);
        cooling.cooling_down = true;
        let order = Priority::pick(context(1, 0, "{}"), vec![cooling, candidate(1, 1, 9)]);
        assert_eq!(order, [1, 0]);
    }
}
