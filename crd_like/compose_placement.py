"""Compose ``deploy.placement`` -> the native ``placement`` (``crd_like.spec_placement``). No I/O.

Mapped, as swarm reads them:
- ``constraints: ["node.hostname == X"]`` -> ``node: X``;
- ``constraints: ["node.labels.K == V"]`` -> ``nodeSelector: {K: V}`` (several: every one must hold);
- ``preferences: [{spread: node.labels.K}]`` -> ``spread: K`` (``spread: node.hostname`` or
  ``node.id`` -> ``spread: node``).
Anything else is accepted with a warning naming the key and what happens instead: ``!=``
constraints, ``node.role``/``node.id``/``node.platform.*``/``engine.labels.*``, a second
preference (one level of spreading only), ``max_replicas_per_node``, a spread next to
``node.hostname`` (nothing to spread over), unknown keys. Contradictions (two hostnames, two
values for one label) are errors: no node could ever take the service.
Compose has no ``reschedule``: a converted service waits for a lost node (write the native
``placement.reschedule: true`` to move it).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from crd_like.merge import Node, plain

if TYPE_CHECKING:
    from crd_like.compose import _Service

_CONSTRAINT = re.compile(r"^\s*([A-Za-z0-9_.\-/]+)\s*(==|!=)\s*(.*?)\s*$")
_IGNORED = {
    "max_replicas_per_node": "ignored: replicas are spread by the placement rules, with no per-node limit",
}


def placement(service: _Service, node: Node) -> None:
    """Read ``deploy.placement`` (``node``) into the service's ``placement`` spec field."""
    ctx = service.ctx
    if not isinstance(node.value, dict):
        ctx.error(node, "deploy.placement must be a mapping")
        return
    out: dict[str, Any] = {}
    selector: dict[str, Node] = {}
    spread_node: Node | None = None
    for sub, sub_node in node.value.items():
        if sub == "constraints":
            _constraints(service, sub_node, out, selector)
        elif sub == "preferences":
            spread_node = _preferences(service, sub_node, out)
        elif sub in _IGNORED:
            ctx.warn(sub_node, f"deploy.placement.{sub}", _IGNORED[sub])
        else:
            ctx.warn(sub_node, f"deploy.placement.{sub}", "ignored: not a placement rule reconcile knows")
    if selector:
        out["nodeSelector"] = node.at(selector)
    if "node" in out and spread_node is not None:
        ctx.warn(spread_node, "deploy.placement.preferences", "ignored: node.hostname puts every replica on "
                 f"{plain(out['node'])}, there is nothing to spread over")
        out.pop("spread")
    if out:
        service._set("placement", node.at(out))


def _constraints(service: _Service, node: Node, out: dict[str, Any], selector: dict[str, Node]) -> None:
    ctx = service.ctx
    items = node.value if isinstance(node.value, list) else None
    if items is None:
        ctx.error(node, "deploy.placement.constraints must be a list of 'node.hostname == NAME' or "
                        "'node.labels.KEY == VALUE'")
        return
    for item in items:
        text = plain(item)
        match = _CONSTRAINT.match(text) if isinstance(text, str) else None
        if match is None:
            ctx.error(item, f"invalid placement constraint {text!r}: expected 'ATTRIBUTE == VALUE' or "
                            "'ATTRIBUTE != VALUE'")
            continue
        attr, op, value = match.groups()
        key = "deploy.placement.constraints"
        if op == "!=":
            ctx.warn(item, key, f"ignored: {text!r} (only == constraints are mapped: node.hostname -> "
                                "placement.node, node.labels.K -> placement.nodeSelector)")
        elif attr == "node.hostname":
            if "node" in out and plain(out["node"]) != value:
                ctx.error(item, f"constraint {text!r} contradicts node.hostname == {plain(out['node'])}: "
                                "no node has two names")
            out["node"] = item.at(value)
        elif attr.startswith("node.labels.") and len(attr) > len("node.labels."):
            label = attr[len("node.labels."):]
            if label in selector and plain(selector[label]) != value:
                ctx.error(item, f"constraint {text!r} contradicts node.labels.{label} == "
                                f"{plain(selector[label])}: no node has both values")
            selector[label] = item.at(value)
        else:
            ctx.warn(item, key, f"ignored: {text!r} (only node.hostname and node.labels.* are mapped; "
                                "give the node a label with `reconcile run --node-label` and select on it)")


def _preferences(service: _Service, node: Node, out: dict[str, Any]) -> Node | None:
    """The first ``spread`` preference -> ``spread``; returns where it was written."""
    ctx = service.ctx
    if not isinstance(node.value, list):
        ctx.error(node, "deploy.placement.preferences must be a list of {spread: node.labels.KEY}")
        return None
    found: Node | None = None
    for item in node.value:
        spread = item.get("spread") if isinstance(item.value, dict) else None
        if spread is None or len(item.value) != 1 or not isinstance(plain(spread), str):
            ctx.warn(item, "deploy.placement.preferences", "ignored: only {spread: node.labels.KEY} is mapped")
            continue
        if found is not None:
            ctx.warn(item, "deploy.placement.preferences", f"ignored: {plain(spread)!r}: replicas are spread "
                     "over one label only (the first preference)")
            continue
        target: str = plain(spread).strip()
        if target in ("node.hostname", "node.id"):
            out["spread"] = spread.at("node")
        elif target.startswith("node.labels.") and len(target) > len("node.labels."):
            out["spread"] = spread.at(target[len("node.labels."):])
        else:
            ctx.warn(item, "deploy.placement.preferences", f"ignored: spread {target!r} (only node.labels.KEY "
                     "and node.hostname are mapped)")
            continue
        found = item
    return found
