"""The listeners' tables as SQLAlchemy typed declarative models; the migrations in migrations/versions create them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, DateTime, ForeignKey, Index, Integer, MetaData, SmallInteger, String
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

# Named constraints, so that a later migration can drop or alter them by name on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
TRACK_ID_LENGTH = 255  # catalogue ids are 22 characters; room for other catalogues without a migration
SOURCE_LENGTH = 300  # "similar:<seed track id>" and the like
KIND_LENGTH = 32  # "song", "forme", "mix", ...

# Telegram user ids exceed 2**31; SQLite only autoincrements a column declared INTEGER PRIMARY KEY.
ListenerId = BigInteger
RowId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime on every backend: SQLite keeps naive UTC text, PostgreSQL a timestamptz."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"expected an aware datetime such as datetime.now(UTC), got naive {value!r}")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime}  # noqa: RUF012 (SQLAlchemy reads this class attribute)


class ListenerRow(Base):
    """A Telegram user who has rated, asked or been shown something; the id is Telegram's user id."""

    __tablename__ = "listeners"

    id: Mapped[int] = mapped_column(ListenerId, primary_key=True, autoincrement=False)
    created_at: Mapped[datetime]


class RatingRow(Base):
    """The current like (+1) or dislike (-1) of one listener for one track."""

    __tablename__ = "ratings"
    __table_args__ = (
        CheckConstraint("value IN (-1, 1)", name="value"),
        Index("ix_ratings_listener_id_rated_at", "listener_id", "rated_at"),
    )

    listener_id: Mapped[int] = mapped_column(
        ListenerId, ForeignKey("listeners.id", ondelete="CASCADE"), primary_key=True
    )
    track_id: Mapped[str] = mapped_column(String(TRACK_ID_LENGTH), primary_key=True)
    value: Mapped[int] = mapped_column(SmallInteger)
    rated_at: Mapped[datetime] = mapped_column(index=True)
    source: Mapped[str] = mapped_column(String(SOURCE_LENGTH))


class RequestRow(Base):
    """One question a listener asked: its kind and the song it resolved to, if any."""

    __tablename__ = "requests"
    __table_args__ = (Index("ix_requests_listener_id_created_at", "listener_id", "created_at"),)

    id: Mapped[int] = mapped_column(RowId, primary_key=True, autoincrement=True)
    listener_id: Mapped[int] = mapped_column(ListenerId, ForeignKey("listeners.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(KIND_LENGTH))
    track_id: Mapped[str | None] = mapped_column(String(TRACK_ID_LENGTH))
    created_at: Mapped[datetime]


class ImpressionRow(Base):
    """One track shown to a listener in an answer, so that recently shown songs can be ranked down."""

    __tablename__ = "impressions"
    __table_args__ = (Index("ix_impressions_listener_id_shown_at", "listener_id", "shown_at"),)

    id: Mapped[int] = mapped_column(RowId, primary_key=True, autoincrement=True)
    listener_id: Mapped[int] = mapped_column(ListenerId, ForeignKey("listeners.id", ondelete="CASCADE"))
    track_id: Mapped[str] = mapped_column(String(TRACK_ID_LENGTH))
    shown_at: Mapped[datetime]


class GroupMemberRow(Base):
    """A listener who used the bot in a group chat: whose likes /groupmix mixes there."""

    __tablename__ = "group_members"

    chat_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    listener_id: Mapped[int] = mapped_column(
        ListenerId, ForeignKey("listeners.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    seen_at: Mapped[datetime]
