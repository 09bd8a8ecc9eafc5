"""``logs`` and ``exec``: a service's containers as `docker compose logs` and `docker exec`
show them. Every replica's lines are prefixed with its container name; ``-p PROJECT``
selects every service converted from that compose project (metadata label
``compose.project``). Terminal I/O only here; the engine calls are ``controller.engine``'s.
"""

from __future__ import annotations

import os
import queue
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

import click

from controller.cli import DURATION, EXIT_FAILED, EXIT_INVALID, Ctx, complete_names, handled, options_into


def _services(obj: Ctx, names: tuple[str, ...], project: str | None) -> list[str]:
    desired = obj.store.desired()
    wanted = list(names)
    unknown = [n for n in names if n not in desired]
    if unknown:
        click.echo(f"error: no resource named {', '.join(unknown)}", err=True)
        sys.exit(EXIT_INVALID)
    if project:
        wanted += [n for n, rec in sorted(desired.items())
                   if ((rec.metadata or {}).get("labels") or {}).get("compose.project") == project and n not in wanted]
        if not wanted:
            click.echo(f"error: no service of compose project {project!r}", err=True)
            sys.exit(EXIT_INVALID)
    if not wanted:
        raise click.UsageError("name one or more services, or -p PROJECT")
    return wanted


def _lines(chunks: Any) -> Any:
    """Whole lines out of a byte-chunk stream."""
    buf = b""
    for chunk in chunks:
        buf += chunk
        *whole, buf = buf.split(b"\n")
        for line in whole:
            yield line.decode("utf-8", "replace")
    if buf:
        yield buf.decode("utf-8", "replace")


@dataclass(frozen=True)
class LogFlags:
    """``logs``' options besides the selection (NAMEs, -p), as one value."""

    follow: bool
    since: float | None
    tail: int | None
    timestamps: bool
    no_prefix: bool


@click.command("logs")
@click.argument("names", nargs=-1, shell_complete=complete_names)
@click.option("-p", "--project", default=None, help="Every service of this compose project.")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new output (Ctrl-C stops).")
@click.option("--since", type=DURATION, default=None, help="Only output of this long ago or newer (e.g. 10m).")
@click.option("-n", "--tail", type=click.IntRange(0), default=None, help="Only the last N lines of each container.")
@click.option("-t", "--timestamps", is_flag=True, help="Prefix each line with the engine's timestamp.")
@click.option("--no-prefix", is_flag=True, help="Do not prefix lines with the container name.")
@click.pass_obj
@handled
@options_into(LogFlags, "flags")
def logs(obj: Ctx, names: tuple[str, ...], project: str | None, flags: LogFlags) -> None:
    """Output of every replica of NAMEs (or of a compose project), prefixed by container name."""
    services = _services(obj, names, project)
    containers = sorted((c for s in services for c in obj.engine.list_owned(obj.store.instance_id, s)),
                        key=lambda c: (services.index(c.service), c.replica, c.name))
    if not containers:
        click.echo(f"no containers for {', '.join(services)}", err=True)
        return
    width = max(len(c.name) for c in containers)
    since_ts = time.time() - flags.since if flags.since is not None else None

    def prefix(name: str) -> str:
        return "" if flags.no_prefix else f"{name:<{width}} | "

    if not flags.follow:
        for c in containers:
            for line in _lines(obj.engine.logs(c.id, since=since_ts, tail=flags.tail, timestamps=flags.timestamps)):
                click.echo(prefix(c.name) + line)
        return
    _follow(obj, [(c.id, c.name) for c in containers], since_ts, flags, prefix)


def _follow(obj: Ctx, containers: list[tuple[str, str]], since_ts: float | None, flags: LogFlags,
            prefix: Any) -> None:
    """``logs -f``: one thread per container's stream, their lines printed as they come."""
    lines: queue.Queue[tuple[str, str] | None] = queue.Queue(maxsize=10_000)

    def pump(cid: str, cname: str) -> None:
        try:
            for line in _lines(obj.engine.logs(cid, follow=True, since=since_ts, tail=flags.tail,
                                               timestamps=flags.timestamps)):
                lines.put((cname, line))
        except Exception as exc:  # noqa: BLE001 - one container's stream ending must not stop the others
            lines.put((cname, f"(log stream ended: {exc})"))
        finally:
            lines.put(None)

    for cid, cname in containers:
        threading.Thread(target=pump, args=(cid, cname), daemon=True, name=f"logs-{cname}").start()
    open_streams = len(containers)
    try:
        while open_streams:
            item = lines.get()
            if item is None:
                open_streams -= 1
                continue
            click.echo(prefix(item[0]) + item[1])
            sys.stdout.flush()
    except KeyboardInterrupt:
        pass


@click.command("exec", context_settings={"ignore_unknown_options": True})
@click.argument("name", shell_complete=complete_names)
@click.argument("cmd", nargs=-1, required=True, type=click.UNPROCESSED)
@click.option("--replica", type=click.IntRange(1), default=1, show_default=True, help="Which replica.")
@click.option("-i/-I", "--interactive/--no-interactive", "interactive", default=None,
              help="Keep stdin open (default: when stdin is a terminal).")
@click.option("-t/-T", "--tty/--no-tty", "tty", default=None, help="Allocate a terminal (default: when "
              "stdin and stdout are terminals).")
@click.pass_obj
@handled
def exec_(obj: Ctx, name: str, cmd: tuple[str, ...], replica: int, interactive: bool | None,
          tty: bool | None) -> None:
    """Run CMD in a running container of NAME: `reconcile exec NAME [--replica N] -- CMD…`.

    Exits with CMD's exit code."""
    if obj.store.get(name) is None:
        click.echo(f"error: no resource named {name!r}", err=True)
        sys.exit(EXIT_INVALID)
    running = [c for c in obj.engine.list_owned(obj.store.instance_id, name) if c.replica == replica and c.running]
    if not running:
        click.echo(f"error: {name} has no running container for replica {replica}", err=True)
        sys.exit(EXIT_FAILED)
    tty = sys.stdin.isatty() and sys.stdout.isatty() if tty is None else tty
    interactive = sys.stdin.isatty() if interactive is None else interactive
    exec_id, stream = obj.engine.exec_start(running[0].id, list(cmd), tty=tty, interactive=interactive or tty)
    if interactive or tty:
        _pump_socket(obj, exec_id, stream, tty)
    else:
        _copy_output(stream)
    code = obj.engine.exec_exit_code(exec_id)
    sys.exit(code if code is not None else EXIT_FAILED)


def _copy_output(stream: Any) -> None:
    """A non-interactive exec's (stdout, stderr) chunks onto ours, as they come."""
    for out_chunk, err_chunk in stream:
        for chunk, target in ((out_chunk, sys.stdout), (err_chunk, sys.stderr)):
            if chunk:
                target.buffer.write(chunk)
                target.buffer.flush()


def _pump_socket(obj: Ctx, exec_id: str, sock: Any, tty: bool) -> None:
    """Copy stdin to the exec's socket and its output to stdout until it closes. With a TTY
    the local terminal is raw (keys go through as typed) and restored afterwards."""
    import select

    stdin_fd = sys.stdin.fileno()
    old = _raw_terminal(obj, exec_id, stdin_fd) if tty and os.isatty(stdin_fd) else None
    demux = not tty  # without a TTY the engine frames stdout/stderr (8-byte headers)
    buf = b""
    stdin_open = True
    try:
        while True:
            fds = [sock] + ([stdin_fd] if stdin_open else [])
            ready, _, _ = select.select(fds, [], [])
            if sock in ready:
                data = sock.recv(65536)
                if not data:
                    break
                if demux:
                    buf = _write_frames(buf + data)
                else:
                    os.write(sys.stdout.fileno(), data)
            if stdin_open and stdin_fd in ready:
                stdin_open = _forward_stdin(stdin_fd, sock)
    finally:
        if old is not None:
            import termios

            termios.tcsetattr(stdin_fd, termios.TCSADRAIN, old)
        sock.close()


def _raw_terminal(obj: Ctx, exec_id: str, stdin_fd: int) -> Any:
    """Put the local terminal in raw mode and size the exec's to it; the old mode, to restore."""
    import termios
    import tty as ttymod

    old = termios.tcgetattr(stdin_fd)
    ttymod.setraw(stdin_fd)
    try:
        size = os.get_terminal_size(sys.stdout.fileno())
        obj.engine.exec_resize(exec_id, size.lines, size.columns)
    except OSError:
        pass
    return old


def _write_frames(buf: bytes) -> bytes:
    """Write the whole frames of the engine's stdout/stderr framing in ``buf`` (an 8-byte
    header: stream, 3 bytes, big-endian length); the incomplete rest, to keep."""
    while len(buf) >= 8:
        frame = int.from_bytes(buf[4:8], "big")
        if len(buf) < 8 + frame:
            break
        target = sys.stderr if buf[0] == 2 else sys.stdout
        target.buffer.write(buf[8:8 + frame])
        target.buffer.flush()
        buf = buf[8 + frame:]
    return buf


def _forward_stdin(stdin_fd: int, sock: Any) -> bool:
    """Send what stdin has to the exec; at its end, close the socket's writing side. False then."""
    data = os.read(stdin_fd, 65536)
    if data:
        sock.sendall(data)
        return True
    try:
        import socket

        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    return False
