"""What the engine reports about a container, reduced to what planning needs. Pure data."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from controller import labels as L

_EXIT = re.compile(r"Exited \((-?\d+)\)")
_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)?$")


@dataclass(frozen=True)
class Observed:
    id: str
    name: str
    service: str
    replica: int
    instance: str
    spec_hash: str
    generation: int
    state: str  # created | running | paused | restarting | removing | exited | dead
    exit_code: int | None
    health: str  # "" | starting | healthy | unhealthy
    image_id: str
    created: float
    labels: dict[str, str] = field(default_factory=dict, compare=False, repr=False)
    networks: tuple[str, ...] = ()  # networks it is attached to

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @property
    def running(self) -> bool:
        return self.state == "running"


def from_list_entry(entry: dict) -> Observed:  # type: ignore[type-arg]
    """Build from one item of the engine's ``GET /containers/json``."""
    labels = entry.get("Labels") or {}
    status = entry.get("Status") or ""
    match = _EXIT.search(status)
    health = ""
    if "(healthy)" in status:
        health = "healthy"
    elif "(unhealthy)" in status:
        health = "unhealthy"
    elif "(health: starting)" in status:
        health = "starting"
    names = entry.get("Names") or [""]
    try:
        replica = int(labels.get(L.REPLICA, "1"))
    except ValueError:
        replica = 0
    try:
        generation = int(labels.get(L.GENERATION, "0"))
    except ValueError:
        generation = 0
    return Observed(
        id=entry["Id"], name=names[0].lstrip("/"), service=labels.get(L.SERVICE, ""),
        replica=replica, instance=labels.get(L.INSTANCE, ""), spec_hash=labels.get(L.SPEC_HASH, ""),
        generation=generation, state=entry.get("State") or "", exit_code=int(match.group(1)) if match else None,
        health=health, image_id=entry.get("ImageID") or "", created=float(entry.get("Created") or 0),
        labels=dict(labels), networks=tuple(sorted((entry.get("NetworkSettings") or {}).get("Networks") or {})),
    )


def parse_time(value: str) -> float:
    """Epoch seconds of an engine timestamp ('2024-05-01T15:32:11.123456789Z', nanoseconds
    cut to microseconds); 0.0 when unset ('0001-01-01T00:00:00Z') or not a timestamp."""
    m = _TIME.match(value or "")
    if not m or value.startswith("0001-"):
        return 0.0
    head, frac, tz = m.group(1), m.group(2) or "", m.group(3) or ""
    tz = "+00:00" if tz in ("", "Z") else tz
    try:
        return datetime.fromisoformat(f"{head}.{(frac + '000000')[:6]}{tz}").timestamp()
    except ValueError:
        return 0.0
