"""The fence: a node cut off from the store stops its movable containers before its lease
can expire (docs/MULTI-HOST.md, "The fence"). Pure: time is a parameter, stops are data;
``controller.agent`` lists the engine, issues the stops and records them. Nothing here
talks to the engine or the store.

Why. After the node lease expires the scheduler runs the replicas of ``placement.reschedule:
true`` services on another node. The database cannot stop the old copies, and the agent
that runs them may still reach its own engine. So the agent stops them itself, in time:

    renewed   the start of the last successful renewal (monotonic clock)
    deadline  renewed + ttl - margin: the agent stops acting (controller.nodelease)
    expiry    >= renewed + ttl: the row's own expiry (the database's clock)

A container whose grace (``stopGracePeriod``, whole seconds: the engine's unit) is ``g`` is
stopped at ``deadline - STOP_SLACK - TICK - g``, never earlier than ``renewed + EARLIEST *
renew_every`` (one renewal missed, and half a period more: a renewal that is only late
stops nothing). ``g`` is cut to ``max_grace(ttl)`` so that the stop can always end before
the deadline: the stop then ends ``margin`` before the expiry at the latest, the same
margin that already absorbs a difference in clock rates. The agent warns at start-up and
per service when a grace is cut (``grace_note``), naming the TTL that would fit it.

Only running containers of services with ``reschedule: true`` are stopped (the others are
never moved, so they never run twice); they are stopped, not removed: on return the agent
removes those that were moved away and starts the others again.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from controller import labels as L
from controller.nodelease import margin, renew_every
from controller.observed import Observed
from store.records import Event

STOP_SLACK = 0.5  # seconds: the engine's kill and its answer after the grace
TICK = 0.25  # seconds between two looks of the agent's fence job (a stop may start that late)
EARLIEST = 1.5  # renewal periods after the last renewal before any stop
WORKERS = 4  # stops at once


def earliest(ttl: float) -> float:
    """Seconds after the start of the last renewal before which nothing is stopped."""
    return EARLIEST * renew_every(ttl)


def _room(ttl: float) -> float:
    return ttl - margin(ttl) - earliest(ttl) - STOP_SLACK - TICK


def fits(ttl: float) -> bool:
    """Can a stop (a kill, at least) end before the deadline with this TTL (from 2.5 s)?"""
    return _room(ttl) >= -1e-9


def max_grace(ttl: float) -> int:
    """The longest grace (whole seconds) a stop can have and still end before the deadline."""
    return max(0, math.floor(_room(ttl) + 1e-9))


def ttl_for_grace(grace: float) -> float:
    """The smallest whole-second RECONCILE_NODE_TTL whose fence fits ``grace``."""
    ttl = 1.0
    while max_grace(ttl) < math.ceil(grace) and ttl < 3600:
        ttl += 1.0
    return ttl


def grace_note(service: str, grace: float, ttl: float) -> str | None:
    """A warning when ``service``'s grace does not fit the fence (else None)."""
    if math.ceil(grace) <= max_grace(ttl):
        return None
    return (f"service {service}: stopGracePeriod {grace:g}s does not fit the node fence of RECONCILE_NODE_TTL "
            f"{ttl:g}s; if this node is cut off from the store, its containers get {max_grace(ttl)}s before they "
            f"are killed (a TTL of {ttl_for_grace(grace):g}s would give them {math.ceil(grace)}s)")


@dataclass(frozen=True)
class Candidate:
    """A running container this node may have to stop, with its service's grace."""

    container_id: str
    name: str
    service: str
    replica: int
    grace: float


@dataclass(frozen=True)
class Stop:
    """Stop this container (the engine's ``stop`` with ``timeout`` seconds, then a kill)."""

    container_id: str
    name: str
    service: str
    replica: int
    timeout: int
    grace: float  # as the service asks (timeout may be shorter)


def candidates(observed: Iterable[Observed], node: str, movable: Mapping[str, float]) -> list[Candidate]:
    """The running containers this node made of services that may be moved (service ->
    grace)."""
    return [Candidate(c.id, c.name, c.service, c.replica, movable[c.service]) for c in observed
            if c.running and c.labels.get(L.NODE) == node and c.service in movable]


def grace_of(c: Candidate, ttl: float) -> int:
    return min(math.ceil(c.grace - 1e-9), max_grace(ttl))


def due_at(c: Candidate, *, deadline: float, ttl: float) -> float:
    """When (monotonic) the stop of ``c`` must start."""
    renewed = deadline - (ttl - margin(ttl))
    return max(renewed + earliest(ttl), deadline - STOP_SLACK - TICK - grace_of(c, ttl))


def first_due(deadline: float, ttl: float) -> float:
    """No stop is due before this (whatever the graces): the agent's cheap check."""
    return deadline - (ttl - margin(ttl)) + earliest(ttl)


def stop_timeout(grace: int, *, deadline: float, now: float) -> int:
    """The grace a stop that starts at ``now`` can have (0: kill at once)."""
    return max(0, min(grace, math.floor(deadline - STOP_SLACK - now)))


def decide(cands: Iterable[Candidate], *, deadline: float, ttl: float, now: float,
           issued: frozenset[str] = frozenset()) -> list[Stop]:
    """The stops due at ``now`` (``issued``: container ids already being stopped)."""
    out: list[Stop] = []
    for c in cands:
        if c.container_id in issued or now < due_at(c, deadline=deadline, ttl=ttl):
            continue
        timeout = stop_timeout(grace_of(c, ttl), deadline=deadline, now=now)
        out.append(Stop(c.container_id, c.name, c.service, c.replica, timeout, c.grace))
    return sorted(out, key=lambda s: (s.timeout, s.service, s.replica))


@dataclass(frozen=True)
class Fenced:
    """A stop the fence made, to be audited once the store answers again."""

    stop: Stop
    at: float  # wall clock, when the stop was issued
    renewed_at: float  # wall clock of the last successful renewal's start


def fenced_event(f: Fenced, node: str, generation: int = 0) -> Event:
    """The ``FencedStop`` audit row of one stop."""
    s = f.stop
    cut = f" (cut from {s.grace:g}s to fit before the lease's expiry)" if s.timeout < s.grace else ""
    return Event(ts=f.at, service=s.service, container_id=s.container_id, type="FencedStop",
                 reason=f"stopped: node {node} lost its lease (not renewed since {_iso(f.renewed_at)}); "
                        f"replica {s.replica} may be rescheduled",
                 message=f"container {s.container_id[:12]} ({s.name}) stopped with a {s.timeout}s grace{cut}",
                 generation=generation, actor=f"agent:{node}")


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
