"""controller.cli_describe.controller_probe: where the controller runs the health check
(Podman without systemd: the engine keeps no probe log), `describe` shows the probe behind
the container's last HealthChanged row. Pure reading of audit rows, so the rows are built here."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from controller.cli_describe import controller_probe
from store.records import Event

CID = "ab" * 32


def row(ts: float, message: str, container_id: str = CID, type: str = "HealthChanged") -> Event:
    return Event(ts=ts, service="web", type=type, reason="starting -> healthy", message=message,
                 container_id=container_id)


class _Store:
    def __init__(self, rows: list[Event]):
        self.rows = rows

    def history(self, name: str, *, types: list[str] | None = None, limit: int | None = None) -> list[Event]:
        out = [r for r in self.rows if r.service == name and (not types or r.type in types)]
        return out[-limit:] if limit else out


@pytest.mark.parametrize(("rows", "container_id", "expected"), [
    ([], CID, None),
    ([row(10.0, "exit 0: ok")], CID, {"exitCode": 0, "output": "ok", "end": 10.0}),
    ([row(10.0, "exit 0: ok")], CID[:12], {"exitCode": 0, "output": "ok", "end": 10.0}),  # status keeps a short id
    ([row(10.0, "exit 0: ok"), row(20.0, "exit 1: wget: server returned error\n")], CID,
     {"exitCode": 1, "output": "wget: server returned error", "end": 20.0}),  # the newest wins
    ([row(10.0, "exit -1: Health check exceeded timeout (2s)")], CID,
     {"exitCode": -1, "output": "Health check exceeded timeout (2s)", "end": 10.0}),
    ([row(10.0, "exit 0: ok", container_id="cd" * 32)], CID, None),  # another container's
    ([row(10.0, "")], CID, None),  # a change with no probe behind it (healthy -> none)
    ([row(10.0, "exit 0: ok")], "", None),
])
def test_the_controllers_last_probe_comes_from_its_health_rows(rows: list[Event], container_id: str,
                                                              expected: dict[str, Any] | None) -> None:
    got = controller_probe(SimpleNamespace(store=_Store(rows)), "web", container_id)
    if expected is None:
        assert got is None
    else:
        assert got == {**expected, "start": None, "checkedBy": "controller"}
