"""An engine that half-stops answering must not stall the controller (issue 12).

A unix-socket proxy (bench/sockproxy.py) sits in front of the real engine and keeps one
request from it: the removal of one container. Every other call goes through. This is
how Debian's 20.10 engine wedged after the quick benchmark (``docker rm -f`` of any
container hung while ``docker ps`` still answered). The controller's removal call must
time out, be audited as ``EngineDegraded`` (with the call and the container) and be
retried with backoff, while another service is healed meanwhile.
"""

from __future__ import annotations

import time
from pathlib import Path

import docker
import docker.errors
import pytest

from bench.sockproxy import CountingProxy
from tests.e2e.conftest import RUN_ID, TEST_LABEL, WORKER_IMAGE, Harness, wait_for

pytestmark = pytest.mark.e2e

ACT_TIMEOUT = 3.0


def test_a_hung_removal_times_out_is_audited_and_retried_while_other_services_heal(
        rc: Harness, dclient: docker.DockerClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    keep, gone = rc.name("keep"), rc.name("gone")
    both = rc.write([rc.service("keep", WORKER_IMAGE), rc.service("gone", WORKER_IMAGE)], "both.yaml")
    rc.run("apply", "-f", both, "--wait", "--timeout", "60s")
    gone_id = rc.inspect(rc.cname("gone"))["Id"]
    keep_id = rc.inspect(rc.cname("keep"))["Id"]

    proxy = CountingProxy(tmp_path / "engine.sock",
                          hold=lambda method, target: method == "DELETE" and f"/containers/{gone_id}" in target)
    proxy.start()
    try:
        with monkeypatch.context() as m:
            m.setenv("DOCKER_HOST", proxy.url)
            m.setenv("RECONCILE_ENGINE_TIMEOUTS", f"act={ACT_TIMEOUT:g}")
            # one worker: were the hung call not bounded, nothing else could be reconciled
            daemon = rc.start_daemon("--resync-interval", "1s", "--workers", "1")
            # `gone` is no longer desired (the same file without it): the running controller
            # removes its container, and that removal is the call that hangs
            rc.run("apply", "-f", rc.write([rc.service("keep", WORKER_IMAGE)], "both.yaml"), "--prune")

        degraded = wait_for(lambda: [e for e in rc.events(gone, "EngineDegraded") if e["actor"] == "controller"],
                            timeout=60, what="an EngineDegraded row of the controller")
        row = degraded[0]
        assert row["container_id"] == gone_id, row
        assert row["reason"] == f"containers.remove timed out after {ACT_TIMEOUT:g}s", row
        assert gone_id[:12] in row["message"], row
        assert any(h.startswith(f"DELETE /v") and gone_id in h for h in proxy.held), proxy.held

        # meanwhile another service is healed, through the same controller and proxy
        dclient.api.kill(keep_id)
        restarted = wait_for(lambda: [e for e in rc.events(keep, "Restarted") if e["container_id"] == keep_id],
                             timeout=30, what=f"{keep} to be restarted while {gone}'s removal hangs")
        assert rc.inspect(keep_id)["State"]["Running"]
        assert [c.id for c in rc.containers(gone)] == [gone_id], "the hung removal never reached the engine"
        assert daemon.poll() is None

        # retried with backoff: several attempts, spaced out, each one bounded
        wait_for(lambda: len(proxy.held) >= 3, timeout=60, what="the removal to be retried")
        assert not rc.events(gone, "Removed"), "nothing was removed while the engine did not answer"

        proxy.release()  # the engine answers again: the next retry removes the container
        removed = wait_for(lambda: rc.events(gone, "Removed"), timeout=60, what=f"{gone} to be removed after release")
        assert removed[0]["container_id"] == gone_id and removed[0]["ts"] > restarted[0]["ts"]
        wait_for(lambda: not rc.containers(gone), timeout=20, what=f"{gone}'s container to be gone")
        # one row per attempt at most, and not one per second: the retries back off
        rows = [e for e in rc.events(gone, "EngineDegraded") if e["actor"] == "controller"]
        assert 1 <= len(rows) <= len(proxy.held), (rows, proxy.held)
        assert daemon.poll() is None
        assert "Traceback" not in rc.daemon_log()
    finally:
        proxy.release()
        proxy.close()


def test_bench_cleanup_is_bounded_and_reports_what_it_could_not_remove(
        dclient: docker.DockerClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """bench/run.py's sweep (Bench.remove_bounded): one removal the engine never answers
    ends in a report naming that container after the sweep's time bound, the others are
    removed, and nothing waits on the hung call."""
    from bench.common import Bench

    made = [dclient.api.create_container(WORKER_IMAGE, labels={TEST_LABEL: RUN_ID})["Id"] for _ in range(3)]
    stuck = made[0]
    proxy = CountingProxy(tmp_path / "engine.sock",
                          hold=lambda method, target: method == "DELETE" and f"/containers/{stuck}" in target)
    proxy.start()
    b: Bench | None = None
    try:
        monkeypatch.setenv("DOCKER_HOST", proxy.url)
        b = Bench(quick=True)
        t0 = time.monotonic()
        left = b.remove_bounded(made, workers=2, timeout=5.0)
        took = time.monotonic() - t0
        assert set(left) == {stuck}, left
        assert left[stuck] == "not removed within 5s"
        assert took < 15, f"the sweep took {took:.1f}s past its 5 s bound"
        remaining = {c["Id"] for c in dclient.api.containers(all=True, filters={"label": f"{TEST_LABEL}={RUN_ID}"})}
        assert stuck in remaining and not (set(made[1:]) & remaining)
    finally:
        proxy.release()
        if b is not None:
            b.events.close()
            b.client.close()
        proxy.close()
        # the held removal goes on once released, so ours may meet it under way (409):
        # wait, bounded, for the container to be gone instead
        for cid in made:
            for _ in range(50):
                try:
                    dclient.api.remove_container(cid, force=True)
                except docker.errors.NotFound:
                    break
                except docker.errors.APIError as exc:
                    if exc.status_code != 409:
                        raise
                    time.sleep(0.2)
                    continue
                break
