"""Analyses of task relationships: transfer statistics (:mod:`.transfer`), task grouping
(:mod:`.grouping`) and the early forecast of transfer by the cheap signals (:mod:`.forecast`); single-task baselines and Δm of one run (:mod:`.baselines`, imported as a
module). Pure functions of numbers: no training, no torch."""

from __future__ import annotations

from mtl_core.analysis.forecast import (
    FORECAST_SIGNALS,
    FORECAST_THRESHOLD,
    forecast_sentence,
    groups_ceiling,
    pair_spearman,
    transfer_forecast,
)
from mtl_core.analysis.grouping import (
    EXHAUSTIVE_LIMIT,
    Grouping,
    RankAgreement,
    Suggestion,
    adjusted_rand_index,
    best_grouping,
    best_groupings,
    grouping_score,
    rank_agreement,
    same_partition,
    set_partitions,
    suggest_grouping,
    task_scores,
)
from mtl_core.analysis.transfer import (
    SeedSummary,
    TransferMatrix,
    delta_m,
    holm_adjust,
    nan_to_none,
    relative_change,
    summarize_seeds,
    transfer_matrix,
)

__all__ = [
    "FORECAST_SIGNALS",
    "FORECAST_THRESHOLD",
    "forecast_sentence",
    "groups_ceiling",
    "pair_spearman",
    "transfer_forecast",
    "EXHAUSTIVE_LIMIT",
    "Grouping",
    "adjusted_rand_index",
    "same_partition",
    "best_grouping",
    "best_groupings",
    "grouping_score",
    "set_partitions",
    "task_scores",
    "Suggestion",
    "suggest_grouping",
    "RankAgreement",
    "rank_agreement",
    "SeedSummary",
    "TransferMatrix",
    "delta_m",
    "holm_adjust",
    "nan_to_none",
    "relative_change",
    "summarize_seeds",
    "transfer_matrix",
]
