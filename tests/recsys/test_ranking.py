"""The ranking rule (best k, exclusions, one version per song) and that the evaluation scores exactly what is served."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import recsys
from recsys import ranking
from recsys.evaluation import make_split
from recsys.evaluation.harness import Served
from recsys.evaluation.splits import Split
from recsys.ranking import ListConfig, top_k


def test_top_k_skips_excluded_rows_and_repeated_songs() -> None:
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    songs = np.array([0, 0, 1, 2, 2, 3])  # rows 0/1 and 3/4 are versions of one song
    assert top_k(scores, 3, np.array([], dtype=np.int64), songs) == [0, 2, 3]
    # Excluding row 2 also excludes nothing else; excluding row 0 excludes its song (row 1 too).
    assert top_k(scores, 3, np.array([0]), songs) == [2, 3, 5]
    assert top_k(scores, 10, np.array([], dtype=np.int64), songs) == [0, 2, 3, 5]  # fewer songs than k


def test_top_k_ranks_nan_last_and_never_returns_it() -> None:
    scores = np.array([np.nan, 0.1, np.inf, 0.3])
    assert top_k(scores, 4, np.array([], dtype=np.int64), np.arange(4)) == [2, 3, 1]
    assert top_k(scores, 0, np.array([], dtype=np.int64), np.arange(4)) == []


def test_top_k_caps_songs_per_artist_and_fills_up_with_others() -> None:
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    artists = np.array([0, 0, 0, 1, 0, 2])
    none = np.array([], dtype=np.int64)
    assert top_k(scores, 4, none, np.arange(6), artists, max_per_artist=2) == [0, 1, 3, 5]
    assert top_k(scores, 4, none, np.arange(6), artists, max_per_artist=1) == [0, 3, 5]  # only three artists
    assert top_k(scores, 4, none, np.arange(6), artists, max_per_artist=0) == [0, 1, 2, 3]  # 0: no cap
    # An excluded row does not use up its artist's share.
    assert top_k(scores, 3, np.array([0]), np.arange(6), artists, max_per_artist=1) == [1, 3, 5]


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
