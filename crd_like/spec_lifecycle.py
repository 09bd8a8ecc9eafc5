"""Lifecycle hooks of a service spec (a mixin of ``ServiceSpec``): commands the
controller runs in a container through the engine's exec API, Kubernetes-shaped
(``lifecycle: {postStart: [...], preStop: [...]}``; compose ``post_start`` /
``pre_stop``). No I/O; must not import ``store`` or ``controller``.

- ``postStart``: run in order right after the controller starts a container (create,
  start, restart, recreate). A hook that exits non-zero fails that action, as a failing
  ``post_start`` fails ``docker compose up``; the container keeps running (compose leaves
  it running too) and the hook is not run again until the container is started again.
- ``preStop``: run in order before the controller stops a running container (restart,
  recreate, scale-down, removal, delete). All of them together get at most the
  container's ``stopGracePeriod`` (then the stop goes on); a failing hook is audited and
  the stop proceeds (compose stops at a failing ``pre_stop`` and leaves the container
  running; a controller that converges cannot leave it half-stopped).

Every run is audited (``HookRan`` / ``HookFailed``) with its exit code and the tail of
its output. Hook ``env`` values are plain values: a hook runs with the container's own
environment, which is where secrets belong (``env`` with ``valueFrom``).

The field has a default, and hashing leaves defaults out, so a spec without hooks hashes
as before; hooks are controller policy (``hashing.POLICY_FIELDS``): changing one never
recreates a running container.
"""

from __future__ import annotations

import shlex
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from crd_like.spec_base import _Frozen, _scalar, env_names

Str = Annotated[str, BeforeValidator(_scalar)]


def _argv(v: Any) -> Any:
    """A string is split like a shell would (compose splits ``command`` strings so too);
    list items that are numbers become strings."""
    if isinstance(v, str):
        try:
            return shlex.split(v)
        except ValueError as exc:
            raise ValueError(f"cannot split command: {exc}") from None
    if isinstance(v, list):
        return [str(i) if isinstance(i, (int, float)) and not isinstance(i, bool) else i for i in v]
    return v


class ExecHook(_Frozen):
    """One command run in the container (the engine's exec: ``docker exec``)."""

    command: Annotated[list[str], BeforeValidator(_argv)] = Field(
        description="argv, or a string split like a shell would (no shell runs it: "
                                  "write `sh -c '...'` for one).")
    user: str | None = Field(default=None, min_length=1, description="user[:group] to run it as.")
    privileged: bool = False
    workingDir: str | None = None
    env: dict[str, Str] = Field(default_factory=dict, description="Extra environment of the hook (plain values; "
                                "the container's environment is inherited).")

    @field_validator("command")
    @classmethod
    def _nonempty(cls, v: list[str]) -> list[str]:
        if not v or not v[0].strip():
            raise ValueError("a hook command must not be empty")
        return v

    @field_validator("workingDir")
    @classmethod
    def _absolute(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith("/"):
            raise ValueError(f"working directory {v!r} must be an absolute path in the container")
        return v

    @field_validator("env")
    @classmethod
    def _env_names(cls, v: dict[str, str]) -> dict[str, str]:
        return env_names(v)

    def describe(self) -> str:
        """The command as a user would type it (no env values: they are never printed)."""
        return shlex.join(self.command)


class Lifecycle(_Frozen):
    postStart: list[ExecHook] = Field(default_factory=list, description="Run after the container starts; "
                                      "a failing one fails the start (the container keeps running).")
    preStop: list[ExecHook] = Field(default_factory=list, description="Run before the container is stopped, "
                                    "within stopGracePeriod; a failing one is audited and the stop proceeds.")


class LifecycleFields(BaseModel):
    """Mixed into ``ServiceSpec``."""

    # a mixin, never validated on its own: its schema is built only inside the models
    # that use it (building it here as well cost several ms per mixin at every start)
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, defer_build=True)

    lifecycle: Lifecycle = Field(default_factory=Lifecycle, description="postStart / preStop exec hooks.")
