"""The use cases behind the CLI verbs (apply, diff, delete, status, ...), returning data.

The CLI only parses arguments and prints what these return. File reading happens
here (crd_like does no I/O).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any, Protocol

from controller.lease import Lease, holder_id, holder_is_dead
from controller.overview import status_rows as status_rows  # the read verbs call it as ops.status_rows
from crd_like.errors import InvalidSpec, Issue

# Heavy imports (loguru, pydantic models, the planner, SQLAlchemy, the Docker SDK) are made
# inside the functions that need them: `status` and the other read verbs import this module
# and must not pay for what only apply and converge use (python -X importtime).
if TYPE_CHECKING:
    from controller.actions import Action
    from controller.engine import Engine
    from controller.planner import Plan
    from controller.reconciler import PassResult, Reconciler
    from controller.render import DesiredService
    from controller.waiting import Goal, Verdict
    from crd_like.formats import LoadOptions
    from store import Store
    from store.reader import Reader, SqliteReader
    from store.records import AppliedChange, ResourceInput


class Handles(Protocol):
    """What an operation opens lazily (the CLI's ``Ctx``): the full store, the read path
    (``store.reader.open_reader``), the engine adapter, and where they are."""

    db: str | None
    host: str | None
    context: str | None

    @property
    def store(self) -> Store: ...
    @property
    def reader(self) -> Reader: ...
    @property
    def engine(self) -> Engine: ...


def reconciler(store: Store, engine: Engine, **kwargs: Any) -> Reconciler:
    from controller.reconciler import Reconciler, ReconcilerConfig

    return Reconciler(store, engine, ReconcilerConfig(**kwargs))


INLINE_LEASE_TTL = 30.0
# an inline converge renews the lease at most this often (was: every pass, a write each);
# a pass may then take up to TTL - RENEW before the claim lapses, as it could take TTL before
INLINE_LEASE_RENEW = INLINE_LEASE_TTL / 6


def read_sources(files: list[str]) -> list[tuple[bytes, str, str]]:
    out, issues = [], []
    for f in files:
        try:
            if f == "-":
                import sys

                raw, base = sys.stdin.buffer.read(), os.getcwd()
            else:
                with open(f, "rb") as fh:
                    raw = fh.read(64 * 1024 * 1024 + 1)
                base = os.path.dirname(os.path.abspath(f))
        except OSError as exc:
            issues.append(Issue(f, None, "", f"cannot read file: {exc.strerror}"))
            continue
        out.append((raw, f, base))
    if issues:
        raise InvalidSpec(issues)
    return out


def _read_bytes(path: str) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(64 * 1024 * 1024)


def load_options(*, fmt: str = "auto", project: str | None = None, allow_unsupported: bool = False,
                 profiles: tuple[str, ...] = (), project_dir: str | None = None,
                 env_files: tuple[str, ...] = ()) -> LoadOptions:
    """Input options with this process's environment and a file reader (for compose's
    ``.env``, ``env_file`` and secret/config files)."""
    from crd_like.formats import LoadOptions

    return LoadOptions(fmt=fmt, project=project, allow_unsupported=allow_unsupported,  # type: ignore[arg-type]
                       environ=dict(os.environ), profiles=profiles, read_file=_read_bytes,
                       project_dir=os.path.abspath(project_dir) if project_dir else None,
                       env_files=tuple(os.path.abspath(f) for f in env_files))


def load_models(files: list[str], opts: LoadOptions | None = None) -> list[Any]:
    from crd_like.formats import load_any

    opts = opts or load_options()
    try:
        return load_any(read_sources(files), opts)
    finally:  # also when the conversion fails: the warnings say what was dropped on the way
        if opts.warnings:
            from loguru import logger

            for w in opts.warnings:
                logger.warning(w)


def load_inputs(files: list[str], opts: LoadOptions | None = None) -> list[ResourceInput]:
    from crd_like.hashing import spec_hash
    from store.records import ResourceInput

    resources = load_models(files, opts)
    return [
        ResourceInput(
            name=r.metadata.name, kind=r.kind, api_version=r.apiVersion,
            spec=r.spec.model_dump(mode="json", exclude_defaults=True),
            metadata=r.metadata.model_dump(mode="json", exclude_defaults=True),
            spec_hash=spec_hash(r.spec),
        )
        for r in resources
    ]


def check_graph(store: Reader, inputs: list[ResourceInput], files: list[str], *, prune: bool, source: str) -> None:
    """Unknown dependencies and cycles are invalid input: raise before anything is written."""
    from crd_like.graph import problems

    graph: dict[str, list[str]] = {}
    for name, rec in store.desired().items():
        if prune and rec.source == source:
            continue
        graph[name] = _requires(rec.spec)
    for res in inputs:
        graph[res.name] = _requires(res.spec)
    applied = {r.name for r in inputs}
    found = [p for p in problems(graph, set(graph)) if p[0] in applied or p[1] in applied]
    if not found:
        return
    locations = _dependency_locations(files)
    issues = []
    for name, dep, message in found:
        fname, line = locations.get(f"{name}/{dep}") or locations.get(name) or ("<store>", None)
        issues.append(Issue(fname, line, f"{name}: spec.dependsOn.{dep}", message))
    raise InvalidSpec(issues)


def _dependency_locations(files: list[str]) -> dict[str, tuple[str, int | None]]:
    """Where each document's name ("NAME") and each of its dependencies ("NAME/DEP") is
    written in FILEs: (file, line), for the error messages of ``check_graph``."""
    from crd_like.loader import parse_documents

    locations: dict[str, tuple[str, int | None]] = {}
    for raw, fname, _base in read_sources(files):
        try:
            docs = parse_documents(raw, fname)
        except InvalidSpec:
            continue
        for doc in docs:
            data = doc.data if isinstance(doc.data, dict) else {}
            meta = (data.get("metadata") or {}).get("name")
            if not isinstance(meta, str):
                continue
            for dep in (data.get("spec") or {}).get("dependsOn") or {}:
                locations[f"{meta}/{dep}"] = (fname, doc.line_of(("spec", "dependsOn", dep)))
            locations.setdefault(meta, (fname, doc.line_of(("metadata", "name"))))
    return locations


def _requires(spec: dict[str, Any]) -> list[str]:
    """dependsOn plus the services networkMode / volumesFrom / links refer to."""
    from crd_like.spec_net import service_refs

    return list(dict.fromkeys([*(spec.get("dependsOn") or {}).keys(), *service_refs(spec)]))


def check_shared(store: Reader, inputs: list[ResourceInput], files: list[str], *, prune: bool, source: str) -> None:
    """What resources share on the host must agree (container names, network and volume
    definitions): raise before anything is written."""
    from crd_like.spec_net import shared_problems

    specs = {name: rec.spec for name, rec in store.desired().items() if not (prune and rec.source == source)}
    specs.update({res.name: res.spec for res in inputs})
    applied = {r.name for r in inputs}
    found = [p for p in shared_problems(specs) if p[0] in applied]
    if found:
        raise InvalidSpec([Issue(", ".join(files), None, f"{name}: {fld}", msg) for name, fld, msg in found])


def check_externals(engine: Engine, inputs: list[ResourceInput], files: list[str]) -> None:
    """External networks and volumes must exist (reconcile never creates them): a clear
    error before anything is stored."""
    issues = []
    where = ", ".join(files)
    for res in inputs:
        for kind, key, exists in (("network", "networkSpecs", engine.network_exists),
                                  ("volume", "volumeSpecs", engine.volume_exists)):
            for name, spec in sorted((res.spec.get(key) or {}).items()):
                if (spec or {}).get("external") and not exists(name):
                    issues.append(Issue(where, None, f"{res.name}: spec.{key}.{name}",
                                        f"external {kind} {name!r} does not exist: reconcile never creates an "
                                        f"external {kind}; create it first (docker {kind} create {name})"))
    if issues:
        raise InvalidSpec(issues)


def external_names(specs: list[dict[str, Any]]) -> tuple[set[str], set[str]]:
    """(networks, volumes) these specs mark external: never removed by reconcile."""
    nets = {n for s in specs for n, v in (s.get("networkSpecs") or {}).items() if (v or {}).get("external")}
    vols = {n for s in specs for n, v in (s.get("volumeSpecs") or {}).items() if (v or {}).get("external")}
    return nets, vols


def source_key(files: list[str]) -> str:
    return ",".join(sorted("-" if f == "-" else os.path.abspath(f) for f in files))


@dataclass
class ApplyReport:
    changes: list[AppliedChange]
    plan: Plan | None = None
    done: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    delegated_to: str | None = None  # the daemon holding the lease
    converged: bool | None = None
    verdict: Verdict | None = None  # with wait: the decided (or timed-out) outcome
    field_diffs: dict[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class RunOptions:
    """How an operation converges: whether (and how long) it waits for the outcome, the
    clock, and who is told about each verdict (the CLI's progress lines)."""

    wait: bool = False
    timeout: float = 300.0
    clock: Callable[[], float] = time.time
    on_progress: Callable[[Verdict], None] | None = None


@dataclass(frozen=True)
class ApplyOptions:
    """What `apply` does besides storing: prune, dry run, remove pruned volumes; and how it
    converges (``run``)."""

    prune: bool = False
    dry_run: bool = False
    volumes: bool = False
    run: RunOptions = RunOptions()
    node: str | None = None  # many hosts: where the resources without placement run (apply --node)


@dataclass(frozen=True)
class WaitFor:
    """A wait on the recorded statuses: for which names (None: all), until when, for what;
    ``observe`` (when no controller runs) records fresh status before each look."""

    names: set[str] | None
    deadline: float
    goal: Goal = "healthy"
    clock: Callable[[], float] = time.time
    on_progress: Callable[[Verdict], None] | None = None
    observe: Callable[[], None] | None = None
    interval: float = 0.2


def _field_diffs(changes: list[AppliedChange]) -> dict[str, list[str]]:
    from crd_like.hashing import changed_fields

    out = {}
    for ch in changes:
        if ch.change == "updated" and ch.old_spec is not None and ch.new_spec is not None:
            out[ch.name] = changed_fields(ch.old_spec, ch.new_spec)
    return out


def _would_be_desired(store: Store, inputs: list[ResourceInput], prune: bool, source: str) -> dict[str, DesiredService]:
    from controller.render import prepare

    current = store.desired()
    out: dict[str, DesiredService] = {}
    for name, rec in current.items():
        if prune and rec.source == source and name not in {i.name for i in inputs}:
            continue
        out[name] = prepare(name, rec.kind, rec.generation, rec.spec, rec.suspended)
    for res in inputs:
        old = current.get(res.name)
        gen = 1 if old is None else old.generation + (old.spec_hash != res.spec_hash)
        out[res.name] = prepare(res.name, res.kind, gen, res.spec, old.suspended if old else False)
    return out


def apply(at: Handles, files: list[str], *, opts: LoadOptions | None = None,
          how: ApplyOptions = ApplyOptions()) -> ApplyReport:
    """Validate FILEs, store them (one transaction) and converge (or, with dry_run, plan only)."""
    opts = opts or load_options()
    inputs = load_inputs(files, opts)  # raises InvalidSpec before anything is touched
    if opts.deferred:  # what `docker compose up` would fail on (warned at load): nothing is applied
        raise InvalidSpec(list(opts.deferred))
    source = source_key(files)
    notifiers = [i for i in inputs if i.kind == "Notifier"]
    if notifiers:  # not workloads: their own table, nothing to converge (crd_like.notifier)
        inputs = [i for i in inputs if i.kind != "Notifier"]
        noted = _apply_notifiers(at.store, notifiers, source, how)
        if not inputs and not how.prune:
            return ApplyReport(noted)
        report = apply_workloads(at, files, inputs, source, how)
        report.changes[:0] = noted
        return report
    return apply_workloads(at, files, inputs, source, how)


def _apply_notifiers(store: Store, inputs: list[ResourceInput], source: str, how: ApplyOptions) -> list[AppliedChange]:
    from store.notify import NotifyStore

    clash = sorted(set(store.desired()) & {i.name for i in inputs})
    if clash:
        raise InvalidSpec([Issue("<store>", None, "metadata.name",
                                 f"{n!r} names a stored service or job; a Notifier needs a name of its own")
                           for n in clash])
    changes = NotifyStore(store).put(inputs, source=source, actor="cli", now=how.run.clock(), dry_run=how.dry_run)
    if not how.dry_run:
        _log_changes(changes)
    return changes


def apply_workloads(at: Handles, files: list[str], inputs: list[ResourceInput], source: str,
                    how: ApplyOptions) -> ApplyReport:
    """The services and jobs of an apply: store them and converge (or plan, with dry_run)."""
    if how.node:
        inputs = on_node(inputs, how.node)
    if not how.dry_run:
        quick = _unchanged(at, inputs, files, source, how)
        if quick is not None:
            return quick
    store, engine = at.store, at.engine
    check_graph(store, inputs, files, prune=how.prune, source=source)
    check_shared(store, inputs, files, prune=how.prune, source=source)
    check_externals(engine, inputs, files)
    clock = how.run.clock
    if how.dry_run:
        return _dry_run(store, engine, inputs, source, how)
    changes = store.apply(inputs, source=source, actor="cli", now=clock(), prune=how.prune)
    report = ApplyReport(changes, field_diffs=_field_diffs(changes))
    _log_changes(changes)
    pruned = {c.name for c in changes if c.change == "pruned"}
    converge(store, engine, report, names={i.name for i in inputs} | pruned, how=how.run)
    if how.volumes and pruned:
        remove_volumes(store, engine, pruned, report, clock,
                       gone_specs=[c.old_spec for c in changes if c.change == "pruned" and c.old_spec])
    return report


def on_node(inputs: list[ResourceInput], node: str) -> list[ResourceInput]:
    """``apply --node NAME``: the resources without a ``placement`` of their own run on NAME
    (``metadata.node``, read by ``controller.scheduler.request``; not part of the spec hash)."""
    return [replace(r, metadata={**r.metadata, "node": node}) if not r.spec.get("placement") else r for r in inputs]


def _unchanged(at: Handles, inputs: list[ResourceInput], files: list[str], source: str,
               how: ApplyOptions) -> ApplyReport | None:
    """The report of an apply that changes nothing, found without the full store, the engine
    adapter or a converge (``controller.unchanged``); None: take the full path."""
    from controller.unchanged import converged_plan, stored_unchanged

    reader = _sqlite_reader(at)
    if reader is None or any(_has_external(r.spec) for r in inputs):
        return None
    changes = stored_unchanged(reader.desired(), inputs, source, how.prune)
    if changes is None:
        return None
    check_graph(reader, inputs, files, prune=how.prune, source=source)
    check_shared(reader, inputs, files, prune=how.prune, source=source)
    report, run, names = ApplyReport(changes), how.run, {i.name for i in inputs}
    row = reader.lease(now=run.clock())
    if row is not None and not holder_is_dead(row[0]):  # a controller converges: as ``converge``
        return _delegated(reader, report, names, run, row[0])
    from controller.engine_socket import SocketEngine
    from controller.versions import engine_socket

    sock = engine_socket(at.host, at.context)
    plan = converged_plan(reader, SocketEngine(sock[0]), names, run.clock) if sock else None
    if plan is None:
        return None
    report.plan = plan
    if run.wait:
        v = outcome(reader, names)
        if not v.done:
            return None
        if run.on_progress:
            run.on_progress(v)
        report.converged, report.verdict = True, v
    return report


def _sqlite_reader(at: Handles) -> SqliteReader | None:
    """The stdlib read path of a SQLite store file that exists and is at head, else None
    (another database, or a store still to create or migrate: the full path opens it once)."""
    from store.location import default_url, plain_sqlite_file, to_url
    from store.reader import SqliteReader

    path = plain_sqlite_file(to_url(at.db) if at.db else default_url())
    if path is None or not os.path.isfile(path):
        return None
    reader = at.reader
    return reader if isinstance(reader, SqliteReader) else None


def _delegated(reader: Reader, report: ApplyReport, names: set[str], run: RunOptions, holder: str) -> ApplyReport:
    """A controller holds the lease: it converges; with wait, follow the recorded statuses."""
    from loguru import logger

    logger.info(f"a controller ({holder}) holds the lease; it will converge the change")
    report.delegated_to = holder
    if run.wait:
        wait_outcome(reader, report, WaitFor(names, run.clock() + run.timeout, clock=run.clock,
                                             on_progress=run.on_progress))
    return report


def _has_external(spec: dict[str, Any]) -> bool:
    return any((v or {}).get("external") for key in ("networkSpecs", "volumeSpecs")
               for v in (spec.get(key) or {}).values())


def _dry_run(store: Store, engine: Engine, inputs: list[ResourceInput], source: str, how: ApplyOptions) -> ApplyReport:
    """What apply would store and do: the changes (rolled back) and the plan; nothing acts."""
    clock = how.run.clock
    changes = store.apply(inputs, source=source, actor="cli", now=clock(), prune=how.prune, dry_run=True)
    rec = reconciler(store, engine, actor="cli", clock=clock)
    try:
        result = rec.reconcile(dry_run=True, desired=_would_be_desired(store, inputs, how.prune, source))
    finally:
        rec.close()
    return ApplyReport(changes, result.plan, field_diffs=_field_diffs(changes))


def _log_changes(changes: list[AppliedChange]) -> None:
    if all(ch.change == "unchanged" for ch in changes):
        return
    from loguru import logger

    for ch in changes:
        if ch.change != "unchanged":
            logger.info(f"stored {ch.kind} {ch.name}: {ch.change} (generation {ch.generation})")


def converge(store: Store, engine: Engine, report: ApplyReport, *, names: set[str] | None,
             how: RunOptions = RunOptions()) -> None:
    """Act inline if no daemon holds the lease; otherwise leave it to the daemon. With
    nodes registered (many hosts), the node agents converge: nothing acts inline."""
    from loguru import logger

    if store.nodes.count():
        logger.info("nodes are registered: their agents converge the change")
        report.delegated_to = "the node agents"
        if how.wait:
            wait_outcome(store, report, WaitFor(names, how.clock() + how.timeout, clock=how.clock,
                                                on_progress=how.on_progress))
        return

    lease = Lease(store, holder_id("cli"), INLINE_LEASE_TTL, how.clock)
    deadline = how.clock() + how.timeout
    other = lease.other_live_holder()
    if other:
        logger.info(f"a controller ({other}) holds the lease; it will converge the change")
    else:
        claimed_at = how.clock()
        claim = lease.claim()
        if claim.held:
            _InlineConverge(store, engine, report, names, how, lease, claimed_at).run(deadline)
            return
        other = claim.other or "another controller"
    report.delegated_to = other
    if how.wait:
        wait_outcome(store, report, WaitFor(names, deadline, clock=how.clock, on_progress=how.on_progress))


@dataclass
class _InlineConverge:
    """An inline converge while this process holds the lease: passes until nothing is left
    to do (or, with wait, until the outcome is decided), waking on the engine's events."""

    store: Store
    engine: Engine
    report: ApplyReport
    names: set[str] | None
    how: RunOptions
    lease: Lease
    renewed: float  # when the lease was last claimed (how.clock)
    wake: EngineWakeups | None = None

    def run(self, deadline: float) -> None:
        names = self.names
        rec = reconciler(self.store, self.engine, actor="cli", clock=self.how.clock, workers=inline_workers(
            {n: r.spec for n, r in self.store.desired().items() if names is None or n in names}))
        try:
            while not self._step(rec, deadline):
                pass
            if not self.report.converged:
                # after acting, record what the engine shows now; a converged wait has just
                # decided from statuses a pass without actions recorded: nothing new to see
                rec.refresh_status(only=names)
            removed = rec.gc_networks()
            self.report.done.extend(f"removed network {n}: no desired service names it" for n in removed)
        finally:
            if self.wake is not None:
                self.wake.close()
            rec.close()
            self.lease.release()

    def _step(self, rec: Reconciler, deadline: float) -> bool:
        """One pass; True when the converge is over."""
        pass_started = self.how.clock()
        if self.wake is not None:
            self.wake.clear()  # an event from here on means the next pass may find something new
        if pass_started - self.renewed >= INLINE_LEASE_RENEW:  # renew during long applies
            self.lease.claim()
            self.renewed = pass_started
        result = rec.reconcile(only=self.names)
        report = self.report
        report.plan = report.plan or result.plan
        report.done.extend(result.done)
        report.errors.extend(result.errors)
        if self._decided(result) or self._finished(result, deadline):
            return True
        if not result.actions:
            # waiting for the engine (a start, a health probe, a dependency): wake on its
            # next event for these containers, at the latest after 0.3 s
            if self.wake is None:
                self.wake = EngineWakeups(self.engine, rec.instance, since=pass_started)
            self.wake.wait(0.3)
        return False

    def _decided(self, result: PassResult) -> bool:
        """With wait: the outcome (from the recorded statuses, typed reasons, as when a
        controller converges) is decided, or a pass failed."""
        if not self.how.wait:
            return False
        v = outcome(self.store, self.names)
        if self.how.on_progress:
            self.how.on_progress(v)
        if v.blocked or (v.done and not result.actions):
            self.report.converged, self.report.verdict = not v.blocked, v
            return True
        if result.errors:
            self.report.converged, self.report.verdict = False, outcome(self.store, self.names)
            return True
        return False

    def _finished(self, result: PassResult, deadline: float) -> bool:
        """Without wait: a failure, or nothing left to do or to wait for; either way: the deadline."""
        if result.errors and not self.how.wait:
            return True
        from controller.planner import PENDING, UPDATING, WAITING

        blocked = _blocked(result.plan)
        unsettled = [sp.name for sp in result.plan.services.values()
                     if sp.state in (WAITING, UPDATING, PENDING) and sp.name not in blocked]
        if not self.how.wait and not result.actions and not unsettled:
            return True
        if self.how.clock() <= deadline:
            return False
        report = self.report
        report.converged = False if self.how.wait else None
        report.verdict = outcome(self.store, self.names) if self.how.wait else None
        if unsettled and not self.how.wait:
            report.errors.append(f"timed out; still waiting: {', '.join(sorted(unsettled))}")
        return True


INLINE_WORKERS_MIN, INLINE_WORKERS_MAX = 4, 16


def inline_workers(specs: dict[str, dict[str, Any]]) -> int:
    """Workers for an inline converge of these specs: the width of the widest dependency
    layer (a layer's services become ready together, and each waits for a free worker
    otherwise), at least 4 (the daemon's default), at most 16. Cycles are refused before
    this runs; a dependency outside ``specs`` is already converged and does not count."""
    depth: dict[str, int] = {}

    def layer(name: str, seen: frozenset[str]) -> int:
        if name not in depth:
            deps = [d for d in (specs[name].get("dependsOn") or {}) if d in specs and d not in seen]
            depth[name] = 1 + max((layer(d, seen | {name}) for d in deps), default=-1)
        return depth[name]

    widths: dict[int, int] = {}
    for name in specs:
        level = layer(name, frozenset())
        widths[level] = widths.get(level, 0) + 1
    return max(INLINE_WORKERS_MIN, min(INLINE_WORKERS_MAX, max(widths.values(), default=0)))


class EngineWakeups:
    """Wakes an inline converge when the engine reports an event for this store's containers
    (start, die, health_status, ...: ``engine.WATCHED_EVENTS``), instead of a blind sleep
    between passes. A thread reads the engine's event stream (from ``since``, so nothing
    between the pass and the stream is missed) and sets a flag; ``close`` ends the stream.
    Without a stream (the engine refused it), ``wait`` is the plain bounded sleep it
    replaces."""

    def __init__(self, engine: Engine, instance: str, *, since: float):
        self._flag = threading.Event()
        self._lock = threading.Lock()
        self._closed = False
        self._end: Callable[[], None] | None = None
        self._thread = threading.Thread(target=self._read, args=(engine, instance, int(since)),
                                        name="reconcile-wakeups", daemon=True)
        self._thread.start()

    def _read(self, engine: Engine, instance: str, since: int) -> None:
        from controller.engine import watched_action

        try:
            stream, end = engine.open_events(instance, since=since)
        except Exception:  # noqa: BLE001 - no stream: the bounded sleep alone
            return
        with self._lock:
            self._end = end
            closed = self._closed
        if closed:
            end()
            return
        for event in stream:
            if watched_action(event):  # not a health probe's exec: it changes nothing
                self._flag.set()
            if self._closed:
                return

    def clear(self) -> None:
        self._flag.clear()

    def wait(self, timeout: float) -> bool:
        return self._flag.wait(timeout)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            end = self._end
        if end is not None:
            try:
                end()
            except Exception:  # noqa: BLE001 - already closed
                pass
        self._thread.join(timeout=1.0)


def _blocked(plan: Plan) -> set[str]:
    """Services that wait on something that will not change by itself: those the plan marks
    ``stuck`` (from its typed state, reason and unmet dependencies, never its messages), and
    those that wait for a blocked service, transitively."""
    blocked = {sp.name for sp in plan.services.values() if sp.stuck}
    waits = {sp.name: [u.dependency for u in sp.waiting_on] for sp in plan.services.values()}
    changed = True
    while changed:
        changed = False
        for name, deps in waits.items():
            if name not in blocked and any(d in blocked for d in deps):
                blocked.add(name)
                changed = True
    return blocked


def refresh(store: Store, engine: Engine, names: set[str] | None) -> None:
    """Record current status without acting (when no controller runs; never with nodes
    registered: each node's agent records what its engine runs)."""
    if store.lease(now=time.time()) is not None or store.nodes.count():
        return
    rec = reconciler(store, engine, actor="cli")
    try:
        rec.refresh_status(only=names)
    finally:
        rec.close()


def outcome(store: Reader, names: set[str] | None, goal: Goal = "healthy") -> Verdict:
    """The wait's verdict now. For healthy/completed, names no longer desired (pruned by
    this apply, deleted meanwhile) are not waited for."""
    from controller.waiting import verdict

    desired = store.desired()
    if names is not None and goal != "deleted":
        names = names & set(desired)
    return verdict(desired, store.statuses(), names, goal)


def wait_outcome(store: Reader, report: ApplyReport, w: WaitFor) -> None:
    """Poll the recorded statuses until the outcome is decided (reached, or impossible) or
    the deadline passes; ``w.observe`` (when no controller runs) records fresh status first."""
    while True:
        if w.observe is not None:
            w.observe()
        v = outcome(store, w.names, w.goal)
        if w.on_progress:
            w.on_progress(v)
        if v.decided or w.clock() >= w.deadline:
            report.verdict, report.converged = v, v.done
            return
        time.sleep(w.interval)


def blocked_details(store: Store, engine: Engine, v: Verdict, lines: int = 10) -> dict[str, str]:
    """The last log lines of each blocking service's container (or its last recorded output)."""
    out: dict[str, str] = {}
    for cause in v.causes():
        text = ""
        if cause.container_id:
            try:
                text = engine.logs_tail(cause.container_id, lines).strip()
            except Exception:  # noqa: BLE001 - the container may be gone; fall back to the audit
                text = ""
        if not text:
            for ev in reversed(store.history(cause.service, limit=20)):
                if ev.message.startswith("output tail: "):
                    text = ev.message[len("output tail: "):]
                    break
        if text:
            out[cause.service] = text
    return out


def delete(store: Store, engine: Engine, name: str, *, volumes: bool = False,
           clock: Callable[[], float] = time.time) -> ApplyReport | None:
    gone = store.delete(name, actor="cli", now=clock())
    if gone is None:
        return None
    from store.records import AppliedChange

    report = ApplyReport([AppliedChange(name, gone.kind, "deleted", gone.generation)])
    converge(store, engine, report, names={name}, how=RunOptions(timeout=60, clock=clock))
    if volumes:
        remove_volumes(store, engine, {name}, report, clock, gone_specs=[gone.spec])
    return report


def delete_many(store: Store, engine: Engine, names: list[str], *, volumes: bool = False,
                clock: Callable[[], float] = time.time) -> tuple[ApplyReport, list[str]]:
    """Delete several records, then converge them away in one pass. (report, unknown names)."""
    from store.records import AppliedChange

    changes, unknown, gone_specs = [], [], []
    for name in names:
        gone = store.delete(name, actor="cli", now=clock())
        if gone is None:
            unknown.append(name)
        else:
            changes.append(AppliedChange(name, gone.kind, "deleted", gone.generation))
            gone_specs.append(gone.spec)
    report = ApplyReport(changes)
    deleted = {c.name for c in changes}
    if deleted:
        converge(store, engine, report, names=deleted, how=RunOptions(timeout=120, clock=clock))
        if volumes:  # never a volume marked external (the deleted specs say which)
            remove_volumes(store, engine, deleted, report, clock, gone_specs=gone_specs)
    return report, unknown


def remove_volumes(store: Store, engine: Engine, names: set[str], report: ApplyReport,
                   clock: Callable[[], float] = time.time, gone_specs: list[dict[str, Any]] | None = None) -> None:
    """Remove the named volumes the controller created for these (deleted) services.
    Only with an explicit --volumes; says what it removes; audited. Volumes marked
    external (by a desired spec or ``gone_specs``, the deleted ones) are never removed."""
    from store import Event

    gone_specs = gone_specs or []
    if report.delegated_to:
        deadline = clock() + 60
        while clock() < deadline and any(engine.list_owned(store.instance_id, n) for n in names):
            time.sleep(0.3)
    desired = store.desired()
    still_used = {v.split(":")[0] for rec in desired.values() for v in rec.spec.get("volumes") or []}
    external = external_names([rec.spec for rec in desired.values()] + gone_specs)[1]
    events = []
    for name in sorted(names):
        for vol in engine.owned_volumes(store.instance_id, name):
            if vol in external:
                report.done.append(f"kept volume {vol}: it is external (reconcile never removes it)")
                continue
            if vol in still_used:
                report.done.append(f"kept volume {vol}: still used by another service")
                continue
            try:
                engine.remove_volume(vol)
            except Exception as exc:  # noqa: BLE001 - report and go on with the others
                report.errors.append(f"cannot remove volume {vol}: {exc}")
                continue
            report.done.append(f"removed volume {vol} (--volumes)")
            events.append(Event(ts=clock(), service=name, type="VolumeRemoved", reason="--volumes given",
                                message=f"named volume {vol} and its data removed", actor="cli"))
    store.record(events)


def plan_lines(plan: Plan) -> list[str]:
    from controller.actions import describe

    return [describe(a) for a in plan.actions]


def action_list(actions: list[Action]) -> list[dict[str, Any]]:
    out = []
    for a in actions:
        shown = [f.name for f in fields(a) if f.metadata.get("shown", True)]
        d = {"action": type(a).__name__, **{k: getattr(a, k) for k in shown}}
        out.append(d)
    return out
