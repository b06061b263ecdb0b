"""The ranking loss fit() minimises: negatives sampled per positive and shared by the batch, computed in chunks."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from recsys.config import LossConfig

# Share of a listener node's per-positive negatives drawn from that listener's own dislikes (the rest stay genre
# negatives). A dislike is the clearest "not this" a listener gives, but a listener has few of them (two a round in
# bench/bench_listeners.py), so drawing every negative there would repeat the same few and lose the genre contrast.
DISLIKED_SHARE = 0.5


@dataclass(frozen=True, eq=False)
class ListenerDislikes:
    """Where listener nodes' hard negatives come from: listener l is playlist node first_node + l, and its
    disliked tracks are tracks[ptr[l]:ptr[l + 1]]."""

    first_node: int
    ptr: Tensor  # [L + 1] int64
    tracks: Tensor  # [m] int64 track_idx

    @classmethod
    def of(cls, first_node: int, pairs: np.ndarray, num_listeners: int) -> ListenerDislikes | None:
        """From (listener_idx, track_idx) pairs [2, m]; None when no listener disliked anything."""
        if pairs.shape[1] == 0:
            return None
        order = np.argsort(pairs[0], kind="stable")
        ptr = np.searchsorted(pairs[0][order], np.arange(num_listeners + 1))
        return cls(first_node, torch.from_numpy(ptr.astype(np.int64)), torch.from_numpy(pairs[1][order].copy()))

    def to(self, device: torch.device) -> ListenerDislikes:
        """The same dislikes on another device."""
        return ListenerDislikes(self.first_node, self.ptr.to(device), self.tracks.to(device))


def sample_negatives(
    positives: Tensor,
    num: int,
    hard_share: float,
    genre_pools: list[Tensor],
    track_genre: Tensor,
    gen: torch.Generator,
    *,
    playlists: Tensor | None = None,
    dislikes: ListenerDislikes | None = None,
) -> Tensor:
    """[n, num] negative track_idx: uniform over the catalogue, a share from the positive's own genre, and for a
    positive of a listener node (playlists [n] gives each positive's node), DISLIKED_SHARE of them (the last
    columns) from that listener's dislikes. Without listener dislikes the random draws are exactly as before.
    Every tensor and gen are on one device; so are the negatives."""
    n, device = positives.shape[0], positives.device
    num_tracks = track_genre.shape[0]
    num_hard = round(num * hard_share) if genre_pools else 0
    neg = torch.randint(0, num_tracks, (n, num), generator=gen, device=device)
    if num_hard:
        genres = track_genre[positives]
        for g, pool in enumerate(genre_pools):
            rows = (genres == g).nonzero(as_tuple=True)[0]
            if len(rows) and len(pool):
                pick = torch.randint(0, len(pool), (len(rows), num_hard), generator=gen, device=device)
                neg[rows, :num_hard] = pool[pick]
    if dislikes is not None and playlists is not None:
        _draw_disliked(neg, playlists, dislikes, gen)
    return neg


def _draw_disliked(neg: Tensor, playlists: Tensor, dislikes: ListenerDislikes, gen: torch.Generator) -> None:
    """Overwrite the last DISLIKED_SHARE columns of neg for positives of listeners that disliked something."""
    num = round(neg.shape[1] * DISLIKED_SHARE)
    num_listeners = len(dislikes.ptr) - 1
    listener = playlists - dislikes.first_node
    rows = ((listener >= 0) & (listener < num_listeners)).nonzero(as_tuple=True)[0]
    if not num or not len(rows):
        return
    start = dislikes.ptr[listener[rows]]
    count = dislikes.ptr[listener[rows] + 1] - start
    rows, start, count = rows[count > 0], start[count > 0], count[count > 0]
    if not len(rows):
        return
    uniform = torch.rand(len(rows), num, generator=gen, device=neg.device)
    offset = (uniform * count.unsqueeze(1)).long()  # uniform in [0, count)
    offset = torch.minimum(offset, count.unsqueeze(1) - 1)
    neg[rows, -num:] = dislikes.tracks[start.unsqueeze(1) + offset]


def normalise_for(loss: LossConfig, playlist_z: Tensor, track_z: Tensor) -> tuple[Tensor, Tensor]:
    """What the loss scores with: the softmax loss works on cosine similarities, the others on raw dot products."""
    if loss.kind == "softmax":
        return F.normalize(playlist_z, dim=-1), F.normalize(track_z, dim=-1)
    return playlist_z, track_z


# Nodes above which a training step normalises the model's outputs in place and takes the gradient back through the
# normalisation by hand (normalise_in_place, normalised_gradient_): at the Million Playlist Dataset's size (6M nodes)
# that holds one [N, d] float32 copy (1.5 GB) less through the loss and several less in the backward pass. Below it
# (the real data, 10M pairs) autograd's F.normalize, exactly as before.
LEAN_NORMALISE_NODES = 1 << 21


def normalise_in_place(z: Tensor) -> Tensor:
    """Divide each row of z by its L2 norm in place, with F.normalize's clamp (the same values); the norms [n, 1]."""
    norms = z.norm(dim=-1, keepdim=True).clamp_min_(1e-12)
    z.div_(norms)
    return norms


def normalised_gradient_(y: Tensor, grad: Tensor, norms: Tensor, rows: int = 1 << 16) -> None:
    """Make grad, the gradient with respect to y = x / |x| (y and norms from normalise_in_place), the gradient with
    respect to x, in place: (grad - y (y . grad)) / |x|, a block of rows at a time (no [n, d] temporary). Rows whose
    norm was clamped (|x| < 1e-12; embeddings never are) would need grad / 1e-12 instead."""
    for lo in range(0, y.shape[0], rows):
        y_rows, g_rows = y[lo : lo + rows], grad[lo : lo + rows]
        g_rows.sub_(y_rows * (y_rows * g_rows).sum(dim=-1, keepdim=True)).div_(norms[lo : lo + rows])


# Rows of the shared-negative block computed at once: a [1024, 1024] float32 tile (4 MB) stays in cache through its
# product, exponential and sum, where the whole [16384, 1024] block (64 MB) made several trips to memory.
SHARED_TILE_ROWS = 1024


@functools.cache
def fast_bf16(device: torch.device) -> bool:
    """Whether this device multiplies bfloat16 matrices natively (faster than float32): CUDA GPUs, and CPUs with
    AVX512-BF16 or AMX. Elsewhere bfloat16 is emulated and slower, so the shared block stays float32 there."""
    if device.type == "cuda":
        return True
    # Private probes (torch.cpu has no public one); a torch without them is treated as having neither.
    probes = (getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))
    return any(probe() for probe in probes if probe is not None)


# exp(x) = 2 ** (x log2 e): the products are taken in log2 units, since torch's exp2 is faster than its exp on this
# machine's CPU (ad hoc: 0.33 vs 0.86 ms per million floats) and the block's exponentials are much of the loss.
LOG2E = 1.4426950408889634


class _SharedLogSumExp(torch.autograd.Function):
    """logsumexp over the rows of p @ s.T [n, m] with the marked entries left out, a tile of rows at a time.

    The block is the loss's largest tensor. Each row is shifted by a bound on its entries (|p_i| max_j |s_j|,
    Cauchy-Schwarz), so no pass looks for the row's maximum and exp never overflows. The products run in `dtype`
    (bfloat16 where the hardware has it: 8 bits of mantissa on cosine logits of at most 1/temperature); sums stay
    float32. The forward pass keeps the block's exponentials in `dtype` (at 16,384 x 1,024: 32 MB in bfloat16) for
    the backward pass, which then needs no product and no exponential of its own to form the softmax."""

    @staticmethod
    def forward(ctx: Any, p: Tensor, s: Tensor, hit_rows: Tensor, hit_cols: Tensor, dtype: torch.dtype) -> Tensor:
        bound = p.norm(dim=1) * s.norm(dim=1).max()  # [n]
        lse = torch.empty(p.shape[0], dtype=p.dtype, device=p.device)
        exps = torch.empty(p.shape[0], s.shape[0], dtype=dtype, device=p.device)  # [n, m] exp(block - bound)
        low_p, low_s_t = (p * LOG2E).to(dtype), s.to(dtype).T.contiguous()
        for lo, tile in _tiles(low_p, low_s_t, bound * LOG2E, hit_rows, hit_cols):
            tile.exp2_()
            lse[lo : lo + len(tile)] = tile.sum(dim=1).log_()
            exps[lo : lo + len(tile)] = tile
        ctx.save_for_backward(p, s, lse, exps)
        return lse + bound

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, Tensor, None, None, None]:
        p, s, lse, exps = ctx.saved_tensors
        low_p, low_s = p.to(exps.dtype), s.to(exps.dtype)
        p_grad, s_grad = torch.empty_like(p), torch.zeros_like(s)
        scale = (grad * torch.exp(-lse)).unsqueeze(1)  # [n, 1]: softmax = exps / exp(lse), times the gradient
        for lo in range(0, p.shape[0], SHARED_TILE_ROWS):
            rows = slice(lo, lo + SHARED_TILE_ROWS)
            weighted = (exps[rows].float() * scale[rows]).to(exps.dtype)  # d lse / d block, a tile of rows
            p_grad[rows] = weighted @ low_s
            s_grad += weighted.T @ low_p[rows]
        return p_grad, s_grad, None, None, None


def _tiles(p: Tensor, s_t: Tensor, shift: Tensor, hit_rows: Tensor, hit_cols: Tensor) -> Iterator[tuple[int, Tensor]]:
    """(first row, float32 tile of p @ s_t - shift with the marked entries at -inf), SHARED_TILE_ROWS rows each."""
    for lo in range(0, p.shape[0], SHARED_TILE_ROWS):
        tile = (p[lo : lo + SHARED_TILE_ROWS] @ s_t).float()
        tile.sub_(shift[lo : lo + len(tile)].unsqueeze(1))
        marked = (hit_rows >= lo) & (hit_rows < lo + len(tile))
        tile[hit_rows[marked] - lo, hit_cols[marked]] = float("-inf")
        yield lo, tile


def ranking_loss(
    playlist_z: Tensor,
    track_z: Tensor,
    pos: Tensor,
    neg: Tensor,
    config: LossConfig,
    shared: Tensor | None = None,
    skip: Tensor | None = None,
) -> Tensor:
    """Mean loss of positive pairs pos [2, n] against per-positive negatives neg [n, m] and, for the softmax loss,
    negatives shared by the whole batch (shared [s] track_idx: many negatives at the cost of one matmul). skip [n, m]
    (softmax only) marks per-positive negatives that are not negatives: tracks of the positive's own playlist.

    playlist_z and track_z are what normalise_for returned (normalising every row once is cheaper than
    normalising the gathered copies, and lets the trainer compute the loss in chunks)."""
    # index_select rather than [] indexing: its backward is an index_add, several times faster on CPU.
    p = playlist_z.index_select(0, pos[0])  # [n, d]
    t_pos = track_z.index_select(0, pos[1])  # [n, d]
    t_neg = track_z.index_select(0, neg.reshape(-1)).view(*neg.shape, -1)  # [n, m, d]
    if config.kind == "softmax":
        # Cross entropy of [positive, negatives, shared negatives] / temperature with the positive as the label,
        # written as logsumexp(all) - positive so the [n, s] shared block is never copied: the loss's cost is
        # memory traffic over that block, and this is half of what cat + cross_entropy moves.
        p = p / config.temperature
        target = pos[1].unsqueeze(1)
        s_pos = (p * t_pos).sum(-1)  # [n]
        # A sampled negative that is the positive itself is not a negative.
        not_negative = neg == target if skip is None else (neg == target) | skip
        s_neg = torch.einsum("nd,nmd->nm", p, t_neg).masked_fill(not_negative, float("-inf"))  # [n, m]
        lse = torch.logsumexp(torch.cat([s_pos.unsqueeze(1), s_neg], dim=1), dim=1)  # [n]
        if shared is not None and len(shared):
            rows = torch.isin(pos[1], shared).nonzero(as_tuple=True)[0]  # the few positives drawn as negatives
            hit_rows, hit_cols = (shared.unsqueeze(0) == target[rows]).nonzero(as_tuple=True)
            low = torch.bfloat16 if config.bf16_shared_products and fast_bf16(p.device) else torch.float32
            shared_z = track_z.index_select(0, shared)
            shared_lse = _SharedLogSumExp.apply(p, shared_z, rows[hit_rows], hit_cols, low)  # [n]
            lse = torch.logaddexp(lse, shared_lse)
        return (lse - s_pos).mean()
    s_pos = (p * t_pos).sum(-1)  # [n]
    s_neg = torch.einsum("nd,nmd->nm", p, t_neg)  # [n, m]
    if config.kind == "bpr":
        return -F.logsigmoid(s_pos.unsqueeze(1) - s_neg).mean()
    return F.binary_cross_entropy_with_logits(s_pos, torch.ones_like(s_pos)) + F.binary_cross_entropy_with_logits(
        s_neg, torch.zeros_like(s_neg)
    )


def chunk_loss(
    tables: list[Tensor],
    grads: list[Tensor],
    pos: Tensor,
    neg: Tensor,
    shared: Tensor,
    loss: LossConfig,
    weight: float,
    skip: Tensor | None = None,
) -> float:
    """weight * ranking_loss of one chunk; its gradient is added into grads (same shapes as the detached
    playlist and track tables). The chunk works on its own rows only, so no [num_tracks, d] tensor is created
    per chunk (at 10M pairs that allocation cost more than the loss)."""
    n, m = neg.shape
    playlists, p_local = torch.unique(pos[0], return_inverse=True)
    tracks, t_local = torch.unique(torch.cat([pos[1], neg.reshape(-1), shared]), return_inverse=True)
    p_rows = tables[0][playlists].requires_grad_()
    t_rows = tables[1][tracks].requires_grad_()
    local_pos = torch.stack([p_local, t_local[:n]])
    value = (
        ranking_loss(p_rows, t_rows, local_pos, t_local[n : n + n * m].view(n, m), loss, t_local[n + n * m :], skip)
        * weight
    )
    p_grad, t_grad = torch.autograd.grad(value, [p_rows, t_rows])
    grads[0].index_add_(0, playlists, p_grad)
    grads[1].index_add_(0, tracks, t_grad)
    return float(value.detach())


class PlaylistMembers:
    """The training pairs as sorted keys playlist * num_tracks + track, to tell which sampled negatives are in the
    positive's own playlist (a binary search per negative; no dense [P, T] table)."""

    def __init__(self, pairs: Tensor, num_tracks: int) -> None:
        self.num_tracks = num_tracks
        keys = pairs[0] * num_tracks
        keys += pairs[1]
        if keys.device.type == "cpu":
            keys.numpy().sort()  # in place: neither a sorted copy nor a permutation (0.5 GB each at 66M pairs)
        else:
            keys = torch.sort(keys).values
        self.keys = keys  # [E], sorted

    def of(self, playlists: Tensor, neg: Tensor) -> Tensor:
        """[n, m] bool: neg[i, j] is in playlist playlists[i]."""
        want = playlists.unsqueeze(1) * self.num_tracks + neg  # [n, m]
        at = torch.searchsorted(self.keys, want).clamp(max=len(self.keys) - 1)
        return self.keys[at] == want if len(self.keys) else torch.zeros_like(neg, dtype=torch.bool)
