"""Training on data too small to learn from: a TrainingError that says what the data lacks, and no snapshot."""

from __future__ import annotations

import importlib
import math
from pathlib import Path

import pytest

import recsys
from recsys.data import Catalog
from tests.recsys.test_data import row, write

# Short schedules: these catalogues are tiny, and the errors come before or early in training.
QUICK = recsys.TrainConfig(epochs=4, eval_every=2, progress=False)


def _playlists(tmp_path: Path, sizes: list[int]) -> Path:
    """A CSV with one playlist per size, each holding that many distinct tracks."""
    rows = [row(f"t{p}_{i}", f"p{p}") for p, size in enumerate(sizes) for i in range(size)]
    return write(tmp_path / "tiny.csv", rows)


def _one_line(err: pytest.ExceptionInfo[recsys.TrainingError]) -> str:
    message = str(err.value)
    assert "\n" not in message
    return message


def test_two_rows_in_one_playlist_are_refused_with_what_the_data_lacks(tmp_path: Path) -> None:
    with pytest.raises(recsys.TrainingError) as err:
        recsys.train(_playlists(tmp_path, [2]), QUICK)
    message = _one_line(err)
    assert "the data has 2 playlist-track pairs in 1 playlist;" in message
    assert "at least 20 pairs in at least 2 playlists" in message
    assert "add playlists to the CSV" in message
    assert "learning rate" not in message


def test_one_row_is_refused_before_training_not_called_a_divergence(tmp_path: Path) -> None:
    with pytest.raises(recsys.TrainingError) as err:
        recsys.train(_playlists(tmp_path, [1]), QUICK)
    message = _one_line(err)
    assert "1 playlist-track pair in 1 playlist;" in message
    assert "diverged" not in message and "learning rate" not in message


def test_many_pairs_in_a_single_playlist_are_refused(tmp_path: Path) -> None:
    with pytest.raises(recsys.TrainingError, match=r"has 40 playlist-track pairs in 1 playlist;"):
        recsys.train(_playlists(tmp_path, [40]), QUICK)


def test_enough_pairs_just_above_the_minimum_train(tmp_path: Path) -> None:
    snapshot = recsys.train(_playlists(tmp_path, [10, 10]), QUICK)
    assert snapshot.info.num_playlists == 2
    assert math.isfinite(snapshot.info.metrics["val_recall@20"])


def test_single_track_playlists_leave_nothing_to_validate(tmp_path: Path) -> None:
    # 30 pairs, but every playlist keeps its only pair to learn from: nothing can be held out.
    with pytest.raises(recsys.TrainingError) as err:
        recsys.train(_playlists(tmp_path, [1] * 30), QUICK)
    message = _one_line(err)
    assert "held out" in message and "30 playlists" in message
    assert "at least 2 tracks" in message


def test_a_validation_metric_that_is_not_a_number_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # recsys.train is the function; the module that fit() looks recall_at_k up in is recsys.train's module.
    train_module = importlib.import_module("recsys.train")
    monkeypatch.setattr(train_module, "recall_at_k", lambda *args, **kwargs: float("nan"))
    with pytest.raises(recsys.TrainingError) as err:
        recsys.train(_playlists(tmp_path, [10, 10, 10]), QUICK)
    message = _one_line(err)
    assert "val_recall@20 is nan" in message and "no held-out pair could be scored" in message


def test_divergence_on_tiny_data_blames_the_data_size(tmp_path: Path) -> None:
    config = recsys.TrainConfig(epochs=6, eval_every=2, progress=False, learning_rate=1e30)
    with pytest.raises(recsys.TrainingError) as err:
        recsys.train(_playlists(tmp_path, [10, 10, 10]), config)
    message = _one_line(err)
    assert "diverged" in message
    assert "30 playlist-track pairs in 3 playlists" in message and "add playlists" in message
    assert "learning rate" not in message


def test_divergence_on_enough_data_advises_the_learning_rate(demo_catalog: Catalog) -> None:
    config = recsys.TrainConfig(epochs=6, eval_every=2, progress=False, learning_rate=1e30)
    with pytest.raises(recsys.TrainingError) as err:
        recsys.train_catalog(demo_catalog, config)
    message = _one_line(err)
    assert "diverged" in message and "lower the learning rate" in message
    assert "add playlists" not in message
