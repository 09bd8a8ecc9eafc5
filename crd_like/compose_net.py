"""Compose service keys about networking -> native spec fields (see ``crd_like.spec_net``).

``HANDLERS`` maps a compose service key to ``handler(service, node)``, where ``service``
is the ``crd_like.compose._Service`` being converted (it offers ``ctx``, ``spec``,
``_set`` ...). ``compose._Service.convert`` dispatches these before its own keys, and a
key listed here is no longer "unsupported"; ``finish(service)`` runs after all keys
(it needs the service's final networks and volumes). ``resources`` reads the top-level
``networks:`` / ``volumes:``.

==========================  ===============================================================
compose                     native
==========================  ===============================================================
``container_name``          ``containerName`` (needs one replica)
``expose``                  ``expose``
``networks`` (long form)    ``networks`` + ``endpoints.<network>``: ``aliases``,
                            ``ipv4_address``, ``ipv6_address``, ``mac_address``,
                            ``priority``, ``link_local_ips``, ``driver_opts``
``links``                   ``links``: ``<native name>:<alias>`` (alias: the compose name)
``external_links``          ``externalLinks``
``network_mode``            ``networkMode`` (``service:X`` -> ``service:<native name of X>``)
``volumes_from``            ``volumesFrom`` (``X`` -> ``service:<native>``, ``container:X``)
``dns`` / ``dns_search``    ``dns`` / ``dnsSearch`` / ``dnsOpt``
/ ``dns_opt``
``extra_hosts``             ``extraHosts`` (list, ``=`` or ``:``, or mapping; ``host-gateway``)
top-level networks          ``networkSpecs.<engine name>`` on every service that joins it:
                            ``external``, ``driver``, ``driver_opts``, ``ipam``,
                            ``internal``, ``attachable``, ``enable_ipv6``, ``labels``
top-level volumes           ``volumeSpecs.<engine name>``: ``external``, ``driver``,
                            ``driver_opts``, ``labels``
==========================  ===============================================================

Compose service names inside values become native names through ``service.native``; a
reference to an unknown (or inactive) service is an error naming file:line. No I/O;
must not import ``store`` or ``controller``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from crd_like.errors import Issue
from crd_like.merge import Node, kv_pairs, names_map

if TYPE_CHECKING:
    from crd_like.compose import _Ctx, _Service

HANDLERS: dict[str, Callable[[_Service, Node], None]] = {}

# drivers that need a swarm (or a plugin this host lacks) are created as bridge, with a warning
_SWARM_DRIVERS = {"overlay"}


def _handler(key: str) -> Callable[[Callable[[_Service, Node], None]], Callable[[_Service, Node], None]]:
    def register(fn: Callable[[_Service, Node], None]) -> Callable[[_Service, Node], None]:
        HANDLERS[key] = fn
        return fn
    return register


def warn(ctx: _Ctx, node: Node, key: str, what: str) -> None:
    """``ctx.warn`` (accepted, but the meaning differs here), or the same line without it."""
    method = getattr(ctx, "warn", None)
    if method is not None:
        method(node, key, what)
    else:
        ctx.warnings.append(str(Issue(node.file, node.line, node.field, f"compose key '{key}': {what}")))


def _str_list(service: _Service, node: Node, key: str, *, allow_string: bool = True) -> list[Node] | None:
    """A list of strings (or, where compose allows it, one string)."""
    if isinstance(node.value, str) and allow_string:
        return [node]
    if not isinstance(node.value, list) or not all(isinstance(i.value, (str, int)) and not isinstance(i.value, bool)
                                                   for i in node.value):
        service.ctx.error(node, f"{key} must be a list of strings" + (" (or one string)" if allow_string else ""))
        return None
    return [i.at(str(i.value)) for i in node.value]


def _service_ref(service: _Service, node: Node, name: str, key: str) -> str | None:
    """The native name of compose service ``name``, or None (reported) if it is not there."""
    if name == service.key:
        service.ctx.error(node, f"service {service.key!r} refers to itself in {key}")
        return None
    if name not in service.services:
        service.ctx.error(node, f"service {service.key!r} refers to undefined service {name!r} in {key} "
                                f"(services: {', '.join(sorted(service.services))})")
        return None
    if name not in service.active:
        service.ctx.error(node, f"service {service.key!r} refers to {name!r} in {key}, which is not enabled "
                                "(its profiles are not active)")
        return None
    native: str = service.native(name)
    return native


# ---------------------------------------------------------------------------- simple keys
@_handler("container_name")
def _container_name(service: _Service, node: Node) -> None:
    if not isinstance(node.value, str):
        service.ctx.error(node, "container_name must be a string")
        return
    service._set("containerName", node)


@_handler("expose")
def _expose(service: _Service, node: Node) -> None:
    items = _str_list(service, node, "expose", allow_string=False)
    if items is not None:
        service._set("expose", node.at(items))


def _dns_key(native: str, allow_string: bool) -> Callable[[_Service, Node], None]:
    def handle(service: _Service, node: Node) -> None:
        items = _str_list(service, node, native, allow_string=allow_string)
        if items is not None:
            service._set(native, node.at(items))
    return handle


HANDLERS["dns"] = _dns_key("dns", True)
HANDLERS["dns_search"] = _dns_key("dnsSearch", True)
HANDLERS["dns_opt"] = _dns_key("dnsOpt", False)


@_handler("extra_hosts")
def _extra_hosts(service: _Service, node: Node) -> None:
    """List (``HOST:IP`` or compose v2's ``HOST=IP``) or mapping (``HOST: IP`` or a list of
    addresses); IPv6 may be bracketed; ``host-gateway`` is passed to the engine."""
    pairs = kv_pairs(node, "host")
    if pairs is None:
        service.ctx.error(node, "extra_hosts must be a list of 'HOST:IP' strings or a mapping")
        return
    out = []
    for host, ip in pairs:
        values = ip.value if isinstance(ip.value, list) else [ip]
        if ip.value is None or ip.value == "" or not values:
            service.ctx.error(ip, f"extra_hosts entry {host!r} has no address: expected 'HOST:IP' or 'HOST:host-gateway'")
            continue
        for one in values:
            one = one if isinstance(one, Node) else ip.at(one)
            addr = str(one.value)
            if addr.startswith("[") and addr.endswith("]"):
                addr = addr[1:-1]
            out.append(one.at(f"{host}:{addr}"))
    service._set("extraHosts", node.at(out))


# ---------------------------------------------------------------------------- references
def _link_list(service: _Service, node: Node, key: str, internal: bool) -> None:
    items = _str_list(service, node, key, allow_string=False)
    if items is None:
        return
    out = []
    for item in items:
        name, _, alias = str(item.value).partition(":")
        if internal:
            native = _service_ref(service, item, name, key)
            if native is None:
                continue
            # compose resolves the link by the service name (or the alias) from this container
            out.append(item.at(f"{native}:{alias or name}"))
        else:
            out.append(item)
    service._set("links" if internal else "externalLinks", node.at(out))


HANDLERS["links"] = lambda service, node: _link_list(service, node, "links", True)
HANDLERS["external_links"] = lambda service, node: _link_list(service, node, "external_links", False)


@_handler("network_mode")
def _network_mode(service: _Service, node: Node) -> None:
    if not isinstance(node.value, str):
        service.ctx.error(node, "network_mode must be a string: host, none, bridge, service:NAME or container:NAME")
        return
    if "networks" in service.node.value:
        service.ctx.error(node, f"service {service.key!r} declares both network_mode and networks, which exclude "
                                "each other (as in compose): keep one")
        return
    kind, _, name = node.value.partition(":")
    if kind == "service":
        native = _service_ref(service, node, name, "network_mode")
        if native is None:
            return
        service._set("networkMode", node.at(f"service:{native}"))
        return
    service._set("networkMode", node)


@_handler("volumes_from")
def _volumes_from(service: _Service, node: Node) -> None:
    items = _str_list(service, node, "volumes_from", allow_string=False)
    if items is None:
        return
    out = []
    for item in items:
        parts = str(item.value).split(":")
        if parts[0] == "container" and len(parts) >= 2:
            out.append(item)
            continue
        if parts[0] == "service" and len(parts) >= 2:
            parts = parts[1:]
        name, mode = parts[0], parts[1:]
        if len(mode) > 1 or (mode and mode[0] not in ("ro", "rw")):
            service.ctx.error(item, f"invalid volumes_from {item.value!r}: expected 'SERVICE[:ro|:rw]' or "
                                    "'container:NAME[:ro|:rw]'")
            continue
        native = _service_ref(service, item, name, "volumes_from")
        if native is not None:
            out.append(item.at(f"service:{native}" + (f":{mode[0]}" if mode else "")))
    service._set("volumesFrom", node.at(out))


# ---------------------------------------------------------------------------- networks
_ENDPOINT = {"aliases": "aliases", "ipv4_address": "ipv4Address", "ipv6_address": "ipv6Address",
             "mac_address": "macAddress", "priority": "priority", "link_local_ips": "linkLocalIps",
             "driver_opts": "driverOpts"}


@_handler("networks")
def _networks(service: _Service, node: Node) -> None:
    pairs = names_map(node)
    if pairs is None:
        service.ctx.error(node, "networks must be a list of names or a mapping")
        return
    out: list[Node] = []
    endpoints: dict[str, Node] = {}
    for name, cfg in pairs:
        if name not in service.ctx.networks:
            service.ctx.error(cfg, f"service {service.key!r} refers to undefined network {name!r}: "
                                   "declare it under the top-level `networks:`")
            continue
        engine_name = service.ctx.networks[name]
        out.append(cfg.at(engine_name))
        if cfg.value is not None and not isinstance(cfg.value, dict):
            service.ctx.error(cfg, f"network {name!r} of service {service.key!r} must be a mapping "
                                   "(aliases, ipv4_address, ...) or empty")
            continue
        endpoint: dict[str, Node] = {}
        for sub, sub_node in (cfg.value or {}).items():
            if sub in _ENDPOINT:
                if sub in ("aliases", "link_local_ips"):
                    items = _str_list(service, sub_node, f"networks.{name}.{sub}", allow_string=False)
                    if items is None:
                        continue
                    sub_node = sub_node.at(items)
                elif sub == "driver_opts":
                    sub_node = _map(service, sub_node, f"networks.{name}.driver_opts")
                endpoint[_ENDPOINT[sub]] = sub_node
            elif not str(sub).startswith("x-"):
                service.ctx.unsupported(sub_node, f"networks.{sub}")
        if endpoint:
            endpoints[engine_name] = cfg.at(endpoint)
    service._set("networks", node.at(out))
    if endpoints:
        service._set("endpoints", node.at(endpoints))


def _map(service: _Service, node: Node, key: str) -> Node:
    pairs = kv_pairs(node)
    if pairs is None:
        service.ctx.error(node, f"{key} must be a mapping (or a list of KEY=VALUE)")
        return node.at({})
    return node.at({k: (v if v.value is not None else v.at("")) for k, v in pairs})


def finish(service: _Service) -> None:
    """After every key: a network_mode service joins no networks (compose gives it none);
    the networks and named volumes it uses carry how they are created (or external)."""
    if "networkMode" in service.spec:
        service.spec.pop("networks", None)
        service.spec.pop("aliases", None)  # no project network: the service name cannot be an alias
    nets = service.spec.get("networks")
    specs = {str(n.value): service.ctx.network_specs[str(n.value)]
             for n in (nets.value if nets is not None and isinstance(nets.value, list) else [])
             if str(n.value) in service.ctx.network_specs}
    if specs:
        service._set("networkSpecs", service.node.at(specs))
    vols: dict[str, Node] = {}
    for item in service.volumes:
        source = str(item.value).split(":", 1)[0]
        if source in service.ctx.volume_specs:
            vols[source] = service.ctx.volume_specs[source]
    if vols:
        service._set("volumeSpecs", service.node.at(vols))


# ---------------------------------------------------------------------------- top level
_NETWORK_KEYS = {"driver": "driver", "driver_opts": "driverOpts", "ipam": "ipam", "internal": "internal",
                 "attachable": "attachable", "enable_ipv6": "enableIpv6", "labels": "labels"}
_VOLUME_KEYS = {"driver": "driver", "driver_opts": "driverOpts", "labels": "labels"}
_IPAM_POOL = {"subnet": "subnet", "ip_range": "ipRange", "gateway": "gateway", "aux_addresses": "auxAddresses"}


def _truthy(node: Node | None) -> bool:
    v = None if node is None else node.value
    return v is True or (isinstance(v, str) and v.lower() in ("true", "yes", "1"))


def resources(top: Node | None, ctx: _Ctx, kind: str, names: dict[str, str], specs: dict[str, Node]) -> None:
    """Top-level ``volumes:`` / ``networks:``: compose name -> engine name (``names``) and
    engine name -> native ``networkSpecs``/``volumeSpecs`` entry (``specs``, only where
    something differs from the default)."""
    if top is None or top.value is None:
        return
    if not isinstance(top.value, dict):
        ctx.error(top, f"top-level `{kind}` must be a mapping of names")
        return
    for key, node in top.value.items():
        if node.value is not None and not isinstance(node.value, dict):
            ctx.error(node, f"a {kind[:-1]} definition must be a mapping (or empty)")
            continue
        cfg: dict[Any, Node] = node.value or {}
        named = _engine_name(str(key), cfg, kind, ctx)
        if named is None:
            continue
        engine, external = named
        names[str(key)] = engine
        out: dict[str, Node] = {}
        if external:
            out["external"] = (cfg.get("external") or node).at(True)
        for sub, sub_node in cfg.items():
            _resource_key(str(key), str(sub), sub_node, kind, external, ctx, out)
        if out:
            specs[engine] = node.at(out)


def _engine_name(key: str, cfg: dict[Any, Node], kind: str, ctx: _Ctx) -> tuple[str, bool] | None:
    """A top-level network / volume's engine name and whether it is external (also the
    legacy ``external: {name: x}``); None after an error."""
    external_node = cfg.get("external")
    external = _truthy(external_node)
    explicit = cfg.get("name")
    if external_node is not None and isinstance(external_node.value, dict):  # legacy `external: {name: x}`
        external = True
        explicit = explicit or external_node.get("name")
    if explicit is not None and not isinstance(explicit.value, str):
        ctx.error(explicit, f"the name of {kind[:-1]} {key!r} must be a string")
        return None
    if explicit is not None and explicit.value == "":  # typically `name: ${UNSET}`: compose reads it as unset
        ctx.warn(explicit, f"{kind}.name", f"empty: treated as not set, as compose does (the {kind[:-1]} is "
                 f"named {key if external else ctx.project + '_' + key!r})")
        explicit = None
    engine = str(explicit.value) if explicit is not None else (key if external else f"{ctx.project}_{key}")
    return engine, external


def _resource_key(key: str, sub: str, sub_node: Node, kind: str, external: bool, ctx: _Ctx,
                  out: dict[str, Node]) -> None:
    """One key of a top-level network / volume definition into ``out`` (its native spec)."""
    keys = _NETWORK_KEYS if kind == "networks" else _VOLUME_KEYS
    if sub in ("name", "external") or sub.startswith("x-"):
        return
    if sub not in keys:
        ctx.unsupported(sub_node, f"{kind}.{sub}")
    elif external:
        ctx.error(sub_node, f"{kind[:-1]} {key!r} is external, so `{sub}` cannot apply to it "
                            "(reconcile never creates it; as in compose)")
    elif sub == "driver" and kind == "networks" and sub_node.value in _SWARM_DRIVERS:
        warn(ctx, sub_node, f"networks.driver: {sub_node.value}", "needs a swarm, which a single host does "
             "not have; the network is created with the bridge driver")
    elif sub in ("driver_opts", "labels"):
        pairs = kv_pairs(sub_node)
        if pairs is None:
            ctx.error(sub_node, f"{kind}.{sub} must be a mapping (or a list of KEY=VALUE)")
            return
        out[keys[sub]] = sub_node.at({k: (v if v.value is not None else v.at("")) for k, v in pairs})
    else:
        out[keys[sub]] = _ipam(sub_node, ctx) if sub == "ipam" else sub_node


def _ipam(node: Node, ctx: _Ctx) -> Node:
    if not isinstance(node.value, dict):
        ctx.error(node, "networks.ipam must be a mapping (driver, config, options)")
        return node.at({})
    out: dict[str, Node] = {}
    for sub, sub_node in node.value.items():
        if sub in ("driver", "options"):
            out[sub] = sub_node
        elif sub == "config":
            if not isinstance(sub_node.value, list) or not all(isinstance(p.value, dict) for p in sub_node.value):
                ctx.error(sub_node, "networks.ipam.config must be a list of mappings (subnet, ip_range, gateway, "
                                    "aux_addresses)")
                continue
            pools = []
            for pool in sub_node.value:
                one: dict[str, Node] = {}
                for k, v in pool.value.items():
                    if k in _IPAM_POOL:
                        one[_IPAM_POOL[k]] = v
                    else:
                        ctx.unsupported(v, f"networks.ipam.config.{k}")
                pools.append(pool.at(one))
            out["config"] = sub_node.at(pools)
        elif not str(sub).startswith("x-"):
            ctx.unsupported(sub_node, f"networks.ipam.{sub}")
    return node.at(out)
