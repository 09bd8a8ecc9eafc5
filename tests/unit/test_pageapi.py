"""controller.pageapi: the status page's access rule, token check, events query and
redaction (table-driven; no HTTP, no store)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from controller import pageapi as P
from crd_like.errors import InvalidSpec
from crd_like.secrets import SECRET_PLACEHOLDER
from store.records import Event

NOW = 1_000_000.0
TOKEN = "s3cr3t-token-0123456789"


@pytest.mark.parametrize(("host", "loopback"), [
    ("", True), ("127.0.0.1", True), ("127.8.9.1", True), ("localhost", True), ("::1", True), ("[::1]", True),
    ("0.0.0.0", False), ("10.1.2.3", False), ("192.168.0.10", False), ("example.org", False), ("::", False),
])
def test_is_loopback(host: str, loopback: bool) -> None:
    assert P.is_loopback(host) is loopback


@pytest.mark.parametrize(("addr", "content", "want", "error"), [
    (None, None, None, None),
    ("127.0.0.1:9310", None, None, None),
    (":9310", None, None, None),
    ("localhost:9310", None, None, None),
    ("127.0.0.1:9310", TOKEN + "\n", TOKEN, None),
    ("0.0.0.0:9310", TOKEN + "\n", TOKEN, None),
    ("0.0.0.0:9310", None, None, "--metrics-addr: 0.0.0.0:9310 is reachable from other hosts: give --ui-token-file"),
    ("10.0.0.5:80", None, None, "--ui-token-file PATH"),
    ("0.0.0.0:9310", "short\n", None, "tok:1: expected one bearer token of at least 16 characters"),
    ("0.0.0.0:9310", "two words in it, long enough", None, "without spaces"),
    ("0.0.0.0:9310", "", None, "tok:1: expected one bearer token"),
    (None, TOKEN, None, "--ui-token-file: needs --metrics-addr"),
])
def test_token_for(tmp_path: Path, addr: str | None, content: str | None, want: str | None, error: str | None) -> None:
    path = None
    if content is not None:
        (tmp_path / "tok").write_text(content)
        path = str(tmp_path / "tok")
    if error is None:
        assert P.token_for(addr, path) == want
        return
    with pytest.raises(InvalidSpec) as exc:
        P.token_for(addr, path)
    text = str(exc.value).replace(str(tmp_path) + "/", "")
    assert error in text, text
    assert TOKEN not in text


def test_token_file_missing_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidSpec) as exc:
        P.token_for("0.0.0.0:1", str(tmp_path / "nope"))
    assert str(tmp_path / "nope") in str(exc.value) and "cannot read the token file" in str(exc.value)


@pytest.mark.parametrize(("header", "token", "ok"), [
    (None, None, True),
    ("anything", None, True),
    (None, TOKEN, False),
    ("", TOKEN, False),
    (f"Bearer {TOKEN}", TOKEN, True),
    (f"bearer {TOKEN}", TOKEN, True),
    (f"Bearer  {TOKEN} ", TOKEN, True),
    (f"Bearer {TOKEN}x", TOKEN, False),
    (f"Basic {TOKEN}", TOKEN, False),
    (TOKEN, TOKEN, False),
    ("Bearer ", TOKEN, False),
])
def test_authorized(header: str | None, token: str | None, ok: bool) -> None:
    assert P.authorized(header, token) is ok


@pytest.mark.parametrize(("path", "guarded"), [
    ("/", False), ("/ui/app.js", False), ("/healthz", False), ("/metrics", True), ("/api/services", True),
    ("/api/stream", True), ("/api/events", True),
])
def test_needs_token(path: str, guarded: bool) -> None:
    assert P.needs_token(path) is guarded


@pytest.mark.parametrize(("params", "want"), [
    ({}, P.EventQuery()),
    ({"service": ["web"]}, P.EventQuery(service="web")),
    ({"service": [""]}, P.EventQuery()),
    ({"type": ["Died,Restarted"]}, P.EventQuery(types=("Died", "Restarted"))),
    ({"type": ["Died", "BackOff"]}, P.EventQuery(types=("Died", "BackOff"))),
    ({"since": ["1h"]}, P.EventQuery(since=NOW - 3600)),
    ({"since": ["30m"], "until": ["5m"]}, P.EventQuery(since=NOW - 1800, until=NOW - 300)),
    ({"since": ["7d"]}, P.EventQuery(since=NOW - 7 * 86400)),
    ({"since": ["1234.5"]}, P.EventQuery(since=1234.5)),
    ({"before": ["999.25:42"], "limit": ["10"]}, P.EventQuery(before=(999.25, 42), limit=10)),
    ({"limit": ["500"]}, P.EventQuery(limit=500)),
])
def test_parse_events_query(params: dict[str, list[str]], want: P.EventQuery) -> None:
    assert P.parse_events_query(params, NOW) == want


@pytest.mark.parametrize(("params", "message"), [
    ({"servce": ["web"]}, "unknown parameter 'servce'"),
    ({"service": ["a", "b"]}, "service: given 2 times"),
    ({"service": ["../etc"]}, "service: '../etc' is not a resource name"),
    ({"type": ["Died;DROP"]}, "type: 'Died;DROP' is not an event type"),
    ({"since": ["yesterday"]}, "since: 'yesterday' is neither epoch seconds nor a span"),
    ({"until": ["1w"]}, "until: '1w'"),
    ({"before": ["42"]}, "before: '42' is not a cursor"),
    ({"limit": ["0"]}, "limit: '0' is not a whole number from 1 to 500"),
    ({"limit": ["501"]}, "limit: '501'"),
    ({"limit": ["-3"]}, "limit: '-3'"),
])
def test_bad_events_query(params: dict[str, list[str]], message: str) -> None:
    with pytest.raises(P.QueryError) as exc:
        P.parse_events_query(params, NOW)
    assert message in str(exc.value)


@pytest.mark.parametrize(("n", "limit", "has_next"), [(0, 100, False), (3, 100, False), (3, 3, True)])
def test_events_page_cursor(n: int, limit: int, has_next: bool) -> None:
    rows = [Event(ts=100.0 - i + 0.125, service="s", type="Died", id=50 - i) for i in range(n)]
    page = P.events_page(rows, limit)
    assert [e["id"] for e in page["events"]] == [r.id for r in rows]
    if has_next:
        assert page["next"] == "98.125:48"
        assert P.parse_events_query({"before": [page["next"]]}, NOW).before == (98.125, 48)
    else:
        assert page["next"] is None


SECRET = "hunter2-very-secret"


@pytest.mark.parametrize("spec", [
    {"image": "web:1", "env": {"DB_PASSWORD": {"valueFrom": {"secret": SECRET}}, "PLAIN": "x"}},
    {"image": "web:1", "files": {"/run/secrets/db": {"secret": SECRET, "mode": "0400"}}},
    {"image": "web:1", "env": {"A": {"valueFrom": {"secret": SECRET}}},
     "files": {"/etc/k": {"secret": SECRET}}},
])
def test_service_detail_redacts_secret_values(spec: dict[str, Any]) -> None:
    row = {"name": "web", "state": "Running"}
    detail = P.service_detail(row, spec, [Event(ts=NOW - 10, service="web", type="Created", id=1)], now=NOW)
    text = json.dumps(detail)
    assert SECRET not in text
    assert SECRET_PLACEHOLDER in text
    assert detail["timeline"]["bands"][-1] == {"start": NOW - 10, "end": NOW, "state": "running"}
    assert spec["image"] == "web:1" and SECRET in json.dumps(spec), "the stored spec itself is not changed"


@pytest.mark.parametrize(("params", "want"), [
    ({}, 24.0), ({"hours": ["24"]}, 24.0), ({"hours": ["6"]}, 6.0), ({"hours": ["1"]}, 1.0), ({"hours": ["1.0"]}, 1.0),
])
def test_parse_hours(params: dict[str, list[str]], want: float) -> None:
    assert P.parse_hours(params) == want


@pytest.mark.parametrize(("params", "message"), [
    ({"hours": ["48"]}, "hours: '48' is not one of 1, 6, 24"),
    ({"hours": ["day"]}, "hours: 'day' is not one of"),
    ({"hours": ["1", "6"]}, "hours: given 2 times"),
    ({"hour": ["1"]}, "unknown parameter 'hour'"),
])
def test_bad_hours(params: dict[str, list[str]], message: str) -> None:
    with pytest.raises(P.QueryError) as exc:
        P.parse_hours(params)
    assert message in str(exc.value)


def test_service_detail_window() -> None:
    rows = [Event(ts=NOW - 7200, service="web", type="Created", id=1), Event(ts=NOW - 60, service="web", type="Died", id=2)]
    line = P.service_detail({"name": "web"}, {"image": "x"}, rows, now=NOW, hours=1)["timeline"]
    assert line["start"] == NOW - 3600
    assert [b["state"] for b in line["bands"]] == ["running", "down"]
