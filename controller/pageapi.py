"""The status page's rules, as plain functions: who may read it (the bearer token and the
loopback rule), what an events query means (filters and the paging cursor), and what a
service's detail shows (its row, its spec with secret values redacted, its timeline).

``controller.statuspage`` serves these over HTTP; ``reconcile run`` calls
``token_for`` before it starts. No HTTP, no store, no clock: the time comes in as ``now``.

Access (README, "Status page"):
- bound to a loopback address (127.0.0.1 by default) the page needs no token;
- bound beyond loopback, ``run`` refuses to start (exit 2) without ``--ui-token-file``;
- with a token, every ``/api/*`` request and ``/metrics`` need ``Authorization: Bearer
  <token>`` (Prometheus sends it with ``authorization: {credentials_file: ...}``);
  ``/healthz`` stays open (liveness checks rarely send headers, and it tells only
  whether the loop ticks), and so do ``/`` and ``/ui/*``, which are the package's static
  files and carry no data. The token never travels in a URL: the page takes it from the
  address's fragment (``#token=...``, which browsers do not send) and sends it as a header,
  live updates included (read with ``fetch``, not ``EventSource``, which cannot send one).
"""

from __future__ import annotations

import hmac
import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from controller import timeline
from crd_like.errors import InvalidSpec, Issue
from crd_like.secrets import redact_spec
from store.records import Event

MIN_TOKEN_CHARS = 16
DEFAULT_PAGE = 100
MAX_PAGE = 500
TIMELINE_HOURS = 24.0
WINDOWS_HOURS = (1.0, 6.0, 24.0)  # what a service's timeline may span (?hours=)
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_TYPE = re.compile(r"^[A-Za-z]{1,32}$")


# -- access -------------------------------------------------------------------------
def is_loopback(host: str) -> bool:
    """Whether a --metrics-addr host is reachable from this host only ('' binds 127.0.0.1)."""
    if host in ("", "localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def token_for(addr: str | None, token_file: str | None) -> str | None:
    """The token the page requires (None: none), or ``InvalidSpec`` (exit 2) when the
    address is beyond loopback without a token file, or the file is unusable."""
    if addr is None:
        if token_file is not None:
            raise InvalidSpec([Issue("--ui-token-file", None, "", "needs --metrics-addr HOST:PORT (the address "
                                     "the page is served on); without it nothing is served")])
        return None
    host = addr.rpartition(":")[0]
    if token_file is None:
        if is_loopback(host):
            return None
        raise InvalidSpec([Issue("--metrics-addr", None, "", f"{addr} is reachable from other hosts: give "
                                 "--ui-token-file PATH (a file holding a bearer token of at least "
                                 f"{MIN_TOKEN_CHARS} characters), or bind 127.0.0.1")])
    try:
        with open(token_file, encoding="utf-8") as fh:
            token = fh.read().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidSpec([Issue(token_file, None, "", f"cannot read the token file: {exc}")]) from exc
    if len(token) < MIN_TOKEN_CHARS or any(c.isspace() for c in token):
        raise InvalidSpec([Issue(token_file, 1, "", f"expected one bearer token of at least {MIN_TOKEN_CHARS} "
                                 "characters without spaces")])
    return token


def needs_token(path: str) -> bool:
    """Which paths the token guards (see the module docstring)."""
    return path.startswith(("/api/", "/metrics"))


def authorized(header: str | None, token: str | None) -> bool:
    """An ``Authorization`` header against the token (constant-time); no token: open."""
    if token is None:
        return True
    scheme, _, value = (header or "").strip().partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), token.encode())


# -- queries -------------------------------------------------------------------------
class QueryError(ValueError):
    """A query parameter the page cannot use (HTTP 400, the message says which)."""


@dataclass(frozen=True)
class EventQuery:
    service: str | None = None
    types: tuple[str, ...] = ()
    since: float | None = None
    until: float | None = None
    before: tuple[float, int] | None = None
    limit: int = DEFAULT_PAGE


def _one(params: Mapping[str, Sequence[str]], key: str) -> str | None:
    values = [v for v in params.get(key, ()) if v != ""]
    if len(values) > 1:
        raise QueryError(f"{key}: given {len(values)} times, expected once")
    return values[0] if values else None


def parse_time(value: str, now: float, key: str) -> float:
    """Epoch seconds, or a span back from ``now`` ('30m', '24h', '7d')."""
    rel = _RELATIVE.match(value)
    if rel:
        return now - float(rel.group(1)) * _UNITS[rel.group(2)]
    try:
        return float(value)
    except ValueError:
        raise QueryError(f"{key}: {value!r} is neither epoch seconds nor a span like 30m, 24h, 7d") from None


def parse_events_query(params: Mapping[str, Sequence[str]], now: float) -> EventQuery:
    """``/api/events``' parameters: service, type (comma-separated), since, until, before
    (the ``next`` cursor of the previous page), limit (1..500)."""
    unknown = sorted(set(params) - {"service", "type", "since", "until", "before", "limit"})
    if unknown:
        raise QueryError(f"unknown parameter {unknown[0]!r} (expected service, type, since, until, before, limit)")
    service = _one(params, "service")
    if service is not None and not _NAME.match(service):
        raise QueryError(f"service: {service!r} is not a resource name")
    types = tuple(t for v in params.get("type", ()) for t in v.split(",") if t)
    bad = [t for t in types if not _TYPE.match(t)]
    if bad:
        raise QueryError(f"type: {bad[0]!r} is not an event type (letters only, e.g. Restarted)")
    since, until = _one(params, "since"), _one(params, "until")
    return EventQuery(service=service, types=types,
                      since=None if since is None else parse_time(since, now, "since"),
                      until=None if until is None else parse_time(until, now, "until"),
                      before=_cursor(_one(params, "before")), limit=_limit(_one(params, "limit")))


def _cursor(value: str | None) -> tuple[float, int] | None:
    if value is None:
        return None
    ts, _, row_id = value.partition(":")
    try:
        return float(ts), int(row_id)
    except ValueError:
        raise QueryError(f"before: {value!r} is not a cursor (use the 'next' of the previous page)") from None


def _limit(value: str | None) -> int:
    if value is None:
        return DEFAULT_PAGE
    if not value.isdigit() or not 1 <= int(value) <= MAX_PAGE:
        raise QueryError(f"limit: {value!r} is not a whole number from 1 to {MAX_PAGE}")
    return int(value)


def events_page(rows: list[Event], limit: int) -> dict[str, Any]:
    """A page of rows (newest first) and the cursor of the next, older page (None: last)."""
    last = rows[-1] if len(rows) == limit and rows else None
    return {"events": [e.to_json() for e in rows], "next": None if last is None else cursor_of(last)}


def cursor_of(e: Event) -> str:
    """The ``before`` cursor that pages on after ``e``: its (ts, id), exactly."""
    return f"{e.ts!r}:{e.id}"


# -- a service's detail ----------------------------------------------------------------
def parse_hours(params: Mapping[str, Sequence[str]]) -> float:
    """``/api/services/NAME?hours=``: the timeline's span, one of ``WINDOWS_HOURS`` (default 24)."""
    unknown = sorted(set(params) - {"hours"})
    if unknown:
        raise QueryError(f"unknown parameter {unknown[0]!r} (expected hours)")
    value = _one(params, "hours")
    if value is None:
        return TIMELINE_HOURS
    allowed = ", ".join(f"{h:g}" for h in WINDOWS_HOURS)
    try:
        hours = float(value)
    except ValueError:
        raise QueryError(f"hours: {value!r} is not one of {allowed}") from None
    if hours not in WINDOWS_HOURS:
        raise QueryError(f"hours: {value!r} is not one of {allowed}")
    return hours


def service_detail(row: Mapping[str, Any], spec: Mapping[str, Any], rows: Sequence[Event], *, now: float,
                   hours: float = TIMELINE_HOURS, truncated: bool = False) -> dict[str, Any]:
    """What the page shows of one service: its status row, its spec with every stored
    secret value redacted (``redact_spec``, as ``describe``), and its timeline over the
    last ``hours`` from ``rows`` (the window's rows plus the state-setting row before it)."""
    line = timeline.build(rows, start=now - hours * 3600.0, end=now)
    return {"service": dict(row), "spec": redact_spec(dict(spec)), "timeline": line.to_json(),
            "truncated": truncated}
