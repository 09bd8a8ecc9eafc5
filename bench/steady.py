"""4. Steady state at scale: 200 managed services (``sleep`` workers), nothing to do.

- Engine API calls per resync pass, counted at the adapter (``Engine.calls``): in-process,
  ``controller.reconciler.Reconciler(store, engine)`` on the stack's store, ``reconcile()``
  in a loop (2 warm-up passes, then 20 measured), reading the counter deltas.
- Controller CPU per pass: ``time.process_time()`` around each pass (all threads), median
  of 20; wall time per pass alongside.
- No-op ``reconcile apply -f FILE`` (no daemon; every document is stored unchanged, so it
  answers from the store's read path and one look at the engine, ``controller.unchanged``,
  and writes nothing; the command checks it printed "200 unchanged" and "no actions")
  versus a no-op ``docker-compose up -d`` of the same 200-service stack as its own project;
  wall and child CPU, interleaved.
- The same two no-op commands once more through a counting proxy on the engine socket:
  how many engine API calls each makes.

The peer of the per-pass figures is what docker-compose spends to establish the same
fact (the 200 services are as desired): one no-op ``up -d``.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bench.common import Bench, BenchError, Figure, median, pct
from bench.sockproxy import CountingProxy
from bench.stack import stack200

if TYPE_CHECKING:
    from controller.engine import Engine
    from controller.reconciler import PassResult, Reconciler
    from store import Store

NAME = "steady"
PASSES = 20
WARMUP = 2  # passes before the measured ones: specs validated and cached, image ids listed


@dataclass
class PassSamples:
    """Idle passes, one entry per pass: engine API calls at the adapter (all, and list calls),
    CPU (``time.process_time()``, all threads) and wall time in ms, store statements."""

    calls: list[int] = field(default_factory=list)
    lists: list[int] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    wall: list[float] = field(default_factory=list)
    statements: list[int] = field(default_factory=list)
    per_kind: Counter[str] = field(default_factory=Counter)


def idle_passes(engine: Engine, one_pass: Callable[[], PassResult], n: int, into: PassSamples | None = None,
                statements: Callable[[], int] | None = None) -> PassSamples:
    """Run ``one_pass`` ``n`` times, recording each pass's engine calls (the deltas of
    ``engine.calls``), CPU, wall and (``statements``: a running count) store statements.
    A pass that acted or failed is a BenchError: the figures are of a steady state."""
    out = into if into is not None else PassSamples()
    for _ in range(n):
        before = Counter(engine.calls)
        q0 = statements() if statements else 0
        c0, w0 = time.process_time(), time.perf_counter()
        res = one_pass()
        c1, w1 = time.process_time(), time.perf_counter()
        q1 = statements() if statements else 0
        delta = Counter(engine.calls)
        delta.subtract(before)
        delta = +delta
        if res.actions or res.errors:
            raise BenchError(f"a steady-state pass acted: {res.actions[:3]} {res.errors[:3]}")
        out.calls.append(sum(delta.values()))
        out.lists.append(delta.get("containers.list", 0))
        out.per_kind.update(delta)
        out.cpu.append((c1 - c0) * 1000)
        out.wall.append((w1 - w0) * 1000)
        out.statements.append(q1 - q0)
    return out


def statement_counter(store: Store) -> Callable[[], int]:
    """A running count of the SQL statements ``store`` sends (both of its engines; the
    transaction statements BEGIN, COMMIT, ROLLBACK not counted), read before and after a
    pass. The bench's only look inside the store (its engines)."""
    from sqlalchemy import event

    seen = [0]

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if not statement.lstrip()[:8].upper().startswith(("BEGIN", "COMMIT", "ROLLBACK")):
            seen[0] += 1

    engines = {id(e): e for e in (store._read, store._write)}  # noqa: SLF001 - one engine on PostgreSQL
    for e in engines.values():
        event.listen(e, "before_cursor_execute", count)
    return lambda: seen[0]


@contextlib.contextmanager
def single_host(db: str) -> Iterator[tuple[Store, Engine, Reconciler]]:
    """The single-host pass: ``Reconciler(store, engine)`` on the stack's store, as the
    daemon without ``--node`` runs it (``reconcile()``: a full pass)."""
    from controller.engine import Engine
    from controller.reconciler import Reconciler, ReconcilerConfig
    from store import Store

    store = Store.open(db, migrate=False)
    engine = Engine()
    rec = Reconciler(store, engine, ReconcilerConfig(actor="bench"))
    try:
        yield store, engine, rec
    finally:
        rec.close()
        store.close()


def _passes(b: Bench | None, db: str) -> tuple[list[int], list[int], list[float], list[float], Counter[str]]:
    with single_host(db) as (_store, engine, rec):
        for _ in range(WARMUP):
            rec.reconcile()
        s = idle_passes(engine, rec.reconcile, PASSES)
    return s.calls, s.lists, s.cpu, s.wall, s.per_kind


def run(b: Bench) -> list[Figure]:
    st = stack200(b)
    calls, lists, cpu, wall, per_kind = _passes(b, str(st.db))
    b.log(f"engine calls in {PASSES} passes: {dict(per_kind)}")

    reps = b.reps(3, 7)
    rc_wall: list[float] = []
    rc_cpu: list[float] = []
    cp_wall: list[float] = []
    cp_cpu: list[float] = []
    compose_args = ["-p", st.compose_project, "-f", str(st.compose_file), "up", "-d"]
    for i in range(reps):
        steps = ["reconcile", "compose"]
        for who in (steps if i % 2 == 0 else steps[::-1]):
            if who == "reconcile":
                p = b.cli(st.db, "apply", "-f", str(st.manifest)).check()
                if f"{len(st.names)} unchanged" not in p.stdout or "no actions" not in p.stdout:
                    raise BenchError(f"no-op apply was not a no-op:\n{p.stdout[-1500:]}")
                rc_wall.append(p.wall)
                rc_cpu.append(p.cpu)
            else:
                p = b.compose(*compose_args, cwd=st.compose_dir, timeout=900).check()
                if "Creating" in p.stderr or "Recreating" in p.stderr:
                    raise BenchError(f"no-op docker-compose up -d acted:\n{p.stderr[-1500:]}")
                cp_wall.append(p.wall)
                cp_cpu.append(p.cpu)
        b.log(f"no-op rep {i + 1}/{reps}: reconcile apply {rc_wall[-1]:.2f} s, docker-compose up -d {cp_wall[-1]:.2f} s")

    # engine API calls of each no-op command, counted at the socket
    proxy = CountingProxy(b.tmp / "steady-proxy.sock").start()
    try:
        b.cli(st.db, "apply", "-f", str(st.manifest), docker_host=proxy.url).check()
        rc_api = proxy.snapshot()
        proxy.reset()
        b.compose(*compose_args, cwd=st.compose_dir, docker_host=proxy.url, timeout=900).check()
        cp_api = proxy.snapshot()
    finally:
        proxy.close()
    b.log(f"no-op reconcile apply engine calls: {sum(rc_api.values())} {dict(rc_api.most_common(6))}")
    b.log(f"no-op docker-compose up -d engine calls: {sum(cp_api.values())} {dict(cp_api.most_common(6))}")
    b.shared["steady_api"] = {"reconcile_apply": dict(rc_api), "compose_up": dict(cp_api),
                              "pass_calls": dict(per_kind)}

    peer = "docker-compose no-op up -d"
    cp_calls = float(sum(cp_api.values()))
    return [
        Figure(NAME, "engine API calls per resync pass (adapter)", median(calls), "", peer + " (socket count)",
               cp_calls, "1 list call per pass", median(calls) == 1 and max(calls) == 1 and min(lists) == 1,
               PASSES, f"max {max(calls)}"),
        Figure(NAME, "controller CPU per resync pass", median(cpu), "ms", peer + " (child CPU)",
               median(cp_cpu) * 1000, "< 30 ms", median(cpu) < 30, PASSES, "time.process_time() around reconcile()",
               p95=pct(cpu, 95), peer_p95=pct(cp_cpu, 95) * 1000),
        Figure(NAME, "wall time per resync pass", median(wall), "ms", peer + " (wall)", median(cp_wall) * 1000,
               "", None, PASSES, p95=pct(wall, 95), peer_p95=pct(cp_wall, 95) * 1000),
        Figure(NAME, "no-op `reconcile apply -f` (wall)", median(rc_wall), "s", peer, median(cp_wall),
               "<= 1/5 of compose", median(rc_wall) <= median(cp_wall) / 5, reps,
               p95=pct(rc_wall, 95), peer_p95=pct(cp_wall, 95)),
        Figure(NAME, "no-op `reconcile apply -f` (CPU)", median(rc_cpu), "s", peer, median(cp_cpu), "", None, reps,
               p95=pct(rc_cpu, 95), peer_p95=pct(cp_cpu, 95)),
        Figure(NAME, "engine API calls of a no-op apply (socket)", float(sum(rc_api.values())), "", peer,
               cp_calls, "", None, 1, "deterministic count, one run each"),
    ]
