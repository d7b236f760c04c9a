"""Dialect translation through the real binary, driven by the official
`anthropic` and `openai` SDKs: Anthropic clients to Anthropic (native) and
OpenAI backends, OpenAI clients to Anthropic backends; text, streams, tools
(including the full tool round trip), usage, and errors in the client's dialect."""

import textwrap

import anthropic
import openai
import pytest

from conftest import CLIENT_KEY, PROVIDER_KEY, mock_stats

ECHO = "Hello from mock! You said: ping"
PING = [{"role": "user", "content": "ping"}]
WEATHER_TOOL_ANTHROPIC = {
    "name": "lookup",
    "description": "Look something up",
    "input_schema": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
}
WEATHER_TOOL_OPENAI = {
    "type": "function",
    "function": {
        "name": "lookup",
        "description": "Look something up",
        "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
    },
}


def config(mock_url: str, extra: str = "") -> str:
    return textwrap.dedent(
        f"""
        [server]
        listen = "{{listen}}"
        api_keys = ["${{LLMGATE_E2E_CLIENT_KEY}}"]

        [[providers]]
        name = "oai"
        adapter = "openai"
        base_url = "{mock_url}/v1"
        keys = ["{PROVIDER_KEY}"]

        [[providers]]
        name = "ant"
        adapter = "anthropic"
        base_url = "{mock_url}"
        keys = ["{PROVIDER_KEY}"]
        timeout_ms = 3000
        stream_idle_timeout_ms = 3000

        [[models]]
        name = "claude-native"
        routes = [{{ provider = "ant", model = "claude-mock" }}]

        [[models]]
        name = "claude-on-openai"
        routes = [{{ provider = "oai", model = "mock-small" }}]

        [[models]]
        name = "gpt-on-anthropic"
        routes = [{{ provider = "ant", model = "claude-mock" }}]
        {extra}
        """
    )


@pytest.fixture
def gw(mock, start_gateway):
    return start_gateway(config(mock.url))


def ant(gw) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gw.url, api_key=CLIENT_KEY, max_retries=0)


def oai(gw) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gw.url}/v1", api_key=CLIENT_KEY, max_retries=0)


@pytest.mark.parametrize("model", ["claude-native", "claude-on-openai"])
def test_anthropic_client_text(gw, model):
    msg = ant(gw).messages.create(model=model, max_tokens=100, messages=PING)
    assert msg.content[0].type == "text"
    assert msg.content[0].text == ECHO
    assert msg.stop_reason == "end_turn"
    assert msg.usage.input_tokens == 1
    assert msg.usage.output_tokens == 6


@pytest.mark.parametrize("model", ["claude-native", "claude-on-openai"])
def test_anthropic_client_stream(gw, model):
    with ant(gw).messages.stream(model=model, max_tokens=100, messages=PING) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == ECHO
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 6
    assert final.usage.input_tokens == 1


@pytest.mark.parametrize("model", ["claude-native", "claude-on-openai"])
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_anthropic_client_tool_round_trip(gw, model, stream):
    c = ant(gw)
    if stream:
        with c.messages.stream(model=model, max_tokens=100, messages=PING, tools=[WEATHER_TOOL_ANTHROPIC]) as s:
            first = s.get_final_message()
    else:
        first = c.messages.create(model=model, max_tokens=100, messages=PING, tools=[WEATHER_TOOL_ANTHROPIC])
    assert first.stop_reason == "tool_use"
    call = next(b for b in first.content if b.type == "tool_use")
    assert call.name == "lookup"
    assert call.input == {"query": "ping"}
    # The ids must survive the round trip: the mock rejects unknown ids as the real APIs do.
    second = c.messages.create(
        model=model,
        max_tokens=100,
        tools=[WEATHER_TOOL_ANTHROPIC],
        messages=[
            *PING,
            {"role": "assistant", "content": [b.model_dump() for b in first.content]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "42"}]},
        ],
    )
    assert second.content[0].text == "Tool said: 42"


def test_openai_client_to_anthropic_backend_text_and_stream(gw):
    c = oai(gw)
    r = c.chat.completions.create(model="gpt-on-anthropic", messages=PING)
    assert r.choices[0].message.content == ECHO
    assert r.choices[0].finish_reason == "stop"
    assert (r.usage.prompt_tokens, r.usage.completion_tokens) == (1, 6)
    chunks = list(
        c.chat.completions.create(
            model="gpt-on-anthropic", messages=PING, stream=True, stream_options={"include_usage": True}
        )
    )
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices) == ECHO
    assert chunks[-1].usage.completion_tokens == 6
    # Without include_usage, no usage-only chunk reaches the client.
    plain = list(c.chat.completions.create(model="gpt-on-anthropic", messages=PING, stream=True))
    assert all(ch.choices for ch in plain)
    assert plain[-1].choices[0].finish_reason == "stop"


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_openai_client_tool_round_trip_to_anthropic(gw, stream):
    c = oai(gw)
    if stream:
        calls = {}
        for ch in c.chat.completions.create(model="gpt-on-anthropic", messages=PING, tools=[WEATHER_TOOL_OPENAI], stream=True):
            for tc in (ch.choices[0].delta.tool_calls or []) if ch.choices else []:
                entry = calls.setdefault(tc.index, {"id": None, "name": None, "arguments": ""})
                entry["id"] = tc.id or entry["id"]
                entry["name"] = (tc.function.name if tc.function else None) or entry["name"]
                entry["arguments"] += (tc.function.arguments or "") if tc.function else ""
        assert list(calls) == [0]
        call_id, name, arguments = calls[0]["id"], calls[0]["name"], calls[0]["arguments"]
    else:
        r = c.chat.completions.create(model="gpt-on-anthropic", messages=PING, tools=[WEATHER_TOOL_OPENAI])
        assert r.choices[0].finish_reason == "tool_calls"
        tc = r.choices[0].message.tool_calls[0]
        call_id, name, arguments = tc.id, tc.function.name, tc.function.arguments
    assert name == "lookup"
    assert arguments == '{"query":"ping"}'
    second = c.chat.completions.create(
        model="gpt-on-anthropic",
        tools=[WEATHER_TOOL_OPENAI],
        messages=[
            *PING,
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}]},
            {"role": "tool", "tool_call_id": call_id, "content": "42"},
        ],
    )
    assert second.choices[0].message.content == "Tool said: 42"


def test_provider_key_goes_where_the_anthropic_api_wants_it(gw, mock):
    ant(gw).messages.create(model="claude-native", max_tokens=10, messages=PING)
    assert mock_stats(mock)["keys"].get(PROVIDER_KEY, 0) >= 1
    assert CLIENT_KEY not in mock_stats(mock)["keys"]


def test_errors_come_back_in_the_anthropic_dialect(gw):
    with pytest.raises(anthropic.NotFoundError) as e:
        ant(gw).messages.create(model="no-such-model", max_tokens=10, messages=PING)
    assert e.value.body["type"] == "error"
    assert e.value.body["error"]["type"] == "not_found_error"
    bad = anthropic.Anthropic(base_url=gw.url, api_key="sk-wrong", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError):
        bad.messages.create(model="claude-native", max_tokens=10, messages=PING)
    import httpx

    r = httpx.post(f"{gw.url}/v1/messages", content=b"{not json", headers={"x-api-key": CLIENT_KEY})
    assert r.status_code == 400
    assert r.json()["error"]["type"] == "invalid_request_error"


def test_anthropic_upstream_errors_translate_for_openai_clients(mock, start_gateway):
    extra = textwrap.dedent(
        """
        [[models]]
        name = "overloaded"
        routes = [{ provider = "ant", model = "claude-fail-529" }]

        [[models]]
        name = "breaks"
        routes = [{ provider = "ant", model = "claude-midstream-error" }]
        """
    )
    gw = start_gateway(config(mock.url, extra))
    with pytest.raises(openai.APIStatusError) as e:
        oai(gw).chat.completions.create(model="overloaded", messages=PING)
    assert e.value.status_code == 503
    with pytest.raises(openai.APIError):
        for _ in oai(gw).chat.completions.create(model="breaks", messages=PING, stream=True):
            pass
    with pytest.raises(anthropic.APIStatusError) as e:
        with ant(gw).messages.stream(model="breaks", max_tokens=10, messages=PING) as s:
            for _ in s.text_stream:
                pass
    assert "overloaded" in str(e.value).lower()


def test_overloaded_anthropic_backend_fails_over(mock, start_gateway):
    extra = textwrap.dedent(
        """
        [[models]]
        name = "resilient"
        policy = "priority"
        routes = [
          { provider = "ant", model = "claude-fail-529", priority = 1 },
          { provider = "oai", model = "mock-small", priority = 2 },
        ]
        """
    )
    gw = start_gateway(config(mock.url, extra))
    msg = ant(gw).messages.create(model="resilient", max_tokens=10, messages=PING)
    assert msg.content[0].text == ECHO


def test_count_tokens_and_models(gw):
    c = ant(gw)
    words = [{"role": "user", "content": "word " * 40}]
    # An Anthropic backend counts natively (the mock answers 1000 + words)...
    assert c.messages.count_tokens(model="claude-native", messages=words).input_tokens == 1040
    # ...any other backend gets the local estimate: 200 bytes of text / 4.
    assert c.messages.count_tokens(model="claude-on-openai", messages=words).input_tokens == 50
    ids = [m.id for m in c.models.list()]
    assert "claude-native" in ids and "gpt-on-anthropic" in ids
