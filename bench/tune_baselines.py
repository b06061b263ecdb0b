"""Grid-search the item-item baselines' hyper-parameters (RP3beta: alpha, beta, neighbours; EASE: lambda) on the
inner validation split of one seed: its test split is cut off first, so nothing tuned here has seen a test pair.

The criterion is continuation Recall@20 (all targets; cold targets score 0 for both models, so this ranks their warm
hits); warm Recall@20 is printed beside it, and the best's standard error over playlists. The chosen values and
these figures are the defaults' comments in recsys/baselines_cf.py (RP3betaConfig, EASEConfig). Takes ~7 min on
two cores.

python bench/tune_baselines.py --data /path/to/spotify_songs.csv [--seed 0]
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from collections.abc import Callable

import numpy as np

from recsys.baselines import ItemKNNScorer, Scorer
from recsys.baselines_cf import EASEConfig, EASEScorer, RP3betaConfig, RP3betaScorer
from recsys.data import Catalog
from recsys.evaluation import validation_split
from recsys.evaluation.harness import evaluate_continuation
from recsys.evaluation.splits import Split

ALPHAS = (0.5, 0.75, 1.0, 1.5)
BETAS = (0.0, 0.25, 0.5, 0.75, 1.0)
NEIGHBOURS = (0, 25, 50, 100)  # 0: every neighbour (the same as 400 on this data)
L2S = (1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0)


def recall(split: Split, make: Callable[[Catalog], Scorer]) -> tuple[float, float, float]:
    """(continuation Recall@20 over all targets, over warm targets, the standard error of the first over playlists)
    of a scorer fitted on the split's catalogue."""
    values, _ = evaluate_continuation(make(split.catalog), split)
    per_playlist = values["continuation/recall@20"][~np.isnan(values["continuation/recall@20"])]
    standard_error = float(per_playlist.std(ddof=1) / np.sqrt(len(per_playlist)))
    return float(per_playlist.mean()), float(np.nanmean(values["continuation/recall@20/warm"])), standard_error


def tune_rp3beta(split: Split) -> RP3betaConfig:
    """Every (alpha, beta, neighbours); prints one alpha x beta grid per neighbours count, returns the best."""
    found: dict[tuple[float, float, int], tuple[float, float, float]] = {}
    for alpha, beta, k in itertools.product(ALPHAS, BETAS, NEIGHBOURS):
        config = RP3betaConfig(alpha=alpha, beta=beta, neighbours=k)
        found[(alpha, beta, k)] = recall(split, lambda c, config=config: RP3betaScorer(c, config))
    for k in NEIGHBOURS:
        print(f"\nRP3beta, neighbours={k}: Recall@20 (warm) for alpha (rows) x beta (columns)")
        print("| alpha | " + " | ".join(f"beta {b}" for b in BETAS) + " |")
        print("|---|" + "---|" * len(BETAS))
        for a in ALPHAS:
            cells = [f"{found[(a, b, k)][0]:.4f} ({found[(a, b, k)][1]:.4f})" for b in BETAS]
            print(f"| {a} | " + " | ".join(cells) + " |")
    alpha, beta, k = max(found, key=lambda key: found[key][0])
    best = found[(alpha, beta, k)]
    print(f"\nRP3beta best: alpha={alpha} beta={beta} neighbours={k}: Recall@20 {best[0]:.4f} (s.e. {best[2]:.4f})")
    return RP3betaConfig(alpha=alpha, beta=beta, neighbours=k)


def tune_ease(split: Split) -> EASEConfig:
    """Every lambda; prints the curve and returns the best."""
    found = {l2: recall(split, lambda c, l2=l2: EASEScorer(c, EASEConfig(l2=l2))) for l2 in L2S}
    print("\nEASE: Recall@20 (warm) per lambda")
    print("| lambda | " + " | ".join(f"{l2:g}" for l2 in L2S) + " |")
    print("|---|" + "---|" * len(L2S))
    print("| R@20 (warm) | " + " | ".join(f"{r:.4f} ({w:.4f})" for r, w, _ in found.values()) + " |")
    best = max(found, key=lambda l2: found[l2][0])
    print(f"\nEASE best: lambda={best:g}: Recall@20 {found[best][0]:.4f} (s.e. {found[best][2]:.4f})")
    return EASEConfig(l2=best)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="spotify_songs.csv")
    parser.add_argument("--seed", type=int, default=0, help="the split seed whose inner validation split is used")
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="musicrec-tune-") as tmp:
        split = validation_split(args.data, args.seed, tmp)
        knn = recall(split, ItemKNNScorer)
        print(f"inner validation split of seed {args.seed}; item_knn for reference: R@20 {knn[0]:.4f} ({knn[1]:.4f})")
        tune_rp3beta(split)
        tune_ease(split)
    print(f"\n{(time.perf_counter() - started) / 60:.1f} min")


if __name__ == "__main__":
    main()
