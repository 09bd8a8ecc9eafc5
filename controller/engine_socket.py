"""Read-only engine calls over a unix socket with the standard library, for the no-op
apply (``controller.unchanged``): three list calls and ``/version`` are all it needs, and
the Docker SDK's import (with requests and urllib3, about 0.15 s quiet, several times
that under load) was more than the whole answer.

Each call is one HTTP/1.0 request (the engine closes the connection when done). Anything
unexpected — no socket, a status other than 200, a chunked or non-JSON body, a time-out —
answers None, and the caller takes the full path (``controller.engine``), which words
every failure. Must not import docker, click or SQLAlchemy.
"""

from __future__ import annotations

import json
import socket
from typing import Any
from urllib.parse import quote

READ_TIMEOUT_S = 30.0


class SocketEngine:
    """GET requests to an engine on a unix socket; every answer is JSON or None."""

    def __init__(self, sock_path: str, timeout: float = READ_TIMEOUT_S):
        self.sock_path = sock_path
        self.timeout = timeout

    def get(self, path: str) -> Any | None:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(self.timeout)
                s.connect(self.sock_path)
                s.sendall(f"GET {path} HTTP/1.0\r\nHost: docker\r\nUser-Agent: reconcile\r\n\r\n".encode())
                chunks = []
                while True:
                    data = s.recv(262144)
                    if not data:
                        break
                    chunks.append(data)
        except OSError:
            return None
        head, sep, body = b"".join(chunks).partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = lines[0].split()
        if not sep or len(status) < 2 or status[1] != "200":
            return None
        if any(line.lower().startswith("transfer-encoding:") for line in lines[1:]):
            return None
        try:
            return json.loads(body)
        except ValueError:
            return None

    @staticmethod
    def _filters(labels: list[str]) -> str:
        return quote(json.dumps({"label": labels}, separators=(",", ":")))

    def containers(self, labels: list[str]) -> list[dict[str, Any]] | None:
        """``GET /containers/json?all=1`` filtered by labels (as ``Engine.list_owned``)."""
        out = self.get(f"/containers/json?all=1&filters={self._filters(labels)}")
        return out if isinstance(out, list) else None

    def images(self) -> list[dict[str, Any]] | None:
        out = self.get("/images/json")
        return out if isinstance(out, list) else None

    def networks(self, labels: list[str]) -> list[dict[str, Any]] | None:
        out = self.get(f"/networks?filters={self._filters(labels)}")
        return out if isinstance(out, list) else None

    def version(self) -> dict[str, Any] | None:
        out = self.get("/version")
        return out if isinstance(out, dict) else None
