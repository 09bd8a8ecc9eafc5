"""How sources are loaded (``LoadOptions``): the options of ``formats.load_any`` and of
``compose.convert``, in a module of their own so that both can import them. No I/O."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from crd_like.errors import Issue

Format = Literal["auto", "native", "compose"]


@dataclass(frozen=True)
class LoadOptions:
    """How to read the sources.

    ``read_file``: called with an absolute, normalised path; returns the file's bytes and
    raises ``FileNotFoundError`` when it does not exist (any other ``OSError`` is
    reported with its message). Compose only: it reads the ``.env`` file beside the first
    compose file (a missing one is skipped), and checks that ``env_file:`` entries and
    secret / config files exist (a missing one is an error, a missing ``env_file`` with
    ``required: false`` is left out). Without a reader there is no ``.env``, files are
    not checked, and ``required: false`` env files are an error (they cannot be checked).
    """

    fmt: Format = "auto"
    project: str | None = None  # compose project name (-p); overrides COMPOSE_PROJECT_NAME and `name:`
    allow_unsupported: bool = False  # unsupported compose keys: a warning instead of an error
    environ: Mapping[str, str] = field(default_factory=dict)  # process environment, for compose interpolation
    warnings: list[str] = field(default_factory=list)  # filled with warnings while loading
    profiles: tuple[str, ...] = ()  # active compose profiles (none: COMPOSE_PROFILES from environ, if set)
    read_file: Callable[[str], bytes] | None = None
    project_dir: str | None = None  # compose --project-directory (absolute); default: the first file's directory
    env_files: tuple[str, ...] = ()  # compose --env-file (absolute); default: <project_dir>/.env
    notices: list[str] = field(default_factory=list)  # info lines: the restart notice, ignored dev-only keys
    # what compose accepts at `config` but fails on at `up` (a missing secret file, an unset
    # variable behind `environment:`): already warnings; whoever applies raises them (exit 2)
    deferred: list[Issue] = field(default_factory=list)


__all__ = ["Format", "LoadOptions"]
