"""Operations through the real binary: the request log in redb (restart,
kill -9, retention errors), the admin API and its auth, Prometheus metrics,
config hot reload under load, graceful shutdown."""

import re
import signal
import textwrap
import threading
import time

import httpx
import openai
import pytest

from conftest import wait_for, ADMIN_TOKEN, CLIENT_KEY, Mock, PROVIDER_KEY, gateway_config, mock_stats, provider

PING = [{"role": "user", "content": "ping"}]


def client(gw) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gw.url}/v1", api_key=CLIENT_KEY, max_retries=0)


def all_requests(gw, **filters) -> list[dict]:
    """Every record the admin API has, following the cursor."""
    items, cursor = [], None
    while True:
        params = dict(filters, limit=1000)
        if cursor:
            params["cursor"] = cursor
        page = gw.admin("requests", **params)
        assert page.status_code == 200, page.text
        body = page.json()
        items += body["items"]
        cursor = body["next_cursor"]
        if not cursor:
            return items




def metric(text: str, name: str, **labels) -> float:
    """The value of one series in a /metrics page (0 when absent)."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def two_route_config(url_a: str, url_b: str, weight_a: int, weight_b: int) -> str:
    providers = provider("a", url_a) + provider("b", url_b)
    models = textwrap.dedent(
        f"""
        [[models]]
        name = "split"
        routes = [
          {{ provider = "a", model = "mock-small", weight = {weight_a} }},
          {{ provider = "b", model = "mock-small", weight = {weight_b} }},
        ]
        """
    )
    return gateway_config(url_a, extra_providers=providers, models=models)


class Load:
    """Threads calling the gateway with the official SDK until stopped,
    alternating streamed and whole answers; keeps every id and failure."""

    def __init__(self, gw, threads: int = 4):
        self.c = client(gw)
        self.stop_flag = threading.Event()
        self.lock = threading.Lock()
        self.done: list[tuple[float, str]] = []
        self.failures: list[str] = []
        self.workers = [threading.Thread(target=self.run, args=(i,)) for i in range(threads)]
        for w in self.workers:
            w.start()

    def run(self, n: int):
        i = 0
        while not self.stop_flag.is_set():
            stream = (i + n) % 2 == 0
            i += 1
            try:
                raw = self.c.chat.completions.with_raw_response.create(
                    model="split", messages=PING, stream=stream,
                    **({"stream_options": {"include_usage": True}} if stream else {}),
                )
                request_id = raw.headers["x-request-id"]
                parsed = raw.parse()
                if stream:
                    text = "".join(ch.choices[0].delta.content or "" for ch in parsed if ch.choices)
                else:
                    text = parsed.choices[0].message.content
                assert text.startswith("Hello from mock!"), text
                with self.lock:
                    self.done.append((time.monotonic(), request_id))
            except Exception as e:  # noqa: BLE001 - every failure is the finding
                with self.lock:
                    self.failures.append(repr(e))

    def count(self) -> int:
        with self.lock:
            return len(self.done)

    def stop(self):
        self.stop_flag.set()
        for w in self.workers:
            w.join(timeout=30)


@pytest.fixture
def mock_b():
    m = Mock("--key", PROVIDER_KEY, "--chunks", "6")
    yield m
    m.stop()


def test_reload_under_load_then_restart_keeps_every_request(mock, mock_b, start_gateway, tmp_path):
    """The issue's acceptance scenario. Under steady SDK load the weights are
    changed (all traffic moves from a to b), then the file is broken on
    purpose: no request fails, the new weights apply, the broken edit is
    reported and ignored. After a restart the admin API returns every
    request of the run with its usage."""
    gw = start_gateway(two_route_config(mock.url, mock_b.url, 1, 0))
    load = Load(gw)
    wait_for(lambda: load.count() >= 20, what="first requests")
    assert mock_stats(mock_b)["models"].get("mock-small", 0) == 0

    gw.write_config(two_route_config(mock.url, mock_b.url, 0, 1))
    wait_for(lambda: gw.admin("config").json()["reload"]["generation"] == 2, what="reload")
    time.sleep(0.3)  # requests routed before the swap finish
    a_after_reload = mock_stats(mock)["models"]["mock-small"]
    b_after_reload = mock_stats(mock_b)["models"].get("mock-small", 0)
    wait_for(lambda: load.count() >= 60, what="requests after the reload")

    gw.write_config(two_route_config(mock.url, mock_b.url, 0, 1).replace("weight = 0 }", 'weight = 0, colour = "red" }'))
    reload = wait_for(
        lambda: (r := gw.admin("config").json()["reload"])["last_ok"] is False and r,
        what="the broken edit to be reported",
    )
    assert "colour" in reload["last_error"], reload
    assert reload["generation"] == 2
    before = load.count()
    wait_for(lambda: load.count() >= before + 40, what="requests after the broken edit")
    load.stop()

    assert load.failures == []
    assert mock_stats(mock)["models"]["mock-small"] == a_after_reload, "new weights: a gets nothing"
    assert mock_stats(mock_b)["models"]["mock-small"] > b_after_reload + 40
    assert "config change rejected" in gw.logs()
    metrics = gw.metrics()
    assert metric(metrics, "llmgate_config_reloads_total", result="ok") == 1
    assert metric(metrics, "llmgate_config_reloads_total", result="rejected") == 1

    # Restart on the last good config: every request of the run is there.
    gw.write_config(two_route_config(mock.url, mock_b.url, 0, 1))
    gw.stop()
    gw2 = start_gateway(two_route_config(mock.url, mock_b.url, 0, 1), port=gw.port)
    records = {r["id"]: r for r in all_requests(gw2, model="split")}
    ids = [request_id for _, request_id in load.done]
    print(f"\n{len(ids)} requests under load, {len(records)} in the log after restart")
    assert set(ids) <= set(records)
    for request_id in ids:
        r = records[request_id]
        assert r["status"] == 200 and r["error_kind"] is None, r
        assert r["input_tokens"] > 0 and r["output_tokens"] > 0, r
        assert r["key_id"].startswith("key-") and CLIENT_KEY not in str(r)
        assert r["attempts"][-1]["outcome"] == "ok"
    streamed = [records[i] for i in ids if records[i]["stream"]]
    assert streamed and all(r["ttft_ms"] is not None for r in streamed)


def test_kill_9_loses_at_most_the_unflushed_batch(mock, start_gateway):
    gw = start_gateway(gateway_config(mock.url))
    load = Load_smart(gw)
    started = time.monotonic()
    wait_for(lambda: load.count() >= 100 and time.monotonic() - started > 3, what="load", timeout=30)
    status = gw.admin("status").json()["store"]
    killed_at = time.monotonic()
    gw.kill9()
    load.stop()
    gw2 = start_gateway(gateway_config(mock.url), port=gw.port)
    stored = {r["id"] for r in all_requests(gw2)}
    # The writer commits every 200 ms; a record finished more than a second
    # before the kill was certainly committed.
    settled = [i for t, i in load.done if t < killed_at - 1.0]
    missing = [i for i in settled if i not in stored]
    print(f"\n{len(load.done)} answered before kill -9, {len(stored)} stored, {len(missing)} settled ones missing; store just before: {status}")
    assert settled and not missing


class Load_smart(Load):
    """The same load on model `smart` (whole answers only)."""

    def run(self, n: int):
        while not self.stop_flag.is_set():
            try:
                raw = self.c.chat.completions.with_raw_response.create(model="smart", messages=PING)
                raw.parse()
                with self.lock:
                    self.done.append((time.monotonic(), raw.headers["x-request-id"]))
            except Exception as e:  # noqa: BLE001 - the gateway may be killed mid-request
                with self.lock:
                    self.failures.append(repr(e))


def test_admin_api_auth(mock, start_gateway):
    gw = start_gateway(gateway_config(mock.url))
    assert gw.admin("status", token=None).status_code == 401
    assert gw.admin("status", token="wrong").status_code == 401
    denied = gw.admin("requests", token=CLIENT_KEY)
    assert denied.status_code == 401, "a client key does not open the admin API"
    assert "admin token" in denied.json()["error"]["message"]
    assert gw.admin("status").status_code == 200
    assert gw.admin("nope").status_code == 404


def test_admin_api_is_closed_without_a_token(mock, start_gateway):
    config = gateway_config(mock.url).replace('admin_token = "${LLMGATE_E2E_ADMIN_TOKEN}"', "")
    gw = start_gateway(config)
    r = gw.admin("status")
    assert r.status_code == 401
    assert "server.admin_token" in r.json()["error"]["message"]


def failover_config(url: str) -> str:
    """Model `failover`: provider `down` always answers 500, `up` answers."""
    providers = provider("down", url) + provider("up", url)
    models = textwrap.dedent(
        """
        [[models]]
        name = "failover"
        policy = "priority"
        routes = [
          { provider = "down", model = "mock-fail-500", priority = 1 },
          { provider = "up", model = "mock-small", priority = 2 },
        ]
        """
    )
    return gateway_config(url, extra_providers=providers, models=models)


def test_admin_api_shows_requests_backends_config_and_plugins(mock, start_gateway):
    gw = start_gateway(failover_config(mock.url))
    c = client(gw)
    raw = c.chat.completions.with_raw_response.create(model="failover", messages=PING)
    failover_id = raw.headers["x-request-id"]
    c.chat.completions.create(model="smart", messages=PING)
    with pytest.raises(openai.NotFoundError):
        c.chat.completions.create(model="no-such-model", messages=PING)

    detail = wait_for(lambda: (r := gw.admin(f"requests/{failover_id}")).status_code == 200 and r.json())
    assert [a["outcome"] for a in detail["attempts"]] == ["upstream", "ok"]
    assert detail["attempts"][0]["provider"] == "down" and detail["attempts"][0]["status"] == 500
    assert (detail["provider"], detail["upstream_model"]) == ("up", "mock-small")
    assert gw.admin("requests/0000000000000000").status_code == 404

    wait_for(lambda: len(all_requests(gw)) == 3, what="three records")
    errors = all_requests(gw, status="error")
    assert [(r["model"], r["status"], r["error_kind"]) for r in errors] == [("no-such-model", 404, "not_found")]
    assert [r["model"] for r in all_requests(gw, provider="down")] == ["failover"]
    assert gw.admin("requests", status="4xx", model="smart").json()["items"] == []
    assert gw.admin("requests", limit="x").status_code == 400

    stats = gw.admin("stats", group_by="model").json()
    groups = {g["group"]: g for g in stats["groups"]}
    assert stats["total"]["requests"] == 3 and stats["total"]["errors"] == 1
    assert groups["failover"]["attempts"] == 2 and groups["failover"]["input_tokens"] > 0
    assert groups["no-such-model"]["errors_by_kind"] == {"not_found": 1}
    assert groups["smart"]["latency_ms"]["p50"] > 0
    by_provider = {g["group"] for g in gw.admin("stats", group_by="provider").json()["groups"]}
    assert by_provider == {"up", "mock", ""}
    assert gw.admin("stats", group_by="colour").status_code == 400

    backends = gw.admin("backends").json()
    down = next(r for m in backends["models"] if m["name"] == "failover" for r in m["routes"] if r["provider"] == "down")
    assert down["healthy"] is False and down["cooldown_ms_left"] > 0 and down["error_rate"] > 0

    config = gw.admin("config").json()
    text = str(config)
    assert PROVIDER_KEY not in text and CLIENT_KEY not in text and ADMIN_TOKEN not in text
    assert config["config"]["providers"][0]["keys"][0].startswith("<redacted key-")
    assert config["reload"]["last_ok"] is True

    plugins = {p["name"]: p for p in gw.admin("plugins").json()["plugins"]}
    assert plugins["openai"]["world"] == "provider" and plugins["openai"]["calls"] > 0
    assert plugins["priority"]["world"] == "balancer" and plugins["priority"]["traps"] == 0

    status = gw.admin("status").json()
    assert status["store"]["written"] == 3 and status["store"]["dropped"] == 0


def test_metrics_count_requests_failovers_cooldowns_and_tokens(mock, start_gateway):
    gw = start_gateway(failover_config(mock.url))
    before = gw.metrics()
    assert metric(before, "llmgate_requests_total") == 0
    c = client(gw)
    c.chat.completions.create(model="failover", messages=PING)
    for ch in c.chat.completions.create(model="smart", messages=PING, stream=True,
                                         stream_options={"include_usage": True}):
        pass
    text = wait_for(lambda: (t := gw.metrics()) and metric(t, "llmgate_store_written_total") == 2 and t)
    assert metric(text, "llmgate_requests_total", model="failover", provider="up", status="200") == 1
    assert metric(text, "llmgate_requests_total", model="smart", status="200") == 1
    assert metric(text, "llmgate_failovers_total", model="failover") == 1
    assert metric(text, "llmgate_cooldowns_total", provider="down", scope="backend") == 1
    assert metric(text, "llmgate_upstream_attempts_total", provider="down", outcome="upstream") == 1
    assert metric(text, "llmgate_tokens_total", model="smart", type="output") > 0
    assert metric(text, "llmgate_request_duration_seconds_count", model="failover") == 1
    assert metric(text, "llmgate_time_to_first_byte_seconds_count", model="smart") == 1
    assert metric(text, "llmgate_backend_cooling_down", provider="down") == 1
    assert metric(text, "llmgate_plugin_calls_total", plugin="openai") > 0
    assert metric(text, "llmgate_plugin_call_duration_seconds_count", plugin="priority") >= 1
    assert metric(text, "llmgate_requests_in_flight") == 0
    assert metric(text, "llmgate_store_dropped_total") == 0
    assert "\nllmgate_store_writer_pauses_total 0\n" in text
    assert "# TYPE llmgate_request_duration_seconds histogram" in text


def test_sigterm_lets_a_stream_finish_and_flushes_the_log(start_gateway, tmp_path):
    slow = Mock("--key", PROVIDER_KEY, "--chunks", "10", "--delay-ms", "150")
    try:
        gw = start_gateway(gateway_config(slow.url))
        chunks = client(gw).chat.completions.create(model="smart", messages=PING, stream=True)
        it = iter(chunks)
        first = next(it)
        gw.proc.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{gw.url}/health", timeout=2)
        rest = list(it)
        text = "".join(ch.choices[0].delta.content or "" for ch in [first, *rest] if ch.choices)
        assert text.startswith("Hello from mock!"), text
        assert gw.proc.wait(timeout=10) == 0
        assert "request log flushed" in gw.logs()
        gw2 = start_gateway(gateway_config(slow.url), port=gw.port)
        records = all_requests(gw2)
        assert len(records) == 1 and records[0]["stream"] and records[0]["status"] == 200
    finally:
        slow.stop()


def test_on_one_core_a_current_thread_runtime_serves_concurrent_streams(start_gateway):
    # One allowed core (taskset, a container's CPU quota) switches the
    # runtime flavour; everything else must work the same.
    slow = Mock("--key", PROVIDER_KEY, "--chunks", "6", "--delay-ms", "30")
    try:
        gw = start_gateway(gateway_config(slow.url), cpus="0")
        wait_for(lambda: "current-thread runtime" in gw.logs(), what="the runtime line")
        results = []

        def one(i: int):
            if i % 2:
                chunks = client(gw).chat.completions.create(model="smart", messages=PING, stream=True)
                text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
            else:
                text = client(gw).chat.completions.create(model="smart", messages=PING).choices[0].message.content
            results.append(text)

        threads = [threading.Thread(target=one, args=(i,)) for i in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert len(results) == 16 and all(r.startswith("Hello from mock!") for r in results), results
        records = wait_for(lambda: (r := all_requests(gw)) and len(r) == 16 and r)
        assert all(r["status"] == 200 for r in records)
        # Served side by side, not one after another: streams overlap in time.
        spans = [(r["time_ms"], r["time_ms"] + r["latency_ms"]) for r in records if r["stream"]]
        assert any(a[0] < b[1] and b[0] < a[1] for i, a in enumerate(spans) for b in spans[i + 1:]), spans
        gw.proc.send_signal(signal.SIGTERM)
        assert gw.proc.wait(timeout=10) == 0
        assert "request log flushed" in gw.logs()
    finally:
        slow.stop()


def test_a_corrupt_or_locked_store_is_a_clear_startup_error(mock, start_gateway, tmp_path):
    gw = start_gateway(gateway_config(mock.url))
    other = tmp_path / "other"
    other.mkdir()
    shared = gateway_config(mock.url) + f'\n[storage]\npath = "{tmp_path / "llmgate.redb"}"\n'
    with pytest.raises(RuntimeError, match="locked by another process"):
        start_gateway(shared, tmp=other)
    gw.stop()
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "llmgate.redb").write_bytes(b"\x5a" * 8192)
    with pytest.raises(RuntimeError, match="move it away"):
        start_gateway(gateway_config(mock.url), tmp=corrupt)
