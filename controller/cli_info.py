"""``version`` (and ``--version``) and ``completion``: what this client is, which engine and
store it talks to, and shell completion scripts (click's own completion machinery)."""

from __future__ import annotations

import sys
from typing import Any

import click

from controller.cli import Ctx, handled

SHELLS = ("bash", "zsh", "fish")


def client_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("reconcile")
    except PackageNotFoundError:
        return "unknown (not installed)"


def version_info(obj: Ctx) -> tuple[dict[str, Any], bool]:
    """(the data, whether the engine answered)."""
    data: dict[str, Any] = {"client": {"version": client_version(), "python": sys.version.split()[0]}}
    ok = True
    try:
        v = obj.engine.version()
        data["engine"] = {"host": obj.engine._kwargs.get("base_url") or "default", "version": v.get("Version"),
                          "apiVersion": v.get("ApiVersion"), "minApiVersion": v.get("MinAPIVersion"),
                          "os": v.get("Os"), "arch": v.get("Arch")}
    except Exception as exc:  # noqa: BLE001 - say so, and exit 1 as `docker version` does
        data["engine"] = {"error": str(exc)}
        ok = False
    try:
        import os

        from store import Store
        from store import db as store_db

        url = store_db.to_url(obj.db) if obj.db else store_db.default_url()
        path = store_db.sqlite_path(url)
        if path is not None and not os.path.exists(path):
            data["store"] = {"url": url, "schemaRevision": None, "head": store_db.HEAD, "atHead": False,
                             "exists": False}
            return data, ok
        store = Store.open(obj.db, migrate=False)
        try:
            cur = store.schema_revision(quick=True)
        finally:
            store.close()
        data["store"] = {"url": store.url, "schemaRevision": cur, "head": store_db.HEAD, "atHead": cur == store_db.HEAD}
    except Exception as exc:  # noqa: BLE001
        data["store"] = {"error": str(exc)}
    return data, ok


def print_version(obj: Ctx, output: str) -> int:
    data, ok = version_info(obj)
    if output in ("json", "yaml"):
        from controller.cli_output import dump

        dump(data, output)
        return 0 if ok else 1
    c, e, s = data["client"], data["engine"], data["store"]
    click.echo(f"Client:  reconcile {c['version']} (Python {c['python']})")
    if "error" in e:
        click.echo(f"Engine:  unavailable: {e['error']}")
    else:
        click.echo(f"Engine:  Docker {e['version']}, API {e['apiVersion']} (min {e['minApiVersion']}), "
                   f"{e['os']}/{e['arch']} at {e['host']}")
    if "error" in s:
        click.echo(f"Store:   unavailable: {s['error']}")
    else:
        rev = s["schemaRevision"] or "none"
        if s.get("exists") is False:
            state = f"not created yet (created at head {s['head']} on first use)"
        elif s["atHead"]:
            state = "at head"
        else:
            state = f"behind head {s['head']} (`reconcile db upgrade`, or any write upgrades it)"
        click.echo(f"Store:   {s['url']}, schema revision {rev}, {state}")
    return 0 if ok else 1


@click.command("version")
@click.option("-o", "--output", "output", type=click.Choice(["text", "json", "yaml"]), default="text",
              show_default=True, help="Output format.")
@click.pass_obj
@handled
def version(obj: Ctx, output: str) -> None:
    """Client, engine (version and API version) and store (schema revision, at head?) versions."""
    sys.exit(print_version(obj, output))


@click.command("completion")
@click.argument("shell", type=click.Choice(SHELLS))
@click.pass_context
def completion(ctx: click.Context, shell: str) -> None:
    """Print the shell completion script for SHELL (bash, zsh or fish); see the README to install it."""
    from click.shell_completion import get_completion_class

    cls = get_completion_class(shell)
    assert cls is not None
    root = ctx.find_root().command
    click.echo(cls(root, {}, "reconcile", "_RECONCILE_COMPLETE").source())
