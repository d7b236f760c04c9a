"""Routing and resilience through the real binary: policies, key rotation,
cooldowns, failover triggers, fallback chains, error rules. The mock's
/mock/stats endpoint tells which backends and keys were actually tried."""

import concurrent.futures
import textwrap
import time

import httpx
import openai
import pytest

from conftest import CLIENT_KEY, PROVIDER_KEY, free_port, gateway_config, mock_stats, provider

REPLY = "Hello from mock! You said: ping"
PING = [{"role": "user", "content": "ping"}]


def client(gw) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gw.url}/v1", api_key=CLIENT_KEY, max_retries=0)


def model(name: str, *routes: str, extra: str = "") -> str:
    return textwrap.dedent(
        f"""
        [[models]]
        name = "{name}"
        routes = [{", ".join(routes)}]
        {extra}
        """
    )


def ask(c: openai.OpenAI, model_name: str, stream: bool = False) -> str:
    if not stream:
        return c.chat.completions.create(model=model_name, messages=PING).choices[0].message.content
    chunks = c.chat.completions.create(model=model_name, messages=PING, stream=True)
    return "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)


def test_quota_exhausted_provider_is_skipped_under_concurrency(mock, start_gateway):
    """The issue's acceptance scenario: the first provider always answers 429
    insufficient_quota; 100 concurrent streamed requests all succeed, and the
    broken provider is tried only a handful of times (its key cools down)."""
    providers = provider("broke", mock.url) + provider("good", mock.url)
    models = model(
        "chat",
        '{ provider = "broke", model = "mock-fail-quota", priority = 1 }',
        '{ provider = "good", model = "mock-small", priority = 2 }',
        extra='policy = "priority"',
    )
    gw = start_gateway(gateway_config(mock.url, extra_providers=providers, models=models))
    c = client(gw)
    with concurrent.futures.ThreadPoolExecutor(max_workers=100) as pool:
        replies = list(pool.map(lambda _: ask(c, "chat", stream=True), range(100)))
    assert replies == [REPLY] * 100
    tried = mock_stats(mock)["models"].get("mock-fail-quota", 0)
    print(f"\nquota-exhausted provider tried {tried} times for 100 concurrent streamed requests")
    # Requests that picked the key before its first 429 came back still
    # reach it: 2-5 on an idle machine, 6 once under a loaded CI run. A
    # half-open state (one probe at a time) would make it exactly 1; without
    # any cooldown it would be 100.
    assert 1 <= tried <= 10


def test_a_revoked_key_leaves_rotation_without_taking_the_provider_down(mock, start_gateway):
    providers = provider("rotating", mock.url, keys=("sk-revoked", PROVIDER_KEY))
    models = model("chat", '{ provider = "rotating", model = "mock-small" }')
    gw = start_gateway(gateway_config(mock.url, extra_providers=providers, models=models))
    c = client(gw)
    for _ in range(10):
        assert ask(c, "chat") == REPLY
    keys = mock_stats(mock)["keys"]
    assert keys.get("sk-revoked") == 1, keys
    assert keys.get(PROVIDER_KEY) == 10, keys


def test_keys_rotate_per_request(mock, start_gateway):
    second = mock.__class__("--chunks", "6")  # accepts any key
    try:
        providers = provider("two-keys", second.url, keys=("sk-a", "sk-b"))
        models = model("chat", '{ provider = "two-keys", model = "mock-small" }')
        gw = start_gateway(gateway_config(mock.url, extra_providers=providers, models=models))
        for _ in range(6):
            assert ask(client(gw), "chat") == REPLY
        assert mock_stats(second)["keys"] == {"sk-a": 3, "sk-b": 3}
    finally:
        second.stop()


def test_rate_limited_backend_cools_down_and_comes_back(mock, start_gateway):
    # mock-fail-429 sends retry-after: 1, so the key rests one second.
    providers = provider("limited", mock.url) + provider("good", mock.url)
    models = model(
        "chat",
        '{ provider = "limited", model = "mock-fail-429", priority = 1 }',
        '{ provider = "good", model = "mock-small", priority = 2 }',
        extra='policy = "priority"',
    )
    gw = start_gateway(gateway_config(mock.url, extra_providers=providers, models=models))
    c = client(gw)
    tried = lambda: mock_stats(mock)["models"].get("mock-fail-429", 0)  # noqa: E731
    assert ask(c, "chat") == REPLY
    assert tried() == 1
    assert ask(c, "chat") == REPLY
    assert tried() == 1, "skipped while cooling down"
    time.sleep(1.3)
    assert ask(c, "chat") == REPLY
    assert tried() == 2, "tried again once the cooldown expired"


@pytest.mark.parametrize(
    "broken",
    [
        '{ provider = "down", model = "mock-fail-500", priority = 1 }',
        '{ provider = "down", model = "mock-fail-529", priority = 1 }',
        '{ provider = "refused", model = "mock-small", priority = 1 }',
        '{ provider = "down", model = "mock-stall", priority = 1 }',
    ],
    ids=["500", "529-overloaded", "connection-refused", "stall-before-headers"],
)
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_failover_triggers(mock, start_gateway, broken, stream):
    providers = (
        provider("down", mock.url, timeout_ms=500, idle_ms=500)
        + provider("refused", f"http://127.0.0.1:{free_port()}")
        + provider("good", mock.url)
    )
    models = model(
        "chat", broken, '{ provider = "good", model = "mock-small", priority = 2 }', extra='policy = "priority"'
    )
    gw = start_gateway(
        gateway_config(mock.url, extra_providers=providers, models=models, server_extra="route_headers = true")
    )
    c = client(gw)
    raw = c.chat.completions.with_raw_response.create(model="chat", messages=PING, stream=stream)
    trail = raw.headers["x-llmgate-attempts"]
    assert trail.endswith("good/mock-small:ok"), trail
    assert trail.count(",") == 1, trail
    parsed = raw.parse()
    text = parsed.choices[0].message.content if not stream else "".join(
        ch.choices[0].delta.content or "" for ch in parsed if ch.choices
    )
    assert text == REPLY
    assert raw.headers["x-llmgate-provider"] == "good"


def test_stall_after_the_first_byte_ends_the_stream_with_an_error(mock, start_gateway):
    providers = provider("slow", mock.url, idle_ms=400) + provider("good", mock.url)
    models = model(
        "chat",
        '{ provider = "slow", model = "mock-stall-midstream", priority = 1 }',
        '{ provider = "good", model = "mock-small", priority = 2 }',
        extra='policy = "priority"',
    )
    gw = start_gateway(gateway_config(mock.url, extra_providers=providers, models=models))
    stream = client(gw).chat.completions.create(model="chat", messages=PING, stream=True)
    got = []
    started = time.monotonic()
    with pytest.raises(openai.APIError) as e:
        for ch in stream:
            if ch.choices:
                got.append(ch.choices[0].delta.content or "")
    assert "silent" in str(e.value)
    assert time.monotonic() - started < 3
    assert "".join(got) and REPLY.startswith("".join(got))
    # Nothing is replayed on another backend once the client has bytes.
    assert mock_stats(mock)["models"].get("mock-small", 0) == 0


def test_fallback_to_another_alias(mock, start_gateway):
    providers = provider("down", mock.url)
    models = model(
        "primary", '{ provider = "down", model = "mock-fail-500" }', extra='fallback = ["backup"]'
    ) + model("backup", '{ provider = "mock", model = "mock-small" }')
    gw = start_gateway(
        gateway_config(mock.url, extra_providers=providers, models=models, server_extra="route_headers = true")
    )
    raw = client(gw).chat.completions.with_raw_response.create(model="primary", messages=PING)
    assert raw.parse().choices[0].message.content == REPLY
    assert raw.headers["x-llmgate-attempts"] == "down/mock-fail-500:upstream, mock/mock-small:ok"
    assert raw.headers["x-request-id"]


def test_max_attempts_bounds_failover(mock, start_gateway):
    providers = provider("down", mock.url)
    routes = [f'{{ provider = "down", model = "mock-fail-500-{i}", priority = {i} }}' for i in range(5)]
    models = model("chat", *routes, extra='policy = "priority"\nmax_attempts = 2')
    gw = start_gateway(gateway_config(mock.url, extra_providers=providers, models=models))
    with pytest.raises(openai.APIStatusError) as e:
        ask(client(gw), "chat")
    assert e.value.status_code == 502
    assert sum(mock_stats(mock)["models"].values()) == 2


def test_error_rules_reclassify_upstream_answers(mock, start_gateway):
    # Without the rule a 400 goes back to the client; with it, it fails over.
    providers = provider("picky", mock.url)
    models = model(
        "chat",
        '{ provider = "picky", model = "mock-fail-400", priority = 1 }',
        '{ provider = "mock", model = "mock-small", priority = 2 }',
        extra='policy = "priority"',
    )
    rule = textwrap.dedent(
        """
        [[error_rules]]
        provider = "picky"
        status = "4xx"
        body_contains = "INVALID VALUE"
        kind = "upstream"
        """
    )
    gw = start_gateway(gateway_config(mock.url, extra_providers=providers + rule, models=models))
    assert ask(client(gw), "chat") == REPLY


def test_weights_split_traffic_three_to_one(mock, start_gateway):
    models = model(
        "chat",
        '{ provider = "mock", model = "mock-a", weight = 3 }',
        '{ provider = "mock", model = "mock-b", weight = 1 }',
    )
    gw = start_gateway(gateway_config(mock.url, models=models))
    with httpx.Client(base_url=gw.url, headers={"authorization": f"Bearer {CLIENT_KEY}"}) as http:
        for _ in range(600):
            r = http.post("/v1/chat/completions", json={"model": "chat", "messages": PING})
            assert r.status_code == 200
    seen = mock_stats(mock)["models"]
    share = seen["mock-a"] / 600
    assert abs(share - 0.75) < 0.05, seen


def test_priority_keeps_traffic_on_the_first_group(mock, start_gateway):
    models = model(
        "chat",
        '{ provider = "mock", model = "mock-backup", priority = 2 }',
        '{ provider = "mock", model = "mock-main", priority = 1 }',
        extra='policy = "priority"',
    )
    gw = start_gateway(gateway_config(mock.url, models=models))
    for _ in range(20):
        assert ask(client(gw), "chat") == REPLY
    assert mock_stats(mock)["models"] == {"mock-main": 20}


def test_round_robin_alternates(mock, start_gateway):
    models = model(
        "chat",
        '{ provider = "mock", model = "mock-a" }',
        '{ provider = "mock", model = "mock-b" }',
        '{ provider = "mock", model = "mock-c" }',
        extra='policy = "round-robin"',
    )
    gw = start_gateway(gateway_config(mock.url, models=models))
    for _ in range(9):
        assert ask(client(gw), "chat") == REPLY
    assert mock_stats(mock)["models"] == {"mock-a": 3, "mock-b": 3, "mock-c": 3}


def test_least_latency_prefers_the_fast_backend(start_gateway):
    from conftest import Mock

    fast, slow = Mock("--delay-ms", "1"), Mock("--delay-ms", "60")
    try:
        providers = provider("fast", fast.url) + provider("slow", slow.url)
        models = model(
            "chat",
            '{ provider = "fast", model = "mock-small" }',
            '{ provider = "slow", model = "mock-small" }',
            extra='policy = "least-latency"',
        )
        gw = start_gateway(gateway_config(fast.url, extra_providers=providers, models=models))
        for _ in range(40):
            assert ask(client(gw), "chat") == REPLY
        fast_n = mock_stats(fast)["models"]["mock-small"]
        slow_n = mock_stats(slow)["models"].get("mock-small", 0)
        assert fast_n >= 35, (fast_n, slow_n)
    finally:
        fast.stop()
        slow.stop()


def test_every_backend_cooling_is_a_503(mock, start_gateway):
    providers = provider("broke", mock.url)
    models = model("chat", '{ provider = "broke", model = "mock-fail-quota" }')
    gw = start_gateway(gateway_config(mock.url, extra_providers=providers, models=models))
    with pytest.raises(openai.APIStatusError) as e:
        ask(client(gw), "chat")
    assert e.value.status_code == 502  # the quota error itself
    with pytest.raises(openai.APIStatusError) as e:
        ask(client(gw), "chat")
    assert e.value.status_code == 503
    assert "cooling down" in e.value.message
    assert mock_stats(mock)["models"]["mock-fail-quota"] == 1


def test_requests_go_only_to_routes_with_the_capabilities_they_need(mock, start_gateway):
    models = model(
        "chat",
        '{ provider = "mock", model = "mock-basic", weight = 100, capabilities = [], max_context = 50 }',
        '{ provider = "mock", model = "mock-tools", weight = 1, capabilities = ["tools", "vision"] }',
    )
    gw = start_gateway(gateway_config(mock.url, models=models))
    c = client(gw)
    tool = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}}}
    for _ in range(5):
        c.chat.completions.create(model="chat", messages=PING, tools=[tool])
    image = [{"role": "user", "content": [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
    ]}]
    c.chat.completions.create(model="chat", messages=image)
    long_prompt = [{"role": "user", "content": "word " * 100}]  # ~125 tokens > max_context 50
    c.chat.completions.create(model="chat", messages=long_prompt)
    assert mock_stats(mock)["models"] == {"mock-tools": 7}

    with pytest.raises(openai.BadRequestError) as e:
        c.chat.completions.create(
            model="chat",
            messages=PING,
            response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}},
        )
    assert "json_schema" in e.value.message
