"""Compose input end to end (issue 10, the input path), against the real engine.

- an ``extends`` (another file) + ``include`` (own project directory and ``.env``) +
  override stack where the override unpublishes a port with ``!reset``: the container
  really has no host binding, the included service got its own ``.env`` value, the
  extended service its base's settings and its base file's bind mount;
- a compose file without ``restart:``: apply prints the once-per-stack notice, and a
  running ``reconcile run`` does not restart the container when it dies (while the
  service of the same stack with ``restart: unless-stopped`` is restarted);
- a value interpolated into a secret-looking key reaches the container but no output:
  convert, diff, apply, describe, history (and --revisions), status, export, logs;
- ``examples/compose`` applied unchanged (``-f compose.yaml -f compose.override.yaml
  --wait``) converges: Job completed, every service healthy, the proxy serves.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import RUN_ID, TEST_LABEL, Harness, free_port, wait_for

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "compose"


def cli(rc: Harness, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
        expect: int | None = 0, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "controller.cli", *args], capture_output=True, text=True,
                          env={**rc.env, **(env or {})}, cwd=cwd, timeout=timeout)
    if expect is not None and proc.returncode != expect:
        raise AssertionError(f"reconcile {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def only_container(rc: Harness, service: str) -> Any:
    found = rc.containers(service)
    assert len(found) == 1, [c.name for c in found]
    return found[0]


def test_extends_include_and_reset_override(rc: Harness) -> None:
    port = free_port()
    root = rc.tmp / "proj"
    (root / "lib").mkdir(parents=True)
    (root / "common" / "site").mkdir(parents=True)
    (root / "common" / "site" / "health").write_text("ok\n")
    (root / "lib" / ".env").write_text("CACHE_MODE=from-lib-env # its own .env\n")
    (root / "lib" / "cache.yaml").write_text(f"""services:
  cache:
    image: reconcile/busybox:latest
    command: ["sh", "-c", "echo PONG > /tmp/ping && exec httpd -f -p 6379 -h /tmp"]
    init: true
    labels: {{{TEST_LABEL}: "{RUN_ID}"}}
    environment:
      MODE: ${{CACHE_MODE}}
""")
    (root / "common" / "base.yaml").write_text(f"""services:
  webbase:
    image: reconcile/demo-web:1
    init: true
    labels: {{{TEST_LABEL}: "{RUN_ID}", tier: web}}
    volumes:
      - ./site:/www/site:ro
    environment:
      ROLE: base
""")
    (root / "compose.yaml").write_text(f"""name: {rc.prefix}
include:
  - lib/cache.yaml
services:
  web:
    extends:
      file: common/base.yaml
      service: webbase
    environment:
      ROLE: web
    ports:
      - 127.0.0.1:{port}:80
    depends_on: [cache]
""")
    (root / "compose.override.yaml").write_text("services:\n  web:\n    ports: !reset []\n")
    # discovery: no -f, run in the project directory -> compose.yaml + compose.override.yaml
    out = cli(rc, "apply", "--wait", "--timeout", "120s", cwd=root)
    assert f"service/{rc.prefix}-web created" in out.stdout, out.stdout + out.stderr
    web = rc.inspect(only_container(rc, f"{rc.prefix}-web").id)
    # nothing published (Podman lists the image's exposed port with no binding: {"80/tcp": None})
    assert not any(v for v in (web["HostConfig"]["PortBindings"] or {}).values()), web["HostConfig"]["PortBindings"]
    assert not any(v for v in (web["NetworkSettings"]["Ports"] or {}).values()), web["NetworkSettings"]["Ports"]
    env = dict(e.split("=", 1) for e in web["Config"]["Env"])
    assert env["ROLE"] == "web"
    assert web["Config"]["Labels"]["tier"] == "web"
    binds = {m["Destination"]: m["Source"] for m in web["Mounts"] if m["Type"] == "bind"}
    assert binds["/www/site"] == str(root / "common" / "site")  # relative to the extended file
    cache = rc.inspect(only_container(rc, f"{rc.prefix}-cache").id)
    assert "MODE=from-lib-env" in cache["Config"]["Env"]
    # compose's DNS name (the bare service name, from the included file) resolves on the project network
    code, output = only_container(rc, f"{rc.prefix}-web").exec_run(["wget", "-q", "-O-", "http://cache:6379/ping"])
    assert (code, output.strip()) == (0, b"PONG"), output
    # and without the override the port is published: the !reset is what removed it
    cli(rc, "apply", "-f", str(root / "compose.yaml"), "--wait", "--timeout", "120s")
    web = rc.inspect(only_container(rc, f"{rc.prefix}-web").id)
    assert web["HostConfig"]["PortBindings"]["80/tcp"][0]["HostPort"] == str(port)


def test_no_restart_key_is_spoken_aloud_and_honoured_by_the_loop(rc: Harness) -> None:
    path = rc.tmp / "compose.yaml"
    path.write_text(f"""name: {rc.prefix}
services:
  oneshot:
    image: reconcile/busybox:latest
    command: ["sh", "-c", "sleep 600"]
    init: true
    labels: {{{TEST_LABEL}: "{RUN_ID}"}}
  kept:
    image: reconcile/busybox:latest
    command: ["sh", "-c", "sleep 600"]
    init: true
    restart: unless-stopped
    labels: {{{TEST_LABEL}: "{RUN_ID}"}}
""")
    for verb, code in ((["convert"], 0), (["diff"], 1)):  # diff: 1 = differences (as kubectl diff)
        out = cli(rc, *verb, "-f", str(path), expect=code)
        assert "oneshot will not be restarted by reconcile" in out.stderr, out.stderr
    applied = cli(rc, "apply", "-f", str(path), "--wait", "--timeout", "60s")
    [note] = [ln for ln in applied.stderr.splitlines() if "will not be restarted" in ln]
    assert "oneshot" in note and "kept" not in note and "x-reconcile" in note
    rc.start_daemon("--resync-interval", "1s")
    oneshot, kept = only_container(rc, f"{rc.prefix}-oneshot"), only_container(rc, f"{rc.prefix}-kept")
    killed_at = time.time()
    oneshot.kill()
    kept.kill()

    def kept_back() -> bool:
        kept.reload()
        return kept.status == "running" and kept.attrs["State"]["StartedAt"] != ""
    wait_for(kept_back, 60, what="the restart: unless-stopped service to be restarted")
    wait_for(lambda: rc.events(f"{rc.prefix}-kept", "Restarted") or rc.events(f"{rc.prefix}-kept"), 30)
    time.sleep(5)  # several resyncs: the loop had every chance to restart the other one
    oneshot.reload()
    assert oneshot.status == "exited", oneshot.status
    restarts = [e for e in rc.events(f"{rc.prefix}-oneshot") if e["type"] in ("Restarted", "Started", "Created")
                and e["ts"] >= killed_at]  # anything the loop did after the kill (not apply's own rows)
    assert not restarts, restarts


SECRET = "s3cr3t-Value-42"


def test_interpolated_secrets_never_appear_in_outputs(rc: Harness) -> None:
    path = rc.tmp / "compose.yaml"
    path.write_text(f"""name: {rc.prefix}
services:
  app:
    image: reconcile/busybox:latest
    command: ["sh", "-c", "sleep 600"]
    init: true
    restart: unless-stopped
    labels: {{{TEST_LABEL}: "{RUN_ID}"}}
    environment:
      DB_PASSWORD: ${{APP_DB_PASSWORD}}
      LOG_LEVEL: info
""")
    env = {"APP_DB_PASSWORD": SECRET}
    name = f"{rc.prefix}-app"
    outputs = {
        "convert": cli(rc, "convert", "-f", str(path), env=env),
        "diff": cli(rc, "diff", "-f", str(path), env=env, expect=1),
        "apply": cli(rc, "apply", "-f", str(path), "--wait", "--timeout", "60s", env=env),
    }
    container = rc.inspect(only_container(rc, name).id)
    assert f"DB_PASSWORD={SECRET}" in container["Config"]["Env"]  # the container gets the value
    path.write_text(path.read_text().replace("LOG_LEVEL: info", "LOG_LEVEL: debug"))
    outputs["diff changed"] = cli(rc, "diff", "-f", str(path), env={"APP_DB_PASSWORD": SECRET + "-new"}, expect=1)
    for args in (["describe", name], ["describe", name, "--json"], ["history"], ["history", name, "--json"],
                 ["history", name, "--revisions", "--json"], ["history", name, "--revisions"], ["status"],
                 ["status", "--json"], ["export"], ["export", "--json"]):
        outputs[" ".join(args)] = cli(rc, *args)
    for what, proc in outputs.items():
        assert SECRET not in proc.stdout + proc.stderr, what
    assert "<redacted>" in outputs["describe " + name].stdout
    assert "env.DB_PASSWORD" in outputs["export"].stderr  # the warning names the key
    revealed = cli(rc, "export", "--reveal-secrets")
    assert SECRET in revealed.stdout  # the round trip, on request
    again = rc.tmp / "export.yaml"
    again.write_text(revealed.stdout)
    result = json.loads(cli(rc, "apply", "-f", str(again), "--json").stdout)
    assert [c["change"] for c in result["changes"]] == ["unchanged"]


def test_the_example_project_applies_unchanged(rc: Harness) -> None:
    proxy, backend = free_port(), free_port()
    env = {"PROXY_PORT": str(proxy), "BACKEND_PORT": str(backend)}
    out = cli(rc, "apply", "-p", rc.prefix, "-f", str(EXAMPLE / "compose.yaml"),
              "-f", str(EXAMPLE / "compose.override.yaml"), "--wait", "--timeout", "240s", env=env, timeout=300)
    assert "dev-token-change-me" not in out.stdout + out.stderr
    assert "compose key 'develop'" in out.stderr
    rows = {r["name"]: r for r in json.loads(cli(rc, "status", "--json").stdout)}
    names = {f"{rc.prefix}-{s}" for s in ("db", "cache", "migrate", "backend", "frontend", "proxy")}
    assert set(rows) == names
    assert rows[f"{rc.prefix}-migrate"]["kind"] == "Job"
    for svc in ("db", "cache", "backend", "frontend", "proxy"):
        row = rows[f"{rc.prefix}-{svc}"]
        assert (row["state"], row["health"]) == ("Running", "healthy"), row
    with urllib.request.urlopen(f"http://127.0.0.1:{proxy}/health", timeout=5) as resp:  # noqa: S310 - loopback
        assert resp.read().strip() == b"ok"
    with urllib.request.urlopen(f"http://127.0.0.1:{backend}/health", timeout=5) as resp:  # noqa: S310
        assert resp.status == 200
    db = rc.inspect(only_container(rc, f"{rc.prefix}-db").id)
    mounts = {m["Destination"]: m for m in db["Mounts"]}
    assert mounts["/run/secrets/db_password"]["Source"] == str(EXAMPLE / "secrets" / "db_password.txt")
    assert mounts["/var/lib/postgresql/data"]["Type"] == "volume"
    backend_env = rc.inspect(only_container(rc, f"{rc.prefix}-backend").id)["Config"]["Env"]
    assert "API_TOKEN=dev-token-change-me" in backend_env and "LOG_LEVEL=debug" in backend_env
