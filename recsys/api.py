"""The public entry points: train a snapshot from a CSV, load a saved one."""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Mapping
from datetime import UTC, datetime

import numpy as np

from recsys.config import TrainConfig
from recsys.data import AUDIO_FEATURES, Catalog, load_catalog
from recsys.explain import REASON_FEATURES
from recsys.graph import numeric_inputs
from recsys.listeners import ListenerRatings, join, snapshot_arrays
from recsys.snapshot import Snapshot, SnapshotInfo
from recsys.text import TextConfig, TextIndex
from recsys.train import TrainResult, fit


def build_snapshot(
    catalog: Catalog, result: TrainResult, config: TrainConfig, text_config: TextConfig | None = None
) -> Snapshot:
    """Assemble the immutable snapshot from a catalogue and a training result; its word index (recsys.text) is
    learned from this (training) catalogue's playlist names and genre labels."""
    labels = (catalog.genres, catalog.subgenres)
    words = TextIndex.build(catalog.playlist_names.tolist(), result.playlist_z, labels, result.track_z, text_config)
    scaled = result.inputs.scaler.transform(numeric_inputs(catalog))
    reason_cols = [AUDIO_FEATURES.index(f) for f in REASON_FEATURES]
    arrays = {
        "track_ids": catalog.track_ids,
        "track_names": catalog.track_names,
        "track_artists": catalog.track_artists,
        "album_names": catalog.album_names,
        "years": catalog.years,
        "popularity": catalog.popularity,
        "audio": np.ascontiguousarray(scaled[:, reason_cols]),
        "playlist_ids": catalog.playlist_ids,
        "playlist_names": catalog.playlist_names,
        "edges": catalog.edges,
        "track_z": result.track_z,
        "playlist_z": result.playlist_z,
        **snapshot_arrays(result.listeners, result.listener_z.reshape(-1, result.track_z.shape[1])),
        **words.to_arrays(),
    }
    arrays = {k: np.array(v, copy=True) for k, v in arrays.items()}
    created = datetime.now(UTC)
    emb_hash = hashlib.sha256(result.track_z.tobytes()).hexdigest()[:8]
    info = SnapshotInfo(
        version=f"{created:%Y%m%d-%H%M%S}-{emb_hash}",
        created_at=created.isoformat(timespec="seconds"),
        data_fingerprint=catalog.fingerprint,
        num_tracks=catalog.num_tracks,
        num_playlists=catalog.num_playlists,  # the CSV's playlists: listener nodes are not playlists
        metrics=dict(result.metrics),
        train_seconds=round(result.train_seconds, 2),
        model_kind=config.model.kind,
        config=dataclasses.asdict(config),
        num_listeners=result.listeners.num_listeners,
    )
    return Snapshot(arrays, info)


def train_catalog(
    catalog: Catalog,
    config: TrainConfig | None = None,
    *,
    listeners: Mapping[str, ListenerRatings] | None = None,
) -> Snapshot:
    """Train on an already loaded catalogue; each listener (id -> ratings) joins the graph as a node linked to the
    catalogue tracks it liked, its dislikes its hard negatives (recsys.listeners). Unknown track ids are ignored;
    a listener with no known like gets no node."""
    config = config or TrainConfig()
    nodes = join(catalog, listeners) if listeners else None
    return build_snapshot(catalog, fit(catalog, config, nodes), config)


def train(
    csv_path: str | os.PathLike[str] | None = None,
    config: TrainConfig | None = None,
    *,
    listeners: Mapping[str, ListenerRatings] | None = None,
) -> Snapshot:
    """Load the CSV (argument, $MUSICREC_DATA, or data/spotify_songs.csv) and train the default model on it, with
    the listeners' nodes if given (see train_catalog)."""
    return train_catalog(load_catalog(csv_path), config, listeners=listeners)
