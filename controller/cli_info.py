"""``version`` (and ``--version``) and ``completion``: what this client is, which engine and
store it talks to, and shell completion scripts (click's own completion machinery)."""

from __future__ import annotations

import sys
from typing import Any

import click

from controller.cli import Ctx, handled

SHELLS = ("bash", "zsh", "fish")


def version_info(obj: Ctx) -> tuple[dict[str, Any], bool]:
    """(the data, whether the engine answered)."""
    from controller import versions

    data: dict[str, Any] = {"client": versions.client_info()}
    ok = True
    try:
        v = obj.engine.version()
        data["engine"] = versions.engine_record(obj.engine.base_url or "default", v)
    except Exception as exc:  # noqa: BLE001 - say so, and exit 1 as `docker version` does
        data["engine"] = {"error": str(exc)}
        ok = False
    try:
        store = versions.store_info(obj.db)  # a plain SQLite file: read with sqlite3
        if store is None:
            store = _store_info(obj)
        data["store"] = store
    except Exception as exc:  # noqa: BLE001
        data["store"] = {"error": str(exc)}
    return data, ok


def _store_info(obj: Ctx) -> dict[str, Any]:
    import os

    from store import Store
    from store import db as store_db

    url = store_db.to_url(obj.db) if obj.db else store_db.default_url()
    path = store_db.sqlite_path(url)
    if path is not None and not os.path.exists(path):
        return {"url": store_db.redact(url), "schemaRevision": None, "head": store_db.HEAD, "atHead": False, "exists": False}
    store = Store.open(obj.db, migrate=False)
    try:
        cur = store.schema_revision(quick=True)
    finally:
        store.close()
    return {"url": store.shown_url, "schemaRevision": cur, "head": store_db.HEAD, "atHead": cur == store_db.HEAD}


def print_version(obj: Ctx, output: str) -> int:
    from controller.versions import version_text

    data, ok = version_info(obj)
    if output in ("json", "yaml"):
        from controller.cli_output import dump

        dump(data, output)
        return 0 if ok else 1
    for line in version_text(data):
        click.echo(line)
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
