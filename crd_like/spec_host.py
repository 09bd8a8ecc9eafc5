"""Host-configuration fields of a service spec (a mixin of ``ServiceSpec``): ulimits,
sysctls, privileges, devices, security options, shared memory, TTY, namespaces,
cgroup and kernel-resource knobs, pull policy and platform; and the extra build
options (``BuildFields``, a mixin of ``models.Build``). No I/O.

Every field has a default, so specs that do not use it hash as before (hashing leaves
defaults out). Values are normalised so that equivalent notations hash equal
(``nofile: 1024`` == ``nofile: {soft: 1024, hard: 1024}``, ``shmSize: 64m`` == 67108864,
``seccomp:unconfined`` == ``seccomp=unconfined``). Must not import ``store`` or
``controller``.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from crd_like import units
from crd_like.spec_base import _Frozen, _scalar

ULIMIT_NAMES = frozenset({"core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile",
                          "nproc", "rss", "rtprio", "rttime", "sigpending", "stack"})
SECURITY_OPT_KEYS = frozenset({"label", "apparmor", "seccomp", "no-new-privileges", "systempaths"})
PULL_POLICIES = ("missing", "never", "always", "build")
_NS_PEER = r"(service|container):[a-zA-Z0-9][a-zA-Z0-9_.-]*"
_DEVICE = re.compile(r"^(/[^:\s]*)(?::(/[^:\s]*))?(?::([rwm]{1,3}))?$")
_CGROUP_RULE = re.compile(r"^[abc] (\*|\d+):(\*|\d+) [rwm]{1,3}$")
_SYSCTL = re.compile(r"^[a-zA-Z0-9_]+([./][a-zA-Z0-9_*-]+)+$")
_MAC = re.compile(r"^([0-9a-fA-F]{2}[:-]){5}[0-9a-fA-F]{2}$")




Str = Annotated[str, BeforeValidator(_scalar)]


def _size(v: Any) -> int:
    return units.parse_memory(v)


def _size_or_unlimited(v: Any) -> int:
    if v in (-1, "-1"):
        return -1
    return units.parse_memory(v)


def _micros(v: Any) -> int:
    """Microseconds: an integer, or a duration such as '10ms' (compose allows both)."""
    if isinstance(v, bool):
        raise ValueError("expected microseconds (an integer) or a duration such as '10ms'")
    if isinstance(v, int):
        return v
    if isinstance(v, str) and re.fullmatch(r"-?\d+", v.strip()):
        return int(v)
    return int(round(units.parse_duration(v) * 1_000_000))


Size = Annotated[int, BeforeValidator(_size)]
SizeOrUnlimited = Annotated[int, BeforeValidator(_size_or_unlimited)]
Micros = Annotated[int, BeforeValidator(_micros)]


class Ulimit(_Frozen):
    soft: int = Field(ge=-1)
    hard: int = Field(ge=-1)

    @model_validator(mode="before")
    @classmethod
    def _from_int(cls, v: Any) -> Any:
        if isinstance(v, int) and not isinstance(v, bool):
            return {"soft": v, "hard": v}
        if isinstance(v, str) and re.fullmatch(r"-?\d+", v.strip()):
            return {"soft": int(v), "hard": int(v)}
        if isinstance(v, str) and re.fullmatch(r"-?\d+:-?\d+", v.strip()):  # docker's nofile=1024:2048
            soft, hard = v.strip().split(":")
            return {"soft": int(soft), "hard": int(hard)}
        return v

    @model_validator(mode="after")
    def _order(self) -> Ulimit:
        if self.hard != -1 and (self.soft == -1 or self.soft > self.hard):
            raise ValueError(f"ulimit soft limit {self.soft} is above the hard limit {self.hard}")
        return self


class DeviceRate(_Frozen):
    path: str = Field(pattern=r"^/\S+$")
    rate: Size


class DeviceIops(_Frozen):
    path: str = Field(pattern=r"^/\S+$")
    rate: int = Field(ge=1)


class DeviceWeight(_Frozen):
    path: str = Field(pattern=r"^/\S+$")
    weight: int = Field(ge=10, le=1000)


class Blkio(_Frozen):
    """Block IO limits (compose ``blkio_config``)."""

    weight: int | None = Field(default=None, ge=10, le=1000)
    weightDevice: list[DeviceWeight] = Field(default_factory=list)
    deviceReadBps: list[DeviceRate] = Field(default_factory=list)
    deviceWriteBps: list[DeviceRate] = Field(default_factory=list)
    deviceReadIops: list[DeviceIops] = Field(default_factory=list)
    deviceWriteIops: list[DeviceIops] = Field(default_factory=list)


class DeviceRequest(_Frozen):
    """A device request (compose ``gpus:`` and ``deploy.resources.reservations.devices``)."""

    driver: str = ""
    count: int = Field(default=-1, ge=-1, description="-1 = all")
    deviceIds: list[Str] = Field(default_factory=list)
    capabilities: list[str] = Field(default_factory=list)
    options: dict[str, Str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _count_or_ids(self) -> DeviceRequest:
        if self.deviceIds and self.count not in (-1, 0):
            raise ValueError("a device request names either `count` or `deviceIds`, not both")
        return self


class BindMount(_Frozen):
    """A bind mount whose host path cannot be written in ``volumes`` (it contains ':')."""

    source: str = Field(min_length=1, description="Absolute host path (may contain ':').")
    target: str = Field(pattern=r"^/\S*$")
    readOnly: bool = False
    propagation: Literal["private", "rprivate", "shared", "rshared", "slave", "rslave"] | None = None

    @field_validator("source")
    @classmethod
    def _absolute(cls, v: str) -> str:
        if not v.startswith("/"):
            raise ValueError(f"mount source {v!r} must be an absolute host path")
        return v


def _string_list(v: Any) -> Any:
    if isinstance(v, (str, int)) and not isinstance(v, bool):
        return [v]
    return v


def _device(item: str) -> str:
    m = _DEVICE.match(item)
    if not m:
        if "=" in item:
            raise ValueError(f"device {item!r}: CDI device names need Docker API 1.44, which reconcile "
                             "does not speak yet; give a host device path")
        raise ValueError(f"invalid device {item!r}: expected '/dev/HOST[:/dev/CONTAINER][:rwm]'")
    host, cont, perms = m.group(1), m.group(2) or m.group(1), m.group(3) or "rwm"
    return f"{host}:{cont}:{perms}"


def _cgroup_rule(rule: str) -> str:
    if not _CGROUP_RULE.match(rule):
        raise ValueError(f"invalid device cgroup rule {rule!r}: expected 'TYPE MAJOR:MINOR PERMS', e.g. 'c 1:3 mr'")
    return rule


def _platform(v: str) -> str:
    if not re.fullmatch(r"[a-z0-9]+/[a-z0-9_]+(/[a-z0-9]+)?", v):
        raise ValueError(f"invalid platform {v!r}: expected OS/ARCH[/VARIANT], e.g. 'linux/amd64' or 'linux/arm64/v8'")
    return v


def _matching(pattern: str, expected: str) -> AfterValidator:
    """A pattern check whose error says what was expected in words, not as a regex."""
    regex = re.compile(pattern)

    def check(v: str) -> str:
        if not regex.fullmatch(v):
            raise ValueError(f"invalid value {v!r}: expected {expected}")
        return v
    return AfterValidator(check)


def _peer_named(key: str) -> BeforeValidator:
    """``container:`` / ``service:`` with no name (typically ``container:${UNSET}``) is an
    error naming why: the engine refuses to start such a container ("invalid name or ID
    supplied"), under ``docker compose up`` too, although ``docker compose config`` accepts it."""
    def check(v: Any) -> Any:
        if isinstance(v, str) and v in ("container:", "service:"):
            raise ValueError(f"{key} {v!r} names no {v[:-1]} (an unset variable?): the engine refuses to start a "
                             f"container that joins an unnamed one, under `docker compose up` too; give {v}NAME")
        return v
    return BeforeValidator(check)


_CPUSET = r"\d+(-\d+)?(,\d+(-\d+)?)*"
Ipc = Annotated[str, _peer_named("ipc"), _matching(rf"host|private|shareable|none|{_NS_PEER}",
                               "host, private, shareable, none, service:NAME or container:NAME")]
Pid = Annotated[str, _peer_named("pid"), _matching(rf"host|{_NS_PEER}", "host, service:NAME or container:NAME")]
Cpuset = Annotated[str, _matching(_CPUSET, "CPU numbers and ranges such as '0-2,4'")]
Mac = Annotated[str, _matching(_MAC.pattern[1:-1], "a MAC address such as '02:42:ac:11:00:02'")]


def _security_opt(v: str) -> str:
    key, sep, value = v.partition("=")
    if not sep:
        key, sep, value = v.partition(":")
    if key not in SECURITY_OPT_KEYS:
        raise ValueError(f"unknown security option {v!r}: expected one of {', '.join(sorted(SECURITY_OPT_KEYS))} "
                         "(e.g. 'no-new-privileges:true', 'seccomp:unconfined', 'label:disable')")
    if key == "no-new-privileges" and not sep:
        return key
    if not value:
        raise ValueError(f"security option {v!r} needs a value")
    if key == "seccomp" and value != "unconfined":
        raise ValueError(f"security option {v!r}: a seccomp profile file is not supported (the engine wants the "
                         "profile's JSON, which reconcile does not read); use 'seccomp:unconfined' or the default")
    return f"{key}={value}"


class HostFields(BaseModel):
    """Mixed into ``ServiceSpec``; fields are added here, never in ``models.py``."""

    # a mixin, never validated on its own: its schema is built only inside the models
    # that use it (building it here as well cost several ms per mixin at every start)
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, defer_build=True)

    ulimits: dict[str, Ulimit] = Field(default_factory=dict, description="{nofile: {soft: 1024, hard: 2048}, nproc: 65535}")
    sysctls: dict[str, Str] = Field(default_factory=dict, description="Namespaced kernel parameters.")
    privileged: bool = False
    devices: list[Annotated[str, AfterValidator(_device)]] = Field(
        default_factory=list, description="'/dev/HOST[:/dev/CONTAINER[:rwm]]'")
    deviceCgroupRules: list[Annotated[str, AfterValidator(_cgroup_rule)]] = Field(
        default_factory=list, description="e.g. 'c 1:3 mr'")
    deviceRequests: list[DeviceRequest] = Field(default_factory=list, description="GPUs and other device requests.")
    securityOpt: list[Annotated[str, AfterValidator(_security_opt)]] = Field(
        default_factory=list, description="e.g. 'no-new-privileges:true', 'label:disable'")
    shmSize: Size | None = Field(default=None, description="Size of /dev/shm, e.g. 64m.")
    tty: bool = False
    stdinOpen: bool = False
    ipc: Ipc | None = None
    pid: Pid | None = None
    uts: Literal["host"] | None = None
    usernsMode: Literal["host"] | None = None
    cgroup: Literal["host", "private"] | None = None
    cgroupParent: str | None = Field(default=None, min_length=1)
    groupAdd: list[Str] = Field(default_factory=list)
    pidsLimit: int | None = Field(default=None, ge=-1)
    cpuCount: int | None = Field(default=None, ge=1)
    cpuPercent: int | None = Field(default=None, ge=1, le=100)
    cpuShares: int | None = Field(default=None, ge=2, le=262144)
    cpuPeriod: Micros | None = Field(default=None, ge=1000, le=1_000_000)
    cpuQuota: Micros | None = Field(default=None, ge=-1)
    cpuRtPeriod: Micros | None = Field(default=None, ge=1)
    cpuRtRuntime: Micros | None = Field(default=None, ge=-1)
    cpuset: Cpuset | None = Field(default=None, description="e.g. '0-2,4'")
    cpusetMems: Cpuset | None = None
    memSwappiness: int | None = Field(default=None, ge=0, le=100)
    memswapLimit: SizeOrUnlimited | None = Field(default=None, description="Memory + swap, e.g. 1g; -1 = unlimited.")
    oomKillDisable: bool = False
    oomScoreAdj: int | None = Field(default=None, ge=-1000, le=1000)
    runtime: str | None = Field(default=None, min_length=1)
    macAddress: Mac | None = None
    domainname: str | None = Field(default=None, min_length=1)
    storageOpt: dict[str, Str] = Field(default_factory=dict)
    blkio: Blkio | None = None
    annotations: dict[str, Str] = Field(default_factory=dict, description="OCI annotations (engine API 1.43+).")
    pullPolicy: Literal["missing", "never", "always", "build"] = Field(
        default="missing", description="Nothing is pulled here: 'always' fails unless a registry answers.")
    platform: Annotated[str, AfterValidator(_platform)] | None = Field(
        default=None, description="os/arch[/variant]; checked against the local image.")
    mounts: list[BindMount] = Field(default_factory=list, description="Binds whose host path contains ':'.")
    useApiSocket: bool = Field(default=False, description="Bind the engine socket into the container.")

    @property
    def probes(self) -> bool:
        """The container runs a healthcheck of the spec's (not a disabled one)."""
        hc: Any = getattr(self, "healthcheck", None)
        return hc is not None and bool(hc.probes)

    @field_validator("ulimits")
    @classmethod
    def _ulimit_names(cls, v: dict[str, Ulimit]) -> dict[str, Ulimit]:
        for name in v:
            if name not in ULIMIT_NAMES:
                raise ValueError(f"unknown ulimit {name!r}: expected one of {', '.join(sorted(ULIMIT_NAMES))}")
        return v

    @field_validator("sysctls", mode="before")
    @classmethod
    def _sysctl_list(cls, v: Any) -> Any:
        if isinstance(v, list):  # ["net.core.somaxconn=1024"]
            out: dict[str, Any] = {}
            for item in v:
                if not isinstance(item, str) or "=" not in item:
                    raise ValueError(f"invalid sysctl {item!r}: expected 'NAME=VALUE'")
                key, _, value = item.partition("=")
                out[key.strip()] = value.strip()
            return out
        return v

    @field_validator("sysctls")
    @classmethod
    def _sysctl_names(cls, v: dict[str, str]) -> dict[str, str]:
        for name in v:
            if not _SYSCTL.match(name):
                raise ValueError(f"invalid sysctl name {name!r}: expected e.g. 'net.core.somaxconn'")
        return v

    @field_validator("devices", mode="before")
    @classmethod
    def _devices_list(cls, v: Any) -> Any:
        return _string_list(v)

    @field_validator("securityOpt", mode="before")
    @classmethod
    def _security_list(cls, v: Any) -> Any:
        return _string_list(v)

    @field_validator("groupAdd", mode="before")
    @classmethod
    def _groups(cls, v: Any) -> Any:
        return _string_list(v)

    @field_validator("macAddress")
    @classmethod
    def _mac(cls, v: str | None) -> str | None:
        return None if v is None else v.lower().replace("-", ":")


def _hosts(v: Any) -> Any:
    if isinstance(v, dict):
        return [f"{k}:{x}" for k, x in v.items()]
    return v


def _host_entry(v: str) -> str:
    host, sep, ip = v.partition(":") if "=" not in v else v.partition("=")
    if not sep or not host:
        raise ValueError(f"invalid extra host {v!r}: expected 'HOST:IP'")
    if ip != "host-gateway":
        try:
            ipaddress.ip_address(ip.strip("[]"))
        except ValueError:
            raise ValueError(f"invalid extra host {v!r}: {ip!r} is not an IP address") from None
    return f"{host}:{ip.strip('[]')}"


REMOTE_CONTEXT_PREFIXES = ("https://", "http://", "git://", "git@", "github.com/")


def remote_context(text: str) -> bool:
    """A build context the engine fetches itself (the Engine API's ``remote``): a git
    repository (``https://host/repo.git#ref:subdir``, ``git@host:repo.git``, ``git://``,
    ``github.com/...``) or an ``http(s)://`` tarball / Dockerfile URL."""
    return text.startswith(REMOTE_CONTEXT_PREFIXES)


def other_url(text: str) -> bool:
    """A URL the engine's classic builder cannot fetch (``ssh://``, ``ftp://`` ...)."""
    return "://" in text and not remote_context(text)


class BuildFields(BaseModel):
    """Mixed into ``models.Build``: options of an offline build (nothing is pulled)."""

    # a mixin, never validated on its own: its schema is built only inside the models
    # that use it (building it here as well cost several ms per mixin at every start)
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, defer_build=True)

    dockerfileInline: str | None = Field(default=None, min_length=1, description="The Dockerfile's text.")
    network: str | None = Field(default=None, min_length=1, description="Network for RUN steps (e.g. none, host).")
    labels: dict[str, Str] = Field(default_factory=dict, description="Image labels.")
    noCache: bool = False
    shmSize: Size | None = None
    extraHosts: Annotated[list[str], BeforeValidator(_hosts)] = Field(default_factory=list)

    @field_validator("extraHosts")
    @classmethod
    def _extra_hosts(cls, v: list[str]) -> list[str]:
        return [_host_entry(h) for h in v]
