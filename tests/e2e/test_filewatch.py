"""Referenced files are watched (issue 13, point 9), against the real engine.

``reconcile run`` with a resync interval of ten minutes, so only the file notifications
can notice an edit within the test's bound: editing a bind-mounted config file in place,
then replacing it by an atomic rename (write a temporary file, rename it over), each
recreates the service that mounts it (its default ``onConfigChange: recreate``) with a
``Recreated`` audit row naming the file, and leaves a service that references another
file in the same directory untouched. The bound is generous (10 s); the performance bar
(< 2 s from the write to the restart starting) is measured by ``bench/run.py --only
filewatch``.
"""

from __future__ import annotations

import os
import time

import pytest

from tests.e2e.conftest import BASE_IMAGE, WORKER_IMAGE, Harness, wait_for
from tests.e2e.test_compose_e2e import must
from tests.e2e.test_config_secrets import Engine, audited, cat, recreated, running, start_daemon, state, untouched, within

pytestmark = pytest.mark.e2e

SLOW_RESYNC = ("--resync-interval", "10m")  # the periodic check cannot be what notices the edit
NOTICED_WITHIN = 10.0


def test_an_edited_config_file_recreates_its_service_without_waiting_for_the_resync(rc: Harness) -> None:
    root = rc.tmp / "stack"
    root.mkdir()
    (root / "proxy.conf").write_text("# revision 1\n")
    (root / "app.env").write_text("MODE=one\n")
    proxy = rc.service("proxy", BASE_IMAGE, init=True, command=["sleep", "3600"],
                       volumes=["./proxy.conf:/etc/proxy.conf:ro"])
    app = rc.service("app", WORKER_IMAGE, envFiles=["./app.env"])  # the same directory, another file
    stack = rc.write([proxy, app], "stack/stack.yaml")
    must(rc, "apply", "-f", stack, "--wait", "--timeout", "90s")
    names = {b: rc.cname(b) for b in ("proxy", "app")}
    before = {b: running(rc, c) for b, c in names.items()}
    engine = Engine()
    start_daemon(rc, *SLOW_RESYNC)
    wait_for(lambda: "file notifications: watching" in rc.daemon_log(), 15, 0.1, "the watches armed")
    time.sleep(1.0)  # the daemon's first passes (start, first store poll) are over
    conf = str(root / "proxy.conf")

    # 1. written in place
    with open(conf, "w") as fh:
        fh.write("# revision 2\n")
    took = within(rc, NOTICED_WITHIN, lambda: recreated(rc, names["proxy"], before["proxy"]["id"]),
                  "the proxy recreated after its config file was written in place")
    print(f"in place: proxy recreated {took:.1f}s after the write")
    rows = audited(rc, rc.name("proxy"), "Recreated")
    assert len(rows) == 1 and conf in rows[0]["reason"], rows
    assert "revision 2" in cat(rc, names["proxy"], "/etc/proxy.conf")
    second = running(rc, names["proxy"])

    # 2. replaced by an atomic rename (how most editors and config tools save)
    tmp = root / ".proxy.conf.tmp"
    tmp.write_text("# revision 3, longer than before\n")
    os.replace(tmp, conf)
    took = within(rc, NOTICED_WITHIN, lambda: recreated(rc, names["proxy"], second["id"]),
                  "the proxy recreated after its config file was replaced by a rename")
    print(f"atomic rename: proxy recreated {took:.1f}s after the rename")
    rows = audited(rc, rc.name("proxy"), "Recreated", count=2)
    assert len(rows) == 2 and all(conf in r["reason"] for r in rows), rows
    assert "revision 3" in cat(rc, names["proxy"], "/etc/proxy.conf")

    # exactly the service that references the file: the app beside it is left alone
    assert untouched(state(rc, names["app"]), before["app"], engine), "the app must be left alone"
    assert rc.events(rc.name("app"), "Recreated") == []
    assert "referenced file changed: " + conf in rc.daemon_log()
