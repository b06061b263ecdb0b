"""What training measures as it goes: validation Recall@k, the best epoch and its weights, where time went."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.metrics import LinkPredRecall

from recsys.config import TrainConfig
from recsys.distributed import Ranks

log = logging.getLogger(__name__)


# Most scores recall_at_k holds at once (float32: 512 MB); the row blocks of larger catalogues are cut to fit.
SCORE_BLOCK_FLOATS = 2**27


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

    Scores are computed a block of playlists at a time (memory [rows_per_block, T], fewer rows when that would pass
    SCORE_BLOCK_FLOATS: 256 x 3.3M tracks would be 3.4 GB); with max_playlists, a seeded sample of that many held-out
    playlists is scored (a 10M-pair catalogue has ~28k of them)."""
    if held.shape[1] == 0:
        return float("nan")
    playlists = torch.unique(held[0])
    if max_playlists is not None and len(playlists) > max_playlists:
        pick = torch.randperm(len(playlists), generator=generator)[:max_playlists]  # on the CPU generator's stream
        playlists = playlists[pick.to(playlists.device)].sort().values
    if normalise:
        playlist_z, track_z = F.normalize(playlist_z, dim=-1), F.normalize(track_z, dim=-1)
    row_of = torch.full((playlist_z.shape[0],), -1, dtype=torch.long, device=playlists.device)
    row_of[playlists] = torch.arange(len(playlists), device=playlists.device)
    known_rows, held_rows = row_of[known[0]], row_of[held[0]]
    known, held = known[:, known_rows >= 0], held[:, held_rows >= 0]
    known_rows, held_rows = known_rows[known_rows >= 0], held_rows[held_rows >= 0]
    metric = LinkPredRecall(k=min(k, track_z.shape[0]))
    rows_per_block = max(1, min(rows_per_block, SCORE_BLOCK_FLOATS // max(track_z.shape[0], 1)))
    for lo in range(0, len(playlists), rows_per_block):
        hi = min(lo + rows_per_block, len(playlists))
        scores = playlist_z[playlists[lo:hi]] @ track_z.T  # [block, T]
        in_block = (known_rows >= lo) & (known_rows < hi)
        scores[known_rows[in_block] - lo, known[1][in_block]] = float("-inf")
        top = scores.topk(metric.k, dim=1).indices
        in_block = (held_rows >= lo) & (held_rows < hi)
        metric.update(top.cpu(), torch.stack([held_rows[in_block] - lo, held[1][in_block]]).cpu())
    return float(metric.compute())


def seed_recall_at_k(
    track_z: Tensor,
    known: Tensor,
    held: Tensor,
    k: int,
    num_seeds: int,
    max_playlists: int,
    seed: int,
) -> float:
    """Recall@k of sampled playlists' held pairs [2, n] when each is continued from num_seeds of its known tracks
    (pairs [2, m]) by the rule that serves new playlists (recsys.ranking.seed_scores at SeedConfig's temperature,
    in the batched form seed_order_scores), its other known tracks excluded: how well the track embeddings do
    what /mix and new listeners need. One call of SeedValidation, which training builds once."""
    return SeedValidation(known, held, num_seeds, max_playlists, seed).recall(track_z, k)


class SeedValidation:
    """seed_recall_at_k's playlists, seeds and exclusions, drawn once from the pairs (they do not change between
    epochs); recall() scores them with the embeddings of the moment."""

    def __init__(self, known: Tensor, held: Tensor, num_seeds: int, max_playlists: int, seed: int) -> None:
        known_of, held_of = _grouped(known.cpu().numpy()), _grouped(held.cpu().numpy())
        candidates = np.array(sorted(known_of.keys() & held_of.keys()), dtype=np.int64)
        rng = np.random.default_rng(seed)
        playlists = np.sort(rng.permutation(candidates)[:max_playlists])
        self.seeds = torch.zeros(len(playlists), num_seeds, dtype=torch.long)  # [P, s] track rows, 0-padded
        self.weights = torch.zeros(len(playlists), num_seeds)  # [P, s] 1 for a seed, 0 for padding
        for row, playlist in enumerate(playlists):
            chosen = torch.from_numpy(rng.permutation(known_of[playlist])[:num_seeds])
            self.seeds[row, : len(chosen)], self.weights[row, : len(chosen)] = chosen, 1.0
        self.known = [known_of[playlist] for playlist in playlists]  # excluded from each playlist's ranking
        self.held = [held_of[playlist] for playlist in playlists]  # what each should find

    def recall(self, track_z: Tensor, k: int) -> float:
        """Mean Recall@k over the playlists, NaN when there is none (or k cannot be met)."""
        from recsys.ranking import SeedConfig

        tz = F.normalize(track_z.float(), dim=-1)
        k = min(k, len(tz) - 1)
        num_seeds = self.seeds.shape[1]
        if k <= 0 or not self.known:
            return float("nan")
        block = max(1, 2**24 // (num_seeds * len(tz)))  # [block, num_seeds, T] float32: at most 64 MB
        recalls = []
        for lo in range(0, len(self.known), block):
            rows = slice(lo, lo + block)
            seeds, weights = self.seeds[rows].to(tz.device), self.weights[rows].to(tz.device)
            scores = seed_order_scores(tz, seeds, weights, SeedConfig().temperature)
            mine = self.known[rows]
            at = np.repeat(np.arange(len(mine)), [len(m) for m in mine])
            scores[torch.from_numpy(at).to(tz.device), torch.from_numpy(np.concatenate(mine)).to(tz.device)] = -1.0
            top = scores.topk(k, dim=1).indices.cpu().numpy()
            recalls += [np.isin(targets, top[row]).mean() for row, targets in enumerate(self.held[rows])]
        return float(np.mean(recalls))


def seed_order_scores(track_z: Tensor, seeds: Tensor, weights: Tensor, temperature: float) -> Tensor:
    """[B, T]: for each row of seeds [B, s] (track rows; weights [B, s] 1 for a seed, 0 for padding), scores that
    order the catalogue exactly as recsys.ranking.seed_scores does for those seeds: the sum over the seeds of
    exp((cosine - 1) / temperature), of which seed_scores is an increasing function. All >= 0."""
    cosines = torch.einsum("bsd,td->bst", track_z[seeds], track_z)  # [B, s, T]
    return (cosines.sub_(1.0).div_(temperature).exp_() * weights.unsqueeze(2)).sum(dim=1)


def _grouped(pairs: np.ndarray) -> dict[int, np.ndarray]:
    """Each playlist's tracks in pairs [2, n]."""
    if pairs.shape[1] == 0:
        return {}
    order = np.argsort(pairs[0], kind="stable")
    playlists, starts = np.unique(pairs[0][order], return_index=True)
    return dict(zip(playlists.tolist(), np.split(pairs[1][order], starts[1:]), strict=True))


def validation_names(config: TrainConfig) -> tuple[str, str, str]:
    """What each validation measures: Recall@k of all held-out pairs, of those whose track is cold (no training
    pair), and of new playlists continued from seed tracks (seed_recall_at_k)."""
    k = config.eval_k
    return f"val_recall@{k}", f"val_cold_recall@{k}", f"val_seed_recall@{k}"


def may_be_unmeasured(name: str) -> bool:
    """Whether a metric fit() records may be NaN in a good model: the cold-track recall when no held-out track is
    cold, the seed-continuation recall when no playlist could be continued (stopping_score uses what was measured)."""
    return name.startswith(("val_cold_recall@", "val_seed_recall@"))


def stopping_score(values: dict[str, float], config: TrainConfig) -> float:
    """The number early stopping maximises (TrainConfig.early_stopping): the held-out pairs' recall, or the mean of
    the cold-track and seed-continuation recalls (those of them that could be measured)."""
    every, cold, seeded = validation_names(config)
    if config.early_stopping == "held_out_pairs":
        return values[every]
    measured = [values[name] for name in (cold, seeded) if np.isfinite(values[name])]
    return float(np.mean(measured)) if measured else float("nan")


def metric_names(config: TrainConfig | None = None) -> tuple[str, ...]:
    """The names of the metrics fit() records in TrainResult.metrics (and a snapshot in info.metrics)."""
    config = config or TrainConfig()
    return (
        *validation_names(config),
        "val_score",
        "best_epoch",
        "epochs_run",
        "final_loss",
        "stopped_by_time_budget",
        "seconds_per_epoch",
        "loss_share_of_epoch",
        "world_size",
    )


@dataclass
class Progress:
    """What the epochs measured so far: the best validation (by stopping_score) and its weights, the loss, where
    time went."""

    best_score: float = -1.0
    best_values: dict[str, float] = field(default_factory=dict)
    best_epoch: int = -1
    best_state: dict[str, Tensor] | None = None
    epochs_run: int = 0
    last_loss: float = float("nan")
    stopped_by_budget: bool = False
    # Where an epoch's time goes: the loss chunks (split across ranks) versus the rest (repeated on each rank).
    epoch_seconds: list[float] = field(default_factory=list)
    loss_seconds: list[float] = field(default_factory=list)

    def keep_if_best(self, values: dict[str, float], score: float, epoch: int, model: torch.nn.Module) -> None:
        """Remember the weights when this validation's score beat the best so far."""
        if np.isnan(score) or score > self.best_score:
            self.best_score, self.best_values, self.best_epoch = score, values, epoch
            self.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def should_stop(self, epoch: int, elapsed: float, config: TrainConfig) -> bool:
        """Stop when validation has not improved for patience epochs, or the time budget is spent."""
        if epoch - self.best_epoch >= config.patience:
            return True
        if elapsed > config.max_seconds:
            log.warning("training stopped at epoch %d: time budget of %.0f s spent", epoch, config.max_seconds)
            self.stopped_by_budget = True
            return True
        return False

    def metrics(self, config: TrainConfig, ranks: Ranks) -> dict[str, float]:
        """What TrainResult.metrics records, in metric_names() order."""
        return {
            **{name: float(self.best_values.get(name, float("nan"))) for name in validation_names(config)},
            "val_score": float(self.best_score),
            "best_epoch": float(self.best_epoch),
            "epochs_run": float(self.epochs_run),
            "final_loss": self.last_loss,
            "stopped_by_time_budget": float(self.stopped_by_budget),
            "seconds_per_epoch": float(np.median(self.epoch_seconds)),
            "loss_share_of_epoch": float(np.sum(self.loss_seconds) / np.sum(self.epoch_seconds)),
            "world_size": float(ranks.world),
        }
