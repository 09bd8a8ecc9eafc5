"""Waiting from the command line: the progress display of `apply --wait`, `up` and
`wait`, the `wait` verb itself, and the report of a wait that cannot succeed.

Progress on a terminal is one live line per service (state, health, what it waits for),
redrawn in place; otherwise a plain timestamped line whenever a service's line changes;
``--quiet`` prints neither. The decision itself is ``controller.waiting`` (pure).
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any

import click

from controller.cli import DURATION, EXIT_FAILED, EXIT_INVALID, Ctx, complete_names, handled

if TYPE_CHECKING:
    from controller.operations import ApplyReport
    from controller.waiting import Verdict


class Progress:
    """Called with every new verdict; draws it (terminal: in place, else appended lines)."""

    def __init__(self, *, quiet: bool = False, tty: bool | None = None, stream: Any = None):
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.tty = self.stream.isatty() if tty is None else tty
        self._last: dict[str, str] = {}
        self._drawn = 0

    def __call__(self, v: Verdict) -> None:
        if self.quiet:
            return
        lines = {name: f"{'ok' if o.phase == 'done' else '!!' if o.phase == 'blocked' else '..'} {name}: {o.line()}"
                 for name, o in v.outcomes.items()}
        if self.tty:
            if lines == self._last:
                return
            if self._drawn:
                self.stream.write(f"\x1b[{self._drawn}F\x1b[J")
            for line in lines.values():
                self.stream.write(line[: 300] + "\n")
            self._drawn = len(lines)
        else:
            stamp = time.strftime("%H:%M:%S")
            for name, line in lines.items():
                if self._last.get(name) != line:
                    self.stream.write(f"{stamp} {line}\n")
        self._last = lines
        self.stream.flush()


def report_outcome(obj: Ctx, report: ApplyReport, timeout: float) -> None:
    """Print why a wait ended without success: what blocks what (with the failing
    container's last lines), or at the timeout what still waits on what."""
    from controller import operations as ops
    from controller.waiting import explain

    v = report.verdict
    if v is None or report.converged:
        return
    if v.blocked:
        click.echo("error: cannot converge:", err=True)
    elif report.errors:
        click.echo("error: stopped after the failures above:", err=True)
    else:
        click.echo(f"error: timed out after {timeout:g}s waiting for convergence:", err=True)
    for line in explain(v):
        click.echo(f"  {line}", err=True)
    if v.blocked:
        try:
            tails = ops.blocked_details(obj.store, obj.engine, v)
        except Exception:  # noqa: BLE001 - the explanation above stands on its own
            tails = {}
        for service, text in tails.items():
            click.echo(f"last output of {service}:", err=True)
            for line in text.splitlines()[-10:]:
                click.echo(f"  | {line}", err=True)


@click.command("wait")
@click.argument("names", nargs=-1, shell_complete=complete_names)
@click.option("--for", "goal", type=click.Choice(["healthy", "completed", "deleted"]), default="healthy",
              show_default=True, help="healthy: converged (and healthy where a healthcheck exists); "
              "completed: Jobs exited 0; deleted: gone with their containers.")
@click.option("--timeout", type=DURATION, default="5m", show_default=True, help="Give up after this long (exit 1).")
@click.option("-q", "--quiet", is_flag=True, help="No progress lines.")
@click.pass_obj
@handled
def wait(obj: Ctx, names: tuple[str, ...], goal: str, timeout: float, quiet: bool) -> None:
    """Wait until NAMEs (default: every resource) reach a state; exit 1 as soon as it is impossible.

    Works with or without a `reconcile run` controller: without one, each poll records
    what the engine shows (it does not act)."""
    from controller import operations as ops

    store = obj.store
    if goal != "deleted":
        unknown = [n for n in names if store.get(n) is None]
        if unknown:
            click.echo(f"error: no resource named {', '.join(unknown)}", err=True)
            sys.exit(EXIT_INVALID)

    def observe() -> None:
        ops.refresh(store, obj.engine, set(names) or None)

    report = ops.ApplyReport([])
    ops.wait_outcome(store, report, ops.WaitFor(set(names) or None, time.time() + timeout, goal=goal,  # type: ignore[arg-type]
                                                on_progress=Progress(quiet=quiet), observe=observe))
    if report.converged:
        if not quiet:
            click.echo(f"condition met: {goal}", err=True)
        return
    report_outcome(obj, report, timeout)
    sys.exit(EXIT_FAILED)
