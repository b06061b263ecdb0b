"""Seeded held-out splits written as CSVs, so every model trains the same way: through load_catalog on train.csv.

One split serves four tasks. Playlist continuation: 20% of the tracks of each playlist with at least 10 tracks
are held out. New playlists: a share of those playlists is held out whole and continued from its first 5 tracks.
Text queries: the same held-out playlists queried by their name alone (the "title only" task).
Similar songs: held-out tracks are the queries; the relevant set is every other track sharing a playlist with
the query in the full data. A held-out track left with no training pair stays in train.csv as a catalogue-only
row (features, no playlist) with its playlist id, name, genre and subgenre blanked: the held-out playlist's
genre must not leak into the track's inputs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from recsys.data import Catalog, load_catalog, resolve_data_path
from recsys.errors import DataError
from recsys.names import song_key

PLAYLIST_COLUMNS = ("playlist_id", "playlist_name", "playlist_genre", "playlist_subgenre")
TRAIN_FILE = "train.csv"


@dataclass(frozen=True)
class SplitConfig:
    """How a catalogue is split into training and test parts."""

    # Playlists shorter than this keep all their tracks: 20% of fewer than 10 is one or two targets, too noisy.
    min_playlist_tracks: int = 10
    # Share of each eligible playlist's tracks held out for continuation (the protocol).
    holdout_share: float = 0.2
    # Share of eligible playlists held out whole for the new-playlist task (~46 of 460 on the real data).
    new_playlist_share: float = 0.1
    # A new playlist is continued from its first this many tracks.
    new_playlist_seeds: int = 5
    # Similar-songs queries sampled from the held-out tracks; 1000 keeps the CI narrow and the run short.
    max_similar_queries: int = 1000


@dataclass(frozen=True, eq=False)
class Split:
    """One seeded split: the training catalogue (loaded from train_csv) and the held-out parts, all by id."""

    seed: int
    train_csv: Path
    catalog: Catalog
    continuation: dict[str, list[str]]  # playlist_id -> held-out track_ids (the playlist stays in training)
    new_playlists: dict[str, tuple[list[str], list[str]]]  # playlist_id -> (seed track_ids, target track_ids)
    similar: dict[str, list[str]]  # query track_id -> relevant track_ids
    config: SplitConfig = field(default_factory=SplitConfig)
    # new_playlists' names from the full data (training never sees them): the text task's queries.
    new_playlist_names: dict[str, str] = field(default_factory=dict)

    def heldout_pairs(self) -> set[tuple[str, str]]:
        """Every (playlist_id, track_id) pair that is not in training."""
        pairs = {(p, t) for p, ts in self.continuation.items() for t in ts}
        pairs |= {(p, t) for p, (s, ts) in self.new_playlists.items() for t in [*s, *ts]}
        return pairs


def _read_raw(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise DataError(f"data file {str(path)!r} does not exist; pass --data PATH or set MUSICREC_DATA")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    frame.columns = [c.strip() for c in frame.columns]
    for col in ("track_id", "track_name", "track_artist", "playlist_id"):
        if col not in frame.columns:
            raise DataError(f"data file {str(path)!r} lacks column {col!r}; expected the spotify_songs.csv layout")
    return frame


def make_split(
    data: str | os.PathLike[str] | None, seed: int, out_dir: str | os.PathLike[str], config: SplitConfig | None = None
) -> Split:
    """Split the CSV at `data` with `seed`; write train.csv and the test parts under out_dir; load the training
    catalogue. The same call on a split's own train.csv gives an inner validation split."""
    config = config or SplitConfig()
    path = resolve_data_path(data)
    frame = _read_raw(path)
    tid = frame["track_id"].str.strip()
    pid = frame["playlist_id"].str.strip().replace("NA", "")
    in_pair = (tid != "") & (pid != "")
    pairs = pd.DataFrame({"p": pid[in_pair], "t": tid[in_pair]}).drop_duplicates()
    members: dict[str, list[str]] = {str(p): g["t"].tolist() for p, g in pairs.groupby("p", sort=False)}
    eligible = [p for p, ts in members.items() if len(ts) >= config.min_playlist_tracks]
    if not eligible:
        raise DataError(f"no playlist in {str(path)!r} has {config.min_playlist_tracks} tracks; nothing to hold out")

    rng = np.random.default_rng(seed)
    num_new = max(1, round(config.new_playlist_share * len(eligible))) if config.new_playlist_share > 0 else 0
    new_set = {eligible[i] for i in rng.choice(len(eligible), size=num_new, replace=False).tolist()}
    n_seed = config.new_playlist_seeds
    new_playlists = {p: (members[p][:n_seed], members[p][n_seed:]) for p in eligible if p in new_set}
    continuation: dict[str, list[str]] = {}
    for p in eligible:
        if p in new_set:
            continue
        tracks = members[p]
        perm = rng.permutation(len(tracks))[: round(config.holdout_share * len(tracks))]
        continuation[p] = [tracks[i] for i in sorted(perm.tolist())]

    held = {(p, t) for p, ts in continuation.items() for t in ts}
    row_pairs = list(zip(pid.tolist(), tid.tolist(), strict=True))
    keep = np.array([(p, t) not in held and p not in new_set for p, t in row_pairs])
    # A track whose first row is held out keeps that row as a catalogue-only row: tracks that lost every pair
    # stay in the catalogue, and every track keeps its full-data position and first-row metadata.
    first_row = (~tid.duplicated(keep="first") & (tid != "")).to_numpy()
    orphan = first_row & ~keep
    train = frame[keep | orphan].copy()
    orphan_rows = orphan[keep | orphan]
    for col in PLAYLIST_COLUMNS:
        if col in train.columns:
            train.loc[orphan_rows, col] = ""

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    train_csv = out / TRAIN_FILE
    train.to_csv(train_csv, index=False, encoding="utf-8", lineterminator="\n")

    similar = _similar_queries(frame, tid, members, continuation, config, rng)
    names = frame["playlist_name"].str.strip() if "playlist_name" in frame.columns else pd.Series("", index=frame.index)
    first = pd.DataFrame({"p": pid, "name": names}).drop_duplicates("p")  # a playlist's first row names it
    new_names = {str(p): str(n) for p, n in zip(first["p"], first["name"], strict=True) if p in new_set}
    _write_tests(out, continuation, new_playlists, similar)
    return Split(
        seed=seed,
        train_csv=train_csv,
        catalog=load_catalog(train_csv),
        continuation=continuation,
        new_playlists=new_playlists,
        similar=similar,
        config=config,
        new_playlist_names=new_names,
    )


def _similar_queries(
    frame: pd.DataFrame,
    tid: pd.Series,
    members: dict[str, list[str]],
    continuation: dict[str, list[str]],
    config: SplitConfig,
    rng: np.random.Generator,
) -> dict[str, list[str]]:
    """Held-out tracks as queries; relevant = full-data co-members, minus other versions of the same song."""
    candidates = list(dict.fromkeys(t for ts in continuation.values() for t in ts))
    if len(candidates) > config.max_similar_queries:
        pick = np.sort(rng.choice(len(candidates), size=config.max_similar_queries, replace=False))
        candidates = [candidates[i] for i in pick.tolist()]
    first = ~tid.duplicated(keep="first") & (tid != "")
    names = frame.loc[first, "track_name"].tolist()
    artists = frame.loc[first, "track_artist"].tolist()
    song = {t: song_key(n, a) for t, n, a in zip(tid[first].tolist(), names, artists, strict=True)}
    playlists_of: dict[str, list[str]] = {}
    for p, ts in members.items():
        for t in ts:
            playlists_of.setdefault(t, []).append(p)
    similar: dict[str, list[str]] = {}
    for q in candidates:
        related = dict.fromkeys(t for p in playlists_of[q] for t in members[p])
        rel = [t for t in related if t != q and song[t] != song[q]]
        if rel:
            similar[q] = rel
    return similar


def _write_tests(
    out: Path,
    continuation: dict[str, list[str]],
    new_playlists: dict[str, tuple[list[str], list[str]]],
    similar: dict[str, list[str]],
) -> None:
    """The held-out parts as small CSVs beside train.csv, for inspection and for other tools."""
    pd.DataFrame([(p, t) for p, ts in continuation.items() for t in ts], columns=["playlist_id", "track_id"]).to_csv(
        out / "continuation.csv", index=False
    )
    pd.DataFrame(
        [(p, t, "seed") for p, (s, _) in new_playlists.items() for t in s]
        + [(p, t, "target") for p, (_, ts) in new_playlists.items() for t in ts],
        columns=["playlist_id", "track_id", "role"],
    ).to_csv(out / "new_playlists.csv", index=False)
    pd.DataFrame(
        [(q, t) for q, ts in similar.items() for t in ts], columns=["query_track_id", "relevant_track_id"]
    ).to_csv(out / "similar.csv", index=False)
