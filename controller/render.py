"""Desired record -> the container configuration to create. Pure (no Docker, no SQL).

The engine's own restart policy is always ``no``: the controller owns restarts, so it
can apply backoff, storm limits and dependency order that the engine cannot.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
import json
import posixpath
from typing import Any

from controller import labels as L
from controller import files, render_host, render_net
from crd_like import units
from crd_like.hashing import container_hash
from crd_like.models import SPEC_MODELS, ServiceSpec

NANO = 1_000_000_000


@dataclass(frozen=True)
class DesiredService:
    """A desired record, validated and prepared for planning."""

    name: str
    kind: str
    generation: int
    spec: ServiceSpec
    container_hash: str
    suspended: bool = False
    env: dict[str, str] = field(default_factory=dict)  # resolved, secrets included: never print it
    secret_keys: frozenset[str] = frozenset()
    config_hash: str = ""
    config_files: dict[str, str] = field(default_factory=dict)
    build_hash: str = ""
    ref_error: str = ""
    peers: dict[str, render_net.Peer] = field(default_factory=dict)  # observed containers of referenced services
    files_root: str = ""  # where the controller writes spec.files (controller.files)
    # many hosts (controller.agent): the node this agent runs, and which replicas (1-based)
    # of the service are assigned to it; None = all of them (single host)
    node: str = ""
    replica_set: frozenset[int] | None = None

    @property
    def replicas(self) -> int:
        return int(self.spec.replicas)

    @property
    def wanted(self) -> tuple[int, ...]:
        """The replica indices this controller runs: all 1..replicas, or those assigned to
        its node (indices stay stable, so container names do not change when others move)."""
        every = range(1, self.replicas + 1)
        return tuple(every) if self.replica_set is None else tuple(r for r in every if r in self.replica_set)


def prepare(name: str, kind: str, generation: int, spec_data: dict[str, Any], suspended: bool = False,
            refs: dict[str, str] | None = None) -> DesiredService:
    """Validated desired service. Referenced files are resolved later (``with_refs``)."""
    spec = SPEC_MODELS.get(kind, ServiceSpec).model_validate(spec_data)
    if kind == "Job":  # a Job runs once per generation: a new generation is a new container
        refs = {**(refs or {}), "generation": str(generation)}
    env = {k: v for k, v in spec.env.items() if isinstance(v, str)}
    return DesiredService(name, kind, generation, spec, container_hash(spec, refs), suspended, env)


def has_refs(spec: ServiceSpec) -> bool:
    return bool(spec.envFiles or spec.build or any(not isinstance(v, str) for v in spec.env.values())
                or any(units.parse_volume(v).kind == "bind" for v in spec.volumes))


def with_refs(svc: DesiredService, env: dict[str, str], secret_keys: frozenset[str], files: dict[str, str],
              config_hash: str, build_hash: str, error: str) -> DesiredService:
    return replace(svc, env=env, secret_keys=secret_keys, config_files=files, config_hash=config_hash,
                   build_hash=build_hash, ref_error=error)


def container_name(svc: DesiredService, replica: int) -> str:
    """``<name>-<replica>``, or the spec's ``containerName``."""
    return render_net.container_name(svc.spec, svc.name, replica)


@dataclass(frozen=True)
class ContainerConfig:
    name: str
    image: str
    command: list[str] | None
    env: dict[str, str]
    labels: dict[str, str]
    port_bindings: dict[str, list[tuple[str, int | str | None]]]
    exposed: list[str]
    binds: list[str]
    volumes: list[str]  # named volumes to ensure exist
    anonymous: list[str]
    healthcheck: dict[str, Any] | None
    init: bool
    stop_signal: str | None
    stop_timeout: int
    host: dict[str, Any] = field(default_factory=dict)  # extra HostConfig settings
    create: dict[str, Any] = field(default_factory=dict)  # extra create_container arguments
    networks: list[str] = field(default_factory=list)  # joined in this order; the first at create
    endpoints: dict[str, dict[str, Any]] = field(default_factory=dict)  # network -> endpoint config kwargs
    network_specs: dict[str, Any] = field(default_factory=dict)  # network -> spec_net.NetworkSpec
    volume_specs: dict[str, Any] = field(default_factory=dict)  # volume -> spec_net.VolumeSpec
    checks: render_host.EngineChecks = field(default_factory=render_host.EngineChecks)  # done where the engine is known


def render(svc: DesiredService, instance: str, replica: int) -> ContainerConfig:
    spec = svc.spec
    bindings = _port_bindings(spec)
    binds, named, anonymous = _volumes(svc)
    host = _base_host(spec)
    host.update(render_host.host_config(spec))
    net = render_net.plan_network(svc)
    host.update(net.host)
    create: dict[str, Any] = render_host.create_args(spec)
    create.update(net.create)
    create.update(_process_args(spec))
    return ContainerConfig(
        name=container_name(svc, replica), image=spec.image, command=spec.command,
        env=dict(svc.env), labels=_labels(svc, instance, replica, net.labels), port_bindings=bindings,
        exposed=sorted(set(bindings) | set(net.exposed)),
        binds=binds, volumes=named, anonymous=anonymous, healthcheck=render_host.healthcheck(spec.healthcheck),
        init=spec.init, stop_signal=spec.stopSignal, stop_timeout=int(round(spec.stopGracePeriod)),
        host=host, create=create, networks=net.networks, endpoints=net.endpoints,
        network_specs=net.network_specs, volume_specs=net.volume_specs,
        checks=render_host.engine_checks(spec, svc.name),
    )


def inherit_anonymous(cfg: ContainerConfig, old_mounts: Iterable[Mapping[str, Any]],
                      image_volumes: Iterable[str]) -> ContainerConfig:
    """The replacement of a container keeps its anonymous volumes, as compose does.

    An anonymous volume (``volumes: [/data]``, or a ``VOLUME`` of the image) has no name
    to find it by again: a recreate that made a new one would leave the data behind in a
    dangling volume (a database image with ``VOLUME`` and no named volume would come back
    empty). So each volume mount of the old container at a path the new one still wants
    anonymous, and that no bind or named volume of the new one claims, is mounted by its
    name at the same path, with the same read-only flag (compose-go's
    ``buildContainerMountOptions`` with ``inherit``). Mounts that came through
    ``volumes_from`` are at paths the spec does not declare, so they are left alone.
    """
    wanted = _anonymous_paths(cfg, image_volumes)
    keep: dict[str, str] = {}
    for m in old_mounts:
        dest, name = posixpath.normpath(str(m.get("Destination") or "/")), str(m.get("Name") or "")
        if m.get("Type") == "volume" and name and dest in wanted:
            keep.setdefault(dest, f"{name}:{dest}:{'rw' if m.get('RW', True) else 'ro'}")
    if not keep:
        return cfg
    anonymous = [t for t in cfg.anonymous if posixpath.normpath(t) not in keep]
    return replace(cfg, binds=[*cfg.binds, *keep.values()], anonymous=anonymous)


def _anonymous_paths(cfg: ContainerConfig, image_volumes: Iterable[str]) -> set[str]:
    """The paths where the new container gets an anonymous volume: its own and the image's,
    less those a bind (named volumes included) or a tmpfs claims."""
    wanted = {posixpath.normpath(t) for t in (*cfg.anonymous, *image_volumes)}
    wanted -= {posixpath.normpath(b.split(":")[1]) for b in cfg.binds if ":" in b}
    return wanted - {posixpath.normpath(t) for t in cfg.host.get("tmpfs") or {}}


def _port_bindings(spec: ServiceSpec) -> dict[str, list[tuple[str, int | str | None]]]:
    bindings: dict[str, list[tuple[str, int | str | None]]] = {}
    for p in spec.ports:
        for cport, binding in units.parse_port(p).bindings():
            bindings.setdefault(cport, []).append(binding)
    return bindings


def _volumes(svc: DesiredService) -> tuple[list[str], list[str], list[str]]:
    """(binds, named volumes to ensure, anonymous volume targets)."""
    binds, named, anonymous = [], [], []
    for v in svc.spec.volumes:
        m = units.parse_volume(v)
        if m.kind == "anonymous":
            anonymous.append(m.target)
            continue
        binds.append(f"{m.source}:{m.target}:{m.engine_mode()}")
        if m.kind == "volume":
            named.append(m.source)
    if svc.spec.files:  # written by the controller before each pass acts (controller.files.sync)
        binds.extend(files.binds(svc.files_root, svc.name, svc.spec.files))
    return binds, named, anonymous


def _base_host(spec: ServiceSpec) -> dict[str, Any]:
    """HostConfig settings of resources, hosts, capabilities, tmpfs and logging (the rest:
    ``render_host.host_config``, which may override ``cpu_shares``)."""
    host: dict[str, Any] = {}
    lim, res = spec.resources.limits, spec.resources.reservations
    if lim.memory:
        host["mem_limit"] = lim.memory
    if lim.cpus:
        host["nano_cpus"] = int(lim.cpus * NANO)
    if res.memory:
        host["mem_reservation"] = res.memory
    if res.cpus:  # the engine has no CPU reservation; relative shares are the nearest thing
        host["cpu_shares"] = max(2, int(res.cpus * 1024))
    if spec.extraHosts:
        host["extra_hosts"] = {h.split(":", 1)[0]: h.split(":", 1)[1] for h in spec.extraHosts}
    if spec.readOnly:
        host["read_only"] = True
    if spec.capAdd:
        host["cap_add"] = list(spec.capAdd)
    if spec.capDrop:
        host["cap_drop"] = list(spec.capDrop)
    if spec.tmpfs:
        host["tmpfs"] = {t.split(":", 1)[0]: (t.split(":", 1)[1] if ":" in t else "") for t in spec.tmpfs}
    if spec.logging:
        host["log_config"] = {"Type": spec.logging.driver, "Config": dict(spec.logging.options)}
    return host


def _process_args(spec: ServiceSpec) -> dict[str, Any]:
    """The create arguments of the process: user, working directory, entrypoint, hostname."""
    create: dict[str, Any] = {}
    if spec.user:
        create["user"] = spec.user
    if spec.workingDir:
        create["working_dir"] = spec.workingDir
    if spec.entrypoint is not None:
        create["entrypoint"] = list(spec.entrypoint)
    if spec.hostname:
        create["hostname"] = spec.hostname
    return create


def _labels(svc: DesiredService, instance: str, replica: int, net_labels: dict[str, str]) -> dict[str, str]:
    labels = dict(svc.spec.labels)
    labels.update({
        L.MANAGED: "true", L.INSTANCE: instance, L.SERVICE: svc.name, L.KIND: svc.kind,
        L.REPLICA: str(replica), L.SPEC_HASH: svc.container_hash, L.GENERATION: str(svc.generation),
    })
    labels.update(net_labels)
    if svc.node:
        labels[L.NODE] = svc.node
    if svc.config_hash:
        labels[L.CONFIG_HASH] = svc.config_hash
        # secret env values are in the hash but never named on a label, not even digested
        labels[L.CONFIG_FILES] = json.dumps({k: v for k, v in svc.config_files.items() if not k.startswith("env:")},
                                            sort_keys=True)
    return labels
