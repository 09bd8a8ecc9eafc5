"""The files the controller writes for ``spec.files`` (compose secrets and configs that
come from the environment or inline content, ``crd_like.spec_files``), and where.

Layout (documented in the README, "Secrets"): ``<root>/<service>/<digest>/<name>``, where
``root`` is ``<the store's directory>/files/<instance id>`` (``/var/lib/reconcile/files/...``
for root's default store; ``<tmp>/reconcile-files-<instance>`` when the store is not a
file), ``digest`` covers the target, text, mode and owner, and ``name`` is the target's
base name. Every directory is ``0700`` and owned by the controller's user, so no other
host user can read a secret; the file itself has the mode and owner the spec asks for
(default ``0444``, ``0:0``, as compose gives the files it creates), which is what the
container sees through the read-only bind.

Content-addressed: a changed text is a new path (the spec hash changes too, so the
container is recreated onto it), and the container being replaced keeps its old file
until it is gone. ``sync`` is level-triggered and idempotent: each pass writes what is
missing or altered and removes what no desired service references any more -- at once
for a service that is no longer desired, after ``GRACE`` seconds for older contents of a
desired one (another process may have just written them for a container it is
creating). ``host_path`` and ``binds`` are pure; ``sync`` does the I/O. Nothing here logs
or returns a file's text.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field

from crd_like.spec_files import FileMount

DIR_MODE = 0o700
DEFAULT_MODE = 0o444
GRACE = 120.0  # seconds an unreferenced content of a still-desired service is kept


def files_root(store_path: str | None, instance: str) -> str:
    """Where a store's materialized files live (see the module docstring)."""
    if store_path:
        return os.path.join(os.path.dirname(os.path.abspath(store_path)), "files", instance)
    return os.path.join(tempfile.gettempdir(), f"reconcile-files-{instance}")


def digest(target: str, mount: FileMount) -> str:
    h = hashlib.sha256()
    for part in (target, mount.text, str(mount.mode), str(mount.uid), str(mount.gid)):
        h.update(part.encode("utf-8", "surrogatepass") + b"\0")
    return h.hexdigest()[:16]


def host_path(root: str, service: str, target: str, mount: FileMount) -> str:
    """Pure: the host file that is mounted at ``target`` for ``service``."""
    return os.path.join(root, service, digest(target, mount), os.path.basename(target))


def binds(root: str, service: str, files: Mapping[str, FileMount]) -> list[str]:
    """Pure: the read-only binds of a service's files (``HOST:TARGET:ro``)."""
    return [f"{host_path(root, service, target, m)}:{target}:ro" for target, m in sorted(files.items())]


@dataclass
class SyncResult:
    errors: dict[str, str] = field(default_factory=dict)  # service -> why its files cannot be written
    written: list[str] = field(default_factory=list)  # host paths written (or repaired) this pass
    removed: list[str] = field(default_factory=list)  # host paths removed this pass


def sync(root: str, wanted: Mapping[str, Mapping[str, FileMount]], now: float) -> SyncResult:
    """Write every desired service's files (those missing or altered), remove the rest
    (see the module docstring). ``wanted``: service -> target -> file, for every desired
    service (a service missing from it has its files removed)."""
    out = SyncResult()
    keep: set[str] = set()
    for service, files in wanted.items():
        for target, mount in files.items():
            path = host_path(root, service, target, mount)
            keep.add(path)
            try:
                if _write(path, mount, now):
                    out.written.append(path)
            except OSError as exc:
                out.errors[service] = f"cannot write the file for {mount.source or target}: {exc.strerror or exc}"
    if os.path.isdir(root):
        out.removed = _prune(root, keep, set(wanted), now)
    return out


def _makedirs(path: str) -> None:
    os.makedirs(path, mode=DIR_MODE, exist_ok=True)
    os.chmod(path, DIR_MODE)


def _write(path: str, mount: FileMount, now: float) -> bool:
    """Write ``path`` unless it already holds the text with the right mode and owner.
    True when it was written. Its mtime is set to ``now`` either way (in use: see GRACE)."""
    directory = os.path.dirname(path)
    root_of_service = os.path.dirname(directory)
    for d in (os.path.dirname(root_of_service), root_of_service, directory):
        _makedirs(d)
    data = mount.text.encode("utf-8", "surrogatepass")
    mode = DEFAULT_MODE if mount.mode is None else mount.mode
    owner = (int(mount.uid or 0), int(mount.gid or 0))
    if _up_to_date(path, data, mode, owner):
        os.utime(path, (now, now))
        return False
    _replace(path, data, mode, owner, now)
    return True


def _up_to_date(path: str, data: bytes, mode: int, owner: tuple[int, int]) -> bool:
    """Does ``path`` hold ``data`` with ``mode`` and (where we are root) ``owner``? A directory
    there (the engine made one of a bind source that was missing) is removed."""
    try:
        st = os.lstat(path)
        with open(path, "rb") as fh:
            same = fh.read(len(data) + 1) == data
    except FileNotFoundError:
        return False
    except IsADirectoryError:
        shutil.rmtree(path)
        return False
    owner_ok = os.geteuid() != 0 or (st.st_uid, st.st_gid) == owner  # only root can give files away
    return same and (st.st_mode & 0o7777) == mode and owner_ok


def _replace(path: str, data: bytes, mode: int, owner: tuple[int, int], now: float) -> None:
    """Write ``path`` atomically: a temporary file beside it, renamed over it."""
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        if os.geteuid() == 0 or owner == (os.geteuid(), os.getegid()):
            os.chown(tmp, *owner)
        os.chmod(tmp, mode)
        os.utime(tmp, (now, now))
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _prune(root: str, keep: set[str], services: set[str], now: float) -> list[str]:
    removed: list[str] = []
    for service in sorted(os.listdir(root)):
        sdir = os.path.join(root, service)
        if not os.path.isdir(sdir):
            continue
        for entry in sorted(os.listdir(sdir)):
            removed.extend(_prune_entry(os.path.join(sdir, entry), keep, service in services, now))
        if not os.listdir(sdir):
            os.rmdir(sdir)
    return removed


def _prune_entry(cdir: str, keep: set[str], desired: bool, now: float) -> list[str]:
    """Remove one content directory (or stray file) of a service unless a kept file is in it
    or, for a ``desired`` service's older content, it was in use within GRACE. The files removed."""
    paths = [os.path.join(cdir, n) for n in os.listdir(cdir)] if os.path.isdir(cdir) else [cdir]
    if any(p in keep for p in paths):
        return []
    if desired:  # an older content of a desired service: after the grace period
        try:
            if now - max(os.lstat(p).st_mtime for p in paths or [cdir]) < GRACE:
                return []
        except OSError:
            return []
    shutil.rmtree(cdir, ignore_errors=True) if os.path.isdir(cdir) else os.unlink(cdir)
    return [p for p in paths if not p.rsplit("/", 1)[-1].startswith(".tmp-")]
