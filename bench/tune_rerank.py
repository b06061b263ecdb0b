"""New playlists from seeds: does a learned re-ranker over graph and heuristic features beat the served seed score?
Scored on the inner validation split (never the test split), each seed's re-ranker fitted on the other seeds' new
playlists (leave one seed out), so no playlist scores a re-ranker that saw it.

python bench/tune_rerank.py --data /path/to/spotify_songs.csv [--seeds 0 1 2] [--workdir /tmp/lists]

The default model is trained once per seed (with --workdir, reused from bench/bench_lists.py's models there). Per
held-out playlist, the served score (recsys.ranking.new_playlist_scores) proposes CANDIDATES tracks; a linear scorer
over the feature groups below re-orders them, fitted by a softmax over each playlist's candidates (the held-out
tracks among them the positives; L2 penalty). Lists are ranked and scored by the evaluation's own rule
(evaluate_new_playlists). Feature groups:
- served: the soft maximum of the seed cosines at two temperatures, their maximum and mean, the share of seeds by the
  candidate's artist, the share from its album;
- content: closeness of release year to the seeds', Spotify popularity and its gap to the seeds' mean, distance of
  the audio features to the seeds' mean, how many training playlists hold both a seed's artist and the candidate's;
- membership: how many training playlists holding a seed's artist hold the candidate itself (only tracks in some
  training playlist score here).
Prints new-playlist Recall@20 (mean over seeds and per seed) for the served score, artist_album, and each group set,
the fitted weights (per standard deviation of the feature), and how many of the targets, and of the served top 20,
are in some training playlist.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

import recsys
from recsys import ranking
from recsys.baselines import ArtistAlbumScorer
from recsys.evaluation.harness import evaluate_new_playlists
from recsys.evaluation.splits import Split

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_lists import trained_from_args
from tune_seeds import album_groups, seed_share

CANDIDATES = 200  # tracks the served score proposes per playlist; the re-ranker orders them
L2 = 1e-2
GROUPS = {
    "served": ("soft_0.2", "soft_0.05", "cos_max", "cos_mean", "artist", "album"),
    "content": ("year", "popularity", "popularity_gap", "audio", "artist_co"),
    "membership": ("track_co",),
}
SETS = (("served",), ("served", "content"), ("served", "content", "membership"))


class Features:
    """Per-candidate features of one trained snapshot for a playlist's seed rows."""

    def __init__(self, snap: recsys.Snapshot) -> None:
        self.snap = snap
        self.pos = {str(t): i for i, t in enumerate(snap.track_ids.tolist())}
        self.album = album_groups(snap)
        playlists, tracks = snap.edges
        self.playlist_artist = np.unique(np.stack([playlists, snap.artist_groups[tracks]]), axis=1)  # [2, n]
        self.num_artists = int(snap.artist_groups.max()) + 1
        self.popularity = np.nan_to_num(np.asarray(snap.popularity, dtype=np.float64) / 100.0, nan=0.5)
        self.years = np.asarray(snap.years, dtype=np.float64)
        self.audio = np.asarray(snap.audio, dtype=np.float64)

    def rows(self, track_ids: Sequence[str]) -> np.ndarray:
        return np.array(sorted({self.pos[t] for t in track_ids}), dtype=np.int64)

    def compute(self, seeds: np.ndarray, cand: np.ndarray) -> dict[str, np.ndarray]:
        s, z = self.snap, self.snap.track_z
        cos = (z[seeds] @ z[cand].T).astype(np.float64)  # [S, C]
        out = {
            "soft_0.2": ranking.seed_scores(z[np.r_[seeds, cand]], np.arange(len(seeds)), 0.2)[len(seeds) :],
            "soft_0.05": ranking.seed_scores(z[np.r_[seeds, cand]], np.arange(len(seeds)), 0.05)[len(seeds) :],
            "cos_max": cos.max(0),
            "cos_mean": cos.mean(0),
            "artist": seed_share(s.artist_groups, seeds)[cand],
            "album": seed_share(self.album, seeds)[cand],
        }
        years = self.years[seeds][~np.isnan(self.years[seeds])]
        gaps = np.abs(self.years[cand][None, :] - years[:, None])  # [S', C]
        out["year"] = np.nan_to_num(np.exp(-gaps / 3.0), nan=0.0).mean(0) if len(years) else np.zeros(len(cand))
        out["popularity"] = self.popularity[cand]
        out["popularity_gap"] = np.abs(self.popularity[cand] - self.popularity[seeds].mean())
        centre = self.audio[seeds].mean(0)
        out["audio"] = -np.sqrt(((self.audio[cand] - centre) ** 2).mean(1))
        seed_artists = np.unique(s.artist_groups[seeds])
        shared = np.unique(self.playlist_artist[0][np.isin(self.playlist_artist[1], seed_artists)])
        with_seed_artist = np.isin(self.playlist_artist[0], shared)
        co = np.bincount(self.playlist_artist[1][with_seed_artist], minlength=self.num_artists).astype(np.float64)
        co[seed_artists] = 0.0
        out["artist_co"] = np.log1p(co[s.artist_groups[cand]])
        playlists, tracks = s.edges
        track_co = np.bincount(tracks[np.isin(playlists, shared)], minlength=len(z)).astype(np.float64)
        out["track_co"] = np.log1p(track_co[cand])
        return out


Playlist = tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]  # candidates, their features, which are targets


def playlists_of(snap: recsys.Snapshot, split: Split) -> dict[tuple[str, ...], Playlist]:
    """Each held-out playlist's CANDIDATES best tracks by the served score, their features and target flags, keyed by
    its seed track ids."""
    feats, out = Features(snap), {}
    for seed_ids, targets in split.new_playlists.values():
        seeds = feats.rows(seed_ids)
        served = ranking.new_playlist_scores(snap, seeds).astype(np.float64)
        served[seeds] = -np.inf
        cand = np.argpartition(-served, CANDIDATES)[:CANDIDATES]
        out[tuple(seed_ids)] = (cand, feats.compute(seeds, cand), np.isin(cand, feats.rows(targets)))
    return out


def fit(playlists: list[Playlist], names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Weights per feature (raw units) by a softmax over each playlist's candidates; and the features' spread."""
    xs = [torch.tensor(np.stack([f[n] for n in names], 1)) for _, f, _ in playlists]
    ys = [torch.tensor(y) for _, _, y in playlists]
    spread = torch.cat(xs).std(0) + 1e-9
    beta = torch.zeros(len(names), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([beta], max_iter=300, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        terms = [-torch.log_softmax((x / spread) @ beta, 0)[y].mean() for x, y in zip(xs, ys, strict=True) if y.any()]
        loss = torch.stack(terms).mean() + L2 * (beta**2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return (beta / spread).detach().numpy(), spread.numpy()


class Reranked:
    """The snapshot's seed_scores with its CANDIDATES best tracks re-ordered by fitted weights (above the rest)."""

    def __init__(
        self, snap: recsys.Snapshot, playlists: dict[tuple[str, ...], Playlist], names: list[str], w: np.ndarray
    ):
        self.snap, self.playlists, self.names, self.w = snap, playlists, names, w
        self.track_ids = snap.track_ids

    def seed_scores(self, track_ids: Sequence[str]) -> np.ndarray:
        cand, feats, _ = self.playlists[tuple(track_ids)]
        scores = np.full(len(self.track_ids), -1e9, dtype=np.float64)
        scores[cand] = np.stack([feats[n] for n in self.names], 1) @ self.w
        return scores.astype(np.float32)


def recall(scorer: object, split: Split) -> float:
    return float(np.nanmean(evaluate_new_playlists(scorer, split)["new/recall@20"]))  # type: ignore[arg-type]


def warm_share(snap: recsys.Snapshot, split: Split, served: bool) -> float:
    """Mean over held-out playlists of the share of their targets (or of the served top 20) that are in at least one
    training playlist."""
    warm = np.bincount(snap.edges[1], minlength=len(snap.track_ids)) > 0
    pos = {str(t): i for i, t in enumerate(snap.track_ids.tolist())}
    shares = []
    for seed_ids, targets in split.new_playlists.values():
        if served:
            rows = np.array([pos[t.track_id] for t in snap.recommend_for_tracks(seed_ids, 20)], dtype=np.int64)
        else:
            rows = np.array([pos[t] for t in targets], dtype=np.int64)
        shares.append(float(warm[rows].mean()))
    return float(np.mean(shares))


def _line(name: str, values: list[float]) -> str:
    return f"{name:<36} {np.mean(values):.4f}  ({' '.join(f'{v:.4f}' for v in values)})"


def main(argv: list[str] | None = None) -> int:
    with trained_from_args(__doc__.splitlines()[0], argv, [0, 1, 2]) as trained:
        found = [playlists_of(snap, split) for snap, split in trained]
        print(_line("served (default)", [recall(snap, split) for snap, split in trained]))
        print(_line("artist_album", [recall(ArtistAlbumScorer(split.catalog), split) for _, split in trained]))
        print(_line("share in a training playlist: targets", [warm_share(s, sp, False) for s, sp in trained]))
        print(_line("share in a training playlist: served top 20", [warm_share(s, sp, True) for s, sp in trained]))
        for groups in SETS:
            names = [n for g in groups for n in GROUPS[g]]
            values, weights = [], []
            for held, (snap, split) in enumerate(trained):
                others = [p for i, f in enumerate(found) if i != held for p in f.values()]
                w, spread = fit(others, names)
                values.append(recall(Reranked(snap, found[held], names, w), split))
                weights.append(w * spread)
            print(_line("re-ranked: " + " + ".join(groups), values), flush=True)
            mean = np.mean(weights, 0)
            print("    weights per sd: " + ", ".join(f"{n} {v:+.2f}" for n, v in zip(names, mean, strict=True)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
