"""Every stored resource as one row of what the read verbs and the status page show:
state, health, restarts, last event and its reason (``reconcile status``, ``get``,
``describe`` and the status page's service list are the same rows).

Reads through a ``store.reader.Reader`` (the CLI's fast read path or the full ``Store``);
imports nothing heavy, no engine, no SQLAlchemy. No secret value is in a row: only the
image, ports and labels of a spec are copied, never its env or files.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from store.records import Desired, Event, Status


class RowSource(Protocol):
    """The reads the rows need (``store.reader.Reader`` and ``Store`` have them)."""

    def desired(self) -> Mapping[str, Desired]: ...
    def statuses(self) -> Mapping[str, Status]: ...
    def last_events(self, names: Iterable[str]) -> Mapping[str, Event]: ...


def placement_of(store: Any) -> dict[str, dict[str, Any]]:
    """Per service, where its replicas are placed and why one is not (many hosts):
    ``{"assignments": [{"replica", "node", "reason"}], "pending": REASON or None}``.
    Empty for a source without assignments (a single host, the status page's one-row view)."""
    rows = store.placements() if hasattr(store, "placements") else []
    out: dict[str, dict[str, Any]] = {}
    for service, replica, node, reason in rows:
        entry = out.setdefault(service, {"assignments": [], "pending": None})
        if node:
            entry["assignments"].append({"replica": replica, "node": node, "reason": reason})
        elif entry["pending"] is None:
            entry["pending"] = f"replica {replica} cannot be placed: {reason}"
    return out


def _with_placement(st: Status, where: Mapping[str, Any] | None) -> Status:
    """Many hosts: a service with no replica placed is Pending (reason Unplaceable, the
    placement's sentence as message); one with some placed keeps its state, the reason
    the rest is not placed leading its message."""
    from store.records import Status

    if not where or not where["pending"]:
        return st
    if where["assignments"]:
        return replace(st, message="; ".join(m for m in (where["pending"], st.message) if m))
    return Status(name=st.name, state="Pending", reason="Unplaceable", message=where["pending"],
                  observed_generation=st.observed_generation)


def status_rows(store: RowSource) -> list[dict[str, Any]]:
    """One row per stored resource, sorted by name."""
    from store.records import Status

    desired = store.desired()
    statuses = store.statuses()
    last = store.last_events(desired)
    placed = placement_of(store)
    rows = []
    for name, rec in sorted(desired.items()):
        st = statuses.get(name) or Status(name=name)
        ev = last.get(name)
        if not rec.suspended:
            st = _with_placement(st, placed.get(name))
        rows.append({
            "name": name, "kind": rec.kind, "generation": rec.generation,
            "observedGeneration": st.observed_generation,
            "state": "Suspended" if rec.suspended else st.state, "health": st.health,
            "healthCheckedBy": st.health_checked_by if rec.spec.get("healthcheck") else "",
            "containerId": st.container_id[:12], "restartCount": st.restart_count,
            "message": st.message, "reason": "" if rec.suspended else st.reason,
            "waitingFor": st.waiting_for,
            "labels": dict((rec.metadata or {}).get("labels") or {}),
            "image": rec.spec.get("image", ""), "replicas": rec.spec.get("replicas", 1) if rec.kind != "Job" else 1,
            "ports": list(rec.spec.get("ports") or []),
            "nextAttemptAt": st.next_attempt_at if st.state == "CrashLoopBackOff" else None,
            "lastTransitionAt": st.last_transition_at or None,
            "lastEvent": None if ev is None else {"ts": ev.ts, "type": ev.type, "reason": ev.reason},
        })
    return rows
