"""The markdown quality report and its Recall@k plot (matplotlib is imported lazily: the "report" extra)."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

from recsys.evaluation.harness import CURVE_K, ModelResult

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
)


def _cell(stat: tuple[float, float, float]) -> str:
    mean, low, high = stat
    if math.isnan(mean):
        return "n/a"
    return f"{mean:.4f} ({low:.4f}–{high:.4f})"


# The targets: the default model must beat the strongest baseline by 15% relative on these. Similar songs are
# judged on cold queries: a warm query's own training playlist-mates count as relevant, which memorising models
# reproduce (item-kNN scores ~1.0 on warm queries), so the all-query figure mostly measures the warm share.
TARGET_METRICS = ("continuation/recall@20", "continuation/recall@20/cold", "similar/precision@10/cold")
# The README's table (quoted from the report's "summary" block): (column, metric key).
SUMMARY_COLUMNS = (
    ("continuation Recall@20", "continuation/recall@20"),
    ("… cold targets", "continuation/recall@20/cold"),
    ("similar songs P@10, cold queries", "similar/precision@10/cold"),
    ("… all queries", "similar/precision@10"),
    ("new playlists Recall@20", "new/recall@20"),
)
TARGET_LIFT = 1.15


def _target_lines(
    results: Sequence[ModelResult], summaries: dict[str, dict[str, tuple[float, float, float]]]
) -> list[str]:
    """Default versus the strongest other model on each target metric, with the CI-overlap verdict."""
    if "default" not in summaries or len(summaries) < 2:
        return []
    lines = [
        "## Targets",
        "",
        "Default model versus the strongest other model per metric (target: +15% relative, "
        "non-overlapping 95% intervals).",
        "",
        "<!-- begin targets -->",
        "| metric | default | strongest other | lift | met |",
        "|---|---|---|---|---|",
    ]
    for key in TARGET_METRICS:
        others = [r.name for r in results if r.name != "default" and not math.isnan(summaries[r.name][key][0])]
        if not others:
            continue
        best = max(others, key=lambda n: summaries[n][key][0])
        mean, low, _ = summaries["default"][key]
        b_mean, _, b_high = summaries[best][key]
        lift = mean / b_mean - 1 if b_mean > 0 else float("inf")
        met = mean >= TARGET_LIFT * b_mean and low > b_high
        lines.append(f"| {key} | {mean:.4f} | {best} {b_mean:.4f} | {lift:+.0%} | {'yes' if met else 'no'} |")
    return [*lines, "<!-- end targets -->", ""]


def _summary_lines(
    results: Sequence[ModelResult], summaries: dict[str, dict[str, tuple[float, float, float]]]
) -> list[str]:
    """The headline table (the README quotes it): the best model per column in bold, the default's intervals."""
    lines = ["## Summary", "", "<!-- begin summary -->"]
    lines.append("| model | " + " | ".join(label for label, _ in SUMMARY_COLUMNS) + " |")
    lines.append("|---|" + "---|" * len(SUMMARY_COLUMNS))
    best = {key: max(s[key][0] for s in summaries.values()) for _, key in SUMMARY_COLUMNS}
    for r in results:
        cells = []
        for _, key in SUMMARY_COLUMNS:
            mean, low, high = summaries[r.name][key]
            cell = f"{mean:.4f}" + (f" ({low:.3f}–{high:.3f})" if r.name == "default" else "")
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
