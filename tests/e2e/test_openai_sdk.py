"""The official `openai` Python SDK against the real llmgate binary, which
routes through its wasm adapter and policy to the mock upstream."""

import textwrap

import httpx
import openai
import pytest

from conftest import CLIENT_KEY, gateway_config

REPLY = "Hello from mock! You said: ping"


def client(gw, key=CLIENT_KEY, **kw) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gw.url}/v1", api_key=key, max_retries=0, **kw)


def test_chat_non_streaming(gateway):
    r = client(gateway).chat.completions.create(
        model="smart", messages=[{"role": "user", "content": "ping"}]
    )
    assert r.choices[0].message.content == REPLY
    assert r.choices[0].finish_reason == "stop"
    assert r.usage.prompt_tokens == 1
    assert r.usage.completion_tokens == 6


def test_chat_under_openai_prefix_and_alias(gateway):
    c = openai.OpenAI(base_url=f"{gateway.url}/openai/v1", api_key=CLIENT_KEY, max_retries=0)
    r = c.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "ping"}])
    assert r.choices[0].message.content == REPLY


def test_chat_streaming(gateway):
    stream = client(gateway).chat.completions.create(
        model="smart", messages=[{"role": "user", "content": "ping"}], stream=True
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == REPLY
    assert chunks[-1].choices[0].finish_reason == "stop"
    # The gateway asked upstream for usage; the client did not, so it must
    # not get the usage-only chunk (older clients crash on empty choices).
    assert all(c.choices for c in chunks)


def test_chat_streaming_with_usage(gateway):
    stream = client(gateway).chat.completions.create(
        model="smart",
        messages=[{"role": "user", "content": "ping"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[-1].choices == []
    assert chunks[-1].usage.completion_tokens == 6
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == REPLY


def test_models_list(gateway):
    ids = [m.id for m in client(gateway).models.list()]
    assert ids == ["smart", "gpt-4o-mini"]


def test_wrong_key_is_401(gateway):
    with pytest.raises(openai.AuthenticationError) as e:
        client(gateway, key="sk-wrong").chat.completions.create(
            model="smart", messages=[{"role": "user", "content": "ping"}]
        )
    assert e.value.status_code == 401
    assert e.value.body["type"] == "authentication_error"


def test_missing_key_is_401(gateway):
    r = httpx.post(f"{gateway.url}/v1/chat/completions", json={"model": "smart", "messages": []})
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "invalid_api_key"


def test_unknown_model_is_404(gateway):
    with pytest.raises(openai.NotFoundError) as e:
        client(gateway).chat.completions.create(
            model="no-such-model", messages=[{"role": "user", "content": "ping"}]
        )
    assert "no-such-model" in e.value.message


def test_malformed_json_is_400(gateway):
    r = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        content=b'{"model": "smart", "messages": [',
        headers={"authorization": f"Bearer {CLIENT_KEY}", "content-type": "application/json"},
    )
    assert r.status_code == 400
    body = r.json()
    assert body["error"]["type"] == "invalid_request_error"
    assert "not valid JSON" in body["error"]["message"]
    assert r.headers["x-request-id"]


def test_unknown_path_is_404_in_openai_shape(gateway):
    r = httpx.get(f"{gateway.url}/v1/nothing-here", headers={"authorization": f"Bearer {CLIENT_KEY}"})
    assert r.status_code == 404
    assert r.json()["error"]["type"] == "not_found_error"


def test_oversized_body_is_413(mock, start_gateway):
    gw = start_gateway(gateway_config(mock.url, server_extra="max_body_bytes = 1024"))
    with pytest.raises(openai.APIStatusError) as e:
        client(gw).chat.completions.create(
            model="smart", messages=[{"role": "user", "content": "x" * 4096}]
        )
    assert e.value.status_code == 413
    assert "1024" in e.value.message
    # Small requests still pass on the same gateway.
    assert client(gw).chat.completions.create(
        model="smart", messages=[{"role": "user", "content": "ping"}]
    ).choices[0].message.content == REPLY


def test_unreachable_upstream_is_502(start_gateway):
    from conftest import free_port

    gw = start_gateway(gateway_config(f"http://127.0.0.1:{free_port()}"))
    with pytest.raises(openai.APIStatusError) as e:
        client(gw).chat.completions.create(model="smart", messages=[{"role": "user", "content": "ping"}])
    assert e.value.status_code == 502
    assert "unreachable" in e.value.message
    assert "mock" in e.value.message


def models_with(*routes: str, name: str = "flaky") -> str:
    route_list = ", ".join(routes)
    return textwrap.dedent(
        f"""
        [[models]]
        name = "{name}"
        routes = [{route_list}]
        """
    )


def test_fails_over_past_a_broken_backend(mock, start_gateway):
    from conftest import provider

    models = models_with(
        '{ provider = "down", model = "mock-fail-500" }',
        '{ provider = "broke", model = "mock-fail-quota" }',
        '{ provider = "mock", model = "mock-small" }',
    )
    extra = provider("down", mock.url) + provider("broke", mock.url)
    gw = start_gateway(gateway_config(mock.url, extra_providers=extra, models=models))
    c = client(gw)
    for _ in range(12):  # the weighted policy shuffles; every order must end well
        r = c.chat.completions.create(model="flaky", messages=[{"role": "user", "content": "ping"}])
        assert r.choices[0].message.content == REPLY
        stream = c.chat.completions.create(
            model="flaky", messages=[{"role": "user", "content": "ping"}], stream=True
        )
        assert "".join(ch.choices[0].delta.content or "" for ch in stream if ch.choices) == REPLY


def test_client_errors_are_not_retried_elsewhere(mock, start_gateway):
    # weight 0 puts the good route last: it would only be reached by failover.
    models = models_with(
        '{ provider = "mock", model = "mock-fail-400", weight = 1 }',
        '{ provider = "mock", model = "mock-small", weight = 0 }',
    )
    gw = start_gateway(gateway_config(mock.url, models=models))
    with pytest.raises(openai.BadRequestError) as e:
        client(gw).chat.completions.create(model="flaky", messages=[{"role": "user", "content": "ping"}])
    assert e.value.status_code == 400
    assert "Invalid value for 'messages'" in e.value.message


def test_all_backends_failing_reports_the_last_error(mock, start_gateway):
    models = models_with('{ provider = "mock", model = "mock-fail-429" }')
    gw = start_gateway(gateway_config(mock.url, models=models))
    with pytest.raises(openai.RateLimitError) as e:
        client(gw).chat.completions.create(model="flaky", messages=[{"role": "user", "content": "ping"}])
    assert e.value.response.headers["retry-after"] == "1"


def test_stalled_upstream_times_out_with_504(mock, start_gateway):
    models = models_with('{ provider = "mock", model = "mock-stall" }')
    gw = start_gateway(gateway_config(mock.url, models=models))
    with pytest.raises(openai.APIStatusError) as e:
        client(gw).chat.completions.create(model="flaky", messages=[{"role": "user", "content": "ping"}])
    assert e.value.status_code == 504
    with pytest.raises(openai.APIStatusError) as e:
        client(gw).chat.completions.create(
            model="flaky", messages=[{"role": "user", "content": "ping"}], stream=True
        )
    assert e.value.status_code == 504


@pytest.mark.parametrize("backend", ["mock-midstream-error", "mock-garbage", "mock-cut"])
def test_broken_streams_end_with_an_error_event(mock, start_gateway, backend):
    models = models_with(f'{{ provider = "mock", model = "{backend}" }}')
    gw = start_gateway(gateway_config(mock.url, models=models))
    stream = client(gw).chat.completions.create(
        model="flaky", messages=[{"role": "user", "content": "ping"}], stream=True
    )
    received = []
    with pytest.raises(openai.APIError):
        for chunk in stream:
            if chunk.choices:
                received.append(chunk.choices[0].delta.content or "")
    # What arrived before the failure was delivered, not lost.
    assert "".join(received) == REPLY[: len("".join(received))]
    assert received[-1] != ""
    # The gateway keeps serving.
    r = client(gw).chat.completions.create(model="smart", messages=[{"role": "user", "content": "ping"}])
    assert r.choices[0].message.content == REPLY


def test_requests_are_logged_with_usage(gateway):
    import time

    stream = client(gateway).chat.completions.create(
        model="smart", messages=[{"role": "user", "content": "ping"}], stream=True
    )
    for _ in stream:
        pass
    deadline = time.monotonic() + 5
    while "llmgate::request" not in gateway.logs() and time.monotonic() < deadline:
        time.sleep(0.05)
    line = next(l for l in gateway.logs().splitlines() if "llmgate::request" in l)
    assert "stream=true" in line
    assert "input_tokens=1" in line
    assert "output_tokens=6" in line
    assert "status=200" in line
