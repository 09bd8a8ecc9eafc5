"""Read verbs in kubectl's style: ``get`` (alias ``ps``) with ``-o``, ``-l`` and ``--watch``,
and ``events`` (the audit rows as they are written).

Registered on the click group by ``controller.cli``. Only light imports at module level;
the store and the engine come from the command's ``Ctx``.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

import click

from controller import cli_output as fmt
from controller.cli import COUNT, DURATION, EXIT_INVALID, Ctx, complete_names, handled

GET_COLUMNS = ("NAME", "KIND", "STATE", "HEALTH", "RESTARTS", "AGE")
WIDE_COLUMNS = GET_COLUMNS + ("REPLICAS", "GEN", "IMAGE", "PORTS", "CONTAINER", "REASON")


def select_rows(obj: Ctx, names: Sequence[str], selector: list[fmt.Requirement] | None) -> list[dict[str, Any]]:
    from controller import operations as ops

    rows = ops.status_rows(obj.reader)
    if names:
        known = {r["name"] for r in rows}
        missing = [n for n in names if n not in known]
        if missing:
            click.echo(f"error: no resource named {', '.join(missing)}", err=True)
            sys.exit(EXIT_INVALID)
        rows = [r for r in rows if r["name"] in set(names)]
    if selector:
        rows = [r for r in rows if fmt.selected(r.get("labels") or {}, selector)]
    return rows


def _cells(r: dict[str, Any], wide: bool, now: float) -> list[str]:
    state = r["state"]
    if r.get("nextAttemptAt"):
        state += f" (next in {fmt.duration(r['nextAttemptAt'] - now)})"
    cells = [r["name"], r["kind"], state, r["health"] or "-", str(r["restartCount"]),
             fmt.duration(now - r["lastTransitionAt"]) if r.get("lastTransitionAt") else "-"]
    if wide:
        gen = f"{r['generation']}/{r['observedGeneration']}"
        reason = r.get("reason") or ""
        if r.get("waitingFor"):
            reason = (reason + ": " if reason else "") + ",".join(f"{d}({c})" for d, c in r["waitingFor"].items())
        cells += [str(r.get("replicas", 1)), gen, r.get("image") or "-", ",".join(r.get("ports") or []) or "-",
                  r["containerId"] or "-", reason or "-"]
    return cells


def render(rows: list[dict[str, Any]], output: str, now: float | None = None) -> list[str]:
    now = time.time() if now is None else now
    if output == "name":
        return [f"{r['kind'].lower()}/{r['name']}" for r in rows]
    wide = output == "wide"
    return fmt.table(WIDE_COLUMNS if wide else GET_COLUMNS, [_cells(r, wide, now) for r in rows])


@click.command("get")
@click.argument("names", nargs=-1, shell_complete=complete_names)
@click.option("-o", "--output", "output", type=click.Choice(list(fmt.LIST_FORMATS)), default="table",
              show_default=True, help="table, wide (more columns), json, yaml, or name (kind/name).")
@fmt.selector_option
@click.option("-w", "--watch", is_flag=True, help="Keep running; print again whenever something changes.")
@click.pass_obj
@handled
def get(obj: Ctx, names: tuple[str, ...], output: str, selector: list[fmt.Requirement] | None, watch: bool) -> None:
    """List resources (all, or NAMEs) with their state; `ps` is the same verb.
    `get notifiers` lists the notifiers (their sinks, last delivery, backlog)."""
    if names == ("notifiers",) and not watch and obj.reader.get("notifiers") is None:
        from controller.cli_notify import show

        show(obj, output)
        return
    if not watch:
        rows = select_rows(obj, names, selector)
        if output in ("json", "yaml"):
            fmt.dump(rows, output)
            return
        if not rows:
            click.echo("no resources" + (" match" if names or selector else "; `reconcile apply -f FILE` adds some"),
                       err=True)
            return
        for line in render(rows, output):
            click.echo(line)
        return
    _watch(obj, names, selector, output)


def _watch(obj: Ctx, names: tuple[str, ...], selector: list[fmt.Requirement] | None, output: str) -> None:
    """Print, then print again on every change. The engine's events wake it at once; when no
    controller runs, an observe-only pass records what the event changed first (so a state
    change shows within a second either way). On a terminal the table is redrawn in place;
    otherwise the changed rows are appended (as `kubectl get -w`)."""
    wake = threading.Event()
    stop = threading.Event()
    threading.Thread(target=_follow_engine, args=(obj, wake, stop), daemon=True, name="watch-events").start()
    printer = _WatchPrinter(output, sys.stdout.isatty())
    last_refresh = 0.0
    observer: Any = None  # one observe-only reconciler for the whole watch (its image cache too)
    try:
        while True:
            woke = wake.wait(0.25)
            wake.clear()
            now = time.time()
            # events wake it; the 1 s look is the safety net (an event can precede the state the
            # engine reports, and one observe-only list call a second is cheap for a watch)
            if woke or now - last_refresh > 1.0:
                last_refresh = now
                observer = _observe(obj, observer, now)
            printer.show(select_rows(obj, names, selector), now)
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        if observer is not None:
            observer.close()


def _follow_engine(obj: Ctx, wake: threading.Event, stop: threading.Event) -> None:
    """Set ``wake`` on every engine event of this store's containers, until ``stop``."""
    since = time.time()  # replay from here: an event before the stream is connected is not lost
    while not stop.is_set():
        try:
            for _ev in obj.engine.watch(obj.store.instance_id, since=since):
                since = time.time() - 1.0
                wake.set()
                if stop.is_set():
                    return
        except Exception:  # noqa: BLE001 - engine away: store polling still works
            time.sleep(1.0)


def _observe(obj: Ctx, observer: Any, now: float) -> Any:
    """Record what the engine shows when no controller does (one observe-only pass); the
    observer, made on first use."""
    from controller import operations as ops

    try:
        if obj.store.lease(now=now) is None:  # a running controller records it itself
            if observer is None:
                observer = ops.reconciler(obj.store, obj.engine, actor="cli", workers=1)
            observer.refresh_status()
    except Exception:  # noqa: BLE001 - engine away: show what the store has
        pass
    return observer


class _WatchPrinter:
    """What ``get -w`` prints of each look: json/yaml documents of the rows that changed; on
    a terminal the table redrawn in place; otherwise the header once, then each row
    whenever it changes (ignoring AGE)."""

    def __init__(self, output: str, tty: bool):
        self.output, self.tty = output, tty
        self.shown: dict[str, str] = {}  # row name -> what was printed of it; "" -> the frame/header
        self.drawn = 0  # lines of the frame on the terminal

    def show(self, rows: list[dict[str, Any]], now: float) -> None:
        if self.output in ("json", "yaml"):
            self._documents(rows)
            return
        lines = render(rows, self.output, now)
        if self.tty:
            self._frame(lines)
        else:
            self._append(rows, lines)

    def _changed(self, name: str, key: str) -> bool:
        if self.shown.get(name) == key:
            return False
        self.shown[name] = key
        return True

    def _documents(self, rows: list[dict[str, Any]]) -> None:
        import json

        for r in rows:
            if not self._changed(r["name"], repr({k: v for k, v in r.items() if k not in ("lastEvent",)})):
                continue
            if self.output == "yaml":
                click.echo("---")
                fmt.dump(r, self.output)
            else:
                click.echo(json.dumps(r, default=str))

    def _frame(self, lines: list[str]) -> None:
        frame = "\n".join(lines)
        if self.shown.get("") == frame:
            return
        if self.drawn:
            sys.stdout.write(f"\x1b[{self.drawn}F\x1b[J")
        sys.stdout.write(frame + "\n")
        sys.stdout.flush()
        self.drawn, self.shown[""] = len(lines), frame

    def _append(self, rows: list[dict[str, Any]], lines: list[str]) -> None:
        if "" not in self.shown and lines:
            click.echo(lines[0])
            self.shown[""] = lines[0]
        for r, line in zip(rows, lines[1:] if self.output != "name" else lines, strict=False):
            if self._changed(r["name"], repr({k: v for k, v in r.items() if k not in ("lastEvent", "lastTransitionAt")})):
                click.echo(line)
        sys.stdout.flush()


@click.command("events")
@click.argument("name", required=False, shell_complete=complete_names)
@click.option("--since", type=DURATION, help="Also print the rows of this long ago first (e.g. 10m).")
@click.option("--type", "types", multiple=True, help="Only events of this type (repeatable).")
@click.option("--limit", type=COUNT, default=None, help="Also print the newest N existing rows first.")
@fmt.output_option(("text", "json"), "text")
@click.pass_obj
@handled
def events(obj: Ctx, name: str | None, since: float | None, types: tuple[str, ...], limit: int | None,
           output: str, as_json: bool) -> None:
    """Stream audit rows (of NAME, or all) as they are written; Ctrl-C stops."""
    follow(obj, name, since, types, limit, fmt.pick_format(output, as_json), backlog=since is not None or bool(limit))


def follow(obj: Ctx, name: str | None, since: float | None, types: tuple[str, ...], limit: int | None,
           output: str, *, backlog: bool) -> None:
    from controller.cli import history_line

    def echo(e: Any) -> None:
        import json

        click.echo(json.dumps(e.to_json()) if output == "json" else history_line(e))

    store = obj.store
    last_id = store.last_event_id()
    if backlog:
        since_ts = time.time() - since if since is not None else None
        rows = store.history(name, since=since_ts, types=list(types) or None, limit=limit)
        for e in rows:
            echo(e)
        last_id = max([last_id, *[e.id or 0 for e in rows]])
    sys.stdout.flush()
    try:
        while True:
            new = store.events_after(last_id, service=name, types=list(types) or None)
            for e in new:
                echo(e)
                last_id = max(last_id, e.id or 0)
            if new:
                sys.stdout.flush()
            time.sleep(0.25)
    except KeyboardInterrupt:
        pass
