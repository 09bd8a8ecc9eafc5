"""A container the engine refuses to start again because its runtime kept the task from
before an engine restart ("task <id>: already exists", Docker 20.10): the adapter names
it ``StaleTask`` and the executor replaces the container instead of retrying a start
that can never succeed. The engine seam is faked here; tests/e2e/test_graph.py's engine
restart test meets the real thing when the engine leaves such a task behind."""

from __future__ import annotations

from typing import Any

import docker.errors
import pytest

from controller.actions import Restart, Start
from controller.advance import Work, advance
from controller.engine import Engine
from controller.errors import NameConflict, ReconcileError, StaleTask, TransientError
from controller.executor import Executor
from controller.render import ContainerConfig, prepare

OLD = "b55e324b289ff62b814c5fd86e9b3982bff09c7b5fcba85d722691c0b0b2ff5e"
STALE = f"task {OLD}: already exists"


class _Resp:
    def __init__(self, status: int):
        self.status_code = status
        self.reason = "x"


def _engine() -> Engine:
    eng = Engine(base_url="unix:///nonexistent.sock")
    eng._api_version = "1.41"  # a fixed version: building the client asks nothing of the (absent) engine
    return eng


@pytest.mark.parametrize("call, status, explanation, error", [
    ("containers.start", 500, STALE, StaleTask),
    ("containers.restart", 500, STALE, StaleTask),
    ("containers.start", 500, "Container not cleaned up from containerd from previous run: id already in use", StaleTask),
    ("containers.start", 500, "failed to start shim: mkdir /var/run/docker/containerd/daemon/io.containerd.runtime.v2.task"
                              f"/moby/{OLD}: file exists: unknown", StaleTask),
    # the same words from another call, or other 500s, stay what they were
    ("containers.create", 500, STALE, TransientError),
    ("containers.start", 500, "OCI runtime create failed: something else", TransientError),
    ("containers.start", 400, "network shop-net not found", ReconcileError),
    # a removal still under way (an earlier one of ours that timed out) is worth retrying,
    # not a name conflict
    ("containers.remove", 409, f"removal of container {OLD} is already in progress", TransientError),
    ("containers.create", 409, f'Conflict. The container name "/shop-web" is already in use', NameConflict),
])
def test_a_start_refused_for_a_leftover_task_is_a_stale_task(call: str, status: int, explanation: str,
                                                             error: type[Exception]) -> None:
    eng = _engine()

    def fail(api: object) -> None:
        raise docker.errors.APIError("boom", response=_Resp(status), explanation=explanation)  # type: ignore[arg-type]

    with pytest.raises(error) as got:
        eng._call(call, fail, OLD)
    if error is StaleTask:
        assert "cannot start it again" in str(got.value)
    else:
        assert not isinstance(got.value, StaleTask)


class FakeEngine:
    """Records what the executor asks; the old container's start always fails as the
    engine does for a leftover task."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.names = {OLD: "shop-db"}

    def inspect(self, cid: str) -> dict[str, Any]:
        return {"Name": "/" + self.names.get(cid, cid), "State": {"Running": False, "ExitCode": 143,
                                                                   "FinishedAt": "2026-12-01T12:50:28Z"}}

    def start(self, cid: str) -> None:
        self.calls.append(("start", cid))
        if cid == OLD:
            raise StaleTask(f"the engine cannot start it again: {STALE}")

    def restart(self, cid: str, timeout: int) -> None:
        self.calls.append(("restart", cid))
        raise StaleTask(f"the engine cannot start it again: {STALE}")

    def rename(self, cid: str, name: str) -> None:
        self.calls.append(("rename", cid))
        self.names[cid] = name

    def ensure_volume(self, *a: Any) -> bool:
        return False

    def image_volumes(self, ref: str) -> frozenset[str]:
        return frozenset()

    def ensure_network(self, *a: Any) -> bool:
        return False

    def create(self, cfg: ContainerConfig) -> str:
        self.calls.append(("create", cfg.name))
        self.names["new"] = cfg.name
        return "new"

    def connect(self, *a: Any) -> None:
        pass

    def stop(self, cid: str, timeout: int) -> None:
        self.calls.append(("stop", cid))

    def remove(self, cid: str, *, force: bool = True) -> None:
        self.calls.append(("remove", cid))


@pytest.mark.parametrize("action", [
    Start("db", 0, OLD, "engine restarted: exited (143)", restart=True),
    Restart("db", 0, OLD, "unhealthy"),
])
def test_a_stale_task_is_replaced_by_a_new_container_and_audited(action: Start | Restart) -> None:
    eng = FakeEngine()
    svc = prepare("db", "Service", 3, {"image": "reconcile/busybox:latest", "volumes": ["dbdata:/var/lib/db"]})
    ex = Executor(eng, "inst", actor="controller", clock=lambda: 1000.0)  # type: ignore[arg-type]
    # the executor reports outcomes; advance turns them into the status and audit rows
    out = advance(None, Work("db", (action,), svc.generation, svc.spec.restartPolicy), ex.run(svc, [action]), 1000.0)
    assert out.errors == ()
    # the old container is put aside, a new one created and started, the old one removed
    kinds = [c[0] for c in eng.calls]
    assert kinds.count("create") == 1 and ("start", "new") in eng.calls and ("remove", OLD) in eng.calls
    assert kinds.index("create") < eng.calls.index(("start", "new")) < eng.calls.index(("remove", OLD))
    assert out.status is not None and out.status.container_id == "new"
    [ev] = [e for e in out.events if e.type == "Recreated"]
    assert ev.reason.startswith(action.reason) and "cannot start it again" in ev.reason and "already exists" in ev.reason
    assert "runtime state" in ev.message and ev.actor == "controller"
    assert not [e for e in out.events if e.type == "Failed"]
