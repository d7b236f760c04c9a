"""Operator essentials through the real binary: enable switches, flexible
OpenAI paths, per-provider outbound settings (headers, proxy, TLS
verification), body capture, environment overrides with a store-managed
config, connectivity checks."""

import http.server
import os
import socket
import ssl
import subprocess
import textwrap
import threading
import time

import httpx
import openai
import pytest

from conftest import (
    wait_for,
    ADMIN_TOKEN, BIN_DIR, CLIENT_KEY, PROVIDER_KEY, Mock, free_port, gateway_config, mock_stats, provider,
)

PING = [{"role": "user", "content": "ping"}]
REPLY = "Hello from mock! You said: ping"


def client(gw, base: str = "/v1") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gw.url}{base}", api_key=CLIENT_KEY, max_retries=0)




def generation(gw) -> int:
    return gw.admin("config").json()["reload"]["generation"]


@pytest.fixture
def mock_b():
    m = Mock("--key", PROVIDER_KEY, "--chunks", "4")
    yield m
    m.stop()


def split_config(url_a: str, url_b: str, route_b_enabled: bool = True, provider_b_enabled: bool = True) -> str:
    providers = provider("a", url_a) + provider("b", url_b).replace(
        'name = "b"', f'name = "b"\nenabled = {str(provider_b_enabled).lower()}')
    models = textwrap.dedent(
        f"""
        [[models]]
        name = "split"
        routes = [
          {{ provider = "a", model = "mock-small" }},
          {{ provider = "b", model = "mock-small", enabled = {str(route_b_enabled).lower()} }},
        ]

        [[models]]
        name = "parked"
        enabled = false
        routes = [{{ provider = "a", model = "mock-small" }}]
        """
    )
    return gateway_config(url_a, extra_providers=providers, models=models)


def test_a_disabled_route_gets_no_traffic_until_reenabled(mock, mock_b, start_gateway):
    """The issue's acceptance scenario: disabling a route by editing the config
    takes its traffic away, re-enabling brings it back, without a restart."""
    gw = start_gateway(split_config(mock.url, mock_b.url))
    c = client(gw)

    def b_count():
        return mock_stats(mock_b)["models"].get("mock-small", 0)

    for _ in range(20):
        c.chat.completions.create(model="split", messages=PING)
    assert b_count() > 0

    gw.write_config(split_config(mock.url, mock_b.url, route_b_enabled=False))
    wait_for(lambda: generation(gw) == 2, what="reload")
    before = b_count()
    for _ in range(40):
        assert c.chat.completions.create(model="split", messages=PING).choices[0].message.content == REPLY
    assert b_count() == before, "a disabled route gets nothing"
    routes = next(m for m in gw.admin("backends").json()["models"] if m["name"] == "split")["routes"]
    assert [r["enabled"] for r in routes] == [True, False]

    gw.write_config(split_config(mock.url, mock_b.url))
    wait_for(lambda: generation(gw) == 3, what="reload")
    for _ in range(40):
        c.chat.completions.create(model="split", messages=PING)
    assert b_count() > before, "re-enabled: traffic is back"

    # A disabled provider takes its routes out the same way.
    gw.write_config(split_config(mock.url, mock_b.url, provider_b_enabled=False))
    wait_for(lambda: generation(gw) == 4, what="reload")
    before = b_count()
    for _ in range(20):
        c.chat.completions.create(model="split", messages=PING)
    assert b_count() == before
    providers = {p["name"]: p for p in gw.admin("backends").json()["providers"]}
    assert providers["b"]["enabled"] is False


def test_a_disabled_model_is_refused_and_not_listed(mock, mock_b, start_gateway):
    gw = start_gateway(split_config(mock.url, mock_b.url))
    c = client(gw)
    with pytest.raises(openai.APIStatusError) as caught:
        c.chat.completions.create(model="parked", messages=PING)
    assert caught.value.status_code == 503
    assert "disabled" in caught.value.message
    listed = {m.id for m in c.models.list()}
    assert "split" in listed and "parked" not in listed
    models = {m["name"]: m for m in gw.admin("backends").json()["models"]}
    assert models["parked"]["enabled"] is False


@pytest.mark.parametrize("base", ["/v1", "/v1beta/openai", "/v2", "/api/v1", "/openai/v1"])
def test_openai_paths_under_any_version_prefix(gateway, base):
    c = client(gateway, base)
    assert c.chat.completions.create(model="smart", messages=PING).choices[0].message.content == REPLY
    assert "smart" in {m.id for m in c.models.list()}


def test_healthz(gateway):
    assert httpx.get(f"{gateway.url}/healthz").json() == {"status": "ok"}


class ForwardProxy(http.server.ThreadingHTTPServer):
    """A plain HTTP forward proxy (absolute-form requests), counting what it relays."""

    def __init__(self):
        self.relayed: list[str] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                outer.relayed.append(self.path)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "proxy-connection", "connection")}
                upstream = httpx.post(self.path, content=body, headers=headers)
                self.send_response(upstream.status_code)
                self.send_header("content-type", upstream.headers.get("content-type", "application/json"))
                self.send_header("content-length", str(len(upstream.content)))
                self.end_headers()
                self.wfile.write(upstream.content)

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        threading.Thread(target=self.serve_forever, daemon=True).start()


class TlsRelay:
    """Terminates TLS with a certificate from a throwaway CA and relays the
    bytes to `target` (host, port): an HTTPS upstream nobody trusts."""

    def __init__(self, target: tuple[str, int]):
        import trustme

        ca = trustme.CA()
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ca.issue_cert("127.0.0.1").configure_cert(self.context)
        self.target = target
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"https://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            conn, _ = self.sock.accept()
            threading.Thread(target=self.relay, args=(conn,), daemon=True).start()

    def relay(self, conn):
        try:
            tls = self.context.wrap_socket(conn, server_side=True)
        except (ssl.SSLError, OSError):
            conn.close()
            return
        upstream = socket.create_connection(self.target)

        def pump(src, dst):
            try:
                while data := src.recv(65536):
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                for s in (src, dst):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

        threading.Thread(target=pump, args=(upstream, tls), daemon=True).start()
        pump(tls, upstream)


def test_outbound_headers_proxy_and_tls_verification(mock, start_gateway):
    relay = ForwardProxy()
    host, port = mock.url.removeprefix("http://").split(":")
    tls = TlsRelay((host, int(port)))
    extra = (
        provider("via-proxy", mock.url).replace('name = "via-proxy"', f'name = "via-proxy"\nproxy = "{relay.url}"')
        + provider("headers", mock.url).replace(
            'name = "headers"', 'name = "headers"\nheaders = { "HTTP-Referer" = "https://app.example", "X-Title" = "llmgate e2e" }')
        + provider("tls-unchecked", tls.url).replace('name = "tls-unchecked"', 'name = "tls-unchecked"\ntls_verify = false')
        + provider("tls-checked", tls.url)
    )
    models = "".join(
        f'\n[[models]]\nname = "{name}"\nroutes = [{{ provider = "{name}", model = "mock-small" }}]\n'
        for name in ["via-proxy", "headers", "tls-unchecked", "tls-checked"]
    )
    gw = start_gateway(gateway_config(mock.url, extra_providers=extra, models=models))
    c = client(gw)

    assert c.chat.completions.create(model="via-proxy", messages=PING).choices[0].message.content == REPLY
    assert relay.relayed and relay.relayed[-1].endswith("/v1/chat/completions")

    c.chat.completions.create(model="headers", messages=PING)
    seen = httpx.get(f"{mock.url}/mock/last-headers").json()
    assert seen["http-referer"] == "https://app.example" and seen["x-title"] == "llmgate e2e"
    assert seen["authorization"] == f"Bearer {PROVIDER_KEY}", "adapter headers still set"

    assert c.chat.completions.create(model="tls-unchecked", messages=PING).choices[0].message.content == REPLY
    assert "TLS certificates of https://127.0.0.1" in gw.logs() and "NOT checked" in gw.logs()
    with pytest.raises(openai.APIStatusError) as caught:
        c.chat.completions.create(model="tls-checked", messages=PING)
    assert caught.value.status_code == 502
    assert "certificate" in caught.value.message.lower()


def test_body_capture_is_opt_in_masked_and_capped(mock, start_gateway):
    models = textwrap.dedent(
        """
        [[models]]
        name = "private"
        capture_bodies = false
        routes = [{ provider = "mock", model = "mock-small" }]
        """
    )
    config = gateway_config(mock.url, models=models) + textwrap.dedent(
        """
        [capture]
        bodies = true
        max_bytes = 300
        mask = ["secret-[0-9]+"]
        """
    )
    gw = start_gateway(config)
    c = client(gw)
    message = [{"role": "user", "content": f"ping secret-12345 {CLIENT_KEY} {PROVIDER_KEY}"}]
    whole = c.chat.completions.with_raw_response.create(model="smart", messages=message)
    streamed = c.chat.completions.with_raw_response.create(model="smart", messages=message, stream=True)
    "".join(ch.choices[0].delta.content or "" for ch in streamed.parse() if ch.choices)
    private = c.chat.completions.with_raw_response.create(model="private", messages=message)

    def detail(raw):
        rid = raw.headers["x-request-id"]
        return wait_for(lambda: (r := gw.admin(f"requests/{rid}")).status_code == 200 and r.json())

    record = detail(whole)
    request_text = record["request_body"]["text"]
    assert "ping" in request_text and "<redacted>" in request_text
    for secret in ["secret-12345", CLIENT_KEY, PROVIDER_KEY]:
        assert secret not in request_text
    assert "Hello from mock!" in record["response_body"]["text"]

    record = detail(streamed)
    assert record["response_body"]["text"].startswith("data: ")
    assert record["response_body"]["truncated"] is True, "a stream longer than max_bytes is cut"
    assert len(record["response_body"]["text"].encode()) <= 300

    record = detail(private)
    assert "request_body" not in record and "response_body" not in record


def test_environment_overrides_and_a_store_managed_config(mock, tmp_path):
    """`llmgate serve` with no config and LLMGATE_TOKEN: an empty config kept
    in the store, changed through the admin API, kept across a restart."""
    port = free_port()
    env = dict(os.environ, LLMGATE_TOKEN="tok-1", LLMGATE_LISTEN=f"127.0.0.1:{port}",
               LLMGATE_DATA_DIR=str(tmp_path / "data"), RUST_LOG="info")
    env.pop("LLMGATE_CONFIG", None)
    url = f"http://127.0.0.1:{port}"

    def start():
        log = open(tmp_path / "serve.log", "a")
        proc = subprocess.Popen([str(BIN_DIR / "llmgate"), "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
        wait_for(lambda: proc.poll() is None and _healthy(url), timeout=30, what="llmgate")
        return proc

    proc = start()
    try:
        c = openai.OpenAI(base_url=f"{url}/v1", api_key="tok-1", max_retries=0)
        assert list(c.models.list()) == []
        assert "no config file" in (tmp_path / "serve.log").read_text()
        config = textwrap.dedent(
            f"""
            [[providers]]
            name = "mock"
            adapter = "openai"
            base_url = "{mock.url}/v1"
            keys = ["{PROVIDER_KEY}"]

            [[models]]
            name = "smart"
            routes = [{{ provider = "mock", model = "mock-small" }}]
            """
        )
        admin = {"authorization": "Bearer tok-1"}
        bad = httpx.put(f"{url}/admin/api/config", content="[[models]]\nname = 1\n", headers=admin)
        assert bad.status_code == 400
        put = httpx.put(f"{url}/admin/api/config", content=config, headers=admin)
        assert put.status_code == 200, put.text
        assert c.chat.completions.create(model="smart", messages=PING).choices[0].message.content == REPLY
        source = httpx.get(f"{url}/admin/api/config/source", headers=admin).text
        assert 'name = "smart"' in source and PROVIDER_KEY not in source
    finally:
        proc.terminate()
        proc.wait(timeout=10)

    proc = start()
    try:
        c = openai.OpenAI(base_url=f"{url}/v1", api_key="tok-1", max_retries=0)
        assert c.chat.completions.create(model="smart", messages=PING).choices[0].message.content == REPLY
    finally:
        proc.terminate()
        proc.wait(timeout=10)

    no_token = dict(env)
    no_token.pop("LLMGATE_TOKEN")
    result = subprocess.run([str(BIN_DIR / "llmgate"), "serve"], env=no_token, capture_output=True, text=True, timeout=30)
    assert result.returncode != 0 and "LLMGATE_TOKEN" in result.stderr


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_a_file_config_cannot_be_replaced_through_the_api(gateway):
    r = gateway.admin("config", method="PUT")
    assert r.status_code == 409 and "edit it there" in r.json()["error"]["message"]


def test_connectivity_checks_on_demand_and_periodic(mock, start_gateway):
    extra = provider("two-keys", mock.url, keys=(PROVIDER_KEY, "sk-revoked")) + provider("down", mock.url).replace(
        'name = "down"', 'name = "down"\nhealth_check_interval_s = 1\nhealth_check_model = "mock-fail-500"')
    models = textwrap.dedent(
        """
        [[models]]
        name = "pair"
        routes = [{ provider = "two-keys", model = "mock-small" }]
        """
    )
    gw = start_gateway(gateway_config(mock.url, extra_providers=extra, models=models))

    result = gw.admin("providers/two-keys/check", method="POST").json()
    assert result["model"] == "mock-small" and result["ok"] is False
    assert [(k["index"], k["ok"]) for k in result["keys"]] == [(0, True), (1, False)]
    assert result["keys"][1]["error_kind"] == "auth" and result["keys"][1]["status"] == 401
    keys = next(p for p in gw.admin("backends").json()["providers"] if p["name"] == "two-keys")["keys"]
    assert keys[0]["in_rotation"] is True and keys[1]["in_rotation"] is False

    # No client request at all: the periodic probe finds the broken backend.
    health = wait_for(lambda: (h := gw.admin("health").json()["providers"]).get("down") and h, timeout=10)
    assert health["down"]["ok"] is False and health["down"]["keys"][0]["error_kind"] == "upstream"
    assert mock_stats(mock)["models"].get("mock-fail-500", 0) >= 1
    assert gw.admin("providers/nope/check", method="POST").status_code == 404
