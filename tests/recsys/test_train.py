"""Training: learns the planted structure, is reproducible, and the design baseline still trains."""

from __future__ import annotations

import numpy as np
import pytest

import recsys
from recsys.data import Catalog
from tests.conftest import FAST_CONFIG


def _subgenre_mates(catalog: Catalog) -> tuple[int, np.ndarray, np.ndarray]:
    """A warm track, tracks of its subgenre, and tracks of other genres (the planted answer)."""
    degrees = catalog.track_degrees()
    q = int(np.flatnonzero(degrees >= 2)[0])
    same = np.flatnonzero((catalog.subgenres == catalog.subgenres[q]) & (np.arange(catalog.num_tracks) != q))
    other = np.flatnonzero((catalog.genres != catalog.genres[q]) & (catalog.genres != ""))
    return q, same, other


def test_planted_cluster_mates_rank_above_unrelated_tracks(
    demo_catalog: Catalog, demo_snapshot: recsys.Snapshot
) -> None:
    q, same, other = _subgenre_mates(demo_catalog)
    scores = demo_snapshot.track_scores(str(demo_catalog.track_ids[q]))
    # Most same-subgenre tracks outrank the typical unrelated track, by a wide margin.
    assert np.median(scores[same]) > np.percentile(scores[other], 90)
    top = {t.track_id for t in demo_snapshot.similar_tracks(str(demo_catalog.track_ids[q]), k=10)}
    mates = set(demo_catalog.track_ids[same].tolist())
    assert len(top & mates) >= 7


def test_playlist_scores_favour_its_subgenre(demo_catalog: Catalog, demo_snapshot: recsys.Snapshot) -> None:
    hits = 0
    for p in range(0, demo_catalog.num_playlists, 12):
        members = demo_catalog.edges[1][demo_catalog.edges[0] == p]
        sub = max(set(demo_catalog.subgenres[members].tolist()), key=list(demo_catalog.subgenres[members]).count)
        recs = demo_snapshot.recommend_for_playlist(str(demo_catalog.playlist_ids[p]), k=10)
        idx = demo_catalog.track_index()
        hits += sum(demo_catalog.subgenres[idx[r.track_id]] == sub for r in recs)
    assert hits >= 0.7 * 10 * len(range(0, demo_catalog.num_playlists, 12))


def test_training_is_reproducible(demo_catalog: Catalog) -> None:
    config = recsys.TrainConfig(epochs=4, eval_every=2, progress=False)
    a = recsys.train_catalog(demo_catalog, config)
    b = recsys.train_catalog(demo_catalog, config)
    assert np.allclose(a.track_z, b.track_z, atol=1e-5)  # parallel scatter sums may differ in the last bit
    c = recsys.train_catalog(demo_catalog, recsys.TrainConfig(epochs=4, eval_every=2, progress=False, seed=7))
    assert not np.allclose(a.track_z, c.track_z)


def test_metrics_and_info_are_recorded(demo_snapshot: recsys.Snapshot, demo_catalog: Catalog) -> None:
    info = demo_snapshot.info
    assert info.data_fingerprint == demo_catalog.fingerprint
    assert info.num_tracks == demo_catalog.num_tracks
    assert 0.2 < info.metrics["val_recall@20"] <= 1.0
    assert info.config["epochs"] == FAST_CONFIG.epochs
    assert info.model_kind == "hybrid"


def test_design_gcn_baseline_trains(demo_catalog: Catalog) -> None:
    config = recsys.TrainConfig(
        model=recsys.ModelConfig(kind="design_gcn", learn_playlist_embeddings=False, feature_scaling="minmax"),
        loss=recsys.LossConfig(kind="bce", num_negatives=1, hard_share=0.0),
        target_edge_share=0.0,
        epochs=6,
        eval_every=2,
        progress=False,
    )
    snap = recsys.train_catalog(demo_catalog, config)
    assert snap.info.model_kind == "design_gcn"
    assert snap.track_z.shape == (demo_catalog.num_tracks, 64)
    assert np.isfinite(snap.track_z).all()


def test_loss_in_chunks_has_the_gradient_of_the_whole_batch() -> None:
    import torch

    from recsys.config import LossConfig
    from recsys.loss import chunk_loss, ranking_loss

    gen = torch.Generator().manual_seed(0)
    playlists, tracks = torch.randn(40, 8, generator=gen), torch.randn(300, 8, generator=gen)
    playlists, tracks = torch.nn.functional.normalize(playlists, dim=-1), torch.nn.functional.normalize(tracks, dim=-1)
    pos = torch.stack([torch.randint(0, 40, (600,), generator=gen), torch.randint(0, 300, (600,), generator=gen)])
    neg = torch.randint(0, 300, (600, 4), generator=gen)
    neg[:10, 0] = pos[1, :10]  # some negatives are the positive itself
    shared = torch.randint(0, 300, (32,), generator=gen)
    shared[0] = pos[1, 0]
    config = LossConfig(bf16_shared_products=False)  # exact arithmetic; tests/recsys/test_loss.py checks bfloat16
    p, t = playlists.clone().requires_grad_(), tracks.clone().requires_grad_()
    whole = ranking_loss(p, t, pos, neg, config, shared)
    expected = torch.autograd.grad(whole, [p, t])

    grads = [torch.zeros_like(playlists), torch.zeros_like(tracks)]
    total = 0.0
    for lo in range(0, 600, 250):  # chunks of 250, 250 and 100 positives
        chunk = slice(lo, lo + 250)
        n = len(range(600)[chunk])
        total += chunk_loss([playlists, tracks], grads, pos[:, chunk], neg[chunk], shared, config, n / 600)
    assert abs(total - whole.detach().item()) < 1e-5
    for got, want in zip(grads, expected, strict=True):
        assert torch.allclose(got, want, atol=1e-6)


def test_large_catalogue_epochs_make_few_steps_small_ones_one_per_batch() -> None:
    from recsys.train import _step_batches

    config = recsys.TrainConfig(batch_size=1000, max_steps_per_epoch=8)
    assert _step_batches(900, config) == 1  # the real data: one step per epoch
    assert _step_batches(3500, config) == 4
    assert _step_batches(4_500_000, config) == 8  # 10M pairs: 8 steps of ~560k targets, in chunks of 1000


def test_a_negative_from_the_positives_own_playlist_is_not_a_negative() -> None:
    import torch

    from recsys.config import LossConfig
    from recsys.loss import PlaylistMembers, ranking_loss

    # Playlist 0 holds tracks 1, 2, 5; playlist 1 holds 2 and 3.
    members = PlaylistMembers(torch.tensor([[0, 0, 1, 0, 1], [1, 2, 2, 5, 3]]), num_tracks=6)
    neg = torch.tensor([[2, 4, 5], [2, 5, 0]])
    skip = members.of(torch.tensor([0, 1]), neg)
    assert skip.tolist() == [[True, False, True], [True, False, False]]
    empty = PlaylistMembers(torch.zeros((2, 0), dtype=torch.long), num_tracks=6)
    assert not empty.of(torch.tensor([0, 1]), neg).any()

    gen = torch.Generator().manual_seed(1)
    p = torch.nn.functional.normalize(torch.randn(2, 4, generator=gen), dim=-1)
    t = torch.nn.functional.normalize(torch.randn(6, 4, generator=gen), dim=-1)
    pos = torch.tensor([[0, 1], [1, 3]])
    config = LossConfig()
    # Skipping a negative is the same as never having drawn it: here, redrawing it as the positive itself.
    redrawn = torch.where(skip, pos[1].unsqueeze(1), neg)
    assert torch.allclose(ranking_loss(p, t, pos, neg, config, skip=skip), ranking_loss(p, t, pos, redrawn, config))
    assert not torch.allclose(ranking_loss(p, t, pos, neg, config, skip=skip), ranking_loss(p, t, pos, neg, config))


def _one_step_gradients(catalog: Catalog, monkeypatch: pytest.MonkeyPatch, lean_above: int) -> dict[str, object]:
    import importlib

    from recsys.distributed import Ranks
    from recsys.listeners import no_listeners

    train = importlib.import_module("recsys.train")  # the module: recsys.train is also the train() function
    monkeypatch.setattr(train, "LEAN_NORMALISE_NODES", lean_above)
    run = train._Run(catalog, FAST_CONFIG, Ranks.current(), no_listeners())
    monkeypatch.setattr(run.opt, "step", lambda: None)  # keep the step's gradient, not its update
    loss, _ = run.epoch()
    return {"loss": loss} | {name: p.grad.clone() for name, p in run.model.named_parameters() if p.grad is not None}


def test_normalising_in_place_gives_autograds_gradient(demo_catalog: Catalog, monkeypatch: pytest.MonkeyPatch) -> None:
    """Above LEAN_NORMALISE_NODES a step normalises in place and converts the loss's gradient by hand; the gradient
    reaching every parameter must be the one autograd's F.normalize gives."""
    import torch

    standard = _one_step_gradients(demo_catalog, monkeypatch, lean_above=1 << 40)
    lean = _one_step_gradients(demo_catalog, monkeypatch, lean_above=0)
    assert lean.keys() == standard.keys() and {"playlist_emb.weight", "track_encoder.0.weight"} <= set(lean)
    assert lean["loss"] == pytest.approx(standard["loss"], rel=1e-6)
    for name, grad in standard.items():
        if name != "loss":
            # Rounding differs (a different order of operations): compare at the scale of each gradient.
            scale = float(grad.abs().max())
            torch.testing.assert_close(lean[name], grad, rtol=1e-3, atol=1e-4 * scale)
