"""From a Catalog to model inputs: fitted feature scaling, id vocabularies and the PyG edge_index tensors."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
import torch

from recsys.data import Catalog
from recsys.names import artist_keys

# Derived numeric inputs appended to the audio features (year and popularity carry era and mainstream-ness).
EXTRA_NUMERIC = ("year", "popularity")


@dataclass(frozen=True, eq=False)
class FeatureScaler:
    """Per-column centring and scaling, fitted on training tracks only and stored with the model."""

    kind: Literal["standard", "minmax"]
    shift: np.ndarray  # [num_columns] float32
    scale: np.ndarray  # [num_columns] float32

    @classmethod
    def fit(cls, values: np.ndarray, kind: Literal["standard", "minmax"] = "standard") -> FeatureScaler:
        if kind == "standard":
            shift = np.nanmean(values, axis=0)
            scale = np.nanstd(values, axis=0)
        else:
            shift = np.nanmin(values, axis=0)
            scale = np.nanmax(values, axis=0) - shift
        shift = np.nan_to_num(shift).astype(np.float32)
        scale = np.where(np.nan_to_num(scale) > 1e-8, np.nan_to_num(scale), 1.0).astype(np.float32)
        return cls(kind=kind, shift=shift, scale=scale)

    def transform(self, values: np.ndarray) -> np.ndarray:
        """Scale; missing values become the column's centre (0 standardised, 0.5-ish min-max)."""
        out = (values - self.shift) / self.scale
        fill = 0.0 if self.kind == "standard" else 0.5
        return np.where(np.isnan(out), fill, out).astype(np.float32)


def numeric_inputs(catalog: Catalog) -> np.ndarray:
    """Audio features plus year and popularity, raw (NaN where unknown). [num_tracks, 14]"""
    return np.column_stack([catalog.features, catalog.years, catalog.popularity]).astype(np.float32)


def _vocabulary(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct non-empty values and each value's index (-1 for empty).

    pandas hashes the values and sorts only the distinct ones: on object arrays of str, several times faster than
    np.unique, which sorts every row with Python comparisons."""
    idx, vocab = pd.factorize(values, sort=True)
    vocab = np.asarray(vocab, dtype=object)
    if len(vocab) and vocab[0] == "":  # "" sorts first
        vocab, idx = vocab[1:], idx - 1
    return vocab, idx.astype(np.int64)


@dataclass(frozen=True, eq=False)
class GraphInputs:
    """Node inputs of one catalogue; built once, shared by training and serving."""

    num_playlists: int
    num_tracks: int
    num_artists: int
    num_albums: int
    track_x: torch.Tensor  # [num_tracks, num_inputs] float32: scaled numeric inputs and missing flags
    # [num_tracks, G + S + 1] float32: genre and subgenre one-hot, last column "unknown". Genres are playlist
    # labels, so a track's genre is only known through some playlist; training hides it to mimic cold tracks.
    track_genre: torch.Tensor
    audio_x: torch.Tensor  # [num_tracks, 12] float32: scaled audio features only (the original design's input)
    track_artist: torch.Tensor  # [num_tracks] int64 artist_idx
    track_album: torch.Tensor  # [num_tracks] int64 album_idx, -1 when unknown
    scaler: FeatureScaler

    @property
    def num_nodes(self) -> int:
        return self.num_playlists + self.num_tracks + self.num_artists + self.num_albums

    @property
    def track_offset(self) -> int:
        return self.num_playlists

    @property
    def artist_offset(self) -> int:
        return self.num_playlists + self.num_tracks

    @property
    def album_offset(self) -> int:
        return self.num_playlists + self.num_tracks + self.num_artists


def build_inputs(
    catalog: Catalog, scaling: Literal["standard", "minmax"] = "standard", scaler: FeatureScaler | None = None
) -> GraphInputs:
    """Scale features (fitting the scaler on this catalogue unless one is given) and index artists and albums."""
    raw = numeric_inputs(catalog)
    scaler = scaler or FeatureScaler.fit(raw, scaling)
    scaled = scaler.transform(raw)
    missing = np.isnan(raw[:, -len(EXTRA_NUMERIC) :]).astype(np.float32)
    genre_vocab, genre_idx = _vocabulary(catalog.genres)
    sub_vocab, sub_idx = _vocabulary(catalog.subgenres)
    genre_1h = np.zeros((catalog.num_tracks, len(genre_vocab) + len(sub_vocab) + 1), dtype=np.float32)
    rows = np.arange(catalog.num_tracks)
    genre_1h[rows[genre_idx >= 0], genre_idx[genre_idx >= 0]] = 1.0
    genre_1h[rows[sub_idx >= 0], len(genre_vocab) + sub_idx[sub_idx >= 0]] = 1.0
    genre_1h[:, -1] = (genre_idx < 0) & (sub_idx < 0)
    track_x = np.concatenate([scaled, missing], axis=1)

    # Artists are keyed by name (the CSV has no artist id); albums by album id.
    artist_vocab, artist_idx = _vocabulary(artist_keys(catalog.track_artists.tolist()))
    album_vocab, album_idx = _vocabulary(catalog.album_ids)
    return GraphInputs(
        num_playlists=catalog.num_playlists,
        num_tracks=catalog.num_tracks,
        num_artists=max(len(artist_vocab), 1),
        num_albums=max(len(album_vocab), 1),
        track_x=torch.from_numpy(track_x),
        track_genre=torch.from_numpy(genre_1h),
        audio_x=torch.from_numpy(np.ascontiguousarray(scaled[:, : catalog.features.shape[1]])),
        track_artist=torch.from_numpy(np.maximum(artist_idx, 0)),
        track_album=torch.from_numpy(album_idx),
        scaler=scaler,
    )


def bipartite_edge_index(inputs: GraphInputs, pairs: torch.Tensor) -> torch.Tensor:
    """Undirected playlist-track edges in the joint node numbering. pairs: [2, n] (playlist_idx, track_idx)."""
    src = pairs[0]
    dst = pairs[1] + inputs.track_offset
    return torch.stack([torch.cat([src, dst]), torch.cat([dst, src])])  # [2, 2n]


def attribute_edge_index(inputs: GraphInputs) -> torch.Tensor:
    """Undirected track-artist and track-album edges in the joint node numbering. [2, 2 * (T + known albums)]"""
    tracks = torch.arange(inputs.num_tracks) + inputs.track_offset
    artists = inputs.track_artist + inputs.artist_offset
    has_album = inputs.track_album >= 0
    album_tracks = tracks[has_album]
    albums = inputs.track_album[has_album] + inputs.album_offset
    src = torch.cat([tracks, album_tracks])
    dst = torch.cat([artists, albums])
    return torch.stack([torch.cat([src, dst]), torch.cat([dst, src])])


def split_pairs(
    pairs: torch.Tensor, share: float, generator: torch.Generator, protect_last_edge: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Randomly split [2, n] pairs into (kept, held) with about `share` held.

    With protect_last_edge, a playlist never loses all its pairs (it would have nothing to be scored from).
    """
    n = pairs.shape[1]
    perm = torch.randperm(n, generator=generator)
    held_mask = torch.zeros(n, dtype=torch.bool)
    held_mask[perm[: round(n * share)]] = True
    if protect_last_edge and n:
        kept_per_playlist = torch.bincount(pairs[0][~held_mask], minlength=int(pairs[0].max()) + 1)
        orphan = kept_per_playlist[pairs[0]] == 0
        if orphan.any():
            # Give each orphaned playlist back one of its pairs (the first in permuted order).
            candidates = perm[orphan[perm]].numpy()
            first = np.unique(pairs[0].numpy()[candidates], return_index=True)[1]
            held_mask[torch.from_numpy(candidates[first])] = False
    return pairs[:, ~held_mask], pairs[:, held_mask]


def normalised_csr(pairs: torch.Tensor, inputs: GraphInputs, attributes: bool) -> torch.Tensor:
    """The symmetric D^-1/2 A D^-1/2 of the playlist-track pairs [2, n] (and, with attributes, the track-artist and
    track-album edges) as a sparse CSR matrix over all inputs.num_nodes nodes.

    The same matrix, value for value, as gcn_norm over bipartite_edge_index and attribute_edge_index followed by a
    COO coalesce, built with a fraction of their memory (the Million Playlist Dataset's graph has 130M non-zeros):
    one int64 key row * num_nodes + col per non-zero, sorted in place; no edge_index, no sort permutation, no weights
    in edge order. Repeated edges count twice, in the degrees and in the value, as a coalesce sums them."""
    n = inputs.num_nodes
    playlists, tracks = pairs[0].numpy(), pairs[1].numpy() + inputs.track_offset
    parts = [(playlists, tracks)]
    if attributes:
        track_nodes = np.arange(inputs.num_tracks, dtype=np.int64) + inputs.track_offset
        album = inputs.track_album.numpy()
        parts.append((track_nodes, inputs.track_artist.numpy() + inputs.artist_offset))
        parts.append((track_nodes[album >= 0], album[album >= 0] + inputs.album_offset))
    keys = np.empty(2 * sum(len(a) for a, _ in parts), dtype=np.int64)
    at = 0
    for a, b in parts:  # both directions of every undirected edge
        for row, col in ((a, b), (b, a)):
            np.multiply(row, n, out=keys[at : at + len(row)])
            keys[at : at + len(row)] += col
            at += len(row)
    keys.sort()
    cols_np = keys % n
    degree = torch.bincount(torch.from_numpy(cols_np), minlength=n)  # symmetric: a node's column count is its degree
    repeats = None
    if len(keys) > 1 and bool((same := keys[1:] == keys[:-1]).any()):
        first = np.flatnonzero(np.r_[True, ~same])
        repeats = torch.from_numpy(np.diff(np.r_[first, len(keys)])).float()
        keys, cols_np = keys[first], cols_np[first]
    rows, cols = torch.from_numpy(np.floor_divide(keys, n, out=keys)), torch.from_numpy(cols_np)
    crow = torch.zeros(n + 1, dtype=torch.int64)
    torch.cumsum(degree if repeats is None else torch.bincount(rows, minlength=n), 0, out=crow[1:])
    dinv = degree.float().pow_(-0.5).masked_fill_(degree == 0, 0.0)
    values = dinv[rows].mul_(dinv[cols])
    if repeats is not None:
        values.mul_(repeats)
    del rows, keys
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(crow, cols, values, (n, n), check_invariants=False)
