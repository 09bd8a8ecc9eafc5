"""Host-configuration fields of a spec (``crd_like.spec_host``) -> extra engine create
arguments. Pure (no Docker, no SQL).

``host_config(spec)`` returns extra HostConfig settings and ``create_args(spec)`` extra
``create_container`` arguments, both in the docker SDK's keyword spelling; ``render``
merges them into its ``ContainerConfig``. ``healthcheck(hc)`` is the engine healthcheck
(``disable`` -> ``Test: ["NONE"]``, which switches the image's HEALTHCHECK off).
``engine_checks(spec)`` is what only the engine adapter can decide, because it depends on
the engine's API version or on the local image: annotations (API 1.43+), the
healthcheck's start interval (API 1.44+), the platform of the image, a pull attempt for
``pullPolicy: always``. ``build_options(build)`` are the extra offline build arguments.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from crd_like.models import Build, HealthCheck, ServiceSpec

NANO = 1_000_000_000
API_SOCKET = "/var/run/docker.sock"


@dataclass(frozen=True)
class EngineChecks:
    service: str = ""
    platform: str | None = None
    pull_always: bool = False
    start_interval_ns: int | None = None
    annotations: dict[str, str] = field(default_factory=dict)


def healthcheck(hc: HealthCheck | None) -> dict[str, Any] | None:
    if hc is None:
        return None
    if hc.disable:
        return {"test": ["NONE"]}
    assert hc.test is not None  # the model requires test unless disabled
    return {"test": list(hc.test), "interval": int(hc.interval * NANO), "timeout": int(hc.timeout * NANO),
            "retries": hc.retries, "start_period": int(hc.startPeriod * NANO)}


def _peer(mode: str | None) -> str | None:
    """``service:NAME`` -> the container of NAME's first replica (``container:NAME-1``)."""
    if mode is not None and mode.startswith("service:"):
        return f"container:{mode.split(':', 1)[1]}-1"
    return mode


def _ulimits(ulimits: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"name": k, "soft": v.soft, "hard": v.hard} for k, v in sorted(ulimits.items())]


def _device_requests(requests: list[Any]) -> list[dict[str, Any]]:
    return [{"driver": r.driver, "count": r.count if not r.deviceIds else 0, "device_ids": list(r.deviceIds),
             "capabilities": [list(r.capabilities)] if r.capabilities else [], "options": dict(r.options)}
            for r in requests]


def _true(_value: Any) -> bool:
    return True


# (HostConfig keyword, spec field, its engine form): set only when the field is set (truthy);
# the keywords keep the order in which they have always been set.
_WHEN_SET_FIRST: tuple[tuple[str, str, Callable[[Any], Any]], ...] = (
    ("ulimits", "ulimits", _ulimits), ("sysctls", "sysctls", dict), ("privileged", "privileged", _true),
    ("devices", "devices", list), ("device_cgroup_rules", "deviceCgroupRules", list),
    ("device_requests", "deviceRequests", _device_requests), ("security_opt", "securityOpt", list),
)
_WHEN_SET_LAST: tuple[tuple[str, str, Callable[[Any], Any]], ...] = (
    ("group_add", "groupAdd", list), ("oom_kill_disable", "oomKillDisable", _true),
    ("storage_opt", "storageOpt", dict),
)


def _when_set(spec: ServiceSpec, table: tuple[tuple[str, str, Callable[[Any], Any]], ...]) -> dict[str, Any]:
    return {key: conv(getattr(spec, attr)) for key, attr, conv in table if getattr(spec, attr)}


def _scalars(spec: ServiceSpec) -> dict[str, Any]:
    """The HostConfig keywords that take the spec's value as it is, when it is not None."""
    simple = {"shm_size": spec.shmSize,
              "ipc_mode": _peer(spec.ipc), "pid_mode": _peer(spec.pid), "uts_mode": spec.uts,
              "userns_mode": spec.usernsMode, "cgroupns": spec.cgroup, "cgroup_parent": spec.cgroupParent,
              "pids_limit": spec.pidsLimit, "cpu_count": spec.cpuCount, "cpu_percent": spec.cpuPercent,
              "cpu_shares": spec.cpuShares, "cpu_period": spec.cpuPeriod, "cpu_quota": spec.cpuQuota,
              "cpu_rt_period": spec.cpuRtPeriod, "cpu_rt_runtime": spec.cpuRtRuntime, "cpuset_cpus": spec.cpuset,
              "cpuset_mems": spec.cpusetMems, "mem_swappiness": spec.memSwappiness,
              "memswap_limit": spec.memswapLimit, "oom_score_adj": spec.oomScoreAdj, "runtime": spec.runtime}
    return {k: v for k, v in simple.items() if v is not None}


def _blkio(b: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if b is None:
        return out
    if b.weight is not None:
        out["blkio_weight"] = b.weight
    for key, items, unit in (("blkio_weight_device", b.weightDevice, "Weight"),
                             ("device_read_bps", b.deviceReadBps, "Rate"),
                             ("device_write_bps", b.deviceWriteBps, "Rate"),
                             ("device_read_iops", b.deviceReadIops, "Rate"),
                             ("device_write_iops", b.deviceWriteIops, "Rate")):
        if items:
            out[key] = [{"Path": i.path, unit: getattr(i, unit.lower())} for i in items]
    return out


def _mounts(spec: ServiceSpec) -> list[dict[str, Any]]:
    mounts: list[dict[str, Any]] = []
    for m in spec.mounts:
        mount: dict[str, Any] = {"Type": "bind", "Source": m.source, "Target": m.target, "ReadOnly": m.readOnly}
        if m.propagation:
            mount["BindOptions"] = {"Propagation": m.propagation}
        mounts.append(mount)
    if spec.useApiSocket:
        mounts.append({"Type": "bind", "Source": API_SOCKET, "Target": API_SOCKET, "ReadOnly": False})
    return mounts


def host_config(spec: ServiceSpec) -> dict[str, Any]:
    out = _when_set(spec, _WHEN_SET_FIRST)
    out.update(_scalars(spec))
    out.update(_when_set(spec, _WHEN_SET_LAST))
    out.update(_blkio(spec.blkio))
    mounts = _mounts(spec)
    if mounts:
        out["mounts"] = mounts
    return out


def create_args(spec: ServiceSpec) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if spec.tty:
        out["tty"] = True
    if spec.stdinOpen:
        out["stdin_open"] = True
    if spec.domainname:
        out["domainname"] = spec.domainname
    if spec.macAddress:
        out["mac_address"] = spec.macAddress
    return out


def engine_checks(spec: ServiceSpec, service: str) -> EngineChecks:
    hc = spec.healthcheck
    start = None if hc is None or hc.disable or hc.startInterval is None else int(hc.startInterval * NANO)
    return EngineChecks(service=service, platform=spec.platform, pull_always=spec.pullPolicy == "always",
                        start_interval_ns=start, annotations=dict(spec.annotations))


def build_options(build: Build, platform: str | None = None) -> dict[str, Any]:
    """Extra ``APIClient.build`` arguments (never ``pull``: nothing is pulled here)."""
    out: dict[str, Any] = {}
    if build.network:
        out["network_mode"] = build.network
    if build.labels:
        out["labels"] = dict(build.labels)
    if build.noCache:
        out["nocache"] = True
    if build.shmSize is not None:
        out["shmsize"] = build.shmSize
    if build.extraHosts:
        out["extra_hosts"] = {h.split(":", 1)[0]: h.split(":", 1)[1] for h in build.extraHosts}
    if platform:
        out["platform"] = platform
    return out


def build_meta(build: Build, platform: str | None = None) -> str:
    """What, besides the context, makes a build different (for the build hash); '' when
    no option of ``build_options`` is used, so existing build hashes stay as they were."""
    extra = build_options(build, platform)
    if build.dockerfileInline:
        extra["dockerfile_inline"] = build.dockerfileInline
    return repr(sorted(extra.items())) if extra else ""
