"""Lists people enjoy: choose recsys.ranking.ListConfig (the artist cap and the popularity preference) on the inner
validation split, and draw the trade-off between distinct artists and accuracy.

python bench/bench_lists.py --data /path/to/spotify_songs.csv [--out docs/lists.md] [--seeds 0 1 2 3 4]

The default model is trained once per seed on the inner split of that seed's test split (recsys.evaluation's
validation_split: nothing of the test split reaches it); every knob setting then re-ranks the same embeddings through
Snapshot.with_lists and the evaluation's served lists (recsys.evaluation.harness). Chosen (see choose()): for similar
songs, for a phrase's list, and apart for the other lists, the artist cap with the most distinct artists in the top
10 whose accuracy stays within 3% of the uncapped list (similar songs: P@10 of cold queries; a phrase: Recall@20 of
held-out playlists queried by their name; others: continuation and new-playlist Recall@20); then the popularity
preference with the best accuracy, near-ties going to 0. The figures on the test
split are `musicrec evaluate` (docs/quality.md).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import itertools
import platform
import shlex
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch

import recsys
from recsys.evaluation.harness import (
    evaluate_continuation,
    evaluate_new_playlists,
    evaluate_similar,
    evaluate_text,
    validation_split,
)
from recsys.evaluation.splits import Split

CONFIG = recsys.TrainConfig(progress=False, max_seconds=600.0)  # no wall-clock budget: the load changes nothing
CAPS = (0, 1, 2, 3, 4, 5)
POPULARITY = (-0.1, -0.05, -0.02, 0.0, 0.02, 0.05, 0.1)
TOLERANCE = 0.03  # accuracy may drop at most 3% relative on any task
ACCURACY = (
    ("similar P@10 (cold)", "similar/precision@10/cold"),
    ("continuation R@20", "continuation/recall@20"),
    ("new R@20", "new/recall@20"),
    ("words R@20", "text/recall@20"),
)
SIMILAR_ACCURACY = ("similar/precision@10/cold",)
OTHER_ACCURACY = ("continuation/recall@20", "new/recall@20")
TEXT_ACCURACY = ("text/recall@20",)
LISTS = (
    ("similar artists@10", "similar/artists@10"),
    ("continuation artists@10", "continuation/artists@10"),
    ("words artists@10", "text/artists@10"),
    ("similar popularity", "similar/popularity@10"),
)


def _trained(split: Split, seed: int, keep: Path | None) -> recsys.Snapshot:
    """The default model on the split; with a workdir, saved there and reused by the next run on the same split."""
    if keep is not None and (keep / "meta.json").is_file():
        snap = recsys.load(keep)
        if snap.info.config == dataclasses.asdict(dataclasses.replace(CONFIG, seed=seed)):
            return snap
    snap = recsys.train_catalog(split.catalog, dataclasses.replace(CONFIG, seed=seed))
    if keep is not None:
        snap.save(keep)
    return snap


def trained_splits(data: str, seeds: list[int], root: Path, keep: bool) -> list[tuple[recsys.Snapshot, Split]]:
    """Each seed's inner validation split under root and the default model trained on it (with keep, saved beside
    the split and reused by the next run: bench_lists and tune_seeds share them)."""
    trained = []
    for seed in seeds:
        split = validation_split(data, seed, root / f"seed{seed}")
        trained.append((_trained(split, seed, root / f"seed{seed}" / "model" if keep else None), split))
        print(f"seed {seed}: trained", file=sys.stderr, flush=True)
    return trained


@contextlib.contextmanager
def trained_from_args(
    description: str, argv: list[str] | None, seeds: list[int]
) -> Iterator[list[tuple[recsys.Snapshot, Split]]]:
    """The tuning scripts' command line (--data, --seeds, --workdir) parsed, and trained_splits of it; without
    --workdir the splits live in a temporary directory for the duration of the block."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--data", required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=seeds)
    parser.add_argument("--workdir", help="splits and trained models (default a temporary directory)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="musicrec-tune-") as tmp:
        yield trained_splits(args.data, args.seeds, Path(args.workdir or tmp), keep=bool(args.workdir))


def measure(trained: list[tuple[recsys.Snapshot, Split]], cap: int, popularity: float) -> dict[str, float]:
    """Mean over seeds of each seed's mean over queries, for one knob setting."""
    per_seed = []
    for snap, split in trained:
        scorer = snap.with_lists(max_per_artist=cap, popularity=popularity)
        values = evaluate_continuation(scorer, split)[0] | evaluate_similar(scorer, split)
        per_seed.append(values | evaluate_new_playlists(scorer, split) | evaluate_text(scorer, split))
    return {key: float(np.mean([np.nanmean(v[key]) for v in per_seed])) for _, key in (*ACCURACY, *LISTS)}


class Chosen(NamedTuple):
    similar_cap: int
    other_cap: int  # continuation, new playlists, listeners
    text_cap: int  # a phrase's list
    popularity: float


def choose(found: dict[tuple[int, float], dict[str, float]]) -> Chosen:
    """Per kind of list, the cap with the most distinct artists whose accuracy stays within TOLERANCE of the
    uncapped list (at popularity 0); then the popularity preference with the best mean relative accuracy at those
    caps, values within 1% of it counting as ties that go to the one nearest 0 (fit alone). The words task does not
    vote on the popularity: its recall (~0.004 on validation) moves between seeds by more than the knob's effect."""
    base = found[(0, 0.0)]

    def within(cap: int, keys: tuple[str, ...]) -> bool:
        return all(found[(cap, 0.0)][k] >= (1 - TOLERANCE) * base[k] for k in keys)

    def best_cap(keys: tuple[str, ...], artists: str) -> int:
        return max((c for c in CAPS if within(c, keys)), key=lambda c: (round(found[(c, 0.0)][artists], 2), -c))

    similar_cap = best_cap(SIMILAR_ACCURACY, "similar/artists@10")
    other_cap = best_cap(OTHER_ACCURACY, "continuation/artists@10")
    text_cap = best_cap(TEXT_ACCURACY, "text/artists@10")

    def accuracy(pop: float) -> float:
        ratios = [found[(similar_cap, pop)][k] / base[k] for k in SIMILAR_ACCURACY]
        ratios += [found[(other_cap, pop)][k] / base[k] for k in OTHER_ACCURACY]
        return float(np.mean(ratios))

    best = max(accuracy(p) for p in POPULARITY)
    popularity = min((p for p in POPULARITY if accuracy(p) >= best - 0.01), key=abs)
    return Chosen(similar_cap, other_cap, text_cap, popularity)


def plot(found: dict[tuple[int, float], dict[str, float]], chosen: Chosen, path: Path) -> None:
    """Distinct artists against cold similar-songs P@10, one line per popularity preference."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    caps = sorted(CAPS, key=lambda c: c or len(CAPS) + 1)  # 1, 2, ... then no cap: fewer artists along the line
    for pop in POPULARITY:
        xs = [found[(c, pop)]["similar/artists@10"] for c in caps]
        ys = [found[(c, pop)]["similar/precision@10/cold"] for c in caps]
        ax.plot(xs, ys, marker="o", label=f"popularity {pop:+g}")
        for c, x, y in zip(caps, xs, ys, strict=True):
            ax.annotate(str(c) if c else "no cap", (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    base = found[(0, 0.0)]["similar/precision@10/cold"]
    ax.axhline((1 - TOLERANCE) * base, color="grey", linestyle="--", linewidth=1, label="-3% of uncapped")
    x, y = (
        found[(chosen.similar_cap, chosen.popularity)][k] for k in ("similar/artists@10", "similar/precision@10/cold")
    )
    ax.scatter([x], [y], s=160, facecolors="none", edgecolors="black", label="chosen")
    ax.set_xlabel("distinct artists in the top 10 similar songs (mean)")
    ax.set_ylabel("similar songs P@10, cold queries")
    ax.set_title("Artist cap (point labels) and popularity preference, inner validation split")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def render(found: dict[tuple[int, float], dict[str, float]], chosen: Chosen, header: str, png: str) -> str:
    columns = (*ACCURACY, *LISTS)
    titles = " | ".join(c for c, _ in columns)
    lines = [header, "", f"![trade-off]({png})", "", f"| max per artist | popularity | {titles} |"]
    lines.append("|---|---|" + "---|" * len(columns))
    similar_cap, other_cap, text_cap, pop = chosen
    for (cap, p), v in sorted(found.items()):
        cells = [f"{v[k]:.2f}" if "popularity" in k or "artists" in k else f"{v[k]:.4f}" for _, k in columns]
        mark = "**" if p == pop and cap in (similar_cap, other_cap, text_cap) else ""
        lines.append(f"| {mark}{cap or 'no cap'}{mark} | {mark}{p:+g}{mark} | " + " | ".join(cells) + " |")
    base, sim, text = found[(0, 0.0)], found[(similar_cap, pop)], found[(text_cap, pop)]
    served = {"similar": sim, "text": text}
    change = ", ".join(
        f"{label} {100 * (served.get(k.split('/')[0], found[(other_cap, pop)])[k] / base[k] - 1):+.1f}%"
        for label, k in ACCURACY
    )
    lines += [
        "",
        "<!-- begin lists -->",
        f"Chosen (bold rows): similar songs at most **{similar_cap or 'any number of'}** per artist, a phrase's list "
        f"(words) **{text_cap or 'any number'}**, other lists **{other_cap or 'any number'}** per artist, popularity "
        f"preference **{pop:+g}**: {sim['similar/artists@10']:.2f} distinct artists in the top 10 similar songs "
        f"(uncapped {base['similar/artists@10']:.2f}), {text['text/artists@10']:.2f} in a phrase's top 10 (uncapped "
        f"{base['text/artists@10']:.2f}); against the uncapped lists {change}.",
        "<!-- end lists -->",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--out", default="docs/lists.md")
    parser.add_argument("--workdir", help="keep the splits here (default a temporary directory)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="musicrec-lists-") as tmp:
        trained = trained_splits(args.data, args.seeds, Path(args.workdir or tmp), keep=bool(args.workdir))
        found = {(c, p): measure(trained, c, p) for c, p in itertools.product(CAPS, POPULARITY)}
    chosen = choose(found)
    out = Path(args.out)
    png = out.with_suffix(".png")
    plot(found, chosen, png)
    command = "python bench/bench_lists.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    header = "\n".join(
        [
            "# Lists people enjoy: the artist cap and the popularity preference",
            "",
            f"Generated by `{command}` on {datetime.now(UTC):%Y-%m-%d} in {(time.perf_counter() - started) / 60:.1f} "
            f"min ({platform.machine()}, torch {torch.__version__}, CPU). The default model trained on the inner "
            f"validation split of seeds {', '.join(map(str, args.seeds))} (never the test split), re-ranked under "
            "each setting exactly as the product serves (`Snapshot.with_lists`; a row's cap applies to every list). "
            "Cells: mean over seeds; words: the held-out playlists queried by their name alone. Chosen: for similar "
            "songs, for a phrase's list, and apart for the other lists, the cap with the most "
            f"distinct artists whose accuracy stays within {TOLERANCE:.0%} of the uncapped list; then the popularity "
            "preference with the best accuracy (near-ties, within 1%, go to 0).",
        ]
    )
    out.write_text(render(found, chosen, header, png.name), encoding="utf-8")
    print(f"chosen: {chosen}; wrote {out}, {png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
