"""The work queue: it owns *when* a service name is reconciled (controller-runtime's shape).

- A key (a service name) is never handed out twice at once: ``get``/``claim`` move it into
  the *processing* set until ``done``. Added while processing, it is marked *dirty* and
  queued again, once, when it is done; added while queued, it is merged.
- ``add_after(key, delay)`` queues it later (each wake-up asked for happens; one that
  finds the key queued already is merged); ``add_all`` asks for a full resync (the
  reconciler expands it to every name).
- Failures go through a per-key exponential limiter (``FailureLimiter``: bounds
  configurable): ``add_rate_limited`` requeues after the key's next delay, ``back_off``
  only starts that delay (a terminal error: not requeued). While a key backs off nothing
  brings it forward: an ``add`` (an event), a due ``add_after`` or a ``claim`` (a resync)
  waits for the end of the delay, so a failing service cannot be driven into a hot loop
  by its own events or the resyncs. ``forget`` (after a success) resets it.
- ``Result`` is what reconciling one name answers; ``finish`` applies it to the queue:
  success forgets the key (and requeues it if asked), a transient error requeues it after
  its ``retry_after`` (at least the limiter's delay), a terminal one is not requeued.

Time is a parameter: the queue reads an injectable clock and never sleeps but in ``get``.
Thread-safe. Imports nothing of the controller but its error tree.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from controller.errors import TerminalError, TransientError


@dataclass(frozen=True)
class LimiterBounds:
    """The first delay after a failure, the factor per further failure, the cap."""

    base: float = 1.0
    factor: float = 2.0
    cap: float = 300.0  # a service whose actions keep failing is retried at most this rarely


class FailureLimiter:
    """Per key: failures in a row, and the delay the next one earns (base * factor**n, capped)."""

    def __init__(self, bounds: LimiterBounds = LimiterBounds()):
        self.bounds = bounds
        self._failures: dict[str, int] = {}

    def when(self, key: str) -> float:
        """Count one more failure of ``key``; the delay before it is tried again."""
        n = self._failures.get(key, 0)
        self._failures[key] = n + 1
        b = self.bounds
        return float(min(b.cap, b.base * b.factor ** min(n, 64)))

    def failures(self, key: str) -> int:
        return self._failures.get(key, 0)

    def forget(self, key: str) -> None:
        self._failures.pop(key, None)


@dataclass(frozen=True)
class Result:
    """What reconciling one name answers: ``requeue_after`` seconds (None: not requeued,
    0: at once); ``error`` when it failed (its type decides the retry, see ``finish``)."""

    requeue_after: float | None = None
    error: BaseException | None = None


@dataclass(frozen=True)
class Batch:
    """Keys handed out together (now *processing*); ``full``: a full resync was asked for."""

    keys: frozenset[str]
    full: bool


class WorkQueue:
    def __init__(self, clock: Callable[[], float] = time.time, limiter: FailureLimiter | None = None):
        self.clock = clock
        self.limiter = limiter or FailureLimiter()
        self._cond = threading.Condition()
        self._queue: dict[str, None] = {}  # ready keys, in insertion order
        self._dirty: set[str] = set()  # added while processing: queued again when done
        self._processing: set[str] = set()
        self._waiting: list[tuple[float, str]] = []  # heap: (when, key), each wake-up asked for
        self._held: dict[str, float] = {}  # key -> end of its failure backoff
        self._all = False

    # -- adding ------------------------------------------------------------------
    def add(self, key: str) -> None:
        with self._cond:
            self._offer(key, self.clock())
            self._cond.notify_all()

    def add_all(self) -> None:
        with self._cond:
            self._all = True
            self._cond.notify_all()

    def add_after(self, key: str, delay: float) -> None:
        if delay <= 0:
            self.add(key)
            return
        with self._cond:
            self._wait_until(key, self.clock() + delay)
            self._cond.notify_all()

    def add_rate_limited(self, key: str, at_least: float = 0.0) -> float:
        """Requeue ``key`` after its next failure delay (``at_least`` this long); the delay."""
        delay = self.back_off(key, at_least)
        self.add_after(key, delay)
        return delay

    def back_off(self, key: str, at_least: float = 0.0) -> float:
        """Count a failure of ``key`` and hold later adds until its delay has passed; no requeue."""
        with self._cond:
            delay = max(at_least, self.limiter.when(key))
            self._held[key] = self.clock() + delay
            return delay

    def forget(self, key: str) -> None:
        with self._cond:
            self.limiter.forget(key)
            self._held.pop(key, None)

    def held_until(self, key: str) -> float:
        with self._cond:
            return self._held.get(key, 0.0)

    def _wait_until(self, key: str, when: float) -> None:
        if (when, key) not in self._waiting:  # the same wake-up twice is one
            heapq.heappush(self._waiting, (when, key))

    def _offer(self, key: str, now: float) -> None:
        """Queue ``key`` now: later if it backs off, dirty if it is being processed."""
        held = self._held.get(key, 0.0)
        if held > now:
            self._wait_until(key, held)
        elif key in self._processing:
            self._dirty.add(key)
        else:
            self._queue[key] = None

    def _promote(self, now: float) -> float | None:
        """Move the keys whose time has come into the queue (earliest first); the next deadline."""
        while self._waiting and self._waiting[0][0] <= now:
            self._offer(heapq.heappop(self._waiting)[1], now)
        return self._waiting[0][0] if self._waiting else None

    # -- handing out -------------------------------------------------------------
    def get(self, timeout: float) -> Batch | None:
        """Every ready key (now processing) and whether a full resync is due; None after
        ``timeout`` seconds (of the monotonic clock) without any."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                batch = self._take()
                if batch is not None:
                    return batch
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                nxt = self._promote(self.clock())
                wait = remaining if nxt is None else min(remaining, max(0.01, nxt - self.clock()))
                self._cond.wait(wait)

    def get_nowait(self) -> Batch | None:
        with self._cond:
            return self._take()

    def _take(self) -> Batch | None:
        self._promote(self.clock())
        if not self._queue and not self._all:
            return None
        keys = frozenset(self._queue)
        full, self._all = self._all, False
        self._queue.clear()
        self._processing |= keys
        return Batch(keys, full)

    def claim(self, keys: Iterable[str]) -> frozenset[str]:
        """Take these keys for processing now, whether queued or not. Those being processed
        or backing off are left out and looked at again when that ends (dirty / waiting)."""
        with self._cond:
            now = self.clock()
            out = set()
            for key in keys:
                if key in self._processing or self._held.get(key, 0.0) > now:
                    self._offer(key, now)
                    continue
                self._queue.pop(key, None)
                self._processing.add(key)
                out.add(key)
            return frozenset(out)

    def done(self, key: str) -> None:
        """Processing of ``key`` ended; queued again (once) if it was added meanwhile."""
        with self._cond:
            self._processing.discard(key)
            if key in self._dirty:
                self._dirty.discard(key)
                self._offer(key, self.clock())  # not before its backoff ends, if it failed meanwhile
                self._cond.notify_all()

    # -- looking -----------------------------------------------------------------
    def processing(self) -> frozenset[str]:
        with self._cond:
            return frozenset(self._processing)

    def __len__(self) -> int:
        """Keys ready or waiting (not those being processed)."""
        with self._cond:
            return len(self._queue.keys() | {key for _when, key in self._waiting})


def finish(queue: WorkQueue, key: str, result: Result) -> None:
    """Apply what reconciling ``key`` answered, then release it (``done``)."""
    try:
        err = result.error
        if err is None:
            queue.forget(key)
            if result.requeue_after is not None:
                queue.add_after(key, result.requeue_after)
        elif isinstance(err, TransientError):
            queue.add_rate_limited(key, at_least=err.retry_after)
        elif isinstance(err, TerminalError):
            queue.back_off(key)  # recorded, not requeued: the next change or resync looks again
        else:
            queue.add_rate_limited(key)
    finally:
        queue.done(key)
