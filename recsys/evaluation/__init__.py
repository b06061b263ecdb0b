"""Offline evaluation: seeded splits, ranking metrics, the harness that runs every model, and the report."""

from recsys.evaluation.harness import (
    ModelResult,
    SplitScores,
    evaluate_scorer,
    quick_validation,
    run_evaluation,
    validation_split,
)
from recsys.evaluation.metrics import (
    bootstrap_mean_ci,
    bootstrap_ratio_ci,
    ndcg_at_k,
    precision_at_k,
    r_precision,
    recall_at_k,
    recall_curve,
)
from recsys.evaluation.splits import Split, SplitConfig, make_split

__all__ = [
    "ModelResult",
    "Split",
    "SplitConfig",
    "SplitScores",
    "bootstrap_mean_ci",
    "bootstrap_ratio_ci",
    "evaluate_scorer",
    "make_split",
    "ndcg_at_k",
    "precision_at_k",
    "quick_validation",
    "r_precision",
    "recall_at_k",
    "recall_curve",
    "run_evaluation",
    "validation_split",
]
