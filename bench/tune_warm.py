"""Warm continuation targets: can RP3beta's co-membership scores, blended into the default model's playlist scores,
win the warm targets without losing the cold ones? Scored on the inner validation split (never the test split).

python bench/tune_warm.py --data /path/to/spotify_songs.csv [--seeds 0 1 2 3 4] [--workdir /tmp/lists]

The default model is trained once per seed (with --workdir, reused from bench/bench_lists.py's models there). Each
blend scores a training playlist's continuation by the model's cosine plus weight x log(1 + r / median r), r being
RP3beta's (recsys.baselines_cf, its tuned defaults) scores and the median taken over the tracks it scores above
1e-5 (RP3beta's scale differs between playlists; the log keeps a few huge values from deciding alone), and by the
cosine plus weight x r / max r. A blend with a power p > 0 scales its weight per playlist by s^p, s being the share of
the playlist's training tracks that are in another training playlist too: a playlist of such tracks tends to hide
such tracks (the script prints the correlation of s with the share of warm held-out targets), so it could give warm
tracks slots where they are likely and keep cold ones elsewhere. Prints continuation Recall@20 of all, cold and
warm targets (mean over seeds) for each, for RP3beta alone and for the same-artist/album heuristic: the frontier
between warm and cold targets. Not in the product: no blend met both goals (see the closing notes of issue 11).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

import recsys
from recsys.baselines import ArtistAlbumScorer, CatalogScorer
from recsys.baselines_cf import RP3betaScorer
from recsys.evaluation.harness import evaluate_continuation
from recsys.evaluation.splits import Split

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_lists import trained_from_args

BLENDS = (
    *((scale, weight, 0) for scale, weight in (("log", 0.01), ("log", 0.02), ("log", 0.05), ("log", 0.1))),
    *((scale, weight, 0) for scale, weight in (("max", 0.1), ("max", 0.4), ("max", 1.0))),
    ("log", 0.1, 1),
    ("log", 0.2, 1),
    ("log", 0.2, 2),
    ("log", 0.5, 3),
    ("max", 2.0, 3),
)
KEYS = ("continuation/recall@20", "continuation/recall@20/cold", "continuation/recall@20/warm")


class Blend:
    """The default model's playlist scores plus a scaled RP3beta term (times the playlist's warm share ** power)."""

    def __init__(
        self, snap: recsys.Snapshot, cf: CatalogScorer, split: Split, scale: str, weight: float, power: int = 0
    ) -> None:
        self.snap, self.cf, self.scale, self.weight, self.power = snap, cf, scale, weight, power
        self.track_ids = snap.track_ids
        self.share = warm_shares(split)

    def playlist_scores(self, playlist_id: str) -> np.ndarray:
        model = self.snap.playlist_scores(playlist_id).astype(np.float64)
        r = self.cf.playlist_scores(playlist_id).astype(np.float64)
        if self.scale == "max":
            term = r / max(r.max(), 1e-12)
        else:
            scored = r[r > 1e-5]
            term = np.log1p(r / (np.median(scored) if len(scored) else 1.0))
        weight = self.weight * (self.share[playlist_id] ** self.power if self.power else 1.0)
        return (model + weight * term).astype(np.float32)


def warm_shares(split: Split) -> dict[str, float]:
    """Per continued playlist, the share of its training tracks that are in at least two training playlists."""
    catalog = split.catalog
    degree, index = catalog.track_degrees(), catalog.playlist_index()
    members = pd.Series(catalog.edges[1]).groupby(catalog.edges[0]).agg(np.array)
    return {p: float((degree[members[index[p]]] >= 2).mean()) for p in split.continuation}


def _correlation(split: Split) -> float:
    """Across continued playlists: the warm share of the training tracks against that of the held-out targets."""
    shares, degree = warm_shares(split), split.catalog.track_degrees()
    pos = {str(t): i for i, t in enumerate(split.catalog.track_ids.tolist())}
    held = [float(np.mean([degree[pos[t]] >= 1 for t in split.continuation[p]])) for p in shares]
    return float(np.corrcoef(list(shares.values()), held)[0, 1])


def _row(name: str, per_seed: list[dict[str, np.ndarray]]) -> None:
    means = [np.mean([np.nanmean(v[k]) for v in per_seed]) for k in KEYS]
    print(f"{name:<28} all {means[0]:.4f}  cold {means[1]:.4f}  warm {means[2]:.4f}", flush=True)


def main(argv: list[str] | None = None) -> int:
    with trained_from_args(__doc__.splitlines()[0], argv, [0, 1, 2, 3, 4]) as trained:
        cfs = [RP3betaScorer(split.catalog) for _, split in trained]
        _row("artist_album", [evaluate_continuation(ArtistAlbumScorer(s.catalog), s)[0] for _, s in trained])
        _row("rp3beta", [evaluate_continuation(cf, s)[0] for cf, (_, s) in zip(cfs, trained, strict=True)])
        _row("default", [evaluate_continuation(m, s)[0] for m, s in trained])
        print(
            "correlation of a playlist's warm share, training vs held out:",
            [round(_correlation(s), 3) for _, s in trained],
        )
        for scale, weight, power in BLENDS:
            values = [
                evaluate_continuation(Blend(m, cf, s, scale, weight, power), s)[0]
                for cf, (m, s) in zip(cfs, trained, strict=True)
            ]
            _row(f"default + {weight} x {scale}" + (f" x share^{power}" if power else ""), values)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
