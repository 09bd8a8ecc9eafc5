#!/usr/bin/env python3
"""Regenerate docs/images/status-page.png from the real status page.

Starts `reconcile run --metrics-addr 127.0.0.1:PORT` on a private store, applies four
services (a web server with a health check, a worker, a crash-looping job runner, a
second worker), kills the worker once, lets about a minute of history accumulate, opens
the page in Debian's chromium through Playwright (headless, nothing beyond loopback) and
saves a screenshot; then stops the controller and removes every container and network
it created (they carry its store's instance label).

    python3 scripts/status-page-screenshot.py [OUT.png]   # needs an engine (DOCKER_HOST) and the test images
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import docker
import yaml

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("RECONCILE_CHROMIUM") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--no-first-run"]
HEALTH = {"test": ["CMD", "wget", "-q", "-O-", "http://127.0.0.1/health"], "interval": "2s", "retries": 2}


def svc(name: str, image: str, **spec: object) -> dict[str, object]:
    return {"apiVersion": "reconcile/v1alpha1", "kind": "Service", "metadata": {"name": name},
            "spec": {"image": image, **spec}}


def main() -> int:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "images" / "status-page.png"
    tmp = Path(tempfile.mkdtemp(prefix="reconcile-shot-"))
    env = {**os.environ, "RECONCILE_DB": str(tmp / "store.db"), "PYTHONPATH": str(ROOT)}
    cli = [sys.executable, "-m", "controller.cli"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    stack = tmp / "stack.yaml"
    stack.write_text(yaml.safe_dump_all([
        svc("web", "reconcile/demo-web:1", init=True, healthcheck=HEALTH, ports=["127.0.0.1::80"]),
        svc("worker", "reconcile/demo-worker:1"),
        svc("queue", "reconcile/demo-worker:1", env={"WORKER_ID": "q"}),
        svc("importer", "reconcile/busybox:latest", command=["sh", "-c", "sleep 3; echo cannot reach db; exit 3"],
            restartPolicy={"condition": "always", "backoff": {"initial": "2s", "factor": 2, "max": "20s"}}),
    ], sort_keys=False))
    from store import Store

    store = Store.open(str(tmp / "store.db"))  # created and migrated before the controller opens it
    label = f"io.reconcile.instance={store.instance_id}"
    store.close()
    log = open(tmp / "run.log", "w")  # noqa: SIM115 - closed below
    run = subprocess.Popen([*cli, "run", "--resync-interval", "1s", "--metrics-addr", f"127.0.0.1:{port}"],
                           env=env, stdout=log, stderr=subprocess.STDOUT)
    client = docker.from_env(timeout=60)
    try:
        subprocess.run([*cli, "apply", "-f", str(stack), "--wait", "--timeout", "120s"], env=env, check=False,
                       capture_output=True, timeout=180)
        time.sleep(20)
        for c in client.containers.list(filters={"label": [label, "io.reconcile.service=worker"]}):
            c.kill()  # only this store's own worker
        time.sleep(40)
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
            page = browser.new_page(viewport={"width": 1000, "height": 700})
            page.goto(f"http://127.0.0.1:{port}/")
            page.wait_for_selector('#services tr[data-service="importer"]', timeout=15_000)
            page.click('#services tr[data-service="importer"]')
            page.select_option("#f-hours", "1")
            page.wait_for_selector("#live.on", timeout=10_000)
            time.sleep(1)
            out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(out))
            browser.close()
        print(f"wrote {out} ({out.stat().st_size // 1000} KB)")
    finally:
        run.send_signal(signal.SIGTERM)
        run.wait(30)
        log.close()
        for c in client.containers.list(all=True, filters={"label": label}):
            c.remove(force=True)
        for n in client.networks.list(filters={"label": label}):
            n.remove()
    return 0


if __name__ == "__main__":
    sys.exit(main())
