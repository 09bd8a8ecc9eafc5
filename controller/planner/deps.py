"""Dependencies between services: what a service requires (``dependsOn`` plus the services
its networkMode, volumesFrom and links name), what its dependents see of it (``DepInfo``),
which conditions are still unmet, and the graph walks (dependents, topological order). Pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from controller.observed import Observed
from controller.planner.model import DepInfo, Unmet
from controller.planner.vocab import Problem, State
from controller.render import DesiredService
from crd_like.models import Dependency
from crd_like.spec_net import service_refs
from store.records import Status


def ready(c: Observed, svc: DesiredService) -> bool:
    """Running, and healthy where the spec has probes."""
    return c.running and (not svc.spec.probes or c.health == "healthy")


def dep_info(svc: DesiredService, containers: Sequence[Observed], status: Status | None) -> DepInfo:
    wanted = set(svc.wanted)  # on a node: the replicas assigned to it (docs/MULTI-HOST.md)
    current = [c for c in containers if c.spec_hash == svc.container_hash and c.replica in wanted]
    st = status or Status(name=svc.name)
    started = any(c.running for c in current)
    healthy = len({c.replica for c in current if ready(c, svc)}) >= len(wanted)
    completed = svc.kind == "Job" and any(c.state == "exited" and c.exit_code == 0 for c in current)
    return DepInfo(True, started, healthy, completed, st.state == State.FAILED, st.state == State.CRASHLOOP,
                   st.last_started_at, st.restart_requested_at > st.last_started_at)


def requirements(svc: DesiredService) -> dict[str, Dependency]:
    """``dependsOn``, plus the services its networkMode, volumesFrom and links refer to
    (they must have started: the engine needs their container)."""
    implicit = {name: Dependency() for name in service_refs(svc.spec) if name not in svc.spec.dependsOn}
    return {**svc.spec.dependsOn, **implicit}


def network_peer(svc: DesiredService) -> str:
    """X of ``networkMode: service:X``, or ''."""
    mode = svc.spec.networkMode or ""
    return mode.split(":", 1)[1] if mode.startswith("service:") else ""


def _met(info: DepInfo, condition: str) -> bool:
    if info.restart_pending:
        return False
    return {"started": info.started or info.completed, "healthy": info.healthy,
            "completed": info.completed}[condition]


def unmet(svc: DesiredService, deps: Mapping[str, DepInfo]) -> list[Unmet]:
    """The conditions of ``svc``'s requirements that are not met now, each with its problem."""
    out = []
    for name, dep in requirements(svc).items():
        info = deps.get(name)
        if info is None or not info.exists:
            out.append(Unmet(name, dep.condition, Problem.MISSING))
        elif not _met(info, dep.condition):
            problem = Problem.FAILED if info.failed else (Problem.CRASHLOOPING if info.crashlooping else Problem.NONE)
            out.append(Unmet(name, dep.condition, problem))
    return out


def dependents(desired: Mapping[str, DesiredService], name: str) -> set[str]:
    """Services that depend on ``name``, directly or transitively."""
    out: set[str] = set()
    frontier = [name]
    while frontier:
        cur = frontier.pop()
        for other, svc in desired.items():
            if cur in requirements(svc) and other not in out:
                out.add(other)
                frontier.append(other)
    return out


def topological_order(desired: Mapping[str, DesiredService]) -> list[str]:
    """Dependencies first; ties by name. Assumes the graph was checked for cycles."""
    order: list[str] = []
    seen: set[str] = set()

    def visit(n: str) -> None:
        if n in seen or n not in desired:
            return
        seen.add(n)
        for d in sorted(requirements(desired[n])):
            visit(d)
        order.append(n)

    for n in sorted(desired):
        visit(n)
    return order
