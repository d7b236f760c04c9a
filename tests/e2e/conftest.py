"""Fixtures that start the real llmgate binary and mock upstreams on free
loopback ports, and stop them afterwards.

Binaries come from target/debug (scripts/test builds them first); set
LLMGATE_BIN_DIR to test another build (e.g. target/release).
"""

import os
import re
import socket
import subprocess
import textwrap
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN_DIR = Path(os.environ.get("LLMGATE_BIN_DIR", ROOT / "target" / "debug"))
CLIENT_KEY = "sk-e2e-client"
PROVIDER_KEY = "sk-e2e-provider"
ADMIN_TOKEN = "adm-e2e-token"
PLUGIN_CACHE = ROOT / "target" / "e2e-plugin-cache"


def _binary(name: str) -> Path:
    path = BIN_DIR / name
    if not path.exists():
        pytest.exit(f"{path} is missing: run `cargo build --workspace --bins` first", 2)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Mock:
    """One mock-upstream process (OpenAI dialect)."""

    def __init__(self, *args: str):
        self.proc = subprocess.Popen(
            [str(_binary("mock-upstream")), "--listen", "127.0.0.1:0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        line = self.proc.stdout.readline()
        match = re.search(r"listening on (http://\S+)", line)
        if not match:
            self.stop()
            raise RuntimeError(f"mock-upstream did not start: {line!r}")
        self.url = match.group(1)

    def stop(self):
        self.proc.kill()
        self.proc.wait(timeout=10)


class Gateway:
    """One llmgate process serving a config written for the test."""

    def __init__(self, config: str, tmp: Path, port: int | None = None, cpus: str | None = None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config_path = tmp / "llmgate.toml"
        self.write_config(config)
        self.log_path = tmp / "llmgate.log"
        self.log = open(self.log_path, "a")
        env = dict(
            os.environ,
            LLMGATE_E2E_CLIENT_KEY=CLIENT_KEY,
            LLMGATE_E2E_ADMIN_TOKEN=ADMIN_TOKEN,
            RUST_LOG="info",
        )
        env.pop("LLMGATE_DATA_DIR", None)
        pin = ["taskset", "-c", cpus] if cpus else []
        self.proc = subprocess.Popen(
            [*pin, str(_binary("llmgate")), "serve", "--config", str(self.config_path)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"llmgate exited early:\n{self.logs()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"llmgate did not become healthy:\n{self.logs()}")

    def write_config(self, config: str):
        """Writes the config file (the running gateway reloads it). All test
        gateways share one compiled-plugin cache, so only the first of a run
        compiles the built-in plugins (about 1.5 s in a debug build)."""
        config = config.replace("{listen}", f"127.0.0.1:{self.port}")
        cache = f'cache_dir = "{PLUGIN_CACHE}"'
        if "[plugins]" in config:
            config = config.replace("[plugins]", f"[plugins]\n{cache}", 1)
        else:
            config = f"[plugins]\n{cache}\n\n{config}"
        self.config_path.write_text(config)

    def admin(self, path: str, token: str = ADMIN_TOKEN, method: str = "GET", **params) -> httpx.Response:
        """Calls the admin API."""
        headers = {"authorization": f"Bearer {token}"} if token else {}
        return httpx.request(method, f"{self.url}/admin/api/{path}", headers=headers, params=params, timeout=30)

    def metrics(self) -> str:
        return httpx.get(f"{self.url}/metrics", timeout=10).text

    def kill9(self):
        self.proc.kill()
        self.proc.wait(timeout=10)
        self.log.close()

    def logs(self) -> str:
        self.log.flush()
        return self.log_path.read_text()

    def stop(self):
        if self.log.closed:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@pytest.fixture
def mock():
    m = Mock("--key", PROVIDER_KEY, "--chunks", "6")
    yield m
    m.stop()


def provider(name: str, url: str, keys=(PROVIDER_KEY,), timeout_ms: int = 2000, idle_ms: int = 2000) -> str:
    """A [[providers]] block for the openai adapter at `url`."""
    key_list = ", ".join(f'"{k}"' for k in keys)
    return textwrap.dedent(
        f"""
        [[providers]]
        name = "{name}"
        adapter = "openai"
        base_url = "{url}/v1"
        keys = [{key_list}]
        timeout_ms = {timeout_ms}
        stream_idle_timeout_ms = {idle_ms}
        """
    )


def wait_for(condition, timeout=10.0, what="condition"):
    """Polls `condition` until it returns something truthy, and returns that."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def dialect_providers(mock_url: str) -> str:
    """Providers `oai`, `ant` and `goog`: the mock in each dialect."""
    return textwrap.dedent(
        f"""
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

        [[providers]]
        name = "goog"
        adapter = "gemini"
        base_url = "{mock_url}"
        keys = ["{PROVIDER_KEY}"]
        """
    )


def mock_stats(mock) -> dict:
    return httpx.get(f"{mock.url}/mock/stats").json()


def gateway_config(mock_url: str, extra_providers: str = "", models: str = "", server_extra: str = "") -> str:
    """A config with provider `mock` at `mock_url` and model `smart` on it."""
    return textwrap.dedent(
        f"""
        [server]
        listen = "{{listen}}"
        api_keys = ["${{LLMGATE_E2E_CLIENT_KEY}}"]
        admin_token = "${{LLMGATE_E2E_ADMIN_TOKEN}}"
        {server_extra}

        [[providers]]
        name = "mock"
        adapter = "openai"
        base_url = "{mock_url}/v1"
        keys = ["{PROVIDER_KEY}"]
        timeout_ms = 2000
        stream_idle_timeout_ms = 2000
        {extra_providers}

        [[models]]
        name = "smart"
        aliases = ["gpt-4o-mini"]
        routes = [{{ provider = "mock", model = "mock-small" }}]
        {models}
        """
    )


@pytest.fixture
def start_gateway(tmp_path):
    started = []

    def start(config: str, port: int | None = None, tmp: Path | None = None, cpus: str | None = None) -> Gateway:
        gw = Gateway(config, tmp or tmp_path, port, cpus)
        started.append(gw)
        return gw

    yield start
    for gw in started:
        gw.stop()


@pytest.fixture
def gateway(mock, start_gateway):
    return start_gateway(gateway_config(mock.url))
