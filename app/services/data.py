"""Your data: CSV files turned into user suites (:mod:`mtl_core.userdata.csv_import`) for ``views/data.py``.

Uploaded bytes go straight to the engine: nothing is written except the saved suite, by
:func:`~mtl_core.userdata.csv_import.import_csv`, under ``$MTL_LAB_HOME/suites``. The engine module imports no
torch; naming a suite checks the name against the suite registry (:func:`services.catalog.catalog`),
which does.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from mtl_core.userdata.csv_import import (
    CsvError,
    CsvPreview,
    ImportReport,
    import_csv,
    inspect_csv,
    list_user_suites,
    remove_user_suite,
)
from mtl_core.workshop.access import Actor
from services.catalog import catalog, forget_suites

__all__ = [
    "CsvError",
    "inspect_upload",
    "columns_table",
    "default_suite_name",
    "import_upload",
    "import_summary",
    "user_suites",
    "remove_suite",
]


def inspect_upload(data: bytes, filename: str | None = None) -> CsvPreview:
    """The :class:`~mtl_core.userdata.csv_import.CsvPreview` of an uploaded CSV file's bytes (columns, type
    guesses, missing counts, suggested task kinds, first rows); raises :class:`CsvError`."""
    preview = inspect_csv(bytes(data))
    return dataclasses.replace(preview, filename=filename) if filename else preview


def columns_table(preview: CsvPreview) -> pd.DataFrame:
    """One row per column of a preview: name, detected type, missing and distinct values, the task it
    would make as a target (blank: it cannot be one), a few example values."""
    rows = [{
        "column": column.name,
        "type": column.dtype,
        "missing": column.n_missing,
        "distinct": column.n_distinct,
        "as a target": column.suggested_kind or "",
        "examples": ", ".join(column.examples[:3]),
    } for column in preview.columns]
    return pd.DataFrame(rows, columns=["column", "type", "missing", "distinct", "as a target", "examples"])


def default_suite_name(filename: str | None) -> str:
    """A valid suite name made from a file name (``my data.csv`` → ``my_data``; ``my_data`` when
    none), with ``_2``, ``_3`` … added when a suite (built-in or yours) already has it."""
    stem = Path(filename or "").stem
    base = re.sub(r"[^A-Za-z0-9_-]+", "_", stem).strip("_-")[:36].strip("_-") or "my_data"
    taken = {name.lower() for name in catalog()["suites"]}
    name, number = base, 2
    while name.lower() in taken:
        name, number = f"{base}_{number}", number + 1
    return name


# import_csv's messages are written for the command line; the page has a checkbox instead of the flag.
_PAGE_WORDING = {"(--replace)": "(tick “Replace a suite of the same name”)"}


def import_upload(
    data: bytes,
    filename: str | None,
    name: str,
    targets: Sequence[str],
    features: Sequence[str] | None = None,
    kinds: Mapping[str, str] | None = None,
    missing: str = "drop",
    replace: bool = False,
    actor: Actor | None = None,
) -> ImportReport:
    """Save an uploaded CSV file as the user suite ``name`` (:func:`mtl_core.userdata.csv_import.import_csv`:
    each target → a task) and make it visible to :func:`catalog`; returns the
    :class:`~mtl_core.userdata.csv_import.ImportReport`. Raises :class:`CsvError` naming the column or setting;
    then nothing was saved. ``actor`` (None: the single user) owns the new suite, and may replace
    only a suite they may manage."""
    if replace and actor is not None:
        _check_suite_access(str(name).strip(), actor)
    try:
        report = import_csv(bytes(data), str(name).strip(), targets=list(targets),
                            features=None if features is None else list(features), kinds=dict(kinds or {}),
                            missing=missing, replace=bool(replace), filename=filename,
                            owner=actor.owner if actor is not None else None)
    except CsvError as exc:
        message = str(exc)
        for cli, page in _PAGE_WORDING.items():
            message = message.replace(cli, page)
        raise CsvError(message, column=exc.column) from None
    finally:
        forget_suites()
    return report


def import_summary(report: ImportReport) -> dict[str, Any]:
    """An import report as the page shows it: ``name``, ``lines`` (the report in sentences), the row
    counts, ``tasks`` (a frame: task, kind, classes, class names, unlabelled rows), ``missing`` (a
    frame: column, missing cells, what happened to them; only columns with missing cells) and
    ``warnings``."""
    tasks = pd.DataFrame([{
        "task": target.name,
        "kind": target.kind,
        "classes": str(target.n_outputs) if target.kind == "classification" else "",
        "class names": ", ".join(target.classes) if target.classes else "(standardised numbers)",
        "unlabelled rows": target.n_unlabelled,
    } for target in report.targets], columns=["task", "kind", "classes", "class names", "unlabelled rows"])
    targets = set(report.task_names)

    def handled(column: str) -> str:
        if report.missing == "drop":
            return "rows dropped"
        if column in targets:
            return "rows unlabelled for this task"
        return f"{report.imputed.get(column, 0)} imputed"

    missing = pd.DataFrame([{"column": column, "missing cells": count, "handled": handled(column)}
                            for column, count in report.missing_counts.items() if count],
                           columns=["column", "missing cells", "handled"])
    return {
        "name": report.name,
        "lines": report.lines(),
        "description": report.description,
        "rows_read": report.n_rows_read,
        "rows_used": report.n_rows_used,
        "rows_dropped": report.n_rows_dropped,
        "inputs": len(report.inputs),
        "features": len(report.features),
        "missing_strategy": report.missing,
        "tasks": tasks,
        "missing": missing,
        "task_names": list(report.task_names),
        "warnings": list(report.warnings),
    }


def user_suites() -> list[dict[str, Any]]:
    """The saved user suites of ``$MTL_LAB_HOME``, sorted by name: ``name``, ``description``,
    ``source_file``, ``created_at``, ``n_rows``, ``n_inputs``, ``features`` and ``tasks`` (name, kind,
    classes), ``owner`` (None for suites imported without one)."""
    return [{
        "name": spec["name"],
        "owner": spec.get("owner"),
        "description": spec.get("description") or "",
        "source_file": spec.get("source_file"),
        "created_at": spec.get("created_at"),
        "n_rows": spec["n_rows"],
        "n_inputs": len(spec["inputs"]),
        "features": list(spec.get("features") or []),
        "tasks": [{"name": t["name"], "kind": t["kind"], "classes": t.get("classes")} for t in spec["targets"]],
    } for spec in list_user_suites()]


def _check_suite_access(name: str, actor: Actor) -> None:
    """Raise :class:`~mtl_core.workshop.access.AccessError` when the user suite ``name`` exists and
    ``actor`` may not manage it (a suite without an owner: only the presenter or a single user)."""
    if actor.manages_all:
        return
    owners = {suite["name"]: suite.get("owner") for suite in list_user_suites()}
    if name in owners:
        actor.check(owners[name], f"The suite {name}")


def remove_suite(name: str, actor: Actor | None = None) -> None:
    """Delete the user suite ``name`` on behalf of ``actor`` (None: the single user; runs already
    trained on it stay in the run store); raises :class:`CsvError` when there is no such user suite,
    :class:`~mtl_core.workshop.access.AccessError` when it is another participant's."""
    if actor is not None:
        _check_suite_access(name, actor)
    try:
        remove_user_suite(name)
    finally:
        forget_suites()
