"""What the spec mixins (``spec_net``, ``spec_host``, ``spec_lifecycle``) and ``models`` share
without importing ``models`` (which imports them): the frozen strict base, the scalar-to-text
rule and the environment-name rule. No I/O."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _scalar(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float, str)):
        return str(v)
    raise ValueError("expected a string, number or boolean")


def env_names(v: dict[str, Any]) -> dict[str, Any]:
    """An environment mapping whose names the engine can set (the container's env and a
    hook's): not empty, no '=' and no whitespace. Returns it unchanged."""
    for key in v:
        if not key or "=" in key or any(c.isspace() for c in key):
            raise ValueError(f"invalid environment variable name {key!r}")
    return v
