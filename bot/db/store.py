"""RatingStore: everything the bot keeps about listeners (ratings, requests, shown tracks) behind intention-named
methods. Thread-safe: each call opens its own session from a pooled engine and commits before it returns."""

from __future__ import annotations

import contextlib
import csv
import io
import os
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import CursorResult, case, delete, func, insert, make_url, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.db.engine import StoreConfig, is_sqlite, make_engine, migrate, sqlite_file, writer
from bot.db.errors import StoreError, guard
from bot.db.models import GroupMemberRow, ImpressionRow, ListenerRow, RatingRow, RequestRow

T = TypeVar("T")
LIKE, DISLIKE = 1, -1
_RACE_RETRIES = 3  # two first taps at once on PostgreSQL both insert; the loser retries and sees the winner's row
_IN_CHUNK = 500  # stays far below every backend's limit on bound parameters in one IN (...)
_EXPORT_HEADER = ("record", "time", "track_id", "value", "source", "kind")


@dataclass(frozen=True)
class Rated:
    """A listener's current rating of one track."""

    track_id: str
    value: int  # +1 like, -1 dislike
    rated_at: datetime  # aware, UTC
    source: str  # which answer the tap came from, e.g. "similar:<seed track id>" or "forme"


@dataclass(frozen=True)
class Request:
    """One question a listener asked."""

    kind: str  # "song", "forme", "mix", ...
    track_id: str | None  # the song it resolved to, if any
    created_at: datetime  # aware, UTC


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _aware(when: datetime) -> datetime:
    if when.tzinfo is None:
        raise ValueError(f"expected an aware datetime such as datetime.now(UTC) - timedelta(days=7), got {when!r}")
    return when


class RatingStore:
    """The listeners' database. Every method commits before returning and raises StoreError on any failure."""

    def __init__(self, url: str, config: StoreConfig | None = None, *, clock: Callable[[], datetime] = _utcnow) -> None:
        self.config = config or StoreConfig()
        self._clock = clock
        with guard("open the database", "the given URL"):
            self._url = make_url(url)
        self._where = self._url.render_as_string(hide_password=True)
        with guard("open the database", self._where):
            self._engine = make_engine(self._url, self.config)
        self._writer = writer(self._engine)
        self._file = sqlite_file(self._url)
        # SQLite takes one writer at a time anyway: queueing this process's writers on a lock wakes each as soon as
        # the previous commits, where SQLite's busy handler would poll with growing sleeps. An in-memory database
        # has a single shared connection, so reads queue as well.
        self._write_lock = threading.Lock() if is_sqlite(self._url) else None
        self._read_lock = self._write_lock if is_sqlite(self._url) and self._file is None else None
        try:
            with guard("migrate the database", self._where):
                migrate(self._engine)
        except StoreError:
            self._engine.dispose()
            raise

    @classmethod
    def open(cls, url: str, config: StoreConfig | None = None) -> RatingStore:
        """Connect to `url` and migrate its schema to the newest revision."""
        return cls(url, config)

    def close(self) -> None:
        """Close the pooled connections; the store must not be used afterwards."""
        self._engine.dispose()

    def __enter__(self) -> RatingStore:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- ratings -------------------------------------------------------------------------------------------------

    def rate(self, listener_id: int, track_id: str, value: int, source: str) -> int | None:
        """Like (+1) or dislike (-1) a track; the same tap again removes the rating and returns None."""
        if value not in (LIKE, DISLIKE):
            raise ValueError(f"value must be +1 (like) or -1 (dislike), got {value!r}")

        def work(session: Session) -> int | None:
            now = self._clock()
            self._ensure_listener(session, listener_id, now)
            row = session.get(RatingRow, (listener_id, track_id), with_for_update=True)
            if row is not None and row.value == value:
                session.delete(row)
                return None
            if row is None:
                session.add(
                    RatingRow(listener_id=listener_id, track_id=track_id, value=value, rated_at=now, source=source)
                )
            else:
                row.value, row.rated_at, row.source = value, now, source
            return value

        return self._write("save the rating", work)

    def ratings_of(self, listener_id: int, track_ids: Sequence[str] | None = None) -> dict[str, int]:
        """Current values (+1/-1) by track id: all of the listener's, or only for `track_ids`."""
        query = select(RatingRow.track_id, RatingRow.value).where(RatingRow.listener_id == listener_id)
        with self._read("read ratings") as session:
            if track_ids is None:
                return {track_id: value for track_id, value in session.execute(query)}
            found: dict[str, int] = {}
            wanted = list(dict.fromkeys(track_ids))
            for start in range(0, len(wanted), _IN_CHUNK):
                chunk = wanted[start : start + _IN_CHUNK]
                rows = session.execute(query.where(RatingRow.track_id.in_(chunk)))
                found.update({track_id: value for track_id, value in rows})
            return found

    def likes_of(self, listener_id: int, limit: int, offset: int = 0) -> list[Rated]:
        """The listener's likes, newest first, one page of at most `limit`."""
        if limit < 0 or offset < 0:
            raise ValueError(f"limit and offset must be >= 0, got {limit} and {offset}")
        query = (
            select(RatingRow)
            .where(RatingRow.listener_id == listener_id, RatingRow.value == LIKE)
            .order_by(RatingRow.rated_at.desc(), RatingRow.track_id)
            .limit(limit)
            .offset(offset)
        )
        with self._read("read likes") as session:
            return [Rated(r.track_id, r.value, r.rated_at, r.source) for r in session.scalars(query)]

    def count_likes(self, listener_id: int) -> int:
        """How many tracks the listener likes."""
        query = select(func.count()).where(RatingRow.listener_id == listener_id, RatingRow.value == LIKE)
        with self._read("count likes") as session:
            return session.scalar(query) or 0

    def dislikes_of(self, listener_id: int) -> list[str]:
        """Track ids the listener dislikes, newest first."""
        query = (
            select(RatingRow.track_id)
            .where(RatingRow.listener_id == listener_id, RatingRow.value == DISLIKE)
            .order_by(RatingRow.rated_at.desc(), RatingRow.track_id)
        )
        with self._read("read dislikes") as session:
            return list(session.scalars(query))

    # -- requests and impressions ----------------------------------------------------------------------------------

    def record_request(self, listener_id: int, kind: str, track_id: str | None = None) -> None:
        """Remember that the listener asked for `kind`, resolved to `track_id` if there was one."""

        def work(session: Session) -> None:
            now = self._clock()
            self._ensure_listener(session, listener_id, now)
            session.add(RequestRow(listener_id=listener_id, kind=kind, track_id=track_id, created_at=now))

        self._write("save the request", work)

    def history_of(self, listener_id: int, limit: int = 20) -> list[Request]:
        """The listener's latest requests, newest first."""
        query = (
            select(RequestRow)
            .where(RequestRow.listener_id == listener_id)
            .order_by(RequestRow.created_at.desc(), RequestRow.id.desc())
            .limit(limit)
        )
        with self._read("read the history") as session:
            return [Request(r.kind, r.track_id, r.created_at) for r in session.scalars(query)]

    def record_impressions(self, listener_id: int, track_ids: Iterable[str]) -> None:
        """Remember that these tracks were just shown to the listener (duplicates count once)."""
        shown = list(dict.fromkeys(track_ids))
        if not shown:
            return

        def work(session: Session) -> None:
            now = self._clock()
            self._ensure_listener(session, listener_id, now)
            rows = [{"listener_id": listener_id, "track_id": t, "shown_at": now} for t in shown]
            session.execute(insert(ImpressionRow), rows)

        self._write("save the shown tracks", work)

    def shown_since(self, listener_id: int, since: datetime) -> set[str]:
        """Track ids shown to the listener at or after `since` (an aware datetime)."""
        query = select(ImpressionRow.track_id).where(
            ImpressionRow.listener_id == listener_id, ImpressionRow.shown_at >= _aware(since)
        )
        with self._read("read the shown tracks") as session:
            return set(session.scalars(query))

    def prune_impressions(self, before: datetime) -> int:
        """Delete every listener's impressions older than `before`; returns how many went (call it daily)."""
        query = delete(ImpressionRow).where(ImpressionRow.shown_at < _aware(before))
        return self._write("prune the shown tracks", lambda session: _rowcount(session.execute(query)))

    # -- a listener's own data -------------------------------------------------------------------------------------

    def forget(self, listener_id: int) -> int:
        """Delete everything about the listener from every table; returns the number of rows deleted."""

        def work(session: Session) -> int:
            deleted = 0
            for model in (GroupMemberRow, ImpressionRow, RequestRow, RatingRow):
                result = session.execute(delete(model).where(model.listener_id == listener_id))
                deleted += _rowcount(result)
            result = session.execute(delete(ListenerRow).where(ListenerRow.id == listener_id))
            return deleted + _rowcount(result)

        return self._write("forget the listener", work)

    def export_csv(self, listener_id: int) -> str:
        """CSV of everything kept about the listener: one row per record (listener, rating, request, impression)."""
        out = io.StringIO()
        table = csv.writer(out)
        table.writerow(_EXPORT_HEADER)
        with self._read("export the listener's data") as session:
            listener = session.get(ListenerRow, listener_id)
            if listener is not None:
                table.writerow(("listener", listener.created_at.isoformat(), "", "", "", ""))
            ratings = select(RatingRow).where(RatingRow.listener_id == listener_id).order_by(RatingRow.rated_at)
            for r in session.scalars(ratings):
                table.writerow(("rating", r.rated_at.isoformat(), r.track_id, r.value, r.source, ""))
            requests = select(RequestRow).where(RequestRow.listener_id == listener_id).order_by(RequestRow.id)
            for q in session.scalars(requests):
                table.writerow(("request", q.created_at.isoformat(), q.track_id or "", "", "", q.kind))
            shown = select(ImpressionRow).where(ImpressionRow.listener_id == listener_id).order_by(ImpressionRow.id)
            for i in session.scalars(shown):
                table.writerow(("impression", i.shown_at.isoformat(), i.track_id, "", "", ""))
            groups = select(GroupMemberRow).where(GroupMemberRow.listener_id == listener_id)
            for g in session.scalars(groups):
                table.writerow(("group", g.seen_at.isoformat(), "", "", str(g.chat_id), ""))
        return out.getvalue()

    # -- groups --------------------------------------------------------------------------------------------------------

    def note_group_member(self, chat_id: int, listener_id: int) -> None:
        """Remember that the listener used the bot in this group chat (their likes then join its /groupmix)."""

        def work(session: Session) -> None:
            now = self._clock()
            self._ensure_listener(session, listener_id, now)
            row = session.get(GroupMemberRow, (chat_id, listener_id))
            if row is None:
                session.add(GroupMemberRow(chat_id=chat_id, listener_id=listener_id, seen_at=now))
            else:
                row.seen_at = now

        self._write("remember a group member", work)

    def group_ratings(self, chat_id: int, likes_each: int) -> dict[int, tuple[list[str], list[str]]]:
        """Members of the group chat who rated songs -> (their newest `likes_each` likes, their dislikes)."""
        members = select(GroupMemberRow.listener_id).where(GroupMemberRow.chat_id == chat_id)
        query = (
            select(RatingRow.listener_id, RatingRow.track_id, RatingRow.value)
            .where(RatingRow.listener_id.in_(members))
            .order_by(RatingRow.listener_id, RatingRow.rated_at.desc())
        )
        found: dict[int, tuple[list[str], list[str]]] = {}
        with self._read("read a group's ratings") as session:
            for listener_id, track_id, value in session.execute(query):
                liked, disliked = found.setdefault(listener_id, ([], []))
                if value != LIKE:
                    disliked.append(track_id)
                elif len(liked) < likes_each:
                    liked.append(track_id)
        return found

    # -- the whole audience ------------------------------------------------------------------------------------------

    def counts(self) -> tuple[int, int]:
        """(listeners, ratings) in the database."""
        with self._read("count listeners and ratings") as session:
            listeners = session.scalar(select(func.count()).select_from(ListenerRow)) or 0
            ratings = session.scalar(select(func.count()).select_from(RatingRow)) or 0
            return listeners, ratings

    def ratings_since(self, when: datetime) -> int:
        """How many current ratings were given at or after `when` (an aware datetime)."""
        query = select(func.count()).where(RatingRow.rated_at >= _aware(when))
        with self._read("count recent ratings") as session:
            return session.scalar(query) or 0

    def for_training(self, min_likes: int) -> dict[str, tuple[list[str], list[str]]]:
        """Listener id (as str) -> (liked, disliked track ids, oldest first) for listeners with >= min_likes likes."""
        likes = func.sum(case((RatingRow.value == LIKE, 1), else_=0))
        qualified = select(RatingRow.listener_id).group_by(RatingRow.listener_id).having(likes >= min_likes)
        query = (
            select(RatingRow.listener_id, RatingRow.track_id, RatingRow.value)
            .where(RatingRow.listener_id.in_(qualified))
            .order_by(RatingRow.listener_id, RatingRow.rated_at, RatingRow.track_id)
        )
        found: dict[str, tuple[list[str], list[str]]] = {}
        with self._read("read ratings for training") as session:
            for listener_id, track_id, value in session.execute(query):
                liked, disliked = found.setdefault(str(listener_id), ([], []))
                (liked if value == LIKE else disliked).append(track_id)
        return found

    def backup(self, path: str | os.PathLike[str] | None = None) -> Path:
        """A consistent copy of the SQLite file (default: beside it, timestamped) while others keep writing."""
        if self._file is None:
            raise StoreError(
                f"backup() copies SQLite database files; back up {self._where} with the server's own tools "
                "(e.g. pg_dump)"
            )
        stamp = self._clock().astimezone(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        target = Path(path) if path is not None else self._file.with_name(f"{self._file.stem}-{stamp}.backup.db")
        partial = target.with_name(f".{target.name}.{uuid.uuid4().hex}.partial")
        with guard("back up the database", f"{target}"):
            target.parent.mkdir(parents=True, exist_ok=True)
            source = self._engine.raw_connection()
            try:
                driver = source.driver_connection
                assert isinstance(driver, sqlite3.Connection), "a SQLite URL gives sqlite3 connections"
                copy = sqlite3.connect(partial)
                try:
                    # One step (pages=-1) reads one snapshot; in WAL mode writers go on meanwhile.
                    driver.backup(copy, pages=-1)
                finally:
                    copy.close()
                os.replace(partial, target)  # a half-written copy never carries the final name
            finally:
                source.close()
                partial.unlink(missing_ok=True)
        return target

    # -- plumbing ----------------------------------------------------------------------------------------------------

    @staticmethod
    def _ensure_listener(session: Session, listener_id: int, now: datetime) -> None:
        if session.get(ListenerRow, listener_id) is None:
            session.add(ListenerRow(id=listener_id, created_at=now))
            session.flush()

    def _write(self, action: str, work: Callable[[Session], T]) -> T:
        """Run `work` in one write transaction and commit, retrying a lost race on a first insert."""
        with guard(action, self._where), self._locked(self._write_lock, action):
            attempt = 0
            while True:
                attempt += 1
                try:
                    with Session(self._writer, expire_on_commit=False) as session, session.begin():
                        return work(session)
                except IntegrityError:
                    if attempt >= _RACE_RETRIES:
                        raise

    @contextlib.contextmanager
    def _read(self, action: str) -> Iterator[Session]:
        """A read-only session on one consistent snapshot."""
        with (
            guard(action, self._where),
            self._locked(self._read_lock, action),
            Session(self._engine) as session,
            session.begin(),
        ):
            yield session

    @contextlib.contextmanager
    def _locked(self, lock: threading.Lock | None, action: str) -> Iterator[None]:
        if lock is None:
            yield
            return
        if not lock.acquire(timeout=self.config.busy_timeout_s):
            raise StoreError(
                f"could not {action} ({self._where}): still waiting for other writers after "
                f"{self.config.busy_timeout_s:g} s; retry shortly"
            )
        try:
            yield
        finally:
            lock.release()


def _rowcount(result: Any) -> int:
    return result.rowcount if isinstance(result, CursorResult) else 0
