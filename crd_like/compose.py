"""Compose files -> native ``Service`` / ``Job`` documents (as location-tracking Node trees).

Each compose service becomes one native document named by ``native_name`` (
``<project>-<service>`` made a valid resource name, see there); the caller (``crd_like.formats``)
validates it with the normal models, and every error
points back at the compose file, line and key the value came from. What this module
does not convert is reported by key name and file:line: an error, or with
``LoadOptions.allow_unsupported`` a warning. Nothing is dropped silently.

Compose semantics emulated (differences are spelled out where they happen):
- project name: ``LoadOptions.project``, else ``COMPOSE_PROJECT_NAME`` from the
  environment (or ``.env``), else top-level ``name:``, else the first file's
  directory name normalised as compose does (lowercase, only ``[a-z0-9_-]``);
- every service that names no network joins ``<project>_default``; top-level
  networks and named volumes are namespaced ``<project>_<name>`` unless ``external:
  true`` or an explicit ``name:``;
- relative paths (binds, env_file, secret and config files) are relative to the
  directory of the first compose file, as compose does with several ``-f`` files;
- services with ``profiles:`` are only included when one of their profiles is active;
- a service another service waits on with ``condition:
  service_completed_successfully`` becomes a native ``Job`` (it runs to completion);
- ``env_file:`` becomes ``envFiles`` (read by the controller when it creates the
  container, values treated as secrets), ``secrets:`` / ``configs:`` read-only binds.

Services reach each other by their native name and by the bare compose service name
(an alias on the project's networks); the original names are recorded in the metadata
labels ``compose.service`` / ``compose.project``. ``include`` and ``extends`` are resolved
per file first (``crd_like.compose_load``), then the files merge (``crd_like.merge``).
Restart policy and ``onUnhealthy`` follow the rule in ``_Service._restart``; ``convert``
adds a once-per-stack notice naming the services that are never restarted. Values
interpolated into secret-looking env keys become secret value sources (``crd_like.secrets``).

No I/O: the ``.env`` file is read, and ``env_file`` / secret / config files are checked
to exist, through ``LoadOptions.read_file``, which the caller supplies. Must not import
``store`` or ``controller``.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from crd_like import compose_files, compose_hooks, compose_host, compose_net, compose_placement, units
from crd_like.compose_files import FileSource
from crd_like.errors import InvalidSpec, Issue
from crd_like.interpolate import InterpolationError, interpolate_tree, parse_env_file, substitute
from crd_like.load_options import LoadOptions
from crd_like.models import API_VERSION, NAME_PATTERN, ServiceSpec, UpdatePolicy
from crd_like.merge import Node, kv_pairs, merge_compose, names_map, plain, strip_tags
from crd_like.secrets import looks_secret, secret_value
from crd_like.spec_host import other_url, remote_context

TOP_KEYS = frozenset({"version", "name", "services", "networks", "volumes", "secrets", "configs", "include"})
KNOWN_UNSUPPORTED_TOP = frozenset({"models"})
# compose service keys this converter does not handle (anything else unknown is probably a typo)
KNOWN_UNSUPPORTED_SERVICE = frozenset({
    "annotations", "attach", "blkio_config", "cgroup", "cgroup_parent", "cpu_count", "cpu_percent",
    "cpu_period", "cpu_quota", "cpu_rt_period", "cpu_rt_runtime", "cpu_shares", "cpuset", "credential_spec",
    "device_cgroup_rules", "devices", "dns", "dns_opt", "dns_search", "domainname", "expose",
    "external_links", "gpus", "group_add", "ipc", "isolation", "label_file", "links",
    "mac_address", "mem_swappiness", "memswap_limit", "models", "network_mode", "oom_kill_disable",
    "oom_score_adj", "pid", "pids_limit", "platform", "privileged", "provider",
    "pull_policy", "runtime", "security_opt", "shm_size", "stdin_open", "storage_opt", "sysctls", "tty",
    "ulimits", "use_api_socket", "userns_mode", "uts", "volumes_from",
})
_WHY = {
    "container_name": "container names are deterministic (<project>-<service>-<replica>)",
    "expose": "containers on a shared network reach each other's ports without it",
    "links": "services on the same network resolve each other by name",
    "network_mode": "services join the project's networks",
    "build.secrets": "builds use the engine's classic builder, which has no build secrets",
    "build.ssh": "builds use the engine's classic builder, which has no SSH agent forwarding",
}
_NAME = re.compile(NAME_PATTERN)
_PROJECT = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
MAX_NAME = 63


def native_name(project: str, service: str) -> str:
    """The reconcile resource name of compose service ``service`` of ``project``.

    The rule (stable across applies, documented in the README): ``<project>-<service>``,
    lowercased, every run of characters outside ``[a-z0-9]`` replaced by one ``-``, and
    trimmed of ``-``; longer than 63 characters, it is cut to 54 (trailing ``-``
    trimmed) plus ``-`` plus the first 8 hex digits of sha256("<project>/<service>") of
    the original names. The original names stay in the labels ``compose.project`` /
    ``compose.service`` and in every message."""
    name = re.sub(r"[^a-z0-9]+", "-", f"{project}-{service}".lower()).strip("-")
    if len(name) > MAX_NAME:
        digest = hashlib.sha256(f"{project}/{service}".encode()).hexdigest()[:8]
        name = name[:54].rstrip("-") + "-" + digest
    return name or hashlib.sha256(f"{project}/{service}".encode()).hexdigest()[:8]

Reader = Callable[[str], bytes]


def is_compose(data: Any) -> bool:
    """Compose by shape: a mapping without apiVersion/kind, with a ``services:`` mapping
    (or, for an overlay holding no services, only compose top-level keys)."""
    if not isinstance(data, dict) or not data or "apiVersion" in data or "kind" in data:
        return False
    if isinstance(data.get("services"), dict):
        return True
    return all(isinstance(k, str) and (k in TOP_KEYS or k.startswith("x-")) for k in data)


def normalize_project_name(text: str) -> str:
    """compose's normalisation of a directory name: lowercase, keep ``[a-z0-9_-]``,
    no leading ``_`` or ``-``."""
    return re.sub(r"[^a-z0-9_-]", "", text.lower()).lstrip("_-")


@dataclass
class ComposeSource:
    node: Node  # the file's single document
    file: str  # display name
    base_dir: str


@dataclass
class Converted:
    kind: str
    name: str
    doc: Node  # the native document, located at the compose keys
    compose_name: str = ""  # the compose service name (messages use it)
    restarts: bool = True  # whether the loop restarts it when it dies


@dataclass
class _Ctx:
    project: str
    project_dir: str
    display_dir: str
    env: dict[str, str]
    allow_unsupported: bool
    read_file: Reader | None
    warnings: list[str]
    issues: list[Issue] = field(default_factory=list)
    volumes: dict[str, str] = field(default_factory=dict)  # compose name -> engine name
    networks: dict[str, str] = field(default_factory=dict)
    files: dict[str, dict[str, FileSource | None]] = field(default_factory=lambda: {"secrets": {}, "configs": {}})
    deferred: list[Issue] = field(default_factory=list)  # fine for `convert`, an error for `apply`
    notices: list[str] = field(default_factory=list)
    settings: dict[str, Node] = field(default_factory=dict)  # the top-level `x-reconcile:` extension

    def warn(self, node: Node, key: str, what: str) -> None:
        """A key that is accepted but whose meaning differs here: a warning naming file:line:key."""
        self.warnings.append(str(Issue(node.file, node.line, node.field, f"compose key '{key}': {what}")))
    network_specs: dict[str, Node] = field(default_factory=dict)  # engine name -> native networkSpecs entry
    volume_specs: dict[str, Node] = field(default_factory=dict)  # engine name -> native volumeSpecs entry

    def error(self, node: Node, message: str, field_: str | None = None) -> None:
        self.issues.append(Issue(node.file, node.line, node.field if field_ is None else field_, message))

    def unsupported(self, node: Node, key: str, known: bool = True) -> None:
        what = (f"compose key '{key}' is not supported by reconcile" if known
                else f"unknown compose key '{key}' (a typo, or a key newer than reconcile knows)")
        why = _WHY.get(key)
        if why:
            what += f" ({why})"
        if self.allow_unsupported:
            self.warnings.append(str(Issue(node.file, node.line, node.field, what + "; ignored")))
        else:
            self.issues.append(Issue(node.file, node.line, node.field,
                                     what + "; remove it, or pass --allow-unsupported to ignore it with a warning"))

    def path(self, text: str) -> str:
        """A host path from the compose file, absolute (relative to the project directory)."""
        if text.startswith("~"):
            return os.path.normpath(os.path.expanduser(text))
        return os.path.normpath(os.path.join(self.project_dir, text))

    def display(self, text: str) -> str:
        return text if os.path.isabs(text) else os.path.normpath(os.path.join(self.display_dir, text))

    def read(self, node: Node, rel: str, what: str, required: bool = True) -> bytes | None:
        if self.read_file is None:
            self.error(node, f"cannot read {what} {rel!r}: no file reader was given to the loader")
            return None
        try:
            return self.read_file(self.path(rel))
        except FileNotFoundError:
            if required:
                self.error(node, f"{what} {self.display(rel)!r} does not exist")
        except OSError as exc:
            self.error(node, f"cannot read {what} {self.display(rel)!r}: {exc.strerror or exc}")
        return None


def _bool(node: Node | None) -> bool:
    v = None if node is None else node.value
    return v is True or (isinstance(v, str) and v.lower() in ("true", "yes", "1"))


def _false(node: Node | None) -> bool:
    v = None if node is None else node.value
    return v is False or (isinstance(v, str) and v.lower() in ("false", "no", "0"))


def _strs(node: Node) -> Node:
    """A command-like list with scalars made strings (``[sleep, 30]``)."""
    if isinstance(node.value, list):
        return node.at([i.at(str(i.value)) if isinstance(i.value, (int, float)) else i for i in node.value])
    return node


def read_dotenv(first: ComposeSource, environ: Mapping[str, str], read_file: Reader | None) -> dict[str, str]:
    """The ``.env`` file beside the first compose file, or {} (also with no reader)."""
    if read_file is None:
        return {}
    try:
        raw = read_file(os.path.join(first.base_dir, ".env"))
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise InvalidSpec([Issue(_display_env(first), None, "", f"cannot read: {exc.strerror or exc}")]) from None
    return parse_env_file(raw, _display_env(first), environ)


def _display_env(first: ComposeSource) -> str:
    return os.path.join(os.path.dirname(first.file), ".env")


def convert(sources: list[ComposeSource], opts: LoadOptions) -> list[Converted]:
    """Merge the compose files in order and convert every active service. Raises InvalidSpec.

    From ``opts``: ``project_dir`` (``--project-directory``): where relative paths, ``.env``
    and the default project name come from (default: the first file's directory);
    ``env_files`` (``--env-file``, absolute) replace that ``.env``. ``notices`` receives the
    info lines (the restart notice, ignored development-only keys); ``deferred`` the
    problems that compose only finds at ``up`` (a missing secret file, an unset variable):
    warnings here, errors for whoever applies the result."""
    first = sources[0]
    base_dir = opts.project_dir or first.base_dir
    display_dir = os.path.dirname(first.file) if opts.project_dir is None else opts.project_dir
    env, name, merged = _merged_project(sources, opts, base_dir, display_dir)
    ctx = _Ctx(name, base_dir, display_dir, env, opts.allow_unsupported, opts.read_file, opts.warnings)
    services = _top_level(merged, ctx)
    active = _active(services, opts.profiles or _env_profiles(env), ctx)
    jobs = {dep for svc in active.values() for dep, cond in _dep_conditions(svc)
            if cond == "service_completed_successfully"}
    _check_graph(active, ctx)
    out = [_Service(ctx, key, node, services, active, key in jobs).convert() for key, node in active.items()]
    _check_names(out, ctx)
    if ctx.issues:
        raise InvalidSpec(ctx.issues)
    _restart_notice(out, ctx)
    opts.notices.extend(ctx.notices)
    opts.deferred.extend(ctx.deferred)
    return out


def _merged_project(sources: list[ComposeSource], opts: LoadOptions, base_dir: str,
                    display_dir: str) -> tuple[dict[str, str], str, Node]:
    """The project's environment (``.env`` or ``--env-file`` under the process
    environment), its name, and its files interpolated, with ``include`` and ``extends``
    applied, merged in order. Each stage raises InvalidSpec with all of its problems."""
    from crd_like.compose_load import LoadCtx, apply_extends, apply_include, read_env

    first = sources[0]
    issues: list[Issue] = []
    where = Node(None, first.file, None, "")
    lctx = LoadCtx(opts.environ, opts.read_file, issues, opts.warnings, display_dir, base_dir)
    dotenv = list(opts.env_files) or [os.path.join(base_dir, ".env")]
    env = read_env(dotenv, opts.environ, lctx, where, bool(opts.env_files)) if opts.read_file is not None \
        else dict(opts.environ)
    if issues:
        raise InvalidSpec(issues)
    name, _name_node = _project_name(sources, env, opts.project, issues, base_dir)
    env.setdefault("COMPOSE_PROJECT_NAME", name)
    for src in sources:
        interpolate_tree(src.node, env, issues, opts.warnings)
    if issues:
        raise InvalidSpec(issues)
    for src in sources:
        path = os.path.join(src.base_dir, os.path.basename(src.file))
        lctx.stack = [path]
        src.node = apply_extends(apply_include(src.node, src.base_dir, env, lctx), path, env, lctx)
    if issues:
        raise InvalidSpec(issues)
    merged = strip_tags(sources[0].node)
    for src in sources[1:]:
        merged = merge_compose(merged, src.node)
    return env, name, merged


def _check_graph(active: dict[str, Node], ctx: _Ctx) -> None:
    """depends_on cycles and self-dependencies are errors at convert time, as in compose."""
    from crd_like.graph import problems

    graph = {key: [dep for dep, _c in _dep_conditions(svc) if dep in active] for key, svc in active.items()}
    for name, dep, message in problems(graph, set(active)):
        if dep not in active:
            continue  # undefined dependencies are reported by the converter, with their line
        deps = active[name].get("depends_on")
        pairs = names_map(deps) if deps is not None else None
        at = next((cfg for d, cfg in pairs or [] if d == dep), deps or active[name])
        ctx.error(at, f"service {name!r}: {message} (compose refuses it too)"
                  .replace(f"{name!r} depends on itself", "it depends on itself"))


def _check_names(out: list[Converted], ctx: _Ctx) -> None:
    seen: dict[str, Converted] = {}
    for c in out:
        other = seen.get(c.name)
        if other is not None:
            a = plain(other.doc.get("metadata").get("labels").get("compose.service"))  # type: ignore[union-attr]
            b = plain(c.doc.get("metadata").get("labels").get("compose.service"))  # type: ignore[union-attr]
            ctx.error(c.doc, f"compose services {a!r} and {b!r} both map to the reconcile name {c.name!r} "
                             "(names are lowercased and runs of other characters become '-'): rename one")
        seen.setdefault(c.name, c)


def _restart_notice(out: list[Converted], ctx: _Ctx) -> None:
    """Once per stack: which services the loop will not restart if they die, and how to change it."""
    never = sorted(c.compose_name for c in out if c.kind == "Service" and not c.restarts)
    if never:
        ctx.notices.append(
            f"compose project {ctx.project!r}: {', '.join(never)} will not be restarted by reconcile if "
            f"{'it dies' if len(never) == 1 else 'they die'} or turn{'s' if len(never) == 1 else ''} unhealthy "
            "(no `restart:` means never restart, as in compose). To change it, give the service "
            "`restart: unless-stopped` (restarted when it dies and when unhealthy), or set "
            "`x-reconcile: {restart: unless-stopped}` at the top of the file for every service without one; "
            "`x-reconcile: {onUnhealthy: restart|ignore}` sets the unhealthy policy for the whole project")


def _project_name(sources: list[ComposeSource], env: dict[str, str], explicit: str | None,
                  issues: list[Issue], base_dir: str) -> tuple[str, Node]:
    first = sources[0]
    where = Node(None, first.file, None, "name")
    chosen: tuple[str, Node] | None = None
    if explicit:
        chosen = (explicit, where)
    elif env.get("COMPOSE_PROJECT_NAME"):
        chosen = (env["COMPOSE_PROJECT_NAME"], where)
    else:
        for src in sources:  # the last file that sets `name:` wins, as in a merge
            node = src.node.get("name")
            if node is not None:
                try:
                    chosen = (substitute(str(node.value), env.get), node)
                except InterpolationError as exc:
                    issues.append(Issue(node.file, node.line, node.field, str(exc)))
                    raise InvalidSpec(issues) from None
    if chosen is not None:
        text, node = chosen
        if not _PROJECT.match(text):
            issues.append(Issue(node.file, node.line, node.field,
                                f"invalid compose project name {text!r}: it must consist only of lowercase letters, "
                                "digits, '_' and '-', and start with a letter or digit"))
            raise InvalidSpec(issues)
        return text, node
    text = normalize_project_name(os.path.basename(os.path.normpath(base_dir)))
    if not text:
        issues.append(Issue(first.file, None, "name", "cannot derive a compose project name from the directory "
                                                      f"{base_dir!r}: set a top-level `name:`"))
        raise InvalidSpec(issues)
    return text, where


def _env_profiles(env: Mapping[str, str]) -> tuple[str, ...]:
    return tuple(p.strip() for p in env.get("COMPOSE_PROFILES", "").split(",") if p.strip())


def _top_level(merged: Node, ctx: _Ctx) -> dict[str, Node]:
    if not isinstance(merged.value, dict):
        ctx.error(merged, "a compose file must be a mapping with a `services:` key")
        raise InvalidSpec(ctx.issues)
    for key, node in merged.value.items():
        if key == "x-reconcile":
            _settings(node, ctx)
        if isinstance(key, str) and key.startswith("x-") or key in TOP_KEYS:
            continue
        ctx.unsupported(node, str(key), known=key in KNOWN_UNSUPPORTED_TOP)
    services = merged.get("services")
    if services is not None and services.value is not None and not isinstance(services.value, dict):
        ctx.error(services, "`services:` must be a mapping of service names", "services")
        raise InvalidSpec(ctx.issues)
    if services is None or not services.value:  # compose accepts a project without services
        ctx.notices.append(f"{merged.file}: compose project {ctx.project!r} defines no services: nothing to run")
        services = merged.at({})
    _resources(merged.get("volumes"), ctx, "volumes", ctx.volumes, {"local"})
    _resources(merged.get("networks"), ctx, "networks", ctx.networks, {"bridge"})
    ctx.networks.setdefault("default", f"{ctx.project}_default")
    for kind in ("secrets", "configs"):
        compose_files.top_level(merged.get(kind), ctx, kind)
    return _service_nodes(services, ctx)


def _service_nodes(services: Node, ctx: _Ctx) -> dict[str, Node]:
    """``services:`` -> name -> mapping node (an empty service is an empty mapping)."""
    out: dict[str, Node] = {}
    for key, node in services.value.items():
        if not isinstance(node.value, dict):
            if node.value is not None:
                ctx.error(node, "a service must be a mapping of compose keys")
                continue
            node = node.at({})
        out[str(key)] = node
    return out


def _resources(top: Node | None, ctx: _Ctx, kind: str, names: dict[str, str], drivers: set[str]) -> None:
    """Top-level volumes / networks: compose name -> engine name, and how each is created
    (see ``compose_net.resources``; ``drivers`` is no longer used)."""
    compose_net.resources(top, ctx, kind, names, ctx.network_specs if kind == "networks" else ctx.volume_specs)


_SETTINGS = {"restart": None, "onUnhealthy": ("restart", "ignore", "recreate")}


def _settings(node: Node, ctx: _Ctx) -> None:
    """``x-reconcile:``: project-wide policy for compose input (documented in the README).

    ``restart``: the compose ``restart`` value of every service that sets none (and has no
    ``deploy.restart_policy``); ``onUnhealthy``: ``restart`` | ``recreate`` | ``ignore`` for
    every service, instead of the rule (restart when the file asks to keep it running)."""
    if not isinstance(node.value, dict):
        ctx.error(node, "x-reconcile must be a mapping: {restart: ..., onUnhealthy: restart|ignore}")
        return
    for key, sub in node.value.items():
        if key not in _SETTINGS:
            ctx.error(sub, f"unknown x-reconcile setting {key!r}: expected restart or onUnhealthy")
            continue
        allowed = _SETTINGS[key]
        if allowed is not None and sub.value not in allowed:
            ctx.error(sub, f"x-reconcile.{key} must be one of {', '.join(allowed)}")
            continue
        ctx.settings[str(key)] = sub


def _active(services: dict[str, Node], profiles: tuple[str, ...], ctx: _Ctx) -> dict[str, Node]:
    out = {}
    for key, node in services.items():
        prof = node.get("profiles")
        if prof is not None and not (isinstance(prof.value, list) and all(isinstance(p.value, str) for p in prof.value)):
            ctx.error(prof, f"profiles must be a list of profile names, e.g. [debug], got {_kind(prof.value)} "
                            "(compose rejects it too)")
            continue
        wanted = plain(prof) or []
        if not wanted or "*" in profiles or any(p in profiles for p in wanted):
            out[key] = node
    return out


def _kind(value: Any) -> str:
    """A value's type in YAML words (never a Python repr)."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    text = str(value)
    return f"the string \"{text[:40]}\"" + ("..." if len(text) > 40 else "")


def _dep_conditions(svc: Node) -> list[tuple[str, Any]]:
    deps = svc.get("depends_on")
    pairs = names_map(deps) if deps is not None else None
    out = []
    for dep, cfg in pairs or []:
        cond = cfg.get("condition") if isinstance(cfg.value, dict) else None
        out.append((dep, None if cond is None else cond.value))
    return out


_RESTART = {"no": "never", "always": "always", "unless-stopped": "always", "on-failure": "on-failure"}
_DEPLOY_CONDITION = {"none": "never", "on-failure": "on-failure", "any": "always"}
_DEP_CONDITION = {"service_started": "started", "service_healthy": "healthy",
                  "service_completed_successfully": "completed"}
_BOOL_KEYS = frozenset({"init", "read_only"})
_BOOL_TEXT = {"true": True, "1": True, "t": True, "false": False, "0": False, "f": False}
_LIST_KEYS = frozenset({"cap_add", "cap_drop"})
_BUILD_RENAMED = {"dockerfile_inline": "dockerfileInline", "no_cache": "noCache", "shm_size": "shmSize",
                  "extra_hosts": "extraHosts"}
# deploy keys accepted with a warning, and why
_DEPLOY_IGNORED = {
    "labels": "ignored: they label the swarm service, which does not exist on one host (not the containers: use "
              "`labels:` for those)",
}
# build keys accepted with a warning, and why (``pull`` only when true)
_BUILD_IGNORED = {
    "pull": "true: nothing is pulled here; base images must be present locally (the build uses them as they are)",
    "cache_from": "ignored: no registry is reachable; the local build cache is used",
    "cache_to": "ignored: no registry is reachable; the local build cache is used",
    "platforms": "only the engine's own platform is built (a multi-platform build is for pushing, and nothing is "
                 "pushed from here)",
    "tags": "ignored: the image is tagged only as `image:`",
}
_RENAMED = {"stop_signal": "stopSignal", "stop_grace_period": "stopGracePeriod", "working_dir": "workingDir",
            "read_only": "readOnly", "cap_add": "capAdd", "cap_drop": "capDrop", "user": "user",
            "hostname": "hostname", "init": "init", "image": "image"}


# scalar keys whose empty value compose reads as "not set" (e.g. `platform: ${PLATFORM}` unset)
_EMPTY_IS_UNSET = frozenset({"platform", "container_name", "pull_policy", "hostname", "domainname", "user",
                             "working_dir", "stop_signal", "mac_address", "runtime", "cgroup_parent"})


class _Service:
    """One compose service -> one native document."""

    def __init__(self, ctx: _Ctx, key: str, node: Node, services: dict[str, Node], active: dict[str, Node],
                 is_job: bool):
        self.ctx, self.key, self.node, self.services, self.active = ctx, key, node, services, active
        self.is_job = is_job
        self.spec: dict[str, Node] = {}
        self.env: dict[str, Node] = {}
        self.volumes: list[Node] = []
        self.files: dict[str, Node] = {}  # target -> native `files` entry (compose_files)
        self.tmpfs: list[Node] = []
        self.resources: dict[str, dict[str, Node]] = {"limits": {}, "reservations": {}}

    def native(self, name: str) -> str:
        """The reconcile name of compose service ``name`` (see ``native_name``)."""
        return native_name(self.ctx.project, name)

    def _typed(self, key: str, node: Node) -> Node | None:
        """A scalar compose key checked for its type (compose's schema), as written."""
        v = node.value
        if key in _BOOL_KEYS:
            if isinstance(v, bool):
                return node
            if isinstance(v, str) and v.lower() in _BOOL_TEXT:  # an interpolated value, cast as compose does
                return node.at(_BOOL_TEXT[v.lower()])
            self.ctx.error(node, f"{key} must be true or false, got {_kind(v)}")
            return None
        if key in _LIST_KEYS:
            if isinstance(v, list) and all(isinstance(i.value, str) for i in v):
                return node
            self.ctx.error(node, f"{key} must be a list of strings, got {_kind(v)}")
            return None
        if isinstance(v, bool) or v is None or isinstance(v, (dict, list)):
            self.ctx.error(node, f"{key} must be a string, got {_kind(v)}")
            return None
        if key in ("user", "hostname", "working_dir", "image") and not isinstance(v, str):
            return node.at(node.raw if node.raw is not None else str(v))
        return node

    def convert(self) -> Converted:
        handlers: dict[str, Callable[[Node], object]] = {
            "command": lambda n: self._set("command", _strs(n)),
            "entrypoint": lambda n: self._set("entrypoint", _strs(n)),
            "environment": self._environment, "env_file": self._env_file, "ports": self._ports,
            "volumes": self._volumes, "networks": self._networks, "healthcheck": self._healthcheck,
            "depends_on": self._depends_on, "deploy": self._deploy, "labels": self._labels,
            "extra_hosts": self._extra_hosts, "tmpfs": self._tmpfs, "logging": self._logging,
            "scale": lambda n: self.spec.setdefault("replicas", n),
            "cpus": lambda n: self.resources["limits"].setdefault("cpus", n),
            "mem_limit": lambda n: self.resources["limits"].setdefault("memory", n),
            "mem_reservation": lambda n: self.resources["reservations"].setdefault("memory", n),
            "profiles": lambda n: None, "restart": lambda n: None,
            "develop": lambda n: self.ctx.notices.append(
                f"{n.file}:{n.line}: {n.field}: compose key 'develop' (compose watch, development only) is ignored"),
        }
        if "build" in ServiceSpec.model_fields:
            handlers["build"] = self._build
        extra = {**compose_net.HANDLERS, **compose_host.HANDLERS, **compose_hooks.HANDLERS, **compose_files.HANDLERS}
        for key, node in self.node.value.items():
            self._convert_key(key, node, handlers, extra)
        self._collected()
        self._scale()
        compose_net.finish(self)
        restarts = self._restart()
        name = self.native(self.key)
        kind = "Job" if self.is_job else "Service"
        meta = {"name": name, "labels": {"compose.project": self.ctx.project, "compose.service": self.key}}
        doc = self.node.at({"apiVersion": API_VERSION, "kind": kind, "metadata": meta})
        doc.value["spec"] = Node(self.spec, self.node.file, self.node.line, self.node.field, False)
        return Converted(kind, name, doc, self.key, restarts)

    def _convert_key(self, key: Any, node: Node, handlers: dict[str, Callable[[Node], object]],
                     extra: dict[str, Callable[[_Service, Node], None]]) -> None:
        """One compose service key: to its handler, renamed as a typed scalar, or unsupported."""
        if node.value == "" and (key in _EMPTY_IS_UNSET or (key == "image" and "build" in self.node.value)):
            # compose reads an empty value (typically an unset variable) of these keys as "not set"
            self.ctx.warn(node, str(key), "empty: treated as not set, as compose does")
        elif key in extra:
            extra[key](self, node)
        elif key in _RENAMED:
            typed = self._typed(str(key), node)
            if typed is not None:
                self._set(_RENAMED[key], typed)
        elif key in handlers:
            handlers[key](node)
        elif not str(key).startswith("x-"):
            self.ctx.unsupported(node, str(key), known=key in KNOWN_UNSUPPORTED_SERVICE or key in _WHY)

    def _collected(self) -> None:
        """The spec fields gathered from several keys, and the defaults compose implies
        (the default network, the bare service name as an alias)."""
        if "networks" not in self.node.value:
            self._set("networks", self.node.at([self.ctx.networks["default"]]))
        if self.native(self.key) != self.key:
            # compose resolves the bare service name on the project's networks
            self._set("aliases", self.node.at([self.node.at(self.key)]))
        gathered: dict[str, Any] = {"env": self.env, "volumes": self.volumes, "tmpfs": self.tmpfs, "files": self.files,
                                    "resources": {k: self.node.at(v) for k, v in self.resources.items() if v}}
        for field_name, value in gathered.items():
            if value:
                self._set(field_name, self.node.at(value))

    def _scale(self) -> None:
        """``scale`` and ``deploy.replicas`` that disagree are an error, as in compose."""
        scale = self.node.get("scale")
        deploy = self.node.get("deploy")
        replicas = deploy.get("replicas") if deploy is not None else None
        if scale is not None and replicas is not None and plain(scale) != plain(replicas):
            self.ctx.error(scale, f"service {self.key!r} sets scale: {plain(scale)} and deploy.replicas: "
                                  f"{plain(replicas)} ({replicas.file}:{replicas.line}): give one value "
                                  "(compose refuses distinct values too)")

    def _set(self, key: str, node: Node) -> None:
        self.spec[key] = node

    # ------------------------------------------------------------------ environment and build
    def _build(self, node: Node) -> None:
        """``build: DIR`` or ``{context, dockerfile, args, target}`` -> ``spec.build``; the
        context is relative to the project directory. Without ``image:`` the image is named
        ``<project>-<service>``, as compose v2 names it."""
        cfg = node.value if isinstance(node.value, dict) else {"context": node}
        out: dict[str, Node] = {}
        for sub, sub_node in cfg.items():
            self._build_key(str(sub), sub_node, out)
        if "context" not in out and "context" not in cfg:
            out["context"] = node.at(self.ctx.path("."))
        if "dockerfileInline" in out and "dockerfile" in out:
            self.ctx.error(out["dockerfileInline"], "build: give either `dockerfile` or `dockerfile_inline`, not both")
        self._set("build", node.at(out))
        if "image" not in self.node.value or self.node.value["image"].value == "":
            self._set("image", node.at(f"{self.ctx.project}-{self.key}"))

    def _build_key(self, sub: str, sub_node: Node, out: dict[str, Node]) -> None:
        """One ``build:`` key into ``out`` (the native ``build`` fields), or a warning / error."""
        if sub == "context":
            self._build_context(sub_node, out)
        elif sub in ("dockerfile", "target", "network"):
            out[sub] = sub_node
        elif sub in ("labels", "args"):
            self._build_pairs(sub, sub_node, out)
        elif sub in _BUILD_RENAMED:
            out[_BUILD_RENAMED[sub]] = sub_node
        elif sub in _BUILD_IGNORED:
            if sub != "pull" or _bool(sub_node):
                self.ctx.warn(sub_node, f"build.{sub}", _BUILD_IGNORED[sub])
        elif not sub.startswith("x-"):  # secrets, ssh: see _WHY (the classic builder has neither)
            self.ctx.unsupported(sub_node, f"build.{sub}")

    def _build_context(self, sub_node: Node, out: dict[str, Node]) -> None:
        text = sub_node.value
        if not isinstance(text, str) or not text:
            self.ctx.error(sub_node, f"build context must be a directory or a URL, got {_kind(text)}")
        elif remote_context(text) or other_url(text):  # the engine fetches it (the model checks the scheme)
            out["context"] = sub_node
        else:
            out["context"] = sub_node.at(self.ctx.path(text))

    def _build_pairs(self, sub: str, sub_node: Node, out: dict[str, Node]) -> None:
        """``build.labels`` (a bare key: an empty label) and ``build.args`` (a bare key: from
        the environment, left out when unset; values as text)."""
        pairs = kv_pairs(sub_node)
        if pairs is None:
            self.ctx.error(sub_node, f"build {sub} must be a list of KEY=VALUE strings or a mapping")
        elif sub == "labels":
            out[sub] = sub_node.at({k: (v if v.value is not None else v.at("")) for k, v in pairs})
        else:
            args = {k: (v if v.value is not None else v.at(self.ctx.env.get(k))) for k, v in pairs}
            out[sub] = sub_node.at({k: v.at(v.text()) for k, v in args.items() if v.value is not None})

    def _env_file(self, node: Node) -> None:
        """``env_file`` -> ``envFiles`` (absolute paths): the controller reads them when it
        creates the container, treats their values as secrets (never stored or printed) and
        rolls the container when they change; ``environment`` wins over them, as in compose.
        The reader checks that each file exists; a missing ``required: false`` file is left out."""
        items = node.value if isinstance(node.value, list) else [node]
        paths: list[Node] = []
        for item in items:
            path, required = item.value, True
            if isinstance(item.value, dict):
                path, required = plain(item.get("path")), not _false(item.get("required"))
                for sub, sub_node in item.value.items():
                    if sub not in ("path", "required"):
                        self.ctx.unsupported(sub_node, f"env_file.{sub}")
            if not isinstance(path, str) or not path:
                self.ctx.error(item, "env_file entries are paths (or {path: ..., required: ...})")
                continue
            if self.ctx.read_file is not None or not required:
                if self.ctx.read(item, path, "env_file", required) is None:
                    continue
            paths.append(item.at(self.ctx.path(path)))
        self.spec["envFiles"] = node.at(paths)

    def _environment(self, node: Node) -> None:
        pairs = kv_pairs(node)
        if pairs is None:
            self.ctx.error(node, "environment must be a list of KEY=VALUE strings or a mapping")
            return
        for k, v in pairs:
            if v.value is None:  # `- KEY` / `KEY:` take the value from the environment, or stay unset
                if k in self.ctx.env:
                    self.env[k] = v.at(self.ctx.env[k])
                else:
                    self.env.pop(k, None)
            else:
                self.env[k] = v.at(v.text())
            if looks_secret(k) and (v.value is None or v.interpolated) and k in self.env:
                # a value taken from .env / the environment into a secret-looking key: stored as a
                # secret value source, so that no output path prints it (crd_like.secrets)
                self.env[k] = v.at(secret_value(str(self.env[k].value)))

    def _labels(self, node: Node) -> None:
        pairs = kv_pairs(node)
        if pairs is None:
            self.ctx.error(node, "labels must be a list of KEY=VALUE strings or a mapping")
            return
        self._set("labels", node.at({k: (v if v.value is not None else v.at("")) for k, v in pairs}))

    def _extra_hosts(self, node: Node) -> None:
        pairs = kv_pairs(node, "host")
        if pairs is None:
            self.ctx.error(node, "extra_hosts must be a list of 'HOST:IP' strings or a mapping")
            return
        out = []
        for host, ip in pairs:
            if ip.value is None or ip.value == "":
                self.ctx.error(ip, f"extra_hosts entry {host!r} has no address: expected 'HOST:IP'")
                continue
            for one in (ip.value if isinstance(ip.value, list) else [ip]):
                one = one if isinstance(one, Node) else ip.at(one)
                out.append(one.at(f"{host}:{one.value}"))
        self._set("extraHosts", node.at(out))

    # ------------------------------------------------------------------ ports and mounts
    def _ports(self, node: Node) -> None:
        if not isinstance(node.value, list):
            self.ctx.error(node, "ports must be a list")
            return
        out = []
        for item in node.value:
            if not isinstance(item.value, dict):
                out.append(item)
                continue
            cfg = {k: plain(v) for k, v in item.value.items()}
            for sub, sub_node in item.value.items():
                # name and app_protocol are informational (compose passes neither to the engine)
                if sub not in ("target", "published", "host_ip", "protocol", "mode", "name", "app_protocol"):
                    self.ctx.unsupported(sub_node, f"ports.{sub}")
            if cfg.get("mode") not in (None, "host", "ingress"):
                self.ctx.error(item.value["mode"], "ports mode must be host or ingress (both publish on this host)")
            if cfg.get("target") is None:
                self.ctx.error(item, "a long-syntax port needs `target:`")
                continue
            ip = str(cfg.get("host_ip") or "")
            published = "" if cfg.get("published") in (None, "") else str(cfg["published"])
            text = f"{cfg['target']}/{cfg.get('protocol') or 'tcp'}"
            if ip:
                text = f"{'[' + ip + ']' if ':' in ip else ip}:{published}:{text}"
            elif published:
                text = f"{published}:{text}"
            out.append(item.at(text))
        self._set("ports", node.at(out))

    def _volumes(self, node: Node) -> None:
        if not isinstance(node.value, list):
            self.ctx.error(node, "volumes must be a list")
            return
        for item in node.value:
            if isinstance(item.value, str):
                self._short_volume(item)
            elif isinstance(item.value, dict):
                self._long_volume(item)
            else:
                self.ctx.error(item, "a volume is 'SOURCE:TARGET[:MODE]' or a mapping with type/source/target")

    def _mount(self, item: Node, source: str | None, target: str, read_only: bool) -> None:
        if source is None:
            if read_only:
                self.ctx.error(item, "a read-only anonymous volume is not supported: give it a name")
                return
            self.volumes.append(item.at(target))
            return
        if source.startswith((".", "/", "~")):
            source = self.ctx.path(source)
        elif source in self.ctx.volumes:
            source = self.ctx.volumes[source]
        else:
            self.ctx.error(item, f"service {self.key!r} refers to undefined volume {source!r}: "
                                 "declare it under the top-level `volumes:`")
            return
        self.volumes.append(item.at(f"{source}:{target}" + (":ro" if read_only else "")))

    def _short_volume(self, item: Node) -> None:
        parts = item.value.split(":")
        if len(parts) == 1:
            self._mount(item, None, parts[0], False)
            return
        if not parts[0] and len(parts) in (2, 3) and parts[1].startswith("/"):
            self.ctx.warn(item, "volumes", f"{item.value!r} has an empty source (an unset variable?): an anonymous "
                                           f"volume is mounted at {parts[1]}, as compose does")
            parts = parts[1:]
            if len(parts) == 1:
                self._mount(item, None, parts[0], False)
                return
            self._mount(item, None, parts[0], "ro" in parts[1].split(","))
            return
        if len(parts) > 3 or not parts[0] or not parts[1]:
            self.ctx.error(item, f"invalid volume {item.value!r}: expected 'SOURCE:TARGET[:MODE]'")
            return
        modes = parts[2].split(",") if len(parts) == 3 else []
        known = units.BIND_OPTIONS | units.VOLUME_OPTIONS | units.NOOP_OPTIONS | {"ro", "rw"}
        for mode in modes:
            if mode not in known:
                self.ctx.error(item, f"invalid volume mode {mode!r} in {item.value!r}: expected ro, rw, z, Z, nocopy "
                                     "or a propagation mode (rshared, rslave, rprivate, ...)")
                return
        # z / Z (SELinux relabel), nocopy and propagation are passed to the engine as bind options
        options = sorted(set(modes) - {"ro", "rw"})
        self._mount_with(item, parts[0], parts[1], "ro" in modes, options)

    def _mount_with(self, item: Node, source: str | None, target: str, read_only: bool, options: list[str]) -> None:
        """``_mount`` plus engine options (``z``, ``Z``, ``nocopy``, ``rshared`` ...)."""
        before = len(self.volumes)
        self._mount(item, source, target, read_only)
        if options and len(self.volumes) > before:
            last = self.volumes[-1]
            opts = (["ro"] if read_only else []) + options
            base = last.value[:-3] if read_only else last.value
            self.volumes[-1] = last.at(f"{base}:{','.join(opts)}")

    def _long_volume(self, item: Node) -> None:
        cfg = item.value
        kind, source, target = plain(cfg.get("type")) or "volume", plain(cfg.get("source")), plain(cfg.get("target"))
        if not isinstance(target, str) or not target:
            self.ctx.error(item, "a long-syntax volume needs `target:`")
            return
        for sub, sub_node in cfg.items():
            # consistency (cached, delegated ...) is a no-op on Linux engines, as in compose
            if sub in ("type", "source", "target", "read_only", "consistency") or (
                    sub == kind and kind in ("bind", "volume", "tmpfs")) or str(sub).startswith("x-"):
                continue
            self.ctx.unsupported(sub_node, f"volumes.{sub}")
        options = cfg.get(kind)
        engine_opts = self._volume_options(kind, options)
        read_only = _bool(cfg.get("read_only"))
        if kind == "tmpfs":
            self._long_tmpfs(item, target, options, read_only)
        elif kind == "bind":
            self._long_bind(item, source, target, read_only, engine_opts)
        elif kind == "volume":
            self._mount_with(item, source if source else None, target, read_only, engine_opts)
        else:
            self.ctx.unsupported(cfg.get("type") or item, f"volumes type '{kind}'")

    def _volume_options(self, kind: str, options: Node | None) -> list[str]:
        engine_opts: list[str] = []
        for sub, sub_node in (options.value.items() if options is not None and isinstance(options.value, dict) else []):
            self._volume_option(kind, str(sub), sub_node, engine_opts)
        return engine_opts

    def _volume_option(self, kind: str, sub: str, sub_node: Node, engine_opts: list[str]) -> None:
        """One key of a long-syntax volume's ``bind:`` / ``volume:`` / ``tmpfs:`` options:
        an engine option appended to ``engine_opts``, a warning, or unsupported."""
        if (kind, sub) == ("bind", "create_host_path"):
            if _false(sub_node):
                self.ctx.warn(sub_node, "volumes.bind.create_host_path",
                              "false: the engine still creates a missing host path (as a directory)")
        elif kind == "bind" and sub == "propagation" and sub_node.value in units.BIND_OPTIONS - {"z", "Z"}:
            engine_opts.append(str(sub_node.value))
        elif kind == "bind" and sub == "selinux" and sub_node.value in ("z", "Z"):
            engine_opts.append(str(sub_node.value))
        elif (kind, sub) == ("volume", "nocopy"):
            if _bool(sub_node):
                engine_opts.append("nocopy")
        elif kind != "tmpfs" or sub not in ("size", "mode"):
            self.ctx.unsupported(sub_node, f"volumes.{kind}.{sub}" + (
                f": {sub_node.value}" if sub in ("propagation", "selinux") else ""))

    def _long_tmpfs(self, item: Node, target: str, options: Node | None, read_only: bool) -> None:
        opts = []
        size, mode = plain(options.get("size")) if options else None, plain(options.get("mode")) if options else None
        if size is not None:
            try:
                opts.append(f"size={units.parse_memory(size)}")
            except ValueError as exc:
                self.ctx.error(item, str(exc))
        if mode is not None:
            opts.append(f"mode={mode}")
        if read_only:
            opts.append("ro")
        self.tmpfs.append(item.at(target + (":" + ",".join(opts) if opts else "")))

    def _long_bind(self, item: Node, source: Any, target: str, read_only: bool, engine_opts: list[str]) -> None:
        if not isinstance(source, str) or not source:
            self.ctx.error(item, "a bind mount needs `source:`")
            return
        if not source.startswith((".", "/", "~")):
            source = "./" + source
        if ":" in source:
            self._colon_bind(item, source, target, read_only, engine_opts)
            return
        self._mount_with(item, source, target, read_only, engine_opts)

    def _colon_bind(self, item: Node, source: str, target: str, read_only: bool, options: list[str]) -> None:
        """A bind whose host path contains ':' cannot be written as 'SRC:DST' (nor in the
        engine's Binds): it becomes a native ``mounts`` entry (the engine's Mounts API)."""
        if any(o in ("z", "Z") for o in options):
            self.ctx.error(item, "SELinux relabelling (z/Z) cannot be combined with a host path containing ':' "
                                 "(the engine's Mounts API has no relabel option)")
            return
        entry: dict[str, Any] = {"source": self.ctx.path(source), "target": target}
        if read_only:
            entry["readOnly"] = True
        if options:
            entry["propagation"] = options[0]
        current = self.spec.get("mounts")
        self._set("mounts", item.at((list(current.value) if current is not None else []) + [item.at(entry)]))

    def _tmpfs(self, node: Node) -> None:
        items = node.value if isinstance(node.value, list) else [node]
        self.tmpfs.extend(items)

    # ------------------------------------------------------------------ wiring
    def _networks(self, node: Node) -> None:
        pairs = names_map(node)
        if pairs is None:
            self.ctx.error(node, "networks must be a list of names or a mapping")
            return
        out = []
        for name, cfg in pairs:
            if name not in self.ctx.networks:
                self.ctx.error(cfg, f"service {self.key!r} refers to undefined network {name!r}: "
                                    "declare it under the top-level `networks:`")
                continue
            for sub, sub_node in (cfg.value.items() if isinstance(cfg.value, dict) else []):
                self.ctx.unsupported(sub_node, f"networks.{sub}")
            out.append(cfg.at(self.ctx.networks[name]))
        self._set("networks", node.at(out))

    def _depends_on(self, node: Node) -> None:
        pairs = names_map(node)
        if pairs is None:
            self.ctx.error(node, "depends_on must be a list of service names or a mapping")
            return
        out: dict[str, Node] = {}
        for dep, cfg in pairs:
            opts = cfg.value if isinstance(cfg.value, dict) else {}
            if dep not in self.services:
                self.ctx.error(cfg, f"service {self.key!r} depends on undefined service {dep!r}")
                continue
            if dep not in self.active:
                if opts.get("required") is None or _bool(opts.get("required")):
                    profiles = plain(self.services[dep].get("profiles"))
                    self.ctx.error(cfg, f"service {self.key!r} depends on {dep!r}, which is not enabled (its profiles "
                                        f"{profiles} are not active): activate one, or mark the dependency "
                                        "`required: false`")
                continue
            dep_out: dict[str, Node] = {}
            for sub, sub_node in opts.items():
                if sub == "condition":
                    cond = _DEP_CONDITION.get(str(sub_node.value))
                    if cond is None:
                        self.ctx.error(sub_node, f"unknown depends_on condition {sub_node.value!r}: expected "
                                                 + ", ".join(_DEP_CONDITION))
                    else:
                        dep_out["condition"] = sub_node.at(cond)
                elif sub == "restart":
                    dep_out["restart"] = sub_node
                elif sub != "required":
                    self.ctx.unsupported(sub_node, f"depends_on.{sub}")
            out[self.native(dep)] = cfg.at(dep_out)
        self._set("dependsOn", node.at(out))

    def _healthcheck(self, node: Node) -> None:
        if not isinstance(node.value, dict):
            self.ctx.error(node, "healthcheck must be a mapping")
            return
        test = node.get("test")
        if _bool(node.get("disable")) or (test is not None and (
                test.value == "NONE" or isinstance(test.value, list) and [plain(i) for i in test.value[:1]] == ["NONE"])):
            # switch the image's own HEALTHCHECK off (the engine's Test: ["NONE"]), as compose does
            self._set("healthcheck", node.at({"disable": True}))
            return
        out: dict[str, Node] = {}
        names = {"test": "test", "interval": "interval", "timeout": "timeout", "retries": "retries",
                 "start_period": "startPeriod", "start_interval": "startInterval"}
        for sub, sub_node in node.value.items():
            if sub in names:
                out[names[sub]] = _strs(sub_node) if sub == "test" else sub_node
            elif sub != "disable" and not str(sub).startswith("x-"):
                self.ctx.unsupported(sub_node, f"healthcheck.{sub}")
        if test is None:
            self.ctx.error(node, "a healthcheck needs `test:` (reconcile does not inherit the image's HEALTHCHECK)")
            return
        self._set("healthcheck", node.at(out))

    def _logging(self, node: Node) -> None:
        if isinstance(node.value, dict):
            for sub, sub_node in node.value.items():
                if sub not in ("driver", "options"):
                    self.ctx.unsupported(sub_node, f"logging.{sub}")
            self._set("logging", node.at({k: v for k, v in node.value.items() if k in ("driver", "options")}))
        else:
            self._set("logging", node)

    # ------------------------------------------------------------------ deploy and restart
    def _deploy(self, node: Node) -> None:
        if not isinstance(node.value, dict):
            self.ctx.error(node, "deploy must be a mapping")
            return
        for sub, sub_node in node.value.items():
            if sub == "replicas":
                self._set("replicas", sub_node)
            elif sub == "mode" and sub_node.value in ("replicated", "global"):
                self._deploy_mode(node, sub_node)
            elif sub in _DEPLOY_IGNORED:
                self.ctx.warn(sub_node, f"deploy.{sub}", _DEPLOY_IGNORED[sub])
            elif sub == "placement":
                compose_placement.placement(self, sub_node)
            elif sub == "resources" and isinstance(sub_node.value, dict):
                self._resources(sub_node)
            elif sub == "update_config" and isinstance(sub_node.value, dict):
                self._update(sub_node)
            elif sub != "restart_policy":  # that one is read by _restart
                self.ctx.unsupported(sub_node, f"deploy.{sub}" + (f": {sub_node.value}" if sub == "mode" else ""))

    def _deploy_mode(self, node: Node, mode: Node) -> None:
        if mode.value == "global":
            # one container per swarm node; this is one host, so: one replica
            self.ctx.warn(mode, "deploy.mode", "global: one container on this one host (replicas: 1)")
            if "replicas" in node.value:
                self.ctx.error(node.value["replicas"], "deploy.replicas cannot be combined with mode: global")
            self._set("replicas", mode.at(1))

    def _resources(self, node: Node) -> None:
        for level, level_node in node.value.items():
            if level not in self.resources or not isinstance(level_node.value, dict):
                self.ctx.unsupported(level_node, f"deploy.resources.{level}")
                continue
            for sub, sub_node in level_node.value.items():
                if sub in ("cpus", "memory"):
                    self.resources[level][sub] = sub_node
                elif compose_host.deploy_resources_extra(self, level, sub, sub_node):
                    pass
                else:
                    self.ctx.unsupported(sub_node, f"deploy.resources.{level}.{sub}")

    def _update(self, node: Node) -> None:
        """deploy.update_config: parallelism, order (stop-first/start-first), monitor and
        failure_action (rollback/pause) map one to one onto ``spec.update``."""
        names = {"parallelism": "parallelism", "order": "order", "monitor": "monitor", "failure_action": "failureAction"}
        if "delay" in UpdatePolicy.model_fields:
            names["delay"] = "delay"
        out = {}
        for sub, sub_node in node.value.items():
            if sub in names:
                out[names[sub]] = sub_node
            else:
                self.ctx.unsupported(sub_node, f"deploy.update_config.{sub}")
        self._set("update", node.at(out))

    def _restart(self) -> bool:
        """compose ``restart`` / ``deploy.restart_policy`` -> ``restartPolicy`` (Jobs: ``backoffLimit``).

        ========================  =========================================================
        compose                   reconcile
        ========================  =========================================================
        (absent), ``no``          ``condition: never`` (compose's default is not to restart)
        ``always``                ``condition: always``
        ``unless-stopped``        ``condition: always``: a service is only "stopped" here by
                                  ``reconcile suspend``, which the controller honours anyway
        ``on-failure``            ``condition: on-failure``
        ``on-failure:N``          ``condition: on-failure, maxAttempts: N`` (counted within
                                  ``window``, 10 minutes by default, where the engine counts
                                  since the container was started)
        ========================  =========================================================

        ``deploy.restart_policy`` wins over ``restart`` (as in compose): ``condition``
        none/on-failure/any -> never/on-failure/always, ``max_attempts`` -> ``maxAttempts``
        (0 = unlimited), ``window`` -> ``window``, ``delay`` -> a constant backoff
        (``initial = max = delay``; the controller restarts the first time at once).

        A service that is converted to a Job (something waits for it to complete) runs
        once: ``no`` -> ``backoffLimit: 0``, ``on-failure[:N]`` -> ``backoffLimit: N``
        (the Job default, 3, without N); ``always`` / ``unless-stopped`` contradict running
        to completion and are an error.

        Unhealthy containers (``onUnhealthy``; compose itself never acts on them): a service
        the file asks to keep running (restart ``always`` / ``unless-stopped`` /
        ``on-failure``, or a ``deploy.restart_policy`` other than ``none``) is also restarted
        when unhealthy (``onUnhealthy: restart``); one with ``restart: no`` or none is never
        restarted for any reason (``onUnhealthy: ignore``). ``x-reconcile: {restart: ...}``
        gives services without a restart policy one, ``x-reconcile: {onUnhealthy: ...}``
        overrides the rule for the whole project. Returns whether the service restarts when
        it dies (for the once-per-stack notice).
        """
        restart = self.node.get("restart")
        deploy = self.node.get("deploy")
        policy_node = deploy.get("restart_policy") if deploy is not None and isinstance(deploy.value, dict) else None
        if restart is None and policy_node is None and "restart" in self.ctx.settings:
            restart = self.ctx.settings["restart"]
        policy: dict[str, Node] = {}
        chosen = self._restart_value(restart) if restart is not None else ("never", None)
        if chosen is None:
            return True
        condition, attempts = chosen
        where = restart or policy_node or self.node
        if policy_node is not None:
            from_policy = self._restart_policy(policy_node, policy)
            if from_policy is None:
                return True
            condition, attempts, where = from_policy
        if self.is_job:
            if not self._job_restart(condition, attempts, where):
                return True
        elif attempts is not None:
            policy["maxAttempts"] = where.at(attempts)
        policy["condition"] = where.at(condition)
        self._set("restartPolicy", where.at(policy))
        self._on_unhealthy(condition, where)
        return condition != "never"

    def _on_unhealthy(self, condition: str, where: Node) -> None:
        """``onUnhealthy``: the project's ``x-reconcile`` setting, else restart what the
        file asks to keep running and ignore the rest."""
        unhealthy = self.ctx.settings.get("onUnhealthy")
        value = plain(unhealthy) if unhealthy is not None else ("ignore" if condition == "never" else "restart")
        self._set("onUnhealthy", (unhealthy or where).at(value))

    def _restart_value(self, restart: Node) -> tuple[str, Any] | None:
        """compose ``restart:`` -> (condition, attempts or None); None after an error."""
        text = "no" if restart.value is False else str(restart.value)
        mode, _, count = text.partition(":")
        if mode not in _RESTART or (count and (mode != "on-failure" or not count.isdigit())):
            self.ctx.error(restart, f"invalid restart {text!r}: expected no, always, on-failure[:N] or unless-stopped")
            return None
        return _RESTART[mode], (int(count) if count else None)

    def _restart_policy(self, policy_node: Node, policy: dict[str, Node]) -> tuple[str, Any, Node] | None:
        """``deploy.restart_policy`` -> (condition, attempts or None, where the condition is
        written), its window and delay into ``policy``; None after an error."""
        if not isinstance(policy_node.value, dict):
            self.ctx.error(policy_node, "deploy.restart_policy must be a mapping")
            return None
        condition, attempts, where = "always", None, policy_node  # compose's default condition: any
        for sub, sub_node in policy_node.value.items():
            if sub == "condition":
                if sub_node.value not in _DEPLOY_CONDITION:
                    self.ctx.error(sub_node, f"invalid restart_policy condition {sub_node.value!r}: "
                                             "expected none, on-failure or any")
                    return None
                condition, where = _DEPLOY_CONDITION[sub_node.value], sub_node
            elif sub == "max_attempts":
                attempts = None if sub_node.value in (0, "0") else sub_node.value
            elif sub == "window":
                policy["window"] = sub_node
            elif sub == "delay":
                policy["backoff"] = sub_node.at({"initial": sub_node, "max": sub_node, "factor": 1})
            else:
                self.ctx.unsupported(sub_node, f"deploy.restart_policy.{sub}")
        return condition, attempts, where

    def _job_restart(self, condition: str, attempts: Any, where: Node) -> bool:
        """A Job's restart condition -> ``backoffLimit``; False (after an error) for ``always``."""
        if condition == "always":
            self.ctx.error(where, f"service {self.key!r} is waited on with service_completed_successfully, "
                                  "so it runs as a Job, which cannot restart always: use restart: on-failure or no")
            return False
        if condition == "never":
            self._set("backoffLimit", where.at(0))
        elif attempts is not None:
            self._set("backoffLimit", where.at(attempts))
        return True
