"""A service's health over a window (the status page's 24 h timeline), from its audit rows.

The audit records what happened (``Created``, ``Died``, ``Restarted``, ``HealthChanged``,
``BackOff``, ``GaveUp``...), not a state every second; a band runs from the row that set
its state to the next row that changed it. The state at the window's start is the one the
newest state-changing row before it set (the caller passes that row in with the window's
rows); with none, the band is ``unknown``. Rows that say nothing about the state (an
``Applied``, a ``Failed`` action, a hook run) leave the band as it is. Restart marks are
the ``Restarted`` rows inside the window.

Pure: rows and the window come in as arguments; no store, no clock, no engine.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from store.records import Event

RUNNING = "running"
HEALTHY = "healthy"
UNHEALTHY = "unhealthy"
DOWN = "down"
BACKOFF = "backoff"
UNKNOWN = "unknown"
BANDS = (RUNNING, HEALTHY, UNHEALTHY, DOWN, BACKOFF, UNKNOWN)

# row type -> the band it starts (HealthChanged is read from its reason, see band_of)
_BAND_OF_TYPE = {
    "Created": RUNNING, "Started": RUNNING, "Restarted": RUNNING, "Recreated": RUNNING,
    "Died": DOWN, "Removed": DOWN, "Deleted": DOWN, "GaveUp": DOWN, "JobFailed": DOWN, "Completed": DOWN,
    "BackOff": BACKOFF,
}
# the rows that can set a band: what the store is asked for to find the state at a window's start
STATE_TYPES = (*sorted(_BAND_OF_TYPE), "HealthChanged")
_HEALTH_BANDS = {"healthy": HEALTHY, "unhealthy": UNHEALTHY, "starting": RUNNING}


@dataclass(frozen=True)
class Band:
    start: float
    end: float
    state: str


@dataclass(frozen=True)
class Timeline:
    """Bands covering [start, end] without gaps, in order, and the restarts inside it."""

    start: float
    end: float
    bands: tuple[Band, ...]
    restarts: tuple[float, ...]

    def to_json(self) -> dict[str, object]:
        return {"start": self.start, "end": self.end,
                "bands": [{"start": b.start, "end": b.end, "state": b.state} for b in self.bands],
                "restarts": list(self.restarts)}


def band_of(e: Event) -> str | None:
    """The band a row starts, or None when it says nothing about the state.

    ``HealthChanged`` reasons read ``"<old> -> <new>"``; ``-> none (container no longer
    running)`` means the container went away (down), a plain ``-> none`` that it runs
    without a health check (running)."""
    if e.type != "HealthChanged":
        return _BAND_OF_TYPE.get(e.type)
    _, arrow, new = e.reason.partition("->")
    if not arrow:
        return None
    new = new.strip()
    if new.startswith("none"):
        return DOWN if "no longer running" in new else RUNNING
    return _HEALTH_BANDS.get(new.split(" ", 1)[0])


def build(events: Iterable[Event], *, start: float, end: float) -> Timeline:
    """The timeline of [start, end] from a service's rows (any order; rows before
    ``start`` only decide the state at ``start``, rows after ``end`` are ignored)."""
    ordered = sorted((e for e in events if e.ts <= end), key=lambda e: (e.ts, e.id or 0))
    state = UNKNOWN
    bands: list[Band] = []
    restarts: list[float] = []
    at = start
    for e in ordered:
        new = band_of(e)
        if e.ts < start:
            state = new or state
            continue
        if e.type == "Restarted":
            restarts.append(e.ts)
        if new is None or new == state:
            continue
        if e.ts > at:
            bands.append(Band(at, e.ts, state))
        state, at = new, e.ts
    bands.append(Band(at, end, state))
    return Timeline(start, end, tuple(_merged(bands)), tuple(restarts))


def _merged(bands: list[Band]) -> list[Band]:
    """Adjacent bands of one state as one (a zero-width band between them is dropped)."""
    out: list[Band] = []
    for b in bands:
        if out and out[-1].state == b.state:
            out[-1] = Band(out[-1].start, b.end, b.state)
        else:
            out.append(b)
    return out
