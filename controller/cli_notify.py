"""Notification verbs: ``notify test NAME`` (send a test message now), ``notify delete
NAME``, and the listing
behind ``get notifiers`` (each sink, redacted, with its last delivery, last error and
backlog). Thin: the sender (``controller.notify_send``) does the work; the store comes from
the command's ``Ctx``. Only click at module level.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import click

from controller import cli_output as fmt
from controller.cli import EXIT_FAILED, EXIT_INVALID, Ctx, handled

COLUMNS = ("NAME", "SINK", "EVENTS", "LAST DELIVERY", "BACKLOG", "LAST ERROR")


@click.group("notify")
def notify() -> None:
    """Notifications: Notifier resources (`kind: Notifier`) and their delivery."""


@notify.command("test")
@click.argument("name")
@click.pass_obj
@handled
def test(obj: Ctx, name: str) -> None:
    """Send a test message to notifier NAME now: exit 0 delivered, 1 failed (with the
    reason), 2 no such notifier."""
    from controller.notify_send import Sender

    result = Sender(obj.store, time.time).test(name)
    if result is None:
        click.echo(f"error: no notifier named {name}", err=True)
        sys.exit(EXIT_INVALID)
    if not result.ok:
        click.echo(f"error: notifier {name}: delivery failed: {result.error}", err=True)
        sys.exit(EXIT_FAILED)
    click.echo(f"notifier {name}: test message delivered")


@notify.command("delete")
@click.argument("name")
@click.pass_obj
@handled
def delete(obj: Ctx, name: str) -> None:
    """Delete notifier NAME (its undelivered messages with it): exit 2 if there is none."""
    from store.notify import NotifyStore

    if not NotifyStore(obj.store).delete(name, actor="cli", now=time.time()):
        click.echo(f"error: no notifier named {name}", err=True)
        sys.exit(EXIT_INVALID)
    click.echo(f"notifier/{name} deleted")


def rows(obj: Ctx) -> list[dict[str, Any]]:
    """What ``get notifiers`` shows of each notifier: never a secret value."""
    from controller import notify_sinks as sinks
    from controller.notify_send import backlog
    from crd_like.secrets import redact_spec
    from store.notify import NotifyStore

    notify = NotifyStore(obj.store)
    labels = {n: d.metadata.get("labels") or {} for n, d in obj.store.desired().items()}
    out = []
    for n in notify.notifiers():
        spec = redact_spec(n.spec)
        out.append({
            "name": n.name, "kind": "Notifier", "sink": sinks.shown_sink(n.spec), "events": spec.get("events") or [],
            "selector": spec.get("selector") or "", "generation": n.generation,
            "lastDeliveryAt": n.last_delivery_at or None, "lastError": n.last_error or None,
            "lastErrorAt": n.last_error_at or None, "attempts": n.attempts,
            "nextAttemptAt": n.next_attempt_at or None, "backlog": backlog(notify, n, labels),
        })
    return out


def show(obj: Ctx, output: str) -> None:
    data = rows(obj)
    if output in ("json", "yaml"):
        fmt.dump(data, output)
        return
    if output == "name":
        for r in data:
            click.echo(f"notifier/{r['name']}")
        return
    if not data:
        click.echo("no notifiers; `reconcile apply -f FILE` with `kind: Notifier` adds one", err=True)
        return
    now = time.time()
    cells = [[r["name"], r["sink"], ",".join(r["events"]) or "all",
              f"{fmt.duration(now - r['lastDeliveryAt'])} ago" if r["lastDeliveryAt"] else "-",
              str(r["backlog"]), (r["lastError"] or "-")[:60]] for r in data]
    for line in fmt.table(COLUMNS, cells):
        click.echo(line)
