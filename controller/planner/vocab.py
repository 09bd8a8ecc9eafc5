"""The planner's vocabulary: the states a service is reported in, why it is in that state
(the reasons callers act on), and what is wrong with a dependency it waits for. Pure.

All three are ``StrEnum``s whose values are the strings the store, ``status`` and the CLI
have always shown, so a member compares equal to the text read back from the store
(``Status.state == State.RUNNING``) and prints as that text. Callers act on these values,
never on the human ``message`` beside them.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class State(StrEnum):
    """What a service is doing, as shown by ``status``. Declared worst first: the order of
    declaration is the order of severity (``severity``, ``worst``)."""

    FAILED = "Failed"  # gave up: restarts exhausted, a Job past its backoffLimit
    ERROR = "Error"  # an unreadable reference, or an action that failed (the executor's reason)
    PAUSED = "RolloutPaused"
    CRASHLOOP = "CrashLoopBackOff"
    EXITED = "Exited"
    WAITING = "Waiting"  # for a dependency
    BUILDING = "Building"
    UPDATING = "Updating"
    STARTING = "Starting"  # actions ran; the next pass looks at the result
    PENDING = "Pending"
    RUNNING = "Running"
    COMPLETED = "Completed"
    SUSPENDED = "Suspended"

    @property
    def severity(self) -> int:
        """0 for the worst state; larger is better."""
        return _SEVERITY[self]


_SEVERITY = {s: i for i, s in enumerate(State)}


def worst(states: Iterable[State]) -> State:
    """The most severe of the replicas' states; ``Pending`` when there are none."""
    return min(states, key=_SEVERITY.__getitem__, default=State.PENDING)


class Reason(StrEnum):
    """Why a service is in its state, as data (``ServicePlan.reason``, ``Status.reason``):
    what ``wait``, ``apply --wait`` and ``up`` act on. The planner decides the first group;
    the executor reports the second when an action fails (``executor.error_reason``)."""

    NONE = ""
    DEPENDENCY = "WaitingForDependency"
    CRASHLOOP = "CrashLoop"
    GAVE_UP = "GaveUp"
    BACKOFF_LIMIT = "BackoffLimitExceeded"
    BAD_REFERENCE = "UnreadableReference"
    SUSPENDED = "Suspended"
    # reported by the executor
    IMAGE_MISSING = "ImageMissing"
    PORT_IN_USE = "PortInUse"
    NAME_CONFLICT = "NameConflict"
    ACTION_FAILED = "ActionFailed"

    @property
    def blocking(self) -> bool:
        """A reason that will not change by itself: waiting on such a service cannot succeed."""
        return self in BLOCKING_REASONS


BLOCKING_REASONS = frozenset({Reason.GAVE_UP, Reason.BACKOFF_LIMIT, Reason.BAD_REFERENCE, Reason.IMAGE_MISSING,
                              Reason.PORT_IN_USE, Reason.NAME_CONFLICT})


class Problem(StrEnum):
    """What is wrong with a dependency a service waits for (``Unmet.problem``); anything but
    ``NONE`` means the wait cannot end by itself."""

    NONE = ""
    MISSING = "missing"
    FAILED = "failed"
    CRASHLOOPING = "crashlooping"


# The names callers have imported since the planner was one module.
RUNNING, PENDING, EXITED, CRASHLOOP, FAILED, SUSPENDED = (
    State.RUNNING, State.PENDING, State.EXITED, State.CRASHLOOP, State.FAILED, State.SUSPENDED)
WAITING, COMPLETED, UPDATING, PAUSED = State.WAITING, State.COMPLETED, State.UPDATING, State.PAUSED
ERROR, STARTING, BUILDING = State.ERROR, State.STARTING, State.BUILDING
R_DEPENDENCY, R_CRASHLOOP, R_GAVE_UP, R_BACKOFF_LIMIT = (
    Reason.DEPENDENCY, Reason.CRASHLOOP, Reason.GAVE_UP, Reason.BACKOFF_LIMIT)
R_BAD_REFERENCE, R_SUSPENDED = Reason.BAD_REFERENCE, Reason.SUSPENDED
R_IMAGE_MISSING, R_PORT_IN_USE, R_NAME_CONFLICT, R_ACTION_FAILED = (
    Reason.IMAGE_MISSING, Reason.PORT_IN_USE, Reason.NAME_CONFLICT, Reason.ACTION_FAILED)
