//! Cheapest first: routes in order of their price per million tokens (from
//! the model's `policy_options`), a route that has been failing after the
//! ones that have not, and routes cooling down last.
//!
//! ```toml
//! policy = "cost"
//! policy_options = { usd_per_mtok = [15.0, 0.6] }   # one price per route, in order
//! ```

use llmgate_plugin_sdk::policy::{Candidate, PickContext, Policy, indexes, split_cooling};
use serde::Deserialize;

/// The policy.
pub struct Cheapest;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    usd_per_mtok: Vec<f64>,
}

fn options(json: &str) -> Result<Options, String> {
    let options: Options = serde_json::from_str(json).map_err(|e| format!("cost: {e}"))?;
    // NaN and negative prices are both refused.
    match options
        .usd_per_mtok
        .iter()
        .find(|p| p.is_nan() || **p < 0.0)
    {
        Some(p) => Err(format!("cost: prices must be 0 or more, not {p}")),
        None => Ok(options),
    }
}

/// A backend failing more than this often goes after the healthy ones.
const FAILING: f32 = 0.5;

impl Policy for Cheapest {
    fn validate_options(json: String) -> Result<(), String> {
        options(&json).map(|_| ())
    }

    fn pick(ctx: PickContext, candidates: Vec<Candidate>) -> Vec<u32> {
        // Validated at config load; a route without a price sorts last.
        let prices = options(&ctx.options)
            .map(|o| o.usd_per_mtok)
            .unwrap_or_default();
        let price = |c: &Candidate| prices.get(c.index as usize).copied().unwrap_or(f64::MAX);
        let rank = |c: &Candidate| (c.error_rate > FAILING, price(c));
        let (mut ready, mut cooling) = split_cooling(candidates);
        ready.sort_by(|a, b| rank(a).partial_cmp(&rank(b)).expect("prices are numbers"));
        cooling.sort_by(|a, b| price(a).total_cmp(&price(b)));
        indexes(ready.into_iter().chain(cooling))
    }
}

llmgate_plugin_sdk::export_policy!(Cheapest);

#[cfg(test)]
mod tests {
    use super::*;
    use llmgate_plugin_sdk::policy::{candidate, check_policy_properties, context};

    const PRICES: &str = r#"{"usd_per_mtok": [15.0, 0.6, 3.0]}"#;

    #[test]
    fn cheapest_healthy_first_failing_and_cooling_later() {
        let pick = |cands| Cheapest::pick(context(0, 0, PRICES), cands);
        let all = || vec![candidate(0, 1, 1), candidate(1, 1, 1), candidate(2, 1, 1)];
        assert_eq!(pick(all()), [1, 2, 0]);
        let mut failing = all();
        failing[1].error_rate = 0.9;
        assert_eq!(pick(failing), [2, 0, 1]);
        let mut cooling = all();
        cooling[1].cooling_down = true;
        assert_eq!(pick(cooling), [2, 0, 1]);
    }

    #[test]
    fn options_are_checked() {
        assert!(Cheapest::validate_options(PRICES.into()).is_ok());
        assert!(Cheapest::validate_options(r#"{"usd_per_mtok":[-1]}"#.into()).is_err());
        assert!(Cheapest::validate_options("{}".into()).is_err());
    }

    #[test]
    fn orders_every_candidate_once() {
        fn pick(_: PickContext, c: Vec<Candidate>) -> Vec<u32> {
            Cheapest::pick(context(0, 0, r#"{"usd_per_mtok":[1,2,3,4,5,6,7,8]}"#), c)
        }
        check_policy_properties(pick, 500);
    }
}
