"""How the product's cost grows with the catalogue: ingestion, training epoch, memory, snapshot, queries.

For each size (playlist-track pairs) a synthetic catalogue is generated once (recsys.scale, Parquet, cached in
--data-dir), then each stage runs in its own process so that its peak RSS is its own:
  ingest  load_catalog: seconds and peak RSS
  train   load_catalog + the default model for --epochs epochs (no time budget): seconds per epoch (median),
          peak RSS, then the snapshot is built and saved: its size on disk
  serve   recsys.load: seconds; similar_tracks and search p50/p99; the longest stall of an asyncio event loop
          whose searches run in a worker thread, as the bot runs them
Then it fits time ~ size^a on a log-log scale, extrapolates to the Million Playlist Dataset (66M pairs), and writes
a markdown summary and log-log PNG plots.

python bench/bench_scale.py [--sizes 100000 1000000 10000000] [--out docs/scale.md]   (make bench-scale)
python bench/bench_scale.py --out docs/scale_mpd.md --remeasure 66000000 --stages serve   (serving code changed)
"""

from __future__ import annotations

import os

# Serving as the bot serves it (bot/__main__.py): single-threaded BLAS for one query vector.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import asyncio
import copy
import json
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from bench_core import percentiles, typo  # bench/ is on sys.path when this file runs as a script
from rss import peak_rss_gb  # each stage's process alone, not the orchestrator that started it

MPD_PAIRS = 66_000_000  # the Million Playlist Dataset's playlist-track pairs
STAGES = ("ingest", "train", "serve")


def stage_ingest(data: Path, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    from recsys.data import load_catalog

    t = time.perf_counter()
    catalog = load_catalog(data)
    return {
        "ingest_s": time.perf_counter() - t,
        "ingest_rss_gb": peak_rss_gb(),
        "tracks": catalog.num_tracks,
        "playlists": catalog.num_playlists,
        "pairs": catalog.num_pairs,
    }


def stage_train(data: Path, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    import recsys
    from recsys.api import build_snapshot
    from recsys.memory import keep_freed_memory
    from recsys.train import fit

    catalog = recsys.load_catalog(data)
    keep_freed_memory(catalog.num_pairs)  # as `musicrec train` does
    config = recsys.TrainConfig(epochs=args.epochs, eval_every=args.epochs, max_seconds=float("inf"), progress=False)
    result = fit(catalog, config)
    train_rss = peak_rss_gb()  # before the snapshot (name index, ANN index) is built
    out = work / "snapshot"
    shutil.rmtree(out, ignore_errors=True)
    build_snapshot(catalog, result, config).save(out)
    return {
        "epoch_s": result.metrics["seconds_per_epoch"],
        "epochs": result.metrics["epochs_run"],
        "loss_share": result.metrics["loss_share_of_epoch"],
        "train_rss_gb": train_rss,
        "snapshot_rss_gb": peak_rss_gb(),  # the whole stage: loading, training, building and saving the snapshot
        "snapshot_mb": sum(f.stat().st_size for f in out.iterdir()) / 1e6,
        "val_recall@20": result.metrics["val_recall@20"],
    }


async def event_loop_stall(snap: Any, queries: list[str], tick_s: float = 0.001) -> float:
    """Longest delay of a 1 ms timer while the queries run one after another in a worker thread."""
    worst = 0.0
    done = False

    async def ticker() -> None:
        nonlocal worst
        while not done:
            t = time.perf_counter()
            await asyncio.sleep(tick_s)
            worst = max(worst, time.perf_counter() - t - tick_s)

    task = asyncio.create_task(ticker())
    for q in queries:
        await asyncio.to_thread(snap.search, q, 5)
    done = True
    await task
    return worst


def stage_serve(data: Path, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    import recsys

    t = time.perf_counter()
    snap = recsys.load(work / "snapshot")
    load_s = time.perf_counter() - t
    rng = np.random.default_rng(0)
    ids = rng.choice(snap.track_ids, size=args.queries).tolist()
    snap.similar_tracks(ids[0], k=10)
    similar = []
    for tid in ids:
        t = time.perf_counter()
        snap.similar_tracks(tid, k=10)
        similar.append(time.perf_counter() - t)
    queries = []
    for j, tid in enumerate(ids[: args.search_queries]):
        track = snap.track(tid)
        queries.append(typo([track.name, f"{track.name} {track.artist}"][j % 2].lower(), rng))
    search = []
    for q in queries:
        t = time.perf_counter()
        snap.search(q, limit=5)
        search.append(time.perf_counter() - t)
    stall = asyncio.run(event_loop_stall(snap, queries[:100]))
    rss_gb = peak_rss_gb()  # before the brute-force answers below (they share the arrays, but not their scores)
    (sim50, sim99), (s50, s99) = percentiles(similar), percentiles(search)
    return {
        "load_s": load_s,
        "serve_rss_gb": rss_gb,
        "similar_recall@10": similar_recall(snap, ids[:100]),
        "similar_p50_ms": sim50,
        "similar_p99_ms": sim99,
        "search_p50_ms": s50,
        "search_p99_ms": s99,
        "loop_stall_ms": stall * 1000,
    }


def similar_recall(snap: Any, ids: list[str], k: int = 10) -> float | None:
    """Share of the brute-force similar songs that the snapshot's indexes (tracks and playlists) also answer, over
    the given queries; None when the snapshot has no index (its answers are the brute-force ones)."""
    if snap.ann is None and snap.playlist_ann is None:
        return None
    exact = copy.copy(snap)  # the same arrays and lists, every score computed over the whole catalogue
    exact.ann = exact.playlist_ann = None
    found = [
        {t.track_id for t in snap.similar_tracks(i, k)} & {t.track_id for t in exact.similar_tracks(i, k)} for i in ids
    ]
    return float(np.mean([len(f) / k for f in found]))


def _data_file(size: int, data_dir: Path) -> Path:
    path = data_dir / f"synthetic_{size}.parquet"
    if not path.exists():
        from recsys.scale import ScaleConfig, write_scale

        data_dir.mkdir(parents=True, exist_ok=True)
        write_scale(path, ScaleConfig(pairs=size))
    return path


def _run_stage(stage: str, size: int, args: argparse.Namespace) -> dict[str, Any]:
    _data_file(size, args.data_dir)  # generated here, once, not inside a timed stage
    work = args.data_dir / f"work_{size}"
    work.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, __file__, "--stage", stage, "--size", str(size), "--data-dir", str(args.data_dir)]
    cmd += ["--epochs", str(args.epochs), "--queries", str(args.queries), "--search-queries", str(args.search_queries)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"stage {stage} at {size} pairs failed:\n{proc.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"  {stage:<6} {size:>11,} pairs: {result}", flush=True)
    return result


def measure(size: int, args: argparse.Namespace, kept: dict[str, Any] | None = None) -> dict[str, Any]:
    """--stages at one size (default every stage), each in its own process: one report row, with when and at which
    commit. Stages not run keep their figures from the kept row."""
    if kept is None or set(args.stages) == set(STAGES):
        row: dict[str, Any] = {"size": size, "measured": _when()}
    else:
        row = kept | {"measured": f"{kept['measured']}; {'+'.join(args.stages)} again {_when()}"}
    for stage in STAGES:
        if stage in args.stages:
            row |= _run_stage(stage, size, args)
    return row


def _when() -> str:
    """Now and the checkout's commit (with "+changes" when the working tree differs from it)."""

    def git(*cmd: str) -> str:
        proc = subprocess.run(["git", *cmd], capture_output=True, text=True, check=False)
        return proc.stdout.strip() if proc.returncode == 0 else ""

    commit = git("rev-parse", "--short", "HEAD") or "unknown commit"
    changed = "+changes" if git("status", "--porcelain", "--untracked-files=no") else ""
    return f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {commit}{changed}"


def measured_rows(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every size measured; with --remeasure, only those sizes, the others' rows kept from --out's JSON."""
    if not args.remeasure:
        return [measure(size, args) for size in sorted(args.sizes)]
    kept = {r["size"]: r for r in json.loads(args.out.with_suffix(".json").read_text(encoding="utf-8"))}
    for size in args.remeasure:
        kept[size] = measure(size, args, kept.get(size))
    return [kept[size] for size in sorted(kept)]


# (key, label, unit) of every measured quantity, in report order.
METRICS = (
    ("ingest_s", "ingestion (Parquet)", "s"),
    ("ingest_rss_gb", "ingestion peak RSS", "GB"),
    ("epoch_s", "training epoch", "s"),
    ("train_rss_gb", "training peak RSS", "GB"),
    ("snapshot_rss_gb", "training + snapshot build and save peak RSS", "GB"),
    ("snapshot_mb", "snapshot on disk", "MB"),
    ("load_s", "snapshot load", "s"),
    ("similar_p50_ms", "similar_tracks p50", "ms"),
    ("similar_p99_ms", "similar_tracks p99", "ms"),
    ("search_p50_ms", "search p50", "ms"),
    ("search_p99_ms", "search p99", "ms"),
    ("loop_stall_ms", "longest event-loop stall", "ms"),
)


def growth(sizes: list[int], values: list[float]) -> tuple[float, float]:
    """Exponent a of value ~ size^a: least squares over all sizes, and between the two largest."""
    x, y = np.log(sizes), np.log(np.maximum(values, 1e-9))
    overall = float(np.polyfit(x, y, 1)[0])
    last = float((y[-1] - y[-2]) / (x[-1] - x[-2]))
    return overall, last


def convergence_estimate(row: dict[str, Any]) -> list[str]:
    """Training to convergence at the largest size, estimated (not measured) from its measured epoch time."""
    from recsys.config import TrainConfig

    cap = TrainConfig().epochs
    hours = {n: n * float(row["epoch_s"]) / 3600 for n in (30, 60, cap)}
    return [
        f"**Estimate, not a measurement**: training the default model to convergence at {row['size']:,} pairs on "
        f"this machine, from the measured epoch ({float(row['epoch_s']):.0f} s, median of {int(row['epochs'])}): "
        + ", ".join(f"{n} epochs ~ {h:.1f} h" for n, h in hours.items())
        + f" ({cap} is TrainConfig's epoch cap; the real data converged in 60, docs/speed.md). The default "
        f"wall-clock budget (TrainConfig.max_seconds = {TrainConfig().max_seconds:g} s) would stop it long before: "
        "at this size a run needs max_seconds raised (`musicrec train --max-seconds`)."
    ]


def _recall_cell(value: float | str | None) -> str:
    return "exact (no index)" if value is None else value if isinstance(value, str) else f"{value:.3f}"


def report(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    import torch

    sizes = [r["size"] for r in rows]
    extrapolate = sizes[-1] < MPD_PAIRS  # when the Million Playlist Dataset's size was measured, nothing is
    head = ["measure", *(f"{s:,} pairs" for s in sizes), "a (all)", "a (last two)"]
    head += [f"{MPD_PAIRS // 10**6}M pairs*"] if extrapolate else []
    lines = [
        "# Scale benchmark (bench/bench_scale.py)",
        "",
        f"Machine: {os.cpu_count()} cores ({platform.processor() or platform.machine()}), "
        f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB RAM, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads. "
        "Synthetic catalogues from recsys.scale (seed 0); "
        f"default model, {args.epochs} epochs; {args.queries} similar_tracks and {args.search_queries} search queries "
        "(one-typo titles and title + artist).",
        "",
        "<!-- begin scale -->",
        "| catalogue | " + " | ".join(f"{s:,} pairs" for s in sizes) + " |",
        "|---|" + "---|" * len(sizes),
        "| tracks / playlists | " + " | ".join(f"{r['tracks']:,} / {r['playlists']:,}" for r in rows) + " |",
        "| validation Recall@20 | " + " | ".join(f"{r['val_recall@20']:.3f}" for r in rows) + " |",
        "| share of an epoch in the loss chunks | " + " | ".join(f"{r['loss_share']:.0%}" for r in rows) + " |",
        "| similar songs from the indexes: recall@10 against brute force (100 queries) | "
        + " | ".join(_recall_cell(r.get("similar_recall@10", "n/a")) for r in rows)
        + " |",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for key, label, unit in METRICS:
        values = [float(r[key]) for r in rows]
        a_all, a_last = growth(sizes, values)
        extrapolated = values[-1] * (MPD_PAIRS / sizes[-1]) ** max(a_last, 0.0)
        cells = [f"{label} ({unit})", *(f"{v:.3g}" for v in values), f"{a_all:.2f}", f"{a_last:.2f}"]
        lines.append("| " + " | ".join([*cells, *([f"{extrapolated:.3g}"] if extrapolate else [])]) + " |")
    footnote = (
        "a: fitted exponent of value ~ pairs^a (log-log least squares over all sizes; and between the two largest, "
        "which small-size overheads distort least)."
    )
    if extrapolate:
        footnote += (
            " *Extrapolated from the largest size with the last-two exponent (floored at 0): a paper estimate, "
            "not a measurement."
        )
    when = [f"{r['size']:,} pairs {r['measured']}" for r in rows if "measured" in r]
    if when:
        footnote += " Measured: " + "; ".join(when) + "."
    lines += [
        "<!-- end scale -->",
        "",
        footnote,
        "",
        "<!-- begin convergence -->",
        *convergence_estimate(rows[-1]),
        "<!-- end convergence -->",
        "",
    ]
    lines += [
        " ".join(f"![{kind}]({args.out.stem}_{kind}.png)" for kind in ("time", "memory", "latency")),
        "",
    ]
    return "\n".join(lines)


def plots(rows: list[dict[str, Any]], out: Path) -> None:
    """Log-log plots next to the report out, named after it (docs/scale.md: docs/scale_time.png, ...)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = np.array([r["size"] for r in rows], dtype=float)
    groups = {
        "time": ("seconds", ("ingest_s", "epoch_s", "load_s")),
        "memory": ("GB (RSS) / GB (disk)", ("ingest_rss_gb", "train_rss_gb", "snapshot_rss_gb", "snapshot_mb")),
        "latency": ("milliseconds", ("similar_p99_ms", "search_p99_ms", "loop_stall_ms")),
    }
    labels = {k: f"{label} ({unit})" for k, label, unit in METRICS}
    for name, (ylabel, keys) in groups.items():
        fig, ax = plt.subplots(figsize=(5.5, 4))
        for key in keys:
            values = np.array([float(r[key]) for r in rows]) / (1000.0 if key == "snapshot_mb" else 1.0)
            a_all, _ = growth(list(sizes.astype(int)), list(values))
            label = labels[key].replace("(MB)", "(GB)")
            ax.loglog(sizes, values, "o-", label=f"{label}, a={a_all:.2f}")
        ax.loglog(sizes, sizes / sizes[0] * ax.get_ylim()[0] * 2, ":", color="grey", label="linear (a=1)")
        ax.set_xlabel("playlist-track pairs")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out.parent / f"{out.stem}_{name}.png", dpi=110)
        plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000, 10_000_000])
    parser.add_argument("--data-dir", type=Path, default=Path("data/scale"), help="generated catalogues (cached)")
    parser.add_argument("--out", type=Path, default=Path("docs/scale.md"))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--search-queries", type=int, default=300)
    parser.add_argument(
        "--from-json", action="store_true", help="rewrite the report and plots from --out's JSON (no measuring)"
    )
    parser.add_argument(
        "--remeasure", type=int, nargs="+", help="measure only these sizes again; the other rows come from --out's JSON"
    )
    parser.add_argument(
        "--stages",
        choices=STAGES,
        nargs="+",
        default=list(STAGES),
        help="with --remeasure, only these stages (serve: on the snapshot the last train stage saved in --data-dir)",
    )
    parser.add_argument("--stage", choices=STAGES, help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.stage:  # a worker process: one stage, one JSON line on stdout
        import logging

        logging.disable(logging.WARNING)
        run = {"ingest": stage_ingest, "train": stage_train, "serve": stage_serve}[args.stage]
        result = run(_data_file(args.size, args.data_dir), args.data_dir / f"work_{args.size}", args)
        print(json.dumps(result))
        return

    if set(args.stages) != set(STAGES) and not args.remeasure:
        parser.error("--stages needs --remeasure: the other stages' figures come from --out's JSON")
    if args.from_json:
        rows = json.loads(args.out.with_suffix(".json").read_text(encoding="utf-8"))
    else:
        rows = measured_rows(args)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".json").write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
    plots(rows, args.out)
    text = report(rows, args)
    args.out.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
