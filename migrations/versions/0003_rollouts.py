"""rollouts: statuses.rollout_from_generation / rollout_started_at

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("statuses") as batch:
        batch.add_column(sa.Column("rollout_from_generation", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("rollout_started_at", sa.Float(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("statuses") as batch:
        batch.drop_column("rollout_started_at")
        batch.drop_column("rollout_from_generation")
