"""An agent's hold on its node: the node lease, its fencing token and the local deadline.

``NodeOwnership.tick()`` acquires the node's lease (``store.nodes.Nodes.acquire``: a new,
larger token) or renews it (same token). The agent may act on its engine only while
``may_act()``: it holds a token and its **local deadline** has not passed. The deadline is
``start of the last successful renewal + ttl - margin`` on the monotonic clock: the row's
expiry is at least ``ttl`` after that start (the database stamps it later), so the agent
stops before anyone else may take the node over, as long as the two clocks run at about the
same rate (the margin absorbs the difference). A renewal that succeeds after the deadline
has passed counts as a re-acquisition (``Tick.regained``): the node may have been given up
meanwhile, so the agent removes what was moved away before it does anything else.

Time is a parameter (``mono``); nothing here talks to the engine or the database directly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from controller.lease import holder_is_dead
from store.records import Fence, NodeLease


class NodeLeaseStore(Protocol):
    """What ownership needs of the store (``store.nodes.Nodes`` has it)."""

    def acquire(self, node: str, holder: str, *, ttl: float, now: float | None = None,
                dead_holder: str = "") -> Fence | None: ...
    def renew(self, fence: Fence, *, ttl: float, now: float | None = None) -> bool: ...
    def release(self, fence: Fence) -> None: ...
    def lease(self, node: str) -> NodeLease | None: ...


def margin(ttl: float) -> float:
    """How long before the lease's own expiry an agent stops acting (a fifth of the TTL,
    at least half a second, at most half the TTL)."""
    return min(max(0.2 * ttl, 0.5), ttl / 2)


def renew_every(ttl: float) -> float:
    return ttl / 3


TickKind = Literal["acquired", "renewed", "regained", "lost", "refused"]


@dataclass(frozen=True)
class Tick:
    kind: TickKind
    holder: str = ""  # refused: the live holder that keeps the node
    token: int = 0


@dataclass
class NodeOwnership:
    store: NodeLeaseStore
    node: str
    holder: str
    ttl: float
    mono: Callable[[], float]
    fence: Fence | None = None
    deadline: float = 0.0  # monotonic; acting stops at it

    def may_act(self) -> bool:
        return self.fence is not None and self.mono() < self.deadline

    def tick(self) -> Tick:
        """One acquisition or renewal attempt. Store errors propagate: the deadline then
        simply passes and ``may_act`` turns False by itself."""
        started = self.mono()
        if self.fence is not None:
            lapsed = started >= self.deadline
            if self.store.renew(self.fence, ttl=self.ttl):
                self.deadline = started + self.ttl - margin(self.ttl)
                return Tick("regained" if lapsed else "renewed", token=self.fence.token)
            self.fence = None  # another agent took the node (or it was released)
            self.deadline = 0.0
            return Tick("lost")
        row = self.store.lease(self.node)
        dead = row.holder if row is not None and row.holder and holder_is_dead(row.holder) else ""
        fence = self.store.acquire(self.node, self.holder, ttl=self.ttl, dead_holder=dead)
        if fence is None:
            row = self.store.lease(self.node)
            return Tick("refused", holder=row.holder if row is not None else "")
        self.fence = fence
        self.deadline = started + self.ttl - margin(self.ttl)
        return Tick("acquired", token=fence.token)

    def release(self) -> None:
        if self.fence is not None:
            self.store.release(self.fence)
            self.fence = None
            self.deadline = 0.0
