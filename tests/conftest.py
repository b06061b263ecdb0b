"""Shared fixtures: the demo catalogue (planted answers) and the real dataset when MUSICREC_REAL_DATA points at it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

import recsys
from recsys.demo import write_demo_csv

# A short schedule: the demo catalogue is small and the planted structure is learned in a few epochs.
FAST_CONFIG = recsys.TrainConfig(epochs=30, patience=30, progress=False)


@pytest.fixture(scope="session")
def demo_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_demo_csv(tmp_path_factory.mktemp("demo") / "demo.csv")


@pytest.fixture(scope="session")
def demo_catalog(demo_csv: Path) -> recsys.Catalog:
    return recsys.load_catalog(demo_csv)


@pytest.fixture(scope="session")
def demo_snapshot(demo_catalog: recsys.Catalog) -> recsys.Snapshot:
    return recsys.train_catalog(demo_catalog, FAST_CONFIG)


@pytest.fixture(scope="session")
def real_csv() -> Path:
    path = os.environ.get("MUSICREC_REAL_DATA", "")
    if not path or not Path(path).is_file():
        pytest.skip("set MUSICREC_REAL_DATA to spotify_songs.csv to run real-data tests")
    return Path(path)


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """Two OpenMP threads on a busy two-core machine make small graphs ~10x slower; one keeps tests fast."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
