"""A listener's current ratings as a list (/forme, Snapshot.recommend_for_ratings): likes, dislikes, the trained
listener node and the songs already shown, scored over the catalogue."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from recsys.ranking import Picks, pick, seed_scores

if TYPE_CHECKING:
    from recsys.snapshot import Snapshot


@dataclass(frozen=True)
class RatingsConfig:
    """How a listener's current ratings become scores (for_ratings). Chosen on the inner validation split of the real
    data (5 seeds, ~200 simulated listeners; `python bench/bench_listeners.py --data ... --tune`): the hit rate@10
    of rounds 1-5, then of round 6 after a retrain; differences under ~0.005 are noise at that size."""

    # The soft maximum over the dislikes, times this, is subtracted from the likes' seed score: a track much like a
    # disliked one sinks, one merely of the same genre barely moves (both soft maxima lie in [-1, 1]). Rounds 1-5:
    # 0 -> 0.061, 0.25 -> 0.061, 0.5 -> 0.062, 1.0 -> 0.039 (at 1 the dislikes, near the likes, drown them).
    dislike_weight: float = 0.5
    # Share of the trained listener node's cosine in the score when the model has the listener's node; the rest is
    # the seed score of the current ratings, which also knows the ratings made since that training. Round 6 after a
    # retrain: 0 -> 0.048, 0.25 -> 0.050, 0.5 -> 0.050, 0.75 -> 0.051, 1.0 -> 0.053 (no feedback: 0.029); 1.0 would
    # ignore every rating made since the retrain, so the node gets the larger share, not all of it.
    listener_weight: float = 0.75
    # Subtracted from the score of a track already shown (and of its other versions): a list asked for again brings
    # new songs first, but a song far better than the rest may come back. Rounds 1-5: 0.1 -> 0.058, 0.25 to 2 ->
    # 0.062 (the simulated listener rates every shown song it would like, so a re-shown one is always a miss).
    shown_penalty: float = 0.5
    # Only the latest this many likes (and dislikes) are scored, all are still excluded: the score's cost grows with
    # them (100 x 28k cosines is a few ms; at a million tracks ~0.3 s).
    max_ratings: int = 100


def ratings_scores(
    snap: Snapshot,
    likes: np.ndarray,
    dislikes: np.ndarray,
    listener_idx: int | None,
    shown: np.ndarray,
    config: RatingsConfig,
) -> np.ndarray:
    """Score every track for liked and disliked rows (latest last), a trained listener node (or None) and the
    rows already shown. [T]"""
    scores = seed_scores(snap.track_z, likes[-config.max_ratings :])
    if len(dislikes) and config.dislike_weight:
        scores = scores - config.dislike_weight * seed_scores(snap.track_z, dislikes[-config.max_ratings :])
    if listener_idx is not None:
        node = snap.track_z @ snap.listener_z[listener_idx]  # [T]
        scores = (1.0 - config.listener_weight) * scores + config.listener_weight * node
    if len(shown):
        scores = np.where(np.isin(snap.songs, snap.songs[shown]), scores - config.shown_penalty, scores)
    return scores.astype(np.float32)


def for_ratings(
    snap: Snapshot,
    likes: np.ndarray,
    dislikes: np.ndarray,
    listener_idx: int | None,
    shown: np.ndarray,
    k: int,
    config: RatingsConfig,
) -> Picks:
    """The top k for a listener's ratings (ratings_scores): every liked and disliked track, and their other
    versions, excluded; shown tracks ranked down, not excluded."""
    scores = ratings_scores(snap, likes, dislikes, listener_idx, shown, config)
    return pick(snap, scores, k, np.union1d(likes, dislikes).astype(np.int64))
