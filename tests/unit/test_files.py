"""controller.files: where spec.files are written, with which permissions, and when they
are removed (a real directory in tmp_path; time is a parameter)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from controller import files
from controller.planner import diff_fields
from controller.render import prepare, render
from crd_like.spec_files import FileMount

SECRET = FileMount(secret="pw-1", source="secret db")
CONFIG = FileMount(content="a=1\n", mode=0o440, source="config app")


def test_paths_are_content_addressed_and_binds_read_only(tmp_path: os.PathLike[str]) -> None:
    root = str(tmp_path)
    a = files.host_path(root, "svc", "/run/secrets/db", SECRET)
    assert a.startswith(f"{root}/svc/") and a.endswith("/db")
    assert a != files.host_path(root, "svc", "/run/secrets/db", FileMount(secret="pw-2", source="secret db"))
    assert a != files.host_path(root, "svc", "/other/db", SECRET)
    assert files.binds(root, "svc", {"/run/secrets/db": SECRET}) == [f"{a}:/run/secrets/db:ro"]


@pytest.mark.parametrize(("store", "instance", "want"), [
    ("/var/lib/reconcile/reconcile.db", "abc", "/var/lib/reconcile/files/abc"),
    (None, "abc", "reconcile-files-abc"),
])
def test_files_root(store: str | None, instance: str, want: str) -> None:
    assert files.files_root(store, instance).endswith(want)


def test_sync_writes_with_modes_owner_and_private_directories(tmp_path: os.PathLike[str]) -> None:
    root = os.path.join(str(tmp_path), "root")
    res = files.sync(root, {"svc": {"/run/secrets/db": SECRET, "/app.conf": CONFIG}}, now=1000.0)
    assert res.errors == {} and len(res.written) == 2
    secret = files.host_path(root, "svc", "/run/secrets/db", SECRET)
    config = files.host_path(root, "svc", "/app.conf", CONFIG)
    assert Path(secret).read_text() == "pw-1" and Path(config).read_text() == "a=1\n"
    assert stat.S_IMODE(os.stat(secret).st_mode) == 0o444 and stat.S_IMODE(os.stat(config).st_mode) == 0o440
    for d in (root, os.path.dirname(os.path.dirname(secret)), os.path.dirname(secret)):
        assert stat.S_IMODE(os.stat(d).st_mode) == 0o700, d
    if os.geteuid() == 0:
        mine = FileMount(secret="x", uid="1005", gid="1006")
        files.sync(root, {"svc": {"/s": mine}}, now=1000.0)
        st = os.stat(files.host_path(root, "svc", "/s", mine))
        assert (st.st_uid, st.st_gid) == (1005, 1006)


def test_sync_is_idempotent_and_repairs_an_altered_file(tmp_path: os.PathLike[str]) -> None:
    root = str(tmp_path)
    wanted = {"svc": {"/run/secrets/db": SECRET}}
    files.sync(root, wanted, now=1000.0)
    again = files.sync(root, wanted, now=1001.0)
    assert (again.written, again.removed) == ([], [])
    path = files.host_path(root, "svc", "/run/secrets/db", SECRET)
    os.chmod(path, 0o644)
    with open(path, "w") as fh:
        fh.write("tampered")
    assert files.sync(root, wanted, now=1002.0).written == [path]
    assert Path(path).read_text() == "pw-1"


def test_old_content_is_removed_after_the_grace_period_and_a_deleted_service_at_once(
        tmp_path: os.PathLike[str]) -> None:
    root = str(tmp_path)
    old = files.host_path(root, "svc", "/run/secrets/db", SECRET)
    files.sync(root, {"svc": {"/run/secrets/db": SECRET}, "other": {"/c": CONFIG}}, now=1000.0)
    new_secret = FileMount(secret="pw-2", source="secret db")
    res = files.sync(root, {"svc": {"/run/secrets/db": new_secret}, "other": {"/c": CONFIG}}, now=1010.0)
    assert os.path.exists(old) and res.removed == []  # another process may be creating onto it
    res = files.sync(root, {"svc": {"/run/secrets/db": new_secret}, "other": {"/c": CONFIG}},
                     now=1010.0 + files.GRACE + 1)
    assert res.removed == [old] and not os.path.exists(os.path.dirname(old))
    res = files.sync(root, {"svc": {"/run/secrets/db": new_secret}}, now=1011.0 + files.GRACE)
    assert res.removed == [files.host_path(root, "other", "/c", CONFIG)]
    assert not os.path.exists(os.path.join(root, "other"))
    files.sync(root, {}, now=2000.0 + files.GRACE)
    assert os.listdir(root) == []


def test_an_unwritable_root_is_an_error_for_the_service_not_an_exception(tmp_path: os.PathLike[str]) -> None:
    blocker = os.path.join(str(tmp_path), "file")
    open(blocker, "w").close()
    res = files.sync(os.path.join(blocker, "root"), {"svc": {"/run/secrets/db": SECRET}}, now=1.0)
    assert list(res.errors) == ["svc"] and "secret db" in res.errors["svc"] and "pw-1" not in res.errors["svc"]


def test_render_mounts_the_files_and_a_changed_secret_names_its_source() -> None:
    spec = {"image": "x", "files": {"/run/secrets/db": {"secret": "pw-1", "source": "secret db"}}}
    svc = prepare("svc", "Service", 1, spec)
    from dataclasses import replace

    svc = replace(svc, files_root="/state/files/i")
    cfg = render(svc, "inst", 1)
    assert files.binds("/state/files/i", "svc", svc.spec.files)[0] in cfg.binds
    assert "pw-1" not in repr(cfg.labels) and "pw-1" not in repr(cfg.env)
    changed = diff_fields({"image": "x", "files": {"/run/secrets/db": {"secret": "pw-0", "source": "secret db"}}}, svc)
    assert changed == ("secret db (files./run/secrets/db.secret)",)
