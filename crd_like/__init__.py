"""crd_like: the resource API of reconcile — kinds, validation, defaulting, hashing.

Pure: no I/O, no Docker, no SQL. Must not import ``store`` or ``controller``.

The names below load lazily (PEP 562): ``from crd_like.errors import InvalidSpec`` or
``from crd_like.units import ...`` must not build the pydantic models, which a CLI read verb
never needs (``python -X importtime -m controller.cli status``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from crd_like.errors import InvalidSpec, Issue
    from crd_like.hashing import changed_fields, container_hash, spec_hash
    from crd_like.formats import LoadOptions, load_any
    from crd_like.models import API_VERSION, Service, ServiceSpec

_WHERE = {
    "InvalidSpec": "crd_like.errors", "Issue": "crd_like.errors",
    "changed_fields": "crd_like.hashing", "container_hash": "crd_like.hashing", "spec_hash": "crd_like.hashing",
    "LoadOptions": "crd_like.formats", "load_any": "crd_like.formats",
    "API_VERSION": "crd_like.models", "Service": "crd_like.models", "ServiceSpec": "crd_like.models",
}

__all__ = [
    "API_VERSION", "InvalidSpec", "Issue", "LoadOptions", "Service", "ServiceSpec",
    "changed_fields", "container_hash", "load_any", "spec_hash",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'crd_like' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
