"""Explanations: a short reason per recommended track for why it follows from the tracks it was asked for, and the
audio profiles (z-scores over the catalogue) that show it."""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from recsys.snapshot import Snapshot

# Audio features named in reasons ("close in energy and danceability"), by column of Snapshot.audio.
REASON_FEATURES = ("danceability", "energy", "valence", "acousticness", "tempo")
# Standardised distance under which two tracks count as close in a feature (half a standard deviation).
CLOSE_GAP = 0.5
# SharedPlaylists lists the members of the seeds' playlists when there are at most this many of them (at most 250
# tracks each in the Million Playlist Dataset); more, and a mask of them is the shorter way.
MAX_LISTED_PLAYLISTS = 256
# Per snapshot, its catalogue's (mean, standard deviation) per audio column: read-only data, computed once.
_CATALOGUE_SOUND: weakref.WeakKeyDictionary[Snapshot, tuple[np.ndarray, np.ndarray]] = weakref.WeakKeyDictionary()


def reasons(snap: Snapshot, picks: list[int], seeds: np.ndarray, near: np.ndarray | None = None) -> list[str | None]:
    """Per picked row: "same artist", "shares N playlists", "in “<playlist>”" (the first of the near playlist rows,
    nearest first, that holds it: similar songs' playlists), "close in X and Y", or None when nothing stands out.

    Shared playlists are counted from the shorter side (SharedPlaylists), and the near playlists' members are read
    once."""
    seed_artists = set(snap.artist_groups[seeds].tolist())
    shared_with_seeds = SharedPlaylists(snap, seeds)
    fits = _nearest_named_playlist(snap, near if near is not None else np.zeros(0, dtype=np.int64), picks)
    centre = snap.audio[seeds].mean(axis=0) if len(seeds) else None
    out: list[str | None] = []
    for idx in picks:
        if int(snap.artist_groups[idx]) in seed_artists:
            out.append("same artist")
            continue
        shared = shared_with_seeds(idx)
        if shared:
            out.append(f"shares {shared} playlist{'s' if shared > 1 else ''}")
        elif idx in fits:
            out.append(f"in “{fits[idx]}”")
        else:
            out.append(_closest_features(centre, snap.audio[idx]) if centre is not None else None)
    return out


class SharedPlaylists:
    """How many of the seeds' playlists a track row is in, counted from whichever side is shorter: the members of
    the seeds' playlists (a typical seed is in a few), or the track's own playlists looked up in a mask of the seeds'
    (a hit is in tens of thousands of playlists at the Million Playlist Dataset's size, and so may a seed be). A
    track is in a playlist at most once, so both count the same."""

    def __init__(self, snap: Snapshot, seeds: np.ndarray, max_listed: int = MAX_LISTED_PLAYLISTS) -> None:
        self._snap = snap
        mine = [snap.playlists_of(s) for s in seeds.tolist()]
        self._playlists = np.unique(np.concatenate(mine)) if mine else np.zeros(0, dtype=np.int64)
        listed = [snap.playlist_rows(p) for p in self._playlists.tolist()] if len(self._playlists) <= max_listed else []
        self._members = np.concatenate(listed) if listed else None  # [sum of their sizes]
        self._mask: np.ndarray | None = None  # [P] bool, made when a track's playlists are the shorter side

    def __call__(self, idx: int) -> int:
        if not len(self._playlists):
            return 0
        theirs = self._snap.playlists_of(idx)
        if self._members is not None and len(self._members) <= len(theirs):
            return int(np.count_nonzero(self._members == idx))
        if self._mask is None:
            self._mask = np.zeros(len(self._snap.playlist_ids), dtype=bool)
            self._mask[self._playlists] = True
        return int(np.count_nonzero(self._mask[theirs]))


def _nearest_named_playlist(snap: Snapshot, near: np.ndarray, picks: list[int]) -> dict[int, str]:
    """Per picked row in any of the near playlist rows (nearest first) that have a name: the nearest one's name."""
    named = [p for p in near.tolist() if str(snap.playlist_names[p])]
    if not named or not picks:
        return {}
    members = [snap.playlist_rows(p) for p in named]
    rows = np.concatenate(members)
    owner = np.repeat(np.arange(len(named)), [len(m) for m in members])  # nearest first
    wanted = np.sort(np.asarray(picks, dtype=rows.dtype))
    hit = wanted[np.minimum(np.searchsorted(wanted, rows), len(wanted) - 1)] == rows  # np.isin: twice as long
    found, first = np.unique(rows[hit], return_index=True)  # each picked row's first, nearest, playlist
    nearest = owner[hit][first].tolist()
    return {r: str(snap.playlist_names[named[o]]) for r, o in zip(found.tolist(), nearest, strict=True)}


def liked_reasons(snap: Snapshot, picks: list[int], likes: np.ndarray) -> list[str | None]:
    """Per picked row, the like that led there: "because you liked <Title> — <Artist>", naming the liked track whose
    embedding is closest to the pick."""
    if not len(likes) or not picks:
        return [None] * len(picks)
    closest = likes[np.argmax(snap.track_z[picks] @ snap.track_z[likes].T, axis=1)]  # [len(picks)] rows
    return [f"because you liked {snap.track_names[i]} — {snap.track_artists[i]}" for i in closest.tolist()]


def audio_profile(snap: Snapshot, rows: Mapping[str, int]) -> dict[str, dict[str, float]]:
    """Per track id (-> row), each of REASON_FEATURES as a z-score over the whole catalogue: 0 is the typical song, +1
    one standard deviation above it."""
    centre, spread = _catalogue_sound(snap)
    z = (snap.audio[list(rows.values())] - centre) / spread  # [len(rows), len(REASON_FEATURES)]
    return {t: dict(zip(REASON_FEATURES, row, strict=True)) for t, row in zip(rows, z.tolist(), strict=True)}


def _catalogue_sound(snap: Snapshot) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of each audio column, once per snapshot (66 ms for a million tracks).

    Snapshot.audio is standardised already unless the model scaled min-max (design_gcn); standardising it again
    makes both read alike, as a z-score survives any per-column scaling."""
    found = _CATALOGUE_SOUND.get(snap)
    if found is None:
        spread = snap.audio.std(axis=0, dtype=np.float64)  # [len(REASON_FEATURES)]
        found = snap.audio.mean(axis=0, dtype=np.float64), np.where(spread > 1e-8, spread, 1.0)  # constant: all 0
        _CATALOGUE_SOUND[snap] = found
    return found


def _closest_features(centre: np.ndarray, audio: np.ndarray) -> str | None:
    gap = np.abs(centre - audio)
    closest = np.argsort(gap)[:2]
    if gap[closest[0]] >= CLOSE_GAP:
        return None
    return f"close in {' and '.join(REASON_FEATURES[c] for c in sorted(closest.tolist()))}"
