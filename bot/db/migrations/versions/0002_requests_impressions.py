"""What each listener asked for and which tracks they were shown.

Revision ID: 0002
Revises: 0001
Create Date: 2025-01-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# SQLite autoincrements only a column declared exactly INTEGER PRIMARY KEY.
ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "requests",
        sa.Column("id", ROW_ID, autoincrement=True, nullable=False),
        sa.Column("listener_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("track_id", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["listener_id"], ["listeners.id"], name="fk_requests_listener_id_listeners", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_requests"),
    )
    op.create_index("ix_requests_listener_id_created_at", "requests", ["listener_id", "created_at"])
    op.create_table(
        "impressions",
        sa.Column("id", ROW_ID, autoincrement=True, nullable=False),
        sa.Column("listener_id", sa.BigInteger(), nullable=False),
        sa.Column("track_id", sa.String(length=255), nullable=False),
        sa.Column("shown_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["listener_id"], ["listeners.id"], name="fk_impressions_listener_id_listeners", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_impressions"),
    )
    op.create_index("ix_impressions_listener_id_shown_at", "impressions", ["listener_id", "shown_at"])


def downgrade() -> None:
    op.drop_index("ix_impressions_listener_id_shown_at", table_name="impressions")
    op.drop_table("impressions")
    op.drop_index("ix_requests_listener_id_created_at", table_name="requests")
    op.drop_table("requests")
