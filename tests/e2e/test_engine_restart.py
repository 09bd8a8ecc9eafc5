"""`reconcile run` survives the Docker engine going away and coming back (issue 3).

This stops the dockerd of the engine DOCKER_HOST points to (docker20 or docker26, see
docs/ENGINES.md), so it is marked ``engine_restart`` (select or deselect it with ``-m``)
and skips itself while containers that are not this test's run on the engine: stopping
dockerd would stop them too. Whatever happens, it leaves that engine running
(``scripts/ensure-docker.sh --engine <it>`` in a ``finally``); it never starts another.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import docker
import pytest

from tests.e2e.conftest import WORKER_IMAGE, Harness, engine_is_podman, wait_for
from tests.e2e.faults_util import claim_engine_or_skip, dockerd_pid, engine_answers, engine_is_local, ensure_engine, pid_alive

pytestmark = [pytest.mark.e2e, pytest.mark.engine_restart]

def test_engine_restart_is_survived_and_services_come_back(rc: Harness, dclient: docker.DockerClient) -> None:
    if not engine_is_local():
        pytest.skip("DOCKER_HOST is not an engine ensure-docker.sh manages: it cannot restart it")
    f = rc.write([rc.service("web", ports=["127.0.0.1::80"]), rc.service("worker", WORKER_IMAGE)])
    proc = rc.start_daemon("--resync-interval", "1s")
    rc.run("apply", "-f", f, "--wait", "--timeout", "60s")
    before = {c.labels["io.reconcile.service"]: c.id for c in rc.containers()}
    assert len(before) == 2
    started = {name: rc.inspect(cid)["State"]["StartedAt"] for name, cid in before.items()}

    claim_engine_or_skip(dclient, rc.instance)  # stopping dockerd stops every container on it
    pid = dockerd_pid()
    client: docker.DockerClient | None = None
    try:
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: not engine_answers(), timeout=60, interval=0.5, what="`docker info` to fail")
        wait_for(lambda: not pid_alive(pid), timeout=90, interval=0.5, what=f"dockerd (pid {pid}) to exit")
        time.sleep(2)
        assert proc.poll() is None, f"the controller died with the engine:\n{rc.daemon_log()}"
        down = wait_for(lambda: rc.events(None, "EngineUnavailable"), timeout=20, what="an EngineUnavailable row")
    finally:
        ensure_engine()
    assert engine_answers(), "ensure-docker.sh did not bring the engine back"
    try:
        dclient.api.close()  # drop pooled connections to the old engine (the session keeps using it)
        client = docker.from_env(timeout=60)
        rc.client = client

        back = wait_for(lambda: rc.events(None, "EngineRestored"), timeout=40, what="an EngineRestored row")
        assert len(down) == 1 and down[0]["actor"] == "controller"
        assert len(back) == 1 and back[0]["ts"] > down[0]["ts"]

        def all_running() -> bool:
            cs = {c.labels["io.reconcile.service"]: c for c in rc.containers()}
            return set(cs) == set(before) and all(c.status == "running" for c in cs.values())

        wait_for(all_running, timeout=30, what="every service to run again")
        after = {c.labels["io.reconcile.service"]: c.id for c in rc.containers()}
        assert after == before, "the stopped containers are restarted in place, not replaced"
        def restarted(name: str) -> list[dict[str, Any]]:
            return [e for e in rc.events(name, "Restarted") if e["ts"] >= down[0]["ts"]]

        for name in before:
            if engine_is_podman():
                # Podman's containers are run by conmon, not by the API service that was
                # restarted: they never stopped, so the controller restarts nothing
                assert rc.inspect(after[name])["State"]["StartedAt"] == started[name], name
                assert not restarted(name), restarted(name)
                continue
            # the row is written once the start call returns: a moment after the engine says running
            rows = wait_for(lambda: restarted(name), timeout=10, what=f"a Restarted row for {name}")
            assert rows[-1]["actor"] == "controller", rows
            assert rc.inspect(after[name])["HostConfig"]["RestartPolicy"]["Name"] in ("no", "")
        assert proc.poll() is None, "the controller must outlive the engine"
        log = rc.daemon_log()
        assert "Docker engine unavailable" in log and "Docker engine is back" in log
    finally:
        rc.client = dclient
        if client is not None:
            client.close()
