"""3. Cold apply, from nothing to all running (healthy where checked):
``reconcile apply -f FILE --wait`` versus ``docker-compose up -d`` on the equivalent
compose file, versus a floor (the same containers created and started straight through
the Docker SDK with a thread pool).

(a) 50 independent services: ``reconcile/busybox`` running ``sleep``, ``init: true``.
(b) a 30-service dependency graph with healthchecks: 6 layers of 5, every service of a
    layer depends on every service of the previous layer being healthy (compose:
    ``depends_on: {x: {condition: service_healthy}}``); healthcheck ``true`` every 1 s.
    The floor goes layer by layer, waiting for health between layers.

The clock runs from starting the command until a list of the engine shows every
container running (and healthy in (b)): for compose that includes waiting for the last
layer's health after ``up -d`` returns. Each run starts from nothing (a fresh reconcile
store; the previous run's containers removed) and the three are interleaved, the order
rotating per repetition. All services use the default bridge network (compose:
``network_mode: bridge``), so no run creates a network.

Before the first repetition, one untimed ``apply --wait`` of a single healthchecked
service (its own store) warms the run's bytecode cache and the page cache: without it,
the first timed reconcile command of a run that starts with this benchmark compiles every
module it imports (about 4 s of CPU), which an installed package never does; compose's
modules are compiled by its package, and the floor runs inside this process.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench.common import BASE_IMAGE, PEER_LABEL, SLEEP_CMD, Bench, BenchError, Figure, compose_bin, median, pct

NAME = "cold"
NANO = 1_000_000_000
HEALTH = {"test": ["CMD", "true"], "interval": "1s", "timeout": "5s", "retries": 3}
FLOOR_WORKERS = 8
FLOOR_BAR = 1.15  # issue #11 (issue #7 asked for 1.3x)


def _graph(kind: str) -> list[tuple[str, list[str], bool]]:
    """(service, dependencies, has healthcheck)"""
    if kind == "a":
        return [(f"w{i:02d}", [], False) for i in range(1, 51)]
    out = []
    for layer in range(6):
        for j in range(5):
            deps = [f"l{layer - 1}s{k}" for k in range(5)] if layer else []
            out.append((f"l{layer}s{j}", deps, True))
    return out


def _reconcile_docs(b: Bench, prefix: str, tag: str, graph: list[tuple[str, list[str], bool]]) -> list[dict[str, Any]]:
    docs = []
    for svc, deps, hc in graph:
        spec: dict[str, Any] = {"image": BASE_IMAGE, "command": SLEEP_CMD, "init": True}
        if hc:
            spec["healthcheck"] = dict(HEALTH)
        if deps:
            spec["dependsOn"] = {f"{prefix}-{d}": {"condition": "healthy"} for d in deps}
        docs.append(b.service(f"{prefix}-{svc}", spec, peer=tag))
    return docs


def _compose_doc(b: Bench, tag: str, graph: list[tuple[str, list[str], bool]]) -> dict[str, Any]:
    services = {}
    for svc, deps, hc in graph:
        s: dict[str, Any] = {"image": BASE_IMAGE, "command": SLEEP_CMD, "init": True, "network_mode": "bridge",
                             "labels": {**b.labels, PEER_LABEL: tag}}
        if hc:
            s["healthcheck"] = dict(HEALTH)
        if deps:
            s["depends_on"] = {d: {"condition": "service_healthy"} for d in deps}
        services[svc] = s
    return {"version": "2.4", "services": services}


def _all_up(b: Bench, tag: str, n: int, health: bool) -> bool:
    cs = b.containers(tag)
    if len(cs) < n:
        return False
    return all(c["State"] == "running" and (not health or "(healthy)" in (c.get("Status") or "")) for c in cs)


def _floor(b: Bench, prefix: str, tag: str, graph: list[tuple[str, list[str], bool]]) -> None:
    layers: list[list[tuple[str, bool]]] = []
    placed: dict[str, int] = {}
    for svc, deps, hc in graph:
        layer = 1 + max((placed[d] for d in deps), default=-1)
        placed[svc] = layer
        while len(layers) <= layer:
            layers.append([])
        layers[layer].append((svc, hc))

    def make(item: tuple[str, bool]) -> str:
        svc, hc = item
        health = None
        if hc:
            health = {"test": HEALTH["test"], "interval": NANO, "timeout": 5 * NANO, "retries": 3}
        cid = b.api.create_container(
            BASE_IMAGE, SLEEP_CMD, name=f"{prefix}-{svc}", labels={**b.labels, PEER_LABEL: tag},
            healthcheck=health, host_config=b.api.create_host_config(init=True))["Id"]
        b.api.start(cid)
        return cid

    with ThreadPoolExecutor(FLOOR_WORKERS) as pool:
        for layer in layers:
            ids = list(pool.map(make, layer))
            if any(hc for _, hc in layer):
                deadline = time.monotonic() + 120
                while not all("(healthy)" in (c.get("Status") or "")
                              for c in b.api.containers(filters={"id": ids})):
                    if time.monotonic() > deadline:
                        raise BenchError("floor: layer not healthy within 120 s")
                    time.sleep(0.05)


def _warm_up(b: Bench) -> None:
    tag = f"{b.run_id}-warm-up"
    d = b.dir(f"{NAME}/warm-up")
    f = b.write_yaml(d / "stack.yaml", _reconcile_docs(b, b.name("warm"), tag, [("w", [], True)]))
    b.cli(d / "store.db", "apply", "-f", str(f), "--wait", "--timeout", "5m").check()
    b.remove_containers(tag)


def run(b: Bench) -> list[Figure]:
    if not compose_bin():
        raise BenchError("docker-compose is not installed (bench/run.py installs it)")
    reps = b.reps(2, 5)
    _warm_up(b)
    figures: list[Figure] = []
    for kind, label in (("a", "50 independent services"), ("b", "30-service graph, 6 layers, healthy deps")):
        graph = _graph(kind)
        n = len(graph)
        health = kind == "b"
        times: dict[str, list[float]] = {"reconcile": [], "compose": [], "floor": []}
        peers = ["reconcile", "compose", "floor"]
        for rep in range(reps):
            order = peers[rep % len(peers):] + peers[:rep % len(peers)]
            for who in order:
                tag = f"{b.run_id}-{kind}{rep}-{who}"
                d = b.dir(f"{NAME}/{kind}{rep}-{who}")
                t0 = time.perf_counter()
                cpu = ""
                if who == "reconcile":
                    prefix = b.name(f"{kind}{rep}")
                    f = b.write_yaml(d / "stack.yaml", _reconcile_docs(b, prefix, tag, graph))
                    p = b.cli(d / "store.db", "apply", "-f", str(f), "--wait", "--timeout", "5m").check()
                    cpu = f" (the command's own CPU: {p.cpu:.2f} s)"  # what a loaded machine stretches
                elif who == "compose":
                    f = b.write_yaml(d / "docker-compose.yml", _compose_doc(b, tag, graph))
                    p = b.compose("-p", f"{b.prefix}{kind}{rep}", "-f", str(f), "up", "-d", cwd=d, timeout=600).check()
                    cpu = f" (the command's own CPU: {p.cpu:.2f} s)"
                else:
                    _floor(b, b.name(f"f{kind}{rep}"), tag, graph)
                b.wait_until(lambda: _all_up(b, tag, n, health), 300, f"{who}: {n} containers up", interval=0.05)
                elapsed = time.perf_counter() - t0
                times[who].append(elapsed)
                b.log(f"cold ({kind}) rep {rep + 1}/{reps}: {who} {elapsed:.2f} s{cpu}")
                b.remove_containers(tag)
        rc = median(times["reconcile"])
        fl = median(times["floor"])
        cp = median(times["compose"])
        p95 = {k: pct(v, 95) for k, v in times.items()}
        figures.append(Figure(NAME, f"({kind}) {label}: apply --wait", rc, "s", "docker-compose up -d", cp,
                              "<= 0.5x compose", rc <= 0.5 * cp, reps, p95=p95["reconcile"], peer_p95=p95["compose"]))
        figures.append(Figure(NAME, f"({kind}) {label}: apply --wait", rc, "s", f"floor: SDK, {FLOOR_WORKERS} threads",
                              fl, f"<= {FLOOR_BAR}x floor", rc <= FLOOR_BAR * fl, reps, p95=p95["reconcile"],
                              peer_p95=p95["floor"]))
    return figures
