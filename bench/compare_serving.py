"""Did a change make similar songs faster, or did the machine? Times an older commit's recsys and this tree's on the
same saved snapshot in one process, in alternating blocks of queries, so both meet the same machine: single runs
of bench/bench_scale_serving.py on one day moved by up to half here.

The snapshot is bench_scale_serving.py's synthetic catalogue of about --tracks tracks, built once and saved under
--cache (data/scale/serving-<tracks> by default). The older commit is checked out in a temporary git worktree; each
tree's recsys loads the snapshot with its own code. Per query, the fastest of --runs runs counts (what the code
costs, not the machine's worst moment); recall@10 is against brute force under the same rule (this tree's code).

With --rebuild-index each tree builds its own track index from the snapshot's embeddings (what a retrain under
its code would save) instead of both reading the saved one: for a change to how the index is built.

python bench/compare_serving.py COMMIT [--tracks 2260000] [--queries 1000] [--runs 3] [--block 100] [--rebuild-index]
"""

from __future__ import annotations

import argparse
import gc
import itertools
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent.parent
BUCKETS = (0, 2, 8, 16, 32, 64, 128, 512, 4096, 1 << 40)  # artist sizes (tracks), for the per-bucket medians


def _recsys_from(tree: Path | None) -> types.ModuleType:
    """The recsys package of a checkout (None: this tree's, as installed), imported afresh."""
    for name in [m for m in sys.modules if m == "recsys" or m.startswith("recsys.")]:
        del sys.modules[name]
    finders = list(sys.meta_path)
    if tree is not None:  # an editable install's finder would hand back this tree's recsys
        sys.meta_path[:] = [f for f in finders if "__editable__" not in repr(f)]
        sys.path.insert(0, str(tree))
    try:
        import recsys

        module: types.ModuleType = recsys
    finally:
        if tree is not None:
            sys.path.remove(str(tree))
            sys.meta_path[:] = finders
    return module


def _snapshot_dir(tracks: int, cache: Path) -> Path:
    """The saved snapshot of bench_scale_serving's catalogue of ~tracks tracks (built and saved once)."""
    out = cache / f"serving-{tracks}"
    if not (out / "meta.json").is_file():
        sys.path.insert(0, str(HERE / "bench"))
        from bench_scale_serving import _info, synthetic_arrays

        from recsys.ann import AnnConfig
        from recsys.name_index import NameIndexConfig
        from recsys.snapshot import Snapshot

        arrays = synthetic_arrays(tracks)
        info = _info(len(arrays["track_ids"]), len(arrays["playlist_ids"]))
        config, names = AnnConfig(min_items=0), NameIndexConfig(min_items=0)
        Snapshot(arrays, info, ann_config=config, name_index_config=names).save(out)
    return out


def _loaded(recsys: types.ModuleType, model: Path, rebuild_index: bool) -> object:
    """The saved snapshot as this recsys loads it; rebuild_index: with the track index built afresh by its code."""
    snap = recsys.load(model)
    if not rebuild_index:
        return snap
    arrays = {key: value for key, value in snap._arrays.items() if key != recsys.ann.INDEX_KEY}
    return recsys.Snapshot(arrays, snap.info, ann_config=recsys.ann.AnnConfig(min_items=0))


def _time(snaps: dict[str, object], ids: list[str], runs: int, block: int) -> dict[str, np.ndarray]:
    """Per snapshot, each query's fastest run in seconds; the snapshots take turns block by block."""
    best = {name: np.full(len(ids), np.inf) for name in snaps}
    for run in range(runs):
        order = list(snaps.items()) if run % 2 == 0 else list(snaps.items())[::-1]
        for start in range(0, len(ids), block):
            for name, snap in order:
                for j in range(start, min(start + block, len(ids))):
                    t = time.perf_counter()
                    snap.similar_tracks(ids[j], k=10)  # type: ignore[attr-defined]
                    best[name][j] = min(best[name][j], time.perf_counter() - t)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("commit", help="the older commit (or any git revision)")
    parser.add_argument("--tracks", type=int, default=2_260_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--block", type=int, default=100)
    parser.add_argument("--cache", type=Path, default=HERE / "data" / "scale")
    parser.add_argument("--rebuild-index", action="store_true", help="each tree builds its own track index")
    args = parser.parse_args()
    model = _snapshot_dir(args.tracks, args.cache)
    with tempfile.TemporaryDirectory(prefix="musicrec-old-") as tmp:
        old_tree = Path(tmp) / "tree"
        subprocess.run(
            ["git", "-C", str(HERE), "worktree", "add", "--detach", "--force", str(old_tree), args.commit],
            check=True,
            capture_output=True,
        )
        try:
            old = _loaded(_recsys_from(old_tree), model, args.rebuild_index)
            new_recsys = _recsys_from(None)
            new = _loaded(new_recsys, model, args.rebuild_index)
        finally:
            subprocess.run(["git", "-C", str(HERE), "worktree", "remove", "--force", str(old_tree)], check=True)
    rev = subprocess.run(["git", "-C", str(HERE), "rev-parse", "--short", args.commit], capture_output=True, text=True)
    snaps = {f"{rev.stdout.strip()} (older)": old, "this tree": new}
    ids = np.random.default_rng(1).choice(new.track_ids, size=args.queries).tolist()
    gc.collect()
    gc.freeze()
    for snap in snaps.values():
        for tid in ids[:50]:  # warm-up
            snap.similar_tracks(tid, k=10)
    best = _time(snaps, ids, args.runs, args.block)
    exact = new_recsys.Snapshot(dict(new._arrays), new.info, ann_config=new_recsys.ann.AnnConfig(min_items=1 << 62))
    truth = [{t.track_id for t in exact.similar_tracks(tid, k=10)} for tid in ids]
    sizes = np.array([new.artist_size(int(new.artist_groups[new._idx(t)])) for t in ids])
    print(f"{len(new.track_ids):,} tracks, {len(ids)} queries, fastest of {args.runs} runs per query")
    for name, snap in snaps.items():
        ms = best[name] * 1000
        recall = np.mean(
            [
                len(want & {t.track_id for t in snap.similar_tracks(tid, k=10)}) / 10
                for tid, want in zip(ids, truth, strict=True)
            ]
        )
        p50, p90, p99 = np.percentile(ms, [50, 90, 99])
        print(f"{name}: p50 {p50:.2f} / p90 {p90:.2f} / p99 {p99:.2f} ms, recall@10 {recall:.4f}")
    for lo, hi in itertools.pairwise(BUCKETS):
        if (inside := (sizes >= lo) & (sizes < hi)).any():
            medians = ", ".join(f"{name} {np.median(best[name][inside]) * 1000:.2f}" for name in snaps)
            top = f"{hi - 1}" if hi < 1 << 40 else "more"
            print(f"  artists of {lo}-{top} tracks ({inside.sum()} queries), median ms: {medians}")


if __name__ == "__main__":
    main()
