//! Reading the request log: one record, a filtered page, aggregates.
//! Reads run in their own redb read transaction, beside the writer.

use std::collections::BTreeMap;

use redb::ReadableDatabase;
use serde::Serialize;

use super::{REQUEST_IDS, REQUESTS, Store, StoredRequest, key_time_ms, record_key};

/// Which records a query covers. Every field is optional.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Arrived at or after (ms since the epoch).
    pub from_ms: Option<u64>,
    /// Arrived before (ms since the epoch).
    pub to_ms: Option<u64>,
    /// Model name the client asked for.
    pub model: Option<String>,
    /// Provider of the last attempt, or of any attempt.
    pub provider: Option<String>,
    /// Client key id.
    pub key_id: Option<String>,
    /// `200`, `5xx`, `ok` (below 400) or `error` (400 and up).
    pub status: Option<String>,
    /// Error kind.
    pub error_kind: Option<String>,
}

impl Filter {
    /// Whether `r` passes.
    pub fn matches(&self, r: &StoredRequest) -> bool {
        let eq = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        eq(&self.model, &r.model)
            && self
                .provider
                .as_deref()
                .is_none_or(|p| r.provider == p || r.attempts.iter().any(|a| a.provider == p))
            && eq(&self.key_id, &r.key_id)
            && self
                .error_kind
                .as_deref()
                .is_none_or(|k| r.error_kind.as_deref() == Some(k))
            && self
                .status
                .as_deref()
                .is_none_or(|s| status_matches(s, r.status))
    }

    /// The key range the time bounds cover.
    fn keys(&self) -> std::ops::Range<u64> {
        let from = self.from_ms.map_or(0, |ms| record_key(ms * 1000, 0));
        let to = self.to_ms.map_or(u64::MAX, |ms| record_key(ms * 1000, 0));
        from..to
    }
}

/// `200`, `5xx`, `ok`, `error`.
fn status_matches(want: &str, status: u16) -> bool {
    match want {
        "ok" => status < 400,
        "error" => status >= 400,
        class if class.len() == 3 && class.ends_with("xx") => {
            class.as_bytes()[0].wrapping_sub(b'0') as u16 == status / 100
        }
        exact => exact.parse::<u16>() == Ok(status),
    }
}

/// One page of records, newest first.
#[derive(Debug, Serialize)]
pub struct Page {
    /// The records.
    pub items: Vec<StoredRequest>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// One record by request id.
pub fn get(store: &Store, id: &str) -> Result<Option<StoredRequest>, redb::Error> {
    let txn = store.db().begin_read()?;
    let requests = txn.open_table(REQUESTS)?;
    let read = |key: u64| -> Result<Option<StoredRequest>, redb::Error> {
        Ok(requests
            .get(key)?
            .and_then(|v| serde_json::from_slice::<StoredRequest>(v.value()).ok())
            .filter(|r| r.id == id))
    };
    // Ids are keys (see `new_request_id`); the table is for the exceptions.
    if let Ok(key) = u64::from_str_radix(id, 16)
        && id.len() == 16
        && let Some(record) = read(key)?
    {
        return Ok(Some(record));
    }
    let ids = txn.open_table(REQUEST_IDS)?;
    match ids.get(id)?.map(|k| k.value()) {
        Some(key) => read(key),
        None => Ok(None),
    }
}

/// Up to `limit` records matching `filter`, newest first, older than
/// `cursor` when given. Scans at most `scan_limit` records so a filter that
/// matches little cannot hold a reader for long; the cursor then points
/// where the scan stopped.
pub fn list(
    store: &Store,
    filter: &Filter,
    limit: usize,
    cursor: Option<u64>,
    scan_limit: usize,
) -> Result<Page, redb::Error> {
    let txn = store.db().begin_read()?;
    let requests = txn.open_table(REQUESTS)?;
    let mut range = filter.keys();
    if let Some(cursor) = cursor {
        range.end = range.end.min(cursor);
    }
    let mut items = Vec::new();
    let mut last_key = None;
    let mut scanned = 0;
    for entry in requests.range(range)?.rev() {
        let (key, value) = entry?;
        scanned += 1;
        last_key = Some(key.value());
        if let Ok(record) = serde_json::from_slice::<StoredRequest>(value.value())
            && filter.matches(&record)
        {
            items.push(record);
            if items.len() == limit {
                break;
            }
        }
        if scanned >= scan_limit {
            break;
        }
    }
    let more = items.len() == limit || scanned >= scan_limit;
    Ok(Page {
        items,
        next_cursor: last_key.filter(|_| more).map(|k| k.to_string()),
    })
}

/// Percentiles of a set of durations.
#[derive(Debug, Default, Serialize, PartialEq)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

impl Percentiles {
    fn of(mut samples: Vec<f64>) -> Option<Percentiles> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_by(f64::total_cmp);
        // Nearest rank.
        let at = |q: f64| {
            samples[((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len()) - 1]
        };
        Some(Percentiles {
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            max: samples[samples.len() - 1],
        })
    }
}

/// Totals for one group of records.
#[derive(Debug, Default, Serialize)]
pub struct Aggregate {
    /// The group's value (model, provider...); empty for the total.
    pub group: String,
    /// Requests.
    pub requests: u64,
    /// Requests answered with an error.
    pub errors: u64,
    /// Errors by kind.
    pub errors_by_kind: BTreeMap<String, u64>,
    /// Streamed requests.
    pub streamed: u64,
    /// Upstream attempts made (more than requests when failover happened).
    pub attempts: u64,
    /// Latency percentiles (ms), successful requests.
    pub latency_ms: Option<Percentiles>,
    /// Time to first byte percentiles (ms), successful streams.
    pub ttft_ms: Option<Percentiles>,
    /// Input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Cached input tokens.
    pub cached_tokens: u64,
    /// Reasoning tokens.
    pub reasoning_tokens: u64,
    #[serde(skip)]
    latencies: Vec<f64>,
    #[serde(skip)]
    ttfts: Vec<f64>,
}

impl Aggregate {
    fn add(&mut self, r: &StoredRequest) {
        self.requests += 1;
        self.attempts += r.attempts.len() as u64;
        if r.stream {
            self.streamed += 1;
        }
        if r.status >= 400 {
            self.errors += 1;
            let kind = r.error_kind.clone().unwrap_or_else(|| "unknown".into());
            *self.errors_by_kind.entry(kind).or_default() += 1;
        } else {
            self.latencies.push(r.latency_ms);
            if let Some(t) = r.ttft_ms.filter(|_| r.stream) {
                self.ttfts.push(t);
            }
        }
        self.input_tokens += r.input_tokens;
        self.output_tokens += r.output_tokens;
        self.cached_tokens += r.cached_tokens;
        self.reasoning_tokens += r.reasoning_tokens;
    }

    fn finish(mut self) -> Aggregate {
        self.latency_ms = Percentiles::of(std::mem::take(&mut self.latencies));
        self.ttft_ms = Percentiles::of(std::mem::take(&mut self.ttfts));
        self
    }
}

/// What to group aggregates by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    /// The model name clients asked for.
    Model,
    /// The provider that answered (last attempt).
    Provider,
    /// Provider and upstream model.
    Backend,
    /// Client key id.
    Key,
}

impl GroupBy {
    /// Parses `model`, `provider`, `backend`, `key`.
    pub fn parse(s: &str) -> Option<GroupBy> {
        Some(match s {
            "model" => GroupBy::Model,
            "provider" => GroupBy::Provider,
            "backend" => GroupBy::Backend,
            "key" => GroupBy::Key,
            _ => return None,
        })
    }

    fn of(self, r: &StoredRequest) -> String {
        match self {
            GroupBy::Model => r.model.clone(),
            GroupBy::Provider => r.provider.clone(),
            GroupBy::Backend => format!("{}/{}", r.provider, r.upstream_model),
            GroupBy::Key => r.key_id.clone(),
        }
    }
}

/// Aggregates over the records `filter` matches.
#[derive(Debug, Serialize)]
pub struct Aggregates {
    /// Per group, largest first.
    pub groups: Vec<Aggregate>,
    /// Over all matched records.
    pub total: Aggregate,
    /// Earliest and latest arrival among them (ms since the epoch).
    pub first_ms: Option<u64>,
    /// See `first_ms`.
    pub last_ms: Option<u64>,
}

/// Aggregates the records `filter` matches, grouped by `group_by`.
pub fn aggregate(
    store: &Store,
    filter: &Filter,
    group_by: GroupBy,
) -> Result<Aggregates, redb::Error> {
    let txn = store.db().begin_read()?;
    let requests = txn.open_table(REQUESTS)?;
    let mut groups: BTreeMap<String, Aggregate> = BTreeMap::new();
    let mut total = Aggregate::default();
    let (mut first_ms, mut last_ms) = (None, None);
    for entry in requests.range(filter.keys())? {
        let (key, value) = entry?;
        let Ok(record) = serde_json::from_slice::<StoredRequest>(value.value()) else {
            continue;
        };
        if !filter.matches(&record) {
            continue;
        }
        let at = key_time_ms(key.value());
        first_ms = first_ms.or(Some(at));
        last_ms = Some(at);
        total.add(&record);
        groups.entry(group_by.of(&record)).or_default().add(&record);
    }
    let mut groups: Vec<Aggregate> = groups
        .into_iter()
        .map(|(group, agg)| Aggregate { group, ..agg }.finish())
        .collect();
    groups.sort_by(|a, b| b.requests.cmp(&a.requests).then(a.group.cmp(&b.group)));
    Ok(Aggregates {
        groups,
        total: total.finish(),
        first_ms,
        last_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::{record, tempdir};
    use super::*;
    use crate::config::schema::StorageConfig;

    fn filled() -> std::sync::Arc<Store> {
        let store = Store::open(&tempdir().join("q.redb"), &StorageConfig::default()).unwrap();
        let mut batch = Vec::new();
        for i in 0..30u64 {
            let mut r = record(&format!("r{i:02}"), 1_000_000 + i * 1000);
            r.model = if i % 3 == 0 { "fast" } else { "smart" }.into();
            r.latency_ms = i as f64;
            if i % 10 == 9 {
                r.status = 429;
                r.error_kind = Some("rate_limited".into());
            }
            batch.push(r);
        }
        let mut seq = 0;
        store.write(&batch, &mut seq, true).unwrap();
        store
    }

    #[test]
    fn pages_go_newest_first_and_end() {
        let store = filled();
        let filter = Filter::default();
        let first = list(&store, &filter, 12, None, 10_000).unwrap();
        assert_eq!(first.items[0].id, "r29");
        assert_eq!(first.items[11].id, "r18");
        let cursor = first.next_cursor.unwrap().parse().unwrap();
        let second = list(&store, &filter, 12, Some(cursor), 10_000).unwrap();
        assert_eq!(second.items[0].id, "r17");
        let cursor = second.next_cursor.unwrap().parse().unwrap();
        let last = list(&store, &filter, 12, Some(cursor), 10_000).unwrap();
        assert_eq!(last.items.len(), 6);
        assert_eq!(last.next_cursor, None);
        store.close();
    }

    #[test]
    fn filters_combine() {
        let store = filled();
        let filter = Filter {
            model: Some("smart".into()),
            status: Some("4xx".into()),
            from_ms: Some(1_010_000),
            ..Filter::default()
        };
        let page = list(&store, &filter, 100, None, 10_000).unwrap();
        let ids: Vec<_> = page.items.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["r29", "r19"]);
        assert!(status_matches("error", 500) && !status_matches("ok", 500));
        assert!(status_matches("200", 200) && !status_matches("5xx", 429));
        store.close();
    }

    #[test]
    fn aggregates_group_and_rank() {
        let store = filled();
        let agg = aggregate(&store, &Filter::default(), GroupBy::Model).unwrap();
        assert_eq!(agg.total.requests, 30);
        assert_eq!(agg.total.errors, 3);
        assert_eq!(agg.total.errors_by_kind["rate_limited"], 3);
        assert_eq!(agg.groups[0].group, "smart");
        assert_eq!(agg.groups[0].requests, 20);
        assert_eq!(agg.groups[1].requests, 10);
        assert_eq!(agg.total.input_tokens, 300);
        // 27 successes with latencies 0..29 minus 9, 19, 29.
        let p = agg.total.latency_ms.as_ref().unwrap();
        assert_eq!((p.p50, p.max), (14.0, 28.0));
        assert_eq!(agg.first_ms, Some(1_000_000));
        store.close();
    }
}
