//! Live backend state the host keeps for policies: in-flight counts,
//! latency EWMAs and error rates per (provider, upstream model), and key
//! rotation per provider.
//!
//! Stats live in a [`StatsTable`] outside the compiled config, so a config
//! reload keeps what the gateway has learned about its backends.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Weight of a new sample in the moving averages: 0.2 follows a change in a
/// handful of requests while one slow outlier moves the average little.
const EWMA_ALPHA: f64 = 0.2;

/// Live numbers for one backend.
#[derive(Debug, Default)]
pub struct BackendStats {
    in_flight: AtomicU32,
    latency_ewma_us: AtomicU32,
    ttft_ewma_us: AtomicU32,
    /// Error rate as an EWMA of 0/1 outcomes, stored as f32 bits.
    error_rate_bits: AtomicU32,
    /// Attempts ever made.
    pub attempts: AtomicU64,
}

impl BackendStats {
    /// Counts one attempt as in flight until the guard drops, so a cancelled
    /// request cannot leak the count.
    pub fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.attempts.fetch_add(1, Ordering::Relaxed);
        InFlight(Arc::clone(self))
    }

    /// Attempts under way now.
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Moving average of total latency of successful attempts.
    pub fn latency_ewma_us(&self) -> u32 {
        self.latency_ewma_us.load(Ordering::Relaxed)
    }

    /// Moving average of time to first byte (streams) of successful attempts.
    pub fn ttft_ewma_us(&self) -> u32 {
        self.ttft_ewma_us.load(Ordering::Relaxed)
    }

    /// Moving average of the failure rate, 0.0 to 1.0.
    pub fn error_rate(&self) -> f32 {
        f32::from_bits(self.error_rate_bits.load(Ordering::Relaxed))
    }

    /// Records an attempt's outcome. Races between concurrent updates may
    /// lose a sample; an average does not need every one.
    pub fn record(&self, ok: bool, latency: Duration, ttft: Option<Duration>) {
        let rate = ewma(f64::from(self.error_rate()), if ok { 0.0 } else { 1.0 });
        self.error_rate_bits
            .store((rate as f32).to_bits(), Ordering::Relaxed);
        if ok {
            update_us(&self.latency_ewma_us, latency);
            if let Some(ttft) = ttft {
                update_us(&self.ttft_ewma_us, ttft);
            }
        }
    }
}

fn ewma(old: f64, sample: f64) -> f64 {
    old + EWMA_ALPHA * (sample - old)
}

fn update_us(slot: &AtomicU32, sample: Duration) {
    let sample = sample.as_micros().min(u128::from(u32::MAX)) as f64;
    let old = slot.load(Ordering::Relaxed);
    let new = if old == 0 {
        sample
    } else {
        ewma(f64::from(old), sample)
    };
    slot.store(new as u32, Ordering::Relaxed);
}

/// Decrements the in-flight count when dropped.
#[derive(Debug)]
pub struct InFlight(Arc<BackendStats>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Stats for every backend ever configured, by (provider, upstream model).
#[derive(Debug, Default)]
pub struct StatsTable {
    backends: Mutex<HashMap<(String, String), Arc<BackendStats>>>,
}

impl StatsTable {
    /// The stats of one backend, created on first use.
    pub fn backend(&self, provider: &str, model: &str) -> Arc<BackendStats> {
        let mut map = self.backends.lock().expect("stats lock");
        Arc::clone(
            map.entry((provider.to_string(), model.to_string()))
                .or_default(),
        )
    }
}

/// A provider's keys, handed out in rotation.
#[derive(Debug)]
pub struct KeyRing {
    keys: Vec<String>,
    next: AtomicUsize,
}

impl KeyRing {
    /// A ring over `keys` (may be empty for servers without auth).
    pub fn new(keys: Vec<String>) -> Self {
        KeyRing {
            keys,
            next: AtomicUsize::new(0),
        }
    }

    /// The next key in rotation, or none when the provider has no keys.
    pub fn take(&self) -> Option<&str> {
        if self.keys.is_empty() {
            return None;
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.keys.len();
        Some(&self.keys[i])
    }

    /// How many keys there are.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_flight_is_released_on_drop() {
        let stats = Arc::new(BackendStats::default());
        let a = stats.begin();
        let b = stats.begin();
        assert_eq!(stats.in_flight(), 2);
        drop(a);
        drop(b);
        assert_eq!(stats.in_flight(), 0);
        assert_eq!(stats.attempts.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn averages_move_towards_samples() {
        let stats = BackendStats::default();
        stats.record(true, Duration::from_millis(100), None);
        assert_eq!(stats.latency_ewma_us(), 100_000);
        stats.record(
            true,
            Duration::from_millis(200),
            Some(Duration::from_millis(10)),
        );
        assert_eq!(stats.latency_ewma_us(), 120_000);
        assert_eq!(stats.ttft_ewma_us(), 10_000);
        stats.record(false, Duration::from_millis(1), None);
        assert!((stats.error_rate() - 0.2).abs() < 1e-6);
        assert_eq!(
            stats.latency_ewma_us(),
            120_000,
            "failures do not count as latency"
        );
    }

    #[test]
    fn keys_rotate() {
        let ring = KeyRing::new(vec!["a".into(), "b".into()]);
        let taken: Vec<_> = (0..4).map(|_| ring.take().unwrap()).collect();
        assert_eq!(taken, ["a", "b", "a", "b"]);
        assert_eq!(KeyRing::new(vec![]).take(), None);
    }
}
