//! What the gateway remembers of each request: route taken, attempts,
//! timings, usage, outcome. Emitted once per request as a structured log
//! event (`target: llmgate::request`).

use std::time::{Duration, Instant, SystemTime};

use super::Call;
use crate::error::GatewayError;
use crate::plugins::{ErrorKind, Usage};

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
#[derive(Debug)]
pub struct RequestRecord {
    /// Gateway request id.
    pub id: String,
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
    /// Time to first byte sent to the client.
    pub ttft: Option<Duration>,
    /// Usage reported by the upstream.
    pub usage: Option<Usage>,
    /// What translation dropped, in both directions.
    pub notes: Vec<String>,
    emitted: bool,
}

impl RequestRecord {
    /// A record for `call`, started now.
    pub fn new(call: &Call) -> Self {
        RequestRecord {
            id: call.id.clone(),
            at: SystemTime::now(),
            started: call.started,
            ingress: call.ingress.dialect().to_string(),
            alias: String::new(),
            stream: false,
            attempts: Vec::new(),
            status: 0,
            error_kind: None,
            ttft: None,
            usage: None,
            notes: Vec::new(),
            emitted: false,
        }
    }

    /// Time since the request arrived.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Marks the request failed with `err`.
    pub fn fail(&mut self, err: &GatewayError) {
        self.status = err.status().as_u16();
        self.error_kind = Some(err.to_plugin_error().kind);
    }

    /// Moves the record out (to a stream that finishes it later), leaving
    /// an emptied one behind that will not be written.
    pub fn hand_over(&mut self) -> RequestRecord {
        let moved = RequestRecord {
            id: self.id.clone(),
            at: self.at,
            started: self.started,
            ingress: std::mem::take(&mut self.ingress),
            alias: std::mem::take(&mut self.alias),
            stream: self.stream,
            attempts: std::mem::take(&mut self.attempts),
            status: self.status,
            error_kind: self.error_kind,
            ttft: self.ttft,
            usage: self.usage,
            notes: std::mem::take(&mut self.notes),
            emitted: self.emitted,
        };
        self.emitted = true;
        moved
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

    /// Writes the record out, once.
    pub fn emit(&mut self) {
        if std::mem::replace(&mut self.emitted, true) {
            return;
        }
        let last = self.attempts.last();
        let usage = self.usage.unwrap_or(Usage {
            input_tokens: 0,
            output_tokens: 0,
            cached_input_tokens: None,
            reasoning_tokens: None,
        });
        tracing::info!(
            target: "llmgate::request",
            request_id = %self.id,
            ingress = %self.ingress,
            model = %self.alias,
            provider = last.map(|a| a.provider.as_str()).unwrap_or(""),
            upstream_model = last.map(|a| a.model.as_str()).unwrap_or(""),
            status = self.status,
            error_kind = self.error_kind.map(|k| k.as_str()).unwrap_or(""),
            attempts = %self.trail(),
            stream = self.stream,
            latency_ms = self.elapsed().as_secs_f64() * 1000.0,
            ttft_ms = self.ttft.map(|t| t.as_secs_f64() * 1000.0).unwrap_or(0.0),
            input_tokens = usage.input_tokens,
            output_tokens = usage.output_tokens,
            cached_tokens = usage.cached_input_tokens.unwrap_or(0),
            reasoning_tokens = usage.reasoning_tokens.unwrap_or(0),
            translation_notes = %self.notes.join("; "),
            "request"
        );
    }
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
