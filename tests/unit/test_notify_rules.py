"""Which audit rows make which notice, which notifier wants it, what a message says."""

from __future__ import annotations

from typing import Any

import pytest

from controller import notify_rules as rules
from crd_like import notifier as model
from store.records import Event, Notice


@pytest.mark.parametrize(("etype", "reason", "expected"), [
    ("BackOff", "restarting too often", "CrashLoopBackOff"),
    ("BackOffEnded", "running without failing", "BackOffEnded"),
    ("GaveUp", "3 restarts in 600s", "GaveUp"),
    ("Failed", "create failed", "Failed"),
    ("JobFailed", "job exited with code 3", "JobFailed"),
    ("RolledBack", "rollout failed", "RolledBack"),
    ("EngineUnavailable", "connection refused", "EngineUnavailable"),
    ("EngineRestored", "engine answered again after 3.0s", "EngineRestored"),
    ("StormDetected", "more than 30 restarts within a minute", "RestartStorm"),
    ("LeaseTakenOver", "c2 took over the lease of c1", "LeaseTakenOver"),
    ("NodeLost", "node n1 lost: its lease expired (last holder agent:h:1)", "NodeLost"),
    ("NodeReady", "node n1 is back: its agent holds the lease again", "NodeReady"),
    ("FencedStop", "stopped: node n1 lost its lease (not renewed since 2026-01-01T00:00:00Z)", "FencedStop"),
    ("RemovedMovedAway", "replica 1 is assigned to another node", None),
    ("HealthChanged", "healthy -> unhealthy", "Unhealthy"),
    ("HealthChanged", "none -> unhealthy", "Unhealthy"),
    ("HealthChanged", "unhealthy -> healthy", "Recovered"),
    ("HealthChanged", "starting -> healthy", None),  # a start, not a recovery
    ("HealthChanged", "none -> healthy", None),
    ("HealthChanged", "healthy -> none (container no longer running)", None),
    ("Died", "container exited with code 1", None),
    ("Restarted", "died", None),
    ("Applied", "new resource", None),
    ("NotifyFailed", "connection refused", None),  # a failing sink never feeds itself
    ("NotifyDelivered", "GaveUp delivered", None),
])
def test_event_type(etype: str, reason: str, expected: str | None) -> None:
    assert rules.event_type(Event(ts=1.0, service="web", type=etype, reason=reason)) == expected


def test_notices_keep_the_reason_and_the_detail_tail() -> None:
    events = [Event(ts=5.0, service="web", type="HealthChanged", reason="healthy -> unhealthy",
                    message="x" * 5000 + "probe said no"),
              Event(ts=6.0, service="web", type="Restarted", reason="unhealthy")]
    [n] = rules.notices(events)
    assert (n.ts, n.service, n.event, n.reason, n.audit_type) == (5.0, "web", "Unhealthy", "healthy -> unhealthy",
                                                                 "HealthChanged")
    assert n.detail.endswith("probe said no") and len(n.detail) == rules.DETAIL_LIMIT


def test_event_types_of_the_model_are_the_rules() -> None:
    assert model.EVENT_TYPES == rules.EVENT_TYPES


N = Notice(ts=1.0, service="web", event="GaveUp", id=7)
HOST = Notice(ts=1.0, service="", event="EngineUnavailable", id=8)


@pytest.mark.parametrize(("spec", "notice", "labels", "expected"), [
    ({}, N, {}, True),
    ({"events": ["GaveUp"]}, N, {}, True),
    ({"events": ["Unhealthy"]}, N, {}, False),
    ({"selector": "tier=web"}, N, {"tier": "web"}, True),
    ({"selector": "tier=web"}, N, {"tier": "db"}, False),
    ({"selector": "tier!=web"}, N, {}, True),
    ({"selector": "critical"}, N, {"critical": "yes"}, True),
    ({"selector": "!critical"}, N, {"critical": "yes"}, False),
    ({"selector": "tier=web,env=prod"}, N, {"tier": "web", "env": "dev"}, False),
    ({"selector": "tier=web"}, HOST, None, True),  # host-wide: no service to select
    ({"selector": "tier=web", "events": ["GaveUp"]}, HOST, None, False),
])
def test_wants(spec: dict[str, Any], notice: Notice, labels: dict[str, str] | None, expected: bool) -> None:
    assert rules.wants(spec, notice, labels) is expected


def test_message_names_service_what_why_when_host_count_and_key() -> None:
    n = Notice(ts=0.0, service="web", event="CrashLoopBackOff", reason="container exited with code 3",
               detail="next attempt at 10:00:00", id=3)
    body = rules.message(n, notifier="ops", host="h1", key="ops:3", count=4)
    assert body == {"idempotencyKey": "ops:3", "notifier": "ops", "host": "h1", "service": "web",
                    "event": "CrashLoopBackOff", "summary": "web: entered CrashLoopBackOff",
                    "reason": "container exited with code 3", "detail": "next attempt at 10:00:00",
                    "at": "1970-01-01T00:00:00Z", "ts": 0.0, "count": 4}
    text = rules.text(body)
    assert "[h1] web: entered CrashLoopBackOff" in text and "why: container exited with code 3" in text
    assert "4 related event(s)" in text and "key ops:3" in text


def test_digest_counts_each_kind() -> None:
    held = [{"id": 1, "ts": 0.0, "service": "web", "event": "Recovered", "reason": "r"},
            {"id": 2, "ts": 1.0, "service": "web", "event": "Unhealthy", "reason": "u"},
            {"id": 3, "ts": 2.0, "service": "web", "event": "Recovered", "reason": "r"}]
    body = rules.digest(held, notifier="ops", host="h1", key="k", total=3, now=60.0)
    assert body["event"] == rules.DIGEST and body["service"] == "web" and body["count"] == 3
    assert body["summary"] == "web: 3 more event(s) while damped (Recovered x2, Unhealthy x1)"
    assert [e["event"] for e in body["events"]] == ["Recovered", "Unhealthy", "Recovered"]
