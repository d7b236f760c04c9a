//! The host's HTTP client to providers. Every upstream call (chat, streams,
//! embeddings, token counts, connectivity checks) is an `http::Request`
//! made by [`build_request`] and sent by [`UpstreamClient::send`]; answers
//! come back as an `http::Response<UpstreamBody>` whatever sent them.
//!
//! Two senders, chosen per provider when the config is compiled:
//! - **direct**: hyper's pooled client, for plain-HTTP providers with no
//!   proxy (vLLM, Ollama, a sidecar, a load balancer inside the cluster);
//! - **reqwest**: everything else (TLS, HTTP and SOCKS proxies, proxies from
//!   the environment).
//!
//! Why not reqwest for all: its redirect layer runs even with redirects off:
//! it turns every request's URI into a `url::Url` twice (once on the way out,
//! once for the answer) and clones the request's headers. By callgrind,
//! sending through hyper directly cut a small request's cost to the whole
//! gateway from 215k instructions to 184k. Over TLS and through proxies,
//! reqwest's handling of both is worth that; on plain HTTP it buys nothing.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::config::Provider;
use crate::error::GatewayError;
use crate::plugins::{AuthPlacement, Header};

/// How one provider's requests are sent.
// One per provider: the larger variant costs nothing, a box would cost a
// pointer chase per request.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum UpstreamClient {
    /// hyper's pooled HTTP/1.1 client: plain HTTP, no proxy.
    Direct(HyperClient<HttpConnector, Full<Bytes>>),
    /// reqwest: TLS, proxies.
    Reqwest(reqwest::Client),
}

/// An upstream answer's body, from either sender.
#[derive(Debug)]
pub enum UpstreamBody {
    /// From the direct client.
    Direct(hyper::body::Incoming),
    /// From reqwest.
    Reqwest(reqwest::Body),
}

/// A failure to send or to read an answer: connection refused or reset, a
/// timeout, a malformed response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportError {
    /// The error with its causes ("connection refused" is in a cause).
    pub message: String,
    /// Whether it was a timeout.
    pub timeout: bool,
}

impl std::fmt::Display for TransportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl TransportError {
    /// As the gateway's error: `provider` is unreachable (a 502, or a 504
    /// when it timed out).
    pub fn at(self, provider: &str) -> GatewayError {
        GatewayError::Unreachable {
            provider: provider.to_string(),
            message: self.message,
            timeout: self.timeout,
        }
    }

    /// The error and its chain of causes, and whether any of them was a timeout.
    fn from_chain(err: &(dyn std::error::Error + 'static), timeout: bool) -> Self {
        let mut message = err.to_string();
        let mut timeout = timeout;
        let mut source = err.source();
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            if let Some(io) = cause.downcast_ref::<std::io::Error>() {
                timeout |= io.kind() == std::io::ErrorKind::TimedOut;
            }
            source = cause.source();
        }
        TransportError { message, timeout }
    }

    fn of_reqwest(err: &reqwest::Error) -> Self {
        Self::from_chain(err, err.is_timeout())
    }

    fn of_hyper(err: &hyper::Error) -> Self {
        Self::from_chain(err, err.is_timeout())
    }

    fn of_client(err: &hyper_util::client::legacy::Error) -> Self {
        Self::from_chain(err, false)
    }
}

impl UpstreamClient {
    /// The direct client: HTTP/1.1 with keep-alive, `TCP_NODELAY` (small
    /// writes of streamed requests must not wait for Nagle) and a connect
    /// timeout; idle connections are kept 90 s, under the two minutes after
    /// which providers close them.
    pub fn direct(connect_timeout: Duration) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(connect_timeout));
        let client = HyperClient::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(connector);
        UpstreamClient::Direct(client)
    }

    /// Whether requests go through hyper directly.
    pub fn is_direct(&self) -> bool {
        matches!(self, UpstreamClient::Direct(_))
    }

    /// Sends a request; resolves when the response head has arrived, or
    /// fails at `deadline`.
    pub async fn send(
        &self,
        request: http::Request<Bytes>,
        deadline: Deadline,
    ) -> Result<http::Response<UpstreamBody>, TransportError> {
        tokio::time::timeout_at(deadline.at, self.send_unbounded(request))
            .await
            .unwrap_or_else(|_| Err(deadline.expired()))
    }

    async fn send_unbounded(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<UpstreamBody>, TransportError> {
        match self {
            UpstreamClient::Direct(client) => {
                let response = client
                    .request(request.map(Full::new))
                    .await
                    .map_err(|e| TransportError::of_client(&e))?;
                Ok(response.map(UpstreamBody::Direct))
            }
            UpstreamClient::Reqwest(client) => {
                let request = reqwest::Request::try_from(request)
                    .map_err(|e| TransportError::of_reqwest(&e))?;
                let response = client
                    .execute(request)
                    .await
                    .map_err(|e| TransportError::of_reqwest(&e))?;
                Ok(http::Response::<reqwest::Body>::from(response).map(UpstreamBody::Reqwest))
            }
        }
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = TransportError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, TransportError>>> {
        match self.get_mut() {
            UpstreamBody::Direct(body) => Pin::new(body)
                .poll_frame(cx)
                .map_err(|e| TransportError::of_hyper(&e)),
            UpstreamBody::Reqwest(body) => Pin::new(body)
                .poll_frame(cx)
                .map_err(|e| TransportError::of_reqwest(&e)),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpstreamBody::Direct(body) => body.is_end_stream(),
            UpstreamBody::Reqwest(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpstreamBody::Direct(body) => body.size_hint(),
            UpstreamBody::Reqwest(body) => body.size_hint(),
        }
    }
}

impl UpstreamBody {
    /// The next chunk of data (trailers are skipped), `None` at the end.
    pub async fn chunk(&mut self) -> Option<Result<Bytes, TransportError>> {
        loop {
            match self.frame().await? {
                Ok(frame) => match frame.into_data() {
                    Ok(data) => return Some(Ok(data)),
                    Err(_trailers) => continue,
                },
                Err(e) => return Some(Err(e)),
            }
        }
    }

    /// The whole body, or an error at `deadline`.
    pub async fn bytes(self, deadline: Deadline) -> Result<Bytes, TransportError> {
        match tokio::time::timeout_at(deadline.at, self.collect()).await {
            Ok(collected) => Ok(collected?.to_bytes()),
            Err(_) => Err(deadline.expired()),
        }
    }

    /// At most `cap` bytes of the body; what is past them is not read. A
    /// body that breaks off or stalls past `deadline` gives what came before.
    pub async fn capped(mut self, cap: usize, deadline: Deadline) -> Vec<u8> {
        let mut out = Vec::new();
        while let Ok(Some(Ok(chunk))) = tokio::time::timeout_at(deadline.at, self.chunk()).await {
            let room = cap.saturating_sub(out.len());
            out.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if out.len() >= cap {
                break;
            }
        }
        out
    }
}

/// When an upstream call gives up: one timer for the head and the body of
/// an answer, as reqwest's total timeout was.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    at: tokio::time::Instant,
    budget: Duration,
}

impl Deadline {
    /// `budget` from now.
    pub fn after(budget: Duration) -> Self {
        Deadline {
            at: tokio::time::Instant::now() + budget,
            budget,
        }
    }

    fn expired(&self) -> TransportError {
        TransportError {
            message: format!("no response within {} ms", self.budget.as_millis()),
            timeout: true,
        }
    }
}

/// Turns what an adapter built into a request to the provider: the
/// provider's URL for the path, the adapter's headers, then the operator's
/// `headers` where the adapter set none of that name, and the key where the
/// adapter asked for it.
pub fn build_request(
    provider: &Provider,
    key: Option<&str>,
    method: &str,
    path_and_query: &str,
    headers: Vec<Header>,
    body: Vec<u8>,
    auth: &AuthPlacement,
) -> Result<http::Request<Bytes>, GatewayError> {
    let plugin_error = |message: String| GatewayError::Plugin {
        plugin: provider.adapter.name().to_string(),
        message,
    };
    let method = http::Method::from_bytes(method.as_bytes()).map_err(|_| {
        plugin_error(format!(
            "built a request with the invalid method '{method}'"
        ))
    })?;
    let invalid_url = |e: String| {
        plugin_error(format!(
            "built an invalid URL '{}{path_and_query}': {e}",
            provider.base_url
        ))
    };
    let mut uri = provider.uri(path_and_query).map_err(invalid_url)?;
    if let (AuthPlacement::Query(param), Some(key)) = (auth, key) {
        let separator = if uri.query().is_some() { '&' } else { '?' };
        let with_key = format!("{uri}{separator}{param}={}", percent_encode(key));
        uri = http::Uri::try_from(with_key).map_err(|e| invalid_url(e.to_string()))?;
    }
    let mut map = HeaderMap::with_capacity(headers.len() + provider.headers.len() + 1);
    for Header { name, value } in headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| plugin_error(format!("built an invalid header name '{name}'")))?;
        let value = HeaderValue::try_from(value)
            .map_err(|_| plugin_error(format!("built an invalid value for header '{name}'")))?;
        map.append(name, value);
    }
    for (name, value) in &provider.headers {
        if !map.contains_key(name) {
            map.insert(name.clone(), value.clone());
        }
    }
    match (auth, key) {
        (AuthPlacement::Bearer, Some(key)) => {
            map.insert(
                AUTHORIZATION,
                secret_value(provider, &format!("Bearer {key}"))?,
            );
        }
        (AuthPlacement::Header(name), Some(key)) => {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| plugin_error(format!("asked for the key in header '{name}'")))?;
            map.insert(name, secret_value(provider, key)?);
        }
        _ => {}
    }
    let mut request = http::Request::new(Bytes::from(body));
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.headers_mut() = map;
    Ok(request)
}

/// A header value holding a key, marked so that it is never logged.
/// Config validation rejects keys a header cannot carry, so failing here
/// means the provider is misconfigured, not the client's request: a 502
/// that fails over, like any provider that cannot be reached.
fn secret_value(provider: &Provider, value: &str) -> Result<HeaderValue, GatewayError> {
    let mut value = HeaderValue::from_str(value).map_err(|_| GatewayError::Unreachable {
        provider: provider.name.clone(),
        message: "its key holds characters an HTTP header cannot carry".into(),
        timeout: false,
    })?;
    value.set_sensitive(true);
    Ok(value)
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Whether reqwest would send a plain-HTTP request through a proxy named in
/// the environment (it reads these, as curl does). When one is set the
/// provider goes through reqwest, which also honours `NO_PROXY`.
pub fn environment_proxy_for_http() -> bool {
    ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"]
        .iter()
        .any(|name| std::env::var_os(name).is_some_and(|v| !v.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_keys_are_percent_encoded() {
        assert_eq!(percent_encode("AIza-x_y.z~"), "AIza-x_y.z~");
        assert_eq!(percent_encode("a b&c"), "a%20b%26c");
    }

    #[test]
    fn causes_are_in_the_message_and_timeouts_are_found_in_them() {
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("tcp connect error")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let refused = Outer(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "Connection refused",
        ));
        let err = TransportError::from_chain(&refused, false);
        assert_eq!(err.message, "tcp connect error: Connection refused");
        assert!(!err.timeout);
        let slow = Outer(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "timed out",
        ));
        assert!(TransportError::from_chain(&slow, false).timeout);
    }

    /// A server that sends a response head promising 100 bytes, then 10
    /// of them, then nothing: what a provider stalling mid-answer does.
    async fn stalling_server() -> std::net::SocketAddr {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = socket.read(&mut buf).await;
                    let head = "HTTP/1.1 500 Internal Server Error\r\ncontent-length: 100\r\n\r\n";
                    let _ = socket.write_all(head.as_bytes()).await;
                    let _ = socket.write_all(b"0123456789").await;
                    tokio::time::sleep(Duration::from_secs(30)).await;
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn a_body_that_stalls_fails_at_the_deadline_or_gives_what_came() {
        let addr = stalling_server().await;
        let client = UpstreamClient::direct(Duration::from_secs(1));
        let request = || {
            let mut r = http::Request::new(Bytes::from_static(b"{}"));
            *r.method_mut() = http::Method::POST;
            *r.uri_mut() = format!("http://{addr}/v1/chat/completions")
                .parse()
                .unwrap();
            r
        };
        let deadline = Deadline::after(Duration::from_millis(200));
        let response = client.send(request(), deadline).await.unwrap();
        assert_eq!(response.status(), 500);
        let err = response.into_body().bytes(deadline).await.unwrap_err();
        assert!(err.timeout);
        assert_eq!(err.message, "no response within 200 ms");

        let deadline = Deadline::after(Duration::from_millis(200));
        let response = client.send(request(), deadline).await.unwrap();
        let started = std::time::Instant::now();
        let partial = response.into_body().capped(64, deadline).await;
        assert_eq!(partial, b"0123456789");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn a_refused_connection_names_its_cause() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let client = UpstreamClient::direct(Duration::from_secs(1));
        let mut request = http::Request::new(Bytes::new());
        *request.uri_mut() = format!("http://127.0.0.1:{port}/").parse().unwrap();
        let err = client
            .send(request, Deadline::after(Duration::from_secs(5)))
            .await
            .unwrap_err();
        assert!(!err.timeout);
        assert!(
            err.message.to_lowercase().contains("connection refused"),
            "{}",
            err.message
        );
    }
}
