"""controller.cli_wait.Progress: live lines on a terminal, timestamped lines otherwise, nothing
with --quiet."""

from __future__ import annotations

import io
import re

import pytest

from controller.cli_wait import Progress
from controller.waiting import Cause, Outcome, Verdict


def v(*outcomes: Outcome) -> Verdict:
    return Verdict({o.name: o for o in outcomes})


WAITING = v(Outcome("web", "waiting", "Waiting", waits_for=(("db", "healthy"),)), Outcome("db", "waiting", "Running",
                                                                                           "starting"))
READY = v(Outcome("web", "done", "Running"), Outcome("db", "done", "Running", "healthy"))
BLOCKED = v(Outcome("web", "blocked", "Waiting", cause=Cause("db", "GaveUp"), path=("web", "db")))


@pytest.mark.parametrize("tty,quiet,expect", [
    (False, False, [r"^\d\d:\d\d:\d\d \.\. web: Waiting, waits for db \(healthy\)$",
                    r"^\d\d:\d\d:\d\d \.\. db: Running, health starting$",
                    r"^\d\d:\d\d:\d\d ok web: Running$", r"^\d\d:\d\d:\d\d ok db: Running, health healthy$",
                    r"^\d\d:\d\d:\d\d !! web: Waiting, blocked by db: GaveUp$"]),
    (True, False, [r"^\.\. web: Waiting, waits for db \(healthy\)$", r"^\.\. db: Running, health starting$",
                   r"^\x1b\[2F\x1b\[Jok web: Running$", r"^ok db: Running, health healthy$",
                   r"^\x1b\[2F\x1b\[J!! web: Waiting, blocked by db: GaveUp$"]),
    (False, True, []),
])
def test_progress(tty: bool, quiet: bool, expect: list[str]) -> None:
    buf = io.StringIO()
    p = Progress(quiet=quiet, tty=tty, stream=buf)
    for verdict in (WAITING, WAITING, READY, READY, BLOCKED):  # repeats print nothing new
        p(verdict)
    lines = buf.getvalue().splitlines()
    assert len(lines) == len(expect), lines
    for line, pattern in zip(lines, expect):
        assert re.match(pattern, line), (line, pattern)
