//! The request log: every request's record, with its usage, kept in an
//! embedded redb file.
//!
//! Requests never wait on the disk. [`Store::submit`] pushes the record onto
//! an in-memory queue under a mutex and returns; one writer thread wakes
//! every `flush_interval`, takes the whole queue and commits it in one
//! transaction, made durable (fsync) once per `sync_interval`: the commits
//! between are visible to readers at once and persisted by the next durable
//! one (redb rolls back to the last durable commit after a crash). The writer is not woken per record: on a busy
//! core a wake-up per request is a context switch, which costs more than
//! the record itself (the same lesson as the log writer, see `main.rs`).
//! When the queue is full, new records are dropped, counted and logged.
//!
//! The writer runs at the idle scheduling policy (`sched::run_when_idle`):
//! a batch is a few milliseconds of CPU (about a thousand records at 5k
//! requests/s), and at normal priority a request arriving during one
//! waited for it, which was the whole of c=1's p99 beyond nginx's. At idle
//! priority it only uses the time requests leave. When they leave none (a
//! saturated core), the queue grows; past [`BEHIND`] records (the writer
//! was woken at [`FLUSH_AT`] and has not run), every [`PAUSE_EVERY`]th
//! submit sleeps the submitting thread for [`PAUSE`], and that is the CPU
//! the writer catches up with. So under overload the request log costs
//! some throughput, as it did at normal priority, and loses nothing; below
//! it, it costs requests no waiting.
//!
//! Layout: table `requests` maps a time-ordered `u64` (arrival time in
//! microseconds, shifted left 10 bits, plus a sequence number) to the
//! record as JSON. The gateway's request id *is* that key in hex
//! ([`new_request_id`]), so finding a record by id is one lookup and every
//! insert lands at the right edge of one B-tree. (An index from random ids
//! to keys cost more than everything else the writer does: random inserts
//! touch, and so rewrite, most of the index's pages at every commit.) Table
//! `request_ids` is only for the rare record whose key could not be its id
//! (a clock stepped back onto a used key). JSON keeps the format readable
//! and lets fields be added without a migration. Queries are in [`query`].

pub mod query;
pub mod rollup;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::config::schema::StorageConfig;

/// Records by time-ordered key.
const REQUESTS: TableDefinition<u64, &[u8]> = TableDefinition::new("requests");
/// Request id to key in [`REQUESTS`].
const REQUEST_IDS: TableDefinition<&str, u64> = TableDefinition::new("request_ids");
/// The configuration, when it is managed in the store (no config file):
/// key `current`, the TOML text.
const CONFIG: TableDefinition<&str, &str> = TableDefinition::new("config");

/// A batch this large is flushed at once rather than at the interval
/// (about a tenth of a second at 5k requests/s): past it, waiting only
/// grows the queue's memory, and each record costs the same either way.
const FLUSH_AT: usize = 512;
/// Queued records that mean the writer is starved: it was woken at
/// [`FLUSH_AT`] and has not run since. From here submitting threads pause
/// to give it the core. Measured under a saturating c=64 load, the queue
/// peaked under 3,000 records (a few MiB, with the batch being written).
const BEHIND: usize = 2 * FLUSH_AT;
/// While behind, one submit in this many pauses...
const PAUSE_EVERY: usize = 16;
/// ...for this long (at least: timer slack adds about 50 us). About 6 us
/// of writer time per record queued, twice what the writer spends on one,
/// so the writer gains on the queue and the pauses stop. The writer uses
/// the pauses whole (measured: core 0 was 0 % idle at c=64 while they
/// ran), so ending one early when the writer has made a step gained
/// nothing. One in 32 let the queue sit higher (RSS 85 MiB against 65),
/// over the memory budget.
const PAUSE: Duration = Duration::from_micros(100);

/// Why the writer should wake before its interval.
#[derive(Default)]
struct Wake {
    closing: bool,
    flush_now: bool,
}

/// How often retention runs. Deleting by age and count is cheap; a minute
/// keeps the file within a minute's traffic of its limit.
const RETENTION_EVERY: Duration = Duration::from_secs(60);
/// Most records one retention pass deletes, so one pass never holds the
/// write transaction long enough to delay the next batch noticeably.
const RETENTION_BATCH: u64 = 20_000;

/// One upstream attempt, as stored.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StoredAttempt {
    /// Provider name.
    pub provider: String,
    /// Upstream model.
    pub model: String,
    /// Which of the provider's keys (its position in config).
    pub key_index: Option<usize>,
    /// HTTP status from upstream, if an answer came.
    pub status: Option<u16>,
    /// `ok`, or the error kind.
    pub outcome: String,
    /// What went wrong, if anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Duration of the attempt.
    pub duration_ms: f64,
}

/// One client request, as stored and as the admin API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StoredRequest {
    /// Gateway request id (`x-request-id`).
    pub id: String,
    /// Arrival, in milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// The client key's id (its configured name or a hash), never the key.
    pub key_id: String,
    /// Client dialect.
    pub ingress: String,
    /// What the client asked for: an endpoint (`chat`, `count_tokens`...).
    #[serde(default)]
    pub endpoint: String,
    /// The model name the client asked for.
    pub model: String,
    /// Provider of the last attempt.
    pub provider: String,
    /// Upstream model of the last attempt.
    pub upstream_model: String,
    /// Status returned to the client (499: the client went away).
    pub status: u16,
    /// Error kind, for failures.
    pub error_kind: Option<String>,
    /// Error message, for failures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Every upstream attempt in order.
    pub attempts: Vec<StoredAttempt>,
    /// Whether the answer was streamed.
    pub stream: bool,
    /// Arrival to last byte.
    pub latency_ms: f64,
    /// Arrival to first byte sent to the client.
    pub ttft_ms: Option<f64>,
    /// Input tokens, as the upstream reported them.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Input tokens served from a prompt cache.
    pub cached_tokens: u64,
    /// Output tokens spent on reasoning.
    pub reasoning_tokens: u64,
    /// What translation dropped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// The client's request body, when capture is on (masked, maybe cut).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_body: Option<CapturedBody>,
    /// The answer the client got (for streams, every event as sent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_body: Option<CapturedBody>,
}

/// A captured body.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CapturedBody {
    /// The text, with secrets masked.
    pub text: String,
    /// Whether it was cut at `capture.max_bytes`.
    pub truncated: bool,
}

/// Counters the metrics and admin API show.
#[derive(Debug, Default)]
pub struct StoreStats {
    /// Records committed.
    pub written: AtomicU64,
    /// Records dropped because the queue was full.
    pub dropped: AtomicU64,
    /// Pauses of submitting threads for a writer that fell behind.
    pub pauses: AtomicU64,
    /// Batches that failed to commit (their records are lost).
    pub write_errors: AtomicU64,
    /// Records deleted by retention.
    pub expired: AtomicU64,
}

/// The open store and its writer thread.
pub struct Store {
    db: Arc<Database>,
    path: PathBuf,
    queue: Mutex<Vec<StoredRequest>>,
    capacity: usize,
    /// Wakes the writer early: for shutdown, or for a batch of [`FLUSH_AT`].
    wake: (Mutex<Wake>, Condvar),
    closed: AtomicBool,
    writer: Mutex<Option<JoinHandle<()>>>,
    /// The largest record key written: a new key above it cannot be taken,
    /// so only keys at or below it are looked up before an insert.
    newest_key: AtomicU64,
    /// Counters.
    pub stats: StoreStats,
}

/// Where the store file is: `path` as configured, relative ones under
/// `$LLMGATE_DATA_DIR` or else beside the config file.
pub fn resolve_path(config: &StorageConfig, config_dir: &Path) -> PathBuf {
    crate::config::data_path(&config.path, config_dir)
}

impl Store {
    /// Opens (or creates) the store at `path` and starts its writer.
    pub fn open(path: &Path, config: &StorageConfig) -> anyhow::Result<Arc<Store>> {
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(|e| {
                anyhow::anyhow!("creating the store directory {}: {e}", dir.display())
            })?;
        }
        let db = Database::builder()
            .set_cache_size(config.cache_mb.max(1) << 20)
            .create(path)
            .map_err(|e| open_error(path, e))?;
        let txn = db.begin_write()?;
        let newest_key = {
            use redb::ReadableTable;
            let requests = txn.open_table(REQUESTS)?;
            requests.last()?.map_or(0, |(key, _)| key.value())
        };
        txn.open_table(REQUEST_IDS)?;
        txn.open_table(CONFIG)?;
        txn.open_table(rollup::ROLLUPS)?;
        txn.open_table(rollup::HOURLY)?;
        txn.commit()?;
        let store = Arc::new(Store {
            db: Arc::new(db),
            path: path.to_path_buf(),
            queue: Mutex::new(Vec::new()),
            capacity: config.queue_capacity.max(1),
            wake: (Mutex::new(Wake::default()), Condvar::new()),
            closed: AtomicBool::new(false),
            writer: Mutex::new(None),
            newest_key: AtomicU64::new(newest_key),
            stats: StoreStats::default(),
        });
        let writer = Writer {
            store: Arc::clone(&store),
            flush_every: Duration::from_millis(config.flush_interval_ms.max(1)),
            sync_every: Duration::from_millis(config.sync_interval_ms),
            synced_at: Instant::now(),
            unsynced: false,
            max_age: Duration::from_secs(u64::from(config.retention_days) * 86_400),
            max_records: config.max_records,
            sequence: 0,
        };
        let handle = std::thread::Builder::new()
            .name("llmgate-store".into())
            .spawn(move || writer.run())?;
        *store.writer.lock().expect("writer lock") = Some(handle);
        Ok(store)
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Queues a record for the writer. Never blocks on the disk.
    pub fn submit(&self, record: StoredRequest) {
        let mut queue = self.queue.lock().expect("queue lock");
        if queue.len() >= self.capacity || self.closed.load(Ordering::Relaxed) {
            drop(queue);
            let dropped = self.stats.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            // The first drop and then every thousandth: a full queue is loud
            // without flooding the log it is already behind on.
            if dropped == 1 || dropped.is_multiple_of(1000) {
                tracing::warn!(
                    dropped_total = dropped,
                    "request log queue full ({} records): dropping record {}",
                    self.capacity,
                    record.id
                );
            }
            return;
        }
        queue.push(record);
        let depth = queue.len();
        drop(queue);
        if depth == FLUSH_AT {
            let (flag, wake) = &self.wake;
            flag.lock().expect("wake lock").flush_now = true;
            wake.notify_one();
        }
        if depth >= BEHIND && depth.is_multiple_of(PAUSE_EVERY) {
            // Deliberately blocking, even on a runtime thread: the point is
            // to leave the core to the idle-priority writer (see above).
            self.stats.pauses.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(PAUSE);
        }
    }

    /// The store-managed configuration's TOML text, if one was saved.
    pub fn config_text(&self) -> Result<Option<String>, redb::Error> {
        use redb::ReadableDatabase;
        let txn = self.db.begin_read()?;
        let table = txn.open_table(CONFIG)?;
        Ok(table.get("current")?.map(|v| v.value().to_string()))
    }

    /// Saves the store-managed configuration (committed before returning).
    pub fn save_config_text(&self, text: &str) -> Result<(), redb::Error> {
        let txn = self.db.begin_write()?;
        txn.open_table(CONFIG)?.insert("current", text)?;
        txn.commit()?;
        Ok(())
    }

    /// Records waiting for the writer.
    pub fn queue_depth(&self) -> usize {
        self.queue.lock().expect("queue lock").len()
    }

    /// Stops taking records, commits what is queued and stops the writer.
    pub fn close(&self) {
        if self.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        let (flag, wake) = &self.wake;
        flag.lock().expect("wake lock").closing = true;
        wake.notify_all();
        if let Some(handle) = self.writer.lock().expect("writer lock").take() {
            let _ = handle.join();
        }
    }

    /// The database, for queries.
    pub(crate) fn db(&self) -> &Database {
        &self.db
    }

    /// Makes every earlier commit durable: an empty commit with an fsync.
    fn sync(&self) -> Result<(), redb::Error> {
        self.db.begin_write()?.commit()?;
        Ok(())
    }

    /// Commits `batch` in one transaction, with an fsync if `durable`.
    /// `sequence` makes keys unique.
    fn write(
        &self,
        batch: &[StoredRequest],
        sequence: &mut u64,
        durable: bool,
    ) -> Result<(), redb::Error> {
        let mut txn = self.db.begin_write()?;
        if !durable {
            txn.set_durability(redb::Durability::None)?;
        }
        let mut newest = self.newest_key.load(Ordering::Relaxed);
        let mut deltas = rollup::Deltas::default();
        {
            let mut requests = txn.open_table(REQUESTS)?;
            let mut ids = txn.open_table(REQUEST_IDS)?;
            let mut json = Vec::with_capacity(1024);
            for record in batch {
                *sequence = sequence.wrapping_add(1);
                let from_id = key_of_id(&record.id, record.time_ms);
                let mut key =
                    from_id.unwrap_or_else(|| record_key(record.time_ms * 1000, *sequence));
                // Taken (a clock stepped back, or an id not made here): the
                // next free key, found again through `request_ids`. Ids made
                // here increase, so this is rarely more than a comparison.
                if key <= newest {
                    while requests.get(key)?.is_some() {
                        key += 1;
                    }
                }
                newest = newest.max(key);
                json.clear();
                serde_json::to_writer(&mut json, record).expect("records serialize");
                requests.insert(key, json.as_slice())?;
                if from_id != Some(key) {
                    ids.insert(record.id.as_str(), key)?;
                }
                deltas.add(record);
            }
        }
        deltas.write(&txn)?;
        txn.commit()?;
        self.newest_key.fetch_max(newest, Ordering::Relaxed);
        Ok(())
    }

    /// Deletes records older than `max_age` and beyond `max_records`, at
    /// most [`RETENTION_BATCH`] per call. Returns how many went.
    fn expire(&self, max_age: Duration, max_records: u64) -> Result<u64, redb::Error> {
        let cutoff_ms = unix_ms().saturating_sub(max_age.as_millis() as u64);
        let cutoff = record_key(cutoff_ms * 1000, 0);
        let txn = self.db.begin_write()?;
        let mut removed = 0;
        {
            let mut requests = txn.open_table(REQUESTS)?;
            let mut ids = txn.open_table(REQUEST_IDS)?;
            let over = requests.len()?.saturating_sub(max_records);
            // Only the rare records listed in `request_ids` need their id read.
            let indexed = !ids.is_empty()?;
            let mut gone: Vec<String> = Vec::new();
            while removed < RETENTION_BATCH {
                let (key, id) = {
                    let Some((key, value)) = requests.first()? else {
                        break;
                    };
                    let id = indexed
                        .then(|| serde_json::from_slice::<IdOnly>(value.value()).ok())
                        .flatten();
                    (key.value(), id.map(|i| i.id))
                };
                if key >= cutoff && removed >= over {
                    break;
                }
                gone.extend(id);
                requests.remove(key)?;
                removed += 1;
            }
            for id in &gone {
                ids.remove(id.as_str())?;
            }
        }
        rollup::expire(&txn, cutoff_ms)?;
        txn.commit()?;
        Ok(removed)
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        // The writer holds an Arc to the store, so this runs after it ended.
        self.closed.store(true, Ordering::Relaxed);
    }
}

#[derive(Deserialize)]
struct IdOnly {
    id: String,
}

/// The writer thread's state.
struct Writer {
    store: Arc<Store>,
    flush_every: Duration,
    sync_every: Duration,
    /// When the last durable commit was made.
    synced_at: Instant,
    /// Whether commits were made since then.
    unsynced: bool,
    max_age: Duration,
    max_records: u64,
    sequence: u64,
}

impl Writer {
    fn synced(&mut self) {
        self.synced_at = Instant::now();
        self.unsynced = false;
    }

    fn run(mut self) {
        let idle = crate::sched::run_when_idle();
        tracing::debug!(idle, "request log writer at the idle scheduling policy");
        let mut last_retention: Option<Instant> = None;
        loop {
            let closing = {
                let (flag, wake) = &self.store.wake;
                let guard = flag.lock().expect("wake lock");
                let (mut guard, _) = wake
                    .wait_timeout_while(guard, self.flush_every, |w| !w.closing && !w.flush_now)
                    .expect("wake lock");
                guard.flush_now = false;
                guard.closing
            };
            self.flush(false);
            if last_retention.is_none_or(|at| at.elapsed() >= RETENTION_EVERY) {
                last_retention = Some(Instant::now());
                match self.store.expire(self.max_age, self.max_records) {
                    Ok(0) => {}
                    Ok(n) => {
                        self.store.stats.expired.fetch_add(n, Ordering::Relaxed);
                        tracing::info!("request log retention deleted {n} records");
                    }
                    Err(e) => tracing::error!("request log retention failed: {e}"),
                }
            }
            if closing {
                // Records submitted while the last batch was written; durable.
                self.flush(true);
                return;
            }
        }
    }

    /// Commits what is queued; durably when `closing` or a sync is due.
    /// With nothing queued, commits nothing, but still makes earlier
    /// commits durable when a sync is due, so a quiet gateway's records
    /// reach the disk within a sync interval too.
    fn flush(&mut self, closing: bool) {
        let batch = std::mem::take(&mut *self.store.queue.lock().expect("queue lock"));
        let durable = closing || self.synced_at.elapsed() >= self.sync_every;
        if batch.is_empty() {
            if durable && self.unsynced {
                match self.store.sync() {
                    Ok(()) => self.synced(),
                    Err(e) => tracing::error!(
                        "syncing the request log {} failed: {e}",
                        self.store.path.display()
                    ),
                }
            }
            return;
        }
        match self.store.write(&batch, &mut self.sequence, durable) {
            Ok(()) => {
                self.store
                    .stats
                    .written
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                match durable {
                    true => self.synced(),
                    false => self.unsynced = true,
                }
            }
            Err(e) => {
                self.store
                    .stats
                    .write_errors
                    .fetch_add(1, Ordering::Relaxed);
                tracing::error!(
                    "writing {} request records to {} failed: {e}",
                    batch.len(),
                    self.store.path.display()
                );
            }
        }
    }
}

/// The table key for a record that arrived at `time_us`: time in the high
/// bits, so keys sort by time; 10 bits of sequence keep them unique.
fn record_key(time_us: u64, sequence: u64) -> u64 {
    (time_us << 10) | (sequence & 0x3ff)
}

/// A new request id: the key its record will be stored under, as 16 hex
/// digits. Keys are strictly increasing within the process (at least one
/// more than the last, at least the current time), so two requests never
/// share one, and they sort by arrival.
pub fn new_request_id() -> String {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = record_key(unix_us(), 0);
    let previous = LAST
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| {
            Some(now.max(last + 1))
        })
        .expect("the update always succeeds");
    format!("{:016x}", now.max(previous + 1))
}

/// The key a request id made by [`new_request_id`] stands for, if `id` is
/// one and its time agrees with the record's (within an hour: ids from
/// elsewhere fall back to the `request_ids` table).
fn key_of_id(id: &str, time_ms: u64) -> Option<u64> {
    if id.len() != 16 {
        return None;
    }
    let key = u64::from_str_radix(id, 16).ok()?;
    (key_time_ms(key).abs_diff(time_ms) <= 3_600_000).then_some(key)
}

/// The arrival time (ms) a key encodes.
fn key_time_ms(key: u64) -> u64 {
    (key >> 10) / 1000
}

/// Microseconds since the Unix epoch.
fn unix_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Milliseconds since the Unix epoch.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// An error opening the store, saying what to do about it.
fn open_error(path: &Path, e: redb::DatabaseError) -> anyhow::Error {
    let at = path.display();
    match e {
        redb::DatabaseError::DatabaseAlreadyOpen => anyhow::anyhow!(
            "the request log {at} is locked by another process (is another llmgate using it?)"
        ),
        redb::DatabaseError::Storage(redb::StorageError::Corrupted(why)) => anyhow::anyhow!(
            "the request log {at} is corrupt ({why}); move it away to start with an empty one"
        ),
        redb::DatabaseError::UpgradeRequired(_) => anyhow::anyhow!(
            "the request log {at} was written by an older format; move it away to start a new one"
        ),
        other => anyhow::anyhow!(
            "opening the request log {at}: {other} (if the file is not a redb database, move it away)"
        ),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn record(id: &str, time_ms: u64) -> StoredRequest {
        StoredRequest {
            id: id.into(),
            time_ms,
            key_id: "alice".into(),
            ingress: "openai".into(),
            endpoint: "chat".into(),
            model: "smart".into(),
            provider: "mock".into(),
            upstream_model: "mock-small".into(),
            status: 200,
            error_kind: None,
            error: None,
            attempts: vec![],
            stream: false,
            latency_ms: 12.5,
            ttft_ms: None,
            input_tokens: 10,
            output_tokens: 5,
            cached_tokens: 0,
            reasoning_tokens: 0,
            notes: vec![],
            request_body: None,
            response_body: None,
        }
    }

    fn config() -> StorageConfig {
        StorageConfig {
            flush_interval_ms: 10,
            ..StorageConfig::default()
        }
    }

    #[test]
    fn records_survive_close_and_reopen() {
        let dir = tempdir();
        let path = dir.join("log.redb");
        let store = Store::open(&path, &config()).unwrap();
        let now = unix_ms();
        store.submit(record("a", now));
        store.submit(record("b", now));
        store.close();
        assert_eq!(store.stats.written.load(Ordering::Relaxed), 2);
        drop(store);
        let store = Store::open(&path, &config()).unwrap();
        let got = query::get(&store, "b").unwrap().expect("b was stored");
        assert_eq!(got, record("b", now));
        store.close();
    }

    #[test]
    fn commits_between_syncs_are_visible_at_once_and_durable_at_close() {
        let dir = tempdir();
        let path = dir.join("log.redb");
        let quick = StorageConfig {
            flush_interval_ms: 10,
            sync_interval_ms: 3_600_000,
            ..config()
        };
        let store = Store::open(&path, &quick).unwrap();
        let id = new_request_id();
        store.submit(record(&id, unix_ms()));
        let deadline = Instant::now() + Duration::from_secs(5);
        while query::get(&store, &id).unwrap().is_none() {
            assert!(
                Instant::now() < deadline,
                "a non-durable commit is readable"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        store.close();
        drop(store);
        let store = Store::open(&path, &quick).unwrap();
        assert!(
            query::get(&store, &id).unwrap().is_some(),
            "closing synced it"
        );
        store.close();
    }

    #[test]
    fn a_locked_file_is_a_clear_error() {
        let dir = tempdir();
        let path = dir.join("log.redb");
        let store = Store::open(&path, &config()).unwrap();
        let err = Store::open(&path, &config())
            .err()
            .expect("second open fails");
        assert!(
            err.to_string().contains("locked by another process"),
            "{err}"
        );
        store.close();
    }

    #[test]
    fn a_file_that_is_not_a_database_is_a_clear_error() {
        let dir = tempdir();
        let path = dir.join("log.redb");
        std::fs::write(&path, vec![0x5a; 8192]).unwrap();
        let err = Store::open(&path, &config()).err().expect("garbage fails");
        assert!(err.to_string().contains("move it away"), "{err}");
    }

    #[test]
    fn retention_deletes_old_and_excess_records() {
        let dir = tempdir();
        let store = Store::open(&dir.join("log.redb"), &config()).unwrap();
        let now = unix_ms();
        let day = 86_400_000;
        let mut sequence = 0;
        let batch: Vec<_> = (0..10)
            .map(|i| record(&format!("r{i}"), now - (9 - i) * day))
            .collect();
        store.write(&batch, &mut sequence, true).unwrap();
        // Older than 5 days: r0..r3 (9, 8, 7, 6 days old) go.
        let removed = store
            .expire(Duration::from_secs(5 * 86_400 + 3600), 100)
            .unwrap();
        assert_eq!(removed, 4);
        // At most 3 records: the oldest of the rest go.
        let removed = store.expire(Duration::from_secs(30 * 86_400), 3).unwrap();
        assert_eq!(removed, 3);
        assert!(query::get(&store, "r6").unwrap().is_none());
        assert!(query::get(&store, "r7").unwrap().is_some());
        store.close();
    }

    #[test]
    fn a_full_queue_drops_and_counts() {
        let dir = tempdir();
        let store = Store::open(
            &dir.join("log.redb"),
            &StorageConfig {
                queue_capacity: 2,
                flush_interval_ms: 60_000,
                ..StorageConfig::default()
            },
        )
        .unwrap();
        for i in 0..5 {
            store.submit(record(&format!("r{i}"), unix_ms()));
        }
        assert_eq!(store.stats.dropped.load(Ordering::Relaxed), 3);
        assert_eq!(store.queue_depth(), 2);
        store.close();
        assert_eq!(store.stats.written.load(Ordering::Relaxed), 2);
    }

    /// A store whose writer's interval (ten minutes) never comes in a test.
    fn open_without_interval(dir: &Path) -> Arc<Store> {
        let config = StorageConfig {
            flush_interval_ms: 600_000,
            ..StorageConfig::default()
        };
        Store::open(&dir.join("log.redb"), &config).unwrap()
    }

    #[test]
    fn a_full_batch_is_written_without_waiting_for_the_interval() {
        let dir = tempdir();
        let store = open_without_interval(&dir);
        // Below FLUSH_AT, the writer waits for its (ten-minute) interval...
        for i in 0..FLUSH_AT - 1 {
            store.submit(record(&format!("r{i}"), unix_ms()));
        }
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(store.stats.written.load(Ordering::Relaxed), 0);
        // ...the record that makes a full batch wakes it.
        store.submit(record("last", unix_ms()));
        let deadline = Instant::now() + Duration::from_secs(30);
        while store.stats.written.load(Ordering::Relaxed) < FLUSH_AT as u64 {
            assert!(Instant::now() < deadline, "the full batch was not written");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(query::get(&store, "last").unwrap().is_some());
        store.close();
    }

    #[test]
    fn a_writer_that_cannot_write_is_given_time_and_loses_nothing() {
        let dir = tempdir();
        let store = open_without_interval(&dir);
        // The writer is stuck behind this transaction, as a starved writer
        // is stuck behind request threads: the queue passes BEHIND.
        // (It takes one batch when woken at FLUSH_AT, then blocks: when is
        // up to the scheduler, so submit until the queue behind it pauses.)
        let blocker = store.db().begin_write().unwrap();
        let mut total = 0;
        while store.stats.pauses.load(Ordering::Relaxed) == 0 {
            assert!(total < 10 * BEHIND, "no submitting thread paused");
            store.submit(record(&format!("r{total}"), unix_ms()));
            total += 1;
        }
        drop(blocker);
        store.close();
        assert_eq!(store.stats.written.load(Ordering::Relaxed), total as u64);
        assert_eq!(store.stats.dropped.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn request_ids_are_increasing_keys_of_their_time() {
        let before = unix_ms();
        let ids: Vec<String> = (0..2000).map(|_| new_request_id()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "strictly increasing");
        let key = key_of_id(&ids[0], before).expect("an id is a key");
        assert!(key_time_ms(key).abs_diff(before) < 1000);
        // Not one of ours: a random id of the same shape, a short one.
        assert_eq!(key_of_id("93f4bbb62545fabb", before), None);
        assert_eq!(key_of_id("r1", before), None);
    }

    #[test]
    fn keys_sort_by_time() {
        assert!(record_key(2_000, 1023) < record_key(2_001, 0));
        assert_eq!(key_time_ms(record_key(5_000_000, 7)), 5_000);
    }

    /// A fresh directory under the target dir's tmp.
    pub(crate) fn tempdir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "llmgate-store-test-{}-{:x}",
            std::process::id(),
            crate::proxy::random_u64()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
