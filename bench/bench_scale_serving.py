"""Serving at scale: exact vs approximate similar_tracks, and fuzzy search, on synthetic snapshots of 100k, 1M and
2.26M tracks (the Million Playlist Dataset's catalogue); then the snapshot is saved and loaded by recsys.load in a
fresh process that answers 100 similar and 100 search queries: its load time and peak RSS are serving's.

No training: names come from recsys.scale's generator, embeddings are clustered like trained ones (subgenre centre
+ artist offset + track noise, L2-normalised), so neighbours are artist- and genre-mates as in a real model.

python bench/bench_scale_serving.py [--sizes 100000 1000000 2260000] [--queries 1000] [--out docs/scale_serving.md]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_core import typo
from bench_scale import event_loop_stall  # bench/ is on sys.path when this file runs as a script

from recsys.ann import AnnConfig, AnnIndex
from recsys.name_index import NameIndexConfig
from recsys.scale import ScaleConfig, _make_tracks
from recsys.snapshot import Snapshot, SnapshotInfo

DIM = 64  # the default model's embedding_dim
NEVER = 1 << 62  # a threshold no catalogue reaches: forces the exact paths


def synthetic_arrays(num_tracks: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Snapshot arrays for about num_tracks generated tracks, with clustered normalised embeddings."""
    tracks = _make_tracks(ScaleConfig(pairs=num_tracks * 20, pairs_per_track=20, seed=seed))
    cols = tracks.columns
    n = len(cols["track_id"])
    rng = np.random.default_rng(seed)
    artist = np.unique(cols["track_artist"], return_inverse=True)[1]
    sub_centre = rng.standard_normal((int(tracks.subgenre.max()) + 1, DIM)).astype(np.float32)
    artist_off = rng.standard_normal((int(artist.max()) + 1, DIM)).astype(np.float32)
    z = sub_centre[tracks.subgenre] + artist_off[artist] + 1.0 * rng.standard_normal((n, DIM)).astype(np.float32)
    z /= np.linalg.norm(z, axis=1, keepdims=True)  # [T, DIM]
    num_playlists = 1000
    edges = np.stack([np.repeat(np.arange(num_playlists), 20), rng.integers(0, n, num_playlists * 20)])  # [2, E]
    pz = z[edges[1]].reshape(num_playlists, 20, DIM).mean(1)
    pz /= np.linalg.norm(pz, axis=1, keepdims=True)  # [P, DIM]
    return {
        "track_ids": cols["track_id"],
        "track_names": cols["track_name"],
        "track_artists": cols["track_artist"],
        "album_names": cols["track_album_name"],
        "years": np.full(n, 2000, dtype=np.float32),
        "popularity": cols["track_popularity"].astype(np.float32),
        "audio": rng.standard_normal((n, 5)).astype(np.float32),
        "playlist_ids": np.array([f"p{i}" for i in range(num_playlists)]),
        "playlist_names": np.array([f"playlist {i}" for i in range(num_playlists)]),
        "edges": edges,
        "track_z": z,
        "playlist_z": pz.astype(np.float32),
    }


def _info(n: int, p: int) -> SnapshotInfo:
    return SnapshotInfo("bench", "", "", n, p, {}, 0.0, "synthetic", {})


def _pct(samples: list[float]) -> str:
    ms = np.array(samples) * 1000
    return f"{np.percentile(ms, 50):.2f} / {np.percentile(ms, 99):.2f}"


# Run by a fresh interpreter: load a saved snapshot, answer the queries on stdin, report load time and peak RSS.
# A full garbage collection holds the GIL (the bot's event loop waits): timed after the imports alone, then, with
# those frozen as the bot freezes them (bot/__main__.py), after the load and the queries.
_SERVE = """
import gc, json, sys, time
sys.path.insert(0, sys.argv[2])
from rss import peak_rss_gb
import recsys
t = time.perf_counter()
gc.collect()
imports_gc_s = time.perf_counter() - t
gc.freeze()
t = time.perf_counter()
snap = recsys.load(sys.argv[1])
load_s = time.perf_counter() - t
queries = json.load(sys.stdin)
for track_id in queries["ids"]:
    snap.similar_tracks(track_id, k=10)
for text in queries["texts"]:
    snap.search(text)
t = time.perf_counter()
gc.collect()
served_gc_s = time.perf_counter() - t
rss_gb = peak_rss_gb()  # this process alone: ru_maxrss would carry the bench's own peak over
print(json.dumps({"load_s": load_s, "rss_gb": rss_gb, "imports_gc_s": imports_gc_s, "served_gc_s": served_gc_s}))
"""


def serve_in_fresh_process(snap: Snapshot, ids: list[str], texts: list[str]) -> dict[str, float]:
    """Save snap, then load it in a new process that answers the queries: load seconds and peak RSS (GB)."""
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        snap.save(Path(tmp) / "model")
        proc = subprocess.run(
            [sys.executable, "-c", _SERVE, str(Path(tmp) / "model"), str(Path(__file__).resolve().parent)],
            input=json.dumps({"ids": ids, "texts": texts}),
            capture_output=True,
            text=True,
            check=True,
        )
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def bench_size(num_tracks: int, queries: int, search_queries: int, parallel_lists: bool = False) -> dict[str, str]:
    rng = np.random.default_rng(1)
    arrays = synthetic_arrays(num_tracks)
    n = len(arrays["track_ids"])
    info = _info(n, len(arrays["playlist_ids"]))
    always = AnnConfig(min_items=0, parallel_lists=parallel_lists)
    t = time.perf_counter()
    exact = Snapshot(
        dict(arrays), info, ann_config=AnnConfig(min_items=NEVER), name_index_config=NameIndexConfig(NEVER)
    )
    init_exact = time.perf_counter() - t
    t = time.perf_counter()
    approx = Snapshot(dict(arrays), info, ann_config=always, name_index_config=NameIndexConfig(min_items=0))
    init_approx = time.perf_counter() - t
    assert approx.ann is not None, "faiss is not installed: pip install 'musicrec[ann]'"
    t = time.perf_counter()
    index = AnnIndex.build(arrays["track_z"], always)
    ann_build = time.perf_counter() - t
    index_mb = len(index.to_array()) / 1e6  # serialised, as a snapshot saves it (outside the build's time)

    ids = rng.choice(arrays["track_ids"], size=queries).tolist()
    # One kind of query at a time, as a server would run them: interleaving would let each exact scan of the
    # whole embedding matrix evict the index from the CPU caches before every approximate query.
    results: dict[str, list[set[str]]] = {}
    latency: dict[str, list[float]] = {}
    for name, snap in (("exact", exact), ("ann", approx)):
        snap.similar_tracks(ids[0], k=10)  # warm-up
        results[name], latency[name] = [], []
        for tid in ids:
            t = time.perf_counter()
            got = snap.similar_tracks(tid, k=10)
            latency[name].append(time.perf_counter() - t)
            results[name].append({r.track_id for r in got})
    lat_exact, lat_ann = latency["exact"], latency["ann"]
    recall = [len(a & b) / 10 for a, b in zip(results["exact"], results["ann"], strict=True)]

    picks = rng.integers(0, n, search_queries)
    texts = []
    for j, i in enumerate(picks.tolist()):
        title, artist = str(arrays["track_names"][i]), str(arrays["track_artists"][i])
        texts.append(typo([title, f"{title} {artist}", artist][j % 3], rng))
    lat_search, lat_search_full, same_top = [], [], []
    for j, text in enumerate(texts):
        t = time.perf_counter()
        hits = approx.search(text)
        lat_search.append(time.perf_counter() - t)
        if j < 100:  # the full scan is slow at 1M: compare on the first 100 queries
            t = time.perf_counter()
            full = exact.search(text)
            lat_search_full.append(time.perf_counter() - t)
            same_top.append(bool(hits) and bool(full) and hits[0].match == full[0].match)
    # The bot runs each search in a worker thread; the event loop must keep answering meanwhile.
    stall_ms = asyncio.run(event_loop_stall(approx, texts[:100])) * 1000
    served = serve_in_fresh_process(approx, ids[:100], texts[:100])
    return {
        "tracks": f"{n:,}",
        "similar exact p50 / p99 ms": _pct(lat_exact),
        "similar ANN p50 / p99 ms": _pct(lat_ann),
        "recall@10": f"{np.mean(recall):.3f}",
        "ANN build s / index MB": f"{ann_build:.1f} / {index_mb:.0f}",
        "snapshot init s (exact / with indexes)": f"{init_exact:.1f} / {init_approx:.1f}",
        "search full scan p50 / p99 ms": _pct(lat_search_full),
        "search pre-filtered p50 / p99 ms": _pct(lat_search),
        "same top match as full scan": f"{np.mean(same_top):.2f}",
        "longest event-loop stall, 100 searches in a thread ms": f"{stall_ms:.1f}",
        "snapshot load s (recsys.load, fresh process)": f"{served['load_s']:.1f}",
        "serving peak RSS GB (load + 200 queries)": f"{served['rss_gb']:.2f}",
        "full garbage collection ms: imports alone / served, imports frozen as the bot does": (
            f"{served['imports_gc_s'] * 1000:.0f} / {served['served_gc_s'] * 1000:.0f}"
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000, 2_260_000])
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--search-queries", type=int, default=500)
    parser.add_argument("--out", help="write the markdown table to this file")
    parser.add_argument("--parallel-lists", action="store_true", help="AnnConfig.parallel_lists on (default off)")
    args = parser.parse_args()
    rows = [bench_size(n, args.queries, args.search_queries, args.parallel_lists) for n in args.sizes]
    head = list(rows[0])
    lines = [
        f"Serving at scale on {platform.processor() or platform.machine()}, {platform.python_version()}, "
        f"faiss IVF, {AnnConfig().storage} storage (4*sqrt(n) lists, nprobe {AnnConfig().nprobe}"
        f"{', lists scanned by all threads' if args.parallel_lists else ''}), k=10, "
        f"{args.queries} similar / "
        f"{args.search_queries} search queries (typo'd titles, title+artist, artists).",
        "",
        "<!-- begin serving -->",
        "| " + " | ".join(["metric", *(r["tracks"] for r in rows)]) + " |",
        "|" + "---|" * (len(rows) + 1),
    ]
    lines += ["| " + " | ".join([h, *(r[h] for r in rows)]) + " |" for h in head[1:]]
    lines.append("<!-- end serving -->")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text("# Serving at scale (bench/bench_scale_serving.py)\n\n" + text, encoding="utf-8")


if __name__ == "__main__":
    main()
