"""What the engine reports about a container, reduced to what planning needs. Pure data.

``Observed`` is one entry of the list call; ``ContainerDetail`` (with its ``HealthState``
and ``ProbeLog``) what an inspect says of one container; ``EngineEvent`` one event of the
engine's stream. ``controller.engine`` builds them from the engine's answers, so that no
other module reads the engine's raw documents.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from controller import labels as L

_EXIT = re.compile(r"Exited \((-?\d+)\)")
_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)?$")


# Podman lists images by fully qualified names: "localhost/app:1" for one built or
# imported here, "docker.io/library/app:1" for some builds through the compatible API;
# the spec (and Docker) say "app:1"
PODMAN_PREFIXES = ("localhost/", "docker.io/library/", "docker.io/")


def short_ref(tag: str) -> str:
    """An image name as Docker would show it: without Podman's qualifying prefix."""
    for prefix in PODMAN_PREFIXES:
        if tag.startswith(prefix):
            return tag[len(prefix):]
    return tag


# Podman's libpod states that Docker's API has no word for, as Docker would report them.
# "stopped": the process has exited and Podman has not run its cleanup yet (for about
# 0.3-1 s, then "exited"). Read as it stood, a rollout's new container that had just
# died was not "exited" to the rollout check, so it was restarted in that window
# instead of rolled back. "configured": created, never initialised.
# "stopping": being stopped (Docker says running until the process has exited).
_PODMAN_STATES = {"stopped": "exited", "configured": "created", "stopping": "running"}


def docker_state(state: str) -> str:
    """A container's state in Docker's vocabulary (created | running | paused | restarting
    | removing | exited | dead), whichever engine listed it."""
    return _PODMAN_STATES.get(state, state)


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


# the health a list entry's Status names, e.g. "Up 3 minutes (health: starting)"
_HEALTH_IN_STATUS = (("(healthy)", "healthy"), ("(unhealthy)", "unhealthy"), ("(health: starting)", "starting"))


def _int_label(labels: dict[str, str], key: str, default: str, bad: int) -> int:
    try:
        return int(labels.get(key, default))
    except ValueError:
        return bad


def from_list_entry(entry: dict) -> Observed:  # type: ignore[type-arg]
    """Build from one item of the engine's ``GET /containers/json``."""
    labels = entry.get("Labels") or {}
    status = entry.get("Status") or ""
    match = _EXIT.search(status)
    health = next((h for marker, h in _HEALTH_IN_STATUS if marker in status), "")
    names = entry.get("Names") or [""]
    return Observed(
        id=entry["Id"], name=names[0].lstrip("/"), service=labels.get(L.SERVICE, ""),
        replica=_int_label(labels, L.REPLICA, "1", 0), instance=labels.get(L.INSTANCE, ""),
        spec_hash=labels.get(L.SPEC_HASH, ""), generation=_int_label(labels, L.GENERATION, "0", 0),
        state=entry.get("State") or "", exit_code=int(match.group(1)) if match else None,
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


def image_maps(images: list[dict[str, Any]]) -> tuple[dict[str, str], dict[str, str]]:
    """From the engine's ``GET /images/json``: (tag -> image id, tag -> build hash of the
    images reconcile built); a ``:latest`` tag also answers for the bare name."""
    ids: dict[str, str] = {}
    builds: dict[str, str] = {}
    for img in images:
        tags = [t for t in img.get("RepoTags") or [] if t and t != "<none>:<none>"]
        tags += [short for short in map(short_ref, tags) if short not in tags]
        for tag in tags:
            if tag:
                ids[tag] = img["Id"]
                if tag.endswith(":latest"):
                    ids.setdefault(tag[: -len(":latest")], img["Id"])
                build = (img.get("Labels") or {}).get(L.BUILD_HASH)
                if build:
                    builds[tag] = build
                    if tag.endswith(":latest"):
                        builds.setdefault(tag[: -len(":latest")], build)
    return ids, builds


@dataclass(frozen=True)
class ProbeLog:
    """One health probe the engine ran (an entry of ``State.Health.Log``)."""

    exit_code: int | None
    start: str | None  # the engine's timestamps, as it wrote them
    end: str | None
    output: str


@dataclass(frozen=True)
class HealthState:
    """``State.Health`` of an inspect: the status and the engine's probe log, oldest first."""

    status: str  # starting | healthy | unhealthy
    log: tuple[ProbeLog, ...] = ()

    @classmethod
    def from_engine(cls, health: Mapping[str, Any] | None) -> HealthState | None:
        if not health:
            return None
        log = tuple(ProbeLog(p.get("ExitCode"), p.get("Start"), p.get("End"), str(p.get("Output") or ""))
                    for p in health.get("Log") or [])
        return cls(str(health.get("Status") or ""), log)


@dataclass(frozen=True)
class ContainerDetail:
    """What an inspect of one container says (``Engine.detail``)."""

    id: str
    name: str
    running: bool
    started_at: float  # epoch seconds; 0.0 when never started
    finished_at: float
    exit_code: int | None
    health: HealthState | None  # None: no healthcheck
    labels: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_inspect(cls, data: Mapping[str, Any]) -> ContainerDetail:
        state = data.get("State") or {}
        code = state.get("ExitCode")
        return cls(id=str(data.get("Id") or ""), name=str(data.get("Name") or "").lstrip("/"),
                   running=bool(state.get("Running")), started_at=parse_time(str(state.get("StartedAt") or "")),
                   finished_at=parse_time(str(state.get("FinishedAt") or "")),
                   exit_code=None if code is None else int(code), health=HealthState.from_engine(state.get("Health")),
                   labels=dict((data.get("Config") or {}).get("Labels") or {}))


@dataclass(frozen=True)
class EngineEvent:
    """One event of the engine's stream about a container of this store."""

    action: str  # as the engine names it: "die", "health_status: healthy", "exec_start: sh -c ..."
    service: str  # the container's service label ("" when it has none)
    container_id: str
    time: float | None  # epoch seconds, as the engine stamped it

    @property
    def kind(self) -> str:
        """The action without its detail: "health_status", "exec_start", "die"."""
        return self.action.split(":")[0].strip()

    @classmethod
    def from_engine(cls, ev: Mapping[str, Any]) -> EngineEvent:
        actor = ev.get("Actor") or {}
        attrs = actor.get("Attributes") or {}
        return cls(action=str(ev.get("Action") or ev.get("status") or ""), service=str(attrs.get(L.SERVICE) or ""),
                   container_id=str(actor.get("ID") or ev.get("id") or ""), time=ev.get("time") or None)
