"""Snapshot.audio_profile: a track's sound as z-scores over the catalogue, on planted audio and on the demo's."""

from __future__ import annotations

import numpy as np
import pytest

import recsys
from recsys.data import AUDIO_FEATURES, Catalog
from recsys.explain import REASON_FEATURES

# Four tracks; per feature column the planted raw values (mean 3, population std sqrt(3.5)) scaled differently,
# so each column's z-scores are (v - 3) / sqrt(3.5) for v in (1, 2, 3, 6) whatever its unit.
PLANTED = np.array([1.0, 2.0, 3.0, 6.0])
EXPECTED_Z = (PLANTED - 3.0) / np.sqrt(3.5)
COLUMN_SCALES = np.array([0.1, 1.0, 0.05, 2.0, 40.0])  # one per REASON_FEATURES column


def tiny_snapshot(audio: np.ndarray) -> recsys.Snapshot:
    """A four-track catalogue with the given audio [4, 5] and one playlist of all four."""
    z = np.eye(4, 3, dtype=np.float32) + 0.1  # [4, 3]
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    arrays = {
        "track_ids": np.array(["t0", "t1", "t2", "t3"]),
        "track_names": np.array(["Alpha", "Bravo", "Charlie", "Delta"]),
        "track_artists": np.array(["One", "Two", "Three", "Four"]),
        "album_names": np.full(4, "album"),
        "years": np.full(4, np.nan, dtype=np.float32),
        "popularity": np.full(4, 50.0, dtype=np.float32),
        "audio": audio.astype(np.float32),
        "playlist_ids": np.array(["p0"]),
        "playlist_names": np.array(["all"]),
        "edges": np.array([[0, 0, 0, 0], [0, 1, 2, 3]]),  # [2, 4]
        "track_z": z,
        "playlist_z": (z.mean(0, keepdims=True) / np.linalg.norm(z.mean(0))).astype(np.float32),
    }
    return recsys.Snapshot(arrays, recsys.SnapshotInfo("test", "", "", 4, 1, {}, 0.0, "test", {}))


def planted_audio(shift: float = 0.0) -> np.ndarray:
    return PLANTED[:, None] * COLUMN_SCALES[None, :] + shift  # [4, 5]


def test_profile_is_the_planted_z_score_of_each_feature() -> None:
    snap = tiny_snapshot(planted_audio())
    profile = snap.audio_profile(["t3", "t0"])
    assert list(profile) == ["t3", "t0"]  # the asked order
    for track_id, row in profile.items():
        assert list(row) == list(REASON_FEATURES)
        assert all(isinstance(v, float) for v in row.values())
        expected = EXPECTED_Z[int(track_id[1])]
        assert np.allclose(list(row.values()), expected, atol=1e-5)
    assert profile["t3"]["tempo"] == pytest.approx(3 / np.sqrt(3.5), abs=1e-5)  # 6 is 3 above the mean of 3


def test_profile_reads_alike_whatever_the_models_scaling() -> None:
    # A min-max scaled model (design_gcn) stores audio in 0..1; the profile is still a z-score over the catalogue.
    audio = planted_audio()
    minmax = (audio - audio.min(0)) / (audio.max(0) - audio.min(0))
    standard = (audio - audio.mean(0)) / audio.std(0)
    ids = ["t0", "t1", "t2", "t3"]
    by_minmax = tiny_snapshot(minmax).audio_profile(ids)
    by_standard = tiny_snapshot(standard).audio_profile(ids)
    for t in ids:
        assert by_minmax[t] == pytest.approx(by_standard[t], abs=1e-5)


def test_a_feature_every_track_shares_is_typical_not_nan() -> None:
    audio = planted_audio()
    audio[:, REASON_FEATURES.index("valence")] = 0.7
    profile = tiny_snapshot(audio).audio_profile(["t1", "t3"])
    assert profile["t1"]["valence"] == 0.0 and profile["t3"]["valence"] == 0.0
    assert profile["t3"]["energy"] == pytest.approx(EXPECTED_Z[3], abs=1e-5)


def test_unknown_track_ids_raise_and_empty_asks_give_nothing() -> None:
    snap = tiny_snapshot(planted_audio())
    with pytest.raises(recsys.UnknownTrackError) as caught:
        snap.audio_profile(["t1", "nope"])
    assert caught.value.track_id == "nope"
    assert snap.audio_profile([]) == {}
    assert list(snap.audio_profile(["t2", "t2"])) == ["t2"]


def test_demo_profile_is_the_raw_features_z_score(demo_catalog: Catalog, demo_snapshot: recsys.Snapshot) -> None:
    # End to end: what the snapshot stores is the CSV's audio standardised over the catalogue.
    raw = demo_catalog.features[:, [AUDIO_FEATURES.index(f) for f in REASON_FEATURES]].astype(np.float64)
    z = (raw - raw.mean(0)) / raw.std(0)  # [T, 5]
    rows = [0, 17, len(raw) - 1]
    profile = demo_snapshot.audio_profile([str(demo_catalog.track_ids[r]) for r in rows])
    for r, values in zip(rows, profile.values(), strict=True):
        assert list(values.values()) == pytest.approx(z[r].tolist(), abs=1e-4)
    # The demo plants genre sounds: its most energetic track is far above the typical song in energy.
    loudest = str(demo_catalog.track_ids[int(np.argmax(raw[:, REASON_FEATURES.index("energy")]))])
    assert demo_snapshot.audio_profile([loudest])[loudest]["energy"] > 1.5
