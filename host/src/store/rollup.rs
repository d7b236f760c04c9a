//! Per-minute and per-hour rollups of the request log, kept by the writer in the same
//! transaction as the records: requests, errors, tokens and latency/TTFT
//! histograms by (minute, model, provider). Dashboards read these, so a
//! chart over a month costs a few thousand rows, not a million records.

use std::collections::BTreeMap;

use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::{Store, StoredRequest};

/// A rollup table: (start of its span, series) to the totals as JSON.
type RollupTable = TableDefinition<'static, (u64, &'static str), &'static [u8]>;

/// (minute since the epoch, "model\u{1f}provider") -> [`Rollup`] as JSON.
pub(super) const ROLLUPS: RollupTable = TableDefinition::new("rollups");
/// The same by hour, for long ranges: a month is 720 rows a series, not 43,200.
pub(super) const HOURLY: RollupTable = TableDefinition::new("rollups_hourly");

/// Latency bucket upper bounds (ms): LLM answers take from milliseconds to
/// minutes; percentiles read from these are the bucket's upper bound.
pub const LATENCY_BOUNDS_MS: [f64; 13] = [
    10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1_000.0, 2_500.0, 5_000.0, 10_000.0, 30_000.0, 60_000.0,
    120_000.0,
];

/// Totals for one (minute, model, provider).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Rollup {
    /// Requests.
    pub requests: u64,
    /// Requests answered with an error.
    pub errors: u64,
    /// Input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Cached input tokens.
    pub cached_tokens: u64,
    /// Reasoning tokens.
    pub reasoning_tokens: u64,
    /// Latency histogram of successful requests (one more bucket than bounds: +Inf).
    pub latency: Vec<u64>,
    /// TTFT histogram of successful streams.
    pub ttft: Vec<u64>,
}

fn bucket(value_ms: f64) -> usize {
    LATENCY_BOUNDS_MS
        .iter()
        .position(|b| value_ms <= *b)
        .unwrap_or(LATENCY_BOUNDS_MS.len())
}

impl Rollup {
    fn add(&mut self, r: &StoredRequest) {
        if self.latency.is_empty() {
            self.latency = vec![0; LATENCY_BOUNDS_MS.len() + 1];
            self.ttft = vec![0; LATENCY_BOUNDS_MS.len() + 1];
        }
        self.requests += 1;
        self.input_tokens += r.input_tokens;
        self.output_tokens += r.output_tokens;
        self.cached_tokens += r.cached_tokens;
        self.reasoning_tokens += r.reasoning_tokens;
        if r.status >= 400 {
            self.errors += 1;
        } else {
            self.latency[bucket(r.latency_ms)] += 1;
            if let Some(t) = r.ttft_ms.filter(|_| r.stream) {
                self.ttft[bucket(t)] += 1;
            }
        }
    }

    /// Adds another rollup's counts to this one.
    pub fn merge(&mut self, other: &Rollup) {
        if self.latency.len() < other.latency.len() {
            self.latency.resize(other.latency.len(), 0);
            self.ttft.resize(other.ttft.len(), 0);
        }
        self.requests += other.requests;
        self.errors += other.errors;
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.cached_tokens += other.cached_tokens;
        self.reasoning_tokens += other.reasoning_tokens;
        for (a, b) in self.latency.iter_mut().zip(&other.latency) {
            *a += b;
        }
        for (a, b) in self.ttft.iter_mut().zip(&other.ttft) {
            *a += b;
        }
    }
}

/// The `q` quantile of a histogram, as its bucket's upper bound (ms).
pub fn quantile(histogram: &[u64], q: f64) -> Option<f64> {
    let total: u64 = histogram.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = (q * total as f64).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (i, n) in histogram.iter().enumerate() {
        seen += n;
        if seen >= rank {
            return Some(LATENCY_BOUNDS_MS.get(i).copied().unwrap_or(f64::INFINITY));
        }
    }
    None
}

/// The series key of a model and provider.
fn series(model: &str, provider: &str) -> String {
    format!("{model}\u{1f}{provider}")
}

/// A batch's additions to the rollups, gathered record by record in the
/// writer's insert loop, then merged into the stored rows in the same
/// transaction. Keyed by the records' own strings, so counting a record
/// allocates nothing; the stored series key is made once per row.
#[derive(Default)]
pub(super) struct Deltas<'a> {
    /// Per (minute, model, provider) and per (hour, model, provider).
    spans: [BTreeMap<(u64, &'a str, &'a str), Rollup>; 2],
}

/// The tables `Deltas` adds to, with the span of one row (ms).
const SPANS: [(RollupTable, u64); 2] = [(ROLLUPS, 60_000), (HOURLY, 3_600_000)];

impl<'a> Deltas<'a> {
    /// Counts one record.
    pub(super) fn add(&mut self, r: &'a StoredRequest) {
        for (deltas, (_, span_ms)) in self.spans.iter_mut().zip(SPANS) {
            deltas
                .entry((r.time_ms / span_ms, &r.model, &r.provider))
                .or_default()
                .add(r);
        }
    }

    /// Merges the counts into the stored rows.
    pub(super) fn write(self, txn: &redb::WriteTransaction) -> Result<(), redb::Error> {
        for (deltas, (table, _)) in self.spans.into_iter().zip(SPANS) {
            let mut table = txn.open_table(table)?;
            for ((span, model, provider), delta) in deltas {
                let series = series(model, provider);
                let mut row: Rollup = table
                    .get((span, series.as_str()))?
                    .and_then(|v| serde_json::from_slice(v.value()).ok())
                    .unwrap_or_default();
                row.merge(&delta);
                let json = serde_json::to_vec(&row).expect("rollups serialize");
                table.insert((span, series.as_str()), json.as_slice())?;
            }
        }
        Ok(())
    }
}

/// Deletes rollups of minutes before `cutoff_ms`.
pub(super) fn expire(txn: &redb::WriteTransaction, cutoff_ms: u64) -> Result<(), redb::Error> {
    let mut table = txn.open_table(ROLLUPS)?;
    table.retain_in((0u64, "")..(cutoff_ms / 60_000, ""), |_, _| false)?;
    let mut table = txn.open_table(HOURLY)?;
    table.retain_in((0u64, "")..(cutoff_ms / 3_600_000, ""), |_, _| false)?;
    Ok(())
}

/// One rollup row read back.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Start of the minute (or hour) (ms since the epoch).
    pub minute_ms: u64,
    /// Model alias.
    pub model: String,
    /// Provider.
    pub provider: String,
    /// The totals.
    pub rollup: Rollup,
}

/// The rollups of minutes in `[from_ms, to_ms)`.
pub fn read(store: &Store, from_ms: u64, to_ms: u64) -> Result<Vec<Row>, redb::Error> {
    read_span(store, ROLLUPS, 60_000, from_ms, to_ms)
}

/// The rollups of hours in `[from_ms, to_ms)` (whole hours: the first and
/// last may reach outside the range).
pub fn read_hourly(store: &Store, from_ms: u64, to_ms: u64) -> Result<Vec<Row>, redb::Error> {
    read_span(store, HOURLY, 3_600_000, from_ms, to_ms)
}

fn read_span(
    store: &Store,
    table: RollupTable,
    span_ms: u64,
    from_ms: u64,
    to_ms: u64,
) -> Result<Vec<Row>, redb::Error> {
    let txn = store.db().begin_read()?;
    let table = txn.open_table(table)?;
    let mut rows = Vec::new();
    let from = (from_ms / span_ms, "");
    let to = (to_ms.div_ceil(span_ms), "");
    for entry in table.range(from..to)? {
        let (key, value) = entry?;
        let (minute, series) = key.value();
        let (model, provider) = series.split_once('\u{1f}').unwrap_or((series, ""));
        if let Ok(rollup) = serde_json::from_slice(value.value()) {
            rows.push(Row {
                minute_ms: minute * span_ms,
                model: model.to_string(),
                provider: provider.to_string(),
                rollup,
            });
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_read_bucket_bounds() {
        let mut h = vec![0; LATENCY_BOUNDS_MS.len() + 1];
        h[bucket(8.0)] += 50;
        h[bucket(400.0)] += 49;
        h[bucket(200_000.0)] += 1;
        assert_eq!(quantile(&h, 0.5), Some(10.0));
        assert_eq!(quantile(&h, 0.9), Some(500.0));
        assert_eq!(quantile(&h, 1.0), Some(f64::INFINITY));
        assert_eq!(quantile(&[0, 0], 0.5), None);
    }
}

/// How the console's queries scale: a million records over a week, then the
/// reads the console makes, timed. Run with
/// `cargo test -p llmgate --release -- --ignored --nocapture million`.
#[cfg(test)]
mod scale {
    use std::time::Instant;

    use super::super::query::{self, Filter};
    use super::super::tests::{record, tempdir};
    use super::super::{Store, unix_ms};
    use super::{read, read_hourly};
    use crate::config::schema::StorageConfig;

    #[test]
    #[ignore = "takes a minute; run by hand to measure"]
    fn a_million_records() {
        let store =
            Store::open(&tempdir().join("million.redb"), &StorageConfig::default()).unwrap();
        let now = unix_ms();
        let week = 7 * 86_400_000u64;
        let started = Instant::now();
        let mut sequence = 0;
        for chunk in 0..200u64 {
            let batch: Vec<_> = (0..5_000u64)
                .map(|i| {
                    let n = chunk * 5_000 + i;
                    let mut r = record(&format!("r{n}"), now - week + n * week / 1_000_000);
                    r.model = ["smart", "fast", "cheap", "vision"][(n % 4) as usize].into();
                    r.provider = ["a", "b"][(n % 7 % 2) as usize].into();
                    r.latency_ms = (n % 3000) as f64;
                    if n % 50 == 0 {
                        r.status = 500;
                    }
                    r
                })
                .collect();
            store.write(&batch, &mut sequence, true).unwrap();
        }
        println!("wrote 1,000,000 records in {:?}", started.elapsed());
        let t = Instant::now();
        let rows = read(&store, now - week, now + 1).unwrap();
        println!(
            "rollups for the week: {} rows in {:?}",
            rows.len(),
            t.elapsed()
        );
        let t = Instant::now();
        let rows = read_hourly(&store, now - week, now + 1).unwrap();
        println!(
            "hourly rollups for the week: {} rows in {:?}",
            rows.len(),
            t.elapsed()
        );
        let t = Instant::now();
        let rows = read(&store, now - 3_600_000, now + 1).unwrap();
        println!(
            "rollups for the last hour: {} rows in {:?}",
            rows.len(),
            t.elapsed()
        );
        let t = Instant::now();
        let page = query::list(&store, &Filter::default(), 50, None, 100_000).unwrap();
        println!("newest page of 50: {:?}", t.elapsed());
        assert_eq!(page.items.len(), 50);
        let t = Instant::now();
        let filter = Filter {
            model: Some("vision".into()),
            status: Some("error".into()),
            ..Filter::default()
        };
        let page = query::list(&store, &filter, 50, None, 100_000).unwrap();
        println!(
            "filtered page (vision, errors): {} items in {:?}",
            page.items.len(),
            t.elapsed()
        );
        let t = Instant::now();
        let one = query::get(&store, "r123456").unwrap();
        println!("one request by id: {:?}", t.elapsed());
        assert!(one.is_some());
        store.close();
    }
}
