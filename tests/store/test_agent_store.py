"""controller.agent's store side on a real SQLite file, without an engine: the node lease
tick sets the store's fence, the scheduler pass places a stack on the default node, the
reconciler hook narrows services to this node's replicas and picks who writes a status
row, and a taken-over agent's writes are refused."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any, cast

import pytest

from controller.agent import Agent, AgentOptions, node_ttl
from controller.engine import Engine
from controller.errors import NotOwner
from controller.render import prepare
from crd_like import API_VERSION, ServiceSpec, spec_hash
from store import Event, ResourceInput, Store
from store.errors import Fenced
from store.records import Node


def res(name: str, **spec: Any) -> ResourceInput:
    model = ServiceSpec.model_validate({"image": "demo/web:1", **spec})
    return ResourceInput(name, "Service", API_VERSION, model.model_dump(mode="json", exclude_defaults=True),
                         {"name": name}, spec_hash(model))


@pytest.fixture()
def store(store_url: str) -> Iterator[Store]:
    st = Store.open(store_url)
    yield st
    st.close()


def agent(store: Store, node: str, clock: list[float]) -> Agent:
    store.nodes.register(Node(node))
    return Agent(store, cast(Engine, None), AgentOptions(node, ttl=30.0), mono=lambda: clock[0])


def test_ttl_from_the_environment() -> None:
    assert node_ttl({}) == 15.0 and node_ttl({"RECONCILE_NODE_TTL": "3"}) == 3.0
    assert node_ttl({"RECONCILE_NODE_TTL": "x"}) == 15.0 and node_ttl({"RECONCILE_NODE_TTL": "-1"}) == 15.0


def test_schedule_narrow_status_author_and_fencing(store: Store) -> None:
    clock = [0.0]
    a = agent(store, "n1", clock)
    assert a.schedule() == 0  # not holding its node: no scheduling
    with pytest.raises(Fenced):  # nothing is written before the node lease is held
        store.record([Event(ts=0.5, service="web", type="Started", reason="early")])
    assert a.tick().kind == "acquired" and store.fence is not None and store.fence.token == 1 and a.may_act()
    store.apply([res("web", replicas=2)], source="t", actor="test", now=1.0)
    assert a.schedule() == 2  # two Placed rows: the only node is the default node
    assert [(p.service, p.replica, p.node) for p in store.nodes.assignments()] == [("web", 1, "n1"), ("web", 2, "n1")]
    assert a.schedule() == 0  # nothing changed, nothing written
    desired = {"web": prepare("web", "Service", 1, store.desired()["web"].spec),
               "other": prepare("other", "Service", 1, {"image": "demo/web:1"})}
    narrowed = a.narrow(desired)
    assert narrowed["web"].wanted == (1, 2) and narrowed["web"].node == "n1"
    assert narrowed["other"].wanted == ()  # placed nowhere yet: nothing runs here
    assert a.writes_status("web") and not a.writes_status("other") and a.writes_status("deleted-one")
    clock[0] = 100.0  # past the local deadline without a renewal
    with pytest.raises(NotOwner):
        a.gate()
    b_store = Store.open(store.url)
    try:
        lease = store.nodes.lease("n1")
        assert lease is not None
        taken = b_store.nodes.acquire("n1", "agent:other:2", ttl=30, now=lease.expires_at + 1)
        assert taken is not None and taken.token == 2
        with pytest.raises(Fenced):
            store.record([Event(ts=2.0, service="web", type="Started", reason="late")])
        assert a.tick().kind == "lost" and not a.may_act()
        with pytest.raises(Fenced):  # still refused after the loss
            store.record([Event(ts=3.0, service="web", type="Started", reason="later")])
    finally:
        b_store.close()


class Containers:
    """The engine calls the fence makes, on containers in memory (the e2e test runs it on real
    engines: tests/e2e/test_multihost_e2e.py)."""

    def __init__(self, *rows: tuple[str, str, str]) -> None:  # (id, service, node)
        self.state = {cid: "running" for cid, _, _ in rows}
        self.rows = rows
        self.stops: list[tuple[str, int]] = []

    def list_owned(self, instance: str, service: str | None = None) -> list[Any]:
        from controller.observed import Observed

        return [Observed(cid, f"{svc}-1", svc, 1, instance, "h", 1, self.state[cid], None, "", "img", 1.0,
                         labels={"reconcile.node": node}) for cid, svc, node in self.rows if cid in self.state]

    def stop(self, cid: str, timeout: int) -> None:
        self.stops.append((cid, timeout))
        self.state[cid] = "exited"

    def start(self, cid: str) -> None:
        self.state[cid] = "running"


def test_the_fence_stops_movable_containers_then_audits_and_starts_them_again(store: Store) -> None:
    clock = [0.0]
    store.nodes.register(Node("n1"))
    engine = Containers(("m" * 64, "mover", "n1"), ("p" * 64, "pinned", "n1"), ("o" * 64, "mover", "n2"))
    a = Agent(store, cast(Engine, engine), AgentOptions("n1", ttl=6.0), mono=lambda: clock[0])
    assert a.tick().kind == "acquired"
    store.apply([res("mover", placement={"reschedule": True}, stopGracePeriod="1s"),
                 res("pinned", placement={"node": "n1"})], source="t", actor="test", now=1.0)
    a.schedule()
    a.narrow({n: prepare(n, "Service", 1, d.spec) for n, d in store.desired().items()})
    assert a.fence_check("inst") == []  # renewed just now
    clock[0] = 3.0  # a renewal missed, but the grace still fits later: nothing yet
    assert a.fence_check("inst") == [] and a.may_act()
    clock[0] = 3.1  # deadline 4.8 - 0.75 - 1 s of grace
    [stop] = a.fence_check("inst")
    assert (stop.service, stop.timeout) == ("mover", 1) and not a.may_act()
    for _ in range(100):  # the stop runs on the fence's own thread
        if engine.stops:
            break
        time.sleep(0.02)
    assert engine.stops == [("m" * 64, 1)]  # only this node's container of the movable service
    assert engine.state["p" * 64] == "running" and engine.state["o" * 64] == "running"
    assert a.fence_check("inst") == []  # stopped once
    with pytest.raises(NotOwner):
        a.gate()
    clock[0] = 4.0  # the store answers again before the lease expired: counted as a regain
    assert a.tick().kind == "regained" and a.may_act()
    assert a.settle_fenced("inst") == ["mover-1"] and engine.state["m" * 64] == "running"
    rows = [e for e in store.history() if e.type in ("FencedStop", "Started")]
    assert [(e.type, e.service) for e in rows] == [("FencedStop", "mover"), ("Started", "mover")]
    assert "n1 lost its lease" in rows[0].reason and "1s grace" in rows[0].message
    assert a.settle_fenced("inst") == [] and len([e for e in store.history() if e.type == "FencedStop"]) == 1
