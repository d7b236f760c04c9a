"""The admin console in a real headless browser (Debian's chromium, driven
by playwright): after a short scripted load (successes, a failover, a
translated request, an error) every page shows it. Screenshots of each page
go to test-artifacts/ui/."""

import shutil
import textwrap
import time

import anthropic
import openai
import pytest
from playwright.sync_api import expect

from conftest import ADMIN_TOKEN, CLIENT_KEY, PROVIDER_KEY, ROOT, provider

ARTIFACTS = ROOT / "test-artifacts" / "ui"
PING = [{"role": "user", "content": "ping"}]


@pytest.fixture
def loaded_gateway(mock, start_gateway):
    from conftest import gateway_config

    extra = provider("down", mock.url)
    models = textwrap.dedent(
        """
        [[models]]
        name = "failover"
        policy = "priority"
        routes = [
          { provider = "down", model = "mock-fail-500", priority = 1 },
          { provider = "mock", model = "mock-small", priority = 2, capabilities = ["tools", "vision"] },
        ]
        """
    )
    # A long cooldown, so it still shows when the test reaches that page.
    config = gateway_config(mock.url, extra_providers=extra, models=models) + "\n[routing]\nbackend_cooldown_ms = 120000\n"
    gw = start_gateway(config)
    c = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=CLIENT_KEY, max_retries=0)
    for _ in range(4):
        c.chat.completions.create(model="smart", messages=PING)
    for _ in c.chat.completions.create(model="smart", messages=PING, stream=True):
        pass
    for _ in range(2):
        c.chat.completions.create(model="failover", messages=PING)
    a = anthropic.Anthropic(base_url=gw.url, api_key=CLIENT_KEY, max_retries=0)
    a.messages.create(model="smart", max_tokens=50, messages=PING)
    with pytest.raises(openai.NotFoundError):
        c.chat.completions.create(model="no-such-model", messages=PING)
    time.sleep(0.6)  # the request log commits every 200 ms
    return gw


@pytest.fixture
def browser():
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("chromium is missing: scripts/setup installs it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


def shot(page, name):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_every_page_shows_the_scripted_load(loaded_gateway, browser):
    gw = loaded_gateway
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    foreign = []
    page.on("request", lambda r: None if r.url.startswith(gw.url) else foreign.append(r.url))

    page.goto(f"{gw.url}/ui/")
    page.fill("#token", "wrong-token")
    page.click("form#login button")
    page.wait_for_selector("#login-error:has-text('refused')")
    page.fill("#token", ADMIN_TOKEN)
    page.click("form#login button")

    # Dashboard: totals, charts, per-model percentiles.
    page.wait_for_selector("#total-requests")
    assert page.locator("form#login").is_hidden(), "the sign-in form goes away"
    assert page.inner_text("#total-requests") == "9"
    assert page.inner_text("#total-errors") == "1"
    assert page.locator("[data-chart=requests] rect").count() >= 1
    groups = page.inner_text("#groups")
    assert "smart" in groups and "failover" in groups and "no-such-model" in groups
    shot(page, "dashboard")

    # Logs: filter, then a failover's detail with its attempt trail.
    page.click("nav a[data-page=logs]")
    page.wait_for_selector("#log-table tbody tr.clickable")
    assert page.locator("#log-table tbody tr.clickable").count() == 9
    shot(page, "logs")
    page.fill("input[name=model]", "failover")
    page.click("#filters button")
    # (Locator waits, not wait_for_function: the console's CSP forbids eval,
    # which playwright's string predicates need.)
    expect(page.locator("#log-table tbody tr.clickable")).to_have_count(2)
    # The older one: the second found the failing backend cooling down.
    page.click("#log-table tbody tr.clickable >> nth=1")
    page.wait_for_selector("#attempts")
    attempts = page.inner_text("#attempts")
    assert "down" in attempts and "upstream" in attempts and "ok" in attempts
    assert page.locator("#attempts tbody tr").count() == 2
    shot(page, "request-detail")

    # The translated request: an Anthropic client served by an OpenAI backend.
    page.fill("input[name=model]", "smart")
    page.click("#filters button")
    page.wait_for_selector("#log-table tbody tr.clickable")
    rows = page.locator("#log-table tbody tr.clickable")
    for i in range(rows.count()):
        rows.nth(i).click()
        page.wait_for_selector("#request-detail")
        if "anthropic dialect" in page.inner_text("#request-detail"):
            break
    else:
        raise AssertionError("no translated request in the log")
    shot(page, "translated-request")

    # Providers: the failing backend cools down, with time left.
    page.click("nav a[data-page=providers]")
    page.wait_for_selector("table.routes[data-model=failover]")
    routes = page.inner_text("table.routes[data-model=failover]")
    assert "cooling down" in routes and "s left" in routes
    assert "tools, vision" in routes
    shot(page, "providers")

    page.click("nav a[data-page=plugins]")
    page.wait_for_selector("#plugin-table")
    plugins = page.inner_text("#plugin-table")
    assert "openai" in plugins and "weighted" in plugins and "balancer" in plugins
    shot(page, "plugins")

    page.click("nav a[data-page=config]")
    page.wait_for_selector("#effective-config")
    text = page.inner_text("#effective-config")
    assert "redacted" in text and PROVIDER_KEY not in text and CLIENT_KEY not in text
    shot(page, "config")

    # A phone-sized screen.
    page.set_viewport_size({"width": 390, "height": 844})
    page.click("nav a[data-page=dashboard]")
    page.wait_for_selector("#total-requests")
    shot(page, "dashboard-phone")

    page.click("#logout")
    page.wait_for_selector("form#login:not([hidden])")
    assert foreign == [], f"the console requested outside the gateway: {foreign}"
