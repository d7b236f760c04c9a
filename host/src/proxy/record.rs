//! What the gateway remembers of each request: route taken, attempts,
//! timings, usage, outcome. Finished once per request: written to the log
//! (`target: llmgate::request`), counted in the metrics, and queued for the
//! request store.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use super::Call;
use crate::config::Capture;
use crate::error::GatewayError;
use crate::metrics::{Metrics, RequestOutcome};
use crate::plugins::{ErrorKind, Usage};
use crate::store::{CapturedBody, Store, StoredAttempt, StoredRequest};

/// Where finished records go.
pub struct Recorder {
    /// The request store, unless storage is off.
    pub store: Option<Arc<Store>>,
    /// The metrics.
    pub metrics: Arc<Metrics>,
}

/// One upstream attempt.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    /// Provider name.
    pub provider: String,
    /// Upstream model.
    pub model: String,
    /// Which of the provider's keys was used.
    pub key_index: Option<usize>,
    /// HTTP status from upstream, if any answer came.
    pub status: Option<u16>,
    /// Why it failed, if it did: kind and message.
    pub error: Option<(&'static str, String)>,
    /// How long it took.
    pub duration: Duration,
}

impl AttemptRecord {
    /// `ok`, or the error kind (`unreachable` for transport failures).
    pub fn outcome(&self) -> &'static str {
        match &self.error {
            None => "ok",
            Some((kind, _)) => kind,
        }
    }
}

/// The record of one client request.
pub struct RequestRecord {
    recorder: Arc<Recorder>,
    /// Gateway request id.
    pub id: String,
    /// The client key's id.
    pub key_id: Arc<str>,
    /// What was asked for: `chat`, `count_tokens`.
    pub endpoint: &'static str,
    /// Wall-clock start.
    pub at: SystemTime,
    started: Instant,
    /// Client dialect.
    pub ingress: String,
    /// The model name the client asked for.
    pub alias: String,
    /// Whether the client asked for a stream.
    pub stream: bool,
    /// Every upstream attempt, in order.
    pub attempts: Vec<AttemptRecord>,
    /// Status returned to the client.
    pub status: u16,
    /// Error kind, for failures.
    pub error_kind: Option<ErrorKind>,
    /// Error message, for failures.
    pub error: Option<String>,
    /// Time to first byte sent to the client.
    pub ttft: Option<Duration>,
    /// Usage reported by the upstream.
    pub usage: Option<Usage>,
    /// What translation dropped, in both directions.
    pub notes: Vec<String>,
    /// Body capture for this request's model, when on.
    pub capture: Option<Arc<Capture>>,
    /// The client's body, kept when capturing.
    pub request_body: Option<bytes::Bytes>,
    /// The client's answer so far, kept when capturing (at most the cap).
    pub response_body: Vec<u8>,
    /// Whether the answer outgrew the cap.
    pub response_cut: bool,
    emitted: bool,
}

impl RequestRecord {
    /// A record for `call`, started now.
    pub fn new(call: &Call) -> Self {
        call.recorder
            .metrics
            .in_flight
            .fetch_add(1, Ordering::Relaxed);
        RequestRecord {
            recorder: Arc::clone(&call.recorder),
            id: call.id.clone(),
            key_id: Arc::clone(&call.key_id),
            endpoint: "chat",
            at: SystemTime::now(),
            started: call.started,
            ingress: call.ingress.dialect().to_string(),
            alias: String::new(),
            stream: false,
            attempts: Vec::new(),
            status: 0,
            error_kind: None,
            error: None,
            ttft: None,
            usage: None,
            notes: Vec::new(),
            capture: None,
            request_body: None,
            response_body: Vec::new(),
            response_cut: false,
            emitted: false,
        }
    }

    /// Keeps `bytes` of the answer, when capturing, up to the cap.
    pub fn capture_response(&mut self, bytes: &[u8]) {
        let Some(capture) = &self.capture else {
            return;
        };
        let room = capture.max_bytes.saturating_sub(self.response_body.len());
        self.response_body
            .extend_from_slice(&bytes[..bytes.len().min(room)]);
        self.response_cut |= bytes.len() > room;
    }

    /// Time since the request arrived.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Marks the request failed with `err`.
    pub fn fail(&mut self, err: &GatewayError) {
        self.status = err.status().as_u16();
        self.error_kind = Some(err.to_plugin_error().kind);
        self.error = Some(err.to_string());
    }

    /// Finishes the record once the answer is written: a spawned task runs
    /// only after the connection's task yields, which it does after writing
    /// the response, so a whole answer does not wait for the log line,
    /// metrics and store hand-off (about a tenth of the gateway's time per
    /// request). Its latency then runs to the last byte written, as a
    /// stream's does.
    pub fn emit_after_response(&mut self) {
        use tracing::Instrument;
        let mut record = self.hand_over();
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move { record.emit() }.instrument(tracing::Span::current()));
            }
            Err(_) => record.emit(),
        }
    }

    /// Moves the record out (to a stream that finishes it later), leaving
    /// a spent one behind that will not be written.
    pub fn hand_over(&mut self) -> RequestRecord {
        let spent = RequestRecord {
            recorder: Arc::clone(&self.recorder),
            id: String::new(),
            key_id: Arc::clone(&self.key_id),
            endpoint: self.endpoint,
            at: self.at,
            started: self.started,
            ingress: String::new(),
            alias: String::new(),
            stream: self.stream,
            attempts: Vec::new(),
            status: self.status,
            error_kind: None,
            error: None,
            ttft: None,
            usage: None,
            notes: Vec::new(),
            capture: None,
            request_body: None,
            response_body: Vec::new(),
            response_cut: false,
            emitted: true,
        };
        std::mem::replace(self, spent)
    }

    /// The attempt trail in one header-safe line:
    /// `provider/model:outcome, ...` where outcome is `ok` or the error kind.
    pub fn trail(&self) -> String {
        self.attempts
            .iter()
            .map(|a| format!("{}/{}:{}", a.provider, a.model, a.outcome()))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Writes the record out, once: log line, metrics, store.
    pub fn emit(&mut self) {
        if std::mem::replace(&mut self.emitted, true) {
            return;
        }
        let latency = self.elapsed();
        let last = self.attempts.last();
        let usage = self.usage.unwrap_or(Usage {
            input_tokens: 0,
            output_tokens: 0,
            cached_input_tokens: None,
            reasoning_tokens: None,
        });
        let provider = last.map(|a| a.provider.as_str()).unwrap_or("");
        let upstream_model = last.map(|a| a.model.as_str()).unwrap_or("");
        let nonzero = |n: Option<u32>| n.filter(|&n| n > 0);
        let notes = (!self.notes.is_empty()).then(|| self.notes.join("; "));
        let line = LogLine {
            id: &self.id,
            key_id: &self.key_id,
            ingress: &self.ingress,
            model: &self.alias,
            provider,
            upstream_model,
            status: self.status,
            error_kind: self.error_kind.map(|k| k.as_str()),
            attempts: self.trail(),
            stream: self.stream,
            latency_ms: millis(latency),
            ttft_ms: self.ttft.map(millis),
            input_tokens: usage.input_tokens,
            output_tokens: usage.output_tokens,
            cached_tokens: nonzero(usage.cached_input_tokens),
            reasoning_tokens: nonzero(usage.reasoning_tokens),
            translation_notes: notes.as_deref(),
        };
        if crate::log_output::plain_text()
            && tracing::enabled!(target: "llmgate::request", tracing::Level::INFO)
        {
            let span = format!("request{{id={}}}", self.id);
            crate::log_output::info_line(&span, "llmgate::request", &line.plain_fields());
        } else {
            line.event();
        }

        let metrics = &self.recorder.metrics;
        metrics.in_flight.fetch_sub(1, Ordering::Relaxed);
        for a in &self.attempts {
            metrics.attempt(&a.provider, &a.model, a.outcome());
        }
        metrics.request(&RequestOutcome {
            model: &self.alias,
            provider,
            status: self.status,
            error_kind: self.error_kind.map(|k| k.as_str()),
            latency,
            ttft: self.ttft.filter(|_| self.stream),
            usage: self.usage,
            failovers: self.attempts.len().saturating_sub(1) as u64,
        });

        if let Some(store) = &self.recorder.store {
            let ms = |d: Duration| d.as_secs_f64() * 1000.0;
            let (request_body, response_body) = match &self.capture {
                Some(capture) => {
                    let keep = |body: &[u8], cut: bool| {
                        let (text, truncated) = capture.keep(body);
                        CapturedBody {
                            text,
                            truncated: truncated || cut,
                        }
                    };
                    (
                        self.request_body.as_deref().map(|b| keep(b, false)),
                        Some(keep(&self.response_body, self.response_cut)),
                    )
                }
                None => (None, None),
            };
            store.submit(StoredRequest {
                id: std::mem::take(&mut self.id),
                time_ms: self
                    .at
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64),
                key_id: self.key_id.to_string(),
                ingress: std::mem::take(&mut self.ingress),
                endpoint: self.endpoint.to_string(),
                provider: provider.to_string(),
                upstream_model: upstream_model.to_string(),
                model: std::mem::take(&mut self.alias),
                status: self.status,
                error_kind: self.error_kind.map(|k| k.as_str().to_string()),
                error: self.error.take(),
                attempts: self
                    .attempts
                    .drain(..)
                    .map(|a| StoredAttempt {
                        outcome: a.outcome().to_string(),
                        error: a.error.map(|(_, message)| message),
                        provider: a.provider,
                        model: a.model,
                        key_index: a.key_index,
                        status: a.status,
                        duration_ms: ms(a.duration),
                    })
                    .collect(),
                stream: self.stream,
                latency_ms: ms(latency),
                ttft_ms: self.ttft.map(ms),
                input_tokens: u64::from(usage.input_tokens),
                output_tokens: u64::from(usage.output_tokens),
                cached_tokens: u64::from(usage.cached_input_tokens.unwrap_or(0)),
                reasoning_tokens: u64::from(usage.reasoning_tokens.unwrap_or(0)),
                notes: std::mem::take(&mut self.notes),
                request_body,
                response_body,
            });
        }
    }
}

/// The fields of the line every request logs. Fields that are empty for
/// most requests (no error, not streamed, no cache, no translation) are left
/// out rather than printed as zeros.
struct LogLine<'a> {
    id: &'a str,
    key_id: &'a str,
    ingress: &'a str,
    model: &'a str,
    provider: &'a str,
    upstream_model: &'a str,
    status: u16,
    error_kind: Option<&'a str>,
    attempts: String,
    stream: bool,
    latency_ms: f64,
    ttft_ms: Option<f64>,
    input_tokens: u32,
    output_tokens: u32,
    cached_tokens: Option<u32>,
    reasoning_tokens: Option<u32>,
    translation_notes: Option<&'a str>,
}

impl LogLine<'_> {
    /// As a tracing event (JSON logs, colours, or a filter that wants it).
    fn event(&self) {
        tracing::info!(
            target: "llmgate::request",
            request_id = %self.id,
            key = %self.key_id,
            ingress = %self.ingress,
            model = self.model,
            provider = self.provider,
            upstream_model = self.upstream_model,
            status = self.status,
            error_kind = self.error_kind,
            attempts = %self.attempts,
            stream = self.stream,
            latency_ms = self.latency_ms,
            ttft_ms = self.ttft_ms,
            input_tokens = self.input_tokens,
            output_tokens = self.output_tokens,
            cached_tokens = self.cached_tokens,
            reasoning_tokens = self.reasoning_tokens,
            translation_notes = self.translation_notes,
            "request"
        );
    }

    /// The same fields as [`Self::event`] gives them in plain text, formatted
    /// directly (see `log_output::info_line`). Strings are quoted and
    /// escaped (the model is the client's); the gateway's own names are not.
    fn plain_fields(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::with_capacity(320);
        let _ = write!(
            out,
            "request request_id={} key={} ingress={} model={:?} provider={:?} \
             upstream_model={:?} status={}",
            self.id,
            self.key_id,
            self.ingress,
            self.model,
            self.provider,
            self.upstream_model,
            self.status
        );
        if let Some(kind) = self.error_kind {
            let _ = write!(out, " error_kind={kind:?}");
        }
        let _ = write!(
            out,
            " attempts={} stream={} latency_ms={:?}",
            self.attempts, self.stream, self.latency_ms
        );
        if let Some(ttft) = self.ttft_ms {
            let _ = write!(out, " ttft_ms={ttft:?}");
        }
        let _ = write!(
            out,
            " input_tokens={} output_tokens={}",
            self.input_tokens, self.output_tokens
        );
        if let Some(n) = self.cached_tokens {
            let _ = write!(out, " cached_tokens={n}");
        }
        if let Some(n) = self.reasoning_tokens {
            let _ = write!(out, " reasoning_tokens={n}");
        }
        if let Some(notes) = self.translation_notes {
            let _ = write!(out, " translation_notes={notes:?}");
        }
        out
    }
}

/// Milliseconds to the microsecond, which prints short (`0.167`, not
/// `0.16715100000000002`).
fn millis(d: Duration) -> f64 {
    d.as_micros() as f64 / 1000.0
}

impl Drop for RequestRecord {
    fn drop(&mut self) {
        if !self.emitted {
            // Dropped unfinished: the client went away mid-request.
            if self.status == 0 {
                self.status = 499;
            }
            self.emit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the subscriber prints for `line.event()`, after the target.
    fn through_tracing(line: &LogLine<'_>) -> String {
        let text = crate::log_output::format_events(true, || line.event());
        text.split_once("llmgate::request: ")
            .expect("the target")
            .1
            .trim_end()
            .to_string()
    }

    #[test]
    fn the_plain_request_line_is_the_events_line() {
        let mut line = LogLine {
            id: "198374a5e51e7000",
            key_id: "alice",
            ingress: "openai",
            model: "a \"model\"\nwith a newline",
            provider: "mock",
            upstream_model: "mock-small",
            status: 200,
            error_kind: None,
            attempts: "down/m:server_error, mock/mock-small:ok".into(),
            stream: false,
            latency_ms: 2.0,
            ttft_ms: None,
            input_tokens: 210,
            output_tokens: 8,
            cached_tokens: None,
            reasoning_tokens: None,
            translation_notes: None,
        };
        assert_eq!(line.plain_fields(), through_tracing(&line));
        line.error_kind = Some("rate_limited");
        line.stream = true;
        line.latency_ms = 0.125;
        line.ttft_ms = Some(0.05);
        line.cached_tokens = Some(3);
        line.reasoning_tokens = Some(4);
        line.translation_notes = Some("dropped: \"logprobs\"");
        assert_eq!(line.plain_fields(), through_tracing(&line));
        assert!(
            line.plain_fields()
                .contains(r#"model="a \"model\"\nwith a newline""#)
        );
    }
}
