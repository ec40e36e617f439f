"""Validity benchmark: do the analyses recover the groups planted in ``planted``?

For each planting (groups × tasks per group: 2×3, 3×2, 2×4, 4×2, 3×3 by default) and each of
several disjoint seed sets, one transfer study with TAG (:data:`mtl_core.studies.study.PLANTED_STUDY_CONFIG`
under the study's default protocol, p_in = 0.9, p_out = 0) runs through the background worker pool.
For each source of the study — pairwise transfer, TAG affinity, mean gradient cosine — the best
grouping into at most k = (planted number of groups) groups is compared with the planting: exact
recovery, and the adjusted Rand index (ARI) where it differs. Transfer inside and across the
planted groups is summarised per seed (the mean over the in-group / cross-group ordered pairs of
that seed's relative change), then over all seeds of the planting: mean and 95 % t interval.
The early forecast (the study's ``forecast``, :func:`mtl_core.analysis.forecast.transfer_forecast`):
for each cheap signal (TAG affinity, mean gradient cosine), the fraction of the all-tasks runs'
training at which its pair ranking first reaches Spearman ρ ≥ 0.8 with the final transfer ranking.

    python benchmarks/validity.py [--workers 2] [--seed-sets 3] [--seeds 3]
                                  [--plantings 2x3,3x2,2x4,4x2,3x3] [--p-in 0.9] [--p-out 0.0]
                                  [--out benchmarks/VALIDITY.md]

Prints one line per study as it finishes, then the table (also written, in Markdown, to ``--out``).
Targets (issue 10): exact recovery ≥ 90 % of settings by transfer and by affinity; in-group
transfer > 0 and cross-group < 0 with CIs excluding 0; a 6-task, 3-seed study ≤ 60 s on 2 cores.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from mtl_core.analysis import adjusted_rand_index, same_partition
from mtl_core.runs.executors import LocalProcessExecutor
from mtl_core.studies.study import PLANTED_STUDY_CONFIG, StudySpec, run_study

SOURCES = ("transfer", "affinity", "cosine")
#: The cheap signals of the early forecast, with their names in the table.
FORECAST_SIGNALS = {"affinity": "TAG", "cosine": "cosine"}


def parse_plantings(text: str) -> list[tuple[int, int]]:
    """``"2x3,3x2"`` → [(2, 3), (3, 2)]: (groups, tasks per group)."""
    out = []
    for item in text.split(","):
        groups, _, size = item.strip().partition("x")
        out.append((int(groups), int(size)))
    return out


def per_seed_transfer(study: dict[str, Any], planted: list[list[str]]) -> tuple[list[float], list[float]]:
    """Per seed: the mean relative change (positive = better) over in-group and over cross-group
    ordered pairs (i ← j), from the study's run rows (MSE: lower is better)."""
    group_of = {task: g for g, group in enumerate(planted) for task in group}
    alone: dict[tuple[str, int], float] = {}
    joint: dict[tuple[str, str, int], float] = {}
    for row in study["runs"]:
        if row["status"] != "done":
            continue
        if row["role"] == "alone":
            alone[(row["tasks"][0], row["seed"])] = row["metrics"][row["tasks"][0]]
        elif row["role"] == "pair":
            a, b = row["tasks"]
            joint[(a, b, row["seed"])] = row["metrics"][a]
            joint[(b, a, row["seed"])] = row["metrics"][b]
    inside, across = [], []
    for seed in study["seeds"]:
        values: dict[bool, list[float]] = {True: [], False: []}
        for (i, j, s), value in joint.items():
            base = alone.get((i, s))
            if s != seed or base is None or value is None or not base:
                continue
            values[group_of[i] == group_of[j]].append((base - value) / abs(base))
        if values[True]:
            inside.append(float(np.mean(values[True])))
        if values[False]:
            across.append(float(np.mean(values[False])))
    return inside, across


def mean_ci(values: list[float]) -> tuple[float, float, float]:
    """Mean and 95 % t interval."""
    from scipy import stats

    array = np.asarray(values, dtype=float)
    mean = float(array.mean())
    if array.size < 2:
        return mean, math.nan, math.nan
    half = float(stats.t.ppf(0.975, array.size - 1) * array.std(ddof=1) / math.sqrt(array.size))
    return mean, mean - half, mean + half


def forecast_fractions(study: dict[str, Any]) -> dict[str, float | None]:
    """Per cheap signal of the study's ``forecast``: the fraction of training (reached step / total
    steps) at which its ρ first reaches the threshold; None when it never does (signals the study
    lacks are absent)."""
    forecast = study.get("forecast") or {}
    total = forecast.get("total_steps") or 0
    out: dict[str, float | None] = {}
    for signal in forecast.get("signals") or {}:
        step = (forecast.get("reached") or {}).get(signal)
        out[signal] = None if step is None or total <= 0 else step / total
    return out


def final_rhos(study: dict[str, Any]) -> dict[str, float | None]:
    """Spearman ρ with the final transfer ranking at the end of training, per cheap signal (the last
    point of the study's forecast curve), and under ``"groups"`` the forecast's ``planted_ceiling``: the
    ρ of the planted groups themselves (a pair scores 1 inside a planted group, 0 across), about the most
    a signal that finds the groups can reach, since inside and across them transfer ranks its pairs by
    noise."""
    forecast = study.get("forecast") or {}
    out: dict[str, float | None] = {}
    for signal, curve in (forecast.get("signals") or {}).items():
        known = [value for value in curve if value is not None]
        out[signal] = known[-1] if known else None
    out["groups"] = forecast.get("planted_ceiling")
    return out


def _rho_cell(rows: list[dict[str, Any]]) -> str:
    """Each study's final ρ per signal and the planted groups' ceiling: "TAG 0.71, 0.64; …; groups 0.75, 0.77"."""
    parts = []
    for signal, label in {**FORECAST_SIGNALS, "groups": "groups"}.items():
        values = [row["final_rho"].get(signal) for row in rows]
        if any(v is not None for v in values):
            parts.append(f"{label} " + ", ".join("—" if v is None else f"{v:.2f}" for v in values))
    return "; ".join(parts) or "—"


def _fraction_cell(rows: list[dict[str, Any]]) -> str:
    """Each study's fraction per signal: "TAG 25 %, never; cosine 10 %, 40 %"."""
    parts = []
    for signal, label in FORECAST_SIGNALS.items():
        values = [row["forecast"][signal] for row in rows if signal in row["forecast"]]
        if values:
            parts.append(f"{label} " + ", ".join("never" if v is None else f"{100 * v:.0f} %" for v in values))
    return "; ".join(parts) or "—"


def best_k(study: dict[str, Any], source: str, k: int) -> list[list[str]] | None:
    """The best grouping into at most ``k`` groups by ``source`` (None when the study has none)."""
    for grouping in study.get("groupings", {}).get(source, []):
        if grouping["k"] == k:
            return grouping["groups"]
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed-sets", type=int, default=3, help="disjoint seed sets per planting")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per study")
    parser.add_argument("--plantings", default="2x3,3x2,2x4,4x2,3x3", help="groups x tasks-per-group, comma-separated")
    parser.add_argument("--p-in", type=float, default=0.9)
    parser.add_argument("--p-out", type=float, default=0.0)
    parser.add_argument("--out", default=str(Path(__file__).with_name("VALIDITY.md")))
    args = parser.parse_args(argv)

    plantings = parse_plantings(args.plantings)
    rows: list[dict[str, Any]] = []
    seeds_transfer: dict[tuple[int, int], tuple[list[float], list[float]]] = defaultdict(lambda: ([], []))
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mtl-validity-") as home:
        os.environ["MTL_LAB_POOL_IDLE_EXIT"] = "600"
        executor = LocalProcessExecutor(home=home, max_workers=args.workers)
        for groups, size in plantings:
            n_tasks = groups * size
            options = {**dict(PLANTED_STUDY_CONFIG.suite_options), "n_tasks": n_tasks, "n_groups": groups,
                       "p_in": args.p_in, "p_out": args.p_out}
            base = PLANTED_STUDY_CONFIG.replace(suite_options=options)
            for seed_set in range(args.seed_sets):
                seeds = StudySpec.seeds_from(seed_set * args.seeds, args.seeds)
                spec = StudySpec(base, seeds=seeds, tag=True)
                tic = time.perf_counter()
                study = run_study(spec, executor)
                seconds = time.perf_counter() - tic
                planted = study["planted_groups"]
                inside, across = per_seed_transfer(study, planted)
                seeds_transfer[(groups, size)][0].extend(inside)
                seeds_transfer[(groups, size)][1].extend(across)
                row: dict[str, Any] = {"planting": f"{groups}×{size}", "groups": groups, "size": size,
                                       "seeds": list(seeds), "seconds": seconds, "runs": study["n_runs"],
                                       "failed": study["n_failed"],
                                       "in": float(np.mean(inside)), "across": float(np.mean(across)),
                                       "forecast": forecast_fractions(study), "final_rho": final_rhos(study)}
                for source in SOURCES:
                    found = best_k(study, source, groups)
                    row[source] = None if found is None else (same_partition(found, planted),
                                                              adjusted_rand_index(found, planted), found)
                rows.append(row)
                marks = "  ".join(
                    f"{source}: {'—' if row[source] is None else ('exact' if row[source][0] else f'ARI {row[source][1]:.2f}')}"
                    for source in SOURCES
                )
                print(f"{row['planting']} seeds {seeds[0]}-{seeds[-1]}: {study['n_runs']} runs in {seconds:5.1f} s  "
                      f"in-group {100 * row['in']:+.1f} %  cross {100 * row['across']:+.1f} %  {marks}  "
                      f"ρ ≥ 0.8 at {_fraction_cell([row])}  final ρ {_rho_cell([row])}", flush=True)
    total = time.perf_counter() - started
    report = render(rows, seeds_transfer, args, total)
    print()
    print(report)
    Path(args.out).write_text(report + "\n", encoding="utf-8")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


def _recovery(rows: list[dict[str, Any]], source: str) -> str:
    found = [row[source] for row in rows if row[source] is not None]
    if not found:
        return "—"
    exact = sum(1 for ok, _, _ in found if ok)
    misses = [ari for ok, ari, _ in found if not ok]
    text = f"{exact}/{len(found)}"
    if misses:
        text += " (ARI " + ", ".join(f"{ari:.2f}" for ari in misses) + ")"
    return text


def render(rows: list[dict[str, Any]], seeds_transfer: dict, args: argparse.Namespace, total: float) -> str:
    lines = [
        "# Validity benchmark: recovering planted groups",
        "",
        f"`python benchmarks/validity.py --workers {args.workers} --seed-sets {args.seed_sets} --seeds {args.seeds} "
        f"--plantings {args.plantings} --p-in {args.p_in} --p-out {args.p_out}` — "
        f"{time.strftime('%Y-%m-%d')}, {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"total {total / 60:.1f} min.",
        "",
        "Each setting is one transfer study (every task alone, every pair, one all-tasks TAG run per seed; "
        "`PLANTED_STUDY_CONFIG` under the study's default protocol). Recovery: the best grouping into at most "
        "k = planted-groups groups equals the planting (exact), else its adjusted Rand index. Transfer: per seed, "
        "the mean relative change over in-group / cross-group ordered pairs; mean and 95 % t CI over every seed "
        "of the planting. Forecast: for each study, the fraction of the all-tasks runs' training at which the "
        "pair ranking by TAG affinity / mean gradient cosine accumulated so far first reaches Spearman ρ ≥ 0.8 with "
        "the final transfer ranking (the study's `forecast`; never = not within the training). Final ρ: the same "
        "ρ at the end of training, and for the planted groups themselves (a pair scores 1 inside a group, 0 "
        "across): the ceiling of any signal that sees the groups and nothing finer.",
        "",
        "| planting (groups × tasks) | studies | exact by transfer | exact by TAG affinity | exact by cosine | "
        "in-group transfer % (95 % CI) | cross-group transfer % (95 % CI) | seconds per study (runs) | "
        "fraction of training at which each cheap signal reaches ρ ≥ 0.8 | final ρ (and the planted groups' ceiling) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    by_planting: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_planting[row["planting"]].append(row)
    for planting, group_rows in by_planting.items():
        key = (group_rows[0]["groups"], group_rows[0]["size"])
        inside, across = seeds_transfer[key]
        m_in, lo_in, hi_in = mean_ci(inside)
        m_x, lo_x, hi_x = mean_ci(across)
        seconds = ", ".join(f"{row['seconds']:.0f}" for row in group_rows)
        lines.append(
            f"| {planting} | {len(group_rows)} | {_recovery(group_rows, 'transfer')} | "
            f"{_recovery(group_rows, 'affinity')} | {_recovery(group_rows, 'cosine')} | "
            f"{100 * m_in:+.1f} ({100 * lo_in:+.1f}, {100 * hi_in:+.1f}) | "
            f"{100 * m_x:+.1f} ({100 * lo_x:+.1f}, {100 * hi_x:+.1f}) | {seconds} ({group_rows[0]['runs']}) | "
            f"{_fraction_cell(group_rows)} | {_rho_cell(group_rows)} |"
        )
    for source in SOURCES:
        found = [row[source] for row in rows if row[source] is not None]
        exact = sum(1 for ok, _, _ in found if ok)
        share = 100 * exact / len(found) if found else math.nan
        lines.append("")
        lines.append(f"- exact recovery by **{source}**: {exact} of {len(found)} settings ({share:.0f} %)")
    all_in = [v for inside, _ in seeds_transfer.values() for v in inside]
    all_x = [v for _, across in seeds_transfer.values() for v in across]
    m, lo, hi = mean_ci(all_in)
    lines.append(f"- in-group transfer over all seeds: {100 * m:+.1f} % (95 % CI {100 * lo:+.1f} … {100 * hi:+.1f})")
    m, lo, hi = mean_ci(all_x)
    lines.append(f"- cross-group transfer over all seeds: {100 * m:+.1f} % (95 % CI {100 * lo:+.1f} … {100 * hi:+.1f})")
    for signal, label in FORECAST_SIGNALS.items():
        values = [row["forecast"][signal] for row in rows if signal in row["forecast"]]
        reached = [v for v in values if v is not None]
        if values:
            median = f", median fraction of training {100 * float(np.median(reached)):.0f} %" if reached else ""
            lines.append(f"- early forecast by **{label}**: ρ ≥ 0.8 reached in {len(reached)} of {len(values)} "
                         f"studies{median}")
    for signal, label in {**FORECAST_SIGNALS, "groups": "the planted groups (ceiling)"}.items():
        values = [row["final_rho"][signal] for row in rows if row["final_rho"].get(signal) is not None]
        if values:
            lines.append(f"- final ρ with the transfer ranking, **{label}**: median {float(np.median(values)):.2f} "
                         f"(range {min(values):.2f} … {max(values):.2f}) over {len(values)} studies")
    failed = sum(row["failed"] for row in rows)
    lines.append(f"- failed runs: {failed}")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
