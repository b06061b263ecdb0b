"""Score every task of a split with any Scorer, run models over seeded splits, and summarise with bootstrap CIs."""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from recsys.baselines import MODELS, Scorer
from recsys.config import TrainConfig
from recsys.data import Catalog
from recsys.evaluation.metrics import (
    bootstrap_mean_ci,
    ndcg_at_k,
    precision_at_k,
    r_precision,
    recall_at_k,
    recall_curve,
)
from recsys.evaluation.splits import Split, SplitConfig, make_split
from recsys.names import song_groups
from recsys.ranking import top_k

log = logging.getLogger(__name__)

CURVE_K = 100  # the report plots Recall@k for k = 1..CURVE_K
CONTINUATION_K = 20
SIMILAR_K = 10
NEW_K = 20


class Served:
    """What the product would show for any scorer's scores: recsys.ranking.top_k (one version per song) with the
    exclusions each Snapshot method applies. The evaluation scores these lists, so what is evaluated is what is
    served. Each method returns up to k track rows, best first."""

    def __init__(self, scorer: Scorer, catalog: Catalog) -> None:
        _check_alignment(scorer, catalog)
        self.scorer = scorer
        self.pos, self.pl_pos = catalog.track_index(), catalog.playlist_index()
        self.songs = song_groups(catalog.track_names.tolist(), catalog.track_artists.tolist())
        order = np.argsort(catalog.edges[0], kind="stable")
        self._ptr = np.searchsorted(catalog.edges[0][order], np.arange(catalog.num_playlists + 1))
        self._members = catalog.edges[1][order]

    def _top(self, scores: np.ndarray, k: int, exclude: np.ndarray) -> np.ndarray:
        return np.array(top_k(scores, k, exclude, self.songs), dtype=np.int64)

    def continuation(self, playlist_id: str, k: int) -> np.ndarray:
        """recommend_for_playlist: the playlist's own tracks excluded."""
        p = self.pl_pos[playlist_id]
        return self._top(self.scorer.playlist_scores(playlist_id), k, self._members[self._ptr[p] : self._ptr[p + 1]])

    def similar(self, track_id: str, k: int) -> np.ndarray:
        """similar_tracks: the song itself and its other versions excluded."""
        q = self.pos[track_id]
        return self._top(self.scorer.track_scores(track_id), k, np.flatnonzero(self.songs == self.songs[q]))

    def new_playlist(self, seeds: list[str], k: int) -> np.ndarray:
        """recommend_for_tracks: the seeds excluded."""
        seed_rows = np.array(sorted({self.pos[t] for t in seeds}), dtype=np.int64)
        return self._top(self.scorer.seed_scores(seeds), k, seed_rows)


def _hits(ranked: np.ndarray, relevant: np.ndarray, k: int) -> np.ndarray:
    """[k] bool: whether each rank holds a relevant track (False past the end of a short list)."""
    out = np.zeros(k, dtype=bool)
    out[: len(ranked)] = np.isin(ranked, relevant)
    return out


def _check_alignment(scorer: Scorer, catalog: Catalog) -> None:
    if len(scorer.track_ids) != catalog.num_tracks or not np.array_equal(scorer.track_ids, catalog.track_ids):
        raise ValueError("the scorer's track_ids are not the training catalogue's; score vectors would misalign")


def evaluate_continuation(scorer: Scorer, split: Split) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Per-playlist metrics of continuing training playlists with their held-out tracks, and the recall curve."""
    catalog = split.catalog
    served = Served(scorer, catalog)
    degree = catalog.track_degrees()
    max_targets = max((len(t) for t in split.continuation.values()), default=1)
    k_rank = max(CURVE_K, max_targets)
    rows_all, rows_cold, counts_all, counts_cold = [], [], [], []
    for playlist_id, targets in split.continuation.items():
        target_idx = np.array([served.pos[t] for t in targets], dtype=np.int64)
        ranked = served.continuation(playlist_id, k_rank)
        is_target = _hits(ranked, target_idx, k_rank)
        rows_all.append(is_target)
        rows_cold.append(_hits(ranked, target_idx[degree[target_idx] == 0], k_rank))
        counts_all.append(len(target_idx))
        counts_cold.append(int((degree[target_idx] == 0).sum()))
    hits = np.array(rows_all)  # [num_playlists, k_rank] bool
    hits_cold = np.array(rows_cold)
    n_all = np.array(counts_all)
    n_cold = np.array(counts_cold)
    subsets = {"": (hits, n_all), "/cold": (hits_cold, n_cold), "/warm": (hits & ~hits_cold, n_all - n_cold)}
    out: dict[str, np.ndarray] = {}
    k = CONTINUATION_K
    for suffix, (h, n) in subsets.items():
        out[f"continuation/recall@{k}{suffix}"] = recall_at_k(h, n, k)
        out[f"continuation/ndcg@{k}{suffix}"] = ndcg_at_k(h, n, k)
        out[f"continuation/r_precision{suffix}"] = r_precision(h, n)
    return out, recall_curve(hits[:, :CURVE_K], n_all)


def evaluate_similar(scorer: Scorer, split: Split) -> dict[str, np.ndarray]:
    """Per-query metrics of similar songs: held-out tracks against their full-data playlist neighbours."""
    served = Served(scorer, split.catalog)
    degree = split.catalog.track_degrees()
    rows, counts, cold = [], [], []
    for query, relevant in split.similar.items():
        ranked = served.similar(query, SIMILAR_K)
        rows.append(_hits(ranked, np.array([served.pos[t] for t in relevant]), SIMILAR_K))
        counts.append(len(relevant))
        cold.append(degree[served.pos[query]] == 0)
    hits, n, is_cold = np.array(rows), np.array(counts), np.array(cold, dtype=bool)
    out: dict[str, np.ndarray] = {}
    k = SIMILAR_K
    for name, fn in (("precision", precision_at_k), ("ndcg", ndcg_at_k)):
        values = fn(hits, n, k)
        out[f"similar/{name}@{k}"] = values
        out[f"similar/{name}@{k}/cold"] = np.where(is_cold, values, np.nan)
        out[f"similar/{name}@{k}/warm"] = np.where(~is_cold, values, np.nan)
    return out


def evaluate_new_playlists(scorer: Scorer, split: Split) -> dict[str, np.ndarray]:
    """Per-playlist metrics of continuing held-out playlists from their first seed tracks."""
    served = Served(scorer, split.catalog)
    rows, counts = [], []
    for seeds, targets in split.new_playlists.values():
        ranked = served.new_playlist(seeds, NEW_K)
        rows.append(_hits(ranked, np.array([served.pos[t] for t in targets]), NEW_K))
        counts.append(len(targets))
    hits, n = np.array(rows), np.array(counts)
    return {f"new/recall@{NEW_K}": recall_at_k(hits, n, NEW_K), f"new/ndcg@{NEW_K}": ndcg_at_k(hits, n, NEW_K)}


@dataclass
class SplitScores:
    """One model on one split: per-query metric values, the continuation recall curve, and timings."""

    values: dict[str, np.ndarray]
    curve: np.ndarray  # [CURVE_K] mean continuation Recall@k
    fit_seconds: float
    eval_seconds: float


def evaluate_scorer(scorer: Scorer, split: Split) -> SplitScores:
    """All three tasks of one split for an already fitted scorer."""
    start = time.perf_counter()
    values, curve = evaluate_continuation(scorer, split)
    values |= evaluate_similar(scorer, split)
    values |= evaluate_new_playlists(scorer, split)
    return SplitScores(values, curve, fit_seconds=float("nan"), eval_seconds=time.perf_counter() - start)


@dataclass
class ModelResult:
    """One model over every seed."""

    name: str
    per_seed: list[SplitScores] = field(default_factory=list)

    def summary(self, num_resamples: int = 1000) -> dict[str, tuple[float, float, float]]:
        """metric -> (mean over seeds, 95% CI low, high), bootstrapping queries within each seed."""
        names = self.per_seed[0].values.keys() if self.per_seed else []
        return {m: bootstrap_mean_ci([s.values[m] for s in self.per_seed], num_resamples) for m in names}

    def curve(self) -> np.ndarray:
        return np.mean([s.curve for s in self.per_seed], axis=0)

    def fit_seconds(self) -> float:
        return float(np.mean([s.fit_seconds for s in self.per_seed]))

    def eval_seconds(self) -> float:
        return float(np.mean([s.eval_seconds for s in self.per_seed]))


def run_evaluation(
    data: str | os.PathLike[str] | None,
    seeds: Sequence[int] = (0, 1, 2),
    models: Iterable[str] | None = None,
    split_config: SplitConfig | None = None,
    workdir: str | os.PathLike[str] | None = None,
    factories: dict[str, Callable[[Catalog, int], Scorer]] | None = None,
    progress: bool = True,
) -> list[ModelResult]:
    """Fit and evaluate each model on the split of every seed (split CSVs under workdir, else a temp dir)."""
    factories = factories or MODELS
    names = list(models) if models is not None else list(factories)
    unknown = [n for n in names if n not in factories]
    if unknown:
        raise ValueError(f"unknown model(s) {', '.join(unknown)}; expected some of {', '.join(factories)}")
    results = [ModelResult(n) for n in names]
    with tempfile.TemporaryDirectory(prefix="musicrec-eval-") as tmp:
        root = Path(workdir) if workdir is not None else Path(tmp)
        for seed in seeds:
            split = make_split(data, seed, root / f"seed{seed}", split_config)
            for result in results:
                start = time.perf_counter()
                scorer = factories[result.name](split.catalog, seed)
                fit_seconds = time.perf_counter() - start
                scores = evaluate_scorer(scorer, split)
                scores.fit_seconds = fit_seconds
                result.per_seed.append(scores)
                if progress:
                    v = scores.values
                    print(
                        f"seed {seed} {result.name:<13} fit {fit_seconds:6.1f}s eval {scores.eval_seconds:5.1f}s  "
                        f"R@20 {np.nanmean(v['continuation/recall@20']):.4f} "
                        f"cold {np.nanmean(v['continuation/recall@20/cold']):.4f}  "
                        f"simP@10 {np.nanmean(v['similar/precision@10']):.4f}  "
                        f"newR@20 {np.nanmean(v['new/recall@20']):.4f}",
                        file=sys.stderr,
                        flush=True,
                    )
    return results


def validation_split(
    data: str | os.PathLike[str] | None, seed: int, out_dir: str | os.PathLike[str], config: SplitConfig | None = None
) -> Split:
    """The inner validation split for tuning: seed's test split is cut off first, and its training part split
    again. Nothing of the test split's held-out pairs can reach a model tuned here."""
    outer = make_split(data, seed, Path(out_dir) / "outer", config)
    return make_split(outer.train_csv, seed, Path(out_dir) / "inner", config)


def quick_validation(
    data: str | os.PathLike[str] | None,
    config: TrainConfig | None = None,
    seed: int = 0,
    split_config: SplitConfig | None = None,
) -> dict[str, float]:
    """Train `config` on the inner validation split of seed's test split and return mean validation metrics
    (continuation Recall@20 overall/cold/warm and NDCG@20, similar-songs P@10, new-playlist Recall@20)."""
    import recsys

    config = dataclasses.replace(config or TrainConfig(), seed=seed)
    with tempfile.TemporaryDirectory(prefix="musicrec-val-") as tmp:
        split = validation_split(data, seed, tmp, split_config)
        start = time.perf_counter()
        scorer = recsys.train_catalog(split.catalog, config)
        fit_seconds = time.perf_counter() - start
        scores = evaluate_scorer(scorer, split)
    keys = (
        "continuation/recall@20",
        "continuation/recall@20/cold",
        "continuation/recall@20/warm",
        "continuation/ndcg@20",
        "similar/precision@10",
        "similar/precision@10/cold",
        "new/recall@20",
    )
    out = {key: float(np.nanmean(scores.values[key])) for key in keys}
    out["train_seconds"] = fit_seconds
    return out
