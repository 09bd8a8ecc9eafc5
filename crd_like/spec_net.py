"""Networking fields of a service spec (a mixin of ``ServiceSpec``): container name,
exposed ports, per-network endpoint options, links, network mode, DNS, volumes from
other containers, and how the networks and named volumes it uses are created (or that
they are external: never created or removed by reconcile). No I/O.

Every field has a default, so specs that do not use it hash as before (hashing leaves
defaults out). Cross-field rules (``containerName`` needs one replica, ``networkMode``
excludes what the engine would refuse with it, endpoint options only for networks the
service joins) are model validators here, so native and compose input get the same
messages. Must not import ``store`` or ``controller``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from crd_like import units
from crd_like.spec_base import _Frozen, _scalar

CONTAINER_NAME = r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$"  # the engine's rule for container names
_DNS_NAME = r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$"
_MAC = re.compile(r"^([0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}$")
_LINK = re.compile(r"^([a-zA-Z0-9][a-zA-Z0-9_.-]*)(?::([a-zA-Z0-9][a-zA-Z0-9_.-]*))?$")
_FROM = re.compile(r"^(service|container):([a-zA-Z0-9][a-zA-Z0-9_.-]*)(?::(ro|rw))?$")
_PROTOCOLS = ("tcp", "udp", "sctp")




def _ip(version: int | None) -> Any:
    def check(v: Any) -> str:
        if not isinstance(v, str):
            raise ValueError("expected an IP address as a string")
        try:
            addr = ipaddress.ip_address(v)
        except ValueError:
            raise ValueError(f"{v!r} is not an IP address") from None
        if version is not None and addr.version != version:
            raise ValueError(f"{v!r} is not an IPv{version} address")
        return str(addr)
    return check


def _subnet(v: Any) -> str:
    if not isinstance(v, str):
        raise ValueError("expected a subnet like 172.28.0.0/16")
    try:
        return str(ipaddress.ip_network(v, strict=True))
    except ValueError as exc:
        raise ValueError(f"{v!r} is not a subnet (CIDR, host bits zero): {exc}") from None


def _mac(v: Any) -> str:
    if not isinstance(v, str) or not _MAC.match(v):
        raise ValueError(f"{v!r} is not a MAC address (expected six hex pairs, e.g. 02:42:ac:11:00:02)")
    return v.lower()


def _expose(v: Any) -> str:
    """``80``, ``"80/udp"``, ``"8000-8010"`` -> ``80/tcp``, ``80/udp``, ``8000-8010/tcp``."""
    if isinstance(v, bool) or not isinstance(v, (int, str)):
        raise ValueError("expected a port, 'PORT/PROTOCOL' or a range 'START-END[/PROTOCOL]'")
    text = str(v).strip()
    ports, _, proto = text.partition("/")
    proto = proto or "tcp"
    if proto not in _PROTOCOLS:
        raise ValueError(f"invalid expose protocol {proto!r} in {text!r}: expected tcp, udp or sctp")
    start_s, _, end_s = ports.partition("-")
    try:
        start, end = int(start_s), int(end_s or start_s)
        if not (1 <= start <= 65535 and 1 <= end <= 65535):
            raise ValueError
    except ValueError:
        raise ValueError(f"invalid expose {text!r}: expected ports 1-65535, e.g. 80, 80/udp or 8000-8010") from None
    if end < start:
        raise ValueError(f"invalid expose range {text!r}: the end is below the start")
    return f"{start}/{proto}" if start == end else f"{start}-{end}/{proto}"


def _container_name(v: Any) -> str:
    if not isinstance(v, str) or not re.match(CONTAINER_NAME, v) or len(v) > 128:
        raise ValueError(f"{v!r} is not a valid container name: expected letters, digits, '_', '.' and '-', "
                         "starting with a letter or digit, at most 128 characters")
    return v


def _word(what: str) -> Any:
    def check(v: Any) -> str:
        if not isinstance(v, str) or not v or any(c.isspace() for c in v):
            raise ValueError(f"{v!r} is not a valid {what}: expected one word without spaces")
        return v
    return check


def _link(v: Any) -> str:
    if not isinstance(v, str) or not _LINK.match(v):
        raise ValueError(f"invalid link {v!r}: expected 'NAME' or 'NAME:ALIAS'")
    name, _, alias = v.partition(":")
    return name if alias in ("", name) else v


def _network_mode(v: Any) -> str:
    if not isinstance(v, str):
        raise ValueError("expected host, none, bridge, service:NAME or container:NAME")
    if v in ("host", "none", "bridge"):
        return v
    kind, _, name = v.partition(":")
    if kind in ("service", "container") and re.match(CONTAINER_NAME, name):
        return v
    raise ValueError(f"invalid networkMode {v!r}: expected host, none, bridge, service:NAME or container:NAME")


def _volumes_from(v: Any) -> str:
    m = _FROM.match(v) if isinstance(v, str) else None
    if m is None:
        raise ValueError(f"invalid volumesFrom {v!r}: expected 'service:NAME[:ro|:rw]' or 'container:NAME[:ro|:rw]'")
    return f"{m.group(1)}:{m.group(2)}" + (":ro" if m.group(3) == "ro" else "")


IPv4 = Annotated[str, BeforeValidator(_ip(4))]
IPv6 = Annotated[str, BeforeValidator(_ip(6))]
IP = Annotated[str, BeforeValidator(_ip(None))]


def _dns_server(v: Any) -> str:
    """A nameserver must be an IP address: the engine refuses to start a container with a
    host name there ("bad nameserver address"), under ``docker compose up`` too, although
    ``docker compose config`` accepts the file."""
    try:
        return str(_ip(None)(v))
    except ValueError as exc:
        raise ValueError(f"{exc}: a DNS server is given by its IP address (the engine refuses to start a container "
                         "with anything else, under `docker compose up` too)") from None


DnsServer = Annotated[str, BeforeValidator(_dns_server)]
Scalar = Annotated[str, BeforeValidator(_scalar)]
DnsName = Annotated[str, Field(pattern=_DNS_NAME)]
Subnet = Annotated[str, BeforeValidator(_subnet)]


class Endpoint(_Frozen):
    """How the service joins one network (compose's long-form ``networks:`` entry)."""

    aliases: list[DnsName] = Field(default_factory=list, description="Extra DNS names on this network only.")
    ipv4Address: IPv4 | None = Field(default=None, description="A fixed address (the network needs an ipam subnet).")
    ipv6Address: IPv6 | None = None
    macAddress: Annotated[str, BeforeValidator(_mac)] | None = Field(
        default=None, description="The container's MAC address (the engine sets it on its first network).")
    priority: int = Field(default=0, description="Networks are joined highest priority first; the first is primary.")
    linkLocalIps: list[IP] = Field(default_factory=list)
    driverOpts: dict[str, Scalar] = Field(default_factory=dict)


class IpamPool(_Frozen):
    subnet: Subnet
    ipRange: Subnet | None = None
    gateway: IP | None = None
    auxAddresses: dict[str, IP] = Field(default_factory=dict)


class Ipam(_Frozen):
    driver: str = "default"
    config: list[IpamPool] = Field(default_factory=list)
    options: dict[str, Scalar] = Field(default_factory=dict)


class NetworkSpec(_Frozen):
    """How reconcile creates a network the service joins, or that it is external."""

    external: bool = Field(default=False, description="Must exist already; never created or removed by reconcile.")
    driver: str = Field(default="bridge", min_length=1)
    driverOpts: dict[str, Scalar] = Field(default_factory=dict)
    ipam: Ipam | None = None
    internal: bool = False
    attachable: bool = False
    enableIpv6: bool = False
    labels: dict[str, Scalar] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _external(self) -> NetworkSpec:
        if self.external:
            extra = sorted(k for k in self.model_fields_set if k != "external")
            if extra:
                raise ValueError(f"an external network is not created by reconcile, so {', '.join(extra)} "
                                 "cannot apply to it")
        return self


class VolumeSpec(_Frozen):
    """How reconcile creates a named volume the service mounts, or that it is external."""

    external: bool = Field(default=False, description="Must exist already; never created or removed by reconcile.")
    driver: str = Field(default="local", min_length=1)
    driverOpts: dict[str, Scalar] = Field(default_factory=dict)
    labels: dict[str, Scalar] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _external(self) -> VolumeSpec:
        if self.external:
            extra = sorted(k for k in self.model_fields_set if k != "external")
            if extra:
                raise ValueError(f"an external volume is not created by reconcile, so {', '.join(extra)} "
                                 "cannot apply to it")
        return self


class NetworkFields(BaseModel):
    """Mixed into ``ServiceSpec``; fields are added here, never in ``models.py``."""

    # a mixin, never validated on its own: its schema is built only inside the models
    # that use it (building it here as well cost several ms per mixin at every start)
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, defer_build=True)

    containerName: Annotated[str, BeforeValidator(_container_name)] | None = Field(
        default=None, description="The container's exact name (instead of <name>-<replica>); needs replicas: 1.")
    expose: list[Annotated[str, BeforeValidator(_expose)]] = Field(
        default_factory=list, description="Ports exposed without publishing: '80', '80/udp', '8000-8010'.")
    endpoints: dict[str, Endpoint] = Field(
        default_factory=dict, description="Per network in `networks`: aliases, ipv4Address, ipv6Address, "
        "macAddress, priority, linkLocalIps, driverOpts.")
    links: list[Annotated[str, BeforeValidator(_link)]] = Field(
        default_factory=list, description="'SERVICE[:ALIAS]': the alias resolves to SERVICE's container "
        "from this one (a dependency: SERVICE is started first).")
    externalLinks: list[Annotated[str, BeforeValidator(_link)]] = Field(
        default_factory=list, description="'CONTAINER[:ALIAS]' for a container reconcile does not manage.")
    networkMode: Annotated[str, BeforeValidator(_network_mode)] | None = Field(
        default=None, description="host, none, bridge, service:NAME (share NAME's network stack; recreated "
        "when NAME's container is replaced) or container:NAME.")
    volumesFrom: list[Annotated[str, BeforeValidator(_volumes_from)]] = Field(
        default_factory=list, description="'service:NAME[:ro]' or 'container:NAME[:ro]': mount all its volumes.")
    dns: list[DnsServer] = Field(default_factory=list, description="DNS servers (IP addresses).")
    dnsSearch: list[Annotated[str, BeforeValidator(_word("DNS search domain"))]] = Field(default_factory=list)
    dnsOpt: list[Annotated[str, BeforeValidator(_word("DNS option (e.g. ndots:2)"))]] = Field(default_factory=list)
    networkSpecs: dict[str, NetworkSpec] = Field(
        default_factory=dict, description="Per network in `networks`: how reconcile creates it, or external.")
    volumeSpecs: dict[str, VolumeSpec] = Field(
        default_factory=dict, description="Per named volume in `volumes`: how reconcile creates it, or external.")

    @model_validator(mode="after")
    def _networking(self) -> NetworkFields:
        for message in network_problems(self):
            raise ValueError(message)
        return self


def network_problems(spec: Any) -> list[str]:
    """What the engine would refuse (or silently ignore) in this combination of fields."""
    networks = list(getattr(spec, "networks", []))
    return [message for check in _NETWORK_CHECKS for message in check(spec, networks)]


def _check_container_name(spec: Any, networks: list[str]) -> list[str]:
    replicas = getattr(spec, "replicas", 1)
    if spec.containerName is not None and replicas != 1:
        return [f"containerName {spec.containerName!r} names one container, but replicas is {replicas}: "
                "drop containerName or set replicas: 1"]
    return []


def _check_unknown_networks(spec: Any, networks: list[str]) -> list[str]:
    out = []
    for what, keys in (("endpoints", spec.endpoints), ("networkSpecs", spec.networkSpecs)):
        unknown = sorted(set(keys) - set(networks))
        if unknown:
            out.append(f"{what} names network(s) {', '.join(unknown)} that are not in `networks` "
                       f"({', '.join(networks) or 'none'})")
    return out


def _check_fixed_addresses(spec: Any, networks: list[str]) -> list[str]:
    out = []
    for net, ep in sorted(spec.endpoints.items()):
        ns = spec.networkSpecs.get(net)
        if ns is not None and ns.external:
            continue  # its subnets are the engine's to check
        subnets = [ipaddress.ip_network(p.subnet) for p in (ns.ipam.config if ns is not None and ns.ipam else [])]
        for key, addr in (("ipv4Address", ep.ipv4Address), ("ipv6Address", ep.ipv6Address)):
            if addr and not any(ipaddress.ip_address(addr) in sub for sub in subnets):
                out.append(f"endpoints.{net}.{key} {addr} needs a subnet that contains it in "
                           f"networkSpecs.{net}.ipam.config (the engine only gives fixed addresses on "
                           "networks with a configured subnet)")
    return out


def _check_mac_address(spec: Any, networks: list[str]) -> list[str]:
    macs = [n for n, e in spec.endpoints.items() if e.macAddress]
    if len(macs) > 1:
        return [f"macAddress is set on networks {', '.join(sorted(macs))}: this engine sets one MAC address "
                "per container (on its primary network)"]
    if macs and networks:
        primary = min(range(len(networks)), key=lambda i: (-(spec.endpoints[networks[i]].priority
                                                              if networks[i] in spec.endpoints else 0), i))
        if networks[primary] != macs[0]:
            return [f"macAddress is set on network {macs[0]}, but the engine gives it to the container's "
                    f"primary network, {networks[primary]}: give {macs[0]} the highest priority (or list it first)"]
    return []


def _check_volume_specs(spec: Any, networks: list[str]) -> list[str]:
    named = {units.parse_volume(v).source for v in getattr(spec, "volumes", []) if units.parse_volume(v).kind == "volume"}
    unknown_vols = sorted(set(spec.volumeSpecs) - named)
    if unknown_vols:
        return [f"volumeSpecs names volume(s) {', '.join(unknown_vols)} that no entry of `volumes` mounts"]
    return []


_MODE_REASONS = {"host": "it uses the host's network stack", "none": "it has no network",
                 "bridge": "it joins the engine's default bridge network (no user-defined networks, no aliases)"}


def _check_network_mode(spec: Any, networks: list[str]) -> list[str]:
    mode = spec.networkMode
    if mode is None:
        return []
    shared = mode.startswith(("service:", "container:"))
    conflicts = {
        "networks": bool(networks), "endpoints": bool(spec.endpoints), "aliases": bool(getattr(spec, "aliases", [])),
        "links": bool(spec.links or spec.externalLinks) and mode != "bridge",
        "ports": bool(getattr(spec, "ports", [])) and mode != "bridge",
        "expose": bool(spec.expose) and shared,
        "hostname": bool(getattr(spec, "hostname", None)) and shared,
        "dns": bool(spec.dns or spec.dnsSearch or spec.dnsOpt) and shared,
        "extraHosts": bool(getattr(spec, "extraHosts", [])) and shared,
    }
    reason = _MODE_REASONS[mode] if mode in _MODE_REASONS else f"it shares the network stack of {mode.split(':', 1)[1]}"
    bad = [k for k, v in conflicts.items() if v]
    if bad:
        return [f"networkMode {mode!r} cannot be combined with {', '.join(bad)}: {reason}"]
    return []


# each check: (spec, its networks) -> messages, in the order they are reported
_NETWORK_CHECKS: tuple[Callable[[Any, list[str]], list[str]], ...] = (
    _check_container_name, _check_unknown_networks, _check_fixed_addresses, _check_mac_address,
    _check_volume_specs, _check_network_mode,
)


def service_refs(spec: Mapping[str, Any] | Any) -> dict[str, str]:
    """Other services this spec needs started first: ``{native name: why}`` (networkMode
    ``service:``, volumesFrom ``service:``, links). Takes a spec model or its JSON dump."""
    get = spec.get if isinstance(spec, Mapping) else (lambda k, d=None: getattr(spec, k, d))
    out: dict[str, str] = {}
    mode = get("networkMode") or ""
    if mode.startswith("service:"):
        out[mode.split(":", 1)[1]] = f"network_mode {mode}"
    for item in get("volumesFrom") or []:
        if item.startswith("service:"):
            out.setdefault(item.split(":")[1], f"volumes_from {item}")
    for link in get("links") or []:
        out.setdefault(link.split(":", 1)[0], f"links {link}")
    return out


def replaced_on(spec: Any) -> dict[str, str]:
    """The subset of ``service_refs`` whose container id is baked into this container
    (network stack, volumes): it must be recreated when that container is replaced."""
    return {n: why for n, why in service_refs(spec).items() if not why.startswith("links")}


def shared_problems(specs: Mapping[str, Mapping[str, Any]]) -> list[tuple[str, str, str]]:
    """[(resource, field, message)] across resources (JSON dumps of their specs): two with
    one ``containerName``, or one network / volume defined two ways (it is created once)."""
    out: list[tuple[str, str, str]] = []
    owners: dict[str, str] = {}
    for name in sorted(specs):
        cname = specs[name].get("containerName")
        if cname and cname in owners:
            out.append((name, "spec.containerName", f"containerName {cname!r} is also the containerName of "
                                                    f"{owners[cname]}: container names are unique on a host"))
        elif cname:
            owners[cname] = name
    for key, what in (("networkSpecs", "network"), ("volumeSpecs", "volume")):
        seen: dict[str, tuple[str, Any]] = {}
        for name in sorted(specs):
            for res, definition in sorted((specs[name].get(key) or {}).items()):
                if res in seen and seen[res][1] != definition:
                    out.append((name, f"spec.{key}.{res}", f"{what} {res!r} is defined differently by "
                                                           f"{seen[res][0]}: it is created once, so every "
                                                           "resource using it must agree"))
                seen.setdefault(res, (name, definition))
    return out
