"""controller.timeline: audit rows -> a 24 h band strip with restart marks (fixed ``now``)."""

from __future__ import annotations

import pytest

from controller import timeline as T
from store.records import Event

NOW = 1_000_000.0
DAY = 86400.0
START = NOW - DAY


def ev(ts: float, type_: str, reason: str = "", i: int = 0) -> Event:
    return Event(ts=ts, service="web", type=type_, reason=reason, id=i or int(ts))


@pytest.mark.parametrize(("row", "band"), [
    (ev(1, "Created"), T.RUNNING),
    (ev(1, "Started"), T.RUNNING),
    (ev(1, "Restarted", "container exited with code 137"), T.RUNNING),
    (ev(1, "Recreated"), T.RUNNING),
    (ev(1, "Died", "container exited with code 1"), T.DOWN),
    (ev(1, "Removed"), T.DOWN),
    (ev(1, "Deleted"), T.DOWN),
    (ev(1, "GaveUp"), T.DOWN),
    (ev(1, "JobFailed"), T.DOWN),
    (ev(1, "Completed"), T.DOWN),
    (ev(1, "BackOff"), T.BACKOFF),
    (ev(1, "HealthChanged", "starting -> healthy"), T.HEALTHY),
    (ev(1, "HealthChanged", "healthy -> unhealthy"), T.UNHEALTHY),
    (ev(1, "HealthChanged", "none -> starting"), T.RUNNING),
    (ev(1, "HealthChanged", "healthy -> none (container no longer running)"), T.DOWN),
    (ev(1, "HealthChanged", "unhealthy -> none"), T.RUNNING),
    (ev(1, "HealthChanged", "garbled"), None),
    (ev(1, "HealthChanged", "a -> sideways"), None),
    (ev(1, "Applied"), None),
    (ev(1, "Failed", "create failed"), None),
    (ev(1, "HookRan"), None),
])
def test_band_of_each_row_type(row: Event, band: str | None) -> None:
    assert T.band_of(row) == band


def test_every_band_setting_type_is_a_state_type() -> None:
    for t in ("Created", "Died", "BackOff", "HealthChanged", "GaveUp"):
        assert t in T.STATE_TYPES
    assert "Applied" not in T.STATE_TYPES


def bands(line: T.Timeline) -> list[tuple[float, float, str]]:
    return [(b.start, b.end, b.state) for b in line.bands]


@pytest.mark.parametrize(("rows", "want_bands", "want_restarts"), [
    pytest.param([], [(START, NOW, T.UNKNOWN)], [], id="no rows: unknown all day"),
    pytest.param([ev(START - 500, "Created")], [(START, NOW, T.RUNNING)], [], id="state from the row before the window"),
    pytest.param([ev(START - 900, "Created"), ev(START - 500, "HealthChanged", "starting -> healthy"),
                  ev(START - 100, "Applied")],
                 [(START, NOW, T.HEALTHY)], [], id="the newest state-setting row before the window wins"),
    pytest.param([ev(START + 100, "Created")], [(START, START + 100, T.UNKNOWN), (START + 100, NOW, T.RUNNING)], [],
                 id="created inside the window"),
    pytest.param([ev(START - 10, "Created"), ev(NOW - 300, "Died", "exit 137"), ev(NOW - 299, "Restarted", "exit 137")],
                 [(START, NOW - 300, T.RUNNING), (NOW - 300, NOW - 299, T.DOWN), (NOW - 299, NOW, T.RUNNING)],
                 [NOW - 299], id="a kill: down for a second, one restart mark"),
    pytest.param([ev(START - 10, "Created"), ev(NOW - 600, "Restarted"), ev(NOW - 500, "BackOff"),
                  ev(NOW - 400, "Restarted"), ev(NOW - 300, "GaveUp")],
                 [(START, NOW - 500, T.RUNNING), (NOW - 500, NOW - 400, T.BACKOFF), (NOW - 400, NOW - 300, T.RUNNING),
                  (NOW - 300, NOW, T.DOWN)],
                 [NOW - 600, NOW - 400], id="crash loop: running, backoff, running, gave up"),
    pytest.param([ev(START - 10, "Created"), ev(NOW - 50, "HealthChanged", "starting -> healthy"),
                  ev(NOW - 40, "HealthChanged", "healthy -> unhealthy"), ev(NOW - 30, "Restarted"),
                  ev(NOW - 20, "HealthChanged", "none -> healthy")],
                 [(START, NOW - 50, T.RUNNING), (NOW - 50, NOW - 40, T.HEALTHY), (NOW - 40, NOW - 30, T.UNHEALTHY),
                  (NOW - 30, NOW - 20, T.RUNNING), (NOW - 20, NOW, T.HEALTHY)],
                 [NOW - 30], id="health: healthy, unhealthy, restarted, healthy"),
    pytest.param([ev(START - 10, "Created"), ev(NOW - 100, "Restarted"), ev(NOW - 50, "Started")],
                 [(START, NOW, T.RUNNING)], [NOW - 100], id="a restart while running stays one band, marked"),
    pytest.param([ev(START - 10, "Created"), ev(NOW + 10, "Died")], [(START, NOW, T.RUNNING)], [],
                 id="rows after the end are ignored"),
    pytest.param([ev(NOW - 100, "Died", i=2), ev(NOW - 100, "Created", i=1)],
                 [(START, NOW - 100, T.UNKNOWN), (NOW - 100, NOW, T.DOWN)], [],
                 id="same ts: ordered by id, zero-width band dropped"),
    pytest.param([ev(START, "Created")], [(START, NOW, T.RUNNING)], [], id="a row exactly at the start"),
])
def test_build(rows: list[Event], want_bands: list[tuple[float, float, str]], want_restarts: list[float]) -> None:
    line = T.build(reversed(rows), start=START, end=NOW)  # any order in
    assert bands(line) == want_bands
    assert list(line.restarts) == want_restarts
    assert line.bands[0].start == START and line.bands[-1].end == NOW
    assert all(a.end == b.start for a, b in zip(line.bands, line.bands[1:]))


def test_to_json_shape() -> None:
    line = T.build([ev(START - 1, "Created"), ev(NOW - 5, "Restarted")], start=START, end=NOW)
    assert line.to_json() == {"start": START, "end": NOW, "bands": [{"start": START, "end": NOW, "state": "running"}],
                              "restarts": [NOW - 5]}
