"""Listeners and their current like or dislike per track.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "listeners",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_listeners"),
    )
    op.create_table(
        "ratings",
        sa.Column("listener_id", sa.BigInteger(), nullable=False),
        sa.Column("track_id", sa.String(length=255), nullable=False),
        sa.Column("value", sa.SmallInteger(), nullable=False),
        sa.Column("rated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(length=300), nullable=False),
        sa.CheckConstraint("value IN (-1, 1)", name="ck_ratings_value"),
        sa.ForeignKeyConstraint(
            ["listener_id"], ["listeners.id"], name="fk_ratings_listener_id_listeners", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("listener_id", "track_id", name="pk_ratings"),
    )
    op.create_index("ix_ratings_listener_id_rated_at", "ratings", ["listener_id", "rated_at"])
    op.create_index("ix_ratings_rated_at", "ratings", ["rated_at"])


def downgrade() -> None:
    op.drop_index("ix_ratings_rated_at", table_name="ratings")
    op.drop_index("ix_ratings_listener_id_rated_at", table_name="ratings")
    op.drop_table("ratings")
    op.drop_table("listeners")
