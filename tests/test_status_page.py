"""The status page in a real browser: Debian's Chromium driven by Playwright, against a real
daemon (``reputation-monitor run``) polling the simulator, alerting through Apprise's
json:// to a local receiver, with an API token set (so the login cookie is exercised).

Every page is checked with axe-core (from npm, tests/browser/package-lock.json, injected
into the page): no serious or critical violation, in light and dark. Screenshots of each
page, light and dark, go to tests/artifacts/status-page/ (printed at the end).

Skipped when chromium, Playwright or axe-core are missing, unless REQUIRE_BROWSER=1.
One daemon and one browser for the module; the tests run in file order and build on each
other's state only where a docstring says so.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from monitor.simulator import Simulator, SimulatorServer
from tests.support.daemon import DaemonProcess, migrated_config
from tests.support.receiver import Receiver

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
AXE = Path(__file__).parent / "browser" / "node_modules" / "axe-core" / "axe.min.js"
ARTIFACTS = Path(__file__).parent / "artifacts" / "status-page"
TOKEN = "page-token-0123456789"
DEGRADED, SALES, QUIET = "+12025550101", "+12025550102", "+12025550103"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


def _missing() -> str | None:
    if not Path(CHROMIUM).exists():
        return f"no chromium at {CHROMIUM} (apt-get install chromium)"
    if not AXE.exists():
        return "axe-core is not installed (npm ci --prefix tests/browser)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed"
    return None


_reason = _missing()
if _reason is not None:
    if os.environ.get("REQUIRE_BROWSER") == "1":
        raise RuntimeError(f"REQUIRE_BROWSER=1 but {_reason}")
    pytest.skip(_reason, allow_module_level=True)

from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright  # noqa: E402

# Chromium and a real daemon (~60 s on 2 cores): .ci/run's slow suite runs these.
pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The simulator, the receiver, and a daemon with one ``ops`` channel (AT_RISK and up)."""
    tmp = tmp_path_factory.mktemp("status-page")
    sim = Simulator(token="sim-token")
    sim.add_line(DEGRADED)
    sim.add_line(SALES)
    sim.add_line(QUIET)
    with SimulatorServer(sim) as server, Receiver() as receiver, \
            pytest.MonkeyPatch.context() as patch:
        patch.setenv("PAGE_TOKEN", TOKEN)
        config = migrated_config(
            tmp, base_url=server.url, channels=[("ops", receiver.url("ops"), "AT_RISK")],
            extra_alerts='policy_interval = "1s"',
            extra=f'[[lines]]\nmatch = "{SALES}"\nname = "Sales desk"\n'
                  'labels = { team = "sales" }\n')
        config.write_text(config.read_text().replace(
            "[server]\n", '[server]\napi_token_env = "PAGE_TOKEN"\n'))
        daemon = DaemonProcess(config, log=tmp / "daemon.log").start()
        try:
            daemon.wait_for_polls(1)
            sim.set_status(DEGRADED, "CRITICAL")
            receiver.wait_for(1, path="ops")
            yield {"sim": sim, "receiver": receiver, "daemon": daemon}
        finally:
            daemon.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def signed_in(browser: Browser, world: dict[str, Any]) -> Iterator[BrowserContext]:
    """A browser context past the login form. ``bypass_csp`` only so axe can be injected:
    the header itself is checked in the first test."""
    context = browser.new_context(base_url=world["daemon"].url, bypass_csp=True)
    page = context.new_page()
    page.goto("/")
    page.fill("#token", TOKEN)
    page.click("button[type=submit]")
    page.wait_for_url(world["daemon"].url + "/")
    page.close()
    yield context
    context.close()


@pytest.fixture
def page(signed_in: BrowserContext) -> Iterator[Page]:
    page = signed_in.new_page()
    yield page
    page.close()


def first_column(page: Page) -> list[str]:
    return [text.split("\n")[0].strip()
            for text in page.locator("table.lines tbody th").all_inner_texts()]


def test_it_asks_for_the_token_and_then_sets_a_strict_http_only_cookie(
        browser: Browser, world: dict[str, Any]) -> None:
    context = browser.new_context(base_url=world["daemon"].url)
    page = context.new_page()
    page.goto("/silences")
    assert page.url.endswith("/login?next=%2Fsilences")
    page.fill("#token", "not-the-token")
    page.click("button[type=submit]")
    assert "not the server's API token" in page.inner_text("main")
    page.fill("#token", TOKEN)
    with page.expect_response(lambda r: r.url.endswith("/silences")) as answer:
        page.click("button[type=submit]")
    assert answer.value.status == 200
    assert "default-src 'none'" in answer.value.headers["content-security-policy"]
    (auth,) = [c for c in context.cookies() if c["name"] == "rm_auth"]
    assert auth["httpOnly"] and auth["sameSite"] == "Strict"
    assert TOKEN not in auth["value"]
    context.close()
    # Without the cookie, nothing is shown; the bearer token works as for the API.
    assert httpx.get(world["daemon"].url + "/", timeout=5).status_code == 303
    assert httpx.get(world["daemon"].url + "/", timeout=5,
                     headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


def test_the_overview_lists_the_degraded_line_first(page: Page) -> None:
    page.goto("/")
    assert first_column(page)[0] == DEGRADED
    first = page.locator("table.lines tbody tr").first
    assert first.locator(".status").first.inner_text() == "CRITICAL"
    assert "status-critical" in (first.locator(".status").first.get_attribute("class") or "")
    assert "3 of 3 lines" in page.inner_text(".summary")


def test_the_keyboard_alone_reaches_the_content_and_a_line(page: Page) -> None:
    page.goto("/")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Enter")
    assert page.url.endswith("/#main")
    page.focus(f"table.lines a[href='/lines/%2B{DEGRADED[1:]}']")
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/lines/%2B{DEGRADED[1:]}")
    assert page.inner_text("h1").startswith(DEGRADED)


def test_the_filters_narrow_the_lines(page: Page) -> None:
    page.goto("/")
    page.fill("#f-label", "team=sales")
    page.click(".filters button[type=submit]")
    assert first_column(page) == [SALES]
    assert "Sales desk" in page.inner_text("table.lines")

    page.goto("/")
    page.fill("#f-q", "sales desk")  # the name, in another case
    page.click(".filters button[type=submit]")
    assert first_column(page) == [SALES]

    page.goto("/")
    page.select_option("#f-status", "HEALTHY")
    page.fill("#f-q", QUIET[-4:])
    page.click(".filters button[type=submit]")
    assert first_column(page) == [QUIET]
    assert page.input_value("#f-q") == QUIET[-4:]  # the form keeps what was asked

    page.goto("/?status=CRITICAL")
    assert first_column(page) == [DEGRADED]


def test_the_line_page_shows_the_change_and_its_delivered_notification(page: Page) -> None:
    page.goto("/")
    page.click(f"text={DEGRADED}")
    assert page.url.endswith("/lines/%2B12025550101")
    rows = page.locator("table.changes tbody tr").all_inner_texts()
    change = next(r for r in rows if "HEALTHY → CRITICAL" in r)
    assert "poll" in change
    assert re.search(r"ops: delivered at \d{4}-\d\d-\d\d", change), change
    assert page.locator("svg.timeline rect.status-critical").count() == 1
    assert "Pause outbound messaging" in page.inner_text("main")  # the recommended action


def test_a_silence_added_on_the_page_mutes_the_next_degradation_until_it_is_expired(
        page: Page, world: dict[str, Any]) -> None:
    sim: Simulator = world["sim"]
    receiver: Receiver = world["receiver"]
    daemon: DaemonProcess = world["daemon"]

    page.goto(f"/lines/{QUIET}")
    page.fill("#s-duration", "1h")
    page.fill("#s-reason", "carrier maintenance")
    page.fill("#s-by", "Ada")
    page.click("#si-h ~ form button[type=submit]")
    assert page.url.split("?")[0].endswith("/silences")
    assert re.search(r"Silence \d+ added", page.inner_text("[role=status]"))
    active = page.inner_text("#active-h ~ div")
    assert f"line={QUIET}" in active and "Ada (status page)" in active

    sent_before = len(receiver.messages)
    sim.set_status(QUIET, "CRITICAL")
    daemon.settle()
    assert not [m for m in receiver.messages if QUIET in m.title + m.message]
    assert len(receiver.messages) == sent_before
    page.goto(f"/lines/{QUIET}")
    assert "ops: silenced" in page.inner_text("table.changes")

    page.goto("/silences")
    row = page.locator("#active-h ~ div tbody tr").first
    row.locator("input[name=by]").fill("Ada")
    row.locator("button[type=submit]").click()
    assert re.search(r"Silence \d+ expired", page.inner_text("[role=status]"))
    assert "None." in page.inner_text("#active-h ~ p")
    assert f"line={QUIET}" in page.inner_text("#ended-h ~ div")
    # Ended, the silence no longer holds back the line, still CRITICAL: the channel hears.
    receiver.wait_for(sent_before + 1, path="ops")
    assert [m for m in receiver.messages if QUIET in m.title + m.message]


def test_a_post_without_the_csrf_token_is_refused(page: Page,
                                                  world: dict[str, Any]) -> None:
    page.goto("/silences")
    form = {"kind": "account", "value": "main", "duration": "1h", "reason": "x", "by": "Eve"}
    assert page.request.post("/silences", form=form).status == 403
    assert page.request.post("/silences", form={**form, "csrf": "0" * 64}).status == 403
    csrf = page.locator("input[name=csrf]").first.input_value()
    assert page.request.post("/silences/1/expire", form={"by": "Eve"}).status == 403
    # The same form with the page's token goes through: the refusals were the token's.
    answer = page.request.post("/silences", form={**form, "csrf": csrf}, max_redirects=0)
    assert answer.status == 303
    page.goto("/silences")
    row = page.locator("#active-h ~ div tbody tr", has_text="account=main")
    row.locator("input[name=by]").fill("Eve")
    row.locator("button[type=submit]").click()
    assert "account=main" not in page.inner_text("#active-h ~ *")
    # A request from another site carries no cookie (SameSite=Strict), and no token either.
    outside = httpx.post(world["daemon"].url + "/silences", data=form, timeout=5)
    assert outside.status_code == 403


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_every_page_passes_axe_and_is_saved_as_a_screenshot(
        browser: Browser, signed_in: BrowserContext, world: dict[str, Any],
        scheme: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = signed_in.new_page()
    page.emulate_media(color_scheme=scheme)
    page.set_viewport_size({"width": 1280, "height": 900})
    axe = AXE.read_text()
    found: dict[str, list[str]] = {}
    for name, path in [("overview", "/"), ("line", f"/lines/{DEGRADED}"),
                       ("silences", "/silences"), ("health", "/health")]:
        page.goto(path)
        page.add_script_tag(content=axe)
        # Light runs every rule; dark changes only colours, so only contrast is re-run.
        # resultTypes: axe details only the violations (much faster, same verdict).
        result = page.evaluate(
            "async (only) => await axe.run(document, Object.assign("
            "{resultTypes: ['violations']}, only ? {runOnly: only} : {}))",
            None if scheme == "light" else ["color-contrast"])
        found[name] = [f"{v['id']} ({v['impact']}): {v['help']} at "
                       f"{[n['target'] for n in v['nodes']][:3]}"
                       for v in result["violations"] if v["impact"] in ("serious", "critical")]
        page.screenshot(path=str(ARTIFACTS / f"{name}-{scheme}.png"), full_page=True)
    page.close()
    # The login form, as someone without the cookie sees it.
    outsider = browser.new_context(base_url=world["daemon"].url, bypass_csp=True,
                                   color_scheme=scheme)
    page = outsider.new_page()
    page.goto("/")
    page.add_script_tag(content=axe)
    result = page.evaluate("async () => await axe.run(document, "
                           "{resultTypes: ['violations']})")
    found["login"] = [f"{v['id']} ({v['impact']}): {v['help']}" for v in result["violations"]
                      if v["impact"] in ("serious", "critical")]
    page.screenshot(path=str(ARTIFACTS / f"login-{scheme}.png"), full_page=True)
    outsider.close()
    print(f"screenshots in {ARTIFACTS}")
    assert found == {name: [] for name in found}
