"""Foundation e2e: apply / re-apply / drift / heal / delete / ownership / bad input,
against the real engine."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.e2e.conftest import TEST_LABEL, WEB_IMAGE, WEB_IMAGE_2, WORKER_IMAGE, Harness

pytestmark = pytest.mark.e2e


def _stack(rc: Harness, web_image: str = WEB_IMAGE, worker_env: str = "1") -> list[dict]:
    return [
        rc.service("web", web_image, command=["httpd", "-f", "-p", "80", "-h", "/www"],
                   env={"LOG_LEVEL": "info"}, ports=["127.0.0.1::80"], volumes=[f"{rc.name('data')}:/data"]),
        rc.service("worker", WORKER_IMAGE, env={"WORKER_ID": worker_env}),
    ]


def test_apply_creates_labelled_containers_and_reapply_is_a_noop(rc: Harness) -> None:
    f = rc.write(_stack(rc))
    out = rc.run("apply", "-f", f).stdout
    assert f"created {rc.name('web')}#1" in out and f"created {rc.name('worker')}#1" in out
    web = rc.client.containers.get(f"{rc.name('web')}-1")
    labels = web.labels
    assert labels["io.reconcile.managed"] == "true"
    assert labels["io.reconcile.service"] == rc.name("web")
    assert labels["io.reconcile.instance"] == rc.instance
    assert labels["io.reconcile.generation"] == "1"
    assert len(labels["io.reconcile.spec-hash"]) == 16
    assert labels[TEST_LABEL]
    assert web.status == "running"
    assert web.attrs["HostConfig"]["RestartPolicy"]["Name"] in ("no", "")
    ids = {c.name: c.id for c in rc.containers()}
    events_before = len(rc.history())

    again = rc.run("apply", "-f", f, "--json")
    data = json.loads(again.stdout)
    assert data["done"] == [] and data["errors"] == []
    assert all(c["change"] == "unchanged" for c in data["changes"])
    assert {c.name: c.id for c in rc.containers()} == ids
    assert len(rc.history()) == events_before, "an unchanged re-apply must not record anything"
    st = rc.status()
    assert st[rc.name("web")]["generation"] == 1
    assert st[rc.name("web")]["observedGeneration"] == 1
    assert st[rc.name("web")]["state"] == "Running"


def test_image_or_env_change_recreates_exactly_that_service(rc: Harness) -> None:
    f = rc.write(_stack(rc))
    rc.run("apply", "-f", f)
    before = {c.name: c.id for c in rc.containers()}

    rc.write(_stack(rc, web_image=WEB_IMAGE_2))
    out = rc.run("apply", "-f", f).stdout
    assert f"recreated {rc.name('web')}#1" in out
    after = {c.name: c.id for c in rc.containers()}
    assert after[f"{rc.name('web')}-1"] != before[f"{rc.name('web')}-1"]
    assert after[f"{rc.name('worker')}-1"] == before[f"{rc.name('worker')}-1"]
    rec = rc.history(rc.name("web"), "Recreated")
    assert len(rec) == 1 and "image" in rec[0]["reason"]
    assert rc.client.containers.get(f"{rc.name('web')}-1").labels["io.reconcile.generation"] == "2"

    rc.write(_stack(rc, web_image=WEB_IMAGE_2, worker_env="2"))
    rc.run("apply", "-f", f)
    final = {c.name: c.id for c in rc.containers()}
    assert final[f"{rc.name('web')}-1"] == after[f"{rc.name('web')}-1"]
    assert final[f"{rc.name('worker')}-1"] != after[f"{rc.name('worker')}-1"]
    rec = rc.history(rc.name("worker"), "Recreated")
    assert len(rec) == 1 and "env.WORKER_ID" in rec[0]["reason"]
    assert len(rc.containers()) == 2, "the replaced containers are gone"


def test_stopped_container_is_restarted_with_exit_code_in_audit(rc: Harness) -> None:
    f = rc.write(_stack(rc))
    rc.run("apply", "-f", f)
    web = rc.client.containers.get(f"{rc.name('web')}-1")
    web.stop(timeout=5)
    web.reload()
    code = web.attrs["State"]["ExitCode"]
    out = rc.run("apply", "-f", f).stdout
    assert f"restarted {rc.name('web')}#1" in out
    web.reload()
    assert web.status == "running"
    restarted = rc.history(rc.name("web"), "Restarted")
    assert len(restarted) == 1
    assert f"code {code}" in restarted[0]["reason"]
    assert restarted[0]["actor"] == "cli"
    assert rc.status()[rc.name("web")]["restartCount"] == 1


def test_removed_container_is_recreated(rc: Harness) -> None:
    f = rc.write(_stack(rc))
    rc.run("apply", "-f", f)
    old = rc.client.containers.get(f"{rc.name('worker')}-1").id
    rc.client.containers.get(old).remove(force=True)
    out = rc.run("apply", "-f", f).stdout
    assert f"created {rc.name('worker')}#1" in out
    new = rc.client.containers.get(f"{rc.name('worker')}-1")
    assert new.id != old and new.status == "running"
    created = rc.history(rc.name("worker"), "Created")
    assert len(created) == 2 and old[:12] in created[-1]["reason"]


def test_delete_removes_container_and_keeps_named_volume(rc: Harness) -> None:
    f = rc.write(_stack(rc))
    rc.run("apply", "-f", f)
    web = rc.client.containers.get(f"{rc.name('web')}-1")
    web.exec_run(["sh", "-c", "echo precious > /data/keep"])
    rc.run("delete", rc.name("web"))
    assert rc.containers(rc.name("web")) == []
    vol = rc.client.volumes.get(rc.name("data"))
    assert vol.attrs["Labels"]["io.reconcile.managed"] == "true"
    # the data is still in it
    out = rc.client.containers.run("reconcile/busybox:latest", ["cat", "/data/keep"], remove=True,
                                   volumes={rc.name("data"): {"bind": "/data", "mode": "ro"}},
                                   labels={TEST_LABEL: "x"})
    assert out.strip() == b"precious"
    types = [e["type"] for e in rc.history(rc.name("web"))]
    assert types[-2:] == ["Deleted", "Removed"]
    assert rc.status().get(rc.name("web")) is None
    # the other service is untouched
    assert rc.client.containers.get(f"{rc.name('worker')}-1").status == "running"


def test_foreign_container_with_our_name_is_untouched(rc: Harness) -> None:
    foreign = rc.client.containers.run(WORKER_IMAGE, name=f"{rc.name('worker')}-1", detach=True,
                                       labels={TEST_LABEL: "foreign"})
    try:
        f = rc.write(_stack(rc))
        proc = rc.run("apply", "-f", f, expect=1)
        assert "taken by container" in proc.stderr and "does not own" in proc.stderr
        foreign.reload()
        assert foreign.status == "running"
        assert foreign.labels.get("io.reconcile.managed") is None
        # the other service converged anyway
        assert rc.client.containers.get(f"{rc.name('web')}-1").status == "running"
        failed = rc.history(rc.name("worker"), "Failed")
        assert failed and "does not own" in failed[-1]["message"]
        # and an orphan sweep never removes it either
        rc.run("delete", rc.name("worker"))
        foreign.reload()
        assert foreign.status == "running"
    finally:
        foreign.remove(force=True)


def test_invalid_file_exits_2_with_location_and_changes_nothing(rc: Harness) -> None:
    f = rc.write(_stack(rc))
    rc.run("apply", "-f", f)
    digest = hashlib.sha256(Path(rc.db).read_bytes()).hexdigest()
    ids = {c.name: c.id for c in rc.containers()}
    bad = rc.write(
        "apiVersion: reconcile/v1alpha1\nkind: Service\nmetadata:\n  name: " + rc.name("web") + "\n"
        "spec:\n  image: " + WEB_IMAGE_2 + "\n---\n"
        "apiVersion: reconcile/v1alpha1\nkind: Service\nmetadata:\n  name: " + rc.name("other") + "\n"
        "spec:\n  image: x\n  ports: [\"8080:99999\"]\n",
        name="bad.yaml")
    proc = rc.run("apply", "-f", bad, expect=2)
    assert f"{bad}:14: spec.ports[0]" in proc.stderr
    assert "out of range" in proc.stderr
    assert hashlib.sha256(Path(rc.db).read_bytes()).hexdigest() == digest
    assert {c.name: c.id for c in rc.containers()} == ids


def test_history_json_has_every_event_with_reasons(rc: Harness) -> None:
    f = rc.write(_stack(rc))
    rc.run("apply", "-f", f)
    rc.client.containers.get(f"{rc.name('web')}-1").stop(timeout=5)
    rc.run("apply", "-f", f)
    rc.write(_stack(rc, worker_env="9"))
    rc.run("apply", "-f", f)
    rc.run("delete", rc.name("web"))
    events = rc.history()
    types = {e["type"] for e in events}
    assert {"Applied", "Created", "Restarted", "Recreated", "Deleted", "Removed"} <= types
    for e in events:
        assert e["reason"], e
        assert e["actor"] == "cli"
        assert e["ts"] > 0
    assert [e["ts"] for e in events] == sorted(e["ts"] for e in events)


def test_prune_removes_what_the_file_no_longer_names(rc: Harness) -> None:
    f = rc.write(_stack(rc))
    rc.run("apply", "-f", f)
    rc.write(_stack(rc)[:1])
    rc.run("apply", "-f", f)  # without --prune the worker stays
    assert rc.containers(rc.name("worker"))
    out = rc.run("apply", "-f", f, "--prune").stdout
    assert "pruned" in out
    assert rc.containers(rc.name("worker")) == []
    assert rc.containers(rc.name("web"))


def test_dry_run_and_diff_write_nothing(rc: Harness) -> None:
    f = rc.write(_stack(rc))
    rc.run("apply", "-f", f)
    digest = hashlib.sha256(Path(rc.db).read_bytes()).hexdigest()
    rc.write(_stack(rc, worker_env="5"))
    out = rc.run("diff", "-f", f, expect=1).stdout  # 1: differences (as kubectl diff)
    assert "env.WORKER_ID: '1' -> '5'" in out
    assert f"recreate {rc.name('worker')}#1" in out
    out = rc.run("apply", "-f", f, "--dry-run").stdout
    assert "would recreate" in out
    assert hashlib.sha256(Path(rc.db).read_bytes()).hexdigest() == digest
    assert rc.client.containers.get(f"{rc.name('worker')}-1").labels["io.reconcile.generation"] == "1"
