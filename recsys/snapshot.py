"""The immutable trained model: embeddings, id maps and metadata, checked when made or loaded.

Queries are small modules over it (recsys.ranking, recsys.names, recsys.explain, recsys.resolve); the methods
here are the public API and only call them. Files are recsys.store's business.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from recsys import ann, explain, ranking, ratings
from recsys import text as text_queries
from recsys.errors import (
    InvalidQueryError,
    RecsysError,
    SnapshotError,
    UnknownListenerError,
    UnknownPlaylistError,
    UnknownTrackError,
)
from recsys.listeners import check_ratings, with_empty_listeners
from recsys.name_index import NameIndexConfig
from recsys.names import GROUPING_VERSION, NameSearch, artist_groups, fold, song_groups
from recsys.results import SearchHit, Track
from recsys.snapshot_arrays import SnapshotInfo, check_arrays, grouped, positions
from recsys.store import ModelDir, load_path

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


# The song and artist groups (recsys.names) saved with a snapshot, under the grouping rule's version.
SONGS_KEY, ARTISTS_KEY = f"song_groups_v{GROUPING_VERSION}", f"artist_groups_v{GROUPING_VERSION}"


def _saved_groups(arrays: dict[str, np.ndarray], key: str, num_tracks: int) -> np.ndarray | None:
    """A saved group index per track [T] if the snapshot has a well-formed one under this version, else None."""
    found = arrays.get(key)
    if found is None or found.dtype.kind not in "iu" or found.shape != (num_tracks,):
        return None
    if num_tracks and (found.min() < 0 or found.max() >= num_tracks):
        return None
    return found.astype(np.int64, copy=False)


class Snapshot:
    """A trained model, read-only. Build with recsys.train() or recsys.load(); query with the methods below."""

    def __init__(
        self,
        arrays: dict[str, np.ndarray],
        info: SnapshotInfo,
        *,
        ann_config: ann.AnnConfig | None = None,
        name_index_config: NameIndexConfig | None = None,
        lists: ranking.ListConfig | None = None,
    ) -> None:
        arrays = {k: (v.astype(object) if v.dtype.kind == "U" else v) for k, v in with_empty_listeners(arrays).items()}
        check_arrays(arrays, info)
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
        self._track_pos = positions(self.track_ids, "track")
        self._playlist_pos = positions(self.playlist_ids, "playlist")
        self._listener_pos = positions(self.listener_ids, "listener")
        num_tracks, num_listeners = len(self.track_ids), len(self.listener_ids)
        self._pl_ptr, self._pl_tracks = grouped(self.edges[0], self.edges[1], len(self.playlist_ids))
        self._like_ptr, self._like_rows = grouped(self.listener_likes[0], self.listener_likes[1], num_listeners)
        self._dislike_ptr, self._dislike_rows = grouped(
            self.listener_dislikes[0], self.listener_dislikes[1], num_listeners
        )
        self._tr_ptr, self._tr_playlists = grouped(self.edges[1], self.edges[0], num_tracks)
        # Versions of one song count once in every list (recsys.names.song_key says what "the same song" is).
        # Grouping folds every name (6 s at 2.26M tracks): saved with the snapshot, recomputed only when missing.
        songs = _saved_groups(arrays, SONGS_KEY, num_tracks)
        if songs is None:
            songs = song_groups(self.track_names.tolist(), self.track_artists.tolist())
        self.songs: np.ndarray = songs
        self._song_ptr, self._song_rows = grouped(
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
        artists = _saved_groups(arrays, ARTISTS_KEY, num_tracks)
        self.artist_groups: np.ndarray = artist_groups(self.track_artists.tolist()) if artists is None else artists
        # Large catalogues: an approximate index proposes top-k candidates (None: exact search, as for 28k tracks).
        self.ann = ann.index_for(self.track_z, arrays.get(ann.INDEX_KEY), ann_config)
        # An artist's rows, by the index's list that holds them when there is an index (artist_in_lists reads them).
        self._artist_ptr, self._artist_rows = grouped(
            self.artist_groups,
            np.arange(num_tracks),
            int(self.artist_groups.max(initial=-1)) + 1,
            within=self.ann.list_of if self.ann is not None else None,
        )
        self._artist_lists = self.ann.list_of[self._artist_rows] if self.ann is not None else None
        self._left_out = ann.cached_left_out(self.ann, self.artist_rows) if self.ann is not None else None
        # The same over playlists (the Million Playlist Dataset has a million): similar songs' nearest playlists.
        self.playlist_ann = ann.index_for(self.playlist_z, arrays.get(ann.PLAYLIST_INDEX_KEY), ann_config)
        self.text_index = text_queries.TextIndex.from_arrays(arrays)  # words -> vectors; None in older snapshots
        self.lists = lists or ranking.ListConfig()  # the artist cap and popularity preference of every list
        # How similar songs score: the original design (design_gcn, a baseline) keeps its cosine top 10; its playlist
        # embeddings come from random features and say little about where a song belongs.
        original = info.model_kind == "design_gcn"
        self.similar = ranking.SimilarConfig(playlist_weight=0.0) if original else ranking.SimilarConfig()

    def with_lists(
        self,
        *,
        max_per_artist: int | None = None,
        popularity: float | None = None,
        similar_max_per_artist: int | None = None,
        text_max_per_artist: int | None = None,
    ) -> Snapshot:
        """This model serving lists with other knobs (recsys.ranking.ListConfig): at most max_per_artist songs of one
        artist in every list (0: no cap; similar_max_per_artist and text_max_per_artist set the caps of similar songs
        and of a phrase's list apart), and a popularity preference in [-1, 1] (> 0 hits, < 0 deep cuts, 0 fit alone).
        Unset knobs keep their value. Shares every array with this snapshot; InvalidQueryError for a knob out of
        range."""
        lists = self.lists
        if max_per_artist is not None:
            similar_max_per_artist = max_per_artist if similar_max_per_artist is None else similar_max_per_artist
            text_max_per_artist = max_per_artist if text_max_per_artist is None else text_max_per_artist
        other = copy.copy(self)
        other.lists = ranking.ListConfig(
            max_per_artist=lists.max_per_artist if max_per_artist is None else max_per_artist,
            similar_max_per_artist=(
                lists.similar_max_per_artist if similar_max_per_artist is None else similar_max_per_artist
            ),
            text_max_per_artist=lists.text_max_per_artist if text_max_per_artist is None else text_max_per_artist,
            popularity=lists.popularity if popularity is None else popularity,
        )
        return other

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

    def artist_rows(self, groups: np.ndarray) -> np.ndarray:
        """Track rows of the given artist groups (recsys.names.artist_groups)."""
        return np.concatenate(
            [self._artist_rows[self._artist_ptr[g] : self._artist_ptr[g + 1]] for g in groups.tolist()]
            or [np.zeros(0, dtype=np.int64)]
        )

    def artist_size(self, group: int) -> int:
        """How many tracks an artist group has."""
        return int(self._artist_ptr[group + 1] - self._artist_ptr[group])

    def artist_in_lists(self, group: int, lists: np.ndarray, limit: int) -> np.ndarray:
        """An artist group's rows that the track index's lists hold (nearest first, a Probe's), sorted: what a search
        scanning them meets of the artist; past limit rows, those of the nearest lists."""
        if self._artist_lists is None:  # None exactly when the snapshot has no index
            raise RecsysError("this snapshot has no approximate index")
        lo, hi = self._artist_ptr[group], self._artist_ptr[group + 1]
        return ann.rows_in(self._artist_rows[lo:hi], self._artist_lists[lo:hi], lists, limit)

    def left_out(self, groups: np.ndarray) -> ann.LeftOut:
        """These artist groups' rows in the form the track index leaves them out of a search (snapshots with one)."""
        if self._left_out is None:
            raise RecsysError("this snapshot has no approximate index")
        return self._left_out(tuple(groups.tolist()))

    def versions_of(self, idx: int) -> np.ndarray:
        """Track rows of the same song as row idx (itself included), sorted."""
        song = self.songs[idx]
        return np.sort(self._song_rows[self._song_ptr[song] : self._song_ptr[song + 1]])

    def result(self, idx: int, score: float, reason: str | None = None) -> Track:
        """The Track record of a row."""
        return self.results([idx], [score], [reason])[0]

    def results(self, rows: Sequence[int], scores: Sequence[float], reasons: Sequence[str | None]) -> list[Track]:
        """The Track records of rows, each with its score and reason (read column by column: a list is one call)."""
        at = np.asarray(rows, dtype=np.int64)
        columns = (self.track_ids, self.track_names, self.track_artists, self.album_names, self.years, self.popularity)
        ids, names, artists, albums, years, pops = (c[at].tolist() for c in columns)
        return [
            Track(
                track_id=str(ids[n]),
                name=str(names[n]),
                artist=str(artists[n]),
                album=str(albums[n]),
                year=None if math.isnan(years[n]) else int(years[n]),
                popularity=None if math.isnan(pops[n]) else float(pops[n]),
                score=float(score),
                reason=reason,
            )
            for n, (score, reason) in enumerate(zip(scores, reasons, strict=True))
        ]

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
        """Similarity of every catalogue track to one track (recsys.ranking.similar_scores). [num_tracks], aligned
        with track_ids."""
        return ranking.similar_scores(self, self._idx(track_id))

    def playlist_scores(self, playlist_id: str) -> np.ndarray:
        """How well every catalogue track continues a training playlist. [num_tracks]"""
        return self.track_z @ self.playlist_z[self._playlist_idx(playlist_id)]

    def seed_scores(self, track_ids: Sequence[str]) -> np.ndarray:
        """How well every catalogue track continues a new playlist made of the seed tracks. [num_tracks]"""
        return ranking.new_playlist_scores(self, self._seed_rows(track_ids))

    def text_scores(self, text: str) -> np.ndarray:
        """How well every catalogue track fits a mood, activity, genre or decade phrase (recsys.text). [num_tracks]"""
        return text_queries.scores(self, text)

    def listener_scores(self, listener_id: str) -> np.ndarray:
        """How well every catalogue track suits a trained listener node. [num_tracks]"""
        return self.track_z @ self.listener_z[self._listener_idx(listener_id)]

    # ----- recommendations -----

    def _tracks(self, picks: ranking.Picks, reasons: list[str | None]) -> list[Track]:
        rows, scores = picks
        return self.results(rows, scores.tolist(), reasons)

    def similar_tracks(self, track_id: str, k: int = 10) -> list[Track]:
        """The k songs most similar to the track (recsys.ranking.similar_scores: the embeddings' cosine plus the songs
        of the training playlists it would be put in), excluding it and other versions of the same song."""
        q = self._idx(track_id)
        near = ranking.nearest_playlists(self, self.track_z[q])  # scores the list and names its reasons
        picks = ranking.similar(self, q, k, near)
        return self._tracks(picks, explain.reasons(self, picks[0], np.array([q]), near[0]))

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
        excluded, tracks in `shown` ranked down (recsys.ratings.for_ratings). Track ids the catalogue lacks are
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
        picks = ratings.for_ratings(
            self, like_rows, self._known_rows(dislikes), listener, self._known_rows(shown), k, ratings.RatingsConfig()
        )
        return self._tracks(picks, explain.liked_reasons(self, picks[0], like_rows))

    def recommend_for_text(self, text: str, k: int = 10) -> list[Track]:
        """The k tracks that best fit a phrase like "workout", "90s rock" or "chill" (recsys.text), one version per
        song, each reason naming the words that led there. InvalidQueryError when no word is known (its message
        suggests some) or the model predates text queries."""
        return self._tracks(*text_queries.recommend(self, text, k))

    def search(self, text: str, limit: int = 5) -> list[SearchHit]:
        """Fuzzy search over title, artist and "title artist"; one hit per song, best match first."""
        return [SearchHit(self.result(i, match), match) for i, match in self.names.search(text, limit)]

    # ----- persistence -----

    def _saved_arrays(self) -> dict[str, np.ndarray]:
        arrays = dict(self._arrays)
        if self.ann is not None and ann.INDEX_KEY not in arrays:
            arrays[ann.INDEX_KEY] = self.ann.to_array()  # saved with the snapshot: no rebuild at load
        if self.playlist_ann is not None and ann.PLAYLIST_INDEX_KEY not in arrays:
            arrays[ann.PLAYLIST_INDEX_KEY] = self.playlist_ann.to_array()
        if self.names.index is not None:
            arrays |= self.names.index.to_arrays()
        arrays.setdefault(SONGS_KEY, self.songs)
        arrays.setdefault(ARTISTS_KEY, self.artist_groups)
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
