"""Compose ``secrets:`` and ``configs:`` (top level and per service) -> native spec fields.

- ``file: PATH`` becomes a read-only bind of that file (as docker compose mounts it); its
  ``uid``/``gid``/``mode`` are ignored with a warning (compose ignores them too).
- ``environment: VAR`` (secrets and configs) and ``content: TEXT`` (configs only: compose's
  schema has no ``content`` for secrets) become a native ``files`` entry
  (``crd_like.spec_files``): the text is captured when the file is loaded, from the
  environment and ``.env`` (an included project: its own env_file), as ``docker compose
  up`` does, and the controller writes it to a root-only file and mounts it read-only.
  ``uid``/``gid``/``mode`` are honoured (default ``0``/``0``/``0444``, compose's defaults).
  A secret's text is always secret; a config's is secret when it comes from a variable
  that looks secret (``crd_like.secrets.looks_secret``); secret text is never printed.
- Default targets as compose: ``/run/secrets/NAME`` for secrets, ``/NAME`` for configs;
  a relative secret target is under ``/run/secrets``.

What compose itself accepts at ``config`` time but fails on at ``up`` -- a ``file:`` that
does not exist, an ``environment:`` variable that is not set -- is a warning naming
file:line:key when converting, and an error when applying (``ctx.deferred``: the apply
path refuses it with exit 2 before anything is touched). Only a secret or config that an
active service uses is checked, as in compose.

No I/O (files are checked through the loader's reader); must not import ``store`` or
``controller``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from crd_like.errors import Issue
from crd_like.merge import Node, plain
from crd_like.secrets import looks_secret
from crd_like.spec_files import parse_mode

if TYPE_CHECKING:
    from crd_like.compose import _Ctx, _Service

SOURCES = {"secrets": ("file", "environment"), "configs": ("file", "environment", "content")}


@dataclass(frozen=True)
class FileSource:
    """A top-level secret or config, as the services that use it need it."""

    node: Node
    path: str | None = None  # file: the absolute host path
    text: str | None = None  # environment / content: the text
    secret: bool = False
    missing: str = ""  # why ``up`` would fail (the file does not exist, the variable is unset)


def top_level(top: Node | None, ctx: _Ctx, kind: str) -> None:
    """Top-level ``secrets:`` / ``configs:`` -> ``ctx.files[kind]``."""
    if top is None or top.value is None:
        return
    if not isinstance(top.value, dict):
        ctx.error(top, f"top-level `{kind}` must be a mapping of names")
        return
    for key, node in top.value.items():
        # an entry found invalid here is None: its users are not reported a second time
        ctx.files[kind][str(key)] = _entry(ctx, kind, str(key), node)


def _entry(ctx: _Ctx, kind: str, key: str, node: Node) -> FileSource | None:
    allowed = SOURCES[kind]
    cfg = node.value if isinstance(node.value, dict) else {}
    if node.value is not None and not isinstance(node.value, dict):
        ctx.error(node, f"{kind[:-1]} {key!r} must be a mapping with one of: {', '.join(allowed)}")
        return None
    bad = _entry_keys(ctx, kind, cfg)
    given = [s for s in allowed if s in cfg]
    if len(given) > 1:
        ctx.error(cfg[given[1]], f"{kind[:-1]} {key!r} gives both `{given[0]}` and `{given[1]}`: give exactly one")
        return None
    if bad or not given:
        if not bad and not ctx.allow_unsupported:
            ctx.error(node, f"{kind[:-1]} {key!r}: give one of " + ", ".join(f"`{s}:`" for s in allowed)
                      + " (external and driver-made ones are not supported)")
        return None
    return _source(ctx, kind, key, given[0], cfg[given[0]])


def _entry_keys(ctx: _Ctx, kind: str, cfg: dict[Any, Node]) -> bool:
    """Reports the keys a declaration cannot have; True if it is invalid (a secret's ``content``)."""
    bad = False
    for sub, sub_node in cfg.items():
        if sub == "content" and kind == "secrets":
            ctx.error(sub_node, "a secret has no `content` (compose rejects it too): use `environment: VAR` "
                                "or `file: PATH`, or declare it under `configs:`")
            bad = True
        elif sub not in SOURCES[kind] and not str(sub).startswith("x-"):
            ctx.unsupported(sub_node, f"{kind}.{sub}")
    return bad


def _source(ctx: _Ctx, kind: str, name: str, how: str, value: Node) -> FileSource | None:
    if how == "file":
        if not isinstance(value.value, str) or not value.value:
            ctx.error(value, f"{kind[:-1]} {name!r}: `file` must be a path")
            return None
        missing = ""
        if ctx.read_file is not None:  # must exist: the engine would create and mount an empty directory
            missing = _missing(ctx, value, value.value, f"{kind[:-1]} file")
        return FileSource(value, path=ctx.path(value.value), missing=missing)
    if how == "environment":
        if not isinstance(value.value, str) or not value.value:
            ctx.error(value, f"{kind[:-1]} {name!r}: `environment` must be the name of a variable")
            return None
        var = value.value
        secret = kind == "secrets" or looks_secret(var)
        text = value.env_value if value.env_value is not None else ctx.env.get(var)
        if text is None:
            return FileSource(value, text="", secret=secret,
                              missing=f"variable {var} is not set (neither in the environment nor in .env)")
        return FileSource(value, text=text, secret=secret)
    if value.value is None or isinstance(value.value, (dict, list)):
        ctx.error(value, f"config {name!r}: `content` must be text")
        return None
    text = str(value.text())
    return FileSource(value, text=text, secret=any(looks_secret(v) for v in value.variables))


def _missing(ctx: _Ctx, node: Node, rel: str, what: str) -> str:
    """Why the file cannot be read ("" when it can); other read errors are errors now."""
    assert ctx.read_file is not None
    try:
        ctx.read_file(ctx.path(rel))
    except FileNotFoundError:
        return f"{what} {ctx.display(rel)!r} does not exist"
    except OSError as exc:
        ctx.error(node, f"cannot read {what} {ctx.display(rel)!r}: {exc.strerror or exc}")
    return ""


def service_files(service: _Service, node: Node, kind: str) -> None:
    """A service's ``secrets:`` / ``configs:`` (short and long form)."""
    ctx = service.ctx
    if not isinstance(node.value, list):
        ctx.error(node, f"{kind} must be a list")
        return
    for item in node.value:
        _service_file(service, item, kind)


def _service_file(service: _Service, item: Node, kind: str) -> None:
    """One entry of a service's ``secrets:`` / ``configs:``: a read-only bind of the file,
    or a native ``files`` entry with the text."""
    ctx = service.ctx
    source, target, opts = _reference(ctx, item, kind)
    if not isinstance(source, str) or source not in ctx.files[kind]:
        ctx.error(item, f"service {service.key!r} refers to undefined {kind[:-1]} {source!r}: "
                        f"declare it under the top-level `{kind}:`")
        return
    src = ctx.files[kind][source]
    if src is None:  # reported where it is declared
        if ctx.allow_unsupported and not ctx.issues:
            ctx.warn(item, kind, f"{kind[:-1]} {source!r} is not mounted into service {service.key!r}: "
                                 "its declaration is not supported")
        return
    target = str(target or source)
    if not target.startswith("/"):
        target = f"/run/secrets/{target}" if kind == "secrets" else f"/{target}"
    if src.missing:
        _deferred_missing(service, kind, src, target)
    if src.path is not None:
        for sub, sub_node in opts.items():
            # docker compose itself ignores these for file-based secrets and configs
            ctx.warn(sub_node, f"{kind}.{sub}", "ignored: the file is bind-mounted read-only with "
                     "its own owner and mode on the host (docker compose ignores it too)")
        service.volumes.append(item.at(f"{src.path}:{target}:ro"))
        return
    _inline(service, item, kind, source, target, src, opts)


def _reference(ctx: _Ctx, item: Node, kind: str) -> tuple[Any, Any, dict[str, Node]]:
    """A service's secret / config reference (short: the name; long: source, target,
    uid, gid, mode) -> (source, target, {uid|gid|mode: node})."""
    source, target, opts = item.value, None, {}
    if isinstance(item.value, dict):
        source, target = plain(item.get("source")), plain(item.get("target"))
        for sub, sub_node in item.value.items():
            if sub in ("uid", "gid", "mode"):
                opts[str(sub)] = sub_node
            elif sub not in ("source", "target"):
                ctx.unsupported(sub_node, f"{kind}.{sub}")
    return source, target, opts


def _deferred_missing(service: _Service, kind: str, src: FileSource, target: str) -> None:
    """A missing file or unset variable: a warning once per declaration, and an error for
    whoever applies the result (compose only fails on it at ``up``)."""
    ctx = service.ctx
    where = src.node
    before = len(ctx.warnings)
    ctx.warn(where, f"{kind}.{where.field.rsplit('.', 1)[-1]}",
             f"{src.missing}: `docker compose up` fails on it, and `reconcile apply` refuses it")
    if ctx.warnings[-1] in ctx.warnings[:before]:  # once per secret, however many services use it
        ctx.warnings.pop()
    ctx.deferred.append(Issue(where.file, where.line, where.field,
                              f"{src.missing} (used by service {service.key!r} at {target})"))


def _inline(service: _Service, item: Node, kind: str, name: str, target: str, src: FileSource,
            opts: dict[str, Node]) -> None:
    entry: dict[str, Any] = {("secret" if src.secret else "content"): src.text, "source": f"{kind[:-1]} {name}"}
    for sub, sub_node in opts.items():
        value = sub_node.raw if sub_node.raw is not None else sub_node.value
        if sub == "mode":
            # `mode: 0440` is octal in compose (go-yaml reads a leading 0 as octal), `mode: 288`
            # decimal, `mode: "0440"` octal text
            if isinstance(sub_node.value, int) and not str(value).startswith("0"):
                value = sub_node.value
            try:
                entry["mode"] = parse_mode(value)
            except ValueError as exc:
                service.ctx.error(sub_node, str(exc))
        else:
            entry[sub] = value if not isinstance(value, int) else str(value)
    if target in service.files:
        service.ctx.error(item, f"service {service.key!r} mounts two secrets/configs at {target}")
        return
    service.files[target] = item.at(entry)


HANDLERS: dict[str, Callable[[_Service, Node], None]] = {
    "secrets": lambda s, n: service_files(s, n, "secrets"),
    "configs": lambda s, n: service_files(s, n, "configs"),
}
