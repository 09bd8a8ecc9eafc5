"""Whose health checks count: the engine's, or the controller's own probes.

``HealthChecks.observe`` takes the containers as the engine lists them and returns them
with the health the planner is to see. For a container whose check the engine runs, that
is the engine's; for one whose check the engine does not run (``Engine.runs_healthchecks()``
is False, as on Podman without systemd, or ``probes.engine_stalled``: no probe result long
after the first was due), it is the controller's (``controller.probes.ProbeRunner``). The
rest of the controller cannot tell the difference, except that ``checked_by`` names who ran
it (for ``status`` and ``describe``) and ``last_probe`` gives the last probe's output tail.

Must not import ``docker`` (the engine is reached through ``controller.engine``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Protocol

from loguru import logger

from controller.errors import ReconcileError
from controller.observed import ContainerDetail, Observed
from controller.probes import CONTROLLER, ENGINE, Check, Outcome, ProbeRunner, Target, engine_stalled

if TYPE_CHECKING:
    from controller.render import DesiredService

STALL_LOOK_EVERY = 5.0  # seconds between two looks at one container still `starting` on the engine


class HealthEngine(Protocol):
    def runs_healthchecks(self) -> bool: ...
    def detail(self, container_id: str) -> ContainerDetail: ...
    def exec_probe(self, container_id: str, argv: list[str]) -> Outcome: ...


class HealthChecks:
    def __init__(self, engine: HealthEngine, clock: Callable[[], float],
                 on_change: Callable[[str], None] | None = None):
        self.engine = engine
        self.clock = clock
        self.on_change = on_change
        self.runner: ProbeRunner | None = None
        self._taken: set[str] = set()  # containers taken over from a silent engine
        self._looked: dict[str, float] = {}  # container -> when it was last inspected for that

    def _runner(self) -> ProbeRunner:
        if self.runner is None:
            self.runner = ProbeRunner(self.engine.exec_probe, self.clock, on_change=self.on_change)
            self.runner.start()
        return self.runner

    def observe(self, observed: list[Observed], desired: dict[str, DesiredService], now: float,
                seed: dict[str, str] | None = None) -> list[Observed]:
        """The containers with the health that counts. ``seed``: container -> the health
        last recorded for it, kept until the controller's first probe of it in this process
        (so a new CLI process or a restarted controller does not report it `starting`)."""
        try:
            engine_runs = self.engine.runs_healthchecks()
        except ReconcileError:
            return observed  # cannot tell now; the next pass asks again
        targets, live = self._targets(observed, desired, now, engine_runs)
        self._taken &= live
        self._looked = {k: v for k, v in self._looked.items() if k in live}
        if not targets and self.runner is None:
            return observed
        runner = self._runner()
        runner.sync(targets, seed=seed)
        out = []
        for c in observed:
            st = runner.state(c.id)
            out.append(c if st is None else replace(c, health=st.status))
        return out

    def _targets(self, observed: list[Observed], desired: dict[str, DesiredService], now: float,
                 engine_runs: bool) -> tuple[list[Target], set[str]]:
        """(the containers whose check the controller runs, every running container with a
        probing check)."""
        targets: list[Target] = []
        live: set[str] = set()
        for c in observed:
            svc = desired.get(c.service)
            hc = svc.spec.healthcheck if svc is not None else None
            if hc is None or not hc.probes or not c.running:
                continue
            live.add(c.id)
            check = Check.from_spec(hc)
            if engine_runs and c.id not in self._taken and not self._stalled(c, check, now):
                continue
            targets.append(Target(c.id, c.service, check))
        return targets, live

    def _stalled(self, c: Observed, check: Check, now: float) -> bool:
        """Look (at most every few seconds) whether the engine left this check unrun."""
        if c.health != "starting" or now - self._looked.get(c.id, 0.0) < STALL_LOOK_EVERY:
            return False
        if now - c.created < check.interval + check.timeout:
            return False
        self._looked[c.id] = now
        try:
            detail = self.engine.detail(c.id)
        except ReconcileError:
            return False
        if engine_stalled(detail.health, check, detail.started_at, now):
            logger.warning(f"{c.service}: the engine has not run the health check of {c.id[:12]}; "
                           "the controller runs it from now on")
            self._taken.add(c.id)
            return True
        return False

    def checked_by(self, container_id: str) -> str:
        return CONTROLLER if self.runner is not None and self.runner.watching(container_id) else ENGINE

    def last_probe(self, container_id: str) -> str | None:
        """The controller's last probe of this container ("exit N: output"), or None when
        the controller does not run its check."""
        st = self.runner.state(container_id) if self.runner is not None else None
        if st is None:
            return None
        return st.last.tail() if st.last else ""

    def restarted(self, container_id: str, now: float) -> None:
        if self.runner is not None:
            self.runner.restarted(container_id, now)

    def close(self) -> None:
        if self.runner is not None:
            self.runner.close()
