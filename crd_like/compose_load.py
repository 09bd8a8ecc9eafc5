"""Compose's file-level composition: ``include`` and ``extends``, before conversion.

Follows compose-go's loader (``loader/include.go``, ``loader/extends.go``):

- ``include:`` (a list of paths, or of ``{path, project_directory, env_file}``) loads each
  included project with its own project directory (default: the included file's
  directory) and its own ``.env`` (default: the ``.env`` of that directory, or the
  given ``env_file`` list); its variables are interpolated with the process environment
  first, then that env file. Relative paths in an included project are resolved against
  ITS project directory. The included services, networks, volumes, secrets and configs
  are added to the including file; a name defined by both is an error (as in compose).
  ``path`` may be a list of files, merged in order like several ``-f`` files.
  Includes nest; a file including itself (directly or not) is an error.
- ``extends: {service: NAME, file: PATH}`` (or ``extends: NAME``) merges the service onto
  the one it extends, with the same rules as several ``-f`` files (``crd_like.merge``);
  the base may itself extend another, in the same file or another; a cycle is an error
  naming the chain. Relative paths in a service taken from another file are resolved
  against that file's directory.

Both run per file, before the ``-f`` files are merged (as compose does). Files are read
through the caller's reader (no I/O here). Must not import ``store`` or ``controller``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from crd_like.errors import InvalidSpec, Issue
from crd_like.interpolate import interpolate_tree, parse_env_file
from crd_like.loader import parse_documents
from crd_like.merge import Node, merge_compose, merge_service, plain, strip_tags, tree

Reader = Callable[[str], bytes]
MAX_INCLUDE_DEPTH = 16


@dataclass
class LoadCtx:
    """What loading an included or extended file needs."""

    environ: Mapping[str, str]  # the process environment (wins over env files)
    read_file: Reader | None
    issues: list[Issue]
    warnings: list[str]
    display_dir: str  # the first file's directory as the user wrote it (for display names)
    project_dir: str  # absolute
    stack: list[str] = field(default_factory=list)  # include chain (absolute paths)
    cache: dict[str, Node] = field(default_factory=dict)  # absolute path -> interpolated tree

    def display(self, path: str) -> str:
        rel = os.path.relpath(path, self.project_dir)
        return os.path.normpath(os.path.join(self.display_dir, rel)) if not rel.startswith("..") else path

    def load(self, path: str, env: Mapping[str, str], where: Node) -> Node | None:
        """An absolute compose file, parsed (YAML 1.2) and interpolated with ``env``."""
        if path in self.cache:
            return self.cache[path]
        if self.read_file is None:
            self.issues.append(Issue(where.file, where.line, where.field, f"cannot read {path!r}: no file reader"))
            return None
        try:
            raw = self.read_file(path)
        except FileNotFoundError:
            self.issues.append(Issue(where.file, where.line, where.field, f"file {self.display(path)!r} does not exist"))
            return None
        except OSError as exc:
            self.issues.append(Issue(where.file, where.line, where.field,
                                     f"cannot read {self.display(path)!r}: {exc.strerror or exc}"))
            return None
        try:
            docs = parse_documents(raw, self.display(path), yaml12=True)
        except InvalidSpec as exc:
            self.issues.extend(exc.issues)
            return None
        if len(docs) > 1:
            self.issues.append(Issue(docs[1].file, docs[1].start_line, "", "a compose file holds a single YAML document"))
            return None
        node = tree(docs[0], native=False)
        interpolate_tree(node, env, self.issues, self.warnings)
        self.cache[path] = node
        return node


def read_env(paths: list[str], environ: Mapping[str, str], ctx: LoadCtx, where: Node,
             required: bool) -> dict[str, str]:
    """The variables of env files (later wins), with the process environment over them."""
    out: dict[str, str] = {}
    for path in paths:
        if ctx.read_file is None:
            break
        try:
            raw = ctx.read_file(path)
        except FileNotFoundError:
            if required:
                ctx.issues.append(Issue(where.file, where.line, where.field,
                                        f"env file {ctx.display(path)!r} does not exist"))
            continue
        except OSError as exc:
            ctx.issues.append(Issue(ctx.display(path), None, "", f"cannot read: {exc.strerror or exc}"))
            continue
        try:
            out.update(parse_env_file(raw, ctx.display(path), {**out, **environ}))
        except InvalidSpec as exc:
            ctx.issues.extend(exc.issues)
    return {**out, **environ}


# ---------------------------------------------------------------------------- relative paths
def _abs(text: str, base: str) -> str:
    if text.startswith("~"):
        return text  # home-relative stays as written (the converter expands it)
    return os.path.normpath(os.path.join(base, text))


def _rebase_str(node: Node, base: str) -> Node:
    if isinstance(node.value, str) and not os.path.isabs(node.value) and "://" not in node.value:
        return node.at(_abs(node.value, base))
    return node


def absolutize_service(svc: Node, base: str) -> Node:
    """A service with its relative host paths made absolute against ``base``."""
    if not isinstance(svc.value, dict):
        return svc
    out = dict(svc.value)
    for key, rebase in _HOST_PATHS.items():
        if out.get(key) is not None:
            out[key] = rebase(out[key], base)
    return Node(out, svc.file, svc.line, svc.field, svc.native, svc.raw, svc.tag)


def _rebase_build(build: Node, base: str) -> Node:
    if isinstance(build.value, str):
        return _rebase_str(build, base)
    if isinstance(build.value, dict) and "context" in build.value:
        return build.at({**build.value, "context": _rebase_str(build.value["context"], base)})
    if isinstance(build.value, dict):
        return build.at({**build.value, "context": build.at(base)})
    return build


def _rebase_volumes(vols: Node, base: str) -> Node:
    if not isinstance(vols.value, list):
        return vols
    items = []
    for item in vols.value:
        if isinstance(item.value, str):
            src, sep, rest = item.value.partition(":")
            if sep and (src.startswith(".") or src in (".", "..")):
                item = Node(f"{_abs(src, base)}:{rest}", item.file, item.line, item.field, item.native)
        elif isinstance(item.value, dict) and plain(item.get("type")) == "bind" and item.get("source") is not None:
            item = item.at({**item.value, "source": _rebase_str(item.value["source"], base)})
        items.append(item)
    return vols.at(items)


def _rebase_env_file(env_file: Node, base: str) -> Node:
    entries = env_file.value if isinstance(env_file.value, list) else [env_file]
    fixed = []
    for e in entries:
        if isinstance(e.value, dict) and e.get("path") is not None:
            e = e.at({**e.value, "path": _rebase_str(e.value["path"], base)})
        else:
            e = _rebase_str(e, base)
        fixed.append(e)
    return env_file.at(fixed)


def _rebase_extends(ext: Node, base: str) -> Node:
    if isinstance(ext.value, dict) and ext.get("file") is not None:
        return ext.at({**ext.value, "file": _rebase_str(ext.value["file"], base)})
    return ext


# the service keys that hold host paths, and how each is made absolute
_HOST_PATHS: dict[str, Callable[[Node, str], Node]] = {
    "build": _rebase_build, "volumes": _rebase_volumes, "env_file": _rebase_env_file, "label_file": _rebase_str,
    "extends": _rebase_extends,
}


def absolutize_project(doc: Node, base: str) -> Node:
    """Every relative host path of a whole compose file, absolute against ``base``."""
    if not isinstance(doc.value, dict):
        return doc
    out = dict(doc.value)
    services = out.get("services")
    if services is not None and isinstance(services.value, dict):
        out["services"] = services.at({k: absolutize_service(v, base) for k, v in services.value.items()})
    for kind in ("secrets", "configs"):
        top = out.get(kind)
        if top is None or not isinstance(top.value, dict):
            continue
        fixed = {}
        for k, v in top.value.items():
            if isinstance(v.value, dict) and v.get("file") is not None:
                v = v.at({**v.value, "file": _rebase_str(v.value["file"], base)})
            fixed[k] = v
        out[kind] = top.at(fixed)
    return Node(out, doc.file, doc.line, doc.field, doc.native)


# ---------------------------------------------------------------------------- include
_RESOURCES = ("services", "networks", "volumes", "secrets", "configs")


def apply_include(doc: Node, file_dir: str, env: Mapping[str, str], ctx: LoadCtx) -> Node:
    """``doc`` with its ``include:`` entries loaded and added (the key removed)."""
    inc = doc.get("include")
    if inc is None:
        return doc
    out = {k: v for k, v in doc.value.items() if k != "include"}
    if inc.value is None:
        return Node(out, doc.file, doc.line, doc.field, doc.native)
    if not isinstance(inc.value, list):
        ctx.issues.append(Issue(inc.file, inc.line, inc.field, "include must be a list of paths or of "
                                                                "{path, project_directory, env_file}"))
        return Node(out, doc.file, doc.line, doc.field, doc.native)
    for entry in inc.value:
        included = _one_include(entry, file_dir, ctx)
        if included is not None:
            for kind in _RESOURCES:
                _add_included(out, kind, included.get(kind), ctx)
    return Node(out, doc.file, doc.line, doc.field, doc.native)


def _add_included(out: dict[Any, Node], kind: str, theirs: Node | None, ctx: LoadCtx) -> None:
    """An included project's ``kind`` (services, networks ...) added to ``out``; a name
    defined on both sides is an error, as in compose."""
    if theirs is None or not isinstance(theirs.value, dict):
        return
    mine = out.get(kind)
    merged = dict(mine.value) if mine is not None and isinstance(mine.value, dict) else {}
    for name, node in theirs.value.items():
        if name in merged:
            first = merged[name]
            ctx.issues.append(Issue(first.file, first.line, first.field,
                                    f"{kind[:-1]} {name!r} is defined here and also by the included "
                                    f"{node.file}:{node.line} (compose refuses the conflict: rename one)"))
            continue
        merged[name] = node
    out[kind] = theirs.at(merged) if mine is None else mine.at(merged)


def _one_include(entry: Node, file_dir: str, ctx: LoadCtx) -> Node | None:
    cfg = entry.value if isinstance(entry.value, dict) else {"path": entry}
    path_node = cfg.get("path")
    paths = _include_paths(entry, cfg, ctx)
    if paths is None:
        return None
    files = [_abs(p, file_dir) for p in paths]
    where = path_node or entry
    pd_node = cfg.get("project_directory")
    project_dir = _abs(str(pd_node.value), file_dir) if pd_node is not None else os.path.dirname(files[0])
    env_node = cfg.get("env_file")
    if env_node is not None:
        env_paths = plain(env_node)
        env_paths = env_paths if isinstance(env_paths, list) else [env_paths]
        env = read_env([_abs(str(p), file_dir) for p in env_paths], ctx.environ, ctx, env_node, True)
    else:
        env = read_env([os.path.join(project_dir, ".env")], ctx.environ, ctx, where, False)
    merged: Node | None = None
    for path in files:
        node = _included_file(path, env, where, project_dir, ctx)
        if node is None:
            return None
        merged = node if merged is None else merge_compose(merged, node)
    return strip_tags(merged) if merged is not None else None


def _include_paths(entry: Node, cfg: dict[Any, Node], ctx: LoadCtx) -> list[str] | None:
    """An include entry's ``path:`` (one or a list); its unknown keys are errors."""
    paths_value = plain(cfg.get("path"))
    paths = paths_value if isinstance(paths_value, list) else [paths_value]
    if not paths or not all(isinstance(p, str) and p for p in paths):
        ctx.issues.append(Issue(entry.file, entry.line, entry.field, "an include entry needs `path:` (a file or a list)"))
        return None
    for sub, sub_node in cfg.items():
        if sub not in ("path", "project_directory", "env_file"):
            ctx.issues.append(Issue(sub_node.file, sub_node.line, sub_node.field,
                                    f"unknown include key {sub!r}: expected path, project_directory or env_file"))
    return paths


def _included_file(path: str, env: Mapping[str, str], where: Node, project_dir: str, ctx: LoadCtx) -> Node | None:
    """One included file, its own includes and extends applied and its paths absolute;
    None after an error (a cycle, a file that is not a compose mapping)."""
    if path in ctx.stack or len(ctx.stack) >= MAX_INCLUDE_DEPTH:
        chain = " -> ".join(ctx.display(p) for p in [*ctx.stack, path])
        ctx.issues.append(Issue(where.file, where.line, where.field, f"include cycle: {chain}"))
        return None
    node = ctx.load(path, env, where)
    if node is None or not isinstance(node.value, dict):
        if node is not None:
            ctx.issues.append(Issue(node.file, node.line, "", "an included file must be a compose mapping"))
        return None
    ctx.stack.append(path)
    try:
        node = apply_include(node, os.path.dirname(path), env, ctx)
        node = apply_extends(node, path, env, ctx)
    finally:
        ctx.stack.pop()
    node = absolutize_project(node, project_dir)  # as several -f files: relative to the project directory
    _resolve_env_sources(node, env)
    return node


def _resolve_env_sources(doc: Node, env: Mapping[str, str]) -> None:
    """``secrets|configs.NAME.environment: VAR`` of an included project reads VAR from that
    project's environment (process environment, then its env_file), as compose does: the
    value is noted on the node (``Node.env_value``) before the projects are merged."""
    for kind in ("secrets", "configs"):
        top = doc.get(kind)
        for entry in (top.value.values() if top is not None and isinstance(top.value, dict) else []):
            var = entry.get("environment")
            if var is not None and isinstance(var.value, str) and var.env_value is None and var.value in env:
                var.env_value = env[var.value]


# ---------------------------------------------------------------------------- extends
def apply_extends(doc: Node, path: str | None, env: Mapping[str, str], ctx: LoadCtx) -> Node:
    """``doc`` with every service's ``extends`` resolved (the key removed)."""
    services = doc.get("services")
    if services is None or not isinstance(services.value, dict):
        return doc
    resolved: dict[Any, Node] = {}
    for name, svc in services.value.items():
        resolved[name] = _resolve(doc, path, str(name), svc, env, ctx, [])
    out = {**doc.value, "services": services.at(resolved)}
    return Node(out, doc.file, doc.line, doc.field, doc.native)


def _resolve(doc: Node, path: str | None, name: str, svc: Node, env: Mapping[str, str], ctx: LoadCtx,
             chain: list[tuple[str | None, str]]) -> Node:
    ext = svc.get("extends") if isinstance(svc.value, dict) else None
    if ext is None:
        return svc
    rest = Node({k: v for k, v in svc.value.items() if k != "extends"}, svc.file, svc.line, svc.field, svc.native)
    cfg = ext.value if isinstance(ext.value, dict) else {"service": ext}
    base_name = _extends_service(ext, cfg, ctx)
    if base_name is None:
        return rest
    file_node = cfg.get("file")
    found = _extends_file(doc, path, file_node, env, ctx)
    if found is None:
        return rest
    base_doc, base_path = found
    cycle = _extends_cycle([*chain, (path, name)], (base_path, base_name))
    if cycle:
        ctx.issues.append(Issue(ext.file, ext.line, ext.field, f"extends cycle: {cycle}"))
        return rest
    base = _service_of(base_doc, base_name)
    if base is None:
        where = f" in {ctx.display(base_path)}" if file_node is not None and base_path else ""
        ctx.issues.append(Issue(ext.file, ext.line, ext.field,
                                f"service {name!r} extends undefined service {base_name!r}{where}"))
        return rest
    base = _resolve(base_doc, base_path, base_name, base, env, ctx, [*chain, (path, name)])
    if file_node is not None and base_path:
        base = absolutize_service(base, os.path.dirname(base_path))
    return merge_service(base, rest)


def _extends_cycle(chain: list[tuple[str | None, str]], key: tuple[str | None, str]) -> str:
    """``a -> b -> a`` when extending ``key`` from the end of ``chain`` closes a cycle, else ''."""
    if key not in chain:
        return ""
    return " -> ".join(n for _p, n in [*chain, key])


def _service_of(doc: Node, name: str) -> Node | None:
    """Service ``name`` of ``doc`` (an empty one as an empty mapping), or None."""
    services = doc.get("services")
    svc = services.get(name) if services is not None else None
    if svc is not None and not isinstance(svc.value, dict):
        return svc.at({})
    return svc


def _extends_service(ext: Node, cfg: dict[Any, Node], ctx: LoadCtx) -> str | None:
    """The name of the service ``extends:`` names; its unknown keys are errors."""
    base_name = plain(cfg.get("service"))
    if not isinstance(base_name, str) or not base_name:
        ctx.issues.append(Issue(ext.file, ext.line, ext.field, "extends needs `service:` (the name of the service "
                                                               "to extend), optionally with `file:`"))
        return None
    for sub, sub_node in cfg.items():
        if sub not in ("service", "file"):
            ctx.issues.append(Issue(sub_node.file, sub_node.line, sub_node.field,
                                    f"unknown extends key {sub!r}: expected service or file"))
    return base_name


def _extends_file(doc: Node, path: str | None, file_node: Node | None, env: Mapping[str, str],
                  ctx: LoadCtx) -> tuple[Node, str | None] | None:
    """The document (and its path) that holds the extended service: this one, or
    ``extends.file`` loaded; None after an error."""
    if file_node is None:
        return doc, path
    if not isinstance(file_node.value, str) or not file_node.value:
        ctx.issues.append(Issue(file_node.file, file_node.line, file_node.field, "extends.file must be a path"))
        return None
    here = os.path.dirname(path) if path else ctx.project_dir
    base_path = _abs(file_node.value, here)
    loaded = ctx.load(base_path, env, file_node)
    return None if loaded is None else (loaded, base_path)
