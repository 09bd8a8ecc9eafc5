"""The placement function at scale: 1,000 services x 20 nodes (target < 50 ms a pass).

No engine and no store: ``controller.placement.place`` is pure, so this times the function
alone, in this process, on a fixed realistic mix (``workload``, seeded):
- 20 nodes in 3 zones (label ``zone``), every third with ``disk=ssd``, 16-48 CPUs and
  32-64 GiB each (two with capacity unknown: 0 = no limit);
- 1,000 services with 1-5 replicas: 40 % unconstrained, 20 % ``spread: zone``,
  10 % ``spread: node``, 15 % ``nodeSelector: {disk: ssd}``, 10 % ``nodeSelector: {zone: Z}``,
  5 % pinned by ``node:``; half reserve 0.05-0.5 CPU and 32-512 MiB per replica.

Figures, each the median (and p95) of 30 passes (quick: 20), after one warm-up pass, as wall
time and as this process's CPU time (``time.process_time``: what a loaded machine does not
inflate the way it inflates the wait for a core):
- from scratch: no current assignments (every replica placed);
- steady re-place: current = the previous result (everything kept: the pass an agent makes
  when nothing changed);
- one node draining: current = the previous result, one node set to ``draining`` (its
  replicas move).

Run: ``python bench/run.py --only placement`` (needs no engine, images or docker-compose).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

from bench.common import Figure, median, pct
from controller.placement import Assignment, NodeView, PlacementResult, Request, place

NAME = "placement"
SERVICES = 1000
NODES = 20
TARGET_MS = 50.0


def workload(seed: int = 15, services: int = SERVICES, nodes: int = NODES) -> tuple[list[Request], list[NodeView]]:
    rng = random.Random(seed)
    zones = ["a", "b", "c"]
    views = []
    for i in range(nodes):
        labels = {"zone": zones[i % 3]}
        if i % 3 == 0:
            labels["disk"] = "ssd"
        unknown = i in (7, 13)
        views.append(NodeView(f"node-{i:02d}", labels, 0 if unknown else float(rng.choice([16, 32, 48])),
                              0 if unknown else rng.choice([32, 48, 64]) << 30, "ready"))
    reqs = []
    for s in range(services):
        kind = rng.random()
        node, selector, spread = None, {}, None
        if kind < 0.20:
            spread = "zone"
        elif kind < 0.30:
            spread = "node"
        elif kind < 0.45:
            selector = {"disk": "ssd"}
        elif kind < 0.55:
            selector = {"zone": rng.choice(zones)}
        elif kind < 0.60:
            node = f"node-{rng.randrange(nodes):02d}"
        reserve = rng.random() < 0.5
        cpus = round(rng.uniform(0.05, 0.5), 2) if reserve else 0.0
        memory = rng.randrange(32, 513) << 20 if reserve else 0
        reqs.append(Request(f"svc-{s:04d}", rng.randint(1, 5), node, selector, spread, cpus, memory,
                            rng.random() < 0.5))
    return reqs, views


def _time(fn: Callable[[], PlacementResult], reps: int) -> tuple[list[float], list[float], PlacementResult]:
    """Wall and CPU milliseconds of ``reps`` calls (after a warm-up), and the last result."""
    fn()
    wall, cpu, result = [], [], None
    for _ in range(reps):
        t0, c0 = time.perf_counter(), time.process_time()
        result = fn()
        wall.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
    assert result is not None
    return wall, cpu, result


def measure(reps: int) -> list[tuple[str, list[float], list[float], PlacementResult]]:
    reqs, nodes = workload()
    scratch, scratch_cpu, first = _time(lambda: place(reqs, nodes, ()), reps)
    previous: tuple[Assignment, ...] = first.assignments
    steady, steady_cpu, again = _time(lambda: place(reqs, nodes, previous), reps)
    if again != first:
        raise AssertionError("a steady re-place changed the result")
    drained = [NodeView(n.name, n.labels, n.cpus, n.memory, "draining") if n.name == "node-04" else n for n in nodes]
    drain, drain_cpu, moved = _time(lambda: place(reqs, drained, previous), reps)
    if any(a.node == "node-04" and not a.reason.startswith("stays") for a in moved.assignments):
        raise AssertionError("draining node-04 kept a replica that could move")
    return [("from scratch", scratch, scratch_cpu, first), ("steady re-place", steady, steady_cpu, again),
            ("one node draining", drain, drain_cpu, moved)]


def run(b: Any) -> list[Figure]:
    reps = b.reps(20, 30)
    out = []
    for metric, wall, cpu, result in measure(reps):
        replicas = len(result.assignments) + len(result.unplaced)
        what = f"place(), {SERVICES} services ({replicas} replicas) x {NODES} nodes, {metric}"
        for kind, samples in (("", wall), (" (CPU time)", cpu)):
            value = median(samples)
            out.append(Figure(NAME, what + kind, value, "ms", target=f"< {TARGET_MS:g} ms", met=value < TARGET_MS,
                              n=reps, p95=pct(samples, 95), note=f"{len(result.unplaced)} unplaced"))
    return out
