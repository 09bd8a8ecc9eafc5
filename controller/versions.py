"""What ``reconcile version`` reports — the client, the engine and the store — gathered
with the standard library only, and the text it prints.

``controller.cli_info`` (the ``version`` verb) and ``controller.cli_fast`` (the same
answer without loading click, the Docker SDK or SQLAlchemy) both use it. Each probe
here answers the common case (a plain SQLite store file, an engine on a unix socket) and
returns None for anything else; the caller then asks the full code path (the store,
``controller.engine``), which also words every failure. Must not import click, docker,
sqlalchemy or pydantic; the rest of the standard library loads inside the functions
(``--help`` uses ``dist_version`` alone).
"""

from __future__ import annotations

import os
import sys
from typing import Any

from store.location import HEAD, default_url, plain_sqlite_file, to_url

# The docker SDK's default engine, its oldest supported API and the engine read timeout
# (controller.engine.CallTimeouts.read).
DEFAULT_SOCKET = "/var/run/docker.sock"
MIN_API = (1, 24)
READ_TIMEOUT_S = 15.0


def dist_version(name: str, path: list[str] | None = None) -> str | None:
    """The installed version of distribution ``name`` as ``importlib.metadata.version``
    finds it (the first ``*.dist-info``/``*.egg-info`` of that name on ``sys.path``), or
    None when none is found; without importing ``importlib.metadata`` (its import and
    search cost more than the rest of ``--help``)."""
    want = _norm(name)
    for entry in sys.path if path is None else path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for item in names:
            stem, dot, ext = item.rpartition(".")
            if not dot or ext not in ("dist-info", "egg-info") or _norm(stem.split("-")[0]) != want:
                continue
            version = _metadata_version(os.path.join(entry or ".", item, "METADATA" if ext == "dist-info" else "PKG-INFO"))
            if version is not None:
                return version
    return None


def _metadata_version(meta: str) -> str | None:
    """The ``Version:`` of a METADATA / PKG-INFO file's header, or None (no such line, unreadable)."""
    try:
        with open(meta, encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("Version:"):
                    return line.split(":", 1)[1].strip()
                if not line.strip():
                    break
    except OSError:
        pass
    return None


def _norm(name: str) -> str:
    return name.lower().replace("-", "_").replace(".", "_")


def client_version() -> str:
    found = dist_version("reconcile")
    if found is not None:
        return found
    from importlib.metadata import PackageNotFoundError, version  # other finders (zips, ...)

    try:
        return version("reconcile")
    except PackageNotFoundError:
        return "unknown (not installed)"


def client_info() -> dict[str, Any]:
    return {"version": client_version(), "python": sys.version.split()[0]}


def store_info(location: str | None) -> dict[str, Any] | None:
    """The store's schema revision, read with sqlite3 from a plain SQLite file; None for any
    other store (the caller asks ``Store``)."""
    import sqlite3

    url = to_url(location) if location else default_url()
    path = plain_sqlite_file(url)
    if path is None:
        return None
    if not os.path.exists(path):
        return {"url": url, "schemaRevision": None, "head": HEAD, "atHead": False, "exists": False}
    try:
        con = sqlite3.connect(path, timeout=30.0)
    except sqlite3.Error:
        return None
    try:
        try:
            row = con.execute("SELECT version_num FROM alembic_version").fetchone()
        except sqlite3.Error:
            row = None  # no table yet (as store.db._quick_current)
        cur = None if row is None else row[0]
        return {"url": url, "schemaRevision": cur, "head": HEAD, "atHead": cur == HEAD}
    finally:
        con.close()


def engine_socket(host: str | None, context: str | None, environ: dict[str, str] | None = None) -> tuple[str, str] | None:
    """(socket path, the host as ``version`` shows it) of a unix-socket engine chosen as
    ``Ctx.engine`` chooses it; None for anything else (tcp, ssh, TLS settings, custom
    timeouts, an unknown context): the Docker SDK handles those."""
    from controller.contexts import UnknownContext, resolve_host

    env = os.environ if environ is None else environ
    if any(env.get(k) for k in ("DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "RECONCILE_ENGINE_TIMEOUTS")):
        return None
    try:
        base = resolve_host(host, context, dict(env))
    except (UnknownContext, OSError, ValueError):
        return None
    url = base or env.get("DOCKER_HOST") or None  # the SDK's base_url (kwargs_from_env reads DOCKER_HOST)
    if url is None:
        return DEFAULT_SOCKET, "default"
    for prefix in ("unix://", "http+unix://"):
        if url.startswith(prefix) and url[len(prefix):].startswith("/"):
            return url[len(prefix):], url
    return None


def engine_version(sock_path: str, timeout: float = READ_TIMEOUT_S) -> dict[str, Any] | None:
    """``GET /version`` over the unix socket (``controller.engine_socket``); None when it
    does not answer 200 with a JSON body of an API version the SDK supports."""
    from controller.engine_socket import SocketEngine

    v = SocketEngine(sock_path, timeout).version()
    if v is None or not _api_ok(str(v.get("ApiVersion", ""))):
        return None
    return v


def _api_ok(api: str) -> bool:
    try:
        return tuple(int(p) for p in api.split(".")) >= MIN_API
    except ValueError:
        return False


def engine_record(shown_host: str, v: dict[str, Any]) -> dict[str, Any]:
    return {"host": shown_host, "version": v.get("Version"), "apiVersion": v.get("ApiVersion"),
            "minApiVersion": v.get("MinAPIVersion"), "os": v.get("Os"), "arch": v.get("Arch")}


def version_text(data: dict[str, Any]) -> list[str]:
    """The lines ``reconcile version`` prints for this data."""
    c, e, s = data["client"], data["engine"], data["store"]
    lines = [f"Client:  reconcile {c['version']} (Python {c['python']})"]
    if "error" in e:
        lines.append(f"Engine:  unavailable: {e['error']}")
    else:
        lines.append(f"Engine:  Docker {e['version']}, API {e['apiVersion']} (min {e['minApiVersion']}), "
                     f"{e['os']}/{e['arch']} at {e['host']}")
    if "error" in s:
        lines.append(f"Store:   unavailable: {s['error']}")
    else:
        rev = s["schemaRevision"] or "none"
        if s.get("exists") is False:
            state = f"not created yet (created at head {s['head']} on first use)"
        elif s["atHead"]:
            state = "at head"
        else:
            state = f"behind head {s['head']} (`reconcile db upgrade`, or any write upgrades it)"
        lines.append(f"Store:   {s['url']}, schema revision {rev}, {state}")
    return lines


def version_json(data: dict[str, Any]) -> str:
    """What ``version -o json`` prints (as controller.cli_output.dump)."""
    import json

    return json.dumps(data, indent=2, default=str)
