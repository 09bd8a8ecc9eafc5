"""The status page's HTTP answers (controller.statuspage over controller.metrics' server)
on a real SQLite store, over real HTTP on 127.0.0.1: the service list, one service's
detail (secret values redacted), the events filters and paging, the token, and the live
stream picking up a row written after it connected. No engine: the rows are written the
way the controller writes them (``Store.record``)."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from controller.metrics import Metrics, serve
from controller.statuspage import PageOptions, StatusPage
from crd_like import API_VERSION, ServiceSpec, spec_hash
from store import Event, ResourceInput, Status, Store

TOKEN = "page-token-0123456789abcdef"
SECRET = "hunter2-stored-secret"


def res(name: str, **spec: Any) -> ResourceInput:
    model = ServiceSpec.model_validate({"image": "demo/web:1", **spec})
    return ResourceInput(name=name, kind="Service", api_version=API_VERSION,
                         spec=model.model_dump(mode="json", exclude_defaults=True),
                         metadata={"name": name, "labels": {}}, spec_hash=spec_hash(model))


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Served:
    def __init__(self, store: Store, token: str | None, **opts: Any):
        self.store = store
        self.port = _port()
        self.page = StatusPage(store, PageOptions(token=token, poll_seconds=0.05, **opts))
        self.server = serve(f"127.0.0.1:{self.port}", Metrics(), lambda: {"ok": True}, self.page)
        self.base = f"http://127.0.0.1:{self.port}"

    def get(self, path: str, token: str | None = None) -> tuple[int, dict[str, str], bytes]:
        req = urllib.request.Request(self.base + path, headers={"Authorization": f"Bearer {token}"} if token else {})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read()

    def json(self, path: str, token: str | None = None) -> Any:
        code, _, body = self.get(path, token)
        assert code == 200, (path, code, body)
        return json.loads(body)

    def close(self) -> None:
        self.page.close()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    # rows relative to the test's own start (the page's relative filters read the clock)
    now = time.time()
    s = Store.open(store_url)
    s.apply([res("web", env={"DB_PASSWORD": {"valueFrom": {"secret": SECRET}}}), res("worker")], source="f",
            actor="cli", now=now - 7200)
    s.record([Event(ts=now - 3600, service="web", type="Created", reason="missing"),
              Event(ts=now - 600, service="web", type="Died", reason="container exited with code 137"),
              Event(ts=now - 599, service="web", type="Restarted", reason="container exited with code 137"),
              Event(ts=now - 300, service="worker", type="Created", reason="missing"),
              Event(ts=now - 10, service="", type="StormDetected", reason="too many")],
             [Status(name="web", state="Running", restart_count=1), Status(name="worker", state="Running")])
    yield s
    s.close()


@pytest.fixture
def open_page(store: Store) -> Iterator[Served]:
    page = Served(store, None)
    yield page
    page.close()


def test_page_and_static_files(open_page: Served) -> None:
    code, headers, body = open_page.get("/")
    assert code == 200 and headers["Content-Type"].startswith("text/html")
    assert b"/ui/app.js" in body and b"http" not in body.replace(b'http-equiv', b'')
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    total = len(body)
    for path in ("/ui/app.js", "/ui/app.css"):
        code, _, part = open_page.get(path)
        assert code == 200
        total += len(part)
    assert total < 200_000, f"page weight {total} bytes"


def test_services_rows(open_page: Served) -> None:
    data = open_page.json("/api/services")
    rows = {r["name"]: r for r in data["services"]}
    assert sorted(rows) == ["web", "worker"]
    assert rows["web"]["state"] == "Running" and rows["web"]["restartCount"] == 1
    assert rows["web"]["lastEvent"]["type"] == "Restarted"
    assert data["lastEventId"] == open_page.store.last_event_id()
    assert SECRET not in json.dumps(data)


def test_detail_timeline_and_redaction(open_page: Served) -> None:
    d = open_page.json("/api/services/web")
    assert SECRET not in json.dumps(d)
    assert d["spec"]["env"]["DB_PASSWORD"] == {"valueFrom": {"secret": "<redacted>"}}
    states = [b["state"] for b in d["timeline"]["bands"]]
    assert states == ["unknown", "running", "down", "running"]
    assert len(d["timeline"]["restarts"]) == 1
    code, _, _ = open_page.get("/api/services/nope")
    assert code == 404


@pytest.mark.parametrize(("query", "types"), [
    ("", ["StormDetected", "Created", "Restarted", "Died", "Created", "Applied", "Applied"]),
    ("?service=web", ["Restarted", "Died", "Created", "Applied"]),
    ("?type=Created", ["Created", "Created"]),
    ("?type=Died,Restarted&service=web", ["Restarted", "Died"]),
    ("?since=15m", ["StormDetected", "Created", "Restarted", "Died"]),
    ("?since=2h&until=20m", ["Created"]),
])
def test_events_filters(open_page: Served, query: str, types: list[str]) -> None:
    assert [e["type"] for e in open_page.json("/api/events" + query)["events"]] == types


def test_events_paging_walks_every_row_once(open_page: Served) -> None:
    seen: list[int] = []
    cursor = ""
    for _ in range(10):
        page = open_page.json("/api/events?limit=2" + (f"&before={cursor}" if cursor else ""))
        seen.extend(e["id"] for e in page["events"])
        if page["next"] is None:
            break
        cursor = page["next"]
    everything = [e["id"] for e in open_page.json("/api/events")["events"]]
    assert seen == everything and len(seen) == 7


def test_bad_query_is_400_naming_the_parameter(open_page: Served) -> None:
    code, _, body = open_page.get("/api/events?limit=9999")
    assert code == 400 and b"limit" in body


def test_token_guards_data_and_metrics_not_health(store: Store) -> None:
    page = Served(store, TOKEN)
    try:
        for path in ("/api/services", "/api/events", "/api/services/web", "/api/stream", "/metrics"):
            code, headers, body = page.get(path)
            assert code == 401, path
            assert headers["WWW-Authenticate"].startswith("Bearer")
            assert page.get(path, "wrong-token-0123456789")[0] == 401
        assert page.get("/api/services", TOKEN)[0] == 200
        assert page.get("/metrics", TOKEN)[0] == 200
        assert page.get("/healthz")[0] == 200
        assert page.get("/")[0] == 200  # static files carry no data
        assert TOKEN.encode() not in page.get("/")[2] + page.get("/ui/app.js")[2]
    finally:
        page.close()


def _read_frames(resp: http.client.HTTPResponse, want: int, timeout: float) -> list[dict[str, str]]:
    frames: list[dict[str, str]] = []
    buf = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and len([f for f in frames if f.get("event") == "audit"]) < want:
        line = resp.fp.readline()
        if not line:
            break
        buf += line
        if line == b"\n":
            frame: dict[str, str] = {}
            for part in buf.decode().splitlines():
                if part and not part.startswith(":"):
                    k, _, v = part.partition(": ")
                    frame[k] = v
            if frame:
                frames.append(frame)
            buf = b""
    return frames


def test_stream_sends_new_rows_and_resumes(store: Store) -> None:
    page = Served(store, TOKEN, heartbeat_seconds=0.2)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", page.port, timeout=10)
        conn.request("GET", "/api/stream", headers={"Authorization": f"Bearer {TOKEN}"})
        resp = conn.getresponse()
        assert resp.status == 200 and resp.headers["Content-Type"] == "text/event-stream"
        first = resp.fp.readline()
        assert first == b"retry: 2000\n"
        threading.Timer(0.3, lambda: store.record([Event(ts=time.time(), service="web", type="Died",
                                                         reason="container exited with code 137")])).start()
        frames = _read_frames(resp, 1, timeout=5)
        audit = [f for f in frames if f.get("event") == "audit"]
        assert len(audit) == 1, frames
        row = json.loads(audit[0]["data"])
        assert row["type"] == "Died" and row["service"] == "web" and audit[0]["id"] == str(row["id"])
        conn.close()
        # resume from an older id: the rows after it, in order
        conn = http.client.HTTPConnection("127.0.0.1", page.port, timeout=10)
        conn.request("GET", "/api/stream", headers={"Authorization": f"Bearer {TOKEN}", "Last-Event-ID": "3"})
        resp = conn.getresponse()
        ids = [int(f["id"]) for f in _read_frames(resp, 5, timeout=5) if f.get("event") == "audit"]
        assert ids == list(range(4, 4 + len(ids))) and len(ids) == 5
        conn.close()
    finally:
        page.close()


def test_stream_cap_answers_503(store: Store) -> None:
    page = Served(store, None, max_streams=1, heartbeat_seconds=0.2)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", page.port, timeout=10)
        conn.request("GET", "/api/stream")
        assert conn.getresponse().status == 200
        code, headers, _ = page.get("/api/stream")
        assert code == 503 and headers["Retry-After"] == "5"
        conn.close()
        # the slot comes back once the server notices the client left (a heartbeat write fails)
        deadline = time.monotonic() + 10
        status = 503
        while time.monotonic() < deadline and status == 503:
            time.sleep(0.2)
            again = http.client.HTTPConnection("127.0.0.1", page.port, timeout=10)
            again.request("GET", "/api/stream")
            status = again.getresponse().status
            again.close()
        assert status == 200, "a client that went away frees its slot"
    finally:
        page.close()
