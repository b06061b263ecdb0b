"""Songs of one playlist as each other's positives: a second term of the ranking loss.

New playlists from seed songs, cold similar songs and a listener's likes are all ranked by the cosine of two
tracks, mostly tracks no training playlist holds. The playlist-to-track loss shapes that cosine only through the
playlists' embeddings; this term scores it directly: for a target pair (playlist p, track t) of a step, another
target track of p (drawn at random) is the query and t the positive, against the same negatives as the pair's
playlist term (a negative that p holds is still left out). Targets are the pairs a step removes from message
passing, so both songs are scored from the rest of the graph, as a cold song is.
"""

from __future__ import annotations

import torch
from torch import Tensor

from recsys.config import LossConfig
from recsys.loss import chunk_loss


def partners(target_pairs: Tensor, gen: torch.Generator) -> Tensor:
    """[n] for each target pair (p, t) of target_pairs [2, n], the track of another target pair of playlist p, drawn
    uniformly; -1 where p has no other target pair."""
    n = target_pairs.shape[1]
    device = target_pairs.device
    playlists = target_pairs[0]
    order = torch.argsort(playlists, stable=True)
    counts = torch.bincount(playlists)
    starts = torch.cumsum(counts, 0) - counts
    sorted_playlists = playlists[order]
    first, size = starts[sorted_playlists], counts[sorted_playlists]  # [n] each pair's run in the sorted order
    here = torch.arange(n, device=device) - first
    other = (torch.rand(n, generator=gen, device=device) * (size - 1).clamp(min=0)).long()
    other += (other >= here).long()  # skip the pair itself: uniform over the run's other pairs
    chosen = target_pairs[1][order[(first + other).clamp(max=n - 1)]]
    out = torch.empty(n, dtype=torch.long, device=device)
    out[order] = torch.where(size > 1, chosen, torch.full_like(chosen, -1))
    return out


def co_member_loss(
    tables: list[Tensor],
    grads: list[Tensor],
    pos: Tensor,
    partner: Tensor,
    neg: Tensor,
    shared: Tensor,
    loss: LossConfig,
    weight: float,
    skip: Tensor | None,
) -> float:
    """weight * the loss of pos [2, n]'s tracks given their partners [n] as queries (rows without one are left out);
    its gradient is added into the track table's gradient grads[1]."""
    rows = (partner >= 0).nonzero(as_tuple=True)[0]
    if not len(rows):
        return 0.0
    queries = torch.stack([partner[rows], pos[1, rows]])
    track_tables, track_grads = [tables[1], tables[1]], [grads[1], grads[1]]
    kept = skip[rows] if skip is not None else None
    share = weight * len(rows) / pos.shape[1]  # the chunk's weight spread over all its pairs, as the playlist term's
    return chunk_loss(track_tables, track_grads, queries, neg[rows], shared, loss, share, kept)
