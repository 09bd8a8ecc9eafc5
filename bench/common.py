"""Shared machinery of the benchmark suite: the run context, statistics, the figures table,
CLI/daemon subprocesses, the engine event recorder and the cleanup sweep.

Everything a benchmark creates carries the label ``reconcile.bench=<run id>`` and a name
starting with ``b<run id>``; ``Bench.cleanup`` removes all of it (containers, networks,
volumes, child processes) whether the run ends normally, fails, or is interrupted.
Each reconcile store lives in the run's temporary directory (``RECONCILE_DB``).

Benchmarks drive reconcile as users do: ``python -m controller.cli ...`` in subprocesses
(``reconcile run`` as the daemon). The in-process parts (engine calls per pass, store
query timings) import the project's own modules, never change them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import docker
import yaml

REPO = Path(__file__).resolve().parent.parent
BENCH_LABEL = "reconcile.bench"
PEER_LABEL = "reconcile.bench.peer"
BASE_IMAGE = "reconcile/busybox:latest"
WEB_IMAGE = "reconcile/demo-web:1"
WORKER_IMAGE = "reconcile/demo-worker:1"
SLEEP_CMD = ["sleep", "1000000"]
# removals: a wedged engine (20.10 after hundreds of concurrent force-removals) must not be
# piled onto, and one removal that never returns must not hang the run
REMOVE_WORKERS = 8
REMOVE_CALL_TIMEOUT = 30.0
LEASE_ACQUIRED = "acquired the controller lease"
NODE_LEASE_HELD = "holds the node lease as"  # the agent of a node (reconcile run --node NAME)
CLEANUP_BUDGET = 300.0  # seconds the final sweep may take in all


class BenchError(Exception):
    """A benchmark could not produce its figure (timeout, unexpected state)."""


# -- statistics -----------------------------------------------------------------

def median(xs: Sequence[float]) -> float:
    return float(statistics.median(xs)) if xs else math.nan


def pct(xs: Sequence[float], q: float) -> float:
    """Percentile with linear interpolation between order statistics (numpy's default)."""
    if not xs:
        return math.nan
    s = sorted(xs)
    pos = (len(s) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0 or math.isnan(a) or math.isnan(b):
        return None
    return a / b


# -- figures --------------------------------------------------------------------

@dataclass
class Figure:
    """One line of the results table. ``ratio`` is always reconcile / peer."""

    bench: str
    metric: str
    value: float
    unit: str
    peer: str = ""
    peer_value: float | None = None
    target: str = ""
    met: bool | None = None
    n: int = 0
    note: str = ""
    p95: float | None = None  # of the same samples as ``value`` (a median), where there are samples
    peer_p95: float | None = None

    @property
    def ratio(self) -> float | None:
        return ratio(self.value, self.peer_value)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": self.ratio}


def fmt(v: float | None, unit: str = "") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if unit in ("s",):
        return f"{v * 1000:.0f} ms" if abs(v) < 1 else f"{v:.2f} s"
    if unit == "ms":
        return f"{v:.1f} ms" if abs(v) < 100 else f"{v:.0f} ms"
    if unit == "MB":
        return f"{v:.1f} MB"
    if unit == "%":
        return f"{v:.3f} %" if abs(v) < 1 else f"{v:.2f} %"
    if unit == "/s":
        return f"{v:,.0f}/s"
    if float(v).is_integer():
        return f"{v:,.0f}{(' ' + unit) if unit else ''}"
    return f"{v:,.2f}{(' ' + unit) if unit else ''}"


def table(figures: list[Figure]) -> str:
    head = ["bench", "metric", "reconcile", "p95", "peer", "peer value", "peer p95", "ratio", "n", "target", "met"]
    rows = [head]
    for f in figures:
        r = f.ratio
        rows.append([
            f.bench, f.metric, fmt(f.value, f.unit), fmt(f.p95, f.unit), f.peer or "-",
            fmt(f.peer_value, f.unit) if f.peer_value is not None else "-", fmt(f.peer_p95, f.unit),
            "-" if r is None else f"{r:.2f}x", str(f.n or "-"), f.target or "-",
            {True: "yes", False: "NO", None: "-"}[f.met],
        ])
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


# -- time ------------------------------------------------------------------------

def docker_time(value: str) -> float:
    """Epoch seconds of an engine timestamp, nanoseconds kept to the microsecond."""
    head, _, frac = value.rstrip("Z").partition(".")
    return dt.datetime.fromisoformat(f"{head}.{(frac + '000000')[:6]}+00:00").timestamp()


# -- subprocess results ------------------------------------------------------------

@dataclass
class Proc:
    args: list[str]
    rc: int
    wall: float  # seconds
    cpu: float  # user + system seconds of the child
    stdout: str
    stderr: str

    def check(self) -> Proc:
        if self.rc != 0:
            raise BenchError(f"{' '.join(self.args[:6])} exited {self.rc}\nstdout: {self.stdout[-2000:]}\n"
                             f"stderr: {self.stderr[-2000:]}")
        return self


# -- the engine's event stream -----------------------------------------------------

class EventRecorder:
    """Records the engine's container events for this run's label in a thread."""

    def __init__(self, api: docker.APIClient, label: str):
        self.api = api
        self.label = label
        self.events: list[dict[str, Any]] = []
        self.cond = threading.Condition()
        self._stream: Any = None
        self._thread = threading.Thread(target=self._run, name="bench-events", daemon=True)
        self._stop = False

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        """Follow the stream; if the engine restarts, resubscribe from the last event seen."""
        since: float | None = None
        while not self._stop:
            try:
                self._stream = self.api.events(decode=True, since=since,
                                               filters={"type": ["container"], "label": [self.label]})
                for ev in self._stream:
                    with self.cond:
                        self.events.append(ev)
                        self.cond.notify_all()
                    since = int(ev["timeNano"]) / 1e9
            except Exception:  # noqa: BLE001 - closed at shutdown, or the engine went away
                pass
            if not self._stop:
                time.sleep(1.0)

    def close(self) -> None:
        self._stop = True
        try:
            if self._stream is not None:
                self._stream.close()
        except Exception:  # noqa: BLE001
            pass

    @staticmethod
    def action(ev: dict[str, Any]) -> str:
        return str(ev.get("Action") or ev.get("status") or "")

    @staticmethod
    def ts(ev: dict[str, Any]) -> float:
        return int(ev["timeNano"]) / 1e9

    def wait(self, pred: Callable[[dict[str, Any]], bool], after: float, timeout: float, what: str) -> dict[str, Any]:
        """The first event (engine time >= ``after``) matching ``pred``."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for ev in self.events:
                    if self.ts(ev) >= after and pred(ev):
                        return ev
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BenchError(f"timed out after {timeout:.0f}s waiting for {what}")
                self.cond.wait(min(left, 0.5))

    def container(self, cid: str, action_prefix: str) -> Callable[[dict[str, Any]], bool]:
        return lambda ev: ev.get("id") == cid and self.action(ev).startswith(action_prefix)


# -- the run -------------------------------------------------------------------------

class Bench:
    def __init__(self, *, quick: bool, run_id: str | None = None, keep_tmp: bool = False, verbose: bool = False):
        self.quick = quick
        self.run_id = run_id or uuid.uuid4().hex[:6]
        self.prefix = f"b{self.run_id}"
        self.label = f"{BENCH_LABEL}={self.run_id}"
        self.labels = {BENCH_LABEL: self.run_id}
        self.tmp = Path(tempfile.mkdtemp(prefix=f"reconcile-bench-{self.run_id}-"))
        self.keep_tmp = keep_tmp
        self.verbose = verbose
        self.client = _connect()
        self.api: docker.APIClient = self.client.api
        self.procs: list[subprocess.Popen[Any]] = []
        self.cleanups: list[Callable[[], None]] = []
        self.events = EventRecorder(self.api, self.label)
        self.events.start()
        self.shared: dict[str, Any] = {}  # fixtures shared between benchmarks (the 200-service stack)

    def log(self, msg: str) -> None:
        print(f"  [{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    def name(self, base: str) -> str:
        return f"{self.prefix}-{base}"

    def dir(self, sub: str) -> Path:
        p = self.tmp / sub
        p.mkdir(parents=True, exist_ok=True)
        return p

    def reps(self, quick: int, full: int) -> int:
        return quick if self.quick else full

    # -- reconcile CLI --------------------------------------------------------------
    def env(self, db: str | Path, docker_host: str | None = None) -> dict[str, str]:
        env = {**os.environ, "RECONCILE_DB": str(db),
               "RECONCILE_LOG_LEVEL": os.environ.get("RECONCILE_BENCH_LOG_LEVEL", "INFO")}
        env.pop("RECONCILE_LOG_JSON", None)
        # Bytecode caches as an installed package has them (pip compiles on install; the
        # peers' own modules are compiled): without them every command would compile the
        # project's sources first. Kept in the run's temp directory, never in the checkout.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(self.tmp / "pycache")
        if docker_host:
            env["DOCKER_HOST"] = docker_host
        return env

    def run(self, args: list[str], *, env: dict[str, str] | None = None, timeout: float = 600,
            cwd: str | Path | None = None) -> Proc:
        """Run a command to completion; wall time and the child's own CPU time (wait4)."""
        out_f = tempfile.TemporaryFile(dir=self.tmp)
        err_f = tempfile.TemporaryFile(dir=self.tmp)
        t0 = time.perf_counter()
        p = subprocess.Popen(args, stdout=out_f, stderr=err_f, env=env, cwd=cwd or REPO, start_new_session=True)
        timer = threading.Timer(timeout, lambda: _kill_group(p))
        timer.start()
        try:
            _, status, usage = os.wait4(p.pid, 0)
        except BaseException:
            _kill_group(p)
            p.wait()
            raise
        finally:
            timer.cancel()
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        out_f.seek(0)
        err_f.seek(0)
        res = Proc(list(args), p.returncode, wall, usage.ru_utime + usage.ru_stime,
                   out_f.read().decode("utf-8", "replace"), err_f.read().decode("utf-8", "replace"))
        out_f.close()
        err_f.close()
        if res.rc < 0 or (wall >= timeout - 0.5 and res.rc != 0):
            raise BenchError(f"{' '.join(args[:6])} killed after {timeout:.0f}s")
        return res

    def cli(self, db: str | Path, *args: str, timeout: float = 600, docker_host: str | None = None) -> Proc:
        return self.run([sys.executable, "-m", "controller.cli", *args], env=self.env(db, docker_host), timeout=timeout)

    def compose(self, *args: str, cwd: str | Path, docker_host: str | None = None, timeout: float = 1200) -> Proc:
        """``docker-compose ARGS``. COMPOSE_PARALLEL_LIMIT is raised above its default of 64:
        compose 1.x deadlocks in ``up`` with more services than that limit (its per-service
        parallel_execute waits for slots its own callers hold; docker/compose#8161, #5864).
        COMPOSE_HTTP_TIMEOUT is raised from 60 s so a busy engine slows compose down
        instead of failing it."""
        env = {**os.environ, "COMPOSE_PARALLEL_LIMIT": "1024", "COMPOSE_HTTP_TIMEOUT": "300"}
        if docker_host:
            env["DOCKER_HOST"] = docker_host
        return self.run([compose_bin() or "docker-compose", *args], env=env, cwd=cwd, timeout=timeout)

    def daemon(self, db: str | Path, *args: str, docker_host: str | None = None, timeout: float = 60,
               ready: str = LEASE_ACQUIRED) -> tuple[subprocess.Popen[Any], Path]:
        """``reconcile run ARGS`` in the background; returns once it holds the lease (its log
        shows ``ready``: a node's agent, ``run --node``, logs ``NODE_LEASE_HELD``)."""
        log = self.tmp / f"daemon-{len(self.procs)}.log"
        fh = open(log, "w")  # noqa: SIM115 - owned by the child
        p = subprocess.Popen([sys.executable, "-m", "controller.cli", "run", *args], env=self.env(db, docker_host),
                             stdout=fh, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True)
        fh.close()
        self.procs.append(p)
        deadline = time.monotonic() + timeout
        while ready not in log.read_text():
            if p.poll() is not None:
                raise BenchError(f"reconcile run exited {p.returncode}:\n{log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise BenchError(f"reconcile run did not acquire the lease in {timeout:.0f}s:\n{log.read_text()[-3000:]}")
            time.sleep(0.1)
        return p, log

    def spawn(self, args: list[str], log_name: str, env: dict[str, str] | None = None) -> subprocess.Popen[Any]:
        fh = open(self.tmp / log_name, "w")  # noqa: SIM115
        p = subprocess.Popen(args, env=env, stdout=fh, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True)
        fh.close()
        self.procs.append(p)
        return p

    def stop(self, p: subprocess.Popen[Any], timeout: float = 20) -> None:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                _kill_group(p)
                p.wait(5)

    # -- files ----------------------------------------------------------------------
    def write_yaml(self, path: Path, docs: list[dict[str, Any]] | dict[str, Any]) -> Path:
        if isinstance(docs, list):
            path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
        else:
            path.write_text(yaml.safe_dump(docs, sort_keys=False))
        return path

    def service(self, name: str, spec: dict[str, Any], peer: str = "reconcile") -> dict[str, Any]:
        body = {**spec, "labels": {**self.labels, PEER_LABEL: peer, **spec.get("labels", {})}}
        return {"apiVersion": "reconcile/v1alpha1", "kind": "Service", "metadata": {"name": name}, "spec": body}

    # -- engine helpers ---------------------------------------------------------------
    def containers(self, peer: str | None = None, all: bool = True) -> list[dict[str, Any]]:
        label = [self.label] + ([f"{PEER_LABEL}={peer}"] if peer else [])
        return self.api.containers(all=all, filters={"label": label})

    def remove_containers(self, peer: str | None = None, workers: int = REMOVE_WORKERS,
                          timeout: float = 300.0) -> int:
        """Force-remove this run's containers, at most ``workers`` at once, bounded by
        ``timeout`` in all. Raises BenchError naming what could not be removed."""
        ids = [c["Id"] for c in self.containers(peer)]
        left = self.remove_bounded(ids, workers=workers, timeout=timeout)
        if left:
            raise BenchError(f"{len(left)} of {len(ids)} containers not removed within {timeout:.0f}s: "
                             + "; ".join(f"{cid[:12]} ({why})" for cid, why in sorted(left.items())[:10]))
        return len(ids)

    def remove_bounded(self, ids: Sequence[str], *, workers: int = REMOVE_WORKERS,
                       timeout: float = 300.0) -> dict[str, str]:
        """Remove containers with bounded concurrency and a bounded total time. Each call
        has its own timeout (REMOVE_CALL_TIMEOUT); the workers are daemon threads, so a
        removal the engine never answers cannot keep the run (or the interpreter) from
        ending. Returns {id: why} of the containers that were not removed."""
        if not ids:
            return {}
        todo = list(ids)
        lock = threading.Lock()
        left: dict[str, str] = {cid: "not attempted" for cid in ids}
        api = docker.APIClient(**{**docker.utils.kwargs_from_env(), "timeout": REMOVE_CALL_TIMEOUT,
                                  "version": self.api.api_version})

        def worker() -> None:
            while True:
                with lock:
                    if not todo:
                        return
                    cid = todo.pop()
                try:
                    api.remove_container(cid, force=True)
                    why = ""
                except docker.errors.NotFound:
                    why = ""
                except docker.errors.APIError as exc:
                    why = "" if "already in progress" in str(exc) else f"engine refused: {exc.explanation or exc}"
                except Exception as exc:  # noqa: BLE001 - timed out, engine gone: report it
                    why = f"{type(exc).__name__}: {exc}"[:200]
                with lock:
                    if why:
                        left[cid] = why
                    else:
                        left.pop(cid, None)

        threads = [threading.Thread(target=worker, name=f"bench-remove-{i}", daemon=True)
                   for i in range(max(1, min(workers, len(ids))))]
        for t in threads:
            t.start()
        deadline = time.monotonic() + timeout
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        with lock:
            todo.clear()  # what was not started by now is not started at all
            out = dict(left)
        # never started, or started and still waiting for the engine
        return {cid: (f"not removed within {timeout:.0f}s" if why == "not attempted" else why)
                for cid, why in out.items()}

    def wait_until(self, pred: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            v = pred()
            if v:
                return v
            if time.monotonic() > deadline:
                raise BenchError(f"timed out after {timeout:.0f}s waiting for {what}")
            time.sleep(interval)

    # -- cleanup ------------------------------------------------------------------------
    @contextlib.contextmanager
    def scope(self) -> Iterator[None]:
        """Processes started and cleanups registered inside end with the scope (a benchmark),
        so one benchmark's daemon does not run (and use CPU) during the next one."""
        n_procs, n_cleanups = len(self.procs), len(self.cleanups)
        try:
            yield
        finally:
            for fn in reversed(self.cleanups[n_cleanups:]):
                try:
                    fn()
                except Exception:  # noqa: BLE001 - the final sweep retries
                    pass
            del self.cleanups[n_cleanups:]
            for p in self.procs[n_procs:]:
                try:
                    self.stop(p, timeout=15)
                except Exception:  # noqa: BLE001
                    pass

    def reset_after_failure(self) -> None:
        """Before retrying a benchmark: wait for the engine, drop shared fixtures and remove
        every container of this run (the next attempt starts from nothing)."""
        self.shared.clear()
        deadline = time.monotonic() + 180
        while True:  # the engine may go away again while it restarts
            try:
                self.wait_until(self._pings, max(1.0, deadline - time.monotonic()), "the Docker engine to answer",
                                interval=1.0)
                time.sleep(2.0)  # let a restarting engine settle before the sweep
                self.remove_containers(timeout=max(10.0, deadline - time.monotonic()))
                return
            except BenchError:
                raise
            except Exception as exc:  # noqa: BLE001 - engine flapping: wait and sweep again
                if time.monotonic() > deadline:
                    raise BenchError(f"the engine did not come back for the retry: {exc}") from exc
                time.sleep(2.0)

    def _pings(self) -> bool:
        try:
            return bool(self.api.ping())
        except Exception:  # noqa: BLE001
            return False

    def cleanup(self) -> list[str]:
        """Remove everything this run created. Returns what could not be removed."""
        problems: list[str] = []
        for fn in reversed(self.cleanups):
            try:
                fn()
            except Exception as exc:  # noqa: BLE001 - keep sweeping
                problems.append(f"cleanup step failed: {exc}")
        for p in self.procs:
            try:
                self.stop(p, timeout=15)
            except Exception as exc:  # noqa: BLE001
                problems.append(f"process {p.pid}: {exc}")
        self.events.close()
        # the engine may be restarting (other users of this host): wait for it, then sweep;
        # bounded in all (CLEANUP_BUDGET), and every call on its own, so a wedged engine
        # ends in a report of what is left, never in a hang
        deadline = time.monotonic() + CLEANUP_BUDGET
        last: Exception | None = None
        left: dict[str, str] = {}
        while time.monotonic() < deadline:
            try:
                self.api.ping()
                left = self.remove_bounded([c["Id"] for c in self.containers()],
                                           timeout=max(5.0, deadline - time.monotonic()))
                for n in self.api.networks(filters={"label": [self.label]}):
                    self.api.remove_network(n["Id"])
                for n in self.api.networks():
                    if n["Name"].startswith(self.prefix):
                        self.api.remove_network(n["Id"])
                for v in (self.api.volumes(filters={"label": [self.label]}) or {}).get("Volumes") or []:
                    self.api.remove_volume(v["Name"], force=True)
                if not left and not self.containers():
                    last = None
                    break
                last = BenchError(f"{len(left) or len(self.containers())} containers still carry {self.label}")
            except Exception as exc:  # noqa: BLE001 - keep trying until the deadline
                last = exc
            time.sleep(2)
        if last is not None:
            for cid, why in sorted(left.items()):
                problems.append(f"container {cid[:12]} not removed: {why}")
            problems.append(f"engine sweep incomplete after {CLEANUP_BUDGET:.0f}s ({last}); remove what carries "
                            f"{self.label} by hand: docker ps -aq --filter label={self.label} | xargs docker rm -f")
        if not self.keep_tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)
        try:
            self.client.close()
        except Exception:  # noqa: BLE001
            pass
        return problems


class Offline:
    """What a benchmark of pure functions gets instead of ``Bench`` (``run.ENGINELESS``): the
    mode, a log and the run's bookkeeping, and no engine, temp directory or processes."""

    def __init__(self, *, quick: bool) -> None:
        self.quick = quick
        self.run_id = uuid.uuid4().hex[:6]
        self.label = f"{BENCH_LABEL}={self.run_id}"
        self.tmp = "(none)"
        self.shared: dict[str, Any] = {}

    def log(self, msg: str) -> None:
        print(f"  [{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    def reps(self, quick: int, full: int) -> int:
        return quick if self.quick else full

    @contextlib.contextmanager
    def scope(self) -> Iterator[None]:
        yield

    def reset_after_failure(self) -> None:
        pass

    def cleanup(self) -> list[str]:
        return []


def _connect(wait: float = 120.0) -> docker.DockerClient:
    """The engine may be restarting (scripts/ensure-docker.sh, fault tests): wait for it."""
    deadline = time.monotonic() + wait
    while True:
        try:
            client = docker.from_env(timeout=120)
            client.ping()
            return client
        except docker.errors.DockerException as exc:
            if time.monotonic() > deadline:
                raise BenchError(f"no Docker engine answers ({exc}); run scripts/ensure-docker.sh") from exc
            time.sleep(1)


def _kill_group(p: subprocess.Popen[Any]) -> None:
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


# -- the machine ------------------------------------------------------------------------

def machine(client: docker.DockerClient | None) -> dict[str, Any]:
    """The host, the engine (``client``; None when a run needs no engine) and the checkout."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = 0.0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gb = int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    info: dict[str, Any] = client.info() if client is not None else {}
    ver: dict[str, Any] = client.version() if client is not None else {"Version": "not used"}
    compose = shutil.which("docker-compose")
    compose_ver = ""
    if compose:
        try:
            compose_ver = subprocess.run([compose, "version", "--short"], capture_output=True, text=True,
                                         timeout=30).stdout.strip()
        except Exception:  # noqa: BLE001
            compose_ver = "?"
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO,
                                timeout=10).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--", "controller", "crd_like", "store"],
                                    capture_output=True, text=True, cwd=REPO, timeout=10).stdout.strip())
    except Exception:  # noqa: BLE001
        commit, dirty = "?", False
    load = os.getloadavg()
    return {
        "cpu": model, "cores": os.cpu_count(), "memory_gb": round(mem_gb, 1),
        "kernel": platform.release(), "os": _os_name(),
        "engine": ver.get("Version"), "engine_api": ver.get("ApiVersion"),
        "storage_driver": info.get("Driver"), "cgroup": f"{info.get('CgroupDriver')}/v{info.get('CgroupVersion')}",
        "containers_on_engine": info.get("Containers"), "running_on_engine": info.get("ContainersRunning"),
        "python": platform.python_version(), "docker_compose": compose_ver or "not installed",
        "reconcile_commit": commit + ("+dirty" if dirty else ""), "loadavg": [round(x, 2) for x in load],
    }


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return platform.platform()


def print_machine(m: dict[str, Any]) -> str:
    lines = [
        f"machine: {m['cores']} cores ({m['cpu']}), {m['memory_gb']} GB RAM, {m['os']}, kernel {m['kernel']}",
        f"engine:  Docker {m['engine']} (API {m['engine_api']}), storage {m['storage_driver']}, cgroup {m['cgroup']}; "
        f"{m['running_on_engine']} running / {m['containers_on_engine']} containers on the engine at start"
        if m["engine"] != "not used" else "engine:  not used (only pure functions are timed)",
        f"python:  {m['python']}; docker-compose {m['docker_compose']}; reconcile {m['reconcile_commit']}; "
        f"load average {m['loadavg']}",
    ]
    return "\n".join(lines)


def compose_bin() -> str | None:
    return shutil.which("docker-compose")


# -- prerequisites -----------------------------------------------------------------------

NEEDED_IMAGES = (BASE_IMAGE, WEB_IMAGE)
COMPOSE_PACKAGE = "docker-compose"  # Debian's package: compose 1.29 (Python)


def _tail(text: str, n: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-n:])


def ensure_compose(log: Callable[[str], None]) -> str:
    """The peer of the cold and steady benchmarks is Debian's ``docker-compose``: install
    it with apt-get when it is missing (``--no-install-recommends``, so the engine package
    it recommends is not pulled in next to the running engine). Raises BenchError, saying
    what to do, when it cannot be installed."""
    found = compose_bin()
    if found:
        return found
    if os.geteuid() != 0:
        raise BenchError("docker-compose is not installed and this is not root: install Debian's package "
                         f"(`sudo apt-get install -y --no-install-recommends {COMPOSE_PACKAGE}`) and run again")
    if not shutil.which("apt-get"):
        raise BenchError(f"docker-compose is not installed and there is no apt-get to install it with; "
                         f"install {COMPOSE_PACKAGE} (compose 1.x) and run again")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", COMPOSE_PACKAGE]
    log(f"docker-compose is missing: {' '.join(install)}")
    out = ""
    for attempt, step in enumerate(([install], [["apt-get", "update"], install])):
        if attempt:
            log("apt-get install failed; updating the package lists and trying once more")
        for cmd in step:
            try:
                r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
            except subprocess.TimeoutExpired:
                raise BenchError(f"`{' '.join(cmd)}` did not finish in 15 minutes") from None
            out = r.stdout + r.stderr
            if r.returncode != 0:
                break
        found = compose_bin()
        if found:
            break
    if not found:
        raise BenchError(f"could not install docker-compose with apt-get:\n{_tail(out)}")
    r = subprocess.run([found, "version", "--short"], capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise BenchError(f"docker-compose was installed but does not run:\n{_tail(r.stdout + r.stderr)}")
    log(f"installed docker-compose {r.stdout.strip()}")
    return found


def ensure_images(api: docker.APIClient, log: Callable[[str], None]) -> None:
    """The offline test images: built by scripts/build-images.sh (never pulled) when missing."""
    def missing() -> list[str]:
        out = []
        for ref in NEEDED_IMAGES:
            try:
                api.inspect_image(ref)
            except docker.errors.ImageNotFound:
                out.append(ref)
        return out

    gone = missing()
    if not gone:
        return
    log(f"images missing ({', '.join(gone)}): bash scripts/build-images.sh")
    try:
        r = subprocess.run(["bash", str(REPO / "scripts" / "build-images.sh")], capture_output=True, text=True,
                           cwd=REPO, timeout=900)
    except subprocess.TimeoutExpired:
        raise BenchError("scripts/build-images.sh did not finish in 15 minutes") from None
    gone = missing()
    if r.returncode != 0 or gone:
        raise BenchError(f"scripts/build-images.sh exited {r.returncode}; still missing {gone}:\n"
                         f"{_tail(r.stdout + r.stderr)}")


def dump_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, default=str))


def chunks(xs: list[Any], n: int) -> Iterable[list[Any]]:
    for i in range(0, len(xs), n):
        yield xs[i:i + n]

