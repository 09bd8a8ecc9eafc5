"""A crd_like spec as placement sees it: ``request(name, spec) -> placement.Request``.

Kept out of ``controller.placement`` so that the placement function imports nothing from the
project (and no pydantic); crd_like must not import controller, so this lives here. Pure.
"""

from __future__ import annotations

from crd_like.models import ServiceSpec
from controller.placement import Request


def request(name: str, spec: ServiceSpec) -> Request:
    """Replicas, ``placement`` and the per-replica reservation (``resources.reservations``:
    CPUs as a float, memory in bytes; 0 when not reserved). Limits are not reservations: a
    node's capacity is counted against what replicas reserve, as swarm does."""
    p = spec.placement
    res = spec.resources.reservations
    return Request(
        service=name,
        replicas=spec.replicas,
        node=p.node if p else None,
        node_selector=dict(p.nodeSelector) if p else {},
        spread=p.spread if p else None,
        cpus=float(res.cpus or 0.0),
        memory=int(res.memory or 0),
        reschedule=p.reschedule if p else False,
    )
