"""Plugins from files: components built from examples/ and tests/plugins/
with `llmgate plugin build`, dropped into a running gateway's plugins
directory; the sandbox (deadline, panics, memory, WASI); `plugin inspect`."""

import concurrent.futures
import os
import shutil
import subprocess
import textwrap
import time

import httpx
import openai
import pytest

from conftest import wait_for, BIN_DIR, CLIENT_KEY, PROVIDER_KEY, ROOT, gateway_config, provider

PING = [{"role": "user", "content": "ping"}]
REPLY = "Hello from mock! You said: ping"


@pytest.fixture(scope="session")
def components(tmp_path_factory) -> dict:
    """Builds each plugin crate once per test run (the first build compiles
    std for wasm, about a minute)."""
    out = tmp_path_factory.mktemp("components")
    built = {}
    for crate in ["examples/plugins/acme-provider", "examples/plugins/cost-policy",
                  "tests/plugins/misbehave", "tests/plugins/wasi-probe"]:
        name = crate.rsplit("/", 1)[1]
        path = out / f"{name}.wasm"
        subprocess.run(
            [str(BIN_DIR / "llmgate"), "plugin", "build", str(ROOT / crate), "--out", str(path),
             "--target-dir", str(ROOT / "target" / "wasm-examples")],
            check=True,
        )
        built[name] = path
    return built


def client(gw) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gw.url}/v1", api_key=CLIENT_KEY, max_retries=0)




def loaded(gw) -> dict:
    return {p["name"]: p for p in gw.admin("plugins").json()["plugins"]}


def with_plugin_dir(config: str) -> str:
    return config.replace("[server]", '[plugins]\ndir = "plugins.d"\n\n[server]', 1)


def acme_config(mock_url: str) -> str:
    """Model `cheap`: an expensive OpenAI route and a cheap Acme one, ordered
    by the `cost` policy; both at the same mock, told apart by model name."""
    acme = textwrap.dedent(
        f"""
        [[providers]]
        name = "acme"
        adapter = "acme"
        base_url = "{mock_url}/v1"
        keys = ["{PROVIDER_KEY}"]
        """
    )
    models = textwrap.dedent(
        """
        [[models]]
        name = "cheap"
        policy = "cost"
        policy_options = { usd_per_mtok = [15.0, 0.6] }
        routes = [
          { provider = "mock", model = "mock-expensive" },
          { provider = "acme", model = "acme-small" },
        ]
        """
    )
    return with_plugin_dir(gateway_config(mock_url, extra_providers=acme, models=models))


def test_dropped_components_are_used_without_a_restart(mock, start_gateway, components, tmp_path):
    """The issue's acceptance scenario, both ways round: a config naming a
    plugin that is not there yet is rejected and kept; when the components
    are copied in, the gateway loads them, applies that config, and the next
    request uses them. Replacing and removing files, and a broken file."""
    plugins_dir = tmp_path / "plugins.d"
    plugins_dir.mkdir()
    gw = start_gateway(with_plugin_dir(gateway_config(mock.url)))
    assert "acme" not in loaded(gw)

    gw.write_config(acme_config(mock.url))
    reload = wait_for(lambda: (r := gw.admin("config").json()["reload"])["last_attempt_ms"] and r)
    assert reload["last_ok"] is False and "acme" in reload["last_error"], reload

    shutil.copy(components["acme-provider"], plugins_dir / "acme.wasm")
    shutil.copy(components["cost-policy"], plugins_dir / "cost.wasm")
    wait_for(lambda: gw.admin("config").json()["reload"]["generation"] == 2, what="config applied")
    plugins = loaded(gw)
    assert plugins["acme"]["world"] == "provider" and plugins["acme"]["origin"].endswith("acme.wasm")
    assert plugins["cost"]["world"] == "balancer"

    reply = client(gw).chat.completions.create(model="cheap", messages=PING, max_tokens=64)
    assert reply.choices[0].message.content == REPLY
    headers = httpx.get(f"{mock.url}/mock/last-headers").json()
    assert headers.get("api-key") == PROVIDER_KEY and "authorization" not in headers
    sent = httpx.get(f"{mock.url}/mock/last-request").json()
    assert sent["model"] == "acme-small", "the cost policy put the cheap route first"
    assert sent["max_new_tokens"] == 64 and "max_tokens" not in sent
    assert httpx.get(f"{mock.url}/mock/stats").json()["models"].get("mock-expensive", 0) == 0

    # Replaced: `cost` becomes a plugin that keeps the config's route order.
    shutil.copy(components["misbehave"], plugins_dir / "cost.wasm.tmp")
    (plugins_dir / "cost.wasm.tmp").rename(plugins_dir / "cost.wasm")
    wait_for(lambda: loaded(gw)["cost"]["size_bytes"] != plugins["cost"]["size_bytes"], what="replacement")
    wait_for(lambda: gw.admin("config").json()["reload"]["generation"] == 3, what="config recompiled")
    client(gw).chat.completions.create(model="cheap", messages=PING)
    assert httpx.get(f"{mock.url}/mock/last-request").json()["model"] == "mock-expensive"

    # A broken file and one named like a built-in are reported, nothing else changes.
    (plugins_dir / "broken.wasm").write_bytes(b"\0asm not really")
    shutil.copy(components["cost-policy"], plugins_dir / "openai.wasm")
    errors = wait_for(lambda: len(e := gw.admin("plugins").json()["load_errors"]) == 2 and e)
    messages = {e["file"].rsplit("/", 1)[1]: e["message"] for e in errors}
    assert "built-in" in messages["openai.wasm"]
    assert messages["broken.wasm"]
    assert client(gw).chat.completions.create(model="smart", messages=PING).choices[0].message.content == REPLY

    # Removed while the config uses it: unlisted, but still serving until a
    # config without it is applied.
    (plugins_dir / "acme.wasm").unlink()
    wait_for(lambda: "acme" not in loaded(gw), what="acme unlisted")
    assert client(gw).chat.completions.create(model="cheap", messages=PING).choices[0].message.content == REPLY
    result = subprocess.run(
        [str(BIN_DIR / "llmgate"), "plugins", "--config", str(gw.config_path)],
        capture_output=True, text=True, check=True,
        env=dict(os.environ, LLMGATE_E2E_CLIENT_KEY=CLIENT_KEY, LLMGATE_E2E_ADMIN_TOKEN="unused"),
    )
    assert "cost" in result.stdout and "not loaded: " in result.stdout


def test_a_looping_panicking_or_hoarding_plugin_fails_only_its_request(mock, start_gateway, components, tmp_path):
    """The sandbox: a policy that loops forever fails its request within the
    call deadline while concurrent requests through other plugins succeed; a
    panic and a memory hog fail the same way; each names the plugin."""
    plugins_dir = tmp_path / "plugins.d"
    plugins_dir.mkdir()
    shutil.copy(components["misbehave"], plugins_dir / "misbehave.wasm")
    models = "".join(
        textwrap.dedent(
            f"""
            [[models]]
            name = "{mode}"
            policy = "misbehave"
            policy_options = {{ mode = "{mode}" }}
            routes = [{{ provider = "mock", model = "mock-small" }}]
            """
        )
        for mode in ["spin", "panic", "oom"]
    )
    config = with_plugin_dir(gateway_config(mock.url, models=models))
    # A short deadline and a small memory cap, so the test is quick.
    config = config.replace('dir = "plugins.d"', 'dir = "plugins.d"\ncall_timeout_ms = 200\nmax_memory_mb = 64', 1)
    gw = start_gateway(config)
    c = client(gw)

    def good(_):
        return c.chat.completions.create(model="smart", messages=PING).choices[0].message.content

    def bad(mode):
        started = time.monotonic()
        with pytest.raises(openai.InternalServerError) as caught:
            c.chat.completions.create(model=mode, messages=PING)
        return time.monotonic() - started, str(caught.value)

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        spins = [pool.submit(bad, "spin") for _ in range(3)]
        goods = list(pool.map(good, range(60)))
        spin_results = [f.result() for f in spins]
    assert goods == [REPLY] * 60
    for elapsed, message in spin_results:
        print(f"\nlooping plugin failed its request after {elapsed * 1000:.0f} ms: {message}")
        assert "misbehave" in message and "time limit of 200 ms" in message
        assert elapsed < 2.0

    elapsed, message = bad("panic")
    assert "misbehave" in message and "trapped" in message
    elapsed, message = bad("oom")
    assert "misbehave" in message
    assert good(0) == REPLY

    traps = [line for line in gw.metrics().splitlines()
             if line.startswith('llmgate_plugin_traps_total{plugin="misbehave"}')]
    assert traps == ['llmgate_plugin_traps_total{plugin="misbehave"} 5']


def test_a_wasi_component_loads_in_an_empty_sandbox(mock, start_gateway, components, tmp_path):
    """A component importing WASI (as wasm32-wasip2 builds do) loads; it sees
    no environment variables and no arguments (otherwise it reverses the
    route order and the first route would not serve)."""
    plugins_dir = tmp_path / "plugins.d"
    plugins_dir.mkdir()
    shutil.copy(components["wasi-probe"], plugins_dir / "wasi-probe.wasm")
    providers = provider("first", mock.url) + provider("second", mock.url)
    models = textwrap.dedent(
        """
        [[models]]
        name = "probe"
        policy = "wasi-probe"
        routes = [
          { provider = "first", model = "mock-small" },
          { provider = "second", model = "mock-small" },
        ]
        """
    )
    gw = start_gateway(with_plugin_dir(
        gateway_config(mock.url, extra_providers=providers, models=models, server_extra="route_headers = true")))
    raw = client(gw).chat.completions.with_raw_response.create(model="probe", messages=PING)
    assert raw.headers["x-llmgate-provider"] == "first"
    assert loaded(gw)["wasi-probe"]["world"] == "balancer"


def test_plugin_inspect(components, tmp_path):
    run = lambda *args: subprocess.run([str(BIN_DIR / "llmgate"), "plugin", "inspect", *args],
                                       capture_output=True, text=True)
    acme = run(str(components["acme-provider"]))
    assert acme.returncode == 0, acme.stderr
    assert "world:   provider" in acme.stdout and "dialect: openai" in acme.stdout
    assert "llmgate:plugin/adapter@0.1.0: " in acme.stdout and "build-request" in acme.stdout
    probe = run(str(components["wasi-probe"]))
    assert "world:   balancer" in probe.stdout
    assert "wasi:cli/environment@0.2.0: get-environment" in probe.stdout
    junk = tmp_path / "junk.wasm"
    junk.write_bytes(b"not wasm")
    bad = run(str(junk))
    assert bad.returncode != 0 and "not a WebAssembly component" in bad.stderr
