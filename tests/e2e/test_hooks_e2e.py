"""Lifecycle hooks (compose ``post_start`` / ``pre_stop``, native ``spec.lifecycle``) end
to end, against the real engine (issue 10).

- a postStart hook runs in the container right after it starts: the file it writes is
  there (``docker exec``), and a ``HookRan`` row with exit status 0 follows ``Created``;
- a failing postStart hook fails the apply with the hook's exit status and stderr tail,
  audited as ``HookFailed``; the container keeps running, as compose leaves it;
- a preStop hook runs before a recreate: it writes into a named volume, which the new
  container reads, and its ``HookRan`` row precedes the ``Recreated`` row; deleting the
  service runs it again (from the deleted record's revision) before the removal;
- a remote build context (here an http URL on a closed loopback port of the engine's
  host: nothing leaves the machine) is handed to the engine, which cannot fetch it:
  the apply fails saying so, and a ``BuildFailed`` row holds the engine's output. Podman's
  Docker-compatible build never fetches a URL context (it builds from the empty request
  body): there the apply says the engine does not fetch URL contexts, and a reachable URL
  (served by the test on loopback) fails the same way, while Docker builds it.

Compose files are written by the tests; project names carry the run id.
"""

from __future__ import annotations

import http.server
import io
import tarfile
import threading
from typing import Any

import pytest
import yaml

from tests.e2e.conftest import BASE_IMAGE, RUN_ID, TEST_LABEL, Harness, engine_is_podman, ordered

pytestmark = pytest.mark.e2e


def write_compose(rc: Harness, services: dict[str, Any], **top: Any) -> str:
    return rc.write(yaml.safe_dump({"name": rc.prefix, "services": services, **top}, sort_keys=False), "compose.yaml")


def sleeper(**keys: Any) -> dict[str, Any]:
    return {"image": BASE_IMAGE, "command": ["sleep", "600"], "init": True, "labels": {TEST_LABEL: RUN_ID},
            "stop_grace_period": "2s", **keys}


def exec_out(rc: Harness, container: str, cmd: str) -> str:
    res = rc.client.containers.get(container).exec_run(["sh", "-c", cmd])
    return str(res.output.decode())


def test_a_post_start_hook_runs_after_the_start(rc: Harness) -> None:
    hook = {"command": "sh -c 'echo \"started as $(id -u) in $(pwd) with $$GREETING\" > /tmp/hook.txt'",
            "user": "0", "working_dir": "/etc", "environment": {"GREETING": "hello"}}
    path = write_compose(rc, {"app": sleeper(post_start=[hook])})
    rc.run("apply", "-f", path, "--wait", "--timeout", "60s")
    name = f"{rc.prefix}-app"
    assert exec_out(rc, f"{name}-1", "cat /tmp/hook.txt").strip() == "started as 0 in /etc with hello"
    rows = rc.history(name)
    found = ordered(rows, lambda r: r["type"] == "Created",
                    lambda r: r["type"] == "HookRan" and r["reason"] == "postStart hook 1/1 exited with status 0")
    assert found is not None, rows
    assert "hello" not in found[1]["message"]  # hook env values are never audited


def test_a_failing_post_start_hook_fails_the_apply_and_is_audited(rc: Harness) -> None:
    hook = {"command": ["sh", "-c", "echo doing; echo 'no such thing' >&2; exit 3"]}
    path = write_compose(rc, {"app": sleeper(post_start=[hook])})
    proc = rc.run("apply", "-f", path, "--timeout", "30s", expect=None)
    assert proc.returncode != 0, proc.stdout + proc.stderr
    text = proc.stdout + proc.stderr
    assert "postStart hook 1/1" in text and "exited with status 3: no such thing" in text, text
    name = f"{rc.prefix}-app"
    [row] = rc.history(name, "HookFailed")
    assert row["reason"] == "postStart hook 1/1 exited with status 3", row
    assert "no such thing" in row["message"] and row["container_id"], row
    # compose leaves the container running; so does reconcile
    assert rc.inspect(f"{name}-1")["State"]["Running"] is True


def test_a_pre_stop_hook_runs_before_a_recreate_and_a_delete(rc: Harness) -> None:
    hook = {"command": ["sh", "-c", "echo \"pre-stop of $(hostname) gen $$GEN\" >> /data/log.txt"]}
    svc = sleeper(volumes=["data:/data"], pre_stop=[hook], environment={"GEN": "1"}, hostname="one")
    path = write_compose(rc, {"app": svc}, volumes={"data": {}})
    rc.run("apply", "-f", path, "--wait", "--timeout", "60s")
    name = f"{rc.prefix}-app"
    first = rc.inspect(f"{name}-1")["Id"]

    svc = {**svc, "environment": {"GEN": "2"}, "hostname": "two"}
    rc.run("apply", "-f", write_compose(rc, {"app": svc}, volumes={"data": {}}), "--wait", "--timeout", "60s")
    second = rc.inspect(f"{name}-1")["Id"]
    assert second != first
    # the hook ran in the old container, before it stopped: the new one reads what it wrote
    assert exec_out(rc, f"{name}-1", "cat /data/log.txt").strip() == "pre-stop of one gen 1"
    rows = rc.history(name)
    found = ordered(rows, lambda r: r["type"] == "HookRan" and r["reason"] == "preStop hook 1/1 exited with status 0"
                    and r["container_id"] == first,
                    lambda r: r["type"] == "Recreated")
    assert found is not None, rows

    rc.run("delete", name)
    volume = f"{rc.prefix}_data"
    out = rc.client.containers.run(BASE_IMAGE, ["cat", "/data/log.txt"], volumes={volume: {"bind": "/data"}},
                                   labels={TEST_LABEL: f"{RUN_ID}-{rc.prefix}"}, remove=True).decode()
    assert out.splitlines() == ["pre-stop of one gen 1", "pre-stop of two gen 2"], out
    rows = rc.history(name)
    assert ordered(rows, lambda r: r["type"] == "HookRan" and r["container_id"] == second,
                   lambda r: r["type"] == "Removed" and r["container_id"] == second) is not None, rows


def test_a_remote_build_context_the_engine_cannot_fetch_fails_saying_so(rc: Harness) -> None:
    url = "http://127.0.0.1:9/context.tar"  # port 9 (discard) is closed: the engine's fetch is refused
    path = write_compose(rc, {"app": {"image": f"{rc.prefix}-remote:1", "build": {"context": url},
                                      "labels": {TEST_LABEL: RUN_ID}}})
    proc = rc.run("apply", "-f", path, "--timeout", "60s", expect=None)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0, text
    [row] = rc.history(f"{rc.prefix}-app", "BuildFailed")
    if engine_is_podman():
        # Podman's Docker-compatible build never fetches a URL (it builds from the empty request
        # body): the controller says so, not that the engine could not reach it
        assert (f"its build context {url} is a URL, and this engine does not fetch URL build contexts "
                "(Podman's Docker-compatible API ignores the URL") in text, text
        assert "could not reach it" not in text, text
        assert "libpod_builder" in row["message"] and "/build/" in row["message"], row
    else:
        assert f"its build context {url} is a URL the engine fetches itself, and the engine could not reach it" in text, text
        assert "127.0.0.1:9" in row["message"], row
    assert not rc.client.images.list(name=f"{rc.prefix}-remote")


def _serve_once(body: bytes) -> tuple[http.server.HTTPServer, threading.Thread]:
    """An HTTP server on 127.0.0.1 (a free port) that answers every GET with ``body``; bounded:
    the caller shuts it down, and it times out each request after 10 s."""

    class Handler(http.server.BaseHTTPRequestHandler):
        timeout = 10

        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            self.send_response(200)
            self.send_header("Content-Type", "application/x-tar")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
    thread.start()
    return server, thread


def test_a_remote_build_context_the_engine_can_fetch_builds_on_docker_and_is_refused_clearly_on_podman(
        rc: Harness) -> None:
    """The same URL context, reachable this time (a tar with a Dockerfile, served on loopback in
    the engine's own network namespace): Docker fetches and builds it; Podman's compatible API
    fails exactly as for an unreachable URL, which shows it never fetched either."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        dockerfile = f"FROM {BASE_IMAGE}\nLABEL fetched=yes\n".encode()
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(dockerfile)
        tar.addfile(info, io.BytesIO(dockerfile))
    server, thread = _serve_once(buf.getvalue())
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/context.tar"
        path = write_compose(rc, {"app": {"image": f"{rc.prefix}-fetched:1", "build": {"context": url},
                                          "command": ["sleep", "600"], "init": True, "stop_grace_period": "2s",
                                          "labels": {TEST_LABEL: RUN_ID}}})
        proc = rc.run("apply", "-f", path, "--timeout", "90s", expect=None)
    finally:
        server.shutdown()
        thread.join(timeout=10)
    text = proc.stdout + proc.stderr
    if engine_is_podman():
        assert proc.returncode != 0, text
        assert f"its build context {url} is a URL, and this engine does not fetch URL build contexts" in text, text
        assert not rc.client.images.list(name=f"{rc.prefix}-fetched")
    else:
        try:
            assert proc.returncode == 0, text
            [image] = rc.client.images.list(name=f"{rc.prefix}-fetched")
            assert image.labels.get("fetched") == "yes", image.labels
            assert [r["type"] for r in rc.history(f"{rc.prefix}-app", "Built")] == ["Built"]
        finally:  # images are not swept by the harness: this test's own goes now (its container first)
            for c in rc.client.containers.list(all=True, filters={"label": f"io.reconcile.instance={rc.instance}"}):
                c.remove(force=True)
            for image in rc.client.images.list(name=f"{rc.prefix}-fetched"):
                rc.client.images.remove(image.id, force=True)
