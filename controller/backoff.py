"""Crash-loop backoff and give-up arithmetic. Pure: time is always a parameter.

Defaults (``RestartPolicy``): the first restart is immediate; the n-th consecutive
restart waits ``initial * factor**(n-2)`` (1 s, 2 s, 4 s, ... with the defaults), capped
at ``max`` (300 s). A container that stays up for ``resetAfter`` (60 s) resets the count.
``maxAttempts`` (unset = unlimited) restarts within ``window`` (600 s) -> ``Failed``.
"""

from __future__ import annotations

from dataclasses import replace

from crd_like.models import RestartPolicy
from store.records import Status


def delay(policy: RestartPolicy, attempt: int) -> float:
    """Delay before restart number ``attempt`` (1-based) of a consecutive series."""
    if attempt <= 1:
        return 0.0
    b = policy.backoff
    exponent = min(attempt - 2, 64)  # capped: a long crash loop must not overflow a float
    return float(min(b.max, b.initial * b.factor ** exponent))


def attempts_in_window(status: Status, policy: RestartPolicy, now: float) -> int:
    return sum(1 for t in status.restart_times if t > now - policy.window)


def gave_up(status: Status, policy: RestartPolicy, now: float) -> bool:
    return policy.maxAttempts is not None and attempts_in_window(status, policy, now) >= policy.maxAttempts


def after_restart(status: Status, policy: RestartPolicy, now: float) -> Status:
    """The status after restart attempt ``failures + 1`` is made at ``now``."""
    failures = status.failures + 1
    keep = max(50, (policy.maxAttempts or 0) + 1)
    times = [t for t in status.restart_times if t > now - policy.window][-keep:] + [now]
    return replace(
        status, failures=failures, next_attempt_at=now + delay(policy, failures + 1),
        restart_times=times, restart_count=status.restart_count + 1, last_started_at=now,
    )


def stable(status: Status, policy: RestartPolicy, now: float) -> bool:
    """Running long enough since the last (re)start to forget earlier failures."""
    return status.failures > 0 and status.last_started_at and now - status.last_started_at >= policy.resetAfter  # type: ignore[return-value]


def reset(status: Status) -> Status:
    return replace(status, failures=0, next_attempt_at=0.0)
