"""controller-run health checks: statuses.health_checked_by

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("statuses") as batch:
        batch.add_column(sa.Column("health_checked_by", sa.String(16), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("statuses") as batch:
        batch.drop_column("health_checked_by")
