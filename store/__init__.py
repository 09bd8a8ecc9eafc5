"""store: the desired state, statuses, audit events and lease, in SQL (SQLite by default).

The only package that imports SQLAlchemy (besides ``migrations/``). Must not import
``controller`` or ``docker``.
"""

from store.records import AppliedChange, Desired, Event, ResourceInput, Revision, Status
from store.repository import Store, StoreError

__all__ = ["AppliedChange", "Desired", "Event", "ResourceInput", "Revision", "Status", "Store", "StoreError"]
