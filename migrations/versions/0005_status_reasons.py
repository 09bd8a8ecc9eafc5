"""status reasons as data: statuses.reason, statuses.waiting_for, statuses.derived_generation

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""
import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("statuses") as batch:
        batch.add_column(sa.Column("reason", sa.String(32), nullable=False, server_default=""))
        batch.add_column(sa.Column("waiting_for", sa.Text(), nullable=False, server_default="{}"))
        batch.add_column(sa.Column("derived_generation", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("statuses") as batch:
        batch.drop_column("derived_generation")
        batch.drop_column("waiting_for")
        batch.drop_column("reason")
