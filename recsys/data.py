"""Load and validate a playlist CSV (the "30,000 Spotify songs" layout) into an immutable Catalog."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from recsys.config import DataConfig
from recsys.errors import DataError
from recsys.files import sha256_file
from recsys.memory import release_freed_memory
from recsys.source import (
    AUDIO_FEATURES,
    DATA_ENV_VAR,
    FEATURE_RANGES,
    OPTIONAL_COLUMNS,
    REQUIRED_COLUMNS,
    clean_chunk,
    drop_long_ids,
    feature_values,
    open_source,
    to_numbers,
)

__all__ = [
    "AUDIO_FEATURES",
    "CHUNK_ROWS",
    "FEATURE_RANGES",
    "REQUIRED_COLUMNS",
    "Catalog",
    "LoadReport",
    "file_fingerprint",
    "load_catalog",
    "resolve_data_path",
]

log = logging.getLogger(__name__)

DEFAULT_DATA_PATH = Path("data/spotify_songs.csv")
# Rows per chunk: bounds the loader's memory (~300 MB of pandas strings per chunk) whatever the file's size.
CHUNK_ROWS = 200_000
_META_COLUMNS = ("track_name", "track_artist", "track_album_id")
# What a catalogue keeps of a track's first row: every column but the playlist ones (kept per playlist or per pair).
_TRACK_COLUMNS = tuple(c for c in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS) if not c.startswith("playlist_"))
# Row indices held per row of the file until the catalogue is built: 32 bits (4 bytes a value, not 8).
_INDEX = np.int32
_MAX_IDS = np.iinfo(_INDEX).max


@dataclass(frozen=True)
class LoadReport:
    """What the loader had to repair, so callers can warn about it."""

    rows: int
    duplicate_pairs: int = 0
    conflicting_track_rows: int = 0
    coerced_feature_values: dict[str, int] = field(default_factory=dict)
    missing_name_rows: int = 0
    catalogue_only_tracks: int = 0
    long_id_rows: int = 0  # rows skipped because an id was longer than max_id_length
    max_id_length: int = DataConfig.max_id_length

    def warnings(self) -> list[str]:
        """Human-readable lines for everything that was repaired."""
        out = []
        if self.duplicate_pairs:
            out.append(f"{self.duplicate_pairs} repeated playlist-track rows were merged")
        if self.conflicting_track_rows:
            out.append(
                f"{self.conflicting_track_rows} rows repeat a track_id with different metadata; the first row won"
            )
        for col, n in sorted(self.coerced_feature_values.items()):
            out.append(
                f"column {col!r}: {n} non-numeric, non-finite or out-of-range values were replaced by the column median"
            )
        if self.missing_name_rows:
            out.append(f"{self.missing_name_rows} rows had no track name or artist; shown with a placeholder")
        if self.long_id_rows:
            out.append(
                f"{self.long_id_rows} rows were skipped: their track_id, playlist_id or track_album_id is longer than "
                f"{self.max_id_length} characters (Spotify ids have 22)"
            )
        return out


@dataclass(frozen=True, eq=False)
class Catalog:
    """Validated tracks, playlists and their deduplicated membership pairs. Arrays are read-only."""

    # Text arrays hold Python str in dtype=object arrays: their memory follows the total text, where a fixed-width
    # numpy str array would give every row the width of the longest name.
    track_ids: np.ndarray  # [num_tracks] str
    track_names: np.ndarray  # [num_tracks] str, at most DataConfig.max_name_length characters
    track_artists: np.ndarray  # [num_tracks] str, idem
    album_ids: np.ndarray  # [num_tracks] str, "" when unknown
    album_names: np.ndarray  # [num_tracks] str, "" when unknown
    years: np.ndarray  # [num_tracks] float32, NaN when unknown
    popularity: np.ndarray  # [num_tracks] float32, NaN when unknown
    genres: np.ndarray  # [num_tracks] str, the most common genre of the track's playlists, "" when unknown
    subgenres: np.ndarray  # [num_tracks] str
    features: np.ndarray  # [num_tracks, len(AUDIO_FEATURES)] float32, raw values, imputed
    playlist_ids: np.ndarray  # [num_playlists] str
    playlist_names: np.ndarray  # [num_playlists] str
    edges: np.ndarray  # [2, num_pairs] int64: row 0 playlist_idx, row 1 track_idx; unique pairs
    fingerprint: str  # sha256 of the source bytes
    report: LoadReport

    @property
    def num_tracks(self) -> int:
        return len(self.track_ids)

    @property
    def num_playlists(self) -> int:
        return len(self.playlist_ids)

    @property
    def num_pairs(self) -> int:
        return int(self.edges.shape[1])

    def track_index(self) -> dict[str, int]:
        """Map track_id -> track_idx."""
        return {tid: i for i, tid in enumerate(self.track_ids.tolist())}

    def playlist_index(self) -> dict[str, int]:
        """Map playlist_id -> playlist_idx."""
        return {pid: i for i, pid in enumerate(self.playlist_ids.tolist())}

    def track_degrees(self) -> np.ndarray:
        """Number of playlists each track is in."""
        return np.bincount(self.edges[1], minlength=self.num_tracks)


def resolve_data_path(path: str | os.PathLike[str] | None = None) -> Path:
    """The data file to use: the argument, else $MUSICREC_DATA, else data/spotify_songs.csv."""
    if path is not None:
        return Path(path)
    env = os.environ.get(DATA_ENV_VAR)
    if env:
        return Path(env)
    return DEFAULT_DATA_PATH


def file_fingerprint(path: str | os.PathLike[str]) -> str:
    """The data fingerprint of a file as load_catalog records it: the sha256 of its bytes."""
    return sha256_file(path)


def _year(dates: pd.Series) -> np.ndarray:
    years = pd.to_numeric(dates.str.slice(0, 4), errors="coerce").to_numpy(dtype=np.float32)
    years[(years < 1900) | (years > 2100)] = np.nan
    return years


def _text(values: pd.Series | np.ndarray | list[str]) -> np.ndarray:
    """A read-only object array of str (its own copy, not a view of a DataFrame's block)."""
    out = np.array(values, dtype=object)
    out.setflags(write=False)
    return out


class _Ids:
    """A growing map from string id to dense index, in first-seen order.

    Only each chunk's distinct ids touch the dict; rows are mapped with numpy (factorize, then a take)."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self.index)

    def add(self, values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
        """Dense index of every row [n], and the row positions that introduced a new id (first-seen order)."""
        codes, uniques = pd.factorize(values, sort=False)
        get = self.index.get
        found = np.fromiter((get(u, -1) for u in uniques), dtype=np.int64, count=len(uniques))
        new = np.flatnonzero(found < 0)
        found[new] = np.arange(len(self.index), len(self.index) + len(new))
        self.index.update(zip(uniques[new].tolist(), found[new].tolist(), strict=True))
        first_row = np.unique(codes, return_index=True)[1]  # [len(uniques)] the row where each first appears
        return found[codes], first_row[new]


class _Majority:
    """Most common non-empty label per track across rows (ties: the label seen first), accumulated per chunk."""

    def __init__(self) -> None:
        self.labels = _Ids()
        # [2, n] int32 track_idx, label_idx of the labelled rows, in row order: a row's position stands for its row
        # number in the tie-break (8 bytes a row; the Million Playlist Dataset's size has 66M rows).
        self.parts: list[np.ndarray] = []

    def add(self, tracks: np.ndarray, labels: pd.Series) -> None:
        keep = (labels != "").to_numpy()
        if keep.any():
            label_idx, _ = self.labels.add(labels[keep])
            self.parts.append(np.stack([tracks[keep], label_idx]).astype(_INDEX))

    def result(self, num_tracks: int) -> np.ndarray:
        out = np.full(num_tracks, "", dtype=object)
        if not self.parts:
            return out
        track, label = np.concatenate(self.parts, axis=1)
        self.parts = []
        width = max(len(self.labels), 1)  # key = track * width + label
        key = track.astype(np.int64) * width + label
        del track, label
        uniq, first_row, counts = np.unique(key, return_index=True, return_counts=True)
        del key
        # Per track: highest count first, then the earliest row.
        order = np.lexsort((first_row, -counts, uniq // width))
        best_tracks = uniq[order] // width
        winners = order[np.r_[True, best_tracks[1:] != best_tracks[:-1]]]
        vocab = np.array(list(self.labels.index), dtype=object)
        out[uniq[winners] // width] = vocab[uniq[winners] % width]
        return out


def _meta_hash(frame: pd.DataFrame) -> np.ndarray:
    return pd.util.hash_pandas_object(frame[list(_META_COLUMNS)], index=False).to_numpy()


class _Builder:
    """Accumulates cleaned chunks into a Catalog: first-seen tracks and playlists, pairs, labels and repair counts."""

    def __init__(self, config: DataConfig) -> None:
        self.config = config
        self.track_ids, self.playlist_ids = _Ids(), _Ids()
        self.track_parts: list[pd.DataFrame] = []  # each new track's first row
        self.playlist_name_parts: list[np.ndarray] = []
        self.pair_parts: list[np.ndarray] = []  # [2, n] int32 playlist_idx, track_idx per chunk, in row order
        self.genre, self.subgenre = _Majority(), _Majority()
        self.valid = dict.fromkeys(AUDIO_FEATURES, 0)
        self.coerced = dict.fromkeys(AUDIO_FEATURES, 0)
        self.rows = self.missing_name = self.conflicts = self.long_ids = 0
        self.track_hash = np.empty(0, dtype=np.uint64)

    def add(self, frame: pd.DataFrame) -> None:
        """Take in one cleaned chunk."""
        frame = frame[frame["track_id"] != ""]
        frame, long_ids = drop_long_ids(frame, self.config.max_id_length)
        self.long_ids += long_ids
        if frame.empty:
            return
        frame = frame.reset_index(drop=True)
        for col in AUDIO_FEATURES:
            frame[col], bad = feature_values(frame[col], col)
            self.valid[col] += len(frame) - bad
            self.coerced[col] += bad
        frame["track_popularity"] = to_numbers(frame["track_popularity"]).astype(np.float32)
        no_name = (frame["track_name"] == "") | (frame["track_artist"] == "")
        self.missing_name += int(no_name.sum())
        frame.loc[frame["track_name"] == "", "track_name"] = self.config.placeholder_name
        frame.loc[frame["track_artist"] == "", "track_artist"] = self.config.placeholder_artist

        # Tracks: the first row of each track_id wins; rows that disagree with it on metadata are counted.
        t_idx, new_rows = self.track_ids.add(frame["track_id"])
        hashes = _meta_hash(frame)
        self.track_parts.append(frame.iloc[new_rows][list(_TRACK_COLUMNS)])
        self.track_hash = np.concatenate([self.track_hash, hashes[new_rows]])
        self.conflicts += int((hashes != self.track_hash[t_idx]).sum())

        in_playlist = (frame["playlist_id"] != "").to_numpy()
        if in_playlist.any():
            p_idx, new_playlists = self.playlist_ids.add(frame["playlist_id"][in_playlist])
            self.playlist_name_parts.append(frame["playlist_name"][in_playlist].to_numpy()[new_playlists])
            self.pair_parts.append(np.stack([p_idx, t_idx[in_playlist]]).astype(_INDEX))
        if max(len(self.track_ids), len(self.playlist_ids)) > _MAX_IDS:
            raise DataError(f"more than {_MAX_IDS:,} distinct track or playlist ids: too many for one catalogue")
        self.genre.add(t_idx, frame["playlist_genre"])
        self.subgenre.add(t_idx, frame["playlist_subgenre"])
        self.rows += len(frame)

    def check(self, name: str) -> None:
        """Raise DataError when what was read cannot make a catalogue."""
        if self.rows == 0:
            raise DataError(f"data file {name!r} has no rows with a track_id")
        for col in AUDIO_FEATURES:
            if self.valid[col] == 0:
                lo, hi = FEATURE_RANGES[col]
                raise DataError(
                    f"data file {name!r}: column {col!r} has no usable values; expected numbers in [{lo:g}, {hi:g}]"
                )
        if not self.pair_parts:
            raise DataError(
                f"data file {name!r} has no playlist rows (every playlist_id is empty); a model learns from "
                "playlists, so at least some rows need a playlist_id"
            )

    def catalog(self, name: str, fingerprint: str) -> Catalog:
        """The finished catalogue; its repairs are logged as warnings."""
        self.check(name)
        tracks = pd.concat(self.track_parts, ignore_index=True)
        features = tracks[list(AUDIO_FEATURES)].to_numpy(dtype=np.float32)  # [T, F]
        # Unusable values become the column's median over the catalogue's tracks.
        medians = np.nanmedian(features, axis=0)
        features = np.where(np.isnan(features), medians, features).astype(np.float32)

        # Pairs: deduplicated, keeping the first occurrence's order.
        num_tracks = len(self.track_ids)
        pairs = np.concatenate(self.pair_parts, axis=1)  # [2, rows with a playlist] int32
        self.pair_parts = []
        key = pairs[0].astype(np.int64) * num_tracks + pairs[1]
        first = np.sort(np.unique(key, return_index=True)[1])
        del key
        edges = np.empty((2, len(first)), dtype=np.int64)  # [2, num_pairs], C-contiguous
        edges[0], edges[1] = pairs[0][first], pairs[1][first]
        duplicate_pairs = pairs.shape[1] - edges.shape[1]
        del pairs
        degree = np.bincount(edges[1], minlength=num_tracks)

        report = LoadReport(
            rows=self.rows,
            duplicate_pairs=duplicate_pairs,
            conflicting_track_rows=self.conflicts,
            coerced_feature_values={c: n for c, n in self.coerced.items() if n},
            missing_name_rows=self.missing_name,
            catalogue_only_tracks=int((degree == 0).sum()),
            long_id_rows=self.long_ids,
            max_id_length=self.config.max_id_length,
        )
        for line in report.warnings():
            log.warning("%s: %s", name, line)

        def ro(a: np.ndarray) -> np.ndarray:
            a.setflags(write=False)
            return a

        return Catalog(
            track_ids=_text(tracks["track_id"]),
            track_names=_text(tracks["track_name"]),
            track_artists=_text(tracks["track_artist"]),
            album_ids=_text(tracks["track_album_id"]),
            album_names=_text(tracks["track_album_name"]),
            years=ro(_year(tracks["track_album_release_date"])),
            popularity=ro(tracks["track_popularity"].to_numpy(dtype=np.float32)),
            genres=_text(self.genre.result(num_tracks)),
            subgenres=_text(self.subgenre.result(num_tracks)),
            features=ro(features),
            playlist_ids=_text(list(self.playlist_ids.index)),
            playlist_names=_text(np.concatenate(self.playlist_name_parts)),
            edges=ro(edges),
            fingerprint=fingerprint,
            report=report,
        )


def load_catalog(
    path: str | os.PathLike[str] | None = None, config: DataConfig | None = None, chunk_rows: int = CHUNK_ROWS
) -> Catalog:
    """Read, validate and repair a playlist CSV or Parquet file; raise DataError saying what to do when it cannot
    be used. The file is read in chunks of chunk_rows rows, so memory grows with the catalogue, not the file.

    The file is opened once; its fingerprint is the sha256 of the bytes the catalogue was parsed from."""
    config = config or DataConfig()
    data_path = resolve_data_path(path)
    builder = _Builder(config)
    with open_source(data_path) as source:
        for frame in source.chunks(chunk_rows):
            builder.add(clean_chunk(frame, data_path, config))
        fingerprint = source.fingerprint()
    catalog = builder.catalog(str(data_path), fingerprint)
    del builder
    release_freed_memory()  # the chunks' temporaries: a large file leaves GBs of free heap behind
    return catalog
