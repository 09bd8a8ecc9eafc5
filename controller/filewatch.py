"""Watches the files a desired state references, so that an edit reconciles its services
at once instead of at the next periodic resync.

The referenced paths are the ones ``controller.refs`` digests into the config hash:
bind-mount sources (files or directories), ``envFiles`` and ``valueFrom.file`` secret
files. A service whose ``onConfigChange`` is ``ignore`` is not watched for. The
directories holding them are watched with the operating system's file notifications
(``watchdog``'s inotify observer on Linux): the parent of a referenced file (so that
write-in-place, rename-over / atomic save and delete + create are all seen), and a
bind-mounted directory recursively (its contents are part of the digest). A change
is debounced briefly (editors write in several steps) and handed to ``on_change`` with
exactly the services that reference the changed path and the paths themselves (so the
caller can drop cached digests). Events only decide *when* those names are
reconciled: the reconciler re-reads the files itself; the periodic resync stays the
safety net for what is not watched (a missing parent directory, over the cap, no
inotify).

Pure parts, table-tested: ``referenced_paths``, ``index``, ``services_for``,
``plan_watches`` and ``Debouncer`` (takes ``now``). ``FileWatcher`` is the I/O shell; it
imports ``watchdog`` lazily in ``start`` (CLI start-up does not pay for it) and falls
back to the periodic check, with a warning, when watchdog is missing or the inotify
limits are hit. Must not import docker, sqlalchemy or the store.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from loguru import logger

from crd_like import units
from crd_like.models import EnvFrom, ServiceSpec

DEBOUNCE = 0.05  # seconds of quiet after the last event before the services are enqueued
MAX_DELAY = 0.5  # a path written without pause is still reported this often
MAX_WATCHED_DIRS = 512  # inotify watches this controller spends (a recursive root counts its subdirectories)

# what an edit looks like; opened / closed_no_write / attrib are reads (the controller's
# own digests, a container reading its config) and must not wake anything
CHANGE_EVENTS = frozenset({"created", "deleted", "modified", "moved", "closed"})

OnChange = Callable[[frozenset[str], frozenset[str]], None]  # (services, changed paths)


def referenced_paths(spec: ServiceSpec) -> tuple[str, ...]:
    """Absolute host paths a spec references (what ``refs.resolve`` digests), in order."""
    paths: list[str] = list(spec.envFiles)
    for value in spec.env.values():
        if isinstance(value, EnvFrom) and value.valueFrom.file is not None:
            paths.append(value.valueFrom.file)
    for vol in spec.volumes:
        try:
            m = units.parse_volume(vol)
        except ValueError:
            continue
        if m.kind == "bind":
            paths.append(m.source)
    return tuple(dict.fromkeys(os.path.abspath(os.path.expanduser(p)) for p in paths))


def index(specs: Mapping[str, ServiceSpec]) -> dict[str, frozenset[str]]:
    """path -> the services that reference it (``onConfigChange: ignore`` ones left out).
    A symlink's target is indexed too: an edit of the target is an edit of the file."""
    out: dict[str, set[str]] = {}
    for name, spec in specs.items():
        if spec.onConfigChange == "ignore":
            continue
        for p in referenced_paths(spec):
            for q in {p, os.path.realpath(p)}:
                out.setdefault(q, set()).add(name)
    return {p: frozenset(s) for p, s in sorted(out.items())}


def services_for(path: str, refs: Mapping[str, frozenset[str]]) -> set[str]:
    """The services a change at ``path`` concerns: those referencing the path itself, or
    a directory above it (a bind-mounted directory's contents are part of its digest)."""
    hit: set[str] = set()
    p = os.path.normpath(path)
    while True:
        hit |= refs.get(p, frozenset())
        parent = os.path.dirname(p)
        if parent == p:
            return hit
        p = parent


@dataclass(frozen=True)
class WatchPlan:
    dirs: dict[str, bool]  # directory -> recursive
    dropped: tuple[str, ...] = ()  # referenced paths left to the periodic check (over the cap)
    unwatchable: tuple[str, ...] = ()  # referenced paths whose directory does not exist (yet)
    cost: int = 0  # directories the watches cover


def plan_watches(refs: Mapping[str, frozenset[str]], *, is_dir: Callable[[str], bool],
                 count_dirs: Callable[[str, int], int], cap: int = MAX_WATCHED_DIRS) -> WatchPlan:
    """Which directories to watch for these references: a referenced directory
    recursively (and its parent, to see the directory itself replaced), a referenced file
    (or a missing path) through its parent. ``count_dirs(root, limit)`` counts a tree's
    directories (at most ``limit``); beyond ``cap`` directories, paths are dropped."""
    dirs: dict[str, bool] = {}
    dropped: list[str] = []
    unwatchable: list[str] = []
    cost = 0
    for path in sorted(refs):
        want = _wanted(path, is_dir)
        if not want:
            unwatchable.append(path)
            continue
        extra = sum(count_dirs(d, cap + 1) if rec else 1 for d, rec in want.items()
                    if d not in dirs or (rec and not dirs[d]))
        if cost + extra > cap:
            dropped.append(path)
            continue
        cost += extra
        for d, rec in want.items():
            dirs[d] = dirs.get(d, False) or rec
    return WatchPlan(_uncovered(dirs), tuple(dropped), tuple(unwatchable), cost)


def _wanted(path: str, is_dir: Callable[[str], bool]) -> dict[str, bool]:
    """The watches one referenced path needs: directory -> recursive ({} if none can be had)."""
    parent = os.path.dirname(path) or "/"
    want: dict[str, bool] = {}
    if is_dir(path):
        want[path] = True
    if is_dir(parent):
        want.setdefault(parent, False)
    return want


def _uncovered(dirs: dict[str, bool]) -> dict[str, bool]:
    """Without the directories a recursive watch above them covers already."""
    roots = [(r, r.rstrip("/") + "/") for r, rec in dirs.items() if rec]
    return {d: rec for d, rec in dirs.items() if not any(d != r and d.startswith(prefix) for r, prefix in roots)}


@dataclass
class Debouncer:
    """Collects changed paths and says when they are due: ``quiet`` seconds after the last
    one, and at the latest ``max_delay`` after the first (a file written without pause)."""

    quiet: float = DEBOUNCE
    max_delay: float = MAX_DELAY
    _paths: set[str] = field(default_factory=set)
    _first: float | None = None
    _last: float = 0.0

    def note(self, paths: Iterable[str], now: float) -> None:
        new = set(paths)
        if not new:
            return
        if self._first is None:
            self._first = now
        self._paths |= new
        self._last = now

    def deadline(self) -> float | None:
        if self._first is None:
            return None
        return min(self._last + self.quiet, self._first + self.max_delay)

    def pop_due(self, now: float) -> set[str]:
        due = self.deadline()
        if due is None or now < due:
            return set()
        out, self._paths, self._first = self._paths, set(), None
        return out


def count_dirs(root: str, limit: int) -> int:
    """A tree's directories (itself included), counted up to ``limit``."""
    n = 0
    for _dirpath, _dirnames, _files in os.walk(root):
        n += 1
        if n >= limit:
            break
    return n


class FileWatcher:
    """The I/O shell: arms OS watches for a reference index, debounces, reports.

    ``update(refs)`` re-arms (cheap when nothing changed) and starts the observer and the
    flush thread the first time there is something to watch (a desired state without
    referenced files costs neither the import nor the threads); ``stop`` ends them.
    ``active`` is False until then and when notifications are unavailable (the periodic
    check then does all the work)."""

    def __init__(self, on_change: OnChange, *, cap: int = MAX_WATCHED_DIRS,
                 debounce: Debouncer | None = None, clock: Callable[[], float] = time.monotonic):
        self.on_change = on_change
        self.cap = cap
        self.clock = clock
        self._debounce = debounce or Debouncer()
        self._cond = threading.Condition()
        self._arm_lock = threading.Lock()  # update() runs on the loop's thread and on the flush thread
        self._refs: dict[str, frozenset[str]] = {}
        self._plan = WatchPlan({})
        self._watches: dict[str, tuple[bool, Any]] = {}  # dir -> (recursive, ObservedWatch)
        self._stale: set[str] = set()  # watched roots replaced on disk (re-armed at the next flush)
        self._observer: Any = None
        self._handler: Any = None
        self._thread: threading.Thread | None = None
        self._stopping = False
        self.active = False
        self._unavailable = False  # watchdog missing or the inotify instances spent: not retried
        self._warned_cap = False
        self._unarmed: set[str] = set()  # directories the OS refused to watch (retried at resyncs)
        self._warned_dirs: set[str] = set()

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> bool:
        if self.active:
            return True
        try:
            from watchdog.events import FileSystemEvent, FileSystemEventHandler
            from watchdog.observers import Observer
        except ImportError as exc:
            logger.warning(f"file notifications unavailable ({exc}); referenced files are checked "
                           "at each periodic resync only")
            self._unavailable = True
            return False
        watcher = self

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                watcher._event(event.event_type, event.src_path, event.dest_path, event.is_directory)

        try:
            self._observer = Observer()
            self._observer.daemon = True
            self._observer.start()
        except OSError as exc:
            logger.warning(f"file notifications unavailable ({exc}); referenced files are checked "
                           "at each periodic resync only")
            self._observer = None
            self._unavailable = True
            return False
        self._handler = Handler()
        self._thread = threading.Thread(target=self._flush_loop, name="filewatch", daemon=True)
        self._thread.start()
        self.active = True
        return True

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._observer is not None:
            try:
                self._observer.stop()
                self._observer.join(timeout=2)
            except RuntimeError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=2)
        self.active = False

    # -- arming ----------------------------------------------------------------------
    @property
    def plan(self) -> WatchPlan:
        return self._plan

    def needs_rearm(self) -> bool:
        """Some referenced path could not be watched (its directory is missing) or a root was replaced."""
        return bool(self._plan.unwatchable or self._stale or self._unarmed)

    def update(self, refs: Mapping[str, frozenset[str]]) -> WatchPlan:
        """Watch exactly the directories these references need (arm new, disarm gone)."""
        if self._stopping or (not self.active and (self._unavailable or not refs or not self.start())):
            return self._plan
        with self._arm_lock:
            return self._arm(refs)

    def _arm(self, refs: Mapping[str, frozenset[str]]) -> WatchPlan:
        plan = plan_watches(refs, is_dir=os.path.isdir, count_dirs=count_dirs, cap=self.cap)
        if plan.dropped and not self._warned_cap:
            self._warned_cap = True
            logger.warning(f"file notifications: more than {self.cap} directories to watch; "
                           f"{len(plan.dropped)} referenced path(s) are checked at each periodic resync only "
                           f"(first: {plan.dropped[0]})")
        with self._cond:
            self._refs = dict(refs)
            stale, self._stale = self._stale, set()
        for d, (rec, watch) in list(self._watches.items()):
            if plan.dirs.get(d) != rec or d in stale:
                self._unschedule(watch)
                del self._watches[d]
        self._unarmed = set()
        for d, rec in plan.dirs.items():
            if d in self._watches:
                continue
            try:
                self._watches[d] = (rec, self._observer.schedule(self._handler, d, recursive=rec))
            except OSError as exc:
                # ENOSPC: fs.inotify.max_user_watches spent; ENOENT: gone meanwhile
                self._unarmed.add(d)
                if d not in self._warned_dirs:
                    self._warned_dirs.add(d)
                    logger.warning(f"file notifications: cannot watch {d} ({exc.strerror or exc}); "
                                   "its files are checked at each periodic resync only")
        if plan.dirs != self._plan.dirs:
            logger.info(f"file notifications: watching {len(self._watches)} directories "
                        f"for {len(refs)} referenced paths")
        self._plan = plan
        return plan

    def _unschedule(self, watch: Any) -> None:
        try:
            self._observer.unschedule(watch)
        except (KeyError, OSError, RuntimeError):
            pass

    # -- events ----------------------------------------------------------------------
    def _event(self, etype: str, src: bytes | str, dest: bytes | str, is_dir: bool) -> None:
        if etype not in CHANGE_EVENTS:
            return
        paths = [os.fsdecode(p) for p in (src, dest) if p]
        with self._cond:
            hit = [p for p in paths if services_for(p, self._refs)]
            if etype in ("created", "moved", "deleted") and is_dir:
                self._stale.update(p for p in paths if p in self._watches)
            self._debounce.note(hit, self.clock())
            if hit:
                self._cond.notify()

    def _flush_loop(self) -> None:
        while True:
            with self._cond:
                while not self._stopping:
                    due = self._debounce.deadline()
                    now = self.clock()
                    if due is not None and now >= due:
                        break
                    self._cond.wait(None if due is None else max(0.001, due - now))
                if self._stopping:
                    return
                paths = self._debounce.pop_due(self.clock())
                refs = self._refs
                stale = bool(self._stale)
            if stale:  # a watched directory was replaced: watch the new one (same references)
                self.update(refs)
            services: set[str] = set()
            for p in paths:
                services |= services_for(p, refs)
            if services:
                logger.info(f"referenced file changed: {', '.join(sorted(paths)[:5])}; "
                            f"reconciling {', '.join(sorted(services))}")
                try:
                    self.on_change(frozenset(services), frozenset(paths))
                except Exception as exc:  # noqa: BLE001 - the watcher thread must not die
                    logger.exception(f"file change handler failed: {exc}")
