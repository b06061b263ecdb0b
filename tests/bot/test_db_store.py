"""RatingStore's behaviour method by method on planted ratings: SQLite, and PostgreSQL when TEST_POSTGRES_URL is set."""

from __future__ import annotations

import csv
import io
import os
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from bot.db import Rated, RatingStore, Request, StoreConfig, StoreError

POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "")
ALICE, BOB = 111_111_111_111, 222  # Telegram ids exceed 2**31
TABLES = {
    "ratings": "listener_id",
    "requests": "listener_id",
    "impressions": "listener_id",
    "group_members": "listener_id",
    "listeners": "id",
}


class Clock:
    """A fake clock that moves one second per reading, so that "newest first" has a planted answer."""

    def __init__(self) -> None:
        self.now = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgresql", marks=pytest.mark.skipif(not POSTGRES_URL, reason="TEST_POSTGRES_URL is not set")),
    ]
)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'listeners.db'}"
    engine = create_engine(POSTGRES_URL)
    with engine.begin() as connection:  # every test starts from an empty database
        connection.execute(text("DROP TABLE IF EXISTS impressions, requests, ratings, listeners, alembic_version"))
    engine.dispose()
    return POSTGRES_URL


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(url: str, clock: Clock) -> Iterator[RatingStore]:
    with RatingStore(url, clock=clock) as opened:
        yield opened


def rows_of(url: str, listener_id: int) -> dict[str, int]:
    """Rows per table that mention the listener, counted with plain SQL behind the store's back."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return {
                table: connection.execute(
                    text(f"SELECT COUNT(*) FROM {table} WHERE {column} = :id"), {"id": listener_id}
                ).scalar_one()
                for table, column in TABLES.items()
            }
    finally:
        engine.dispose()


def test_a_tap_likes_the_same_tap_undoes_the_other_tap_switches(store: RatingStore) -> None:
    assert store.rate(ALICE, "t1", 1, "forme") == 1
    assert store.ratings_of(ALICE) == {"t1": 1}
    assert store.rate(ALICE, "t1", 1, "forme") is None  # tapping like again removes it
    assert store.ratings_of(ALICE) == {}
    assert store.rate(ALICE, "t1", 1, "forme") == 1
    assert store.rate(ALICE, "t1", -1, "similar:t9") == -1  # like -> dislike replaces, one rating per track
    assert store.ratings_of(ALICE) == {"t1": -1}
    assert store.dislikes_of(ALICE) == ["t1"]
    assert store.count_likes(ALICE) == 0
    assert store.counts() == (1, 1)


def test_rate_accepts_only_plus_or_minus_one(store: RatingStore) -> None:
    for wrong in (0, 2, -2):
        with pytest.raises(ValueError, match="like"):
            store.rate(ALICE, "t1", wrong, "forme")
    assert store.counts() == (0, 0)


def test_ratings_of_selected_tracks_only_and_only_the_listeners_own(store: RatingStore) -> None:
    store.rate(ALICE, "t1", 1, "forme")
    store.rate(ALICE, "t2", -1, "forme")
    store.rate(BOB, "t3", 1, "forme")
    assert store.ratings_of(ALICE, ["t2", "t3", "never-rated"]) == {"t2": -1}
    assert store.ratings_of(ALICE, []) == {}
    # More ids than one IN (...) chunk still finds the rated ones.
    many = [f"x{i}" for i in range(1200)] + ["t1"]
    assert store.ratings_of(ALICE, many) == {"t1": 1}
    assert store.ratings_of(BOB) == {"t3": 1}


def test_likes_are_newest_first_paged_and_counted(store: RatingStore, clock: Clock) -> None:
    for track_id in ("old", "middle", "new"):
        store.rate(ALICE, track_id, 1, f"similar:{track_id}")
    store.rate(ALICE, "hated", -1, "forme")
    store.rate(ALICE, "old", -1, "forme")  # switched to a dislike: no longer a like
    store.rate(ALICE, "old", 1, "mix")  # and back: now the newest like, from the latest answer
    likes = store.likes_of(ALICE, limit=10)
    assert [like.track_id for like in likes] == ["old", "new", "middle"]
    assert likes[0] == Rated("old", 1, clock.now, "mix")
    assert likes[0].rated_at.tzinfo is not None
    assert [like.track_id for like in store.likes_of(ALICE, limit=2, offset=1)] == ["new", "middle"]
    assert store.count_likes(ALICE) == 3
    assert store.count_likes(BOB) == 0
    assert store.likes_of(BOB, limit=5) == []


def test_dislikes_are_newest_first(store: RatingStore) -> None:
    for track_id in ("d1", "d2", "d3"):
        store.rate(ALICE, track_id, -1, "forme")
    store.rate(ALICE, "liked", 1, "forme")
    assert store.dislikes_of(ALICE) == ["d3", "d2", "d1"]


def test_history_is_newest_first_and_limited(store: RatingStore, clock: Clock) -> None:
    store.record_request(ALICE, "song", "t1")
    store.record_request(ALICE, "forme", None)
    store.record_request(BOB, "mix", "t9")
    store.record_request(ALICE, "mix", "t2")
    assert store.history_of(ALICE) == [
        Request("mix", "t2", clock.now),
        Request("forme", None, clock.now - timedelta(seconds=2)),
        Request("song", "t1", clock.now - timedelta(seconds=3)),
    ]
    assert [r.kind for r in store.history_of(ALICE, limit=1)] == ["mix"]
    assert store.counts() == (2, 0)  # asking creates the listener, not a rating


def test_shown_since_returns_only_recent_impressions_of_that_listener(store: RatingStore, clock: Clock) -> None:
    store.record_impressions(ALICE, ["old1", "both"])
    clock.now += timedelta(days=2)
    cutoff = clock.now
    store.record_impressions(ALICE, ["new1", "both", "new1"])
    store.record_impressions(BOB, ["bobs"])
    store.record_impressions(ALICE, [])
    assert store.shown_since(ALICE, cutoff) == {"new1", "both"}
    assert store.shown_since(ALICE, cutoff - timedelta(days=3)) == {"old1", "both", "new1"}
    assert store.shown_since(ALICE, clock.now + timedelta(hours=1)) == set()
    assert store.prune_impressions(cutoff) == 2  # only the two old ones
    assert store.shown_since(ALICE, cutoff - timedelta(days=3)) == {"new1", "both"}
    assert store.shown_since(BOB, cutoff) == {"bobs"}


def test_naive_datetimes_are_refused_rather_than_guessed(store: RatingStore) -> None:
    with pytest.raises(ValueError, match="aware"):
        store.shown_since(ALICE, datetime(2025, 1, 1))
    with pytest.raises(ValueError, match="aware"):
        store.ratings_since(datetime(2025, 1, 1))


def test_forget_deletes_every_row_of_the_listener_and_keeps_the_others(store: RatingStore, url: str) -> None:
    for listener_id in (ALICE, BOB):
        store.rate(listener_id, "t1", 1, "forme")
        store.rate(listener_id, "t2", -1, "forme")
        store.record_request(listener_id, "song", "t1")
        store.record_impressions(listener_id, ["t1", "t2", "t3"])
        store.note_group_member(-100, listener_id)
    kept = {"ratings": 2, "requests": 1, "impressions": 3, "group_members": 1, "listeners": 1}
    assert rows_of(url, ALICE) == kept
    assert store.forget(ALICE) == 8
    assert rows_of(url, ALICE) == dict.fromkeys(TABLES, 0)
    assert rows_of(url, BOB) == kept
    assert store.ratings_of(BOB) == {"t1": 1, "t2": -1}
    assert store.forget(ALICE) == 0  # forgetting twice is harmless
    assert store.export_csv(ALICE).splitlines() == ["record,time,track_id,value,source,kind"]


def test_export_holds_the_listeners_rows_and_nobody_elses(store: RatingStore) -> None:
    store.rate(ALICE, "liked", 1, "similar:seed")
    store.rate(ALICE, "hated", -1, "forme")
    store.record_request(ALICE, "song", "liked")
    store.record_impressions(ALICE, ["liked"])
    store.rate(BOB, "bobs-song", 1, "bobs-source")
    store.record_request(BOB, "bobs-kind", "bobs-request")
    text_out = store.export_csv(ALICE)
    assert "bob" not in text_out
    rows = list(csv.DictReader(io.StringIO(text_out)))
    assert [(r["record"], r["track_id"], r["value"], r["source"], r["kind"]) for r in rows] == [
        ("listener", "", "", "", ""),
        ("rating", "liked", "1", "similar:seed", ""),
        ("rating", "hated", "-1", "forme", ""),
        ("request", "liked", "", "", "song"),
        ("impression", "liked", "", "", ""),
    ]
    assert all(datetime.fromisoformat(r["time"]).tzinfo is not None for r in rows)


def test_for_training_keeps_listeners_with_enough_likes(store: RatingStore) -> None:
    for track_id in ("a", "b", "c"):
        store.rate(ALICE, track_id, 1, "forme")
    store.rate(ALICE, "x", -1, "forme")
    store.rate(BOB, "a", 1, "forme")
    for track_id in ("x", "y", "z"):
        store.rate(BOB, track_id, -1, "forme")  # many ratings, but only one like
    store.rate(333, "only-dislike", -1, "forme")
    assert store.for_training(min_likes=3) == {str(ALICE): (["a", "b", "c"], ["x"])}
    assert store.for_training(min_likes=1) == {str(ALICE): (["a", "b", "c"], ["x"]), str(BOB): (["a"], ["x", "y", "z"])}
    assert store.for_training(min_likes=4) == {}


def test_counts_and_ratings_since(store: RatingStore, clock: Clock) -> None:
    assert store.counts() == (0, 0)
    store.rate(ALICE, "t1", 1, "forme")
    store.rate(BOB, "t1", -1, "forme")
    clock.now += timedelta(days=1)
    cutoff = clock.now
    store.rate(ALICE, "t2", 1, "forme")
    store.rate(ALICE, "t3", 1, "forme")
    store.rate(ALICE, "t3", 1, "forme")  # undone: not counted
    store.record_request(333, "song", None)  # a listener without ratings
    assert store.counts() == (3, 3)
    assert store.ratings_since(cutoff) == 1
    assert store.ratings_since(cutoff - timedelta(days=2)) == 3


def test_sqlite_connections_use_wal_foreign_keys_full_sync_and_a_busy_timeout(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "folder" / "listeners.db"  # a missing folder is created
    with RatingStore(f"sqlite:///{path}", StoreConfig(busy_timeout_s=2.5)) as store:
        store.rate(ALICE, "t1", 1, "forme")
        with store._engine.connect() as connection:
            pragma = {
                name: connection.exec_driver_sql(f"PRAGMA {name}").scalar_one()
                for name in ("journal_mode", "foreign_keys", "synchronous", "busy_timeout")
            }
    assert pragma == {"journal_mode": "wal", "foreign_keys": 1, "synchronous": 2, "busy_timeout": 2500}
    assert path.exists()


def test_an_in_memory_store_is_shared_by_all_threads() -> None:
    with RatingStore("sqlite://") as store:
        workers = [threading.Thread(target=store.rate, args=(n, "t1", 1, "forme")) for n in range(8)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        assert store.counts() == (8, 8)
        with pytest.raises(StoreError, match="server's own tools"):
            store.backup()


def test_first_taps_of_a_new_listener_from_many_threads_at_once(store: RatingStore) -> None:
    """Every thread finds no listener row and creates it; the losers of that race must retry, not fail."""
    start = threading.Barrier(16)
    errors: list[BaseException] = []

    def tap(n: int) -> None:
        start.wait()
        try:
            store.rate(ALICE, f"t{n}", 1, "forme")
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=tap, args=(n,)) for n in range(16)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert errors == []
    assert store.counts() == (1, 16)


def test_a_group_mixes_the_newest_likes_of_its_members_who_rated(store: RatingStore, url: str) -> None:
    group, other_group = -100, -200
    for track in ("a1", "a2", "a3"):
        store.rate(1, track, 1, "forme")
    store.rate(1, "a-bad", -1, "forme")
    store.rate(2, "b1", 1, "forme")
    store.rate(4, "elsewhere", 1, "forme")
    for member in (1, 2, 3):  # 3 never rated anything
        store.note_group_member(group, member)
    store.note_group_member(other_group, 4)
    store.note_group_member(group, 1)  # seen again: still one membership
    assert store.group_ratings(group, likes_each=2) == {1: (["a3", "a2"], ["a-bad"]), 2: (["b1"], [])}
    assert store.group_ratings(other_group, likes_each=2) == {4: (["elsewhere"], [])}
    assert "group" in {row.split(",")[0] for row in store.export_csv(1).splitlines()}
    store.forget(1)
    assert rows_of(url, 1)["group_members"] == 0
    assert store.group_ratings(group, likes_each=2) == {2: (["b1"], [])}
