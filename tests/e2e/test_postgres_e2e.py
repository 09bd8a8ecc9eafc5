"""The store on PostgreSQL, end to end (issue 15): ``apply`` and a running ``reconcile run``
heal on a PostgreSQL store as on SQLite; and when the server goes away under a running
controller, its containers are left exactly as they are, it says so and retries, and it
heals again once the server is back.

The first test uses the test server (tests/pg.py: RECONCILE_TEST_PG_URL or one started on
55432); the second stops and starts a cluster of its own (port RECONCILE_TEST_PG_PORT2,
default 55442), so no other test's server goes away, and stops it at the end."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import pg
from tests.e2e.conftest import WORKER_IMAGE, Harness, wait_for

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
FAST = ("--resync-interval", "1s")
OWN_PORT = os.environ.get("RECONCILE_TEST_PG_PORT2", "55442")


@pytest.fixture
def rc_pg(rc: Harness) -> Iterator[Harness]:
    with pg.fresh_schema("e2e") as url:
        rc.db = url
        try:
            yield rc
        finally:
            rc.cleanup()  # before the schema (and the instance id in it) goes


def _own_server(*args: str) -> str:
    done = subprocess.run(["bash", str(REPO / "scripts" / "ensure-postgres.sh"), "--port", OWN_PORT, *args],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1] if not args else ""


def _restarted(rc: Harness, name: str, before: str) -> bool:
    info = rc.inspect(name)
    return bool(info["State"]["Running"] and info["State"]["StartedAt"] != before)


def test_apply_and_a_running_controller_heal_on_a_postgres_store(rc_pg: Harness) -> None:
    rc = rc_pg
    f = rc.write([rc.service("web"), rc.service("worker", WORKER_IMAGE)])
    rc.run("apply", "-f", f)  # converges at once, as on SQLite
    web = rc.cname("web")
    assert rc.inspect(web)["State"]["Running"]
    rc.start_daemon(*FAST)
    before = rc.inspect(web)["State"]["StartedAt"]
    rc.client.api.kill(web)
    wait_for(lambda: _restarted(rc, web, before), 60, what="the daemon to restart the killed container")
    wait_for(lambda: any(e["type"] == "Restarted" for e in rc.events(rc.name("web"))), 30,
             what="the Restarted row in the PostgreSQL store")
    rows = rc.status()
    assert rows[rc.name("web")]["state"] == "Running" and rows[rc.name("worker")]["state"] == "Running"


def test_a_controller_whose_postgres_goes_away_keeps_its_containers_and_retries(rc: Harness) -> None:
    base = _own_server()
    with pg.fresh_schema_on(base, "e2e") as url:
        rc.db = url
        try:
            f = rc.write([rc.service("web")])
            rc.run("apply", "-f", f)
            web = rc.cname("web")
            daemon = rc.start_daemon(*FAST)
            first = rc.inspect(web)
            _own_server("--stop")
            try:
                wait_for(lambda: "cannot read the store" in rc.daemon_log(), 30,
                         what="the daemon to notice the store is gone")
                log = rc.daemon_log()
                assert "reconcile:***@" in log and "reconcile:reconcile@" not in log
                assert "Traceback" not in log
                rc.client.api.kill(web)  # the engine still answers; the controller must not act blind
                wait_for(lambda: not rc.inspect(web)["State"]["Running"], 20, what="the kill")
                assert daemon.poll() is None, "the controller keeps running"
                assert rc.inspect(web)["Id"] == first["Id"]
            finally:
                _own_server()
            wait_for(lambda: _restarted(rc, web, first["State"]["StartedAt"]), 90,
                     what="the daemon to heal once PostgreSQL is back")
            assert "the store answers again" in rc.daemon_log()
            assert rc.inspect(web)["Id"] == first["Id"], "restarted in place, not recreated"
        finally:
            rc.cleanup()
    _own_server("--stop")  # the test's own cluster does not outlive it
