"""Reading the data file: its column layout; opened once, parsed in CSV or Parquet chunks while hashed, and
cleaned; every OS or format problem a one-line DataError saying what to check."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd

from recsys.config import DataConfig
from recsys.errors import DataError
from recsys.files import HashingReader, sha256_stream

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
# Each audio feature's physical range (Spotify's audio-features reference: the 0-1 scores, key -1 for "no key
# detected", loudness typically -60 to 0 dB). A value outside it, like a non-finite one, is a broken cell and is
# repaired like a non-numeric one. The real data lies well inside: loudness -46.4..1.3 dB, tempo 0..239.4 BPM,
# duration 4000..517810 ms.
FEATURE_RANGES: dict[str, tuple[float, float]] = {
    "danceability": (0.0, 1.0),
    "energy": (0.0, 1.0),
    "key": (-1.0, 11.0),
    "loudness": (-60.0, 5.0),
    "mode": (0.0, 1.0),
    "speechiness": (0.0, 1.0),
    "acousticness": (0.0, 1.0),
    "instrumentalness": (0.0, 1.0),
    "liveness": (0.0, 1.0),
    "valence": (0.0, 1.0),
    "tempo": (0.0, 300.0),  # BPM
    "duration_ms": (1000.0, 14_400_000.0),  # 1 s to 4 h
}
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
# Name columns are cleaned and cut to DataConfig.max_name_length; id columns longer than max_id_length drop the row.
_NAME_COLUMNS = ("track_name", "track_artist", "track_album_name", "playlist_name")
_ID_COLUMNS = ("track_id", "playlist_id", "track_album_id")
# Unicode category Cc: C0 controls, DEL and C1 controls (NUL, tab, newline, escape ...).
_CONTROL_CHARACTERS = r"[\x00-\x1f\x7f-\x9f]"
# Bytes read to tell Parquet from CSV and to spot a binary file posing as a CSV.
_HEAD_BYTES = 8192


def _open_binary(path: Path) -> BinaryIO:
    """Open the data file for reading; the loader's one place that opens it."""
    return open(path, "rb")


def _os_error(path: Path, exc: OSError) -> DataError:
    """One line for an operating-system error on the data file: what failed, and what to check."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    advice = "check the file's permissions" if isinstance(exc, PermissionError) else "check the file and its disk"
    return DataError(f"cannot read data file {str(path)!r}: {reason}; {advice}")


def _check_file(path: Path) -> None:
    try:
        exists, is_dir = path.exists(), path.is_dir()
        size = path.stat().st_size if exists else 0
    except OSError as exc:
        raise _os_error(path, exc) from exc
    if not exists:
        raise DataError(
            f"data file {str(path)!r} does not exist: pass --data PATH, set {DATA_ENV_VAR}, "
            "run 'musicrec data download', or 'musicrec data demo' for the offline demo catalogue"
        )
    if is_dir:
        raise DataError(f"data path {str(path)!r} is a directory; expected a CSV or Parquet file")
    if size == 0:
        raise DataError(f"data file {str(path)!r} is empty; expected a CSV with a header row")


def _csv_chunks(path: Path, source: HashingReader, chunk_rows: int) -> Iterator[pd.DataFrame]:
    try:
        # The stubs ask for a whole file interface; the C engine only calls read(), all HashingReader offers.
        with pd.read_csv(  # type: ignore[call-overload]
            source,
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
    except OSError as exc:
        raise _os_error(path, exc) from exc


def _parquet_chunks(path: Path, fh: BinaryIO, chunk_rows: int) -> Iterator[pd.DataFrame]:
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:  # pragma: no cover - pyarrow ships with the scale and dev extras
        raise DataError(
            f"{str(path)!r} is a Parquet file; reading it needs pyarrow (pip install 'musicrec[scale]')"
        ) from exc
    try:
        parquet = pq.ParquetFile(fh)
        for batch in parquet.iter_batches(batch_size=chunk_rows):
            yield batch.to_pandas()
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid / ArrowIOError for corrupt files
        raise DataError(f"data file {str(path)!r} is not a readable Parquet file ({exc})") from exc


class SourceFile:
    """The data file, opened once: its rows in chunks, then the sha256 of exactly the bytes they came from.

    Hashing and parsing use the same open handle, so a file replaced on disk (by rename) during a long load is
    neither parsed nor fingerprinted halfway: the catalogue records the hash of what it was built from."""

    def __init__(self, path: Path, fh: BinaryIO) -> None:
        self.path = path
        self._fh = fh
        try:
            head = fh.read(_HEAD_BYTES)
            fh.seek(0)
            self.is_parquet = head[:4] == b"PAR1"
            # pyarrow reads a Parquet file out of order (footer first), so it is hashed whole before parsing.
            self._parquet_digest = sha256_stream(fh) if self.is_parquet else ""
            fh.seek(0)
        except OSError as exc:
            raise _os_error(path, exc) from exc
        if not self.is_parquet and b"\x00" in head:
            raise DataError(f"data file {str(path)!r} looks binary (NUL bytes); expected a UTF-8 CSV text file")
        self._csv = HashingReader(fh)

    def chunks(self, chunk_rows: int) -> Iterator[pd.DataFrame]:
        """The file's rows as DataFrames of at most chunk_rows rows, as parsed (no cleaning)."""
        if self.is_parquet:
            return _parquet_chunks(self.path, self._fh, chunk_rows)
        return _csv_chunks(self.path, self._csv, chunk_rows)

    def fingerprint(self) -> str:
        """sha256 of the file's bytes as read by this source; call after chunks() is exhausted."""
        if self.is_parquet:
            return self._parquet_digest
        try:
            return self._csv.finish()
        except OSError as exc:
            raise _os_error(self.path, exc) from exc


@contextmanager
def open_source(path: Path) -> Iterator[SourceFile]:
    """The data file checked (exists, is a non-empty file) and opened once, for the duration of the block."""
    _check_file(path)
    try:
        fh = _open_binary(path)
    except OSError as exc:
        raise _os_error(path, exc) from exc
    with fh:
        yield SourceFile(path, fh)


def _clean_names(values: pd.Series, max_length: int) -> pd.Series:
    """Names with control characters replaced by spaces and cut to max_length characters (clean chunks, nearly all
    of them, only pay for the two checks)."""
    if values.str.contains(_CONTROL_CHARACTERS, regex=True).any():
        values = values.str.replace(_CONTROL_CHARACTERS, " ", regex=True).str.strip()
    if (values.str.len() > max_length).any():
        values = values.str.slice(0, max_length).str.rstrip()
    return values


def clean_chunk(frame: pd.DataFrame, path: Path, config: DataConfig) -> pd.DataFrame:
    """A parsed chunk with the required columns checked, text stripped ("" for missing) and names cleaned."""
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
    for col in _NAME_COLUMNS:
        frame[col] = _clean_names(frame[col], config.max_name_length)
    return frame


def drop_long_ids(frame: pd.DataFrame, max_length: int) -> tuple[pd.DataFrame, int]:
    """The rows whose ids all fit in max_length characters, and how many rows were dropped."""
    too_long = np.zeros(len(frame), dtype=bool)
    for col in _ID_COLUMNS:
        too_long |= (frame[col].str.len() > max_length).to_numpy()
    return frame[~too_long], int(too_long.sum())


def to_numbers(values: pd.Series) -> pd.Series:
    """A column as numbers, NaN where a cell is not one."""
    if values.dtype == object:
        values = values.str.strip()
    return pd.to_numeric(values, errors="coerce")


def feature_values(values: pd.Series, col: str) -> tuple[pd.Series, int]:
    """An audio feature column as float32, NaN where the value is non-numeric, non-finite or out of the column's
    physical range (checked before the cast: 1e308 is finite in float64 but not in float32), and how many were."""
    numbers = to_numbers(values)
    lo, hi = FEATURE_RANGES[col]
    usable = numbers.between(lo, hi)  # False for NaN and +-inf
    return numbers.where(usable).astype(np.float32), int((~usable).sum())
