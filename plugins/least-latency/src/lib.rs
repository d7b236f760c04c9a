//! The `least-latency` policy: power of two choices. Two random ready
//! backends are compared by their latency (or time to first token) times
//! their load, and the faster one goes first; the rest follow by the same
//! score. Sampling two instead of taking the global best keeps every client
//! from stampeding onto the one backend that looked fastest a moment ago.
//!
//! Options: `{ "metric": "latency" | "ttft" }` (default `latency`).
//! A backend with no measurement yet scores 0, so new backends get tried.

use llmgate_plugin_sdk::policy::{Candidate, PickContext, Policy, indexes, split_cooling};
use llmgate_plugin_sdk::rng::Rng;
use serde::Deserialize;

/// The policy.
pub struct LeastLatency;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Options {
    #[serde(default)]
    metric: Metric,
}

#[derive(Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum Metric {
    #[default]
    Latency,
    Ttft,
}

fn options(json: &str) -> Result<Options, String> {
    serde_json::from_str(json).map_err(|e| format!("least-latency options: {e}"))
}

/// Expected wait: the moving average times the queue in front of us.
fn score(c: &Candidate, metric: Metric) -> u64 {
    let ewma = match metric {
        Metric::Latency => c.latency_ewma_us,
        Metric::Ttft if c.ttft_ewma_us > 0 => c.ttft_ewma_us,
        Metric::Ttft => c.latency_ewma_us,
    };
    u64::from(ewma) * (u64::from(c.in_flight) + 1)
}

impl Policy for LeastLatency {
    fn validate_options(options_json: String) -> Result<(), String> {
        options(&options_json).map(|_| ())
    }

    fn pick(ctx: PickContext, candidates: Vec<Candidate>) -> Vec<u32> {
        let metric = options(&ctx.options).unwrap_or_default().metric;
        let (mut ready, mut cooling) = split_cooling(candidates);
        let mut rng = Rng::new(ctx.seed);
        // Ties (e.g. all unmeasured) break randomly, not by config order.
        let mut keyed: Vec<(u64, u64, Candidate)> = ready
            .drain(..)
            .map(|c| (score(&c, metric), rng.next_u64(), c))
            .collect();
        if keyed.len() >= 2 {
            let a = (rng.next_u64() % keyed.len() as u64) as usize;
            let mut b = (rng.next_u64() % (keyed.len() as u64 - 1)) as usize;
            if b >= a {
                b += 1;
            }
            let winner = if (keyed[a].0, keyed[a].1) <= (keyed[b].0, keyed[b].1) {
                a
            } else {
                b
            };
            let first = keyed.swap_remove(winner);
            keyed.sort_by_key(|k| (k.0, k.1));
            keyed.insert(0, first);
        }
        cooling.sort_by_key(|c| score(c, metric));
        indexes(keyed.into_iter().map(|k| k.2).chain(cooling))
    }
}

llmgate_plugin_sdk::export_policy!(LeastLatency);

#[cfg(test)]
mod tests {
    use super::*;
    use llmgate_plugin_sdk::policy::{candidate, check_policy_properties, context};

    #[test]
    fn orders_every_candidate_once_with_cooling_last() {
        check_policy_properties(LeastLatency::pick, 2000);
    }

    fn measured(index: u32, latency_ms: u32, in_flight: u32) -> Candidate {
        let mut c = candidate(index, 1, 1);
        c.latency_ewma_us = latency_ms * 1000;
        c.ttft_ewma_us = latency_ms * 100;
        c.in_flight = in_flight;
        c
    }

    #[test]
    fn the_faster_of_two_wins_and_the_slowest_is_never_first() {
        let mut first = [0u32; 3];
        for seed in 0..3000 {
            let order = LeastLatency::pick(
                context(seed, 0, "{}"),
                vec![
                    measured(0, 100, 0),
                    measured(1, 200, 0),
                    measured(2, 900, 0),
                ],
            );
            assert_eq!(order.len(), 3);
            first[order[0] as usize] += 1;
        }
        // Backend 0 wins every pair it is in (2 of 3 pairs); 1 wins the pair {1, 2}.
        assert_eq!(first[2], 0);
        let share = f64::from(first[0]) / 3000.0;
        assert!((share - 2.0 / 3.0).abs() < 0.04, "{share}");
    }

    #[test]
    fn load_counts_against_a_fast_backend() {
        let order = LeastLatency::pick(
            context(3, 0, "{}"),
            vec![measured(0, 10, 50), measured(1, 100, 0)],
        );
        assert_eq!(order, [1, 0]);
    }

    #[test]
    fn ttft_metric_is_an_option() {
        assert!(LeastLatency::validate_options(r#"{"metric":"ttft"}"#.into()).is_ok());
        assert!(LeastLatency::validate_options(r#"{"metric":"speed"}"#.into()).is_err());
        let mut slow_start = measured(0, 10, 0);
        slow_start.ttft_ewma_us = 5_000_000;
        let order = LeastLatency::pick(
            context(1, 0, r#"{"metric":"ttft"}"#),
            vec![slow_start, measured(1, 100, 0)],
        );
        assert_eq!(order, [1, 0]);
    }

    #[test]
    fn unmeasured_backends_get_explored() {
        let mut first = [0u32; 2];
        for seed in 0..200 {
            let order = LeastLatency::pick(
                context(seed, 0, "{}"),
                vec![candidate(0, 1, 1), candidate(1, 1, 1)],
            );
            first[order[0] as usize] += 1;
        }
        assert!(first[0] > 50 && first[1] > 50, "{first:?}");
    }
}
