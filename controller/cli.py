"""The ``reconcile`` command line: argument parsing and printing only.

Exit codes: 0 success, 1 a failure while converging (or the store/engine is
unavailable), 2 invalid input.
"""

from __future__ import annotations

if __name__ == "__main__":  # `python -m controller.cli`: the console entry point's path (no click for --help, version)
    from controller.cli_fast import main as _entry

    _entry()  # does not return (it runs this module's main() as controller.cli otherwise)

import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from dataclasses import fields as dataclass_fields
from functools import wraps
from typing import TYPE_CHECKING, Any

import click

from controller import operations as ops
from controller.errors import EngineUnavailable, ReconcileError
from crd_like.errors import InvalidSpec
from store.errors import StoreError

if TYPE_CHECKING:
    from rich.console import Console

    from controller.loop import LoopOptions
    from store import Store
    from store.reader import Reader

# A read verb must not pay for what it does not use: rich, loguru, SQLAlchemy, pydantic and
# the Docker SDK load inside the code that needs them (`python -X importtime -m
# controller.cli status` shows what a verb imports; bench/cli.py times the verbs).

EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2


def escape(text: str) -> str:
    """rich.markup.escape, loaded when a message is actually printed."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)


class _LazyConsole:
    """The CLI's Rich console, built on first use (Rich costs ~40 ms to import).

    ``print(str, markup=False)`` of plain text (printable lines, no tabs or control
    characters) writes the text itself: Rich would print exactly the same characters
    (no highlight, no emoji, soft wrap), which tests/unit/test_cli_output.py checks. Anything
    else (markup, tables, styles) goes to the real Console; ``.real`` is that Console, for
    code that hands a console to Rich (Live, Progress)."""

    def __init__(self, *, stderr: bool):
        self._stderr = stderr
        self._real: Console | None = None

    @property
    def real(self) -> Console:
        if self._real is None:
            from rich.console import Console

            # Not a terminal (pipes, CI logs): wide lines instead of wrapped table cells. No
            # emoji: what is printed includes the user's values, and Rich would turn
            # ':warning:' into a symbol even with markup=False.
            stream = sys.stderr if self._stderr else sys.stdout
            self._real = Console(stderr=self._stderr, highlight=False, emoji=False, soft_wrap=True,
                                 width=None if stream.isatty() else 200)
        return self._real

    def print(self, *objects: Any, markup: bool | None = None, **kwargs: Any) -> None:
        if (markup is False and not kwargs and len(objects) == 1 and isinstance(objects[0], str)
                and plain_text(objects[0])):
            stream = sys.stderr if self._stderr else sys.stdout
            stream.write(objects[0] + "\n")
            stream.flush()  # as Rich does after every print: stdout and stderr lines keep their order
            return
        self.real.print(*objects, markup=markup, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def plain_text(text: str) -> bool:
    """Text Rich would print unchanged: printable lines (no tabs, escapes or control codes)."""
    return all(line.isprintable() for line in text.split("\n"))


out = _LazyConsole(stderr=False)
err = _LazyConsole(stderr=True)

PIPE_WIDTH = 200  # the console width when stdout is not a terminal (see _LazyConsole.real)


def plain_table(headers: list[str], rows: list[list[str]], width: int = PIPE_WIDTH) -> str | None:
    """The text Rich prints for ``Table(box=None, pad_edge=False)`` of these cells on a
    non-terminal ``width`` columns wide, or None when only Rich can say (a cell that is not
    plain ASCII, a "[" that Rich may read as markup, or a table wider than ``width``, which
    Rich would wrap or shrink). Rendering 200 rows through Rich took as long as the rest of
    ``status``; tests/unit/test_cli_output.py checks this against Rich itself."""
    cells = [headers, *rows]
    if any(not (c.isascii() and c.isprintable()) or "[" in c for row in cells for c in row):
        return None
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    if sum(widths) + 2 * (len(widths) - 1) > width:
        return None
    return "".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) + "\n" for row in cells)


def print_table(headers: list[str], rows: list[list[str]]) -> None:
    """A table on stdout: the plain rendering when stdout is a pipe or file (the same
    characters Rich would print), Rich's own on a terminal (styles, wrapping)."""
    env_forces_tty = any(k in os.environ for k in ("FORCE_COLOR", "TTY_COMPATIBLE"))
    text = None if sys.stdout.isatty() or env_forces_tty else plain_table(headers, rows)
    if text is not None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for col in headers:
        table.add_column(col)
    for row in rows:
        table.add_row(*row)
    out.real.print(table)


class DurationType(click.ParamType):  # type: ignore[type-arg]  # generic since click 8.2
    """A duration option (``90s``, ``1m30s``, ``2h``) parsed by click, so that a bad value is
    a usage error (exit 2) before the command runs, and the command gets seconds."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, float):
            return value
        from crd_like.units import parse_duration  # its patterns compile on import: only when a duration is given

        try:
            return parse_duration(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


DURATION = DurationType()
# Counts that reach SQLite, which takes at most a signed 64-bit integer.
COUNT = click.IntRange(1, 2**63 - 1)


def setup_logging(level: str, as_json: bool) -> None:
    """Configure loguru, or, if it is not loaded yet, configure it the moment it is imported:
    verbs that never log (status, describe, history) then never import it (~40 ms)."""
    if "loguru" in sys.modules:
        _configure_logging(level, as_json)
        return
    for finder in list(sys.meta_path):
        if isinstance(finder, _ConfigureOnImport):
            sys.meta_path.remove(finder)
    sys.meta_path.insert(0, _ConfigureOnImport(level, as_json))


def _configure_logging(level: str, as_json: bool) -> None:
    from loguru import logger

    logger.remove()
    if as_json:
        logger.add(sys.stderr, level=level.upper(), serialize=True)
    else:
        logger.add(sys.stderr, level=level.upper(), format="<green>{time:HH:mm:ss}</green> {level: <7} {message}",
                   colorize=None)


class _ConfigureOnImport:
    """A one-shot import hook: runs ``_configure_logging`` right after ``loguru`` is imported."""

    def __init__(self, level: str, as_json: bool):
        self.level, self.as_json = level, as_json

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name != "loguru":
            return None
        import importlib.util

        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        loader, level, as_json = spec.loader, self.level, self.as_json
        exec_module = loader.exec_module

        def exec_then_configure(module: Any) -> None:
            exec_module(module)
            sys.modules[name] = module
            _configure_logging(level, as_json)

        loader.exec_module = exec_then_configure  # type: ignore[method-assign]
        return spec


class Ctx:
    def __init__(self, db: str | None, host: str | None = None, context: str | None = None):
        self.db = db
        self.host = host
        self.context = context
        self._store: Store | None = None
        self._reader: Reader | None = None
        self._engine: Any = None

    @property
    def store(self) -> Store:
        if self._store is None:
            from controller import notify_rules
            from store import Store

            self._store = Store.open(self.db)
            notify_rules.install(self._store)  # audit rows worth a message fill the outbox
        return self._store

    @property
    def reader(self) -> Reader:
        """The store for a verb that only reads: ``store.reader.open_reader`` (the standard
        library's sqlite3 on a SQLite store at head, which keeps SQLAlchemy's import off
        the read verbs; else the full store)."""
        if self._store is not None:
            return self._store
        if self._reader is None:
            from store.reader import open_reader

            self._reader = open_reader(self.db)
        return self._reader

    def close(self) -> None:
        """Close the store (its connections) when the command ends: main() exits without
        interpreter teardown, so nothing else would."""
        if self._reader is not None and self._reader is not self._store:
            self._reader.close()
        self._reader = None
        if self._store is not None:
            self._store.close()
            self._store = None

    @property
    def engine(self) -> Any:
        if self._engine is None:
            from controller.contexts import resolve_host
            from controller.engine import Engine

            try:
                self._engine = Engine(base_url=resolve_host(self.host, self.context))
            except ValueError as exc:  # a malformed RECONCILE_ENGINE_TIMEOUTS
                err.print(f"[red]error:[/red] {escape(str(exc))}")
                sys.exit(EXIT_INVALID)
        return self._engine


def handled(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Map the error tree onto exit codes with a clear message."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except InvalidSpec as exc:
            err.print("[red]error:[/red] invalid input")
            for issue in exc.issues:
                err.print(f"  {issue}", markup=False)
            sys.exit(EXIT_INVALID)
        except StoreError as exc:
            err.print(f"[red]error:[/red] {escape(str(exc))}")
            sys.exit(EXIT_FAILED)
        except EngineUnavailable as exc:
            err.print(f"[red]error:[/red] {escape(str(exc))}. Is dockerd running? (scripts/ensure-docker.sh starts one)")
            sys.exit(EXIT_FAILED)
        except ReconcileError as exc:
            err.print(f"[red]error:[/red] {escape(str(exc))}")
            sys.exit(EXIT_FAILED)
        except Exception as exc:
            if StoreError.wraps(exc):  # disk full, read-only, locked: the store's own failures
                err.print(f"[red]error:[/red] the store cannot be written or read: {escape(StoreError.describe(exc))}")
                sys.exit(EXIT_FAILED)
            raise

    return wrapper


class Inputs:
    """What a verb that reads YAML reads: the files (given, or found as compose finds them,
    see ``controller.inputs``) and the load options."""

    def __init__(self, files: list[str], opts: Any):
        self.files, self.opts = files, opts

    def notices(self) -> None:
        """Print the loader's info lines (once per stack: who is not restarted) on stderr."""
        for line in self.opts.notices:
            err.print(f"note: {line}", markup=False)


def read_inputs(files: tuple[str, ...], *, fmt: str = "auto", project: str | None = None,
                profiles: tuple[str, ...] = (), allow_unsupported: bool = False, env_files: tuple[str, ...] = (),
                project_dir: str | None = None) -> Inputs:
    """The files a verb reads (given, or found as compose finds them, see ``controller.inputs``)
    and the load options; a discovery problem is invalid input (exit 2)."""
    import os

    from controller.inputs import input_files

    try:
        found = input_files(files, os.environ, project_dir or os.getcwd())
    except InvalidSpec as exc:
        err.print("[red]error:[/red] invalid input")
        for issue in exc.issues:
            err.print(f"  {issue}", markup=False)
        sys.exit(EXIT_INVALID)
    if found.warnings:
        from loguru import logger

        for w in found.warnings:
            logger.warning(w)
    opts = ops.load_options(fmt=fmt, project=project, profiles=tuple(profiles), allow_unsupported=allow_unsupported,
                            project_dir=project_dir, env_files=tuple(env_files))
    return Inputs(found.files, opts)


def input_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The options every verb that reads YAML shares (native or compose); the verb gets
    them as one ``inputs: Inputs`` argument. The one path by which verbs read input."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        given = {k: kwargs.pop(k) for k in _INPUT_OPTIONS}
        return fn(*args, inputs=read_inputs(given.pop("files"), **given), **kwargs)

    out: Callable[..., Any] = wrapper
    out = click.option("-f", "--file", "files", multiple=True,
                       help="YAML file, native or compose (repeatable, merged in order; '-' for stdin). Default: "
                            "COMPOSE_FILE, else compose.yaml & co. (and its override file) found in the working "
                            "directory or a parent, as docker compose finds them.")(out)
    out = click.option("--format", "fmt", type=click.Choice(["auto", "native", "compose"]), default="auto",
                       show_default=True, help="Input format; auto detects compose files by shape.")(out)
    out = click.option("-p", "--project-name", "project", default=None,
                       help="Compose project name (default: COMPOSE_PROJECT_NAME, `name:` in the file, "
                            "else the project directory's name).")(out)
    out = click.option("--profile", "profiles", multiple=True,
                       help="Activate a compose profile (repeatable; default: COMPOSE_PROFILES).")(out)
    out = click.option("--allow-unsupported", is_flag=True,
                       help="Compose keys reconcile does not support yet become warnings, not errors.")(out)
    out = click.option("--env-file", "env_files", multiple=True, type=click.Path(dir_okay=False),
                       help="Compose: read variables from this file instead of <project dir>/.env (repeatable).")(out)
    out = click.option("--project-directory", "project_dir", default=None, type=click.Path(file_okay=False),
                       help="Compose: the directory relative paths, .env and the default project name come "
                            "from (default: the first file's directory).")(out)
    return out


# the click parameters of input_options, read_inputs' arguments of the same names
_INPUT_OPTIONS = ("files", "fmt", "project", "profiles", "allow_unsupported", "env_files", "project_dir")


def options_into(cls: type[Any], param: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Hand a command the click options named as the fields of the frozen dataclass ``cls``
    as one ``cls`` value, its argument ``param``: a verb keeps a few parameters however many
    flags it has (the flags and their help stay the click options', unchanged)."""
    names = tuple(f.name for f in dataclass_fields(cls))

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            grouped = cls(**{k: kwargs.pop(k) for k in names})
            return fn(*args, **{param: grouped}, **kwargs)

        return wrapper

    return decorate


def load_input(files: tuple[str, ...], fmt: str = "auto", project: str | None = None,
               profiles: tuple[str, ...] = (), allow_unsupported: bool = False) -> tuple[list[str], Any]:
    """``read_inputs`` as (files, load options), for verbs that take their own options."""
    inputs = read_inputs(files, fmt=fmt, project=project, profiles=profiles, allow_unsupported=allow_unsupported)
    return inputs.files, inputs.opts


def complete_names(ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[str]:
    """Shell completion of resource names from the store (nothing when it cannot be opened)."""
    try:
        from store import Store

        root = ctx.find_root()
        db = root.params.get("db") if root.params else None
        return sorted(n for n in Store.open(db, migrate=False).desired() if n.startswith(incomplete))
    except Exception:  # noqa: BLE001 - completion must never fail loudly
        return []


def _ts(ts: float | None) -> str:
    if not ts:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def _dump(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False, default=str))


def _version_flag(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    """``--version``: the options before it (--db, -H, --context) are parsed already."""
    if not value or ctx.resilient_parsing:
        return
    from controller.cli_info import print_version

    import os

    p = ctx.params  # click processes options not on the command line last: fall back to the env
    ctx.exit(print_version(Ctx(p.get("db") or os.environ.get("RECONCILE_DB"), p.get("host"), p.get("context")), "text"))


SHORT_HELP = {
    "apply": "store FILEs' desired state and converge the host (--wait: until done)",
    "up": "apply FILEs (default: ./compose.yaml) and wait until converged",
    "down": "remove exactly the services of FILEs or of compose project -p",
    "diff": "the plan for FILEs, field by field (exit 0 none, 1 differences)",
    "convert": "print compose FILEs as native reconcile YAML",
    "get": "list resources: -o wide|json|yaml|name, -l selector, -w watch",
    "ps": "same as get",
    "status": "per service: generations, state, health, restarts, last event",
    "describe": "one resource in detail: spec, status, last probe, events",
    "history": "the audit rows of NAME or all (-f follows new ones)",
    "events": "stream audit rows as they are written",
    "logs": "output of every replica of NAMEs or of project -p (-f follows)",
    "exec": "run a command in a service's container (exec NAME -- CMD...)",
    "wait": "wait until NAMEs are healthy, completed or deleted",
    "delete": "remove resources: NAMEs, -f FILE, -l SELECTOR or --all",
    "restart": "restart exactly one service (audited)",
    "rollback": "return NAME to an earlier revision",
    "suspend": "maintenance mode: the controller leaves NAME alone",
    "resume": "end maintenance mode for NAME",
    "run": "the controller: converge continuously and heal what breaks (--node: a node's agent)",
    "nodes": "the registered nodes: state, heartbeat, what runs there",
    "cordon": "place no new replicas on NODE",
    "uncordon": "place new replicas on NODE again",
    "drain": "move NODE's movable replicas to other nodes",
    "export": "the whole desired state as re-appliable YAML",
    "schema": "JSON Schema of the resource kinds",
    "db": "the store: upgrade, current, backup, restore, check",
    "version": "client, engine and store versions",
    "completion": "shell completion script for bash, zsh or fish",
}


class LazyGroup(click.Group):
    """A group whose ``lazy`` verbs (name -> "module:attribute") are imported when used."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy: dict[str, str] = {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self.lazy))

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """One line per verb, never cut: the lines of SHORT_HELP (the docstrings say more)."""
        rows = [(name, SHORT_HELP.get(name) or (self.get_command(ctx, name) or click.Command(name)).get_short_help_str(80))
                for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows, col_max=12)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = self.lazy.get(cmd_name)
        if target is None:
            return super().get_command(ctx, cmd_name)
        import importlib

        module, attr = target.split(":")
        cmd: click.Command = getattr(importlib.import_module(module), attr)
        return cmd


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--db", envvar="RECONCILE_DB", help="Store location: a file path or an SQLAlchemy URL "
              "[env RECONCILE_DB; default /var/lib/reconcile/reconcile.db as root, "
              "~/.local/state/reconcile/reconcile.db otherwise].")
@click.option("--log-level", default="INFO", show_default=True, envvar="RECONCILE_LOG_LEVEL",
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False))
@click.option("--log-json", is_flag=True, help="Log JSON lines (for machines) instead of text.")
@click.option("-H", "--host", default=None, help="Engine address (unix:///var/run/docker.sock, tcp://HOST:2376, "
              "ssh://...); default DOCKER_HOST, else the docker context.")
@click.option("--context", default=None, help="Docker context to use (see `docker context ls`) "
              "[env DOCKER_CONTEXT].")
@click.option("--version", is_flag=True, expose_value=False, callback=_version_flag,
              help="Print client, engine and store versions (as `reconcile version`) and exit.")
@click.pass_context
def cli(ctx: click.Context, db: str | None, log_level: str, log_json: bool, host: str | None,
        context: str | None) -> None:
    """reconcile keeps a Docker host converged to the services you describe in YAML.

    Desired state lives in a store (SQLite by default); `apply` (or `up`) stores it and
    converges the host, `run` keeps converging and healing it. The engine is -H/--host,
    else DOCKER_HOST, else the docker context. Exit codes: 0 ok, 1 failure while
    converging, 2 invalid input.
    """
    setup_logging(log_level, log_json)
    ctx.obj = Ctx(db, host, context)
    ctx.call_on_close(ctx.obj.close)


@dataclass(frozen=True)
class ApplyFlags:
    """apply's (and up's) options besides the input options, as one value."""

    prune: bool = False
    dry_run: bool = False
    wait: bool = False
    volumes: bool = False
    timeout: float = 300.0
    as_json: bool = False
    quiet: bool = False
    node: str | None = None


@cli.command()
@click.option("--prune", is_flag=True, help="Remove services that earlier applies of the same files created "
              "and these files no longer name.")
@click.option("--dry-run", is_flag=True, help="Validate and print the plan; write nothing, touch nothing.")
@click.option("--wait", is_flag=True, help="Return only when converged (healthy where a healthcheck exists).")
@click.option("--volumes", is_flag=True, help="With --prune: also remove the named volumes of pruned services "
              "(their data is lost). Never done otherwise.")
@click.option("--timeout", type=DURATION, default="5m", show_default=True, help="How long to wait for convergence.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("-q", "--quiet", is_flag=True, help="With --wait: no progress lines.")
@click.option("--node", default=None, help="Many hosts: run the resources that have no placement of their own "
              "on node NAME (default: the only node, or RECONCILE_DEFAULT_NODE).")
@input_options
@click.pass_obj
@handled
@options_into(ApplyFlags, "flags")
def apply(obj: Ctx, inputs: Inputs, flags: ApplyFlags) -> None:
    """Validate FILEs, store the desired state (one transaction), converge the host.

    A changed spec bumps its generation; an unchanged one performs no engine action.
    While a `reconcile run` controller holds the lease, apply only stores the change
    and (with --wait) waits for the controller to converge it. --wait exits 1 as soon
    as convergence is impossible (a Job gave up, an image is missing, a port is taken),
    saying which service blocks which, with the failing container's last lines.
    """
    if flags.volumes and not flags.prune:
        raise click.UsageError("--volumes only applies with --prune")
    apply_and_report(obj, inputs.files, inputs.opts, replace(flags, quiet=flags.quiet or flags.as_json))


def apply_and_report(obj: Ctx, files: list[str], opts: Any, flags: ApplyFlags) -> None:
    """apply (and up): store, converge, print what was done; exit 1 when it failed."""
    progress = None
    if flags.wait and not flags.dry_run:
        from controller.cli_wait import Progress

        progress = Progress(quiet=flags.quiet)
    report = ops.apply(obj, files, opts=opts, how=ops.ApplyOptions(
        prune=flags.prune, dry_run=flags.dry_run, volumes=flags.volumes, node=flags.node,
        run=ops.RunOptions(wait=flags.wait, timeout=flags.timeout, on_progress=progress)))
    for line in getattr(opts, "notices", None) or []:  # once per stack: who is not restarted, ...
        err.print(f"note: {line}", markup=False)
    if flags.as_json:
        _dump(_apply_json(report, flags.dry_run))
    else:
        _print_apply(obj, report, flags)
    if report.errors or report.converged is False:
        sys.exit(EXIT_FAILED)


def _apply_json(report: ops.ApplyReport, dry_run: bool) -> dict[str, Any]:
    return {
        "changes": [{"name": c.name, "kind": c.kind, "change": c.change, "generation": c.generation,
                     "changedFields": report.field_diffs.get(c.name, [])} for c in report.changes],
        "actions": ops.action_list(report.plan.actions) if report.plan and dry_run else [],
        "done": report.done, "errors": report.errors, "delegatedTo": report.delegated_to,
        "converged": report.converged, "dryRun": dry_run,
        "blocked": [_blocked_json(o) for o in (report.verdict.blocked if report.verdict else [])],
    }


def _blocked_json(o: Any) -> dict[str, Any]:
    cause = o.cause
    return {"service": o.name, "blockedBy": cause.service if cause else "", "reason": cause.reason if cause else "",
            "path": list(o.path)}


def _print_apply(obj: Ctx, report: ops.ApplyReport, flags: ApplyFlags) -> None:
    """apply's text output: the stored changes, then what was (or would be) done."""
    _print_changes(report)
    _print_done(report, flags.dry_run)
    for e in dict.fromkeys(report.errors):
        err.print(f"[red]failed:[/red] {escape(e)}")
    if report.converged is False:
        from controller.cli_wait import report_outcome

        report_outcome(obj, report, flags.timeout)
    elif flags.wait and report.converged and not flags.dry_run:
        out.print("converged", markup=False)


def _print_done(report: ops.ApplyReport, dry_run: bool) -> None:
    """What was done (or, in a dry run, would be), or who does it."""
    if dry_run:
        lines = ops.plan_lines(report.plan) if report.plan else []
        out.print("dry run, nothing written; plan:" if lines else "dry run: nothing to do", markup=False)
        for line in lines:
            out.print(f"  would {line}", markup=False)
    elif report.delegated_to:
        out.print(f"stored; {converger(report.delegated_to, 'converges')} it", markup=False)
    else:
        for line in report.done:
            out.print(line, markup=False)
        if not report.done and not report.errors:
            out.print("host already converged: no actions", markup=False)


def _print_changes(report: ops.ApplyReport) -> None:
    """One line per created or changed record (with its changed fields), then a count of the rest."""
    for c in report.changes:
        if c.change == "unchanged":
            continue
        changed = report.field_diffs.get(c.name)
        extra = f" ({', '.join(changed)})" if changed else ""
        out.print(f"{c.kind.lower()}/{c.name} {c.change}, generation {c.generation}{extra}", markup=False)
    unchanged = sum(1 for c in report.changes if c.change == "unchanged")
    if unchanged:
        out.print(f"{unchanged} unchanged", markup=False)


EXIT_DIFF_ERROR = 3  # diff: 0 no differences, 1 differences, > 1 error (as `kubectl diff`)


@cli.command()
@click.option("--prune", is_flag=True, help="Include the removals --prune would make.")
@click.option("--json", "as_json", is_flag=True)
@input_options
@click.pass_obj
def diff(obj: Ctx, inputs: Inputs, prune: bool, as_json: bool) -> None:
    """Show the plan for FILEs (merged in order), field by field, without acting or writing.

    Exits as `kubectl diff`: 0 no differences, 1 differences, 2 invalid input, 3 other errors.
    Stored secret values show as a placeholder."""
    try:
        differs = handled(_diff)(obj, inputs, prune, as_json)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else EXIT_DIFF_ERROR
        sys.exit(EXIT_DIFF_ERROR if code == EXIT_FAILED else code)
    except (click.ClickException, click.exceptions.Exit, click.Abort):
        raise
    except Exception as exc:  # noqa: BLE001 - any other failure is "> 1", never "differences"
        err.print(f"[red]error:[/red] {escape(str(exc))}")
        sys.exit(EXIT_DIFF_ERROR)
    sys.exit(1 if differs else 0)


def _diff(obj: Ctx, inputs: Inputs, prune: bool, as_json: bool) -> bool:

    report = ops.apply(obj, inputs.files, opts=inputs.opts, how=ops.ApplyOptions(prune=prune, dry_run=True))
    inputs.notices()
    actions = report.plan.actions if report.plan else []
    differs = bool(actions) or any(c.change != "unchanged" for c in report.changes)
    if as_json:
        _dump({"changes": [{"name": c.name, "change": c.change, "generation": c.generation,
                            "changedFields": report.field_diffs.get(c.name, [])} for c in report.changes],
               "actions": ops.action_list(actions), "differences": differs})
        return differs
    for c in report.changes:
        if c.change != "unchanged":
            _print_field_diffs(c, report.field_diffs.get(c.name, []))
    if actions:
        out.print("plan:", markup=False)
        for line in ops.plan_lines(report.plan):  # type: ignore[arg-type]
            out.print(f"  {line}", markup=False)
    else:
        out.print("no engine actions needed", markup=False)
    return differs


def _print_field_diffs(c: Any, changed: list[str]) -> None:
    """One changed record, field by field (every field of a created one); secret values redacted."""
    from crd_like.secrets import redact_spec

    out.print(f"{c.kind.lower()}/{c.name}: {c.change}", markup=False)
    old, new = redact_spec(c.old_spec or {}), redact_spec(c.new_spec or {})
    for f in changed or (sorted(new) if c.change == "created" else []):
        out.print(f"  {f}: {_get(old, f)!r} -> {_get(new, f)!r}", markup=False)


def _get(data: dict[str, Any], dotted: str) -> Any:
    cur: Any = data
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


@cli.command()
@click.option("-o", "--output", "output", type=click.Choice(["table", "json", "yaml"]), default="table",
              show_default=True, help="Output format.")
@click.option("--json", "as_json", is_flag=True, help="Same as -o json.")
@click.pass_obj
@handled
def status(obj: Ctx, output: str, as_json: bool) -> None:
    """Per service: generation, observed generation, state, health, container, restarts, last event."""
    rows = ops.status_rows(obj.reader)
    if as_json or output != "table":
        from controller.cli_output import dump

        dump(rows, "json" if as_json else output)
        return
    rows_text = []
    for r in rows:
        ev = r["lastEvent"]
        last = f"{ev['type']} {_ago(ev['ts'])}: {ev['reason']}"[:70] if ev else "-"
        state = r["state"]
        if r["nextAttemptAt"]:
            state += f" (next {time.strftime('%H:%M:%S', time.localtime(r['nextAttemptAt']))})"
        rows_text.append([r["name"], r["kind"], str(r["generation"]), str(r["observedGeneration"]), state,
                          r["health"] or "-", r["containerId"] or "-", str(r["restartCount"]), last])
    if not rows:
        out.print("no resources; `reconcile apply -f FILE` adds some", markup=False)
    else:
        print_table(["NAME", "KIND", "GEN", "OBSERVED", "STATE", "HEALTH", "CONTAINER", "RESTARTS", "LAST EVENT"],
                    rows_text)


def _ago(ts: float) -> str:
    s = max(0, int(time.time() - ts))
    if s < 120:
        return f"{s}s ago"
    if s < 7200:
        return f"{s // 60}m ago"
    return f"{s // 3600}h ago"


@cli.command()
@click.argument("name", shell_complete=complete_names)
@click.option("-o", "--output", "output", type=click.Choice(["text", "json", "yaml"]), default="text",
              show_default=True, help="Output format.")
@click.option("--json", "as_json", is_flag=True, help="Same as -o json.")
@click.pass_obj
@handled
def describe(obj: Ctx, name: str, output: str, as_json: bool) -> None:
    """Spec, status, the last health probe and recent events of one service (as `kubectl describe`)."""
    from controller.cli_describe import describe_resource

    describe_resource(obj, name, "json" if as_json else output)


@dataclass(frozen=True)
class HistoryFilter:
    """Which audit rows ``history`` shows: newer than ``since`` seconds ago, of ``types``,
    the newest ``limit``."""

    since: float | None
    types: tuple[str, ...]
    limit: int | None


def history_line(e: Any) -> str:
    cid = f" [{e.container_id[:12]}]" if e.container_id else ""
    msg = f" — {e.message}" if e.message else ""
    return f"{_ts(e.ts)} {e.service:<20} {e.type:<14} {e.actor:<10} {e.reason}{msg}{cid}"


@cli.command()
@click.argument("name", required=False)
@click.option("--since", type=DURATION, help="Only events newer than this (e.g. 1h, 30m, 2d).")
@click.option("--type", "types", multiple=True, help="Only events of this type (repeatable).")
@click.option("--limit", type=COUNT, default=None, help="At most this many (the newest).")
@click.option("--revisions", is_flag=True, help="List NAME's stored revisions (every applied spec) instead.")
@click.option("-f", "--follow", is_flag=True, help="Then keep printing new rows as they are written (as `events`).")
@click.option("-o", "--output", "output", type=click.Choice(["text", "json", "yaml"]), default="text",
              show_default=True, help="Output format (with --follow: text or json lines).")
@click.option("--json", "as_json", is_flag=True, help="Same as -o json.")
@click.pass_obj
@handled
@options_into(HistoryFilter, "query")
def history(obj: Ctx, name: str | None, query: HistoryFilter, revisions: bool, follow: bool, output: str,
            as_json: bool) -> None:
    """The audit history (newest last): what happened to NAME (or all) and why."""
    output = "json" if as_json else output
    if follow:
        if revisions:
            raise click.UsageError("--follow does not go with --revisions")
        from controller.cli_get import follow as follow_rows

        follow_rows(obj, name, query.since, query.types, query.limit, output if output == "json" else "text",
                    backlog=True)
    elif revisions:
        if not name:
            raise click.UsageError("--revisions needs a NAME")
        _revisions(obj, name, output)
    elif output == "yaml":
        from controller.cli_output import dump

        dump([e.to_json() for e in _history_rows(obj, name, query)], "yaml")
    elif output == "json":
        _dump([e.to_json() for e in _history_rows(obj, name, query)])
    else:
        for e in _history_rows(obj, name, query):
            out.print(history_line(e), markup=False)


def _history_rows(obj: Ctx, name: str | None, query: HistoryFilter) -> list[Any]:
    since_ts = time.time() - query.since if query.since is not None else None
    return list(obj.reader.history(name, since=since_ts, types=list(query.types) or None, limit=query.limit))


def _revisions(obj: Ctx, name: str, output: str) -> None:
    """``history NAME --revisions``: every stored spec of NAME, the current one marked."""
    from crd_like.secrets import redact_spec

    revs = obj.reader.revisions(name)
    if output == "yaml":
        from controller.cli_output import dump

        dump([{"generation": r.generation, "specHash": r.spec_hash, "appliedAt": r.applied_at, "spec": redact_spec(r.spec)}
              for r in revs], "yaml")
        return
    current = obj.reader.get(name)
    if output == "json":
        _dump([{"generation": r.generation, "specHash": r.spec_hash, "appliedAt": r.applied_at,
                "current": bool(current and current.generation == r.generation),
                "spec": redact_spec(r.spec)} for r in revs])
        return
    for r in revs:
        mark = "*" if current and current.generation == r.generation else " "
        out.print(f"{mark} {r.generation:>4}  {_ts(r.applied_at)}  {r.spec_hash}  image={r.spec.get('image')}", markup=False)


@dataclass(frozen=True)
class RunFlags:
    """``run``'s options, as one value; ``loop_options`` is what the controller takes."""

    resync_interval: float
    lease_ttl: float
    workers: int
    max_restarts_per_minute: int
    metrics_addr: str | None
    history_retention: float
    history_max_rows: int
    watch_files: bool
    ui_token_file: str | None
    node: str | None
    node_labels: tuple[str, ...]

    def loop_options(self) -> LoopOptions:
        """The controller's options; InvalidSpec (exit 2) for an address beyond loopback
        without a token file, or an unusable token file (controller.pageapi)."""
        from controller.loop import LoopOptions
        from controller.pageapi import token_for

        return LoopOptions(resync_interval=self.resync_interval, lease_ttl=self.lease_ttl,
                           workers=self.workers, restarts_per_minute=self.max_restarts_per_minute,
                           metrics_addr=self.metrics_addr, history_retention=self.history_retention or None,
                           history_max_rows=self.history_max_rows or None, watch_files=self.watch_files,
                           ui_token=token_for(self.metrics_addr, self.ui_token_file))


@cli.command()
@click.option("--resync-interval", type=DURATION, default="5s", show_default=True, help="Full resync period.")
@click.option("--lease-ttl", type=DURATION, default="15s", show_default=True,
              help="Lease expiry; a dead holder's lease is taken over after it.")
@click.option("--workers", default=4, show_default=True, help="Concurrent engine actions (cap).")
@click.option("--max-restarts-per-minute", default=30, show_default=True, help="Host-wide restart limit (storm control).")
@click.option("--metrics-addr", default=None,
              help="Serve the status page (/), /metrics and /healthz on HOST:PORT, e.g. 127.0.0.1:9310.")
@click.option("--ui-token-file", default=None, type=click.Path(dir_okay=False),
              help="A file holding the bearer token the page's data and /metrics require; needed when "
                   "--metrics-addr is not a loopback address.")
@click.option("--history-retention", type=DURATION, default="90d", show_default=True,
              help="Prune audit rows older than this ('0' keeps all).")
@click.option("--history-max-rows", default=2_000_000, show_default=True, help="Keep at most this many audit rows (0 = no cap).")
@click.option("--watch-files/--no-watch-files", default=True, show_default=True,
              help="Notice edits of referenced files (bind mounts, env and secret files) at once through the OS's "
                   "file notifications; without, at the next resync.")
@click.option("--node", default=None, help="Run as the agent of node NAME (many hosts, docs/MULTI-HOST.md): "
              "register it, hold its node lease, run only the replicas placed on it.")
@click.option("--node-label", "node_labels", multiple=True, metavar="K=V",
              help="A label of this node (repeatable), for placement's nodeSelector and spread.")
@click.pass_obj
@handled
@options_into(RunFlags, "flags")
def run(obj: Ctx, flags: RunFlags) -> None:
    """Run the controller: converge continuously and heal what breaks.

    Holds a lease in the store so only one controller acts on this host; a second
    `run` waits for the lease. Stops cleanly on SIGTERM/SIGINT (containers keep running).
    With --node NAME it is that node's agent instead: a second agent for the same node
    exits 1 while the first one's node lease is live (RECONCILE_NODE_TTL, default 15 s).
    """
    from controller.loop import Controller

    opts = flags.loop_options()  # before the store and the engine: a bad address opens nothing
    agent_opts = _agent_options(flags)
    if agent_opts is None:
        if obj.store.nodes.count():  # a host-wide controller would act on every node's replicas here
            err.print("nodes are registered in this store (see `reconcile nodes`): run this host as one of "
                      "them, `reconcile run --node NAME` (docs/MULTI-HOST.md)", markup=False)
            sys.exit(EXIT_INVALID)
        sys.exit(Controller(obj.store, obj.engine, opts).run())
    from controller.agent import Agent

    agent = Agent(obj.store, obj.engine, agent_opts)
    holder = obj.store.nodes.live_holder(agent_opts.node) if obj.store.nodes.node(agent_opts.node) else ""
    if holder and not _dead(holder):
        err.print(f"node {agent_opts.node} is held by {holder}, whose node lease is live; "
                  "not starting a second agent for it", markup=False)
        sys.exit(EXIT_FAILED)
    agent.register()
    sys.exit(Controller(obj.store, obj.engine, opts, agent=agent).run())


def _dead(holder: str) -> bool:
    from controller.lease import holder_is_dead

    return holder_is_dead(holder)


def _agent_options(flags: RunFlags) -> Any:
    """The agent's options for ``run --node`` (None without it); exit 2 for a bad name or label."""
    import os
    import re

    if flags.node is None:
        if flags.node_labels:
            err.print("--node-label needs --node NAME", markup=False)
            sys.exit(EXIT_INVALID)
        return None
    from controller.agent import AgentOptions, node_ttl

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}", flags.node):
        err.print(f"--node {flags.node!r}: expected a node name of letters, digits, '.', '_' or '-' "
                  "(at most 63 characters)", markup=False)
        sys.exit(EXIT_INVALID)
    labels: dict[str, str] = {}
    for item in flags.node_labels:
        key, sep, value = item.partition("=")
        if not sep or not key:
            err.print(f"--node-label {item!r}: expected KEY=VALUE", markup=False)
            sys.exit(EXIT_INVALID)
        labels[key] = value
    return AgentOptions(flags.node, labels, node_ttl(dict(os.environ)),
                        os.environ.get("RECONCILE_DEFAULT_NODE") or None)


@cli.command()
@click.argument("name")
@click.option("--reason", default="requested by operator", show_default=True, help="Why (kept in the audit).")
@click.option("--with-dependents", is_flag=True, help="Also restart what depends on NAME, after it, in dependency order.")
@click.pass_obj
@handled
def restart(obj: Ctx, name: str, reason: str, with_dependents: bool) -> None:
    """Restart exactly one service's containers (others untouched), audited with actor `cli`."""
    now = time.time()
    if not obj.store.request_restart(name, reason=reason, actor="cli", now=now):
        err.print(f"no resource named {name!r}", markup=False)
        sys.exit(EXIT_INVALID)
    from controller.planner import dependents
    from controller.render import prepare

    desired = {n: prepare(n, r.kind, r.generation, r.spec) for n, r in obj.store.desired().items()}
    # dependents are converged too: those with dependsOn.NAME.restart cascade by themselves
    names = {name} | dependents(desired, name)
    if with_dependents:
        for dep in sorted(dependents(desired, name)):
            obj.store.request_restart(dep, reason=f"cascade: {name} restarted ({reason})", actor="cli", now=now)
    report = ops.ApplyReport([])
    ops.converge(obj.store, obj.engine, report, names=names, how=ops.RunOptions(wait=True, timeout=120))
    for line in report.done:
        out.print(line, markup=False)
    if report.delegated_to:
        out.print(f"restart requested; {converger(report.delegated_to, 'performs')} it", markup=False)
    for e in report.errors:
        err.print(f"[red]failed:[/red] {escape(e)}")
    if report.errors or report.converged is False:
        sys.exit(EXIT_FAILED)


@cli.command()
@click.argument("name")
@click.option("--to-revision", type=COUNT, default=None, help="Generation to return to (default: the previous spec).")
@click.option("--reason", default="rollback requested by operator", show_default=True)
@click.pass_obj
@handled
def rollback(obj: Ctx, name: str, to_revision: int | None, reason: str) -> None:
    """Return NAME to an earlier revision (stored as a new generation) and converge."""
    gen = obj.store.rollback(name, to_generation=to_revision, actor="cli", now=time.time(), reason=reason)
    if gen is None:
        err.print(f"no revision to roll {name!r} back to (see `reconcile history {name} --revisions`)", markup=False)
        sys.exit(EXIT_INVALID)
    out.print(f"{name}: generation {gen} restores revision {to_revision or 'previous'}", markup=False)
    report = ops.ApplyReport([])
    ops.converge(obj.store, obj.engine, report, names={name}, how=ops.RunOptions(timeout=300))
    for line in report.done:
        out.print(line, markup=False)
    for e in report.errors:
        err.print(f"[red]failed:[/red] {escape(e)}")
    if report.errors:
        sys.exit(EXIT_FAILED)


def _suspend(obj: Ctx, name: str, flag: bool, reason: str) -> None:
    if not obj.store.set_suspended(name, flag, actor="cli", now=time.time(), reason=reason):
        err.print(f"no resource named {name!r}", markup=False)
        sys.exit(EXIT_INVALID)
    out.print(f"{name} {'suspended: the controller leaves it alone' if flag else 'resumed'}", markup=False)
    if not flag:
        report = ops.ApplyReport([])
        ops.converge(obj.store, obj.engine, report, names={name}, how=ops.RunOptions(timeout=60))
        for line in report.done:
            out.print(line, markup=False)
    else:
        ops.refresh(obj.store, obj.engine, {name})


@cli.command()
@click.argument("name")
@click.option("--reason", default="maintenance", show_default=True)
@click.pass_obj
@handled
def suspend(obj: Ctx, name: str, reason: str) -> None:
    """Maintenance mode: the controller leaves NAME alone (no healing, no recreate)."""
    _suspend(obj, name, True, reason)


@cli.command()
@click.argument("name")
@click.option("--reason", default="maintenance over", show_default=True)
@click.pass_obj
@handled
def resume(obj: Ctx, name: str, reason: str) -> None:
    """End maintenance mode for NAME; the controller converges it again."""
    _suspend(obj, name, False, reason)


@cli.command()
@click.option("--reveal-secrets", is_flag=True, help="Print stored secret values (interpolated into "
              "secret-looking env keys) instead of a placeholder, so that the output re-applies unchanged.")
@input_options
@handled
def convert(inputs: Inputs, reveal_secrets: bool) -> None:
    """Print FILEs (e.g. docker-compose.yml + overrides) as native reconcile YAML.

    Applying the output gives the same containers (identical spec hashes). Secret values
    are never printed: env files and secret files stay references, and values
    interpolated into secret-looking env keys print as a placeholder (with a warning
    naming them) unless --reveal-secrets is given."""
    from crd_like.formats import to_native_yaml

    resources = ops.load_models(inputs.files, inputs.opts)
    inputs.notices()
    if not reveal_secrets:
        _placeholder_warning([(r.metadata.name, r.spec.model_dump(mode="json", exclude_defaults=True))
                              for r in resources], "convert")
    click.echo(to_native_yaml(resources, header=f"converted by reconcile from {', '.join(inputs.files)}",
                              reveal_secrets=reveal_secrets), nl=False)


def converger(delegated_to: str, verb: str) -> str:
    """Who converges a change left to others, with ``verb`` (third person singular, e.g.
    'converges') agreeing: the daemon holding the lease (named), or, with nodes registered,
    the node agents (``operations.converge``)."""
    if delegated_to == "the node agents":
        return f"the node agents {verb.removesuffix('s')}"
    return f"the running controller {delegated_to} {verb}"


def _placeholder_warning(specs: list[tuple[str, dict[str, Any]]], verb: str) -> None:
    from crd_like.secrets import SECRET_PLACEHOLDER, secret_keys

    keys = [f"{name}: {k}" for name, spec in specs for k in secret_keys(spec)]
    if keys:
        err.print(f"warning: secret values are printed as {SECRET_PLACEHOLDER!r} ({'; '.join(keys)}); the output "
                  f"does not re-apply to the same containers unless you pass `reconcile {verb} --reveal-secrets`",
                  markup=False)


@cli.command()
def schema() -> None:
    """Print the JSON Schema of the resource kinds (for editor completion)."""
    from crd_like.schema import json_schema

    _dump(json_schema())


@cli.group()
def db() -> None:
    """Operate on the store: migrations, backups."""


@db.command("upgrade")
@click.pass_obj
@handled
def db_upgrade(obj: Ctx) -> None:
    """Upgrade the store's schema to the newest migration."""
    from store import Store

    store = Store.open(obj.db, migrate=False)
    before, after = store.schema_upgrade()
    shown = f"store {store.shown_url}: {before or 'empty'} -> {after}" if before != after else f"already at {after}"
    out.print(shown, markup=False)


@db.command("current")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
@handled
def db_current(obj: Ctx, as_json: bool) -> None:
    """Show the store's schema revision and the newest one available."""
    from store import Store

    store = Store.open(obj.db, migrate=False)
    cur, head = store.schema_revision(), store.schema_head()
    if as_json:
        _dump({"url": store.shown_url, "current": cur, "head": head})
    else:
        out.print(f"{store.shown_url}: current {cur or 'none'}, head {head}", markup=False)


@db.command("backup")
@click.argument("path", type=click.Path(dir_okay=False))
@click.pass_obj
@handled
def db_backup(obj: Ctx, path: str) -> None:
    """A consistent copy of the store at PATH, safe while a controller runs.

    SQLite: the online backup API. PostgreSQL: pg_dump --format=custom (the password goes
    by PGPASSWORD, never on a command line)."""
    obj.store.backup(path)
    out.print(f"backed up {obj.store.shown_url} to {path}", markup=False)


@db.command("restore")
@click.argument("path")
@click.option("--force", is_flag=True, help="Restore even though a controller holds the lease (not recommended).")
@click.pass_obj
@handled
def db_restore(obj: Ctx, path: str, force: bool) -> None:
    """Put the backup at PATH back as the store (refused while a controller runs).

    PostgreSQL: pg_restore --clean --single-transaction of a `db backup` archive."""
    lease = obj.store.lease(now=time.time())
    if lease is not None and not force:
        err.print(f"refusing: controller {lease[0]} holds the lease; stop it first", markup=False)
        sys.exit(EXIT_FAILED)
    obj.store.restore_from(path)
    problems = obj.store.integrity_check()
    if problems:
        err.print(f"restored store fails the integrity check: {problems[:3]}", markup=False)
        sys.exit(EXIT_FAILED)
    out.print(f"restored {obj.store.shown_url} from {path}", markup=False)


@db.command("check")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
@handled
def db_check(obj: Ctx, as_json: bool) -> None:
    """Integrity check of the store (SQLite's and the store's own invariants). Exit 1 if unsound."""
    problems = obj.store.integrity_check()
    if as_json:
        _dump({"ok": not problems, "problems": problems})
    else:
        out.print("ok" if not problems else "\n".join(problems), markup=False)
    if problems:
        sys.exit(EXIT_FAILED)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="JSON list instead of YAML documents.")
@click.option("--reveal-secrets", is_flag=True, help="Print stored secret values instead of a placeholder "
              "(needed for the export to re-apply to identical spec hashes).")
@click.pass_obj
@handled
def export(obj: Ctx, as_json: bool, reveal_secrets: bool) -> None:
    """Print the whole desired state (services, jobs, notifiers) as YAML that re-applies to
    identical spec hashes (with --reveal-secrets when specs hold secret values; without it they print as a
    placeholder and a warning names them)."""
    import yaml

    from crd_like.secrets import redact_spec

    from crd_like.models import API_VERSION as NOTIFIER_API
    from store.notify import NotifyStore

    docs = []
    desired = sorted(obj.store.desired().items())
    notifiers = [(n.name, n.spec) for n in NotifyStore(obj.store).notifiers()]
    if not reveal_secrets:
        _placeholder_warning([(name, rec.spec) for name, rec in desired] + notifiers, "export")
    for name, rec in desired:
        meta = {k: v for k, v in rec.metadata.items() if k != "name"}
        docs.append({"apiVersion": rec.api_version, "kind": rec.kind, "metadata": {"name": name, **meta},
                     "spec": rec.spec if reveal_secrets else redact_spec(rec.spec)})
    docs += [{"apiVersion": NOTIFIER_API, "kind": "Notifier", "metadata": {"name": name},
              "spec": spec if reveal_secrets else redact_spec(spec)} for name, spec in notifiers]
    if as_json:
        _dump(docs)
    else:
        click.echo(yaml.safe_dump_all(docs, sort_keys=False), nl=False)


# Verbs in their own modules, loaded when named (or listed by --help): each imports only
# click at load time, and importing them here would be circular (they use Ctx, handled).
cli.lazy.update({
    "get": "controller.cli_get:get", "ps": "controller.cli_get:get", "events": "controller.cli_get:events",
    "wait": "controller.cli_wait:wait", "logs": "controller.cli_logs:logs", "exec": "controller.cli_logs:exec_",
    "up": "controller.cli_stack:up", "down": "controller.cli_stack:down", "delete": "controller.cli_stack:delete",
    "version": "controller.cli_info:version", "completion": "controller.cli_info:completion",
    "notify": "controller.cli_notify:notify",
    "nodes": "controller.cli_nodes:nodes", "cordon": "controller.cli_nodes:cordon",
    "uncordon": "controller.cli_nodes:uncordon", "drain": "controller.cli_nodes:drain",
})


def main() -> None:
    """Run the command line, then leave without interpreter teardown.

    Freeing every module and object at exit took 0.3-1.6 s per command on a loaded host
    (docs/PERFORMANCE.md). By then the command's output is written and the store closed
    (``Ctx.close``), so ``os._exit`` skips only the freeing; the exit code is kept. When a
    non-daemon thread is still running (which normal exit would wait for), or the command
    raised an unexpected exception (a traceback), the normal exit is taken instead.
    """
    try:
        cli(prog_name="reconcile")
        code: Any = 0
    except SystemExit as exc:
        code = exc.code
    if isinstance(code, str) or (code is not None and not isinstance(code, int)):
        print(code, file=sys.stderr)
        code = 1
    code = code or 0
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (BrokenPipeError, ValueError):  # the reader went away (| head): as Python's own exit
        code = code or 120
    import threading

    main_thread = threading.main_thread()
    if any(t is not main_thread and not t.daemon and t.is_alive() for t in threading.enumerate()):
        sys.exit(code)
    os._exit(code)
