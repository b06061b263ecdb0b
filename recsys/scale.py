"""A deterministic synthetic playlist catalogue at scale (100k to 10M+ pairs), streamed to Parquet or CSV in chunks.

Same columns as the real CSV (recsys.demo.COLUMNS). Shape: power-law track popularity, artists with many tracks
in several albums, playlists of 5 to 250 tracks drawn from a mixture of one to three subgenres, part of each
playlist from the artists already in it. Only the track table (numpy arrays, ~1 track per 20 pairs) is held whole;
playlists are generated, deduplicated and written one block at a time with vectorised numpy.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recsys.data import AUDIO_FEATURES
from recsys.demo import _ADJ, _ARTIST_FIRST, _ARTIST_LAST, _GENRE_PROFILE, _NOUN, COLUMNS, GENRES
from recsys.errors import RecsysError

FORMATS = ("parquet", "csv")
_BASE62 = np.array(list("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"))
_SUBGENRES = [(g, s) for g, subs in GENRES.items() for s in subs]
# A third title word so that 1M titles are not all among 30x30 pairs (real catalogues have many distinct names).
_EXTRA = ["", "", "", "Song", "Tonight", "Again", "Forever", "Remix", "Blues", "Anthem", "Nights", "Theme"]
_SUFFIX = ("Essentials", "Mix", "Hits", "Radio", "Vibes", "Classics", "Drive", "Party", "Chill", "Workout")


@dataclass(frozen=True)
class ScaleConfig:
    """Size and shape of a generated catalogue."""

    pairs: int = 1_000_000  # playlist-track pairs written (exactly), catalogue-only rows come on top
    seed: int = 0  # same seed and config -> byte-identical output
    # The Million Playlist Dataset has ~29 pairs per distinct track (66M / 2.26M); 20 keeps a longer tail.
    pairs_per_track: int = 20
    tracks_per_artist: float = 12.0  # mean; artist sizes are power-law, so a few artists have hundreds
    album_size: int = 10  # an artist's tracks are cut into albums of this many
    popularity_exponent: float = 1.0  # Zipf exponent of track popularity within a subgenre
    # Median playlist length ~40 like the real file; lognormal spread, clipped to the 5-250 of the issue.
    playlist_median: float = 40.0
    playlist_sigma: float = 0.8
    same_artist_share: float = 0.3  # share of slots that take another track of an artist already in the playlist
    block_playlists: int = 2_000  # playlists per generated block (bounds memory: ~100k rows per block)
    catalogue_only: bool = True  # also write tracks no playlist drew, with empty playlist columns (like real data)

    def __post_init__(self) -> None:
        if self.pairs < 1:
            raise RecsysError(f"a synthetic catalogue needs at least 1 pair; got pairs={self.pairs}")
        if self.block_playlists < 1:
            raise RecsysError(f"block_playlists must be at least 1; got {self.block_playlists}")


def _ids(rng: np.random.Generator, n: int) -> np.ndarray:
    """n random 22-character base62 ids (Spotify's id shape). [n] str"""
    chars = _BASE62[rng.integers(0, 62, size=(n, 22))]  # [n, 22] <U1
    return np.ascontiguousarray(chars).view("<U22")[:, 0]


def _words(*parts: np.ndarray) -> np.ndarray:
    out = parts[0].astype(object)
    for p in parts[1:]:
        out = out + " " + p.astype(object)
    return np.char.strip(out.astype(str))


@dataclass(frozen=True)
class _Tracks:
    """The generated track table, ordered by subgenre then artist (so both are contiguous ranges)."""

    columns: dict[str, np.ndarray]  # column name -> [T] values, typed
    subgenre: np.ndarray  # [T] index into _SUBGENRES
    artist_start: np.ndarray  # [T] first track_idx of the track's artist
    artist_count: np.ndarray  # [T] number of tracks of the track's artist
    cdf: np.ndarray  # [T] subgenre + cumulative popularity share within the subgenre, for one searchsorted


def _make_tracks(config: ScaleConfig) -> _Tracks:
    rng = np.random.default_rng([config.seed, 0])
    num_tracks = max(50, config.pairs // config.pairs_per_track)
    num_artists = max(1, int(num_tracks / config.tracks_per_artist))
    # Artist sizes: Zipf-like weights over a random order, so a few artists hold many tracks.
    weights = 1.0 / np.arange(1, num_artists + 1) ** 0.8
    weights = rng.permutation(weights / weights.sum())
    artist_sub = rng.integers(0, len(_SUBGENRES), num_artists)
    artist = rng.choice(num_artists, size=num_tracks, p=weights)
    order = np.lexsort((artist, artist_sub[artist]))
    artist = artist[order]  # [T], tracks now grouped by subgenre, then artist
    sub = artist_sub[artist]
    first = np.r_[True, artist[1:] != artist[:-1]]
    start = np.maximum.accumulate(np.where(first, np.arange(num_tracks), 0))
    counts = np.diff(np.r_[np.flatnonzero(first), num_tracks])
    count = counts[np.cumsum(first) - 1]
    local = np.arange(num_tracks) - start
    album_key = artist.astype(np.int64) * (num_tracks + 1) + local // config.album_size
    album = np.unique(album_key, return_inverse=True)[1]

    # Names: artists from an unambiguous mixed-radix code (distinct names), titles and albums from word lists.
    f, la, no = len(_ARTIST_FIRST), len(_ARTIST_LAST), len(_NOUN)
    a_code = np.arange(num_artists)
    a_names = _words(
        np.array(_ARTIST_FIRST)[a_code % f],
        np.array(_ARTIST_LAST)[(a_code // f) % la],
        np.array(_NOUN)[(a_code // (f * la)) % no],
    )
    lap = a_code // (f * la * no)
    a_names = np.where(lap > 0, np.char.add(np.char.add(a_names, " "), (lap + 1).astype(str)), a_names)
    adj, noun, extra = np.array(_ADJ), np.array(_NOUN), np.array(_EXTRA)
    titles = _words(
        adj[rng.integers(0, len(adj), num_tracks)],
        noun[rng.integers(0, len(noun), num_tracks)],
        extra[rng.integers(0, len(extra), num_tracks)],
    )
    num_albums = int(album.max()) + 1
    album_names = _words(adj[rng.integers(0, len(adj), num_albums)], noun[rng.integers(0, len(noun), num_albums)])
    album_years = rng.integers(1960, 2024, num_albums)
    album_ids = _ids(rng, num_albums)

    # Popularity: Zipf over a random rank inside each subgenre; the 0-100 column follows log popularity.
    rank = rng.permutation(num_tracks) + 1
    pop = 1.0 / rank.astype(np.float64) ** config.popularity_exponent
    sub_total = np.bincount(sub, weights=pop, minlength=len(_SUBGENRES))
    share = pop / sub_total[sub]
    cum = np.cumsum(share)
    sub_first = np.r_[True, sub[1:] != sub[:-1]]
    base = np.maximum.accumulate(np.where(sub_first, np.arange(num_tracks), 0))
    cdf = sub + (cum - cum[base] + share[base])
    cdf[np.r_[sub[1:] != sub[:-1], True]] = sub[np.r_[sub[1:] != sub[:-1], True]] + 1.0  # close each range exactly
    log_pop = np.log(pop)
    popularity = np.clip(
        100 * (log_pop - log_pop.min()) / (np.ptp(log_pop) or 1.0) + rng.normal(0, 5, num_tracks), 0, 100
    )

    # Audio: genre profile + artist offset + track noise, as in the demo catalogue.
    profile = np.array([_GENRE_PROFILE[g] for g, _ in _SUBGENRES])  # [S, 7]
    scale7 = np.array([1, 1, 0.3, 1, 0.3, 1, 40])
    artist_off = rng.normal(0, 0.06, (num_artists, 7)) * scale7
    d, e, s, a, ins, v, tempo = (profile[sub] + artist_off[artist] + rng.normal(0, 0.05, (num_tracks, 7)) * scale7).T
    audio = {
        "danceability": np.clip(d, 0, 1).round(3),
        "energy": np.clip(e, 0, 1).round(3),
        "key": rng.integers(0, 12, num_tracks),
        "loudness": rng.normal(-7 + 4 * (e - 0.6), 1.5).round(3),
        "mode": rng.integers(0, 2, num_tracks),
        "speechiness": np.clip(s, 0.02, 1).round(4),
        "acousticness": np.clip(a, 0, 1).round(4),
        "instrumentalness": np.clip(ins, 0, 1).round(4),
        "liveness": np.clip(rng.normal(0.18, 0.08, num_tracks), 0.02, 1).round(4),
        "valence": np.clip(v, 0, 1).round(3),
        "tempo": np.clip(tempo, 60, 200).round(3),
        "duration_ms": np.clip(rng.normal(215000, 35000, num_tracks), 90000, 480000).astype(np.int64),
    }
    columns: dict[str, np.ndarray] = {
        "track_id": _ids(rng, num_tracks),
        "track_name": titles,
        "track_artist": a_names[artist],
        "track_popularity": popularity.astype(np.int64),
        "track_album_id": album_ids[album],
        "track_album_name": album_names[album],
        "track_album_release_date": np.char.add(album_years[album].astype(str), "-01-01"),
        **{k: audio[k] for k in AUDIO_FEATURES},
    }
    return _Tracks(columns=columns, subgenre=sub, artist_start=start, artist_count=count, cdf=cdf)


def _block(tracks: _Tracks, config: ScaleConfig, block: int, budget: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """One block of playlists: (track_idx per row, playlist columns per row), at most `budget` unique pairs."""
    rng = np.random.default_rng([config.seed, 1, block])
    n = config.block_playlists
    sizes = np.clip(rng.lognormal(np.log(config.playlist_median), config.playlist_sigma, n), 5, 250).astype(np.int64)
    # Each playlist mixes 1-3 subgenres with Dirichlet-like weights.
    mix = rng.integers(0, len(_SUBGENRES), (n, 3))
    w = rng.gamma(0.5, size=(n, 3)) * (np.arange(3) < rng.integers(1, 4, n)[:, None])
    w[:, 0] += 1e-9
    w /= w.sum(1, keepdims=True)
    owner = np.repeat(np.arange(n), sizes)  # [slots] playlist of each slot
    pos = np.arange(len(owner)) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    pick = (rng.random(len(owner))[:, None] > np.cumsum(w, 1)[owner]).sum(1).clip(0, 2)
    slot_sub = mix[owner, pick]
    idx = np.searchsorted(tracks.cdf, slot_sub + rng.random(len(owner)), side="right").clip(0, len(tracks.cdf) - 1)
    # Artist affinity: some slots take another track by the artist of an earlier slot of the same playlist.
    follow = (pos > 0) & (rng.random(len(owner)) < config.same_artist_share)
    earlier = np.arange(len(owner)) - 1 - (rng.random(len(owner)) * np.maximum(pos, 1)).astype(np.int64)
    anchor = idx[earlier[follow]]
    # ... weighted by popularity too: a uniform point in the artist's span of the cumulative popularity.
    a_first = tracks.artist_start[anchor]
    a_last = a_first + tracks.artist_count[anchor] - 1
    lo = np.where(a_first > 0, tracks.cdf[np.maximum(a_first - 1, 0)], 0.0)
    x = lo + rng.random(len(anchor)) * (tracks.cdf[a_last] - lo)
    idx[follow] = np.searchsorted(tracks.cdf, x, side="right").clip(a_first, a_last)
    # Unique pairs, in generation order.
    key = owner.astype(np.int64) * len(tracks.cdf) + idx
    _, first = np.unique(key, return_index=True)
    keep = np.sort(first)[:budget]
    owner, idx = owner[keep], idx[keep]
    genre_of = np.array(list(GENRES))
    sub_names = np.array([s for _, s in _SUBGENRES])
    main_sub = mix[np.arange(n), w.argmax(1)]
    names = np.char.add(np.char.add("[scale] ", np.char.title(sub_names[main_sub])), " ")
    names = np.char.add(names, np.array(_SUFFIX)[rng.integers(0, len(_SUFFIX), n)])
    playlist = {
        "playlist_name": names[owner],
        "playlist_id": _ids(rng, n)[owner],
        "playlist_genre": genre_of[np.array([list(GENRES).index(g) for g, _ in _SUBGENRES])[main_sub]][owner],
        "playlist_subgenre": sub_names[main_sub][owner],
    }
    return idx, playlist


def iter_chunks(config: ScaleConfig) -> Iterator[pd.DataFrame]:
    """The catalogue as DataFrames of at most ~block_playlists * 250 rows each, in COLUMNS order."""
    tracks = _make_tracks(config)
    drawn = np.zeros(len(tracks.cdf), dtype=bool)
    written, block = 0, 0
    while written < config.pairs:
        idx, playlist = _block(tracks, config, block, config.pairs - written)
        drawn[idx] = True
        written += len(idx)
        block += 1
        yield _frame({k: v[idx] for k, v in tracks.columns.items()}, playlist)
    if config.catalogue_only:
        rest = np.flatnonzero(~drawn)
        for lo in range(0, len(rest), 100_000):
            part = rest[lo : lo + 100_000]
            empty = np.full(len(part), "", dtype="<U1")
            cols = ("playlist_name", "playlist_id", "playlist_genre", "playlist_subgenre")
            yield _frame({k: v[part] for k, v in tracks.columns.items()}, dict.fromkeys(cols, empty))


def _frame(track_cols: dict[str, np.ndarray], playlist: dict[str, np.ndarray]) -> pd.DataFrame:
    data = {**track_cols, **playlist}
    return pd.DataFrame({c: data[c] for c in COLUMNS})


def _pyarrow() -> Any:
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError as exc:
        raise RecsysError("writing Parquet needs pyarrow: pip install 'musicrec[scale]' (or use --format csv)") from exc
    return pyarrow


def write_scale(path: str | os.PathLike[str], config: ScaleConfig | None = None, fmt: str | None = None) -> Path:
    """Generate the catalogue and write it atomically (temp file, then rename); format from fmt or the suffix."""
    config = config or ScaleConfig()
    out = Path(path)
    fmt = fmt or ("parquet" if out.suffix == ".parquet" else "csv")
    if fmt not in FORMATS:
        raise RecsysError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    pa = _pyarrow() if fmt == "parquet" else None
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        if pa is not None:
            writer = None
            try:
                for frame in iter_chunks(config):
                    table = pa.Table.from_pandas(frame, preserve_index=False)
                    if writer is None:
                        writer = pa.parquet.ParquetWriter(tmp, table.schema, compression="zstd")
                    writer.write_table(table)
            finally:
                if writer is not None:
                    writer.close()
        else:
            with open(tmp, "w", newline="", encoding="utf-8") as fh:
                for n, frame in enumerate(iter_chunks(config)):
                    frame.to_csv(fh, header=n == 0, index=False)
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of 'musicrec data scale' (added to the 'data' subcommand's parser)."""
    parser.add_argument("--pairs", type=int, default=ScaleConfig.pairs, help="playlist-track pairs (scale only)")
    parser.add_argument("--format", choices=FORMATS, help="scale only: parquet or csv (default: from --out suffix)")
    parser.add_argument("--seed", type=int, default=ScaleConfig.seed, help="scale only: generator seed")


def cmd_scale(args: argparse.Namespace) -> int:
    """Run 'musicrec data scale'."""
    fmt = args.format or ("parquet" if str(args.out or "").endswith(".parquet") else "csv")
    out = args.out or f"data/scale_{args.pairs}.{fmt}"
    path = write_scale(out, ScaleConfig(pairs=args.pairs, seed=args.seed), fmt)
    print(f"wrote a synthetic catalogue of {args.pairs} playlist-track pairs to {path}")
    return 0
