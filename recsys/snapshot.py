"""The immutable trained model: embeddings, id maps, metadata and name index, saved atomically without pickle."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import tempfile
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rapidfuzz import fuzz, process, utils

from recsys import ann
from recsys.errors import InvalidQueryError, SnapshotError, UnknownPlaylistError, UnknownTrackError
from recsys.files import fsync_dir, sha256_file
from recsys.name_index import NameIndex, NameIndexConfig

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
ARRAYS_FILE = "arrays.npz"
META_FILE = "meta.json"
# Audio features named in reasons ("close in energy and danceability"), by column of Snapshot.audio.
# Softness of the maximum over seed tracks in seed_scores (the training loss's softmax temperature).
SEED_TEMPERATURE = 0.1
# How many rough-match candidates the precise fuzzy scorer ranks in search().
SEARCH_CANDIDATES = 300
REASON_FEATURES = ("danceability", "energy", "valence", "acousticness", "tempo")


@dataclass(frozen=True)
class Track:
    """One recommended or found track."""

    track_id: str
    name: str
    artist: str
    album: str
    year: int | None
    popularity: float | None
    score: float
    reason: str | None = None

    @property
    def url(self) -> str:
        return f"https://open.spotify.com/track/{self.track_id}"


@dataclass(frozen=True)
class SearchHit:
    """A fuzzy search result: the track and how well its name matched (0..100)."""

    track: Track
    match: float


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


def _ro(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


def fold(text: str) -> str:
    """Lower case, punctuation to spaces, accents dropped: "Señorita" and "senorita" are the same word."""
    if text.isascii():  # nothing to decompose: the common case, and 5x faster (a snapshot folds every name)
        return utils.default_process(text)
    decomposed = unicodedata.normalize("NFKD", text)
    return utils.default_process("".join(ch for ch in decomposed if not unicodedata.combining(ch)))


def _song_keys_folded(titles: list[str], artists: list[str]) -> np.ndarray:
    keys = [f"{n}\x1f{a}" for n, a in zip(titles, artists, strict=True)]
    return np.unique(np.array(keys, dtype=str), return_inverse=True)[1].astype(np.int64)


def song_keys(names: np.ndarray, artists: np.ndarray) -> np.ndarray:
    """Group index per track: tracks with the same normalised (title, artist) are versions of one song."""
    return _song_keys_folded([fold(n) for n in names.tolist()], [fold(a) for a in artists.tolist()])


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
        self.info = info
        self.track_ids: np.ndarray = _ro(arrays["track_ids"])
        self.track_names: np.ndarray = _ro(arrays["track_names"])
        self.track_artists: np.ndarray = _ro(arrays["track_artists"])
        self.album_names: np.ndarray = _ro(arrays["album_names"])
        self.years: np.ndarray = _ro(arrays["years"])
        self.popularity: np.ndarray = _ro(arrays["popularity"])
        self.audio: np.ndarray = _ro(arrays["audio"])  # [T, len(REASON_FEATURES)] standardised
        self.playlist_ids: np.ndarray = _ro(arrays["playlist_ids"])
        self.playlist_names: np.ndarray = _ro(arrays["playlist_names"])
        self.edges: np.ndarray = _ro(arrays["edges"])  # [2, E] playlist_idx, track_idx
        self.track_z: np.ndarray = _ro(arrays["track_z"])  # [T, d] L2-normalised
        self.playlist_z: np.ndarray = _ro(arrays["playlist_z"])  # [P, d] L2-normalised
        self._arrays = arrays
        self._check()
        self._track_pos = {t: i for i, t in enumerate(self.track_ids.tolist())}
        self._playlist_pos = {p: i for i, p in enumerate(self.playlist_ids.tolist())}
        artists_norm = np.char.lower(self.track_artists.astype(str))
        self._artist = np.unique(artists_norm, return_inverse=True)[1]
        order = np.argsort(self.edges[0], kind="stable")
        self._pl_ptr = np.searchsorted(self.edges[0][order], np.arange(len(self.playlist_ids) + 1))
        self._pl_tracks = self.edges[1][order]
        order_t = np.argsort(self.edges[1], kind="stable")
        self._tr_ptr = np.searchsorted(self.edges[1][order_t], np.arange(len(self.track_ids) + 1))
        self._tr_playlists = self.edges[0][order_t]
        self._titles = [fold(n) for n in self.track_names.tolist()]
        self._artists_proc = [fold(a) for a in self.track_artists.tolist()]
        self._song = _song_keys_folded(self._titles, self._artists_proc)
        self._combined = [f"{t} {a}" for t, a in zip(self._titles, self._artists_proc, strict=True)]
        name_index_config = name_index_config or NameIndexConfig()
        self._name_index = None
        if len(self._titles) >= name_index_config.min_items:
            self._name_index = NameIndex.from_arrays(arrays, len(self._titles), name_index_config) or NameIndex.build(
                self._titles, self._artists_proc, name_index_config
            )
        # Large catalogues: an approximate index proposes top-k candidates (None: exact search, as for 28k tracks).
        self._ann = ann.index_for(self.track_z, arrays.get(ann.INDEX_KEY), ann_config)
        if self._ann is not None:
            song_order = np.argsort(self._song, kind="stable")
            self._song_ptr = np.searchsorted(self._song[song_order], np.arange(int(self._song.max()) + 2))
            self._song_order = song_order

    def _check(self) -> None:
        t, p = len(self.track_ids), len(self.playlist_ids)
        if self.track_z.shape[0] != t or self.playlist_z.shape[0] != p:
            raise SnapshotError(f"snapshot arrays disagree: {t} tracks vs {self.track_z.shape[0]} embeddings")
        if not (np.isfinite(self.track_z).all() and np.isfinite(self.playlist_z).all()):
            raise SnapshotError("snapshot embeddings contain NaN or infinity; retrain the model")
        if self.edges.size and (self.edges[0].max() >= p or self.edges[1].max() >= t):
            raise SnapshotError("snapshot edges point outside the catalogue")

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

    def _result(self, idx: int, score: float, reason: str | None = None) -> Track:
        year = self.years[idx]
        pop = self.popularity[idx]
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
        return self._result(self._idx(track_id), 0.0)

    def playlist_tracks(self, playlist_id: str) -> list[str]:
        """Track ids of a training playlist."""
        p = self._playlist_idx(playlist_id)
        return [str(self.track_ids[i]) for i in self._pl_tracks[self._pl_ptr[p] : self._pl_ptr[p + 1]]]

    def _playlist_idx(self, playlist_id: str) -> int:
        try:
            return self._playlist_pos[playlist_id]
        except KeyError:
            raise UnknownPlaylistError(playlist_id) from None

    def _playlists_of(self, idx: int) -> np.ndarray:
        return self._tr_playlists[self._tr_ptr[idx] : self._tr_ptr[idx + 1]]

    # ----- ranking -----

    def _top(self, scores: np.ndarray, k: int, exclude: np.ndarray, one_per_song: bool = True) -> list[int]:
        """Indices of the k best scores, skipping excluded indices and, optionally, repeated versions of a song."""
        if k <= 0:
            return []
        scores = scores.copy()
        scores[exclude] = -np.inf
        excluded_songs = set(self._song[exclude].tolist()) if one_per_song else set()
        want = min(len(scores), 4 * k + len(exclude) + 8)
        while True:
            cand = np.argpartition(-scores, want - 1)[:want] if want < len(scores) else np.arange(len(scores))
            cand = cand[np.argsort(-scores[cand], kind="stable")]
            out: list[int] = []
            seen = set(excluded_songs)
            for i in cand.tolist():
                if not np.isfinite(scores[i]):
                    break
                song = int(self._song[i])
                if one_per_song and song in seen:
                    continue
                seen.add(song)
                out.append(i)
                if len(out) == k:
                    return out
            if want >= len(scores):
                return out
            want = min(len(scores), want * 4)

    def _top_ann(self, query: np.ndarray, k: int, exclude: np.ndarray) -> tuple[list[int], np.ndarray] | None:
        """_top via the ANN index: candidates rescored exactly; None when too few survive the exclusions."""
        assert self._ann is not None
        if k <= 0:
            return [], np.zeros(0, dtype=np.float32)
        want = 4 * k + len(exclude) + 8
        while want < len(self.track_z) // 4:
            cand = self._ann.search(query, want)
            picks, scores = self._best_of(cand, self.track_z[cand] @ query, k, exclude)
            if len(picks) == k:
                return picks, scores
            want *= 4
        return None

    def _best_of(
        self, cand: np.ndarray, scores: np.ndarray, k: int, exclude: np.ndarray
    ) -> tuple[list[int], np.ndarray]:
        """Like _top, but over candidate rows only: (up to k rows, their scores), one per song, best first."""
        excluded = set(exclude.tolist())
        seen = set(self._song[exclude].tolist())
        out: list[int] = []
        out_scores: list[float] = []
        for j in np.argsort(-scores, kind="stable").tolist():
            i = int(cand[j])
            song = int(self._song[i])
            if i in excluded or song in seen:
                continue
            seen.add(song)
            out.append(i)
            out_scores.append(float(scores[j]))
            if len(out) == k:
                break
        return out, np.array(out_scores, dtype=np.float32)

    def _reasons(self, picks: list[int], seeds: np.ndarray) -> list[str | None]:
        """A short human reason per picked track for why it follows from the seed tracks."""
        seed_artists = set(self._artist[seeds].tolist())
        seed_playlists = set(np.concatenate([self._playlists_of(s) for s in seeds]).tolist()) if len(seeds) else set()
        centre = self.audio[seeds].mean(axis=0) if len(seeds) else None
        out: list[str | None] = []
        for idx in picks:
            if int(self._artist[idx]) in seed_artists:
                out.append("same artist")
                continue
            shared = len(seed_playlists.intersection(self._playlists_of(idx).tolist()))
            if shared:
                out.append(f"shares {shared} playlist{'s' if shared > 1 else ''}")
                continue
            reason = None
            if centre is not None:
                gap = np.abs(centre - self.audio[idx])
                closest = np.argsort(gap)[:2]
                if gap[closest[0]] < 0.5:
                    reason = f"close in {' and '.join(REASON_FEATURES[c] for c in sorted(closest.tolist()))}"
            out.append(reason)
        return out

    def _results(self, picks: list[int], pick_scores: np.ndarray, seeds: np.ndarray) -> list[Track]:
        reasons = self._reasons(picks, seeds)
        return [self._result(i, s, r) for i, s, r in zip(picks, pick_scores.tolist(), reasons, strict=True)]

    def track_scores(self, track_id: str) -> np.ndarray:
        """Similarity of every catalogue track to one track. [num_tracks], aligned with track_ids."""
        q = self._idx(track_id)
        return self.track_z @ self.track_z[q]

    def playlist_scores(self, playlist_id: str) -> np.ndarray:
        """How well every catalogue track continues a training playlist. [num_tracks]"""
        return self.track_z @ self.playlist_z[self._playlist_idx(playlist_id)]

    def seed_scores(self, track_ids: Sequence[str]) -> np.ndarray:
        """How well every catalogue track continues a new playlist made of the seed tracks. [num_tracks]"""
        if not track_ids:
            raise InvalidQueryError("a new playlist needs at least one seed track_id; got none")
        seeds = np.array(sorted({self._idx(t) for t in track_ids}))
        # A soft maximum over the seeds, not their centroid: a playlist mixes artists and moods, and the centroid
        # of five tracks sits near none of them (Recall@20 of new playlists, inner validation split of the real
        # data: centroid 0.052, this 0.074). The temperature is the training loss's.
        sims = self.track_z[seeds] @ self.track_z.T  # [num_seeds, T], cosine in [-1, 1]
        t = SEED_TEMPERATURE
        return (1.0 + t * np.log(np.exp((sims - 1.0) / t).sum(axis=0) / len(seeds))).astype(np.float32)

    def similar_tracks(self, track_id: str, k: int = 10) -> list[Track]:
        """The k songs most similar to the track, excluding it and other versions of the same song."""
        q = self._idx(track_id)
        seeds = np.array([q])
        if self._ann is not None:
            song = self._song[q]
            same = np.sort(self._song_order[self._song_ptr[song] : self._song_ptr[song + 1]])
            hit = self._top_ann(self.track_z[q], k, same)
            if hit is not None:
                return self._results(*hit, seeds)
        scores = self.track_scores(track_id)
        same_song = np.flatnonzero(self._song == self._song[q])
        picks = self._top(scores, k, same_song)
        return self._results(picks, scores[picks], seeds)

    def recommend_for_playlist(self, playlist_id: str, k: int = 10) -> list[Track]:
        """The k tracks that best continue a training playlist, excluding its own tracks."""
        p = self._playlist_idx(playlist_id)
        own = self._pl_tracks[self._pl_ptr[p] : self._pl_ptr[p + 1]]
        if self._ann is not None:
            hit = self._top_ann(self.playlist_z[p], k, own)
            if hit is not None:
                return self._results(*hit, own)
        scores = self.playlist_scores(playlist_id)
        picks = self._top(scores, k, own)
        return self._results(picks, scores[picks], own)

    def recommend_for_tracks(self, track_ids: Sequence[str], k: int = 10) -> list[Track]:
        """The k tracks that best continue a new playlist made of the given seed tracks (excluded)."""
        scores = self.seed_scores(track_ids)
        seeds = np.array(sorted({self._idx(t) for t in track_ids}))
        picks = self._top(scores, k, seeds)
        return self._results(picks, scores[picks], seeds)

    # ----- search -----

    def search(self, text: str, limit: int = 5) -> list[SearchHit]:
        """Fuzzy search over title, artist and "title artist"; one hit per song, best match first."""
        query = fold(text or "")[:200]
        if not query or limit <= 0:
            return []
        # Two stages: a cheap SIMD ratio picks candidates; name_scores (handles partial and reordered words, ~20x
        # slower) ranks only those. Keeps a query at ~10 ms for 28k tracks. Large catalogues pre-filter by words.
        rows = self._name_index.candidates(query, self.popularity) if self._name_index is not None else None
        cand = self._rough_candidates(query, rows if rows is not None and len(rows) else None)
        best = self._name_scores(query, cand)
        # Ties (an artist's many tracks, versions of a song) go to the more popular track.
        ranked = best + np.nan_to_num(self.popularity[cand], nan=0.0) / 1000.0
        picks, _ = self._best_of(cand, ranked, limit, np.array([], dtype=np.int64))
        match = dict(zip(cand.tolist(), best.tolist(), strict=True))
        return [SearchHit(self._result(i, match[i]), match[i]) for i in picks if match[i] > 0]

    def _rough_candidates(self, query: str, rows: np.ndarray | None) -> np.ndarray:
        """Stage one: the rows (all when None) whose title, "title artist" or artist is closest by plain ratio."""
        fields: tuple[list[str], ...]
        if rows is None:
            fields = (self._titles, self._combined, self._artists_proc)
            # Only a large catalogue's query that shares no word with any name scans everything: use workers then.
            workers = 1 if self._name_index is None else -1
        else:
            idx = rows.tolist()
            fields = tuple([names[i] for i in idx] for names in (self._titles, self._combined, self._artists_proc))
            workers = 1  # thousands of names take well under a millisecond, less than starting worker threads
        rough = np.zeros(len(fields[0]), dtype=np.uint8)
        for names in fields:
            scores = process.cdist([query], names, scorer=fuzz.ratio, dtype=np.uint8, workers=workers)[0]
            np.maximum(rough, scores, out=rough)
        n_cand = min(len(rough), SEARCH_CANDIDATES)
        top = np.argpartition(-rough.astype(np.int16), n_cand - 1)[:n_cand]
        return top if rows is None else rows[top]

    def _name_scores(self, query: str, rows: np.ndarray) -> np.ndarray:
        """How well the query names each track: title, "title artist", "artist title", or (less) artist. [n]"""
        idx = rows.tolist()
        titles = [self._titles[i] for i in idx]
        artists = [self._artists_proc[i] for i in idx]
        return np.max(
            [
                name_scores(query, titles),
                name_scores(query, [self._combined[i] for i in idx]),
                name_scores(query, [f"{a} {t}" for a, t in zip(artists, titles, strict=True)]),
                0.9 * name_scores(query, artists),
            ],
            axis=0,
        )

    # ----- persistence -----

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write atomically: a temp dir, fsync, then rename; the previous snapshot is kept as <dir>.prev."""
        target = Path(directory)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
        try:
            arrays_path = tmp / ARRAYS_FILE
            arrays = dict(self._arrays)
            if self._ann is not None and ann.INDEX_KEY not in arrays:
                arrays[ann.INDEX_KEY] = self._ann.to_array()  # saved with the snapshot: no rebuild at load
            if self._name_index is not None:
                arrays |= self._name_index.to_arrays()
            with open(arrays_path, "wb") as fh:
                np.savez(fh, **arrays)  # type: ignore[arg-type]
                fh.flush()
                os.fsync(fh.fileno())
            meta = dataclasses.asdict(self.info)
            meta["arrays_sha256"] = sha256_file(arrays_path)
            with open(tmp / META_FILE, "w", encoding="utf-8") as fh:
                json.dump(meta, fh, indent=1, sort_keys=True)
                fh.flush()
                os.fsync(fh.fileno())
            previous = target.with_name(target.name + ".prev")
            if target.exists():
                if previous.exists():
                    shutil.rmtree(previous)
                os.replace(target, previous)
            os.replace(tmp, target)
            fsync_dir(target.parent)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return target


def name_scores(query: str, names: Sequence[str]) -> np.ndarray:
    """rapidfuzz's WRatio without its token-set part (0..100) of a processed query against processed names. [n]

    WRatio's token-set ratio gives 95 to any name whose few distinct words all occur in the query, so "bad guy
    billie" matched the title "Bad Bad Bad" (95) above "bad guy" by Billie Eilish (90). Whole-string ratio,
    word-order-insensitive ratio and, for a query much longer or shorter than the name, the best partial
    alignment remain, scaled as WRatio scales them. Vectorised: one C loop per scorer over all names.
    """
    if not query or not names:
        return np.zeros(len(names), dtype=np.float32)

    def cdist(queries: list[str], scorer: Any) -> np.ndarray:
        return process.cdist(queries, names, scorer=scorer, dtype=np.float32)

    score = np.maximum(cdist([query], fuzz.ratio)[0], 0.95 * cdist([query], fuzz.token_sort_ratio)[0])
    lengths = np.array([len(n) for n in names], dtype=np.float32)
    length_ratio = np.maximum(lengths, len(query)) / np.maximum(np.minimum(lengths, len(query)), 1)
    # Unlike WRatio, a query a little shorter than the name also gets the partial alignment: "dance monkey
    # tones" lies whole inside "dance monkey tones and i".
    partial_ok = (length_ratio >= 1.5) | (lengths > len(query))
    partial = np.where(length_ratio < 8, 0.9, 0.6) * cdist([query], fuzz.partial_ratio)[0]
    score = np.where(partial_ok, np.maximum(score, partial), score)
    # A name that accounts for every word of the query beats one that matches only part of it: "bad guy billie"
    # names Billie Eilish's song better than another artist's "Bad Guy".
    words = query.split()
    name_tokens = [set(n.split()) for n in names]
    vocab = sorted(set().union(*name_tokens))
    similar = process.cdist(words, vocab, scorer=fuzz.ratio, dtype=np.float32) >= 80 if vocab else None  # [W, V]
    matches = [{vocab[v] for v in np.flatnonzero(row)} for row in similar] if similar is not None else []
    covered = np.array([sum(not m.isdisjoint(toks) for m in matches) for toks in name_tokens], dtype=np.float32)
    covered /= len(words)  # [n] share of query words found, each up to a typo, among the name's words
    out: np.ndarray = (score * (0.9 + 0.1 * covered)).astype(np.float32)
    out[lengths == 0] = 0.0
    return out


def name_score(query: str, name: str) -> float:
    """name_scores for one name."""
    return float(name_scores(query, [name])[0])


def _load_dir(directory: Path) -> Snapshot:
    meta_path, arrays_path = directory / META_FILE, directory / ARRAYS_FILE
    if not meta_path.is_file() or not arrays_path.is_file():
        raise SnapshotError(f"{str(directory)!r} is not a complete snapshot (needs {META_FILE} and {ARRAYS_FILE})")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SnapshotError(f"{str(meta_path)!r} is unreadable or not JSON: {exc}") from exc
    if meta.get("format_version") != FORMAT_VERSION:
        raise SnapshotError(
            f"snapshot format {meta.get('format_version')!r} in {str(directory)!r}; this recsys reads "
            f"format {FORMAT_VERSION}: retrain with 'musicrec train'"
        )
    if meta.get("arrays_sha256") != sha256_file(arrays_path):
        raise SnapshotError(f"{str(arrays_path)!r} does not match its checksum: the snapshot is corrupt or partial")
    try:
        with np.load(arrays_path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        fields = {f.name for f in dataclasses.fields(SnapshotInfo)}
        info = SnapshotInfo(**{k: v for k, v in meta.items() if k in fields})
        return Snapshot(arrays, info)
    except SnapshotError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SnapshotError(f"cannot read snapshot {str(directory)!r}: {exc}") from exc


def load(directory: str | os.PathLike[str]) -> Snapshot:
    """Load a saved snapshot; if a save was interrupted between its renames, fall back to <dir>.prev."""
    target = Path(directory)
    previous = target.with_name(target.name + ".prev")
    if not target.exists() and previous.exists():
        log.warning("snapshot %s is missing; loading the previous one at %s", target, previous)
        return _load_dir(previous)
    if not target.exists():
        raise SnapshotError(f"no snapshot at {str(target)!r}: train one with 'musicrec train --out {target}'")
    return _load_dir(target)
