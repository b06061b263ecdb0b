"""Listeners benchmark: does liking and disliking songs make /forme better, and do listener nodes cost quality?

python bench/bench_listeners.py --data /path/to/spotify_songs.csv [--out docs/listeners.md] [--seeds 0 1 2 3 4]
python bench/bench_listeners.py --data ... --tune      # choose recsys.ratings.RatingsConfig on the inner split

Simulated listeners are the playlists a seeded split holds out whole (recsys.evaluation.make_split's
new_playlists). Each starts from one liked song (its playlist's first track) and asks /forme for 10 songs
(Snapshot.recommend_for_ratings with its likes, dislikes and everything shown so far as `shown`) 5 times; after each
round it likes the shown songs of its playlist and dislikes the 2 best-ranked others. Then the model is retrained
with these listeners as listener nodes (recsys.train_catalog(split catalogue, listeners=...)) and a 6th round is
asked with listener_id set. Hit rate@10 = share of the 10 shown songs in the listener's playlist. No feedback: the
same rounds from the single first like, never rating, each round the next 10 of recommend_for_tracks([first]) (what
was shown is excluded). Playlist continuation Recall@20 of the model trained with and without the listener nodes is
measured on the same split (recsys.evaluation's harness). Seeded: the same command gives the same report.
"""

from __future__ import annotations

import os

# Serving as the bot serves (bot/__main__.py): single-threaded BLAS for one query vector.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import dataclasses
import itertools
import platform
import shlex
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

import recsys
from recsys import ratings
from recsys.evaluation.harness import CONTINUATION_K, evaluate_continuation, validation_split
from recsys.evaluation.metrics import bootstrap_mean_ci
from recsys.evaluation.splits import Split, make_split

BEGIN, END = "<!-- begin listeners -->", "<!-- end listeners -->"
K = 10  # songs per /forme answer
ROUNDS = 5  # rounds before the retrain
DISLIKES_PER_ROUND = 2
GOAL_LIFT = 1.5  # after 5 rounds and a retrain, hit rate@10 at least this times the no-feedback figure
# The default model, without the wall-clock budget: on a busy machine the budget would end training at a different
# epoch and the report would depend on the load. 600 s is far above what early stopping takes on this data.
CONFIG = recsys.TrainConfig(progress=False, max_seconds=600.0)

Recommend = Callable[[list[str], list[str], list[str], str | None], list[str]]


@dataclass
class Listener:
    """One simulated listener: a held-out playlist, its first track liked, and what it rated and was shown."""

    listener_id: str
    playlist: frozenset[str]  # the held-out playlist's tracks: what counts as a hit
    likes: list[str]
    dislikes: list[str] = field(default_factory=list)
    shown: list[str] = field(default_factory=list)

    def ratings(self) -> recsys.ListenerRatings:
        return recsys.ListenerRatings(tuple(self.likes), tuple(self.dislikes))


def listeners_of(split: Split) -> list[Listener]:
    out = []
    for playlist_id, (seeds, targets) in split.new_playlists.items():
        tracks = [*seeds, *targets]
        out.append(Listener(f"sim:{playlist_id}", frozenset(tracks[1:]), [tracks[0]]))
    return out


def ask(listener: Listener, recommend: Recommend, listener_id: str | None = None, rate: bool = True) -> float:
    """One /forme round: its hit rate@10; the listener then rates (likes hits, dislikes the 2 best-ranked misses)."""
    shown = recommend(listener.likes, listener.dislikes, listener.shown, listener_id)
    listener.shown.extend(shown)
    hits = [t for t in shown if t in listener.playlist]
    if rate:
        listener.likes.extend(hits)
        listener.dislikes.extend([t for t in shown if t not in listener.playlist][:DISLIKES_PER_ROUND])
    return len(hits) / K


def served(snap: recsys.Snapshot, seconds: list[float] | None = None) -> Recommend:
    """What the bot's /forme serves: Snapshot.recommend_for_ratings (each call's seconds appended to `seconds`)."""

    def recommend(likes: list[str], dislikes: list[str], shown: list[str], listener_id: str | None) -> list[str]:
        start = time.perf_counter()
        recs = snap.recommend_for_ratings(likes, dislikes, K, listener_id=listener_id, shown=shown)
        if seconds is not None:
            seconds.append(time.perf_counter() - start)
        return [r.track_id for r in recs]

    return recommend


def with_config(snap: recsys.Snapshot, config: ratings.RatingsConfig) -> Recommend:
    """The same rule with another RatingsConfig (for --tune): recsys.ratings.for_ratings."""
    pos = {str(t): i for i, t in enumerate(snap.track_ids.tolist())}
    listener_pos = {str(t): i for i, t in enumerate(snap.listener_ids.tolist())}

    def rows(ids: list[str]) -> np.ndarray:
        return np.array(list(dict.fromkeys(pos[t] for t in ids)), dtype=np.int64)

    def recommend(likes: list[str], dislikes: list[str], shown: list[str], listener_id: str | None) -> list[str]:
        listener = listener_pos.get(listener_id) if listener_id else None
        picks = ratings.for_ratings(snap, rows(likes), rows(dislikes), listener, rows(shown), K, config)
        return [str(snap.track_ids[i]) for i in picks[0]]

    return recommend


def no_feedback(snap: recsys.Snapshot, listeners: list[Listener]) -> np.ndarray:
    """[num_listeners, ROUNDS + 1] hit rates when the listener never rates: the next 10 songs each round."""
    out = np.zeros((len(listeners), ROUNDS + 1))
    for i, lst in enumerate(listeners):
        ranked = [r.track_id for r in snap.recommend_for_tracks(lst.likes[:1], k=K * (ROUNDS + 1))]
        for r in range(ROUNDS + 1):
            out[i, r] = sum(t in lst.playlist for t in ranked[r * K : (r + 1) * K]) / K
    return out


@dataclass
class SeedResult:
    """One split seed: per-listener hit rates by condition, continuation recall with and without listener nodes."""

    rounds: np.ndarray  # [n, ROUNDS] with feedback, before the retrain
    before: np.ndarray  # [n] round 6 with feedback, no retrain
    after: np.ndarray  # [n] round 6 after the retrain, recommend_for_ratings with listener_id
    node_only: np.ndarray  # [n] round 6 after the retrain, recommend_for_listener
    baseline: np.ndarray  # [n, ROUNDS + 1] no feedback
    recall: dict[str, np.ndarray]  # "without" / "with" -> per-playlist continuation Recall@20
    recall_cold: dict[str, np.ndarray]
    val_recall: dict[str, float]
    likes: float  # mean likes per listener at the retrain
    dislikes: float
    joined: int  # listeners with a node
    train_seconds: dict[str, float]
    epochs: dict[str, float]  # epochs run (early stopping)
    query_seconds: list[float]  # recommend_for_ratings, round 6 after the retrain


def simulate(snap: recsys.Snapshot, listeners: list[Listener], recommend: Recommend) -> np.ndarray:
    """Rounds 1..ROUNDS with feedback on the snapshot: [n, ROUNDS] hit rates (the listeners keep their state)."""
    return np.array([[ask(lst, recommend) for _ in range(ROUNDS)] for lst in listeners]).reshape(-1, ROUNDS)


def round_six(listeners: list[Listener], recommend: Recommend, listener_id: bool) -> np.ndarray:
    """Round 6 on copies of the listeners (each condition starts from the same state). [n]"""
    return np.array(
        [
            ask(
                dataclasses.replace(lst, shown=list(lst.shown)),
                recommend,
                lst.listener_id if listener_id else None,
                False,
            )
            for lst in listeners
        ]
    )


def run_seed(data: Path, seed: int, work: Path) -> SeedResult:
    split = make_split(data, seed, work / f"seed{seed}")
    start = time.perf_counter()
    base = recsys.train_catalog(split.catalog, CONFIG)
    base_s = time.perf_counter() - start
    listeners = listeners_of(split)
    baseline = no_feedback(base, listeners)
    rounds = simulate(base, listeners, served(base))
    before = round_six(listeners, served(base), listener_id=False)
    start = time.perf_counter()
    retrained = recsys.train_catalog(
        split.catalog, CONFIG, listeners={lst.listener_id: lst.ratings() for lst in listeners}
    )
    retrain_s = time.perf_counter() - start
    query_seconds: list[float] = []
    after = round_six(listeners, served(retrained, query_seconds), listener_id=True)
    node_only = np.array(
        [
            sum(r.track_id in lst.playlist for r in retrained.recommend_for_listener(lst.listener_id, K)) / K
            for lst in listeners
        ]
    )
    recall, cold = {}, {}
    for name, snap in (("without", base), ("with", retrained)):
        values, _ = evaluate_continuation(snap, split)
        recall[name] = values[f"continuation/recall@{CONTINUATION_K}"]
        cold[name] = values[f"continuation/recall@{CONTINUATION_K}/cold"]
    result = SeedResult(
        rounds=rounds,
        before=before,
        after=after,
        node_only=node_only,
        baseline=baseline,
        recall=recall,
        recall_cold=cold,
        val_recall={
            n: s.info.metrics[f"val_recall@{CONFIG.eval_k}"] for n, s in (("without", base), ("with", retrained))
        },
        likes=float(np.mean([len(lst.likes) for lst in listeners])),
        dislikes=float(np.mean([len(lst.dislikes) for lst in listeners])),
        joined=retrained.info.num_listeners,
        train_seconds={"without": base_s, "with": retrain_s},
        epochs={n: s.info.metrics["epochs_run"] for n, s in (("without", base), ("with", retrained))},
        query_seconds=query_seconds,
    )
    print(
        f"seed {seed}: {len(listeners)} listeners, round 6 after retrain {after.mean():.3f} vs no feedback "
        f"{baseline[:, -1].mean():.3f}; R@20 {np.nanmean(recall['without']):.4f} -> {np.nanmean(recall['with']):.4f}",
        file=sys.stderr,
        flush=True,
    )
    return result


def ratio_ci(num: list[np.ndarray], den: list[np.ndarray], draws: int = 1000) -> tuple[float, float, float]:
    """Ratio of means (mean over seeds of each), with a paired bootstrap over listeners within each seed."""
    rng = np.random.default_rng(0)
    ratio = float(np.mean([n.mean() for n in num]) / np.mean([d.mean() for d in den]))
    out = np.zeros(draws)
    for i in range(draws):
        picks = [rng.integers(0, len(n), len(n)) for n in num]
        top = np.mean([n[p].mean() for n, p in zip(num, picks, strict=True)])
        bottom = np.mean([d[p].mean() for d, p in zip(den, picks, strict=True)])
        out[i] = top / bottom if bottom > 0 else np.nan
    low, high = np.nanquantile(out, [0.025, 0.975])
    return ratio, float(low), float(high)


def cell(values: list[np.ndarray]) -> str:
    mean, low, high = bootstrap_mean_ci(values)
    return f"{mean:.3f} ({low:.3f}–{high:.3f})"


def report(results: list[SeedResult], seeds: Sequence[int], data: Path, seconds: float, argv: Sequence[str]) -> str:
    base = [r.baseline for r in results]
    rows = []
    for i in range(ROUNDS):
        fb = cell([r.rounds[:, i] for r in results])
        rows.append(f"| {i + 1} | {cell([b[:, i] for b in base])} | {fb} | |")
    six = cell([b[:, ROUNDS] for b in base])
    rows.append(f"| 6, before the retrain | {six} | {cell([r.before for r in results])} | |")
    ratio, low, high = ratio_ci([r.after for r in results], [b[:, ROUNDS] for b in base])
    rows.append(
        f"| **6, after the retrain** (listener node + ratings) | {six} | **{cell([r.after for r in results])}** | "
        f"**{ratio:.2f}x ({low:.2f}–{high:.2f})** |"
    )
    rows.append(
        f"| 6, after the retrain, `recommend_for_listener` (node only) | {six} | "
        f"{cell([r.node_only for r in results])} | |"
    )
    met = "met" if ratio >= GOAL_LIFT else "not met"
    sure = (
        f"the whole interval is above {GOAL_LIFT}x"
        if low >= GOAL_LIFT
        else f"but the interval reaches down to {low:.2f}x: with {sum(len(r.after) for r in results)} listeners the "
        f"data cannot rule out a lift below {GOAL_LIFT}x"
        if ratio >= GOAL_LIFT
        else f"interval {low:.2f}–{high:.2f}"
    )
    recall_rows = [
        f"| continuation Recall@20 | {cell([r.recall['without'] for r in results])} | "
        f"{cell([r.recall['with'] for r in results])} |",
        f"| … cold targets | {cell([r.recall_cold['without'] for r in results])} | "
        f"{cell([r.recall_cold['with'] for r in results])} |",
        f"| validation Recall@20 (training's own, playlists only) | "
        f"{np.mean([r.val_recall['without'] for r in results]):.4f} | "
        f"{np.mean([r.val_recall['with'] for r in results]):.4f} |",
        "| training seconds (epochs run; mean per seed) | "
        + " | ".join(
            f"{np.mean([r.train_seconds[n] for r in results]):.1f} ({np.mean([r.epochs[n] for r in results]):.0f})"
            for n in ("without", "with")
        )
        + " |",
    ]
    ms = np.array([s for r in results for s in r.query_seconds]) * 1000
    n = sum(len(r.after) for r in results)
    command = "python bench/bench_listeners.py " + " ".join(shlex.quote(a) for a in argv)
    return "\n".join(
        [
            "# Listeners: likes, dislikes and listener nodes (bench/bench_listeners.py)",
            "",
            f"Written by `{command}` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC in {seconds / 60:.1f} min "
            f"({platform.machine()}, {os.cpu_count()} CPU cores, {torch.get_num_threads()} torch threads, torch "
            f"{torch.__version__}, single-threaded BLAS for queries). Data: `{data.name}`; split seeds "
            f"{', '.join(map(str, seeds))}; {n} simulated listeners in all "
            f"({np.mean([r.joined for r in results]):.0f} per seed joined training as listener nodes, with "
            f"{np.mean([r.likes for r in results]):.1f} likes and {np.mean([r.dislikes for r in results]):.1f} "
            "dislikes each on average).",
            "",
            "Simulated listeners are the playlists each split holds out whole (`make_split`'s new playlists, never "
            "trained on). Each starts from one liked song (its playlist's first track) and asks `/forme` for 10 "
            "songs (`Snapshot.recommend_for_ratings(likes, dislikes, 10, shown=everything shown so far)`) 5 times; "
            "after each round it likes the shown songs of its playlist and dislikes the 2 best-ranked others. Then "
            "the model is retrained with these listeners as listener nodes (`recsys.train_catalog(split catalogue, "
            "listeners=...)`) and round 6 is asked with `listener_id` set. **No feedback**: the same rounds from the "
            "single first like, never rating; each round shows the next 10 of `recommend_for_tracks([first like])` "
            "(what was shown is excluded); the model is the one trained without listeners. Hit rate@10 = share of "
            "the 10 shown songs in the listener's held-out playlist; mean over seeds of the mean over listeners, "
            "95% bootstrap interval in brackets (listeners resampled within each seed, 1000 draws); the lift is the "
            "ratio of the two means with a paired bootstrap interval. Training: the default model without its "
            f"wall-clock budget (`TrainConfig(max_seconds={CONFIG.max_seconds:g})`, so the machine's load cannot "
            "change where training stops).",
            "",
            "How listeners join the model (`recsys/listeners.py`): each listener is one more playlist-like node, "
            "linked to the catalogue tracks it liked, appended after the CSV's playlists for training only; its "
            "pairs pass messages and are loss targets like a playlist's but are never held out for validation, and "
            "its dislikes are half of its per-positive hard negatives (`recsys.loss.DISLIKED_SHARE`). After training "
            "the listener rows leave the playlist arrays for the snapshot's `listener_ids` / `listener_z` / "
            "`listener_likes` / `listener_dislikes`. `/forme` is `recsys.ratings.for_ratings`: the likes' seed score "
            "minus a weighted soft maximum over the dislikes, blended with the listener node's cosine when the "
            "model has one, shown songs ranked down; its weights (`RatingsConfig`) were chosen on the inner "
            "validation split with `--tune` (figures in `recsys/ratings.py`), never on the split reported here.",
            "",
            "## Hit rate@10 by round",
            "",
            BEGIN,
            "| round | no feedback | with feedback | lift |",
            "|---|---|---|---|",
            *rows,
            END,
            "",
            f"Goal: after 5 rounds and one retrain, hit rate@10 at least {GOAL_LIFT}x the no-feedback figure (round 6 "
            f"against round 6): **{met}** by the means ({ratio:.2f}x); {sure}.",
            "",
            f"`recommend_for_ratings` (round 6 after the retrain, with `listener_id`): p50 {np.percentile(ms, 50):.2f} "
            f"ms, p99 {np.percentile(ms, 99):.2f} ms over {len(ms)} calls.",
            "",
            "## Playlist continuation with and without listener nodes",
            "",
            "The same split's continuation task (`recsys.evaluation.harness`: 20% of each training playlist held "
            "out, the whole catalogue ranked by the served rule), for the model trained on the split's catalogue "
            "alone and the one trained with the listener nodes above.",
            "",
            "| metric | without listener nodes | with listener nodes |",
            "|---|---|---|",
            *recall_rows,
            "",
        ]
    )


def tune(data: Path, seeds: Sequence[int], work: Path) -> None:
    """Grid over RatingsConfig on the inner validation split (the test split's held-out playlists never seen):
    dislike_weight x shown_penalty on rounds 1-5, then listener_weight on round 6 after one retrain."""
    grid = list(itertools.product((0.0, 0.1, 0.25, 0.5, 1.0), (0.1, 0.25, 0.5, 2.0)))
    weights = (0.0, 0.25, 0.5, 0.75, 1.0)
    first: dict[tuple[float, float], list[float]] = {g: [] for g in grid}
    sixth: dict[float, list[float]] = {w: [] for w in weights}
    reference: list[float] = []  # no feedback, round 6
    default = ratings.RatingsConfig()
    for seed in seeds:
        split = validation_split(data, seed, work / f"tune{seed}")
        base = recsys.train_catalog(split.catalog, CONFIG)
        reference.append(float(no_feedback(base, listeners_of(split))[:, ROUNDS].mean()))
        for dislike_weight, penalty in grid:
            config = dataclasses.replace(default, dislike_weight=dislike_weight, shown_penalty=penalty)
            first[(dislike_weight, penalty)].append(
                float(simulate(base, listeners_of(split), with_config(base, config)).mean())
            )
        listeners = listeners_of(split)
        simulate(base, listeners, served(base))
        retrained = recsys.train_catalog(
            split.catalog, CONFIG, listeners={lst.listener_id: lst.ratings() for lst in listeners}
        )
        for w in weights:
            config = dataclasses.replace(default, listener_weight=w)
            sixth[w].append(float(round_six(listeners, with_config(retrained, config), listener_id=True).mean()))
        print(f"tune seed {seed} done", file=sys.stderr, flush=True)
    print("| dislike_weight | shown_penalty | hit rate@10, rounds 1-5 |\n|---|---|---|")
    for (d, p), values in first.items():
        print(f"| {d:g} | {p:g} | {np.mean(values):.4f} |")
    print("\n| listener_weight | hit rate@10, round 6 after the retrain |\n|---|---|")
    for w, values in sixth.items():
        print(f"| {w:g} | {np.mean(values):.4f} |")
    print(f"| no feedback | {np.mean(reference):.4f} |")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--out", help="write the markdown report here (the README quotes its table)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--tune", action="store_true", help="print the RatingsConfig grid on the inner split")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="musicrec-listeners-") as tmp:
        if args.tune:
            tune(args.data, args.seeds, Path(tmp))
            return
        results = [run_seed(args.data, seed, Path(tmp)) for seed in args.seeds]
    text = report(results, args.seeds, args.data, time.perf_counter() - start, argv or sys.argv[1:])
    print(text)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
