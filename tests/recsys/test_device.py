"""Training devices: cpu, cuda and auto mean what they say; a GPU run learns what a CPU run learns.

The tests marked gpu run only where torch sees a CUDA GPU (never on the CPU machines CI uses)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import recsys
from recsys.device import backend_for, resolve_device
from recsys.train import fit
from tests.conftest import FAST_CONFIG

no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="asserts behaviour on a machine without CUDA")
gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_cpu_is_the_default_and_resolves_to_the_cpu() -> None:
    assert recsys.TrainConfig().device == "cpu"
    assert resolve_device("cpu") == torch.device("cpu")
    assert backend_for(torch.device("cpu")) == "gloo"
    assert backend_for(torch.device("cuda", 0)) == "nccl"


def test_an_unknown_device_is_a_one_line_error() -> None:
    with pytest.raises(recsys.TrainingError, match="unknown device 'tpu'; expected one of auto, cpu, cuda"):
        resolve_device("tpu")


@no_gpu
def test_cuda_without_a_gpu_is_a_one_line_error_and_auto_falls_back_to_the_cpu() -> None:
    with pytest.raises(recsys.TrainingError) as err:
        resolve_device("cuda")
    assert "no CUDA GPU" in str(err.value) and "\n" not in str(err.value)
    assert resolve_device("auto") == torch.device("cpu")


@no_gpu
def test_auto_without_a_gpu_trains_exactly_as_cpu(demo_catalog: recsys.Catalog) -> None:
    config = dataclasses.replace(FAST_CONFIG, epochs=4, eval_every=2)
    cpu = fit(demo_catalog, dataclasses.replace(config, device="cpu"))
    auto = fit(demo_catalog, dataclasses.replace(config, device="auto"))
    np.testing.assert_array_equal(cpu.track_z, auto.track_z)
    np.testing.assert_array_equal(cpu.playlist_z, auto.playlist_z)


@no_gpu
def test_train_cli_with_cuda_on_a_cpu_machine_fails_in_one_line_and_writes_no_model(
    demo_csv: Path, tmp_path: Path
) -> None:
    out = tmp_path / "model"
    train = ["train", "--quiet", "--device", "cuda", "--data", str(demo_csv), "--out", str(out)]
    proc = subprocess.run(
        [sys.executable, "-m", "recsys", *train],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode != 0
    assert "no CUDA GPU" in proc.stderr and "Traceback" not in proc.stderr
    assert not (out / "info.json").exists()


@gpu
@pytest.mark.gpu
@pytest.mark.timeout(900)
def test_a_gpu_training_validates_like_the_cpu_one(demo_catalog: recsys.Catalog) -> None:
    cpu = fit(demo_catalog, dataclasses.replace(FAST_CONFIG, device="cpu"))
    cuda = fit(demo_catalog, dataclasses.replace(FAST_CONFIG, device="cuda"))
    recall_cpu, recall_gpu = cpu.metrics["val_recall@20"], cuda.metrics["val_recall@20"]
    assert recall_cpu > 0.3  # the comparison means something
    # Different random streams (CUDA draws its own negatives), the same held-out pairs and model: close, not equal.
    assert abs(recall_gpu - recall_cpu) <= 0.05 * recall_cpu
    assert cuda.track_z.dtype == np.float32 and np.isfinite(cuda.track_z).all()
