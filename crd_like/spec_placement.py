"""Where a service's replicas run when several nodes share one store (a mixin of
``ServiceSpec`` and so of ``JobSpec``). No I/O; must not import ``store`` or ``controller``
(``controller.placement_input`` turns it into a ``controller.placement.Request``).

    placement:
      node: NAME               # only this node
      nodeSelector: {K: V}     # only nodes carrying every one of these labels
      spread: KEY              # spread replicas evenly over the values of node label KEY ("node": over nodes)
      reschedule: true         # when its node is lost, place it elsewhere (default: wait for the node)

Every field is optional and an empty ``placement: {}`` is the same as none. ``node`` and
``nodeSelector`` may be combined: the named node must then also carry the labels (when it does
not, the service is Pending with that reason — the spec cannot know the node's labels, so this
is decided at placement, not here). ``spread`` with ``node`` has nothing to spread over and
is refused. Reservations come from ``resources.reservations``.

The field defaults to None and hashing leaves defaults out, so a spec without placement
hashes as it did before the field existed; placement is controller policy
(``hashing.POLICY_FIELDS``): changing it never recreates a container on a node where it stays.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import ConfigDict, BeforeValidator, Field, field_validator, model_validator

from crd_like.spec_base import _Frozen, _scalar

# node names: what a hostname may be (the agent's --node defaults to one), dots allowed
NODE_PATTERN = r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,251}[A-Za-z0-9])?$"
# node label keys: the same alphabet as resource label keys (``models._LABEL_KEY``)
LABEL_KEY_PATTERN = r"^[A-Za-z0-9]([A-Za-z0-9._/-]{0,251}[A-Za-z0-9])?$"
_LABEL_KEY = re.compile(LABEL_KEY_PATTERN)
_NODE = re.compile(NODE_PATTERN)
_LABEL_VALUE = re.compile(r"^[^\s=,]{0,253}$")


def _label_value(v: Any) -> str:
    text = _scalar(v)
    if not _LABEL_VALUE.match(text):
        raise ValueError(f"invalid node label value {text!r}: expected at most 253 characters without "
                         "whitespace, '=' or ','")
    return text


LabelValue = Annotated[str, BeforeValidator(_label_value)]


class Placement(_Frozen):
    node: str | None = Field(default=None, json_schema_extra={"pattern": NODE_PATTERN},
                             description="Run every replica on this node (its name as its agent registered it).")
    nodeSelector: dict[str, LabelValue] = Field(
        default_factory=dict, description="Run only on nodes carrying every one of these labels "
        "(`reconcile run --node-label K=V`).")
    spread: str | None = Field(default=None, json_schema_extra={"pattern": LABEL_KEY_PATTERN},
                               description="Spread replicas evenly over the values of this node label "
                               "(nodes without it count as one group); `node` spreads over nodes.")
    reschedule: bool = Field(default=False, description="When the node is lost (its lease expired), run the "
                             "replicas elsewhere; without it they wait for the node to come back.")

    @field_validator("node")
    @classmethod
    def _node(cls, v: str | None) -> str | None:
        if v is not None and not _NODE.match(v):
            raise ValueError(f"invalid node name {v!r}: expected letters, digits, '.', '_' and '-', starting and "
                             "ending with a letter or digit (the name its agent registered with `--node`)")
        return v

    @field_validator("spread")
    @classmethod
    def _spread(cls, v: str | None) -> str | None:
        if v is not None and not _LABEL_KEY.match(v):
            raise ValueError(f"invalid spread {v!r}: expected a node label key (letters, digits, '.', '_', '-', "
                             "'/', starting and ending with a letter or digit) or `node`")
        return v

    @field_validator("nodeSelector")
    @classmethod
    def _keys(cls, v: dict[str, str]) -> dict[str, str]:
        for key in v:
            if not _LABEL_KEY.match(key):
                raise ValueError(f"invalid node label key {key!r}: expected letters, digits, '.', '_', '-', '/' "
                                 "(starting and ending with a letter or digit)")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> Placement:
        if self.node is not None and self.spread is not None:
            raise ValueError(f"placement.node pins every replica to {self.node}: there is nothing to spread "
                             f"over; drop `spread` or `node`")
        return self


class PlacementFields(_Frozen):
    # a mixin, never validated on its own (as the other spec mixins)
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, defer_build=True)

    placement: Placement | None = Field(
        default=None, description="Where replicas run when several nodes share the store (reconcile run --node).")

    @field_validator("placement", mode="before")
    @classmethod
    def _bare(cls, v: Any) -> Any:
        return None if v == {} else v

    @field_validator("placement")
    @classmethod
    def _empty(cls, v: Placement | None) -> Placement | None:
        # `placement: {}` or only defaults spelled out is the same as none, and hashes the same
        return None if v == Placement() else v
