"""Compose networking keys end to end (issue 10), against the real engine.

- ``network_mode: service:vpn`` (+ ``volumes_from``): the dependent shares vpn's
  network stack; when vpn's container is replaced (its spec changed, or ``docker rm -f``
  with a controller running) the dependent is recreated onto the new one, audited with
  that reason. vpn has a ``container_name``: exactly that name, owned, healed.
- long-form aliases, a fixed ``ipv4_address`` on an ipam subnet, ``extra_hosts:
  host-gateway``, ``dns``/``dns_search``/``dns_opt`` in ``docker inspect``; ``links``
  (resolvable from the linking container) in a test of its own (Podman has no links).
- an external network and an external volume (created here with ``docker network
  create`` / ``docker volume create``) are used, and left untouched by ``delete
  --volumes`` and ``apply --prune --volumes``; a missing one is exit 2 naming it.

Compose files are written by the tests; project names carry the run prefix; nothing is
published.
"""

from __future__ import annotations

import subprocess
import zlib
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.e2e.conftest import (BASE_IMAGE, RUN_ID, TEST_LABEL, Harness, engine_is_podman, remove_anonymous_volume,
                                store_digest, wait_for)

pytestmark = pytest.mark.e2e


def _compose(rc: Harness, body: str, name: str = "compose.yaml") -> str:
    path = Path(rc.tmp) / name
    path.write_text(f"name: {rc.prefix}\n" + body)
    return str(path)


def _labels() -> str:
    return f"{{{TEST_LABEL}: '{RUN_ID}'}}"


def _one(rc: Harness, service: str) -> Any:
    cs = [c for c in rc.containers(f"{rc.prefix}-{service}") if c.status == "running"]
    assert len(cs) == 1, f"expected one running container of {service}, got {[c.name for c in cs]}"
    return cs[0]


def _exec(rc: Harness, container: Any, *cmd: str) -> tuple[int, str]:
    code, out = container.exec_run(list(cmd))
    return code, out.decode(errors="replace")


@pytest.mark.podman_unsupported(
    "Podman refuses to remove a container whose network namespace another container joined "
    "(`network_mode: service:vpn`), even forced: \"has dependent containers which must be removed before it\" "
    "(its compatible API has no way to remove the dependents with it). So neither the controller's recreate of "
    "vpn nor the test's own `docker rm -f` of it can happen; Docker removes it and the dependent is recreated")
def test_network_mode_service_follows_its_peer_and_container_name(rc: Harness) -> None:
    vpn_name = f"{rc.prefix}-the-vpn"
    body = f"""services:
  vpn:
    image: {BASE_IMAGE}
    command: [sleep, "3600"]
    init: true
    restart: always
    container_name: {vpn_name}
    environment: {{GEN: "1"}}
    volumes: [/shared]
    labels: {_labels()}
  app:
    image: {BASE_IMAGE}
    command: [sleep, "3600"]
    init: true
    restart: always
    network_mode: service:vpn
    volumes_from: ["vpn:ro"]
    labels: {_labels()}
"""
    f = _compose(rc, body)
    rc.run("apply", "-f", f, "--wait", "--timeout", "90s")
    vpn, app = _one(rc, "vpn"), _one(rc, "app")
    assert vpn.name == vpn_name  # exactly the compose container_name
    assert vpn.labels["io.reconcile.instance"] == rc.instance  # and owned
    assert app.attrs["HostConfig"]["NetworkMode"] == f"container:{vpn.id}"
    assert app.labels["io.reconcile.network-from"] == vpn.id
    assert app.attrs["HostConfig"]["VolumesFrom"] == [f"{vpn.id}:ro"]
    assert any(m["Destination"] == "/shared" and not m["RW"] for m in app.attrs["Mounts"])

    # vpn replaced because its spec changed: app follows, audited with the reason
    rc.run("apply", "-f", _compose(rc, body.replace('GEN: "1"', 'GEN: "2"')), "--wait", "--timeout", "90s")
    vpn2 = _one(rc, "vpn")
    assert vpn2.id != vpn.id and vpn2.name == vpn_name
    # the recreate kept vpn's anonymous volume (as compose does): its data is not left behind
    assert _volume_at(vpn2, "/shared") == _volume_at(vpn, "/shared"), vpn2.attrs["Mounts"]
    app2 = wait_for(lambda: (lambda c: c if c.attrs["HostConfig"]["NetworkMode"] == f"container:{vpn2.id}" else None)(
        _one(rc, "app")), 60, what="app recreated onto the new vpn container")
    assert app2.id != app.id
    reason = f"network_mode service:{rc.prefix}-vpn: its container was replaced"
    rows = [e for e in rc.history(f"{rc.prefix}-app", "Recreated") if e["container_id"] == app2.id]
    assert rows and reason in rows[0]["reason"], rc.history(f"{rc.prefix}-app")

    # vpn's container removed behind the controller's back: healed under the same name, app follows
    rc.start_daemon()
    rc.client.api.remove_container(vpn2.id, force=True)
    vpn3 = wait_for(lambda: next((c for c in _listed(rc, f"{rc.prefix}-vpn")
                                  if c.id != vpn2.id and c.status == "running"), None), 60, what="vpn healed")
    assert vpn3.name == vpn_name
    app3 = wait_for(lambda: next((c for c in _listed(rc, f"{rc.prefix}-app") if c.status == "running"
                                  and c.attrs["HostConfig"]["NetworkMode"] == f"container:{vpn3.id}"), None),
                    90, what="app recreated onto the healed vpn container")
    assert wait_for(lambda: [e for e in rc.events(f"{rc.prefix}-app", "Recreated")
                             if e["container_id"] == app3.id and reason in e["reason"]], 20, what="audit row")
    # vpn2's volume went with the container this test removed (app2, which mounted it, is gone now)
    remove_anonymous_volume(rc.client, _volume_at(vpn2, "/shared"))


def _volume_at(container: Any, dest: str) -> str:
    """The name of the volume mounted at ``dest`` in a container."""
    return next(str(m["Name"]) for m in container.attrs["Mounts"] if m["Destination"] == dest)


def _listed(rc: Harness, service: str) -> list[Any]:
    """The service's containers, or [] while the controller is replacing one (a container
    listed and then removed before it is inspected is the engine's answer, not a failure)."""
    try:
        return list(rc.containers(service))
    except docker.errors.NotFound:
        return []


def _subnet(rc: Harness) -> tuple[str, str]:
    n = zlib.crc32(rc.prefix.encode()) % 200 + 20
    return f"10.231.{n}.0/24", f"10.231.{n}.10"


def test_aliases_fixed_ip_extra_hosts_and_dns(rc: Harness) -> None:
    subnet, ip = _subnet(rc)
    body = f"""services:
  db:
    image: {BASE_IMAGE}
    command: [sleep, "3600"]
    init: true
    expose: ["5432"]
    networks:
      front:
        aliases: [database, primary-db]
        ipv4_address: {ip}
    labels: {_labels()}
  web:
    image: {BASE_IMAGE}
    command: [sleep, "3600"]
    init: true
    networks: [front]
    extra_hosts: ["host.docker.internal:host-gateway", "static.internal=10.1.2.3"]
    dns: [127.0.0.1]
    dns_search: [example.internal]
    dns_opt: ["ndots:1"]
    labels: {_labels()}
networks:
  front:
    ipam:
      config: [{{subnet: {subnet}}}]
    labels: {{purpose: e2e}}
"""
    rc.run("apply", "-f", _compose(rc, body), "--wait", "--timeout", "90s")
    net = rc.client.api.inspect_network(f"{rc.prefix}_front")
    assert net["IPAM"]["Config"][0]["Subnet"] == subnet and net["Labels"]["purpose"] == "e2e"
    db, web = _one(rc, "db"), _one(rc, "web")
    assert db.attrs["NetworkSettings"]["Networks"][f"{rc.prefix}_front"]["IPAddress"] == ip
    assert "5432/tcp" in db.attrs["Config"]["ExposedPorts"]
    # aliases resolve from another container on the network
    probe = rc.client.containers.run(BASE_IMAGE, ["sh", "-c", "ping -c1 -W2 database && ping -c1 -W2 primary-db"],
                                     network=f"{rc.prefix}_front", labels={TEST_LABEL: RUN_ID}, detach=True)
    try:
        assert probe.wait(timeout=30)["StatusCode"] == 0, probe.logs().decode()
        assert ip in probe.logs().decode()
    finally:
        probe.remove(force=True)
    # host-gateway is the engine's address for the host, written into /etc/hosts
    _code, hosts = _exec(rc, web, "cat", "/etc/hosts")
    line = next(ln for ln in hosts.splitlines() if "host.docker.internal" in ln)
    assert "host-gateway" not in line and line.split()[0].count(".") == 3, hosts
    assert "10.1.2.3\tstatic.internal" in hosts or "10.1.2.3 static.internal" in hosts, hosts
    host = web.attrs["HostConfig"]
    assert (host["Dns"], host["DnsSearch"], host["DnsOptions"]) == (["127.0.0.1"], ["example.internal"], ["ndots:1"])
    if engine_is_podman():  # Podman 4.3 does not resolve host-gateway: the controller sends the network's gateway
        gateway = net["IPAM"]["Config"][0]["Gateway"]
        assert line.split()[0] == gateway, hosts
        assert sorted(host["ExtraHosts"]) == [f"host.docker.internal:{gateway}", "static.internal:10.1.2.3"]
    else:
        assert sorted(host["ExtraHosts"]) == ["host.docker.internal:host-gateway", "static.internal:10.1.2.3"]


@pytest.mark.podman_unsupported(
    "Podman has no container links: its Docker-compatible API accepts `Links` and ignores them, so a link's "
    "alias never resolves (`ping: bad address 'legacydb'`); the controller warns that the key has no effect there")
def test_a_links_alias_resolves_from_the_linking_container_to_its_target(rc: Harness) -> None:
    subnet, ip = _subnet(rc)
    body = f"""services:
  db:
    image: {BASE_IMAGE}
    command: [sleep, "3600"]
    init: true
    networks:
      front:
        ipv4_address: {ip}
    labels: {_labels()}
  web:
    image: {BASE_IMAGE}
    command: [sleep, "3600"]
    init: true
    links: ["db:legacydb"]
    networks: [front]
    labels: {_labels()}
networks:
  front:
    ipam:
      config: [{{subnet: {subnet}}}]
"""
    rc.run("apply", "-f", _compose(rc, body), "--wait", "--timeout", "90s")
    web = _one(rc, "web")
    # the link alias resolves from the linking container, to db
    code, out = _exec(rc, web, "ping", "-c1", "-W2", "legacydb")
    assert code == 0 and ip in out, out


@pytest.fixture
def externals(rc: Harness, dclient: docker.DockerClient) -> Any:
    labels = {TEST_LABEL: RUN_ID}
    net = dclient.networks.create(f"{rc.prefix}-extnet", driver="bridge", labels=labels)
    # the volume even carries the labels of a volume reconcile made for the service (as if it
    # had been created by reconcile before it was declared external): `external` alone keeps it
    vol = dclient.volumes.create(f"{rc.prefix}-extvol", labels={
        **labels, "io.reconcile.managed": "true", "io.reconcile.instance": rc.instance,
        "io.reconcile.service": f"{rc.prefix}-keeper"})
    try:
        yield net.name, vol.name
    finally:
        for c in dclient.containers.list(all=True, filters={"label": f"io.reconcile.instance={rc.instance}"}):
            c.remove(force=True)
        net.remove()
        vol.remove(force=True)


def test_external_network_and_volume_are_never_created_or_removed(rc: Harness, externals: tuple[str, str]) -> None:
    net, vol = externals

    def body(service: str) -> str:
        return f"""services:
  {service}:
    image: {BASE_IMAGE}
    command: [sleep, "3600"]
    init: true
    networks: [ext]
    volumes: [extdata:/ext, owndata:/own]
    labels: {_labels()}
networks:
  ext: {{external: true, name: {net}}}
volumes:
  extdata: {{external: true, name: {vol}}}
  owndata: {{}}
"""
    f = _compose(rc, body("keeper"))
    rc.run("apply", "-f", f, "--wait", "--timeout", "90s")
    c = _one(rc, "keeper")
    assert list(c.attrs["NetworkSettings"]["Networks"]) == [net]
    assert {m["Name"] for m in c.attrs["Mounts"] if m["Type"] == "volume"} == {vol, f"{rc.prefix}_owndata"}
    out = rc.run("delete", f"{rc.prefix}-keeper", "--volumes")
    assert f"kept volume {vol}: it is external" in out.stdout + out.stderr
    api = rc.client.api
    assert api.inspect_network(net)["Name"] == net and api.inspect_volume(vol)["Name"] == vol
    assert not rc.client.volumes.list(filters={"name": f"{rc.prefix}_owndata"})  # --volumes did act
    assert api.inspect_network(net).get("Labels", {}).get("io.reconcile.managed") is None

    rc.run("apply", "-f", f, "--wait", "--timeout", "90s")
    rc.run("apply", "-f", _compose(rc, body("other")), "--prune", "--volumes", "--wait", "--timeout", "90s")
    assert not rc.containers(f"{rc.prefix}-keeper")
    assert api.inspect_network(net)["Name"] == net and api.inspect_volume(vol)["Name"] == vol
    rc.run("delete", f"{rc.prefix}-other", "--volumes")
    assert api.inspect_network(net)["Name"] == net and api.inspect_volume(vol)["Name"] == vol

    # a missing external network: exit 2 naming it, nothing stored, nothing created
    before = store_digest(rc)
    missing = f"{rc.prefix}-nonet"
    proc = rc.run("apply", "-f", _compose(rc, body("ghost").replace(f"name: {net}", f"name: {missing}"), "bad.yaml"),
                  expect=2)
    assert f"external network '{missing}' does not exist" in proc.stderr, proc.stderr
    assert store_digest(rc) == before
    assert not rc.client.networks.list(names=[missing])
    assert subprocess.run(["docker", "network", "inspect", missing], capture_output=True).returncode != 0
