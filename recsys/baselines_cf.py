"""Item-item collaborative filtering baselines a recommender-systems reviewer expects: RP3beta and EASE.

Both learn from training playlist co-membership only, on the warm tracks (those with a training playlist); a cold
track gets no score (0, as either model fitted on the whole catalogue would give it) beyond item_knn's popularity
tie-break. Their defaults were
chosen by bench/tune_baselines.py on the inner validation split of seed 0 (never the test split).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from recsys.baselines import CatalogScorer
from recsys.data import Catalog


def warm_membership(catalog: Catalog) -> tuple[np.ndarray, np.ndarray]:
    """(warm track_idx [W], playlist x warm-track membership [P, W] float64): the columns of tracks in a playlist."""
    warm = np.flatnonzero(catalog.track_degrees() > 0)
    col = np.full(catalog.num_tracks, -1, dtype=np.int64)
    col[warm] = np.arange(len(warm))
    x = np.zeros((catalog.num_playlists, len(warm)), dtype=np.float64)  # [P, W]
    x[catalog.edges[0], col[catalog.edges[1]]] = 1.0
    return warm, x


class _WarmScorer(CatalogScorer):
    """Maps the catalogue's track rows to the warm columns the item-item models are fitted on."""

    def __init__(self, catalog: Catalog) -> None:
        super().__init__(catalog)
        self.warm, self._x = warm_membership(catalog)
        self._col = np.full(catalog.num_tracks, -1, dtype=np.int64)  # [T] warm column, -1 for a cold track
        self._col[self.warm] = np.arange(len(self.warm))
        self._tiebreak = np.nan_to_num(catalog.popularity, nan=0.0) * 1e-6  # as ItemKNNScorer's

    def warm_columns(self, tracks: np.ndarray) -> np.ndarray:
        """The warm columns of the given track rows; cold rows dropped (they have no item-item weights)."""
        cols = self._col[tracks]
        return cols[cols >= 0]

    def spread(self, warm_scores: np.ndarray) -> np.ndarray:
        """Scores over the warm columns as a catalogue vector, cold tracks at 0, plus item_knn's popularity
        tie-break (most candidates tie: most tracks are in one playlist, whose members then score alike). [T]"""
        out = np.zeros(self.catalog.num_tracks, dtype=np.float64)
        out[self.warm] = warm_scores
        return (out + self._tiebreak).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class RP3betaConfig:
    """RP3beta (Paudel et al. 2017): the 3-step random walk track -> playlist -> track, each transition probability
    raised to alpha, divided by the reached track's training popularity to the power beta, top neighbours kept.

    Tuned by bench/tune_baselines.py on seed 0's inner validation split, continuation Recall@20 (all targets;
    cold targets are out of reach, so this ranks the warm hits): alpha {0.5, 0.75, 1.0, 1.5} x beta {0, 0.25, 0.5,
    0.75, 1.0} x neighbours {0 (all), 25, 50, 100}. item_knn there: 0.0208.
    """

    # At beta 0.25, every neighbour: alpha 0.5 -> 0.0231, 0.75 -> 0.0241, 1.0 -> 0.0234, 1.5 -> 0.0226.
    alpha: float = 0.75
    # At alpha 0.75, every neighbour: beta 0 -> 0.0189, 0.25 -> 0.0241, 0.5 -> 0.0231, 0.75 -> 0.0215, 1.0 -> 0.0212.
    beta: float = 0.25
    # At alpha 0.75, beta 0.25: 0 (every neighbour) -> 0.0241, 25 -> 0.0160, 50 -> 0.0226, 100 -> 0.0231. Pruning
    # hurts here: most tracks are in one playlist, so a track's neighbours are all its playlist-mates, tied.
    neighbours: int = 0
    # Similarity rows computed at once: [block_rows, W] float32 is ~150 MB at W ~ 19k warm tracks.
    block_rows: int = 2048


class RP3betaScorer(_WarmScorer):
    """W[i, j] = sum_u P(i -> u)^alpha P(u -> j)^alpha / degree(j)^beta over training playlists u, the top
    `neighbours` j of each row kept (the track itself left out; 0 keeps every j, computed per query instead of
    stored); a query's scores are the sum of its tracks' rows."""

    def __init__(self, catalog: Catalog, config: RP3betaConfig | None = None) -> None:
        super().__init__(catalog)
        self.config = config = config or RP3betaConfig()
        x = self._x
        num_warm = x.shape[1]
        track_degree = x.sum(0)  # [W] >= 1: every column is warm
        playlist_len = np.maximum(x.sum(1, keepdims=True), 1.0)  # [P, 1]
        p_ui = ((x / playlist_len) ** config.alpha).astype(np.float32)  # [P, W] playlist -> track step
        p_iu = ((x / track_degree).T ** config.alpha).astype(np.float32)  # [W, P] track -> playlist step
        penalty = (track_degree ** (-config.beta)).astype(np.float32)  # [W] popularity discount of the reached track
        self._walk: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        if config.neighbours <= 0:  # every neighbour: W x W would be ~1.5 GB, one query's row is cheap
            self._walk = (p_iu, p_ui, penalty)
            return
        k = min(config.neighbours, num_warm - 1)
        self._nbr = np.zeros((num_warm, k), dtype=np.int64)  # [W, k] warm column of each kept neighbour
        self._weight = np.zeros((num_warm, k), dtype=np.float32)  # [W, k]
        for lo in range(0, num_warm, config.block_rows):
            hi = min(lo + config.block_rows, num_warm)
            sim = (p_iu[lo:hi] @ p_ui) * penalty  # [b, W]
            sim[np.arange(hi - lo), np.arange(lo, hi)] = -np.inf  # a track is not its own neighbour
            # torch's top-k is ~10x faster than numpy's argpartition on these rows.
            weight, top = torch.topk(torch.from_numpy(sim), k, dim=1, sorted=False)
            self._nbr[lo:hi] = top.numpy()
            self._weight[lo:hi] = weight.numpy()

    def score(self, tracks: np.ndarray) -> np.ndarray:
        cols = self.warm_columns(tracks)
        if self._walk is not None:
            p_iu, p_ui, penalty = self._walk
            rows = (p_iu[cols].sum(0) @ p_ui) * penalty  # [W]
            rows[cols] -= (p_iu[cols] @ p_ui[:, cols]).diagonal() * penalty[cols]  # a track is not its own neighbour
            return self.spread(rows)
        warm_scores = np.bincount(
            self._nbr[cols].ravel(), weights=self._weight[cols].ravel(), minlength=len(self.warm)
        )  # [W]
        return self.spread(warm_scores)


@dataclasses.dataclass(frozen=True)
class EASEConfig:
    """EASE (Steck 2019): item-item ridge regression with a zero diagonal, in closed form.

    Tuned by bench/tune_baselines.py on seed 0's inner validation split, continuation Recall@20 over the grid
    l2 {1, 3, 10, 30, 100, 300, 1000, 3000}: 0.0221, 0.0228, 0.0216, 0.0225, 0.0225, 0.0218, 0.0202, 0.0177
    (standard error ~0.003: everything up to 300 is a tie). item_knn there: 0.0208.
    """

    # The ridge penalty lambda; see the grid above.
    l2: float = 3.0


class EASEScorer(_WarmScorer):
    """B = I - P diag(1 / diag(P)), P = (X^T X + lambda I)^-1 over the warm tracks; a query's scores are x B.

    The training data has far fewer playlists than warm tracks (~420 against ~19k), so P comes from the Woodbury
    identity, P = (I - X^T (lambda I + X X^T)^-1 X) / lambda: one [P, P] inverse instead of a [W, W] one (~3 GB
    and minutes), and B is never formed: x B = x - (x P) / diag(P).
    """

    def __init__(self, catalog: Catalog, config: EASEConfig | None = None) -> None:
        super().__init__(catalog)
        self.config = config = config or EASEConfig()
        x, lam = self._x, config.l2
        num_playlists = x.shape[0]
        inner = np.linalg.inv(lam * np.eye(num_playlists) + x @ x.T)  # [P, P]
        self._inner_x = inner @ x  # [P, W]
        self._diag = (1.0 - np.einsum("pw,pw->w", x, self._inner_x)) / lam  # [W] diag(P) > 0

    def score(self, tracks: np.ndarray) -> np.ndarray:
        cols = self.warm_columns(tracks)
        query = np.zeros(len(self.warm))  # [W] the query's warm tracks
        query[cols] = 1.0
        times_p = (query - self._x[:, cols].sum(1) @ self._inner_x) / self.config.l2  # [W] x P
        return self.spread(query - times_p / self._diag)
