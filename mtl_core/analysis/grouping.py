"""Task grouping: the best partition of the tasks into at most ``k`` groups, from a score matrix.

``scores[a][b]`` is how much task ``b`` helps task ``a`` (row = the task served, column = the
helper): pairwise transfer(a ← b) (Standley et al., "Which Tasks Should Be Learned Together in
Multi-task Learning?", ICML 2020), TAG's inter-task affinity Z_{b→a} (Fifty et al., "Efficiently
Identifying Task Groupings for Multi-Task Learning", NeurIPS 2021; pass the affinity matrix
transposed when it is indexed [source][target]), or the mean gradient cosine (symmetric).

Score of a group (Standley's higher-order approximation, as in TAG): a task ``a`` in group ``S``
is predicted to score ``mean over b ∈ S∖{a} of scores[a][b]``; a task alone in its group scores 0
(the single-task baseline: zero relative change). The score of a grouping is the mean of its
tasks' predicted scores.

Unlike Standley's and TAG's selection, where groups may overlap (a task can be trained in several
networks and is served by its best one), the search here is over **partitions**: every task is in
exactly one group. With at most ``k`` groups, the best grouping may use fewer.

Search: exhaustive for ``T ≤ exhaustive_limit`` (10 by default) by dynamic programming over subsets
(``best[j][mask]`` = best total over partitions of ``mask`` into at most ``j`` blocks; each mask is
split on the block that holds its lowest task, O(T · 3^T)). Beyond, a heuristic: agglomerative
merging (from singletons, repeatedly merge the two groups whose merge raises the total most, while
more than ``k`` groups remain or a merge helps), then hill-climbing with single-task moves (into
another group or, below ``k`` groups, a new one) and swaps of two tasks between groups, repeated
from ``restarts`` random partitions too; the best local optimum is kept. It is exact on the
random and planted matrices of the tests but carries no guarantee.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "Grouping",
    "best_groupings",
    "best_grouping",
    "grouping_score",
    "task_scores",
    "set_partitions",
    "adjusted_rand_index",
    "same_partition",
    "Suggestion",
    "suggest_grouping",
    "RankAgreement",
    "rank_agreement",
    "EXHAUSTIVE_LIMIT",
]

EXHAUSTIVE_LIMIT = 10
"""Largest number of tasks searched exhaustively by default (Bell(10) = 115,975 partitions)."""


@dataclass(frozen=True)
class Grouping:
    """A partition of the tasks: ``groups`` (task names; tasks in input order, groups ordered by
    their first task), ``score`` (mean predicted score over tasks), ``task_scores`` (each task's
    predicted score in its group), ``k`` (the bound on the number of groups it was searched
    with) and ``method`` (``exhaustive`` or ``heuristic``)."""

    k: int
    groups: list[list[str]]
    score: float
    task_scores: dict[str, float] = field(default_factory=dict)
    method: str = "exhaustive"

    def to_dict(self) -> dict[str, Any]:
        return {
            "k": self.k,
            "groups": [list(group) for group in self.groups],
            "score": self.score,
            "task_scores": dict(self.task_scores),
            "method": self.method,
        }


def _check_scores(scores: Any, tasks: Sequence[str] | None) -> tuple[np.ndarray, list[str]]:
    matrix = np.asarray(scores, dtype=float)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] == 0:
        raise ValueError(f"`scores` must be a non-empty square T × T matrix, got shape {matrix.shape}")
    size = matrix.shape[0]
    off_diagonal = ~np.eye(size, dtype=bool)
    if not np.isfinite(matrix[off_diagonal]).all():
        raise ValueError("`scores` must have finite off-diagonal entries, got NaN or inf")
    names = [f"t{i + 1}" for i in range(size)] if tasks is None else list(tasks)
    if len(names) != size or len(set(names)) != size:
        raise ValueError(f"`tasks` must be {size} distinct names, got {names!r}")
    matrix = matrix.copy()
    np.fill_diagonal(matrix, 0.0)
    return matrix, names


def _normalise(blocks: Sequence[Sequence[int]]) -> list[list[int]]:
    ordered = [sorted(block) for block in blocks if len(block)]
    return sorted(ordered, key=lambda block: block[0])


def _block_total(matrix: np.ndarray, block: Sequence[int]) -> float:
    """Sum over the tasks of ``block`` of their predicted score (0 for a singleton)."""
    if len(block) < 2:
        return 0.0
    index = np.asarray(block)
    return float(matrix[np.ix_(index, index)].sum()) / (len(block) - 1)


def task_scores(scores: Any, groups: Sequence[Sequence[str]], tasks: Sequence[str] | None = None) -> dict[str, float]:
    """Each task's predicted score in ``groups``: the mean of ``scores[a][b]`` over its group
    mates ``b`` (0 when alone). ``groups`` must be a partition of ``tasks``."""
    matrix, names = _check_scores(scores, tasks)
    position = {name: i for i, name in enumerate(names)}
    seen: list[str] = [name for group in groups for name in group]
    if sorted(seen) != sorted(names):
        raise ValueError(f"`groups` must be a partition of the tasks {names!r}, got {[list(g) for g in groups]!r}")
    out: dict[str, float] = {}
    for group in groups:
        index = [position[name] for name in group]
        for a in index:
            mates = [b for b in index if b != a]
            out[names[a]] = float(matrix[a, mates].mean()) if mates else 0.0
    return {name: out[name] for name in names}


def grouping_score(scores: Any, groups: Sequence[Sequence[str]], tasks: Sequence[str] | None = None) -> float:
    """Mean over tasks of their predicted score in ``groups`` (see :func:`task_scores`)."""
    per_task = task_scores(scores, groups, tasks)
    return float(np.mean(list(per_task.values())))


def set_partitions(items: Sequence[Any], max_blocks: int | None = None) -> list[list[list[Any]]]:
    """Every partition of ``items`` into at most ``max_blocks`` blocks (brute force; small inputs)."""
    items = list(items)
    limit = len(items) if max_blocks is None else max_blocks
    out: list[list[list[Any]]] = []

    def extend(index: int, blocks: list[list[Any]]) -> None:
        if index == len(items):
            out.append([list(block) for block in blocks])
            return
        for block in blocks:
            block.append(items[index])
            extend(index + 1, blocks)
            block.pop()
        if len(blocks) < limit:
            blocks.append([items[index]])
            extend(index + 1, blocks)
            blocks.pop()

    if items:
        extend(0, [])
    return out


# --- exhaustive: dynamic programming over subsets ------------------------------------------------


def _subset_totals(matrix: np.ndarray) -> np.ndarray:
    """``totals[mask]`` = summed predicted score of the tasks in ``mask`` grouped together."""
    size = matrix.shape[0]
    n_masks = 1 << size
    masks = np.arange(n_masks)
    members = ((masks[:, None] >> np.arange(size)) & 1).astype(float)  # masks × T
    pair_sums = np.einsum("ma,ab,mb->m", members, matrix, members)
    counts = members.sum(axis=1)
    totals = np.zeros(n_masks)
    grouped = counts >= 2
    totals[grouped] = pair_sums[grouped] / (counts[grouped] - 1)
    return totals


def _exhaustive(matrix: np.ndarray, max_k: int) -> list[tuple[float, list[list[int]]]]:
    """For j = 1..max_k: the best total and partition with at most j blocks."""
    size = matrix.shape[0]
    full = (1 << size) - 1
    totals = _subset_totals(matrix)
    # best[j, mask]: best total for ``mask`` in at most j blocks; choice: the block holding mask's lowest task.
    best = np.full((max_k + 1, full + 1), -np.inf)
    choice = np.zeros((max_k + 1, full + 1), dtype=np.int64)
    best[:, 0] = 0.0
    for mask in range(1, full + 1):
        lowest = mask & -mask
        rest = mask ^ lowest
        sub = rest
        while True:
            block = sub | lowest
            candidate = totals[block] + best[:-1, mask ^ block]
            better = candidate > best[1:, mask] + 1e-12
            if better.any():
                rows = np.nonzero(better)[0] + 1
                best[rows, mask] = candidate[rows - 1]
                choice[rows, mask] = block
            if sub == 0:
                break
            sub = (sub - 1) & rest
    results = []
    for j in range(1, max_k + 1):
        blocks, mask, budget = [], full, j
        while mask:
            block = int(choice[budget, mask])
            blocks.append([i for i in range(size) if block >> i & 1])
            mask ^= block
            budget -= 1
        results.append((float(best[j, full]), _normalise(blocks)))
    return results


# --- heuristic: agglomerative start + local search -------------------------------------------------
# A partition is a label vector; with Sym = M + Mᵀ and one-hot membership P, C = Sym·P gives each
# task's link to each group, so the gain of every move and swap is evaluated at once.


def _group_value(pair_sum: np.ndarray, size: np.ndarray) -> np.ndarray:
    """Summed predicted score of groups with the given pair sums (Σ_{a≠b∈S} M[a,b]) and sizes."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(size >= 2, pair_sum / np.maximum(size - 1, 1), 0.0)


def _compact(labels: np.ndarray) -> np.ndarray:
    _, compact = np.unique(labels, return_inverse=True)
    return compact.astype(np.int64)


def _labels_total(sym: np.ndarray, labels: np.ndarray) -> float:
    members = np.eye(labels.max() + 1)[labels]
    pair_sum = 0.5 * np.einsum("tg,tu,ug->g", members, sym, members)
    return float(_group_value(pair_sum, members.sum(axis=0)).sum())


def _agglomerate(sym: np.ndarray, k: int) -> np.ndarray:
    """From singletons, merge the two groups with the largest gain while more than ``k`` groups
    remain or a merge helps."""
    labels = np.arange(sym.shape[0])
    while labels.max() > 0:
        members = np.eye(labels.max() + 1)[labels]
        between = members.T @ sym @ members  # Σ over a ∈ X, b ∈ Y of Sym[a, b]
        pair_sum = 0.5 * np.diag(between)
        size = members.sum(axis=0)
        value = _group_value(pair_sum, size)
        merged = _group_value(pair_sum[:, None] + pair_sum[None, :] + between, size[:, None] + size[None, :])
        gain = merged - value[:, None] - value[None, :]
        gain[np.tril_indices_from(gain)] = -np.inf
        x, y = np.unravel_index(int(np.argmax(gain)), gain.shape)
        if labels.max() + 1 <= k and gain[x, y] <= 1e-12:
            break
        labels = _compact(np.where(labels == y, x, labels))
    return labels


def _local_search(sym: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Hill-climb with single-task moves and two-task swaps until no move improves the total."""
    size_t = sym.shape[0]
    labels = _compact(labels)
    rows = np.arange(size_t)
    while True:
        n_groups = labels.max() + 1
        members = np.eye(n_groups)[labels]
        link = sym @ members  # link[t, g] = Σ_{b ∈ g} Sym[t, b]
        size = members.sum(axis=0)
        pair_sum = 0.5 * (link * members).sum(axis=0)
        value = _group_value(pair_sum, size)
        own = labels
        own_link = link[rows, own]
        # moves: t from its group X into group Y (or a new group, as column n_groups)
        left = _group_value(pair_sum[own] - own_link, size[own] - 1) - value[own]
        joined = _group_value(pair_sum[None, :] + link, size[None, :] + 1) - value[None, :]
        move_gain = left[:, None] + np.hstack([joined, np.zeros((size_t, 1))])
        move_gain[rows, own] = -np.inf
        if n_groups >= k:
            move_gain[:, n_groups] = -np.inf
        move_gain[size[own] == 1, n_groups] = -np.inf
        # swaps: a (in X) and b (in Y ≠ X) trade places
        x, y = own[:, None], own[None, :]
        swap_x = pair_sum[x] - own_link[:, None] + link[:, own].T - sym
        swap_y = pair_sum[y] - own_link[None, :] + link[:, own] - sym
        swap_gain = (_group_value(swap_x, size[x]) + _group_value(swap_y, size[y]) - value[x] - value[y])
        swap_gain[x == y] = -np.inf
        best_move, best_swap = float(move_gain.max()), float(swap_gain.max())
        if max(best_move, best_swap) <= 1e-12:
            return labels
        labels = labels.copy()
        if best_move >= best_swap:
            task, group = np.unravel_index(int(np.argmax(move_gain)), move_gain.shape)
            labels[task] = group
        else:
            a, b = np.unravel_index(int(np.argmax(swap_gain)), swap_gain.shape)
            labels[a], labels[b] = labels[b], labels[a]
        labels = _compact(labels)


def _blocks(labels: np.ndarray) -> list[list[int]]:
    return _normalise([list(np.nonzero(labels == g)[0].tolist()) for g in range(labels.max() + 1)])


def _heuristic(matrix: np.ndarray, max_k: int, restarts: int, seed: int) -> list[tuple[float, list[list[int]]]]:
    size = matrix.shape[0]
    sym = matrix + matrix.T
    rng = np.random.default_rng(seed)
    results: list[tuple[float, list[list[int]]]] = []
    previous: np.ndarray | None = None
    for k in range(1, max_k + 1):
        starts = [_agglomerate(sym, k)]
        if previous is not None:
            starts.append(previous)  # the best with fewer groups is feasible here too
        starts.extend(rng.integers(0, k, size=size) for _ in range(restarts))
        best_total, best_labels = -math.inf, np.zeros(size, dtype=np.int64)
        for start in starts:
            labels = _local_search(sym, start, k)
            total = _labels_total(sym, labels)
            if total > best_total + 1e-12:
                best_total, best_labels = total, labels
        previous = best_labels
        results.append((best_total, _blocks(best_labels)))
    return results


# --- public API ----------------------------------------------------------------------------------


def best_groupings(
    scores: Any,
    tasks: Sequence[str] | None = None,
    max_k: int | None = None,
    exhaustive_limit: int = EXHAUSTIVE_LIMIT,
    restarts: int = 20,
    seed: int = 0,
) -> list[Grouping]:
    """The best partition into at most ``k`` groups for every ``k = 1 … max_k`` (default T).

    ``scores`` is T × T with ``scores[a][b]`` = benefit of ``b`` to ``a``; the diagonal is ignored
    (it may be NaN). Exhaustive for T ≤ ``exhaustive_limit``, else the heuristic of the module
    docstring (``restarts`` random starts from ``numpy``'s generator seeded with ``seed``).
    """
    matrix, names = _check_scores(scores, tasks)
    size = matrix.shape[0]
    max_k = size if max_k is None else max_k
    if isinstance(max_k, bool) or not isinstance(max_k, (int, np.integer)) or not 1 <= max_k <= size:
        raise ValueError(f"`max_k` must be an integer in [1, {size}], got {max_k!r}")
    if size <= exhaustive_limit:
        found, method = _exhaustive(matrix, int(max_k)), "exhaustive"
    else:
        found, method = _heuristic(matrix, int(max_k), restarts, seed), "heuristic"
    out = []
    for k, (_, blocks) in enumerate(found, start=1):
        groups = [[names[i] for i in block] for block in blocks]
        per_task = task_scores(matrix, groups, names)
        out.append(Grouping(k=k, groups=groups, score=float(np.mean(list(per_task.values()))),
                            task_scores=per_task, method=method))
    return out


def best_grouping(scores: Any, k: int, tasks: Sequence[str] | None = None, **options: Any) -> Grouping:
    """The best partition into at most ``k`` groups (see :func:`best_groupings`)."""
    size = np.asarray(scores).shape[0] if np.asarray(scores).ndim == 2 else 0
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= max(size, 1):
        raise ValueError(f"`k` must be an integer in [1, {size}], got {k!r}")
    return best_groupings(scores, tasks, max_k=int(k), **options)[-1]


def _labels(groups: Sequence[Sequence[str]]) -> dict[str, int]:
    labels: dict[str, int] = {}
    for index, group in enumerate(groups):
        for task in group:
            if task in labels:
                raise ValueError(f"task {task!r} is in two groups")
            labels[task] = index
    return labels


def same_partition(a: Sequence[Sequence[str]], b: Sequence[Sequence[str]]) -> bool:
    """Whether two partitions of the same tasks have the same groups (order ignored)."""
    return {frozenset(group) for group in a if group} == {frozenset(group) for group in b if group}


def adjusted_rand_index(a: Sequence[Sequence[str]], b: Sequence[Sequence[str]]) -> float:
    """Hubert and Arabie's (1985) adjusted Rand index of two partitions of the same tasks: 1 when
    they are equal, about 0 for unrelated ones (its expectation under random labelling with the
    same group sizes), negative below chance. Two partitions that are both all-singletons or
    both one group are equal (1.0); when only the chance term is defined, the index is 0."""
    labels_a, labels_b = _labels(a), _labels(b)
    if set(labels_a) != set(labels_b):
        raise ValueError("the two partitions must cover the same tasks")
    tasks = sorted(labels_a)
    n = len(tasks)

    def pairs(count: float) -> float:
        return count * (count - 1) / 2

    table: dict[tuple[int, int], int] = {}
    for task in tasks:
        key = (labels_a[task], labels_b[task])
        table[key] = table.get(key, 0) + 1
    rows: dict[int, int] = {}
    cols: dict[int, int] = {}
    for (i, j), count in table.items():
        rows[i] = rows.get(i, 0) + count
        cols[j] = cols.get(j, 0) + count
    index = sum(pairs(c) for c in table.values())
    sum_rows, sum_cols = sum(pairs(c) for c in rows.values()), sum(pairs(c) for c in cols.values())
    total = pairs(n)
    expected = sum_rows * sum_cols / total if total else 0.0
    maximum = (sum_rows + sum_cols) / 2
    if maximum == expected:
        return 1.0 if same_partition(a, b) else 0.0
    return float((index - expected) / (maximum - expected))


# --- what to offer first, and how well a prediction ranks ------------------------------------------------


@dataclass(frozen=True)
class Suggestion:
    """The grouping to offer first among the best partitions for k = 1 … T: ``k`` of the best one
    that actually groups tasks (some group of two or more; the smallest such ``k`` on ties; None when
    there is no such partition, e.g. one task), its ``score``, and ``alone_is_best``: no such
    partition is predicted to beat training every task alone (score ≤ 0, the singletons' score)."""

    k: int | None
    score: float | None
    alone_is_best: bool


def _grouping_fields(grouping: Grouping | Mapping[str, Any]) -> tuple[int, list[list[str]], float]:
    if isinstance(grouping, Grouping):
        return grouping.k, grouping.groups, grouping.score
    return int(grouping["k"]), [list(group) for group in grouping["groups"]], float(grouping["score"])


def suggest_grouping(groupings: Sequence[Grouping | Mapping[str, Any]]) -> Suggestion:
    """The :class:`Suggestion` among ``groupings`` (as :func:`best_groupings` returns them, or their
    :meth:`Grouping.to_dict`): every task alone is the baseline, never a grouping to train."""
    real = [fields for fields in map(_grouping_fields, groupings) if any(len(group) >= 2 for group in fields[1])]
    if not real:
        return Suggestion(k=None, score=None, alone_is_best=True)
    k, _, score = max(sorted(real, key=lambda fields: fields[0]), key=lambda fields: fields[2])
    return Suggestion(k=k, score=score, alone_is_best=score <= 0.0)


@dataclass(frozen=True)
class RankAgreement:
    """How well predicted values order items the way the measurements do, whatever their units:
    ``n`` items; ``pairs`` pairs of items that both orders separate (no tie in either) and
    ``concordant`` of them ordered the same way; ``spearman``: Spearman's rank correlation (ties
    get mean ranks; None below 3 items or when either side is constant)."""

    n: int
    pairs: int
    concordant: int
    spearman: float | None

    @property
    def same_order(self) -> bool:
        """Whether every separated pair is ordered the same way (and there is at least one)."""
        return self.pairs > 0 and self.concordant == self.pairs

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "pairs": self.pairs, "concordant": self.concordant, "spearman": self.spearman,
                "same_order": self.same_order}


def _ranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(len(values), dtype=float)
    for value in np.unique(values):  # ties share their mean rank
        tied = values == value
        ranks[tied] = ranks[tied].mean()
    return ranks


def rank_agreement(
    predicted: Mapping[str, float | None], measured: Mapping[str, float | None]
) -> RankAgreement:
    """The :class:`RankAgreement` of ``predicted`` and ``measured`` over the items both have with a
    finite value (None counts as missing): the comparison that holds when the two are in different
    units (a gradient cosine against a relative change of the metric)."""

    def known(value: float | None) -> bool:
        return value is not None and math.isfinite(float(value))

    items = [item for item in predicted if item in measured and known(predicted[item]) and known(measured[item])]
    x = np.array([float(predicted[item]) for item in items])
    y = np.array([float(measured[item]) for item in items])
    pairs = concordant = 0
    for i in range(len(items)):
        for j in range(i + 1, len(items)):
            product = np.sign(x[i] - x[j]) * np.sign(y[i] - y[j])
            pairs += int(product != 0)
            concordant += int(product > 0)
    spearman = None
    if len(items) >= 3 and np.ptp(x) > 0 and np.ptp(y) > 0:
        spearman = float(np.corrcoef(_ranks(x), _ranks(y))[0, 1])
    return RankAgreement(n=len(items), pairs=pairs, concordant=concordant, spearman=spearman)
