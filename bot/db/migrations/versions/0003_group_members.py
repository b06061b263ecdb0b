"""Which listeners used the bot in which group chat (for /groupmix).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "group_members",
        sa.Column("chat_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("listener_id", sa.BigInteger(), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["listener_id"], ["listeners.id"], name="fk_group_members_listener_id_listeners", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("chat_id", "listener_id", name="pk_group_members"),
    )
    op.create_index("ix_group_members_listener_id", "group_members", ["listener_id"])


def downgrade() -> None:
    op.drop_index("ix_group_members_listener_id", table_name="group_members")
    op.drop_table("group_members")
