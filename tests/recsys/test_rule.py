"""The rule's walk (recsys.rule): best k, exclusions, one version per song, songs per artist, against a plain walk."""

from __future__ import annotations

import numpy as np
import pytest

from recsys.rule import best_of, top_k


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


def _walked(
    scores: np.ndarray, k: int, exclude: np.ndarray, songs: np.ndarray, artists: np.ndarray, cap: int
) -> list[int]:
    """The rule as a plain walk down the scores, one row at a time: the reference for top_k (which walks a growing
    shortlist) and best_of (which walks candidate rows). Songs and artists are drawn independently here, so one
    song's versions can be of several artists."""
    seen, per_artist, out = set(songs[exclude].tolist()), dict[int, int](), []
    for i in np.argsort(-scores, kind="stable").tolist():
        if len(out) == k or not np.isfinite(scores[i]):
            break
        if songs[i] in seen or (cap > 0 and per_artist.get(int(artists[i]), 0) >= cap):
            continue
        seen.add(songs[i])
        per_artist[int(artists[i])] = per_artist.get(int(artists[i]), 0) + 1
        out.append(i)
    return out


@pytest.mark.parametrize("seed", range(40))
def test_top_k_and_best_of_list_what_a_walk_down_the_scores_lists(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 400))
    scores = rng.normal(size=n)
    scores[rng.random(n) < 0.05] = np.nan
    songs = rng.integers(0, max(1, n // 2), n)  # many songs in several versions
    artists = rng.integers(0, int(rng.integers(1, 12)), n)  # few artists, each far past any cap
    exclude = np.unique(rng.integers(0, n, int(rng.integers(0, 5))))
    k, cap = int(rng.integers(1, 30)), int(rng.integers(0, 4))
    _assert_served_as_walked(scores, k, exclude, songs, artists, cap)


@pytest.mark.parametrize("seed", range(20))
def test_a_walk_past_one_artists_many_best_rows_lists_what_a_plain_walk_lists(seed: int) -> None:
    # Past its first rows the walk goes on over a shortlist (the rows it might still take): here one artist holds
    # most of the best rows and many songs have versions credited to other artists further down.
    rng = np.random.default_rng(seed)
    n = int(rng.integers(300, 3000))
    scores = -np.sort(-rng.normal(size=n))
    artists = np.where(rng.random(n) < np.linspace(0.95, 0.0, n), 0, rng.integers(1, max(2, n // 20), n))
    songs = rng.integers(0, n // 3, n)
    exclude = np.unique(rng.integers(0, n, int(rng.integers(0, 5))))
    _assert_served_as_walked(scores, int(rng.integers(5, 40)), exclude, songs, artists, int(rng.integers(0, 4)))


def _assert_served_as_walked(
    scores: np.ndarray, k: int, exclude: np.ndarray, songs: np.ndarray, artists: np.ndarray, cap: int
) -> None:
    expected = _walked(np.nan_to_num(scores, nan=-np.inf), k, exclude, songs, artists, cap)
    assert top_k(scores, k, exclude, songs, artists, cap) == expected
    cand = np.flatnonzero(np.isfinite(scores) & ~np.isin(np.arange(len(scores)), exclude))  # the finite rows
    rows, values = best_of(cand, scores[cand], k, exclude, songs, artists, cap)
    assert rows == expected
    assert np.allclose(values, scores[expected])
