"""Issue 15: the idle reconcile pass of a node's agent (``reconcile run --node NAME``).

Set-up (not a figure): a store of its own; ``reconcile run --node NAME`` (the agent, in a
subprocess) registers the node and takes its lease; ``reconcile apply -f FILE --wait`` of N
``sleep`` services (200 in full mode, 50 in quick mode) that the agent places on its node
(the scheduler: the only node) and converges, so every container carries
``reconcile.node=NAME``. The agent is stopped (SIGTERM: it releases the node lease).

Then, in this process, the same node's agent as ``reconcile run --node NAME`` builds it:
``controller.agent.Agent`` registered and holding the node lease (a new fencing token; the
store's fence set), inside a ``controller.loop.Controller`` that is not started (no
scheduler thread, no event stream, no file watches): only its passes run, by hand, as its
threads run them. One agent pass is what the resync job and the dispatcher do:
``queue.add_all()``, ``queue.get()`` (a full batch), ``Controller._acting()`` (the node
lease's local deadline) and ``Reconciler.reconcile_batch`` with the agent's hooks (desired
state narrowed to the replicas assigned to this node, status rows for the services whose
lowest replica runs here, the action gate).

Peer: the single-host pass (``bench.steady.single_host``: ``Reconciler(store, engine)``,
``reconcile()``, as ``bench.steady`` measures it) on the same store and the same
containers, in the same run. Rounds alternate the order (agent first, then single host;
then the other way); each side keeps its reconciler for the whole run (2 warm-up passes,
then 20 measured per round). Per pass: engine API calls counted at the adapter
(``Engine.calls``), CPU (``time.process_time()``), wall, SQL statements sent to the store (BEGIN/COMMIT not counted).

Also, per round and outside the passes: the agent's idle scheduler pass
(``Agent.schedule``: the scheduling agent runs it once a second; it must write nothing) and
its node lease renewal (``Controller._lease_job``: every ttl/3).

Last, a cross-check of the whole agent: ``reconcile run --node NAME`` again, as a daemon
talking to the engine through the counting socket proxy (``bench.sockproxy``), idle for a
window (30 s quick, 60 s full) after a warm-up: its engine API calls by kind (one list call
per resync, every 5 s, is the target) and its whole CPU (every job: passes, scheduler,
lease) per resync.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING

from bench.common import BASE_IMAGE, NODE_LEASE_HELD, SLEEP_CMD, Bench, BenchError, Figure, median, pct
from bench.footprint import cpu_s
from bench.sockproxy import CountingProxy
from bench.steady import PASSES, WARMUP, PassSamples, idle_passes, single_host, statement_counter

if TYPE_CHECKING:
    from controller.engine import Engine
    from controller.loop import Controller
    from controller.reconciler import PassResult

NAME = "nodes"
SIZE = {"quick": 50, "full": 200}
SIDE_JOBS = 5  # scheduler passes and lease renewals timed per round
PEER = "agent"
RESYNC = 5.0  # the daemon's default resync interval (LoopOptions.resync_interval)
WARM = 10.0  # seconds the cross-check's daemon runs before its window


def _stack(b: Bench, size: int) -> tuple[str, str, list[str]]:
    """The store, the node and the N services, converged by a real agent (a subprocess)."""
    from store import Store

    d = b.dir("nodes")
    node = b.name("node")
    names = [b.name(f"n{i:03d}") for i in range(1, size + 1)]
    docs = [b.service(n, {"image": BASE_IMAGE, "command": SLEEP_CMD, "init": True}, peer=PEER) for n in names]
    manifest = b.write_yaml(d / "stack.yaml", docs)
    db = str(d / "store.db")
    Store.open(db).close()  # created and migrated before the agent opens it
    p, log = b.daemon(db, "--node", node, ready=NODE_LEASE_HELD, timeout=120)
    b.log(f"creating the {size}-service stack on node {node}: reconcile apply --wait, the agent converges it")
    rc = b.cli(db, "apply", "-f", manifest.as_posix(), "--wait", "--timeout", "15m", timeout=1200).check()
    b.log(f"setup (a single run, not a figure): apply --wait of {size} services through the agent took {rc.wall:.1f} s")
    b.stop(p)  # SIGTERM: the agent releases the node lease; its containers keep running
    if p.returncode != 0:
        raise BenchError(f"the set-up agent exited {p.returncode}:\n{log.read_text()[-3000:]}")
    running = [c for c in b.containers(PEER) if c["State"] == "running"]
    on_node = [c for c in running if (c.get("Labels") or {}).get("reconcile.node") == node]
    if len(on_node) != size:
        raise BenchError(f"{len(on_node)} of {size} services run on node {node} ({len(running)} running)")
    return db, node, names


def _agent(db: str, node: str) -> tuple[Controller, Engine, Callable[[], int]]:
    """The node's agent as ``reconcile run --node NAME`` builds it, holding the node lease."""
    from controller.agent import Agent, AgentOptions
    from controller.engine import Engine
    from controller.loop import Controller, LoopOptions
    from store import Store

    store = Store.open(db, migrate=False)
    engine = Engine()
    agent = Agent(store, engine, AgentOptions(node))
    agent.register()
    ctl = Controller(store, engine, LoopOptions(watch_files=False), agent=agent)
    statements = statement_counter(store)
    ctl._lease_job()  # acquires the node lease (remove moved-away first), then may act
    if not ctl.leader.is_set() or agent.ownership.fence is None:
        raise BenchError(f"the bench's agent did not get node {node}'s lease (held by {ctl.refused_by or '?'})")
    return ctl, engine, statements


def _agent_pass(ctl: Controller) -> Callable[[], PassResult]:
    def one_pass() -> PassResult:
        ctl.queue.add_all()  # the resync job, every resync interval
        batch = ctl.queue.get(timeout=5.0)  # the dispatcher
        if batch is None or not batch.full:
            raise BenchError(f"the agent's queue handed out {batch} instead of a full resync")
        if not ctl._acting():
            raise BenchError("the agent may not act: its node lease's local deadline passed")
        return ctl.reconciler.reconcile_batch(batch)

    return one_pass


def _close(ctl: Controller) -> None:
    ctl.reconciler.close()
    assert ctl.agent is not None
    ctl.agent.release()
    ctl.store.close()


def _side_jobs(ctl: Controller, engine: Engine, statements: Callable[[], int],
               sched: PassSamples, renew: PassSamples) -> None:
    """The scheduler pass (idle: writes nothing) and the lease renewal, timed like a pass."""
    assert ctl.agent is not None
    agent = ctl.agent
    jobs: list[tuple[Callable[[], object], PassSamples]] = [(agent.schedule, sched), (ctl._lease_job, renew)]
    for _ in range(SIDE_JOBS):
        for job, into in jobs:
            before, q0 = Counter(engine.calls), statements()
            c0, w0 = time.process_time(), time.perf_counter()
            out = job()
            c1, w1 = time.process_time(), time.perf_counter()
            delta = Counter(engine.calls)
            delta.subtract(before)
            if into is sched and (out or not agent.scheduling):
                raise BenchError(f"the idle scheduler pass wrote {out} rows (scheduling: {agent.scheduling})")
            into.calls.append(sum((+delta).values()))
            into.cpu.append((c1 - c0) * 1000)
            into.wall.append((w1 - w0) * 1000)
            into.statements.append(statements() - q0)
    if not ctl.leader.is_set() or not agent.may_act():
        raise BenchError("the bench's agent lost its node lease while renewing it")


def _daemon_window(b: Bench, db: str, node: str) -> list[Figure]:
    """The agent as a process, through the counting proxy: engine calls and CPU, idle."""
    window = 30.0 if b.quick else 60.0
    proxy = CountingProxy(b.tmp / "nodes-proxy.sock").start()
    b.cleanups.append(proxy.close)
    p, log = b.daemon(db, "--node", node, docker_host=proxy.url, ready=NODE_LEASE_HELD, timeout=120)
    b.log(f"agent daemon: warm-up {WARM:.0f} s, then {window:.0f} s idle through the counting proxy")
    time.sleep(WARM)
    proxy.reset()
    cpu0, t0 = cpu_s(p.pid), time.monotonic()
    time.sleep(window)
    if p.poll() is not None:
        raise BenchError(f"the agent daemon exited {p.returncode}:\n{log.read_text()[-3000:]}")
    calls, elapsed, cpu = proxy.snapshot(), time.monotonic() - t0, cpu_s(p.pid) - cpu0
    b.stop(p)
    if "Traceback" in log.read_text():
        raise BenchError(f"the agent daemon logged a traceback:\n{log.read_text()[-3000:]}")
    lists = calls.get("GET /containers/json", 0)
    resyncs = elapsed / RESYNC
    b.log(f"idle agent daemon engine calls over {elapsed:.0f} s: {dict(calls.most_common(8))}")
    b.shared["nodes_daemon_calls"] = {"seconds": elapsed, "calls": dict(calls)}
    others = sum(calls.values()) - lists
    return [
        Figure(NAME, "agent daemon: container list calls per resync interval (socket)", lists / resyncs, "", "", None,
               "1 list call per pass", round(lists / resyncs) == 1, lists,
               f"{lists} list calls in {elapsed:.0f} s; {others} other calls: "
               + (", ".join(f"{k} {v}" for k, v in calls.most_common() if k != "GET /containers/json") or "none")),
        Figure(NAME, "agent daemon: CPU per resync interval (whole process)", cpu * 1000 / resyncs, "ms", "", None,
               "", None, 1, f"every job in {elapsed:.0f} s (passes, scheduler once a second, lease renewals) "
               f"/ {resyncs:.0f} intervals; {cpu / elapsed * 100:.2f} % of one core"),
    ]


def run(b: Bench) -> list[Figure]:
    size = SIZE["quick" if b.quick else "full"]
    db, node, _names = _stack(b, size)
    rounds = b.reps(3, 5)
    agent_s, single_s, sched, renew = PassSamples(), PassSamples(), PassSamples(), PassSamples()
    ctl, a_engine, a_statements = _agent(db, node)
    try:
        with single_host(db) as (s_store, s_engine, rec):
            s_statements = statement_counter(s_store)
            agent_pass = _agent_pass(ctl)
            for _ in range(WARMUP):
                agent_pass()
                rec.reconcile()
            assert ctl.agent is not None
            ctl.agent.schedule()  # takes the scheduler lease; must find nothing to place
            for i in range(rounds):
                sides = ["agent", "single"] if i % 2 == 0 else ["single", "agent"]
                for side in sides:
                    if side == "agent":
                        _side_jobs(ctl, a_engine, a_statements, sched, renew)  # the lease renewed: 12 s ahead
                        idle_passes(a_engine, agent_pass, PASSES, agent_s, a_statements)
                    else:
                        idle_passes(s_engine, rec.reconcile, PASSES, single_s, s_statements)
                b.log(f"round {i + 1}/{rounds} ({' then '.join(sides)}): agent pass "
                      f"{median(agent_s.cpu[-PASSES:]):.1f} ms CPU, single-host pass "
                      f"{median(single_s.cpu[-PASSES:]):.1f} ms CPU")
    finally:
        _close(ctl)  # releases the node lease: the cross-check's daemon takes it at once
    daemon = _daemon_window(b, db, node)
    b.log(f"engine calls in {len(agent_s.calls)} agent passes: {dict(agent_s.per_kind)}; "
          f"single-host: {dict(single_s.per_kind)}")
    b.shared["nodes_api"] = {"agent_pass_calls": dict(agent_s.per_kind), "single_pass_calls": dict(single_s.per_kind),
                             "agent_statements": agent_s.statements, "single_statements": single_s.statements,
                             "services": size}
    n = len(agent_s.calls)
    peer = "single-host pass"
    svc = f"{size} services"
    return [
        Figure(NAME, f"engine API calls per idle agent pass (adapter), {svc}", median(agent_s.calls), "",
               peer + " (adapter)", median(single_s.calls), "1 list call per pass",
               median(agent_s.calls) == 1 and max(agent_s.calls) == 1 and min(agent_s.lists) == 1, n,
               f"max {max(agent_s.calls)}; single host max {max(single_s.calls)}"),
        Figure(NAME, "agent CPU per idle pass", median(agent_s.cpu), "ms", peer + " (CPU)", median(single_s.cpu),
               "< 30 ms", median(agent_s.cpu) < 30, n, "time.process_time() around the pass",
               p95=pct(agent_s.cpu, 95), peer_p95=pct(single_s.cpu, 95)),
        Figure(NAME, "agent wall time per idle pass", median(agent_s.wall), "ms", peer + " (wall)",
               median(single_s.wall), "", None, n, p95=pct(agent_s.wall, 95), peer_p95=pct(single_s.wall, 95)),
        Figure(NAME, "store queries per idle agent pass (SQLite)", median(agent_s.statements), "",
               peer, median(single_s.statements), "", None, n,
               f"SQL statements, BEGIN/COMMIT not counted; max {max(agent_s.statements)}"),
        Figure(NAME, "idle scheduler pass, CPU (the scheduling agent, once a second)", median(sched.cpu), "ms",
               "", None, "", None, len(sched.cpu),
               f"wall {median(sched.wall):.1f} ms; {max(sched.calls)} engine calls; "
               f"{median(sched.statements):.0f} store queries", p95=pct(sched.cpu, 95)),
        Figure(NAME, "node lease renewal, wall (every ttl/3)", median(renew.wall), "ms", "", None, "", None,
               len(renew.wall), f"CPU {median(renew.cpu):.1f} ms; {max(renew.calls)} engine calls; "
               f"{median(renew.statements):.0f} store queries", p95=pct(renew.wall, 95)),
        *daemon,
    ]
