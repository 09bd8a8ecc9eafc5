"""The store's public schema API (what `reconcile db upgrade|current` and `version` use)."""

from __future__ import annotations

from pathlib import Path

from store import Store


def test_schema_revision_upgrade_and_head(tmp_path: Path) -> None:
    store = Store.open(str(tmp_path / "s.db"), migrate=False)
    try:
        head = Store.schema_head()
        assert head is not None
        assert store.schema_revision() is None and store.schema_revision(quick=True) is None
        assert store.schema_upgrade() == (None, head)
        assert store.schema_revision() == head == store.schema_revision(quick=True)
        assert store.schema_upgrade() == (head, head)  # idempotent
    finally:
        store.close()
