"""The immutable trained model: embeddings, id maps and metadata, checked when made or loaded.

Queries are small modules over it (recsys.ranking, recsys.names, recsys.explain, recsys.resolve); the methods
here are the public API and only call them. Files are recsys.store's business.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recsys import ann, explain, ranking
from recsys.errors import (
    InvalidQueryError,
    SnapshotError,
    UnknownListenerError,
    UnknownPlaylistError,
    UnknownTrackError,
)
from recsys.listeners import check_ratings, with_empty_listeners
from recsys.name_index import NameIndexConfig
from recsys.names import NameSearch, artist_keys, fold, song_groups
from recsys.results import SearchHit, Track
from recsys.store import FORMAT_VERSION, ModelDir, load_path

__all__ = ["SearchHit", "Snapshot", "SnapshotInfo", "Track", "fold", "load"]

log = logging.getLogger(__name__)

REASON_FEATURES = explain.REASON_FEATURES
TEXT_KEYS = (
    "track_ids",
    "track_names",
    "track_artists",
    "album_names",
    "playlist_ids",
    "playlist_names",
    "listener_ids",
)


_FIELD_TYPES: dict[str, type | tuple[type, ...]] = {"int": int, "float": (int, float), "str": str}


@dataclass(frozen=True)
class SnapshotInfo:
    """What a snapshot is: shown by /status and stored in meta.json."""

    version: str
    created_at: str
    data_fingerprint: str
    num_tracks: int
    num_playlists: int
    metrics: dict[str, float]
    train_seconds: float
    model_kind: str
    config: dict[str, Any]
    format_version: int = FORMAT_VERSION
    # Listener nodes trained with the model (recsys.listeners); never counted in num_playlists. 0 in older files.
    num_listeners: int = 0

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> SnapshotInfo:
        """The info of a meta.json object; SnapshotError when a field is missing or of the wrong type."""
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            value = meta.get(f.name, f.default)
            expected = _FIELD_TYPES.get(str(f.type), dict)
            if value is dataclasses.MISSING or not isinstance(value, expected) or isinstance(value, bool):
                raise SnapshotError(f"meta.json field {f.name!r} is {value!r}; the snapshot is corrupt: retrain it")
            values[f.name] = value
        if not all(isinstance(v, int | float) for v in values["metrics"].values()):
            raise SnapshotError("meta.json metrics are not all numbers; the snapshot is corrupt: retrain it")
        return cls(**values)


def _check(arrays: dict[str, np.ndarray], info: SnapshotInfo) -> None:
    """Every array of the right kind, shape and index range: a bad snapshot fails here, not in a later query."""

    def need(key: str, kinds: str, shape: tuple[int | None, ...]) -> np.ndarray:
        if key not in arrays:
            raise SnapshotError(f"snapshot array {key!r} is missing")
        a = arrays[key]
        fits = a.ndim == len(shape) and all(s in (None, n) for s, n in zip(shape, a.shape, strict=True))
        if a.dtype.kind not in kinds or not fits:
            want = "x".join("n" if s is None else str(s) for s in shape)
            raise SnapshotError(f"snapshot array {key!r} is {a.dtype} {a.shape}; expected kind {kinds!r}, shape {want}")
        return a

    t, p = len(need("track_ids", "O", (None,))), len(need("playlist_ids", "O", (None,)))
    for key, rows in (("track_names", t), ("track_artists", t), ("album_names", t), ("playlist_names", p)):
        need(key, "O", (rows,))
    need("years", "f", (t,))
    need("popularity", "f", (t,))
    dim = need("track_z", "f", (t, None)).shape[1]
    need("playlist_z", "f", (p, dim))
    if dim < 1:
        raise SnapshotError("snapshot embeddings have no dimensions")
    if not np.isfinite(need("audio", "f", (t, len(REASON_FEATURES)))).all():
        raise SnapshotError("snapshot array 'audio' holds NaN or infinity")
    if not (np.isfinite(arrays["track_z"]).all() and np.isfinite(arrays["playlist_z"]).all()):
        raise SnapshotError("snapshot embeddings contain NaN or infinity; retrain the model")
    edges = need("edges", "iu", (2, None))
    if edges.size and (edges.min() < 0 or edges[0].max() >= p or edges[1].max() >= t):
        raise SnapshotError("snapshot edges point outside the catalogue")
    if (info.num_tracks, info.num_playlists) != (t, p):
        raise SnapshotError(
            f"meta.json says {info.num_tracks} tracks / {info.num_playlists} playlists, arrays hold {t} / {p}"
        )
    listeners = len(need("listener_ids", "O", (None,)))
    if not np.isfinite(need("listener_z", "f", (listeners, dim))).all():
        raise SnapshotError("snapshot listener embeddings contain NaN or infinity; retrain the model")
    for key in ("listener_likes", "listener_dislikes"):
        rated = need(key, "iu", (2, None))
        if rated.size and (rated.min() < 0 or rated[0].max() >= listeners or rated[1].max() >= t):
            raise SnapshotError(f"snapshot array {key!r} points outside the listeners or the catalogue")
    if info.num_listeners != listeners:
        raise SnapshotError(f"meta.json says {info.num_listeners} listeners, arrays hold {listeners}")


def _positions(ids: np.ndarray, what: str) -> dict[str, int]:
    pos = {str(x): i for i, x in enumerate(ids.tolist())}
    if len(pos) != len(ids):
        raise SnapshotError(f"snapshot {what} ids are not unique")
    return pos


def _grouped(keys: np.ndarray, values: np.ndarray, groups: int) -> tuple[np.ndarray, np.ndarray]:
    """(ptr [groups + 1], values sorted by key): group g's values are values[ptr[g]:ptr[g + 1]]."""
    order = np.argsort(keys, kind="stable")
    return np.searchsorted(keys[order], np.arange(groups + 1)), values[order]


class Snapshot:
    """A trained model, read-only. Build with recsys.train() or recsys.load(); query with the methods below."""

    def __init__(
        self,
        arrays: dict[str, np.ndarray],
        info: SnapshotInfo,
        *,
        ann_config: ann.AnnConfig | None = None,
        name_index_config: NameIndexConfig | None = None,
    ) -> None:
        arrays = {k: (v.astype(object) if v.dtype.kind == "U" else v) for k, v in with_empty_listeners(arrays).items()}
        _check(arrays, info)
        for a in arrays.values():
            a.setflags(write=False)
        self.info = info
        self._arrays = arrays
        self.track_ids: np.ndarray = arrays["track_ids"]
        self.track_names: np.ndarray = arrays["track_names"]
        self.track_artists: np.ndarray = arrays["track_artists"]
        self.album_names: np.ndarray = arrays["album_names"]
        self.years: np.ndarray = arrays["years"]
        self.popularity: np.ndarray = arrays["popularity"]
        self.audio: np.ndarray = arrays["audio"]  # [T, len(REASON_FEATURES)] standardised
        self.playlist_ids: np.ndarray = arrays["playlist_ids"]
        self.playlist_names: np.ndarray = arrays["playlist_names"]
        self.edges: np.ndarray = arrays["edges"]  # [2, E] playlist_idx, track_idx
        self.track_z: np.ndarray = arrays["track_z"]  # [T, d] L2-normalised
        self.playlist_z: np.ndarray = arrays["playlist_z"]  # [P, d] L2-normalised
        self.listener_ids: np.ndarray = arrays["listener_ids"]  # [L] listener nodes trained with the model
        self.listener_z: np.ndarray = arrays["listener_z"]  # [L, d] L2-normalised
        self.listener_likes: np.ndarray = arrays["listener_likes"]  # [2, n] listener_idx, track_idx at training
        self.listener_dislikes: np.ndarray = arrays["listener_dislikes"]  # [2, m] idem
        self._track_pos = _positions(self.track_ids, "track")
        self._playlist_pos = _positions(self.playlist_ids, "playlist")
        self._listener_pos = _positions(self.listener_ids, "listener")
        num_tracks, num_listeners = len(self.track_ids), len(self.listener_ids)
        self._pl_ptr, self._pl_tracks = _grouped(self.edges[0], self.edges[1], len(self.playlist_ids))
        self._like_ptr, self._like_rows = _grouped(self.listener_likes[0], self.listener_likes[1], num_listeners)
        self._dislike_ptr, self._dislike_rows = _grouped(
            self.listener_dislikes[0], self.listener_dislikes[1], num_listeners
        )
        self._tr_ptr, self._tr_playlists = _grouped(self.edges[1], self.edges[0], num_tracks)
        # Versions of one song count once in every list (recsys.names.song_key says what "the same song" is).
        self.songs: np.ndarray = song_groups(self.track_names.tolist(), self.track_artists.tolist())
        self._song_ptr, self._song_rows = _grouped(
            self.songs, np.arange(num_tracks), int(self.songs.max(initial=-1)) + 1
        )
        self.names = NameSearch(
            self.track_names.tolist(),
            self.track_artists.tolist(),
            self.popularity,
            self.songs,
            saved=arrays,
            config=name_index_config,
        )
        self.artist_groups: np.ndarray = np.unique(artist_keys(self.track_artists.tolist()), return_inverse=True)[1]
        # Large catalogues: an approximate index proposes top-k candidates (None: exact search, as for 28k tracks).
        self.ann = ann.index_for(self.track_z, arrays.get(ann.INDEX_KEY), ann_config)

    def __repr__(self) -> str:
        i = self.info
        return (
            f"Snapshot(version={i.version!r}, tracks={i.num_tracks}, playlists={i.num_playlists}, model={i.model_kind})"
        )

    # ----- lookups -----

    def _idx(self, track_id: str) -> int:
        try:
            return self._track_pos[track_id]
        except KeyError:
            raise UnknownTrackError(track_id) from None

    def _playlist_idx(self, playlist_id: str) -> int:
        try:
            return self._playlist_pos[playlist_id]
        except KeyError:
            raise UnknownPlaylistError(playlist_id) from None

    def _listener_idx(self, listener_id: str) -> int:
        try:
            return self._listener_pos[listener_id]
        except (KeyError, TypeError):
            raise UnknownListenerError(listener_id) from None

    def _known_rows(self, track_ids: Sequence[str]) -> np.ndarray:
        """Rows of the ids this catalogue holds, first occurrence order; unknown ids are skipped."""
        rows = [self._track_pos[t] for t in dict.fromkeys(track_ids) if t in self._track_pos]
        return np.array(rows, dtype=np.int64)

    def _seed_rows(self, track_ids: Sequence[str]) -> np.ndarray:
        if not track_ids:
            raise InvalidQueryError("a new playlist needs at least one seed track_id; got none")
        return np.array(sorted({self._idx(t) for t in track_ids}), dtype=np.int64)

    def playlist_rows(self, playlist_idx: int) -> np.ndarray:
        """Track rows of a training playlist."""
        return self._pl_tracks[self._pl_ptr[playlist_idx] : self._pl_ptr[playlist_idx + 1]]

    def playlists_of(self, idx: int) -> np.ndarray:
        """Playlist rows a track row is in."""
        return self._tr_playlists[self._tr_ptr[idx] : self._tr_ptr[idx + 1]]

    def listener_rows(self, listener_idx: int) -> tuple[np.ndarray, np.ndarray]:
        """(liked, disliked) track rows of a listener node when it was trained."""
        lo, hi = self._like_ptr[listener_idx], self._like_ptr[listener_idx + 1]
        dlo, dhi = self._dislike_ptr[listener_idx], self._dislike_ptr[listener_idx + 1]
        return self._like_rows[lo:hi], self._dislike_rows[dlo:dhi]

    def has_listener(self, listener_id: str) -> bool:
        """Whether the model was trained with this listener's node (recommend_for_listener then answers)."""
        return listener_id in self._listener_pos

    def versions_of(self, idx: int) -> np.ndarray:
        """Track rows of the same song as row idx (itself included), sorted."""
        song = self.songs[idx]
        return np.sort(self._song_rows[self._song_ptr[song] : self._song_ptr[song + 1]])

    def result(self, idx: int, score: float, reason: str | None = None) -> Track:
        """The Track record of a row."""
        year, pop = self.years[idx], self.popularity[idx]
        return Track(
            track_id=str(self.track_ids[idx]),
            name=str(self.track_names[idx]),
            artist=str(self.track_artists[idx]),
            album=str(self.album_names[idx]),
            year=None if np.isnan(year) else int(year),
            popularity=None if np.isnan(pop) else float(pop),
            score=float(score),
            reason=reason,
        )

    def track(self, track_id: str) -> Track:
        """Metadata of one track (score 0)."""
        return self.result(self._idx(track_id), 0.0)

    def audio_profile(self, track_ids: Sequence[str]) -> dict[str, dict[str, float]]:
        """Per track id, its sound (recsys.explain.REASON_FEATURES) as z-scores over the catalogue: 0 is the typical
        song, +1 one standard deviation above it. UnknownTrackError for an id the catalogue lacks."""
        return explain.audio_profile(self, {t: self._idx(t) for t in track_ids})

    def playlist_tracks(self, playlist_id: str) -> list[str]:
        """Track ids of a training playlist."""
        return [str(self.track_ids[i]) for i in self.playlist_rows(self._playlist_idx(playlist_id))]

    # ----- scores of the whole catalogue (what the evaluation ranks with recsys.ranking.top_k) -----

    def track_scores(self, track_id: str) -> np.ndarray:
        """Similarity of every catalogue track to one track. [num_tracks], aligned with track_ids."""
        return self.track_z @ self.track_z[self._idx(track_id)]

    def playlist_scores(self, playlist_id: str) -> np.ndarray:
        """How well every catalogue track continues a training playlist. [num_tracks]"""
        return self.track_z @ self.playlist_z[self._playlist_idx(playlist_id)]

    def seed_scores(self, track_ids: Sequence[str]) -> np.ndarray:
        """How well every catalogue track continues a new playlist made of the seed tracks. [num_tracks]"""
        return ranking.seed_scores(self.track_z, self._seed_rows(track_ids))

    def listener_scores(self, listener_id: str) -> np.ndarray:
        """How well every catalogue track suits a trained listener node. [num_tracks]"""
        return self.track_z @ self.listener_z[self._listener_idx(listener_id)]

    # ----- recommendations -----

    def _tracks(self, picks: ranking.Picks, reasons: list[str | None]) -> list[Track]:
        rows, scores = picks
        return [self.result(i, s, r) for i, s, r in zip(rows, scores.tolist(), reasons, strict=True)]

    def similar_tracks(self, track_id: str, k: int = 10) -> list[Track]:
        """The k songs most similar to the track, excluding it and other versions of the same song."""
        q = self._idx(track_id)
        picks = ranking.similar(self, q, k)
        return self._tracks(picks, explain.reasons(self, picks[0], np.array([q])))

    def recommend_for_playlist(self, playlist_id: str, k: int = 10) -> list[Track]:
        """The k tracks that best continue a training playlist, excluding its own tracks."""
        p = self._playlist_idx(playlist_id)
        picks = ranking.continue_playlist(self, p, k)
        return self._tracks(picks, explain.reasons(self, picks[0], self.playlist_rows(p)))

    def recommend_for_tracks(self, track_ids: Sequence[str], k: int = 10) -> list[Track]:
        """The k tracks that best continue a new playlist made of the given seed tracks (excluded)."""
        seeds = self._seed_rows(track_ids)
        picks = ranking.continue_seeds(self, seeds, k)
        return self._tracks(picks, explain.reasons(self, picks[0], seeds))

    def recommend_for_listener(self, listener_id: str, k: int = 10) -> list[Track]:
        """The k tracks that best suit a listener the model was trained with, excluding every track it had rated
        then (and their other versions). UnknownListenerError for a listener the model has no node for."""
        listener = self._listener_idx(listener_id)
        picks = ranking.continue_listener(self, listener, k)
        return self._tracks(picks, explain.liked_reasons(self, picks[0], self.listener_rows(listener)[0]))

    def recommend_for_ratings(
        self,
        likes: Sequence[str],
        dislikes: Sequence[str] = (),
        k: int = 10,
        *,
        listener_id: str | None = None,
        shown: Sequence[str] = (),
    ) -> list[Track]:
        """The k tracks for a listener's current ratings (the bot's /forme): near the likes, away from the
        dislikes, blended with the listener's trained node when the model has one; liked and disliked tracks
        excluded, tracks in `shown` ranked down (recsys.ranking.for_ratings). Track ids the catalogue lacks are
        ignored; InvalidQueryError when no liked track is left."""
        check_ratings(likes, dislikes)
        if isinstance(shown, str | bytes):
            raise InvalidQueryError(f"shown must be a sequence of track_id strings; got {shown!r:.80}")
        like_rows = self._known_rows(likes)
        if not len(like_rows):
            raise InvalidQueryError(
                f"none of the {len(set(likes))} liked track ids is in this model's catalogue; like a song from it first"
            )
        if listener_id is not None and not isinstance(listener_id, str):
            raise InvalidQueryError(f"listener_id is a str (a Telegram user id as text); got {listener_id!r:.80}")
        listener = self._listener_pos.get(listener_id) if listener_id is not None else None
        picks = ranking.for_ratings(
            self, like_rows, self._known_rows(dislikes), listener, self._known_rows(shown), k, ranking.RatingsConfig()
        )
        return self._tracks(picks, explain.liked_reasons(self, picks[0], like_rows))

    def search(self, text: str, limit: int = 5) -> list[SearchHit]:
        """Fuzzy search over title, artist and "title artist"; one hit per song, best match first."""
        return [SearchHit(self.result(i, match), match) for i, match in self.names.search(text, limit)]

    # ----- persistence -----

    def _saved_arrays(self) -> dict[str, np.ndarray]:
        arrays = dict(self._arrays)
        if self.ann is not None and ann.INDEX_KEY not in arrays:
            arrays[ann.INDEX_KEY] = self.ann.to_array()  # saved with the snapshot: no rebuild at load
        if self.names.index is not None:
            arrays |= self.names.index.to_arrays()
        return arrays

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Save into a model directory: staged, fsynced, then renamed into place; the previous snapshot is kept as
        <dir>.prev. Refuses (SnapshotError) a directory that is not a snapshot and one another process is saving to."""
        return ModelDir(directory).save(self._saved_arrays(), dataclasses.asdict(self.info))

    def stage(self, directory: str | os.PathLike[str]) -> Path:
        """Write a staged copy beside a model directory whose lock the caller (or its parent process) holds, to be
        promoted with recsys.store.ModelDir(directory).promote(path) once checked."""
        return ModelDir(directory).stage(self._saved_arrays(), dataclasses.asdict(self.info))


def load(directory: str | os.PathLike[str]) -> Snapshot:
    """Load a saved snapshot; if a save was interrupted between its renames, fall back to <dir>.prev."""
    arrays, meta, path = load_path(directory)
    if path != ModelDir(directory).path:
        log.warning("snapshot %s is missing; loading the previous one at %s", directory, path)
    try:
        return Snapshot(arrays, SnapshotInfo.from_meta(meta))
    except SnapshotError as exc:
        raise SnapshotError(f"snapshot {str(path)!r} is unusable: {exc}") from exc
