//! One upstream attempt: the adapter builds the request, the host puts the
//! key where the adapter asked, sends it, and turns the answer into a client
//! response (whole bodies here, streams in [`super::stream`]) or an error
//! the pipeline can fail over on.

use std::time::Instant;

use bytes::Bytes;
use http::Response;

use super::Call;
use super::record::{AttemptRecord, RequestRecord};
use super::stream;
use crate::config::{Provider, Route};
use crate::error::GatewayError;
use crate::plugins::{CallContext, ErrorKind, Header, UpstreamRequest};
use crate::server::{ResponseBody, full_body};
use crate::upstream::{Deadline, UpstreamBody, build_request};

/// Error bodies are read for classification only; a provider that sends
/// megabytes of HTML on a 502 gets cut off here.
const MAX_ERROR_BODY: usize = 64 << 10;

/// Where one attempt goes.
pub struct Target<'a> {
    /// The route being tried.
    pub route: &'a Route,
    /// The provider key to use: (index in the ring, key).
    pub key: Option<(usize, &'a str)>,
    /// Client and upstream speak the same dialect.
    pub native: bool,
    /// The client asked for a stream.
    pub stream: bool,
    /// The name the client asked for.
    pub client_model: &'a str,
    /// What the ingress adapter noted when decoding the request.
    pub encoder_note: &'a str,
    /// What decoding the client's request dropped (translated attempts only).
    pub ingress_notes: &'a [String],
}

/// Runs one attempt; on success the response is ready for the client.
pub async fn run(
    call: &Call,
    target: Target<'_>,
    body: &[u8],
    record: &mut RequestRecord,
) -> Result<Response<ResponseBody>, GatewayError> {
    let route = target.route;
    let provider = &route.provider;
    let started = Instant::now();
    let in_flight = route.stats.begin();
    let ctx = CallContext {
        upstream_model: route.upstream_model.clone(),
        stream: target.stream,
        options: provider.options_json.clone(),
        unix_time: super::unix_time(),
    };
    // Streams have no total timeout, but the wait for the response head is
    // bounded like any silence inside the stream. A whole answer's head and
    // body share `timeout`.
    let wait = match target.stream {
        true => provider.stream_idle_timeout,
        false => provider.timeout,
    };
    let deadline = Deadline::after(wait);
    let outcome = send(call, &target, &ctx, body, deadline).await;
    let (status, result) = match outcome {
        Ok(ok) => (Some(ok.status().as_u16()), Ok(ok)),
        Err((status, err)) => (status, Err(err)),
    };
    record.attempts.push(AttemptRecord {
        provider: provider.name.clone(),
        model: route.upstream_model.clone(),
        key_index: target.key.map(|(i, _)| i),
        status,
        error: result.as_ref().err().map(|e| (e.label(), e.to_string())),
        duration: started.elapsed(),
    });
    let upstream = match result {
        Ok(upstream) => {
            record.notes = target.ingress_notes.to_vec();
            record
                .notes
                .extend(upstream.translation_notes.iter().cloned());
            upstream
        }
        Err(err) => {
            // A refusal before sending says nothing about the backend's health.
            if !matches!(err, GatewayError::Untranslatable { .. }) {
                route.stats.record(false, started.elapsed(), None);
            }
            return Err(err);
        }
    };

    if target.stream {
        let note = upstream.stream_note.clone();
        return stream::open(stream::Opening {
            call,
            route,
            ctx,
            native: target.native,
            note,
            client_model: target.client_model,
            encoder_note: target.encoder_note,
            upstream: upstream.response,
            started,
            in_flight,
            record,
        })
        .await;
    }

    let result = read_whole(call, &target, &ctx, upstream.response, deadline).await;
    route.stats.record(result.is_ok(), started.elapsed(), None);
    drop(in_flight);
    let (body, usage) = match result {
        Ok(ok) => ok,
        Err(err) => {
            if let Some(attempt) = record.attempts.last_mut() {
                attempt.error = Some((err.label(), err.to_string()));
            }
            return Err(err);
        }
    };
    record.status = 200;
    record.usage = usage;
    record.capture_response(&body);
    let mut response = Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(full_body(body))
        .expect("static parts make a valid response");
    if call.route_headers {
        add_route_headers(&mut response, record);
    }
    add_translation_notes(&mut response, record);
    record.emit_after_response();
    Ok(response)
}

/// The opt-in headers naming the backend that answered and the trail.
pub fn add_route_headers<B>(response: &mut Response<B>, record: &RequestRecord) {
    let headers = response.headers_mut();
    if let Some(last) = record.attempts.last() {
        for (name, value) in [
            ("x-llmgate-provider", &last.provider),
            ("x-llmgate-model", &last.model),
        ] {
            if let Ok(value) = http::HeaderValue::from_str(value) {
                headers.insert(name, value);
            }
        }
    }
    if let Ok(value) = http::HeaderValue::from_str(&record.trail()) {
        headers.insert("x-llmgate-attempts", value);
    }
}

/// `x-llmgate-translation-notes`: what translation dropped, when it dropped anything.
pub fn add_translation_notes<B>(response: &mut Response<B>, record: &RequestRecord) {
    if record.notes.is_empty() {
        return;
    }
    if let Ok(value) = http::HeaderValue::from_str(&record.notes.join("; ")) {
        response
            .headers_mut()
            .insert("x-llmgate-translation-notes", value);
    }
}

/// A 2xx upstream answer whose body is still to be read.
struct Upstream {
    response: http::Response<UpstreamBody>,
    stream_note: String,
    translation_notes: Vec<String>,
}

impl Upstream {
    fn status(&self) -> http::StatusCode {
        self.response.status()
    }
}

/// Builds and sends the request; non-2xx answers come back classified.
async fn send(
    call: &Call,
    target: &Target<'_>,
    ctx: &CallContext,
    body: &[u8],
    deadline: Deadline,
) -> Result<Upstream, (Option<u16>, GatewayError)> {
    let provider = &target.route.provider;
    let untranslatable = |message: String| GatewayError::Untranslatable {
        adapter: provider.adapter.name().to_string(),
        message,
    };
    let request = provider
        .adapter
        .build_request(ctx, body, target.native)
        .map_err(|e| (None, e))?
        .map_err(|e| {
            let err = match e.kind {
                ErrorKind::BadRequest | ErrorKind::ContextLength | ErrorKind::ContentFilter => {
                    untranslatable(e.message)
                }
                _ => GatewayError::Plugin {
                    plugin: provider.adapter.name().to_string(),
                    message: e.message,
                },
            };
            (None, err)
        })?;
    let UpstreamRequest {
        method,
        path_and_query,
        mut headers,
        body,
        auth,
        stream_note,
        translation_notes,
    } = request;
    if call.strict && !translation_notes.is_empty() {
        let message = format!(
            "strict translation refused: {}",
            translation_notes.join("; ")
        );
        return Err((None, untranslatable(message)));
    }
    if target.native {
        for beta in &call.beta_headers {
            if !headers
                .iter()
                .any(|h| h.name.eq_ignore_ascii_case(&beta.name))
            {
                headers.push(beta.clone());
            }
        }
    }
    let request = build_request(
        provider,
        target.key.map(|(_, key)| key),
        &method,
        &path_and_query,
        headers,
        body,
        &auth,
    )
    .map_err(|e| (None, e))?;
    tracing::debug!(request_id = %call.id, provider = %provider.name, "sending upstream");
    let response = provider
        .http
        .send(request, deadline)
        .await
        .map_err(|e| (None, e.at(&provider.name)))?;
    let status = response.status();
    if status.is_success() {
        return Ok(Upstream {
            response,
            stream_note,
            translation_notes,
        });
    }
    Err(classify_failure(provider, response, deadline).await)
}

/// Reads a non-2xx answer (until `deadline`) and classifies it: the
/// adapter's verdict, then the operator's `error_rules`.
pub(crate) async fn classify_failure(
    provider: &Provider,
    response: http::Response<UpstreamBody>,
    deadline: Deadline,
) -> (Option<u16>, GatewayError) {
    let (parts, body) = response.into_parts();
    let status = parts.status;
    let headers: Vec<Header> = parts
        .headers
        .iter()
        .filter_map(|(name, value)| {
            Some(Header {
                name: name.as_str().to_string(),
                value: value.to_str().ok()?.to_string(),
            })
        })
        .collect();
    // A body that stalls past the deadline is classified by what came of it.
    let body = body.capped(MAX_ERROR_BODY, deadline).await;
    let mut error = match provider
        .adapter
        .classify_error(status.as_u16(), &headers, &body)
    {
        Ok(error) => error,
        Err(e) => return (Some(status.as_u16()), e),
    };
    if let Some(rule) = provider
        .error_rules
        .iter()
        .find(|r| r.matches(status.as_u16(), &body))
    {
        error.kind = rule.kind;
    }
    (
        Some(status.as_u16()),
        GatewayError::Upstream {
            provider: provider.name.clone(),
            error,
        },
    )
}

/// Reads a whole 2xx body (until `deadline`) and makes the client's answer from it.
async fn read_whole(
    call: &Call,
    target: &Target<'_>,
    ctx: &CallContext,
    response: http::Response<UpstreamBody>,
    deadline: Deadline,
) -> Result<(Bytes, Option<crate::plugins::Usage>), GatewayError> {
    let provider = &target.route.provider;
    let upstream_error = |error| GatewayError::Upstream {
        provider: provider.name.clone(),
        error,
    };
    let body = response
        .into_body()
        .bytes(deadline)
        .await
        .map_err(|e| e.at(&provider.name))?;
    let parsed = provider
        .adapter
        .parse_response(ctx, &body, target.native)?
        .map_err(upstream_error)?;
    let out = match parsed.body {
        // Native: the upstream's bytes go to the client untouched.
        None => body,
        Some(canonical) => Bytes::from(
            call.ingress
                .encode_response(&canonical, target.client_model)?
                .map_err(upstream_error)?,
        ),
    };
    Ok((out, parsed.usage))
}
