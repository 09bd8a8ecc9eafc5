"""The planner on a node (many hosts): a service narrowed to the replicas assigned to this
node creates only those (indices, and so container names, unchanged), removes its
containers of replicas assigned elsewhere, and the render labels them with the node."""

from __future__ import annotations

from dataclasses import replace

from controller import labels as L
from controller.actions import Create, Remove
from controller.planner import RUNNING, plan
from controller.render import render
from tests.unit.test_planner import NOW, ctr, svc


def test_only_the_assigned_replicas_are_created_with_their_own_indices() -> None:
    web = replace(svc(replicas=3), node="n2", replica_set=frozenset({2, 3}))
    p = plan({"web": web}, [], {}, now=NOW)
    creates = [a for a in p.services["web"].actions if isinstance(a, Create)]
    assert [a.replica for a in creates] == [2, 3]


def test_a_replica_assigned_elsewhere_is_removed_here_and_the_rest_is_left_alone() -> None:
    base = svc(replicas=2)
    here = replace(base, node="n1", replica_set=frozenset({1}))
    one, two = ctr(base, 1), ctr(base, 2)
    p = plan({"web": here}, [one, two], {}, now=NOW)
    sp = p.services["web"]
    assert [(type(a), a.replica) for a in sp.actions] == [(Remove, 2)]
    assert "assigned to another node" in sp.actions[0].reason  # type: ignore[union-attr]


def test_a_service_with_nothing_here_removes_its_containers_and_is_not_pending() -> None:
    base = svc(replicas=1)
    p = plan({"web": replace(base, node="n1", replica_set=frozenset())}, [ctr(base, 1)], {}, now=NOW)
    sp = p.services["web"]
    assert [type(a) for a in sp.actions] == [Remove] and sp.state == RUNNING


def test_without_a_node_every_replica_is_wanted_as_before() -> None:
    web = svc(replicas=2)
    assert web.wanted == (1, 2)
    assert [a.replica for a in plan({"web": web}, [], {}, now=NOW).services["web"].actions] == [1, 2]


def test_containers_made_on_a_node_carry_its_label_and_keep_their_name() -> None:
    base = svc(replicas=2)
    on_node = render(replace(base, node="n1", replica_set=frozenset({2})), "inst", 2)
    plain = render(base, "inst", 2)
    assert on_node.labels[L.NODE] == "n1" and L.NODE not in plain.labels
    assert on_node.name == plain.name
