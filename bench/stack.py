"""The 200-service stack shared by the steady-state and footprint benchmarks.

Reconcile side: 200 native Services (``reconcile/busybox`` running ``sleep``, ``init:
true``) applied with ``reconcile apply -f FILE --wait`` into a private store.
Compose side: the equivalent compose file (``network_mode: bridge``) brought up with
``docker-compose up -d`` as its own project. Both stay up for the benchmarks that need
them and are removed by the run's cleanup sweep (they carry the run's label).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import BASE_IMAGE, PEER_LABEL, SLEEP_CMD, Bench, BenchError, compose_bin

SIZE = 200


@dataclass
class Stack:
    db: Path
    manifest: Path
    names: list[str]
    compose_file: Path
    compose_project: str
    compose_dir: Path


def stack200(b: Bench) -> Stack:
    if "stack200" in b.shared:
        return b.shared["stack200"]  # type: ignore[no-any-return]
    d = b.dir("stack200")
    names = [b.name(f"s{i:03d}") for i in range(1, SIZE + 1)]
    docs = [b.service(n, {"image": BASE_IMAGE, "command": SLEEP_CMD, "init": True}, peer="stack-reconcile")
            for n in names]
    manifest = b.write_yaml(d / "stack.yaml", docs)
    db = d / "store.db"
    b.log(f"creating the {SIZE}-service stack with reconcile apply --wait")
    rc = b.cli(db, "apply", "-f", str(manifest), "--wait", "--timeout", "15m", timeout=1200).check()
    b.log(f"setup (a single run, not a figure): reconcile apply --wait of {SIZE} services took {rc.wall:.1f} s")
    if not compose_bin():
        raise BenchError("docker-compose is not installed (bench/run.py installs it)")
    project = f"{b.prefix}stack"
    cdir = b.dir("stack200/compose")
    services: dict[str, Any] = {
        f"s{i:03d}": {"image": BASE_IMAGE, "command": SLEEP_CMD, "init": True, "network_mode": "bridge",
                      "labels": {**b.labels, PEER_LABEL: "stack-compose"}}
        for i in range(1, SIZE + 1)
    }
    compose_file = b.write_yaml(cdir / "docker-compose.yml", {"version": "2.4", "services": services})
    b.log(f"creating the {SIZE}-service stack with docker-compose up -d")
    cp = b.compose("-p", project, "-f", str(compose_file), "up", "-d", cwd=cdir)
    if cp.rc != 0:
        # compose 1.x with 200 parallel threads can lose its connection pool on a loaded engine
        # ("Pool is closed", "Couldn't connect to Docker daemon"); `up -d` is idempotent and this
        # is set-up, not a figure, so finish it with one more run
        b.log(f"docker-compose up -d exited {cp.rc} ({cp.stderr.strip().splitlines()[-1:]}); running it once more")
        cp = b.compose("-p", project, "-f", str(compose_file), "up", "-d", cwd=cdir).check()
    b.log(f"setup (a single run, not a figure): docker-compose up -d of {SIZE} services took {cp.wall:.1f} s")
    st = Stack(db, manifest, names, compose_file, project, cdir)
    b.shared["stack200"] = st
    return st
