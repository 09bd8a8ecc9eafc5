"""The controller lease's rules (controller/lease.py), on a fake store and a fake clock:
free -> taken; ours -> renewed; a live holder -> kept by it (named); a holder on this host
whose process is gone -> taken over at once; a holder on another host -> never presumed
dead, waited out until its claim expires."""

from __future__ import annotations

import os
import socket

import pytest

from controller.lease import Lease, holder_id, holder_is_dead

HOST = socket.gethostname()


def _dead_pid() -> int:
    """A pid no process can have: one above the kernel's pid_max (a reaped child's pid can be
    reused within minutes on a busy host, which made this test flaky)."""
    with open("/proc/sys/kernel/pid_max", encoding="ascii") as fh:
        return int(fh.read()) + 1


class FakeStore:
    """The store's lease row semantics: one row (holder, expires_at)."""

    def __init__(self, row: tuple[str, float] | None = None):
        self.row = row

    def lease(self, *, now: float) -> tuple[str, float] | None:
        return self.row if self.row is not None and self.row[1] > now else None

    def acquire_lease(self, holder: str, *, ttl: float, now: float) -> bool:
        if self.row is None or self.row[1] <= now or self.row[0] == holder:
            self.row = (holder, now + ttl)
            return True
        return False

    def take_over_lease(self, holder: str, *, dead_holder: str, ttl: float, now: float) -> bool:
        if self.row is not None and self.row[0] == dead_holder:
            self.row = (holder, now + ttl)
            return True
        return False

    def release_lease(self, holder: str) -> None:
        if self.row is not None and self.row[0] == holder:
            self.row = None


ME = holder_id("cli")
LIVE = f"controller:{HOST}:{os.getppid()}"  # the process that started the tests: alive
DEAD = f"controller:{HOST}:{_dead_pid()}"
REMOTE = "controller:another-host.example:1"


@pytest.mark.parametrize("row, now, held, took_over, other", [
    (None, 100.0, True, "", ""),                       # free
    ((ME, 130.0), 100.0, True, "", ""),                # ours: renewed
    ((LIVE, 130.0), 100.0, False, "", LIVE),           # a live holder keeps it
    ((DEAD, 130.0), 100.0, True, DEAD, ""),            # its process is gone: taken over now
    ((REMOTE, 130.0), 100.0, False, "", REMOTE),       # another host: never presumed dead
    ((REMOTE, 130.0), 131.0, True, "", ""),            # ... until its claim expires
])
def test_claim(row: tuple[str, float] | None, now: float, held: bool, took_over: str, other: str) -> None:
    store = FakeStore(row)
    lease = Lease(store, ME, ttl=30.0, clock=lambda: now)
    claim = lease.claim()
    assert (claim.held, claim.took_over_from, claim.other) == (held, took_over, other)
    if held:
        assert store.row == (ME, now + 30.0)
    else:
        assert store.row == row


@pytest.mark.parametrize("row, other", [
    (None, ""), ((ME, 130.0), ""), ((LIVE, 130.0), LIVE), ((DEAD, 130.0), ""), ((REMOTE, 130.0), REMOTE),
])
def test_other_live_holder(row: tuple[str, float] | None, other: str) -> None:
    assert Lease(FakeStore(row), ME, ttl=30.0, clock=lambda: 100.0).other_live_holder() == other


def test_release_gives_up_only_our_own_claim() -> None:
    store = FakeStore((LIVE, 130.0))
    Lease(store, ME, ttl=30.0, clock=lambda: 100.0).release()
    assert store.row == (LIVE, 130.0)
    lease = Lease(store, LIVE, ttl=30.0, clock=lambda: 100.0)
    lease.release()
    assert store.row is None


@pytest.mark.parametrize("holder, dead", [
    (DEAD, True), (LIVE, False), (REMOTE, False), ("garbage", False), (f"x:{HOST}:notapid", False),
])
def test_holder_is_dead(holder: str, dead: bool) -> None:
    assert holder_is_dead(holder) is dead
