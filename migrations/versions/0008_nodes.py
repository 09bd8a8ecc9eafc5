"""nodes: registered nodes, their leases (fencing tokens) and the replicas' assignments

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""
import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "nodes",
        sa.Column("name", sa.String(63), primary_key=True),
        sa.Column("labels", sa.Text(), nullable=False, server_default="{}"),
        sa.Column("engine_version", sa.String(64), nullable=False, server_default=""),
        sa.Column("cpus", sa.Float(), nullable=False, server_default="0"),
        sa.Column("memory", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("cordoned", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("draining", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("lost", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("registered_at", sa.Float(), nullable=False, server_default="0"),
        sa.Column("heartbeat_at", sa.Float(), nullable=False, server_default="0"),
    )
    op.create_table(
        "node_leases",
        sa.Column("node", sa.String(63), primary_key=True),
        sa.Column("holder", sa.String(128), nullable=False, server_default=""),
        sa.Column("token", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("acquired_at", sa.Float(), nullable=False, server_default="0"),
        sa.Column("expires_at", sa.Float(), nullable=False, server_default="0"),
    )
    op.create_table(
        "assignments",
        sa.Column("service", sa.String(63), primary_key=True),
        sa.Column("replica", sa.Integer(), primary_key=True),
        sa.Column("node", sa.String(63), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False, server_default=""),
        sa.Column("since", sa.Float(), nullable=False, server_default="0"),
    )
    op.create_index("ix_assignments_node", "assignments", ["node"])


def downgrade() -> None:
    op.drop_index("ix_assignments_node", table_name="assignments")
    op.drop_table("assignments")
    op.drop_table("node_leases")
    op.drop_table("nodes")
