"""The engine adapter's plain-call transport (``controller.engine_transport``) against a
real HTTP/1.1 server on a unix socket in this process: what it sends, what it answers,
keep-alive, an idle connection the server closed, time-outs, a full backlog and a missing socket; and
the SDK's own result and error handling on top of it (``controller.engine._APIClient``
and ``Engine``'s error translation). The real engine is exercised by every e2e test."""

from __future__ import annotations

import json
import os
import socket
import socketserver
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
import requests

from controller.engine import Engine, _APIClient
from controller.engine_transport import UnixTransport, is_plain, query
from controller.errors import ImageMissing, NameConflict, NotFound

BASE = "http+docker://localhost"


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def __init__(self, path: str):
        super().__init__(path, _Handler)
        self.seen: list[dict[str, Any]] = []
        self.connections = 0
        self.counting = threading.Lock()
        self.close_after_one = False
        self.delay = 0.0


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the engine speaks
    server: _Server

    def setup(self) -> None:
        super().setup()
        with self.server.counting:  # handlers run on their own threads
            self.server.connections += 1

    def address_string(self) -> str:  # a unix socket has no peer address
        return "unix"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.seen.append({"method": self.command, "path": self.path, "body": body,
                                 "headers": {k.lower(): v for k, v in self.headers.items()}})
        if self.server.delay:
            time.sleep(self.server.delay)
        if self.path.split("?")[0].endswith("/version"):
            status, out = 200, {"ApiVersion": "1.41", "Version": "20.10.24"}
        elif "/images/nosuch" in self.path:
            status, out = 404, {"message": "No such image: nosuch:latest"}
        elif "/containers/missing" in self.path:
            status, out = 404, {"message": "No such container: missing"}
        elif "/containers/create" in self.path:
            status, out = 409, {"message": 'Conflict. The container name "/web-1" is already in use'}
        else:
            status, out = 200, {"path": self.path}
        data = json.dumps(out).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if self.server.close_after_one:
            self.send_header("Connection", "close")
            self.close_connection = True
        try:
            self.end_headers()
            self.wfile.write(data)
        except BrokenPipeError:  # the client gave up waiting (the time-out test)
            self.close_connection = True

    do_GET = do_POST = do_DELETE = _answer


@pytest.fixture
def server() -> Iterator[_Server]:
    d = tempfile.mkdtemp(prefix="reconcile-transport-")
    srv = _Server(os.path.join(d, "engine.sock"))
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        os.unlink(srv.server_address)  # type: ignore[arg-type]
        os.rmdir(d)


def _sock(srv: _Server) -> str:
    return str(srv.server_address)


def test_a_plain_get_sends_the_query_as_requests_would_and_answers_a_requests_response(server: _Server) -> None:
    t = UnixTransport(_sock(server), BASE)
    r = t.request("GET", f"{BASE}/v1.41/containers/json",
                  headers={"User-Agent": "reconcile-test", "Accept-Encoding": "gzip, deflate"},
                  params={"all": 1, "filters": '{"label":["a=b"]}', "limit": None, "x": ["1", "2"]}, timeout=5)
    assert isinstance(r, requests.Response)
    assert r.status_code == 200 and r.reason == "OK" and r.headers["content-type"] == "application/json"
    seen = server.seen[-1]
    assert seen["path"] == "/v1.41/containers/json?all=1&filters=%7B%22label%22%3A%5B%22a%3Db%22%5D%7D&x=1&x=2"
    assert r.json() == {"path": seen["path"]}
    assert seen["headers"]["user-agent"] == "reconcile-test"
    assert "gzip" not in seen["headers"].get("accept-encoding", "")  # nothing here decodes gzip


def test_a_post_sends_its_text_body_as_utf8_with_its_length(server: _Server) -> None:
    t = UnixTransport(_sock(server), BASE)
    body = json.dumps({"Env": ["GREETING=grüß dich"]}, ensure_ascii=False)
    t.request("POST", f"{BASE}/v1.41/containers/abc/start", headers={"Content-Type": "application/json"},
              data=body, timeout=5)
    seen = server.seen[-1]
    assert seen["method"] == "POST" and seen["body"] == body.encode("utf-8")
    assert seen["headers"]["content-length"] == str(len(body.encode("utf-8")))


def test_calls_of_one_thread_share_one_kept_alive_connection(server: _Server) -> None:
    t = UnixTransport(_sock(server), BASE)
    for _ in range(5):
        assert t.request("GET", f"{BASE}/v1.41/info", headers={}, timeout=5).status_code == 200
    assert server.connections == 1
    t.close()


def test_the_connection_of_a_thread_that_ended_is_closed_with_it(server: _Server) -> None:
    """A long-running controller's short-lived threads must not leave sockets behind."""
    import gc

    def fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    t = UnixTransport(_sock(server), BASE)
    t.request("GET", f"{BASE}/v1.41/warm", headers={}, timeout=5)  # this thread's own connection
    before = fds()
    for _ in range(3):
        threads = [threading.Thread(target=t.request, args=("GET", f"{BASE}/v1.41/x"),
                                    kwargs={"headers": {}, "timeout": 5}) for _ in range(10)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(10)
    gc.collect()
    assert server.connections == 31  # each thread had its own
    assert len(t._open) == 1  # only this thread's is still held
    deadline = time.monotonic() + 5  # the server's side closes once it reads the end
    while fds() > before + 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert fds() <= before + 2  # the 30 threads' sockets are closed, not only dropped from the set
    t.close()


def test_a_connection_the_engine_closed_is_replaced_before_the_next_call(server: _Server) -> None:
    t = UnixTransport(_sock(server), BASE)
    server.close_after_one = True
    assert t.request("GET", f"{BASE}/v1.41/a", headers={}, timeout=5).status_code == 200
    assert t.request("GET", f"{BASE}/v1.41/b", headers={}, timeout=5).status_code == 200
    server.close_after_one = False
    assert server.connections == 2
    assert [s["path"] for s in server.seen] == ["/v1.41/a", "/v1.41/b"]  # each sent once, never retried


def test_an_engine_that_does_not_answer_in_time_is_a_read_timeout(server: _Server) -> None:
    server.delay = 0.5
    t = UnixTransport(_sock(server), BASE)
    with pytest.raises(requests.exceptions.ReadTimeout, match="within 0.1 s"):
        t.request("GET", f"{BASE}/v1.41/slow", headers={}, timeout=0.1)
    server.delay = 0.0
    assert t.request("GET", f"{BASE}/v1.41/fast", headers={}, timeout=5).status_code == 200  # a fresh connection


@pytest.fixture
def full_listener() -> Iterator[tuple[str, socket.socket]]:
    """A unix listener that accepts nothing, its backlog filled by waiting connects."""
    d = tempfile.mkdtemp(prefix="reconcile-transport-")
    path = os.path.join(d, "engine.sock")
    lst = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    lst.bind(path)
    lst.listen(0)
    fillers: list[socket.socket] = []
    try:
        for _ in range(64):  # bounded: Linux queues backlog + 1
            c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            c.setblocking(False)
            try:
                c.connect(path)
            except BlockingIOError:
                c.close()
                break
            fillers.append(c)
        else:
            raise AssertionError("the backlog never filled")
        yield path, lst
    finally:
        for c in fillers:
            c.close()
        lst.close()
        os.unlink(path)
        os.rmdir(d)


def _answer_one(lst: socket.socket, after: float) -> None:
    """After ``after`` s, accept everything queued; answer the request that is not a filler."""
    time.sleep(after)
    lst.settimeout(5)
    for _ in range(8):
        conn, _addr = lst.accept()
        conn.settimeout(0.5)
        try:
            head = conn.recv(65536)
        except TimeoutError:
            conn.close()
            continue
        if head.startswith(b"GET "):
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: application/json\r\n\r\n{}")
            conn.close()
            return
        conn.close()


def test_a_connect_the_full_backlog_refused_waits_for_room_within_the_timeout(
        full_listener: tuple[str, socket.socket]) -> None:
    """With a time-out the socket is non-blocking, and a full unix backlog answers EAGAIN
    at once (seen with 10 threads connecting to a busy listener): the call waits for room."""
    path, lst = full_listener
    th = threading.Thread(target=_answer_one, args=(lst, 0.3), daemon=True)
    th.start()
    t0 = time.monotonic()
    r = UnixTransport(path, BASE).request("GET", f"{BASE}/v1.41/x", headers={}, timeout=5)
    assert r.status_code == 200 and r.json() == {}
    assert 0.25 <= time.monotonic() - t0 < 5
    th.join(5)


def test_a_backlog_that_stays_full_is_a_connect_timeout(full_listener: tuple[str, socket.socket]) -> None:
    path, _lst = full_listener
    t0 = time.monotonic()
    with pytest.raises(requests.exceptions.ConnectTimeout, match="within 0.3 s"):
        UnixTransport(path, BASE).request("GET", f"{BASE}/v1.41/x", headers={}, timeout=0.3)
    assert 0.2 <= time.monotonic() - t0 < 2


def test_no_socket_is_a_connection_error() -> None:
    t = UnixTransport("/nonexistent/reconcile-test.sock", BASE)
    with pytest.raises(requests.exceptions.ConnectionError, match="reconcile-test.sock"):
        t.request("GET", f"{BASE}/v1.41/x", headers={}, timeout=1)


@pytest.mark.parametrize(("args", "kwargs", "plain"), [
    ((), {"params": {"all": 1}, "timeout": 5}, True),
    ((), {"data": '{"a": 1}', "headers": {"Content-Type": "application/json"}, "timeout": 5}, True),
    ((), {"data": b"tar bytes", "timeout": 5}, True),
    ((), {"stream": True, "timeout": None}, False),  # the event stream, logs that follow, attach
    ((), {"stream": False, "timeout": 5}, True),
    ((), {"data": iter([b"x"]), "timeout": 5}, False),  # a build context streamed from a file
    ((), {"files": {"f": b"x"}}, False),
    ((), {"json": {"a": 1}}, False),
    ((), {"data": None, "json": None, "timeout": 5}, True),  # Session.post's own call
    ((), {"verify": False}, False),
    (("GET",), {}, False),  # positional arguments: requests' own path
])
def test_only_plain_calls_take_the_transport(args: tuple[Any, ...], kwargs: dict[str, Any], plain: bool) -> None:
    assert is_plain(args, kwargs) is plain


@pytest.mark.parametrize(("params", "encoded"), [
    (None, ""), ({}, ""), ({"a": None}, ""), ({"a": True, "b": 0}, "a=True&b=0"),
    ({"t": 10}, "t=10"), ([("k", "v"), ("k", "w")], "k=v&k=w"), ("raw=1", "raw=1"),
])
def test_query_strings_are_encoded_as_requests_encodes_them(params: Any, encoded: str) -> None:
    assert query(params) == encoded
    if isinstance(params, (dict, list)) and params:
        prepared = requests.Request("GET", "http://localhost/x", params=params).prepare()
        assert (prepared.url or "").partition("?")[2] == encoded


def test_the_sdk_client_takes_the_transport_and_keeps_its_own_error_handling(server: _Server) -> None:
    api = _APIClient(base_url=f"unix://{_sock(server)}", version="auto", timeout=5)
    assert api._lean is not None and api.api_version == "1.41"
    n = len(server.seen)
    assert api.containers(all=True, filters={"label": ["x=y"]}) == {"path": server.seen[-1]["path"]}
    assert len(server.seen) == n + 1 and server.seen[-1]["path"].startswith("/v1.41/containers/json?")
    assert server.seen[-1]["headers"]["accept-encoding"] == "identity"  # this transport's, not requests'
    import docker.errors

    with pytest.raises(docker.errors.NotFound, match="No such container: missing"):
        api.inspect_container("missing")
    api.start("abc")  # a POST (requests' Session.post passes json=None)
    seen = server.seen[-1]
    assert seen["method"] == "POST" and seen["path"] == "/v1.41/containers/abc/start"
    # http.client's own Accept-Encoding: requests' transport would have asked for gzip
    assert seen["headers"]["accept-encoding"] == "identity"
    api.close()


def test_engine_errors_are_translated_as_before_through_the_transport(server: _Server) -> None:
    e = Engine(base_url=f"unix://{_sock(server)}")
    assert e.version()["ApiVersion"] == "1.41"
    with pytest.raises(ImageMissing, match="No such image"):
        e._call("images.inspect", lambda api: api.inspect_image("nosuch"))
    with pytest.raises(NotFound, match="No such container"):
        e.inspect("missing")
    with pytest.raises(NameConflict, match="already in use"):
        e._call("containers.create", lambda api: api.create_container_from_config({"Image": "x"}, "web-1"))
