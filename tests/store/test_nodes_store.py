"""store.nodes on a real SQLite file: node registration, node leases (tokens increase on
every new holding, expiry, takeover of a dead holder), fencing of agent writes, the
scheduler lease and its fenced placement writes, the database's own clock."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from store import Event, Status, Store
from store.errors import Fenced
from store.records import Node, Placed, PlacementWrite

T0 = 1_000_000.0


@pytest.fixture()
def store(store_url: str) -> Iterator[Store]:
    """On SQLite and on PostgreSQL (tests/store/conftest.py)."""
    st = Store.open(store_url)
    yield st
    st.close()


def n1(store: Store, name: str = "n1") -> None:
    store.nodes.register(Node(name, {"zone": "a"}, "20.10.24", 2.0, 4 << 30), now=T0)


def test_register_is_audited_once_and_keeps_operator_flags(store: Store) -> None:
    assert store.nodes.register(Node("n1", {"zone": "a"}, "20.10.24", 2.0, 4 << 30), now=T0) is True
    store.nodes.set_flags("n1", cordoned=True, actor="cli", now=T0)
    assert store.nodes.register(Node("n1", {"zone": "b"}, "24.0", 4.0, 8 << 30), now=T0 + 1) is False
    got = store.nodes.node("n1")
    assert got is not None
    assert (got.labels, got.engine_version, got.cpus, got.memory, got.cordoned, got.heartbeat_at) == (
        {"zone": "b"}, "24.0", 4.0, 8 << 30, True, T0 + 1)
    assert [e.type for e in store.history(types=["NodeRegistered"])] == ["NodeRegistered"]
    assert store.nodes.set_flags("nope", cordoned=True, actor="cli", now=T0) is None


def test_tokens_increase_with_every_new_holding_and_a_live_lease_is_refused(store: Store) -> None:
    n1(store)
    a = store.nodes.acquire("n1", "agent:a:1", ttl=10, now=T0)
    assert a is not None and a.token == 1
    assert store.nodes.acquire("n1", "agent:b:2", ttl=10, now=T0 + 5) is None  # live: refused
    assert store.nodes.live_holder("n1", now=T0 + 5) == "agent:a:1"
    assert store.nodes.renew(a, ttl=10, now=T0 + 8)  # expires T0 + 18 now
    assert store.nodes.acquire("n1", "agent:b:2", ttl=10, now=T0 + 15) is None
    b = store.nodes.acquire("n1", "agent:b:2", ttl=10, now=T0 + 19)  # expired: taken over
    assert b is not None and b.token == 2
    assert not store.nodes.renew(a, ttl=10, now=T0 + 20)  # the old holder cannot renew
    store.nodes.release(b)
    assert store.nodes.live_holder("n1", now=T0 + 20) == ""
    c = store.nodes.acquire("n1", "agent:b:3", ttl=10, now=T0 + 20)  # released: free at once
    assert c is not None and c.token == 3
    d = store.nodes.acquire("n1", "agent:b:4", ttl=10, now=T0 + 21, dead_holder="agent:b:3")
    assert d is not None and d.token == 4  # a holder known to be dead is taken over before expiry


def test_an_unregistered_node_cannot_be_leased(store: Store) -> None:
    assert store.nodes.acquire("ghost", "agent:a:1", ttl=10, now=T0) is None


def test_agent_writes_are_fenced_after_a_takeover(store: Store) -> None:
    n1(store)
    a = store.nodes.acquire("n1", "agent:a:1", ttl=10, now=T0)
    assert a is not None
    agent_a = Store.open(store.url)
    try:
        agent_a.fence = a
        agent_a.record([Event(ts=T0, service="web", type="Created", reason="r")], [Status(name="web")])
        assert store.nodes.acquire("n1", "agent:b:2", ttl=10, now=T0 + 11) is not None
        with pytest.raises(Fenced, match="no longer current"):
            agent_a.record([Event(ts=T0 + 12, service="web", type="Started", reason="late")])
        with pytest.raises(Fenced):
            agent_a.rollback("web", to_generation=None, actor="agent", now=T0 + 12, reason="x")
    finally:
        agent_a.close()
    assert [e.type for e in store.history("web")] == ["Created"]  # the late write left nothing


def test_the_database_clock_judges_expiry(store: Store) -> None:
    n1(store)
    before = time.time()
    a = store.nodes.acquire("n1", "agent:a:1", ttl=0.3)
    assert a is not None
    lease = store.nodes.lease("n1")
    assert lease is not None and before - 1 < lease.expires_at - 0.3 < time.time() + 1
    assert store.nodes.acquire("n1", "agent:b:2", ttl=5) is None
    time.sleep(0.4)
    b = store.nodes.acquire("n1", "agent:b:2", ttl=5)
    assert b is not None and b.token == a.token + 1
    assert abs(store.nodes.db_now() - time.time()) < 2


def test_the_scheduler_lease_and_fenced_placement_writes(store: Store) -> None:
    n1(store)
    assert store.nodes.acquire_scheduler("s1", ttl=10, now=T0)
    assert not store.nodes.acquire_scheduler("s2", ttl=10, now=T0 + 5)
    assert store.nodes.acquire_scheduler("s1", ttl=10, now=T0 + 5)
    change = PlacementWrite(upsert=(Placed("web", 1, "n1", "placed", T0),), lost=(("n1", True),),
                            events=(Event(ts=T0, service="web", type="Placed", reason="replica 1 on n1"),))
    with pytest.raises(Fenced):
        store.nodes.write_placement(change, scheduler="s2")
    store.nodes.write_placement(change, scheduler="s1")
    assert store.nodes.assignments() == [Placed("web", 1, "n1", "placed", T0)]
    node = store.nodes.node("n1")
    assert node is not None and node.lost
    assert store.nodes.acquire_scheduler("s2", ttl=10, now=T0 + 16)  # s1's expired
    store.nodes.write_placement(PlacementWrite(drop=(("web", 1),)), scheduler="s2")
    assert store.nodes.assignments(node="n1") == []
    snap = store.nodes.snapshot(now=T0)
    assert snap.now == T0 and [n.name for n in snap.nodes] == ["n1"] and snap.leases["n1"].token == 0
