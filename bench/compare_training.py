"""Does a training change help? The default TrainConfig against variants, each trained on the inner validation split
of every seed (recsys.evaluation.quick_validation: the test split is cut off first), without the wall-clock budget.

python bench/compare_training.py --data /path/to/spotify_songs.csv --variant loss.skip_playlist_members=false
       [--variant model.embedding_dim=128 ...] [--seeds 0 1 2]

Each --variant is one or more comma-separated dotted TrainConfig fields. Prints, per setting, each validation
metric's mean over seeds and its per-seed values, and the variant's change against the default.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from typing import Any

import numpy as np

import recsys
from recsys.evaluation import quick_validation

BASE = recsys.TrainConfig(progress=False, max_seconds=600.0)


def _parse(value: str) -> Any:
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def with_fields(config: Any, assignments: str) -> Any:
    """config with "a.b=1,c=x" applied (nested frozen dataclasses)."""
    for assignment in assignments.split(","):
        path, _, raw = assignment.partition("=")
        head, _, rest = path.strip().partition(".")
        if not hasattr(config, head):
            raise SystemExit(f"{type(config).__name__} has no field {head!r}")
        value = with_fields(getattr(config, head), f"{rest}={raw}") if rest else _parse(raw.strip())
        config = dataclasses.replace(config, **{head: value})
    return config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variant", action="append", default=[], help="dotted TrainConfig fields, e.g. loss.kind=bpr")
    args = parser.parse_args(argv)
    settings = {"default": BASE} | {v: with_fields(BASE, v) for v in args.variant}
    found: dict[str, list[dict[str, float]]] = {}
    for name, config in settings.items():
        found[name] = [quick_validation(args.data, config, seed) for seed in args.seeds]
        print(f"{name}: trained on seeds {args.seeds}", file=sys.stderr, flush=True)
    keys = list(found["default"][0])
    for name, runs in found.items():
        print(f"\n{name}")
        for key in keys:
            values = [r[key] for r in runs]
            base = float(np.mean([r[key] for r in found["default"]]))
            change = f"  {100 * (np.mean(values) / base - 1):+.1f}%" if name != "default" and base else ""
            per_seed = " ".join(f"{v:.4f}" for v in values)
            print(f"  {key:<30} {np.mean(values):.4f}  (seeds {per_seed}){change}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
