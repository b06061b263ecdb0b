"""The training loop: seeded, early-stopped on validation Recall@k, and producing serving embeddings."""

from __future__ import annotations

import logging
import math
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from recsys.co_members import co_member_loss, partners
from recsys.config import TrainConfig
from recsys.data import Catalog
from recsys.device import resolve_device
from recsys.distributed import Ranks
from recsys.graph import GraphInputs, bipartite_edge_index, build_inputs, normalised_csr, split_pairs
from recsys.listeners import ListenerNodes, no_listeners, training_catalog
from recsys.loss import (
    LEAN_NORMALISE_NODES,
    ListenerDislikes,
    PlaylistMembers,
    chunk_loss,
    normalise_for,
    normalise_in_place,
    normalised_gradient_,
    sample_negatives,
)
from recsys.model import build_model, normalised_adjacency
from recsys.train_checks import check_held_out, check_trainable, check_validated, unstable_error
from recsys.train_progress import (
    Progress,
    SeedValidation,
    may_be_unmeasured,
    metric_names,
    recall_at_k,
    stopping_score,
    validation_names,
)

__all__ = ["TrainResult", "fit", "may_be_unmeasured", "metric_names"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class TrainResult:
    """Serving embeddings and what training measured."""

    playlist_z: np.ndarray  # [P, d] float32, L2-normalised: the catalogue's playlists only
    track_z: np.ndarray  # [T, d] float32, L2-normalised
    inputs: GraphInputs  # of the training catalogue: its playlist nodes include the listener nodes
    metrics: dict[str, float]
    train_seconds: float
    listeners: ListenerNodes = field(default_factory=no_listeners)
    listener_z: np.ndarray = field(default_factory=lambda: np.empty((0, 0), dtype=np.float32))  # [L, d] like playlist_z


class _Graphs:
    """The normalised message-passing graph of any set of pairs, in the joint numbering."""

    def __init__(self, inputs: GraphInputs, config: TrainConfig, device: torch.device) -> None:
        self.inputs, self.device = inputs, device
        self.with_attributes = config.model.kind == "hybrid" and config.model.use_artist_album_nodes
        self.self_loops = config.model.kind == "design_gcn"

    def propagation(self, pairs: Tensor) -> tuple[Tensor, Tensor | None]:
        """Message-passing graph over the given playlist-track pairs, on the training device: the normalised
        adjacency.

        The hybrid model gets it as one sparse CSR matrix (PyG then propagates with a sparse-dense product, several
        times faster than gather/scatter on CPU), built on the CPU with little memory (recsys.graph.normalised_csr);
        the GCNConv baseline gets edge_index and weights over playlists and tracks, with self-loops.
        """
        if not self.self_loops:
            return normalised_csr(pairs.cpu(), self.inputs, self.with_attributes).to(self.device), None
        num_nodes = self.inputs.num_playlists + self.inputs.num_tracks
        return normalised_adjacency(bipartite_edge_index(self.inputs, pairs), num_nodes, self_loops=True)


# Seed-continuation validation: each of at most SEED_PLAYLISTS held-out playlists is continued from this many of its
# training tracks, as the evaluation's new playlists are (recsys.evaluation.SplitConfig.new_playlist_seeds).
SEEDS_PER_PLAYLIST = 5
SEED_PLAYLISTS = 500


def _step_batches(num_targets: int, config: TrainConfig) -> int:
    """Optimisation steps in an epoch: one per batch_size targets, at most max_steps_per_epoch (each step
    propagates over the whole graph, which dominates on large catalogues; its batch then grows instead)."""
    return max(1, min(math.ceil(num_targets / config.batch_size), config.max_steps_per_epoch))


def _genre_pools(catalog: Catalog, device: torch.device) -> tuple[Tensor, list[Tensor]]:
    """Each track's genre code [T] (sorted codes) and, per genre, its tracks: where hard negatives are drawn."""
    genre_idx = torch.from_numpy(pd.factorize(catalog.genres, sort=True)[0].astype(np.int64)).to(device)  # [T]
    return genre_idx, [(genre_idx == g).nonzero(as_tuple=True)[0] for g in range(int(genre_idx.max()) + 1)]


def _read_only_tensor(array: np.ndarray) -> Tensor:
    """A tensor sharing a read-only array's memory (the catalogue's pairs: 1 GB at 66M pairs), not a copy of it.
    Nothing writes to it: every use indexes or concatenates it into new tensors."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(array)


def _cold_tracks(pairs: Tensor, num_tracks: int) -> Tensor:
    """[num_tracks] bool: the tracks in none of the pairs [2, n]."""
    return torch.bincount(pairs[1], minlength=num_tracks) == 0


@dataclass(frozen=True)
class _Heads:
    """One step's back-propagation roots and their gradients, the loss's tables (detached, playlists then tracks)
    and the gradient buffers the loss adds to (views of root_grads, or root_grads themselves), and the norms when the
    tables were normalised in place (their gradient is then converted by normalised_gradient_); else None."""

    roots: list[Tensor]
    root_grads: list[Tensor]
    tables: list[Tensor]
    grads: list[Tensor]
    norms: list[Tensor] | None


class _Run:
    """One training run's state, built once: seeded random stream, graphs, held-out pairs, model and optimiser.

    Listener nodes are playlist nodes after the catalogue's: their pairs train and pass messages like any
    playlist's, but are never held out, so validation measures the catalogue's playlists only.

    The pairs are split on the CPU (the same held-out pairs on every device); everything an epoch computes with
    (graphs, model, negatives, loss) lives on self.device. Draws made there come from self.draws: on the CPU that
    is self.gen itself, so a CPU run is exactly what it was before devices existed."""

    def __init__(self, catalog: Catalog, config: TrainConfig, ranks: Ranks, listeners: ListenerNodes) -> None:
        self.config, self.ranks = config, ranks
        self.device = device = resolve_device(config.device)
        torch.manual_seed(config.seed)
        np.random.seed(config.seed)
        self.gen = torch.Generator().manual_seed(config.seed)
        self.draws = self.gen if device.type == "cpu" else torch.Generator(device=device).manual_seed(config.seed)
        joined = training_catalog(catalog, listeners) if listeners.num_listeners else catalog
        self.inputs = build_inputs(joined, scaling=config.model.feature_scaling)
        self.graphs = _Graphs(self.inputs, config, device)
        self.all_pairs = _read_only_tensor(joined.edges).long()  # [2, E + listener likes], CPU, shared with joined
        playlist_pairs = self.all_pairs[:, : catalog.num_pairs]  # the catalogue's pairs come first
        self.train_pairs, self.val_pairs = split_pairs(playlist_pairs, config.validation_share, self.gen)
        if listeners.num_listeners:
            self.train_pairs = torch.cat([self.train_pairs, self.all_pairs[:, catalog.num_pairs :]], dim=1)
        check_held_out(catalog, self.val_pairs, config)
        dislikes = ListenerDislikes.of(catalog.num_playlists, listeners.dislikes, listeners.num_listeners)
        self.dislikes = dislikes.to(device) if dislikes is not None else None
        # What validation scores with, on the device (on the CPU, the same tensors as train_pairs and val_pairs).
        self.known_pairs, self.held_pairs = self.train_pairs.to(device), self.val_pairs.to(device)
        # Validation tracks with no training edge are cold: they must be scored without their (playlist) genre.
        self.val_cold = _cold_tracks(self.known_pairs, self.inputs.num_tracks)
        self.val_hide = self.val_cold if config.genre_dropout else None
        # New playlists continued from seeds: drawn once, scored at every validation.
        self.seed_validation = SeedValidation(
            self.known_pairs, self.held_pairs, SEEDS_PER_PLAYLIST, SEED_PLAYLISTS, config.seed
        )
        self.model = build_model(self.inputs, config.model, seed=config.seed).to(device)
        self.net: torch.nn.Module = self.model
        if ranks.world > 1:
            # Broadcasts rank 0's initial weights and averages gradients; the buffers are constant model inputs.
            ids = [device.index] if device.type == "cuda" else None
            self.net = DistributedDataParallel(self.model, device_ids=ids, broadcast_buffers=False)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=config.learning_rate)
        self.genre_idx, self.genre_pools = _genre_pools(catalog, device)
        skips = config.loss.kind == "softmax" and config.loss.skip_playlist_members
        self.members = PlaylistMembers(self.known_pairs, self.inputs.num_tracks) if skips else None
        self.partner: Tensor | None = None  # per target pair of the epoch, a co-member track (recsys.co_members)

    def epoch(self) -> tuple[float, float]:
        """Train one epoch: its mean loss, and the seconds spent in the loss chunks (not in propagation)."""
        self.model.train()
        if self.config.target_edge_share > 0:
            mp_pairs, target_pairs = split_pairs(self.train_pairs, self.config.target_edge_share, self.gen)
        else:
            mp_pairs, target_pairs = self.train_pairs, self.train_pairs
        device, draws = self.device, self.draws
        mp_pairs, target_pairs = mp_pairs.to(device), target_pairs.to(device)
        graph = self.graphs.propagation(mp_pairs)
        # Genre is a playlist label: a track cold in this step keeps it only with probability 1 - genre_dropout.
        cold = _cold_tracks(mp_pairs, self.inputs.num_tracks)
        del mp_pairs  # the graph holds what the epoch needs of them
        coin = torch.rand(self.inputs.num_tracks, generator=draws, device=device)
        hide_genre = cold & (coin < self.config.genre_dropout)
        order = torch.randperm(target_pairs.shape[1], generator=draws, device=device)
        self.partner = partners(target_pairs, draws) if self.config.loss.co_member_weight else None
        losses = []
        loss_start = time.perf_counter()
        propagation_seconds = 0.0
        for step in torch.tensor_split(order, _step_batches(len(order), self.config)):
            step_loss, seconds = self._step(graph, hide_genre, target_pairs, step)
            losses.append(step_loss)
            propagation_seconds += seconds
        return float(np.mean(losses)), time.perf_counter() - loss_start - propagation_seconds

    def _step(
        self, graph: tuple[Tensor, Tensor | None], hide_genre: Tensor, target_pairs: Tensor, step: Tensor
    ) -> tuple[float, float]:
        """One optimisation step on the targets step indexes: its loss, and the seconds spent propagating."""
        propagation_start = time.perf_counter()
        heads = self._heads(graph, hide_genre)
        propagation_seconds = time.perf_counter() - propagation_start
        step_loss = self._chunks_loss(heads.tables, heads.grads, target_pairs, step)
        for table, grad, norm in zip(heads.tables, heads.grads, heads.norms or [], strict=False):
            normalised_gradient_(table, grad, norm)  # now the gradient with respect to the model's outputs
        if heads.norms is not None:
            # The lean path's root is the model's output, which no backward step reads (recsys.model._LightGCNStack)
            # and its tables were its rows: its memory (an [N, d] array) goes before the backward pass needs more.
            for root in heads.roots:
                root.untyped_storage().resize_(0)
        reg = sum((e.pow(2).sum() for e in self.model.input_embeddings()), torch.zeros((), device=self.device))
        reg = self.config.loss.weight_decay * reg / len(step)
        self.opt.zero_grad()
        propagation_start = time.perf_counter()
        outputs, output_grads = [*heads.roots], [*heads.root_grads]
        del heads
        if reg.requires_grad:  # the design baseline with fixed playlist features has no free embeddings
            outputs.append(reg)
            output_grads.append(torch.ones_like(reg))
        torch.autograd.backward(outputs, output_grads)
        self.opt.step()
        propagation_seconds += time.perf_counter() - propagation_start
        return self.ranks.total(step_loss) + float(reg.detach()), propagation_seconds

    def _heads(self, graph: tuple[Tensor, Tensor | None], hide_genre: Tensor) -> _Heads:
        """What the step's loss scores with and where its gradient goes (_Heads). Above LEAN_NORMALISE_NODES nodes
        the softmax loss's tables are the hybrid model's outputs normalised in place, and the gradient goes
        straight to the [N, d] embeddings they are row slices of (one buffer, no per-slice copies in the backward
        pass)."""
        outputs = self.net(*graph, hide_genre)
        lean = self.config.loss.kind == "softmax" and self.inputs.num_nodes > LEAN_NORMALISE_NODES
        base = outputs[0]._base  # the hybrid model's outputs are row slices of one tensor no backward step reads
        if not lean or self.config.model.kind != "hybrid" or base is None or outputs[1]._base is not base:
            heads = normalise_for(self.config.loss, *outputs)
            grads = [torch.zeros_like(h) for h in heads]
            return _Heads(list(heads), grads, [h.detach() for h in heads], grads, None)
        rows = [
            slice(start := (z.storage_offset() - base.storage_offset()) // base.stride(0), start + len(z))
            for z in outputs
        ]
        tables = [base.detach()[r] for r in rows]
        base_grad = torch.zeros_like(base)
        return _Heads(
            [base], [base_grad], tables, [base_grad[r] for r in rows], [normalise_in_place(t) for t in tables]
        )

    def _chunks_loss(self, tables: list[Tensor], grads: list[Tensor], target_pairs: Tensor, step: Tensor) -> float:
        """This rank's share of the step's loss, in chunks of batch_size targets; their gradient is added to grads."""
        config, ranks = self.config, self.ranks
        step_loss = 0.0
        for chunk_no, lo in enumerate(range(0, len(step), config.batch_size)):
            pos = target_pairs[:, step[lo : lo + config.batch_size]]
            # Every rank draws every chunk's negatives, so the random stream is the same on all of them.
            neg = sample_negatives(
                pos[1],
                config.loss.num_negatives,
                config.loss.hard_share,
                self.genre_pools,
                self.genre_idx,
                self.draws,
                playlists=pos[0],
                dislikes=self.dislikes,
            )
            num_shared = config.loss.num_shared_negatives
            shared = torch.randint(0, self.inputs.num_tracks, (num_shared,), generator=self.draws, device=self.device)
            if chunk_no % ranks.world != ranks.rank:
                continue
            # Weighted so that the chunks of all ranks sum to the step's mean (DDP divides by the world size).
            weight = pos.shape[1] / len(step) * ranks.world
            skip = self.members.of(pos[0], neg) if self.members is not None else None
            step_loss += chunk_loss(tables, grads, pos, neg, shared, config.loss, weight, skip) / ranks.world
            if self.partner is not None:
                partner = self.partner[step[lo : lo + config.batch_size]]
                co_weight = weight * config.loss.co_member_weight
                co = co_member_loss(tables, grads, pos, partner, neg, shared, config.loss, co_weight, skip)
                step_loss += co / ranks.world
        return step_loss

    def validate(self) -> dict[str, float]:
        """Recall@eval_k (recsys.train_progress.validation_names) of all held-out pairs, of those of cold tracks,
        and of seed continuation, scored over the training graph with the training pairs masked."""
        self.model.eval()
        with torch.no_grad():  # the training graph is built for each validation, not held through the epochs
            pz, tz = self.model(*self.graphs.propagation(self.known_pairs), self.val_hide)
        config, known, held = self.config, self.known_pairs, self.held_pairs
        k, normalise, most = config.eval_k, config.loss.kind == "softmax", config.eval_max_playlists
        cold = held[:, self.val_cold[held[1]]]
        every, cold_name, seeded = validation_names(config)
        return {
            every: recall_at_k(pz, tz, known, held, k, normalise, most, torch.Generator().manual_seed(config.seed)),
            cold_name: recall_at_k(pz, tz, known, cold, k, normalise, most, torch.Generator().manual_seed(config.seed)),
            seeded: self.seed_validation.recall(tz, k),
        }

    def release_training_state(self) -> None:
        """Drop what only training steps use (optimiser moments, gradients, membership keys, the training pairs)
        before the final embeddings are computed: GBs at the Million Playlist Dataset's size."""
        self.opt.state.clear()
        self.model.zero_grad(set_to_none=True)
        self.members, self.partner = None, None
        none = torch.zeros((2, 0), dtype=torch.long)
        self.train_pairs = self.known_pairs = none

    def embeddings(self, state: dict[str, Tensor] | None) -> tuple[Tensor, Tensor]:
        """Playlist and track embeddings over all pairs, with the given weights (None: the current ones)."""
        if state is not None:
            self.model.load_state_dict(state)
        self.model.eval()
        with torch.no_grad():
            playlist_z, track_z = self.model(*self.graphs.propagation(self.all_pairs.to(self.device)))
        return playlist_z.cpu(), track_z.cpu()


def _train_epochs(run: _Run, catalog: Catalog, start: float) -> Progress:
    """Train epoch after epoch, validating every eval_every, until patience, the time budget or the last epoch."""
    config, ranks = run.config, run.ranks
    progress = Progress()
    bar = tqdm(
        range(1, config.epochs + 1), desc="training", disable=not config.progress or ranks.rank != 0, leave=False
    )
    for epoch in bar:
        epoch_start = time.perf_counter()
        progress.epochs_run = epoch
        progress.last_loss, loss_seconds = run.epoch()
        if not np.isfinite(progress.last_loss):
            raise unstable_error(f"training diverged at epoch {epoch} (loss {progress.last_loss})", catalog, config)
        progress.epoch_seconds.append(time.perf_counter() - epoch_start)
        progress.loss_seconds.append(loss_seconds)
        if epoch % config.eval_every != 0 and epoch != config.epochs:
            bar.set_postfix(loss=f"{progress.last_loss:.4f}")
            continue
        measured = run.validate()
        *agreed, elapsed = ranks.agree(*measured.values(), time.perf_counter() - start)
        values = dict(zip(measured, agreed, strict=True))
        score = stopping_score(values, config)
        progress.keep_if_best(values, score, epoch, run.model)
        bar.set_postfix(loss=f"{progress.last_loss:.4f}", val_score=f"{score:.4f}")
        if progress.should_stop(epoch, elapsed, config):
            break
    bar.close()
    return progress


def fit(catalog: Catalog, config: TrainConfig, listeners: ListenerNodes | None = None) -> TrainResult:
    """Train the configured model on the catalogue (and the listener nodes, if any: recsys.listeners) and return
    serving embeddings over all its pairs, the listeners' apart from the playlists'.

    Each optimisation step propagates over the whole graph once (a sparse CSR product per layer), then computes
    the ranking loss in chunks of batch_size positives, accumulating its gradient on the detached embeddings,
    and finally back-propagates that gradient through the propagation once: memory stays bounded by the chunk,
    however large the step's batch. Inside an initialised torch.distributed group (torchrun), every rank holds
    the whole graph and the same random draws, takes every world-th chunk of the loss, and
    DistributedDataParallel averages the gradients: the same steps as one process, split across processes.
    """
    check_trainable(catalog)
    start = time.perf_counter()
    listeners = listeners or no_listeners()
    run = _Run(catalog, config, Ranks.current(), listeners)
    progress = _train_epochs(run, catalog, start)
    check_validated(progress.best_values[validation_names(config)[0]], catalog, run.val_pairs, config)
    run.release_training_state()
    playlist_z, track_z = run.embeddings(progress.best_state)
    if not (torch.isfinite(playlist_z).all() and torch.isfinite(track_z).all()):
        raise unstable_error("training produced non-finite embeddings", catalog, config)
    seconds = time.perf_counter() - start
    metrics = progress.metrics(config, run.ranks)
    assert tuple(metrics) == metric_names(config), "metric_names() must list what fit() records"
    log.info("trained %s in %.1fs: %s", config.model.kind, seconds, metrics)
    # copy=False: float32 already, and a copy of every embedding is GBs at the Million Playlist Dataset's size.
    node_z = F.normalize(playlist_z, dim=-1).numpy().astype(np.float32, copy=False)  # [P + L, d]
    return TrainResult(
        playlist_z=node_z[: catalog.num_playlists],
        track_z=F.normalize(track_z, dim=-1).numpy().astype(np.float32, copy=False),
        inputs=run.inputs,
        metrics=metrics,
        train_seconds=seconds,
        listeners=listeners,
        listener_z=node_z[catalog.num_playlists :],
    )
