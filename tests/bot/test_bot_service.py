"""MusicService: snapshot validation, one retrain at a time, staged saves under the model directory's lock, a
child process it owns, and a cache that never serves another model's answers."""

from __future__ import annotations

import asyncio
import datetime
import math
import multiprocessing
import shutil
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from botkit import FAST_TRAIN

import recsys
from bot.db import RatingStore
from bot.retraining import validate_snapshot
from bot.service import MusicService, RetrainBusyError


@pytest.fixture
def service(tmp_path: Path) -> MusicService:
    return MusicService(tmp_path / "songs.csv", tmp_path / "model")


def test_validation_refuses_nan_and_low_metrics(snapshot: recsys.Snapshot) -> None:
    assert validate_snapshot(snapshot, {}) == []
    name = "val_recall@20"
    assert name in snapshot.info.metrics
    assert "below the floor" in validate_snapshot(snapshot, {name: 2.0})[0]
    assert "missing" in validate_snapshot(snapshot, {"no_such_metric": 0.1})[0]

    def with_metrics(metrics: dict[str, float]) -> recsys.Snapshot:
        class Info:
            def __getattr__(self, item: str) -> object:
                return metrics if item == "metrics" else getattr(snapshot.info, item)

        class Replaced:
            info = Info()

            def __getattr__(self, item: str) -> object:
                return getattr(snapshot, item)

        return Replaced()  # type: ignore[return-value]

    assert "nan" in validate_snapshot(with_metrics({name: math.nan}), {})[0]
    # No cold track held out: that recall could not be measured, and the model is still good.
    unmeasured = dict(snapshot.info.metrics) | {"val_cold_recall@20": math.nan}
    assert validate_snapshot(with_metrics(unmeasured), {}) == []


async def test_one_retrain_at_a_time_and_failure_keeps_serving(workdir: Path) -> None:
    service = MusicService(workdir / "missing.csv", workdir / "model")
    await service.start()
    version = service.info.version
    task = service.start_retrain(only_if_changed=False)
    with pytest.raises(RetrainBusyError):
        service.start_retrain(only_if_changed=True)
    outcome = await asyncio.wait_for(task, 120)
    assert outcome.status == "failed" and "does not exist" in (outcome.error or "")
    assert service.info.version == version and not service.retraining


async def test_resolutions_are_cached_per_model_version(workdir: Path, snapshot: recsys.Snapshot) -> None:
    service = MusicService(workdir / "songs.csv", workdir / "model", resolution_cache_size=2)
    await service.start()
    calls: list[str] = []
    real_search = recsys.Snapshot.search

    def counting_search(self: recsys.Snapshot, text: str, limit: int = 5) -> list[recsys.SearchHit]:
        calls.append(f"{self.info.version}:{text}")
        return real_search(self, text, limit)

    recsys.Snapshot.search = counting_search  # type: ignore[method-assign]
    try:
        first = await service.resolve("Silver  Season")
        assert await service.resolve("silver season") == first  # same words, same answer, no new search
        assert len(calls) == 1
        await service.resolve("a")
        await service.resolve("b")  # evicts "silver season" (cache of 2)
        await service.resolve("silver season")
        assert len(calls) == 4
        # A swap to another model version must search again, not serve the old model's hits.
        other = recsys.Snapshot(dict(snapshot._arrays), replace(snapshot.info, version="other-version"))
        service._snapshot = other
        await service.resolve("silver season")
        assert calls[-1] == "other-version:silver season" and len(calls) == 5
    finally:
        recsys.Snapshot.search = real_search  # type: ignore[method-assign]


async def test_a_corrupt_model_falls_back_to_the_previous_one_without_training(workdir: Path) -> None:
    import shutil

    shutil.copytree(workdir / "model", workdir / "model.prev")
    good = recsys.load(workdir / "model.prev").info.version
    for path in (workdir / "model").iterdir():
        path.write_bytes(b"garbage")
    service = MusicService(workdir / "missing.csv", workdir / "model")  # training would fail: no CSV
    info = await service.start()
    assert info.version == good and service.last_outcome is None


@pytest.mark.parametrize("meta", ["[]", "null"])
async def test_a_model_with_unusable_metadata_falls_back_to_the_previous_one(workdir: Path, meta: str) -> None:
    shutil.copytree(workdir / "model", workdir / "model.prev")
    (workdir / "model" / "meta.json").write_text(meta)
    info = await MusicService(workdir / "missing.csv", workdir / "model").start()
    assert info.version == recsys.load(workdir / "model.prev").info.version


async def test_start_refuses_a_model_dir_that_is_not_a_model(workdir: Path) -> None:
    # The data folder as model dir: the first save would have moved the CSV aside and a second deleted it.
    with pytest.raises(recsys.SnapshotError, match="not a musicrec snapshot"):
        await MusicService(workdir / "songs.csv", workdir).start()
    assert (workdir / "songs.csv").is_file()


def _service(workdir: Path, **kw: object) -> MusicService:
    return MusicService(workdir / "songs.csv", workdir / "model", train_config=FAST_TRAIN, **kw)  # type: ignore[arg-type]


async def test_a_retrain_that_fails_after_training_leaves_disk_and_memory_agreeing(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = _service(workdir)
    await service.start()
    serving = service.info.version
    real_load = recsys.load

    def load_fails_for_staged(path: object) -> recsys.Snapshot:
        if ".tmp-" in str(path):
            raise recsys.SnapshotError("staged copy unreadable")
        return real_load(path)  # type: ignore[arg-type]

    monkeypatch.setattr(recsys, "load", load_fails_for_staged)
    outcome = await asyncio.wait_for(service.retrain(only_if_changed=False), 120)
    assert outcome.status == "failed" and "staged copy unreadable" in (outcome.error or "")
    # What serves is what a restart would load: the child never wrote into the live directory.
    assert service.info.version == serving == real_load(workdir / "model").info.version
    assert not list(workdir.glob(".model.tmp-*"))
    monkeypatch.undo()
    outcome = await asyncio.wait_for(service.retrain(only_if_changed=False), 120)
    assert outcome.status == "swapped"
    assert service.info.version == recsys.load(workdir / "model").info.version != serving
    assert recsys.load(workdir / "model.prev").info.version == serving


async def test_a_retrain_while_another_process_saves_there_fails_clearly(workdir: Path) -> None:
    service = _service(workdir)
    await service.start()
    serving = service.info.version
    with recsys.ModelDir(workdir / "model").lock("musicrec train"):  # what a CLI training holds
        outcome = await asyncio.wait_for(service.retrain(only_if_changed=False), 60)
    assert outcome.status == "failed" and "another training is saving here" in (outcome.error or "")
    assert recsys.load(workdir / "model").info.version == serving == service.info.version


@pytest.mark.skipif(torch.cuda.is_available(), reason="asserts what a machine without CUDA does")
async def test_a_retrain_on_cuda_without_a_gpu_fails_in_one_line_and_the_model_keeps_serving(workdir: Path) -> None:
    service = MusicService(workdir / "songs.csv", workdir / "model", train_config=replace(FAST_TRAIN, device="cuda"))
    await service.start()  # the model on disk serves; only training needs the device
    serving = service.info.version
    outcome = await asyncio.wait_for(service.retrain(only_if_changed=False), 120)
    assert outcome.status == "failed" and "no CUDA GPU" in (outcome.error or "") and "\n" not in (outcome.error or "")
    assert service.info.version == serving == recsys.load(workdir / "model").info.version


async def test_a_broken_csv_is_retried_by_the_schedule_only_once_it_changes(workdir: Path) -> None:
    service = _service(workdir)
    await service.start()
    (workdir / "songs.csv").write_text("track_id,nothing else\n1,2\n")
    first = await asyncio.wait_for(service.retrain(only_if_changed=True), 60)
    assert first.status == "failed" and "required column" in (first.error or "")
    again = await asyncio.wait_for(service.retrain(only_if_changed=True), 60)
    assert again.status == "unchanged"  # no second attempt, so no second alert, until the file changes
    (workdir / "songs.csv").write_text("track_id,still broken\n1,2\n")
    assert (await asyncio.wait_for(service.retrain(only_if_changed=True), 60)).status == "failed"


async def test_close_ends_a_running_retrain_and_its_process_within_seconds(workdir: Path) -> None:
    slow = recsys.TrainConfig(epochs=100_000, patience=100_000, max_seconds=3600, progress=False)
    service = MusicService(workdir / "songs.csv", workdir / "model", train_config=slow)
    await service.start()
    serving = service.info.version
    service.start_retrain(only_if_changed=False)
    deadline = time.monotonic() + 60
    while not [p for p in multiprocessing.active_children() if p.name == "musicrec-retrain"]:
        assert time.monotonic() < deadline, "the retraining process never started"
        await asyncio.sleep(0.1)
    await asyncio.sleep(2)  # well into training
    [child] = [p for p in multiprocessing.active_children() if p.name == "musicrec-retrain"]
    started = time.monotonic()
    await asyncio.wait_for(service.close(), 10)
    assert time.monotonic() - started < 5
    assert not child.is_alive() and not service.retraining
    assert service.info.version == serving == recsys.load(workdir / "model").info.version


def _store(workdir: Path) -> RatingStore:
    return RatingStore(f"sqlite:///{workdir / 'listeners.db'}")


async def test_listeners_with_enough_likes_join_the_graph_and_forgotten_ones_do_not(
    workdir: Path, snapshot: recsys.Snapshot
) -> None:
    store = _store(workdir)
    tracks = [str(t) for t in snapshot.track_ids[:12]]
    for listener, liked in ((7, tracks[:6]), (8, tracks[6:12]), (9, tracks[:2])):
        for track_id in liked:
            store.rate(listener, track_id, 1, "test")
    store.rate(7, tracks[11], -1, "test")
    store.forget(8)  # used /forget: must not be in the next model
    service = _service(workdir, listeners=store, listener_min_likes=5)
    await service.start()
    outcome = await asyncio.wait_for(service.retrain(only_if_changed=False), 120)
    assert outcome.status == "swapped"
    snap = service.snapshot
    assert snap.has_listener("7") and not snap.has_listener("8") and not snap.has_listener("9")  # 9: 2 likes < 5
    assert snap.info.num_playlists == snapshot.info.num_playlists  # listeners are not playlists
    picks = {t.track_id for t in snap.recommend_for_listener("7", k=20)}
    assert not picks & {*tracks[:6], tracks[11]}  # its likes and its dislike are never offered back


class _Ratings:
    """A listener source whose count of new ratings the test sets."""

    def __init__(self) -> None:
        self.new = 0

    def for_training(self, min_likes: int) -> dict[str, tuple[list[str], list[str]]]:
        return {}

    def ratings_since(self, when: datetime.datetime) -> int:
        return self.new


async def test_the_schedule_retrains_on_enough_new_ratings_even_when_the_csv_is_unchanged(workdir: Path) -> None:
    ratings = _Ratings()
    service = _service(workdir, listeners=ratings, retrain_min_new_ratings=3)
    await service.start()
    ratings.new = 2
    assert (await asyncio.wait_for(service.retrain(only_if_changed=True), 60)).status == "unchanged"
    ratings.new = 3
    assert (await asyncio.wait_for(service.retrain(only_if_changed=True), 120)).status == "swapped"
