"""Core benchmark: training time, snapshot load (cold and warm), and the latency of every query the product serves.

python bench/bench_core.py --data /path/to/spotify_songs.csv [--out docs/speed.md] [--model DIR]

Queries: similar_tracks, recommend_for_playlist, recommend_for_tracks (5 seeds), search (titles with one typo) and
name resolution (what /recommend and `musicrec recommend` decide), p50 / p99 over fixed, seeded query sets. The
report is a markdown file whose table the README quotes.
"""

from __future__ import annotations

import os

# Serving as the bot serves (bot/__main__.py): single-threaded BLAS, which is faster for one query vector and
# does not fight the event loop. Torch (training) keeps its default threads (OMP/MKL variables left alone).
for _var in ("OPENBLAS_NUM_THREADS",):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import platform  # noqa: E402
import shlex  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

import recsys  # noqa: E402
from recsys.names import song_key  # noqa: E402

BEGIN, END = "<!-- begin speed -->", "<!-- end speed -->"


def percentiles(samples: list[float]) -> tuple[float, float]:
    ms = np.array(samples) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def typo(text: str, rng: np.random.Generator) -> str:
    """Drop one character: the kind of query a chat user types."""
    if len(text) < 4:
        return text
    i = int(rng.integers(1, len(text) - 1))
    return text[:i] + text[i + 1 :]


def timed(call: Callable[[object], object], queries: Sequence[object]) -> list[float]:
    """Seconds per query, after one untimed warm-up call."""
    call(queries[0])
    out = []
    for q in queries:
        t = time.perf_counter()
        call(q)
        out.append(time.perf_counter() - t)
    return out


def evict_from_page_cache(directory: Path) -> None:
    """Ask the kernel to drop the snapshot's files from the page cache, so the next load reads the disk."""
    for path in directory.iterdir():
        with open(path, "rb") as fh:
            os.fsync(fh.fileno())
            os.posix_fadvise(fh.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


def load_times(directory: Path) -> tuple[float, float]:
    """(first load with the files evicted from the page cache, median of 3 warm loads) in seconds."""
    evict_from_page_cache(directory)
    t = time.perf_counter()
    recsys.load(directory)
    cold = time.perf_counter() - t
    warm = []
    for _ in range(3):
        t = time.perf_counter()
        recsys.load(directory)
        warm.append(time.perf_counter() - t)
    return cold, float(np.median(warm))


def query_sets(snap: recsys.Snapshot, n: int, rng: np.random.Generator) -> dict[str, list]:  # type: ignore[type-arg]
    ids = rng.choice(snap.track_ids, size=n).tolist()
    playlists = rng.choice(snap.playlist_ids, size=min(n, 4 * len(snap.playlist_ids))).tolist()
    seeds = [rng.choice(snap.track_ids, size=5, replace=False).tolist() for _ in range(n // 5)]
    named = [snap.track(t) for t in ids[: n // 5]]
    return {"ids": ids, "playlists": playlists, "seeds": seeds, "named": named}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", help="write the markdown report here (the README quotes its table)")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--model", help="reuse this saved snapshot instead of training (latency figures only)")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)

    start = time.perf_counter()
    snap = recsys.load(args.model) if args.model else recsys.train(args.data, recsys.TrainConfig(progress=False))
    train_s = time.perf_counter() - start
    train_text = f"{train_s:.1f} s ({snap.info.metrics['epochs_run']:.0f} epochs)" if not args.model else "not run"

    with tempfile.TemporaryDirectory() as tmp:
        saved = snap.save(Path(tmp) / "m")
        cold_s, warm_s = load_times(saved)
        size_mb = sum(f.stat().st_size for f in saved.iterdir()) / 1e6
        loaded = recsys.load(saved)

    q = query_sets(loaded, args.queries, rng)
    typed = [typo(f"{t.name} {t.artist}".lower(), rng) for t in q["named"]]
    resolve = getattr(recsys, "resolve", None)  # absent before the one-served-path split: not measured there
    latency = {
        "similar_tracks": timed(lambda t: loaded.similar_tracks(t, k=10), q["ids"]),
        "recommend_for_playlist": timed(lambda p: loaded.recommend_for_playlist(p, k=10), q["playlists"]),
        "recommend_for_tracks (5 seeds)": timed(lambda s: loaded.recommend_for_tracks(s, k=10), q["seeds"]),
        "search (one typo)": timed(lambda text: loaded.search(text, limit=5), typed),
    }
    if resolve is not None:
        latency["name resolution (one typo)"] = timed(lambda text: resolve(loaded, text), typed)
    hits = [loaded.search(text, limit=5) for text in typed]
    found = sum(any(h.track.track_id == t.track_id for h in hs) for hs, t in zip(hits, q["named"], strict=True))
    # Search lists one version per song (recsys.names.song_key): another version of the asked song is found too.
    same_song = sum(
        any(song_key(h.track.name, h.track.artist) == song_key(t.name, t.artist) for h in hs)
        for hs, t in zip(hits, q["named"], strict=True)
    )

    rows = [
        f"| training, default config | {train_text} | <= 120 s |",
        f"| snapshot load, first (files evicted from the page cache) | {cold_s:.2f} s ({size_mb:.1f} MB on disk) | "
        "<= 2 s |",
        f"| snapshot load, warm (median of 3) | {warm_s:.2f} s | |",
    ]
    for name, samples in latency.items():
        p50, p99 = percentiles(samples)
        target = "p99 <= 30 ms" if "search" in name or "resolution" in name else "p99 <= 5 ms"
        rows.append(f"| `{name}` p50 / p99 ({len(samples)} queries) | {p50:.2f} / {p99:.2f} ms | {target} |")
    rows.append(
        f"| search finds the exact track (title + artist, one typo) in its top 5 | {found / len(typed):.1%} | |"
    )
    rows.append(f"| … or a version of the same song (search lists one per song) | {same_song / len(typed):.1%} | |")
    command = "python bench/bench_core.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    text = "\n".join(
        [
            "# Speed (bench/bench_core.py)",
            "",
            f"Written by `{command}` on {platform.machine()}, {os.cpu_count()} CPU cores, "
            f"{torch.get_num_threads()} torch threads, single-threaded BLAS for queries; data: {Path(args.data).name} "
            f"({loaded.info.num_tracks:,} tracks, {loaded.info.num_playlists:,} playlists).",
            "",
            BEGIN,
            "| measure | value | target |",
            "|---|---|---|",
            *rows,
            END,
            "",
        ]
    )
    print(text)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
