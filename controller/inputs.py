"""Which files a verb reads, as ``docker compose`` finds them: the one place every verb
that takes ``-f`` (apply, diff, convert, up) resolves its input files.

- ``-f FILE`` given: exactly those files, in order.
- else ``COMPOSE_FILE`` (paths separated by ``COMPOSE_PATH_SEPARATOR``, default ``:``;
  relative to the working directory);
- else discovery: in the working directory, then each parent in turn (as compose
  does), the first directory holding ``compose.yaml``, ``compose.yml``,
  ``docker-compose.yml`` or ``docker-compose.yaml`` (that precedence; when several exist
  the first is used, with a warning), plus its override file if one exists
  (``compose.override.yml``, ``compose.override.yaml``, ``docker-compose.override.yml``,
  ``docker-compose.override.yaml``: the first found).

Pure apart from looking at the file system through ``exists``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from crd_like import InvalidSpec, Issue

COMPOSE_NAMES = ("compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml")
OVERRIDE_NAMES = ("compose.override.yml", "compose.override.yaml", "docker-compose.override.yml",
                  "docker-compose.override.yaml")


@dataclass
class Found:
    files: list[str]
    warnings: list[str] = field(default_factory=list)


def input_files(files: tuple[str, ...] | list[str], environ: Mapping[str, str], cwd: str,
                exists: Callable[[str], bool] = os.path.isfile) -> Found:
    """The files to read. Raises InvalidSpec when nothing is given and nothing is found."""
    if files:
        return Found(list(files))
    env_files = environ.get("COMPOSE_FILE")
    if env_files:
        sep = environ.get("COMPOSE_PATH_SEPARATOR") or os.pathsep
        return Found([_shown(os.path.join(cwd, p)) for p in env_files.split(sep) if p])
    here = os.path.abspath(cwd)
    while True:
        out = _found_in(here, exists)
        if out is not None:
            return out
        parent = os.path.dirname(here)
        if parent == here:
            break
        here = parent
    raise InvalidSpec([Issue("-f", None, "", "no input file: pass -f FILE, set COMPOSE_FILE, or run in a directory "
                                             f"(or below one) holding {', '.join(COMPOSE_NAMES)}")])


def _found_in(here: str, exists: Callable[[str], bool]) -> Found | None:
    """The compose file in directory ``here`` (and its override file), or None."""
    found = [n for n in COMPOSE_NAMES if exists(os.path.join(here, n))]
    if not found:
        return None
    out = Found([_shown(os.path.join(here, found[0]))])
    if len(found) > 1:
        out.warnings.append(f"found several compose files in {here}: {', '.join(found)}; using {found[0]}")
    override = next((n for n in OVERRIDE_NAMES if exists(os.path.join(here, n))), None)
    if override is not None:
        out.files.append(_shown(os.path.join(here, override)))
    return out


def _shown(path: str) -> str:
    """Relative to the process's working directory when below it (shorter messages), else absolute."""
    path = os.path.abspath(path)
    rel = os.path.relpath(path)
    return rel if not rel.startswith("..") else path
