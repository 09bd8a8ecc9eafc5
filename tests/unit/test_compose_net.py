"""Networking keys (issue 10): compose mapping (crd_like.compose_net), native validation
(crd_like.spec_net), rendering (controller.render_net) and the planner's decision to
recreate a dependent whose network/volume peer was replaced. Pure: no engine."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from controller import labels as L
from controller import planner
from controller.actions import Create, Recreate
from controller.observed import Observed
from controller.render import DesiredService, prepare, render
from controller.render_net import Peer, with_peers
from crd_like import InvalidSpec, Issue
from crd_like.formats import LoadOptions, load_any
from crd_like.models import ServiceSpec
from crd_like.spec_net import service_refs

FILE = "ct/compose.yaml"


def load(text: str, warnings: list[str] | None = None) -> dict[str, Any]:
    opts = LoadOptions(environ={}, read_file=None, warnings=warnings if warnings is not None else [])
    return {r.name: r for r in load_any([(text.encode(), FILE, "/srv/ct")], opts)}


def project(body: str, top: str = "") -> str:
    """Service ``s`` with ``body`` (unindented keys), and services ``db`` and ``vpn``."""
    indented = "\n".join("    " + line for line in body.splitlines())
    return (f"name: ct\nservices:\n  s:\n    image: img\n{indented}\n  db:\n    image: db\n"
            f"  vpn:\n    image: vpn\n  extra:\n    image: x\n    profiles: [never]\n{top}")


def spec(body: str, top: str = "") -> dict[str, Any]:
    res = load(project(body, top))
    return res["ct-s"].spec.model_dump(mode="json", exclude_defaults=True)


def problems(text: str) -> list[Issue]:
    with pytest.raises(InvalidSpec) as info:
        load(text)
    return info.value.issues


# ---------------------------------------------------------------------------- every key's mapping
MAPPINGS: list[tuple[str, str, str, dict[str, Any]]] = [
    ("container_name", "container_name: my-web", "", {"containerName": "my-web"}),
    ("expose", "expose: [80, '53/udp', 8000-8002]", "", {"expose": ["80/tcp", "53/udp", "8000-8002/tcp"]}),
    ("networks long form", "networks:\n  front:\n    aliases: [a, b]\n    ipv4_address: 172.28.0.5\n"
     "    ipv6_address: 'fd00::5'\n    mac_address: 02:42:AC:11:00:02\n    priority: 100\n"
     "    link_local_ips: [169.254.1.1]\n    driver_opts: {com.example.opt: 1}",
     "networks: {front: {enable_ipv6: true, ipam: {config: [{subnet: 172.28.0.0/16}, {subnet: 'fd00::/64'}]}}}",
     {"networks": ["ct_front"], "endpoints": {"ct_front": {
         "aliases": ["a", "b"], "ipv4Address": "172.28.0.5", "ipv6Address": "fd00::5",
         "macAddress": "02:42:ac:11:00:02", "priority": 100, "linkLocalIps": ["169.254.1.1"],
         "driverOpts": {"com.example.opt": "1"}}}}),
    ("networks list", "networks: [front]", "networks: {front: {}}", {"networks": ["ct_front"]}),
    ("links", "links: [db, 'db:database']", "", {"links": ["ct-db:db", "ct-db:database"]}),
    ("external_links", "external_links: [redis, 'pg:postgres']", "", {"externalLinks": ["redis", "pg:postgres"]}),
    ("network_mode host", "network_mode: host", "", {"networkMode": "host"}),
    ("network_mode none", "network_mode: none", "", {"networkMode": "none"}),
    ("network_mode bridge", "network_mode: bridge", "", {"networkMode": "bridge"}),
    ("network_mode service", "network_mode: service:vpn", "", {"networkMode": "service:ct-vpn"}),
    ("network_mode container", "network_mode: container:other", "", {"networkMode": "container:other"}),
    ("volumes_from", "volumes_from: [db, 'vpn:ro', 'container:c1:rw', 'service:db:rw']", "",
     {"volumesFrom": ["service:ct-db", "service:ct-vpn:ro", "container:c1", "service:ct-db"]}),
    ("dns string", "dns: 1.1.1.1", "", {"dns": ["1.1.1.1"]}),
    ("dns list", "dns: [1.1.1.1, '2606:4700::1111']", "", {"dns": ["1.1.1.1", "2606:4700::1111"]}),
    ("dns_search", "dns_search: example.com", "", {"dnsSearch": ["example.com"]}),
    ("dns_opt", "dns_opt: [ndots:2, use-vc]", "", {"dnsOpt": ["ndots:2", "use-vc"]}),
    ("extra_hosts list", "extra_hosts: ['a:10.0.0.1', 'b=10.0.0.2', 'gw:host-gateway', 'v6:::1', 'br=[::2]']", "",
     {"extraHosts": ["a:10.0.0.1", "b:10.0.0.2", "gw:host-gateway", "v6:::1", "br:::2"]}),
    ("extra_hosts mapping", "extra_hosts: {a: 10.0.0.1, gw: host-gateway, multi: [10.0.0.3, 10.0.0.4]}", "",
     {"extraHosts": ["a:10.0.0.1", "gw:host-gateway", "multi:10.0.0.3", "multi:10.0.0.4"]}),
    ("external network", "networks: [outside]", "networks: {outside: {external: true}}",
     {"networks": ["outside"], "networkSpecs": {"outside": {"external": True}}}),
    ("external network named", "networks: [outside]", "networks: {outside: {external: true, name: real-net}}",
     {"networks": ["real-net"], "networkSpecs": {"real-net": {"external": True}}}),
    ("legacy external name", "networks: [outside]", "networks: {outside: {external: {name: old-net}}}",
     {"networks": ["old-net"], "networkSpecs": {"old-net": {"external": True}}}),
    ("external default network", "", "networks: {default: {external: true, name: shared}}",
     {"networks": ["shared"], "networkSpecs": {"shared": {"external": True}}}),
    ("network options", "networks: [front]",
     "networks:\n  front:\n    driver: bridge\n    driver_opts: {com.docker.network.bridge.name: br-x}\n"
     "    ipam: {driver: default, config: [{subnet: 172.28.0.0/16, ip_range: 172.28.5.0/24, gateway: 172.28.0.1,"
     " aux_addresses: {host1: 172.28.1.5}}]}\n    internal: true\n    attachable: true\n    enable_ipv6: true\n"
     "    labels: [a=b]",
     {"networks": ["ct_front"], "networkSpecs": {"ct_front": {
         "driverOpts": {"com.docker.network.bridge.name": "br-x"},
         "ipam": {"config": [{"subnet": "172.28.0.0/16", "ipRange": "172.28.5.0/24", "gateway": "172.28.0.1",
                              "auxAddresses": {"host1": "172.28.1.5"}}]},
         "internal": True, "attachable": True, "enableIpv6": True, "labels": {"a": "b"}}}}),
    ("external volume", "volumes: [data:/data]", "volumes: {data: {external: true}}",
     {"volumes": ["data:/data"], "volumeSpecs": {"data": {"external": True}}}),
    ("volume options", "volumes: [data:/data]", "volumes: {data: {driver: local, driver_opts: {type: tmpfs, "
     "device: tmpfs}, labels: {k: v}}}",
     {"volumes": ["ct_data:/data"], "volumeSpecs": {"ct_data": {"driverOpts": {"type": "tmpfs", "device": "tmpfs"},
                                                                "labels": {"k": "v"}}}}),
]


@pytest.mark.parametrize(("body", "top", "want"), [m[1:] for m in MAPPINGS], ids=[m[0] for m in MAPPINGS])
def test_compose_key_maps_onto_the_native_spec(body: str, top: str, want: dict[str, Any]) -> None:
    got = spec(body, top)
    for key, value in want.items():
        assert got.get(key) == value, (key, got)


def test_network_mode_service_drops_the_default_network_and_alias() -> None:
    got = spec("network_mode: service:vpn")
    assert "networks" not in got and "aliases" not in got


def test_overlay_driver_is_a_warning_naming_the_key() -> None:
    warnings: list[str] = []
    load(project("networks: [n]", "networks:\n  n: {driver: overlay}"), warnings)
    assert len(warnings) == 1 and warnings[0].startswith(f"{FILE}:14: networks.n.driver: ")
    assert "networks.driver: overlay" in warnings[0] and "bridge" in warnings[0]


# ---------------------------------------------------------------------------- every new error
ERRORS: list[tuple[str, str, str, int | None, str, str]] = [
    ("container_name with scale", "container_name: x\nscale: 2", "", 3, "services.s",
     "containerName 'x' names one container, but replicas is 2"),
    ("container_name not a string", "container_name: [x]", "", 5, "services.s.container_name", "must be a string"),
    ("bad container_name", "container_name: -x", "", 5, "services.s.container_name", "not a valid container name"),
    ("links unknown service", "links: [ghost]", "", 5, "services.s.links[0]",
     "refers to undefined service 'ghost' in links"),
    ("links to itself", "links: [s]", "", 5, "services.s.links[0]", "refers to itself in links"),
    ("links to inactive service", "links: [extra]", "", 5, "services.s.links[0]", "which is not enabled"),
    ("network_mode unknown service", "network_mode: service:ghost", "", 5, "services.s.network_mode",
     "refers to undefined service 'ghost' in network_mode"),
    ("network_mode and networks", "network_mode: host\nnetworks: [default]", "", 5, "services.s.network_mode",
     "declares both network_mode and networks"),
    ("network_mode bad value", "network_mode: wifi", "", 5, "services.s.network_mode", "invalid networkMode 'wifi'"),
    ("network_mode host with ports", "network_mode: host\nports: ['8080:80']", "", 3, "services.s",
     "networkMode 'host' cannot be combined with ports"),
    ("network_mode service with dns", "network_mode: service:vpn\ndns: 1.1.1.1", "", 3, "services.s",
     "networkMode 'service:ct-vpn' cannot be combined with dns"),
    ("network_mode container with expose", "network_mode: container:x\nexpose: [80]", "", 3, "services.s",
     "cannot be combined with expose"),
    ("network_mode container with extra_hosts", "network_mode: container:x\nextra_hosts: ['a:1.2.3.4']", "", 3,
     "services.s", "cannot be combined with extraHosts"),
    ("network_mode host with links", "network_mode: host\nlinks: [db]", "", 3, "services.s",
     "cannot be combined with links"),
    ("volumes_from unknown", "volumes_from: [ghost]", "", 5, "services.s.volumes_from[0]",
     "refers to undefined service 'ghost' in volumes_from"),
    ("volumes_from bad mode", "volumes_from: ['db:rx']", "", 5, "services.s.volumes_from[0]",
     "invalid volumes_from 'db:rx'"),
    ("dns not an ip", "dns: [dns.google]", "", 5, "services.s.dns[0]", "'dns.google' is not an IP address"),
    ("dns_search with space", "dns_search: ['a b']", "", 5, "services.s.dns_search[0]", "not a valid DNS search domain"),
    ("expose out of range", "expose: ['70000']", "", 5, "services.s.expose[0]", "expected ports 1-65535"),
    ("expose bad protocol", "expose: ['80/http']", "", 5, "services.s.expose[0]", "invalid expose protocol 'http'"),
    ("expose not a list", "expose: 80", "", 5, "services.s.expose", "must be a list of strings"),
    ("ipv4 not ipv4", "networks:\n  default:\n    ipv4_address: 'fd00::1'", "", 7,
     "services.s.networks.default.ipv4_address", "is not an IPv4 address"),
    ("fixed ip without subnet", "networks:\n  default:\n    ipv4_address: 10.0.0.5", "", 3, "services.s",
     "endpoints.ct_default.ipv4Address 10.0.0.5 needs a subnet that contains it"),
    ("fixed ip outside subnet", "networks:\n  n:\n    ipv4_address: 10.9.0.5", "networks:\n  n: {ipam: {config: "
     "[{subnet: 10.0.0.0/16}]}}", 3, "services.s", "endpoints.ct_n.ipv4Address 10.9.0.5 needs a subnet"),
    ("bad mac", "networks:\n  default:\n    mac_address: zz", "", 7, "services.s.networks.default.mac_address",
     "is not a MAC address"),
    ("two macs", "networks:\n  default: {mac_address: '02:00:00:00:00:01'}\n  n: {mac_address: '02:00:00:00:00:02'}",
     "networks: {n: {}}", 3, "services.s", "macAddress is set on networks"),
    ("aliases not a list", "networks:\n  default:\n    aliases: {a: 1}", "", 7, "services.s.networks.default.aliases",
     "must be a list of strings"),
    ("extra_hosts no address", "extra_hosts: ['justahost']", "", 5, "services.s.extra_hosts[0]", "has no address"),
    ("extra_hosts bad address", "extra_hosts: ['a:not-an-ip']", "", 5, "services.s.extra_hosts[0]",
     "is not a valid extra host"),
    ("external with driver", "networks: [n]", "networks:\n  n: {external: true, driver: bridge}", 14,
     "networks.n.driver", "is external, so `driver` cannot apply to it"),
    ("external volume with driver_opts", "volumes: [v:/v]", "volumes:\n  v: {external: true, driver_opts: {a: b}}",
     14, "volumes.v.driver_opts", "is external, so `driver_opts` cannot apply to it"),
    ("bad subnet", "networks: [n]", "networks:\n  n: {ipam: {config: [{subnet: 10.0.0.1/8}]}}", 14,
     "networks.n.ipam.config[0].subnet", "is not a subnet"),
    ("ipam config not a list", "networks: [n]", "networks:\n  n: {ipam: {config: {subnet: x}}}", 14,
     "networks.n.ipam.config", "must be a list of mappings"),
]


@pytest.mark.parametrize(("body", "top", "line", "field", "message"), [e[1:] for e in ERRORS],
                         ids=[e[0] for e in ERRORS])
def test_new_errors_name_file_line_and_field(body: str, top: str, line: int | None, field: str, message: str) -> None:
    found = problems(project(body, top))
    assert [(i.file, i.line, i.field) for i in found][:1] == [(FILE, line, field)], found
    assert message in found[0].message, found[0].message
    assert "{'" not in found[0].message  # no Python reprs of input mappings


NATIVE_ERRORS: list[tuple[str, dict[str, Any], str]] = [
    ("containerName with replicas", {"containerName": "x", "replicas": 3}, "replicas is 3"),
    ("endpoint for an unknown network", {"networks": ["a"], "endpoints": {"b": {}}}, "not in `networks`"),
    ("networkSpecs for an unknown network", {"networkSpecs": {"b": {}}}, "not in `networks`"),
    ("volumeSpecs for an unmounted volume", {"volumeSpecs": {"v": {}}}, "no entry of `volumes` mounts"),
    ("macAddress not on the primary network", {"networks": ["a", "b"], "endpoints": {"b": {"macAddress":
     "02:00:00:00:00:01"}}}, "give b the highest priority"),
    ("networkMode none with networks", {"networkMode": "none", "networks": ["a"]}, "cannot be combined with networks"),
    ("networkMode bridge with aliases", {"networkMode": "bridge", "aliases": ["x"]}, "cannot be combined with aliases"),
    ("networkMode container with hostname", {"networkMode": "container:x", "hostname": "h"}, "hostname"),
    ("bad link", {"links": ["a:b:c"]}, "invalid link 'a:b:c'"),
    ("bad volumesFrom", {"volumesFrom": ["db"]}, "expected 'service:NAME[:ro|:rw]'"),
]


@pytest.mark.parametrize(("fields", "message"), [n[1:] for n in NATIVE_ERRORS], ids=[n[0] for n in NATIVE_ERRORS])
def test_native_networking_validation(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=None) as info:
        ServiceSpec(image="x", **fields)
    assert message in str(info.value)


@pytest.mark.parametrize(("fields", "refs"), [
    ({}, {}),
    ({"networkMode": "service:vpn"}, {"vpn": "network_mode service:vpn"}),
    ({"networkMode": "container:vpn"}, {}),
    ({"volumesFrom": ["service:data:ro", "container:x"]}, {"data": "volumes_from service:data:ro"}),
    ({"links": ["db:database"], "networks": ["n"]}, {"db": "links db:database"}),
])
def test_service_refs(fields: dict[str, Any], refs: dict[str, str]) -> None:
    s = ServiceSpec(image="x", **fields)
    assert service_refs(s) == refs
    assert service_refs(s.model_dump(mode="json", exclude_defaults=True)) == refs


def test_new_fields_are_hash_neutral_and_change_the_hash_when_set() -> None:
    base = prepare("web", "Service", 1, {"image": "x"})
    assert base.container_hash == prepare("web", "Service", 1, {"image": "x", "dns": [], "expose": []}).container_hash
    for extra in ({"dns": ["1.1.1.1"]}, {"expose": [80]}, {"containerName": "w"}, {"networkMode": "host"},
                  {"extraHosts": ["a:host-gateway"]}, {"links": ["db"]}):
        assert prepare("web", "Service", 1, {"image": "x", **extra}).container_hash != base.container_hash, extra


# ---------------------------------------------------------------------------- rendering
def _svc(name: str, **fields: Any) -> DesiredService:
    return prepare(name, "Service", 1, {"image": "img", **fields})


def _obs(service: str, cid: str, *, hash_: str = "", labels: dict[str, str] | None = None, state: str = "running",
         created: float = 1.0, networks: tuple[str, ...] = ()) -> Observed:
    return Observed(id=cid, name=f"{service}-1", service=service, replica=1, instance="i", spec_hash=hash_,
                    generation=1, state=state, exit_code=None, health="", image_id="", created=created,
                    labels=labels or {}, networks=networks)


def test_render_network_fields() -> None:
    svc = _svc("web", containerName="exact", networks=["a", "b"], aliases=["w"], links=["db:database"],
               externalLinks=["ext"], expose=["8000-8001/udp"], dns=["1.1.1.1"], dnsSearch=["x.internal"],
               dnsOpt=["ndots:1"], endpoints={"b": {"priority": 5, "aliases": ["bee"], "ipv4Address": "10.0.0.2",
                                                    "macAddress": "02:00:00:00:00:09"}},
               networkSpecs={"b": {"ipam": {"config": [{"subnet": "10.0.0.0/24"}]}}})
    svc = replace(svc, peers={"db": Peer("dbid", "db-1", True)})
    cfg = render(svc, "inst", 1)
    assert cfg.name == "exact"
    assert cfg.networks == ["b", "a"]  # highest priority first: the primary network
    assert cfg.endpoints["b"] == {"aliases": ["web", "w", "bee"], "links": [("db-1", "database"), ("ext", "ext")],
                                  "ipv4_address": "10.0.0.2"}
    assert cfg.endpoints["a"]["aliases"] == ["web", "w"]
    assert cfg.create["mac_address"] == "02:00:00:00:00:09"
    assert {"8000/udp", "8001/udp"} <= set(cfg.exposed)
    assert (cfg.host["dns"], cfg.host["dns_search"], cfg.host["dns_opt"]) == (["1.1.1.1"], ["x.internal"], ["ndots:1"])


def test_render_network_mode_and_volumes_from_use_the_peer_container() -> None:
    svc = replace(_svc("app", networkMode="service:vpn", volumesFrom=["service:vpn:ro", "container:c"]),
                  peers={"vpn": Peer("vpnid", "vpn-1", True)})
    cfg = render(svc, "inst", 1)
    assert cfg.host["network_mode"] == "container:vpnid" and cfg.networks == []
    assert cfg.host["volumes_from"] == ["vpnid:ro", "c:rw"]
    assert cfg.labels[L.NETWORK_FROM] == "vpnid" and cfg.labels[L.VOLUMES_FROM] == '{"vpn": "vpnid"}'


def test_with_peers_prefers_the_running_current_container() -> None:
    vpn = _svc("vpn")
    app = _svc("app", networkMode="service:vpn")
    observed = [_obs("vpn", "old", hash_=vpn.container_hash, state="exited", created=5),
                _obs("vpn", "new", hash_=vpn.container_hash, created=3)]
    out = with_peers({"vpn": vpn, "app": app}, observed)
    assert out["app"].peers == {"vpn": Peer("new", "vpn-1", True)} and out["vpn"].peers == {}


# ---------------------------------------------------------------------------- planner (pure)
def _plan(app: DesiredService, vpn: DesiredService, observed: list[Observed]) -> planner.ServicePlan:
    desired = with_peers({"vpn": vpn, "app": app}, observed)
    return planner.plan(desired, observed, {}, now=100.0).services["app"]


REPLACED = [
    # (case, app fields, label on app's container, vpn container id now, vpn state, expected action or None)
    ("same peer: nothing", {"networkMode": "service:vpn"}, {L.NETWORK_FROM: "v1"}, "v1", "running", None),
    ("peer replaced: recreate", {"networkMode": "service:vpn"}, {L.NETWORK_FROM: "v1"}, "v2", "running",
     "network_mode service:vpn: its container was replaced"),
    ("volumes_from peer replaced", {"volumesFrom": ["service:vpn"]}, {L.VOLUMES_FROM: '{"vpn": "v1"}'}, "v2",
     "running", "volumes_from service:vpn: its container was replaced"),
    ("peer replaced but not started: wait", {"networkMode": "service:vpn"}, {L.NETWORK_FROM: "v1"}, "v2", "created",
     None),
    ("container:NAME is not followed", {"networkMode": "container:vpn-1"}, {}, "v2", "running", None),
    ("links are not followed (names resolve)", {"links": ["vpn"], "networks": ["n"]}, {}, "v2", "running", None),
]


@pytest.mark.parametrize(("fields", "label", "vpn_id", "vpn_state", "want"), [r[1:] for r in REPLACED],
                         ids=[r[0] for r in REPLACED])
def test_planner_recreates_a_dependent_whose_peer_was_replaced(fields: dict[str, Any], label: dict[str, str],
                                                               vpn_id: str, vpn_state: str, want: str | None) -> None:
    vpn, app = _svc("vpn"), _svc("app", **fields)
    observed = [_obs("vpn", vpn_id, hash_=vpn.container_hash, state=vpn_state),
                _obs("app", "a1", hash_=app.container_hash, labels=label, networks=tuple(fields.get("networks", [])))]
    sp = _plan(app, vpn, observed)
    recreates = [a for a in sp.actions if isinstance(a, Recreate)]
    if want is None:
        assert not recreates, sp
    else:
        assert [(a.container_id, a.reason) for a in recreates] == [("a1", want)]
        assert recreates[0].changed_fields == (want.split(":")[0] + ":" + want.split(":")[1],)


def test_a_network_mode_dependent_waits_for_its_peer_then_is_created() -> None:
    vpn, app = _svc("vpn"), _svc("app", networkMode="service:vpn")
    sp = _plan(app, vpn, [])
    assert sp.state == planner.WAITING and not sp.actions and sp.waiting_for[0].startswith("vpn (started")
    sp = _plan(app, vpn, [_obs("vpn", "v1", hash_=vpn.container_hash)])
    assert [type(a) for a in sp.actions] == [Create]


def test_dependency_order_includes_implicit_references() -> None:
    desired = {"app": _svc("app", networkMode="service:vpn"), "vpn": _svc("vpn"),
               "web": _svc("web", links=["app"], networks=["n"])}
    assert planner.topological_order(desired) == ["vpn", "app", "web"]
    assert planner.dependents(desired, "vpn") == {"app", "web"}


@pytest.mark.parametrize(("peer_started", "own_started", "restart"), [
    (50.0, 40.0, True),   # the peer restarted after this container started: rejoin its new network stack
    (30.0, 40.0, False),  # the peer started first (the normal order): nothing to do
    (50.0, 0.0, False),   # nothing known about this container's start
])
def test_a_network_mode_dependent_restarts_when_its_peer_restarted(peer_started: float, own_started: float,
                                                                   restart: bool) -> None:
    from controller.actions import Restart
    from store.records import Status

    vpn, app = _svc("vpn"), _svc("app", networkMode="service:vpn")
    observed = [_obs("vpn", "v1", hash_=vpn.container_hash),
                _obs("app", "a1", hash_=app.container_hash, labels={L.NETWORK_FROM: "v1"})]
    statuses = {"vpn": Status(name="vpn", last_started_at=peer_started),
                "app": Status(name="app", last_started_at=own_started)}
    desired = with_peers({"vpn": vpn, "app": app}, observed)
    sp = planner.plan(desired, observed, statuses, now=100.0).services["app"]
    got = [a.reason for a in sp.actions if isinstance(a, Restart)]
    assert got == (["network_mode service:vpn: its container was restarted (the network stack shared with it is new)"]
                   if restart else [])


@pytest.mark.parametrize(("specs", "want"), [
    ({"a": {"containerName": "x"}, "b": {"containerName": "y"}}, []),
    ({"a": {"containerName": "x"}, "b": {"containerName": "x"}},
     [("b", "spec.containerName", "containerName 'x' is also the containerName of a")]),
    ({"a": {"networkSpecs": {"n": {"internal": True}}}, "b": {"networkSpecs": {"n": {"internal": True}}}}, []),
    ({"a": {"networkSpecs": {"n": {"internal": True}}}, "b": {"networkSpecs": {"n": {}}}},
     [("b", "spec.networkSpecs.n", "network 'n' is defined differently by a")]),
    ({"a": {"volumeSpecs": {"v": {"external": True}}}, "b": {"volumeSpecs": {"v": {"driver": "nfs"}}}},
     [("b", "spec.volumeSpecs.v", "volume 'v' is defined differently by a")]),
])
def test_shared_problems(specs: dict[str, Any], want: list[tuple[str, str, str]]) -> None:
    from crd_like.spec_net import shared_problems

    got = shared_problems(specs)
    assert [(n, f) for n, f, _m in got] == [(n, f) for n, f, _m in want]
    assert all(w[2] in g[2] for g, w in zip(got, want))
