"""Helpers of the fault-injection suite (tests/e2e/test_faults.py): the run's seed, trial
counts, measured figures, engine stop/start, and the invariants checked after each fault.

Everything here talks to the real engine (never a mock) and is bounded in time.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest
import requests.exceptions

from tests.e2e.conftest import engine_is_podman

REPO = Path(__file__).resolve().parents[2]

# One seed per test run, printed; RECONCILE_FAULT_SEED replays a run. Every test derives
# its own generator from it and its name, so one test replays without the others.
SEED = int(os.environ.get("RECONCILE_FAULT_SEED") or random.SystemRandom().randrange(1, 2**31))
FIGURES_DIR = Path(os.environ.get("RECONCILE_FAULT_FIGURES") or "/tmp/reconcile-fault-figures")

ENGINE_ERRORS = (requests.exceptions.ConnectionError, requests.exceptions.Timeout, docker.errors.DockerException,
                 ConnectionError)


def rng_for(test: str) -> random.Random:
    return random.Random(f"{SEED}:{test}")


def trials(mode: str, short: int, long: int) -> int:
    """Trial count: RECONCILE_FAULT_TRIALS overrides both versions."""
    env = os.environ.get("RECONCILE_FAULT_TRIALS")
    if env:
        return max(1, int(env))
    return short if mode == "short" else long


class Figures:
    """What a test measured, printed and kept as JSON (docs/RELIABILITY.md quotes them)."""

    def __init__(self, test: str):
        self.test = test
        self.data: dict[str, Any] = {"test": test, "seed": SEED, "started": time.strftime("%Y-%m-%dT%H:%M:%S")}

    def __setitem__(self, key: str, value: Any) -> None:
        self.data[key] = value

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def add(self, key: str, value: Any) -> None:
        self.data.setdefault(key, []).append(value)

    def save(self) -> None:
        self.data["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        FIGURES_DIR.mkdir(parents=True, exist_ok=True)
        safe = re.sub(r"[^A-Za-z0-9_.\[\]-]+", "_", self.test)
        (FIGURES_DIR / f"{safe}.json").write_text(json.dumps(self.data, indent=2, default=str))
        print(f"\nfigures {self.test}: {json.dumps(self.data, default=str)}")


# -- the engine -------------------------------------------------------------------------
def engine_answers(timeout: float = 10) -> bool:
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=timeout).returncode == 0
    except subprocess.TimeoutExpired:
        return False


# The engines scripts/ensure-docker.sh manages: the socket each serves and its dockerd's
# pid file. The engine-restart tests restart the engine DOCKER_HOST points to, with that
# script, and never start another one. podman: the "engine" restarted is the API service
# scripts/ensure-podman.sh starts (its pid file); containers outlive it (conmon runs them).
ENGINE_SOCKETS = {
    "docker20": ("unix:///var/run/docker.sock", "unix:///run/docker.sock"),
    "docker26": ("unix:///run/reconcile-docker26/docker.sock",),
    "podman": ("unix:///run/podman/podman.sock",),
}
ENGINE_PIDFILES = {"docker20": "/var/run/docker.pid", "docker26": "/run/reconcile-docker26/docker.pid",
                   "podman": "/var/lib/reconcile-podman/service.pid"}
OTHER_ENGINES_MARK = "/run/reconcile-"  # in the command line of every engine but docker20's


def selected_engine() -> str | None:
    """The engine DOCKER_HOST points to, if ensure-docker.sh manages it (else None)."""
    host = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    for engine, sockets in ENGINE_SOCKETS.items():
        if host in sockets:
            return engine
    return None


def ensure_engine(timeout: float = 300) -> bool:
    """Leave the selected engine running, whatever happened: scripts/ensure-docker.sh for
    that engine, retried while it does not answer (another suite may be restarting it
    too), bounded by ``timeout``."""
    engine = selected_engine()
    deadline = time.monotonic() + timeout
    while True:
        if engine_answers():
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0 or engine is None:
            return False
        try:
            subprocess.run(["bash", str(REPO / "scripts" / "ensure-docker.sh"), "--engine", engine],
                           timeout=max(30.0, remaining), check=False, capture_output=True)
        except subprocess.TimeoutExpired:
            pass
        time.sleep(1)


def engine_is_local() -> bool:
    """Can ensure-docker.sh restart the engine DOCKER_HOST points to?"""
    return selected_engine() is not None


def pid_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def dockerd_pid() -> int:
    """The dockerd of the selected engine. docker26's is the one its pid file names. For
    docker20, `pidof` also lists a dockerd that runs inside a container (docker-in-docker
    tests of other suites) and the docker26 one: keep ours (same mount namespace, not
    another engine of ours), prefer the pid file."""
    engine = selected_engine()
    assert engine is not None, f"DOCKER_HOST={os.environ.get('DOCKER_HOST')} is not an engine ensure-docker.sh manages"
    try:
        from_file: int | None = int(Path(ENGINE_PIDFILES[engine]).read_text().strip())
    except (OSError, ValueError):
        from_file = None
    if engine != "docker20":
        assert from_file is not None and pid_alive(from_file), f"no live dockerd in {ENGINE_PIDFILES[engine]}"
        return from_file
    pids = [int(p) for p in subprocess.run(["pidof", "dockerd"], capture_output=True, text=True).stdout.split()]
    ours = os.readlink("/proc/self/ns/mnt")

    def mnt(pid: int) -> str:
        try:
            return os.readlink(f"/proc/{pid}/ns/mnt")
        except OSError:
            return ""

    local = [p for p in pids if mnt(p) == ours and OTHER_ENGINES_MARK not in _cmdline(p)]
    if from_file in local:
        return from_file
    assert len(local) == 1, f"cannot tell which dockerd serves this host: pidof {pids}, ours {local}"
    return local[0]


def dockerd_pid_or_none() -> int | None:
    try:
        return dockerd_pid()
    except (AssertionError, ValueError, OSError):
        return None


def foreign_containers(client: docker.DockerClient, instance: str) -> list[str]:
    """Running containers that are not this store's (stopping dockerd would stop them)."""
    return [(c.get("Names") or ["/?"])[0].lstrip("/") for c in retry_engine(lambda: client.api.containers())
            if (c.get("Labels") or {}).get("io.reconcile.instance") != instance]


def claim_engine_or_skip(client: docker.DockerClient, instance: str, timeout: float = 45) -> None:
    """Before stopping dockerd: wait (bounded) until no other workload runs on it, and skip
    the test if some still do — unless RECONCILE_ENGINE_IS_OURS=1 (set by .ci/run: the CI
    machine's engine exists for this suite, so the test must run, never skip)."""
    if os.environ.get("RECONCILE_ENGINE_IS_OURS") == "1":
        return
    deadline = time.monotonic() + timeout
    while (foreign := foreign_containers(client, instance)) and time.monotonic() < deadline:
        time.sleep(1)
    if foreign:
        pytest.skip(f"other workloads run on this engine and stopping dockerd would stop them: {foreign[:10]}")


def stop_engine(timeout: float = 90) -> int:
    """SIGTERM the host's dockerd and wait (bounded) until it has exited. Returns its pid.
    The caller must call ``ensure_engine()`` in a ``finally``."""
    ensure_engine()
    pid = dockerd_pid()
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            break
        time.sleep(0.25)
    return pid


def fresh_client() -> docker.DockerClient:
    return docker.from_env(timeout=60)


def retry_engine(fn: Callable[[], Any], timeout: float = 120) -> Any:
    """Run an engine call; while the engine is away (another suite may restart it), make sure
    one is started again and retry, bounded."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return fn()
        except ENGINE_ERRORS as exc:
            if isinstance(exc, docker.errors.APIError) and exc.status_code and exc.status_code < 500:
                raise
            if time.monotonic() > deadline:
                raise
            time.sleep(1.0)
            ensure_engine()


# -- the world --------------------------------------------------------------------------
@dataclass(frozen=True)
class Box:
    """One container as the engine lists it (low-level API: one call, no inspect)."""

    id: str
    name: str
    service: str
    replica: str
    state: str
    status: str
    spec_hash: str
    generation: str
    labels: dict[str, str] = field(compare=False, repr=False)

    @property
    def health(self) -> str:
        for h in ("unhealthy", "healthy", "health: starting"):
            if f"({h})" in self.status:
                return h.replace("health: ", "")
        return ""


def boxes(client: docker.DockerClient, instance: str) -> list[Box]:
    entries = retry_engine(lambda: client.api.containers(
        all=True, filters={"label": [f"io.reconcile.instance={instance}"]}))
    out = []
    for e in entries:
        lab = e.get("Labels") or {}
        out.append(Box(e["Id"], (e.get("Names") or ["/"])[0].lstrip("/"), lab.get("io.reconcile.service", ""),
                       lab.get("io.reconcile.replica", ""), e.get("State", ""), e.get("Status", ""),
                       lab.get("io.reconcile.spec-hash", ""), lab.get("io.reconcile.generation", ""), lab))
    return out


@dataclass(frozen=True)
class Want:
    """A desired service as the store holds it, with the container hash it must carry."""

    name: str
    kind: str
    generation: int
    replicas: int
    container_hash: str
    healthcheck: bool
    spec: dict[str, Any]


def wanted(store: Any) -> dict[str, Want]:
    from controller.render import prepare

    out = {}
    for name, rec in store.desired().items():
        svc = prepare(name, rec.kind, rec.generation, rec.spec, rec.suspended)
        out[name] = Want(name, rec.kind, rec.generation, svc.replicas, svc.container_hash,
                         svc.spec.healthcheck is not None, rec.spec)
    return out


def convergence_gaps(want: dict[str, Want], seen: list[Box], rows: dict[str, dict[str, Any]] | None = None) -> list[str]:
    """Why the host is not converged to ``want`` yet ([] when it is): one container per
    replica, under its desired name, of the current spec, running (a Job exited 0),
    healthy where checked; nothing else of this store; status rows agree. Health is the
    engine's where the engine runs the checks; on Podman (it runs none without systemd) it
    is the controller's, from the status row (the worst of the service's replicas), and
    the row must say the controller ran it."""
    podman = engine_is_podman()
    if podman:
        assert rows is not None, "on Podman the health that counts is in the status rows: pass them"
    gaps: list[str] = []
    by: dict[tuple[str, str], list[Box]] = defaultdict(list)
    for b in seen:
        by[(b.service, b.replica)].append(b)
    expected: set[tuple[str, str]] = set()
    for w in want.values():
        for r in range(1, w.replicas + 1):
            key = (w.name, str(r))
            expected.add(key)
            group = by.get(key, [])
            if len(group) != 1:
                gaps.append(f"{w.name}#{r}: {len(group)} containers")
                continue
            b = group[0]
            if b.name != f"{w.name}-{r}":
                gaps.append(f"{w.name}#{r}: named {b.name}")
            if b.spec_hash != w.container_hash:
                gaps.append(f"{w.name}#{r}: spec-hash {b.spec_hash} != {w.container_hash}")
            if w.kind == "Job":
                if not (b.state == "exited" and "Exited (0)" in b.status):
                    gaps.append(f"{w.name}#{r}: job {b.state} {b.status}")
            elif b.state != "running":
                gaps.append(f"{w.name}#{r}: {b.state}")
            elif w.healthcheck and not podman and b.health != "healthy":
                gaps.append(f"{w.name}#{r}: health {b.health or 'none'}")
    for key, group in by.items():
        if key not in expected:
            gaps.extend(f"extra container {b.name} ({b.service}#{b.replica})" for b in group)
    if rows is not None:
        for w in want.values():
            row = rows.get(w.name)
            if row is None:
                gaps.append(f"{w.name}: no status")
                continue
            ok_state = "Completed" if w.kind == "Job" else "Running"
            if row["state"] != ok_state or row["observedGeneration"] != w.generation:
                gaps.append(f"{w.name}: status {row['state']} observed {row['observedGeneration']}/{w.generation}")
            if podman and w.healthcheck and (row["health"], row["healthCheckedBy"]) != ("healthy", "controller"):
                gaps.append(f"{w.name}: health {row['health'] or 'none'} (checked by {row['healthCheckedBy'] or 'none'})")
    return gaps


def wait_converged(rc: Any, client: docker.DockerClient, timeout: float, what: str = "convergence",
                   alive: Callable[[], None] | None = None) -> float:
    """Poll until converged; returns the seconds it took. Fails the test with the gaps."""
    t0 = time.monotonic()
    gaps: list[str] = ["not checked"]
    while time.monotonic() - t0 < timeout:
        if alive is not None:
            alive()
        want = wanted(rc.reader)
        gaps = convergence_gaps(want, boxes(client, rc.instance), rc.rows())
        if not gaps:
            return time.monotonic() - t0
        time.sleep(0.25)
    pytest.fail(f"timed out after {timeout}s waiting for {what}; still: {gaps[:15]}"
                + (f"\ndaemon log tail:\n{rc.daemon_log()[-4000:]}" if rc.procs else ""))


@dataclass
class Invariants:
    duplicates: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    old_leftovers: list[str] = field(default_factory=list)
    missing_created_rows: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {k: len(v) for k, v in self.__dict__.items()}

    def ok(self) -> bool:
        return not any(self.__dict__.values())


def check_invariants(want: dict[str, Want], seen: list[Box], history: list[dict[str, Any]]) -> Invariants:
    """Zero duplicates (per service/replica label), zero orphans (service not desired),
    no ``*-old-*`` leftovers, and a Created/Recreated audit row naming each container's id."""
    inv = Invariants()
    by: dict[tuple[str, str], list[Box]] = defaultdict(list)
    for b in seen:
        by[(b.service, b.replica)].append(b)
    for (svc, rep), group in sorted(by.items()):
        if len(group) > 1:
            inv.duplicates.append(f"{svc}#{rep}: {[(b.name, b.id[:12], b.state) for b in group]}")
    for b in seen:
        if b.service not in want:
            inv.orphans.append(f"{b.name} ({b.id[:12]}, service {b.service!r} is not desired)")
        if "-old-" in b.name:
            inv.old_leftovers.append(f"{b.name} ({b.id[:12]}, {b.state})")
    made = {r["container_id"] for r in history if r["type"] in ("Created", "Recreated") and r.get("container_id")}
    for b in seen:
        if b.id not in made:
            rows = [(r["type"], r["reason"][:80]) for r in history
                    if r.get("container_id") == b.id or b.id[:12] in (r.get("message") or "")]
            inv.missing_created_rows.append(f"{b.name} ({b.id[:12]}): rows naming it: {rows}")
    return inv


def count_rows(store: Any) -> int:
    from sqlalchemy import func, select

    from store.models import EventRow

    with store.reading() as s:
        return int(s.scalar(select(func.count()).select_from(EventRow)) or 0)


def pick(rng: random.Random, items: Iterable[Any], k: int) -> list[Any]:
    items = sorted(items)
    return rng.sample(items, min(k, len(items)))
