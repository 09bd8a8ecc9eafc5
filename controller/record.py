"""Recording: the one place status and audit rows are written to the store.

- ``Recorder.record(events, statuses, drop)`` writes them in one transaction. When the
  store cannot take them (disk full, read-only), they are kept in memory, in order and
  bounded (``MAX_UNRECORDED_EVENTS``; the oldest writes are dropped first), and written
  before anything newer once it accepts writes again: a store fault must never stop the
  containers from being healed. ``overlay`` lays what is kept over the stored statuses,
  so the backoff and restart counts stay right meanwhile.
- ``Recorder.audited_failures`` de-duplicates failure rows: a service's failure that
  repeats with the same message is audited once an hour (``REPEAT_EVERY``), not on every
  retry (an unattended host would otherwise fill its history). What was last audited is
  data: a ``LastFailure`` per service, forgotten when the service succeeds.

No engine calls and no status arithmetic here (``controller.advance`` does that).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from loguru import logger

from store.errors import StoreError
from store.records import Event, Status

MAX_UNRECORDED_EVENTS = 10_000
REPEAT_EVERY = 3600.0  # seconds between two audit rows of one repeating failure
WARN_EVERY = 60.0  # seconds between two log lines saying the store refuses writes
FAILURE_TYPES = frozenset({"Failed", "EngineDegraded"})  # the rows a repeated failure is not audited with again


class RecordingStore(Protocol):
    def record(self, events: Iterable[Event] = (), statuses: Iterable[Status] = (),
               drop_statuses: Iterable[str] = ()) -> None: ...


@dataclass(frozen=True)
class Write:
    """One write: audit rows, statuses to store, statuses to drop (by service name)."""

    events: tuple[Event, ...] = ()
    statuses: tuple[Status, ...] = ()
    drop: tuple[str, ...] = ()


@dataclass(frozen=True)
class LastFailure:
    """The failure last audited for a service: its message and when."""

    message: str
    at: float

    def repeated_by(self, message: str, now: float) -> bool:
        return self.message == message and now - self.at < REPEAT_EVERY


def _is_store_fault(exc: Exception) -> bool:
    return isinstance(exc, StoreError) or StoreError.wraps(exc)


class Recorder:
    def __init__(self, store: RecordingStore, clock: Callable[[], float],
                 max_unrecorded_events: int = MAX_UNRECORDED_EVENTS):
        self.store = store
        self.clock = clock
        self.max_unrecorded_events = max_unrecorded_events
        self._lock = threading.Lock()
        self._backlog: list[Write] = []  # what the store could not take yet, oldest first
        self._failures: dict[str, LastFailure] = {}
        self.failing_since: float | None = None  # when the store began refusing writes
        self._warned_at = 0.0

    @property
    def unrecorded_events(self) -> int:
        with self._lock:
            return sum(len(w.events) for w in self._backlog)

    def overlay(self, statuses: dict[str, Status]) -> dict[str, Status]:
        """``statuses`` (as stored) with the writes still kept in memory laid over them."""
        with self._lock:
            for w in self._backlog:
                for st in w.statuses:
                    statuses[st.name] = st
                for name in w.drop:
                    statuses.pop(name, None)
        return statuses

    def record(self, events: Sequence[Event] = (), statuses: Sequence[Status] = (),
               drop: Sequence[str] = ()) -> None:
        """Write (after anything kept from before); on a store fault, keep it and go on."""
        with self._lock:
            backlog = [*self._backlog, Write(tuple(events), tuple(statuses), tuple(drop))]
            try:
                while backlog:
                    w = backlog[0]
                    self.store.record(list(w.events), list(w.statuses), list(w.drop))
                    backlog.pop(0)
            except Exception as exc:
                if not _is_store_fault(exc):
                    raise
                self._keep(backlog, exc)
                return
            if self.failing_since is not None:
                logger.info("the store accepts writes again; the audit rows kept meanwhile are written")
                self.failing_since = None
                self._warned_at = 0.0
            self._backlog = []

    def _keep(self, backlog: list[Write], exc: Exception) -> None:
        kept = sum(len(w.events) for w in backlog)
        while kept > self.max_unrecorded_events and len(backlog) > 1:
            kept -= len(backlog.pop(0).events)
        self._backlog = backlog
        now = self.clock()
        if self.failing_since is None:
            self.failing_since = now
        if now - self._warned_at >= WARN_EVERY:
            self._warned_at = now
            logger.error(f"cannot record in the store ({StoreError.describe(exc)}); containers are still "
                         f"healed, {kept} audit row(s) kept in memory until it accepts writes")

    def audited_failures(self, service: str, errors: Sequence[str], events: Sequence[Event],
                         now: float) -> list[Event]:
        """``events`` without the failure rows of a failure audited less than an hour ago
        with the same message. A run without errors forgets the service's last failure."""
        if not errors:
            with self._lock:
                self._failures.pop(service, None)
            return list(events)
        message = "; ".join(errors)
        with self._lock:
            last = self._failures.get(service)
            repeat = last is not None and last.repeated_by(message, now)
            if not repeat:
                self._failures[service] = LastFailure(message, now)
        if repeat:
            return [e for e in events if e.type not in FAILURE_TYPES]
        return list(events)
