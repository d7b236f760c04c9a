"""The Gemini dialect through the real binary, driven by the official
`google-genai` SDK (and the `openai`/`anthropic` SDKs towards Gemini
backends): text, streams, function calls and their responses, usage, errors."""

import textwrap

import anthropic
import httpx
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from conftest import CLIENT_KEY, PROVIDER_KEY, mock_stats

ECHO = "Hello from mock! You said: ping"
LOOKUP = types.FunctionDeclaration(
    name="lookup",
    description="Look something up",
    parameters_json_schema={"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
)
NO_AUTO = types.AutomaticFunctionCallingConfig(disable=True)


def config(mock_url: str) -> str:
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
        name = "goog"
        adapter = "gemini"
        base_url = "{mock_url}"
        keys = ["{PROVIDER_KEY}"]

        [[models]]
        name = "gemini-native"
        routes = [{{ provider = "goog", model = "gemini-mock" }}]

        [[models]]
        name = "gemini-on-openai"
        routes = [{{ provider = "oai", model = "mock-small" }}]

        [[models]]
        name = "gpt-on-gemini"
        routes = [{{ provider = "goog", model = "gemini-mock" }}]
        """
    )


@pytest.fixture
def gw(mock, start_gateway):
    return start_gateway(config(mock.url))


def client(gw, key=CLIENT_KEY) -> genai.Client:
    return genai.Client(api_key=key, http_options=types.HttpOptions(base_url=gw.url))


@pytest.mark.parametrize("model", ["gemini-native", "gemini-on-openai"])
def test_gemini_client_text_and_stream(gw, model):
    c = client(gw)
    r = c.models.generate_content(model=model, contents="ping")
    assert r.text == ECHO
    assert r.candidates[0].finish_reason == types.FinishReason.STOP
    assert (r.usage_metadata.prompt_token_count, r.usage_metadata.candidates_token_count) == (1, 6)
    chunks = list(c.models.generate_content_stream(model=model, contents="ping"))
    assert "".join(ch.text or "" for ch in chunks) == ECHO
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP
    assert chunks[-1].usage_metadata.candidates_token_count == 6


@pytest.mark.parametrize("model", ["gemini-native", "gemini-on-openai"])
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_gemini_client_function_call_round_trip(gw, model, stream):
    c = client(gw)
    cfg = types.GenerateContentConfig(tools=[types.Tool(function_declarations=[LOOKUP])], automatic_function_calling=NO_AUTO)
    if stream:
        calls = [fc for ch in c.models.generate_content_stream(model=model, contents="ping", config=cfg)
                 for fc in (ch.function_calls or [])]
    else:
        calls = c.models.generate_content(model=model, contents="ping", config=cfg).function_calls
    assert [(fc.name, fc.args) for fc in calls] == [("lookup", {"query": "ping"})]
    history = [
        types.Content(role="user", parts=[types.Part(text="ping")]),
        types.Content(role="model", parts=[types.Part(function_call=types.FunctionCall(name="lookup", args={"query": "ping"}))]),
        types.Content(role="user", parts=[types.Part(function_response=types.FunctionResponse(name="lookup", response={"content": "42"}))]),
    ]
    r = c.models.generate_content(model=model, contents=history, config=cfg)
    assert r.text == "Tool said: 42"


def test_openai_client_to_gemini_backend(gw):
    c = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=CLIENT_KEY, max_retries=0)
    r = c.chat.completions.create(model="gpt-on-gemini", messages=[{"role": "user", "content": "ping"}])
    assert r.choices[0].message.content == ECHO
    assert (r.usage.prompt_tokens, r.usage.completion_tokens) == (1, 6)
    chunks = list(c.chat.completions.create(
        model="gpt-on-gemini", messages=[{"role": "user", "content": "ping"}], stream=True,
        stream_options={"include_usage": True}))
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices) == ECHO
    assert chunks[-1].usage.completion_tokens == 6
    tool = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {"query": {"type": "string"}}}}}
    first = c.chat.completions.create(model="gpt-on-gemini", messages=[{"role": "user", "content": "ping"}], tools=[tool])
    assert first.choices[0].finish_reason == "tool_calls"
    call = first.choices[0].message.tool_calls[0]
    assert (call.function.name, call.function.arguments) == ("lookup", '{"query":"ping"}')
    second = c.chat.completions.create(model="gpt-on-gemini", tools=[tool], messages=[
        {"role": "user", "content": "ping"},
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "42"},
    ])
    assert second.choices[0].message.content == "Tool said: 42"


def test_anthropic_client_to_gemini_backend(gw):
    c = anthropic.Anthropic(base_url=gw.url, api_key=CLIENT_KEY, max_retries=0)
    with c.messages.stream(model="gpt-on-gemini", max_tokens=50, messages=[{"role": "user", "content": "ping"}]) as s:
        assert "".join(s.text_stream) == ECHO
        assert s.get_final_message().usage.output_tokens == 6


def test_errors_come_back_in_the_gemini_dialect(gw):
    c, bad = client(gw), client(gw, key="sk-wrong")  # kept alive: a dropped client closes itself
    with pytest.raises(genai_errors.ClientError) as e:
        c.models.generate_content(model="no-such-model", contents="ping")
    assert e.value.code == 404
    assert e.value.status == "NOT_FOUND"
    with pytest.raises(genai_errors.ClientError) as e:
        bad.models.generate_content(model="gemini-native", contents="ping")
    assert e.value.code == 401
    assert e.value.status == "UNAUTHENTICATED"


def test_count_tokens_native_and_estimated(gw):
    c = client(gw)
    text = "word " * 40
    assert c.models.count_tokens(model="gemini-native", contents=text).total_tokens == 1040
    assert c.models.count_tokens(model="gemini-on-openai", contents=text).total_tokens == 50


def test_key_in_the_query_string_and_model_list(gw, mock):
    r = httpx.post(f"{gw.url}/v1beta/models/gemini-native:generateContent?key={CLIENT_KEY}",
                   json={"contents": [{"role": "user", "parts": [{"text": "ping"}]}]})
    assert r.status_code == 200, r.text
    assert r.json()["candidates"][0]["content"]["parts"][0]["text"] == ECHO
    assert mock_stats(mock)["keys"].get(PROVIDER_KEY, 0) >= 1
    c = client(gw)
    names = [m.name for m in c.models.list()]
    assert "models/gemini-native" in names
