"""The coding-agent CLIs people point at gateways, installed from the npm
registry at pinned versions and run non-interactively with a throwaway HOME:
Claude Code, Codex and Gemini CLI, each through llmgate to two kinds of
backend (mock upstreams speaking the real providers' dialects).

The mock's `notools` models answer in text even when tools are declared, as
an agent's final answer does, so each CLI prints the mock's answer and exits."""

import json
import os
import shutil
import subprocess
import textwrap

import pytest

from conftest import PROVIDER_KEY, ROOT, Mock, dialect_providers

CLIS = {
    "@anthropic-ai/claude-code": "2.1.197",
    "@openai/codex": "0.169.0",
    "@google/gemini-cli": "0.61.0",
}
CLI_DIR = ROOT / "target" / "e2e-clis"
KEY = "sk-cli-e2e"


@pytest.fixture(scope="session")
def clis() -> dict:
    """The CLIs, installed once into target/e2e-clis (kept between runs)."""
    if shutil.which("npm") is None:
        pytest.fail("npm is missing: scripts/setup installs Node.js and npm")
    stamp = CLI_DIR / "installed.json"
    if not stamp.exists() or json.loads(stamp.read_text()) != CLIS:
        CLI_DIR.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["npm", "install", "--prefix", str(CLI_DIR), "--no-audit", "--no-fund", "--loglevel=error",
             *[f"{name}@{version}" for name, version in CLIS.items()]],
            check=True, timeout=900,
        )
        stamp.write_text(json.dumps(CLIS))
    bin_dir = CLI_DIR / "node_modules" / ".bin"
    return {name: str(bin_dir / name) for name in ["claude", "codex", "gemini"]}


@pytest.fixture(scope="module")
def cli_gateway(tmp_path_factory):
    """One mock (all three dialects) and one gateway with a model per backend dialect."""
    from conftest import Gateway

    mock = Mock("--key", PROVIDER_KEY, "--chunks", "4")
    tmp = tmp_path_factory.mktemp("cli-gateway")
    config = textwrap.dedent(
        f"""
        [server]
        listen = "{{listen}}"
        api_keys = ["{KEY}"]
        admin_token = "${{LLMGATE_E2E_ADMIN_TOKEN}}"


        [[models]]
        name = "via-openai"
        routes = [{{ provider = "oai", model = "mock-notools" }}]

        [[models]]
        name = "via-anthropic"
        routes = [{{ provider = "ant", model = "claude-notools" }}]

        [[models]]
        name = "via-gemini"
        routes = [{{ provider = "goog", model = "gemini-notools" }}]
        """
    ) + dialect_providers(mock.url)
    gw = Gateway(config, tmp)
    yield gw
    gw.stop()
    mock.stop()


def clean_env(home) -> dict:
    """The test's environment without anything that would point a CLI elsewhere."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ANTHROPIC_", "OPENAI_", "GEMINI_", "GOOGLE_", "CLAUDE_", "CODEX_"))}
    env.update(HOME=str(home), NO_COLOR="1", CI="1")
    return env


def claude(clis, gw, home, model):
    env = clean_env(home)
    env.update(
        ANTHROPIC_BASE_URL=gw.url,
        ANTHROPIC_AUTH_TOKEN=KEY,
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
        DISABLE_TELEMETRY="1",
        DISABLE_AUTOUPDATER="1",
    )
    return [clis["claude"], "-p", "--model", model, "say hi"], env


def codex(clis, gw, home, model):
    (home / ".codex").mkdir()
    (home / ".codex" / "config.toml").write_text(textwrap.dedent(
        f"""
        model = "{model}"
        model_provider = "llmgate"

        [model_providers.llmgate]
        name = "llmgate"
        base_url = "{gw.url}/v1"
        env_key = "LLMGATE_KEY"
        wire_api = "responses"
        """
    ))
    env = clean_env(home)
    env["LLMGATE_KEY"] = KEY
    return [clis["codex"], "exec", "--skip-git-repo-check", "say hi"], env


def gemini(clis, gw, home, model):
    (home / ".gemini").mkdir()
    (home / ".gemini" / "settings.json").write_text(json.dumps(
        {"security": {"auth": {"selectedType": "gemini-api-key"}}}))
    env = clean_env(home)
    env.update(GEMINI_API_KEY=KEY, GOOGLE_GEMINI_BASE_URL=gw.url, GEMINI_CLI_TRUST_WORKSPACE="true")
    return [clis["gemini"], "-m", model, "-p", "say hi"], env


CASES = [
    ("claude", claude, "via-anthropic", "anthropic", "ant"),
    ("claude", claude, "via-openai", "anthropic", "oai"),
    ("codex", codex, "via-openai", "responses", "oai"),
    ("codex", codex, "via-anthropic", "responses", "ant"),
    ("gemini", gemini, "via-openai", "gemini", "oai"),
    ("gemini", gemini, "via-gemini", "gemini", "goog"),
]


@pytest.mark.parametrize("name,command,model,ingress,provider", CASES,
                         ids=[f"{c[0]}->{c[4]}" for c in CASES])
def test_cli_through_llmgate(clis, cli_gateway, tmp_path, name, command, model, ingress, provider):
    home = tmp_path / "home"
    home.mkdir()
    workdir = tmp_path / "work"
    workdir.mkdir()
    args, env = command(clis, cli_gateway, home, model)
    before = {r["id"] for r in cli_gateway.admin("requests", limit=1000).json()["items"]}
    result = subprocess.run(args, env=env, cwd=workdir, capture_output=True, text=True, timeout=240,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 0, f"{name} failed:\n{result.stdout}\n{result.stderr}\n{cli_gateway.logs()[-3000:]}"
    assert "Hello from mock!" in result.stdout, result.stdout
    import time
    time.sleep(0.5)  # the request log commits every 200 ms
    records = [r for r in cli_gateway.admin("requests", limit=1000).json()["items"] if r["id"] not in before]
    assert records, "the CLI's requests are in the log"
    assert all(r["status"] == 200 for r in records), [(r["status"], r.get("error")) for r in records]
    assert any(r["ingress"] == ingress and r["provider"] == provider and r["model"] == model for r in records)
