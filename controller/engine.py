"""The Docker adapter: the only module that imports ``docker``.

It speaks the low-level API (``docker.APIClient``): ``containers()`` is one list call,
whereas the high-level ``containers.list()`` inspects every container it returns.
Every call is counted (``calls``) so benchmarks can report engine calls per pass.
Images are never pulled: no registry is assumed to be reachable.

Engines. The API version is negotiated with the engine (``version="auto"``): Docker 20.10
speaks 1.41, Docker 26.1 speaks 1.45, Podman's compatible API reports 1.41. ``info()``
names the engine (docker / podman), its version and the negotiated API version. What
differs between engines is handled here and nowhere else (docs/ENGINES.md).

Time. Every call is bounded by a timeout suited to it (``CallTimeouts``): lists and
inspects are short, stop/restart get the container's grace period on top, builds are
long; the event stream alone blocks. Each timeout class has its own client (and
connection pool), so concurrent calls never share a mutable timeout. Removals are
issued with bounded concurrency (``max_removals``): an engine that wedges on removal
(seen on 20.10 after hundreds of concurrent force-removals) is not piled onto.

Errors. ``docker.errors`` and transport failures are translated into
``controller.errors`` here and only here:

    docker.errors.ImageNotFound           -> ImageMissing        (terminal)
    docker.errors.NotFound (404)          -> NotFound            (terminal)
      ... saying a network is not found   -> NetworkMissing      (a NotFound; also a start
                                                                  whose network was removed)
    APIError 409                          -> NameConflict        (terminal)
    APIError 5xx                          -> TransientError      (retry after 2 s)
    other APIError (4xx)                  -> ReconcileError
    read timeout of one call              -> EngineTimeout       (transient; names the call
                                                                  and the container; audited
                                                                  as EngineDegraded)
    connection refused / reset, no socket -> EngineUnavailable   (transient; the engine is down)

Images are never pulled: no registry is assumed to be reachable (``pullPolicy: always``
makes one bounded pull attempt, and fails clearly when no registry answers).

What depends on the engine's API version or on the local image is decided here, at
create time (``ContainerConfig.checks``): ``annotations`` need API 1.43 (an error on an
older engine: they are read by the runtime, so dropping them would change what runs);
a healthcheck ``startInterval`` needs API 1.44 (a warning naming the key: probes then
run every ``interval`` from the start); ``platform`` must match the local image's
os/architecture[/variant] (an error naming both).
"""

from __future__ import annotations

import os
import re
import tempfile
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal, TypeVar

import docker
import docker.errors
import docker.utils
import docker.utils.utils
import requests.exceptions
from loguru import logger

from controller import labels as L
from controller.hooks import HookCall, HookResult
from controller.engine_transport import UnixTransport, is_plain
from controller.errors import (EngineTimeout, EngineUnavailable, ExternalMissing, ImageMissing, NameConflict,
                               NetworkMissing, NotFound, PortInUse, ReconcileError, StaleTask, TerminalError,
                               TransientError)
from controller.observed import ContainerDetail, EngineEvent, Observed, from_list_entry, image_maps, parse_time
from controller.observed import docker_state as _docker_state
from controller.observed import short_ref as _short_ref  # noqa: F401 - re-exported (tests, e2e)
from controller.probes import Outcome
from controller.render import ContainerConfig
from controller.render_host import EngineChecks
from crd_like.spec_net import NetworkSpec, VolumeSpec

HOOK_OUTPUT_TAIL = 2048  # bytes of a hook's output kept (compose keeps 2 KiB too)
PULL_TIMEOUT = 30.0  # one pull attempt for pullPolicy: always; no registry is assumed to answer
_ARCH = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "armhf": "arm", "armel": "arm", "i386": "386"}


def _api_at_least(version: str, wanted: str) -> bool:
    def key(v: str) -> tuple[int, ...]:
        return tuple(int(p) for p in v.split(".") if p.isdigit())

    return key(version) >= key(wanted)


def platform_mismatch(wanted: str, image: dict[str, Any]) -> str:
    """'' when the image (``inspect_image`` output) runs on ``wanted`` (os/arch[/variant])."""
    parts = wanted.split("/")
    os_, arch = parts[0], _ARCH.get(parts[1], parts[1])
    variant = parts[2] if len(parts) > 2 else ""
    have_os, have_arch = str(image.get("Os") or ""), _ARCH.get(str(image.get("Architecture") or ""),
                                                              str(image.get("Architecture") or ""))
    have_variant = str(image.get("Variant") or "")
    if arch == "arm64" and variant == "v8":
        variant = ""  # linux/arm64 and linux/arm64/v8 are the same platform
    have = f"{have_os}/{have_arch}" + (f"/{have_variant}" if have_variant else "")
    if have_os != os_ or have_arch != arch or (variant and have_variant and have_variant != variant):
        return have
    return ""

T = TypeVar("T")
_PODMAN_NAME_IN_USE = "that name is already in use"
_REMOVAL_UNDER_WAY = "is already in progress"  # 409 "removal of container X is already in progress"
# A start the engine refuses because its runtime still holds the container's task from
# before an engine restart (seen on Docker 20.10 after dockerd was stopped while a shim
# outlived it: "task <id>: already exists", with "Container not cleaned up from
# containerd from previous run" in the engine's log), or a runtime bundle directory of
# the container left behind ("failed to start shim: mkdir .../<id>: file exists"); every
# later start fails the same way
_STARTS = frozenset({"containers.start", "containers.restart"})
_STALE_TASK = re.compile(r"\btask [0-9a-f]{12,64}: already exists|\bid already in use\b"
                         r"|failed to start shim: mkdir \S+/[0-9a-f]{64}: file exists", re.I)
# -- the mapping of the engine's refusals (APIError) onto the error tree ------------------
# Each rule is (does it match (call, HTTP status, the engine's message), the error it
# raises); the first that matches wins, else ReconcileError("engine refused ...").


def _removal_under_way(_what: str, status: int | None, text: str) -> bool:
    # another removal of this container (one of ours that timed out, or the engine's own
    # --rm) is still running: not a name conflict, try again shortly
    return status == 409 and _REMOVAL_UNDER_WAY in text


def _name_in_use(_what: str, status: int | None, text: str) -> bool:
    # Podman answers some name conflicts (a create whose name another container holds, on
    # some paths) with 500 and libpod's own wording, not Docker's 409
    return status == 409 or _PODMAN_NAME_IN_USE in text


def _port_taken(_what: str, _status: int | None, text: str) -> bool:
    return "port is already allocated" in text or "address already in use" in text


def _stale_task(what: str, _status: int | None, text: str) -> bool:
    return what in _STARTS and _STALE_TASK.search(text) is not None


def network_missing(text: str) -> bool:
    """Does the engine's message say a network is not found ("network web_default not
    found", Podman's "unable to find network with name or ID ...: network not found")?"""
    lower = text.lower()
    return "network" in lower and "not found" in lower


def _server_error(_what: str, status: int | None, _text: str) -> bool:
    return bool(status and status >= 500)


_REFUSALS: tuple[tuple[Callable[[str, int | None, str], bool], Callable[[str], ReconcileError]], ...] = (
    (_removal_under_way, lambda text: TransientError(f"engine busy: {text}", retry_after=1.0)),
    (_name_in_use, NameConflict),
    (_port_taken, lambda text: PortInUse(f"host port taken: {text}")),
    (_stale_task, lambda text: StaleTask(f"the engine cannot start it again: {text}")),
    (_server_error, lambda text: TransientError(f"engine error: {text}", retry_after=2.0)),
)


def refusal(what: str, status: int | None, text: str) -> ReconcileError:
    """The error for the engine's refusal of call ``what`` (HTTP ``status``, message ``text``)."""
    for matches, error in _REFUSALS:
        if matches(what, status, text):
            return error(text)
    return ReconcileError(f"engine refused {what}: {text}")


def _normalise_ref(ref: str) -> str:
    last = ref.rsplit("/", 1)[-1]
    if "@" in ref or ":" in last:
        return ref
    return ref + ":latest"


def _host_config(api: docker.APIClient, cfg: ContainerConfig) -> dict[str, Any]:
    """The HostConfig of a create: binds, no engine restarts, the rendered settings, ports."""
    host_config: dict[str, Any] = api.create_host_config(
        binds=cfg.binds or None, restart_policy={"Name": "no"}, init=cfg.init or None, **cfg.host,
    )
    if cfg.port_bindings:
        host_config["PortBindings"] = {
            port: [{"HostIp": ip or "", "HostPort": str(hp) if hp else ""} for ip, hp in hosts]
            for port, hosts in cfg.port_bindings.items()
        }
    return host_config


def _first_network(api: docker.APIClient, cfg: ContainerConfig, first: str) -> Any:
    """The networking config of a create: the first network's endpoint (aliases, links, addresses)."""
    endpoint = cfg.endpoints.get(first) or {"aliases": [cfg.labels.get(L.SERVICE, "")]}
    return api.create_networking_config(  # the stubs say one config; the SDK maps names
        {first: api.create_endpoint_config(**endpoint)})  # type: ignore[arg-type]


@dataclass(frozen=True)
class BuildRequest:
    """One offline image build: the context (a directory, or a URL the engine fetches), the
    Dockerfile in it (or ``dockerfile_inline``, its text), the tag, build args and target,
    the image's labels, and ``options``: extra ``APIClient.build`` arguments
    (``render_host.build_options``, whose ``labels`` are merged under ``labels``)."""

    context: str
    dockerfile: str
    tag: str
    args: dict[str, str]
    target: str | None
    labels: dict[str, str]
    options: dict[str, Any] = field(default_factory=dict)
    dockerfile_inline: str | None = None


TimeoutClass = Literal["read", "act", "stop", "build", "stream"]  # stream: unbounded (logs -f, exec)


@dataclass(frozen=True)
class CallTimeouts:
    """Seconds an engine call may take before it counts as hung (``EngineTimeout``).

    read: ping, version, lists, inspects, logs. act: create, start, remove, rename,
    connect, volume/network create and remove. stop: added to the container's own grace
    period for stop and restart (the engine waits that long before it kills). build: an
    image build, whole.
    """

    read: float = 15.0
    act: float = 60.0
    stop: float = 30.0
    build: float = 900.0

    ENV = "RECONCILE_ENGINE_TIMEOUTS"

    @classmethod
    def parse(cls, text: str, source: str = ENV) -> CallTimeouts:
        """``"read=10,act=30"`` (seconds; classes not named keep their default)."""
        values: dict[str, float] = {}
        for item in filter(None, (part.strip() for part in text.split(","))):
            key, sep, raw = item.partition("=")
            key = key.strip()
            if not sep or key not in ("read", "act", "stop", "build"):
                raise ValueError(f"{source}: {item!r}: expected CLASS=SECONDS with CLASS one of read, act, stop, build")
            try:
                value = float(raw.strip().removesuffix("s"))
            except ValueError:
                raise ValueError(f"{source}: {key}={raw!r}: expected a number of seconds") from None
            if not 0 < value < 86400:
                raise ValueError(f"{source}: {key}={raw!r}: expected seconds above 0 and below 86400")
            values[key] = value
        return cls(**values)

    @classmethod
    def from_env(cls) -> CallTimeouts:
        return cls.parse(os.environ.get(cls.ENV, ""))


# call name -> timeout class; calls not listed are "act"
_CLASS: dict[str, TimeoutClass] = {
    "ping": "read", "version": "read", "containers.list": "read", "containers.inspect": "read",
    "containers.logs": "read", "images.list": "read", "images.inspect": "read", "volumes.inspect": "read",
    "volumes.list": "read", "networks.inspect": "read", "networks.list": "read",
    "containers.stop": "stop", "containers.restart": "stop", "images.build": "build",
    # a followed log or an exec session lasts as long as the user wants: no read timeout
    "containers.logs.follow": "stream", "exec.start": "stream",
}


@dataclass(frozen=True)
class EngineInfo:
    """What ``reconcile version`` and the controller's start-up log say about the engine."""

    name: Literal["docker", "podman"]
    version: str
    api_version: str  # negotiated: what this client speaks with the engine
    engine_api_version: str  # the newest the engine speaks
    min_api_version: str
    os: str
    arch: str

    def describe(self) -> str:
        return f"{self.name} {self.version} (API {self.api_version})"


def engine_info_from_version(v: dict[str, Any], negotiated: str) -> EngineInfo:
    """Docker and Podman both answer ``GET /version``; Podman names itself in Components."""
    components = [str(c.get("Name", "")) for c in v.get("Components") or []]
    platform = str((v.get("Platform") or {}).get("Name", ""))
    podman = any("podman" in c.lower() for c in components) or "podman" in platform.lower()
    return EngineInfo(name="podman" if podman else "docker", version=str(v.get("Version", "?")),
                      api_version=negotiated, engine_api_version=str(v.get("ApiVersion", "?")),
                      min_api_version=str(v.get("MinAPIVersion", "?")), os=str(v.get("Os", "?")),
                      arch=str(v.get("Arch", "?")))


# Container events Podman 4.3's Docker-compatible API names in libpod's words (checked: a
# `docker rm -f` through it streams `die`, `cleanup`, `remove`; Docker 20.10 and 26.1 stream
# `die`, `destroy`), mapped to Docker's. `init` and `cleanup` have no Docker counterpart and
# pass through (nothing watches them).
PODMAN_EVENT_ACTIONS = {"remove": "destroy", "exec": "exec_start", "exec_died": "exec_die"}


# The container actions (in Docker's words) after which a pass may find something new: a
# container started, died, was removed or renamed, or its health changed. Not ``exec_*``: a
# health check's probe is an exec, so a healthy container with a 1 s interval sends three
# of them a second, and an inline converge woken by each would pass back to back for
# nothing (the daemon's loop and an inline apply both use this set).
WATCHED_EVENTS = frozenset({"die", "oom", "kill", "stop", "destroy", "health_status", "start", "create", "rename"})


def watched_action(ev: dict[str, Any]) -> str:
    """The event's action without its detail (``health_status: healthy`` ->
    ``health_status``) when it is one of ``WATCHED_EVENTS``, else ''."""
    base = str(ev.get("Action") or ev.get("status") or "").split(":")[0].strip()
    return base if base in WATCHED_EVENTS else ""


def in_dockers_words(ev: dict[str, Any]) -> dict[str, Any]:
    """A container event with its action as Docker names it (``Action`` and ``status``):
    without this the loop, which wakes a service on ``destroy``, never heard of a container
    removed on Podman until its next resync. Any other event is returned as it is."""
    action = str(ev.get("Action") or ev.get("status") or "")
    base, sep, detail = action.partition(":")
    docker_word = PODMAN_EVENT_ACTIONS.get(base.strip())
    if docker_word is None or ev.get("Type", "container") != "container":
        return ev
    renamed = f"{docker_word}{sep}{detail}"
    return {**ev, "Action": renamed, **({"status": renamed} if "status" in ev else {})}


def _podman_ignores(cfg: ContainerConfig) -> list[str]:
    """The keys of ``cfg`` that Podman 4.3's compatible API takes and silently ignores
    (checked: a link's alias does not resolve, ``/proc/sys/kernel/domainname`` stays
    ``(none)``); ``Engine._check`` warns about them on Podman."""
    out = []
    if cfg.host.get("links") or any(ep.get("links") for ep in cfg.endpoints.values()):
        out.append("links")
    if cfg.create.get("domainname"):
        out.append("domainname")
    return out


def _inline_context(context: str, dockerfile: str) -> tuple[IO[bytes], str]:
    """The build context as a tar (``.dockerignore`` honoured, as the SDK does) with an
    inline Dockerfile inside it, and that file's name in the tar. The SDK's own way for a
    Dockerfile outside the context sends the ``dockerfile`` query parameter twice (the
    name in the tar, then the file's text); Docker reads the first, Podman reads both as
    Dockerfile paths and fails (``no such file or directory``). With our own tar the
    parameter is sent once, on every engine."""
    exclude = None
    ignore = os.path.join(context, ".dockerignore")
    if os.path.exists(ignore):
        with open(ignore, encoding="utf-8") as fh:
            exclude = [ln.strip() for ln in fh.read().splitlines() if ln.strip() and not ln.strip().startswith("#")]
    name = f".dockerfile.reconcile-{uuid.uuid4().hex}"
    tar = tempfile.TemporaryFile()  # closed by the caller, after the build
    docker.utils.tar(Path(context), exclude=exclude, dockerfile=(name, dockerfile), fileobj=tar)
    tar.seek(0)
    return tar, name


class _APIClient(docker.APIClient):
    """The SDK's low-level client; its plain calls on a unix socket take
    ``controller.engine_transport`` instead of requests' session (the streams, TLS and SSH
    engines keep the SDK's own transport)."""

    def __init__(self, *args: Any, **kwargs: Any):
        self._lean: UnixTransport | None = None  # not while the SDK negotiates the version
        super().__init__(*args, **kwargs)
        adapter = getattr(self, "_custom_adapter", None)
        sock = getattr(adapter, "socket_path", None)
        if isinstance(sock, str) and self.base_url == "http+docker://localhost":
            self._lean = UnixTransport(sock, self.base_url)

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        lean = self._lean
        if lean is None or not isinstance(url, str) or not lean.handles(url) or not is_plain(args, kwargs):
            return super().request(method, url, *args, **kwargs)
        headers = {**self.headers, **(kwargs.get("headers") or {})}
        return lean.request(method.decode() if isinstance(method, bytes) else method, url, headers=headers,
                            params=kwargs.get("params"), data=kwargs.get("data"), timeout=kwargs.get("timeout"))

    def close(self) -> None:
        if self._lean is not None:
            self._lean.close()
        super().close()


class Engine:
    def __init__(self, base_url: str | None = None, timeout: float | None = None,
                 timeouts: CallTimeouts | None = None, max_removals: int = 4):
        kwargs: dict[str, Any] = dict(docker.utils.kwargs_from_env())
        if base_url:
            kwargs["base_url"] = base_url
        self._kwargs = kwargs
        if timeouts is None:
            # ``timeout`` (the old single knob) still bounds the act calls
            timeouts = CallTimeouts.from_env() if timeout is None else CallTimeouts(act=timeout)
        self.timeouts = timeouts
        self._clients: dict[TimeoutClass, docker.APIClient] = {}
        self._api_version: str | None = None
        self._lock = threading.Lock()
        self._removals = threading.BoundedSemaphore(max(1, max_removals))
        self.calls: Counter[str] = Counter()
        self._target = threading.local()  # the container the current call is about (for EngineTimeout)
        self._identity: tuple[str, str, str] | None = None

    @property
    def base_url(self) -> str | None:
        """The engine's address as given (``base_url``, else DOCKER_HOST), None for the SDK's default."""
        url = self._kwargs.get("base_url")
        return None if url is None else str(url)

    # -- plumbing ------------------------------------------------------------
    def _client(self, cls: TimeoutClass) -> docker.APIClient:
        client = self._clients.get(cls)
        if client is not None:
            return client
        with self._lock:
            client = self._clients.get(cls)
            if client is None:
                try:
                    # negotiate once ("auto" asks the engine), then every client speaks that version
                    timeout = None if cls == "stream" else getattr(self.timeouts, cls)
                    # (the SDK hands the timeout to requests: seconds as a float, None = unbounded)
                    client = _APIClient(**self._kwargs, timeout=timeout, version=self._api_version or "auto")
                except docker.errors.DockerException as exc:
                    raise EngineUnavailable(f"Docker engine unavailable: {exc}", retry_after=1.0) from exc
                self._api_version = client.api_version
                self._clients[cls] = client
        return client

    def _timed_client(self, timeout: float) -> docker.APIClient:
        """A client whose calls time out after ``timeout`` seconds (not pooled: hooks are rare)."""
        self._client("read")  # negotiate the API version once
        try:
            # requests takes a float timeout; the SDK's stubs say int
            return _APIClient(**self._kwargs, timeout=timeout, version=self._api_version or "auto")
        except docker.errors.DockerException as exc:
            raise EngineUnavailable(f"Docker engine unavailable: {exc}", retry_after=1.0) from exc

    @property
    def api(self) -> docker.APIClient:
        """The client of the short (read) calls."""
        return self._client("read")

    def _reset(self) -> None:
        """Reconnect (and renegotiate the API version) next time: the engine may have changed."""
        with self._lock:
            self._clients = {}
            self._api_version = None

    def _call(self, what: str, fn: Callable[[docker.APIClient], T], target: str = "",
              timeout: float | None = None) -> T:
        """One engine call, its errors translated; ``timeout`` (seconds) bounds this call
        alone, on a client of its own (a hook's exec), instead of the call's class."""
        self.calls[what] += 1
        cls = _CLASS.get(what, "act")
        own = None
        try:
            if timeout is not None:
                own = self._timed_client(timeout)
            return fn(self._client(cls) if own is None else own)
        except requests.exceptions.ReadTimeout as exc:
            # the engine took the request and did not answer in time: degraded, not down
            raise EngineTimeout(what, target, getattr(self.timeouts, cls, 0.0) if timeout is None else timeout) from exc
        except docker.errors.ImageNotFound as exc:
            raise ImageMissing(str(exc.explanation or exc)) from exc
        except docker.errors.NotFound as exc:
            text = str(exc.explanation or exc)
            raise (NetworkMissing(text) if network_missing(text) else NotFound(text)) from exc
        except docker.errors.APIError as exc:
            raise refusal(what, exc.status_code, str(exc.explanation or exc)) from exc
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout, ConnectionError,
                docker.errors.DockerException) as exc:
            self._reset()
            raise EngineUnavailable(f"Docker engine unavailable: {exc}", retry_after=1.0) from exc
        finally:
            if own is not None:
                own.close()

    def ping(self) -> bool:
        return bool(self._call("ping", lambda api: api.ping()))

    def version(self) -> dict[str, Any]:
        return self._call("version", lambda api: api.version())

    def capacity(self) -> tuple[float, int]:
        """(CPUs, memory in bytes) of the engine's host, from ``GET /info`` (a node's capacity)."""
        data = self._call("info", lambda api: api.info())
        return float(data.get("NCPU") or 0), int(data.get("MemTotal") or 0)

    def info(self) -> EngineInfo:
        """The engine's name (docker / podman), version and the negotiated API version."""
        v = self.version()
        return engine_info_from_version(v, self._api_version or str(v.get("ApiVersion", "?")))

    # -- observe -------------------------------------------------------------
    def list_owned(self, instance: str, service: str | None = None) -> list[Observed]:
        """One list call: every container of this store (running or not)."""
        label = [f"{L.MANAGED}=true", f"{L.INSTANCE}={instance}"]
        if service:
            label.append(f"{L.SERVICE}={service}")
        entries = self._call("containers.list", lambda api: api.containers(all=True, filters={"label": label}))
        return [from_list_entry({**e, "State": _docker_state(str(e.get("State") or ""))}) for e in entries]

    def image_ids(self) -> dict[str, str]:
        return self.images()[0]

    def images(self) -> tuple[dict[str, str], dict[str, str]]:
        """(tag -> image id, tag -> build hash of images reconcile built), one call."""
        return image_maps(self._call("images.list", lambda api: api.images()))

    def build_image(self, req: BuildRequest) -> tuple[bool, str]:
        """Build an image offline (never pulls). (ok, output tail). ``req.options`` are extra
        ``APIClient.build`` arguments (``render_host.build_options``). An inline Dockerfile
        goes into the context's tar under a name of its own (``_inline_context``)."""
        lines: list[str] = []
        ok = True
        extra = dict(req.options)
        labels = {**extra.pop("labels", {}), **req.labels}
        source: dict[str, Any] = {"path": req.context, "dockerfile": req.dockerfile}
        if req.dockerfile_inline is not None:
            tar, name = _inline_context(req.context, req.dockerfile_inline)
            source = {"fileobj": tar, "custom_context": True, "dockerfile": name}

        def run(api: docker.APIClient) -> None:
            nonlocal ok
            for chunk in api.build(**source, tag=req.tag, buildargs=req.args or None,
                                   target=req.target, labels=labels, rm=True, forcerm=True, pull=False, decode=True,
                                   **extra):
                if "stream" in chunk:
                    lines.extend(chunk["stream"].rstrip("\n").splitlines())
                if "error" in chunk:
                    ok = False
                    lines.append("ERROR: " + str(chunk["error"]).strip())
                del lines[:-40]

        try:
            self._call("images.build", run, req.tag)
        finally:
            if "fileobj" in source:
                source["fileobj"].close()
        return ok, "\n".join(lines[-20:])

    def image_id(self, ref: str) -> str | None:
        try:
            return str(self._call("images.inspect", lambda api: api.inspect_image(ref))["Id"])  # type: ignore[no-untyped-call]
        except (NotFound, ImageMissing):
            return None

    def image_volumes(self, ref: str) -> frozenset[str]:
        """The paths an image declares with ``VOLUME`` (empty when the image is unknown)."""
        try:
            config = self._call("images.inspect", lambda api: api.inspect_image(ref))["Config"] or {}  # type: ignore[no-untyped-call]
        except (NotFound, ImageMissing):
            return frozenset()
        return frozenset((config.get("Volumes") or {}).keys())

    def inspect(self, container_id: str) -> dict[str, Any]:
        return self._call("containers.inspect", lambda api: api.inspect_container(container_id), container_id)

    def detail(self, container_id: str) -> ContainerDetail:
        """The inspect of one container, as a typed record (state, health and its probe log)."""
        return ContainerDetail.from_inspect(self.inspect(container_id))

    def logs_tail(self, container_id: str, lines: int = 20) -> str:
        raw = self._call("containers.logs", lambda api: api.logs(container_id, tail=lines), container_id)
        return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)

    def logs(self, container_id: str, *, follow: bool = False, since: float | None = None,
             tail: int | None = None, timestamps: bool = False) -> Iterator[bytes]:
        """A container's output (stdout and stderr, as the engine interleaves them), in chunks;
        with ``follow`` it blocks for more until the container stops."""
        kwargs: dict[str, Any] = {"stream": True, "follow": follow, "timestamps": timestamps,
                                  "tail": "all" if tail is None else tail}
        if since is not None:
            kwargs["since"] = int(since)
        stream = self._call("containers.logs.follow" if follow else "containers.logs",
                            lambda api: api.logs(container_id, **kwargs))
        try:
            yield from stream
        except (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError, ConnectionError) as exc:
            raise EngineUnavailable(f"log stream lost: {exc}") from exc

    def exec_start(self, container_id: str, cmd: list[str], *, tty: bool, interactive: bool) -> tuple[str, Any]:
        """Start ``cmd`` in the container. (exec id, output): a raw socket when interactive
        (the caller pumps stdin and the output through it), else an iterator of
        (stdout, stderr) chunks."""
        created = self._call("exec.create", lambda api: api.exec_create(
            container_id, cmd, stdin=interactive, tty=tty))
        exec_id = str(created["Id"])
        if interactive:
            sock = self._call("exec.start", lambda api: api.exec_start(exec_id, tty=tty, socket=True))
            return exec_id, getattr(sock, "_sock", sock)
        return exec_id, self._call("exec.start", lambda api: api.exec_start(exec_id, tty=tty, stream=True,
                                                                            demux=True))

    def exec_resize(self, exec_id: str, height: int, width: int) -> None:
        try:
            self._call("exec.resize", lambda api: api.exec_resize(exec_id, height=height, width=width))
        except ReconcileError:
            pass  # the command may have finished already

    def exec_exit_code(self, exec_id: str) -> int | None:
        code = self._call("exec.inspect", lambda api: api.exec_inspect(exec_id)).get("ExitCode")
        return None if code is None else int(code)

    # -- act -----------------------------------------------------------------
    def ensure_volume(self, name: str, labels: dict[str, str], spec: VolumeSpec | None = None) -> bool:
        """Create a named volume if missing (with the spec's driver, options and labels).
        True if it was created. An external volume is never created: ExternalMissing."""
        try:
            self._call("volumes.inspect", lambda api: api.inspect_volume(name))
            return False
        except NotFound:
            if spec is not None and spec.external:
                raise ExternalMissing(f"external volume {name!r} does not exist: reconcile never creates it; "
                                      f"create it first (docker volume create {name})") from None
            driver = spec.driver if spec else "local"
            opts = dict(spec.driverOpts) if spec and spec.driverOpts else None
            all_labels = {**(dict(spec.labels) if spec else {}), **labels}
            self._call("volumes.create", lambda api: api.create_volume(name, driver=driver, driver_opts=opts,
                                                                        labels=all_labels))
            return True

    def network_exists(self, name: str) -> bool:
        try:
            self._call("networks.inspect", lambda api: api.inspect_network(name))
            return True
        except NotFound:
            return False

    def volume_exists(self, name: str) -> bool:
        try:
            self._call("volumes.inspect", lambda api: api.inspect_volume(name))
            return True
        except NotFound:
            return False

    def pull_once(self, ref: str, service: str) -> None:
        """``pullPolicy: always``: one pull attempt, bounded in time; a clear error when it fails."""
        repo, tag = ref, None
        last = ref.rsplit("/", 1)[-1]
        if "@" not in ref and ":" in last:
            repo, tag = ref.rsplit(":", 1)
        client = docker.APIClient(**{**self._kwargs, "timeout": PULL_TIMEOUT})
        self.calls["images.pull"] += 1
        try:
            for chunk in client.pull(repo, tag=tag, stream=True, decode=True):
                if isinstance(chunk, dict) and chunk.get("error"):
                    raise TerminalError(f"{service}: pullPolicy always: pulling {ref} failed: {chunk['error']}")
        except (docker.errors.APIError, requests.exceptions.RequestException, docker.errors.DockerException) as exc:
            detail = getattr(exc, "explanation", None) or exc
            raise TerminalError(f"{service}: pullPolicy always: pulling {ref} failed ({detail}); no registry "
                                "answers from this host: use pullPolicy missing (the local image) or build") from exc
        finally:
            client.close()

    def _check(self, cfg: ContainerConfig, config: dict[str, Any]) -> None:
        """What depends on the engine version or the local image (see the module docstring)."""
        checks: EngineChecks = cfg.checks
        version = str(getattr(self.api, "api_version", "") or getattr(self.api, "_version", ""))
        if checks.annotations:
            if not _api_at_least(version, "1.43"):
                raise TerminalError(f"{checks.service}: annotations need Docker engine API 1.43 or later; this engine "
                                    f"speaks {version}: remove `annotations` or upgrade the engine")
            config["HostConfig"]["Annotations"] = dict(checks.annotations)
        if checks.start_interval_ns is not None:
            if _api_at_least(version, "1.44"):
                config["Healthcheck"]["StartInterval"] = checks.start_interval_ns
            else:
                logger.warning(f"{checks.service}: healthcheck.startInterval is ignored: it needs Docker engine API "
                               f"1.44 or later and this engine speaks {version}; probes run every `interval` "
                               "from the start")
        ignored = _podman_ignores(cfg)
        if ignored and "podman" in self.identity()[0].lower():
            logger.warning(f"{checks.service}: ignored by this engine: {', '.join(ignored)} (Podman's "
                           "Docker-compatible API accepts them and does nothing: Podman has no container links, and "
                           "it does not set Domainname); for a link, give the target a network alias instead")
        if checks.platform:
            image = self._call("images.inspect", lambda api: api.inspect_image(cfg.image),  # type: ignore[no-untyped-call]
                               cfg.image)
            have = platform_mismatch(checks.platform, image)
            if have:
                raise TerminalError(f"{checks.service}: platform {checks.platform} does not match the local image "
                                    f"{cfg.image}, which is {have}; nothing is pulled here: build or load an image "
                                    f"for {checks.platform}, or change `platform`")

    def create(self, cfg: ContainerConfig) -> str:
        api = self.api
        if cfg.checks.pull_always:
            self.pull_once(cfg.image, cfg.checks.service)
        host_config = _host_config(api, cfg)
        if any(str(h).endswith(":host-gateway") for h in host_config.get("ExtraHosts") or []):
            self._host_gateway(host_config, cfg.networks[0] if cfg.networks else None, cfg.checks.service)
        exposed = [(int(p.split("/")[0]), p.split("/")[1]) for p in cfg.exposed]
        kwargs: dict[str, Any] = dict(
            image=cfg.image, command=cfg.command, name=cfg.name, environment=cfg.env, labels=cfg.labels,
            ports=exposed or None, host_config=host_config, healthcheck=cfg.healthcheck,
            stop_signal=cfg.stop_signal, volumes=cfg.anonymous or None,
        )
        if cfg.stop_timeout != 10:
            kwargs["stop_timeout"] = cfg.stop_timeout
        kwargs.update(cfg.create)
        if cfg.networks:
            # the first network at create time (aliases, links, addresses); others are connected after
            first = cfg.networks[0]
            host_config["NetworkMode"] = first
            kwargs["networking_config"] = _first_network(api, cfg, first)
        # create_container's own steps, split so that _check can edit the config (keys the
        # SDK does not know: Annotations, Healthcheck.StartInterval)
        name = kwargs.pop("name")
        kwargs["environment"] = api._proxy_configs.inject_proxy_environment(  # type: ignore[attr-defined]
            docker.utils.utils.format_environment(kwargs["environment"] or {})) or None
        config = api.create_container_config(**kwargs)
        self._check(cfg, config)
        result = self._call("containers.create",
                            lambda a: a.create_container_from_config(config, name),  # type: ignore[no-untyped-call]
                            cfg.name)
        return str(result["Id"])

    def _host_gateway(self, host_config: dict[str, Any], network: str | None, service: str) -> None:
        """``extra_hosts: NAME:host-gateway``: Docker writes its address for the host; Podman
        4.3 writes the word ``host-gateway`` into ``/etc/hosts`` as is. On Podman it becomes
        the gateway of the container's first network (the address Podman itself gives
        ``host.containers.internal``); Docker's requests are left as they are."""
        if "podman" not in self.identity()[0].lower():
            return
        gateway = ""
        if network:
            ipam = (self._call("networks.inspect", lambda api: api.inspect_network(network)).get("IPAM") or {})
            gateway = next((str(c.get("Gateway")) for c in ipam.get("Config") or [] if c.get("Gateway")), "")
        if not gateway:
            logger.warning(f"{service}: extra_hosts host-gateway: this engine (Podman) does not resolve it and the "
                           f"container's network has no gateway to use instead; the entry is left as written")
            return
        host_config["ExtraHosts"] = [f"{h.rsplit(':', 1)[0]}:{gateway}" if str(h).endswith(":host-gateway") else h
                                     for h in host_config["ExtraHosts"]]

    def connect(self, container_id: str, network: str, endpoint: dict[str, Any]) -> None:
        """Attach to one more network with its endpoint config (aliases, links, addresses)."""
        self._call("networks.connect",
                   lambda api: api.connect_container_to_network(container_id, network, **endpoint),
                   container_id)

    def ensure_network(self, name: str, labels: dict[str, str], spec: NetworkSpec | None = None) -> bool:
        """Create a network if missing, as its spec says (bridge by default). True if
        created. An external network is never created: ExternalMissing."""
        try:
            self._call("networks.inspect", lambda api: api.inspect_network(name))
            return False
        except NotFound:
            if spec is not None and spec.external:
                raise ExternalMissing(f"external network {name!r} does not exist: reconcile never creates it; "
                                      f"create it first (docker network create {name})") from None
            kwargs: dict[str, Any] = {"driver": "bridge", "labels": labels, "check_duplicate": True}
            if spec is not None:
                kwargs.update(driver=spec.driver, labels={**spec.labels, **labels}, internal=spec.internal,
                              enable_ipv6=spec.enableIpv6, attachable=spec.attachable or None,
                              options=dict(spec.driverOpts) or None)
                if spec.ipam is not None:
                    pools = [docker.types.IPAMPool(subnet=p.subnet, iprange=p.ipRange, gateway=p.gateway,
                                                   aux_addresses=dict(p.auxAddresses) or None) for p in spec.ipam.config]
                    kwargs["ipam"] = docker.types.IPAMConfig(driver=spec.ipam.driver, pool_configs=pools,
                                                             options=dict(spec.ipam.options) or None)
            self._call("networks.create", lambda api: api.create_network(name, **kwargs))
            return True

    def owned_networks(self, instance: str) -> list[dict[str, Any]]:
        return self._call("networks.list", lambda api: api.networks(filters={"label": [f"{L.INSTANCE}={instance}"]}))

    def remove_network(self, name: str) -> None:
        try:
            self._call("networks.remove", lambda api: api.remove_network(name))
        except NotFound:
            pass

    def owned_volumes(self, instance: str, service: str | None = None) -> list[str]:
        label = [f"{L.INSTANCE}={instance}"] + ([f"{L.SERVICE}={service}"] if service else [])
        res = self._call("volumes.list", lambda api: api.volumes(filters={"label": label}))
        return [v["Name"] for v in (res or {}).get("Volumes") or []]

    def remove_volume(self, name: str) -> None:
        try:
            self._call("volumes.remove", lambda api: api.remove_volume(name))
        except NotFound:
            pass

    def start(self, container_id: str) -> None:
        self._call("containers.start", lambda api: api.start(container_id), container_id)

    def restart(self, container_id: str, timeout: int) -> None:
        self._call("containers.restart", lambda api: api.restart(container_id, timeout=timeout), container_id)

    def stop(self, container_id: str, timeout: int) -> None:
        self._call("containers.stop", lambda api: api.stop(container_id, timeout=timeout), container_id)

    def remove(self, container_id: str, *, force: bool = True) -> None:
        # at most ``max_removals`` at once; waiting for a slot is bounded like the call itself
        if not self._removals.acquire(timeout=self.timeouts.act):
            raise EngineTimeout("containers.remove", container_id, self.timeouts.act, queued=True)
        try:
            self._call("containers.remove", lambda api: api.remove_container(container_id, force=force), container_id)
        except NotFound:
            pass  # already gone: removal is idempotent
        finally:
            self._removals.release()

    def rename(self, container_id: str, name: str) -> None:
        self._call("containers.rename", lambda api: api.rename(container_id, name), container_id)

    def find_by_name(self, name: str) -> dict[str, Any] | None:
        try:
            return self.inspect(name)
        except NotFound:
            return None

    # -- events --------------------------------------------------------------
    def open_events(self, instance: str, since: float | None = None) -> tuple[Iterator[dict[str, Any]], Callable[[], None]]:
        """The events of ``events`` plus a function that ends the stream from another thread:
        the blocked reader then stops (an inline apply waits on it, then closes it)."""
        filters = {"type": ["container"], "label": [f"{L.INSTANCE}={instance}"]}
        # ``since`` as a fractional timestamp: the SDK passes it on as is, the engine accepts it
        stream = self._call("events", lambda api: api.events(decode=True, filters=filters,
                                                             since=since))  # type: ignore[call-overload]

        def read() -> Iterator[dict[str, Any]]:
            try:
                for ev in stream:
                    yield in_dockers_words(ev)
            except Exception:  # noqa: BLE001 - closed under the reader, or the engine went away: the end
                return

        return read(), stream.close

    def events(self, instance: str, since: float | None = None) -> Iterator[dict[str, Any]]:
        """Container and image events of this store's containers, decoded, blocking; each
        action in Docker's words (``in_dockers_words``: Podman's ``remove`` is ``destroy``)."""
        filters = {"type": ["container"], "label": [f"{L.INSTANCE}={instance}"]}
        # ``since`` as a fractional timestamp: the SDK passes it on as is, the engine accepts it
        stream = self._call("events", lambda api: api.events(decode=True, filters=filters,
                                                             since=since))  # type: ignore[call-overload]
        try:
            for ev in stream:
                yield in_dockers_words(ev)
        except (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError, ConnectionError) as exc:
            raise EngineUnavailable(f"event stream lost: {exc}") from exc
        finally:
            close = getattr(stream, "close", None)
            if close:
                close()

    def watch(self, instance: str, since: float | None = None) -> Iterator[EngineEvent]:
        """``events``, each as a typed ``EngineEvent``."""
        for ev in self.events(instance, since=since):
            yield EngineEvent.from_engine(ev)

    # -- engine differences: health checks ------------------------------------------
    def identity(self) -> tuple[str, str, str]:
        """(engine name, its version, API version), e.g. ("Docker Engine", "20.10.24", "1.41")
        or ("Podman Engine", "4.3.1", "1.41"), from ``/version``; cached."""
        if self._identity is None:
            v = self.version()
            comps = v.get("Components") or []
            name = str(comps[0].get("Name") or "") if comps else ""
            if not name:
                name = "Docker Engine" if "docker" in str((v.get("Platform") or {}).get("Name", "")).lower() else ""
            self._identity = (name or "unknown engine", str(v.get("Version") or ""), str(v.get("ApiVersion") or ""))
        return self._identity

    def runs_healthchecks(self) -> bool:
        """Does the engine itself run containers' health checks? Docker's daemon does. Podman
        4.x schedules them with systemd timers, and its Docker-compatible API has no way to
        trigger one: where no systemd runs (these hosts) health stays ``starting`` forever, so
        on Podman the controller runs them (``controller.probes``). Any other engine is taken
        at its word, and a container whose health never gets a probe result is taken over
        anyway (``probes.engine_stalled``)."""
        return "podman" not in self.identity()[0].lower()

    def exec_hook(self, container_id: str, hook: HookCall) -> HookResult:
        """Run a lifecycle hook in a running container and wait for it, at most
        ``hook.timeout`` seconds (then ``HookResult.timed_out``; the exec itself may go on
        in the container until the container stops). Exit code and the output's tail
        (stderr preferred, as compose reports a failing hook)."""
        exec_id = self._call("exec.create", lambda api: api.exec_create(
            container_id, list(hook.argv), stdout=True, stderr=True, user=hook.user or "", privileged=hook.privileged,
            environment=[f"{k}={v}" for k, v in hook.env] or None, workdir=hook.working_dir), container_id)["Id"]
        try:
            raw = self._call("exec.run", lambda api: api.exec_start(exec_id, demux=True), container_id,
                             timeout=hook.timeout)
        except EngineTimeout:
            return HookResult(None, "", timed_out=True)
        out, err = raw if isinstance(raw, tuple) else (raw, None)
        text = (err or b"").decode("utf-8", "replace").strip() or (out or b"").decode("utf-8", "replace").strip()
        code = self._call("exec.inspect", lambda api: api.exec_inspect(exec_id), container_id).get("ExitCode")
        return HookResult(None if code is None else int(code), text[-HOOK_OUTPUT_TAIL:])

    def exec_probe(self, container_id: str, argv: list[str]) -> Outcome:
        """Run a health probe in the container: its state first (is it running, since when),
        then ``argv`` through exec, with its exit code and combined output."""
        state = self.inspect(container_id).get("State") or {}
        started = parse_time(str(state.get("StartedAt") or ""))
        if not state.get("Running"):
            return Outcome(False, started, -1, "")
        exec_id = self._call("containers.exec_create", lambda api: api.exec_create(
            container_id, argv, stdout=True, stderr=True))["Id"]
        raw = self._call("containers.exec_start", lambda api: api.exec_start(exec_id))
        code = self._call("containers.exec_inspect", lambda api: api.exec_inspect(exec_id)).get("ExitCode")
        output = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw or "")
        return Outcome(True, started, -1 if code is None else int(code), output)

