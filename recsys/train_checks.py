"""The checks fit() makes on its data and its results, each error saying what the data lacks and what to do."""

from __future__ import annotations

import math

from torch import Tensor

from recsys.config import TrainConfig
from recsys.data import Catalog
from recsys.errors import TrainingError

# The fewest playlist-track pairs fit() trains on: validation holds out validation_share of them (10%: 2 of 20) to
# pick the best epoch and training keeps the rest; with fewer, the held-out set is empty or a single pair, and the
# recorded metric means nothing.
MIN_TRAINING_PAIRS = 20
# A single playlist teaches no contrast: every track is either in it or in no playlist.
MIN_TRAINING_PLAYLISTS = 2
# Below this many pairs a diverging loss is blamed on the data, not on the learning rate: the default learning
# rate trains the demo catalogue (~4k pairs) and the real data (~31k) stably.
SMALL_DATA_PAIRS = 1000


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _data_size(catalog: Catalog) -> str:
    """'30 playlist-track pairs in 3 playlists': the size that decides whether a catalogue can be trained on."""
    return f"{_count(catalog.num_pairs, 'playlist-track pair')} in {_count(catalog.num_playlists, 'playlist')}"


def check_trainable(catalog: Catalog) -> None:
    """Raise TrainingError, saying what the data lacks, when the catalogue is too small to train and validate on."""
    if catalog.num_pairs < MIN_TRAINING_PAIRS or catalog.num_playlists < MIN_TRAINING_PLAYLISTS:
        raise TrainingError(
            f"the data has {_data_size(catalog)}; training needs at least {MIN_TRAINING_PAIRS} pairs in at least "
            f"{MIN_TRAINING_PLAYLISTS} playlists (some are held out to validate the model): add playlists to the CSV"
        )


def check_held_out(catalog: Catalog, val_pairs: Tensor, config: TrainConfig) -> None:
    """Raise TrainingError when validation is asked for but the split could hold no pair out."""
    if config.validation_share == 0 or val_pairs.shape[1] > 0:
        return
    if round(catalog.num_pairs * config.validation_share) == 0:
        raise TrainingError(
            f"validation_share {config.validation_share:g} of {_count(catalog.num_pairs, 'pair')} holds out none "
            "to validate the model: raise validation_share or add playlists to the CSV"
        )
    raise TrainingError(
        f"none of the data's {_data_size(catalog)} could be held out to validate the model (each playlist keeps "
        "one pair to learn from): add playlists with at least 2 tracks to the CSV"
    )


def unstable_error(what: str, catalog: Catalog, config: TrainConfig) -> TrainingError:
    """The error for a loss or embeddings that stopped being finite: the data's size is the likely cause on tiny
    catalogues, the learning rate otherwise."""
    if catalog.num_pairs < SMALL_DATA_PAIRS:
        return TrainingError(
            f"{what} on only {_data_size(catalog)}: too little data to train stably; add playlists to the CSV"
        )
    return TrainingError(f"{what}; lower the learning rate (now {config.learning_rate:g})")


def check_validated(best_recall: float, catalog: Catalog, val_pairs: Tensor, config: TrainConfig) -> None:
    """Raise TrainingError when validation was asked for but gave no number: such a model must not be saved."""
    if config.validation_share == 0 or math.isfinite(best_recall):
        return
    raise TrainingError(
        f"val_recall@{config.eval_k} is {best_recall}: no held-out pair could be scored "
        f"({_count(val_pairs.shape[1], 'held-out pair')} of the data's {_data_size(catalog)}); add playlists to the CSV"
    )
