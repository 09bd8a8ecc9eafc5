"""End-to-end fixtures: a real Docker engine, never a mock.

Each test gets its own store (so its own instance id, which every container the
controller creates carries) and service names prefixed with the run id. Teardown
removes every container, volume and network of that instance. When no engine
answers, the tests fail (they never skip): CI must not go green without Docker.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
import yaml
from docker.models.networks import Network

RUN_ID = os.environ.get("RECONCILE_TEST_RUN") or uuid.uuid4().hex[:6]
TEST_LABEL = "reconcile.test-run"
WEB_IMAGE = "reconcile/demo-web:1"
WEB_IMAGE_2 = "reconcile/demo-web:2"
WORKER_IMAGE = "reconcile/demo-worker:1"
JOB_IMAGE = "reconcile/demo-job:1"
BASE_IMAGE = "reconcile/busybox:latest"
# How long a started `reconcile run` may take to come up and take the lease (python start-up,
# store migration check, first engine calls). 30 s was not enough on a 2-core machine at load
# averages of 60 and more; RECONCILE_TEST_DAEMON_START overrides it.
DAEMON_START_TIMEOUT = float(os.environ.get("RECONCILE_TEST_DAEMON_START") or 90.0)


def engine_is_podman() -> bool:
    """Is DOCKER_HOST Podman's Docker-compatible API? (asked once per session)"""
    global _PODMAN
    if _PODMAN is None:
        try:
            client = docker.from_env(timeout=30)
            comps = client.version().get("Components") or []
            _PODMAN = any("podman" in str(c.get("Name", "")).lower() for c in comps)
            client.close()
        except Exception:  # noqa: BLE001 - no engine: the dclient fixture fails the tests
            _PODMAN = False
    return _PODMAN


_PODMAN: bool | None = None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``@pytest.mark.podman_unsupported("reason")``: skipped on Podman only, with its reason."""
    marked = [i for i in items if i.get_closest_marker("podman_unsupported")]
    if not marked or not engine_is_podman():
        return
    for item in marked:
        mark = item.get_closest_marker("podman_unsupported")
        assert mark is not None
        reason = mark.args[0] if mark.args else mark.kwargs.get("reason", "")
        if not reason:
            raise pytest.UsageError(f"{item.nodeid}: podman_unsupported needs a reason")
        item.add_marker(pytest.mark.skip(reason=f"Podman: {reason}"))


@pytest.fixture(scope="session")
def dclient() -> Iterator[docker.DockerClient]:
    try:
        client = docker.from_env(timeout=60)
        client.ping()
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"no Docker engine answers ({exc}); run scripts/ensure-docker.sh first", pytrace=False)
    missing = [i for i in (WEB_IMAGE, WEB_IMAGE_2, WORKER_IMAGE, JOB_IMAGE, BASE_IMAGE) if not client.images.list(name=i)]
    if missing:
        pytest.fail(f"test images missing: {missing}; run scripts/build-images.sh", pytrace=False)
    yield client
    # session sweep: anything labelled with this run that a test failed to remove
    for c in client.containers.list(all=True, sparse=True, filters={"label": f"{TEST_LABEL}={RUN_ID}"}):
        force_remove(c)
    client.close()


def _in_flight(exc: docker.errors.APIError) -> bool:
    """A refusal that ends by itself: a removal still under way (409), a network whose last
    endpoint is still leaving ("has active endpoints": 403 on Docker 20.10, 409 elsewhere)."""
    return exc.status_code == 409 or (exc.status_code == 403 and "active endpoints" in str(exc.explanation or exc))


def force_remove(obj: Any, attempts: int = 50) -> None:
    """``remove(force=True)`` of a container, network or volume a test made, tolerant of what
    a killed controller left in flight: gone already (404) is done; a removal still under
    way, or a network whose last endpoint is just leaving, is waited for, bounded (about
    10 s), then raised."""
    for i in range(attempts):
        try:
            if isinstance(obj, Network):
                obj.remove()
            else:
                obj.remove(force=True)
            return
        except docker.errors.NotFound:
            return
        except docker.errors.APIError as exc:
            if not _in_flight(exc) or i == attempts - 1:
                raise
            time.sleep(0.2)


ANONYMOUS_VOLUME = re.compile(r"[0-9a-f]{64}")


def remove_anonymous_volume(client: docker.DockerClient, name: str) -> None:
    """Remove an anonymous volume a test's containers used; one still in use (another
    test's container inherited it) or already gone is left to its owner."""
    try:
        client.api.remove_volume(name)
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as exc:
        if exc.status_code != 409:
            raise


def wait_for(pred: Callable[[], Any], timeout: float = 30.0, interval: float = 0.2, what: str = "condition") -> Any:
    """Poll ``pred`` until truthy; bounded in time. Returns its value or fails the test."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def parse_docker_time(value: str) -> float:
    """Epoch seconds of an engine timestamp ('2024-05-01T15:32:11.123456789Z'; ns cut to µs)."""
    head, _, frac = value.rstrip("Z").partition(".")
    return dt.datetime.fromisoformat(f"{head}.{(frac + '000000')[:6]}+00:00").timestamp()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


LEASE_ACQUIRED = "acquired the controller lease"
LEASE_WAITING = "waiting for the controller lease"


class Harness:
    def __init__(self, tmp: Path, client: docker.DockerClient, prefix: str):
        self.tmp = tmp
        self.client = client
        self.db = str(tmp / "store.db")
        self.prefix = prefix
        self.procs: list[subprocess.Popen[str]] = []
        self._instance: str | None = None
        self._reader: Any = None

    def name(self, base: str) -> str:
        return f"{self.prefix}-{base}"

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "RECONCILE_DB": self.db, "RECONCILE_LOG_LEVEL": "INFO"}

    def run(self, *args: str, expect: int | None = 0, timeout: float = 180, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([sys.executable, "-m", "controller.cli", *args], capture_output=True, text=True,
                              env=self.env, timeout=timeout, input=stdin)
        if expect is not None and proc.returncode != expect:
            raise AssertionError(f"reconcile {' '.join(args)} exited {proc.returncode}, expected {expect}\n"
                                 f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
        return proc

    def daemon(self, *args: str) -> subprocess.Popen[str]:
        log = open(self.tmp / f"daemon-{len(self.procs)}.log", "w")  # noqa: SIM115
        proc = subprocess.Popen([sys.executable, "-m", "controller.cli", "run", *args], env=self.env,
                                stdout=log, stderr=subprocess.STDOUT, text=True)
        self.procs.append(proc)
        return proc

    def daemon_log(self, index: int = -1) -> str:
        idx = index if index >= 0 else len(self.procs) + index
        return (self.tmp / f"daemon-{idx}.log").read_text()

    def start_daemon(self, *args: str, timeout: float | None = None) -> subprocess.Popen[str]:
        """``reconcile run ARGS`` on an already-migrated store; returns once it holds the lease."""
        self.instance  # noqa: B018 - create and migrate the store before the daemon opens it
        proc = self.daemon(*args)
        self.wait_leader(len(self.procs) - 1, timeout)
        return proc

    def wait_leader(self, index: int = -1, timeout: float | None = None) -> None:
        """Until daemon ``index`` holds the lease; by default within DAEMON_START_TIMEOUT (a
        bound of the harness on a process start-up, not a property of the product: tests
        that time a takeover pass their own)."""
        idx = index if index >= 0 else len(self.procs) + index
        if timeout is None:
            timeout = DAEMON_START_TIMEOUT

        def acquired() -> bool:
            if self.procs[idx].poll() is not None:
                pytest.fail(f"daemon {idx} exited {self.procs[idx].returncode}:\n{self.daemon_log(idx)}")
            return LEASE_ACQUIRED in self.daemon_log(idx)

        wait_for(acquired, timeout, what=f"daemon {idx} to acquire the lease")

    def stop_daemon(self, proc: subprocess.Popen[str], sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        proc.send_signal(sig)
        return proc.wait(timeout)

    def cname(self, base: str, replica: int = 1) -> str:
        """The container name the controller gives replica ``replica`` of service ``base``."""
        return f"{self.name(base)}-{replica}"

    def inspect(self, container: str) -> dict[str, Any]:
        return self.client.api.inspect_container(container)

    def health(self, container: str) -> str:
        """The health that counts for this container: the engine's (``State.Health``) where
        the engine runs health checks; on Podman (no systemd: it never runs them) the one
        the controller's own probes recorded for it (replica 1: the status row's)."""
        info = self.inspect(container)
        if not engine_is_podman():
            return str((info["State"].get("Health") or {}).get("Status") or "")
        for row in self.rows().values():
            if row["containerId"] and info["Id"].startswith(row["containerId"]):
                # until a pass has recorded this container's own probes (just after it was
                # created, the row names it but no one has checked it yet) its health is unknown;
                # a container the controller never checks never reads healthy here
                return str(row["health"]) if row["healthCheckedBy"] == "controller" else ""
        return ""

    def write(self, docs: list[dict[str, Any]] | str, name: str = "stack.yaml") -> str:
        path = self.tmp / name
        text = docs if isinstance(docs, str) else yaml.safe_dump_all(docs, sort_keys=False)
        path.write_text(text)
        return str(path)

    def service(self, base: str, image: str = WEB_IMAGE, **spec: Any) -> dict[str, Any]:
        labels = {TEST_LABEL: RUN_ID, **spec.pop("labels", {})}
        body: dict[str, Any] = {"image": image, "labels": labels, **spec}
        if image.startswith("reconcile/demo-web") and "init" not in spec:
            body["init"] = True
        return {"apiVersion": "reconcile/v1alpha1", "kind": "Service", "metadata": {"name": self.name(base)}, "spec": body}

    @property
    def instance(self) -> str:
        if self._instance is None:
            from store import Store

            s = Store.open(self.db)
            self._instance = s.instance_id
            s.close()
        return self._instance

    def containers(self, service: str | None = None) -> list[Any]:
        label = [f"io.reconcile.instance={self.instance}"]
        if service:
            label.append(f"io.reconcile.service={service}")
        # listed sparse and inspected one by one: a full list inspects each container itself and
        # fails with NotFound for one removed between the two (seen in CI while an agent converged)
        found = []
        for c in self.client.containers.list(all=True, sparse=True, filters={"label": label}):
            try:
                c.reload()
            except docker.errors.NotFound:
                continue
            found.append(c)
        return found

    def history(self, name: str | None = None, *types: str) -> list[dict[str, Any]]:
        import json

        args = ["history", "--json"] + ([name] if name else [])
        for t in types:
            args += ["--type", t]
        return json.loads(self.run(*args).stdout)

    def status(self) -> dict[str, dict[str, Any]]:
        import json

        return {r["name"]: r for r in json.loads(self.run("status", "--json").stdout)}

    # Fast, read-only views of the same data for polling loops: the CLI costs a second per
    # call (interpreter start), too slow to catch a short-lived state. Same shapes as
    # `history --json` and `status --json`.
    @property
    def reader(self) -> Any:
        if self._reader is None:
            from store import Store

            self.instance  # noqa: B018 - the store exists and is migrated
            self._reader = Store.open(self.db, migrate=False)
        return self._reader

    def events(self, name: str | None = None, *types: str) -> list[dict[str, Any]]:
        return [e.to_json() for e in self.reader.history(name, types=list(types) or None)]

    def rows(self) -> dict[str, dict[str, Any]]:
        from controller.operations import status_rows

        return {r["name"]: r for r in status_rows(self.reader)}

    def cleanup(self) -> None:
        if self._reader is not None:
            self._reader.close()
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(5)
        if "://" not in self.db and not os.path.exists(self.db):  # a URL (PostgreSQL) is always swept
            return
        label = f"io.reconcile.instance={self.instance}"
        # a create a killed controller had in flight can land after a sweep: sweep again
        # until the networks go (bounded: 10 rounds)
        anonymous: set[str] = set()  # the instance's containers' anonymous volumes: removed after them
        for sweep in range(10):
            for c in self.client.containers.list(all=True, sparse=True, filters={"label": label}):
                anonymous |= {m["Name"] for m in c.attrs.get("Mounts") or []
                              if m.get("Type") == "volume" and ANONYMOUS_VOLUME.fullmatch(m.get("Name") or "")}
                force_remove(c)
            for c in self.client.containers.list(all=True, sparse=True,
                                                 filters={"label": f"{TEST_LABEL}={RUN_ID}-{self.prefix}"}):
                force_remove(c)
            try:
                for n in self.client.networks.list(filters={"label": label}):
                    force_remove(n, attempts=5)
                break
            except docker.errors.APIError as exc:
                if not _in_flight(exc) or sweep == 9:
                    raise
        for v in self.client.volumes.list(filters={"label": label}):
            force_remove(v)
        for name in sorted(anonymous):
            remove_anonymous_volume(self.client, name)


@pytest.fixture
def rc(tmp_path: Path, dclient: docker.DockerClient, request: pytest.FixtureRequest) -> Iterator[Harness]:
    prefix = f"t{RUN_ID}{uuid.uuid4().hex[:4]}"
    h = Harness(tmp_path, dclient, prefix)
    try:
        yield h
    finally:
        h.cleanup()


def store_digest(h: Harness) -> str:
    """sha256 of the store file once everything committed is in it. SQLite in WAL mode keeps
    recent commits in ``-wal`` until the last connection closes, so a read-only command could
    move them into the file and change its bytes without changing its contents: close the
    harness's reader and checkpoint first, so equal digests mean nothing was written."""
    import hashlib
    import sqlite3

    if h._reader is not None:
        h._reader.close()
        h._reader = None
    con = sqlite3.connect(h.db)
    try:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        con.close()
    return hashlib.sha256(Path(h.db).read_bytes()).hexdigest()


def ordered(rows: list[dict[str, Any]], *preds: Any) -> list[dict[str, Any]] | None:
    """The first rows matching ``preds`` in that order (a subsequence), or None."""
    found, i = [], 0
    for row in rows:
        if i < len(preds) and preds[i](row):
            found.append(row)
            i += 1
    return found if i == len(preds) else None
