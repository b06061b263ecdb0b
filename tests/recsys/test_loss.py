"""The shared-negative block of the softmax loss: tiled, its exponentials kept for the backward pass, optionally in
bfloat16."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from recsys.loss import SHARED_TILE_ROWS, _SharedLogSumExp


def _inputs() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(3)
    n = 2 * SHARED_TILE_ROWS + 37  # three tiles, the last one short
    p = F.normalize(torch.randn(n, 16, generator=gen), dim=-1) / 0.1  # cosine logits of at most 10, as trained
    s = F.normalize(torch.randn(50, 16, generator=gen), dim=-1)
    hit_rows = torch.tensor([0, SHARED_TILE_ROWS, SHARED_TILE_ROWS + 1, n - 1])  # marked entries in every tile
    hit_cols = torch.tensor([4, 0, 49, 7])
    return p, s, hit_rows, hit_cols


def _reference(p: torch.Tensor, s: torch.Tensor, hit_rows: torch.Tensor, hit_cols: torch.Tensor) -> torch.Tensor:
    block = p @ s.T
    block = block.index_put((hit_rows, hit_cols), torch.tensor(float("-inf")))
    return torch.logsumexp(block, dim=1)


# bfloat16 keeps 8 bits of mantissa: a logit near 10 is off by up to ~0.04, without bias (checked below).
@pytest.mark.parametrize(("dtype", "tolerance"), [(torch.float32, 1e-5), (torch.bfloat16, 5e-2)])
def test_the_tiled_shared_block_has_the_value_and_gradient_of_a_masked_logsumexp(
    dtype: torch.dtype, tolerance: float
) -> None:
    p, s, hit_rows, hit_cols = _inputs()
    weights = torch.linspace(0.5, 1.5, p.shape[0])  # a gradient that differs per row
    p1, s1 = p.clone().requires_grad_(), s.clone().requires_grad_()
    want = _reference(p1, s1, hit_rows, hit_cols)
    want_grads = torch.autograd.grad((want * weights).sum(), [p1, s1])
    p2, s2 = p.clone().requires_grad_(), s.clone().requires_grad_()
    got = _SharedLogSumExp.apply(p2, s2, hit_rows, hit_cols, dtype)
    got_grads = torch.autograd.grad((got * weights).sum(), [p2, s2])
    assert torch.allclose(got, want, atol=tolerance, rtol=0)
    # Rounding errors cancel out: no shift of the loss.
    assert abs(float((got - want).detach().mean())) <= tolerance / 10
    for g, w in zip(got_grads, want_grads, strict=True):
        assert (g - w).abs().max() <= tolerance * w.abs().max()
    # The marked entries are left out: unmarking one changes its row's value.
    assert not torch.allclose(_reference(p, s, hit_rows[1:], hit_cols[1:])[0], want[0].detach())
