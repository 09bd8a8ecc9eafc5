"""controller.nodelease: the agent's local deadline and its lease ticks, on a fake clock and
an in-memory lease store with the store's rules (tokens increase on every new holding)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from controller.nodelease import NodeOwnership, margin, renew_every
from store.records import Fence, NodeLease


@dataclass
class Clock:
    t: float = 100.0

    def __call__(self) -> float:
        return self.t


@dataclass
class MemLeases:
    """store.nodes.Nodes' lease rules, in memory, on the same fake clock."""

    clock: Clock
    rows: dict[str, NodeLease] = field(default_factory=dict)
    fail: bool = False

    def acquire(self, node: str, holder: str, *, ttl: float, now: float | None = None,
                dead_holder: str = "") -> Fence | None:
        if self.fail:
            raise OSError("store unreachable")
        row = self.rows.get(node, NodeLease(node, "", 0, 0.0, 0.0))
        t = self.clock()
        if row.holder and row.expires_at >= t and row.holder != dead_holder:
            return None
        self.rows[node] = NodeLease(node, holder, row.token + 1, t, t + ttl)
        return Fence(node, holder, row.token + 1)

    def renew(self, fence: Fence, *, ttl: float, now: float | None = None) -> bool:
        if self.fail:
            raise OSError("store unreachable")
        row = self.rows[fence.node]
        if (row.holder, row.token) != (fence.holder, fence.token):
            return False
        self.rows[fence.node] = NodeLease(row.node, row.holder, row.token, row.acquired_at, self.clock() + ttl)
        return True

    def release(self, fence: Fence) -> None:
        row = self.rows[fence.node]
        if (row.holder, row.token) == (fence.holder, fence.token):
            self.rows[fence.node] = NodeLease(row.node, "", row.token, row.acquired_at, 0.0)

    def lease(self, node: str) -> NodeLease | None:
        return self.rows.get(node)


def agent(leases: MemLeases, clock: Clock, holder: str = "agent:elsewhere:1", ttl: float = 9.0) -> NodeOwnership:
    return NodeOwnership(leases, "n1", holder, ttl, clock)


@pytest.mark.parametrize(("ttl", "want"), [(15.0, 3.0), (3.0, 0.6), (1.0, 0.5), (0.5, 0.25)])
def test_the_margin_is_a_fifth_of_the_ttl_within_bounds(ttl: float, want: float) -> None:
    assert margin(ttl) == pytest.approx(want)
    assert renew_every(ttl) + margin(ttl) < ttl  # a renewal is due well before the deadline


def test_the_local_deadline_comes_before_the_row_expires() -> None:
    clock = Clock()
    leases = MemLeases(clock)
    a = agent(leases, clock)
    assert not a.may_act()
    assert a.tick().kind == "acquired"
    row = leases.rows["n1"]
    assert a.deadline == pytest.approx(100.0 + 9.0 - margin(9.0)) and a.deadline < row.expires_at
    clock.t = a.deadline - 0.01
    assert a.may_act()
    clock.t = a.deadline
    assert not a.may_act()  # no renewal: acting stops at the deadline, before the row expires
    assert clock.t < row.expires_at


def test_a_renewal_moves_the_deadline_and_a_late_one_counts_as_regained() -> None:
    clock = Clock()
    leases = MemLeases(clock)
    a = agent(leases, clock)
    a.tick()
    clock.t += 3
    assert a.tick().kind == "renewed"
    assert a.deadline == pytest.approx(103.0 + 9.0 - margin(9.0))
    clock.t = a.deadline + 0.5  # lapsed, but nobody took the node: same token
    t = a.tick()
    assert (t.kind, t.token) == ("regained", 1) and a.may_act()


def test_store_errors_leave_the_deadline_to_pass_by_itself() -> None:
    clock = Clock()
    leases = MemLeases(clock)
    a = agent(leases, clock)
    a.tick()
    leases.fail = True
    clock.t += 4
    with pytest.raises(OSError):
        a.tick()
    assert a.may_act()  # still before the deadline of the last good renewal
    clock.t = a.deadline
    assert not a.may_act()


def test_a_second_agent_is_refused_while_the_lease_is_live_and_takes_over_after() -> None:
    clock = Clock()
    leases = MemLeases(clock)
    a, b = agent(leases, clock, "agent:elsewhere:1"), agent(leases, clock, "agent:elsewhere:2")
    a.tick()
    t = b.tick()
    assert (t.kind, t.holder) == ("refused", "agent:elsewhere:1") and not b.may_act()
    clock.t += 9.5  # a's row expired (a stopped renewing)
    t = b.tick()
    assert (t.kind, t.token) == ("acquired", 2) and b.may_act()
    assert not a.may_act()  # a's deadline passed long before
    assert a.tick().kind == "lost" and a.fence is None
    b.release()
    assert leases.rows["n1"].holder == ""
