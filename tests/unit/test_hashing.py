"""crd_like.hashing: canonical spec and container hashes, changed-field reports."""

from __future__ import annotations

from typing import Any

import pytest

from crd_like import ServiceSpec, changed_fields, container_hash, spec_hash
from crd_like.hashing import canonical

HC = {"test": "curl -f http://localhost/", "interval": "10s"}
BASE: dict[str, Any] = {
    "image": "demo/web:1",
    "command": ["httpd", "-f"],
    "env": {"A": "1", "B": "2"},
    "ports": ["8080:80"],
    "volumes": ["data:/data"],
    "healthcheck": HC,
}


def spec(**changes: Any) -> ServiceSpec:
    return ServiceSpec.model_validate({**BASE, **changes})


def s(data: dict[str, Any]) -> ServiceSpec:
    return ServiceSpec.model_validate(data)


EQUAL: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("key order", {"image": "x", "env": {"A": "1", "B": "2"}, "init": True},
     {"init": True, "env": {"B": "2", "A": "1"}, "image": "x"}),
    ("defaults spelled out vs omitted", {"image": "x"},
     {"image": "x", "command": None, "env": {}, "ports": [], "volumes": [], "labels": {}, "init": False,
      "onUnhealthy": "restart", "stopGracePeriod": "10s", "healthcheck": None,
      "restartPolicy": {"condition": "always", "maxAttempts": None, "window": "10m", "resetAfter": "1m",
                        "backoff": {"initial": "1s", "max": "5m", "factor": 2}}}),
    ("healthcheck defaults spelled out", {"image": "x", "healthcheck": {"test": "true"}},
     {"image": "x", "healthcheck": {"test": "true", "interval": "30s", "timeout": "30s", "retries": 3,
                                    "startPeriod": 0}}),
    ("port protocol default", {"image": "x", "ports": ["8080:80"]}, {"image": "x", "ports": ["8080:80/tcp"]}),
    ("bare port number", {"image": "x", "ports": [80]}, {"image": "x", "ports": ["80/tcp"]}),
    ("volume rw default", {"image": "x", "volumes": ["data:/data"]}, {"image": "x", "volumes": ["data:/data:rw"]}),
    ("90s vs 1m30s", {"image": "x", "stopGracePeriod": "90s"}, {"image": "x", "stopGracePeriod": "1m30s"}),
    ("duration vs bare seconds", {"image": "x", "healthcheck": {"test": "true", "interval": "1m30s"}},
     {"image": "x", "healthcheck": {"test": "true", "interval": 90}}),
    ("restartPolicy string vs mapping", {"image": "x", "restartPolicy": "on-failure"},
     {"image": "x", "restartPolicy": {"condition": "on-failure"}}),
    ("restartPolicy always vs {condition: always}", {"image": "x", "restartPolicy": "always"},
     {"image": "x", "restartPolicy": {"condition": "always"}}),
    ("command string vs list", {"image": "x", "command": "sh -c 'echo hi'"},
     {"image": "x", "command": ["sh", "-c", "echo hi"]}),
    ("healthcheck shell string vs CMD-SHELL", {"image": "x", "healthcheck": {"test": "curl x"}},
     {"image": "x", "healthcheck": {"test": ["CMD-SHELL", "curl x"]}}),
    ("healthcheck bare list vs CMD", {"image": "x", "healthcheck": {"test": ["curl", "x"]}},
     {"image": "x", "healthcheck": {"test": ["CMD", "curl", "x"]}}),
    ("env number vs string", {"image": "x", "env": {"PORT": 80}}, {"image": "x", "env": {"PORT": "80"}}),
]


@pytest.mark.parametrize(("a", "b"), [c[1:] for c in EQUAL], ids=[c[0] for c in EQUAL])
def test_semantically_equal_specs_hash_equal(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert canonical(s(a)) == canonical(s(b))
    assert spec_hash(s(a)) == spec_hash(s(b))
    assert container_hash(s(a)) == container_hash(s(b))


def test_defaults_are_left_out_of_the_canonical_form() -> None:
    assert canonical(s({"image": "x", "restartPolicy": "always", "init": False, "env": {}})) == {"image": "x"}


# (id, change, the dotted paths changed_fields reports)
MEANINGFUL: list[tuple[str, dict[str, Any], list[str]]] = [
    ("image", {"image": "demo/web:2"}, ["image"]),
    ("env value", {"env": {"A": "1", "B": "3"}}, ["env.B"]),
    ("env key added", {"env": {"A": "1", "B": "2", "C": "3"}}, ["env.C"]),
    ("env key removed", {"env": {"A": "1"}}, ["env.B"]),
    ("command", {"command": ["httpd", "-f", "-v"]}, ["command"]),
    ("command removed", {"command": None}, ["command"]),
    ("port", {"ports": ["8081:80"]}, ["ports"]),
    ("port protocol", {"ports": ["8080:80/udp"]}, ["ports"]),
    ("port host ip", {"ports": ["127.0.0.1:8080:80"]}, ["ports"]),
    ("volume", {"volumes": ["data:/data:ro"]}, ["volumes"]),
    ("volume source", {"volumes": ["other:/data"]}, ["volumes"]),
    ("healthcheck interval", {"healthcheck": {**HC, "interval": "20s"}}, ["healthcheck.interval"]),
    ("healthcheck test", {"healthcheck": {**HC, "test": "curl -f http://localhost/ready"}}, ["healthcheck.test"]),
    ("healthcheck retries", {"healthcheck": {**HC, "retries": 5}}, ["healthcheck.retries"]),
    ("healthcheck removed", {"healthcheck": None}, ["healthcheck"]),
    ("labels", {"labels": {"team": "edge"}}, ["labels"]),
    ("init", {"init": True}, ["init"]),
    ("stopGracePeriod", {"stopGracePeriod": "30s"}, ["stopGracePeriod"]),
    ("stopSignal", {"stopSignal": "SIGINT"}, ["stopSignal"]),
    ("image and env", {"image": "demo/web:2", "env": {"A": "0", "B": "2"}}, ["env.A", "image"]),
]


@pytest.mark.parametrize(("change", "fields"), [c[1:] for c in MEANINGFUL], ids=[c[0] for c in MEANINGFUL])
def test_meaningful_change_changes_both_hashes(change: dict[str, Any], fields: list[str]) -> None:
    old, new = spec(), spec(**change)
    assert spec_hash(new) != spec_hash(old)
    assert container_hash(new) != container_hash(old)
    assert changed_fields(canonical(old), canonical(new)) == fields


POLICY_ONLY: list[tuple[str, dict[str, Any], list[str]]] = [
    ("restartPolicy condition", {"restartPolicy": "on-failure"}, ["restartPolicy"]),
    ("restartPolicy never", {"restartPolicy": {"condition": "never"}}, ["restartPolicy"]),
    ("restartPolicy maxAttempts", {"restartPolicy": {"maxAttempts": 3}}, ["restartPolicy"]),
    ("restartPolicy backoff", {"restartPolicy": {"backoff": {"max": "1m"}}}, ["restartPolicy"]),
    ("onUnhealthy recreate", {"onUnhealthy": "recreate"}, ["onUnhealthy"]),
    ("onUnhealthy ignore", {"onUnhealthy": "ignore"}, ["onUnhealthy"]),
    ("replicas", {"replicas": 0}, ["replicas"]),
]


@pytest.mark.parametrize(("change", "fields"), [c[1:] for c in POLICY_ONLY], ids=[c[0] for c in POLICY_ONLY])
def test_policy_only_change_keeps_container_hash(change: dict[str, Any], fields: list[str]) -> None:
    old, new = spec(), spec(**change)
    assert spec_hash(new) != spec_hash(old)
    assert container_hash(new) == container_hash(old)
    assert changed_fields(canonical(old), canonical(new)) == fields


def test_changes_within_a_policy_report_nested_paths() -> None:
    old = spec(restartPolicy={"condition": "on-failure", "backoff": {"initial": "2s"}})
    new = spec(restartPolicy={"condition": "on-failure", "backoff": {"initial": "3s"}})
    assert changed_fields(canonical(old), canonical(new)) == ["restartPolicy.backoff.initial"]
    assert container_hash(new) == container_hash(old)


def test_container_hash_covers_referenced_files() -> None:
    base = spec()
    assert container_hash(base, {"./conf": "aaa"}) != container_hash(base, {"./conf": "bbb"})
    assert container_hash(base, {"./conf": "aaa"}) != container_hash(base)
    assert container_hash(base, {"./conf": "aaa"}) == container_hash(base, {"./conf": "aaa"})
    assert spec_hash(base) == spec_hash(spec())  # refs never touch the spec hash


def test_hashes_are_short_hex_and_stable_across_calls() -> None:
    h = spec_hash(spec())
    assert len(h) == 16 and int(h, 16) >= 0
    assert spec_hash(spec()) == h
    assert container_hash(spec()) != h  # different inputs: the two hashes are not interchangeable


@pytest.mark.parametrize(
    ("old", "new", "fields"),
    [
        ({}, {}, []),
        ({"a": 1}, {"a": 1}, []),
        ({"a": 1}, {"a": 2}, ["a"]),
        ({"a": {"b": 1, "c": 2}}, {"a": {"b": 1, "c": 3}}, ["a.c"]),
        ({"a": {"b": {"c": 1}}}, {"a": {"b": {"c": 2}}}, ["a.b.c"]),
        ({"a": 1}, {}, ["a"]),
        ({}, {"z": 1, "a": 2}, ["a", "z"]),  # sorted
        ({"a": {"b": 1}}, {"a": 5}, ["a"]),  # a mapping replaced by a scalar is reported whole
        ({"a": [1, 2]}, {"a": [1, 3]}, ["a"]),  # lists are compared whole
    ],
)
def test_changed_fields(old: dict[str, Any], new: dict[str, Any], fields: list[str]) -> None:
    assert changed_fields(old, new) == fields
