"""store: the desired state, statuses, audit events and lease, in SQL (SQLite by default).

The only package that imports SQLAlchemy (besides ``migrations/``). Must not import
``controller`` or ``docker``.

``store.records`` and ``store.errors`` are plain Python: importing them (or this package)
does not load SQLAlchemy. ``Store`` loads ``store.repository`` (and SQLAlchemy) on first use
(PEP 562), so the planner, the executor and a CLI verb that never opens a store stay lean.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from store.errors import StoreError
from store.records import AppliedChange, Desired, Event, ResourceInput, Revision, Status

if TYPE_CHECKING:
    from store.repository import Store

__all__ = ["AppliedChange", "Desired", "Event", "ResourceInput", "Revision", "Status", "Store", "StoreError"]


def __getattr__(name: str) -> Any:
    if name == "Store":
        from store.repository import Store

        globals()["Store"] = Store
        return Store
    raise AttributeError(f"module 'store' has no attribute {name!r}")
