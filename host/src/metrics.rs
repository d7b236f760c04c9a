//! Prometheus metrics, rendered in the text exposition format at
//! `GET /metrics`.
//!
//! Per-request series (by model alias and provider) are updated once per
//! request when its record is finished, under one short lock. Everything the
//! gateway already counts elsewhere (backend in-flight and cooldowns, plugin
//! calls, the store queue) is read when scraped rather than mirrored here.
//!
//! Written by hand rather than with a metrics crate: the handful of series
//! and one text format are less code than adapting a registry's model.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use crate::plugins::Usage;

/// Request latency buckets (seconds): LLM answers take from tens of
/// milliseconds (errors, cache hits) to minutes (long reasoning).
const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

/// Plugin call buckets (seconds): honest calls take microseconds; the
/// upper buckets show calls nearing the deadline.
pub const PLUGIN_BUCKETS: &[f64] = &[
    0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.005, 0.025, 0.1,
    0.25, 1.0,
];

/// A histogram with fixed bucket bounds, safe to update from any thread.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    /// Per bucket (not cumulative); the last is +Inf.
    counts: Box<[AtomicU64]>,
    sum_ns: AtomicU64,
}

impl Histogram {
    /// An empty histogram over `bounds` (seconds, ascending).
    pub fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_ns: AtomicU64::new(0),
        }
    }

    /// Counts one observation.
    pub fn observe(&self, value: Duration) {
        let secs = value.as_secs_f64();
        let bucket = self
            .bounds
            .iter()
            .position(|&b| secs <= b)
            .unwrap_or(self.bounds.len());
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_ns
            .fetch_add(value.as_nanos() as u64, Ordering::Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    /// Sum of all observations.
    pub fn sum(&self) -> Duration {
        Duration::from_nanos(self.sum_ns.load(Ordering::Relaxed))
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (i, count) in self.counts.iter().enumerate() {
            cumulative += count.load(Ordering::Relaxed);
            let le = self
                .bounds
                .get(i)
                .map_or_else(|| "+Inf".to_string(), |b| b.to_string());
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {cumulative}"
            );
        }
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", self.sum().as_secs_f64());
        let _ = writeln!(out, "{name}_count{{{labels}}} {cumulative}");
    }
}

/// Series for one (model alias, provider) pair.
#[derive(Debug)]
struct RequestSeries {
    /// Requests by (status, error kind or "").
    outcomes: BTreeMap<(u16, &'static str), u64>,
    latency: Histogram,
    ttft: Histogram,
    /// input, output, cached, reasoning.
    tokens: [u64; 4],
}

impl Default for RequestSeries {
    fn default() -> Self {
        RequestSeries {
            outcomes: BTreeMap::new(),
            latency: Histogram::new(LATENCY_BUCKETS),
            ttft: Histogram::new(LATENCY_BUCKETS),
            tokens: [0; 4],
        }
    }
}

/// What one finished request adds to the metrics.
pub struct RequestOutcome<'a> {
    /// The model name the client asked for.
    pub model: &'a str,
    /// Provider of the last attempt ("" when none was made).
    pub provider: &'a str,
    /// Status sent to the client.
    pub status: u16,
    /// Error kind, for failures.
    pub error_kind: Option<&'static str>,
    /// Arrival to last byte.
    pub latency: Duration,
    /// Arrival to first byte, for streams.
    pub ttft: Option<Duration>,
    /// Usage reported.
    pub usage: Option<Usage>,
    /// Attempts that failed and were followed by another.
    pub failovers: u64,
}

/// upstream model → outcome → attempts, for one provider.
type AttemptsByModel = BTreeMap<String, BTreeMap<&'static str, u64>>;

/// The gateway's own counters. Gauges and counters kept elsewhere are added
/// at render time by the caller (see `admin::metrics`).
#[derive(Debug, Default)]
pub struct Metrics {
    /// model alias → provider → series.
    requests: Mutex<BTreeMap<String, BTreeMap<String, RequestSeries>>>,
    /// provider → upstream model → outcome → attempts. Nested so that
    /// counting one (every request does) looks up borrowed names and
    /// allocates nothing once the series exists.
    attempts: Mutex<BTreeMap<String, AttemptsByModel>>,
    /// model alias → failovers (attempts that failed and moved on).
    failovers: Mutex<BTreeMap<String, u64>>,
    /// (provider, scope `key`/`backend`, error kind) → cooldowns started.
    cooldowns: Mutex<BTreeMap<(String, &'static str, &'static str), u64>>,
    /// Client requests being served now.
    pub in_flight: AtomicI64,
    /// Config reloads that were applied.
    pub reloads_ok: AtomicU64,
    /// Config reloads that were rejected.
    pub reloads_failed: AtomicU64,
}

impl Metrics {
    /// Counts a finished request.
    pub fn request(&self, r: &RequestOutcome<'_>) {
        let mut requests = self.requests.lock().expect("metrics lock");
        let by_provider = match requests.get_mut(r.model) {
            Some(m) => m,
            None => requests.entry(r.model.to_string()).or_default(),
        };
        let series = match by_provider.get_mut(r.provider) {
            Some(s) => s,
            None => by_provider.entry(r.provider.to_string()).or_default(),
        };
        *series
            .outcomes
            .entry((r.status, r.error_kind.unwrap_or("")))
            .or_default() += 1;
        series.latency.observe(r.latency);
        if let Some(ttft) = r.ttft {
            series.ttft.observe(ttft);
        }
        if let Some(u) = r.usage {
            series.tokens[0] += u64::from(u.input_tokens);
            series.tokens[1] += u64::from(u.output_tokens);
            series.tokens[2] += u64::from(u.cached_input_tokens.unwrap_or(0));
            series.tokens[3] += u64::from(u.reasoning_tokens.unwrap_or(0));
        }
        drop(requests);
        if r.failovers > 0 {
            *self
                .failovers
                .lock()
                .expect("metrics lock")
                .entry(r.model.to_string())
                .or_default() += r.failovers;
        }
    }

    /// Counts one upstream attempt.
    pub fn attempt(&self, provider: &str, model: &str, outcome: &'static str) {
        let mut attempts = self.attempts.lock().expect("metrics lock");
        let by_model = match attempts.get_mut(provider) {
            Some(m) => m,
            None => attempts.entry(provider.to_string()).or_default(),
        };
        let by_outcome = match by_model.get_mut(model) {
            Some(o) => o,
            None => by_model.entry(model.to_string()).or_default(),
        };
        *by_outcome.entry(outcome).or_default() += 1;
    }

    /// Counts a cooldown started on a key or a backend.
    pub fn cooldown(&self, provider: &str, scope: &'static str, kind: &'static str) {
        *self
            .cooldowns
            .lock()
            .expect("metrics lock")
            .entry((provider.to_string(), scope, kind))
            .or_default() += 1;
    }

    /// Renders this struct's series.
    pub fn render(&self, out: &mut String) {
        let requests = self.requests.lock().expect("metrics lock");
        header(
            out,
            "llmgate_requests_total",
            "counter",
            "Client requests by model alias, provider, status and error kind.",
        );
        for (model, by_provider) in requests.iter() {
            for (provider, s) in by_provider {
                for ((status, kind), n) in &s.outcomes {
                    let _ = writeln!(
                        out,
                        "llmgate_requests_total{{model=\"{}\",provider=\"{}\",status=\"{status}\",error_kind=\"{kind}\"}} {n}",
                        esc(model),
                        esc(provider)
                    );
                }
            }
        }
        header(
            out,
            "llmgate_request_duration_seconds",
            "histogram",
            "Arrival to last byte, per model alias and provider.",
        );
        for (model, by_provider) in requests.iter() {
            for (provider, s) in by_provider {
                let labels = format!("model=\"{}\",provider=\"{}\"", esc(model), esc(provider));
                s.latency
                    .render(out, "llmgate_request_duration_seconds", &labels);
            }
        }
        header(
            out,
            "llmgate_time_to_first_byte_seconds",
            "histogram",
            "Arrival to first byte of streamed answers.",
        );
        for (model, by_provider) in requests.iter() {
            for (provider, s) in by_provider {
                if s.ttft.count() > 0 {
                    let labels = format!("model=\"{}\",provider=\"{}\"", esc(model), esc(provider));
                    s.ttft
                        .render(out, "llmgate_time_to_first_byte_seconds", &labels);
                }
            }
        }
        header(
            out,
            "llmgate_tokens_total",
            "counter",
            "Tokens reported by upstreams, by type.",
        );
        for (model, by_provider) in requests.iter() {
            for (provider, s) in by_provider {
                for (kind, n) in ["input", "output", "cached_input", "reasoning"]
                    .iter()
                    .zip(s.tokens)
                {
                    let _ = writeln!(
                        out,
                        "llmgate_tokens_total{{model=\"{}\",provider=\"{}\",type=\"{kind}\"}} {n}",
                        esc(model),
                        esc(provider)
                    );
                }
            }
        }
        drop(requests);
        header(
            out,
            "llmgate_upstream_attempts_total",
            "counter",
            "Upstream attempts by backend and outcome (ok or error kind).",
        );
        let attempts = self.attempts.lock().expect("metrics lock");
        for (provider, by_model) in attempts.iter() {
            for (model, by_outcome) in by_model {
                for (outcome, n) in by_outcome {
                    let _ = writeln!(
                        out,
                        "llmgate_upstream_attempts_total{{provider=\"{}\",upstream_model=\"{}\",outcome=\"{outcome}\"}} {n}",
                        esc(provider),
                        esc(model)
                    );
                }
            }
        }
        drop(attempts);
        header(
            out,
            "llmgate_failovers_total",
            "counter",
            "Failed attempts after which the request moved to another key or backend.",
        );
        for (model, n) in self.failovers.lock().expect("metrics lock").iter() {
            let _ = writeln!(
                out,
                "llmgate_failovers_total{{model=\"{}\"}} {n}",
                esc(model)
            );
        }
        header(
            out,
            "llmgate_cooldowns_total",
            "counter",
            "Cooldowns started, by provider, scope (key or backend) and error kind.",
        );
        for ((provider, scope, kind), n) in self.cooldowns.lock().expect("metrics lock").iter() {
            let _ = writeln!(
                out,
                "llmgate_cooldowns_total{{provider=\"{}\",scope=\"{scope}\",error_kind=\"{kind}\"}} {n}",
                esc(provider)
            );
        }
        header(
            out,
            "llmgate_requests_in_flight",
            "gauge",
            "Client requests being served.",
        );
        let _ = writeln!(
            out,
            "llmgate_requests_in_flight {}",
            self.in_flight.load(Ordering::Relaxed)
        );
        header(
            out,
            "llmgate_config_reloads_total",
            "counter",
            "Config reloads by result.",
        );
        let _ = writeln!(
            out,
            "llmgate_config_reloads_total{{result=\"ok\"}} {}",
            self.reloads_ok.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "llmgate_config_reloads_total{{result=\"rejected\"}} {}",
            self.reloads_failed.load(Ordering::Relaxed)
        );
    }
}

/// `# HELP` and `# TYPE` lines.
pub fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// Escapes a label value.
pub fn esc(value: &str) -> std::borrow::Cow<'_, str> {
    if value.contains(['\\', '"', '\n']) {
        value
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
            .into()
    } else {
        value.into()
    }
}

/// Renders a histogram (for series kept outside [`Metrics`]).
pub fn render_histogram(out: &mut String, h: &Histogram, name: &str, labels: &str) {
    h.render(out, name, labels);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative() {
        let h = Histogram::new(&[0.01, 0.1]);
        h.observe(Duration::from_millis(5));
        h.observe(Duration::from_millis(50));
        h.observe(Duration::from_secs(1));
        let mut out = String::new();
        h.render(&mut out, "x", "a=\"b\"");
        assert!(out.contains("x_bucket{a=\"b\",le=\"0.01\"} 1\n"), "{out}");
        assert!(out.contains("x_bucket{a=\"b\",le=\"0.1\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{a=\"b\",le=\"+Inf\"} 3\n"), "{out}");
        assert!(out.contains("x_count{a=\"b\"} 3\n"), "{out}");
    }

    #[test]
    fn attempts_count_per_backend_and_outcome() {
        let m = Metrics::default();
        for outcome in ["ok", "ok", "rate_limited"] {
            m.attempt("a", "m1", outcome);
        }
        m.attempt("a", "m2", "ok");
        let mut out = String::new();
        m.render(&mut out);
        for line in [
            "llmgate_upstream_attempts_total{provider=\"a\",upstream_model=\"m1\",outcome=\"ok\"} 2\n",
            "llmgate_upstream_attempts_total{provider=\"a\",upstream_model=\"m1\",outcome=\"rate_limited\"} 1\n",
            "llmgate_upstream_attempts_total{provider=\"a\",upstream_model=\"m2\",outcome=\"ok\"} 1\n",
        ] {
            assert!(out.contains(line), "{line} in {out}");
        }
    }

    #[test]
    fn requests_count_by_outcome_and_tokens() {
        let m = Metrics::default();
        let usage = Usage {
            input_tokens: 10,
            output_tokens: 3,
            cached_input_tokens: Some(4),
            reasoning_tokens: None,
        };
        for status in [200, 200, 429] {
            m.request(&RequestOutcome {
                model: "smart",
                provider: "p\"1",
                status,
                error_kind: (status == 429).then_some("rate_limited"),
                latency: Duration::from_millis(20),
                ttft: None,
                usage: Some(usage),
                failovers: 1,
            });
        }
        let mut out = String::new();
        m.render(&mut out);
        assert!(out.contains(
            "llmgate_requests_total{model=\"smart\",provider=\"p\\\"1\",status=\"200\",error_kind=\"\"} 2\n"
        ), "{out}");
        assert!(out.contains("type=\"input\"} 30\n"), "{out}");
        assert!(out.contains("type=\"cached_input\"} 12\n"), "{out}");
        assert!(
            out.contains("llmgate_failovers_total{model=\"smart\"} 3\n"),
            "{out}"
        );
    }
}
