"""What a spec references outside itself: bind-mounted files, env files, secret
sources, build contexts. Reads them (this is I/O) and digests them, cheaply: a file is
re-read only when its size or mtime moved since the last look.

The digests feed the container's config hash (so an edited ``nginx.conf`` rolls exactly
the services that mount it) and the build hash. Secret values are returned for
container creation only; nothing here logs a value.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from controller import render_host
from crd_like import units
from crd_like.models import EnvFrom, ServiceSpec

MAX_TREE_FILES = 2000
MAX_FILE_BYTES = 16 * 1024 * 1024


class RefError(Exception):
    """A referenced file or variable cannot be read (the service cannot be created)."""


@dataclass(frozen=True)
class Resolved:
    env: dict[str, str]  # the environment to create the container with (secrets included)
    secret_keys: frozenset[str]
    files: dict[str, str] = field(default_factory=dict)  # path -> short digest
    config_hash: str = ""  # "" when the spec references nothing
    build_hash: str = ""
    error: str = ""


class RefCache:
    def __init__(self) -> None:
        self._files: dict[str, tuple[int, int, str]] = {}
        self._lock = threading.Lock()

    def file_digest(self, path: str) -> str:
        st = os.stat(path)
        key = (st.st_size, st.st_mtime_ns)
        with self._lock:
            hit = self._files.get(path)
        if hit and hit[:2] == key:
            return hit[2]
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 16), b""):
                h.update(chunk)
        digest = h.hexdigest()[:12]
        with self._lock:
            self._files[path] = (*key, digest)
        return digest

    def invalidate(self, path: str) -> None:
        """Forget the digests of ``path`` and of the files below it. A file watcher saw it
        change: an edit of the same size within one mtime tick must not look unchanged."""
        target = os.path.abspath(path)
        prefix = target.rstrip("/") + "/"
        with self._lock:
            for p in [p for p in self._files if (a := os.path.abspath(p)) == target or a.startswith(prefix)]:
                del self._files[p]

    def tree_digest(self, root: str) -> str:
        """Digest of a directory's files (names and contents), bounded in size."""
        h = hashlib.sha256()
        count = 0
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in sorted(filenames):
                path = os.path.join(dirpath, name)
                count += 1
                if count > MAX_TREE_FILES:
                    h.update(b"...truncated")
                    return h.hexdigest()[:12]
                try:
                    digest = self.file_digest(path) if os.path.getsize(path) <= MAX_FILE_BYTES else "big"
                    mode = os.stat(path).st_mode & 0o111
                except OSError:
                    digest, mode = "unreadable", 0
                h.update(f"{os.path.relpath(path, root)}\0{digest}\0{mode}\n".encode())
        return h.hexdigest()[:12]

    def path_digest(self, path: str) -> str:
        if os.path.isdir(path):
            return "dir:" + self.tree_digest(path)
        if os.path.isfile(path):
            return self.file_digest(path)
        return "missing"

    def resolve(self, spec: ServiceSpec, environ: Mapping[str, str] | None = None) -> Resolved:
        source: Mapping[str, str] = os.environ if environ is None else environ
        got = _Resolving()
        for path in spec.envFiles:
            self._env_file(path, got)
        for key, value in spec.env.items():
            if isinstance(value, EnvFrom):
                self._env_from(key, value, source, got)
            else:
                got.env[key] = value
        for vol in spec.volumes:
            m = units.parse_volume(vol)
            if m.kind == "bind":
                got.files[m.source] = self.path_digest(m.source)
        config_hash = ""
        if got.files:
            config_hash = hashlib.sha256(repr(sorted(got.files.items())).encode()).hexdigest()[:16]
        build_hash, build_error = self._build_hash(spec)
        return Resolved(got.env, frozenset(got.secret), got.files, config_hash, build_hash, got.error or build_error)

    def _env_file(self, path: str, got: _Resolving) -> None:
        """An env file's variables (all secret) and its digest; a problem is the error."""
        try:
            got.files[path] = self.file_digest(path)
            values = read_env_file(path)
            got.env.update(values)
            got.secret.update(values)
        except OSError as exc:
            got.error = f"env file {path} cannot be read: {exc.strerror}"
        except ValueError as exc:
            got.error = f"env file {path}: {exc}"

    def _env_from(self, key: str, value: EnvFrom, source: Mapping[str, str], got: _Resolving) -> None:
        """A ``valueFrom`` env value (secret): a file's text, a stored secret, or a variable of
        the controller's environment (its digest stands for it in the config hash)."""
        src = value.valueFrom
        got.secret.add(key)
        if src.file is not None:
            try:
                got.files[src.file] = self.file_digest(src.file)
                got.env[key] = _read_text(src.file).rstrip("\n")
            except OSError as exc:
                got.error = f"secret file {src.file} for env {key} cannot be read: {exc.strerror}"
        elif src.secret is not None:  # stored with the spec, already part of the spec hash
            got.env[key] = src.secret
        else:
            assert src.env is not None
            if src.env not in source:
                got.error = f"env {key}: variable {src.env} is not set in the controller's environment"
            else:
                got.env[key] = source[src.env]
                got.files[f"env:{src.env}"] = hashlib.sha256(got.env[key].encode()).hexdigest()[:12]

    def _build_hash(self, spec: ServiceSpec) -> tuple[str, str]:
        """(the build's hash, the error when its context is not a directory); ('', '') without a build."""
        b = spec.build
        if b is None:
            return "", ""
        meta = repr((b.dockerfile, sorted(b.args.items()), b.target)) + render_host.build_meta(b, spec.platform)
        if b.remote:  # the engine fetches it: its URL (with #ref) stands for its content
            return hashlib.sha256(("remote:" + b.context + meta).encode()).hexdigest()[:16], ""
        if not os.path.isdir(b.context):
            return "", f"build context {b.context} is not a directory"
        return hashlib.sha256((self.tree_digest(b.context) + meta).encode()).hexdigest()[:16], ""


@dataclass
class _Resolving:
    """What ``RefCache.resolve`` gathers: env values, the secret keys, file digests, and the
    last problem met (``error``)."""

    env: dict[str, str] = field(default_factory=dict)
    secret: set[str] = field(default_factory=set)
    files: dict[str, str] = field(default_factory=dict)
    error: str = ""


def _read_text(path: str) -> str:
    with open(path, "rb") as fh:
        return fh.read(MAX_FILE_BYTES).decode("utf-8", "replace")


def read_env_file(path: str) -> dict[str, str]:
    """An env file's variables, with compose's dotenv rules (the same parser the compose
    loader uses: ``crd_like.interpolate.parse_env_file``). ``${VAR}`` refers to keys
    defined earlier in the file only, never to the controller's own environment, so the
    values do not depend on where the controller runs. Raises OSError or ValueError."""
    with open(path, "rb") as fh:
        raw = fh.read(MAX_FILE_BYTES)
    return parse_env_file(raw, path)


def parse_env_file(raw: bytes, name: str = "env file") -> dict[str, str]:
    """Pure: dotenv bytes -> variables (compose's semantics). Raises ValueError with the
    problems' lines (never the values)."""
    from crd_like.errors import InvalidSpec
    from crd_like.interpolate import parse_env_file as parse

    try:
        return parse(raw, name, {})
    except InvalidSpec as exc:
        raise ValueError("; ".join(f"line {i.line}: {i.message}" for i in exc.issues)) from None


def redact(value: Any) -> str:
    """How a secret is shown: never the value, a short hash so changes stay visible."""
    return f"<redacted sha256:{hashlib.sha256(str(value).encode()).hexdigest()[:8]}>"
