"""The status page (issue 14) in a real browser against a real `reconcile run` and the
real engine: Debian's chromium, headless, driven by Playwright for Python.

The daemon serves the page on 127.0.0.1 (a free port); the browser opens it, sees every
service, watches a `docker kill` appear as a restart mark on the service's timeline and
as a new row in the history within 3 s without a reload, and filters the history.
Screenshots go to $RECONCILE_TEST_OUTPUT/status-page (else the test's tmp directory;
the path is printed). The browser reaches nothing but 127.0.0.1 (asserted). When the
browser cannot be launched the test fails with the reason: it never skips.
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import WORKER_IMAGE, Harness, free_port, wait_for

pytestmark = pytest.mark.e2e

CHROMIUM = os.environ.get("RECONCILE_CHROMIUM") or "/usr/bin/chromium"
BROWSER_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--no-first-run"]
LIVE_WITHIN = 3.0  # seconds from `docker kill` to the page showing it (issue 14)


def _out_dir(tmp_path: Path) -> Path:
    root = os.environ.get("RECONCILE_TEST_OUTPUT")
    out = (Path(root) if root else tmp_path) / "status-page"
    out.mkdir(parents=True, exist_ok=True)
    print(f"\nstatus page screenshots: {out}")
    return out


@pytest.fixture
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        pytest.fail(f"Playwright for Python is not installed ({exc}): scripts/setup.sh installs it", pytrace=False)
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"no browser at {CHROMIUM}: scripts/setup.sh installs Debian's chromium", pytrace=False)
    with sync_playwright() as p:
        try:
            b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=BROWSER_ARGS)
        except Exception as exc:  # noqa: BLE001 - any launch failure fails the test with its reason
            pytest.fail(f"chromium ({CHROMIUM}) cannot be launched: {exc}", pytrace=False)
        try:
            yield b
        finally:
            b.close()


def test_status_page_shows_services_live_kill_and_filters(rc: Harness, browser: Any, tmp_path: Path) -> None:
    out = _out_dir(tmp_path)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    names = [rc.name(n) for n in ("web", "worker", "batch")]
    f = rc.write([rc.service("web", ports=["127.0.0.1::80"]), rc.service("worker", WORKER_IMAGE),
                  rc.service("batch", WORKER_IMAGE, env={"WORKER_ID": "b"})])
    rc.start_daemon("--resync-interval", "1s", "--metrics-addr", f"127.0.0.1:{port}")
    rc.run("apply", "-f", f, "--wait", "--timeout", "90s")

    page = browser.new_page(viewport={"width": 1100, "height": 760})
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(base + "/")
    for n in names:  # every service, with the state the store has for it
        page.wait_for_selector(f'#services tr[data-service="{n}"] [data-field="state"]:has-text("Running")',
                               timeout=15_000)
    assert page.locator("#services tbody tr").count() == len(names)
    web = rc.name("web")
    page.click(f'#services tr[data-service="{web}"]')
    page.wait_for_function("n => document.querySelector('#detail-name').textContent === n", arg=web)
    page.wait_for_selector("#live.on", timeout=10_000)
    page.select_option("#f-hours", "1")  # the last hour: this service's minute of life is visible
    page.wait_for_function("() => document.querySelector('#axis').textContent.startsWith('−1 h')")
    page.screenshot(path=str(out / "01-services.png"), full_page=True)
    marks = page.locator("#timeline .restart-mark").count()
    page.evaluate("window.__notReloaded = true")

    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    container = rc.inspect(rc.cname("web"))["Id"]
    killed_at = time.time()
    rc.client.api.kill(container)
    killed = time.monotonic()
    try:
        page.wait_for_function("n => document.querySelectorAll('#timeline .restart-mark').length > n", arg=marks,
                               timeout=LIVE_WITHIN * 1000)
        page.wait_for_selector(f'#events tr.event[data-type="Restarted"][data-service="{web}"]',
                               timeout=max(0.1, LIVE_WITHIN - (time.monotonic() - killed)) * 1000)
    except Exception as exc:  # noqa: BLE001 - say where the time went: the controller or the page
        rows = rc.events(web, "Restarted")
        written = f"{rows[0]['ts'] - killed_at:.2f} s after the kill" if rows else "not (yet) written"
        page.screenshot(path=str(out / "02-timeout.png"), full_page=True)
        pytest.fail(f"the kill was not on the page within {LIVE_WITHIN:g} s ({type(exc).__name__}); the audit's "
                    f"Restarted row was {written}; page errors: {errors}", pytrace=False)
    shown_after = time.monotonic() - killed
    assert page.locator(f'#events tr.event[data-type="Restarted"][data-service="{web}"]').count() == 1, \
        "one kill, one Restarted row on the page"
    print(f"docker kill -> restart mark and history row on the page: {shown_after * 1000:.0f} ms")
    assert shown_after < LIVE_WITHIN
    assert page.evaluate("window.__notReloaded === true"), "the page was reloaded"
    page.screenshot(path=str(out / "02-after-kill.png"), full_page=True)
    # the world agrees: the engine restarted that container, the audit says so
    restarted = wait_for(lambda: rc.events(web, "Restarted"), timeout=10, what="a Restarted row")
    assert restarted[0]["container_id"] == container and "137" in restarted[0]["reason"]
    # the page's timeline is the server's (one mark per restart, drawn from the audit)
    with urllib.request.urlopen(f"{base}/api/services/{web}?hours=1", timeout=10) as resp:
        served = json.loads(resp.read())["timeline"]
    assert len(served["restarts"]) == 1 and served["restarts"][0] == restarted[0]["ts"], served
    wait_for(lambda: page.locator("#timeline .restart-mark").count() == 1, timeout=5,
             what="the page's timeline to show the served restart once")
    bands = page.eval_on_selector_all("#timeline .band", "els => els.map(e => [e.dataset.state, "
                                      "e.getBoundingClientRect().width])")
    assert bands[0][0] == "unknown" and bands[-1][0] == "running", bands  # created a minute ago, running now
    assert sum(w for state, w in bands if state == "running") >= 2, bands

    # filter the history: one service, one type
    page.select_option("#f-service", web)
    page.select_option("#f-type", "Restarted")
    page.wait_for_function(
        "n => { const rows = [...document.querySelectorAll('#events tr.event')];"
        " return rows.length >= 1 && rows.every(r => r.dataset.service === n && r.dataset.type === 'Restarted'); }",
        arg=web, timeout=5_000)
    page.select_option("#f-type", "Created")
    page.wait_for_function(
        "n => { const rows = [...document.querySelectorAll('#events tr.event')];"
        " return rows.length === 1 && rows[0].dataset.type === 'Created' && rows[0].dataset.service === n; }",
        arg=web, timeout=5_000)
    page.screenshot(path=str(out / "03-filtered.png"), full_page=True)
    outside = [u for u in requests if not u.startswith(base + "/")]
    assert outside == [], f"the page fetched from elsewhere: {outside}"
    page.close()


def test_run_refuses_an_address_beyond_loopback_without_a_token(rc: Harness, tmp_path: Path) -> None:
    port = free_port()
    proc = rc.run("run", "--metrics-addr", f"0.0.0.0:{port}", expect=2, timeout=60)
    assert f"0.0.0.0:{port} is reachable from other hosts" in proc.stderr and "--ui-token-file" in proc.stderr
    short = tmp_path / "token"
    short.write_text("abc\n")
    proc = rc.run("run", "--metrics-addr", f"0.0.0.0:{port}", "--ui-token-file", str(short), expect=2, timeout=60)
    assert f"{short}:1" in proc.stderr and "at least 16 characters" in proc.stderr
    assert rc.containers() == [] and rc.events(None, "ControllerStarted") == [], "nothing was started"
