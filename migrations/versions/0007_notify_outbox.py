"""notifications: the notifiers table (spec and delivery state) and the outbox

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""
import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notifiers",
        sa.Column("name", sa.String(63), primary_key=True),
        sa.Column("spec", sa.Text(), nullable=False),
        sa.Column("spec_hash", sa.String(32), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False, server_default=""),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("cursor", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.Float(), nullable=False, server_default="0"),
        sa.Column("last_delivery_at", sa.Float(), nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text(), nullable=False, server_default=""),
        sa.Column("last_error_at", sa.Float(), nullable=False, server_default="0"),
        sa.Column("damping", sa.Text(), nullable=False, server_default="{}"),
    )
    op.create_table(
        "notify_outbox",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("ts", sa.Float(), nullable=False),
        sa.Column("service", sa.String(63), nullable=False, server_default=""),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False, server_default=""),
        sa.Column("detail", sa.Text(), nullable=False, server_default=""),
        sa.Column("audit_type", sa.String(32), nullable=False, server_default=""),
        # ids are never reused (SQLite's AUTOINCREMENT): cursors point into this table, and
        # pruned rows must not come back under an id a cursor has passed
        sqlite_autoincrement=True,
    )
    op.create_index("ix_notify_outbox_ts", "notify_outbox", ["ts"])


def downgrade() -> None:
    op.drop_index("ix_notify_outbox_ts", table_name="notify_outbox")
    op.drop_table("notify_outbox")
    op.drop_table("notifiers")
