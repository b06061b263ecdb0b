"""Listeners: people who rated songs, joined to training as playlist-like nodes and split back out afterwards.

A listener becomes one more playlist row of the training catalogue (after the CSV's playlists, with a reserved id),
linked to the catalogue tracks it liked, so message passing and the loss treat it like a playlist; its dislikes
are its hard negatives (recsys.loss). Listener nodes never add tracks, are never validated on, never count as
playlists, and leave training as the snapshot's listener arrays (LISTENER_KEYS).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from recsys.errors import InvalidQueryError, TrainingError

if TYPE_CHECKING:
    from recsys.data import Catalog

log = logging.getLogger(__name__)

# A listener node's playlist id in the training catalogue is this prefix + its listener id; only the training
# catalogue sees it (the snapshot keeps listener ids apart), so a CSV playlist id can never be taken for a listener.
LISTENER_PLAYLIST_PREFIX = "listener:"
LISTENER_PLAYLIST_NAME = "(listener)"
# The snapshot arrays that hold listeners; a snapshot saved before listeners existed has none (read as empty).
LISTENER_KEYS = ("listener_ids", "listener_z", "listener_likes", "listener_dislikes")


def check_ratings(likes: Sequence[str], dislikes: Sequence[str], what: str = "ratings") -> None:
    """InvalidQueryError unless likes and dislikes are sequences of track ids (not one str) that do not overlap."""
    for name, value in (("likes", likes), ("dislikes", dislikes)):
        if isinstance(value, str | bytes) or not all(isinstance(t, str) for t in value):
            raise InvalidQueryError(f"{what}: {name} must be a sequence of track_id strings; got {value!r:.80}")
    both = set(likes).intersection(dislikes)
    if both:
        raise InvalidQueryError(
            f"{what}: track {min(both)!r} is both liked and disliked; keep only the listener's latest rating of it"
        )


@dataclass(frozen=True)
class ListenerRatings:
    """One listener's ratings: catalogue track ids liked and disliked (each track rated one way)."""

    likes: tuple[str, ...]
    dislikes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_ratings(self.likes, self.dislikes, "ListenerRatings")
        object.__setattr__(self, "likes", tuple(self.likes))
        object.__setattr__(self, "dislikes", tuple(self.dislikes))


@dataclass(frozen=True, eq=False)
class ListenerNodes:
    """The listeners that join one catalogue: ids and their rated tracks as catalogue rows."""

    ids: np.ndarray  # [L] object str, sorted: the node order does not depend on the caller's mapping order
    likes: np.ndarray  # [2, n] int64 listener_idx, track_idx; every listener has at least one
    dislikes: np.ndarray  # [2, m] int64 listener_idx, track_idx

    @property
    def num_listeners(self) -> int:
        return len(self.ids)


def no_listeners() -> ListenerNodes:
    return ListenerNodes(np.empty(0, dtype=object), np.empty((2, 0), np.int64), np.empty((2, 0), np.int64))


def _pairs(per_listener: list[list[int]]) -> np.ndarray:
    """[2, n] int64 (listener_idx, track_idx) from each listener's rows."""
    owner = [i for i, rows in enumerate(per_listener) for _ in rows]
    rows = [r for rows in per_listener for r in rows]
    return np.array([owner, rows], dtype=np.int64).reshape(2, -1)


def join(catalog: Catalog, listeners: Mapping[str, ListenerRatings]) -> ListenerNodes:
    """Each listener's rated tracks as catalogue rows. Track ids the catalogue lacks are ignored (ratings outlive
    a catalogue change); a listener with no known like is left out: it has nothing to be placed from."""
    for listener_id in listeners:
        if not isinstance(listener_id, str) or not listener_id:
            raise InvalidQueryError(f"a listener id is a non-empty str (a Telegram user id as text): {listener_id!r}")
    index = catalog.track_index()
    ids: list[str] = []
    liked: list[list[int]] = []
    disliked: list[list[int]] = []
    ignored = 0
    for listener_id in sorted(listeners):
        ratings = listeners[listener_id]
        if not isinstance(ratings, ListenerRatings):
            raise InvalidQueryError(f"listener {listener_id!r}: expected ListenerRatings, got {type(ratings).__name__}")
        likes = [index[t] for t in dict.fromkeys(ratings.likes) if t in index]
        dislikes = [index[t] for t in dict.fromkeys(ratings.dislikes) if t in index]
        ignored += len(set(ratings.likes)) + len(set(ratings.dislikes)) - len(likes) - len(dislikes)
        if likes:
            ids.append(listener_id)
            liked.append(likes)
            disliked.append(dislikes)
    if ignored or len(ids) < len(listeners):
        log.info(
            "listeners: %d of %d join training; %d ratings of tracks not in the catalogue ignored",
            len(ids),
            len(listeners),
            ignored,
        )
    return ListenerNodes(np.array(ids, dtype=object).reshape(-1), _pairs(liked), _pairs(disliked))


def training_catalog(catalog: Catalog, nodes: ListenerNodes) -> Catalog:
    """The catalogue with each listener as one more playlist row after the CSV's, linked to its liked tracks: what
    fit() trains on. Its pairs are the catalogue's, then the listeners' (fit() relies on that order)."""
    node_ids = [LISTENER_PLAYLIST_PREFIX + str(i) for i in nodes.ids.tolist()]
    taken = set(node_ids).intersection(catalog.playlist_ids.tolist())
    if taken:
        raise TrainingError(
            f"the data has a playlist_id {min(taken)!r}, which is reserved for listener nodes: rename that playlist"
        )
    listener_edges = np.stack([nodes.likes[0] + catalog.num_playlists, nodes.likes[1]])  # [2, n]

    def ro(a: np.ndarray) -> np.ndarray:
        a.setflags(write=False)
        return a

    return dataclasses.replace(
        catalog,
        playlist_ids=ro(np.concatenate([catalog.playlist_ids, np.array(node_ids, dtype=object).reshape(-1)])),
        playlist_names=ro(
            np.concatenate([catalog.playlist_names, np.full(nodes.num_listeners, LISTENER_PLAYLIST_NAME, dtype=object)])
        ),
        edges=ro(np.ascontiguousarray(np.concatenate([catalog.edges, listener_edges], axis=1))),
    )


def snapshot_arrays(nodes: ListenerNodes, listener_z: np.ndarray) -> dict[str, np.ndarray]:
    """The snapshot's listener arrays (keys LISTENER_KEYS)."""
    return {
        "listener_ids": nodes.ids,
        "listener_z": listener_z,  # [L, d] float32, L2-normalised
        "listener_likes": nodes.likes,  # [2, n] listener_idx, track_idx
        "listener_dislikes": nodes.dislikes,  # [2, m] listener_idx, track_idx
    }


def with_empty_listeners(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The arrays with every missing listener array filled as empty: a snapshot saved before listeners has none.
    (A snapshot holding some listener arrays but not others then fails the shape checks, as it should.)"""
    z = arrays.get("track_z")
    dim = z.shape[1] if z is not None and z.ndim == 2 else 0
    nodes = no_listeners()
    empty = snapshot_arrays(nodes, np.empty((0, dim), dtype=np.float32))
    return {**{k: v for k, v in empty.items() if k not in arrays}, **arrays}
