"""The ``placement`` field of Service and Job specs: validation (file:line:field), hashing
(a spec without it hashes as before it existed; changing it never recreates a container),
and ``controller.placement_input.request`` (spec -> ``placement.Request``)."""

from __future__ import annotations

from typing import Any

import pytest

from controller.placement import Request
from controller.placement_input import request
from crd_like import InvalidSpec, ServiceSpec, container_hash, spec_hash
from crd_like.formats import LoadOptions, load_any
from crd_like.models import JobSpec
from tests.unit.test_validation import BASE  # six lines: a case's own lines start at line 7


def load(text: str) -> Any:
    [res] = load_any([(text.encode(), "stack.yaml", "/srv")], LoadOptions(fmt="native"))
    return res


@pytest.mark.parametrize(("yaml_text", "expected"), [
    pytest.param("  placement: {}\n", None, id="empty-is-none"),
    pytest.param("  placement:\n", None, id="bare-is-none"),
    pytest.param("  placement: {reschedule: false, nodeSelector: {}}\n", None, id="defaults-spelled-out-are-none"),
    pytest.param("  placement: {node: web-01.example.com}\n", {"node": "web-01.example.com"}, id="node"),
    pytest.param("  placement:\n    nodeSelector: {zone: 1, disk: ssd, topology.kubernetes.io/zone: eu-1a}\n",
                 {"nodeSelector": {"zone": "1", "disk": "ssd", "topology.kubernetes.io/zone": "eu-1a"}},
                 id="selector-values-become-strings"),
    pytest.param("  placement: {node: a, nodeSelector: {disk: ssd}}\n",
                 {"node": "a", "nodeSelector": {"disk": "ssd"}}, id="node-and-selector-combine"),
    pytest.param("  placement: {spread: zone, reschedule: true}\n", {"spread": "zone", "reschedule": True},
                 id="spread-and-reschedule"),
    pytest.param("  placement: {spread: node}\n", {"spread": "node"}, id="spread-over-nodes"),
])
def test_valid_placement(yaml_text: str, expected: dict[str, Any] | None) -> None:
    res = load(BASE + yaml_text)
    got = res.spec.placement
    assert (None if got is None else got.model_dump(exclude_defaults=True)) == expected


@pytest.mark.parametrize(("yaml_text", "line", "field", "fragment"), [
    pytest.param("  placement: {nod: a}\n", 7, "spec.placement.nod", "unknown field", id="unknown-field"),
    pytest.param("  placement: a\n", 7, "spec.placement", "valid dictionary", id="not-a-mapping"),
    pytest.param("  placement:\n    node: -a\n", 8, "spec.placement.node", "invalid node name '-a'", id="bad-node-name"),
    pytest.param("  placement:\n    node: 'a b'\n", 8, "spec.placement.node", "the name its agent registered",
                 id="node-name-with-space"),
    pytest.param("  placement:\n    nodeSelector:\n      'bad key': x\n", 8, "spec.placement.nodeSelector",
                 "invalid node label key 'bad key'", id="bad-selector-key"),
    pytest.param("  placement:\n    nodeSelector:\n      zone: 'a b'\n", 9, "spec.placement.nodeSelector.zone",
                 "invalid node label value 'a b'", id="bad-selector-value"),
    pytest.param("  placement:\n    nodeSelector:\n      zone: [a]\n", 9, "spec.placement.nodeSelector.zone",
                 "expected a string, number or boolean", id="selector-value-a-list"),
    pytest.param("  placement: {nodeSelector: [zone=a]}\n", 7, "spec.placement.nodeSelector", "valid dictionary",
                 id="selector-a-list"),
    pytest.param("  placement:\n    spread: ' zone'\n", 8, "spec.placement.spread", "expected a node label key",
                 id="bad-spread-key"),
    pytest.param("  placement:\n    reschedule: maybe\n", 8, "spec.placement.reschedule", "valid boolean",
                 id="reschedule-not-a-boolean"),
    pytest.param("  placement:\n    node: a\n    spread: zone\n", 7, "spec.placement",
                 "nothing to spread over", id="node-and-spread"),
])
def test_invalid_placement_names_file_line_and_field(yaml_text: str, line: int, field: str, fragment: str) -> None:
    with pytest.raises(InvalidSpec) as info:
        load(BASE + yaml_text)
    issues = info.value.issues
    assert [(i.file, i.line, i.field) for i in issues] == [("stack.yaml", line, field)], issues
    assert fragment in issues[0].message, issues[0].message
    assert str(issues[0]).startswith(f"stack.yaml:{line}: {field}:")


def test_a_job_takes_placement_too() -> None:
    job = JobSpec.model_validate({"image": "x", "placement": {"node": "db-1"}})
    assert job.placement is not None and job.placement.node == "db-1"


# -- hashing --------------------------------------------------------------------------------

SPEC: dict[str, Any] = {"image": "demo/web:1", "replicas": 3, "ports": ["127.0.0.1:8080-8082:80"], "env": {"A": "1"},
                        "resources": {"reservations": {"cpus": 0.5, "memory": "256m"}}}


def test_specs_without_placement_keep_the_hashes_they_had_before_the_field_existed() -> None:
    # the literals were computed on main before `placement` existed: a change here would
    # recreate every container on every host after an upgrade
    s = ServiceSpec.model_validate(SPEC)
    assert (spec_hash(s), container_hash(s)) == ("8811d022bbb8e40b", "cb4792fd3766eadc")
    j = JobSpec.model_validate({"image": "demo/migrate:1", "command": ["migrate"]})
    assert (spec_hash(j), container_hash(j)) == ("73b37797ebe78210", "57f98a2665d12d12")
    for empty in ({}, None, {"reschedule": False}):
        e = ServiceSpec.model_validate({**SPEC, "placement": empty})
        assert (spec_hash(e), container_hash(e)) == (spec_hash(s), container_hash(s))


@pytest.mark.parametrize("placement", [
    {"node": "a"}, {"nodeSelector": {"zone": "1"}}, {"spread": "zone"}, {"reschedule": True},
])
def test_placement_is_policy_it_bumps_the_spec_hash_never_the_container_hash(placement: dict[str, Any]) -> None:
    old = ServiceSpec.model_validate(SPEC)
    new = ServiceSpec.model_validate({**SPEC, "placement": placement})
    assert spec_hash(new) != spec_hash(old)
    assert container_hash(new) == container_hash(old)


# -- spec -> placement.Request ----------------------------------------------------------------

@pytest.mark.parametrize(("spec", "expected"), [
    pytest.param({"image": "x"}, Request("web", 1, None, {}, None, 0.0, 0, False), id="no-placement"),
    pytest.param(SPEC, Request("web", 3, None, {}, None, 0.5, 256 << 20, False), id="reservations"),
    pytest.param({"image": "x", "replicas": 2, "resources": {"limits": {"cpus": 2, "memory": "1g"}},
                  "placement": {"node": "b", "nodeSelector": {"disk": "ssd"}, "reschedule": True}},
                 Request("web", 2, "b", {"disk": "ssd"}, None, 0.0, 0, True), id="limits-are-not-reservations"),
    pytest.param({"image": "x", "placement": {"spread": "zone"}, "resources": {"reservations": {"memory": "1g"}}},
                 Request("web", 1, None, {}, "zone", 0.0, 1 << 30, False), id="spread-and-memory-only"),
])
def test_request_from_a_spec(spec: dict[str, Any], expected: Request) -> None:
    assert request("web", ServiceSpec.model_validate(spec)) == expected


def test_request_from_a_job() -> None:
    job = JobSpec.model_validate({"image": "x", "placement": {"reschedule": True}})
    assert request("migrate", job) == Request("migrate", 1, None, {}, None, 0.0, 0, True)


def test_the_json_schema_describes_placement() -> None:
    from crd_like.schema import json_schema

    service = next(v for v in json_schema()["oneOf"] if v["title"] == "Service")
    defs = service["$defs"]
    props = defs["Placement"]["properties"]
    assert set(props) == {"node", "nodeSelector", "spread", "reschedule"}
    assert props["node"]["pattern"].startswith("^[A-Za-z0-9]")  # applies to strings only: null passes
    assert defs["Placement"]["additionalProperties"] is False
