"""The markdown quality report and its Recall@k plot (matplotlib is imported lazily: the "report" extra)."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

from recsys.evaluation.harness import CURVE_K, ModelResult
from recsys.evaluation.metrics import bootstrap_ratio_ci

# (heading, note, [(column label, metric key)])
TABLES: tuple[tuple[str, str, tuple[tuple[str, str], ...]], ...] = (
    (
        "Playlist continuation",
        "20% of each playlist (>= 10 tracks) held out; the whole catalogue ranked, the playlist's training tracks "
        "excluded. Cold = targets with no training playlist (catalogue-only in training), warm = the rest.",
        (
            ("Recall@20", "continuation/recall@20"),
            ("Recall@20 cold", "continuation/recall@20/cold"),
            ("Recall@20 warm", "continuation/recall@20/warm"),
            ("NDCG@20", "continuation/ndcg@20"),
            ("NDCG@20 cold", "continuation/ndcg@20/cold"),
            ("NDCG@20 warm", "continuation/ndcg@20/warm"),
            ("R-prec", "continuation/r_precision"),
            ("R-prec cold", "continuation/r_precision/cold"),
            ("R-prec warm", "continuation/r_precision/warm"),
        ),
    ),
    (
        "Similar songs",
        "Held-out tracks as queries; relevant = every other track sharing a playlist with the query in the full "
        "data (other versions of the same song excluded). Cold/warm = the query's training degree. A warm query's "
        "training playlist-mates are relevant by this definition, so models that memorise co-membership score "
        "near 1 on warm queries; the cold column is the hard part.",
        (
            ("P@10", "similar/precision@10"),
            ("P@10 cold", "similar/precision@10/cold"),
            ("P@10 warm", "similar/precision@10/warm"),
            ("NDCG@10", "similar/ndcg@10"),
            ("NDCG@10 cold", "similar/ndcg@10/cold"),
        ),
    ),
    (
        "New playlists",
        "Whole playlists held out and continued from their first 5 tracks (seed_scores / recommend_for_tracks).",
        (("Recall@20", "new/recall@20"), ("NDCG@20", "new/ndcg@20")),
    ),
    (
        "Text queries",
        'The same held-out playlists queried by their name alone (the "title only" task; `text_scores` / '
        "`recommend_for_text`); every track of the playlist is relevant, nothing is excluded. n/a: the model ranks no "
        "text. `bm25_names`: the tracks of training playlists whose names share words with the query, by BM25, then "
        "popularity.",
        (("Recall@20", "text/recall@20"), ("NDCG@20", "text/ndcg@20")),
    ),
)


def _cell(stat: tuple[float, float, float], digits: int = 4) -> str:
    mean, low, high = stat
    if math.isnan(mean):
        return "n/a"
    return f"{mean:.{digits}f} ({low:.{digits}f}–{high:.{digits}f})"


# What the served lists are like beside their accuracy: (task label, metric key prefix, list length).
LIST_TASKS = (
    ("similar songs", "similar", 10),
    ("continuation", "continuation", 20),
    ("new playlists", "new", 20),
    ("words", "text", 20),
)
LISTS_NOTE = (
    "What the served lists are like, from the same lists the tables above score. *Artists*: distinct artists "
    "(`recsys.names.artist_keys`, the lower-cased name) in the top 10 of each list, mean over queries (10 = no artist "
    "twice; a query answered with no list, such as a playlist name with no known word, counts 0). *Coverage*: "
    "share of the catalogue's tracks shown in at least one list of the task, over all its queries "
    "(top 10 similar songs, top 20 otherwise); in brackets the lowest and highest seed, not a bootstrap interval. "
    "*Popularity*: mean Spotify `track_popularity` (0–100) of the listed songs, mean over queries; the "
    "*held-out targets* row is the mean popularity of the songs each query should find: a model above it leans "
    "to hits, below it to the long tail."
)


def _list_lines(
    results: Sequence[ModelResult], summaries: dict[str, dict[str, tuple[float, float, float]]]
) -> list[str]:
    """The "Lists people enjoy" table: artists, coverage and popularity per task, and the targets' popularity."""
    columns = [
        (f"{label}: {what}", f"{prefix}/{key}", digits)
        for label, prefix, k in LIST_TASKS
        for what, key, digits in (
            ("artists", "artists@10", 2),
            ("coverage", f"coverage@{k}", 4),
            ("popularity", f"popularity@{k}", 1),
        )
    ]
    columns = [c for c in columns if any(c[1] in summaries[r.name] for r in results)]  # the tasks evaluated
    if not columns:
        return []
    nan = (math.nan, math.nan, math.nan)

    def targets(key: str) -> tuple[float, float, float]:
        """A task's held-out targets' popularity: the same for every model that lists songs for it (same queries)."""
        name = key.split("/")[0] + "/target_popularity"
        return next((summaries[r.name][name] for r in results if name in summaries[r.name]), nan)

    lines = ["## Lists people enjoy", "", LISTS_NOTE, "", "<!-- begin lists -->"]
    lines.append("| model | " + " | ".join(label for label, _, _ in columns) + " |")
    lines.append("|---|" + "---|" * len(columns))
    for r in results:
        cells = [_cell(summaries[r.name].get(key, nan), d) for _, key, d in columns]
        lines.append(f"| {r.name} | " + " | ".join(cells) + " |")
    cells = [_cell(targets(key), d) if "/popularity@" in key else "–" for _, key, d in columns]
    return [*lines, "| *held-out targets* | " + " | ".join(cells) + " |", "<!-- end lists -->", ""]


# The targets (metric, required ratio to the strongest of `versus`, None: every other model). Similar songs are
# judged on cold queries: a warm query's own training playlist-mates count as relevant, which memorising models
# reproduce (item-kNN scores ~1.0 on warm queries), so the all-query figure mostly measures the warm share. Warm
# continuation targets are the item-item models' home ground: the goal there is to match the best of them.
TARGETS: tuple[tuple[str, float, tuple[str, ...] | None], ...] = (
    ("continuation/recall@20", 1.15, None),
    ("continuation/recall@20/cold", 1.15, None),
    ("similar/precision@10/cold", 1.15, None),
    ("new/recall@20", 1.15, None),
    ("continuation/recall@20/warm", 1.0, ("item_knn", "rp3beta", "ease")),
    ("text/recall@20", 1.20, ("bm25_names",)),
)
TARGET_METRICS = tuple(metric for metric, _, _ in TARGETS)
# The README's table (quoted from the report's "summary" block): (column, metric key).
SUMMARY_COLUMNS = (
    ("continuation Recall@20", "continuation/recall@20"),
    ("… cold targets", "continuation/recall@20/cold"),
    ("similar songs P@10, cold queries", "similar/precision@10/cold"),
    ("… all queries", "similar/precision@10"),
    ("new playlists Recall@20", "new/recall@20"),
    ("words (playlist names) Recall@20", "text/recall@20"),
)


def _target_lines(
    results: Sequence[ModelResult], summaries: dict[str, dict[str, tuple[float, float, float]]]
) -> list[str]:
    """Default versus the strongest other model on each target metric: the lift with its paired interval, the
    verdict."""
    if "default" not in summaries or len(summaries) < 2:
        return []
    lines = [
        "## Targets",
        "",
        "Default model versus the strongest other model per metric. Lift: the default's mean over the other's, and "
        "in brackets its 95% paired bootstrap interval (each query's two values resampled together within each "
        "seed: the lift's own interval, narrower than the two models' intervals side by side when both find the "
        "same queries hard). Met: for a target above x1.00, the whole interval reaches the target ratio; for "
        "x1.00, the default's mean is at least the other's.",
        "",
        "<!-- begin targets -->",
        "| metric | target | default | strongest other | lift | met |",
        "|---|---|---|---|---|---|",
    ]
    by_name = {r.name: r for r in results}
    for key, ratio, versus in TARGETS:
        # Rivals are other models: the default's own variants (default_uncapped) are not.
        rivals = [r.name for r in results if not r.name.startswith("default") and (versus is None or r.name in versus)]
        others = [name for name in rivals if not math.isnan(summaries[name][key][0])]
        if not others or math.isnan(summaries["default"][key][0]):
            continue
        best = max(others, key=lambda n: summaries[n][key][0])
        ours, theirs = ([s.values[key] for s in by_name[name].per_seed] for name in ("default", best))
        lift, low, high = bootstrap_ratio_ci(ours, theirs)
        met = low >= ratio if ratio > 1.0 else lift >= ratio
        target = f"x{ratio:.2f} " + ("any other" if versus is None else "/".join(versus))
        mean, b_mean = summaries["default"][key][0], summaries[best][key][0]
        lines.append(
            f"| {key} | {target} | {mean:.4f} | {best} {b_mean:.4f} | {lift - 1:+.0%} ({low - 1:+.0%} to "
            f"{high - 1:+.0%}) | {'yes' if met else 'no'} |"
        )
    return [*lines, "<!-- end targets -->", ""]


def _nan_last(value: float) -> float:
    """Sort key: n/a (NaN, a task the model does not score) below every number."""
    return -math.inf if math.isnan(value) else value


def _summary_lines(
    results: Sequence[ModelResult], summaries: dict[str, dict[str, tuple[float, float, float]]]
) -> list[str]:
    """The headline table (the README quotes it): the best model per column in bold, the default's intervals."""
    lines = ["## Summary", "", "<!-- begin summary -->"]
    lines.append("| model | " + " | ".join(label for label, _ in SUMMARY_COLUMNS) + " |")
    lines.append("|---|" + "---|" * len(SUMMARY_COLUMNS))
    best = {key: max((s[key][0] for s in summaries.values()), key=_nan_last) for _, key in SUMMARY_COLUMNS}
    for r in results:
        cells = []
        for _, key in SUMMARY_COLUMNS:
            mean, low, high = summaries[r.name][key]
            cell = f"{mean:.4f}" + (f" ({low:.3f}–{high:.3f})" if r.name == "default" else "")
            cell = "n/a" if math.isnan(mean) else cell
            cells.append(f"**{cell}**" if mean == best[key] else cell)
        lines.append(f"| {r.name} | " + " | ".join(cells) + " |")
    return [*lines, "<!-- end summary -->", ""]


def render_markdown(results: Sequence[ModelResult], header: str, plot_name: str | None) -> str:
    """The report body: one table per task (mean over seeds, 95% bootstrap CI in brackets), timings, plot link."""
    summaries = {r.name: r.summary() for r in results}
    lines = [header, "", *_summary_lines(results, summaries), *_target_lines(results, summaries)]
    for title, note, columns in TABLES:
        lines += [f"## {title}", "", note, ""]
        lines.append("| model | " + " | ".join(label for label, _ in columns) + " |")
        lines.append("|---|" + "---|" * len(columns))
        for r in results:
            lines.append(f"| {r.name} | " + " | ".join(_cell(summaries[r.name][key]) for _, key in columns) + " |")
        lines.append("")
    lines += _list_lines(results, summaries)
    lines += ["## Wall time per model", "", "Mean seconds per seed on this machine (fit, then scoring every task).", ""]
    lines += ["| model | fit s | eval s |", "|---|---|---|"]
    lines += [f"| {r.name} | {r.fit_seconds():.1f} | {r.eval_seconds():.1f} |" for r in results]
    lines.append("")
    if plot_name:
        lines += ["## Recall@k, playlist continuation", "", f"![Recall@k for k = 1..{CURVE_K}]({plot_name})", ""]
    return "\n".join(lines)


def plot_recall_curves(results: Sequence[ModelResult], path: str | os.PathLike[str]) -> Path:
    """One line per model: mean continuation Recall@k over seeds for k = 1..100."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError("the report plot needs matplotlib: pip install 'musicrec[report]'") from exc
    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    ks = range(1, CURVE_K + 1)
    for r in results:
        ax.plot(ks, r.curve(), label=r.name, linewidth=2 if r.name == "default" else 1.2)
    ax.set_xlabel("k")
    ax.set_ylabel("Recall@k (playlist continuation)")
    ax.set_xlim(1, CURVE_K)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, out)
    return out


def write_report(results: Sequence[ModelResult], path: str | os.PathLike[str], header: str) -> Path:
    """Write the markdown report and, beside it, <stem>_recall.png; atomically each."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    plot = plot_recall_curves(results, out.with_name(out.stem + "_recall.png"))
    text = render_markdown(results, header, plot.name)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, out)
    return out
