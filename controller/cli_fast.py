"""The console entry point: answers ``--help`` (of any verb), ``completion SHELL`` and
``version`` without loading click, the Docker SDK or SQLAlchemy; everything else goes to
``controller.cli.main``.

Python's own start-up is most of what these cost (docs/PERFORMANCE.md, section 7), so
this module imports the standard library only. The help and completion texts come from
``controller/cli_help.py``, a snapshot of what the real click commands print, generated
by ``python -m controller.cli_fast --write`` (tests/unit/test_cli_fast.py checks that it
equals the real output). It records a fingerprint of the files it was made from (the
``controller/cli*.py`` sources and click's version); when they differ (a verb changed,
the snapshot was not made again), the fast path steps aside and click answers. The
snapshot is made at click's default help width, so it also steps aside on a terminal
narrower than 80 columns. ``version`` answers from ``controller.versions`` when the store
is a plain SQLite file and the engine a unix socket, else the verb itself does.
"""

from __future__ import annotations

import os
import sys
import zlib
from typing import Any

HELP_FLAGS = ("--help", "-h")
HELP_WIDTH_COLUMNS = 80  # click's help width is min(columns, 80) - 2: any terminal this wide prints the same
_HERE = os.path.dirname(os.path.abspath(__file__))
_SNAPSHOT_OF = ("cli_fast.py", "cli_help.py")  # not part of what the help is made from


def fingerprint() -> str:
    """crc32 of the CLI's sources (``controller/cli*.py``) and click's version."""
    from controller.versions import dist_version

    crc = zlib.crc32(f"click {dist_version('click')}".encode())
    for name in sorted(os.listdir(_HERE)):
        if name.startswith("cli") and name.endswith(".py") and name not in _SNAPSHOT_OF:
            with open(os.path.join(_HERE, name), "rb") as fh:
                crc = zlib.crc32(name.encode() + b"\0" + fh.read(), crc)
    return f"{crc:08x}"


def _columns() -> int:
    """The terminal width click's help formatter sees (shutil.get_terminal_size's rule)."""
    try:
        cols = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        cols = 0
    if cols <= 0:
        try:
            cols = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            cols = 0
    return cols or 80


def _snapshot_text(argv: list[str]) -> str | None:
    if argv and argv[-1] in HELP_FLAGS:
        key: tuple[str, ...] = tuple(argv[:-1])
        table = "HELP"
    elif len(argv) == 2 and argv[0] == "completion":
        key, table = (argv[1],), "COMPLETION"
    else:
        return None
    try:
        from controller import cli_help
    except ImportError:
        return None
    text: str | None = getattr(cli_help, table, {}).get(key)
    if text is None or (table == "HELP" and _columns() < HELP_WIDTH_COLUMNS):
        return None
    if cli_help.FINGERPRINT != fingerprint():
        return None
    return text


def _version(argv: list[str]) -> tuple[str, int] | None:
    if argv in (["version"], ["--version"], ["version", "-o", "text"], ["version", "--output", "text"]):
        output = "text"
    elif argv in (["version", "-o", "json"], ["version", "--output", "json"]):
        output = "json"
    else:
        return None
    from controller import versions

    db = os.environ.get("RECONCILE_DB") or None
    store = versions.store_info(db)
    sock = versions.engine_socket(None, None)
    if store is None or sock is None:
        return None
    v = versions.engine_version(sock[0])
    if v is None:  # not answering: the SDK's path words the failure
        return None
    data: dict[str, Any] = {"client": versions.client_info(), "engine": versions.engine_record(sock[1], v),
                            "store": store}
    if output == "json":
        return versions.version_json(data) + "\n", 0
    return "".join(line + "\n" for line in versions.version_text(data)), 0


def answer(argv: list[str]) -> tuple[str, int] | None:
    """(text for stdout, exit code) when this is a fast case, else None."""
    if os.environ.get("_RECONCILE_COMPLETE"):  # click's completion protocol
        return None
    text = _snapshot_text(argv)
    if text is not None:
        return text, 0
    return _version(argv)


def main() -> None:
    """The ``reconcile`` command (and ``python -m controller.cli``)."""
    fast = answer(sys.argv[1:])
    if fast is None:
        from controller.cli import main as full

        full()
        return
    text, code = fast
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except (BrokenPipeError, ValueError):  # the reader went away (| head): as controller.cli.main
        code = code or 120
    os._exit(code)


# -- the snapshot -----------------------------------------------------------------------
def real_output(args: list[str]) -> tuple[str, int]:
    """What ``reconcile ARGS`` prints on stdout through click (in this process), at the
    default help width, and its exit code."""
    import contextlib
    import io

    import click.formatting

    from controller.cli import cli

    buf, old = io.StringIO(), click.formatting.FORCED_WIDTH
    click.formatting.FORCED_WIDTH = HELP_WIDTH_COLUMNS - 2
    try:
        with contextlib.redirect_stdout(buf):
            code = cli.main(args, prog_name="reconcile", standalone_mode=False)
    finally:
        click.formatting.FORCED_WIDTH = old
    return buf.getvalue(), int(code or 0)


def snapshot_paths() -> list[tuple[str, ...]]:
    """Every command path: (), each verb, each verb of a group (``db upgrade``)."""
    import click

    from controller.cli import cli

    ctx = click.Context(cli, info_name="reconcile")
    paths: list[tuple[str, ...]] = []
    todo: list[tuple[tuple[str, ...], click.Command | None]] = [((), cli)]
    while todo:
        path, cmd = todo.pop(0)
        paths.append(path)
        if isinstance(cmd, click.Group):
            todo.extend(((*path, n), cmd.get_command(ctx, n)) for n in cmd.list_commands(ctx))
    return paths


def snapshot_source() -> str:
    """The text of ``controller/cli_help.py``: every verb's ``--help`` and the completion
    scripts, as the real click commands print them at the default width."""
    helps: dict[tuple[str, ...], str] = {}
    for path in snapshot_paths():
        text, code = real_output([*path, "--help"])
        if code != 0:
            raise RuntimeError(f"reconcile {' '.join(path)} --help exited {code}")
        helps[path] = text
    completions: dict[tuple[str, ...], str] = {}
    for shell in ("bash", "zsh", "fish"):
        text, code = real_output(["completion", shell])
        if code != 0:
            raise RuntimeError(f"reconcile completion {shell} exited {code}")
        completions[(shell,)] = text
    lines = ["# ruff: noqa: E501  (generated: click's output, one string a command)",
             '"""Generated by `python -m controller.cli_fast --write`; do not edit.',
             "",
             "What the real click commands print for every `--help` and `completion SHELL`; see",
             'controller/cli_fast.py."""',
             "",
             f"FINGERPRINT = {fingerprint()!r}",
             "",
             "HELP: dict[tuple[str, ...], str] = {"]
    lines += [f"    {k!r}: {v!r}," for k, v in sorted(helps.items())]
    lines += ["}", "", "COMPLETION: dict[tuple[str, ...], str] = {"]
    lines += [f"    {k!r}: {v!r}," for k, v in sorted(completions.items())]
    lines += ["}", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        target = os.path.join(_HERE, "cli_help.py")
        with open(target, "w", encoding="utf-8") as out:
            out.write(snapshot_source())
        print(f"wrote {target}")
    else:
        sys.exit("usage: python -m controller.cli_fast --write   (makes controller/cli_help.py again)")
