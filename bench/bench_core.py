"""Core benchmark: training time, snapshot load time, similar_tracks and search latency (p50/p99).

python bench/bench_core.py --data /path/to/spotify_songs.csv [--out docs/benchmarks.md]
"""

from __future__ import annotations

import os

# Serving as the bot serves (bot/__main__.py): single-threaded BLAS, which is faster for one query vector and
# does not fight the event loop. Torch (training) keeps its default threads (OMP/MKL variables left alone).
for _var in ("OPENBLAS_NUM_THREADS",):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import platform  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

import recsys  # noqa: E402


def percentiles(samples: list[float]) -> tuple[float, float]:
    ms = np.array(samples) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def typo(text: str, rng: np.random.Generator) -> str:
    """Drop one character: the kind of query a chat user types."""
    if len(text) < 4:
        return text
    i = int(rng.integers(1, len(text) - 1))
    return text[:i] + text[i + 1 :]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", help="append the markdown table to this file")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--model", help="reuse this saved snapshot instead of training (latency figures only)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)

    start = time.perf_counter()
    snap = recsys.load(args.model) if args.model else recsys.train(args.data, recsys.TrainConfig(progress=False))
    train_s = time.perf_counter() - start
    train_text = f"{train_s:.1f} s ({snap.info.metrics['epochs_run']:.0f} epochs)" if not args.model else "not run"

    with tempfile.TemporaryDirectory() as tmp:
        snap.save(Path(tmp) / "m")
        loads = []
        for _ in range(3):
            t = time.perf_counter()
            loaded = recsys.load(Path(tmp) / "m")
            loads.append(time.perf_counter() - t)
        size_mb = sum(f.stat().st_size for f in (Path(tmp) / "m").iterdir()) / 1e6

    ids = rng.choice(loaded.track_ids, size=args.queries)
    sim = []
    for tid in ids.tolist():
        t = time.perf_counter()
        loaded.similar_tracks(tid, k=10)
        sim.append(time.perf_counter() - t)
    names = [f"{loaded.track(t).name} {loaded.track(t).artist}" for t in ids[: args.queries // 5].tolist()]
    queries = [typo(n.lower(), rng) for n in names]
    found, search = 0, []
    for q, tid in zip(queries, ids.tolist(), strict=False):
        t = time.perf_counter()
        hits = loaded.search(q, limit=5)
        search.append(time.perf_counter() - t)
        found += any(h.track.name == loaded.track(tid).name for h in hits)

    sim_p50, sim_p99 = percentiles(sim)
    s_p50, s_p99 = percentiles(search)
    lines = [
        f"Machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads; "
        f"data: {Path(args.data).name} ({loaded.info.num_tracks} tracks, {loaded.info.num_playlists} playlists)",
        "",
        "| measure | value | target |",
        "|---|---|---|",
        f"| training, default config | {train_text} | <= 120 s |",
        f"| snapshot load (best of 3) | {min(loads):.2f} s ({size_mb:.1f} MB on disk) | <= 2 s |",
        f"| similar_tracks p50 / p99 ({len(sim)} queries) | {sim_p50:.2f} / {sim_p99:.2f} ms | p99 <= 5 ms |",
        f"| search p50 / p99 ({len(search)} one-typo queries) | {s_p50:.1f} / {s_p99:.1f} ms | p99 <= 30 ms |",
        f"| search finds the typed title in the top 5 | {found / len(search):.1%} | |",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "a", encoding="utf-8") as fh:
            fh.write(text + "\n")


if __name__ == "__main__":
    main()
