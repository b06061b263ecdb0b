"""Which approximate index serves similar_tracks: faiss IVF (what the snapshot uses; IVF-Flat when this was
measured, scalar-quantised sq8 since) against usearch HNSW.

Same 1M-track synthetic embeddings as bench_scale_serving.py; recall@10 against exact inner-product search, single
query latency p50/p99 (one thread, as the bot serves), build time and serialised size. usearch is not a project
dependency: pip install usearch to rerun.

python bench/bench_ann_choice.py [--tracks 1000000] [--queries 1000] [--out docs/ann_choice.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from bench_scale_serving import synthetic_arrays  # bench/ is on sys.path when this file runs as a script

from recsys.ann import AnnConfig, AnnIndex

K = 10


def _measure(search: Callable[[np.ndarray], np.ndarray], queries: np.ndarray, truth: list[set[int]]) -> dict[str, str]:
    search(queries[0])
    latency, recall = [], []
    for q, want in zip(queries, truth, strict=True):
        t = time.perf_counter()
        got = search(q)
        latency.append(time.perf_counter() - t)
        recall.append(len(set(got[:K].tolist()) & want) / K)
    ms = np.array(latency) * 1000
    return {
        "recall@10": f"{np.mean(recall):.3f}",
        "p50 / p99 ms": f"{np.percentile(ms, 50):.2f} / {np.percentile(ms, 99):.2f}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tracks", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    import faiss
    from usearch.index import Index

    faiss.omp_set_num_threads(1)
    z = np.ascontiguousarray(synthetic_arrays(args.tracks)["track_z"])
    n = len(z)
    rng = np.random.default_rng(1)
    queries = z[rng.choice(n, args.queries, replace=False)]
    # Ground truth (the query itself included, as both indexes return it too).
    truth = [set(np.argpartition(-(z @ q), K)[:K].tolist()) for q in queries]
    rows: dict[str, dict[str, str]] = {}

    t = time.perf_counter()
    ivf = AnnIndex.build(z, AnnConfig())
    build = time.perf_counter() - t
    rows[f"faiss IVF {AnnConfig().storage} ({AnnConfig().lists_for(n)} lists, nprobe {AnnConfig().nprobe})"] = {
        **_measure(lambda q: ivf.search(q, K), queries, truth),
        "build s": f"{build:.1f}",
        "size MB": f"{ivf.to_array().nbytes / 1e6:.0f}",
    }
    for connectivity, expansion in ((16, 64), (32, 128)):
        hnsw = Index(ndim=z.shape[1], metric="ip", dtype="f32", connectivity=connectivity, expansion_search=expansion)
        t = time.perf_counter()
        hnsw.add(np.arange(n), z, threads=os.cpu_count() or 1)
        build = time.perf_counter() - t
        rows[f"usearch HNSW (M {connectivity}, ef {expansion})"] = {
            **_measure(lambda q, h=hnsw: np.asarray(h.search(q, K, threads=1).keys), queries, truth),  # type: ignore[misc]
            "build s": f"{build:.1f}",
            "size MB": f"{len(hnsw.save()) / 1e6:.0f}",
        }
    head = ["index", "recall@10", "p50 / p99 ms", "build s", "size MB"]
    lines = [
        f"# ANN choice (bench/bench_ann_choice.py)\n\n{n:,} tracks x {z.shape[1]} dims, {args.queries} queries, k={K}, "
        f"one query thread; build with {os.cpu_count()} threads; {platform.machine()}.\n",
        "<!-- begin ann -->",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
        *("| " + " | ".join([name, *(r[h] for h in head[1:])]) + " |" for name, r in rows.items()),
        "<!-- end ann -->",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
