"""controller.record: writes survive store faults (kept in order, bounded, overlaid on
the stored statuses) and a repeating failure is audited once an hour. The store seam
is a small in-memory stand-in that refuses writes while ``full`` (sqlite's own error, as
a full disk raises it); tests/e2e/test_faults.py meets a real full and read-only disk."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

import pytest

from controller.record import REPEAT_EVERY, LastFailure, Recorder
from store.records import Event, Status

T0 = 1_000_000.0


class MemoryStore:
    def __init__(self) -> None:
        self.full = False
        self.events: list[Event] = []
        self.statuses: dict[str, Status] = {}

    def record(self, events: Iterable[Event] = (), statuses: Iterable[Status] = (),
               drop_statuses: Iterable[str] = ()) -> None:
        if self.full:
            raise sqlite3.OperationalError("database or disk is full")
        self.events.extend(events)
        self.statuses.update({st.name: st for st in statuses})
        for name in drop_statuses:
            self.statuses.pop(name, None)


def _ev(n: int, etype: str = "Restarted", service: str = "web") -> Event:
    return Event(ts=T0 + n, service=service, type=etype, reason=f"#{n}")


def test_writes_refused_by_the_store_are_kept_and_written_in_order_later() -> None:
    store = MemoryStore()
    rec = Recorder(store, lambda: T0)
    store.full = True
    rec.record([_ev(1)], [Status("web", restart_count=1)])
    rec.record([_ev(2)], [Status("web", restart_count=2)])
    rec.record([], [], ["gone"])
    assert store.events == [] and rec.failing_since == T0 and rec.unrecorded_events == 2
    # meanwhile the statuses read back are the ones kept, not the stale stored ones
    seen = rec.overlay({"web": Status("web"), "gone": Status("gone")})
    assert seen["web"].restart_count == 2 and "gone" not in seen
    store.full = False
    rec.record([_ev(3)])
    assert [e.reason for e in store.events] == ["#1", "#2", "#3"]
    assert store.statuses["web"].restart_count == 2 and rec.failing_since is None and rec.unrecorded_events == 0


def test_the_backlog_is_bounded_dropping_the_oldest() -> None:
    store = MemoryStore()
    store.full = True
    rec = Recorder(store, lambda: T0, max_unrecorded_events=3)
    for n in range(5):
        rec.record([_ev(n)])
    assert rec.unrecorded_events == 3
    store.full = False
    rec.record([])
    assert [e.reason for e in store.events] == ["#2", "#3", "#4"]


def test_other_errors_are_not_swallowed() -> None:
    class Broken(MemoryStore):
        def record(self, *a: object, **k: object) -> None:
            raise ValueError("a bug, not a store fault")

    with pytest.raises(ValueError):
        Recorder(Broken(), lambda: T0).record([_ev(1)])


FAILED = [_ev(0, "Restarted"), _ev(1, "Failed"), _ev(2, "EngineDegraded")]


@pytest.mark.parametrize("before, errors, now, audited", [
    (None, ["x failed"], T0, ["Restarted", "Failed", "EngineDegraded"]),  # first time: audited
    (LastFailure("x failed", T0), ["x failed"], T0 + 10, ["Restarted"]),  # same, within the hour: not again
    (LastFailure("x failed", T0), ["x failed"], T0 + REPEAT_EVERY, ["Restarted", "Failed", "EngineDegraded"]),
    (LastFailure("x failed", T0), ["y failed"], T0 + 10, ["Restarted", "Failed", "EngineDegraded"]),  # new message
    (LastFailure("x failed", T0), ["x failed", "y failed"], T0 + 10, ["Restarted", "Failed", "EngineDegraded"]),
    (LastFailure("x failed", T0), [], T0 + 10, ["Restarted", "Failed", "EngineDegraded"]),  # no errors: as is
])
def test_a_repeating_failure_is_audited_once_an_hour(before: LastFailure | None, errors: list[str], now: float,
                                                     audited: list[str]) -> None:
    rec = Recorder(MemoryStore(), lambda: now)
    if before is not None:
        rec.audited_failures("web", before.message.split("; "), [], before.at)
    assert [e.type for e in rec.audited_failures("web", errors, FAILED, now)] == audited


def test_a_success_forgets_the_last_failure_and_services_are_apart() -> None:
    rec = Recorder(MemoryStore(), lambda: T0)
    assert len(rec.audited_failures("web", ["x"], FAILED, T0)) == 3
    assert len(rec.audited_failures("db", ["x"], FAILED, T0 + 1)) == 3  # another service's failure is its own
    assert len(rec.audited_failures("web", ["x"], FAILED, T0 + 2)) == 1
    rec.audited_failures("web", [], [], T0 + 3)  # it worked once
    assert len(rec.audited_failures("web", ["x"], FAILED, T0 + 4)) == 3
