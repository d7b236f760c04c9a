"""Embeddings through the real binary: OpenAI's /v1/embeddings and Gemini's
:embedContent / :batchEmbedContents, natively and translated between the
two shapes, with failover and usage recorded. The official `openai` and
`google-genai` SDKs are the clients (the `openai` SDK asks for base64
vectors by default, which the translation packs)."""

import textwrap
import time

import openai
import pytest
from google import genai
from google.genai import types

from conftest import CLIENT_KEY, dialect_providers, mock_stats


@pytest.fixture
def gw(mock, start_gateway):
    return start_gateway(textwrap.dedent(
        f"""
        [server]
        listen = "{{listen}}"
        api_keys = ["${{LLMGATE_E2E_CLIENT_KEY}}"]
        admin_token = "${{LLMGATE_E2E_ADMIN_TOKEN}}"

        [[models]]
        name = "emb-openai"
        routes = [{{ provider = "oai", model = "text-embedding-3-small" }}]

        [[models]]
        name = "emb-google"
        routes = [{{ provider = "goog", model = "text-embedding-004" }}]

        [[models]]
        name = "emb-failover"
        policy = "priority"
        routes = [
          {{ provider = "ant", model = "claude-has-no-embeddings", priority = 1 }},
          {{ provider = "oai", model = "emb-fail-500", priority = 2 }},
          {{ provider = "goog", model = "text-embedding-004", priority = 3 }},
        ]
        """
    ) + dialect_providers(mock.url))


def expected(text: str, dims: int = 3) -> list[float]:
    """The mock's vector for `text`."""
    v = [float(len(text)), float(len(text.split())), 0.5]
    return (v + [0.25] * dims)[:dims]


@pytest.mark.parametrize("model", ["emb-openai", "emb-google"])
def test_openai_sdk_embeddings_native_and_translated(gw, model):
    c = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=CLIENT_KEY, max_retries=0)
    r = c.embeddings.create(model=model, input=["hello world", "x"])
    assert [d.embedding for d in r.data] == [expected("hello world"), expected("x")]
    assert [d.index for d in r.data] == [0, 1]
    assert r.model == (model if model == "emb-google" else "text-embedding-3-small")
    floats = c.embeddings.create(model=model, input="hello", encoding_format="float", dimensions=5)
    assert floats.data[0].embedding == expected("hello", 5)


# (Alias names without "gemini": google-genai treats such model names as
# multimodal and folds a list of texts into one content.)
@pytest.mark.parametrize("model", ["emb-google", "emb-openai"])
def test_google_genai_embeddings_native_and_translated(gw, model):
    c = genai.Client(api_key=CLIENT_KEY, http_options=types.HttpOptions(base_url=gw.url))
    r = c.models.embed_content(model=model, contents=["hello world", "x"])
    assert [e.values for e in r.embeddings] == [expected("hello world"), expected("x")]
    r = c.models.embed_content(model=model, contents="hello",
                               config=types.EmbedContentConfig(output_dimensionality=4))
    assert r.embeddings[0].values == expected("hello", 4)


def test_embeddings_fail_over_and_are_recorded(gw, mock):
    c = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=CLIENT_KEY, max_retries=0)
    raw = c.embeddings.with_raw_response.create(model="emb-failover", input=["hello world"])
    assert raw.parse().data[0].embedding == expected("hello world")
    assert mock_stats(mock)["models"]["emb-fail-500"] == 1
    rid = raw.headers["x-request-id"]
    time.sleep(0.5)
    record = gw.admin(f"requests/{rid}").json()
    assert record["endpoint"] == "embeddings" and record["status"] == 200
    # The anthropic route has no embeddings: skipped without an attempt.
    assert [(a["provider"], a["outcome"]) for a in record["attempts"]] == [("oai", "upstream"), ("goog", "ok")]
    assert record["provider"] == "goog"
    native = c.embeddings.with_raw_response.create(model="emb-openai", input=["one two three"])
    time.sleep(0.5)
    record = gw.admin(f"requests/{native.headers['x-request-id']}").json()
    assert record["input_tokens"] == 3, "usage as the upstream reported it"
    with pytest.raises(openai.NotFoundError):
        c.embeddings.create(model="nope", input="x")
    # Token arrays cannot be translated to Gemini: a 400 in OpenAI's shape.
    with pytest.raises(openai.BadRequestError) as caught:
        c.embeddings.create(model="emb-google", input=[[1, 2, 3]])
    assert "token arrays" in caught.value.message
