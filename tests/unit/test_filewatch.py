"""controller.filewatch: which paths a spec references, path -> services, the watch plan
(cap, recursion, missing directories), the debounce (fake clock), and the watcher on the
real file system (inotify) for the editors' write patterns and re-arming."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from controller.filewatch import Debouncer, FileWatcher, WatchPlan, index, plan_watches, referenced_paths, services_for
from controller.refs import RefCache
from crd_like.models import ServiceSpec


def spec(**kw: Any) -> ServiceSpec:
    return ServiceSpec.model_validate({"image": "x", **kw})


@pytest.mark.parametrize("kw, want", [
    ({}, ()),
    ({"envFiles": ["/a/e.env"]}, ("/a/e.env",)),
    ({"env": {"K": {"valueFrom": {"file": "/s/k"}}, "P": "plain", "V": {"valueFrom": {"env": "X"}}}}, ("/s/k",)),
    ({"volumes": ["/etc/p.conf:/p.conf:ro", "data:/data", "/anon"]}, ("/etc/p.conf",)),
    ({"volumes": ["/srv/site:/usr/share/nginx/html"]}, ("/srv/site",)),
    ({"volumes": ["./rel/x.conf:/x.conf"]}, (os.path.abspath("rel/x.conf"),)),
    ({"envFiles": ["/a/e.env"], "volumes": ["/a/e.env:/e.env"]}, ("/a/e.env",)),  # once
    ({"envFiles": ["/a//b/../e.env"]}, ("/a/e.env",)),
])
def test_referenced_paths(kw: dict[str, Any], want: tuple[str, ...]) -> None:
    assert referenced_paths(spec(**kw)) == want


def test_index_maps_each_path_to_exactly_its_services_and_skips_ignore() -> None:
    refs = index({
        "proxy": spec(volumes=["/cfg/proxy.conf:/etc/proxy.conf:ro"], envFiles=["/cfg/shared.env"]),
        "worker": spec(envFiles=["/cfg/shared.env"]),
        "static": spec(volumes=["/srv/site:/html"], onConfigChange="restart"),
        "careless": spec(volumes=["/cfg/proxy.conf:/p"], onConfigChange="ignore"),
        "plain": spec(),
    })
    assert refs == {"/cfg/proxy.conf": {"proxy"}, "/cfg/shared.env": {"proxy", "worker"}, "/srv/site": {"static"}}


def test_index_follows_a_symlinked_file_to_its_target(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "proxy.conf").write_text("x")
    (tmp_path / "proxy.conf").symlink_to(tmp_path / "real" / "proxy.conf")
    refs = index({"proxy": spec(volumes=[f"{tmp_path}/proxy.conf:/etc/proxy.conf"])})
    assert refs == {str(tmp_path / "proxy.conf"): {"proxy"}, str(tmp_path / "real" / "proxy.conf"): {"proxy"}}


REFS = {"/cfg/proxy.conf": frozenset({"proxy"}), "/cfg/shared.env": frozenset({"proxy", "worker"}),
        "/srv/site": frozenset({"static"}), "/srv": frozenset({"all-of-srv"})}


@pytest.mark.parametrize("path, want", [
    ("/cfg/proxy.conf", {"proxy"}),
    ("/cfg/shared.env", {"proxy", "worker"}),
    ("/cfg/proxy.conf.swp", set()),  # an editor's scratch file beside it
    ("/cfg/proxy.conf~", set()),
    ("/cfg", set()),
    ("/srv/site/index.html", {"static", "all-of-srv"}),  # inside a bind-mounted directory
    ("/srv/site/deep/er/x.css", {"static", "all-of-srv"}),
    ("/srv/site", {"static", "all-of-srv"}),
    ("/srv/sitemap", {"all-of-srv"}),  # a prefix of the name is not inside it
    ("/other/file", set()),
    ("/", set()),
])
def test_services_for(path: str, want: set[str]) -> None:
    assert services_for(path, REFS) == want


def fake_fs(dirs: dict[str, int]) -> tuple[Callable[[str], bool], Callable[[str, int], int]]:
    """is_dir / count_dirs over a fake tree: {directory: directories in its tree}."""
    return (lambda p: p in dirs), (lambda p, limit: min(dirs.get(p, 1), limit))


@pytest.mark.parametrize("refs, dirs, cap, want", [
    # a file: its parent, not recursively (rename-over and delete+create happen there)
    (["/cfg/a.conf"], {"/cfg": 1}, 10, WatchPlan({"/cfg": False}, cost=1)),
    # two files in one directory: one watch
    (["/cfg/a.conf", "/cfg/b.env"], {"/cfg": 1}, 10, WatchPlan({"/cfg": False}, cost=1)),
    # a directory: itself recursively, and its parent (to see it replaced)
    (["/srv/site"], {"/srv": 5, "/srv/site": 3}, 10, WatchPlan({"/srv": False, "/srv/site": True}, cost=4)),
    # a file inside a recursively watched directory adds nothing
    (["/srv/site", "/srv/site/x.conf"], {"/srv": 5, "/srv/site": 3}, 10,
     WatchPlan({"/srv": False, "/srv/site": True}, cost=4)),
    # the whole file system bind-mounted (a host agent): within the cap, it is watched
    (["/"], {"/": 3}, 10, WatchPlan({"/": True}, cost=3)),
    # a missing file in an existing directory is watched for (its creation is a change)
    (["/cfg/not-yet.env"], {"/cfg": 1}, 10, WatchPlan({"/cfg": False}, cost=1)),
    # a missing directory cannot be watched: the periodic check covers it
    (["/nowhere/x.conf"], {}, 10, WatchPlan({}, unwatchable=("/nowhere/x.conf",))),
    # the cap: a tree bigger than it is dropped, the small ones still fit
    (["/big", "/cfg/a.conf"], {"/": 1, "/big": 50, "/cfg": 1}, 10,
     WatchPlan({"/cfg": False}, dropped=("/big",), cost=1)),
    (["/a/1", "/b/2", "/c/3"], {"/a": 1, "/b": 1, "/c": 1}, 2,
     WatchPlan({"/a": False, "/b": False}, dropped=("/c/3",), cost=2)),
])
def test_plan_watches(refs: list[str], dirs: dict[str, int], cap: int, want: WatchPlan) -> None:
    is_dir, count = fake_fs(dirs)
    assert plan_watches({r: frozenset({"s"}) for r in refs}, is_dir=is_dir, count_dirs=count, cap=cap) == want


@pytest.mark.parametrize("notes, at, want", [
    ([], 10.0, set()),
    ([(0.0, ["/a"])], 0.04, set()),  # still inside the quiet window
    ([(0.0, ["/a"])], 0.05, {"/a"}),
    ([(0.0, ["/a"]), (0.03, ["/b"])], 0.06, set()),  # the second write extends the window
    ([(0.0, ["/a"]), (0.03, ["/b"])], 0.08, {"/a", "/b"}),
    # a file written without pause is still reported after max_delay
    ([(t / 100, ["/log"]) for t in range(0, 60, 2)], 0.5, {"/log"}),
    ([(0.0, [])], 1.0, set()),  # an event for nothing referenced
])
def test_debouncer(notes: list[tuple[float, list[str]]], at: float, want: set[str]) -> None:
    d = Debouncer(quiet=0.05, max_delay=0.5)
    for now, paths in notes:
        d.note(paths, now)
    assert d.pop_due(at) == want
    if want:
        assert d.pop_due(at + 10) == set() and d.deadline() is None  # reported once


def test_refcache_invalidate_forgets_a_same_size_same_mtime_edit(tmp_path: Path) -> None:
    f = tmp_path / "proxy.conf"
    f.write_text("listen 80;")
    cache = RefCache()
    before = cache.file_digest(str(f))
    st = os.stat(f)
    f.write_text("listen 81;")  # same size; the mtime put back: what a coarse clock shows
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert cache.file_digest(str(f)) == before  # stale, as the size+mtime check must be
    cache.invalidate(str(tmp_path))  # a directory: the files below it are forgotten too
    assert cache.file_digest(str(f)) != before


# -- the watcher on the real file system (inotify) ---------------------------------------

class Seen:
    def __init__(self) -> None:
        self.calls: list[tuple[frozenset[str], frozenset[str]]] = []
        self.cond = threading.Condition()

    def __call__(self, services: frozenset[str], paths: frozenset[str]) -> None:
        with self.cond:
            self.calls.append((services, paths))
            self.cond.notify_all()

    def wait(self, n: int = 1, timeout: float = 5.0) -> list[tuple[frozenset[str], frozenset[str]]]:
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.calls) < n and time.monotonic() < deadline:
                self.cond.wait(0.05)
            return list(self.calls)

    def services(self) -> set[str]:
        return {s for call in self.calls for s in call[0]}


@pytest.fixture()
def watched(tmp_path: Path) -> Any:
    seen = Seen()
    w = FileWatcher(seen)
    if not w.start():
        pytest.skip("no file notifications on this machine")
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "proxy.conf").write_text("a")
    (tmp_path / "cfg" / "shared.env").write_text("A=1\n")
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "index.html").write_text("<p>1</p>")
    refs = {str(tmp_path / "cfg" / "proxy.conf"): frozenset({"proxy"}),
            str(tmp_path / "cfg" / "shared.env"): frozenset({"proxy", "worker"}),
            str(tmp_path / "site"): frozenset({"static"})}
    w.update(refs)
    yield w, seen, tmp_path, refs
    w.stop()


def _in_place(root: Path) -> None:
    with open(root / "cfg" / "proxy.conf", "w") as fh:
        fh.write("b")


def _atomic(root: Path) -> None:
    tmp = root / "cfg" / ".proxy.conf.tmp"
    tmp.write_text("c")
    os.replace(tmp, root / "cfg" / "proxy.conf")


def _vim_style(root: Path) -> None:  # backup by rename, then a new file
    os.rename(root / "cfg" / "proxy.conf", root / "cfg" / "proxy.conf~")
    (root / "cfg" / "proxy.conf").write_text("d")
    os.unlink(root / "cfg" / "proxy.conf~")


def _delete_create(root: Path) -> None:
    os.unlink(root / "cfg" / "proxy.conf")
    (root / "cfg" / "proxy.conf").write_text("e")


def _dir_contents(root: Path) -> None:
    (root / "site" / "new.css").write_text("p{}")


def _dir_subdir(root: Path) -> None:
    (root / "site" / "img").mkdir()


def _shared(root: Path) -> None:
    (root / "cfg" / "shared.env").write_text("A=2\n")


@pytest.mark.parametrize("edit, want", [
    (_in_place, {"proxy"}), (_atomic, {"proxy"}), (_vim_style, {"proxy"}), (_delete_create, {"proxy"}),
    (_dir_contents, {"static"}), (_dir_subdir, {"static"}), (_shared, {"proxy", "worker"}),
])
def test_an_edit_reports_exactly_the_services_that_reference_the_file(watched: Any, edit: Callable[[Path], None],
                                                                    want: set[str]) -> None:
    w, seen, root, _refs = watched
    edit(root)
    seen.wait()
    time.sleep(0.2)  # let any second report (a debounce that split one edit) arrive
    assert seen.services() == want
    assert len(seen.calls) == 1, seen.calls  # debounced: one edit, one report


def test_reads_and_unreferenced_files_wake_nothing(watched: Any) -> None:
    w, seen, root, _refs = watched
    (root / "cfg" / "proxy.conf").read_text()  # the controller's digest, a container reading it
    (root / "cfg" / "unrelated.txt").write_text("x")
    (root / "cfg" / "proxy.conf.swp").write_text("x")
    assert seen.wait(timeout=0.5) == []


def test_rearm_follows_the_desired_state(watched: Any) -> None:
    w, seen, root, refs = watched
    other = root / "other"
    other.mkdir()
    (other / "new.conf").write_text("1")
    # the proxy no longer references anything; a new service references other/new.conf
    w.update({str(root / "site"): frozenset({"static"}), str(other / "new.conf"): frozenset({"newcomer"})})
    assert set(w.plan.dirs) == {str(root), str(root / "site"), str(other)}
    _in_place(root)
    assert seen.wait(timeout=0.5) == []
    (other / "new.conf").write_text("2")
    seen.wait()
    assert seen.services() == {"newcomer"}


def test_a_replaced_directory_is_watched_again(watched: Any) -> None:
    w, seen, root, _refs = watched
    fresh = root / "site.new"
    fresh.mkdir()
    (fresh / "index.html").write_text("<p>2</p>")
    os.rename(root / "site", root / "site.old")
    os.rename(fresh, root / "site")
    seen.wait()
    assert seen.services() == {"static"}
    time.sleep(0.2)
    seen.calls.clear()
    (root / "site" / "index.html").write_text("<p>3</p>")  # inside the new directory
    seen.wait()
    assert seen.services() == {"static"}


def test_over_the_cap_is_left_to_the_periodic_check(tmp_path: Path) -> None:
    for i in range(3):
        (tmp_path / f"d{i}").mkdir()
        (tmp_path / f"d{i}" / "f").write_text("x")
    w = FileWatcher(Seen(), cap=2)
    if not w.start():
        pytest.skip("no file notifications on this machine")
    try:
        plan = w.update({str(tmp_path / f"d{i}" / "f"): frozenset({f"s{i}"}) for i in range(3)})
    finally:
        w.stop()
    assert len(plan.dirs) == 2 and plan.dropped == (str(tmp_path / "d2" / "f"),)


def test_nothing_to_watch_starts_nothing(tmp_path: Path) -> None:
    w = FileWatcher(Seen())
    assert w.update({}) == WatchPlan({}) and not w.active  # no import, no threads, no inotify instance
    (tmp_path / "a.conf").write_text("x")
    try:
        w.update({str(tmp_path / "a.conf"): frozenset({"s"})})
        assert w.active and set(w.plan.dirs) == {str(tmp_path)}
    finally:
        w.stop()


def test_without_watchdog_the_periodic_check_is_left(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "watchdog.observers", None)  # `import` raises ImportError
    (tmp_path / "a.conf").write_text("x")
    w = FileWatcher(Seen())
    plan = w.update({str(tmp_path / "a.conf"): frozenset({"s"})})
    assert not w.active and plan == WatchPlan({}) and not w.needs_rearm()
    w.update({str(tmp_path / "a.conf"): frozenset({"s"})})  # not retried, no error
    w.stop()


def test_inotify_watches_spent_leaves_those_files_to_the_periodic_check(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    import watchdog.observers

    class Spent:  # fs.inotify.max_user_watches reached: every new watch is refused
        daemon = True

        def start(self) -> None: ...
        def stop(self) -> None: ...
        def join(self, timeout: float | None = None) -> None: ...

        def schedule(self, *_a: Any, **_k: Any) -> Any:
            raise OSError(errno.ENOSPC, "inotify watch limit reached")

    monkeypatch.setattr(watchdog.observers, "Observer", Spent)
    (tmp_path / "a.conf").write_text("x")
    w = FileWatcher(Seen())
    plan = w.update({str(tmp_path / "a.conf"): frozenset({"s"})})  # no exception: a warning
    assert w.active and set(plan.dirs) == {str(tmp_path)} and w._watches == {}
    assert w.needs_rearm()  # tried again at the next resync (warned once)
    w.stop()
