"""Lifecycle hooks at run time: which exec calls a spec's hooks become, how long each
may take, and what a run is audited as. Pure data and one small runner that is handed
the engine's ``exec_hook`` (so it needs no ``docker`` import and no fake engine in the
unit tests).

Semantics (``crd_like.spec_lifecycle`` says them to the user):
- postStart hooks run in order after a start; each may take ``POST_START_TIMEOUT``
  seconds; the first that fails (non-zero exit, or no end in time) stops the sequence
  and fails the action that started the container;
- preStop hooks run in order before a stop, sharing the container's stop grace period
  (at least ``MIN_PRE_STOP``); a failure is audited and the remaining hooks still run,
  then the stop proceeds.

Audit: one event a run, ``HookRan`` (exit 0) or ``HookFailed``; the reason names the
phase, the hook's position and its exit code, the message holds the command and the
tail of its output. Hook env values are never part of either.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from crd_like.spec_lifecycle import ExecHook

Phase = Literal["postStart", "preStop"]
POST_START_TIMEOUT = 60.0  # compose waits for ever; a controller must not
MIN_PRE_STOP = 1.0  # even with stopGracePeriod 0, a preStop hook gets a chance
MESSAGE_TAIL = 500


@dataclass(frozen=True)
class HookCall:
    """One hook, ready to exec (env as pairs: hashable, plain values only)."""

    argv: tuple[str, ...]
    user: str | None = None
    privileged: bool = False
    working_dir: str | None = None
    env: tuple[tuple[str, str], ...] = ()
    timeout: float = POST_START_TIMEOUT

    @property
    def shown(self) -> str:
        import shlex

        return shlex.join(self.argv)


@dataclass(frozen=True)
class HookResult:
    """What the engine reports of one run: the exit code (None when it did not end in
    time) and the tail of its output."""

    exit_code: int | None
    output: str
    timed_out: bool = False


@dataclass(frozen=True)
class HookRun:
    """One audited run of one hook."""

    phase: Phase
    index: int  # 1-based
    total: int
    call: HookCall
    result: HookResult

    @property
    def ok(self) -> bool:
        return self.result.exit_code == 0 and not self.result.timed_out

    @property
    def outcome(self) -> str:
        if self.result.timed_out:
            return f"did not end within {self.call.timeout:g}s"
        return f"exited with status {self.result.exit_code}"

    @property
    def event_type(self) -> str:
        return "HookRan" if self.ok else "HookFailed"

    @property
    def reason(self) -> str:
        return f"{self.phase} hook {self.index}/{self.total} {self.outcome}"

    @property
    def message(self) -> str:
        tail = self.result.output.strip()
        text = f"{self.call.shown}" + (f": {tail}" if tail else "")
        return text if len(text) <= MESSAGE_TAIL else "..." + text[-(MESSAGE_TAIL - 3):]


def call_of(hook: ExecHook, timeout: float = POST_START_TIMEOUT) -> HookCall:
    return HookCall(tuple(hook.command), hook.user, hook.privileged, hook.workingDir,
                    tuple(sorted(hook.env.items())), timeout)


def calls(hooks: Sequence[ExecHook]) -> tuple[HookCall, ...]:
    return tuple(call_of(h) for h in hooks)


Exec = Callable[[HookCall], HookResult]


def run(phase: Phase, hooks: Sequence[HookCall], execute: Exec, *, budget: float | None = None,
        clock: Callable[[], float]) -> list[HookRun]:
    """Run ``hooks`` in order through ``execute``. postStart stops at the first failure;
    preStop runs them all within ``budget`` seconds (a hook that starts with less left
    gets what is left, at least ``MIN_PRE_STOP``)."""
    out: list[HookRun] = []
    start = clock()
    for i, call in enumerate(hooks, 1):
        if budget is not None:
            left = max(MIN_PRE_STOP, budget - (clock() - start))
            call = HookCall(call.argv, call.user, call.privileged, call.working_dir, call.env, left)
        r = HookRun(phase, i, len(hooks), call, execute(call))
        out.append(r)
        if not r.ok and phase == "postStart":
            break
    return out
