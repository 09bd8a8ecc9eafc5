"""Flap damping, digests and retry backoff: pure, with a fake ``now`` (no sleeps)."""

from __future__ import annotations

from typing import Any

import pytest

from controller import notify_damping as damping
from store.records import Notice

WHO = ("ops", "h1")


def _run(notices: list[Notice], times: list[float], policy: damping.Policy,
         until: float | None = None) -> list[tuple[float, dict[str, Any]]]:
    """Feed each notice at its time (then tick until ``until``), as the sender does;
    answer the messages sent, with when."""
    state: dict[str, Any] = {}
    cursor = 0
    sent: list[tuple[float, dict[str, Any]]] = []
    clock = sorted(set(times + ([until] if until is not None else [])))
    for now in clock:
        pending = [n for n, t in zip(notices, times, strict=True) if t <= now and n.id > cursor]
        for _ in range(100):
            st = damping.step(state, pending, cursor, now, policy, WHO)
            if st is None:
                break
            if st.body is not None:
                sent.append((now, st.body))
            state, cursor = st.state, st.cursor
            pending = [p for p in pending if p.id > cursor]
    return sent


def _n(i: int, ts: float, event: str, service: str = "web") -> Notice:
    return Notice(ts=ts, service=service, event=event, reason=f"r{i}", id=i)


def test_a_flap_inside_the_window_is_one_message_and_a_digest() -> None:
    flaps = ["Unhealthy", "Recovered", "Unhealthy", "Recovered", "Unhealthy", "Recovered"]
    notices = [_n(i + 1, 10.0 + 5 * i, e) for i, e in enumerate(flaps)]
    sent = _run(notices, [n.ts for n in notices], damping.Policy(window=60.0), until=200.0)
    assert [b["event"] for _, b in sent] == ["Unhealthy", "Digest"]
    assert sent[1][1]["count"] == 5 and sent[1][0] >= 15.0 + 60.0  # the window after the first damped one
    assert sent[0][1]["idempotencyKey"] == "ops:1" and sent[1][1]["idempotencyKey"] == "ops:digest:2-6"


def test_changes_further_apart_than_the_window_are_each_a_message() -> None:
    notices = [_n(1, 0.0, "Unhealthy"), _n(2, 100.0, "Recovered"), _n(3, 200.0, "Unhealthy")]
    sent = _run(notices, [0.0, 100.0, 200.0], damping.Policy(window=60.0))
    assert [b["event"] for _, b in sent] == ["Unhealthy", "Recovered", "Unhealthy"]


def test_a_crash_loop_reentered_after_each_restart_is_one_message_then_gave_up() -> None:
    notices = [_n(1, 0.0, "CrashLoopBackOff"), _n(2, 3.0, "CrashLoopBackOff"), _n(3, 9.0, "CrashLoopBackOff"),
               _n(4, 12.0, "GaveUp")]
    sent = _run(notices, [n.ts for n in notices], damping.Policy(window=60.0), until=300.0)
    assert [b["event"] for _, b in sent] == ["CrashLoopBackOff", "GaveUp"]
    assert sent[1][1]["count"] == 3  # the two re-entries are counted into the next message


@pytest.mark.parametrize(("events", "expected"), [
    (["Recovered"], []),  # an end without its start seen: no state change to tell
    (["BackOffEnded"], []),
    (["EngineUnavailable", "EngineRestored"], ["EngineUnavailable", "Digest"]),
    (["GaveUp", "GaveUp"], ["GaveUp", "Digest"]),  # unpaired: damped by the window, not dropped
])
def test_pairs_and_ends(events: list[str], expected: list[str]) -> None:
    notices = [_n(i + 1, float(i), e) for i, e in enumerate(events)]
    sent = _run(notices, [n.ts for n in notices], damping.Policy(window=30.0), until=100.0)
    assert [b["event"] for _, b in sent] == expected


def test_more_than_n_a_minute_to_one_sink_go_into_a_digest() -> None:
    notices = [_n(i + 1, 1.0, "GaveUp", service=f"s{i}") for i in range(15)]
    sent = _run(notices, [1.0] * 15, damping.Policy(window=60.0, digest_after=10), until=62.0)
    events = [b["event"] for _, b in sent]
    assert events == ["GaveUp"] * 10 + ["Digest"]
    assert sent[-1][1]["count"] == 5


def test_services_are_damped_apart() -> None:
    notices = [_n(1, 0.0, "Unhealthy", "a"), _n(2, 1.0, "Unhealthy", "b"), _n(3, 2.0, "Recovered", "a")]
    sent = _run(notices, [0.0, 1.0, 2.0], damping.Policy(window=60.0))
    assert [(b["service"], b["event"]) for _, b in sent] == [("a", "Unhealthy"), ("b", "Unhealthy")]


def test_the_same_state_gives_the_same_step_again() -> None:
    # what makes a resend after a crash carry the same idempotency key
    notices = [_n(4, 0.0, "GaveUp")]
    a = damping.step({}, notices, 3, 10.0, damping.Policy(), WHO)
    b = damping.step({}, notices, 3, 10.0, damping.Policy(), WHO)
    assert a is not None and b is not None and a.body == b.body and a.body is not None
    assert a.body["idempotencyKey"] == "ops:4"


def test_nothing_to_do() -> None:
    assert damping.step({}, [], 0, 0.0, damping.Policy(), WHO) is None


@pytest.mark.parametrize(("attempts", "retry", "expected"), [
    (1, {}, 1.0), (2, {}, 2.0), (3, {}, 4.0), (9, {}, 256.0), (10, {}, 300.0), (1000, {}, 300.0),
    (1, {"initial": 0.5, "max": 2.0}, 0.5), (3, {"initial": 0.5, "max": 2.0}, 2.0), (0, {}, 1.0),
])
def test_retry_delay(attempts: int, retry: dict[str, float], expected: float) -> None:
    assert damping.retry_delay(attempts, {"retry": retry}) == expected


@pytest.mark.parametrize(("spec", "expected"), [
    ({}, damping.Policy(60.0, 10)),
    ({"damping": {"window": 5.0}}, damping.Policy(5.0, 10)),
    ({"damping": {"digestAfter": 3}}, damping.Policy(60.0, 3)),
])
def test_policy_of(spec: dict[str, Any], expected: damping.Policy) -> None:
    assert damping.Policy.of(spec) == expected
