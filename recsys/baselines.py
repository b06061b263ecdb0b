"""Baseline recommenders behind the Snapshot's three full-score methods, so one harness evaluates them all.

Each baseline is fitted on a training Catalog and never sees anything else. MODELS names every model the
evaluation knows, the trained GNNs included, as a factory (catalog, seed) -> Scorer; TEXT_MODELS those that only
rank text queries (Snapshot.text_scores), scored on the text task alone.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np
import pandas as pd
import torch

from recsys.config import LossConfig, ModelConfig, TrainConfig
from recsys.data import Catalog
from recsys.errors import InvalidQueryError, UnknownPlaylistError, UnknownTrackError
from recsys.graph import FeatureScaler
from recsys.names import artist_keys
from recsys.words import tokens


class Scorer(Protocol):
    """Anything that scores the whole catalogue for a track, a training playlist, or a set of seed tracks."""

    track_ids: np.ndarray

    def track_scores(self, track_id: str) -> np.ndarray: ...
    def playlist_scores(self, playlist_id: str) -> np.ndarray: ...
    def seed_scores(self, track_ids: Sequence[str]) -> np.ndarray: ...


class TextScorer(Protocol):
    """Anything that scores the whole catalogue for a text query (a playlist name, a mood)."""

    track_ids: np.ndarray

    def text_scores(self, text: str) -> np.ndarray: ...


def _unit_rows(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(np.float32)


class CatalogScorer:
    """Shared plumbing: id maps, playlist memberships, and z-scored audio vectors of the training catalogue."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.track_ids = catalog.track_ids
        self._track_pos = catalog.track_index()
        self._playlist_pos = catalog.playlist_index()
        order = np.argsort(catalog.edges[0], kind="stable")
        self._ptr = np.searchsorted(catalog.edges[0][order], np.arange(catalog.num_playlists + 1))
        self._members = catalog.edges[1][order]
        # The scaler is fitted on this (training) catalogue only, like the GNN's.
        scaler = FeatureScaler.fit(catalog.features, "standard")
        self.audio = _unit_rows(scaler.transform(catalog.features))  # [T, 12] unit length

    def _idx(self, track_id: str) -> int:
        try:
            return self._track_pos[track_id]
        except KeyError:
            raise UnknownTrackError(track_id) from None

    def _playlist_tracks(self, playlist_id: str) -> np.ndarray:
        try:
            p = self._playlist_pos[playlist_id]
        except KeyError:
            raise UnknownPlaylistError(playlist_id) from None
        return self._members[self._ptr[p] : self._ptr[p + 1]]

    def _seeds(self, track_ids: Sequence[str]) -> np.ndarray:
        if not track_ids:
            raise InvalidQueryError("a new playlist needs at least one seed track_id; got none")
        return np.array(sorted({self._idx(t) for t in track_ids}), dtype=np.int64)

    def audio_cosine(self, tracks: np.ndarray) -> np.ndarray:
        """Cosine of every track's audio vector to the centroid of the given tracks. [T]"""
        centroid = self.audio[tracks].mean(0)
        return self.audio @ (centroid / max(float(np.linalg.norm(centroid)), 1e-12))

    def score(self, tracks: np.ndarray) -> np.ndarray:
        """Scores of the catalogue given a set of known track_idx (a playlist or seeds). [T]"""
        raise NotImplementedError

    def track_scores(self, track_id: str) -> np.ndarray:
        return self.score(np.array([self._idx(track_id)]))

    def playlist_scores(self, playlist_id: str) -> np.ndarray:
        return self.score(self._playlist_tracks(playlist_id))

    def seed_scores(self, track_ids: Sequence[str]) -> np.ndarray:
        return self.score(self._seeds(track_ids))


class RandomScorer(CatalogScorer):
    """Uniformly random scores: the floor every model must clear."""

    def __init__(self, catalog: Catalog, seed: int = 0) -> None:
        super().__init__(catalog)
        self._rng = np.random.default_rng(seed)

    def score(self, tracks: np.ndarray) -> np.ndarray:
        return self._rng.random(self.catalog.num_tracks).astype(np.float32)


class PopularityScorer(CatalogScorer):
    """Most-played first: training playlist count, ties (all cold tracks) broken by Spotify popularity."""

    def __init__(self, catalog: Catalog) -> None:
        super().__init__(catalog)
        pop = np.nan_to_num(catalog.popularity, nan=0.0) / 1000.0  # < 0.1: only breaks ties
        self._scores = (catalog.track_degrees() + pop).astype(np.float32)

    def score(self, tracks: np.ndarray) -> np.ndarray:
        return self._scores.copy()


class AudioCosineScorer(CatalogScorer):
    """Cosine of z-scored audio features to the query track, the playlist centroid, or the seed centroid."""

    def score(self, tracks: np.ndarray) -> np.ndarray:
        return self.audio_cosine(tracks)


class ArtistAlbumScorer(CatalogScorer):
    """How many known tracks share the candidate's artist, plus how many share its album; ties by audio cosine."""

    def __init__(self, catalog: Catalog) -> None:
        super().__init__(catalog)
        self._artist = pd.factorize(artist_keys(catalog.track_artists.tolist()))[0]  # [T] artist_idx
        album_idx, albums = pd.factorize(catalog.album_ids)
        # Unknown albums ("") are not a shared album.
        self._album = np.where(catalog.album_ids == "", -1, album_idx)
        self._num_albums = len(albums)

    def score(self, tracks: np.ndarray) -> np.ndarray:
        artist_count = np.bincount(self._artist[tracks], minlength=int(self._artist.max()) + 1)
        album_known = self._album[tracks][self._album[tracks] >= 0]
        album_count = np.bincount(album_known, minlength=self._num_albums)
        counts = artist_count[self._artist] + np.where(self._album >= 0, album_count[self._album], 0)
        # Cosine lies in [-1, 1]; scaled by 1e-3 it only orders tracks with equal counts.
        return (counts + 1e-3 * self.audio_cosine(tracks)).astype(np.float32)


class ItemKNNScorer(CatalogScorer):
    """Item-based kNN on playlist co-occurrence (cosine of track columns); only warm tracks can score."""

    def __init__(self, catalog: Catalog) -> None:
        super().__init__(catalog)
        x = np.zeros((catalog.num_playlists, catalog.num_tracks), dtype=np.float32)  # [P, T] membership
        x[catalog.edges[0], catalog.edges[1]] = 1.0
        degree = x.sum(0)
        self._x = x
        self._inv_sqrt = np.where(degree > 0, 1.0 / np.sqrt(np.maximum(degree, 1.0)), 0.0).astype(np.float32)
        self._tiebreak = (np.nan_to_num(catalog.popularity, nan=0.0) * 1e-6).astype(np.float32)

    def score(self, tracks: np.ndarray) -> np.ndarray:
        # sum_i cos(i, t) = sum_q (sum_i x[q, i] / sqrt(d_i)) x[q, t] / sqrt(d_t): one [P] vector, one product.
        weights = self._x[:, tracks] @ self._inv_sqrt[tracks]  # [P]
        return (weights @ self._x) * self._inv_sqrt + self._tiebreak


@dataclasses.dataclass(frozen=True)
class LightGCNConfig:
    """PyG LightGCN on playlist and track ids only (no features): the transductive GNN baseline."""

    # The sizes of the LightGCN paper's smaller settings; the graph has ~30k nodes.
    embedding_dim: int = 64
    num_layers: int = 3
    # A fixed, small budget: this is a baseline, trained the same way on every split.
    epochs: int = 60
    batch_size: int = 4096
    learning_rate: float = 0.01
    lambda_reg: float = 1e-4


class LightGCNScorer(CatalogScorer):
    """PyG LightGCN trained with BPR (its recommendation_loss) and uniform negatives from the training catalogue.

    Negatives are drawn from all tracks without knowledge of any held-out pair (PyG issue #6946: excluding test
    edges from negative sampling leaks them). Cold tracks keep their random initial embedding.
    """

    def __init__(self, catalog: Catalog, seed: int = 0, config: LightGCNConfig | None = None) -> None:
        from torch_geometric.nn.models import LightGCN

        super().__init__(catalog)
        config = config or LightGCNConfig()
        p, t = catalog.num_playlists, catalog.num_tracks
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        pairs = torch.from_numpy(catalog.edges.copy()).long()  # [2, E] playlist_idx, track_idx
        src, dst = pairs[0], pairs[1] + p
        edge_index = torch.stack([torch.cat([src, dst]), torch.cat([dst, src])])  # [2, 2E] joint numbering
        model = LightGCN(num_nodes=p + t, embedding_dim=config.embedding_dim, num_layers=config.num_layers)
        opt = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
        for _ in range(config.epochs):
            order = torch.randperm(pairs.shape[1], generator=gen)
            for lo in range(0, len(order), config.batch_size):
                pos = pairs[:, order[lo : lo + config.batch_size]]
                neg = torch.randint(0, t, (pos.shape[1],), generator=gen)
                z = model.get_embedding(edge_index)  # [P + T, d]
                pos_rank = (z[pos[0]] * z[pos[1] + p]).sum(-1)
                neg_rank = (z[pos[0]] * z[neg + p]).sum(-1)
                node_id = torch.unique(torch.cat([pos[0], pos[1] + p, neg + p]))
                loss = model.recommendation_loss(pos_rank, neg_rank, node_id=node_id, lambda_reg=config.lambda_reg)
                opt.zero_grad()
                loss.backward()
                opt.step()
        with torch.no_grad():
            z = model.get_embedding(edge_index).numpy()
        self._playlist_z = z[:p].astype(np.float32)
        self._track_z = z[p:].astype(np.float32)
        self._track_unit = _unit_rows(self._track_z)

    def score(self, tracks: np.ndarray) -> np.ndarray:
        return self._track_z @ self._track_z[tracks].mean(0)

    def track_scores(self, track_id: str) -> np.ndarray:
        # Similar songs: cosine, so a well-connected track does not dominate every list.
        return self._track_unit @ self._track_unit[self._idx(track_id)]

    def playlist_scores(self, playlist_id: str) -> np.ndarray:
        try:
            return self._track_z @ self._playlist_z[self._playlist_pos[playlist_id]]
        except KeyError:
            raise UnknownPlaylistError(playlist_id) from None


@dataclasses.dataclass(frozen=True)
class BM25Config:
    """Okapi BM25 over playlist names; the usual defaults (Robertson & Zaragoza 2009; Lucene's)."""

    k1: float = 1.2
    b: float = 0.75


class NameBM25Scorer:
    """The text task's baseline: the tracks of training playlists whose names share words with the query (the words
    of recsys.words.tokens), by the best BM25 of their playlists' names, then Spotify popularity; every other track
    after them by popularity alone, so a short list is filled as a popularity baseline would fill it."""

    def __init__(self, catalog: Catalog, config: BM25Config | None = None) -> None:
        config = config or BM25Config()
        self.track_ids = catalog.track_ids
        docs = [tokens(str(name)) for name in catalog.playlist_names.tolist()]
        lengths = np.array([len(d) for d in docs], dtype=np.float64)  # [P]
        norm = config.k1 * (
            1.0 - config.b + config.b * lengths / max(float(lengths.mean()) if len(docs) else 0.0, 1e-12)
        )
        self._postings: dict[str, dict[int, float]] = {}  # word -> playlist_idx -> BM25 term weight without IDF
        for p, doc in enumerate(docs):
            for word in set(doc):
                tf = doc.count(word)
                self._postings.setdefault(word, {})[p] = tf * (config.k1 + 1.0) / (tf + norm[p])
        self._num_playlists = catalog.num_playlists
        self._edges = catalog.edges
        pop = np.nan_to_num(catalog.popularity, nan=0.0) / 100.0  # [T] in [0, 1]
        self._tiebreak = (1e-4 * pop).astype(np.float64)  # below any BM25 difference that matters

    def text_scores(self, text: str) -> np.ndarray:
        """BM25 of the best-matching playlist of each track (-1 for none), plus the popularity tie-break. [T]"""
        playlist = np.zeros(self._num_playlists, dtype=np.float64)  # [P]
        for word in dict.fromkeys(tokens(text)):
            postings = self._postings.get(word, {})
            df = len(postings)
            idf = math.log(1.0 + (self._num_playlists - df + 0.5) / (df + 0.5))
            for p, weight in postings.items():
                playlist[p] += idf * weight
        best = np.full(len(self.track_ids), -1.0)  # [T]
        matched = playlist[self._edges[0]] > 0
        np.maximum.at(best, self._edges[1][matched], playlist[self._edges[0][matched]])
        return (best + self._tiebreak).astype(np.float32)


def design_config(seed: int = 0) -> TrainConfig:
    """The original design, reproduced: two GCNConv layers (128 then 64) over the playlist-track graph, fixed
    random playlist features, min-max audio features, dot-product BCE with one random negative, Adam, 100 epochs
    on every edge (no validation hold-out, no early stopping, no dropout)."""
    return TrainConfig(
        model=ModelConfig(
            kind="design_gcn",
            learn_playlist_embeddings=False,
            feature_scaling="minmax",
            hidden_dim=128,
            embedding_dim=64,
            dropout=0.0,
        ),
        loss=LossConfig(kind="bce", num_negatives=1, hard_share=0.0, num_shared_negatives=0, weight_decay=0.0),
        target_edge_share=0.0,
        validation_share=0.0,
        # Pinned, not inherited: the product's tuned learning rate (0.02) makes this design collapse.
        learning_rate=0.01,
        batch_size=16384,
        epochs=100,
        patience=10**6,
        seed=seed,
        progress=False,
    )


def _rp3beta(catalog: Catalog, seed: int) -> Scorer:
    # recsys.baselines_cf builds on this module: imported when the factory runs, so the imports keep one direction.
    from recsys.baselines_cf import RP3betaScorer

    return RP3betaScorer(catalog)


def _ease(catalog: Catalog, seed: int) -> Scorer:
    from recsys.baselines_cf import EASEScorer

    return EASEScorer(catalog)


# The last model trained, by (catalogue, config): the uncapped variant re-ranks the default's embeddings, not a
# second training (which a wall-clock budget could stop at another epoch).
_LAST_TRAINED: list[tuple[Catalog, TrainConfig, Scorer]] = []


def _train(config: TrainConfig, uncapped: bool = False) -> Callable[[Catalog, int], Scorer]:
    def factory(catalog: Catalog, seed: int) -> Scorer:
        import recsys

        seeded = dataclasses.replace(config, seed=seed)
        if _LAST_TRAINED and _LAST_TRAINED[0][0] is catalog and _LAST_TRAINED[0][1] == seeded:
            snap = _LAST_TRAINED[0][2]
        else:
            snap = recsys.train_catalog(catalog, seeded)
            _LAST_TRAINED[:] = [(catalog, seeded, snap)]
        assert isinstance(snap, recsys.Snapshot)
        return snap.with_lists(max_per_artist=0, popularity=0.0) if uncapped else snap

    return factory


# Evaluation order: floor, heuristics, item-item neighbourhoods (kNN, RP3beta, EASE), ID-only GNN, the original
# design, the product model.
MODELS: dict[str, Callable[[Catalog, int], Scorer]] = {
    "random": lambda catalog, seed: RandomScorer(catalog, seed),
    "popularity": lambda catalog, seed: PopularityScorer(catalog),
    "audio_cosine": lambda catalog, seed: AudioCosineScorer(catalog),
    "artist_album": lambda catalog, seed: ArtistAlbumScorer(catalog),
    "item_knn": lambda catalog, seed: ItemKNNScorer(catalog),
    "rp3beta": _rp3beta,
    "ease": _ease,
    "lightgcn": lambda catalog, seed: LightGCNScorer(catalog, seed),
    "design_gcn": _train(design_config()),
    "default": _train(TrainConfig(progress=False)),
    # The default's embeddings without the list knobs (recsys.ranking.ListConfig): what they cost in accuracy.
    "default_uncapped": _train(TrainConfig(progress=False), uncapped=True),
}
# Text-only models: they rank a text query and nothing else (the harness skips the tasks they cannot score).
TEXT_MODELS: dict[str, Callable[[Catalog, int], TextScorer]] = {
    "bm25_names": lambda catalog, seed: NameBM25Scorer(catalog),
}
