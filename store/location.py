"""Where the store lives: ``--db`` / ``RECONCILE_DB`` (a file path or an SQLAlchemy URL),
default ``/var/lib/reconcile/reconcile.db`` for root and
``~/.local/state/reconcile/reconcile.db`` otherwise; and the schema head.

Plain Python (no SQLAlchemy): the CLI's fast paths (``controller.cli_fast``) and the
stdlib read path (``store.reader``) resolve the store with it. ``store.db`` re-exports it.
"""

from __future__ import annotations

import os

# The newest migration. Checked against Alembic's own view by tests/store; it lets a CLI
# call skip importing Alembic (a fifth of its start-up time) when the store is current.
HEAD = "0007"


def default_url() -> str:
    env = os.environ.get("RECONCILE_DB")
    if env:
        return to_url(env)
    if os.geteuid() == 0:
        return to_url("/var/lib/reconcile/reconcile.db")
    state = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return to_url(os.path.join(state, "reconcile", "reconcile.db"))


def to_url(location: str) -> str:
    """A path becomes a SQLite URL; anything with '://' is taken as an SQLAlchemy URL."""
    if "://" in location:
        return location
    return "sqlite:///" + os.path.abspath(os.path.expanduser(location))


def redact(url: str) -> str:
    """The URL as it may be shown: a password in it becomes ``***``
    (``postgresql+psycopg://reconcile:***@127.0.0.1:5432/reconcile``). Plain string work, so
    an error path never needs SQLAlchemy to say which store it could not open."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority, slash, tail = rest.partition("/")
    userinfo, at, host = authority.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    user = userinfo.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}{slash}{tail}"


def plain_sqlite_file(url: str) -> str | None:
    """The file of a plain ``sqlite:///ABSOLUTE/PATH`` URL (what ``to_url`` makes of a path),
    else None: anything else (a query string, another driver, a relative or in-memory
    database) is left to SQLAlchemy's own URL parsing (``store.db.sqlite_path``)."""
    prefix = "sqlite:////"
    if not url.startswith(prefix) or any(c in url for c in "?#%"):
        return None
    return url[len(prefix) - 1:]
