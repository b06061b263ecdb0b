"""Similar songs: how much should the training playlists a song would be put in count beside the cosine of the
embeddings? Scored on the inner validation split (never the test split).

python bench/tune_similar.py --data /path/to/spotify_songs.csv [--seeds 0 1 2 3 4] [--workdir /tmp/lists]

The default model is trained once per seed (with --workdir, reused from bench/bench_lists.py's models there); each
setting only re-scores: recsys.ranking.similar_scores under SimilarConfig(temperature, playlists, playlist_weight),
ranked as the snapshot serves (its ListConfig: one song per artist). Prints similar-songs P@10 of cold queries (the
headline) and of all queries per setting (mean over seeds, then the per-seed cold values). The figures are
SimilarConfig's comments.
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np

import recsys
from recsys import ranking
from recsys.evaluation.harness import evaluate_similar

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_lists import trained_from_args

TEMPERATURES = (0.05, 0.1, 0.2)
PLAYLISTS = (5, 20, 100_000)
WEIGHTS = (0.0, 1.0, 3.0, 10.0)


class SimilarVariant:
    """A trained snapshot whose track_scores use another SimilarConfig."""

    def __init__(self, snap: recsys.Snapshot, config: ranking.SimilarConfig) -> None:
        self.snap, self.config = snap, config
        self.track_ids, self.lists = snap.track_ids, snap.lists
        self._pos = {str(t): i for i, t in enumerate(snap.track_ids.tolist())}

    def track_scores(self, track_id: str) -> np.ndarray:
        return ranking.similar_scores(self.snap, self._pos[track_id], self.config)


def main(argv: list[str] | None = None) -> int:
    with trained_from_args(__doc__.splitlines()[0], argv, [0, 1, 2, 3, 4]) as trained:
        for t, m, w in itertools.product(TEMPERATURES, PLAYLISTS, WEIGHTS):
            if not w and (t, m) != (TEMPERATURES[0], PLAYLISTS[0]):
                continue  # weight 0 is the cosine alone, whatever the other two
            config = ranking.SimilarConfig(temperature=t, playlists=m, playlist_weight=w)
            values = [evaluate_similar(SimilarVariant(snap, config), split) for snap, split in trained]
            cold = [float(np.nanmean(v["similar/precision@10/cold"])) for v in values]
            every = np.mean([np.nanmean(v["similar/precision@10"]) for v in values])
            name = "cosine alone" if not w else f"t={t} playlists={m} weight={w}"
            print(f"{name:<40} cold {np.mean(cold):.4f} all {every:.4f}  ({' '.join(f'{v:.4f}' for v in cold)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
