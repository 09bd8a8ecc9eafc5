"""The no-op apply (controller.unchanged) against the real engine: an apply that changes
nothing on a converged host reports every service unchanged, exits 0 and writes nothing
to the store (not even the lease); as soon as the host has drifted, the same command takes
the full path and heals it."""

from __future__ import annotations

import json

import pytest

from tests.e2e.conftest import BASE_IMAGE, Harness, store_digest, wait_for

pytestmark = pytest.mark.e2e

SLEEP = ["sleep", "100000"]


def _stack(rc: Harness) -> str:
    return rc.write([rc.service(n, image=BASE_IMAGE, command=SLEEP, init=True) for n in ("a", "b", "c")])


def test_noop_apply_writes_nothing_and_a_drifted_host_is_healed(rc: Harness) -> None:
    f = _stack(rc)
    rc.run("apply", "-f", f, "--wait", "--timeout", "120s")
    before = store_digest(rc)
    ids = sorted(c.id for c in rc.containers())
    assert len(ids) == 3

    p = rc.run("apply", "-f", f)
    assert "3 unchanged" in p.stdout
    assert "host already converged: no actions" in p.stdout
    p = rc.run("apply", "-f", f, "--wait", "--timeout", "60s", "-q")
    assert "3 unchanged" in p.stdout and "converged" in p.stdout
    p = rc.run("apply", "-f", f, "--json")
    out = json.loads(p.stdout)
    assert [(c["name"], c["change"]) for c in out["changes"]] == [(rc.name(n), "unchanged") for n in "abc"]
    assert out["errors"] == [] and out["done"] == [] and out["delegatedTo"] is None
    assert store_digest(rc) == before  # no lease taken, no status, no audit row: nothing written
    assert sorted(c.id for c in rc.containers()) == ids  # nothing touched

    # drift: a container stopped behind reconcile's back; the same no-op apply heals it
    victim = rc.client.containers.get(rc.cname("b"))
    victim.stop(timeout=1)
    p = rc.run("apply", "-f", f)
    assert "3 unchanged" in p.stdout
    assert "host already converged" not in p.stdout
    wait_for(lambda: rc.client.containers.get(rc.cname("b")).status == "running", 60, what="b running again")
    assert store_digest(rc) != before  # the full path recorded what it did
    assert rc.events(rc.name("b"), "Started") or rc.events(rc.name("b"), "Restarted") or rc.events(rc.name("b"), "Died")


def test_noop_apply_with_a_controller_holding_the_lease_says_so(rc: Harness) -> None:
    f = _stack(rc)
    rc.run("apply", "-f", f, "--wait", "--timeout", "120s")
    daemon = rc.start_daemon()
    try:
        p = rc.run("apply", "-f", f)
        assert "3 unchanged" in p.stdout
        assert "stored; the running controller" in p.stdout
        p = rc.run("apply", "-f", f, "--wait", "--timeout", "60s", "-q")
        assert "converged" in p.stdout
    finally:
        rc.stop_daemon(daemon)
