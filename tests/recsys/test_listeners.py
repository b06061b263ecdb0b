"""Listeners: rated songs join training as listener nodes and shape /forme; planted answers on the demo catalogue.

The demo plants artists inside subgenres and playlists drawn from subgenres, so a listener who liked tracks of one
subgenre should get that subgenre, and disliking an artist should push that artist out of the list."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

import recsys
from recsys.data import Catalog
from recsys.distributed import Ranks
from recsys.listeners import LISTENER_KEYS, LISTENER_PLAYLIST_PREFIX, join
from recsys.loss import DISLIKED_SHARE, ListenerDislikes, sample_negatives
from recsys.snapshot import Snapshot
from recsys.store import ModelDir, read
from recsys.train import _Run
from tests.conftest import FAST_CONFIG


def _artists_of(catalog: Catalog, subgenre: str) -> dict[str, list[str]]:
    """Artist -> its track ids, for the tracks whose (planted) subgenre is the one given, in catalogue order."""
    out: dict[str, list[str]] = {}
    for tid, artist, sub in zip(catalog.track_ids, catalog.track_artists, catalog.subgenres, strict=True):
        if sub == subgenre:
            out.setdefault(str(artist), []).append(str(tid))
    return out


def _fan_of(catalog: Catalog, subgenre: str, artists: int = 3, per_artist: int = 4) -> list[str]:
    """Tracks of several artists of one subgenre: a listener whose taste is that subgenre, not one artist."""
    big = [ts for ts in _artists_of(catalog, subgenre).values() if len(ts) >= per_artist]
    return [t for ts in big[:artists] for t in ts[:per_artist]]


def _subgenres(catalog: Catalog, tracks: list[recsys.Track]) -> list[str]:
    index = catalog.track_index()
    return [str(catalog.subgenres[index[t.track_id]]) for t in tracks]


@pytest.fixture(scope="module")
def ratings(demo_catalog: Catalog) -> dict[str, recsys.ListenerRatings]:
    rock = _fan_of(demo_catalog, "album rock", artists=1)
    return {
        "1001": recsys.ListenerRatings(tuple(_fan_of(demo_catalog, "trap")), tuple(rock)),
        "2002": recsys.ListenerRatings((*_fan_of(demo_catalog, "tropical"), "track-not-in-the-catalogue")),
        "3003": recsys.ListenerRatings(("only-unknown-tracks",)),  # nothing to place it from: no node
    }


@pytest.fixture(scope="module")
def listener_snapshot(demo_catalog: Catalog, ratings: dict[str, recsys.ListenerRatings]) -> Snapshot:
    return recsys.train_catalog(demo_catalog, FAST_CONFIG, listeners=ratings)


# ----- training with listener nodes -----


def test_a_listener_node_recommends_its_planted_subgenre(demo_catalog: Catalog, listener_snapshot: Snapshot) -> None:
    # Two listeners of different subgenres: each gets its own (rows swapped or an untrained node would fail).
    for listener_id, subgenre in (("1001", "trap"), ("2002", "tropical")):
        recs = listener_snapshot.recommend_for_listener(listener_id, k=10)
        assert len(recs) == 10
        assert _subgenres(demo_catalog, recs).count(subgenre) >= 8, (listener_id, _subgenres(demo_catalog, recs))


def test_a_listener_node_excludes_what_it_rated(
    listener_snapshot: Snapshot, ratings: dict[str, recsys.ListenerRatings]
) -> None:
    rated = set(ratings["1001"].likes) | set(ratings["1001"].dislikes)
    recs = listener_snapshot.recommend_for_listener("1001", k=100)
    assert len(recs) == 100 and not rated & {r.track_id for r in recs}
    assert all(r.reason is not None and r.reason.startswith("because you liked ") for r in recs)


def test_listener_nodes_are_not_playlists(demo_catalog: Catalog, listener_snapshot: Snapshot) -> None:
    info = listener_snapshot.info
    assert info.num_playlists == demo_catalog.num_playlists == len(listener_snapshot.playlist_ids)
    assert listener_snapshot.playlist_z.shape == (demo_catalog.num_playlists, listener_snapshot.track_z.shape[1])
    assert listener_snapshot.playlist_ids.tolist() == demo_catalog.playlist_ids.tolist()
    assert not any(str(p).startswith(LISTENER_PLAYLIST_PREFIX) for p in listener_snapshot.playlist_ids)
    assert int(listener_snapshot.edges[0].max()) < demo_catalog.num_playlists
    # "3003" liked no catalogue track: it has no node.
    assert listener_snapshot.listener_ids.tolist() == ["1001", "2002"] and info.num_listeners == 2
    assert listener_snapshot.listener_z.shape == (2, listener_snapshot.track_z.shape[1])
    assert np.allclose(np.linalg.norm(listener_snapshot.listener_z, axis=1), 1.0, atol=1e-5)
    with pytest.raises(recsys.UnknownPlaylistError):
        listener_snapshot.recommend_for_playlist(LISTENER_PLAYLIST_PREFIX + "1001")


def test_unknown_track_ids_are_ignored_and_stored_ratings_are_the_known_ones(
    demo_catalog: Catalog, listener_snapshot: Snapshot, ratings: dict[str, recsys.ListenerRatings]
) -> None:
    index = demo_catalog.track_index()
    likes, dislikes = listener_snapshot.listener_rows(1)  # "2002"
    assert sorted(likes.tolist()) == sorted(index[t] for t in ratings["2002"].likes if t in index)
    assert len(likes) == len(ratings["2002"].likes) - 1 and len(dislikes) == 0
    likes, dislikes = listener_snapshot.listener_rows(0)  # "1001"
    assert sorted(dislikes.tolist()) == sorted(index[t] for t in ratings["1001"].dislikes)


def test_an_unknown_listener_is_one_clear_error(listener_snapshot: Snapshot, demo_snapshot: Snapshot) -> None:
    for snap, listener_id in ((listener_snapshot, "3003"), (listener_snapshot, "nobody"), (demo_snapshot, "1001")):
        with pytest.raises(recsys.UnknownListenerError) as err:
            snap.recommend_for_listener(listener_id)
        assert isinstance(err.value, recsys.RecsysError) and isinstance(err.value, KeyError)
        assert repr(listener_id) in str(err.value) and "\n" not in str(err.value)
        assert not snap.has_listener(listener_id)
    assert listener_snapshot.has_listener("1001")


def test_validation_and_hard_negatives_of_a_run_with_listeners(
    demo_catalog: Catalog, ratings: dict[str, recsys.ListenerRatings]
) -> None:
    nodes = join(demo_catalog, ratings)
    plain = _Run(demo_catalog, FAST_CONFIG, Ranks.current(), join(demo_catalog, {}))
    run = _Run(demo_catalog, FAST_CONFIG, Ranks.current(), nodes)
    # Validation holds out the same playlist pairs with or without listeners, and never a listener's pair.
    assert torch.equal(run.val_pairs, plain.val_pairs)
    assert int(run.val_pairs[0].max()) < demo_catalog.num_playlists
    listener_pairs = run.train_pairs[:, run.train_pairs[0] >= demo_catalog.num_playlists]
    assert listener_pairs.shape[1] == nodes.likes.shape[1]  # every like trains
    assert (
        run.inputs.num_playlists == demo_catalog.num_playlists + 2 and run.inputs.num_tracks == demo_catalog.num_tracks
    )
    assert run.dislikes is not None and run.dislikes.first_node == demo_catalog.num_playlists
    assert plain.dislikes is None


def test_training_does_not_depend_on_the_order_listeners_are_given(
    demo_catalog: Catalog, ratings: dict[str, recsys.ListenerRatings]
) -> None:
    config = recsys.TrainConfig(epochs=2, eval_every=2, progress=False)
    a = recsys.train_catalog(demo_catalog, config, listeners=ratings)
    b = recsys.train_catalog(demo_catalog, config, listeners=dict(reversed(ratings.items())))
    assert a.listener_ids.tolist() == b.listener_ids.tolist()
    assert np.allclose(a.listener_z, b.listener_z, atol=1e-5)


def test_train_from_a_csv_takes_listeners(demo_csv: Path, ratings: dict[str, recsys.ListenerRatings]) -> None:
    snap = recsys.train(demo_csv, recsys.TrainConfig(epochs=2, eval_every=2, progress=False), listeners=ratings)
    assert snap.info.num_listeners == 2 and snap.has_listener("2002")


# ----- the hard negatives -----


def test_a_listeners_hard_negatives_are_its_dislikes() -> None:
    num_tracks, first_node = 50, 10  # playlist nodes 0-9, listeners 10 and 11
    genre = torch.arange(num_tracks) % 2
    pools = [(genre == g).nonzero(as_tuple=True)[0] for g in range(2)]
    dislikes = ListenerDislikes.of(first_node, np.array([[0, 0, 0], [41, 43, 47]]), num_listeners=2)
    assert dislikes is not None
    positives = torch.tensor([1, 2, 3, 4, 5, 6])
    nodes = torch.tensor([0, 10, 11, 10, 3, 10])  # playlists 0 and 3; listener 10 (disliked 41, 43, 47); 11 (none)
    num = 8
    with_dislikes = sample_negatives(
        positives, num, 1.0, pools, genre, torch.Generator().manual_seed(0), playlists=nodes, dislikes=dislikes
    )
    plain = sample_negatives(positives, num, 1.0, pools, genre, torch.Generator().manual_seed(0))
    drawn = round(num * DISLIKED_SHARE)
    assert drawn > 0
    for row, node in enumerate(nodes.tolist()):
        if node == 10:
            assert set(with_dislikes[row, -drawn:].tolist()) <= {41, 43, 47}
            assert torch.equal(with_dislikes[row, :-drawn], plain[row, :-drawn])  # the rest stay genre negatives
        else:
            assert torch.equal(with_dislikes[row], plain[row])  # playlists and a listener without dislikes
    # Over many draws every dislike is used, not only the first.
    many = sample_negatives(
        torch.full((200,), 2),
        num,
        1.0,
        pools,
        genre,
        torch.Generator().manual_seed(1),
        playlists=torch.full((200,), 10),
        dislikes=dislikes,
    )
    assert set(many[:, -drawn:].flatten().tolist()) == {41, 43, 47}


# ----- /forme: recommend_for_ratings -----


def test_ratings_recommend_the_liked_subgenre_and_say_which_like_led_there(
    demo_catalog: Catalog, demo_snapshot: Snapshot
) -> None:
    trap, rock = _fan_of(demo_catalog, "trap", artists=1, per_artist=1), _fan_of(demo_catalog, "album rock", 1, 1)
    recs = demo_snapshot.recommend_for_ratings([*trap, *rock], k=10)
    assert len(recs) == 10
    names = {
        t: f"because you liked {demo_snapshot.track(t).name} — {demo_snapshot.track(t).artist}" for t in trap + rock
    }
    subgenre_of_like = {names[trap[0]]: "trap", names[rock[0]]: "album rock"}
    # Each pick names one of the likes, and (planted) the like of the pick's own subgenre.
    assert all(r.reason in subgenre_of_like for r in recs)
    agree = sum(subgenre_of_like[str(r.reason)] == s for r, s in zip(recs, _subgenres(demo_catalog, recs), strict=True))
    assert agree >= 8


def test_dislikes_are_never_returned_and_push_the_list_away_from_the_disliked_artist(
    demo_catalog: Catalog, demo_snapshot: Snapshot
) -> None:
    before, after = [], []
    for subgenre in ("trap", "album rock", "tropical", "electropop"):
        artist = next(ts for ts in _artists_of(demo_catalog, subgenre).values() if len(ts) >= 8)
        likes, disliked = artist[:3], artist[3:5]  # liked three songs of an artist, then disliked two others

        def of_artist(recs: list[recsys.Track], artist: list[str] = artist) -> int:
            return sum(r.track_id in set(artist) for r in recs)

        before.append(of_artist(demo_snapshot.recommend_for_ratings(likes, k=10)))
        recs = demo_snapshot.recommend_for_ratings(likes, disliked, k=10)
        after.append(of_artist(recs))
        assert len(recs) == 10 and not set(disliked + likes) & {r.track_id for r in recs}
    assert sum(before) >= 12, before  # planted: an artist's other songs are what its songs are near
    assert all(a < b for a, b in zip(after, before, strict=True)), (before, after)
    assert sum(after) <= 0.6 * sum(before), (before, after)


def test_shown_tracks_are_ranked_down_not_excluded(demo_catalog: Catalog, demo_snapshot: Snapshot) -> None:
    likes = _fan_of(demo_catalog, "trap", artists=2, per_artist=2)
    first = [r.track_id for r in demo_snapshot.recommend_for_ratings(likes, k=10)]
    second = [r.track_id for r in demo_snapshot.recommend_for_ratings(likes, k=10, shown=first)]
    assert len(second) == 10 and not set(first) & set(second)
    everything = [r.track_id for r in demo_snapshot.recommend_for_ratings(likes, k=10_000, shown=first)]
    assert set(first) <= set(everything)  # still there, further down
    assert min(everything.index(t) for t in first) >= 10


def test_ratings_ignore_unknown_ids_and_refuse_what_cannot_be_answered(
    demo_catalog: Catalog, demo_snapshot: Snapshot
) -> None:
    likes = _fan_of(demo_catalog, "trap", artists=1, per_artist=2)
    plain = demo_snapshot.recommend_for_ratings(likes, k=10)
    noisy = demo_snapshot.recommend_for_ratings(
        [*likes, "gone-after-a-retrain"], ["also-gone"], k=10, shown=["never-existed"], listener_id="not-trained"
    )
    assert noisy == plain
    for bad_likes, bad_dislikes in ((["gone"], []), ([], []), (likes, likes[:1]), ("a-track-id", [])):
        with pytest.raises(recsys.InvalidQueryError) as err:
            demo_snapshot.recommend_for_ratings(bad_likes, bad_dislikes)
        assert "\n" not in str(err.value)
    with pytest.raises(recsys.InvalidQueryError, match="listener_id"):
        demo_snapshot.recommend_for_ratings(likes, listener_id=1001)  # type: ignore[arg-type]


def test_a_trained_listener_node_joins_the_ratings_score(
    listener_snapshot: Snapshot, ratings: dict[str, recsys.ListenerRatings]
) -> None:
    likes = list(ratings["1001"].likes[:2])
    alone = listener_snapshot.recommend_for_ratings(likes, k=20)
    blended = listener_snapshot.recommend_for_ratings(likes, k=20, listener_id="1001")
    assert [r.score for r in alone] != [r.score for r in blended]
    assert not set(likes) & {r.track_id for r in blended}


def test_listener_ratings_are_checked(demo_catalog: Catalog) -> None:
    assert recsys.ListenerRatings(["a", "b"], ["c"]).likes == ("a", "b")  # type: ignore[arg-type]
    for likes, dislikes in ((("a",), ("a",)), ("abc", ()), ((1,), ())):
        with pytest.raises(recsys.InvalidQueryError):
            recsys.ListenerRatings(likes, dislikes)  # type: ignore[arg-type]
    for listener_id, ratings in ((7, recsys.ListenerRatings(("a",))), ("", recsys.ListenerRatings(("a",)))):
        with pytest.raises(recsys.InvalidQueryError, match="listener id"):
            join(demo_catalog, {listener_id: ratings})  # type: ignore[dict-item]
    with pytest.raises(recsys.InvalidQueryError, match="ListenerRatings"):
        join(demo_catalog, {"1": ("a",)})  # type: ignore[dict-item]


# ----- persistence -----


def test_save_and_load_keep_the_listeners(tmp_path: Path, listener_snapshot: Snapshot) -> None:
    listener_snapshot.save(tmp_path / "m")
    loaded = recsys.load(tmp_path / "m")
    assert loaded.info == listener_snapshot.info
    for key in LISTENER_KEYS:
        assert np.array_equal(loaded._arrays[key], listener_snapshot._arrays[key]), key
    assert loaded.recommend_for_listener("1001") == listener_snapshot.recommend_for_listener("1001")


def test_a_snapshot_saved_before_listeners_still_loads(tmp_path: Path, demo_snapshot: Snapshot) -> None:
    arrays, meta = read(demo_snapshot.save(tmp_path / "new"))
    old_arrays = {k: v for k, v in arrays.items() if k not in LISTENER_KEYS}
    old_meta = {k: v for k, v in meta.items() if k not in {"num_listeners", "arrays_sha256"}}
    ModelDir(tmp_path / "old").save(old_arrays, old_meta)
    saved, saved_meta = read(tmp_path / "old")
    assert not set(LISTENER_KEYS) & set(saved) and "num_listeners" not in saved_meta
    old = recsys.load(tmp_path / "old")
    assert old.info.num_listeners == 0 and len(old.listener_ids) == 0
    assert old.listener_z.shape == (0, demo_snapshot.track_z.shape[1])
    tid = str(demo_snapshot.track_ids[3])
    assert old.similar_tracks(tid) == demo_snapshot.similar_tracks(tid)
    assert old.recommend_for_ratings([tid]) == demo_snapshot.recommend_for_ratings([tid])
    with pytest.raises(recsys.UnknownListenerError):
        old.recommend_for_listener("1001")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: {"listener_likes": s.listener_likes + np.array([[5], [0]])}, "listener_likes"),
        (lambda s: {"listener_dislikes": s.listener_dislikes + len(s.track_ids)}, "listener_dislikes"),
        (lambda s: {"listener_z": s.listener_z[:, :3].copy()}, "listener_z"),
        (lambda s: {"listener_z": np.full_like(s.listener_z, np.nan)}, "NaN"),
        (lambda s: {"listener_ids": np.array(["x", "x"], dtype=object)}, "not unique"),
    ],
    ids=["like-of-no-listener", "dislike-of-no-track", "narrow-listener_z", "nan-listener_z", "duplicate-listeners"],
)
def test_listener_arrays_are_checked_at_load(
    tmp_path: Path, listener_snapshot: Snapshot, change: Callable[[Snapshot], dict[str, np.ndarray]], message: str
) -> None:
    arrays = {**listener_snapshot._arrays, **change(listener_snapshot)}
    ModelDir(tmp_path / "bad").save(arrays, json.loads(json.dumps(listener_snapshot.info.__dict__)))
    with pytest.raises(recsys.SnapshotError, match=message):
        recsys.load(tmp_path / "bad")


def test_some_listener_arrays_without_the_others_is_corrupt(listener_snapshot: Snapshot) -> None:
    arrays = {k: v for k, v in listener_snapshot._arrays.items() if k != "listener_z"}
    with pytest.raises(recsys.SnapshotError, match="listener_z"):
        Snapshot(arrays, listener_snapshot.info)
    info = json.loads(json.dumps(listener_snapshot.info.__dict__))
    with pytest.raises(recsys.SnapshotError, match="listeners"):
        Snapshot(dict(listener_snapshot._arrays), recsys.SnapshotInfo.from_meta({**info, "num_listeners": 5}))
