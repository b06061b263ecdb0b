"""What a snapshot holds, checked: its metadata (SnapshotInfo, meta.json) and every array's kind, shape and index
range, so a bad snapshot fails when made or loaded, not in a later query."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from recsys import explain
from recsys import text as text_queries
from recsys.errors import SnapshotError
from recsys.store import FORMAT_VERSION

_FIELD_TYPES: dict[str, type | tuple[type, ...]] = {"int": int, "float": (int, float), "str": str}


@dataclass(frozen=True)
class SnapshotInfo:
    """What a snapshot is: shown by /status and stored in meta.json."""

    version: str
    created_at: str
    data_fingerprint: str
    num_tracks: int
    num_playlists: int
    metrics: dict[str, float]
    train_seconds: float
    model_kind: str
    config: dict[str, Any]
    format_version: int = FORMAT_VERSION
    # Listener nodes trained with the model (recsys.listeners); never counted in num_playlists. 0 in older files.
    num_listeners: int = 0

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> SnapshotInfo:
        """The info of a meta.json object; SnapshotError when a field is missing or of the wrong type."""
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            value = meta.get(f.name, f.default)
            expected = _FIELD_TYPES.get(str(f.type), dict)
            if value is dataclasses.MISSING or not isinstance(value, expected) or isinstance(value, bool):
                raise SnapshotError(f"meta.json field {f.name!r} is {value!r}; the snapshot is corrupt: retrain it")
            values[f.name] = value
        if not all(isinstance(v, int | float) for v in values["metrics"].values()):
            raise SnapshotError("meta.json metrics are not all numbers; the snapshot is corrupt: retrain it")
        return cls(**values)


def check_arrays(arrays: dict[str, np.ndarray], info: SnapshotInfo) -> None:
    """Every array of the right kind, shape and index range: a bad snapshot fails here, not in a later query."""

    def need(key: str, kinds: str, shape: tuple[int | None, ...]) -> np.ndarray:
        if key not in arrays:
            raise SnapshotError(f"snapshot array {key!r} is missing")
        a = arrays[key]
        fits = a.ndim == len(shape) and all(s in (None, n) for s, n in zip(shape, a.shape, strict=True))
        if a.dtype.kind not in kinds or not fits:
            want = "x".join("n" if s is None else str(s) for s in shape)
            raise SnapshotError(f"snapshot array {key!r} is {a.dtype} {a.shape}; expected kind {kinds!r}, shape {want}")
        return a

    t, p = len(need("track_ids", "O", (None,))), len(need("playlist_ids", "O", (None,)))
    for key, rows in (("track_names", t), ("track_artists", t), ("album_names", t), ("playlist_names", p)):
        need(key, "O", (rows,))
    need("years", "f", (t,))
    need("popularity", "f", (t,))
    dim = need("track_z", "f", (t, None)).shape[1]
    need("playlist_z", "f", (p, dim))
    if dim < 1:
        raise SnapshotError("snapshot embeddings have no dimensions")
    if not np.isfinite(need("audio", "f", (t, len(explain.REASON_FEATURES)))).all():
        raise SnapshotError("snapshot array 'audio' holds NaN or infinity")
    if not (np.isfinite(arrays["track_z"]).all() and np.isfinite(arrays["playlist_z"]).all()):
        raise SnapshotError("snapshot embeddings contain NaN or infinity; retrain the model")
    edges = need("edges", "iu", (2, None))
    if edges.size and (edges.min() < 0 or edges[0].max() >= p or edges[1].max() >= t):
        raise SnapshotError("snapshot edges point outside the catalogue")
    if (info.num_tracks, info.num_playlists) != (t, p):
        raise SnapshotError(
            f"meta.json says {info.num_tracks} tracks / {info.num_playlists} playlists, arrays hold {t} / {p}"
        )
    listeners = len(need("listener_ids", "O", (None,)))
    if not np.isfinite(need("listener_z", "f", (listeners, dim))).all():
        raise SnapshotError("snapshot listener embeddings contain NaN or infinity; retrain the model")
    for key in ("listener_likes", "listener_dislikes"):
        rated = need(key, "iu", (2, None))
        if rated.size and (rated.min() < 0 or rated[0].max() >= listeners or rated[1].max() >= t):
            raise SnapshotError(f"snapshot array {key!r} points outside the listeners or the catalogue")
    if info.num_listeners != listeners:
        raise SnapshotError(f"meta.json says {info.num_listeners} listeners, arrays hold {listeners}")
    text_queries.check_arrays(arrays, dim)  # optional: a snapshot saved before text queries has none


def positions(ids: np.ndarray, what: str) -> dict[str, int]:
    pos = {str(x): i for i, x in enumerate(ids.tolist())}
    if len(pos) != len(ids):
        raise SnapshotError(f"snapshot {what} ids are not unique")
    return pos


def grouped(
    keys: np.ndarray, values: np.ndarray, groups: int, within: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(ptr [groups + 1], values sorted by key): group g's values are values[ptr[g]:ptr[g + 1]], in their order or,
    given within (a second key per value [n]), by it."""
    order = np.argsort(keys, kind="stable") if within is None else np.lexsort((within, keys))
    return np.searchsorted(keys[order], np.arange(groups + 1)), values[order]
