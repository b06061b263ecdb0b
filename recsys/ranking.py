"""Ranking: from scores to the top k a person is shown, the one rule the snapshot serves and the evaluation scores.

The rule (recsys.rule's walk: top_k, best_of): the k best scores, never an excluded track, at most one version of each
song (never a version of an excluded song either), and the snapshot's list knobs (ListConfig: songs per artist, a
popularity preference).
Large catalogues take candidates from the approximate index and rescore them exactly. Similar songs
(similar_scores: the cosine plus the members of the training playlists the song would be put in), a new playlist's
seeds (new_playlist_scores: recommend_for_tracks, /mix) and a listener's ratings (for_ratings: the bot's /forme, the
benchmark's simulated listeners) are scored by one rule each too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from recsys import ann
from recsys.errors import InvalidQueryError
from recsys.rule import Picks as Picks
from recsys.rule import best_of as best_of
from recsys.rule import top_k as top_k

if TYPE_CHECKING:
    from recsys.snapshot import Snapshot

# Softness of the maximum over seed tracks in seed_scores (the training loss's softmax temperature).
SEED_TEMPERATURE = 0.1
# seed_scores works through the seeds this many at a time: memory [SEED_BLOCK, T] however many a listener liked.
SEED_BLOCK = 32
# Similar songs through the index: each round whose list is short or uncertain leaves the artists it already has
# enough of out of the index's next proposals, up to this many artists; past them the search widens instead.
MAX_LEFT_OUT_ARTISTS = 64
# ... and scans up to this many times more lists to make up for the share of the scanned lists they held. At 2.26M
# synthetic tracks (bench/bench_scale_serving.py's 1,000 queries, ad hoc runs): 4 -> p99 3.1 ms, recall@10 0.960;
# 2 -> 2.5 ms, 0.959; no widening -> 2.0 ms, 0.953, and a planted one-artist catalogue (tests/recsys/test_ann.py)
# lost a query's answer.
MAX_LEFT_OUT_WIDENING = 2.0
# A similar song's own artist (one song per artist) can fill the index's nearest proposals with its own tracks and
# leave too few of other artists, so a second round leaves it out (with no rule for it, a third of the queries at
# 2.26M synthetic tracks took two searches). Instead the first round asks for as many more proposals as the artist
# has tracks, when it has at most LEAD_PROBE_MIN; a larger artist's tracks in the lists the first round scans are
# counted (from the query's probe, which the search then reads), and the round asks for that many more, up to
# LEAD_ASK; past it, the artist is left out of the proposals from the first round and its best song is scored exactly
# (_lead).
# `python bench/compare_serving.py e045963` (the code before; bench_scale_serving.py's 2.26M-track catalogue, 1,000
# queries, fastest of 3 runs each): p99 2.49 -> 1.91 ms, p90 1.87 -> 1.58 ms, recall@10 0.960 both. An ad hoc
# forerunner of that script, with LEAD_ASK at 64, 256 and 1024, read p99 2.23, 2.27 and 2.25 ms in noisier runs
# (the code before: 2.85, 2.81 and 2.74 ms in the same runs).
LEAD_PROBE_MIN = 64
LEAD_ASK = 128
# ... and at most this many of a left-out artist's tracks, those in the lists nearest the query, are scored (an artist
# can hold tens of thousands). Gathering their embeddings from memory is much of such a query's cost. `python
# bench/compare_serving.py 79b46ca --rebuild-index` (2.26M tracks, fastest of 3 runs; 79b46ca: 2048 rows and
# per-dimension sq8 ranges), 512 rows with uniform ones (recsys.ann.AnnConfig.storage): p99 1.73 -> 1.44 ms, p90
# 1.47 -> 1.26 ms, artists of 4,096+ tracks median 1.63 -> 1.32 ms, recall@10 0.9602 -> 0.9585; the uniform codes
# alone: p99 1.79 -> 1.69 ms, recall@10 unchanged.
LEAD_ROWS = 512


@dataclass(frozen=True)
class ListConfig:
    """What a served list holds beyond the best scores: the knobs of every recommendation method. Defaults chosen on
    the inner validation split of the real data (`python bench/bench_lists.py --data ...`, docs/lists.md): per kind
    of list, the most distinct artists whose accuracy stays within 3% of the uncapped list."""

    # At most this many songs of one artist (recsys.names.artist_keys) in a list continuing a playlist, seeds or a
    # listener; 0: no cap. A list still fills up with the next best songs of other artists. Songs of the
    # seeds' own artists are good continuations: every cap from 1 to 5 cost continuation Recall@20 over 3%.
    max_per_artist: int = 0
    # The same for similar songs (what /recommend answers): 1 gives ten artists in ten songs ("bohemian rhapsody" is
    # not answered with ten Queen songs). Chosen when similar songs were the cosine alone, where it cost 0.9% of
    # cold-query P@10. With the playlist bonus (SimilarConfig) it costs 5.8% on the validation split and the rule
    # above would now choose 4 (8.20 artists, -3.0%; uncapped 7.90 artists): docs/lists.md. Kept at 1 on purpose:
    # at 4 "bohemian rhapsody" is answered with four Queen album tracks and six other artists, at no cap with ten
    # Queen songs (the complaint this knob exists for); at 1 with Queen's closest song and nine other artists
    # (`musicrec recommend "bohemian rhapsody" --per-artist 4`, 0 or 1 on the default model of the real data).
    similar_max_per_artist: int = 1
    # The same for a phrase's list (recommend_for_text, /mood): with no seed artist to continue, one artist's songs
    # only crowd out others (uncapped, "rainy day" gets five Billie Eilish songs in ten from the default model of the
    # real data; capped, ten artists). Chosen by the rule above on the inner validation
    # split (`python bench/bench_lists.py`, docs/lists.md, 5 seeds: held-out playlists queried by their name):
    # 1 -> 9.27 artists in the top 10, Recall@20 0.0045; no cap -> 7.23 artists, 0.0046. On the test split it cost
    # more (docs/quality.md: 0.0055 against 0.0102, overlapping intervals, 46 playlists a seed); kept, as chosen.
    text_max_per_artist: int = 1
    # Preference for well-known songs: popularity * (Spotify popularity / 100 - 0.5) is added to every score (the
    # model's cosines lie in [-1, 1]); > 0 leans to hits, < 0 to deep cuts, 0 ranks by fit alone. Unknown popularity
    # counts as the middle (50). No value from -0.1 to 0.1 changed accuracy beyond noise, so the default is fit alone.
    popularity: float = 0.0

    def __post_init__(self) -> None:
        for name in ("max_per_artist", "similar_max_per_artist", "text_max_per_artist"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise InvalidQueryError(f"{name} is a whole number >= 0 (0: no cap); got {value!r}")
        if not isinstance(self.popularity, int | float) or not -1.0 <= self.popularity <= 1.0:
            raise InvalidQueryError(f"popularity is a number in [-1, 1] (0: ignore it); got {self.popularity!r}")

    def adjust(self, scores: np.ndarray, popularity: np.ndarray) -> np.ndarray:
        """The scores with the popularity preference added (unchanged at 0). [T]"""
        if not self.popularity:
            return scores
        known = np.nan_to_num(np.asarray(popularity, dtype=np.float64), nan=50.0)
        return (scores + self.popularity * (known / 100.0 - 0.5)).astype(scores.dtype)


UNCAPPED = ListConfig(max_per_artist=0, similar_max_per_artist=0, text_max_per_artist=0, popularity=0.0)


def seed_scores(track_z: np.ndarray, seeds: np.ndarray, temperature: float = SEED_TEMPERATURE) -> np.ndarray:
    """How well every track suits the seed rows (a listener's likes, a new playlist's songs): a soft maximum of
    cosines. [T]

    Not the seeds' centroid: a playlist mixes artists and moods, and the centroid of five tracks sits near none
    of them (Recall@20 of new playlists, inner validation split of the real data: centroid 0.052, this 0.074).
    """
    t = temperature
    total = sum(
        np.exp((track_z[seeds[i : i + SEED_BLOCK]] @ track_z.T - 1.0) / t).sum(axis=0)  # [T]; cosines in [-1, 1]
        for i in range(0, len(seeds), SEED_BLOCK)
    )
    return (1.0 + t * np.log(total / len(seeds))).astype(np.float32)


@dataclass(frozen=True)
class SeedConfig:
    """How a new playlist's seed songs score the catalogue (new_playlist_scores: recommend_for_tracks, /mix). Chosen
    on the inner validation split by `python bench/tune_seeds.py --data ...`: new-playlist Recall@20, 3 seeds, 41
    playlists each (the same-artist/album heuristic there: 0.0631)."""

    # Softness of the maximum over the seeds, without the artist bonus: 0.05 -> 0.0516, 0.1 -> 0.0542, 0.2 -> 0.0553.
    temperature: float = 0.2
    # Added times the share of the seeds by the candidate's artist (recsys.names.artist_keys): the seeds are mostly
    # cold tracks, and their embeddings blur the exact-artist signal. At 0.2: 0 -> 0.0553, 0.1 -> 0.0572,
    # 0.3 -> 0.0604, 1.0 -> 0.0647. A same-album bonus on top changed it by 0.0003 at most: left out.
    artist_weight: float = 1.0


def new_playlist_scores(snap: Snapshot, seeds: np.ndarray, config: SeedConfig | None = None) -> np.ndarray:
    """How well every track continues a new playlist of the seed rows: the soft maximum of cosines plus the share
    of the seeds by the track's artist. [T]"""
    config = config or SeedConfig()
    scores = seed_scores(snap.track_z, seeds, config.temperature)
    if config.artist_weight:
        counts = np.bincount(snap.artist_groups[seeds], minlength=int(snap.artist_groups.max()) + 1)
        scores = scores + config.artist_weight * counts[snap.artist_groups] / len(seeds)
    return scores.astype(np.float32)


@dataclass(frozen=True)
class SimilarConfig:
    """How similar songs score the catalogue (similar_scores: similar_tracks, /recommend). Chosen on the inner
    validation split by `python bench/tune_similar.py --data ...`: P@10 of cold queries (the headline), 5 seeds, ranked
    as served (one song per artist)."""

    # The query's affinity to each training playlist is its cosine to the playlist's embedding; the nearest
    # `playlists` get softmax shares at this temperature. Cosine alone: 0.2482. At 20 playlists and weight 3:
    # 0.05 -> 0.2848, 0.1 -> 0.2870, 0.2 -> 0.2877. Every setting of the grid lies in 0.270-0.289.
    temperature: float = 0.1
    # How many of the nearest training playlists lend their members (bounds the work at a million playlists); at
    # 0.1 and weight 3: 5 -> 0.2842, 20 -> 0.2870, all -> 0.2859.
    playlists: int = 20
    # Added to a track's cosine times the summed shares of those playlists it is in: songs that sit in the playlists
    # the query would be put in. A cold query's playlist-mates are mostly warm tracks whose embeddings are shaped by
    # many other songs, so the cosine alone finds them less often. At 0.1 and 20: 1 -> 0.2840, 3 -> 0.2870,
    # 10 -> 0.2878 (there the cosine only breaks ties among the playlists' members).
    playlist_weight: float = 3.0


Bonus = tuple[np.ndarray, np.ndarray]  # (sorted track rows, the score each gets added)


def nearest_playlists(
    snap: Snapshot, query: np.ndarray, config: SimilarConfig | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(playlist rows, their softmax shares), nearest the query vector [d] first: the config's (default the
    snapshot's, Snapshot.similar) playlists. Empty when the bonus is off or there are no playlists."""
    config = config or snap.similar
    if not config.playlist_weight or not len(snap.playlist_z) or config.playlists <= 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
    if snap.playlist_ann is not None:  # many playlists: their index proposes twice as many from twice the lists
        # One list breadth saved ~0.25 ms a query on bench_scale.py's trained 66M-pair snapshot, but lowered the
        # similar songs' recall@10 in bench/bench_scale_serving.py (2.26M tracks: 0.959 -> 0.943, under the 0.95 goal).
        want, breadth = min(2 * config.playlists, len(snap.playlist_z)), 2
        # Lists scanned holding too few: scan more.
        while len(cand := snap.playlist_ann.search(query, want, breadth)) < want and breadth < len(snap.playlist_z):
            breadth *= 4
        affinity = snap.playlist_z[cand] @ query
    else:
        cand, affinity = np.arange(len(snap.playlist_z)), snap.playlist_z @ query  # [P]
    m = min(config.playlists, len(affinity))
    keep = np.argpartition(-affinity, m - 1)[:m] if m < len(affinity) else np.arange(len(affinity))
    keep = keep[np.argsort(-affinity[keep], kind="stable")]
    share = np.exp((affinity[keep] - affinity[keep].max()) / config.temperature).astype(np.float64)
    return cand[keep].astype(np.int64), share / share.sum()


def playlist_bonus(
    snap: Snapshot,
    query: np.ndarray,
    config: SimilarConfig | None = None,
    near: tuple[np.ndarray, np.ndarray] | None = None,
) -> Bonus:
    """The members of the training playlists nearest the query vector [d] (nearest_playlists, or `near` when the
    caller has it already) and, per member, the weight times the summed shares of those playlists it is in."""
    config = config or snap.similar
    playlists, share = near if near is not None else nearest_playlists(snap, query, config)
    if not len(playlists):
        return playlists, share
    members = [snap.playlist_rows(int(p)) for p in playlists]
    rows, at = np.unique(np.concatenate(members), return_inverse=True)
    weights = np.repeat(share, [len(r) for r in members])
    return rows.astype(np.int64), config.playlist_weight * np.bincount(at, weights=weights, minlength=len(rows))


def _with_bonus(rows: np.ndarray, scores: np.ndarray, bonus: Bonus) -> np.ndarray:
    """scores [n] of the given track rows [n] plus each row's bonus (0 when it has none)."""
    bonus_rows, values = bonus
    if not len(bonus_rows):
        return scores
    at = np.minimum(np.searchsorted(bonus_rows, rows), len(bonus_rows) - 1)
    return scores + np.where(bonus_rows[at] == rows, values[at], 0.0).astype(scores.dtype)


def similar_scores(snap: Snapshot, idx: int, config: SimilarConfig | None = None) -> np.ndarray:
    """How similar every track is to track row idx: the cosine of their embeddings plus the playlist bonus. [T]"""
    query = snap.track_z[idx]
    scores = snap.track_z @ query
    rows, values = playlist_bonus(snap, query, config)
    scores[rows] += values.astype(scores.dtype)
    return scores


def _served(
    snap: Snapshot,
    query: np.ndarray,
    k: int,
    exclude: np.ndarray,
    cap: int | None = None,
    bonus: Bonus | None = None,
    lead: int | None = None,
) -> Picks:
    """The top k for a query vector [d] over the track embeddings (plus a bonus to some rows): approximate
    candidates, and every bonus row, when the snapshot has an index and enough of them survive the rule, the exact
    ranking otherwise. lead: an artist group likely to fill the nearest tracks (a similar song's own artist)."""
    lists = snap.lists
    cap = lists.max_per_artist if cap is None else cap
    bonus = bonus if bonus is not None else (np.zeros(0, dtype=np.int64), np.zeros(0))
    if snap.ann is not None and k > 0:
        want, breadth = 4 * k + len(exclude) + 8, 1.0
        found, full, skip, probe = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), None, None
        if cap > 0 and lead is not None:
            want, breadth, found, full, skip, probe = _lead(snap, query, lead, want, cap, exclude, bonus)
        while want < len(snap.track_z) // 4:
            # Artists the list has enough of are left out of the index's proposals (one artist can hold tens of
            # thousands of tracks nearer the query than any other artist's), kept among the earlier candidates.
            fresh = snap.ann.search(query, want, breadth, skip, probe)
            found = np.union1d(found, fresh)
            cand = np.union1d(found, bonus[0])  # bonus rows are always candidates
            cosine = lists.adjust(snap.track_z[cand] @ query, snap.popularity[cand])
            picks = best_of(cand, _with_bonus(cand, cosine, bonus), k, exclude, snap.songs, snap.artist_groups, cap)
            # A track the index did not propose (of an artist not left out) has about at most the lowest cosine it
            # proposed this round: a list ending below that frontier may be missing better tracks.
            frontier = cosine[np.searchsorted(cand, fresh)].min(initial=np.inf)
            # Fewer proposals than asked: the lists scanned ran dry (most of their tracks left out), and the frontier
            # says nothing of the lists not scanned: scan more of them.
            dry = len(fresh) < want and not snap.ann.scans_all(breadth)
            if not dry and len(picks[0]) == k and picks[1][-1] >= frontier:
                return picks
            if dry:
                breadth *= 4
                continue
            newly_full = _artists_at_cap(snap, np.asarray(picks[0], dtype=np.int64), cap, full)
            if len(newly_full) and len(full) < MAX_LEFT_OUT_ARTISTS:
                # As many proposals again, without them. Their tracks took that share of the lists scanned, so the
                # other artists' nearest tracks may lie further out: scan as many more lists as keeps the tracks
                # met the same, up to MAX_LEFT_OUT_WIDENING times as many.
                full = np.union1d(full, newly_full)
                skip = snap.left_out(full)
                share = snap.ann.skipped_share(snap.ann.probe(query, breadth).lists, skip)
                breadth *= min(MAX_LEFT_OUT_WIDENING, 1.0 / max(1.0 - share, 1e-9))
                continue
            # Too few candidates survived the rule (versions, the artist cap: a neighbourhood can be one artist
            # deep): widen by how far short they fell, at least fourfold, rather than fourfold round after round.
            # The nearest lists of the index may hold too few artists: scan proportionally more of them too.
            factor = max(4, math.ceil(2 * k / max(len(picks[0]), 1)))
            want, breadth = want * factor, breadth * factor
    scores = snap.track_z @ query
    scores[bonus[0]] += bonus[1].astype(scores.dtype)
    return pick(snap, scores, k, exclude, cap)


def _lead(
    snap: Snapshot, query: np.ndarray, lead: int, want: int, cap: int, exclude: np.ndarray, bonus: Bonus
) -> tuple[int, float, np.ndarray, np.ndarray, ann.LeftOut | None, ann.Probe | None]:
    """_served's first round for a similar song's own artist (lead), whose tracks may fill the index's proposals: as
    many more proposals as it has tracks there (LEAD_PROBE_MIN, LEAD_ASK), or it left out of them, with its best cap
    songs among its tracks the search would meet (those in the lists it scans) scored exactly. (the proposals to ask
    for, the search's breadth, candidates, artists left out, what the search skips, the query's probe)"""
    assert snap.ann is not None
    none = np.zeros(0, dtype=np.int64)
    if (size := snap.artist_size(lead)) <= LEAD_PROBE_MIN:
        return want + size, 1.0, none, none, None, None
    probe = snap.ann.probe(query, MAX_LEFT_OUT_WIDENING)
    first = probe.lists[: snap.ann.probes(1.0)]
    if (met := len(snap.artist_in_lists(lead, first, LEAD_ASK + 1))) <= LEAD_ASK:
        return want + met, 1.0, none, none, None, probe
    full = np.array([lead], dtype=np.int64)
    skip = snap.left_out(full)
    breadth = min(MAX_LEFT_OUT_WIDENING, 1.0 / max(1.0 - snap.ann.skipped_share(first, skip), 1e-9))
    near = snap.artist_in_lists(lead, probe.lists[: snap.ann.probes(breadth)], LEAD_ROWS)
    scores = _with_bonus(near, snap.lists.adjust(snap.track_z[near] @ query, snap.popularity[near]), bonus)
    # Its best cap songs lie among its best cap + len(exclude) rows, save for repeats of a song: the rule walks a
    # few more than that (in row order, as over all of them), and all of them only when those fall short.
    # `python bench/compare_serving.py f5eb073` (walking all of them): p99 1.82 -> 1.74 ms; artists of 4,096+ tracks,
    # median 1.71 -> 1.60 ms; recall@10 0.960 both.
    few = cap + len(exclude) + 8
    best = np.sort(np.argpartition(-scores, few)[: few + 1]) if len(near) > few + 1 else np.arange(len(near))
    mine, _ = best_of(near[best], scores[best], cap, exclude, snap.songs)
    if len(mine) < cap and len(best) < len(near):
        mine, _ = best_of(near, scores, cap, exclude, snap.songs)
    return want, breadth, np.sort(np.asarray(mine, dtype=np.int64)), full, skip, probe


def _artists_at_cap(snap: Snapshot, rows: np.ndarray, cap: int, known: np.ndarray) -> np.ndarray:
    """Artist groups with cap songs among rows that are not in known (none without a cap)."""
    if cap <= 0 or not len(rows):
        return np.zeros(0, dtype=np.int64)
    groups, counts = np.unique(snap.artist_groups[rows], return_counts=True)
    return np.setdiff1d(groups[counts >= cap], known).astype(np.int64)


def pick(snap: Snapshot, scores: np.ndarray, k: int, exclude: np.ndarray, cap: int | None = None) -> Picks:
    """The top k of scores over the whole catalogue under the rule and the snapshot's ListConfig (cap: songs per
    artist, default its max_per_artist)."""
    lists = snap.lists
    scores = lists.adjust(scores, snap.popularity)
    rows = top_k(scores, k, exclude, snap.songs, snap.artist_groups, lists.max_per_artist if cap is None else cap)
    return rows, scores[rows]


def similar(snap: Snapshot, idx: int, k: int, near: tuple[np.ndarray, np.ndarray] | None = None) -> Picks:
    """Songs like track row idx (similar_scores): the song itself and its other versions excluded. near: the
    song's nearest_playlists, when the caller has them already."""
    query = snap.track_z[idx]
    cap = snap.lists.similar_max_per_artist
    lead = int(snap.artist_groups[idx])
    return _served(snap, query, k, snap.versions_of(idx), cap, playlist_bonus(snap, query, near=near), lead)


def continue_playlist(snap: Snapshot, playlist_idx: int, k: int) -> Picks:
    """Tracks that continue a training playlist: its own tracks excluded."""
    return _served(snap, snap.playlist_z[playlist_idx], k, snap.playlist_rows(playlist_idx))


def continue_seeds(snap: Snapshot, seeds: np.ndarray, k: int) -> Picks:
    """Tracks that continue a new playlist of seed rows: the seeds excluded."""
    return pick(snap, new_playlist_scores(snap, seeds), k, seeds)


def continue_listener(snap: Snapshot, listener_idx: int, k: int) -> Picks:
    """Tracks for a trained listener node: what it had liked or disliked at training excluded."""
    liked, disliked = snap.listener_rows(listener_idx)
    return _served(snap, snap.listener_z[listener_idx], k, np.union1d(liked, disliked))
