"""The no-op apply: answering an apply that changes nothing without SQLAlchemy, the
Docker SDK or a converge.

An apply whose every document is stored already (same kind, spec hash, metadata and
source), on a host that is converged, stores nothing and does nothing; the full path
(``operations.apply``: the store's transaction, the lease, inline passes) only finds that
out after importing SQLAlchemy's ORM and the Docker SDK and running two reconcile passes,
which was most of a no-op apply's time (docs/PERFORMANCE.md, "Issue #11, third round").

``unchanged_report`` decides it from the store's read path (``store.reader``: one query
for the records, one for the statuses) and, without a controller holding the lease, three
list calls over the engine's unix socket (``controller.engine_socket``: the store's
containers by label, the images, the store's networks). It runs the real planner and
status derivation on what they return, so "nothing to do" means what a pass would find:
no actions, no orphans, nothing waiting, no status that would change, no audit row to
write, no network to remove. Anything else (a change, a store that is not a plain SQLite
file at head, an engine not on a unix socket, referenced files or controller-run probes,
a rollout in flight, ...) answers None and the caller takes the full path, in one
transaction as before. Writes nothing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from controller.engine_socket import SocketEngine
    from controller.observed import Observed
    from controller.planner import Plan
    from controller.render import DesiredService
    from store.reader import SqliteReader
    from store.records import AppliedChange, Desired, ResourceInput, Status


def _dumps(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"))  # as store.repository stores it


def stored_unchanged(stored: dict[str, Desired], inputs: list[ResourceInput], source: str,
                     prune: bool) -> list[AppliedChange] | None:
    """The changes ``Store.apply`` would report when all are "unchanged" and it would write
    nothing (metadata and source as stored too, nothing to prune); else None."""
    from store.records import AppliedChange

    names = [r.name for r in inputs]
    if len(set(names)) != len(names):
        return None  # the same name twice: the full path's rules
    changes = []
    for res in inputs:
        rec = stored.get(res.name)
        if (rec is None or rec.kind != res.kind or rec.spec_hash != res.spec_hash or rec.source != source
                or _dumps(rec.metadata) != _dumps(res.metadata)):
            return None
        changes.append(AppliedChange(res.name, res.kind, "unchanged", rec.generation))
    if prune and any(rec.source == source and name not in set(names) for name, rec in stored.items()):
        return None
    return changes


@dataclass(frozen=True)
class Look:
    """What one look at the engine returned (three list calls)."""

    observed: list[Observed]
    image_ids: dict[str, str]
    image_builds: dict[str, str]
    networks: list[dict[str, Any]]


def look(engine: SocketEngine, instance: str) -> Look | None:
    from controller import labels as L
    from controller.observed import docker_state, from_list_entry, image_maps

    entries = engine.containers([f"{L.MANAGED}=true", f"{L.INSTANCE}={instance}"])
    images = engine.images() if entries is not None else None
    nets = engine.networks([f"{L.INSTANCE}={instance}"]) if images is not None else None
    if entries is None or images is None or nets is None:
        return None
    observed = [from_list_entry({**e, "State": docker_state(str(e.get("State") or ""))}) for e in entries]
    ids, builds = image_maps(images)
    return Look(observed, ids, builds, nets)


def prepared(stored: dict[str, Desired]) -> dict[str, DesiredService] | None:
    """The desired services as a pass prepares them; None when one mounts controller-written
    files or references files (the full pass writes or re-reads them)."""
    from controller.render import has_refs, prepare

    out = {}
    for name, rec in stored.items():
        svc = prepare(name, rec.kind, rec.generation, rec.spec, rec.suspended)
        if svc.spec.files or has_refs(svc.spec):
            return None
        out[name] = svc
    return out


def _settled(plan: Plan) -> bool:
    """No action, no orphan, nothing a pass would wait for (the full path's loop would go on)."""
    from controller.operations import _blocked
    from controller.planner import PENDING, UPDATING, WAITING

    if plan.actions:
        return False
    blocked = _blocked(plan)
    return not any(sp.state in (WAITING, UPDATING, PENDING) and sp.name not in blocked
                   for sp in plan.services.values())


def _probe_free(desired: dict[str, DesiredService], observed: list[Observed], engine: SocketEngine) -> bool:
    """``HealthChecks.observe`` would change nothing: no running container with a health
    check, or the engine runs them (Docker, not Podman) and none is still `starting` (the
    controller may take such a check over)."""
    probed = [c for c in observed if c.running and (hc := _healthcheck(desired, c)) is not None and hc.probes]
    if not probed:
        return True
    if any(c.health == "starting" for c in probed):
        return False
    v = engine.version()
    if v is None:
        return False
    comps = v.get("Components") or []
    name = str(comps[0].get("Name") or "") if comps else str((v.get("Platform") or {}).get("Name", ""))
    return bool(name) and "podman" not in name.lower()  # as Engine.runs_healthchecks


def _healthcheck(desired: dict[str, DesiredService], c: Observed) -> Any:
    svc = desired.get(c.service)
    return svc.spec.healthcheck if svc is not None else None


def _records_nothing(plan: Plan, desired: dict[str, DesiredService], observed: list[Observed],
                     statuses: dict[str, Status], now: float) -> bool:
    """Would recording this pass's observations write no status and no audit row?"""
    from controller import status as status_mod
    from controller.probes import ENGINE

    by_service: dict[str, list[Observed]] = {}
    for c in observed:
        by_service.setdefault(c.service, []).append(c)
    for name, sp in plan.services.items():
        old = statuses.get(name)
        mine = by_service.get(name, [])
        new = status_mod.derive(old, sp, desired[name], mine, now, ENGINE)
        notes = status_mod.transitions(old, sp, desired[name], mine)
        if notes or status_mod.changed(old, new):
            return False
    return True


def _no_drift_revisions(desired: dict[str, DesiredService], observed: list[Observed],
                        statuses: dict[str, Status]) -> bool:
    """The planner needs no older revision: no rollout in flight, every container current."""
    for name, st in statuses.items():
        svc = desired.get(name)
        if svc and st.rollout_from_generation and st.rollout_from_generation != svc.generation:
            return False
    return all(c.service in desired and c.spec_hash == desired[c.service].container_hash for c in observed)


def _networks_kept(desired: dict[str, DesiredService], networks: list[dict[str, Any]]) -> bool:
    """``Reconciler.gc_networks`` would remove none of these networks."""
    wanted = {n for svc in desired.values() for n in [*svc.spec.networks, *svc.spec.networkSpecs]}
    return all(net.get("Name", "") in wanted or net.get("Containers") for net in networks)


def converged_plan(reader: SqliteReader, engine: SocketEngine, names: set[str],
                   clock: Callable[[], float] = time.time) -> Plan | None:
    """The plan of a pass over ``names`` when it would act on nothing and record nothing;
    None when a real pass is needed (or cannot be ruled out)."""
    from controller import planner
    from controller.render_net import with_peers

    instance = reader.instance_id()
    if instance is None:
        return None
    stored = reader.desired()
    desired = prepared(stored)
    seen = look(engine, instance) if desired is not None else None
    if desired is None or seen is None or not _probe_free(desired, seen.observed, engine):
        return None
    ids = [c.id for c in seen.observed]
    if set(ids) - reader.containers_with_events(ids, ("Created", "Recreated")):
        return None  # a container to adopt: the full pass records it
    statuses = reader.statuses()
    if not _no_drift_revisions(desired, seen.observed, statuses):
        return None
    desired = with_peers(desired, seen.observed)
    now = clock()
    plan = planner.plan(desired, seen.observed, statuses, now=now, only=names,
                        lookups=planner.Lookups(image_ids=seen.image_ids, image_builds=seen.image_builds))
    if not _settled(plan) or not _records_nothing(plan, desired, seen.observed, statuses, now):
        return None
    if not _networks_kept(desired, seen.networks):
        return None
    return plan
