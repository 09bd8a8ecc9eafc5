"""restart requests: statuses.restart_requested_at / restart_reason

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("statuses") as batch:
        batch.add_column(sa.Column("restart_requested_at", sa.Float(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("restart_reason", sa.Text(), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("statuses") as batch:
        batch.drop_column("restart_reason")
        batch.drop_column("restart_requested_at")
