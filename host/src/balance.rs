//! Live backend state the host keeps for policies: in-flight counts,
//! latency EWMAs and error rates per (provider, upstream model), and key
//! rotation per provider.
//!
//! Stats live in a [`StatsTable`] outside the compiled config, so a config
//! reload keeps what the gateway has learned about its backends.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Milliseconds on a monotonic clock starting at the first call; cooldown
/// deadlines are stored as these so they fit in an atomic.
pub fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

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
    /// Failures since the last success; drives cooldown escalation.
    consecutive_failures: AtomicU32,
    /// `now_ms()` until which this backend is cooling down.
    cooldown_until_ms: AtomicU64,
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

    /// Whether the backend is cooling down now.
    pub fn cooling_down(&self) -> bool {
        self.cooldown_remaining().is_some()
    }

    /// Time left in the current cooldown, if any.
    pub fn cooldown_remaining(&self) -> Option<Duration> {
        let until = self.cooldown_until_ms.load(Ordering::Relaxed);
        let now = now_ms();
        (until > now).then(|| Duration::from_millis(until - now))
    }

    /// Ends any cooldown now (a connectivity check passed).
    pub fn clear_cooldown(&self) {
        self.cooldown_until_ms.store(0, Ordering::Relaxed);
        self.consecutive_failures.store(0, Ordering::Relaxed);
    }

    /// Starts (or extends) a cooldown of `duration`.
    pub fn cool_down(&self, duration: Duration) {
        let until = now_ms() + duration.as_millis() as u64;
        self.cooldown_until_ms.fetch_max(until, Ordering::Relaxed);
    }

    /// A cooldown that doubles with each consecutive failure: `base`, 2×,
    /// 4×, ... up to `max`. One blip costs little; a dead backend stops
    /// being probed by every request.
    pub fn escalating_cooldown(&self, base: Duration, max: Duration) -> Duration {
        let failures = self.consecutive_failures.load(Ordering::Relaxed).max(1);
        let factor = 1u32 << (failures - 1).min(16);
        base.saturating_mul(factor).min(max)
    }

    /// Records an attempt's outcome. Races between concurrent updates may
    /// lose a sample; an average does not need every one.
    pub fn record(&self, ok: bool, latency: Duration, ttft: Option<Duration>) {
        let rate = ewma(f64::from(self.error_rate()), if ok { 0.0 } else { 1.0 });
        self.error_rate_bits
            .store((rate as f32).to_bits(), Ordering::Relaxed);
        if ok {
            self.consecutive_failures.store(0, Ordering::Relaxed);
        } else {
            self.consecutive_failures.fetch_add(1, Ordering::Relaxed);
        }
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

/// Stats for every backend ever configured, by (provider, upstream model),
/// and key cooldowns by (provider, key).
#[derive(Debug, Default)]
pub struct StatsTable {
    backends: Mutex<HashMap<(String, String), Arc<BackendStats>>>,
    key_cooldowns: Mutex<HashMap<(String, String), Arc<AtomicU64>>>,
}

impl StatsTable {
    /// The cooldown deadline of one provider key, created on first use. Kept
    /// here, not in the compiled config, so a reload does not hand a key
    /// that is out of quota straight back to traffic.
    pub fn key_cooldown(&self, provider: &str, key: &str) -> Arc<AtomicU64> {
        let mut map = self.key_cooldowns.lock().expect("stats lock");
        Arc::clone(
            map.entry((provider.to_string(), key.to_string()))
                .or_default(),
        )
    }

    /// Every backend's stats, for the admin API and metrics.
    pub fn snapshot(&self) -> Vec<((String, String), Arc<BackendStats>)> {
        let map = self.backends.lock().expect("stats lock");
        let mut all: Vec<_> = map
            .iter()
            .map(|(k, v)| (k.clone(), Arc::clone(v)))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// The stats of one backend, created on first use.
    pub fn backend(&self, provider: &str, model: &str) -> Arc<BackendStats> {
        let mut map = self.backends.lock().expect("stats lock");
        Arc::clone(
            map.entry((provider.to_string(), model.to_string()))
                .or_default(),
        )
    }
}

/// A provider's keys, handed out in rotation, each with its own cooldown.
#[derive(Debug)]
pub struct KeyRing {
    keys: Vec<String>,
    cooldown_until_ms: Vec<Arc<AtomicU64>>,
    next: AtomicUsize,
}

/// Which key an attempt uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyChoice<'a> {
    /// Key number `index`.
    Key(usize, &'a str),
    /// The provider takes no key.
    NoKey,
    /// Every key is cooling down; the provider is skipped.
    AllCooling,
}

impl KeyRing {
    /// A ring over `keys` (may be empty for servers without auth), with
    /// their cooldown deadlines (see [`StatsTable::key_cooldown`]).
    pub fn new(keys: Vec<String>, cooldowns: Vec<Arc<AtomicU64>>) -> Self {
        assert_eq!(keys.len(), cooldowns.len(), "one cooldown per key");
        KeyRing {
            cooldown_until_ms: cooldowns,
            keys,
            next: AtomicUsize::new(0),
        }
    }

    /// A ring whose cooldowns start fresh (tests, one-off clients).
    pub fn fresh(keys: Vec<String>) -> Self {
        let cooldowns = keys.iter().map(|_| Arc::default()).collect();
        KeyRing::new(keys, cooldowns)
    }

    /// Time left in each key's cooldown (`None`: in rotation).
    pub fn cooldowns(&self) -> Vec<Option<Duration>> {
        let now = now_ms();
        self.cooldown_until_ms
            .iter()
            .map(|until| {
                let until = until.load(Ordering::Relaxed);
                (until > now).then(|| Duration::from_millis(until - now))
            })
            .collect()
    }

    /// The next key in rotation that is not cooling down and not in `tried`.
    pub fn take(&self, tried: &[usize]) -> KeyChoice<'_> {
        if self.keys.is_empty() {
            return KeyChoice::NoKey;
        }
        let now = now_ms();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..self.keys.len())
            .map(|offset| (start + offset) % self.keys.len())
            .find(|&i| {
                !tried.contains(&i) && self.cooldown_until_ms[i].load(Ordering::Relaxed) <= now
            })
            .map_or(KeyChoice::AllCooling, |i| KeyChoice::Key(i, &self.keys[i]))
    }

    /// Whether every key is cooling down (a keyless provider never is).
    pub fn all_cooling(&self) -> bool {
        let now = now_ms();
        !self.keys.is_empty()
            && self
                .cooldown_until_ms
                .iter()
                .all(|until| until.load(Ordering::Relaxed) > now)
    }

    /// Takes key `index` out of rotation for `duration`.
    pub fn cool_down(&self, index: usize, duration: Duration) {
        if let Some(until) = self.cooldown_until_ms.get(index) {
            until.fetch_max(now_ms() + duration.as_millis() as u64, Ordering::Relaxed);
        }
    }

    /// Puts key `index` back into rotation now.
    pub fn clear_cooldown(&self, index: usize) {
        if let Some(until) = self.cooldown_until_ms.get(index) {
            until.store(0, Ordering::Relaxed);
        }
    }

    /// Key number `index`.
    pub fn key(&self, index: usize) -> Option<&str> {
        self.keys.get(index).map(String::as_str)
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
    fn keys_rotate_and_cool_down_one_by_one() {
        let ring = KeyRing::fresh(vec!["a".into(), "b".into()]);
        let taken: Vec<_> = (0..4).map(|_| ring.take(&[])).collect();
        assert_eq!(
            taken,
            [
                KeyChoice::Key(0, "a"),
                KeyChoice::Key(1, "b"),
                KeyChoice::Key(0, "a"),
                KeyChoice::Key(1, "b")
            ]
        );
        ring.cool_down(0, Duration::from_secs(60));
        assert!((0..4).all(|_| ring.take(&[]) == KeyChoice::Key(1, "b")));
        assert_eq!(
            ring.take(&[1]),
            KeyChoice::AllCooling,
            "b was tried, a is cooling"
        );
        assert!(!ring.all_cooling());
        ring.cool_down(1, Duration::from_secs(60));
        assert!(ring.all_cooling());
        assert_eq!(ring.take(&[]), KeyChoice::AllCooling);
        assert_eq!(KeyRing::fresh(vec![]).take(&[]), KeyChoice::NoKey);
    }

    #[test]
    fn key_cooldowns_expire() {
        let ring = KeyRing::fresh(vec!["a".into()]);
        ring.cool_down(0, Duration::from_millis(30));
        assert_eq!(ring.take(&[]), KeyChoice::AllCooling);
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(ring.take(&[]), KeyChoice::Key(0, "a"));
    }

    #[test]
    fn backend_cooldowns_escalate_and_reset() {
        let stats = BackendStats::default();
        let (base, max) = (Duration::from_secs(5), Duration::from_secs(60));
        stats.record(false, Duration::ZERO, None);
        assert_eq!(stats.escalating_cooldown(base, max), base);
        stats.record(false, Duration::ZERO, None);
        stats.record(false, Duration::ZERO, None);
        assert_eq!(stats.escalating_cooldown(base, max), base * 4);
        for _ in 0..10 {
            stats.record(false, Duration::ZERO, None);
        }
        assert_eq!(stats.escalating_cooldown(base, max), max);
        stats.record(true, Duration::ZERO, None);
        assert_eq!(stats.escalating_cooldown(base, max), base);
        stats.cool_down(Duration::from_secs(1));
        assert!(stats.cooling_down());
    }
}
