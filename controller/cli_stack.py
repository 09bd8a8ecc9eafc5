"""Stack verbs as `docker compose` users know them: ``up`` (apply and wait), ``down`` (delete
exactly the services of some files or of a compose project), and ``delete`` of several
resources at once (names, files, a label selector, or everything).
"""

from __future__ import annotations

import sys
import time

import click

from controller import cli_output as outfmt
from controller.cli import (DURATION, EXIT_FAILED, EXIT_INVALID, ApplyFlags, Ctx, Inputs, apply_and_report, complete_names,
                            converger, handled, input_options, load_input)


@click.command("up")
@click.option("--prune", "--remove-orphans", "prune", is_flag=True,
              help="Remove services earlier applies of the same files created that they no longer name.")
@click.option("--timeout", type=DURATION, default="5m", show_default=True, help="How long to wait for convergence.")
@click.option("-q", "--quiet", is_flag=True, help="No progress lines.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@input_options
@click.pass_obj
@handled
def up(obj: Ctx, inputs: Inputs, prune: bool, timeout: float, quiet: bool, as_json: bool) -> None:
    """Apply FILEs (default: the compose file found as `docker compose` finds it) and wait until
    converged (`apply --wait`); exit 1 as soon as it cannot be."""
    apply_and_report(obj, inputs.files, inputs.opts,
                     ApplyFlags(prune=prune, wait=True, timeout=timeout, as_json=as_json, quiet=quiet or as_json))


def _project_services(obj: Ctx, project: str) -> list[str]:
    return sorted(n for n, rec in obj.store.desired().items()
                  if ((rec.metadata or {}).get("labels") or {}).get("compose.project") == project)


def _finish(obj: Ctx, names: list[str], volumes: bool) -> None:
    from controller import operations as ops

    report, unknown = ops.delete_many(obj.store, obj.engine, names, volumes=volumes)
    for c in report.changes:
        click.echo(f"deleted {c.kind.lower()}/{c.name}")
    for line in report.done:
        click.echo(line)
    if report.delegated_to:
        click.echo(f"{converger(report.delegated_to, 'removes')} the containers")
        wait_report = ops.ApplyReport([])
        ops.wait_outcome(obj.store, wait_report, ops.WaitFor({c.name for c in report.changes}, time.time() + 60,
                                                            goal="deleted"))
    for e in report.errors:
        click.echo(f"failed: {e}", err=True)
    if unknown:
        click.echo(f"error: no resource named {', '.join(unknown)}", err=True)
    if report.errors:
        sys.exit(EXIT_FAILED)
    if unknown:
        sys.exit(EXIT_INVALID)


@click.command("down")
@click.option("-f", "--file", "files", multiple=True, help="The files whose services to remove (default: the "
              "compose file of the working directory, unless -p is given).")
@click.option("-v", "--volumes", is_flag=True, help="Also remove their named volumes (data is lost).")
@click.option("--format", "fmt", type=click.Choice(["auto", "native", "compose"]), default="auto", show_default=True,
              help="Input format; auto detects compose files by shape.")
@click.option("-p", "--project-name", "project", default=None, help="Compose project name: without -f, remove "
              "every service of that project.")
@click.option("--profile", "profiles", multiple=True, help="Activate a compose profile (repeatable).")
@click.option("--allow-unsupported", is_flag=True, help="Compose keys reconcile does not support become warnings.")
@click.pass_obj
@handled
def down(obj: Ctx, files: tuple[str, ...], volumes: bool, fmt: str, project: str | None,
         profiles: tuple[str, ...], allow_unsupported: bool) -> None:
    """Remove exactly the services of FILEs (or of compose project -p) and their containers.

    Named volumes are kept unless -v. Other services are untouched."""
    from controller import operations as ops

    if project and not files:
        names = _project_services(obj, project)
        if not names:
            click.echo(f"nothing to remove: no service of compose project {project!r}", err=True)
            return
    else:
        paths, opts = load_input(files, fmt, project, profiles, allow_unsupported)
        names = [r.metadata.name for r in ops.load_models(paths, opts)]
        desired = obj.store.desired()
        names = [n for n in names if n in desired]
        if not names:
            click.echo("nothing to remove: none of these services is stored", err=True)
            return
    _finish(obj, names, volumes)


def _targets(obj: Ctx, names: tuple[str, ...], files: tuple[str, ...],
             selector: list[outfmt.Requirement] | None, all_: bool) -> list[str]:
    """The stored resources a ``delete`` names: NAMEs, then those of -f FILEs, of -l, or all;
    each once, in that order."""
    from controller import operations as ops

    desired = obj.store.desired()
    wanted: list[str] = list(dict.fromkeys(names))
    if files:
        paths, opts = load_input(files, "auto", None, (), False)
        wanted += [r.metadata.name for r in ops.load_models(paths, opts) if r.metadata.name in desired]
    if selector:
        wanted += [n for n, rec in sorted(desired.items())
                   if outfmt.selected(((rec.metadata or {}).get("labels") or {}), selector)]
    if all_:
        wanted += sorted(desired)
    return list(dict.fromkeys(wanted))


@click.command("delete")
@click.argument("names", nargs=-1, shell_complete=complete_names)
@click.option("-f", "--file", "files", multiple=True, help="Also the resources these files define (repeatable).")
@outfmt.selector_option
@click.option("--all", "all_", is_flag=True, help="Every resource in the store.")
@click.option("-y", "--yes", is_flag=True, help="Do not ask (on a terminal, --all and -l ask first).")
@click.option("--volumes", is_flag=True, help="Also remove the named volumes reconcile created for them (data is lost).")
@click.pass_obj
@handled
def delete(obj: Ctx, names: tuple[str, ...], files: tuple[str, ...], selector: list[outfmt.Requirement] | None,
           all_: bool, yes: bool, volumes: bool) -> None:
    """Remove NAMEs' desired records and their containers (named volumes are kept unless --volumes)."""

    if not (names or files or selector or all_):
        raise click.UsageError("name resources, or give -f FILE, -l SELECTOR or --all")
    wanted = _targets(obj, names, files, selector, all_)
    if not wanted:
        click.echo("nothing to delete: no resource matches", err=True)
        return
    if (all_ or selector) and not yes and sys.stdin.isatty():
        click.confirm(f"delete {len(wanted)} resource(s): {', '.join(wanted)}?", abort=True, err=True)
    _finish(obj, wanted, volumes)
