"""What the executor did, as data: one frozen record per thing that happened while it
carried out a service's actions (a container created, started, restarted, recreated,
removed, renamed; an image built or not; a hook run; an action that failed or hung).

The executor only reports these; ``controller.advance`` turns them (with the status
they start from) into the new status and the audit rows, and ``controller.record``
writes those. Each record carries ``at``, when it happened (the executor's clock), so
that deriving status from it needs no clock of its own. ``line`` is the human line of
what was done and why (empty for a failure); ``problem`` is the error line of a failure
(empty otherwise). Pure: no engine, no store, no logging.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from controller.errors import ReconcileError
from controller.hooks import HookRun

OUTPUT_LIMIT = 500


def truncate(text: str, limit: int = OUTPUT_LIMIT) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class _Base:
    @property
    def line(self) -> str:
        return ""

    @property
    def problem(self) -> str:
        return ""


@dataclass(frozen=True)
class Created(_Base):
    service: str
    replica: int
    container_id: str
    reason: str
    at: float

    @property
    def line(self) -> str:
        return f"created {self.service}#{self.replica} ({self.container_id[:12]}): {self.reason}"


@dataclass(frozen=True)
class Started(_Base):
    """A stopped container started again; ``restart``: a recovery from its death (counts
    toward the crash-loop backoff), ``detail``: how it died (OOM, engine error, when)."""

    service: str
    replica: int
    container_id: str
    reason: str
    at: float
    restart: bool = True
    detail: str = ""

    @property
    def full_reason(self) -> str:
        return self.reason + (f"; {self.detail}" if self.detail and self.restart else "")

    @property
    def line(self) -> str:
        verb = "restarted" if self.restart else "started"
        return f"{verb} {self.service}#{self.replica}: {self.full_reason}"


@dataclass(frozen=True)
class Restarted(_Base):
    """A running container restarted: ``requested`` by a user (no backoff) or because it
    turned unhealthy (``probe``: its last probe's output)."""

    service: str
    replica: int
    container_id: str
    reason: str
    at: float
    requested: bool = False
    config_hash: str | None = None
    probe: str = ""

    @property
    def full_reason(self) -> str:
        return self.reason + (f"; last probe: {self.probe}" if self.probe else "")

    @property
    def line(self) -> str:
        return f"restarted {self.service}#{self.replica}: {self.full_reason}"


@dataclass(frozen=True)
class Recreated(_Base):
    service: str
    replica: int
    old_id: str
    container_id: str
    reason: str
    at: float
    changed_fields: tuple[str, ...] = ()
    rollout: bool = False

    @property
    def line(self) -> str:
        return f"recreated {self.service}#{self.replica} ({self.container_id[:12]}): {self.reason}"


@dataclass(frozen=True)
class Removed(_Base):
    service: str
    container_id: str
    name: str
    reason: str
    at: float

    @property
    def line(self) -> str:
        return f"removed {self.name} ({self.container_id[:12]}): {self.reason}"


@dataclass(frozen=True)
class Built(_Base):
    service: str
    image: str
    context: str
    reason: str
    at: float

    @property
    def line(self) -> str:
        return f"built {self.image} for {self.service}: {self.reason}"


@dataclass(frozen=True)
class BuildFailed(_Base):
    """The build ran and failed (``output``: its tail); a ``Failed`` follows."""

    service: str
    reason: str
    output: str
    at: float


@dataclass(frozen=True)
class Renamed(_Base):
    service: str
    container_id: str
    old_name: str
    new_name: str
    reason: str
    at: float

    @property
    def line(self) -> str:
        return f"renamed {self.old_name} back to {self.new_name}: {self.reason}"


@dataclass(frozen=True)
class RollbackAsked(_Base):
    """The plan asks for the earlier revision back; the reconciler writes it to the store."""

    service: str
    to_generation: int
    reason: str
    at: float

    @property
    def line(self) -> str:
        return f"rolling back {self.service} to revision {self.to_generation}: {self.reason}"


@dataclass(frozen=True)
class HookRan(_Base):
    """One lifecycle hook run (``controller.hooks``), ok or not."""

    service: str
    container_id: str
    run: HookRun
    at: float

    @property
    def line(self) -> str:
        return f"{self.service} ({self.container_id[:12]}): {self.run.reason}" if self.run.ok else ""


@dataclass(frozen=True)
class HookUnrunnable(_Base):
    """The engine refused to exec a preStop hook; the stop went on."""

    service: str
    container_id: str
    error: str
    at: float


@dataclass(frozen=True)
class Deferred(_Base):
    """A restart the host-wide restart limit deferred to a later pass."""

    service: str
    at: float

    @property
    def problem(self) -> str:
        return f"{self.service}: restart deferred by the host-wide restart limit"


@dataclass(frozen=True)
class Failed(_Base):
    """An action that failed: ``what`` is the action described, ``kind`` its class in
    lower case, ``code`` the status reason (``planner.R_*``) the failure stands for."""

    service: str
    what: str
    kind: str
    error: str
    code: str
    at: float
    container_id: str = ""
    exc: ReconcileError | None = field(default=None, compare=False, repr=False)  # typed: it decides the retry

    @property
    def problem(self) -> str:
        return f"{self.what} failed: {self.error}"


@dataclass(frozen=True)
class EngineHung(_Base):
    """An engine call that did not answer in time; the service's remaining actions were
    not tried (they depend on the one that hung)."""

    service: str
    what: str
    call: str
    timeout: float
    error: str
    code: str
    at: float
    container_id: str = ""
    exc: ReconcileError | None = field(default=None, compare=False, repr=False)  # typed: it decides the retry

    @property
    def problem(self) -> str:
        return f"{self.what} failed: {self.error}"


Outcome = (Created | Started | Restarted | Recreated | Removed | Built | BuildFailed | Renamed | RollbackAsked
           | HookRan | HookUnrunnable | Deferred | Failed | EngineHung)
