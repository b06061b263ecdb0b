"""`make bench-scale` at toy sizes: every stage runs in its own process and the report, JSON and plots appear."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from bench_scale import METRICS, MPD_PAIRS, growth, report, similar_recall  # noqa: E402

from recsys.ann import AnnConfig  # noqa: E402
from recsys.snapshot import Snapshot, SnapshotInfo  # noqa: E402


def _child_peak_gb(allocate_mb: int, reader: str) -> float:
    code = (
        f"import sys; sys.path.insert(0, {str(ROOT / 'bench')!r}); import numpy as np; "
        f"held = np.ones({allocate_mb} * 2**20 // 8); {reader}"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return float(out.strip().splitlines()[-1])


def test_a_process_started_by_a_large_one_reports_its_own_peak_memory() -> None:
    held = np.ones(1024 * 2**20 // 8)  # 1 GiB resident in this process, the parent
    assert held.sum() > 0
    own = "from rss import peak_rss_gb; print(peak_rss_gb())"
    assert _child_peak_gb(0, own) < 0.3  # numpy and the interpreter, not the parent's gigabyte
    assert 0.3 < _child_peak_gb(400, own) < 0.7  # its own 400 MiB
    # What the benches read before: the parent's peak carried over.
    carried = "import resource; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9)"
    assert _child_peak_gb(0, carried) > 1.0


def test_growth_exponent_of_a_planted_power_law() -> None:
    sizes = [100_000, 1_000_000, 10_000_000]
    overall, last = growth(sizes, [3.0 * (s / 1e5) ** 1.25 for s in sizes])
    assert overall == pytest.approx(1.25) and last == pytest.approx(1.25)
    overall, last = growth(sizes, [1.0, 10.0, 50.0])  # growth slowing down at the top
    assert last == pytest.approx(np.log10(5.0))  # x5 over a tenfold size
    assert overall > last


@pytest.mark.timeout(600)
def test_scale_benchmark_runs_end_to_end_at_toy_sizes(tmp_path: Path) -> None:
    out = tmp_path / "docs" / "scale.md"
    cmd = [sys.executable, str(ROOT / "bench" / "bench_scale.py"), "--sizes", "3000", "6000", "--epochs", "2"]
    cmd += ["--queries", "50", "--search-queries", "20", "--data-dir", str(tmp_path / "data"), "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads(out.with_suffix(".json").read_text())
    assert [r["size"] for r in rows] == [3000, 6000]
    assert all(r["pairs"] == r["size"] for r in rows)  # the generator writes exactly that many pairs
    assert all(r["epoch_s"] > 0 and r["train_rss_gb"] > 0 and r["snapshot_mb"] > 0 for r in rows)
    report = out.read_text()
    assert "| training epoch (s) |" in report and "66M pairs" in report
    assert "recall@10 against brute force (100 queries) | exact (no index) | exact (no index) |" in report
    for name in ("scale_time.png", "scale_memory.png", "scale_latency.png"):
        assert (out.parent / name).read_bytes()[:4] == b"\x89PNG"
    # The report is rewritten from the JSON alone, as it was written from the measurements.
    out.unlink()
    again = [sys.executable, str(ROOT / "bench" / "bench_scale.py"), "--from-json", "--out", str(out)]
    again += ["--epochs", "2", "--queries", "50", "--search-queries", "20"]
    proc = subprocess.run(again, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert out.read_text() == report
    # Serving alone again at one size, on the snapshot its train stage saved: the other figures are kept.
    serve = [*cmd, "--remeasure", "3000", "--stages", "serve"]
    proc = subprocess.run(serve, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "serve   " in proc.stdout and "train   " not in proc.stdout and "ingest  " not in proc.stdout
    again_rows = json.loads(out.with_suffix(".json").read_text())
    assert again_rows[1] == rows[1]  # 6000 untouched
    assert again_rows[0]["epoch_s"] == rows[0]["epoch_s"] and again_rows[0]["ingest_s"] == rows[0]["ingest_s"]
    assert again_rows[0]["measured"].startswith(rows[0]["measured"] + "; serve again ")
    refused = subprocess.run([*cmd, "--stages", "serve"], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert refused.returncode == 2 and "--stages needs --remeasure" in refused.stderr


def _rows(sizes: list[int]) -> list[dict[str, float]]:
    base = {"tracks": 10, "playlists": 5, "val_recall@20": 0.1, "loss_share": 0.7, "epochs": 2}
    return [base | {"size": s} | {key: s / 1e5 for key, _, _ in METRICS} for s in sizes]


def test_report_extrapolates_only_when_the_million_playlist_size_was_not_measured() -> None:
    args = argparse.Namespace(epochs=2, queries=10, search_queries=5, out=Path("docs/scale_mpd.md"))
    small = report(_rows([100_000, 1_000_000]), args)
    assert "66M pairs*" in small and "paper estimate" in small
    measured = report(_rows([10_000_000, MPD_PAIRS]), args)
    assert "66M pairs*" not in measured and "paper estimate" not in measured
    assert "| training epoch (s) | 100 | 660 | 1.00 | 1.00 |" in measured  # the measured 66M column, no estimate
    # Convergence is an estimate from the largest size's measured epoch (660 s), labelled as one.
    assert "Estimate, not a measurement" in measured and "60 epochs ~ 11.0 h" in measured
    assert "![time](scale_mpd_time.png)" in measured


def _clustered_snapshot(ann: AnnConfig) -> Snapshot:
    """3,000 tracks in 30 clusters, 40 playlists of cluster-mates; the indexes built whatever the size."""
    rng = np.random.default_rng(0)
    cluster = rng.integers(0, 30, 3000)
    z = rng.standard_normal((30, 8))[cluster] * 2 + rng.standard_normal((3000, 8))
    z = (z / np.linalg.norm(z, axis=1, keepdims=True)).astype(np.float32)
    edges = np.stack(
        [np.repeat(np.arange(40), 10), np.concatenate([np.flatnonzero(cluster == c % 30)[:10] for c in range(40)])]
    )
    pz = z[edges[1]].reshape(40, 10, 8).mean(1)
    arrays = {
        "track_ids": np.array([f"t{i}" for i in range(3000)]),
        "track_names": np.array([f"song {i}" for i in range(3000)]),
        "track_artists": np.array([f"artist {i}" for i in range(3000)]),
        "album_names": np.full(3000, "album"),
        "years": np.full(3000, np.nan, dtype=np.float32),
        "popularity": np.full(3000, 50.0, dtype=np.float32),
        "audio": np.zeros((3000, 5), dtype=np.float32),
        "playlist_ids": np.array([f"p{i}" for i in range(40)]),
        "playlist_names": np.array([f"list {i}" for i in range(40)]),
        "edges": edges,
        "track_z": z,
        "playlist_z": (pz / np.linalg.norm(pz, axis=1, keepdims=True)).astype(np.float32),
    }
    return Snapshot(arrays, SnapshotInfo("test", "", "", 3000, 40, {}, 0.0, "test", {}), ann_config=ann)


def test_similar_recall_compares_the_indexes_answers_with_brute_force() -> None:
    pytest.importorskip("faiss")
    ids = [f"t{i}" for i in range(0, 3000, 60)]
    assert similar_recall(_clustered_snapshot(AnnConfig(min_items=1 << 62)), ids) is None  # no index: nothing to test
    every_list = _clustered_snapshot(AnnConfig(min_items=0, nlist=16, nprobe=16))  # scans all: the exact answer
    assert similar_recall(every_list, ids) == 1.0
    assert every_list.ann is not None and every_list.playlist_ann is not None  # the brute force ran on a copy
    one_list = _clustered_snapshot(AnnConfig(min_items=0, nlist=64, nprobe=1))
    assert 0.0 < similar_recall(one_list, ids) <= 1.0
