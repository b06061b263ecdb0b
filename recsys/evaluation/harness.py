"""Score every task of a split with any Scorer, run models over seeded splits, and summarise with bootstrap CIs.

A model scores the tasks it has methods for (a text-only baseline just the text task); the others read n/a."""

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
from typing import cast

import numpy as np

from recsys.baselines import MODELS, TEXT_MODELS, Scorer, TextScorer
from recsys.config import TrainConfig
from recsys.data import Catalog
from recsys.errors import InvalidQueryError
from recsys.evaluation.metrics import (
    bootstrap_mean_ci,
    coverage,
    distinct_per_list,
    mean_per_list,
    ndcg_at_k,
    precision_at_k,
    r_precision,
    recall_at_k,
    recall_curve,
)
from recsys.evaluation.splits import Split, SplitConfig, make_split
from recsys.names import artist_groups, song_groups
from recsys.ranking import UNCAPPED, ListConfig
from recsys.rule import top_k

log = logging.getLogger(__name__)

CURVE_K = 100  # the report plots Recall@k for k = 1..CURVE_K
CONTINUATION_K = 20
SIMILAR_K = 10
NEW_K = 20
TEXT_K = 20
# The tasks, each with the scorer method it needs.
TASKS = {"continuation": "playlist_scores", "similar": "track_scores", "new": "seed_scores", "text": "text_scores"}
ALL_MODELS: dict[str, Callable[[Catalog, int], Scorer | TextScorer]] = {**MODELS, **TEXT_MODELS}
_NAN = (float("nan"), float("nan"), float("nan"))
ARTISTS_K = 10  # distinct artists are counted in the top 10 of every task's lists, the length people look at


class Served:
    """What the product would show for any scorer's scores: recsys.ranking.top_k (one version per song) with the
    exclusions each Snapshot method applies. The evaluation scores these lists, so what is evaluated is what is
    served. Each method returns up to k track rows, best first. A scorer with a `lists` ListConfig (a Snapshot) is
    ranked with its artist cap and popularity preference, as it serves; baselines have none and are ranked as is."""

    def __init__(self, scorer: Scorer | TextScorer, catalog: Catalog) -> None:
        _check_alignment(scorer, catalog)
        self.scorer = scorer
        self.pos, self.pl_pos = catalog.track_index(), catalog.playlist_index()
        self.songs = song_groups(catalog.track_names.tolist(), catalog.track_artists.tolist())
        lists = getattr(scorer, "lists", None)
        self.lists = lists if isinstance(lists, ListConfig) else UNCAPPED
        self.artists = artist_groups(catalog.track_artists.tolist())  # as Snapshot's
        self.popularity = catalog.popularity
        order = np.argsort(catalog.edges[0], kind="stable")
        self._ptr = np.searchsorted(catalog.edges[0][order], np.arange(catalog.num_playlists + 1))
        self._members = catalog.edges[1][order]

    def _top(self, scores: np.ndarray, k: int, exclude: np.ndarray, cap: int | None = None) -> np.ndarray:
        scores = self.lists.adjust(scores, self.popularity)
        cap = self.lists.max_per_artist if cap is None else cap
        return np.array(top_k(scores, k, exclude, self.songs, self.artists, cap), dtype=np.int64)

    def continuation(self, playlist_id: str, k: int) -> np.ndarray:
        """recommend_for_playlist: the playlist's own tracks excluded."""
        p = self.pl_pos[playlist_id]
        return self._top(
            cast(Scorer, self.scorer).playlist_scores(playlist_id), k, self._members[self._ptr[p] : self._ptr[p + 1]]
        )

    def similar(self, track_id: str, k: int) -> np.ndarray:
        """similar_tracks: the song itself and its other versions excluded."""
        q = self.pos[track_id]
        scores = cast(Scorer, self.scorer).track_scores(track_id)
        return self._top(scores, k, np.flatnonzero(self.songs == self.songs[q]), self.lists.similar_max_per_artist)

    def new_playlist(self, seeds: list[str], k: int) -> np.ndarray:
        """recommend_for_tracks: the seeds excluded."""
        seed_rows = np.array(sorted({self.pos[t] for t in seeds}), dtype=np.int64)
        return self._top(cast(Scorer, self.scorer).seed_scores(seeds), k, seed_rows)

    def text(self, text: str, k: int) -> np.ndarray:
        """recommend_for_text: nothing excluded; a query with no known word gets an empty list (recall 0)."""
        try:
            scores = cast(TextScorer, self.scorer).text_scores(text)
            return self._top(scores, k, np.zeros(0, dtype=np.int64), self.lists.text_max_per_artist)
        except InvalidQueryError:
            return np.zeros(0, dtype=np.int64)


def _hits(ranked: np.ndarray, relevant: np.ndarray, k: int) -> np.ndarray:
    """[k] bool: whether each rank holds a relevant track (False past the end of a short list)."""
    out = np.zeros(k, dtype=bool)
    out[: len(ranked)] = np.isin(ranked, relevant)
    return out


def _check_alignment(scorer: Scorer | TextScorer, catalog: Catalog) -> None:
    if len(scorer.track_ids) != catalog.num_tracks or not np.array_equal(scorer.track_ids, catalog.track_ids):
        raise ValueError("the scorer's track_ids are not the training catalogue's; score vectors would misalign")


def is_task_wide(metric: str) -> bool:
    """Whether a metric holds one value for a whole task per seed (catalogue coverage), not one per query."""
    return "/coverage@" in metric


def list_values(
    task: str, lists: Sequence[np.ndarray], targets: Sequence[np.ndarray], catalog: Catalog, k: int
) -> dict[str, np.ndarray]:
    """What one task's served top-k lists are like beside their accuracy: distinct artists (recsys.names.artist_keys)
    in the top 10 and mean Spotify popularity per query; the share of the catalogue shown over all queries (one
    value, the whole task); and for reference the mean popularity of each query's held-out targets."""
    artists = artist_groups(catalog.track_artists.tolist())  # [T] artist number
    top = [rows[:k] for rows in lists]
    return {
        f"{task}/artists@{ARTISTS_K}": distinct_per_list(top, artists, ARTISTS_K),
        f"{task}/coverage@{k}": np.array([coverage(top, catalog.num_tracks)]),
        f"{task}/popularity@{k}": mean_per_list(top, catalog.popularity),
        f"{task}/target_popularity": mean_per_list(targets, catalog.popularity),
    }


def evaluate_continuation(scorer: Scorer, split: Split) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Per-playlist metrics of continuing training playlists with their held-out tracks, and the recall curve."""
    catalog = split.catalog
    served = Served(scorer, catalog)
    degree = catalog.track_degrees()
    max_targets = max((len(t) for t in split.continuation.values()), default=1)
    k_rank = max(CURVE_K, max_targets)
    rows_all, rows_cold, counts_all, counts_cold = [], [], [], []
    lists, target_lists = [], []
    for playlist_id, targets in split.continuation.items():
        target_idx = np.array([served.pos[t] for t in targets], dtype=np.int64)
        ranked = served.continuation(playlist_id, k_rank)
        lists.append(ranked)
        target_lists.append(target_idx)
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
    out |= list_values("continuation", lists, target_lists, catalog, k)
    return out, recall_curve(hits[:, :CURVE_K], n_all)


def evaluate_similar(scorer: Scorer, split: Split) -> dict[str, np.ndarray]:
    """Per-query metrics of similar songs: held-out tracks against their full-data playlist neighbours."""
    served = Served(scorer, split.catalog)
    degree = split.catalog.track_degrees()
    rows, counts, cold = [], [], []
    lists, target_lists = [], []
    for query, relevant in split.similar.items():
        ranked = served.similar(query, SIMILAR_K)
        relevant_idx = np.array([served.pos[t] for t in relevant], dtype=np.int64)
        lists.append(ranked)
        target_lists.append(relevant_idx)
        rows.append(_hits(ranked, relevant_idx, SIMILAR_K))
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
    return out | list_values("similar", lists, target_lists, split.catalog, k)


def evaluate_new_playlists(scorer: Scorer, split: Split) -> dict[str, np.ndarray]:
    """Per-playlist metrics of continuing held-out playlists from their first seed tracks."""
    served = Served(scorer, split.catalog)
    rows, counts = [], []
    lists, target_lists = [], []
    for seeds, targets in split.new_playlists.values():
        ranked = served.new_playlist(seeds, NEW_K)
        target_idx = np.array([served.pos[t] for t in targets], dtype=np.int64)
        lists.append(ranked)
        target_lists.append(target_idx)
        rows.append(_hits(ranked, target_idx, NEW_K))
        counts.append(len(targets))
    hits, n = np.array(rows), np.array(counts)
    out = {f"new/recall@{NEW_K}": recall_at_k(hits, n, NEW_K), f"new/ndcg@{NEW_K}": ndcg_at_k(hits, n, NEW_K)}
    return out | list_values("new", lists, target_lists, split.catalog, NEW_K)


def evaluate_text(scorer: TextScorer, split: Split) -> dict[str, np.ndarray]:
    """Per-playlist metrics of the held-out playlists queried by their name alone ("title only"): every track of
    the playlist is relevant."""
    served = Served(scorer, split.catalog)
    rows, counts, lists, target_lists = [], [], [], []
    for playlist_id, (seeds, targets) in split.new_playlists.items():
        ranked = served.text(split.new_playlist_names.get(playlist_id, ""), TEXT_K)
        relevant = np.array([served.pos[t] for t in dict.fromkeys([*seeds, *targets])], dtype=np.int64)
        rows.append(_hits(ranked, relevant, TEXT_K))
        counts.append(len(relevant))
        lists.append(ranked)
        target_lists.append(relevant)
    hits, n = np.array(rows).reshape(-1, TEXT_K), np.array(counts)
    out = {f"text/recall@{TEXT_K}": recall_at_k(hits, n, TEXT_K), f"text/ndcg@{TEXT_K}": ndcg_at_k(hits, n, TEXT_K)}
    return out | list_values("text", lists, target_lists, split.catalog, TEXT_K)


@dataclass
class SplitScores:
    """One model on one split: per-query metric values (a task-wide one, see is_task_wide: a single value), the
    continuation recall curve, and timings."""

    values: dict[str, np.ndarray]
    curve: np.ndarray  # [CURVE_K] mean continuation Recall@k
    fit_seconds: float
    eval_seconds: float


def evaluate_scorer(scorer: Scorer | TextScorer, split: Split, tasks: Iterable[str] = tuple(TASKS)) -> SplitScores:
    """The tasks (default all) of one split that an already fitted scorer has the methods for."""
    start = time.perf_counter()
    can = {t for t in tasks if callable(getattr(scorer, TASKS[t], None))}
    values: dict[str, np.ndarray] = {}
    curve = np.full(CURVE_K, np.nan)
    if "continuation" in can:
        values, curve = evaluate_continuation(cast(Scorer, scorer), split)
    if "similar" in can:
        values |= evaluate_similar(cast(Scorer, scorer), split)
    if "new" in can:
        values |= evaluate_new_playlists(cast(Scorer, scorer), split)
    if "text" in can:
        values |= evaluate_text(cast(TextScorer, scorer), split)
    return SplitScores(values, curve, fit_seconds=float("nan"), eval_seconds=time.perf_counter() - start)


class _Summary(dict[str, tuple[float, float, float]]):
    """A summary whose missing metrics (tasks a model cannot score) read as NaN: n/a in the report."""

    def __missing__(self, key: str) -> tuple[float, float, float]:
        return _NAN


@dataclass
class ModelResult:
    """One model over every seed."""

    name: str
    per_seed: list[SplitScores] = field(default_factory=list)

    def summary(self, num_resamples: int = 1000) -> dict[str, tuple[float, float, float]]:
        """metric -> (mean over seeds, 95% CI low, high), bootstrapping queries within each seed; for a task-wide
        metric (one value per seed) -> (mean, lowest, highest over seeds)."""
        names = self.per_seed[0].values.keys() if self.per_seed else []
        out = _Summary()
        for m in names:
            if is_task_wide(m):
                per_seed = [float(s.values[m][0]) for s in self.per_seed]
                out[m] = (float(np.mean(per_seed)), min(per_seed), max(per_seed))
            else:
                out[m] = bootstrap_mean_ci([s.values[m] for s in self.per_seed], num_resamples)
        return _Summary(out)  # a metric of a task the model did not score reads NaN (n/a)

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
    factories: dict[str, Callable[[Catalog, int], Scorer | TextScorer]] | None = None,
    progress: bool = True,
    tasks: Iterable[str] = tuple(TASKS),
) -> list[ModelResult]:
    """Fit and evaluate each model on the tasks (default all) of the split of every seed (split CSVs under workdir,
    else a temp dir)."""
    factories = factories or ALL_MODELS
    tasks = list(tasks)
    if not set(tasks) <= set(TASKS):
        raise ValueError(
            f"unknown task(s) {', '.join(sorted(set(tasks) - set(TASKS)))}; expected some of {', '.join(TASKS)}"
        )
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
                scores = evaluate_scorer(scorer, split, tasks)
                scores.fit_seconds = fit_seconds
                result.per_seed.append(scores)
                if progress:
                    v = scores.values
                    shown = " ".join(f"{label} {np.nanmean(v[key]):.4f}" for label, key in _PROGRESS if key in v)
                    print(
                        f"seed {seed} {result.name:<13} fit {fit_seconds:6.1f}s eval {scores.eval_seconds:5.1f}s  "
                        + shown,
                        file=sys.stderr,
                        flush=True,
                    )
    return results


_PROGRESS = (
    ("R@20", "continuation/recall@20"),
    ("cold", "continuation/recall@20/cold"),
    ("simP@10", "similar/precision@10"),
    ("newR@20", "new/recall@20"),
    ("textR@20", "text/recall@20"),
)


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
