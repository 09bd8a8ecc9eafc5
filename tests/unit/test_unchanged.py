"""controller.unchanged: when an apply may be answered "unchanged" without the store's
transaction (table-driven, pure), and the engine socket client against a fake engine."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from controller.engine_socket import SocketEngine
from controller.observed import image_maps
from controller.unchanged import stored_unchanged
from store.records import Desired, ResourceInput

SRC = "/stack.yaml"


def stored(name: str, *, kind: str = "Service", spec_hash: str = "h1", source: str = SRC,
           metadata: dict[str, Any] | None = None, generation: int = 3) -> Desired:
    return Desired(name=name, kind=kind, api_version="reconcile/v1alpha1", spec={"image": "x"},
                   metadata={"name": name} if metadata is None else metadata, spec_hash=spec_hash,
                   generation=generation, source=source, suspended=False, updated_at=1.0)


def given(name: str, *, kind: str = "Service", spec_hash: str = "h1",
          metadata: dict[str, Any] | None = None) -> ResourceInput:
    return ResourceInput(name=name, kind=kind, api_version="reconcile/v1alpha1", spec={"image": "x"},
                         metadata={"name": name} if metadata is None else metadata, spec_hash=spec_hash)


@pytest.mark.parametrize(
    ("store", "inputs", "prune", "unchanged"),
    [
        ([stored("a"), stored("b")], [given("a"), given("b")], False, True),
        ([stored("a"), stored("b")], [given("a")], False, True),  # b is not named: kept, not pruned
        ([stored("a"), stored("b")], [given("a")], True, False),  # b would be pruned
        ([stored("a"), stored("b", source="/other.yaml")], [given("a")], True, True),  # other source
        ([stored("a")], [given("a", spec_hash="h2")], False, False),  # spec changed
        ([stored("a")], [given("a", kind="Job")], False, False),
        ([stored("a")], [given("a", metadata={"name": "a", "labels": {"t": "1"}})], False, False),
        ([stored("a", metadata={"name": "a", "labels": {"x": "1", "y": "2"}})],
         [given("a", metadata={"name": "a", "labels": {"y": "2", "x": "1"}})], False, True),  # key order
        ([stored("a", source="/other.yaml")], [given("a")], False, False),  # the source moves
        ([], [given("a")], False, False),  # created
        ([stored("a")], [given("a"), given("a")], False, False),  # twice in one apply
        ([stored("a")], [], False, True),
    ],
)
def test_stored_unchanged(store: list[Desired], inputs: list[ResourceInput], prune: bool, unchanged: bool) -> None:
    got = stored_unchanged({d.name: d for d in store}, inputs, SRC, prune)
    if not unchanged:
        assert got is None
        return
    assert got is not None
    assert [(c.name, c.change, c.generation) for c in got] == [(i.name, "unchanged", 3) for i in inputs]


@pytest.mark.parametrize(
    ("images", "ids", "builds"),
    [
        ([], {}, {}),
        ([{"Id": "sha256:1", "RepoTags": ["app:latest"]}], {"app:latest": "sha256:1", "app": "sha256:1"}, {}),
        ([{"Id": "sha256:2", "RepoTags": ["localhost/app:1"], "Labels": {"build": "b"}}],
         {"localhost/app:1": "sha256:2", "app:1": "sha256:2"}, {"localhost/app:1": "b", "app:1": "b"}),
        ([{"Id": "sha256:3", "RepoTags": ["<none>:<none>"]}, {"Id": "sha256:4", "RepoTags": None}], {}, {}),
    ],
)
def test_image_maps(images: list[dict[str, Any]], ids: dict[str, str], builds: dict[str, str]) -> None:
    from controller import labels as L

    for img in images:  # the label the engine adapter reads
        if img.get("Labels"):
            img["Labels"] = {L.BUILD_HASH: img["Labels"]["build"]}
    assert image_maps(images) == (ids, builds)


@pytest.fixture
def fake_engine(tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    """A unix-socket server answering HTTP/1.0 GETs: /containers/json and /version as JSON,
    /chunked with a chunked body, /bad with a 500; records the request lines."""
    path = str(tmp_path / "e.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(8)
    seen: list[str] = []

    def serve() -> None:
        for _ in range(8):
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            with conn:
                req = conn.recv(65536).decode()
                line = req.split("\r\n")[0]
                seen.append(line)
                target = line.split()[1]
                if target.startswith("/containers/json"):
                    body = json.dumps([{"Id": "c1"}] * 3000).encode()  # larger than one recv
                    conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n" + body)
                elif target == "/version":
                    conn.sendall(b"HTTP/1.0 200 OK\r\n\r\n" + json.dumps({"Version": "26.1"}).encode())
                elif target == "/chunked":
                    conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n[]\r\n0\r\n\r\n")
                else:
                    conn.sendall(b"HTTP/1.0 500 Internal Server Error\r\n\r\n{}")

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield path, seen
    srv.close()
    t.join(timeout=2)


def test_socket_engine_reads_json_and_refuses_anything_else(fake_engine: tuple[str, list[str]], tmp_path: Path) -> None:
    path, seen = fake_engine
    eng = SocketEngine(path, timeout=5)
    got = eng.containers(["reconcile.managed=true", "reconcile.instance=abc"])
    assert got == [{"Id": "c1"}] * 3000
    assert seen[0].startswith("GET /containers/json?all=1&filters=") and seen[0].endswith(" HTTP/1.0")
    assert json.loads(__import__("urllib.parse").parse.unquote(seen[0].split("filters=")[1].split()[0])) == {
        "label": ["reconcile.managed=true", "reconcile.instance=abc"]}
    assert eng.version() == {"Version": "26.1"}
    assert eng.get("/chunked") is None
    assert eng.get("/bad") is None
    assert eng.images() is None  # a 500
    assert SocketEngine(str(tmp_path / "none.sock")).version() is None  # no engine there
