"""TAG affinity of one run, from its per-epoch records (Fifty et al., "Efficiently Identifying Task
Groupings for Multi-Task Learning", NeurIPS 2021). Pure numpy: no training, no torch."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["run_affinity"]


def run_affinity(records: Sequence[tuple[Any, Mapping[str, Any]]], best_epoch: int | None, size: int) -> np.ndarray | None:
    """One run's TAG affinity from its per-epoch ``affinity`` records ``(matrix, extra)``: the
    elementwise **median over the epochs up to the run's best epoch** (all epochs when unknown).

    Chosen by measurement (``benchmarks/validity.py``; planted, 4 and 8 tasks, 6 seeds each): late
    in a run, once the shared function is learnt, a lookahead step on one task mostly fits its own
    rows and its noise, so in-group affinities turn negative in spikes; the mean over all epochs
    then recovered the planted groups in 7 of 12 runs, the mean up to the best epoch in 7, the
    median up to the best epoch in 12.
    """
    epochs = [extra.get("epoch") for _, extra in records]
    keep = [
        np.asarray(value, dtype=float) for (value, _), epoch in zip(records, epochs, strict=True)
        if best_epoch is None or epoch is None or epoch <= best_epoch
    ] or [np.asarray(value, dtype=float) for value, _ in records]
    keep = [matrix for matrix in keep if matrix.shape == (size, size)]
    if not keep:
        return None
    stack = np.stack(keep)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN cells stay NaN
        return np.nanmedian(stack, axis=0)
