"""recsys: a graph neural network music recommender learned from playlists.

import recsys
snap = recsys.train("spotify_songs.csv")
snap.similar_tracks(track_id, k=10)
"""

from recsys.api import train, train_catalog
from recsys.config import DataConfig, DeviceName, LossConfig, ModelConfig, TrainConfig
from recsys.data import Catalog, load_catalog
from recsys.errors import (
    DataDownloadError,
    DataError,
    InvalidQueryError,
    RecsysError,
    SnapshotError,
    TrainingError,
    UnknownListenerError,
    UnknownPlaylistError,
    UnknownTrackError,
)
from recsys.listeners import ListenerRatings
from recsys.memory import keep_freed_memory
from recsys.names import fold
from recsys.resolve import MatchConfig, Resolution, classify, resolve
from recsys.results import SearchHit, Track
from recsys.snapshot import Snapshot, SnapshotInfo, load
from recsys.store import ModelDir, SnapshotBusyError
from recsys.train import may_be_unmeasured, metric_names

__version__ = "0.1.0"

__all__ = [
    "Catalog",
    "DataConfig",
    "DataDownloadError",
    "DataError",
    "DeviceName",
    "InvalidQueryError",
    "ListenerRatings",
    "LossConfig",
    "MatchConfig",
    "ModelConfig",
    "ModelDir",
    "RecsysError",
    "Resolution",
    "SearchHit",
    "Snapshot",
    "SnapshotBusyError",
    "SnapshotError",
    "SnapshotInfo",
    "Track",
    "TrainConfig",
    "TrainingError",
    "UnknownListenerError",
    "UnknownPlaylistError",
    "UnknownTrackError",
    "classify",
    "fold",
    "keep_freed_memory",
    "load",
    "load_catalog",
    "may_be_unmeasured",
    "metric_names",
    "resolve",
    "train",
    "train_catalog",
]
