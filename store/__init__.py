"""store: the desired state, statuses, audit events and lease, in SQL (SQLite by default).

The only package that imports SQLAlchemy (besides ``migrations/``). Must not import
``controller`` or ``docker``.

``store.records`` and ``store.errors`` are plain Python: importing them (or this package)
does not load SQLAlchemy. The names below load on first use (PEP 562): ``Store`` brings in
``store.repository`` and SQLAlchemy, so the planner, the executor and a CLI verb that never
opens a store stay lean.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from store.errors import StoreError
    from store.records import AppliedChange, Desired, Event, ResourceInput, Revision, Status
    from store.repository import Store

__all__ = ["AppliedChange", "Desired", "Event", "ResourceInput", "Revision", "Status", "Store", "StoreError"]

_WHERE = {"StoreError": "store.errors", "Store": "store.repository",
          **dict.fromkeys(("AppliedChange", "Desired", "Event", "ResourceInput", "Revision", "Status"), "store.records")}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'store' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
