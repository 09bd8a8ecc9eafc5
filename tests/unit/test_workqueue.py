"""controller.workqueue: the queue and its failure limiter, on a fake clock (nothing sleeps)."""

from __future__ import annotations

import threading
import time

import pytest

from controller.errors import EngineTimeout, NameConflict, ReconcileError
from controller.workqueue import Batch, FailureLimiter, LimiterBounds, Result, WorkQueue, finish


class Clock:
    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def keys(q: WorkQueue) -> set[str]:
    batch = q.get_nowait()
    return set() if batch is None else set(batch.keys)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def q(clock: Clock) -> WorkQueue:
    return WorkQueue(clock)


def test_adds_are_merged(q: WorkQueue) -> None:
    for k in ("a", "b", "a", "a"):
        q.add(k)
    assert q.get_nowait() == Batch(frozenset({"a", "b"}), full=False)
    assert q.get_nowait() is None


def test_a_key_being_processed_is_never_handed_out_again(q: WorkQueue) -> None:
    q.add("a")
    assert keys(q) == {"a"}  # processing now
    q.add("a")
    q.add("b")
    assert keys(q) == {"b"}, "a is being processed: not handed to a second worker"
    assert q.claim(["a", "c"]) == {"c"}, "claim skips a key in flight"
    assert q.processing() == {"a", "b", "c"}


def test_dirty_while_processing_is_queued_again_once_when_done(q: WorkQueue) -> None:
    q.add("a")
    assert keys(q) == {"a"}
    for _ in range(3):
        q.add("a")  # dirty, merged
    assert q.get_nowait() is None
    q.done("a")
    assert keys(q) == {"a"}
    q.done("a")
    assert q.get_nowait() is None, "queued again once, not once per add"


def test_done_without_an_add_meanwhile_does_not_requeue(q: WorkQueue) -> None:
    q.add("a")
    keys(q)
    q.done("a")
    assert q.get_nowait() is None and len(q) == 0


def test_a_claimed_key_that_was_skipped_because_in_flight_is_looked_at_once_done(q: WorkQueue) -> None:
    assert q.claim(["a"]) == {"a"}
    assert q.claim(["a"]) == frozenset()
    q.done("a")
    assert keys(q) == {"a"}


def test_add_after_becomes_ready_in_time_order(q: WorkQueue, clock: Clock) -> None:
    q.add_after("late", 3.0)
    q.add_after("early", 1.0)
    q.add_after("mid", 2.0)
    assert q.get_nowait() is None
    seen = []
    for _ in range(4):
        clock.now += 1.0
        seen.append(keys(q))
    assert seen == [{"early"}, {"mid"}, {"late"}, set()]


def test_each_add_after_wakes_the_key_and_queued_ones_merge(q: WorkQueue, clock: Clock) -> None:
    """A death is looked at again several times (a safety net): every wake-up happens."""
    for delay in (1.0, 5.0, 9.0, 1.0):
        q.add_after("a", delay)
    assert len(q) == 1
    woke = []
    for _ in range(10):
        clock.now += 1.0
        batch = q.get_nowait()
        woke.append(batch is not None)
        if batch:
            q.done("a")
    assert woke == [True, False, False, False, True, False, False, False, True, False]
    q.add_after("b", 1.0)
    q.add_after("b", 1.0)
    q.add("b")
    clock.now += 1.0
    assert keys(q) == {"b"}, "merged: already queued"


def test_add_after_zero_is_an_add(q: WorkQueue) -> None:
    q.add_after("a", 0.0)
    assert keys(q) == {"a"}


def test_add_all_asks_for_a_full_pass_once(q: WorkQueue) -> None:
    q.add_all()
    q.add_all()
    q.add("x")
    assert q.get_nowait() == Batch(frozenset({"x"}), full=True)
    assert q.get_nowait() is None


@pytest.mark.parametrize(("bounds", "expected"), [
    (LimiterBounds(), [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 300.0, 300.0]),
    (LimiterBounds(base=0.5, factor=3.0, cap=10.0), [0.5, 1.5, 4.5, 10.0, 10.0]),
    (LimiterBounds(base=2.0, factor=1.0, cap=60.0), [2.0, 2.0, 2.0]),
])
def test_limiter_is_exponential_and_capped(bounds: LimiterBounds, expected: list[float]) -> None:
    lim = FailureLimiter(bounds)
    assert [lim.when("a") for _ in expected] == expected
    assert lim.failures("a") == len(expected)
    assert lim.when("b") == bounds.base, "per key"


def test_limiter_never_overflows() -> None:
    lim = FailureLimiter(LimiterBounds(cap=5.0))
    assert [lim.when("a") for _ in range(2000)][-1] == 5.0


def test_forget_resets_the_failures(q: WorkQueue, clock: Clock) -> None:
    assert [q.add_rate_limited("a") for _ in range(3)] == [1.0, 2.0, 4.0]
    q.forget("a")
    assert q.limiter.failures("a") == 0
    assert q.add_rate_limited("a") == 1.0


def test_add_rate_limited_requeues_after_the_delay(q: WorkQueue, clock: Clock) -> None:
    q.add_rate_limited("a")
    q.add_rate_limited("a")  # a second failure: 2 s; its backoff outlasts the earlier 1 s wake-up
    clock.now += 1.99
    assert q.get_nowait() is None
    clock.now += 0.02
    assert keys(q) == {"a"}


def test_a_backing_off_key_is_not_brought_forward_by_plain_adds(q: WorkQueue, clock: Clock) -> None:
    """Events and resyncs cannot drive a failing service into a hot loop."""
    assert q.back_off("a") == 1.0
    assert q.back_off("a") == 2.0
    q.add("a")
    clock.now += 1.5
    assert q.get_nowait() is None
    clock.now += 0.6
    assert keys(q) == {"a"}
    q.done("a")
    q.forget("a")
    q.add("a")
    assert keys(q) == {"a"}, "after a success it goes straight in again"


def test_nothing_brings_a_backing_off_key_forward(q: WorkQueue, clock: Clock) -> None:
    q.back_off("a")  # held for 1 s
    q.add_after("a", 0.2)  # a recheck after a death event
    assert q.claim(["a", "b"]) == {"b"}, "a resync's claim leaves it out"
    clock.now += 0.5
    assert q.get_nowait() is None
    clock.now += 0.51
    assert keys(q) == {"a"}, "looked at once its backoff ended"


def test_dirty_key_that_failed_meanwhile_waits_for_its_backoff(q: WorkQueue, clock: Clock) -> None:
    q.add("a")
    keys(q)
    q.add("a")  # an event while its work runs
    finish(q, "a", Result(error=NameConflict("taken")))
    assert q.get_nowait() is None
    clock.now += 1.0
    assert keys(q) == {"a"}


@pytest.mark.parametrize(("result", "ready_after", "failures"), [
    (Result(), None, 0),  # done, nothing asked: not requeued
    (Result(requeue_after=0.0), 0.0, 0),  # done, look again at once
    (Result(requeue_after=7.0), 7.0, 0),
    (Result(error=EngineTimeout("containers.remove", "abc", 20.0)), 5.0, 1),  # its retry_after (20/4)
    (Result(error=EngineTimeout("containers.remove", "abc", 2.0)), 1.0, 1),  # at least the limiter's delay
    (Result(error=NameConflict("taken")), None, 1),  # terminal: not requeued
    (Result(error=ReconcileError("deferred")), 1.0, 1),  # a plain failure: rate-limited
    (Result(error=RuntimeError("bug")), 1.0, 1),
])
def test_finish_applies_what_reconcile_answered(q: WorkQueue, clock: Clock, result: Result,
                                                ready_after: float | None, failures: int) -> None:
    q.add("a")
    keys(q)
    finish(q, "a", result)
    assert q.processing() == frozenset(), "released"
    assert q.limiter.failures("a") == failures
    if ready_after is None:
        clock.now += 1000
        assert q.get_nowait() is None
        return
    if ready_after > 0:
        clock.now += ready_after - 0.01
        assert q.get_nowait() is None
        clock.now += 0.02
    assert keys(q) == {"a"}


def test_success_forgets_earlier_failures(q: WorkQueue) -> None:
    for _ in range(3):
        q.claim(["a"])
        finish(q, "a", Result(error=ReconcileError("x")))
    assert q.limiter.failures("a") == 3
    q.claim(["a"])
    finish(q, "a", Result())
    assert q.limiter.failures("a") == 0 and q.held_until("a") == 0.0


def test_get_waits_for_a_delayed_key_and_times_out(clock: Clock) -> None:
    q = WorkQueue(clock)
    assert q.get(timeout=0.05) is None
    q.add_after("a", 0.5)
    clock.now += 1.0
    assert q.get(timeout=0.05) == Batch(frozenset({"a"}), full=False)


def test_get_wakes_on_add_from_another_thread(q: WorkQueue) -> None:
    t = threading.Timer(0.05, q.add, ("a",))
    t.start()
    try:
        assert q.get(timeout=5.0) == Batch(frozenset({"a"}), full=False)
    finally:
        t.join()


def test_never_two_workers_on_one_key_under_threads(clock: Clock) -> None:
    """Eight workers and a producer hammer three keys: no key is ever held twice."""
    q = WorkQueue(clock)
    holding: set[str] = set()
    lock = threading.Lock()
    clashes: list[str] = []
    stop = threading.Event()

    def worker() -> None:
        while not stop.is_set():
            batch = q.get(timeout=0.01)
            for k in batch.keys if batch else ():
                with lock:
                    if k in holding:
                        clashes.append(k)
                    holding.add(k)
                time.sleep(0.0001)  # hold it a moment: a second hand-out would overlap
                with lock:
                    holding.discard(k)
                q.done(k)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for i in range(3000):
        q.add("abc"[i % 3])
    stop.set()
    for t in threads:
        t.join(timeout=10)
    assert not clashes
