"""Every client dialect through every foreign backend: each official SDK
runs a streamed tool-calling conversation (call, then answer to the tool
result) and gets correct usage. And native Anthropic passthrough keeps the
client's bytes, cache_control and thinking blocks included."""

import textwrap

import anthropic
import httpx
import openai
import pytest
from google import genai
from google.genai import types

from conftest import CLIENT_KEY, PROVIDER_KEY, dialect_providers

BACKENDS = {"openai": "via-openai", "anthropic": "via-anthropic", "gemini": "via-gemini"}
ARGS = {"query": "ping"}
# The mock answers in 6 deltas: the call's arguments are 6 output tokens, "Tool said: 42" 5.
CALL_TOKENS, ANSWER_TOKENS = 6, 5


@pytest.fixture
def gw(mock, start_gateway):
    return start_gateway(textwrap.dedent(
        f"""
        [server]
        listen = "{{listen}}"
        api_keys = ["${{LLMGATE_E2E_CLIENT_KEY}}"]

        [[providers]]
        name = "resp"
        adapter = "responses"
        base_url = "{mock.url}/v1"
        keys = ["{PROVIDER_KEY}"]

        [[models]]
        name = "via-responses"
        routes = [{{ provider = "resp", model = "mock-responses" }}]

        [[models]]
        name = "via-openai"
        routes = [{{ provider = "oai", model = "mock-small" }}]

        [[models]]
        name = "via-anthropic"
        routes = [{{ provider = "ant", model = "claude-mock" }}]

        [[models]]
        name = "via-gemini"
        routes = [{{ provider = "goog", model = "gemini-mock" }}]

        [[models]]
        name = "anthropic-then-openai"
        policy = "priority"
        routes = [
          {{ provider = "ant", model = "claude-mock", priority = 1 }},
          {{ provider = "oai", model = "mock-small", priority = 2 }},
        ]

        [[models]]
        name = "openai-then-anthropic"
        policy = "priority"
        routes = [
          {{ provider = "oai", model = "mock-small", priority = 1 }},
          {{ provider = "ant", model = "claude-mock", priority = 2 }},
        ]
        """
    ) + dialect_providers(mock.url))


def openai_conversation(gw, model):
    c = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=CLIENT_KEY, max_retries=0)
    tool = {"type": "function", "function": {"name": "lookup", "parameters": {
        "type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}}}
    messages = [{"role": "user", "content": "ping"}]
    calls, usage = {}, None
    for ch in c.chat.completions.create(model=model, messages=messages, tools=[tool], stream=True,
                                        stream_options={"include_usage": True}):
        usage = ch.usage or usage
        for tc in (ch.choices[0].delta.tool_calls or []) if ch.choices else []:
            entry = calls.setdefault(tc.index, {"id": None, "name": None, "arguments": ""})
            entry["id"] = tc.id or entry["id"]
            entry["name"] = (tc.function and tc.function.name) or entry["name"]
            entry["arguments"] += (tc.function and tc.function.arguments) or ""
    assert list(calls) == [0], calls
    call = calls[0]
    assert (call["name"], __import__("json").loads(call["arguments"])) == ("lookup", ARGS)
    assert usage.completion_tokens == CALL_TOKENS and usage.prompt_tokens >= 1
    messages += [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": call["id"], "type": "function", "function": {"name": call["name"], "arguments": call["arguments"]}}]},
        {"role": "tool", "tool_call_id": call["id"], "content": "42"},
    ]
    text, usage = "", None
    for ch in c.chat.completions.create(model=model, messages=messages, tools=[tool], stream=True,
                                        stream_options={"include_usage": True}):
        usage = ch.usage or usage
        text += (ch.choices[0].delta.content or "") if ch.choices else ""
    return text, usage.completion_tokens


def anthropic_conversation(gw, model):
    c = anthropic.Anthropic(base_url=gw.url, api_key=CLIENT_KEY, max_retries=0)
    tool = {"name": "lookup", "input_schema": {"type": "object", "properties": {"query": {"type": "string"}}}}
    messages = [{"role": "user", "content": "ping"}]
    with c.messages.stream(model=model, max_tokens=100, messages=messages, tools=[tool]) as s:
        first = s.get_final_message()
    call = next(b for b in first.content if b.type == "tool_use")
    assert (call.name, call.input, first.stop_reason) == ("lookup", ARGS, "tool_use")
    assert first.usage.output_tokens == CALL_TOKENS and first.usage.input_tokens >= 1
    messages += [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "42"}]},
    ]
    with c.messages.stream(model=model, max_tokens=100, messages=messages, tools=[tool]) as s:
        text = "".join(s.text_stream)
        second = s.get_final_message()
    return text, second.usage.output_tokens


def gemini_conversation(gw, model):
    c = genai.Client(api_key=CLIENT_KEY, http_options=types.HttpOptions(base_url=gw.url))
    decl = types.FunctionDeclaration(name="lookup", parameters_json_schema={
        "type": "object", "properties": {"query": {"type": "string"}}})
    cfg = types.GenerateContentConfig(tools=[types.Tool(function_declarations=[decl])],
                                      automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True))
    contents = [types.Content(role="user", parts=[types.Part(text="ping")])]
    chunks = list(c.models.generate_content_stream(model=model, contents=contents, config=cfg))
    calls = [fc for ch in chunks for fc in (ch.function_calls or [])]
    assert [(fc.name, fc.args) for fc in calls] == [("lookup", ARGS)]
    meta = chunks[-1].usage_metadata
    assert meta.candidates_token_count == CALL_TOKENS and meta.prompt_token_count >= 1
    contents += [
        types.Content(role="model", parts=[types.Part(function_call=calls[0])]),
        types.Content(role="user", parts=[types.Part(function_response=types.FunctionResponse(
            name="lookup", id=calls[0].id, response={"content": "42"}))]),
    ]
    chunks = list(c.models.generate_content_stream(model=model, contents=contents, config=cfg))
    return "".join(ch.text or "" for ch in chunks), chunks[-1].usage_metadata.candidates_token_count


def responses_conversation(gw, model):
    """The official SDK's Responses API: a streamed function call, then the
    answer to its output, with the typed events in order."""
    import json

    c = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=CLIENT_KEY, max_retries=0)
    tool = {"type": "function", "name": "lookup", "parameters": {
        "type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}}
    events = list(c.responses.create(model=model, input="ping", tools=[tool], stream=True, store=False))
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"], kinds
    assert kinds[-1] == "response.completed", kinds
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert "response.function_call_arguments.delta" in kinds
    assert kinds.index("response.output_item.added") < kinds.index("response.function_call_arguments.delta") \
        < kinds.index("response.function_call_arguments.done") < kinds.index("response.output_item.done")
    final = events[-1].response
    calls = [item for item in final.output if item.type == "function_call"]
    assert [(call.name, json.loads(call.arguments)) for call in calls] == [("lookup", ARGS)]
    assert final.usage.output_tokens == CALL_TOKENS and final.usage.input_tokens >= 1
    deltas = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
    assert json.loads(deltas) == ARGS
    follow_up = [
        {"role": "user", "content": "ping"},
        {"type": "function_call", "call_id": calls[0].call_id, "name": "lookup", "arguments": calls[0].arguments},
        {"type": "function_call_output", "call_id": calls[0].call_id, "output": "42"},
    ]
    events = list(c.responses.create(model=model, input=follow_up, tools=[tool], stream=True, store=False))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    final = events[-1].response
    assert final.output_text == text
    return text, final.usage.output_tokens


CONVERSATIONS = {
    "openai": openai_conversation,
    "anthropic": anthropic_conversation,
    "gemini": gemini_conversation,
    "responses": responses_conversation,
}


@pytest.mark.parametrize("client,backend", [
    (client, backend) for client in CONVERSATIONS for backend in BACKENDS if backend != client
])  # Responses clients through all three: none of the backends speaks it.
def test_streamed_tool_conversation_across_dialects(gw, client, backend):
    text, output_tokens = CONVERSATIONS[client](gw, BACKENDS[backend])
    assert text == "Tool said: 42"
    assert output_tokens == ANSWER_TOKENS


def test_anthropic_passthrough_keeps_the_clients_bytes(gw, mock):
    # Odd spacing and key order on purpose: only the model value may change.
    sent = (
        b'{ "model" : "via-anthropic",  "max_tokens": 64, "system": [{"type": "text", "text": "Big preamble",'
        b' "cache_control": {"type": "ephemeral", "ttl": "1h"}}], "thinking": {"type": "enabled", "budget_tokens": 1024},'
        b' "messages": [{"role": "user", "content": "ping"}, {"role": "assistant", "content": [{"type": "thinking",'
        b' "thinking": "Let me think.", "signature": "EqQBCgIYAhIM+/=="}, {"type": "text", "text": "Hi"}]},'
        b' {"role": "user", "content": [{"type": "text", "text": "again", "cache_control": {"type": "ephemeral"}}]}],'
        b' "x_vendor_field": 1.50 }'
    )
    r = httpx.post(f"{gw.url}/v1/messages", content=sent,
                   headers={"x-api-key": CLIENT_KEY, "anthropic-version": "2023-06-01", "content-type": "application/json"})
    assert r.status_code == 200, r.text
    received = httpx.get(f"{mock.url}/mock/last-request").content
    assert received == sent.replace(b'"via-anthropic"', b'"claude-mock"')


def test_lossy_translation_is_reported_and_strict_refuses_it(gw, mock):
    body = {"model": "via-openai", "max_tokens": 50, "top_k": 5, "messages": [{"role": "user", "content": "ping"}]}
    headers = {"x-api-key": CLIENT_KEY, "anthropic-version": "2023-06-01"}
    r = httpx.post(f"{gw.url}/v1/messages", json=body, headers=headers)
    assert r.status_code == 200
    assert r.headers["x-llmgate-translation-notes"] == "dropped top_k"
    strict = httpx.post(f"{gw.url}/v1/messages", json=body, headers={**headers, "x-llmgate-strict": "true"})
    assert strict.status_code == 400
    assert strict.json()["error"]["type"] == "invalid_request_error"
    assert "top_k" in strict.json()["error"]["message"]
    # Egress losses count too: an OpenAI client's logprobs cannot reach Gemini.
    c = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=CLIENT_KEY, max_retries=0)
    raw = c.chat.completions.with_raw_response.create(model="via-gemini", messages=[{"role": "user", "content": "ping"}], logprobs=True)
    assert raw.headers["x-llmgate-translation-notes"] == "dropped logprobs"
    # Native calls lose nothing and say nothing.
    native = httpx.post(f"{gw.url}/v1/messages", json={**body, "model": "via-anthropic"}, headers={**headers, "x-llmgate-strict": "true"})
    assert native.status_code == 200
    assert "x-llmgate-translation-notes" not in native.headers


AUDIO = [{"role": "user", "content": [
    {"type": "text", "text": "ping"},
    {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
]}]


def test_a_route_that_cannot_carry_the_request_hands_it_to_one_that_can(gw, mock):
    c = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=CLIENT_KEY, max_retries=0)
    r = c.chat.completions.create(model="anthropic-then-openai", messages=AUDIO)
    assert r.choices[0].message.content == "Hello from mock! You said: ping"
    assert "claude-mock" not in httpx.get(f"{mock.url}/mock/stats").json()["models"], "nothing was sent to Anthropic"
    # With no route that can carry it: a 400 naming the part, not an upstream failure.
    with pytest.raises(openai.BadRequestError) as e:
        c.chat.completions.create(model="via-anthropic", messages=AUDIO)
    assert "input_audio" in e.value.message
    assert "upstream" not in e.value.message


def test_strict_mode_falls_through_to_a_native_route(gw):
    body = {"model": "openai-then-anthropic", "max_tokens": 50, "top_k": 5, "messages": [{"role": "user", "content": "ping"}]}
    headers = {"x-api-key": CLIENT_KEY, "anthropic-version": "2023-06-01", "x-llmgate-strict": "true"}
    r = httpx.post(f"{gw.url}/v1/messages", json=body, headers=headers)
    assert r.status_code == 200, r.text
    assert "x-llmgate-translation-notes" not in r.headers


def test_a_request_the_ingress_cannot_read_is_the_clients_error(gw):
    body = {"model": "via-openai", "max_tokens": 50, "messages": [{"role": "narrator", "content": "ping"}]}
    r = httpx.post(f"{gw.url}/v1/messages", json=body, headers={"x-api-key": CLIENT_KEY})
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error"
    assert "narrator" in err["message"] and "upstream" not in err["message"]


def test_responses_api_whole_answers_and_refusals(gw):
    c = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=CLIENT_KEY, max_retries=0)
    for model in BACKENDS.values():
        r = c.responses.create(model=model, input="ping", instructions="Be brief.", store=False)
        assert r.output_text == "Hello from mock! You said: ping", model
        assert r.status == "completed" and r.usage.output_tokens > 0 and r.model == model
    with pytest.raises(openai.BadRequestError) as caught:
        c.responses.create(model="via-openai", input="ping", previous_response_id="resp_123")
    assert "previous_response_id" in caught.value.message
    with pytest.raises(openai.BadRequestError) as caught:
        c.responses.create(model="via-openai", input="ping", store=True)
    assert "store" in caught.value.message
    with pytest.raises(openai.NotFoundError):
        c.responses.create(model="nope", input="ping")


def test_beta_flags_travel_with_a_native_body_only(gw, mock):
    """`anthropic-beta` describes the body (Claude Code's context_management):
    passed through natively it goes along; translated, it does not apply."""
    c = anthropic.Anthropic(base_url=gw.url, api_key=CLIENT_KEY, max_retries=0,
                            default_headers={"anthropic-beta": "context-management-2025-06-27"})
    c.messages.create(model="via-anthropic", max_tokens=50, messages=[{"role": "user", "content": "ping"}])
    assert httpx.get(f"{mock.url}/mock/last-headers").json()["anthropic-beta"] == "context-management-2025-06-27"
    c.messages.create(model="via-openai", max_tokens=50, messages=[{"role": "user", "content": "ping"}])
    assert "anthropic-beta" not in httpx.get(f"{mock.url}/mock/last-headers").json()


def test_responses_pass_through_natively_to_a_responses_upstream(gw, mock):
    """A provider whose adapter is `responses` gets the client's body as sent
    (stateful fields too: the upstream keeps them), stream and not; a chat
    client is not translated into it."""
    c = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=CLIENT_KEY, max_retries=0)
    r = c.responses.create(model="via-responses", input="ping", previous_response_id="resp_prev", store=True)
    assert r.output_text == "Hello from mock! You said: ping"
    sent = httpx.get(f"{mock.url}/mock/last-request").json()
    assert sent["model"] == "mock-responses" and sent["previous_response_id"] == "resp_prev" and sent["store"] is True
    events = list(c.responses.create(model="via-responses", input="ping", stream=True))
    assert events[-1].type == "response.completed" and events[-1].response.usage.input_tokens == 7
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == "Hello from mock! You said: ping"
    with pytest.raises(openai.BadRequestError) as caught:
        c.chat.completions.create(model="via-responses", messages=[{"role": "user", "content": "ping"}])
    assert "responses adapter" in caught.value.message
