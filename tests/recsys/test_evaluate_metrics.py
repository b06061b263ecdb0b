"""Ranking metrics against hand-computed values and against torch_geometric.metrics; the bootstrap interval."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch_geometric.metrics import LinkPredNDCG, LinkPredPrecision, LinkPredRecall

from recsys.evaluation import (
    bootstrap_mean_ci,
    bootstrap_ratio_ci,
    ndcg_at_k,
    precision_at_k,
    r_precision,
    recall_at_k,
    recall_curve,
)

# Query 0: relevant items at ranks 1 and 3, two relevant in all. Query 1: one hit at rank 4 of three relevant.
# Query 2: nothing relevant exists (left out of every mean).
HITS = np.array([[1, 0, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0]], dtype=bool)
NUM_RELEVANT = np.array([2, 3, 0])


def test_recall_by_hand() -> None:
    np.testing.assert_allclose(recall_at_k(HITS, NUM_RELEVANT, 2), [0.5, 0.0, np.nan])
    np.testing.assert_allclose(recall_at_k(HITS, NUM_RELEVANT, 4), [1.0, 1 / 3, np.nan])


def test_precision_by_hand() -> None:
    np.testing.assert_allclose(precision_at_k(HITS, NUM_RELEVANT, 2), [0.5, 0.0, np.nan])
    np.testing.assert_allclose(precision_at_k(HITS, NUM_RELEVANT, 4), [0.5, 0.25, np.nan])


def test_ndcg_by_hand() -> None:
    # Query 0 @3: DCG = 1/log2(2) + 1/log2(4) = 1.5; ideal = 1 + 1/log2(3). Query 1 @4: 1/log2(5) over 3 ideal.
    ideal_0 = 1 + 1 / math.log2(3)
    ideal_1 = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    expected = [1.5 / ideal_0, (1 / math.log2(5)) / ideal_1, np.nan]
    np.testing.assert_allclose(ndcg_at_k(HITS, NUM_RELEVANT, 4), expected)
    # A perfect ranking scores 1.
    assert ndcg_at_k(np.array([[1, 1, 0]], dtype=bool), np.array([2]), 3)[0] == pytest.approx(1.0)


def test_r_precision_by_hand() -> None:
    # R = 2: one of the top 2 is relevant. R = 3: none of the top 3 is.
    np.testing.assert_allclose(r_precision(HITS, NUM_RELEVANT), [0.5, 0.0, np.nan])
    with pytest.raises(ValueError, match="at least 5"):
        r_precision(HITS, np.array([5, 1, 1]))


def test_k_outside_the_ranked_list_is_an_error() -> None:
    with pytest.raises(ValueError, match="k=5"):
        recall_at_k(HITS, NUM_RELEVANT, 5)


def test_recall_curve_is_cumulative_recall() -> None:
    curve = recall_curve(HITS, NUM_RELEVANT)
    np.testing.assert_allclose(curve, [0.25, 0.25, 0.5, (1 + 1 / 3) / 2])


@pytest.mark.parametrize("k", [1, 5, 20])
def test_metrics_match_torch_geometric(k: int) -> None:
    rng = np.random.default_rng(k)
    num_queries, num_items, depth = 30, 60, 25
    ranked = np.stack([rng.permutation(num_items)[:depth] for _ in range(num_queries)])  # [n, depth]
    relevant = [rng.choice(num_items, size=int(rng.integers(0, 8)), replace=False) for _ in range(num_queries)]
    hits = np.stack([np.isin(ranked[i], relevant[i]) for i in range(num_queries)])
    counts = np.array([len(r) for r in relevant])
    label_index = torch.tensor(
        [[i for i, r in enumerate(relevant) for _ in r], [int(t) for r in relevant for t in r]], dtype=torch.long
    )
    pred = torch.from_numpy(ranked[:, :k])
    for ours, theirs in (
        (recall_at_k, LinkPredRecall(k)),
        (precision_at_k, LinkPredPrecision(k)),
        (ndcg_at_k, LinkPredNDCG(k)),
    ):
        theirs.update(pred, label_index)
        assert np.nanmean(ours(hits, counts, k)) == pytest.approx(float(theirs.compute()), abs=1e-6), theirs


def test_bootstrap_interval_brackets_the_mean_and_shrinks_with_more_queries() -> None:
    rng = np.random.default_rng(0)
    small = [rng.random(20) for _ in range(3)]
    large = [rng.random(2000) for _ in range(3)]
    mean, low, high = bootstrap_mean_ci(small)
    assert low < mean < high
    assert mean == pytest.approx(np.mean([v.mean() for v in small]))
    _, low_l, high_l = bootstrap_mean_ci(large)
    assert high_l - low_l < (high - low) / 3


def test_bootstrap_drops_nan_and_handles_constants() -> None:
    assert bootstrap_mean_ci([np.array([0.5, np.nan, 0.5])]) == pytest.approx((0.5, 0.5, 0.5))
    assert all(math.isnan(x) for x in bootstrap_mean_ci([np.array([np.nan])]))


def test_paired_ratio_interval_is_narrow_when_both_models_succeed_on_the_same_queries() -> None:
    # Queries differ a lot in how hard they are; model a scores 1.3x model b on every one, plus a little noise.
    rng = np.random.default_rng(0)
    b = [rng.random(40) ** 3 for _ in range(3)]
    a = [v * 1.3 + rng.normal(0, 0.01, len(v)) for v in b]
    ratio, low, high = bootstrap_ratio_ci(a, b)
    assert ratio == pytest.approx(np.mean([v.mean() for v in a]) / np.mean([v.mean() for v in b]))
    assert 1.25 < low < ratio < high < 1.35
    # Each model's own interval is wide: they overlap, though a beats b on every query.
    assert bootstrap_mean_ci(a)[1] < bootstrap_mean_ci(b)[2]


def test_paired_ratio_interval_spans_one_when_the_models_differ_by_chance() -> None:
    rng = np.random.default_rng(1)
    a = [rng.random(30) for _ in range(3)]
    b = [rng.permutation(v) for v in a]  # the same values on other queries: no real difference
    ratio, low, high = bootstrap_ratio_ci(a, b)
    assert ratio == pytest.approx(1.0)
    assert low < 1.0 < high


def test_paired_ratio_interval_drops_queries_either_model_lacks() -> None:
    a = [np.array([0.2, np.nan, 0.4, 0.9])]
    b = [np.array([0.1, 0.5, 0.2, np.nan])]
    assert bootstrap_ratio_ci(a, b) == pytest.approx((2.0, 2.0, 2.0))  # queries 0 and 2 only
    assert all(math.isnan(x) for x in bootstrap_ratio_ci([np.array([np.nan])], [np.array([0.3])]))
    assert bootstrap_ratio_ci([np.array([0.1])], [np.array([0.0])])[0] == math.inf
