"""The ``Notifier`` kind: where messages about what happened on the host go, and which.

A Notifier is applied like any other document (``reconcile apply``) but is not a workload:
the store keeps it in its own table (``store.notify``), so the planner, ``get`` and
``status`` never see one. Its spec:

- ``sink``: ``webhook`` (a JSON POST, signed with ``X-Reconcile-Signature: sha256=<HMAC>``
  when ``secret`` is set), ``slack`` (a Slack/Mattermost incoming-webhook payload),
  ``ntfy`` (plain text to a topic URL) or ``command`` (an argv list, never a shell string;
  the message as JSON on its stdin).
- ``url`` and ``secret`` are secret references: ``{file: PATH}``, ``{env: VAR}`` (read by
  the controller when it sends) or ``{secret: VALUE}`` (kept in the store, never printed).
  A plain string ``url`` is taken as ``{secret: URL}``: sink URLs carry tokens.
- ``events``: the event types to send (default: all, ``controller.notify_rules.EVENT_TYPES``);
  ``selector``: a label selector of services (``key=value,key!=value,key,!key``, the
  grammar of ``-l``).
- ``retry``: the delivery backoff; ``damping``: the flap window and the digest threshold.

Pure; must not import ``store`` or ``controller``.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Final, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from crd_like import units
from crd_like.models import API_VERSION, Frozen, Metadata

# Mirrors controller.notify_rules.EVENT_TYPES (crd_like must not import controller; a unit
# test holds the two equal).
EVENT_TYPES: Final = ("CrashLoopBackOff", "BackOffEnded", "GaveUp", "Failed", "Unhealthy", "Recovered",
                      "JobFailed", "RolledBack", "EngineUnavailable", "EngineRestored", "RestartStorm",
                      "LeaseTakenOver", "NodeLost", "NodeReady", "FencedStop", "Test")
_REQUIREMENT = re.compile(r"^\s*(!?[A-Za-z0-9][A-Za-z0-9._/-]*|[A-Za-z0-9][A-Za-z0-9._/-]*\s*(!=|==|=)\s*[^,]*)\s*$")


def _duration(v: Any) -> float:
    return units.parse_duration(v)


Duration = Annotated[float, BeforeValidator(_duration), Field(gt=0)]


class SecretRef(Frozen):
    """A secret value: exactly one of a file, an environment variable, or the value itself."""

    file: str | None = Field(default=None, description="A file holding the value (read when sending).")
    env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
                            description="An environment variable of the controller holding the value.")
    secret: str | None = Field(default=None, min_length=1, description="The value, kept in the store, never printed.")

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, v: Any) -> Any:
        return {"secret": v} if isinstance(v, str) else v

    @model_validator(mode="after")
    def _one(self) -> SecretRef:
        given = [k for k in ("file", "env", "secret") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"expected exactly one of file, env or secret, got {', '.join(given) or 'none'}")
        return self


class Retry(Frozen):
    """Delay before delivery attempt n+1 after n failures: ``initial * 2**(n-1)``, capped at ``max``."""

    initial: Duration = 1.0
    max: Duration = 300.0

    @model_validator(mode="after")
    def _order(self) -> Retry:
        if self.max < self.initial:
            raise ValueError("retry.max must be at least retry.initial")
        return self


class Damping(Frozen):
    """Flap damping: a service's second state change of one kind within ``window`` of its
    last message waits for the digest; more than ``digestAfter`` messages a minute to this
    sink go into the digest too."""

    window: Duration = 60.0
    digestAfter: int = Field(default=10, ge=1, le=10_000)


class NotifierSpec(Frozen):
    sink: Literal["webhook", "slack", "ntfy", "command"]
    url: SecretRef | None = Field(default=None, description="The sink's URL (webhook, slack, ntfy): a secret.")
    secret: SecretRef | None = Field(default=None, description="webhook: the HMAC-SHA256 key of the signature header.")
    command: list[str] | None = Field(default=None, min_length=1, description="command: the argv to run.")
    timeout: Duration = Field(default=10.0, le=300.0, description="One delivery attempt's time limit.")
    events: list[Literal[EVENT_TYPES]] | None = Field(  # type: ignore[valid-type]
        default=None, description="The event types to send (default: all).")
    selector: str | None = Field(default=None, description="Only services whose labels match (the -l grammar).")
    retry: Retry = Field(default_factory=Retry)
    damping: Damping = Field(default_factory=Damping)

    @field_validator("selector")
    @classmethod
    def _selector(cls, v: str | None) -> str | None:
        if v is None:
            return v
        for part in v.split(","):
            if not _REQUIREMENT.match(part):
                raise ValueError(f"bad requirement {part!r} in selector: expected key=value, key!=value, key or !key")
        return v

    @model_validator(mode="after")
    def _sink_fields(self) -> NotifierSpec:
        if self.sink == "command":
            if not self.command or self.url is not None:
                raise ValueError("sink command needs `command` (an argv list) and no `url`")
        elif self.url is None or self.command is not None:
            raise ValueError(f"sink {self.sink} needs `url` and no `command`")
        if self.secret is not None and self.sink != "webhook":
            raise ValueError("`secret` (the HMAC key) is for sink webhook only")
        return self


class Notifier(Frozen):
    apiVersion: Literal["reconcile/v1alpha1"] = API_VERSION
    kind: Literal["Notifier"] = "Notifier"
    metadata: Metadata
    spec: NotifierSpec

    @property
    def name(self) -> str:
        return self.metadata.name
