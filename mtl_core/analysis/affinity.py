"""TAG affinity of one run, from its per-epoch records (Fifty et al., "Efficiently Identifying Task
Groupings for Multi-Task Learning", NeurIPS 2021). Pure numpy: no training, no torch."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["run_affinity"]


def run_affinity(records: Sequence[tuple[Any, Mapping[str, Any]]], best_epoch: Any, size: int) -> np.ndarray | None:
    """One run's TAG affinity from its per-epoch ``affinity`` records ``(matrix, extra)``: the
    elementwise **median over the epochs up to the run's best epoch** (all epochs when
    ``best_epoch`` is unknown: None or not a positive integer, as in a run record without one).

    Chosen by measurement (one-off runs on ``planted``, 4 and 8 tasks, 6 seeds each, before
    ``benchmarks/validity.py`` confirmed it on 15 studies): late
    in a run, once the shared function is learnt, a lookahead step on one task mostly fits its own
    rows and its noise, so in-group affinities turn negative in spikes; the mean over all epochs
    then recovered the planted groups in 7 of 12 runs, the mean up to the best epoch in 7, the
    median up to the best epoch in 12.
    """
    if isinstance(best_epoch, bool) or not isinstance(best_epoch, int) or best_epoch < 1:
        best_epoch = None
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
