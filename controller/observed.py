"""What the engine reports about a container, reduced to what planning needs. Pure data."""

from __future__ import annotations

import re
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
