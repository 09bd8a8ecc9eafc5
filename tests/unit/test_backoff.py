"""controller.backoff: crash-loop delays, restart bookkeeping, reset and give-up. Time is a
parameter, so nothing here sleeps."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from controller import backoff
from crd_like.models import RestartPolicy
from store.records import Status


def policy(**data: Any) -> RestartPolicy:
    return RestartPolicy.model_validate(data)


DEFAULT = policy()
FAST = policy(backoff={"initial": "500ms", "factor": 3, "max": "10s"})
FLAT = policy(backoff={"initial": "5s", "factor": 1, "max": "5s"})


@pytest.mark.parametrize(
    ("pol", "attempt", "seconds"),
    [
        (DEFAULT, 0, 0.0),
        (DEFAULT, 1, 0.0),  # the first restart is immediate
        (DEFAULT, 2, 1.0),  # then initial
        (DEFAULT, 3, 2.0),  # initial * factor
        (DEFAULT, 4, 4.0),
        (DEFAULT, 5, 8.0),
        (DEFAULT, 10, 256.0),
        (DEFAULT, 11, 300.0),  # 512 capped at max
        (DEFAULT, 100, 300.0),
        (FAST, 1, 0.0),
        (FAST, 2, 0.5),
        (FAST, 3, 1.5),
        (FAST, 4, 4.5),
        (FAST, 5, 10.0),  # 13.5 capped
        (FLAT, 2, 5.0),
        (FLAT, 50, 5.0),
    ],
)
def test_delay(pol: RestartPolicy, attempt: int, seconds: float) -> None:
    assert backoff.delay(pol, attempt) == pytest.approx(seconds)


@pytest.mark.parametrize("pol", [DEFAULT, FAST, FLAT, policy(backoff={"initial": "1s", "factor": 10, "max": "1h"})])
def test_delay_is_monotone_and_capped(pol: RestartPolicy) -> None:
    delays = [backoff.delay(pol, n) for n in range(1, 200)]
    assert delays[0] == 0.0
    assert all(a <= b for a, b in zip(delays, delays[1:]))
    assert max(delays) == pol.backoff.max
    assert delays[-1] == pol.backoff.max


def test_a_long_crash_loop_keeps_waiting_max() -> None:
    # With the default 300 s cap, 1030 consecutive restarts is about 3.5 days of crash-looping
    # with maxAttempts unset (the default: unlimited).
    status = Status("web", failures=1030, last_started_at=1.0)
    after = backoff.after_restart(status, DEFAULT, now=1_000_000.0)
    assert after.next_attempt_at == 1_000_000.0 + DEFAULT.backoff.max


def test_after_restart_bookkeeping() -> None:
    before = Status("web", state="Exited", container_id="abc", restart_count=7, restart_times=[])
    after = backoff.after_restart(before, DEFAULT, now=1000.0)
    assert after.failures == 1
    assert after.restart_count == 8
    assert after.last_started_at == 1000.0
    assert after.restart_times == [1000.0]
    assert after.next_attempt_at == 1001.0  # the next restart waits `initial`
    assert (after.name, after.state, after.container_id) == ("web", "Exited", "abc")
    assert before.failures == 0 and before.restart_times == []  # the input is not modified


def test_consecutive_restarts_wait_longer_each_time() -> None:
    status, now, gaps = Status("web"), 0.0, []
    for _ in range(12):
        assert now >= status.next_attempt_at
        status = backoff.after_restart(status, DEFAULT, now)
        gaps.append(status.next_attempt_at - now)
        now = status.next_attempt_at  # the container dies again right away
    assert gaps == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]
    assert status.failures == 12 and status.restart_count == 12


def test_after_restart_forgets_restarts_outside_the_window() -> None:
    status = Status("web", failures=3, restart_times=[100.0, 399.0, 400.0, 500.0, 900.0])
    after = backoff.after_restart(status, DEFAULT, now=1000.0)  # window 600 s: keeps t > 400
    assert after.restart_times == [500.0, 900.0, 1000.0]
    assert after.failures == 4
    assert after.next_attempt_at == 1000.0 + 8.0


@pytest.mark.parametrize(
    ("failures", "last_started_at", "now", "expected"),
    [
        (0, 100.0, 10_000.0, False),  # nothing to forget
        (1, 100.0, 159.9, False),  # up for less than resetAfter (60 s)
        (1, 100.0, 160.0, True),
        (5, 100.0, 1000.0, True),
        (3, 0.0, 10_000.0, False),  # never started
    ],
)
def test_stable(failures: int, last_started_at: float, now: float, expected: bool) -> None:
    status = Status("web", failures=failures, last_started_at=last_started_at)
    assert bool(backoff.stable(status, DEFAULT, now)) is expected


def test_stable_uses_reset_after() -> None:
    pol = policy(resetAfter="5m")
    status = Status("web", failures=2, last_started_at=0.5)
    assert not backoff.stable(status, pol, 299.0)
    assert backoff.stable(status, pol, 300.5)


def test_reset_after_stable_run_makes_the_next_restart_immediate() -> None:
    status = Status("web")
    for now in (0.0, 1.0, 3.0, 7.0):
        status = backoff.after_restart(status, DEFAULT, now)
    assert status.failures == 4 and status.next_attempt_at == 15.0
    assert backoff.stable(status, DEFAULT, 7.0 + 60.0)
    status = backoff.reset(status)
    assert (status.failures, status.next_attempt_at) == (0, 0.0)
    assert status.restart_count == 4  # the lifetime counter and the window are kept
    assert status.restart_times == [0.0, 1.0, 3.0, 7.0]
    again = backoff.after_restart(status, DEFAULT, 100.0)
    assert again.failures == 1 and again.next_attempt_at == 101.0


@pytest.mark.parametrize(
    ("max_attempts", "window", "times", "now", "expected"),
    [
        (None, 600, [float(t) for t in range(900, 1000)], 1000.0, False),  # unlimited
        (3, 600, [990.0, 995.0, 999.0], 1000.0, True),
        (3, 600, [990.0, 995.0], 1000.0, False),
        (3, 600, [100.0, 995.0, 999.0], 1000.0, False),  # one fell out of the window
        (3, 600, [400.0, 995.0, 999.0], 1000.0, False),  # exactly window seconds ago: out
        (3, 600, [400.5, 995.0, 999.0], 1000.0, True),
        (1, 60, [950.0], 1000.0, True),
        (1, 60, [900.0], 1000.0, False),
        (5, 600, [990.0] * 4, 1000.0, False),
        (5, 600, [990.0] * 5, 1000.0, True),
    ],
)
def test_gave_up(max_attempts: int | None, window: float, times: list[float], now: float, expected: bool) -> None:
    pol = policy(maxAttempts=max_attempts, window=window)
    assert backoff.gave_up(Status("web", restart_times=times), pol, now) is expected


def test_gave_up_after_max_attempts_of_real_restarts_and_recovers_after_the_window() -> None:
    pol = policy(maxAttempts=3, window="10m")
    status, now = Status("web"), 0.0
    for _ in range(3):
        assert not backoff.gave_up(status, pol, now)
        status = backoff.after_restart(status, pol, now)
        now = status.next_attempt_at
    assert backoff.gave_up(status, pol, now)
    assert backoff.attempts_in_window(status, pol, now) == 3
    first = status.restart_times[0]
    assert backoff.gave_up(status, pol, first + 599.0)
    assert not backoff.gave_up(status, pol, first + 600.0)  # the oldest restart left the window


def test_gave_up_with_a_large_max_attempts() -> None:
    pol = policy(maxAttempts=60, window="1h", backoff={"initial": "1s", "max": "1s"})
    status, now = Status("web"), 0.0
    for _ in range(60):
        status = backoff.after_restart(status, pol, now)
        now += 1.0
    assert backoff.gave_up(status, pol, now)


def test_status_round_trips_through_replace() -> None:
    # guard: the bookkeeping relies on dataclasses.replace keeping every other field
    status = Status("web", health="healthy", message="m", observed_generation=4)
    after = backoff.reset(backoff.after_restart(status, DEFAULT, 5.0))
    assert replace(after, failures=0, next_attempt_at=0.0, restart_count=0, restart_times=[],
                   last_started_at=0.0) == status
