"""Every database failure reaches the bot as one StoreError with a one-line message, and the store stays usable."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

import pytest

from bot.db import RatingStore, StoreConfig, StoreError


def test_a_corrupt_file_raises_store_error_not_a_driver_error(tmp_path: Path) -> None:
    path = tmp_path / "listeners.db"
    path.write_bytes(os.urandom(16 * 1024))
    with pytest.raises(StoreError, match="not a SQLite database") as caught:
        RatingStore(f"sqlite:///{path}")
    assert "\n" not in str(caught.value)
    assert isinstance(caught.value.__cause__, Exception)  # the original stays attached for the log


def test_a_lock_held_past_the_busy_timeout_fails_the_write_but_not_the_reads(tmp_path: Path) -> None:
    path = tmp_path / "listeners.db"
    with RatingStore(f"sqlite:///{path}", StoreConfig(busy_timeout_s=0.3)) as store:
        store.rate(1, "before", 1, "forme")
        locker = sqlite3.connect(path, isolation_level=None)
        try:
            locker.execute("BEGIN EXCLUSIVE")
            started = time.monotonic()
            with pytest.raises(StoreError, match="database is locked") as caught:
                store.rate(1, "during", 1, "forme")
            waited = time.monotonic() - started
            assert "\n" not in str(caught.value)
            assert 0.25 <= waited < 5  # it waited for the busy timeout, then gave up
            assert store.ratings_of(1) == {"before": 1}  # recommendations still read the likes
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        assert store.rate(1, "after", 1, "forme") == 1  # the store recovers once the lock is gone
        assert store.ratings_of(1) == {"before": 1, "after": 1}


def test_a_folder_that_cannot_be_created_raises_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the database folder should be")
    with pytest.raises(StoreError, match="could not open the database"):
        RatingStore(f"sqlite:///{blocker / 'listeners.db'}")


def test_an_unreachable_server_raises_store_error() -> None:
    # Either the driver is missing or nothing listens on port 1: both must arrive as StoreError.
    with pytest.raises(StoreError):
        RatingStore("postgresql://bot:secret@127.0.0.1:1/musicrec")


def test_the_password_of_a_server_url_never_reaches_the_message() -> None:
    with pytest.raises(StoreError) as caught:
        RatingStore("postgresql://bot:hunter2@127.0.0.1:1/musicrec")
    assert "hunter2" not in str(caught.value)
