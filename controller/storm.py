"""Storm control: a host-wide cap on restarts per minute. Time is a parameter.

When many services fail together (a bad deploy, the engine coming back), restarting
all of them at once can take the host down again. The limiter admits at most
``per_minute`` restarts in any sliding 60 s window; the rest wait for a later pass.
The first refusal of a storm is reported once (``StormDetected``) until the window
drains.
"""

from __future__ import annotations

import math
import threading
from collections import deque


class RestartLimiter:
    def __init__(self, per_minute: int = 30, window: float = 60.0):
        self.per_minute = per_minute
        self.window = window
        self._times: deque[float] = deque()
        self._lock = threading.Lock()
        self.in_storm = False
        self.refused = 0

    def admit(self, now: float) -> tuple[bool, bool]:
        """(admitted, storm_started). ``storm_started`` is True once per storm."""
        with self._lock:
            while self._times and self._times[0] <= now - self.window:
                self._times.popleft()
            if len(self._times) < self.per_minute:
                self._times.append(now)
                if not self._times or len(self._times) < self.per_minute // 2:
                    self.in_storm = False
                return True, False
            self.refused += 1
            started = not self.in_storm
            self.in_storm = True
            return False, started

    def next_free(self, now: float) -> float:
        """The earliest time ``admit`` accepts a restart (``now`` if it would now)."""
        with self._lock:
            if len(self._times) < self.per_minute:
                return now
            # admit forgets the oldest restart t once t <= now - window; in floating point
            # (t + window) - window can be less than t, so step up to the first time that
            # test actually passes (at most a few ulps above t + window).
            oldest = self._times[0]
            when = oldest + self.window
            while when - self.window < oldest:
                when = math.nextafter(when, math.inf)
            return when
