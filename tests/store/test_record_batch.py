"""Store.record writes many statuses in one transaction, reading the existing rows in
batches (one SELECT per 500 names): new and existing names mixed, across a batch edge,
the same name twice, and restart requests kept (only request_restart writes those)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from crd_like import API_VERSION
from store import ResourceInput, Status, Store


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    st = Store.open(store_url)
    yield st
    st.close()


@pytest.mark.parametrize("existing, new", [(0, 3), (3, 0), (2, 2), (499, 2), (300, 300)])
def test_record_updates_existing_and_adds_new_statuses(store: Store, existing: int, new: int) -> None:
    old = [f"s{i:04d}" for i in range(existing)]
    store.record(statuses=[Status(n, state="Pending") for n in old])
    fresh = [f"n{i:04d}" for i in range(new)]
    store.record(statuses=[Status(n, state="Running", restart_count=2) for n in old + fresh])
    got = store.statuses()
    assert set(got) == set(old) | set(fresh)
    assert all(st.state == "Running" and st.restart_count == 2 for st in got.values())


def test_record_keeps_a_restart_request_and_takes_the_last_of_a_repeated_name(store: Store) -> None:
    store.apply([ResourceInput("web", "Service", API_VERSION, {"image": "x"}, {"name": "web"}, "h")],
                source="f", actor="t", now=1.0)
    store.record(statuses=[Status("web", state="Running")])
    assert store.request_restart("web", reason="asked", actor="t", now=5.0)
    store.record(statuses=[Status("web", state="Exited"), Status("new", state="Pending"),
                           Status("new", state="Running")])
    web, new = store.status("web"), store.status("new")
    assert web is not None and new is not None
    assert web.state == "Exited" and web.restart_requested_at == 5.0 and web.restart_reason.startswith("asked")
    assert new.state == "Running"
