"""A counting proxy in front of the engine's Unix socket.

Point a client at ``proxy.url`` (``DOCKER_HOST=unix:///...``) and every HTTP request it
makes is forwarded unchanged to the engine and counted by method and normalised path
(``GET /containers/{id}/json``). Used to count the engine API calls of processes the
bench does not run in-process (docker-compose, the ``reconcile run`` daemon, the CLI).

``hold(method, target)`` makes chosen requests hang for real: a request it answers True
for is kept from the engine until ``release()`` (or ``hold_max`` seconds), so the client
sees an engine that takes the request and does not answer — the way Docker 20.10 wedged
on removals — while every other request is served (tests/e2e/test_engine_timeouts.py).
"""

from __future__ import annotations

import os
import re
import select
import socket
import socketserver
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

_VERSION = re.compile(r"^/v\d+\.\d+")
_OBJ = re.compile(r"^/(containers|networks|volumes|exec|plugins)/([^/]+)")
_IMAGE = re.compile(r"^/images/(.+)/(json|history|push|tag|get)$")
_KEEP = {"json", "create", "prune"}


def normalise(method: str, target: str) -> str:
    path = target.split("?", 1)[0]
    path = _VERSION.sub("", path)
    m = _OBJ.match(path)
    if m and m.group(2) not in _KEEP:
        path = f"/{m.group(1)}/{{id}}" + path[m.end():]
    m = _IMAGE.match(path)
    if m:
        path = f"/images/{{name}}/{m.group(2)}"
    return f"{method} {path}"


def engine_socket() -> str:
    host = os.environ.get("DOCKER_HOST", "")
    if host.startswith("unix://"):
        return host[len("unix://"):]
    return "/var/run/docker.sock"


class CountingProxy:
    def __init__(self, path: Path, target: str | None = None,
                 hold: Callable[[str, str], bool] | None = None, hold_max: float = 600.0):
        self.path = str(path)
        self.target = target or engine_socket()
        self.counts: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.hold = hold
        self.hold_max = hold_max
        self.held: list[str] = []  # "METHOD target" of every request held
        self._released = threading.Event()
        proxy = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                proxy._handle(self.request)

        class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
            daemon_threads = True

        if os.path.exists(self.path):
            os.unlink(self.path)
        self.server = Server(self.path, Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, name="sockproxy", daemon=True)

    @property
    def url(self) -> str:
        return f"unix://{self.path}"

    def start(self) -> CountingProxy:
        self.thread.start()
        return self

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        try:
            os.unlink(self.path)
        except OSError:
            pass

    def release(self) -> None:
        """Let held requests (and any later ones) through to the engine."""
        self._released.set()

    def _wait_released(self, client: socket.socket) -> bool:
        """Until release() (True) or until the client hangs up or hold_max passes (False)."""
        deadline = time.monotonic() + self.hold_max
        while not self._released.wait(0.1):
            if time.monotonic() > deadline:
                return False
            readable, _, _ = select.select([client], [], [], 0)
            if readable:
                try:
                    if not client.recv(1, socket.MSG_PEEK):
                        return False
                except OSError:
                    return False
        return True

    def snapshot(self) -> Counter[str]:
        with self.lock:
            return Counter(self.counts)

    def reset(self) -> None:
        with self.lock:
            self.counts.clear()

    def _count(self, key: str) -> None:
        with self.lock:
            self.counts[key] += 1

    def _handle(self, client: socket.socket) -> None:
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        upstream.connect(self.target)
        back = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
        back.start()
        buf = b""
        body_left = 0
        raw = False  # after a protocol upgrade or a body we cannot frame: just forward
        try:
            while True:
                data = client.recv(65536)
                if not data:
                    break
                if raw:
                    upstream.sendall(data)
                    continue
                buf += data
                # forward request by request (a held one waits before it reaches the engine)
                while buf:
                    if body_left:
                        take = min(body_left, len(buf))
                        body_left -= take
                        upstream.sendall(buf[:take])
                        buf = buf[take:]
                        continue
                    end = buf.find(b"\r\n\r\n")
                    if end < 0:
                        if len(buf) > 1 << 20:
                            raw = True
                            upstream.sendall(buf)
                            buf = b""
                        break
                    raw_head, buf = buf[:end + 4], buf[end + 4:]
                    lines = raw_head[:end].decode("latin-1").split("\r\n")
                    parts = lines[0].split(" ")
                    if len(parts) >= 2:
                        self._count(normalise(parts[0], parts[1]))
                        if self.hold is not None and not self._released.is_set() and self.hold(parts[0], parts[1]):
                            with self.lock:
                                self.held.append(f"{parts[0]} {parts[1]}")
                            if not self._wait_released(client):
                                return  # the client gave up: the engine never sees the request
                    upstream.sendall(raw_head)
                    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
                    if "upgrade" in headers or headers.get("transfer-encoding", "").lower() == "chunked":
                        raw = True
                        upstream.sendall(buf)
                        buf = b""
                        break
                    body_left = int(headers.get("content-length") or 0)
        except OSError:
            pass
        finally:
            try:
                upstream.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            back.join(timeout=600)
            upstream.close()


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass
