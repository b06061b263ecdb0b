"""Render time of the "why these?" picture (bot/picture.py): p50 / p99 over repeated renders of one seed and its
recommendations, each in a worker thread as the bot renders it (asyncio.to_thread). The target is under 300 ms.

    python bench/bench_picture.py [--renders 50] [--k 10] [--out /tmp/why.png] [--freeze]

The slow tail is the garbage collector, not the drawing: a figure is thousands of short-lived objects, and every
so often they trigger a full collection of the whole process (torch and recsys make that ~200 ms on 2 cores).
--freeze calls gc.freeze() after the imports, as a server can once it has loaded its model.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import recsys  # noqa: E402
from bot.picture import FEATURE_LABELS, render_profile  # noqa: E402


def example(k: int, seed: int = 0) -> tuple[recsys.Track, list[recsys.Track], dict[str, dict[str, float]]]:
    """A seed and k recommendations with catalogue-like z-scores (recommendations near the seed, with spread)."""
    rng = np.random.default_rng(seed)
    centre = rng.normal(0, 1, len(FEATURE_LABELS))
    tracks = [
        recsys.Track(f"t{i}", f"Song number {i}", f"Artist {i}", "Album", 2001, 50.0, 1.0 - i / 100)
        for i in range(k + 1)
    ]
    values = centre + rng.normal(0, 0.6, (k + 1, len(FEATURE_LABELS)))  # [k + 1, features]
    profile = {
        t.track_id: dict(zip(FEATURE_LABELS, row, strict=True)) for t, row in zip(tracks, values.tolist(), strict=True)
    }
    return tracks[0], tracks[1:], profile


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--renders", type=int, default=50, help="timed renders (after one untimed warm-up)")
    parser.add_argument("--k", type=int, default=10, help="recommendations in the picture")
    parser.add_argument("--out", type=Path, help="also write the last picture here")
    parser.add_argument("--freeze", action="store_true", help="gc.freeze() the loaded modules before timing")
    args = parser.parse_args(argv)
    seed, tracks, profile = example(args.k)
    times: list[float] = []
    with ThreadPoolExecutor(1) as worker:
        png = worker.submit(render_profile, seed, tracks, profile).result()  # warm-up: imports, fonts
        if args.freeze:
            gc.collect()
            gc.freeze()
        for _ in range(args.renders):
            start = time.perf_counter()
            png = worker.submit(render_profile, seed, tracks, profile).result()
            times.append(time.perf_counter() - start)
    ms = np.array(times) * 1000
    frozen = ", gc frozen" if args.freeze else ""
    print(
        f"render_profile, {args.k} recommendations, {len(png):,} bytes PNG, {args.renders} renders in a thread{frozen}:"
    )
    print(f"p50 {np.percentile(ms, 50):.1f} ms   p99 {np.percentile(ms, 99):.1f} ms   max {ms.max():.1f} ms")
    if args.out:
        args.out.write_bytes(png)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
