"""Flap damping, digests and delivery backoff of one notifier: pure functions of its
stored state, the outbox rows it wants, and ``now``.

``step(state, pending, now, policy)`` decides the next thing to do with a notifier's
outbox, one at a time and in order:

- a digest is due (damped notices waiting, the window since the first of them over):
  send the digest;
- else the first pending notice either becomes a message (its service's last message of
  the same family, ``notify_rules.FAMILIES``, is older than the window, and fewer than
  ``digestAfter`` messages went to this sink in the last minute), or is damped: kept
  for the digest, the cursor moving past it without a message.

A paired state said again without its other end between (``CrashLoopBackOff`` after each
restart of one crash loop) is no state change: no message, only counted.

The state (JSON-able: ``last`` message time and ``seen`` event per service and family,
``sent`` times of the last minute, ``held`` notices, ``related`` counts per service) is stored with the cursor only once the
step's message is delivered, so a crash repeats the same step: the same message with the
same idempotency key (at-least-once).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from controller import notify_rules as rules
from store.records import Notice

MINUTE = 60.0
MAX_HELD = 100  # damped notices a digest lists; beyond, only counted


@dataclass(frozen=True)
class Policy:
    window: float = 60.0
    digest_after: int = 10

    @classmethod
    def of(cls, spec: Mapping[str, Any]) -> Policy:
        d = spec.get("damping") or {}
        return cls(float(d.get("window", 60.0)), int(d.get("digestAfter", 10)))


@dataclass(frozen=True)
class Step:
    """What to do next: send ``body`` (None: nothing to send, only store ``state``), then
    store ``state`` with the cursor at ``cursor``. ``wake_at``: when a damped digest falls
    due (None: nothing waits)."""

    body: dict[str, Any] | None
    cursor: int
    state: dict[str, Any]
    wake_at: float | None = None


def _fresh(state: Mapping[str, Any]) -> dict[str, Any]:
    return {"last": dict(state.get("last") or {}), "sent": list(state.get("sent") or []),
            "held": list(state.get("held") or []), "held_total": int(state.get("held_total") or 0),
            "held_since": state.get("held_since"), "related": dict(state.get("related") or {}),
            "seen": dict(state.get("seen") or {})}


def _digest_due(st: Mapping[str, Any], now: float, policy: Policy) -> bool:
    since = st.get("held_since")
    return bool(st["held"]) and since is not None and now >= float(since) + policy.window


def step(state: Mapping[str, Any], pending: Sequence[Notice], cursor: int, now: float, policy: Policy,
         who: tuple[str, str]) -> Step | None:
    """The next step for a notifier at ``cursor`` (``who``: its name and the host); None
    when there is nothing to do now (see ``wake``)."""
    notifier, host = who
    st = _fresh(state)
    st["sent"] = [t for t in st["sent"] if now - float(t) < MINUTE]
    if _digest_due(st, now, policy):
        held = st["held"]
        key = f"{notifier}:digest:{held[0]['id']}-{held[-1]['id']}"
        body = rules.digest(held, notifier=notifier, host=host, key=key, total=st["held_total"], now=now)
        st.update(held=[], held_total=0, held_since=None)
        st["sent"].append(now)
        return Step(body, cursor, st)
    if not pending:
        return None
    n = pending[0]
    fam = f"{n.service}|{rules.family(n)}"
    st["related"][n.service] = int(st["related"].get(n.service, 0)) + 1
    seen = st["seen"].get(fam)
    st["seen"][fam] = n.event
    if _no_change(n, seen):
        return Step(None, n.id, st, wake_at=wake(st, policy))
    last = st["last"].get(fam)
    if (last is not None and n.ts - float(last) < policy.window) or len(st["sent"]) >= policy.digest_after:
        if len(st["held"]) < MAX_HELD:
            st["held"].append({"id": n.id, "ts": n.ts, "service": n.service, "event": n.event, "reason": n.reason})
        st["held_total"] += 1
        if st["held_since"] is None:
            st["held_since"] = now
        return Step(None, n.id, st, wake_at=float(st["held_since"]) + policy.window)
    count = st["related"].pop(n.service)
    st["last"][fam] = n.ts
    st["sent"].append(now)
    body = rules.message(n, notifier=notifier, host=host, key=f"{notifier}:{n.id}", count=count)
    return Step(body, n.id, st)


def _no_change(n: Notice, seen: str | None) -> bool:
    """A paired state (crash loop, health, engine) said again without its other end between
    (a crash loop re-entered after each restart), or its end without a start seen: not a
    state change, no message (counted in the next one's ``count``)."""
    if rules.family(n) == n.event:  # not one end of a pair
        return False
    return n.event == seen or (seen is None and n.event in rules.ENDINGS)


def wake(state: Mapping[str, Any], policy: Policy) -> float | None:
    """When the damped notices of ``state`` make a digest (None: none wait)."""
    since = state.get("held_since")
    return None if not state.get("held") or since is None else float(since) + policy.window


def retry_delay(attempts: int, spec: Mapping[str, Any]) -> float:
    """The delay after the ``attempts``-th failed attempt in a row: ``initial * 2**(n-1)``,
    capped at ``max``."""
    r = spec.get("retry") or {}
    initial, cap = float(r.get("initial", 1.0)), float(r.get("max", 300.0))
    return float(min(cap, initial * 2 ** min(max(attempts - 1, 0), 40)))
