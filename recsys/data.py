"""Load and validate a playlist CSV (the "30,000 Spotify songs" layout) into an immutable Catalog."""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from recsys.config import DataConfig
from recsys.errors import DataError
from recsys.files import sha256_file

log = logging.getLogger(__name__)

AUDIO_FEATURES: tuple[str, ...] = (
    "danceability",
    "energy",
    "key",
    "loudness",
    "mode",
    "speechiness",
    "acousticness",
    "instrumentalness",
    "liveness",
    "valence",
    "tempo",
    "duration_ms",
)
REQUIRED_COLUMNS: tuple[str, ...] = ("track_id", "track_name", "track_artist", "playlist_id", *AUDIO_FEATURES)
OPTIONAL_COLUMNS: tuple[str, ...] = (
    "track_popularity",
    "track_album_id",
    "track_album_name",
    "track_album_release_date",
    "playlist_name",
    "playlist_genre",
    "playlist_subgenre",
)
DATA_ENV_VAR = "MUSICREC_DATA"
DEFAULT_DATA_PATH = Path("data/spotify_songs.csv")


@dataclass(frozen=True)
class LoadReport:
    """What the loader had to repair, so callers can warn about it."""

    rows: int
    duplicate_pairs: int = 0
    conflicting_track_rows: int = 0
    coerced_feature_values: dict[str, int] = field(default_factory=dict)
    missing_name_rows: int = 0
    catalogue_only_tracks: int = 0

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
            out.append(f"column {col!r}: {n} non-numeric or empty values were replaced by the column median")
        if self.missing_name_rows:
            out.append(f"{self.missing_name_rows} rows had no track name or artist; shown with a placeholder")
        return out


@dataclass(frozen=True, eq=False)
class Catalog:
    """Validated tracks, playlists and their deduplicated membership pairs. Arrays are read-only."""

    track_ids: np.ndarray  # [num_tracks] str
    track_names: np.ndarray  # [num_tracks] str
    track_artists: np.ndarray  # [num_tracks] str
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


# Rows per chunk: bounds the loader's memory (~300 MB of pandas strings per chunk) whatever the file's size.
CHUNK_ROWS = 200_000
_TEXT_COLUMNS = (
    "track_id",
    "track_name",
    "track_artist",
    "track_album_id",
    "track_album_name",
    "track_album_release_date",
    "playlist_id",
    "playlist_name",
    "playlist_genre",
    "playlist_subgenre",
)
# The public file was written from R, which spells a missing value "NA".
_NA_COLUMNS = ("track_name", "track_artist", "track_album_name", "track_album_id", "playlist_id")
_META_COLUMNS = ("track_name", "track_artist", "track_album_id")


def _is_parquet(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(4) == b"PAR1"


def _check_file(path: Path) -> None:
    if not path.exists():
        raise DataError(
            f"data file {str(path)!r} does not exist: pass --data PATH, set {DATA_ENV_VAR}, "
            "run 'musicrec data download', or 'musicrec data demo' for the offline demo catalogue"
        )
    if path.is_dir():
        raise DataError(f"data path {str(path)!r} is a directory; expected a CSV or Parquet file")
    if path.stat().st_size == 0:
        raise DataError(f"data file {str(path)!r} is empty; expected a CSV with a header row")


def _csv_chunks(path: Path, chunk_rows: int) -> Iterator[pd.DataFrame]:
    with open(path, "rb") as fh:
        head = fh.read(8192)
    if b"\x00" in head:
        raise DataError(f"data file {str(path)!r} looks binary (NUL bytes); expected a UTF-8 CSV text file")
    try:
        with pd.read_csv(
            path,
            dtype=str,
            keep_default_na=False,
            encoding="utf-8",
            engine="c",
            on_bad_lines="error",
            chunksize=chunk_rows,
        ) as reader:
            yield from reader
    except UnicodeDecodeError as exc:
        raise DataError(f"data file {str(path)!r} is not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"data file {str(path)!r} has no header row; expected a CSV with columns") from exc
    except (pd.errors.ParserError, csv.Error) as exc:
        raise DataError(
            f"data file {str(path)!r} is not a well-formed CSV ({exc}); check quoting and the number of fields"
        ) from exc


def _parquet_chunks(path: Path, chunk_rows: int) -> Iterator[pd.DataFrame]:
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:  # pragma: no cover - pyarrow ships with the scale and dev extras
        raise DataError(
            f"{str(path)!r} is a Parquet file; reading it needs pyarrow (pip install 'musicrec[scale]')"
        ) from exc
    try:
        parquet = pq.ParquetFile(path)
        for batch in parquet.iter_batches(batch_size=chunk_rows):
            yield batch.to_pandas()
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid / ArrowIOError for corrupt files
        raise DataError(f"data file {str(path)!r} is not a readable Parquet file ({exc})") from exc


def _chunks(path: Path, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """The file's rows in chunks of at most chunk_rows, with stripped text columns ("" for missing)."""
    _check_file(path)
    reader = _parquet_chunks(path, chunk_rows) if _is_parquet(path) else _csv_chunks(path, chunk_rows)
    for frame in reader:
        frame.columns = [str(c).strip() for c in frame.columns]
        missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
        if missing:
            raise DataError(
                f"data file {str(path)!r} lacks required column(s) {', '.join(missing)}; expected the "
                f"spotify_songs.csv layout with at least: {', '.join(REQUIRED_COLUMNS)}"
            )
        for col in (*_TEXT_COLUMNS, "track_popularity"):
            if col not in frame.columns:
                frame[col] = ""
        for col in _TEXT_COLUMNS:
            values = frame[col]
            if values.dtype != object:
                values = values.astype("string").fillna("").astype(object)
            frame[col] = values.fillna("").astype(str).str.strip()
        for col in _NA_COLUMNS:
            frame.loc[frame[col] == "NA", col] = ""
        yield frame


def _year(dates: pd.Series) -> np.ndarray:
    years = pd.to_numeric(dates.str.slice(0, 4), errors="coerce").to_numpy(dtype=np.float32)
    years[(years < 1900) | (years > 2100)] = np.nan
    return years


def _numbers(values: pd.Series) -> pd.Series:
    if values.dtype == object:
        values = values.str.strip()
    return pd.to_numeric(values, errors="coerce")


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
        self.parts: list[np.ndarray] = []  # [3, n] track_idx, label_idx, global row number

    def add(self, tracks: np.ndarray, labels: pd.Series, row_offset: int) -> None:
        keep = (labels != "").to_numpy()
        if keep.any():
            label_idx, _ = self.labels.add(labels[keep])
            self.parts.append(np.stack([tracks[keep], label_idx, np.flatnonzero(keep) + row_offset]))

    def result(self, num_tracks: int) -> np.ndarray:
        out = np.full(num_tracks, "", dtype=object)
        if not self.parts:
            return out.astype(str)
        track, label, row = np.concatenate(self.parts, axis=1)
        width = max(len(self.labels), 1)  # key = track * width + label
        key = track * width + label
        uniq, first, counts = np.unique(key, return_index=True, return_counts=True)
        first_row = row[first]
        # Per track: highest count first, then the earliest row.
        order = np.lexsort((first_row, -counts, uniq // width))
        best_tracks = uniq[order] // width
        winners = order[np.r_[True, best_tracks[1:] != best_tracks[:-1]]]
        vocab = np.array(list(self.labels.index), dtype=object)
        out[uniq[winners] // width] = vocab[uniq[winners] % width]
        return out.astype(str)


def _meta_hash(frame: pd.DataFrame) -> np.ndarray:
    return pd.util.hash_pandas_object(frame[list(_META_COLUMNS)], index=False).to_numpy()


def load_catalog(
    path: str | os.PathLike[str] | None = None, config: DataConfig | None = None, chunk_rows: int = CHUNK_ROWS
) -> Catalog:
    """Read, validate and repair a playlist CSV or Parquet file; raise DataError saying what to do when it cannot
    be used. The file is read in chunks of chunk_rows rows, so memory grows with the catalogue, not the file."""
    config = config or DataConfig()
    data_path = resolve_data_path(path)
    name = str(data_path)

    track_ids, playlist_ids = _Ids(), _Ids()
    track_parts: list[pd.DataFrame] = []  # each new track's first row
    playlist_name_parts: list[np.ndarray] = []
    pair_parts: list[np.ndarray] = []  # [2, n] playlist_idx, track_idx per chunk, in row order
    genre, subgenre = _Majority(), _Majority()
    valid = dict.fromkeys(AUDIO_FEATURES, 0)
    coerced = dict.fromkeys(AUDIO_FEATURES, 0)
    rows = missing_name = conflicts = 0
    track_hash = np.empty(0, dtype=np.uint64)

    for frame in _chunks(data_path, chunk_rows):
        frame = frame[frame["track_id"] != ""]
        if frame.empty:
            continue
        frame = frame.reset_index(drop=True)
        for col in AUDIO_FEATURES:
            values = _numbers(frame[col])
            bad = int(values.isna().sum())
            valid[col] += len(values) - bad
            coerced[col] += bad
            frame[col] = values.astype(np.float32)
        frame["track_popularity"] = _numbers(frame["track_popularity"]).astype(np.float32)
        no_name = (frame["track_name"] == "") | (frame["track_artist"] == "")
        missing_name += int(no_name.sum())
        frame.loc[frame["track_name"] == "", "track_name"] = config.placeholder_name
        frame.loc[frame["track_artist"] == "", "track_artist"] = config.placeholder_artist

        # Tracks: the first row of each track_id wins; rows that disagree with it on metadata are counted.
        t_idx, new_rows = track_ids.add(frame["track_id"])
        hashes = _meta_hash(frame)
        track_parts.append(frame.iloc[new_rows])
        track_hash = np.concatenate([track_hash, hashes[new_rows]])
        conflicts += int((hashes != track_hash[t_idx]).sum())

        in_playlist = (frame["playlist_id"] != "").to_numpy()
        if in_playlist.any():
            p_idx, new_playlists = playlist_ids.add(frame["playlist_id"][in_playlist])
            playlist_name_parts.append(frame["playlist_name"][in_playlist].to_numpy()[new_playlists])
            pair_parts.append(np.stack([p_idx, t_idx[in_playlist]]))
        genre.add(t_idx, frame["playlist_genre"], rows)
        subgenre.add(t_idx, frame["playlist_subgenre"], rows)
        rows += len(frame)

    if rows == 0:
        raise DataError(f"data file {name!r} has no rows with a track_id")
    for col in AUDIO_FEATURES:
        if valid[col] == 0:
            raise DataError(f"data file {name!r}: column {col!r} has no numeric values; expected numbers")
    if not pair_parts:
        raise DataError(
            f"data file {name!r} has no playlist rows (every playlist_id is empty); a model learns from "
            "playlists, so at least some rows need a playlist_id"
        )
    tracks = pd.concat(track_parts, ignore_index=True)
    features = tracks[list(AUDIO_FEATURES)].to_numpy(dtype=np.float32)  # [T, F]
    # Non-numeric values become the column's median over the catalogue's tracks.
    medians = np.nanmedian(features, axis=0)
    features = np.where(np.isnan(features), medians, features).astype(np.float32)

    # Pairs: deduplicated, keeping the first occurrence's order.
    pairs = np.concatenate(pair_parts, axis=1)  # [2, rows with a playlist]
    key = pairs[0] * len(track_ids) + pairs[1]
    first = np.sort(np.unique(key, return_index=True)[1])
    edges = np.ascontiguousarray(pairs[:, first])  # [2, num_pairs]
    degree = np.bincount(edges[1], minlength=len(track_ids))

    def ro(a: np.ndarray) -> np.ndarray:
        a.setflags(write=False)
        return a

    report = LoadReport(
        rows=rows,
        duplicate_pairs=pairs.shape[1] - edges.shape[1],
        conflicting_track_rows=conflicts,
        coerced_feature_values={c: n for c, n in coerced.items() if n},
        missing_name_rows=missing_name,
        catalogue_only_tracks=int((degree == 0).sum()),
    )
    for line in report.warnings():
        log.warning("%s: %s", name, line)

    return Catalog(
        track_ids=ro(tracks["track_id"].to_numpy(dtype=str)),
        track_names=ro(tracks["track_name"].to_numpy(dtype=str)),
        track_artists=ro(tracks["track_artist"].to_numpy(dtype=str)),
        album_ids=ro(tracks["track_album_id"].to_numpy(dtype=str)),
        album_names=ro(tracks["track_album_name"].to_numpy(dtype=str)),
        years=ro(_year(tracks["track_album_release_date"])),
        popularity=ro(tracks["track_popularity"].to_numpy(dtype=np.float32)),
        genres=ro(genre.result(len(track_ids))),
        subgenres=ro(subgenre.result(len(track_ids))),
        features=ro(features),
        playlist_ids=ro(np.array(list(playlist_ids.index), dtype=str)),
        playlist_names=ro(np.concatenate(playlist_name_parts).astype(str)),
        edges=ro(edges),
        fingerprint=file_fingerprint(data_path),
        report=report,
    )
