"""Placement: which node runs each replica. A pure function; algorithm to follow in this module.

No I/O, no clock, no logging; it imports nothing from the project.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

NodeState = Literal["ready", "cordoned", "draining", "lost"]


@dataclass(frozen=True)
class NodeView:
    """A node as placement sees it. ``cpus``/``memory`` (bytes) are its capacity; 0 = unknown = no limit."""

    name: str
    labels: Mapping[str, str]
    cpus: float
    memory: int
    state: NodeState


@dataclass(frozen=True)
class Request:
    """One service's placement needs. ``cpus``/``memory`` are the reservation per replica (0 = none)."""

    service: str
    replicas: int
    node: str | None
    node_selector: Mapping[str, str]
    spread: str | None
    cpus: float
    memory: int
    reschedule: bool


@dataclass(frozen=True)
class Assignment:
    service: str
    replica: int  # 1-based
    node: str
    reason: str


@dataclass(frozen=True)
class Unplaced:
    service: str
    replica: int  # 1-based
    reason: str


@dataclass(frozen=True)
class PlacementResult:
    assignments: tuple[Assignment, ...]
    unplaced: tuple[Unplaced, ...]


def place(requests: Sequence[Request], nodes: Sequence[NodeView], current: Sequence[Assignment]) -> PlacementResult:
    raise NotImplementedError("placement algorithm: in progress on branch `place`")
