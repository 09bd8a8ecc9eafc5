"""Compose ``deploy.placement`` -> native ``placement`` (crd_like.compose_placement): the
mapping, the warnings for what is not mapped, the errors for contradictions."""

from __future__ import annotations

from typing import Any

import pytest

from crd_like.errors import InvalidSpec
from crd_like.formats import LoadOptions, load_any, to_native_yaml
from crd_like.hashing import spec_hash
from crd_like.models import ServiceSpec

FILE = "/srv/cp/compose.yaml"


def project(placement: str) -> str:
    body = "\n".join("        " + line for line in placement.splitlines())
    return f"name: cp\nservices:\n  web:\n    image: img\n    deploy:\n      placement:\n{body}\n"


def spec(placement: str, warnings: list[str] | None = None) -> ServiceSpec:
    opts = LoadOptions(environ={}, warnings=warnings if warnings is not None else [])
    [res] = load_any([(project(placement).encode(), FILE, "/srv/cp")], opts)
    return res.spec


MAPPED: list[tuple[str, str, dict[str, Any]]] = [
    ("hostname", 'constraints: ["node.hostname == web-01"]', {"node": "web-01"}),
    ("hostname without spaces", "constraints: [node.hostname==web-01]", {"node": "web-01"}),
    ("labels", 'constraints: ["node.labels.disk == ssd", "node.labels.zone==eu-1"]',
     {"nodeSelector": {"disk": "ssd", "zone": "eu-1"}}),
    ("hostname and labels", 'constraints: ["node.hostname == a", "node.labels.disk == ssd"]',
     {"node": "a", "nodeSelector": {"disk": "ssd"}}),
    ("spread over a label", "preferences:\n  - spread: node.labels.zone", {"spread": "zone"}),
    ("spread over hostnames", "preferences: [{spread: node.hostname}]", {"spread": "node"}),
    ("the same constraint twice", 'constraints: ["node.labels.a == 1", "node.labels.a == 1"]',
     {"nodeSelector": {"a": "1"}}),
    ("selector and spread", 'constraints: ["node.labels.disk == ssd"]\npreferences: [{spread: node.labels.zone}]',
     {"nodeSelector": {"disk": "ssd"}, "spread": "zone"}),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in MAPPED], ids=[c[0] for c in MAPPED])
def test_mapped(text: str, expected: dict[str, Any]) -> None:
    warnings: list[str] = []
    got = spec(text, warnings)
    assert got.placement is not None
    assert got.placement.model_dump(exclude_defaults=True) == expected
    assert warnings == []


# (placement body, line, field, the key named, fragment of what happens instead)
WARNED: list[tuple[str, str, int, str, str, str]] = [
    ("not-equal", 'constraints: ["node.labels.zone != b"]', 7, "constraints[0]", "deploy.placement.constraints",
     "only == constraints are mapped"),
    ("node.role", "constraints: [node.role == manager]", 7, "constraints[0]", "deploy.placement.constraints",
     "only node.hostname and node.labels.* are mapped"),
    ("engine.labels", "constraints: [engine.labels.os == linux]", 7, "constraints[0]",
     "deploy.placement.constraints", "--node-label"),
    ("max_replicas_per_node", "max_replicas_per_node: 1", 7, "max_replicas_per_node",
     "deploy.placement.max_replicas_per_node", "no per-node limit"),
    ("unknown key", "affinity: x", 7, "affinity", "deploy.placement.affinity", "not a placement rule"),
    ("second preference", "preferences:\n  - spread: node.labels.zone\n  - spread: node.labels.rack", 9,
     "preferences[1]", "deploy.placement.preferences", "over one label only"),
    ("spread on something else", "preferences: [{spread: engine.labels.x}]", 7, "preferences[0]",
     "deploy.placement.preferences", "only node.labels.KEY"),
    ("spread with hostname", 'constraints: ["node.hostname == a"]\npreferences: [{spread: node.labels.zone}]', 8,
     "preferences[0]", "deploy.placement.preferences", "nothing to spread over"),
]


@pytest.mark.parametrize(("text", "line", "field", "key", "what"), [w[1:] for w in WARNED], ids=[w[0] for w in WARNED])
def test_not_mapped_is_a_warning_naming_the_key(text: str, line: int, field: str, key: str, what: str) -> None:
    warnings: list[str] = []
    spec(text, warnings)
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith(f"{FILE}:{line}: services.web.deploy.placement.{field}: compose key '{key}': "), \
        warnings[0]
    assert what in warnings[0]


def test_what_is_mapped_stays_when_something_else_warns() -> None:
    warnings: list[str] = []
    got = spec('constraints: ["node.role == worker", "node.labels.disk == ssd"]', warnings)
    assert got.placement is not None and got.placement.nodeSelector == {"disk": "ssd"}
    assert len(warnings) == 1


def test_only_unmapped_rules_leave_no_placement() -> None:
    assert spec("max_replicas_per_node: 2", []).placement is None


@pytest.mark.parametrize(("text", "line", "field", "fragment"), [
    pytest.param('constraints: ["node.hostname == a", "node.hostname == b"]', 7, "constraints[1]",
                 "no node has two names", id="two-hostnames"),
    pytest.param('constraints: ["node.labels.z == 1", "node.labels.z == 2"]', 7, "constraints[1]",
                 "no node has both values", id="two-values-for-a-label"),
    pytest.param("constraints: node.hostname == a", 7, "constraints", "must be a list", id="constraints-not-a-list"),
    pytest.param("constraints: [node.hostname]", 7, "constraints[0]", "invalid placement constraint",
                 id="no-operator"),
    pytest.param('constraints: ["node.hostname == -bad"]', 7, "constraints[0]", "invalid node name '-bad'",
                 id="bad-hostname"),
    pytest.param('constraints: ["node.labels.zone == a b"]', 7, "constraints[0]", "invalid node label value",
                 id="bad-label-value"),
    pytest.param("preferences: {spread: node.labels.zone}", 7, "preferences", "must be a list",
                 id="preferences-not-a-list"),
])
def test_contradictions_and_bad_values_are_errors_with_location(text: str, line: int, field: str,
                                                                 fragment: str) -> None:
    with pytest.raises(InvalidSpec) as info:
        spec(text)
    [issue] = info.value.issues
    assert (issue.file, issue.line) == (FILE, line), issue
    assert issue.field.startswith(f"services.web.deploy.placement.{field}"), issue
    assert fragment in issue.message, issue.message


def test_convert_output_carries_the_placement_and_loads_back_the_same() -> None:
    text = 'constraints: ["node.labels.disk == ssd"]\npreferences: [{spread: node.labels.zone}]'
    [res] = load_any([(project(text).encode(), FILE, "/srv/cp")], LoadOptions(environ={}, warnings=[]))
    out = to_native_yaml([res])
    assert "placement:\n    nodeSelector:\n      disk: ssd\n    spread: zone\n" in out, out
    [back] = load_any([(out.encode(), "/srv/cp/native.yaml", "/srv/cp")], LoadOptions(fmt="native"))
    assert spec_hash(back.spec) == spec_hash(res.spec)
