"""A container the engine can no longer start because its runtime left state behind.

After an engine restart, Docker 20.10 sometimes keeps a container's runtime state (a live
shim, a task, or the task's bundle directory) and then refuses every start of that
container: "task <id>: already exists", "id already in use", or "failed to start shim:
mkdir .../<id>: file exists". Retrying never helps (Docker's own restart policy fails the
same way); the controller replaces the container, audited with the engine's words.

This test makes the fault for real on the engine under test: it stops a managed container
and puts back the runtime's bundle directory for its id, exactly what the engine trips on.
(The engine-restart test in test_graph.py accepts the same replacement when a real
restart leaves such state behind, as it did in CI.)
"""

from __future__ import annotations

import glob
import os
import shutil

import docker.errors
import pytest

from tests.e2e.conftest import BASE_IMAGE, Harness, engine_is_podman, wait_for

pytestmark = pytest.mark.e2e

SLEEPER = ["sh", "-c", "exec sleep 86400"]


def _bundle_dir(cid: str) -> str | None:
    """The runtime's bundle directory of a running container (containerd's runc v2 shim
    keeps one per task, under the engine's exec root, named by the container id)."""
    for root in ("/run", "/var/run"):
        for path in glob.glob(f"{root}/**/io.containerd.runtime.v2.task/*/{cid}", recursive=True):
            if os.path.isdir(path):
                return path
    return None


def test_a_container_the_engine_cannot_start_again_is_replaced_and_audited(rc: Harness) -> None:
    if engine_is_podman():
        pytest.skip("Podman runs containers with conmon, not containerd shims: this fault does not exist there")
    svc = rc.service("stale", BASE_IMAGE, command=SLEEPER, init=True, stopGracePeriod="1s",
                     volumes=[f"{rc.name('stale-data')}:/data"])
    f = rc.write([svc])
    rc.run("apply", "-f", f, "--wait", "--timeout", "60s", timeout=120)
    [c] = rc.containers(rc.name("stale"))
    old = c.id
    bundle = _bundle_dir(old)
    assert bundle is not None, f"no runtime bundle directory for running container {old[:12]} under /run"

    rc.client.api.stop(old, timeout=1)
    wait_for(lambda: not os.path.exists(bundle), timeout=20, what="the runtime to remove the task's bundle directory")
    os.makedirs(bundle)  # the state a restarted engine left behind
    try:
        # the fault is real: the engine itself cannot start the container now, and not once
        for _ in range(2):
            with pytest.raises(docker.errors.APIError) as refused:
                rc.client.api.start(old)
            assert "file exists" in str(refused.value), refused.value

        # the next pass (an inline apply: no daemon needed) replaces it
        rc.run("apply", "-f", f, "--wait", "--timeout", "60s", timeout=120)
        [new] = rc.containers(rc.name("stale"))
        assert new.id != old
        assert rc.inspect(new.id)["State"]["Running"] is True
        assert new.name == c.name  # same name, same volume
        mounts = {m.get("Name") for m in rc.inspect(new.id)["Mounts"]}
        assert rc.name("stale-data") in mounts
        with pytest.raises(docker.errors.NotFound):
            rc.client.api.inspect_container(old)

        rows = rc.events(rc.name("stale"), "Recreated")
        assert rows, rc.events(rc.name("stale"))
        row = rows[-1]
        assert "cannot start it again" in row["reason"] and "file exists" in row["reason"], row
        assert "runtime state" in row["message"] and old[:12] in row["message"] and new.id[:12] in row["message"], row
        assert row["actor"]
    finally:
        shutil.rmtree(bundle, ignore_errors=True)
