"""Load and validate a playlist CSV (the "30,000 Spotify songs" layout) into an immutable Catalog."""

from __future__ import annotations

import csv
import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from recsys.config import DataConfig
from recsys.errors import DataError

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
    """sha256 of a file's bytes, streamed."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _read_frame(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise DataError(
            f"data file {str(path)!r} does not exist: pass --data PATH, set {DATA_ENV_VAR}, "
            "run 'musicrec data download', or 'musicrec data demo' for the offline demo catalogue"
        )
    if path.is_dir():
        raise DataError(f"data path {str(path)!r} is a directory; expected a CSV file")
    if path.stat().st_size == 0:
        raise DataError(f"data file {str(path)!r} is empty; expected a CSV with a header row")
    with open(path, "rb") as fh:
        head = fh.read(8192)
    if b"\x00" in head:
        raise DataError(f"data file {str(path)!r} looks binary (NUL bytes); expected a UTF-8 CSV text file")
    try:
        frame = pd.read_csv(
            path,
            dtype=str,
            keep_default_na=False,
            encoding="utf-8",
            engine="c",
            on_bad_lines="error",
        )
    except UnicodeDecodeError as exc:
        raise DataError(f"data file {str(path)!r} is not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"data file {str(path)!r} has no header row; expected a CSV with columns") from exc
    except (pd.errors.ParserError, csv.Error) as exc:
        raise DataError(
            f"data file {str(path)!r} is not a well-formed CSV ({exc}); check quoting and the number of fields"
        ) from exc
    return frame


def _year(dates: pd.Series) -> np.ndarray:
    years = pd.to_numeric(dates.str.slice(0, 4), errors="coerce").to_numpy(dtype=np.float32)
    years[(years < 1900) | (years > 2100)] = np.nan
    return years


def _majority(values: pd.Series, keys: pd.Series) -> dict[str, str]:
    """For each key the most common non-empty value (ties: first seen)."""
    frame = pd.DataFrame({"k": keys, "v": values})
    frame = frame[frame["v"] != ""]
    if frame.empty:
        return {}
    counts = frame.groupby(["k", "v"], sort=False).size().reset_index(name="n")
    counts = counts.sort_values("n", ascending=False, kind="stable").drop_duplicates("k")
    return dict(zip(counts["k"], counts["v"], strict=True))


def load_catalog(path: str | os.PathLike[str] | None = None, config: DataConfig | None = None) -> Catalog:
    """Read, validate and repair a playlist CSV; raise DataError with what to do when it cannot be used."""
    config = config or DataConfig()
    csv_path = resolve_data_path(path)
    frame = _read_frame(csv_path)
    name = str(csv_path)

    frame.columns = [c.strip() for c in frame.columns]
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(
            f"data file {name!r} lacks required column(s) {', '.join(missing)}; expected the spotify_songs.csv "
            f"layout with at least: {', '.join(REQUIRED_COLUMNS)}"
        )
    for col in OPTIONAL_COLUMNS:
        if col not in frame.columns:
            frame[col] = ""
    for col in frame.columns:
        frame[col] = frame[col].str.strip()
    # The public file was written from R, which spells a missing value "NA".
    for col in ("track_name", "track_artist", "track_album_name", "track_album_id", "playlist_id"):
        frame.loc[frame[col] == "NA", col] = ""

    frame = frame[frame["track_id"] != ""]
    if frame.empty:
        raise DataError(f"data file {name!r} has no rows with a track_id")
    rows = len(frame)

    coerced: dict[str, int] = {}
    numeric = pd.DataFrame(index=frame.index)
    for col in AUDIO_FEATURES:
        values = pd.to_numeric(frame[col], errors="coerce")
        bad = int(values.isna().sum())
        if bad == len(values):
            raise DataError(f"data file {name!r}: column {col!r} has no numeric values; expected numbers")
        if bad:
            coerced[col] = bad
            values = values.fillna(values.median())
        numeric[col] = values.astype(np.float32)

    missing_name = (frame["track_name"] == "") | (frame["track_artist"] == "")
    frame.loc[frame["track_name"] == "", "track_name"] = config.placeholder_name
    frame.loc[frame["track_artist"] == "", "track_artist"] = config.placeholder_artist

    # Tracks: first row of each track_id wins; count rows that disagree with it on metadata.
    first = ~frame["track_id"].duplicated(keep="first")
    tracks = frame[first]
    numeric_tracks = numeric[first]
    meta_cols = ["track_name", "track_artist", "track_album_id"]
    merged = frame[[*meta_cols, "track_id"]].merge(
        tracks[[*meta_cols, "track_id"]], on="track_id", suffixes=("", "_first")
    )
    conflicts = int((merged[meta_cols].to_numpy() != merged[[c + "_first" for c in meta_cols]].to_numpy()).any(1).sum())

    track_ids = tracks["track_id"].to_numpy(dtype=str)
    track_pos = {tid: i for i, tid in enumerate(track_ids.tolist())}

    in_playlist = frame["playlist_id"] != ""
    pl_rows = frame[in_playlist]
    if pl_rows.empty:
        raise DataError(
            f"data file {name!r} has no playlist rows (every playlist_id is empty); a model learns from "
            "playlists, so at least some rows need a playlist_id"
        )
    playlists = pl_rows[~pl_rows["playlist_id"].duplicated(keep="first")]
    playlist_ids = playlists["playlist_id"].to_numpy(dtype=str)
    playlist_pos = {pid: i for i, pid in enumerate(playlist_ids.tolist())}

    pairs = pd.DataFrame(
        {
            "p": pl_rows["playlist_id"].map(playlist_pos).to_numpy(dtype=np.int64),
            "t": pl_rows["track_id"].map(track_pos).to_numpy(dtype=np.int64),
        }
    )
    unique_pairs = pairs.drop_duplicates()
    edges = unique_pairs.to_numpy().T.copy()  # [2, num_pairs]

    genre = _majority(frame["playlist_genre"], frame["track_id"])
    subgenre = _majority(frame["playlist_subgenre"], frame["track_id"])
    degree = np.bincount(edges[1], minlength=len(track_ids))

    def ro(a: np.ndarray) -> np.ndarray:
        a.setflags(write=False)
        return a

    report = LoadReport(
        rows=rows,
        duplicate_pairs=len(pairs) - len(unique_pairs),
        conflicting_track_rows=conflicts,
        coerced_feature_values=coerced,
        missing_name_rows=int(missing_name.sum()),
        catalogue_only_tracks=int((degree == 0).sum()),
    )
    for line in report.warnings():
        log.warning("%s: %s", name, line)

    return Catalog(
        track_ids=ro(track_ids),
        track_names=ro(tracks["track_name"].to_numpy(dtype=str)),
        track_artists=ro(tracks["track_artist"].to_numpy(dtype=str)),
        album_ids=ro(tracks["track_album_id"].to_numpy(dtype=str)),
        album_names=ro(tracks["track_album_name"].to_numpy(dtype=str)),
        years=ro(_year(tracks["track_album_release_date"])),
        popularity=ro(pd.to_numeric(tracks["track_popularity"], errors="coerce").to_numpy(dtype=np.float32)),
        genres=ro(np.array([genre.get(t, "") for t in track_ids.tolist()], dtype=str)),
        subgenres=ro(np.array([subgenre.get(t, "") for t in track_ids.tolist()], dtype=str)),
        features=ro(numeric_tracks[list(AUDIO_FEATURES)].to_numpy(dtype=np.float32)),
        playlist_ids=ro(playlist_ids),
        playlist_names=ro(playlists["playlist_name"].to_numpy(dtype=str)),
        edges=ro(edges),
        fingerprint=file_fingerprint(csv_path),
        report=report,
    )
