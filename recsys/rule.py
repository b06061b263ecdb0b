"""The rule's walk down scored rows, best first: never an excluded song, at most one version of each song, at most
max_per_artist songs of one artist. recsys.ranking serves every list through it (and re-exports it); the evaluation
ranks with top_k.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

# _Picker walks this many candidates one by one before it shortens the rest of the walk (numpy calls cost more).
SHORT_WALK = 64

Picks = tuple[list[int], np.ndarray]  # (row indices best first, their scores)


def top_k(
    scores: np.ndarray,
    k: int,
    exclude: np.ndarray,
    songs: np.ndarray,
    artists: np.ndarray | None = None,
    max_per_artist: int = 0,
) -> list[int]:
    """Rows of the k best scores under the rule, at most max_per_artist per artist when artists [T] are given and
    the cap is > 0; fewer when fewer have a finite score. NaN ranks last."""
    if k <= 0 or not len(scores):
        return []
    scores = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=-np.inf, posinf=np.finfo(np.float64).max)
    scores[exclude] = -np.inf
    picker = _Picker(songs[exclude], songs, artists if max_per_artist > 0 else None, max_per_artist)
    want = min(len(scores), 4 * k + len(exclude) + 8)
    while True:
        cand = np.argpartition(-scores, want - 1)[:want] if want < len(scores) else np.arange(len(scores))
        cand = cand[np.argsort(-scores[cand], kind="stable")]
        finite = cand[np.isfinite(scores[cand])]  # best first: the finite ones lead
        out: list[int] = finite[picker.walk(finite, k)].tolist()
        if len(out) == k or len(finite) < len(cand) or want >= len(scores):
            return out
        want = min(len(scores), want * 4)


class _Picker:
    """The rule's walk down candidate rows best first: it takes a row unless its song is listed already (or
    excluded) or its artist has max_per_artist songs listed."""

    def __init__(
        self, excluded_songs: np.ndarray, songs: np.ndarray, artists: np.ndarray | None, max_per_artist: int
    ) -> None:
        self._excluded = np.unique(excluded_songs)
        self._songs, self._artists, self._cap = songs, artists, max_per_artist

    def walk(self, rows: np.ndarray, k: int) -> np.ndarray:
        """Positions in rows (best first) of the up to k rows the rule takes, in order."""
        seen, per_artist, taken = set(self._excluded.tolist()), dict[int, int](), list[int]()
        for positions in self._batches(rows):
            songs = self._songs[rows[positions]].tolist()
            artists = self._artists[rows[positions]].tolist() if self._artists is not None else None
            for n, j in enumerate(positions.tolist()):
                if songs[n] in seen:
                    continue
                if artists is not None:
                    if per_artist.get(artists[n], 0) >= self._cap:
                        continue
                    per_artist[artists[n]] = per_artist.get(artists[n], 0) + 1
                seen.add(songs[n])
                taken.append(j)
                if len(taken) == k:
                    return np.array(taken, dtype=np.int64)
        return np.array(taken, dtype=np.int64)

    def _batches(self, rows: np.ndarray) -> Iterator[np.ndarray]:
        """The positions walk visits: the first SHORT_WALK rows, then the later ones of the shortlist (computed only
        when the walk gets there; a few artists can hold most rows)."""
        yield np.arange(min(len(rows), SHORT_WALK))
        if len(rows) > SHORT_WALK:
            positions = self._shortlist(rows)
            yield positions[positions >= SHORT_WALK]

    def _shortlist(self, rows: np.ndarray) -> np.ndarray:
        """Positions in rows (best first) of those a walk might take, in order: a walk over them takes what a walk
        over all rows takes (a row passed over changes nothing).

        A row is passed over for its song (excluded, or an earlier row's) or for its artist (cap songs listed). A
        row whose song no earlier row has is taken unless its artist is full, so an artist's cap-th such row fills
        it: its later such rows go. A repeat of an earlier row's song may still be taken when that row was passed
        over for a full artist (one song's versions can be credited to differently spelled artists): repeats stay.
        """
        songs = self._songs[rows]
        excluded = np.isin(songs, self._excluded)
        repeat = np.ones(len(rows), dtype=bool)
        repeat[np.unique(songs, return_index=True)[1]] = False
        if self._artists is None:  # every first row of a song is taken: repeats never are
            return np.flatnonzero(~repeat & ~excluded)
        new = np.flatnonzero(~repeat & ~excluded)  # [m] positions of songs' first rows
        artists = self._artists[rows[new]]
        order = np.argsort(artists, kind="stable")  # by artist, best first within one
        sorted_artists = artists[order]
        starts = np.flatnonzero(np.r_[True, sorted_artists[1:] != sorted_artists[:-1]])
        rank = np.arange(len(new)) - np.repeat(starts, np.diff(np.r_[starts, len(new)]))  # within the artist
        keep = repeat & ~excluded
        keep[new[order[rank < self._cap]]] = True
        return np.flatnonzero(keep)


def best_of(
    cand: np.ndarray,
    scores: np.ndarray,
    k: int,
    exclude: np.ndarray,
    songs: np.ndarray,
    artists: np.ndarray | None = None,
    max_per_artist: int = 0,
) -> Picks:
    """top_k over candidate rows only: (up to k rows, their scores), best first."""
    picker = _Picker(songs[exclude], songs, artists if max_per_artist > 0 else None, max_per_artist)
    order = np.argsort(-scores, kind="stable")
    taken = order[picker.walk(cand[order], k)]  # an excluded row's song is among the picker's excluded songs
    return cand[taken].tolist(), scores[taken].astype(np.float32)
