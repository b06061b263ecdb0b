"""Distributed training: two torchrun processes (gloo) on the demo catalogue train like one process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import recsys

# Small loss chunks and one step per epoch: every step's loss is split into chunks, shared by both ranks.
TRAIN = ["train", "--quiet", "--epochs", "20", "--batch-size", "256", "--steps-per-epoch", "1", "--max-seconds", "600"]


def _train(cmd: list[str], out: Path, csv: Path) -> recsys.Snapshot:
    env = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(
        [*cmd, *TRAIN, "--data", str(csv), "--out", str(out)], env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return recsys.load(out)


@pytest.mark.timeout(600)
def test_two_torchrun_processes_match_one_process(demo_csv: Path, tmp_path: Path) -> None:
    one = _train([sys.executable, "-m", "recsys"], tmp_path / "one", demo_csv)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "recsys"]
    two = _train(torchrun, tmp_path / "two", demo_csv)
    assert one.info.metrics["world_size"] == 1 and two.info.metrics["world_size"] == 2
    recall_one, recall_two = one.info.metrics["val_recall@20"], two.info.metrics["val_recall@20"]
    assert recall_one > 0.3  # it learned something, so the comparison means something
    assert abs(recall_two - recall_one) <= 0.02 * recall_one
    # Same draws and averaged gradients: the two runs pick neighbours alike, not just score alike.
    query = one.search("Home", limit=1)[0].track.track_id
    a = {t.track_id for t in one.similar_tracks(query, k=10)}
    b = {t.track_id for t in two.similar_tracks(query, k=10)}
    assert len(a & b) >= 8
