"""Ranking: the list knobs, how each kind of list is scored, and that the evaluation scores exactly what is served."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import recsys
from recsys import ranking
from recsys.ann import AnnConfig
from recsys.evaluation import make_split
from recsys.evaluation.harness import Served
from recsys.evaluation.splits import Split
from recsys.ranking import ListConfig
from recsys.rule import top_k
from recsys.snapshot import Snapshot, SnapshotInfo

NO_ANN = AnnConfig(min_items=1 << 62)


def test_the_popularity_preference_leans_to_hits_or_deep_cuts() -> None:
    scores = np.array([0.50, 0.49, 0.48], dtype=np.float32)
    popularity = np.array([10.0, 90.0, np.nan])  # unknown counts as 50
    none = np.array([], dtype=np.int64)
    assert top_k(ListConfig().adjust(scores, popularity), 3, none, np.arange(3)) == [0, 1, 2]
    assert top_k(ListConfig(popularity=0.1).adjust(scores, popularity), 3, none, np.arange(3)) == [1, 2, 0]
    assert top_k(ListConfig(popularity=-0.1).adjust(scores, popularity), 3, none, np.arange(3)) == [0, 2, 1]


@pytest.mark.parametrize("knobs", [{"max_per_artist": -1}, {"popularity": 1.5}, {"popularity": float("nan")}])
def test_knobs_out_of_range_are_a_clear_error(knobs: dict[str, float], demo_snapshot: recsys.Snapshot) -> None:
    with pytest.raises(recsys.InvalidQueryError, match=r"max_per_artist is a whole number|popularity is a number"):
        demo_snapshot.with_lists(**knobs)  # type: ignore[arg-type]


def test_with_lists_caps_artists_and_leaves_the_original_alone(demo_snapshot: recsys.Snapshot) -> None:
    query = str(demo_snapshot.track_ids[0])
    capped = demo_snapshot.with_lists(max_per_artist=1)
    for snap in (capped, capped.with_lists(popularity=0.2)):  # an unset knob keeps its value
        recs = snap.similar_tracks(query, 10)
        assert len(recs) == 10 and len({r.artist.lower() for r in recs}) == 10
    before = [t.track_id for t in demo_snapshot.similar_tracks(query, 10)]
    assert demo_snapshot.lists == ListConfig() and capped.lists.max_per_artist == 1
    assert [t.track_id for t in demo_snapshot.similar_tracks(query, 10)] == before
    hits = demo_snapshot.with_lists(popularity=1.0).recommend_for_tracks([query], 10)
    deep = demo_snapshot.with_lists(popularity=-1.0).recommend_for_tracks([query], 10)
    assert np.mean([t.popularity or 50 for t in hits]) > np.mean([t.popularity or 50 for t in deep]) + 20


@pytest.fixture(scope="module")
def split(demo_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> Split:
    """The demo catalogue with a remastered version of 150 tracks (a new id, the same playlists): versions sit next to
    each other in any ranking, so a list that is not filtered like the served ones would differ from them."""
    frame = pd.read_csv(demo_csv, dtype=str, keep_default_na=False)
    originals = frame[frame["track_id"].isin(frame["track_id"].drop_duplicates().iloc[::7][:150])].copy()
    originals["track_id"] = originals["track_id"] + "R"
    originals["track_name"] = originals["track_name"] + " - Remastered"
    out = tmp_path_factory.mktemp("split")
    pd.concat([frame, originals]).to_csv(out / "versions.csv", index=False)
    return make_split(out / "versions.csv", seed=0, out_dir=out)


@pytest.fixture(scope="module")
def split_snapshot(split: Split) -> recsys.Snapshot:
    return recsys.train_catalog(split.catalog, recsys.TrainConfig(epochs=6, progress=False))


@pytest.mark.parametrize(
    "knobs", [{}, {"max_per_artist": 1, "popularity": 0.3}], ids=["as trained", "one per artist, hits"]
)
def test_the_evaluation_ranks_exactly_what_the_snapshot_serves(
    split: Split, split_snapshot: recsys.Snapshot, knobs: dict[str, float]
) -> None:
    split_snapshot = split_snapshot.with_lists(**knobs)  # type: ignore[arg-type]
    served = Served(split_snapshot, split.catalog)
    ids = split.catalog.track_ids
    assert len(set(served.songs.tolist())) < len(ids) - 100  # the planted versions are versions of one song
    for playlist_id in list(split.continuation)[:10]:
        got = [t.track_id for t in split_snapshot.recommend_for_playlist(playlist_id, 20)]
        assert ids[served.continuation(playlist_id, 20)].tolist() == got
    for query in list(split.similar)[:20]:
        got = [t.track_id for t in split_snapshot.similar_tracks(query, 10)]
        assert ids[served.similar(query, 10)].tolist() == got
    for seeds, _ in list(split.new_playlists.values())[:5]:
        got = [t.track_id for t in split_snapshot.recommend_for_tracks(seeds, 20)]
        assert ids[served.new_playlist(seeds, 20)].tolist() == got


def test_a_new_playlist_continues_with_its_seeds_artists_first(demo_snapshot: recsys.Snapshot) -> None:
    artists = demo_snapshot.artist_groups
    counts = np.bincount(artists)
    prolific = int(np.argmax(counts))  # the demo artist with the most songs
    songs_of = np.flatnonzero(artists == prolific)
    seed = str(demo_snapshot.track_ids[songs_of[0]])
    top = demo_snapshot.recommend_for_tracks([seed], k=5)
    assert all(demo_snapshot.artist_groups[demo_snapshot._track_pos[t.track_id]] == prolific for t in top)
    # Without the artist bonus the same seed's list is not all that artist's: the bonus is what put them first.
    plain = ranking.seed_scores(demo_snapshot.track_z, np.array([songs_of[0]]), ranking.SeedConfig().temperature)
    rows = top_k(plain, 5, np.array([songs_of[0]]), demo_snapshot.songs)
    assert not all(artists[r] == prolific for r in rows)


def _planted_playlist_catalogue(ann_config: AnnConfig, kind: str = "hybrid") -> Snapshot:
    """Query t0 sits nearest playlist p0 (members t10..t19, each only moderately like t0 by cosine); t1..t9 are
    closer to t0 by cosine but in no playlist near it. 300 tracks, one artist each, 3 playlists."""
    rng = np.random.default_rng(0)
    dim, num_tracks = 8, 300
    axis = np.eye(dim, dtype=np.float32)
    z = rng.standard_normal((num_tracks, dim)).astype(np.float32) * 0.05 + axis[3]  # the crowd, far from t0
    z[0] = axis[0]
    z[1:10] = axis[0] + 0.5 * axis[1] + rng.standard_normal((9, dim)) * 0.01  # cosine ~0.89 to t0
    z[10:20] = axis[0] + 1.2 * axis[2] + rng.standard_normal((10, dim)) * 0.01  # cosine ~0.64 to t0
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    playlist_z = np.stack([axis[0] + 0.3 * axis[2], axis[3], axis[4] + axis[3]])
    edges = np.array([[0] * 10 + [1] * 10 + [2] * 10, [*range(10, 20), *range(100, 110), *range(200, 210)]])
    arrays = {
        "track_ids": np.array([f"t{i}" for i in range(num_tracks)]),
        "track_names": np.array([f"song {i}" for i in range(num_tracks)]),
        "track_artists": np.array([f"artist {i}" for i in range(num_tracks)]),
        "album_names": np.full(num_tracks, "album"),
        "years": np.full(num_tracks, np.nan, dtype=np.float32),
        "popularity": np.full(num_tracks, 50.0, dtype=np.float32),
        "audio": rng.standard_normal((num_tracks, 5)).astype(np.float32),
        "playlist_ids": np.array(["p0", "p1", "p2"]),
        "playlist_names": np.array(["near", "crowd", "far"]),
        "edges": edges,
        "track_z": z,
        "playlist_z": (playlist_z / np.linalg.norm(playlist_z, axis=1, keepdims=True)).astype(np.float32),
    }
    info = SnapshotInfo("test", "", "", num_tracks, 3, {}, 0.0, kind, {})
    return Snapshot(arrays, info, ann_config=ann_config)


@pytest.mark.parametrize("indexed", [False, True])
def test_similar_songs_favour_the_members_of_the_playlists_the_song_would_be_in(indexed: bool) -> None:
    if indexed:
        pytest.importorskip("faiss")
    snap = _planted_playlist_catalogue(AnnConfig(min_items=0, nlist=4, nprobe=1) if indexed else NO_ANN)
    assert (snap.ann is not None) == indexed
    tracks = snap.similar_tracks("t0", k=10)
    got = [t.track_id for t in tracks]
    assert set(got) == {f"t{i}" for i in range(10, 20)}  # p0's members, though t1..t9 have higher cosines
    assert {t.reason for t in tracks} == {"in “near”"}  # the reason names the playlist that put them there
    scores = snap.track_scores("t0")
    assert scores[10:20].min() > scores[1:10].max()  # what the evaluation ranks is what was served
    # Without the bonus the cosine alone ranks t1..t9 first: the bonus is what put p0's members on top.
    plain = ranking.similar_scores(snap, 0, ranking.SimilarConfig(playlist_weight=0.0))
    assert set(top_k(plain, 9, np.array([0]), snap.songs)) == set(range(1, 10))
    # The bonus goes to the nearest playlists only: p1 and p2's members (far from t0) get none at 1 playlist.
    rows, bonus = ranking.playlist_bonus(snap, snap.track_z[0], ranking.SimilarConfig(playlists=1))
    assert rows.tolist() == list(range(10, 20)) and np.allclose(bonus, ranking.SimilarConfig().playlist_weight)


def test_the_original_design_keeps_its_cosine_top_10() -> None:
    # design_gcn's playlist embeddings come from random features: the baseline is served as it was designed.
    snap = _planted_playlist_catalogue(NO_ANN, kind="design_gcn")
    assert {t.track_id for t in snap.similar_tracks("t0", k=9)} == {f"t{i}" for i in range(1, 10)}
