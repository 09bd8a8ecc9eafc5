"""Alembic migrations of the store. ``store.db`` runs them to head when a store opens."""
