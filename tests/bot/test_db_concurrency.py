"""The SQLite file under load: 50 writers at once, a kill -9 right after a commit, a backup while writing."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

from bot.db import RatingStore

ROOT = Path(__file__).resolve().parents[2]
THREADS, SONGS = 50, 20


def test_50_threads_rating_20_songs_each_at_once_all_land(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'listeners.db'}"
    start = threading.Barrier(THREADS)
    errors: list[BaseException] = []

    def listener(n: int) -> None:
        start.wait()  # all 50 begin together
        try:
            for song in range(SONGS):
                store.rate(1000 + n, f"song{song:02d}", 1 if (n + song) % 2 else -1, f"similar:{n}")
        except BaseException as exc:
            errors.append(exc)

    with RatingStore(url) as store:  # the defaults: no special busy timeout for the test
        workers = [threading.Thread(target=listener, args=(n,)) for n in range(THREADS)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        assert errors == []
        assert store.counts() == (THREADS, THREADS * SONGS)
        for n in (0, 17, THREADS - 1):
            expected = {f"song{song:02d}": 1 if (n + song) % 2 else -1 for song in range(SONGS)}
            assert store.ratings_of(1000 + n) == expected


KILLED_WRITER = """
import sys, time
from bot.db import RatingStore
store = RatingStore(sys.argv[1])
store.rate(7, "survives", 1, "forme")
store.record_request(7, "song", "survives")
print("committed", flush=True)
time.sleep(60)
"""


def test_a_rating_committed_just_before_kill_9_survives(tmp_path: Path) -> None:
    path = tmp_path / "listeners.db"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    writer = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, f"sqlite:///{path}"], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert writer.stdout is not None
        assert writer.stdout.readline().strip() == "committed"
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=30)
    assert writer.returncode == -signal.SIGKILL
    # The commit sits in the write-ahead log, not yet in the main file: reopening must replay it.
    assert path.with_name("listeners.db-wal").stat().st_size > 0
    with RatingStore(f"sqlite:///{path}") as store:
        assert store.ratings_of(7) == {"survives": 1}
        assert [r.track_id for r in store.history_of(7)] == ["survives"]


def test_backup_is_a_consistent_copy_while_another_thread_keeps_writing(tmp_path: Path) -> None:
    stop = threading.Event()
    errors: list[BaseException] = []
    written: list[str] = []

    def keep_writing() -> None:
        try:
            while not stop.is_set():
                track_id = f"during{len(written)}"
                store.rate(2, track_id, 1, "forme")
                written.append(track_id)
        except BaseException as exc:
            errors.append(exc)

    with RatingStore(f"sqlite:///{tmp_path / 'listeners.db'}") as store:
        planted = {f"before{i}": 1 if i % 3 else -1 for i in range(300)}
        for track_id, value in planted.items():
            store.rate(1, track_id, value, "forme")
        writer = threading.Thread(target=keep_writing)
        writer.start()
        while len(written) < 5:  # the writer is really going
            time.sleep(0.01)
        copies = [store.backup(tmp_path / "backups" / "copy.db"), store.backup()]
        before = len(written)
        time.sleep(0.2)
        stop.set()
        writer.join()
        assert errors == []
        assert len(written) > before  # writing went on after the backups
        final_during = set(store.ratings_of(2))
    for copy in copies:
        assert copy.exists()
        assert copy.parent in (tmp_path / "backups", tmp_path)
        with sqlite3.connect(copy) as raw:
            assert raw.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        with RatingStore(f"sqlite:///{copy}") as restored:
            assert restored.ratings_of(1) == planted
            assert set(restored.ratings_of(2)) <= final_during
    assert not list(tmp_path.rglob("*.partial"))
