"""What training validates on: seed continuation through the served seed rule, and the early-stopping score."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch

import recsys
from recsys.train_progress import seed_order_scores, seed_recall_at_k, stopping_score, validation_names


def _planted() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Tracks 0-9 point one way, 10-19 another, 20-29 a third; playlist 0 knows 0-5 and holds 6-9 out, playlist 1
    knows 10-15 and holds out 16, 17 and track 25 (of the third group: a seed continuation cannot find it)."""
    gen = torch.Generator().manual_seed(0)
    centres = torch.eye(8)[:3] * 5
    track_z = torch.cat([c + 0.3 * torch.randn(10, 8, generator=gen) for c in centres])
    known = torch.tensor([[0] * 6 + [1] * 6, [*range(6), *range(10, 16)]])
    held = torch.tensor([[0, 0, 0, 0, 1, 1, 1], [6, 7, 8, 9, 16, 17, 25]])
    return track_z, known, held


def test_seed_recall_finds_the_held_out_tracks_near_the_seeds_and_misses_the_others() -> None:
    track_z, known, held = _planted()
    # Top 4 of the 24 unknown tracks: playlist 0 finds 6-9 (recall 1), playlist 1 finds 16 and 17, not 25 (2/3).
    recall = seed_recall_at_k(track_z, known, held, k=4, num_seeds=5, max_playlists=10, seed=0)
    assert math.isclose(recall, (1 + 2 / 3) / 2)
    # Shuffled embeddings: the seeds no longer point at their playlist's held-out tracks.
    shuffled = track_z[torch.randperm(30, generator=torch.Generator().manual_seed(1))]
    assert seed_recall_at_k(shuffled, known, held, k=4, num_seeds=5, max_playlists=10, seed=0) < recall
    # Nothing held out: nothing to measure.
    assert math.isnan(seed_recall_at_k(track_z, known, held[:, :0], k=4, num_seeds=5, max_playlists=10, seed=0))


def test_the_product_score_is_the_mean_of_the_cold_and_seed_recalls() -> None:
    config = recsys.TrainConfig()
    every, cold, seeded = validation_names(config)
    values = {every: 0.5, cold: 0.2, seeded: 0.1}
    assert stopping_score(values, dataclasses.replace(config, early_stopping="held_out_pairs")) == 0.5
    product = dataclasses.replace(config, early_stopping="product")
    assert math.isclose(stopping_score(values, product), 0.15)
    assert stopping_score(values | {cold: float("nan")}, product) == 0.1  # no cold track held out: seeds alone


def test_training_keeps_the_epoch_with_the_best_product_score_and_records_its_validation(
    demo_catalog: recsys.Catalog,
) -> None:
    from recsys.train import fit
    from tests.conftest import FAST_CONFIG

    config = dataclasses.replace(FAST_CONFIG, epochs=8, eval_every=2, early_stopping="product")
    metrics = fit(demo_catalog, config).metrics
    every, _, seeded = validation_names(config)
    assert metrics[seeded] > 0.1 and metrics[every] > 0.1  # the planted playlists are learnable from seeds
    assert math.isclose(metrics["val_score"], stopping_score(metrics, config))
    assert metrics["best_epoch"] in (2, 4, 6, 8)


def test_batched_seed_scores_order_the_catalogue_as_the_served_rule_does() -> None:
    from recsys.ranking import seed_scores

    gen = torch.Generator().manual_seed(2)
    track_z = torch.nn.functional.normalize(torch.randn(300, 16, generator=gen), dim=-1)
    seeds = torch.tensor([[3, 50, 7, 0, 0], [9, 10, 11, 12, 13]])
    weights = torch.tensor([[1.0, 1, 1, 0, 0], [1, 1, 1, 1, 1]])  # the first row has 3 seeds and 2 paddings
    batched = seed_order_scores(track_z, seeds, weights, temperature=0.2)
    for row, count in enumerate((3, 5)):
        served = seed_scores(track_z.numpy(), seeds[row, :count].numpy(), temperature=0.2)
        assert np.argsort(-served)[:50].tolist() == torch.argsort(batched[row], descending=True)[:50].tolist()
