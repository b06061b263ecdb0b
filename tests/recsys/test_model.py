"""The hybrid model's forward pass: chunked, checkpointed track encoding changes memory, not the result."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from recsys import model as model_module
from recsys.config import ModelConfig
from recsys.data import Catalog
from recsys.graph import build_inputs, normalised_csr
from recsys.model import HybridGNN


def _forward_and_grads(
    catalog: Catalog, chunk_rows: int, monkeypatch: pytest.MonkeyPatch, dropout: float
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    monkeypatch.setattr(model_module, "ENCODER_CHUNK_ROWS", chunk_rows)
    inputs = build_inputs(catalog)
    torch.manual_seed(0)
    model = HybridGNN(inputs, ModelConfig(dropout=dropout))
    adj = normalised_csr(torch.from_numpy(catalog.edges.copy()), inputs, attributes=True)
    hide = torch.arange(inputs.num_tracks) % 3 == 0
    torch.manual_seed(1)
    playlist_z, track_z = model(adj, None, hide)
    (playlist_z.square().sum() + track_z.pow(3).sum()).backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    return track_z.detach(), grads


def test_chunked_encoder_gives_the_whole_catalogues_embeddings_and_gradients(
    demo_catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole, whole_grads = _forward_and_grads(demo_catalog, 1 << 20, monkeypatch, dropout=0.0)
    chunked, chunked_grads = _forward_and_grads(demo_catalog, 97, monkeypatch, dropout=0.0)
    assert demo_catalog.num_tracks > 3 * 97  # several chunks, the last one partial
    torch.testing.assert_close(chunked, whole)
    assert whole_grads.keys() == chunked_grads.keys() and "track_encoder.0.weight" in whole_grads
    for name, grad in whole_grads.items():
        torch.testing.assert_close(chunked_grads[name], grad, rtol=1e-4, atol=1e-5)


def test_checkpointed_chunks_recompute_the_same_dropout_masks(
    demo_catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With dropout, the backward pass must recompute each chunk with the mask its forward pass drew: the gradient
    then equals that of the same chunks run without checkpointing, from the same random stream."""
    checkpointed, checkpointed_grads = _forward_and_grads(demo_catalog, 97, monkeypatch, dropout=0.5)
    monkeypatch.setattr(model_module, "checkpoint", lambda f, *args, use_reentrant: f(*args))
    plain, plain_grads = _forward_and_grads(demo_catalog, 97, monkeypatch, dropout=0.5)
    torch.testing.assert_close(checkpointed, plain)
    for name, grad in plain_grads.items():
        torch.testing.assert_close(checkpointed_grads[name], grad, rtol=1e-4, atol=1e-5)
    undropped, _ = _forward_and_grads(demo_catalog, 97, monkeypatch, dropout=0.0)
    assert not torch.allclose(undropped, plain)  # dropout acted: masks drawn again at random would have differed


class _SymmetricPropagation(torch.autograd.Function):
    """adj @ x for a symmetric adjacency, differentiated layer by layer as the model once was: the reference."""

    @staticmethod
    def forward(ctx: Any, adj: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        ctx.adj = adj
        return adj @ x

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[None, torch.Tensor]:
        return None, ctx.adj @ grad


def test_the_one_step_layer_stack_equals_autograds_layer_by_layer_sums_exactly(demo_catalog: Catalog) -> None:
    """_LightGCNStack (forward in place, backward by Horner's rule) against the layer loop autograd differentiates:
    the same floating-point sums, so the same bits."""
    inputs = build_inputs(demo_catalog)
    adj = normalised_csr(torch.from_numpy(demo_catalog.edges.copy()), inputs, attributes=True)
    x = torch.randn(adj.shape[0], 8, generator=torch.Generator().manual_seed(0))
    weights = torch.randn(adj.shape[0], 8, generator=torch.Generator().manual_seed(1))
    layers = 3

    x1 = x.clone().requires_grad_()
    out, h = x1, x1
    for _ in range(layers):
        h = _SymmetricPropagation.apply(adj, h)
        out = out + h
    want = out / (layers + 1)
    (want * weights).sum().backward()

    x2 = x.clone().requires_grad_()
    got = model_module._LightGCNStack.apply(adj, x2 * 1.0, layers)  # it writes into its input: not a leaf
    (got * weights).sum().backward()
    assert torch.equal(got, want)
    assert x1.grad is not None and x2.grad is not None
    assert torch.equal(x2.grad, x1.grad)
    assert not torch.equal(x2.grad, weights / (layers + 1))  # the propagation reached the gradient
