"""config-change restarts: statuses.config_hash

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("statuses") as batch:
        batch.add_column(sa.Column("config_hash", sa.String(32), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("statuses") as batch:
        batch.drop_column("config_hash")
