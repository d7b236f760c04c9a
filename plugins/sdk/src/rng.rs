//! Deterministic randomness from the host's seed, and weighted shuffling.
//!
//! Policies get a fresh `seed` on every call, so the same seed always gives
//! the same order: tests pin seeds, production gets real randomness.

/// SplitMix64: tiny, fast and good enough to spread load.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator started from the host's seed.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform float in (0, 1].
    pub fn next_unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64
    }
}

/// Orders `items` by weighted random sampling without replacement
/// (Efraimidis–Spirakis): an item of weight `w` draws the key `u^(1/w)` and
/// keys sort descending, so an item's chance to come first is its share of
/// the total weight. Zero-weight items come last, in their given order.
pub fn weighted_order<T>(rng: &mut Rng, items: Vec<T>, weight: impl Fn(&T) -> u32) -> Vec<T> {
    let mut keyed: Vec<(f64, usize, T)> = items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let w = weight(&item);
            let key = if w == 0 {
                -1.0
            } else {
                rng.next_unit().powf(1.0 / f64::from(w))
            };
            (key, i, item)
        })
        .collect();
    keyed.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    keyed.into_iter().map(|(_, _, item)| item).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_choice_follows_weights() {
        let mut rng = Rng::new(42);
        let mut firsts = [0u32; 3];
        for _ in 0..30_000 {
            let order = weighted_order(&mut rng, vec![0usize, 1, 2], |&i| [1, 3, 0][i]);
            firsts[order[0]] += 1;
            assert_eq!(order[2], 2, "zero weight is always last");
        }
        let share = f64::from(firsts[1]) / 30_000.0;
        assert!(
            (share - 0.75).abs() < 0.02,
            "share of weight 3 of 4: {share}"
        );
    }

    #[test]
    fn same_seed_same_order() {
        let a = weighted_order(&mut Rng::new(7), (0..8).collect(), |_| 1);
        let b = weighted_order(&mut Rng::new(7), (0..8).collect(), |_| 1);
        assert_eq!(a, b);
    }
}
