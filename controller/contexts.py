"""Which engine to talk to, chosen as docker users do: ``-H/--host``, else ``--context``
(or ``DOCKER_CONTEXT``), else ``DOCKER_HOST``, else the current docker context of
``~/.docker/config.json``, else the SDK's default socket.

Docker contexts live in ``$DOCKER_CONFIG`` (default ``~/.docker``) under
``contexts/meta/<sha256 of the name>/meta.json``: ``{"Name": ..., "Endpoints": {"docker":
{"Host": "unix:///..."}}}``. Reads files only; does not import ``docker``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from controller.errors import ReconcileError


class UnknownContext(ReconcileError):
    """The named docker context does not exist (or has no docker endpoint)."""


def config_dir() -> Path:
    return Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker")


def context_host(name: str, root: Path | None = None) -> str | None:
    """The docker endpoint of context ``name``; None for ``default`` (the SDK's default)."""
    if name == "default":
        return None
    import hashlib  # only for a named context (~3 ms)

    root = root or config_dir()
    meta_dir = root / "contexts" / "meta"
    candidates = [meta_dir / hashlib.sha256(name.encode()).hexdigest() / "meta.json"]
    if meta_dir.is_dir():
        candidates += sorted(meta_dir.glob("*/meta.json"))
    for path in candidates:
        try:
            meta = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if meta.get("Name") == name:
            host = ((meta.get("Endpoints") or {}).get("docker") or {}).get("Host")
            if not host:
                raise UnknownContext(f"docker context {name!r} ({path}) has no docker endpoint")
            return str(host)
    raise UnknownContext(f"no docker context named {name!r} in {meta_dir} (see `docker context ls`)")


def current_context(root: Path | None = None) -> str | None:
    try:
        data = json.loads(((root or config_dir()) / "config.json").read_text())
    except (OSError, ValueError):
        return None
    name = data.get("currentContext")
    return str(name) if name else None


def resolve_host(host: str | None, context: str | None, environ: dict[str, str] | None = None,
                 root: Path | None = None) -> str | None:
    """The engine URL to use, or None for the SDK's own default (DOCKER_HOST or the socket)."""
    env = os.environ if environ is None else environ
    if host:
        return host
    name = context or env.get("DOCKER_CONTEXT")
    if name:
        return context_host(name, root)
    if env.get("DOCKER_HOST"):
        return None  # the SDK reads DOCKER_HOST (with DOCKER_TLS_VERIFY, DOCKER_CERT_PATH) itself
    cur = current_context(root)
    return context_host(cur, root) if cur else None
