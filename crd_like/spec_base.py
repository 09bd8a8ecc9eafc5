"""What the spec mixins (``spec_net``, ``spec_host``) share without importing ``models``
(which imports them): the frozen strict base and the scalar-to-text rule. No I/O."""

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
