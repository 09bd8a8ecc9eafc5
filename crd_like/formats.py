"""Input formats: native reconcile YAML, and (detected by shape) compose files.

``load_any`` is the single entry point the CLI uses. No I/O: sources arrive as
``(raw bytes, display name, base directory)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from crd_like.loader import load_resources

Format = Literal["auto", "native", "compose"]


@dataclass(frozen=True)
class LoadOptions:
    fmt: Format = "auto"
    project: str | None = None  # compose project name (-p)
    allow_unsupported: bool = False  # compose keys not supported yet: warn instead of error
    environ: dict[str, str] = field(default_factory=dict)  # for compose interpolation
    warnings: list[str] = field(default_factory=list)  # filled with warnings while loading


def load_any(sources: list[tuple[bytes, str, str]], opts: LoadOptions | None = None) -> list[Any]:
    """Validated resources from native files (compose support plugs in here)."""
    return load_resources(sources)
