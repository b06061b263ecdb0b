"""The training loop: seeded, early-stopped on validation Recall@k, and producing serving embeddings."""

from __future__ import annotations

import ctypes
import logging
import math
import time
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn.parallel import DistributedDataParallel
from torch_geometric.metrics import LinkPredRecall
from tqdm.auto import tqdm

from recsys.config import LossConfig, TrainConfig
from recsys.data import Catalog
from recsys.distributed import Ranks
from recsys.errors import TrainingError
from recsys.graph import GraphInputs, attribute_edge_index, bipartite_edge_index, build_inputs, split_pairs
from recsys.model import build_model, normalised_adjacency

log = logging.getLogger(__name__)

# The fewest playlist-track pairs fit() trains on: validation holds out validation_share of them (10%: 2 of 20) to
# pick the best epoch and training keeps the rest; with fewer, the held-out set is empty or a single pair, and the
# recorded metric means nothing.
MIN_TRAINING_PAIRS = 20
# A single playlist teaches no contrast: every track is either in it or in no playlist.
MIN_TRAINING_PLAYLISTS = 2
# Below this many pairs a diverging loss is blamed on the data, not on the learning rate: the default learning
# rate trains the demo catalogue (~4k pairs) and the real data (~31k) stably.
SMALL_DATA_PAIRS = 1000


def keep_freed_memory() -> bool:
    """Make glibc serve every allocation from its heap and keep freed memory for reuse.

    A training step allocates and frees tensors of hundreds of MB; by default glibc maps each one afresh and its
    pages fault in again on first touch, a large share of a 10M-pair epoch. Process-wide, so it is called
    by the processes that exist to train (musicrec train, the bot's retraining child, the benchmarks), not by
    fit(). Returns whether it applied (glibc only)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_max = -1, -4
        return bool(libc.mallopt(m_mmap_max, 0)) and bool(libc.mallopt(m_trim_threshold, 2**31 - 1))
    except (OSError, AttributeError):
        return False


@dataclass(frozen=True, eq=False)
class TrainResult:
    """Serving embeddings and what training measured."""

    playlist_z: np.ndarray  # [P, d] float32, L2-normalised
    track_z: np.ndarray  # [T, d] float32, L2-normalised
    inputs: GraphInputs
    metrics: dict[str, float]
    train_seconds: float


class _Graphs:
    """Edge sets in the joint numbering, normalised once each."""

    def __init__(self, inputs: GraphInputs, config: TrainConfig) -> None:
        self.inputs = inputs
        self.with_attributes = config.model.kind == "hybrid" and config.model.use_artist_album_nodes
        self.self_loops = config.model.kind == "design_gcn"
        self.attr = attribute_edge_index(inputs) if self.with_attributes else torch.empty(2, 0, dtype=torch.long)
        self.num_nodes = inputs.num_nodes if self.self_loops is False else inputs.num_playlists + inputs.num_tracks

    def propagation(self, pairs: Tensor) -> tuple[Tensor, Tensor | None]:
        """Message-passing graph over the given playlist-track pairs: the normalised adjacency.

        The hybrid model gets it as one sparse CSR matrix (PyG then propagates with a sparse-dense product, several
        times faster than gather/scatter on CPU); the GCNConv baseline gets edge_index and weights.
        """
        edge_index = torch.cat([bipartite_edge_index(self.inputs, pairs), self.attr], dim=1)
        ei, ew = normalised_adjacency(edge_index, self.num_nodes, self.self_loops)
        if self.self_loops:
            return ei, ew
        n = self.num_nodes
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            coo = torch.sparse_coo_tensor(ei.flip(0), ew, (n, n), check_invariants=False)
            return coo.coalesce().to_sparse_csr(), None


def _negatives(
    positives: Tensor, num: int, hard_share: float, genre_pools: list[Tensor], track_genre: Tensor, gen: torch.Generator
) -> Tensor:
    """[n, num] negative track_idx: uniform over the catalogue, a share from the positive's own genre."""
    n = positives.shape[0]
    num_tracks = track_genre.shape[0]
    num_hard = round(num * hard_share) if genre_pools else 0
    neg = torch.randint(0, num_tracks, (n, num), generator=gen)
    if num_hard:
        genres = track_genre[positives]
        for g, pool in enumerate(genre_pools):
            rows = (genres == g).nonzero(as_tuple=True)[0]
            if len(rows) and len(pool):
                pick = torch.randint(0, len(pool), (len(rows), num_hard), generator=gen)
                neg[rows, :num_hard] = pool[pick]
    return neg


def _normalise_for(loss: LossConfig, playlist_z: Tensor, track_z: Tensor) -> tuple[Tensor, Tensor]:
    """What the loss scores with: the softmax loss works on cosine similarities, the others on raw dot products."""
    if loss.kind == "softmax":
        return F.normalize(playlist_z, dim=-1), F.normalize(track_z, dim=-1)
    return playlist_z, track_z


class _SharedLogSumExp(torch.autograd.Function):
    """logsumexp over the rows of p @ s.T [n, m] with the marked entries left out, in one buffer.

    The block is the loss's largest tensor; autograd's matmul + logsumexp would allocate and pass over it about
    six times. Here the buffer becomes the softmax in place and is reused by the backward pass."""

    @staticmethod
    def forward(ctx: Any, p: Tensor, s: Tensor, hit_rows: Tensor, hit_cols: Tensor) -> Tensor:
        block = p @ s.T  # [n, m]
        block[hit_rows, hit_cols] = float("-inf")
        top = block.amax(dim=1, keepdim=True)  # [n, 1]
        block.sub_(top).exp_()
        total = block.sum(dim=1, keepdim=True)
        block.div_(total)  # now the softmax over the row
        ctx.save_for_backward(p, s, block)
        return (top + total.log()).squeeze(1)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, Tensor, None, None]:
        p, s, softmax = ctx.saved_tensors
        weighted = softmax.mul_(grad.unsqueeze(1))  # d lse / d block, in place: backward runs once
        return weighted @ s, weighted.T @ p, None, None


def ranking_loss(
    playlist_z: Tensor, track_z: Tensor, pos: Tensor, neg: Tensor, config: LossConfig, shared: Tensor | None = None
) -> Tensor:
    """Mean loss of positive pairs pos [2, n] against per-positive negatives neg [n, m] and, for the softmax loss,
    negatives shared by the whole batch (shared [s] track_idx: many negatives at the cost of one matmul).

    playlist_z and track_z are what _normalise_for returned (normalising every row once is cheaper than
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
        s_neg = torch.einsum("nd,nmd->nm", p, t_neg).masked_fill(neg == target, float("-inf"))  # [n, m]
        lse = torch.logsumexp(torch.cat([s_pos.unsqueeze(1), s_neg], dim=1), dim=1)  # [n]
        if shared is not None and len(shared):
            rows = torch.isin(pos[1], shared).nonzero(as_tuple=True)[0]  # the few positives drawn as negatives
            hit_rows, hit_cols = (shared.unsqueeze(0) == target[rows]).nonzero(as_tuple=True)
            shared_lse = _SharedLogSumExp.apply(p, track_z.index_select(0, shared), rows[hit_rows], hit_cols)  # [n]
            lse = torch.logaddexp(lse, shared_lse)
        return (lse - s_pos).mean()
    s_pos = (p * t_pos).sum(-1)  # [n]
    s_neg = torch.einsum("nd,nmd->nm", p, t_neg)  # [n, m]
    if config.kind == "bpr":
        return -F.logsigmoid(s_pos.unsqueeze(1) - s_neg).mean()
    return F.binary_cross_entropy_with_logits(s_pos, torch.ones_like(s_pos)) + F.binary_cross_entropy_with_logits(
        s_neg, torch.zeros_like(s_neg)
    )


def recall_at_k(
    playlist_z: Tensor,
    track_z: Tensor,
    known: Tensor,
    held: Tensor,
    k: int,
    normalise: bool,
    max_playlists: int | None = None,
    generator: torch.Generator | None = None,
    rows_per_block: int = 256,
) -> float:
    """Recall@k of held pairs [2, n] ranking the whole catalogue, with known pairs [2, m] masked out.

    Scores are computed a block of playlists at a time (memory [rows_per_block, T]); with max_playlists, a seeded
    sample of that many held-out playlists is scored (a 10M-pair catalogue has ~28k of them)."""
    if held.shape[1] == 0:
        return float("nan")
    playlists = torch.unique(held[0])
    if max_playlists is not None and len(playlists) > max_playlists:
        pick = torch.randperm(len(playlists), generator=generator)[:max_playlists]
        playlists = playlists[pick].sort().values
    if normalise:
        playlist_z, track_z = F.normalize(playlist_z, dim=-1), F.normalize(track_z, dim=-1)
    row_of = torch.full((playlist_z.shape[0],), -1, dtype=torch.long)
    row_of[playlists] = torch.arange(len(playlists))
    known_rows, held_rows = row_of[known[0]], row_of[held[0]]
    known, held = known[:, known_rows >= 0], held[:, held_rows >= 0]
    known_rows, held_rows = known_rows[known_rows >= 0], held_rows[held_rows >= 0]
    metric = LinkPredRecall(k=min(k, track_z.shape[0]))
    for lo in range(0, len(playlists), rows_per_block):
        hi = min(lo + rows_per_block, len(playlists))
        scores = playlist_z[playlists[lo:hi]] @ track_z.T  # [block, T]
        in_block = (known_rows >= lo) & (known_rows < hi)
        scores[known_rows[in_block] - lo, known[1][in_block]] = float("-inf")
        top = scores.topk(metric.k, dim=1).indices
        in_block = (held_rows >= lo) & (held_rows < hi)
        metric.update(top, torch.stack([held_rows[in_block] - lo, held[1][in_block]]))
    return float(metric.compute())


def _chunk_loss(
    tables: list[Tensor], grads: list[Tensor], pos: Tensor, neg: Tensor, shared: Tensor, loss: LossConfig, weight: float
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
        ranking_loss(p_rows, t_rows, local_pos, t_local[n : n + n * m].view(n, m), loss, t_local[n + n * m :]) * weight
    )
    p_grad, t_grad = torch.autograd.grad(value, [p_rows, t_rows])
    grads[0].index_add_(0, playlists, p_grad)
    grads[1].index_add_(0, tracks, t_grad)
    return float(value.detach())


def metric_names(config: TrainConfig | None = None) -> tuple[str, ...]:
    """The names of the metrics fit() records in TrainResult.metrics (and a snapshot in info.metrics)."""
    eval_k = (config or TrainConfig()).eval_k
    return (
        f"val_recall@{eval_k}",
        "best_epoch",
        "epochs_run",
        "final_loss",
        "stopped_by_time_budget",
        "seconds_per_epoch",
        "loss_share_of_epoch",
        "world_size",
    )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _data_size(catalog: Catalog) -> str:
    """'30 playlist-track pairs in 3 playlists': the size that decides whether a catalogue can be trained on."""
    return f"{_count(catalog.num_pairs, 'playlist-track pair')} in {_count(catalog.num_playlists, 'playlist')}"


def check_trainable(catalog: Catalog) -> None:
    """Raise TrainingError, saying what the data lacks, when the catalogue is too small to train and validate on."""
    if catalog.num_pairs < MIN_TRAINING_PAIRS or catalog.num_playlists < MIN_TRAINING_PLAYLISTS:
        raise TrainingError(
            f"the data has {_data_size(catalog)}; training needs at least {MIN_TRAINING_PAIRS} pairs in at least "
            f"{MIN_TRAINING_PLAYLISTS} playlists (some are held out to validate the model): add playlists to the CSV"
        )


def _check_held_out(catalog: Catalog, val_pairs: Tensor, config: TrainConfig) -> None:
    """Raise TrainingError when validation is asked for but the split could hold no pair out."""
    if config.validation_share == 0 or val_pairs.shape[1] > 0:
        return
    if round(catalog.num_pairs * config.validation_share) == 0:
        raise TrainingError(
            f"validation_share {config.validation_share:g} of {_count(catalog.num_pairs, 'pair')} holds out none "
            "to validate the model: raise validation_share or add playlists to the CSV"
        )
    raise TrainingError(
        f"none of the data's {_data_size(catalog)} could be held out to validate the model (each playlist keeps "
        "one pair to learn from): add playlists with at least 2 tracks to the CSV"
    )


def _unstable(what: str, catalog: Catalog, config: TrainConfig) -> TrainingError:
    """The error for a loss or embeddings that stopped being finite: the data's size is the likely cause on tiny
    catalogues, the learning rate otherwise."""
    if catalog.num_pairs < SMALL_DATA_PAIRS:
        return TrainingError(
            f"{what} on only {_data_size(catalog)}: too little data to train stably; add playlists to the CSV"
        )
    return TrainingError(f"{what}; lower the learning rate (now {config.learning_rate:g})")


def _check_validated(best_recall: float, catalog: Catalog, val_pairs: Tensor, config: TrainConfig) -> None:
    """Raise TrainingError when validation was asked for but gave no number: such a model must not be saved."""
    if config.validation_share == 0 or math.isfinite(best_recall):
        return
    raise TrainingError(
        f"val_recall@{config.eval_k} is {best_recall}: no held-out pair could be scored "
        f"({_count(val_pairs.shape[1], 'held-out pair')} of the data's {_data_size(catalog)}); add playlists to the CSV"
    )


def _step_batches(num_targets: int, config: TrainConfig) -> int:
    """Optimisation steps in an epoch: one per batch_size targets, at most max_steps_per_epoch (each step
    propagates over the whole graph, which dominates on large catalogues; its batch then grows instead)."""
    return max(1, min(math.ceil(num_targets / config.batch_size), config.max_steps_per_epoch))


def fit(catalog: Catalog, config: TrainConfig) -> TrainResult:
    """Train the configured model on the catalogue and return serving embeddings over all its pairs.

    Each optimisation step propagates over the whole graph once (a sparse CSR product per layer), then computes
    the ranking loss in chunks of batch_size positives, accumulating its gradient on the detached embeddings,
    and finally back-propagates that gradient through the propagation once: memory stays bounded by the chunk,
    however large the step's batch. Inside an initialised torch.distributed group (torchrun), every rank holds
    the whole graph and the same random draws, takes every world-th chunk of the loss, and
    DistributedDataParallel averages the gradients: the same steps as one process, split across processes.
    """
    check_trainable(catalog)
    start = time.perf_counter()
    ranks = Ranks.current()
    torch.manual_seed(config.seed)
    np.random.seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    inputs = build_inputs(catalog, scaling=config.model.feature_scaling)
    graphs = _Graphs(inputs, config)
    all_pairs = torch.from_numpy(catalog.edges.copy()).long()  # [2, E]
    train_pairs, val_pairs = split_pairs(all_pairs, config.validation_share, gen)
    _check_held_out(catalog, val_pairs, config)
    val_graph = graphs.propagation(train_pairs)
    # Validation tracks with no training edge are cold: they must be scored without their (playlist) genre.
    val_hide = (torch.bincount(train_pairs[1], minlength=inputs.num_tracks) == 0) if config.genre_dropout else None

    model = build_model(inputs, config.model, seed=config.seed)
    net: torch.nn.Module = model
    if ranks.world > 1:
        # Broadcasts rank 0's initial weights and averages gradients; the buffers are constant model inputs.
        net = DistributedDataParallel(model, broadcast_buffers=False)
    opt = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    normalise = config.loss.kind == "softmax"
    genre_idx = torch.from_numpy(pd.factorize(catalog.genres, sort=True)[0].astype(np.int64))  # [T] sorted codes
    genre_pools = [(genre_idx == g).nonzero(as_tuple=True)[0] for g in range(int(genre_idx.max()) + 1)]

    best = (-1.0, -1)
    best_state: dict[str, Tensor] | None = None
    bar = tqdm(
        range(1, config.epochs + 1), desc="training", disable=not config.progress or ranks.rank != 0, leave=False
    )
    last_loss = float("nan")
    stopped_by_budget = False
    # Where an epoch's time goes: the loss chunks (split across ranks) versus the rest (repeated on each rank).
    epoch_seconds: list[float] = []
    loss_seconds: list[float] = []
    propagation_seconds = 0.0
    for epoch in bar:
        epoch_start = time.perf_counter()
        model.train()
        if config.target_edge_share > 0:
            mp_pairs, target_pairs = split_pairs(train_pairs, config.target_edge_share, gen)
        else:
            mp_pairs, target_pairs = train_pairs, train_pairs
        edge_index, edge_weight = graphs.propagation(mp_pairs)
        # Genre is a playlist label: a track cold in this step keeps it only with probability 1 - genre_dropout.
        cold = torch.bincount(mp_pairs[1], minlength=inputs.num_tracks) == 0
        hide_genre = cold & (torch.rand(inputs.num_tracks, generator=gen) < config.genre_dropout)
        order = torch.randperm(target_pairs.shape[1], generator=gen)
        losses = []
        loss_start = time.perf_counter()
        for step in torch.tensor_split(order, _step_batches(len(order), config)):
            propagation_start = time.perf_counter()
            playlist_z, track_z = net(edge_index, edge_weight, hide_genre)
            heads = _normalise_for(config.loss, playlist_z, track_z)
            propagation_seconds += time.perf_counter() - propagation_start
            tables = [h.detach() for h in heads]
            grads = [torch.zeros_like(t) for t in tables]
            step_loss = 0.0
            for chunk_no, lo in enumerate(range(0, len(step), config.batch_size)):
                pos = target_pairs[:, step[lo : lo + config.batch_size]]
                # Every rank draws every chunk's negatives, so the random stream is the same on all of them.
                neg = _negatives(pos[1], config.loss.num_negatives, config.loss.hard_share, genre_pools, genre_idx, gen)
                shared = torch.randint(0, inputs.num_tracks, (config.loss.num_shared_negatives,), generator=gen)
                if chunk_no % ranks.world != ranks.rank:
                    continue
                # Weighted so that the chunks of all ranks sum to the step's mean (DDP divides by the world size).
                weight = pos.shape[1] / len(step) * ranks.world
                step_loss += _chunk_loss(tables, grads, pos, neg, shared, config.loss, weight) / ranks.world
            reg = sum((e.pow(2).sum() for e in model.input_embeddings()), torch.tensor(0.0))
            reg = config.loss.weight_decay * reg / len(step)
            opt.zero_grad()
            propagation_start = time.perf_counter()
            outputs, output_grads = [*heads], [*grads]
            if reg.requires_grad:  # the design baseline with fixed playlist features has no free embeddings
                outputs.append(reg)
                output_grads.append(torch.ones_like(reg))
            torch.autograd.backward(outputs, output_grads)
            opt.step()
            propagation_seconds += time.perf_counter() - propagation_start
            losses.append(ranks.total(step_loss) + float(reg.detach()))
        last_loss = float(np.mean(losses))
        if not np.isfinite(last_loss):
            raise _unstable(f"training diverged at epoch {epoch} (loss {last_loss})", catalog, config)
        epoch_seconds.append(time.perf_counter() - epoch_start)
        loss_seconds.append(time.perf_counter() - loss_start - propagation_seconds)
        propagation_seconds = 0.0
        if epoch % config.eval_every == 0 or epoch == config.epochs:
            model.eval()
            with torch.no_grad():
                pz, tz = model(*val_graph, val_hide)
            recall = recall_at_k(
                pz,
                tz,
                train_pairs,
                val_pairs,
                config.eval_k,
                normalise,
                max_playlists=config.eval_max_playlists,
                generator=torch.Generator().manual_seed(config.seed),
            )
            recall, elapsed = ranks.agree(recall, time.perf_counter() - start)
            if np.isnan(recall) or recall > best[0]:
                best = (recall, epoch)
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            bar.set_postfix(loss=f"{last_loss:.4f}", val_recall=f"{recall:.4f}")
            if epoch - best[1] >= config.patience:
                break
            if elapsed > config.max_seconds:
                log.warning("training stopped at epoch %d: time budget of %.0f s spent", epoch, config.max_seconds)
                stopped_by_budget = True
                break
        else:
            bar.set_postfix(loss=f"{last_loss:.4f}")
    bar.close()
    _check_validated(best[0], catalog, val_pairs, config)
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    with torch.no_grad():
        playlist_z, track_z = model(*graphs.propagation(all_pairs))
    if not (torch.isfinite(playlist_z).all() and torch.isfinite(track_z).all()):
        raise _unstable("training produced non-finite embeddings", catalog, config)
    seconds = time.perf_counter() - start
    metrics = {
        f"val_recall@{config.eval_k}": float(best[0]),
        "best_epoch": float(best[1]),
        "epochs_run": float(epoch),
        "final_loss": last_loss,
        "stopped_by_time_budget": float(stopped_by_budget),
        "seconds_per_epoch": float(np.median(epoch_seconds)),
        "loss_share_of_epoch": float(np.sum(loss_seconds) / np.sum(epoch_seconds)),
        "world_size": float(ranks.world),
    }
    assert tuple(metrics) == metric_names(config), "metric_names() must list what fit() records"
    log.info("trained %s in %.1fs: %s", config.model.kind, seconds, metrics)
    return TrainResult(
        playlist_z=F.normalize(playlist_z, dim=-1).numpy().astype(np.float32),
        track_z=F.normalize(track_z, dim=-1).numpy().astype(np.float32),
        inputs=inputs,
        metrics=metrics,
        train_seconds=seconds,
    )
