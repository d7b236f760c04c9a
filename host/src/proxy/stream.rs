//! Streaming answers: upstream bytes -> whole SSE events -> the adapter's
//! stream decoder -> (translated: the ingress encoder) -> client bytes, one
//! read at a time, nothing buffered beyond the event being framed.
//!
//! The response is committed only once there is something to send, so a
//! stream that fails before its first event still fails over. After that,
//! errors (an upstream `error` event, a reset, garbage, silence past the idle
//! timeout) end the stream with an error event in the client's dialect.

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use http::Response;
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};

use super::Call;
use super::record::RequestRecord;
use crate::balance::{BackendStats, InFlight};
use crate::config::{Provider, Route};
use crate::error::GatewayError;
use crate::plugins::{
    AdapterPlugin, CallContext, Decoded, DecoderSession, EncoderSession, PluginError, SseEvent,
    Usage,
};
use crate::server::ResponseBody;
use crate::sse::{SseFramer, encode_events};
use crate::upstream::{TransportError, UpstreamBody};

/// Largest single SSE event accepted from upstream. Events carry one delta
/// each, but some carry whole tool-call arguments or inline images; 16 MiB
/// fits those and still stops an upstream that never ends an event.
const MAX_EVENT_BYTES: usize = 16 << 20;

type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, TransportError>> + Send>>;

/// Everything needed to start streaming one attempt's answer.
pub struct Opening<'a> {
    pub call: &'a Call,
    pub route: &'a Route,
    pub ctx: CallContext,
    pub native: bool,
    pub note: String,
    pub client_model: &'a str,
    pub encoder_note: &'a str,
    pub upstream: http::Response<UpstreamBody>,
    pub started: Instant,
    pub in_flight: InFlight,
    pub record: &'a mut RequestRecord,
}

/// Starts the client's stream, or fails (and may fail over) if the upstream
/// ends or errs before producing anything to send.
pub async fn open(o: Opening<'_>) -> Result<Response<ResponseBody>, GatewayError> {
    let provider = Arc::clone(&o.route.provider);
    let decoder = provider.adapter.stream_decoder(&o.ctx, o.native, &o.note)?;
    let encoder = match o.native {
        true => None,
        false => Some(o.call.ingress.stream_encoder(
            o.client_model,
            o.encoder_note,
            o.ctx.unix_time,
        )?),
    };
    let mut pump = Pump {
        upstream: Box::pin(o.upstream.into_body().into_data_stream()),
        framer: SseFramer::new(MAX_EVENT_BYTES),
        decoder,
        encoder,
        ingress: Arc::clone(&o.call.ingress),
        client_model: o.client_model.to_string(),
        idle_timeout: provider.stream_idle_timeout,
        provider,
        stats: Arc::clone(&o.route.stats),
        started: o.started,
        ttft: None,
        usage: None,
        upstream_ended: false,
        finished: false,
        first: None,
        in_flight: Some(o.in_flight),
        record: None,
        span: tracing::Span::current(),
        upstream_done: false,
    };
    let first = loop {
        match pump.read().await {
            Step::Output(bytes) if bytes.is_empty() => continue,
            Step::Output(bytes) => break bytes,
            Step::End => {
                break Err(GatewayError::Upstream {
                    provider: pump.provider.name.clone(),
                    error: PluginError::upstream(
                        "the upstream closed the stream before sending anything",
                    ),
                })?;
            }
            Step::Failed(err) => {
                pump.stats.record(false, o.started.elapsed(), None);
                if let Some(attempt) = o.record.attempts.last_mut() {
                    attempt.error = Some((err.label(), err.to_string()));
                }
                pump.finished = true;
                return Err(err);
            }
        }
    };
    pump.ttft = Some(o.started.elapsed());
    o.record.ttft = Some(o.record.elapsed());
    o.record.status = 200;
    let route_headers = o.call.route_headers;
    let mut head = Response::builder()
        .status(200)
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-cache")
        .body(())
        .expect("static parts make a valid response");
    if route_headers {
        super::attempt::add_route_headers(&mut head, o.record);
    }
    super::attempt::add_translation_notes(&mut head, o.record);
    pump.record = Some(o.record.hand_over());
    pump.first = Some(first);

    let body = futures_util::stream::unfold(pump, |mut pump| async move {
        let bytes = pump.next_bytes().await?;
        Some((Ok::<_, std::io::Error>(Frame::data(bytes)), pump))
    });
    Ok(head.map(|()| StreamBody::new(body).boxed_unsync()))
}

enum Step {
    /// Bytes for the client (possibly none yet).
    Output(Bytes),
    /// The stream is over and everything was sent.
    End,
    /// The stream failed.
    Failed(GatewayError),
}

/// The state of one stream in flight.
struct Pump {
    upstream: ByteStream,
    framer: SseFramer,
    decoder: DecoderSession,
    encoder: Option<EncoderSession>,
    ingress: Arc<AdapterPlugin>,
    client_model: String,
    idle_timeout: Duration,
    provider: Arc<Provider>,
    stats: Arc<BackendStats>,
    started: Instant,
    ttft: Option<Duration>,
    usage: Option<Usage>,
    upstream_ended: bool,
    finished: bool,
    first: Option<Bytes>,
    in_flight: Option<InFlight>,
    record: Option<RequestRecord>,
    /// The request's span: the stream ends after the handler returned.
    span: tracing::Span,
    /// The upstream said its answer is complete (`[DONE]`, `message_stop`...).
    upstream_done: bool,
}

impl Pump {
    /// The next bytes for the client, or none when the stream is over.
    async fn next_bytes(&mut self) -> Option<Bytes> {
        let bytes = self.next_bytes_uncaptured().await;
        if let (Some(bytes), Some(record)) = (&bytes, self.record.as_mut()) {
            record.capture_response(bytes);
        }
        bytes
    }

    async fn next_bytes_uncaptured(&mut self) -> Option<Bytes> {
        if let Some(first) = self.first.take() {
            return Some(first);
        }
        if self.finished {
            return None;
        }
        loop {
            match self.read().await {
                Step::Output(bytes) if bytes.is_empty() => continue,
                Step::Output(bytes) => return Some(bytes),
                Step::End => {
                    self.complete(None);
                    return None;
                }
                Step::Failed(err) => {
                    let tail = self.error_events(&err);
                    self.complete(Some(&err));
                    return (!tail.is_empty()).then_some(tail);
                }
            }
        }
    }

    /// Reads one upstream chunk and turns it into client bytes.
    async fn read(&mut self) -> Step {
        if self.upstream_ended {
            return Step::End;
        }
        let next = tokio::time::timeout(self.idle_timeout, self.upstream.next()).await;
        let result = match next {
            Err(_) => Err(GatewayError::Unreachable {
                provider: self.provider.name.clone(),
                message: format!(
                    "the stream was silent for {} ms",
                    self.idle_timeout.as_millis()
                ),
                timeout: true,
            }),
            Ok(Some(Err(e))) => Err(GatewayError::Unreachable {
                provider: self.provider.name.clone(),
                message: format!("the stream broke: {}", e.message),
                timeout: e.timeout,
            }),
            Ok(Some(Ok(bytes))) => self.process(&bytes),
            Ok(None) => self.end_of_upstream(),
        };
        match result {
            Ok(bytes) => Step::Output(bytes),
            Err(err) => Step::Failed(err),
        }
    }

    fn process(&mut self, bytes: &[u8]) -> Result<Bytes, GatewayError> {
        let mut events = Vec::new();
        self.framer
            .push(bytes, &mut events)
            .map_err(|e| self.upstream_error(PluginError::upstream(e.to_string())))?;
        if events.is_empty() {
            return Ok(Bytes::new());
        }
        self.decode(&events)
    }

    fn decode(&mut self, events: &[SseEvent]) -> Result<Bytes, GatewayError> {
        let decoded = self
            .decoder
            .push(events)?
            .map_err(|e| self.upstream_error(e))?;
        self.encode(decoded)
    }

    fn encode(&mut self, decoded: Decoded) -> Result<Bytes, GatewayError> {
        if decoded.usage.is_some() {
            self.usage = decoded.usage;
        }
        self.upstream_done |= decoded.done;
        match &mut self.encoder {
            None => Ok(encode_events(&decoded.events)),
            Some(encoder) => {
                if decoded.chunks.is_empty() {
                    return Ok(Bytes::new());
                }
                let events = encoder.push(&decoded.chunks)?.map_err(internal)?;
                Ok(encode_events(&events))
            }
        }
    }

    fn end_of_upstream(&mut self) -> Result<Bytes, GatewayError> {
        self.upstream_ended = true;
        let mut out = BytesMut::new();
        let mut events = Vec::new();
        self.framer.finish(&mut events);
        if !events.is_empty() {
            out.extend_from_slice(&self.decode(&events)?);
        }
        let last = self.decoder.finish()?.map_err(|e| self.upstream_error(e))?;
        out.extend_from_slice(&self.encode(last)?);
        if let Some(encoder) = &mut self.encoder {
            out.extend_from_slice(&encode_events(&encoder.finish()?));
        }
        Ok(out.freeze())
    }

    /// The error as events in the client's dialect. Native streams have no
    /// encoder yet, so one is made for this.
    fn error_events(&mut self, err: &GatewayError) -> Bytes {
        let plugin_error = err.to_plugin_error();
        if self.encoder.is_none() {
            self.encoder = self
                .ingress
                .stream_encoder(&self.client_model, "", super::unix_time())
                .ok();
        }
        match self.encoder.as_mut().map(|e| e.fail(&plugin_error)) {
            Some(Ok(events)) => encode_events(&events),
            _ => Bytes::new(),
        }
    }

    fn upstream_error(&self, error: PluginError) -> GatewayError {
        GatewayError::Upstream {
            provider: self.provider.name.clone(),
            error,
        }
    }

    /// Ends the stream: stats, in-flight, and the request record.
    fn complete(&mut self, error: Option<&GatewayError>) {
        let span = self.span.clone();
        let _in_request = span.enter();
        self.finished = true;
        self.stats
            .record(error.is_none(), self.started.elapsed(), self.ttft);
        self.in_flight.take();
        if let Some(mut record) = self.record.take() {
            record.usage = self.usage;
            if let Some(err) = error {
                tracing::warn!(request_id = %record.id, "stream failed after it started: {err}");
                record.error_kind = Some(err.to_plugin_error().kind);
                record.error = Some(format!("stream failed after it started: {err}"));
                if let Some(attempt) = record.attempts.last_mut() {
                    attempt.error = Some((err.label(), err.to_string()));
                }
            }
            record.emit();
        }
    }
}

impl Drop for Pump {
    fn drop(&mut self) {
        if !self.finished && self.upstream_done {
            // Everything the upstream had was handed over; a client that
            // hangs up right after the last event got its whole answer.
            self.complete(None);
            return;
        }
        if !self.finished {
            // The client went away mid-stream.
            if let Some(mut record) = self.record.take() {
                let _in_request = self.span.enter();
                record.status = 499;
                record.usage = self.usage;
                record.emit();
            }
        }
    }
}

fn internal(error: PluginError) -> GatewayError {
    GatewayError::Plugin {
        plugin: "ingress encoder".into(),
        message: error.message,
    }
}
