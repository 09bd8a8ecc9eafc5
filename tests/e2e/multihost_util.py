"""The multi-host test bed (scripts/multihost.sh) seen from the tests: three Docker engines,
each in its own network namespace, one PostgreSQL on the bridge of the test's own namespace,
and an agent (``reconcile run --node``) per node.

The control verbs (apply, status, describe, history, nodes, cordon, ...) run in the
bridge's namespace, where PostgreSQL is, with DOCKER_HOST pointing at no engine: in
multi-host mode they talk to the store only, never to the shared engine of this machine.
Engines are observed through their own DOCKER_HOST (the docker SDK), never mocked.
Every wait is bounded in count and time.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest
import requests.exceptions
import yaml

from tests.e2e import conftest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "multihost.sh"
NET_NS = "reconcile-mh-net"
NODES = ("n1", "n2", "n3")
NODE_LABELS = {"n1": {"zone": "a"}, "n2": {"zone": "b"}, "n3": {"zone": "c"}}
TTL = int(os.environ.get("RECONCILE_MH_TTL") or 6)  # the node lease TTL the agents get
# python start-up + store + engine on a loaded 2-core machine (as DAEMON_START_TIMEOUT)
AGENT_START_TIMEOUT = float(os.environ.get("RECONCILE_TEST_DAEMON_START") or 90.0)
NO_ENGINE = "unix:///run/reconcile-mh/no-engine.sock"  # the control verbs must not need one
TEST_LABEL = "reconcile.test-run"
SERVICE = "io.reconcile.service"
REPLICA = "io.reconcile.replica"
NODE_LABEL = "reconcile.node"
WORKER_IMAGE = "reconcile/demo-worker:1"
IMAGES = ("reconcile/busybox:latest", "reconcile/demo-web:1", "reconcile/demo-web:2",
          "reconcile/demo-worker:1", "reconcile/demo-job:1")
ENGINE_ERRORS = (requests.exceptions.ConnectionError, requests.exceptions.Timeout, docker.errors.DockerException,
                 ConnectionError, OSError)


def unavailable() -> str | None:
    """Why the test bed cannot exist on this machine at all (the tests skip), else None.
    Anything else that keeps it from coming up fails the tests."""
    if os.geteuid() != 0:
        return "the multi-host test bed needs root (network namespaces, dockerd)"
    missing = [tool for tool in ("ip", "nsenter") if shutil.which(tool) is None]
    if missing:
        return f"the multi-host test bed needs {' and '.join(missing)} (iproute2, util-linux)"
    if not Path("/proc/self/ns/net").exists():
        return "no network namespaces on this kernel"
    return None


def wait_for(pred: Callable[[], Any], timeout: float, what: str, interval: float = 0.3) -> Any:
    """The suite's bounded poll (``tests.e2e.conftest.wait_for``), with the multi-host tests'
    argument order and a slower default interval."""
    return conftest.wait_for(pred, timeout, interval=interval, what=what)


def mentions(event: dict[str, Any], word: str) -> bool:
    """Does an audit row name ``word`` (a node or service name) as a whole word?"""
    text = " ".join(str(event.get(k) or "") for k in ("service", "reason", "message"))
    return re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", text) is not None


@dataclass
class Node:
    name: str
    index: int
    host: str
    netns: str
    client: docker.DockerClient
    agent: subprocess.Popen[str] | None = None
    agent_logs: list[Path] = field(default_factory=list)


class Cluster:
    """The test bed of one test module: ``up`` once, agents, a fresh database, ``down``."""

    def __init__(self, tmp: Path, run_id: str):
        self.tmp = tmp
        self.run_id = run_id
        self.label = f"{run_id}-mh"          # every container the tests make carries it
        self.nodes: dict[str, Node] = {}
        self.base_url = ""                   # the cluster's database URL (as the script prints it)
        self.url = ""                        # this run's database
        self.db_name = f"mh_{re.sub(r'[^a-z0-9]', '', run_id.lower())}_{uuid.uuid4().hex[:6]}"
        self.script_log: list[str] = []

    # -- the harness --------------------------------------------------------------------
    def script(self, *args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess[str]:
        started = time.monotonic()
        proc = subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout,
                              cwd=REPO)
        self.script_log.append(f"multihost.sh {' '.join(args)}: exit {proc.returncode} after "
                               f"{time.monotonic() - started:.1f}s\n{proc.stderr}")
        if check and proc.returncode != 0:
            pytest.fail(f"scripts/multihost.sh {' '.join(args)} exited {proc.returncode}\n"
                        f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}", pytrace=False)
        return proc

    def up(self) -> None:
        out = self.script("up", timeout=420).stdout
        for line in out.splitlines():
            if line.startswith("RECONCILE_DB="):
                self.base_url = line.split("=", 1)[1]
                continue
            m = re.match(r"(n\d) DOCKER_HOST=(\S+) netns=(\S+)", line)
            if m:
                name, host, netns = m.groups()
                self.nodes[name] = Node(name, int(name[1:]), host, netns, docker.DockerClient(base_url=host, timeout=30))
        assert sorted(self.nodes) == list(NODES), f"multihost.sh up printed no DOCKER_HOST for every node:\n{out}"
        assert self.base_url.startswith("postgresql"), f"multihost.sh up printed no store URL:\n{out}"
        # a run killed before its teardown: scripts/clean-test-resources.sh RUN_ID takes it down
        Path("/run/reconcile-mh/test-run").write_text(self.run_id)
        self.script("clean", timeout=180)  # what an earlier, interrupted run left on the engines

    def down(self) -> None:
        for node in self.nodes.values():
            node.client.close()
        self.script("down", timeout=300)

    # -- the database -------------------------------------------------------------------
    def libpq(self, url: str) -> str:
        return url.replace("postgresql+psycopg://", "postgresql://", 1)

    def psql(self, sql: str, url: str | None = None, timeout: float = 60) -> str:
        proc = subprocess.run(["nsenter", f"--net=/run/netns/{NET_NS}", "psql", "-X", "-q", "-tA",
                               "-v", "ON_ERROR_STOP=1", "-d", self.libpq(url or self.base_url), "-c", sql],
                              capture_output=True, text=True, timeout=timeout)
        assert proc.returncode == 0, f"psql {sql!r} failed: {proc.stderr}"
        return proc.stdout.strip()

    def create_database(self) -> None:
        self.psql(f"CREATE DATABASE {self.db_name}")
        self.url = self.base_url.rsplit("/", 1)[0] + "/" + self.db_name

    def drop_database(self) -> None:
        if self.url:
            self.psql(f"DROP DATABASE IF EXISTS {self.db_name} WITH (FORCE)")

    # -- the control verbs (in the bridge's namespace: the store only) ------------------
    @property
    def cli_env(self) -> dict[str, str]:
        return {**os.environ, "RECONCILE_DB": self.url, "DOCKER_HOST": NO_ENGINE, "RECONCILE_LOG_LEVEL": "INFO",
                "RECONCILE_NODE_TTL": str(TTL)}

    def cli(self, *args: str, expect: int | None = 0, timeout: float = 120,
            netns: str = NET_NS, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(["nsenter", f"--net=/run/netns/{netns}", sys.executable, "-m", "controller.cli", *args],
                              capture_output=True, text=True, env=env or self.cli_env, timeout=timeout, cwd=REPO)
        if expect is not None and proc.returncode != expect:
            raise AssertionError(f"reconcile {' '.join(args)} exited {proc.returncode}, expected {expect}\n"
                                 f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
        return proc

    def json(self, *args: str) -> Any:
        return json.loads(self.cli(*args, "-o", "json").stdout)

    def nodes_json(self) -> dict[str, dict[str, Any]]:
        return {n["name"]: n for n in self.json("nodes")}

    def describe(self, name: str) -> dict[str, Any]:
        return dict(self.json("describe", name))

    def status(self) -> dict[str, dict[str, Any]]:
        return {r["name"]: r for r in self.json("status")}

    def events(self, *types: str) -> list[dict[str, Any]]:
        args = ["history"]
        for t in types:
            args += ["--type", t]
        return list(self.json(*args))

    def service(self, name: str, image: str = WORKER_IMAGE, **spec: Any) -> dict[str, Any]:
        labels = {TEST_LABEL: self.label, **spec.pop("labels", {})}
        return {"apiVersion": "reconcile/v1alpha1", "kind": "Service", "metadata": {"name": name},
                "spec": {"image": image, "labels": labels, **spec}}

    def apply(self, *docs: dict[str, Any], file: str = "stack.yaml") -> None:
        path = self.tmp / file
        path.write_text(yaml.safe_dump_all(list(docs), sort_keys=False))
        self.cli("apply", "-f", str(path))

    def delete(self, *names: str) -> None:
        self.cli("delete", *names, expect=None)

    # -- agents -------------------------------------------------------------------------
    def agent_env(self, node: Node) -> dict[str, str]:
        return {**os.environ, "RECONCILE_DB": self.url, "DOCKER_HOST": node.host, "RECONCILE_NODE_TTL": str(TTL),
                "RECONCILE_LOG_LEVEL": "INFO"}

    def spawn_agent(self, name: str, tag: str = "") -> tuple[subprocess.Popen[str], Path]:
        """``reconcile run --node NAME`` inside the node's namespace, against its engine. Its
        output goes to a file; an untagged one is the node's agent (``agent_log``)."""
        node = self.nodes[name]
        log_path = self.tmp / f"agent-{name}-{tag or len(node.agent_logs) + 1}.log"
        labels = [a for k, v in NODE_LABELS[name].items() for a in ("--node-label", f"{k}={v}")]
        with open(log_path, "w") as log:
            proc = subprocess.Popen(["nsenter", f"--net=/run/netns/{node.netns}", sys.executable, "-m",
                                     "controller.cli", "run", "--node", name, *labels],
                                    env=self.agent_env(node), stdout=log, stderr=subprocess.STDOUT, text=True, cwd=REPO)
        if not tag:
            node.agent_logs.append(log_path)
        return proc, log_path

    def start_agent(self, name: str) -> None:
        node = self.nodes[name]
        assert node.agent is None or node.agent.poll() is not None, f"the agent of {name} runs already"
        node.agent, _ = self.spawn_agent(name)

    def agent_log(self, name: str) -> str:
        logs = self.nodes[name].agent_logs
        return logs[-1].read_text(errors="replace") if logs else "(no agent started)"

    def wait_ready(self, names: Sequence[str], timeout: float = AGENT_START_TIMEOUT) -> dict[str, dict[str, Any]]:
        """Until ``reconcile nodes`` shows every named node ready (their agents alive)."""
        def agents_alive() -> None:
            for name in names:
                agent = self.nodes[name].agent
                if agent is not None and agent.poll() is not None:
                    pytest.fail(f"the agent of {name} exited {agent.returncode}:\n{self.agent_log(name)}",
                                pytrace=False)

        def ready() -> dict[str, dict[str, Any]] | None:
            agents_alive()
            try:
                listed = self.nodes_json()
            except AssertionError:
                time.sleep(1)
                agents_alive()  # an agent that died says more than the failed `nodes`
                raise
            return listed if all(listed.get(n, {}).get("ready") is True for n in names) else None

        return dict(wait_for(ready, timeout, f"nodes {', '.join(names)} to be ready", interval=1.0))

    def kill_agent(self, name: str) -> None:
        node = self.nodes[name]
        if node.agent is not None and node.agent.poll() is None:
            node.agent.send_signal(signal.SIGKILL)
            node.agent.wait(15)

    def stop_agent(self, name: str, timeout: float = 20) -> None:
        node = self.nodes[name]
        if node.agent is None or node.agent.poll() is not None:
            return
        node.agent.terminate()
        try:
            node.agent.wait(timeout)
        except subprocess.TimeoutExpired:
            node.agent.kill()
            node.agent.wait(10)

    # -- engines ------------------------------------------------------------------------
    def containers(self, name: str, service: str | None = None, client: docker.DockerClient | None = None,
                   ) -> list[dict[str, Any]]:
        """The test's containers on node ``name``'s engine (any state), as /containers/json."""
        labels = [f"{TEST_LABEL}={self.label}"] + ([f"{SERVICE}={service}"] if service else [])
        return list((client or self.nodes[name].client).api.containers(all=True, filters={"label": labels}))

    def running(self, service: str) -> dict[str, list[dict[str, Any]]]:
        """Node -> the service's running containers there (reachable engines only)."""
        found: dict[str, list[dict[str, Any]]] = {}
        for name in NODES:
            try:
                rows = [c for c in self.containers(name, service) if c.get("State") == "running"]
            except ENGINE_ERRORS:
                continue
            if rows:
                found[name] = rows
        return found

    def running_nodes(self, service: str) -> list[str]:
        """One entry per running container of ``service``: the node it runs on."""
        return sorted(n for n, rows in self.running(service).items() for _ in rows)

    def wait_running(self, service: str, nodes: Sequence[str], timeout: float = 60) -> dict[str, list[dict[str, Any]]]:
        """Until exactly one replica of ``service`` runs on each of ``nodes`` (a node may
        appear several times) and none anywhere else."""
        want = sorted(nodes)
        return dict(wait_for(lambda: self.running(service) if self.running_nodes(service) == want else None,
                             timeout, f"{service} running on {want} (now on {self.running_nodes(service)})"))

    def wait_gone(self, *services: str, timeout: float = 60) -> None:
        def gone() -> bool:
            for name in NODES:
                try:
                    if any(self.containers(name, s) for s in services):
                        return False
                except ENGINE_ERRORS:
                    return False
            return True
        wait_for(gone, timeout, f"every container of {', '.join(services)} to be removed")


@dataclass(frozen=True)
class Sample:
    t: float
    # node -> [(service, replica, state, container id)]; None: the engine did not answer
    seen: dict[str, list[tuple[str, str, str, str]] | None]


class Sampler:
    """Lists every node's test containers every ``interval`` seconds in a thread (its own
    engine clients), for at most ``limit`` seconds; ``double_runs`` names every sample in
    which some (service, replica) ran on more than one node, or twice on one."""

    CALL_TIMEOUT = 3  # seconds: one engine list call

    def __init__(self, cluster: Cluster, interval: float = 0.2, limit: float = 300):
        self.cluster = cluster
        self.interval = interval
        self.limit = limit
        self.samples: list[Sample] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._clients = {n: docker.DockerClient(base_url=node.host, timeout=self.CALL_TIMEOUT)
                         for n, node in cluster.nodes.items()}
        # the nodes are listed side by side: an engine that hangs while it stops or starts (CI: a
        # sample took seconds) delays a sample by one call's time-out, not by one per node
        self._pool = ThreadPoolExecutor(len(NODES), thread_name_prefix="multihost-sample")
        self._thread = threading.Thread(target=self._run, name="multihost-sampler", daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)
        self._pool.shutdown(wait=True)
        for client in self._clients.values():
            client.close()

    def _list(self, name: str) -> list[tuple[str, str, str, str]] | None:
        try:
            rows = self.cluster.containers(name, client=self._clients[name])
        except ENGINE_ERRORS:
            return None
        except Exception as exc:  # noqa: BLE001 - kept, reported by the test
            self.errors.append(f"{name}: {exc!r}")
            return None
        return [((c.get("Labels") or {}).get(SERVICE, "?"), (c.get("Labels") or {}).get(REPLICA, "?"),
                 str(c.get("State")), str(c.get("Id"))[:12]) for c in rows]

    def _run(self) -> None:
        deadline = time.monotonic() + self.limit
        while not self._stop.is_set() and time.monotonic() < deadline:
            t = time.time()
            futures = {name: self._pool.submit(self._list, name) for name in NODES}
            self.samples.append(Sample(t, {name: f.result() for name, f in futures.items()}))
            self._stop.wait(self.interval)

    def assert_dense(self, min_samples: int = 10, max_median_gap: float = 1.0) -> None:
        """The sampler really watched: enough samples, typically ``max_median_gap`` apart, and
        no gap longer than two calls' time-outs (one slow engine delays one sample)."""
        times = [s.t for s in self.samples]
        gaps = sorted(b - a for a, b in zip(times, times[1:], strict=False))
        silent = {n: sum(1 for s in self.samples if s.seen.get(n) is None) for n in NODES}
        said = (f"{len(times)} samples over {times[-1] - times[0] if times else 0:.1f}s, "
                f"median gap {gaps[len(gaps) // 2] if gaps else float('nan'):.2f}s, "
                f"longest {gaps[-1] if gaps else float('nan'):.2f}s, unanswered per node {silent}")
        print(f"sampler: {said}")  # shown with -s or when the test fails
        assert len(times) >= min_samples and gaps, f"too few samples: {said}"
        assert gaps[len(gaps) // 2] <= max_median_gap, f"samples too sparse: {said}"
        assert gaps[-1] <= 2 * self.CALL_TIMEOUT + 1, f"the sampler stalled: {said}"

    def double_runs(self, services: Sequence[str] | None = None) -> list[str]:
        found = []
        for sample in self.samples:
            counts: Counter[tuple[str, str]] = Counter()
            where: dict[tuple[str, str], list[str]] = {}
            for node, rows in sample.seen.items():
                for service, replica, state, cid in rows or []:
                    if state == "running" and (services is None or service in services):
                        counts[(service, replica)] += 1
                        where.setdefault((service, replica), []).append(f"{node}:{cid}")
            found += [f"t={sample.t:.2f}: {s} replica {r} running {n}x ({', '.join(where[(s, r)])})"
                      for (s, r), n in counts.items() if n > 1]
        return found

    def between(self, start: float, end: float = float("inf")) -> Iterator[Sample]:
        return (s for s in self.samples if start <= s.t <= end)
