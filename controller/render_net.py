"""Networking fields of a spec (``crd_like.spec_net``) -> what the engine is asked for.
Pure (no Docker, no SQL).

Containers of other services that a spec refers to (``networkMode: service:X``,
``volumesFrom: service:X``, ``links``) are resolved from the observed state into
``DesiredService.peers`` (``with_peers``, called by the reconciler before planning), so
that the planner can compare them with what a container was made from (the labels
``io.reconcile.network-from`` / ``io.reconcile.volumes-from``) and ``render`` can name
them to the engine. Peer container ids are not in the container hash: they are
observations, and the planner decides on them (recreate when a peer was replaced).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from controller import labels as L
from controller.errors import TransientError
from controller.observed import Observed
from crd_like.models import ServiceSpec
from crd_like.spec_net import NetworkSpec, VolumeSpec, replaced_on, service_refs

if TYPE_CHECKING:
    from controller.render import DesiredService


@dataclass(frozen=True)
class Peer:
    """The container another service currently has (its replica 1)."""

    id: str
    name: str
    running: bool


@dataclass(frozen=True)
class NetworkPlan:
    """Networking part of a ``ContainerConfig``."""

    networks: list[str] = field(default_factory=list)  # joined in this order (highest priority first)
    endpoints: dict[str, dict[str, Any]] = field(default_factory=dict)  # network -> endpoint config kwargs
    network_specs: dict[str, NetworkSpec] = field(default_factory=dict)  # how to create (or external)
    volume_specs: dict[str, VolumeSpec] = field(default_factory=dict)
    host: dict[str, Any] = field(default_factory=dict)  # extra HostConfig kwargs
    create: dict[str, Any] = field(default_factory=dict)  # extra create_container kwargs
    labels: dict[str, str] = field(default_factory=dict)
    exposed: list[str] = field(default_factory=list)  # "80/tcp", ranges expanded


def container_name(spec: ServiceSpec, service: str, replica: int) -> str:
    return spec.containerName or f"{service}-{replica}"


def pick_peer(containers: Sequence[Observed], svc: DesiredService | None) -> Peer | None:
    """Replica 1's container: running first, then of the current spec, then the newest."""
    ones = [c for c in containers if c.replica == 1]
    if not ones:
        return None
    best = max(ones, key=lambda c: (c.running, svc is not None and c.spec_hash == svc.container_hash, c.created))
    return Peer(best.id, best.name, best.running)


def with_peers(desired: Mapping[str, DesiredService], observed: Sequence[Observed]) -> dict[str, DesiredService]:
    """Each desired service with the current containers of the services it refers to."""
    by_service: dict[str, list[Observed]] = {}
    for c in observed:
        by_service.setdefault(c.service, []).append(c)
    out: dict[str, DesiredService] = {}
    for name, svc in desired.items():
        refs = service_refs(svc.spec)
        if not refs:
            out[name] = svc
            continue
        peers = {}
        for ref in refs:
            peer = pick_peer(by_service.get(ref, []), desired.get(ref))
            if peer is not None:
                peers[ref] = peer
        out[name] = replace(svc, peers=peers)
    return out


def replaced_peers(svc: DesiredService, c: Observed) -> list[tuple[str, str]]:
    """[(service, why)] whose container ``c`` was made from is no longer that service's
    container: its network stack or volumes came from a container that was replaced."""
    made_from = made_from_labels(svc.spec, c.labels)
    out = []
    for ref, why in sorted(replaced_on(svc.spec).items()):
        peer = svc.peers.get(ref)
        if peer is not None and made_from.get(ref) != peer.id:
            out.append((ref, why))
    return out


def made_from_labels(spec: ServiceSpec, labels: Mapping[str, str]) -> dict[str, str]:
    """{service: container id} a container was made from (its labels)."""
    out: dict[str, str] = {}
    try:
        data = json.loads(labels.get(L.VOLUMES_FROM) or "{}")
        out.update({str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {})
    except ValueError:
        pass
    mode = spec.networkMode or ""
    if mode.startswith("service:") and L.NETWORK_FROM in labels:
        out[mode.split(":", 1)[1]] = labels[L.NETWORK_FROM]
    return out


def _peer(svc: DesiredService, name: str) -> Peer:
    peer = svc.peers.get(name)
    if peer is None:  # the planner only creates once the peer runs (it is a dependency)
        raise TransientError(f"{svc.name}: the container of {name} is not known yet", retry_after=1.0)
    return peer


def _expand(ports: Sequence[str]) -> list[str]:
    out: list[str] = []
    for p in ports:
        rng, _, proto = p.partition("/")
        start, _, end = rng.partition("-")
        out.extend(f"{n}/{proto}" for n in range(int(start), int(end or start) + 1))
    return out


def _link_pairs(svc: DesiredService) -> list[tuple[str, str]]:
    """(container name, alias) for links (to the peer's container) and external links."""
    out = []
    for link in svc.spec.links:
        name, _, alias = link.partition(":")
        out.append((_peer(svc, name).name, alias or name))
    for link in svc.spec.externalLinks:
        name, _, alias = link.partition(":")
        out.append((name, alias or name))
    return out


def _volumes_from(svc: DesiredService) -> tuple[list[str], dict[str, str]]:
    """(``volumes_from`` entries, service -> the peer container id they name)."""
    made: dict[str, str] = {}
    froms = []
    for item in svc.spec.volumesFrom:
        kind, ref, *access = item.split(":")
        target = ref
        if kind == "service":
            target = _peer(svc, ref).id
            made[ref] = target
        froms.append(f"{target}:{access[0] if access else 'rw'}")
    return froms, made


def _network_mode(svc: DesiredService, mode: str, links: list[tuple[str, str]],
                  host: dict[str, Any], labels: dict[str, str]) -> None:
    """``network_mode`` (``service:NAME`` -> NAME's container, recorded on a label), and the
    legacy links of the default bridge."""
    if mode.startswith("service:"):
        peer = _peer(svc, mode.split(":", 1)[1])
        host["network_mode"] = f"container:{peer.id}"
        labels[L.NETWORK_FROM] = peer.id
    else:
        host["network_mode"] = mode
    if mode == "bridge" and links:  # legacy links on the default bridge
        host["links"] = dict(links)


# endpoint settings copied when set: (endpoint config keyword, spec_net endpoint field, its form)
_ENDPOINT_FIELDS: tuple[tuple[str, str, Any], ...] = (
    ("ipv4_address", "ipv4Address", str), ("ipv6_address", "ipv6Address", str),
    ("link_local_ips", "linkLocalIps", list), ("driver_opt", "driverOpts", dict),
)


def _endpoint(svc: DesiredService, ep: Any, links: list[tuple[str, str]]) -> dict[str, Any]:
    cfg: dict[str, Any] = {"aliases": [svc.name, *svc.spec.aliases, *(ep.aliases if ep else [])]}
    if links:  # on a user-defined network, links are endpoint links (scoped to this container)
        cfg["links"] = list(links)  # (container, alias) pairs, as the SDK wants them
    if ep is not None:
        cfg.update({key: conv(getattr(ep, attr)) for key, attr, conv in _ENDPOINT_FIELDS if getattr(ep, attr)})
    return cfg


def plan_network(svc: DesiredService) -> NetworkPlan:
    spec = svc.spec
    host: dict[str, Any] = {key: list(value) for key, value in
                            (("dns", spec.dns), ("dns_search", spec.dnsSearch), ("dns_opt", spec.dnsOpt)) if value}
    create: dict[str, Any] = {}
    labels: dict[str, str] = {}
    if spec.volumesFrom:
        host["volumes_from"], made = _volumes_from(svc)
        if made:
            labels[L.VOLUMES_FROM] = json.dumps(made, sort_keys=True)
    links = _link_pairs(svc)
    if spec.networkMode is not None:
        _network_mode(svc, spec.networkMode, links, host, labels)

    def priority(i: int) -> tuple[int, int]:
        ep = spec.endpoints.get(spec.networks[i])
        return (-(ep.priority if ep else 0), i)

    networks = [spec.networks[i] for i in sorted(range(len(spec.networks)), key=priority)]
    endpoints: dict[str, dict[str, Any]] = {}
    for net in networks:
        ep = spec.endpoints.get(net)
        endpoints[net] = _endpoint(svc, ep, links)
        if ep is not None and ep.macAddress:  # the engine (API 1.41) takes one MAC address, for the container
            create["mac_address"] = ep.macAddress
    return NetworkPlan(networks=networks, endpoints=endpoints, network_specs=dict(spec.networkSpecs),
                       volume_specs=dict(spec.volumeSpecs), host=host, create=create, labels=labels,
                       exposed=_expand(spec.expose))
