"""The planner's records: what goes into planning one service (``PlanInput``), what a
dependency's dependents need to know of it (``DepInfo``, ``Unmet``), and what comes out
(``ServicePlan``, ``Plan``). Plain frozen dataclasses; no behaviour beyond small views."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from controller.actions import Action, Remove
from controller.observed import Observed
from controller.planner.vocab import BLOCKING_REASONS, Problem, Reason, State
from controller.render import DesiredService
from store.records import Status


@dataclass(frozen=True)
class DepInfo:
    """What dependents need to know about a service."""

    exists: bool
    started: bool  # at least one replica runs
    healthy: bool  # every replica runs, and is healthy where a healthcheck exists
    completed: bool  # a Job whose current generation exited 0
    failed: bool  # gave up (Failed)
    crashlooping: bool
    last_started_at: float
    restart_pending: bool


@dataclass(frozen=True)
class Unmet:
    """A dependency condition not met yet, and whether it can still be met by itself."""

    dependency: str
    condition: str  # started | healthy | completed
    problem: Problem = Problem.NONE

    def text(self) -> str:
        why = {Problem.MISSING: ": it does not exist", Problem.FAILED: ": it failed",
               Problem.CRASHLOOPING: ": it is crash-looping"}
        return f"{self.dependency} ({self.condition}{why.get(self.problem, '')})"


@dataclass(frozen=True)
class PlanInput:
    """Everything the plan of one service depends on; ``now`` is a parameter like the rest.

    ``revisions``: older specs by (service, generation), to name what changed; ``image_ids``:
    image reference -> the id it names now; ``deps``: ``DepInfo`` of every desired service;
    ``image_builds``: image reference -> the build-context hash it was built from."""

    svc: DesiredService
    containers: Sequence[Observed]
    status: Status | None
    revisions: Mapping[tuple[str, int], dict[str, Any]]
    image_ids: Mapping[str, str]
    now: float
    deps: Mapping[str, DepInfo] = field(default_factory=dict)
    image_builds: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ServicePlan:
    name: str
    actions: tuple[Action, ...] = ()
    state: State = State.PENDING
    health: str = ""
    message: str = ""
    converged: bool = False
    retry_at: float | None = None  # when a waiting service should be looked at again
    reset_backoff: bool = False
    waiting_for: tuple[str, ...] = ()  # human: "db (healthy: it failed)"
    reason: Reason = Reason.NONE
    waiting_on: tuple[Unmet, ...] = ()  # typed twin of waiting_for

    @property
    def stuck(self) -> bool:
        """It cannot get to running by itself: it gave up or crash-loops, its reason will not
        change by itself, or a dependency it waits for has such a problem (from the typed
        fields only, never the message)."""
        return (self.state in (State.FAILED, State.CRASHLOOP) or self.reason in BLOCKING_REASONS
                or any(u.problem for u in self.waiting_on))


@dataclass(frozen=True)
class Plan:
    services: dict[str, ServicePlan] = field(default_factory=dict)
    orphans: tuple[Remove, ...] = ()

    @property
    def actions(self) -> list[Action]:
        out: list[Action] = list(self.orphans)
        for sp in self.services.values():
            out.extend(sp.actions)
        return out
