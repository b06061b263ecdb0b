"""New playlists from seeds: does a different softness of the maximum over the seeds, or an explicit same-artist /
same-album bonus, continue them better? Scored on the inner validation split (never the test split).

python bench/tune_seeds.py --data /path/to/spotify_songs.csv [--seeds 0 1 2] [--workdir /tmp/lists]

The default model is trained once per seed (with --workdir, reused from bench/bench_lists.py's models there); each
setting only re-scores: recsys.ranking.new_playlist_scores under SeedConfig(t, artist_weight) (the soft maximum of
cosines at temperature t plus artist_weight x the share of the seeds by the candidate's artist), plus, not in the
product, album_weight x the share of the seeds from the candidate's album. Prints new-playlist Recall@20 per
setting (mean over seeds, the per-seed values) and artist_album's. The figures are SeedConfig's comments.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

import recsys
from recsys import ranking
from recsys.baselines import ArtistAlbumScorer
from recsys.evaluation.harness import evaluate_new_playlists

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_lists import trained_from_args

TEMPERATURES = (0.05, 0.1, 0.2)
ARTIST_WEIGHTS = (0.0, 0.1, 0.3, 1.0)
ALBUM_WEIGHTS = (0.0, 0.1, 0.3)


class SeedVariant:
    """A trained snapshot whose seed_scores use another temperature and same-artist / same-album bonuses."""

    def __init__(self, snap: recsys.Snapshot, temperature: float, artist: float, album: float) -> None:
        self.snap, self.temperature, self.artist, self.album = snap, temperature, artist, album
        self.track_ids = snap.track_ids
        self._pos = {str(t): i for i, t in enumerate(snap.track_ids.tolist())}
        self._albums = album_groups(snap)

    def seed_scores(self, track_ids: Sequence[str]) -> np.ndarray:
        rows = np.array(sorted({self._pos[t] for t in track_ids}), dtype=np.int64)
        scores = ranking.new_playlist_scores(self.snap, rows, ranking.SeedConfig(self.temperature, self.artist))
        return (scores + self.album * seed_share(self._albums, rows)).astype(np.float32)


def album_groups(snap: recsys.Snapshot) -> np.ndarray:
    """Album index per track (album name and artist; -1: no album name). [T]"""
    key = pd.Series(snap.album_names.astype(str)).str.lower() + "\x1f" + pd.Series(snap.artist_groups.astype(str))
    return np.where(snap.album_names.astype(str) == "", -1, pd.factorize(key)[0])


def seed_share(groups: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Per track, the share of the seed rows in its group (-1: no group). [T]"""
    known = groups[rows][groups[rows] >= 0]
    counts = np.bincount(known, minlength=int(groups.max()) + 1)
    return np.where(groups >= 0, counts[np.maximum(groups, 0)], 0) / len(rows)


def main(argv: list[str] | None = None) -> int:
    with trained_from_args(__doc__.splitlines()[0], argv, [0, 1, 2]) as trained:
        heuristic = [
            np.nanmean(evaluate_new_playlists(ArtistAlbumScorer(s.catalog), s)["new/recall@20"]) for _, s in trained
        ]
        print(f"{'artist_album':<34} {np.mean(heuristic):.4f}  ({' '.join(f'{v:.4f}' for v in heuristic)})")
        for t, a, b in itertools.product(TEMPERATURES, ARTIST_WEIGHTS, ALBUM_WEIGHTS):
            values = [
                np.nanmean(evaluate_new_playlists(SeedVariant(m, t, a, b), s)["new/recall@20"]) for m, s in trained
            ]
            name = f"t={t} artist={a} album={b}"
            print(f"{name:<34} {np.mean(values):.4f}  ({' '.join(f'{v:.4f}' for v in values)})", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
