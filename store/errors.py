"""The store's error: the one exception the store raises at its boundary.

Imports neither SQLAlchemy nor anything heavy, so the CLI can name it in its error mapping
without loading the database layer (a verb that never opens the store never pays for it).
"""

from __future__ import annotations

import sys


class StoreError(Exception):
    """The store cannot be read or written (disk full, read-only, corrupt)."""

    @staticmethod
    def wraps(exc: BaseException) -> bool:
        """Is ``exc`` a database failure (SQLAlchemy's DBAPIError or sqlite3's own)?"""
        import sqlite3

        if isinstance(exc, sqlite3.Error):
            return True
        sa_exc = sys.modules.get("sqlalchemy.exc")  # not loaded: it cannot be one of its errors
        return sa_exc is not None and isinstance(exc, sa_exc.DBAPIError)

    @staticmethod
    def describe(exc: BaseException) -> str:
        """The database's own words, on one line (libpq's messages have several)."""
        orig = getattr(exc, "orig", None)
        return " ".join(line.strip() for line in str(orig or exc).splitlines() if line.strip())
