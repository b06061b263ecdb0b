"""The training loop: seeded, early-stopped on validation Recall@k, and producing serving embeddings."""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.metrics import LinkPredRecall
from tqdm.auto import tqdm

from recsys.config import LossConfig, TrainConfig
from recsys.data import Catalog
from recsys.errors import TrainingError
from recsys.graph import GraphInputs, attribute_edge_index, bipartite_edge_index, build_inputs, split_pairs
from recsys.model import build_model, normalised_adjacency

log = logging.getLogger(__name__)


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


def ranking_loss(
    playlist_z: Tensor, track_z: Tensor, pos: Tensor, neg: Tensor, config: LossConfig, shared: Tensor | None = None
) -> Tensor:
    """Loss of positive pairs pos [2, n] against per-positive negatives neg [n, m] and, for the softmax loss,
    negatives shared by the whole batch (shared [s] track_idx: many negatives at the cost of one matmul)."""
    if config.kind == "softmax":
        # Normalise every row once, then gather: cheaper than normalising the gathered copies.
        playlist_n, track_n = F.normalize(playlist_z, dim=-1), F.normalize(track_z, dim=-1)
        p = playlist_n[pos[0]]  # [n, d]
        t_pos = track_n[pos[1]]
        t_neg = track_n[neg]  # [n, m, d]
        # A sampled negative that is the positive itself is not a negative.
        target = pos[1].unsqueeze(1)
        parts = [
            (p * t_pos).sum(-1, keepdim=True),
            torch.einsum("nd,nmd->nm", p, t_neg).masked_fill(neg == target, float("-inf")),
        ]
        if shared is not None and len(shared):
            shared_logits = p @ track_n[shared].T  # [n, s]
            parts.append(shared_logits.masked_fill(shared.unsqueeze(0) == target, float("-inf")))
        logits = torch.cat(parts, dim=1) / config.temperature
        return F.cross_entropy(logits, torch.zeros(len(p), dtype=torch.long))
    p = playlist_z[pos[0]]  # [n, d]
    s_pos = (p * track_z[pos[1]]).sum(-1)  # [n]
    s_neg = torch.einsum("nd,nmd->nm", p, track_z[neg])  # [n, m]
    if config.kind == "bpr":
        return -F.logsigmoid(s_pos.unsqueeze(1) - s_neg).mean()
    return F.binary_cross_entropy_with_logits(s_pos, torch.ones_like(s_pos)) + F.binary_cross_entropy_with_logits(
        s_neg, torch.zeros_like(s_neg)
    )


def recall_at_k(playlist_z: Tensor, track_z: Tensor, known: Tensor, held: Tensor, k: int, normalise: bool) -> float:
    """Recall@k of held pairs [2, n] ranking the whole catalogue, with known pairs [2, m] masked out."""
    if held.shape[1] == 0:
        return float("nan")
    playlists = torch.unique(held[0])
    if normalise:
        playlist_z, track_z = F.normalize(playlist_z, dim=-1), F.normalize(track_z, dim=-1)
    scores = playlist_z[playlists] @ track_z.T  # [n_playlists, T]
    row_of = torch.full((playlist_z.shape[0],), -1, dtype=torch.long)
    row_of[playlists] = torch.arange(len(playlists))
    mask_rows = row_of[known[0]]
    keep = mask_rows >= 0
    scores[mask_rows[keep], known[1][keep]] = float("-inf")
    top = scores.topk(min(k, scores.shape[1]), dim=1).indices
    metric = LinkPredRecall(k=top.shape[1])
    metric.update(top, torch.stack([row_of[held[0]], held[1]]))
    return float(metric.compute())


def fit(catalog: Catalog, config: TrainConfig) -> TrainResult:
    """Train the configured model on the catalogue and return serving embeddings over all its pairs."""
    start = time.perf_counter()
    torch.manual_seed(config.seed)
    np.random.seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    inputs = build_inputs(catalog, scaling=config.model.feature_scaling)
    graphs = _Graphs(inputs, config)
    all_pairs = torch.from_numpy(catalog.edges.copy()).long()  # [2, E]
    if all_pairs.shape[1] == 0:
        raise TrainingError("the catalogue has no playlist-track pairs to learn from")
    train_pairs, val_pairs = split_pairs(all_pairs, config.validation_share, gen)
    val_graph = graphs.propagation(train_pairs)
    # Validation tracks with no training edge are cold: they must be scored without their (playlist) genre.
    val_hide = (torch.bincount(train_pairs[1], minlength=inputs.num_tracks) == 0) if config.genre_dropout else None

    model = build_model(inputs, config.model, seed=config.seed)
    opt = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    normalise = config.loss.kind == "softmax"
    genre_idx = torch.from_numpy(np.unique(catalog.genres, return_inverse=True)[1].astype(np.int64))
    genre_pools = [(genre_idx == g).nonzero(as_tuple=True)[0] for g in range(int(genre_idx.max()) + 1)]

    best = (-1.0, -1)
    best_state: dict[str, Tensor] | None = None
    history: list[float] = []
    bar = tqdm(range(1, config.epochs + 1), desc="training", disable=not config.progress, leave=False)
    last_loss = float("nan")
    stopped_by_budget = False
    for epoch in bar:
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
        for lo in range(0, len(order), config.batch_size):
            pos = target_pairs[:, order[lo : lo + config.batch_size]]
            neg = _negatives(pos[1], config.loss.num_negatives, config.loss.hard_share, genre_pools, genre_idx, gen)
            shared = torch.randint(0, inputs.num_tracks, (config.loss.num_shared_negatives,), generator=gen)
            playlist_z, track_z = model(edge_index, edge_weight, hide_genre)
            loss = ranking_loss(playlist_z, track_z, pos, neg, config.loss, shared)
            reg = sum((e.pow(2).sum() for e in model.input_embeddings()), torch.tensor(0.0))
            loss = loss + config.loss.weight_decay * reg / max(pos.shape[1], 1)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        last_loss = float(np.mean(losses))
        if not np.isfinite(last_loss):
            raise TrainingError(f"training diverged at epoch {epoch} (loss {last_loss}); lower the learning rate")
        if epoch % config.eval_every == 0 or epoch == config.epochs:
            model.eval()
            with torch.no_grad():
                pz, tz = model(*val_graph, val_hide)
            recall = recall_at_k(pz, tz, train_pairs, val_pairs, config.eval_k, normalise)
            history.append(recall)
            if np.isnan(recall) or recall > best[0]:
                best = (recall, epoch)
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            bar.set_postfix(loss=f"{last_loss:.4f}", val_recall=f"{recall:.4f}")
            if epoch - best[1] >= config.patience:
                break
            if time.perf_counter() - start > config.max_seconds:
                log.warning("training stopped at epoch %d: time budget of %.0f s spent", epoch, config.max_seconds)
                stopped_by_budget = True
                break
        else:
            bar.set_postfix(loss=f"{last_loss:.4f}")
    bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    with torch.no_grad():
        playlist_z, track_z = model(*graphs.propagation(all_pairs))
    if not (torch.isfinite(playlist_z).all() and torch.isfinite(track_z).all()):
        raise TrainingError("training produced non-finite embeddings; lower the learning rate")
    seconds = time.perf_counter() - start
    metrics = {
        f"val_recall@{config.eval_k}": float(best[0]),
        "best_epoch": float(best[1]),
        "epochs_run": float(epoch),
        "final_loss": last_loss,
        "stopped_by_time_budget": float(stopped_by_budget),
    }
    log.info("trained %s in %.1fs: %s", config.model.kind, seconds, metrics)
    return TrainResult(
        playlist_z=F.normalize(playlist_z, dim=-1).numpy().astype(np.float32),
        track_z=F.normalize(track_z, dim=-1).numpy().astype(np.float32),
        inputs=inputs,
        metrics=metrics,
        train_seconds=seconds,
    )
