"""recsys: a graph neural network music recommender learned from playlists.

import recsys
snap = recsys.train("spotify_songs.csv")
snap.similar_tracks(track_id, k=10)
"""

from recsys.api import train, train_catalog
from recsys.config import DataConfig, LossConfig, ModelConfig, TrainConfig
from recsys.data import Catalog, load_catalog
from recsys.errors import (
    DataDownloadError,
    DataError,
    InvalidQueryError,
    RecsysError,
    SnapshotError,
    TrainingError,
    UnknownPlaylistError,
    UnknownTrackError,
)
from recsys.snapshot import SearchHit, Snapshot, SnapshotInfo, Track, fold, load
from recsys.train import keep_freed_memory, metric_names

__version__ = "0.1.0"

__all__ = [
    "Catalog",
    "DataConfig",
    "DataDownloadError",
    "DataError",
    "InvalidQueryError",
    "LossConfig",
    "ModelConfig",
    "RecsysError",
    "SearchHit",
    "Snapshot",
    "SnapshotError",
    "SnapshotInfo",
    "Track",
    "TrainConfig",
    "TrainingError",
    "UnknownPlaylistError",
    "UnknownTrackError",
    "fold",
    "keep_freed_memory",
    "load",
    "load_catalog",
    "metric_names",
    "train",
    "train_catalog",
]
