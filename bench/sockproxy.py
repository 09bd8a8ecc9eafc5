"""A counting proxy in front of the engine's Unix socket.

Point a client at ``proxy.url`` (``DOCKER_HOST=unix:///...``) and every HTTP request it
makes is forwarded unchanged to the engine and counted by method and normalised path
(``GET /containers/{id}/json``). Used to count the engine API calls of processes the
bench does not run in-process (docker-compose, the ``reconcile run`` daemon, the CLI).
"""

from __future__ import annotations

import os
import re
import socket
import socketserver
import threading
from collections import Counter
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
    def __init__(self, path: Path, target: str | None = None):
        self.path = str(path)
        self.target = target or engine_socket()
        self.counts: Counter[str] = Counter()
        self.lock = threading.Lock()
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
                upstream.sendall(data)
                if raw:
                    continue
                buf += data
                while buf:
                    if body_left:
                        take = min(body_left, len(buf))
                        body_left -= take
                        buf = buf[take:]
                        continue
                    end = buf.find(b"\r\n\r\n")
                    if end < 0:
                        if len(buf) > 1 << 20:
                            raw, buf = True, b""
                        break
                    head, buf = buf[:end].decode("latin-1"), buf[end + 4:]
                    lines = head.split("\r\n")
                    parts = lines[0].split(" ")
                    if len(parts) >= 2:
                        self._count(normalise(parts[0], parts[1]))
                    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
                    if "upgrade" in headers or headers.get("transfer-encoding", "").lower() == "chunked":
                        raw, buf = True, b""
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
