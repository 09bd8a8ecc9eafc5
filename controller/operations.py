"""The use cases behind the CLI verbs (apply, diff, delete, status, ...), returning data.

The CLI only parses arguments and prints what these return. File reading happens
here (crd_like does no I/O).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from loguru import logger

from controller.actions import Action, describe
from controller.planner import PENDING, UPDATING, WAITING, Plan
from controller.render import DesiredService, prepare


def _reconciler(store: Store, engine: Engine, **kwargs: Any) -> Reconciler:
    from controller.reconciler import Reconciler

    return Reconciler(store, engine, **kwargs)
from crd_like import InvalidSpec, Issue, spec_hash
from crd_like.formats import LoadOptions, load_any
from crd_like.hashing import changed_fields
from store import AppliedChange, ResourceInput, Status, Store

if TYPE_CHECKING:  # the Docker SDK is imported only by verbs that talk to the engine
    from controller.engine import Engine
    from controller.reconciler import Reconciler

INLINE_LEASE_TTL = 30.0


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
                 profiles: tuple[str, ...] = ()) -> LoadOptions:
    """Input options with this process's environment and a file reader (for compose's
    ``.env``, ``env_file`` and secret/config files)."""
    return LoadOptions(fmt=fmt, project=project, allow_unsupported=allow_unsupported,  # type: ignore[arg-type]
                       environ=dict(os.environ), profiles=profiles, read_file=_read_bytes)


def load_models(files: list[str], opts: LoadOptions | None = None) -> list[Any]:
    opts = opts or load_options()
    resources = load_any(read_sources(files), opts)
    for w in opts.warnings:
        logger.warning(w)
    return resources


def load_inputs(files: list[str], opts: LoadOptions | None = None) -> list[ResourceInput]:
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


def check_graph(store: Store, inputs: list[ResourceInput], files: list[str], *, prune: bool, source: str) -> None:
    """Unknown dependencies and cycles are invalid input: raise before anything is written."""
    from crd_like.graph import problems
    from crd_like.loader import parse_documents

    graph: dict[str, list[str]] = {}
    for name, rec in store.desired().items():
        if prune and rec.source == source:
            continue
        graph[name] = list((rec.spec.get("dependsOn") or {}).keys())
    for res in inputs:
        graph[res.name] = list((res.spec.get("dependsOn") or {}).keys())
    found = problems(graph, set(graph))
    applied = {r.name for r in inputs}
    found = [p for p in found if p[0] in applied or p[1] in applied]
    if not found:
        return
    locations: dict[str, tuple[str, int | None]] = {}
    for raw, fname, _base in read_sources(files):
        try:
            for doc in parse_documents(raw, fname):
                name = (doc.data.get("metadata") or {}).get("name") if isinstance(doc.data, dict) else None
                if isinstance(name, str):
                    for dep in (doc.data.get("spec") or {}).get("dependsOn") or {}:
                        locations[f"{name}/{dep}"] = (fname, doc.line_of(("spec", "dependsOn", dep)))
                    locations.setdefault(name, (fname, doc.line_of(("metadata", "name"))))
        except InvalidSpec:
            continue
    issues = []
    for name, dep, message in found:
        fname, line = locations.get(f"{name}/{dep}") or locations.get(name) or ("<store>", None)
        issues.append(Issue(fname, line, f"{name}: spec.dependsOn.{dep}", message))
    raise InvalidSpec(issues)


def source_key(files: list[str]) -> str:
    return ",".join(sorted("-" if f == "-" else os.path.abspath(f) for f in files))


def holder_id(role: str) -> str:
    return f"{role}:{socket.gethostname()}:{os.getpid()}"


def holder_is_dead(holder: str) -> bool:
    """True only when the holder ran on this host and its process no longer exists."""
    try:
        _role, host, pid = holder.rsplit(":", 2)
        if host != socket.gethostname():
            return False
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except (ValueError, PermissionError, OSError):
        return False
    return False


@dataclass
class ApplyReport:
    changes: list[AppliedChange]
    plan: Plan | None = None
    done: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    delegated_to: str | None = None  # the daemon holding the lease
    converged: bool | None = None
    field_diffs: dict[str, list[str]] = field(default_factory=dict)


def _field_diffs(changes: list[AppliedChange]) -> dict[str, list[str]]:
    out = {}
    for ch in changes:
        if ch.change == "updated" and ch.old_spec is not None and ch.new_spec is not None:
            out[ch.name] = changed_fields(ch.old_spec, ch.new_spec)
    return out


def _would_be_desired(store: Store, inputs: list[ResourceInput], prune: bool, source: str) -> dict[str, DesiredService]:
    current = store.desired()
    out: dict[str, DesiredService] = {}
    for name, rec in current.items():
        if prune and rec.source == source and name not in {i.name for i in inputs}:
            continue
        out[name] = prepare(name, rec.kind, rec.generation, rec.spec, rec.suspended)
    for res in inputs:
        rec = current.get(res.name)
        gen = 1 if rec is None else rec.generation + (rec.spec_hash != res.spec_hash)
        out[res.name] = prepare(res.name, res.kind, gen, res.spec, rec.suspended if rec else False)
    return out


def apply(store: Store, engine: Engine, files: list[str], *, prune: bool = False, dry_run: bool = False,
          wait: bool = False, volumes: bool = False, timeout: float = 300.0, clock: Callable[[], float] = time.time,
          opts: LoadOptions | None = None) -> ApplyReport:
    inputs = load_inputs(files, opts)  # raises InvalidSpec before anything is touched
    source = source_key(files)
    check_graph(store, inputs, files, prune=prune, source=source)
    if dry_run:
        changes = store.apply(inputs, source=source, actor="cli", now=clock(), prune=prune, dry_run=True)
        rec = _reconciler(store, engine, actor="cli", clock=clock)
        try:
            result = rec.reconcile(dry_run=True, desired=_would_be_desired(store, inputs, prune, source))
        finally:
            rec.close()
        return ApplyReport(changes, result.plan, field_diffs=_field_diffs(changes))
    changes = store.apply(inputs, source=source, actor="cli", now=clock(), prune=prune)
    report = ApplyReport(changes, field_diffs=_field_diffs(changes))
    for ch in changes:
        if ch.change != "unchanged":
            logger.info(f"stored {ch.kind} {ch.name}: {ch.change} (generation {ch.generation})")
    pruned = {c.name for c in changes if c.change == "pruned"}
    names = {i.name for i in inputs} | pruned
    converge(store, engine, report, names=names, wait=wait, timeout=timeout, clock=clock)
    if volumes and pruned:
        remove_volumes(store, engine, pruned, report, clock)
    return report


def converge(store: Store, engine: Engine, report: ApplyReport, *, names: set[str] | None, wait: bool,
             timeout: float, clock: Callable[[], float] = time.time) -> None:
    """Act inline if no daemon holds the lease; otherwise leave it to the daemon."""
    holder = holder_id("cli")
    deadline = clock() + timeout
    lease = store.lease(now=clock())
    if lease is not None and lease[0] != holder and not holder_is_dead(lease[0]):
        report.delegated_to = lease[0]
        logger.info(f"a controller ({lease[0]}) holds the lease; it will converge the change")
        if wait:
            report.converged = wait_converged(store, names, deadline, clock)
        return
    if not store.acquire_lease(holder, ttl=INLINE_LEASE_TTL, now=clock()) and not (
            lease is not None and holder_is_dead(lease[0])
            and store.take_over_lease(holder, dead_holder=lease[0], ttl=INLINE_LEASE_TTL, now=clock())):
        report.delegated_to = (store.lease(now=clock()) or ("another controller", 0))[0]
        if wait:
            report.converged = wait_converged(store, names, deadline, clock)
        return
    rec = _reconciler(store, engine, actor="cli", clock=clock)
    try:
        while True:
            store.acquire_lease(holder, ttl=INLINE_LEASE_TTL, now=clock())  # renew during long applies
            result = rec.reconcile(only=names)
            report.plan = report.plan or result.plan
            report.done.extend(result.done)
            report.errors.extend(result.errors)
            if result.errors:
                break
            blocked = _blocked(result.plan)
            unsettled = [sp.name for sp in result.plan.services.values()
                         if sp.state in (WAITING, UPDATING, PENDING) and sp.name not in blocked]
            if not result.actions and not unsettled:
                if not wait or _all_converged(store, names):
                    report.converged = True if wait else None
                    break
            if clock() > deadline:
                report.converged = False
                if unsettled:
                    report.errors.append(f"timed out; still waiting: {', '.join(sorted(unsettled))}")
                break
            if not result.actions:
                time.sleep(0.3)
        rec.refresh_status(only=names)
        removed = rec.gc_networks()
        report.done.extend(f"removed network {n}: no desired service names it" for n in removed)
    finally:
        rec.close()
        store.release_lease(holder)


def _blocked(plan: Plan) -> set[str]:
    """Services that wait on something that will not change by itself: a dependency that
    failed, crash-loops or does not exist — directly or through other waiting services."""
    terminal = (": it failed", "does not exist", "crash-looping")
    waits = {sp.name: [w.split(" ", 1)[0] for w in sp.waiting_for] for sp in plan.services.values()}
    blocked = {sp.name for sp in plan.services.values() if any(m in w for w in sp.waiting_for for m in terminal)}
    blocked |= {sp.name for sp in plan.services.values() if sp.state in ("Failed", "CrashLoopBackOff")}
    changed = True
    while changed:
        changed = False
        for name, deps in waits.items():
            if name not in blocked and any(d in blocked for d in deps):
                blocked.add(name)
                changed = True
    return blocked


def refresh(store: Store, engine: Engine, names: set[str] | None) -> None:
    """Record current status without acting (when no controller runs)."""
    if store.lease(now=time.time()) is not None:
        return
    rec = _reconciler(store, engine, actor="cli")
    try:
        rec.refresh_status(only=names)
    finally:
        rec.close()


def _all_converged(store: Store, names: set[str] | None) -> bool:
    desired = store.desired()
    statuses = store.statuses()
    for name, rec in desired.items():
        if names is not None and name not in names:
            continue
        st = statuses.get(name)
        if rec.suspended:
            continue
        if st is None or st.observed_generation != rec.generation:
            return False
        if rec.spec.get("healthcheck") and st.health != "healthy":
            return False
    return True


def wait_converged(store: Store, names: set[str] | None, deadline: float, clock: Callable[[], float]) -> bool:
    while clock() < deadline:
        if _all_converged(store, names):
            return True
        time.sleep(0.2)
    return _all_converged(store, names)


def delete(store: Store, engine: Engine, name: str, *, volumes: bool = False,
           clock: Callable[[], float] = time.time) -> ApplyReport | None:
    gone = store.delete(name, actor="cli", now=clock())
    if gone is None:
        return None
    report = ApplyReport([AppliedChange(name, gone.kind, "deleted", gone.generation)])
    converge(store, engine, report, names={name}, wait=False, timeout=60, clock=clock)
    if volumes:
        remove_volumes(store, engine, {name}, report, clock)
    return report


def remove_volumes(store: Store, engine: Engine, names: set[str], report: ApplyReport,
                   clock: Callable[[], float] = time.time) -> None:
    """Remove the named volumes the controller created for these (deleted) services.
    Only with an explicit --volumes; says what it removes; audited."""
    from store import Event

    if report.delegated_to:
        deadline = clock() + 60
        while clock() < deadline and any(engine.list_owned(store.instance_id, n) for n in names):
            time.sleep(0.3)
    desired = store.desired()
    still_used = {v.split(":")[0] for rec in desired.values() for v in rec.spec.get("volumes") or []}
    events = []
    for name in sorted(names):
        for vol in engine.owned_volumes(store.instance_id, name):
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


def status_rows(store: Store) -> list[dict[str, Any]]:
    desired = store.desired()
    statuses = store.statuses()
    last = store.last_events(desired)
    rows = []
    for name, rec in sorted(desired.items()):
        st = statuses.get(name) or Status(name=name)
        ev = last.get(name)
        rows.append({
            "name": name, "kind": rec.kind, "generation": rec.generation,
            "observedGeneration": st.observed_generation,
            "state": "Suspended" if rec.suspended else st.state, "health": st.health,
            "healthCheckedBy": st.health_checked_by if rec.spec.get("healthcheck") else "",
            "containerId": st.container_id[:12], "restartCount": st.restart_count,
            "message": st.message,
            "nextAttemptAt": st.next_attempt_at if st.state == "CrashLoopBackOff" else None,
            "lastTransitionAt": st.last_transition_at or None,
            "lastEvent": None if ev is None else {"ts": ev.ts, "type": ev.type, "reason": ev.reason},
        })
    return rows


def plan_lines(plan: Plan) -> list[str]:
    return [describe(a) for a in plan.actions]


def action_list(actions: list[Action]) -> list[dict[str, Any]]:
    out = []
    for a in actions:
        d = {"action": type(a).__name__, **{k: v for k, v in a.__dict__.items()}}
        out.append(d)
    return out
