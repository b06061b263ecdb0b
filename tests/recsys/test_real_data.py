"""Slow: the default model on the real dataset (MUSICREC_REAL_DATA)."""

from __future__ import annotations

from pathlib import Path

import pytest

import recsys

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def real_snapshot(real_csv: Path) -> recsys.Snapshot:
    return recsys.train(real_csv, recsys.TrainConfig(progress=False))


def test_similar_tracks_of_a_known_song_are_ten_distinct_songs(real_snapshot: recsys.Snapshot) -> None:
    hits = real_snapshot.search("bad guy billie eilish", limit=3)
    assert hits and hits[0].track.artist == "Billie Eilish" and hits[0].track.name.lower().startswith("bad guy")
    recs = real_snapshot.similar_tracks(hits[0].track.track_id, k=10)
    assert len(recs) == 10
    assert len({(r.name.lower(), r.artist.lower()) for r in recs}) == 10
    assert all(r.track_id != hits[0].track.track_id for r in recs)


def test_real_training_learns(real_snapshot: recsys.Snapshot) -> None:
    assert real_snapshot.info.num_tracks == 28356
    assert real_snapshot.info.metrics["val_recall@20"] > 0.15
