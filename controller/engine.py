"""The Docker adapter: the only module that imports ``docker``.

It speaks the low-level API (``docker.APIClient``): ``containers()`` is one list call,
whereas the high-level ``containers.list()`` inspects every container it returns.
Every call is counted (``calls``) so benchmarks can report engine calls per pass.
``docker.errors`` and connection failures are translated into ``controller.errors``.
Images are never pulled: no registry is assumed to be reachable.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import docker
import docker.errors
import requests.exceptions

from controller import labels as L
from controller.errors import EngineUnavailable, ImageMissing, NameConflict, NotFound, ReconcileError, TransientError
from controller.observed import Observed, from_list_entry, parse_time
from controller.probes import Outcome
from controller.render import ContainerConfig

T = TypeVar("T")
_PODMAN_NAME_IN_USE = "that name is already in use"
# Podman lists images by fully qualified names: "localhost/app:1" for one built or
# imported here, "docker.io/library/app:1" for some builds through the compatible API;
# the spec (and Docker) say "app:1"
_PODMAN_PREFIXES = ("localhost/", "docker.io/library/", "docker.io/")


def _normalise_ref(ref: str) -> str:
    last = ref.rsplit("/", 1)[-1]
    if "@" in ref or ":" in last:
        return ref
    return ref + ":latest"


def _short_ref(tag: str) -> str:
    """An image name as Docker would show it: without Podman's qualifying prefix."""
    for prefix in _PODMAN_PREFIXES:
        if tag.startswith(prefix):
            return tag[len(prefix):]
    return tag


class Engine:
    def __init__(self, base_url: str | None = None, timeout: float = 60.0):
        kwargs: dict[str, Any] = docker.utils.kwargs_from_env()
        if base_url:
            kwargs["base_url"] = base_url
        self._kwargs = {**kwargs, "timeout": timeout, "version": "auto"}
        self._api: docker.APIClient | None = None
        self._lock = threading.Lock()
        self.calls: Counter[str] = Counter()
        self._identity: tuple[str, str, str] | None = None

    # -- plumbing ------------------------------------------------------------
    @property
    def api(self) -> docker.APIClient:
        if self._api is None:
            with self._lock:
                if self._api is None:
                    try:
                        self._api = docker.APIClient(**self._kwargs)
                    except docker.errors.DockerException as exc:
                        raise EngineUnavailable(f"Docker engine unavailable: {exc}", retry_after=1.0) from exc
        return self._api

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        self.calls[what] += 1
        try:
            return fn()
        except docker.errors.ImageNotFound as exc:
            raise ImageMissing(str(exc.explanation or exc)) from exc
        except docker.errors.NotFound as exc:
            raise NotFound(str(exc.explanation or exc)) from exc
        except docker.errors.APIError as exc:
            # Podman answers some name conflicts (a create whose name another container
            # holds, on some paths) with 500 and libpod's own wording, not Docker's 409
            if exc.status_code == 409 or _PODMAN_NAME_IN_USE in str(exc.explanation or ""):
                raise NameConflict(str(exc.explanation or exc)) from exc
            if exc.status_code and exc.status_code >= 500:
                raise TransientError(f"engine error: {exc.explanation or exc}", retry_after=2.0) from exc
            raise ReconcileError(f"engine refused {what}: {exc.explanation or exc}") from exc
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout, ConnectionError,
                docker.errors.DockerException) as exc:
            self._api = None  # reconnect (and renegotiate the API version) next time
            raise EngineUnavailable(f"Docker engine unavailable: {exc}", retry_after=1.0) from exc

    def ping(self) -> bool:
        return bool(self._call("ping", lambda: self.api.ping()))

    def version(self) -> dict[str, Any]:
        return self._call("version", lambda: self.api.version())

    # -- observe -------------------------------------------------------------
    def list_owned(self, instance: str, service: str | None = None) -> list[Observed]:
        """One list call: every container of this store (running or not)."""
        label = [f"{L.MANAGED}=true", f"{L.INSTANCE}={instance}"]
        if service:
            label.append(f"{L.SERVICE}={service}")
        entries = self._call("containers.list", lambda: self.api.containers(all=True, filters={"label": label}))
        return [from_list_entry(e) for e in entries]

    def image_ids(self) -> dict[str, str]:
        return self.images()[0]

    def images(self) -> tuple[dict[str, str], dict[str, str]]:
        """(tag -> image id, tag -> build hash of images reconcile built), one call."""
        ids: dict[str, str] = {}
        builds: dict[str, str] = {}
        for img in self._call("images.list", lambda: self.api.images()):
            tags = [t for t in img.get("RepoTags") or [] if t and t != "<none>:<none>"]
            tags += [short for short in map(_short_ref, tags) if short not in tags]
            for tag in tags:
                if tag:
                    ids[tag] = img["Id"]
                    if tag.endswith(":latest"):
                        ids.setdefault(tag[: -len(":latest")], img["Id"])
                    build = (img.get("Labels") or {}).get(L.BUILD_HASH)
                    if build:
                        builds[tag] = build
                        if tag.endswith(":latest"):
                            builds.setdefault(tag[: -len(":latest")], build)
        return ids, builds

    def build(self, *, context: str, dockerfile: str, tag: str, args: dict[str, str], target: str | None,
              labels: dict[str, str]) -> tuple[bool, str]:
        """Build an image offline (never pulls). (ok, output tail)."""
        lines: list[str] = []
        ok = True

        def run() -> None:
            nonlocal ok
            for chunk in self.api.build(path=context, dockerfile=dockerfile, tag=tag, buildargs=args or None,
                                        target=target, labels=labels, rm=True, forcerm=True, pull=False, decode=True):
                if "stream" in chunk:
                    lines.extend(chunk["stream"].rstrip("\n").splitlines())
                if "error" in chunk:
                    ok = False
                    lines.append("ERROR: " + str(chunk["error"]).strip())
                del lines[:-40]

        self._call("images.build", run)
        return ok, "\n".join(lines[-20:])

    def image_id(self, ref: str) -> str | None:
        try:
            return self._call("images.inspect", lambda: self.api.inspect_image(ref))["Id"]
        except (NotFound, ImageMissing):
            return None

    def inspect(self, container_id: str) -> dict[str, Any]:
        return self._call("containers.inspect", lambda: self.api.inspect_container(container_id))

    def logs_tail(self, container_id: str, lines: int = 20) -> str:
        raw = self._call("containers.logs", lambda: self.api.logs(container_id, tail=lines))
        return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)

    # -- act -----------------------------------------------------------------
    def ensure_volume(self, name: str, labels: dict[str, str]) -> bool:
        """Create a named volume if missing. True if it was created."""
        try:
            self._call("volumes.inspect", lambda: self.api.inspect_volume(name))
            return False
        except NotFound:
            self._call("volumes.create", lambda: self.api.create_volume(name, labels=labels))
            return True

    def create(self, cfg: ContainerConfig) -> str:
        api = self.api
        host_config = api.create_host_config(
            binds=cfg.binds or None, restart_policy={"Name": "no"}, init=cfg.init or None, **cfg.host,
        )
        if cfg.port_bindings:
            host_config["PortBindings"] = {
                port: [{"HostIp": ip or "", "HostPort": str(hp) if hp else ""} for ip, hp in hosts]
                for port, hosts in cfg.port_bindings.items()
            }
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
            # the first network at create time (with the service name as alias); others are connected after
            first = cfg.networks[0]
            host_config["NetworkMode"] = first
            kwargs["networking_config"] = api.create_networking_config(
                {first: api.create_endpoint_config(aliases=cfg.aliases or [cfg.labels.get(L.SERVICE, "")])})
        result = self._call("containers.create", lambda: api.create_container(**kwargs))
        return str(result["Id"])

    def connect(self, container_id: str, network: str, aliases: list[str]) -> None:
        self._call("networks.connect",
                   lambda: self.api.connect_container_to_network(container_id, network, aliases=aliases))

    def ensure_network(self, name: str, labels: dict[str, str]) -> bool:
        """Create a bridge network if missing. True if created."""
        try:
            self._call("networks.inspect", lambda: self.api.inspect_network(name))
            return False
        except NotFound:
            self._call("networks.create", lambda: self.api.create_network(name, driver="bridge", labels=labels,
                                                                          check_duplicate=True))
            return True

    def owned_networks(self, instance: str) -> list[dict[str, Any]]:
        return self._call("networks.list", lambda: self.api.networks(filters={"label": [f"{L.INSTANCE}={instance}"]}))

    def remove_network(self, name: str) -> None:
        try:
            self._call("networks.remove", lambda: self.api.remove_network(name))
        except NotFound:
            pass

    def owned_volumes(self, instance: str, service: str | None = None) -> list[str]:
        label = [f"{L.INSTANCE}={instance}"] + ([f"{L.SERVICE}={service}"] if service else [])
        res = self._call("volumes.list", lambda: self.api.volumes(filters={"label": label}))
        return [v["Name"] for v in (res or {}).get("Volumes") or []]

    def remove_volume(self, name: str) -> None:
        try:
            self._call("volumes.remove", lambda: self.api.remove_volume(name))
        except NotFound:
            pass

    def start(self, container_id: str) -> None:
        self._call("containers.start", lambda: self.api.start(container_id))

    def restart(self, container_id: str, timeout: int) -> None:
        self._call("containers.restart", lambda: self.api.restart(container_id, timeout=timeout))

    def stop(self, container_id: str, timeout: int) -> None:
        self._call("containers.stop", lambda: self.api.stop(container_id, timeout=timeout))

    def remove(self, container_id: str, *, force: bool = True) -> None:
        try:
            self._call("containers.remove", lambda: self.api.remove_container(container_id, force=force))
        except NotFound:
            pass  # already gone: removal is idempotent

    def rename(self, container_id: str, name: str) -> None:
        self._call("containers.rename", lambda: self.api.rename(container_id, name))

    def find_by_name(self, name: str) -> dict[str, Any] | None:
        try:
            return self.inspect(name)
        except NotFound:
            return None

    # -- events --------------------------------------------------------------
    def events(self, instance: str, since: float | None = None) -> Iterator[dict[str, Any]]:
        """Container and image events of this store's containers, decoded, blocking."""
        filters = {"type": ["container"], "label": [f"{L.INSTANCE}={instance}"]}
        stream = self._call("events", lambda: self.api.events(decode=True, filters=filters, since=since))
        try:
            yield from stream
        except (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError, ConnectionError) as exc:
            raise EngineUnavailable(f"event stream lost: {exc}") from exc
        finally:
            close = getattr(stream, "close", None)
            if close:
                close()

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

    def exec_probe(self, container_id: str, argv: list[str]) -> Outcome:
        """Run a health probe in the container: its state first (is it running, since when),
        then ``argv`` through exec, with its exit code and combined output."""
        state = self.inspect(container_id).get("State") or {}
        started = parse_time(str(state.get("StartedAt") or ""))
        if not state.get("Running"):
            return Outcome(False, started, -1, "")
        exec_id = self._call("containers.exec_create", lambda: self.api.exec_create(
            container_id, argv, stdout=True, stderr=True))["Id"]
        raw = self._call("containers.exec_start", lambda: self.api.exec_start(exec_id))
        code = self._call("containers.exec_inspect", lambda: self.api.exec_inspect(exec_id)).get("ExitCode")
        output = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw or "")
        return Outcome(True, started, -1 if code is None else int(code), output)

