"""The controller's own health checks, for containers whose engine does not run them.

Podman 4.3 schedules a container's health check with systemd timers; on a host without
systemd its health stays ``starting`` forever, so health gating and ``onUnhealthy`` would
never act. For such containers the controller runs the check itself: it execs the check's
command through the engine's API at the check's interval, honours its timeout, retries and
start period exactly as Docker's daemon does (``daemon/health.go``), and reports the
resulting health in place of the engine's, so the planner, the status and the audit rows
(``HealthChanged`` with the probe's output tail, restarts driven by ``onUnhealthy``) are
the same whichever of the two ran the check.

Which containers: ``Engine.runs_healthchecks()`` (the one seam that knows engines) says
whether the engine runs checks at all; on an engine that claims to, a container whose
health still has no probe result long after its first one was due is taken over as well
(``engine_stalled``: the evidence, not the engine's name, decides).

Two parts: the pure rules (``Check``, ``ProbeState``, ``record``, ``engine_stalled``),
where time is a parameter, and ``ProbeRunner``, which schedules probes against a clock
and runs them on a small thread pool through an injected ``probe`` callable (the engine's
``exec_probe`` in production, a fake in the unit tests). Must not import ``docker``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, Protocol

from loguru import logger

from controller.observed import HealthState

STARTING, HEALTHY, UNHEALTHY = "starting", "healthy", "unhealthy"
MAX_LOG = 5  # Docker keeps the last five probe results
OUTPUT_LIMIT = 4096  # and at most this much of each probe's output
TIMEOUT_EXIT = -1  # the exit code Docker records for a probe that exceeded its timeout

ENGINE, CONTROLLER = "engine", "controller"  # who runs a container's health check
STALL_GRACE = 10.0  # seconds beyond the first probe's due time before the engine counts as silent


@dataclass(frozen=True)
class Check:
    """A container's health check, in seconds."""

    test: tuple[str, ...]
    interval: float
    timeout: float
    retries: int
    start_period: float = 0.0
    start_interval: float = 0.0  # probes during the start period (API 1.44); 0: the interval

    @classmethod
    def from_spec(cls, hc: Any) -> Check:
        return cls(test=tuple(hc.test), interval=float(hc.interval), timeout=float(hc.timeout),
                   retries=int(hc.retries), start_period=float(hc.startPeriod),
                   # not every spec version has it (a newer field defaults to absent)
                   start_interval=float(getattr(hc, "startInterval", 0.0) or 0.0))

    def argv(self) -> list[str]:
        """What to exec: CMD runs its arguments, CMD-SHELL its string through /bin/sh -c."""
        kind, *rest = self.test
        if kind == "CMD-SHELL":
            return ["/bin/sh", "-c", " ".join(rest)]
        return list(rest)

    def interval_at(self, started_at: float, status: str, now: float) -> float:
        """The pause before the next probe: start_interval while starting within the start period."""
        if self.start_interval and status == STARTING and now - started_at < self.start_period:
            return self.start_interval
        return self.interval


@dataclass(frozen=True)
class ProbeResult:
    start: float
    end: float
    exit_code: int
    output: str

    def tail(self) -> str:
        """As the audit rows show the engine's last probe."""
        return f"exit {self.exit_code}: {self.output}"


@dataclass(frozen=True)
class ProbeState:
    """One container's health as the controller's probes found it."""

    container_id: str
    service: str
    check: Check
    started_at: float  # when the container's process started (the start period counts from here)
    due_at: float  # when the next probe may start
    status: str = STARTING
    failing_streak: int = 0
    log: tuple[ProbeResult, ...] = ()

    @classmethod
    def new(cls, container_id: str, service: str, check: Check, started_at: float) -> ProbeState:
        first = check.interval_at(started_at, STARTING, started_at)
        return cls(container_id, service, check, started_at, due_at=started_at + first)

    @property
    def last(self) -> ProbeResult | None:
        return self.log[-1] if self.log else None


def record(state: ProbeState, result: ProbeResult) -> ProbeState:
    """Docker's rules: a success makes it healthy and clears the streak; a failure counts
    towards ``retries`` unless it happened within the start period while still starting
    (never healthy yet); ``retries`` failures in a row make it unhealthy."""
    log = (state.log + (replace(result, output=result.output[-OUTPUT_LIMIT:]),))[-MAX_LOG:]
    status, streak = state.status, state.failing_streak
    if result.exit_code == 0:
        status, streak = HEALTHY, 0
    elif not (status == STARTING and result.start - state.started_at < state.check.start_period):
        streak += 1
        if streak >= state.check.retries:
            status = UNHEALTHY
    pause = state.check.interval_at(state.started_at, status, result.end)
    return replace(state, status=status, failing_streak=streak, log=log, due_at=result.end + pause)


def restarted(state: ProbeState, started_at: float) -> ProbeState:
    """The container's process started again: its health starts over, as with Docker."""
    return ProbeState.new(state.container_id, state.service, state.check, started_at)


def engine_stalled(health: HealthState | None, check: Check, started_at: float, now: float) -> bool:
    """The engine claims to run checks, yet this container's health (``State.Health`` of an
    inspect) has no probe result although the first one was due long ago."""
    if health is None or health.log:
        return False
    first_due = started_at + (check.start_interval or check.interval) + check.timeout
    return health.status == STARTING and now > first_due + max(STALL_GRACE, 2 * check.interval)


@dataclass(frozen=True)
class Target:
    """A running container whose check the controller is to run."""

    container_id: str
    service: str
    check: Check
    started_at: float | None = None  # None: not known yet (the first probe tells)


@dataclass(frozen=True)
class Outcome:
    """What one exec of a probe found, as the ``probe`` callable reports it."""

    running: bool
    started_at: float  # the StartedAt of the process the probe ran in (inspected just before)
    exit_code: int
    output: str


class Probe(Protocol):
    def __call__(self, container_id: str, argv: list[str]) -> Outcome: ...


@dataclass
class _Flight:
    future: Future[Outcome]
    start: float
    deadline: float
    timed_out: bool = False  # already recorded as a timeout, or superseded by a restart


@dataclass
class _Entry:
    state: ProbeState
    known_start: bool  # state.started_at is the engine's StartedAt, not an estimate
    flight: _Flight | None = None


class ProbeRunner:
    """Schedules and runs the controller's probes. ``tick(now)`` does one round (collect
    finished or timed-out probes, start those due); ``start()`` runs rounds on a thread.
    ``on_change(service)`` is called when a container's health changes (as the engine's
    ``health_status`` event would wake the loop)."""

    def __init__(self, probe: Probe, clock: Callable[[], float], *,
                 submit: Callable[[Callable[[], Outcome]], Future[Outcome]] | None = None,
                 on_change: Callable[[str], None] | None = None, workers: int = 4):
        self.probe = probe
        self.clock = clock
        self.workers = workers
        self._pool: ThreadPoolExecutor | None = None
        if submit is None:
            self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="probe")
            submit = self._pool.submit
        self.submit = submit
        self.on_change = on_change
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- what to watch ----------------------------------------------------------
    def sync(self, targets: Iterable[Target], seed: dict[str, str] | None = None) -> None:
        """Watch exactly these containers (others are forgotten); a changed check starts over.
        ``seed``: container -> health recorded earlier, the starting point for a container
        seen for the first time (a new process picks up where the last one left off)."""
        now = self.clock()
        with self._lock:
            wanted = {t.container_id: t for t in targets}
            for cid in [c for c in self._entries if c not in wanted]:
                del self._entries[cid]
            for cid, t in wanted.items():
                entry = self._entries.get(cid)
                if entry is None or entry.state.check != t.check:
                    start = t.started_at if t.started_at is not None else now
                    state = ProbeState.new(cid, t.service, t.check, start)
                    earlier = (seed or {}).get(cid) if entry is None else None
                    if earlier in (HEALTHY, UNHEALTHY):
                        state = replace(state, status=earlier,
                                        failing_streak=t.check.retries if earlier == UNHEALTHY else 0)
                    self._entries[cid] = _Entry(state, known_start=t.started_at is not None)
        self._wake.set()

    def restarted(self, container_id: str, started_at: float) -> None:
        """The controller (re)started this container: its health starts over now."""
        with self._lock:
            entry = self._entries.get(container_id)
            if entry is not None:
                entry.state = restarted(entry.state, started_at)
                entry.known_start = False  # the next probe reads the exact StartedAt
                if entry.flight is not None:
                    entry.flight.timed_out = True  # a probe of the old process does not count
        self._wake.set()

    def watching(self, container_id: str) -> bool:
        with self._lock:
            return container_id in self._entries

    def state(self, container_id: str) -> ProbeState | None:
        with self._lock:
            entry = self._entries.get(container_id)
            return entry.state if entry else None

    # -- one round --------------------------------------------------------------
    def tick(self, now: float) -> list[str]:
        """Collect finished probes, start due ones. Returns the services whose health changed."""
        changed: list[str] = []
        launch: list[tuple[float, str, list[str]]] = []
        with self._lock:
            for cid, entry in self._entries.items():
                flight = entry.flight
                if flight is not None:
                    if flight.future.done():
                        entry.flight = None
                        if not flight.timed_out:
                            self._land(entry, flight, now, changed)
                    elif now >= flight.deadline and not flight.timed_out:
                        # Docker records a probe over its timeout as a failure (exit -1); the
                        # exec itself may linger: no new probe of this container until it ends
                        flight.timed_out = True
                        msg = f"Health check exceeded timeout ({entry.state.check.timeout:g}s)"
                        self._apply(entry, ProbeResult(flight.start, now, TIMEOUT_EXIT, msg), changed)
                    continue
                if now >= entry.state.due_at:
                    launch.append((entry.state.due_at, cid, entry.state.check.argv()))
            # no more probes in flight than workers to run them: a probe's timeout counts from
            # its start, as the engine's does, never from a wait in the pool's queue (seen on
            # Podman at load 50: 30 services probed every second by 4 workers, so probes that
            # never ran were "over their timeout", their containers unhealthy and restarted).
            # The most overdue go first; the others stay due for the next round.
            free = self.workers - sum(1 for e in self._entries.values() if e.flight is not None)
            launch = sorted(launch)[:max(0, free)]
        for _due, cid, argv in launch:
            self._launch(cid, argv, now)
        return changed

    def _launch(self, cid: str, argv: list[str], now: float) -> None:
        def run() -> Outcome:
            return self.probe(cid, argv)

        with self._lock:
            entry = self._entries.get(cid)
            if entry is None or entry.flight is not None:
                return
            future = self.submit(run)
            entry.flight = _Flight(future, now, now + entry.state.check.timeout)

    def _land(self, entry: _Entry, flight: _Flight, now: float, changed: list[str]) -> None:
        try:
            out = flight.future.result()
        except Exception as exc:  # noqa: BLE001 - the engine did not answer: try again next interval
            logger.debug(f"probe of {entry.state.container_id[:12]} could not run: {exc}")
            entry.state = replace(entry.state, due_at=now + entry.state.check.interval)
            return
        if not out.running:
            entry.state = replace(entry.state, due_at=now + entry.state.check.interval)
            return  # a stopped container has no health to report; the planner sees it stopped
        if not entry.known_start:  # first look at this process: its exact start time
            entry.state = replace(entry.state, started_at=out.started_at)
            entry.known_start = True
        elif abs(out.started_at - entry.state.started_at) > 1e-3:
            # started again since the last probe (outside the controller): health starts over
            before = entry.state.status
            entry.state = restarted(entry.state, out.started_at)
            if before != entry.state.status:
                changed.append(entry.state.service)
        self._apply(entry, ProbeResult(flight.start, now, out.exit_code, out.output), changed)

    def _apply(self, entry: _Entry, result: ProbeResult, changed: list[str]) -> None:
        before = entry.state.status
        entry.state = record(entry.state, result)
        if entry.state.status != before:
            changed.append(entry.state.service)
            logger.debug(f"{entry.state.service}: controller probe {before} -> {entry.state.status}")

    def next_due(self) -> float | None:
        with self._lock:
            dues = [e.flight.deadline if e.flight else e.state.due_at for e in self._entries.values()]
        return min(dues) if dues else None

    def _in_flight(self) -> bool:
        with self._lock:
            return any(e.flight is not None for e in self._entries.values())

    # -- the thread ----------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="probes", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            now = self.clock()
            try:
                for service in dict.fromkeys(self.tick(now)):
                    if self.on_change:
                        self.on_change(service)
            except Exception:  # noqa: BLE001 - the probe thread must not die
                logger.exception("controller health probes failed")
            due = self.next_due()
            # wake for the next due probe, a finished one (polled), or new targets
            wait = 0.5 if due is None else min(0.5, max(0.05, due - self.clock()))
            if self._in_flight():
                wait = min(wait, 0.05)
            self._wake.wait(wait)
            self._wake.clear()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
