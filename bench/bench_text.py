"""Text queries: choose recsys.text.TextConfig on the inner validation split (playlists held out whole, queried by
their name alone, every track of the playlist relevant: the evaluation's text task).

python bench/bench_text.py --data /path/to/spotify_songs.csv [--seeds 0 1 2] [--workdir /tmp/text]

The default model is trained once per seed on the inner split of that seed's test split (recsys.evaluation's
validation_split: nothing of the test split's held-out playlists reaches it); each setting then only rebuilds the
word index from that training catalogue and the trained embeddings. Prints Recall@20 and NDCG@20 (mean over seeds,
95% bootstrap interval) per setting, one change from the default at a time, and the BM25 baseline on the same
splits. The reported figures are `musicrec evaluate --models default bm25_names --tasks text` on the test splits.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

import recsys
from recsys.baselines import NameBM25Scorer
from recsys.evaluation.harness import TEXT_K, evaluate_text, validation_split
from recsys.evaluation.metrics import bootstrap_mean_ci
from recsys.evaluation.splits import Split
from recsys.text import TextConfig, TextIndex, TextQuery

# The default model without the wall-clock budget, so a busy machine does not change the embeddings.
CONFIG = recsys.TrainConfig(progress=False, max_seconds=600.0)
# One change at a time from TextConfig()'s defaults.
GRID: dict[str, tuple[object, ...]] = {
    "min_playlists": (1, 2, 3, 5),
    "label_weight": (0.0, 0.5, 1.0, 2.0),
    "era_weight": (0.0, 0.1, 0.2, 0.4, 0.8),
    "era_fade_years": (2.0, 5.0, 10.0),
    "mood_weight": (0.0, 0.2, 0.5, 1.0),
    "popularity_weight": (0.0, 0.05, 0.1, 0.2, 0.4),
}


class IndexScorer:
    """A trained snapshot's embeddings with a word index built under another TextConfig."""

    def __init__(self, snap: recsys.Snapshot, split: Split, config: TextConfig) -> None:
        catalog = split.catalog
        labels = (catalog.genres, catalog.subgenres)
        names = catalog.playlist_names.tolist()
        self.index = TextIndex.build(names, snap.playlist_z, labels, snap.track_z, config)
        self.snap = snap
        self.track_ids = snap.track_ids

    def text_scores(self, text: str) -> np.ndarray:
        query: TextQuery = self.index.read(text)
        if not query.terms:
            raise recsys.InvalidQueryError("no known word")
        s = self.snap
        return self.index.scores(query, s.track_z, s.years, s.audio, s.popularity)


def measure(scorers: list[tuple[object, Split]]) -> str:
    """Recall@20 and NDCG@20 over the seeds' splits, with their bootstrap intervals."""
    per_seed = [evaluate_text(scorer, split) for scorer, split in scorers]  # type: ignore[arg-type]
    cells = []
    for key in (f"text/recall@{TEXT_K}", f"text/ndcg@{TEXT_K}"):
        mean, low, high = bootstrap_mean_ci([v[key] for v in per_seed])
        cells.append(f"{mean:.4f} ({low:.4f}-{high:.4f})")
    return "  ".join(cells)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--workdir", help="keep the splits here (default a temporary directory)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="musicrec-text-") as tmp:
        root = Path(args.workdir or tmp)
        trained: list[tuple[recsys.Snapshot, Split]] = []
        for seed in args.seeds:
            split = validation_split(args.data, seed, root / f"seed{seed}")
            trained.append((recsys.train_catalog(split.catalog, dataclasses.replace(CONFIG, seed=seed)), split))
            print(f"seed {seed}: trained, {len(split.new_playlists)} held-out playlists", file=sys.stderr)
        print(f"{'setting':<28} Recall@{TEXT_K} (95% CI)       NDCG@{TEXT_K} (95% CI)")
        print(f"{'bm25_names':<28} {measure([(NameBM25Scorer(s.catalog), s) for _, s in trained])}")
        print(f"{'default TextConfig()':<28} {measure([(IndexScorer(m, s, TextConfig()), s) for m, s in trained])}")
        for name, values in GRID.items():
            for value in values:
                config = dataclasses.replace(TextConfig(), **{name: value})
                if config == TextConfig():
                    continue
                row = measure([(IndexScorer(m, s, config), s) for m, s in trained])
                print(f"{f'{name}={value}':<28} {row}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
