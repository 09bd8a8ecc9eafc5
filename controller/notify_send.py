"""The sender: delivers each notifier's outbox, in order, inside ``reconcile run``.

``Sender.tick(now)`` (a scheduler job of the lease holder; one at a time) takes each
notifier in turn: when its retry time has come, it reads the outbox after the notifier's
cursor, keeps what the notifier wants (``notify_rules.wants``), and runs
``notify_damping.step`` until nothing is due, sending each step's message
(``notify_sinks.deliver``) before storing the step (cursor and damping state) with its
audit row. A failed attempt stores the attempt count and the next attempt's time
(exponential, capped); the cursor does not move, so the next message is always the
oldest undelivered one, and a restart (or a SIGKILL) resends it with the same
idempotency key: at-least-once.

Audit rows: ``NotifyDelivered`` per message, ``NotifyFailed`` once per failure streak and
error text (not per retry). Neither makes a notice (``notify_rules.event_type``).
Outbox rows every notifier has dealt with are deleted every ten minutes (bounded batches).
Everything is bounded: steps per tick (``MAX_STEPS``), time per tick (``BUDGET``), each
attempt (the notifier's ``timeout``).
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from loguru import logger

from controller import notify_damping as damping
from controller import notify_rules as rules
from controller import notify_sinks as sinks
from crd_like.secrets import redact_text
from store.errors import StoreError
from store.notify import NotifyStore
from store.records import Event, Notice, NotifierState
from store.repository import Store

MAX_STEPS = 200  # steps (messages or damped notices) per notifier per tick
BUDGET = 20.0  # seconds of delivering per tick, over all notifiers
PAGE = 500  # outbox rows read at once
PRUNE_EVERY = 600.0  # seconds between two prunes of the delivered outbox rows
STORE_WARN_EVERY = 60.0  # seconds between two warnings that the store cannot be read


@dataclass(frozen=True)
class Delivery:
    """A test message's result: delivered, or why not."""

    ok: bool
    error: str = ""


def host_name() -> str:
    return socket.gethostname()


class Sender:
    def __init__(self, store: Store, clock: Callable[[], float], *, host: str | None = None,
                 deliver: Callable[[Mapping[str, Any], dict[str, Any]], None] = sinks.deliver):
        self.store = store
        self.notify = NotifyStore(store)
        self.clock = clock
        self.host = host or host_name()
        self.deliver = deliver
        self._prune_at = 0.0
        self._store_warned_at = -STORE_WARN_EVERY

    def tick(self) -> None:
        """Deliver what is due for every notifier (bounded); never raises."""
        start = self.clock()
        try:
            if start >= self._prune_at:  # what every notifier has dealt with goes
                self._prune_at = start + PRUNE_EVERY
                self.notify.prune()
            notifiers = self.notify.notifiers()
            if not notifiers:
                return
            labels = {n: d.metadata.get("labels") or {} for n, d in self.store.desired().items()}
        except Exception as exc:  # noqa: BLE001 - the store may be busy, full or unreachable: next tick
            if start - self._store_warned_at >= STORE_WARN_EVERY:  # one line a minute, not one a tick
                self._store_warned_at = start
                logger.warning(f"notifications: cannot read the store ({StoreError.describe(exc)}); trying again")
            return
        for n in notifiers:
            if self.clock() - start > BUDGET:
                return
            try:
                self._run(n, labels, start)
            except Exception as exc:  # noqa: BLE001 - one notifier's trouble never stops the others
                logger.error(f"notifier {n.name}: {redact_text(str(exc), _secrets(n))}")

    def _run(self, n: NotifierState, labels: Mapping[str, Mapping[str, str]], start: float) -> None:
        if self.clock() < n.next_attempt_at:
            return
        policy = damping.Policy.of(n.spec)
        cursor, state, attempts = n.cursor, n.damping, n.attempts
        pending, end = self._wanted(n, cursor, labels)
        for _ in range(MAX_STEPS):
            now = self.clock()
            if now - start > BUDGET:
                return
            step = damping.step(state, pending, cursor, now, policy, (n.name, self.host))
            if step is None:
                if not pending and cursor < end:  # only rows this notifier does not want
                    self.notify.advance(n.name, cursor=end, damping=dict(state), delivered_at=None)
                return
            if step.body is not None:
                try:
                    self.deliver(n.spec, step.body)
                except sinks.DeliveryFailed as exc:
                    self._failed(n, attempts + 1, str(exc), step.body, now)
                    return
            done = [self._delivered(n, step.body, attempts, now)] if step.body is not None else []
            if not self.notify.advance(n.name, cursor=step.cursor, damping=step.state,
                                       delivered_at=now if step.body is not None else None, events=done):
                return
            cursor, state, attempts = step.cursor, step.state, 0
            pending = [p for p in pending if p.id > cursor]

    def _wanted(self, n: NotifierState, cursor: int,
                labels: Mapping[str, Mapping[str, str]]) -> tuple[list[Notice], int]:
        """The outbox rows after ``cursor`` this notifier wants, and the last row read."""
        rows = self.notify.pending(cursor, limit=PAGE)
        end = rows[-1].id if rows else cursor
        return [r for r in rows if rules.wants(n.spec, r, labels.get(r.service) if r.service else None)], end

    def _delivered(self, n: NotifierState, body: Mapping[str, Any], attempts: int, now: float) -> Event:
        after = f" after {attempts + 1} attempts" if attempts else ""
        return Event(ts=now, service=n.name, type="NotifyDelivered", reason=f"{body['event']} delivered{after}",
                     message=f"{body['summary']} (key {body['idempotencyKey']})", actor="controller")

    def _failed(self, n: NotifierState, attempts: int, error: str, body: Mapping[str, Any], now: float) -> None:
        delay = damping.retry_delay(attempts, n.spec)
        first = attempts == 1 or error != n.last_error
        events = [Event(ts=now, service=n.name, type="NotifyFailed", reason=error,
                        message=f"{body['event']} (key {body['idempotencyKey']}); attempt {attempts}, "
                                f"retrying in {delay:g}s", actor="controller")] if first else []
        if first:
            logger.warning(f"notifier {n.name}: delivery failed: {error}; retrying in {delay:g}s")
        self.notify.failed(n.name, attempts=attempts, next_attempt_at=now + delay, error=error, now=now,
                           events=events)

    def test(self, name: str) -> Delivery | None:
        """Send a test message to notifier NAME now (None: no such notifier). Audited."""
        n = self.notify.get(name)
        if n is None:
            return None
        now = self.clock()
        notice = Notice(ts=now, service="", event="Test", reason="reconcile notify test", id=0)
        body = rules.message(notice, notifier=name, host=self.host, key=f"{name}:test:{now:.6f}", count=1)
        try:
            self.deliver(n.spec, body)
        except sinks.DeliveryFailed as exc:
            self.store.record([Event(ts=now, service=name, type="NotifyFailed", reason=str(exc),
                                     message="test message", actor="cli")])
            return Delivery(False, str(exc))
        self.store.record([Event(ts=now, service=name, type="NotifyDelivered", reason="Test delivered",
                                 message=f"test message (key {body['idempotencyKey']})", actor="cli")])
        return Delivery(True)


def _secrets(n: NotifierState) -> list[str]:
    try:
        return sinks.resolve(n.spec).values()
    except sinks.DeliveryFailed:
        return []


def backlog(notify: NotifyStore, n: NotifierState, labels: Mapping[str, Mapping[str, str]]) -> int:
    """The outbox rows this notifier wants and has not dealt with yet (damped ones included)."""
    rows = notify.pending(n.cursor, limit=100_000)
    wanted = sum(1 for r in rows if rules.wants(n.spec, r, labels.get(r.service) if r.service else None))
    return wanted + int(n.damping.get("held_total") or 0)
