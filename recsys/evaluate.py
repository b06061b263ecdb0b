"""`musicrec evaluate`: every model on every task over seeded splits, written as a markdown report with a plot.

The machinery lives in recsys.evaluation; this module is the command and the tuning entry point:

    from recsys.evaluate import quick_validation
    quick_validation("spotify_songs.csv", recsys.TrainConfig(epochs=50), seed=0)
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import shlex
import time
from datetime import UTC, datetime

from recsys.data import file_fingerprint, resolve_data_path
from recsys.evaluation import SplitConfig, quick_validation, run_evaluation, validation_split
from recsys.evaluation.harness import ALL_MODELS, TASKS
from recsys.evaluation.report import write_report

__all__ = ["add_cli", "quick_validation", "run_evaluation", "validation_split"]

DEFAULT_REPORT = "docs/quality.md"


def _command(args: argparse.Namespace) -> str:
    """The command line that reproduces this report."""
    parts = ["musicrec", "evaluate", "--report", args.report]
    if args.data:
        parts += ["--data", args.data]
    if args.seeds:
        parts += ["--seeds", *map(str, args.seeds)]
    if args.models:
        parts += ["--models", *args.models]
    if args.quick:
        parts.append("--quick")
    if args.tasks:
        parts += ["--tasks", *args.tasks]
    if args.threads:
        parts += ["--threads", str(args.threads)]
    return " ".join(shlex.quote(p) for p in parts)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    """Run the evaluation and write the report."""
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    seeds = [0] if args.quick and args.seeds is None else (args.seeds or [0, 1, 2])
    split_config = SplitConfig(max_similar_queries=300) if args.quick else SplitConfig()
    data = resolve_data_path(args.data)
    started = time.perf_counter()
    tasks = args.tasks or list(TASKS)
    results = run_evaluation(
        data, seeds, args.models, split_config, workdir=args.workdir, progress=not args.quiet, tasks=tasks
    )
    minutes = (time.perf_counter() - started) / 60
    command = _command(args)
    header = "\n".join(
        [
            "# Recommendation quality",
            "",
            f"Written by `{command}` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC in {minutes:.1f} min "
            f"({platform.machine()}, {os.cpu_count()} CPU cores, "
            f"{torch.get_num_threads()} torch threads, torch {torch.__version__}, CPU).",
            f"Data: `{data.name}` sha256 `{file_fingerprint(data)[:16]}…`; split seeds {', '.join(map(str, seeds))}; "
            f"split {dataclasses.asdict(split_config)}; tasks {', '.join(tasks)}.",
            "",
            "Each cell: mean over seeds, then in brackets the 95% bootstrap interval (queries resampled within each "
            "seed, 1000 draws). Every model trains on the same `train.csv` of each seed through the public API "
            "(`load_catalog`, `train_catalog`, or a baseline fitted on that catalogue); its `playlist_scores`, "
            "`track_scores`, `seed_scores` and `text_scores` over the whole catalogue are ranked by the rule the "
            "product serves (`recsys.ranking.top_k`: the query's own tracks excluded, one version per song). Models: "
            + ", ".join(f"`{r.name}`" for r in results)
            + " (see `recsys/baselines.py`; `default` is `TrainConfig()`).",
        ]
    )
    out = write_report(results, args.report, header)
    print(f"wrote {out} and {out.with_name(out.stem + '_recall.png')}")
    return 0


def add_cli(subparsers: argparse._SubParsersAction) -> None:
    """Register `musicrec evaluate` on the CLI's subparsers."""
    p = subparsers.add_parser("evaluate", help="evaluate every model on held-out splits; write a markdown report")
    p.add_argument("--report", default=DEFAULT_REPORT, help=f"markdown report path (default {DEFAULT_REPORT})")
    p.add_argument("--data", help="CSV path (default $MUSICREC_DATA or data/spotify_songs.csv)")
    p.add_argument("--seeds", type=int, nargs="+", help="split seeds (default 0 1 2; --quick: 0)")
    p.add_argument("--models", nargs="+", choices=list(ALL_MODELS), help="models to evaluate (default all)")
    p.add_argument("--quick", action="store_true", help="one seed and 300 similar-songs queries: a smoke run")
    p.add_argument(
        "--tasks",
        nargs="+",
        choices=list(TASKS),
        help="tasks to score (default all); e.g. --models default bm25_names --tasks text for the text queries alone",
    )
    p.add_argument("--workdir", help="keep the split CSVs here (default a temporary directory)")
    p.add_argument("--threads", type=int, help="torch CPU threads (1 avoids oversubscription on a busy machine)")
    p.add_argument("--quiet", action="store_true", help="no per-model progress lines")
    p.set_defaults(func=_cmd_evaluate)
