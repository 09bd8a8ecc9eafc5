"""The notification outbox and the sender on a real SQLite store migrated to head (0007):
outbox rows share their audit row's transaction, delivery is in order and at-least-once,
failures back off and are audited once per streak. Deliveries go to a recording function
(the sinks themselves are tested over loopback in tests/unit/test_notify_sinks.py)."""

from __future__ import annotations

import hashlib
import json

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, text

from controller import notify_rules
from controller.notify_send import Sender, backlog
from controller.notify_sinks import DeliveryFailed
from crd_like import API_VERSION
from store import Event, Status, Store
from store.notify import NotifyStore
from store.records import ResourceInput


class Clock:
    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


class Receiver:
    """Takes deliveries, or refuses them while ``down``."""

    def __init__(self) -> None:
        self.got: list[dict[str, Any]] = []
        self.down = False

    def __call__(self, spec: Mapping[str, Any], body: dict[str, Any]) -> None:
        if self.down:
            raise DeliveryFailed("http://127.0.0.1:1/… : connection refused")
        self.got.append(body)


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    s = Store.open(store_url)
    notify_rules.install(s)
    yield s
    s.close()


def notifier(name: str = "ops", **spec: Any) -> ResourceInput:
    body = {"sink": "webhook", "url": {"secret": "http://127.0.0.1:1/T0K3N"}, "retry": {"initial": 2.0, "max": 8.0},
            "damping": {"window": 30.0}, **spec}
    return ResourceInput(name=name, kind="Notifier", api_version=API_VERSION, spec=body, metadata={"name": name},
                         spec_hash=hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:32])


def gave_up(service: str, ts: float) -> Event:
    return Event(ts=ts, service=service, type="GaveUp", reason="3 restarts within 600s")


def outbox(store: Store) -> list[tuple[str, str]]:
    with store.reading() as s:
        return [tuple(r) for r in s.execute(text("SELECT service, event FROM notify_outbox ORDER BY id"))]


def test_head_is_0007_with_the_outbox(store: Store) -> None:
    assert store.schema_revision() == "0007"
    with store.reading() as s:
        tables = set(inspect(s.connection()).get_table_names())
    assert {"notifiers", "notify_outbox"} <= tables


def test_record_writes_outbox_rows_with_the_audit_rows(store: Store) -> None:
    store.record([gave_up("web", 1.0), Event(ts=1.0, service="web", type="Restarted", reason="died"),
                  Event(ts=2.0, service="web", type="HealthChanged", reason="healthy -> unhealthy")],
                 [Status(name="web", state="Failed")])
    assert outbox(store) == [("web", "GaveUp"), ("web", "Unhealthy")]


def test_an_outbox_row_is_never_without_its_audit_row(store: Store) -> None:
    def broken(events: Any) -> Any:
        raise RuntimeError("rule failed")

    store.notice_rule = broken
    with pytest.raises(RuntimeError):
        store.record([gave_up("web", 1.0)])
    assert store.history() == [] and outbox(store) == []  # one transaction: neither was written


def test_a_store_without_the_rule_writes_no_outbox(tmp_path: Path) -> None:
    s = Store.open(str(tmp_path / "plain.db"))
    s.record([gave_up("web", 1.0)])
    assert outbox(s) == [] and len(s.history()) == 1
    s.close()


def test_rollback_writes_its_outbox_row(store: Store) -> None:
    from tests.store.test_store import res

    store.apply([res("web")], source="f", actor="cli", now=1.0)
    store.apply([res("web", command=["sleep", "1"])], source="f", actor="cli", now=2.0)
    assert store.rollback("web", to_generation=None, actor="controller", now=3.0, reason="rollout failed") == 3
    assert outbox(store) == [("web", "RolledBack")]


def test_a_new_notifier_starts_at_the_outbox_end(store: Store) -> None:
    store.record([gave_up("old", 1.0)])
    ns = NotifyStore(store)
    [ch] = ns.put([notifier()], source="f", actor="cli", now=2.0)
    assert ch.change == "created"
    assert ns.put([notifier()], source="f", actor="cli", now=3.0)[0].change == "unchanged"
    assert ns.put([notifier(events=["GaveUp"])], source="f", actor="cli", now=4.0)[0].generation == 2
    rx = Receiver()
    Sender(store, Clock(), host="h1", deliver=rx).tick()
    assert rx.got == []  # the past is not sent


def test_in_order_with_backoff_and_at_least_once(store: Store) -> None:
    ns = NotifyStore(store)
    ns.put([notifier()], source="f", actor="cli", now=0.0)
    clock, rx = Clock(1000.0), Receiver()
    sender = Sender(store, clock, host="h1", deliver=rx)
    rx.down = True
    store.record([gave_up("a", 999.0), gave_up("b", 999.5)])
    for _ in range(3):  # three failed attempts: 2 s, 4 s, 8 s apart; audited once
        sender.tick()
        n = ns.get("ops")
        assert n is not None
        clock.now = n.next_attempt_at
    n = ns.get("ops")
    assert n is not None and n.attempts == 3 and n.cursor == 0 and "connection refused" in n.last_error
    assert n.next_attempt_at == pytest.approx(1000.0 + 2 + 4 + 8)
    assert [e.type for e in store.history(types=["NotifyFailed"])] == ["NotifyFailed"]
    assert backlog(ns, n, {}) == 2
    rx.down = False
    sender.tick()
    assert [(b["service"], b["event"], b["idempotencyKey"]) for b in rx.got] == [("a", "GaveUp", "ops:1"),
                                                                              ("b", "GaveUp", "ops:2")]
    n = ns.get("ops")
    assert n is not None and n.attempts == 0 and n.cursor == 2 and backlog(ns, n, {}) == 0
    delivered = store.history(types=["NotifyDelivered"])
    assert [e.reason for e in delivered] == ["GaveUp delivered after 4 attempts", "GaveUp delivered"]
    assert outbox(store) == [("a", "GaveUp"), ("b", "GaveUp")]  # delivery rows make no notice
    assert all("T0K3N" not in f"{e.reason} {e.message}" for e in store.history())


def test_a_crash_before_the_cursor_moves_resends_the_same_key(store: Store) -> None:
    ns = NotifyStore(store)
    ns.put([notifier()], source="f", actor="cli", now=0.0)
    store.record([gave_up("a", 1.0)])
    got: list[str] = []

    def crash_after_send(spec: Mapping[str, Any], body: dict[str, Any]) -> None:
        got.append(body["idempotencyKey"])
        raise KeyboardInterrupt  # the process dies between sending and storing the step

    with pytest.raises(KeyboardInterrupt):
        Sender(store, Clock(), host="h1", deliver=crash_after_send).tick()
    rx = Receiver()
    Sender(store, Clock(), host="h1", deliver=rx).tick()  # the next controller
    assert got == ["ops:1"] and [b["idempotencyKey"] for b in rx.got] == ["ops:1"]


def test_filters_skip_what_a_notifier_does_not_want(store: Store) -> None:
    from tests.store.test_store import res

    store.apply([res("web"), res("db")], source="f", actor="cli", now=0.0)
    with store.writing() as s, s.begin():  # labels as metadata
        from store.models import ResourceRow

        row = s.get(ResourceRow, "web")
        assert row is not None
        row.metadata_json = '{"labels": {"tier": "web"}, "name": "web"}'
    ns = NotifyStore(store)
    ns.put([notifier(selector="tier=web", events=["GaveUp", "EngineUnavailable"])], source="f", actor="cli", now=0.0)
    store.record([gave_up("db", 1.0), Event(ts=2.0, service="web", type="HealthChanged", reason="healthy -> unhealthy"),
                  gave_up("web", 3.0), Event(ts=4.0, service="", type="EngineUnavailable", reason="refused")])
    rx = Receiver()
    Sender(store, Clock(), host="h1", deliver=rx).tick()
    assert [(b["service"], b["event"]) for b in rx.got] == [("web", "GaveUp"), ("", "EngineUnavailable")]
    n = ns.get("ops")
    assert n is not None and n.cursor == 4


def test_notify_test_message(store: Store) -> None:
    NotifyStore(store).put([notifier()], source="f", actor="cli", now=0.0)
    rx = Receiver()
    sender = Sender(store, Clock(), host="h1", deliver=rx)
    assert sender.test("nope") is None
    result = sender.test("ops")
    assert result is not None and result.ok and rx.got[0]["event"] == "Test"
    rx.down = True
    result = sender.test("ops")
    assert result is not None and not result.ok and "connection refused" in result.error
    assert [e.type for e in store.history(service="ops")][-2:] == ["NotifyDelivered", "NotifyFailed"]


def test_prune_keeps_what_a_notifier_has_not_dealt_with(store: Store) -> None:
    ns = NotifyStore(store)
    store.record([gave_up("a", 1.0), gave_up("b", 2.0)])
    assert ns.prune() == 2 and outbox(store) == []  # no notifier: nobody will read them
    ns.put([notifier("one"), notifier("two")], source="f", actor="cli", now=3.0)
    store.record([gave_up("c", 4.0), gave_up("d", 5.0)])
    assert ns.advance("one", cursor=4, damping={}, delivered_at=6.0)
    assert ns.prune() == 0  # "two" has dealt with neither
    assert ns.advance("two", cursor=3, damping={}, delivered_at=6.0)
    assert ns.prune() == 1 and outbox(store) == [("d", "GaveUp")]
