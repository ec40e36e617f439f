"""Your own data: a CSV file turned into a named task suite.

:func:`inspect_csv` reads a CSV file and describes its columns (type, missing values, the kind of
task each could be); :func:`import_csv` validates the chosen feature and target columns, encodes them
(one-hot categorical features; classification targets as class indices, the class names kept),
handles missing values (rows dropped, or values imputed / labels masked, with counts) and saves the
cleaned numeric dataset under ``$MTL_LAB_HOME/suites/<name>/``:

* ``data.npz``: plain numeric arrays written by numpy and read back with ``allow_pickle=False``;
* ``spec.json``: the columns, the tasks, the class names and the import report.

The saved suite is registered in :data:`mtl_core.suites.SUITES` (see :mod:`mtl_core.suites.user_csv`)
and is usable everywhere a built-in suite is: the trainer, the CLI, the dashboard.

The file is parsed as data only: cells are strings or numbers, never evaluated (a cell ``=1+1`` is
the text ``=1+1``), nothing is unpickled, and nothing is written outside the MTL Lab home folder.
Every problem the file or the choices can cause raises :class:`CsvError` with a message that names
the column or setting, what was expected and what came.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from mtl_core.userdata.csv_base import (
    _KINDS,
    _MISSING_CATEGORY,
    _MISSING_STRATEGIES,
    _RARE_SHOWN,
    MIN_CLASS_ROWS,
    NA_TOKENS,
    SPEC_FORMAT,
    CsvError,
    CsvLimits,
    Source,
    _clean_name,
)
from mtl_core.userdata.csv_read import _MAX_TEXTS, _Column, _load, _suggest_kind, _Table
from mtl_core.userdata.saved_suites import (
    _destination,
    _InputMatrix,
    _save,
    list_user_suites,
    load_suite_arrays,
    read_spec,
    remove_user_suite,
    user_suites_dir,
    validate_suite_name,
)

__all__ = [
    "CsvError",
    "CsvLimits",
    "ColumnInfo",
    "CsvPreview",
    "TargetReport",
    "ImportReport",
    "SPEC_FORMAT",
    "NA_TOKENS",
    "MIN_CLASS_ROWS",
    "rare_class_warning",
    "inspect_csv",
    "import_csv",
    "validate_suite_name",
    "user_suites_dir",
    "list_user_suites",
    "remove_user_suite",
    "read_spec",
    "load_suite_arrays",
]


@dataclass(frozen=True)
class ColumnInfo:
    """One column as :func:`inspect_csv` sees it. ``dtype`` is ``number``, ``text`` or ``empty``;
    ``suggested_kind`` is the task it would make as a target (None: it cannot be one)."""

    name: str
    position: int
    dtype: str
    n_missing: int
    n_distinct: int
    suggested_kind: str | None
    examples: tuple[str, ...]
    named: bool = True
    class_warning: str | None = None
    """What :func:`rare_class_warning` says about this column as a classification target (None: nothing
    to say, or it cannot be one)."""


@dataclass(frozen=True)
class CsvPreview:
    """What :func:`inspect_csv` found: the columns, the first rows and the file's facts."""

    columns: tuple[ColumnInfo, ...]
    n_rows: int
    delimiter: str
    size_bytes: int
    filename: str | None
    head: tuple[tuple[str, ...], ...]
    warnings: tuple[str, ...] = ()

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def dtypes(self) -> dict[str, str]:
        return {c.name: c.dtype for c in self.columns}

    @property
    def missing(self) -> dict[str, int]:
        return {c.name: c.n_missing for c in self.columns}

    @property
    def suggested_kinds(self) -> dict[str, str | None]:
        return {c.name: c.suggested_kind for c in self.columns}

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["columns"] = [asdict(c) for c in self.columns]
        out["head"] = [list(row) for row in self.head]
        out["warnings"] = list(self.warnings)
        for column in out["columns"]:
            column["examples"] = list(column["examples"])
        return out


def _column_info(column: _Column, max_classes: int = 100) -> ColumnInfo:
    present = column.present
    class_counts: dict[str, int] | None = None  # rows per class, when the column could be a classification target
    if not present.any():
        dtype = "empty"
        distinct = 0
    elif column.numeric:
        dtype = "number"
        values, counts = np.unique(column.numbers[present], return_counts=True)
        distinct = int(values.size)
        if 2 <= distinct <= max_classes:
            class_counts = {_number_name(v): int(c) for v, c in zip(values, counts)}
    else:
        dtype = "text"
        distinct = len(column.texts)
        if column.codes is not None and not column.texts_overflow and 2 <= distinct <= max_classes:
            counts = np.bincount(column.codes[column.codes >= 0].astype(np.int64), minlength=distinct)
            class_counts = {text: int(c) for text, c in zip(column.texts, counts) if c}
    examples = [text[:60] for text in column.texts[:5]]
    class_warning = rare_class_warning(column.name, class_counts, column.numeric) if class_counts else None
    return ColumnInfo(column.name, column.position, dtype, column.n_missing, distinct, _suggest_kind(column),
                      tuple(examples), column.named, class_warning)


def rare_class_warning(target: str, counts: Mapping[str, int], numeric: bool) -> str | None:
    """A sentence about the classes of classification target ``target`` (``counts``: rows per class,
    in class order) that have fewer than :data:`MIN_CLASS_ROWS` rows, naming them with their counts and
    what to do (a column of numbers: choose regression; text: merge the rare classes); None when there
    are none."""
    rare = sorted(((name, count) for name, count in counts.items() if count < MIN_CLASS_ROWS),
                  key=lambda item: item[1])  # stable: classes of one count stay in class order
    if not rare:
        return None
    shown = ", ".join(f"{name} ({count} row{'' if count == 1 else 's'})" for name, count in rare[:_RARE_SHOWN])
    more = f" and {len(rare) - _RARE_SHOWN} more" if len(rare) > _RARE_SHOWN else ""
    which = ("all with" if len(rare) == len(counts)
             else f"{len(rare)} of them with")
    advice = ("Its values are numbers: choose regression for it, or merge rare values into their neighbours "
              "in the file." if numeric else "Merge the rare classes in the file, or leave the column out.")
    return (f"As a classification target, `{target}` has {len(counts)} classes on {sum(counts.values())} rows, "
            f"{which} fewer than {MIN_CLASS_ROWS} rows: {shown}{more}. With a 60/20/20 split a class that rare "
            f"may be missing from the validation or test rows. {advice}")


def inspect_csv(
    source: Source,
    max_bytes: int | None = None,
    *,
    limits: CsvLimits | None = None,
    delimiter: str | None = None,
    head_rows: int = 5,
) -> CsvPreview:
    """Read a CSV file (a path, its bytes, or a binary file object such as an upload) and describe
    its columns: type guess, missing counts, distinct values, the task kind each would make.

    Raises :class:`CsvError` for a file that cannot be a dataset (too big, empty, not CSV text,
    duplicate column names, ragged rows, too many rows or columns).
    """
    limits = limits or CsvLimits.from_env()
    if max_bytes is not None:
        limits = _replace_limits(limits, max_bytes=max_bytes)
    table = _load(source, limits, delimiter)
    head = tuple(tuple(c.head[i] for c in table.columns) for i in range(min(head_rows, table.n_rows, 20)))
    warnings = tuple(
        f"column {c.position} has no name; it is called `{c.name}` here" for c in table.columns if not c.named
    ) + tuple(f"column `{c.name}` has more than {_MAX_TEXTS} distinct values; only the first {_MAX_TEXTS} "
              "were counted" for c in table.columns if not c.numeric and c.texts_overflow)
    return CsvPreview(
        columns=tuple(_column_info(c, limits.max_classes) for c in table.columns),
        n_rows=table.n_rows,
        delimiter=table.delimiter,
        size_bytes=table.size_bytes,
        filename=table.filename,
        head=head,
        warnings=warnings,
    )


def _replace_limits(limits: CsvLimits, **changes: Any) -> CsvLimits:
    values = asdict(limits)
    values.update(changes)
    for key, value in changes.items():
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise CsvError(f"`{key}` must be a positive integer, got {value!r}")
    return CsvLimits(**values)


# --- import --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TargetReport:
    """One target column → one task."""

    name: str
    kind: str
    n_outputs: int
    detected_kind: str | None
    classes: tuple[str, ...] | None = None
    n_unlabelled: int = 0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["classes"] = list(self.classes) if self.classes is not None else None
        return out


@dataclass(frozen=True)
class ImportReport:
    """What :func:`import_csv` did: rows read and used, missing cells per column and what happened
    to them, the encoded inputs, the tasks, and where the suite was saved."""

    name: str
    directory: str
    source_file: str | None
    description: str
    n_rows_read: int
    n_rows_used: int
    n_rows_dropped: int
    missing: str
    missing_counts: dict[str, int]
    imputed: dict[str, int]
    features: tuple[str, ...]
    inputs: tuple[str, ...]
    targets: tuple[TargetReport, ...]
    stratify: str | None
    warnings: tuple[str, ...] = ()

    @property
    def task_names(self) -> list[str]:
        return [t.name for t in self.targets]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "directory": self.directory,
            "source_file": self.source_file,
            "description": self.description,
            "n_rows_read": self.n_rows_read,
            "n_rows_used": self.n_rows_used,
            "n_rows_dropped": self.n_rows_dropped,
            "missing": self.missing,
            "missing_counts": dict(self.missing_counts),
            "imputed": dict(self.imputed),
            "features": list(self.features),
            "inputs": list(self.inputs),
            "targets": [t.to_dict() for t in self.targets],
            "stratify": self.stratify,
            "warnings": list(self.warnings),
        }

    def lines(self) -> list[str]:
        """A human-readable summary, one fact per line."""
        out = [
            f"suite `{self.name}` saved in {self.directory}",
            f"rows: {self.n_rows_read} read, {self.n_rows_used} used, {self.n_rows_dropped} dropped",
            f"features: {len(self.features)} columns → {len(self.inputs)} inputs",
        ]
        counted = {k: v for k, v in self.missing_counts.items() if v}
        if counted:
            missing = ", ".join(f"{k}: {v}" for k, v in counted.items())
            out.append(f"missing values ({self.missing}): {missing}")
        if any(self.imputed.values()):
            out.append("imputed: " + ", ".join(f"{k}: {v}" for k, v in self.imputed.items() if v))
        for target in self.targets:
            detail = f"{target.n_outputs} classes" if target.kind == "classification" else "standardised"
            unlabelled = f", {target.n_unlabelled} rows unlabelled" if target.n_unlabelled else ""
            out.append(f"task {target.name}: {target.kind} ({detail}{unlabelled})")
        out.extend(f"warning: {w}" for w in self.warnings)
        return out


def _number_name(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else repr(float(value))


def _encode_classification(column: _Column, rows: np.ndarray, limits: CsvLimits, dropped_note: str
                           ) -> tuple[np.ndarray, list[str]]:
    """Class indices (-1 where missing) for ``rows``, and the class names in index order."""
    present = column.present[rows]
    if column.numeric:
        values = column.numbers[rows]
        distinct = np.unique(values[present])
        classes = [_number_name(v) for v in distinct]
        labels = np.full(rows.size, -1, dtype=np.int64)
        labels[present] = np.searchsorted(distinct, values[present])
    else:
        if column.texts_overflow:
            raise CsvError(f"classification target `{column.name}` has more than {_MAX_TEXTS} classes; at most "
                           f"{limits.max_classes} are allowed (is it a regression target? choose regression for it)",
                           column=column.name)
        classes, labels = column.distinct_texts(rows)
    if len(classes) < 2:
        if not classes:
            raise CsvError(f"target `{column.name}` has no values{dropped_note}", column=column.name)
        raise CsvError(f"target `{column.name}` has one class ({classes[0]!r}){dropped_note}; a classification "
                       "target needs at least 2", column=column.name)
    if len(classes) > limits.max_classes:
        raise CsvError(f"classification target `{column.name}` has {len(classes)} classes; at most "
                       f"{limits.max_classes} are allowed (is it a regression target? choose regression for it)",
                       column=column.name)
    return labels, classes


def _encode_regression(column: _Column, rows: np.ndarray, dropped_note: str) -> np.ndarray:
    bad = column.first_non_numeric()
    if bad is not None:
        row, text = bad
        raise CsvError(f"regression target `{column.name}` must be numeric; row {row} has {text!r}",
                       column=column.name)
    values = column.numbers[rows]
    present = values[~np.isnan(values)]
    if present.size == 0:
        raise CsvError(f"target `{column.name}` has no values{dropped_note}", column=column.name)
    if np.unique(present).size < 2:
        raise CsvError(f"regression target `{column.name}` has the same value ({_number_name(present[0])}) in "
                       f"every row{dropped_note}; it cannot be learned", column=column.name)
    return values


def _encode_feature(column: _Column, rows: np.ndarray, limits: CsvLimits, impute: bool
                    ) -> tuple[list[str], np.ndarray | None, list[str]]:
    """The names of the input columns a feature encodes to, each row's category index for a text
    feature (None for a numeric one, whose numbers are copied as they are: NaN = missing, imputed
    at build time), and warnings."""
    present = column.present[rows]
    warnings: list[str] = []
    if column.numeric:
        if np.unique(column.numbers[rows][present]).size < 2:
            warnings.append(f"feature `{column.name}` has a single value; it carries no information")
        return [column.name], None, warnings
    categories, indices = column.distinct_texts(rows)
    if len(categories) > limits.max_categories or column.texts_overflow:
        hint = ""
        share = float(np.mean(~np.isnan(column.numbers[column.present]))) if column.present.any() else 0.0
        bad = column.first_non_numeric()
        if share >= 0.5 and bad is not None:
            hint = f"; most values are numbers but row {bad[0]} has {bad[1]!r}"
        counted = f"more than {_MAX_TEXTS}" if column.texts_overflow else str(len(categories))
        raise CsvError(f"categorical feature `{column.name}` has {counted} distinct values; at most "
                       f"{limits.max_categories} are allowed (leave it out of the features{hint})", column=column.name)
    if len(categories) < 2:
        warnings.append(f"feature `{column.name}` has a single value; it carries no information")
    names = [f"{column.name}={c}" for c in categories]
    if impute and (~present).any():
        names.append(f"{column.name}={_MISSING_CATEGORY}")
    return names, np.where(indices >= 0, indices, len(categories)).astype(np.int32), warnings


def _split_names(value: str | Sequence[str] | None, what: str) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [_clean_name(part) for part in value.split(",") if part.strip()]
    if not isinstance(value, Sequence) or not all(isinstance(v, str) for v in value):
        raise CsvError(f"`{what}` must be a list of column names, got {value!r}")
    return [_clean_name(v) for v in value]


def _check_selection(table: _Table, targets: list[str], features: list[str] | None,
                     kinds: Mapping[str, str]) -> tuple[list[str], list[str]]:
    """The target and feature columns, checked; and warnings."""
    known = table.names
    shown = ", ".join(known[:20]) + (", …" if len(known) > 20 else "")
    if len(targets) < 2:
        raise CsvError(f"`targets` must name at least 2 columns (each target is a task), got {targets!r}")
    for what, names in (("target", targets), ("feature", features or [])):
        for name in names:
            if name not in known:
                raise CsvError(f"{what} `{name}` is not a column of the file (columns: {shown})", column=name)
        repeated = [n for n, c in Counter(names).items() if c > 1]
        if repeated:
            raise CsvError(f"{what} `{repeated[0]}` is listed twice", column=repeated[0])
    for name in targets:
        if "," in name:
            raise CsvError(f"target `{name}` cannot be a task name: it contains a comma; rename the column",
                           column=name)
    for name, kind in kinds.items():
        if name not in targets:
            raise CsvError(f"`kinds` names `{name}`, which is not a target (targets: {', '.join(targets)})",
                           column=name)
        if kind not in _KINDS:
            raise CsvError(f"the kind of target `{name}` must be classification or regression, got {kind!r}",
                           column=name)
    warnings = []
    if features is None:
        features = [c.name for c in table.columns if c.name not in targets and c.named]
        warnings = [f"column {c.position} has no name; it was left out of the features (call it `{c.name}` "
                    "in the features to use it)" for c in table.columns if not c.named and c.name not in targets]
    else:
        both = [name for name in features if name in targets]
        if both:
            raise CsvError(f"column `{both[0]}` cannot be both a feature and a target", column=both[0])
    if not features:
        raise CsvError("no feature columns: every column is a target (a suite needs at least one input column)")
    return features, warnings


def import_csv(
    source: Source,
    name: str,
    targets: str | Sequence[str],
    features: str | Sequence[str] | None = None,
    kinds: Mapping[str, str] | None = None,
    missing: str = "drop",
    limits: CsvLimits | None = None,
    *,
    home: str | os.PathLike[str] | None = None,
    replace: bool = False,
    delimiter: str | None = None,
    filename: str | None = None,
    owner: str | None = None,
) -> ImportReport:
    """Turn a CSV file into the task suite ``name`` saved under ``$MTL_LAB_HOME/suites/<name>/``.

    ``targets`` (a list, or comma-separated text) are the columns to predict, one task each, at least
    two; ``features`` the input columns (default: every other named column). A target's kind
    (classification or regression) is detected from its values — text, or at most 10 distinct
    integers, is classification — and ``kinds`` overrides it. Text features are one-hot encoded;
    classification targets become class indices with the class names kept.

    ``missing="drop"`` drops every row with a missing value in a used column; ``"impute"`` keeps
    them: a missing number is replaced at build time by the training-split mean, a missing category
    gets its own ``(missing)`` category, and a missing target leaves that row unlabelled for that task
    (rows with no target at all are dropped). The report counts every case.

    ``owner`` (a participant's owner id, :mod:`mtl_core.workshop.access`) is recorded in ``spec.json``;
    on a workshop server only they or the presenter may remove the suite.

    ``replace`` overwrites an existing user suite of that name. The suite is registered at once
    (usable in this process). Raises :class:`CsvError` for anything that prevents a suite.
    """
    limits = limits or CsvLimits.from_env()
    name, target_names, feature_names, kinds = _import_choices(name, targets, features, kinds, missing)
    destination = _destination(name, home, replace)

    table = _load(source, limits, delimiter)
    source_file = filename or table.filename
    feature_names, warnings = _check_selection(table, target_names, feature_names, kinds)
    used = [table.column(n) for n in feature_names + target_names]
    _check_not_empty(table, used, target_names)
    missing_counts = {c.name: c.n_missing for c in used}
    for column in (c for c in table.columns if c.name not in missing_counts):
        column.release()  # a column left out: its memory back before the encoding needs some
    impute = missing == "impute"
    rows = _kept_rows(table, used, target_names, impute, limits)
    n_dropped = table.n_rows - rows.size
    dropped_note = f" (after dropping {n_dropped} rows with missing values)" if n_dropped else ""

    arrays, target_reports = _encode_targets(table, target_names, kinds, rows, limits, dropped_note, warnings)
    arrays["x"], inputs, imputed = _encode_features(table, feature_names, rows, limits, impute, warnings)

    stratify = next((t.name for t in target_reports if t.kind == "classification"), None)
    report = ImportReport(
        name=name,
        directory=str(destination),
        source_file=source_file,
        description=_describe(source_file, rows.size, n_dropped, feature_names, inputs, target_reports, stratify,
                              missing),
        n_rows_read=table.n_rows,
        n_rows_used=int(rows.size),
        n_rows_dropped=int(n_dropped),
        missing=missing,
        missing_counts=missing_counts,
        imputed=imputed,
        features=tuple(feature_names),
        inputs=tuple(inputs),
        targets=tuple(target_reports),
        stratify=stratify,
        warnings=tuple(warnings),
    )
    _save(destination, {**_spec(report), **({"owner": owner} if owner else {})}, arrays, replace)
    from mtl_core.suites.user_csv import refresh_user_suites

    refresh_user_suites(home)
    return report


def _import_choices(name: str, targets: str | Sequence[str], features: str | Sequence[str] | None,
                    kinds: Mapping[str, str] | None, missing: str
                    ) -> tuple[str, list[str], list[str] | None, dict[str, str]]:
    """The suite name, the target and feature names and the kinds of :func:`import_csv`, checked
    before the file is read."""
    name = validate_suite_name(name)
    if missing not in _MISSING_STRATEGIES:
        raise CsvError(f"`missing` must be drop or impute, got {missing!r}")
    if kinds is not None and not isinstance(kinds, Mapping):
        raise CsvError(f"`kinds` must map target names to classification or regression, got {kinds!r}")
    return (name, _split_names(targets, "targets") or [], _split_names(features, "features"),
            {_clean_name(str(k)): v for k, v in (kinds or {}).items()})


def _check_not_empty(table: _Table, used: Sequence[_Column], target_names: Sequence[str]) -> None:
    """Raise :class:`CsvError` for a chosen column without a single value."""
    for column in used:
        if not column.present.any():
            role = "target" if column.name in target_names else "feature"
            raise CsvError(f"{role} `{column.name}` has no values (all {table.n_rows} rows are missing)",
                           column=column.name)


def _kept_rows(table: _Table, used: Sequence[_Column], target_names: Sequence[str], impute: bool,
               limits: CsvLimits) -> np.ndarray:
    """The indices of the rows the suite keeps: with ``impute``, every row with at least one label;
    otherwise every row without a missing value in a used column. Too few rows raise :class:`CsvError`."""
    if impute:
        keep = np.zeros(table.n_rows, dtype=bool)
        for target in target_names:
            keep |= table.column(target).present
    else:
        keep = np.ones(table.n_rows, dtype=bool)
        for column in used:
            keep &= column.present
    rows = np.flatnonzero(keep)
    if rows.size >= limits.min_rows:
        return rows
    if rows.size < table.n_rows:
        hint = " (try imputing missing values)" if not impute else ""
        raise CsvError(f"after dropping rows with missing values, {rows.size} of {table.n_rows} rows remain; "
                       f"a suite needs at least {limits.min_rows}{hint}")
    rows_text = "1 data row" if table.n_rows == 1 else f"{table.n_rows} data rows"
    raise CsvError(f"the file has {rows_text}; a suite needs at least {limits.min_rows}")


def _encode_targets(table: _Table, target_names: Sequence[str], kinds: Mapping[str, str], rows: np.ndarray,
                    limits: CsvLimits, dropped_note: str, warnings: list[str]
                    ) -> tuple[dict[str, np.ndarray | _InputMatrix], list[TargetReport]]:
    """Arrays ``y0``, ``y1``, … (class indices, −1 unlabelled; or floats, NaN unlabelled) and a report per
    target. A target's kind is ``kinds[target]``, else the detected one, else what its values allow.
    Classes with fewer than :data:`MIN_CLASS_ROWS` labelled rows are noted in ``warnings``.
    Each target column is released once encoded."""
    arrays: dict[str, np.ndarray | _InputMatrix] = {}
    reports = []
    for index, target in enumerate(target_names):
        column = table.column(target)
        detected = _suggest_kind(column)
        kind = kinds.get(target) or detected or ("regression" if column.numeric else "classification")
        if kind == "classification":
            labels, classes = _encode_classification(column, rows, limits, dropped_note)
            arrays[f"y{index}"] = labels
            counts = np.bincount(labels[labels >= 0], minlength=len(classes))
            rare = rare_class_warning(target, dict(zip(classes, counts.tolist())), column.numeric)
            if rare is not None:
                warnings.append(rare)
            reports.append(TargetReport(target, "classification", len(classes), detected, tuple(classes),
                                        int((labels < 0).sum())))
        else:
            values = _encode_regression(column, rows, dropped_note)
            arrays[f"y{index}"] = values.astype(np.float64)
            reports.append(TargetReport(target, "regression", 1, detected, None, int(np.isnan(values).sum())))
        column.release()
    return arrays, reports


def _encode_features(table: _Table, feature_names: Sequence[str], rows: np.ndarray, limits: CsvLimits,
                     impute: bool, warnings: list[str]) -> tuple[_InputMatrix, list[str], dict[str, int]]:
    """The input matrix (written when the suite is saved), the names of its columns and the imputed
    count per feature (with ``impute``); notes about the encoding are appended to ``warnings``."""
    plans: list[tuple[_Column, np.ndarray | None, int]] = []
    inputs: list[str] = []
    imputed: dict[str, int] = {}
    for feature in feature_names:
        column = table.column(feature)
        names, indices, notes = _encode_feature(column, rows, limits, impute)
        plans.append((column, indices, len(names)))
        inputs.extend(names)
        warnings.extend(notes)
        if impute:
            imputed[feature] = int(column.missing[rows].sum())
        if len(inputs) > limits.max_inputs:
            raise CsvError(f"the features encode to more than {limits.max_inputs} inputs (one per number, one per "
                           f"category of a text column); `{feature}` went over: leave some columns out",
                           column=feature)
    return _InputMatrix(plans, rows, len(inputs)), inputs, imputed


def _spec(report: ImportReport) -> dict[str, Any]:
    """The ``spec.json`` of the suite ``report`` describes."""
    return {
        "format": SPEC_FORMAT,
        "name": report.name,
        "description": report.description,
        "source_file": report.source_file,
        "created_at": time.time(),
        "n_rows": report.n_rows_used,
        "features": list(report.features),
        "inputs": list(report.inputs),
        "targets": [
            {"name": t.name, "kind": t.kind, "n_outputs": t.n_outputs,
             "classes": list(t.classes) if t.classes is not None else None,
             "description": _task_description(t, report.source_file)}
            for t in report.targets
        ],
        "stratify": report.stratify,
        "missing": report.missing,
        "report": {k: v for k, v in report.to_dict().items() if k != "directory"},
    }


def _describe(source_file: str | None, n_rows: int, n_dropped: int, features: Sequence[str], inputs: Sequence[str],
              targets: Sequence[TargetReport], stratify: str | None, missing: str) -> str:
    tasks = ", ".join(
        f"{t.name} ({t.kind}{', ' + str(t.n_outputs) + ' classes' if t.kind == 'classification' else ''})"
        for t in targets
    )
    where = f"the file {source_file}" if source_file else "an uploaded CSV file"  # shown literally: no markdown
    dropped = (f" ({n_dropped} row{'s' if n_dropped != 1 else ''} with missing values dropped)"
               if n_dropped and missing == "drop" else "")
    if missing == "impute":
        dropped = " (missing numbers imputed with training means, missing labels masked)"
    split = f"stratified by {stratify}" if stratify else "at random"
    return (f"Your data: {where}, {n_rows} rows{dropped}. From {len(features)} feature columns ({len(inputs)} inputs "
            f"after one-hot encoding, standardised with training statistics) it predicts: {tasks}. Regression targets "
            f"are standardised. Split 60/20/20 by seed, {split}.")


def _task_description(target: TargetReport, source_file: str | None) -> str:
    where = f" of {source_file}" if source_file else ""
    if target.kind == "classification" and target.classes is not None:
        shown = ", ".join(target.classes[:8]) + (", …" if len(target.classes) > 8 else "")
        return f"Column `{target.name}`{where}: {target.n_outputs} classes ({shown})."
    return f"Column `{target.name}`{where}, standardised with training statistics."
