"""The controller's own health checks (controller/probes.py): Docker's health rules as pure
functions, and the runner's scheduling against a fake clock with a fake probe."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import replace

import pytest

from controller.observed import HealthState, parse_time
from controller.probes import (
    HEALTHY,
    STARTING,
    TIMEOUT_EXIT,
    UNHEALTHY,
    Check,
    Outcome,
    ProbeResult,
    ProbeRunner,
    ProbeState,
    Target,
    engine_stalled,
    record,
)

CHECK = Check(test=("CMD", "true"), interval=2.0, timeout=1.0, retries=3, start_period=10.0)


def run(state: ProbeState, results: list[tuple[float, int]]) -> ProbeState:
    for at, code in results:
        state = record(state, ProbeResult(at, at + 0.1, code, f"code {code}"))
    return state


@pytest.mark.parametrize("results, status, streak", [
    ([], STARTING, 0),
    ([(2, 0)], HEALTHY, 0),
    # failures within the start period, never healthy yet: not counted
    ([(2, 1), (4, 1), (6, 1), (8, 1)], STARTING, 0),
    # after the start period they count; `retries` in a row make it unhealthy
    ([(12, 1), (14, 1)], STARTING, 2),
    ([(12, 1), (14, 1), (16, 1)], UNHEALTHY, 3),
    # once healthy, failures count even within the start period
    ([(2, 0), (4, 1), (6, 1), (8, 1)], UNHEALTHY, 3),
    # a success clears the streak
    ([(12, 1), (14, 1), (16, 0), (18, 1)], HEALTHY, 1),
    ([(12, 1), (14, 1), (16, 1), (18, 0)], HEALTHY, 0),
])
def test_docker_health_rules(results: list[tuple[float, int]], status: str, streak: int) -> None:
    st = run(ProbeState.new("c1", "web", CHECK, started_at=0.0), results)
    assert (st.status, st.failing_streak) == (status, streak)


def test_log_keeps_the_last_five_results_and_schedules_the_next_probe_an_interval_after_the_last() -> None:
    st = run(ProbeState.new("c1", "web", CHECK, started_at=0.0), [(t, t % 3) for t in range(2, 16, 2)])
    assert [r.start for r in st.log] == [6, 8, 10, 12, 14]
    assert st.due_at == pytest.approx(14.1 + CHECK.interval)
    assert st.last is not None and st.last.tail() == "exit 2: code 2"


@pytest.mark.parametrize("check, now, want", [
    (CHECK, 1.0, 2.0),                                             # no start interval: the interval
    (replace(CHECK, start_interval=0.5), 1.0, 0.5),                # starting, in the start period
    (replace(CHECK, start_interval=0.5), 11.0, 2.0),               # start period over
])
def test_start_interval_applies_only_while_starting_in_the_start_period(check: Check, now: float, want: float) -> None:
    assert check.interval_at(0.0, STARTING, now) == want
    assert check.interval_at(0.0, HEALTHY, now) == check.interval


@pytest.mark.parametrize("test, argv", [
    (("CMD", "wget", "-q", "http://x/"), ["wget", "-q", "http://x/"]),
    (("CMD-SHELL", "test -f /ok || exit 1"), ["/bin/sh", "-c", "test -f /ok || exit 1"]),
])
def test_check_argv(test: tuple[str, ...], argv: list[str]) -> None:
    assert replace(CHECK, test=test).argv() == argv


@pytest.mark.parametrize("health, now, stalled", [
    (None, 100.0, False),                                           # no healthcheck on the container
    ({"Status": "starting", "Log": []}, 5.0, False),                # first probe not long overdue
    ({"Status": "starting", "Log": []}, 100.0, True),               # never probed: the engine does not run it
    ({"Status": "starting", "Log": [{"ExitCode": 1}]}, 100.0, False),  # the engine probes (still starting)
    ({"Status": "healthy", "Log": []}, 100.0, False),
])
def test_engine_stalled(health: dict | None, now: float, stalled: bool) -> None:  # type: ignore[type-arg]
    assert engine_stalled(HealthState.from_engine(health), CHECK, 0.0, now) is stalled


@pytest.mark.parametrize("value, want", [
    ("2024-05-01T15:32:11.123456789Z", 1714577531.123456),
    ("2024-05-01T15:32:11Z", 1714577531.0),
    ("2024-05-01T17:32:11.5+02:00", 1714577531.5),
    ("0001-01-01T00:00:00Z", 0.0),
    ("", 0.0),
    ("yesterday", 0.0),
])
def test_parse_time(value: str, want: float) -> None:
    assert parse_time(value) == pytest.approx(want)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeContainer:
    """What the fake probe finds: exit codes to hand out, in order, and a start time."""

    def __init__(self, started_at: float, codes: list[int]):
        self.started_at = started_at
        self.codes = codes
        self.running = True
        self.calls: list[list[str]] = []

    def probe(self, cid: str, argv: list[str]) -> Outcome:
        self.calls.append(argv)
        code = self.codes.pop(0) if self.codes else 0
        return Outcome(self.running, self.started_at, code, f"probe said {code}")


def immediate(fn: Callable[[], Outcome]) -> Future[Outcome]:
    f: Future[Outcome] = Future()
    try:
        f.set_result(fn())
    except Exception as exc:  # noqa: BLE001 - as a pool's future would hold it
        f.set_exception(exc)
    return f


def runner_for(box: FakeContainer, clock: FakeClock,
               submit: Callable[[Callable[[], Outcome]], Future[Outcome]] = immediate) -> ProbeRunner:
    return ProbeRunner(box.probe, clock, submit=submit)


def advance(runner: ProbeRunner, clock: FakeClock, seconds: float, step: float = 0.25) -> list[str]:
    changed: list[str] = []
    end = clock.now + seconds
    while clock.now < end:
        clock.now = round(clock.now + step, 6)
        changed += runner.tick(clock.now)
    return changed


def test_runner_probes_at_the_interval_and_reports_transitions() -> None:
    clock = FakeClock()
    box = FakeContainer(started_at=clock.now, codes=[0, 0, 1, 1, 1])
    check = replace(CHECK, start_period=0.0)
    r = runner_for(box, clock)
    r.sync([Target("c1", "web", check)])
    assert r.state("c1").status == STARTING  # type: ignore[union-attr]
    assert advance(r, clock, 1.75) == [] and box.calls == []  # the first probe waits one interval
    assert advance(r, clock, 0.5) == ["web"]
    assert r.state("c1").status == HEALTHY  # type: ignore[union-attr]
    advance(r, clock, 2.0 * 3 + 1)
    assert r.state("c1").status == HEALTHY  # type: ignore[union-attr]
    assert advance(r, clock, 2.5) == ["web"]
    assert r.state("c1").status == UNHEALTHY and len(box.calls) == 5  # type: ignore[union-attr]
    assert box.calls[0] == ["true"]


def test_a_probe_over_its_timeout_fails_and_is_not_repeated_while_it_hangs() -> None:
    clock = FakeClock()
    box = FakeContainer(started_at=clock.now, codes=[])
    hanging: list[Future[Outcome]] = []

    def never(fn: Callable[[], Outcome]) -> Future[Outcome]:
        f: Future[Outcome] = Future()
        hanging.append(f)
        return f

    r = runner_for(box, clock, submit=never)
    r.sync([Target("c1", "web", replace(CHECK, start_period=0.0, retries=1))])
    advance(r, clock, 2.0)
    assert len(hanging) == 1
    advance(r, clock, 1.0)  # timeout 1s
    st = r.state("c1")
    assert st is not None and st.status == UNHEALTHY
    assert st.last is not None and st.last.exit_code == TIMEOUT_EXIT and "exceeded timeout (1s)" in st.last.output
    advance(r, clock, 10.0)
    assert len(hanging) == 1  # the first exec still hangs: no pile-up
    hanging[0].set_result(Outcome(True, box.started_at, 0, "late"))
    advance(r, clock, 0.25)
    assert r.state("c1").status == UNHEALTHY  # type: ignore[union-attr]  # a late answer does not count
    advance(r, clock, 2.5)
    assert len(hanging) == 2  # probing resumed


def test_a_restart_starts_health_over_and_a_stopped_container_reports_nothing() -> None:
    clock = FakeClock()
    box = FakeContainer(started_at=clock.now, codes=[1])
    r = runner_for(box, clock)
    check = replace(CHECK, start_period=0.0, retries=1)
    r.sync([Target("c1", "web", check)])
    advance(r, clock, 2.5)
    assert r.state("c1").status == UNHEALTHY  # type: ignore[union-attr]
    r.restarted("c1", clock.now)  # the controller restarted it
    assert r.state("c1").status == STARTING  # type: ignore[union-attr]
    box.started_at = clock.now
    advance(r, clock, 2.5)
    assert r.state("c1").status == HEALTHY  # type: ignore[union-attr]
    # restarted outside the controller: the next probe sees a new StartedAt
    box.codes, box.started_at = [0], clock.now + 0.1
    advance(r, clock, 2.5)
    st = r.state("c1")
    assert st is not None and st.started_at == box.started_at and st.status == HEALTHY
    assert len(st.log) == 1  # the earlier process's results are gone
    box.running = False  # stopped: probes record nothing (the planner sees it stopped)
    n = len(box.calls)
    assert advance(r, clock, 4.5) == []
    st = r.state("c1")
    assert len(box.calls) > n and st is not None and len(st.log) == 1


def test_sync_forgets_containers_no_longer_listed_and_seeds_new_ones() -> None:
    clock = FakeClock()
    box = FakeContainer(started_at=clock.now, codes=[])
    r = runner_for(box, clock)
    r.sync([Target("c1", "web", CHECK), Target("c2", "web", CHECK)], seed={"c2": HEALTHY, "c1": "starting"})
    assert r.state("c1").status == STARTING and r.state("c2").status == HEALTHY  # type: ignore[union-attr]
    r.sync([Target("c2", "web", CHECK)], seed={"c2": UNHEALTHY})  # a seed only applies to new ones
    assert r.state("c1") is None and r.state("c2").status == HEALTHY  # type: ignore[union-attr]
    r.sync([Target("c2", "web", replace(CHECK, interval=5.0))])  # a changed check starts over
    assert r.state("c2").status == STARTING  # type: ignore[union-attr]
    assert not r.watching("c1") and r.watching("c2")


def test_a_probe_the_engine_could_not_run_is_retried_an_interval_later() -> None:
    clock = FakeClock()
    calls: list[float] = []

    def failing(cid: str, argv: list[str]) -> Outcome:
        calls.append(clock.now)
        raise RuntimeError("engine gone")

    r = ProbeRunner(failing, clock, submit=immediate)
    r.sync([Target("c1", "web", CHECK)])
    advance(r, clock, 7.0)
    assert len(calls) == 3 and r.state("c1").status == STARTING  # type: ignore[union-attr]


def test_no_more_probes_in_flight_than_workers_and_a_queued_probe_is_not_timed_out() -> None:
    clock = FakeClock()
    box = FakeContainer(started_at=clock.now, codes=[])
    pending: list[Future[Outcome]] = []

    def held(fn: Callable[[], Outcome]) -> Future[Outcome]:
        f: Future[Outcome] = Future()
        pending.append(f)
        return f

    r = ProbeRunner(box.probe, clock, submit=held, workers=2)
    check = replace(CHECK, start_period=0.0, retries=1)
    r.sync([Target(f"c{i}", f"s{i}", check) for i in range(3)])
    advance(r, clock, 2.0)
    assert len(pending) == 2  # two workers: the third probe waits, due
    pending[0].set_result(Outcome(True, box.started_at, 0, "ok"))
    advance(r, clock, 0.25)
    assert len(pending) == 3  # a worker is free: the waiting probe runs now
    advance(r, clock, 0.75)  # under its 1 s timeout since it started (not since it was due)
    assert r.state("c2").status != UNHEALTHY  # type: ignore[union-attr]
    advance(r, clock, 0.5)
    assert r.state("c2").status == UNHEALTHY  # type: ignore[union-attr]  # its own timeout, from its start
