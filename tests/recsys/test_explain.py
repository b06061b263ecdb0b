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


def membership_snapshot(
    edges: np.ndarray, num_tracks: int, artists: list[str] | None = None, playlist_names: list[str] | None = None
) -> recsys.Snapshot:
    """A catalogue whose reasons depend only on its playlist memberships (edges [2, E]: playlist row, track row) and
    artists (default one each): silent audio, placeholder embeddings."""
    num_playlists = int(edges[0].max()) + 1
    z = np.eye(num_tracks, 4, dtype=np.float32) + 0.1  # [T, 4]
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    arrays = {
        "track_ids": np.array([f"t{i}" for i in range(num_tracks)]),
        "track_names": np.array([f"Song {i}" for i in range(num_tracks)]),
        "track_artists": np.array(artists or [f"Artist {i}" for i in range(num_tracks)]),
        "album_names": np.full(num_tracks, "album"),
        "years": np.full(num_tracks, np.nan, dtype=np.float32),
        "popularity": np.full(num_tracks, 50.0, dtype=np.float32),
        "audio": np.zeros((num_tracks, 5), dtype=np.float32),
        "playlist_ids": np.array([f"p{i}" for i in range(num_playlists)]),
        "playlist_names": np.array(playlist_names or [f"list {i}" for i in range(num_playlists)]),
        "edges": edges,
        "track_z": z,
        "playlist_z": np.tile(z[:1], (num_playlists, 1)),
    }
    info = recsys.SnapshotInfo("test", "", "", num_tracks, num_playlists, {}, 0.0, "test", {})
    return recsys.Snapshot(arrays, info)


def reasons_snapshot() -> recsys.Snapshot:
    """Six tracks, six playlists (p5 unnamed). Seed t0 is in p0, p1, p2; t1 shares its artist; t2 is in p0, p1, p2
    too; t3 in p3 and p4; t4 only in the unnamed p5; t5 only in p3. Audio: every track alike in every feature."""
    edges = np.array([[0, 1, 2, 0, 0, 1, 2, 3, 4, 5, 3], [0, 0, 0, 1, 2, 2, 2, 3, 3, 4, 5]])  # [2, 11]
    artists = ["Seed Artist", "Seed Artist", "Two", "Three", "Four", "Five"]
    return membership_snapshot(edges, 6, artists, ["a", "b", "c", "late night", "drive", ""])


def test_each_reason_is_the_first_that_holds_in_the_planted_catalogue() -> None:
    from recsys.explain import reasons

    snap = reasons_snapshot()
    near = np.array([5, 4, 3])  # nearest first: the unnamed p5, then "drive", then "late night"
    got = reasons(snap, [1, 2, 3, 4, 5], np.array([0]), near)
    assert got == [
        "same artist",  # t1: the seed's artist, before the playlists it shares
        "shares 3 playlists",  # t2: p0, p1, p2, each counted once
        "in “drive”",  # t3: in p4 and p3; p4 is the nearer named one
        "close in danceability and energy",  # t4: only in the unnamed p5; its sound is the seed's
        "in “late night”",  # t5: only in p3
    ]
    assert reasons(snap, [3], np.array([0]), None) == ["close in danceability and energy"]  # no near playlists
    assert reasons(snap, [2, 3], np.array([0, 5]), near)[1] == "shares 1 playlist"  # seeds t0 and t5: p3 shared


def test_shared_playlists_are_counted_for_popular_tracks() -> None:
    """A pick in many playlists: the count is of those it shares with the seeds, not of its own."""
    from recsys.explain import reasons

    num_playlists = 5000
    pick_playlists = np.arange(num_playlists)  # t1 in every playlist; the seed t0 in every third
    seed_playlists = np.arange(0, num_playlists, 3)
    edges = np.concatenate(
        [np.stack([seed_playlists, np.zeros_like(seed_playlists)]), [pick_playlists, np.ones_like(pick_playlists)]],
        axis=1,
    )
    snap = membership_snapshot(edges, 2)
    assert reasons(snap, [1], np.array([0]), None) == [f"shares {len(seed_playlists)} playlists"]


def test_shared_playlists_count_the_same_from_either_side() -> None:
    """Random memberships: the count from the seeds' listed members, from the mask of their playlists, and a set
    intersection agree for every track, one seed or several, seeds sharing playlists or not."""
    from recsys.explain import SharedPlaylists

    rng = np.random.default_rng(3)
    num_tracks, num_playlists = 60, 40
    sparse = np.stack([rng.integers(0, num_playlists, 150), rng.integers(0, 55, 150)])  # ~4 tracks a playlist
    hits = np.stack([np.repeat(np.arange(num_playlists), 5), np.tile(np.arange(55, 60), num_playlists)])  # in all
    pairs = np.unique(np.concatenate([sparse, hits], axis=1), axis=1)
    snap = membership_snapshot(pairs, num_tracks)
    for seeds in ([0], [1, 2], [3, 4, 5, 6, 7], []):
        expected_playlists = set(pairs[0][np.isin(pairs[1], seeds)].tolist())
        listed, masked = SharedPlaylists(snap, np.array(seeds)), SharedPlaylists(snap, np.array(seeds), max_listed=0)
        for t in range(num_tracks):
            expected = len(expected_playlists & set(pairs[0][pairs[1] == t].tolist()))
            assert listed(t) == masked(t) == expected, (seeds, t)
        if seeds == [0]:  # its playlists' members are fewer than a hit's 40 playlists: counted from that side
            assert listed._members is not None and len(listed._members) < num_playlists
