"""The resource kinds as frozen pydantic v2 models: apiVersion/kind/metadata/spec.

Validation is strict (``extra="forbid"``); value notations are normalised here
(ports, volumes, durations) so that equivalent specs compare and hash equal.
``status`` is never read from user input: only the controller writes it, into the
store. No I/O.
"""

from __future__ import annotations

import re
import shlex
from typing import Annotated, Any, Final, Literal

from pydantic import (BaseModel, BeforeValidator, ConfigDict, Field, PlainValidator, WithJsonSchema,
                      field_validator, model_validator)

from crd_like import units
from crd_like.spec_base import _scalar, env_names
from crd_like.spec_files import FileFields
from crd_like.spec_host import BuildFields, HostFields, other_url, remote_context
from crd_like.spec_lifecycle import LifecycleFields
from crd_like.spec_net import NetworkFields
from crd_like.spec_placement import PlacementFields

API_VERSION: Final = "reconcile/v1alpha1"

NAME_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
_NAME = re.compile(NAME_PATTERN)
_LABEL_KEY = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._/-]{0,251}[A-Za-z0-9])?$")
# container labels: the engine takes any key; reverse-DNS keys with `[0]` (traefik's
# `...tls.domains[0].main`) are common. No whitespace, no '=' (it would split KEY=VALUE).
_CONTAINER_LABEL_KEY = re.compile(r"^[^\s=]{1,1024}$")


class Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _duration(v: Any) -> float:
    return units.parse_duration(v)


def _str_scalar(v: Any) -> str:
    """Env values and label values: YAML scalars become strings (``PORT: 80``)."""
    return _scalar(v)


Duration = Annotated[float, BeforeValidator(_duration), Field(ge=0)]
ScalarStr = Annotated[str, BeforeValidator(_str_scalar)]


def _check_labels(v: dict[str, str]) -> dict[str, str]:
    """Resource (metadata) labels: selectors parse them, so the strict key alphabet."""
    for key in v:
        if not _LABEL_KEY.match(key):
            raise ValueError(f"invalid label key {key!r}: expected letters, digits, '.', '_', '-', '/'")
        if key.startswith("io.reconcile."):
            raise ValueError(f"label key {key!r} is reserved for the controller")
    return v


def _check_container_labels(v: dict[str, str]) -> dict[str, str]:
    for key in v:
        if not _CONTAINER_LABEL_KEY.match(key):
            raise ValueError(f"invalid container label key {key!r}: expected no whitespace and no '='")
        if key.startswith("io.reconcile."):
            raise ValueError(f"label key {key!r} is reserved for the controller")
    return v


class Metadata(Frozen):
    name: str = Field(
        pattern=NAME_PATTERN,
        description="Lowercase letters, digits and '-', at most 63 characters, "
        "starting and ending with a letter or digit.",
    )
    labels: dict[str, ScalarStr] = Field(default_factory=dict)
    annotations: dict[str, ScalarStr] = Field(default_factory=dict)

    _labels = field_validator("labels")(_check_labels)


class Backoff(Frozen):
    """Delay before restart attempt n (n=1 is the first restart):
    0 for n=1, then ``initial * factor**(n-2)``, capped at ``max``."""

    initial: Duration = 1.0
    max: Duration = 300.0
    factor: float = Field(default=2.0, ge=1.0, le=10.0)

    @model_validator(mode="after")
    def _order(self) -> Backoff:
        if self.max < self.initial:
            raise ValueError("backoff.max must be at least backoff.initial")
        return self


RestartCondition = Literal["always", "on-failure", "never"]


class RestartPolicy(Frozen):
    condition: RestartCondition = "always"
    maxAttempts: int | None = Field(
        default=None, ge=1, description="Give up (state Failed) after this many restarts within `window`."
    )
    window: Duration = Field(default=600.0, description="Window over which maxAttempts is counted.")
    backoff: Backoff = Field(default_factory=Backoff)
    resetAfter: Duration = Field(
        default=60.0, description="Running this long without failing resets the backoff."
    )

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, v: Any) -> Any:
        if isinstance(v, str):
            return {"condition": v}
        return v


class HealthCheck(Frozen):
    """A probe, or ``disable: true`` (also written ``test: [NONE]``): the image's own
    HEALTHCHECK is switched off (the engine's ``Test: ["NONE"]``)."""

    test: list[str] | None = None
    interval: Duration = 30.0
    timeout: Duration = 30.0
    retries: int = Field(default=3, ge=1)
    startPeriod: Duration = 0.0
    startInterval: Duration | None = Field(default=None, description="Probe interval during startPeriod (API 1.44+).")
    disable: bool = False

    @model_validator(mode="before")
    @classmethod
    def _none(cls, v: Any) -> Any:
        if isinstance(v, dict) and v.get("test") in (["NONE"], "NONE"):
            return {**{k: x for k, x in v.items() if k != "test"}, "disable": True}
        return v

    @model_validator(mode="after")
    def _needs_test(self) -> HealthCheck:
        if self.test is None and not self.disable:
            raise ValueError("a healthcheck needs `test` (or `disable: true` to switch off the image's HEALTHCHECK)")
        if self.test is not None and self.disable:
            raise ValueError("a disabled healthcheck has no `test`")
        return self

    @property
    def probes(self) -> bool:
        return not self.disable

    @field_validator("test", mode="before")
    @classmethod
    def _test(cls, v: Any) -> Any:
        # compose forms: "curl -f ..." (shell), ["CMD", ...], ["CMD-SHELL", "..."]
        if v is None:
            return v
        if isinstance(v, str):
            if not v.strip():
                raise ValueError("healthcheck test must not be empty")
            return ["CMD-SHELL", v]
        if isinstance(v, list) and v and v[0] not in ("CMD", "CMD-SHELL"):
            return ["CMD", *v]
        if isinstance(v, list) and len(v) < 2:
            raise ValueError("healthcheck test needs a command after CMD / CMD-SHELL")
        return v

    @field_validator("interval", "timeout")
    @classmethod
    def _positive(cls, v: float) -> float:
        if v <= 0:
            raise ValueError("must be a positive duration")
        return v


class ValueSource(Frozen):
    """Where a secret env value comes from; read by the controller when it creates the
    container. The value itself is never stored, logged or printed."""

    file: str | None = Field(default=None, description="A file whose content (trailing newline stripped) is the value.")
    env: str | None = Field(default=None, description="An environment variable of the controller's process.")
    secret: str | None = Field(default=None, description="The value itself, kept in the store and never printed "
                               "(see crd_like.secrets): what the compose converter writes for values interpolated "
                               "into secret-looking keys.")

    @model_validator(mode="after")
    def _one(self) -> ValueSource:
        if sum(v is not None for v in (self.file, self.env, self.secret)) != 1:
            raise ValueError("valueFrom needs exactly one of 'file', 'env' or 'secret'")
        return self


class EnvFrom(Frozen):
    valueFrom: ValueSource


def _env_value(v: Any) -> str | EnvFrom:
    if isinstance(v, EnvFrom):
        return v
    expected = "expected a string, number or boolean, or {valueFrom: {file: PATH} | {env: VAR} | {secret: VALUE}}"
    if isinstance(v, dict):
        src = v.get("valueFrom")
        if set(v) != {"valueFrom"} or not isinstance(src, dict) or not set(src) \
                or set(src) - {"file", "env", "secret"} or len(src) != 1 \
                or not all(isinstance(x, str) and (x or k == "secret") for k, x in src.items()):
            shown = sorted(map(str, src if isinstance(src, dict) else v))  # keys of any type (YAML: true, 1)
            raise ValueError(f"invalid env value (a mapping with keys {shown}): {expected}")
        return EnvFrom.model_validate(v)
    if v is None or isinstance(v, list):
        raise ValueError(expected)
    return _str_scalar(v)


EnvValue = Annotated[
    Any,
    PlainValidator(_env_value),
    WithJsonSchema({"anyOf": [
        {"type": ["string", "number", "boolean"]},
        {"type": "object", "additionalProperties": False, "required": ["valueFrom"],
         "properties": {"valueFrom": {"type": "object", "additionalProperties": False,
                                      "properties": {"file": {"type": "string"}, "env": {"type": "string"},
                                                     "secret": {"type": "string"}}}}},
    ]}),
]


class Build(BuildFields, Frozen):
    model_config = ConfigDict(**Frozen.model_config, defer_build=False)  # its mixin's defer_build is not inherited
    context: str = Field(min_length=1, description="Build context directory (relative to the file), or a URL the "
                         "engine fetches: a git repository (https://host/repo.git#ref:subdir, git@host:repo.git) "
                         "or an http(s) tarball.")
    dockerfile: str = "Dockerfile"
    args: dict[str, ScalarStr] = Field(default_factory=dict)
    target: str | None = None

    @property
    def remote(self) -> bool:
        """The engine fetches the context itself (see ``spec_host.remote_context``)."""
        return remote_context(self.context)

    @field_validator("context")
    @classmethod
    def _url(cls, v: str) -> str:
        if other_url(v):
            raise ValueError(f"build context {v!r}: the engine's classic builder fetches only https://, http://, "
                             "git:// and git@ URLs (or github.com/...); give one of those or a local directory")
        return v

    @model_validator(mode="after")
    def _context(self) -> Build:
        if self.remote and self.dockerfileInline:
            raise ValueError("an inline Dockerfile needs a local build context (the engine fetches a remote "
                             "context itself, with its own Dockerfile)")
        return self


class Dependency(Frozen):
    condition: Literal["started", "healthy", "completed"] = Field(
        default="started",
        description="started: its container runs; healthy: its healthcheck passes; completed: a Job exited 0.")
    restart: bool = Field(default=False, description="Restart this service when the dependency is restarted or recreated.")


def _memory(v: Any) -> int:
    return units.parse_memory(v)


def _cpus(v: Any) -> float:
    return units.parse_cpus(v)


Memory = Annotated[int, BeforeValidator(_memory)]
Cpus = Annotated[float, BeforeValidator(_cpus)]


class ResourceAmounts(Frozen):
    cpus: Cpus | None = None
    memory: Memory | None = Field(default=None, description="Bytes, or '512m', '4G', '1.5GiB'.")


class Resources(Frozen):
    limits: ResourceAmounts = Field(default_factory=ResourceAmounts)
    reservations: ResourceAmounts = Field(default_factory=ResourceAmounts)


class Logging(Frozen):
    driver: str = Field(default="json-file", min_length=1)
    options: dict[str, ScalarStr] = Field(default_factory=dict)


class UpdatePolicy(Frozen):
    parallelism: int = Field(default=1, ge=1, description="Replicas replaced at a time.")
    order: Literal["stop-first", "start-first"] = "stop-first"
    monitor: Duration = Field(default=30.0, description="How long a new container has to run (and be healthy).")
    failureAction: Literal["rollback", "pause"] = "rollback"


def _command(v: Any) -> Any:
    if isinstance(v, str):
        try:
            return shlex.split(v)
        except ValueError as exc:
            raise ValueError(f"cannot split command: {exc}") from None
    return v


Command = Annotated[list[str], BeforeValidator(_command)]


def _port(v: Any) -> str:
    return units.parse_port(v).canonical()


def _volume(v: Any) -> str:
    return units.parse_volume(v).canonical()


PortStr = Annotated[str, BeforeValidator(_port)]
VolumeStr = Annotated[str, BeforeValidator(_volume)]


class ServiceSpec(NetworkFields, HostFields, LifecycleFields, FileFields, PlacementFields, Frozen):
    model_config = ConfigDict(**Frozen.model_config, defer_build=False)  # the mixins' defer_build is not inherited
    image: str = Field(min_length=1, description="Image reference, e.g. demo/web:1")
    command: Command | None = Field(default=None, description="Overrides the image's CMD.")
    env: dict[str, EnvValue] = Field(
        default_factory=dict, description="Values, or {valueFrom: {file: PATH} | {env: VAR}} for secrets.")
    envFiles: list[str] = Field(default_factory=list, description="KEY=VALUE files read when the container is "
                                "created; their values are treated as secrets.")
    build: Build | None = Field(default=None, description="Build `image` from this context when it is missing "
                                "or the context changed.")
    onConfigChange: Literal["recreate", "restart", "ignore"] = Field(
        default="recreate", description="What to do when a referenced file (bind mount, envFiles, valueFrom.file) changes.")
    ports: list[PortStr] = Field(
        default_factory=list, description="'[IP:][HOST:]CONTAINER[/proto]', e.g. 127.0.0.1:8080:80"
    )
    volumes: list[VolumeStr] = Field(
        default_factory=list,
        description="'NAME:/path[:ro]' (named volume) or './host/path:/path[:ro]' (bind, relative to the file)",
    )
    labels: dict[str, ScalarStr] = Field(default_factory=dict, description="Container labels.")
    restartPolicy: RestartPolicy = Field(default_factory=RestartPolicy)
    healthcheck: HealthCheck | None = None
    onUnhealthy: Literal["restart", "recreate", "ignore"] = Field(
        default="restart", description="What the controller does when the healthcheck fails."
    )
    init: bool = Field(default=False, description="Run an init process (tini) as PID 1.")
    stopSignal: str | None = Field(default=None, pattern=r"^(SIG[A-Z0-9]+|[0-9]+)$")
    stopGracePeriod: Duration = Field(default=10.0, description="Time to stop before SIGKILL.")
    dependsOn: dict[str, Dependency] = Field(default_factory=dict)
    networks: list[Annotated[str, Field(pattern=r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")]] = Field(default_factory=list)
    aliases: list[Annotated[str, Field(pattern=r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")]] = Field(
        default_factory=list, description="Extra DNS names on its networks (the service name always resolves).")
    replicas: int = Field(default=1, ge=0, le=100)
    update: UpdatePolicy = Field(default_factory=UpdatePolicy)
    resources: Resources = Field(default_factory=Resources)
    user: str | None = None
    workingDir: str | None = None
    entrypoint: Command | None = None
    hostname: str | None = None
    extraHosts: list[Annotated[str, Field(pattern=r"^[^:\s]+:([0-9a-fA-F.:]+|host-gateway)$")]] = Field(
        default_factory=list, description="'HOST:IP'; 'HOST:host-gateway' is the host's address as the engine sees it.")
    readOnly: bool = False
    capAdd: list[str] = Field(default_factory=list)
    capDrop: list[str] = Field(default_factory=list)
    tmpfs: list[Annotated[str, Field(pattern=r"^/\S*$")]] = Field(default_factory=list)
    logging: Logging | None = None

    _labels = field_validator("labels")(_check_container_labels)

    @field_validator("image")
    @classmethod
    def _image(cls, v: str) -> str:
        if any(c.isspace() for c in v) or v != v.strip():
            raise ValueError("image reference must not contain whitespace")
        return v

    @field_validator("env")
    @classmethod
    def _env(cls, v: dict[str, Any]) -> dict[str, Any]:
        return env_names(v)

    @field_validator("dependsOn", mode="before")
    @classmethod
    def _deps(cls, v: Any) -> Any:
        if isinstance(v, list):  # [db, cache] == {db: {condition: started}, ...}
            return {str(name): {} for name in v}
        if isinstance(v, dict):
            return {k: ({"condition": c} if isinstance(c, str) else ({} if c is None else c)) for k, c in v.items()}
        return v

    @model_validator(mode="after")
    def _unique(self) -> ServiceSpec:
        targets = [units.parse_volume(v).target for v in self.volumes]
        dup = {t for t in targets if targets.count(t) > 1}
        if dup:
            raise ValueError(f"volumes mount more than once at {sorted(dup)}")
        host_ports = [b for p in self.ports for b in units.parse_port(p).bindings() if b[1][1]]
        seen: set[tuple[str, int | str | None, str]] = set()
        for container_port, (ip, hp) in host_ports:
            key = (ip, hp, container_port.split("/")[1])
            if key in seen:
                raise ValueError(f"host port {hp} is published twice")
            seen.add(key)
        if self.replicas > 1 and host_ports and not all(
                units.parse_port(p).is_range for p in self.ports if units.parse_port(p).host_port_start):
            raise ValueError("replicas > 1 cannot publish a fixed host port (each replica would need it); "
                             "publish a host port range as wide as the replicas or drop the host port")
        return self


class JobSpec(ServiceSpec):
    """A one-shot container: runs to completion once per generation (migrations)."""

    # built on first use (about 16 ms here): a stack of Services never pays for it
    model_config = ConfigDict(**Frozen.model_config, defer_build=True)

    backoffLimit: int = Field(default=3, ge=0, description="Retries after a non-zero exit before Failed.")
    restartPolicy: RestartPolicy = Field(default_factory=lambda: RestartPolicy(condition="on-failure"))

    @model_validator(mode="after")
    def _job(self) -> JobSpec:
        if self.replicas != 1:
            raise ValueError("a Job runs one container (replicas must be 1)")
        if self.healthcheck is not None and self.healthcheck.probes:
            raise ValueError("a Job cannot have a healthcheck (only `disable: true`)")
        return self


class Job(Frozen):
    model_config = ConfigDict(**Frozen.model_config, defer_build=True)  # as JobSpec
    apiVersion: Literal["reconcile/v1alpha1"] = API_VERSION
    kind: Literal["Job"] = "Job"
    metadata: Metadata
    spec: JobSpec

    @property
    def name(self) -> str:
        return self.metadata.name


class Service(Frozen):
    apiVersion: Literal["reconcile/v1alpha1"] = API_VERSION
    kind: Literal["Service"] = "Service"
    metadata: Metadata
    spec: ServiceSpec

    @property
    def name(self) -> str:
        return self.metadata.name


Resource = Service | Job
SPEC_MODELS: dict[str, type[ServiceSpec]] = {"Service": ServiceSpec, "Job": JobSpec}
