"""Ranking metrics per query (so they can be bootstrapped) and the bootstrap confidence interval of their mean, and
what a served list is like beside its accuracy (distinct artists, catalogue coverage, popularity).

Every ranking metric takes `hits` [num_queries, K] (bool: the item ranked at position j is relevant) and
`num_relevant` [num_queries]; a query without relevant items gets NaN and is left out of means. The definitions match
torch_geometric.metrics.LinkPredRecall / LinkPredPrecision / LinkPredNDCG (tests check it). The list measures take
the served lists themselves, each an array of catalogue rows, best first.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _check(hits: np.ndarray, num_relevant: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    if hits.ndim != 2 or len(num_relevant) != hits.shape[0]:
        raise ValueError(f"expected hits [n, K] and num_relevant [n]; got {hits.shape} and {num_relevant.shape}")
    if not 1 <= k <= hits.shape[1]:
        raise ValueError(f"k={k} must be between 1 and the ranked list length {hits.shape[1]}")
    return hits.astype(np.float64), num_relevant.astype(np.float64)


def _nan_where_empty(values: np.ndarray, num_relevant: np.ndarray) -> np.ndarray:
    return np.where(num_relevant > 0, values, np.nan)


def recall_at_k(hits: np.ndarray, num_relevant: np.ndarray, k: int) -> np.ndarray:
    """Share of a query's relevant items that appear in its top k. [num_queries]"""
    h, n = _check(hits, num_relevant, k)
    return _nan_where_empty(h[:, :k].sum(1) / np.maximum(n, 1), n)


def precision_at_k(hits: np.ndarray, num_relevant: np.ndarray, k: int) -> np.ndarray:
    """Share of the top k that is relevant. [num_queries]"""
    h, n = _check(hits, num_relevant, k)
    return _nan_where_empty(h[:, :k].sum(1) / k, n)


def ndcg_at_k(hits: np.ndarray, num_relevant: np.ndarray, k: int) -> np.ndarray:
    """Binary-relevance NDCG@k: DCG of the top k over the DCG of a perfect top k. [num_queries]"""
    h, n = _check(hits, num_relevant, k)
    discount = 1.0 / np.log2(np.arange(2, k + 2))  # [k]
    dcg = (h[:, :k] * discount).sum(1)
    ideal = np.concatenate([[0.0], np.cumsum(discount)])[np.minimum(n, k).astype(np.int64)]
    return _nan_where_empty(dcg / np.maximum(ideal, 1e-12), n)


def r_precision(hits: np.ndarray, num_relevant: np.ndarray) -> np.ndarray:
    """Precision at R, R = the query's number of relevant items (needs K >= max R). [num_queries]"""
    h, n = hits.astype(np.float64), num_relevant.astype(np.int64)
    if len(n) and n.max() > h.shape[1]:
        raise ValueError(f"R-precision needs ranked lists of at least {n.max()} items; got {h.shape[1]}")
    within = np.arange(h.shape[1])[None, :] < n[:, None]  # [n, K]
    return _nan_where_empty((h * within).sum(1) / np.maximum(n, 1), n)


def recall_curve(hits: np.ndarray, num_relevant: np.ndarray) -> np.ndarray:
    """Mean Recall@k for k = 1..K over queries with relevant items. [K]"""
    keep = num_relevant > 0
    if not keep.any():
        return np.full(hits.shape[1], np.nan)
    cum = np.cumsum(hits[keep].astype(np.float64), axis=1)
    return (cum / num_relevant[keep, None]).mean(0)


def distinct_per_list(lists: Sequence[np.ndarray], labels: np.ndarray, k: int) -> np.ndarray:
    """How many distinct labels (an artist per row, say) the first k rows of each list hold; 0 for an empty list.
    [num_lists]"""
    return np.array([len(set(labels[rows[:k]].tolist())) for rows in lists], dtype=np.float64)


def coverage(lists: Sequence[np.ndarray], num_items: int) -> float:
    """Share of the num_items rows that appear in at least one list: how much of the catalogue is ever shown."""
    shown = np.zeros(num_items, dtype=bool)
    for rows in lists:
        shown[rows] = True
    return float(shown.mean()) if num_items else float("nan")


def mean_per_list(lists: Sequence[np.ndarray], values: np.ndarray) -> np.ndarray:
    """Mean of a per-row value (a track's popularity, say) over each list's rows, NaN values skipped; NaN for a list
    with no known value. [num_lists]"""
    out = np.full(len(lists), np.nan)
    for i, rows in enumerate(lists):
        known = values[rows][~np.isnan(values[rows])]
        if len(known):
            out[i] = known.mean()
    return out


def bootstrap_mean_ci(
    values_per_seed: Sequence[np.ndarray], num_resamples: int = 1000, level: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """Mean over seeds of the per-seed mean over queries, with a percentile bootstrap interval.

    Queries are resampled with replacement within each seed (each split keeps its own query set), so the
    interval covers the query sampling of the seed-averaged number. NaN values (queries without relevant
    items in a subset) are dropped. Returns (mean, low, high); NaNs when no seed has a value.
    """
    clean = [v[~np.isnan(v)] for v in values_per_seed]
    clean = [v for v in clean if len(v)]
    if not clean:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    mean = float(np.mean([v.mean() for v in clean]))
    draws = np.zeros(num_resamples)
    for v in clean:
        idx = rng.integers(0, len(v), size=(num_resamples, len(v)))
        draws += v[idx].mean(1)
    draws /= len(clean)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(draws, [alpha, 1.0 - alpha])
    return mean, float(low), float(high)


def bootstrap_ratio_ci(
    a_per_seed: Sequence[np.ndarray],
    b_per_seed: Sequence[np.ndarray],
    num_resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """How many times model b's mean model a's is, over the same queries (each seed's values in the same order), with
    a paired percentile bootstrap interval: a query's two values are resampled together within each seed.

    The lift's own interval: two models that succeed and fail on the same queries differ far less from resample to
    resample than each one's mean does, so it is narrower than reading the two bootstrap_mean_ci intervals side by
    side. A query either model has no value for (NaN) is dropped from both. Means as bootstrap_mean_ci's (of the
    per-seed means). Returns (ratio, low, high); NaNs when no seed has a query with both values, inf for a ratio
    over a mean of 0."""
    pairs = [
        (a[keep], b[keep])
        for a, b in zip(a_per_seed, b_per_seed, strict=True)
        if (keep := ~(np.isnan(a) | np.isnan(b))).any()
    ]
    if not pairs:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    sums = np.zeros((2, num_resamples))
    for a, b in pairs:
        idx = rng.integers(0, len(a), size=(num_resamples, len(a)))
        sums += np.stack([a[idx].mean(1), b[idx].mean(1)])
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = float(np.mean([a.mean() for a, _ in pairs]) / np.mean([b.mean() for _, b in pairs]))
        draws = sums[0] / sums[1]
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(draws, [alpha, 1.0 - alpha], method="nearest")
    return ratio, float(low), float(high)
