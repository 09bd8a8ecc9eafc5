"""controller.fence: when a node cut off from the store stops its movable containers, with
which grace, and that every stop ends before the agent's deadline (so ``margin`` before the
lease can expire). Time is a parameter: a last renewal at t=100 on the monotonic clock."""

from __future__ import annotations

import pytest

from controller import fence
from controller.fence import Candidate, Fenced, Stop
from controller.nodelease import margin, renew_every
from controller.observed import Observed

RENEWED = 100.0


def deadline(ttl: float) -> float:
    return RENEWED + ttl - margin(ttl)


def cand(service: str = "web", grace: float = 1.0, cid: str = "c1", replica: int = 1) -> Candidate:
    return Candidate(cid * 8, f"{service}-{replica}", service, replica, grace)


@pytest.mark.parametrize(("ttl", "expected"), [
    (6.0, 1),     # the e2e TTL: 6 - 1.2 - 3 - 0.75 = 1.05
    (15.0, 3),    # the default: 15 - 3 - 7.5 - 0.75 = 3.75
    (30.0, 8),
    (36.0, 10),   # the default stopGracePeriod fits from here
    (3.0, 0),     # 3 - 0.6 - 1.5 - 0.75 = 0.15: a kill
    (1.0, 0),
])
def test_max_grace(ttl: float, expected: int) -> None:
    assert fence.max_grace(ttl) == expected


@pytest.mark.parametrize(("grace", "ttl"), [(0.0, 1.0), (1.0, 6.0), (3.0, 13.0), (4.0, 16.0), (10.0, 36.0)])
def test_ttl_for_grace_is_the_smallest_that_fits(grace: float, ttl: float) -> None:
    assert fence.ttl_for_grace(grace) == ttl
    assert fence.max_grace(ttl) >= grace
    assert ttl == 1.0 or fence.max_grace(ttl - 1) < grace


@pytest.mark.parametrize(("ttl", "grace", "now", "stops", "timeout"), [
    # ttl 6: deadline 104.8; earliest stop 103.0; grace 1 is due at 104.8 - 0.75 - 1 = 103.05
    (6.0, 1.0, 101.0, False, None),    # renewed a second ago
    (6.0, 1.0, 102.5, False, None),    # one renewal (at 102) is late: nothing yet
    (6.0, 1.0, 103.0, False, None),    # the earliest moment, but its grace needs only 103.05
    (6.0, 1.0, 103.05, True, 1),       # due: the whole grace
    (6.0, 1.0, 103.3, True, 1),        # one fence tick late: still the whole grace
    (6.0, 1.0, 104.0, True, 0),        # too late for a grace: killed at once
    (6.0, 1.0, 110.0, True, 0),        # past the deadline (a paused process): still stopped
    (6.0, 0.0, 104.05, True, 0),       # no grace: stopped last, a kill
    (6.0, 0.0, 104.0, False, None),
    (6.0, 10.0, 103.0, False, None),   # a grace that does not fit is cut to max_grace...
    (6.0, 10.0, 103.05, True, 1),      # ... and due as that one
    # the default TTL 15: deadline 112; earliest 107.5; grace 3 due at 108.25
    (15.0, 3.0, 108.2, False, None),
    (15.0, 3.0, 108.25, True, 3),
    (15.0, 10.0, 108.25, True, 3),     # cut from 10 s to 3 s
    (15.0, 1.5, 110.25, True, 1),      # a fractional grace is rounded up (the engine counts seconds)...
    (15.0, 1.5, 109.25, True, 2),      # ... and due earlier for it
    (15.0, 1.0, 109.0, False, None),
])
def test_decide(ttl: float, grace: float, now: float, stops: bool, timeout: int | None) -> None:
    out = fence.decide([cand(grace=grace)], deadline=deadline(ttl), ttl=ttl, now=now)
    assert bool(out) is stops
    if stops:
        [s] = out
        assert s.timeout == timeout and s.grace == grace
        # issued when due, a stop with this timeout ends before the agent's deadline
        if now <= fence.due_at(cand(grace=grace), deadline=deadline(ttl), ttl=ttl) + fence.TICK:
            assert now + s.timeout + fence.STOP_SLACK <= deadline(ttl) + 1e-9


@pytest.mark.parametrize("ttl", [2.5, 3.0, 4.0, 6.0, 9.0, 15.0, 20.0, 30.0, 60.0])
@pytest.mark.parametrize("grace", [0.0, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0])
def test_every_stop_due_ends_before_the_deadline_and_after_a_missed_renewal(ttl: float, grace: float) -> None:
    c = cand(grace=grace)
    due = fence.due_at(c, deadline=deadline(ttl), ttl=ttl)
    assert due >= RENEWED + renew_every(ttl) * fence.EARLIEST  # a merely late renewal stops nothing
    assert due >= fence.first_due(deadline(ttl), ttl)
    for late in (0.0, fence.TICK / 2, fence.TICK):
        [s] = fence.decide([c], deadline=deadline(ttl), ttl=ttl, now=due + late)
        assert due + late + s.timeout + fence.STOP_SLACK <= deadline(ttl) + 1e-9
        assert deadline(ttl) <= RENEWED + ttl - margin(ttl)  # and the deadline is margin before expiry
    assert not fence.decide([c], deadline=deadline(ttl), ttl=ttl, now=due - 0.01)


def test_decide_skips_what_is_being_stopped_and_orders_the_shortest_first() -> None:
    cands = [cand("slow", 1.0, "a"), cand("quick", 0.0, "b"), cand("other", 1.0, "c", replica=2)]
    out = fence.decide(cands, deadline=deadline(6.0), ttl=6.0, now=103.1, issued=frozenset({"c" * 8}))
    assert [(s.service, s.timeout) for s in out] == [("slow", 1)]  # "quick" (no grace) is due later
    out = fence.decide(cands, deadline=deadline(6.0), ttl=6.0, now=104.1)
    assert [(s.service, s.timeout) for s in out] == [("other", 0), ("quick", 0), ("slow", 0)]


@pytest.mark.parametrize(("ttl", "fits"), [(1.0, False), (2.0, False), (2.5, True), (6.0, True), (15.0, True)])
def test_fits(ttl: float, fits: bool) -> None:
    """Below 2.5 s even a kill at the earliest moment cannot be sure to end before the deadline."""
    assert fence.fits(ttl) is fits


def _obs(cid: str, service: str, state: str, node: str | None) -> Observed:
    labels = {} if node is None else {"reconcile.node": node}
    return Observed(cid, f"{service}-1", service, 1, "inst", "h", 1, state, None, "", "img", 1.0, labels=labels)


def test_candidates_are_this_nodes_running_containers_of_movable_services() -> None:
    seen = [_obs("1", "mover", "running", "n1"), _obs("2", "mover", "exited", "n1"),
            _obs("3", "pinned", "running", "n1"), _obs("4", "mover", "running", "n2"),
            _obs("5", "mover", "running", None)]
    out = fence.candidates(seen, "n1", {"mover": 2.0})
    assert out == [Candidate("1", "mover-1", "mover", 1, 2.0)]


@pytest.mark.parametrize(("grace", "ttl", "warns"), [(1.0, 6.0, False), (2.0, 6.0, True), (3.0, 15.0, False),
                                                     (10.0, 15.0, True), (10.0, 36.0, False)])
def test_grace_note(grace: float, ttl: float, warns: bool) -> None:
    note = fence.grace_note("web", grace, ttl)
    assert (note is not None) is warns
    if note:
        assert "web" in note and f"{fence.max_grace(ttl)}s" in note and f"{fence.ttl_for_grace(grace):g}s" in note


@pytest.mark.parametrize(("timeout", "grace", "cut"), [(1, 1.0, False), (3, 10.0, True)])
def test_fenced_event(timeout: int, grace: float, cut: bool) -> None:
    f = Fenced(Stop("ab" * 32, "web-1", "web", 1, timeout, grace), at=1_000_005.0, renewed_at=1_000_000.0)
    e = fence.fenced_event(f, "n2", generation=3)
    assert (e.type, e.service, e.container_id, e.generation, e.actor, e.ts) == (
        "FencedStop", "web", "ab" * 32, 3, "agent:n2", 1_000_005.0)
    assert e.reason.startswith("stopped: node n2 lost its lease") and "1970-01-12T13:46:40Z" in e.reason
    assert "may be rescheduled" in e.reason
    assert f"{timeout}s grace" in e.message and ("cut from" in e.message) is cut
