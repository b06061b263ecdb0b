"""Lists people enjoy: where does a cap of songs per artist cost accuracy, and would a soft penalty on an artist's
repeats do better? Scored on the inner validation split (never the test split). Not in the product: see the README's
lists paragraph and the closing notes of issue 11.

python bench/tune_diversity.py --data /path/to/spotify_songs.csv [--seeds 0 1 2 3 4] [--workdir /tmp/lists]

The default model is trained once per seed (with --workdir, reused from bench/bench_lists.py's models there). Each
variant re-ranks the model's own scores (Snapshot.track_scores, seed_scores, playlist_scores) by a greedy walk over
their best DEPTH candidates: the query's own song (the seeds', the playlist's) and repeats of a song left out; a song
is taken unless its artist already has its cap (`own` for the similar song's own artist, `other` for the rest); among
the rest, the best score minus `penalty` times the number of its artist's songs already taken. Penalty 0 with no cap
is the uncapped list; caps of 1 with penalty 0 are what the product serves for similar songs. Prints similar-songs
P@10 of cold queries, new-playlist and continuation Recall@20 (the first CONTINUATION_QUERIES playlists of each
split), each with its change against the uncapped list, and the distinct artists in the top 10 (mean over seeds).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

import recsys
from recsys.evaluation.splits import Split

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_lists import trained_from_args

DEPTH = 400  # candidates walked per list: the best-scored, far more than a list of 20 takes
CONTINUATION_QUERIES = 200  # continuation playlists per split (each list is walked once per variant)
NO_CAP = 1 << 30
# (name, own artist's cap, other artists' cap, penalty per repeat) for similar songs
SIMILAR = (
    ("uncapped", NO_CAP, NO_CAP, 0.0),
    ("cap 1 (served)", 1, 1, 0.0),
    ("cap 4", 4, 4, 0.0),
    ("own 2, others 1", 2, 1, 0.0),
    ("own 4, others 1", 4, 1, 0.0),
    ("penalty 0.05", NO_CAP, NO_CAP, 0.05),
    ("penalty 0.1", NO_CAP, NO_CAP, 0.1),
    ("penalty 0.2", NO_CAP, NO_CAP, 0.2),
    ("own 1, penalty 0.1", 1, NO_CAP, 0.1),
    ("own 4, penalty 0.1", 4, NO_CAP, 0.1),
)
# penalties for the lists that continue seeds or a playlist (served uncapped)
PENALTIES = (0.0, 0.02, 0.05, 0.1, 0.2)


def walk(
    scores: np.ndarray,
    k: int,
    excluded: np.ndarray,
    snap: recsys.Snapshot,
    own: int,
    caps: tuple[int, int],
    penalty: float,
) -> np.ndarray:
    """Rows of the k-song list of one variant (see the module's docstring)."""
    cand = np.argpartition(-scores, DEPTH)[:DEPTH]
    cand = cand[np.argsort(-scores[cand], kind="stable")]
    cand = cand[~np.isin(snap.songs[cand], snap.songs[excluded])]
    cand = cand[np.sort(np.unique(snap.songs[cand], return_index=True)[1])]  # one version per song
    value, artist = scores[cand].astype(np.float64), snap.artist_groups[cand]
    cap = np.where(artist == own, caps[0], caps[1])
    taken = np.zeros(len(cand), dtype=bool)
    counts: dict[int, int] = {}
    out = []
    for _ in range(k):
        repeats = np.array([counts.get(a, 0) for a in artist.tolist()])
        adjusted = np.where(taken | (repeats >= cap), -np.inf, value - penalty * repeats)
        best = int(np.argmax(adjusted))
        if not np.isfinite(adjusted[best]):
            break
        taken[best] = True
        counts[int(artist[best])] = counts.get(int(artist[best]), 0) + 1
        out.append(int(cand[best]))
    return np.array(out, dtype=np.int64)


Query = tuple[np.ndarray, np.ndarray, set[int], int]  # (scores, excluded rows, relevant rows, own artist or -1)


def similar_queries(snap: recsys.Snapshot, split: Split) -> list[Query]:
    """Cold similar-songs queries (no training playlist): the headline."""
    pos = {t: i for i, t in enumerate(snap.track_ids.tolist())}
    degree = split.catalog.track_degrees()
    return [
        (snap.track_scores(q), np.array([pos[q]]), {pos[t] for t in rel}, int(snap.artist_groups[pos[q]]))
        for q, rel in split.similar.items()
        if degree[pos[q]] == 0
    ]


def seed_queries(snap: recsys.Snapshot, split: Split) -> list[Query]:
    pos = {t: i for i, t in enumerate(snap.track_ids.tolist())}
    return [
        (snap.seed_scores(seeds), np.array([pos[t] for t in seeds]), {pos[t] for t in targets}, -1)
        for seeds, targets in split.new_playlists.values()
    ]


def continuation_queries(snap: recsys.Snapshot, split: Split) -> list[Query]:
    pos = {t: i for i, t in enumerate(snap.track_ids.tolist())}
    return [
        (snap.playlist_scores(p), snap.playlist_rows(snap._playlist_idx(p)), {pos[t] for t in targets}, -1)
        for p, targets in list(split.continuation.items())[:CONTINUATION_QUERIES]
    ]


def score(
    trained: list[tuple[recsys.Snapshot, Split]],
    queries: Callable[[recsys.Snapshot, Split], list[Query]],
    k: int,
    precision: bool,
    variants: list[tuple[int, int, float]],
) -> list[tuple[float, float]]:
    """Per variant, (accuracy, distinct artists in the top 10), each the mean over seeds of the mean over queries."""
    found = np.zeros((len(variants), len(trained), 2))
    for s, (snap, split) in enumerate(trained):
        asked = queries(snap, split)
        for scores, excluded, relevant, own in asked:
            for v, (own_cap, other_cap, penalty) in enumerate(variants):
                rows = walk(scores, k, excluded, snap, own, (own_cap, other_cap), penalty)
                hits = sum(int(r) in relevant for r in rows.tolist())
                found[v, s] += (hits / (k if precision else len(relevant)), len(set(snap.artist_groups[rows[:10]])))
        found[:, s] /= max(1, len(asked))
    return [(float(a), float(b)) for a, b in found.mean(axis=1)]


def report(name: str, base: float, accuracy: float, artists: float) -> None:
    print(f"  {name:<22} {accuracy:.4f} ({accuracy / base - 1:+.1%})  artists@10 {artists:.2f}", flush=True)


def main(argv: list[str] | None = None) -> int:
    with trained_from_args(__doc__.splitlines()[0], argv, [0, 1, 2, 3, 4]) as trained:
        print("similar songs, cold queries: P@10")
        found = score(trained, similar_queries, 10, True, [v[1:] for v in SIMILAR])
        for (name, *_), (accuracy, artists) in zip(SIMILAR, found, strict=True):
            report(name, found[0][0], accuracy, artists)
        for title, queries in (("new playlists", seed_queries), ("continuation", continuation_queries)):
            print(f"{title}: Recall@20")
            found = score(trained, queries, 20, False, [(NO_CAP, NO_CAP, p) for p in PENALTIES])
            for penalty, (accuracy, artists) in zip(PENALTIES, found, strict=True):
                report(f"penalty {penalty:g}", found[0][0], accuracy, artists)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
