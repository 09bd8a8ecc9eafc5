"""The read-only status page ``reconcile run --metrics-addr`` serves at ``/``, beside
``/metrics`` and ``/healthz`` (``controller.metrics`` owns the server and asks this
module first).

Routes (all GET; JSON unless said otherwise):
- ``/``, ``/ui/app.js``, ``/ui/app.css``: the static page shipped in ``controller/ui``
  (no build step, nothing fetched from elsewhere; a strict Content-Security-Policy says so);
- ``/api/services``: every service's row (``controller.overview``, the rows of
  ``reconcile status``) and the newest audit id;
- ``/api/services/NAME?hours=24``: its row, its redacted spec and its timeline over the
  last 24 h (or 6 h, 1 h) (``controller.timeline``);
- ``/api/events?service=&type=&since=&until=&before=&limit=``: one page of the audit,
  newest first, with the cursor of the next (``controller.pageapi``);
- ``/api/stream``: server-sent events. Each client is served by its own thread (the
  server's), which tails the audit table by id (``Last-Event-ID`` or ``?after=`` resume),
  sends each new row as an ``audit`` event and a comment line as heartbeat; at most
  ``max_streams`` at once (others get 503 and retry), each for at most ``stream_seconds``
  (the client reconnects where it left off); a client that went away is noticed at the
  next write (heartbeat at the latest) and its thread ends.

Who may read what: ``controller.pageapi`` (the token). Read-only: nothing here writes.
Must not import the CLI, ``controller.operations``, SQLAlchemy or the engine.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from controller import pageapi, timeline
from controller.overview import status_rows

if TYPE_CHECKING:
    from store import Store
    from store.records import Desired, Event, Status

TIMELINE_ROW_LIMIT = 5000  # band-setting rows of one service in a window read for its timeline (newest kept)
_STATIC = {"/": ("index.html", "text/html; charset=utf-8"), "/ui/app.js": ("app.js", "text/javascript; charset=utf-8"),
           "/ui/app.css": ("app.css", "text/css; charset=utf-8")}
_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


@dataclass(frozen=True)
class PageOptions:
    token: str | None = None
    max_streams: int = 8
    poll_seconds: float = 0.25
    heartbeat_seconds: float = 10.0
    stream_seconds: float = 3600.0


def _static_files() -> dict[str, bytes]:
    ui = resources.files("controller") / "ui"
    return {path: (ui / name).read_bytes() for path, (name, _) in _STATIC.items()}


class StatusPage:
    """Answers the page's requests on the metrics server; ``handle`` says whether it did."""

    def __init__(self, store: Store, opts: PageOptions, clock: Callable[[], float] = time.time):
        self.store, self.opts, self.clock = store, opts, clock
        self.files = _static_files()
        self._slots = threading.BoundedSemaphore(opts.max_streams)
        self.stopping = threading.Event()

    def close(self) -> None:
        self.stopping.set()

    # -- dispatch ------------------------------------------------------------------
    def handle(self, h: BaseHTTPRequestHandler) -> bool:
        """Answer ``h``'s request when it is the page's (or an unauthorised ``/metrics``);
        False leaves it to the metrics server."""
        url = urlsplit(h.path)
        path = url.path
        if pageapi.needs_token(path) and not pageapi.authorized(h.headers.get("Authorization"), self.opts.token):
            _send(h, 401, {"error": "this page needs its token: Authorization: Bearer <token> (see README, "
                                    "Status page)"}, extra={"WWW-Authenticate": 'Bearer realm="reconcile"'})
            return True
        if path in _STATIC:
            _send_bytes(h, 200, self.files[path], _STATIC[path][1])
            return True
        if not path.startswith("/api/"):
            return False
        params = parse_qs(url.query, keep_blank_values=True)
        try:
            self._api(h, path, params)
        except pageapi.QueryError as exc:
            _send(h, 400, {"error": str(exc)})
        return True

    def _api(self, h: BaseHTTPRequestHandler, path: str, params: dict[str, list[str]]) -> None:
        if path == "/api/services":
            _send(h, 200, self.services())
        elif path.startswith("/api/services/"):
            detail = self.detail(unquote(path.removeprefix("/api/services/")), pageapi.parse_hours(params))
            _send(h, 200 if detail is not None else 404, detail or {"error": "no such service"})
        elif path == "/api/events":
            _send(h, 200, self.events(params))
        elif path == "/api/stream":
            self.stream(h, params)
        else:
            _send(h, 404, {"error": "not found"})

    # -- the JSON answers ----------------------------------------------------------
    def services(self) -> dict[str, Any]:
        return {"now": self.clock(), "services": status_rows(self.store), "lastEventId": self.store.last_event_id()}

    def detail(self, name: str, hours: float = pageapi.TIMELINE_HOURS) -> dict[str, Any] | None:
        rec = self.store.get(name)
        if rec is None:
            return None
        row = next(r for r in status_rows(_One(self.store, name)) if r["name"] == name)
        now = self.clock()
        start = now - hours * 3600.0
        # only the rows that set a band (newest first, one page of the index)
        rows = self.store.events_page(service=name, types=list(timeline.STATE_TYPES), since=start,
                                      limit=TIMELINE_ROW_LIMIT)
        before = self.store.last_event_before(name, start, timeline.STATE_TYPES)
        if len(rows) == TIMELINE_ROW_LIMIT:  # truncated: the oldest row read sets the state before it
            before = None
        return pageapi.service_detail(row, rec.spec, [*([before] if before else []), *rows], now=now, hours=hours,
                                      truncated=len(rows) == TIMELINE_ROW_LIMIT)

    def events(self, params: dict[str, list[str]]) -> dict[str, Any]:
        q = pageapi.parse_events_query(params, self.clock())
        rows = self.store.events_page(service=q.service, types=list(q.types) or None, since=q.since, until=q.until,
                                      before=q.before, limit=q.limit)
        return pageapi.events_page(rows, q.limit)

    # -- live updates ----------------------------------------------------------------
    def stream(self, h: BaseHTTPRequestHandler, params: dict[str, list[str]]) -> None:
        if not self._slots.acquire(blocking=False):
            _send(h, 503, {"error": f"at most {self.opts.max_streams} live clients"}, extra={"Retry-After": "5"})
            return
        try:
            resume = h.headers.get("Last-Event-ID") or (params.get("after") or [""])[0]
            after = int(resume) if resume.isdigit() else self.store.last_event_id()
            h.close_connection = True
            h.send_response(200)
            for k, v in {"Content-Type": "text/event-stream", "Cache-Control": "no-store",
                         "X-Content-Type-Options": "nosniff"}.items():
                h.send_header(k, v)
            h.end_headers()
            self._tail(h, after)
        except OSError:
            pass  # the client went away (broken pipe, reset, timeout): its thread ends here
        finally:
            self._slots.release()

    def _tail(self, h: BaseHTTPRequestHandler, after: int) -> None:
        started = beat = time.monotonic()
        h.wfile.write(f"retry: 2000\nid: {after}\nevent: hello\ndata: {{}}\n\n".encode())
        h.wfile.flush()
        while not self.stopping.is_set() and time.monotonic() - started < self.opts.stream_seconds:
            rows = self.store.events_after(after, limit=200)
            for e in rows:
                h.wfile.write(f"id: {e.id}\nevent: audit\ndata: {json.dumps(e.to_json())}\n\n".encode())
                after = e.id or after
            if not rows and time.monotonic() - beat >= self.opts.heartbeat_seconds:
                h.wfile.write(b": heartbeat\n\n")
                beat = time.monotonic()
            elif rows:
                beat = time.monotonic()
            h.wfile.flush()
            if len(rows) < 200:
                self.stopping.wait(self.opts.poll_seconds)


class _One:
    """A reader of one service's rows for ``status_rows`` (not all 200 to show one)."""

    def __init__(self, store: Store, name: str):
        self.store, self.name = store, name

    def desired(self) -> dict[str, Desired]:
        rec = self.store.get(self.name)
        return {} if rec is None else {self.name: rec}

    def statuses(self) -> dict[str, Status]:
        st = self.store.status(self.name)
        return {} if st is None else {self.name: st}

    def last_events(self, names: Iterable[str]) -> dict[str, Event]:
        return self.store.last_events(names)


def _send(h: BaseHTTPRequestHandler, code: int, body: Any, extra: dict[str, str] | None = None) -> None:
    _send_bytes(h, code, json.dumps(body, separators=(",", ":")).encode(), "application/json", extra)


def _send_bytes(h: BaseHTTPRequestHandler, code: int, body: bytes, ctype: str,
                extra: dict[str, str] | None = None) -> None:
    h.send_response(code)
    headers = {"Content-Type": ctype, "Content-Length": str(len(body)), "Cache-Control": "no-store",
               "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "Content-Security-Policy": _CSP,
               **(extra or {})}
    for k, v in headers.items():
        h.send_header(k, v)
    h.end_headers()
    h.wfile.write(body)
