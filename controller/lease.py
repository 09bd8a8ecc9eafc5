"""The controller lease: which process may act on this store's containers.

One row in the store (``store.acquire_lease`` / ``take_over_lease`` / ``release_lease``)
names the holder and when its claim expires. Two kinds of holder use it through this
module, with the same rules: the daemon (``reconcile run``, ``loop.Controller``: renews
it every few seconds, acts only while it holds it) and an inline apply (``operations.
converge``: takes it for the length of its passes when no daemon holds it, else leaves
the work to the daemon). A holder is ``role:host:pid``; a lease whose holder ran on this
host and whose process is gone is taken over at once instead of waiting for its expiry.

Time is a parameter (``clock``); nothing here talks to the engine.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


class LeaseStore(Protocol):
    """What the lease needs of the store (``store.repository.Store`` has it)."""

    def acquire_lease(self, holder: str, *, ttl: float, now: float) -> bool: ...
    def take_over_lease(self, holder: str, *, dead_holder: str, ttl: float, now: float) -> bool: ...
    def release_lease(self, holder: str) -> None: ...
    def lease(self, *, now: float) -> tuple[str, float] | None: ...


def holder_id(role: str) -> str:
    """This process as a lease holder: ``role:host:pid``."""
    return f"{role}:{socket.gethostname()}:{os.getpid()}"


def holder_is_dead(holder: str) -> bool:
    """True only when the holder ran on this host and its process no longer exists."""
    try:
        _role, host, pid = holder.rsplit(":", 2)
        if host != socket.gethostname():
            return False
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except (ValueError, PermissionError, OSError):
        return False
    return False


@dataclass(frozen=True)
class Claim:
    """The outcome of one attempt to hold the lease."""

    held: bool
    took_over_from: str = ""  # the dead holder whose lease was taken, if any
    other: str = ""  # the live holder that keeps it, when not held


@dataclass
class Lease:
    """One holder's view of the lease."""

    store: LeaseStore
    holder: str
    ttl: float
    clock: Callable[[], float]

    def other_live_holder(self) -> str:
        """The holder that keeps the lease now, if it is not this one and is not known to be
        dead; '' otherwise (free, ours, or its holder's process is gone)."""
        row = self.store.lease(now=self.clock())
        if row is None or row[0] == self.holder or holder_is_dead(row[0]):
            return ""
        return row[0]

    def claim(self) -> Claim:
        """Take or renew the lease; take it over from a holder whose process is gone."""
        if self.store.acquire_lease(self.holder, ttl=self.ttl, now=self.clock()):
            return Claim(True)
        row = self.store.lease(now=self.clock())
        if row is not None and holder_is_dead(row[0]) and self.store.take_over_lease(
                self.holder, dead_holder=row[0], ttl=self.ttl, now=self.clock()):
            return Claim(True, took_over_from=row[0])
        row = self.store.lease(now=self.clock())
        return Claim(False, other=row[0] if row is not None else "")

    def release(self) -> None:
        self.store.release_lease(self.holder)
